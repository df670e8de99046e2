/* One shard's processing chain: series table, aggregation, correlation,
 * alerts, routing, batching, sinks and storage. See pipeline.h. */
#include "stages/pipeline/pipeline.h"
#include "stages/pipeline/pipeline_pvt.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assert/assert.h"
#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/stats/stats.h"
#include "stages/series/series_table.h"
#include "stages/statsd/statsd_flush.h"
#include "storage/store/store.h"

/* Events handled per pass through the stages. */
#define PIPE_BATCH 256
/* The stages timed per batch (stage_ns, ringflow_stage_batch_seconds). */
enum {
    PIPE_STAGE_SERIES, /* series-table lookups and definitions */
    PIPE_STAGE_AGGREGATE,
    PIPE_STAGE_CORRELATE,
    PIPE_STAGE_ALERT,
    PIPE_STAGE_DELIVER, /* routing, batching, sinks, the store's append */
    PIPE_STAGE_TICK,    /* rf_pipeline_tick: timers, window closes, store cuts */
    PIPE_STAGE__COUNT
};
/* Aggregator sweeps for idle windows at about this period. */
#define PIPE_AGG_TICK_NS (100 * RF_NS_PER_MS)
/* The expiry sweep advances at about this period (RF_PIPELINE_EXPIRE_BUDGET
 * slots each time: a pass over 1 M slots takes about 25 s, far below any
 * useful TTL, and the sweep costs nothing between its steps). */
#define PIPE_EXPIRE_TICK_NS (100 * RF_NS_PER_MS)
/* Shutdown: how long a sink's downstream may keep taking queued bytes, and
 * how long it may stall before the rest is counted as dropped. */
#define PIPE_DRAIN_GRACE_NS (2 * RF_NS_PER_S)
#define PIPE_DRAIN_STALL_NS (100 * RF_NS_PER_MS)

typedef struct pipe_sink {
    rf_pipeline *p;
    uint32_t id;
    bool is_store;
    rf_sink *sink;       /* NULL for store sinks */
    rf_batcher *batcher; /* standard path */
    uint32_t n_crit, n_std;
    rf_event crit[PIPE_BATCH];
    rf_event std[PIPE_BATCH];
} pipe_sink;

/* Partials between hosts (stages/aggregate/README.md, "Between hosts"):
 * the sink of each rule with partials_to, and the line being formatted.
 * On the heap, so that the aggregator's context survives the copy of the
 * stages at a swap. */
typedef struct pipe_partials {
    pipe_sink *sink[RF_AGG_MAX_RULES];
    char *line;
    size_t cap;
} pipe_partials;

/* Everything a reload may replace: built from one pipeline configuration,
 * swapped as a whole on the worker (see rf_pipeline_prepare). The series
 * table, the storage shard and the counters are not part of it. */
typedef struct pipe_stages {
    const rf_pipeline_settings *ps;
    rf_router *router;
    rf_alerts *alerts;
    /* The critical edge (pipeline.h): routes and threshold rules of the
     * series in edge_series, built beside the others from the same
     * configuration (so route set, sink and rule ids agree). NULL on one
     * shard. */
    rf_router *edge_router;
    rf_alerts *edge_alerts;
    rf_correlator *corr;
    rf_aggregator *agg;
    pipe_partials *partials; /* NULL: no rule sends partials */
    uint32_t n_sinks;
    pipe_sink *sinks[RF_ROUTER_MAX_SINKS];
} pipe_stages;

struct rf_pipeline {
    uint32_t index;
    uint32_t shards;
    uint32_t max_series;
    rf_series_table *series;
    rf_store_shard *store;
    pipe_stages st;
    /* StatsD intervals: not rebuilt by a reload (gauges carry over), only
     * given its new settings at the swap. */
    rf_statsd_flusher *statsd;
    int64_t last_wall; /* the latest tick's wall time (the final flush on an event clock) */
    /* A reload: built by the control thread (prepared), published with a
     * release store into `pending`; the worker takes it with an acquire load,
     * swaps, and stores NULL (release), which the control thread reads
     * (acquire) to know the old stages are gone. */
    pipe_stages *prepared;
    _Atomic(pipe_stages *) pending;
    int64_t now_mono; /* read once per batch (given, with an event clock) */
    int64_t idle_ttl; /* pipeline.series_idle_ttl; 0: series never expire */
    int64_t next_expire_tick;
    int64_t next_agg_tick;
    int64_t next_due; /* rf_pipeline_next_due_ns, as of the last tick */
    bool event_clock; /* rf_pipeline_set_event_clock: replay, no clock read */

    /* Peer messages (see pipeline.h "Between shards"): the transport to
     * other shards, and the ones addressed to this shard, handed back after
     * the current pass (grown by doubling; reused, so steady state does not
     * allocate). */
    rf_peer_send_fn peer_send;
    void *peer_ctx;
    rf_event *self_q;
    uint32_t self_n, self_cap;
    bool in_self_delivery;

    /* Scratch, one set per producer so stage emitters can run while an outer
     * pass still holds its batch. */
    rf_event in_buf[PIPE_BATCH];
    int32_t in_slots[PIPE_BATCH];
    rf_event emit_buf[PIPE_BATCH];
    int32_t emit_slots[PIPE_BATCH];

    /* Single writer (this worker): relaxed stores; read by control. */
    _Atomic uint64_t processed, unknown_series, series_rejected, to_critical, to_standard, to_store,
        store_rejected, unrouted;
    /* series_rejected by reason (their sum), and failed definitions. */
    _Atomic uint64_t rejected_shard_limit, rejected_measurement_limit, series_def_failed;
    _Atomic uint64_t series_expired;
    _Atomic uint64_t peer_sent, peer_received, peer_unhandled, peer_undeliverable;
    rf_hist critical_path;
    /* The critical edge (pipeline.h): series other shards own whose
     * critical events this shard evaluates where they arrive, with keys
     * copied from their definitions (which go on to the owner). Nothing is
     * stored or aggregated from this table; NULL on one shard. */
    rf_series_table *edge_series;
    rf_event edge_buf[PIPE_BATCH];
    int32_t edge_slots[PIPE_BATCH];
    _Atomic uint64_t edge_evaluated, edge_unknown, edge_refused;
    /* Time each stage took per batch (at most PIPE_BATCH events), this
     * worker's: where a worker's time goes, and which stage a latency tail
     * comes from. Six clock reads a batch (vDSO, no syscall). */
    rf_hist stage_ns[PIPE_STAGE__COUNT];
    rf_owner owner; /* the worker thread (pipeline.h), checked on each worker call */
};

static const char *const stage_names[PIPE_STAGE__COUNT] = {"series", "aggregate",       "correlate",
                                                           "alert",  "route_and_sinks", "tick"};

static uint32_t apply_pending(rf_pipeline *p);
static void peer_receive(rf_pipeline *p, const rf_event *ev);
static uint32_t pipeline_tick(rf_pipeline *p, int64_t now_mono, int64_t now_wall);
typedef struct pipe_stages pipe_stages;
static void stages_free(pipe_stages *st);

/* ---- delivery ----------------------------------------------------------- */

/* The key of a series' first stored point (rf_store_append_keyed). */
static const rf_series_key *store_key_of(void *ctx, uint64_t series_id)
{
    rf_pipeline *p = ctx;
    int32_t slot = rf_series_table_find(p->series, series_id);
    if (slot >= 0)
        return rf_series_table_key(p->series, slot);
    /* An alert the edge raised names a series another shard owns: its key
     * is in the edge's table (sinks name it; a store route keeps it here). */
    if (p->edge_series && (slot = rf_series_table_find(p->edge_series, series_id)) >= 0)
        return rf_series_table_key(p->edge_series, slot);
    return NULL;
}

static void sink_send(pipe_sink *s, const rf_event *ev, uint32_t n, bool critical)
{
    rf_pipeline *p = s->p;
    if (s->is_store) {
        if (!p->store) {
            rf_stats_add(&p->store_rejected, n);
            return;
        }
        uint64_t rejected = rf_store_append_batch(p->store, ev, n, store_key_of, p);
        rf_stats_add(&p->to_store, n - rejected);
        rf_stats_add(&p->store_rejected, rejected);
        return;
    }
    rf_sink_write(s->sink, ev, n);
    if (critical) {
        rf_sink_flush(s->sink, p->now_mono);
        /* The critical path ends here: the events were handed to the kernel
         * (or queued behind a connect, which the sink counts). Not measured
         * on an event clock: receipt times are the recording's. */
        if (p->event_clock)
            return;
        int64_t now = rf_clock_mono_ns();
        for (uint32_t i = 0; i < n; i++)
            if (ev[i].recv_time_ns > 0 && now >= ev[i].recv_time_ns)
                rf_hist_record(&p->critical_path, (uint64_t)(now - ev[i].recv_time_ns));
    }
}

