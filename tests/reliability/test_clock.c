/* Wall-clock steps under a running ringflowd, with a really jumping clock:
 * the daemon runs under libfaketime (Debian package libfaketime), whose
 * offset the test changes at run time through FAKETIME_TIMESTAMP_FILE, and
 * with FAKETIME_DONT_FAKE_MONOTONIC=1, so CLOCK_REALTIME steps while
 * CLOCK_MONOTONIC runs on, as with a real step of the system clock. The test
 * process itself is not faked: its clock is the clients' clock.
 *
 *   - windows: client-timestamped data flows while the daemon's clock steps
 *     1 h ahead, then 2 h back, then 1 h ahead again; every window comes out
 *     exactly once, with exactly its events, never before the watermark (or,
 *     once idle, monotonic time) passes its end + lateness; nothing is late;
 *   - batches: a standard sink's batch (interval 6 s) leaves 6 s after its
 *     first event, not at the step ahead and not an hour after the step back;
 *   - correlation: "A then B within 10 s" matches across both steps;
 *   - alerts: for-durations (5 s) of samples stamped at receipt fire 5 s
 *     after the condition began, across a step ahead and a step back;
 *   - the timestamp window (10 min) after the steps: rejected under
 *     timestamp_policy reject, kept with the receipt time and counted
 *     (show listeners, /metrics) under clamp;
 *   - every run ends with exit 0 on SIGTERM.
 * Each step is confirmed before the test relies on it: a malformed probe
 * line is sent until `show errors` stamps its rejection with the new time.
 *
 * Also (without libfaketime): `--check-config` names file:line:col for a bad
 * ingest.timestamp_policy.
 *
 * Skipped (77) when libfaketime is not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

#define NS 1000000000LL
#define MS 1000000LL
#define HOUR 3600LL
#define STEP_NS (100 * MS) /* the test's pace */

static char g_faketime[512];

static int find_faketime(void)
{
    const char *env = getenv("RF_LIBFAKETIME");
    if (env && access(env, R_OK) == 0) {
        snprintf(g_faketime, sizeof(g_faketime), "%s", env);
        return 1;
    }
    static const char *const pats[] = {"/usr/lib/*/faketime/libfaketime.so.1",
                                       "/usr/lib/faketime/libfaketime.so.1",
                                       "/usr/local/lib/faketime/libfaketime.so.1"};
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        glob_t g;
        if (glob(pats[i], 0, NULL, &g) == 0 && g.gl_pathc > 0) {
            snprintf(g_faketime, sizeof(g_faketime), "%s", g.gl_pathv[0]);
            globfree(&g);
            return 1;
        }
        globfree(&g);
    }
    return 0;
}

/* The daemon's clock offset from real time, in seconds (libfaketime's
 * relative offset, re-read at most once a second: FAKETIME_CACHE_DURATION). */
static void set_offset(long secs)
{
    char text[32];
    snprintf(text, sizeof(text), "%+ld\n", secs);
    tproc_write_file("faketime.rc", text);
}

/* Starts ringflowd under libfaketime. Only the daemon gets the environment:
 * it is set for the spawn and taken back at once (rel_sh's shells and the
 * test itself keep the real clock). */
static void start_faked(proc *d, const char *cfg)
{
    char rc[600], asan[1024];
    snprintf(rc, sizeof(rc), "%s/faketime.rc", tproc_dir());
    const char *old_asan = getenv("ASAN_OPTIONS");
    char *saved = old_asan ? strdup(old_asan) : NULL;
    /* ASan insists on coming first in the library list; LD_PRELOAD puts
     * libfaketime there (it works, ASan only has to be told). */
    snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", old_asan ? old_asan : "",
             old_asan && *old_asan ? ":" : "");
    setenv("LD_PRELOAD", g_faketime, 1);
    setenv("FAKETIME_TIMESTAMP_FILE", rc, 1);
    setenv("FAKETIME_DONT_FAKE_MONOTONIC", "1", 1);
    setenv("FAKETIME_CACHE_DURATION", "1", 1);
    setenv("NO_FAKE_STAT", "1", 1);
    setenv("ASAN_OPTIONS", asan, 1);
    rel_start(d, (const char *[]){"--config", cfg, NULL});
    unsetenv("LD_PRELOAD");
    unsetenv("FAKETIME_TIMESTAMP_FILE");
    unsetenv("FAKETIME_DONT_FAKE_MONOTONIC");
    unsetenv("FAKETIME_CACHE_DURATION");
    unsetenv("NO_FAKE_STAT");
    if (saved) {
        setenv("ASAN_OPTIONS", saved, 1);
        free(saved);
    } else {
        unsetenv("ASAN_OPTIONS");
    }
}

