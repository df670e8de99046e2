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

static pfx *pfx_new_cfg(rf_parse_config cfg, uint64_t arena_max)
{
    pfx *h = calloc(1, sizeof(*h));
    h->pf = fixture_new(&cfg);
    rf_err err;
    h->srv = rf_http_server_new(NULL, &err);
    h->in = (rf_http_ingest){.parse = h->pf->ctx};
    assert_int_equal(rf_http_ingest_add_prom(h->srv, &h->in, arena_max, &err), 0);
    h->conn = rf_http_conn_new(h->srv, "10.9.8.7:6", &err);
    return h;
}

static pfx *pfx_new(uint64_t arena_max)
{
    return pfx_new_cfg((rf_parse_config){.source_id = 4}, arena_max);
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

/* ---- requests written by hand: orders and forms the packer never makes ---- */

typedef struct pb {
    uint8_t b[1 << 16];
    size_t n;
} pb;

static void pb_varint(pb *p, uint64_t v)
{
    while (v >= 0x80) {
        p->b[p->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p->b[p->n++] = (uint8_t)v;
}

static void pb_bytes(pb *p, unsigned field, const void *b, size_t len)
{
    pb_varint(p, field << 3 | 2);
    pb_varint(p, len);
    memcpy(p->b + p->n, b, len);
    p->n += len;
}

static void pb_label(pb *p, const char *k, size_t kl, const char *v, size_t vl)
{
    pb l = {.n = 0};
    pb_bytes(&l, 1, k, kl);
    pb_bytes(&l, 2, v, vl);
    pb_bytes(p, 1, l.b, l.n);
}

static void pb_lab(pb *p, const char *k, const char *v)
{
    pb_label(p, k, strlen(k), v, strlen(v));
}

static void pb_sample(pb *p, double v, int64_t ms)
{
    pb s = {.n = 0};
    s.b[s.n++] = 0x09;
    memcpy(s.b + s.n, &v, 8);
    s.n += 8;
    pb_varint(&s, 2 << 3);
    pb_varint(&s, (uint64_t)ms);
    pb_bytes(p, 2, s.b, s.n);
}

static const char *post_pb(pfx *h, const pb *ts1, const pb *ts2)
{
    static pb wr;
    wr.n = 0;
    pb_bytes(&wr, 1, ts1->b, ts1->n);
    if (ts2)
        pb_bytes(&wr, 1, ts2->b, ts2->n);
    size_t cl = snappy_max_compressed_length(wr.n);
    char *sn = malloc(cl);
    assert_int_equal(snappy_compress((const char *)wr.b, wr.n, sn, &cl), SNAPPY_OK);
    const char *r = post_raw(h, "snappy", sn, cl);
    free(sn);
    return r;
}

/* The raw cache is keyed on a series' label bytes: labels between samples
 * (legal protobuf) and labels in another order are the same series, and a
 * series seen before takes the cache, not the miss path. */
static void test_label_order_and_cache(void **state)
{
    (void)state;
    pfx *h = pfx_new(0);
    pb a = {.n = 0}, b = {.n = 0};
    pb_lab(&a, "__name__", "up");
    pb_sample(&a, 1, 1000);
    pb_lab(&a, "job", "api"); /* after a sample */
    pb_sample(&a, 2, 2000);
    pb_lab(&b, "job", "api");
    pb_lab(&b, "__name__", "up");
    pb_sample(&b, 3, 3000);
    assert_true(starts(post_pb(h, &a, &b), "HTTP/1.1 204"));
    /* The same first label and sample, another label after them. */
    pb c = {.n = 0};
    pb_lab(&c, "__name__", "up");
    pb_sample(&c, 1, 1000);
    pb_lab(&c, "job", "web");
    pb_sample(&c, 2, 2000);
    assert_true(starts(post_pb(h, &c, NULL), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 5);
    assert_int_equal(data_ev(h->pf, 3)->series_id, id_of("up,job=web value"));
    assert_int_equal(data_ev(h->pf, 4)->series_id, id_of("up,job=web value"));
    /* Back to back labels (the raw bytes hashed whole) differing at the end. */
    pb d = {.n = 0}, e = {.n = 0};
    pb_lab(&d, "__name__", "up");
    pb_lab(&d, "job", "dbx");
    pb_sample(&d, 1, 1000);
    pb_lab(&e, "__name__", "up");
    pb_lab(&e, "job", "dby");
    pb_sample(&e, 1, 1000);
    /* e's job label again, its value first and its name given twice (the
     * last wins): the same series as e. */
    pb f = {.n = 0}, fl = {.n = 0};
    pb_lab(&f, "__name__", "up");
    pb_bytes(&fl, 2, "dby", 3);
    pb_bytes(&fl, 1, "xx", 2);
    pb_bytes(&fl, 1, "job", 3);
    pb_bytes(&f, 1, fl.b, fl.n);
    pb_sample(&f, 1, 1000);
    assert_true(starts(post_pb(h, &d, &e), "HTTP/1.1 204"));
    assert_true(starts(post_pb(h, &f, NULL), "HTTP/1.1 204"));
    assert_int_equal(data_ev(h->pf, 7)->series_id, id_of("up,job=dby value"));
    assert_int_equal(data_ev(h->pf, 5)->series_id, id_of("up,job=dbx value"));
    assert_int_equal(data_ev(h->pf, 6)->series_id, id_of("up,job=dby value"));
    collected_reset(&h->pf->out);
    uint64_t id = id_of("up,job=api value");
    assert_true(starts(post_pb(h, &a, &b), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(data_ev(h->pf, i)->series_id, id);
        assert_true(data_ev(h->pf, i)->value.f64 == (double)(i + 1));
        assert_int_equal(data_ev(h->pf, i)->event_time_ns, (int64_t)(i + 1) * 1000000000);
    }
    assert_int_equal(n_defs(h->pf), 0); /* announced by the first request */
    uint64_t misses = rf_parse_counter(h->pf->ctx, RF_PC_CACHE_MISSES);
    assert_true(starts(post_pb(h, &b, NULL), "HTTP/1.1 204"));
    assert_int_equal(rf_parse_counter(h->pf->ctx, RF_PC_CACHE_MISSES), misses);
    assert_int_equal(rf_parse_counter(h->pf->ctx, RF_PC_LINES_OK), 12);
    pfx_free(h);
}

/* What a line's checks refuse is refused here too, sample by sample, each
 * counted by reason and named in the answer; the good series are kept. */
static void test_label_checks(void **state)
{
    (void)state;
    pfx *h = pfx_new(0);
    struct {
        enum rf_reject_reason why;
        pb ts;
    } c[6];
    memset(c, 0, sizeof(c));
    pb_lab(&c[0].ts, "__name__", "m");
    pb_label(&c[0].ts, "k", 1, "a\0b", 3);
    c[0].why = RF_REJ_NUL_BYTE;
    pb_lab(&c[1].ts, "__name__", "m");
    pb_lab(&c[1].ts, "k", "a\nb");
    c[1].why = RF_REJ_SYNTAX;
    pb_lab(&c[2].ts, "__name__", "m");
    pb_lab(&c[2].ts, "k", "a");
    pb_lab(&c[2].ts, "k", "b");
    c[2].why = RF_REJ_DUPLICATE_TAG;
    pb_lab(&c[3].ts, "__name__", "m");
    pb_label(&c[3].ts, "k", 1, "\xff\xfe", 2);
    c[3].why = RF_REJ_INVALID_UTF8;
    pb_lab(&c[4].ts, "__name__", "m");
    for (int i = 0; i < 65; i++) { /* max_tags is 64 */
        char k[8];
        snprintf(k, sizeof(k), "l%02d", i);
        pb_lab(&c[4].ts, k, "v");
    }
    c[4].why = RF_REJ_TOO_MANY_TAGS;
    pb_lab(&c[5].ts, "__name__", "m");
    c[5].why = RF_REJ_OUT_OF_RANGE; /* 2^62 ms is past int64 nanoseconds */
    for (int i = 0; i < 6; i++) {
        pb_sample(&c[i].ts, 1, i == 5 ? (int64_t)1 << 62 : 1000);
        pb good = {.n = 0};
        pb_lab(&good, "__name__", "ok");
        pb_sample(&good, 7, 1000 + i);
        uint64_t before = rf_parse_reject_count(h->pf->ctx, c[i].why);
        const char *r = post_pb(h, &c[i].ts, &good);
        if (!starts(r, "HTTP/1.1 400") || !strstr(r, "partial write: refused sample of 'm") ||
            !strstr(r, rf_reject_reason_name(c[i].why)))
            fail_msg("case %d: %s", i, r);
        assert_int_equal(rf_parse_reject_count(h->pf->ctx, c[i].why), before + 1);
        assert_int_equal(n_data(h->pf), (size_t)i + 1);
        assert_true(data_ev(h->pf, (size_t)i)->value.f64 == 7.0);
    }
    assert_int_equal(rf_parse_counter(h->pf->ctx, RF_PC_LINES_REJECTED), 6);
    pfx_free(h);
}

/* A known field with the wire type of another (the value as a varint) is
 * no WriteRequest: 400 for the whole request, nothing stored, as protobuf-c
 * refused it. */
static void test_wrong_wire_type(void **state)
{
    (void)state;
    pfx *h = pfx_new(0);
    pb good = {.n = 0}, bad = {.n = 0};
    pb_lab(&good, "__name__", "ok");
    pb_sample(&good, 1, 1000);
    pb_lab(&bad, "__name__", "m");
    const uint8_t sample[] = {0x08, 0x01, 0x10, 0x01}; /* value: varint */
    pb_bytes(&bad, 2, sample, sizeof(sample));
    assert_true(starts(post_pb(h, &good, &bad), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "not a protobuf WriteRequest"));
    assert_int_equal(rf_http_reject_count(h->srv, RF_HTTP_REJ_BAD_PROTOBUF), 1);
    assert_int_equal(n_data(h->pf), 0);
    /* Unknown fields of every wire type are skipped. */
    pb_varint(&good, 9 << 3 | 0);
    pb_varint(&good, 300);
    pb_varint(&good, 10 << 3 | 5);
    memcpy(good.b + good.n, "abcd", 4);
    good.n += 4;
    assert_true(starts(post_pb(h, &good, NULL), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 1);
    pfx_free(h);
}

/* The correlation id tag is taken out of a series, as in every protocol:
 * one series whatever the id, each event with its id. */
static void test_id_tag(void **state)
{
    (void)state;
    rf_parse_config cfg = {.source_id = 4};
    snprintf(cfg.corr_id_tag, sizeof(cfg.corr_id_tag), "request_id");
    pfx *h = pfx_new_cfg(cfg, 0);
    pb a = {.n = 0}, b = {.n = 0};
    pb_lab(&a, "__name__", "lat");
    pb_lab(&a, "request_id", "r-1");
    pb_lab(&a, "job", "x");
    pb_sample(&a, 1, 1000);
    pb_lab(&b, "__name__", "lat");
    pb_lab(&b, "request_id", "r-2");
    pb_lab(&b, "job", "x");
    pb_sample(&b, 2, 2000);
    assert_true(starts(post_pb(h, &a, &b), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 2);
    uint64_t id = id_of("lat,job=x value");
    assert_int_equal(data_ev(h->pf, 0)->series_id, id);
    assert_int_equal(data_ev(h->pf, 1)->series_id, id);
    assert_int_equal(data_ev(h->pf, 0)->correlation_id, hash_str("r-1"));
    assert_int_equal(data_ev(h->pf, 1)->correlation_id, hash_str("r-2"));
    pfx_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_to_points),
        cmocka_unit_test(test_stale_nan_inf_and_nameless),
        cmocka_unit_test(test_hostile_bodies),
        cmocka_unit_test(test_huge_repeated_field),
        cmocka_unit_test(test_values_exact),
        cmocka_unit_test(test_label_order_and_cache),
        cmocka_unit_test(test_label_checks),
        cmocka_unit_test(test_wrong_wire_type),
        cmocka_unit_test(test_id_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
