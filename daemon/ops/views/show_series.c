/* `show series [top N] [refused|active]`: cardinality per measurement, merged
 * over the workers; the refused series of the top measurements on /metrics
 * (which rf_engine_drops_read, read every 10 s, keeps fresh). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/worker_shard.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"

#include "daemon/ops/views/views_pvt.h"

/* Rows merged over the workers (each worker counts its own series), by the
 * hash of the measurement's whole name. */
#define VIEW_MEAS_MAX 16384u
#define VIEW_MEAS_BUCKETS (2u * VIEW_MEAS_MAX)

typedef struct meas_row {
    char name[RF_SERIES_MEAS_NAME];
    uint64_t hash;
    uint64_t active, refused_shard, refused_meas, dropped;
    uint64_t expired; /* series retired after pipeline.series_idle_ttl */
    uint32_t limit;   /* per worker; the largest seen (reloads apply one by one) */
    uint32_t workers_at_limit;
    bool other;
} meas_row;

typedef struct meas_acc {
    meas_row *rows;
    uint32_t *index; /* row + 1, 0 = empty */
    uint32_t n;      /* measurements past VIEW_MEAS_MAX - 1 are merged into "other" */
} meas_acc;

static meas_row *meas_row_of(meas_acc *a, const rf_series_meas_stats *m)
{
    /* "other" of every worker, and rows past the cap, share one row (hash 0). */
    uint64_t h = m->other ? 0 : m->hash;
    for (int pass = 0; pass < 2; pass++, h = 0) {
        uint32_t i = (uint32_t)(h ^ (h >> 32)) & (VIEW_MEAS_BUCKETS - 1);
        for (;; i = (i + 1) & (VIEW_MEAS_BUCKETS - 1)) {
            uint32_t r = a->index[i];
            if (r && a->rows[r - 1].hash == h)
                return &a->rows[r - 1];
            if (r)
                continue;
            /* The last row is kept for "other", which always finds room. */
            if (h && a->n >= VIEW_MEAS_MAX - 1)
                break; /* second pass: the shared "other" row */
            meas_row *row = &a->rows[a->n];
            memset(row, 0, sizeof(*row));
            row->hash = h;
            row->other = h == 0;
            snprintf(row->name, sizeof(row->name), "%s", h ? m->name : "(other measurements)");
            a->index[i] = ++a->n;
            return row;
        }
    }
    return NULL; /* not reached: "other" always has its row */
}

static void meas_add(void *ctx, const rf_series_meas_stats *m)
{
    meas_row *r = meas_row_of(ctx, m);
    if (!r)
        return;
    r->active += m->active;
    r->refused_shard += m->refused_shard_limit;
    r->refused_meas += m->refused_measurement_limit;
    r->dropped += m->dropped_events;
    r->expired += m->expired;
    if (!r->other && m->limit > r->limit)
        r->limit = m->limit;
    if (!r->other && m->limit && m->active >= m->limit)
        r->workers_at_limit++;
}

enum meas_rank {
    RANK_PRESSURE,
    RANK_REFUSED,
    RANK_ACTIVE
};
static const char *const k_rank_names[] = {"active+refused", "refused", "active"};

static uint64_t rank_key(const meas_row *r, enum meas_rank by, int level)
{
    const uint64_t refused = r->refused_shard + r->refused_meas;
    switch (by) {
    case RANK_REFUSED: return level == 0 ? refused : level == 1 ? r->dropped : r->active;
    case RANK_ACTIVE: return level == 0 ? r->active : level == 1 ? refused : r->dropped;
    default: return level == 0 ? r->active + refused : level == 1 ? r->dropped : refused;
    }
}

static enum meas_rank g_rank_by; /* control thread only: qsort has no context */

static int meas_cmp(const void *x, const void *y)
{
    const meas_row *a = x, *b = y;
    for (int level = 0; level < 3; level++) {
        uint64_t ka = rank_key(a, g_rank_by, level), kb = rank_key(b, g_rank_by, level);
        if (ka != kb)
            return ka < kb ? 1 : -1;
    }
    return strcmp(a->name, b->name);
}

