/* NUMA topology from sysfs, worker placement, node-local allocation
 * (contract in numa.h). */
#include "numa/numa.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem/mem.h"
#include "rf_build_config.h"

#if RF_HAVE_NUMA
#include <numa.h>
#endif

unsigned rf_numa_cpuset_count(const rf_numa_cpuset *s)
{
    unsigned n = 0;
    for (size_t i = 0; i < RF_NUMA_MAX_CPUS / 64; i++)
        n += (unsigned)__builtin_popcountll(s->bits[i]);
    return n;
}

static void cpuset_add(rf_numa_cpuset *s, unsigned cpu)
{
    s->bits[cpu / 64] |= 1ull << (cpu % 64);
}

static int parse_uint(const char **p, unsigned *out)
{
    if (!isdigit((unsigned char)**p))
        return -EINVAL;
    unsigned long v = 0;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (unsigned long)(**p - '0');
        if (v >= RF_NUMA_MAX_CPUS)
            return -EINVAL;
        (*p)++;
    }
    *out = (unsigned)v;
    return 0;
}

int rf_numa_cpulist_parse(const char *text, rf_numa_cpuset *out)
{
    rf_numa_cpuset s;
    memset(&s, 0, sizeof(s));
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\n' || *p == '\0') {
        *out = s;
        return 0;
    }
    for (;;) {
        unsigned a, b;
        if (parse_uint(&p, &a) < 0)
            return -EINVAL;
        b = a;
        if (*p == '-') {
            p++;
            if (parse_uint(&p, &b) < 0 || b < a)
                return -EINVAL;
        }
        for (unsigned c = a; c <= b; c++)
            cpuset_add(&s, c);
        if (*p == ',') {
            p++;
            continue;
        }
        while (*p == '\n' || *p == ' ')
            p++;
        if (*p != '\0')
            return -EINVAL;
        break;
    }
    *out = s;
    return 0;
}

char *rf_numa_cpulist_format(const rf_numa_cpuset *s, char *buf, size_t size)
{
    size_t off = 0;
    if (size)
        buf[0] = '\0';
    for (unsigned c = 0; c < RF_NUMA_MAX_CPUS; c++) {
        if (!rf_numa_cpuset_has(s, c))
            continue;
        unsigned e = c;
        while (e + 1 < RF_NUMA_MAX_CPUS && rf_numa_cpuset_has(s, e + 1))
            e++;
        int n = e == c ? snprintf(buf + off, off < size ? size - off : 0, "%s%u", off ? "," : "", c)
                       : snprintf(buf + off, off < size ? size - off : 0, "%s%u-%u", off ? "," : "",
                                  c, e);
        if (n > 0)
            off += (size_t)n;
        if (off >= size)
            break;
        c = e;
    }
    return buf;
}

static const char *root_of(const char *root)
{
    return root && root[0] ? root : "";
}

/* Reads a small sysfs file into buf. Returns 0 or -errno. */
static int read_small(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, size - 1, f);
    int e = ferror(f) ? EIO : 0;
    fclose(f);
    if (e)
        return -e;
    buf[n] = '\0';
    return 0;
}

