/* ingest/dpdk without EAL: the frame parser (every verdict, offload flags,
 * checksum edge cases), the `dpdk:` configuration section, and the choice of
 * a mbuf pool per node for the queues of workers placed on a fake 2-node
 * topology. Runs in every build, with or without DPDK, and under
 * sanitizers. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config/config.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/dpdk/packet_pvt.h"
#include "numa/numa.h"
#include "tests/dpdk/pkt_build.h"

static pb_spec v4(const char *payload)
{
    pb_spec s = {.family = 4,
                 .sport = 1234,
                 .dport = 8125,
                 .payload = payload,
                 .src4 = {192, 168, 1, 7},
                 .dst4 = {192, 168, 1, 1}};
    return s;
}

static pb_spec v6(const char *payload)
{
    pb_spec s = {.family = 6,
                 .sport = 1234,
                 .dport = 8089,
                 .payload = payload,
                 .src6 = {0xfe, 0x80, [15] = 7},
                 .dst6 = {0xfe, 0x80, [15] = 1}};
    return s;
}

static enum rf_dpdk_counter_id verdict(const pb_spec *s, unsigned hw, rf_pkt *pk)
{
    static pb_frame f;
    pb_build(s, &f);
    return rf_pkt_parse(f.b, f.len, hw, pk);
}

static void test_valid(void **state)
{
    (void)state;
    rf_pkt pk;
    /* Every payload length 0..200 (odd lengths exercise the checksum tail). */
    static char payload[256];
    for (unsigned len = 1; len < 200; len++) {
        memset(payload, 'a' + (char)(len % 26), len);
        payload[len] = '\0';
        for (int tags = 0; tags <= 2; tags++) {
            pb_spec s = v4(payload);
            s.vlan_tags = tags;
            assert_int_equal(verdict(&s, 0, &pk), RF_DC_DATAGRAMS);
            assert_int_equal(pk.payload_len, len);
            assert_memory_equal(pk.payload, payload, len);
            assert_int_equal(pk.family, 4);
            assert_int_equal(pk.src_port, 1234);
            assert_int_equal(pk.dst_port, 8125);
            assert_int_equal(pk.src_addr[3], 7);
            s = v6(payload);
            s.vlan_tags = tags;
            s.hop_by_hop = len & 1;
            assert_int_equal(verdict(&s, 0, &pk), RF_DC_DATAGRAMS);
            assert_int_equal(pk.payload_len, len);
            assert_int_equal(pk.family, 6);
            assert_int_equal(pk.src_addr[15], 7);
        }
    }
}

