/* Cross-core hop latency of rf_ring next to DPDK's rte_ring.
 *
 * Benchmarks "ring/hop/<impl>/<size>/<burst>": the benchmark thread (CPU 0)
 * sends `burst` elements into ring A and waits until they come back on ring
 * B; a thread on CPU 1 takes what arrives on A and puts it into B at once.
 * One round trip is two hops, each a cross-core hand-off through one ring.
 * The figures (Google Benchmark counters):
 *   rtt_ns       median round trip of `burst` elements, ns
 *   ns_per_elem  rtt_ns / burst: round-trip ns per element
 *   hop_ns       rtt_ns / 2
 *   line_rtt_ns  the bare-line round trip just after, i.e. the vCPU placement
 * "ring/hop/line/1" is the floor under every ring: the same ping-pong through
 * two bare cache lines (one 8-byte store each way, no ring), i.e. what two
 * cross-core cache-line transfers cost on this machine.
 *
 * Round trips are timed in groups of RF_RING_BENCH_HOP_GROUP and the median
 * group is reported, not the mean: on a shared machine a group in which
 * either thread lost its CPU takes milliseconds instead of microseconds, but
 * it is one group among hundreds of thousands, so the median is the time of
 * a round trip while both threads run. Wall-clock items/s is reported too and
 * means as little here as in the throughput benchmarks (PERFORMANCE.md,
 * "Noise").
 *
 * Where the throughput benchmark (ring_bench.c) of a size and burst is bound
 * by moving cache lines between the cores, both rings show about the same
 * ns_per_elem here, close to the line floor times the lines per element:
 * then the pair is bound by the hardware, not by either ring's code.
 */
#include "bench/ring_bench.h"

#include <stdlib.h>

#include "bench/shim/bench_shim.h"
#include "rf_build_config.h"

#define RF_RING_BENCH_HOP_ITER_GROUPS 64u       /* groups per timed iteration */
#define RF_RING_BENCH_HOP_WARM_GROUPS 256u      /* untimed groups first */
#define RF_RING_BENCH_HOP_MAX_GROUPS (1u << 20) /* groups kept for the median */

struct rf_ring_bench_hop_echo {
    const rf_ring_bench_impl *impl; /* NULL: the bare-line floor */
    void *in, *out;
    uint32_t burst;
    _Atomic bool started;
    _Atomic bool stop;
    /* The floor's two lines, each in a 128-byte pair of its own (the
     * adjacent-line prefetchers move pairs): `there` written by the
     * benchmark thread, `back` by the echo thread. */
    alignas(128) _Atomic uint64_t there;
    alignas(128) _Atomic uint64_t back;
    alignas(128) char guard;
};

#define RF_RING_BENCH_LINE_STOP UINT64_MAX

static void rf_ring_bench_line_echo(struct rf_ring_bench_hop_echo *e)
{
    uint64_t last = 0;
    for (;;) {
        /* Pairs with the benchmark thread's release store of `there`. */
        uint64_t v = atomic_load_explicit(&e->there, memory_order_acquire);
        if (v == last) {
            rf_ring_bench_relax();
            continue;
        }
        if (v == RF_RING_BENCH_LINE_STOP)
            return;
        /* Pairs with the benchmark thread's acquire load of `back`. */
        atomic_store_explicit(&e->back, v, memory_order_release);
        last = v;
    }
}

static uint64_t rf_ring_bench_line_ping(struct rf_ring_bench_hop_echo *e, uint64_t *seq,
                                        uint32_t groups, int64_t *group_ns)
{
    uint64_t next = *seq;
    for (uint32_t g = 0; g < groups; g++) {
        const int64_t t0 = rf_clock_mono_ns();
        for (uint32_t k = 0; k < RF_RING_BENCH_HOP_GROUP; k++) {
            next++;
            /* Pairs with the echo thread's acquire load of `there`. */
            atomic_store_explicit(&e->there, next, memory_order_release);
            /* Pairs with the echo thread's release store of `back`. */
            while (atomic_load_explicit(&e->back, memory_order_acquire) != next)
                rf_ring_bench_relax();
        }
        group_ns[g] = rf_clock_mono_ns() - t0;
    }
    *seq = next;
    return 0;
}

