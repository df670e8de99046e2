/* Aggregation: every function against a reference computed here from seeded
 * random data, window boundaries, lateness within and beyond (both
 * policies), counter resets, StatsD semantics (sample rates, gauge deltas,
 * timers, sets), group-by, idle close by tick (monotonic, so wall-clock
 * steps forward and back close nothing early or late), the incremental
 * sweep, output series ids and definitions, and the YAML configuration. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config/config.h"
#include "stages/aggregate/aggregate.h"
#include "stages/sketch/sketch.h"
#include "stage_test_util.h"

#define S 1000000000LL
#define T0 (1699999200LL * S) /* a multiple of every window used here */

/* ---- harness ---------------------------------------------------------- */

typedef struct cap {
    rf_event *ev;
    size_t n, cap;
    uint32_t calls;
} cap;

static void on_emit(void *ctx, const rf_event *e, uint32_t n)
{
    cap *c = ctx;
    c->calls++;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->ev = realloc(c->ev, c->cap * sizeof(rf_event));
    }
    memcpy(c->ev + c->n, e, n * sizeof(rf_event));
    c->n += n;
}

static void cap_free(cap *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == RF_KIND_SERIES_DEF)
            rf_series_key_free((rf_series_key *)(uintptr_t)c->ev[i].aux);
    free(c->ev);
    memset(c, 0, sizeof(*c));
}

static size_t count_kind(const cap *c, uint8_t kind)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        k += c->ev[i].kind == kind;
    return k;
}

static const rf_event *find_agg(const cap *c, const char *text, int64_t ws)
{
    uint64_t id = rf_series_id_of_key(text, strlen(text));
    const rf_event *found = NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == RF_KIND_AGGREGATE && c->ev[i].series_id == id &&
            c->ev[i].event_time_ns == ws) {
            if (found)
                fail_msg("%s at %lld emitted twice", text, (long long)(ws - T0));
            found = &c->ev[i];
        }
    return found;
}

static double val(const cap *c, const char *text, int64_t ws)
{
    const rf_event *e = find_agg(c, text, ws);
    if (!e)
        fail_msg("no aggregate %s for window %+lld s", text, (long long)((ws - T0) / S));
    return e->value.f64;
}

static void expect_close(double got, double want, double rel, const char *what)
{
    double tol = rel * fabs(want) + 1e-9;
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.17g want %.17g", what, got, want);
}

static uint64_t def(rf_series_table *t, const char *text)
{
    rf_series_key *k = stage_test_key(text);
    uint64_t id = k->series_id;
    assert_true(rf_series_table_define(t, k) >= 0);
    return id;
}

static rf_event ev(uint64_t id, int64_t t, double v, uint8_t kind, float rate)
{
    rf_event e;
    memset(&e, 0, sizeof(e));
    e.series_id = id;
    e.event_time_ns = t;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    e.kind = kind;
    e.sample_rate = rate;
    return e;
}

static void push(rf_aggregator *a, uint64_t id, int64_t t, double v, uint8_t kind)
{
    rf_event e = ev(id, t, v, kind, 1.0f);
    rf_aggregator_process(a, &e, 1);
}

static rf_agg_rule rule(const char *m, const char *f, int64_t window, const char *const *fns)
{
    rf_agg_rule r;
    memset(&r, 0, sizeof(r));
    snprintf(r.measurement, sizeof(r.measurement), "%s", m);
    snprintf(r.field, sizeof(r.field), "%s", f);
    r.window_ns = window;
    for (; *fns; fns++)
        assert_int_equal(rf_agg_func_parse(*fns, &r.funcs[r.n_funcs++]), 0);
    return r;
}

typedef struct fixture {
    rf_series_table *t;
    rf_aggregator *a;
    cap out;
    rf_agg_rule rules[4];
    rf_agg_config cfg;
} fixture;

static void fx_start(fixture *fx)
{
    rf_err err;
    fx->cfg.rules = fx->rules;
    fx->a = rf_aggregator_new(&fx->cfg, fx->t, (rf_emitter){on_emit, &fx->out}, &err);
    if (!fx->a)
        fail_msg("aggregator: %s", err.msg);
}

static void fx_init(fixture *fx, uint32_t max_series)
{
    memset(fx, 0, sizeof(*fx));
    fx->t = rf_series_table_new(max_series);
    rf_agg_config_defaults(&fx->cfg);
}

/* fx_init with one rule (m, f, window, fns) as rules[0]; the caller sets
 * what else its test needs in fx->cfg, then calls fx_start. */
static void fx_init_rule(fixture *fx, uint32_t max_series, const char *m, const char *f,
                         int64_t window, const char *const *fns)
{
    fx_init(fx, max_series);
    fx->rules[0] = rule(m, f, window, fns);
    fx->cfg.n_rules = 1;
}

/* Starts fx with one count rule on every series in 10 s windows, 2 s of
 * lateness and 1 s of idle grace: the idle-close tests' setting. */
static void fx_start_idle_close(fixture *fx, uint32_t max_series)
{
    static const char *const count[] = {"count", NULL};
    fx_init_rule(fx, max_series, "*", "*", 10 * S, count);
    fx->cfg.allowed_lateness_ns = 2 * S;
    fx->cfg.idle_grace_ns = 1 * S;
    fx_start(fx);
}

static void fx_end(fixture *fx)
{
    rf_aggregator_free(fx->a);
    rf_series_table_free(fx->t);
    cap_free(&fx->out);
}

/* ---- random reference ------------------------------------------------- */

static uint64_t rng = 42;
static double uni(void)
{
    return stage_test_uniform(&rng);
}

