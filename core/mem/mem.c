/* Huge tables and node-local allocation (contract in mem.h). */
#include "core/mem/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rf_build_config.h"

#if RF_HAVE_NUMA
#include <numaif.h>
#endif

#define PAGE ((size_t)4096)
/* Node masks as the kernel takes them: CONFIG_NODES_SHIFT is at most 10. */
#define MASK_BITS 1024
#define WORD_BITS (8 * sizeof(unsigned long))
#define MASK_WORDS (MASK_BITS / WORD_BITS)

/* The innermost scope of this thread (NULL: none). Thread-local, so scopes
 * of different threads never meet; no atomics needed. */
static _Thread_local rf_mem_scope *t_scope;

static size_t page_round(size_t n)
{
    return (n + PAGE - 1) & ~(PAGE - 1);
}

int rf_mem_scope_node(void)
{
    return t_scope ? t_scope->node : -1;
}

#if RF_HAVE_NUMA
static void mask_of(int node, unsigned long *mask)
{
    memset(mask, 0, MASK_WORDS * sizeof(unsigned long));
    mask[(unsigned)node / WORD_BITS] |= 1ul << ((unsigned)node % WORD_BITS);
}
#endif

int rf_mem_bind(void *p, size_t size, int node, bool move)
{
#if RF_HAVE_NUMA
    if (node < 0 || node >= MASK_BITS || ((uintptr_t)p & (PAGE - 1)))
        return -EINVAL;
    unsigned long mask[MASK_WORDS];
    mask_of(node, mask);
    /* maxnode + 1: the kernel drops the last bit it is given (libnuma does
     * the same). */
    if (mbind(p, size, MPOL_PREFERRED, mask, MASK_BITS + 1, move ? MPOL_MF_MOVE : 0) != 0)
        return -errno;
    return 0;
#else
    (void)p;
    (void)size;
    (void)node;
    (void)move;
    return -ENOTSUP;
#endif
}

int rf_mem_policy_of(const void *p, int *mode, int *node)
{
#if RF_HAVE_NUMA
    unsigned long mask[MASK_WORDS];
    memset(mask, 0, sizeof(mask));
    int m = 0;
    if (get_mempolicy(&m, mask, MASK_BITS, (void *)p, MPOL_F_ADDR) != 0)
        return -errno;
    *mode = m;
    *node = -1;
    for (int n = 0; n < MASK_BITS; n++)
        if (mask[(unsigned)n / WORD_BITS] >> ((unsigned)n % WORD_BITS) & 1) {
            *node = n;
            break;
        }
    return 0;
#else
    (void)p;
    *mode = 0;
    *node = -1;
    return -ENOTSUP;
#endif
}

/* The thread's policy to `node` (MPOL_PREFERRED), or back to the default for
 * node < 0. Returns 0 or -errno. */
static int set_thread_policy(int node)
{
#if RF_HAVE_NUMA
    if (node < 0)
        return set_mempolicy(MPOL_DEFAULT, NULL, 0) == 0 ? 0 : -errno;
    unsigned long mask[MASK_WORDS];
    mask_of(node, mask);
    return set_mempolicy(MPOL_PREFERRED, mask, MASK_BITS + 1) == 0 ? 0 : -errno;
#else
    (void)node;
    return -ENOTSUP;
#endif
}

static void note_refused(rf_mem_scope *s, int rc)
{
    if (s->refused++ == 0)
        s->refused_errno = -rc;
}

void rf_mem_scope_enter(rf_mem_scope *s)
{
    s->outer = t_scope;
    if (s->node >= 0 || (s->outer && s->outer->node >= 0)) {
        int rc = set_thread_policy(s->node);
        if (rc < 0 && s->node >= 0)
            note_refused(s, rc);
    }
    t_scope = s;
}

