/* OTLP/HTTP metrics receiver, protobuf encoding (contract in http.h):
 * ExportMetricsServiceRequest (protobuf-c, code generated from
 * otlp_metrics.proto at build time) -> line-protocol text -> the worker's
 * parse context, as remote_write does (decode.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http_pvt.h"
#include "ingest/http/otlp_metrics.pb-c.h"
#include "ingest/listen/listen.h"

/* The resource attributes that become tags unless the listener says
 * otherwise (`otlp: {resource_attributes: [...]}`): the ones that name where
 * a metric comes from; the others (SDK versions, process details) would
 * multiply series for nothing. Scope attributes: none by default. Data point
 * attributes are always tags. */
static const char *const default_resource_tags[] = {"service.name", "service.namespace",
                                                    "service.instance.id", "host.name"};

static const char *const counter_names[RF_OTLP_C__COUNT] = {
    [RF_OTLP_C_REQUESTS] = "requests",        [RF_OTLP_C_METRICS] = "metrics",
    [RF_OTLP_C_DATA_POINTS] = "data_points",  [RF_OTLP_C_NO_VALUE] = "no_value_points",
    [RF_OTLP_C_REJECTED] = "rejected_points", [RF_OTLP_C_DROPPED_ATTRIBUTES] = "dropped_attributes",
};

const char *rf_otlp_counter_name(enum rf_otlp_counter_id id)
{
    return (unsigned)id < RF_OTLP_C__COUNT ? counter_names[id] : "unknown";
}

uint64_t rf_http_ingest_otlp_counter(const rf_http_ingest *in, enum rf_otlp_counter_id id)
{
    if (!in->dec || (unsigned)id >= RF_OTLP_C__COUNT)
        return 0;
    return atomic_load_explicit(&in->dec->otlp[id], memory_order_relaxed);
}

int rf_http_ingest_set_otlp(rf_http_ingest *in, const rf_listen_otlp_config *cfg, rf_err *err)
{
    rf_decode_state *ps = in ? in->dec : NULL;
    if (!ps)
        return rf_err_set(err, EINVAL, "http: OTLP options before the OTLP endpoint");
    if (cfg && (unsigned)cfg->n_resource + cfg->n_scope > RF_LISTEN_OTLP_ATTRS_MAX)
        return rf_err_set(err, EINVAL, "http: more than %u OTLP attribute names",
                          RF_LISTEN_OTLP_ATTRS_MAX);
    if (cfg)
        ps->otlp_cfg = *cfg;
    else
        memset(&ps->otlp_cfg, 0, sizeof(ps->otlp_cfg));
    return 0;
}

/* Whether the resource (scope false) or scope attribute `key` is a tag. */
static bool allowed(const rf_listen_otlp_config *c, bool scope, const char *key)
{
    if (!scope && !c->resource_set) {
        for (size_t i = 0; i < sizeof(default_resource_tags) / sizeof(*default_resource_tags); i++)
            if (!strcmp(key, default_resource_tags[i]))
                return true;
        return false;
    }
    size_t from = scope ? c->n_resource : 0, to = from + (scope ? c->n_scope : c->n_resource);
    for (size_t i = from; i < to; i++)
        if (!strcmp(key, c->names[i]) || !strcmp(c->names[i], "*"))
            return true;
    return false;
}

/* Appends ",key=value" for an attribute with a value line protocol can carry
 * (bytes and empty strings are skipped). False when it does not fit. */
static bool put_attr(char *out, size_t *o, size_t cap, const RfOtlp__KeyValue *kv)
{
    const RfOtlp__AnyValue *v = kv->value;
    char num[40];
    const char *text = NULL;
    if (!v)
        return true;
    switch (v->value_case) {
    case RF_OTLP__ANY_VALUE__VALUE_STRING_VALUE: text = v->string_value; break;
    case RF_OTLP__ANY_VALUE__VALUE_BOOL_VALUE: text = v->bool_value ? "true" : "false"; break;
    case RF_OTLP__ANY_VALUE__VALUE_INT_VALUE:
        num[rf_lp_put_i64(num, v->int_value)] = '\0';
        text = num;
        break;
    case RF_OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE:
        snprintf(num, sizeof(num), "%.17g", v->double_value);
        text = num;
        break;
    default: return true;
    }
    if (!*text || !*kv->key)
        return true;
    if (*o + 1 > cap)
        return false;
    out[(*o)++] = ',';
    if (!rf_lp_put_escaped(out, o, cap, kv->key, true) || *o + 1 > cap)
        return false;
    out[(*o)++] = '=';
    return rf_lp_put_escaped(out, o, cap, text, true);
}

