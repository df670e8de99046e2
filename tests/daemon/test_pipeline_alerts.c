/* The pipeline and the alert stage.
 *
 * The namer (how its sinks turn a series id into text): a series the
 * shard's table does not hold, id 0 ("no series") included, is written by id
 * and never dereferenced or named after another series.
 *
 * Rule-wide reports between two pipelines (a hand-carried transport): a
 * report reaches the rule's owner and is applied; after a reload that
 * removed the rule, or every rule, a report in flight is counted
 * (reports_unknown, peer_unhandled), never applied or crashing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/event/event.h"
#include "stages/pipeline/pipeline.h"
#include "stages/alert/alert.h"

static char g_dir[256];

static char *read_all(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Writes one gauge of series `id` through the pipeline's JSON sink. */
static void write_one(rf_pipeline *p, uint64_t id, double v)
{
    rf_event e = {0};
    e.series_id = id;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    e.sample_rate = 1.0f;
    rf_sink *s = (rf_sink *)rf_pipeline_sink(p, 0);
    assert_non_null(s);
    assert_int_equal(rf_sink_write(s, &e, 1), 1);
    rf_sink_flush(s, 1);
}

static void test_unknown_series_are_written_by_id(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf-test-namer-%d", (int)getpid());
    char cmd[600], path[300], text[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/out.jsonl", g_dir);
    int len = snprintf(text, sizeof(text),
                       "pipeline:\n"
                       "  max_series: 64\n"
                       "  sinks: [{name: out, type: json, path: \"%s\"}]\n"
                       "  routes: [{subject: \">\", sinks: [out]}]\n",
                       path);
    rf_cfg_doc *doc = NULL;
    rf_err err;
    rf_err_clear(&err);
    if (rf_cfg_load_string(text, (size_t)len, "namer", &doc, &err) != 0)
        fail_msg("%s", err.msg);
    rf_pipeline_settings ps;
    if (rf_pipeline_settings_parse(rf_cfg_root(doc), g_dir, &ps, &err) != 0)
        fail_msg("%s", err.msg);
    rf_pipeline *p = NULL;
    if (rf_pipeline_new(&ps, 0, 1, NULL, &p, &err) != 0)
        fail_msg("%s", err.msg);

    /* An empty table: id 0 and an unknown id. */
    write_one(p, 0, 1);
    write_one(p, 0x1234, 2);
    /* With a series in slot 0, id 0 must still not be named after it. */
    const char *key = "cpu,host=a usage";
    rf_series_key *k = rf_series_key_new(key, strlen(key), 3, 11);
    rf_event def = {0};
    def.kind = RF_KIND_SERIES_DEF;
    def.series_id = k->series_id;
    def.aux = (uint64_t)(uintptr_t)k;
    rf_pipeline_process_at(p, &def, 1, 1);
    write_one(p, 0, 3);
    write_one(p, def.series_id, 4);

    const char *out = read_all(path);
    assert_non_null(strstr(out, "\"series\":null,\"series_id\":\"0000000000000000\",\"value\":1,"));
    assert_non_null(strstr(out, "\"series\":null,\"series_id\":\"0000000000001234\",\"value\":2,"));
    assert_non_null(strstr(out, "\"series\":null,\"series_id\":\"0000000000000000\",\"value\":3,"));
    assert_non_null(strstr(out, "\"series\":\"cpu,host=a usage\",\"value\":4,"));

    rf_pipeline_free(p);
    rf_pipeline_settings_release(&ps);
    rf_cfg_free(doc);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- rule-wide reports across a reload ---------------------------------- */

typedef struct carried {
    rf_event ev[64];
    uint32_t n;
} carried;
static carried g_to[2];

static void carry(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    (void)ctx;
    for (uint32_t i = 0; i < n; i++)
        g_to[to].ev[g_to[to].n++] = ev[i];
}

static void deliver(rf_pipeline *p, uint32_t to, int64_t now)
{
    rf_pipeline_process_at(p, g_to[to].ev, g_to[to].n, now);
    g_to[to].n = 0;
}

static rf_cfg_doc *g_docs[3];
static void settings(int i, const char *alerts, rf_pipeline_settings *ps)
{
    char text[1024];
    int len = snprintf(text, sizeof(text),
                       "pipeline:\n"
                       "  max_series: 64\n"
                       "  sinks: [{name: out, type: count_only}]\n"
                       "  routes: [{subject: \">\", sinks: [out]}]\n"
                       "%s",
                       alerts);
    rf_err err;
    rf_err_clear(&err);
    if (rf_cfg_load_string(text, (size_t)len, "alerts", &g_docs[i], &err) != 0 ||
        rf_pipeline_settings_parse(rf_cfg_root(g_docs[i]), "/tmp", ps, &err) != 0)
        fail_msg("%s", err.msg);
}

static rf_alerts_stats alert_stats(rf_pipeline *p)
{
    rf_pipeline_stage_stats st;
    rf_pipeline_stages_read(p, &st);
    assert_true(st.has_alerts);
    return st.alerts;
}

/* One sample of hb,host=a up on pipeline p, at monotonic time t. */
static void sample(rf_pipeline *p, int64_t t)
{
    static const char key[] = "hb,host=a up";
    rf_series_key *k = rf_series_key_new(key, strlen(key), 2, 10);
    rf_event ev[2] = {{0}, {0}};
    ev[0].kind = RF_KIND_SERIES_DEF;
    ev[0].series_id = k->series_id;
    ev[0].aux = (uint64_t)(uintptr_t)k;
    ev[1].series_id = k->series_id;
    ev[1].recv_time_ns = t;
    ev[1].event_time_ns = t;
    ev[1].value.f64 = 1;
    ev[1].sample_rate = 1.0f;
    rf_pipeline_process_at(p, ev, 2, t);
}

static void test_reports_across_a_reload(void **state)
{
    (void)state;
    rf_pipeline_settings with, without, none;
    settings(0,
             "  alerts:\n"
             "    - {name: hb_missing, type: absence, match: {measurement: hb}, absent: 2s,"
             " scope: any}\n",
             &with);
    settings(1,
             "  alerts:\n"
             "    - {name: other, type: absence, match: {measurement: hb}, absent: 2s}\n",
             &without);
    settings(2, "", &none);
    char text[96];
    int tl = rf_alert_rule_series_text("hb_missing", text, sizeof(text));
    const uint32_t owner = rf_event_owner(rf_series_id_of_key(text, (size_t)tl), 2);
    const uint32_t other = 1 - owner;
    rf_pipeline *p[2];
    rf_err err;
    for (uint32_t i = 0; i < 2; i++) {
        if (rf_pipeline_new(&with, i, 2, NULL, &p[i], &err) != 0)
            fail_msg("%s", err.msg);
        rf_pipeline_set_event_clock(p[i]);
        rf_pipeline_set_peer_send(p[i], carry, NULL);
    }
    const int64_t s = 1000000000LL;
    for (uint32_t i = 0; i < 2; i++)
        rf_pipeline_tick(p[i], 1 * s, 1 * s);

    /* The sample on the other shard reaches the owner as one report. */
    sample(p[other], 2 * s);
    sample(p[other], 2 * s + 1);
    rf_pipeline_tick(p[other], 2 * s + 10, 2 * s);
    assert_int_equal(g_to[owner].n, 1);
    assert_int_equal(g_to[owner].ev[0].value.u64, 2);
    deliver(p[owner], owner, 2 * s + 10);
    assert_int_equal(alert_stats(p[owner]).reports_received, 1);
    assert_int_equal(alert_stats(p[other]).reports_sent, 1);

    /* A reload removes the rule on the owner while a report is in flight. */
    sample(p[other], 3 * s);
    rf_pipeline_tick(p[other], 3 * s + 10, 3 * s);
    assert_int_equal(g_to[owner].n, 1);
    assert_int_equal(rf_pipeline_prepare(p[owner], &without, &err), 0);
    rf_pipeline_publish(p[owner]);
    rf_pipeline_tick(p[owner], 3 * s + 20, 3 * s);
    assert_true(rf_pipeline_applied(p[owner]));
    deliver(p[owner], owner, 3 * s + 20);
    assert_int_equal(alert_stats(p[owner]).reports_unknown, 1);
    assert_int_equal(alert_stats(p[owner]).reports_received, 0);

    /* And with no alert rules at all: the pipeline counts it. */
    sample(p[other], 4 * s);
    rf_pipeline_tick(p[other], 4 * s + 10, 4 * s);
    assert_int_equal(rf_pipeline_prepare(p[owner], &none, &err), 0);
    rf_pipeline_publish(p[owner]);
    rf_pipeline_tick(p[owner], 4 * s + 20, 4 * s);
    deliver(p[owner], owner, 4 * s + 20);
    rf_pipeline_stats ps;
    rf_pipeline_stats_read(p[owner], &ps);
    assert_int_equal(ps.peer_unhandled, 1);
    assert_int_equal(ps.peer_received, 2);

    /* The stop order: nothing left in flight, nothing leaks. */
    for (uint32_t i = 0; i < 2; i++)
        rf_pipeline_close_stages_at(p[i], 5 * s);
    for (uint32_t i = 0; i < 2; i++)
        deliver(p[i], i, 5 * s);
    for (uint32_t i = 0; i < 2; i++) {
        rf_pipeline_drain_at(p[i], 5 * s);
        rf_pipeline_free(p[i]);
    }
    rf_pipeline_settings_release(&with);
    rf_pipeline_settings_release(&without);
    rf_pipeline_settings_release(&none);
    for (int i = 0; i < 3; i++)
        rf_cfg_free(g_docs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_series_are_written_by_id),
        cmocka_unit_test(test_reports_across_a_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
