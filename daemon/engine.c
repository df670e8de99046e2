/* The engine's workers and the mesh of rings between them. */
#include "daemon/engine.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/log/log.h"
#include "core/mem/mem.h"
#include "core/ring/ring.h"
#include "core/worker/worker.h"
#include "daemon/memory_budget.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/worker_shard.h"
#include "daemon/tap.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/listen/listen.h"
#include "numa/numa.h"
#include "storage/store/store.h"

/* Events staged per destination before one ring enqueue. */
#define RF_DISPATCH_BATCH 64
/* Events taken from one inbound ring per dequeue. */
#define RF_POLL_BATCH 256
/* Peer messages between the stages of two workers (stages/pipeline/pipeline.h,
 * "Between shards"): a ring per ordered pair, and per destination a backlog
 * that holds what the ring had no room for. Stages send one message per
 * group and window, or per event of a series bound to a correlation pattern;
 * the backlog absorbs bursts (a window close) and its bound only stops a
 * stuck peer from taking the memory: past it, messages are dropped, counted
 * (peer_dropped_backlog) and their owned blocks freed. */
#define RF_PEER_RING_SLOTS 8192u
#define RF_PEER_BACKLOG_MAX (1u << 20)
/* Stop: how long the peers may take to go quiet after the stages closed. */
#define RF_PEER_QUIET_WAIT_NS (5 * RF_NS_PER_S)

typedef struct rf_engine_worker rf_engine_worker;

/* Peer messages waiting for room in the ring to one worker: ev[head..n). */
typedef struct rf_peer_backlog {
    rf_event *ev;
    uint32_t head, n, cap;
} rf_peer_backlog;

/* Per-destination staging: definitions apart from data, so definitions can
 * always be sent first and always with the blocking policy. */
typedef struct rf_staging {
    uint32_t n_defs, n_data;
    rf_event defs[RF_DISPATCH_BATCH];
    rf_event data[RF_DISPATCH_BATCH];
} rf_staging;

struct rf_engine_worker {
    rf_engine *engine;
    uint32_t index;
    rf_worker *thread;
    rf_shard *shard;
    rf_ring *inbound[RF_DAEMON_MAX_WORKERS];  /* inbound[j]: from worker j (NULL for self) */
    rf_ring *outbound[RF_DAEMON_MAX_WORKERS]; /* outbound[j]: to worker j (NULL for self) */
    /* The critical lane between workers (NULL when no listener is critical):
     * drained before the standard rings and between their bursts. */
    _Atomic(rf_ring *) crit_inbound[RF_DAEMON_MAX_WORKERS];
    _Atomic(rf_ring *) crit_outbound[RF_DAEMON_MAX_WORKERS];
    rf_staging *staging;                      /* [workers] */
    /* Peer messages: peer_inbound[j] from worker j, peer_outbound[j] to it
     * (NULL for self and with one worker), and the backlog per destination. */
    rf_ring *peer_inbound[RF_DAEMON_MAX_WORKERS];
    rf_ring *peer_outbound[RF_DAEMON_MAX_WORKERS];
    rf_peer_backlog peer_backlog[RF_DAEMON_MAX_WORKERS];
    rf_event local[RF_POLL_BATCH];
    uint32_t n_local;
    rf_event scratch[RF_POLL_BATCH];

    /* Set (release) by this worker once it has stopped receiving and flushed
     * its staging; read (acquire) by the control thread in rf_engine_stop. */
    _Atomic bool ingest_quiesced;
    /* Set (release) by this worker once its stages closed (stop, step 1 of
     * pipeline.h "Between shards"); read (acquire) by rf_engine_stop. */
    _Atomic bool stages_closed;

    bool in_critical; /* serve_critical is on the stack: not re-entered */

    /* When this worker's rings last dropped points (drop_newest), 0 never:
     * HTTP writes answer 503 for a second after (worker_busy). This
     * worker's thread only. */
    int64_t last_ring_drop_ns;

    /* rf_engine_test_hold: > 0 asks this worker to stop that long at the top
     * of its loop; it exchanges in -1 while it stops, 0 after. Relaxed: the
     * value is the whole message (no other data travels with it). */
    _Atomic int64_t test_hold_ns;

    /* The recording's grace period (rf_engine_record_stop): the control
     * thread unpublishes the tap, then asks (tap_req, release); at the top
     * of its next loop, where it holds no tap pointer, the worker answers
     * (tap_ack, release): its captures so far happen before the tap is
     * freed, and its later loads of the tap see it gone. tap_acked: the
     * worker's own copy of its last answer (one relaxed load per loop). */
    _Atomic uint64_t tap_req, tap_ack;
    uint64_t tap_acked;

    /* Single-writer statistics (this worker), relaxed; read by control. */
    _Atomic uint64_t events_parsed, events_from_peers, events_processed, sent_to_peers, dropped_ring_full,
        block_waits, critical_events, critical_from_peers;
    /* Peer messages put on a ring / taken from one / dropped at the backlog's
     * bound, and how many wait in the backlogs now. */
    _Atomic uint64_t peer_enqueued, peer_dequeued, peer_dropped_backlog, peer_backlog_now;
};

struct rf_engine {
    rf_settings settings;
    uint32_t n_workers;
    enum rf_ring_full_policy policy;
    /* Some listener has class: critical: the critical rings exist. Set
     * (release) by the control thread after creating them; workers load it
     * (acquire) before touching a critical ring. */
    _Atomic bool critical_lane;
    /* A recording in progress (daemon/tap.h): published by the control
     * thread (release), read by the workers at every chunk (acquire). */
    _Atomic(rf_tap *) tap;
    rf_engine_worker *workers[RF_DAEMON_MAX_WORKERS];
    rf_store *store; /* NULL when storage is disabled */
    rf_dpdk *dpdk;   /* NULL when DPDK is disabled or could not start */
    rf_pipeline_settings *live_pipeline; /* owned: the pipeline of the last live reload */
    /* Owned: a reload's pipeline some worker had not taken when the reload
     * returned. Workers that took it run on it, the others still on
     * live_pipeline (or the start's settings), so both stay until
     * reload_settle sees every worker on it. Control thread only. */
    rf_pipeline_settings *queued_pipeline;
    int64_t reload_wait_ns; /* how long a reload waits for the workers (10 s) */
    int64_t tap_wait_ns;    /* how long record stop waits for the workers (5 s) */
    uint64_t tap_epoch;     /* the last grace period asked for (tap_req) */
    /* Recordings whose grace period timed out: closed, their memory kept
     * until the workers have stopped (engine_free). Control thread. */
    rf_tap *abandoned_taps[8];
    uint32_t n_abandoned_taps;
    /* Called before a removed listener's input is freed (engine_views.c:
     * its /metrics series read it). Control thread. */
    rf_shard_input_gone_fn input_gone;
    void *input_gone_ctx;
    int cpus[RF_DAEMON_MAX_WORKERS]; /* pinned CPU per worker, -1 = not pinned */
    /* NUMA node per worker (-1: not pinned, or unknown), and what each
     * worker's structures bound there (numa/numa.h, "Memory"). */
    int16_t nodes[RF_DAEMON_MAX_WORKERS];
    rf_mem_scope memory[RF_DAEMON_MAX_WORKERS];
    char placement[1024];            /* the placement report for `show info` */
    /* Set (release) by rf_engine_stop phase 1; read (acquire) by workers. */
    _Atomic bool stop_ingest;
    /* Set (release) by rf_engine_stop once ingest is quiet everywhere; read
     * (acquire) by workers, which then close their stages once. */
    _Atomic bool close_stages;
    /* Set (release) by rf_engine_start once every worker's thread exists;
     * read (acquire) by workers before they take in anything: until then a
     * worker could hand events to a peer whose thread it cannot wake yet. */
    _Atomic bool threads_ready;
};