typedef struct batch {
    rf_decode_state *ps;
    const rf_recv_info *rx;
    size_t rejected;     /* data points the parser or the mapping refused */
    uint64_t no_value;   /* points flagged FLAG_NO_RECORDED_VALUE: skipped */
    uint64_t dropped;    /* resource and scope attributes the allow-list left out */
    unsigned kind;       /* enum rf_metric_kind of the lines in ps->text */
    char res[4096];      /* ",k=v..." of the resource's and scope's allowed attributes */
    size_t res_tags_len; /* all of res */
    size_t res_only_len; /* the resource's part, before the scope's */
    /* ps->prefix starts with head_len bytes of the escaped name of
     * head_name and res: the points of one metric write them once. NULL
     * whenever either may have changed (arena pointers are unique within a
     * request, not across). */
    const char *head_name;
    size_t head_len;
    /* The last time written, as text: the points of one export mostly
     * share their time. */
    uint64_t last_t;
    size_t last_t_len;
    char last_t_text[24];
    /* The last histogram's bounds as field keys "le_<bound>=", so the points
     * of one histogram format them once. */
    double bounds[RF_OTLP_BUCKETS_MAX];
    size_t n_bounds;
    uint32_t bound_off[RF_OTLP_BUCKETS_MAX + 2];
    char bound_keys[(RF_OTLP_BUCKETS_MAX + 1) * 32];
} batch;

/* Lines of one kind go to the parser together: a change of kind parses what
 * was gathered first. */
static void use_kind(batch *b, unsigned kind)
{
    if (kind == b->kind)
        return;
    rf_decode_text_flush(b->ps, b->rx, &b->rejected);
    rf_parse_set_kind(b->ps->in->parse, kind);
    b->kind = kind;
}

/* The kind of a sum's or histogram's points (http.h, OTLP). */
static unsigned kind_of(int temporality, bool monotonic)
{
    if (temporality == 1)
        return RF_KIND_COUNTER; /* delta: each point is an increment */
    return monotonic ? RF_KIND_CUMULATIVE : RF_KIND_GAUGE;
}

/* "name,resource tags,point attributes" into ps->prefix; its length or 0.
 * extra_tag: ",quantile=0.5" for a summary's quantile, or NULL. */
static size_t point_prefix(batch *b, const char *name, RfOtlp__KeyValue **attrs, size_t n,
                           const char *extra_tag)
{
    rf_decode_state *ps = b->ps;
    size_t o = 0, cap = sizeof(ps->prefix);
    if (name == b->head_name) {
        o = b->head_len;
    } else {
        b->head_name = NULL;
        if (!*name || !rf_lp_put_escaped(ps->prefix, &o, cap, name, false) ||
            o + b->res_tags_len > cap)
            return 0;
        memcpy(ps->prefix + o, b->res, b->res_tags_len);
        o += b->res_tags_len;
        b->head_name = name;
        b->head_len = o;
    }
    for (size_t i = 0; i < n; i++)
        if (!put_attr(ps->prefix, &o, cap, attrs[i]))
            return 0;
    if (extra_tag) {
        size_t el = strlen(extra_tag);
        if (o + el > cap)
            return 0;
        memcpy(ps->prefix + o, extra_tag, el);
        o += el;
    }
    return o;
}

