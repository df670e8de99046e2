/* OTLP/HTTP metrics on the HTTP layer: requests built with the generated
 * protobuf-c code, checked point by point (gauge, sums of each temporality,
 * histogram, exponential histogram, summary), the resource and scope
 * attribute allow-lists, partial_success for what is refused, and bodies
 * that are not the message. */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "ingest/http/http.h"
#include "ingest/http/otlp_metrics.pb-c.h"
#include "ingest/listen/listen.h"
#include "tests/ingest/ingest_test_util.h"

typedef struct ofx {
    fixture *pf;
    rf_http_server *srv;
    rf_http_conn *conn;
    rf_http_ingest in;
    char out[8192];
    size_t out_len;
    const char *body; /* of the last answer */
    size_t body_len;
} ofx;

static ofx *ofx_new(void)
{
    ofx *h = calloc(1, sizeof(*h));
    rf_parse_config cfg = {.source_id = 5};
    h->pf = fixture_new(&cfg);
    rf_err err;
    h->srv = rf_http_server_new(NULL, &err);
    h->in = (rf_http_ingest){.parse = h->pf->ctx};
    assert_int_equal(rf_http_ingest_add_otlp(h->srv, &h->in, &err), 0);
    h->conn = rf_http_conn_new(h->srv, "10.0.0.1:1", &err);
    return h;
}

static void ofx_free(ofx *h)
{
    rf_http_conn_free(h->conn);
    rf_http_ingest_release(&h->in);
    rf_http_server_free(h->srv);
    fixture_free(h->pf);
    free(h);
}

static const char *post_raw(ofx *h, const char *ctype, const void *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /v1/metrics HTTP/1.1\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
                     ctype, len);
    rf_http_conn_feed(h->conn, head, (size_t)n, T_WALL, T_MONO);
    rf_http_conn_feed(h->conn, body, len, T_WALL, T_MONO);
    const char *o;
    size_t ol;
    rf_http_conn_output(h->conn, &o, &ol);
    assert_true(ol < sizeof(h->out));
    memcpy(h->out, o, ol);
    h->out[ol] = '\0';
    h->out_len = ol;
    rf_http_conn_consume(h->conn, ol);
    const char *sep = strstr(h->out, "\r\n\r\n");
    h->body = sep ? sep + 4 : h->out + ol;
    h->body_len = (size_t)(h->out + ol - h->body);
    return h->out;
}

static const char *post_rq(ofx *h, const RfOtlp__ExportMetricsServiceRequest *rq)
{
    size_t n = rf_otlp__export_metrics_service_request__get_packed_size(rq);
    uint8_t *pb = malloc(n + 1);
    rf_otlp__export_metrics_service_request__pack(rq, pb);
    const char *r = post_raw(h, "application/x-protobuf", pb, n);
    free(pb);
    return r;
}

static bool starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* A string attribute. */
typedef struct attr {
    RfOtlp__KeyValue kv;
    RfOtlp__AnyValue v;
} attr;

static RfOtlp__KeyValue *attr_str(attr *a, const char *k, const char *v)
{
    rf_otlp__key_value__init(&a->kv);
    rf_otlp__any_value__init(&a->v);
    a->kv.key = (char *)k;
    a->kv.value = &a->v;
    a->v.value_case = RF_OTLP__ANY_VALUE__VALUE_STRING_VALUE;
    a->v.string_value = (char *)v;
    return &a->kv;
}

/* One resource (service.name=api, telemetry.sdk.version=1.2), one scope, and
 * the given metrics. */
typedef struct req_b {
    RfOtlp__ExportMetricsServiceRequest rq;
    RfOtlp__ResourceMetrics rm, *rmp[1];
    RfOtlp__Resource res;
    attr ra[2];
    RfOtlp__KeyValue *rap[2];
    RfOtlp__ScopeMetrics sm, *smp[1];
} req_b;

static void req_init(req_b *b, RfOtlp__Metric **metrics, size_t n)
{
    rf_otlp__export_metrics_service_request__init(&b->rq);
    rf_otlp__resource_metrics__init(&b->rm);
    rf_otlp__resource__init(&b->res);
    rf_otlp__scope_metrics__init(&b->sm);
    b->rap[0] = attr_str(&b->ra[0], "service.name", "api");
    b->rap[1] = attr_str(&b->ra[1], "telemetry.sdk.version", "1.2");
    b->res.attributes = b->rap;
    b->res.n_attributes = 2;
    b->rm.resource = &b->res;
    b->sm.metrics = metrics;
    b->sm.n_metrics = n;
    b->smp[0] = &b->sm;
    b->rm.scope_metrics = b->smp;
    b->rm.n_scope_metrics = 1;
    b->rmp[0] = &b->rm;
    b->rq.resource_metrics = b->rmp;
    b->rq.n_resource_metrics = 1;
}

