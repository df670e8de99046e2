/* DPDK ports as a UDP source (contract in dpdk.h). The only ingest file built
 * with DPDK's flags; the frame parsing itself is packet_pvt.h (plain C). */
#include "ingest/dpdk/dpdk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/stats/stats.h"
#include "ingest/dpdk/packet_pvt.h"

#define LOG "dpdk"

/* One UDP port bound on a queue. The table is tiny (udp_ports, usually 2):
 * a linear scan over a cache line beats a hash. */
typedef struct rf_dpdk_bind {
    uint16_t udp_port;
    bool set;
    rf_listen_handler handler;
} rf_dpdk_bind;

struct rf_dpdk_queue {
    /* Read-only after open. */
    uint16_t port_id, queue_id;
    uint16_t burst;
    int16_t node;      /* where it was set up (descriptors, state, pool); -1 any */
    bool hw_ip, hw_l4; /* checksum offload enabled on the port */
    uint32_t n_binds;
    rf_dpdk_bind binds[RF_DPDK_MAX_UDP_PORTS];
    /* Single writer: the polling worker, relaxed stores once per burst; read
     * by the control thread with relaxed loads (no ordering with anything
     * else is needed: each counter is a value on its own). */
    _Alignas(64) _Atomic uint64_t counters[RF_DC__COUNT];
};

typedef struct rf_dpdk_port {
    char name[RF_LISTENER_NAME_MAX];
    uint16_t port_id;
    int socket;
    bool started;
    uint16_t want_queues; /* found by rf_dpdk_open_ports, set up by rf_dpdk_start */
    uint16_t n_queues;
    uint32_t n_pools; /* one per node among the queues' workers */
    int pool_node[RF_DPDK_MAX_QUEUES];
    struct rte_mempool *pools[RF_DPDK_MAX_QUEUES];
    rf_dpdk_queue *queues[RF_DPDK_MAX_QUEUES];
} rf_dpdk_port;

struct rf_dpdk {
    rf_dpdk_config cfg;
    uint32_t workers;
    bool started;
    uint32_t n_ports;
    rf_dpdk_port ports[RF_DPDK_MAX_PORTS];
};

/* EAL can be initialised once per process; written by the control thread. */
static bool eal_used;

bool rf_dpdk_built(void)
{
    return true;
}

static const char *const counter_names[RF_DC__COUNT] = {
    [RF_DC_PACKETS] = "packets",
    [RF_DC_DATAGRAMS] = "datagrams",
    [RF_DC_BYTES] = "bytes",
    [RF_DC_BURSTS] = "bursts",
    [RF_DC_CYCLES] = "cycles",
    [RF_DC_DROP_NOT_IP] = "not_ip",
    [RF_DC_DROP_IP_FRAGMENT] = "ip_fragment",
    [RF_DC_DROP_BAD_IP_HEADER] = "bad_ip_header",
    [RF_DC_DROP_BAD_IP_CHECKSUM] = "bad_ip_checksum",
    [RF_DC_DROP_NOT_UDP] = "not_udp",
    [RF_DC_DROP_BAD_UDP_LENGTH] = "bad_udp_length",
    [RF_DC_DROP_BAD_UDP_CHECKSUM] = "bad_udp_checksum",
    [RF_DC_DROP_UNKNOWN_PORT] = "unknown_port",
    [RF_DC_DROP_MULTI_SEGMENT] = "multi_segment",
    [RF_DC_DROP_TRUNCATED] = "truncated",
};

const char *rf_dpdk_counter_name(enum rf_dpdk_counter_id id)
{
    return (unsigned)id < RF_DC__COUNT ? counter_names[id] : "unknown";
}

uint64_t rf_dpdk_queue_counter(const rf_dpdk_queue *q, enum rf_dpdk_counter_id id)
{
    if (!q || (unsigned)id >= RF_DC__COUNT)
        return 0;
    /* Pairs with nothing: see the struct. */
    return atomic_load_explicit(&q->counters[id], memory_order_relaxed);
}

/* ---- EAL ------------------------------------------------------------------ */

typedef struct eal_argv {
    int argc;
    char *argv[RF_DPDK_MAX_EAL_ARGS + RF_DPDK_MAX_VDEVS * 2 + 16];
    char store[RF_DPDK_MAX_EAL_ARGS + RF_DPDK_MAX_VDEVS * 2 + 16][RF_DPDK_ARG_MAX + 16];
} eal_argv;