static void test_functions_reference(void **state)
{
    (void)state;
    static const char *const fns[] = {"count",  "sum",  "min",      "max", "avg", "first", "last",
                                      "stddev", "rate", "increase", "p50", "p90", "p99",   NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
    fx_start(&fx);
    uint64_t id = def(fx.t, "temp,room=a celsius");
    /* room b spreads over five decades: there 1 % tells one quantile from
     * another (room a's spread, +-100 around 1e6, is inside the sketch's 1 %) */
    uint64_t id_b = def(fx.t, "temp,room=b celsius");
    enum {
        W = 6,
        PER = 5000
    };
    static double vals[W][PER], vals_b[W][PER];
    double prev = NAN;
    for (int w = 0; w < W; w++) {
        double ref_inc = 0;
        for (int i = 0; i < PER; i++) {
            /* A large offset: the naive sum-of-squares stddev would lose it. */
            double v = 1e6 + (uni() - 0.5) * 200 + (i % 97 == 0 ? 5000 * uni() : 0);
            if (i % 1000 == 999)
                v = 1e6 - 3000; /* drops: count as resets for increase */
            vals[w][i] = v;
            if (!isnan(prev))
                ref_inc += v >= prev ? v - prev : v;
            prev = v;
            int64_t t = T0 + w * 10 * S + (int64_t)i * (10 * S / PER);
            push(fx.a, id, t, v, RF_KIND_GAUGE);
            vals_b[w][i] = exp(uni() * 12); /* 1 .. 1.6e5 */
            push(fx.a, id_b, t, vals_b[w][i], RF_KIND_GAUGE);
        }
        (void)ref_inc;
    }
    rf_aggregator_flush(fx.a);
    prev = NAN;
    for (int w = 0; w < W; w++) {
        int64_t ws = T0 + w * 10 * S;
        double sum = 0, mn = INFINITY, mx = -INFINITY, inc = 0;
        for (int i = 0; i < PER; i++) {
            double v = vals[w][i];
            sum += v;
            mn = fmin(mn, v);
            mx = fmax(mx, v);
            if (!isnan(prev))
                inc += v >= prev ? v - prev : v;
            prev = v;
        }
        double mean = sum / PER, ss = 0;
        for (int i = 0; i < PER; i++)
            ss += (vals[w][i] - mean) * (vals[w][i] - mean);
        double sd = sqrt(ss / PER);
        expect_close(val(&fx.out, "temp,room=a celsius:count", ws), PER, 0, "count");
        expect_close(val(&fx.out, "temp,room=a celsius:sum", ws), sum, 1e-12, "sum");
        expect_close(val(&fx.out, "temp,room=a celsius:min", ws), mn, 0, "min");
        expect_close(val(&fx.out, "temp,room=a celsius:max", ws), mx, 0, "max");
        expect_close(val(&fx.out, "temp,room=a celsius:avg", ws), mean, 1e-12, "avg");
        expect_close(val(&fx.out, "temp,room=a celsius:first", ws), vals[w][0], 0, "first");
        expect_close(val(&fx.out, "temp,room=a celsius:last", ws), vals[w][PER - 1], 0, "last");
        expect_close(val(&fx.out, "temp,room=a celsius:stddev", ws), sd, 1e-9, "stddev");
        expect_close(val(&fx.out, "temp,room=a celsius:increase", ws), inc, 1e-9, "increase");
        expect_close(val(&fx.out, "temp,room=a celsius:rate", ws), inc / 10, 1e-9, "rate");
        qsort(vals[w], PER, sizeof(double), stage_test_cmp_double);
        expect_close(val(&fx.out, "temp,room=a celsius:p50", ws),
                     vals[w][rf_quantile_rank(0.5, PER)], 0.01, "p50");
        expect_close(val(&fx.out, "temp,room=a celsius:p90", ws),
                     vals[w][rf_quantile_rank(0.9, PER)], 0.01, "p90");
        expect_close(val(&fx.out, "temp,room=a celsius:p99", ws),
                     vals[w][rf_quantile_rank(0.99, PER)], 0.01, "p99");
        qsort(vals_b[w], PER, sizeof(double), stage_test_cmp_double);
        static const struct {
            const char *series;
            double q;
        } qs[] = {{"temp,room=b celsius:p50", 0.5},
                  {"temp,room=b celsius:p90", 0.9},
                  {"temp,room=b celsius:p99", 0.99}};
        for (size_t k = 0; k < 3; k++)
            expect_close(val(&fx.out, qs[k].series, ws), vals_b[w][rf_quantile_rank(qs[k].q, PER)],
                         0.011, qs[k].series); /* alpha 1 %, and a neighbouring rank */
    }
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.windows_emitted, 2 * W);
    assert_int_equal(st.aggregates, 2 * W * 13);
    assert_int_equal(st.series_defs, 2 * 13); /* once per aggregate series */
    assert_int_equal(st.late_dropped + st.late_applied, 0);
    fx_end(&fx);
}

