/* Alerts on 1, 2 and 4 workers give the same output (issue 23, item 4):
 * `ringflow replay --workers N` (the in-process engine, event clock) of one
 * recording, the alerts written by every shard sorted and compared.
 *
 * The recording: a heartbeat `hb,host=<h> up=1` from four hosts every 0.5 s
 * (their series land on different workers), silent from 4 s to 7 s; a
 * gauge `temp,room=<r> v` that crosses a threshold on one room. Rules:
 *   - hb_missing: absence, scope any, 2 s: rule-wide, state on one owner;
 *   - never_seen: absence, scope any, over a measurement nobody sends;
 *   - hb_host: absence per series, 2 s;
 *   - hot: a threshold per series with hysteresis.
 * hb_missing must not fire while any host sends, fire once in the gap and
 * resolve when the heartbeat resumes, under its own series, identically
 * on every worker count; so must the per-series rules. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../daemon/daemon_proc.h"
#include "core/event/event.h"
#include "storage/recfile/recfile.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define SPAN_MS 12000
#define STEP_MS 10

static int64_t g_w0;
static rf_rec_writer *g_w;

static char *run_ok(const char *cmd)
{
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out); /* tproc_shell_ok printed what failed */
    return out;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *q = text; (q = strstr(q, needle)); q += strlen(needle))
        n++;
    return n;
}

static void put(int64_t t_us, const char *payload)
{
    rf_rec r = {
        .wall_ns = g_w0 + t_us * 1000,
        .mono_ns = 5000 * NS_PER_S + t_us * 1000,
        .transport = RF_REC_UDP,
        .protocol = RF_REC_INFLUX,
        .src_port = 40000,
        .src_family = 4,
        .src_addr = {127, 0, 0, 1},
        .name = "lp-udp",
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
    char buf[1024];
    for (int64_t ms = 0; ms < SPAN_MS; ms += STEP_MS) {
        size_t len = 0;
        if (ms % 500 == 0 && (ms < 4000 || ms >= 7000))
            for (char h = 'a'; h <= 'd'; h++)
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "hb,host=%c up=1\n", h);
        if (ms % 100 == 0)
            for (int room = 0; room < 3; room++) {
                double v = room == 1 && ms >= 2000 && ms < 5000 ? 90.5 : 20.0 + room;
                len += (size_t)snprintf(buf + len, sizeof(buf) - len, "temp,room=r%d v=%.2f\n",
                                        room, v);
            }
        if (len)
            put(ms * 1000, buf);
    }
    assert_int_equal(rf_rec_writer_close(g_w, &err), 0);
}

static void write_config(void)
{
    tproc_write_file(
        "replay.yaml",
        "engine: {workers: 2}\n"
        "listeners:\n"
        "  - {name: lp-udp, transport: udp, protocol: influx_line, port: 18999}\n"
        "stats: {prometheus: {enabled: false}}\n"
        "pipeline:\n"
        "  max_series: 1024\n"
        "  sinks:\n"
        "    - {name: store, type: store}\n"
        "    - {name: alerts, type: json, path: ./data/alerts.jsonl}\n"
        "  routes:\n"
        "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n"
        /* The store too: it names the rule's series like any other. */
        "    - {name: alerts, subject: \"alert.>\", sinks: [alerts, store], class: critical}\n"
        "  alerts:\n"
        "    - {name: hb_missing, type: absence, match: {measurement: hb}, absent: 2s,"
        " scope: any}\n"
        "    - {name: never_seen, type: absence, match: {measurement: nothing}, absent: 3s,"
        " scope: any}\n"
        "    - {name: hb_host, type: absence, match: {measurement: hb}, absent: 2s}\n"
        "    - {name: hot, type: threshold, match: {measurement: temp, field: v},\n"
        "       op: \">\", fire: 80, resolve: 70}\n");
}

/* The file's lines, sorted (shards write their own lines in their order). */
static char *sorted_lines(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sort %s/alerts.jsonl", dir);
    return run_ok(cmd);
}

static char *replay(const char *dir, int workers)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "\"%s\" replay rec.rfrec --into %s --config replay.yaml --json --workers %d",
             getenv("RINGFLOW"), dir, workers);
    free(run_ok(cmd));
    return sorted_lines(dir);
}

static void test_alerts_same_on_1_2_4_workers(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-replay-alerts");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    g_w0 = ((int64_t)now.tv_sec - 1800) * NS_PER_S;
    char path[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    write_recording(path);
    write_config();

    char *one = replay("w1", 1);
    /* The expected alerts, on one worker. */
    assert_int_equal(count_of(one, "\"rule\":\"hb_missing\",\"state\":\"firing\""), 1);
    assert_int_equal(count_of(one, "\"rule\":\"hb_missing\",\"state\":\"resolved\""), 1);
    assert_int_equal(count_of(one, "\"series\":\"alert,rule=hb_missing state\""), 2);
    assert_int_equal(count_of(one, "\"rule\":\"never_seen\",\"state\":\"firing\""), 1);
    assert_int_equal(count_of(one, "\"series\":\"alert,rule=never_seen state\""), 1);
    assert_int_equal(count_of(one, "\"rule\":\"hb_host\",\"state\":\"firing\""), 4);
    assert_int_equal(count_of(one, "\"rule\":\"hb_host\",\"state\":\"resolved\""), 4);
    assert_int_equal(count_of(one, "\"rule\":\"hot\",\"state\":\"firing\""), 1);
    assert_int_equal(count_of(one, "\"rule\":\"hot\",\"state\":\"resolved\""), 1);
    assert_int_equal(count_of(one, "\"series\":null"), 0);

    const int ns[] = {2, 4};
    for (int i = 0; i < 2; i++) {
        char dir[16];
        snprintf(dir, sizeof(dir), "w%d", ns[i]);
        char *n = replay(dir, ns[i]);
        if (strcmp(n, one) != 0)
            fail_msg("%d workers:\n%s\none worker:\n%s", ns[i], n, one);
        free(n);
    }
    free(one);

    /* The store names the rule's series too: the same points from 1 worker
     * and from 4 (their shards differ), read back by series. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "\"%s\" query --dir w1/store alert --field state --format csv",
             getenv("RINGFLOW"));
    char *q1 = run_ok(cmd);
    snprintf(cmd, sizeof(cmd), "\"%s\" query --dir w4/store alert --field state --format csv",
             getenv("RINGFLOW"));
    char *q4 = run_ok(cmd);
    assert_int_equal(count_of(q1, ",alert,state,rule=hb_missing,2.1\n"), 1);
    assert_int_equal(count_of(q1, ",alert,state,rule=hb_missing,0\n"), 1);
    assert_int_equal(count_of(q1, ",alert,state,rule=never_seen,3.1\n"), 1);
    assert_string_equal(q1, q4);
    free(q1);
    free(q4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alerts_same_on_1_2_4_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
