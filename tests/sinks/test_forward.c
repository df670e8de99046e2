/* The HTTP forwarders against real receivers, each started by the test on
 * loopback ports of its own with its data in the temp dir:
 *   vm_prom        prom_remote_write -> victoria-metrics /api/v1/write
 *   vm_influx      influx_http (gzip) -> victoria-metrics /write
 *   prometheus     prom_remote_write -> prometheus --web.enable-remote-write-receiver
 *   influxdb       influx_http -> influxd 1.6 /write
 *   disk_kill      disk buffer: receiver down, SIGKILL ringflowd, restart it,
 *                  start the receiver: every point arrives once
 *   retry          a receiver answering 503, 503, 429 (Retry-After: 1), then 204
 *   reject         a receiver answering 400: the batches are dropped, counted
 *   kill_in_flight SIGKILL while the receiver holds a request: after the
 *                  restart every point arrives, the duplicates are exactly
 *                  the request in flight and counted as redelivered
 *   block          receiver down, a 1 MiB disk buffer (policy block, the
 *                  default): the TCP client is held back, nothing is
 *                  dropped; the receiver comes up and every point arrives
 *                  exactly once
 *   outage         steady load; victoria-metrics stopped for
 *                  RF_OUTAGE_SECONDS (8 s; scripts/forward-outage.sh runs
 *                  60 s) and started again: every point once, and the
 *                  counters account for every one
 * The first argument picks the test. A receiver that is not installed makes
 * its test SKIP (exit 77). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fwd_util.h"

#define POINTS 2000
#define FWD_MATCH "%7B__name__%3D%22fwd_v%22%7D" /* {__name__="fwd_v"} */

static int g_lp_port, g_sd_port, g_rx_port;

static void ports(void)
{
    int base = tproc_port_base();
    g_lp_port = base + 3;
    g_sd_port = base + 4;
    g_rx_port = base + 5;
}

/* ringflowd with one forwarding sink `fwd` (sink_yaml: the rest of its
 * flow mapping) taking every event. */
static void start_rf(proc *d, const char *sink_yaml)
{
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: lp, transport: tcp, protocol: influx_line, port: %d, address: 127.0.0.1}\n"
             "  - {name: sd, transport: udp, protocol: statsd, port: %d, address: 127.0.0.1}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             /* raw StatsD samples, so that a sampled counter reaches the sink as sent
              * and its scaling there is what is checked */
             "  statsd: {enabled: false}\n"
             "  batch: {max_events: 1000, interval: 20ms}\n"
             "  sinks:\n"
             "    - {name: fwd, %s}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [fwd]}\n",
             g_lp_port, g_sd_port, sink_yaml);
    cu_daemon_start(d, "ringflowd.yaml", cfg);
}

static int64_t t0_ms(void)
{
    return cu_now_ns() / 1000000 - 120000; /* two minutes ago: inside every receiver's window */
}

/* POINTS points, a string field and a sampled StatsD counter. */
static void send_mix(int64_t t0)
{
    fwd_send_points(g_lp_port, POINTS, t0);
    char s[128];
    /* Its text has a quote, a comma and a backslash: each escaped again on the way out. */
    snprintf(s, sizeof(s), "fwd s=\"say \\\"hi\\\", c:\\\\x\" %lld000000\n", (long long)t0);
    fwd_send_tcp(g_lp_port, s, strlen(s));
    fwd_send_udp(g_sd_port, "hits:3|c|@0.5");
}

/* ringflowd forwarding to the receiver on g_rx_port at `path`, sent the
 * mix, waited on until the receiver acknowledged all of it: the points, the
 * counter and, over line protocol, the string (remote_write drops it,
 * counted as string_unsupported). */
static void forward_mix(proc *d, const char *type, const char *path)
{
    const bool prom = strcmp(type, "prom_remote_write") == 0;
    char sink[512];
    snprintf(sink, sizeof(sink), "type: %s, url: \"http://127.0.0.1:%d%s\"", type, g_rx_port, path);
    start_rf(d, sink);
    send_mix(t0_ms());
    const int want = POINTS + (prom ? 1 : 2);
    assert_int_equal(fwd_stat_wait("fwd", "acked", want, 20000), want);
    assert_int_equal(fwd_stat("fwd", "dropped_string_unsupported"), prom ? 1 : 0);
}

