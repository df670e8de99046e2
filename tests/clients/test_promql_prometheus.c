/* PromQL answers against Prometheus 2.42's own (Debian `prometheus`, not
 * written here). One generated hour of data (counters with resets, gauges,
 * a histogram, a series with a gap longer than the lookback, a label value
 * with a comma) goes into ringflowd as InfluxDB line protocol over its http
 * listener, and into Prometheus as OpenMetrics backfilled with
 * `promtool tsdb create-blocks-from openmetrics`. Then every expression
 * below runs as an instant query at three times (inside the data, just
 * after it within the lookback, past the lookback) and as a range query,
 * on Prometheus through its HTTP API and on ringflow's store through the
 * series index and the PromQL engine; the answers must have the same type,
 * the same label sets, the same timestamps and values within 1e-9
 * relative (1e-12 absolute near zero); an expression Prometheus refuses
 * must be refused with the same error type. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client_util.h"
#include "ingest/http/http.h"
#include "storage/index/index.h"
#include "tools/net/net_addr.h"
#include "ingest/http/http.h"
#include "storage/promql/promql.h"

#define STEP_MS 15000
#define NPOINTS 240 /* one hour */

static int64_t g_base; /* ms, first sample */

/* ---- generated data ---- */

typedef struct gen_series {
    char meas[32], field[32], tags_lp[128]; /* tags as line protocol (escaped) */
    char om_name[48], om_labels[160];       /* OpenMetrics name and {labels} */
    double v[NPOINTS];
    bool present[NPOINTS];
} gen_series;

static gen_series G[64];
static int NG;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

static gen_series *add(const char *meas, const char *field, const char *tags_lp,
                       const char *om_name, const char *om_labels)
{
    gen_series *s = &G[NG++];
    snprintf(s->meas, sizeof(s->meas), "%s", meas);
    snprintf(s->field, sizeof(s->field), "%s", field);
    snprintf(s->tags_lp, sizeof(s->tags_lp), "%s", tags_lp);
    snprintf(s->om_name, sizeof(s->om_name), "%s", om_name);
    snprintf(s->om_labels, sizeof(s->om_labels), "%s", om_labels);
    for (int i = 0; i < NPOINTS; i++)
        s->present[i] = true;
    return s;
}

static void generate(void)
{
    static const char *const jobs[] = {"api", "db"}, *const inst[] = {"a", "b", "c"};
    char lp[128], om[160];
    for (int j = 0; j < 2; j++)
        for (int k = 0; k < 3; k++) {
            snprintf(lp, sizeof(lp), "db=gen,instance=%s,job=%s", inst[k], jobs[j]);
            snprintf(om, sizeof(om), "{db=\"gen\",instance=\"%s\",job=\"%s\"}", inst[k], jobs[j]);
            gen_series *c = add("http", "requests_total", lp, "http_requests_total", om);
            double v = rnd() % 50;
            for (int i = 0; i < NPOINTS; i++) {
                v = rnd() % 90 == 0 ? rnd() % 5 : v + rnd() % 20; /* resets now and then */
                c->v[i] = v;
            }
            gen_series *u = add("up", "value", lp, "up", om);
            for (int i = 0; i < NPOINTS; i++)
                u->v[i] = rnd() % 17 == 0 ? 0 : 1;
        }
    static const char *const hosts[] = {"h1", "h2", "h3", "h4", "h5"};
    static const char *const zones_lp[] = {"eu", "eu", "us", "us\\,west", "eu"};
    static const char *const zones_om[] = {"eu", "eu", "us", "us,west", "eu"};
    for (int h = 0; h < 5; h++) {
        snprintf(lp, sizeof(lp), "db=gen,host=%s,zone=%s", hosts[h], zones_lp[h]);
        snprintf(om, sizeof(om), "{db=\"gen\",host=\"%s\",zone=\"%s\"}", hosts[h], zones_om[h]);
        gen_series *t = add("node", "temp", lp, "node_temp", om);
        for (int i = 0; i < NPOINTS; i++) {
            t->v[i] = 20 + (double)(rnd() % 1000) / 100;
            /* h5 stops for 25 minutes: longer than the 5-minute lookback */
            t->present[i] = h != 4 || i < 100 || i >= 200;
        }
    }
    static const char *const les[] = {"0.1", "0.5", "1", "+Inf"};
    for (int j = 0; j < 2; j++) {
        gen_series *b[4];
        for (int l = 0; l < 4; l++) {
            char field[32];
            snprintf(lp, sizeof(lp), "db=gen,job=%s", jobs[j]);
            snprintf(field, sizeof(field), "le_%s", les[l]);
            snprintf(om, sizeof(om), "{db=\"gen\",job=\"%s\",le=\"%s\"}", jobs[j], les[l]);
            b[l] = add("lat", field, lp, "lat_bucket", om);
        }
        double cum[4] = {0};
        for (int i = 0; i < NPOINTS; i++) {
            double add_n[4];
            for (int l = 0; l < 4; l++)
                add_n[l] = rnd() % 10;
            double run = 0;
            for (int l = 0; l < 4; l++) {
                run += add_n[l];
                cum[l] += run;
                b[l]->v[i] = cum[l];
            }
        }
    }
}

