/* Prometheus remote_write on the HTTP layer: WriteRequests built with the
 * generated protobuf-c code and snappy, checked point by point; staleness
 * markers, exemplars and metadata; lying snappy lengths, garbage, and huge
 * repeated fields against the decoder's bound. */
#include <errno.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>

#include "ingest/http/http.h"
#include "ingest/http/prom_remote.pb-c.h"
#include "tests/ingest/ingest_test_util.h"

typedef struct pfx {
    fixture *pf;
    rf_http_server *srv;
    rf_http_conn *conn;
    rf_http_ingest in;
    char out[8192];
} pfx;

static pfx *pfx_new(uint64_t arena_max)
{
    pfx *h = calloc(1, sizeof(*h));
    rf_parse_config cfg = {.source_id = 4};
    h->pf = fixture_new(&cfg);
    rf_err err;
    h->srv = rf_http_server_new(NULL, &err);
    h->in = (rf_http_ingest){.parse = h->pf->ctx};
    assert_int_equal(rf_http_ingest_add_prom(h->srv, &h->in, arena_max, &err), 0);
    h->conn = rf_http_conn_new(h->srv, "10.9.8.7:6", &err);
    return h;
}

static void pfx_free(pfx *h)
{
    rf_http_conn_free(h->conn);
    rf_http_ingest_release(&h->in);
    assert_int_equal(rf_http_server_body_in_use(h->srv), 0);
    rf_http_server_free(h->srv);
    fixture_free(h->pf);
    free(h);
}

static const char *post_raw(pfx *h, const char *enc, const void *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /api/v1/write HTTP/1.1\r\n%s%s%sContent-Type: application/x-protobuf\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     enc ? "Content-Encoding: " : "", enc ? enc : "", enc ? "\r\n" : "", len);
    rf_http_conn_feed(h->conn, head, (size_t)n, T_WALL, T_MONO);
    rf_http_conn_feed(h->conn, body, len, T_WALL, T_MONO);
    const char *o;
    size_t ol;
    rf_http_conn_output(h->conn, &o, &ol);
    assert_true(ol < sizeof(h->out));
    memcpy(h->out, o, ol);
    h->out[ol] = '\0';
    rf_http_conn_consume(h->conn, ol);
    return h->out;
}

/* Packs and snappy-compresses a WriteRequest, then posts it. */
static const char *post_wr(pfx *h, const RfProm__WriteRequest *wr)
{
    size_t n = rf_prom__write_request__get_packed_size(wr);
    uint8_t *pb = malloc(n + 1);
    rf_prom__write_request__pack(wr, pb);
    size_t cl = snappy_max_compressed_length(n);
    char *sn = malloc(cl);
    assert_int_equal(snappy_compress((const char *)pb, n, sn, &cl), SNAPPY_OK);
    const char *r = post_raw(h, "snappy", sn, cl);
    free(pb);
    free(sn);
    return r;
}

static bool starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* A small builder over the generated structs. */
typedef struct series_b {
    RfProm__TimeSeries ts;
    RfProm__Label lab[8], *labp[8];
    RfProm__Sample smp[8], *smpp[8];
} series_b;

static void sb_init(series_b *b)
{
    rf_prom__time_series__init(&b->ts);
    b->ts.labels = b->labp;
    b->ts.samples = b->smpp;
}

static void sb_label(series_b *b, const char *n, const char *v)
{
    RfProm__Label *l = &b->lab[b->ts.n_labels];
    rf_prom__label__init(l);
    l->name = (char *)n;
    l->value = (char *)v;
    b->labp[b->ts.n_labels++] = l;
}

static void sb_sample(series_b *b, double v, int64_t ms)
{
    RfProm__Sample *s = &b->smp[b->ts.n_samples];
    rf_prom__sample__init(s);
    s->value = v;
    s->timestamp = ms;
    b->smpp[b->ts.n_samples++] = s;
}

