/* The HTTP/1.1 request layer (ingest/http): framing whatever the split of
 * the stream, keep-alive and pipelining, chunked bodies, 100-continue, the
 * limits with their status codes, gzip (and gzip bombs), the body budget. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "ingest/http/http.h"

/* What the echo handler saw, last request. */
typedef struct seen {
    int calls;
    char path[256];
    char body[4096];
    size_t body_len;
    char db[64];
    char enc[32];
} seen;

static void echo_handler(void *user, const rf_http_request *req, rf_http_response *resp)
{
    seen *s = user;
    s->calls++;
    snprintf(s->path, sizeof(s->path), "%.*s", (int)req->path_len, req->path);
    s->body_len = req->body_len < sizeof(s->body) ? req->body_len : sizeof(s->body);
    memcpy(s->body, req->body, s->body_len);
    if (rf_http_query_get(req, "db", s->db, sizeof(s->db)) < 0)
        s->db[0] = '\0';
    snprintf(s->enc, sizeof(s->enc), "%.*s", (int)req->content_encoding_len,
             req->content_encoding ? req->content_encoding : "");
    resp->points = 1;
    if (req->body_len == 0) {
        resp->status = 200;
        resp->content_type = "text/plain";
        memcpy(resp->body, "pong", 4);
        resp->body_len = 4;
    }
}

typedef struct fx {
    rf_http_server *srv;
    rf_http_conn *conn;
    seen s;
    char out[1 << 16];
    size_t out_len;
} fx;

static fx *fx_new(const rf_http_limits *lim)
{
    fx *f = calloc(1, sizeof(*f));
    rf_err err;
    f->srv = rf_http_server_new(lim, &err);
    assert_non_null(f->srv);
    assert_int_equal(
        rf_http_server_route(f->srv, "/write", RF_HTTP_POST, "write", echo_handler, &f->s, &err),
        0);
    assert_int_equal(rf_http_server_route(f->srv, "/ping", RF_HTTP_GET | RF_HTTP_HEAD, "ping",
                                          echo_handler, &f->s, &err),
                     1);
    f->conn = rf_http_conn_new(f->srv, "127.0.0.1:9", &err);
    assert_non_null(f->conn);
    return f;
}

static void fx_free(fx *f)
{
    rf_http_conn_free(f->conn);
    assert_int_equal(rf_http_server_body_in_use(f->srv), 0); /* every byte went back */
    rf_http_server_free(f->srv);
    free(f);
}

/* Feeds text in pieces of `step` bytes (0: at once), draining the output
 * into f->out; returns the last feed result. */
static int feed(fx *f, const char *data, size_t len, size_t step)
{
    int rc = RF_HTTP_KEEP;
    size_t off = 0;
    do {
        size_t n = step && len - off > step ? step : len - off;
        rc = rf_http_conn_feed(f->conn, data + off, n, 1000, 2000);
        off += n;
        const char *o;
        size_t ol;
        rf_http_conn_output(f->conn, &o, &ol);
        assert_true(f->out_len + ol < sizeof(f->out));
        memcpy(f->out + f->out_len, o, ol);
        f->out_len += ol;
        rf_http_conn_consume(f->conn, ol);
        f->out[f->out_len] = '\0';
    } while (off < len && rc == RF_HTTP_KEEP);
    return rc;
}

