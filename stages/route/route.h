/* Routing: which sinks an event goes to, and whether it takes the critical path.
 *
 * Subjects
 *   Every event has a subject in a NATS-style hierarchy: dot-separated tokens.
 *   Subjects are derived, never carried: the router builds one from the series
 *   key text and the event kind with these documented mappings:
 *
 *     data events (every kind below RF_KIND_AGGREGATE)
 *         data_template, default "telemetry.{measurement}.{field}"
 *     RF_KIND_AGGREGATE
 *         aggregate_template, default "aggregate.{measurement}.{field}"; an
 *         aggregate event's series is the series its aggregation stage defined
 *         for it, so a field such as "usage.mean" becomes "...usage_mean" only
 *         if that stage names it so (the function is part of the key, not aux)
 *     RF_KIND_ALERT       "alert.<rule name>"       (rule id = low 32 bits of aux)
 *     RF_KIND_CORRELATED  "correlated.<pattern name>", "correlated.id" for
 *                         groups formed by correlation id (pattern id = high 32
 *                         bits of aux, 0 for id groups)
 *     health              "health.<component>" through rf_router_resolve_subject
 *
 *   Templates are literal text with placeholders {measurement}, {field} and
 *   {<tag key>} (any other name is a tag: "telemetry.{host}.{measurement}.{field}").
 *   Substituted values are unescaped (line protocol's backslashes removed) and
 *   every byte that cannot appear in a subject token ('.', ' ', '*', '>', tab)
 *   becomes '_'; a tag the series does not carry becomes "_". A subject is at
 *   most RF_SUBJECT_MAX - 1 bytes; longer subjects are truncated at a token
 *   boundary and counted (subject_truncated).
 *
 * Patterns (route subscriptions)
 *   Tokens are non-empty; "*" matches exactly one token; ">" matches one or
 *   more trailing tokens and is only allowed as the last token. A wildcard
 *   character inside a longer token ("a*", "b>") is an error, as are empty
 *   tokens ("a..b", ".a", "a."), whitespace and patterns longer than
 *   RF_SUBJECT_MAX - 1. rf_subject_pattern_check says which.
 *
 * Route sets and the per-series cache
 *   A route is (pattern, sinks, class). An event may match several routes: the
 *   union of their sinks is a route set, interned once and numbered; the
 *   set's id is what rf_event.route_hint carries. Within a set, sinks reached
 *   by at least one critical route come first (sinks[0..n_critical)) and the
 *   set has RF_ROUTESET_CRITICAL: the worker sends the event to those sinks at
 *   once, bypassing batching; the rest go through batching.
 *   Set 0 is always the empty set (unrouted; counted).
 *
 *   Matching is paid once per series and kind class, not per event: the first
 *   time a slot is routed (or when rf_router_define is called on SERIES_DEF),
 *   its subject is built and matched and the set id is stored in a flat array
 *   indexed by series-table slot; afterwards routing is an array load. Alert
 *   and correlated subjects are cached per rule / pattern id the same way.
 *   rf_router_reconfigure swaps the route table and invalidates every cache
 *   (a memset); slots re-resolve lazily on their next event.
 *
 * Contract
 *   - One router per worker, used by that worker's thread only (no locks).
 *   - Configuration strings are copied; the config may be freed after new().
 *   - Allocation happens in new/reconfigure/bind_names and when a new distinct
 *     route set is interned (bounded by RF_ROUTER_MAX_SETS); never on a cache hit.
 */
#ifndef RF_STAGES_ROUTE_H
#define RF_STAGES_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/event/event.h"

#define RF_SUBJECT_MAX 256u
#define RF_SUBJECT_MAX_TOKENS 32u
#define RF_ROUTER_MAX_ROUTES 256u
#define RF_ROUTER_MAX_SINKS 256u
#define RF_ROUTER_MAX_SETS 65535u
#define RF_ROUTE_SET_NONE 0u /* the empty set: no route matched */

enum rf_route_class {
    RF_ROUTE_STANDARD = 0, /* batched */
    RF_ROUTE_CRITICAL = 1, /* bypasses batching */
};

/* Kind classes that have their own subject mapping. */
enum rf_subject_class {
    RF_SUBJ_DATA = 0,
    RF_SUBJ_AGGREGATE = 1,
    RF_SUBJ_ALERT = 2,
    RF_SUBJ_CORRELATED = 3,
    RF_SUBJ__COUNT
};

enum {
    RF_ROUTESET_CRITICAL = 1u << 0, /* at least one sink is reached by a critical route */
};

typedef struct rf_route_config {
    const char *name;         /* for error messages and stats; may be NULL */
    const char *pattern;      /* subject pattern with * and > */
    const char *const *sinks; /* sink names; each must be in rf_router_config.sink_names */
    uint32_t n_sinks;
    enum rf_route_class cls;
} rf_route_config;

typedef struct rf_router_config {
    const rf_route_config *routes;
    uint32_t n_routes;
    /* The pipeline's sinks by id: sink id = index in this array. */
    const char *const *sink_names;
    uint32_t n_sink_names;
    const char *data_template;      /* NULL: "telemetry.{measurement}.{field}" */
    const char *aggregate_template; /* NULL: "aggregate.{measurement}.{field}" */
} rf_router_config;