static void test_gauge_sum_histogram(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    /* gauge: two points, a double and an int, with a point attribute */
    attr pa;
    RfOtlp__KeyValue *pap[] = {attr_str(&pa, "core", "0")};
    RfOtlp__NumberDataPoint g1 = RF_OTLP__NUMBER_DATA_POINT__INIT, g2 = g1, *gp[] = {&g1, &g2};
    g1.attributes = pap;
    g1.n_attributes = 1;
    g1.time_unix_nano = 1700000000000000001ull;
    g1.value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    g1.as_double = 0.75;
    g2.time_unix_nano = 1700000000000000002ull;
    g2.value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_INT;
    g2.as_int = -42;
    RfOtlp__Gauge gauge = RF_OTLP__GAUGE__INIT;
    gauge.data_points = gp;
    gauge.n_data_points = 2;
    RfOtlp__Metric m1 = RF_OTLP__METRIC__INIT;
    m1.name = "cpu.usage";
    m1.data_case = RF_OTLP__METRIC__DATA_GAUGE;
    m1.gauge = &gauge;
    /* sum: cumulative monotonic, no time (receipt) */
    RfOtlp__NumberDataPoint s1 = RF_OTLP__NUMBER_DATA_POINT__INIT, *sp[] = {&s1};
    s1.value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_INT;
    s1.as_int = 1000;
    RfOtlp__Sum sum = RF_OTLP__SUM__INIT;
    sum.data_points = sp;
    sum.n_data_points = 1;
    sum.is_monotonic = 1;
    sum.aggregation_temporality = 2;
    RfOtlp__Metric m2 = RF_OTLP__METRIC__INIT;
    m2.name = "http.requests";
    m2.data_case = RF_OTLP__METRIC__DATA_SUM;
    m2.sum = &sum;
    /* histogram: bounds 0.1, 1; counts 3, 4, 1 */
    uint64_t counts[] = {3, 4, 1};
    double bounds[] = {0.1, 1};
    RfOtlp__HistogramDataPoint h1 = RF_OTLP__HISTOGRAM_DATA_POINT__INIT, *hp[] = {&h1};
    h1.time_unix_nano = 1700000000000000003ull;
    h1.count = 8;
    h1.has_sum_case = RF_OTLP__HISTOGRAM_DATA_POINT__HAS_SUM_SUM;
    h1.sum = 3.5;
    h1.bucket_counts = counts;
    h1.n_bucket_counts = 3;
    h1.explicit_bounds = bounds;
    h1.n_explicit_bounds = 2;
    RfOtlp__Histogram hist = RF_OTLP__HISTOGRAM__INIT;
    hist.data_points = hp;
    hist.n_data_points = 1;
    RfOtlp__Metric m3 = RF_OTLP__METRIC__INIT;
    m3.name = "latency";
    m3.data_case = RF_OTLP__METRIC__DATA_HISTOGRAM;
    m3.histogram = &hist;
    RfOtlp__Metric *ms[] = {&m1, &m2, &m3};
    req_b b;
    req_init(&b, ms, 3);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200 OK\r\n"));
    assert_int_equal(h->body_len, 0); /* an empty ExportMetricsServiceResponse */
    assert_non_null(strstr(h->out, "Content-Length: 0\r\n"));
    fixture *f = h->pf;
    /* 2 gauge + 1 sum + (count, sum, 3 buckets) */
    assert_int_equal(n_data(f), 8);
    const rf_event *e = data_ev(f, 0);
    assert_int_equal(e->series_id, id_of("cpu.usage,core=0,service.name=api value"));
    assert_true(e->value.f64 == 0.75);
    assert_int_equal(e->event_time_ns, 1700000000000000001LL);
    e = data_ev(f, 1);
    assert_int_equal(e->series_id, id_of("cpu.usage,service.name=api value"));
    assert_int_equal(e->value_type, RF_VALUE_I64);
    assert_int_equal(e->value.i64, -42);
    e = data_ev(f, 2);
    assert_int_equal(e->series_id, id_of("http.requests,service.name=api value"));
    assert_int_equal(e->value.i64, 1000);
    assert_int_equal(e->event_time_ns, T_WALL);
    /* A monotonic cumulative sum is a counter, the gauge a gauge. */
    assert_int_equal(e->kind, RF_KIND_CUMULATIVE);
    assert_int_equal(data_ev(f, 0)->kind, RF_KIND_GAUGE);
    assert_int_equal(data_ev(f, 5)->kind, RF_KIND_CUMULATIVE); /* a cumulative histogram */
    assert_int_equal(data_ev(f, 3)->series_id, id_of("latency,service.name=api count"));
    assert_int_equal(data_ev(f, 3)->value.i64, 8);
    assert_int_equal(data_ev(f, 4)->series_id, id_of("latency,service.name=api sum"));
    assert_true(data_ev(f, 4)->value.f64 == 3.5);
    assert_int_equal(data_ev(f, 5)->series_id, id_of("latency,service.name=api le_0.1"));
    assert_int_equal(data_ev(f, 5)->value.i64, 3);
    assert_int_equal(data_ev(f, 6)->series_id, id_of("latency,service.name=api le_1"));
    assert_int_equal(data_ev(f, 6)->value.i64, 7);
    assert_int_equal(data_ev(f, 7)->series_id, id_of("latency,service.name=api le_+Inf"));
    assert_int_equal(data_ev(f, 7)->value.i64, 8);
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_DATA_POINTS), 4);
    assert_int_equal(rf_http_counter(h->srv, RF_HTTP_C_POINTS), 8);
    ofx_free(h);
}

