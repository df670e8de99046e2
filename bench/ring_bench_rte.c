/* DPDK's rte_ring as the reference in the ring benchmarks (see ring_bench.h).
 * The only file compiled with DPDK's flags. The ring is SP/SC, set up with
 * rte_ring_init on ordinary aligned memory (no EAL), and driven through the
 * SP/SC `_elem` burst calls, which is what rte_ring_enqueue_burst_elem
 * resolves to for a ring created with RING_F_SP_ENQ | RING_F_SC_DEQ. */
#include "bench/ring_bench.h"

#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <stdlib.h>

static void *rte_bench_create(uint32_t capacity, uint32_t esize)
{
    ssize_t size = rte_ring_get_memsize_elem(esize, capacity);
    if (size < 0)
        return NULL;
    /* 128-byte aligned, as rf_ring_create aligns rf_ring: both rings then
     * sit the same way against the 128-byte line pairs that the adjacent-line
     * prefetchers move together (rte_ring's guard lines assume no more than
     * 64-byte alignment, so this costs it nothing). */
    const size_t align = 2 * RTE_CACHE_LINE_SIZE;
    size_t alloc = ((size_t)size + align - 1) & ~(align - 1);
    struct rte_ring *r = aligned_alloc(align, alloc);
    if (!r)
        return NULL;
    /* count = capacity slots; without RING_F_EXACT_SZ one of them stays empty. */
    if (rte_ring_init(r, "rf_bench", capacity, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

static void rte_bench_destroy(void *r)
{
    free(r);
}

static inline uint32_t rte_enq8(void *r, const void *objs, uint32_t n)
{
    return rte_ring_sp_enqueue_burst_elem(r, objs, 8, n, NULL);
}
static inline uint32_t rte_deq8(void *r, void *objs, uint32_t n)
{
    return rte_ring_sc_dequeue_burst_elem(r, objs, 8, n, NULL);
}
static inline uint32_t rte_enq64(void *r, const void *objs, uint32_t n)
{
    return rte_ring_sp_enqueue_burst_elem(r, objs, 64, n, NULL);
}
static inline uint32_t rte_deq64(void *r, void *objs, uint32_t n)
{
    return rte_ring_sc_dequeue_burst_elem(r, objs, 64, n, NULL);
}

RF_RING_BENCH_IMPL(rf_ring_bench_rte8, 8, rte_bench_create, rte_bench_destroy, rte_enq8, rte_deq8);
RF_RING_BENCH_IMPL(rf_ring_bench_rte64, 64, rte_bench_create, rte_bench_destroy, rte_enq64,
                   rte_deq64);
