/* Live reconfiguration: routes, sinks and rules change on SIGHUP without
 * restarting the workers and without losing events. Before the reload every
 * event goes to sink A; after it to sink B, and a new alert rule fires. A
 * stream sent across the reload must arrive exactly once, split between
 * A and B at the swap, with nothing missing.
 *
 * Listeners change live too: a UDP stream into a listener that stays is
 * not disturbed by a reload that removes a TCP listener (with a client
 * connected), changes another (new port) and adds a UDP and a critical TCP
 * one; the new ones take data at once, the removed port refuses, and the
 * reload names nothing as needing a restart. The added listeners have their
 * /metrics series from then on, and the one that moved (removed and added
 * under its name) is exported once per label set, counting its new input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon_proc.h"
#include "tests/ops/prom_check.h"

#define TOTAL 3000

static const char *config(int port, bool after)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "engine: {workers: 2, idle: {sleep: 2ms}}\n"
             "listeners:\n"
             "  - {transport: tcp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  batch: {max_events: 50, interval: 50ms}\n"
             "  sinks:\n"
             "    - {name: a, type: json, path: ./a.jsonl}\n"
             "    - {name: b, type: json, path: ./b.jsonl}\n"
             "    - {name: alerts, type: json, path: ./alerts.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [%s]}\n"
             "    - {subject: \"alert.>\", sinks: [alerts], class: critical}\n"
             "%s",
             port, after ? "b" : "a",
             after ? "  alerts:\n"
                     "    - {name: big, type: threshold, match: {measurement: seq}, op: \">=\","
                     " fire: 2990}\n"
                   : "");
    return buf;
}

static int connect_tcp(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (int i = 0; i < 100; i++) {
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        usleep(20000);
    }
    return -1;
}

/* How many lines of a JSON-lines file carry "value":v, for each v. */
static void count_values(const char *text, int *seen)
{
    for (const char *p = text; (p = strstr(p, "\"value\":")); p += 8) {
        int v = atoi(p + 8);
        if (v >= 0 && v < TOTAL)
            seen[v]++;
    }
}