static int feeds(fx *f, const char *text, size_t step)
{
    return feed(f, text, strlen(text), step);
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_simple_post_every_split(void **state)
{
    (void)state;
    static const char req[] = "POST /write?db=my%20db&x=1 HTTP/1.1\r\nHost: a\r\n"
                              "Content-Length: 11\r\n\r\ncpu v=1 123";
    /* The same request cut at every byte boundary gives the same result. */
    for (size_t step = 0; step <= 12; step++) {
        fx *f = fx_new(NULL);
        assert_int_equal(feeds(f, req, step), RF_HTTP_KEEP);
        assert_int_equal(f->s.calls, 1);
        assert_string_equal(f->s.path, "/write");
        assert_int_equal(f->s.body_len, 11);
        assert_memory_equal(f->s.body, "cpu v=1 123", 11);
        assert_string_equal(f->s.db, "my db");
        assert_string_equal(f->out, "HTTP/1.1 204 No Content\r\n\r\n");
        assert_int_equal(rf_http_status_count(f->srv, 0, RF_HTTP_ST_204), 1);
        assert_int_equal(rf_http_counter(f->srv, RF_HTTP_C_POINTS), 1);
        fx_free(f);
    }
}

static void test_pipelined_keepalive_and_head(void **state)
{
    (void)state;
    fx *f = fx_new(NULL);
    assert_int_equal(feeds(f,
                           "GET /ping HTTP/1.1\r\n\r\n"
                           "HEAD /ping HTTP/1.1\r\n\r\n"
                           "POST /write HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                           "GET /nowhere HTTP/1.1\r\n\r\n"
                           "DELETE /write HTTP/1.1\r\n\r\n"
                           "GET /ping HTTP/1.1\r\n\r\n",
                           0),
                     RF_HTTP_KEEP);
    assert_int_equal(f->s.calls, 4);
    assert_int_equal(count_of(f->out, "HTTP/1.1 200 OK\r\n"), 3);
    assert_int_equal(count_of(f->out, "pong"), 2); /* not after HEAD */
    assert_int_equal(count_of(f->out, "HTTP/1.1 204"), 1);
    assert_int_equal(count_of(f->out, "HTTP/1.1 404"), 1);
    assert_int_equal(count_of(f->out, "HTTP/1.1 405"), 1);
    assert_int_equal(count_of(f->out, "Allow: "), 1);
    assert_null(strstr(f->out, "Connection: close"));
    /* Order kept: 404 before 405 before the last 200. */
    assert_true(strstr(f->out, "404") < strstr(f->out, "405"));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_NOT_FOUND), 1);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_METHOD), 1);
    assert_int_equal(rf_http_status_count(f->srv, 1, RF_HTTP_ST_200), 3);
    assert_int_equal(rf_http_status_count(f->srv, RF_HTTP_EP_NONE, RF_HTTP_ST_404), 1);
    fx_free(f);
}

static void test_chunked_body(void **state)
{
    (void)state;
    for (size_t step = 0; step <= 5; step++) {
        fx *f = fx_new(NULL);
        assert_int_equal(feeds(f,
                               "POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "4\r\ncpu \r\n7;ext=1\r\nv=1 123\r\n0\r\n\r\n",
                               step),
                         RF_HTTP_KEEP);
        assert_int_equal(f->s.calls, 1);
        assert_int_equal(f->s.body_len, 11);
        assert_memory_equal(f->s.body, "cpu v=1 123", 11);
        assert_string_equal(f->out, "HTTP/1.1 204 No Content\r\n\r\n");
        fx_free(f);
    }
}

