/* numa/: topology read from fake sysfs trees (1, 2 and 4 nodes, built here in
 * a temp dir), NIC node lookup, the placement rule, the report, allocation. */
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

#include <numaif.h>

#include "core/mem/mem.h"
#include "core/ring/ring.h"
#include "numa/numa.h"

static char root[64];

static void mkdirs(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    mkdir(tmp, 0755);
}

/* Writes root/<rel> with `text`, creating the directories. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdirs(path);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/rf_numa_XXXXXX");
    assert_non_null(mkdtemp(root));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void node(int id, const char *cpulist)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "sys/devices/system/node/node%d/cpulist", id);
    put(rel, cpulist);
}

static rf_numa_topology topo;

static void load(void)
{
    rf_err err;
    int rc = rf_numa_topology_load(root, &topo, &err);
    if (rc)
        fail_msg("%s", err.msg);
}

static void place(uint32_t workers, int nic, const uint16_t *cpus, uint32_t n_cpus,
                  rf_numa_placement *p)
{
    rf_err err;
    rf_numa_request req = {.workers = workers, .nic_node = nic, .cpus = cpus, .n_cpus = n_cpus};
    int rc = rf_numa_place(&topo, &req, p, &err);
    if (rc)
        fail_msg("%s", err.msg);
}

static void expect_cpus(const rf_numa_placement *p, const uint16_t *want, uint32_t n)
{
    assert_int_equal(p->workers, n);
    for (uint32_t i = 0; i < n; i++)
        if (p->cpu[i] != want[i])
            fail_msg("worker %u: cpu %u, expected %u", i, p->cpu[i], want[i]);
}

static void test_cpulist(void **state)
{
    (void)state;
    rf_numa_cpuset s;
    char buf[128];
    assert_int_equal(rf_numa_cpulist_parse("0-3,8,10-11\n", &s), 0);
    assert_int_equal(rf_numa_cpuset_count(&s), 7);
    assert_string_equal(rf_numa_cpulist_format(&s, buf, sizeof(buf)), "0-3,8,10-11");
    assert_int_equal(rf_numa_cpulist_parse("\n", &s), 0);
    assert_int_equal(rf_numa_cpuset_count(&s), 0);
    assert_string_equal(rf_numa_cpulist_format(&s, buf, sizeof(buf)), "");
    assert_int_equal(rf_numa_cpulist_parse("1023", &s), 0);
    assert_true(rf_numa_cpuset_has(&s, 1023));
    assert_int_equal(rf_numa_cpulist_parse("1024", &s), -EINVAL);
    assert_int_equal(rf_numa_cpulist_parse("3-1", &s), -EINVAL);
    assert_int_equal(rf_numa_cpulist_parse("1,,2", &s), -EINVAL);
    assert_int_equal(rf_numa_cpulist_parse("a", &s), -EINVAL);
    assert_int_equal(rf_numa_cpulist_parse("1-", &s), -EINVAL);
}

static void test_one_node(void **state)
{
    (void)state;
    node(0, "0-3\n");
    load();
    assert_int_equal(topo.n_nodes, 1);
    assert_true(topo.from_nodes);
    assert_int_equal(topo.nodes[0].n_cpus, 4);
    rf_numa_placement p;
    place(2, -1, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){1, 2}, 2); /* CPU 0 avoided */
    assert_false(p.oversubscribed);
    place(4, -1, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){1, 2, 3, 0}, 4);
    place(6, 0, NULL, 0, &p); /* more workers than CPUs: wrap */
    expect_cpus(&p, (const uint16_t[]){1, 2, 3, 0, 1, 2}, 6);
    assert_true(p.oversubscribed);
    assert_int_equal(p.off_nic_node, 0);
    char rep[512];
    rf_numa_placement_report(&topo, &p, rep, sizeof(rep));
    assert_non_null(strstr(rep, "numa: 1 node (node0 cpus 0-3)"));
    assert_non_null(strstr(rep, "w5=cpu2/node0"));
    assert_non_null(strstr(rep, "oversubscribed"));
}

