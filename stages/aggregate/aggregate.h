/* rf_aggregator: tumbling-window aggregation per series or per tag group, on
 * the worker that owns the series. Design notes: stages/aggregate/README.md.
 *
 * Contract
 *   - Owned by one worker thread; no locking. Reads the worker's series table
 *     (which the worker fills from RF_KIND_SERIES_DEF events before it calls
 *     rf_aggregator_process with the data events that follow them).
 *   - Input: any events. Data events (kind < RF_KIND_AGGREGATE) of a series
 *     some rule matches are aggregated; the rest are ignored (counted). The
 *     aggregator never passes its input on: the worker does that. Output, via
 *     the emitter, in batches: RF_KIND_AGGREGATE events and, before the first
 *     value of each aggregate series, its RF_KIND_SERIES_DEF.
 *   - Rules: a rule names a measurement (exact canonical text, or "*"), a field
 *     (exact or "*"), a window length, functions and group-by tag keys. A series
 *     matches a rule when both names match; it is resolved once per (series,
 *     rule), at its first event. A series may match several rules.
 *   - Windows: tumbling, aligned to multiples of window_ns since the Unix epoch
 *     in event time: [k*w, (k+1)*w). An event exactly at a boundary belongs to
 *     the window that starts there.
 *   - Watermark (per shard): wm = the largest event time seen; a window closes
 *     (is emitted) once wm - allowed_lateness >= its end, or, at
 *     rf_aggregator_tick (idle shard), once wm + idle - allowed_lateness -
 *     idle_grace >= its end, where idle is the monotonic time since the first
 *     tick that saw wm where it is. No wall clock is read: a wall-clock step
 *     closes nothing early, and data whose event times lag (or lead) the wall
 *     clock closes as it would in real time. Closed windows are never
 *     reopened or re-emitted.
 *   - Lateness: an event whose window has ended (end <= wm) but not closed
 *     (end > wm - allowed_lateness) is applied to its own window (counted
 *     late_applied). An event whose window has closed is "beyond lateness":
 *     dropped (late_dropped) or applied to the earliest open window of its
 *     state (late_to_current; the emitted aggregate then carries RF_EVF_LATE),
 *     per late_policy.
 *   - Output events: kind RF_KIND_AGGREGATE, value_type F64, value = the
 *     function's result, event_time_ns = window START, recv_time_ns = monotonic
 *     time of emission, aux = window_ns, priority standard, sample_rate 1.
 *     series_id = rf_series_id_of_key(text) of the aggregate series' canonical
 *     text: the input key with ":<fn>" appended to the field
 *         cpu,host=a,region=eu usage_idle:avg
 *     or, for a group, the measurement, the group-by tags the series has (in
 *     key order) and the field:  cpu,region=eu usage_idle:p99
 *     Function suffixes: count sum min max avg first last stddev rate
 *     increase and p<100q> (p50, p90, p99, p99.9).
 *   - Group-by rules run on two levels (README.md, "Group-by"): each worker
 *     sends its share of a group's window, when the window closes there, as
 *     one partial to the group's owner, rf_event_owner(group id, shards) (the
 *     group id is the hash of the group text without ":fn"), and reports to
 *     every shard how far it has closed windows; the owner merges and emits
 *     the one result per group and window once every busy worker has passed
 *     it, or after a bounded wait (allowed_lateness + idle_grace + 300 ms).
 *     The result equals one worker's (README.md, "Exactness"); first/last of
 *     a group are by event time. Rules without group-by stay local.
 *   - Memory: the states of expired series are reused
 *     (rf_aggregator_forget_series): a series' own states at once, a group's
 *     when its last series expires.
 *   - Memory: everything is allocated by rf_aggregator_new; the per-event path
 *     allocates nothing. Group-by rules allocate per group and window: the
 *     partial's block on the worker that closes it, and on the owner the
 *     merged window's entry (its text, a sketch or HLL when partials bring
 *     one; tables grown by doubling). Emitting the first window of a new aggregate series
 *     allocates its rf_series_key (whose ownership moves with the SERIES_DEF
 *     event: the consumer frees it). State: rf_aggregator_state_bytes() per
 *     (rule, series or group) plus 4 bytes per (rule, series) for the binding.
 *     Quantile sketches and set HLLs live in pools of max_sketches / max_sets
 *     blocks taken by a window when it opens (only for rules with quantiles /
 *     series of kind SET); an exhausted pool is counted and those outputs are
 *     left out for that window.
 */