static void meas_acc_free(meas_acc *a)
{
    free(a->rows);
    free(a->index);
}

/* Every worker's measurements, merged and ranked. */
static int meas_collect(const rf_engine *e, enum meas_rank by, meas_acc *a)
{
    memset(a, 0, sizeof(*a));
    a->rows = malloc(VIEW_MEAS_MAX * sizeof(*a->rows));
    a->index = calloc(VIEW_MEAS_BUCKETS, sizeof(*a->index));
    if (!a->rows || !a->index) {
        meas_acc_free(a);
        return -ENOMEM;
    }
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++)
        rf_pipeline_measurements(rf_shard_pipeline(rf_engine_shard(e, wi)), meas_add, a);
    g_rank_by = by;
    qsort(a->rows, a->n, sizeof(a->rows[0]), meas_cmp);
    return 0;
}

static void series_metrics_refresh(const rf_engine *e, const meas_acc *ranked_by_refused);

/* show series [top N] [refused|active]: the measurements ranked by active +
 * refused series by default, so the one whose new series were all refused
 * still leads; `refused` ranks by refused series (then dropped events),
 * `active` by accepted series only. */
int rf_views_show_series(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    unsigned long top = 10;
    enum meas_rank by = RANK_PRESSURE;
    static const char usage[] = "usage: show series [top N] [refused|active]";
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", args ? args : "");
    bool seen_top = false, seen_rank = false;
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (!strcmp(tok, "top") && !seen_top) {
            char *n = strtok_r(NULL, " \t", &save), *end = NULL;
            top = n ? strtoul(n, &end, 10) : 0;
            if (!n || *end || top == 0)
                return rf_err_set(err, EINVAL, "%s (N >= 1)", usage);
            seen_top = true;
        } else if (!seen_rank && (!strcmp(tok, "refused") || !strcmp(tok, "active"))) {
            by = !strcmp(tok, "refused") ? RANK_REFUSED : RANK_ACTIVE;
            seen_rank = true;
        } else {
            return rf_err_set(err, EINVAL, "%s", usage);
        }
    }
    meas_acc acc;
    if (meas_collect(e, by, &acc) < 0)
        return rf_err_set(err, ENOMEM, "out of memory");
    uint64_t total = 0, rej_shard = 0, rej_meas = 0, again = 0, forgotten = 0, dropped = 0,
             unattributed = 0, failed = 0, expired = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        rf_pipeline_stage_stats st;
        rf_pipeline_stats ps;
        rf_pipeline_stages_read(p, &st);
        rf_pipeline_stats_read(p, &ps);
        total += st.series.count;
        expired += st.series.expired;
        rej_shard += st.series.rejected_shard_limit;
        rej_meas += st.series.rejected_measurement_limit;
        again += st.series.refused_again;
        forgotten += st.series.refused_forgotten;
        dropped += st.series.dropped_events;
        unattributed += st.series.dropped_unattributed;
        failed += ps.series_def_failed;
    }
    const rf_pipeline_settings *cfg = &rf_engine_settings(e)->pipeline;
    rf_ops_obj_begin(w, "series");
    rf_ops_kv_u64(w, "active_series", total);
    rf_ops_kv_u64(w, "max_series_per_worker", cfg->max_series);
    rf_ops_kv_u64(w, "max_series_per_measurement", cfg->limits.max_per_measurement);
    rf_ops_kv_u64(w, "cardinality_overrides", cfg->limits.n_overrides);
    rf_ops_kv_u64(w, "rejected_by_cardinality_limit", rej_shard + rej_meas);
    rf_ops_kv_u64(w, "rejected_shard_limit", rej_shard);
    rf_ops_kv_u64(w, "rejected_measurement_limit", rej_meas);
    rf_ops_kv_u64(w, "refused_announced_again", again);
    rf_ops_kv_u64(w, "refused_ids_forgotten", forgotten);
    rf_ops_kv_u64(w, "dropped_events_of_refused_series", dropped);
    rf_ops_kv_u64(w, "dropped_events_unattributed", unattributed);
    rf_ops_kv_u64(w, "definitions_failed", failed);
    rf_ops_kv_u64(w, "expired", expired);
    rf_ops_kv_u64(w, "series_idle_ttl_s", (uint64_t)(cfg->series_idle_ttl_ns / RF_NS_PER_S));
    rf_ops_kv_u64(w, "measurements", acc.n);
    rf_ops_kv_str(w, "ranked_by", k_rank_names[by]);
    rf_ops_obj_end(w);
    static const char *const cols[] = {
        "measurement",         "active_series",  "refused_series",   "refused_measurement_limit",
        "refused_shard_limit", "dropped_events", "limit_per_worker", "at_limit",
        "workers_at_limit",    "expired"};
    RF_OPS_TABLE_BEGIN(w, "series_by_measurement", cols);
    for (uint32_t i = 0; i < acc.n && i < top; i++) {
        const meas_row *r = &acc.rows[i];
        rf_ops_cell_str(w, r->name);
        RF_OPS_CELLS_U64(w, r->active, r->refused_shard + r->refused_meas, r->refused_meas,
                         r->refused_shard, r->dropped, r->limit);
        rf_ops_cell_str(w, r->workers_at_limit ? "yes" : "no");
        rf_ops_cell_u64(w, r->workers_at_limit);
        rf_ops_cell_u64(w, r->expired);
    }
    rf_ops_table_end(w);
    if (by == RANK_REFUSED)
        series_metrics_refresh(e, &acc);
    meas_acc_free(&acc);
    return 0;
}

