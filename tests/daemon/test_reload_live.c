/* Live reconfiguration: routes, sinks and rules change on SIGHUP without
 * restarting the workers and without losing events. Before the reload every
 * event goes to sink A; after it to sink B, and a new alert rule fires. A
 * stream sent across the reload must arrive exactly once, split between
 * A and B at the swap, with nothing missing. */
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
            fail_msg("value %d arrived %d times (a: %d lines, b: %d lines)", i, seen[i], in_a, in_b);
    /* Both sides of the swap saw traffic. */
    assert_true(in_a > 0);
    assert_true(in_b > 0);
    free(a);
    free(b);
    /* The rule that only the new configuration has fired. */
    assert_non_null(strstr(tproc_read_dir_file("alerts.jsonl"), "\"rule\":\"big\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reload_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