static void test_samples_to_points(void **state)
{
    (void)state;
    pfx *h = pfx_new(0);
    series_b a, b;
    sb_init(&a);
    sb_label(&a, "job", "api");
    sb_label(&a, "__name__", "http_requests_total");
    sb_label(&a, "path", "/a b,c=d\\");
    sb_label(&a, "empty", "");
    sb_sample(&a, 10, 1700000000000);
    sb_sample(&a, 12.5, 1700000015000);
    sb_init(&b);
    sb_label(&b, "__name__", "up");
    sb_sample(&b, -1e300, 1700000000001);
    sb_sample(&b, 0.1, 1700000000002);
    RfProm__TimeSeries *tsp[] = {&a.ts, &b.ts};
    RfProm__MetricMetadata md = RF_PROM__METRIC_METADATA__INIT, *mdp[] = {&md};
    RfProm__WriteRequest wr = RF_PROM__WRITE_REQUEST__INIT;
    wr.timeseries = tsp;
    wr.n_timeseries = 2;
    wr.metadata = mdp;
    wr.n_metadata = 1;
    assert_true(starts(post_wr(h, &wr), "HTTP/1.1 204 No Content\r\n"));
    fixture *f = h->pf;
    assert_int_equal(n_data(f), 4);
    uint64_t ida = id_of("http_requests_total,job=api,path=/a\\ b\\,c\\=d\\\\ value");
    assert_int_equal(data_ev(f, 0)->series_id, ida);
    assert_string_equal(def_text(f, ida),
                        "http_requests_total,job=api,path=/a\\ b\\,c\\=d\\\\ value");
    assert_true(data_ev(f, 0)->value.f64 == 10.0);
    assert_int_equal(data_ev(f, 0)->value_type, RF_VALUE_F64);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1700000000000LL * 1000000);
    assert_true(data_ev(f, 1)->value.f64 == 12.5);
    assert_int_equal(data_ev(f, 1)->series_id, ida);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("up value"));
    assert_true(data_ev(f, 2)->value.f64 == -1e300);
    assert_true(data_ev(f, 3)->value.f64 == 0.1); /* %.17g round-trips exactly */
    assert_int_equal(data_ev(f, 3)->event_time_ns, 1700000000002LL * 1000000);
    assert_int_equal(rf_http_ingest_prom_counter(&h->in, RF_PROM_C_SAMPLES), 4);
    assert_int_equal(rf_http_ingest_prom_counter(&h->in, RF_PROM_C_SERIES), 2);
    assert_int_equal(rf_http_ingest_prom_counter(&h->in, RF_PROM_C_METADATA), 1);
    assert_int_equal(rf_http_counter(h->srv, RF_HTTP_C_POINTS), 4);
    /* The context's precision is back to its own (ns). */
    assert_int_equal(run(f, rf_parse_influx, "m v=1 7\n"), 0);
    assert_int_equal(data_ev(f, 4)->event_time_ns, 7);
    pfx_free(h);
}