static void arg_add(eal_argv *a, const char *fmt, const char *val)
{
    if ((size_t)a->argc >= sizeof(a->argv) / sizeof(a->argv[0]) - 1)
        return; /* cannot happen: sized for the config's maxima */
    snprintf(a->store[a->argc], sizeof(a->store[0]), fmt, val);
    a->argv[a->argc] = a->store[a->argc];
    a->argc++;
    a->argv[a->argc] = NULL;
}

static void build_args(const rf_dpdk_config *cfg, eal_argv *a)
{
    a->argc = 0;
    arg_add(a, "%s", "ringflowd");
    if (cfg->lcores[0]) {
        arg_add(a, "--lcores=%s", cfg->lcores);
    } else {
        /* The first CPU we may run on: -l 0 fails where CPU 0 is isolated
         * from us. */
        cpu_set_t set;
        int first = 0;
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &set)) {
                    first = c;
                    break;
                }
        char num[16];
        snprintf(num, sizeof(num), "%d", first);
        arg_add(a, "-l%s", num);
    }
    if (cfg->memory_bytes) {
        char mb[24];
        snprintf(mb, sizeof(mb), "%llu", (unsigned long long)(cfg->memory_bytes >> 20));
        arg_add(a, "-m%s", mb);
    }
    if (!cfg->huge_pages)
        arg_add(a, "%s", "--no-huge");
    if (!cfg->pci)
        arg_add(a, "%s", "--no-pci");
    if (cfg->in_memory)
        /* --in-memory implies hugepage handling that --no-huge (legacy
         * memory) refuses; without hugepages only the shared config files
         * remain to avoid. */
        arg_add(a, "%s", cfg->huge_pages ? "--in-memory" : "--no-shconf");
    else
        arg_add(a, "--file-prefix=%s", cfg->file_prefix);
    for (uint32_t i = 0; i < cfg->n_vdevs; i++)
        arg_add(a, "--vdev=%s", cfg->vdevs[i]);
    for (uint32_t i = 0; i < cfg->n_ports; i++)
        if (cfg->ports[i].vdev[0])
            arg_add(a, "--vdev=%s", cfg->ports[i].vdev);
    for (uint32_t i = 0; i < cfg->n_eal_args; i++)
        arg_add(a, "%s", cfg->eal_args[i]);
}

static void args_text(const eal_argv *a, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 1; i < a->argc && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i > 1 ? " " : "", a->store[i]);
}

static int eal_init(const rf_dpdk_config *cfg, rf_err *err)
{
    if (eal_used)
        return rf_err_set(err, EALREADY,
                          "DPDK: EAL was already initialised in this process (it can be only "
                          "once; restart ringflowd to change dpdk.* EAL settings)");
    eal_used = true;

    static eal_argv a; /* large; control thread only */
    build_args(cfg, &a);
    char text[512];
    args_text(&a, text, sizeof(text));
    rf_log_info(LOG, "EAL init: %s", text);

    /* rte_eal_init pins this thread to the main lcore; keep ours. */
    cpu_set_t saved;
    bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved) == 0;
    int rc = rte_eal_init(a.argc, a.argv);
    int e = rte_errno;
    if (have_saved)
        pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
    if (rc < 0)
        return rf_err_set(err, e ? e : EINVAL,
                          "DPDK: EAL init failed: %s (args: %s) — check hugepages (or set "
                          "dpdk.huge_pages: false), device binding (dpdk-devbind.py), permissions "
                          "(root, or CAP_SYS_ADMIN, CAP_IPC_LOCK, CAP_NET_RAW) and the vdev/PCI "
                          "names",
                          rte_strerror(e), text);
    return 0;
}

/* ---- ports ---------------------------------------------------------------- */

static void list_ports(char *buf, size_t size)
{
    size_t off = 0;
    uint16_t pid;
    buf[0] = '\0';
    RTE_ETH_FOREACH_DEV(pid)
    {
        char name[RTE_ETH_NAME_MAX_LEN];
        if (rte_eth_dev_get_name_by_port(pid, name) == 0 && off < size)
            off += (size_t)snprintf(buf + off, size - off, "%s%u=%s", off ? ", " : "", pid, name);
    }
    if (!buf[0])
        snprintf(buf, size, "none");
}

