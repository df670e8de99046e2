/* PromQL engine (storage/promql) over an in-memory source: the parser's
 * refusals, and every operator, aggregation and function against values
 * worked out by hand from the series below (Prometheus 2.42 semantics:
 * extrapolation, counter resets, lookback, offset and @). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/promql/promql.h"

#define NS 41 /* samples 0..40, every 15 s from t = 0 */

typedef struct mseries {
    const char *labels[8]; /* name, value, ..., NULL; sorted by name */
    double (*value)(int i);
    rf_promql_labels l;
    char buf[256];
    int64_t t[NS];
    double v[NS];
} mseries;

static double api_a(int i)
{
    return 10.0 * i;
}
static double api_b(int i)
{
    return i < 20 ? 5.0 * i : 5.0 * (i - 20);
} /* reset at 300 s */
static double db_a(int i)
{
    return i;
}
static double temp_x(int i)
{
    return 20 + (i % 3);
}
static double temp_y(int i)
{
    return i % 2 ? -1.5 : 0;
}
static double one(int i)
{
    (void)i;
    return 1;
}
static double b01(int i)
{
    (void)i;
    return 10;
}
static double b1(int i)
{
    (void)i;
    return 30;
}
static double binf(int i)
{
    (void)i;
    return 40;
}

static mseries M[] = {
    {{"__name__", "http_requests_total", "instance", "a", "job", "api", NULL},
     api_a,
     {0},
     {0},
     {0},
     {0}},
    {{"__name__", "http_requests_total", "instance", "b", "job", "api", NULL},
     api_b,
     {0},
     {0},
     {0},
     {0}},
    {{"__name__", "http_requests_total", "instance", "a", "job", "db", NULL},
     db_a,
     {0},
     {0},
     {0},
     {0}},
    {{"__name__", "temp", "room", "x", NULL}, temp_x, {0}, {0}, {0}, {0}},
    {{"__name__", "temp", "room", "y", NULL}, temp_y, {0}, {0}, {0}, {0}},
    {{"__name__", "info", "instance", "a", "team", "red", NULL}, one, {0}, {0}, {0}, {0}},
    {{"__name__", "info", "instance", "b", "team", "blue", NULL}, one, {0}, {0}, {0}, {0}},
    {{"__name__", "req_bucket", "le", "0.1", NULL}, b01, {0}, {0}, {0}, {0}},
    {{"__name__", "req_bucket", "le", "1", NULL}, b1, {0}, {0}, {0}, {0}},
    {{"__name__", "req_bucket", "le", "+Inf", NULL}, binf, {0}, {0}, {0}, {0}},
};
#define NM (sizeof(M) / sizeof(M[0]))

static int src_select(void *user, const rf_promql_matcher *m, size_t n_m, int64_t mint,
                      int64_t maxt, rf_promql_series **out, size_t *n_out, rf_err *err)
{
    (void)user;
    (void)err;
    rf_promql_series *s = calloc(NM, sizeof(*s));
    size_t n = 0;
    for (size_t i = 0; i < NM; i++) {
        bool ok = true;
        for (size_t j = 0; j < n_m && ok; j++)
            ok = rf_promql_matcher_match(&m[j], M[i].l);
        if (!ok)
            continue;
        size_t lo = 0;
        while (lo < NS && M[i].t[lo] < mint)
            lo++;
        size_t hi = lo;
        while (hi < NS && M[i].t[hi] <= maxt)
            hi++;
        s[n++] = (rf_promql_series){M[i].l, M[i].t + lo, M[i].v + lo, hi - lo};
    }
    *out = s;
    *n_out = n;
    return 0;
}

static void src_release(void *user, rf_promql_series *s, size_t n)
{
    (void)user;
    (void)n;
    free(s);
}

