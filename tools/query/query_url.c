/* ringflow query --url: the same selection of raw points, read from a
 * running engine's Prometheus query API (storage/promapi) instead of the
 * files. The measurement, --field and --where become a PromQL range
 * selector over [--from, --to) through the naming rule
 * (rf_promql_metric_name), asked as one instant query; the answer is turned
 * back into series of (measurement, field, tags) and printed by the same
 * writer as the files' (storage/query). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "ingest/http/http.h"
#include "storage/promql/promql.h"
#include "tools/net/net_addr.h"
#include "tools/query/query_cli.h"

/* A PromQL string literal of s (quotes and backslashes escaped). */
static void put_quoted(char *out, size_t cap, size_t *o, const char *s)
{
    *o += (size_t)snprintf(out + *o, *o < cap ? cap - *o : 0, "\"");
    for (; *s && *o + 3 < cap; s++) {
        if (*s == '"' || *s == '\\')
            out[(*o)++] = '\\';
        out[(*o)++] = *s;
    }
    *o += (size_t)snprintf(out + *o, *o < cap ? cap - *o : 0, "\"");
}

/* Backslashes before the characters a regular expression treats specially. */
static void put_regex_quoted(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (strchr(".^$|?*+()[]{}\\", *s))
            out[o++] = '\\';
        out[o++] = *s;
    }
    out[o] = '\0';
}

static int build_selector(const rf_query *q, char *out, size_t cap)
{
    static const char *const ops[] = {"=", "!=", "=~", "!~"};
    size_t o = (size_t)snprintf(out, cap, "{__name__");
    if (q->field) {
        char name[1024];
        const char *le;
        if (rf_promql_metric_name(q->measurement, q->field, name, sizeof(name), &le) < 0)
            return -ENOSPC;
        o += (size_t)snprintf(out + o, cap - o, "=");
        put_quoted(out, cap, &o, name);
        if (le) {
            o += (size_t)snprintf(out + o, cap - o, ",le=");
            put_quoted(out, cap, &o, le);
        }
    } else {
        /* Every field: the bare name (field value) or the name and a suffix. */
        char re[1024], pattern[2200];
        put_regex_quoted(re, sizeof(re), q->measurement);
        snprintf(pattern, sizeof(pattern), "%s(_.+)?", re);
        o += (size_t)snprintf(out + o, cap - o, "=~");
        put_quoted(out, cap, &o, pattern);
    }
    for (uint32_t i = 0; i < q->n_matchers && o < cap; i++) {
        o +=
            (size_t)snprintf(out + o, cap - o, ",%s%s", q->matchers[i].tag, ops[q->matchers[i].op]);
        put_quoted(out, cap, &o, q->matchers[i].value);
    }
    o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "}");
    return o < cap ? 0 : -ENOSPC;
}