/* ---- series on /metrics: refused series of the top measurements -------- */

/* Per-measurement labels are bounded: the first SERIES_PROM_TOP measurements
 * seen with refused series (taken in order of refused series at each look)
 * get their own, and keep them for the life of the process, so that their
 * counters only go up; every other measurement is summed under
 * measurement="(other)". A look happens whenever the daemon reads its drop
 * counters (rf_engine_drops_read: at start and every 10 s) and on `show
 * series ... refused`. Per worker and reason, without a measurement:
 * ringflow_series_refused (pipeline.c). */
#define SERIES_PROM_TOP 10
#define SERIES_PROM_WORKERS_MAX 256

enum {
    SM_REFUSED_MEAS,
    SM_REFUSED_SHARD,
    SM_DROPPED,
    SM__COUNT
};

typedef struct series_metric {
    uint64_t hash;                          /* 0: "(other)" */
    int field;                              /* SM_* */
    uint32_t slot[SERIES_PROM_WORKERS_MAX]; /* entry index per worker, UINT32_MAX unknown */
} series_metric;

static struct {
    const rf_engine *e;
    bool enabled;
    uint32_t n_meas;
    uint64_t hashes[SERIES_PROM_TOP];
    series_metric m[(SERIES_PROM_TOP + 1) * SM__COUNT];
    uint32_t n_m;
    int ids[(SERIES_PROM_TOP + 1) * SM__COUNT];
    uint64_t last_refused;
} g_sm;

static uint64_t sm_field(const rf_series_meas_stats *s, int field)
{
    return field == SM_REFUSED_MEAS    ? s->refused_measurement_limit
           : field == SM_REFUSED_SHARD ? s->refused_shard_limit
                                       : s->dropped_events;
}

typedef struct sm_find {
    uint64_t hash;
    uint32_t index;
} sm_find;

static void sm_find_fn(void *ctx, const rf_series_meas_stats *m)
{
    sm_find *f = ctx;
    if (!m->other && m->hash == f->hash)
        f->index = m->index;
}