/* start_faked, then waits for "running". The ports come from
 * tproc_port_base, which cannot reserve them: one may be in use for a
 * moment (another test's connection), and the daemon then exits at once
 * naming it; it is started again then, a few times. */
static void start_running(proc *d, const char *cfg)
{
    for (int attempt = 0;; attempt++) {
        start_faked(d, cfg);
        if (tproc_wait_log(d, "msg=\"running:", 15000))
            return;
        int rc = tproc_wait_exit(d, 2000);
        const char *log = tproc_read_file(d->err_path);
        if (attempt >= 4 || !strstr(log, "Address already in use"))
            fail_msg("ringflowd did not start (exit %d): %s", rc, log);
        fprintf(stderr, "a port was in use; starting again\n");
        usleep(500 * 1000);
    }
}

/* "2026-12-01T19:50:14.123456789Z" (any number of fraction digits) -> ns. */
static int64_t parse_rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    char frac[16] = "";
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%15[0-9]", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac) < 6)
        return INT64_MIN;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t ns = 0, scale = 100000000;
    for (const char *p = frac; *p && scale; p++, scale /= 10)
        ns += (*p - '0') * scale;
    return (int64_t)timegm(&tm) * NS + ns;
}

static void send_all(int fd, const char *text)
{
    assert_true(rel_send_all(fd, text, strlen(text)));
}

/* Pacing: step k starts k * 100 ms after *t0 (monotonic; the test's own
 * clock is never faked). */
