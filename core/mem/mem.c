#include "core/mem/mem.h"

#include <sys/mman.h>

void *rf_mem_huge_zalloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    /* Below one huge page the advice cannot help. */
    if (size >= (2u << 20))
        (void)madvise(p, size, MADV_HUGEPAGE);
    return p;
}

void rf_mem_huge_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}