/* A batcher of a standard sink emits here. */
static void batch_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    pipe_sink *s = ctx;
    rf_sink_write(s->sink, ev, n);
    rf_sink_flush(s->sink, s->p->now_mono);
}

static void stage_sink(rf_pipeline *p, pipe_sink *s)
{
    if (s->n_crit) {
        sink_send(s, s->crit, s->n_crit, true);
        rf_stats_add(&p->to_critical, s->n_crit);
        s->n_crit = 0;
    }
    if (s->n_std) {
        if (s->is_store || !s->batcher)
            sink_send(s, s->std, s->n_std, false);
        else /* the batcher keeps its own copy of string texts (stages/batch) */
            rf_batcher_push(s->batcher, s->std, s->n_std, p->now_mono);
        rf_stats_add(&p->to_standard, s->n_std);
        s->n_std = 0;
    }
}

/* Routes a batch through `router` and hands every event to the sinks of
 * its route set: critical ones at once, the others through their sink's
 * batcher. An event the critical edge took (RF_EVF_EDGE_DONE) goes to the
 * sinks other than the store at the edge (edge_side) and to the store sinks
 * at its owner, so each sink gets it once; its owner counts it if unrouted. */
static void deliver_via(rf_pipeline *p, rf_router *router, rf_event *ev, const int32_t *slots,
                        uint32_t n, bool edge_side)
{
    if (n == 0)
        return;
    if (!router) {
        if (!edge_side)
            rf_stats_add(&p->unrouted, n); /* no routes configured: counted, never silent */
        return;
    }
    rf_router_route_batch(router, ev, slots, n);
    uint64_t unrouted = 0;
    for (uint32_t i = 0; i < n; i++) {
        const rf_route_set *set = rf_router_set(router, ev[i].route_hint);
        if (set->n_sinks == 0) {
            unrouted += !edge_side;
            continue;
        }
        /* Critical class is per (event, sink): sinks[0..n_critical) only. */
        bool crit_event = ev[i].priority == RF_PRIO_CRITICAL;
        const bool edge_done = (ev[i].flags & RF_EVF_EDGE_DONE) != 0;
        for (uint16_t k = 0; k < set->n_sinks; k++) {
            pipe_sink *s = p->st.sinks[set->sinks[k]];
            if (edge_done && s->is_store == edge_side)
                continue; /* the other side's sink */
            if (k < set->n_critical || crit_event) {
                s->crit[s->n_crit++] = ev[i];
                if (s->n_crit == PIPE_BATCH)
                    stage_sink(p, s);
            } else {
                s->std[s->n_std++] = ev[i];
                if (s->n_std == PIPE_BATCH)
                    stage_sink(p, s);
            }
        }
    }
    for (uint32_t j = 0; j < p->st.n_sinks; j++)
        if (p->st.sinks[j]->n_crit || p->st.sinks[j]->n_std)
            stage_sink(p, p->st.sinks[j]);
    if (unrouted)
        rf_stats_add(&p->unrouted, unrouted);
}

static void deliver(rf_pipeline *p, rf_event *ev, const int32_t *slots, uint32_t n)
{
    deliver_via(p, p->st.router, ev, slots, n, false);
}

/* ---- series ------------------------------------------------------------- */

static int32_t define_series(rf_pipeline *p, rf_series_key *key)
{
    /* The ingest side may announce a series again: the stages know it. */
    const bool known = key && rf_series_table_find(p->series, key->series_id) >= 0;
    int32_t slot = rf_series_table_define(p->series, key); /* takes ownership */
    if (slot < 0) {
        /* Refused by a cardinality limit (counted by reason; the table also
         * counts it per measurement), or a refused series announced again
         * (-EALREADY: counted once, by the table, as refused_again). */
        if (slot == -EDQUOT || slot == -ENOSPC) {
            rf_stats_add(
                slot == -EDQUOT ? &p->rejected_measurement_limit : &p->rejected_shard_limit, 1);
            rf_stats_add(&p->series_rejected, 1);
        } else if (slot != -EALREADY) {
            rf_stats_add(&p->series_def_failed, 1);
        }
        return slot;
    }
    if (known)
        return slot;
    const rf_series_key *k = rf_series_table_key(p->series, slot);
    if (p->st.router)
        rf_router_define(p->st.router, slot, k);
    if (p->st.alerts)
        rf_alerts_define(p->st.alerts, slot, k);
    if (p->st.corr)
        rf_correlator_define(p->st.corr, slot, k);
    /* Not the store: it learns a series from its first stored point
     * (store_key_of), so that series no route stores, aggregates sent to
     * other sinks among them, cost it neither a buffer nor a key. */
    return slot;
}

/* ---- peer messages -------------------------------------------------------- */

static void peer_free_aux(const rf_event *ev)
{
    if (ev->flags & RF_EVF_OWNS_AUX)
        free((void *)(uintptr_t)ev->aux);
}

/* Hands one peer message to the stage its subkind names; the owned block
 * (if any) ends its life here, whatever the stage did with it. */
static void peer_receive(rf_pipeline *p, const rf_event *ev)
{
    bool taken = false;
    switch (RF_PEER_STAGE_OF(ev->subkind)) {
    case RF_PEER_STAGE_AGGREGATE:
        /* Partials and closed-through reports of group windows; without an
         * aggregator (removed by a reload) they count as unhandled. */
        if (p->st.agg) {
            rf_aggregator_receive(p->st.agg, ev, p->now_mono);
            taken = true;
        }
        break;
    case RF_PEER_STAGE_CORRELATE:
        /* Counted there when stale (a reload swapped one shard first). */
        if (p->st.corr) {
            rf_correlator_receive(p->st.corr, ev);
            taken = true;
        }
        break;
    case RF_PEER_STAGE_ALERT:
        if (p->st.alerts) {
            rf_alerts_peer_receive(p->st.alerts, ev);
            taken = true;
        }
        break;
    default: break;
    }
    rf_stats_add(taken ? &p->peer_received : &p->peer_unhandled, 1);
    peer_free_aux(ev);
}

void rf_pipeline_set_peer_send(rf_pipeline *p, rf_peer_send_fn fn, void *ctx)
{
    p->peer_send = fn;
    p->peer_ctx = ctx;
}

void rf_pipeline_peer_send(void *pipeline, uint32_t to, const rf_event *ev, uint32_t n)
{
    rf_pipeline *p = pipeline;
    if (n == 0)
        return;
    rf_stats_add(&p->peer_sent, n);
    if (to != p->index) {
        if (to < p->shards && p->peer_send) {
            p->peer_send(p->peer_ctx, to, ev, n);
            return;
        }
        rf_stats_add(&p->peer_undeliverable, n);
        for (uint32_t i = 0; i < n; i++)
            peer_free_aux(&ev[i]);
        return;
    }
    if (p->self_n + n > p->self_cap) {
        uint32_t cap = p->self_cap ? p->self_cap : 256;
        while (cap < p->self_n + n)
            cap *= 2;
        rf_event *q = realloc(p->self_q, (size_t)cap * sizeof(rf_event));
        if (!q) {
            /* Counted like a transport's overflow: the message is lost. */
            rf_stats_add(&p->peer_undeliverable, n);
            for (uint32_t i = 0; i < n; i++)
                peer_free_aux(&ev[i]);
            return;
        }
        p->self_q = q;
        p->self_cap = cap;
    }
    memcpy(p->self_q + p->self_n, ev, (size_t)n * sizeof(rf_event));
    p->self_n += n;
}

/* Messages this shard sent itself, after the pass that sent them; a stage
 * receiving one may send more, which this loop takes too. */
static void peer_deliver_self(rf_pipeline *p)
{
    if (p->in_self_delivery)
        return;
    p->in_self_delivery = true;
    uint32_t i = 0;
    while (i < p->self_n) {
        rf_event ev = p->self_q[i++]; /* a copy: receiving may grow (move) the queue */
        peer_receive(p, &ev);
    }
    p->self_n = 0;
    p->in_self_delivery = false;
}

uint32_t rf_pipeline_index(const rf_pipeline *p)
{
    return p->index;
}

uint32_t rf_pipeline_shards(const rf_pipeline *p)
{
    return p->shards;
}

