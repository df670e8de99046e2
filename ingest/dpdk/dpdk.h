/* Kernel-bypass UDP ingest on DPDK: ports whose RX queues are polled by the
 * workers, delivering UDP payloads to the same rf_listen_handler the io_uring
 * listeners use, so the daemon plugs a DPDK queue into a worker's shard the
 * way it plugs a listener set.
 *
 * This header includes no DPDK header: DPDK's compile flags (-march=corei7,
 * -include rte_config.h) stay on ingest/dpdk/dpdk.c. Built with -Ddpdk=disabled
 * the same functions exist (dpdk_stub.c): the configuration parser works, and
 * rf_dpdk_open fails with -ENOTSUP "DPDK: ringflow was built without DPDK".
 *
 * Shape
 *     control thread                          worker w (pinned)
 *     --------------                          -----------------
 *     rf_dpdk_config_parse()  (settings)
 *     rf_dpdk_open_ports(cfg, workers)   EAL, ports found: their NUMA nodes
 *       (place the workers)
 *     rf_dpdk_start(d, worker_node)      pools per node, queues, ports started
 *     (rf_dpdk_open = both, each queue on its port's node)
 *     rf_dpdk_queue_at(d, p, w)    queue w of port p belongs to worker w
 *     rf_dpdk_queue_set_handler()  x udp_ports, per queue (one parse context
 *                                  per worker and protocol)
 *                                             rf_dpdk_thread_register()
 *                                             rf_dpdk_queue_poll() in the loop
 *     rf_dpdk_queue_counter(), rf_dpdk_port_stats_get() (any time)
 *     rf_dpdk_close()  after every worker stopped polling
 *
 * Memory. Queue q is polled by worker q, so its descriptors, its state and
 * the mbufs it receives into belong on that worker's node: a port gets one
 * mbuf pool per node among its queues' workers (rf_dpdk_pool_plan), and each
 * queue is set up on its worker's node drawing from that node's pool. A
 * worker whose node is unknown (not pinned, no NUMA) takes the port's node,
 * and when that is unknown too, DPDK's choice (SOCKET_ID_ANY). A pool that
 * cannot be had on its node (no hugepages there) is created on any socket
 * instead, with a warning: the start never fails for placement. `mbufs`,
 * when set, is the port's total, shared between its pools in proportion to
 * their queues.
 *
 * Queues. A port gets rx_queues RX queues (0 = one per worker) and, with
 * rss: true and more than one queue, RSS on IP addresses and UDP ports, so a
 * flow always lands on the same queue. Queue q is polled by worker q only: no
 * queue is shared, so the poll path takes no lock and needs no atomics beyond
 * its single-writer counters. Devices without RSS (most vdevs) keep their own
 * queue split (net_pcap: one rx_pcap per queue; net_ring: one ring per queue),
 * with a warning.
 *
 * Receive path (rf_dpdk_queue_poll). One rte_eth_rx_burst; when it returns
 * packets, monotonic and wall time are read once; every frame is parsed in
 * place from the mbuf (no copy before the protocol parser):
 *   Ethernet; up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8, the older
 *     QinQ 0x9100); a third tag or another ethertype is not_ip.
 *   IPv4: version, IHL >= 5, total length >= IHL*4 (else bad_ip_header); total
 *     length beyond the frame is truncated (Ethernet padding after it is
 *     ignored); MF or a fragment offset is ip_fragment (not reassembled);
 *     header checksum verified in software unless the port offloads it (then
 *     the mbuf's RX_IP_CKSUM flag decides, software again when UNKNOWN).
 *   IPv6: version 6; payload length beyond the frame is truncated; extension
 *     headers Hop-by-Hop, Routing and Destination Options are skipped (at most
 *     4, bounds-checked); a Fragment header is ip_fragment; anything else
 *     (ESP, AH, No Next Header, ...) ends in not_udp.
 *   UDP: length >= 8 and <= the IP payload (bytes after it are ignored, as the
 *     kernel does), else bad_udp_length; checksum verified when present
 *     (IPv4: non-zero) and not offloaded; an IPv6 zero checksum is
 *     bad_udp_checksum (RFC 8200 forbids it).
 *   Multi-segment mbufs (frames larger than the mbuf data room; scatter is
 *     never enabled, but net_pcap chains jumbo frames) are dropped and counted
 *     as multi_segment, not linearised: size mbuf_size for the MTU instead.
 *   The UDP destination port selects the handler (dpdk.udp_ports, exactly as
 *     a listener's port selects its protocol); none bound: unknown_port. The
 *     destination MAC and IP address are not checked: the port is dedicated
 *     to ringflow (promiscuous by default), whatever reaches it is ours.
 * The payload goes to handler.on_data as one rf_listen_chunk: data points into
 * the mbuf, peer is the source address and port as a sockaddr_in/in6, mono_ns
 * and wall_ns are the burst's, conn and flags are 0, peer_text NULL. The
 * rf_listener argument is NULL for DPDK chunks. After the burst, on_burst_end
 * runs once for every handler that got data, and the mbufs are freed in bulk
 * (rte_pktmbuf_free_bulk): they are back in the pool before poll returns.
 *
 * Threads. rf_dpdk_queue_poll runs on one thread per queue. Worker threads are
 * not EAL lcores; rf_dpdk_thread_register gives one an lcore id so the mempool
 * uses its per-lcore cache (without it every alloc/free hits the pool's ring).
 * rte_eal_init pins its calling thread to the main lcore; rf_dpdk_open
 * restores the caller's previous affinity afterwards (the control thread is
 * unpinned by design).
 *
 * EAL can be initialised once per process: a second rf_dpdk_open, after a
 * success or a failure, returns -EALREADY.
 *
 * Errors are negative errno with an rf_err sentence starting "DPDK: ". */