#ifndef RF_STAGES_AGGREGATE_H
#define RF_STAGES_AGGREGATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/event/event.h"
#include "stages/series/series_table.h"
#include "stages/stage/stage.h"

enum rf_agg_fn {
    RF_AGG_COUNT = 0, /* events, scaled by 1/sample_rate; distinct members for sets */
    RF_AGG_SUM,       /* sum of values; for StatsD counters sum of value/sample_rate */
    RF_AGG_MIN,
    RF_AGG_MAX,
    RF_AGG_AVG,   /* arithmetic mean of the values (unweighted), Welford */
    RF_AGG_FIRST, /* first / last by arrival order within the window */
    RF_AGG_LAST,
    RF_AGG_STDDEV,   /* population standard deviation, Welford */
    RF_AGG_RATE,     /* increase / window seconds */
    RF_AGG_INCREASE, /* counters: sum(value/rate); others: cumulative increase with resets */
    RF_AGG_QUANTILE, /* DDSketch, relative error sketch_alpha, at the nearest rank
                       * rf_quantile_rank (stages/sketch/sketch.h) */
    RF_AGG_FN__COUNT
};

#define RF_AGG_MAX_FUNCS 16u
#define RF_AGG_MAX_GROUP_BY 8u
#define RF_AGG_NAME_MAX 128u
#define RF_AGG_MAX_RULES 64u

typedef struct rf_agg_func {
    uint8_t fn; /* enum rf_agg_fn */
    double q;   /* RF_AGG_QUANTILE: in [0, 1] */
} rf_agg_func;

typedef struct rf_agg_rule {
    char measurement[RF_AGG_NAME_MAX]; /* canonical (escaped) text, or "*" */
    char field[RF_AGG_NAME_MAX];       /* canonical text, or "*" */
    int64_t window_ns;                 /* > 0 */
    uint32_t n_funcs;
    rf_agg_func funcs[RF_AGG_MAX_FUNCS];
    uint32_t n_group_by;                                 /* 0: one state per series */
    char group_by[RF_AGG_MAX_GROUP_BY][RF_AGG_NAME_MAX]; /* tag keys, canonical text */
    /* Between hosts (README.md, "Between hosts"): a grouped rule's merged
     * windows leave as partials through this sink ("" = none; a sink name
     * of the pipeline, checked there) instead of as aggregates, or beside
     * them with partials_local. Not part of rf_agg_rule_sig: the receiving
     * host's rule (without them) has the same signature. */
    char partials_to[RF_AGG_NAME_MAX];
    bool partials_local;
} rf_agg_rule;

enum rf_agg_late_policy {
    RF_AGG_LATE_DROP = 0,    /* beyond lateness: count and drop */
    RF_AGG_LATE_CURRENT = 1, /* beyond lateness: apply to the earliest open window */
};

typedef struct rf_agg_config {
    rf_agg_rule *rules;          /* owned by whoever built the config (see rf_agg_config_release) */
    uint32_t n_rules;            /* 1..RF_AGG_MAX_RULES */
    uint8_t late_policy;         /* enum rf_agg_late_policy */
    int64_t allowed_lateness_ns; /* >= 0 */
    int64_t idle_grace_ns;       /* >= 0: an idle shard's tick waits this much beyond
                                  * lateness (monotonic) before it closes a window */
    uint32_t max_states;         /* (rule, series|group) states per shard; 0 = series table max */
    uint32_t max_pending;        /* windows held past their series' next window; 0 = 65536 */
    uint32_t max_sketches;       /* quantile sketch pool; 0 = 4096 */
    uint32_t max_sets;           /* HLL pool; 0 = 4096 */
    double sketch_alpha;         /* 0 = RF_DDSKETCH_DEFAULT_ALPHA */
    uint32_t sketch_bins;        /* per sign; 0 = RF_DDSKETCH_DEFAULT_BINS */
    /* Between hosts. Edge: its id in the partials it sends (0..63, unique
     * per edge). Aggregator: a window merged from remote partials is
     * emitted once `remote_edges` distinct edges sent theirs (0: no count),
     * or remote_wait after its first one arrived (0: 10 s). */
    uint32_t edge_id;
    uint32_t remote_edges;
    int64_t remote_wait_ns;
} rf_agg_config;

