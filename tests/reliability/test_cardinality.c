/* Cardinality protection: with pipeline.max_series small, a storm of new
 * series is refused and counted (series_rejected, their events
 * unknown_series), the series that existed before keep flowing to the store
 * without a single loss, and `show series top N` names the measurement that
 * caused it. With pipeline.max_series_per_measurement, the storm's
 * measurement alone is capped: another measurement's new series are still
 * accepted, every event of a refused series is counted against the storm's
 * measurement (show series, /metrics), and the limit changes live on reload.
 * Range errors of the new keys name file:line:col. Input over TCP, so
 * nothing is lost before the engine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

#define MAX_SERIES 40 /* per worker */
#define KEEP 20
#define STORM 2000
#define ROUNDS 50
#define GROW_PER_ROUND 2

typedef struct storm_counts {
    uint64_t good, storm, grow;
} storm_counts;

/* Starts ringflowd on cfg (as card.yaml) and sends, over one TCP connection
 * to port, the KEEP established series (then a pause, so that they are
 * defined) and ROUNDS rounds of: every established series again, STORM /
 * ROUNDS * 2 storm series (2,000 new series, each sent twice) and, with
 * grow, GROW_PER_ROUND new series of "growing" a round (its earlier ones
 * keep sending). What was sent of each. */
static storm_counts run_storm(proc *d, const char *cfg, int port, bool grow)
{
    assert_true(rel_start_config(d, "card.yaml", cfg, 10000));
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);

    const int64_t t0 = rel_now_ns() - 600 * 1000000000LL;
    static char buf[1 << 20];
    size_t len = 0;
    for (int s = 0; s < KEEP; s++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "good,host=h%d v=0i %lld\n", s,
                                (long long)t0);
    assert_true(rel_send_all(fd, buf, len));
    usleep(300 * 1000);
    storm_counts sent = {.good = KEEP};
    for (int r = 1; r <= ROUNDS; r++) {
        len = 0;
        for (int s = 0; s < KEEP; s++, sent.good++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "good,host=h%d v=%di %lld\n", s,
                                    r, (long long)(t0 + r));
        for (int s = 0; s < STORM / ROUNDS * 2; s++, sent.storm++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "storm,id=%d v=1i %lld\n",
                                    (r * STORM / ROUNDS + s) % STORM, (long long)(t0 + r));
        for (int g = 0; grow && g < r * GROW_PER_ROUND; g++, sent.grow++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "growing,g=%d v=%di %lld\n", g, r,
                                    (long long)(t0 + r));
        assert_true(rel_send_all(fd, buf, len));
    }
    close(fd);
    return sent;
}

static void test_cardinality_limit(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-card");
    const int port = tproc_port_base() + 4;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "storage: {block_points: 64}\n"
             "pipeline:\n"
             "  max_series: %d\n",
             port, MAX_SERIES);
    proc d;
    /* The storm, interleaved with the established series. */
    const storm_counts sent = run_storm(&d, cfg, port, false);
    const uint64_t good_sent = sent.good, storm_sent = sent.storm;

    rf_json *st = rel_show_settled(15000);
    assert_non_null(st);
    const uint64_t lines = rel_sum(st, "listeners", "lines_ok");
    const uint64_t active = rel_obj(st, "series", "active_series");
    const uint64_t rejected = rel_obj(st, "series", "rejected_by_cardinality_limit");
    const uint64_t series_rejected = rel_sum(st, "stages", "series_rejected");
    const uint64_t unknown = rel_sum(st, "stages", "unknown_series");
    const uint64_t processed = rel_sum(st, "stages", "processed");
    /* Counted by reason and per measurement: all of it the shard limit's,
     * every dropped event charged to a refused series. */
    assert_int_equal(rel_obj(st, "series", "rejected_shard_limit"), rejected);
    assert_int_equal(rel_obj(st, "series", "rejected_measurement_limit"), 0);
    assert_int_equal(rel_obj(st, "series", "dropped_events_of_refused_series"), unknown);
    assert_int_equal(rel_obj(st, "series", "dropped_events_unattributed"), 0);
    rf_json_free(st);
    fprintf(stderr, "lines=%lu active=%lu rejected=%lu unknown=%lu processed=%lu\n", lines, active,
            rejected, unknown, processed);
    assert_int_equal(lines, good_sent + storm_sent);
    assert_true(active <= 2 * MAX_SERIES);
    assert_true(rejected > 0);
    assert_int_equal(series_rejected, rejected);
    /* Every event is either processed or dropped as unknown (its series was
     * refused): nothing in between. */
    assert_int_equal(processed + unknown, good_sent + storm_sent);

    /* Who caused it: the storm measurement leads `show series top 1`. */
    rf_json *top = rel_show("show series top 1 json");
    assert_non_null(top);
    const rf_json *rows = rf_json_get(top, "series_by_measurement");
    assert_int_equal(rf_json_len(rows), 1);
    assert_string_equal(rf_json_str(rows->child, "measurement", ""), "storm");
    rf_json_free(top);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    /* The established series lost nothing; the storm stored only what its
     * admitted series carried. */
    assert_int_equal(rel_store_count("good"), good_sent);
    assert_int_equal(rel_store_count("good") + rel_store_count("storm"), processed);
}

