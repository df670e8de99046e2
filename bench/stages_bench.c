/* Stage micro-benchmarks: batching, aggregation (small and 1 M active
 * series, with memory per series), quantile rules, group-by, the sketches and
 * the series table. Events per second per core = items_per_second.
 *
 * Aggregation inputs are pre-generated: series in a random order, event time
 * advancing 1 us per event, so a 10 s window closes every 10 M events and the
 * emission of every state's aggregates is part of what is measured. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/shim/bench_shim.h"
#include "stages/aggregate/aggregate.h"
#include "stages/batch/batch.h"
#include "stages/series/series_table.h"
#include "stages/sketch/sketch.h"

#define NS_S 1000000000LL
#define BT0 (1699999200LL * NS_S)
#define BURST 256u
#define NEVENTS (1u << 22)

static uint64_t brng = 7;
static uint64_t bnext(void)
{
    uint64_t z = (brng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double bexp_normal(void)
{
    double u1 = ((double)(bnext() >> 11) + 0.5) / 9007199254740992.0;
    double u2 = ((double)(bnext() >> 11) + 0.5) / 9007199254740992.0;
    return exp(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

static uint64_t emitted;
static void count_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    (void)ctx;
    emitted += n;
    for (uint32_t i = 0; i < n; i++)
        if (ev[i].kind == RF_KIND_SERIES_DEF)
            rf_series_key_free((rf_series_key *)(uintptr_t)ev[i].aux);
}

/* ---- batching ------------------------------------------------------------ */

static void bm_batch(rf_bench_state *s)
{
    rf_batcher_config cfg = {.max_events = (uint32_t)rf_bench_arg(s, 0), .interval_ns = NS_S};
    rf_batcher *b = rf_batcher_new(&cfg, (rf_emitter){count_emit, NULL});
    static rf_event evs[32];
    int64_t now = 0;
    uint64_t items = 0;
    while (rf_bench_keep_running(s)) {
        rf_batcher_push(b, evs, 32, now);
        now += 100;
        items += 32;
        if ((items & 1023) == 0)
            rf_batcher_tick(b, now);
    }
    rf_batcher_flush(b, now);
    rf_bench_set_items_processed(s, (int64_t)items);
    rf_batcher_free(b);
}

/* ---- aggregation ---------------------------------------------------------- */

typedef struct agg_fixture {
    int64_t series;
    int kind; /* 0 plain, 1 quantile, 2 group-by */
    rf_series_table *t;
    rf_aggregator *a;
    rf_event *ev; /* NEVENTS pre-generated events */
    uint64_t pos; /* next event index (wraps) */
    int64_t time;
    int64_t step; /* event-time ns between consecutive events */
} agg_fixture;

static agg_fixture fixtures[8];

static agg_fixture *agg_setup(int64_t series, int kind)
{
    for (int i = 0; i < 8; i++)
        if (fixtures[i].t && fixtures[i].series == series && fixtures[i].kind == kind)
            return &fixtures[i];
    agg_fixture *f = NULL;
    for (int i = 0; i < 8 && !f; i++)
        if (!fixtures[i].t)
            f = &fixtures[i];
    if (!f)
        return NULL;
    f->series = series;
    f->kind = kind;
    f->t = rf_series_table_new((uint32_t)series);
    uint64_t *ids = malloc((size_t)series * sizeof(uint64_t));
    char buf[96];
    for (int64_t i = 0; i < series; i++) {
        int n = snprintf(buf, sizeof(buf), "cpu,host=h%07lld,region=r%lld usage_idle", (long long)i,
                         (long long)(i % 16));
        rf_series_key *k = rf_series_key_new(buf, (size_t)n, 3, (size_t)n - 10);
        ids[i] = k->series_id;
        rf_series_table_define(f->t, k);
    }
    static const char *const plain[] = {"count", "sum", "min", "max", "avg", NULL};
    static const char *const quant[] = {"count", "avg", "max", "p50", "p99", NULL};
    const char *const *fns = kind == 1 ? quant : plain;
    rf_agg_rule r;
    memset(&r, 0, sizeof(r));
    strcpy(r.measurement, "*");
    strcpy(r.field, "*");
    r.window_ns = 10 * NS_S;
    for (; *fns; fns++)
        rf_agg_func_parse(*fns, &r.funcs[r.n_funcs++]);
    if (kind == 2) {
        strcpy(r.group_by[0], "region");
        r.n_group_by = 1;
    }
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg);
    cfg.rules = &r;
    cfg.n_rules = 1;
    cfg.max_sketches = (uint32_t)(series < 65536 ? series : 65536);
    rf_err err;
    f->a = rf_aggregator_new(&cfg, f->t, (rf_emitter){count_emit, NULL}, &err);
    f->ev = aligned_alloc(64, NEVENTS * sizeof(rf_event));
    for (uint32_t i = 0; i < NEVENTS; i++) {
        rf_event *e = &f->ev[i];
        memset(e, 0, sizeof(*e));
        e->series_id = ids[bnext() % (uint64_t)series];
        e->value.f64 = kind == 1 ? bexp_normal() : (double)(bnext() % 1000) * 0.1;
        e->value_type = RF_VALUE_F64;
        e->kind = kind == 1 ? RF_KIND_TIMER : RF_KIND_GAUGE;
        e->sample_rate = 1.0f;
    }
    free(ids);
    f->time = BT0;
    f->step = 1000;
    return f;
}