/* GET path from http://HOST:PORT; the body (malloc'd) and *status. */
static char *http_get(const char *url, const char *path, int *status, rf_err *err)
{
    char host[256], port[32];
    const char *hp = strncmp(url, "http://", 7) == 0 ? url + 7 : NULL;
    char hostport[512];
    if (!hp) {
        rf_err_set(err, EINVAL, "--url wants http://HOST:PORT, got '%s'", url);
        return NULL;
    }
    snprintf(hostport, sizeof(hostport), "%s", hp);
    hostport[strcspn(hostport, "/")] = '\0';
    if (rf_net_split_host_port(hostport, host, sizeof(host), port, sizeof(port)) < 0) {
        rf_err_set(err, EINVAL, "--url wants http://HOST:PORT, got '%s'", url);
        return NULL;
    }
    rf_net_socket_opts o = {.socktype = SOCK_STREAM};
    int fd = rf_net_socket(host, port, &o, NULL, NULL, err);
    if (fd < 0)
        return NULL;
    size_t need = strlen(path) + strlen(hostport) + 64;
    char *req = malloc(need);
    if (!req) {
        close(fd);
        rf_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(req, need, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, hostport);
    bool sent = send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req);
    free(req);
    /* The engine answers and closes; 5 minutes without a byte is a failure
     * (its own query timeout is 2). */
    size_t len;
    char *buf = sent ? rf_net_read_all(fd, 300000, &len) : NULL;
    close(fd);
    *status = 0;
    if (!buf) {
        rf_err_set(err, EIO, "%s: no answer", url);
        return NULL;
    }
    sscanf(buf, "HTTP/1.%*d %d", status);
    char *body = strstr(buf, "\r\n\r\n");
    if (!body) {
        free(buf);
        rf_err_set(err, EIO, "%s: no answer", url);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

/* One series of the answer as a set of the result (raw points). */
static int to_set(const rf_query *q, json_t *series, rf_query_set *s)
{
    json_t *metric = json_object_get(series, "metric"), *values = json_object_get(series, "values");
    const char *name = json_string_value(json_object_get(metric, "__name__"));
    const char *le = json_string_value(json_object_get(metric, "le"));
    size_t ml = strlen(q->measurement);
    char field[1024];
    if (q->field)
        snprintf(field, sizeof(field), "%s", q->field);
    else if (!name || strcmp(name, q->measurement) == 0)
        snprintf(field, sizeof(field), "value");
    else if (le && strcmp(name + ml, "_bucket") == 0)
        snprintf(field, sizeof(field), "le_%s", le);
    else
        snprintf(field, sizeof(field), "%s", name + ml + 1);
    bool le_is_field = strncmp(field, "le_", 3) == 0;
    memset(s, 0, sizeof(*s));
    s->measurement = strdup(q->measurement);
    s->field = strdup(field);
    s->value_type = 0; /* RF_VALUE_F64 */
    size_t nl = json_object_size(metric), n = json_array_size(values);
    s->tags = calloc(nl ? nl : 1, sizeof(*s->tags));
    s->ts = malloc((n ? n : 1) * sizeof(*s->ts));
    s->bits = malloc((n ? n : 1) * sizeof(*s->bits));
    if (!s->measurement || !s->field || !s->tags || !s->ts || !s->bits)
        return -ENOMEM;
    const char *key;
    json_t *val;
    json_object_foreach(metric, key, val)
    {
        if (strcmp(key, "__name__") == 0 || (le_is_field && strcmp(key, "le") == 0))
            continue;
        s->tags[s->n_tags].key = strdup(key);
        s->tags[s->n_tags].value = dup_or_empty(json_string_value(val));
        if (!s->tags[s->n_tags++].key)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(values, i);
        double t = json_number_value(json_array_get(p, 0));
        const char *v = json_string_value(json_array_get(p, 1));
        double d = v ? strtod(v, NULL) : NAN;
        s->ts[s->n] = (int64_t)llround(t * 1000) * 1000000;
        memcpy(&s->bits[s->n++], &d, sizeof(d));
    }
    return 0;
}

static int cmp_set(const void *a, const void *b)
{
    const rf_query_set *x = a, *y = b;
    int c = strcmp(x->field, y->field);
    for (uint32_t i = 0; !c && i < x->n_tags && i < y->n_tags; i++)
        if (!(c = strcmp(x->tags[i].key, y->tags[i].key)))
            c = strcmp(x->tags[i].value, y->tags[i].value);
    return c ? c : (int)x->n_tags - (int)y->n_tags;
}

int rf_cli_query_url(const char *url, const rf_query *q, enum rf_query_format fmt)
{
    if (q->n_aggs) {
        fprintf(stderr,
                "ringflow query: --agg with --url is not supported yet; send PromQL to "
                "%s/api/v1/query_range instead\n",
                url);
        return 2;
    }
    int64_t end_ms =
        q->end_ns == INT64_MAX ? rf_clock_wall_ns() / 1000000 + 1 : q->end_ns / 1000000;
    int64_t start_ms = q->start_ns == INT64_MIN ? 0 : q->start_ns / 1000000;
    int64_t at = end_ms - 1, range = at - start_ms > 0 ? at - start_ms : 1; /* [start, end) */
    char sel[4096], expr[4200], enc[13000], path[13200];
    if (build_selector(q, sel, sizeof(sel)) < 0) {
        fprintf(stderr, "ringflow query: the selection is too long\n");
        return 2;
    }
    snprintf(expr, sizeof(expr), "%s[%lldms]", sel, (long long)range);
    rf_http_query_encode(expr, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/query?query=%s&time=%lld.%03lld", enc,
             (long long)(at / 1000), (long long)(at % 1000));
    rf_err err;
    rf_err_clear(&err);
    int status;
    char *body = http_get(url, path, &status, &err);
    if (!body) {
        fprintf(stderr, "ringflow query: %s\n", err.msg);
        return 1;
    }
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    json_t *result = json_object_get(json_object_get(j, "data"), "result");
    if (status != 200 || !json_is_array(result)) {
        const char *e = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "ringflow query: %s answered %d: %s\n", url, status, e ? e : body);
        json_decref(j);
        free(body);
        return 1;
    }
    free(body);
    rf_query_result *r = calloc(1, sizeof(*r));
    size_t n = json_array_size(result);
    int rc = r && (r->sets = calloc(n ? n : 1, sizeof(*r->sets))) ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++, r->n_sets++)
        rc = to_set(q, json_array_get(result, i), &r->sets[i]);
    json_decref(j);
    if (rc < 0) { /* n_sets counts the set that failed half-way: it is freed too */
        rf_query_result_free(r);
        fprintf(stderr, "ringflow query: out of memory\n");
        return 1;
    }
    if (r->n_sets)
        qsort(r->sets, r->n_sets, sizeof(*r->sets), cmp_set);
    rc = rf_query_write(stdout, r, fmt) < 0 ? 1 : 0;
    if (r->n_sets == 0) {
        fprintf(stderr,
                "ringflow query: no series matched %s at %s (the engine's query API sees every "
                "point it accepted, in memory or written)\n",
                sel, url);
        rc = 1;
    }
    rf_query_result_free(r);
    return rc;
}
