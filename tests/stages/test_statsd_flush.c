/* stages/statsd: StatsD's flush semantics, value by value (the arithmetic of
 * Etsy's lib/process_metrics.js; tests/clients/test_statsd_flush.c runs the
 * daemon itself as the oracle). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/sketch/sketch.h"
#include "stages/statsd/statsd_flush.h"

#define S (1000000000LL)

/* What the flusher emitted: "text=value" per value, definitions applied. */
typedef struct sink {
    rf_series_table *t;
    char lines[256][160];
    int n, defs;
} sink;

static void collect(void *ctx, const rf_event *ev, uint32_t n)
{
    sink *k = ctx;
    for (uint32_t i = 0; i < n; i++) {
        if (ev[i].kind == RF_KIND_SERIES_DEF) {
            assert_true(rf_series_table_define(k->t, (rf_series_key *)(uintptr_t)ev[i].aux) >= 0);
            k->defs++;
            continue;
        }
        assert_int_equal(ev[i].kind, RF_KIND_GAUGE);
        int32_t slot = rf_series_table_find(k->t, ev[i].series_id);
        assert_true(slot >= 0);
        assert_true(k->n < 256);
        snprintf(k->lines[k->n++], sizeof(k->lines[0]), "%s=%.17g@%lld",
                 rf_series_table_key(k->t, slot)->text, ev[i].value.f64,
                 (long long)(ev[i].event_time_ns / S));
    }
}

static int32_t define(rf_series_table *t, const char *text)
{
    const char *sp = strchr(text, ' ');
    const char *comma = memchr(text, ',', (size_t)(sp - text));
    size_t mlen = (size_t)((comma ? comma : sp) - text);
    rf_series_key *k = rf_series_key_new(text, strlen(text), mlen, (size_t)(sp - text) + 1);
    int32_t slot = rf_series_table_define(t, k);
    assert_true(slot >= 0);
    return slot;
}

/* A sample as the StatsD parser makes it. */
static rf_event sample(const rf_series_table *t, int32_t slot, uint8_t kind, double v, double rate)
{
    rf_event e;
    memset(&e, 0, sizeof(e));
    e.series_id = rf_series_table_key(t, slot)->series_id;
    e.kind = kind;
    e.value.f64 = v;
    e.sample_rate = (float)rate;
    e.flags = RF_EVF_STATSD;
    if (rate != 1.0)
        memcpy(&e.aux, &rate, sizeof(e.aux));
    return e;
}

typedef struct fixture {
    rf_series_table *t;
    rf_statsd_flusher *f;
    sink out;
    rf_event ev[64];
    int32_t slots[64];
    uint32_t n;
} fixture;

static void setup(fixture *x, const rf_statsd_config *cfg)
{
    memset(x, 0, sizeof(*x));
    x->t = rf_series_table_new(1024);
    assert_non_null(x->t);
    x->out.t = x->t;
    rf_err err = {0};
    x->f = rf_statsd_flusher_new(cfg, x->t, (rf_emitter){.emit = collect, .ctx = &x->out}, &err);
    assert_non_null(x->f);
    rf_statsd_flusher_tick(x->f, 0, 1000 * S + 1); /* aligns: next boundary 1010 s */
}

static void add(fixture *x, int32_t slot, uint8_t kind, double v, double rate)
{
    x->ev[x->n] = sample(x->t, slot, kind, v, rate);
    x->slots[x->n++] = slot;
}

/* A set sample whose member hash is `member`. */
static void add_member(fixture *x, int32_t slot, uint64_t member)
{
    x->ev[x->n] = sample(x->t, slot, RF_KIND_SET, 0, 1);
    x->ev[x->n].value.u64 = member;
    x->slots[x->n++] = slot;
}

static uint32_t run(fixture *x)
{
    uint32_t kept = rf_statsd_flusher_process(x->f, x->ev, x->slots, x->n);
    x->n = 0;
    return kept;
}

static void teardown(fixture *x)
{
    rf_statsd_flusher_free(x->f);
    rf_series_table_free(x->t);
}

static void expect(const sink *k, const char *line)
{
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->lines[i], line) == 0)
            return;
    for (int i = 0; i < k->n; i++)
        print_message("  got %s\n", k->lines[i]);
    fail_msg("missing %s", line);
}

