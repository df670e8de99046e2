/* The `dpdk:` section of the configuration (see dpdk.h). Plain C without DPDK
 * headers: it is built whether or not DPDK is, so a configuration is
 * validated the same way everywhere. Control thread only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/config/config.h"
#include "ingest/dpdk/dpdk.h"

static const char *const protocols[] = {"influx_line", "statsd", "graphite"};

void rf_dpdk_port_config_init(rf_dpdk_port_config *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->port_id = -1;
    pc->rss = true;
    pc->promiscuous = true;
    pc->hw_checksum = true;
    pc->mbuf_cache = 256;
    pc->mbuf_size = 2048;
    pc->rx_descriptors = 1024;
    pc->burst = 32;
}

void rf_dpdk_config_init(rf_dpdk_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->huge_pages = true;
    cfg->pci = true;
    snprintf(cfg->file_prefix, sizeof(cfg->file_prefix), "ringflow");
    cfg->udp_ports[0] = (rf_dpdk_udp_port){8089, RF_LISTEN_PROTO_INFLUX_LINE};
    cfg->udp_ports[1] = (rf_dpdk_udp_port){8125, RF_LISTEN_PROTO_STATSD};
    cfg->n_udp_ports = 2;
}

int rf_dpdk_config_protocol_of(const rf_dpdk_config *cfg, uint16_t udp_port)
{
    for (uint32_t i = 0; i < cfg->n_udp_ports; i++)
        if (cfg->udp_ports[i].port == udp_port)
            return (int)cfg->udp_ports[i].protocol;
    return -1;
}

static int parse_str_list(const rf_cfg_node *map, const char *key, size_t max,
                          char (*out)[RF_DPDK_ARG_MAX], uint32_t *n_out, rf_err *err)
{
    const rf_cfg_node *seq;
    int rc = rf_cfg_seq(map, key, 0, max, &seq, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < rf_cfg_seq_len(seq); i++)
        if ((rc = rf_cfg_node_str(rf_cfg_seq_at(seq, i), 1, out[i], RF_DPDK_ARG_MAX, err)) < 0)
            return rc;
    *n_out = (uint32_t)rf_cfg_seq_len(seq);
    return 0;
}

static int parse_port(const rf_cfg_node *item, size_t index, rf_dpdk_port_config *pc, rf_err *err)
{
    if (rf_cfg_kind(item) != RF_CFG_MAPPING)
        return rf_cfg_fail(item, err, "expected a mapping with name and device, vdev or port_id");
    rf_dpdk_port_config_init(pc);
    char def_name[RF_LISTENER_NAME_MAX];
    snprintf(def_name, sizeof(def_name), "port%zu", index);
    int64_t port_id;
    uint32_t rxq, mbufs, cache, burst, desc;
    uint64_t mbuf_size;
    int rc;
    if ((rc = rf_cfg_str(item, "name", 1, def_name, pc->name, sizeof(pc->name), err)) < 0 ||
        (rc = rf_cfg_str(item, "device", 0, "", pc->device, sizeof(pc->device), err)) < 0 ||
        (rc = rf_cfg_str(item, "vdev", 0, "", pc->vdev, sizeof(pc->vdev), err)) < 0 ||
        (rc = rf_cfg_i64(item, "port_id", 0, 1023, -1, &port_id, err)) < 0 ||
        (rc = rf_cfg_u32(item, "rx_queues", 0, RF_DPDK_MAX_QUEUES, 0, &rxq, err)) < 0 ||
        (rc = rf_cfg_bool(item, "rss", true, &pc->rss, err)) < 0 ||
        (rc = rf_cfg_bool(item, "promiscuous", true, &pc->promiscuous, err)) < 0 ||
        (rc = rf_cfg_bool(item, "hw_checksum", true, &pc->hw_checksum, err)) < 0 ||
        (rc = rf_cfg_u32(item, "mbufs", 0, 1u << 24, 0, &mbufs, err)) < 0 ||
        (rc = rf_cfg_u32(item, "mbuf_cache", 0, 512, 256, &cache, err)) < 0 ||
        (rc = rf_cfg_size(item, "mbuf_size", 256, 65535 - 128, 2048, &mbuf_size, err)) < 0 ||
        (rc = rf_cfg_u32(item, "rx_descriptors", 32, 32768, 1024, &desc, err)) < 0 ||
        (rc = rf_cfg_u32(item, "burst", 1, RF_DPDK_BURST_MAX, 32, &burst, err)) < 0)
        return rc;
    int selectors = (pc->device[0] != '\0') + (pc->vdev[0] != '\0') + (port_id >= 0);
    if (selectors != 1)
        return rf_cfg_fail(item, err, "give exactly one of device, vdev or port_id (got %d)",
                           selectors);
    pc->port_id = (int32_t)port_id;
    pc->rx_queues = (uint16_t)rxq;
    pc->mbufs = mbufs;
    pc->mbuf_cache = cache;
    pc->mbuf_size = (uint32_t)mbuf_size;
    pc->rx_descriptors = (uint16_t)desc;
    pc->burst = (uint16_t)burst;
    return 0;
}

/* The ethdev name a vdev definition creates: the text before the first ','. */
static void vdev_name(const char *vdev, char *out, size_t size)
{
    size_t n = strcspn(vdev, ",");
    if (n >= size)
        n = size - 1;
    memcpy(out, vdev, n);
    out[n] = '\0';
}