static void wait_step(const struct timespec *t0, int k)
{
    int64_t at = (int64_t)t0->tv_sec * NS + t0->tv_nsec + (int64_t)k * STEP_NS;
    struct timespec ts = {(time_t)(at / NS), (long)(at % NS)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* The clock step in flight: confirmed once `show errors` stamps a probe's
 * rejection within a minute of real time + offset. */
typedef struct step_probe {
    int fd;          /* line protocol connection the probes go on */
    long offset;     /* the offset being confirmed */
    int pending;     /* 1 while not confirmed */
    int seq;         /* probes sent so far (each one a rejected line) */
    int confirmed_k; /* step at which it was confirmed */
} step_probe;

static void probe_start(step_probe *p, long offset)
{
    set_offset(offset);
    p->offset = offset;
    p->pending = 1;
}

/* Once per step while pending: looks for the last probe, sends the next. */
static void probe_poll(step_probe *p, int k)
{
    if (!p->pending)
        return;
    if (p->seq > 0) {
        char want[32];
        snprintf(want, sizeof(want), "clockprobe%d", p->seq);
        rf_json *doc = rel_show("show errors json");
        const rf_json *rows = doc ? rf_json_get(doc, "errors") : NULL;
        for (const rf_json *r = rows ? rows->child : NULL; r; r = r->next) {
            if (strcmp(rf_json_str(r, "excerpt", ""), want) != 0)
                continue;
            int64_t t = parse_rfc3339(rf_json_str(r, "time", ""));
            int64_t expect = rel_now_ns() + p->offset * NS;
            if (t != INT64_MIN && llabs(t - expect) < 60 * NS) {
                p->pending = 0;
                p->confirmed_k = k;
                fprintf(stderr, "clock step %+lds confirmed at step %d (probe %d)\n", p->offset, k,
                        p->seq);
            }
        }
        rf_json_free(doc);
        if (!p->pending)
            return;
    }
    char line[48];
    snprintf(line, sizeof(line), "clockprobe%d\n", ++p->seq);
    send_all(p->fd, line);
}

/* The GET of /metrics: the sum of every sample of `name` whose labels
 * contain each of the NULL-terminated `must` substrings. */
static uint64_t metric_sum(int port, const char *name, const char *const *must)
{
    const size_t cap = 1 << 20;
    char *buf = malloc(cap);
    if (rel_http_get(port, "/metrics", buf, cap) < 0) {
        free(buf);
        return 0;
    }
    uint64_t sum = 0;
    size_t nl = strlen(name);
    for (char *line = buf; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        if (strncmp(line, name, nl) == 0 && line[nl] == '{') {
            int ok = 1;
            for (const char *const *m = must; *m && ok; m++)
                ok = strstr(line, *m) != NULL;
            const char *v = strrchr(line, ' ');
            if (ok && v)
                sum += strtoull(v + 1, NULL, 10);
        }
        line = eol ? eol + 1 : NULL;
    }
    free(buf);
    return sum;
}

static int count_str(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* ---- windows, batches and correlation across steps ------------------------ */

#define WIN_NS (5 * NS)
#define LATENESS_NS (2 * NS)
#define MAX_WINDOWS 64

typedef struct win {
    int64_t start;
    int sent[2];    /* lines sent per host (a, b) */
    int emitted[2]; /* aggregates seen per host; must end at 1 */
    double got[2];
} win;

static win g_win[MAX_WINDOWS];
static int g_nwin;

static win *win_of(int64_t t)
{
    int64_t s = t - ((t % WIN_NS) + WIN_NS) % WIN_NS;
    for (int i = 0; i < g_nwin; i++)
        if (g_win[i].start == s)
            return &g_win[i];
    assert_true(g_nwin < MAX_WINDOWS);
    memset(&g_win[g_nwin], 0, sizeof(g_win[0]));
    g_win[g_nwin].start = s;
    return &g_win[g_nwin++];
}

/* Reads aggs.jsonl (complete lines only) and checks each aggregate: a
 * window we sent to, first seen no earlier than its end + lateness in real
 * time (the watermark is the clients' clock), at most once per host. */
static void scan_aggregates(int64_t now_real)
{
    static size_t done; /* bytes already looked at */
    const char *text = tproc_read_dir_file("aggs.jsonl");
    size_t len = strlen(text);
    if (len < done)
        done = 0;
    for (const char *line = text + done; line < text + len;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            break;
        const char *t = strstr(line, "\"time\":\"");
        const char *series = strstr(line, "\"series\":\"clk,h=");
        const char *v = strstr(line, "\"value\":");
        if (!t || !series || !v || t > eol || series > eol)
            fail_msg("unexpected output: %.*s", (int)(eol - line), line);
        int64_t ws = parse_rfc3339(t + 8);
        int host = series[16] == 'a' ? 0 : 1;
        win *w = NULL;
        for (int i = 0; i < g_nwin; i++)
            if (g_win[i].start == ws)
                w = &g_win[i];
        if (!w || !w->sent[host])
            fail_msg("spurious aggregate: %.*s", (int)(eol - line), line);
        if (now_real < ws + WIN_NS + LATENESS_NS - 50 * MS)
            fail_msg("window %lld s closed %.2f s early: %.*s", (long long)(ws / NS),
                     (double)(ws + WIN_NS + LATENESS_NS - now_real) / 1e9, (int)(eol - line), line);
        w->emitted[host]++;
        w->got[host] = strtod(v + 8, NULL);
        line = eol + 1;
        done = (size_t)(line - text);
    }
}

static void test_windows_batches_correlation(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-clock");
    const int port = tproc_port_base() + 6;
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: lp, transport: tcp, protocol: influx_line, port: %d}\n"
             "ingest: {timestamp_past: 3h, timestamp_future: 3h}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  batch: {max_events: 100000, interval: 6s}\n"
             "  sinks:\n"
             "    - {name: aggs, type: json, path: ./aggs.jsonl}\n"
             "    - {name: batched, type: json, path: ./batched.jsonl}\n"
             "    - {name: corr, type: json, path: ./corr.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"aggregate.>\", sinks: [aggs], class: critical}\n"
             "    - {subject: \"telemetry.bat.>\", sinks: [batched]}\n"
             "    - {subject: \"correlated.>\", sinks: [corr], class: critical}\n"
             "  aggregation: {allowed_lateness: 2s, idle_grace: 1s}\n"
             "  aggregations:\n"
             "    - {measurement: clk, field: v, window: 5s, functions: [count]}\n"
             "  correlation:\n"
             "    patterns:\n"
             "      - {name: ab, type: sequence, key: host, within: 10s,\n"
             "         first: {measurement: seqa}, then: {measurement: seqb}, critical: true}\n",
             port);
    tproc_write_file("clock.yaml", cfg);
    set_offset(0);
    proc d;
    start_running(&d, "clock.yaml");
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);
    step_probe probe = {.fd = fd};

    /* Schedule (steps of 100 ms): data from 0 to 25 s; the clock +1 h at 4 s,
     * -1 h (a 2 h step back) at 13 s, real again at 20 s; a batch and a
     * sequence's A at 3 s and 12 s, each B 3 s or more after its A and once
     * the step after it is in force (well within the pattern's 10 s). */
    enum {
        K_STOP = 250,
        K_END = 370
    };
    const int jump_k[3] = {40, 130, 200};
    const long jump_to[3] = {HOUR, -HOUR, 0};
    int confirmed[3] = {-1, -1, -1}, jump = -1;
    const int bat_k[2] = {30, 120};
    int bat_seen_k[2] = {-1, -1}, b_sent[2] = {0, 0};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int lines_ok = 0;
    char buf[512];
    for (int k = 0; k <= K_END; k++) {
        wait_step(&t0, k);
        int64_t now = rel_now_ns();
        if (k < K_STOP) {
            snprintf(buf, sizeof(buf), "clk,h=a v=1 %lld\nclk,h=b v=2 %lld\n", (long long)now,
                     (long long)now);
            send_all(fd, buf);
            win *w = win_of(now);
            w->sent[0]++;
            w->sent[1]++;
            lines_ok += 2;
        }
        for (int b = 0; b < 2; b++) {
            if (k == bat_k[b]) {
                snprintf(buf, sizeof(buf), "bat,n=%d v=1 %lld\nseqa,host=h%d v=1 %lld\n", b,
                         (long long)now, b, (long long)now);
                send_all(fd, buf);
                lines_ok += 2;
            }
            if (!b_sent[b] && k >= bat_k[b] + 30 && confirmed[b] >= 0) {
                assert_true(k < bat_k[b] + 90);
                snprintf(buf, sizeof(buf), "seqb,host=h%d v=1 %lld\n", b, (long long)now);
                send_all(fd, buf);
                b_sent[b] = 1;
                lines_ok++;
            }
        }
        for (int j = 0; j < 3; j++) {
            if (k == jump_k[j]) {
                assert_false(probe.pending);
                probe_start(&probe, jump_to[j]);
                jump = j;
            }
        }
        probe_poll(&probe, k);
        if (jump >= 0 && !probe.pending && confirmed[jump] < 0)
            confirmed[jump] = k;

        /* Batches leave 6 s after their event (monotonic). */
        const char *batched = tproc_read_dir_file("batched.jsonl");
        for (int b = 0; b < 2; b++) {
            char needle[32];
            snprintf(needle, sizeof(needle), "\"bat,n=%d v\"", b);
            if (bat_seen_k[b] < 0 && strstr(batched, needle)) {
                bat_seen_k[b] = k;
                fprintf(stderr, "batch %d left at step %d (sent at %d)\n", b, k, bat_k[b]);
            }
        }
        scan_aggregates(rel_now_ns());
    }
    fprintf(stderr, "steps confirmed at %d, %d, %d\n", confirmed[0], confirmed[1], confirmed[2]);
    /* Each step was in force before the batch before it was due (so a
     * batcher on the wall clock would have fired at the step ahead, or an
     * hour late after the step back), and before the data stopped. */
    assert_true(confirmed[0] >= 0 && confirmed[0] < bat_k[0] + 55);
    assert_true(confirmed[1] >= 0 && confirmed[1] < bat_k[1] + 55);
    assert_true(confirmed[2] >= 0 && confirmed[2] < K_STOP);
    for (int b = 0; b < 2; b++) {
        assert_true(bat_seen_k[b] >= bat_k[b] + 58);
        assert_true(bat_seen_k[b] <= bat_k[b] + 80);
        assert_true(b_sent[b]);
    }

    /* Every window we sent to came out once, exact; the last one by the idle
     * close (the clients stopped at 25 s, the test ran on to 37 s). */
    int windows = 0;
    for (int i = 0; i < g_nwin; i++) {
        for (int h = 0; h < 2; h++) {
            if (g_win[i].emitted[h] != 1)
                fail_msg("window %lld host %d emitted %d times", (long long)(g_win[i].start / NS),
                         h, g_win[i].emitted[h]);
            if ((int)g_win[i].got[h] != g_win[i].sent[h])
                fail_msg("window %lld host %d: count %g, sent %d", (long long)(g_win[i].start / NS),
                         h, g_win[i].got[h], g_win[i].sent[h]);
        }
        windows++;
    }
    assert_true(windows >= 5);

    rf_json *st = rel_show_settled(10000);
    assert_non_null(st);
    assert_int_equal(rel_sum(st, "stages", "agg_late_dropped"), 0);
    assert_int_equal(rel_sum(st, "listeners", "lines_ok"), lines_ok);
    assert_int_equal(rel_sum(st, "listeners", "rejected"), probe.seq); /* the probes only */
    rf_json_free(st);

    const char *corr = tproc_read_dir_file("corr.jsonl");
    assert_int_equal(count_str(corr, "\"kind\":\"correlated\""), 2);
    assert_int_equal(count_str(corr, "\"members\":2"), 2);

    close(fd);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    /* Nothing was left open for the shutdown flush to emit. */
    scan_aggregates(rel_now_ns());
    for (int i = 0; i < g_nwin; i++)
        assert_int_equal(g_win[i].emitted[0] + g_win[i].emitted[1], 2);
    assert_int_equal(count_str(tproc_read_dir_file("batched.jsonl"), "\"kind\":"), 2);
}