/* ---- per measurement ------------------------------------------------------ */

#define MAXM 30      /* max_series_per_measurement, per worker */
#define GROW_MAX 200 /* the override for "growing", per worker */

/* The row of measurement m in `show series top 100 json`'s table. */
static const rf_json *meas_row(const rf_json *doc, const char *m)
{
    const rf_json *rows = rf_json_get(doc, "series_by_measurement");
    for (const rf_json *r = rows ? rows->child : NULL; r; r = r->next)
        if (!strcmp(rf_json_str(r, "measurement", ""), m))
            return r;
    fail_msg("measurement %s not in show series", m);
    return NULL;
}

static uint64_t col(const rf_json *row, const char *key)
{
    const rf_json *v = rf_json_get(row, key);
    assert_non_null(v);
    return (uint64_t)rf_json_num(row, key, 0);
}

/* Sum of the samples of `name` whose label list contains `labels`. */
static uint64_t metric_sum(const char *body, const char *name, const char *labels)
{
    uint64_t sum = 0;
    size_t nl = strlen(name);
    for (const char *line = body; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, nl) != 0 || line[nl] != '{')
            continue;
        const char *close_brace = strchr(line, '}'), *eol = strchr(line, '\n');
        const char *hit = strstr(line, labels);
        if (!close_brace || !hit || hit > close_brace || (eol && close_brace > eol))
            continue;
        sum += strtoull(close_brace + 1, NULL, 10);
    }
    return sum;
}