/* Runs the pre-generated events through the aggregator; event times are
 * stamped as they go so they keep advancing across benchmark runs. */
static uint64_t agg_run(agg_fixture *f, uint64_t nevents)
{
    uint64_t done = 0;
    while (done < nevents) {
        rf_event *e = &f->ev[f->pos];
        for (uint32_t i = 0; i < BURST; i++)
            e[i].event_time_ns = (f->time += f->step);
        rf_aggregator_process(f->a, e, BURST);
        f->pos = (f->pos + BURST) & (NEVENTS - 1);
        done += BURST;
    }
    return done;
}

static void bm_aggregate(rf_bench_state *s, int kind)
{
    agg_fixture *f = agg_setup(rf_bench_arg(s, 0), kind);
    if (!f || !f->a) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    uint64_t items = 0;
    while (rf_bench_keep_running(s))
        items += agg_run(f, BURST * 16);
    rf_bench_set_items_processed(s, (int64_t)items);
    rf_agg_stats st;
    rf_aggregator_stats_read(f->a, &st);
    uint64_t series = rf_series_table_count(f->t);
    rf_bench_counter(s, "states", (double)st.states, false);
    rf_bench_counter(s, "state_B_per_series",
                     (double)rf_aggregator_memory_in_use(f->a) / (double)series, false);
}

static void bm_aggregate_plain(rf_bench_state *s)
{
    bm_aggregate(s, 0);
}
static void bm_aggregate_quantile(rf_bench_state *s)
{
    bm_aggregate(s, 1);
}
static void bm_aggregate_groupby(rf_bench_state *s)
{
    bm_aggregate(s, 2);
}

/* 1 M active series: every series is touched (states created) before the
 * timed loop, then memory in use per series is reported. The argument is the
 * event-time step per event: 1000 ns = 10 events per series per 10 s window
 * (window closes, i.e. 5 aggregates per state, are a large share of the
 * work), 100 ns = 100 events per series per window (the 1 M series x 10 M
 * events/s case; a window closes every 100 M events). */
static void bm_aggregate_1m(rf_bench_state *s)
{
    agg_fixture *f = agg_setup(1000000, 0);
    if (!f || !f->a) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    f->step = rf_bench_arg(s, 0);
    rf_agg_stats st;
    rf_aggregator_stats_read(f->a, &st);
    if (st.states < 900000)
        agg_run(f, NEVENTS); /* 4 M random events: > 98% of the series seen */
    uint64_t items = 0;
    while (rf_bench_keep_running(s))
        items += agg_run(f, BURST * 64);
    rf_bench_set_items_processed(s, (int64_t)items);
    rf_aggregator_stats_read(f->a, &st);
    rf_bench_counter(s, "states", (double)st.states, false);
    rf_bench_counter(s, "state_B_per_series",
                     (double)rf_aggregator_memory_in_use(f->a) / (double)st.states, false);
    rf_series_table_stats ts;
    rf_series_table_stats_read(f->t, &ts);
    rf_bench_counter(s, "series_table_B_per_series", (double)ts.bytes / (double)ts.count, false);
    rf_bench_counter(s, "windows_closed", (double)st.windows_emitted, false);
}