#ifndef RF_INGEST_DPDK_H
#define RF_INGEST_DPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "ingest/listen/listen.h"

#define RF_DPDK_MAX_PORTS 8
#define RF_DPDK_MAX_UDP_PORTS 16
#define RF_DPDK_MAX_VDEVS 8
#define RF_DPDK_MAX_EAL_ARGS 32
#define RF_DPDK_ARG_MAX 256
#define RF_DPDK_MAX_QUEUES 64
#define RF_DPDK_BURST_MAX 256

typedef struct rf_dpdk_port_config {
    char name[RF_LISTENER_NAME_MAX]; /* logs, stats; default "port<i>" */
    /* Exactly one of these selects the device:
     *   device: the ethdev name: a PCI address ("0000:03:00.0") or a vdev
     *           name given in dpdk.vdevs ("net_pcap0");
     *   vdev:   a vdev definition ("net_pcap0,rx_pcap=/x.pcap"), added to the
     *           EAL arguments; the port is the ethdev named before the ',';
     *   port_id: the DPDK port number. */
    char device[RF_DPDK_ARG_MAX];
    char vdev[RF_DPDK_ARG_MAX];
    int32_t port_id;         /* -1 when device or vdev is used */
    uint16_t rx_queues;      /* 0 = one per worker; never more than workers */
    bool rss;                /* spread flows over the queues (default true) */
    bool promiscuous;        /* default true: the NIC belongs to ringflow */
    bool hw_checksum;        /* use RX checksum offload when offered (default true) */
    uint32_t mbufs;          /* pool size; 0 = enough for the rings and caches */
    uint32_t mbuf_cache;     /* per-lcore cache, default 256 */
    uint32_t mbuf_size;      /* data room per mbuf (bytes), default 2048 */
    uint16_t rx_descriptors; /* per queue, default 1024 (adjusted to the device) */
    uint16_t burst;          /* packets per rx_burst, 1..256, default 32 */
} rf_dpdk_port_config;

typedef struct rf_dpdk_udp_port {
    uint16_t port;
    enum rf_listen_protocol protocol;
} rf_dpdk_udp_port;

typedef struct rf_dpdk_config {
    bool enabled; /* default false */
    /* EAL main lcore: --lcores value; "" = the first CPU the process may run
     * on. Workers are ringflow's own threads, not EAL lcores. */
    char lcores[64];
    uint64_t memory_bytes; /* -m; 0 = EAL default (64 MiB with --no-huge) */
    bool huge_pages;       /* false: --no-huge (tests, no hugepages mounted) */
    bool pci;              /* false: --no-pci (vdevs only) */
    bool in_memory;        /* no files in /var/run/dpdk: --in-memory, or
                                      * --no-shconf with huge_pages: false */
    char file_prefix[64];  /* --file-prefix, default "ringflow" */
    char vdevs[RF_DPDK_MAX_VDEVS][RF_DPDK_ARG_MAX];
    uint32_t n_vdevs;
    char eal_args[RF_DPDK_MAX_EAL_ARGS][RF_DPDK_ARG_MAX]; /* appended last, verbatim */
    uint32_t n_eal_args;
    rf_dpdk_port_config ports[RF_DPDK_MAX_PORTS];
    uint32_t n_ports;
    rf_dpdk_udp_port udp_ports[RF_DPDK_MAX_UDP_PORTS];
    uint32_t n_udp_ports;
} rf_dpdk_config;

/* Defaults: disabled, no ports; udp_ports 8089 influx_line and 8125 statsd. */
void rf_dpdk_config_init(rf_dpdk_config *cfg);
void rf_dpdk_port_config_init(rf_dpdk_port_config *pc);

