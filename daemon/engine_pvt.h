/* Private to daemon/engine_*.c: the engine's and each worker's state, shared
 * by the data plane (engine_dataplane.c), start and stop (engine_start.c),
 * live reload (engine_reload.c), recording (engine_record.c) and the reads
 * of the control thread (engine_state.c). Do not include from outside
 * daemon/ (tests excepted): daemon/engine.h is the contract. */
#ifndef RF_DAEMON_ENGINE_PVT_H
#define RF_DAEMON_ENGINE_PVT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/mem/mem.h"
#include "core/ring/ring.h"
#include "core/worker/worker.h"
#include "daemon/engine.h"
#include "daemon/field_types_seed.h"
#include "daemon/tap.h"
#include "daemon/worker_shard.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/spread/spread.h"
#include "stages/pipeline/pipeline.h"
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

/* HTTP sync writes (engine_sync.c). A worker's waits in flight at most
 * (rounds: one per poll that parked answers) and answers parked at most;
 * past either a sync write is answered 503. A sync ring per ordered pair
 * carries the markers and their acknowledgements: at most RF_SYNC_ROUNDS
 * of each in flight, so 2 x RF_SYNC_ROUNDS slots are never full. */
#define RF_SYNC_ROUNDS 64u
#define RF_SYNC_WAITERS 1024u
#define RF_SYNC_RING_SLOTS (2u * RF_SYNC_ROUNDS)
/* How long a sync write waits for its points to be durable before 503. */
#define RF_SYNC_TIMEOUT_NS (10 * RF_NS_PER_S)
/* How often a worker with waits in flight looks at the store's durable
 * mark when it has nothing else to do. */
#define RF_SYNC_RECHECK_NS (200 * 1000)
struct rf_sync_state;

/* Series the critical edge can name an evaluating worker for (a power of
 * two); past it (a probe of RF_ENGINE_EDGE_PROBE finds no room) a series'
 * owner does all of its critical work, as without the edge. 128 KiB. */
