/* InfluxDB endpoints on the HTTP layer: /write and /api/v2/write with every
 * precision, db/bucket as a tag, partial writes answered as InfluxDB does
 * (good lines kept), /ping, and 503 when the engine is busy. */
#include <errno.h>
#include <stdio.h>
#include <zlib.h>

#include "ingest/http/http.h"
#include "tests/ingest/ingest_test_util.h"

typedef struct hfx {
    fixture *pf;
    rf_http_server *srv;
    rf_http_conn *conn;
    rf_http_ingest in;
    bool busy;
    char out[16384];
    size_t out_len;
} hfx;

static bool is_busy(void *user)
{
    return ((hfx *)user)->busy;
}

static hfx *hfx_new(void)
{
    hfx *h = calloc(1, sizeof(*h));
    rf_parse_config cfg = {.source_id = 3};
    h->pf = fixture_new(&cfg);
    rf_err err;
    h->srv = rf_http_server_new(NULL, &err);
    h->in = (rf_http_ingest){.parse = h->pf->ctx, .busy = is_busy, .busy_user = h};
    assert_int_equal(rf_http_ingest_add_influx(h->srv, &h->in, &err), 0);
    h->conn = rf_http_conn_new(h->srv, "10.1.2.3:4567", &err);
    assert_non_null(h->conn);
    return h;
}

static void hfx_free(hfx *h)
{
    rf_http_conn_free(h->conn);
    rf_http_server_free(h->srv);
    fixture_free(h->pf);
    free(h);
}

/* Sends one request with body; returns the answer text (reset per call). */
static const char *post(hfx *h, const char *target, const char *extra_headers, const char *body,
                        size_t body_len)
{
    char head[1024];
    int n =
        snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
                 target, extra_headers ? extra_headers : "", body_len);
    h->out_len = 0;
    rf_http_conn_feed(h->conn, head, (size_t)n, T_WALL, T_MONO);
    rf_http_conn_feed(h->conn, body, body_len, T_WALL, T_MONO);
    const char *o;
    size_t ol;
    rf_http_conn_output(h->conn, &o, &ol);
    assert_true(ol < sizeof(h->out));
    memcpy(h->out, o, ol);
    h->out[ol] = '\0';
    rf_http_conn_consume(h->conn, ol);
    return h->out;
}

static const char *posts(hfx *h, const char *target, const char *body)
{
    return post(h, target, NULL, body, strlen(body));
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_v1_write_and_db_tag(void **state)
{
    (void)state;
    hfx *h = hfx_new();
    assert_true(starts(posts(h, "/write?db=telegraf&rp=autogen",
                             "cpu,host=a usage=1.5 1700000000000000000\n"
                             "cpu,host=a,db=mine usage=2i 1700000000000000001\n"),
                       "HTTP/1.1 204 No Content\r\n"));
    fixture *f = h->pf;
    assert_int_equal(n_data(f), 2);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("cpu,db=telegraf,host=a usage"));
    assert_true(data_ev(f, 0)->value.f64 == 1.5);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1700000000000000000LL);
    assert_int_equal(data_ev(f, 0)->source_id, 3);
    assert_int_equal(data_ev(f, 0)->recv_time_ns, T_MONO);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("cpu,db=mine,host=a usage"));
    assert_int_equal(rf_http_counter(h->srv, RF_HTTP_C_POINTS), 2);
    assert_int_equal(rf_http_status_count(h->srv, 0, RF_HTTP_ST_204), 1);
    /* The db is required, as InfluxDB requires it. */
    assert_true(starts(posts(h, "/write", "cpu v=1\n"), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "{\"error\":\"database is required\"}"));
    assert_int_equal(n_data(f), 2);
    hfx_free(h);
}