static void counter_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static uint32_t drain_inbound(rf_engine_worker *w);
static int create_critical_rings(rf_engine *e, rf_err *err);

/* Runs the events this worker owns through its stages. */
static void process_local(rf_engine_worker *w)
{
    if (w->n_local == 0)
        return;
    rf_shard_process(w->shard, w->local, w->n_local);
    counter_add(&w->events_processed, w->n_local);
    w->n_local = 0;
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
        counter_add(&w->block_waits, 1);
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
    counter_add(&w->sent_to_peers, n);
    rf_worker_wake(e->workers[j]->thread);
}

/* Whether HTTP writes should be refused (503 + Retry-After) now: this
 * worker's rings dropped points (drop_newest) within the last second. Under
 * `block` nothing is dropped and the worker waits instead, which the client
 * sees as a slower answer. Worker thread; one clock read per request. */
static bool worker_busy(void *ctx)
{
    rf_engine_worker *w = ctx;
    return w->last_ring_drop_ns && rf_clock_mono_ns() - w->last_ring_drop_ns < RF_NS_PER_S;
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
        counter_add(&w->dropped_ring_full, n - done);
        if (done < n) /* the drop path only: one clock read there */
            w->last_ring_drop_ns = rf_clock_mono_ns();
        n = done;
    }
    enqueue_waiting(w, j, r, ev, done, n);
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

static void peer_free_owned(const rf_event *ev, uint32_t n)
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
            counter_add(&w->peer_dropped_backlog, n);
            peer_free_owned(ev, n);
            return;
        }
        b->ev = grown;
        b->cap = cap;
    }
    memcpy(b->ev + b->n, ev, (size_t)n * sizeof(rf_event));
    b->n += n;
    counter_add(&w->peer_backlog_now, n);
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
            counter_add(&w->peer_enqueued, done);
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
            counter_add(&w->peer_dequeued, got);
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

/* Critical events from a critical listener: ours are processed at once
 * (with whatever routine events are already in the local batch, at most
 * RF_POLL_BATCH - 1 of them), the others go straight to their owner's
 * critical ring, definitions and data in arrival order so that a series'
 * definition is never behind its data. */
static void dispatch_critical(rf_engine_worker *w, const rf_event *ev, uint32_t n)
{
    const uint32_t workers = w->engine->n_workers;
    uint64_t data = 0;
    for (uint32_t i = 0; i < n; i++)
        data += ev[i].kind != RF_KIND_SERIES_DEF;
    counter_add(&w->critical_events, data);
    for (uint32_t i = 0; i < n;) {
        uint32_t owner = rf_event_owner(ev[i].series_id, workers);
        uint32_t run = 1;
        while (i + run < n && rf_event_owner(ev[i + run].series_id, workers) == owner)
            run++;
        if (owner == w->index) {
            for (uint32_t k = 0; k < run; k++) {
                w->local[w->n_local++] = ev[i + k];
                if (w->n_local == RF_POLL_BATCH)
                    process_local(w);
            }
        } else {
            send_critical_to_peer(w, owner, ev + i, run);
        }
        i += run;
    }
    process_local(w);
}

/* Hands parsed events to their owners: our own go to the local batch, the
 * others to per-destination staging flushed per batch. Called by the ingest
 * side of this worker. */
void rf_engine_dispatch(rf_engine_worker *w, const rf_event *ev, uint32_t n)
{
    const uint32_t workers = w->engine->n_workers;
    counter_add(&w->events_parsed, n);
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

/* Processes what the critical rings hold. */
static uint32_t drain_critical_rings(rf_engine_worker *w)
{
    uint32_t total = 0;
    for (uint32_t j = 0; j < w->engine->n_workers; j++) {
        rf_ring *r = atomic_load_explicit(&w->crit_inbound[j], memory_order_relaxed);
        if (!r)
            continue;
        uint32_t got;
        while ((got = rf_ring_dequeue_burst(r, w->scratch, sizeof(rf_event), RF_POLL_BATCH)) > 0) {
            counter_add(&w->events_from_peers, got);
            counter_add(&w->critical_from_peers, got);
            rf_shard_process(w->shard, w->scratch, got);
            counter_add(&w->events_processed, got);
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
            counter_add(&w->events_from_peers, got);
            rf_shard_process(w->shard, w->scratch, got);
            counter_add(&w->events_processed, got);
            total += got;
            total += serve_critical(w);
            if (got < RF_POLL_BATCH)
                break;
        }
    }
    total += drain_peer_rings(w);
    return total;
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
    if (__builtin_expect(atomic_load_explicit(&w->tap_req, memory_order_relaxed) != w->tap_acked, 0))
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
        rf_shard_stop_ingest(w->shard);
        flush_all_staging(w);
        process_local(w);
        /* Pairs with the acquire in rf_engine_stop: our staging is flushed. */
        atomic_store_explicit(&w->ingest_quiesced, true, memory_order_release);
    }
    flush_all_staging(w);
    process_local(w);
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

static size_t staging_bytes(const rf_engine *e)
{
    return (size_t)e->n_workers * sizeof(rf_staging);
}

/* A ring whose consumer is worker `consumer`: made in that worker's memory
 * scope, so its slots are on the consumer's node (the producer writes them
 * first, the consumer reads them at every turn). */
static rf_ring *ring_for_consumer(rf_engine *e, uint32_t consumer, uint32_t capacity)
{
    rf_mem_scope_enter(&e->memory[consumer]);
    rf_ring *r = rf_ring_create(capacity, sizeof(rf_event));
    int saved = errno;
    rf_mem_scope_leave(&e->memory[consumer]);
    errno = saved;
    return r;
}

static void engine_free(rf_engine *e)
{
    if (e->store) {
        rf_err err;
        rf_err_clear(&err);
        if (rf_store_close(e->store, &err) < 0)
            rf_log_error("engine", "closing the store: %s", err.msg);
        e->store = NULL;
    }
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        if (!w)
            continue;
        for (uint32_t j = 0; j < e->n_workers; j++) {
            rf_ring_destroy(w->inbound[j]);
            rf_ring_destroy(atomic_load_explicit(&w->crit_inbound[j], memory_order_relaxed));
            rf_peer_backlog *b = &w->peer_backlog[j];
            if (b->n > b->head) {
                rf_log_warn("engine", "worker-%u: %u peer messages to worker-%u not sent at stop",
                            i, b->n - b->head, j);
                peer_free_owned(b->ev + b->head, b->n - b->head);
            }
            free(b->ev);
            if (w->peer_inbound[j]) {
                rf_event ev[64];
                uint32_t got, lost = 0;
                while ((got = rf_ring_dequeue_burst(w->peer_inbound[j], ev, sizeof(rf_event), 64))) {
                    peer_free_owned(ev, got);
                    lost += got;
                }
                if (lost)
                    rf_log_warn("engine", "worker-%u: %u peer messages from worker-%u not "
                                "taken at stop", i, lost, j);
                rf_ring_destroy(w->peer_inbound[j]);
            }
        }
        rf_shard_free(w->shard);
        rf_mem_huge_free(w->staging, staging_bytes(e));
        rf_mem_huge_free(w, sizeof(*w));
    }
    /* After the shards: their handlers were registered on the queues. */
    rf_dpdk_close(e->dpdk);
    /* The workers have stopped: nobody can capture into these any more. */
    for (uint32_t i = 0; i < e->n_abandoned_taps; i++)
        rf_tap_free_abandoned(e->abandoned_taps[i]);
    /* After the shards: a stage, taken or still queued, may use either. */
    if (e->live_pipeline) {
        rf_pipeline_settings_release(e->live_pipeline);
        free(e->live_pipeline);
    }
    if (e->queued_pipeline) {
        rf_pipeline_settings_release(e->queued_pipeline);
        free(e->queued_pipeline);
    }
    free(e);
}

