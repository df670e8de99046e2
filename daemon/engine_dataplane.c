/* The engine's data plane: what each worker does per poll (receive, parse,
 * dispatch by owner, process what it owns), the rings between workers (the
 * standard mesh, the critical lane and the peer messages between stages)
 * and the worker's side of the stop, the test hold and the recording's
 * grace period. Runs on the worker threads; the control thread's side is
 * in engine_start.c, engine_reload.c and engine_record.c. */
#include "daemon/engine_pvt.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/stats/stats.h"

static uint32_t drain_inbound(rf_engine_worker *w);

/* Runs the events this worker owns through its stages. */
static void process_local(rf_engine_worker *w)
{
    if (w->n_local == 0)
        return;
    rf_shard_process(w->shard, w->local, w->n_local);
    rf_stats_add(&w->events_processed, w->n_local);
    w->n_local = 0;
    w->local_since_round = true;
}

/* Puts ev[done..n) into ring r to worker j, waiting for room: this worker
 * keeps draining and processing its own inbound rings meanwhile (every
 * worker is both producer and consumer, and a plain wait could deadlock two
 * workers sending to each other), then wakes j. */
static void enqueue_waiting(rf_engine_worker *w, uint32_t j, rf_ring *r, const rf_event *ev,
                            uint32_t done, uint32_t n)
{
    rf_engine *e = w->engine;
    if (done < n) {
        rf_stats_add(&w->block_waits, 1);
        unsigned idle = 0;
        while (done < n) {
            rf_worker_wake(e->workers[j]->thread);
            if (drain_inbound(w) == 0 && ++idle > 64) {
                sched_yield();
                idle = 0;
            }
            done += rf_ring_enqueue_burst(r, ev + done, sizeof(rf_event), n - done);
        }
    }
    rf_stats_add(&w->sent_to_peers, n);
    rf_worker_wake(e->workers[j]->thread);
}

/* Whether HTTP writes should be refused (503 + Retry-After) now: within the
 * last second, this worker's rings dropped points (drop_newest), or some
 * shard refused a new series because its table was full (max_series, which
 * engine.memory_limit sizes: the engine's memory bound at work). Under
 * `block` nothing is dropped and the worker waits instead, which the client
 * sees as a slower answer. A series refused again (remembered) or at its
 * measurement's own limit does not count: that is a policy for that
 * measurement, not the engine out of room. And while resident memory is
 * above engine.memory_limit (rf_engine_set_memory_over). Each 503 is
 * counted by its reason. Worker thread; per request: one clock read and a
 * relaxed load per worker. */
static bool worker_busy(void *ctx)
{
    rf_engine_worker *w = ctx;
    const rf_engine *e = w->engine;
    int64_t now = rf_clock_mono_ns();
    uint64_t refused = 0;
    for (uint32_t j = 0; j < e->n_workers; j++)
        refused += rf_pipeline_series_refused_at_limit(rf_shard_pipeline(e->workers[j]->shard));
    if (!w->series_refused_summed) { /* what was refused before the first request is old */
        w->series_refused_summed = true;
        w->series_refused_seen = refused;
    }
    if (refused != w->series_refused_seen) {
        w->series_refused_seen = refused;
        w->last_series_refusal_ns = now;
    }
    /* Pairs with the relaxed store in rf_engine_set_memory_over. */
    if (atomic_load_explicit(&e->memory_over, memory_order_relaxed)) {
        rf_stats_add(&w->busy_memory, 1);
        return true;
    }
    if (w->last_ring_drop_ns && now - w->last_ring_drop_ns < RF_NS_PER_S) {
        rf_stats_add(&w->busy_ring_drops, 1);
        return true;
    }
    if (w->last_series_refusal_ns && now - w->last_series_refusal_ns < RF_NS_PER_S) {
        rf_stats_add(&w->busy_series_limit, 1);
        return true;
    }
    return false;
}

/* Sends n events to worker j. A full ring under the block policy (and always
 * for definitions) makes this worker wait (enqueue_waiting); drop_newest
 * drops and counts what does not fit. */
