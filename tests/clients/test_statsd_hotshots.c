/* hot-shots (npm, a StatsD/DogStatsD client nobody here wrote) -> UDP ->
 * ringflowd's StatsD listener.
 *
 * statsd_hotshots.js sends counters with sample rates, a gauge with signed
 * deltas, timers, histograms, distributions and a set, with DogStatsD tags
 * (key:value, a bare tag, a value containing ':'), a global tag and DogStatsD
 * timestamps (|T) an hour back, plus one metric without a timestamp.
 * Asserted:
 *   raw events   every event, exactly: time, canonical series text (tags
 *                sorted), value and kind, through a JSON sink on
 *                "telemetry.>"; and the same points through the store with
 *                `ringflow query --format csv` (set members as the XXH3 of
 *                the member text, which is what the parser stores);
 *   aggregates   with one rule per metric (1 minute windows), the StatsD
 *                semantics on a JSON sink for "aggregate.>": counter count and
 *                sum scaled by 1/sample rate, gauge last/min/max after deltas,
 *                timer count (scaled)/sum/avg/min/max, histogram, distribution
 *                (p50 within the sketch's 1%), set distinct count; each at the
 *                window start as its time;
 *   receipt time the metric without |T is stamped between send and receipt. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "client_util.h"

static const char *g_node;

/* {"time":...,"series":S,"value":V,"kind":K,"priority":"standard"} exactly. */
static void expect_json(const char *text, long long t_s, const char *series, const char *value,
                        const char *kind)
{
    char ts[64], line[1024];
    cu_rfc3339((int64_t)t_s * 1000000000LL, ts);
    snprintf(line, sizeof(line),
             "{\"time\":\"%s\",\"series\":\"%s\",\"value\":%s,\"kind\":\"%s\",\"priority\":"
             "\"standard\"}",
             ts, series, value, kind);
    cu_expect_line(text, line);
}

static void expect_agg(const char *aggs, const char *series, const char *want_time, double want,
                       double rel_eps)
{
    char t[64];
    double got = cu_json_value(aggs, series, t);
    if (strcmp(t, want_time) != 0)
        fail_msg("%s: time %s, want the window start %s", series, t, want_time);
    if (!(fabs(got - want) <= rel_eps * fabs(want)))
        fail_msg("%s: got %.17g, want %.17g", series, got, want);
}

