/* OTLP/HTTP JSON: the protobuf JSON mapping of ExportMetricsServiceRequest
 * (lowerCamelCase keys, 64-bit integers as strings or numbers) read with
 * jansson into the same generated structs the protobuf decoder fills, in
 * the same bounded arena, so one mapping serves both encodings (otlp.c).
 * What the receiver does not read (exemplars, min/max, scope names, bytes values) is
 * ignored, as unknown protobuf fields are. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http_pvt.h"
#include "ingest/http/otlp_metrics.pb-c.h"

typedef struct jctx {
    rf_decode_state *ps;
    const char *why; /* first problem, static text */
} jctx;

static void *jalloc(jctx *j, size_t size)
{
    ProtobufCAllocator a = rf_decode_allocator(j->ps);
    void *p = a.alloc(a.allocator_data, size ? size : 1);
    if (!p && !j->why)
        j->why = "decoded request past the decoder's memory bound";
    return p;
}

static bool fail(jctx *j, const char *why)
{
    if (!j->why)
        j->why = why;
    return false;
}

/* A uint64 written as a JSON string of digits or as a non-negative integer. */
static bool get_u64(jctx *j, const json_t *v, uint64_t *out)
{
    if (!v) {
        *out = 0;
        return true;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (*s >= '0' && *s <= '9' && !*end && errno == 0) {
            *out = u;
            return true;
        }
    }
    return fail(j, "a 64-bit unsigned field is neither digits nor a non-negative integer");
}

static bool get_i64(jctx *j, const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*s && !*end && errno == 0) {
            *out = x;
            return true;
        }
    }
    return fail(j, "a 64-bit integer field is neither digits nor an integer");
}

/* A double as a number, or as the strings "NaN", "Infinity", "-Infinity"
 * (the proto3 JSON mapping's spelling). */
static bool get_f64(jctx *j, const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity")) {
            *out = strtod(s, NULL);
            return true;
        }
    }
    return fail(j, "a double field is not a number");
}

/* A uint32 (flags) as a number; absent: 0. */
static uint32_t get_u32(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
                   json_integer_value(v) <= (json_int_t)UINT32_MAX
               ? (uint32_t)json_integer_value(v)
               : 0;
}

/* AggregationTemporality as its number or its name (the proto3 JSON
 * mapping allows both; OTLP/JSON senders use the number). */
static int32_t get_temporality(const json_t *v)
{
    if (json_is_integer(v))
        return (int32_t)json_integer_value(v);
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "AGGREGATION_TEMPORALITY_DELTA"))
        return 1;
    if (s && !strcmp(s, "AGGREGATION_TEMPORALITY_CUMULATIVE"))
        return 2;
    return 0;
}

static char *dup_str(jctx *j, const json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    size_t n = strlen(s);
    char *d = jalloc(j, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* An array of n pointers to messages of `size` bytes, each initialised. */
static void **msg_array(jctx *j, size_t n, size_t size, void (*init)(void *))
{
    void **a = jalloc(j, n * sizeof(void *) + 1);
    if (!a)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(a[i] = jalloc(j, size)))
            return NULL;
        init(a[i]);
    }
    return a;
}

#define MSG_ARRAY(j, n, T, init_fn)                                                                \
    ((T **)msg_array((j), (n), sizeof(T), (void (*)(void *))(init_fn)))