static void test_boundaries_and_ids(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", "sum", NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "cpu", "usage", 10 * S, fns);
    fx_start(&fx);
    uint64_t id = def(fx.t, "cpu,host=a usage");
    uint64_t other = def(fx.t, "cpu,host=a idle");
    push(fx.a, id, T0 + 10 * S - 1, 1, RF_KIND_GAUGE);
    push(fx.a, id, T0 + 10 * S, 2, RF_KIND_GAUGE);    /* exactly at the boundary: next window */
    push(fx.a, other, T0 + 10 * S, 2, RF_KIND_GAUGE); /* field does not match */
    assert_int_equal(fx.out.n, 4 - 0 + 0); /* window 0 closed (lateness 0): 2 defs + 2 values */
    assert_int_equal(count_kind(&fx.out, RF_KIND_SERIES_DEF), 2);
    /* the definition precedes the first value and carries the text */
    assert_int_equal(fx.out.ev[0].kind, RF_KIND_SERIES_DEF);
    const rf_series_key *k = (const rf_series_key *)(uintptr_t)fx.out.ev[0].aux;
    assert_string_equal(k->text, "cpu,host=a usage:count");
    assert_int_equal(k->series_id, fx.out.ev[0].series_id);
    assert_int_equal(k->measurement_len, 3);
    assert_string_equal(k->text + k->field_offset, "usage:count");
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "cpu,host=a usage:sum", T0), 1, 0, "w0");
    expect_close(val(&fx.out, "cpu,host=a usage:sum", T0 + 10 * S), 2, 0, "w1");
    const rf_event *e = find_agg(&fx.out, "cpu,host=a usage:count", T0 + 10 * S);
    assert_int_equal(e->aux, 10 * S);
    assert_int_equal(e->value_type, RF_VALUE_F64);
    assert_int_equal(e->flags, 0);
    assert_int_equal(count_kind(&fx.out, RF_KIND_SERIES_DEF), 2); /* not again */
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.unmatched, 1);
    /* unknown series and non-data kinds */
    push(fx.a, 777, T0, 1, RF_KIND_GAUGE);
    push(fx.a, id, T0, 1, RF_KIND_ALERT);
    push(fx.a, id, T0 + 20 * S, NAN, RF_KIND_GAUGE);
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.unknown_series, 1);
    assert_int_equal(st.ignored, 1);
    assert_int_equal(st.invalid_value, 1);
    fx_end(&fx);
}

/* Windows at the ends of int64 time: the window holding INT64_MIN would
 * start before it and is labelled INT64_MIN (it wrapped into the year 2262
 * before); the last one ends at INT64_MAX instead of past it. Each keeps its
 * events and closes once. */
static void test_windows_at_the_ends_of_time(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
    fx.cfg.allowed_lateness_ns = 5 * S;
    fx_start(&fx);
    uint64_t id = def(fx.t, "edge,h=a v");
    push(fx.a, id, INT64_MIN, 1, RF_KIND_GAUGE);
    push(fx.a, id, INT64_MIN + 1, 1, RF_KIND_GAUGE);
    push(fx.a, id, INT64_MIN + 10 * S, 1, RF_KIND_GAUGE); /* floor: the next window */
    push(fx.a, id, INT64_MAX - 1, 1, RF_KIND_GAUGE);
    push(fx.a, id, INT64_MAX, 1, RF_KIND_GAUGE);
    rf_aggregator_flush(fx.a);
    const int64_t second = INT64_MIN / (10 * S) * (10 * S);
    expect_close(val(&fx.out, "edge,h=a v:count", INT64_MIN), 2, 0, "first");
    expect_close(val(&fx.out, "edge,h=a v:count", second), 1, 0, "second");
    expect_close(val(&fx.out, "edge,h=a v:count", INT64_MAX - 10 * S), 2, 0, "last");
    assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE), 3);
    fx_end(&fx);
}

static void test_lateness(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", "sum", NULL};
    for (int policy = 0; policy < 2; policy++) {
        fixture fx;
        fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
        fx.cfg.allowed_lateness_ns = 5 * S;
        fx.cfg.late_policy = (uint8_t)policy;
        fx_start(&fx);
        uint64_t a = def(fx.t, "m,s=a v"), b = def(fx.t, "m,s=b v");
        push(fx.a, a, T0 + 1 * S, 1, RF_KIND_GAUGE);
        push(fx.a, b, T0 + 2 * S, 10, RF_KIND_GAUGE);
        push(fx.a, a, T0 + 12 * S, 2, RF_KIND_GAUGE); /* a moves on; its w0 is held */
        assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE), 0);
        push(fx.a, a, T0 + 9 * S, 4, RF_KIND_GAUGE);  /* 3 s late: within */
        push(fx.a, b, T0 + 8 * S, 20, RF_KIND_GAUGE); /* b's current window: late too */
        push(fx.a, a, T0 + 14 * S, 8, RF_KIND_GAUGE); /* close_wm = 9: nothing closes */
        assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE), 0);
        push(fx.a, a, T0 + 15 * S, 16, RF_KIND_GAUGE); /* close_wm = 10: w0 closes */
        /* a's w0 closed on a's event; b's by the sweep at the end of the call */
        expect_close(val(&fx.out, "m,s=a v:sum", T0), 5, 0, "a w0 with its late event");
        expect_close(val(&fx.out, "m,s=b v:sum", T0), 30, 0, "b w0");
        push(fx.a, b, T0 + 7 * S, 100, RF_KIND_GAUGE); /* beyond lateness */
        push(fx.a, a, T0 + 3 * S, 200, RF_KIND_GAUGE); /* beyond lateness */
        rf_aggregator_flush(fx.a);
        rf_agg_stats st;
        rf_aggregator_stats_read(fx.a, &st);
        assert_int_equal(st.late_applied, 2);
        if (policy == RF_AGG_LATE_DROP) {
            assert_int_equal(st.late_dropped, 2);
            expect_close(val(&fx.out, "m,s=a v:sum", T0 + 10 * S), 26, 0, "a w1");
            assert_null(find_agg(&fx.out, "m,s=b v:sum", T0 + 10 * S));
        } else {
            assert_int_equal(st.late_to_current, 2);
            /* applied to the earliest open window: a's w1, and for b (no
             * open window) the window holding the close watermark, w1 */
            expect_close(val(&fx.out, "m,s=a v:sum", T0 + 10 * S), 226, 0, "a w1 + late");
            const rf_event *e = find_agg(&fx.out, "m,s=b v:sum", T0 + 10 * S);
            assert_non_null(e);
            expect_close(e->value.f64, 100, 0, "b w1 late");
            assert_true(e->flags & RF_EVF_LATE);
            assert_true(find_agg(&fx.out, "m,s=a v:sum", T0 + 10 * S)->flags & RF_EVF_LATE);
        }
        assert_false(find_agg(&fx.out, "m,s=a v:sum", T0)->flags & RF_EVF_LATE);
        fx_end(&fx);
    }
}