static void *rf_ring_bench_hop_echo_main(void *arg)
{
    struct rf_ring_bench_hop_echo *e = arg;
    /* Pairs with the acquire load in rf_ring_bench_hop_run: the first round
     * trip is sent once this thread is on its CPU. */
    atomic_store_explicit(&e->started, true, memory_order_release);
    if (e->impl)
        e->impl->echo(e->in, e->out, e->burst, &e->stop);
    else
        rf_ring_bench_line_echo(e);
    return NULL;
}

static uint64_t rf_ring_bench_hop_ping(struct rf_ring_bench_hop_echo *e, uint64_t *seq,
                                       uint32_t groups, int64_t *group_ns)
{
    if (e->impl)
        return e->impl->ping(e->in, e->out, e->burst, seq, groups, group_ns);
    return rf_ring_bench_line_ping(e, seq, groups, group_ns);
}

static int rf_ring_bench_cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void rf_ring_bench_hop_run(rf_bench_state *s, const rf_ring_bench_impl *impl)
{
    const uint32_t burst = (uint32_t)rf_bench_arg(s, 0);
    if (burst == 0 || burst > RF_RING_BENCH_MAX_BURST || (!impl && burst != 1)) {
        rf_bench_skip_with_error(s, "burst out of range");
        return;
    }
    /* Aligned: the floor's lines rely on the struct's 128-byte alignment. */
    struct rf_ring_bench_hop_echo *e = aligned_alloc(128, sizeof(*e));
    int64_t *samples = malloc(sizeof(*samples) * RF_RING_BENCH_HOP_MAX_GROUPS);
    int64_t scratch[RF_RING_BENCH_HOP_WARM_GROUPS];
    if (!e || !samples) {
        rf_bench_skip_with_error(s, "hop setup failed");
        return; /* a benchmark process: what failed here is not worth freeing */
    }
    memset(e, 0, sizeof(*e));
    e->impl = impl;
    e->burst = burst;
    atomic_init(&e->started, false);
    atomic_init(&e->stop, false);
    atomic_init(&e->there, 0);
    atomic_init(&e->back, 0);
    if (impl) {
        e->in = impl->create(RF_RING_BENCH_CAPACITY, impl->esize);
        e->out = impl->create(RF_RING_BENCH_CAPACITY, impl->esize);
        if (!e->in || !e->out) {
            rf_bench_skip_with_error(s, "ring setup failed");
            return;
        }
    }
    cpu_set_t saved;
    pthread_t echo;
    if (rf_ring_bench_start_pinned(&echo, rf_ring_bench_hop_echo_main, e, &saved) != 0) {
        rf_bench_skip_with_error(s, "needs CPUs 0 and 1 for the two sides");
        return;
    }
    /* Pairs with the echo thread's release store of `started`. */
    while (!atomic_load_explicit(&e->started, memory_order_acquire))
        rf_ring_bench_relax();

    uint64_t seq = 0, errors = 0;
    errors += rf_ring_bench_hop_ping(e, &seq, RF_RING_BENCH_HOP_WARM_GROUPS, scratch);
    uint64_t groups = 0;
    uint32_t kept = 0;
    while (rf_bench_keep_running(s)) {
        int64_t *into = scratch; /* past the cap, later groups are timed but not kept */
        if (kept + RF_RING_BENCH_HOP_ITER_GROUPS <= RF_RING_BENCH_HOP_MAX_GROUPS) {
            into = samples + kept;
            kept += RF_RING_BENCH_HOP_ITER_GROUPS;
        }
        errors += rf_ring_bench_hop_ping(e, &seq, RF_RING_BENCH_HOP_ITER_GROUPS, into);
        groups += RF_RING_BENCH_HOP_ITER_GROUPS;
    }
    if (impl) {
        /* Pairs with the echo thread's acquire load: every round trip has
         * come back, so nothing is in flight when it sees this. */
        atomic_store_explicit(&e->stop, true, memory_order_release);
    } else {
        atomic_store_explicit(&e->there, RF_RING_BENCH_LINE_STOP, memory_order_release);
    }
    rf_ring_bench_join_pinned(echo, &saved);
    if (impl) {
        impl->destroy(e->in);
        impl->destroy(e->out);
    }
    free(e);

    rf_bench_set_items_processed(s, (int64_t)(groups * RF_RING_BENCH_HOP_GROUP * burst));
    if (kept > 0) {
        qsort(samples, kept, sizeof(*samples), rf_ring_bench_cmp_i64);
        const double rtt = (double)samples[kept / 2] / RF_RING_BENCH_HOP_GROUP;
        rf_bench_counter(s, "rtt_ns", rtt, false);
        rf_bench_counter(s, "ns_per_elem", rtt / burst, false);
        rf_bench_counter(s, "hop_ns", rtt / 2, false);
    }
    if (impl) /* the placement this figure was taken on (ring_bench.h) */
        rf_bench_counter(s, "line_rtt_ns", rf_ring_bench_line_rtt_ns(), false);
    free(samples);
    if (errors != 0)
        rf_bench_skip_with_error(s, "elements came back out of order");
}