static bool attributes(jctx *j, const json_t *arr, RfOtlp__KeyValue ***out, size_t *n_out)
{
    *n_out = 0;
    *out = NULL;
    if (!arr)
        return true;
    if (!json_is_array(arr))
        return fail(j, "attributes is not an array");
    size_t n = json_array_size(arr);
    RfOtlp__KeyValue **kv = MSG_ARRAY(j, n, RfOtlp__KeyValue, rf_otlp__key_value__init);
    if (!kv)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        const json_t *val = json_object_get(e, "value");
        if (!(kv[i]->key = dup_str(j, json_object_get(e, "key"))))
            return false;
        RfOtlp__AnyValue *av = jalloc(j, sizeof(*av));
        if (!av)
            return false;
        rf_otlp__any_value__init(av);
        kv[i]->value = av;
        const json_t *x;
        if ((x = json_object_get(val, "stringValue"))) {
            av->value_case = RF_OTLP__ANY_VALUE__VALUE_STRING_VALUE;
            if (!(av->string_value = dup_str(j, x)))
                return false;
        } else if ((x = json_object_get(val, "boolValue"))) {
            av->value_case = RF_OTLP__ANY_VALUE__VALUE_BOOL_VALUE;
            av->bool_value = json_is_true(x);
        } else if ((x = json_object_get(val, "intValue"))) {
            av->value_case = RF_OTLP__ANY_VALUE__VALUE_INT_VALUE;
            if (!get_i64(j, x, &av->int_value))
                return false;
        } else if ((x = json_object_get(val, "doubleValue"))) {
            av->value_case = RF_OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE;
            if (!get_f64(j, x, &av->double_value))
                return false;
        } /* arrays, kvlists, bytes: not tags, left unset */
    }
    *out = kv;
    *n_out = n;
    return true;
}

static const json_t *points_of(jctx *j, const json_t *data, size_t *n)
{
    const json_t *dp = json_object_get(data, "dataPoints");
    *n = 0;
    if (!dp)
        return NULL;
    if (!json_is_array(dp)) {
        fail(j, "dataPoints is not an array");
        return NULL;
    }
    *n = json_array_size(dp);
    return dp;
}

static bool number_points(jctx *j, const json_t *data, RfOtlp__NumberDataPoint ***out,
                          size_t *n_out)
{
    size_t n;
    const json_t *dp = points_of(j, data, &n);
    if (j->why)
        return false;
    RfOtlp__NumberDataPoint **p =
        MSG_ARRAY(j, n, RfOtlp__NumberDataPoint, rf_otlp__number_data_point__init);
    if (!p)
        return false;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(dp, i), *x;
        if (!attributes(j, json_object_get(e, "attributes"), &p[i]->attributes,
                        &p[i]->n_attributes) ||
            !get_u64(j, json_object_get(e, "timeUnixNano"), &p[i]->time_unix_nano))
            return false;
        p[i]->flags = get_u32(json_object_get(e, "flags"));
        if ((x = json_object_get(e, "asDouble"))) {
            p[i]->value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
            if (!get_f64(j, x, &p[i]->as_double))
                return false;
        } else if ((x = json_object_get(e, "asInt"))) {
            p[i]->value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_INT;
            if (!get_i64(j, x, &p[i]->as_int))
                return false;
        }
    }
    *out = p;
    *n_out = n;
    return true;
}

static bool histogram_points(jctx *j, const json_t *data, RfOtlp__HistogramDataPoint ***out,
                             size_t *n_out)
{
    size_t n;
    const json_t *dp = points_of(j, data, &n);
    if (j->why)
        return false;
    RfOtlp__HistogramDataPoint **p =
        MSG_ARRAY(j, n, RfOtlp__HistogramDataPoint, rf_otlp__histogram_data_point__init);
    if (!p)
        return false;
    for (size_t i = 0; i < n; i++) {
        RfOtlp__HistogramDataPoint *h = p[i];
        const json_t *e = json_array_get(dp, i), *x;
        if (!attributes(j, json_object_get(e, "attributes"), &h->attributes, &h->n_attributes) ||
            !get_u64(j, json_object_get(e, "timeUnixNano"), &h->time_unix_nano) ||
            !get_u64(j, json_object_get(e, "count"), &h->count))
            return false;
        h->flags = get_u32(json_object_get(e, "flags"));
        if ((x = json_object_get(e, "sum"))) {
            h->has_sum_case = RF_OTLP__HISTOGRAM_DATA_POINT__HAS_SUM_SUM;
            if (!get_f64(j, x, &h->sum))
                return false;
        }
        const json_t *bc = json_object_get(e, "bucketCounts"),
                     *eb = json_object_get(e, "explicitBounds");
        h->n_bucket_counts = json_is_array(bc) ? json_array_size(bc) : 0;
        h->n_explicit_bounds = json_is_array(eb) ? json_array_size(eb) : 0;
        if (!(h->bucket_counts = jalloc(j, h->n_bucket_counts * sizeof(uint64_t) + 1)) ||
            !(h->explicit_bounds = jalloc(j, h->n_explicit_bounds * sizeof(double) + 1)))
            return false;
        for (size_t k = 0; k < h->n_bucket_counts; k++)
            if (!get_u64(j, json_array_get(bc, k), &h->bucket_counts[k]))
                return false;
        for (size_t k = 0; k < h->n_explicit_bounds; k++)
            if (!get_f64(j, json_array_get(eb, k), &h->explicit_bounds[k]))
                return false;
    }
    *out = p;
    *n_out = n;
    return true;
}

