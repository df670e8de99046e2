/* The Prometheus query API: the hand-off from the workers' HTTP layer and
 * the query thread (contract in promapi.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/tls/tls.h"
#include "core/log/log.h"
#include "core/stats/stats.h"
#include "ingest/http/http.h"
#include "rf_build_config.h"
#include "storage/index/index.h"
#include "storage/promapi/promapi.h"
#include "storage/promapi/promapi_pvt.h"
#include "storage/promql/promql.h"
#include "storage/query/query.h"

enum api_route {
    R_QUERY = 0,
    R_QUERY_RANGE,
    R_SERIES,
    R_LABELS,
    R_LABEL_VALUES,
    R_BUILDINFO,
    R_READ
};

typedef struct job {
    enum api_route route;
    int fd;                  /* our dup of the connection's socket */
    struct rf_tls_conn *tls; /* a TLS connection's state, ours once queued (http.h) */
    char *path;              /* NUL-terminated copies */
    char *query;             /* URL query, or "" */
    char *body;              /* form body (POST), or "" */
    size_t body_len;
} job;

typedef enum counter {
    C_REQUESTS,
    C_QUERIES,
    C_ERRORS,
    C_TIMEOUTS,
    C_TOO_MANY,
    C_TOO_MANY_SERIES,
    C_QUEUE_FULL,
    C_SAMPLES,
    C_INDEX_BUILDS,
    C_INDEX_SERIES,
    C_INDEX_BYTES,
    C_HEAD_READS,
    C_HEAD_SERIES,
    C_HEAD_INCOMPLETE,
    C__COUNT
} counter;

static struct {
    rf_promapi_config cfg;
    char *store_dir;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *q; /* ring of cfg.queue jobs, under lock */
    uint32_t head, count;
    bool stopping; /* under lock */
    bool started;
    pthread_t thread;
    /* query thread only */
    rf_series_index *ix;
    int64_t ix_built_ms;
    rf_store_heads *heads; /* of the request being answered */
    /* The running engine's store, whose heads queries read (NULL: none).
     * store_lock is held by the query thread while it reads them, so that
     * rf_promapi_attach_store(NULL) returns only once nothing uses it. */
    pthread_mutex_t store_lock;
    rf_store *store;
    /* written by the query thread and (queue_full, requests) workers under
     * lock; read by anyone (relaxed: statistics) */
    _Atomic uint64_t c[C__COUNT];
    int metric_ids[C__COUNT]; /* /metrics entries, control thread */
} api;

/* /metrics (core/stats) reads the counters directly: relaxed loads of
 * values written with relaxed adds, statistics only. */
static const struct {
    const char *name, *help;
    bool gauge;
} k_metrics[C__COUNT] = {
    [C_REQUESTS] = {"ringflow_query_requests", "Query API requests taken.", false},
    [C_QUERIES] = {"ringflow_query_queries", "PromQL and remote_read queries run.", false},
    [C_ERRORS] = {"ringflow_query_errors", "Query API requests answered with an error.", false},
    [C_TIMEOUTS] = {"ringflow_query_timeouts", "Queries stopped at query_timeout_ms.", false},
    [C_TOO_MANY] = {"ringflow_query_too_many_samples", "Queries refused past max_samples.", false},
    [C_TOO_MANY_SERIES] = {"ringflow_query_too_many_series", "Queries refused past max_series.",
                           false},
    [C_QUEUE_FULL] = {"ringflow_query_queue_full", "Requests answered 503: the queue was full.",
                      false},
    [C_SAMPLES] = {"ringflow_query_samples", "Samples read by queries.", false},
    [C_INDEX_BUILDS] = {"ringflow_query_index_builds", "Series index rebuilds.", false},
    [C_INDEX_SERIES] = {"ringflow_query_index_series", "Series in the series index.", true},
    [C_INDEX_BYTES] = {"ringflow_query_index_bytes",
                       "Memory of the series index (bounded by storage.query.index_memory).", true},
    [C_HEAD_READS] = {"ringflow_query_head_reads",
                      "Reads of the workers' in-memory heads (one per request).", false},
    [C_HEAD_SERIES] = {"ringflow_query_head_series", "Series copied from the heads.", false},
    [C_HEAD_INCOMPLETE] = {"ringflow_query_head_incomplete",
                           "Head reads a shard did not finish by the deadline.", false},
};