static void test_partial_success_and_bad_bodies(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    RfOtlp__NumberDataPoint ok = RF_OTLP__NUMBER_DATA_POINT__INIT, nan = ok, *gp[] = {&ok, &nan};
    ok.value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    ok.as_double = 1;
    nan.value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    nan.as_double = NAN;
    RfOtlp__Gauge gauge = RF_OTLP__GAUGE__INIT;
    gauge.data_points = gp;
    gauge.n_data_points = 2;
    RfOtlp__Metric m1 = RF_OTLP__METRIC__INIT;
    m1.name = "temp";
    m1.data_case = RF_OTLP__METRIC__DATA_GAUGE;
    m1.gauge = &gauge;
    /* A summary point with a quantile outside [0, 1]: refused whole. */
    RfOtlp__SummaryDataPoint__ValueAtQuantile
        q1 = RF_OTLP__SUMMARY_DATA_POINT__VALUE_AT_QUANTILE__INIT,
        *qp[] = {&q1};
    q1.quantile = 1.5;
    q1.value = 3;
    RfOtlp__SummaryDataPoint sp1 = RF_OTLP__SUMMARY_DATA_POINT__INIT, *spp[] = {&sp1};
    sp1.count = 2;
    sp1.quantile_values = qp;
    sp1.n_quantile_values = 1;
    RfOtlp__Summary summ = RF_OTLP__SUMMARY__INIT;
    summ.data_points = spp;
    summ.n_data_points = 1;
    RfOtlp__Metric m2 = RF_OTLP__METRIC__INIT;
    m2.name = "rpc.duration";
    m2.data_case = RF_OTLP__METRIC__DATA_SUMMARY;
    m2.summary = &summ;
    RfOtlp__Metric *ms[] = {&m1, &m2};
    req_b b;
    req_init(&b, ms, 2);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    assert_non_null(strstr(h->out, "Content-Type: application/x-protobuf\r\n"));
    RfOtlp__ExportMetricsServiceResponse *r = rf_otlp__export_metrics_service_response__unpack(
        NULL, h->body_len, (const uint8_t *)h->body);
    assert_non_null(r);
    assert_non_null(r->partial_success);
    assert_int_equal(r->partial_success->rejected_data_points, 2); /* NaN + the summary point */
    assert_non_null(
        strstr(r->partial_success->error_message, "refused 2 data points; first 'temp"));
    assert_non_null(strstr(r->partial_success->error_message, "out_of_range"));
    rf_otlp__export_metrics_service_response__free_unpacked(r, NULL);
    assert_int_equal(n_data(h->pf), 1);
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_REJECTED), 2);

    assert_true(starts(post_raw(h, "application/x-protobuf", "\x0a\x7f\x01", 3), "HTTP/1.1 400"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_BAD_PROTOBUF), 1);
    /* Nesting past what the message declares is skipped, not recursed into:
     * 10,000 levels of AnyValue.kvlist_value (field 6) inside an attribute. */
    size_t depth = 10000, len = 0;
    uint8_t *deep = malloc(depth * 6 + 64);
    /* innermost first, then wrap: field 6 of AnyValue, length-delimited */
    uint8_t *tmp = malloc(depth * 6 + 64);
    size_t tl = 0;
    for (size_t i = 0; i < depth; i++) {
        size_t n = 0;
        tmp[n++] = 0x32;
        size_t v = tl;
        while (v >= 0x80) {
            tmp[n++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        tmp[n++] = (uint8_t)v;
        memmove(tmp + n, deep, tl);
        memcpy(deep, tmp, n + tl);
        tl += n;
    }
    len = tl;
    assert_true(len > depth);
    /* Field 6 is unknown at every level the receiver declares, so the whole
     * nest is skipped as one unknown field: any answer but a crash will do. */
    post_raw(h, "application/x-protobuf", deep, len);
    assert_true(starts(h->out, "HTTP/1.1 "));
    free(deep);
    free(tmp);
    ofx_free(h);
}

/* The same mapping from the protobuf JSON encoding; the answer in JSON. */
static void test_json(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    const char *body =
        "{\"resourceMetrics\":[{\"resource\":{\"attributes\":["
        "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"api\"}},"
        "{\"key\":\"os.type\",\"value\":{\"stringValue\":\"linux\"}}]},"
        "\"scopeMetrics\":[{\"scope\":{\"name\":\"x\"},\"metrics\":["
        "{\"name\":\"cpu.usage\",\"unit\":\"1\",\"gauge\":{\"dataPoints\":["
        "{\"attributes\":[{\"key\":\"core\",\"value\":{\"intValue\":\"3\"}}],"
        "\"timeUnixNano\":\"1700000000000000001\",\"asDouble\":0.5}]}},"
        "{\"name\":\"http.requests\",\"sum\":{\"isMonotonic\":true,\"aggregationTemporality\":2,"
        "\"dataPoints\":[{\"timeUnixNano\":1700000000000000002,\"asInt\":\"12\"}]}},"
        "{\"name\":\"latency\",\"histogram\":{\"dataPoints\":[{\"timeUnixNano\":"
        "\"1700000000000000003\","
        "\"count\":\"5\",\"sum\":2.5,\"bucketCounts\":[\"2\",\"3\"],\"explicitBounds\":[1]}]}},"
        "{\"name\":\"eh\",\"exponentialHistogram\":{\"aggregationTemporality\":1,"
        "\"dataPoints\":[{\"count\":\"3\",\"scale\":0,\"zeroCount\":\"1\","
        "\"positive\":{\"offset\":1,\"bucketCounts\":[\"2\"]},\"flags\":0}]}},"
        "{\"name\":\"rpc\",\"summary\":{\"dataPoints\":[{\"count\":\"4\",\"sum\":10,"
        "\"quantileValues\":[{\"quantile\":0.5,\"value\":2.5}]}]}},"
        "{\"name\":\"temp\",\"gauge\":{\"dataPoints\":[{\"asDouble\":\"NaN\"},"
        "{\"asDouble\":1,\"flags\":1}]}}"
        "]}]}]}";
    assert_true(starts(post_raw(h, "application/json", body, strlen(body)), "HTTP/1.1 200"));
    assert_non_null(strstr(h->out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(h->body, "{\"partialSuccess\":{\"rejectedDataPoints\":\"1\","));
    assert_non_null(strstr(h->body, "first 'temp"));
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_NO_VALUE), 1);
    fixture *f = h->pf;
    /* gauge, sum, histogram (count sum le_1 le_+Inf), exponential (count
     * le_0 le_4 le_+Inf), summary (count sum, quantile) */
    assert_int_equal(n_data(f), 1 + 1 + 4 + 4 + 3);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("cpu.usage,core=3,service.name=api value"));
    assert_true(data_ev(f, 0)->value.f64 == 0.5);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1700000000000000001LL);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("http.requests,service.name=api value"));
    assert_int_equal(data_ev(f, 1)->value.i64, 12);
    assert_int_equal(data_ev(f, 1)->event_time_ns, 1700000000000000002LL);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("latency,service.name=api count"));
    assert_int_equal(data_ev(f, 4)->series_id, id_of("latency,service.name=api le_1"));
    assert_int_equal(data_ev(f, 4)->value.i64, 2);
    assert_int_equal(data_ev(f, 5)->series_id, id_of("latency,service.name=api le_+Inf"));
    assert_int_equal(data_ev(f, 5)->value.i64, 5);
    /* scale 0: positive bucket 1 is (2, 4]; delta: increments */
    assert_int_equal(data_ev(f, 6)->series_id, id_of("eh,service.name=api count"));
    assert_int_equal(data_ev(f, 6)->kind, RF_KIND_COUNTER);
    assert_int_equal(data_ev(f, 7)->series_id, id_of("eh,service.name=api le_0"));
    assert_int_equal(data_ev(f, 7)->value.i64, 1);
    assert_int_equal(data_ev(f, 8)->series_id, id_of("eh,service.name=api le_4"));
    assert_int_equal(data_ev(f, 8)->value.i64, 3);
    assert_int_equal(data_ev(f, 9)->series_id, id_of("eh,service.name=api le_+Inf"));
    assert_int_equal(data_ev(f, 9)->value.i64, 3);
    assert_int_equal(data_ev(f, 10)->series_id, id_of("rpc,service.name=api count"));
    assert_int_equal(data_ev(f, 10)->kind, RF_KIND_GAUGE);
    assert_int_equal(data_ev(f, 11)->series_id, id_of("rpc,service.name=api sum"));
    assert_int_equal(data_ev(f, 12)->series_id, id_of("rpc,quantile=0.5,service.name=api value"));
    assert_true(data_ev(f, 12)->value.f64 == 2.5);
    /* All taken: {} */
    const char *ok = "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"m\","
                     "\"gauge\":{\"dataPoints\":[{\"asInt\":1}]}}]}]}]}";
    assert_true(starts(post_raw(h, "application/json", ok, strlen(ok)), "HTTP/1.1 200"));
    assert_int_equal(h->body_len, 2);
    assert_memory_equal(h->body, "{}", 2);
    /* Not JSON, not the message, a bad number: 400, counted; nothing stored. */
    static const char *bad[] = {
        "{nope", "[1,2]", "{\"resourceMetrics\":{}}",
        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"m\","
        "\"gauge\":{\"dataPoints\":[{\"asInt\":\"12x\"}]}}]}]}]}"};
    size_t before = n_data(f);
    for (size_t i = 0; i < 4; i++)
        assert_true(
            starts(post_raw(h, "application/json", bad[i], strlen(bad[i])), "HTTP/1.1 400"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_BAD_JSON), 4);
    assert_int_equal(n_data(f), before);
    ofx_free(h);
}

