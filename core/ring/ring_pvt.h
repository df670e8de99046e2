/* Private inline machinery of rf_ring. Do not include directly: include
 * core/ring/ring.h, whose contract this implements.
 *
 * Synchronisation edges (the only two that exist):
 *   P1 (producer) release-store of tail   pairs with  C1 (consumer) acquire-load of tail:
 *      the slot contents written before P1 are visible to the consumer after C1.
 *   C2 (consumer) release-store of head   pairs with  P2 (producer) acquire-load of head:
 *      the consumer has finished reading the slots it released before the
 *      producer, after P2, overwrites them.
 * Every other atomic access is relaxed: either the index is written only by
 * the thread reading it, or it is a statistics counter with a single writer
 * read by the control thread for display only.
 */
#ifndef RF_CORE_RING_PVT_H
#define RF_CORE_RING_PVT_H

#ifndef RF_CORE_RING_H
#error "include core/ring/ring.h, not ring_pvt.h"
#endif

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/assert/assert.h"
#include "core/stats/stats.h"

#define RF_CACHE_LINE 64

/* Layout: three groups of fields, each on its own cache line and separated
 * by an unused guard line, so that no two lines written by different threads
 * sit in the same 128-byte pair. The L2 adjacent-line ("up/down") prefetchers
 * of current x86 cores fetch a line's buddy along with it; without the guard,
 * the consumer polling `tail` would also pull the line holding `head` into
 * its cache, and the next store to `head` would cost a cross-core
 * invalidation. DPDK's rte_ring pads its head/tail pairs the same way. The
 * slots follow the struct, starting on a line of their own. */
struct rf_ring {
    /* Producer's line: written only by the producer. The consumer reads
     * `tail` (C1) only when its cached view says the ring is empty. */
    alignas(RF_CACHE_LINE) _Atomic uint32_t tail; /* next index to fill; published at P1 */
    uint32_t prod_head_cache;                     /* producer's last view of head */
    _Atomic uint64_t enqueued;
    _Atomic uint64_t full_events;
    _Atomic uint64_t dropped_newest;
    _Atomic uint64_t dropped_stopped;
    _Atomic uint64_t block_waits;
    alignas(RF_CACHE_LINE) uint8_t guard_prod[RF_CACHE_LINE];

    /* Consumer's line: written only by the consumer. The producer reads
     * `head` (P2) only when its cached view says the ring is full. */
    alignas(RF_CACHE_LINE) _Atomic uint32_t head; /* next index to read; published at C2 */
    uint32_t cons_tail_cache;                     /* consumer's last view of tail */
    _Atomic uint32_t high_water;                  /* max fill seen when refreshing the tail view */
    _Atomic uint64_t dequeued;
    _Atomic uint64_t empty_polls;
    alignas(RF_CACHE_LINE) uint8_t guard_cons[RF_CACHE_LINE];

    /* Read-only after init: shared by both sides without bouncing. */
    alignas(RF_CACHE_LINE) uint32_t capacity;
    uint32_t mask;
    uint32_t esize;
    uint8_t *slots;
    bool owns_memory;
};

/* Unaligned, aliasing-safe words for the element copies below. */
typedef uint64_t rf_ring_pvt_w8 __attribute__((aligned(1), may_alias));
typedef uint64_t rf_ring_pvt_w16 __attribute__((vector_size(16), aligned(1), may_alias));

/* Copies n elements of esize bytes. The public calls pass esize as a
 * constant; inlined, a copy of up to RF_RING_PVT_INLINE_COPY bytes (a burst
 * of one event, or of a few small elements) is then a short loop of 16-byte
 * (or 8-byte) moves with no call. Left to memcpy, a constant 64-byte copy
 * became `rep movs` (slow to start: the 64-byte burst-1 path ran at half of
 * rte_ring's speed single-threaded) and every small burst paid for a library
 * call. Larger copies and a run-time esize go to memcpy, which picks the
 * widest vector unit of the machine at run time. The empty asm hides the
 * pointer from GCC's loop-to-memcpy pattern matching and emits nothing. */
