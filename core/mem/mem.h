/* Large per-core tables, and node-local allocation of a worker's memory.
 *
 * Huge tables (rf_mem_huge_zalloc): zeroed, lazily paged, backed by
 * transparent huge pages where the kernel allows (its "madvise" mode). For
 * arrays touched at random once per event (series index, aggregation
 * states): at a million entries a huge page turns a cache miss plus a page
 * walk into a cache miss. Anonymous mappings are zeroed and paged in on
 * first touch, so reserving capacity costs nothing until it is used.
 *
 * Node-local allocation (why it is done this way: numa/numa.h, "Memory").
 * A thread enters an allocation scope for a NUMA node; until it leaves:
 *   - every mapping made here (rf_mem_huge_zalloc; rf_mem_zalloc from
 *     RF_MEM_MAP_MIN bytes; rf_ring_create of a ring that large) gets the
 *     VMA policy MPOL_PREFERRED for that node, so its pages land there
 *     whoever touches them first, now or later (ring slots are first written
 *     by the producing peer; lazily paged tables fill as series arrive);
 *   - the thread's own policy is MPOL_PREFERRED for the node too, so heap
 *     pages it faults in meanwhile (the small parts, below RF_MEM_MAP_MIN)
 *     land there when they are new;
 *   - what was bound is logged in the scope (for `show info` and the tests).
 * Preferred, not bound: a full node spills to another instead of failing
 * (MPOL_BIND would end in the OOM killer or SIGBUS). A refused mbind (no
 * libnuma, a kernel without NUMA, a seccomp filter) is counted in the scope
 * and leaves the memory to first touch; it never fails an allocation. A
 * thread whose policy was not the default when it entered (ringflowd run
 * under numactl) keeps it: the scope binds nothing and says so.
 * Outside a scope nothing is bound: memory goes where first touch puts it.
 *
 * Scopes are entered per thread and nest; the log lives in the caller's
 * struct, and a scope can be entered again to add to it. Not
 * for the hot path: allocation is start-up and reload work. */
#ifndef RF_CORE_MEM_H
#define RF_CORE_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* size bytes of zeroed memory (page-aligned, its own mapping), or NULL; in a
 * scope, bound to its node. Free with rf_mem_huge_free(p, size). `what` names
 * the allocation in the scope's log; the macro passes the calling function. */
void *rf_mem_huge_zalloc_at(size_t size, const char *what);
#define rf_mem_huge_zalloc(size) rf_mem_huge_zalloc_at((size), __func__)
void rf_mem_huge_free(void *p, size_t size);

/* An allocation of a worker's structures: size bytes, zeroed, aligned to
 * `align` (a power of two, at most 4096). From RF_MEM_MAP_MIN bytes it is a
 * mapping of its own (whole pages: at most 1/16 more than asked), bound to
 * the scope's node in a scope; below, the heap. Free with rf_mem_free(p,
 * size) with the same size (it decides which of the two it was). NULL on
 * failure (errno ENOMEM, or EINVAL for a bad align). */
#define RF_MEM_MAP_MIN ((size_t)64 << 10)
void *rf_mem_zalloc_at(size_t size, size_t align, const char *what);
#define rf_mem_zalloc(size, align) rf_mem_zalloc_at((size), (align), __func__)
void rf_mem_free(void *p, size_t size);

/* A mapping of size bytes bound to `node` explicitly (-1: not bound), logged
 * in the thread's scope if any: for what must be on a node whatever its size
 * (a worker's own struct). Free with rf_mem_huge_free. */
void *rf_mem_map_onnode_at(size_t size, int node, const char *what);

#define RF_MEM_SCOPE_LOG 64
typedef struct rf_mem_region {
    const void *addr;
    size_t bytes;
    const char *what; /* a static string: the allocating function */
} rf_mem_region;

typedef struct rf_mem_scope {
    int node;          /* the node bound to; -1: this scope binds nothing */
    bool kept_policy;  /* the thread had a policy of its own: kept, nothing bound */
    uint32_t regions;  /* mappings bound to node */
    uint64_t bytes;    /* their size (reserved, not necessarily touched) */
    uint32_t refused;  /* binds the kernel refused: left to first touch */
    int refused_errno; /* the first refusal's errno */
    uint32_t n_log;    /* the first RF_MEM_SCOPE_LOG regions, in order */
    rf_mem_region log[RF_MEM_SCOPE_LOG];
    struct rf_mem_scope *outer; /* private: the scope this one is nested in */
} rf_mem_scope;

/* Sets *s up as a scope for `node` (node < 0: a scope that binds nothing),
 * as seen from the calling thread (whose own policy decides kept_policy),
 * without entering it. */
void rf_mem_scope_init(rf_mem_scope *s, int node);
/* Enters *s on the calling thread, as it was left: its node, and its counts
 * and log, to which what is allocated now is added (a worker's store shard
 * at open, its shard later, a ring created on a reload). Always succeeds;
 * what could not be done is counted in *s. */
void rf_mem_scope_enter(rf_mem_scope *s);
/* Leaves it (the innermost one): the thread's policy is what it was. The
 * log stays readable in *s. */
void rf_mem_scope_leave(rf_mem_scope *s);
/* The node the calling thread's allocations are bound to now, -1 for none. */
int rf_mem_scope_node(void);

/* Binds [p, p + size) (page-aligned p) to `node` with MPOL_PREFERRED;
 * `move` also migrates pages already there. Returns 0, -ENOTSUP (built
 * without libnuma), or the kernel's -errno. */
int rf_mem_bind(void *p, size_t size, int node, bool move);
/* The VMA policy at p: 0 and *mode (MPOL_*) and *node (the lowest node in its
 * mask, -1 for none), or -errno. For tests and checks, not the data path. */
int rf_mem_policy_of(const void *p, int *mode, int *node);

/* The calling process's resident set in bytes (/proc/self/statm), or 0 when
 * it cannot be read. A syscall and a file read: for views and tests, never
 * the hot path. */
uint64_t rf_mem_rss_bytes(void);

#endif