/* A metric of one sum with one integer point. */
typedef struct sum_m {
    RfOtlp__NumberDataPoint dp, *dpp[1];
    RfOtlp__Sum sum;
    RfOtlp__Metric m;
} sum_m;

static RfOtlp__Metric *sum_init(sum_m *x, const char *name, int temporality, bool monotonic,
                                int64_t v)
{
    rf_otlp__number_data_point__init(&x->dp);
    x->dp.value_case = RF_OTLP__NUMBER_DATA_POINT__VALUE_AS_INT;
    x->dp.as_int = v;
    x->dpp[0] = &x->dp;
    rf_otlp__sum__init(&x->sum);
    x->sum.data_points = x->dpp;
    x->sum.n_data_points = 1;
    x->sum.aggregation_temporality = temporality;
    x->sum.is_monotonic = monotonic;
    rf_otlp__metric__init(&x->m);
    x->m.name = (char *)name;
    x->m.data_case = RF_OTLP__METRIC__DATA_SUM;
    x->m.sum = &x->sum;
    return &x->m;
}

/* What each temporality becomes: the value as sent, the kind saying how to
 * read it (http.h, OTLP). */
static void test_sum_temporalities(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    sum_m a, b, c, d;
    RfOtlp__Metric *ms[] = {
        sum_init(&a, "requests", 2, true, 100), sum_init(&b, "queue.depth", 2, false, -3),
        sum_init(&c, "requests.delta", 1, true, 7), sum_init(&d, "balance.delta", 1, false, -2)};
    req_b rb;
    req_init(&rb, ms, 4);
    assert_true(starts(post_rq(h, &rb.rq), "HTTP/1.1 200"));
    fixture *f = h->pf;
    assert_int_equal(n_data(f), 4);
    static const struct {
        const char *key;
        int64_t v;
        int kind;
    } want[] = {{"requests,service.name=api value", 100, RF_KIND_CUMULATIVE},
                {"queue.depth,service.name=api value", -3, RF_KIND_GAUGE},
                {"requests.delta,service.name=api value", 7, RF_KIND_COUNTER},
                {"balance.delta,service.name=api value", -2, RF_KIND_COUNTER}};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(data_ev(f, i)->series_id, id_of(want[i].key));
        assert_int_equal(data_ev(f, i)->value.i64, want[i].v);
        assert_int_equal(data_ev(f, i)->kind, want[i].kind);
    }
    /* The parse context is back to gauges for the next line-protocol body. */
    run(f, rf_parse_influx, "after v=1 1");
    assert_int_equal(data_ev(f, 4)->kind, RF_KIND_GAUGE);
    ofx_free(h);
}