static void count(counter c, uint64_t n)
{
    atomic_fetch_add_explicit(&api.c[c], n, memory_order_relaxed); /* several writers */
}

void rf_promapi_counters_read(rf_promapi_counters *o)
{
    uint64_t v[C__COUNT];
    for (int i = 0; i < C__COUNT; i++)
        v[i] = atomic_load_explicit(&api.c[i], memory_order_relaxed);
    *o = (rf_promapi_counters){.requests = v[C_REQUESTS],
                               .queries = v[C_QUERIES],
                               .errors = v[C_ERRORS],
                               .timeouts = v[C_TIMEOUTS],
                               .too_many_samples = v[C_TOO_MANY],
                               .too_many_series = v[C_TOO_MANY_SERIES],
                               .queue_full = v[C_QUEUE_FULL],
                               .samples = v[C_SAMPLES],
                               .index_builds = v[C_INDEX_BUILDS],
                               .index_series = v[C_INDEX_SERIES],
                               .index_bytes = v[C_INDEX_BYTES],
                               .head_reads = v[C_HEAD_READS],
                               .head_series = v[C_HEAD_SERIES],
                               .head_incomplete = v[C_HEAD_INCOMPLETE]};
}

/* A head read waits this long at most for the workers (and the I/O thread
 * to write what was cut before it). */
#define HEAD_READ_TIMEOUT_NS (2 * 1000000000LL)

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* ---- the worker's side ---- */

static char *copy(const char *p, size_t n)
{
    char *o = malloc(n + 1);
    if (o) {
        memcpy(o, p, n);
        o[n] = '\0';
    }
    return o;
}

static void enqueue(void *user, const rf_http_request *req, rf_http_response *resp)
{
    count(C_REQUESTS, 1);
    if (req->fd < 0) {
        rf_http_resp_error(resp, 500, "query API: no socket to answer on");
        return;
    }
    job j = {.route = (enum api_route)(intptr_t)user};
    j.path = copy(req->path, req->path_len);
    j.query = copy(req->query ? req->query : "", req->query ? req->query_len : 0);
    j.body_len = req->method == RF_HTTP_POST ? req->body_len : 0;
    j.body = copy(req->method == RF_HTTP_POST ? (const char *)req->body : "", j.body_len);
    j.fd = j.path && j.query && j.body ? fcntl(req->fd, F_DUPFD_CLOEXEC, 3) : -1;
    j.tls = req->tls;
    bool queued = false;
    if (j.fd >= 0) {
        pthread_mutex_lock(&api.lock);
        if (!api.stopping && api.count < api.cfg.queue) {
            api.q[(api.head + api.count) % api.cfg.queue] = j;
            api.count++;
            queued = true;
            pthread_cond_signal(&api.wake);
        }
        pthread_mutex_unlock(&api.lock);
    }
    if (queued) {
        resp->detached = true;
        return;
    }
    if (j.fd >= 0)
        close(j.fd);
    free(j.path);
    free(j.query);
    free(j.body);
    count(C_QUEUE_FULL, 1);
    rf_http_resp_error(resp, 503, "too many queries waiting; retry");
    rf_http_resp_header(resp, "Retry-After: 1");
}