static int cmp_node(const void *a, const void *b)
{
    const rf_numa_node *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int rf_numa_topology_load(const char *root, rf_numa_topology *out, rf_err *err)
{
    static rf_numa_topology t; /* ~9 KiB per node table: not on the stack; control thread */
    memset(&t, 0, sizeof(t));
    const char *r = root_of(root);
    char path[4096], buf[8192];
    snprintf(path, sizeof(path), "%s/sys/devices/system/node", r);
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *de;
        while ((de = readdir(dir))) {
            if (strncmp(de->d_name, "node", 4) != 0 || !isdigit((unsigned char)de->d_name[4]))
                continue;
            char *end;
            long id = strtol(de->d_name + 4, &end, 10);
            if (*end != '\0' || id < 0 || id > 1 << 20)
                continue;
            if (t.n_nodes == RF_NUMA_MAX_NODES) {
                closedir(dir);
                return rf_err_set(err, EINVAL, "numa: more than %d nodes in %s", RF_NUMA_MAX_NODES,
                                  path);
            }
            snprintf(path, sizeof(path), "%s/sys/devices/system/node/%s/cpulist", r, de->d_name);
            int rc = read_small(path, buf, sizeof(buf));
            rf_numa_node *n = &t.nodes[t.n_nodes];
            if (rc < 0 || rf_numa_cpulist_parse(buf, &n->cpus) < 0) {
                closedir(dir);
                return rf_err_set(err, rc < 0 ? -rc : EINVAL, "numa: %s: %s", path,
                                  rc < 0 ? strerror(-rc) : "not a cpulist");
            }
            n->id = (int)id;
            n->n_cpus = rf_numa_cpuset_count(&n->cpus);
            t.n_nodes++;
        }
        closedir(dir);
    }
    if (t.n_nodes > 0) {
        qsort(t.nodes, t.n_nodes, sizeof(t.nodes[0]), cmp_node);
        t.from_nodes = true;
    } else {
        /* Kernels without CONFIG_NUMA have no node directory: one node. */
        snprintf(path, sizeof(path), "%s/sys/devices/system/cpu/online", r);
        int rc = read_small(path, buf, sizeof(buf));
        if (rc < 0)
            return rf_err_set(err, -rc, "numa: neither %s/sys/devices/system/node/node* nor %s: %s",
                              r, path, strerror(-rc));
        if (rf_numa_cpulist_parse(buf, &t.nodes[0].cpus) < 0)
            return rf_err_set(err, EINVAL, "numa: %s: not a cpulist", path);
        t.nodes[0].id = 0;
        t.nodes[0].n_cpus = rf_numa_cpuset_count(&t.nodes[0].cpus);
        t.n_nodes = 1;
    }
    for (unsigned i = 0; i < t.n_nodes; i++)
        for (size_t w = 0; w < RF_NUMA_MAX_CPUS / 64; w++)
            t.online.bits[w] |= t.nodes[i].cpus.bits[w];
    *out = t;
    return 0;
}

int rf_numa_node_of_cpu(const rf_numa_topology *t, unsigned cpu)
{
    for (unsigned i = 0; i < t->n_nodes; i++)
        if (rf_numa_cpuset_has(&t->nodes[i].cpus, cpu))
            return t->nodes[i].id;
    return -1;
}

static int read_node_file(const char *path, const char *what, int *node, rf_err *err)
{
    char buf[64];
    int rc = read_small(path, buf, sizeof(buf));
    if (rc < 0)
        return rf_err_set(err, -rc, "numa: %s: %s (%s)", what, strerror(-rc), path);
    char *end;
    long v = strtol(buf, &end, 10);
    while (*end == '\n' || *end == ' ')
        end++;
    if (end == buf || *end != '\0' || v < -1 || v >= RF_NUMA_MAX_NODES * 1024)
        return rf_err_set(err, EINVAL, "numa: %s: unexpected numa_node '%.16s'", what, buf);
    *node = (int)v;
    return 0;
}

