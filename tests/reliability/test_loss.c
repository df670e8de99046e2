/* Loss accounting that reconciles, to the event.
 *
 * ringflowd runs overloaded on purpose: a 4 KiB UDP receive queue, rings of
 * 64 slots with full_policy drop_newest, a store with 4 slots of 16-point
 * blocks, and a line-protocol TCP forwarder whose peer never reads. A known
 * stream (one line per datagram, so a kernel datagram drop is one event)
 * mixes good lines with malformed ones, lines outside the timestamp window
 * and lines no route takes. After the daemon stops:
 *
 *   sent = kernel_drops + parser rejects + ring drops + unknown series
 *          + unrouted + store rejects (back-pressure) + points in the store
 *
 * with the points counted by `ringflow query` over the store on disk, and
 * for the forwarder
 *
 *   routed = lines the peer received + queue_full + disconnected + other drops
 *
 * with the lines counted at the peer. The stats socket (settled, before the
 * stop) and the shutdown summary must tell the same story. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

#define N_LINES 120000
#define SENDERS 4
#define SERIES 300

typedef struct sent_by_kind {
    uint64_t total, good, malformed, future, unrouted;
} sent_by_kind;

static void send_stream(int port, sent_by_kind *s)
{
    int fds[SENDERS];
    for (int k = 0; k < SENDERS; k++) {
        fds[k] = rel_udp_to(port);
        assert_true(fds[k] >= 0);
    }
    const int64_t t0 = rel_now_ns() - 60 * 1000000000LL;
    char line[256];
    for (int i = 0; i < N_LINES; i++) {
        int len;
        uint64_t *kind;
        int series = i % SERIES;
        if (i % 97 == 13) {
            len = snprintf(line, sizeof(line), "m,host=bad v=notanumber\n");
            kind = &s->malformed;
        } else if (i % 101 == 7) {
            len = snprintf(line, sizeof(line), "m,host=h%d v=1 %lld\n", series,
                           (long long)(t0 + 86400LL * 1000000000LL));
            kind = &s->future;
        } else if (i % 89 == 5) {
            len = snprintf(line, sizeof(line), "x,host=h%d v=%di %lld\n", series, i,
                           (long long)(t0 + i));
            kind = &s->unrouted;
        } else {
            len = snprintf(line, sizeof(line), "m,host=h%d v=%di %lld\n", series, i,
                           (long long)(t0 + i));
            kind = &s->good;
        }
        /* Series stay on one sender socket, so each series arrives in order. */
        if (send(fds[series % SENDERS], line, (size_t)len, 0) == len) {
            (*kind)++;
            s->total++;
        }
    }
    for (int k = 0; k < SENDERS; k++)
        close(fds[k]);
}