/* Exponential histograms as explicit buckets: negative, zero and positive
 * buckets with their upper bounds, and a scale lowered until the buckets
 * fit. */
static void test_exponential_histogram(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    uint64_t pc[] = {1, 2, 3}, nc[] = {4};
    RfOtlp__ExponentialHistogramDataPoint__Buckets
        pos = RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT,
        neg = pos;
    pos.offset = 0; /* (1, 2], (2, 4], (4, 8] */
    pos.bucket_counts = pc;
    pos.n_bucket_counts = 3;
    neg.offset = 1; /* [-4, -2) */
    neg.bucket_counts = nc;
    neg.n_bucket_counts = 1;
    RfOtlp__ExponentialHistogramDataPoint p1 = RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT,
                                          p2 = p1, *pp[] = {&p1, &p2};
    p1.time_unix_nano = 1700000000000000009ull;
    p1.count = 15;
    p1.has_sum_case = RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__HAS_SUM_SUM;
    p1.sum = 20.25;
    p1.scale = 0;
    p1.zero_count = 5;
    p1.positive = &pos;
    p1.negative = &neg;
    /* 300 buckets at scale 3: lowered to scale 2, 150 buckets of 2 each */
    uint64_t many[300];
    for (size_t i = 0; i < 300; i++)
        many[i] = 1;
    RfOtlp__ExponentialHistogramDataPoint__Buckets wide =
        RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    wide.bucket_counts = many;
    wide.n_bucket_counts = 300;
    p2.count = 300;
    p2.scale = 3;
    p2.positive = &wide;
    RfOtlp__ExponentialHistogram eh = RF_OTLP__EXPONENTIAL_HISTOGRAM__INIT;
    eh.data_points = pp;
    eh.n_data_points = 2;
    eh.aggregation_temporality = 2;
    RfOtlp__Metric m = RF_OTLP__METRIC__INIT;
    m.name = "lat";
    m.data_case = RF_OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m.exponential_histogram = &eh;
    RfOtlp__Metric *ms[] = {&m};
    req_b b;
    req_init(&b, ms, 1);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    assert_int_equal(h->body_len, 0);
    fixture *f = h->pf;
    static const struct {
        const char *field;
        int64_t v;
    } want[] = {{"count", 15}, {"sum", 0},   {"le_-2", 4}, {"le_0", 9},
                {"le_2", 10},  {"le_4", 12}, {"le_8", 15}, {"le_+Inf", 15}};
    for (size_t i = 0; i < 8; i++) {
        char key[64];
        snprintf(key, sizeof(key), "lat,service.name=api %s", want[i].field);
        const rf_event *e = data_ev(f, i);
        assert_int_equal(e->series_id, id_of(key));
        assert_int_equal(e->kind, RF_KIND_CUMULATIVE);
        assert_int_equal(e->event_time_ns, 1700000000000000009LL);
        if (i == 1)
            assert_true(e->value.f64 == 20.25);
        else
            assert_int_equal(e->value.i64, want[i].v);
    }
    /* The second point: count, le_0, 150 buckets, le_+Inf. Bucket k at
     * scale 2 ends at 2^((k + 1) / 4): the first at 2^0.25, the last at
     * 2^37.5; each holds two of the original ones. */
    assert_int_equal(n_data(f), 8 + 1 + 1 + 150 + 1);
    assert_int_equal(data_ev(f, 9)->series_id, id_of("lat,service.name=api le_0"));
    char key[96]; /* the bounds as decimals of 17 digits or fewer */
    snprintf(key, sizeof(key), "lat,service.name=api le_%.16g", exp2(0.25));
    assert_true(strtod(strchr(key, '_') + 1, NULL) == exp2(0.25));
    assert_int_equal(data_ev(f, 10)->series_id, id_of(key));
    assert_int_equal(data_ev(f, 10)->value.i64, 2);
    snprintf(key, sizeof(key), "lat,service.name=api le_%.16g", exp2(37.5));
    assert_true(strtod(strchr(key, '_') + 1, NULL) == exp2(37.5));
    assert_int_equal(data_ev(f, 159)->series_id, id_of(key));
    assert_int_equal(data_ev(f, 159)->value.i64, 300);
    assert_int_equal(data_ev(f, 160)->series_id, id_of("lat,service.name=api le_+Inf"));
    assert_int_equal(data_ev(f, 160)->value.i64, 300);
    ofx_free(h);
}

