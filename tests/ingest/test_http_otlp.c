/* OTLP/HTTP metrics on the HTTP layer: requests built with the generated
 * protobuf-c code, checked point by point (gauge, sum, histogram), the
 * resource attribute allow-list, partial_success for what is refused or not
 * stored, and bodies that are not the message. */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "ingest/http/http.h"
#include "ingest/http/otlp_metrics.pb-c.h"
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
    assert_int_equal(data_ev(f, 3)->series_id, id_of("latency,service.name=api count"));
    assert_int_equal(data_ev(f, 3)->value.i64, 8);
    assert_int_equal(data_ev(f, 4)->series_id, id_of("latency,service.name=api sum"));
    assert_true(data_ev(f, 4)->value.f64 == 3.5);
    assert_int_equal(data_ev(f, 5)->series_id,
                     id_of("latency,service.name=api le_0.10000000000000001"));
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
    RfOtlp__Opaque o1 = RF_OTLP__OPAQUE__INIT, *op[] = {&o1, &o1, &o1};
    RfOtlp__Summary summ = RF_OTLP__SUMMARY__INIT;
    summ.data_points = op;
    summ.n_data_points = 3;
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
    assert_int_equal(r->partial_success->rejected_data_points, 4); /* NaN + 3 summary points */
    assert_non_null(
        strstr(r->partial_success->error_message, "refused 1 data points; first 'temp"));
    assert_non_null(strstr(r->partial_success->error_message, "summaries are not stored"));
    rf_otlp__export_metrics_service_response__free_unpacked(r, NULL);
    assert_int_equal(n_data(h->pf), 1);
    assert_int_equal(rf_http_ingest_otlp_counter(&h->in, RF_OTLP_C_UNSUPPORTED), 3);

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
        "{\"name\":\"eh\",\"exponentialHistogram\":{\"dataPoints\":[{},{}]}}"
        "]}]}]}";
    assert_true(starts(post_raw(h, "application/json", body, strlen(body)), "HTTP/1.1 200"));
    assert_non_null(strstr(h->out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(h->body, "{\"partialSuccess\":{\"rejectedDataPoints\":\"2\","));
    assert_non_null(strstr(h->body, "summaries are not stored\"}}"));
    fixture *f = h->pf;
    assert_int_equal(n_data(f), 1 + 1 + 4);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauge_sum_histogram),
        cmocka_unit_test(test_partial_success_and_bad_bodies),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