/* The NIC whose node the workers should be on (numa/numa.h, "NIC node"):
 * DPDK port 0, else the first listener bound to an address whose interface
 * has a node. *what says which, for the placement report. */
static int nic_node_of(const rf_engine *e, char *what, size_t size)
{
    what[0] = '\0';
    if (e->dpdk && rf_dpdk_port_count(e->dpdk)) {
        int node = rf_dpdk_port_numa_node(e->dpdk, 0);
        if (node >= 0) {
            snprintf(what, size, "dpdk port %s", rf_dpdk_port_name(e->dpdk, 0));
            return node;
        }
    }
    const rf_ingest_settings *in = &e->settings.ingest;
    for (size_t i = 0; i < in->n_listeners; i++) {
        char ifname[64];
        int node = -1;
        rf_err ierr;
        rf_err_clear(&ierr);
        if (rf_numa_addr_node(NULL, in->listeners[i].address, &node, ifname, sizeof(ifname),
                              &ierr) == 0 &&
            node >= 0) {
            snprintf(what, size, "%s of listener %s", ifname, in->listeners[i].name);
            return node;
        }
    }
    return -1;
}

/* Worker CPUs: engine.cpus when given, else numa/'s rule (the NIC's node
 * first, CPU 0 last within its node). Fills e->cpus, e->nodes and
 * e->placement. Runs before anything of a worker is allocated: its memory
 * goes on the node chosen here. */
static int place_workers(rf_engine *e, const rf_daemon_config *cfg, rf_err *err)
{
    for (uint32_t i = 0; i < e->n_workers; i++) {
        e->cpus[i] = -1;
        e->nodes[i] = -1;
    }
    if (!cfg->engine.pin_workers) {
        snprintf(e->placement, sizeof(e->placement), "workers not pinned (engine.pin_workers: false)");
        return 0;
    }
    rf_numa_topology topo;
    int rc = rf_numa_topology_load(NULL, &topo, err);
    if (rc < 0)
        return rf_err_wrap(err, "placement: ");
    char nic[128];
    const rf_numa_request req = {
        .workers = e->n_workers,
        .nic_node = nic_node_of(e, nic, sizeof(nic)),
        .cpus = cfg->engine.n_cpus ? cfg->engine.cpus : NULL,
        .n_cpus = cfg->engine.n_cpus,
    };
    rf_numa_placement pl;
    if ((rc = rf_numa_place(&topo, &req, &pl, err)) < 0)
        return rf_err_wrap(err, "placement: ");
    for (uint32_t i = 0; i < e->n_workers; i++) {
        e->cpus[i] = pl.cpu[i];
        e->nodes[i] = pl.node[i];
    }
    int len = rf_numa_placement_report(&topo, &pl, e->placement, sizeof(e->placement));
    if (nic[0] && len > 0 && (size_t)len < sizeof(e->placement))
        snprintf(e->placement + len, sizeof(e->placement) - (size_t)len, "; nic: %s", nic);
    return 0;
}

/* After worker i's structures were made in e->memory[i]: a line for the
 * placement report, and a warning when binding was refused (the memory is
 * then where first touch puts it; the start goes on). */
static void report_memory(rf_engine *e)
{
    size_t off = strlen(e->placement);
    bool any = false;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        const rf_mem_scope *m = &e->memory[i];
        if (m->refused)
            rf_log_warn("engine",
                        "worker %u: %u of its allocations could not be bound to node %d (%s); "
                        "they are where first touch puts them",
                        i, m->refused, m->node, strerror(m->refused_errno));
        if (m->kept_policy && i == 0)
            rf_log_info("engine", "the process's own memory policy (numactl?) is kept: worker "
                                  "memory is not bound to the workers' nodes");
        if (m->node < 0 || off >= sizeof(e->placement))
            continue;
        off += (size_t)snprintf(e->placement + off, sizeof(e->placement) - off,
                                "%s w%u=%u/%lluMiB",
                                any ? "" : "; memory on its node (regions/reserved):", i,
                                m->regions, (unsigned long long)(m->bytes >> 20));
        any = true;
    }
}

/* Worker i's own memory, in its scope (rf_engine_start): its struct and
 * staging on its node whatever their size, its inbound rings, its shard. */
static int worker_alloc(rf_engine *e, uint32_t i, rf_err *err)
{
    const rf_daemon_config *cfg = &e->settings.daemon;
    const int node = rf_mem_scope_node(); /* -1 when the scope binds nothing */
    rf_engine_worker *w = rf_mem_map_onnode_at(sizeof(*w), node, "engine worker");
    if (!w)
        return rf_err_set(err, ENOMEM, "engine: out of memory for worker %u", i);
    e->workers[i] = w; /* zeroed: a fresh mapping */
    w->engine = e;
    w->index = i;
    w->staging = rf_mem_map_onnode_at(staging_bytes(e), node, "engine staging");
    if (!w->staging)
        return rf_err_set(err, ENOMEM, "engine: out of memory for worker %u staging", i);
    for (uint32_t j = 0; j < e->n_workers; j++) {
        if (j == i)
            continue;
        w->inbound[j] = rf_ring_create(cfg->engine.ring.capacity, sizeof(rf_event));
        if (!w->inbound[j])
            return rf_err_set(err, errno, "engine: ring %u->%u of %u slots: %s", j, i,
                              cfg->engine.ring.capacity, strerror(errno));
        w->peer_inbound[j] = rf_ring_create(RF_PEER_RING_SLOTS, sizeof(rf_event));
        if (!w->peer_inbound[j])
            return rf_err_set(err, errno, "engine: peer ring %u->%u: %s", j, i, strerror(errno));
    }
    return rf_shard_new(&e->settings, i, e->n_workers,
                        e->store ? rf_store_shard_get(e->store, i) : NULL, e->dpdk, &w->shard,
                        err);
}

/* One line per listener once every worker has opened its socket (each
 * worker opens its own on the port): which workers took it, and the receive
 * buffer as configured, with what the kernel gave when that differs (it
 * reports twice the usable size: the other half is its bookkeeping). */
static void log_listeners(const rf_engine *e, const rf_settings *settings)
{
    for (size_t i = 0; i < settings->ingest.n_listeners; i++) {
        const rf_listener_config *lc = &settings->ingest.listeners[i];
        char workers[256] = "";
        size_t wl = 0;
        const rf_listener *first = NULL;
        for (uint32_t w = 0; w < e->n_workers; w++) {
            const rf_shard *sh = e->workers[w]->shard;
            for (uint32_t k = 0; k < rf_shard_input_count(sh); k++) {
                const rf_listener *l = rf_shard_input_listener(sh, k);
                if (!l || strcmp(rf_listener_name(l), lc->name) != 0)
                    continue;
                if (!first)
                    first = l;
                if (wl < sizeof(workers))
                    wl += (size_t)snprintf(workers + wl, sizeof(workers) - wl, "%s%u",
                                           wl ? "," : "", w);
                break;
            }
        }
        if (!first)
            continue;
        char want[32], got[32], rcvbuf[96];
        const uint64_t usable = (uint64_t)rf_listener_rcvbuf_granted(first) / 2;
        rf_cfg_format_size(usable, got, sizeof(got));
        if (!lc->rcvbuf_bytes)
            snprintf(rcvbuf, sizeof(rcvbuf), "kernel default (%s)", got);
        else if (usable == lc->rcvbuf_bytes)
            snprintf(rcvbuf, sizeof(rcvbuf), "%s",
                     rf_cfg_format_size(lc->rcvbuf_bytes, want, sizeof(want)));
        else
            snprintf(rcvbuf, sizeof(rcvbuf), "%s (granted %s)",
                     rf_cfg_format_size(lc->rcvbuf_bytes, want, sizeof(want)), got);
        rf_log_info("engine", "listener %s: %s %s port %u protocol %s%s rcvbuf %s workers %s",
                    lc->name, rf_listen_transport_name(lc->transport), lc->address,
                    rf_listener_port(first), rf_listen_protocol_name(lc->protocol),
                    lc->critical ? " class critical" : "", rcvbuf, workers);
    }
}