static void test_reload_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-reload-live");
    int port = tproc_port_base() + 4;
    tproc_write_file("live.yaml", config(port, false));
    proc d;
    tproc_start(&d, (const char *[]){"--config", "live.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));

    int fd = connect_tcp(port);
    assert_true(fd >= 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long t0 = (long long)now.tv_sec * 1000000000LL;
    char line[128];
    bool applied = false;
    for (int i = 0; i < TOTAL; i++) {
        /* One series per value tag so events spread over both workers. */
        int n = snprintf(line, sizeof(line), "seq,k=k%d v=%d %lld\n", i % 64, i, t0 + i);
        assert_int_equal(write(fd, line, (size_t)n), n);
        if (i == TOTAL / 3) {
            tproc_write_file("live.yaml", config(port, true));
            kill(d.pid, SIGHUP);
        }
        /* Trickle across the swap until the daemon says it is done, then
         * send the rest at once. */
        if (i > TOTAL / 3 && !applied) {
            usleep(1000);
            applied = strstr(tproc_read_file(d.err_path), "reload applied from live.yaml") != NULL;
            if (i == TOTAL - 2)
                assert_true(tproc_wait_log(&d, "reload applied from live.yaml", 10000)),
                    applied = true;
        }
    }
    assert_true(applied);
    close(fd);
    usleep(300 * 1000);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
    const char *log = tproc_read_file(d.err_path);
    assert_null(strstr(log, "need a restart"));

    static int seen[TOTAL];
    memset(seen, 0, sizeof(seen));
    char *a = strdup(tproc_read_dir_file("a.jsonl"));
    char *b = strdup(tproc_read_dir_file("b.jsonl"));
    count_values(a, seen);
    count_values(b, seen);
    int in_a = 0, in_b = 0;
    for (const char *p = a; (p = strstr(p, "\"value\":")); p += 8)
        in_a++;
    for (const char *p = b; (p = strstr(p, "\"value\":")); p += 8)
        in_b++;
    for (int i = 0; i < TOTAL; i++)
        if (seen[i] != 1)
            fail_msg("value %d arrived %d times (a: %d lines, b: %d lines)", i, seen[i], in_a,
                     in_b);
    /* Both sides of the swap saw traffic. */
    assert_true(in_a > 0);
    assert_true(in_b > 0);
    free(a);
    free(b);
    /* The rule that only the new configuration has fired. */
    assert_non_null(strstr(tproc_read_dir_file("alerts.jsonl"), "\"rule\":\"big\""));
}

static const char *listener_config(int port, bool after)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "engine: {workers: 2, idle: {sleep: 2ms}}\n"
             "listeners:\n"
             "  - {name: stays, transport: udp, protocol: influx_line, port: %d, rcvbuf: 8MiB}\n"
             "%s"
             "stats: {prometheus: {listen: \"127.0.0.1:0\"}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             /* StatsD samples counted one by one, raw (no flush intervals). */
             "  statsd: {enabled: false}\n"
             "  batch: {max_events: 50, interval: 50ms}\n"
             "  sinks:\n"
             "    - {name: out, type: json, path: ./out.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [out]}\n",
             port,
             after ? "  - {name: moved, transport: tcp, protocol: graphite, port: %d}\n"
                     "  - {name: added, transport: udp, protocol: statsd, port: %d}\n"
                     "  - {name: alarms, transport: tcp, protocol: influx_line, port: %d, "
                     "class: critical}\n"
                   : "  - {name: goes, transport: tcp, protocol: influx_line, port: %d}\n"
                     "  - {name: moved, transport: tcp, protocol: graphite, port: %d}\n");
    /* The ports of the second part, formatted in a second pass. */
    static char out[2048];
    if (after)
        snprintf(out, sizeof(out), buf, port + 3, port + 4, port + 5);
    else
        snprintf(out, sizeof(out), buf, port + 1, port + 2);
    return out;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* A listener's counter summed over the workers that have it (-1: none has). */
static double listener_sum(const prom_doc *doc, const char *metric, const char *listener,
                           const char *protocol)
{
    double sum = -1, v;
    for (int w = 0; w < 2; w++) {
        char labels[256];
        snprintf(labels, sizeof(labels), "worker=\"%d\",listener=\"%s\",protocol=\"%s\"", w,
                 listener, protocol);
        if (prom_value(doc, metric, labels, &v))
            sum = (sum < 0 ? 0 : sum) + v;
    }
    return sum;
}

static void check_listener_metrics(int prom_port)
{
    int status;
    char *body = tproc_http_get(prom_port, "/metrics", &status);
    assert_non_null(body);
    assert_int_equal(status, 200);
    prom_doc doc;
    char err[256];
    if (prom_parse(body, &doc, err, sizeof(err)) != 0)
        fail_msg("/metrics: %s", err);
    free(body);
    /* Every series once: a listener moved under its name must not export
     * its retired input beside its new one. */
    for (size_t i = 0; i < doc.n; i++)
        for (size_t j = i + 1; j < doc.n; j++)
            if (!strcmp(doc.s[i].name, doc.s[j].name) && !strcmp(doc.s[i].labels, doc.s[j].labels))
                fail_msg("exported twice: %s{%s}", doc.s[i].name, doc.s[i].labels);
    assert_true(listener_sum(&doc, "ringflow_listener_datagrams_total", "added", "statsd") == 100);
    assert_true(listener_sum(&doc, "ringflow_listener_lines_total", "added", "statsd") == 100);
    assert_true(listener_sum(&doc, "ringflow_listener_lines_total", "alarms", "influx_line") ==
                100);
    assert_true(listener_sum(&doc, "ringflow_listener_lines_total", "moved", "graphite") == 100);
    assert_true(listener_sum(&doc, "ringflow_listener_lines_total", "stays", "influx_line") ==
                TOTAL);
    prom_free(&doc);
}

static void test_reload_listeners_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-reload-listeners");
    const int port = tproc_port_base() + 8;
    tproc_write_file("l.yaml", listener_config(port, false));
    proc d;
    tproc_start(&d, (const char *[]){"--config", "l.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));

    /* A client on the listener that goes, and one line on the one that
     * moves, before the reload. */
    int goes = connect_tcp(port + 1);
    assert_true(goes >= 0);
    assert_int_equal(write(goes, "before_goes v=1\n", 16), 16);
    int moved_old = connect_tcp(port + 2);
    assert_true(moved_old >= 0);
    assert_int_equal(write(moved_old, "before.moved 1 1700000000\n", 26), 26);

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(u, (struct sockaddr *)&sa, sizeof(sa)), 0);
    char line[128];
    bool applied = false;
    for (int i = 0; i < TOTAL; i++) {
        int n = snprintf(line, sizeof(line), "stays,k=k%d v=%d\n", i % 64, i);
        assert_int_equal(send(u, line, (size_t)n, 0), n);
        if (i == TOTAL / 3) {
            tproc_write_file("l.yaml", listener_config(port, true));
            kill(d.pid, SIGHUP);
        }
        if (i > TOTAL / 3 && !applied) {
            usleep(1000);
            applied = strstr(tproc_read_file(d.err_path), "reload applied from l.yaml") != NULL;
        }
    }
    assert_true(applied || tproc_wait_log(&d, "reload applied from l.yaml", 10000));
    close(u);

    /* The removed listener's client was let go; once the removal is done
     * (it completes at the workers' next polls), its port refuses. */
    char b;
    assert_int_equal(read(goes, &b, 1), 0);
    close(goes);
    close(moved_old);
    assert_true(tproc_wait_log(&d, "listener goes: removed", 10000));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_port = htons((uint16_t)(port + 1));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
    close(fd);

    /* The new ones take data. */
    int moved = connect_tcp(port + 3);
    assert_true(moved >= 0);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "after.moved %d 1700000000\n", i);
        assert_int_equal(write(moved, line, (size_t)n), n);
    }
    close(moved);
    int added = socket(AF_INET, SOCK_DGRAM, 0);
    sa.sin_port = htons((uint16_t)(port + 4));
    assert_int_equal(connect(added, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(send(added, "after_added:1|c\n", 16, 0), 16);
    close(added);
    int alarms = connect_tcp(port + 5);
    assert_true(alarms >= 0);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof(line), "after_alarm,k=k%d v=%d\n", i % 8, i);
        assert_int_equal(write(alarms, line, (size_t)n), n);
    }
    close(alarms);
    usleep(500 * 1000);
    const char *pp = strstr(tproc_read_file(d.err_path), "prometheus on port ");
    assert_non_null(pp);
    check_listener_metrics(atoi(pp + strlen("prometheus on port ")));
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
    char *log = strdup(tproc_read_file(d.err_path)); /* the helper's buffer is reused */
    assert_null(strstr(log, "need a restart"));
    assert_non_null(strstr(log, "listener goes: removed"));

    char *out = strdup(tproc_read_dir_file("out.jsonl"));
    /* The listener that stayed lost nothing across the reload. */
    assert_int_equal(count_of(out, "\"series\":\"stays,"), TOTAL);
    assert_int_equal(count_of(out, "\"series\":\"before_goes "), 1);
    assert_int_equal(count_of(out, "\"series\":\"before.moved "), 1);
    assert_int_equal(count_of(out, "\"series\":\"after.moved "), 100);
    assert_int_equal(count_of(out, "\"series\":\"after_alarm,"), 100);
    /* StatsD counters are aggregated per interval only when a rule says so;
     * here each line is one event. */
    assert_int_equal(count_of(out, "\"series\":\"after_added"), 100);
    free(out);
    /* The critical listener's events were counted as critical. */
    long crit = 0;
    for (const char *p = log; (p = strstr(p, "critical_events=")); p += 16)
        crit += atol(p + 16);
    assert_int_equal(crit, 100);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_live),
        cmocka_unit_test(test_reload_listeners_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