/* Summaries: count and sum on the metric's series, quantiles as tagged
 * series, as Prometheus lays them out. */
static void test_summary(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    RfOtlp__SummaryDataPoint__ValueAtQuantile
        q1 = RF_OTLP__SUMMARY_DATA_POINT__VALUE_AT_QUANTILE__INIT,
        q2 = q1, *qp[] = {&q1, &q2};
    q1.quantile = 0.5;
    q1.value = 0.125;
    q2.quantile = 0.99;
    q2.value = 2.75;
    RfOtlp__SummaryDataPoint sp = RF_OTLP__SUMMARY_DATA_POINT__INIT, *spp[] = {&sp};
    sp.time_unix_nano = 1700000000000000011ull;
    sp.count = 40;
    sp.sum = 9.5;
    sp.quantile_values = qp;
    sp.n_quantile_values = 2;
    RfOtlp__Summary summ = RF_OTLP__SUMMARY__INIT;
    summ.data_points = spp;
    summ.n_data_points = 1;
    RfOtlp__Metric m = RF_OTLP__METRIC__INIT;
    m.name = "rpc.duration";
    m.data_case = RF_OTLP__METRIC__DATA_SUMMARY;
    m.summary = &summ;
    RfOtlp__Metric *ms[] = {&m};
    req_b b;
    req_init(&b, ms, 1);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    fixture *f = h->pf;
    assert_int_equal(n_data(f), 4);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("rpc.duration,service.name=api count"));
    assert_int_equal(data_ev(f, 0)->value.i64, 40);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("rpc.duration,service.name=api sum"));
    assert_true(data_ev(f, 1)->value.f64 == 9.5);
    assert_int_equal(data_ev(f, 2)->series_id,
                     id_of("rpc.duration,quantile=0.5,service.name=api value"));
    assert_true(data_ev(f, 2)->value.f64 == 0.125);
    assert_int_equal(data_ev(f, 3)->series_id,
                     id_of("rpc.duration,quantile=0.99,service.name=api value"));
    assert_true(data_ev(f, 3)->value.f64 == 2.75);
    assert_int_equal(data_ev(f, 3)->event_time_ns, 1700000000000000011LL);
    ofx_free(h);
}