/* Every point exactly once, with its value; the sampled counter scaled. */
static void expect_vm_points(int port)
{
    int64_t *ts = malloc(sizeof(int64_t) * (POINTS + 16));
    assert_int_equal(fwd_vm_wait(port, FWD_MATCH, POINTS, 20000), POINTS);
    double sum = 0;
    int n = fwd_vm_samples(port, FWD_MATCH, ts, POINTS + 16, &sum);
    assert_int_equal(n, POINTS);
    for (int i = 1; i < n; i++)
        assert_true(ts[i] > ts[i - 1]); /* no duplicate */
    assert_true(sum == (double)POINTS * (POINTS - 1) / 2);
    free(ts);
    int64_t one;
    double hits = 0;
    assert_int_equal(fwd_vm_wait(port, "%7B__name__%3D%22hits_count%22%7D", 1, 10000), 1);
    fwd_vm_samples(port, "%7B__name__%3D%22hits_count%22%7D", &one, 1, &hits);
    assert_true(hits == 6.0); /* 3 sampled at 0.5 */
}

static void test_vm(const char *type, const char *path)
{
    fwd_require("/usr/bin/victoria-metrics", "victoria-metrics");
    ports();
    fwd_start_vm(g_rx_port, "vm");
    proc d;
    forward_mix(&d, type, path);
    expect_vm_points(g_rx_port);
    /* The operator's views: `ringflow top` and `ringflow stat forwarders`. */
    char *top = cu_ringflow("top");
    assert_non_null(strstr(top, "FORWARDERS"));
    assert_non_null(strstr(top, " up "));
    free(top);
    char *stat = cu_ringflow("stat forwarders");
    assert_non_null(strstr(stat, "# forwarders"));
    free(stat);
    assert_int_equal(fwd_stat("fwd", "retries"), 0);
    cu_daemon_stop(&d);
}

static void test_vm_prom(void **state)
{
    (void)state;
    test_vm("prom_remote_write", "/api/v1/write");
}

static void test_vm_influx(void **state)
{
    (void)state;
    test_vm("influx_http", "/write?db=lab");
}

/* The first number after `key` in text, or -1. */
static double json_num_after(const char *text, const char *key)
{
    const char *p = text ? strstr(text, key) : NULL;
    if (!p)
        return -1;
    p += strlen(key);
    while (*p && (*p == '"' || *p == ' ' || *p == ','))
        p++;
    return strtod(p, NULL);
}

static void test_prometheus(void **state)
{
    (void)state;
    fwd_require("/usr/bin/prometheus", "prometheus");
    ports();
    tproc_write_file("prometheus.yml", "global: {scrape_interval: 1m}\n");
    char web[64];
    snprintf(web, sizeof(web), "--web.listen-address=127.0.0.1:%d", g_rx_port);
    cu_spawn("prometheus",
             (const char *const[]){"/usr/bin/prometheus", "--config.file=prometheus.yml",
                                   "--storage.tsdb.path=./prom", web,
                                   "--web.enable-remote-write-receiver", NULL});
    fwd_wait_http(g_rx_port, "/-/ready", 200, "prometheus");
    proc d;
    forward_mix(&d, "prom_remote_write", "/api/v1/write");
    int status = 0;
    char *r =
        tproc_http_get(g_rx_port, "/api/v1/query?query=count_over_time(fwd_v%5B1h%5D)", &status);
    assert_int_equal(status, 200);
    /* "value":[<time>,"2000"]: the count follows the time. */
    const char *v = r ? strstr(r, "\"value\":[") : NULL;
    assert_non_null(v);
    assert_true(json_num_after(strchr(v, ','), "") == POINTS);
    free(r);
    r = tproc_http_get(g_rx_port, "/api/v1/query?query=sum_over_time(hits_count%5B1h%5D)", &status);
    v = r ? strstr(r, "\"value\":[") : NULL;
    assert_non_null(v);
    assert_true(json_num_after(strchr(v, ','), "") == 6.0);
    free(r);
    assert_int_equal(fwd_stat("fwd", "dropped_rejected"), 0);
    cu_daemon_stop(&d);
}