static int add_routes(rf_http_server *s, rf_err *err)
{
    static const struct {
        const char *path, *name;
        unsigned methods;
    } r[] = {
        [R_QUERY] = {"/api/v1/query", "prom_query", RF_HTTP_GET | RF_HTTP_POST},
        [R_QUERY_RANGE] = {"/api/v1/query_range", "prom_query_range", RF_HTTP_GET | RF_HTTP_POST},
        [R_SERIES] = {"/api/v1/series", "prom_series", RF_HTTP_GET | RF_HTTP_POST},
        [R_LABELS] = {"/api/v1/labels", "prom_labels", RF_HTTP_GET | RF_HTTP_POST},
        [R_LABEL_VALUES] = {"/api/v1/label/*", "prom_label_values", RF_HTTP_GET},
        [R_BUILDINFO] = {"/api/v1/status/buildinfo", "prom_buildinfo", RF_HTTP_GET},
        [R_READ] = {"/api/v1/read", "prom_read", RF_HTTP_POST},
    };
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        int rc = rf_http_server_route(s, r[i].path, r[i].methods, r[i].name, enqueue,
                                      (void *)(intptr_t)i, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- parameters ---- */

typedef struct param {
    char *name, *value;
} param;

typedef struct params {
    param *p;
    size_t n;
} params;

static int hexv(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes s[0..n) ('+' as space); NULL for a bad escape. */
static char *decode(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; o && i < n; i++) {
        if (s[i] == '+') {
            o[k++] = ' ';
        } else if (s[i] == '%') {
            int a = i + 2 < n ? hexv(s[i + 1]) : -1, b = i + 2 < n ? hexv(s[i + 2]) : -1;
            if (a < 0 || b < 0) {
                free(o);
                return NULL;
            }
            o[k++] = (char)(a * 16 + b);
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    if (o)
        o[k] = '\0';
    return o;
}

static int parse_form(params *ps, const char *s)
{
    while (*s) {
        const char *amp = strchr(s, '&'), *end = amp ? amp : s + strlen(s);
        const char *eq = memchr(s, '=', (size_t)(end - s));
        if (end > s) {
            param *g = realloc(ps->p, (ps->n + 1) * sizeof(*g));
            if (!g)
                return -ENOMEM;
            ps->p = g;
            char *name = decode(s, (size_t)((eq ? eq : end) - s));
            char *value = eq ? decode(eq + 1, (size_t)(end - eq - 1)) : strdup("");
            if (!name || !value) {
                free(name);
                free(value);
                return -EINVAL;
            }
            ps->p[ps->n++] = (param){name, value};
        }
        s = amp ? amp + 1 : end;
    }
    return 0;
}

static void params_free(params *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->p[i].name);
        free(ps->p[i].value);
    }
    free(ps->p);
}

static const char *get(const params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i].name, name) == 0)
            return ps->p[i].value;
    return NULL;
}

/* Unix seconds with a fraction, or RFC 3339. */
static int parse_time(const char *s, int64_t *ms)
{
    char *end;
    double sec = strtod(s, &end);
    if (end != s && *end == '\0') {
        if (!(sec > -9.2e15 && sec < 9.2e15))
            return -ERANGE;
        *ms = (int64_t)(sec * 1000 + (sec < 0 ? -0.5 : 0.5));
        return 0;
    }
    int64_t ns;
    if (rf_query_time_parse(s, wall_ms() * 1000000, &ns) < 0 || strncmp(s, "now", 3) == 0 ||
        strspn(s, "0123456789") == strlen(s))
        return -EINVAL;
    *ms = ns / 1000000;
    return 0;
}

static int parse_step(const char *s, int64_t *ms)
{
    char *end;
    double sec = strtod(s, &end);
    if (end != s && *end == '\0') {
        if (!(sec > 0 && sec < 9.2e15))
            return -EINVAL;
        *ms = (int64_t)(sec * 1000 + 0.5);
        return 0;
    }
    return rf_promql_parse_duration(s, strlen(s), ms);
}

/* ---- answers ---- */

typedef struct answer {
    int status;
    const char *ctype;    /* NULL: application/json */
    const char *encoding; /* Content-Encoding, or NULL */
    char *body;
    size_t len;
    FILE *f;
    bool can_stream;        /* the answer may go out as it is written (not TLS) */
    rf_promql_value *value; /* a query's result, written by answer_job */
} answer;

static void fail_with(answer *a, enum rf_promql_error kind, const char *msg)
{
    count(C_ERRORS, 1);
    a->status = rf_promql_error_status(kind); /* nothing was written before an error */
    fprintf(a->f,
            "{\"status\":\"error\",\"errorType\":\"%s\",\"error\":", rf_promql_error_name(kind));
    rf_promql_write_json_string(a->f, msg);
    fputc('}', a->f);
}

