/* Large per-core tables: zeroed, lazily paged, backed by transparent huge
 * pages where the kernel allows (its "madvise" mode).
 *
 * For arrays that are touched at random once per event (series index,
 * aggregation states): at a million entries a huge page turns a cache miss
 * plus a page walk into a cache miss. Anonymous mappings are zeroed and paged
 * in on first touch, so reserving capacity costs nothing until it is used,
 * and first touch by the owning worker puts the pages on its NUMA node. */
#ifndef RF_CORE_MEM_H
#define RF_CORE_MEM_H

#include <stddef.h>

/* size bytes of zeroed memory, or NULL. Free with rf_mem_huge_free(p, size). */
void *rf_mem_huge_zalloc(size_t size);
void rf_mem_huge_free(void *p, size_t size);

#endif