static void test_pending_full(void **state)
{
    (void)state;
    static const char *const fns[] = {"sum", NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
    fx.cfg.allowed_lateness_ns = 5 * S;
    fx.cfg.max_pending = 1;
    fx_start(&fx);
    uint64_t a = def(fx.t, "p,s=a v"), b = def(fx.t, "p,s=b v");
    push(fx.a, a, T0 + 1 * S, 1, RF_KIND_GAUGE);
    push(fx.a, b, T0 + 1 * S, 2, RF_KIND_GAUGE);
    push(fx.a, a, T0 + 11 * S, 4, RF_KIND_GAUGE); /* parked: the one pending entry */
    push(fx.a, b, T0 + 11 * S, 8, RF_KIND_GAUGE); /* no room: b's w0 closes early */
    expect_close(val(&fx.out, "p,s=b v:sum", T0), 2, 0, "early close");
    assert_null(find_agg(&fx.out, "p,s=a v:sum", T0));
    push(fx.a, a, T0 + 9 * S, 16, RF_KIND_GAUGE); /* finds its parked window */
    push(fx.a, b, T0 + 9 * S, 32, RF_KIND_GAUGE); /* its window is gone: beyond */
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.early_closes, 1);
    assert_int_equal(st.late_applied, 1);
    assert_int_equal(st.late_dropped, 1);
    push(fx.a, a, T0 + 16 * S, 0, RF_KIND_GAUGE); /* close_wm 11: w0 closes */
    expect_close(val(&fx.out, "p,s=a v:sum", T0), 17, 0, "parked + late");
    /* the entry was freed: the next boundary parks again */
    push(fx.a, b, T0 + 21 * S, 0, RF_KIND_GAUGE);
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.early_closes, 1);
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "p,s=b v:sum", T0 + 10 * S), 8, 0, "b w1");
    fx_end(&fx);
}

static void test_counter_resets(void **state)
{
    (void)state;
    static const char *const fns[] = {"increase", "rate", "last", NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
    fx_start(&fx);
    uint64_t id = def(fx.t, "net,if=eth0 rx_bytes");
    static const double v0[] = {100, 150, 30, 50}; /* reset at 30: counts from 0 */
    for (int i = 0; i < 4; i++)
        push(fx.a, id, T0 + i * S, v0[i], RF_KIND_CUMULATIVE);
    push(fx.a, id, T0 + 11 * S, 70, RF_KIND_CUMULATIVE); /* +20 from the carried 50 */
    push(fx.a, id, T0 + 12 * S, 0, RF_KIND_CUMULATIVE);  /* reset to 0 */
    push(fx.a, id, T0 + 13 * S, 5, RF_KIND_CUMULATIVE);
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "net,if=eth0 rx_bytes:increase", T0), 50 + 30 + 20, 0, "inc w0");
    expect_close(val(&fx.out, "net,if=eth0 rx_bytes:rate", T0), 10, 1e-12, "rate w0");
    expect_close(val(&fx.out, "net,if=eth0 rx_bytes:increase", T0 + 10 * S), 25, 0, "inc w1");
    expect_close(val(&fx.out, "net,if=eth0 rx_bytes:last", T0 + 10 * S), 5, 0, "last w1");
    fx_end(&fx);
}

static void test_statsd(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", "sum",  "avg", "min", "max",
                                      "rate",  "last", "p50", "p99", NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
    fx_start(&fx);
    uint64_t c = def(fx.t, "hits count"), g = def(fx.t, "queue gauge"), tm = def(fx.t, "lat timer"),
             st = def(fx.t, "users set");
    /* counter: value / sample_rate per interval */
    rf_event e[64];
    for (int i = 0; i < 10; i++)
        e[i] = ev(c, T0 + i * 100000000LL, 2, RF_KIND_COUNTER, 0.1f);
    rf_aggregator_process(fx.a, e, 10);
    /* gauge, then deltas; the value is kept across intervals */
    push(fx.a, g, T0 + 1 * S, 10, RF_KIND_GAUGE);
    push(fx.a, g, T0 + 2 * S, 5, RF_KIND_GAUGE_DELTA);
    push(fx.a, g, T0 + 3 * S, -3, RF_KIND_GAUGE_DELTA);
    /* timer: sample rate scales count only */
    double ref[40];
    for (int i = 0; i < 40; i++) {
        ref[i] = 1 + i * 2.5;
        e[i] = ev(tm, T0 + 4 * S + i, ref[i], RF_KIND_TIMER, 0.5f);
    }
    rf_aggregator_process(fx.a, e, 40);
    /* set: 1000 distinct members, each sent 3 times */
    for (int r = 0; r < 3; r++)
        for (uint64_t m = 0; m < 1000; m += 50) {
            for (int i = 0; i < 50; i++) {
                e[i] = ev(st, T0 + 5 * S, 0, RF_KIND_SET, 1.0f);
                e[i].value_type = RF_VALUE_U64;
                e[i].value.u64 = 0xabcdef00ull + m + (uint64_t)i;
            }
            rf_aggregator_process(fx.a, e, 50);
        }
    push(fx.a, g, T0 + 12 * S, 1, RF_KIND_GAUGE_DELTA); /* next interval: 12 + 1 */
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "hits count:sum", T0), 200, 1e-6, "counter sum");
    expect_close(val(&fx.out, "hits count:count", T0), 100, 1e-6, "counter count");
    expect_close(val(&fx.out, "hits count:rate", T0), 20, 1e-6, "counter rate");
    expect_close(val(&fx.out, "queue gauge:last", T0), 12, 0, "gauge after deltas");
    expect_close(val(&fx.out, "queue gauge:last", T0 + 10 * S), 13, 0, "gauge kept");
    expect_close(val(&fx.out, "queue gauge:max", T0), 15, 0, "gauge max");
    expect_close(val(&fx.out, "lat timer:count", T0), 80, 1e-6, "timer count x 1/rate");
    double sum = 0;
    for (int i = 0; i < 40; i++)
        sum += ref[i];
    expect_close(val(&fx.out, "lat timer:sum", T0), sum, 1e-12, "timer sum");
    expect_close(val(&fx.out, "lat timer:avg", T0), sum / 40, 1e-12, "timer mean");
    expect_close(val(&fx.out, "lat timer:min", T0), 1, 0, "timer min");
    expect_close(val(&fx.out, "lat timer:max", T0), ref[39], 0, "timer max");
    expect_close(val(&fx.out, "lat timer:p50", T0), ref[19], 0.01, "timer p50");
    /* nearest rank: round(0.99 * 40) = 40 */
    expect_close(val(&fx.out, "lat timer:p99", T0), ref[39], 0.01, "timer p99");
    expect_close(val(&fx.out, "users set:count", T0), 1000, 0.05, "set distinct");
    /* a set has only its distinct count */
    assert_null(find_agg(&fx.out, "users set:sum", T0));
    fx_end(&fx);
}