static bool ensure_index(answer *a)
{
    int64_t now = wall_ms();
    if (api.ix && now - api.ix_built_ms < api.cfg.index_refresh_ms)
        return true;
    rf_series_index *ix;
    rf_err err;
    if (rf_series_index_open(api.store_dir, api.cfg.index_memory, &ix, &err) < 0) {
        fail_with(a, RF_PROMQL_INTERNAL, err.msg);
        return false;
    }
    rf_series_index_free(api.ix);
    api.ix = ix;
    api.ix_built_ms = now;
    count(C_INDEX_BUILDS, 1);
    atomic_store_explicit(&api.c[C_INDEX_SERIES], rf_series_index_count(ix), memory_order_relaxed);
    atomic_store_explicit(&api.c[C_INDEX_BYTES], rf_series_index_memory(ix), memory_order_relaxed);
    return true;
}

/* Which heads a request needs: those of the series its selectors match
 * (a query), no points at all (the metadata endpoints: the keys the index
 * lacks only), or every series holding points (remote_read). */
enum heads_need {
    HEADS_OF_EXPR,
    HEADS_KEYS_ONLY,
    HEADS_ALL,
};

/* The index, with what the workers hold in memory attached (store.h
 * "Reading the heads"): read once per request, before any segment is;
 * only the series `need` (and e, for HEADS_OF_EXPR) asks for are copied. */
static bool prepare(answer *a, enum heads_need need, const rf_promql_expr *e)
{
    if (!ensure_index(a))
        return false;
    int rc = 0;
    if (need == HEADS_ALL) {
        rf_series_index_heads_want_all(api.ix);
    } else {
        /* Reset first: an expression without selectors reads no series. */
        rc = rf_series_index_heads_want_none(api.ix);
        if (rc == 0 && need == HEADS_OF_EXPR)
            rc = rf_promql_expr_selectors(e, rf_series_index_heads_want, api.ix);
    }
    pthread_mutex_lock(&api.store_lock);
    if (api.store && rc == 0) {
        int64_t wait = api.cfg.query_timeout_ms * 1000000;
        int64_t deadline = mono_ns() + (wait < HEAD_READ_TIMEOUT_NS ? wait : HEAD_READ_TIMEOUT_NS);
        /* The copy is samples the query holds: max_samples bounds it too. */
        rc = rf_store_heads_read(api.store, rf_series_index_want_head, api.ix, deadline,
                                 api.cfg.max_samples, &api.heads);
    }
    pthread_mutex_unlock(&api.store_lock);
    if (rc == -E2BIG) {
        count(C_TOO_MANY, 1);
        fail_with(a, RF_PROMQL_EXECUTION,
                  "query processing would load too many samples into memory in query execution");
        return false;
    }
    if (rc == 0 && api.heads) {
        count(C_HEAD_READS, 1);
        count(C_HEAD_SERIES, api.heads->n);
        if (api.heads->incomplete)
            count(C_HEAD_INCOMPLETE, 1);
        rc = rf_series_index_set_heads(api.ix, api.heads);
        atomic_store_explicit(&api.c[C_INDEX_SERIES], rf_series_index_count(api.ix),
                              memory_order_relaxed);
        atomic_store_explicit(&api.c[C_INDEX_BYTES], rf_series_index_memory(api.ix),
                              memory_order_relaxed);
    }
    if (rc < 0) {
        fail_with(a, RF_PROMQL_INTERNAL, "out of memory reading the in-memory heads");
        return false;
    }
    return true;
}

static void heads_release(void)
{
    if (!api.heads)
        return;
    if (api.ix)
        rf_series_index_set_heads(api.ix, NULL);
    rf_store_heads_free(api.heads);
    api.heads = NULL;
}

