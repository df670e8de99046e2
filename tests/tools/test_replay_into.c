/* Deterministic replay: `ringflow replay REC --into DIR` (tools/replay/replay_engine.h).
 *
 * A recording is written here with the recfile writer: five listeners, three
 * protocols, UDP and TCP, lines with explicit timestamps and lines without,
 * a critical listener, rejected lines, a burst that rolls segments by size,
 * and 20 s of recorded time that roll them by age. The configuration
 * aggregates, has alert rules that fire and resolve (a threshold with a
 * for-duration on receipt time, an absence rule driven by ticks) and a
 * correlation pattern.
 *
 *   1. Replayed twice into fresh directories: the directories are identical,
 *      file names and bytes (segments, aggregate and alert JSON lines).
 *   2. The segment names carry the recording's time, not the machine's.
 *   3. Replayed with another number of workers: other files, the same points.
 *   4. The same stream sent to a live ringflowd (per listener, over its own
 *      transport, --rewrite-timestamps): the points stored are the same as the
 *      replay's, for every series whose event times do not depend on when it
 *      was received (explicit timestamps, or ns-precision rewritten ones).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/daemon_proc.h"
#include "core/event/event.h"
#include "storage/recfile/recfile.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define SPAN_MS 20000 /* recorded time */
#define STEP_MS 10
#define HOSTS 8
#define NOISE_SERIES 4
#define NOISE_LINES 800 /* per record, during the burst (~50 KB) */

static int64_t g_w0; /* recorded wall time at the start (30 min ago) */
static int g_port;
static int g_noise_k[NOISE_SERIES]; /* noise,k=k<N>: series worker 1 of 2 owns */

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t g_lcg = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return g_lcg >> 11;
}


static char *run(const char *cmd, int *status)
{
    return tproc_shell(cmd, status);
}
static char *run_ok(const char *cmd)
{
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out); /* tproc_shell_ok printed what failed */
    return out;
}

static char *slurp(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tproc_dir(), rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* Occurrences of needle (not overlapping). By hand: strstr under ASan
 * measures the rest of the haystack at every call, quadratic on the MB of
 * CSV compared here. */
static int count_of(const char *text, const char *needle)
{
    const size_t len = strlen(text), nl = strlen(needle);
    int n = 0;
    for (size_t i = 0; i + nl <= len;) {
        if (text[i] == needle[0] && memcmp(text + i, needle, nl) == 0) {
            n++;
            i += nl;
        } else {
            i++;
        }
    }
    return n;
}

/* The summary's "key":N from --json output. */
static long long json_num(const char *json, const char *key)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "\"%s\":", key);
    const char *p = strstr(json, needle);
    if (!p)
        fail_msg("no %s in %s", key, json);
    return strtoll(p + strlen(needle), NULL, 10);
}

/* ---- the recording ------------------------------------------------------------ */

static rf_rec_writer *g_w;

