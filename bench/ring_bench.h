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

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/clock/clock.h"

#define RF_RING_BENCH_CAPACITY 4096u   /* slots per ring, for both rings */
#define RF_RING_BENCH_CHUNK (1u << 16) /* elements produced per timed iteration */
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
    const rf_ring_bench_impl name = {ESIZE, create_fn, destroy_fn, name##_produce, name##_consume}

/* rte_ring instances, defined in ring_bench_rte.c when DPDK is available. */
extern const rf_ring_bench_impl rf_ring_bench_rte8, rf_ring_bench_rte64;

#endif
