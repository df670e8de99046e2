/* The memory side of placement, on this machine: an engine started with
 * pinned workers must have put each worker's structures (its struct,
 * staging, inbound rings of both lanes, series table, aggregation states and
 * sketch pools, router, alert and correlation state, storage shard slots and
 * staging) under a preferred policy for the worker's node. Asked of the
 * kernel (get_mempolicy MPOL_F_ADDR) for every region the engine says it
 * bound, at its first and last byte, and the regions must cover every kind
 * listed above. On one node the node is 0, but a missing or dropped bind
 * shows as MPOL_DEFAULT and fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem/mem.h"
#include "daemon/engine.h"
#include "daemon/settings.h"
#include "numa/numa.h"

static char dir[64];

/* A UDP port free on 127.0.0.1 right now (the kernel's pick). */
static int free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void write_config(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "engine: {workers: 2, pin_workers: true, data_dir: %s/data, run_dir: %s/run,\n"
            "         idle: {sleep: 1ms}}\n"
            "listeners:\n"
            "  - {name: std, transport: udp, protocol: influx_line, address: 127.0.0.1, port: %d}\n"
            "  - {name: crit, transport: udp, protocol: influx_line, address: 127.0.0.1,\n"
            "     port: %d, class: critical}\n"
            "storage: {enabled: true}\n"
            "pipeline:\n"
            "  max_series: 65536\n"
            "  sinks:\n"
            "    - {name: store, type: store}\n"
            "    - {name: out, type: count_only}\n"
            "  routes:\n"
            "    - {name: data, subject: \"telemetry.>\", sinks: [store, out]}\n"
            "    - {name: alerts, subject: \"alert.>\", sinks: [out], class: critical}\n"
            "  aggregations:\n"
            "    - {measurement: cpu, field: v, window: 10s, functions: [count, p99]}\n"
            "  alerts:\n"
            "    - {name: hot, type: threshold, match: {measurement: cpu, field: v}, op: \">\",\n"
            "       fire: 90}\n"
            "  correlation:\n"
            "    id: {capacity: 10000, ttl: 1h}\n",
            dir, dir, free_udp_port(), free_udp_port());
    fclose(f);
}

/* The VMA policy at p: MPOL_PREFERRED (or BIND) with `node` in its mask. */
static void expect_on_node(const void *p, int node, const char *what)
{
    unsigned long mask[16] = {0};
    int mode = -1;
    if (get_mempolicy(&mode, mask, 1024, (void *)p, MPOL_F_ADDR) != 0)
        fail_msg("%s at %p: get_mempolicy: %s", what, p, strerror(errno));
    if (mode != MPOL_PREFERRED && mode != MPOL_BIND)
        fail_msg("%s at %p: policy %d, not preferred/bind for node %d", what, p, mode, node);
    if (!(mask[node / 64] >> (node % 64) & 1))
        fail_msg("%s at %p: node %d not in the policy's mask (%#lx)", what, p, node, mask[0]);
}

static unsigned count_what(const rf_mem_scope *m, const char *what)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < m->n_log; i++)
        n += strcmp(m->log[i].what, what) == 0;
    return n;
}

static void test_worker_memory_on_node(void **state)
{
    (void)state;
    if (!rf_numa_available())
        skip();
    snprintf(dir, sizeof(dir), "/tmp/rf_numa_engine_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/data", dir); /* ringflowd makes it; the engine does not */
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/c.yaml", dir);
    write_config(path);

    rf_settings s;
    rf_err err;
    rf_err_clear(&err);
    if (rf_settings_load(path, &s, &err) < 0)
        fail_msg("settings: %s", err.msg);
    rf_engine *e = NULL;
    if (rf_engine_start(&s, &e, &err) < 0)
        fail_msg("engine: %s", err.msg);
    rf_numa_topology topo;
    assert_int_equal(rf_numa_topology_load(NULL, &topo, &err), 0);
    assert_non_null(strstr(rf_engine_placement(e), "memory on its node"));

    static const char *const kinds[] = {
        "engine worker",     "engine staging", "rf_ring_create", "rf_series_table_new",
        "rf_aggregator_new", "pool_init",      "rf_alerts_new",  "rf_correlator_new",
        "rf_router_new",     "shard_init",
    };
    for (uint32_t w = 0; w < rf_engine_workers(e); w++) {
        const rf_mem_scope *m = rf_engine_worker_memory(e, w);
        assert_non_null(m);
        rf_worker_stats rs;
        rf_engine_worker_runtime_read(e, w, &rs, NULL);
        const int node = rf_numa_node_of_cpu(&topo, (unsigned)rs.cpu);
        assert_true(node >= 0);
        assert_int_equal(m->node, node);
        assert_false(m->kept_policy);
        if (m->refused)
            fail_msg("worker %u: %u binds refused (%s)", w, m->refused, strerror(m->refused_errno));
        assert_true(m->n_log < RF_MEM_SCOPE_LOG); /* every region is in the log */
        assert_int_equal(m->n_log, m->regions);
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
            if (count_what(m, kinds[k]) == 0)
                fail_msg("worker %u: no %s region bound to its node", w, kinds[k]);
        /* The inbound ring from the peer, and the peer's critical ring. */
        assert_true(count_what(m, "rf_ring_create") >= 2);
        for (uint32_t i = 0; i < m->n_log; i++) {
            const rf_mem_region *r = &m->log[i];
            expect_on_node(r->addr, node, r->what);
            expect_on_node((const char *)r->addr + r->bytes - 1, node, r->what);
            if (getenv("RF_TEST_VERBOSE"))
                printf("  w%u %-22s %10zu bytes at %p\n", w, r->what, r->bytes, r->addr);
        }
        printf("worker %u: node %d, %u regions, %llu MiB\n", w, node, m->regions,
               (unsigned long long)(m->bytes >> 20));
    }
    /* The control thread's own policy is back to what it was. */
    int mode = -1;
    unsigned long mask[16] = {0};
    assert_int_equal(get_mempolicy(&mode, mask, 1024, NULL, 0), 0);
    assert_int_equal(mode, MPOL_DEFAULT);

    rf_engine_stop(e);
    rf_settings_release(&s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_memory_on_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
