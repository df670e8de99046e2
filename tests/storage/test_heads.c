/* Reading the in-memory heads (storage/store "Reading the heads") through
 * the series index's PromQL source: a point is seen while it waits in its
 * series' buffer, and exactly once when its block is cut between the head
 * read and the segment read, or cut before the head read but not yet
 * written. The test thread is the shard's worker; a reader thread reads the
 * heads, as the query thread does. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "core/clock/clock.h"
#include "storage/index/index.h"
#include "store_test_util.h"

typedef struct reader {
    rf_store *store;
    rf_series_index *ix;
    rf_store_heads *heads;
    int rc;
    _Atomic bool done;
} reader;

static void *read_heads(void *arg)
{
    reader *r = arg;
    r->rc = rf_store_heads_read(r->store, rf_series_index_want_head, r->ix,
                                rf_clock_mono_ns() + 5000000000LL, &r->heads);
    atomic_store_explicit(&r->done, true, memory_order_release); /* pairs with the poll below */
    return NULL;
}

/* The heads, read by a thread while this one serves as the worker; the
 * chunks it served are counted in *polls. */
static rf_store_heads *heads_now(rf_store *st, rf_series_index *ix, uint32_t *polls)
{
    reader r = {.store = st, .ix = ix};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_heads, &r), 0);
    *polls = 0;
    while (!atomic_load_explicit(&r.done, memory_order_acquire)) {
        if (rf_store_serve_heads(rf_store_shard_get(st, 0)))
            (*polls)++;
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    pthread_join(t, NULL);
    assert_int_equal(r.rc, 0);
    assert_false(r.heads->incomplete);
    return r.heads;
}

/* Samples of `metric` over [mint, maxt] ms through the index's source with
 * the heads attached; their times into t (up to cap). */
static size_t samples(rf_series_index *ix, const rf_store_heads *h, const char *metric,
                      int64_t mint, int64_t maxt, int64_t *t, size_t cap)
{
    assert_int_equal(rf_series_index_set_heads(ix, h), 0);
    rf_promql_source src;
    rf_series_index_source(ix, &src);
    rf_promql_matcher m = {.name = "__name__", .op = RF_PROMQL_EQ, .value = metric};
    rf_promql_series *s;
    size_t n;
    rf_err err;
    assert_int_equal(src.select(src.user, &m, 1, mint, maxt, &s, &n, &err), 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            if (k < cap)
                t[k] = s[i].t[j];
            k++;
        }
    src.release(src.user, s, n);
    rf_series_index_set_heads(ix, NULL);
    return k;
}

static void append(rf_store_shard *sh, const rf_series_key *key, int64_t t_ms, double v)
{
    rf_event ev = tu_event(key->series_id, t_ms * 1000000, RF_VALUE_F64, tu_f64(v));
    assert_int_equal(rf_store_append(sh, &ev), 0);
}

static void test_heads_exactly_once(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 1024;
    cfg.block_max_age_ns = 300 * 1000000000LL; /* no age cut during the test */
    /* A slow I/O thread: a block cut before the head read is still in the
     * slots when the read ends, unless the read waits for it. */
    cfg.io_idle_wait_us = 300000;
    rf_store *st;
    rf_err err;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &err), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *key = tu_key("cpu", "host=a", "usage");
    assert_int_equal(rf_store_define_series(sh, key), 0);
    const int64_t t0 = 1700000000000;
    for (int i = 0; i < 10; i++)
        append(sh, key, t0 + i * 1000, i);

    /* Nothing written yet: the index knows no series, the heads bring it. */
    rf_series_index *ix;
    assert_int_equal(rf_series_index_open(dir, 0, &ix, &err), 0);
    assert_int_equal(rf_series_index_count(ix), 0);
    uint32_t polls;
    rf_store_heads *h = heads_now(st, ix, &polls);
    assert_int_equal(h->n, 1);
    int64_t t[64];
    assert_int_equal(samples(ix, h, "cpu_usage", t0, t0 + 60000, t, 64), 10);
    assert_int_equal(rf_series_index_count(ix), 1);

    /* The block is cut and written after the heads were copied: the
     * segment and the copy both hold the ten points; each is seen once. */
    uint64_t ticket;
    assert_int_equal(rf_store_flush(sh, &ticket), 0);
    assert_int_equal(rf_store_wait_durable(sh, ticket, 5000000000LL), 0);
    size_t n = samples(ix, h, "cpu_usage", t0, t0 + 60000, t, 64);
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(t[i], t0 + i * 1000);
    rf_store_heads_free(h);

    /* Cut before the head read, written or not by then: the read waits for
     * the I/O thread, so the segments have them (no gap); the new point
     * still in the buffer comes from the head. */
    for (int i = 10; i < 20; i++)
        append(sh, key, t0 + i * 1000, i);
    assert_int_equal(rf_store_flush(sh, &ticket), 0);
    append(sh, key, t0 + 20 * 1000, 20);
    h = heads_now(st, ix, &polls);
    assert_int_equal(h->n, 1);
    assert_int_equal(h->series[0].n, 1);
    n = samples(ix, h, "cpu_usage", t0, t0 + 60000, t, 64);
    assert_int_equal(n, 21);
    for (int i = 0; i < 21; i++)
        assert_int_equal(t[i], t0 + i * 1000);
    rf_store_heads_free(h);

    /* Without the heads: the segments alone, within the range's bounds. */
    assert_int_equal(samples(ix, NULL, "cpu_usage", t0 + 5000, t0 + 14000, t, 64), 10);
    rf_series_index_free(ix);
    rf_series_key_free(key);
    assert_int_equal(rf_store_close(st, &err), 0);
    tu_rmrf(dir);
    free(dir);
}

/* Many series: the read takes several worker polls, none copying more than
 * RF_STORE_HEAD_SERIES_PER_POLL series, and every point is there. */
static void test_heads_bounded_chunks(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 1024;
    cfg.block_max_age_ns = 300 * 1000000000LL;
    rf_store *st;
    rf_err err;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &err), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    const int n_series = 3 * (int)RF_STORE_HEAD_SERIES_PER_POLL + 7;
    const int64_t t0 = 1700000000000;
    for (int s = 0; s < n_series; s++) {
        char tags[32];
        snprintf(tags, sizeof(tags), "id=%d", s);
        rf_series_key *key = tu_key("mem", tags, "used");
        assert_int_equal(rf_store_define_series(sh, key), 0);
        for (int i = 0; i < 3; i++)
            append(sh, key, t0 + i * 1000, s);
        rf_series_key_free(key);
    }
    rf_series_index *ix;
    assert_int_equal(rf_series_index_open(dir, 0, &ix, &err), 0);
    uint32_t polls;
    rf_store_heads *h = heads_now(st, ix, &polls);
    assert_int_equal(h->n, (size_t)n_series);
    assert_true(h->chunks >= 4);
    int64_t t[4];
    assert_int_equal(samples(ix, h, "mem_used", t0, t0 + 60000, t, 4), (size_t)n_series * 3);
    rf_store_heads_free(h);
    rf_series_index_free(ix);
    assert_int_equal(rf_store_close(st, &err), 0);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heads_exactly_once),
        cmocka_unit_test(test_heads_bounded_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
