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
            s.total, s.good, s.malformed, s.future, s.unrouted, softnet, dgrams, kdrops,
            lines_ok, rejected, events, ring, processed, unknown, unrouted, to_store, store_rej,
            bp, appended);

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
    fprintf(stderr, "stored=%lu fwd: routed=%lu lines_out=%lu drops=%lu peer_lines=%lu\n",
            stored, to_store + store_rej, fwd_lines_out, fwd_drops, peer_lines);
    assert_int_equal(stored, to_store);

    /* The equation, end to end. */
    const uint64_t accounted =
        kdrops + rejected + ring + unknown + unrouted + store_rej + stored;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_loss_reconciles, rel_teardown),
        cmocka_unit_test_teardown(test_stalled_forwarder_reconciles, rel_teardown),
        cmocka_unit_test_teardown(test_stop_reads_what_is_queued, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