/* Writes one line: prefix, fields (already formatted), time. */
static void emit_line(batch *b, size_t pl, const char *fields, size_t fl, uint64_t t_ns)
{
    rf_decode_state *ps = b->ps;
    if (ps->text_len + pl + fl + 24 > RF_DECODE_TEXT_CAP)
        rf_decode_text_flush(ps, b->rx, &b->rejected);
    if (pl + fl + 24 > RF_DECODE_TEXT_CAP) {
        rf_parse_reject_external(ps->in->parse, b->rx, RF_REJ_LINE_TOO_LONG, ps->prefix, pl);
        b->rejected++;
        return;
    }
    char *t = ps->text + ps->text_len;
    memcpy(t, ps->prefix, pl);
    size_t o = pl;
    t[o++] = ' ';
    memcpy(t + o, fields, fl);
    o += fl;
    if (t_ns && t_ns <= (uint64_t)INT64_MAX) {
        if (t_ns != b->last_t) {
            b->last_t_text[0] = ' ';
            b->last_t_len = 1 + rf_lp_put_i64(b->last_t_text + 1, (int64_t)t_ns);
            b->last_t = t_ns;
        }
        memcpy(t + o, b->last_t_text, b->last_t_len);
        o += b->last_t_len;
    } /* 0: no time given, the receipt's stands */
    t[o++] = '\n';
    ps->text_len += o;
}

static void refuse_point(batch *b, enum rf_reject_reason why, size_t pl)
{
    rf_parse_reject_external(b->ps->in->parse, b->rx, why, b->ps->prefix, pl);
    b->rejected++;
}

/* The prefix of a point, or 0 with the point refused. */
static size_t prefix_or_refuse(batch *b, const char *name, RfOtlp__KeyValue **attrs, size_t n,
                               const char *extra_tag)
{
    size_t pl = point_prefix(b, name, attrs, n, extra_tag);
    if (!pl) {
        b->head_name = NULL; /* ps->prefix is rewritten below */
        size_t nl = strlen(name);
        memcpy(b->ps->prefix, name, nl < 64 ? nl : 64);
        refuse_point(b, *name ? RF_REJ_KEY_TOO_LONG : RF_REJ_SYNTAX, nl < 64 ? nl : 64);
    }
    return pl;
}

/* FLAG_NO_RECORDED_VALUE (the data point flags' bit 0): the SDK says the
 * series has no value now (it went away), as Prometheus' staleness marker
 * does; counted, not stored, not refused. */
static bool no_recorded_value(batch *b, uint32_t flags)
{
    if (!(flags & 1u))
        return false;
    b->no_value++;
    return true;
}

static void number_points(batch *b, const char *name, RfOtlp__NumberDataPoint **dp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (no_recorded_value(b, dp[i]->flags))
            continue;
        size_t pl = prefix_or_refuse(b, name, dp[i]->attributes, dp[i]->n_attributes, NULL);
        if (!pl)
            continue;
        char f[64];
        size_t fl = 6;
        memcpy(f, "value=", 6);
        if (dp[i]->value_case == RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_INT) {
            fl += rf_lp_put_i64(f + fl, dp[i]->as_int);
            f[fl++] = 'i';
        } else if (dp[i]->value_case == RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE &&
                   isfinite(dp[i]->as_double)) {
            fl += rf_lp_put_value(f + fl, dp[i]->as_double);
        } else {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl); /* no value, NaN or infinite */
            continue;
        }
        emit_line(b, pl, f, fl, dp[i]->time_unix_nano);
    }
}

/* The shortest text that reads back as v ("0.1", not "0.10000000000000001"),
 * as Prometheus writes its le labels. */
static size_t put_bound(char *out, double v)
{
    if (isinf(v))
        return (size_t)snprintf(out, 8, v > 0 ? "+Inf" : "-Inf");
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return (size_t)n;
}

/* Finite and strictly increasing, as the specification asks of explicit
 * bounds; an exponential histogram's computed ones can overflow to
 * infinity at extreme offsets, or a zero_threshold reach past them. */
static bool bounds_ok(const double *bounds, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(bounds[k]) || (k && !(bounds[k] > bounds[k - 1])))
            return false;
    return true;
}

/* The field keys ",le_<bound>=" of bounds[0..n) and of +Inf, formatted once
 * for as long as the bounds stay the same. */