static void test_expect_continue(void **state)
{
    (void)state;
    rf_http_limits lim = {.max_body = 100};
    fx *f = fx_new(&lim);
    /* The interim answer comes before the body is sent. */
    assert_int_equal(feeds(f,
                           "POST /write HTTP/1.1\r\nExpect: 100-continue\r\n"
                           "Content-Length: 3\r\n\r\n",
                           0),
                     RF_HTTP_KEEP);
    assert_string_equal(f->out, "HTTP/1.1 100 Continue\r\n\r\n");
    assert_int_equal(feeds(f, "abc", 0), RF_HTTP_KEEP);
    assert_int_equal(f->s.calls, 1);
    assert_string_equal(f->out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
    /* Too large: 413 instead of 100, and close, before the body. */
    assert_int_equal(feeds(f,
                           "POST /write HTTP/1.1\r\nExpect: 100-continue\r\n"
                           "Content-Length: 101\r\n\r\n",
                           0),
                     RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 413 Payload Too Large\r\n"));
    assert_int_equal(count_of(f->out, "100 Continue"), 1);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_BODY_TOO_LARGE), 1);
    fx_free(f);

    f = fx_new(NULL);
    assert_int_equal(
        feeds(f, "POST /write HTTP/1.1\r\nExpect: magic\r\nContent-Length: 1\r\n\r\n", 0),
        RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 417"));
    fx_free(f);
}

static void test_body_limit_chunked(void **state)
{
    (void)state;
    rf_http_limits lim = {.max_body = 10};
    fx *f = fx_new(&lim);
    /* No length declared: refused when the 11th byte arrives. */
    assert_int_equal(feeds(f,
                           "POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "6\r\n123456\r\n6\r\n123456\r\n0\r\n\r\n",
                           3),
                     RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 413"));
    assert_non_null(strstr(f->out, "Connection: close"));
    assert_int_equal(f->s.calls, 0);
    /* Nothing after the close is parsed. */
    assert_int_equal(feeds(f, "GET /ping HTTP/1.1\r\n\r\n", 0), RF_HTTP_CLOSE);
    assert_int_equal(f->s.calls, 0);
    fx_free(f);
}

static void test_header_limits(void **state)
{
    (void)state;
    rf_http_limits lim = {.max_header = 256, .max_headers = 4};
    fx *f = fx_new(&lim);
    char big[1024];
    snprintf(big, sizeof(big), "GET /ping HTTP/1.1\r\nX-Long: %0300d\r\n\r\n", 0);
    assert_int_equal(feeds(f, big, 7), RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 431"));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_HEADER_TOO_LARGE), 1);
    fx_free(f);

    f = fx_new(&lim);
    assert_int_equal(
        feeds(f, "GET /ping HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\ne: 5\r\n\r\n", 0),
        RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 431"));
    fx_free(f);

    /* A long url counts too. */
    f = fx_new(&lim);
    snprintf(big, sizeof(big), "GET /ping?%0400d HTTP/1.1\r\n\r\n", 0);
    assert_int_equal(feeds(f, big, 0), RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 431"));
    fx_free(f);
}

static void test_malformed_and_close(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /ping HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "POST /write HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST /write HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /ping HTTP/1.1\r\nBad Header\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fx *f = fx_new(NULL);
        assert_int_equal(feeds(f, bad[i], 0), RF_HTTP_CLOSE);
        assert_non_null(strstr(f->out, "HTTP/1.1 400 Bad Request"));
        assert_non_null(strstr(f->out, "{\"error\":"));
        assert_int_equal(f->s.calls, 0);
        assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_BAD_REQUEST), 1);
        fx_free(f);
    }
    /* HTTP/1.0 and Connection: close answer, then close. */
    fx *f = fx_new(NULL);
    assert_int_equal(feeds(f, "GET /ping HTTP/1.0\r\n\r\nGET /ping HTTP/1.1\r\n\r\n", 0),
                     RF_HTTP_CLOSE);
    assert_int_equal(f->s.calls, 1);
    assert_non_null(strstr(f->out, "Connection: close"));
    fx_free(f);
    f = fx_new(NULL);
    assert_int_equal(feeds(f, "GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n", 0), RF_HTTP_CLOSE);
    assert_int_equal(f->s.calls, 1);
    fx_free(f);
}

static size_t gzip_of(const void *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = z.total_out;
    deflateEnd(&z);
    return n;
}

static void post_gzip(fx *f, const uint8_t *gz, size_t gzlen)
{
    char head[256];
    int n = snprintf(
        head, sizeof(head),
        "POST /write HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n", gzlen);
    feed(f, head, (size_t)n, 0);
    feed(f, (const char *)gz, gzlen, 0);
}

static void test_gzip(void **state)
{
    (void)state;
    static uint8_t gz[1 << 16];
    fx *f = fx_new(NULL);
    const char *text = "cpu,host=a v=1 1\ncpu,host=b v=2 2\n";
    size_t n = gzip_of(text, strlen(text), gz, sizeof(gz));
    /* Two members back to back are one body. */
    size_t n2 = gzip_of("mem v=3 3\n", 10, gz + n, sizeof(gz) - n);
    post_gzip(f, gz, n + n2);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(f->s.body_len, strlen(text) + 10);
    assert_memory_equal(f->s.body, text, strlen(text));
    assert_memory_equal(f->s.body + strlen(text), "mem v=3 3\n", 10);
    assert_string_equal(f->s.enc, "");
    assert_int_equal(rf_http_counter(f->srv, RF_HTTP_C_BODY_BYTES), n + n2);
    assert_int_equal(rf_http_counter(f->srv, RF_HTTP_C_DECODED_BYTES), strlen(text) + 10);

    /* Corrupt and truncated: 400, connection kept. */
    f->out_len = 0;
    gz[n / 2] ^= 0x55;
    post_gzip(f, gz, n);
    assert_non_null(strstr(f->out, "HTTP/1.1 400"));
    gz[n / 2] ^= 0x55;
    f->out_len = 0;
    post_gzip(f, gz, n - 5);
    assert_non_null(strstr(f->out, "HTTP/1.1 400"));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_BAD_ENCODING), 2);
    assert_false(rf_http_conn_closing(f->conn));
    /* Other encodings reach the handler as they are. */
    assert_int_equal(feeds(f,
                           "POST /write HTTP/1.1\r\nContent-Encoding: snappy\r\n"
                           "Content-Length: 2\r\n\r\nxy",
                           0),
                     RF_HTTP_KEEP);
    assert_string_equal(f->s.enc, "snappy");
    fx_free(f);
}

