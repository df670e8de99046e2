/* Issue 23's group-by scenario through ringflowd: one rule {measurement: cpu,
 * field: usage_user, window: 10s, functions: [avg, count, max], group_by:
 * [region]}, 40 hosts in two regions, 3 points each in one window, sent over
 * UDP to a daemon with 1, 2 and then 4 workers. After the stop the store holds
 * one row per region and function for that window (`ringflow query`), with
 * the true values, and the aggregate sink has one line each. Before the
 * two-level aggregation the store held two rows per region (avg 15 and 23
 * where the truth was 19). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon_proc.h"

#define HOSTS 40

static void send_udp(int port, const char *payload)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(sendto(fd, payload, strlen(payload), 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)strlen(payload));
    close(fd);
}

static char *query(const char *dir, const char *args)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd %s && %s query --dir ./%s/store %s 2>&1", tproc_dir(), cli, dir,
             args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, len = 0, n;
    char *out = malloc(cap);
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void run_scenario(int workers, int port)
{
    char dir[32], cfg[2048], name[64];
    snprintf(dir, sizeof(dir), "data%d", workers);
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: %d, idle: {sleep: 2ms}, data_dir: ./%s, run_dir: ./run%d}\n"
             "listeners:\n"
             "  - {transport: udp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "pipeline:\n"
             "  sinks:\n"
             "    - {name: store, type: store}\n"
             "    - {name: aggs, type: json, path: ./%s/aggs.jsonl}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n"
             "    - {name: aggregates, subject: \"aggregate.>\", sinks: [store, aggs]}\n"
             "  aggregations:\n"
             "    - {measurement: cpu, field: usage_user, window: 10s,\n"
             "       functions: [avg, count, max], group_by: [region]}\n",
             workers, dir, workers, port, dir);
    snprintf(name, sizeof(name), "agg%d.yaml", workers);
    tproc_write_file(name, cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", name, NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));

    /* One window an hour ago; each host's three points 1 s apart. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t w0 = ((int64_t)now.tv_sec - 3600) / 10 * 10 * 1000000000LL;
    int cents[2] = {0, 0}, max[2] = {0, 0};
    static char buf[8192];
    for (int h = 0; h < HOSTS; h++) {
        size_t len = 0;
        for (int k = 0; k < 3; k++) {
            int r = h % 2, v = 100 * (h % 20) + 37 * k + 11 * r; /* cents */
            cents[r] += v;
            if (v > max[r])
                max[r] = v;
            len += (size_t)snprintf(
                buf + len, sizeof(buf) - len, "cpu,host=h%02d,region=r%d usage_user=%d.%02d %lld\n",
                h, r, v / 100, v % 100, (long long)(w0 + (1 + 3 * k) * 1000000000LL + h));
        }
        send_udp(port, buf);
    }
    usleep(500 * 1000);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
    /* Every window was complete when it came out: no bounded wait, no late
     * partial, nothing lost between the workers. */
    const char *log = tproc_read_file(d.err_path);
    if (count_of(log, "partials_late=0 partials_no_rule=0 partials_bad=0 "
                      "partial_alloc_failed=0 owner_forced=0 owner_full=0") != workers)
        fail_msg("%d workers: a partial was late, lost or forced:\n%s", workers, log);

    for (int r = 0; r < 2; r++) {
        const char *fn[3] = {"avg", "count", "max"};
        double want[3] = {cents[r] / 100.0 / 60.0, 60, max[r] / 100.0};
        for (int f = 0; f < 3; f++) {
            char args[256], tag[32];
            snprintf(args, sizeof(args), "cpu --field usage_user:%s --format csv", fn[f]);
            char *out = query(dir, args);
            snprintf(tag, sizeof(tag), ",region=r%d,", r);
            if (count_of(out, tag) != 1)
                fail_msg("%d workers, usage_user:%s of r%d: %d rows, want 1:\n%s", workers, fn[f],
                         r, count_of(out, tag), out);
            double got = strtod(strstr(out, tag) + strlen(tag), NULL);
            if (fabs(got - want[f]) > 1e-9 * want[f])
                fail_msg("%d workers, usage_user:%s of r%d: %.17g, true value %.17g", workers,
                         fn[f], r, got, want[f]);
            free(out);
            char series[128];
            snprintf(series, sizeof(series), "\"series\":\"cpu,region=r%d usage_user:%s\"", r,
                     fn[f]);
            char path[64];
            snprintf(path, sizeof(path), "%s/aggs.jsonl", dir);
            assert_int_equal(count_of(tproc_read_dir_file(path), series), 1);
        }
    }
}

/* A reload in the middle of a window, to a configuration without the group
 * rule (and with another): the daemon neither crashes nor leaks (the ASan
 * build runs this too), partials for the rule that is gone are counted, and
 * no region's window comes out twice. */
static void test_reload_drops_rule(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-agg-reload");
    int port = tproc_port_base() + 7;
    const char *head = "engine: {workers: 2, idle: {sleep: 2ms}}\n"
                       "listeners:\n"
                       "  - {transport: udp, protocol: influx_line, port: %d}\n"
                       "stats: {prometheus: {enabled: false}}\n"
                       "pipeline:\n"
                       "  sinks:\n"
                       "    - {name: aggs, type: json, path: ./data/aggs.jsonl}\n"
                       "  routes:\n"
                       "    - {name: aggregates, subject: \"aggregate.>\", sinks: [aggs]}\n"
                       "  aggregations:\n"
                       "%s";
    char cfg[2048];
    snprintf(cfg, sizeof(cfg), head, port,
             "    - {measurement: cpu, field: usage_user, window: 10s,\n"
             "       functions: [avg, count, max], group_by: [region]}\n");
    tproc_write_file("r.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "r.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t w0 = ((int64_t)now.tv_sec - 3600) / 10 * 10 * 1000000000LL;
    static char buf[8192];
    for (int round = 0; round < 2; round++) {
        for (int h = 0; h < HOSTS; h++) {
            snprintf(buf, sizeof(buf), "cpu,host=h%02d,region=r%d usage_user=%d.5 %lld\n", h, h % 2,
                     h, (long long)(w0 + (1 + 4 * round) * 1000000000LL + h));
            send_udp(port, buf);
        }
        usleep(300 * 1000);
        if (round == 0) {
            snprintf(
                cfg, sizeof(cfg), head, port,
                "    - {measurement: cpu, field: usage_user, window: 10s, functions: [max]}\n");
            tproc_write_file("r.yaml", cfg);
            kill(d.pid, SIGHUP);
            assert_true(tproc_wait_log(&d, "reload applied from r.yaml", 10000));
        }
    }
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
    const char *aggs = tproc_read_dir_file("data/aggs.jsonl");
    for (int r = 0; r < 2; r++) {
        char series[128];
        snprintf(series, sizeof(series), "\"series\":\"cpu,region=r%d usage_user:count\"", r);
        assert_true(count_of(aggs, series) <= 1);
    }
    /* The new rule's per-host maxima came out (the second round). */
    assert_true(count_of(aggs, "usage_user:max") >= HOSTS);
}

static void test_group_by_scenario(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-agg-live");
    int port = tproc_port_base() + 7;
    run_scenario(1, port);
    run_scenario(2, port);
    run_scenario(4, port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_by_scenario),
        cmocka_unit_test(test_reload_drops_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