static void bound_keys(batch *b, const double *bounds, size_t n)
{
    if (n == b->n_bounds && !memcmp(bounds, b->bounds, n * sizeof(double)) && b->bound_off[n + 1])
        return;
    size_t o = 0;
    for (size_t k = 0; k <= n; k++) {
        b->bound_off[k] = (uint32_t)o;
        memcpy(b->bound_keys + o, ",le_", 4);
        o += 4;
        o += k < n ? put_bound(b->bound_keys + o, bounds[k])
                   : put_bound(b->bound_keys + o, INFINITY);
        b->bound_keys[o++] = '=';
    }
    b->bound_off[n + 1] = (uint32_t)o;
    memcpy(b->bounds, bounds, n * sizeof(double));
    b->n_bounds = n;
}

/* Fields count, sum (when sent and finite) and, from counts[0..n_counts)
 * over bounds[0..n_counts - 1) (the last is +Inf), the cumulative counts as
 * le_<bound>. In f (cap bytes); its length, or 0 when something does not
 * fit. */
static size_t histogram_fields(batch *b, char *f, size_t cap, uint64_t count, bool has_sum,
                               double sum, const uint64_t *counts, size_t n_counts,
                               const double *bounds)
{
    if (count > (uint64_t)INT64_MAX)
        return 0;
    size_t fl = 6;
    memcpy(f, "count=", 6);
    fl += rf_lp_put_i64(f + fl, (int64_t)count);
    f[fl++] = 'i';
    if (has_sum && isfinite(sum)) {
        memcpy(f + fl, ",sum=", 5);
        fl += 5;
        fl += rf_lp_put_value(f + fl, sum);
    }
    if (!n_counts)
        return fl;
    bound_keys(b, bounds, n_counts - 1);
    uint64_t cum = 0;
    for (size_t k = 0; k < n_counts; k++) {
        size_t kl = b->bound_off[k + 1] - b->bound_off[k];
        if (__builtin_add_overflow(cum, counts[k], &cum) || cum > (uint64_t)INT64_MAX ||
            fl + kl + 24 > cap)
            return 0;
        memcpy(f + fl, b->bound_keys + b->bound_off[k], kl);
        fl += kl;
        fl += rf_lp_put_i64(f + fl, (int64_t)cum);
        f[fl++] = 'i';
    }
    return fl;
}

/* Fields count, sum and the cumulative bucket counts le_<bound> (le_+Inf
 * last), as Prometheus names them. */
static void histogram_points(batch *b, const char *name, RfOtlp__HistogramDataPoint **dp, size_t n)
{
    static char f[RF_DECODE_TEXT_CAP / 2]; /* owning thread only */
    for (size_t i = 0; i < n; i++) {
        const RfOtlp__HistogramDataPoint *h = dp[i];
        if (no_recorded_value(b, h->flags))
            continue;
        size_t pl = prefix_or_refuse(b, name, h->attributes, h->n_attributes, NULL);
        if (!pl)
            continue;
        if (h->n_bucket_counts && h->n_bucket_counts != h->n_explicit_bounds + 1) {
            refuse_point(b, RF_REJ_SYNTAX, pl); /* buckets and bounds must agree */
            continue;
        }
        if (h->n_bucket_counts > RF_OTLP_BUCKETS_MAX + 1) {
            refuse_point(b, RF_REJ_TOO_MANY_FIELDS, pl);
            continue;
        }
        if (!bounds_ok(h->explicit_bounds, h->n_explicit_bounds)) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl);
            continue;
        }
        size_t fl =
            histogram_fields(b, f, sizeof(f), h->count,
                             h->has_sum_case == RF_OTLP__HISTOGRAM_DATA_POINT__HAS_SUM_SUM, h->sum,
                             h->bucket_counts, h->n_bucket_counts, h->explicit_bounds);
        if (!fl) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl); /* a count past int64 */
            continue;
        }
        emit_line(b, pl, f, fl, h->time_unix_nano);
    }
}

/* An exponential histogram point as explicit buckets (http.h, OTLP): the
 * negative buckets from the most negative, the zero bucket, the positive
 * ones, each with its upper bound; past RF_OTLP_BUCKETS_MAX buckets the
 * scale is lowered (adjacent buckets merged, exactly) until they fit. */