int rf_engine_start(const rf_settings *settings, rf_engine **out, rf_err *err)
{
    const rf_daemon_config *cfg = &settings->daemon;
    rf_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return rf_err_set(err, ENOMEM, "engine: out of memory");
    e->settings = *settings;
    e->n_workers = cfg->engine.workers;
    e->policy = cfg->engine.ring.full_policy;
    e->reload_wait_ns = 10 * RF_NS_PER_S;
    e->tap_wait_ns = 5 * RF_NS_PER_S;
    atomic_init(&e->stop_ingest, false);
    atomic_init(&e->threads_ready, false);
    bool critical = false;
    for (size_t i = 0; i < settings->ingest.n_listeners; i++)
        critical |= settings->ingest.listeners[i].critical;
    atomic_init(&e->critical_lane, false);

    int rc = rf_shard_probe_listeners(settings, err);
    if (rc < 0)
        goto fail;
    if (settings->dpdk.enabled) {
        /* Graceful degradation: DPDK failing to start is logged with what to
         * check, and the io_uring listeners still run. */
        rf_err derr;
        rf_err_clear(&derr);
        if (rf_dpdk_open_ports(&settings->dpdk, e->n_workers, &e->dpdk, &derr) < 0) {
            rf_log_error("engine", "%s; continuing without DPDK (io_uring listeners only)",
                         derr.msg);
            e->dpdk = NULL;
        }
    }
    /* Placement before any allocation of a worker's: everything below is
     * made for the node of the worker it belongs to. */
    if ((rc = place_workers(e, cfg, err)) < 0)
        goto fail;
    if (e->dpdk) {
        /* Each worker's queue draws from a pool on the worker's node. */
        rf_err derr;
        rf_err_clear(&derr);
        if (rf_dpdk_start(e->dpdk, e->nodes, &derr) < 0) {
            rf_log_error("engine", "%s; continuing without DPDK (io_uring listeners only)",
                         derr.msg);
            rf_dpdk_close(e->dpdk);
            e->dpdk = NULL;
            /* The DPDK port's node no longer matters: place again. */
            if ((rc = place_workers(e, cfg, err)) < 0)
                goto fail;
        }
    }
    /* One allocation scope per worker for its node: its store shard, struct,
     * rings and shard are made in it, and it says what was bound. */
    for (uint32_t i = 0; i < e->n_workers; i++)
        rf_mem_scope_init(&e->memory[i], e->nodes[i]);
    if (settings->storage.enabled) {
        /* Each shard's buffers and slots on its worker's node. */
        rf_store_config sc = settings->storage.store;
        sc.shard_scope = e->memory;
        /* Opening runs recovery: what it found is logged. */
        rc = rf_store_open(settings->storage.dir, &sc, e->n_workers, &e->store, err);
        if (rc < 0) {
            rf_err_wrap(err, "storage: ");
            goto fail;
        }
        rf_store_stats st;
        rf_store_stats_read(e->store, &st);
        rf_log_info("engine",
                    "store %s: %lu segments, %lu bytes; recovery: %lu open segments scanned, "
                    "%lu blocks kept, %lu tail bytes cut, %lu corrupt regions skipped, %lu "
                    "segments quarantined",
                    settings->storage.dir, (unsigned long)st.segments, (unsigned long)st.bytes,
                    (unsigned long)st.recovery.segments_open, (unsigned long)st.recovery.blocks_kept,
                    (unsigned long)st.recovery.tail_bytes_cut,
                    (unsigned long)st.recovery.corrupt_regions,
                    (unsigned long)st.recovery.segments_quarantined);
    }
    for (uint32_t i = 0; i < e->n_workers; i++) {
        /* Worker i's struct, staging, inbound rings (it consumes them) and
         * shard (series table, stages), all in its node's scope. */
        rf_mem_scope_enter(&e->memory[i]);
        rc = worker_alloc(e, i, err);
        rf_mem_scope_leave(&e->memory[i]);
        if (rc < 0)
            goto fail;
        rf_engine_worker *w = e->workers[i];
        rf_shard_set_dispatch(w->shard, dispatch_trampoline, w);
        rf_shard_set_busy(w->shard, worker_busy, w);
        /* Always: a reload may bring the first critical listener. */
        rf_shard_set_critical_hook(w->shard, serve_critical_hook, w);
        rf_shard_set_tap(w->shard, &e->tap);
        rf_shard_set_peer_send(w->shard, peer_send, w);
    }
    for (uint32_t i = 0; i < e->n_workers; i++)
        for (uint32_t j = 0; j < e->n_workers; j++)
            if (i != j) {
                e->workers[i]->outbound[j] = e->workers[j]->inbound[i];
                e->workers[i]->peer_outbound[j] = e->workers[j]->peer_inbound[i];
            }
    if (critical) {
        if ((rc = create_critical_rings(e, err)) < 0)
            goto fail;
        atomic_store_explicit(&e->critical_lane, true, memory_order_relaxed); /* before the threads */
    }

    report_memory(e);
    rf_log_info("engine", "%s", e->placement);
    const rf_idle_policy idle = {
        .spin = cfg->engine.idle.spin,
        .yield = cfg->engine.idle.yield,
        .sleep_max_ns = (int64_t)cfg->engine.idle.sleep_max_ns,
    };
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        rf_worker_ops ops = {
            .start = worker_start,
            .poll = worker_poll,
            .drain = worker_drain,
            .ctx = w,
        };
        if (rf_shard_has_wait(w->shard)) {
            ops.wait = worker_wait;
            ops.wake = worker_wake;
        }
        char name[32];
        snprintf(name, sizeof(name), "worker-%u", i);
        rc = rf_worker_start(&w->thread, name, e->cpus[i], &idle, &ops, err);
        if (rc < 0) {
            rf_err_wrap(err, "engine: ");
            goto fail_started;
        }
    }
    /* Pairs with the acquire in worker_poll. */
    atomic_store_explicit(&e->threads_ready, true, memory_order_release);
    /* Wait until each worker is running or has failed. */
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_component *c = rf_worker_component(e->workers[i]->thread);
        int64_t deadline = rf_clock_mono_ns() + 10 * RF_NS_PER_S;
        enum rf_lifecycle_state s;
        while ((s = rf_component_state(c)) == RF_STATE_CONFIGURING && rf_clock_mono_ns() < deadline)
            usleep(1000);
        if (s != RF_STATE_RUNNING) {
            char reason[RF_COMPONENT_REASON_MAX];
            rf_component_reason(c, reason, sizeof(reason));
            rc = rf_err_set(err, EIO, "engine: %s did not start: %s", c->name,
                            reason[0] ? reason : rf_lifecycle_state_name(s));
            goto fail_started;
        }
    }
    log_listeners(e, settings);
    *out = e;
    return 0;

