/* The store's memory: rf_store_memory_bound against what the process really
 * holds, and the point-buffer budget (storage.buffer_memory).
 *
 *   - bound: a shard filled to its configured maximum (every series defined,
 *     every buffer grown to its hard cap, blocks cut and written) adds less
 *     resident memory than rf_store_memory_bound says, and the bound is not
 *     a wild overestimate (printed, and under 4x what was measured for the
 *     per-series parts);
 *   - budget: with buffer_memory set, the buffers never hold more than the
 *     budget beyond their first 16 points, buffers that would pass it are cut
 *     early (blocks_cut_by_memory, smaller blocks), and not one point is lost:
 *     everything appended is in the store afterwards;
 *   - an age cut that finds a grown buffer at most a quarter full gives half
 *     of it back to the budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "storage/query/query.h"
#include "tests/storage/store_test_util.h"
#include "core/mem/mem.h"

/* Resident memory says nothing under AddressSanitizer (redzones, the
 * quarantine of freed blocks): there only the functional checks run. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECKS 0
#endif
#endif
#ifndef RSS_CHECKS
#define RSS_CHECKS 1
#endif

/* Waits until the I/O thread has written every block handed to it, so that
 * the next appends find free slots (the test must not lose points to
 * back-pressure: it checks every one of them). */
static void wait_written(rf_store_shard *sh)
{
    for (int i = 0; i < 20000; i++) {
        rf_store_shard_stats ss;
        rf_store_shard_stats_read(sh, &ss);
        if (ss.written_seq >= ss.submitted_seq)
            return;
        usleep(100);
    }
    fail_msg("the I/O thread did not catch up");
}

static rf_series_key **make_keys(const char *meas, int n, uint32_t *max_len)
{
    rf_series_key **k = calloc((size_t)n, sizeof(*k));
    *max_len = 0;
    for (int i = 0; i < n; i++) {
        char tags[96];
        snprintf(tags, sizeof(tags), "host=host-%05d,region=eu-west-%d,rack=r%02d", i, i % 3,
                 i % 40);
        k[i] = tu_key(meas, tags, "value");
        if (k[i]->len > *max_len)
            *max_len = k[i]->len;
    }
    return k;
}

static void free_keys(rf_series_key **k, int n)
{
    for (int i = 0; i < n; i++)
        rf_series_key_free(k[i]);
    free(k);
}

/* Appends points [from, to) to every series, round robin, waiting for the
 * I/O thread after each round. */
static void fill(rf_store_shard *sh, rf_series_key **k, int n, int from, int to)
{
    for (int p = from; p < to; p++) {
        for (int i = 0; i < n; i++) {
            rf_event ev =
                tu_event(k[i]->series_id, 1000000 + p, RF_VALUE_I64, (uint64_t)(p * 31 + i));
            assert_int_equal(rf_store_append(sh, &ev), 0);
        }
        wait_written(sh);
    }
}

static uint64_t stored_points(const char *dir, const char *meas)
{
    rf_query q = {.measurement = meas, .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    uint64_t n = 0;
    for (size_t i = 0; i < r->n_sets; i++)
        n += r->sets[i].n;
    rf_query_result_free(r);
    return n;
}

static void test_bound_covers_a_full_shard(void **state)
{
    (void)state;
    enum {
        SERIES = 20000
    };
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 256; /* hard cap 320: 5 KiB a series when grown */
    cfg.queue_blocks = 1024;
    /* The open segment's block index is bounded by the segment size (one
     * entry per 45-byte record at most): the smallest segment keeps that
     * part of the bound near what this stream uses. */
    cfg.segment_max_bytes = 1u << 20;
    uint32_t max_key;
    rf_series_key **k = make_keys("mem", SERIES, &max_key);
    rf_store_memory b;
    rf_store_memory_bound(&cfg, SERIES, max_key, &b);

    const uint64_t rss0 = rf_mem_rss_bytes();
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int i = 0; i < SERIES; i++)
        assert_int_equal(rf_store_define_series(sh, k[i]), 0);
    const uint64_t rss_defined = rf_mem_rss_bytes();
    /* 300 points each: every buffer doubles 16 -> 32 -> ... -> 256 -> 320
     * (the cut of its first block is queued meanwhile), and all of them
     * reach that size. */
    fill(sh, k, SERIES, 0, 300);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    const uint64_t rss1 = rf_mem_rss_bytes();
    const uint64_t used = rss1 > rss0 ? rss1 - rss0 : 0;
    print_message("store bound: fixed %lu + series %lu + buffers %lu = %lu bytes; measured "
                  "+%lu bytes resident (%lu after defining), buffers hold %lu bytes, %lu blocks "
                  "written\n",
                  (unsigned long)b.fixed, (unsigned long)b.series, (unsigned long)b.buffers,
                  (unsigned long)b.total, (unsigned long)used, (unsigned long)(rss_defined - rss0),
                  (unsigned long)ss.buffer_bytes, (unsigned long)ss.blocks_written);
    assert_int_equal(ss.dropped_backpressure, 0);
    assert_int_equal(ss.blocks_cut_by_memory, 0);
    /* Nearly every buffer at its hard cap (those whose paced cut came before
     * their 257th point stopped at 256): the "buffers" part is used. */
    assert_true(ss.buffer_bytes <= (uint64_t)SERIES * 320 * 16);
    assert_true(ss.buffer_bytes >= (uint64_t)SERIES * 300 * 16);
    assert_true(ss.buffer_bytes - (uint64_t)SERIES * 16 * 16 <= b.buffers);
    if (RSS_CHECKS) {
        assert_true(used <= b.total);
        /* and the bound is honest the other way too: not wildly above */
        assert_true(b.total < 4 * used);
    }
    assert_int_equal(rf_store_close(st, &e), 0);
    assert_int_equal(stored_points(dir, "mem"), (uint64_t)SERIES * 300);
    free_keys(k, SERIES);
    tu_rmrf(dir);
    free(dir);
}

