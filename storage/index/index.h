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

/* The source (valid while ix is); reads points from ix's store directory. */
void rf_series_index_source(rf_series_index *ix, rf_promql_source *out);

#endif
