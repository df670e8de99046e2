/* PromQL functions: the table the parser checks calls against, and their
 * evaluation, following Prometheus 2.42's promql/functions.go (range
 * functions see the samples of [t - range, t]; every function but
 * last_over_time and the label_* ones drops the metric name). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storage/promql/promql_pvt.h"

#define S RF_PROMQL_SCALAR
#define V RF_PROMQL_VECTOR
#define M RF_PROMQL_MATRIX
#define STR RF_PROMQL_STRING

static pq_val vec_out(pq_eval *ev, size_t n)
{
    pq_val r = {.type = RF_PROMQL_VECTOR};
    r.vec.s = pq_alloc(ev, (n ? n : 1) * sizeof(pq_sample));
    return r;
}

static void push(pq_eval *ev, pq_val *r, rf_promql_labels l, double v)
{
    r->vec.s[r->vec.n++] = (pq_sample){l, ev->ts, v};
}

/* ---- range functions ---- */

/* Prometheus 2.42's extrapolatedRate. */
static void extrapolated(pq_eval *ev, const pq_expr *call, const pq_range *s, bool counter,
                         bool rate, pq_val *r)
{
    if (s->n < 2)
        return;
    const pq_expr *ms = call->args[0], *vs = ms->a;
    int64_t ref = ev->ts;
    if (vs->has_at)
        ref = vs->at_kind == 1 ? ev->start : vs->at_kind == 2 ? ev->end : vs->at_ms;
    int64_t range_end = ref - vs->offset_ms, range_start = range_end - ms->range_ms;
    double result = s->v[s->n - 1] - s->v[0];
    if (counter) {
        double prev = s->v[0];
        for (size_t i = 1; i < s->n; i++) {
            if (s->v[i] < prev)
                result += prev;
            prev = s->v[i];
        }
    }
    double to_start = (double)(s->t[0] - range_start) / 1000;
    double to_end = (double)(range_end - s->t[s->n - 1]) / 1000;
    double sampled = (double)(s->t[s->n - 1] - s->t[0]) / 1000;
    double avg = sampled / (double)(s->n - 1);
    if (counter && result > 0 && s->v[0] >= 0) {
        double to_zero = sampled * (s->v[0] / result);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    double threshold = avg * 1.1, interval = sampled;
    interval += to_start < threshold ? to_start : avg / 2;
    interval += to_end < threshold ? to_end : avg / 2;
    double factor = interval / sampled;
    if (rate)
        factor /= (double)ms->range_ms / 1000;
    push(ev, r, pq_drop_name(ev, s->labels), result * factor);
}

static void instant_value(pq_eval *ev, const pq_range *s, bool rate, pq_val *r)
{
    if (s->n < 2)
        return;
    double last = s->v[s->n - 1], prev = s->v[s->n - 2];
    double v = rate && last < prev ? last : last - prev;
    int64_t dt = s->t[s->n - 1] - s->t[s->n - 2];
    if (dt == 0)
        return;
    if (rate)
        v /= (double)dt / 1000;
    push(ev, r, pq_drop_name(ev, s->labels), v);
}

static void kahan_inc(double inc, double *sum, double *c)
{
    double t = *sum + inc;
    if (fabs(*sum) >= fabs(inc))
        *c += (*sum - t) + inc;
    else
        *c += (inc - t) + *sum;
    *sum = t;
}

enum over {
    O_AVG,
    O_MIN,
    O_MAX,
    O_SUM,
    O_COUNT,
    O_STDDEV,
    O_STDVAR,
    O_LAST,
    O_PRESENT,
    O_CHANGES,
    O_RESETS,
    O_RATE,
    O_INCREASE,
    O_DELTA,
    O_IRATE,
    O_IDELTA
};

static double over_time(enum over o, const pq_range *s)
{
    const double *v = s->v;
    size_t n = s->n;
    switch (o) {
    case O_AVG: {
        double mean = 0, c = 0, count = 0;
        for (size_t i = 0; i < n; i++) {
            count++;
            if (isinf(mean)) {
                if (isinf(v[i]) && (mean > 0) == (v[i] > 0))
                    continue;
                if (!isinf(v[i]) && !isnan(v[i]))
                    continue;
            }
            kahan_inc(v[i] / count - mean / count, &mean, &c);
        }
        return isinf(mean) ? mean : mean + c;
    }
    case O_MIN:
    case O_MAX: {
        double m = v[0];
        for (size_t i = 0; i < n; i++)
            if ((o == O_MAX ? v[i] > m : v[i] < m) || isnan(m))
                m = v[i];
        return m;
    }
    case O_SUM: {
        double sum = 0, c = 0;
        for (size_t i = 0; i < n; i++)
            kahan_inc(v[i], &sum, &c);
        return isinf(sum) ? sum : sum + c;
    }
    case O_COUNT: return (double)n;
    case O_STDDEV:
    case O_STDVAR: {
        double count = 0, mean = 0, cm = 0, aux = 0, ca = 0;
        for (size_t i = 0; i < n; i++) {
            count++;
            double d = v[i] - (mean + cm);
            kahan_inc(d / count, &mean, &cm);
            kahan_inc(d * (v[i] - (mean + cm)), &aux, &ca);
        }
        return o == O_STDDEV ? sqrt((aux + ca) / count) : (aux + ca) / count;
    }
    case O_LAST: return v[n - 1];
    case O_PRESENT: return 1;
    case O_CHANGES:
    case O_RESETS: {
        size_t k = 0;
        for (size_t i = 1; i < n; i++)
            if (o == O_RESETS ? v[i] < v[i - 1]
                              : (v[i] != v[i - 1] && !(isnan(v[i]) && isnan(v[i - 1]))))
                k++;
        return (double)k;
    }
    default: return NAN;
    }
}

static pq_val range_fn(pq_eval *ev, const pq_expr *call, const pq_val *m, enum over o)
{
    pq_val r = vec_out(ev, m->n_rng);
    for (size_t i = 0; i < m->n_rng; i++) {
        const pq_range *s = &m->rng[i];
        if (s->n == 0)
            continue;
        switch (o) {
        case O_RATE: extrapolated(ev, call, s, true, true, &r); break;
        case O_INCREASE: extrapolated(ev, call, s, true, false, &r); break;
        case O_DELTA: extrapolated(ev, call, s, false, false, &r); break;
        case O_IRATE: instant_value(ev, s, true, &r); break;
        case O_IDELTA: instant_value(ev, s, false, &r); break;
        case O_LAST: push(ev, &r, s->labels, s->v[s->n - 1]); break;
        default: push(ev, &r, pq_drop_name(ev, s->labels), over_time(o, s)); break;
        }
    }
    return r;
}

#define RANGE_FN(fname, o)                                                                         \
    static pq_val fname(pq_eval *ev, const pq_expr *c, pq_val *a)                                  \
    {                                                                                              \
        return range_fn(ev, c, &a[0], o);                                                          \
    }
RANGE_FN(f_rate, O_RATE)
RANGE_FN(f_increase, O_INCREASE)
RANGE_FN(f_delta, O_DELTA)
RANGE_FN(f_irate, O_IRATE)
RANGE_FN(f_idelta, O_IDELTA)
RANGE_FN(f_avg_ot, O_AVG)
RANGE_FN(f_min_ot, O_MIN)
RANGE_FN(f_max_ot, O_MAX)
RANGE_FN(f_sum_ot, O_SUM)
RANGE_FN(f_count_ot, O_COUNT)
RANGE_FN(f_stddev_ot, O_STDDEV)
RANGE_FN(f_stdvar_ot, O_STDVAR)
RANGE_FN(f_last_ot, O_LAST)
RANGE_FN(f_present_ot, O_PRESENT)
RANGE_FN(f_changes, O_CHANGES)
RANGE_FN(f_resets, O_RESETS)

static pq_val f_quantile_ot(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    pq_val r = vec_out(ev, a[1].n_rng);
    for (size_t i = 0; i < a[1].n_rng; i++) {
        const pq_range *s = &a[1].rng[i];
        if (s->n == 0)
            continue;
        double *v = pq_alloc(ev, s->n * sizeof(double));
        memcpy(v, s->v, s->n * sizeof(double));
        push(ev, &r, pq_drop_name(ev, s->labels), pq_quantile(a[0].scalar, v, s->n));
    }
    return r;
}

/* ---- instant functions ---- */

static double round_half_up(double x)
{
    return floor(x + 0.5);
}

static double sgn(double x)
{
    return x < 0 ? -1 : x > 0 ? 1 : x;
}

static pq_val map_fn(pq_eval *ev, const pq_val *in, double (*f)(double))
{
    pq_val r = vec_out(ev, in->vec.n);
    for (size_t i = 0; i < in->vec.n; i++)
        push(ev, &r, pq_drop_name(ev, in->vec.s[i].labels), f(in->vec.s[i].v));
    return r;
}

#define MAP_FN(fname, f)                                                                           \
    static pq_val fname(pq_eval *ev, const pq_expr *c, pq_val *a)                                  \
    {                                                                                              \
        (void)c;                                                                                   \
        return map_fn(ev, &a[0], f);                                                               \
    }
MAP_FN(f_abs, fabs)
MAP_FN(f_ceil, ceil)
MAP_FN(f_floor, floor)
MAP_FN(f_exp, exp)
MAP_FN(f_sqrt, sqrt)
MAP_FN(f_ln, log)
MAP_FN(f_log2, log2)
MAP_FN(f_log10, log10)
MAP_FN(f_sgn, sgn)

static pq_val f_round(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    double inv = 1.0 / (c->n_args > 1 ? a[1].scalar : 1.0);
    pq_val r = vec_out(ev, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++)
        push(ev, &r, pq_drop_name(ev, a[0].vec.s[i].labels),
             round_half_up(a[0].vec.s[i].v * inv) / inv);
    return r;
}

static pq_val clamp3(pq_eval *ev, const pq_val *in, double lo, double hi)
{
    pq_val r = vec_out(ev, in->vec.n);
    if (hi < lo)
        return r;
    for (size_t i = 0; i < in->vec.n; i++)
        push(ev, &r, pq_drop_name(ev, in->vec.s[i].labels), fmax(lo, fmin(hi, in->vec.s[i].v)));
    return r;
}

static pq_val f_clamp(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    return clamp3(ev, &a[0], a[1].scalar, a[2].scalar);
}

/* clamp_min/clamp_max are Go's math.Max/Min: NaN in either gives NaN. */
static pq_val clamp1(pq_eval *ev, const pq_val *in, double bound, bool is_min)
{
    pq_val r = vec_out(ev, in->vec.n);
    for (size_t i = 0; i < in->vec.n; i++) {
        double v = in->vec.s[i].v;
        double o = isnan(v) || isnan(bound) ? NAN : is_min ? fmax(v, bound) : fmin(v, bound);
        push(ev, &r, pq_drop_name(ev, in->vec.s[i].labels), o);
    }
    return r;
}

static pq_val f_clamp_min(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    return clamp1(ev, &a[0], a[1].scalar, true);
}

static pq_val f_clamp_max(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    return clamp1(ev, &a[0], a[1].scalar, false);
}

static int cmp_asc(const void *x, const void *y)
{
    double a = ((const pq_sample *)x)->v, b = ((const pq_sample *)y)->v;
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b); /* NaN last */
    return (a > b) - (a < b);
}

