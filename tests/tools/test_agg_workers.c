/* Group-by aggregates are the same whatever the number of workers (issue 23,
 * item 1): one recording replayed (`ringflow replay --into`, the in-process
 * engine, deterministic) with 1, 2 and 4 workers gives the same aggregate
 * rows, one per group and window, with the true values.
 *
 * The recording: 40 hosts in two regions send cpu usage_user three times per
 * 10 s window for six windows (the scenario), a latency field with
 * full-precision values grouped by service (every function, quantiles
 * included), a StatsD set and a sampled StatsD counter grouped by tag, and a
 * per-series (ungrouped) rule, which stays on the series' own worker.
 *
 * Checks: (1) the rule gives one row per region and window with the
 * true avg, count and max; (2) the rows of 2 and 4 workers equal those of 1
 * worker: series, time and value, exactly, quantiles within the sketch's
 * error (2 alpha); (3) no (series, time) comes out twice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "../daemon/daemon_proc.h"
#include "storage/recfile/recfile.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define HOSTS 40
#define WINDOWS 6
#define WINDOW_S 10

static int64_t g_w0; /* recorded wall time of the first window's start */
static uint64_t g_lcg = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return g_lcg >> 11;
}

/* The scenario, per region and window: sum of cents, count, max. */
static long long g_cents[2][WINDOWS];
static int g_count[2][WINDOWS];
static int g_max_cents[2][WINDOWS];

static char *run_ok(const char *cmd)
{
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out); /* tproc_shell_ok printed what failed */
    return out;
}

static rf_rec_writer *g_w;

static void put(const char *listener, uint8_t protocol, int64_t t_us, const char *payload)
{
    rf_rec r = {
        .wall_ns = g_w0 + t_us * 1000,
        .mono_ns = 7000 * NS_PER_S + t_us * 1000,
        .transport = RF_REC_UDP,
        .protocol = protocol,
        .src_port = 40000,
        .src_family = 4,
        .src_addr = {127, 0, 0, 1},
        .name = listener,
        .payload = (const uint8_t *)payload,
        .payload_len = (uint32_t)strlen(payload),
    };
    rf_err err;
    if (rf_rec_writer_append(g_w, &r, &err) != 0)
        fail_msg("append: %s", err.msg);
}

static void write_recording(const char *path)
{
    rf_rec_writer_options wo = {.path = path};
    rf_err err;
    if (rf_rec_writer_open(&g_w, &wo, &err) != 0)
        fail_msg("%s", err.msg);
    static char buf[1 << 16];
    /* Every 100 ms of recorded time; each host sends at 1 s, 4 s and 7 s
     * into each window (plus its own few ms), all with explicit times. */
    for (int64_t ms = 0; ms < (int64_t)WINDOWS * WINDOW_S * 1000 + 3000; ms += 100) {
        size_t len = 0;
        int win = (int)(ms / (WINDOW_S * 1000));
        int64_t in = ms % (WINDOW_S * 1000);
        if (win < WINDOWS && (in == 1000 || in == 4000 || in == 7000)) {
            for (int h = 0; h < HOSTS; h++) {
                int64_t ts = g_w0 + ms * NS_PER_MS + h * 1000;
                int region = h % 2, cents = (int)(rnd() % 10000);
                g_cents[region][win] += cents;
                g_count[region][win]++;
                if (cents > g_max_cents[region][win])
                    g_max_cents[region][win] = cents;
                double lat = (double)(rnd() % 1000000) / 997.0 + 0.001;
                len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                        "cpu,host=h%02d,region=r%d usage_user=%d.%02d %" PRId64 "\n"
                                        "lat,host=h%02d,svc=s%d ms=%.17g %" PRId64 "\n"
                                        "mem,host=h%02d used=%.3f %" PRId64 "\n",
                                        h, region, cents / 100, cents % 100, ts, h, h % 3, lat, ts,
                                        h, (double)(rnd() % 100000) / 7.0, ts);
            }
            put("lp", RF_REC_INFLUX, ms * 1000, buf);
            /* StatsD (receipt time): members of two teams, sampled counters */
            len = 0;
            for (int h = 0; h < HOSTS; h++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                        "users:u%d|s|#team:t%d,host:h%02d\n"
                                        "reqs:%d|c|@0.5|#svc:s%d,host:h%02d\n",
                                        (int)(rnd() % 200), h % 2, h, (int)(rnd() % 7), h % 3, h);
            put("statsd", RF_REC_STATSD, ms * 1000 + 10, buf);
        }
    }
    assert_int_equal(rf_rec_writer_close(g_w, &err), 0);
}