static void test_influxdb(void **state)
{
    (void)state;
    fwd_require("/usr/bin/influxd", "influxdb");
    ports();
    char conf[1024];
    snprintf(conf, sizeof(conf),
             "reporting-disabled = true\n"
             "bind-address = \"127.0.0.1:%d\"\n"
             "[meta]\n  dir = \"./influx/meta\"\n"
             "[data]\n  dir = \"./influx/data\"\n  wal-dir = \"./influx/wal\"\n"
             "  query-log-enabled = false\n"
             "[monitor]\n  store-enabled = false\n"
             "[http]\n  bind-address = \"127.0.0.1:%d\"\n  log-enabled = false\n",
             g_rx_port + 1, g_rx_port);
    tproc_write_file("influxdb.conf", conf);
    cu_spawn("influxd",
             (const char *const[]){"/usr/bin/influxd", "-config", "influxdb.conf", NULL});
    fwd_wait_http(g_rx_port, "/ping", 204, "influxd");
    int status = 0;
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "curl -sf -XPOST 'http://127.0.0.1:%d/query' --data-urlencode 'q=CREATE DATABASE lab'",
             g_rx_port);
    free(tproc_shell_ok(cmd));
    proc d;
    forward_mix(&d, "influx_http", "/write?db=lab");
    char *r =
        tproc_http_get(g_rx_port, "/query?db=lab&q=SELECT%20count(v),sum(v)%20FROM%20fwd", &status);
    assert_int_equal(status, 200);
    /* "values":[["1970-01-01T00:00:00Z",2000,1999000]] */
    const char *v = r ? strstr(r, "\"values\":[[") : NULL;
    assert_non_null(v);
    v = strchr(v, ',');
    assert_true(strtod(v + 1, NULL) == POINTS);
    v = strchr(v + 1, ',');
    assert_true(strtod(v + 1, NULL) == (double)POINTS * (POINTS - 1) / 2);
    free(r);
    r = tproc_http_get(g_rx_port, "/query?db=lab&q=SELECT%20sum(%22count%22)%20FROM%20hits",
                       &status);
    assert_true(r && strstr(r, ",6]]"));
    free(r);
    /* The string field's text, as sent (JSON-escaped in the answer). */
    r = tproc_http_get(g_rx_port, "/query?db=lab&q=SELECT%20*%20FROM%20fwd%20LIMIT%202", &status);
    assert_int_equal(status, 200);
    if (!r || !strstr(r, "\"say \\\"hi\\\", c:\\\\x\""))
        fail_msg("string field not found in: %s",
                 r && strchr(r, '\n') ? strchr(r, '\n') + 1 : "(none)");
    free(r);
    cu_daemon_stop(&d);
}

static void test_disk_kill(void **state)
{
    (void)state;
    fwd_require("/usr/bin/victoria-metrics", "victoria-metrics");
    ports();
    char sink[512];
    snprintf(sink, sizeof(sink),
             "type: prom_remote_write, url: \"http://127.0.0.1:%d/api/v1/write\", "
             "backoff: {base: 20ms, max: 200ms}, breaker: {cooldown: 200ms}, "
             "buffer: {type: disk, path: ./fwdbuf, max_bytes: 64MiB}",
             g_rx_port);
    proc d;
    start_rf(&d, sink);
    /* The receiver is down: everything waits in the disk buffers. */
    fwd_send_points(g_lp_port, POINTS, t0_ms());
    assert_int_equal(fwd_stat_wait("fwd", "queued_events", POINTS, 10000), POINTS);
    /* The sender's first failed attempt may come after the last point is
     * queued (a loaded machine): wait for it, bounded. */
    assert_true(fwd_stat_wait("fwd", "retries", 1, 10000) > 0);
    kill(d.pid, SIGKILL);
    assert_int_equal(tproc_wait_exit(&d, 5000), 128 + SIGKILL);
    cu_wait(d.pid, 0);

    /* A new engine finds them, the receiver comes up, they arrive once. */
    proc d2;
    start_rf(&d2, sink);
    assert_int_equal(fwd_stat("fwd", "queued_events"), POINTS);
    fwd_start_vm(g_rx_port, "vm");
    int64_t *ts = malloc(sizeof(int64_t) * (POINTS * 2));
    assert_int_equal(fwd_vm_wait(g_rx_port, FWD_MATCH, POINTS, 30000), POINTS);
    assert_int_equal(fwd_stat_wait("fwd", "acked", POINTS, 5000), POINTS);
    double sum = 0;
    int n = fwd_vm_samples(g_rx_port, FWD_MATCH, ts, POINTS * 2, &sum);
    /* Duplicates are bounded by what was in flight (here: requests that
     * never reached a receiver, so none). */
    assert_int_equal(n, POINTS);
    for (int i = 1; i < n; i++)
        assert_true(ts[i] > ts[i - 1]);
    free(ts);
    assert_int_equal(fwd_stat("fwd", "queued_events"), 0);
    /* Every request before the kill was refused a connection: none of them
     * can have left a copy, so none is counted as a possible duplicate; the
     * new engine's own refused attempts are counted as unsent retries. */
    assert_int_equal(fwd_stat("fwd", "redelivered"), 0);
    assert_true(fwd_stat("fwd", "retried_unsent") > 0);
    cu_daemon_stop(&d2);
    /* Acknowledged files are gone; the current one per worker stays. */
    char *ls = tproc_shell_ok("ls fwdbuf/worker-0 fwdbuf/worker-1 | grep -c '^seg-'");
    assert_non_null(ls);
    assert_true(atoi(ls) <= 2);
    free(ls);
}

