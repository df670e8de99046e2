/* OTLP/HTTP metrics receiver, protobuf encoding (contract in http.h):
 * ExportMetricsServiceRequest (protobuf-c, code generated from
 * otlp_metrics.proto at build time) -> line-protocol text -> the worker's
 * parse context, as remote_write does (decode.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ingest/http/http_pvt.h"
#include "ingest/http/otlp_metrics.pb-c.h"

/* Resource and scope attributes that become tags: the ones that name where a
 * metric comes from; the others (SDK versions, process details) would
 * multiply series for nothing. Data point attributes are always tags. */
static const char *const resource_tags[] = {"service.name", "service.namespace",
                                            "service.instance.id", "host.name"};

static const char *const counter_names[RF_OTLP_C__COUNT] = {
    [RF_OTLP_C_REQUESTS] = "requests",        [RF_OTLP_C_METRICS] = "metrics",
    [RF_OTLP_C_DATA_POINTS] = "data_points",  [RF_OTLP_C_UNSUPPORTED] = "unsupported_points",
    [RF_OTLP_C_REJECTED] = "rejected_points",
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

static bool allowed(const char *key)
{
    for (size_t i = 0; i < sizeof(resource_tags) / sizeof(resource_tags[0]); i++)
        if (!strcmp(key, resource_tags[i]))
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
    size_t rejected; /* data points the parser or the mapping refused */
    char res[4096];  /* ",k=v..." of the resource's allowed attributes, escaped */
    size_t res_tags_len;
} batch;

/* "name,resource tags,point attributes" into ps->prefix; its length or 0. */
static size_t point_prefix(batch *b, const char *name, RfOtlp__KeyValue **attrs, size_t n)
{
    rf_decode_state *ps = b->ps;
    size_t o = 0, cap = sizeof(ps->prefix);
    if (!*name || !rf_lp_put_escaped(ps->prefix, &o, cap, name, false))
        return 0;
    if (o + b->res_tags_len > cap)
        return 0;
    memcpy(ps->prefix + o, b->res, b->res_tags_len);
    o += b->res_tags_len;
    for (size_t i = 0; i < n; i++)
        if (!put_attr(ps->prefix, &o, cap, attrs[i]))
            return 0;
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
        t[o++] = ' ';
        o += rf_lp_put_i64(t + o, (int64_t)t_ns);
    } /* 0: no time given, the receipt's stands */
    t[o++] = '\n';
    ps->text_len += o;
}

static void refuse_point(batch *b, enum rf_reject_reason why, size_t pl)
{
    rf_parse_reject_external(b->ps->in->parse, b->rx, why, b->ps->prefix, pl);
    b->rejected++;
}

