/* PromQL: parse an expression and evaluate it, as an instant or a range
 * query, over any source of float series. The semantics are Prometheus
 * 2.42's (the version Debian ships, which tests/promql compares against):
 *
 *   - Instant vector selectors take, per series, the latest sample at or
 *     before the evaluation time (minus offset, or at @) and not older than
 *     the 5-minute lookback; the sample is reported at the evaluation time.
 *   - Range selectors `[d]` take the samples in [t - d, t] (both ends
 *     inclusive, as in 2.x).
 *   - rate/increase/delta extrapolate as Prometheus does (to the window's
 *     ends when the first/last sample is within 1.1 average intervals of
 *     them, else by half an interval; counters not below zero), counting a
 *     drop in a counter as a reset.
 *   - Staleness: a series stops being seen 5 minutes after its last sample
 *     (the store keeps no staleness marker; remote_write's are dropped at
 *     ingest, see ingest/http/http.h).
 *   - Regular expressions (=~, !~, label_replace) are fully anchored, as
 *     RE2 matchers are in Prometheus; they are compiled by PCRE2, whose
 *     syntax is a superset of RE2's for everything but a few escapes.
 *   - Anything the engine does not implement (subqueries, native histograms,
 *     functions outside the list in functions.c) is refused at parse time
 *     with a bad_data error that names it: never a wrong answer.
 *
 * Shape
 *   rf_promql_parse  text -> expression tree (a Pratt parser, lex.c/parse.c)
 *   rf_promql_eval   tree + source + [start, end, step] -> rf_promql_value
 *   rf_promql_write_json  value -> the "data" object of Prometheus' HTTP API
 *
 * The evaluator asks the source once per selector for every series it
 * matches over the whole time span the query needs, then steps through time
 * over those samples (binary searches, no copy). Everything one query
 * allocates is freed with its result or on error; nothing is shared between
 * queries, so any thread may run one, and several threads may run queries
 * over sources that allow it. */
#ifndef RF_STORAGE_PROMQL_H
#define RF_STORAGE_PROMQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error/error.h"

/* Prometheus' error types (the API's "errorType"). */
enum rf_promql_error {
    RF_PROMQL_OK = 0,
    RF_PROMQL_BAD_DATA,  /* parse errors, unsupported features, bad parameters: 400 */
    RF_PROMQL_EXECUTION, /* evaluation failed (many-to-many matching, ...): 422 */
    RF_PROMQL_TIMEOUT,   /* 503 */
    RF_PROMQL_INTERNAL,  /* the source failed (I/O, memory): 500 */
};
const char *rf_promql_error_name(enum rf_promql_error e); /* "bad_data", ... */
int rf_promql_error_status(enum rf_promql_error e);       /* HTTP status */

/* ---- labels and matchers ---- */

/* A label set: "name\0value\0" pairs sorted by name, no duplicate names,
 * no empty value. */
typedef struct rf_promql_labels {
    const char *buf;
    uint32_t len;
} rf_promql_labels;

/* The value of `name`, or NULL when absent. */
const char *rf_promql_labels_get(rf_promql_labels l, const char *name);

enum rf_promql_match {
    RF_PROMQL_EQ = 0,
    RF_PROMQL_NE,
    RF_PROMQL_RE,
    RF_PROMQL_NRE
};

typedef struct rf_promql_matcher {
    const char *name;
    const char *value;
    enum rf_promql_match op;
    void *re; /* compiled pattern (pcre2_code) for RE/NRE */
} rf_promql_matcher;

/* Fills *m (name and value copied; a regex compiled, anchored). Free with
 * rf_promql_matchers_free(m, 1) for a malloc'd one, or
 * rf_promql_matcher_release. Returns 0, -EINVAL (bad regex) or -ENOMEM. */
int rf_promql_matcher_init(rf_promql_matcher *m, const char *name, enum rf_promql_match op,
                           const char *value, rf_err *err);
void rf_promql_matcher_release(rf_promql_matcher *m);

/* Whether a label set passes one matcher (an absent label is ""). */
bool rf_promql_matcher_match(const rf_promql_matcher *m, rf_promql_labels l);
/* A matcher list from a selector text ({job="a",x=~"b.*"} or name{...});
 * for /api/v1/series' match[]. Free with rf_promql_matchers_free. */
int rf_promql_parse_matchers(const char *text, rf_promql_matcher **out, size_t *n, rf_err *err);
void rf_promql_matchers_free(rf_promql_matcher *m, size_t n);

/* ---- the series source ---- */

typedef struct rf_promql_series {
    rf_promql_labels labels;
    const int64_t *t; /* ms since the epoch, ascending */
    const double *v;
    size_t n;
} rf_promql_series;

/* What the evaluator reads. `select` returns every series that passes all
 * matchers, with its samples in [mint, maxt] (ms, inclusive), in an array
 * the source keeps valid until `release` (called once per select, with the
 * same pointer). Returns 0 or a negative errno with *err filled. Series
 * without samples in the window may be returned or not. */