/* Defaults for everything but the rules. */
void rf_agg_config_defaults(rf_agg_config *cfg);
/* Frees rules allocated by rf_aggregate_config_parse and zeroes n_rules. */
void rf_agg_config_release(rf_agg_config *cfg);
/* Validates a config (what rf_aggregator_new would refuse), naming the rule. */
int rf_agg_config_check(const rf_agg_config *cfg, rf_err *err);

/* Names: "count", "sum", ..., "avg" (alias "mean"), "p50", "p99.9", "p999". */
int rf_agg_func_parse(const char *name, rf_agg_func *out);
/* The canonical suffix of a function ("avg", "p99.9") into buf (>= 16 bytes). */
const char *rf_agg_func_name(const rf_agg_func *f, char *buf, unsigned long size);
/* The accepted names, for error messages. */
#define RF_AGG_FUNC_NAMES                                                                          \
    "count, sum, min, max, avg (mean), first, last, stddev, rate, increase, pNN (p50, p90, p99, "  \
    "p99.9, p999)"

typedef struct rf_aggregator rf_aggregator;

typedef struct rf_agg_stats {
    uint64_t events;          /* data events seen */
    uint64_t ignored;         /* control/aggregate/alert events */
    uint64_t unknown_series;  /* series not in the table: dropped */
    uint64_t unmatched;       /* events of series no rule matches */
    uint64_t invalid_value;   /* NaN/inf values: dropped */
    uint64_t applied;         /* (event, rule) applications */
    uint64_t late_applied;    /* within lateness, applied to their own window */
    uint64_t late_dropped;    /* beyond lateness, dropped */
    uint64_t late_to_current; /* beyond lateness, applied to the earliest open window */
    uint64_t windows_emitted;
    uint64_t early_closes;      /* windows emitted before their close (pending full) */
    uint64_t aggregates;        /* aggregate events emitted */
    uint64_t series_defs;       /* aggregate series announced */
    uint64_t states;            /* states in use */
    uint64_t states_full;       /* (event, rule) refused: max_states reached */
    uint64_t sketch_pool_empty; /* windows without quantiles: pool exhausted */
    uint64_t set_pool_empty;    /* windows without distinct counts: pool exhausted */
    uint64_t key_alloc_failed;  /* aggregate series not announced: no memory */
    int64_t watermark_ns;       /* largest event time seen */
    /* Two-level aggregation (grouped rules; README.md). windows_emitted counts
     * results (ungrouped windows here, merged group windows on their owner);
     * windows_closed counts local closes (emitted or sent as a partial). */
    uint64_t windows_closed;
    uint64_t partials_sent;     /* this worker's group windows, to their owners */
    uint64_t partials_received; /* merged (or late) here as the owner */
    uint64_t partials_late;     /* arrived after their window was emitted (late_events
                                    * decides: dropped, or merged into the earliest open one) */
    uint64_t partials_no_rule;  /* dropped: no rule here has their signature (a reload) */
    uint64_t partials_bad;      /* dropped: malformed, or a sketch of another alpha */
    uint64_t
        partial_alloc_failed; /* partials not sent / not merged: no memory (or text > 64 KiB) */
    uint64_t reports_sent, reports_received; /* closed-through reports */
    uint64_t owner_windows;                  /* group windows being merged here now */
    uint64_t owner_forced;                   /* emitted by the bounded wait, not every report in */
    uint64_t owner_full;                     /* partials dropped: max_states windows being merged */
    /* Between hosts (README.md, "Between hosts"). */
    uint64_t remote_out;        /* merged windows handed out as partials (partials_to) */
    uint64_t remote_out_failed; /* not handed out: no memory, or the sink refused the line */
    uint64_t remote_in;         /* remote partials merged */
    uint64_t remote_late;       /* remote partials whose window was already emitted */
    uint64_t remote_bad;        /* remote partials malformed, of no rule here, or of another
                                 * sketch alpha */
    uint64_t remote_complete;   /* remote windows emitted with remote_edges edges in */
    uint64_t remote_timed_out;  /* remote windows emitted by remote_wait */
} rf_agg_stats;