static void test_cardinality_per_measurement(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-card-meas");
    const int port = tproc_port_base() + 4, http = port + 1;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: true, listen: \"127.0.0.1:%d\"}\n"
             "storage: {block_points: 64}\n"
             "pipeline:\n"
             "  max_series: 1000\n"
             "  max_series_per_measurement: %d\n"
             "  cardinality_overrides:\n"
             "    - {measurement: growing, max_series: %d}\n",
             port, http, MAXM, GROW_MAX);
    proc d;
    /* The storm, while "growing" gets new series and the established series
     * flow. */
    const storm_counts by_kind = run_storm(&d, cfg, port, true);
    const uint64_t good_sent = by_kind.good, storm_sent = by_kind.storm, grow_sent = by_kind.grow;
    const uint64_t sent = good_sent + storm_sent + grow_sent;

    rf_json *st = rel_show_settled(15000);
    assert_non_null(st);
    const uint64_t lines = rel_sum(st, "listeners", "lines_ok");
    const uint64_t unknown = rel_sum(st, "stages", "unknown_series");
    const uint64_t processed = rel_sum(st, "stages", "processed");
    const uint64_t rej_meas = rel_obj(st, "series", "rejected_measurement_limit");
    assert_int_equal(lines, sent);
    assert_int_equal(processed + unknown, sent);
    assert_int_equal(rel_obj(st, "series", "rejected_shard_limit"), 0);
    assert_int_equal(rej_meas, STORM - 2 * MAXM);
    assert_int_equal(rel_sum(st, "stages", "series_rejected"), rej_meas);
    assert_int_equal(rel_obj(st, "series", "dropped_events_of_refused_series"), unknown);
    assert_int_equal(rel_obj(st, "series", "dropped_events_unattributed"), 0);
    rf_json_free(st);

    rf_json *all = rel_show("show series top 100 json");
    assert_non_null(all);
    const rf_json *storm = meas_row(all, "storm"), *grow = meas_row(all, "growing"),
                  *good = meas_row(all, "good");
    fprintf(stderr, "storm active=%lu refused=%lu dropped=%lu; growing active=%lu\n",
            (unsigned long)col(storm, "active_series"), (unsigned long)col(storm, "refused_series"),
            (unsigned long)col(storm, "dropped_events"), (unsigned long)col(grow, "active_series"));
    /* The storm's measurement is capped on each worker ... */
    assert_int_equal(col(storm, "active_series"), 2 * MAXM);
    assert_int_equal(col(storm, "refused_series"), STORM - 2 * MAXM);
    assert_int_equal(col(storm, "refused_measurement_limit"), STORM - 2 * MAXM);
    assert_int_equal(col(storm, "limit_per_worker"), MAXM);
    assert_string_equal(rf_json_str(storm, "at_limit", ""), "yes");
    assert_int_equal(col(storm, "workers_at_limit"), 2);
    /* ... and every event of its refused series is counted against it */
    const uint64_t storm_dropped = col(storm, "dropped_events");
    assert_int_equal(storm_dropped, unknown);
    /* while the other measurement's new series were all accepted */
    assert_int_equal(col(grow, "active_series"), ROUNDS * GROW_PER_ROUND);
    assert_int_equal(col(grow, "refused_series"), 0);
    assert_int_equal(col(grow, "dropped_events"), 0);
    assert_int_equal(col(grow, "limit_per_worker"), GROW_MAX);
    assert_string_equal(rf_json_str(grow, "at_limit", ""), "no");
    assert_int_equal(col(good, "active_series"), KEEP);
    assert_int_equal(col(good, "refused_series"), 0);
    rf_json_free(all);

    /* Who caused it: top 1 names the storm with its refused count, ranked by
     * active + refused (default) and by refused. */
    const char *const tops[] = {"show series top 1 json", "show series top 1 refused json"};
    for (int i = 0; i < 2; i++) {
        rf_json *top = rel_show(tops[i]);
        assert_non_null(top);
        const rf_json *rows = rf_json_get(top, "series_by_measurement");
        assert_int_equal(rf_json_len(rows), 1);
        assert_string_equal(rf_json_str(rows->child, "measurement", ""), "storm");
        assert_int_equal(col(rows->child, "refused_series"), STORM - 2 * MAXM);
        rf_json_free(top);
    }
    /* `ringflow stat series top 1` shows it too. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' stat --socket run/ringflow.sock series top 1",
             getenv("RINGFLOW"));
    int rc;
    char *text = rel_sh(cmd, &rc);
    assert_int_equal(rc, 0);
    char expect[64];
    snprintf(expect, sizeof(expect), "%d", STORM - 2 * MAXM);
    assert_non_null(strstr(text, "storm"));
    assert_non_null(strstr(text, expect));
    assert_null(strstr(text, "growing"));
    free(text);

    /* /metrics: refused by reason per worker, and per measurement for the
     * top ones (the storm has its own label; nothing is left in "(other)"). */
    static char body[1 << 20];
    assert_int_equal(rel_http_get(http, "/metrics", body, sizeof(body)), 200);
    assert_int_equal(
        metric_sum(body, "ringflow_series_refused_total", "reason=\"measurement_limit\""),
        STORM - 2 * MAXM);
    assert_int_equal(metric_sum(body, "ringflow_series_refused_total", "reason=\"shard_limit\""),
                     0);
    assert_int_equal(metric_sum(body, "ringflow_series_refused_by_measurement_total",
                                "measurement=\"storm\",reason=\"measurement_limit\""),
                     STORM - 2 * MAXM);
    assert_int_equal(
        metric_sum(body, "ringflow_series_refused_by_measurement_total", "measurement=\"(other)\""),
        0);
    assert_int_equal(metric_sum(body, "ringflow_series_refused_events_by_measurement_total",
                                "measurement=\"storm\""),
                     storm_dropped);
    assert_null(strstr(body, "measurement=\"growing\""));

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    /* Not one established point lost, nor one of the accepted new series;
     * the storm stored exactly what its admitted series carried. */
    assert_int_equal(rel_store_count("good"), good_sent);
    assert_int_equal(rel_store_count("growing"), grow_sent);
    assert_int_equal(rel_store_count("storm") + storm_dropped, storm_sent);
    assert_int_equal(
        rel_store_count("good") + rel_store_count("growing") + rel_store_count("storm"), processed);
}

/* Sends n new series of measurement m (ids from first), one line each. */
static void send_series(int port, const char *m, int first, int n)
{
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);
    static char buf[1 << 16];
    size_t len = 0;
    for (int i = first; i < first + n; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s,id=%d v=1i\n", m, i);
    assert_true(rel_send_all(fd, buf, len));
    close(fd);
}

/* active and refused series of m once the counters have settled. */
static void settled_row(const char *m, uint64_t *active, uint64_t *refused, uint64_t *limit)
{
    rf_json *st = rel_show_settled(15000);
    assert_non_null(st);
    rf_json_free(st);
    rf_json *all = rel_show("show series top 100 json");
    assert_non_null(all);
    const rf_json *r = meas_row(all, m);
    *active = col(r, "active_series");
    *refused = col(r, "refused_series");
    *limit = col(r, "limit_per_worker");
    rf_json_free(all);
}