static void test_loss_reconciles(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-loss");
    const int port = tproc_port_base(), peer = port + 1;
    int lfd = rel_tcp_listen(peer, 4096);
    assert_true(lfd >= 0);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  ring: {capacity: 64, full_policy: drop_newest}\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: udp, transport: udp, protocol: influx_line, port: %d, rcvbuf: 4KiB}\n"
             "ingest:\n"
             "  timestamp_past: 1h\n"
             "  timestamp_future: 1h\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "storage:\n"
             "  block_points: 16\n"
             "  queue_blocks: 4\n"
             "  durability: never\n"
             "pipeline:\n"
             "  batch: {max_events: 64, interval: 50ms}\n"
             "  sinks:\n"
             "    - {name: store, type: store}\n"
             "    - {name: fwd, type: lp_tcp, host: 127.0.0.1, port: %d, buffer: 4KiB}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.m.>\", sinks: [store, fwd]}\n",
             port, peer);
    proc d;
    assert_true(rel_start_config(&d, "loss.yaml", cfg, 10000));

    const uint64_t softnet0 = rel_softnet_drops();
    sent_by_kind s = {0};
    send_stream(port, &s);
    const uint64_t softnet = rel_softnet_drops() - softnet0;

    rf_json *st = rel_show_settled(15000);
    assert_non_null(st);
    const uint64_t dgrams = rel_sum(st, "listeners", "datagrams");
    const uint64_t kdrops = rel_sum(st, "listeners", "kernel_drops");
    const uint64_t lines_ok = rel_sum(st, "listeners", "lines_ok");
    const uint64_t rejected = rel_sum(st, "listeners", "rejected");
    const uint64_t events = rel_sum(st, "listeners", "events");
    const uint64_t ring = rel_sum(st, "workers", "dropped_ring_full");
    const uint64_t processed = rel_sum(st, "stages", "processed");
    const uint64_t unknown = rel_sum(st, "stages", "unknown_series");
    const uint64_t unrouted = rel_sum(st, "stages", "unrouted");
    const uint64_t to_store = rel_sum(st, "stages", "to_store");
    const uint64_t store_rej = rel_sum(st, "stages", "store_rejected");
    const uint64_t bp = rel_sum(st, "storage_shards", "dropped_backpressure");
    const uint64_t appended = rel_sum(st, "storage_shards", "points_appended");
    rf_json_free(st);
    fprintf(stderr,
            "sent=%lu (good=%lu malformed=%lu future=%lu unrouted=%lu) softnet_drops=%lu\n"
            "datagrams=%lu kernel_drops=%lu lines_ok=%lu rejected=%lu events=%lu ring_drops=%lu\n"
            "processed=%lu unknown=%lu unrouted=%lu to_store=%lu store_rejected=%lu "
            "(backpressure=%lu appended=%lu)\n",
            s.total, s.good, s.malformed, s.future, s.unrouted, softnet, dgrams, kdrops, lines_ok,
            rejected, events, ring, processed, unknown, unrouted, to_store, store_rej, bp,
            appended);

    /* The overload must be real, or this proves nothing. */
    assert_true(kdrops > 0);
    /* Datagrams: received or dropped by the kernel, one line each. Loopback
     * backlog drops happen before any socket: the host counts them. */
    assert_true(dgrams + kdrops <= s.total);
    assert_true(s.total - (dgrams + kdrops) <= softnet);
    assert_int_equal(lines_ok + rejected, dgrams);
    assert_int_equal(events, lines_ok);
    assert_true(rejected > 0);
    /* Events: processed or dropped by reason. */
    assert_int_equal(processed + unknown + ring, events);
    assert_int_equal(to_store + store_rej + unrouted, processed);
    assert_int_equal(store_rej, bp);
    assert_int_equal(appended, to_store);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    const char *log = tproc_read_file(d.err_path);
    /* The shutdown summary agrees with the settled stats. */
    assert_int_equal(rel_log_sum(log, "listener udp final:", "kernel_drops"), kdrops);
    assert_int_equal(rel_log_sum(log, "listener udp final:", "lines_rejected"), rejected);
    assert_int_equal(rel_log_sum(log, "component=engine", "dropped_ring_full"), ring);
    /* (the sink summary lines carry no to_store key) */
    assert_int_equal(rel_log_sum(log, "component=pipeline msg=\"worker-", "to_store"), to_store);
    const uint64_t fwd_lines_out = rel_log_sum(log, "sink fwd final:", "lines_out");
    const uint64_t fwd_drops = rel_sink_final_drops(log, "fwd");

    /* What is in the store, read back from disk. */
    const uint64_t stored = rel_store_count("m");
    const uint64_t peer_lines = rel_drain_peer(lfd);
    close(lfd);
    fprintf(stderr, "stored=%lu fwd: routed=%lu lines_out=%lu drops=%lu peer_lines=%lu\n", stored,
            to_store + store_rej, fwd_lines_out, fwd_drops, peer_lines);
    assert_int_equal(stored, to_store);

    /* The equation, end to end. */
    const uint64_t accounted = kdrops + rejected + ring + unknown + unrouted + store_rej + stored;
    assert_true(accounted <= s.total);
    assert_true(s.total - accounted <= softnet);

    /* The forwarder: every event routed to it was either received by the
     * peer or dropped and counted. */
    assert_int_equal(peer_lines, fwd_lines_out);
    assert_int_equal(fwd_lines_out + fwd_drops, to_store + store_rej);
}

