/* ingest/spread: the chunk hand-off between workers.
 *
 *   - a run is handed to a peer with a free buffer and arrives there byte for
 *     byte, with its listener, protocol, client and times;
 *   - a small run (a slow client) and a run too large stay local, counted;
 *   - every buffer in use: the offer is refused (no_buffer) and the run stays
 *     local; once the peer parsed, buffers come back;
 *   - a peer handing chunks to us is not handed ours; peer_mask is obeyed;
 *   - two threads, 20,000 runs: every run is parsed exactly once, by one side
 *     or the other, and each peer's runs arrive in the order handed;
 *   - configuration: defaults, bad values refused with the key named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config/config.h"
#include "ingest/spread/spread.h"

typedef struct seen {
    uint32_t n;
    char last[RF_SPREAD_BUFFER_BYTES + 1];
    uint32_t last_len, last_from;
    uint16_t last_source;
    uint8_t last_protocol;
    char last_peer[64];
    int64_t last_mono, last_wall;
} seen;

static void record(void *ctx, const rf_spread_chunk *c)
{
    seen *s = ctx;
    s->n++;
    memcpy(s->last, c->data, c->len);
    s->last_len = c->len;
    s->last_from = c->from;
    s->last_source = c->source_id;
    s->last_protocol = c->protocol;
    snprintf(s->last_peer, sizeof(s->last_peer), "%s", c->peer);
    s->last_mono = c->mono_ns;
    s->last_wall = c->wall_ns;
}

static rf_spread *make(uint32_t workers, uint32_t buffers, uint32_t min_chunk)
{
    rf_spread_config cfg;
    rf_spread_config_init(&cfg);
    cfg.enabled = true;
    cfg.buffers = buffers;
    cfg.min_chunk = min_chunk;
    rf_spread *sp = NULL;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_spread_new(&sp, workers, &cfg, &err), 0);
    assert_non_null(sp);
    return sp;
}

static void fill_lines(char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + seed) % 26);
    buf[len - 1] = '\n';
}

static void test_hand_off_exact(void **state)
{
    (void)state;
    rf_spread *sp = make(2, 4, 1024);
    static char run[RF_SPREAD_BUFFER_BYTES];
    fill_lines(run, sizeof(run), 3);
    int to = rf_spread_offer(sp, 0, 0, 7, 2, run, sizeof(run), "127.0.0.1:5555", 11, 22);
    assert_int_equal(to, 1);
    static seen s;
    memset(&s, 0, sizeof(s));
    /* Worker 0 has nothing from worker 1. */
    assert_int_equal(rf_spread_drain(sp, 0, 64, record, &s), 0);
    assert_int_equal(rf_spread_drain(sp, 1, 64, record, &s), 1);
    assert_int_equal(s.last_len, sizeof(run));
    assert_memory_equal(s.last, run, sizeof(run));
    assert_int_equal(s.last_from, 0);
    assert_int_equal(s.last_source, 7);
    assert_int_equal(s.last_protocol, 2);
    assert_string_equal(s.last_peer, "127.0.0.1:5555");
    assert_int_equal(s.last_mono, 11);
    assert_int_equal(s.last_wall, 22);
    rf_spread_stats st0, st1;
    rf_spread_stats_read(sp, 0, &st0);
    rf_spread_stats_read(sp, 1, &st1);
    assert_int_equal(st0.handed_chunks, 1);
    assert_int_equal(st0.handed_bytes, sizeof(run));
    assert_int_equal(st1.taken_chunks, 1);
    assert_int_equal(st1.taken_bytes, sizeof(run));
    assert_int_equal(rf_spread_outstanding(sp, 0), 0);
    rf_spread_free(sp);
}

static void test_small_and_large_stay_local(void **state)
{
    (void)state;
    rf_spread *sp = make(2, 4, 1024);
    static char run[RF_SPREAD_BUFFER_BYTES + 1];
    fill_lines(run, sizeof(run), 1);
    /* A slow client's read. */
    assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, 1023, "c", 0, 0), -1);
    /* A held line longer than a buffer. */
    assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), -1);
    assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, 1024, "c", 0, 0), 1);
    rf_spread_stats st;
    rf_spread_stats_read(sp, 0, &st);
    assert_int_equal(st.local_chunks, 2);
    assert_int_equal(st.local_bytes, 1023 + sizeof(run));
    assert_int_equal(st.handed_chunks, 1);
    assert_int_equal(st.no_buffer, 0);
    rf_spread_free(sp);
}