static int cmp_desc(const void *x, const void *y)
{
    double a = ((const pq_sample *)x)->v, b = ((const pq_sample *)y)->v;
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b);
    return (a < b) - (a > b);
}

static pq_val sorted(pq_eval *ev, const pq_val *in, int (*cmp)(const void *, const void *))
{
    pq_val r = vec_out(ev, in->vec.n);
    if (in->vec.n == 0)
        return r;
    memcpy(r.vec.s, in->vec.s, in->vec.n * sizeof(pq_sample));
    r.vec.n = in->vec.n;
    qsort(r.vec.s, r.vec.n, sizeof(pq_sample), cmp);
    return r;
}

static pq_val f_sort(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    return sorted(ev, &a[0], cmp_asc);
}

static pq_val f_sort_desc(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    return sorted(ev, &a[0], cmp_desc);
}

static pq_val f_time(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    (void)a;
    return (pq_val){.type = RF_PROMQL_SCALAR, .scalar = (double)ev->ts / 1000};
}

static pq_val f_timestamp(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    /* A selector's samples carry their own time; anything else is at the
     * evaluation time (pq_eval_node resets it). */
    const pq_expr *arg = c->args[0];
    pq_val r = vec_out(ev, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++) {
        int64_t t = arg->kind == PQ_VSEL ? a[0].vec.s[i].t : ev->ts;
        push(ev, &r, pq_drop_name(ev, a[0].vec.s[i].labels), (double)t / 1000);
    }
    return r;
}