static void exp_histogram_points(batch *b, const char *name,
                                 RfOtlp__ExponentialHistogramDataPoint **dp, size_t n)
{
    static char f[RF_DECODE_TEXT_CAP / 2]; /* owning thread only */
    static uint64_t counts[RF_OTLP_BUCKETS_MAX + 1];
    static double bounds[RF_OTLP_BUCKETS_MAX];
    static const RfOtlp__ExponentialHistogramDataPoint__Buckets none =
        RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    for (size_t i = 0; i < n; i++) {
        const RfOtlp__ExponentialHistogramDataPoint *h = dp[i];
        if (no_recorded_value(b, h->flags))
            continue;
        size_t pl = prefix_or_refuse(b, name, h->attributes, h->n_attributes, NULL);
        if (!pl)
            continue;
        const RfOtlp__ExponentialHistogramDataPoint__Buckets *pos =
                                                                 h->positive ? h->positive : &none,
                                                             *neg =
                                                                 h->negative ? h->negative : &none;
        /* Lower the scale until both spans fit: index i at scale s is index
         * i >> d at scale s - d (floor), whatever the sign. */
        int scale = h->scale, shift = 0;
        if (scale < -10 || scale > 20) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl); /* the specification's range */
            continue;
        }
        int64_t pspan = 0, nspan = 0;
        for (;; shift++, scale--) {
            pspan = pos->n_bucket_counts
                        ? (((int64_t)pos->offset + (int64_t)pos->n_bucket_counts - 1) >> shift) -
                              ((int64_t)pos->offset >> shift) + 1
                        : 0;
            nspan = neg->n_bucket_counts
                        ? (((int64_t)neg->offset + (int64_t)neg->n_bucket_counts - 1) >> shift) -
                              ((int64_t)neg->offset >> shift) + 1
                        : 0;
            if (pspan + nspan + 1 <= RF_OTLP_BUCKETS_MAX || scale <= -10)
                break;
        }
        if (pspan + nspan + 1 > RF_OTLP_BUCKETS_MAX) {
            refuse_point(b, RF_REJ_TOO_MANY_FIELDS, pl);
            continue;
        }
        /* base^idx at the lowered scale: 2^(idx * 2^-scale) */
        const double step = ldexp(1.0, -scale);
        size_t nb = 0;
        memset(counts, 0, sizeof(uint64_t) * (size_t)(pspan + nspan + 2));
        int64_t nbase = neg->n_bucket_counts ? ((int64_t)neg->offset >> shift) : 0;
        for (int64_t k = nspan - 1; k >= 0; k--) {          /* most negative first */
            bounds[nb] = -exp2((double)(nbase + k) * step); /* its upper bound */
            nb++;
        }
        for (size_t k = 0; k < neg->n_bucket_counts; k++) {
            int64_t idx = (((int64_t)neg->offset + (int64_t)k) >> shift) - nbase;
            counts[nspan - 1 - idx] += neg->bucket_counts[k];
        }
        bounds[nb] = h->zero_threshold > 0 ? h->zero_threshold : 0;
        counts[nb++] = h->zero_count;
        int64_t pbase = pos->n_bucket_counts ? ((int64_t)pos->offset >> shift) : 0;
        for (int64_t k = 0; k < pspan; k++)
            bounds[nb++] = exp2((double)(pbase + k + 1) * step);
        for (size_t k = 0; k < pos->n_bucket_counts; k++) {
            int64_t idx = (((int64_t)pos->offset + (int64_t)k) >> shift) - pbase;
            counts[nspan + 1 + idx] += pos->bucket_counts[k];
        }
        /* +Inf: nothing above the last positive bucket; its count is the total. */
        counts[nb] = 0;
        if (!bounds_ok(bounds, nb)) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl);
            continue;
        }
        size_t fl = histogram_fields(b, f, sizeof(f), h->count,
                                     h->has_sum_case ==
                                         RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__HAS_SUM_SUM,
                                     h->sum, counts, nb + 1, bounds);
        if (!fl) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl);
            continue;
        }
        emit_line(b, pl, f, fl, h->time_unix_nano);
    }
}