/* One labelled measurement over every worker. */
static uint64_t sm_read_one(series_metric *sm)
{
    uint64_t v = 0;
    const uint32_t workers = rf_engine_workers(g_sm.e);
    for (uint32_t wi = 0; wi < workers && wi < SERIES_PROM_WORKERS_MAX; wi++) {
        const rf_series_table *t =
            rf_pipeline_series(rf_shard_pipeline(rf_engine_shard(g_sm.e, wi)));
        if (sm->slot[wi] == UINT32_MAX) {
            /* Not on this worker when last looked: look again (entries never
             * move, so once found it is read directly). */
            sm_find f = {sm->hash, UINT32_MAX};
            rf_series_table_measurements(t, sm_find_fn, &f);
            sm->slot[wi] = f.index;
        }
        rf_series_meas_stats s;
        if (sm->slot[wi] != UINT32_MAX && rf_series_table_measurement(t, sm->slot[wi], &s))
            v += sm_field(&s, sm->field);
    }
    return v;
}

static uint64_t sm_read(void *ctx)
{
    series_metric *sm = ctx;
    if (sm->hash)
        return sm_read_one(sm);
    /* "(other)": the total less the labelled measurements. */
    uint64_t total = 0, labelled = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(g_sm.e); wi++) {
        rf_pipeline_stage_stats st;
        rf_pipeline_stages_read(rf_shard_pipeline(rf_engine_shard(g_sm.e, wi)), &st);
        total += sm->field == SM_REFUSED_MEAS    ? st.series.rejected_measurement_limit
                 : sm->field == SM_REFUSED_SHARD ? st.series.rejected_shard_limit
                                                 : st.series.dropped_events;
    }
    for (uint32_t i = 0; i < g_sm.n_m; i++)
        if (g_sm.m[i].hash && g_sm.m[i].field == sm->field)
            labelled += sm_read_one(&g_sm.m[i]);
    return total > labelled ? total - labelled : 0;
}

/* Registers the three series of one measurement (hash 0: "(other)"). */
static void sm_register(uint64_t hash, const char *name)
{
    static const char *const reasons[] = {"measurement_limit", "shard_limit"};
    rf_strbuf esc = {0};
    rf_stats_escape(&esc, name);
    /* Cut so that the labels fit RF_STATS_LABELS_MAX, never inside an escape. */
    size_t len = esc.p ? esc.len : 0;
    if (len > 96) {
        len = 96;
        size_t bs = 0;
        while (bs < len && esc.p[len - 1 - bs] == '\\')
            bs++;
        if (bs % 2)
            len--;
    }
    for (int field = 0; field < SM__COUNT; field++) {
        if (g_sm.n_m >= sizeof(g_sm.m) / sizeof(g_sm.m[0]))
            break;
        series_metric *sm = &g_sm.m[g_sm.n_m];
        sm->hash = hash;
        sm->field = field;
        for (uint32_t i = 0; i < SERIES_PROM_WORKERS_MAX; i++)
            sm->slot[i] = UINT32_MAX;
        char labels[RF_STATS_LABELS_MAX];
        int id;
        if (field == SM_DROPPED) {
            snprintf(labels, sizeof(labels), "measurement=\"%.*s\"", (int)len, esc.p ? esc.p : "");
            id = rf_stats_register_fn(RF_METRIC_COUNTER,
                                      "ringflow_series_refused_events_by_measurement",
                                      "Events dropped because their series was refused, for the "
                                      "top measurements (the rest as measurement=\"(other)\").",
                                      labels, sm_read, sm);
        } else {
            snprintf(labels, sizeof(labels), "measurement=\"%.*s\",reason=\"%s\"", (int)len,
                     esc.p ? esc.p : "", reasons[field]);
            id = rf_stats_register_fn(RF_METRIC_COUNTER, "ringflow_series_refused_by_measurement",
                                      "New series refused by reason, for the top measurements "
                                      "(the rest as measurement=\"(other)\").",
                                      labels, sm_read, sm);
        }
        if (id >= 0)
            g_sm.ids[g_sm.n_m++] = id;
    }
    rf_strbuf_free(&esc);
}

/* A look at who is refused: measurements not labelled yet get labels while
 * there is room. `ranked` (by refused) may be NULL: then it is collected. */