typedef struct rf_route_set {
    uint32_t id;
    uint16_t flags; /* RF_ROUTESET_* */
    uint16_t n_sinks;
    uint16_t n_critical;   /* sinks[0..n_critical) are reached by a critical route */
    const uint16_t *sinks; /* sink ids */
} rf_route_set;

typedef struct rf_router_stats {
    uint32_t routes;
    uint32_t sets;     /* interned route sets, including the empty one */
    uint64_t resolved; /* cache fills (subject built and matched) */
    uint64_t routed;   /* events given a non-empty set */
    uint64_t unrouted; /* events that matched no route */
    uint64_t critical; /* events whose set has RF_ROUTESET_CRITICAL */
    uint64_t no_key;   /* events of a slot with no key known (unrouted) */
    uint64_t subject_truncated;
    uint64_t sets_exhausted; /* resolutions refused because RF_ROUTER_MAX_SETS was reached */
    uint64_t reconfigurations;
} rf_router_stats;

typedef struct rf_router rf_router;

/* Where the router reads a slot's key when it resolves lazily (the worker's
 * series table). Returns NULL when the slot is not defined. */
typedef const rf_series_key *(*rf_router_key_fn)(void *ctx, int32_t slot);

/* ---- subjects and patterns (pure functions) ---- */

/* 0 when `pattern` is a valid subscription pattern; otherwise -EINVAL and err
 * says what is wrong and where ("token 2 'a*': a wildcard must be a whole token"). */
int rf_subject_pattern_check(const char *pattern, rf_err *err);

/* Whether a valid pattern matches a literal subject (no wildcards in subject).
 * For tests and the control path; the router uses a compiled form. */
bool rf_subject_match(const char *pattern, const char *subject);

/* Builds the subject of `key` with `template` into buf (RF_SUBJECT_MAX bytes).
 * Returns its length, or -EINVAL for a malformed template (err set). */
int rf_subject_build(const char *tmpl, const rf_series_key *key, char *buf, rf_err *err);

/* ---- the router ---- */

/* max_slots: the series table's capacity (size of the per-slot caches). */
int rf_router_new(const rf_router_config *cfg, uint32_t max_slots, rf_router **out, rf_err *err);
/* The most memory such a router can come to hold: its two per-slot caches,
 * the routes, and every route set it can intern (at most 2^routes, and
 * RF_ROUTER_MAX_SETS) with their index (rf_mem_alloc_bound rounding). */
uint64_t rf_router_memory_bound(const rf_router_config *cfg, uint32_t max_slots);
void rf_router_free(rf_router *r);

/* Validates and swaps in a new configuration; on error the old one stays.
 * Every cache is invalidated. Call on the worker that owns the router. */
int rf_router_reconfigure(rf_router *r, const rf_router_config *cfg, rf_err *err);

void rf_router_set_key_source(rf_router *r, rf_router_key_fn fn, void *ctx);

/* Names for RF_SUBJ_ALERT (rule names by rule id) or RF_SUBJ_CORRELATED
 * (pattern names by pattern id; id 0 is the id-based group, "id"). Names are
 * copied; their subjects are resolved now and after each reconfigure. */
int rf_router_bind_names(rf_router *r, enum rf_subject_class cls, const char *const *names,
                         uint32_t n, rf_err *err);

/* Resolves the series in `slot` now (call when its SERIES_DEF is applied so
 * the first event pays nothing). */
void rf_router_define(rf_router *r, int32_t slot, const rf_series_key *key);

/* Route set id for any literal subject (control path: health.<component>...).
 * Returns the set id, or a negative errno. */
int64_t rf_router_resolve_subject(rf_router *r, const char *subject);

/* The per-event path: sets route_hint of each event from its slot (slots[i]
 * is the series-table slot of events[i], -1 when unknown) and returns how many
 * events have a critical set. */
uint32_t rf_router_route_batch(rf_router *r, rf_event *events, const int32_t *slots, uint32_t n);

/* The set with id `id` (an event's route_hint); never NULL for a valid id. */
const rf_route_set *rf_router_set(const rf_router *r, uint32_t id);

void rf_router_stats_read(const rf_router *r, rf_router_stats *out);

/* ---- configuration (YAML through core/config) ----
 *
 *   pipeline:
 *     subjects: {data: "telemetry.{host}.{measurement}.{field}",
 *                aggregate: "aggregate.{measurement}.{field}"}
 *     routes:
 *       - name: pager                   # optional
 *         subject: "alert.>"            # pattern, validated
 *         sinks: [json, fwd]            # names from pipeline.sinks
 *         class: critical               # critical | standard (default)
 *
 * Errors name the line: a bad wildcard, an unknown sink ("unknown sink 'x'
 * (sinks: a, b)"), an empty sink list, a malformed template. Strings are owned
 * by `out`; free with rf_router_config_release. */
typedef struct rf_router_config_parsed {
    /* Ready for rf_router_new / rf_router_reconfigure; cfg.sink_names is the
     * caller's array (rf_sink_configs.names), which must outlive it. */
    rf_router_config cfg;
    rf_route_config *routes;
    char data_template[RF_SUBJECT_MAX];
    char aggregate_template[RF_SUBJECT_MAX];
} rf_router_config_parsed;

int rf_router_config_parse(const rf_cfg_node *pipeline, const char *const *sink_names,
                           uint32_t n_sinks, rf_router_config_parsed *out, rf_err *err);
void rf_router_config_release(rf_router_config_parsed *p);

#endif