/* ---- alert for-durations across steps -------------------------------------- */

static void test_alert_for_duration(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-clock-alert");
    const int port = tproc_port_base() + 7;
    char cfg[2048];
    snprintf(
        cfg, sizeof(cfg),
        "engine: {workers: 2, idle: {sleep: 5ms}}\n"
        "listeners:\n"
        "  - {name: lp, transport: tcp, protocol: influx_line, port: %d}\n"
        "stats: {prometheus: {enabled: false}}\n"
        "storage: {enabled: false}\n"
        "pipeline:\n"
        "  sinks: [{name: alerts, type: json, path: ./alerts.jsonl}]\n"
        "  routes: [{subject: \"alert.>\", sinks: [alerts], class: critical}]\n"
        "  alerts:\n"
        "    - {name: hot, type: threshold, match: {measurement: hot}, op: \">\", fire: 90,\n"
        "       for: 5s}\n"
        "    - {name: cold, type: threshold, match: {measurement: cold}, op: \"<\", fire: 10,\n"
        "       for: 5s}\n",
        port);
    tproc_write_file("alert.yaml", cfg);
    set_offset(0);
    proc d;
    start_running(&d, "alert.yaml");
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);
    step_probe probe = {.fd = fd};

    /* Samples without timestamps (event time = the daemon's clock at
     * receipt). hot from 0 s, the clock +1 h at 1 s: fires at 5 s, not at
     * the step. cold from 7 s, the clock -1 h (2 h back) at 8 s: fires at
     * 12 s, not an hour later. */
    enum {
        K_HOT = 0,
        K_JUMP1 = 10,
        K_COLD = 70,
        K_JUMP2 = 80,
        K_END = 140
    };
    int hot_k = -1, cold_k = -1, confirmed[2] = {-1, -1}, jump = -1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k <= K_END; k++) {
        wait_step(&t0, k);
        if (k >= K_HOT)
            send_all(fd, "hot,h=a v=95\n");
        if (k >= K_COLD)
            send_all(fd, "cold,h=a v=5\n");
        if (k == K_JUMP1 || k == K_JUMP2) {
            assert_false(probe.pending);
            jump = k == K_JUMP1 ? 0 : 1;
            probe_start(&probe, jump == 0 ? HOUR : -HOUR);
        }
        probe_poll(&probe, k);
        if (jump >= 0 && !probe.pending && confirmed[jump] < 0)
            confirmed[jump] = k;
        const char *alerts = tproc_read_dir_file("alerts.jsonl");
        if (hot_k < 0 && strstr(alerts, "\"rule\":\"hot\""))
            hot_k = k;
        if (cold_k < 0 && strstr(alerts, "\"rule\":\"cold\""))
            cold_k = k;
    }
    fprintf(stderr, "steps confirmed at %d, %d; hot fired at step %d, cold at step %d\n",
            confirmed[0], confirmed[1], hot_k, cold_k);
    /* Each step was in force well before its rule was due: on event time,
     * hot would have fired at the step ahead and cold an hour late. */
    assert_true(confirmed[0] >= 0 && confirmed[0] < K_HOT + 45);
    assert_true(confirmed[1] >= 0 && confirmed[1] < K_COLD + 45);
    /* Each alert is written once its firing sample is received, >= 5 s of
     * monotonic time after the first one: never seen before that. */
    assert_true(hot_k >= K_HOT + 49 && hot_k <= K_HOT + 70);
    assert_true(cold_k >= K_COLD + 49 && cold_k <= K_COLD + 70);
    const char *alerts = tproc_read_dir_file("alerts.jsonl");
    assert_int_equal(count_str(alerts, "\"state\":\"firing\""), 2);
    assert_int_equal(count_str(alerts, "\"state\":\"resolved\""), 0);
    close(fd);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
}