static void test_group_by(void **state)
{
    (void)state;
    static const char *const fns[] = {"sum", "count", "p90", NULL};
    fixture fx;
    fx_init(&fx, 16);
    fx.rules[0] = rule("cpu", "*", 60 * S, fns);
    strcpy(fx.rules[0].group_by[0], "region");
    strcpy(fx.rules[0].group_by[1], "az");
    fx.rules[0].n_group_by = 2;
    static const char *const fns2[] = {"max", NULL};
    fx.rules[1] = rule("cpu", "usage", 60 * S, fns2); /* a second rule on the same series */
    fx.cfg.n_rules = 2;
    fx_start(&fx);
    uint64_t a = def(fx.t, "cpu,az=1,host=a,region=eu usage");
    uint64_t b = def(fx.t, "cpu,az=1,host=b,region=eu usage");
    uint64_t c = def(fx.t, "cpu,az=1,host=c,region=us usage");
    uint64_t d = def(fx.t, "cpu,host=d usage");
    uint64_t e = def(fx.t, "cpu,az=1,host=a,region=eu idle");
    push(fx.a, a, T0 + 1 * S, 1, RF_KIND_GAUGE);
    push(fx.a, b, T0 + 2 * S, 2, RF_KIND_GAUGE);
    push(fx.a, c, T0 + 3 * S, 4, RF_KIND_GAUGE);
    push(fx.a, d, T0 + 4 * S, 8, RF_KIND_GAUGE);
    push(fx.a, e, T0 + 5 * S, 16, RF_KIND_GAUGE);
    push(fx.a, a, T0 + 6 * S, 32, RF_KIND_GAUGE);
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "cpu,az=1,region=eu usage:sum", T0), 35, 0, "eu");
    expect_close(val(&fx.out, "cpu,az=1,region=eu usage:count", T0), 3, 0, "eu n");
    expect_close(val(&fx.out, "cpu,az=1,region=us usage:sum", T0), 4, 0, "us");
    expect_close(val(&fx.out, "cpu usage:sum", T0), 8, 0, "no group tags");
    expect_close(val(&fx.out, "cpu,az=1,region=eu idle:sum", T0), 16, 0, "other field");
    /* nearest rank round(0.9 * 3) = 3 of {1, 2, 32} */
    expect_close(val(&fx.out, "cpu,az=1,region=eu usage:p90", T0), 32, 0.01, "eu p90");
    expect_close(val(&fx.out, "cpu,az=1,host=a,region=eu usage:max", T0), 32, 0, "rule 2");
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.states, 4 + 4); /* 4 groups, 4 usage series for rule 2 */
    fx_end(&fx);
}

static void forget_cb(void *ctx, int32_t slot, const rf_series_key *key)
{
    rf_aggregator_forget_series(ctx, slot, key);
}

/* Series lifecycle: an expired series' open windows are emitted at once, its
 * ungrouped state is reused by the next series in its slot, which starts
 * from nothing (no value, count or carry of the old one), and a group whose
 * key-text series left goes on with the next one, its windows exact. */