/* The gzip trailer's size is only the decoder's first guess (libdeflate
 * wants its output buffer up front): the last member's trailer says nothing
 * of the others, so the buffer grows; a trailer that lies is refused (the
 * size is checked, as the CRC), whether it claims too little or 4 GiB. */
static void test_gzip_trailer_lies(void **state)
{
    (void)state;
    size_t big = 3u << 20; /* past the first guess and the kept buffer */
    char *text = malloc(big);
    for (size_t i = 0; i < big; i++)
        text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    text[big - 1] = '\n';
    size_t cap = big + 4096;
    uint8_t *gz = malloc(cap);
    size_t n = gzip_of(text, big, gz, cap);
    /* A second, small member: the trailer at the end of the body states
     * 8 bytes, the body holds 3 MiB + 8. */
    size_t n2 = gzip_of("m v=1 1\n", 8, gz + n, cap - n);
    fx *f = fx_new(NULL);
    post_gzip(f, gz, n + n2);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(rf_http_counter(f->srv, RF_HTTP_C_DECODED_BYTES), big + 8);
    assert_memory_equal(f->s.body, text, sizeof(f->s.body));
    /* Claims 16 bytes: the CRC and size checks are libdeflate's, so a
     * trailer that lies is refused rather than trusted. */
    gz[n - 4] = 16;
    gz[n - 3] = gz[n - 2] = gz[n - 1] = 0;
    f->out_len = 0;
    post_gzip(f, gz, n);
    assert_non_null(strstr(f->out, "HTTP/1.1 400"));
    assert_int_equal(f->s.calls, 1);
    /* Claims 4 GiB - 1 of a small body: the guess stays near the body's
     * deflate bound and the request is refused, not allocated for. */
    size_t sn = gzip_of("m v=1 1\n", 8, gz, cap);
    memset(gz + sn - 4, 0xff, 4);
    f->out_len = 0;
    post_gzip(f, gz, sn);
    assert_non_null(strstr(f->out, "HTTP/1.1 400"));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_BAD_ENCODING), 2);
    fx_free(f);
    free(gz);
    free(text);
}

static void test_gzip_bomb(void **state)
{
    (void)state;
    /* 8 MiB of zeros deflate to ~8 KiB; the decoded limit is 1 MiB. */
    size_t big = 8u << 20;
    uint8_t *zeros = calloc(1, big);
    static uint8_t gz[1 << 16];
    size_t n = gzip_of(zeros, big, gz, sizeof(gz));
    free(zeros);
    assert_true(n < 16384);
    rf_http_limits lim = {.max_decoded = 1u << 20};
    fx *f = fx_new(&lim);
    post_gzip(f, gz, n);
    assert_non_null(strstr(f->out, "HTTP/1.1 413"));
    assert_int_equal(f->s.calls, 0);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_DECODED_TOO_LARGE), 1);
    /* The connection goes on, and the buffers went back (checked in fx_free). */
    f->out_len = 0;
    assert_int_equal(feeds(f, "GET /ping HTTP/1.1\r\n\r\n", 0), RF_HTTP_KEEP);
    assert_non_null(strstr(f->out, "HTTP/1.1 200"));
    fx_free(f);
}

