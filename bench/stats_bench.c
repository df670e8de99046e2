/* What instrumentation costs on the hot path (core/stats).
 *
 *   stats/counter/add        rf_stats_add: single-writer relaxed load + store
 *   stats/counter/fetch_add  atomic_fetch_add (lock xadd), what a shared
 *                            counter would cost even without contention
 *   stats/hist/record        rf_hist_record of latencies spread over 1 us..10 ms
 *   stats/hist/snapshot      the reader: copying one 16 KiB histogram
 *
 * Each iteration does 1024 operations; items/s is operations per second, so
 * ns per operation = 1e9 / items_per_second. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/shim/bench_shim.h"
#include "core/stats/stats.h"

#define OPS 1024

static void bm_counter_add(rf_bench_state *s)
{
    static _Alignas(64) _Atomic uint64_t c;
    while (rf_bench_keep_running(s))
        for (int i = 0; i < OPS; i++)
            rf_stats_add(&c, 1);
    rf_bench_do_not_optimize(&c);
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * OPS);
}

static void bm_counter_fetch_add(rf_bench_state *s)
{
    static _Alignas(64) _Atomic uint64_t c;
    while (rf_bench_keep_running(s))
        for (int i = 0; i < OPS; i++)
            atomic_fetch_add_explicit(&c, 1, memory_order_relaxed);
    rf_bench_do_not_optimize(&c);
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * OPS);
}

static void bm_hist_record(rf_bench_state *s)
{
    rf_hist *h = aligned_alloc(64, sizeof(rf_hist));
    rf_hist_init(h);
    /* Latency-like values: 1 us .. 10 ms, log-spread, not predictable. */
    static uint64_t vals[OPS];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < OPS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        vals[i] = 1000ull << (x % 14);
        vals[i] += x % vals[i];
    }
    while (rf_bench_keep_running(s))
        for (int i = 0; i < OPS; i++)
            rf_hist_record(h, vals[i]);
    rf_bench_do_not_optimize(h);
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * OPS);
    free(h);
}

static void bm_hist_snapshot(rf_bench_state *s)
{
    rf_hist *h = aligned_alloc(64, sizeof(rf_hist));
    rf_hist_snap *snap = malloc(sizeof(*snap));
    rf_hist_init(h);
    while (rf_bench_keep_running(s)) {
        rf_hist_snapshot(h, snap);
        rf_bench_do_not_optimize(snap);
    }
    rf_bench_set_items_processed(s, rf_bench_iterations(s));
    free(snap);
    free(h);
}

RF_BENCH_REGISTER(stats_benchmarks)
{
    rf_bench_register("stats/counter/add", bm_counter_add);
    rf_bench_register("stats/counter/fetch_add", bm_counter_fetch_add);
    rf_bench_register("stats/hist/record", bm_hist_record);
    rf_bench_register("stats/hist/snapshot", bm_hist_snapshot);
}