typedef struct rf_promql_source {
    int (*select)(void *user, const rf_promql_matcher *m, size_t n_m, int64_t mint, int64_t maxt,
                  rf_promql_series **out, size_t *n_out, rf_err *err);
    void (*release)(void *user, rf_promql_series *s, size_t n);
    void *user;
} rf_promql_source;

/* ---- naming ---- */

/* The name under which PromQL (and every reader speaking Prometheus) sees
 * the field `field` of `measurement`, as VictoriaMetrics maps InfluxDB data:
 *   cpu + usage_user   -> cpu_usage_user
 *   cpu + value        -> cpu            (so Prometheus-named metrics, which
 *                                          remote_write stores as field
 *                                          "value", keep their name)
 *   lat + le_0.5       -> lat_bucket, and *le = "0.5" (the le label: the
 *                                          fields OTLP histograms are stored
 *                                          as, see ingest/http/http.h)
 * Tags become labels as they are; a label with an empty value is no label.
 * Names are not rewritten to Prometheus' character set: a measurement
 * "disk.io" is the metric "disk.io_reads", selectable with
 * {__name__="disk.io_reads"}. Returns the name's length, or -ENOSPC when
 * it does not fit in cap - 1 bytes. */
int rf_promql_metric_name(const char *measurement, const char *field, char *name, size_t cap,
                          const char **le);

/* ---- parse ---- */

typedef struct rf_promql_expr rf_promql_expr;

/* Parses text. Returns 0, or -EINVAL with *err saying where and why (the
 * message Prometheus' bad_data carries). */
int rf_promql_parse(const char *text, rf_promql_expr **out, rf_err *err);
void rf_promql_expr_free(rf_promql_expr *e);

enum rf_promql_type {
    RF_PROMQL_SCALAR = 1,
    RF_PROMQL_VECTOR,
    RF_PROMQL_MATRIX,
    RF_PROMQL_STRING
};
/* The type the expression yields at an instant. */
enum rf_promql_type rf_promql_expr_type(const rf_promql_expr *e);

/* Calls fn once for each vector selector of e (a range selector's too) with
 * its matchers: every series the evaluation can read passes one of these
 * lists, so a source may prepare just those (storage/index's head filter).
 * Returns 0, or the first negative value fn returned (the walk stops). */
typedef int (*rf_promql_selector_fn)(void *ctx, const rf_promql_matcher *m, size_t n);
int rf_promql_expr_selectors(const rf_promql_expr *e, rf_promql_selector_fn fn, void *ctx);

/* ---- evaluate ---- */

typedef struct rf_promql_limits {
    uint64_t max_samples; /* samples held at once by one step; 0: 50,000,000 */
    uint64_t max_series;  /* series read by the whole query; 0: no limit */
    int64_t lookback_ms;  /* 0: 300,000 */
    int64_t deadline_ns;  /* CLOCK_MONOTONIC; 0: none */
} rf_promql_limits;

typedef struct rf_promql_point {
    int64_t t;
    double v;
} rf_promql_point;

typedef struct rf_promql_out_series {
    rf_promql_labels labels;
    rf_promql_point *points; /* a vector: one point at the evaluation time */
    size_t n;
    size_t cap; /* private */
} rf_promql_out_series;

typedef struct rf_promql_value {
    enum rf_promql_type type; /* a range query's result is always MATRIX */
    rf_promql_point scalar;   /* SCALAR */
    char *string;             /* STRING */
    rf_promql_out_series *series;
    size_t n_series;
    uint64_t samples;       /* samples read from the source */
    struct pq_arena *arena; /* owns labels and points */
} rf_promql_value;

/* Instant query when step_ms is 0 (start_ms == end_ms); else a range query
 * over [start_ms, end_ms] every step_ms (Prometheus refuses more than 11,000
 * steps; so does this). Returns 0 and *out (free with rf_promql_value_free),
 * or a negative errno with *kind and *err. */
int rf_promql_eval(const rf_promql_expr *e, const rf_promql_source *src, int64_t start_ms,
                   int64_t end_ms, int64_t step_ms, const rf_promql_limits *limits,
                   rf_promql_value **out, enum rf_promql_error *kind, rf_err *err);
void rf_promql_value_free(rf_promql_value *v);

/* Writes {"resultType":"...","result":[...]} as Prometheus' API does
 * (times in seconds with up to 3 decimals, values as strings; a range
 * query's series sorted by labels). Returns 0 or -EIO. */
int rf_promql_write_json(FILE *f, const rf_promql_value *v);
/* A JSON string (quoted, escaped), and a label set as a JSON object. */
void rf_promql_write_json_string(FILE *f, const char *s);
void rf_promql_write_json_labels(FILE *f, rf_promql_labels l);
/* A double as Prometheus writes it: shortest round-trip, "NaN", "+Inf", "-Inf". */
void rf_promql_format_value(double v, char *buf, size_t len);

/* Parses a duration ("5m", "1h30m", "250ms") into ms; -EINVAL when not one. */
int rf_promql_parse_duration(const char *text, size_t len, int64_t *ms);

#endif