static int resolve_port(const rf_dpdk_port_config *pc, uint16_t *pid, rf_err *err)
{
    char avail[256];
    if (pc->port_id >= 0) {
        if (!rte_eth_dev_is_valid_port((uint16_t)pc->port_id)) {
            list_ports(avail, sizeof(avail));
            return rf_err_set(err, ENODEV, "DPDK: port %s: no port_id %d (ports: %s)", pc->name,
                              pc->port_id, avail);
        }
        *pid = (uint16_t)pc->port_id;
        return 0;
    }
    char name[RF_DPDK_ARG_MAX];
    const char *src = pc->vdev[0] ? pc->vdev : pc->device;
    size_t n = strcspn(src, ",");
    memcpy(name, src, n);
    name[n] = '\0';
    if (rte_eth_dev_get_port_by_name(name, pid) != 0) {
        list_ports(avail, sizeof(avail));
        return rf_err_set(err, ENODEV,
                          "DPDK: port %s: no ethdev named '%s' (ports: %s) — is the device bound "
                          "to a DPDK driver, or the vdev listed?",
                          pc->name, name, avail);
    }
    return 0;
}

static uint32_t default_mbufs(const rf_dpdk_port_config *pc, uint16_t nq, uint16_t desc)
{
    /* Every RX descriptor holds an mbuf, a burst is in flight per queue, and
     * each lcore cache may hold up to 1.5x its size. */
    uint64_t n = (uint64_t)nq * (desc + pc->burst) + (uint64_t)(nq + 1) * pc->mbuf_cache * 3 / 2;
    uint32_t p = 1024;
    while (p - 1 < n && p < (1u << 24))
        p <<= 1;
    return p - 1; /* 2^k - 1: the pool's ring uses its memory best */
}

/* rf_dpdk_open_ports' half: the device found, its queue count checked. */
static int port_find(rf_dpdk *d, unsigned index, uint32_t workers, rf_err *err)
{
    const rf_dpdk_port_config *pc = &d->cfg.ports[index];
    rf_dpdk_port *p = &d->ports[index];
    memcpy(p->name, pc->name, sizeof(p->name)); /* same size, NUL-terminated */
    int rc = resolve_port(pc, &p->port_id, err);
    if (rc < 0)
        return rc;

    struct rte_eth_dev_info info;
    if ((rc = rte_eth_dev_info_get(p->port_id, &info)) != 0)
        return rf_err_set(err, -rc, "DPDK: port %s: device info: %s", pc->name, rte_strerror(-rc));
    uint16_t nq = pc->rx_queues ? pc->rx_queues : (uint16_t)workers;
    if (nq == 0 || nq > workers || nq > RF_DPDK_MAX_QUEUES)
        return rf_err_set(err, EINVAL,
                          "DPDK: port %s: %u RX queues for %u workers (each queue needs its own "
                          "worker; at most %d)",
                          pc->name, nq, workers, RF_DPDK_MAX_QUEUES);
    if (nq > info.max_rx_queues)
        return rf_err_set(err, EINVAL,
                          "DPDK: port %s (%s): the device has at most %u RX queues, %u asked "
                          "(set rx_queues, or fewer workers)",
                          pc->name, info.driver_name, info.max_rx_queues, nq);
    p->want_queues = nq;
    p->socket = rte_eth_dev_socket_id(p->port_id);
    return 0;
}

/* One pool of the port on `node` (-1: the control thread's socket, as
 * before placement existed); on a node that cannot give one (no hugepages
 * there), any socket, with a warning. */
