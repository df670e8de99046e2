/* The Prometheus HTTP query API on ringflowd's `http` listeners:
 *
 *   GET|POST /api/v1/query         query, time             (instant)
 *   GET|POST /api/v1/query_range   query, start, end, step (range)
 *   GET|POST /api/v1/series        match[] (one or more), start, end
 *   GET|POST /api/v1/labels        match[] (optional)
 *   GET      /api/v1/label/<name>/values   match[] (optional)
 *   GET      /api/v1/status/buildinfo
 *   POST     /api/v1/read          remote_read: a snappy block of a protobuf
 *                                  ReadRequest; answered with the samples
 *                                  response (a snappy ReadResponse), so a
 *                                  Prometheus server can run PromQL over
 *                                  ringflow's data (read.c)
 *
 * Parameters come from the URL and, for POST, from an
 * application/x-www-form-urlencoded body, as Prometheus takes them; times
 * are RFC 3339 or Unix seconds with a fraction, durations Prometheus' (5m)
 * or seconds. Answers are Prometheus' JSON: {"status":"success","data":...}
 * or {"status":"error","errorType":"bad_data"|"execution"|"timeout"|
 * "internal","error":"..."} with 400, 422, 503 or 500.
 *
 * Threads
 *   A worker's HTTP layer only queues the request (rf_http_response
 *   .detached, ingest/http/http.h): copies of its URL and body and a dup()
 *   of its socket go into a bounded queue, and the worker goes back to its
 *   rings; a full queue is answered 503 at once. One query thread takes
 *   the requests in order, evaluates them over the store directory read-only
 *   (storage/index: the series index, rebuilt when older than
 *   index_refresh_ms; storage/query reads closed and open segments, the
 *   workers' in-memory heads through rf_promapi_attach_store), writes the
 *   answer on its copy of the socket with "Connection: close" (a query's
 *   result as it is formatted, without Content-Length: the body ends with
 *   the connection; errors and the other endpoints with Content-Length),
 *   shuts the socket's sending side and closes its copy.
 *
 * Limits
 *   query_timeout_ms (default 2 min, Prometheus' too), max_samples
 *   (50,000,000) and max_series bound one query: a query past them is
 *   refused (timeout, 503; execution, 422) and everything it held is freed.
 *   Counted in rf_promapi_counters and on /metrics (ringflow_query_*). */
#ifndef RF_STORAGE_PROMAPI_H
#define RF_STORAGE_PROMAPI_H

#include <stdint.h>

#include "core/error/error.h"
#include "storage/store/store.h"

typedef struct rf_promapi_config {
    const char *store_dir;
    uint32_t queue;           /* requests waiting: 64 */
    int64_t query_timeout_ms; /* 120,000 */
    uint64_t max_samples;     /* 50,000,000 */
    uint64_t max_series;      /* series one query reads: 0 = no limit */
    int64_t index_refresh_ms; /* rebuild the series index when older: 5,000 */
    uint64_t index_memory;    /* the index's bound: 0 = none */
} rf_promapi_config;

/* Starts the query thread and makes every http listener's front created
 * from now on serve the routes above. Once per process. Returns 0 or a
 * negative errno. */
int rf_promapi_start(const rf_promapi_config *cfg, rf_err *err);
/* The running engine's store: from now on every request first reads the
 * workers' in-memory heads (store.h "Reading the heads"), so that a point
 * is seen as soon as it was accepted, not once its block is written. NULL
 * detaches it, and returns once no head read uses it: call it before the
 * engine stops its workers. */
void rf_promapi_attach_store(rf_store *store);
/* Keeps the query thread off the CPUs the workers are pinned to (cpus[i] <
 * 0: a worker not pinned), so a heavy query competes with no worker for its
 * core. When every CPU the thread may use hosts a worker, it is left where
 * it is (and that is logged). Call after the workers were placed. Returns
 * the CPUs the thread now runs on, or 0 when it was left as it was. */
int rf_promapi_avoid_cpus(const int *cpus, uint32_t n);
/* Stops the thread (requests still queued are answered 503) and frees it. */
void rf_promapi_stop(void);

typedef struct rf_promapi_counters {
    uint64_t requests, queries, errors, timeouts, too_many_samples, too_many_series, queue_full;
    uint64_t samples; /* read by queries */
    uint64_t index_builds, index_series, index_bytes;
    uint64_t head_reads, head_series, head_incomplete; /* the in-memory heads */
} rf_promapi_counters;
void rf_promapi_counters_read(rf_promapi_counters *out);

#endif
