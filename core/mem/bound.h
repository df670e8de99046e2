/* What allocations cost at most, for the memory bounds each module states
 * next to the code that allocates (rf_store_memory_bound, ...; summed by
 * daemon/memory_budget.h). Header only. */
#ifndef RF_CORE_MEM_BOUND_H
#define RF_CORE_MEM_BOUND_H

/* What one allocation of `bytes` can cost, at most, with the process's
 * allocator, for the modules' memory bounds (e.g. rf_store_memory_bound):
 * mimalloc rounds a request up to its size class (classes are at most 1/8
 * apart), glibc adds a header and rounds to 16. */
static inline unsigned long long rf_mem_alloc_bound(unsigned long long bytes)
{
    return bytes + bytes / 8 + 16;
}
/* rf_mem_huge_zalloc(size) at most: all of it, in whole pages (2 MiB ones
 * from 2 MiB up: one touched byte can bring in a whole huge page). */
static inline unsigned long long rf_mem_huge_bound(unsigned long long size)
{
    const unsigned long long page = size >= (2ull << 20) ? (2ull << 20) : 4096ull;
    return (size + page - 1) & ~(page - 1);
}

#endif
