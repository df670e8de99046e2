/* Alert rules evaluated on the stream, per worker.
 *
 * Rule types
 *   THRESHOLD  condition `value <op> fire` on each sample of a matched series.
 *   RATE       the same condition on the rate of change per second over
 *              `window`: (v_now - v_ref) / (t_now - t_ref) where ref is the
 *              oldest retained sample not older than window (8 anchors per
 *              window are kept, so ref is within window/8 of the window
 *              start). The rate is only evaluated once ref is at least
 *              window/2 old, so two samples a millisecond apart cannot fire it.
 *   ABSENCE    no sample for `absent` (monotonic receipt time), checked by
 *              rf_alerts_tick(). Per series (each matched series on its own,
 *              the clock starting at the first tick after it is defined) or,
 *              with absence_any, for the rule as a whole (no sample from any
 *              matched series, including when none exists yet; see
 *              "Rule-wide rules" below). A sample resolves it.
 *
 * Clocks. For-durations and rates are measured on the sample's clock: its
 * event time when that is not the daemon's wall clock (the client sent a
 * timestamp, RF_EVF_HAS_CLIENT_TIME, or it is an aggregate: its window
 * start), so replayed or batched data alerts as it would have live; else its
 * monotonic receipt time (recv_time_ns), so a step of the wall clock neither
 * fires a for-duration at once nor stalls it. A binding whose series changes
 * clocks restarts its pending duration and rate history on the new one.
 *
 * State machine (THRESHOLD and RATE), per (rule, series), t = sample clock:
 *   OK       --cond(fire)-->                 PENDING (since = t)   [FIRING at once if for = 0]
 *   PENDING  --!cond(fire)-->                OK      (no event)
 *   PENDING  --cond(fire) and t-since>=for--> FIRING  emits fire
 *   FIRING   --!cond(resolve)-->             OK      emits resolve
 *   Hysteresis: while firing the condition is tested against `resolve`
 *   instead of `fire` (e.g. > 90 fires, stays firing while > 80). For > and
 *   >= resolve must be <= fire, for < and <= it must be >= fire; == and !=
 *   take no distinct resolve. The for-duration is checked when a sample
 *   arrives: a condition that held `for` fires on the first sample after.
 *
 * Output
 *   RF_KIND_ALERT events, priority RF_PRIO_CRITICAL, aux = rule id, flag
 *   RF_EVF_ALERT_RESOLVED on resolve, series_id = the series (the rule's own
 *   series for a rule-wide absence, below), value.f64 = the value
 *   (THRESHOLD), the rate per second (RATE) or the seconds of silence
 *   (ABSENCE; 0 on its resolve), event_time_ns = the sample's event time
 *   (tick's wall time for an absence fire), recv_time_ns = the sample's
 *   receipt time (so critical-path latency covers the triggering packet), and
 *   correlation_id = an alert instance id shared by a fire and its resolve: a
 *   hash of (rule, series, the fire's times) with the high bit set, so the
 *   same stream gives the same ids on 1 worker or N.
 *   The worker routes them by subject "alert.<rule name>" (critical routes)
 *   and writes them to a sink like any event.
 *
 * Rule-wide rules (issue 23)
 *   Threshold, rate and per-series absence state is per (rule, series) and
 *   lives where the series lives: no hop. The only rule kind whose state
 *   spans series is the absence with absence_any (`scope: any`). Its state
 *   lives on one owner shard, rf_event_owner(rule series id, shards); every
 *   shard (the owner too, through its own queue, so 1 and N shards take one
 *   path) tracks the samples of the rule it processed and, at its tick, sends
 *   the owner one report per rule that saw any (none otherwise: a report only
 *   ever moves the rule's clock forward, so silence needs no message).
 *
 *   Its series: "alert,rule=<name> state" (measurement alert, tag rule, field
 *   state; names need no escaping, so this is the canonical key). The owner
 *   defines it in its series table through a SERIES_DEF in its output, just
 *   before the rule's first alert, so every sink (JSON, line protocol, the
 *   store) names it. Rules never bind to a rule's own series.
 *
 *   Wire form, RF_KIND_PEER, subkind RF_PEER_SUBKIND(RF_PEER_STAGE_ALERT,
 *   RF_ALERT_PEER_REPORT), no owned aux:
 *     series_id      the rule's series id (names the rule by name, whatever
 *                    its index, across reloads)
 *     value.u64      samples of the rule seen since the last report (>= 1)
 *     recv_time_ns   monotonic receipt time of the latest of them
 *     event_time_ns  its event time
 *     aux            the sending shard's index
 *   A report for a rule the receiving stage does not have (removed by a
 *   reload, or not rule-wide there) is counted (reports_unknown), never
 *   applied.
 *
 *   The owner's view and timing. The owner keeps the latest sample time it
 *   knows, by (recv_time, event_time), and decides at its ticks: it fires
 *   when now - latest >= absent + RF_ALERT_REPORT_ALLOWANCE_NS, and resolves
 *   at the first tick (or flush) after a report of a sample newer than the
 *   one it fired on, stamped with that sample's times. The times are the
 *   sample's receipt times (a monotonic clock shared by all threads), never
 *   a report's arrival time. A sample received at t is known to the owner
 *   by t + (the time it waited in the input ring, as on one worker) + one
 *   tick of the shard that processed it (10 ms) + the peer ring's latency;
 *   the allowance (100 ms) bounds the last two, so every sample received
 *   before now - allowance is known at the owner's tick `now`, and a fire
 *   means a real silence of at least `absent` (ending at now - allowance).
 *   A report that breaks the bound (a sample already older than the
 *   allowance at the owner's previous tick) is still applied and counted as
 *   reports_late. Rule-wide fires therefore come `allowance` after `absent`,
 *   and a resolve up to one tick after the sample, on any number of workers.
 *   Under an event clock (replay) every shard ticks at the same times and
 *   the reports of tick T are delivered before tick T + 1 on every shard:
 *   the owner knows exactly the same samples at each tick on 1 shard or N,
 *   so fires and resolves are identical.
 *
 *   Stop and reload: rf_alerts_flush sends what is not yet reported and lets
 *   the owner resolve on what it knows (the pipeline calls it at step 1 of
 *   the stop and when stages are swapped or drained). A reload replaces the
 *   stage: rule-wide clocks start again at the new stage's first tick (never
 *   a false fire), and reports of the old stages reach the new one.
 *
 * Binding rules to series
 *   Matchers are evaluated once per series in rf_alerts_define (call it when
 *   a SERIES_DEF is applied; again for every known series after building a
 *   new rf_alerts on reconfiguration). Per-event work is an array lookup by
 *   slot and the bound rules' comparisons; nothing is allocated per event.
 *   Binding state grows at define time up to max_bindings (refusals counted).
 *
 * One rf_alerts per worker, used by its thread only.
 */