static void test_statsd_hotshots(void **state)
{
    (void)state;
    int port = tproc_port_base() + 2;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: statsd, transport: udp, protocol: statsd, port: %d}\n", port);
    /* The aggregates' own route and sink, one rule per metric. */
    static const char aggregates[] =
        "    - {subject: \"aggregate.>\", sinks: [aggs]}\n"
        /* Windows an hour back stay open until the drain at shutdown. */
        "  aggregation: {allowed_lateness: 3h}\n"
        /* The raw samples, as the parser makes them (the StatsD flush is
         * test_statsd_flush's). */
        "  statsd: {enabled: false}\n"
        "  aggregations:\n"
        "    - {measurement: hs.requests, field: count, window: 1m, functions: [count, sum]}\n"
        "    - {measurement: hs.queue_depth, field: gauge, window: 1m, functions: [last, min, "
        "max]}\n"
        "    - {measurement: hs.latency, field: timer, window: 1m,\n"
        "       functions: [count, sum, avg, min, max]}\n"
        "    - {measurement: hs.payload_bytes, field: histogram, window: 1m,\n"
        "       functions: [count, sum, max]}\n"
        "    - {measurement: hs.render_ms, field: distribution, window: 1m,\n"
        "       functions: [count, avg, max, p50]}\n"
        "    - {measurement: hs.users, field: set, window: 1m, functions: [count]}\n";
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "    - {name: aggs, type: json, path: ./aggs.jsonl}\n",
                             aggregates);

    /* An hour ago, on a minute: all timestamped metrics in one window. */
    long long t0 = (long long)(cu_now_ns() / 1000000000LL - 3600) / 60 * 60;
    char t0_s[32];
    snprintf(t0_s, sizeof(t0_s), "%lld", t0);
    int64_t before = cu_now_ns();
    /* 19 datagrams, one per metric (maxBufferSize 0). */
    char *wire = cu_run_node_script(g_node, "statsd_hotshots.js", port, t0_s);
    printf("hot-shots sent:\n%s", wire);
    assert_int_equal(cu_count_lines(wire), 19);
    free(wire);

    const int want_events = 19;
    cu_wait_events(&d, "seen.jsonl", want_events);
    int64_t after = cu_now_ns();
    usleep(200 * 1000);
    cu_daemon_stop(&d);
    cu_expect_nothing_rejected(tproc_read_file(d.err_path));

    /* ---- raw events: time, canonical series (tags sorted), value, kind ---- */
    char *seen = strdup(tproc_read_dir_file("seen.jsonl"));
    assert_int_equal(cu_count_lines(seen), want_events);
    const char *req = "hs.requests,env=prod,route=/pay,url=http://shop:8080/pay count";
    expect_json(seen, t0, req, "1", "counter");
    expect_json(seen, t0 + 1, req, "3", "counter");
    expect_json(seen, t0 + 2, req, "-2", "counter");
    const char *qd = "hs.queue_depth,canary,env=prod,shard=a gauge";
    expect_json(seen, t0, qd, "42", "gauge");
    expect_json(seen, t0 + 1, qd, "8", "gauge_delta");
    expect_json(seen, t0 + 2, qd, "-15", "gauge_delta");
    const char *lat = "hs.latency,env=prod,route=/pay timer";
    expect_json(seen, t0 + 3, lat, "12.5", "timer");
    expect_json(seen, t0 + 3, lat, "7", "timer");
    expect_json(seen, t0 + 4, lat, "100.25", "timer");
    expect_json(seen, t0 + 5, "hs.payload_bytes,env=prod histogram", "512", "histogram");
    expect_json(seen, t0 + 5, "hs.payload_bytes,env=prod histogram", "2048", "histogram");
    const char *rm = "hs.render_ms,env=prod,page=home distribution";
    expect_json(seen, t0 + 6, rm, "3.5", "distribution");
    expect_json(seen, t0 + 6, rm, "4.5", "distribution");
    expect_json(seen, t0 + 6, rm, "10", "distribution");
    static const char *members[] = {"alice", "bob", "carol:42"};
    for (int i = 0; i < 3; i++) {
        char v[32];
        snprintf(v, sizeof(v), "\"#%016llx\"",
                 (unsigned long long)XXH3_64bits(members[i], strlen(members[i])));
        char ts[64], line[512];
        cu_rfc3339((int64_t)(t0 + 7) * 1000000000LL, ts);
        snprintf(
            line, sizeof(line),
            "{\"time\":\"%s\",\"series\":\"hs.users,env=prod set\",\"value\":%s,\"kind\":\"set\","
            "\"priority\":\"standard\"}",
            ts, v);
        assert_int_equal(cu_count_line(seen, line), i == 0 ? 2 : 1); /* alice twice */
    }
    /* No |T: stamped on receipt, between the client's start and arrival. */
    const char *hb =
        strstr(seen, "\"series\":\"hs.heartbeat,env=prod count\",\"value\":1,\"kind\":\"counter\"");
    assert_non_null(hb);
    free(seen);

    /* ---- the same points through the store ---- */
    static const char *req_vals[] = {"1", "3", "-2"};
    cu_expect_csv_rows("hs.requests --format csv",
                       "hs.requests,count,env=prod;route=/pay;url=http://shop:8080/pay", t0, 1,
                       req_vals, 3);
    static const char *qd_vals[] = {"42", "8", "-15"};
    cu_expect_csv_rows("hs.queue_depth --format csv",
                       "hs.queue_depth,gauge,canary=;env=prod;shard=a", t0, 1, qd_vals, 3);
    char *out = cu_query("hs.latency --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 3);
    char line[512];
    snprintf(line, sizeof(line), "%lld000000000,hs.latency,timer,env=prod;route=/pay,12.5", t0 + 3);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld000000000,hs.latency,timer,env=prod;route=/pay,7", t0 + 3);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld000000000,hs.latency,timer,env=prod;route=/pay,100.25",
             t0 + 4);
    cu_expect_line(out, line);
    free(out);
    static const char *payload_vals[] = {"512", "2048"};
    cu_expect_csv_rows("hs.payload_bytes --format csv", "hs.payload_bytes,histogram,env=prod",
                       t0 + 5, 0, payload_vals, 2);
    static const char *render_vals[] = {"3.5", "4.5", "10"};
    cu_expect_csv_rows("hs.render_ms --format csv", "hs.render_ms,distribution,env=prod;page=home",
                       t0 + 6, 0, render_vals, 3);
    out = cu_query("hs.users --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 4);
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "%lld000000000,hs.users,set,env=prod,%llu", t0 + 7,
                 (unsigned long long)XXH3_64bits(members[i], strlen(members[i])));
        assert_int_equal(cu_count_line(out, line), i == 0 ? 2 : 1);
    }
    free(out);
    out = cu_query("hs.heartbeat --format csv");
    assert_int_equal(cu_count_lines(out), 2);
    long long hb_ns = strtoll(strchr(out, '\n') + 1, NULL, 10);
    if (hb_ns < before || hb_ns > after)
        fail_msg("heartbeat stamped %lld, outside [%lld, %lld]", hb_ns, (long long)before,
                 (long long)after);
    free(out);

    /* ---- aggregates: StatsD semantics, at the window start ---- */
    char *aggs = strdup(tproc_read_dir_file("aggs.jsonl"));
    char w[64];
    cu_rfc3339((int64_t)t0 * 1000000000LL, w);
    /* Counter: count = 1 + 1/0.25 + 1/0.5; sum = 1 + 3/0.25 - 2/0.5. */
    expect_agg(aggs, "hs.requests,env=prod,route=/pay,url=http://shop:8080/pay count:count", w, 7,
               0);
    expect_agg(aggs, "hs.requests,env=prod,route=/pay,url=http://shop:8080/pay count:sum", w, 9, 0);
    /* Gauge 42, +8, -15: samples 42, 50, 35. */
    expect_agg(aggs, "hs.queue_depth,canary,env=prod,shard=a gauge:last", w, 35, 0);
    expect_agg(aggs, "hs.queue_depth,canary,env=prod,shard=a gauge:min", w, 35, 0);
    expect_agg(aggs, "hs.queue_depth,canary,env=prod,shard=a gauge:max", w, 50, 0);
    /* Timers 12.5, 7, 100.25@0.5: count 1 + 1 + 2, sum/avg/min/max of the raw values. */
    expect_agg(aggs, "hs.latency,env=prod,route=/pay timer:count", w, 4, 0);
    expect_agg(aggs, "hs.latency,env=prod,route=/pay timer:sum", w, 119.75, 0);
    expect_agg(aggs, "hs.latency,env=prod,route=/pay timer:avg", w, 119.75 / 3, 1e-15);
    expect_agg(aggs, "hs.latency,env=prod,route=/pay timer:min", w, 7, 0);
    expect_agg(aggs, "hs.latency,env=prod,route=/pay timer:max", w, 100.25, 0);
    expect_agg(aggs, "hs.payload_bytes,env=prod histogram:count", w, 2, 0);
    expect_agg(aggs, "hs.payload_bytes,env=prod histogram:sum", w, 2560, 0);
    expect_agg(aggs, "hs.payload_bytes,env=prod histogram:max", w, 2048, 0);
    expect_agg(aggs, "hs.render_ms,env=prod,page=home distribution:count", w, 3, 0);
    expect_agg(aggs, "hs.render_ms,env=prod,page=home distribution:avg", w, 6, 0);
    expect_agg(aggs, "hs.render_ms,env=prod,page=home distribution:max", w, 10, 0);
    expect_agg(aggs, "hs.render_ms,env=prod,page=home distribution:p50", w, 4.5, 0.01);
    /* Set: alice, bob, alice, carol:42 -> 3 distinct. The engine counts
     * distinct members with a HyperLogLog and emits its estimate unrounded
     * (3.0044 for these three): assert it rounds to 3 and is within 1%. */
    char wt[64];
    double distinct = cu_json_value(aggs, "hs.users,env=prod set:count", wt);
    assert_string_equal(wt, w);
    if (lround(distinct) != 3 || fabs(distinct - 3) > 0.03)
        fail_msg("hs.users set:count: got %.17g, want 3 (HLL estimate within 1%%)", distinct);
    /* Nothing else: 2 + 3 + 5 + 3 + 4 + 1 aggregates. */
    assert_int_equal(cu_count(aggs, "\"kind\":\"aggregate\""), 18);
    free(aggs);
}

int main(void)
{
    g_node = cu_node_or_skip("hot-shots");
    if (!g_node)
        return CU_EXIT_SKIP;
    return cu_run_test("rf-test-statsd", "test_statsd_hotshots", test_statsd_hotshots);
}