static void run_query(answer *a, const params *ps, bool range)
{
    const char *q = get(ps, "query");
    int64_t start, end, step = 0;
    char msg[256];
    if (!q) {
        fail_with(a, RF_PROMQL_BAD_DATA, "invalid parameter \"query\": no expression given");
        return;
    }
    if (range) {
        const char *s = get(ps, "start"), *e = get(ps, "end"), *st = get(ps, "step");
        const char *bad = !s || parse_time(s, &start) < 0                 ? "start"
                          : !e || parse_time(e, &end) < 0                 ? "end"
                          : !st || parse_step(st, &step) < 0 || step <= 0 ? "step"
                                                                          : NULL;
        if (bad) {
            snprintf(msg, sizeof(msg), "invalid parameter \"%s\": cannot parse \"%s\"", bad,
                     get(ps, bad) ? get(ps, bad) : "");
            fail_with(a, RF_PROMQL_BAD_DATA, msg);
            return;
        }
        if (end < start) {
            fail_with(a, RF_PROMQL_BAD_DATA, "end timestamp must not be before start time");
            return;
        }
    } else {
        const char *t = get(ps, "time");
        start = wall_ms();
        if (t && parse_time(t, &start) < 0) {
            snprintf(msg, sizeof(msg), "invalid parameter \"time\": cannot parse \"%s\"", t);
            fail_with(a, RF_PROMQL_BAD_DATA, msg);
            return;
        }
        end = start;
    }
    rf_promql_expr *e;
    rf_err err;
    if (rf_promql_parse(q, &e, &err) < 0) {
        snprintf(msg, sizeof(msg), "invalid parameter \"query\": ");
        strncat(msg, err.msg, sizeof(msg) - strlen(msg) - 1);
        fail_with(a, RF_PROMQL_BAD_DATA, msg);
        return;
    }
    if (!prepare(a, HEADS_OF_EXPR, e)) {
        rf_promql_expr_free(e);
        return;
    }
    count(C_QUERIES, 1);
    rf_promql_source src;
    rf_series_index_source(api.ix, &src);
    rf_promql_limits lim = {.max_samples = api.cfg.max_samples,
                            .max_series = api.cfg.max_series,
                            .deadline_ns = mono_ns() + api.cfg.query_timeout_ms * 1000000};
    rf_promql_value *v;
    enum rf_promql_error kind;
    int rc = rf_promql_eval(e, &src, start, end, step, &lim, &v, &kind, &err);
    rf_promql_expr_free(e);
    if (rc < 0) {
        if (kind == RF_PROMQL_TIMEOUT)
            count(C_TIMEOUTS, 1);
        if (rc == -E2BIG)
            count(C_TOO_MANY, 1);
        if (rc == -EMFILE)
            count(C_TOO_MANY_SERIES, 1);
        fail_with(a, kind, err.msg);
        return;
    }
    count(C_SAMPLES, v->samples);
    if (a->can_stream) {
        a->value = v; /* written straight to the socket: answer_job */
        return;
    }
    fputs("{\"status\":\"success\",\"data\":", a->f);
    rf_promql_write_json(a->f, v);
    fputc('}', a->f);
    rf_promql_value_free(v);
}

/* The union of every match[]'s series; n_sets 0 when none was given. */
static bool matched_ids(answer *a, const params *ps, bool required, uint32_t **ids, size_t *n,
                        size_t *n_sets)
{
    *ids = NULL;
    *n = *n_sets = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->p[i].name, "match[]") != 0)
            continue;
        rf_promql_matcher *m;
        size_t nm;
        rf_err err;
        if (rf_promql_parse_matchers(ps->p[i].value, &m, &nm, &err) < 0) {
            fail_with(a, RF_PROMQL_BAD_DATA, err.msg);
            free(*ids);
            return false;
        }
        uint32_t *sel;
        size_t ns;
        int rc = rf_series_index_select(api.ix, m, nm, &sel, &ns);
        rf_promql_matchers_free(m, nm);
        uint32_t *g = rc == 0 ? realloc(*ids, (*n + ns + 1) * sizeof(**ids)) : NULL;
        if (!g) {
            if (rc == 0)
                free(sel);
            free(*ids);
            fail_with(a, RF_PROMQL_INTERNAL, "out of memory");
            return false;
        }
        *ids = g;
        memcpy(*ids + *n, sel, ns * sizeof(*sel));
        *n += ns;
        free(sel);
        (*n_sets)++;
    }
    if (required && !*n_sets) {
        fail_with(a, RF_PROMQL_BAD_DATA, "no match[] parameter provided");
        return false;
    }
    return true;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