#ifndef RF_STAGES_ALERT_H
#define RF_STAGES_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "core/event/event.h"
#include "stages/match/match.h"
#include "stages/route/route.h" /* rf_router: alert subjects are checked against the routes */
#include "stages/stage/stage.h"

enum rf_alert_type {
    RF_ALERT_THRESHOLD = 0,
    RF_ALERT_RATE = 1,
    RF_ALERT_ABSENCE = 2,
};

enum rf_cmp_op {
    RF_CMP_GT = 0, /* > */
    RF_CMP_GE = 1, /* >= */
    RF_CMP_LT = 2, /* < */
    RF_CMP_LE = 3, /* <= */
    RF_CMP_EQ = 4, /* == */
    RF_CMP_NE = 5, /* != */
};

typedef struct rf_alert_rule_config {
    const char *name; /* [A-Za-z0-9_-]+, unique: subject token "alert.<name>" */
    rf_series_matcher match;
    enum rf_alert_type type;
    enum rf_cmp_op op; /* THRESHOLD, RATE */
    double fire;
    double resolve; /* used when has_resolve */
    bool has_resolve;
    int64_t for_ns;    /* THRESHOLD, RATE: 0 fires on the first breach */
    int64_t window_ns; /* RATE */
    int64_t absent_ns; /* ABSENCE */
    bool absence_any;  /* ABSENCE: rule-wide rather than per series */
} rf_alert_rule_config;

