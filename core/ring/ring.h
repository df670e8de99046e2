/* rf_ring: a lock-free single-producer single-consumer ring of fixed-size elements.
 *
 * Contract
 *   - Exactly one producer thread calls the enqueue functions and exactly one
 *     consumer thread calls the dequeue functions. Any thread may read the
 *     statistics (rf_ring_stats) at any time without stopping either side.
 *   - Capacity is a power of two from 2 to 2^30; every slot is usable (a ring of
 *     capacity 8 holds 8 elements).
 *   - Elements are `esize` bytes, a multiple of 8 from 8 to 256, fixed at init.
 *     The enqueue/dequeue functions take esize as an argument so that, inlined
 *     with a constant, the copy loop is specialised; it must equal the ring's.
 *   - FIFO, no loss, no duplication. "burst" functions move as many elements as
 *     fit (0..n); "bulk" functions move all n or none.
 *   - A full ring never loses anything by itself: the producer decides through
 *     rf_ring_enqueue_policy() (block or drop newest) and every dropped element
 *     is counted in the ring's statistics by policy.
 *
 * Layout (see ring_pvt.h)
 *
 *     producer line: tail (published), cached copy of head, producer counters
 *     (guard line)
 *     consumer line: head (published), cached copy of tail, consumer counters
 *     (guard line)
 *     read-only line: mask, capacity, esize, slots pointer
 *     slots
 *
 *   The unused guard lines keep the two written lines out of one 128-byte
 *   pair, which the adjacent-line prefetchers move as a unit.
 *
 *   Indices are free-running 32-bit counters; slot = index & mask. Each side
 *   reads the other side's index only when its cached copy says the ring is
 *   full (producer) or empty (consumer), so in steady state the two cores share
 *   only the slot lines themselves.
 */
#ifndef RF_CORE_RING_H
#define RF_CORE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ring/ring_pvt.h"

typedef struct rf_ring rf_ring;

/* What a producer does with elements that do not fit. */
enum rf_ring_full_policy {
    RF_RING_BLOCK = 0,       /* wait (spin, then yield) until room or the stop flag is set */
    RF_RING_DROP_NEWEST = 1, /* drop what does not fit now, counted as drops_newest */
};

typedef struct rf_ring_stats {
    uint32_t capacity;
    uint32_t esize;
    uint32_t fill;            /* elements in the ring at the time of reading */
    uint32_t high_water;      /* largest fill observed: by the consumer each time it
                                refreshes its view of tail, and by this read */
    uint64_t enqueued;        /* elements accepted */
    uint64_t dequeued;        /* elements handed to the consumer */
    uint64_t full_events;     /* enqueue calls that could not place every element */
    uint64_t dropped_newest;  /* elements dropped by RF_RING_DROP_NEWEST */
    uint64_t dropped_stopped; /* elements dropped by RF_RING_BLOCK because of shutdown */
    uint64_t block_waits;     /* times RF_RING_BLOCK had to wait for room */
    uint64_t empty_polls;     /* dequeue calls that returned nothing (ring empty, or
                                fewer than a bulk call asked for) */
} rf_ring_stats;

/* Bytes needed for a ring of this capacity and element size, including slots. */
size_t rf_ring_memsize(uint32_t capacity, uint32_t esize);

/* Initialises a ring in `mem` (64-byte aligned, 128 preferred; rf_ring_memsize bytes).
 * Returns 0, or -EINVAL when capacity or esize is out of range. */
int rf_ring_init(rf_ring *r, uint32_t capacity, uint32_t esize);

/* Allocates (64-byte aligned) and initialises a ring. Returns NULL and sets
 * errno (EINVAL, ENOMEM) on failure. */
rf_ring *rf_ring_create(uint32_t capacity, uint32_t esize);
/* What rf_ring_create holds for a ring of this shape: rf_ring_memsize rounded
 * to the 128-byte alignment, with the allocator's rounding and alignment
 * slack (rf_mem_alloc_bound + 128). Every slot is touched as the ring turns
 * over, so this is resident once the ring has been full once. */
size_t rf_ring_memory_bound(uint32_t capacity, uint32_t esize);
void rf_ring_destroy(rf_ring *r);

/* Testing hook: start both indices at `start` (to exercise 32-bit wrap-around).
 * Only valid on an empty ring that no thread is using. */
void rf_ring_reset_indices(rf_ring *r, uint32_t start);

/* Snapshot of the counters; safe from any thread. */
void rf_ring_stats_read(const rf_ring *r, rf_ring_stats *out);

/* Enqueues n elements applying `policy` to what does not fit. With
 * RF_RING_BLOCK it waits until everything is placed or *stop becomes true
 * (then the rest is dropped and counted as dropped_stopped). Returns the
 * number of elements placed. Producer only. */
uint32_t rf_ring_enqueue_policy(rf_ring *r, const void *objs, uint32_t esize, uint32_t n,
                                enum rf_ring_full_policy policy, const _Atomic bool *stop);

/* Producer: place up to n elements; returns how many were placed. */
static inline uint32_t rf_ring_enqueue_burst(rf_ring *r, const void *objs, uint32_t esize,
                                             uint32_t n)
{
    return rf_ring_pvt_enqueue(r, objs, esize, n, false);
}

/* Producer: place all n elements or none; returns n or 0. */
static inline uint32_t rf_ring_enqueue_bulk(rf_ring *r, const void *objs, uint32_t esize,
                                            uint32_t n)
{
    return rf_ring_pvt_enqueue(r, objs, esize, n, true);
}

/* Producer: place one element; returns true when placed. */
static inline bool rf_ring_enqueue(rf_ring *r, const void *obj, uint32_t esize)
{
    return rf_ring_pvt_enqueue(r, obj, esize, 1, true) == 1;
}

/* Consumer: take up to n elements into objs; returns how many were taken. */
static inline uint32_t rf_ring_dequeue_burst(rf_ring *r, void *objs, uint32_t esize, uint32_t n)
{
    return rf_ring_pvt_dequeue(r, objs, esize, n, false);
}

/* Consumer: take exactly n elements or none; returns n or 0. */
static inline uint32_t rf_ring_dequeue_bulk(rf_ring *r, void *objs, uint32_t esize, uint32_t n)
{
    return rf_ring_pvt_dequeue(r, objs, esize, n, true);
}

/* Consumer: take one element; returns true when one was taken. */
static inline bool rf_ring_dequeue(rf_ring *r, void *obj, uint32_t esize)
{
    return rf_ring_pvt_dequeue(r, obj, esize, 1, true) == 1;
}

/* Elements currently in the ring, as seen from any thread (a snapshot). */
static inline uint32_t rf_ring_count(const rf_ring *r)
{
    return rf_ring_pvt_count(r);
}

static inline uint32_t rf_ring_capacity(const rf_ring *r)
{
    return r->capacity;
}

#endif
