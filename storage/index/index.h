/* The series index of a store directory: every series the segments name,
 * as Prometheus label sets (storage/promql/promql.h, rf_promql_metric_name),
 * with postings (label name and value -> series) so that a selector with an
 * `=` matcher resolves without looking at every series, and the PromQL
 * series source that reads their points.
 *
 * Build
 *   rf_series_index_open reads the series dictionary records of every
 *   segment of every shard (closed segments through their footer, open ones
 *   by scanning, as storage/query does: segment.h), once per series id. It
 *   runs on the thread that will query (never a worker); a store being
 *   written may gain series after the build: rf_series_index_open again to
 *   see them. The build time per million series is in docs/PERFORMANCE.md.
 *
 * Memory
 *   Label text, one entry per series and the postings: counted in
 *   rf_series_index_memory; a build that would pass memory_limit stops with
 *   -ENOMEM and says so (nothing is silently left out).
 *
 * Reading points
 *   rf_series_index_source gives an rf_promql_source whose select resolves
 *   the matchers here and reads the matching series' points with
 *   rf_query_run (storage/query/query.h), grouped by measurement, converted
 *   to milliseconds and doubles (integers, unsigned and booleans as their
 *   value; string fields are not numbers and are left out). Points with the
 *   same millisecond keep the last written, as Prometheus keeps one sample
 *   per millisecond. */
#ifndef RF_STORAGE_INDEX_H
#define RF_STORAGE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "storage/promql/promql.h"
#include "storage/store/store.h"

typedef struct rf_series_index rf_series_index;

/* memory_limit 0: no limit. Returns 0 and *out, or a negative errno. */
int rf_series_index_open(const char *store_dir, uint64_t memory_limit, rf_series_index **out,
                         rf_err *err);
void rf_series_index_free(rf_series_index *ix);

size_t rf_series_index_count(const rf_series_index *ix);
uint64_t rf_series_index_memory(const rf_series_index *ix);

/* The ids (0..count-1) of the series passing every matcher, ascending, in a
 * malloc'd array. Returns 0 or -ENOMEM. */
int rf_series_index_select(const rf_series_index *ix, const rf_promql_matcher *m, size_t n,
                           uint32_t **ids, size_t *n_ids);
rf_promql_labels rf_series_index_labels(const rf_series_index *ix, uint32_t id);

/* Label names, or the values of label `name`, of the series passing the
 * matchers (none: every series): sorted, each once, in a malloc'd array of
 * pointers into ix (free the array only). Returns 0 or -ENOMEM. */
int rf_series_index_label_names(const rf_series_index *ix, const rf_promql_matcher *m, size_t n,
                                const char ***out, size_t *n_out);
int rf_series_index_label_values(const rf_series_index *ix, const char *name,
                                 const rf_promql_matcher *m, size_t n, const char ***out,
                                 size_t *n_out);

/* ---- the in-memory heads (storage/store/store.h "Reading the heads") ----
 *
 * For a query that must see what the workers still hold: read the heads
 * with rf_store_heads_read(store, rf_series_index_want_head, ix, ...), then
 * rf_series_index_set_heads(ix, heads) before evaluating, and
 * rf_series_index_set_heads(ix, NULL) before freeing the heads.
 *   - want_head asks for the series holding points that the filter below
 *     lets through, and for the key of every series ix does not know yet
 *     (defined, but its first block not yet in the segments ix was built
 *     from), so no series falls between the index build and the heads.
 *   - set_heads adds the series ix does not know (they stay, as if read
 *     from a segment), and makes the source merge each selected series'
 *     head into the points read from the segments: one sample per
 *     millisecond, the head's value winning. A point read from both (its
 *     block was cut after the heads were copied) is returned once.
 * Returns 0 or -ENOMEM (memory_limit passed). */
bool rf_series_index_want_head(void *ix, uint64_t series_id, uint32_t n_points);
int rf_series_index_set_heads(rf_series_index *ix, const rf_store_heads *heads);

/* Which series' points want_head asks for: a query reads only the series
 * its selectors match, so only those are copied from the workers.
 *   - heads_want_all: every series holding points (after open).
 *   - heads_want_none: none but the series ix does not know (their key and
 *     points: ix cannot tell whether they match before it learns them);
 *     enough for the metadata endpoints, which need no points.
 *   - heads_want: adds the series passing matchers m (the first call after
 *     want_all starts from none); an rf_promql_selector_fn, so
 *     rf_promql_expr_selectors(e, rf_series_index_heads_want, ix) narrows
 *     the read to what e can read.
 * The filter holds until changed (set it before each read); its bitmap, one
 * bit per series, counts in rf_series_index_memory. Returns 0 or -ENOMEM
 * (memory_limit passed). */
void rf_series_index_heads_want_all(rf_series_index *ix);
int rf_series_index_heads_want_none(rf_series_index *ix);
int rf_series_index_heads_want(void *ix, const rf_promql_matcher *m, size_t n);

/* The source (valid while ix is); reads points from ix's store directory. */
void rf_series_index_source(rf_series_index *ix, rf_promql_source *out);

#endif