static void number_points(batch *b, const char *name, RfOtlp__NumberDataPoint **dp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t pl = point_prefix(b, name, dp[i]->attributes, dp[i]->n_attributes);
        if (!pl) {
            refuse_point(b, RF_REJ_KEY_TOO_LONG, strlen(name));
            continue;
        }
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

/* Fields count, sum and the cumulative bucket counts le_<bound> (le_+Inf
 * last), as Prometheus names them. */
static void histogram_points(batch *b, const char *name, RfOtlp__HistogramDataPoint **dp, size_t n)
{
    static char f[RF_DECODE_TEXT_CAP / 2]; /* owning thread only */
    for (size_t i = 0; i < n; i++) {
        const RfOtlp__HistogramDataPoint *h = dp[i];
        size_t pl = point_prefix(b, name, h->attributes, h->n_attributes);
        if (!pl) {
            refuse_point(b, RF_REJ_KEY_TOO_LONG, strlen(name));
            continue;
        }
        if (h->count > (uint64_t)INT64_MAX ||
            (h->n_bucket_counts && h->n_bucket_counts != h->n_explicit_bounds + 1)) {
            refuse_point(b, RF_REJ_SYNTAX, pl); /* buckets and bounds must agree */
            continue;
        }
        size_t fl = (size_t)snprintf(f, sizeof(f), "count=%llui", (unsigned long long)h->count);
        if (isfinite(h->sum)) {
            memcpy(f + fl, ",sum=", 5);
            fl += 5;
            fl += rf_lp_put_value(f + fl, h->sum);
        }
        uint64_t cum = 0;
        bool fits = true;
        for (size_t k = 0; k < h->n_bucket_counts && fits; k++) {
            cum += h->bucket_counts[k];
            char bound[40];
            if (k < h->n_explicit_bounds)
                snprintf(bound, sizeof(bound), "%.17g", h->explicit_bounds[k]);
            else
                snprintf(bound, sizeof(bound), "+Inf");
            if (fl + 80 > sizeof(f) || cum > (uint64_t)INT64_MAX) {
                fits = false;
                break;
            }
            fl += (size_t)snprintf(f + fl, sizeof(f) - fl, ",le_%s=%llui", bound,
                                   (unsigned long long)cum);
        }
        if (!fits) {
            refuse_point(b, RF_REJ_TOO_MANY_FIELDS, pl);
            continue;
        }
        emit_line(b, pl, f, fl, h->time_unix_nano);
    }
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
    uint64_t metrics = 0, points = 0, unsupported = 0;
    for (size_t r = 0; r < rq->n_resource_metrics; r++) {
        const RfOtlp__ResourceMetrics *rm = rq->resource_metrics[r];
        b.res_tags_len = 0;
        if (rm->resource)
            for (size_t a = 0; a < rm->resource->n_attributes; a++)
                if (allowed(rm->resource->attributes[a]->key) &&
                    !put_attr(b.res, &b.res_tags_len, sizeof(b.res), rm->resource->attributes[a]))
                    b.res_tags_len = 0; /* cannot happen with 4 short keys; stay safe */
        for (size_t s = 0; s < rm->n_scope_metrics; s++) {
            const RfOtlp__ScopeMetrics *sm = rm->scope_metrics[s];
            metrics += sm->n_metrics;
            for (size_t m = 0; m < sm->n_metrics; m++) {
                const RfOtlp__Metric *mt = sm->metrics[m];
                switch (mt->data_case) {
                case RF_OTLP__METRIC__DATA_GAUGE:
                    points += mt->gauge->n_data_points;
                    number_points(&b, mt->name, mt->gauge->data_points, mt->gauge->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_SUM:
                    points += mt->sum->n_data_points;
                    number_points(&b, mt->name, mt->sum->data_points, mt->sum->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_HISTOGRAM:
                    points += mt->histogram->n_data_points;
                    histogram_points(&b, mt->name, mt->histogram->data_points,
                                     mt->histogram->n_data_points);
                    break;
                case RF_OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
                    unsupported += mt->exponential_histogram->n_data_points;
                    break;
                case RF_OTLP__METRIC__DATA_SUMMARY:
                    unsupported += mt->summary->n_data_points;
                    break;
                default: break;
                }
            }
        }
    }
    rf_decode_text_flush(ps, &rx, &b.rejected);
    rf_parse_flush(in->parse);
    rf_parse_capture_first_reject(in->parse, NULL);
    rf_parse_set_precision(in->parse, in->precision);
    rf_decode_arena_reset(ps);
    resp->points = rf_parse_counter(in->parse, RF_PC_EVENTS) - ev0;
    rf_stats_add(&ps->otlp[RF_OTLP_C_REQUESTS], 1);
    rf_stats_add(&ps->otlp[RF_OTLP_C_METRICS], metrics);
    rf_stats_add(&ps->otlp[RF_OTLP_C_DATA_POINTS], points + unsupported);
    rf_stats_add(&ps->otlp[RF_OTLP_C_UNSUPPORTED], unsupported);
    rf_stats_add(&ps->otlp[RF_OTLP_C_REJECTED], b.rejected);
    char msg[512];
    if (b.rejected)
        snprintf(msg, sizeof(msg), "refused %zu data points; first '%.*s': %s%s", b.rejected,
                 (int)in->first.excerpt_len, in->first.excerpt,
                 rf_reject_reason_name((enum rf_reject_reason)in->first.reason),
                 unsupported ? "; exponential histograms and summaries are not stored" : "");
    else
        snprintf(msg, sizeof(msg), "exponential histograms and summaries are not stored");
    answer(resp, json, b.rejected + unsupported, msg);
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