static void put(const char *listener, uint8_t transport, uint8_t protocol, uint32_t conn,
                uint8_t flags, int64_t t_ms_us, const char *payload)
{
    /* t in microseconds of recorded time: records of one step get distinct
     * receive times, as separate receives would. */
    rf_rec r = {
        .wall_ns = g_w0 + t_ms_us * 1000,
        .mono_ns = 5000 * NS_PER_S + t_ms_us * 1000,
        .conn = conn,
        .transport = transport,
        .protocol = protocol,
        .flags = flags,
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

static void pick_noise_series(void)
{
    int n = 0;
    for (int k = 0; n < NOISE_SERIES; k++) {
        char key[64];
        int len = snprintf(key, sizeof(key), "noise,k=k%d x", k);
        if (rf_event_owner(rf_series_id_of_key(key, (size_t)len), 2) == 1)
            g_noise_k[n++] = k;
    }
}

static void write_recording(const char *path)
{
    pick_noise_series();
    rf_rec_writer_options wo = {.path = path};
    rf_err err;
    if (rf_rec_writer_open(&g_w, &wo, &err) != 0)
        fail_msg("%s", err.msg);
    static char buf[1 << 16];
    put("lp-tcp", RF_REC_TCP, RF_REC_INFLUX, 1, RF_REC_F_OPEN, 0, "");
    put("graphite", RF_REC_TCP, RF_REC_GRAPHITE, 2, RF_REC_F_OPEN, 0, "");
    for (int64_t ms = 0; ms < SPAN_MS; ms += STEP_MS) {
        int64_t us = ms * 1000;
        const int64_t ts = g_w0 + ms * NS_PER_MS; /* explicit event time of this step */
        /* cpu: every host, explicit ns timestamps, two decimals */
        size_t len = 0;
        for (int h = 0; h < HOSTS; h++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                    "cpu,host=h%d,dc=eu usage=%.2f %" PRId64 "\n", h,
                                    (double)(rnd() % 10000) / 100.0, ts + h);
        if (ms % 1000 == 500)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "this is not line protocol\n");
        /* heartbeat without a timestamp, silent from 8 s to 14 s: the absence
         * rule (2 s) fires on a tick and resolves on the next sample */
        if (ms % 500 == 0 && (ms < 8000 || ms >= 14000))
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "heartbeat,node=n1 up=1i\n");
        put("lp-udp", RF_REC_UDP, RF_REC_INFLUX, 0, 0, us, buf);

        /* temp over TCP, no timestamps: room r0 above 80 from 5 s to 9 s
         * (the rule fires after 2 s of receipt time), then back at 60 */
        if (ms % 50 == 0) {
            len = 0;
            for (int room = 0; room < 3; room++) {
                double v = 20 + (double)(rnd() % 1000) / 100.0;
                if (room == 0 && ms >= 5000 && ms < 9000)
                    v = 85.5;
                else if (room == 0 && ms >= 9000)
                    v = 60.25;
                len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                        "temp,room=r%d,site=lab v=%.2f\n", room, v);
            }
            put("lp-tcp", RF_REC_TCP, RF_REC_INFLUX, 1, 0, us + 100, buf);
        }
        /* StatsD: no timestamps at all */
        if (ms % 100 == 0)
            put("statsd", RF_REC_UDP, RF_REC_STATSD, 0, 0, us + 200,
                "reqs:1|c|#svc:api\nlat:12.5|ms|#svc:api\nbad line without type\n");
        /* Graphite over TCP: one path with explicit seconds, one without */
        if (ms % 1000 == 0) {
            snprintf(buf, sizeof(buf), "srv.s1.load %.3f %" PRId64 "\nsrv.s2.load %.3f\n",
                     (double)(rnd() % 1000) / 1000.0, (int64_t)(ts / NS_PER_S),
                     (double)(rnd() % 1000) / 1000.0);
            put("graphite", RF_REC_TCP, RF_REC_GRAPHITE, 2, 0, us + 300, buf);
        }
        /* A listener the configuration no longer has: parsed as recorded,
         * counted; and once, a datagram the capture truncated: rejected. */
        if (ms % 1000 == 0) {
            snprintf(buf, sizeof(buf), "legacy,src=old v=%di %" PRId64 "\n", (int)(ms / 1000), ts);
            put("legacy", RF_REC_UDP, RF_REC_INFLUX, 0, 0, us + 350, buf);
        }
        if (ms == 7000)
            put("lp-udp", RF_REC_UDP, RF_REC_INFLUX, 0, RF_REC_F_TRUNCATED, us + 360,
                /* (no valid line: a daemon fed it by `replay --target` rejects it too) */
                "not a line either\ncpu,hos");
        /* The critical listener: a burst of errors (correlation pattern) */
        if (ms >= 3000 && ms <= 3300 && ms % 100 == 0) {
            snprintf(buf, sizeof(buf), "errors,host=h1 count=1i %" PRId64 "\n", ts);
            put("alarms", RF_REC_UDP, RF_REC_INFLUX, 0, 0, us + 400, buf);
        }
        /* A burst of incompressible values from 9.5 s to 11.5 s, all on
         * worker 1 (of 2): 1.4 MB in what would be one 4 s segment, so its
         * segments roll by size (1 MiB) as well as by age. */
        if (ms >= 9500 && ms < 11500) {
            len = 0;
            for (int i = 0; i < NOISE_LINES; i++) {
                uint64_t bits = rnd() << 11 | (rnd() & 0x7ff);
                double x;
                memcpy(&x, &bits, sizeof(x));
                if (x != x || x - x != 0)
                    x = (double)bits; /* no NaN or inf: the parser refuses them */
                len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                        "noise,k=k%d x=%.17g %" PRId64 "\n",
                                        g_noise_k[i % NOISE_SERIES], x, ts + i);
            }
            put("lp-udp", RF_REC_UDP, RF_REC_INFLUX, 0, 0, us + 500, buf);
        }
    }
    put("lp-tcp", RF_REC_TCP, RF_REC_INFLUX, 1, RF_REC_F_FINAL, (int64_t)SPAN_MS * 1000, "");
    assert_int_equal(rf_rec_writer_close(g_w, &err), 0);
}

