/* Cross-core throughput of rf_ring next to DPDK's rte_ring.
 *
 * Benchmarks "ring/<impl>/<size>/<burst>": impl is rf (ours) or rte (DPDK's
 * rte_ring, SP/SC, _elem API), size is 8B (a pointer-sized element) or 64B
 * (one rf_event), burst is 1, 8 or 32 elements per enqueue and per dequeue.
 * The producer is the benchmark thread pinned to CPU 0, the consumer a thread
 * pinned to CPU 1; items/s counts elements moved from one core to the other.
 * The loops are shared (ring_bench.h), so a pair differs only in ring code.
 * Each ring first moves RF_RING_BENCH_WARMUP elements untimed (first touches
 * of its memory), and each figure carries line_rtt_ns, the bare cache-line
 * round trip between the two CPUs right after it: the host moves the vCPUs
 * between placements whose transfer costs differ by 4x, and only figures
 * taken on one placement compare the rings.
 */
#include "bench/ring_bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "bench/shim/bench_shim.h"
#include "core/clock/clock.h"
#include "core/event/event.h"
#include "core/ring/ring.h"
#include "rf_build_config.h"

_Static_assert(RF_EVENT_SIZE == RF_RING_BENCH_MAX_ESIZE, "the 64-byte case is one rf_event");

/* --- rf_ring -------------------------------------------------------------- */

static void *rf_bench_create(uint32_t capacity, uint32_t esize)
{
    return rf_ring_create(capacity, esize);
}

static void rf_bench_destroy(void *r)
{
    rf_ring_destroy(r);
}

static inline uint32_t rf_enq8(void *r, const void *objs, uint32_t n)
{
    return rf_ring_enqueue_burst(r, objs, 8, n);
}
static inline uint32_t rf_deq8(void *r, void *objs, uint32_t n)
{
    return rf_ring_dequeue_burst(r, objs, 8, n);
}
static inline uint32_t rf_enq64(void *r, const void *objs, uint32_t n)
{
    return rf_ring_enqueue_burst(r, objs, RF_EVENT_SIZE, n);
}
static inline uint32_t rf_deq64(void *r, void *objs, uint32_t n)
{
    return rf_ring_dequeue_burst(r, objs, RF_EVENT_SIZE, n);
}

/* Not static: ring_bench_hop.c drives the same instances. */
RF_RING_BENCH_IMPL(rf_ring_bench_rf8, 8, rf_bench_create, rf_bench_destroy, rf_enq8, rf_deq8);
RF_RING_BENCH_IMPL(rf_ring_bench_rf64, RF_EVENT_SIZE, rf_bench_create, rf_bench_destroy, rf_enq64,
                   rf_deq64);

/* --- the harness ------------------------------------------------------------ */

struct rf_ring_bench_consumer {
    const rf_ring_bench_impl *impl;
    void *ring;
    uint32_t burst;
    _Atomic bool started;
    alignas(64) _Atomic uint64_t total; /* own line: polled by the consumer when empty */
    uint64_t errors;
    rf_ring_bench_track track; /* the consumer's on-CPU intervals */
};

static bool rf_ring_bench_track_init(rf_ring_bench_track *t, bool consumer)
{
    memset(t, 0, sizeof(*t));
    t->seg_start = t->last_ns = rf_clock_mono_ns();
    if (consumer)
        t->samples = malloc(sizeof(*t->samples) * RF_RING_BENCH_MAX_SAMPLES);
    else
        t->segs = malloc(sizeof(*t->segs) * RF_RING_BENCH_MAX_SEGS);
    return t->samples || t->segs;
}

/* Consumer progress while both threads ran, within [from, to]: the sum over
 * consecutive consumer samples that both lie inside one producer on-CPU
 * interval and are close enough together that the consumer ran in between. */
static void rf_ring_bench_corun(const rf_ring_bench_track *prod, const rf_ring_bench_track *cons,
                                int64_t from, int64_t to, int64_t *ns, uint64_t *items)
{
    *ns = 0;
    *items = 0;
    uint32_t seg = 0;
    for (uint32_t i = 1; i < cons->nsamples; i++) {
        const int64_t t0 = cons->samples[i - 1][0], t1 = cons->samples[i][0];
        if (t0 < from || t1 > to || t1 - t0 > RF_RING_BENCH_GAP_NS)
            continue;
        while (seg < prod->nsegs && prod->segs[seg][1] < t1)
            seg++;
        if (seg == prod->nsegs)
            break;
        if (prod->segs[seg][0] <= t0) {
            *ns += t1 - t0;
            *items += (uint64_t)(cons->samples[i][1] - cons->samples[i - 1][1]);
        }
    }
}

static int rf_ring_bench_pin(pthread_t t, int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(t, sizeof(set), &set);
}

int rf_ring_bench_start_pinned(pthread_t *thread, void *(*fn)(void *), void *arg, cpu_set_t *saved)
{
    pthread_t self = pthread_self();
    pthread_getaffinity_np(self, sizeof(*saved), saved);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cpu_set_t cset;
    CPU_ZERO(&cset);
    CPU_SET(RF_RING_BENCH_CONSUMER_CPU, &cset);
    pthread_attr_setaffinity_np(&attr, sizeof(cset), &cset);
    int rc = 0;
    if (rf_ring_bench_pin(self, RF_RING_BENCH_PRODUCER_CPU) != 0 ||
        pthread_create(thread, &attr, fn, arg) != 0) {
        pthread_setaffinity_np(self, sizeof(*saved), saved);
        rc = -1;
    }
    pthread_attr_destroy(&attr);
    return rc;
}

void rf_ring_bench_join_pinned(pthread_t thread, const cpu_set_t *saved)
{
    pthread_join(thread, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof(*saved), saved);
}