static void test_stale_nan_inf_and_nameless(void **state)
{
    (void)state;
    pfx *h = pfx_new(0);
    series_b a, b;
    sb_init(&a);
    sb_label(&a, "__name__", "temp");
    double stale;
    uint64_t bits = 0x7ff0000000000002ull;
    memcpy(&stale, &bits, sizeof(stale));
    sb_sample(&a, 1, 1000);
    sb_sample(&a, stale, 2000);
    sb_sample(&a, INFINITY, 3000);
    sb_sample(&a, 4, 4000);
    sb_init(&b);
    sb_label(&b, "job", "x"); /* no __name__ */
    sb_sample(&b, 1, 1000);
    RfProm__Exemplar ex = RF_PROM__EXEMPLAR__INIT, *exp[] = {&ex};
    a.ts.exemplars = exp;
    a.ts.n_exemplars = 1;
    RfProm__TimeSeries *tsp[] = {&a.ts, &b.ts};
    RfProm__WriteRequest wr = RF_PROM__WRITE_REQUEST__INIT;
    wr.timeseries = tsp;
    wr.n_timeseries = 2;
    assert_true(starts(post_wr(h, &wr), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "partial write: refused sample of 'temp': out_of_range; "
                                   "dropped=2"));
    assert_int_equal(n_data(h->pf), 2);
    assert_true(data_ev(h->pf, 0)->value.f64 == 1.0);
    assert_true(data_ev(h->pf, 1)->value.f64 == 4.0);
    assert_int_equal(rf_http_ingest_prom_counter(&h->in, RF_PROM_C_STALE), 1);
    assert_int_equal(rf_http_ingest_prom_counter(&h->in, RF_PROM_C_EXEMPLARS), 1);
    assert_int_equal(rf_parse_reject_count(h->pf->ctx, RF_REJ_OUT_OF_RANGE), 1);
    assert_int_equal(rf_parse_reject_count(h->pf->ctx, RF_REJ_SYNTAX), 1);
    pfx_free(h);
}

static void test_hostile_bodies(void **state)
{
    (void)state;
    pfx *h = pfx_new(0);
    /* A snappy header claiming 2^31 bytes: refused before any allocation. */
    const uint8_t lie_big[] = {0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 'a'};
    assert_true(starts(post_raw(h, "snappy", lie_big, sizeof(lie_big)), "HTTP/1.1 413"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_DECODED_TOO_LARGE), 1);
    /* Claims 100 bytes, holds 3 literal bytes. */
    const uint8_t lie_small[] = {100, 0x08, 'a', 'b', 'c'};
    assert_true(starts(post_raw(h, "snappy", lie_small, sizeof(lie_small)), "HTTP/1.1 400"));
    /* Claims 2, holds 3. */
    const uint8_t lie_short[] = {2, 0x08, 'a', 'b', 'c'};
    assert_true(starts(post_raw(h, "snappy", lie_short, sizeof(lie_short)), "HTTP/1.1 400"));
    assert_true(starts(post_raw(h, NULL, "\xff\xff\xff\xff\xff\xff", 6), "HTTP/1.1 400"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_BAD_SNAPPY), 3);
    /* Valid snappy, not a WriteRequest (field 1 of wire type 2 with a length
     * running past the end). */
    const char junk[] = "\x0a\x7f\x01\x02";
    char sn[64];
    size_t sl = sizeof(sn);
    snappy_compress(junk, 4, sn, &sl);
    assert_true(starts(post_raw(h, "snappy", sn, sl), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "not a protobuf WriteRequest"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_BAD_PROTOBUF), 1);
    assert_true(starts(post_raw(h, "zstd", sn, sl), "HTTP/1.1 415"));
    assert_int_equal(n_data(h->pf), 0);
    pfx_free(h);
}

/* 200,000 empty samples: 2 bytes each on the wire, ~40 decoded: past a
 * 1 MiB arena, refused 413 and counted; the next request still works. */