/* ---- HTTP (one request per connection) ---- */

/* ---- loading ---- */

static void load_ringflow(int port)
{
    size_t cap = 1 << 20, len = 0;
    char *body = malloc(cap);
    int lines = 0, status;
    for (int i = 0; i <= NPOINTS; i++) {
        if (i == NPOINTS || lines >= 2000) {
            char *r = cu_http(port, "POST", "/write?db=gen&precision=ms", body, &status);
            if (status != 204)
                fail_msg("/write answered %d: %s", status, r ? r : "(nothing)");
            free(r);
            len = 0;
            lines = 0;
            body[0] = '\0';
            if (i == NPOINTS)
                break;
        }
        for (int s = 0; s < NG; s++) {
            if (!G[s].present[i])
                continue;
            if (len + 512 > cap)
                body = realloc(body, cap *= 2);
            /* the tag db comes from ?db=: the series' own tags without it */
            const char *tags = G[s].tags_lp + strlen("db=gen,");
            len +=
                (size_t)snprintf(body + len, cap - len, "%s,%s %s=%.17g %lld\n", G[s].meas, tags,
                                 G[s].field, G[s].v[i], (long long)(g_base + (int64_t)i * STEP_MS));
            lines++;
        }
    }
    free(body);
}

static void write_openmetrics(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int s = 0; s < NG; s++)
        for (int i = 0; i < NPOINTS; i++)
            if (G[s].present[i]) {
                int64_t t = g_base + (int64_t)i * STEP_MS;
                fprintf(f, "%s%s %.17g %lld.%03lld\n", G[s].om_name, G[s].om_labels, G[s].v[i],
                        (long long)(t / 1000), (long long)(t % 1000));
            }
    fprintf(f, "# EOF\n");
    fclose(f);
}

/* ---- comparison ---- */