static void series(answer *a, const params *ps)
{
    uint32_t *ids;
    size_t n, sets;
    if (!prepare(a, HEADS_KEYS_ONLY, NULL) || !matched_ids(a, ps, true, &ids, &n, &sets))
        return;
    if (n)
        qsort(ids, n, sizeof(*ids), cmp_u32);
    fputs("{\"status\":\"success\",\"data\":[", a->f);
    for (size_t i = 0, k = 0; i < n; i++) {
        if (i && ids[i] == ids[i - 1])
            continue;
        if (k++)
            fputc(',', a->f);
        rf_promql_write_json_labels(a->f, rf_series_index_labels(api.ix, ids[i]));
    }
    fputs("]}", a->f);
    free(ids);
}

static void labels(answer *a, const params *ps, const char *name)
{
    /* One match[] narrows (several: the first; Prometheus takes the union). */
    rf_promql_matcher *m = NULL;
    size_t nm = 0;
    rf_err err;
    const char *match = get(ps, "match[]");
    if (!prepare(a, HEADS_KEYS_ONLY, NULL))
        return;
    if (match && rf_promql_parse_matchers(match, &m, &nm, &err) < 0) {
        fail_with(a, RF_PROMQL_BAD_DATA, err.msg);
        return;
    }
    const char **out;
    size_t n;
    int rc = name ? rf_series_index_label_values(api.ix, name, m, nm, &out, &n)
                  : rf_series_index_label_names(api.ix, m, nm, &out, &n);
    rf_promql_matchers_free(m, nm);
    if (rc < 0) {
        fail_with(a, RF_PROMQL_INTERNAL, "out of memory");
        return;
    }
    fputs("{\"status\":\"success\",\"data\":[", a->f);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', a->f);
        rf_promql_write_json_string(a->f, out[i]);
    }
    fputs("]}", a->f);
    free(out);
}

static void remote_read(const job *j, answer *a)
{
    char msg[512] = "";
    char *out;
    size_t len;
    if (!prepare(a, HEADS_ALL, NULL))
        return;
    a->status = rf_promapi_remote_read(api.ix, (const uint8_t *)j->body, j->body_len, &out, &len,
                                       msg, sizeof(msg));
    if (a->status != 200) {
        count(C_ERRORS, 1);
        a->ctype = "text/plain; charset=utf-8";
        fprintf(a->f, "%s\n", msg);
        return;
    }
    count(C_QUERIES, 1);
    a->ctype = "application/x-protobuf";
    a->encoding = "snappy";
    fwrite(out, 1, len, a->f);
    free(out);
}

static void handle(const job *j, answer *a)
{
    if (j->route == R_READ) {
        remote_read(j, a);
        return;
    }
    params ps = {0};
    if (parse_form(&ps, j->query) < 0 || parse_form(&ps, j->body) < 0) {
        fail_with(a, RF_PROMQL_BAD_DATA, "bad percent-encoding in the parameters");
        params_free(&ps);
        return;
    }
    switch (j->route) {
    case R_QUERY: run_query(a, &ps, false); break;
    case R_QUERY_RANGE: run_query(a, &ps, true); break;
    case R_SERIES: series(a, &ps); break;
    case R_LABELS: labels(a, &ps, NULL); break;
    case R_LABEL_VALUES: {
        const char *p = j->path + strlen("/api/v1/label/");
        size_t nl = strlen(p);
        if (nl <= 7 || strcmp(p + nl - 7, "/values") != 0) {
            fail_with(a, RF_PROMQL_BAD_DATA, "expected /api/v1/label/<name>/values");
            a->status = 404;
            break;
        }
        char *name = decode(p, nl - 7);
        if (!name)
            fail_with(a, RF_PROMQL_BAD_DATA, "bad percent-encoding in the label name");
        else
            labels(a, &ps, name);
        free(name);
        break;
    }
    case R_READ: break; /* above */
    case R_BUILDINFO:
        fprintf(a->f,
                "{\"status\":\"success\",\"data\":{\"version\":\"%s\",\"revision\":\"\","
                "\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\","
                "\"goVersion\":\"\"}}",
                RF_VERSION);
        break;
    }
    params_free(&ps);
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Entity";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* Writes everything, waiting for room at most 10 s at a time. */
static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || poll(&pf, 1, 10000) != 1)
            return; /* the client went away or stopped reading */
    }
}

