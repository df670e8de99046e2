/* Series lifecycle under churn (issue 24), scaled down: a recording in event
 * time keeps LIVE series alive while CHURN new ones replace CHURN old ones
 * every simulated minute, for MINUTES minutes, replayed (`ringflow replay
 * --into`, 2 workers) with max_series far below the distinct series
 * (DISTINCT, with the aggregate series, = 13 x a worker's max_series) and series_idle_ttl 5 min.
 *
 * Checks: (1) every point reaches the sink (a refused series would lose
 * its points as unknown_series), and the store: the points of series that
 * expired long ago are read back from the segments, (2) the per-series and
 * grouped aggregates
 * equal those of a run where nothing expires (series_idle_ttl 0, max_series
 * above the distinct series), row for row. The full-size run (50,000 live,
 * 5,000 a minute, 24 h) is scripts/churn.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../daemon/daemon_proc.h"
#include "storage/recfile/recfile.h"

#define NS_PER_S INT64_C(1000000000)
#define LIVE 500
#define CHURN 50
#define MINUTES 120
/* Per worker. Each input series makes two aggregate series (max, count):
 * the table holds three series per live input series. */
#define MAX_SERIES 1500
#define DISTINCT (3 * (LIVE + CHURN * MINUTES))

static char *run_ok(const char *cmd)
{
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out);
    return out;
}

static void write_recording(const char *path, int64_t w0)
{
    rf_rec_writer *w;
    rf_rec_writer_options wo = {.path = path};
    rf_err err;
    if (rf_rec_writer_open(&w, &wo, &err) != 0)
        fail_msg("%s", err.msg);
    static char buf[1 << 16];
    /* Minute m: series [CHURN*m, CHURN*m + LIVE) send one point each. */
    for (int m = 0; m < MINUTES; m++) {
        size_t len = 0;
        for (int s = CHURN * m; s < CHURN * m + LIVE; s++) {
            int64_t ts = w0 + (int64_t)m * 60 * NS_PER_S + (int64_t)(s % LIVE) * 1000000;
            len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                    "pod,pod=p%d,zone=z%d used=%d %" PRId64 "\n", s, s % 4,
                                    (s * 7 + m) % 1000, ts);
            if (len > sizeof(buf) - 128 || s + 1 == CHURN * m + LIVE) {
                rf_rec r = {
                    .wall_ns = w0 + (int64_t)m * 60 * NS_PER_S + NS_PER_S,
                    .mono_ns = 7000 * NS_PER_S + (int64_t)m * 60 * NS_PER_S + NS_PER_S,
                    .transport = RF_REC_UDP,
                    .protocol = RF_REC_INFLUX,
                    .src_port = 40000,
                    .src_family = 4,
                    .src_addr = {127, 0, 0, 1},
                    .name = "lp",
                    .payload = (const uint8_t *)buf,
                    .payload_len = (uint32_t)len,
                };
                if (rf_rec_writer_append(w, &r, &err) != 0)
                    fail_msg("append: %s", err.msg);
                len = 0;
            }
        }
    }
    assert_int_equal(rf_rec_writer_close(w, &err), 0);
}

static void write_config(const char *name, const char *lifecycle)
{
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2}\n"
             "listeners:\n"
             "  - {name: lp, transport: udp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "pipeline:\n"
             "  %s\n"
             "  sinks:\n"
             "    - {name: points, type: json, path: ./data/points.jsonl}\n"
             "    - {name: aggs, type: json, path: ./data/aggs.jsonl}\n"
             "    - {name: store, type: store}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [points, store]}\n"
             "    - {name: aggregates, subject: \"aggregate.>\", sinks: [aggs]}\n"
             "  aggregations:\n"
             "    - {measurement: pod, field: used, window: 60s, functions: [max, count]}\n"
             "    - {measurement: pod, field: used, window: 60s, functions: [sum, count],\n"
             "       group_by: [zone]}\n",
             tproc_port_base(), lifecycle);
    tproc_write_file(name, cfg);
}