/* name: the file; queue_blocks: slots between worker and I/O thread (the
 * replays use the fewest there can be, so that cuts must wait for the I/O
 * thread: the event clock's answer to back-pressure). */
static void write_config(const char *name, int queue_blocks)
{
    char cfg[4096];
    snprintf(
        cfg, sizeof(cfg),
        "engine: {workers: 2, idle: {sleep: 2ms}}\n"
        "listeners:\n"
        "  - {name: lp-udp, transport: udp, protocol: influx_line, port: %d, rcvbuf: 16MiB}\n"
        "  - {name: lp-tcp, transport: tcp, protocol: influx_line, port: %d}\n"
        "  - {name: statsd, transport: udp, protocol: statsd, port: %d}\n"
        "  - {name: graphite, transport: tcp, protocol: graphite, port: %d}\n"
        "  - {name: alarms, transport: udp, protocol: influx_line, port: %d, class: critical}\n"
        "stats: {prometheus: {enabled: false}}\n"
        /* Every nanosecond stored: the live daemon is fed the recorded
              * receipt times as the clients' own (--rewrite-timestamps),
              * which time_precision auto would keep exact where the replay,
              * stamping receipt itself, would keep milliseconds. */
        "storage: {block_points: 64, block_max_age: 1s, segment_max_age: 4s,\n"
        "          segment_max_bytes: 1MiB, queue_blocks: %d, time_precision: ns}\n"
        "pipeline:\n"
        /* Raw StatsD samples: a flush is stamped with the wall clock,
              * which the replay does not share with the live run. */
        "  statsd: {enabled: false}\n"
        "  batch: {max_events: 50, interval: 500ms}\n"
        "  sinks:\n"
        "    - {name: store, type: store}\n"
        "    - {name: alerts, type: json, path: ./data/alerts.jsonl}\n"
        "    - {name: aggs, type: json, path: ./data/aggs.jsonl}\n"
        "  routes:\n"
        "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n"
        "    - {name: aggregates, subject: \"aggregate.>\", sinks: [store, aggs]}\n"
        "    - {name: alerts, subject: \"alert.>\", sinks: [alerts], class: critical}\n"
        "    - {name: correlated, subject: \"correlated.>\", sinks: [alerts], class: critical}\n"
        "  aggregation: {allowed_lateness: 200ms}\n"
        "  aggregations:\n"
        "    - {measurement: cpu, field: usage, window: 1s, functions: [avg, max, count, p99]}\n"
        "    - {measurement: temp, field: v, window: 2s, functions: [avg, max]}\n"
        "  alerts:\n"
        "    - {name: hot, type: threshold, match: {measurement: temp, field: v},\n"
        "       op: \">\", fire: 80, resolve: 70, for: 2s}\n"
        "    - {name: cpu_high, type: threshold, match: {measurement: cpu, field: usage},\n"
        "       op: \">\", fire: 99.5, resolve: 50}\n"
        "    - {name: heartbeat_lost, type: absence, match: {measurement: heartbeat, field: up},\n"
        "       absent: 2s}\n"
        "  correlation:\n"
        "    patterns:\n"
        "      - {name: error_burst, type: burst, match: {measurement: errors}, count: 3,\n"
        "         within: 10s, key: host}\n",
        g_port, g_port, g_port + 1, g_port + 2, g_port + 3, queue_blocks);
    tproc_write_file(name, cfg);
}

/* ---- checks ----------------------------------------------------------------------- */

static const char *ringflow(void)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    return cli;
}

static char *replay_into(const char *dir, const char *extra)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s replay rec.rfrec --into %s --config replay.yaml --json %s",
             ringflow(), dir, extra);
    return run_ok(cmd);
}

/* qsort's comparator for the names (strcmp's own type is not qsort's). */
static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Segment files under DIR/store, one shard folder: names sorted. */
static int segment_names(const char *dir, const char *shard, char names[][64], int max)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/store/%s", tproc_dir(), dir, shard);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < max)
        if (strstr(de->d_name, ".rfs") && strlen(de->d_name) < 64)
            memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
    closedir(d);
    qsort(names, (size_t)n, 64, name_cmp);
    return n;
}