/* An array of n numbers (uint64 as strings or integers, doubles) of a JSON
 * array, in the arena. */
static bool u64_array(jctx *j, const json_t *arr, uint64_t **out, size_t *n_out)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (arr && !json_is_array(arr))
        return fail(j, "a list of counts is not an array");
    if (!(*out = jalloc(j, n * sizeof(uint64_t) + 1)))
        return false;
    for (size_t k = 0; k < n; k++)
        if (!get_u64(j, json_array_get(arr, k), &(*out)[k]))
            return false;
    *n_out = n;
    return true;
}

static bool exp_buckets(jctx *j, const json_t *o,
                        RfOtlp__ExponentialHistogramDataPoint__Buckets **out)
{
    *out = NULL;
    if (!o)
        return true;
    RfOtlp__ExponentialHistogramDataPoint__Buckets *bk = jalloc(j, sizeof(*bk));
    if (!bk)
        return false;
    rf_otlp__exponential_histogram_data_point__buckets__init(bk);
    int64_t off = 0;
    const json_t *x = json_object_get(o, "offset");
    if (x && (!get_i64(j, x, &off) || off < INT32_MIN || off > INT32_MAX))
        return fail(j, "an exponential histogram offset is not a 32-bit integer");
    bk->offset = (int32_t)off;
    *out = bk;
    return u64_array(j, json_object_get(o, "bucketCounts"), &bk->bucket_counts,
                     &bk->n_bucket_counts);
}

static bool exp_histogram_points(jctx *j, const json_t *data,
                                 RfOtlp__ExponentialHistogramDataPoint ***out, size_t *n_out)
{
    size_t n;
    const json_t *dp = points_of(j, data, &n);
    if (j->why)
        return false;
    RfOtlp__ExponentialHistogramDataPoint **p =
        MSG_ARRAY(j, n, RfOtlp__ExponentialHistogramDataPoint,
                  rf_otlp__exponential_histogram_data_point__init);
    if (!p)
        return false;
    for (size_t i = 0; i < n; i++) {
        RfOtlp__ExponentialHistogramDataPoint *h = p[i];
        const json_t *e = json_array_get(dp, i), *x;
        int64_t scale = 0;
        if (!attributes(j, json_object_get(e, "attributes"), &h->attributes, &h->n_attributes) ||
            !get_u64(j, json_object_get(e, "timeUnixNano"), &h->time_unix_nano) ||
            !get_u64(j, json_object_get(e, "count"), &h->count) ||
            !get_u64(j, json_object_get(e, "zeroCount"), &h->zero_count) ||
            ((x = json_object_get(e, "scale")) && !get_i64(j, x, &scale)))
            return false;
        if (scale < INT32_MIN || scale > INT32_MAX)
            return fail(j, "an exponential histogram scale is not a 32-bit integer");
        h->scale = (int32_t)scale;
        h->flags = get_u32(json_object_get(e, "flags"));
        if ((x = json_object_get(e, "sum"))) {
            h->has_sum_case = RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__HAS_SUM_SUM;
            if (!get_f64(j, x, &h->sum))
                return false;
        }
        if (((x = json_object_get(e, "zeroThreshold")) && !get_f64(j, x, &h->zero_threshold)) ||
            !exp_buckets(j, json_object_get(e, "positive"), &h->positive) ||
            !exp_buckets(j, json_object_get(e, "negative"), &h->negative))
            return false;
    }
    *out = p;
    *n_out = n;
    return true;
}