#define RF_ENGINE_EDGE_CLAIMS (1u << 14)
#define RF_ENGINE_EDGE_PROBE 16u

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
    rf_staging *staging; /* [workers] */
    /* Peer messages: peer_inbound[j] from worker j, peer_outbound[j] to it
     * (NULL for self and with one worker), and the backlog per destination. */
    rf_ring *peer_inbound[RF_DAEMON_MAX_WORKERS];
    rf_ring *peer_outbound[RF_DAEMON_MAX_WORKERS];
    rf_peer_backlog peer_backlog[RF_DAEMON_MAX_WORKERS];
    /* HTTP sync writes (engine_sync.c): the sync rings (NULL for self and
     * with one worker), the events put on each outbound ring and taken
     * from each inbound one (so a marker can say "after the first N"),
     * whether local events were processed since the last round, and the
     * waits (allocated at the first sync write). This worker's only. */
    rf_ring *sync_inbound[RF_DAEMON_MAX_WORKERS];
    rf_ring *sync_outbound[RF_DAEMON_MAX_WORKERS];
    uint64_t sent_to[RF_DAEMON_MAX_WORKERS], received_from[RF_DAEMON_MAX_WORKERS];
    bool local_since_round;
    struct rf_sync_state *sync;
    /* Sync writes answered (durable), and refused by outcome; relaxed. */
    _Atomic uint64_t sync_rounds, sync_answered, sync_timeouts, sync_failed;
    rf_event local[RF_POLL_BATCH];
    uint32_t n_local;
    rf_event scratch[RF_POLL_BATCH];
    /* The critical edge (daemon/engine_dataplane.c, edge_forward): a
     * listener's critical events this worker evaluates before sending them
     * to their owner, and what it takes from its critical rings. Apart from
     * scratch, which a wait for room in a ring (enqueue_waiting) reuses. */
    rf_event crit_edge[RF_POLL_BATCH];
    rf_event crit_in[RF_POLL_BATCH];

    /* Set (release) by this worker once it has stopped receiving and flushed
     * its staging; read (acquire) by the control thread in rf_engine_stop. */
    _Atomic bool ingest_quiesced;
    /* Set (release) by this worker once its stages closed (stop, step 1 of
     * pipeline.h "Between shards"); read (acquire) by rf_engine_stop. */
    _Atomic bool stages_closed;

    bool in_critical;      /* serve_critical is on the stack: not re-entered */
    bool ingest_stop_done; /* rf_shard_stop_ingest ran (stop, phase 1) */

    /* When this worker's rings last dropped points (drop_newest), 0 never:
     * HTTP writes answer 503 for a second after (worker_busy). This
     * worker's thread only. */
    int64_t last_ring_drop_ns;
    /* HTTP writes answered 503 by worker_busy, by why (this worker's). */
    _Atomic uint64_t busy_ring_drops, busy_series_limit, busy_memory;
    /* The shards' series refused at the table limit, as this worker last
     * summed them, and when that sum last grew (worker_busy). This worker's
     * thread only. */
    uint64_t series_refused_seen;
    int64_t last_series_refusal_ns;
    bool series_refused_summed;

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
    _Atomic uint64_t events_parsed, events_from_peers, events_processed, sent_to_peers,
        dropped_ring_full, block_waits, critical_events, critical_from_peers;
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
    /* Resident memory above engine.memory_limit (rf_engine_set_memory_over,
     * control thread, once a second): HTTP writes are answered 503. A
     * relaxed flag: a request taken in the second it flips is no harm. */
    _Atomic bool memory_over;
    rf_engine_worker *workers[RF_DAEMON_MAX_WORKERS];
    rf_store *store;             /* NULL when storage is disabled */
    rf_field_types *field_types; /* shared by every parse context (field_types_seed.h) */
    /* collectd's users and level, shared by every parse context; the auth
     * file is read again at each reload (engine_reload.c). */
    rf_collectd_auth *collectd_auth;
    rf_dpdk *dpdk; /* NULL when DPDK is disabled or could not start */
    /* One client over every core (ingest/spread): NULL with one worker. */
    rf_spread *spread;
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
    /* Called before a removed listener's input is freed (ops/views/metrics_listeners.c:
     * its /metrics series read it). Control thread. */
    rf_shard_input_gone_fn input_gone;
    void *input_gone_ctx;
    int cpus[RF_DAEMON_MAX_WORKERS]; /* pinned CPU per worker, -1 = not pinned */
    /* NUMA node per worker (-1: not pinned, or unknown), and what each
     * worker's structures bound there (numa/numa.h, "Memory"). */
    int16_t nodes[RF_DAEMON_MAX_WORKERS];
    rf_mem_scope memory[RF_DAEMON_MAX_WORKERS];
    char placement[1024]; /* the placement report for `show info` */
    /* Set (release) by rf_engine_stop phase 1; read (acquire) by workers. */
    _Atomic bool stop_ingest;
    /* Set (release) by rf_engine_stop once ingest is quiet everywhere; read
     * (acquire) by workers, which then close their stages once. */
    _Atomic bool close_stages;
    /* Set (release) by rf_engine_start once every worker's thread exists;
     * read (acquire) by workers before they take in anything: until then a
     * worker could hand events to a peer whose thread it cannot wake yet. */
    _Atomic bool threads_ready;
    /* The critical edge's claims (engine_dataplane.c, edge_claim): which
     * worker evaluates a series' critical rules. A word per series, its id's
     * high 56 bits and the worker + 1; 0 is free. Claimed with one
     * compare-and-swap and never changed after, so one relaxed load tells
     * any worker the answer. */
    _Atomic uint64_t edge_claims[RF_ENGINE_EDGE_CLAIMS];
};

/* engine_dataplane.c */

/* Hands worker w's shard the data plane's callbacks: dispatch, the busy
 * test, the critical lane's hook, the tap and peer sends. Before the
 * worker's thread starts (rf_engine_start). */
void rf_engine_worker_attach(rf_engine_worker *w);
/* The loop core/worker runs for w (rf_worker_start). */
rf_worker_ops rf_engine_worker_ops(rf_engine_worker *w);
/* Frees the blocks the peer messages ev[0..n) own (messages never delivered). */
void rf_engine_peer_free_owned(const rf_event *ev, uint32_t n);

/* engine_sync.c */

/* Hands the shard the sync-write callbacks (rf_shard_set_sync). */
void rf_engine_sync_attach(rf_engine_worker *w);
/* Once per poll, after the events of the poll were dispatched and the
 * inbound rings drained: markers in, barriers taken, acks out and in,
 * waits answered, and this poll's round sent. Returns work done. */
uint32_t rf_engine_sync_poll(rf_engine_worker *w);
/* Sends this poll's round (markers, its own barrier): after the poll's
 * events were dispatched, its staging flushed and its own events processed. */
void rf_engine_sync_issue(rf_engine_worker *w);
/* When the worker must look again (a wait in flight), 0 for never. */
int64_t rf_engine_sync_next_due(const rf_engine_worker *w);
int rf_engine_sync_rings_create(rf_engine_worker *w, uint32_t workers, rf_err *err);
void rf_engine_sync_free(rf_engine_worker *w);
/* One worker's sync rings (inbound from every peer) and its wait state at
 * their largest (for engine.memory_limit). */
uint64_t rf_engine_sync_memory_bound(uint32_t workers);

/* engine_start.c */

/* The critical rings between every pair of workers, created when the first
 * critical listener comes (at start, or by a reload). Control thread. */
int rf_engine_create_critical_rings(rf_engine *e, rf_err *err);

#endif