static void write_config(void)
{
    char cfg[4096];
    int port = tproc_port_base();
    snprintf(
        cfg, sizeof(cfg),
        "engine: {workers: 2}\n"
        "listeners:\n"
        "  - {name: lp, transport: udp, protocol: influx_line, port: %d}\n"
        "  - {name: statsd, transport: udp, protocol: statsd, port: %d}\n"
        "stats: {prometheus: {enabled: false}}\n"
        "pipeline:\n"
        "  sinks:\n"
        "    - {name: aggs, type: json, path: ./data/aggs.jsonl}\n"
        "  routes:\n"
        "    - {name: aggregates, subject: \"aggregate.>\", sinks: [aggs]}\n"
        "  aggregation: {allowed_lateness: 5s}\n" /* windows park: events of the next one arrive first */
        "  aggregations:\n"
        "    - {measurement: cpu, field: usage_user, window: 10s, functions: [avg, count, max],\n"
        "       group_by: [region]}\n"
        "    - {measurement: lat, field: ms, window: 10s, group_by: [svc],\n"
        "       functions: [count, sum, min, max, avg, stddev, first, last, p50, p99]}\n"
        "    - {measurement: users, window: 10s, functions: [count], group_by: [team]}\n"
        "    - {measurement: reqs, window: 10s, functions: [count, sum, rate], group_by: [svc]}\n"
        "    - {measurement: mem, field: used, window: 10s, functions: [avg, max, stddev]}\n",
        port, port + 1);
    tproc_write_file("agg.yaml", cfg);
}

/* ---- the rows --------------------------------------------------------------- */

typedef struct row {
    char key[256]; /* time + series */
    double v;
} row;

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const row *)a)->key, ((const row *)b)->key);
}

/* The aggregate rows of DIR/aggs.jsonl, sorted by (time, series). */
static row *rows_of(const char *dir, int *n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/aggs.jsonl", dir);
    char *text = strdup(tproc_read_dir_file(path));
    int cap = 1024;
    row *r = malloc((size_t)cap * sizeof(row));
    *n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *t = strstr(line, "\"time\":\""), *s = strstr(line, "\"series\":\""),
                   *v = strstr(line, "\"value\":");
        if (!t || !s || !v)
            fail_msg("%s: not an aggregate row: %s", path, line);
        if (*n == cap)
            r = realloc(r, (size_t)(cap *= 2) * sizeof(row));
        const char *se = strchr(s + 10, '"');
        snprintf(r[*n].key, sizeof(r[*n].key), "%.30s %.*s", t + 8, (int)(se - (s + 10)), s + 10);
        r[*n].v = strtod(v + 8, NULL);
        (*n)++;
    }
    free(text);
    qsort(r, (size_t)*n, sizeof(row), row_cmp);
    for (int i = 1; i < *n; i++)
        if (strcmp(r[i].key, r[i - 1].key) == 0)
            fail_msg("%s: %s comes out twice (%.17g and %.17g)", dir, r[i].key, r[i - 1].v, r[i].v);
    return r;
}

static const row *find_row(const row *r, int n, const char *key)
{
    row k;
    snprintf(k.key, sizeof(k.key), "%s", key);
    return bsearch(&k, r, (size_t)n, sizeof(row), row_cmp);
}

static void replay(const char *dir, int workers)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s replay rec.rfrec --into %s --config agg.yaml --workers %d", cli,
             dir, workers);
    free(run_ok(cmd));
}