static void test_precisions(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        const char *ts;
        int64_t want;
    } cases[] = {
        {"", "1700000000123456789", 1700000000123456789LL},
        {"&precision=n", "1700000000123456789", 1700000000123456789LL},
        {"&precision=ns", "1700000000123456789", 1700000000123456789LL},
        {"&precision=u", "1700000000123456", 1700000000123456000LL},
        {"&precision=us", "1700000000123456", 1700000000123456000LL},
        {"&precision=ms", "1700000000123", 1700000000123000000LL},
        {"&precision=s", "1700000000", 1700000000000000000LL},
        {"&precision=m", "28333333", 28333333LL * 60000000000LL},
        {"&precision=h", "472222", 472222LL * 3600000000000LL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hfx *h = hfx_new();
        char target[64], body[64];
        snprintf(target, sizeof(target), "/write?db=d%s", cases[i].q);
        snprintf(body, sizeof(body), "m v=1 %s\n", cases[i].ts);
        assert_true(starts(posts(h, target, body), "HTTP/1.1 204"));
        assert_int_equal(data_ev(h->pf, 0)->event_time_ns, cases[i].want);
        /* The next request without precision is nanoseconds again. */
        posts(h, "/write?db=d", "m v=1 5\n");
        assert_int_equal(data_ev(h->pf, 1)->event_time_ns, 5);
        hfx_free(h);
    }
    hfx *h = hfx_new();
    assert_true(starts(posts(h, "/write?db=d&precision=fortnight", "m v=1 1\n"), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "invalid precision"));
    /* v2 knows only ns, us, ms, s. */
    assert_true(
        starts(posts(h, "/api/v2/write?bucket=b&precision=h", "m v=1 1\n"), "HTTP/1.1 400"));
    assert_true(
        starts(posts(h, "/api/v2/write?bucket=b&precision=s", "m v=1 1\n"), "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 1);
    assert_int_equal(data_ev(h->pf, 0)->event_time_ns, 1000000000LL);
    hfx_free(h);
}

static void test_partial_write(void **state)
{
    (void)state;
    hfx *h = hfx_new();
    const char *body = "cpu v=1 1\n"
                       "cpu v= 2\n" /* bad number */
                       "cpu v=3 3\n"
                       "cpu,a=1,a=2 v=4\n" /* duplicate tag */
                       "cpu v=5 5\n";
    assert_true(starts(posts(h, "/write?db=x", body), "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(h->out, "Content-Type: application/json\r\n"));
    assert_non_null(strstr(h->out, "{\"error\":\"partial write: unable to parse 'cpu v= 2': "));
    assert_non_null(strstr(h->out, "; dropped=2\"}"));
    /* The good lines were kept. */
    assert_int_equal(n_data(h->pf), 3);
    assert_true(data_ev(h->pf, 2)->value.f64 == 5.0);
    assert_int_equal(rf_parse_counter(h->pf->ctx, RF_PC_LINES_REJECTED), 2);
    /* The reject log names the client. */
    rf_reject_entry e[2];
    assert_int_equal(rf_parse_reject_log_read(h->pf->ctx, e, 2), 2);
    assert_string_equal(e[0].source, "10.1.2.3:4567");
    /* All bad: no "partial write". */
    assert_true(starts(posts(h, "/write?db=x", "nonsense\n"), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "{\"error\":\"unable to parse 'nonsense': "));
    assert_non_null(strstr(h->out, "dropped=1"));
    /* v2 answers in its own shape, and takes the bucket as the db tag. */
    assert_true(starts(post(h, "/api/v2/write?org=o&bucket=bk&precision=ns",
                            "Authorization: Token abc\r\n", "cpu v=1 1\nbad\n", 14),
                       "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "{\"code\":\"invalid\",\"message\":\"partial write: unable to "
                                   "parse 'bad': "));
    assert_int_equal(data_ev(h->pf, 3)->series_id, id_of("cpu,db=bk v"));
    assert_true(starts(posts(h, "/api/v2/write?org=o", "cpu v=1 1\n"), "HTTP/1.1 400"));
    assert_non_null(strstr(h->out, "bucket is required"));
    hfx_free(h);
}

static void test_ping_busy_and_encoding(void **state)
{
    (void)state;
    hfx *h = hfx_new();
    h->out_len = 0;
    static const char pings[] = "GET /ping HTTP/1.1\r\n\r\nHEAD /ping HTTP/1.1\r\n\r\n"
                                "GET /ping?verbose=true HTTP/1.1\r\n\r\n";
    assert_int_equal(rf_http_conn_feed(h->conn, pings, sizeof(pings) - 1, 0, 0), RF_HTTP_KEEP);
    const char *o;
    size_t ol;
    rf_http_conn_output(h->conn, &o, &ol);
    char buf[2048];
    memcpy(buf, o, ol);
    buf[ol] = '\0';
    rf_http_conn_consume(h->conn, ol);
    assert_true(starts(buf, "HTTP/1.1 204 No Content\r\nX-Influxdb-Version: 1.8.10\r\n"));
    assert_int_equal(strstr(strstr(buf, "\r\n\r\n") + 4, "HTTP/1.1 204") - buf,
                     strstr(buf, "\r\n\r\n") + 4 - buf);
    assert_non_null(strstr(buf, "{\"version\":\"1.8.10\"}"));

    h->busy = true;
    assert_true(starts(posts(h, "/write?db=x", "cpu v=1 1\n"), "HTTP/1.1 503"));
    assert_non_null(strstr(h->out, "Retry-After: 1\r\n"));
    assert_int_equal(n_data(h->pf), 0);
    h->busy = false;
    assert_true(
        starts(post(h, "/write?db=x", "Content-Encoding: br\r\n", "xx", 2), "HTTP/1.1 415"));

    /* gzip bodies are taken as they are by every client library. */
    const char *text = "cpu v=7 7\n";
    uint8_t gz[256];
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)text;
    z.avail_in = (uInt)strlen(text);
    z.next_out = gz;
    z.avail_out = sizeof(gz);
    deflate(&z, Z_FINISH);
    size_t gl = z.total_out;
    deflateEnd(&z);
    assert_true(starts(post(h, "/write?db=x", "Content-Encoding: gzip\r\n", (const char *)gz, gl),
                       "HTTP/1.1 204"));
    assert_int_equal(n_data(h->pf), 1);
    assert_true(data_ev(h->pf, 0)->value.f64 == 7.0);
    hfx_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_write_and_db_tag),
        cmocka_unit_test(test_precisions),
        cmocka_unit_test(test_partial_write),
        cmocka_unit_test(test_ping_busy_and_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