/* Bounds that are not finite and increasing are refused: explicit ones
 * given twice, and an exponential histogram whose offset puts its bounds
 * past the largest double. */
static void test_bad_bounds(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    uint64_t counts[] = {1, 1, 1};
    double bounds[] = {1, 1};
    RfOtlp__HistogramDataPoint h1 = RF_OTLP__HISTOGRAM_DATA_POINT__INIT, *hp[] = {&h1};
    h1.count = 3;
    h1.bucket_counts = counts;
    h1.n_bucket_counts = 3;
    h1.explicit_bounds = bounds;
    h1.n_explicit_bounds = 2;
    RfOtlp__Histogram hist = RF_OTLP__HISTOGRAM__INIT;
    hist.data_points = hp;
    hist.n_data_points = 1;
    RfOtlp__Metric m1 = RF_OTLP__METRIC__INIT;
    m1.name = "h";
    m1.data_case = RF_OTLP__METRIC__DATA_HISTOGRAM;
    m1.histogram = &hist;
    uint64_t one[] = {1};
    RfOtlp__ExponentialHistogramDataPoint__Buckets far =
        RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT;
    far.offset = 2000000000;
    far.bucket_counts = one;
    far.n_bucket_counts = 1;
    RfOtlp__ExponentialHistogramDataPoint e1 = RF_OTLP__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT,
                                          *ep[] = {&e1};
    e1.count = 1;
    e1.positive = &far;
    RfOtlp__ExponentialHistogram eh = RF_OTLP__EXPONENTIAL_HISTOGRAM__INIT;
    eh.data_points = ep;
    eh.n_data_points = 1;
    RfOtlp__Metric m2 = RF_OTLP__METRIC__INIT;
    m2.name = "e";
    m2.data_case = RF_OTLP__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m2.exponential_histogram = &eh;
    RfOtlp__Metric *ms[] = {&m1, &m2};
    req_b b;
    req_init(&b, ms, 2);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    RfOtlp__ExportMetricsServiceResponse *r = rf_otlp__export_metrics_service_response__unpack(
        NULL, h->body_len, (const uint8_t *)h->body);
    assert_non_null(r);
    assert_non_null(r->partial_success);
    assert_int_equal(r->partial_success->rejected_data_points, 2);
    rf_otlp__export_metrics_service_response__free_unpacked(r, NULL);
    assert_int_equal(n_data(h->pf), 0);
    ofx_free(h);
}