static void test_counter_gauge_set(void **state)
{
    (void)state;
    rf_statsd_config cfg;
    rf_statsd_config_defaults(&cfg);
    fixture x;
    setup(&x, &cfg);
    int32_t c = define(x.t, "lynx.hits,env=prod count");
    int32_t g = define(x.t, "queue gauge");
    int32_t s = define(x.t, "users set");
    int32_t lp = define(x.t, "cpu usage");
    /* lynx's 5|c|@0.1 is 50 in double (49.99999925 through a float). */
    add(&x, c, RF_KIND_COUNTER, 5, 0.1);
    add(&x, c, RF_KIND_COUNTER, 1, 1);
    add(&x, c, RF_KIND_COUNTER, 3, 0.25);
    add(&x, c, RF_KIND_COUNTER, -2, 0.5);
    add(&x, g, RF_KIND_GAUGE, 50, 1);
    add(&x, g, RF_KIND_GAUGE_DELTA, 8, 1);
    add(&x, g, RF_KIND_GAUGE_DELTA, -15, 1);
    for (uint64_t m = 1; m <= 3; m++) {
        rf_event e = sample(x.t, s, RF_KIND_SET, 0, 1);
        e.value_type = RF_VALUE_STRING;
        e.value.u64 = m * 0x9E3779B97F4A7C15ull;
        x.ev[x.n] = e;
        x.slots[x.n++] = s;
    }
    x.ev[x.n - 1].value.u64 = x.ev[0 + x.n - 3].value.u64; /* a repeat: 2 distinct */
    /* A line-protocol event passes through untouched. */
    rf_event other = sample(x.t, lp, RF_KIND_GAUGE, 1, 1);
    other.flags = 0;
    x.ev[x.n] = other;
    x.slots[x.n++] = lp;
    assert_int_equal(run(&x), 1);
    assert_int_equal(x.slots[0], lp);

    rf_statsd_flusher_tick(x.f, 0, 1009 * S); /* before the boundary */
    assert_int_equal(x.out.n, 0);
    rf_statsd_flusher_tick(x.f, 0, 1010 * S);
    assert_int_equal(x.out.n, 3);
    expect(&x.out, "lynx.hits,env=prod value=59@1010"); /* 50 + 1 + 12 - 4 */
    expect(&x.out, "queue value=43@1010");
    expect(&x.out, "users value=2@1010");

    /* Next interval: the counter and the set are idle (not sent), the
     * gauge is carried; a delta applies to the carried value. */
    x.out.n = 0;
    rf_statsd_flusher_tick(x.f, 0, 1020 * S + 5);
    assert_int_equal(x.out.n, 1);
    expect(&x.out, "queue value=43@1020");
    x.out.n = 0;
    add(&x, g, RF_KIND_GAUGE_DELTA, -3, 1);
    run(&x);
    rf_statsd_flusher_tick(x.f, 0, 1030 * S);
    assert_int_equal(x.out.n, 1);
    expect(&x.out, "queue value=40@1030");
    assert_int_equal(x.out.defs, 3); /* announced once each */

    /* delete_gauges: sent only when updated, and a delta starts from 0. */
    cfg.delete_gauges = true;
    rf_statsd_flusher_set_config(x.f, &cfg);
    x.out.n = 0;
    rf_statsd_flusher_tick(x.f, 0, 1040 * S); /* idle since 1030: not sent, forgotten */
    assert_int_equal(x.out.n, 0);
    add(&x, g, RF_KIND_GAUGE_DELTA, 7, 1);
    run(&x);
    rf_statsd_flusher_tick(x.f, 0, 1060 * S);
    expect(&x.out, "queue value=7@1050"); /* the boundary passed */
    teardown(&x);
}

