/* Shared machinery of the cross-core ring throughput benchmarks.
 *
 * One harness (ring_bench.c) drives every ring implementation the same way:
 * the benchmark thread is pinned to CPU 0 and produces, a consumer thread
 * pinned to CPU 1 consumes, both in bursts of the benchmark's argument. Each
 * timed iteration produces RF_RING_BENCH_CHUNK elements, so the shim's
 * per-iteration cost is amortised over tens of thousands of ring operations,
 * and the consumer runs alongside for the whole timed region.
 *
 * An implementation (rf_ring in ring_bench.c, DPDK's rte_ring in
 * ring_bench_rte.c, which alone is compiled with DPDK's flags) provides one
 * rf_ring_bench_impl per element size. Its produce/consume functions are
 * instances of the always-inline loops below with a constant element size and
 * the ring's burst calls inlined, so both rings run the identical loop and
 * differ only in the ring code. Each element's first 8 bytes carry a sequence
 * number that the consumer checks: the benchmark also proves FIFO order.
 */
#ifndef RF_BENCH_RING_BENCH_H
#define RF_BENCH_RING_BENCH_H

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/clock/clock.h"

#define RF_RING_BENCH_CAPACITY 4096u   /* slots per ring, for both rings */
#define RF_RING_BENCH_CHUNK (1u << 16) /* elements produced per timed iteration */
#define RF_RING_BENCH_WARMUP (4u * RF_RING_BENCH_CAPACITY) /* untimed elements first */
#define RF_RING_BENCH_MAX_BURST 32u
#define RF_RING_BENCH_MAX_ESIZE 64u
#define RF_RING_BENCH_TICK_ELEMS 256u /* elements (burst * calls) between two clock reads */
#define RF_RING_BENCH_GAP_NS 100000   /* a longer pause means the thread was off its CPU */
#define RF_RING_BENCH_MAX_SEGS (1u << 16)
#define RF_RING_BENCH_MAX_SAMPLES (1u << 22)

/* On-CPU time of the benchmark threads. On a machine shared with other work
 * a pinned thread is often descheduled; while either side is off its CPU the
 * ring moves at most one ring's worth, so wall-clock items/s mostly measures
 * how often the two threads happened to run at once. Each thread reads the
 * clock every RF_RING_BENCH_TICK_ELEMS / burst ring calls: the producer keeps the
 * intervals it was on its CPU (a gap over RF_RING_BENCH_GAP_NS between two
 * reads is time off it), the consumer keeps (time, elements taken) samples.
 * The harness adds up the consumer's progress between consecutive samples
 * that lie inside one producer interval: elements moved per second while
 * both threads ran. On a quiet machine it equals the wall-clock figure. */
typedef struct rf_ring_bench_track {
    int64_t seg_start, last_ns;
    uint32_t nsegs, nsamples;
    bool overflow;
    int64_t (*segs)[2];    /* producer: [start, end] intervals, in time order */
    int64_t (*samples)[2]; /* consumer: [time, elements taken], in time order */
} rf_ring_bench_track;

/* Records the interval in progress as ending at the last clock read. */
static inline void rf_ring_bench_close(rf_ring_bench_track *t)
{
    if (!t->segs)
        return;
    if (t->nsegs < RF_RING_BENCH_MAX_SEGS) {
        t->segs[t->nsegs][0] = t->seg_start;
        t->segs[t->nsegs][1] = t->last_ns;
        t->nsegs++;
    } else {
        t->overflow = true;
    }
}

static inline void rf_ring_bench_tick(rf_ring_bench_track *t, uint64_t taken)
{
    int64_t now = rf_clock_mono_ns();
    if (t->samples) {
        if (t->nsamples < RF_RING_BENCH_MAX_SAMPLES) {
            t->samples[t->nsamples][0] = now;
            t->samples[t->nsamples][1] = (int64_t)taken;
            t->nsamples++;
        } else {
            t->overflow = true;
        }
    } else if (now - t->last_ns > RF_RING_BENCH_GAP_NS) {
        rf_ring_bench_close(t);
        t->seg_start = now;
    }
    t->last_ns = now;
}

typedef struct rf_ring_bench_impl {
    uint32_t esize;
    /* Returns NULL when the ring cannot be set up. */
    void *(*create)(uint32_t capacity, uint32_t esize);
    void (*destroy)(void *ring);
    /* Producer: enqueues sequence numbers first..first+count-1 in bursts. */
    void (*produce)(void *ring, uint32_t burst, uint64_t first, uint64_t count,
                    rf_ring_bench_track *track);
    /* Consumer: dequeues in bursts until it has taken *total elements (the
     * producer stores *total once it is done; until then it is UINT64_MAX).
     * Returns the number of elements whose sequence number was not the next
     * one expected (0 when FIFO held). */
    uint64_t (*consume)(void *ring, uint32_t burst, const _Atomic uint64_t *total,
                        rf_ring_bench_track *track);
    /* Hop latency (ring_bench_hop.c), the benchmark thread's side: `groups`
     * times RF_RING_BENCH_HOP_GROUP round trips, each sending `burst`
     * elements (sequence numbers from *seq on) into `out` and waiting until
     * `burst` elements have come back on `back`; stores each group's
     * duration in group_ns[]. Returns the number of elements that came back
     * out of order. */
    uint64_t (*ping)(void *out, void *back, uint32_t burst, uint64_t *seq, uint32_t groups,
                     int64_t *group_ns);
    /* The other side: forwards whatever arrives on `in` to `out` as it comes
     * until *stop is set and `in` is empty. */
    void (*echo)(void *in, void *out, uint32_t burst, const _Atomic bool *stop);
} rf_ring_bench_impl;