static struct rte_mempool *pool_create(const rf_dpdk_port *p, const rf_dpdk_port_config *pc,
                                       unsigned i, uint32_t n, int node, int *got_node, rf_err *err)
{
    char pool_name[RTE_MEMPOOL_NAMESIZE];
    snprintf(pool_name, sizeof(pool_name), "rf_rx_%u_%u", p->port_id, i);
    const uint16_t room = (uint16_t)(pc->mbuf_size + RTE_PKTMBUF_HEADROOM);
    int socket = node >= 0 ? node : (int)rte_socket_id();
    struct rte_mempool *mp = rte_pktmbuf_pool_create(pool_name, n, pc->mbuf_cache, 0, room, socket);
    if (!mp && node >= 0) {
        rf_log_warn(LOG,
                    "port %s: no pool of %u mbufs on node %d (%s); taking memory from any "
                    "node: its workers will read packets across the interconnect",
                    pc->name, n, node, rte_strerror(rte_errno));
        socket = SOCKET_ID_ANY;
        mp = rte_pktmbuf_pool_create(pool_name, n, pc->mbuf_cache, 0, room, socket);
    }
    if (!mp) {
        rf_err_set(err, rte_errno ? rte_errno : ENOMEM,
                   "DPDK: port %s: cannot create a pool of %u mbufs of %u bytes on socket %d: %s "
                   "— raise dpdk.memory or the hugepages, or lower mbufs",
                   pc->name, n, pc->mbuf_size, socket, rte_strerror(rte_errno));
        return NULL;
    }
    *got_node = socket == SOCKET_ID_ANY ? -1 : socket;
    return mp;
}

/* rf_dpdk_start's half: configured, a pool per node, queues set up on
 * their workers' nodes, started. */
static int port_start(rf_dpdk *d, unsigned index, const int16_t *worker_node, rf_err *err)
{
    const rf_dpdk_port_config *pc = &d->cfg.ports[index];
    rf_dpdk_port *p = &d->ports[index];
    const uint16_t nq = p->want_queues;
    struct rte_eth_dev_info info;
    int rc;
    if ((rc = rte_eth_dev_info_get(p->port_id, &info)) != 0)
        return rf_err_set(err, -rc, "DPDK: port %s: device info: %s", pc->name, rte_strerror(-rc));

    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    uint64_t rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
    if (pc->rss && nq > 1) {
        if (rss_hf) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = NULL; /* the driver's default key */
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        } else {
            rf_log_warn(LOG,
                        "port %s (%s): no RSS for IP/UDP; each of its %u queues gets what the "
                        "device puts on it",
                        pc->name, info.driver_name, nq);
        }
    }
    bool hw_ip = pc->hw_checksum && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM);
    bool hw_l4 = pc->hw_checksum && (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
    if (hw_ip)
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
    if (hw_l4)
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;

    /* No TX queue: ringflow never transmits on an ingest port. */
    if ((rc = rte_eth_dev_configure(p->port_id, nq, 0, &conf)) != 0)
        return rf_err_set(err, -rc, "DPDK: port %s (%s): configure %u RX queues: %s", pc->name,
                          info.driver_name, nq, rte_strerror(-rc));
    uint16_t desc = pc->rx_descriptors, txd = 0;
    if ((rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &desc, &txd)) != 0)
        return rf_err_set(err, -rc, "DPDK: port %s: descriptor count %u: %s", pc->name,
                          pc->rx_descriptors, rte_strerror(-rc));

    /* A pool per node among the queues' workers (dpdk.h, "Memory"). */
    rf_dpdk_pool_plan plan;
    rf_dpdk_pool_plan_make(nq, worker_node, p->socket, &plan);
    uint32_t total = 0;
    char pools_text[256] = "";
    size_t pt = 0;
    for (uint32_t i = 0; i < plan.n_pools; i++) {
        uint32_t n = pc->mbufs ? rf_dpdk_pool_plan_share(&plan, i, pc->mbufs)
                               : default_mbufs(pc, plan.pool_queues[i], desc);
        p->pools[i] = pool_create(p, pc, i, n, plan.pool_node[i], &p->pool_node[i], err);
        if (!p->pools[i])
            return -ENOMEM;
        p->n_pools = i + 1;
        total += n;
        if (pt < sizeof(pools_text))
            pt += (size_t)snprintf(pools_text + pt, sizeof(pools_text) - pt, "%s%u@node%d",
                                   i ? "," : "", n, p->pool_node[i]);
    }

    struct rte_eth_rxconf rxconf = info.default_rxconf;
    rxconf.offloads = conf.rxmode.offloads;
    for (uint16_t q = 0; q < nq; q++) {
        const uint32_t pi = plan.queue_pool[q];
        /* The node the pool really is on (it may have fallen back). */
        const int node = p->pool_node[pi];
        const int socket = node >= 0 ? node : (int)rte_socket_id();
        if ((rc = rte_eth_rx_queue_setup(p->port_id, q, desc, (unsigned)socket, &rxconf,
                                         p->pools[pi])) != 0)
            return rf_err_set(err, -rc, "DPDK: port %s: RX queue %u setup: %s", pc->name, q,
                              rte_strerror(-rc));
        rf_dpdk_queue *dq = rte_zmalloc_socket("rf_dpdk_queue", sizeof(*dq), 64, socket);
        if (!dq)
            dq = rte_zmalloc_socket("rf_dpdk_queue", sizeof(*dq), 64, SOCKET_ID_ANY);
        if (!dq)
            return rf_err_set(err, ENOMEM, "DPDK: port %s: out of memory for queue %u", pc->name,
                              q);
        dq->port_id = p->port_id;
        dq->queue_id = q;
        dq->burst = pc->burst;
        dq->node = (int16_t)node;
        dq->hw_ip = hw_ip;
        dq->hw_l4 = hw_l4;
        dq->n_binds = d->cfg.n_udp_ports;
        for (uint32_t i = 0; i < d->cfg.n_udp_ports; i++)
            dq->binds[i].udp_port = d->cfg.udp_ports[i].port;
        p->queues[q] = dq;
        p->n_queues = (uint16_t)(q + 1);
    }
    if (pc->promiscuous) {
        rc = rte_eth_promiscuous_enable(p->port_id);
        if (rc != 0 && rc != -ENOTSUP)
            rf_log_warn(LOG, "port %s: promiscuous mode: %s", pc->name, rte_strerror(-rc));
    }
    if ((rc = rte_eth_dev_start(p->port_id)) != 0)
        return rf_err_set(err, -rc, "DPDK: port %s (%s): start: %s", pc->name, info.driver_name,
                          rte_strerror(-rc));
    p->started = true;
    rf_log_info(LOG,
                "port %s up: port_id=%u driver=%s socket=%d rx_queues=%u rss=%s descriptors=%u "
                "mbufs=%u pools=%s csum_offload=%s/%s",
                pc->name, p->port_id, info.driver_name, p->socket, nq,
                conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? "on" : "off", desc, total, pools_text,
                hw_ip ? "ip" : "-", hw_l4 ? "udp" : "-");
    return 0;
}

