/* core/stats: histogram buckets and quantiles, the registry, clear
 * baselines, and the Prometheus export parsed back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/stats/stats.h"
#include "tests/ops/prom_check.h"

static void test_bucket_bounds(void **state)
{
    (void)state;
    /* Buckets tile 0..2^36 without gaps or overlaps, and every value lands in
     * the bucket whose bounds hold it. */
    for (uint32_t i = 0; i + 1 < RF_HIST_BUCKETS; i++)
        assert_int_equal(rf_hist_bucket_high(i) + 1, rf_hist_bucket_low(i + 1));
    uint64_t vals[] = {0,
                       1,
                       127,
                       128,
                       129,
                       255,
                       256,
                       1000,
                       999999,
                       1000000,
                       123456789,
                       RF_HIST_MAX_NS,
                       (1ull << 36) - 1};
    for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
        uint32_t i = rf_hist_index(vals[k]);
        assert_true(i < RF_HIST_BUCKETS);
        assert_true(rf_hist_bucket_low(i) <= vals[k] && vals[k] <= rf_hist_bucket_high(i));
        /* two significant digits: width <= 1/64 of the low bound */
        if (vals[k] >= 128 && i < RF_HIST_BUCKETS - 1)
            assert_true((rf_hist_bucket_high(i) - rf_hist_bucket_low(i) + 1) * 64 <=
                        rf_hist_bucket_low(i));
    }
    assert_int_equal(rf_hist_index(UINT64_MAX), RF_HIST_BUCKETS - 1);
}

static void test_quantiles(void **state)
{
    (void)state;
    rf_hist *h = aligned_alloc(64, sizeof(rf_hist));
    rf_hist_init(h);
    for (uint64_t v = 1; v <= 100000; v++)
        rf_hist_record(h, v * 1000); /* 1 us .. 100 ms, uniform */
    rf_hist_snap *s = malloc(sizeof(*s));
    rf_hist_snapshot(h, s);
    assert_int_equal(s->count, 100000);
    assert_int_equal(s->max, 100000000);
    double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (int k = 0; k < 4; k++) {
        double want = qs[k] * 100000 * 1000, got = (double)rf_hist_snap_quantile(s, qs[k]);
        assert_true(got >= want * 0.99 && got <= want * 1.02);
    }
    assert_int_equal(rf_hist_snap_quantile(s, 1.0), 100000000);
    /* merge two cores, then subtract a baseline */
    rf_hist_snap *m = calloc(1, sizeof(*m));
    rf_hist_snap_merge(m, s);
    rf_hist_snap_merge(m, s);
    assert_int_equal(m->count, 200000);
    rf_hist_snap_sub(m, s);
    assert_int_equal(m->count, 100000);
    rf_hist_snap_sub(m, s);
    assert_int_equal(m->count, 0);
    assert_int_equal(rf_hist_snap_quantile(m, 0.99), 0);
    free(m);
    free(s);
    free(h);
}

static _Atomic uint64_t c_w0, c_w1, g_depth;
static uint64_t fn_value = 42;

static uint64_t read_fn(void *ctx)
{
    return *(uint64_t *)ctx;
}

static void test_registry(void **state)
{
    (void)state;
    rf_stats_reset();
    assert_int_equal(rf_stats_register_counter("bad name", "x", NULL, &c_w0), -EINVAL);
    assert_int_equal(rf_stats_register_counter("9abc", "x", NULL, &c_w0), -EINVAL);
    assert_int_equal(rf_stats_register_counter("x_total", "x", NULL, &c_w0), -EINVAL);
    assert_int_equal(rf_stats_register_counter("x", "x", "a=\"unterminated", &c_w0), -EINVAL);
    int a = rf_stats_register_counter("t_events", "Events.", "worker=\"0\"", &c_w0);
    int b = rf_stats_register_counter("t_events", "Events.", "worker=\"1\"", &c_w1);
    int g = rf_stats_register_gauge("t_depth", "Depth.", NULL, &g_depth);
    int f = rf_stats_register_fn(RF_METRIC_COUNTER, "t_fn", "From a callback.", NULL, read_fn,
                                 &fn_value);
    assert_true(a >= 0 && b >= 0 && g >= 0 && f >= 0);
    rf_stats_add(&c_w0, 10);
    rf_stats_add(&c_w1, 5);
    rf_stats_set(&g_depth, 7);
    assert_int_equal(rf_stats_value(a, true), 10);
    rf_stats_clear();
    rf_stats_add(&c_w0, 3);
    rf_stats_set(&g_depth, 9);
    assert_int_equal(rf_stats_value(a, true), 3);   /* since clear */
    assert_int_equal(rf_stats_value(a, false), 13); /* raw, as /metrics shows */
    assert_int_equal(rf_stats_value(g, true), 9);   /* gauges are not cleared */
    assert_int_equal(rf_stats_value(f, true), 0);
    fn_value = 50;
    assert_int_equal(rf_stats_value(f, true), 8);
    rf_stats_unregister(b);
    int n = 0;
    rf_stats_info info;
    for (int cur = 0; rf_stats_next(&cur, &info);)
        n++;
    assert_int_equal(n, 3);
    rf_stats_reset();
}