/* A forwarder whose peer accepts but never reads, fed over TCP (nothing is
 * lost before the sink): the kernel buffers fill, the sink's bounded queue
 * fills, and every event is either received by the peer or counted as a
 * drop, including what is still queued when the daemon stops. */
static void test_stalled_forwarder_reconciles(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-fwd");
    const int port = tproc_port_base() + 2, peer = port + 1;
    int lfd = rel_tcp_listen(peer, 4096);
    assert_true(lfd >= 0);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  batch: {max_events: 256, interval: 20ms}\n"
             "  sinks:\n"
             "    - {name: fwd, type: lp_tcp, host: 127.0.0.1, port: %d, buffer: 64KiB}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [fwd]}\n",
             port, peer);
    proc d;
    assert_true(rel_start_config(&d, "fwd.yaml", cfg, 10000));

    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' load --target 127.0.0.1:%d --transport tcp --sockets 4 --count 400000 "
             "--rate 0 --series 200 --timestamps --quiet --json",
             getenv("RINGFLOW"), port);
    int rc;
    char *out = rel_sh(cmd, &rc);
    assert_int_equal(rc, 0);
    const char *ev = strstr(out, "\"events\":");
    assert_non_null(ev);
    const uint64_t sent = strtoull(ev + 9, NULL, 10);
    free(out);
    assert_int_equal(sent, 400000);

    rf_json *st = rel_show_settled(15000);
    assert_non_null(st);
    const uint64_t events = rel_sum(st, "listeners", "events");
    const uint64_t processed = rel_sum(st, "stages", "processed");
    const uint64_t qfull = rel_sum_where(st, "sinks", "dropped_queue_full", "sink", "fwd");
    rf_json_free(st);
    assert_int_equal(events, sent);
    assert_int_equal(processed, sent);
    assert_true(qfull > 0); /* the downstream really stalled */

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    const char *log = tproc_read_file(d.err_path);
    const uint64_t lines_out = rel_log_sum(log, "sink fwd final:", "lines_out");
    const uint64_t drops = rel_sink_final_drops(log, "fwd");
    const uint64_t peer_lines = rel_drain_peer(lfd);
    close(lfd);
    fprintf(stderr, "sent=%lu processed=%lu fwd lines_out=%lu drops=%lu peer_lines=%lu\n", sent,
            processed, lines_out, drops, peer_lines);
    assert_int_equal(peer_lines, lines_out);
    assert_int_equal(lines_out + drops, sent);
}

/* UDP datagrams the host delivered to no socket (Udp: NoPorts in
 * /proc/net/snmp): where datagrams sent after the daemon closed its
 * sockets go. */
static uint64_t udp_noports(void)
{
    FILE *f = fopen("/proc/net/snmp", "r");
    if (!f)
        return 0;
    char head[1024], vals[1024];
    uint64_t v = 0;
    while (fgets(head, sizeof(head), f) && fgets(vals, sizeof(vals), f)) {
        if (strncmp(head, "Udp:", 4) != 0)
            continue;
        /* The header line names the columns; the next holds the values. */
        int col = 0, want = -1;
        for (char *save = NULL, *t = strtok_r(head + 4, " \n", &save); t;
             t = strtok_r(NULL, " \n", &save), col++)
            if (!strcmp(t, "NoPorts"))
                want = col;
        col = 0;
        for (char *save = NULL, *t = strtok_r(vals + 4, " \n", &save); t;
             t = strtok_r(NULL, " \n", &save), col++)
            if (col == want)
                v = strtoull(t, NULL, 10);
        break;
    }
    fclose(f);
    return v;
}

