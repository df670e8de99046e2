/* Faults around a running ringflowd:
 *   - the store's filesystem fills up (a 1 MiB tmpfs; skipped when it cannot
 *     be mounted): write errors counted, the shard reported failed in /health,
 *     the rest of the pipeline keeps every event; then the tmpfs is enlarged:
 *     the shards resume by themselves, /health is 200 again, every point sent
 *     afterwards is stored and the store-bound points reconcile to the point
 *     (stored + store_rejected + dropped_io_error_points = sent);
 *   - the same with the store's filesystem remounted read-only while running,
 *     then read-write;
 *   - a line-protocol TCP forwarder whose peer refuses, then comes back:
 *     backoff, circuit breaker, drops counted, reconnect, and the forwarder's
 *     equation holds;
 *   - SIGKILL at random moments during writes, then restart: the store opens,
 *     `ringflow query` serves every block written before the kill (RF_LONG=1:
 *     many more rounds);
 *   - event timestamps outside ingest.timestamp_past/future: rejected and
 *     counted by reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

/* `ringflow load` over TCP; returns the events it reports sent. */
static uint64_t load_tcp(int port, const char *extra)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' load --target 127.0.0.1:%d --transport tcp --quiet --json --timestamps %s",
             getenv("RINGFLOW"), port, extra);
    int rc;
    char *out = rel_sh(cmd, &rc);
    const char *ev = strstr(out, "\"events\":");
    uint64_t n = ev ? strtoull(ev + 9, NULL, 10) : 0;
    if (rc != 0 || !ev)
        fprintf(stderr, "load failed (%d): %s\n", rc, out);
    free(out);
    return n;
}

static char g_mounted[600];

/* Teardown: the tmpfs goes away even when an assertion failed. */
static int unmount_store(void **state)
{
    rel_teardown(state);
    if (g_mounted[0])
        umount2(g_mounted, MNT_DETACH);
    g_mounted[0] = '\0';
    return 0;
}

/* A tmpfs of `size` at ./store, or skip (exit 77) when this process cannot
 * mount (not root, no CAP_SYS_ADMIN, a container without tmpfs). */
static void mount_store(const char *prefix, const char *size)
{
    tproc_dir_init(prefix);
    snprintf(g_mounted, sizeof(g_mounted), "%s/store", tproc_dir());
    mkdir(g_mounted, 0755);
    char opt[64];
    snprintf(opt, sizeof(opt), "size=%s", size);
    if (mount("tmpfs", g_mounted, "tmpfs", 0, opt) != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): test skipped\n", strerror(errno));
        g_mounted[0] = '\0';
        skip();
    }
}

static int remount_store(unsigned long flags, const char *size)
{
    char opt[64];
    snprintf(opt, sizeof(opt), "size=%s", size);
    return mount("tmpfs", g_mounted, "tmpfs", MS_REMOUNT | flags, opt);
}

/* n lines of measurement "after" over `series` series, one TCP connection;
 * times now + i µs: every (series, time) distinct. Returns n when all were
 * written. */
static uint64_t send_after(int port, int n, int series)
{
    int fd = rel_tcp_to(port);
    if (fd < 0)
        return 0;
    const long long base = (long long)rel_now_ns();
    static char buf[1 << 16];
    size_t len = 0;
    uint64_t sent = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "after,s=s%d v=%d %lld\n", i % series,
                                i, base + (long long)i * 1000);
        if (len > sizeof(buf) - 128 || i == n - 1) {
            if (!rel_send_all(fd, buf, len))
                break;
            len = 0;
            sent = (uint64_t)i + 1;
        }
    }
    close(fd);
    return sent;
}

/* Polls /health until it answers `code` (or timeout_ms passed); returns the
 * last code, body in buf. */
static int wait_health(int http, int code, int timeout_ms, char *buf, size_t cap)
{
    int got = -1;
    for (int t = 0; t <= timeout_ms; t += 100) {
        got = rel_http_get(http, "/health", buf, cap);
        if (got == code)
            break;
        usleep(100 * 1000);
    }
    return got;
}