static void send_to_peer(rf_engine_worker *w, uint32_t j, const rf_event *ev, uint32_t n,
                         bool must_deliver)
{
    rf_engine *e = w->engine;
    rf_ring *r = w->outbound[j];
    uint32_t done = rf_ring_enqueue_burst(r, ev, sizeof(rf_event), n);
    if (done < n && !must_deliver && e->policy == RF_RING_DROP_NEWEST) {
        done += rf_ring_enqueue_policy(r, ev + done, sizeof(rf_event), n - done,
                                       RF_RING_DROP_NEWEST, NULL);
        rf_stats_add(&w->dropped_ring_full, n - done);
        if (done < n) /* the drop path only: one clock read there */
            w->last_ring_drop_ns = rf_clock_mono_ns();
        n = done;
    }
    enqueue_waiting(w, j, r, ev, done, n);
    w->sent_to[j] += n; /* a sync marker to j comes after these (engine_sync.c) */
}

static void flush_staging(rf_engine_worker *w, uint32_t j)
{
    rf_staging *s = &w->staging[j];
    if (s->n_defs) {
        send_to_peer(w, j, s->defs, s->n_defs, true);
        s->n_defs = 0;
    }
    if (s->n_data) {
        send_to_peer(w, j, s->data, s->n_data, false);
        s->n_data = 0;
    }
}

static void flush_all_staging(rf_engine_worker *w)
{
    for (uint32_t j = 0; j < w->engine->n_workers; j++)
        if (j != w->index)
            flush_staging(w, j);
}

/* ---- peer messages -------------------------------------------------------- */

void rf_engine_peer_free_owned(const rf_event *ev, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (ev[i].flags & RF_EVF_OWNS_AUX)
            free((void *)(uintptr_t)ev[i].aux);
}

/* The pipeline's transport to worker `to` (rf_pipeline_set_peer_send): into
 * the backlog, which flush_peer_backlogs empties into the ring at the end of
 * the poll. Never waits: a stage sending from inside processing must not
 * re-enter processing (enqueue_waiting would). */
static void peer_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    rf_engine_worker *w = ctx;
    rf_peer_backlog *b = &w->peer_backlog[to];
    if (b->head == b->n)
        b->head = b->n = 0;
    if (b->n + n > b->cap) {
        if (b->head) { /* compact first: the front was sent */
            memmove(b->ev, b->ev + b->head, (size_t)(b->n - b->head) * sizeof(rf_event));
            b->n -= b->head;
            b->head = 0;
        }
    }
    if (b->n + n > b->cap) {
        uint32_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n && cap < RF_PEER_BACKLOG_MAX)
            cap *= 2;
        rf_event *grown = cap >= b->n + n ? realloc(b->ev, (size_t)cap * sizeof(rf_event)) : NULL;
        if (!grown) {
            rf_stats_add(&w->peer_dropped_backlog, n);
            rf_engine_peer_free_owned(ev, n);
            return;
        }
        b->ev = grown;
        b->cap = cap;
    }
    memcpy(b->ev + b->n, ev, (size_t)n * sizeof(rf_event));
    b->n += n;
    rf_stats_add(&w->peer_backlog_now, n);
}

/* Moves what fits of each backlog into its ring and wakes the peers that got
 * something. Returns how many messages are still waiting. */
static uint32_t flush_peer_backlogs(rf_engine_worker *w)
{
    uint32_t left = 0;
    for (uint32_t j = 0; j < w->engine->n_workers; j++) {
        rf_peer_backlog *b = &w->peer_backlog[j];
        if (b->head == b->n)
            continue;
        uint32_t done = rf_ring_enqueue_burst(w->peer_outbound[j], b->ev + b->head,
                                              sizeof(rf_event), b->n - b->head);
        if (done) {
            b->head += done;
            rf_stats_add(&w->peer_enqueued, done);
            /* Relaxed like every counter here; the control thread reads it
             * only to see the backlogs empty (rf_engine_stop). */
            atomic_store_explicit(&w->peer_backlog_now,
                                  atomic_load_explicit(&w->peer_backlog_now, memory_order_relaxed) -
                                      done,
                                  memory_order_relaxed);
            rf_worker_wake(w->engine->workers[j]->thread);
        }
        left += b->n - b->head;
    }
    return left;
}

/* Hands what the peer rings hold to this worker's pipeline. */
static uint32_t drain_peer_rings(rf_engine_worker *w)
{
    uint32_t total = 0;
    for (uint32_t j = 0; j < w->engine->n_workers; j++) {
        rf_ring *r = w->peer_inbound[j];
        if (!r)
            continue;
        uint32_t got;
        while ((got = rf_ring_dequeue_burst(r, w->scratch, sizeof(rf_event), RF_POLL_BATCH)) > 0) {
            rf_shard_process(w->shard, w->scratch, got);
            rf_stats_add(&w->peer_dequeued, got);
            total += got;
            if (got < RF_POLL_BATCH)
                break;
        }
    }
    return total;
}