/* The rows of N workers against those of one. */
static void same_rows(const row *a, int na, const char *dir_b, const row *b, int nb)
{
    for (int i = 0, j = 0; i < na || j < nb;) {
        int c = i == na ? 1 : j == nb ? -1 : strcmp(a[i].key, b[j].key);
        if (c < 0)
            fail_msg("%s lacks %s (1 worker: %.17g)", dir_b, a[i].key, a[i].v);
        if (c > 0)
            fail_msg("%s has %s (%.17g), 1 worker does not", dir_b, b[j].key, b[j].v);
        bool quantile = strstr(a[i].key, ":p") != NULL;
        bool set = strstr(a[i].key, "users") != NULL;
        if (quantile || set) {
            /* within the sketch's error (alpha = 1%, twice for safety) */
            if (fabs(a[i].v - b[j].v) > 0.02 * fabs(a[i].v))
                fail_msg("%s: %s is %.17g, 1 worker %.17g", dir_b, a[i].key, b[j].v, a[i].v);
        } else if (memcmp(&a[i].v, &b[j].v, sizeof(double)) != 0) {
            fail_msg("%s: %s is %.17g, 1 worker %.17g (not bit-exact)", dir_b, a[i].key, b[j].v,
                     a[i].v);
        }
        i++;
        j++;
    }
}

static void test_group_by_any_workers(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-agg-workers");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    /* An hour ago, on a window boundary. */
    g_w0 = ((int64_t)now.tv_sec - 3600) / WINDOW_S * WINDOW_S * NS_PER_S;
    char path[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    write_recording(path);
    write_config();
    replay("w1", 1);
    replay("w2", 2);
    replay("w4", 4);
    int n1, n2, n4;
    row *r1 = rows_of("w1", &n1);
    row *r2 = rows_of("w2", &n2);
    row *r4 = rows_of("w4", &n4);

    /* (1) The rule: one row per region and window, the true values. */
    for (int w = 0; w < WINDOWS; w++) {
        char ts[64];
        time_t sec = (time_t)(g_w0 / NS_PER_S) + w * WINDOW_S;
        struct tm tm;
        gmtime_r(&sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000000000Z", &tm);
        for (int reg = 0; reg < 2; reg++) {
            const char *fn[3] = {"avg", "count", "max"};
            double want[3] = {(double)g_cents[reg][w] / 100.0 / g_count[reg][w], g_count[reg][w],
                              g_max_cents[reg][w] / 100.0};
            for (int f = 0; f < 3; f++) {
                char key[256];
                snprintf(key, sizeof(key), "%s cpu,region=r%d usage_user:%s", ts, reg, fn[f]);
                for (int k = 0; k < 3; k++) {
                    const row *rr = find_row(k == 0   ? r1
                                             : k == 1 ? r2
                                                      : r4,
                                             k == 0   ? n1
                                             : k == 1 ? n2
                                                      : n4,
                                             key);
                    if (!rr)
                        fail_msg("%d workers: no row %s", k == 0 ? 1 : k == 1 ? 2 : 4, key);
                    if (fabs(rr->v - want[f]) > 1e-9 * fabs(want[f]))
                        fail_msg("%d workers: %s = %.17g, true value %.17g",
                                 k == 0   ? 1
                                 : k == 1 ? 2
                                          : 4,
                                 key, rr->v, want[f]);
                }
            }
            assert_int_equal(g_count[reg][w], 60);
        }
    }
    /* Every rule came out: 6 windows x (2 regions x 3 + 3 services x 10 +
     * 2 teams + 3 services x 3) + 40 hosts x 6 x 3 (ungrouped). */
    assert_true(n1 >= WINDOWS * (6 + 30 + 2 + 9) + HOSTS * WINDOWS * 3);

    /* (2) 2 and 4 workers: the rows of 1. */
    same_rows(r1, n1, "w2", r2, n2);
    same_rows(r1, n1, "w4", r4, n4);
    free(r1);
    free(r2);
    free(r4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_by_any_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