/* The allow-lists: the default keeps service.name of the two resource
 * attributes (one dropped); a configured list keeps what it names, scope
 * attributes included; "*" keeps them all; FLAG_NO_RECORDED_VALUE points
 * are counted and skipped. */
static void test_attribute_allow_list(void **state)
{
    (void)state;
    ofx *h = ofx_new();
    sum_m a;
    RfOtlp__Metric *ms[] = {sum_init(&a, "jobs", 2, true, 5)};
    req_b b;
    req_init(&b, ms, 1);
    attr sa[2];
    RfOtlp__KeyValue *sap[] = {attr_str(&sa[0], "lib.tier", "gold"),
                               attr_str(&sa[1], "lib.noise", "x")};
    RfOtlp__InstrumentationScope scope = RF_OTLP__INSTRUMENTATION_SCOPE__INIT;
    scope.name = "lib";
    scope.attributes = sap;
    scope.n_attributes = 2;
    b.sm.scope = &scope;
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    fixture *f = h->pf;
    assert_int_equal(data_ev(f, 0)->series_id, id_of("jobs,service.name=api value"));
    /* telemetry.sdk.version, lib.tier, lib.noise */
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_DROPPED_ATTRIBUTES), 3);

    rf_listen_otlp_config cfg = {.resource_set = true, .n_resource = 1, .n_scope = 1};
    snprintf(cfg.names[0], sizeof(cfg.names[0]), "telemetry.sdk.version");
    snprintf(cfg.names[1], sizeof(cfg.names[1]), "lib.tier");
    rf_err err;
    assert_int_equal(rf_http_ingest_set_otlp(&h->in, &cfg, &err), 0);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    assert_int_equal(data_ev(f, 1)->series_id,
                     id_of("jobs,lib.tier=gold,telemetry.sdk.version=1.2 value"));
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_DROPPED_ATTRIBUTES), 3 + 2);

    snprintf(cfg.names[0], sizeof(cfg.names[0]), "*");
    snprintf(cfg.names[1], sizeof(cfg.names[1]), "*");
    assert_int_equal(rf_http_ingest_set_otlp(&h->in, &cfg, &err), 0);
    a.dp.flags = 1; /* FLAG_NO_RECORDED_VALUE */
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    assert_int_equal(n_data(f), 2);
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_NO_VALUE), 1);
    a.dp.flags = 0;
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    assert_int_equal(
        data_ev(f, 2)->series_id,
        id_of("jobs,lib.noise=x,lib.tier=gold,service.name=api,telemetry.sdk.version=1.2 value"));
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_DROPPED_ATTRIBUTES), 3 + 2);
    /* Back to the defaults. */
    assert_int_equal(rf_http_ingest_set_otlp(&h->in, NULL, &err), 0);
    assert_true(starts(post_rq(h, &b.rq), "HTTP/1.1 200"));
    assert_int_equal(data_ev(f, 3)->series_id, id_of("jobs,service.name=api value"));
    ofx_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauge_sum_histogram),
        cmocka_unit_test(test_partial_success_and_bad_bodies),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_sum_temporalities),
        cmocka_unit_test(test_exponential_histogram),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_bad_bounds),
        cmocka_unit_test(test_attribute_allow_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