/* Stopped in the middle of a storm: what the kernel had already queued on
 * the sockets is read and processed before they close, so every datagram
 * the generator sent is received, dropped by the kernel (counted), or sent
 * after the sockets closed (the host's NoPorts). Before, the queues were
 * closed unread and their datagrams lost without a count. */
static void test_stop_reads_what_is_queued(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-stop");
    const int port = tproc_port_base();
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2}\n"
             "listeners:\n"
             "  - {name: udp, transport: udp, protocol: influx_line, port: %d, rcvbuf: 8MiB}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port);
    proc d;
    assert_true(rel_start_config(&d, "stop.yaml", cfg, 10000));
    const uint64_t noports0 = udp_noports();
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' load --target 127.0.0.1:%d --rate 0 --duration 4 --sockets 4 --series 2000 "
             "--json --quiet > load.json 2>/dev/null &",
             getenv("RINGFLOW"), port);
    free(rel_sh(cmd, NULL));
    usleep(1500 * 1000);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 60000), 0);
    /* The generator runs to its end (sending into closed ports). */
    char *lj = NULL;
    for (int i = 0; i < 100; i++) {
        free(lj);
        int st;
        lj = rel_sh("cat load.json", &st);
        if (lj && strstr(lj, "\"sends\""))
            break;
        usleep(100 * 1000);
    }
    assert_non_null(strstr(lj, "\"sends\""));
    const uint64_t sends = strtoull(strstr(lj, "\"sends\":") + 8, NULL, 10);
    free(lj);
    const uint64_t noports = udp_noports() - noports0;
    const char *log = tproc_read_file(d.err_path);
    const uint64_t received = rel_log_sum(log, "listener udp final:", "datagrams");
    const uint64_t kdrops = rel_log_sum(log, "listener udp final:", "kernel_drops");
    fprintf(stderr,
            "stop under a storm: %lu datagrams sent = %lu received + %lu dropped by the kernel + "
            "%lu after the sockets closed (%+ld)\n",
            (unsigned long)sends, (unsigned long)received, (unsigned long)kdrops,
            (unsigned long)noports, (long)(sends - received - kdrops - noports));
    assert_true(received > 0 && noports > 0); /* it really stopped mid-stream */
    assert_int_equal(sends, received + kdrops + noports);
}

/* ---- TCP at stop and at reload ------------------------------------------- */

/* Every line has this many bytes, so the lines the daemon's kernel took are
 * the sender's acknowledged bytes divided by it, and a remainder is one
 * line the daemon holds unterminated. */
#define TCP_LINE_LEN 23
#define TCP_CONNS 4

typedef struct tcp_tally {
    uint64_t lines;    /* complete lines the daemon's kernel acknowledged */
    uint64_t partials; /* connections whose acknowledged bytes end mid-line */
} tcp_tally;

/* Sends fixed-length lines on TCP_CONNS non-blocking connections until every
 * one has failed (the daemon refused more) or max_ms passed; at trigger_ms
 * calls trigger(pid) once. What counts is what the daemon's kernel
 * acknowledged (tcpi_bytes_acked): TCP delivers that to the socket, so the
 * daemon must parse it or count it; what it never acknowledged it never
 * received. */