fail_started:
    rf_engine_stop(e);
    return rc;
fail:
    engine_free(e);
    return rc;
}

void rf_engine_stop(rf_engine *e)
{
    if (atomic_load_explicit(&e->tap, memory_order_relaxed)) {
        rf_err terr;
        rf_err_clear(&terr);
        if (rf_engine_record_stop(e, NULL, &terr) < 0)
            rf_log_error("engine", "stopping the recording: %s", terr.msg);
    }
    /* Phase 1: stop receiving; wait until every running worker has flushed
     * what it staged for its peers. Pairs with the acquire in worker_poll. */
    atomic_store_explicit(&e->stop_ingest, true, memory_order_release);
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        if (!w || !w->thread)
            continue;
        rf_component *c = rf_worker_component(w->thread);
        rf_worker_wake(w->thread);
        /* Pairs with the release store of ingest_quiesced in worker_poll. */
        while (!atomic_load_explicit(&w->ingest_quiesced, memory_order_acquire) &&
               rf_component_state(c) == RF_STATE_RUNNING) {
            rf_worker_wake(w->thread);
            usleep(200);
        }
    }
    /* Phase 1b (stages/pipeline/pipeline.h "Between shards", step 1): every worker
     * closes its stages once, sending peers what they must see. */
    atomic_store_explicit(&e->close_stages, true, memory_order_release);
    bool all_running = true;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        if (!w || !w->thread)
            continue;
        rf_component *c = rf_worker_component(w->thread);
        /* Pairs with the release store of stages_closed in worker_poll. */
        while (!atomic_load_explicit(&w->stages_closed, memory_order_acquire) &&
               rf_component_state(c) == RF_STATE_RUNNING) {
            rf_worker_wake(w->thread);
            usleep(200);
        }
        all_running &= rf_component_state(c) == RF_STATE_RUNNING;
    }
    /* Step 2: until every message is taken (backlogs empty, each ring's
     * dequeues caught up with its enqueues), seen twice 1 ms apart; bounded,
     * so a stuck worker cannot hold the stop. */
    const int64_t quiet_deadline = rf_clock_mono_ns() + RF_PEER_QUIET_WAIT_NS;
    for (int quiet = 0; all_running && e->n_workers > 1 && quiet < 2 &&
                        rf_clock_mono_ns() < quiet_deadline;) {
        uint64_t enq = 0, deq = 0, backlog = 0;
        for (uint32_t i = 0; i < e->n_workers; i++) {
            rf_engine_worker *w = e->workers[i];
            if (!w)
                continue;
            enq += atomic_load_explicit(&w->peer_enqueued, memory_order_relaxed);
            deq += atomic_load_explicit(&w->peer_dequeued, memory_order_relaxed);
            backlog += atomic_load_explicit(&w->peer_backlog_now, memory_order_relaxed);
            rf_worker_wake(w->thread);
        }
        quiet = (enq == deq && backlog == 0) ? quiet + 1 : 0;
        usleep(1000);
    }
    /* Phase 2: nobody produces for peers any more; drain, flush, exit. */
    for (uint32_t i = 0; i < e->n_workers; i++)
        if (e->workers[i] && e->workers[i]->thread)
            rf_worker_request_stop(e->workers[i]->thread);
    for (uint32_t i = 0; i < e->n_workers; i++) {
        if (e->workers[i] && e->workers[i]->thread) {
            rf_worker_join(e->workers[i]->thread);
            e->workers[i]->thread = NULL;
            rf_engine_worker_stats st;
            rf_engine_worker_stats_read(e, i, &st);
            rf_log_info("engine",
                        "worker-%u final: events_parsed=%lu from_peers=%lu processed=%lu sent_to_peers=%lu "
                        "dropped_ring_full=%lu dropped_unknown_series=%lu block_waits=%lu "
                        "critical_events=%lu critical_from_peers=%lu peer_sent=%lu "
                        "peer_received=%lu peer_dropped_backlog=%lu",
                        i, (unsigned long)st.events_parsed, (unsigned long)st.events_from_peers,
                        (unsigned long)st.events_processed,
                        (unsigned long)st.sent_to_peers, (unsigned long)st.dropped_ring_full,
                        (unsigned long)st.dropped_unknown_series, (unsigned long)st.block_waits,
                        (unsigned long)st.critical_events, (unsigned long)st.critical_from_peers,
                        (unsigned long)st.peer_sent, (unsigned long)st.peer_received,
                        (unsigned long)st.peer_dropped_backlog);
            rf_shard_log_summary(e->workers[i]->shard);
        }
    }
    engine_free(e);
}

/* Every worker runs on ps now: the settings it replaced can go (the first
 * ones belong to the caller of rf_engine_start, not to us). The series
 * tables keep their size, so the running max_series stays. */
static void pipeline_adopt(rf_engine *e, rf_pipeline_settings *ps)
{
    const uint32_t max_series = e->settings.pipeline.max_series;
    if (e->live_pipeline) {
        rf_pipeline_settings_release(e->live_pipeline);
        free(e->live_pipeline);
    }
    e->live_pipeline = ps;
    e->settings.pipeline = *ps;
    e->settings.pipeline.max_series = max_series;
}

/* Before a reload: a change of the previous one that some worker has not
 * taken yet stays queued, never overwritten, so the new reload is refused
 * (-EBUSY, nothing changed). Once every worker has taken it, what it
 * replaced is freed here. */
static int reload_settle(rf_engine *e, rf_err *err)
{
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_shard *sh = e->workers[i]->shard;
        if (!rf_pipeline_applied(rf_shard_pipeline(sh)))
            return rf_err_set(err, EBUSY, "worker-%u has not taken the previous reload's pipeline "
                              "yet (it stays queued); nothing changed, reload again once it has",
                              i);
        if (!rf_shard_listeners_settled(sh))
            return rf_err_set(err, EBUSY, "worker-%u has not taken the previous reload's listener "
                              "change yet (it stays queued); nothing changed, reload again once "
                              "it has", i);
    }
    if (e->queued_pipeline) {
        pipeline_adopt(e, e->queued_pipeline);
        e->queued_pipeline = NULL;
    }
    /* Listeners the last reload removed that retired after it returned. */
    rf_engine_reap_inputs(e);
    return 0;
}

/* Builds the new pipeline stages of every shard (all or nothing), hands
 * them to the workers and waits until each has swapped. Takes ownership of
 * next->pipeline (zeroed there). */
static int reload_pipeline(rf_engine *e, rf_settings *next, rf_err *err)
{
    rf_pipeline_settings *ps = malloc(sizeof(*ps));
    if (!ps)
        return rf_err_set(err, ENOMEM, "pipeline: out of memory");
    *ps = next->pipeline;
    memset(&next->pipeline, 0, sizeof(next->pipeline));
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_pipeline *p = (rf_pipeline *)rf_shard_pipeline(e->workers[i]->shard);
        /* The new stages go on worker i's node, as the first ones did. */
        rf_mem_scope_enter(&e->memory[i]);
        int rc = rf_pipeline_prepare(p, ps, err);
        rf_mem_scope_leave(&e->memory[i]);
        if (rc < 0) {
            for (uint32_t j = 0; j < i; j++)
                rf_pipeline_discard_prepared((rf_pipeline *)rf_shard_pipeline(e->workers[j]->shard));
            rf_pipeline_settings_release(ps);
            free(ps);
            return rf_err_wrap(err, "pipeline: ");
        }
    }
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_pipeline_publish((rf_pipeline *)rf_shard_pipeline(e->workers[i]->shard));
        rf_worker_wake(e->workers[i]->thread);
    }
    /* Workers swap at their next tick (every 10 ms, or when woken). */
    int64_t deadline = rf_clock_mono_ns() + e->reload_wait_ns;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        const rf_pipeline *p = rf_shard_pipeline(e->workers[i]->shard);
        while (!rf_pipeline_applied(p) && rf_clock_mono_ns() < deadline)
            usleep(1000);
        if (!rf_pipeline_applied(p)) {
            /* The worker keeps the new stages pending and takes them at its
             * next tick; until then it runs on the old settings, the others
             * on ps: both stay (reload_settle, engine_free), and
             * e->settings.pipeline, which the start's stages may still
             * read, is not touched. */
            rf_log_error("engine", "worker-%u did not take the new pipeline within %lld ms", i,
                         (long long)(e->reload_wait_ns / RF_NS_PER_MS));
            e->queued_pipeline = ps;
            return 1; /* applied, but not everywhere yet: the caller says so */
        }
    }
    pipeline_adopt(e, ps);
    return 0;
}