static const rf_promql_source SRC = {src_select, src_release, NULL};

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < NM; i++) {
        size_t o = 0;
        for (int k = 0; M[i].labels[k]; k++) {
            size_t n = strlen(M[i].labels[k]) + 1;
            memcpy(M[i].buf + o, M[i].labels[k], n);
            o += n;
        }
        M[i].l = (rf_promql_labels){M[i].buf, (uint32_t)o};
        for (int k = 0; k < NS; k++) {
            M[i].t[k] = k * 15000;
            M[i].v[k] = M[i].value(k);
        }
    }
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The result as sorted lines "{a=b,...} value" joined by ';' (vector), or
 * "value" (scalar); "ERR <type>: <message>" on error. */
static char *run_range(const char *q, int64_t start, int64_t end, int64_t step)
{
    static char out[8192];
    rf_promql_expr *e;
    rf_err err;
    if (rf_promql_parse(q, &e, &err) < 0) {
        snprintf(out, sizeof(out), "ERR bad_data: %s", err.msg);
        return out;
    }
    rf_promql_value *v;
    enum rf_promql_error kind;
    if (rf_promql_eval(e, &SRC, start, end, step, NULL, &v, &kind, &err) < 0) {
        snprintf(out, sizeof(out), "ERR %s: %s", rf_promql_error_name(kind), err.msg);
        rf_promql_expr_free(e);
        return out;
    }
    char *lines[64];
    size_t n = 0;
    if (v->type == RF_PROMQL_SCALAR) {
        char b[64];
        rf_promql_format_value(v->scalar.v, b, sizeof(b));
        lines[n++] = strdup(b);
    } else if (v->type == RF_PROMQL_STRING) {
        lines[n++] = strdup(v->string);
    }
    for (size_t i = 0; i < v->n_series && n < 64; i++) {
        char b[1024];
        size_t o = (size_t)snprintf(b, sizeof(b), "{");
        const char *p = v->series[i].labels.buf, *end = p + v->series[i].labels.len;
        while (p < end) {
            const char *val = p + strlen(p) + 1;
            o += (size_t)snprintf(b + o, sizeof(b) - o, "%s%s=%s", o > 1 ? "," : "", p, val);
            p = val + strlen(val) + 1;
        }
        o += (size_t)snprintf(b + o, sizeof(b) - o, "}");
        for (size_t j = 0; j < v->series[i].n; j++) {
            char num[64];
            rf_promql_format_value(v->series[i].points[j].v, num, sizeof(num));
            if (step)
                o += (size_t)snprintf(b + o, sizeof(b) - o, " %lld:%s",
                                      (long long)(v->series[i].points[j].t / 1000), num);
            else
                o += (size_t)snprintf(b + o, sizeof(b) - o, " %s", num);
        }
        lines[n++] = strdup(b);
    }
    qsort(lines, n, sizeof(*lines), cmp_line);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, ";");
        strncat(out, lines[i], sizeof(out) - strlen(out) - 1);
        free(lines[i]);
    }
    rf_promql_value_free(v);
    rf_promql_expr_free(e);
    return out;
}

static char *run(const char *q, double t_sec)
{
    int64_t t = (int64_t)llround(t_sec * 1000);
    return run_range(q, t, t, 0);
}

#define EXPECT(q, t, want) assert_string_equal(run(q, t), want)

typedef struct tcase {
    const char *q;
    double t;
    const char *want;
} tcase;

