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
 *   stages/correlate/pattern_shards/S  the pattern case over 65,536 series on S
 *                               in-process shards (one core): each batch split by
 *                               series owner, every shard's correlator processes
 *                               its part, then the peer messages are received
 *                               (rf_correlator_receive) by the keys' owners;
 *                               S = 1 is the same harness without messages
 *   stages/correlate/id_shards/S       the same with the id case
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
#define RUN_BATCHES(s, f, call)                                                                    \
    do {                                                                                           \
        uint32_t off = 0;                                                                          \
        int64_t batches = 0;                                                                       \
        while (rf_bench_keep_running(s)) {                                                         \
            rf_event *ev = &(f)->events[off];                                                      \
            const int32_t *sl = &(f)->slots[off];                                                  \
            call;                                                                                  \
            off = (off + BATCH) & (RING_EVENTS - 1);                                               \
            batches++;                                                                             \
        }                                                                                          \
        rf_bench_set_items_processed(s, batches *(int64_t)BATCH);                                  \
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
        {.pattern = "telemetry.*.errors.value",
         .sinks = s2,
         .n_sinks = 1,
         .cls = RF_ROUTE_CRITICAL},
        {.pattern = "telemetry.*.disk.*", .sinks = s1, .n_sinks = 2},
        {.pattern = "alert.>", .sinks = s2, .n_sinks = 1, .cls = RF_ROUTE_CRITICAL},
        {.pattern = "health.>", .sinks = s1, .n_sinks = 1},
    };
    rf_router_config cfg = {.routes = routes,
                            .n_routes = 8,
                            .sink_names = sinks,
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
        {.name = "burst",
         .type = RF_CORR_BURST,
         .key_tag = "host",
         .within_ns = 50000000,
         .count = 4},
        {.name = "seq", .type = RF_CORR_SEQUENCE, .key_tag = "dc", .within_ns = 10000000},
    };
    pats[1].a.field = "failed";
    pats[1].b.field = "ok";
    rf_correlator_config cfg = {
        .patterns = pats, .n_patterns = patterns ? 2 : 0, .id_capacity = 10000};
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

/* The in-bench transport of the shards benchmarks: a queue per shard. */
#define SH_MAX 4u
#define SH_Q (BATCH * 4u)
typedef struct shard_mesh {
    rf_event q[SH_MAX][SH_Q];
    uint32_t qn[SH_MAX];
} shard_mesh;

static void mesh_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    shard_mesh *m = ctx;
    if (m->qn[to] + n > SH_Q)
        abort(); /* at most 2 messages per event of a batch */
    memcpy(&m->q[to][m->qn[to]], ev, n * sizeof(*ev));
    m->qn[to] += n;
}

static void bm_correlate_shards(rf_bench_state *s, bool patterns)
{
    const uint32_t shards = (uint32_t)rf_bench_arg(s, 0);
    fixture *f = fixture_get(65536);
    uint64_t emitted = 0;
    rf_corr_pattern_config pats[2] = {
        {.name = "burst",
         .type = RF_CORR_BURST,
         .key_tag = "host",
         .within_ns = 50000000,
         .count = 4},
        {.name = "seq", .type = RF_CORR_SEQUENCE, .key_tag = "dc", .within_ns = 10000000},
    };
    pats[1].a.field = "failed";
    pats[1].b.field = "ok";
    rf_correlator_config cfg = {
        .patterns = pats, .n_patterns = patterns ? 2 : 0, .id_capacity = 10000};
    static shard_mesh mesh;
    memset(mesh.qn, 0, sizeof(mesh.qn));
    rf_correlator *c[SH_MAX] = {0};
    rf_err err;
    for (uint32_t k = 0; k < shards; k++) {
        if (rf_correlator_new(&cfg, f->n, (rf_emitter){sink_emit, &emitted}, &c[k], &err) != 0 ||
            rf_correlator_set_peers(c[k], mesh_send, &mesh, k, shards, &err) != 0) {
            rf_bench_skip_with_error(s, err.msg);
            return;
        }
        for (uint32_t i = 0; i < f->n; i++)
            if (rf_event_owner(f->keys[i]->series_id, shards) == k)
                rf_correlator_define(c[k], (int32_t)i, f->keys[i]);
    }
    if (patterns)
        for (uint32_t i = 0; i < RING_EVENTS; i++)
            f->events[i].aux = f->events[i].correlation_id, f->events[i].correlation_id = 0;
    /* Each event's shard, computed once (the engine's dispatch does this
     * before the pipeline; it is not the correlator's cost). */
    static uint8_t owner[RING_EVENTS];
    for (uint32_t i = 0; i < RING_EVENTS; i++)
        owner[i] = (uint8_t)rf_event_owner(f->events[i].series_id, shards);
    rf_event part[SH_MAX][BATCH];
    int32_t pslot[SH_MAX][BATCH];
    RUN_BATCHES(s, f, {
        uint32_t pn[SH_MAX] = {0};
        const uint32_t base = (uint32_t)(ev - f->events);
        for (uint32_t i = 0; i < BATCH; i++) {
            uint32_t o = owner[base + i];
            part[o][pn[o]] = ev[i];
            pslot[o][pn[o]++] = sl[i];
        }
        for (uint32_t k = 0; k < shards; k++)
            if (pn[k])
                rf_correlator_process(c[k], part[k], pslot[k], pn[k]);
        for (uint32_t k = 0; k < shards; k++) {
            for (uint32_t i = 0; i < mesh.qn[k]; i++)
                rf_correlator_receive(c[k], &mesh.q[k][i]);
            mesh.qn[k] = 0;
        }
    });
    if (patterns)
        for (uint32_t i = 0; i < RING_EVENTS; i++)
            f->events[i].correlation_id = f->events[i].aux, f->events[i].aux = 0;
    uint64_t fwd = 0;
    for (uint32_t k = 0; k < shards; k++) {
        rf_correlator_stats st;
        rf_correlator_stats_read(c[k], &st);
        fwd += st.forwarded;
        rf_correlator_free(c[k]);
    }
    rf_bench_counter(s, "emitted", (double)emitted, true);
    rf_bench_counter(s, "forwarded", (double)fwd, true);
}

static void bm_correlate_pattern_shards(rf_bench_state *s)
{
    bm_correlate_shards(s, true);
}

static void bm_correlate_id_shards(rf_bench_state *s)
{
    bm_correlate_shards(s, false);
}

static void bm_alert(rf_bench_state *s, enum rf_alert_type type)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    uint64_t emitted = 0;
    rf_alert_rule_config rule = {.name = "r",
                                 .type = type,
                                 .op = RF_CMP_GT,
                                 .fire = 90,
                                 .resolve = 80,
                                 .has_resolve = true,
                                 .for_ns = 2000000,
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
    static const int64_t shards[] = {1, 2, 4};
    rf_bench_register_args("stages/correlate/pattern_shards", bm_correlate_pattern_shards, shards,
                           3);
    rf_bench_register_args("stages/correlate/id_shards", bm_correlate_id_shards, shards, 3);
    rf_bench_register_args("stages/alert/threshold", bm_alert_threshold, series, 3);
    rf_bench_register_args("stages/alert/rate", bm_alert_rate, series, 3);
}