/* Storage rows: how many shards are in `state`, and whether any row's
 * column `col` contains `needle`. */
static int shards_in(const rf_json *st, const char *state)
{
    int n = 0;
    const rf_json *t = rf_json_get(st, "storage_shards");
    for (const rf_json *r = t ? t->child : NULL; r; r = r->next)
        n += strcmp(rf_json_str(r, "state", ""), state) == 0;
    return n;
}

static bool any_row_has(const rf_json *st, const char *col, const char *needle)
{
    const rf_json *t = rf_json_get(st, "storage_shards");
    for (const rf_json *r = t ? t->child : NULL; r; r = r->next)
        if (strstr(rf_json_str(r, col, ""), needle))
            return true;
    return false;
}

static void store_fault_config(const char *file, int port, int http, const char *extra_storage)
{
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: true, listen: 127.0.0.1:%d}\n"
             "storage:\n"
             "  dir: ./store\n"
             "  block_points: 64\n"
             "  block_max_age: 1s\n" /* partial blocks are cut (and lost) too */
             "  zstd_level: 0\n"
             "%s"
             "pipeline:\n"
             "  sinks:\n"
             "    - {name: store, type: store}\n"
             "    - {name: cnt, type: count_only}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [store, cnt]}\n",
             port, http, extra_storage);
    tproc_write_file(file, cfg);
}

/* ringflowd on store_fault_config(file, ...), running, /health 200. */
static void start_store_fault(proc *d, const char *file, int port, int http,
                              const char *extra_storage)
{
    store_fault_config(file, port, http, extra_storage);
    rel_start(d, (const char *[]){"--config", file, NULL});
    assert_true(tproc_wait_log(d, "msg=\"running:", 10000));
    char body[8192];
    assert_int_equal(rel_http_get(http, "/health", body, sizeof(body)), 200);
}

/* Stats once `processed` reached `events` and then stopped moving. Settled
 * alone means three equal reads 250 ms apart, and on a busy machine a worker
 * can stall that long: first wait for the events to arrive. */
static rf_json *settle_at(uint64_t events)
{
    for (int t = 0; t < 30000; t += 100) {
        rf_json *st = rel_show(NULL);
        uint64_t p = st ? rel_sum(st, "stages", "processed") : 0;
        rf_json_free(st);
        if (p >= events)
            break;
        usleep(100 * 1000);
    }
    return rel_show_settled(20000);
}

/* The shared second half: the fault is gone (the caller undid it). The
 * shards resume by themselves, /health is 200 again, every point sent from
 * now on is stored, and the store-bound points reconcile to the point. */
