/* Retention: whole closed segments go, by the age of their newest point and
 * by total size, oldest first; open segments stay; stats say what went. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>

#include "core/clock/clock.h"
#include "storage/query/query.h"
#include "tests/storage/store_test_util.h"

#define DAY (86400LL * RF_NS_PER_S)
#define N 3000

static int64_t g_now;

static int64_t old_t(int i)
{
    return g_now - 200 * DAY + (int64_t)i * 10 * RF_NS_PER_S;
}
static int64_t new_t(int i)
{
    return g_now - DAY + (int64_t)i * 10 * RF_NS_PER_S;
}

/* Incompressible values: blocks of ~600 bytes, so segments roll often. */
static uint64_t rnd(int i)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29);
}

static void count_points(const char *dir, size_t *n_old, size_t *n_new, int *first_new)
{
    rf_query q = {.measurement = "ret", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    *n_old = *n_new = 0;
    *first_new = -1;
    for (size_t k = 0; k < r->n_sets; k++)
        for (size_t j = 0; j < r->sets[k].n; j++) {
            if (r->sets[k].ts[j] < g_now - 100 * DAY) {
                (*n_old)++;
            } else {
                if (*first_new < 0)
                    *first_new = (int)((r->sets[k].ts[j] - new_t(0)) / (10 * RF_NS_PER_S));
                (*n_new)++;
            }
        }
    rf_query_result_free(r);
}

static void test_retention(void **state)
{
    (void)state;
    g_now = rf_clock_wall_ns();
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.segment_max_bytes = 4096;
    cfg.durability = RF_DURABILITY_NEVER;
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("ret", "host=a", "v");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    for (int i = 0; i < N; i++) {
        rf_event ev = tu_event(k->series_id, old_t(i), RF_VALUE_I64, rnd(i));
        tu_append(sh, &ev);
    }
    for (int i = 0; i < N; i++) {
        rf_event ev = tu_event(k->series_id, new_t(i), RF_VALUE_I64, rnd(i));
        tu_append(sh, &ev);
    }
    assert_int_equal(rf_store_close(st, &e), 0);

    /* by age (default 90 days) */
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_stats before, after;
    assert_int_equal(rf_store_retention_run(st, g_now, 5 * RF_NS_PER_S), 0);
    rf_store_stats_read(st, &after);
    assert_true(after.segments_removed > 0);
    assert_true(after.bytes_removed > 0);
    assert_true(after.retention_runs >= 1);
    size_t n_old, n_new;
    int first_new;
    count_points(dir, &n_old, &n_new, &first_new);
    print_message("age: removed %" PRIu64 " segments (%" PRIu64 " bytes); old points left %zu "
                  "(in the segment shared with new ones), new %zu\n",
                  after.segments_removed, after.bytes_removed, n_old, n_new);
    assert_int_equal(n_new, N);
    assert_true(n_old < 400); /* at most the one segment holding both */
    assert_int_equal(rf_store_close(st, &e), 0);

    /* by size: keep under half of what is left; the newest data stays */
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    /* a run publishes the stats before it returns (no size limit yet) */
    assert_int_equal(rf_store_retention_run(st, g_now, 5 * RF_NS_PER_S), 0);
    rf_store_stats_read(st, &before);
    assert_int_equal(rf_store_close(st, &e), 0);
    cfg.retention_max_bytes = before.bytes / 2;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    assert_int_equal(rf_store_retention_run(st, g_now, 5 * RF_NS_PER_S), 0);
    rf_store_stats_read(st, &after);
    print_message("size: %" PRIu64 " -> %" PRIu64 " bytes (limit %" PRIu64 "), %" PRIu64
                  " segments\n",
                  before.bytes, after.bytes, cfg.retention_max_bytes, after.segments);
    assert_true(after.bytes <= cfg.retention_max_bytes);
    assert_true(after.segments_removed > 0);
    count_points(dir, &n_old, &n_new, &first_new);
    assert_int_equal(n_old, 0);
    assert_true(n_new > 0 && n_new < N);
    assert_int_equal((size_t)first_new + n_new, N); /* a suffix: the newest points */

    /* the open segment is never removed, whatever the limit */
    cfg.retention_max_bytes = 1;
    assert_int_equal(rf_store_close(st, &e), 0);
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    sh = rf_store_shard_get(st, 0);
    assert_int_equal(rf_store_define_series(sh, k), 0);
    for (int i = N; i < N + 10; i++) {
        rf_event ev = tu_event(k->series_id, new_t(i), RF_VALUE_I64, rnd(i));
        tu_append(sh, &ev);
    }
    assert_int_equal(tu_flush_durable(sh, 5 * RF_NS_PER_S), 0);
    assert_int_equal(rf_store_retention_run(st, g_now, 5 * RF_NS_PER_S), 0);
    count_points(dir, &n_old, &n_new, &first_new);
    assert_int_equal(n_new, 10);
    assert_int_equal(first_new, N);
    assert_int_equal(rf_store_close(st, &e), 0);
    rf_series_key_free(k);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