/* ---- live listener changes ------------------------------------------------ */

/* Whether two configurations of one listener name describe the same
 * socket and behaviour (the handler is the shard's, not configuration). */
static bool listener_same(const rf_listener_config *a, const rf_listener_config *b)
{
    return a->transport == b->transport && a->protocol == b->protocol &&
           strcmp(a->address, b->address) == 0 && a->port == b->port &&
           a->rcvbuf_bytes == b->rcvbuf_bytes && a->max_connections == b->max_connections &&
           a->max_line_bytes == b->max_line_bytes && a->idle_timeout_ns == b->idle_timeout_ns &&
           a->worker_mask == b->worker_mask && a->critical == b->critical;
}

static const rf_listener_config *listener_named(const rf_ingest_settings *in, const char *name)
{
    for (size_t i = 0; i < in->n_listeners; i++)
        if (strcmp(in->listeners[i].name, name) == 0)
            return &in->listeners[i];
    return NULL;
}

/* Holds a port one of our running listeners binds (so a probe without
 * SO_REUSEPORT would find it taken by ourselves). */
static bool port_is_ours(const rf_ingest_settings *cur, const rf_listener_config *lc)
{
    for (size_t i = 0; i < cur->n_listeners; i++) {
        const rf_listener_config *o = &cur->listeners[i];
        if (o->transport == lc->transport && o->port == lc->port &&
            strcmp(o->address, lc->address) == 0)
            return true;
    }
    return false;
}

/* The critical rings between every pair of workers, created when the first
 * critical listener comes (at start, or by a reload). Control thread. */
static int create_critical_rings(rf_engine *e, rf_err *err)
{
    for (uint32_t i = 0; i < e->n_workers; i++)
        for (uint32_t j = 0; j < e->n_workers; j++) {
            if (i == j || atomic_load_explicit(&e->workers[i]->crit_inbound[j],
                                               memory_order_relaxed))
                continue;
            rf_ring *r = ring_for_consumer(e, i, RF_CRIT_RING_SLOTS); /* i consumes it */
            if (!r)
                return rf_err_set(err, errno, "engine: critical ring %u->%u: %s", j, i,
                                  strerror(errno));
            /* Both pointers before the lane is switched on (release there). */
            atomic_store_explicit(&e->workers[i]->crit_inbound[j], r, memory_order_relaxed);
            atomic_store_explicit(&e->workers[j]->crit_outbound[i], r, memory_order_relaxed);
        }
    return 0;
}

/* Applies the difference between the running listeners and next's: new
 * ones are bound first, on every worker that takes them (a bind error
 * changes nothing), then each worker attaches its new listeners and removes
 * the ones that went or changed (a changed listener is removed and added:
 * on the same port, the new socket binds beside the old one, SO_REUSEPORT,
 * and the old one's queue is still read before it closes). Listeners whose
 * configuration did not change keep their sockets and connections. Returns
 * 0 (nothing to do), 1 (applied) or a negative errno. */
static int listeners_prepare(rf_engine *e, const rf_settings *next, bool *changed, rf_err *err)
{
    const rf_ingest_settings *cur = &e->settings.ingest, *nx = &next->ingest;
    bool add[RF_SETTINGS_MAX_LISTENERS] = {false};
    const char *remove[RF_SETTINGS_MAX_LISTENERS];
    uint32_t n_remove = 0, n_add = 0;
    *changed = false;
    for (size_t i = 0; i < cur->n_listeners; i++) {
        const rf_listener_config *n = listener_named(nx, cur->listeners[i].name);
        if (!n || !listener_same(&cur->listeners[i], n))
            remove[n_remove++] = cur->listeners[i].name;
    }
    for (size_t i = 0; i < nx->n_listeners; i++) {
        const rf_listener_config *o = listener_named(cur, nx->listeners[i].name);
        if (!o || !listener_same(o, &nx->listeners[i])) {
            add[i] = true;
            n_add++;
            int rc;
            if (!port_is_ours(cur, &nx->listeners[i]) &&
                (rc = rf_shard_probe_listener(&nx->listeners[i], err)) < 0)
                return rc;
        }
    }
    if (n_add == 0 && n_remove == 0)
        return 0;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        int rc = rf_shard_listeners_prepare(e->workers[i]->shard, next, add, remove, n_remove, err);
        if (rc < 0) {
            for (uint32_t j = 0; j < e->n_workers; j++)
                rf_shard_listeners_discard(e->workers[j]->shard);
            return rc;
        }
    }
    for (size_t i = 0; i < nx->n_listeners; i++)
        if (add[i] && nx->listeners[i].critical && !atomic_load_explicit(&e->critical_lane,
                                                                          memory_order_relaxed)) {
            int rc = create_critical_rings(e, err);
            if (rc < 0) {
                for (uint32_t j = 0; j < e->n_workers; j++)
                    rf_shard_listeners_discard(e->workers[j]->shard);
                return rc;
            }
            /* Pairs with the acquire in serve_critical: rings first. */
            atomic_store_explicit(&e->critical_lane, true, memory_order_release);
            break;
        }
    *changed = true;
    return 1;
}

static void listeners_discard(rf_engine *e)
{
    for (uint32_t i = 0; i < e->n_workers; i++)
        rf_shard_listeners_discard(e->workers[i]->shard);
}

/* Hands the prepared changes to the workers and waits until each took its
 * own (10 s; a worker that does not is logged, its change stays queued).
 * Returns how many workers had not taken theirs by then. */
static uint32_t listeners_apply(rf_engine *e, const rf_settings *next)
{
    uint32_t late = 0;
    bool waiting[RF_DAEMON_MAX_WORKERS] = {false};
    for (uint32_t i = 0; i < e->n_workers; i++) {
        waiting[i] = rf_shard_listeners_publish(e->workers[i]->shard);
        if (waiting[i])
            rf_worker_wake(e->workers[i]->thread);
    }
    int64_t deadline = rf_clock_mono_ns() + e->reload_wait_ns;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        while (waiting[i] && !rf_shard_listeners_applied(e->workers[i]->shard)) {
            if (rf_clock_mono_ns() > deadline) {
                rf_log_error("engine", "worker-%u did not take its listener change within %lld ms",
                             i, (long long)(e->reload_wait_ns / RF_NS_PER_MS));
                late++;
                break;
            }
            usleep(1000);
        }
    }
    /* The removed listeners close as soon as their queues are read and
     * their TCP clients gone: free them now (within the same deadline), so
     * neither memory nor /health keeps them after the reload returns. One
     * that takes longer is freed at the next reload or control tick. */
    for (uint32_t i = 0; i < e->n_workers; i++)
        while (!late && rf_shard_listeners_retiring(e->workers[i]->shard) &&
               rf_clock_mono_ns() < deadline)
            usleep(1000);
    rf_engine_reap_inputs(e);
    e->settings.ingest.n_listeners = next->ingest.n_listeners;
    memcpy(e->settings.ingest.listeners, next->ingest.listeners,
           next->ingest.n_listeners * sizeof(next->ingest.listeners[0]));
    e->settings.section_hash[RF_SECTION_LISTENERS] = next->section_hash[RF_SECTION_LISTENERS];
    return late;
}