/* Bodies of all connections share a budget: past it, 503 with Retry-After. */
static void test_body_budget(void **state)
{
    (void)state;
    rf_http_limits lim = {.body_budget = 64u << 10, .max_body = 1u << 20};
    fx *f = fx_new(&lim);
    rf_err err;
    rf_http_conn *other = rf_http_conn_new(f->srv, "", &err);
    /* The other connection holds 48 KiB of a body in progress. */
    char head[128];
    int hn = snprintf(head, sizeof(head), "POST /write HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
                      48 << 10);
    assert_int_equal(rf_http_conn_feed(other, head, (size_t)hn, 0, 0), RF_HTTP_KEEP);
    assert_true(rf_http_server_body_in_use(f->srv) >= (48u << 10));
    hn = snprintf(head, sizeof(head), "POST /write HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
                  32 << 10);
    assert_int_equal(feed(f, head, (size_t)hn, 0), RF_HTTP_CLOSE);
    assert_non_null(strstr(f->out, "HTTP/1.1 503"));
    assert_non_null(strstr(f->out, "Retry-After: 1\r\n"));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_BUSY), 1);
    /* Timeout mid-request: 408 and close. */
    assert_true(rf_http_conn_in_request(other));
    assert_int_equal(rf_http_conn_timeout(other), RF_HTTP_CLOSE);
    const char *o;
    size_t ol;
    rf_http_conn_output(other, &o, &ol);
    assert_true(ol > 12 && !memcmp(o, "HTTP/1.1 408", 12));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_TIMEOUT), 1);
    rf_http_conn_free(other);
    fx_free(f);
}

/* Slowloris: a request trickled in byte by byte gets 408 once it has taken
 * longer than request_timeout, however steadily the bytes come. */
static void test_request_timeout(void **state)
{
    (void)state;
    rf_http_limits lim = {.request_timeout_ns = 1000};
    fx *f = fx_new(&lim);
    const char *req = "POST /write HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde";
    int rc = RF_HTTP_KEEP;
    int64_t t = 1;
    for (size_t i = 0; req[i] && rc == RF_HTTP_KEEP; i++, t += 100)
        rc = rf_http_conn_feed(f->conn, req + i, 1, t, t);
    assert_int_equal(rc, RF_HTTP_CLOSE);
    const char *o;
    size_t ol;
    rf_http_conn_output(f->conn, &o, &ol);
    assert_true(ol > 12 && !memcmp(o, "HTTP/1.1 408", 12));
    assert_int_equal(f->s.calls, 0);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_TIMEOUT), 1);
    fx_free(f);
    /* The same bytes in time: answered. */
    f = fx_new(&lim);
    for (size_t i = 0; req[i]; i++)
        assert_int_equal(rf_http_conn_feed(f->conn, req + i, 1, 5, 5), RF_HTTP_KEEP);
    assert_int_equal(f->s.calls, 1);
    fx_free(f);
}

/* A client pipelining requests without reading the answers is cut off. */
static void test_output_bound(void **state)
{
    (void)state;
    rf_http_limits lim = {.max_output = 4096};
    fx *f = fx_new(&lim);
    int rc = RF_HTTP_KEEP;
    for (int i = 0; i < 1000 && rc == RF_HTTP_KEEP; i++)
        rc = rf_http_conn_feed(f->conn, "GET /ping HTTP/1.1\r\n\r\n", 22, 0, 0);
    assert_int_equal(rc, RF_HTTP_CLOSE);
    const char *o;
    size_t ol;
    rf_http_conn_output(f->conn, &o, &ol);
    assert_true(ol <= 4096);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_OUTPUT_OVERFLOW), 1);
    fx_free(f);
}

/* A handler that parks when the query says park=1 (as a sync write does). */
static void park_handler(void *user, const rf_http_request *req, rf_http_response *resp)
{
    echo_handler(user, req, resp);
    char v[8];
    if (rf_http_query_get(req, "park", v, sizeof(v)) > 0)
        resp->park = true;
}

typedef struct park_log {
    int calls, refuse;
    uint64_t ids[8];
} park_log;

static int park_hook(void *user, rf_http_conn *c, uint64_t id)
{
    park_log *pl = user;
    assert_int_equal(rf_http_conn_parked(c), 0); /* not parked until the hook says yes */
    if (pl->refuse)
        return -EBUSY;
    pl->ids[pl->calls++] = id;
    return 0;
}

/* A fixture whose server routes POST /sync to park_handler and parks
 * through park_hook into *pl. */
static fx *fx_parking(const rf_http_limits *lim, park_log *pl)
{
    fx *f = fx_new(lim);
    rf_err err;
    assert_int_equal(
        rf_http_server_route(f->srv, "/sync", RF_HTTP_POST, "sync", park_handler, &f->s, &err), 2);
    rf_http_server_set_park(f->srv, park_hook, pl);
    return f;
}

/* Drains the connection's output into f->out. */
static void drain(fx *f)
{
    const char *o;
    size_t ol;
    rf_http_conn_output(f->conn, &o, &ol);
    memcpy(f->out + f->out_len, o, ol);
    f->out_len += ol;
    f->out[f->out_len] = '\0';
    rf_http_conn_consume(f->conn, ol);
}