static void test_expire_and_reuse(void **state)
{
    (void)state;
    static const char *const fns[] = {"max", "count", NULL};
    static const char *const sum[] = {"sum", NULL};
    fixture fx;
    fx_init(&fx, 2);
    fx.rules[0] = rule("cpu", "*", 60 * S, fns);
    fx.rules[1] = rule("cpu", "*", 60 * S, sum);
    strcpy(fx.rules[1].group_by[0], "region");
    fx.rules[1].n_group_by = 1;
    fx.cfg.n_rules = 2;
    fx.cfg.max_states = 3; /* a, b, the group: c gets in only in a's state */
    fx_start(&fx);
    rf_series_table_set_now(fx.t, 0);
    uint64_t a = def(fx.t, "cpu,host=a,region=eu usage");
    uint64_t b = def(fx.t, "cpu,host=b,region=eu usage");
    push(fx.a, a, T0 + 1 * S, 5, RF_KIND_GAUGE);
    push(fx.a, b, T0 + 2 * S, 7, RF_KIND_GAUGE);
    push(fx.a, a, T0 + 3 * S, 3, RF_KIND_GAUGE_DELTA); /* a's carry: 5 + 3 */
    rf_series_table_set_now(fx.t, 100);
    assert_int_equal(rf_series_table_find_touch(fx.t, b), 1);
    assert_int_equal(rf_series_table_expire(fx.t, 50, 2, forget_cb, fx.a), 1); /* a only */
    /* a's window is out before its slot is reused. */
    expect_close(val(&fx.out, "cpu,host=a,region=eu usage:max", T0), 8, 0, "a max");
    uint64_t c = def(fx.t, "cpu,host=c,region=eu usage");
    assert_int_equal(rf_series_table_find(fx.t, c), 0); /* a's slot */
    push(fx.a, c, T0 + 4 * S, 2, RF_KIND_GAUGE_DELTA);  /* no carry from a: 0 + 2 */
    push(fx.a, b, T0 + 5 * S, 1, RF_KIND_GAUGE);
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "cpu,host=c,region=eu usage:max", T0), 2, 0, "c max");
    expect_close(val(&fx.out, "cpu,host=c,region=eu usage:count", T0), 1, 0, "c count");
    expect_close(val(&fx.out, "cpu,host=a,region=eu usage:count", T0), 2, 0, "a count");
    expect_close(val(&fx.out, "cpu,host=b,region=eu usage:max", T0), 7, 0, "b max");
    /* The group's window: a's part (sent when a left) and b's and c's. */
    expect_close(val(&fx.out, "cpu,region=eu usage:sum", T0), 5 + 8 + 7 + 2 + 1, 0, "eu sum");
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.states, 2 + 1); /* b and c (in a's state), one group */
    assert_int_equal(st.states_full, 0);
    /* The group's last series go: its state goes with them, and a new
     * group and series fit in max_states again. */
    rf_series_table_set_now(fx.t, 1000);
    assert_int_equal(rf_series_table_expire(fx.t, 50, 2, forget_cb, fx.a), 2);
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.states, 0);
    uint64_t d = def(fx.t, "cpu,host=d,region=ap usage");
    uint64_t e = def(fx.t, "cpu,host=e,region=ap usage");
    push(fx.a, d, T0 + 70 * S, 4, RF_KIND_GAUGE);
    push(fx.a, e, T0 + 71 * S, 6, RF_KIND_GAUGE);
    rf_aggregator_flush(fx.a);
    expect_close(val(&fx.out, "cpu,region=ap usage:sum", T0 + 60 * S), 10, 0, "ap sum");
    expect_close(val(&fx.out, "cpu,host=e,region=ap usage:max", T0 + 60 * S), 6, 0, "e max");
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.states, 2 + 1); /* d, e and the group ap, in the freed states */
    assert_int_equal(st.states_full, 0);
    fx_end(&fx);
}

static void test_tick_and_sweep(void **state)
{
    (void)state;
    fixture fx;
    fx_start_idle_close(&fx, 8192);
    uint64_t id = def(fx.t, "idle v");
    push(fx.a, id, T0 + 5 * S, 1, RF_KIND_GAUGE);
    /* The tick takes monotonic time, unrelated to event time: the first tick
     * that sees the watermark at T0+5 starts its idle time. */
    const int64_t M0 = 777 * S;
    rf_aggregator_tick(fx.a, M0);
    rf_aggregator_tick(fx.a,
                       M0 + 8 * S - 1); /* T0+5 + 8 s idle: end + lateness + grace not reached */
    assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE), 0);
    rf_aggregator_tick(fx.a, M0 + 8 * S);
    expect_close(val(&fx.out, "idle v:count", T0), 1, 0, "idle close");
    push(fx.a, id, T0 + 9 * S, 1, RF_KIND_GAUGE); /* its window was closed by the tick */
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.late_dropped, 1);

    /* Many idle states: the sweep closes them over several calls. */
    enum {
        N = 5000
    };
    uint64_t ids[N];
    char buf[64];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "many,i=%d v", i);
        ids[i] = def(fx.t, buf);
        push(fx.a, ids[i], T0 + 100 * S + i, 1, RF_KIND_GAUGE);
    }
    size_t before = count_kind(&fx.out, RF_KIND_AGGREGATE);
    push(fx.a, ids[0], T0 + 125 * S, 1, RF_KIND_GAUGE); /* close_wm 123: w[100,110) closes */
    for (int i = 0; i < 10; i++)
        rf_aggregator_process(fx.a, NULL, 0);
    assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE) - before, N);
    for (int i = 0; i < N; i += 499) {
        snprintf(buf, sizeof(buf), "many,i=%d v:count", i);
        expect_close(val(&fx.out, buf, T0 + 100 * S), 1, 0, "swept");
    }
    fx_end(&fx);
}

/* ---- wall-clock steps ---------------------------------------------------- */

/* A simulated host: real time (what the clients' clocks read), the daemon's
 * monotonic clock and its wall clock, real + step. As stages/pipeline/pipeline.c does,
 * the aggregator is ticked every 100 ms, with monotonic time only. Events
 * with a client timestamp carry real time; events stamped at receipt carry
 * the daemon's wall clock. */
typedef struct host {
    int64_t real, mono, step;
} host;

/* Records, per window start, the step at which its aggregate first came out. */
static void note_first(const cap *c, const char *text, const int64_t *starts, int *first, int n,
                       int k)
{
    for (int i = 0; i < n; i++)
        if (first[i] < 0 && find_agg(c, text, starts[i]))
            first[i] = k;
}

