/* rf_ring construction, statistics and the full-ring policies. The hot
 * enqueue/dequeue paths are inline in ring_pvt.h. */
#include "core/ring/ring.h"

#include "core/mem/bound.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "core/mem/mem.h"

static bool rf_ring_params_valid(uint32_t capacity, uint32_t esize)
{
    if (capacity < 2 || capacity > (1u << 30) || (capacity & (capacity - 1)) != 0)
        return false;
    if (esize < 8 || esize > 256 || esize % 8 != 0)
        return false;
    return true;
}

size_t rf_ring_memsize(uint32_t capacity, uint32_t esize)
{
    if (!rf_ring_params_valid(capacity, esize))
        return 0;
    return sizeof(struct rf_ring) + (size_t)capacity * esize;
}

static void rf_ring_setup(rf_ring *r, uint32_t capacity, uint32_t esize, uint8_t *slots)
{
    memset(r, 0, sizeof(*r));
    r->capacity = capacity;
    r->mask = capacity - 1;
    r->esize = esize;
    r->slots = slots;
    atomic_init(&r->tail, 0);
    atomic_init(&r->head, 0);
}

int rf_ring_init(rf_ring *r, uint32_t capacity, uint32_t esize)
{
    if (!r || !rf_ring_params_valid(capacity, esize))
        return -EINVAL;
    rf_ring_setup(r, capacity, esize, (uint8_t *)(r + 1));
    return 0;
}

rf_ring *rf_ring_create(uint32_t capacity, uint32_t esize)
{
    size_t size = rf_ring_memsize(capacity, esize);
    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    /* 128-byte aligned: the producer's line then pairs with its guard line,
     * not with whatever the allocator placed before the ring (see ring_pvt.h).
     * Through core/mem: in an allocation scope a ring of RF_MEM_MAP_MIN bytes
     * or more is a mapping bound to the scope's node (the engine creates each
     * inbound ring in its consumer's scope), whoever writes its slots first. */
    const size_t align = 2 * RF_CACHE_LINE;
    size = (size + align - 1) & ~(align - 1);
    rf_ring *r = rf_mem_zalloc_at(size, align, "rf_ring_create");
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    rf_ring_setup(r, capacity, esize, (uint8_t *)(r + 1));
    r->owns_memory = true;
    return r;
}

size_t rf_ring_memory_bound(uint32_t capacity, uint32_t esize)
{
    const size_t align = 2 * RF_CACHE_LINE;
    size_t size = (rf_ring_memsize(capacity, esize) + align - 1) & ~(align - 1);
    return (size_t)rf_mem_alloc_bound(size) + align;
}

void rf_ring_destroy(rf_ring *r)
{
    if (r && r->owns_memory) {
        /* The size rf_ring_create allocated: rf_mem_free needs it. */
        const size_t align = 2 * RF_CACHE_LINE;
        rf_mem_free(r, (rf_ring_memsize(r->capacity, r->esize) + align - 1) & ~(align - 1));
    }
}

void rf_ring_reset_indices(rf_ring *r, uint32_t start)
{
    atomic_store_explicit(&r->tail, start, memory_order_relaxed);
    atomic_store_explicit(&r->head, start, memory_order_relaxed);
    r->prod_head_cache = start;
    r->cons_tail_cache = start;
}

void rf_ring_stats_read(const rf_ring *r, rf_ring_stats *out)
{
    /* Every counter has a single writer; relaxed loads give a recent value of
     * each. The set is not a consistent snapshot, which display does not need. */
    out->capacity = r->capacity;
    out->esize = r->esize;
    out->fill = rf_ring_pvt_count(r);
    out->high_water = atomic_load_explicit(&r->high_water, memory_order_relaxed);
    if (out->fill > out->high_water) /* a ring nobody drains is still seen filling */
        out->high_water = out->fill;
    out->enqueued = atomic_load_explicit(&r->enqueued, memory_order_relaxed);
    out->dequeued = atomic_load_explicit(&r->dequeued, memory_order_relaxed);
    out->full_events = atomic_load_explicit(&r->full_events, memory_order_relaxed);
    out->dropped_newest = atomic_load_explicit(&r->dropped_newest, memory_order_relaxed);
    out->dropped_stopped = atomic_load_explicit(&r->dropped_stopped, memory_order_relaxed);
    out->block_waits = atomic_load_explicit(&r->block_waits, memory_order_relaxed);
    out->empty_polls = atomic_load_explicit(&r->empty_polls, memory_order_relaxed);
}

uint32_t rf_ring_enqueue_policy(rf_ring *r, const void *objs, uint32_t esize, uint32_t n,
                                enum rf_ring_full_policy policy, const _Atomic bool *stop)
{
    const uint8_t *p = objs;
    uint32_t placed = rf_ring_enqueue_burst(r, p, esize, n);
    if (placed == n)
        return placed;

    if (policy == RF_RING_DROP_NEWEST) {
        rf_stats_add(&r->dropped_newest, n - placed);
        return placed;
    }

    rf_stats_add(&r->block_waits, 1);
    unsigned spins = 0;
    while (placed < n) {
        /* Pairs with whoever sets *stop (a release store on shutdown); we only
         * need to see it eventually, so relaxed is enough. */
        if (stop && atomic_load_explicit(stop, memory_order_relaxed)) {
            rf_stats_add(&r->dropped_stopped, n - placed);
            return placed;
        }
        uint32_t got = rf_ring_enqueue_burst(r, p + (size_t)placed * esize, esize, n - placed);
        placed += got;
        if (got == 0 && ++spins > 64) {
            sched_yield();
            spins = 0;
        }
    }
    return placed;
}