static bool close_enough(const char *a, const char *b)
{
    double x = strtod(a, NULL), y = strtod(b, NULL);
    if (isnan(x) || isnan(y))
        return isnan(x) && isnan(y);
    if (isinf(x) || isinf(y))
        return x == y;
    double d = fabs(x - y);
    return d <= 1e-12 || d <= 1e-9 * fmax(fabs(x), fabs(y));
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *metric_key(json_t *m)
{
    return json_dumps(m, JSON_SORT_KEYS | JSON_COMPACT);
}

/* Compares one [t, "v"] pair; fills why. */
static bool same_point(json_t *p, json_t *q, char *why, size_t wl)
{
    double tp = json_number_value(json_array_get(p, 0)),
           tq = json_number_value(json_array_get(q, 0));
    const char *vp = json_string_value(json_array_get(p, 1)),
               *vq = json_string_value(json_array_get(q, 1));
    if (fabs(tp - tq) > 1e-6 || !vp || !vq || !close_enough(vp, vq)) {
        snprintf(why, wl, "point [%.3f,%s] != [%.3f,%s]", tp, vp ? vp : "?", tq, vq ? vq : "?");
        return false;
    }
    return true;
}

static json_t *find_series(json_t *arr, const char *key)
{
    size_t i;
    json_t *s;
    json_array_foreach(arr, i, s)
    {
        char *k = metric_key(json_object_get(s, "metric"));
        bool eq = strcmp(k, key) == 0;
        free(k);
        if (eq)
            return s;
    }
    return NULL;
}

static bool same_result(json_t *prom, json_t *ours, char *why, size_t wl)
{
    const char *tp = json_string_value(json_object_get(prom, "resultType"));
    const char *to = json_string_value(json_object_get(ours, "resultType"));
    if (!tp || !to || strcmp(tp, to) != 0) {
        snprintf(why, wl, "resultType %s != %s", tp ? tp : "?", to ? to : "?");
        return false;
    }
    json_t *rp = json_object_get(prom, "result"), *ro = json_object_get(ours, "result");
    if (strcmp(tp, "scalar") == 0)
        return same_point(rp, ro, why, wl);
    if (json_array_size(rp) != json_array_size(ro)) {
        char *a = json_dumps(rp, JSON_COMPACT), *b = json_dumps(ro, JSON_COMPACT);
        snprintf(why, wl, "%zu series != %zu series\nprometheus: %.600s\nringflow:   %.600s",
                 json_array_size(rp), json_array_size(ro), a, b);
        free(a);
        free(b);
        return false;
    }
    size_t i;
    json_t *s;
    json_array_foreach(rp, i, s)
    {
        char *key = metric_key(json_object_get(s, "metric"));
        json_t *o = find_series(ro, key);
        if (!o) {
            snprintf(why, wl, "series %s missing", key);
            free(key);
            return false;
        }
        bool ok = true;
        if (strcmp(tp, "vector") == 0) {
            ok = same_point(json_object_get(s, "value"), json_object_get(o, "value"), why, wl);
        } else {
            json_t *vp = json_object_get(s, "values"), *vo = json_object_get(o, "values");
            if (json_array_size(vp) != json_array_size(vo)) {
                char *a = json_dumps(vp, JSON_COMPACT), *b = json_dumps(vo, JSON_COMPACT);
                snprintf(why, wl, "%zu points != %zu\nprometheus: %.400s\nringflow:   %.400s",
                         json_array_size(vp), json_array_size(vo), a, b);
                free(a);
                free(b);
                ok = false;
            }
            for (size_t j = 0; ok && j < json_array_size(vp); j++)
                ok = same_point(json_array_get(vp, j), json_array_get(vo, j), why, wl);
        }
        if (!ok) {
            size_t l = strlen(why);
            snprintf(why + l, wl - l, " in %s", key);
        }
        free(key);
        if (!ok)
            return false;
    }
    return true;
}

/* Our answer as Prometheus' "data" object, or {"errorType": ...}. */
static json_t *ours(rf_promql_source *src, const char *q, int64_t start, int64_t end, int64_t step)
{
    rf_promql_expr *e;
    rf_err err;
    if (rf_promql_parse(q, &e, &err) < 0)
        return json_pack("{s:s,s:s}", "errorType", "bad_data", "error", err.msg);
    rf_promql_value *v;
    enum rf_promql_error kind;
    if (rf_promql_eval(e, src, start, end, step, NULL, &v, &kind, &err) < 0) {
        rf_promql_expr_free(e);
        return json_pack("{s:s,s:s}", "errorType", rf_promql_error_name(kind), "error", err.msg);
    }
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    rf_promql_write_json(f, v);
    fclose(f);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("our JSON does not parse (%s): %.300s", je.text, text);
    free(text);
    rf_promql_value_free(v);
    rf_promql_expr_free(e);
    return j;
}

/* Prometheus' answer ("data", or {"errorType", "error"}) from the server
 * on port, by GET, or by POST with a form body when post is set. */
static json_t *api(int port, const char *q, int64_t start, int64_t end, int64_t step, bool post)
{
    char enc[4096], path[8192];
    rf_http_query_encode(q, enc, sizeof(enc));
    if (step)
        snprintf(path, sizeof(path), "/api/v1/query_range?query=%s&start=%.3f&end=%.3f&step=%.3f",
                 enc, (double)start / 1000, (double)end / 1000, (double)step / 1000);
    else
        snprintf(path, sizeof(path), "/api/v1/query?query=%s&time=%.3f", enc, (double)start / 1000);
    int status;
    char *body;
    if (post) {
        char *form = strchr(path, '?');
        *form++ = '\0';
        body = cu_http(port, "POST", path, form, &status);
    } else {
        body = cu_http(port, "GET", path, NULL, &status);
    }
    json_error_t je;
    json_t *j = body ? json_loads(body, 0, &je) : NULL;
    if (!j)
        fail_msg("port %d answered %d: %.300s", port, status, body ? body : "(nothing)");
    json_t *data = json_object_get(j, "data");
    const char *st = json_string_value(json_object_get(j, "status"));
    const char *et = json_string_value(json_object_get(j, "errorType"));
    int want = !et                        ? 200
               : !strcmp(et, "bad_data")  ? 400
               : !strcmp(et, "execution") ? 422
               : !strcmp(et, "timeout")   ? 503
                                          : 500;
    if (!st || (strcmp(st, "success") == 0) != (data != NULL) || status != want)
        fail_msg("port %d: status %d for %s: %.300s", port, status, st ? st : "?", body);
    free(body);
    json_t *out = data ? json_incref(data)
                       : json_pack("{s:O,s:O}", "errorType", json_object_get(j, "errorType"),
                                   "error", json_object_get(j, "error"));
    json_decref(j);
    return out;
}

static json_t *get_json(int port, const char *path, int want_status)
{
    int status;
    char *body = cu_http(port, "GET", path, NULL, &status);
    json_error_t je;
    json_t *j = body ? json_loads(body, 0, &je) : NULL;
    if (!j || status != want_status)
        fail_msg("GET %s on %d: %d, want %d: %.300s", path, port, status, want_status,
                 body ? body : "(nothing)");
    free(body);
    return j;
}

/* An array of strings or of label objects, in a canonical order. */
static char *canonical(json_t *arr)
{
    size_t n = json_array_size(arr), len = 2;
    char **items = calloc(n + 1, sizeof(*items));
    for (size_t i = 0; i < n; i++) {
        items[i] =
            json_dumps(json_array_get(arr, i), JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
        len += strlen(items[i]) + 1;
    }
    qsort(items, n, sizeof(*items), cmp_item);
    char *out = calloc(1, len + 1);
    for (size_t i = 0; i < n; i++) {
        strcat(out, items[i]);
        strcat(out, ";");
        free(items[i]);
    }
    free(items);
    return out;
}

/* /api/v1/series, labels, label values, buildinfo and error codes: the
 * same data and statuses as Prometheus'. */
static void compare_metadata(int prom_port, int port)
{
    static const char *const paths[] = {
        "/api/v1/series?match[]=http_requests_total",
        "/api/v1/"
        "series?match[]=up%7Bjob%3D%22api%22%7D&match[]=node_temp%7Bzone%3D~%22us.%2A%22%7D",
        "/api/v1/labels",
        "/api/v1/labels?match[]=up",
        "/api/v1/label/job/values",
        "/api/v1/label/__name__/values",
        "/api/v1/label/zone/values?match[]=node_temp",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        json_t *a = get_json(prom_port, paths[i], 200), *b = get_json(port, paths[i], 200);
        char *ca = canonical(json_object_get(a, "data")),
             *cb = canonical(json_object_get(b, "data"));
        if (strcmp(ca, cb) != 0)
            fail_msg("%s:\nprometheus: %.500s\nringflow:   %.500s", paths[i], ca, cb);
        free(ca);
        free(cb);
        json_decref(a);
        json_decref(b);
    }
    json_t *bi = get_json(port, "/api/v1/status/buildinfo", 200);
    assert_non_null(json_string_value(json_object_get(json_object_get(bi, "data"), "version")));
    json_decref(bi);
    static const struct {
        const char *path;
        int status;
    } errs[] = {
        {"/api/v1/query?query=sum(", 400},
        {"/api/v1/query_range?query=up&start=10&end=5&step=1", 400},
        {"/api/v1/query_range?query=up&start=0&end=5", 400},
        {"/api/v1/series", 400},
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        json_t *a = get_json(prom_port, errs[i].path, errs[i].status);
        json_t *b = get_json(port, errs[i].path, errs[i].status);
        assert_string_equal(json_string_value(json_object_get(a, "errorType")),
                            json_string_value(json_object_get(b, "errorType")));
        json_decref(a);
        json_decref(b);
    }
}

static void wait_ready(int port, const char *tag)
{
    int status = 0;
    for (int i = 0; i < 100 && status != 200; i++) {
        free(cu_http(port, "GET", "/-/ready", NULL, &status));
        if (status != 200)
            usleep(200 * 1000);
    }
    if (status != 200)
        fail_msg("%s not ready: %s", tag, cu_output(tag, "err"));
}

/* A second Prometheus, with no data of its own, reads ringflow through
 * remote_read (POST /api/v1/read): its answers must be the backfilled one's. */
static int compare_remote_read(int prom_port, int port, int reader_port, const int64_t *instants)
{
    char cfg[512], web[64];
    snprintf(cfg, sizeof(cfg),
             "global: {}\n"
             "remote_read:\n"
             "  - url: http://127.0.0.1:%d/api/v1/read\n"
             "    read_recent: true\n",
             port);
    tproc_write_file("reader.yml", cfg);
    snprintf(web, sizeof(web), "--web.listen-address=127.0.0.1:%d", reader_port);
    pid_t reader =
        cu_spawn("reader", (const char *const[]){"/usr/bin/prometheus", "--config.file=reader.yml",
                                                 "--storage.tsdb.path=./reader-data", web, NULL});
    wait_ready(reader_port, "reader");
    static const char *const q[] = {
        "http_requests_total",
        "sum by (job) (rate(http_requests_total[5m]))",
        "histogram_quantile(0.9, rate(lat_bucket[5m]))",
        "node_temp{zone=~\"us.*\"}",
        "avg_over_time(node_temp[10m])",
        "up == 0",
    };
    int failed = 0;
    for (size_t e = 0; e < sizeof(q) / sizeof(q[0]); e++)
        for (int k = 0; k < 2; k++) {
            int64_t start = k ? g_base + 5 * 60000 : instants[0];
            int64_t end = k ? g_base + 64 * 60000 : start, step = k ? 60000 : 0;
            json_t *a = api(prom_port, q[e], start, end, step, false);
            json_t *b = api(reader_port, q[e], start, end, step, false);
            char why[2048] = "";
            if (!same_result(a, b, why, sizeof(why))) {
                failed++;
                print_message("REMOTE_READ MISMATCH %s: %s\n", q[e], why);
            }
            json_decref(a);
            json_decref(b);
        }
    print_message("remote_read: %zu queries compared, %d mismatched\n",
                  2 * sizeof(q) / sizeof(q[0]), failed);
    cu_stop(reader, 10000);
    return failed;
}

/* Sends a request and returns the socket, without reading. */
static int send_only(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        fail_msg("cannot send to port %d", port);
    return fd;
}

/* The query thread's hand-off under abuse: clients that leave before their
 * answer, and more requests at once than the queue holds (each is answered,
 * 200 or 503, never left hanging), then an ordinary query still works. */
static void api_abuse(int port)
{
    const char *q =
        "/api/v1/query_range?query=sum(rate(http_requests_total%5B5m%5D))&start=0&end=3600&step=10";
    for (int i = 0; i < 5; i++)
        close(send_only(port, q));
    enum {
        N = 80
    };
    int fds[N], ok = 0, busy = 0;
    for (int i = 0; i < N; i++)
        fds[i] = send_only(port, q);
    for (int i = 0; i < N; i++) {
        char buf[256] = "";
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, 30000) == 1 && recv(fds[i], buf, sizeof(buf) - 1, 0) > 0) {
            ok += strncmp(buf, "HTTP/1.1 200", 12) == 0;
            busy += strncmp(buf, "HTTP/1.1 503", 12) == 0;
        }
        close(fds[i]);
    }
    print_message("%d concurrent queries: %d answered 200, %d answered 503\n", N, ok, busy);
    assert_int_equal(ok + busy, N);
    int status;
    free(cu_http(port, "GET", "/api/v1/query?query=vector(1)", NULL, &status));
    assert_int_equal(status, 200);
}