/* Splits events into definitions (applied) and data of known series (copied
 * to out with their slots). Returns how many data events were kept. */
static uint32_t resolve(rf_pipeline *p, const rf_event *ev, uint32_t n, rf_event *out,
                        int32_t *slots)
{
    uint32_t m = 0;
    uint64_t unknown = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (ev[i].kind == RF_KIND_SERIES_DEF) {
            define_series(p, (rf_series_key *)(uintptr_t)ev[i].aux);
            continue;
        }
        if (ev[i].kind == RF_KIND_PEER) {
            peer_receive(p, &ev[i]);
            continue;
        }
        int32_t slot = rf_series_table_find_touch(p->series, ev[i].series_id);
        if (slot < 0) {
            /* Dropped as unknown_series, and charged to the measurement of
             * its refused series (the drop path only: known series never
             * get here). */
            unknown++;
            rf_series_table_count_dropped(p->series, ev[i].series_id);
            continue;
        }
        out[m] = ev[i];
        slots[m] = slot;
        m++;
    }
    if (unknown)
        rf_stats_add(&p->unknown_series, unknown);
    return m;
}

/* Alerts and correlated events: routed and delivered like any other. */
static void derived_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    rf_pipeline *p = ctx;
    /* Their subjects come from the rule / pattern id, not a slot. A
     * rule-wide alert's series comes first as a definition (alert.h). */
    rf_event buf[PIPE_BATCH];
    int32_t slots[PIPE_BATCH];
    while (n) {
        uint32_t m = n < PIPE_BATCH ? n : PIPE_BATCH, k = 0;
        for (uint32_t i = 0; i < m; i++) {
            if (ev[i].kind == RF_KIND_SERIES_DEF) {
                define_series(p, (rf_series_key *)(uintptr_t)ev[i].aux);
                continue;
            }
            buf[k] = ev[i];
            slots[k++] = -1;
        }
        deliver(p, buf, slots, k);
        ev += m;
        n -= m;
    }
}

/* Values a stage computed (with their series definitions): defined,
 * aggregated when `aggregate` (flushed StatsD values are data to the
 * aggregation rules; aggregates are not), checked by alerts, delivered. */
static void values_emit(rf_pipeline *p, const rf_event *ev, uint32_t n, bool aggregate)
{
    while (n) {
        uint32_t m = n < PIPE_BATCH ? n : PIPE_BATCH;
        uint32_t k = resolve(p, ev, m, p->emit_buf, p->emit_slots);
        /* The aggregator stamps its output with the monotonic clock it reads
         * itself; on an event clock the pipeline's time stands in for it,
         * so that what follows (absence rules on aggregate series) runs on
         * the recording's time. */
        if (p->event_clock)
            for (uint32_t i = 0; i < k; i++)
                p->emit_buf[i].recv_time_ns = p->now_mono;
        if (k) {
            if (aggregate && p->st.agg)
                rf_aggregator_process(p->st.agg, p->emit_buf, k);
            if (p->st.alerts)
                rf_alerts_process(p->st.alerts, p->emit_buf, p->emit_slots, k);
            deliver(p, p->emit_buf, p->emit_slots, k);
        }
        ev += m;
        n -= m;
    }
}

/* Aggregates (and their series definitions) from the aggregator. */
static void agg_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    values_emit(ctx, ev, n, false);
}

/* Flushed StatsD values (and their series definitions). */
static void statsd_emit(void *ctx, const rf_event *ev, uint32_t n)
{
    values_emit(ctx, ev, n, true);
}

/* ---- the critical edge (pipeline.h) ------------------------------------- */

/* Binds a series the edge has not seen yet: its own copy of the key (the
 * definition's goes on to the owner). Refusals (the table full, no memory)
 * leave the series to its owner, counted. */
static void edge_define(rf_pipeline *p, const rf_series_key *key)
{
    if (!key || rf_series_table_find(p->edge_series, key->series_id) >= 0)
        return;
    rf_series_key *copy =
        rf_series_key_new(key->text, key->len, key->measurement_len, key->field_offset);
    int32_t slot = copy ? rf_series_table_define(p->edge_series, copy) : -ENOMEM;
    if (slot < 0) {
        rf_stats_add(&p->edge_refused, 1);
        return;
    }
    const rf_series_key *k = rf_series_table_key(p->edge_series, slot);
    if (p->st.edge_router)
        rf_router_define(p->st.edge_router, slot, k);
    if (p->st.edge_alerts)
        rf_alerts_define(p->st.edge_alerts, slot, k);
}

/* Threshold rules first (an alert leaves before the sample, as at the
 * owner), then the sample to the sinks other than the store. */
static void edge_run(rf_pipeline *p, uint32_t k)
{
    if (k == 0)
        return;
    if (p->st.edge_alerts)
        rf_alerts_process(p->st.edge_alerts, p->edge_buf, p->edge_slots, k);
    for (uint32_t i = 0; i < k; i++)
        p->edge_buf[i].flags |= RF_EVF_EDGE_DONE;
    deliver_via(p, p->st.edge_router, p->edge_buf, p->edge_slots, k, true);
    rf_stats_add(&p->edge_evaluated, k);
}

void rf_pipeline_edge_process(rf_pipeline *p, rf_event *ev, uint32_t n)
{
    RF_ASSERT_OWNER(&p->owner);
    if (!p->edge_series)
        return;
    p->now_mono = rf_clock_mono_ns();
    rf_series_table_set_now(p->edge_series, p->now_mono);
    uint32_t k = 0;
    uint64_t unknown = 0;
    for (uint32_t i = 0; i < n; i++) {
        rf_event *e = &ev[i];
        if (e->kind == RF_KIND_SERIES_DEF) {
            edge_define(p, (const rf_series_key *)(uintptr_t)e->aux);
            continue;
        }
        /* Raw StatsD samples are the flusher's (at the owner), and derived
         * or control events are not samples. */
        if (e->kind >= RF_KIND_AGGREGATE || (e->flags & RF_EVF_STATSD))
            continue;
        int32_t slot = rf_series_table_find_touch(p->edge_series, e->series_id);
        if (slot < 0) {
            unknown++; /* refused here: the owner evaluates it */
            continue;
        }
        e->flags |= RF_EVF_EDGE_DONE;
        p->edge_buf[k] = *e;
        p->edge_buf[k].flags &= (uint8_t)~RF_EVF_EDGE_DONE; /* set once its rules ran */
        p->edge_slots[k++] = slot;
        if (k == PIPE_BATCH) {
            edge_run(p, k);
            k = 0;
        }
    }
    edge_run(p, k);
    if (unknown)
        rf_stats_add(&p->edge_unknown, unknown);
}

/* The edge's share of the series expiry: its idle series leave its table
 * (a series that comes back is announced again, pipeline.h). */
static void edge_expire(void *ctx, int32_t slot, const rf_series_key *key)
{
    (void)key;
    rf_pipeline *p = ctx;
    if (p->st.edge_alerts)
        rf_alerts_forget(p->st.edge_alerts, slot);
}

static const rf_series_key *edge_router_key(void *ctx, int32_t slot)
{
    rf_pipeline *p = ctx;
    return rf_series_table_key(p->edge_series, slot);
}

void rf_pipeline_process(rf_pipeline *p, const rf_event *ev, uint32_t n)
{
    rf_pipeline_process_at(p, ev, n, rf_clock_mono_ns());
}

void rf_pipeline_set_event_clock(rf_pipeline *p)
{
    p->event_clock = true;
}