/* What `ringflow query` returns for one measurement's field in a store. */
static char *points(const char *store, const char *measurement, const char *field)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s query --dir %s %s --field %s --format csv", ringflow(), store,
             measurement, field);
    return run_ok(cmd);
}

static const struct {
    const char *measurement, *field;
    bool live; /* its event times do not depend on when it was received */
} k_series[] = {
    {"cpu", "usage", true},          {"noise", "x", true},        {"errors", "count", true},
    {"srv.s1.load", "value", true},  {"temp", "v", true},         {"heartbeat", "up", true},
    {"srv.s2.load", "value", false}, {"reqs", "count", false},    {"lat", "timer", false},
    {"legacy", "v", false},          {"cpu", "usage:avg", false}, {"temp", "v:max", false},
};

/* Every series of k_series (live_only: those a live daemon stores the same). */
static void same_points(const char *store_a, const char *store_b, bool live_only)
{
    for (size_t i = 0; i < sizeof(k_series) / sizeof(k_series[0]); i++) {
        if (live_only && !k_series[i].live)
            continue;
        char *a = points(store_a, k_series[i].measurement, k_series[i].field);
        char *b = points(store_b, k_series[i].measurement, k_series[i].field);
        if (count_of(a, "\n") < 3)
            fail_msg("%s %s: almost nothing stored in %s:\n%s", k_series[i].measurement,
                     k_series[i].field, store_a, a);
        if (strcmp(a, b) != 0) {
            char cmd[1024];
            snprintf(cmd, sizeof(cmd),
                     "diff <(%s query --dir %s %s --field %s --format csv) "
                     "<(%s query --dir %s %s --field %s --format csv) | head -20",
                     ringflow(), store_a, k_series[i].measurement, k_series[i].field, ringflow(),
                     store_b, k_series[i].measurement, k_series[i].field);
            char bash[1200];
            snprintf(bash, sizeof(bash), "bash -c '%s'", cmd);
            int st;
            char *d = run(bash, &st);
            fail_msg("%s %s: %s and %s differ (%d vs %d lines):\n%s", k_series[i].measurement,
                     k_series[i].field, store_a, store_b, count_of(a, "\n"), count_of(b, "\n"), d);
        }
        free(a);
        free(b);
    }
}