static void run_cases(const tcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(run(c[i].q, c[i].t), c[i].want) != 0)
            fail_msg("%s at %g: got \"%s\", want \"%s\"", c[i].q, c[i].t, run(c[i].q, c[i].t),
                     c[i].want);
}
#define RUN(cases) run_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void expect_error(const char *q, const char *kind, const char *part)
{
    const char *r = run(q, 600);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "ERR %s:", kind);
    if (strncmp(r, prefix, strlen(prefix)) != 0 || !strstr(r, part))
        fail_msg("%s: got \"%s\", want %s containing \"%s\"", q, r, kind, part);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("sum(", "bad_data", "parse error");
    expect_error("rate(http_requests_total)", "bad_data", "range vector");
    expect_error("http_requests_total[5m:1m]", "bad_data", "subqueries are not supported");
    expect_error("absent(http_requests_total)", "bad_data", "function \"absent\" is not supported");
    expect_error("nosuch(http_requests_total)", "bad_data", "unknown function");
    expect_error("http_requests_total offset -5m", "bad_data", "negative offsets");
    expect_error("1 > 2", "bad_data", "BOOL");
    expect_error("{}", "bad_data", "non-empty matcher");
    expect_error("{job=~\".*\"}", "bad_data", "non-empty matcher");
    expect_error("{job=~\"(\"}", "bad_data", "regular expression");
    expect_error("http_requests_total[5x]", "bad_data", "bad duration");
    expect_error("1 and 2", "bad_data", "set operator");
    expect_error("sum(http_requests_total) by", "bad_data", "expected");
    expect_error("topk(http_requests_total)", "bad_data", "");
    expect_error("foo{a=\"b\"", "bad_data", "");
    expect_error("\"unterminated", "bad_data", "unterminated");
    expect_error("rate(http_requests_total[5m]) + ", "bad_data", "");
}

static void test_selectors(void **state)
{
    (void)state;
    static const tcase cases[] = {
        {"http_requests_total{job=\"api\",instance=\"a\"}", 600,
         "{__name__=http_requests_total,instance=a,job=api} 400"},
        {"http_requests_total{job!=\"api\"}", 600,
         "{__name__=http_requests_total,instance=a,job=db} 40"},
        {"http_requests_total{instance=~\"a|c\",job=~\"d.\"}", 600,
         "{__name__=http_requests_total,instance=a,job=db} 40"},
        /* Regexes are anchored: "p" does not match "api". */
        {"http_requests_total{job=~\"p\"}", 600, ""},
        {"http_requests_total{job!~\"a.*\"}", 600,
         "{__name__=http_requests_total,instance=a,job=db} 40"},
        {"{__name__=~\"temp|info\",room=\"x\"}", 600, "{__name__=temp,room=x} 21"},
        /* Lookback: the last sample (600 s) is seen until 900 s inclusive. */
        {"temp{room=\"x\"}", 900, "{__name__=temp,room=x} 21"},
        {"temp{room=\"x\"}", 900.001, ""},
        /* Between samples: the latest at or before the time. */
        {"temp{room=\"x\"}", 29.999, "{__name__=temp,room=x} 21"},
        {"temp{room=\"x\"}", 30, "{__name__=temp,room=x} 22"},
        {"http_requests_total{job=\"api\",instance=\"a\"} offset 5m", 600,
         "{__name__=http_requests_total,instance=a,job=api} 200"},
        {"http_requests_total{job=\"api\",instance=\"a\"} @ 300", 600,
         "{__name__=http_requests_total,instance=a,job=api} 200"},
        {"http_requests_total{job=\"api\",instance=\"a\"} @ 300 offset 1m", 0,
         "{__name__=http_requests_total,instance=a,job=api} 160"},
        {"http_requests_total{job=\"db\"}[45s]", 600,
         "{__name__=http_requests_total,instance=a,job=db} 37 38 39 40"},
    };
    RUN(cases);
}