typedef uint32_t (*rf_ring_bench_enq_fn)(void *ring, const void *objs, uint32_t n);
typedef uint32_t (*rf_ring_bench_deq_fn)(void *ring, void *objs, uint32_t n);

/* Polite spin: tells the core this is a wait loop (and, on SMT, yields the
 * pipeline), the same for every ring. */
static inline void rf_ring_bench_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline __attribute__((always_inline)) void rf_ring_bench_produce_loop(
    void *ring, uint32_t esize, uint32_t burst, uint64_t first, uint64_t count,
    rf_ring_bench_track *track, rf_ring_bench_enq_fn enq)
{
    const uint32_t tick_every = RF_RING_BENCH_TICK_ELEMS / burst;
    uint32_t until_tick = tick_every;
    alignas(64) uint8_t buf[RF_RING_BENCH_MAX_BURST * RF_RING_BENCH_MAX_ESIZE] = {0};
    for (uint64_t done = 0; done < count; done += burst) {
        for (uint32_t i = 0; i < burst; i++) {
            uint64_t seq = first + done + i;
            memcpy(buf + (size_t)i * esize, &seq, sizeof(seq));
        }
        uint32_t placed = 0;
        while (placed < burst) {
            uint32_t got = enq(ring, buf + (size_t)placed * esize, burst - placed);
            if (--until_tick == 0) {
                until_tick = tick_every;
                rf_ring_bench_tick(track, 0);
            }
            if (got == 0)
                rf_ring_bench_relax();
            placed += got;
        }
    }
}

static inline __attribute__((always_inline)) uint64_t rf_ring_bench_consume_loop(
    void *ring, uint32_t esize, uint32_t burst, const _Atomic uint64_t *total,
    rf_ring_bench_track *track, rf_ring_bench_deq_fn deq)
{
    const uint32_t tick_every = RF_RING_BENCH_TICK_ELEMS / burst;
    uint32_t until_tick = tick_every;
    alignas(64) uint8_t buf[RF_RING_BENCH_MAX_BURST * RF_RING_BENCH_MAX_ESIZE];
    uint64_t next = 0, errors = 0;
    for (;;) {
        uint32_t got = deq(ring, buf, burst);
        if (--until_tick == 0) {
            until_tick = tick_every;
            rf_ring_bench_tick(track, next);
        }
        if (got == 0) {
            /* Pairs with the producer's release store of *total after its
             * last enqueue; only checked when the ring looks empty. */
            if (next >= atomic_load_explicit(total, memory_order_acquire))
                return errors;
            rf_ring_bench_relax();
            continue;
        }
        for (uint32_t i = 0; i < got; i++) {
            uint64_t seq;
            memcpy(&seq, buf + (size_t)i * esize, sizeof(seq));
            errors += seq != next;
            next = seq + 1;
        }
    }
}

/* Round trips between two clock reads in the hop benchmark: a clock read on
 * this VM (kvm-clock through the vDSO) costs tens of ns, so it is amortised
 * over several round trips, and the group stays short enough (a few µs) that
 * most groups run with both threads on their CPUs even on a busy machine. */
#define RF_RING_BENCH_HOP_GROUP 16u

/* Places all n elements, retrying after a pause; the rings in the hop
 * benchmark never hold more than one burst, so this only waits when the
 * ring implementation itself refuses. */
static inline __attribute__((always_inline)) void rf_ring_bench_put_all(void *ring,
                                                                        const uint8_t *objs,
                                                                        uint32_t esize, uint32_t n,
                                                                        rf_ring_bench_enq_fn enq)
{
    uint32_t placed = 0;
    while (placed < n) {
        uint32_t got = enq(ring, objs + (size_t)placed * esize, n - placed);
        if (got == 0)
            rf_ring_bench_relax();
        placed += got;
    }
}