static void test_timer(void **state)
{
    (void)state;
    rf_statsd_config cfg;
    rf_statsd_config_defaults(&cfg);
    cfg.n_percentiles = 3;
    cfg.percentiles[2] = 50;
    fixture x;
    setup(&x, &cfg);
    int32_t t = define(x.t, "lat,route=/pay timer");
    /* 10..40: StatsD's upper_90 and upper_99 are 40 (rank round(3.6) = 4). */
    add(&x, t, RF_KIND_TIMER, 30, 1);
    add(&x, t, RF_KIND_TIMER, 10, 1);
    add(&x, t, RF_KIND_TIMER, 40, 0.5);
    add(&x, t, RF_KIND_TIMER, 20, 1);
    assert_int_equal(run(&x), 0);
    rf_statsd_flusher_tick(x.f, 0, 1010 * S);
    const char *want[] = {
        "lat,route=/pay count=5@1010",          "lat,route=/pay lower=10@1010",
        "lat,route=/pay upper=40@1010",         "lat,route=/pay mean=25@1010",
        "lat,route=/pay median=25@1010",        "lat,route=/pay sum=100@1010",
        "lat,route=/pay 90_percentile=40@1010", "lat,route=/pay 99_percentile=40@1010",
        "lat,route=/pay 50_percentile=20@1010"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        expect(&x.out, want[i]);
    char sd[160];
    snprintf(sd, sizeof(sd), "lat,route=/pay stddev=%.17g@1010", sqrt(125.0));
    expect(&x.out, sd);
    assert_int_equal(x.out.n, 10);

    /* One value: every percentile is it. Odd count: the middle value. */
    x.out.n = 0;
    add(&x, t, RF_KIND_TIMER, 7.5, 1);
    run(&x);
    rf_statsd_flusher_tick(x.f, 0, 1020 * S);
    expect(&x.out, "lat,route=/pay 50_percentile=7.5@1020");
    expect(&x.out, "lat,route=/pay median=7.5@1020");
    expect(&x.out, "lat,route=/pay stddev=0@1020");
    teardown(&x);
}

static void test_timer_sketch_and_big_set(void **state)
{
    (void)state;
    rf_statsd_config cfg;
    rf_statsd_config_defaults(&cfg);
    cfg.timer_max_values = 16;
    cfg.set_max_exact = 16;
    cfg.keep_raw = true;
    fixture x;
    setup(&x, &cfg);
    int32_t t = define(x.t, "big timer");
    int32_t s = define(x.t, "many set");
    for (int i = 1; i <= 100; i++) {
        add(&x, t, RF_KIND_TIMER, i, 1);
        add_member(&x, s, (uint64_t)i * 0x9E3779B97F4A7C15ull);
        if (x.n == 64)
            assert_int_equal(run(&x), 64); /* keep_raw: nothing taken out */
    }
    run(&x);
    rf_statsd_flusher_tick(x.f, 0, 1010 * S);
    /* count, extremes and sums stay exact past the cap; percentiles from the sketch. */
    expect(&x.out, "big count=100@1010");
    expect(&x.out, "big lower=1@1010");
    expect(&x.out, "big upper=100@1010");
    expect(&x.out, "big sum=5050@1010");
    expect(&x.out, "big mean=50.5@1010");
    int found = 0;
    for (int i = 0; i < x.out.n; i++) {
        double v;
        if (sscanf(x.out.lines[i], "big 90_percentile=%lf", &v) == 1) {
            assert_true(fabs(v - 90) <= 0.02 * 90);
            found++;
        }
        if (sscanf(x.out.lines[i], "many value=%lf", &v) == 1) {
            assert_true(fabs(v - 100) <= 5);
            found++;
        }
    }
    assert_int_equal(found, 2);
    rf_statsd_stats st;
    rf_statsd_flusher_stats_read(x.f, &st);
    assert_int_equal(st.sketched, 1);
    assert_int_equal(st.hll_sets, 1);
    /* The next interval is exact again. */
    x.out.n = 0;
    add(&x, t, RF_KIND_TIMER, 3, 1);
    add(&x, t, RF_KIND_TIMER, 1, 1);
    run(&x);
    rf_statsd_flusher_tick(x.f, 0, 1020 * S);
    expect(&x.out, "big median=2@1020");
    expect(&x.out, "big 90_percentile=3@1020");
    teardown(&x);
}

/* max_memory: a timer and a set far past what 1 MiB holds finish their
 * interval in their sketches (no sample lost, every count exact), what the
 * flusher holds stays under the cap, and the next interval is exact again. */
static void test_memory_cap(void **state)
{
    (void)state;
    rf_statsd_config cfg;
    rf_statsd_config_defaults(&cfg);
    cfg.timer_max_values = 1u << 24;
    cfg.set_max_exact = 1u << 24;
    cfg.max_memory = 1u << 20;
    fixture x;
    setup(&x, &cfg);
    int32_t t = define(x.t, "big timer");
    int32_t s = define(x.t, "many set");
    const int n = 300000; /* 2.4 MB of timer values, 4.8 MB of set table */
    for (int i = 1; i <= n; i++) {
        add(&x, t, RF_KIND_TIMER, i, 1);
        add_member(&x, s, (uint64_t)i * 0x9E3779B97F4A7C15ull);
        if (x.n == 64)
            run(&x);
    }
    run(&x);
    rf_statsd_stats st;
    rf_statsd_flusher_stats_read(x.f, &st);
    assert_int_equal(st.no_memory, 0);
    assert_true(st.memory_capped >= 2);
    assert_int_equal(st.sketched, 1);
    assert_int_equal(st.hll_sets, 1);
    assert_true(st.held_bytes > 0 && st.held_bytes <= cfg.max_memory);
    rf_statsd_flusher_tick(x.f, 0, 1010 * S);
    expect(&x.out, "big count=300000@1010");
    expect(&x.out, "big lower=1@1010");
    expect(&x.out, "big upper=300000@1010");
    expect(&x.out, "big sum=45000150000@1010");
    int found = 0;
    for (int i = 0; i < x.out.n; i++) {
        double v;
        if (sscanf(x.out.lines[i], "big median=%lf", &v) == 1) {
            assert_true(fabs(v - n / 2.0) <= 0.02 * n / 2.0);
            found++;
        }
        if (sscanf(x.out.lines[i], "many value=%lf", &v) == 1) {
            assert_true(fabs(v - n) <= 0.05 * n);
            found++;
        }
    }
    assert_int_equal(found, 2);
    /* At the cap (lowered to what is held now), a new timer has no room for
     * its first value: refused and counted. */
    rf_statsd_flusher_stats_read(x.f, &st); /* the flush gave the values and members back */
    assert_true(st.held_bytes < (1u << 19));
    rf_statsd_config tiny = cfg;
    tiny.max_memory = st.held_bytes;
    rf_statsd_flusher_set_config(x.f, &tiny);
    uint64_t before = st.no_memory;
    char name[64];
    int refused = 0;
    for (int i = 0; i < 8 && !refused; i++) {
        snprintf(name, sizeof(name), "t%d timer", i);
        add(&x, define(x.t, name), RF_KIND_TIMER, 1, 1);
        run(&x);
        rf_statsd_flusher_stats_read(x.f, &st);
        refused = st.no_memory > before;
    }
    assert_true(refused);
    assert_true(st.held_bytes <= cfg.max_memory);
    teardown(&x);
}

/* What the flusher holds does not grow from one interval to the next when a
 * timer and a set go past their exact bounds every interval (their buffers
 * are given back at each flush). */
static void test_memory_held_steady(void **state)
{
    (void)state;
    rf_statsd_config cfg;
    rf_statsd_config_defaults(&cfg);
    cfg.timer_max_values = 16;
    cfg.set_max_exact = 16;
    fixture x;
    setup(&x, &cfg);
    int32_t t = define(x.t, "big timer");
    int32_t s = define(x.t, "many set");
    uint64_t held[12];
    for (int k = 0; k < 12; k++) {
        for (int i = 1; i <= 200; i++) {
            add(&x, t, RF_KIND_TIMER, i, 1);
            add_member(&x, s, (uint64_t)(k * 1000 + i) * 0x9E3779B97F4A7C15ull);
            if (x.n == 64)
                run(&x);
        }
        run(&x);
        x.out.n = 0;
        rf_statsd_flusher_tick(x.f, 0, (1010 + 10 * k) * S);
        rf_statsd_stats st;
        rf_statsd_flusher_stats_read(x.f, &st);
        assert_int_equal(st.sketched, (uint64_t)k + 1);
        held[k] = st.held_bytes;
    }
    assert_int_equal(held[11], held[1]);
    teardown(&x);
}

/* pipeline.statsd.max_memory: a size, at least 1 MiB; a smaller one is
 * refused naming the key and its line. */
static void test_max_memory_config(void **state)
{
    (void)state;
    static const char bad[] = "pipeline:\n  statsd:\n    max_memory: 64KiB\n";
    static const char good[] = "pipeline:\n  statsd:\n    max_memory: 8MiB\n";
    rf_cfg_doc *doc;
    rf_err err;
    rf_statsd_config cfg;
    const rf_cfg_node *p;
    assert_int_equal(rf_cfg_load_string(bad, sizeof(bad) - 1, "t.yaml", &doc, &err), 0);
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "pipeline", &p, &err), 0);
    assert_true(rf_statsd_config_parse(p, &cfg, &err) < 0);
    assert_non_null(strstr(err.msg, "t.yaml:3:"));
    assert_non_null(strstr(err.msg, "max_memory"));
    rf_cfg_free(doc);
    assert_int_equal(rf_cfg_load_string(good, sizeof(good) - 1, "t.yaml", &doc, &err), 0);
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "pipeline", &p, &err), 0);
    assert_int_equal(rf_statsd_config_parse(p, &cfg, &err), 0);
    assert_int_equal(cfg.max_memory, 8u << 20);
    rf_cfg_free(doc);
}

static void test_rank(void **state)
{
    (void)state;
    /* round(p/100 * n), 1-based, as Math.round. */
    assert_int_equal(rf_quantile_rank(0.90, 4), 3);
    assert_int_equal(rf_quantile_rank(0.50, 4), 1);
    assert_int_equal(rf_quantile_rank(0.50, 5), 2); /* 2.5 -> 3 */
    assert_int_equal(rf_quantile_rank(0.99, 100), 98);
    assert_int_equal(rf_quantile_rank(0.01, 10), 0); /* rank 0 clamps to the first */
    assert_int_equal(rf_quantile_rank(0, 3), 0);
    assert_int_equal(rf_quantile_rank(1.0, 7), 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge_set),
        cmocka_unit_test(test_timer),
        cmocka_unit_test(test_timer_sketch_and_big_set),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_memory_held_steady),
        cmocka_unit_test(test_max_memory_config),
        cmocka_unit_test(test_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