/* Lines of a file in the test directory (wc -l). */
static long count_lines(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "wc -l < %s", path);
    char *out = run_ok(cmd);
    long n = strtol(out, NULL, 10);
    free(out);
    return n;
}

static void test_churn_never_refuses(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-series-churn");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const int64_t w0 = ((int64_t)now.tv_sec - 3 * 3600) / 60 * 60 * NS_PER_S;
    char path[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    write_recording(path, w0);
    char lc[128];
    snprintf(lc, sizeof(lc), "max_series: %d\n  series_idle_ttl: 5m", MAX_SERIES);
    write_config("churn.yaml", lc);
    snprintf(lc, sizeof(lc), "max_series: %d\n  series_idle_ttl: 0s", 2 * DISTINCT);
    write_config("keep.yaml", lc);
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s replay rec.rfrec --into churn --config churn.yaml --workers 2",
             cli);
    free(run_ok(cmd));
    snprintf(cmd, sizeof(cmd), "%s replay rec.rfrec --into keep --config keep.yaml --workers 2",
             cli);
    free(run_ok(cmd));

    /* (1) Every point: 13 x max_series distinct series, none refused. */
    assert_int_equal(count_lines("churn/points.jsonl"), MINUTES * LIVE);
    assert_int_equal(count_lines("keep/points.jsonl"), MINUTES * LIVE);
    /* Expiry is about memory, not data: an early series (p500, live in
     * minutes 1 to 10, expired five minutes later) read back from the
     * segments. */
    snprintf(cmd, sizeof(cmd),
             "%s query --dir churn/store pod --field used --where pod=p500 --format csv | "
             "grep -c pod=p500",
             cli);
    char *out = run_ok(cmd);
    assert_int_equal(strtol(out, NULL, 10), LIVE / CHURN); /* one point a minute */
    free(out);
    /* (2) The same aggregates as with nothing expiring (window, series,
     * value), in whatever order the workers emitted them. */
    assert_true(count_lines("keep/aggs.jsonl") > MINUTES * LIVE); /* per series and zone */
    /* sort -S: a small buffer, which MALLOC_PERTURB_ (meson) does not fill
     * for long. */
    free(run_ok("sort -S 8M keep/aggs.jsonl > keep.rows && "
                "sort -S 8M churn/aggs.jsonl > churn.rows && cmp keep.rows churn.rows"));
    assert_int_equal(count_lines("churn.rows"), count_lines("keep.rows"));
}

/* A per-series absence must be able to fire before its series expires: the
 * configuration check refuses `absent` >= series_idle_ttl, naming both. */
static void test_absent_shorter_than_ttl(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-series-ttl");
    tproc_write_file("bad.yaml", "pipeline:\n"
                                 "  series_idle_ttl: 1m\n"
                                 "  alerts:\n"
                                 "    - {name: gone, type: absence, match: {measurement: cpu},\n"
                                 "       absent: 2m}\n");
    const char *daemon = getenv("RINGFLOWD");
    assert_non_null(daemon);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s --check-config bad.yaml 2>&1", daemon);
    int status = 0;
    char *out = tproc_shell(cmd, &status);
    assert_non_null(out);
    assert_int_equal(status, 3);
    assert_non_null(strstr(out, "series_idle_ttl"));
    assert_non_null(strstr(out, "absent (120 s) must be shorter"));
    free(out);
    tproc_write_file("ok.yaml", "pipeline:\n"
                                "  series_idle_ttl: 3m\n"
                                "  alerts:\n"
                                "    - {name: gone, type: absence, match: {measurement: cpu},\n"
                                "       absent: 2m}\n");
    snprintf(cmd, sizeof(cmd), "%s --check-config ok.yaml", daemon);
    free(run_ok(cmd));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_churn_never_refuses),
                                       cmocka_unit_test(test_absent_shorter_than_ttl)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
