/* A real ringflowd, driven through its sockets and the ringflow CLI:
 *   test_daemon RINGFLOWD RINGFLOW
 * Each test starts the daemon on a private run_dir/data_dir with Prometheus
 * on port 0 and no listeners (no fixed ports: tests can run in parallel),
 * and stops it; every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/daemon/daemon_proc.h"
#include "tests/ops/prom_check.h"
#include "tools/cli/client.h"

static const char *g_ringflowd, *g_ringflow;
static char g_dir[64], g_cfg[128], g_sock[128], g_admin[128], g_log[128];
static pid_t g_pid = -1;
static int g_port;                        /* the TCP listener: a high port picked per run */
static const char *g_more_listeners = ""; /* YAML list items after lp-tcp */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void write_config(const char *extra)
{
    FILE *f = fopen(g_cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "engine:\n  workers: 2\n  pin_workers: false\n  data_dir: %s/data\n  run_dir: %s/run\n"
            "listeners:\n  - name: lp-tcp\n    transport: tcp\n    protocol: influx_line\n"
            "    address: 127.0.0.1\n    port: %d\n%s"
            "stats:\n  client_buffer: 256KiB\n  prometheus:\n    listen: 127.0.0.1:0\n%s",
            g_dir, g_dir, g_port, g_more_listeners, extra ? extra : "");
    fclose(f);
}

/* `promtool check metrics` (Debian's prometheus package, installed by
 * scripts/install-deps.sh) on an exposition: its exit status (0: no
 * problem, 3: lint problems, ...) and what it said, in out. A missing
 * promtool fails the test: the check must run. */