/* Copies cfg (and its rules). `series` stays owned by the caller and must
 * outlive the aggregator. Returns NULL with err filled on bad config/no memory. */
rf_aggregator *rf_aggregator_new(const rf_agg_config *cfg, const rf_series_table *series,
                                 rf_emitter out, rf_err *err);
void rf_aggregator_free(rf_aggregator *a);

/* Aggregates n events. Emits whatever windows close on the way. */
void rf_aggregator_process(rf_aggregator *a, const rf_event *events, uint32_t n);
/* Closes windows of an idle shard (end <= wm + idle - lateness - idle_grace,
 * idle = now_mono - the first tick that saw the current watermark) and
 * advances an incremental sweep. now_mono_ns is rf_clock_mono_ns() (tests
 * inject it). Call about every 100 ms: idle is measured from a tick, so a
 * close comes up to one interval late, never early. */
void rf_aggregator_tick(rf_aggregator *a, int64_t now_mono_ns);
/* Between shards (two-level aggregation of grouped rules, README.md):
 * this aggregator is shard `index` of `shards` and sends its peer messages
 * (partials, closed-through reports; RF_PEER_STAGE_AGGREGATE) with `send`.
 * Without it (one shard, no transport) it hands them to itself at once.
 * Control thread, before the first event. Returns 0, -EINVAL (index not
 * below shards) or -ENOMEM (the aggregator is then unchanged). */
int rf_aggregator_set_peers(rf_aggregator *a, uint32_t index, uint32_t shards, rf_peer_send_fn send,
                            void *ctx);
/* A peer message for this stage (the caller frees an owned aux after the
 * call; nothing of it is kept). now_mono_ns starts the bounded wait of a
 * window's first partial. May emit (merged windows now complete). */
void rf_aggregator_receive(rf_aggregator *a, const rf_event *ev, int64_t now_mono_ns);
/* Stop, step 1: every local window closes now (ungrouped ones emitted,
 * grouped ones sent as partials) and every owner is told this worker is
 * done (the final report). */
void rf_aggregator_close(rf_aggregator *a);
/* rf_aggregator_close, then every merged window emitted without waiting for
 * reports (stop, step 3; or a lone aggregator's end). Afterwards the
 * aggregator starts afresh. */
void rf_aggregator_flush(rf_aggregator *a);
/* Reload: old's local windows go out as partials (to the owners' current
 * aggregators), and its merged windows move to `next` for the rules `next`
 * has (same rf_agg_rule_sig), with the workers' reports; the others are
 * emitted now. next may be NULL (aggregation removed). */
void rf_aggregator_handover(rf_aggregator *old, rf_aggregator *next);
/* What partials name a rule by: a hash of its measurement, field, window,
 * functions and group-by keys (equal on every worker with the same rule). */
uint64_t rf_agg_rule_sig(const rf_agg_rule *r);

/* Between hosts (README.md, "Between hosts").
 *
 * Edge: for rules with partials_to, each merged group window (the one
 * result one engine would emit) is handed to `out` as an encoded partial
 * block (the wire form of README.md, "Partials on the wire"; sender = the
 * edge_id) with the rule index and group id, on the worker thread, instead
 * of (partials_local: beside) its aggregates. out returns whether it took
 * the block (it copies it; false is counted, remote_out_failed). */
typedef bool (*rf_agg_partial_out_fn)(void *ctx, uint32_t rule, uint64_t group_id, int64_t start,
                                      const uint8_t *block, size_t len);