static int parse_ports(const rf_cfg_node *sec, rf_dpdk_config *cfg, rf_err *err)
{
    const rf_cfg_node *seq;
    int rc = rf_cfg_seq(sec, "ports", 0, RF_DPDK_MAX_PORTS, &seq, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < rf_cfg_seq_len(seq); i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        rf_dpdk_port_config *pc = &cfg->ports[i];
        if ((rc = parse_port(item, i, pc, err)) < 0)
            return rc;
        char a[RF_DPDK_ARG_MAX];
        vdev_name(pc->vdev[0] ? pc->vdev : pc->device, a, sizeof(a));
        for (size_t j = 0; j < i; j++) {
            const rf_dpdk_port_config *o = &cfg->ports[j];
            char b[RF_DPDK_ARG_MAX];
            vdev_name(o->vdev[0] ? o->vdev : o->device, b, sizeof(b));
            if (strcmp(o->name, pc->name) == 0)
                return rf_cfg_fail_key(item, "name", err, "duplicate port name '%s'", pc->name);
            if ((a[0] && strcmp(a, b) == 0) || (pc->port_id >= 0 && pc->port_id == o->port_id))
                return rf_cfg_fail(item, err, "the same device as ports[%zu] ('%s')", j, o->name);
        }
    }
    cfg->n_ports = (uint32_t)rf_cfg_seq_len(seq);
    return 0;
}