static void test_drops(void **state)
{
    (void)state;
    rf_pkt pk;
    pb_spec s = v4("a:1|c");
    s.bad_ip_csum = true;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_IP_CHECKSUM);
    /* The device said the IP checksum is good: not verified again. */
    assert_int_equal(verdict(&s, RF_PKT_HW_IP_GOOD, &pk), RF_DC_DATAGRAMS);
    s = v4("a:1|c");
    assert_int_equal(verdict(&s, RF_PKT_HW_IP_BAD, &pk), RF_DC_DROP_BAD_IP_CHECKSUM);
    assert_int_equal(verdict(&s, RF_PKT_HW_L4_BAD, &pk), RF_DC_DROP_BAD_UDP_CHECKSUM);
    s.bad_udp_csum = true;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_UDP_CHECKSUM);
    assert_int_equal(verdict(&s, RF_PKT_HW_L4_GOOD, &pk), RF_DC_DATAGRAMS);
    s = v4("a:1|c");
    s.no_udp_csum = true; /* IPv4: no checksum is allowed */
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DATAGRAMS);
    s = v6("a:1|c");
    s.no_udp_csum = true; /* IPv6: it is not */
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_UDP_CHECKSUM);
    s = v6("a:1|c");
    s.bad_udp_csum = true;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_UDP_CHECKSUM);

    s = v4("a:1|c");
    s.fragment = true;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_IP_FRAGMENT);
    s = v6("a:1|c");
    s.fragment = true;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_IP_FRAGMENT);
    s = v4("a:1|c");
    s.proto = 6;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_NOT_UDP);
    s = v6("a:1|c");
    s.proto = 6;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_NOT_UDP);
    s = v4("a:1|c");
    s.ihl = 4;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_IP_HEADER);
    s = v4("a:1|c");
    s.ip_total_delta = -10; /* the IP payload cannot hold a UDP header */
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_TRUNCATED);
    s.ip_total_delta = 1;
    assert_int_equal(verdict(&s, RF_PKT_HW_IP_GOOD, &pk), RF_DC_DROP_TRUNCATED);
    s = v4("a:1|c");
    s.udp_len_delta = 1;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_UDP_LENGTH);
    s.udp_len_delta = -6; /* below 8 */
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_BAD_UDP_LENGTH);
    s = v6("a:1|c");
    s.ip_total_delta = 3;
    assert_int_equal(verdict(&s, 0, &pk), RF_DC_DROP_TRUNCATED);

    /* Cut at every length: never a read past the end (ASan), never delivered. */
    for (unsigned cut = 1; cut < 14 + 8 + 40 + 8 + 5; cut++) {
        s = v6("a:1|c");
        s.vlan_tags = 2;
        s.cut = cut;
        enum rf_dpdk_counter_id v = verdict(&s, 0, &pk);
        assert_int_not_equal(v, RF_DC_DATAGRAMS);
    }
    pb_frame f;
    pb_build_arp(&f);
    assert_int_equal(rf_pkt_parse(f.b, f.len, 0, &pk), RF_DC_DROP_NOT_IP);
    /* Three VLAN tags: not ours. */
    s = v4("a:1|c");
    s.vlan_tags = 2;
    pb_build(&s, &f);
    memmove(f.b + 16, f.b + 12, f.len - 12);
    pb_put16(f.b + 12, 0x8100);
    pb_put16(f.b + 14, 7);
    assert_int_equal(rf_pkt_parse(f.b, f.len + 4, 0, &pk), RF_DC_DROP_NOT_IP);
}

/* ---- configuration ---------------------------------------------------------- */

static int parse(const char *yaml, rf_dpdk_config *cfg, rf_err *err)
{
    rf_cfg_doc *doc;
    int rc = rf_cfg_load_string(yaml, strlen(yaml), "t.yaml", &doc, err);
    if (rc == 0) {
        rc = rf_dpdk_config_parse(rf_cfg_root(doc), cfg, err);
        if (rc == 0)
            rc = rf_cfg_check_unknown_keys(doc, err);
        rf_cfg_free(doc);
    }
    return rc;
}