/* ---- the timestamp window after steps, both policies ------------------------ */

static void policy_run(const char *policy)
{
    tproc_dir_init("rf-rel-clock-ts");
    const int port = tproc_port_base() + 6, gport = port + 1, pport = port + 2;
    const int clamp = strcmp(policy, "clamp") == 0;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: lp, transport: tcp, protocol: influx_line, port: %d}\n"
             "  - {name: gr, transport: tcp, protocol: graphite, port: %d}\n"
             "ingest: {timestamp_past: 10m, timestamp_future: 10m, timestamp_policy: %s}\n"
             "stats: {prometheus: {enabled: true, listen: \"127.0.0.1:%d\"}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  sinks: [{name: raw, type: json, path: ./raw.jsonl}]\n"
             "  routes: [{subject: \"telemetry.>\", sinks: [raw], class: critical}]\n",
             port, gport, policy, pport);
    tproc_write_file("ts.yaml", cfg);
    set_offset(0);
    proc d;
    start_running(&d, "ts.yaml");
    int fd = rel_tcp_to(port), gfd = rel_tcp_to(gport);
    assert_true(fd >= 0 && gfd >= 0);
    step_probe probe = {.fd = fd};

    /* Real-time client timestamps: in the window at first; after the step
     * ahead they are an hour old, after the step back an hour early. */
    char buf[256];
    for (int phase = 0; phase < 3; phase++) {
        if (phase > 0) {
            struct timespec t0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            probe_start(&probe, phase == 1 ? HOUR : -HOUR);
            for (int k = 0; probe.pending && k < 150; k++) {
                wait_step(&t0, k);
                probe_poll(&probe, k);
            }
            assert_false(probe.pending);
        }
        for (int i = 0; i < 5; i++) {
            int64_t now = rel_now_ns();
            snprintf(buf, sizeof(buf), "ts,p=%d,i=%d v=1 %lld\n", phase, i, (long long)now);
            send_all(fd, buf);
            snprintf(buf, sizeof(buf), "ts.p%d.i%d 1 %lld.%09lld\n", phase, i,
                     (long long)(now / NS), (long long)(now % NS));
            send_all(gfd, buf);
        }
    }
    const int outside = 20; /* 5 lines x 2 listeners x 2 steps */
    rf_json *st = rel_show_settled(10000);
    assert_non_null(st);
    const uint64_t lp_rej = rel_sum_where(st, "listeners", "rejected", "listener", "lp");
    const uint64_t gr_rej = rel_sum_where(st, "listeners", "rejected", "listener", "gr");
    const uint64_t lp_cl = rel_sum_where(st, "listeners", "timestamps_clamped", "listener", "lp");
    const uint64_t gr_cl = rel_sum_where(st, "listeners", "timestamps_clamped", "listener", "gr");
    fprintf(stderr, "%s: lp rejected %lu clamped %lu, gr rejected %lu clamped %lu, probes %d\n",
            policy, (unsigned long)lp_rej, (unsigned long)lp_cl, (unsigned long)gr_rej,
            (unsigned long)gr_cl, probe.seq);
    char reason[64];
    snprintf(reason, sizeof(reason), "timestamp_window=");
    int found = 0;
    const rf_json *rows = rf_json_get(st, "listeners");
    for (const rf_json *r = rows ? rows->child : NULL; r; r = r->next)
        found += strstr(rf_json_str(r, "rejects_by_reason", ""), reason) != NULL;
    if (clamp) {
        assert_int_equal(lp_rej, probe.seq); /* the probes only */
        assert_int_equal(gr_rej, 0);
        assert_int_equal(lp_cl, outside / 2);
        assert_int_equal(gr_cl, outside / 2);
        assert_int_equal(found, 0);
        assert_int_equal(rel_sum(st, "listeners", "lines_ok"), 30);
    } else {
        assert_int_equal(lp_rej, probe.seq + outside / 2);
        assert_int_equal(gr_rej, outside / 2);
        assert_int_equal(lp_cl + gr_cl, 0);
        assert_true(found >= 2);
        assert_int_equal(rel_sum(st, "listeners", "lines_ok"), 10);
    }
    rf_json_free(st);

    /* The same counters on /metrics. */
    const char *const lp_m[] = {"listener=\"lp\"", NULL};
    const char *const gr_m[] = {"listener=\"gr\"", NULL};
    const char *const lp_tw[] = {"listener=\"lp\"", "reason=\"timestamp_window\"", NULL};
    const char *const gr_tw[] = {"listener=\"gr\"", "reason=\"timestamp_window\"", NULL};
    const char *const lp_ef[] = {"listener=\"lp\"", "reason=\"empty_field_set\"", NULL};
    assert_int_equal(metric_sum(pport, "ringflow_listener_timestamps_clamped_total", lp_m),
                     clamp ? outside / 2 : 0);
    assert_int_equal(metric_sum(pport, "ringflow_listener_timestamps_clamped_total", gr_m),
                     clamp ? outside / 2 : 0);
    assert_int_equal(metric_sum(pport, "ringflow_listener_lines_rejected_total", lp_tw),
                     clamp ? 0 : outside / 2);
    assert_int_equal(metric_sum(pport, "ringflow_listener_lines_rejected_total", gr_tw),
                     clamp ? 0 : outside / 2);
    assert_int_equal(metric_sum(pport, "ringflow_listener_lines_rejected_total", lp_ef), probe.seq);

    /* Clamped lines carry the daemon's clock at receipt: an hour ahead of
     * real time after the first step, an hour behind after the second. */
    if (clamp) {
        const char *raw = tproc_read_dir_file("raw.jsonl");
        int checked = 0;
        for (const char *line = raw; (line = strstr(line, "{\"time\":\"")); line++) {
            const char *s = strstr(line, "\"series\":\"ts");
            const char *eol = strchr(line, '\n');
            if (!s || !eol || s > eol)
                continue;
            int64_t t = parse_rfc3339(line + 9), real = rel_now_ns();
            int phase = -1;
            const char *p = strstr(line, "p=");
            if (p && p < eol)
                phase = p[2] - '0';
            else if ((p = strstr(line, "ts.p")) && p < eol)
                phase = p[4] - '0';
            int64_t want = real + (phase == 1 ? HOUR : phase == 2 ? -HOUR : 0) * NS;
            if (llabs(t - want) > 120 * NS)
                fail_msg("phase %d event time off by %.0f s: %.*s", phase, (double)(t - want) / 1e9,
                         (int)(eol - line), line);
            checked++;
        }
        assert_int_equal(checked, 30);
    }
    close(fd);
    close(gfd);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
}