static int parse_udp_ports(const rf_cfg_node *sec, rf_dpdk_config *cfg, rf_err *err)
{
    if (!rf_cfg_has(sec, "udp_ports"))
        return 0; /* keep the defaults */
    const rf_cfg_node *seq;
    int rc = rf_cfg_seq(sec, "udp_ports", 1, RF_DPDK_MAX_UDP_PORTS, &seq, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < rf_cfg_seq_len(seq); i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        if (rf_cfg_kind(item) != RF_CFG_MAPPING)
            return rf_cfg_fail(item, err, "expected a mapping {port, protocol}");
        uint32_t port;
        int proto;
        if ((rc = rf_cfg_require(item, "port", err)) < 0 ||
            (rc = rf_cfg_require(item, "protocol", err)) < 0 ||
            (rc = rf_cfg_u32(item, "port", 1, 65535, 1, &port, err)) < 0 ||
            (rc = rf_cfg_enum(item, "protocol", protocols, 3, 0, &proto, err)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (cfg->udp_ports[j].port == port)
                return rf_cfg_fail_key(item, "port", err, "UDP port %u is listed twice", port);
        cfg->udp_ports[i] = (rf_dpdk_udp_port){(uint16_t)port, (enum rf_listen_protocol)proto};
    }
    cfg->n_udp_ports = (uint32_t)rf_cfg_seq_len(seq);
    return 0;
}

int rf_dpdk_config_parse(const rf_cfg_node *root, rf_dpdk_config *out, rf_err *err)
{
    rf_dpdk_config cfg;
    rf_dpdk_config_init(&cfg);
    const rf_cfg_node *sec;
    uint64_t mem;
    int rc;
    if ((rc = rf_cfg_map(root, "dpdk", &sec, err)) < 0 ||
        (rc = rf_cfg_bool(sec, "enabled", false, &cfg.enabled, err)) < 0 ||
        (rc = rf_cfg_str(sec, "lcores", 0, "", cfg.lcores, sizeof(cfg.lcores), err)) < 0 ||
        (rc = rf_cfg_size(sec, "memory", 0, (uint64_t)1 << 40, 0, &mem, err)) < 0 ||
        (rc = rf_cfg_bool(sec, "huge_pages", true, &cfg.huge_pages, err)) < 0 ||
        (rc = rf_cfg_bool(sec, "pci", true, &cfg.pci, err)) < 0 ||
        (rc = rf_cfg_bool(sec, "in_memory", false, &cfg.in_memory, err)) < 0 ||
        (rc = rf_cfg_str(sec, "file_prefix", 1, "ringflow", cfg.file_prefix,
                         sizeof(cfg.file_prefix), err)) < 0 ||
        (rc = parse_str_list(sec, "vdevs", RF_DPDK_MAX_VDEVS, cfg.vdevs, &cfg.n_vdevs, err)) < 0 ||
        (rc = parse_str_list(sec, "eal_args", RF_DPDK_MAX_EAL_ARGS, cfg.eal_args, &cfg.n_eal_args,
                             err)) < 0 ||
        (rc = parse_ports(sec, &cfg, err)) < 0 || (rc = parse_udp_ports(sec, &cfg, err)) < 0)
        return rc;
    if (mem % (1u << 20))
        return rf_cfg_fail_key(sec, "memory", err, "EAL takes whole MiB");
    cfg.memory_bytes = mem;
    if (cfg.enabled && cfg.n_ports == 0)
        return rf_cfg_fail_key(sec, "ports", err, "dpdk is enabled but no port is listed");
    uint32_t vdevs = cfg.n_vdevs;
    for (uint32_t i = 0; i < cfg.n_ports; i++)
        vdevs += cfg.ports[i].vdev[0] != '\0';
    if (vdevs > RF_DPDK_MAX_VDEVS)
        return rf_cfg_fail_key(sec, "ports", err, "more than %d vdevs in all", RF_DPDK_MAX_VDEVS);
    *out = cfg;
    return 0;
}

/* ---- mbuf pools per node (dpdk.h, "Memory") -------------------------------- */

void rf_dpdk_pool_plan_make(uint16_t n_queues, const int16_t *worker_node, int port_node,
                            rf_dpdk_pool_plan *out)
{
    memset(out, 0, sizeof(*out));
    if (n_queues > RF_DPDK_MAX_QUEUES)
        n_queues = RF_DPDK_MAX_QUEUES;
    for (uint16_t q = 0; q < n_queues; q++) {
        int node = worker_node && worker_node[q] >= 0 ? worker_node[q] : port_node;
        if (node < -1)
            node = -1;
        uint32_t p = 0;
        while (p < out->n_pools && out->pool_node[p] != node)
            p++;
        if (p == out->n_pools)
            out->pool_node[out->n_pools++] = node;
        out->pool_queues[p]++;
        out->queue_pool[q] = (uint8_t)p;
        out->queue_node[q] = node;
    }
}

uint32_t rf_dpdk_pool_plan_share(const rf_dpdk_pool_plan *plan, uint32_t pool, uint32_t mbufs)
{
    uint32_t queues = 0;
    for (uint32_t p = 0; p < plan->n_pools; p++)
        queues += plan->pool_queues[p];
    if (pool >= plan->n_pools || queues == 0)
        return 0;
    return (uint32_t)(((uint64_t)mbufs * plan->pool_queues[pool] + queues - 1) / queues);
}

uint64_t rf_dpdk_queue_drops(const rf_dpdk_queue *q, char *reasons, size_t cap)
{
    size_t len = 0;
    uint64_t dropped = 0;
    if (cap)
        reasons[0] = '\0';
    for (int c = RF_DC_DROP_FIRST; c < RF_DC__COUNT; c++) {
        uint64_t n = rf_dpdk_queue_counter(q, (enum rf_dpdk_counter_id)c);
        dropped += n;
        if (n && len < cap)
            len += (size_t)snprintf(reasons + len, cap - len, "%s%s=%lu", len ? "," : "",
                                    rf_dpdk_counter_name((enum rf_dpdk_counter_id)c),
                                    (unsigned long)n);
    }
    return dropped;
}