static void test_no_node_dir(void **state)
{
    (void)state;
    rf_err err;
    assert_int_equal(rf_numa_topology_load(root, &topo, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cpu/online"));
    put("sys/devices/system/cpu/online", "0-1\n");
    load();
    assert_int_equal(topo.n_nodes, 1);
    assert_false(topo.from_nodes);
    assert_int_equal(topo.nodes[0].n_cpus, 2);
}

static void test_two_nodes_nic_on_1(void **state)
{
    (void)state;
    node(1, "4-7\n"); /* directory order must not matter */
    node(0, "0-3\n");
    node(2, "\n"); /* memory-only node */
    put("sys/class/net/eth0/device/numa_node", "1\n");
    put("sys/class/net/eth1/device/numa_node", "-1\n");
    put("sys/bus/pci/devices/0000:81:00.0/numa_node", "1\n");
    load();
    assert_int_equal(topo.n_nodes, 3);
    assert_int_equal(topo.nodes[0].id, 0);
    assert_int_equal(topo.nodes[1].id, 1);
    assert_int_equal(topo.nodes[2].n_cpus, 0);
    assert_int_equal(rf_numa_node_of_cpu(&topo, 5), 1);
    assert_int_equal(rf_numa_node_of_cpu(&topo, 9), -1);

    rf_err err;
    int nic = -2;
    assert_int_equal(rf_numa_netdev_node(root, "eth0", &nic, &err), 0);
    assert_int_equal(nic, 1);
    assert_int_equal(rf_numa_pci_node(root, "0000:81:00.0", &nic, &err), 0);
    assert_int_equal(nic, 1);
    int unknown;
    assert_int_equal(rf_numa_netdev_node(root, "eth1", &unknown, &err), 0);
    assert_int_equal(unknown, -1);
    assert_int_equal(rf_numa_netdev_node(root, "lo", &unknown, &err), -ENOENT);
    assert_int_equal(rf_numa_netdev_node(root, "../x", &unknown, &err), -EINVAL);

    rf_numa_placement p;
    place(3, nic, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){4, 5, 6}, 3);
    assert_int_equal(p.node[0], 1);
    assert_int_equal(p.off_nic_node, 0);
    /* More workers than the NIC's node has CPUs: spill to node 0, CPU 0 last. */
    place(6, nic, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){4, 5, 6, 7, 1, 2}, 6);
    assert_int_equal(p.off_nic_node, 2);
    assert_false(p.oversubscribed);
    char rep[512];
    rf_numa_placement_report(&topo, &p, rep, sizeof(rep));
    assert_non_null(strstr(rep, "node1 cpus 4-7"));
    assert_non_null(strstr(rep, "nic node 1"));
    assert_non_null(strstr(rep, "rule: nic node first, cpu0 last"));
    assert_non_null(strstr(rep, "w0=cpu4/node1"));
    assert_non_null(strstr(rep, "2 workers off the nic node"));
    /* NIC node unknown: node order, CPU 0 last within node 0. */
    place(2, -1, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){1, 2}, 2);
    /* A NIC node the topology does not know is treated as unknown. */
    place(1, 7, NULL, 0, &p);
    assert_int_equal(p.nic_node, -1);
}

static void test_four_nodes(void **state)
{
    (void)state;
    node(0, "0-1,8-9\n");
    node(1, "2-3,10-11\n");
    node(2, "4-5,12-13\n");
    node(3, "6-7,14-15\n");
    load();
    assert_int_equal(topo.n_nodes, 4);
    assert_int_equal(rf_numa_cpuset_count(&topo.online), 16);
    rf_numa_placement p;
    place(4, 2, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){4, 5, 12, 13}, 4);
    place(6, 2, NULL, 0, &p);
    expect_cpus(&p, (const uint16_t[]){4, 5, 12, 13, 1, 8}, 6);
    assert_int_equal(p.node[4], 0);
    place(16, 3, NULL, 0, &p);
    assert_int_equal(p.cpu[7], 0); /* node 3 (4 CPUs), then node 0 with CPU 0 last */
    assert_false(p.oversubscribed);
    place(17, 3, NULL, 0, &p);
    assert_true(p.oversubscribed);
    assert_int_equal(p.cpu[16], p.cpu[0]);
}

static void test_overrides(void **state)
{
    (void)state;
    node(0, "0-3\n");
    node(1, "4-7\n");
    load();
    rf_numa_placement p;
    const uint16_t cpus[] = {7, 0, 3};
    place(2, 1, cpus, 3, &p); /* used as given, extra entries ignored, CPU 0 allowed */
    expect_cpus(&p, (const uint16_t[]){7, 0}, 2);
    assert_true(p.from_overrides);
    assert_int_equal(p.node[1], 0);
    assert_int_equal(p.off_nic_node, 1);
    char rep[512];
    rf_numa_placement_report(&topo, &p, rep, sizeof(rep));
    assert_non_null(strstr(rep, "rule: cpus from configuration"));

    rf_err err;
    rf_numa_request req = {.workers = 3, .nic_node = -1, .cpus = cpus, .n_cpus = 2};
    assert_int_equal(rf_numa_place(&topo, &req, &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "2 CPUs listed for 3 workers"));
    const uint16_t offline[] = {1, 12};
    req = (rf_numa_request){.workers = 2, .nic_node = -1, .cpus = offline, .n_cpus = 2};
    assert_int_equal(rf_numa_place(&topo, &req, &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "CPU 12 (worker 1) is not online"));
    const uint16_t dup[] = {1, 1};
    req.cpus = dup;
    assert_int_equal(rf_numa_place(&topo, &req, &p, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "listed twice"));
    req = (rf_numa_request){.workers = 0, .nic_node = -1};
    assert_int_equal(rf_numa_place(&topo, &req, &p, &err), -EINVAL);
}