static void test_budget_cuts_early_and_loses_nothing(void **state)
{
    (void)state;
    enum {
        SERIES = 2000,
        POINTS = 200
    };
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 64; /* hard cap 80 */
    cfg.queue_blocks = 4096;
    cfg.buffer_memory = 256 * 1024; /* room to grow for about 1 series in 7 */
    uint32_t max_key;
    rf_series_key **k = make_keys("budget", SERIES, &max_key);
    rf_store_memory b;
    rf_store_memory_bound(&cfg, SERIES, max_key, &b);
    assert_int_equal(b.buffers, cfg.buffer_memory);

    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int i = 0; i < SERIES; i++)
        assert_int_equal(rf_store_define_series(sh, k[i]), 0);
    const uint64_t first = (uint64_t)SERIES * 16 * 16;
    uint64_t high = 0;
    for (int p = 0; p < POINTS; p++) {
        fill(sh, k, SERIES, p, p + 1);
        rf_store_shard_stats ss;
        rf_store_shard_stats_read(sh, &ss);
        if (ss.buffer_bytes > high)
            high = ss.buffer_bytes;
    }
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    print_message("budget %lu: buffers peaked at %lu bytes beyond their first 16 points; %lu "
                  "blocks cut, %lu of them early by the budget\n",
                  (unsigned long)cfg.buffer_memory, (unsigned long)(high - first),
                  (unsigned long)ss.blocks_cut, (unsigned long)ss.blocks_cut_by_memory);
    assert_true(high - first <= cfg.buffer_memory);
    assert_true(high - first > cfg.buffer_memory / 2); /* the budget was used */
    assert_true(ss.blocks_cut_by_memory > 0);
    assert_int_equal(ss.dropped_backpressure, 0);
    assert_int_equal(ss.points_appended, (uint64_t)SERIES * POINTS);
    assert_int_equal(rf_store_close(st, &e), 0);
    /* every point is there; smaller blocks than 64 points were written */
    assert_int_equal(stored_points(dir, "budget"), (uint64_t)SERIES * POINTS);
    free_keys(k, SERIES);
    tu_rmrf(dir);
    free(dir);
}

static void test_age_cut_gives_memory_back(void **state)
{
    (void)state;
    enum {
        SERIES = 64
    };
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 1024;
    cfg.block_max_age_ns = 1000000; /* 1 ms */
    cfg.tick_cut_budget_ns = 0;
    cfg.buffer_memory = 64ull << 20;
    uint32_t max_key;
    rf_series_key **k = make_keys("shrink", SERIES, &max_key);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int i = 0; i < SERIES; i++)
        assert_int_equal(rf_store_define_series(sh, k[i]), 0);
    /* A fast past: 600 points each (buffers grow to 1024), cut by age. */
    fill(sh, k, SERIES, 0, 600);
    rf_store_tick(sh, rf_clock_mono_ns() + 10000000);
    wait_written(sh);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    const uint64_t grown = ss.buffer_bytes;
    assert_int_equal(grown, (uint64_t)SERIES * 1024 * 16);
    /* A slow present: 10 points per age period; each age cut halves the
     * buffer, down to its first 16 points. */
    int p = 600;
    for (int round = 0; round < 8; round++) {
        fill(sh, k, SERIES, p, p + 10);
        p += 10;
        rf_store_tick(sh, rf_clock_mono_ns() + (int64_t)(round + 2) * 10000000);
        wait_written(sh);
    }
    rf_store_shard_stats_read(sh, &ss);
    print_message("age cuts: buffers %lu -> %lu bytes\n", (unsigned long)grown,
                  (unsigned long)ss.buffer_bytes);
    /* 1024 halved at each age cut that found it at most a quarter full (10
     * points): 512, 256, 128, 64, 32; at 32, 10 points are more than 8. */
    assert_int_equal(ss.buffer_bytes, (uint64_t)SERIES * 32 * 16);
    assert_int_equal(ss.dropped_backpressure, 0);
    assert_int_equal(rf_store_close(st, &e), 0);
    assert_int_equal(stored_points(dir, "shrink"), (uint64_t)SERIES * (uint64_t)p);
    free_keys(k, SERIES);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_covers_a_full_shard),
        cmocka_unit_test(test_budget_cuts_early_and_loses_nothing),
        cmocka_unit_test(test_age_cut_gives_memory_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