int rf_engine_reload(rf_engine *e, rf_settings *next, rf_err *err)
{
    const rf_daemon_config *cur = &e->settings.daemon, *nx = &next->daemon;
    /* The pipeline first: building it can still fail (a sink that cannot be
     * opened), and then nothing at all changes. */
    bool pipeline_changed = next->section_hash[RF_SECTION_PIPELINE] !=
                            e->settings.section_hash[RF_SECTION_PIPELINE];
    /* Nothing is prepared while a previous change is still queued. */
    int settle = reload_settle(e, err);
    if (settle < 0)
        return settle;
    const uint32_t max_series_was = e->settings.pipeline.max_series;
    /* max_series: auto moves with the pipeline's worst case; the running
     * tables keep their size when the new file still fits with it. */
    if (e->settings.pipeline.max_series_auto)
        (void)rf_memory_budget_keep_max_series(next, max_series_was);
    const uint32_t max_series_new = next->pipeline.max_series;
    /* Listeners are bound before anything is applied: a port that cannot
     * be bound refuses the whole reload. */
    bool listeners_changed = false;
    if (next->section_hash[RF_SECTION_LISTENERS] != e->settings.section_hash[RF_SECTION_LISTENERS]) {
        int rc = listeners_prepare(e, next, &listeners_changed, err);
        if (rc < 0)
            return rf_err_wrap(err, "listeners: ");
        if (rc == 0) /* only comments or order changed */
            e->settings.section_hash[RF_SECTION_LISTENERS] = next->section_hash[RF_SECTION_LISTENERS];
    }
    bool pipeline_late = false;
    if (pipeline_changed) {
        int rc = reload_pipeline(e, next, err);
        pipeline_late = rc > 0;
        if (rc < 0) {
            listeners_discard(e);
            return rc;
        }
        e->settings.section_hash[RF_SECTION_PIPELINE] = next->section_hash[RF_SECTION_PIPELINE];
    }
    uint32_t listeners_late = listeners_changed ? listeners_apply(e, next) : 0;
    char fixed[768] = "";
    size_t len = 0;
#define RELOAD_NOTE(...)                                                                         \
    do {                                                                                         \
        if (len < sizeof(fixed))                                                                 \
            len += (size_t)snprintf(fixed + len, sizeof(fixed) - len, __VA_ARGS__);              \
    } while (0)
    /* Not a restart: the change is queued and the worker takes it at its
     * next loop. But "applied" would not be true yet. */
    char late[160] = "";
    if (pipeline_late || listeners_late)
        snprintf(late, sizeof(late), "%s%s%s not taken by every worker within %lld ms (queued, "
                 "see the log)", pipeline_late ? "the pipeline" : "",
                 pipeline_late && listeners_late ? " and " : "",
                 listeners_late ? "the listener change" : "",
                 (long long)(e->reload_wait_ns / RF_NS_PER_MS));
    if (nx->engine.workers != cur->engine.workers)
        RELOAD_NOTE(" engine.workers (%u -> %u)", cur->engine.workers, nx->engine.workers);
    if (nx->engine.ring.capacity != cur->engine.ring.capacity)
        RELOAD_NOTE(" engine.ring.capacity (%u -> %u)", cur->engine.ring.capacity,
                    nx->engine.ring.capacity);
    if (nx->engine.ring.full_policy != cur->engine.ring.full_policy)
        RELOAD_NOTE(" engine.ring.full_policy");
    if (nx->engine.pin_workers != cur->engine.pin_workers ||
        nx->engine.n_cpus != cur->engine.n_cpus ||
        memcmp(nx->engine.cpus, cur->engine.cpus, sizeof(nx->engine.cpus)))
        RELOAD_NOTE(" engine.pin_workers/cpus");
    if (strcmp(nx->engine.data_dir, cur->engine.data_dir) != 0)
        RELOAD_NOTE(" engine.data_dir");
    if (strcmp(nx->engine.run_dir, cur->engine.run_dir) != 0)
        RELOAD_NOTE(" engine.run_dir");
    /* The new file was checked against its own limit; /health keeps
     * watching the one the daemon started with. */
    if (nx->engine.memory_limit != cur->engine.memory_limit)
        RELOAD_NOTE(" engine.memory_limit");
    /* Opened before privileges were given up (core/log: rf_log_reopen
     * reopens the same path, for logrotate). */
    if (strcmp(nx->log.file, cur->log.file) != 0)
        RELOAD_NOTE(" log.file");
    if (pipeline_changed && max_series_new != max_series_was)
        RELOAD_NOTE(" pipeline.max_series (%u -> %u)", max_series_was, max_series_new);
    /* Sections applied only at start (the stats section is the ops server's
     * to report; the pipeline was applied above). */
    for (int i = 0; i < RF_SECTION__COUNT; i++)
        if (i != RF_SECTION_STATS && i != RF_SECTION_PIPELINE && i != RF_SECTION_LISTENERS &&
            next->section_hash[i] != e->settings.section_hash[i])
            RELOAD_NOTE(" %s", rf_settings_section_names[i]);
#undef RELOAD_NOTE

    /* Live: idle policy and logging. */
    const rf_idle_policy idle = {
        .spin = nx->engine.idle.spin,
        .yield = nx->engine.idle.yield,
        .sleep_max_ns = (int64_t)nx->engine.idle.sleep_max_ns,
    };
    for (uint32_t i = 0; i < e->n_workers; i++)
        rf_worker_set_idle(e->workers[i]->thread, &idle);
    rf_log_set_level(nx->log.level);
    rf_log_set_format(nx->log.format);

    /* The engine keeps its own settings (the shards point into them); only
     * what was applied changes. Nothing of `next` is kept: the caller frees it. */
    e->settings.daemon.engine.idle = nx->engine.idle;
    e->settings.daemon.log.level = nx->log.level;
    e->settings.daemon.log.format = nx->log.format;

    if (len > 0) {
        rf_err_set(err, 0, "these settings need a restart and were left as they are:%s%s%s", fixed,
                   late[0] ? "; " : "", late);
        return 1;
    }
    if (late[0]) {
        rf_err_set(err, 0, "%s", late);
        return 1;
    }
    return 0;
}

/* ---- recording from the listeners (daemon/tap.h) ---------------------------- */

int rf_engine_record_start(rf_engine *e, const rf_tap_options *opt, rf_err *err)
{
    if (atomic_load_explicit(&e->tap, memory_order_relaxed))
        return rf_err_set(err, EBUSY, "a recording is running already (to %s): record stop first",
                          rf_tap_path(atomic_load_explicit(&e->tap, memory_order_relaxed)));
    rf_tap *t;
    int rc = rf_tap_start(opt, e->n_workers, &t, err);
    if (rc < 0)
        return rc;
    /* Pairs with the workers' acquire loads: the tap is initialised. */
    atomic_store_explicit(&e->tap, t, memory_order_release);
    rf_log_info("engine", "recording what the listeners receive to %s", opt->path);
    return 0;
}