static void port_close(rf_dpdk_port *p)
{
    if (p->started) {
        rte_eth_dev_stop(p->port_id);
        rte_eth_dev_close(p->port_id);
        p->started = false;
    }
    for (unsigned q = 0; q < p->n_queues; q++)
        rte_free(p->queues[q]);
    p->n_queues = 0;
    for (unsigned i = 0; i < p->n_pools; i++)
        rte_mempool_free(p->pools[i]);
    p->n_pools = 0;
}

int rf_dpdk_open_ports(const rf_dpdk_config *cfg, uint32_t workers, rf_dpdk **out, rf_err *err)
{
    if (cfg->n_ports == 0 || cfg->n_ports > RF_DPDK_MAX_PORTS)
        return rf_err_set(err, EINVAL, "DPDK: no port configured (dpdk.ports)");
    if (workers == 0 || workers > RF_DPDK_MAX_QUEUES)
        return rf_err_set(err, EINVAL, "DPDK: %u workers (1..%d)", workers, RF_DPDK_MAX_QUEUES);
    rf_dpdk *d = calloc(1, sizeof(*d));
    if (!d)
        return rf_err_set(err, ENOMEM, "DPDK: out of memory");
    d->cfg = *cfg;
    d->workers = workers;
    int rc = eal_init(cfg, err);
    if (rc < 0) {
        free(d);
        return rc;
    }
    for (unsigned i = 0; i < cfg->n_ports; i++) {
        d->n_ports = i + 1;
        if ((rc = port_find(d, i, workers, err)) < 0) {
            rf_dpdk_close(d);
            return rc;
        }
    }
    *out = d;
    return 0;
}