/* Lines in accepted.lp and requests in requests.log with `status`. */
static int count_requests(const char *status)
{
    char *log = tproc_read_dir_file("requests.log");
    int n = 0;
    for (const char *p = log; (p = strchr(p, ' ')); p++)
        n += strncmp(p + 1, status, strlen(status)) == 0 && p[1 + strlen(status)] == ' ';
    return n;
}

static void start_fake(const char *script)
{
    char py[600], port[16];
    snprintf(py, sizeof(py), "%s/../sinks/fake_receiver.py", cu_clients_dir());
    snprintf(port, sizeof(port), "%d", g_rx_port);
    cu_spawn("fake", (const char *const[]){"/usr/bin/python3", py, port, script, NULL});
    fwd_wait_http(g_rx_port, "/", 501, "fake"); /* it answers POST only */
}

static void test_retry(void **state)
{
    (void)state;
    fwd_require("/usr/bin/python3", "python3");
    ports();
    start_fake("503,503,429,204");
    char sink[512];
    snprintf(sink, sizeof(sink),
             "type: influx_http, url: \"http://127.0.0.1:%d/write\", "
             "backoff: {base: 10ms, max: 50ms}, batch: {max_delay: 10ms}",
             g_rx_port);
    proc d;
    start_rf(&d, sink);
    fwd_send_points(g_lp_port, 100, t0_ms());
    assert_int_equal(fwd_stat_wait("fwd", "acked", 100, 15000), 100);
    assert_true(fwd_stat("fwd", "retries") >= 3);
    assert_int_equal(fwd_stat("fwd", "dropped_rejected"), 0);
    cu_daemon_stop(&d);
    assert_int_equal(cu_count_lines(tproc_read_dir_file("accepted.lp")), 100);
    assert_int_equal(count_requests("503"), 2);
    assert_int_equal(count_requests("429"), 1);
    /* Retry-After: 1 was honoured: the request after the 429 came >= 1 s later. */
    char *log = tproc_read_dir_file("requests.log");
    const char *l429 = strstr(log, " 429 ");
    assert_non_null(l429);
    const char *start = l429;
    while (start > log && start[-1] != '\n')
        start--;
    double t429 = strtod(start, NULL);
    const char *next = strchr(l429, '\n');
    assert_non_null(next);
    assert_true(strtod(next + 1, NULL) - t429 >= 0.99);
}

static void test_reject(void **state)
{
    (void)state;
    fwd_require("/usr/bin/python3", "python3");
    ports();
    start_fake("400");
    char sink[512];
    snprintf(sink, sizeof(sink), "type: influx_http, url: \"http://127.0.0.1:%d/write\"",
             g_rx_port);
    proc d;
    start_rf(&d, sink);
    fwd_send_points(g_lp_port, 100, t0_ms());
    assert_int_equal(fwd_stat_wait("fwd", "dropped_rejected", 100, 10000), 100);
    assert_int_equal(fwd_stat("fwd", "retries"), 0);
    assert_int_equal(fwd_stat("fwd", "queued_events"), 0);
    cu_daemon_stop(&d);
}