static void check_recovery(proc *d, int port, int http, uint64_t sent_before,
                           const char *errno_name)
{
    char body[8192];
    const int64_t t0 = rel_now_ns();
    int code = wait_health(http, 200, 30000, body, sizeof(body));
    fprintf(stderr, "/health %d %.1f s after the fault was undone: %s", code,
            (double)(rel_now_ns() - t0) / 1e9, body);
    assert_int_equal(code, 200);
    rf_json *st = rel_show_settled(20000);
    assert_non_null(st);
    assert_int_equal(shards_in(st, "degraded"), 0);
    assert_true(rel_sum(st, "storage_shards", "recoveries") >= 1);
    const uint64_t werr_at_recovery = rel_sum(st, "storage_shards", "write_errors");
    const uint64_t lost_at_recovery = rel_sum(st, "storage_shards", "dropped_io_error_points");
    rf_json_free(st);
    static char metrics[1 << 20];
    code = rel_http_get(http, "/metrics", metrics, sizeof(metrics));
    assert_int_equal(code, 200);
    assert_non_null(strstr(metrics, "ringflow_storage_degraded{shard=\"0\"} 0"));
    assert_non_null(strstr(metrics, "ringflow_storage_degraded{shard=\"1\"} 0"));

    /* Everything sent from now on is stored. */
    const int n_after = 20000;
    const uint64_t sent = sent_before + (uint64_t)n_after;
    assert_int_equal(send_after(port, n_after, 100), n_after);
    st = settle_at(sent);
    assert_non_null(st);
    const uint64_t processed = rel_sum(st, "stages", "processed");
    const uint64_t counted = rel_sum_where(st, "sinks", "accepted", "sink", "cnt");
    const uint64_t to_store = rel_sum(st, "stages", "to_store");
    const uint64_t rejected = rel_sum(st, "stages", "store_rejected");
    const uint64_t other_loss =
        rel_sum(st, "stages", "unknown_series") + rel_sum(st, "stages", "unrouted");
    const uint64_t werr = rel_sum(st, "storage_shards", "write_errors");
    const uint64_t lost_points = rel_sum(st, "storage_shards", "dropped_io_error_points");
    const uint64_t lost_blocks = rel_sum(st, "storage_shards", "dropped_io_error");
    rf_json_free(st);
    fprintf(
        stderr,
        "after the recovery: processed=%lu cnt=%lu to_store=%lu store_rejected=%lu of %lu sent\n",
        processed, counted, to_store, rejected, sent);
    assert_int_equal(processed, sent);
    assert_int_equal(counted, sent);
    assert_int_equal(to_store + rejected, sent);
    assert_int_equal(other_loss, 0);
    /* No error and no loss after the recovery. */
    assert_int_equal(werr, werr_at_recovery);
    assert_int_equal(lost_points, lost_at_recovery);

    kill(d->pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(d, 30000), 0);
    const char *log = tproc_read_file(d->err_path);
    /* The final summary agrees with the stats socket (nothing was lost at
     * close), and says which error it was. */
    assert_int_equal(rel_log_sum(log, "store shard-", "dropped_io_error_points"), lost_points);
    char key[16];
    snprintf(key, sizeof(key), "%s", errno_name);
    for (char *k = key; *k; k++)
        *k = (char)(*k | 0x20); /* the summary's keys are lower case */
    assert_true(rel_log_sum(log, "store shard-", key) >= 1);
    assert_non_null(strstr(log, "resumed persisting"));

    const uint64_t stored_before = rel_store_count_in("./store", "load"),
                   stored_after = rel_store_count_in("./store", "after");
    fprintf(stderr,
            "sent=%lu stored=%lu+%lu store_rejected=%lu dropped_io_error_points=%lu (in %lu "
            "blocks) write_errors=%lu\n",
            sent, stored_before, stored_after, rejected, lost_points, lost_blocks, werr);
    assert_int_equal(stored_after, n_after);
    /* To the point: every store-bound point is stored or counted. */
    assert_int_equal(stored_before + stored_after + rejected + lost_points, sent);
}