typedef struct rf_alerts_config {
    const rf_alert_rule_config *rules;
    uint32_t n_rules;
    uint32_t max_bindings; /* (rule, series) pairs; 0: 4 x max_slots */
} rf_alerts_config;

typedef struct rf_alerts_stats {
    uint32_t rules;
    uint32_t bindings;
    uint64_t evaluated; /* (sample, rule) evaluations */
    uint64_t fired;
    uint64_t resolved;
    uint64_t bindings_refused; /* max_bindings reached */
    /* Rule-wide rules (see "Rule-wide rules"). */
    uint64_t reports_sent;      /* to the owner (this shard included) */
    uint64_t reports_received;  /* applied here, as the owner */
    uint64_t reports_unknown;   /* dropped: no such rule-wide rule here (e.g. gone with a reload) */
    uint64_t reports_late;      /* applied, but later than the allowance */
    uint64_t series_def_failed; /* a rule's series key could not be allocated (alert named by id) */
} rf_alerts_stats;

/* Rule-wide reports (see "Rule-wide rules"). */
#define RF_ALERT_PEER_REPORT 1u
/* How late the owner may learn of a sample another shard processed: one
 * shard tick (10 ms) plus the peer ring's latency. */
#define RF_ALERT_REPORT_ALLOWANCE_NS (100 * 1000 * 1000LL)

typedef struct rf_alerts rf_alerts;

/* The most memory rf_alerts_new(cfg, max_slots) can come to hold: the rules,
 * the per-slot table, and max_bindings bindings (each with its rate anchors
 * when a rule is a rate rule, and an absence index) in arrays that double,
 * counted at the capacity they can reach with the old copy alive while they
 * grow (rf_mem_alloc_bound rounding). */
uint64_t rf_alerts_memory_bound(const rf_alerts_config *cfg, uint32_t max_slots);

/* Validates every rule (name, operator, hysteresis direction, durations) and
 * says which rule is wrong and why. `out` receives the alert events. */
int rf_alerts_new(const rf_alerts_config *cfg, uint32_t max_slots, rf_emitter out,
                  rf_alerts **alerts, rf_err *err);
void rf_alerts_free(rf_alerts *a);

/* Shard `index` of `shards`, and how to reach the others' alert stages
 * (the pipeline: rf_pipeline_peer_send, which queues messages to the own
 * shard until after the current pass). Without a send function the stage
 * is alone (index 0 of 1) and applies its own reports directly, after its
 * tick's decisions, as the pipeline would. Call before the first event. */
void rf_alerts_set_peers(rf_alerts *a, uint32_t index, uint32_t shards, rf_peer_send_fn send,
                         void *ctx);

/* A peer message of RF_PEER_STAGE_ALERT (a report, above). */
void rf_alerts_peer_receive(rf_alerts *a, const rf_event *ev);

/* Sends the reports not yet sent, and resolves the owned rule-wide alerts
 * whose silence a known sample has ended (stop step 1, reload, drain). */
void rf_alerts_flush(rf_alerts *a);

/* The series "alert,rule=<name> state" of a rule (its id, rf_series_id_of_key)
 * written into buf; its length, or -ENOSPC. */
int rf_alert_rule_series_text(const char *name, char *buf, size_t cap);
uint64_t rf_alerts_rule_series_id(const rf_alerts *a, uint32_t rule_id);