static tcp_tally tcp_send_through(int port, int trigger_ms, void (*trigger)(pid_t), pid_t pid,
                                  int max_ms)
{
    int fds[TCP_CONNS];
    for (int c = 0; c < TCP_CONNS; c++) {
        fds[c] = rel_tcp_to(port);
        assert_true(fds[c] >= 0);
        fcntl(fds[c], F_SETFL, fcntl(fds[c], F_GETFL) | O_NONBLOCK);
        /* Each line goes in two sends, each its own segment, so the
         * daemon's kernel often stops taking bytes in the middle of a line
         * and the cut lines are counted too. */
        int one = 1;
        setsockopt(fds[c], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    bool dead[TCP_CONNS] = {false};
    size_t off[TCP_CONNS] = {0};
    char line[TCP_CONNS][TCP_LINE_LEN + 1];
    uint32_t seq[TCP_CONNS] = {0};
    for (int c = 0; c < TCP_CONNS; c++)
        snprintf(line[c], sizeof(line[c]), "tcploss,c=%d v=%07ui\n", c, seq[c]);
    const int64_t t0 = rel_now_ns();
    bool triggered = false;
    int alive = TCP_CONNS;
    while (alive > 0) {
        int64_t ms = (rel_now_ns() - t0) / 1000000;
        if (!triggered && ms >= trigger_ms) {
            trigger(pid);
            triggered = true;
        }
        if (ms >= max_ms)
            break;
        struct pollfd pf[TCP_CONNS];
        for (int c = 0; c < TCP_CONNS; c++)
            pf[c] = (struct pollfd){.fd = dead[c] ? -1 : fds[c], .events = POLLOUT};
        if (poll(pf, TCP_CONNS, 10) <= 0)
            continue;
        for (int c = 0; c < TCP_CONNS; c++) {
            if (dead[c] || !(pf[c].revents & (POLLOUT | POLLERR | POLLHUP)))
                continue;
            for (int k = 0; k < 64; k++) {
                const size_t piece = off[c] < 10 ? 10 - off[c] : TCP_LINE_LEN - off[c];
                ssize_t n = send(fds[c], line[c] + off[c], piece, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK) {
                        dead[c] = true;
                        alive--;
                    }
                    break;
                }
                off[c] += (size_t)n;
                if (off[c] == TCP_LINE_LEN) {
                    off[c] = 0;
                    seq[c] = (seq[c] + 1) % 10000000u;
                    snprintf(line[c], sizeof(line[c]), "tcploss,c=%d v=%07ui\n", c, seq[c]);
                }
            }
        }
    }
    assert_true(triggered);
    tcp_tally t = {0, 0};
    for (int c = 0; c < TCP_CONNS; c++) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        memset(&ti, 0, sizeof(ti));
        assert_int_equal(getsockopt(fds[c], IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
        assert_true(len >=
                    offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked));
        /* tcpi_bytes_acked counts the SYN's sequence number too (and no
         * FIN: this side never sent one). */
        assert_true(ti.tcpi_bytes_acked >= 1);
        const uint64_t data = ti.tcpi_bytes_acked - 1;
        t.lines += data / TCP_LINE_LEN;
        t.partials += data % TCP_LINE_LEN != 0;
        close(fds[c]);
    }
    return t;
}

static void trigger_sigint(pid_t pid)
{
    kill(pid, SIGINT);
}

static void trigger_reload(pid_t pid)
{
    /* Only max_line differs from the running listener: it is replaced. */
    char from[512], to[512];
    snprintf(from, sizeof(from), "%s/tcp2.yaml", tproc_dir());
    snprintf(to, sizeof(to), "%s/tcp.yaml", tproc_dir());
    assert_int_equal(rename(from, to), 0);
    kill(pid, SIGHUP);
}

/* Every line whose bytes the daemon's kernel acknowledged is parsed and
 * stored, and a line cut by the end of the connection is counted as
 * partial_lines_discarded, in the final summary and (while running) in
 * show listeners and on /metrics. */
static void tcp_check(const char *what, const tcp_tally *t, const char *log)
{
    const uint64_t stored = rel_store_count("tcploss");
    const uint64_t rejected = rel_log_sum(log, "listener tcp final:", "lines_rejected");
    const uint64_t partial = rel_log_sum(log, "listener tcp final:", "partial_lines_discarded");
    fprintf(stderr,
            "%s: %lu complete lines acknowledged = %lu stored + %lu rejected (%+ld); %lu cut "
            "mid-line = %lu partial_lines_discarded\n",
            what, (unsigned long)t->lines, (unsigned long)stored, (unsigned long)rejected,
            (long)(t->lines - stored - rejected), (unsigned long)t->partials,
            (unsigned long)partial);
    assert_true(t->lines > 1000); /* it really stopped mid-stream */
    assert_int_equal(t->lines, stored + rejected);
    assert_non_null(strstr(log, "partial_lines_discarded="));
    assert_int_equal(t->partials, partial);
}

static const char *tcp_config(int port, const char *max_line)
{
    static char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d, max_line: %s}\n"
             "stats: {prometheus: {enabled: true, listen: 127.0.0.1:%d}}\n",
             port, max_line, port + 1);
    return cfg;
}