int rf_engine_record_stop(rf_engine *e, rf_tap_stats *final, rf_err *err)
{
    rf_tap *t = atomic_load_explicit(&e->tap, memory_order_relaxed);
    if (!t)
        return rf_err_set(err, ENOENT, "no recording is running");
    /* Relaxed: the release stores of tap_req below order it before what
     * the workers do after their acquire in tap_quiesce. */
    atomic_store_explicit(&e->tap, NULL, memory_order_relaxed);
    /* Grace period: a capture runs inside a worker's loop, so once a worker
     * has answered at the top of a loop begun after this request, none of
     * its captures can still use the tap (tap_quiesce). A sleeping worker
     * is woken to answer. */
    const uint64_t epoch = ++e->tap_epoch;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        /* Pairs with the acquire in tap_quiesce. */
        atomic_store_explicit(&e->workers[i]->tap_req, epoch, memory_order_release);
        rf_worker_wake(e->workers[i]->thread);
    }
    int64_t deadline = rf_clock_mono_ns() + e->tap_wait_ns;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        /* Pairs with the release store of tap_ack in tap_quiesce; a worker
         * that is not running any more loops no more (its state's release,
         * this acquire). */
        while (atomic_load_explicit(&w->tap_ack, memory_order_acquire) != epoch &&
               rf_component_state(rf_worker_component(w->thread)) == RF_STATE_RUNNING) {
            if (rf_clock_mono_ns() > deadline) {
                /* Never free what a stuck worker might still use: the
                 * tap's memory stays allocated; its thread stops and the
                 * file is closed with what the rings held. */
                rf_tap_stats st;
                rf_err terr;
                rf_err_clear(&terr);
                (void)rf_tap_abandon(t, &st, &terr);
                if (e->n_abandoned_taps < sizeof(e->abandoned_taps) / sizeof(e->abandoned_taps[0]))
                    e->abandoned_taps[e->n_abandoned_taps++] = t; /* else left for good */
                if (final)
                    *final = st;
                rf_log_error("engine", "worker-%u did not loop within %lld ms; the recording is "
                             "closed (%lu records), its buffers are kept until the engine stops", i,
                             (long long)(e->tap_wait_ns / RF_NS_PER_MS), (unsigned long)st.written);
                return rf_err_set(err, ETIMEDOUT, "worker-%u did not loop within %lld ms; the "
                                  "recording is closed", i,
                                  (long long)(e->tap_wait_ns / RF_NS_PER_MS));
            }
            rf_worker_wake(w->thread);
            usleep(200);
        }
    }
    rf_tap_stats st;
    int rc = rf_tap_stop(t, &st, err);
    if (final)
        *final = st;
    rf_log_info("engine",
                "recording stopped: %lu chunks recorded (%lu bytes), %lu records in %u file(s), "
                "%lu not recorded (ring full), %lu too large, %lu write errors",
                (unsigned long)st.captured, (unsigned long)st.bytes, (unsigned long)st.written,
                st.files, (unsigned long)st.dropped_full, (unsigned long)st.dropped_large,
                (unsigned long)st.write_errors);
    return rc;
}

bool rf_engine_record_stats(const rf_engine *e, rf_tap_stats *out, char *path, size_t path_size)
{
    rf_tap *t = atomic_load_explicit(&((rf_engine *)e)->tap, memory_order_acquire);
    if (!t)
        return false;
    rf_tap_stats_read(t, out);
    snprintf(path, path_size, "%s", rf_tap_path(t));
    return true;
}

uint32_t rf_engine_workers(const rf_engine *e)
{
    return e->n_workers;
}

void rf_engine_worker_stats_read(const rf_engine *e, uint32_t i, rf_engine_worker_stats *out)
{
    const rf_engine_worker *w = e->workers[i];
    memset(out, 0, sizeof(*out));
    out->events_parsed = atomic_load_explicit(&w->events_parsed, memory_order_relaxed);
    out->events_from_peers = atomic_load_explicit(&w->events_from_peers, memory_order_relaxed);
    out->events_processed = atomic_load_explicit(&w->events_processed, memory_order_relaxed);
    out->sent_to_peers = atomic_load_explicit(&w->sent_to_peers, memory_order_relaxed);
    out->dropped_ring_full = atomic_load_explicit(&w->dropped_ring_full, memory_order_relaxed);
    out->block_waits = atomic_load_explicit(&w->block_waits, memory_order_relaxed);
    out->critical_events = atomic_load_explicit(&w->critical_events, memory_order_relaxed);
    out->critical_from_peers = atomic_load_explicit(&w->critical_from_peers, memory_order_relaxed);
    out->dropped_unknown_series = rf_shard_unknown_series_drops(w->shard);
    out->peer_sent = atomic_load_explicit(&w->peer_enqueued, memory_order_relaxed);
    out->peer_received = atomic_load_explicit(&w->peer_dequeued, memory_order_relaxed);
    out->peer_dropped_backlog = atomic_load_explicit(&w->peer_dropped_backlog, memory_order_relaxed);
    out->peer_backlog = atomic_load_explicit(&w->peer_backlog_now, memory_order_relaxed);
}

void rf_engine_worker_runtime_read(const rf_engine *e, uint32_t i, rf_worker_stats *out,
                                   const rf_component **component)
{
    rf_worker_stats_read(e->workers[i]->thread, out);
    if (component)
        *component = rf_worker_component(e->workers[i]->thread);
}

bool rf_engine_ring_stats_read(const rf_engine *e, uint32_t from, uint32_t to, rf_ring_stats *out)
{
    if (from >= e->n_workers || to >= e->n_workers || from == to)
        return false;
    rf_ring_stats_read(e->workers[to]->inbound[from], out);
    return true;
}

const rf_settings *rf_engine_settings(const rf_engine *e)
{
    return &e->settings;
}

const struct rf_shard *rf_engine_shard(const rf_engine *e, uint32_t i)
{
    return i < e->n_workers ? e->workers[i]->shard : NULL;
}

struct rf_store *rf_engine_store(const rf_engine *e)
{
    return e->store;
}

const char *rf_engine_placement(const rf_engine *e)
{
    return e->placement;
}

const rf_mem_scope *rf_engine_worker_memory(const rf_engine *e, uint32_t worker)
{
    return worker < e->n_workers ? &e->memory[worker] : NULL;
}

struct rf_dpdk *rf_engine_dpdk(const rf_engine *e)
{
    return e->dpdk;
}

void rf_engine_set_input_gone(rf_engine *e, rf_shard_input_gone_fn fn, void *ctx)
{
    e->input_gone = fn;
    e->input_gone_ctx = ctx;
}

uint32_t rf_engine_reap_inputs(rf_engine *e)
{
    uint32_t freed = 0;
    for (uint32_t i = 0; i < e->n_workers; i++)
        freed += rf_shard_inputs_reap(e->workers[i]->shard, e->input_gone, e->input_gone_ctx);
    return freed;
}

void rf_engine_test_hold(rf_engine *e, uint32_t worker, int64_t ns)
{
    if (worker >= e->n_workers || ns <= 0)
        return;
    rf_engine_worker *w = e->workers[worker];
    atomic_store_explicit(&w->test_hold_ns, ns, memory_order_relaxed);
    /* Until test_hold has exchanged it: the worker is then stopped. */
    while (atomic_load_explicit(&w->test_hold_ns, memory_order_relaxed) == ns) {
        rf_worker_wake(w->thread);
        usleep(200);
    }
}

void rf_engine_test_reload_wait(rf_engine *e, int64_t ns)
{
    e->reload_wait_ns = ns;
    e->tap_wait_ns = ns;
}