static bool safe_name(const char *s)
{
    return s && s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

int rf_numa_netdev_node(const char *root, const char *ifname, int *node, rf_err *err)
{
    if (!safe_name(ifname))
        return rf_err_set(err, EINVAL, "numa: bad interface name '%s'", ifname ? ifname : "");
    char path[4096], what[128];
    snprintf(path, sizeof(path), "%s/sys/class/net/%s/device/numa_node", root_of(root), ifname);
    snprintf(what, sizeof(what), "interface %s", ifname);
    return read_node_file(path, what, node, err);
}

int rf_numa_pci_node(const char *root, const char *bdf, int *node, rf_err *err)
{
    if (!safe_name(bdf))
        return rf_err_set(err, EINVAL, "numa: bad PCI address '%s'", bdf ? bdf : "");
    char path[4096], what[128];
    snprintf(path, sizeof(path), "%s/sys/bus/pci/devices/%s/numa_node", root_of(root), bdf);
    snprintf(what, sizeof(what), "PCI device %s", bdf);
    return read_node_file(path, what, node, err);
}

int rf_numa_addr_node(const char *root, const char *address, int *node, char *ifname,
                      size_t ifname_size, rf_err *err)
{
    struct in_addr a4;
    struct in6_addr a6;
    int family;
    if (address && inet_pton(AF_INET, address, &a4) == 1)
        family = AF_INET;
    else if (address && inet_pton(AF_INET6, address, &a6) == 1)
        family = AF_INET6;
    else
        return rf_err_set(err, EINVAL, "numa: '%s' is not an IPv4 or IPv6 address",
                          address ? address : "");
    if ((family == AF_INET && a4.s_addr == htonl(INADDR_ANY)) ||
        (family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a6)))
        return rf_err_set(err, ENOENT, "numa: %s is on every interface, no one NIC", address);
    struct ifaddrs *list;
    if (getifaddrs(&list) != 0)
        return rf_err_set(err, errno, "numa: listing the interfaces: %s", strerror(errno));
    char name[IF_NAMESIZE] = "";
    for (const struct ifaddrs *i = list; i && !name[0]; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != family)
            continue;
        bool same =
            family == AF_INET
                ? ((const struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a4.s_addr
                : !memcmp(&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &a6, sizeof(a6));
        if (same)
            snprintf(name, sizeof(name), "%s", i->ifa_name);
    }
    freeifaddrs(list);
    if (!name[0])
        return rf_err_set(err, ENOENT, "numa: no interface has the address %s", address);
    if (ifname_size)
        snprintf(ifname, ifname_size, "%s", name);
    int rc = rf_numa_netdev_node(root, name, node, err);
    if (rc == -ENOENT)
        return rf_err_set(err, ENOENT, "numa: %s (%s) has no device node (loopback or virtual)",
                          name, address);
    return rc;
}

static const rf_numa_node *find_node(const rf_numa_topology *t, int id)
{
    for (unsigned i = 0; i < t->n_nodes; i++)
        if (t->nodes[i].id == id)
            return &t->nodes[i];
    return NULL;
}

/* Appends node n's CPUs in the rule's order (ascending, CPU 0 last). */
static uint32_t append_node(const rf_numa_node *n, uint16_t *order, uint32_t len)
{
    for (unsigned c = 1; c < RF_NUMA_MAX_CPUS; c++)
        if (rf_numa_cpuset_has(&n->cpus, c))
            order[len++] = (uint16_t)c;
    if (rf_numa_cpuset_has(&n->cpus, 0))
        order[len++] = 0;
    return len;
}

int rf_numa_place(const rf_numa_topology *t, const rf_numa_request *req, rf_numa_placement *out,
                  rf_err *err)
{
    if (req->workers == 0 || req->workers > RF_NUMA_MAX_WORKERS)
        return rf_err_set(err, EINVAL, "numa: %u workers (1..%d)", req->workers,
                          RF_NUMA_MAX_WORKERS);
    rf_numa_placement p;
    memset(&p, 0, sizeof(p));
    p.workers = req->workers;
    p.nic_node = req->nic_node >= 0 && find_node(t, req->nic_node) ? req->nic_node : -1;

    if (req->cpus && req->n_cpus) {
        if (req->n_cpus < req->workers)
            return rf_err_set(err, EINVAL, "numa: %u CPUs listed for %u workers (one each)",
                              req->n_cpus, req->workers);
        rf_numa_cpuset seen;
        memset(&seen, 0, sizeof(seen));
        for (uint32_t i = 0; i < req->workers; i++) {
            unsigned c = req->cpus[i];
            if (!rf_numa_cpuset_has(&t->online, c))
                return rf_err_set(err, EINVAL, "numa: CPU %u (worker %u) is not online", c, i);
            if (rf_numa_cpuset_has(&seen, c))
                return rf_err_set(err, EINVAL, "numa: CPU %u is listed twice", c);
            cpuset_add(&seen, c);
            p.cpu[i] = (uint16_t)c;
        }
        p.from_overrides = true;
    } else {
        static uint16_t order[RF_NUMA_MAX_CPUS]; /* control thread only */
        uint32_t len = 0;
        const rf_numa_node *nic = p.nic_node >= 0 ? find_node(t, p.nic_node) : NULL;
        if (nic)
            len = append_node(nic, order, len);
        for (unsigned i = 0; i < t->n_nodes; i++)
            if (&t->nodes[i] != nic)
                len = append_node(&t->nodes[i], order, len);
        if (len == 0)
            return rf_err_set(err, EINVAL, "numa: the topology lists no CPU");
        for (uint32_t i = 0; i < p.workers; i++)
            p.cpu[i] = order[i % len];
        p.oversubscribed = p.workers > len;
    }
    for (uint32_t i = 0; i < p.workers; i++) {
        p.node[i] = (int16_t)rf_numa_node_of_cpu(t, p.cpu[i]);
        if (p.nic_node >= 0 && p.node[i] != p.nic_node)
            p.off_nic_node++;
    }
    *out = p;
    return 0;
}

int rf_numa_placement_report(const rf_numa_topology *t, const rf_numa_placement *p, char *buf,
                             size_t size)
{
    size_t off = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int n_ =                                                                                   \
            snprintf(buf + (off < size ? off : size), off < size ? size - off : 0, __VA_ARGS__);   \
        if (n_ > 0)                                                                                \
            off += (size_t)n_;                                                                     \
    } while (0)
    if (size)
        buf[0] = '\0';
    PUT("numa: %u node%s (", t->n_nodes, t->n_nodes == 1 ? "" : "s");
    for (unsigned i = 0; i < t->n_nodes; i++) {
        char cl[256];
        PUT("%snode%d cpus %s", i ? ", " : "", t->nodes[i].id,
            rf_numa_cpulist_format(&t->nodes[i].cpus, cl, sizeof(cl)));
    }
    PUT(")");
    if (p->nic_node >= 0)
        PUT("; nic node %d", p->nic_node);
    else
        PUT("; nic node unknown");
    PUT("; rule: %s", p->from_overrides ? "cpus from configuration" : "nic node first, cpu0 last");
    PUT("; workers");
    for (uint32_t i = 0; i < p->workers; i++)
        PUT(" w%u=cpu%u/node%d", i, p->cpu[i], p->node[i]);
    if (p->oversubscribed)
        PUT("; oversubscribed (more workers than CPUs)");
    if (p->off_nic_node)
        PUT("; %u worker%s off the nic node", p->off_nic_node, p->off_nic_node == 1 ? "" : "s");
    PUT("; libnuma: %s", rf_numa_available() ? "yes" : "no (first-touch)");
#undef PUT
    return (int)off;
}

bool rf_numa_available(void)
{
#if RF_HAVE_NUMA
    /* Cached; pairs with nothing: numa_available() gives every thread the
     * same answer, so a race only computes it twice. */
    static _Atomic int avail = -2;
    int a = atomic_load_explicit(&avail, memory_order_relaxed);
    if (a == -2) {
        a = numa_available();
        atomic_store_explicit(&avail, a, memory_order_relaxed);
    }
    return a >= 0;
#else
    return false;
#endif
}

void *rf_numa_alloc_onnode(size_t size, int node)
{
    if (size == 0)
        return NULL;
    /* core/mem: mmap + mbind(MPOL_PREFERRED) before any page is touched;
     * numa_alloc_onnode would bind strictly (see numa.h, "Memory"). */
    return rf_mem_map_onnode_at(size, node >= 0 && rf_numa_available() ? node : -1,
                                "rf_numa_alloc_onnode");
}

void rf_numa_free(void *p, size_t size)
{
    rf_mem_huge_free(p, size); /* munmap, and out of the scope's log */
}