static void series_metrics_refresh(const rf_engine *e, const meas_acc *ranked)
{
    if (!g_sm.enabled || g_sm.e != e)
        return;
    if (g_sm.n_m == 0)
        sm_register(0, "(other)");
    if (g_sm.n_meas >= SERIES_PROM_TOP)
        return;
    meas_acc own;
    if (!ranked) {
        if (meas_collect(e, RANK_REFUSED, &own) < 0)
            return;
        ranked = &own;
    }
    for (uint32_t i = 0; i < ranked->n && g_sm.n_meas < SERIES_PROM_TOP; i++) {
        const meas_row *r = &ranked->rows[i];
        if (r->refused_shard + r->refused_meas == 0)
            break; /* ranked by refused: none after this one either */
        if (r->other)
            continue;
        bool known = false;
        for (uint32_t k = 0; k < g_sm.n_meas && !known; k++)
            known = g_sm.hashes[k] == r->hash;
        if (known)
            continue;
        g_sm.hashes[g_sm.n_meas++] = r->hash;
        sm_register(r->hash, r->name);
    }
    if (ranked == &own)
        meas_acc_free(&own);
}

static void series_metrics_unregister(void)
{
    for (uint32_t i = 0; i < g_sm.n_m; i++)
        rf_stats_unregister(g_sm.ids[i]);
    memset(&g_sm, 0, sizeof(g_sm));
}

void rf_engine_drops_read(const rf_engine *e, rf_engine_drops *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        rf_engine_worker_stats ws;
        rf_engine_worker_stats_read(e, wi, &ws);
        out->ring_full += ws.dropped_ring_full;
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            const rf_parse_ctx *pc = rf_shard_input_parser(s, i);
            if (!pc)
                continue; /* an empty slot: its counts are in the retired totals */
            out->rejected_lines += rf_parse_counter(pc, RF_PC_LINES_REJECTED);
            const rf_listener *l = rf_shard_input_listener(s, i);
            if (l)
                out->kernel += rf_listener_counter(l, RF_LC_KERNEL_DROPS);
        }
        const rf_shard_retired *r = rf_shard_retired_counters(s);
        out->rejected_lines += r->parse[RF_PC_LINES_REJECTED];
        out->kernel += r->listen[RF_LC_KERNEL_DROPS];
        for (uint32_t q = 0; q < rf_shard_dpdk_queue_count(s); q++)
            for (int c = RF_DC_DROP_FIRST; c < RF_DC__COUNT; c++)
                out->dpdk +=
                    rf_dpdk_queue_counter(rf_shard_dpdk_queue(s, q), (enum rf_dpdk_counter_id)c);
        const rf_pipeline *p = rf_shard_pipeline(s);
        rf_pipeline_stats ps;
        rf_pipeline_stats_read(p, &ps);
        out->unknown_series += ps.unknown_series;
        out->cardinality += ps.series_rejected;
        out->unrouted += ps.unrouted;
        out->store += ps.store_rejected;
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            if (!sk)
                continue;
            rf_sink_stats ss;
            rf_sink_stats_read(sk, &ss);
            out->sinks += ss.drop_queue_full + ss.drop_disconnected + ss.drop_unsupported +
                          ss.drop_oversize + ss.drop_io_error;
            for (int r = 0; ss.has_fwd && r < RF_FWD_DROP__COUNT; r++)
                out->sinks += ss.fwd.dropped[r];
        }
    }
    /* The daemon reads its drops at start and every 10 s: when series were
     * refused since the last look, the top refusing measurements get their
     * labelled metrics (see series_metrics_refresh). */
    if (g_sm.n_m == 0 || out->cardinality != g_sm.last_refused) {
        g_sm.last_refused = out->cardinality;
        series_metrics_refresh(e, NULL);
    }
}

void rf_views_series_attach(rf_engine *e)
{
    series_metrics_unregister();
    g_sm.e = e;
    g_sm.enabled = true;
}

void rf_views_series_detach(void)
{
    series_metrics_unregister();
}