static void test_config(void **state)
{
    (void)state;
    rf_dpdk_config cfg;
    rf_err err;
    assert_int_equal(parse("dpdk: {}\n", &cfg, &err), 0);
    assert_false(cfg.enabled);
    assert_int_equal(cfg.n_udp_ports, 2);
    assert_int_equal(rf_dpdk_config_protocol_of(&cfg, 8089), RF_LISTEN_PROTO_INFLUX_LINE);
    assert_int_equal(rf_dpdk_config_protocol_of(&cfg, 8125), RF_LISTEN_PROTO_STATSD);
    assert_int_equal(rf_dpdk_config_protocol_of(&cfg, 2003), -1);

    const char *full = "dpdk:\n"
                       "  enabled: true\n"
                       "  lcores: '0@(0-1)'\n"
                       "  memory: 512MiB\n"
                       "  huge_pages: false\n"
                       "  pci: false\n"
                       "  vdevs: [net_null0]\n"
                       "  eal_args: [--no-telemetry]\n"
                       "  ports:\n"
                       "    - {name: nic0, device: '0000:03:00.0', rx_queues: 2, rss: true,"
                       " mbufs: 16383, mbuf_size: 9KiB, burst: 64}\n"
                       "    - {vdev: 'net_pcap0,rx_pcap=/x.pcap'}\n"
                       "    - {name: n, port_id: 3}\n"
                       "  udp_ports:\n"
                       "    - {port: 2003, protocol: graphite}\n";
    int rc = parse(full, &cfg, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_true(cfg.enabled);
    assert_string_equal(cfg.lcores, "0@(0-1)");
    assert_int_equal(cfg.memory_bytes, 512u << 20);
    assert_false(cfg.huge_pages);
    assert_false(cfg.pci);
    assert_int_equal(cfg.n_vdevs, 1);
    assert_int_equal(cfg.n_eal_args, 1);
    assert_int_equal(cfg.n_ports, 3);
    assert_string_equal(cfg.ports[0].name, "nic0");
    assert_string_equal(cfg.ports[0].device, "0000:03:00.0");
    assert_int_equal(cfg.ports[0].rx_queues, 2);
    assert_int_equal(cfg.ports[0].mbufs, 16383);
    assert_int_equal(cfg.ports[0].mbuf_size, 9216);
    assert_int_equal(cfg.ports[0].burst, 64);
    assert_int_equal(cfg.ports[0].port_id, -1);
    assert_string_equal(cfg.ports[1].name, "port1");
    assert_string_equal(cfg.ports[1].vdev, "net_pcap0,rx_pcap=/x.pcap");
    assert_int_equal(cfg.ports[2].port_id, 3);
    assert_int_equal(cfg.n_udp_ports, 1);
    assert_int_equal(rf_dpdk_config_protocol_of(&cfg, 2003), RF_LISTEN_PROTO_GRAPHITE);

    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"dpdk: {enabled: true}\n", "no port is listed"},
        {"dpdk:\n  ports:\n    - {name: a}\n", "exactly one of device, vdev or port_id"},
        {"dpdk:\n  ports:\n    - {device: x, port_id: 1}\n", "exactly one"},
        {"dpdk:\n  ports:\n    - {device: x}\n    - {vdev: 'x,a=b'}\n", "the same device"},
        {"dpdk:\n  ports:\n    - {device: x, name: a}\n    - {device: y, name: a}\n",
         "duplicate port name"},
        {"dpdk:\n  udp_ports:\n    - {port: 1, protocol: statsd}\n    - {port: 1, protocol: "
         "graphite}\n",
         "listed twice"},
        {"dpdk:\n  udp_ports:\n    - {port: 1, protocol: snmp}\n", "udp_ports[0].protocol"},
        {"dpdk:\n  memory: 1000KiB\n", "whole MiB"},
        {"dpdk:\n  ports:\n    - {device: x, burst: 512}\n", "ports[0].burst"},
        {"dpdk:\n  ports:\n    - {device: x, rx_queue: 2}\n", "unknown key"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_err_clear(&err);
        assert_int_equal(parse(bad[i].yaml, &cfg, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].msg);
        assert_non_null(strstr(err.msg, "t.yaml:"));
    }
}

static void test_counter_names(void **state)
{
    (void)state;
    if (!rf_dpdk_built()) {
        /* The stub: open says why, in words. */
        rf_dpdk_config cfg;
        rf_dpdk_config_init(&cfg);
        rf_dpdk *d = NULL;
        rf_err err;
        assert_int_equal(rf_dpdk_open(&cfg, 1, &d, &err), -ENOTSUP);
        assert_non_null(strstr(err.msg, "built without DPDK"));
        return;
    }
    assert_string_equal(rf_dpdk_counter_name(RF_DC_DROP_NOT_IP), "not_ip");
    assert_string_equal(rf_dpdk_counter_name(RF_DC_DROP_TRUNCATED), "truncated");
    assert_string_equal(rf_dpdk_counter_name(RF_DC__COUNT), "unknown");
}