/* Critical events (definitions included, in order) to worker j's critical
 * ring: never dropped, a full one is waited out. */
static void send_critical_to_peer(rf_engine_worker *w, uint32_t j, const rf_event *ev, uint32_t n)
{
    /* Relaxed: the lane's acquire (serve_critical, or the listener change
     * that brought the critical listener) made the pointer visible. */
    rf_ring *r = atomic_load_explicit(&w->crit_outbound[j], memory_order_relaxed);
    enqueue_waiting(w, j, r, ev, rf_ring_enqueue_burst(r, ev, sizeof(rf_event), n), n);
}

/* ---- the critical edge (docs/ARCHITECTURE.md, "The critical lane") ------ */

/* The worker that is the critical edge of series_id: the first worker whose
 * critical listeners met the series claims it and keeps it, so each
 * threshold state has one home whichever sockets its samples come in by.
 * self claims it when nobody has. UINT32_MAX: no room in the table (the
 * owner then does all, as without the edge). One relaxed load per critical
 * event once claimed. */
static uint32_t edge_claim(rf_engine *e, uint64_t series_id, uint32_t self)
{
    const uint64_t tag = series_id & ~(uint64_t)0xff;
    uint32_t i =
        (uint32_t)((series_id * 0x9e3779b97f4a7c15ull) >> 40) & (RF_ENGINE_EDGE_CLAIMS - 1);
    for (uint32_t probe = 0; probe < RF_ENGINE_EDGE_PROBE;
         probe++, i = (i + 1) & (RF_ENGINE_EDGE_CLAIMS - 1)) {
        /* Relaxed: the word is the whole message (nothing else is published
         * through it), and a claim is never changed once made. */
        uint64_t cur = atomic_load_explicit(&e->edge_claims[i], memory_order_relaxed);
        if (cur == 0) {
            const uint64_t mine = tag | (self + 1);
            if (atomic_compare_exchange_strong_explicit(&e->edge_claims[i], &cur, mine,
                                                        memory_order_relaxed, memory_order_relaxed))
                return self;
            /* Another worker took the word first: cur is its claim. */
        }
        if ((cur & ~(uint64_t)0xff) == tag)
            return (uint32_t)(cur & 0xff) - 1;
    }
    return UINT32_MAX;
}

/* Where a critical event goes from worker w: to w's own pipeline (w owns
 * it and is its edge, or nobody else is), through w's edge and then to the
 * owner (RF_EDGE_HERE), or to another worker: the owner, or the series'
 * edge when that is neither w nor the owner. */
#define RF_EDGE_HERE 0x80000000u
static uint32_t critical_target(rf_engine_worker *w, uint64_t series_id)
{
    rf_engine *e = w->engine;
    const uint32_t owner = rf_event_owner(series_id, e->n_workers);
    if (e->n_workers == 1)
        return owner;
    const uint32_t edge = edge_claim(e, series_id, w->index);
    if (edge == UINT32_MAX || edge == owner)
        return owner;
    return edge == w->index ? owner | RF_EDGE_HERE : edge;
}

/* ev[0..n) (mutable: the edge flags what it took) through this worker's
 * edge, then to their owners' critical rings, in order. */
static void edge_forward(rf_engine_worker *w, rf_event *ev, uint32_t n)
{
    rf_shard_edge_process(w->shard, ev, n);
    const uint32_t workers = w->engine->n_workers;
    for (uint32_t i = 0; i < n;) {
        uint32_t owner = rf_event_owner(ev[i].series_id, workers);
        uint32_t run = 1;
        while (i + run < n && rf_event_owner(ev[i + run].series_id, workers) == owner)
            run++;
        send_critical_to_peer(w, owner, ev + i, run);
        i += run;
    }
}

/* Critical events from a critical listener, definitions and data in
 * arrival order so that a series' definition is never behind its data:
 * those this worker owns are processed at once (with whatever routine
 * events are already in the local batch, at most RF_POLL_BATCH - 1 of
 * them); those whose edge this worker is are evaluated here and sent to
 * their owner; the others go straight to their owner's (or edge's)
 * critical ring. */