/* Parses the `dpdk:` section of the document (root = the top-level mapping;
 * an absent section is the defaults). Keys:
 *   enabled: bool                          false
 *   lcores: text                           ""
 *   memory: size                           0
 *   huge_pages: bool                       true
 *   pci: bool                              true
 *   in_memory: bool                        false
 *   file_prefix: text                      ringflow
 *   vdevs: [text]
 *   eal_args: [text]
 *   ports: [{name, device | vdev | port_id, rx_queues, rss, promiscuous,
 *            hw_checksum, mbufs, mbuf_cache, mbuf_size, rx_descriptors, burst}]
 *   udp_ports: [{port, protocol: influx_line | statsd | graphite}]
 * `enabled: true` requires at least one port. Duplicate port names, devices
 * and UDP ports are errors. Returns 0 or -EINVAL with err filled. */
typedef struct rf_cfg_node rf_cfg_node;
int rf_dpdk_config_parse(const rf_cfg_node *root, rf_dpdk_config *out, rf_err *err);

/* The protocol bound to a UDP port, or -1. */
int rf_dpdk_config_protocol_of(const rf_dpdk_config *cfg, uint16_t udp_port);

/* Whether this build has DPDK (false: rf_dpdk_open always fails). */
bool rf_dpdk_built(void);

typedef struct rf_dpdk rf_dpdk;
typedef struct rf_dpdk_queue rf_dpdk_queue;

/* Control thread: initialises EAL from cfg and finds every port
 * (rf_dpdk_open_ports), then creates the mbuf pools and configures and starts
 * every port with its queues, each queue on its port's node
 * (rf_dpdk_start(d, NULL)). `workers` is the count used for rx_queues: 0.
 * On failure nothing is left running and err says what to check, e.g.
 *   "DPDK: EAL init failed: No such device (args: ...) — check hugepages (or
 *    set dpdk.huge_pages: false), device binding (dpdk-devbind.py), permissions
 *    (root, or CAP_SYS_ADMIN, CAP_IPC_LOCK, CAP_NET_RAW) and the vdev/PCI names".
 * Returns 0, -ENOTSUP (built without DPDK), -EALREADY (EAL used before in this
 * process), -EINVAL (configuration the devices cannot do), -ENODEV, -ENOMEM. */
int rf_dpdk_open(const rf_dpdk_config *cfg, uint32_t workers, rf_dpdk **out, rf_err *err);

/* The two halves, for a caller that places its workers by the ports' nodes
 * and then wants each queue's memory on its worker's node. After
 * rf_dpdk_open_ports the port count, names and nodes are known and no queue
 * exists yet. rf_dpdk_start(d, worker_node): worker_node[w] is the node of
 * worker w (-1 unknown), for every worker given to rf_dpdk_open_ports, or
 * NULL (every queue on its port's node). Once only; on failure the ports are
 * closed again (rf_dpdk_close still frees d). Errors as rf_dpdk_open. */
int rf_dpdk_open_ports(const rf_dpdk_config *cfg, uint32_t workers, rf_dpdk **out, rf_err *err);
int rf_dpdk_start(rf_dpdk *d, const int16_t *worker_node, rf_err *err);

/* Which mbuf pools a port needs and which one each queue draws from (plain
 * C, no EAL: the rule of "Memory" above). Queue q's node is worker_node[q]
 * when given and >= 0, else port_node (-1 unknown); one pool per distinct
 * node, in order of first use; pool_node -1 = any socket. */
typedef struct rf_dpdk_pool_plan {
    uint32_t n_pools;
    int pool_node[RF_DPDK_MAX_QUEUES];
    uint16_t pool_queues[RF_DPDK_MAX_QUEUES]; /* queues drawing from pool i */
    uint8_t queue_pool[RF_DPDK_MAX_QUEUES];   /* pool of queue q */
    int queue_node[RF_DPDK_MAX_QUEUES];       /* node of queue q, -1 unknown */
} rf_dpdk_pool_plan;
void rf_dpdk_pool_plan_make(uint16_t n_queues, const int16_t *worker_node, int port_node,
                            rf_dpdk_pool_plan *out);
/* Mbufs of pool i when the port's total is `mbufs` (non-zero): its share by
 * queues, rounded up. */
uint32_t rf_dpdk_pool_plan_share(const rf_dpdk_pool_plan *plan, uint32_t pool, uint32_t mbufs);

/* Stops and closes the ports, frees the pools and cleans EAL up (no thread may
 * be polling). Safe on NULL. */
void rf_dpdk_close(rf_dpdk *d);