/* Step k of the simulation: 100 ms pass and the aggregator is ticked; what
 * came out of text's windows by the events of step k (before the tick) or
 * by the tick is noted as first seen at step k. */
static void host_advance(fixture *fx, host *h, const char *text, const int64_t *starts, int *first,
                         int n, int k)
{
    note_first(&fx->out, text, starts, first, n, k);
    h->real += S / 10;
    h->mono += S / 10;
    rf_aggregator_tick(fx->a, h->mono);
    note_first(&fx->out, text, starts, first, n, k);
}

/* Client timestamps, the daemon's wall clock 1 h ahead from 10 s, 1 h behind
 * from 20 s, the clients silent from 30 s: every window holds exactly its
 * events, closes when the watermark (or, once idle, monotonic time) passes
 * end + lateness (+ grace), and nothing is late. With the wall-clock idle
 * sweep this test replaces, the step ahead closed every open window at once
 * (then dropped the rest of their events as late) and the step behind held
 * the last window open for an hour. */
static void test_wall_step_client_time(void **state)
{
    (void)state;
    fixture fx;
    fx_start_idle_close(&fx, 16);
    uint64_t busy = def(fx.t, "c,h=busy v"), sparse = def(fx.t, "c,h=sparse v");
    host h = {T0, 500 * S, 0};
    const int64_t starts[3] = {T0, T0 + 10 * S, T0 + 20 * S};
    int first[3] = {-1, -1, -1};
    for (int k = 0; k < 450; k++) {
        if (k == 100)
            h.step = 3600 * S;
        if (k == 200)
            h.step = -3600 * S;
        if (k < 300)
            push(fx.a, busy, h.real, 1, RF_KIND_GAUGE);
        if (k < 300 && k % 70 == 0)
            push(fx.a, sparse, h.real, 1, RF_KIND_GAUGE);
        host_advance(&fx, &h, "c,h=busy v:count", starts, first, 3, k);
    }
    /* [0,10) and [10,20) close by the watermark (event at end + lateness);
     * [20,30) by the idle tick: the watermark stood at 29.9 s from the tick at
     * mono +30.0 s, so at +33.1 s (29.9 + 3.1 >= 30 + 2 + 1), step 330. */
    assert_int_equal(first[0], 120);
    assert_int_equal(first[1], 220);
    assert_int_equal(first[2], 330);
    for (int i = 0; i < 3; i++)
        expect_close(val(&fx.out, "c,h=busy v:count", starts[i]), 100, 0, "busy window");
    expect_close(val(&fx.out, "c,h=sparse v:count", T0), 2, 0, "sparse 0, 7");
    expect_close(val(&fx.out, "c,h=sparse v:count", T0 + 10 * S), 1, 0, "sparse 14");
    expect_close(val(&fx.out, "c,h=sparse v:count", T0 + 20 * S), 2, 0, "sparse 21, 28");
    assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE), 6); /* nothing spurious */
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.late_dropped, 0);
    assert_int_equal(st.late_applied, 0);
    assert_int_equal(st.early_closes, 0);
    fx_end(&fx);
}

/* Events stamped at receipt carry the wall clock, so a step moves their
 * event time with it. Ahead (+1 h at 15 s): the open window [10,20) closes
 * by the watermark when the first event of the new hour arrives, with the
 * 50 events it had; no window in between comes out. Back (to real time at
 * 30 s): later events are an hour behind the watermark, beyond lateness,
 * and counted late_dropped (not lost silently) until real time catches up;
 * the idle close of [3620,3630) is not held up by them. This is the caveat
 * docs/RELIABILITY.md states. */
static void test_wall_step_receipt_time(void **state)
{
    (void)state;
    fixture fx;
    fx_start_idle_close(&fx, 16);
    uint64_t id = def(fx.t, "r v");
    host h = {T0, 900 * S, 0};
    const int64_t H = 3600 * S;
    const int64_t starts[4] = {T0, T0 + 10 * S, T0 + H + 10 * S, T0 + H + 20 * S};
    int first[4] = {-1, -1, -1, -1};
    for (int k = 0; k < 600; k++) {
        if (k == 150)
            h.step = H;
        if (k == 300)
            h.step = 0;
        if (k < 450)
            push(fx.a, id, h.real + h.step, 1, RF_KIND_GAUGE);
        host_advance(&fx, &h, "r v:count", starts, first, 4, k);
    }
    assert_int_equal(first[0], 120);
    assert_int_equal(first[1], 150); /* the first event of the new hour */
    assert_int_equal(first[2], 220); /* by the watermark: an event at 3622 s */
    assert_int_equal(first[3], 330); /* idle since the tick at 30.0 s */
    expect_close(val(&fx.out, "r v:count", starts[0]), 100, 0, "[0,10)");
    expect_close(val(&fx.out, "r v:count", starts[1]), 50, 0, "[10,20) up to the step");
    expect_close(val(&fx.out, "r v:count", starts[2]), 50, 0, "[3610,3620)");
    expect_close(val(&fx.out, "r v:count", starts[3]), 100, 0, "[3620,3630)");
    assert_int_equal(count_kind(&fx.out, RF_KIND_AGGREGATE), 4);
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.late_dropped, 150);
    assert_int_equal(st.applied + st.late_dropped, 450);
    fx_end(&fx);
}