static void dispatch_critical(rf_engine_worker *w, const rf_event *ev, uint32_t n)
{
    uint64_t data = 0;
    for (uint32_t i = 0; i < n; i++)
        data += ev[i].kind != RF_KIND_SERIES_DEF;
    rf_stats_add(&w->critical_events, data);
    uint32_t target[RF_POLL_BATCH];
    while (n) {
        const uint32_t m = n < RF_POLL_BATCH ? n : RF_POLL_BATCH;
        for (uint32_t i = 0; i < m; i++)
            target[i] = critical_target(w, ev[i].series_id);
        for (uint32_t i = 0; i < m;) {
            const uint32_t to = target[i];
            uint32_t run = 1;
            while (i + run < m && target[i + run] == to)
                run++;
            if (to == w->index) {
                for (uint32_t k = 0; k < run; k++) {
                    w->local[w->n_local++] = ev[i + k];
                    if (w->n_local == RF_POLL_BATCH)
                        process_local(w);
                }
            } else if (to & RF_EDGE_HERE) {
                memcpy(w->crit_edge, ev + i, (size_t)run * sizeof(rf_event));
                edge_forward(w, w->crit_edge, run);
            } else {
                send_critical_to_peer(w, to, ev + i, run);
            }
            i += run;
        }
        ev += m;
        n -= m;
    }
    process_local(w);
}

/* Hands parsed events to their owners: our own go to the local batch, the
 * others to per-destination staging flushed per batch. Called by the ingest
 * side of this worker. */
void rf_engine_dispatch(rf_engine_worker *w, const rf_event *ev, uint32_t n)
{
    const uint32_t workers = w->engine->n_workers;
    rf_stats_add(&w->events_parsed, n);
    /* A parse batch comes from one listener: all critical or none. */
    if (n && ev[0].priority == RF_PRIO_CRITICAL) {
        dispatch_critical(w, ev, n);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t owner = rf_event_owner(ev[i].series_id, workers);
        if (owner == w->index) {
            w->local[w->n_local++] = ev[i];
            if (w->n_local == RF_POLL_BATCH)
                process_local(w);
            continue;
        }
        rf_staging *s = &w->staging[owner];
        if (ev[i].kind == RF_KIND_SERIES_DEF) {
            if (s->n_defs == RF_DISPATCH_BATCH)
                flush_staging(w, owner);
            s->defs[s->n_defs++] = ev[i];
        } else {
            if (s->n_data == RF_DISPATCH_BATCH)
                flush_staging(w, owner);
            s->data[s->n_data++] = ev[i];
        }
    }
}

/* The shard's dispatch callback (rf_shard_dispatch_fn): the exact signature
 * the shard calls through, so no call goes through an incompatible function
 * type (tests/meson.build, fn_casts). */
static void dispatch_trampoline(void *ctx, const rf_event *ev, uint32_t n)
{
    rf_engine_dispatch(ctx, ev, n);
}

/* Processes what the critical rings hold: events of series this worker
 * owns, and those of series whose edge it is (another worker's listener
 * met them), which go through the edge to their owner. */
static uint32_t drain_critical_rings(rf_engine_worker *w)
{
    uint32_t total = 0;
    const uint32_t workers = w->engine->n_workers;
    rf_event *ev = w->crit_in;
    for (uint32_t j = 0; j < workers; j++) {
        rf_ring *r = atomic_load_explicit(&w->crit_inbound[j], memory_order_relaxed);
        if (!r)
            continue;
        uint32_t got;
        while ((got = rf_ring_dequeue_burst(r, ev, sizeof(rf_event), RF_POLL_BATCH)) > 0) {
            rf_stats_add(&w->events_from_peers, got);
            rf_stats_add(&w->critical_from_peers, got);
            for (uint32_t i = 0; i < got;) {
                const bool own = rf_event_owner(ev[i].series_id, workers) == w->index;
                uint32_t run = 1;
                while (i + run < got &&
                       (rf_event_owner(ev[i + run].series_id, workers) == w->index) == own)
                    run++;
                if (own) {
                    rf_shard_process(w->shard, ev + i, run);
                    rf_stats_add(&w->events_processed, run);
                } else {
                    edge_forward(w, ev + i, run);
                }
                i += run;
            }
            total += got;
        }
    }
    return total;
}