static void test_rates(void **state)
{
    (void)state;
    /* Samples at both ends of the window: no extrapolation. */
    static const tcase cases[] = {
        {"increase(http_requests_total{job=\"api\",instance=\"a\"}[1m])", 600,
         "{instance=a,job=api} 40"},
        {"rate(http_requests_total{job=\"api\",instance=\"a\"}[1m])", 600,
         "{instance=a,job=api} 0.6666666666666666"},
        /* 555..600 in [550, 610]: 5 s and 10 s to the ends, under 1.1 x 15 s. */
        {"increase(http_requests_total{job=\"api\",instance=\"a\"}[1m])", 610,
         "{instance=a,job=api} 40"},
        /* A counter reset inside the window (95 -> 0). */
        {"increase(http_requests_total{instance=\"b\"}[1m])", 315, "{instance=b,job=api} 15"},
        {"resets(http_requests_total{instance=\"b\"}[1m])", 315, "{instance=b,job=api} 1"},
        {"changes(temp{room=\"x\"}[1m])", 600, "{room=x} 4"},
        /* Zero point: the counter starts at 0 at t=0, not extrapolated below. */
        {"increase(http_requests_total{job=\"db\"}[1m])", 20,
         "{instance=a,job=db} 1.3333333333333333"},
        /* delta is not a counter: the drop is a drop. */
        {"delta(http_requests_total{instance=\"b\"}[1m])", 315, "{instance=b,job=api} -80"},
        {"irate(http_requests_total{instance=\"b\"}[1m])", 300, "{instance=b,job=api} 0"},
        {"irate(http_requests_total{job=\"api\",instance=\"a\"}[1m])", 600,
         "{instance=a,job=api} 0.6666666666666666"},
        {"idelta(temp{room=\"y\"}[1m])", 600, "{room=y} 1.5"},
        /* One sample in the window: no rate. */
        {"rate(temp{room=\"x\"}[10s])", 600, ""},
    };
    RUN(cases);
}

