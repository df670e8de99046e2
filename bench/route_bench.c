/* Per-core throughput of routing, correlation and alert rules.
 *
 * Each benchmark processes batches of 256 events spread at random over N
 * series (the argument), the way a worker hands a polled batch to a stage.
 * Setup (series keys, definitions, route/rule resolution) is built once per
 * N and kept across Google Benchmark's repeated calls; only the per-event
 * path is timed. items_per_second is events per second on one core.
 *
 *   stages/route/cached/N       rf_router_route_batch, 8 routes, per-slot cache hit
 *   stages/correlate/id/N       rf_correlator_process, every event has one of
 *                               N/4 correlation ids (10,000-entry table: churn)
 *   stages/correlate/pattern/N  every event bound to a burst and a sequence pattern
 *   stages/alert/threshold/N    one threshold rule (for + hysteresis) on every series
 *   stages/alert/rate/N         one rate-of-change rule on every series
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/shim/bench_shim.h"
#include "stages/alert/alert.h"
#include "stages/correlate/correlate.h"
#include "stages/route/route.h"

#define BATCH 256u
#define RING_EVENTS (1u << 16) /* pre-generated events, cycled */

typedef struct fixture {
    uint32_t n;
    rf_series_key **keys;
    int32_t *slots;   /* RING_EVENTS slots */
    rf_event *events; /* RING_EVENTS events */
} fixture;

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static fixture *fixture_get(uint32_t n)
{
    static fixture *cache[8];
    static uint32_t cache_n[8];
    for (int i = 0; i < 8; i++) {
        if (cache[i] && cache_n[i] == n)
            return cache[i];
    }
    fixture *f = calloc(1, sizeof(*f));
    f->n = n;
    f->keys = calloc(n, sizeof(*f->keys));
    static const char *const meas[] = {"cpu", "mem", "disk", "net", "errors", "auth"};
    for (uint32_t i = 0; i < n; i++) {
        char text[128];
        const char *m = meas[i % 6];
        const char *field = (i % 6 == 5) ? ((i / 6) % 2 ? "ok" : "failed") : "value";
        /* 1024 hosts whatever N: pattern keys stay realistic (the id tag makes keys unique). */
        int len = snprintf(text, sizeof(text), "%s,dc=eu%u,host=h%u,id=%u %s", m, i % 4,
                           (i / 6) % 1024, i, field);
        f->keys[i] = rf_series_key_new(text, (size_t)len, strlen(m), (size_t)len - strlen(field));
    }
    f->slots = malloc(RING_EVENTS * sizeof(int32_t));
    f->events = calloc(RING_EVENTS, sizeof(rf_event));
    uint64_t x = 88172645463325252ull;
    for (uint32_t i = 0; i < RING_EVENTS; i++) {
        uint32_t s = (uint32_t)(rng(&x) % n);
        f->slots[i] = (int32_t)s;
        rf_event *e = &f->events[i];
        e->series_id = f->keys[s]->series_id;
        e->event_time_ns = (int64_t)i * 1000000; /* 1 ms apart */
        e->recv_time_ns = (int64_t)i * 1000000;
        e->value.f64 = (double)(rng(&x) % 100);
        e->value_type = RF_VALUE_F64;
        e->sample_rate = 1.0f;
        e->correlation_id = rng(&x) % (n / 4 + 1) + 1;
    }
    for (int i = 0; i < 8; i++) {
        if (!cache[i]) {
            cache[i] = f;
            cache_n[i] = n;
            break;
        }
    }
    return f;
}

/* Runs `fn` over batches of the fixture's events until the benchmark stops. */
#define RUN_BATCHES(s, f, call)                                                   \
    do {                                                                          \
        uint32_t off = 0;                                                         \
        int64_t batches = 0;                                                      \
        while (rf_bench_keep_running(s)) {                                        \
            rf_event *ev = &(f)->events[off];                                     \
            const int32_t *sl = &(f)->slots[off];                                 \
            call;                                                                 \
            off = (off + BATCH) & (RING_EVENTS - 1);                              \
            batches++;                                                            \
        }                                                                         \
        rf_bench_set_items_processed(s, batches * (int64_t)BATCH);                \
    } while (0)