static void test_park_and_resume(void **state)
{
    (void)state;
    park_log pl = {0};
    fx *f = fx_parking(NULL, &pl);
    /* A parked write, then two pipelined requests (one parks too), cut so
     * that the held bytes end inside a request. */
    static const char req[] = "POST /sync?park=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                              "GET /ping HTTP/1.1\r\n\r\n"
                              "POST /sync?park=1 HTTP/1.1\r\nContent-Length: 3\r\n\r\ndef"
                              "GET /ping HTTP/1.1\r\n\r\n";
    const size_t cut = sizeof(req) - 1 - 10;
    assert_int_equal(feed(f, req, cut, 0), RF_HTTP_KEEP);
    assert_int_equal(pl.calls, 1);
    assert_int_equal(f->s.calls, 1); /* the rest is held, not parsed */
    assert_int_equal(f->out_len, 0); /* nothing answered yet */
    assert_int_equal(rf_http_conn_parked(f->conn), pl.ids[0]);
    assert_int_equal(feed(f, req + cut, 10, 0), RF_HTTP_KEEP);
    assert_int_equal(f->s.calls, 1);
    /* A resume for another wait changes nothing. */
    assert_int_equal(rf_http_conn_resume(f->conn, pl.ids[0] + 100, 0), RF_HTTP_KEEP);
    assert_int_equal(rf_http_conn_parked(f->conn), pl.ids[0]);
    /* The first answer, the pong, then the second write parks again. */
    assert_int_equal(rf_http_conn_resume(f->conn, pl.ids[0], 0), RF_HTTP_KEEP);
    drain(f);
    assert_int_equal(f->s.calls, 3);
    assert_int_equal(pl.calls, 2);
    assert_int_equal(count_of(f->out, "HTTP/1.1 204"), 1);
    assert_int_equal(count_of(f->out, "pong"), 1);
    assert_true(strstr(f->out, "204") < strstr(f->out, "pong"));
    /* It times out: 503 with Retry-After, counted; the last ping follows. */
    assert_int_equal(rf_http_conn_resume(f->conn, pl.ids[1], -ETIMEDOUT), RF_HTTP_KEEP);
    drain(f);
    assert_int_equal(count_of(f->out, "HTTP/1.1 503"), 1);
    assert_int_equal(count_of(f->out, "Retry-After: 1"), 1);
    assert_int_equal(count_of(f->out, "pong"), 2);
    assert_true(strstr(f->out, "503") < strrchr(f->out, 'p'));
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_SYNC_TIMEOUT), 1);
    assert_int_equal(rf_http_conn_parked(f->conn), 0);
    /* A write error: 500; a hook that refuses: 503 at once. */
    assert_int_equal(feeds(f, "POST /sync?park=1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 0),
                     RF_HTTP_KEEP);
    assert_int_equal(rf_http_conn_resume(f->conn, pl.ids[2], -EIO), RF_HTTP_KEEP);
    drain(f);
    assert_int_equal(count_of(f->out, "HTTP/1.1 500"), 1);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_SYNC_FAILED), 1);
    pl.refuse = 1;
    assert_int_equal(feeds(f, "POST /sync?park=1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 0),
                     RF_HTTP_KEEP);
    assert_int_equal(count_of(f->out, "HTTP/1.1 503"), 2);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_SYNC_UNAVAILABLE), 1);
    assert_int_equal(rf_http_conn_parked(f->conn), 0);
    /* Connection: close on a parked write: answered at the resume, then closed. */
    pl.refuse = 0;
    assert_int_equal(feeds(f,
                           "POST /sync?park=1 HTTP/1.1\r\nConnection: close\r\n"
                           "Content-Length: 1\r\n\r\nxGET /ping HTTP/1.1\r\n\r\n",
                           0),
                     RF_HTTP_KEEP);
    assert_int_equal(rf_http_conn_resume(f->conn, pl.ids[3], 0), RF_HTTP_CLOSE);
    drain(f);
    assert_int_equal(count_of(f->out, "HTTP/1.1 204"), 2);
    assert_int_equal(count_of(f->out, "pong"), 2); /* the ping after it is not answered */
    assert_int_equal(count_of(f->out, "Connection: close"), 1);
    fx_free(f);
}

/* Bytes held behind a parked answer are bounded: past max_header +
 * max_body the connection is closed (output_overflow), never grown. */
