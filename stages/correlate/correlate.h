/* Correlation: grouping related events, on the shard that owns the group.
 *
 * (a) By correlation id (events whose correlation_id != 0)
 *   A bounded table (id_capacity, seed default 10,000) of open groups. A group
 *   holds the number of events, first/last event time and up to
 *   RF_CORR_MAX_MEMBERS distinct member series ids. A group closes when
 *     - ttl:      id_ttl (seed default 1 h) has passed since it opened,
 *                 measured on monotonic receipt time (recv_time_ns, and the
 *                 `now` given to tick): wall-clock jumps do not move TTLs;
 *     - members:  it reached id_close_members events (0 = never);
 *     - capacity: a new id arrives while the table is full: the oldest group
 *                 (by opening) is evicted to make room.
 *   Every close is counted by reason. A closed group with at least
 *   id_min_members events (default 2) is emitted; smaller ones (lone events)
 *   close silently, counted as closed_small.
 *
 * (b) By pattern (events of series bound to a pattern, correlation id or not)
 *   SEQUENCE "A then B on the same key within T", on event times whichever
 *            arrives first: an event of a series matching `a` arms the key
 *            (the A with the latest event time counts); an event of a series
 *            matching `b` whose event time is 0..T after the armed A emits a
 *            group of 2 (A's series, B's series). A B that finds no such A
 *            waits (the latest B counts) for an A 0..T before it, which then
 *            emits the group. A group clears the key (armed A, waiting B).
 *   BURST    "N of X within T": the last N events of series matching `a` on
 *            the same key; when their event times span at most T a group of
 *            N is emitted and the key's history is cleared (a burst of 2N
 *            events gives two groups, not N+1).
 *   The key is the value of tag `key_tag` (e.g. host); a series without that
 *   tag does not take part; an empty/NULL key_tag puts every series under one
 *   key. Windows use event time. Matchers and keys are resolved once per
 *   series in rf_correlator_define (call on SERIES_DEF); per-event work is a
 *   slot lookup and one hash probe. Pattern key state is a bounded table
 *   (pattern_keys); when full, a key idle for longer than its window is reused
 *   (counted), else the event is not tracked (counted pattern_keys_full).
 *
 * Several shards (rf_correlator_set_peers)
 *   Each group lives on one shard whatever shard owns the series of its
 *   events: a pattern key on rf_event_owner(key hash, shards), an id group on
 *   rf_event_owner(correlation_id, shards). The series owner's correlator
 *   handles an event in place when the group is its own, else sends the
 *   group's owner a peer message (core/event/event.h "Peer messages"; kind
 *   RF_KIND_PEER, no owned aux, 64 bytes: nothing is allocated per event):
 *     RF_CORR_MSG_PATTERN  subkind RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, 1)
 *       event_time_ns, recv_time_ns, series_id, priority: the member event's
 *       value.u64       the key hash (XXH3 of the key tag's value; 0: no key_tag)
 *       aux             bits 0..15 pattern index, 16..23 role (1 A, 2 B, 3 both),
 *                       32..63 a hash of the pattern's definition (name, type,
 *                       key tag, window, count)
 *     RF_CORR_MSG_ID       subkind RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, 2)
 *       event_time_ns, recv_time_ns, series_id, priority, correlation_id: the
 *       member event's
 *     RF_CORR_MSG_GROUP    subkind RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, 3)
 *       a group formed here whose series (below) another shard owns: the
 *       RF_KIND_CORRELATED event itself, kind and subkind aside, route_hint
 *       the pattern's definition hash (0 for id groups); that shard emits it,
 *       so sinks name its series as with one shard (one message per group)
 *   The receiver (rf_correlator_receive) runs the same code as in place, so
 *   one shard and N shards form the same groups; what can differ is the
 *   arrival order at the owner, which the rules above do not depend on for
 *   one A and one B per key and window (a burst's N events within T, an id
 *   group's count and span, do not depend on it at all). A pattern message
 *   whose index and definition hash do not match a pattern of the receiver
 *   (a reload swapped one shard before the other) is dropped and counted
 *   (peer_stale; a group message of a pattern the receiver does not have
 *   likewise). Series bound to no pattern and events without an id cost
 *   nothing more; a binding's owner is computed once, in define. Messages
 *   are staged per pass (at most 256) and sent grouped by shard at the end
 *   of rf_correlator_process (and of receive, tick, drain). Nothing is held
 *   back between passes. Stop: rf_correlator_close (step 1 of the stop
 *   order) closes the open id groups and sends them to their series'
 *   owners; from then on groups are emitted where they form (peers may have
 *   stopped), where a sink may not know their series (it writes the id).
 *
 * Emitted RF_KIND_CORRELATED events
 *   aux            low 32 bits: member count (events in the group);
 *                  high 32 bits: pattern id, 0 for correlation-id groups,
 *                  1..n for patterns[0..n-1] (the router's subject is
 *                  "correlated.<name>", "correlated.id" for id groups)
 *   correlation_id the group's id for (a); for (b) a generated group id:
 *                  bit 62 set | pattern id << 40 | sequence number
 *   series_id      (a) the series of the member with the earliest event time
 *                  (ties: the lowest series id), so it does not depend on the
 *                  arrival order; (b) SEQUENCE the B member's, BURST the
 *                  member with the latest event time (ties: the highest id)
 *   value.i64      span: last - first member event time, ns (value_type I64)
 *   event_time_ns  the last member's event time
 *   recv_time_ns   receipt time of the event that closed it (monotonic)
 *   priority       CRITICAL when the pattern says so (id groups: standard)
 *   Member series ids: rf_correlator_members(correlation_id) returns them for
 *   the last `closed_history` groups (a side table, overwritten oldest first).
 *
 * Memory: everything is allocated in new() and set_peers(); bindings grow
 * in define(). One correlator per worker, used by its thread only.
 */
