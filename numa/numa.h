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
 * NIC node. The engine prefers, in order: DPDK port 0's node (what DPDK
 * reports for its device), then the node of the first listener (in
 * configuration order) bound to an address whose interface has one
 * (rf_numa_addr_node: the address's interface, then its
 * <root>/sys/class/net/<if>/device/numa_node). A wildcard or loopback address,
 * or a virtual interface, has no node and is passed over.
 *
 * Memory: how a worker's memory reaches its node. Decided: workers are
 * placed first, then the control thread allocates each worker's structures
 * (its struct and staging, its inbound rings, its shard: series table,
 * aggregation states and sketch pools, router, alert and correlation state,
 * the storage shard's buffers and slots) inside a core/mem allocation scope
 * for the worker's node, which gives every mapping the VMA policy
 * MPOL_PREFERRED for that node (mbind, from libnuma) before a page of it is
 * touched. Why not the alternatives:
 *   - first touch by the worker: ring slots are first written by the
 *     producing peer, and the tables are filled lazily by whoever touches a
 *     page first; a VMA policy holds for every page whoever faults it, now
 *     or after a reload;
 *   - allocating on the worker thread: the start is all-or-nothing on the
 *     control thread (a failure is reported before any thread runs), and
 *     rings must exist before either end starts;
 *   - numa_alloc_onnode / numa_tonode_memory: MPOL_BIND, so a full node
 *     fails the fault (OOM killer, SIGBUS) where PREFERRED spills to the next
 *     node, slower but alive.
 * A refused bind (no libnuma, a kernel without NUMA, seccomp) is logged once
 * per worker and leaves the memory to first touch; the start never fails
 * for it. On one node the cost is an mbind per region at start (a few dozen
 * per worker, microseconds) and nothing after: the policy changes nothing on
 * the fault path. DPDK mbufs come from hugepage memory DPDK places itself:
 * one pool per (port, node of the workers polling it), each worker's queue
 * drawing from its node's pool (ingest/dpdk). The listener buffer rings are
 * mapped by the worker itself after it is pinned (rf_listener_set_start on
 * the worker thread), so the default policy puts them on its node.
 *
 * rf_numa_alloc_onnode: a mapping (zeroed, page-aligned) bound to `node`
 * that way, when rf_numa_available() and node >= 0, else left to first
 * touch; free with rf_numa_free.
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
    int id; /* the N of nodeN */
    rf_numa_cpuset cpus;
    unsigned n_cpus;
} rf_numa_node;

typedef struct rf_numa_topology {
    unsigned n_nodes;                      /* >= 1 after a successful load */
    rf_numa_node nodes[RF_NUMA_MAX_NODES]; /* by ascending id */
    rf_numa_cpuset online;                 /* union of the nodes' CPUs */
    bool from_nodes; /* false: no node directory, one node 0 from cpu/online */
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
    uint32_t workers;     /* 1..RF_NUMA_MAX_WORKERS */
    int nic_node;         /* -1: no NIC, or its node is unknown */
    const uint16_t *cpus; /* overrides (engine.cpus), NULL/0 = none */
    uint32_t n_cpus;
} rf_numa_request;

typedef struct rf_numa_placement {
    uint32_t workers;
    uint16_t cpu[RF_NUMA_MAX_WORKERS];
    int16_t node[RF_NUMA_MAX_WORKERS]; /* node of cpu[i], -1 unknown */
    int nic_node;
    bool from_overrides;
    bool oversubscribed;   /* some CPU carries more than one worker */
    uint32_t off_nic_node; /* workers not on the NIC's node (NIC node known) */
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

/* NUMA node of the interface holding `address` (an IPv4 or IPv6 literal, as
 * a listener's `address`); its name into ifname (when ifname_size > 0).
 * *node = -1 when sysfs says -1. Returns 0, or -ENOENT (the wildcard
 * address, no interface holds it, or the interface has no device: loopback,
 * virtual), -EINVAL (not an address), -errno from getifaddrs. The sysfs
 * half reads under root (fake trees in tests); the address-to-interface half
 * asks the running kernel. */
int rf_numa_addr_node(const char *root, const char *address, int *node, char *ifname,
                      size_t ifname_size, rf_err *err);

/* Whether node-bound allocation is in effect (libnuma built in and usable). */
bool rf_numa_available(void);
/* size bytes, zeroed, page-aligned, bound to `node` (MPOL_PREFERRED) when
 * rf_numa_available() and node >= 0, else first-touch; logged in the
 * thread's core/mem scope when bound. NULL on failure. */
void *rf_numa_alloc_onnode(size_t size, int node);
void rf_numa_free(void *p, size_t size);

#endif