double rf_ring_bench_line_rtt_ns(void)
{
    struct rf_ring_bench_hop_echo *e = aligned_alloc(128, sizeof(*e));
    int64_t samples[RF_RING_BENCH_HOP_WARM_GROUPS];
    if (!e)
        return 0;
    memset(e, 0, sizeof(*e));
    e->burst = 1;
    atomic_init(&e->started, false);
    atomic_init(&e->there, 0);
    atomic_init(&e->back, 0);
    cpu_set_t saved;
    pthread_t echo;
    if (rf_ring_bench_start_pinned(&echo, rf_ring_bench_hop_echo_main, e, &saved) != 0) {
        free(e);
        return 0;
    }
    /* Pairs with the echo thread's release store of `started`. */
    while (!atomic_load_explicit(&e->started, memory_order_acquire))
        rf_ring_bench_relax();
    uint64_t seq = 0;
    rf_ring_bench_line_ping(e, &seq, RF_RING_BENCH_HOP_WARM_GROUPS, samples);
    atomic_store_explicit(&e->there, RF_RING_BENCH_LINE_STOP, memory_order_release);
    rf_ring_bench_join_pinned(echo, &saved);
    free(e);
    qsort(samples, RF_RING_BENCH_HOP_WARM_GROUPS, sizeof(*samples), rf_ring_bench_cmp_i64);
    return (double)samples[RF_RING_BENCH_HOP_WARM_GROUPS / 2] / RF_RING_BENCH_HOP_GROUP;
}

static void bm_hop_rf_8(rf_bench_state *s)
{
    rf_ring_bench_hop_run(s, &rf_ring_bench_rf8);
}
static void bm_hop_rf_64(rf_bench_state *s)
{
    rf_ring_bench_hop_run(s, &rf_ring_bench_rf64);
}
static void bm_hop_line(rf_bench_state *s)
{
    rf_ring_bench_hop_run(s, NULL);
}
#if RF_HAVE_DPDK
static void bm_hop_rte_8(rf_bench_state *s)
{
    rf_ring_bench_hop_run(s, &rf_ring_bench_rte8);
}
static void bm_hop_rte_64(rf_bench_state *s)
{
    rf_ring_bench_hop_run(s, &rf_ring_bench_rte64);
}
#endif

RF_BENCH_REGISTER(ring_hop_benchmarks)
{
    /* Wall-clock time, as the throughput pairs; each rf/rte pair back to back. */
    static const int64_t bursts[] = {1, 8, 32};
    rf_bench_register_args_realtime("ring/hop/line", bm_hop_line, &bursts[0], 1);
    for (int i = 0; i < 3; i++) {
        rf_bench_register_args_realtime("ring/hop/rf/8B", bm_hop_rf_8, &bursts[i], 1);
#if RF_HAVE_DPDK
        rf_bench_register_args_realtime("ring/hop/rte/8B", bm_hop_rte_8, &bursts[i], 1);
#endif
    }
    for (int i = 0; i < 3; i++) {
        rf_bench_register_args_realtime("ring/hop/rf/64B", bm_hop_rf_64, &bursts[i], 1);
#if RF_HAVE_DPDK
        rf_bench_register_args_realtime("ring/hop/rte/64B", bm_hop_rte_64, &bursts[i], 1);
#endif
    }
}