static void test_huge_repeated_field(void **state)
{
    (void)state;
    pfx *h = pfx_new(1u << 20);
    size_t ns = 200000;
    size_t len = 0;
    uint8_t *ts = malloc(ns * 2 + 64);
    /* TimeSeries: label __name__=x, then ns empty samples (field 2, len 0). */
    const uint8_t label[] = {0x0a, 0x0d, 0x0a, 0x08, '_',  '_',  'n', 'a',
                             'm',  'e',  '_',  '_',  0x12, 0x01, 'x'};
    memcpy(ts, label, sizeof(label));
    len = sizeof(label);
    for (size_t i = 0; i < ns; i++) {
        ts[len++] = 0x12;
        ts[len++] = 0x00;
    }
    uint8_t *wr = malloc(len + 16);
    size_t wl = 0;
    wr[wl++] = 0x0a; /* WriteRequest.timeseries */
    size_t v = len;
    while (v >= 0x80) {
        wr[wl++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    wr[wl++] = (uint8_t)v;
    memcpy(wr + wl, ts, len);
    wl += len;
    size_t cl = snappy_max_compressed_length(wl);
    char *sn = malloc(cl);
    snappy_compress((const char *)wr, wl, sn, &cl);
    assert_true(starts(post_raw(h, "snappy", sn, cl), "HTTP/1.1 413"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_DECODE_LIMIT), 1);
    assert_int_equal(n_data(h->pf), 0);
    free(ts);
    free(wr);
    free(sn);

    series_b a;
    sb_init(&a);
    sb_label(&a, "__name__", "ok");
    sb_sample(&a, 1, 1);
    RfProm__TimeSeries *tsp[] = {&a.ts};
    RfProm__WriteRequest w = RF_PROM__WRITE_REQUEST__INIT;
    w.timeseries = tsp;
    w.n_timeseries = 1;
    assert_true(starts(post_wr(h, &w), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 1);
    pfx_free(h);
}

/* Every finite value comes back bit for bit, whichever way it was written
 * (integer digits, "<m>e-<k>", or %.17g): short decimals, random bit
 * patterns, extremes. (Not -0.0: protobuf-c's proto3 packer omits a double
 * that compares equal to 0, so the request would carry +0.) */
static void test_values_exact(void **state)
{
    (void)state;
    enum {
        N = 4000
    };
    pfx *h = pfx_new(0);
    static RfProm__Sample smp[N], *smpp[N];
    static double want[N];
    uint64_t x = 0x243f6a8885a308d3ull;
    static const double special[] = {0.1,           0.2,
                                     0.3,           1e-7,
                                     123456.789012, -273.15,
                                     1e300,         -1e-300,
                                     5e-324,        1.7976931348623157e308,
                                     0.5,           1e15,
                                     1e16,          9007199254740993.0,
                                     2.5e-300,      3.141592653589793};
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        if (i < (int)(sizeof(special) / sizeof(special[0]))) {
            v = special[i];
        } else if (i % 3 == 0) {
            uint64_t bits = x;
            memcpy(&v, &bits, sizeof(v));
            if (!isfinite(v))
                v = (double)(x >> 11);
        } else {
            static const double scale[] = {1, 10, 100, 1000, 1e4, 1e6, 1e9, 1e12};
            v = (double)(int64_t)(x % 2000000001ull - 1000000000) / scale[(x >> 40) % 8];
        }
        want[i] = v;
        rf_prom__sample__init(&smp[i]);
        smp[i].value = v;
        smp[i].timestamp = 1700000000000LL + i;
        smpp[i] = &smp[i];
    }
    RfProm__Label lab = RF_PROM__LABEL__INIT, *labp[] = {&lab};
    lab.name = "__name__";
    lab.value = "v";
    RfProm__TimeSeries ts = RF_PROM__TIME_SERIES__INIT, *tsp[] = {&ts};
    ts.labels = labp;
    ts.n_labels = 1;
    ts.samples = smpp;
    ts.n_samples = N;
    RfProm__WriteRequest wr = RF_PROM__WRITE_REQUEST__INIT;
    wr.timeseries = tsp;
    wr.n_timeseries = 1;
    assert_true(starts(post_wr(h, &wr), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), N);
    for (int i = 0; i < N; i++) {
        double got = data_ev(h->pf, (size_t)i)->value.f64;
        if (memcmp(&got, &want[i], sizeof(got)) != 0)
            fail_msg("sample %d: sent %.17g (%a), stored %.17g (%a)", i, want[i], want[i], got,
                     got);
    }
    pfx_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_to_points), cmocka_unit_test(test_stale_nan_inf_and_nameless),
        cmocka_unit_test(test_hostile_bodies),    cmocka_unit_test(test_huge_repeated_field),
        cmocka_unit_test(test_values_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
