/* Queries over a store directory: select series by measurement, tag matchers
 * and field, over a time range; return raw points or aggregates per step and
 * group. Reads segment files directly (closed ones through their footer
 * index, open ones by scanning), so it works on a live store (seeing what the
 * I/O thread has written so far; rf_store_flush first for everything) or on a
 * copied data directory with no engine running.
 *
 * Semantics
 *   - Series key: "measurement,tag1=v1,tag2=v2 field" (core/event/event.h).
 *     Tag keys and values are compared after removing line-protocol escapes.
 *   - Matchers: = and != compare whole values; =~ and !~ are POSIX extended
 *     regular expressions anchored at both ends (the whole value must match).
 *     A series without the tag has the empty value for it (so tag!="x"
 *     matches it and tag="" selects series without the tag).
 *   - Time range [start_ns, end_ns) on event time.
 *   - Raw: one set per series, points in time order (equal times keep write
 *     order). Values keep their type (float, int, uint, bool, string: its
 *     text, or its 64-bit hash for points stored before texts were).
 *   - Aggregated: points are grouped by (measurement, field, values of the
 *     group_by tags); every step_ns bucket (aligned to start_ns, or to the
 *     epoch when start is unbounded; one bucket for the whole range when
 *     step_ns is 0) yields a row with one column per aggregate. Only buckets
 *     with points appear. Values are read as doubles. Quantiles are exact:
 *     linear interpolation between the closest ranks (q in [0,1]). A string
 *     field selected by an aggregated query fails it (-EINVAL, naming the
 *     field): a string is no number, and its stored hash means nothing.
 *   - A block whose CRC fails is skipped and counted (blocks_corrupt), never
 *     returned; so is a block of a series whose key is in no segment.
 */
#ifndef RF_STORAGE_QUERY_H
#define RF_STORAGE_QUERY_H

#include <stdint.h>
#include <stdio.h>

#include "core/error/error.h"

enum rf_match_op {
    RF_MATCH_EQ = 0,  /* =  */
    RF_MATCH_NE = 1,  /* != */
    RF_MATCH_RE = 2,  /* =~ */
    RF_MATCH_NRE = 3, /* !~ */
};

typedef struct rf_query_matcher {
    const char *tag;
    enum rf_match_op op;
    const char *value;
} rf_query_matcher;

enum rf_agg_fn {
    RF_AGG_COUNT = 0,
    RF_AGG_SUM,
    RF_AGG_MIN,
    RF_AGG_MAX,
    RF_AGG_AVG,
    RF_AGG_LAST,     /* value of the latest point (the last written among equal times) */
    RF_AGG_QUANTILE, /* q in [0,1] */
};

typedef struct rf_query_agg {
    enum rf_agg_fn fn;
    double q;
} rf_query_agg;

typedef struct rf_query {
    const char *measurement; /* required */
    const char *field;       /* NULL: every field */
    const rf_query_matcher *matchers;
    uint32_t n_matchers;
    int64_t start_ns;         /* inclusive; INT64_MIN for unbounded */
    int64_t end_ns;           /* exclusive; INT64_MAX for unbounded */
    const rf_query_agg *aggs; /* n_aggs == 0: raw points */
    uint32_t n_aggs;
    int64_t step_ns;
    const char *const *group_by;
    uint32_t n_group_by;
} rf_query;

typedef struct rf_query_tag {
    char *key;
    char *value;
} rf_query_tag;

/* One series (raw) or one group (aggregated). */
typedef struct rf_query_set {
    char *measurement;
    char *field;
    rf_query_tag *tags; /* raw: every tag of the series; aggregated: the group_by tags */
    uint32_t n_tags;
    uint8_t value_type; /* raw: enum rf_value_type (F64 when blocks disagreed) */
    size_t n;           /* rows */
    int64_t *ts;        /* raw: point times; aggregated: bucket starts */
    uint64_t *bits;     /* raw: value bits, read per value_type */
    char **texts;       /* raw string fields: the text of each row (NUL-terminated), NULL
                          * for a row stored as its hash (before texts were stored); the
                          * whole array NULL when no row has a text */
    double *values;     /* aggregated: n rows of n_aggs columns */
} rf_query_set;

