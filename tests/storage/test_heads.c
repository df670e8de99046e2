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
    uint64_t max_points;
    int rc;
    _Atomic bool done;
} reader;

static void *read_heads(void *arg)
{
    reader *r = arg;
    r->rc = rf_store_heads_read(r->store, rf_series_index_want_head, r->ix,
                                rf_clock_mono_ns() + 5000000000LL, r->max_points, &r->heads);
    atomic_store_explicit(&r->done, true, memory_order_release); /* pairs with the poll below */
    return NULL;
}

/* The heads, read by a thread while this one serves as the worker, with at
 * most max_points points (0: no limit); the chunks it served are counted in
 * *polls. Returns the read's result. */
static int heads_try(rf_store *st, rf_series_index *ix, uint64_t max_points, uint32_t *polls,
                     rf_store_heads **out)
{
    reader r = {.store = st, .ix = ix, .max_points = max_points};
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
    *out = r.rc == 0 ? r.heads : NULL;
    return r.rc;
}

static rf_store_heads *heads_now(rf_store *st, rf_series_index *ix, uint32_t *polls)
{
    rf_store_heads *h;
    assert_int_equal(heads_try(st, ix, 0, polls, &h), 0);
    assert_false(h->incomplete);
    return h;
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

/* The number of head series of measurement `meas` in h, and their points. */
static size_t count_heads(const rf_store_heads *h, const char *meas, size_t *points)
{
    size_t n = 0;
    *points = 0;
    for (size_t i = 0; i < h->n; i++)
        if (h->series[i].measurement_len == strlen(meas) &&
            strncmp(h->series[i].key, meas, strlen(meas)) == 0) {
            n++;
            *points += h->series[i].n;
        }
    return n;
}

static void define_and_append(rf_store_shard *sh, const char *meas, int n_series, int64_t t0,
                              int n_points)
{
    for (int s = 0; s < n_series; s++) {
        char tags[32];
        snprintf(tags, sizeof(tags), "id=%d", s);
        rf_series_key *key = tu_key(meas, tags, "v");
        assert_int_equal(rf_store_define_series(sh, key), 0);
        for (int i = 0; i < n_points; i++)
            append(sh, key, t0 + i * 1000, s);
        rf_series_key_free(key);
    }
}

/* A query's head read copies the series its selectors match (and the keys
 * the index does not know yet), not every series holding points; and a
 * read that would hold more points than its limit is refused whole. */
static void test_heads_only_matching(void **state)
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
    const int64_t t0 = 1700000000000;
    /* 40 series of cpu_v and 60 of mem_v, on disk, so the index knows them;
     * then 3 points more each, in the heads. */
    define_and_append(sh, "cpu", 40, t0, 2);
    define_and_append(sh, "mem", 60, t0, 2);
    /* More blocks than the I/O queue holds: cut again while it drains. */
    uint64_t ticket;
    int64_t until = rf_clock_mono_ns() + 5000000000LL;
    while (rf_store_flush(sh, &ticket) == -EAGAIN && rf_clock_mono_ns() < until) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(rf_store_flush(sh, &ticket), 0);
    assert_int_equal(rf_store_wait_durable(sh, ticket, 5000000000LL), 0);
    define_and_append(sh, "cpu", 40, t0 + 10000, 3);
    define_and_append(sh, "mem", 60, t0 + 10000, 3);
    rf_series_index *ix;
    assert_int_equal(rf_series_index_open(dir, 0, &ix, &err), 0);
    assert_int_equal(rf_series_index_count(ix), 100);
    /* A series the index does not know: its key (and points) always come. */
    define_and_append(sh, "disk", 1, t0 + 10000, 3);

    rf_promql_matcher m;
    assert_int_equal(rf_promql_matcher_init(&m, "__name__", RF_PROMQL_EQ, "cpu_v", &err), 0);
    assert_int_equal(rf_series_index_heads_want(ix, &m, 1), 0);
    uint32_t polls;
    size_t points;
    rf_store_heads *h = heads_now(st, ix, &polls);
    assert_int_equal(h->n, 41);
    assert_int_equal(count_heads(h, "cpu", &points), 40);
    assert_int_equal(points, 120);
    assert_int_equal(count_heads(h, "mem", &points), 0);
    assert_int_equal(count_heads(h, "disk", &points), 1);
    /* What the query reads is whole: the segments' 2 points and the
     * head's 3 of each selected series. */
    int64_t t[512];
    assert_int_equal(samples(ix, h, "cpu_v", t0, t0 + 60000, t, 512), 40 * 5);
    rf_store_heads_free(h);

    /* A second selector adds to the first: cpu_v and five series of mem_v. */
    rf_promql_matcher m2[2];
    assert_int_equal(rf_promql_matcher_init(&m2[0], "__name__", RF_PROMQL_EQ, "mem_v", &err), 0);
    assert_int_equal(rf_promql_matcher_init(&m2[1], "id", RF_PROMQL_RE, "1[0-4]", &err), 0);
    assert_int_equal(rf_series_index_heads_want(ix, m2, 2), 0);
    h = heads_now(st, ix, &polls);
    assert_int_equal(count_heads(h, "cpu", &points), 40);
    assert_int_equal(count_heads(h, "mem", &points), 5);
    rf_store_heads_free(h);

    /* None (the metadata endpoints): the keys the index lacks only. The
     * disk series was learnt by set_heads above, so nothing is copied. */
    assert_int_equal(rf_series_index_heads_want_none(ix), 0);
    h = heads_now(st, ix, &polls);
    assert_int_equal(h->n, 0);
    rf_store_heads_free(h);

    /* All: every series holding points. */
    rf_series_index_heads_want_all(ix);
    h = heads_now(st, ix, &polls);
    assert_int_equal(h->n, 101);
    rf_store_heads_free(h);

    /* A limit of 299 points, and 303 held: refused, nothing returned. */
    assert_int_equal(heads_try(st, ix, 299, &polls, &h), -E2BIG);
    assert_null(h);
    assert_int_equal(heads_try(st, ix, 303, &polls, &h), 0);
    rf_store_heads_free(h);

    rf_promql_matcher_release(&m);
    rf_promql_matcher_release(&m2[0]);
    rf_promql_matcher_release(&m2[1]);
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
        cmocka_unit_test(test_heads_only_matching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