static void test_over_time(void **state)
{
    (void)state;
    const char *w = "(temp{room=\"x\"}[1m])"; /* 20 21 22 20 21 at 540..600 */
    char q[128];
    static const struct {
        const char *fn, *want;
    } c[] = {
        {"avg_over_time", "{room=x} 20.8"},  {"min_over_time", "{room=x} 20"},
        {"max_over_time", "{room=x} 22"},    {"sum_over_time", "{room=x} 104"},
        {"count_over_time", "{room=x} 5"},   {"stdvar_over_time", "{room=x} 0.5599999999999999"},
        {"present_over_time", "{room=x} 1"}, {"last_over_time", "{__name__=temp,room=x} 21"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        snprintf(q, sizeof(q), "%s%s", c[i].fn, w);
        EXPECT(q, 600, c[i].want);
    }
    static const tcase cases[] = {
        {"quantile_over_time(0.5, temp{room=\"x\"}[1m])", 600, "{room=x} 21"},
        {"stddev_over_time(temp{room=\"y\"}[30s])", 600, "{room=y} 0.7071067811865476"},
    };
    RUN(cases);
}

static void test_aggregations(void **state)
{
    (void)state;
    static const tcase cases[] = {
        {"sum(http_requests_total)", 600, "{} 540"},
        {"sum by (job) (http_requests_total)", 600, "{job=api} 500;{job=db} 40"},
        {"sum(http_requests_total) by (job)", 600, "{job=api} 500;{job=db} 40"},
        {"sum without (instance) (http_requests_total)", 600, "{job=api} 500;{job=db} 40"},
        {"avg by (job) (http_requests_total)", 600, "{job=api} 250;{job=db} 40"},
        {"min(http_requests_total)", 600, "{} 40"},
        {"max by (instance) (http_requests_total)", 600, "{instance=a} 400;{instance=b} 100"},
        {"count(http_requests_total)", 600, "{} 3"},
        {"group by (job) (http_requests_total)", 600, "{job=api} 1;{job=db} 1"},
        {"stddev(temp)", 600, "{} 10.5"},
        {"stdvar(temp)", 600, "{} 110.25"},
        {"quantile(0.5, http_requests_total)", 600, "{} 100"},
        {"topk(2, http_requests_total)", 600,
         "{__name__=http_requests_total,instance=a,job=api} 400;"
         "{__name__=http_requests_total,instance=b,job=api} 100"},
        {"bottomk(1, http_requests_total) by (job)", 600,
         "{__name__=http_requests_total,instance=a,job=db} 40;"
         "{__name__=http_requests_total,instance=b,job=api} 100"},
        {"count_values(\"v\", info)", 600, "{v=1} 2"},
        {"count_values by (team) (\"v\", info)", 600, "{team=blue,v=1} 1;{team=red,v=1} 1"},
        {"topk(0, http_requests_total)", 600, ""},
    };
    RUN(cases);
}

static void test_binary(void **state)
{
    (void)state;
    static const tcase cases[] = {
        {"1 + 2 * 3 ^ 2 ^ 0.5 - 4 % 3", 0, "9.457608775674831"},
        {"-2 ^ 2", 0, "-4"},
        {"2 > bool 1", 0, "1"},
        {"http_requests_total > 50", 600,
         "{__name__=http_requests_total,instance=a,job=api} 400;"
         "{__name__=http_requests_total,instance=b,job=api} 100"},
        {"50 < http_requests_total{job=\"api\"}", 600,
         "{__name__=http_requests_total,instance=a,job=api} 400;"
         "{__name__=http_requests_total,instance=b,job=api} 100"},
        {"http_requests_total > bool 50", 600,
         "{instance=a,job=api} 1;{instance=a,job=db} 0;{instance=b,job=api} 1"},
        {"http_requests_total{job=\"api\"} / 10", 600,
         "{instance=a,job=api} 40;{instance=b,job=api} 10"},
        {"-temp", 600, "{room=x} -21;{room=y} -0"},
        {"http_requests_total{job=\"api\"} - on(instance) http_requests_total{job=\"db\"}", 600,
         "{instance=a} 360"},
        {"http_requests_total{job=\"api\"} - ignoring(job) http_requests_total{job=\"db\"}", 600,
         "{instance=a} 360"},
        {"http_requests_total * on(instance) group_left(team) info", 600,
         "{instance=a,job=api,team=red} 400;{instance=a,job=db,team=red} 40;"
         "{instance=b,job=api,team=blue} 100"},
        {"info * on(instance) group_right(team) http_requests_total", 600,
         "{instance=a,job=api,team=red} 400;{instance=a,job=db,team=red} 40;"
         "{instance=b,job=api,team=blue} 100"},
        {"http_requests_total and on(instance) info{team=\"blue\"}", 600,
         "{__name__=http_requests_total,instance=b,job=api} 100"},
        {"http_requests_total unless on(instance) info{team=\"blue\"}", 600,
         "{__name__=http_requests_total,instance=a,job=api} 400;"
         "{__name__=http_requests_total,instance=a,job=db} 40"},
        {"temp{room=\"x\"} or temp", 600, "{__name__=temp,room=x} 21;{__name__=temp,room=y} 0"},
    };
    RUN(cases);
    expect_error("http_requests_total * on(instance) info", "execution", "many-to-one");
    expect_error("info * on(instance) http_requests_total", "execution", "");
}

static void test_functions(void **state)
{
    (void)state;
    static const tcase cases[] = {
        {"histogram_quantile(0.5, req_bucket)", 600, "{} 0.55"},
        {"histogram_quantile(0.9, req_bucket)", 600, "{} 1"},
        {"histogram_quantile(0.1, req_bucket)", 600, "{} 0.04000000000000001"},
        {"abs(temp{room=\"y\"})", 615, "{room=y} 0"},
        {"abs(temp{room=\"y\"})", 585, "{room=y} 1.5"},
        {"ceil(temp{room=\"y\"})", 585, "{room=y} -1"},
        {"floor(temp{room=\"y\"})", 585, "{room=y} -2"},
        {"round(temp{room=\"y\"})", 585, "{room=y} -1"},
        {"round(temp{room=\"x\"} / 3.2, 0.5)", 600, "{room=x} 6.5"},
        {"clamp(temp, 0, 10)", 600, "{room=x} 10;{room=y} 0"},
        {"clamp_min(temp, 5)", 600, "{room=x} 21;{room=y} 5"},
        {"clamp_max(temp, 5)", 600, "{room=x} 5;{room=y} 0"},
        {"time()", 12.5, "12.5"},
        {"timestamp(temp{room=\"x\"})", 610, "{room=x} 600"},
        {"vector(3)", 0, "{} 3"},
        {"scalar(temp{room=\"x\"})", 600, "21"},
        {"scalar(temp)", 600, "NaN"},
        {"label_replace(temp{room=\"x\"}, \"r2\", \"$1-z\", \"room\", \"(.*)\")", 600,
         "{__name__=temp,r2=x-z,room=x} 21"},
        {"label_replace(temp{room=\"x\"}, \"r2\", \"$1\", \"room\", \"y\")", 600,
         "{__name__=temp,room=x} 21"},
        {"label_join(info{instance=\"a\"}, \"j\", \"-\", \"instance\", \"team\")", 600,
         "{__name__=info,instance=a,j=a-red,team=red} 1"},
        {"sort_desc(http_requests_total)", 600,
         "{__name__=http_requests_total,instance=a,job=api} 400;"
         "{__name__=http_requests_total,instance=a,job=db} 40;"
         "{__name__=http_requests_total,instance=b,job=api} 100"},
        {"\"text\"", 0, "text"},
    };
    RUN(cases);
}

static void test_range_query(void **state)
{
    (void)state;
    assert_string_equal(run_range("http_requests_total{job=\"db\"}", 0, 60000, 15000),
                        "{__name__=http_requests_total,instance=a,job=db} 0:0 15:1 30:2 45:3 60:4");
    assert_string_equal(run_range("sum(rate(http_requests_total{job=\"api\",instance=\"a\"}[30s]))",
                                  30000, 60000, 30000),
                        "{} 30:0.6666666666666666 60:0.6666666666666666");
    assert_string_equal(run_range("1", 0, 30000, 15000), "{} 0:1 15:1 30:1");
    /* Series appear and disappear per step. */
    assert_string_equal(run_range("temp{room=\"x\"} > 21", 0, 45000, 15000),
                        "{__name__=temp,room=x} 30:22");
    assert_string_equal(run_range("http_requests_total[1m]", 0, 60000, 15000),
                        "ERR bad_data: invalid expression type \"range vector\" for range query, "
                        "must be Scalar or instant Vector");
    assert_true(strncmp(run_range("1", 0, 20000000, 1), "ERR bad_data: exceeded maximum", 30) == 0);
}

static void test_limits(void **state)
{
    (void)state;
    rf_promql_expr *e;
    rf_err err;
    assert_int_equal(rf_promql_parse("http_requests_total[10m]", &e, &err), 0);
    rf_promql_limits lim = {.max_samples = 10};
    rf_promql_value *v;
    enum rf_promql_error kind;
    assert_int_equal(rf_promql_eval(e, &SRC, 600000, 600000, 0, &lim, &v, &kind, &err), -E2BIG);
    assert_int_equal(kind, RF_PROMQL_EXECUTION);
    assert_non_null(strstr(err.msg, "too many samples"));
    rf_promql_expr_free(e);
    /* An instant selector's step holds one sample per series (3), but the
     * query holds every sample of its 5-minute lookback that it read: those
     * count too. */
    assert_int_equal(rf_promql_parse("http_requests_total", &e, &err), 0);
    lim = (rf_promql_limits){.max_samples = 3};
    assert_int_equal(rf_promql_eval(e, &SRC, 600000, 600000, 0, &lim, &v, &kind, &err), -E2BIG);
    assert_int_equal(kind, RF_PROMQL_EXECUTION);
    lim = (rf_promql_limits){.max_samples = 1000};
    assert_int_equal(rf_promql_eval(e, &SRC, 600000, 600000, 0, &lim, &v, &kind, &err), 0);
    assert_int_equal(v->n_series, 3);
    rf_promql_value_free(v);
    rf_promql_expr_free(e);
    assert_int_equal(rf_promql_parse("http_requests_total[10m]", &e, &err), 0);
    /* max_series counts every selector's series over the whole query */
    lim = (rf_promql_limits){.max_series = 3};
    assert_int_equal(rf_promql_eval(e, &SRC, 600000, 600000, 0, &lim, &v, &kind, &err), 0);
    rf_promql_value_free(v);
    rf_promql_expr_free(e);
    assert_int_equal(
        rf_promql_parse("http_requests_total + on(instance, job) http_requests_total", &e, &err),
        0);
    assert_int_equal(rf_promql_eval(e, &SRC, 600000, 600000, 0, &lim, &v, &kind, &err), -EMFILE);
    assert_int_equal(kind, RF_PROMQL_EXECUTION);
    assert_non_null(strstr(err.msg, "max_series"));
    /* a deadline already passed: timeout, nothing kept */
    lim = (rf_promql_limits){.deadline_ns = 1};
    assert_int_equal(rf_promql_eval(e, &SRC, 0, 600000, 15000, &lim, &v, &kind, &err), -ETIMEDOUT);
    assert_int_equal(kind, RF_PROMQL_TIMEOUT);
    rf_promql_expr_free(e);
}

static int note_selector(void *ctx, const rf_promql_matcher *m, size_t n)
{
    char *out = ctx;
    size_t k = strlen(out);
    snprintf(out + k, 256 - k, "%s{", k ? " " : "");
    for (size_t i = 0; i < n; i++) {
        k = strlen(out);
        snprintf(out + k, 256 - k, "%s%s%s%s", i ? "," : "", m[i].name,
                 m[i].op == RF_PROMQL_EQ ? "=" : "~", m[i].value);
    }
    k = strlen(out);
    snprintf(out + k, 256 - k, "}");
    return 0;
}

/* Every selector an expression can read, in functions, aggregations and
 * both sides of binary operators (what a source narrows its reads to). */
static void test_expr_selectors(void **state)
{
    (void)state;
    rf_promql_expr *e;
    rf_err err;
    assert_int_equal(rf_promql_parse("sum by (x) (rate(a[5m])) + on(x) "
                                     "label_replace(b{c=\"d\"}, \"y\", \"1\", \"\", \"\") "
                                     "or vector(1) * 2",
                                     &e, &err),
                     0);
    char out[256] = "";
    assert_int_equal(rf_promql_expr_selectors(e, note_selector, out), 0);
    assert_string_equal(out, "{__name__=a} {__name__=b,c=d}");
    rf_promql_expr_free(e);
    assert_int_equal(rf_promql_parse("1 + 2", &e, &err), 0);
    out[0] = '\0';
    assert_int_equal(rf_promql_expr_selectors(e, note_selector, out), 0);
    assert_string_equal(out, "");
    rf_promql_expr_free(e);
}

static void test_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *s;
    } c[] = {
        {0.1, "0.1"},
        {1e-7, "0.0000001"},
        {1e21, "1000000000000000000000"},
        {3, "3"},
        {-0.5, "-0.5"},
        {-0.0, "-0"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {0.6666666666666666, "0.6666666666666666"},
        {123456.789, "123456.789"},
        {0, "0"},
    };
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
        char b[400];
        rf_promql_format_value(c[i].v, b, sizeof(b));
        assert_string_equal(b, c[i].s);
    }
    int64_t ms;
    assert_int_equal(rf_promql_parse_duration("1h30m", 5, &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(rf_promql_parse_duration("250ms", 5, &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(rf_promql_parse_duration("30m1h", 5, &ms), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_rates),        cmocka_unit_test(test_over_time),
        cmocka_unit_test(test_aggregations), cmocka_unit_test(test_binary),
        cmocka_unit_test(test_functions),    cmocka_unit_test(test_range_query),
        cmocka_unit_test(test_limits),       cmocka_unit_test(test_expr_selectors),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