typedef struct rf_query_stats {
    uint64_t segments;
    uint64_t segments_scanned; /* open segments, read by scanning */
    uint64_t series_matched;
    uint64_t blocks_read;
    uint64_t blocks_corrupt; /* CRC or decode failure: skipped */
    uint64_t blocks_unkeyed; /* series without a dictionary record anywhere */
    uint64_t points_scanned; /* decoded */
    uint64_t points;         /* in range, returned or aggregated */
} rf_query_stats;

typedef struct rf_query_result {
    rf_query_set *sets; /* sorted by measurement, field, tags */
    size_t n_sets;
    rf_query_agg *aggs; /* copy of the query's */
    uint32_t n_aggs;
    rf_query_stats stats;
} rf_query_result;

/* Runs q on the store in `dir`. Returns 0 and *out (free with
 * rf_query_result_free), or a negative errno with *err explaining (bad
 * regex, unreadable directory, segment from a newer format version). */
int rf_query_run(const char *dir, const rf_query *q, rf_query_result **out, rf_err *err);
void rf_query_result_free(rf_query_result *r);

/* The stored type of every series: fn(ctx, series id, enum rf_value_type of
 * its first block) once per series and segment, segments in shard then
 * stream order, so a series' oldest stored type comes first (what the
 * engine seeds the field types with at start: ingest/protocol/protocol.h,
 * "Field types"). Reads every segment's index (a closed one's footer, an
 * open one by scanning) and one record header per series and segment, no
 * block. Returns 0, or a negative errno with *err (unreadable directory,
 * -EPROTONOSUPPORT for a segment from a newer format version). */
typedef void (*rf_query_type_fn)(void *ctx, uint64_t series_id, uint8_t value_type);
int rf_query_series_types(const char *dir, rf_query_type_fn fn, void *ctx, rf_err *err);

/* ---- parsing helpers for command lines ---- */

/* "count", "sum", "min", "max", "avg", "last", "p99", "p99.9", "quantile(0.75)".
 * Returns 0 or -EINVAL. */
int rf_query_agg_parse(const char *text, rf_query_agg *out);
/* Name of an aggregate column: "count", "p99", "q0.75". */
void rf_query_agg_name(const rf_query_agg *a, char *buf, size_t len);
/* A time on a command line: "now", "now-DURATION" (now-15m, now-2h30m),
 * RFC 3339 ("2026-12-01T10:00:00Z", with an optional fraction of up to 9
 * digits and a Z or +HH:MM/-HH:MM offset; "2026-12-01" alone is its
 * midnight UTC), or ns since the epoch. Returns 0, -EINVAL or -ERANGE. */
int rf_query_time_parse(const char *text, int64_t now_ns, int64_t *out);
/* "tag=value", "tag!=value", "tag=~regex", "tag!~regex": splits `text` in
 * place (the matcher points into it). Returns 0 or -EINVAL. */
int rf_query_matcher_parse(char *text, rf_query_matcher *out);

/* ---- output ---- */

enum rf_query_format {
    RF_QUERY_TABLE = 0, /* aligned columns, RFC 3339 times, for people */
    RF_QUERY_CSV = 1,   /* header row; time in ns; tags as k=v;k=v */
    RF_QUERY_JSON = 2,  /* {"series":[{"measurement","field","tags","columns","values"}]} */
    RF_QUERY_LINE = 3,  /* InfluxDB line protocol; aggregates as <field>_<agg> fields */
};

/* "table", "csv", "json", "line"; -1 when unknown. */
int rf_query_format_parse(const char *name);
/* Writes the result; returns 0 or -EIO when the stream failed. Floats are
 * printed with the fewest digits that read back to the same double. */
int rf_query_write(FILE *out, const rf_query_result *r, enum rf_query_format fmt);

#endif