static void bm_route(rf_bench_state *s)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    static const char *const sinks[] = {"store", "json", "fwd", "pager"};
    static const char *const s0[] = {"store"};
    static const char *const s1[] = {"json", "fwd"};
    static const char *const s2[] = {"pager"};
    rf_route_config routes[] = {
        {.pattern = "telemetry.>", .sinks = s0, .n_sinks = 1},
        {.pattern = "telemetry.*.cpu.*", .sinks = s1, .n_sinks = 2},
        {.pattern = "telemetry.*.mem.>", .sinks = s1, .n_sinks = 1},
        {.pattern = "telemetry.h1.*.*", .sinks = s2, .n_sinks = 1, .cls = RF_ROUTE_CRITICAL},
        {.pattern = "telemetry.*.errors.value", .sinks = s2, .n_sinks = 1,
         .cls = RF_ROUTE_CRITICAL},
        {.pattern = "telemetry.*.disk.*", .sinks = s1, .n_sinks = 2},
        {.pattern = "alert.>", .sinks = s2, .n_sinks = 1, .cls = RF_ROUTE_CRITICAL},
        {.pattern = "health.>", .sinks = s1, .n_sinks = 1},
    };
    rf_router_config cfg = {.routes = routes, .n_routes = 8, .sink_names = sinks,
                            .n_sink_names = 4,
                            .data_template = "telemetry.{host}.{measurement}.{field}"};
    rf_router *r;
    rf_err err;
    if (rf_router_new(&cfg, f->n, &r, &err) != 0) {
        rf_bench_skip_with_error(s, err.msg);
        return;
    }
    for (uint32_t i = 0; i < f->n; i++)
        rf_router_define(r, (int32_t)i, f->keys[i]);
    uint64_t critical = 0;
    RUN_BATCHES(s, f, critical += rf_router_route_batch(r, ev, sl, BATCH));
    rf_bench_do_not_optimize(&critical);
    rf_router_stats st;
    rf_router_stats_read(r, &st);
    rf_bench_counter(s, "route_sets", st.sets, false);
    rf_router_free(r);
}

static void sink_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    (void)ev;
    *(uint64_t *)ctx += n;
}

static void bm_correlate(rf_bench_state *s, bool patterns)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    uint64_t emitted = 0;
    rf_corr_pattern_config pats[2] = {
        {.name = "burst", .type = RF_CORR_BURST, .key_tag = "host", .within_ns = 50000000,
         .count = 4},
        {.name = "seq", .type = RF_CORR_SEQUENCE, .key_tag = "dc", .within_ns = 10000000},
    };
    pats[1].a.field = "failed";
    pats[1].b.field = "ok";
    rf_correlator_config cfg = {.patterns = pats, .n_patterns = patterns ? 2 : 0,
                                .id_capacity = 10000};
    rf_correlator *c;
    rf_err err;
    if (rf_correlator_new(&cfg, f->n, (rf_emitter){sink_emit, &emitted}, &c, &err) != 0) {
        rf_bench_skip_with_error(s, err.msg);
        return;
    }
    for (uint32_t i = 0; i < f->n; i++)
        rf_correlator_define(c, (int32_t)i, f->keys[i]);
    if (patterns) {
        /* Pattern path only: clear the ids (restored below; the fixture is shared). */
        for (uint32_t i = 0; i < RING_EVENTS; i++)
            f->events[i].aux = f->events[i].correlation_id, f->events[i].correlation_id = 0;
    }
    RUN_BATCHES(s, f, rf_correlator_process(c, ev, sl, BATCH));
    if (patterns) {
        for (uint32_t i = 0; i < RING_EVENTS; i++)
            f->events[i].correlation_id = f->events[i].aux, f->events[i].aux = 0;
    }
    rf_correlator_stats st;
    rf_correlator_stats_read(c, &st);
    rf_bench_counter(s, "emitted", (double)emitted, true);
    rf_bench_counter(s, "evicted", (double)st.evicted_capacity, true);
    rf_correlator_free(c);
}

static void bm_correlate_id(rf_bench_state *s)
{
    bm_correlate(s, false);
}

static void bm_correlate_pattern(rf_bench_state *s)
{
    bm_correlate(s, true);
}

static void bm_alert(rf_bench_state *s, enum rf_alert_type type)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    uint64_t emitted = 0;
    rf_alert_rule_config rule = {.name = "r", .type = type, .op = RF_CMP_GT, .fire = 90,
                                 .resolve = 80, .has_resolve = true, .for_ns = 2000000,
                                 .window_ns = 100000000};
    rf_alerts_config cfg = {.rules = &rule, .n_rules = 1};
    rf_alerts *a;
    rf_err err;
    if (rf_alerts_new(&cfg, f->n, (rf_emitter){sink_emit, &emitted}, &a, &err) != 0) {
        rf_bench_skip_with_error(s, err.msg);
        return;
    }
    for (uint32_t i = 0; i < f->n; i++)
        rf_alerts_define(a, (int32_t)i, f->keys[i]);
    RUN_BATCHES(s, f, rf_alerts_process(a, ev, sl, BATCH));
    rf_bench_counter(s, "alerts", (double)emitted, true);
    rf_alerts_free(a);
}

static void bm_alert_threshold(rf_bench_state *s)
{
    bm_alert(s, RF_ALERT_THRESHOLD);
}

static void bm_alert_rate(rf_bench_state *s)
{
    bm_alert(s, RF_ALERT_RATE);
}

RF_BENCH_REGISTER(route_benchmarks)
{
    static const int64_t series[] = {1024, 65536, 1048576};
    rf_bench_register_args("stages/route/cached", bm_route, series, 3);
    rf_bench_register_args("stages/correlate/id", bm_correlate_id, series, 3);
    rf_bench_register_args("stages/correlate/pattern", bm_correlate_pattern, series, 3);
    rf_bench_register_args("stages/alert/threshold", bm_alert_threshold, series, 3);
    rf_bench_register_args("stages/alert/rate", bm_alert_rate, series, 3);
}