void rf_mem_scope_init(rf_mem_scope *s, int node)
{
    memset(s, 0, sizeof(*s));
    s->node = node >= 0 && node < MASK_BITS ? node : -1;
#if RF_HAVE_NUMA
    if (s->node >= 0 && !(t_scope && t_scope->node >= 0)) {
        /* The thread's own policy is in force (no scope set one): if someone
         * chose it (numactl), theirs wins. */
        int mode = MPOL_DEFAULT;
        unsigned long mask[MASK_WORDS];
        if (get_mempolicy(&mode, mask, MASK_BITS, NULL, 0) == 0 && mode != MPOL_DEFAULT) {
            s->kept_policy = true;
            s->node = -1;
        }
    }
#else
    s->node = -1;
#endif
    if (t_scope && t_scope->kept_policy) {
        s->kept_policy = true; /* still not ours to change */
        s->node = -1;
    }
}

void rf_mem_scope_leave(rf_mem_scope *s)
{
    if (t_scope != s)
        return; /* not the innermost: a caller bug, and nothing safe to undo */
    t_scope = s->outer;
    int back = t_scope ? t_scope->node : -1;
    if (s->node >= 0 || back >= 0)
        (void)set_thread_policy(back); /* refused on the way in too, if it fails */
}

static void scope_log(void *p, size_t size, const char *what)
{
    rf_mem_scope *s = t_scope;
    s->regions++;
    s->bytes += size;
    if (s->n_log < RF_MEM_SCOPE_LOG)
        s->log[s->n_log++] = (rf_mem_region){.addr = p, .bytes = size, .what = what};
}

/* A region freed inside the scope that logged it leaves the log: what the
 * log lists is mapped as long as the scope's owner has not freed it. */
static void scope_forget(const void *p)
{
    rf_mem_scope *s = t_scope;
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_log; i++)
        if (s->log[i].addr == p) {
            s->regions--;
            s->bytes -= s->log[i].bytes;
            memmove(&s->log[i], &s->log[i + 1], (s->n_log - i - 1) * sizeof(s->log[0]));
            s->n_log--;
            return;
        }
}

/* A zeroed mapping of size bytes, bound to node (>= 0) before any page of it
 * is touched, and logged when the thread is in a scope. */
static void *map_bound(size_t size, int node, const char *what)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (node >= 0) {
        int rc = rf_mem_bind(p, page_round(size), node, false);
        if (rc < 0) {
            if (t_scope)
                note_refused(t_scope, rc);
        } else if (t_scope) {
            scope_log(p, size, what);
        }
    }
    return p;
}

void *rf_mem_huge_zalloc_at(size_t size, const char *what)
{
    if (size == 0)
        return NULL;
    void *p = map_bound(size, rf_mem_scope_node(), what);
    /* Below one huge page the advice cannot help. */
    if (p && size >= (2u << 20))
        (void)madvise(p, size, MADV_HUGEPAGE);
    return p;
}

void rf_mem_huge_free(void *p, size_t size)
{
    if (!p)
        return;
    scope_forget(p);
    munmap(p, size);
}

void *rf_mem_map_onnode_at(size_t size, int node, const char *what)
{
    return size ? map_bound(size, node, what) : NULL;
}

void *rf_mem_zalloc_at(size_t size, size_t align, const char *what)
{
    if (align == 0 || (align & (align - 1)) || align > PAGE) {
        errno = EINVAL;
        return NULL;
    }
    if (size == 0)
        size = 1; /* a valid pointer, as calloc(1, 0) may not give */
    if (size >= RF_MEM_MAP_MIN)
        return map_bound(size, rf_mem_scope_node(), what);
    if (align <= 16)
        return calloc(1, size);
    void *p = aligned_alloc(align, (size + align - 1) & ~(align - 1));
    if (p)
        memset(p, 0, size);
    return p;
}

void rf_mem_free(void *p, size_t size)
{
    if (!p)
        return;
    if (size == 0)
        size = 1;
    if (size >= RF_MEM_MAP_MIN) {
        scope_forget(p);
        munmap(p, size);
    } else {
        free(p);
    }
}

uint64_t rf_mem_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}