/* A line cut by a reset is counted while the daemon runs, in show listeners
 * and on /metrics (it was counted and shown nowhere). */
static uint64_t tcp_reset_mid_line(int port)
{
    const uint64_t cut = 1;
    rf_json *doc = rel_show("show listeners json");
    assert_non_null(doc);
    const uint64_t bytes0 = rel_sum(doc, "listeners", "bytes");
    rf_json_free(doc);
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);
    assert_true(rel_send_all(fd, "tcploss,c=9 v=1", 15));
    /* The reset only once the daemon has read the bytes: then they are its
     * to count, not the kernel's to throw away with the connection. */
    uint64_t bytes = bytes0;
    for (int i = 0; i < 200 && bytes < bytes0 + 15; i++) {
        doc = rel_show("show listeners json");
        bytes = doc ? rel_sum(doc, "listeners", "bytes") : 0;
        rf_json_free(doc);
        if (bytes < bytes0 + 15)
            usleep(20 * 1000);
    }
    assert_int_equal(bytes, bytes0 + 15);
    struct linger lg = {1, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
    uint64_t shown = 0;
    for (int i = 0; i < 100 && shown != cut; i++) {
        doc = rel_show("show listeners json");
        shown = doc ? rel_sum(doc, "listeners", "partial_lines_discarded") : 0;
        rf_json_free(doc);
        if (shown != cut)
            usleep(50 * 1000);
    }
    assert_int_equal(shown, cut);
    char body[65536];
    assert_int_equal(rel_http_get(port + 1, "/metrics", body, sizeof(body)), 200);
    uint64_t metric = 0;
    for (const char *p = body; (p = strstr(p, "\nringflow_listener_partial_lines_discarded"));) {
        p = strchr(p, '}');
        metric += strtoull(p + 1, NULL, 10);
    }
    assert_int_equal(metric, cut);

    return cut;
}

static void test_tcp_stop_loses_nothing_uncounted(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-tcpstop");
    const int port = tproc_port_base();
    proc d;
    assert_true(rel_start_config(&d, "tcp.yaml", tcp_config(port, "64KiB"), 10000));
    const uint64_t reset = tcp_reset_mid_line(port);
    tcp_tally t = tcp_send_through(port, 1000, trigger_sigint, d.pid, 20000);
    t.partials += reset;
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    tcp_check("TCP at stop", &t, tproc_read_file(d.err_path));
}

static void test_tcp_reload_loses_nothing_uncounted(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-tcpreload");
    const int port = tproc_port_base();
    proc d;
    assert_true(rel_start_config(&d, "tcp.yaml", tcp_config(port, "64KiB"), 10000));
    tproc_write_file("tcp2.yaml", tcp_config(port, "32KiB"));
    tcp_tally t = tcp_send_through(port, 1000, trigger_reload, d.pid, 20000);
    assert_true(tproc_wait_log(&d, "listener tcp: removed", 10000));

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    tcp_check("TCP at reload", &t, tproc_read_file(d.err_path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_loss_reconciles, rel_teardown),
        cmocka_unit_test_teardown(test_stalled_forwarder_reconciles, rel_teardown),
        cmocka_unit_test_teardown(test_stop_reads_what_is_queued, rel_teardown),
        cmocka_unit_test_teardown(test_tcp_stop_loses_nothing_uncounted, rel_teardown),
        cmocka_unit_test_teardown(test_tcp_reload_loses_nothing_uncounted, rel_teardown),
    };
    if (getenv("RF_TEST_FILTER")) /* one test by name, for a quick run by hand */
        cmocka_set_test_filter(getenv("RF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