static void test_disk_full(void **state)
{
    (void)state;
    mount_store("rf-rel-full", "1m");
    const int port = tproc_port_base() + 6, http = port + 1;
    proc d;
    start_store_fault(&d, "full.yaml", port, http, "");

    /* Far more than 1 MiB of encoded blocks. */
    const uint64_t sent = load_tcp(port, "--count 600000 --rate 0 --series 2000 --sockets 2");
    assert_int_equal(sent, 600000);
    rf_json *st = settle_at(sent);
    assert_non_null(st);
    const uint64_t werr = rel_sum(st, "storage_shards", "write_errors");
    const uint64_t lost_blocks = rel_sum(st, "storage_shards", "dropped_io_error");
    const uint64_t lost_points = rel_sum(st, "storage_shards", "dropped_io_error_points");
    const uint64_t processed = rel_sum(st, "stages", "processed");
    const uint64_t counted = rel_sum_where(st, "sinks", "accepted", "sink", "cnt");
    fprintf(stderr, "write_errors=%lu blocks_lost=%lu points_lost=%lu processed=%lu cnt=%lu\n",
            werr, lost_blocks, lost_points, processed, counted);
    assert_true(werr > 0);
    /* Counted in points: each lost block held 1..64 of them. */
    assert_true(lost_points >= lost_blocks && lost_points <= 64 * lost_blocks && lost_blocks > 0);
    /* The rest of the pipeline kept every event. */
    assert_int_equal(processed, sent);
    assert_int_equal(counted, sent);
    /* Reported: show storage says degraded, since when and why. */
    assert_true(shards_in(st, "degraded") >= 1);
    assert_true(any_row_has(st, "write_errors_by_errno", "ENOSPC="));
    assert_true(any_row_has(st, "last_error", "No space left on device"));
    assert_true(any_row_has(st, "degraded_since", "T"));
    rf_json_free(st);
    /* /health names the degraded shard, the log says why. */
    char body[8192];
    int code = rel_http_get(http, "/health", body, sizeof(body));
    fprintf(stderr, "/health: %s\n", body);
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "store-shard-"));
    assert_non_null(strstr(body, "degraded by write errors"));
    assert_non_null(strstr(tproc_read_file(d.err_path), "No space left on device"));
    static char metrics[1 << 20];
    code = rel_http_get(http, "/metrics", metrics, sizeof(metrics));
    assert_int_equal(code, 200);
    assert_non_null(strstr(metrics, "errno=\"ENOSPC\""));
    assert_non_null(strstr(metrics, "ringflow_storage_dropped_io_error_points_total{shard=\""));
    assert_true(strstr(metrics, "ringflow_storage_degraded{shard=\"0\"} 1") ||
                strstr(metrics, "ringflow_storage_degraded{shard=\"1\"} 1"));
    /* Still serving: ingest and the stats socket work during the fault, and
     * it stays degraded (no room for a retry yet). */
    assert_int_equal(load_tcp(port, "--count 1000 --rate 0 --series 10"), 1000);
    usleep(300 * 1000);
    assert_int_equal(rel_http_get(http, "/health", body, sizeof(body)), 503);

    /* Room again: the shards resume by themselves. */
    assert_int_equal(remount_store(0, "64m"), 0);
    check_recovery(&d, port, http, sent + 1000, "ENOSPC");
}

static void test_readonly_remount(void **state)
{
    (void)state;
    mount_store("rf-rel-ro", "64m");
    const int port = tproc_port_base() + 10, http = port + 1;
    proc d;
    /* Segments close a second after they open, so that a shard between
     * bursts holds no file open for writing: the kernel refuses to remount
     * read-only (EBUSY) while one is. */
    start_store_fault(&d, "ro.yaml", port, http, "  segment_max_age: 1s\n");

    uint64_t sent = load_tcp(port, "--count 20000 --rate 0 --series 100");
    assert_int_equal(sent, 20000);
    rf_json_free(settle_at(sent));
    int rc = -1, tries = 0;
    for (; tries < 150 && (rc = remount_store(MS_RDONLY, "64m")) != 0; tries++)
        usleep(100 * 1000); /* EBUSY until both shards closed their segment */
    fprintf(stderr, "remounted read-only after %d tries (%s)\n", tries,
            rc ? strerror(errno) : "ok");
    assert_int_equal(rc, 0);

    /* Blocks cut now cannot get a segment. */
    sent += load_tcp(port, "--count 20000 --rate 0 --series 100 --seed 2");
    assert_int_equal(sent, 40000);
    rf_json_free(settle_at(sent));
    usleep(1500 * 1000); /* the partial blocks are cut by age, and lost, too */
    rf_json *st = rel_show_settled(20000);
    assert_non_null(st);
    const uint64_t werr = rel_sum(st, "storage_shards", "write_errors");
    const uint64_t lost_points = rel_sum(st, "storage_shards", "dropped_io_error_points");
    fprintf(stderr, "read-only: write_errors=%lu points_lost=%lu\n", werr, lost_points);
    assert_true(werr > 0);
    assert_true(lost_points > 0);
    assert_true(shards_in(st, "degraded") >= 1);
    assert_true(any_row_has(st, "write_errors_by_errno", "EROFS="));
    assert_true(any_row_has(st, "last_error", "Read-only file system"));
    rf_json_free(st);
    char body[8192];
    int code = rel_http_get(http, "/health", body, sizeof(body));
    fprintf(stderr, "/health: %s\n", body);
    assert_int_equal(code, 503);
    assert_non_null(strstr(body, "store-shard-"));
    static char metrics[1 << 20];
    code = rel_http_get(http, "/metrics", metrics, sizeof(metrics));
    assert_int_equal(code, 200);
    assert_non_null(strstr(metrics, "errno=\"EROFS\""));

    /* Writable again: the shards resume by themselves. */
    assert_int_equal(remount_store(0, "64m"), 0);
    check_recovery(&d, port, http, sent, "EROFS");
}