static void test_back_pressure(void **state)
{
    (void)state;
    rf_spread *sp = make(2, 4, 64);
    char run[256];
    fill_lines(run, sizeof(run), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), 1);
    assert_int_equal(rf_spread_outstanding(sp, 0), 4);
    /* Every buffer is out: parse here. */
    assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), -1);
    rf_spread_stats st;
    rf_spread_stats_read(sp, 0, &st);
    assert_int_equal(st.no_buffer, 1);
    assert_int_equal(st.local_chunks, 1);
    static seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(rf_spread_drain(sp, 1, 2, record, &s), 2); /* max_chunks obeyed */
    assert_int_equal(rf_spread_outstanding(sp, 0), 2);
    assert_int_equal(rf_spread_drain(sp, 1, 64, record, &s), 2);
    assert_int_equal(rf_spread_outstanding(sp, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), 1);
    rf_spread_free(sp);
}

static void test_busy_peer_and_mask(void **state)
{
    (void)state;
    rf_spread *sp = make(3, 4, 64);
    char run[256];
    fill_lines(run, sizeof(run), 0);
    /* Worker 1 hands worker 0 a run: worker 1 is busy with a client of its own. */
    assert_int_equal(rf_spread_offer(sp, 1, 1u << 0, 0, 0, run, sizeof(run), "c", 0, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), 2);
    /* Worker 2's buffers are out and worker 1 is busy: local. */
    assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), -1);
    static seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(rf_spread_drain(sp, 0, 64, record, &s), 1);
    assert_int_equal(s.last_from, 1);
    /* Worker 1 is free now, but the listener runs on workers 0 and 2 only. */
    assert_int_equal(
        rf_spread_offer(sp, 0, (1u << 0) | (1u << 2), 0, 0, run, sizeof(run), "c", 0, 0), -1);
    assert_int_equal(rf_spread_offer(sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0), 1);
    rf_spread_free(sp);
}

static void test_disabled_and_one_worker(void **state)
{
    (void)state;
    rf_spread_config cfg;
    rf_spread_config_init(&cfg);
    cfg.enabled = true;
    rf_spread *sp = (rf_spread *)1;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_spread_new(&sp, 1, &cfg, &err), 0);
    assert_null(sp);
    cfg.enabled = false;
    assert_int_equal(rf_spread_new(&sp, 2, &cfg, &err), 0);
    assert_null(sp);
    assert_int_equal(rf_spread_memory_bound(2, &cfg), 0);
    cfg.enabled = true;
    assert_true(rf_spread_memory_bound(2, &cfg) >= 2ull * cfg.buffers * RF_SPREAD_BUFFER_BYTES);
    cfg.buffers = 6;
    assert_int_equal(rf_spread_new(&sp, 2, &cfg, &err), -EINVAL);
}

/* Two threads: the producer offers NRUNS numbered runs and "parses" those
 * refused itself; the consumer parses those taken. Every number is seen
 * once, and the consumer sees its share in increasing order. */
#define NRUNS 20000u
typedef struct twin {
    rf_spread *sp;
    _Atomic uint32_t seen_count[NRUNS];
    _Atomic bool producer_done;
    uint32_t consumer_last;
    bool consumer_in_order;
} twin;

static void twin_parse(void *ctx, const rf_spread_chunk *c)
{
    twin *t = ctx;
    uint32_t k;
    assert_int_equal(c->len, 100);
    memcpy(&k, c->data, sizeof(k));
    for (uint32_t i = sizeof(k); i < c->len - 1; i++)
        if (c->data[i] != (char)('a' + (k + i) % 26))
            t->consumer_in_order = false; /* corrupt bytes fail the test as well */
    if (t->consumer_last != UINT32_MAX && k <= t->consumer_last)
        t->consumer_in_order = false;
    t->consumer_last = k;
    atomic_fetch_add(&t->seen_count[k], 1);
}