static pq_val f_vector(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    pq_val r = vec_out(ev, 1);
    push(ev, &r, (rf_promql_labels){"", 0}, a[0].scalar);
    return r;
}

static pq_val f_scalar(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    (void)ev;
    return (pq_val){.type = RF_PROMQL_SCALAR, .scalar = a[0].vec.n == 1 ? a[0].vec.s[0].v : NAN};
}

static void check_unique(pq_eval *ev, const pq_val *r)
{
    /* Relabelling may merge series: Prometheus refuses the result. */
    for (size_t i = 0; i < r->vec.n; i++)
        for (size_t j = i + 1; j < r->vec.n; j++)
            if (pq_labels_eq(r->vec.s[i].labels, r->vec.s[j].labels))
                pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                        "vector cannot contain metrics with the same labelset");
}

static pq_val f_label_replace(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    const char *dst = a[1].str, *repl = a[2].str, *src = a[3].str, *regex = a[4].str;
    rf_err err;
    void *re = pq_re_compile(regex, &err);
    if (!re)
        pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                "invalid regular expression in label_replace(): %s", regex);
    if (!pq_valid_label_name(dst)) {
        pq_re_free(re);
        pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                "invalid destination label name in label_replace(): %s", dst);
    }
    (void)c;
    pq_val r = vec_out(ev, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++) {
        const pq_sample *s = &a[0].vec.s[i];
        const char *sv = rf_promql_labels_get(s->labels, src);
        char *res = pq_arena_alloc(ev->step_arena, 4096);
        if (!res) {
            pq_re_free(re);
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        }
        if (!pq_re_replace(re, sv ? sv : "", repl, res, 4096)) {
            push(ev, &r, s->labels, s->v);
            continue;
        }
        pq_lb b;
        pq_lb_from(&b, s->labels);
        pq_lb_set(&b, dst, res);
        rf_promql_labels out;
        if (!pq_lb_build(&b, ev->step_arena, &out)) {
            pq_re_free(re);
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        }
        push(ev, &r, out, s->v);
    }
    pq_re_free(re);
    check_unique(ev, &r);
    return r;
}