static void test_forwarder_refused_then_back(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-refused");
    const int port = tproc_port_base() + 8, peer = port + 1;
    char cfg[2048];
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
             "  batch: {max_events: 100, interval: 20ms}\n"
             "  sinks:\n"
             "    - {name: fwd, type: lp_tcp, host: 127.0.0.1, port: %d, buffer: 64KiB,\n"
             "       backoff: {base: 20ms, max: 200ms}, breaker: {failures: 3, cooldown: 300ms}}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [fwd]}\n",
             port, peer);
    proc d;
    assert_true(rel_start_config(&d, "refused.yaml", cfg, 10000));

    /* Nobody listens: refused connects, backoff, then the breaker opens. */
    uint64_t sent = load_tcp(port, "--rate 20000 --duration 1.5 --series 50");
    assert_true(sent > 0);
    assert_true(tproc_wait_log(&d, "circuit breaker open", 5000));
    rf_json *st = rel_show_settled(10000);
    const uint64_t disc = rel_sum_where(st, "sinks", "dropped_disconnected", "sink", "fwd");
    rf_json_free(st);
    assert_true(disc > 0);

    /* The peer comes back: the forwarder reconnects by itself. */
    int lfd = rel_tcp_listen(peer, 0);
    assert_true(lfd >= 0);
    sent += load_tcp(port, "--rate 20000 --duration 1.5 --series 50");
    assert_true(tproc_wait_log(&d, "connected, circuit breaker closed", 5000));
    st = rel_show_settled(10000);
    const rf_json *sinks = rf_json_get(st, "sinks");
    int connected = 0;
    for (const rf_json *r = sinks ? sinks->child : NULL; r; r = r->next)
        connected += strcmp(rf_json_str(r, "state", ""), "connected") == 0;
    const uint64_t processed = rel_sum(st, "stages", "processed");
    rf_json_free(st);
    assert_true(connected >= 1);
    assert_int_equal(processed, sent);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    const char *log = tproc_read_file(d.err_path);
    const uint64_t lines_out = rel_log_sum(log, "sink fwd final:", "lines_out");
    const uint64_t drops = rel_sink_final_drops(log, "fwd");
    const uint64_t peer_lines = rel_drain_peer(lfd);
    close(lfd);
    fprintf(stderr, "sent=%lu lines_out=%lu drops=%lu peer_lines=%lu\n", sent, lines_out, drops,
            peer_lines);
    assert_true(peer_lines > 0);
    assert_int_equal(peer_lines, lines_out);
    assert_int_equal(lines_out + drops, sent);
}

/* Kill -9 during writes, restart, query: every block written before the kill
 * is served after it, across rounds. Blocks are always full (64 points: no
 * age cuts, series in time order), so blocks_written x 64 is a floor. */