static void test_kill_in_flight(void **state)
{
    (void)state;
    fwd_require("/usr/bin/python3", "python3");
    ports();
    start_fake("204/3,204"); /* holds the first request 3 s, then takes it */
    char sink[512];
    snprintf(sink, sizeof(sink),
             "type: influx_http, url: \"http://127.0.0.1:%d/write\", gzip: false, "
             "buffer: {type: disk, path: ./fwdbuf}",
             g_rx_port);
    proc d;
    start_rf(&d, sink);
    fwd_send_points(g_lp_port, 100, t0_ms());
    /* The first request has arrived and is held: kill the engine now. */
    for (int i = 0; i < 200 && cu_count_lines(tproc_read_dir_file("requests.log")) < 1; i++)
        usleep(20 * 1000);
    assert_int_equal(cu_count_lines(tproc_read_dir_file("requests.log")), 1);
    kill(d.pid, SIGKILL);
    assert_int_equal(tproc_wait_exit(&d, 5000), 128 + SIGKILL);
    cu_wait(d.pid, 0);
    proc d2;
    start_rf(&d2, sink);
    assert_int_equal(fwd_stat_wait("fwd", "acked", 100, 15000), 100);
    long long again = fwd_stat("fwd", "redelivered");
    cu_daemon_stop(&d2);
    /* Every point at least once; the copies are the held request's lines,
     * which the new engine counted as redelivered (at most one batch). */
    char *got = tproc_read_dir_file("accepted.lp");
    for (int i = 0; i < 100; i++) {
        char want[64];
        snprintf(want, sizeof(want), "fwd v=%d ", i);
        assert_true(cu_count(got, want) >= 1);
    }
    int total = cu_count_lines(got);
    assert_true(again > 0 && again <= 100);
    assert_int_equal(total, 100 + again);
}

/* The value of a PromQL instant query on VM (after a flush), -1 without one. */
static double vm_query(int port, const char *query)
{
    int status = 0;
    free(tproc_http_get(port, "/internal/force_flush", &status));
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", query);
    char *r = tproc_http_get(port, path, &status);
    /* "value":[<time>,"<v>"]: the value follows the time. */
    const char *v = r && status == 200 ? strstr(r, "\"value\":[") : NULL;
    double x = v ? json_num_after(strchr(v, ','), "") : -1;
    free(r);
    return x;
}

/* Every one of `want` points "fwd v=i" (i in [0, want)) exactly once in VM,
 * within the last 2 h: as many samples as points (a copy would add one) and
 * their sum that of 0..want-1. Counted by VM (the export of 10^5 samples
 * outgrows the test's HTTP reader). */
static void expect_vm_exactly(int port, int want, int timeout_ms)
{
    double n = -1;
    for (int waited = 0; waited <= timeout_ms && n < want; waited += 200) {
        n = vm_query(port, "count_over_time(fwd_v%5B2h%5D)");
        if (n < want)
            usleep(200 * 1000);
    }
    assert_true(n == want);
    assert_true(vm_query(port, "sum_over_time(fwd_v%5B2h%5D)") == (double)want * (want - 1) / 2);
}

static long long dropped_any(void)
{
    return fwd_stat("fwd", "dropped_rejected") + fwd_stat("fwd", "dropped_buffer_full") +
           fwd_stat("fwd", "dropped_other");
}

#define BLOCK_POINTS                                                                               \
    1000000 /* ~30 MB of lines: far more than the buffer, chunks, rings and socket buffers */

static void test_block(void **state)
{
    (void)state;
    fwd_require("/usr/bin/victoria-metrics", "victoria-metrics");
    ports();
    char sink[512];
    snprintf(sink, sizeof(sink),
             "type: prom_remote_write, url: \"http://127.0.0.1:%d/api/v1/write\", "
             "backoff: {base: 20ms, max: 200ms}, breaker: {cooldown: 200ms}, queue: 4KiB, "
             "buffer: {type: disk, path: ./fwdbuf, max_bytes: 1MiB, segment_bytes: 64KiB}",
             g_rx_port);
    proc d;
    start_rf(&d, sink);
    /* one point per millisecond, all in the past (VM's window ends now) */
    const int64_t t0 = cu_now_ns() / 1000000 - BLOCK_POINTS - 600000;
    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0) {
        fwd_send_points(g_lp_port, BLOCK_POINTS, t0);
        _exit(0);
    }
    /* The buffer fills and the worker waits; the client is held back. */
    assert_true(fwd_stat_wait("fwd", "blocked_ms", 1, 20000) >= 1);
    usleep(2000 * 1000);
    assert_int_equal(waitpid(client, NULL, WNOHANG), 0);
    assert_true(fwd_stat("fwd", "queued_events") < BLOCK_POINTS);
    assert_int_equal(dropped_any(), 0);
    /* The receiver comes up: the rest flows, nothing lost, nothing twice. */
    fwd_start_vm(g_rx_port, "vm");
    assert_int_equal(cu_wait(client, 60000), 0);
    assert_int_equal(fwd_stat_wait("fwd", "acked", BLOCK_POINTS, 60000), BLOCK_POINTS);
    expect_vm_exactly(g_rx_port, BLOCK_POINTS, 30000);
    assert_int_equal(dropped_any(), 0);
    assert_int_equal(fwd_stat("fwd", "queued_events"), 0);
    cu_daemon_stop(&d);
}