static pq_val f_label_join(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    const char *dst = a[1].str, *sep = a[2].str;
    if (!pq_valid_label_name(dst))
        pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                "invalid destination label name in label_join(): %s", dst);
    for (size_t k = 3; k < c->n_args; k++)
        if (!pq_valid_label_name(a[k].str))
            pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                    "invalid source label name in label_join(): %s", a[k].str);
    pq_val r = vec_out(ev, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++) {
        const pq_sample *s = &a[0].vec.s[i];
        size_t len = 1;
        for (size_t k = 3; k < c->n_args; k++) {
            const char *v = rf_promql_labels_get(s->labels, a[k].str);
            len += (v ? strlen(v) : 0) + strlen(sep);
        }
        char *joined = pq_alloc(ev, len);
        joined[0] = '\0';
        for (size_t k = 3; k < c->n_args; k++) {
            const char *v = rf_promql_labels_get(s->labels, a[k].str);
            if (k > 3)
                strcat(joined, sep);
            strcat(joined, v ? v : "");
        }
        pq_lb b;
        pq_lb_from(&b, s->labels);
        pq_lb_set(&b, dst, joined);
        rf_promql_labels out;
        if (!pq_lb_build(&b, ev->step_arena, &out))
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        push(ev, &r, out, s->v);
    }
    check_unique(ev, &r);
    return r;
}