/* `ringflow query --url` prints what `ringflow query` prints from the files,
 * and says so (exit 1) when nothing matched. */
static void cli_over_url(int port)
{
    static const char *const sel[] = {
        "http --field requests_total --where job=api --format csv",
        "lat --where job=db --format csv",
        "node --where zone=~us.* --from 2000-01-01 --format json",
    };
    for (size_t i = 0; i < sizeof(sel) / sizeof(sel[0]); i++) {
        char args[512];
        snprintf(args, sizeof(args), "query --url http://127.0.0.1:%d %s", port, sel[i]);
        char *a = cu_query(sel[i]), *b = cu_ringflow(args);
        size_t d = 0;
        while (a[d] && a[d] == b[d])
            d++;
        if (a[d] || b[d] || strlen(a) < 40) /* something was printed, and the same */
            fail_msg("ringflow %s differs from the files at byte %zu (%zu and %zu bytes):\n%.300s\n"
                     "from the files:\n%.300s",
                     args, d, strlen(b), strlen(a), b + d, a + d);
        free(a);
        free(b);
    }
    char cmd[512];
    int status;
    snprintf(cmd, sizeof(cmd), "'%s' query --url http://127.0.0.1:%d nosuch 2>&1",
             getenv("RINGFLOW"), port);
    char *out = tproc_shell(cmd, &status);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "no series matched"));
    free(out);
}