static void *consumer(void *arg)
{
    twin *t = arg;
    for (;;) {
        const bool done = atomic_load(&t->producer_done);
        if (rf_spread_drain(t->sp, 1, 64, twin_parse, t) == 0 && done)
            break;
    }
    return NULL;
}

static void test_two_threads_every_run_once(void **state)
{
    (void)state;
    twin *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->sp = make(2, 8, 64);
    t->consumer_last = UINT32_MAX;
    t->consumer_in_order = true;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, consumer, t), 0);
    char run[100];
    uint32_t handed = 0;
    for (uint32_t k = 0; k < NRUNS; k++) {
        memcpy(run, &k, sizeof(k));
        for (uint32_t i = sizeof(k); i < sizeof(run) - 1; i++)
            run[i] = (char)('a' + (k + i) % 26);
        run[sizeof(run) - 1] = '\n';
        if (rf_spread_offer(t->sp, 0, 0, 0, 0, run, sizeof(run), "c", 0, 0) == 1)
            handed++;
        else
            atomic_fetch_add(&t->seen_count[k], 1);
    }
    while (rf_spread_outstanding(t->sp, 0) != 0)
        ;
    atomic_store(&t->producer_done, true);
    assert_int_equal(pthread_join(th, NULL), 0);
    for (uint32_t k = 0; k < NRUNS; k++)
        assert_int_equal(atomic_load(&t->seen_count[k]), 1);
    assert_true(t->consumer_in_order);
    rf_spread_stats st0, st1;
    rf_spread_stats_read(t->sp, 0, &st0);
    rf_spread_stats_read(t->sp, 1, &st1);
    assert_int_equal(st0.handed_chunks, handed);
    assert_int_equal(st0.handed_chunks + st0.local_chunks, NRUNS);
    assert_int_equal(st1.taken_chunks, handed);
    assert_true(handed > 0);
    rf_spread_free(t->sp);
    free(t);
}

static int parse_yaml(const char *yaml, rf_spread_config *out, rf_err *err)
{
    rf_cfg_doc *doc = NULL;
    int rc = rf_cfg_load_string(yaml, strlen(yaml), "test.yaml", &doc, err);
    if (rc < 0)
        return rc;
    const rf_cfg_node *ingest = NULL;
    rc = rf_cfg_map(rf_cfg_root(doc), "ingest", &ingest, err);
    if (rc >= 0)
        rc = rf_spread_config_parse(ingest, out, err);
    rf_cfg_free(doc);
    return rc;
}

static void test_config(void **state)
{
    (void)state;
    rf_spread_config c;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(parse_yaml("ingest: {}\n", &c, &err), 0);
    assert_false(c.enabled);
    assert_int_equal(c.buffers, RF_SPREAD_BUFFERS_DEFAULT);
    assert_int_equal(c.min_chunk, RF_SPREAD_MIN_CHUNK_DEFAULT);
    assert_int_equal(
        parse_yaml("ingest: {spread: {enabled: true, buffers: 16, min_chunk: 1KiB}}\n", &c, &err),
        0);
    assert_true(c.enabled);
    assert_int_equal(c.buffers, 16);
    assert_int_equal(c.min_chunk, 1024);
    rf_err_clear(&err);
    assert_true(parse_yaml("ingest: {spread: {buffers: 12}}\n", &c, &err) < 0);
    assert_non_null(strstr(err.msg, "buffers"));
    assert_non_null(strstr(err.msg, "power of two"));
    rf_err_clear(&err);
    assert_true(parse_yaml("ingest: {spread: {min_chunk: 1MiB}}\n", &c, &err) < 0);
    assert_non_null(strstr(err.msg, "min_chunk"));
    rf_err_clear(&err);
    assert_true(parse_yaml("ingest: {spread: {enabled: maybe}}\n", &c, &err) < 0);
    assert_non_null(strstr(err.msg, "enabled"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_off_exact),
        cmocka_unit_test(test_small_and_large_stay_local),
        cmocka_unit_test(test_back_pressure),
        cmocka_unit_test(test_busy_peer_and_mask),
        cmocka_unit_test(test_disabled_and_one_worker),
        cmocka_unit_test(test_two_threads_every_run_once),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