static int promtool_check(const char *body, char *out, size_t out_size)
{
    char in_path[192], out_path[192], cmd[512];
    snprintf(in_path, sizeof(in_path), "%s/metrics.txt", g_dir);
    snprintf(out_path, sizeof(out_path), "%s/promtool.txt", g_dir);
    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    fputs(body, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", in_path, out_path);
    int status = system(cmd);
    assert_true(status != -1 && WIFEXITED(status));
    out[0] = '\0';
    f = fopen(out_path, "r");
    if (f) {
        size_t n = fread(out, 1, out_size - 1, f);
        out[n] = '\0';
        fclose(f);
    }
    if (WEXITSTATUS(status) == 127)
        fail_msg("promtool not found (scripts/install-deps.sh installs prometheus): %s", out);
    return WEXITSTATUS(status);
}

/* Prometheus' own linter agrees with an exposition: base units, names, types. */
static void assert_promtool_ok(const char *body)
{
    char lint[4096];
    int lint_rc = promtool_check(body, lint, sizeof(lint));
    if (lint_rc != 0)
        print_message("promtool check metrics (exit %d):\n%s", lint_rc, lint);
    assert_int_equal(lint_rc, 0);
}

static pid_t spawn_daemon(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(g_log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(g_ringflowd, g_ringflowd, "-c", g_cfg, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for the stats socket to answer; false if the process exited. */
static bool wait_ready(pid_t pid)
{
    for (int i = 0; i < 500; i++) {
        /* The sockets are bound before the engine starts; an answer comes
         * once the control loop runs, i.e. the engine is up. */
        int fd = rf_cli_connect(g_sock);
        if (fd >= 0) {
            char *r = NULL;
            int rc = rf_cli_request(fd, "show info", 5000, &r);
            free(r);
            close(fd);
            if (rc == 0)
                return true;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return false;
        sleep_ms(20);
    }
    return false;
}

/* Waits up to 15 s for pid to exit; returns its exit status (or -1). */
static int wait_exit(pid_t pid)
{
    for (int i = 0; i < 1500; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void dump_log(void)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "tail -20 %s >&2", g_log);
    (void)!system(cmd);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf-ops-daemon-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_cfg, sizeof(g_cfg), "%s/ringflow.yaml", g_dir);
    snprintf(g_sock, sizeof(g_sock), "%s/run/ringflow.sock", g_dir);
    snprintf(g_admin, sizeof(g_admin), "%s/run/ringflow-admin.sock", g_dir);
    snprintf(g_log, sizeof(g_log), "%s/ringflowd.log", g_dir);
    g_port = 20000 + (int)(getpid() % 20000);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    (void)!system(cmd);
    return 0;
}

static void start_with(const char *extra)
{
    write_config(extra);
    g_pid = spawn_daemon();
    if (!wait_ready(g_pid)) {
        dump_log();
        fail_msg("ringflowd did not come up");
    }
}

static void start(void)
{
    start_with(NULL);
}

/* After each test: nothing left running. */
static int stop_if_running(void **state)
{
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL);
        waitpid(g_pid, NULL, 0);
        g_pid = -1;
    }
    return 0;
}

static char *ask(const char *path, const char *cmd)
{
    int fd = rf_cli_connect(path);
    assert_true(fd >= 0);
    char *reply = NULL;
    int rc = rf_cli_request(fd, cmd, 5000, &reply);
    close(fd);
    assert_int_equal(rc, 0);
    return reply;
}

static rf_json *ask_json(const char *cmd)
{
    char *r = ask(g_sock, cmd);
    rf_err err;
    rf_json *j = rf_json_parse(r, &err);
    if (!j)
        print_message("%s: %s\n", err.msg, r);
    assert_non_null(j);
    free(r);
    return j;
}

static char *http_get(uint16_t port, const char *path, int *status)
{
    char *body = tproc_http_get(port, path, status);
    assert_non_null(body);
    return body;
}

/* Runs `ringflow ARGS...` and returns its stdout (exit status in *status). */
static char *run_cli(int *status, const char *a1, const char *a2, const char *a3, const char *a4)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        execl(g_ringflow, g_ringflow, a1, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    ssize_t n;
    while ((n = read(pipefd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(pipefd[0]);
    *status = wait_exit(pid);
    return out;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_views_and_metrics(void **state)
{
    (void)state;
    start();
    sleep_ms(1200); /* one rate sample */
    rf_json *j = ask_json("show stats json");
    const rf_json *info = rf_json_get(j, "info");
    assert_true(rf_json_num(info, "workers", 0) == 2);
    assert_true(rf_json_num(info, "pid", 0) == g_pid);
    assert_string_equal(rf_json_str(info, "config", ""), g_cfg);
    uint16_t port = (uint16_t)rf_json_num(info, "prometheus_port", 0);
    assert_true(port > 0);
    const rf_json *workers = rf_json_get(j, "workers");
    assert_int_equal(rf_json_len(workers), 2);
    for (const rf_json *w = workers->child; w; w = w->next) {
        assert_string_equal(rf_json_str(w, "state", ""), "running");
        assert_non_null(rf_json_get(w, "events_per_s"));
        assert_non_null(rf_json_get(w, "busy_pct"));
    }
    const rf_json *rings = rf_json_get(j, "rings");
    assert_int_equal(rf_json_len(rings), 2);
    assert_true(rf_json_num(rings->child, "capacity", 0) == 65536);
    rf_json_free(j);

    int status;
    char *body = http_get(port, "/metrics", &status);
    assert_int_equal(status, 200);
    prom_doc doc;
    char err[256] = "";
    int rc = prom_parse(body, &doc, err, sizeof(err));
    if (rc < 0)
        print_message("%s\n", err);
    assert_int_equal(rc, 0);
    double v;
    assert_string_equal(prom_type(&doc, "ringflow_worker_events_parsed_total"), "counter");
    assert_true(prom_value(&doc, "ringflow_worker_events_parsed_total", "worker=\"1\"", &v));
    assert_true(prom_value(&doc, "ringflow_ring_capacity", "from=\"0\",to=\"1\"", &v) &&
                v == 65536);
    assert_true(prom_value(&doc, "ringflow_ring_dropped_events_total",
                           "from=\"1\",to=\"0\",policy=\"drop_newest\"", &v) &&
                v == 0);
    assert_true(prom_value(&doc, "ringflow_workers", "", &v) && v == 2);
    /* Each listener's traffic, for alerts on drops. */
    assert_true(prom_value(&doc, "ringflow_listener_kernel_drops_total",
                           "worker=\"0\",listener=\"lp-tcp\",protocol=\"influx_line\"", &v) &&
                v == 0);
    assert_true(prom_value(&doc, "ringflow_listener_events_total",
                           "worker=\"1\",listener=\"lp-tcp\",protocol=\"influx_line\"", &v));
    assert_string_equal(prom_type(&doc, "ringflow_listener_connections"), "gauge");
    /* Every pipeline counter made it onto the page. */
    assert_true(prom_value(&doc, "ringflow_pipeline_processed_total", "worker=\"0\"", &v));
    assert_true(prom_value(&doc, "ringflow_pipeline_unknown_series_total", "worker=\"1\"", &v));
    assert_true(prom_value(&doc, "ringflow_pipeline_unrouted_total", "worker=\"0\"", &v));
    assert_true(prom_value(&doc, "ringflow_pipeline_store_rejected_total", "worker=\"0\"", &v));
    assert_true(
        prom_value(&doc, "ringflow_component_up", "kind=\"worker\",name=\"worker-0\"", &v) &&
        v == 1);
    assert_string_equal(prom_type(&doc, "ringflow_worker_busy_seconds_total"), "counter");
    assert_true(prom_value(&doc, "ringflow_worker_busy_seconds_total", "worker=\"0\"", &v));
    prom_free(&doc);
    assert_promtool_ok(body);
    free(body);
    body = http_get(port, "/health", &status);
    if (status != 200)
        print_message("%s", body);
    assert_int_equal(status, 200);
    assert_string_equal(body, "ok\n");
    free(body);

    /* the CLI */
    char *out = run_cli(&status, "stat", "--socket", g_sock, NULL);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "# workers\n"));
    assert_non_null(strstr(out, "# rings\n"));
    assert_non_null(strstr(out, "# listeners\n"));
    free(out);
    out = run_cli(&status, "stat", "--json", "--socket", g_sock);
    assert_int_equal(status, 0);
    rf_json *all = rf_json_parse(out, NULL);
    assert_non_null(all);
    assert_non_null(rf_json_get(all, "latency"));
    rf_json_free(all);
    free(out);
    out = run_cli(&status, "top", "--once", "--socket", g_sock);
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "WORKERS"));
    assert_non_null(strstr(out, "worker-1"));
    assert_non_null(strstr(out, "0->1     [....................]"));
    /* listener and storage tables render (rates need a second frame: '-') */
    assert_non_null(strstr(out, "events/s"));
    assert_non_null(strstr(out, "kernel_drop"));
    assert_non_null(strstr(out, "points/s"));
    assert_null(strstr(out, "unexpected format"));
    free(out);

    kill(g_pid, SIGTERM);
    assert_int_equal(wait_exit(g_pid), 0);
    g_pid = -1;
    struct stat st;
    assert_int_equal(lstat(g_sock, &st), -1); /* removed on the way out */
}

static void test_admin_reload_and_shutdown(void **state)
{
    (void)state;
    start();
    /* owner uid: admin commands on the ops socket too (SO_PEERCRED) */
    char *r = ask(g_sock, "set log level debug");
    assert_string_equal(r, "ok: log level debug\n");
    free(r);
    r = ask(g_admin, "reload");
    assert_true(!strncmp(r, "ok: reload applied from ", 24));
    free(r);
    /* a bad file is refused, with the reason, and the daemon keeps running */
    write_config("  bogus_key: 1\n");
    r = ask(g_admin, "reload");
    assert_true(!strncmp(r, "error: reload refused, the running configuration stays", 54));
    assert_non_null(strstr(r, "stats.bogus_key: unknown key"));
    free(r);
    /* what cannot change live is reported */
    write_config(NULL);
    FILE *f = fopen(g_cfg, "a");
    fputs("  socket: /tmp/elsewhere.sock\n", f);
    fclose(f);
    r = ask(g_admin, "reload");
    assert_true(!strncmp(r, "warning: reload applied in part", 31));
    assert_non_null(strstr(r, "stats.* (sockets, prometheus) need a restart"));
    free(r);
    free(ask(g_admin, "clear counters"));
    /* the same through the CLI: exit 0 on ok, 1 on an error reply */
    int status;
    char *out = run_cli(&status, "admin", "--socket", g_admin, "clear-counters");
    assert_int_equal(status, 0);
    assert_non_null(strstr(out, "ok"));
    free(out);
    out = run_cli(&status, "admin", "--socket", g_admin, "bogus");
    assert_int_equal(status, 2);
    free(out);
    out = run_cli(&status, "admin", "--socket", g_admin, "shutdown");
    assert_int_equal(status, 0);
    assert_string_equal(out, "ok: draining and stopping\n");
    free(out);
    assert_int_equal(wait_exit(g_pid), 0);
    g_pid = -1;
}

static void test_stale_and_live_socket(void **state)
{
    (void)state;
    start();
    /* a second daemon on the same sockets refuses to start */
    pid_t second = spawn_daemon();
    assert_int_equal(wait_exit(second), 1);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -q 'another ringflowd is answering' %s", g_log);
    assert_int_equal(system(cmd), 0);
    /* the first one is untouched */
    free(ask(g_sock, "show info"));
    /* killed hard: the socket files stay behind, stale */
    kill(g_pid, SIGKILL);
    waitpid(g_pid, NULL, 0);
    struct stat st;
    assert_int_equal(lstat(g_sock, &st), 0);
    /* a new daemon replaces them (on another TCP port: io_uring releases the
     * killed daemon's listening socket asynchronously, after exit) */
    g_port++;
    write_config(NULL);
    g_pid = spawn_daemon();
    if (!wait_ready(g_pid)) {
        dump_log();
        fail_msg("ringflowd did not replace the stale socket");
    }
    snprintf(cmd, sizeof(cmd), "grep -q 'replacing stale socket' %s", g_log);
    assert_int_equal(system(cmd), 0);
    free(ask(g_sock, "show info"));
    kill(g_pid, SIGTERM);
    assert_int_equal(wait_exit(g_pid), 0);
    g_pid = -1;
}

/* Reload under load: a TCP sender streams lines while the admin socket
 * reloads again and again; every line must be parsed and processed. */
static void test_reload_under_load(void **state)
{
    (void)state;
    start();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    enum {
        N = 200000,
        CHUNK = 1000
    };
    char *buf = malloc(CHUNK * 64);
    int reloads = 0;
    for (int i = 0; i < N; i += CHUNK) {
        size_t len = 0;
        for (int k = 0; k < CHUNK; k++)
            len += (size_t)sprintf(buf + len, "cpu,host=h%d,core=c%d usage=%d\n", (i + k) % 97,
                                   (i + k) % 7, i + k);
        size_t off = 0;
        while (off < len) {
            ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
            assert_true(n > 0);
            off += (size_t)n;
        }
        if (i % (20 * CHUNK) == 0) {
            char *r = ask(g_admin, "reload");
            assert_true(!strncmp(r, "ok: reload applied", 18));
            free(r);
            reloads++;
        }
    }
    free(buf);
    close(fd);
    assert_true(reloads >= 10);
    /* The engine counts each new series' definition event too: 97 hosts x 7
     * cores (coprime) = 679 series. */
    const double expected = N + 97 * 7;
    double parsed = 0, processed = 0;
    for (int tries = 0; tries < 500; tries++) {
        rf_json *j = ask_json("show workers json");
        parsed = processed = 0;
        for (const rf_json *w = rf_json_get(j, "workers")->child; w; w = w->next) {
            parsed += rf_json_num(w, "parsed", 0);
            processed += rf_json_num(w, "processed", 0);
        }
        rf_json_free(j);
        if (parsed == expected && processed == expected)
            break;
        sleep_ms(20);
    }
    if (parsed != expected || processed != expected)
        print_message("parsed %.0f processed %.0f of %.0f\n", parsed, processed, expected);
    assert_true(parsed == expected);
    assert_true(processed == expected);
    /* show latency has each stage's time per batch beside the critical
     * path: the series stage and the deliveries ran on every batch. */
    rf_json *j = ask_json("show latency json");
    double series_batches = 0, deliver_batches = 0;
    bool tick_seen = false;
    for (const rf_json *h = rf_json_get(j, "latency")->child; h; h = h->next) {
        if (strcmp(rf_json_str(h, "histogram", ""), "ringflow_stage_batch_seconds") != 0)
            continue;
        const char *labels = rf_json_str(h, "labels", "");
        if (strstr(labels, "stage=\"series\""))
            series_batches += rf_json_num(h, "count", 0);
        if (strstr(labels, "stage=\"route_and_sinks\""))
            deliver_batches += rf_json_num(h, "count", 0);
        if (strstr(labels, "stage=\"tick\"") && rf_json_num(h, "count", 0) > 0)
            tick_seen = true;
    }
    rf_json_free(j);
    /* At least one batch per 256 events, at most one per event. */
    assert_true(series_batches >= expected / 256 && series_batches <= expected);
    assert_true(deliver_batches >= N / 256.0 && deliver_batches <= N);
    assert_true(tick_seen);
    kill(g_pid, SIGTERM);
    assert_int_equal(wait_exit(g_pid), 0);
    g_pid = -1;
}

/* worker="0" plus worker="1" of a series, with `extra` labels after them. */
static double sum_workers(const prom_doc *d, const char *name, const char *extra)
{
    double sum = 0, v;
    for (int wi = 0; wi < 2; wi++) {
        char labels[160];
        snprintf(labels, sizeof(labels), "worker=\"%d\"%s", wi, extra ? extra : "");
        if (prom_value(d, name, labels, &v))
            sum += v;
    }
    return sum;
}

/* The same column summed over the rows of table `table` of `show CMD json`. */
static double sum_column(const char *cmd, const char *table, const char *col)
{
    rf_json *j = ask_json(cmd);
    double sum = 0;
    const rf_json *t = rf_json_get(j, table);
    assert_non_null(t);
    for (const rf_json *r = t->child; r; r = r->next)
        sum += rf_json_num(r, col, 0);
    rf_json_free(j);
    return sum;
}

/* Counters once only in the final log line are on `show` and /metrics while
 * the engine runs: the StatsD flusher's, DogStatsD events and service
 * checks, peer messages (the pipeline's and the engine's rings), the poll
 * loop's cut spins and rule-wide alert reports. A rule-wide absence rule
 * over series on both workers makes the non-owner report over a peer ring. */
static void test_stage_counters_shown(void **state)
{
    (void)state;
    char listener[256];
    snprintf(listener, sizeof(listener),
             "  - name: sd-udp\n    transport: udp\n    protocol: statsd\n"
             "    address: 127.0.0.1\n    port: %d\n",
             g_port + 1);
    g_more_listeners = listener;
    start_with("pipeline:\n  statsd:\n    flush_interval: 100ms\n  alerts:\n"
               "    - {name: quiet, type: absence, match: {measurement: quiet, field: v},"
               " absent: 1s, scope: any}\n");
    g_more_listeners = "";
    rf_json *info = ask_json("show info json");
    uint16_t port = (uint16_t)rf_json_num(rf_json_get(info, "info"), "prometheus_port", 0);
    rf_json_free(info);
    assert_true(port > 0);

    int tcp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(tcp, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char lines[2048];
    size_t len = 0;
    for (int h = 0; h < 32; h++) /* 32 series: both workers own some */
        len += (size_t)snprintf(lines + len, sizeof(lines) - len, "quiet,host=h%d v=1\n", h);
    assert_int_equal(send(tcp, lines, len, MSG_NOSIGNAL), (ssize_t)len);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    sa.sin_port = htons((uint16_t)(g_port + 1));
    static const char dgram[] = "sd_hits:1|c\n_e{5,4}:title|text\n_sc|db.up|0\n";

    /* Bounded wait (about 20 s) until every counter moved (StatsD flushes
     * every 100 ms, alert reports go out every tick). */
    static const struct {
        const char *name, *extra;
    } want[] = {
        {"ringflow_statsd_samples_total", NULL},
        {"ringflow_statsd_flushes_total", NULL},
        {"ringflow_statsd_values_flushed_total", NULL},
        {"ringflow_listener_dogstatsd_events_total", ",listener=\"sd-udp\",protocol=\"statsd\""},
        {"ringflow_listener_dogstatsd_service_checks_total",
         ",listener=\"sd-udp\",protocol=\"statsd\""},
        {"ringflow_pipeline_peer_messages_sent_total", NULL},
        {"ringflow_pipeline_peer_messages_received_total", NULL},
        {"ringflow_worker_peer_messages_sent_total", NULL},
        {"ringflow_worker_peer_messages_received_total", NULL},
        {"ringflow_worker_spins_cut_total", NULL},
        {"ringflow_alert_reports_sent_total", NULL},
        {"ringflow_alert_reports_received_total", NULL},
    };
    double got[(sizeof(want) / sizeof(want[0]))];
    for (int tries = 0; tries < 200; tries++) {
        assert_int_equal(
            sendto(udp, dgram, sizeof(dgram) - 1, 0, (struct sockaddr *)&sa, sizeof(sa)),
            (ssize_t)sizeof(dgram) - 1);
        int status;
        char *body = http_get(port, "/metrics", &status);
        assert_int_equal(status, 200);
        prom_doc doc;
        char err[256] = "";
        assert_int_equal(prom_parse(body, &doc, err, sizeof(err)), 0);
        bool all = true;
        for (size_t k = 0; k < (sizeof(want) / sizeof(want[0])); k++) {
            got[k] = sum_workers(&doc, want[k].name, want[k].extra);
            all = all && got[k] > 0;
        }
        /* Each dropped-by-reason series is there (at zero). */
        double v;
        assert_true(prom_value(&doc, "ringflow_pipeline_peer_messages_dropped_total",
                               "worker=\"0\",reason=\"undeliverable\"", &v));
        assert_true(prom_value(&doc, "ringflow_worker_peer_messages_dropped_total",
                               "worker=\"1\",reason=\"backlog_full\"", &v));
        assert_true(prom_value(&doc, "ringflow_statsd_samples_dropped_total",
                               "worker=\"0\",reason=\"no_memory\"", &v));
        assert_true(prom_value(&doc, "ringflow_alert_reports_dropped_total",
                               "worker=\"1\",reason=\"unknown_rule\"", &v));
        /* The critical lane's edge counters (no critical listener here: zero). */
        assert_true(prom_value(&doc, "ringflow_critical_edge_evaluated_total", "worker=\"0\"", &v));
        assert_true(prom_value(&doc, "ringflow_critical_edge_unknown_total", "worker=\"1\"", &v));
        assert_true(prom_value(&doc, "ringflow_critical_edge_refused_total", "worker=\"0\"", &v));
        prom_free(&doc);
        if (all)
            assert_promtool_ok(body);
        free(body);
        if (all)
            break;
        sleep_ms(100);
    }
    for (size_t k = 0; k < (sizeof(want) / sizeof(want[0])); k++) {
        if (!(got[k] > 0))
            print_message("%s%s is still 0\n", want[k].name, want[k].extra ? want[k].extra : "");
        assert_true(got[k] > 0);
    }
    close(udp);
    close(tcp);

    /* The same counters in `ringflow stat`'s tables. */
    assert_true(sum_column("show stages json", "statsd", "flushes") > 0);
    assert_true(sum_column("show stages json", "statsd", "values") > 0);
    assert_true(sum_column("show stages json", "peers", "peer_sent") > 0);
    assert_true(sum_column("show stages json", "peers", "alert_reports_received") > 0);
    assert_true(sum_column("show listeners json", "listeners", "dd_events") > 0);
    assert_true(sum_column("show listeners json", "listeners", "dd_service_checks") > 0);
    assert_true(sum_column("show workers json", "workers", "peer_sent") > 0);
    assert_true(sum_column("show workers json", "workers", "peer_received") > 0);
    assert_true(sum_column("show workers json", "workers", "spins_cut") > 0);
    kill(g_pid, SIGTERM);
    assert_int_equal(wait_exit(g_pid), 0);
    g_pid = -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_daemon RINGFLOWD RINGFLOW\n");
        return 2;
    }
    g_ringflowd = argv[1];
    g_ringflow = argv[2];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_views_and_metrics, stop_if_running),
        cmocka_unit_test_teardown(test_admin_reload_and_shutdown, stop_if_running),
        cmocka_unit_test_teardown(test_stale_and_live_socket, stop_if_running),
        cmocka_unit_test_teardown(test_reload_under_load, stop_if_running),
        cmocka_unit_test_teardown(test_stage_counters_shown, stop_if_running),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