static inline __attribute__((always_inline)) uint64_t rf_ring_bench_ping_loop(
    void *out, void *back, uint32_t esize, uint32_t burst, uint64_t *seq, uint32_t groups,
    int64_t *group_ns, rf_ring_bench_enq_fn enq, rf_ring_bench_deq_fn deq)
{
    alignas(64) uint8_t buf[RF_RING_BENCH_MAX_BURST * RF_RING_BENCH_MAX_ESIZE] = {0};
    alignas(64) uint8_t rbuf[RF_RING_BENCH_MAX_BURST * RF_RING_BENCH_MAX_ESIZE];
    uint64_t errors = 0, next = *seq;
    for (uint32_t g = 0; g < groups; g++) {
        const int64_t t0 = rf_clock_mono_ns();
        for (uint32_t k = 0; k < RF_RING_BENCH_HOP_GROUP; k++) {
            for (uint32_t i = 0; i < burst; i++) {
                uint64_t v = next + i;
                memcpy(buf + (size_t)i * esize, &v, sizeof(v));
            }
            rf_ring_bench_put_all(out, buf, esize, burst, enq);
            uint32_t got = 0;
            while (got < burst) {
                uint32_t n = deq(back, rbuf + (size_t)got * esize, burst - got);
                if (n == 0)
                    rf_ring_bench_relax();
                got += n;
            }
            for (uint32_t i = 0; i < burst; i++) {
                uint64_t v;
                memcpy(&v, rbuf + (size_t)i * esize, sizeof(v));
                errors += v != next + i;
            }
            next += burst;
        }
        group_ns[g] = rf_clock_mono_ns() - t0;
    }
    *seq = next;
    return errors;
}

static inline __attribute__((always_inline)) void rf_ring_bench_echo_loop(
    void *in, void *out, uint32_t esize, uint32_t burst, const _Atomic bool *stop,
    rf_ring_bench_enq_fn enq, rf_ring_bench_deq_fn deq)
{
    alignas(64) uint8_t buf[RF_RING_BENCH_MAX_BURST * RF_RING_BENCH_MAX_ESIZE];
    for (;;) {
        uint32_t got = deq(in, buf, burst);
        if (got == 0) {
            /* Pairs with the release store of *stop, made after the last
             * round trip came back: nothing is in flight by then. */
            if (atomic_load_explicit(stop, memory_order_acquire))
                return;
            rf_ring_bench_relax();
            continue;
        }
        rf_ring_bench_put_all(out, buf, esize, got, enq);
    }
}

/* Defines `const rf_ring_bench_impl name` for one element size from the
 * ring's create/destroy and its burst calls (functions of type
 * rf_ring_bench_enq_fn / rf_ring_bench_deq_fn, inlined into the loops). */
#define RF_RING_BENCH_IMPL(name, ESIZE, create_fn, destroy_fn, enq_fn, deq_fn)                     \
    static void name##_produce(void *ring, uint32_t burst, uint64_t first, uint64_t count,         \
                               rf_ring_bench_track *track)                                         \
    {                                                                                              \
        rf_ring_bench_produce_loop(ring, ESIZE, burst, first, count, track, enq_fn);               \
    }                                                                                              \
    static uint64_t name##_consume(void *ring, uint32_t burst, const _Atomic uint64_t *total,      \
                                   rf_ring_bench_track *track)                                     \
    {                                                                                              \
        return rf_ring_bench_consume_loop(ring, ESIZE, burst, total, track, deq_fn);               \
    }                                                                                              \
    static uint64_t name##_ping(void *out, void *back, uint32_t burst, uint64_t *seq,              \
                                uint32_t groups, int64_t *group_ns)                                \
    {                                                                                              \
        return rf_ring_bench_ping_loop(out, back, ESIZE, burst, seq, groups, group_ns, enq_fn,     \
                                       deq_fn);                                                    \
    }                                                                                              \
    static void name##_echo(void *in, void *out, uint32_t burst, const _Atomic bool *stop)         \
    {                                                                                              \
        rf_ring_bench_echo_loop(in, out, ESIZE, burst, stop, enq_fn, deq_fn);                      \
    }                                                                                              \
    const rf_ring_bench_impl name = {ESIZE,          create_fn,   destroy_fn, name##_produce,      \
                                     name##_consume, name##_ping, name##_echo}

/* rf_ring instances, defined in ring_bench.c. */
extern const rf_ring_bench_impl rf_ring_bench_rf8, rf_ring_bench_rf64;
/* rte_ring instances, defined in ring_bench_rte.c when DPDK is available. */
extern const rf_ring_bench_impl rf_ring_bench_rte8, rf_ring_bench_rte64;

#define RF_RING_BENCH_PRODUCER_CPU 0 /* the benchmark thread: producer, or ping */
#define RF_RING_BENCH_CONSUMER_CPU 1 /* the thread it starts: consumer, or echo */

/* Pins the calling thread to `cpu` (keeping its old mask in *saved) and
 * starts `fn` on a thread pinned to the other side's CPU, so that both sides
 * of a benchmark land on the same CPUs for every ring. Returns 0, or -1 with
 * the calling thread's mask restored. */
int rf_ring_bench_start_pinned(pthread_t *thread, void *(*fn)(void *), void *arg, cpu_set_t *saved);
/* Joins the thread and restores the calling thread's CPU mask. */
void rf_ring_bench_join_pinned(pthread_t thread, const cpu_set_t *saved);

/* Median round trip of one cache line between the two benchmark CPUs, ns
 * (ring_bench_hop.c; 0 when the threads cannot be started). Taken beside
 * every throughput figure: the host places the two vCPUs near each other or
 * far apart and may move them during a run (this figure was seen to go from
 * about 460 ns to about 120 ns and back), and a pair of figures taken on
 * different placements is not a comparison of rings. */
double rf_ring_bench_line_rtt_ns(void);

#endif