void rf_pipeline_process_at(rf_pipeline *p, const rf_event *ev, uint32_t n, int64_t now_mono)
{
    RF_ASSERT_OWNER(&p->owner);
    p->now_mono = now_mono;
    rf_series_table_set_now(p->series, now_mono);
    while (n) {
        uint32_t m = n < PIPE_BATCH ? n : PIPE_BATCH;
        int64_t t0 = rf_clock_mono_ns(), t1;
        uint32_t k = resolve(p, ev, m, p->in_buf, p->in_slots);
#define STAGE_DONE(stage)                                                                          \
    do {                                                                                           \
        t1 = rf_clock_mono_ns();                                                                   \
        rf_hist_record(&p->stage_ns[stage], (uint64_t)(t1 - t0));                                  \
        t0 = t1;                                                                                   \
    } while (0)
        STAGE_DONE(PIPE_STAGE_SERIES);
        if (k) {
            if (p->st.agg) {
                rf_aggregator_process(p->st.agg, p->in_buf, k);
                STAGE_DONE(PIPE_STAGE_AGGREGATE);
            }
            if (p->st.corr) {
                rf_correlator_process(p->st.corr, p->in_buf, p->in_slots, k);
                STAGE_DONE(PIPE_STAGE_CORRELATE);
            }
            if (p->st.alerts) {
                rf_alerts_process(p->st.alerts, p->in_buf, p->in_slots, k);
                STAGE_DONE(PIPE_STAGE_ALERT);
            }
            /* StatsD samples go into their intervals (and, without
             * keep_raw, out of the batch: only flushed values are routed). */
            uint32_t routed = rf_statsd_flusher_process(p->statsd, p->in_buf, p->in_slots, k);
            deliver(p, p->in_buf, p->in_slots, routed);
            STAGE_DONE(PIPE_STAGE_DELIVER);
#undef STAGE_DONE
            rf_stats_add(&p->processed, k);
        }
        /* String values' texts end their life here, whether their series
         * was known or not: the store sink copied what it keeps. */
        rf_event_free_texts(ev, m);
        ev += m;
        n -= m;
    }
    peer_deliver_self(p);
}

uint32_t rf_pipeline_tick(rf_pipeline *p, int64_t now_mono, int64_t now_wall)
{
    RF_ASSERT_OWNER(&p->owner);
    const int64_t t0 = rf_clock_mono_ns();
    uint32_t work = pipeline_tick(p, now_mono, now_wall);
    peer_deliver_self(p);
    rf_hist_record(&p->stage_ns[PIPE_STAGE_TICK], (uint64_t)(rf_clock_mono_ns() - t0));
    return work;
}

/* A series about to be retired (pipeline.h "Series lifecycle"): every stage
 * lets go of it while its slot and key are still valid. */
static void series_expire(void *ctx, int32_t slot, const rf_series_key *key)
{
    rf_pipeline *p = ctx;
    if (p->st.agg)
        rf_aggregator_forget_series(p->st.agg, slot, key);
    if (p->st.corr)
        rf_correlator_forget(p->st.corr, slot);
    if (p->st.alerts)
        rf_alerts_forget(p->st.alerts, slot);
    /* The router needs nothing: rf_router_define overwrites a slot's routes
     * when the slot is defined again. */
    if (p->store)
        rf_store_forget_series(p->store, key->series_id);
}