static bool summary_points(jctx *j, const json_t *data, RfOtlp__SummaryDataPoint ***out,
                           size_t *n_out)
{
    size_t n;
    const json_t *dp = points_of(j, data, &n);
    if (j->why)
        return false;
    RfOtlp__SummaryDataPoint **p =
        MSG_ARRAY(j, n, RfOtlp__SummaryDataPoint, rf_otlp__summary_data_point__init);
    if (!p)
        return false;
    for (size_t i = 0; i < n; i++) {
        RfOtlp__SummaryDataPoint *s = p[i];
        const json_t *e = json_array_get(dp, i), *x;
        if (!attributes(j, json_object_get(e, "attributes"), &s->attributes, &s->n_attributes) ||
            !get_u64(j, json_object_get(e, "timeUnixNano"), &s->time_unix_nano) ||
            !get_u64(j, json_object_get(e, "count"), &s->count) ||
            ((x = json_object_get(e, "sum")) && !get_f64(j, x, &s->sum)))
            return false;
        s->flags = get_u32(json_object_get(e, "flags"));
        const json_t *qv = json_object_get(e, "quantileValues");
        if (qv && !json_is_array(qv))
            return fail(j, "quantileValues is not an array");
        size_t nq = qv ? json_array_size(qv) : 0;
        if (!(s->quantile_values = MSG_ARRAY(j, nq, RfOtlp__SummaryDataPoint__ValueAtQuantile,
                                             rf_otlp__summary_data_point__value_at_quantile__init)))
            return false;
        s->n_quantile_values = nq;
        for (size_t q = 0; q < nq; q++) {
            const json_t *v = json_array_get(qv, q);
            if (((x = json_object_get(v, "quantile")) &&
                 !get_f64(j, x, &s->quantile_values[q]->quantile)) ||
                ((x = json_object_get(v, "value")) &&
                 !get_f64(j, x, &s->quantile_values[q]->value)))
                return false;
        }
    }
    *out = p;
    *n_out = n;
    return true;
}

static bool metric(jctx *j, const json_t *e, RfOtlp__Metric *m)
{
    const json_t *d;
    if (!(m->name = dup_str(j, json_object_get(e, "name"))))
        return false;
    if ((d = json_object_get(e, "gauge"))) {
        m->data_case = RF_OTLP__METRIC__DATA_GAUGE;
        if (!(m->gauge = jalloc(j, sizeof(*m->gauge))))
            return false;
        rf_otlp__gauge__init(m->gauge);
        return number_points(j, d, &m->gauge->data_points, &m->gauge->n_data_points);
    }
    if ((d = json_object_get(e, "sum"))) {
        m->data_case = RF_OTLP__METRIC__DATA_SUM;
        if (!(m->sum = jalloc(j, sizeof(*m->sum))))
            return false;
        rf_otlp__sum__init(m->sum);
        m->sum->is_monotonic = json_is_true(json_object_get(d, "isMonotonic"));
        m->sum->aggregation_temporality =
            get_temporality(json_object_get(d, "aggregationTemporality"));
        return number_points(j, d, &m->sum->data_points, &m->sum->n_data_points);
    }
    if ((d = json_object_get(e, "histogram"))) {
        m->data_case = RF_OTLP__METRIC__DATA_HISTOGRAM;
        if (!(m->histogram = jalloc(j, sizeof(*m->histogram))))
            return false;
        rf_otlp__histogram__init(m->histogram);
        m->histogram->aggregation_temporality =
            get_temporality(json_object_get(d, "aggregationTemporality"));
        return histogram_points(j, d, &m->histogram->data_points, &m->histogram->n_data_points);
    }
    if ((d = json_object_get(e, "exponentialHistogram"))) {
        m->data_case = RF_OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
        if (!(m->exponential_histogram = jalloc(j, sizeof(*m->exponential_histogram))))
            return false;
        rf_otlp__exponential_histogram__init(m->exponential_histogram);
        m->exponential_histogram->aggregation_temporality =
            get_temporality(json_object_get(d, "aggregationTemporality"));
        return exp_histogram_points(j, d, &m->exponential_histogram->data_points,
                                    &m->exponential_histogram->n_data_points);
    }
    if ((d = json_object_get(e, "summary"))) {
        m->data_case = RF_OTLP__METRIC__DATA_SUMMARY;
        if (!(m->summary = jalloc(j, sizeof(*m->summary))))
            return false;
        rf_otlp__summary__init(m->summary);
        return summary_points(j, d, &m->summary->data_points, &m->summary->n_data_points);
    }
    return true; /* no data: nothing to store */
}