static const char *const EXPRS[] = {
    "http_requests_total",
    "http_requests_total{job=\"api\"}",
    "http_requests_total{job!=\"api\"}",
    "http_requests_total{instance=~\"a|b\"}",
    "http_requests_total{instance!~\"a\"}",
    "{__name__=~\"node_.*\"}",
    "node_temp{zone=\"us,west\"}",
    "node_temp{zone=~\"us.*\"}",
    "up",
    "up == 0",
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[30s])",
    "irate(http_requests_total[1m])",
    "increase(http_requests_total[10m])",
    "delta(node_temp[5m])",
    "idelta(node_temp[2m])",
    "rate(http_requests_total[1m] offset 5m)",
    "http_requests_total offset 10m",
    "http_requests_total @ AT20",
    "rate(http_requests_total[5m] @ AT30)",
    "sum(node_temp @ end())",
    "avg_over_time(node_temp[10m])",
    "min_over_time(node_temp[10m])",
    "max_over_time(node_temp[10m])",
    "sum_over_time(node_temp[10m])",
    "count_over_time(node_temp[10m])",
    "stddev_over_time(node_temp[10m])",
    "stdvar_over_time(node_temp[10m])",
    "last_over_time(node_temp[10m])",
    "quantile_over_time(0.9, node_temp[10m])",
    "present_over_time(node_temp[10m])",
    "changes(up[30m])",
    "resets(http_requests_total[30m])",
    "max_over_time(up[1h])",
    "sum(http_requests_total)",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum without (instance) (http_requests_total)",
    "avg by (zone) (node_temp)",
    "min by (zone) (node_temp)",
    "max(node_temp)",
    "count by (job) (up)",
    "stddev(node_temp)",
    "stdvar by (zone) (node_temp)",
    "quantile(0.75, node_temp)",
    "topk(3, node_temp)",
    "bottomk(2, node_temp)",
    "topk by (job) (1, rate(http_requests_total[5m]))",
    "count_values(\"v\", up)",
    "group by (job) (http_requests_total)",
    "http_requests_total / 10",
    "2 * node_temp - 1",
    "node_temp % 3",
    "node_temp ^ 2",
    "-http_requests_total",
    "node_temp > 25",
    "25 < node_temp",
    "node_temp > bool 25",
    "1 + 2 * 3",
    "http_requests_total{job=\"api\"} - on(instance) http_requests_total{job=\"db\"}",
    "http_requests_total{job=\"api\"} / ignoring(job) http_requests_total{job=\"db\"}",
    "http_requests_total * on(job, instance) group_left up",
    "up * on(job, instance) group_right http_requests_total",
    "node_temp * on(zone) group_left(job) group by (zone, job) (label_replace(up, \"zone\", "
    "\"eu\", \"\", \"\"))",
    "http_requests_total and on(instance) (up == 1)",
    "http_requests_total unless on(job, instance) (up == 0)",
    "node_temp{zone=\"eu\"} or node_temp",
    "http_requests_total + on(job) up",
    "histogram_quantile(0.9, rate(lat_bucket[5m]))",
    "histogram_quantile(0.5, sum by (le) (rate(lat_bucket[10m])))",
    "abs(delta(node_temp[5m]))",
    "ceil(node_temp)",
    "floor(node_temp)",
    "round(node_temp)",
    "round(node_temp, 0.5)",
    "clamp(node_temp, 22, 27)",
    "clamp_min(node_temp, 25)",
    "clamp_max(node_temp, 25)",
    "exp(node_temp / 10)",
    "ln(node_temp)",
    "sqrt(node_temp)",
    "sort(node_temp)",
    "sort_desc(http_requests_total)",
    "time()",
    "timestamp(node_temp)",
    "vector(time())",
    "scalar(sum(up))",
    "label_replace(up, \"inst\", \"x-$1\", \"instance\", \"(.*)\")",
    "label_join(up, \"ji\", \":\", \"job\", \"instance\")",
    "sum(rate(http_requests_total[5m])) by (instance) > 0.5",
    "topk(1, sum by (job) (http_requests_total))",
    "count(node_temp > 25)",
    "avg(rate(http_requests_total[2m])) by (job)",
};