static void reload_with_limit(int port, int limit)
{
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "pipeline:\n"
             "  max_series: 1000\n"
             "  max_series_per_measurement: %d\n",
             port, limit);
    tproc_write_file("live.yaml", cfg);
}

static void test_cardinality_limit_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-card-live");
    const int port = tproc_port_base() + 4;
    reload_with_limit(port, 5);
    proc d;
    rel_start(&d, (const char *[]){"--config", "live.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    uint64_t active, refused, limit;
    /* 40 new series against 5 per worker: 10 in, 30 refused */
    send_series(port, "m", 0, 40);
    settled_row("m", &active, &refused, &limit);
    assert_int_equal(active, 10);
    assert_int_equal(refused, 30);
    assert_int_equal(limit, 5);

    /* Raised live: applied entirely (no restart named), new series accepted. */
    reload_with_limit(port, 50);
    char *reply = tproc_ask("reload");
    assert_non_null(reply);
    fprintf(stderr, "reload: %s", reply);
    assert_non_null(strstr(reply, "reload applied from"));
    assert_null(strstr(reply, "restart"));
    free(reply);
    send_series(port, "m", 100, 40);
    settled_row("m", &active, &refused, &limit);
    assert_int_equal(limit, 50);
    assert_int_equal(active, 50);
    assert_int_equal(refused, 30);

    /* Lowered live below what each worker holds: accepted series stay, every
     * new one is refused. */
    reload_with_limit(port, 5);
    reply = tproc_ask("reload");
    assert_non_null(reply);
    assert_non_null(strstr(reply, "reload applied from"));
    free(reply);
    send_series(port, "m", 200, 20);
    settled_row("m", &active, &refused, &limit);
    assert_int_equal(limit, 5);
    assert_int_equal(active, 50);
    assert_int_equal(refused, 50);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
}

/* The new keys are validated like every other: errors name file:line:col. */
static void test_cardinality_config_errors(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-card-cfg");
    static const struct {
        const char *yaml, *expect;
    } cases[] = {
        {"pipeline:\n  max_series: 100\n  max_series_per_measurement: 101\n",
         "bad.yaml:3:31: pipeline.max_series_per_measurement: 101 is more than max_series (100)"},
        {"pipeline:\n  max_series_per_measurement: 99999999999\n",
         "bad.yaml:2:31: pipeline.max_series_per_measurement: expected an integer from 0 to"},
        {"pipeline:\n  cardinality_overrides:\n    - {measurement: cpu, max_series: -1}\n",
         "bad.yaml:3:38: pipeline.cardinality_overrides[0].max_series: expected an integer"},
        {"pipeline:\n  cardinality_overrides:\n    - {measurement: cpu}\n",
         "bad.yaml:3:7: pipeline.cardinality_overrides[0].max_series: missing required key"},
        {"pipeline:\n  cardinality_overrides:\n    - {measurement: cpu, max_series: 5}\n"
         "    - {measurement: cpu, max_series: 6}\n",
         "bad.yaml:4:21: pipeline.cardinality_overrides[1].measurement: measurement 'cpu' "
         "already has an override"},
        {"pipeline:\n  cardinality_overrides:\n    - {measurement: cpu, max_series: 5, max: 5}\n",
         "bad.yaml:3:41: pipeline.cardinality_overrides[0].max: unknown key (accepted: "
         "measurement, max_series)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tproc_write_file("bad.yaml", cases[i].yaml);
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "'%s' --check-config bad.yaml 2>&1", getenv("RINGFLOWD"));
        int rc;
        char *out = rel_sh(cmd, &rc);
        if (!strstr(out, cases[i].expect))
            fprintf(stderr, "case %zu: %s", i, out);
        assert_int_equal(rc, 3);
        assert_non_null(strstr(out, cases[i].expect));
        free(out);
    }
    tproc_write_file("ok.yaml",
                     "pipeline:\n  max_series: 100\n  max_series_per_measurement: 100\n"
                     "  cardinality_overrides: [{measurement: \"disk io\", max_series: 0}]\n");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' --check-config ok.yaml 2>&1", getenv("RINGFLOWD"));
    int rc;
    free(rel_sh(cmd, &rc));
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cardinality_limit, rel_teardown),
        cmocka_unit_test_teardown(test_cardinality_per_measurement, rel_teardown),
        cmocka_unit_test_teardown(test_cardinality_limit_live, rel_teardown),
        cmocka_unit_test_teardown(test_cardinality_config_errors, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