static const json_t *array_of(jctx *j, const json_t *o, const char *key, size_t *n)
{
    const json_t *a = json_object_get(o, key);
    *n = 0;
    if (!a)
        return NULL;
    if (!json_is_array(a)) {
        fail(j, "an OTLP list is not a JSON array");
        return NULL;
    }
    *n = json_array_size(a);
    return a;
}

RfOtlp__ExportMetricsServiceRequest *rf_otlp_from_json(rf_decode_state *ps, const uint8_t *body,
                                                       size_t len, rf_err *err)
{
    jctx j = {.ps = ps};
    json_error_t jerr;
    /* jansson's own nodes are malloc'ed, a few times the text at most; the
     * caller bounds the text (RF_OTLP_JSON_MAX). */
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        rf_err_set(err, EBADMSG, "body is not a JSON object");
        return NULL;
    }
    RfOtlp__ExportMetricsServiceRequest *rq = jalloc(&j, sizeof(*rq));
    size_t nr;
    const json_t *rms = rq ? array_of(&j, root, "resourceMetrics", &nr) : NULL;
    if (rq) {
        rf_otlp__export_metrics_service_request__init(rq);
        rq->resource_metrics =
            MSG_ARRAY(&j, nr, RfOtlp__ResourceMetrics, rf_otlp__resource_metrics__init);
        rq->n_resource_metrics = rq->resource_metrics ? nr : 0;
    }
    for (size_t r = 0; rq && !j.why && r < rq->n_resource_metrics; r++) {
        const json_t *rm = json_array_get(rms, r);
        RfOtlp__ResourceMetrics *out = rq->resource_metrics[r];
        const json_t *res = json_object_get(rm, "resource");
        if (res) {
            if (!(out->resource = jalloc(&j, sizeof(*out->resource))))
                break;
            rf_otlp__resource__init(out->resource);
            if (!attributes(&j, json_object_get(res, "attributes"), &out->resource->attributes,
                            &out->resource->n_attributes))
                break;
        }
        size_t ns;
        const json_t *sms = array_of(&j, rm, "scopeMetrics", &ns);
        if (j.why || !(out->scope_metrics =
                           MSG_ARRAY(&j, ns, RfOtlp__ScopeMetrics, rf_otlp__scope_metrics__init)))
            break;
        out->n_scope_metrics = ns;
        for (size_t s = 0; s < ns && !j.why; s++) {
            size_t nm;
            const json_t *ms = array_of(&j, json_array_get(sms, s), "metrics", &nm);
            RfOtlp__ScopeMetrics *sm = out->scope_metrics[s];
            const json_t *scope = json_object_get(json_array_get(sms, s), "scope");
            if (j.why || !(sm->metrics = MSG_ARRAY(&j, nm, RfOtlp__Metric, rf_otlp__metric__init)))
                break;
            if (scope) {
                if (!(sm->scope = jalloc(&j, sizeof(*sm->scope))))
                    break;
                rf_otlp__instrumentation_scope__init(sm->scope);
                if (!attributes(&j, json_object_get(scope, "attributes"), &sm->scope->attributes,
                                &sm->scope->n_attributes))
                    break;
            }
            sm->n_metrics = nm;
            for (size_t m = 0; m < nm; m++)
                if (!metric(&j, json_array_get(ms, m), sm->metrics[m]))
                    break;
        }
    }
    json_decref(root);
    if (!rq && !j.why)
        j.why = "decoded request past the decoder's memory bound";
    if (j.why) {
        rf_err_set(err, ps->arena_full ? ENOMEM : EBADMSG, "%s", j.why);
        return NULL;
    }
    return rq;
}
