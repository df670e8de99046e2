/* Data written through the engine is queried back exactly: points sent over
 * UDP to ringflowd land in the store (through the store sink), the daemon
 * stops (drain flushes every shard), and `ringflow query` returns every point
 * with its exact time and value, including values a float encoder could get
 * wrong (many decimals, huge, tiny, negative zero). A restart in between
 * checks that the store reopens (recovery) and still serves the same. Graphite
 * templates and DogStatsD events go the same way (test_templates_and_events_live). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_proc.h"

#define SERIES 6
#define POINTS 50

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

/* Runs `ringflow query ARGS` in the test dir; returns its stdout. */
static char *query(const char *args)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd %s && %s query --dir ./data/store %s 2>&1", tproc_dir(), cli,
             args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

static const char *values[] = {"0.1",           "-273.15",          "1e300", "2.5e-300", "-0",
                               "123456.789012", "3.141592653589793"};

static void run_daemon_with(const char *payloads[SERIES], int port)
{
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {transport: udp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port);
    tproc_write_file("store.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "store.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    if (payloads)
        for (int s = 0; s < SERIES; s++)
            send_udp(port, payloads[s]);
    usleep(500 * 1000);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
    if (payloads)
        assert_non_null(strstr(tproc_read_file(d.err_path), "store_rejected=0"));
}

static void test_store_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-store-live");
    int port = tproc_port_base() + 8;
    /* An hour ago: well inside the default 90-day retention, which would
     * (rightly) remove older segments at open. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t0 = ((int64_t)now.tv_sec - 3600) * 1000000000LL;
    static char payload[SERIES][8192];
    const char *payloads[SERIES];
    for (int s = 0; s < SERIES; s++) {
        size_t len = 0;
        for (int i = 0; i < POINTS; i++)
            len += (size_t)snprintf(payload[s] + len, sizeof(payload[s]) - len,
                                    "temp,sensor=s%d,site=lab v=%s,n=%di %lld\n", s,
                                    values[(s + i) % 7], s * 1000 + i,
                                    (long long)(t0 + (int64_t)i * 10000000000LL + s));
        payloads[s] = payload[s];
    }
    run_daemon_with(payloads, port);
    /* Reopen the store (recovery runs) and stop again without new data. */
    run_daemon_with(NULL, port);

    /* Every point of every series, exactly: CSV gives ns times and the
     * value as the shortest text that reads back to the same double. */
    for (int s = 0; s < SERIES; s++) {
        char args[256];
        snprintf(args, sizeof(args), "temp --field v --where sensor=s%d --format csv", s);
        char *out = query(args);
        for (int i = 0; i < POINTS; i++) {
            char want_time[32];
            snprintf(want_time, sizeof(want_time), "%lld",
                     (long long)(t0 + (int64_t)i * 10000000000LL + s));
            char *line = strstr(out, want_time);
            if (!line)
                fail_msg("series s%d: no point at %s in:\n%s", s, want_time, out);
            char *end = strchr(line, '\n');
            char *comma = end ? end : line + strlen(line);
            while (comma > line && comma[-1] != ',')
                comma--;
            double got = strtod(comma, NULL);
            double want = strtod(values[(s + i) % 7], NULL);
            if (memcmp(&got, &want, sizeof(got)) != 0)
                fail_msg("series s%d at %s: got %.17g, want %.17g (bit-exact)", s, want_time, got,
                         want);
        }
        free(out);
        /* The integer field too, aggregated: sum of s*1000+i over i. */
        snprintf(args, sizeof(args),
                 "temp --field n --where sensor=s%d --agg count,sum --format csv", s);
        out = query(args);
        char want[64];
        snprintf(want, sizeof(want), ",%d,%d", POINTS,
                 s * 1000 * POINTS + POINTS * (POINTS - 1) / 2);
        if (!strstr(out, want))
            fail_msg("series s%d n: want count,sum %s in:\n%s", s, want, out);
        free(out);
    }
}

/* The "lines_ok" of listener `name` in a "show listeners json" reply, or -1. */
static long listener_lines_ok(const char *reply, const char *name)
{
    char key[96];
    snprintf(key, sizeof(key), "\"listener\":\"%s\"", name);
    const char *p = reply ? strstr(reply, key) : NULL;
    const char *q = p ? strstr(p, "\"lines_ok\":") : NULL;
    return q && q < strchr(p, '}') ? strtol(q + strlen("\"lines_ok\":"), NULL, 10) : -1;
}

/* Graphite templates and DogStatsD events, through the engine into the
 * store: the names the templates give, the event's texts as strings. */
static void test_templates_and_events_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-store-live-protocols");
    int port = tproc_port_base() + 20;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long t0 = (long long)now.tv_sec - 3600;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 1, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: gr, transport: tcp, protocol: graphite, port: %d, separator: _,\n"
             "     tags: dc=x, templates: [\"stats.* .host.measurement*\", measurement*]}\n"
             "  - {name: sd, transport: udp, protocol: statsd, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port, port + 1);
    tproc_write_file("protocols.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "protocols.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    char text[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int n = snprintf(text, sizeof(text), "stats.web1.cpu.load 5 %lld\nfoo.bar 2 %lld\n", t0, t0);
    assert_int_equal(write(fd, text, (size_t)n), n);
    close(fd);
    snprintf(text, sizeof(text), "_e{4,9}:Boot|ok \"fine\"|h:n1|d:%lld\n", t0);
    send_udp(port + 1, text);
    long gr = -1, sd = -1;
    for (int i = 0; i < 500 && (gr < 2 || sd < 1); i++) {
        char *reply = tproc_ask("show listeners json");
        gr = listener_lines_ok(reply, "gr");
        sd = listener_lines_ok(reply, "sd");
        free(reply);
        if (gr < 2 || sd < 1)
            usleep(20 * 1000);
    }
    assert_int_equal(gr, 2);
    assert_int_equal(sd, 1);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);

    static const char *const want[][2] = {
        {"cpu_load --format csv", ",cpu_load,value,dc=x;host=web1,5"},
        {"foo_bar --format csv", ",foo_bar,value,dc=x,2"},
        {"Boot --field text --format csv", ",Boot,text,host=n1,\"ok \"\"fine\"\"\""},
        {"Boot --field title --format csv", ",Boot,title,host=n1,Boot"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *out = query(want[i][0]);
        if (!strstr(out, want[i][1]))
            fail_msg("query %s: want %s in:\n%s", want[i][0], want[i][1], out);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_live),
        cmocka_unit_test(test_templates_and_events_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