/* The critical lane's turn: this worker's critical listeners, then the
 * critical rings from its peers. Called at the top of every poll, between
 * the datagrams of a standard listener (the shard's critical hook) and
 * between bursts from the standard rings, so critical work waits behind at
 * most one datagram or one burst of routine work. Cheap when idle: a few
 * loads per listener set and ring. */
static uint32_t serve_critical(rf_engine_worker *w)
{
    /* Pairs with the release in listeners_prepare / rf_engine_start. */
    if (!atomic_load_explicit(&w->engine->critical_lane, memory_order_acquire) || w->in_critical)
        return 0;
    w->in_critical = true;
    uint32_t work = 0;
    if (rf_shard_critical_pending(w->shard))
        work += rf_shard_poll_critical(w->shard);
    work += drain_critical_rings(w);
    w->in_critical = false;
    return work;
}

static void serve_critical_hook(void *ctx)
{
    (void)serve_critical(ctx);
}

static uint32_t drain_inbound(rf_engine_worker *w)
{
    uint32_t total = serve_critical(w);
    for (uint32_t j = 0; j < w->engine->n_workers; j++) {
        rf_ring *r = w->inbound[j];
        if (!r)
            continue;
        uint32_t got;
        while ((got = rf_ring_dequeue_burst(r, w->scratch, sizeof(rf_event), RF_POLL_BATCH)) > 0) {
            rf_stats_add(&w->events_from_peers, got);
            rf_shard_process(w->shard, w->scratch, got);
            w->received_from[j] += got; /* processed: a sync marker may pass */
            rf_stats_add(&w->events_processed, got);
            total += got;
            total += serve_critical(w);
            if (got < RF_POLL_BATCH)
                break;
        }
    }
    total += drain_peer_rings(w);
    return total;
}

/* ---- one client over every core (ingest/spread) ------------------------- */

static void spread_parse(void *ctx, const rf_spread_chunk *c)
{
    rf_engine_worker *w = ctx;
    rf_shard_parse_handed(w->shard, c);
}

/* Parses the runs peers handed this worker; its events are dispatched as
 * if this worker had received them. */
static uint32_t drain_spread(rf_engine_worker *w)
{
    if (!w->engine->spread)
        return 0;
    return rf_spread_drain(w->engine->spread, w->index, 64, spread_parse, w);
}

static void spread_wake(void *ctx, uint32_t worker)
{
    rf_engine *e = ctx;
    rf_worker_wake(e->workers[worker]->thread);
}

static int worker_start(void *ctx, rf_err *err)
{
    rf_engine_worker *w = ctx;
    return rf_shard_start(w->shard, err);
}

/* The test hold (rf_engine_test_hold): the worker stops here, as one stuck
 * in a slow sink would, and takes nothing meanwhile. */