static void test_replay_deterministic(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-replay-into");
    g_port = tproc_port_base();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    g_w0 = ((int64_t)now.tv_sec - 1800) * NS_PER_S;
    char path[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    write_recording(path);
    write_config("replay.yaml", 4);
    write_config("live.yaml", 256);

    /* 1. Twice into fresh directories: identical, names and bytes. */
    char *ja = replay_into("a", "");
    char *jb = replay_into("b", "");
    int st;
    char *diff = run("diff -r a b", &st);
    if (st != 0)
        fail_msg("two replays of one recording differ:\n%.4000s", diff);
    free(diff);
    /* The summaries agree too, and say the recording was what we wrote. */
    assert_int_equal(json_num(ja, "records"), json_num(jb, "records"));
    assert_int_equal(json_num(ja, "workers"), 2);
    assert_int_equal(json_num(ja, "unknown_listener"), SPAN_MS / 1000);
    assert_int_equal(json_num(ja, "truncated"), 1);
    assert_int_equal(json_num(ja, "line_too_long"), 1);
    assert_int_equal(json_num(ja, "store_dropped"), 0);
    assert_int_equal(json_num(ja, "store_rejected"), 0);
    assert_int_equal(json_num(ja, "unknown_series"), 0);
    assert_true(json_num(ja, "lines_rejected") >= SPAN_MS / 1000 + SPAN_MS / 100);
    long long segs = json_num(ja, "segments");
    assert_true(segs >= 2 * 5); /* 20 s at 4 s a segment, two shards, and the burst */
    assert_true(json_num(ja, "alerts_fired") >= 2);
    assert_true(json_num(ja, "alerts_resolved") >= 2);
    assert_true(json_num(ja, "correlated") >= 1);
    assert_true(json_num(ja, "aggregates") > 100);

    /* What the outputs hold: the rules fired and resolved, in recorded time. */
    char *alerts = slurp("a/alerts.jsonl");
    char *aggs = slurp("a/aggs.jsonl");
    assert_true(count_of(alerts, "\"rule\":\"hot\",\"state\":\"firing\"") == 1);
    assert_true(count_of(alerts, "\"rule\":\"hot\",\"state\":\"resolved\"") == 1);
    assert_true(count_of(alerts, "\"rule\":\"heartbeat_lost\",\"state\":\"firing\"") == 1);
    assert_true(count_of(alerts, "\"rule\":\"heartbeat_lost\",\"state\":\"resolved\"") == 1);
    assert_true(count_of(alerts, "\"kind\":\"correlated\"") >= 1);
    assert_true(count_of(aggs, "usage:avg") >= SPAN_MS / 1000 * HOSTS - HOSTS);
    free(alerts);
    free(aggs);

    /* 2. Names carry the recording's clock: every segment was created within
     * the recorded span (30 min ago), none at the machine's time. */
    const char *shards[] = {"shard-00", "shard-01"};
    for (int s = 0; s < 2; s++) {
        char names[256][64];
        int n = segment_names("a", shards[s], names, 256);
        assert_true(n >= 5);
        int full = 0; /* closed by size: within a block or two of 1 MiB */
        for (int i = 0; i < n; i++) {
            char p[1024 + 64];
            snprintf(p, sizeof(p), "%.900s/a/store/%s/%.63s", tproc_dir(), shards[s], names[i]);
            struct stat stt;
            assert_int_equal(stat(p, &stt), 0);
            full += stt.st_size > (1 << 20) - (64 << 10) && stt.st_size <= (1 << 20);
            long long ms = strtoll(names[i] + 4 + 10 + 1, NULL, 10);
            if (ms < g_w0 / NS_PER_MS || ms > g_w0 / NS_PER_MS + SPAN_MS)
                fail_msg("%s/%s: created at %lld ms, outside the recording (%lld .. +%d)",
                         shards[s], names[i], ms, (long long)(g_w0 / NS_PER_MS), SPAN_MS);
        }
        if (s == 1 && full < 1)
            fail_msg("no segment of shard-01 was rolled by size");
    }

    /* 3. Another number of workers: other files, the same points. */
    char *jc = replay_into("c", "--workers 3");
    assert_int_equal(json_num(jc, "workers"), 3);
    assert_int_equal(json_num(jc, "points_appended") > 0, 1);
    diff = run("diff -rq a c", &st);
    assert_int_not_equal(st, 0); /* three shards: of course not the same bytes */
    free(diff);
    /* Every series, timestamps or not (receipt times are the recording's),
     * and the aggregates: this stream's event times advance together, so
     * no window closes differently on three shards than on two. */
    same_points("a/store", "c/store", false);
    /* A replay into a directory that is not empty is refused. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s replay rec.rfrec --into a --config replay.yaml 2>&1",
             ringflow());
    char *out = run(cmd, &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "is not empty"));
    free(out);
    free(ja);
    free(jb);
    free(jc);
}

/* 4. A live daemon fed the same stream stores the same points (for the series
 * whose times do not depend on the moment of receipt). */
static void test_replay_matches_live(void **state)
{
    (void)state;
    proc d;
    tproc_start(&d, (const char *[]){"--config", "live.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    /* Each listener's records to its own port and transport; the recorded
     * receive times go into lines that have none (ns for line protocol).
     * Paced at twice the recording's speed: the daemon keeps up with no kernel drop. */
    const struct {
        const char *listener, *transport;
        int port;
    } feeds[] = {
        {"lp-udp", "udp", g_port},
        {"lp-tcp", "tcp", g_port},
        {"graphite", "tcp", g_port + 2},
        {"alarms", "udp", g_port + 3},
    };
    char cmd[4096];
    size_t len = (size_t)snprintf(cmd, sizeof(cmd), "(");
    for (size_t i = 0; i < sizeof(feeds) / sizeof(feeds[0]); i++)
        len += (size_t)snprintf(cmd + len, sizeof(cmd) - len,
                                "%s replay rec.rfrec --listener %s --target 127.0.0.1:%d "
                                "--transport %s --rewrite-timestamps --speed 2 --quiet "
                                ">/dev/null & ",
                                ringflow(), feeds[i].listener, feeds[i].port, feeds[i].transport);
    snprintf(cmd + len, sizeof(cmd) - len, "wait)");
    free(run_ok(cmd));
    usleep(500 * 1000);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    const char *log = tproc_read_file(d.err_path);
    if (count_of(log, "kernel_drops=0") != 2 * 5)
        fail_msg("the live daemon lost datagrams in the kernel: the comparison would be "
                 "meaningless:\n%.3000s",
                 log);
    same_points("a/store", "data/store", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_deterministic),
        cmocka_unit_test(test_replay_matches_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