/* Registering and removing, as every reload that adds and removes a
 * listener does, reuses the removed entries' slots: far more cycles than
 * the registry has slots all succeed, and a removed entry is not exported
 * while the one that took its slot is. */
static void test_unregister_reuses_slots(void **state)
{
    (void)state;
    rf_stats_reset();
    static _Atomic uint64_t keep = 7, cycled = 3;
    assert_true(rf_stats_register_counter("rf_keep", "stays", NULL, &keep) >= 0);
    for (int i = 0; i < 3 * RF_STATS_MAX_METRICS; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "cycle=\"%d\"", i);
        int a = rf_stats_register_counter("rf_cycled", "comes and goes", labels, &cycled);
        int b = rf_stats_register_gauge("rf_cycled_gauge", "comes and goes", labels, &cycled);
        if (a < 0 || b < 0)
            fail_msg("cycle %d: register returned %d, %d", i, a, b);
        rf_stats_unregister(a);
        rf_stats_unregister(b);
    }
    int last = rf_stats_register_counter("rf_cycled", "comes and goes", "cycle=\"last\"", &cycled);
    assert_true(last >= 0);
    rf_strbuf out = {0};
    rf_stats_write_prometheus(&out);
    assert_false(out.oom);
    assert_non_null(strstr(out.p, "rf_keep_total 7\n"));
    assert_non_null(strstr(out.p, "rf_cycled_total{cycle=\"last\"} 3\n"));
    assert_null(strstr(out.p, "cycle=\"0\""));
    assert_null(strstr(out.p, "rf_cycled_gauge"));
    rf_strbuf_free(&out);
    rf_stats_reset();
}

static void test_prometheus_export(void **state)
{
    (void)state;
    rf_stats_reset();
    static _Atomic uint64_t parsed[2];
    rf_hist *h0 = aligned_alloc(64, sizeof(rf_hist)), *h1 = aligned_alloc(64, sizeof(rf_hist));
    rf_hist_init(h0);
    rf_hist_init(h1);
    rf_stats_register_counter("t_parsed_events", "Parsed \"events\".", "worker=\"0\"", &parsed[0]);
    rf_stats_register_counter("t_parsed_events", "Parsed \"events\".", "worker=\"1\"", &parsed[1]);
    rf_stats_register_histogram("t_latency_seconds", "Critical path.", "path=\"critical\"", h0);
    rf_stats_register_histogram("t_latency_seconds", "Critical path.", "path=\"critical\"", h1);
    rf_stats_register_gauge("t_fill", "Fill.", NULL, &parsed[0]);
    rf_stats_add(&parsed[0], 5);
    rf_stats_add(&parsed[1], 6);
    for (int i = 0; i < 1000; i++) {
        rf_hist_record(h0, 2000 + (uint64_t)i);    /* ~2 us */
        rf_hist_record(h1, 3000000 + (uint64_t)i); /* ~3 ms */
    }
    rf_hist_record(h1, 120000000000ull); /* beyond 60 s: only +Inf */
    rf_strbuf out = {0};
    rf_stats_write_prometheus(&out);
    assert_false(out.oom);
    char err[256] = "";
    prom_doc doc;
    int rc = prom_parse(out.p, &doc, err, sizeof(err));
    if (rc < 0)
        print_message("%s\n%s", err, out.p);
    assert_int_equal(rc, 0);
    assert_string_equal(prom_type(&doc, "t_parsed_events_total"), "counter");
    assert_string_equal(prom_type(&doc, "t_latency_seconds"), "histogram");
    assert_string_equal(prom_type(&doc, "t_fill"), "gauge");
    double v;
    assert_true(prom_value(&doc, "t_parsed_events_total", "worker=\"1\"", &v));
    assert_true(v == 6);
    /* merged across the two writers */
    assert_true(prom_value(&doc, "t_latency_seconds_count", "path=\"critical\"", &v));
    assert_true(v == 2001);
    assert_true(prom_value(&doc, "t_latency_seconds_bucket", "path=\"critical\",le=\"5e-06\"", &v));
    assert_true(v == 1000);
    assert_true(prom_value(&doc, "t_latency_seconds_bucket", "path=\"critical\",le=\"60\"", &v));
    assert_true(v == 2000);
    assert_true(prom_value(&doc, "t_latency_seconds_bucket", "path=\"critical\",le=\"+Inf\"", &v));
    assert_true(v == 2001);
    assert_true(strstr(out.p, "# HELP t_parsed_events_total Parsed \"events\".\n") != NULL);
    prom_free(&doc);
    rf_strbuf_free(&out);
    rf_stats_reset();
    free(h0);
    free(h1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_bounds),     cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_registry),          cmocka_unit_test(test_unregister_reuses_slots),
        cmocka_unit_test(test_prometheus_export),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