#define RF_RING_PVT_INLINE_COPY 64u
static inline void rf_ring_pvt_copy(void *restrict dst, const void *restrict src, uint32_t n,
                                    uint32_t esize)
{
    if (!__builtin_constant_p(esize) || (size_t)n * esize > RF_RING_PVT_INLINE_COPY) {
        memcpy(dst, src, (size_t)n * esize);
    } else if (esize % 16 == 0) {
        rf_ring_pvt_w16 *d = dst;
        const rf_ring_pvt_w16 *s = src;
        for (size_t i = 0, words = (size_t)n * (esize / 16); i < words; i++) {
            d[i] = s[i];
            __asm__("" : "+r"(d));
        }
    } else {
        rf_ring_pvt_w8 *d = dst;
        const rf_ring_pvt_w8 *s = src;
        for (size_t i = 0, words = (size_t)n * (esize / 8); i < words; i++) {
            d[i] = s[i];
            __asm__("" : "+r"(d));
        }
    }
}

static inline uint32_t rf_ring_pvt_enqueue(struct rf_ring *r, const void *objs, uint32_t esize,
                                           uint32_t n, bool all_or_none)
{
    /* The caller's constant must be the ring's (ring.h, "Elements"): a wrong
     * one would copy elements across slot boundaries. */
    RF_ASSERT(esize == r->esize);
    /* Single producer: only this thread writes tail, so relaxed is enough. */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t room = r->capacity - (tail - r->prod_head_cache);
    if (__builtin_expect(room < n, 0)) {
        /* P2: pairs with C2, the consumer's release-store of head. */
        r->prod_head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        room = r->capacity - (tail - r->prod_head_cache);
        if (room < n) {
            rf_stats_add(&r->full_events, 1);
            if (all_or_none || room == 0)
                return 0;
            n = room;
        }
    }

    const uint32_t idx = tail & r->mask;
    const uint32_t first = (r->capacity - idx < n) ? r->capacity - idx : n;
    rf_ring_pvt_copy(r->slots + (size_t)idx * esize, objs, first, esize);
    if (first < n)
        rf_ring_pvt_copy(r->slots, (const uint8_t *)objs + (size_t)first * esize, n - first, esize);

    /* P1: pairs with C1; the slot writes above happen-before the consumer's reads. */
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    rf_stats_add(&r->enqueued, n);
    return n;
}

static inline uint32_t rf_ring_pvt_dequeue(struct rf_ring *r, void *objs, uint32_t esize,
                                           uint32_t n, bool all_or_none)
{
    RF_ASSERT(esize == r->esize); /* as in rf_ring_pvt_enqueue */
    /* Single consumer: only this thread writes head, so relaxed is enough. */
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t avail = r->cons_tail_cache - head;
    if (avail < n) {
        /* C1: pairs with P1, the producer's release-store of tail. */
        r->cons_tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        avail = r->cons_tail_cache - head;
        if (avail > atomic_load_explicit(&r->high_water, memory_order_relaxed))
            atomic_store_explicit(&r->high_water, avail, memory_order_relaxed);
        if (avail < n) {
            if (all_or_none || avail == 0) {
                rf_stats_add(&r->empty_polls, 1);
                return 0;
            }
            n = avail;
        }
    }

    const uint32_t idx = head & r->mask;
    const uint32_t first = (r->capacity - idx < n) ? r->capacity - idx : n;
    rf_ring_pvt_copy(objs, r->slots + (size_t)idx * esize, first, esize);
    if (first < n)
        rf_ring_pvt_copy((uint8_t *)objs + (size_t)first * esize, r->slots, n - first, esize);

    /* C2: pairs with P2; our slot reads above happen-before the producer reuses them. */
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    rf_stats_add(&r->dequeued, n);
    return n;
}

static inline uint32_t rf_ring_pvt_count(const struct rf_ring *r)
{
    /* A snapshot from any thread. The acquire load of head pairs with C2 and
     * keeps the tail load after it, so tail is at least the head we saw and
     * the fill never goes negative; the clamp covers tail moving on by more
     * than the consumer freed between the two loads. */
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    /* Relaxed: only the value matters, no slot contents are read after it. */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t fill = tail - head;
    return fill > r->capacity ? r->capacity : fill;
}

#endif