/* Group-by on N in-process shards (two-level aggregation): the group-by
 * stream of 100 k series (16 groups) split by rf_event_owner among N
 * aggregators, each with its own series table, joined by in-process queues
 * delivered after every burst, as the pipeline hands its peer messages back
 * after a pass. One core runs every shard: events/s is the total work, so
 * N shards against 1 shows what the partials, reports and merges cost on
 * top of the per-event work (a message per group, window and shard). */
#define GB_SERIES 100000
#define GB_MAX_SHARDS 4

typedef struct gb_mesh {
    uint32_t n;
    rf_series_table *t[GB_MAX_SHARDS];
    rf_aggregator *a[GB_MAX_SHARDS];
    rf_event *q[GB_MAX_SHARDS];
    uint32_t qn[GB_MAX_SHARDS], qcap[GB_MAX_SHARDS];
    rf_event *ev;    /* NEVENTS, series uniformly among GB_SERIES */
    uint32_t *owner; /* per event: its shard */
    uint64_t pos, msgs;
    int64_t time;
} gb_mesh;

static gb_mesh gb_meshes[GB_MAX_SHARDS + 1];

static void gb_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    gb_mesh *m = ctx;
    if (m->qn[to] + n > m->qcap[to]) {
        m->qcap[to] = (m->qn[to] + n) * 2;
        m->q[to] = realloc(m->q[to], m->qcap[to] * sizeof(rf_event));
    }
    memcpy(m->q[to] + m->qn[to], ev, n * sizeof(rf_event));
    m->qn[to] += n;
    m->msgs += n;
}

static void gb_deliver(gb_mesh *m)
{
    for (uint32_t s = 0; s < m->n; s++) {
        for (uint32_t i = 0; i < m->qn[s]; i++) {
            rf_aggregator_receive(m->a[s], &m->q[s][i], 0);
            if (m->q[s][i].flags & RF_EVF_OWNS_AUX)
                free((void *)(uintptr_t)m->q[s][i].aux);
        }
        m->qn[s] = 0;
    }
}

static gb_mesh *gb_setup(uint32_t shards)
{
    gb_mesh *m = &gb_meshes[shards];
    if (m->n)
        return m;
    m->n = shards;
    uint64_t *ids = malloc(GB_SERIES * sizeof(uint64_t));
    rf_agg_rule r;
    memset(&r, 0, sizeof(r));
    strcpy(r.measurement, "*");
    strcpy(r.field, "*");
    r.window_ns = 10 * NS_S;
    static const char *const plain[] = {"count", "sum", "min", "max", "avg", NULL};
    for (const char *const *fn = plain; *fn; fn++)
        rf_agg_func_parse(*fn, &r.funcs[r.n_funcs++]);
    strcpy(r.group_by[0], "region");
    r.n_group_by = 1;
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg);
    cfg.rules = &r;
    cfg.n_rules = 1;
    for (uint32_t s = 0; s < shards; s++) {
        rf_err err;
        m->t[s] = rf_series_table_new(GB_SERIES);
        m->a[s] = rf_aggregator_new(&cfg, m->t[s], (rf_emitter){count_emit, NULL}, &err);
        if (!m->a[s] || rf_aggregator_set_peers(m->a[s], s, shards, gb_send, m) < 0)
            abort();
    }
    char buf[96];
    for (int64_t i = 0; i < GB_SERIES; i++) {
        int n = snprintf(buf, sizeof(buf), "cpu,host=h%07lld,region=r%lld usage_idle", (long long)i,
                         (long long)(i % 16));
        rf_series_key *k = rf_series_key_new(buf, (size_t)n, 3, (size_t)n - 10);
        ids[i] = k->series_id;
        rf_series_table_define(m->t[rf_event_owner(k->series_id, shards)], k);
    }
    m->ev = aligned_alloc(64, NEVENTS * sizeof(rf_event));
    m->owner = malloc(NEVENTS * sizeof(uint32_t));
    uint64_t rs = 11; /* the same stream for every shard count */
    for (uint32_t i = 0; i < NEVENTS; i++) {
        rf_event *e = &m->ev[i];
        memset(e, 0, sizeof(*e));
        rs += 0x9E3779B97F4A7C15ull;
        uint64_t z = (rs ^ (rs >> 31)) * 0xBF58476D1CE4E5B9ull;
        e->series_id = ids[(z ^ (z >> 29)) % GB_SERIES];
        e->value.f64 = (double)((z >> 13) % 1000) * 0.1;
        e->value_type = RF_VALUE_F64;
        e->kind = RF_KIND_GAUGE;
        e->sample_rate = 1.0f;
        m->owner[i] = rf_event_owner(e->series_id, shards);
    }
    free(ids);
    m->time = BT0;
    return m;
}