/* A parked write gives its body back to the server's budget when it parks
 * (it was parsed and its answer copied): a client waiting on sync=true does
 * not hold other clients' room for bodies. */
static void test_park_releases_body(void **state)
{
    (void)state;
    park_log pl = {0};
    fx *f = fx_parking(NULL, &pl);
    const size_t body = 3u << 20; /* past the buffer a connection keeps */
    char head[128];
    int hl = snprintf(head, sizeof(head),
                      "POST /sync?park=1 HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", body);
    char *chunk = malloc(64 << 10);
    memset(chunk, 'x', 64 << 10);
    assert_int_equal(rf_http_conn_feed(f->conn, head, (size_t)hl, 1000, 2000), RF_HTTP_KEEP);
    for (size_t off = 0; off < body; off += 64 << 10)
        assert_int_equal(rf_http_conn_feed(f->conn, chunk, 64 << 10, 1000, 2000), RF_HTTP_KEEP);
    free(chunk);
    assert_int_equal(pl.calls, 1);
    assert_int_equal(rf_http_conn_parked(f->conn), pl.ids[0]);
    assert_true(rf_http_server_body_in_use(f->srv) < body);
    fx_free(f);
}

static void test_park_hold_bound(void **state)
{
    (void)state;
    rf_http_limits lim = {.max_body = 64, .max_header = 256};
    park_log pl = {0};
    fx *f = fx_parking(&lim, &pl);
    assert_int_equal(feeds(f, "POST /sync?park=1 HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", 0),
                     RF_HTTP_KEEP);
    char junk[200];
    memset(junk, 'a', sizeof(junk));
    assert_int_equal(feed(f, junk, sizeof(junk), 0), RF_HTTP_KEEP);
    assert_int_equal(feed(f, junk, sizeof(junk), 0), RF_HTTP_CLOSE);
    assert_int_equal(rf_http_reject_count(f->srv, RF_HTTP_REJ_OUTPUT_OVERFLOW), 1);
    fx_free(f);
}

static void test_query_and_error_json(void **state)
{
    (void)state;
    rf_http_request req = {0};
    req.query = "db=a%2Cb&rp=&precision=ms&bad=%G1&x";
    req.query_len = strlen(req.query);
    char v[8];
    assert_int_equal(rf_http_query_get(&req, "db", v, sizeof(v)), 3);
    assert_string_equal(v, "a,b");
    assert_int_equal(rf_http_query_get(&req, "rp", v, sizeof(v)), 0);
    assert_int_equal(rf_http_query_get(&req, "precision", v, sizeof(v)), 2);
    assert_int_equal(rf_http_query_get(&req, "bad", v, sizeof(v)), -EINVAL);
    assert_int_equal(rf_http_query_get(&req, "x", v, sizeof(v)), 0);
    assert_int_equal(rf_http_query_get(&req, "nope", v, sizeof(v)), -ENOENT);
    assert_int_equal(rf_http_query_get(&req, "precision", v, 2), -ENOSPC);

    rf_http_response r = {0};
    rf_http_resp_error(&r, 400, "unable to parse 'a \"b\"\\\n': %d", 3);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.content_type, "application/json");
    r.body[r.body_len] = '\0';
    assert_string_equal(r.body, "{\"error\":\"unable to parse 'a \\\"b\\\"\\\\\\u000a': 3\"}");
    /* A long message is cut, still valid JSON. */
    char big[3000];
    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rf_http_resp_error(&r, 400, "%s", big);
    assert_true(r.body_len <= RF_HTTP_RESP_BODY_MAX);
    assert_memory_equal(r.body + r.body_len - 2, "\"}", 2);
    assert_true(r.body[r.body_len - 3] == '"' && r.body[r.body_len - 4] == '\\');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_post_every_split),
        cmocka_unit_test(test_pipelined_keepalive_and_head),
        cmocka_unit_test(test_park_and_resume),
        cmocka_unit_test(test_park_hold_bound),
        cmocka_unit_test(test_park_releases_body),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_body_limit_chunked),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_malformed_and_close),
        cmocka_unit_test(test_gzip),
        cmocka_unit_test(test_gzip_bomb),
        cmocka_unit_test(test_gzip_trailer_lies),
        cmocka_unit_test(test_body_budget),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_output_bound),
        cmocka_unit_test(test_query_and_error_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
