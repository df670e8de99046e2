/* NUMA topology, worker placement and node-local allocation.
 *
 * Topology is read from sysfs under a root directory given by the caller ("/"
 * on a real host, a fake tree in tests), so placement is testable on any
 * machine:
 *   <root>/sys/devices/system/node/node<N>/cpulist   CPUs of node N
 *   <root>/sys/devices/system/cpu/online             fallback: one node 0
 *   <root>/sys/class/net/<if>/device/numa_node       node of a NIC by name
 *   <root>/sys/bus/pci/devices/<bdf>/numa_node       node of a PCI device
 * A numa_node of -1 (no NUMA, or firmware did not say) reads as "unknown".
 *
 * Placement rule (rf_numa_place):
 *   1. Overrides (engine.cpus): used as given, in order, one CPU per worker;
 *      each must be online and listed once; fewer CPUs than workers is an
 *      error. No other rule applies.
 *   2. Otherwise CPUs are taken node by node: the NIC's node first (when
 *      known), then the others by node number. Within a node, CPUs go in
 *      ascending order except CPU 0, which comes last in its node: it serves
 *      most interrupts and kernel housekeeping, and runs the control thread
 *      by default. Being on the NIC's node matters more than avoiding CPU 0
 *      (every packet crosses the interconnect otherwise), so CPU 0 is used
 *      before going to another node.
 *   3. More workers than CPUs: the order repeats (two workers share a CPU),
 *      and the placement says oversubscribed.
 *
 * Allocation: rf_numa_alloc_onnode uses libnuma (numa_alloc_onnode) when the
 * build has it and numa_available() says the kernel does; otherwise an
 * anonymous mapping whose pages land, by first touch, on the node of the
 * thread that writes them first (so workers should touch their own memory).
 * Either way the memory is zeroed and page-aligned; free with rf_numa_free.
 *
 * Nothing here is for the hot path; everything is control thread, at start. */
#ifndef RF_NUMA_H
#define RF_NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"

#define RF_NUMA_MAX_NODES 64
#define RF_NUMA_MAX_CPUS 1024
#define RF_NUMA_MAX_WORKERS 64

typedef struct rf_numa_cpuset {
    uint64_t bits[RF_NUMA_MAX_CPUS / 64];
} rf_numa_cpuset;

static inline bool rf_numa_cpuset_has(const rf_numa_cpuset *s, unsigned cpu)
{
    return cpu < RF_NUMA_MAX_CPUS && (s->bits[cpu / 64] >> (cpu % 64)) & 1u;
}
unsigned rf_numa_cpuset_count(const rf_numa_cpuset *s);

/* Parses a sysfs cpulist ("0-3,8,10-11\n"; empty = no CPU). Returns 0 or
 * -EINVAL (bad form, a CPU >= RF_NUMA_MAX_CPUS). */
int rf_numa_cpulist_parse(const char *text, rf_numa_cpuset *out);
/* Formats as a cpulist ("0-3,8"; "" when empty). Returns buf. */
char *rf_numa_cpulist_format(const rf_numa_cpuset *s, char *buf, size_t size);

typedef struct rf_numa_node {
    int id;                 /* the N of nodeN */
    rf_numa_cpuset cpus;
    unsigned n_cpus;
} rf_numa_node;

typedef struct rf_numa_topology {
    unsigned n_nodes;       /* >= 1 after a successful load */
    rf_numa_node nodes[RF_NUMA_MAX_NODES]; /* by ascending id */
    rf_numa_cpuset online;  /* union of the nodes' CPUs */
    bool from_nodes;        /* false: no node directory, one node 0 from cpu/online */
} rf_numa_topology;

/* Reads the topology under root (NULL or "" = "/"). Nodes without CPUs
 * (memory-only) are kept with n_cpus 0. Returns 0, or -ENOENT (neither the
 * node directories nor cpu/online exist), -EINVAL (unreadable cpulist). */
int rf_numa_topology_load(const char *root, rf_numa_topology *out, rf_err *err);

/* Node of a CPU, -1 when no node lists it. */
int rf_numa_node_of_cpu(const rf_numa_topology *t, unsigned cpu);

/* NUMA node of a network interface (by kernel name, e.g. "eth0") or a PCI
 * device ("0000:03:00.0"). *node = -1 when sysfs says -1 (unknown). Returns 0,
 * -ENOENT (no such device, or a virtual interface without a device), -EINVAL. */
int rf_numa_netdev_node(const char *root, const char *ifname, int *node, rf_err *err);
int rf_numa_pci_node(const char *root, const char *bdf, int *node, rf_err *err);

typedef struct rf_numa_request {
    uint32_t workers;             /* 1..RF_NUMA_MAX_WORKERS */
    int nic_node;                 /* -1: no NIC, or its node is unknown */
    const uint16_t *cpus;         /* overrides (engine.cpus), NULL/0 = none */
    uint32_t n_cpus;
} rf_numa_request;

typedef struct rf_numa_placement {
    uint32_t workers;
    uint16_t cpu[RF_NUMA_MAX_WORKERS];
    int16_t node[RF_NUMA_MAX_WORKERS]; /* node of cpu[i], -1 unknown */
    int nic_node;
    bool from_overrides;
    bool oversubscribed;          /* some CPU carries more than one worker */
    uint32_t off_nic_node;        /* workers not on the NIC's node (NIC node known) */
} rf_numa_placement;

/* Applies the rule above. Returns 0, or -EINVAL (bad request: workers 0 or too
 * many, an override CPU offline or listed twice, too few overrides) with err
 * filled. */
int rf_numa_place(const rf_numa_topology *t, const rf_numa_request *req, rf_numa_placement *out,
                  rf_err *err);

/* One line for `show info`, e.g.
 *   "numa: 2 nodes (node0 cpus 0-3, node1 cpus 4-7); nic node 1; rule: nic node
 *    first, cpu0 last; workers w0=cpu4/node1 w1=cpu5/node1; libnuma: yes"
 * Returns the length it needed (like snprintf). */
int rf_numa_placement_report(const rf_numa_topology *t, const rf_numa_placement *p, char *buf,
                             size_t size);

/* Whether node-bound allocation is in effect (libnuma built in and usable). */
bool rf_numa_available(void);
/* size bytes, zeroed, page-aligned, bound to `node` when rf_numa_available()
 * and node >= 0, else first-touch. NULL on failure. */
void *rf_numa_alloc_onnode(size_t size, int node);
void rf_numa_free(void *p, size_t size);

#endif
