/* DPDK ingest on one core, without a NIC (compiled with DPDK's flags, in its
 * own small library; built only when DPDK is found).
 *
 *   dpdk/ring/influx/<lines>  net_ring port: 1024 pre-built UDP/IPv4 frames
 *                             (line protocol, <lines> lines of 2 fields per
 *                             datagram, 8192 series) are enqueued 32 at a time
 *                             on the rte_ring behind the port, then one
 *                             rf_dpdk_queue_poll takes them: rx_burst, frame
 *                             parse with software IPv4 and UDP checksums,
 *                             handler, the real line-protocol parser, bulk
 *                             free. The frames are reused: a reference is
 *                             added before each enqueue, so the free only
 *                             drops it and no frame is rebuilt.
 *   dpdk/ring/noparse/<lines> the same with a handler that only counts: our
 *                             frame parsing and checksums without the
 *                             protocol parser ("events/s" is then datagrams).
 *   dpdk/null/drop            net_null port: rx_burst hands out frames with
 *                             no content (all zero), so this is the PMD, our
 *                             classification (not_ip) and the bulk free: the
 *                             floor of the poll path.
 *   dpdk/uring/influx/<lines> the same datagrams through the io_uring UDP
 *                             listener on loopback, same handler and parser;
 *                             the same thread sends them with sendmmsg (32
 *                             per call) and then polls, so this includes the
 *                             kernel's send and receive path.
 *
 * items/s is packets; "events/s" data events; "cyc/pkt" (DPDK only) is TSC
 * cycles per packet inside rf_dpdk_queue_poll after rx_burst returns and
 * before the bulk free (RF_DC_CYCLES): our parsing and the protocol parser,
 * not the PMD. "cyc/pkt_med" is the median over bursts (per packet): on a
 * loaded machine the sum includes preemptions, the median does not.
 *
 * EAL starts once, on the first dpdk/ benchmark run (--no-huge --no-pci, one
 * main lcore); with a filter that excludes them it never starts. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include "bench/shim/bench_shim.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"
#include "tests/dpdk/pkt_build.h"

#define N_FRAMES 1024
#define BURST 32
#define N_SERIES_HOSTS 4096
#define N_SAMPLES 65536

/* Per-burst cycle samples: the median is what a burst costs when the thread
 * is not preempted (the sum, on a loaded machine, is not). */
static uint64_t samples[N_SAMPLES];

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static double median_per_pkt(size_t n, unsigned pkts_per_burst)
{
    if (n == 0)
        return 0;
    if (n > N_SAMPLES)
        n = N_SAMPLES;
    qsort(samples, n, sizeof(samples[0]), cmp_u64);
    return (double)samples[n / 2] / pkts_per_burst;
}

/* ---- the handler: the real parser, events counted ---------------------- */

typedef struct sink {
    rf_parse_ctx *parser;
    rf_event batch[256];
    uint64_t events;
} sink;

static void sink_flush(void *user, rf_event *ev, size_t n)
{
    sink *s = user;
    s->events += rf_parse_output_discard(ev, n);
}

static void sink_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    (void)l;
    sink *s = ctx;
    const rf_recv_info rx = {.wall_ns = c->wall_ns, .mono_ns = c->mono_ns};
    rf_parse_influx(s->parser, &rx, c->data, c->len);
}

/* Frame parsing alone: the handler only counts. */
static void count_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    (void)l;
    sink *s = ctx;
    s->events += c->len != 0;
}

static void sink_burst_end(void *ctx, const rf_listener *l)
{
    (void)l;
    rf_parse_flush(((sink *)ctx)->parser);
}

static int sink_init(sink *s)
{
    memset(s, 0, sizeof(*s));
    rf_parse_config pc = {0};
    rf_err err;
    s->parser = rf_parse_ctx_new(&pc, s->batch, 256, sink_flush, s, &err);
    return s->parser ? 0 : -1;
}