/* A summary point: count and sum on the metric's series, each quantile as
 * field value of the series with the tag quantile=<q>, as Prometheus lays
 * summaries out (name{quantile="0.5"}, name_count, name_sum). */
static void summary_points(batch *b, const char *name, RfOtlp__SummaryDataPoint **dp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const RfOtlp__SummaryDataPoint *s = dp[i];
        if (no_recorded_value(b, s->flags))
            continue;
        size_t pl = prefix_or_refuse(b, name, s->attributes, s->n_attributes, NULL);
        if (!pl)
            continue;
        if (s->count > (uint64_t)INT64_MAX) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl);
            continue;
        }
        char f[96];
        size_t fl = 6;
        memcpy(f, "count=", 6);
        fl += rf_lp_put_i64(f + fl, (int64_t)s->count);
        f[fl++] = 'i';
        if (isfinite(s->sum)) {
            memcpy(f + fl, ",sum=", 5);
            fl += 5;
            fl += rf_lp_put_value(f + fl, s->sum);
        }
        size_t q = 0;
        while (q < s->n_quantile_values && s->quantile_values[q]->quantile >= 0 &&
               s->quantile_values[q]->quantile <= 1 && isfinite(s->quantile_values[q]->value))
            q++;
        if (q < s->n_quantile_values) {
            refuse_point(b, RF_REJ_OUT_OF_RANGE, pl); /* a quantile outside [0, 1], a NaN */
            continue;
        }
        emit_line(b, pl, f, fl, s->time_unix_nano);
        for (q = 0; q < s->n_quantile_values; q++) {
            const RfOtlp__SummaryDataPoint__ValueAtQuantile *vq = s->quantile_values[q];
            char tag[48];
            memcpy(tag, ",quantile=", 10);
            size_t tl = 10 + put_bound(tag + 10, vq->quantile);
            tag[tl] = '\0';
            size_t ql = prefix_or_refuse(b, name, s->attributes, s->n_attributes, tag);
            if (!ql)
                continue;
            memcpy(f, "value=", 6);
            fl = 6 + rf_lp_put_value(f + 6, vq->value);
            emit_line(b, ql, f, fl, s->time_unix_nano);
        }
    }
}

/* The allowed attributes of a resource (scope false) or a scope into b->res
 * after `from` bytes; the others counted as dropped. */
static void allowed_tags(batch *b, bool scope, RfOtlp__KeyValue **attrs, size_t n, size_t from)
{
    const rf_listen_otlp_config *c = &b->ps->otlp_cfg;
    size_t o = from;
    for (size_t a = 0; a < n; a++) {
        if (!allowed(c, scope, attrs[a]->key)) {
            b->dropped++;
            continue;
        }
        size_t before = o;
        if (!put_attr(b->res, &o, sizeof(b->res), attrs[a])) {
            o = before; /* 4 KiB of tags: too many to be a series key anyway */
            b->dropped++;
        }
    }
    b->res_tags_len = o;
    b->head_name = NULL;
}

/* ExportMetricsServiceResponse, by hand: empty, or partial_success (1) with
 * rejected_data_points (1) and error_message (2). */
static size_t put_varint(char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (char)v;
    return n;
}

static void answer(rf_http_response *resp, bool json, uint64_t rejected, const char *msg)
{
    resp->status = 200;
    resp->content_type = json ? "application/json" : "application/x-protobuf";
    resp->body_len = 0;
    if (json) {
        /* The JSON mapping: int64 as a string, message JSON-escaped. */
        rf_http_response tmp;
        rf_http_resp_error(&tmp, 200, "%s", msg); /* {"error":"<escaped>"} */
        static const char pre[] = "{\"error\":";
        if (!rejected) {
            memcpy(resp->body, "{}", 2);
            resp->body_len = 2;
            return;
        }
        int n = snprintf(resp->body, sizeof(resp->body),
                         "{\"partialSuccess\":{\"rejectedDataPoints\":\"%llu\",\"errorMessage\":",
                         (unsigned long long)rejected);
        size_t tl = tmp.body_len - (sizeof(pre) - 1); /* "<escaped>"} */
        if ((size_t)n + tl + 1 > sizeof(resp->body))
            tl = 0;
        memcpy(resp->body + n, tmp.body + sizeof(pre) - 1, tl);
        resp->body_len = (size_t)n + tl;
        if (tl)
            resp->body[resp->body_len++] = '}';
        return;
    }
    if (!rejected)
        return;
    char inner[RF_HTTP_RESP_BODY_MAX - 16];
    size_t n = 0, ml = strlen(msg);
    if (ml > sizeof(inner) - 32)
        ml = sizeof(inner) - 32;
    inner[n++] = 0x08;
    n += put_varint(inner + n, rejected);
    inner[n++] = 0x12;
    n += put_varint(inner + n, ml);
    memcpy(inner + n, msg, ml);
    n += ml;
    size_t o = 0;
    resp->body[o++] = 0x0a;
    o += put_varint(resp->body + o, n);
    memcpy(resp->body + o, inner, n);
    resp->body_len = o + n;
}