static void *rf_ring_bench_consumer_main(void *arg)
{
    struct rf_ring_bench_consumer *c = arg;
    /* Pairs with the acquire load in rf_ring_bench_run: the producer starts
     * its clock only once this thread is on its CPU and polling. */
    atomic_store_explicit(&c->started, true, memory_order_release);
    c->errors = c->impl->consume(c->ring, c->burst, &c->total, &c->track);
    return NULL;
}

static void rf_ring_bench_run(rf_bench_state *s, const rf_ring_bench_impl *impl)
{
    const uint32_t burst = (uint32_t)rf_bench_arg(s, 0);
    if (burst == 0 || burst > RF_RING_BENCH_MAX_BURST) {
        rf_bench_skip_with_error(s, "burst out of range");
        return;
    }
    struct rf_ring_bench_consumer c = {.impl = impl, .burst = burst};
    atomic_init(&c.started, false);
    atomic_init(&c.total, UINT64_MAX);
    rf_ring_bench_track ptrack;
    c.ring = impl->create(RF_RING_BENCH_CAPACITY, impl->esize);
    if (!c.ring || !rf_ring_bench_track_init(&ptrack, false) ||
        !rf_ring_bench_track_init(&c.track, true)) {
        rf_bench_skip_with_error(s, "ring setup failed");
        return; /* a benchmark process: what failed here is not worth freeing */
    }

    cpu_set_t saved;
    pthread_t consumer;
    if (rf_ring_bench_start_pinned(&consumer, rf_ring_bench_consumer_main, &c, &saved) != 0) {
        impl->destroy(c.ring);
        free(ptrack.segs);
        free(c.track.samples);
        rf_bench_skip_with_error(s, "needs CPUs 0 and 1 for producer and consumer");
        return;
    }
    /* Pairs with the consumer's release store of `started`. */
    while (!atomic_load_explicit(&c.started, memory_order_acquire))
        rf_ring_bench_relax();

    /* Warm-up, untimed: every slot written and read a few times, so that
     * neither ring pays for first touches of its memory (page faults, which
     * take long on this VM) inside the timed region. rf_ring_create zeroes
     * its memory, rte_ring's slots are fresh from the allocator: without
     * this the first lap costs the two rings differently. */
    impl->produce(c.ring, burst, 0, RF_RING_BENCH_WARMUP, &ptrack);
    uint64_t produced = RF_RING_BENCH_WARMUP;
    int64_t t_begin = 0;
    while (rf_bench_keep_running(s)) {
        if (produced == RF_RING_BENCH_WARMUP)
            t_begin = ptrack.seg_start = ptrack.last_ns = rf_clock_mono_ns();
        impl->produce(c.ring, burst, produced, RF_RING_BENCH_CHUNK, &ptrack);
        produced += RF_RING_BENCH_CHUNK;
    }
    ptrack.last_ns = rf_clock_mono_ns();
    rf_ring_bench_close(&ptrack);
    const int64_t t_end = ptrack.last_ns;
    /* Pairs with the consumer's acquire load: it stops once it has taken this
     * many. At most one ring's worth is drained after the clock stopped. */
    atomic_store_explicit(&c.total, produced, memory_order_release);
    rf_ring_bench_join_pinned(consumer, &saved);
    impl->destroy(c.ring);

    rf_bench_set_items_processed(s, (int64_t)(produced - RF_RING_BENCH_WARMUP));
    rf_bench_counter(s, "line_rtt_ns", rf_ring_bench_line_rtt_ns(), false);
    int64_t corun_ns;
    uint64_t corun_items;
    rf_ring_bench_corun(&ptrack, &c.track, t_begin, t_end, &corun_ns, &corun_items);
    if (corun_ns > 0 && !ptrack.overflow && !c.track.overflow) {
        rf_bench_counter(s, "corun_items_per_second", (double)corun_items * 1e9 / corun_ns, false);
        rf_bench_counter(s, "corun_share", (double)corun_ns / (t_end - t_begin), false);
    }
    free(ptrack.segs);
    free(c.track.samples);
    if (c.errors != 0)
        rf_bench_skip_with_error(s, "consumer saw elements out of order");
}

static void bm_ring_rf_8(rf_bench_state *s)
{
    rf_ring_bench_run(s, &rf_ring_bench_rf8);
}
static void bm_ring_rf_64(rf_bench_state *s)
{
    rf_ring_bench_run(s, &rf_ring_bench_rf64);
}
#if RF_HAVE_DPDK
static void bm_ring_rte_8(rf_bench_state *s)
{
    rf_ring_bench_run(s, &rf_ring_bench_rte8);
}
static void bm_ring_rte_64(rf_bench_state *s)
{
    rf_ring_bench_run(s, &rf_ring_bench_rte64);
}
#endif

RF_BENCH_REGISTER(ring_benchmarks)
{
    /* Wall-clock time: the work is split over two threads. Each rf/rte pair
     * is registered back to back so its two members run close in time. */
    static const int64_t bursts[] = {1, 8, 32};
    for (int i = 0; i < 3; i++) {
        rf_bench_register_args_realtime("ring/rf/8B", bm_ring_rf_8, &bursts[i], 1);
#if RF_HAVE_DPDK
        rf_bench_register_args_realtime("ring/rte/8B", bm_ring_rte_8, &bursts[i], 1);
#endif
    }
    for (int i = 0; i < 3; i++) {
        rf_bench_register_args_realtime("ring/rf/64B", bm_ring_rf_64, &bursts[i], 1);
#if RF_HAVE_DPDK
        rf_bench_register_args_realtime("ring/rte/64B", bm_ring_rte_64, &bursts[i], 1);
#endif
    }
}