static void test_bad_tree(void **state)
{
    (void)state;
    node(0, "0-3,x\n");
    rf_err err;
    assert_int_equal(rf_numa_topology_load(root, &topo, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "node0/cpulist: not a cpulist"));
}

static void test_host_and_alloc(void **state)
{
    (void)state;
    rf_err err;
    assert_int_equal(rf_numa_topology_load(NULL, &topo, &err), 0);
    assert_true(topo.n_nodes >= 1);
    assert_true(rf_numa_cpuset_count(&topo.online) >= 1);
    for (int n = -1; n <= 0; n++) {
        size_t size = 1u << 20;
        unsigned char *p = rf_numa_alloc_onnode(size, n);
        assert_non_null(p);
        assert_int_equal(p[size - 1], 0);
        memset(p, 0xab, size);
        rf_numa_free(p, size);
    }
    assert_null(rf_numa_alloc_onnode(0, 0));
    rf_numa_free(NULL, 0);
}


/* A listener's address to its interface, then the interface's node from
 * the (fake) sysfs tree; what has no one NIC says so. */
static void test_addr_node(void **state)
{
    (void)state;
    put("sys/class/net/lo/device/numa_node", "1\n");
    rf_err err;
    int n = -2;
    char ifname[32] = "";
    assert_int_equal(rf_numa_addr_node(root, "127.0.0.1", &n, ifname, sizeof(ifname), &err), 0);
    assert_string_equal(ifname, "lo");
    assert_int_equal(n, 1);
    assert_int_equal(rf_numa_addr_node(root, "0.0.0.0", &n, ifname, sizeof(ifname), &err), -ENOENT);
    assert_non_null(strstr(err.msg, "every interface"));
    assert_int_equal(rf_numa_addr_node(root, "::", &n, NULL, 0, &err), -ENOENT);
    assert_int_equal(rf_numa_addr_node(root, "192.0.2.77", &n, NULL, 0, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no interface has the address 192.0.2.77"));
    assert_int_equal(rf_numa_addr_node(root, "eth0", &n, NULL, 0, &err), -EINVAL);
    /* The real tree: loopback has no device, so no node. */
    assert_int_equal(rf_numa_addr_node(NULL, "127.0.0.1", &n, NULL, 0, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no device node"));
}

/* The VMA policy at p as the kernel has it. */
static int policy_at(const void *p, int *node)
{
    unsigned long mask[16] = {0};
    int mode = -1;
    assert_int_equal(get_mempolicy(&mode, mask, 1024, (void *)p, MPOL_F_ADDR), 0);
    *node = -1;
    for (int i = 0; i < 1024; i++)
        if (mask[i / 64] >> (i % 64) & 1) {
            *node = i;
            break;
        }
    return mode;
}

static int thread_policy(void)
{
    unsigned long mask[16] = {0};
    int mode = -1;
    assert_int_equal(get_mempolicy(&mode, mask, 1024, NULL, 0), 0);
    return mode;
}

/* core/mem's allocation scope (numa.h, "Memory") on this machine's node 0:
 * what it maps is preferred for the node, what is small stays on the heap,
 * outside a scope nothing is bound, a refusal is counted and the memory
 * still comes, a policy set from outside is kept. */
static void test_alloc_scope(void **state)
{
    (void)state;
    if (!rf_numa_available())
        skip();
    int node;
    const size_t big = 1u << 20;
    void *p = rf_mem_zalloc(big, 64);
    assert_non_null(p);
    assert_int_equal(policy_at(p, &node), MPOL_DEFAULT); /* no scope: first touch */
    rf_mem_free(p, big);
    assert_int_equal(rf_mem_scope_node(), -1);

    rf_mem_scope s;
    rf_mem_scope_init(&s, 0);
    assert_int_equal(s.node, 0);
    rf_mem_scope_enter(&s);
    assert_int_equal(rf_mem_scope_node(), 0);
    assert_int_equal(thread_policy(), MPOL_PREFERRED);
    unsigned char *a = rf_mem_zalloc(big, 4096);
    void *h = rf_mem_huge_zalloc(4u << 20);
    rf_ring *r = rf_ring_create(4096, 64); /* 256 KiB of slots: a mapping */
    void *n = rf_numa_alloc_onnode(big, 0);
    void *small = rf_mem_zalloc(100, 64); /* the heap: not bound, not logged */
    void *gone = rf_mem_zalloc(big, 8);
    assert_true(a && h && r && n && small && gone);
    assert_int_equal((uintptr_t)a % 4096, 0);
    assert_int_equal(a[big - 1], 0);
    rf_mem_free(gone, big); /* freed in its scope: out of the log */
    const void *want[] = {a, h, r, n};
    assert_int_equal(s.n_log, 4);
    assert_int_equal(s.regions, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_ptr_equal(s.log[i].addr, want[i]);
        assert_int_equal(policy_at(want[i], &node), MPOL_PREFERRED);
        assert_int_equal(node, 0);
        int mode, pnode;
        assert_int_equal(rf_mem_policy_of(want[i], &mode, &pnode), 0);
        assert_int_equal(mode, MPOL_PREFERRED);
        assert_int_equal(pnode, 0);
    }
    assert_string_equal(s.log[0].what, "test_alloc_scope"); /* the calling function */
    assert_string_equal(s.log[2].what, "rf_ring_create");
    assert_string_equal(s.log[3].what, "rf_numa_alloc_onnode");
    assert_int_equal(policy_at(small, &node), MPOL_DEFAULT);
    assert_int_equal(s.refused, 0);
    /* A node the machine does not have: refused and counted, memory given. */
    unsigned char *odd = rf_mem_map_onnode_at(big, 63, "odd");
    assert_non_null(odd);
    assert_int_equal(odd[0], 0);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.refused_errno, EINVAL);
    assert_int_equal(s.n_log, 4);
    /* Nested, binding nothing: the thread's policy is the default inside. */
    rf_mem_scope none;
    rf_mem_scope_init(&none, -1);
    rf_mem_scope_enter(&none);
    assert_int_equal(thread_policy(), MPOL_DEFAULT);
    void *q = rf_mem_zalloc(big, 64);
    assert_int_equal(policy_at(q, &node), MPOL_DEFAULT);
    rf_mem_scope_leave(&none);
    assert_int_equal(thread_policy(), MPOL_PREFERRED);
    rf_mem_scope_leave(&s);
    assert_int_equal(thread_policy(), MPOL_DEFAULT);
    assert_int_equal(rf_mem_scope_node(), -1);
    /* Entered again: adds to the same log. */
    rf_mem_scope_enter(&s);
    void *again = rf_mem_zalloc(big, 64);
    rf_mem_scope_leave(&s);
    assert_int_equal(s.n_log, 5);
    assert_int_equal(policy_at(again, &node), MPOL_PREFERRED);
    rf_mem_free(again, big);
    rf_mem_free(q, big);
    rf_mem_huge_free(odd, big);
    rf_mem_free(small, 100);
    rf_numa_free(n, big);
    rf_ring_destroy(r);
    rf_mem_huge_free(h, 4u << 20);
    rf_mem_free(a, big);

    /* A policy from outside (numactl --membind=0): kept, nothing bound. */
    unsigned long m0 = 1;
    assert_int_equal(set_mempolicy(MPOL_BIND, &m0, 64), 0);
    rf_mem_scope k;
    rf_mem_scope_init(&k, 0);
    assert_true(k.kept_policy);
    assert_int_equal(k.node, -1);
    rf_mem_scope_enter(&k);
    void *kp = rf_mem_zalloc(big, 64);
    assert_int_equal(policy_at(kp, &node), MPOL_DEFAULT);
    rf_mem_scope_leave(&k);
    assert_int_equal(thread_policy(), MPOL_BIND);
    assert_int_equal(set_mempolicy(MPOL_DEFAULT, NULL, 0), 0);
    rf_mem_free(kp, big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpulist),
        cmocka_unit_test_setup_teardown(test_one_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_node_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_nodes_nic_on_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_four_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_tree, setup, teardown),
        cmocka_unit_test(test_host_and_alloc),
        cmocka_unit_test_setup_teardown(test_addr_node, setup, teardown),
        cmocka_unit_test(test_alloc_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