/* The payload of datagram i: `lines` lines, 2 fields each. */
static size_t gen_payload(char *out, size_t cap, unsigned i, unsigned lines)
{
    size_t off = 0;
    for (unsigned l = 0; l < lines; l++) {
        unsigned h = (i * lines + l) % N_SERIES_HOSTS;
        off += (size_t)snprintf(out + off, cap - off,
                                "cpu,host=server-%04u.example.com,dc=eu-%u usage_user=%u.25,"
                                "usage_idle=%ui 1700000000%09u\n",
                                h, h % 4, (i + l) % 100, (i * 7 + l) % 100, i);
    }
    return off;
}

/* ---- EAL and the ports, once per process ---------------------------------- */

static rf_dpdk *dpdk;
static bool dpdk_tried;
static char dpdk_error[RF_ERR_MSG_MAX];
static struct rte_mempool *frame_pool;

static rf_dpdk *dpdk_env(void)
{
    if (dpdk_tried)
        return dpdk;
    dpdk_tried = true;
    rf_dpdk_config cfg;
    rf_dpdk_config_init(&cfg);
    cfg.enabled = true;
    cfg.huge_pages = false;
    cfg.pci = false;
    cfg.in_memory = true;
    cfg.memory_bytes = 256u << 20;
    snprintf(cfg.eal_args[cfg.n_eal_args++], RF_DPDK_ARG_MAX, "--no-telemetry");
    snprintf(cfg.eal_args[cfg.n_eal_args++], RF_DPDK_ARG_MAX, "--log-level=warning");
    rf_dpdk_port_config_init(&cfg.ports[0]);
    snprintf(cfg.ports[0].name, sizeof(cfg.ports[0].name), "ring");
    snprintf(cfg.ports[0].vdev, RF_DPDK_ARG_MAX, "net_ring0");
    rf_dpdk_port_config_init(&cfg.ports[1]);
    snprintf(cfg.ports[1].name, sizeof(cfg.ports[1].name), "null");
    snprintf(cfg.ports[1].vdev, RF_DPDK_ARG_MAX, "net_null0,size=64");
    cfg.n_ports = 2;
    rf_err err;
    if (rf_dpdk_open(&cfg, 1, &dpdk, &err) < 0) {
        snprintf(dpdk_error, sizeof(dpdk_error), "%s", err.msg);
        dpdk = NULL;
        return NULL;
    }
    if (rf_dpdk_thread_register(&err) < 0)
        fprintf(stderr, "%s\n", err.msg);
    frame_pool = rte_pktmbuf_pool_create("rf_bench_frames", 4 * N_FRAMES - 1, 0, 0,
                                         RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (!frame_pool) {
        snprintf(dpdk_error, sizeof(dpdk_error), "frame pool: %s", rte_strerror(rte_errno));
        rf_dpdk_close(dpdk);
        dpdk = NULL;
    }
    return dpdk;
}

static int build_frames(struct rte_mbuf **m, unsigned lines)
{
    static char payload[8192];
    static pb_frame f;
    for (unsigned i = 0; i < N_FRAMES; i++) {
        pb_spec s = {.family = 4,
                     .sport = (uint16_t)(20000 + i),
                     .dport = 8089,
                     .src4 = {10, 1, (uint8_t)(i >> 8), (uint8_t)i},
                     .dst4 = {10, 0, 0, 1}};
        size_t len = gen_payload(payload, sizeof(payload), i, lines);
        s.payload = payload;
        s.payload_len = (uint32_t)len;
        pb_build(&s, &f);
        m[i] = rte_pktmbuf_alloc(frame_pool);
        if (!m[i])
            return -1;
        char *dst = rte_pktmbuf_append(m[i], (uint16_t)f.len);
        if (!dst)
            return -1;
        memcpy(dst, f.b, f.len);
    }
    return 0;
}

static void run_ring(rf_bench_state *st, bool parse)
{
    unsigned lines = (unsigned)rf_bench_arg(st, 0);
    if (!dpdk_env()) {
        rf_bench_skip_with_error(st, dpdk_error);
        return;
    }
    struct rte_ring *ring = rte_ring_lookup("ETH_RXTX0_net_ring0");
    rf_dpdk_queue *q = rf_dpdk_queue_at(dpdk, 0, 0);
    static struct rte_mbuf *frames[N_FRAMES];
    static sink sk;
    rf_err err;
    if (!ring || !q || sink_init(&sk) < 0 || build_frames(frames, lines) < 0) {
        rf_bench_skip_with_error(st, "setup (ring lookup, parser or frames)");
        return;
    }
    rf_listen_handler h = {.on_data = parse ? sink_data : count_data,
                           .on_burst_end = parse ? sink_burst_end : NULL,
                           .ctx = &sk};
    rf_dpdk_queue_set_handler(q, 8089, &h, &err);
    uint64_t pk0 = rf_dpdk_queue_counter(q, RF_DC_PACKETS);
    uint64_t cy0 = rf_dpdk_queue_counter(q, RF_DC_CYCLES);
    uint64_t dg0 = rf_dpdk_queue_counter(q, RF_DC_DATAGRAMS);
    unsigned next = 0;
    uint64_t short_polls = 0;
    size_t n_samples = 0;
    while (rf_bench_keep_running(st)) {
        struct rte_mbuf **b = &frames[next];
        for (unsigned i = 0; i < BURST; i++)
            rte_mbuf_refcnt_update(b[i], 1); /* the poll's free drops this one */
        unsigned n = rte_ring_enqueue_burst(ring, (void **)b, BURST, NULL);
        uint64_t c0 = rf_dpdk_queue_counter(q, RF_DC_CYCLES);
        if (rf_dpdk_queue_poll(q, BURST) != n || n != BURST)
            short_polls++;
        samples[n_samples++ % N_SAMPLES] = rf_dpdk_queue_counter(q, RF_DC_CYCLES) - c0;
        next = (next + BURST) % N_FRAMES;
    }
    uint64_t pk = rf_dpdk_queue_counter(q, RF_DC_PACKETS) - pk0;
    uint64_t cy = rf_dpdk_queue_counter(q, RF_DC_CYCLES) - cy0;
    uint64_t dg = rf_dpdk_queue_counter(q, RF_DC_DATAGRAMS) - dg0;
    rf_bench_set_items_processed(st, (int64_t)pk);
    rf_bench_counter(st, "events/s", (double)sk.events, true);
    rf_bench_counter(st, "cyc/pkt", pk ? (double)cy / (double)pk : 0, false);
    rf_bench_counter(st, "cyc/pkt_med", median_per_pkt(n_samples, BURST), false);
    rf_bench_counter(st, "delivered", pk ? (double)dg / (double)pk : 0, false);
    if (short_polls)
        rf_bench_counter(st, "short_polls", (double)short_polls, false);
    rf_listen_handler none = {0};
    rf_dpdk_queue_set_handler(q, 8089, &none, &err);
    for (unsigned i = 0; i < N_FRAMES; i++)
        rte_pktmbuf_free(frames[i]);
    rf_parse_ctx_free(sk.parser);
}

static void bm_dpdk_ring(rf_bench_state *st)
{
    run_ring(st, true);
}

static void bm_dpdk_ring_noparse(rf_bench_state *st)
{
    run_ring(st, false);
}

static void bm_dpdk_null(rf_bench_state *st)
{
    if (!dpdk_env()) {
        rf_bench_skip_with_error(st, dpdk_error);
        return;
    }
    rf_dpdk_queue *q = rf_dpdk_queue_at(dpdk, 1, 0);
    uint64_t pk0 = rf_dpdk_queue_counter(q, RF_DC_PACKETS);
    uint64_t cy0 = rf_dpdk_queue_counter(q, RF_DC_CYCLES);
    size_t n_samples = 0;
    while (rf_bench_keep_running(st)) {
        uint64_t c0 = rf_dpdk_queue_counter(q, RF_DC_CYCLES);
        rf_dpdk_queue_poll(q, BURST);
        samples[n_samples++ % N_SAMPLES] = rf_dpdk_queue_counter(q, RF_DC_CYCLES) - c0;
    }
    uint64_t pk = rf_dpdk_queue_counter(q, RF_DC_PACKETS) - pk0;
    uint64_t cy = rf_dpdk_queue_counter(q, RF_DC_CYCLES) - cy0;
    rf_bench_set_items_processed(st, (int64_t)pk);
    rf_bench_counter(st, "cyc/pkt", pk ? (double)cy / (double)pk : 0, false);
    rf_bench_counter(st, "cyc/pkt_med", median_per_pkt(n_samples, BURST), false);
}

/* ---- the io_uring listener on the same stream ------------------------------ */

static void bm_uring(rf_bench_state *st)
{
    unsigned lines = (unsigned)rf_bench_arg(st, 0);
    static sink sk;
    rf_err err;
    rf_listener_set *set = NULL;
    rf_listener *l = NULL;
    if (sink_init(&sk) < 0 || rf_listener_set_new(&set, "bench", NULL, &err) < 0) {
        rf_bench_skip_with_error(st, "setup");
        return;
    }
    rf_listener_config lc;
    rf_listener_config_init(&lc);
    lc.transport = RF_LISTEN_UDP;
    lc.port = 0;
    lc.protocol = RF_LISTEN_PROTO_INFLUX_LINE;
    lc.rcvbuf_bytes = 8u << 20;
    lc.handler =
        (rf_listen_handler){.on_data = sink_data, .on_burst_end = sink_burst_end, .ctx = &sk};
    if (rf_listener_add(set, &lc, &l, &err) < 0 || rf_listener_set_start(set, &err) < 0) {
        rf_bench_skip_with_error(st, err.msg);
        rf_listener_set_free(set);
        rf_parse_ctx_free(sk.parser);
        return;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(rf_listener_port(l))};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    connect(fd, (struct sockaddr *)&to, sizeof(to));

    static char payloads[N_FRAMES][2048];
    static struct mmsghdr msgs[N_FRAMES];
    static struct iovec iov[N_FRAMES];
    for (unsigned i = 0; i < N_FRAMES; i++) {
        iov[i].iov_base = payloads[i];
        iov[i].iov_len = gen_payload(payloads[i], sizeof(payloads[i]), i, lines);
        msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1};
    }
    uint64_t got0 = rf_listener_counter(l, RF_LC_DATAGRAMS);
    uint64_t sent = 0;
    unsigned next = 0;
    while (rf_bench_keep_running(st)) {
        int n = sendmmsg(fd, &msgs[next], BURST, 0);
        if (n > 0)
            sent += (uint64_t)n;
        /* Loopback delivers during the send: the datagrams are queued. */
        for (int spins = 0; rf_listener_counter(l, RF_LC_DATAGRAMS) - got0 < sent && spins < 1000;
             spins++)
            rf_listener_set_poll(set);
        next = (next + BURST) % N_FRAMES;
    }
    uint64_t got = rf_listener_counter(l, RF_LC_DATAGRAMS) - got0;
    rf_bench_set_items_processed(st, (int64_t)got);
    rf_bench_counter(st, "events/s", (double)sk.events, true);
    rf_bench_counter(st, "lost", (double)(sent - got), false);
    close(fd);
    rf_listener_set_free(set);
    rf_parse_ctx_free(sk.parser);
}

RF_BENCH_REGISTER(dpdk_benchmarks)
{
    static const int64_t lines[] = {1, 10};
    rf_bench_register_args("dpdk/ring/influx", bm_dpdk_ring, lines, 2);
    rf_bench_register_args("dpdk/ring/noparse", bm_dpdk_ring_noparse, lines, 2);
    rf_bench_register("dpdk/null/drop", bm_dpdk_null);
    rf_bench_register_args("dpdk/uring/influx", bm_uring, lines, 2);
}
