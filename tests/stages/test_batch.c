/* Batcher: size flushes, interval flushes (tick and push), shutdown flush,
 * order and completeness of the events handed on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stages/batch/batch.h"

#define MS 1000000LL

typedef struct sink {
    uint32_t batches;
    uint32_t sizes[64];
    uint64_t next_seq; /* expected aux of the next event */
    uint64_t total;
} sink;

static void on_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    sink *s = ctx;
    if (s->batches < 64)
        s->sizes[s->batches] = n;
    s->batches++;
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(ev[i].aux, s->next_seq++);
    s->total += n;
}

static void push_n(rf_batcher *b, uint64_t *seq, uint32_t n, int64_t now)
{
    rf_event ev[512];
    assert_true(n <= 512);
    memset(ev, 0, sizeof(ev));
    for (uint32_t i = 0; i < n; i++)
        ev[i].aux = (*seq)++;
    rf_batcher_push(b, ev, n, now);
}

static void test_defaults_and_size(void **state)
{
    (void)state;
    sink s = {0};
    rf_batcher *b = rf_batcher_new(NULL, (rf_emitter){on_emit, &s});
    assert_non_null(b);
    uint64_t seq = 0;
    push_n(b, &seq, 99, 0);
    assert_int_equal(s.batches, 0);
    assert_int_equal(rf_batcher_pending(b), 99);
    push_n(b, &seq, 1, 1);
    assert_int_equal(s.batches, 1);
    assert_int_equal(s.sizes[0], 100);
    /* one push larger than several batches */
    push_n(b, &seq, 350, 2);
    assert_int_equal(s.batches, 4);
    assert_int_equal(rf_batcher_pending(b), 50);
    /* default interval is 5 s */
    assert_int_equal(rf_batcher_deadline(b), 2 + 5000 * MS);
    assert_int_equal(rf_batcher_tick(b, 2 + 5000 * MS - 1), 0);
    assert_int_equal(rf_batcher_tick(b, 2 + 5000 * MS), 1);
    assert_int_equal(s.sizes[4], 50);
    assert_int_equal(s.total, 450);
    rf_batcher_stats st;
    rf_batcher_stats_read(b, &st);
    assert_int_equal(st.flush_size, 4);
    assert_int_equal(st.flush_interval, 1);
    assert_int_equal(st.events, 450);
    assert_int_equal(st.max_wait_ns, 5000 * MS);
    rf_batcher_free(b);
}

static void test_interval(void **state)
{
    (void)state;
    sink s = {0};
    rf_batcher_config cfg = {.max_events = 10, .interval_ns = 100 * MS};
    rf_batcher *b = rf_batcher_new(&cfg, (rf_emitter){on_emit, &s});
    uint64_t seq = 0;
    assert_int_equal(rf_batcher_deadline(b), INT64_MAX);
    assert_int_equal(rf_batcher_tick(b, 1000 * MS), 0); /* empty: nothing */
    push_n(b, &seq, 3, 0);
    push_n(b, &seq, 3, 60 * MS);
    /* age counts from the first event, not the last */
    assert_int_equal(rf_batcher_tick(b, 99 * MS), 0);
    assert_int_equal(rf_batcher_tick(b, 100 * MS), 1);
    assert_int_equal(s.sizes[0], 6);
    /* an overdue batch is flushed by the next push even without a tick */
    push_n(b, &seq, 2, 200 * MS);
    push_n(b, &seq, 2, 450 * MS);
    assert_int_equal(s.batches, 2);
    assert_int_equal(s.sizes[1], 2);
    assert_int_equal(rf_batcher_pending(b), 2);
    assert_int_equal(rf_batcher_deadline(b), 550 * MS);
    /* shutdown */
    rf_batcher_flush(b, 460 * MS);
    assert_int_equal(s.batches, 3);
    rf_batcher_flush(b, 470 * MS); /* nothing left: no empty batch */
    assert_int_equal(s.batches, 3);
    assert_int_equal(s.total, 10);
    rf_batcher_stats st;
    rf_batcher_stats_read(b, &st);
    assert_int_equal(st.flush_interval, 2);
    assert_int_equal(st.flush_explicit, 1);
    rf_batcher_free(b);
}

static void test_bad_config(void **state)
{
    (void)state;
    rf_batcher_config cfg = {.max_events = RF_BATCH_MAX_EVENTS + 1};
    assert_null(rf_batcher_new(&cfg, (rf_emitter){0}));
    cfg = (rf_batcher_config){.max_events = 1, .interval_ns = 1};
    sink s = {0};
    rf_batcher *b = rf_batcher_new(&cfg, (rf_emitter){on_emit, &s});
    uint64_t seq = 0;
    push_n(b, &seq, 5, 0);
    assert_int_equal(s.batches, 5);
    rf_batcher_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_size),
        cmocka_unit_test(test_interval),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