int rf_dpdk_start(rf_dpdk *d, const int16_t *worker_node, rf_err *err)
{
    if (d->started)
        return rf_err_set(err, EALREADY, "DPDK: the ports are started already");
    d->started = true;
    for (unsigned i = 0; i < d->n_ports; i++) {
        int rc = port_start(d, i, worker_node, err);
        if (rc < 0) {
            for (unsigned j = 0; j <= i; j++)
                port_close(&d->ports[j]);
            return rc;
        }
    }
    return 0;
}

int rf_dpdk_open(const rf_dpdk_config *cfg, uint32_t workers, rf_dpdk **out, rf_err *err)
{
    rf_dpdk *d;
    int rc = rf_dpdk_open_ports(cfg, workers, &d, err);
    if (rc < 0)
        return rc;
    if ((rc = rf_dpdk_start(d, NULL, err)) < 0) {
        rf_dpdk_close(d);
        return rc;
    }
    *out = d;
    return 0;
}

void rf_dpdk_close(rf_dpdk *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->n_ports; i++)
        port_close(&d->ports[i]);
    rte_eal_cleanup();
    free(d);
}

unsigned rf_dpdk_port_count(const rf_dpdk *d)
{
    return d ? d->n_ports : 0;
}

const char *rf_dpdk_port_name(const rf_dpdk *d, unsigned port)
{
    return d && port < d->n_ports ? d->ports[port].name : NULL;
}

int rf_dpdk_port_numa_node(const rf_dpdk *d, unsigned port)
{
    return d && port < d->n_ports ? d->ports[port].socket : -1;
}

unsigned rf_dpdk_port_pool_count(const rf_dpdk *d, unsigned port)
{
    return d && port < d->n_ports ? d->ports[port].n_pools : 0;
}

int rf_dpdk_port_pool_node(const rf_dpdk *d, unsigned port, unsigned pool)
{
    if (!d || port >= d->n_ports || pool >= d->ports[port].n_pools)
        return -1;
    return d->ports[port].pool_node[pool];
}

int rf_dpdk_queue_numa_node(const rf_dpdk_queue *q)
{
    return q ? q->node : -1;
}

unsigned rf_dpdk_queue_count(const rf_dpdk *d, unsigned port)
{
    return d && port < d->n_ports ? d->ports[port].n_queues : 0;
}

rf_dpdk_queue *rf_dpdk_queue_at(rf_dpdk *d, unsigned port, unsigned queue)
{
    if (!d || port >= d->n_ports || queue >= d->ports[port].n_queues)
        return NULL;
    return d->ports[port].queues[queue];
}

int rf_dpdk_queue_set_handler(rf_dpdk_queue *q, uint16_t udp_port, const rf_listen_handler *h,
                              rf_err *err)
{
    for (uint32_t i = 0; i < q->n_binds; i++)
        if (q->binds[i].udp_port == udp_port) {
            q->binds[i].handler = *h;
            q->binds[i].set = h->on_data != NULL;
            return 0;
        }
    return rf_err_set(err, EINVAL, "DPDK: UDP port %u is not in dpdk.udp_ports", udp_port);
}

int rf_dpdk_port_stats_get(rf_dpdk *d, unsigned port, rf_dpdk_port_stats *out, rf_err *err)
{
    if (!d || port >= d->n_ports)
        return rf_err_set(err, EINVAL, "DPDK: no port %u", port);
    struct rte_eth_stats st;
    int rc = rte_eth_stats_get(d->ports[port].port_id, &st);
    if (rc != 0)
        return rf_err_set(err, -rc, "DPDK: port %s: stats: %s", d->ports[port].name,
                          rte_strerror(-rc));
    *out = (rf_dpdk_port_stats){
        .ipackets = st.ipackets,
        .ibytes = st.ibytes,
        .imissed = st.imissed,
        .ierrors = st.ierrors,
        .rx_nombuf = st.rx_nombuf,
    };
    return 0;
}

int rf_dpdk_thread_register(rf_err *err)
{
    if (rte_lcore_id() != LCORE_ID_ANY)
        return 0; /* already an lcore (the main one, or registered) */
    if (rte_thread_register() != 0)
        return rf_err_set(err, rte_errno,
                          "DPDK: no free lcore id for this thread: %s "
                          "(mempool cache off for it)",
                          rte_strerror(rte_errno));
    return 0;
}

void rf_dpdk_thread_unregister(void)
{
    rte_thread_unregister();
}

/* ---- the poll path ---------------------------------------------------------- */