/* Writes root/rel with text, making the directories (a fake sysfs). */
static void fake_put(const char *root, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Workers placed by numa/ on a fake 2-node machine (node0 cpus 0-3, node1
 * cpus 4-7, the NIC on node 1); each queue must draw from the pool of its
 * worker's node, one pool per node in use. */
static void test_pool_per_node(void **state)
{
    (void)state;
    char root[] = "/tmp/rf_dpdk_numa_XXXXXX";
    assert_non_null(mkdtemp(root));
    fake_put(root, "sys/devices/system/node/node0/cpulist", "0-3\n");
    fake_put(root, "sys/devices/system/node/node1/cpulist", "4-7\n");
    rf_numa_topology topo;
    rf_err err;
    assert_int_equal(rf_numa_topology_load(root, &topo, &err), 0);
    assert_int_equal(topo.n_nodes, 2);

    /* Six workers, NIC on node 1: four on node 1 (cpus 4-7), two on node 0. */
    rf_numa_request req = {.workers = 6, .nic_node = 1};
    rf_numa_placement pl;
    assert_int_equal(rf_numa_place(&topo, &req, &pl, &err), 0);
    int16_t nodes[6];
    for (int i = 0; i < 6; i++)
        nodes[i] = pl.node[i];
    assert_int_equal(nodes[0], 1);
    assert_int_equal(nodes[5], 0);
    rf_dpdk_pool_plan plan;
    rf_dpdk_pool_plan_make(6, nodes, 1, &plan);
    assert_int_equal(plan.n_pools, 2);
    assert_int_equal(plan.pool_node[0], 1);
    assert_int_equal(plan.pool_node[1], 0);
    assert_int_equal(plan.pool_queues[0], 4);
    assert_int_equal(plan.pool_queues[1], 2);
    for (int q = 0; q < 6; q++) {
        assert_int_equal(plan.queue_node[q], nodes[q]);
        assert_int_equal(plan.pool_node[plan.queue_pool[q]], nodes[q]);
    }
    /* mbufs: 3000 for the port, shared by queues (rounded up). */
    assert_int_equal(rf_dpdk_pool_plan_share(&plan, 0, 3000), 2000);
    assert_int_equal(rf_dpdk_pool_plan_share(&plan, 1, 3000), 1000);
    assert_int_equal(rf_dpdk_pool_plan_share(&plan, 1, 7), 3);
    assert_int_equal(rf_dpdk_pool_plan_share(&plan, 2, 3000), 0);

    /* rx_queues: 2 of the 6 workers: both queues' workers on node 1, one pool. */
    rf_dpdk_pool_plan_make(2, nodes, 1, &plan);
    assert_int_equal(plan.n_pools, 1);
    assert_int_equal(plan.pool_node[0], 1);

    /* Four workers, all on the NIC's node: one pool. */
    req.workers = 4;
    assert_int_equal(rf_numa_place(&topo, &req, &pl, &err), 0);
    for (int i = 0; i < 4; i++)
        nodes[i] = pl.node[i];
    rf_dpdk_pool_plan_make(4, nodes, 1, &plan);
    assert_int_equal(plan.n_pools, 1);
    assert_int_equal(plan.pool_queues[0], 4);

    /* Workers not placed (unknown nodes): the port's node, else any socket. */
    const int16_t unknown[3] = {-1, -1, -1};
    rf_dpdk_pool_plan_make(3, unknown, 1, &plan);
    assert_int_equal(plan.n_pools, 1);
    assert_int_equal(plan.pool_node[0], 1);
    rf_dpdk_pool_plan_make(3, NULL, -1, &plan);
    assert_int_equal(plan.n_pools, 1);
    assert_int_equal(plan.pool_node[0], -1);
    /* One worker known on node 0, the others falling back to the port's node 1. */
    const int16_t mixed[3] = {0, -1, 0};
    rf_dpdk_pool_plan_make(3, mixed, 1, &plan);
    assert_int_equal(plan.n_pools, 2);
    assert_int_equal(plan.queue_pool[0], plan.queue_pool[2]);
    assert_int_equal(plan.pool_node[plan.queue_pool[1]], 1);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),         cmocka_unit_test(test_drops),
        cmocka_unit_test(test_config),        cmocka_unit_test(test_counter_names),
        cmocka_unit_test(test_pool_per_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