static void bm_aggregate_groupby_shards(rf_bench_state *s)
{
    gb_mesh *m = gb_setup((uint32_t)rf_bench_arg(s, 0));
    static rf_event part[GB_MAX_SHARDS][BURST];
    uint64_t items = 0, msgs0 = m->msgs;
    while (rf_bench_keep_running(s)) {
        for (int k = 0; k < 16; k++) {
            uint32_t np[GB_MAX_SHARDS] = {0};
            for (uint32_t i = 0; i < BURST; i++) {
                rf_event *e = &m->ev[m->pos + i];
                e->event_time_ns = (m->time += 1000);
                uint32_t o = m->owner[m->pos + i];
                part[o][np[o]++] = *e;
            }
            for (uint32_t sh = 0; sh < m->n; sh++)
                if (np[sh])
                    rf_aggregator_process(m->a[sh], part[sh], np[sh]);
            gb_deliver(m);
            m->pos = (m->pos + BURST) & (NEVENTS - 1);
            items += BURST;
        }
    }
    rf_bench_set_items_processed(s, (int64_t)items);
    uint64_t windows = 0;
    for (uint32_t sh = 0; sh < m->n; sh++) {
        rf_agg_stats st;
        rf_aggregator_stats_read(m->a[sh], &st);
        windows += st.windows_emitted;
    }
    rf_bench_counter(s, "peer_msgs_per_M_events",
                     items ? (double)(m->msgs - msgs0) * 1e6 / (double)items : 0, false);
    rf_bench_counter(s, "group_windows_emitted", (double)windows, false);
}

/* ---- sketches, series table ------------------------------------------------ */

static void bm_ddsketch_add(rf_bench_state *s)
{
    rf_ddsketch *sk = malloc(rf_ddsketch_size(RF_DDSKETCH_DEFAULT_BINS));
    rf_ddsketch_init(sk, 0.01, RF_DDSKETCH_DEFAULT_BINS);
    enum {
        N = 4096
    };
    static double v[N];
    for (int i = 0; i < N; i++)
        v[i] = bexp_normal();
    uint64_t items = 0;
    while (rf_bench_keep_running(s)) {
        for (int i = 0; i < N; i++)
            rf_ddsketch_add(sk, v[i]);
        items += N;
    }
    rf_bench_do_not_optimize(sk);
    rf_bench_set_items_processed(s, (int64_t)items);
    free(sk);
}

static void bm_hll_add(rf_bench_state *s)
{
    static rf_hll h;
    rf_hll_reset(&h);
    uint64_t items = 0, x = 1;
    while (rf_bench_keep_running(s)) {
        for (int i = 0; i < 4096; i++)
            rf_hll_add(&h, x++);
        items += 4096;
    }
    rf_bench_do_not_optimize(&h);
    rf_bench_set_items_processed(s, (int64_t)items);
}

static void bm_series_find(rf_bench_state *s)
{
    agg_fixture *f = agg_setup(rf_bench_arg(s, 0), 0);
    uint64_t items = 0, sum = 0, p = 0;
    while (rf_bench_keep_running(s)) {
        for (int i = 0; i < 4096; i++) {
            sum += (uint64_t)rf_series_table_find(f->t, f->ev[p].series_id);
            p = (p + 1) & (NEVENTS - 1);
        }
        items += 4096;
    }
    rf_bench_do_not_optimize(&sum);
    rf_bench_set_items_processed(s, (int64_t)items);
}