/* Points at `rate` per second for `seconds` over one TCP connection, in
 * 100 ms steps; returns how many were sent (the child's exit code cannot
 * hold it, so the count is computed the same way by the caller). */
static int load_points(int rate, int seconds)
{
    return rate / 10 * 10 * seconds;
}

static void load_run(int port, int rate, int seconds, int64_t t0)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        _exit(3);
    const int step = rate / 10;
    int64_t next = cu_now_ns();
    for (int i = 0; i < 10 * seconds; i++) {
        size_t len;
        char *lp = fwd_points(i * step, step, t0, &len);
        for (size_t off = 0; off < len;) {
            ssize_t k = write(fd, lp + off, len - off);
            if (k <= 0)
                _exit(4);
            off += (size_t)k;
        }
        free(lp);
        next += 100 * 1000 * 1000;
        int64_t now = cu_now_ns();
        if (next > now)
            usleep((useconds_t)((next - now) / 1000));
    }
    close(fd);
    _exit(0);
}

static void test_outage(void **state)
{
    (void)state;
    fwd_require("/usr/bin/victoria-metrics", "victoria-metrics");
    ports();
    const char *env = getenv("RF_OUTAGE_SECONDS");
    const int outage = env && atoi(env) > 0 ? atoi(env) : 8;
    const int rate = 5000, seconds = outage + 12;
    char sink[512];
    snprintf(sink, sizeof(sink),
             "type: prom_remote_write, url: \"http://127.0.0.1:%d/api/v1/write\", "
             "backoff: {base: 50ms, max: 1s}, breaker: {cooldown: 1s}, "
             "buffer: {type: disk, path: ./fwdbuf}",
             g_rx_port);
    pid_t vm = fwd_start_vm(g_rx_port, "vm");
    proc d;
    start_rf(&d, sink);
    const int64_t t0 = cu_now_ns() / 1000000 - 1200000;
    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0)
        load_run(g_lp_port, rate, seconds, t0);
    usleep(4000 * 1000);
    assert_true(fwd_stat("fwd", "acked") > 0);
    /* SIGTERM: VM answers what it holds, then stops; the sink retries. */
    assert_int_equal(cu_stop(vm, 20000), 0);
    long long acked_at_stop = fwd_stat("fwd", "acked");
    usleep((useconds_t)outage * 1000 * 1000);
    assert_true(fwd_stat("fwd", "retries") > 0);
    assert_true(fwd_stat("fwd", "queued_events") > 0);
    assert_true(fwd_stat("fwd", "acked") - acked_at_stop < rate); /* nothing got through */
    fwd_start_vm(g_rx_port, "vm");
    assert_int_equal(cu_wait(client, (seconds + 30) * 1000), 0);
    const int total = load_points(rate, seconds);
    /* The loss equation: sent = acknowledged + dropped + queued, with
     * dropped and queued at zero once the receiver caught up. */
    assert_int_equal(fwd_stat_wait("fwd", "acked", total, 60000), total);
    assert_int_equal(dropped_any(), 0);
    assert_int_equal(fwd_stat("fwd", "queued_events"), 0);
    expect_vm_exactly(g_rx_port, total, 30000);
    cu_daemon_stop(&d);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void **);
    } tests[] = {
        {"vm_prom", test_vm_prom},       {"vm_influx", test_vm_influx},
        {"prometheus", test_prometheus}, {"influxdb", test_influxdb},
        {"disk_kill", test_disk_kill},   {"retry", test_retry},
        {"reject", test_reject},         {"kill_in_flight", test_kill_in_flight},
        {"block", test_block},           {"outage", test_outage},
    };
    for (size_t i = 0; argc > 1 && i < sizeof(tests) / sizeof(tests[0]); i++)
        if (strcmp(argv[1], tests[i].name) == 0)
            return cu_run_test("rf-fwd", tests[i].name, tests[i].fn);
    fprintf(stderr,
            "usage: test_forward "
            "vm_prom|vm_influx|prometheus|influxdb|disk_kill|retry|reject|kill_in_flight|block|"
            "outage\n");
    return 2;
}