unsigned rf_dpdk_port_count(const rf_dpdk *d);
const char *rf_dpdk_port_name(const rf_dpdk *d, unsigned port);
/* NUMA node of the port's device, -1 when unknown (vdevs). */
int rf_dpdk_port_numa_node(const rf_dpdk *d, unsigned port);
/* The port's mbuf pools after rf_dpdk_start: how many, and the node each is
 * on (-1: any socket). */
unsigned rf_dpdk_port_pool_count(const rf_dpdk *d, unsigned port);
int rf_dpdk_port_pool_node(const rf_dpdk *d, unsigned port, unsigned pool);
unsigned rf_dpdk_queue_count(const rf_dpdk *d, unsigned port);
/* Node a queue was set up on (its descriptors, state and pool), -1 any. */
int rf_dpdk_queue_numa_node(const rf_dpdk_queue *q);
/* Queue `queue` of port `port` (worker `queue` polls it), NULL when out of range. */
rf_dpdk_queue *rf_dpdk_queue_at(rf_dpdk *d, unsigned port, unsigned queue);

/* Control thread, before the queue's worker polls: datagrams to udp_port go
 * to h (copied). udp_port must be one of cfg.udp_ports (-EINVAL otherwise). */
int rf_dpdk_queue_set_handler(rf_dpdk_queue *q, uint16_t udp_port, const rf_listen_handler *h,
                              rf_err *err);

/* Owning worker. Non-blocking: one rx_burst of up to min(max, burst) packets
 * (max 0 = burst), delivered as described above. Returns the number of packets
 * taken from the device (0 = idle). */
uint32_t rf_dpdk_queue_poll(rf_dpdk_queue *q, uint32_t max);

/* On a worker thread before polling: an EAL lcore id for this thread (mempool
 * cache). Returns 0, or a negative errno (the poll path still works, slower). */
int rf_dpdk_thread_register(rf_err *err);
void rf_dpdk_thread_unregister(void);

/* Queue counters: written only by the owning worker (relaxed stores once per
 * burst), read from any thread with relaxed loads; each value exact and
 * monotonic, not a snapshot of the others. */
enum rf_dpdk_counter_id {
    RF_DC_PACKETS = 0, /* frames taken from the device */
    RF_DC_DATAGRAMS,   /* UDP payloads delivered to a handler */
    RF_DC_BYTES,       /* payload bytes delivered */
    RF_DC_BURSTS,      /* non-empty rx bursts */
    RF_DC_CYCLES,      /* TSC cycles in our code per burst: parse + handlers,
                                  * not rx_burst nor the bulk free */
    RF_DC_DROP_NOT_IP, /* first drop reason: the drops run to RF_DC__COUNT */
    RF_DC_DROP_IP_FRAGMENT,
    RF_DC_DROP_BAD_IP_HEADER,
    RF_DC_DROP_BAD_IP_CHECKSUM,
    RF_DC_DROP_NOT_UDP,
    RF_DC_DROP_BAD_UDP_LENGTH,
    RF_DC_DROP_BAD_UDP_CHECKSUM,
    RF_DC_DROP_UNKNOWN_PORT,
    RF_DC_DROP_MULTI_SEGMENT,
    RF_DC_DROP_TRUNCATED,
    RF_DC__COUNT
};
#define RF_DC_DROP_FIRST RF_DC_DROP_NOT_IP
/* "packets", ..., "not_ip", "ip_fragment", ... (stable: stats socket names). */
const char *rf_dpdk_counter_name(enum rf_dpdk_counter_id id);
uint64_t rf_dpdk_queue_counter(const rf_dpdk_queue *q, enum rf_dpdk_counter_id id);
/* The queue's drops: their total, and in `reasons` the non-zero ones as
 * "name=n,name=n" (cut at cap; "" when none). For the stats socket's views. */
uint64_t rf_dpdk_queue_drops(const rf_dpdk_queue *q, char *reasons, size_t cap);

/* Device statistics (rte_eth_stats_get), control thread. For the PMDs used
 * here (pcap, ring, null, and the register-based stats of physical NICs)
 * reading them while a worker polls is safe: the PMD's per-queue counters are
 * aligned 64-bit words written by the polling thread; a read may miss the
 * latest burst, never tear on x86-64. */
typedef struct rf_dpdk_port_stats {
    uint64_t ipackets, ibytes;
    uint64_t imissed;   /* dropped by the NIC: RX ring full (workers too slow) */
    uint64_t ierrors;   /* bad frames seen by the NIC */
    uint64_t rx_nombuf; /* no mbuf to receive into: pool too small */
} rf_dpdk_port_stats;
int rf_dpdk_port_stats_get(rf_dpdk *d, unsigned port, rf_dpdk_port_stats *out, rf_err *err);

#endif