static void test_hold(rf_engine_worker *w)
{
    int64_t ns = atomic_exchange_explicit(&w->test_hold_ns, -1, memory_order_relaxed);
    if (ns > 0) {
        struct timespec ts = {(time_t)(ns / RF_NS_PER_S), (long)(ns % RF_NS_PER_S)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
    atomic_store_explicit(&w->test_hold_ns, 0, memory_order_relaxed);
}

/* The worker's side of the recording's grace period (see tap_req). */
static void tap_quiesce(rf_engine_worker *w)
{
    /* Pairs with the release store of tap_req in rf_engine_record_stop,
     * made after the tap was unpublished: from here, this worker's loads of
     * the tap pointer see it gone. */
    uint64_t req = atomic_load_explicit(&w->tap_req, memory_order_acquire);
    w->tap_acked = req;
    /* Pairs with the acquire load in rf_engine_record_stop: every capture
     * this worker made (in earlier loops) happens before the tap is freed. */
    atomic_store_explicit(&w->tap_ack, req, memory_order_release);
}

static uint32_t worker_poll(void *ctx)
{
    rf_engine_worker *w = ctx;
    uint32_t work = 0;
    /* One relaxed load per loop; see test_hold_ns. */
    if (__builtin_expect(atomic_load_explicit(&w->test_hold_ns, memory_order_relaxed) > 0, 0))
        test_hold(w);
    /* One relaxed load per loop (a hint: tap_quiesce acquires). */
    if (__builtin_expect(atomic_load_explicit(&w->tap_req, memory_order_relaxed) != w->tap_acked,
                         0))
        tap_quiesce(w);
    /* Pairs with the release store in rf_engine_stop (phase 1). */
    const bool stopping = atomic_load_explicit(&w->engine->stop_ingest, memory_order_acquire);
    /* Pairs with the release in rf_engine_start: every peer's thread is set. */
    if (!stopping && !atomic_load_explicit(&w->engine->threads_ready, memory_order_acquire))
        return 0;
    if (!stopping) {
        work += serve_critical(w);
        work += rf_shard_poll_ingest(w->shard);
    } else if (!atomic_load_explicit(&w->ingest_quiesced, memory_order_relaxed)) {
        if (!w->ingest_stop_done) {
            rf_shard_stop_ingest(w->shard);
            w->ingest_stop_done = true;
        }
        /* Quiesced only once the peers parsed every run this worker handed
         * them (they dispatch it in the same poll), so that nothing it
         * received is still unparsed when the stages close. */
        work += drain_spread(w);
        if (!w->engine->spread || rf_spread_outstanding(w->engine->spread, w->index) == 0) {
            flush_all_staging(w);
            process_local(w);
            /* Pairs with the acquire in rf_engine_stop: our staging is flushed. */
            atomic_store_explicit(&w->ingest_quiesced, true, memory_order_release);
        }
    }
    work += drain_spread(w);
    /* Sync writes answered now may have parsed pipelined requests. */
    work += rf_engine_sync_poll(w);
    flush_all_staging(w);
    process_local(w);
    rf_engine_sync_issue(w);
    work += drain_inbound(w);
    work += rf_shard_tick(w->shard);
    /* Pairs with the release store in rf_engine_stop (after phase 1). */
    if (stopping && !atomic_load_explicit(&w->stages_closed, memory_order_relaxed) &&
        atomic_load_explicit(&w->engine->close_stages, memory_order_acquire)) {
        rf_shard_close_stages(w->shard);
        flush_peer_backlogs(w);
        /* Pairs with the acquire in rf_engine_stop: what the stages held
         * is in the backlogs or the rings. */
        atomic_store_explicit(&w->stages_closed, true, memory_order_release);
    }
    /* A backlog that waits for room keeps the worker awake. */
    work += flush_peer_backlogs(w);
    return work;
}

static void worker_drain(void *ctx)
{
    rf_engine_worker *w = ctx;
    while (drain_spread(w))
        flush_all_staging(w);
    drain_inbound(w);
    process_local(w);
    rf_shard_drain(w->shard);
    /* What the final drain sent peers (its emissions' reports) goes out if
     * there is room; a peer that already stopped does not take it, and
     * engine_free counts what is left. */
    flush_peer_backlogs(w);
}

static void worker_wait(void *ctx, int64_t timeout_ns)
{
    rf_engine_worker *w = ctx;
    rf_shard_wait(w->shard, timeout_ns);
}

static void worker_wake(void *ctx)
{
    rf_engine_worker *w = ctx;
    rf_shard_wake(w->shard);
}

static int64_t worker_next_due(void *ctx)
{
    rf_engine_worker *w = ctx;
    int64_t due = rf_shard_next_tick_ns(w->shard);
    int64_t sync = rf_engine_sync_next_due(w);
    return sync && (!due || sync < due) ? sync : due;
}

void rf_engine_worker_attach(rf_engine_worker *w)
{
    rf_shard_set_dispatch(w->shard, dispatch_trampoline, w);
    rf_shard_set_busy(w->shard, worker_busy, w);
    /* Always: a reload may bring the first critical listener. */
    rf_shard_set_critical_hook(w->shard, serve_critical_hook, w);
    rf_shard_set_tap(w->shard, &w->engine->tap);
    rf_shard_set_peer_send(w->shard, peer_send, w);
    if (w->engine->spread)
        rf_shard_set_spread(w->shard, w->engine->spread, spread_wake, w->engine);
    rf_engine_sync_attach(w);
}

rf_worker_ops rf_engine_worker_ops(rf_engine_worker *w)
{
    rf_worker_ops ops = {
        .start = worker_start,
        .poll = worker_poll,
        .drain = worker_drain,
        .next_due_ns = worker_next_due,
        .ctx = w,
    };
    if (rf_shard_has_wait(w->shard)) {
        ops.wait = worker_wait;
        ops.wake = worker_wake;
    }
    return ops;
}