static void test_timestamp_policy_reject(void **state)
{
    (void)state;
    policy_run("reject");
}

static void test_timestamp_policy_clamp(void **state)
{
    (void)state;
    policy_run("clamp");
}

/* ---- configuration ---------------------------------------------------------- */

static void test_policy_config_errors(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-clock-cfg");
    tproc_write_file("bad.yaml", "ingest:\n  timestamp_policy: clip\n");
    proc p;
    assert_int_equal(tproc_run((const char *[]){"--check-config", "bad.yaml", NULL}, &p), 3);
    const char *err = tproc_read_file(p.err_path);
    if (!strstr(err, "bad.yaml:2:21: ingest.timestamp_policy: expected one of reject, clamp, "
                     "got 'clip'"))
        fail_msg("unexpected: %s", err);
    tproc_write_file("ok.yaml", "ingest:\n  timestamp_policy: clamp\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "ok.yaml", NULL}, &p), 0);
}

int main(void)
{
    const struct CMUnitTest cfg_tests[] = {
        cmocka_unit_test_teardown(test_policy_config_errors, rel_teardown),
    };
    int rc = cmocka_run_group_tests_name("config", cfg_tests, NULL, NULL);
    if (rc)
        return rc;
    if (!find_faketime()) {
        fprintf(stderr, "libfaketime not found (Debian: apt-get install libfaketime): skipped\n");
        return 77;
    }
    fprintf(stderr, "libfaketime: %s\n", g_faketime);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_windows_batches_correlation, rel_teardown),
        cmocka_unit_test_teardown(test_alert_for_duration, rel_teardown),
        cmocka_unit_test_teardown(test_timestamp_policy_reject, rel_teardown),
        cmocka_unit_test_teardown(test_timestamp_policy_clamp, rel_teardown),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