/* The definition path: `arg` new series (64 measurements, 4 tags each) into
 * an empty table sized for them. Keys are made (and the table created and
 * freed) outside the timed part: what is measured is rf_series_table_define,
 * once per new series, as the pipeline calls it for each SERIES_DEF. */
static rf_series_key **series_keys_from(int64_t first, int64_t n)
{
    rf_series_key **keys = malloc((size_t)n * sizeof(*keys));
    char buf[128];
    for (int64_t i = first; i < first + n; i++) {
        int len =
            snprintf(buf, sizeof(buf), "m%02lld,dc=d%lld,host=h%07lld,rack=r%lld,zone=z%lld v",
                     (long long)(i % 64), (long long)(i % 4), (long long)i, (long long)(i % 40),
                     (long long)(i % 3));
        size_t mlen = (size_t)(strchr(buf, ',') - buf);
        keys[i - first] = rf_series_key_new(buf, (size_t)len, mlen, (size_t)len - 1);
    }
    return keys;
}

static rf_series_key **series_keys(int64_t n)
{
    return series_keys_from(0, n);
}

/* What the pipeline does with an event whose series the table does not
 * know: drops it, and (with per-measurement accounting) charges it to the
 * refused series' measurement. Builds against the table before that too,
 * for before/after figures. */
static int32_t drop_path(rf_series_table *t, uint64_t id, bool charge)
{
    int32_t slot = rf_series_table_find(t, id);
#ifdef RF_SERIES_REFUSED_SLOTS
    if (slot < 0 && charge)
        rf_series_table_count_dropped(t, id);
#else
    (void)charge;
#endif
    return slot;
}

static rf_series_table *full_table(void)
{
    rf_series_table *t = rf_series_table_new(16);
    char buf[32];
    for (int i = 0; i < 16; i++) {
        int len = snprintf(buf, sizeof(buf), "full,k=%d v", i);
        rf_series_table_define(t, rf_series_key_new(buf, (size_t)len, 4, (size_t)len - 1));
    }
    return t;
}

static void bm_series_define(rf_bench_state *s)
{
    const int64_t n = rf_bench_arg(s, 0);
    uint64_t items = 0;
    while (rf_bench_keep_running(s)) {
        rf_bench_pause_timing(s);
        rf_series_key **keys = series_keys(n);
        rf_series_table *t = rf_series_table_new((uint32_t)n);
        rf_bench_resume_timing(s);
        for (int64_t i = 0; i < n; i++)
            rf_series_table_define(t, keys[i]);
        rf_bench_pause_timing(s);
        items += (uint64_t)n;
        rf_series_table_free(t);
        free(keys);
        rf_bench_resume_timing(s);
    }
    rf_bench_set_items_processed(s, (int64_t)items);
}

/* A cardinality storm as the owner sees it: a table already full (its limit
 * reached), `arg` definitions that are all refused, each followed by 4 events
 * of the refused series that the pipeline drops as unknown_series. Measured:
 * the refusal and, per dropped event, the lookup and the charge to the
 * refused series' measurement (what the pipeline does).
 *   storm/100000: the first 100,000 refusals of a fresh table (first touch
 *     of its lazily paged memory included);
 *   storm_long/100000: a storm that goes on: one table for the whole run,
 *     new series every time (the refused-id memory full after the first
 *     65,536: each further refusal forgets one id). */
