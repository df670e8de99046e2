/* libFuzzer target: the HTTP/1.1 request layer (ingest/http), fed as the
 * listener feeds it: the stream in reads of sizes taken from the input.
 *
 * Input layout:
 *   byte 0      limits: bit 0 small max_body (64), bit 1 small max_header
 *               (128), bit 2 small body budget (4 KiB), bit 3 small
 *               max_decoded (256), bit 4 small max_output (4 KiB)
 *   byte 1      k, the number of read-size bytes (0..15)
 *   k bytes     read sizes (s + 1 bytes each, in turn); k = 0: one read
 *   the rest    the stream
 * Each read is copied into a buffer of exactly its size and freed after the
 * feed: ASan sees a read past it or a pointer kept into it.
 *
 * Checked:
 *   - the output is a sequence of whole answers, each starting "HTTP/1.1 "
 *     with a status of three digits; the output never exceeds max_output;
 *   - once a feed says RF_HTTP_CLOSE, every later feed says it too;
 *   - a handler sees a body no larger than max_decoded (max_body when not
 *     gzip), and every request it sees was answered;
 *   - the body budget is never passed, and all of it is back after the
 *     connection is freed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http.h"

static uint64_t handled;
static const rf_http_limits *cur_lim;

static void handler(void *user, const rf_http_request *req, rf_http_response *resp)
{
    (void)user;
    handled++;
    if (req->body_len > cur_lim->max_decoded ||
        (!req->content_encoding && req->body_len > cur_lim->max_decoded))
        abort();
    uint8_t sum = 0;
    for (size_t i = 0; i < req->body_len; i++) /* every byte readable */
        sum ^= req->body[i];
    if (sum == 0 && req->body_len == 1 && req->body[0] != 0)
        abort();
    char v[64];
    (void)rf_http_query_get(req, "db", v, sizeof(v));
    (void)rf_http_header_get(req, "authorization", NULL);
    if (req->body_len & 1)
        rf_http_resp_error(resp, 400, "odd %.*s", (int)(req->body_len & 63), req->body);
}

static void check_output(const char *o, size_t len)
{
    /* Every answer starts a line "HTTP/1.1 NNN "; the first byte too. */
    if (len && (len < 13 || memcmp(o, "HTTP/1.1 ", 9)))
        abort();
    for (size_t i = 9; i + 3 < len && i < 12; i++)
        if (o[i] < '0' || o[i] > '9')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t k = data[1] & 15;
    if (size < 2 + k)
        return 0;
    const uint8_t *sizes = data + 2;
    const char *stream = (const char *)data + 2 + k;
    size_t len = size - 2 - k;
    rf_http_limits lim = {
        .max_body = flags & 1 ? 64 : 0,
        .max_header = flags & 2 ? 128 : 0,
        .body_budget = flags & 4 ? 4096 : 0,
        .max_decoded = flags & 8 ? 256 : 0,
        .max_output = flags & 16 ? 4096 : 0,
    };
    rf_err err;
    rf_http_server *s = rf_http_server_new(&lim, &err);
    if (!s)
        abort();
    cur_lim = rf_http_server_limits(s);
    rf_http_server_route(s, "/write", RF_HTTP_POST, "write", handler, NULL, &err);
    rf_http_server_route(s, "/ping", RF_HTTP_GET | RF_HTTP_HEAD, "ping", handler, NULL, &err);
    rf_http_conn *c = rf_http_conn_new(s, "1.2.3.4:5", &err);
    if (!c)
        abort();
    handled = 0;
    size_t off = 0, turn = 0;
    int closed = 0;
    while (off < len) {
        size_t n = k ? (size_t)sizes[turn++ % k] + 1 : len;
        if (n > len - off)
            n = len - off;
        char *buf = malloc(n);
        memcpy(buf, stream + off, n);
        int rc = rf_http_conn_feed(c, buf, n, 1, 2);
        free(buf);
        off += n;
        if (closed && rc != RF_HTTP_CLOSE)
            abort();
        closed |= rc == RF_HTTP_CLOSE;
        if (rf_http_server_body_in_use(s) > cur_lim->body_budget)
            abort();
        const char *o;
        size_t ol;
        rf_http_conn_output(c, &o, &ol);
        if (ol > cur_lim->max_output)
            abort();
        check_output(o, ol);
        /* Write half of it, as a short write would. */
        rf_http_conn_consume(c, ol / 2);
        rf_http_conn_output(c, &o, &ol);
        rf_http_conn_consume(c, ol);
    }
    if (handled > rf_http_counter(s, RF_HTTP_C_REQUESTS) +
                      rf_http_reject_count(s, RF_HTTP_REJ_OUTPUT_OVERFLOW))
        abort();
    rf_http_conn_timeout(c);
    rf_http_conn_free(c);
    if (rf_http_server_body_in_use(s) != 0)
        abort();
    rf_http_server_free(s);
    return 0;
}