static void test_limits(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", "p50", NULL};
    fixture fx;
    fx_init_rule(&fx, 16, "*", "*", 10 * S, fns);
    fx.cfg.max_states = 2;
    fx.cfg.max_sketches = 1;
    fx_start(&fx);
    uint64_t a = def(fx.t, "x,i=1 v"), b = def(fx.t, "x,i=2 v"), c = def(fx.t, "x,i=3 v");
    push(fx.a, a, T0, 1, RF_KIND_TIMER);
    push(fx.a, b, T0, 1, RF_KIND_TIMER);
    push(fx.a, c, T0, 1, RF_KIND_TIMER);
    rf_aggregator_flush(fx.a);
    rf_agg_stats st;
    rf_aggregator_stats_read(fx.a, &st);
    assert_int_equal(st.states_full, 1);
    assert_int_equal(st.sketch_pool_empty, 1);
    assert_non_null(find_agg(&fx.out, "x,i=1 v:p50", T0));
    assert_null(find_agg(&fx.out, "x,i=2 v:p50", T0)); /* no sketch: left out */
    assert_non_null(find_agg(&fx.out, "x,i=2 v:count", T0));
    assert_null(find_agg(&fx.out, "x,i=3 v:count", T0)); /* no state */
    assert_true(rf_aggregator_state_bytes() <= 128);
    assert_true(rf_aggregator_memory_in_use(fx.a) > 0);
    fx_end(&fx);

    /* bad configurations */
    rf_err err;
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg);
    rf_series_table *t = rf_series_table_new(4);
    assert_null(rf_aggregator_new(&cfg, t, (rf_emitter){0}, &err)); /* no rules */
    rf_agg_rule r = rule("*", "*", 0, fns);
    cfg.rules = &r;
    cfg.n_rules = 1;
    assert_null(rf_aggregator_new(&cfg, t, (rf_emitter){0}, &err));
    assert_non_null(strstr(err.msg, "window"));
    rf_series_table_free(t);
    rf_agg_func f;
    assert_int_equal(rf_agg_func_parse("p999", &f), 0);
    assert_true(f.fn == RF_AGG_QUANTILE && fabs(f.q - 0.999) < 1e-12);
    assert_int_equal(rf_agg_func_parse("p99.9", &f), 0);
    assert_true(fabs(f.q - 0.999) < 1e-12);
    char nb[24];
    assert_string_equal(rf_agg_func_name(&f, nb, sizeof(nb)), "p99.9");
    assert_int_equal(rf_agg_func_parse("mean", &f), 0);
    assert_string_equal(rf_agg_func_name(&f, nb, sizeof(nb)), "avg");
    assert_int_equal(rf_agg_func_parse("median", &f), -EINVAL);
    assert_int_equal(rf_agg_func_parse("p", &f), -EINVAL);
    assert_int_equal(rf_agg_func_parse("p1x", &f), -EINVAL);
}

static void test_config(void **state)
{
    (void)state;
    static const char yaml[] = "pipeline:\n"
                               "  aggregation:\n"
                               "    allowed_lateness: 2s\n"
                               "    late_events: current\n"
                               "    sketch_bins: 1024\n"
                               "  aggregations:\n"
                               "    - measurement: cpu\n"
                               "      window: 1m\n"
                               "      functions: [avg, max, p99, mean2]\n";
    rf_cfg_doc *doc;
    rf_err err;
    rf_agg_config cfg;
    assert_int_equal(rf_cfg_load_string(yaml, sizeof(yaml) - 1, "t.yaml", &doc, &err), 0);
    const rf_cfg_node *p;
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "pipeline", &p, &err), 0);
    assert_int_equal(rf_aggregate_config_parse(p, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "t.yaml:9:"));
    assert_non_null(strstr(err.msg, "mean2"));
    assert_non_null(strstr(err.msg, "accepted: count, sum"));
    rf_cfg_free(doc);

    static const char ok[] = "pipeline:\n"
                             "  aggregation:\n"
                             "    allowed_lateness: 2s\n"
                             "    late_events: current\n"
                             "  aggregations:\n"
                             "    - measurement: cpu\n"
                             "      field: usage\n"
                             "      window: 1m\n"
                             "      functions: [avg, max, p99]\n"
                             "      group_by: [region]\n"
                             "    - measurement: '*'\n"
                             "      window: 10s\n"
                             "      functions: [count]\n";
    assert_int_equal(rf_cfg_load_string(ok, sizeof(ok) - 1, "ok.yaml", &doc, &err), 0);
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "pipeline", &p, &err), 0);
    if (rf_aggregate_config_parse(p, &cfg, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    assert_int_equal(cfg.n_rules, 2);
    assert_int_equal(cfg.allowed_lateness_ns, 2 * S);
    assert_int_equal(cfg.late_policy, RF_AGG_LATE_CURRENT);
    assert_int_equal(cfg.rules[0].window_ns, 60 * S);
    assert_int_equal(cfg.rules[0].n_funcs, 3);
    assert_int_equal(cfg.rules[0].funcs[2].fn, RF_AGG_QUANTILE);
    assert_string_equal(cfg.rules[0].group_by[0], "region");
    assert_string_equal(cfg.rules[1].field, "*");
    rf_series_table *t = rf_series_table_new(4);
    rf_aggregator *a = rf_aggregator_new(&cfg, t, (rf_emitter){0}, &err);
    assert_non_null(a);
    rf_aggregator_free(a);
    rf_series_table_free(t);
    rf_agg_config_release(&cfg);
    rf_cfg_free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_functions_reference),
        cmocka_unit_test(test_boundaries_and_ids),
        cmocka_unit_test(test_windows_at_the_ends_of_time),
        cmocka_unit_test(test_lateness),
        cmocka_unit_test(test_pending_full),
        cmocka_unit_test(test_counter_resets),
        cmocka_unit_test(test_statsd),
        cmocka_unit_test(test_group_by),
        cmocka_unit_test(test_expire_and_reuse),
        cmocka_unit_test(test_tick_and_sweep),
        cmocka_unit_test(test_wall_step_client_time),
        cmocka_unit_test(test_wall_step_receipt_time),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