#ifndef RF_STAGES_CORRELATE_H
#define RF_STAGES_CORRELATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error/error.h"
#include "core/event/event.h"
#include "stages/match/match.h"
#include "stages/stage/stage.h"

#define RF_CORR_MAX_MEMBERS 16u
#define RF_CORR_BURST_MAX 16u
/* Most shards rf_correlator_set_peers takes (a binding's owner is 16 bits). */
#define RF_CORR_MAX_SHARDS 1024u

/* Peer message types (low byte of subkind; wire form above). */
enum rf_corr_peer_msg {
    RF_CORR_MSG_PATTERN = 1,
    RF_CORR_MSG_ID = 2,
    RF_CORR_MSG_GROUP = 3,
};

enum rf_corr_pattern_type {
    RF_CORR_SEQUENCE = 0,
    RF_CORR_BURST = 1,
};

typedef struct rf_corr_pattern_config {
    const char *name; /* [A-Za-z0-9_-]+, unique, not "id" */
    enum rf_corr_pattern_type type;
    rf_series_matcher a; /* SEQUENCE: the first event; BURST: the counted events */
    rf_series_matcher b; /* SEQUENCE: the second event */
    const char *key_tag; /* tag whose value is the key; NULL or "": one global key */
    int64_t within_ns;   /* T */
    uint32_t count;      /* BURST: N, 2..RF_CORR_BURST_MAX */
    bool critical;       /* emit with RF_PRIO_CRITICAL */
} rf_corr_pattern_config;

typedef struct rf_correlator_config {
    uint32_t id_capacity;      /* 0: 10,000 */
    int64_t id_ttl_ns;         /* 0: 1 h */
    uint32_t id_close_members; /* close at this many events; 0: never */
    uint32_t id_min_members;   /* emit groups of at least this many; 0: 2 */
    const rf_corr_pattern_config *patterns;
    uint32_t n_patterns;
    uint32_t pattern_keys;   /* 0: 4096 */
    uint32_t closed_history; /* 0: 256 */
} rf_correlator_config;

/* The most memory rf_correlator_new(cfg, max_slots) can come to hold: the id
 * groups and their index, the per-slot table, a binding per (pattern, series)
 * in an array that doubles (capacity and the old copy during realloc), the
 * pattern keys and their index, the closed-group history
 * (rf_mem_alloc_bound rounding). */
uint64_t rf_correlator_memory_bound(const rf_correlator_config *cfg, uint32_t max_slots);

typedef struct rf_correlator_stats {
    uint32_t id_open; /* groups open now */
    uint32_t pattern_keys_used;
    uint64_t id_events;
    uint64_t id_opened;
    uint64_t closed_ttl;
    uint64_t closed_members;
    uint64_t evicted_capacity;
    uint64_t closed_drain; /* closed by rf_correlator_drain (shutdown) */
    uint64_t closed_small; /* closed below id_min_members: not emitted */
    uint64_t emitted;      /* correlated events, both kinds */
    uint64_t pattern_events;
    uint64_t sequences;
    uint64_t bursts;
    uint64_t pattern_keys_reused;
    uint64_t pattern_keys_full;
    uint64_t forwarded;      /* peer messages sent to other shards' groups */
    uint64_t received;       /* peer messages received (the two below included) */
    uint64_t peer_stale;     /* dropped: for a pattern this configuration does not have */
    uint64_t peer_malformed; /* dropped: not a correlation message, unknown type, id 0 */
} rf_correlator_stats;