static ssize_t socket_write(void *cookie, const char *buf, size_t n)
{
    send_all(*(const int *)cookie, buf, n);
    return (ssize_t)n; /* a client that went away: the rest is discarded too */
}

/* A query's result as it is written, in 64 KiB sends: the JSON of a large
 * query_range (80 MB for 10,000 series x 241 points) is never held whole.
 * No Content-Length: the body ends where the connection does (it is
 * "Connection: close" in any case). */
static void answer_streamed(const job *j, answer *a)
{
    char head[160];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      "Connection: close\r\n\r\n");
    send_all(j->fd, head, (size_t)hl);
    int fd = j->fd;
    FILE *out = fopencookie(&fd, "w", (cookie_io_functions_t){.write = socket_write});
    if (out) {
        setvbuf(out, NULL, _IOFBF, 64 * 1024);
        fputs("{\"status\":\"success\",\"data\":", out);
        rf_promql_write_json(out, a->value);
        fputc('}', out);
        fclose(out);
    }
    rf_promql_value_free(a->value);
    a->value = NULL;
    shutdown(j->fd, SHUT_WR);
}

static void answer_job(const job *j, answer *a)
{
    if (a->value) {
        answer_streamed(j, a);
        return;
    }
    fflush(a->f);
    char head[320];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s%s%sContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      a->status, reason(a->status), a->ctype ? a->ctype : "application/json",
                      a->encoding ? "Content-Encoding: " : "", a->encoding ? a->encoding : "",
                      a->encoding ? "\r\n" : "", a->len);
    if (j->tls) {
        /* Through the connection's TLS state, once its worker let it go. */
        rf_tls_conn_acquire(j->tls);
        if (rf_tls_conn_write(j->tls, head, (size_t)hl) == 0 &&
            rf_tls_conn_write(j->tls, a->body, a->len) == 0)
            rf_tls_conn_close_notify(j->tls);
        (void)rf_tls_conn_send_blocking(j->tls, j->fd, 10000);
    } else {
        send_all(j->fd, head, (size_t)hl);
        send_all(j->fd, a->body, a->len);
    }
    /* FIN after the answer; the worker's side ends when the client closes. */
    shutdown(j->fd, SHUT_WR);
}

static void job_free(job *j)
{
    if (j->tls) {
        rf_tls_conn_acquire(j->tls);
        rf_tls_conn_free(j->tls);
    }
    close(j->fd);
    free(j->path);
    free(j->query);
    free(j->body);
}

static void *query_thread(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&api.lock);
        while (!api.count && !api.stopping)
            pthread_cond_wait(&api.wake, &api.lock);
        if (!api.count) {
            pthread_mutex_unlock(&api.lock);
            break;
        }
        job j = api.q[api.head];
        api.head = (api.head + 1) % api.cfg.queue;
        api.count--;
        bool stopping = api.stopping;
        pthread_mutex_unlock(&api.lock);
        answer a = {.status = 200, .can_stream = !j.tls};
        a.f = open_memstream(&a.body, &a.len);
        if (!a.f) {
            job_free(&j);
            continue;
        }
        if (stopping)
            fail_with(&a, RF_PROMQL_TIMEOUT, "the engine is stopping");
        else
            handle(&j, &a);
        heads_release();
        answer_job(&j, &a);
        fclose(a.f);
        free(a.body);
        job_free(&j);
    }
    return NULL;
}