static inline void counter_add(rf_dpdk_queue *q, enum rf_dpdk_counter_id id, uint64_t n)
{
    rf_stats_add(&q->counters[id], n);
}

static inline unsigned hw_flags(const rf_dpdk_queue *q, uint64_t ol)
{
    unsigned f = 0;
    if (q->hw_ip) {
        uint64_t ip = ol & RTE_MBUF_F_RX_IP_CKSUM_MASK;
        if (ip == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
            f |= RF_PKT_HW_IP_GOOD;
        else if (ip == RTE_MBUF_F_RX_IP_CKSUM_BAD)
            f |= RF_PKT_HW_IP_BAD;
    }
    if (q->hw_l4) {
        uint64_t l4 = ol & RTE_MBUF_F_RX_L4_CKSUM_MASK;
        if (l4 == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
            f |= RF_PKT_HW_L4_GOOD;
        else if (l4 == RTE_MBUF_F_RX_L4_CKSUM_BAD)
            f |= RF_PKT_HW_L4_BAD;
    }
    return f;
}

uint32_t rf_dpdk_queue_poll(rf_dpdk_queue *q, uint32_t max)
{
    struct rte_mbuf *pkts[RF_DPDK_BURST_MAX];
    uint16_t want = q->burst;
    if (max && max < want)
        want = (uint16_t)max;
    uint16_t n = rte_eth_rx_burst(q->port_id, q->queue_id, pkts, want);
    if (n == 0)
        return 0;
    uint64_t t0 = rte_rdtsc();

    rf_listen_chunk chunk = {
        .fd = -1,
        .mono_ns = rf_clock_mono_ns(),
        .wall_ns = rf_clock_wall_ns(),
    };
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    uint64_t c[RF_DC__COUNT] = {0};
    uint32_t touched = 0; /* bit i: binds[i] got data in this burst */

    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = pkts[i];
        if (i + 1 < n)
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], const void *));
        if (unlikely(m->nb_segs != 1)) {
            c[RF_DC_DROP_MULTI_SEGMENT]++;
            continue;
        }
        rf_pkt pk;
        enum rf_dpdk_counter_id v =
            rf_pkt_parse(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m),
                         hw_flags(q, m->ol_flags), &pk);
        if (unlikely(v != RF_DC_DATAGRAMS)) {
            c[v]++;
            continue;
        }
        uint32_t b = 0;
        while (b < q->n_binds && q->binds[b].udp_port != pk.dst_port)
            b++;
        if (unlikely(b == q->n_binds || !q->binds[b].set)) {
            c[RF_DC_DROP_UNKNOWN_PORT]++;
            continue;
        }
        if (pk.family == 4) {
            memcpy(&sin.sin_addr, pk.src_addr, 4);
            sin.sin_port = htons(pk.src_port);
            chunk.peer = (const struct sockaddr *)&sin;
            chunk.peer_len = sizeof(sin);
        } else {
            memcpy(&sin6.sin6_addr, pk.src_addr, 16);
            sin6.sin6_port = htons(pk.src_port);
            chunk.peer = (const struct sockaddr *)&sin6;
            chunk.peer_len = sizeof(sin6);
        }
        chunk.data = (const char *)pk.payload;
        chunk.len = pk.payload_len;
        c[RF_DC_DATAGRAMS]++;
        c[RF_DC_BYTES] += pk.payload_len;
        touched |= 1u << b;
        const rf_listen_handler *h = &q->binds[b].handler;
        h->on_data(h->ctx, NULL, &chunk);
    }
    while (touched) {
        unsigned b = (unsigned)__builtin_ctz(touched);
        touched &= touched - 1;
        const rf_listen_handler *h = &q->binds[b].handler;
        if (h->on_burst_end)
            h->on_burst_end(h->ctx, NULL);
    }
    uint64_t t1 = rte_rdtsc();
    rte_pktmbuf_free_bulk(pkts, n);

    c[RF_DC_PACKETS] = n;
    c[RF_DC_BURSTS] = 1;
    c[RF_DC_CYCLES] = t1 - t0;
    for (unsigned id = 0; id < RF_DC__COUNT; id++)
        if (c[id])
            counter_add(q, (enum rf_dpdk_counter_id)id, c[id]);
    return n;
}