void rf_aggregator_set_partial_out(rf_aggregator *a, rf_agg_partial_out_fn out, void *ctx);
/* Aggregator: merges one remote partial block (copied; the caller keeps
 * it). Windows merged from remote partials complete by their own rule
 * (remote_edges, remote_wait), not by this host's workers' reports; one
 * whose window was already emitted is late (late_events decides). Returns
 * 0, or -EINVAL for a block that is malformed or names no rule here
 * (counted remote_bad). May emit. */
int rf_aggregator_receive_remote(rf_aggregator *a, const uint8_t *block, size_t len,
                                 int64_t now_mono_ns);

/* The line a partial travels in over a line-protocol sink (NATS):
 *   rf_partial,group=<16 hex digits> p=<block in base64, no padding> <window start ns>\n
 * The series key text "rf_partial,group=<hex> p" depends on the group only,
 * so a sink's {shard} puts every edge's partials of one group on one shard.
 * Returns the line's length (newline included), or 0 when cap is short. */
size_t rf_agg_partial_line(uint64_t group_id, int64_t start, const uint8_t *block, size_t len,
                           char *out, size_t cap);
/* The bytes a line of a block of len bytes needs. */
size_t rf_agg_partial_line_size(size_t len);
/* Parses one such line (len bytes, with or without the newline) into
 * block (cap bytes). Returns the block's length, or -EINVAL (not a partial
 * line, bad base64) / -ENOSPC. */
long rf_agg_partial_line_parse(const char *line, size_t len, uint8_t *block, size_t cap);

/* Series lifecycle (stages/pipeline/pipeline.h): the series in `slot`
 * (key: its key, still valid) is being retired. Its ungrouped windows are
 * emitted and their states freed for reuse; its bindings reset, so the
 * slot's next series starts unbound. A group state stays while other
 * series feed it (if this series was its source of key text, its windows go
 * to the owner now) and is freed with its last series, its windows sent.
 * An aggregate series this aggregator announced as a group's owner is
 * announced again with its next result. */
void rf_aggregator_forget_series(rf_aggregator *a, int32_t slot, const rf_series_key *key);

void rf_aggregator_stats_read(const rf_aggregator *a, rf_agg_stats *out);
/* Bytes of one state (compile-time constant, <= 128). */
uint32_t rf_aggregator_state_bytes(void);
/* Bytes of aggregation state in use: states, bindings and carries for the
 * series seen so far, sketch/HLL blocks in use (reserved-but-untouched
 * capacity is excluded: it is never paged in). */
uint64_t rf_aggregator_memory_in_use(const rf_aggregator *a);
/* The most memory an aggregator built from cfg for a series table of
 * max_series can hold: everything rf_aggregator_new allocates (states,
 * bindings, group index and carries at their full size, the pending-window
 * table, both block pools touched to their last block), with the allocator's
 * rounding (rf_mem_alloc_bound). Aggregate series keys are the series
 * table's. */
uint64_t rf_aggregator_memory_bound(const rf_agg_config *cfg, uint32_t max_series);

/* Parses the aggregation part of the `pipeline:` section:
 *
 *   pipeline:
 *     aggregation:                 # optional settings, defaults shown
 *       allowed_lateness: 0s
 *       late_events: drop          # drop | current
 *       idle_grace: 1s
 *       max_states: 0              # 0 = the series table's limit
 *       max_pending: 65536
 *       max_sketches: 4096
 *       max_sets: 4096
 *       sketch_alpha: 0.01
 *       sketch_bins: 512
 *     aggregations:
 *       - measurement: cpu         # or "*"
 *         field: usage_idle        # or "*" (default "*")
 *         window: 10s
 *         functions: [avg, max, p99]
 *         group_by: [region]       # optional
 *         partials: {to: bus, local: false}   # optional, grouped rules: between hosts
 *
 * and, in `aggregation:`, edge_id: 0 (the edge's id in its partials, 0..63),
 * remote_edges: 0 and remote_wait: 10s (the aggregating host's completion
 * rule for remote windows; README.md, "Between hosts").
 *
 * Fills *out (rules allocated: release with rf_agg_config_release). Errors
 * name the file, line and key; an unknown function lists RF_AGG_FUNC_NAMES. */
int rf_aggregate_config_parse(const rf_cfg_node *pipeline, rf_agg_config *out, rf_err *err);

#endif