/* The critical edge (stages/pipeline/pipeline.h, "The critical edge"): a
 * critical event's threshold rules may be evaluated by the worker it arrived
 * at, in an rf_alerts of that worker's edge, rather than by its owner. Such
 * an instance (rf_alerts_set_edge, before the first define) binds only
 * threshold rules: rate anchors and absence clocks stay with the owner,
 * which sees every sample. The events it evaluated then reach the owner
 * flagged RF_EVF_EDGE_DONE, and the owner's instance skips its threshold
 * rules for them (each (rule, series) state lives in one place). Rule ids
 * are the configuration's in both, so a sink names an edge alert's rule
 * through either. */
void rf_alerts_set_edge(rf_alerts *a);

/* Binds the rules whose matchers accept `key` to `slot` (once per slot). */
void rf_alerts_define(rf_alerts *a, int32_t slot, const rf_series_key *key);

/* Series lifecycle (stages/pipeline/pipeline.h): the series in `slot`
 * expired; its bindings are dropped without an event (a per-series absence
 * has fired by then: the configuration keeps `absent` below the TTL), and
 * the slot's next series binds afresh in their room. */
void rf_alerts_forget(rf_alerts *a, int32_t slot);

/* Evaluates n events (slots[i] = slot of events[i], -1 unknown). Alert,
 * correlated and control events are ignored. Emits once per call (or per
 * 256 alerts). */
void rf_alerts_process(rf_alerts *a, const rf_event *events, const int32_t *slots, uint32_t n);

/* Absence checks; now_mono_ns for the durations, now_wall_ns to stamp events.
 * Also where rule-wide reports leave (after the owner's decisions). */
void rf_alerts_tick(rf_alerts *a, int64_t now_mono_ns, int64_t now_wall_ns);
/* The monotonic time at which rf_alerts_tick next has a decision to make
 * (an absence's silence comes due), as of the last tick: INT64_MAX for
 * none, 0 before the first tick. Samples processed since only make a
 * silence end later; reports to send and new bindings come with work, after
 * which the caller ticks anyway (a worker ticks within 10 ms of its last
 * work, daemon/worker_shard.c). */
int64_t rf_alerts_next_due(const rf_alerts *a);

uint32_t rf_alerts_rule_count(const rf_alerts *a);
const char *rf_alerts_rule_name(const rf_alerts *a, uint32_t rule_id);
void rf_alerts_stats_read(const rf_alerts *a, rf_alerts_stats *out);

/* Checks that every rule's subject "alert.<name>" is routed somewhere (a rule
 * whose alerts would reach no sink is a configuration error). */
int rf_alerts_check_routes(const rf_alerts_config *cfg, rf_router *router, rf_err *err);

/* ---- configuration (YAML through core/config) ----
 *
 *   pipeline:
 *     alerts:
 *       - name: high_cpu
 *         type: threshold              # threshold | rate | absence
 *         match: {measurement: cpu, field: usage, tags: {host: "web*"}}
 *         op: ">"                      # > >= < <= == !=
 *         fire: 90
 *         resolve: 80                  # optional: hysteresis
 *         for: 30s                     # optional
 *         window: 10s                  # rate
 *         absent: 30s                  # absence
 *         scope: series                # absence: series | any (rule-wide: fires
 *                                      # after absent + 100 ms, "Rule-wide rules")
 *
 * Errors name the line: unknown operator or type, hysteresis on the wrong
 * side, a missing duration, and (when router is given) a rule whose subject
 * "alert.<name>" no route matches. Strings are owned by `out`. */
typedef struct rf_alerts_config_parsed {
    rf_alerts_config cfg;
    rf_alert_rule_config *rules;
} rf_alerts_config_parsed;

int rf_alerts_config_parse(const rf_cfg_node *pipeline, rf_router *router,
                           rf_alerts_config_parsed *out, rf_err *err);
void rf_alerts_config_release(rf_alerts_config_parsed *p);

/* ">", ">=", "<", "<=", "==", "!="; -1 when unknown. */
int rf_cmp_op_parse(const char *s);
const char *rf_cmp_op_name(enum rf_cmp_op op);

#endif