static void on_metrics(void *user, const rf_http_request *req, rf_http_response *resp)
{
    rf_decode_state *ps = user;
    rf_http_ingest *in = ps->in;
    size_t ctl = 0;
    const char *ct = rf_http_header_get(req, "content-type", &ctl);
    bool json = ct && ctl >= 16 && !strncasecmp(ct, "application/json", 16);
    if (rf_http_ingest_sync_query(in, req, resp) < 0)
        return;
    if (json && req->body_len > RF_OTLP_JSON_MAX) {
        rf_http_resp_error(resp, 413, "OTLP JSON bodies are limited to %u bytes; send protobuf",
                           RF_OTLP_JSON_MAX);
        resp->reject = RF_HTTP_REJ_DECODED_TOO_LARGE;
        return;
    }
    if (req->content_encoding) {
        rf_http_resp_error(resp, 415, "unsupported Content-Encoding (gzip or none)");
        resp->reject = RF_HTTP_REJ_UNSUPPORTED_ENCODING;
        return;
    }
    if (in->busy && in->busy(in->busy_user)) {
        rf_http_resp_error(resp, 503, "engine is shedding load; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        return;
    }
    ProtobufCAllocator alloc = rf_decode_allocator(ps);
    rf_err err;
    rf_err_clear(&err);
    RfOtlp__ExportMetricsServiceRequest *rq =
        json ? rf_otlp_from_json(ps, req->body, req->body_len, &err)
             : rf_otlp__export_metrics_service_request__unpack(&alloc, req->body_len, req->body);
    if (!rq) {
        if (json && !ps->arena_full) {
            rf_http_resp_error(resp, 400, "%s", err.msg[0] ? err.msg : "body is not OTLP JSON");
            resp->reject = RF_HTTP_REJ_BAD_JSON;
        } else if (ps->arena_full) {
            rf_http_resp_error(resp, 413, "request needs more than %llu bytes to decode",
                               (unsigned long long)ps->arena_max);
            resp->reject = RF_HTTP_REJ_DECODE_LIMIT;
        } else {
            rf_http_resp_error(resp, 400, "body is not a protobuf ExportMetricsServiceRequest");
            resp->reject = RF_HTTP_REJ_BAD_PROTOBUF;
        }
        rf_decode_arena_reset(ps);
        return;
    }
    rf_parse_set_precision(in->parse, RF_PRECISION_NS);
    memset(&in->first, 0, sizeof(in->first));
    rf_parse_capture_first_reject(in->parse, &in->first);
    uint64_t ev0 = rf_parse_counter(in->parse, RF_PC_EVENTS);
    rf_recv_info rx = {.wall_ns = req->wall_ns, .mono_ns = req->mono_ns, .source_addr = req->peer};
    static batch b; /* 4 KiB of resource tags: off the stack; owning thread only */
    b.ps = ps;
    b.rx = &rx;
    b.rejected = 0;
    b.no_value = 0;
    b.dropped = 0;
    b.kind = RF_KIND_GAUGE;
    uint64_t metrics = 0, points = 0;
    for (size_t r = 0; r < rq->n_resource_metrics; r++) {
        const RfOtlp__ResourceMetrics *rm = rq->resource_metrics[r];
        b.res_tags_len = 0;
        b.head_name = NULL;
        if (rm->resource)
            allowed_tags(&b, false, rm->resource->attributes, rm->resource->n_attributes, 0);
        b.res_only_len = b.res_tags_len;
        for (size_t s = 0; s < rm->n_scope_metrics; s++) {
            const RfOtlp__ScopeMetrics *sm = rm->scope_metrics[s];
            b.res_tags_len = b.res_only_len;
            b.head_name = NULL;
            if (sm->scope)
                allowed_tags(&b, true, sm->scope->attributes, sm->scope->n_attributes,
                             b.res_only_len);
            metrics += sm->n_metrics;
            for (size_t m = 0; m < sm->n_metrics; m++) {
                const RfOtlp__Metric *mt = sm->metrics[m];
                switch (mt->data_case) {
                case RF_OTLP__METRIC__DATA_GAUGE:
                    points += mt->gauge->n_data_points;
                    use_kind(&b, RF_KIND_GAUGE);
                    number_points(&b, mt->name, mt->gauge->data_points, mt->gauge->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_SUM:
                    points += mt->sum->n_data_points;
                    use_kind(&b, kind_of(mt->sum->aggregation_temporality, mt->sum->is_monotonic));
                    number_points(&b, mt->name, mt->sum->data_points, mt->sum->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_HISTOGRAM:
                    points += mt->histogram->n_data_points;
                    use_kind(&b, kind_of(mt->histogram->aggregation_temporality, true));
                    histogram_points(&b, mt->name, mt->histogram->data_points,
                                     mt->histogram->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
                    points += mt->exponential_histogram->n_data_points;
                    use_kind(&b, kind_of(mt->exponential_histogram->aggregation_temporality, true));
                    exp_histogram_points(&b, mt->name, mt->exponential_histogram->data_points,
                                         mt->exponential_histogram->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_SUMMARY:
                    points += mt->summary->n_data_points;
                    use_kind(&b, RF_KIND_GAUGE); /* quantiles of a window, sum and count as sent */
                    summary_points(&b, mt->name, mt->summary->data_points,
                                   mt->summary->n_data_points);
                    break;
                default: break;
                }
            }
        }
    }
    rf_decode_text_flush(ps, &rx, &b.rejected);
    rf_parse_set_kind(in->parse, RF_KIND_GAUGE);
    rf_parse_flush(in->parse);
    rf_parse_capture_first_reject(in->parse, NULL);
    rf_parse_set_precision(in->parse, in->precision);
    rf_decode_arena_reset(ps);
    resp->points = rf_parse_counter(in->parse, RF_PC_EVENTS) - ev0;
    rf_stats_add(&ps->otlp[RF_OTLP_C_REQUESTS], 1);
    rf_stats_add(&ps->otlp[RF_OTLP_C_METRICS], metrics);
    rf_stats_add(&ps->otlp[RF_OTLP_C_DATA_POINTS], points);
    rf_stats_add(&ps->otlp[RF_OTLP_C_NO_VALUE], b.no_value);
    rf_stats_add(&ps->otlp[RF_OTLP_C_REJECTED], b.rejected);
    rf_stats_add(&ps->otlp[RF_OTLP_C_DROPPED_ATTRIBUTES], b.dropped);
    char msg[512];
    msg[0] = '\0';
    if (b.rejected)
        snprintf(msg, sizeof(msg), "refused %zu data points; first '%.*s': %s", b.rejected,
                 (int)in->first.excerpt_len, in->first.excerpt,
                 rf_reject_reason_name((enum rf_reject_reason)in->first.reason));
    answer(resp, json, b.rejected, msg);
    rf_http_ingest_sync_park(in, resp);
}

int rf_http_ingest_add_otlp(rf_http_server *s, rf_http_ingest *in, rf_err *err)
{
    rf_decode_state *ps = rf_decode_state_get(s, in, 0, err);
    if (!ps)
        return -(err && err->code ? err->code : ENOMEM);
    int rc =
        rf_http_server_route(s, "/v1/metrics", RF_HTTP_POST, "otlp_metrics", on_metrics, ps, err);
    return rc < 0 ? rc : 0;
}