static inline int64_t earlier(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The earliest time-driven work of every stage (pipeline.h,
 * rf_pipeline_next_due_ns), right after a tick. */
static int64_t next_due(const rf_pipeline *p, int64_t now_mono, int64_t now_wall)
{
    int64_t due = INT64_MAX;
    if (p->idle_ttl > 0 && rf_series_table_count(p->series) > 0)
        due = p->next_expire_tick;
    if (p->st.agg)
        due = earlier(due, p->next_agg_tick);
    for (uint32_t j = 0; j < p->st.n_sinks; j++) {
        const pipe_sink *s = p->st.sinks[j];
        if (s->batcher && rf_batcher_pending(s->batcher))
            due = earlier(due, rf_batcher_deadline(s->batcher));
        if (s->sink && rf_sink_pending(s->sink))
            due = earlier(due, now_mono); /* a downstream to retry: at the next tick */
    }
    if (p->st.alerts)
        due = earlier(due, rf_alerts_next_due(p->st.alerts));
    if (p->st.corr)
        due = earlier(due, rf_correlator_next_due(p->st.corr));
    const int64_t flush_wall = rf_statsd_flusher_next_wall(p->statsd);
    if (flush_wall != INT64_MAX)
        due = earlier(due, flush_wall > now_wall ? now_mono + (flush_wall - now_wall) : now_mono);
    if (p->store)
        due = earlier(due, rf_store_next_due_ns(p->store));
    return due;
}

static uint32_t pipeline_tick(rf_pipeline *p, int64_t now_mono, int64_t now_wall)
{
    uint32_t work = apply_pending(p);
    p->now_mono = now_mono;
    rf_series_table_set_now(p->series, now_mono);
    if (p->idle_ttl > 0 && now_mono >= p->next_expire_tick) {
        p->next_expire_tick = now_mono + PIPE_EXPIRE_TICK_NS;
        uint32_t n = rf_series_table_expire(p->series, p->idle_ttl, RF_PIPELINE_EXPIRE_BUDGET,
                                            series_expire, p);
        if (p->edge_series) {
            rf_series_table_set_now(p->edge_series, now_mono);
            rf_series_table_expire(p->edge_series, p->idle_ttl, RF_PIPELINE_EXPIRE_BUDGET,
                                   edge_expire, p);
        }
        if (n) {
            rf_stats_add(&p->series_expired, n);
            work += n;
        }
    }
    for (uint32_t j = 0; j < p->st.n_sinks; j++) {
        pipe_sink *s = p->st.sinks[j];
        if (s->batcher)
            work += (uint32_t)rf_batcher_tick(s->batcher, now_mono);
        if (s->sink && rf_sink_pending(s->sink))
            rf_sink_flush(s->sink, now_mono);
    }
    if (p->st.alerts)
        rf_alerts_tick(p->st.alerts, now_mono, now_wall);
    if (p->st.corr)
        rf_correlator_tick(p->st.corr, now_mono);
    p->last_wall = now_wall;
    rf_statsd_flusher_tick(p->statsd, now_mono, now_wall);
    if (p->st.agg && now_mono >= p->next_agg_tick) {
        rf_aggregator_tick(p->st.agg, now_mono);
        p->next_agg_tick = now_mono + PIPE_AGG_TICK_NS;
    }
    if (p->store)
        rf_store_tick_wall(p->store, now_mono, now_wall);
    p->next_due = next_due(p, now_mono, now_wall);
    return work;
}

/* Emits what the stages hold (open windows, correlation groups, batches)
 * into the current sinks. */
static void stages_emit_all(rf_pipeline *p)
{
    if (p->st.alerts)
        rf_alerts_flush(p->st.alerts);
    if (p->st.agg)
        rf_aggregator_flush(p->st.agg);
    if (p->st.corr)
        rf_correlator_drain(p->st.corr, p->now_mono);
    for (uint32_t j = 0; j < p->st.n_sinks; j++)
        if (p->st.sinks[j]->batcher)
            rf_batcher_flush(p->st.sinks[j]->batcher, p->now_mono);
}

/* stages_emit_all, then the sinks flushed once (no waiting). */
static void stages_drain(rf_pipeline *p)
{
    p->now_mono = rf_clock_mono_ns();
    stages_emit_all(p);
    for (uint32_t j = 0; j < p->st.n_sinks; j++)
        if (p->st.sinks[j]->sink)
            rf_sink_flush(p->st.sinks[j]->sink, p->now_mono);
}

/* On the worker: a reload's stages replace the running ones. What the old
 * ones hold leaves through the old sinks first (a forwarder's bytes not yet
 * taken by the kernel go with its final non-blocking flush in
 * rf_sink_free); every known series is then defined in the new stages, so no
 * event after the swap meets an unknown route or rule. Ungrouped aggregation
 * windows open at the swap are emitted early (flushed), not lost; group
 * windows go to their owners as partials and merged ones carry over
 * (rf_aggregator_handover). */
static uint32_t apply_pending(rf_pipeline *p)
{
    /* Pairs with the release in rf_pipeline_publish. */
    pipe_stages *b = atomic_load_explicit(&p->pending, memory_order_acquire);
    if (!b)
        return 0;
    /* Group windows go on across the swap: the old aggregator's local ones
     * go out as partials, its merged ones move to the new one. */
    if (p->st.agg)
        rf_aggregator_handover(p->st.agg, b->agg);
    stages_drain(p);
    pipe_stages old = p->st;
    p->st = *b;
    rf_statsd_flusher_set_config(p->statsd, &p->st.ps->statsd);
    /* The per-measurement limits are live: the new ones apply from here
     * (b->ps outlives these stages, as the old ps outlived the old ones). */
    rf_series_table_set_limits(p->series, &p->st.ps->limits);
    uint32_t n = rf_series_table_count(p->series);
    for (uint32_t slot = 0; slot < n; slot++) {
        const rf_series_key *k = rf_series_table_key(p->series, (int32_t)slot);
        if (!k)
            continue;
        if (p->st.router)
            rf_router_define(p->st.router, (int32_t)slot, k);
        if (p->st.alerts)
            rf_alerts_define(p->st.alerts, (int32_t)slot, k);
        if (p->st.corr)
            rf_correlator_define(p->st.corr, (int32_t)slot, k);
    }
    n = p->edge_series ? rf_series_table_count(p->edge_series) : 0;
    for (uint32_t slot = 0; slot < n; slot++) {
        const rf_series_key *k = rf_series_table_key(p->edge_series, (int32_t)slot);
        if (!k)
            continue;
        if (p->st.edge_router)
            rf_router_define(p->st.edge_router, (int32_t)slot, k);
        if (p->st.edge_alerts)
            rf_alerts_define(p->st.edge_alerts, (int32_t)slot, k);
    }
    stages_free(&old);
    /* Pairs with the acquire in rf_pipeline_applied. Only b is taken back:
     * a newer set published meanwhile (the engine never does, see
     * rf_pipeline_publish) would stay pending, not be erased. */
    pipe_stages *taken = b;
    atomic_compare_exchange_strong_explicit(&p->pending, &taken, NULL, memory_order_release,
                                            memory_order_relaxed);
    free(b); /* its stages are p->st now; the holder only */
    return 1;
}

int rf_pipeline_receive_partial(rf_pipeline *p, const uint8_t *block, size_t len)
{
    RF_ASSERT_OWNER(&p->owner);
    apply_pending(p);
    if (!p->st.agg) {
        rf_stats_add(&p->peer_unhandled, 1);
        return -ENOENT;
    }
    if (!p->event_clock)
        p->now_mono = rf_clock_mono_ns();
    return rf_aggregator_receive_remote(p->st.agg, block, len, p->now_mono);
}

void rf_pipeline_drain(rf_pipeline *p)
{
    rf_pipeline_drain_at(p, rf_clock_mono_ns());
}

void rf_pipeline_close_stages(rf_pipeline *p)
{
    rf_pipeline_close_stages_at(p, rf_clock_mono_ns());
}

/* Stop, step 1 (pipeline.h "Between shards"): what peers must see leaves
 * now, while they still receive. */
void rf_pipeline_close_stages_at(rf_pipeline *p, int64_t now_mono)
{
    RF_ASSERT_OWNER(&p->owner);
    apply_pending(p);
    p->now_mono = now_mono;
    if (p->st.alerts)
        rf_alerts_flush(p->st.alerts);
    if (p->st.agg)
        rf_aggregator_close(p->st.agg);
    /* Open correlation groups go to their series' owners now. */
    if (p->st.corr)
        rf_correlator_close(p->st.corr, now_mono);
    peer_deliver_self(p);
}

void rf_pipeline_drain_at(rf_pipeline *p, int64_t now_mono)
{
    RF_ASSERT_OWNER(&p->owner);
    apply_pending(p);
    p->now_mono = now_mono;
    peer_deliver_self(p);
    /* The interval being collected is flushed now rather than lost (StatsD
     * would lose it): stamped with the stop time. */
    rf_statsd_flusher_flush(p->statsd, now_mono,
                            p->event_clock ? p->last_wall : rf_clock_wall_ns());
    stages_emit_all(p);
    peer_deliver_self(p);
    for (uint32_t j = 0; j < p->st.n_sinks; j++) {
        pipe_sink *s = p->st.sinks[j];
        if (!s->sink)
            continue;
        /* A downstream that is still taking bytes gets a short grace (while
         * it makes progress, at most PIPE_DRAIN_GRACE_NS); what it never took
         * is counted as dropped here, before the final summary, instead of
         * vanishing with the sink's buffer (reliability: loss accounting). */
        /* Real time: this waits for a downstream, whatever clock drives the
         * stages (rf_pipeline_drain_at). */
        const int64_t t0 = rf_clock_mono_ns();
        int64_t deadline = t0 + PIPE_DRAIN_GRACE_NS, last_progress = t0;
        uint32_t pending = rf_sink_pending(s->sink);
        for (;;) {
            int64_t now = rf_clock_mono_ns();
            rf_sink_flush(s->sink, now);
            uint32_t left = rf_sink_pending(s->sink);
            if (left == 0 || now >= deadline)
                break;
            if (left < pending)
                last_progress = now;
            else if (now - last_progress >= PIPE_DRAIN_STALL_NS)
                break;
            pending = left;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        uint64_t lost = rf_sink_discard_pending(s->sink);
        if (lost)
            rf_log_warn("pipeline",
                        "worker-%u sink %s: %lu queued lines not taken by the "
                        "downstream at shutdown (counted as disconnected)",
                        p->index, rf_sink_name(s->sink), (unsigned long)lost);
    }
    if (p->store) {
        /* A flush that finds every slot in flight cuts what it can and says
         * -EAGAIN: the I/O thread frees slots as it writes, so try again
         * (bounded; rf_store_close cuts whatever is left in any case). */
        uint64_t ticket = 0;
        const int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
        int rc;
        while ((rc = rf_store_flush(p->store, &ticket)) == -EAGAIN &&
               rf_clock_mono_ns() < deadline) {
            struct timespec ts = {0, 200 * 1000};
            nanosleep(&ts, NULL);
        }
        if (rc == 0)
            rf_store_wait_durable(p->store, ticket, 5 * RF_NS_PER_S);
    }
}

/* ---- construction ------------------------------------------------------- */

/* NULL for a series this shard's table does not hold (id 0, a series
 * refused here, one defined on another shard): the sinks then write the id
 * (sink.h), never a key they do not have. */
static const char *namer_series_text(void *ctx, uint64_t series_id, uint32_t *len)
{
    rf_pipeline *p = ctx;
    const rf_series_key *k = store_key_of(p, series_id);
    if (!k)
        return NULL;
    *len = k->len;
    return k->text;
}

static const char *namer_rule_name(void *ctx, uint32_t rule_id)
{
    rf_pipeline *p = ctx;
    return p->st.alerts ? rf_alerts_rule_name(p->st.alerts, rule_id) : NULL;
}

static const rf_series_key *router_key(void *ctx, int32_t slot)
{
    rf_pipeline *p = ctx;
    return rf_series_table_key(p->series, slot);
}

static void stages_free(pipe_stages *st)
{
    rf_aggregator_free(st->agg);
    if (st->partials)
        free(st->partials->line);
    free(st->partials);
    rf_correlator_free(st->corr);
    rf_alerts_free(st->alerts);
    rf_router_free(st->router);
    rf_alerts_free(st->edge_alerts);
    rf_router_free(st->edge_router);
    for (uint32_t j = 0; j < st->n_sinks; j++) {
        pipe_sink *s = st->sinks[j];
        rf_batcher_free(s->batcher);
        rf_sink_free(s->sink);
        free(s);
    }
    memset(st, 0, sizeof(*st));
}

/* The aggregator hands a merged window out as a partial line (worker). */
static bool partial_out(void *ctx, uint32_t rule, uint64_t group_id, int64_t start,
                        const uint8_t *block, size_t len)
{
    pipe_partials *pp = ctx;
    pipe_sink *s = pp->sink[rule];
    size_t need = rf_agg_partial_line_size(len);
    if (!s || !s->sink || need > UINT32_MAX)
        return false;
    if (need > pp->cap) { /* per window output at most, never per event */
        char *l = realloc(pp->line, need);
        if (!l)
            return false;
        pp->line = l;
        pp->cap = need;
    }
    size_t n = rf_agg_partial_line(group_id, start, block, len, pp->line, pp->cap);
    if (!n || !rf_sink_write_line(s->sink, pp->line, (uint32_t)n))
        return false;
    rf_sink_flush(s->sink, s->p->now_mono);
    return true;
}

/* Each rule's partials_to names a line-protocol sink (checked at parse). */
static int partials_bind(pipe_stages *st, const rf_pipeline_settings *ps, rf_err *err)
{
    for (uint32_t r = 0; r < ps->aggregation.n_rules; r++) {
        const char *to = ps->aggregation.rules[r].partials_to;
        if (!to[0])
            continue;
        if (!st->partials && !(st->partials = calloc(1, sizeof(*st->partials))))
            return rf_err_set(err, ENOMEM, "aggregation: out of memory");
        for (uint32_t j = 0; j < ps->sinks.n; j++)
            if (!strcmp(ps->sinks.names[j], to))
                st->partials->sink[r] = st->sinks[j];
        if (!st->partials->sink[r] || !st->partials->sink[r]->sink)
            return rf_err_set(err, EINVAL,
                              "aggregations[%u].partials.to: '%s' is not a line-protocol sink", r,
                              to);
    }
    if (st->partials)
        rf_aggregator_set_partial_out(st->agg, partial_out, st->partials);
    return 0;
}

/* Builds every replaceable stage of pipeline p from ps into st (zeroed).
 * Runs on the control thread: it only reads p's constant parts (index,
 * max_series, the series table's address). */
static int stages_build(rf_pipeline *p, const rf_pipeline_settings *ps, pipe_stages *st,
                        rf_err *err)
{
    memset(st, 0, sizeof(*st));
    st->ps = ps;
    const uint32_t index = p->index, max_series = p->max_series;
    int rc = 0;
    const rf_sink_namer namer = {
        .series_text = namer_series_text, .rule_name = namer_rule_name, .ctx = p};
    for (uint32_t j = 0; j < ps->sinks.n; j++) {
        pipe_sink *s = calloc(1, sizeof(*s));
        if (!s) {
            rc = rf_err_set(err, ENOMEM, "pipeline %u: out of memory for sinks", index);
            goto fail;
        }
        st->sinks[st->n_sinks++] = s;
        s->p = p;
        s->id = j;
        s->is_store = ps->sinks.sinks[j].type == RF_SINK_STORE;
        if (s->is_store)
            continue;
        rf_sink_config sc = ps->sinks.sinks[j];
        sc.instance = index; /* a disk buffer per worker (sink.h) */
        if ((rc = rf_sink_new(&sc, &namer, &s->sink, err)) < 0)
            goto fail;
        s->batcher = rf_batcher_new(&ps->batch, (rf_emitter){.emit = batch_emit, .ctx = s});
        if (!s->batcher) {
            rc =
                rf_err_set(err, ENOMEM, "pipeline %u: sink %s: batcher", index, ps->sinks.names[j]);
            goto fail;
        }
    }

    if (ps->routes.cfg.n_routes) {
        const rf_router_config rcfg = rf_pipeline_router_config(ps);
        if ((rc = rf_router_new(&rcfg, max_series, &st->router, err)) < 0)
            goto fail;
        rf_router_set_key_source(st->router, router_key, p);
    }
    const rf_emitter derived = {.emit = derived_emit, .ctx = p};
    if (ps->alerts.cfg.n_rules) {
        if ((rc = rf_alerts_new(&ps->alerts.cfg, max_series, derived, &st->alerts, err)) < 0)
            goto fail;
        rf_alerts_set_peers(st->alerts, index, p->shards, rf_pipeline_peer_send, p);
        if (st->router) {
            const char *names[1024];
            uint32_t n = rf_alerts_rule_count(st->alerts);
            for (uint32_t i = 0; i < n && i < 1024; i++)
                names[i] = rf_alerts_rule_name(st->alerts, i);
            if ((rc = rf_router_bind_names(st->router, RF_SUBJ_ALERT, names, n < 1024 ? n : 1024,
                                           err)) < 0)
                goto fail;
        }
    }
    /* The critical edge's routes and threshold rules (only with peers:
     * on one shard every series is the shard's own). */
    if (p->shards > 1 && ps->routes.cfg.n_routes) {
        const rf_router_config rcfg = rf_pipeline_router_config(ps);
        if ((rc = rf_router_new(&rcfg, RF_PIPELINE_EDGE_SERIES, &st->edge_router, err)) < 0)
            goto fail;
        rf_router_set_key_source(st->edge_router, edge_router_key, p);
    }
    if (p->shards > 1 && ps->alerts.cfg.n_rules) {
        if ((rc = rf_alerts_new(&ps->alerts.cfg, RF_PIPELINE_EDGE_SERIES, derived, &st->edge_alerts,
                                err)) < 0)
            goto fail;
        rf_alerts_set_edge(st->edge_alerts);
    }
    /* Always on: events carrying a correlation id are grouped whatever the
     * patterns (the seed's id table), at no cost to the others. */
    if ((rc = rf_correlator_new(&ps->correlation.cfg, max_series, derived, &st->corr, err)) < 0 ||
        (rc = rf_correlator_set_peers(st->corr, rf_pipeline_peer_send, p, index, p->shards, err)) <
            0)
        goto fail;
    if (st->router) {
        uint32_t n = 0;
        const char *const *names = rf_correlator_names(st->corr, &n);
        if ((rc = rf_router_bind_names(st->router, RF_SUBJ_CORRELATED, names, n, err)) < 0)
            goto fail;
    }
    if (ps->aggregation.n_rules) {
        st->agg = rf_aggregator_new(&ps->aggregation, p->series,
                                    (rf_emitter){.emit = agg_emit, .ctx = p}, err);
        if (!st->agg) {
            rc = -(err && err->code ? err->code : EINVAL);
            goto fail;
        }
        if ((rc = rf_aggregator_set_peers(st->agg, p->index, p->shards, rf_pipeline_peer_send, p)) <
            0) {
            rf_err_set(err, -rc, "pipeline %u: aggregation: out of memory for peers", index);
            goto fail;
        }
        if ((rc = partials_bind(st, ps, err)) < 0)
            goto fail;
    }
    return 0;
fail:
    stages_free(st);
    return rc;
}

int rf_pipeline_new(const rf_pipeline_settings *ps, uint32_t index, uint32_t shards,
                    rf_store_shard *store, rf_pipeline **out, rf_err *err)
{
    if (shards == 0 || index >= shards)
        return rf_err_set(err, EINVAL, "pipeline %u: not a shard of %u", index, shards);
    rf_pipeline *p = aligned_alloc(64, (sizeof(*p) + 63) & ~(size_t)63);
    if (!p)
        return rf_err_set(err, ENOMEM, "pipeline %u: out of memory", index);
    memset(p, 0, sizeof(*p));
    p->index = index;
    p->shards = shards;
    p->store = store;
    atomic_init(&p->pending, NULL);
    rf_hist_init(&p->critical_path);
    int rc = 0;
    p->max_series = ps->max_series ? ps->max_series : RF_PIPELINE_DEFAULT_MAX_SERIES;
    p->series = rf_series_table_new(p->max_series);
    if (!p->series) {
        rc = rf_err_set(err, ENOMEM, "pipeline %u: out of memory for %u series", index,
                        p->max_series);
        goto fail;
    }
    rf_series_table_set_limits(p->series, &ps->limits);
    if (shards > 1 && !(p->edge_series = rf_series_table_new(RF_PIPELINE_EDGE_SERIES))) {
        rc = rf_err_set(err, ENOMEM, "pipeline %u: out of memory for the critical edge", index);
        goto fail;
    }
    p->idle_ttl = ps->series_idle_ttl_ns;
    if ((rc = stages_build(p, ps, &p->st, err)) < 0)
        goto fail;
    p->statsd = rf_statsd_flusher_new(&ps->statsd, p->series,
                                      (rf_emitter){.emit = statsd_emit, .ctx = p}, err);
    if (!p->statsd) {
        rc = -(err && err->code ? err->code : EINVAL);
        goto fail;
    }

    char labels[32];
    snprintf(labels, sizeof(labels), "worker=\"%u\"", index);
    /* Counter names without _total: the exposition adds it. */
    rf_stats_register_histogram("ringflow_critical_path_seconds",
                                "Receipt to hand-off to a critical sink.", labels,
                                &p->critical_path);
    for (int st = 0; st < PIPE_STAGE__COUNT; st++) {
        char slabels[64];
        snprintf(slabels, sizeof(slabels), "worker=\"%u\",stage=\"%s\"", index, stage_names[st]);
        rf_stats_register_histogram("ringflow_stage_batch_seconds",
                                    "Time a stage took for one batch of up to 256 events "
                                    "(tick: one timer round).",
                                    slabels, &p->stage_ns[st]);
    }
    rf_stats_register_counter("ringflow_pipeline_processed", "Data events run through the stages.",
                              labels, &p->processed);
    rf_stats_register_counter("ringflow_pipeline_unknown_series",
                              "Events dropped: their series definition never arrived.", labels,
                              &p->unknown_series);
    rf_stats_register_counter("ringflow_pipeline_series_rejected",
                              "Series refused by the cardinality limits.", labels,
                              &p->series_rejected);
    /* By reason, per worker; per measurement see `show series` (and the top
     * measurements' ringflow_series_refused_by_measurement on /metrics). */
    char rlabels[96];
    snprintf(rlabels, sizeof(rlabels), "worker=\"%u\",reason=\"shard_limit\"", index);
    rf_stats_register_counter("ringflow_series_refused",
                              "New series refused, by the limit that refused them.", rlabels,
                              &p->rejected_shard_limit);
    snprintf(rlabels, sizeof(rlabels), "worker=\"%u\",reason=\"measurement_limit\"", index);
    rf_stats_register_counter("ringflow_series_refused",
                              "New series refused, by the limit that refused them.", rlabels,
                              &p->rejected_measurement_limit);
    rf_stats_register_counter("ringflow_series_expired",
                              "Series retired after pipeline.series_idle_ttl without an event "
                              "(their slots reused).",
                              labels, &p->series_expired);
    rf_stats_register_counter("ringflow_pipeline_unrouted", "Events that matched no route.", labels,
                              &p->unrouted);
    rf_stats_register_counter("ringflow_pipeline_store_rejected",
                              "Events the storage shard refused.", labels, &p->store_rejected);
    /* Peer messages (pipeline.h "Between shards"): what the stages sent and
     * took, and the two ways one is lost here. */
    rf_stats_register_counter("ringflow_pipeline_peer_messages_sent",
                              "Peer messages this worker's stages sent (own worker included).",
                              labels, &p->peer_sent);
    rf_stats_register_counter("ringflow_pipeline_peer_messages_received",
                              "Peer messages handed to a stage of this worker.", labels,
                              &p->peer_received);
    snprintf(rlabels, sizeof(rlabels), "worker=\"%u\",reason=\"unhandled\"", index);
    rf_stats_register_counter("ringflow_pipeline_peer_messages_dropped",
                              "Peer messages dropped, by reason (unhandled: no stage here takes "
                              "them; undeliverable: no transport to their worker).",
                              rlabels, &p->peer_unhandled);
    snprintf(rlabels, sizeof(rlabels), "worker=\"%u\",reason=\"undeliverable\"", index);
    rf_stats_register_counter("ringflow_pipeline_peer_messages_dropped",
                              "Peer messages dropped, by reason (unhandled: no stage here takes "
                              "them; undeliverable: no transport to their worker).",
                              rlabels, &p->peer_undeliverable);
    /* The critical lane's edge (pipeline.h "The edge"). */
    rf_stats_register_counter("ringflow_critical_edge_evaluated",
                              "Critical events whose threshold rules and sinks ran at this worker, "
                              "where they arrived (the edge).",
                              labels, &p->edge_evaluated);
    rf_stats_register_counter("ringflow_critical_edge_unknown",
                              "Critical events the edge left to their owner: their series is not "
                              "in the edge's table.",
                              labels, &p->edge_unknown);
    rf_stats_register_counter("ringflow_critical_edge_refused",
                              "Series definitions the edge refused (its table full, no memory).",
                              labels, &p->edge_refused);
    *out = p;
    return 0;
fail:
    rf_pipeline_free(p);
    return rc;
}

int rf_pipeline_prepare(rf_pipeline *p, const rf_pipeline_settings *ps, rf_err *err)
{
    pipe_stages *b = calloc(1, sizeof(*b));
    if (!b)
        return rf_err_set(err, ENOMEM, "pipeline %u: out of memory", p->index);
    int rc = stages_build(p, ps, b, err);
    if (rc < 0) {
        free(b);
        return rc;
    }
    p->prepared = b;
    return 0;
}

void rf_pipeline_discard_prepared(rf_pipeline *p)
{
    if (p->prepared) {
        stages_free(p->prepared);
        free(p->prepared);
        p->prepared = NULL;
    }
}

void rf_pipeline_publish(rf_pipeline *p)
{
    pipe_stages *b = p->prepared;
    p->prepared = NULL;
    /* One set at a time: the engine refuses a reload until every worker
     * took the last one (rf_pipeline_applied), so none is overwritten. */
    /* Relaxed: the caller saw rf_pipeline_applied (acquire) already. */
    RF_ASSERT(atomic_load_explicit(&p->pending, memory_order_relaxed) == NULL);
    /* Pairs with the acquire in apply_pending: the built stages are visible. */
    atomic_store_explicit(&p->pending, b, memory_order_release);
}

int64_t rf_pipeline_next_due_ns(const rf_pipeline *p)
{
    return p->next_due;
}

bool rf_pipeline_swap_pending(const rf_pipeline *p)
{
    /* Relaxed: a hint to tick (apply_pending acquires). */
    return atomic_load_explicit(&p->pending, memory_order_relaxed) != NULL;
}

bool rf_pipeline_applied(const rf_pipeline *p)
{
    /* Pairs with the release store of NULL in apply_pending. */
    return atomic_load_explicit(&p->pending, memory_order_acquire) == NULL;
}

/* Mirrors rf_pipeline_new and pipe_sink_new: the pipeline's scratch (four
 * batches and their slots), the measurement counts and the latency
 * histograms; per sink, its critical and standard staging. The stages are
 * their modules' (rf_pipeline_stages_memory_bound). */
#define BOUND_PIPE_FIXED (4ull * 256 * (sizeof(rf_event) + 4) + 1024 * 80 + 64 * 1024)
#define BOUND_PIPE_SINK (2ull * 256 * sizeof(rf_event) + 64)
_Static_assert(sizeof(pipe_sink) <= BOUND_PIPE_SINK, "rf_pipeline_memory_bound: a sink's staging");
_Static_assert(sizeof(struct rf_pipeline) <= BOUND_PIPE_FIXED,
               "rf_pipeline_memory_bound: the pipeline");
uint64_t rf_pipeline_memory_bound(const rf_pipeline_settings *ps)
{
    return BOUND_PIPE_FIXED + (uint64_t)ps->sinks.n * BOUND_PIPE_SINK;
}

uint64_t rf_pipeline_stages_memory_bound(const rf_pipeline_settings *ps, uint32_t max_series)
{
    rf_router_config rc = ps->routes.cfg;
    rc.n_sink_names = ps->sinks.n;
    uint64_t b = rf_router_memory_bound(&rc, max_series);
    b += rf_alerts_memory_bound(&ps->alerts.cfg, max_series);
    /* The critical edge's (built with more than one shard). */
    b += rf_router_memory_bound(&rc, RF_PIPELINE_EDGE_SERIES);
    b += rf_alerts_memory_bound(&ps->alerts.cfg, RF_PIPELINE_EDGE_SERIES);
    b += rf_correlator_memory_bound(&ps->correlation.cfg, max_series);
    b += rf_aggregator_memory_bound(&ps->aggregation, max_series);
    if (ps->statsd.enabled)
        b += rf_statsd_flusher_memory_bound(&ps->statsd);
    for (uint32_t j = 0; j < ps->sinks.n; j++) {
        const rf_sink_config *sc = &ps->sinks.sinks[j];
        b += BOUND_PIPE_SINK;
        if (sc->type != RF_SINK_STORE)
            b += rf_sink_memory_bound(sc) + rf_batcher_memory_bound(&ps->batch);
    }
    return b;
}

void rf_pipeline_free(rf_pipeline *p)
{
    if (!p)
        return;
    stages_free(&p->st);
    rf_pipeline_discard_prepared(p);
    pipe_stages *pending = atomic_load_explicit(&p->pending, memory_order_acquire);
    if (pending) {
        stages_free(pending);
        free(pending);
    }
    rf_statsd_flusher_free(p->statsd);
    rf_series_table_free(p->series);
    rf_series_table_free(p->edge_series);
    for (uint32_t i = 0; i < p->self_n; i++)
        peer_free_aux(&p->self_q[i]);
    free(p->self_q);
    free(p);
}

uint64_t rf_pipeline_series_refused_at_limit(const rf_pipeline *p)
{
    /* Pairs with the owning worker's rf_stats_add: a count, no data with it. */
    return atomic_load_explicit(&p->rejected_shard_limit, memory_order_relaxed);
}

void rf_pipeline_stats_read(const rf_pipeline *p, rf_pipeline_stats *out)
{
    out->processed = atomic_load_explicit(&p->processed, memory_order_relaxed);
    out->unknown_series = atomic_load_explicit(&p->unknown_series, memory_order_relaxed);
    out->series_rejected = atomic_load_explicit(&p->series_rejected, memory_order_relaxed);
    out->series_rejected_shard_limit =
        atomic_load_explicit(&p->rejected_shard_limit, memory_order_relaxed);
    out->series_rejected_measurement_limit =
        atomic_load_explicit(&p->rejected_measurement_limit, memory_order_relaxed);
    out->series_def_failed = atomic_load_explicit(&p->series_def_failed, memory_order_relaxed);
    out->series_expired = atomic_load_explicit(&p->series_expired, memory_order_relaxed);
    out->to_critical_sinks = atomic_load_explicit(&p->to_critical, memory_order_relaxed);
    out->to_standard_sinks = atomic_load_explicit(&p->to_standard, memory_order_relaxed);
    out->to_store = atomic_load_explicit(&p->to_store, memory_order_relaxed);
    out->store_rejected = atomic_load_explicit(&p->store_rejected, memory_order_relaxed);
    out->unrouted = atomic_load_explicit(&p->unrouted, memory_order_relaxed);
    out->peer_sent = atomic_load_explicit(&p->peer_sent, memory_order_relaxed);
    out->peer_received = atomic_load_explicit(&p->peer_received, memory_order_relaxed);
    out->peer_unhandled = atomic_load_explicit(&p->peer_unhandled, memory_order_relaxed);
    out->peer_undeliverable = atomic_load_explicit(&p->peer_undeliverable, memory_order_relaxed);
    out->edge_evaluated = atomic_load_explicit(&p->edge_evaluated, memory_order_relaxed);
    out->edge_unknown = atomic_load_explicit(&p->edge_unknown, memory_order_relaxed);
    out->edge_refused = atomic_load_explicit(&p->edge_refused, memory_order_relaxed);
}

void rf_pipeline_log_summary(const rf_pipeline *p)
{
    rf_pipeline_stats st;
    rf_pipeline_stats_read(p, &st);
    rf_log_info("pipeline",
                "worker-%u final: processed=%lu unknown_series=%lu series_rejected=%lu "
                "to_critical=%lu to_standard=%lu to_store=%lu store_rejected=%lu unrouted=%lu "
                "series_rejected_shard_limit=%lu series_rejected_measurement_limit=%lu "
                "peer_sent=%lu peer_received=%lu peer_unhandled=%lu peer_undeliverable=%lu",
                p->index, (unsigned long)st.processed, (unsigned long)st.unknown_series,
                (unsigned long)st.series_rejected, (unsigned long)st.to_critical_sinks,
                (unsigned long)st.to_standard_sinks, (unsigned long)st.to_store,
                (unsigned long)st.store_rejected, (unsigned long)st.unrouted,
                (unsigned long)st.series_rejected_shard_limit,
                (unsigned long)st.series_rejected_measurement_limit, (unsigned long)st.peer_sent,
                (unsigned long)st.peer_received, (unsigned long)st.peer_unhandled,
                (unsigned long)st.peer_undeliverable);
    if (p->statsd) {
        rf_statsd_stats sd;
        rf_statsd_flusher_stats_read(p->statsd, &sd);
        if (sd.samples)
            rf_log_info("pipeline",
                        "worker-%u statsd final: samples=%lu raw_dropped=%lu invalid=%lu "
                        "no_memory=%lu flushes=%lu values=%lu series=%lu sketched=%lu hll_sets=%lu",
                        p->index, (unsigned long)sd.samples, (unsigned long)sd.raw_dropped,
                        (unsigned long)sd.invalid, (unsigned long)sd.no_memory,
                        (unsigned long)sd.flushes, (unsigned long)sd.values,
                        (unsigned long)sd.states, (unsigned long)sd.sketched,
                        (unsigned long)sd.hll_sets);
    }
    if (p->st.agg) {
        rf_agg_stats a;
        rf_aggregator_stats_read(p->st.agg, &a);
        rf_log_info("pipeline",
                    "worker-%u aggregation final: events=%lu applied=%lu unmatched=%lu "
                    "late_dropped=%lu late_to_current=%lu windows=%lu aggregates=%lu "
                    "states_full=%lu invalid_value=%lu partials_sent=%lu partials_received=%lu "
                    "partials_late=%lu partials_no_rule=%lu partials_bad=%lu "
                    "partial_alloc_failed=%lu owner_forced=%lu owner_full=%lu",
                    p->index, (unsigned long)a.events, (unsigned long)a.applied,
                    (unsigned long)a.unmatched, (unsigned long)a.late_dropped,
                    (unsigned long)a.late_to_current, (unsigned long)a.windows_emitted,
                    (unsigned long)a.aggregates, (unsigned long)a.states_full,
                    (unsigned long)a.invalid_value, (unsigned long)a.partials_sent,
                    (unsigned long)a.partials_received, (unsigned long)a.partials_late,
                    (unsigned long)a.partials_no_rule, (unsigned long)a.partials_bad,
                    (unsigned long)a.partial_alloc_failed, (unsigned long)a.owner_forced,
                    (unsigned long)a.owner_full);
        if (a.remote_out || a.remote_out_failed || a.remote_in || a.remote_bad || a.remote_late)
            rf_log_info("pipeline",
                        "worker-%u aggregation between hosts: remote_out=%lu "
                        "remote_out_failed=%lu remote_in=%lu remote_late=%lu remote_bad=%lu "
                        "remote_complete=%lu remote_timed_out=%lu",
                        p->index, (unsigned long)a.remote_out, (unsigned long)a.remote_out_failed,
                        (unsigned long)a.remote_in, (unsigned long)a.remote_late,
                        (unsigned long)a.remote_bad, (unsigned long)a.remote_complete,
                        (unsigned long)a.remote_timed_out);
    }
    if (p->st.alerts) {
        rf_alerts_stats a;
        rf_alerts_stats_read(p->st.alerts, &a);
        rf_log_info("pipeline",
                    "worker-%u alerts final: evaluated=%lu fired=%lu resolved=%lu "
                    "bindings_refused=%lu reports_sent=%lu reports_received=%lu "
                    "reports_unknown=%lu reports_late=%lu series_def_failed=%lu",
                    p->index, (unsigned long)a.evaluated, (unsigned long)a.fired,
                    (unsigned long)a.resolved, (unsigned long)a.bindings_refused,
                    (unsigned long)a.reports_sent, (unsigned long)a.reports_received,
                    (unsigned long)a.reports_unknown, (unsigned long)a.reports_late,
                    (unsigned long)a.series_def_failed);
    }
    for (uint32_t j = 0; j < p->st.n_sinks; j++) {
        const pipe_sink *s = p->st.sinks[j];
        if (!s->sink)
            continue;
        rf_sink_stats ss;
        rf_sink_stats_read(s->sink, &ss);
        rf_log_info("pipeline",
                    "worker-%u sink %s final: accepted=%lu lines_out=%lu queue_full=%lu "
                    "disconnected=%lu unsupported=%lu oversize=%lu io_error=%lu",
                    p->index, rf_sink_name(s->sink), (unsigned long)ss.accepted,
                    (unsigned long)ss.lines_out, (unsigned long)ss.drop_queue_full,
                    (unsigned long)ss.drop_disconnected, (unsigned long)ss.drop_unsupported,
                    (unsigned long)ss.drop_oversize, (unsigned long)ss.drop_io_error);
    }
}

const struct rf_hist *rf_pipeline_critical_hist(const rf_pipeline *p)
{
    return &p->critical_path;
}

uint32_t rf_pipeline_sink_count(const rf_pipeline *p)
{
    return p->st.n_sinks;
}

const rf_sink *rf_pipeline_sink(const rf_pipeline *p, uint32_t i)
{
    return i < p->st.n_sinks ? p->st.sinks[i]->sink : NULL;
}

const rf_series_table *rf_pipeline_series(const rf_pipeline *p)
{
    return p->series;
}

void rf_pipeline_measurements(const rf_pipeline *p, rf_series_meas_fn fn, void *ctx)
{
    rf_series_table_measurements(p->series, fn, ctx);
}

void rf_pipeline_stages_read(const rf_pipeline *p, rf_pipeline_stage_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (p->st.router) {
        out->has_router = true;
        rf_router_stats_read(p->st.router, &out->router);
    }
    if (p->st.agg) {
        out->has_aggregation = true;
        rf_aggregator_stats_read(p->st.agg, &out->aggregation);
    }
    out->has_alerts = rf_pipeline_alerts_read(p, &out->alerts);
    if (p->st.corr) {
        out->has_correlation = true;
        rf_correlator_stats_read(p->st.corr, &out->correlation);
    }
    rf_series_table_stats_read(p->series, &out->series);
    out->has_statsd = rf_pipeline_statsd_read(p, &out->statsd);
}

bool rf_pipeline_statsd_read(const rf_pipeline *p, rf_statsd_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (p->statsd)
        rf_statsd_flusher_stats_read(p->statsd, out);
    return p->statsd != NULL;
}

bool rf_pipeline_alerts_read(const rf_pipeline *p, rf_alerts_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (p->st.alerts)
        rf_alerts_stats_read(p->st.alerts, out);
    return p->st.alerts != NULL;
}