static void test_sigkill_restart(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-kill");
    const int port = tproc_port_base() + 3;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "storage:\n"
             "  block_points: 64\n"
             "  segment_max_bytes: 1MiB\n"
             "  durability: interval\n"
             "  sync_interval: 100ms\n",
             port);
    tproc_write_file("kill.yaml", cfg);
    const char *lng = getenv("RF_LONG");
    const int rounds = lng && strcmp(lng, "1") == 0 ? 40 : 4;
    srand((unsigned)getpid());
    uint64_t floor_points = 0, prev = 0;
    for (int r = 0; r < rounds; r++) {
        proc d;
        rel_start(&d, (const char *[]){"--config", "kill.yaml", NULL});
        assert_true(tproc_wait_log(&d, "msg=\"running:", 15000));
        if (r > 0)
            assert_non_null(strstr(tproc_read_file(d.err_path), "recovery:"));
        /* Writes in flight: a loader runs while we pick the moment. */
        char cmd[1024];
        snprintf(cmd, sizeof(cmd),
                 "'%s' load --target 127.0.0.1:%d --transport tcp --quiet --timestamps "
                 "--rate 200000 --duration 3 --series 500 --seed %d >/dev/null 2>&1 &",
                 getenv("RINGFLOW"), port, r + 1);
        free(rel_sh(cmd, NULL));
        usleep((useconds_t)(300 + rand() % 1200) * 1000);
        rf_json *st = rel_show(NULL);
        uint64_t blocks = st ? rel_sum(st, "storage_shards", "blocks_written") : 0;
        rf_json_free(st);
        kill(d.pid, SIGKILL);
        assert_int_equal(tproc_wait_exit(&d, 10000), 128 + SIGKILL);
        floor_points += blocks * 64;
        usleep(100 * 1000); /* let the loader notice */
        uint64_t got = rel_store_count("load");
        fprintf(stderr, "round %d: blocks_written>=%lu, store holds %lu points (floor %lu)\n", r,
                blocks, got, floor_points);
        assert_true(got >= floor_points);
        assert_true(got >= prev);
        prev = got;
    }
    free(rel_sh("sleep 3", NULL)); /* the last loaders end */
    /* A clean start and stop on what the crashes left. */
    proc d;
    rel_start(&d, (const char *[]){"--config", "kill.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 15000));
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    assert_true(rel_store_count("load") >= prev);
}

static void test_timestamp_window(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-ts");
    const int port = tproc_port_base() + 5;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "ingest: {timestamp_past: 1h, timestamp_future: 10m}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port);
    proc d;
    assert_true(rel_start_config(&d, "ts.yaml", cfg, 10000));
    const long long now = (long long)rel_now_ns(), h = 3600LL * 1000000000LL;
    char buf[1024];
    int n = snprintf(buf, sizeof(buf),
                     "t,h=a v=1 %lld\n"  /* now: kept */
                     "t,h=a v=2 %lld\n"  /* 2 h old: rejected */
                     "t,h=a v=3 %lld\n"  /* 1 h ahead: rejected */
                     "t,h=a v=4 %lld\n"  /* 50 min old: kept */
                     "t,h=a v=5 %lld\n"  /* year 2000: rejected */
                     "t,h=a v=6 %lld\n", /* year 2200: rejected */
                     now, now - 2 * h, now + h, now - 5 * h / 6, 946684800000000000LL,
                     7258118400000000000LL);
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, buf, (size_t)n), n);
    close(fd);
    rf_json *st = rel_show_settled(10000);
    assert_int_equal(rel_sum(st, "listeners", "lines_ok"), 2);
    assert_int_equal(rel_sum(st, "listeners", "rejected"), 4);
    assert_int_equal(rel_sum(st, "stages", "processed"), 2);
    const rf_json *rows = rf_json_get(st, "listeners");
    int found = 0;
    for (const rf_json *r = rows ? rows->child : NULL; r; r = r->next)
        found += strstr(rf_json_str(r, "rejects_by_reason", ""), "timestamp_window=4") != NULL;
    rf_json_free(st);
    assert_int_equal(found, 1);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_timestamp_window, rel_teardown),
        cmocka_unit_test_teardown(test_forwarder_refused_then_back, rel_teardown),
        cmocka_unit_test_teardown(test_disk_full, unmount_store),
        cmocka_unit_test_teardown(test_readonly_remount, unmount_store),
        cmocka_unit_test_teardown(test_sigkill_restart, rel_teardown),
    };
    /* The storage tests' tmpfs mounts live in this process's own mount
     * namespace, so they go away with it even when it dies before a
     * teardown (an abort in a helper). Without the privilege, mounting
     * fails too and those tests skip. */
    if (unshare(CLONE_NEWNS) == 0)
        (void)mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    if (getenv("RF_TEST_FILTER")) /* e.g. RF_TEST_FILTER='test_disk_*' */
        cmocka_set_test_filter(getenv("RF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
