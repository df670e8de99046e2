/* The whole engine on live input: ringflowd with aggregations, a correlation
 * pattern, alert rules and routes to JSON sinks, fed over UDP; every output
 * checked against values computed here. */
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

#define HOSTS 16
#define POINTS 10

static int g_port;

static void send_udp(const char *payload)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(sendto(fd, payload, strlen(payload), 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)strlen(payload));
    close(fd);
}

/* The value of `"series":"<series>"` ... `"value":<v>` in a JSON-lines file,
 * or NAN when no line has that series. */
static double json_value_of(const char *text, const char *series)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "\"series\":\"%s\",\"value\":", series);
    const char *p = strstr(text, needle);
    if (!p)
        return NAN;
    return strtod(p + strlen(needle), NULL);
}

/* cmocka's float comparison is true for NaN; a missing line must fail. */
static void assert_json_value(const char *text, const char *series, double want, double eps)
{
    double got = json_value_of(text, series);
    if (isnan(got))
        fail_msg("no output line for series %s", series);
    if (fabs(got - want) > eps)
        fail_msg("%s: got %.17g, want %.17g", series, got, want);
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_pipeline_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-pipeline");
    g_port = tproc_port_base() + 5;
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {transport: udp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "pipeline:\n"
             "  batch: {max_events: 1000, interval: 100ms}\n"
             "  sinks:\n"
             "    - {name: store, type: count_only}\n"
             "    - {name: alerts, type: json, path: ./alerts.jsonl}\n"
             "    - {name: aggs, type: json, path: ./aggs.jsonl}\n"
             "    - {name: corr, type: json, path: ./corr.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [store]}\n"
             "    - {subject: \"aggregate.>\", sinks: [aggs]}\n"
             "    - {subject: \"alert.>\", sinks: [alerts], class: critical}\n"
             "    - {subject: \"correlated.>\", sinks: [corr], class: critical}\n"
             /* The un-timestamped line below moves the watermark to now; the
              * back-dated window must stay open for the events still in flight. */
             "  aggregation: {allowed_lateness: 120s}\n"
             "  aggregations:\n"
             "    - {measurement: cpu, field: usage, window: 10s, functions: [avg, min, max, sum, "
             "count]}\n"
             "  alerts:\n"
             "    - {name: high_cpu, type: threshold, match: {measurement: cpu, field: usage},\n"
             "       op: \">\", fire: 1000, resolve: 900}\n"
             "  correlation:\n"
             "    patterns:\n"
             "      - {name: error_burst, type: burst, match: {measurement: errors}, count: 3,\n"
             "         within: 10s, key: host}\n",
             g_port);
    tproc_write_file("live.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "live.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));

    /* Event times in one 10 s window that ended well in the past, so the
     * aggregator closes it on its idle sweep. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t0 = ((int64_t)now.tv_sec / 10 - 3) * 10 * 1000000000LL;

    double sum[HOSTS] = {0}, mn[HOSTS], mx[HOSTS];
    char payload[8192];
    srand(7);
    for (int h = 0; h < HOSTS; h++) {
        size_t len = 0;
        mn[h] = INFINITY;
        mx[h] = -INFINITY;
        for (int i = 0; i < POINTS; i++) {
            /* Two decimals, as collectors send; host 3 crosses the alert. */
            double v = (double)(rand() % 100000) / 100.0;
            /* Host 3 fires at 1500.25, stays firing at 950 (above the 900
             * resolve threshold: hysteresis), resolves at 850.5. */
            if (h == 3 && i >= 4 && i <= 6)
                v = i == 4 ? 1500.25 : i == 5 ? 950.0 : 850.5;
            sum[h] += v;
            mn[h] = fmin(mn[h], v);
            mx[h] = fmax(mx[h], v);
            len += (size_t)snprintf(payload + len, sizeof(payload) - len,
                                    "cpu,host=h%d,dc=eu usage=%.2f %lld\n", h, v,
                                    (long long)(t0 + (int64_t)i * 500000000LL));
        }
        send_udp(payload);
    }
    /* A burst of errors on one host: exactly one correlated event. */
    snprintf(
        payload, sizeof(payload),
        "errors,host=x count=1i %lld\nerrors,host=x count=1i %lld\nerrors,host=x count=1i %lld\n"
        "errors,host=y count=1i %lld\n",
        (long long)t0, (long long)(t0 + 1000000000LL), (long long)(t0 + 2000000000LL),
        (long long)t0);
    send_udp(payload);
    /* A malformed line next to a good one: the good one still goes through. */
    send_udp("cpu,host=bad usage=notanumber\nmem,host=h0 used=1i\n");

    usleep(1500 * 1000); /* windows close on the aggregator's idle sweep */
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
    const char *log = tproc_read_file(d.err_path);
    assert_non_null(strstr(log, "lines_rejected=1"));

    char *aggs = strdup(tproc_read_dir_file("aggs.jsonl"));
    for (int h = 0; h < HOSTS; h++) {
        char series[128];
        snprintf(series, sizeof(series), "cpu,dc=eu,host=h%d usage:count", h);
        assert_json_value(aggs, series, POINTS, 0);
        snprintf(series, sizeof(series), "cpu,dc=eu,host=h%d usage:sum", h);
        assert_json_value(aggs, series, sum[h], 1e-9 * fabs(sum[h]));
        snprintf(series, sizeof(series), "cpu,dc=eu,host=h%d usage:avg", h);
        assert_json_value(aggs, series, sum[h] / POINTS, 1e-9 * fabs(sum[h]));
        snprintf(series, sizeof(series), "cpu,dc=eu,host=h%d usage:min", h);
        assert_json_value(aggs, series, mn[h], 0);
        snprintf(series, sizeof(series), "cpu,dc=eu,host=h%d usage:max", h);
        assert_json_value(aggs, series, mx[h], 0);
    }
    /* Each window exactly once: 5 functions x 16 hosts. */
    assert_int_equal(count_lines_with(aggs, "\"kind\":\"aggregate\""), 5 * HOSTS);
    free(aggs);

    char *alerts = strdup(tproc_read_dir_file("alerts.jsonl"));
    assert_int_equal(count_lines_with(alerts, "\"state\":\"firing\""), 1);
    assert_int_equal(count_lines_with(alerts, "\"state\":\"resolved\""), 1);
    assert_non_null(strstr(alerts, "\"series\":\"cpu,dc=eu,host=h3 usage\",\"value\":1500.25"));
    assert_non_null(strstr(alerts, "\"series\":\"cpu,dc=eu,host=h3 usage\",\"value\":850.5"));
    assert_non_null(strstr(alerts, "\"rule\":\"high_cpu\""));
    free(alerts);

    char *corr = strdup(tproc_read_dir_file("corr.jsonl"));
    assert_int_equal(count_lines_with(corr, "\"kind\":\"correlated\""), 1);
    assert_non_null(strstr(corr, "\"members\":3"));
    free(corr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