static void storm_run(rf_bench_state *s, bool fresh)
{
    const int64_t n = rf_bench_arg(s, 0);
    static rf_series_table *long_t;
    static int64_t next_key;
    uint64_t items = 0, sum = 0;
    while (rf_bench_keep_running(s)) {
        rf_bench_pause_timing(s);
        rf_series_key **keys = series_keys_from(fresh ? 0 : next_key, n);
        next_key += fresh ? 0 : n;
        uint64_t *ids = malloc((size_t)n * sizeof(*ids));
        for (int64_t i = 0; i < n; i++)
            ids[i] = keys[i]->series_id;
        if (!long_t && !fresh)
            long_t = full_table();
        rf_series_table *t = fresh ? full_table() : long_t;
        rf_bench_resume_timing(s);
        for (int64_t i = 0; i < n; i++) {
            sum += (uint64_t)rf_series_table_define(t, keys[i]);
            for (int e = 0; e < 4; e++)
                sum += (uint64_t)drop_path(t, ids[i], true);
        }
        rf_bench_pause_timing(s);
        items += (uint64_t)n;
        if (fresh)
            rf_series_table_free(t);
        free(keys);
        free(ids);
        rf_bench_resume_timing(s);
    }
    rf_bench_do_not_optimize(&sum);
    rf_bench_set_items_processed(s, (int64_t)items);
}

static void bm_series_storm(rf_bench_state *s)
{
    storm_run(s, true);
}
static void bm_series_storm_long(rf_bench_state *s)
{
    storm_run(s, false);
}

/* The drop path alone, in steady state: a full table that has refused 50,000
 * series (remembered), then events of those series in a random order. arg 0:
 * the lookup only (what the pipeline did before per-measurement
 * accounting); arg 1: the lookup and the charge to the refused series'
 * measurement (what it does now). */
static void bm_series_dropped(rf_bench_state *s)
{
    enum {
        NREF = 50000
    };
    const bool charge = rf_bench_arg(s, 0) != 0;
    static rf_series_table *t;
    static uint64_t *ev;
    if (!t) {
        rf_series_key **keys = series_keys(NREF);
        uint64_t *ids = malloc(NREF * sizeof(*ids));
        t = full_table();
        for (int i = 0; i < NREF; i++) {
            ids[i] = keys[i]->series_id;
            rf_series_table_define(t, keys[i]);
        }
        ev = malloc(NEVENTS * sizeof(*ev));
        for (uint32_t i = 0; i < NEVENTS; i++)
            ev[i] = ids[bnext() % NREF];
        free(ids);
        free(keys);
    }
    uint64_t items = 0, sum = 0, p = 0;
    while (rf_bench_keep_running(s)) {
        for (int i = 0; i < 4096; i++) {
            sum += (uint64_t)drop_path(t, ev[p], charge);
            p = (p + 1) & (NEVENTS - 1);
        }
        items += 4096;
    }
    rf_bench_do_not_optimize(&sum);
    rf_bench_set_items_processed(s, (int64_t)items);
}

RF_BENCH_REGISTER(stages_benchmarks)
{
    static const int64_t batch_sizes[] = {100, 1000};
    rf_bench_register_args("stages/batch/rf", bm_batch, batch_sizes, 2);
    static const int64_t series[] = {1000, 100000};
    rf_bench_register_args("stages/aggregate/rf", bm_aggregate_plain, series, 2);
    rf_bench_register_args("stages/aggregate/rf_quantiles", bm_aggregate_quantile, series, 1);
    rf_bench_register_args("stages/aggregate/rf_groupby", bm_aggregate_groupby, series, 2);
    static const int64_t shards[] = {1, 2, 4};
    rf_bench_register_args("stages/aggregate/rf_groupby_shards", bm_aggregate_groupby_shards,
                           shards, 3);
    static const int64_t steps[] = {1000, 100};
    rf_bench_register_args("stages/aggregate/rf_1M_series", bm_aggregate_1m, steps, 2);
    rf_bench_register("stages/sketch/ddsketch_add", bm_ddsketch_add);
    rf_bench_register("stages/sketch/hll_add", bm_hll_add);
    static const int64_t find_series[] = {1000, 1000000};
    rf_bench_register_args("stages/series/find", bm_series_find, find_series, 2);
    static const int64_t define_series[] = {1000, 100000};
    rf_bench_register_args("stages/series/define", bm_series_define, define_series, 2);
    static const int64_t storm_series[] = {100000};
    rf_bench_register_args("stages/series/storm", bm_series_storm, storm_series, 1);
    rf_bench_register_args("stages/series/storm_long", bm_series_storm_long, storm_series, 1);
    static const int64_t charge[] = {0, 1};
    rf_bench_register_args("stages/series/dropped", bm_series_dropped, charge, 2);
}