int rf_promapi_start(const rf_promapi_config *cfg, rf_err *err)
{
    if (api.started)
        return rf_err_set(err, EALREADY, "query API: already started");
    api.cfg = *cfg;
    if (!api.cfg.queue)
        api.cfg.queue = 64;
    if (!api.cfg.query_timeout_ms)
        api.cfg.query_timeout_ms = 120000;
    if (!api.cfg.max_samples)
        api.cfg.max_samples = 50000000;
    if (!api.cfg.index_refresh_ms)
        api.cfg.index_refresh_ms = 5000;
    if (!(api.store_dir = strdup(cfg->store_dir)) ||
        !(api.q = calloc(api.cfg.queue, sizeof(job)))) {
        free(api.store_dir);
        return rf_err_set(err, ENOMEM, "query API: out of memory");
    }
    pthread_mutex_init(&api.lock, NULL);
    pthread_mutex_init(&api.store_lock, NULL);
    pthread_cond_init(&api.wake, NULL);
    api.stopping = false;
    api.head = api.count = 0;
    int rc = pthread_create(&api.thread, NULL, query_thread, NULL);
    if (rc != 0) {
        free(api.q);
        free(api.store_dir);
        return rf_err_set(err, rc, "query API: cannot start its thread: %s", strerror(rc));
    }
    pthread_setname_np(api.thread, "rf-query"); /* for top, perf and the tests */
    api.started = true;
    for (int i = 0; i < C__COUNT; i++)
        api.metric_ids[i] =
            k_metrics[i].gauge
                ? rf_stats_register_gauge(k_metrics[i].name, k_metrics[i].help, NULL, &api.c[i])
                : rf_stats_register_counter(k_metrics[i].name, k_metrics[i].help, NULL, &api.c[i]);
    rf_http_front_set_extra_routes(add_routes);
    rf_log_info("promapi", "Prometheus query API on the http listeners, over %s", api.store_dir);
    return 0;
}

int rf_promapi_avoid_cpus(const int *cpus, uint32_t n)
{
    if (!api.started)
        return 0;
    cpu_set_t set;
    if (pthread_getaffinity_np(api.thread, sizeof(set), &set) != 0)
        return 0;
    uint32_t avoided = 0;
    for (uint32_t i = 0; i < n; i++)
        if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE && CPU_ISSET(cpus[i], &set)) {
            CPU_CLR(cpus[i], &set);
            avoided++;
        }
    if (!avoided)
        return 0;
    /* Every CPU it may use hosts a worker: any one is as good (left as is,
     * the scheduler spreads it; the query's head read is bounded per poll). */
    if (CPU_COUNT(&set) == 0) {
        rf_log_info("promapi", "the query thread shares the workers' CPUs: every allowed CPU "
                               "hosts a pinned worker");
        return 0;
    }
    int rc = pthread_setaffinity_np(api.thread, sizeof(set), &set);
    if (rc != 0) {
        rf_log_warn("promapi", "cannot keep the query thread off the workers' CPUs: %s",
                    strerror(rc));
        return 0;
    }
    return CPU_COUNT(&set);
}

void rf_promapi_stop(void)
{
    if (!api.started)
        return;
    rf_http_front_set_extra_routes(NULL);
    for (int i = 0; i < C__COUNT; i++)
        if (api.metric_ids[i] >= 0)
            rf_stats_unregister(api.metric_ids[i]);
    pthread_mutex_lock(&api.lock);
    api.stopping = true;
    pthread_cond_signal(&api.wake);
    pthread_mutex_unlock(&api.lock);
    pthread_join(api.thread, NULL);
    rf_series_index_free(api.ix);
    api.ix = NULL;
    free(api.q);
    free(api.store_dir);
    pthread_mutex_destroy(&api.lock);
    pthread_mutex_destroy(&api.store_lock);
    pthread_cond_destroy(&api.wake);
    api.started = false;
}

void rf_promapi_attach_store(rf_store *store)
{
    if (!api.started)
        return;
    pthread_mutex_lock(&api.store_lock);
    api.store = store;
    pthread_mutex_unlock(&api.store_lock);
}