static void test_promql_prometheus(void **state)
{
    (void)state;
    if (access("/usr/bin/prometheus", X_OK) != 0 || access("/usr/bin/promtool", X_OK) != 0) {
        print_message("prometheus or promtool not installed: skipped\n");
        exit(77);
    }
    g_base = (cu_now_ns() / 1000000 - 3 * 3600 * 1000) / 60000 * 60000;
    generate();
    int port = tproc_port_base() + 3, web_port = port + 1;

    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");
    /* Nothing written yet: an empty answer, not an error. */
    json_t *empty = api(port, "up", g_base, g_base, 0, false);
    assert_int_equal(json_array_size(json_object_get(empty, "result")), 0);
    json_decref(empty);
    load_ringflow(port);
    cu_daemon_stop(&d); /* writes every block */
    /* Started again on the same store: the query API reads what was written. */
    cu_daemon_start_pipeline(&d, listeners, "", "");

    char om[1024];
    snprintf(om, sizeof(om), "%s/data.om", tproc_dir());
    write_openmetrics(om);
    free(tproc_shell_ok(
        "promtool tsdb create-blocks-from openmetrics data.om prom-data > /dev/null"));
    tproc_write_file("prometheus.yml", "global: {}\n");
    char web[64];
    snprintf(web, sizeof(web), "--web.listen-address=127.0.0.1:%d", web_port);
    pid_t prom = cu_spawn(
        "prometheus", (const char *const[]){"/usr/bin/prometheus", "--config.file=prometheus.yml",
                                            "--storage.tsdb.path=./prom-data", web, NULL});

    char store[1024];
    snprintf(store, sizeof(store), "%s/data/store", tproc_dir());
    rf_series_index *ix;
    rf_err err;
    if (rf_series_index_open(store, 0, &ix, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(rf_series_index_count(ix), NG);
    rf_promql_source src;
    rf_series_index_source(ix, &src);

    wait_ready(web_port, "prometheus");
    api_abuse(port);
    cli_over_url(port);

    const int64_t min = 60000;
    const int64_t instants[] = {g_base + 30 * min + 7000, g_base + 62 * min, g_base + 66 * min};
    int compared = 0, failed = 0;
    for (size_t e = 0; e < sizeof(EXPRS) / sizeof(EXPRS[0]); e++) {
        char q[512], at[32];
        snprintf(q, sizeof(q), "%s", EXPRS[e]);
        for (const char *tag = "AT20"; tag; tag = strcmp(tag, "AT20") == 0 ? "AT30" : NULL) {
            char *p = strstr(q, tag);
            if (p) {
                snprintf(at, sizeof(at), "%.3f",
                         (double)(g_base + (tag[2] == '2' ? 20 : 30) * min) / 1000);
                char rest[512];
                snprintf(rest, sizeof(rest), "%s", p + 4);
                snprintf(p, sizeof(q) - (size_t)(p - q), "%s%s", at, rest);
            }
        }
        for (int k = 0; k < 5; k++) {
            int64_t start = k < 3 ? instants[k] : g_base + 5 * min;
            int64_t end = k < 3 ? start : g_base + 64 * min;
            int64_t step = k < 3 ? 0 : k == 3 ? min : 37000;
            json_t *a = api(web_port, q, start, end, step, false);
            /* In-process for the first instant, over HTTP (GET, or a form POST for
             * the second range) otherwise: the engine alone and the API. */
            json_t *b =
                k == 0 ? ours(&src, q, start, end, step) : api(port, q, start, end, step, k == 4);
            char why[2048] = "";
            const char *ea = json_string_value(json_object_get(a, "errorType"));
            const char *eb = json_string_value(json_object_get(b, "errorType"));
            bool ok =
                ea || eb ? ea && eb && strcmp(ea, eb) == 0 : same_result(a, b, why, sizeof(why));
            if (!ok && (ea || eb))
                snprintf(why, sizeof(why), "error %s (%s) != %s (%s)", ea ? ea : "none",
                         json_string_value(json_object_get(a, "error")), eb ? eb : "none",
                         json_string_value(json_object_get(b, "error")));
            if (!ok) {
                failed++;
                print_message("MISMATCH %s [%s]: %s\n", q, k < 3 ? "instant" : "range", why);
            }
            compared++;
            json_decref(a);
            json_decref(b);
        }
    }
    print_message("%d queries compared over %zu expressions, %d mismatched\n", compared,
                  sizeof(EXPRS) / sizeof(EXPRS[0]), failed);
    rf_series_index_free(ix);
    compare_metadata(web_port, port);
    failed += compare_remote_read(web_port, port, web_port + 1, instants);
    cu_stop(prom, 10000);
    cu_daemon_stop(&d);
    assert_int_equal(failed, 0);
}

int main(void)
{
    return cu_run_test("promql-prom", "promql_prometheus", test_promql_prometheus);
}