/* ---- histogram_quantile over classic `le` buckets ---- */

typedef struct bucket {
    double upper, count;
} bucket;

static int cmp_bucket(const void *x, const void *y)
{
    double a = ((const bucket *)x)->upper, b = ((const bucket *)y)->upper;
    return (a > b) - (a < b);
}

static double bucket_quantile(double q, bucket *b, size_t n)
{
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    qsort(b, n, sizeof(*b), cmp_bucket);
    if (!isinf(b[n - 1].upper) || b[n - 1].upper < 0)
        return NAN;
    size_t k = 0; /* coalesce equal bounds */
    for (size_t i = 1; i < n; i++) {
        if (b[i].upper == b[k].upper)
            b[k].count += b[i].count;
        else
            b[++k] = b[i];
    }
    n = k + 1;
    double max = b[0].count; /* make counts monotonic */
    for (size_t i = 1; i < n; i++) {
        if (b[i].count > max)
            max = b[i].count;
        else if (b[i].count < max)
            b[i].count = max;
    }
    if (n < 2)
        return NAN;
    double obs = b[n - 1].count;
    if (obs == 0)
        return NAN;
    double rank = q * obs;
    size_t i = 0; /* first bucket (of n - 1) with count >= rank */
    while (i < n - 1 && !(b[i].count >= rank))
        i++;
    if (i == n - 1)
        return b[n - 2].upper;
    if (i == 0 && b[0].upper <= 0)
        return b[0].upper;
    double start = 0, end = b[i].upper, count = b[i].count;
    if (i > 0) {
        start = b[i - 1].upper;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    return start + (end - start) * (rank / count);
}

static pq_val f_histogram_quantile(pq_eval *ev, const pq_expr *c, pq_val *a)
{
    (void)c;
    const pq_vec *in = &a[1].vec;
    /* Group by the labels without le (and without the name, as Prometheus
     * drops it from the output). */
    rf_promql_labels *keys = pq_alloc(ev, (in->n ? in->n : 1) * sizeof(*keys));
    bucket **bk = pq_alloc(ev, (in->n ? in->n : 1) * sizeof(*bk));
    size_t *nb = pq_alloc(ev, (in->n ? in->n : 1) * sizeof(size_t));
    size_t groups = 0;
    for (size_t i = 0; i < in->n; i++) {
        const char *le = rf_promql_labels_get(in->s[i].labels, "le");
        char *end;
        if (!le)
            continue;
        double upper = strtod(le, &end);
        if (end == le || *end)
            continue;
        pq_lb b;
        pq_lb_from(&b, in->s[i].labels);
        pq_lb_del(&b, "le");
        pq_lb_del(&b, "__name__");
        rf_promql_labels key;
        if (!pq_lb_build(&b, ev->step_arena, &key))
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        size_t g = 0;
        while (g < groups && !pq_labels_eq(keys[g], key))
            g++;
        if (g == groups) {
            keys[groups] = key;
            bk[groups] = pq_alloc(ev, in->n * sizeof(bucket));
            nb[groups++] = 0;
        }
        bk[g][nb[g]++] = (bucket){upper, in->s[i].v};
    }
    pq_val r = vec_out(ev, groups);
    for (size_t g = 0; g < groups; g++)
        push(ev, &r, keys[g], bucket_quantile(a[0].scalar, bk[g], nb[g]));
    return r;
}

/* ---- the table ---- */

static const pq_func funcs[] = {
    {"abs", {V}, 1, 0, false, V, f_abs},
    {"avg_over_time", {M}, 1, 0, false, V, f_avg_ot},
    {"ceil", {V}, 1, 0, false, V, f_ceil},
    {"changes", {M}, 1, 0, false, V, f_changes},
    {"clamp", {V, S, S}, 3, 0, false, V, f_clamp},
    {"clamp_max", {V, S}, 2, 0, false, V, f_clamp_max},
    {"clamp_min", {V, S}, 2, 0, false, V, f_clamp_min},
    {"count_over_time", {M}, 1, 0, false, V, f_count_ot},
    {"delta", {M}, 1, 0, false, V, f_delta},
    {"exp", {V}, 1, 0, false, V, f_exp},
    {"floor", {V}, 1, 0, false, V, f_floor},
    {"histogram_quantile", {S, V}, 2, 0, false, V, f_histogram_quantile},
    {"idelta", {M}, 1, 0, false, V, f_idelta},
    {"increase", {M}, 1, 0, false, V, f_increase},
    {"irate", {M}, 1, 0, false, V, f_irate},
    {"label_join", {V, STR, STR, STR}, 3, 1, true, V, f_label_join},
    {"label_replace", {V, STR, STR, STR, STR}, 5, 0, false, V, f_label_replace},
    {"last_over_time", {M}, 1, 0, false, V, f_last_ot},
    {"ln", {V}, 1, 0, false, V, f_ln},
    {"log10", {V}, 1, 0, false, V, f_log10},
    {"log2", {V}, 1, 0, false, V, f_log2},
    {"max_over_time", {M}, 1, 0, false, V, f_max_ot},
    {"min_over_time", {M}, 1, 0, false, V, f_min_ot},
    {"present_over_time", {M}, 1, 0, false, V, f_present_ot},
    {"quantile_over_time", {S, M}, 2, 0, false, V, f_quantile_ot},
    {"rate", {M}, 1, 0, false, V, f_rate},
    {"resets", {M}, 1, 0, false, V, f_resets},
    {"round", {V, S}, 1, 1, false, V, f_round},
    {"scalar", {V}, 1, 0, false, S, f_scalar},
    {"sgn", {V}, 1, 0, false, V, f_sgn},
    {"sort", {V}, 1, 0, false, V, f_sort},
    {"sort_desc", {V}, 1, 0, false, V, f_sort_desc},
    {"sqrt", {V}, 1, 0, false, V, f_sqrt},
    {"stddev_over_time", {M}, 1, 0, false, V, f_stddev_ot},
    {"stdvar_over_time", {M}, 1, 0, false, V, f_stdvar_ot},
    {"sum_over_time", {M}, 1, 0, false, V, f_sum_ot},
    {"time", {0}, 0, 0, false, S, f_time},
    {"timestamp", {V}, 1, 0, false, V, f_timestamp},
    {"vector", {S}, 1, 0, false, V, f_vector},
};

const pq_func *pq_func_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (strlen(funcs[i].name) == len && strncmp(funcs[i].name, name, len) == 0)
            return &funcs[i];
    return NULL;
}

bool pq_func_known_unsupported(const char *name, size_t len)
{
    static const char *const others[] = {"absent",
                                         "absent_over_time",
                                         "acos",
                                         "acosh",
                                         "asin",
                                         "asinh",
                                         "atan",
                                         "atanh",
                                         "cos",
                                         "cosh",
                                         "day_of_month",
                                         "day_of_week",
                                         "day_of_year",
                                         "days_in_month",
                                         "deg",
                                         "deriv",
                                         "histogram_count",
                                         "histogram_fraction",
                                         "histogram_sum",
                                         "holt_winters",
                                         "hour",
                                         "minute",
                                         "month",
                                         "pi",
                                         "predict_linear",
                                         "rad",
                                         "sin",
                                         "sinh",
                                         "tan",
                                         "tanh",
                                         "year"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        if (strlen(others[i]) == len && strncmp(others[i], name, len) == 0)
            return true;
    return false;
}