typedef struct rf_correlator rf_correlator;

int rf_correlator_new(const rf_correlator_config *cfg, uint32_t max_slots, rf_emitter out,
                      rf_correlator **c, rf_err *err);
void rf_correlator_free(rf_correlator *c);

/* This correlator is shard `index` of `shards` (default: 0 of 1): groups
 * owned by other shards are sent to them through `send` (ctx is its first
 * argument; rf_pipeline_peer_send in the daemon). Call before the first
 * define or event. -EINVAL (no send with shards > 1, shards above
 * RF_CORR_MAX_SHARDS), -ENOMEM. */
int rf_correlator_set_peers(rf_correlator *c, rf_peer_send_fn send, void *ctx, uint32_t index,
                            uint32_t shards, rf_err *err);

/* A peer message (RF_PEER_STAGE_CORRELATE) from another shard: joins the
 * group it names here, emitting what closes. 0, -ENOENT (pattern not in this
 * configuration: counted peer_stale) or -EINVAL (counted peer_malformed).
 * Keeps nothing of ev. */
int rf_correlator_receive(rf_correlator *c, const rf_event *ev);

/* Binds the patterns whose matchers accept `key` to `slot` (once per slot). */
void rf_correlator_define(rf_correlator *c, int32_t slot, const rf_series_key *key);

/* Series lifecycle (stages/pipeline/pipeline.h): the series in `slot`
 * expired; its pattern bindings are dropped, and the slot's next series
 * binds afresh in their room. */
void rf_correlator_forget(rf_correlator *c, int32_t slot);

/* Correlates n events (slots[i] = slot of events[i], -1 unknown: id
 * correlation only). Alerts, correlated and control events are ignored.
 * Expires TTLs against the latest receipt time seen. */
void rf_correlator_process(rf_correlator *c, const rf_event *events, const int32_t *slots,
                           uint32_t n);

/* Closes groups whose TTL passed by now_mono_ns. */
void rf_correlator_tick(rf_correlator *c, int64_t now_mono_ns);
/* The monotonic time at which rf_correlator_tick next has work: the oldest
 * open id group's TTL (0: peer messages wait to be flushed), INT64_MAX for
 * none. */
int64_t rf_correlator_next_due(const rf_correlator *c);

/* Closes every open group (shutdown, reload), emitting those large enough. */
void rf_correlator_drain(rf_correlator *c, int64_t now_mono_ns);

/* Stop, step 1 (stages/pipeline/pipeline.h "Between shards"): drains, and from then
 * on emits every group where it forms instead of sending it to its series'
 * owner. */
void rf_correlator_close(rf_correlator *c, int64_t now_mono_ns);

/* Member series ids of a recently closed group. Returns how many were
 * written (at most cap), or -ENOENT when it is no longer in the history. */
int rf_correlator_members(const rf_correlator *c, uint64_t correlation_id, uint64_t *out,
                          uint32_t cap);

/* Subject names by pattern id for rf_router_bind_names(RF_SUBJ_CORRELATED):
 * names[0] = "id", names[i] = patterns[i-1].name. */
const char *const *rf_correlator_names(const rf_correlator *c, uint32_t *n);

void rf_correlator_stats_read(const rf_correlator *c, rf_correlator_stats *out);

/* ---- configuration (YAML through core/config) ----
 *
 *   pipeline:
 *     correlation:
 *       id: {capacity: 10000, ttl: 1h, close_after: 0, min_members: 2}
 *       pattern_keys: 4096
 *       history: 256
 *       patterns:
 *         - name: fail_then_ok
 *           type: sequence             # sequence | burst
 *           first: {measurement: auth, field: failed}
 *           then: {measurement: auth, field: ok}
 *           key: host
 *           within: 60s
 *           critical: true
 *         - {name: error_burst, type: burst, match: {measurement: errors}, count: 5,
 *            within: 10s, key: host}
 *
 * Errors name the line. Strings are owned by `out`. */
typedef struct rf_correlator_config_parsed {
    rf_correlator_config cfg;
    rf_corr_pattern_config *patterns;
} rf_correlator_config_parsed;

int rf_correlator_config_parse(const rf_cfg_node *pipeline, rf_correlator_config_parsed *out,
                               rf_err *err);
void rf_correlator_config_release(rf_correlator_config_parsed *p);

#endif
