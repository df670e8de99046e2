/* The HTTP/1.1 request layer (contract in http.h): drives libhttp-parser over
 * fed bytes, keeps a request's url and headers in a bounded buffer, collects
 * its body, dispatches it to a route and serialises the answer. */
#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth/auth.h"
#include "ingest/http/http_pvt.h"

/* Bodies kept for the next request of a keep-alive connection: above this,
 * one big request would pin its buffers (and budget) for the connection's
 * life. */
#define RF_HTTP_KEEP_BUF (1u << 20)

typedef struct rf_http_route {
    const char *path;
    size_t path_len;
    unsigned methods;
    const char *name;
    rf_http_handler_fn fn;
    void *user;
} rf_http_route;

struct rf_http_server {
    rf_http_limits lim;
    http_parser_settings settings;
    rf_http_route routes[RF_HTTP_MAX_ROUTES];
    unsigned n_routes;
    uint64_t body_in_use; /* owning thread only; published in body_in_use_pub */
    _Atomic uint64_t body_in_use_pub;
    _Atomic uint64_t counters[RF_HTTP_C__COUNT];
    _Atomic uint64_t rejects[RF_HTTP_REJ__COUNT];
    _Atomic uint64_t status[RF_HTTP_EP__COUNT][RF_HTTP_ST__COUNT];
    rf_http_auth_fn auth_get; /* NULL: no authentication */
    void *auth_user;
    const char *open_path; /* answered without credentials (/ping) */
    rf_http_park_fn park;  /* NULL: answers are never parked */
    void *park_user;
    uint64_t park_seq; /* the last park id given */
};

enum hdr_state {
    HS_NONE = 0,
    HS_FIELD,
    HS_VALUE
};

struct rf_http_conn {
    rf_http_server *srv;
    http_parser parser;
    char peer[64];
    /* url and headers of the request in progress, in hdr[0..hdr_len) */
    char *hdr;
    uint32_t hdr_len;
    uint32_t url_off, url_len;
    enum hdr_state hstate;
    rf_http_header *headers; /* offsets into hdr until the headers are complete */
    uint32_t n_headers;
    bool in_request;
    int64_t request_start_ns; /* mono time of the request's first byte */
    bool closing;
    bool failed; /* a callback refused: the answer is in out, stop parsing */
    rf_http_buf body, decoded;
    struct libdeflate_decompressor *inflater; /* gzip bodies; NULL until the first */
    int64_t wall_ns, mono_ns;
    char *out;
    size_t out_len, out_cap;
    int fd;                  /* the socket, for handlers that answer later (-1: unknown) */
    bool detached;           /* a handler took the answer over: later bytes are ignored */
    struct rf_tls_conn *tls; /* the connection's TLS state, for detached answers */
    /* A parked answer (rf_http_response.park): its id (0: none), the answer
     * and what emit needs, and the bytes that came after it. */
    uint64_t park_id;
    rf_http_response *parked; /* allocated at the first park, kept */
    unsigned parked_ep;
    bool parked_head;
    rf_http_buf held;
};

/* ---- names ---------------------------------------------------------------- */

static const char *const reject_names[RF_HTTP_REJ__COUNT] = {
    [RF_HTTP_REJ_BAD_REQUEST] = "bad_request",
    [RF_HTTP_REJ_HEADER_TOO_LARGE] = "header_too_large",
    [RF_HTTP_REJ_BODY_TOO_LARGE] = "body_too_large",
    [RF_HTTP_REJ_DECODED_TOO_LARGE] = "decoded_too_large",
    [RF_HTTP_REJ_BAD_ENCODING] = "bad_encoding",
    [RF_HTTP_REJ_UNSUPPORTED_ENCODING] = "unsupported_encoding",
    [RF_HTTP_REJ_EXPECTATION] = "expectation_failed",
    [RF_HTTP_REJ_NOT_FOUND] = "not_found",
    [RF_HTTP_REJ_METHOD] = "method_not_allowed",
    [RF_HTTP_REJ_BUSY] = "busy",
    [RF_HTTP_REJ_TIMEOUT] = "timeout",
    [RF_HTTP_REJ_OUTPUT_OVERFLOW] = "output_overflow",
    [RF_HTTP_REJ_BAD_SNAPPY] = "bad_snappy",
    [RF_HTTP_REJ_BAD_PROTOBUF] = "bad_protobuf",
    [RF_HTTP_REJ_DECODE_LIMIT] = "decode_limit",
    [RF_HTTP_REJ_BAD_PARAMETER] = "bad_parameter",
    [RF_HTTP_REJ_BAD_JSON] = "bad_json",
    [RF_HTTP_REJ_TLS_HANDSHAKE_FAILED] = "tls_handshake_failed",
    [RF_HTTP_REJ_CLIENT_CERT_MISSING] = "client_cert_missing",
    [RF_HTTP_REJ_CLIENT_CERT_INVALID] = "client_cert_invalid",
    [RF_HTTP_REJ_AUTH_MISSING] = "auth_missing",
    [RF_HTTP_REJ_AUTH_BAD] = "auth_bad",
    [RF_HTTP_REJ_SYNC_TIMEOUT] = "sync_timeout",
    [RF_HTTP_REJ_SYNC_FAILED] = "sync_failed",
    [RF_HTTP_REJ_SYNC_DROPPED] = "sync_dropped",
    [RF_HTTP_REJ_SYNC_UNAVAILABLE] = "sync_unavailable",
};

const char *rf_http_reject_name(enum rf_http_reject r)
{
    return (unsigned)r < RF_HTTP_REJ__COUNT ? reject_names[r] : "unknown";
}

static const int status_codes[RF_HTTP_ST__COUNT] = {
#define X(c) c,
    RF_HTTP_STATUS_CODES
#undef X
    0,
};

int rf_http_status_slot_code(enum rf_http_status_slot s)
{
    return (unsigned)s < RF_HTTP_ST__COUNT ? status_codes[s] : 0;
}

static enum rf_http_status_slot status_slot(int code)
{
    for (unsigned i = 0; i < RF_HTTP_ST_OTHER; i++)
        if (status_codes[i] == code)
            return (enum rf_http_status_slot)i;
    return RF_HTTP_ST_OTHER;
}

static const char *const counter_names[RF_HTTP_C__COUNT] = {
    [RF_HTTP_C_REQUESTS] = "requests",           [RF_HTTP_C_BYTES_IN] = "bytes_in",
    [RF_HTTP_C_BYTES_OUT] = "bytes_out",         [RF_HTTP_C_BODY_BYTES] = "body_bytes",
    [RF_HTTP_C_DECODED_BYTES] = "decoded_bytes", [RF_HTTP_C_POINTS] = "points",
    [RF_HTTP_C_CONTINUES] = "continues",         [RF_HTTP_C_CONNECTIONS] = "connections",
};

const char *rf_http_counter_name(enum rf_http_counter_id id)
{
    return (unsigned)id < RF_HTTP_C__COUNT ? counter_names[id] : "unknown";
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

/* ---- budget ----------------------------------------------------------------- */

int rf_http_budget_take(rf_http_server *s, size_t n)
{
    if (n > s->lim.body_budget - s->body_in_use)
        return -EBUSY;
    s->body_in_use += n;
    atomic_store_explicit(&s->body_in_use_pub, s->body_in_use, memory_order_relaxed);
    return 0;
}

void rf_http_budget_give(rf_http_server *s, size_t n)
{
    s->body_in_use -= n;
    atomic_store_explicit(&s->body_in_use_pub, s->body_in_use, memory_order_relaxed);
}

/* ---- responses ---------------------------------------------------------------- */

void rf_http_resp_header(rf_http_response *resp, const char *fmt, ...)
{
    char line[RF_HTTP_RESP_HEADERS_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 > sizeof(resp->headers) - resp->headers_len)
        return;
    memcpy(resp->headers + resp->headers_len, line, (size_t)n);
    memcpy(resp->headers + resp->headers_len + (size_t)n, "\r\n", 2);
    resp->headers_len += (size_t)n + 2;
}

void rf_http_resp_error(rf_http_response *resp, int status, const char *fmt, ...)
{
    char msg[RF_HTTP_RESP_BODY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(msg))
        n = (int)sizeof(msg) - 1;
    resp->status = status;
    resp->content_type = "application/json";
    /* Worst case an escaped byte takes 6 ("\u00XX"); stop before "\"}" no
     * longer fits. */
    size_t o = 0, cap = sizeof(resp->body) - 2;
    static const char pre[] = "{\"error\":\"";
    memcpy(resp->body, pre, sizeof(pre) - 1);
    o = sizeof(pre) - 1;
    for (int i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)msg[i];
        char esc[8];
        size_t el;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            el = 2;
        } else if (ch < 0x20 || ch >= 0x7f) {
            el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", ch);
        } else {
            esc[0] = (char)ch;
            el = 1;
        }
        if (o + el > cap)
            break;
        memcpy(resp->body + o, esc, el);
        o += el;
    }
    memcpy(resp->body + o, "\"}", 2);
    resp->body_len = o + 2;
}

static int out_append(rf_http_conn *c, const char *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        if (c->out_len + n > c->srv->lim.max_output)
            return -ENOSPC;
        size_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + n)
            cap *= 2;
        if (cap > c->srv->lim.max_output)
            cap = c->srv->lim.max_output;
        char *np = realloc(c->out, cap);
        if (!np)
            return -ENOMEM;
        c->out = np;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Serialises an answer and counts it under endpoint ep. */
static void emit(rf_http_conn *c, unsigned ep, const rf_http_response *r, bool head)
{
    rf_http_server *s = c->srv;
    char h[512 + RF_HTTP_RESP_HEADERS_MAX];
    int n = snprintf(h, sizeof(h), "HTTP/1.1 %d %s\r\n", r->status, reason_phrase(r->status));
    if (r->status != 204 && r->status >= 200)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Content-Length: %zu\r\n", r->body_len);
    if (r->content_type && r->body_len)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Content-Type: %s\r\n", r->content_type);
    if (r->close || c->closing)
        n += snprintf(h + n, sizeof(h) - (size_t)n, "Connection: close\r\n");
    memcpy(h + n, r->headers, r->headers_len);
    n += (int)r->headers_len;
    memcpy(h + n, "\r\n", 2);
    n += 2;
    size_t body = (head || r->status == 204) ? 0 : r->body_len;
    if (out_append(c, h, (size_t)n) || (body && out_append(c, r->body, body))) {
        rf_stats_add(&s->rejects[RF_HTTP_REJ_OUTPUT_OVERFLOW], 1);
        c->closing = true;
        return;
    }
    rf_stats_add(&s->counters[RF_HTTP_C_BYTES_OUT], (uint64_t)n + body);
    rf_stats_add(&s->counters[RF_HTTP_C_REQUESTS], 1);
    rf_stats_add(&s->status[ep][status_slot(r->status)], 1);
    rf_stats_add(&s->counters[RF_HTTP_C_POINTS], r->points);
}

static void resp_init(rf_http_response *r)
{
    r->status = 204;
    r->content_type = NULL;
    r->headers_len = 0;
    r->body_len = 0;
    r->points = 0;
    r->close = false;
    r->detached = false;
    r->park = false;
    r->reject = -1;
}

/* The layer's own refusal: counted by reason, answered, and the connection
 * closed when the stream cannot go on (close). */
static void refuse(rf_http_conn *c, unsigned ep, enum rf_http_reject why, int status, bool close,
                   const char *msg)
{
    rf_http_response r;
    resp_init(&r);
    rf_http_resp_error(&r, status, "%s", msg);
    if (status == 503)
        rf_http_resp_header(&r, "Retry-After: 1");
    if (status == 405) {
        /* Allow is required with 405 (RFC 9110, 15.5.6); every route here
         * takes POST or GET/HEAD, so list what the path takes. */
        rf_http_resp_header(&r, "Allow: GET, HEAD, POST");
    }
    r.close = close;
    if (close)
        c->closing = true;
    rf_stats_add(&c->srv->rejects[why], 1);
    emit(c, ep, &r, false);
}

/* ---- parser callbacks ------------------------------------------------------- */

static int hdr_append(rf_http_conn *c, const char *at, size_t len)
{
    if (len > c->srv->lim.max_header - c->hdr_len) {
        refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_HEADER_TOO_LARGE, 431, true,
               "request header fields too large");
        c->failed = true;
        return -1;
    }
    memcpy(c->hdr + c->hdr_len, at, len);
    c->hdr_len += (uint32_t)len;
    return 0;
}

static int on_message_begin(http_parser *p)
{
    rf_http_conn *c = p->data;
    c->in_request = true;
    c->request_start_ns = c->mono_ns;
    c->hdr_len = 0;
    c->url_off = c->url_len = 0;
    c->n_headers = 0;
    c->hstate = HS_NONE;
    c->body.len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    rf_http_conn *c = p->data;
    if (hdr_append(c, at, len))
        return -1;
    c->url_len += (uint32_t)len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    rf_http_conn *c = p->data;
    if (c->hstate != HS_FIELD) {
        if (c->n_headers == c->srv->lim.max_headers) {
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_HEADER_TOO_LARGE, 431, true,
                   "too many header fields");
            c->failed = true;
            return -1;
        }
        rf_http_header *h = &c->headers[c->n_headers++];
        h->name = (const char *)(uintptr_t)c->hdr_len; /* an offset until complete */
        h->name_len = 0;
        h->value = (const char *)(uintptr_t)c->hdr_len;
        h->value_len = 0;
        c->hstate = HS_FIELD;
    }
    if (hdr_append(c, at, len))
        return -1;
    c->headers[c->n_headers - 1].name_len += (uint32_t)len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    rf_http_conn *c = p->data;
    rf_http_header *h = &c->headers[c->n_headers - 1];
    if (c->hstate != HS_VALUE) {
        h->value = (const char *)(uintptr_t)c->hdr_len;
        c->hstate = HS_VALUE;
    }
    if (hdr_append(c, at, len))
        return -1;
    h->value_len += (uint32_t)len;
    return 0;
}

static bool span_ieq(const char *a, size_t alen, const char *b)
{
    size_t bl = strlen(b);
    if (alen != bl)
        return false;
    for (size_t i = 0; i < bl; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return false;
    return true;
}

static const char *find_header(const rf_http_header *hs, uint32_t n, const char *name, size_t *len)
{
    for (uint32_t i = 0; i < n; i++)
        if (span_ieq(hs[i].name, hs[i].name_len, name)) {
            if (len)
                *len = hs[i].value_len;
            return hs[i].value;
        }
    return NULL;
}

/* Whether the request may go on: credentials checked before its body is
 * read, so an unauthenticated client spends no body budget. A refusal is
 * answered 401 and closes the connection (its body would follow). */
static bool authorized(rf_http_conn *c)
{
    rf_http_server *s = c->srv;
    struct rf_auth *a = s->auth_get ? s->auth_get(s->auth_user) : NULL;
    if (!a)
        return true;
    const char *url = c->hdr + c->url_off;
    const char *q = memchr(url, '?', c->url_len);
    size_t path_len = q ? (size_t)(q - url) : c->url_len;
    if (s->open_path && strlen(s->open_path) == path_len && !memcmp(s->open_path, url, path_len))
        return true;
    size_t vl = 0;
    const char *v = find_header(c->headers, c->n_headers, "authorization", &vl);
    enum rf_auth_result r = rf_auth_check(a, v, vl);
    if (r == RF_AUTH_OK)
        return true;
    rf_http_response resp;
    resp_init(&resp);
    rf_http_resp_error(&resp, 401, "%s",
                       r == RF_AUTH_MISSING ? "authorization required" : "authorization failed");
    rf_http_resp_header(&resp, "WWW-Authenticate: %s", rf_auth_challenge(a));
    resp.close = true;
    c->closing = c->failed = true;
    rf_stats_add(
        &s->rejects[r == RF_AUTH_MISSING ? RF_HTTP_REJ_AUTH_MISSING : RF_HTTP_REJ_AUTH_BAD], 1);
    emit(c, RF_HTTP_EP_NONE, &resp, false);
    return false;
}

static int on_headers_complete(http_parser *p)
{
    rf_http_conn *c = p->data;
    /* Offsets become pointers now that hdr no longer moves. */
    for (uint32_t i = 0; i < c->n_headers; i++) {
        c->headers[i].name = c->hdr + (uintptr_t)c->headers[i].name;
        c->headers[i].value = c->hdr + (uintptr_t)c->headers[i].value;
    }
    if (!authorized(c))
        return -1;
    const rf_http_limits *lim = &c->srv->lim;
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
        p->content_length > lim->max_body) {
        /* Refused before a byte of it is read (or sent, with 100-continue). */
        refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_BODY_TOO_LARGE, 413, true,
               "request body larger than the limit");
        c->failed = true;
        return -1;
    }
    size_t el;
    const char *ex = find_header(c->headers, c->n_headers, "expect", &el);
    if (ex) {
        if (!span_ieq(ex, el, "100-continue")) {
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_EXPECTATION, 417, true,
                   "only Expect: 100-continue is supported");
            c->failed = true;
            return -1;
        }
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (out_append(c, cont, sizeof(cont) - 1)) {
            rf_stats_add(&c->srv->rejects[RF_HTTP_REJ_OUTPUT_OVERFLOW], 1);
            c->closing = c->failed = true;
            return -1;
        }
        rf_stats_add(&c->srv->counters[RF_HTTP_C_CONTINUES], 1);
        rf_stats_add(&c->srv->counters[RF_HTTP_C_BYTES_OUT], sizeof(cont) - 1);
    }
    if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX && p->content_length > 0) {
        /* Reserve once for a declared length instead of doubling up to it. */
        int rc = rf_http_buf_reserve(c->srv, &c->body, p->content_length, lim->max_body);
        if (rc) {
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_BUSY, 503, true,
                   "too many request bodies in progress; retry");
            c->failed = true;
            return -1;
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    rf_http_conn *c = p->data;
    const rf_http_limits *lim = &c->srv->lim;
    if (len > lim->max_body - c->body.len) {
        refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_BODY_TOO_LARGE, 413, true,
               "request body larger than the limit");
        c->failed = true;
        return -1;
    }
    int rc = rf_http_buf_reserve(c->srv, &c->body, c->body.len + len, lim->max_body);
    if (rc) {
        refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_BUSY, 503, true,
               "too many request bodies in progress; retry");
        c->failed = true;
        return -1;
    }
    memcpy(c->body.p + c->body.len, at, len);
    c->body.len += len;
    return 0;
}

static enum rf_http_method method_of(unsigned m)
{
    switch (m) {
    case HTTP_GET: return RF_HTTP_GET;
    case HTTP_HEAD: return RF_HTTP_HEAD;
    case HTTP_POST: return RF_HTTP_POST;
    case HTTP_PUT: return RF_HTTP_PUT;
    default: return RF_HTTP_OTHER;
    }
}

/* Replaces a parked answer by the error its outcome names. */
static void park_outcome(rf_http_conn *c, rf_http_response *r, int outcome)
{
    enum rf_http_reject why;
    int status = 503;
    const char *msg;
    switch (outcome) {
    case -ETIMEDOUT:
        why = RF_HTTP_REJ_SYNC_TIMEOUT;
        msg = "sync: the points were taken but not confirmed on disk in time; retry";
        break;
    case -ENOBUFS:
        why = RF_HTTP_REJ_SYNC_DROPPED;
        msg = "sync: the engine dropped points (full rings) while this request waited; retry";
        break;
    case -EBUSY:
        why = RF_HTTP_REJ_SYNC_UNAVAILABLE;
        msg = "sync: too many sync writes waiting; retry";
        break;
    default:
        why = RF_HTTP_REJ_SYNC_FAILED;
        status = 500;
        msg = "sync: storage could not write the points";
        break;
    }
    resp_init(r);
    rf_http_resp_error(r, status, "%s", msg);
    if (status == 503)
        rf_http_resp_header(r, "Retry-After: 1");
    rf_stats_add(&c->srv->rejects[why], 1);
}

/* The handler parked its answer: keep it and ask the hook. True when the
 * connection now waits for rf_http_conn_resume; false when the answer must
 * go out now (resp then holds it). */
static bool park(rf_http_conn *c, unsigned ep, rf_http_response *resp, bool head)
{
    rf_http_server *s = c->srv;
    if (!c->parked && !(c->parked = malloc(sizeof(*c->parked)))) {
        park_outcome(c, resp, -EBUSY);
        return false;
    }
    uint64_t id = ++s->park_seq;
    int rc = s->park(s->park_user, c, id);
    if (rc < 0) {
        park_outcome(c, resp, rc == -EBUSY ? -EBUSY : rc);
        return false;
    }
    *c->parked = *resp;
    c->parked_ep = ep;
    c->parked_head = head;
    c->park_id = id;
    /* The parser stops after this message; feed holds what follows. */
    http_parser_pause(&c->parser, 1);
    return true;
}

static void dispatch(rf_http_conn *c)
{
    rf_http_server *s = c->srv;
    http_parser *p = &c->parser;
    rf_http_request req;
    memset(&req, 0, sizeof(req));
    req.method = method_of(p->method);
    const char *url = c->hdr + c->url_off;
    const char *q = memchr(url, '?', c->url_len);
    req.path = url;
    req.path_len = q ? (size_t)(q - url) : c->url_len;
    if (q) {
        req.query = q + 1;
        req.query_len = c->url_len - req.path_len - 1;
    }
    req.headers = c->headers;
    req.n_headers = c->n_headers;
    req.peer = c->peer;
    req.wall_ns = c->wall_ns;
    req.mono_ns = c->mono_ns;
    req.fd = c->fd;
    req.tls = c->tls;
    req.wire_body_len = c->body.len;
    rf_stats_add(&s->counters[RF_HTTP_C_BODY_BYTES], c->body.len);

    unsigned ep = RF_HTTP_EP_NONE;
    bool path_known = false;
    for (unsigned i = 0; i < s->n_routes; i++) {
        const rf_http_route *rt = &s->routes[i];
        /* A path ending in '*' takes every path it starts (/api/v1/label/<name>/values). */
        bool prefix = rt->path_len && rt->path[rt->path_len - 1] == '*';
        if (prefix
                ? req.path_len >= rt->path_len - 1 && !memcmp(rt->path, req.path, rt->path_len - 1)
                : rt->path_len == req.path_len && !memcmp(rt->path, req.path, req.path_len)) {
            path_known = true;
            if (rt->methods & req.method) {
                ep = i;
                break;
            }
        }
    }
    if (ep == RF_HTTP_EP_NONE) {
        if (path_known)
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_METHOD, 405, false, "method not allowed");
        else
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_NOT_FOUND, 404, false, "not found");
        return;
    }

    size_t enc_len = 0;
    const char *enc = find_header(c->headers, c->n_headers, "content-encoding", &enc_len);
    req.body = c->body.p;
    req.body_len = c->body.len;
    if (enc && (span_ieq(enc, enc_len, "identity") || enc_len == 0))
        enc = NULL;
    if (enc && span_ieq(enc, enc_len, "gzip")) {
        int rc = rf_http_gunzip(s, &c->inflater, c->body.p, c->body.len, &c->decoded,
                                s->lim.max_decoded);
        if (rc == -E2BIG) {
            refuse(c, ep, RF_HTTP_REJ_DECODED_TOO_LARGE, 413, false,
                   "gzip body inflates past the limit");
            return;
        }
        if (rc == -EBUSY || rc == -ENOMEM) {
            refuse(c, ep, RF_HTTP_REJ_BUSY, 503, true,
                   "too many request bodies in progress; retry");
            return;
        }
        if (rc) {
            refuse(c, ep, RF_HTTP_REJ_BAD_ENCODING, 400, false, "gzip body does not inflate");
            return;
        }
        req.body = c->decoded.p;
        req.body_len = c->decoded.len;
        enc = NULL;
    }
    req.content_encoding = enc;
    req.content_encoding_len = enc ? enc_len : 0;
    rf_stats_add(&s->counters[RF_HTTP_C_DECODED_BYTES], req.body_len);
    if (!req.body)
        req.body = (const uint8_t *)"";

    rf_http_response resp;
    resp_init(&resp);
    s->routes[ep].fn(s->routes[ep].user, &req, &resp);
    if (resp.reject >= 0 && resp.reject < RF_HTTP_REJ__COUNT)
        rf_stats_add(&s->rejects[resp.reject], 1);
    if (resp.close)
        c->closing = true;
    if (resp.detached) {
        /* Answered on another thread: counted as taken, nothing written here. */
        c->detached = true;
        rf_stats_add(&s->counters[RF_HTTP_C_REQUESTS], 1);
        rf_stats_add(&s->status[ep][status_slot(200)], 1);
        return;
    }
    if (resp.park && s->park && park(c, ep, &resp, req.method == RF_HTTP_HEAD))
        return;
    emit(c, ep, &resp, req.method == RF_HTTP_HEAD);
}

static int on_message_complete(http_parser *p)
{
    rf_http_conn *c = p->data;
    if (!http_should_keep_alive(p))
        c->closing = true;
    dispatch(c);
    c->in_request = false;
    if (c->detached)
        return -1; /* stop parsing: the rest of the connection is not ours to answer */
    /* Give big buffers back: the budget is for requests in progress, and a
     * parked answer (sync=true) no longer needs its body: it was parsed and
     * the answer copied. */
    if (c->body.cap > RF_HTTP_KEEP_BUF)
        rf_http_buf_release(c->srv, &c->body);
    if (c->decoded.cap > RF_HTTP_KEEP_BUF)
        rf_http_buf_release(c->srv, &c->decoded);
    if (c->park_id)
        return 0; /* paused: a closing request closes after its answer (resume) */
    if (c->closing) {
        /* Stop here: bytes after a closing request are not answered. */
        c->failed = true;
        return -1;
    }
    return 0;
}

/* ---- server ----------------------------------------------------------------- */

rf_http_server *rf_http_server_new(const rf_http_limits *limits, rf_err *err)
{
    rf_http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        rf_err_set(err, ENOMEM, "http: out of memory");
        return NULL;
    }
    if (limits)
        s->lim = *limits;
    rf_http_limits *l = &s->lim;
    if (!l->max_body)
        l->max_body = 32u << 20;
    if (!l->max_decoded)
        l->max_decoded = 64u << 20;
    if (!l->max_header)
        l->max_header = 32u << 10;
    if (!l->max_headers)
        l->max_headers = 64;
    if (!l->max_output)
        l->max_output = 64u << 10;
    if (!l->body_budget)
        l->body_budget = 128u << 20;
    if (!l->request_timeout_ns)
        l->request_timeout_ns = 30ull * 1000000000ull;
    if (l->max_output < 4096) {
        free(s);
        rf_err_set(err, EINVAL, "http: max_output below 4 KiB cannot hold an answer");
        return NULL;
    }
    http_parser_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;
    return s;
}

void rf_http_server_free(rf_http_server *s)
{
    free(s);
}

const rf_http_limits *rf_http_server_limits(const rf_http_server *s)
{
    return &s->lim;
}

int rf_http_server_route(rf_http_server *s, const char *path, unsigned methods, const char *name,
                         rf_http_handler_fn fn, void *user, rf_err *err)
{
    if (!path || path[0] != '/' || !methods || !fn || !name)
        return rf_err_set(err, EINVAL,
                          "http: route needs a path starting with '/', "
                          "methods, a name and a handler");
    if (s->n_routes == RF_HTTP_MAX_ROUTES)
        return rf_err_set(err, ENOSPC, "http: more than %d routes", RF_HTTP_MAX_ROUTES);
    rf_http_route *r = &s->routes[s->n_routes];
    *r = (rf_http_route){path, strlen(path), methods, name, fn, user};
    return (int)s->n_routes++;
}

unsigned rf_http_server_routes(const rf_http_server *s)
{
    return s->n_routes;
}

const char *rf_http_server_route_name(const rf_http_server *s, unsigned ep)
{
    return ep < s->n_routes ? s->routes[ep].name : "none";
}

uint64_t rf_http_counter(const rf_http_server *s, enum rf_http_counter_id id)
{
    return (unsigned)id < RF_HTTP_C__COUNT
               ? atomic_load_explicit(&s->counters[id], memory_order_relaxed)
               : 0;
}

uint64_t rf_http_reject_count(const rf_http_server *s, enum rf_http_reject r)
{
    return (unsigned)r < RF_HTTP_REJ__COUNT
               ? atomic_load_explicit(&s->rejects[r], memory_order_relaxed)
               : 0;
}

void rf_http_server_count_reject(rf_http_server *s, enum rf_http_reject r)
{
    if ((unsigned)r < RF_HTTP_REJ__COUNT)
        rf_stats_add(&s->rejects[r], 1);
}

void rf_http_server_set_auth(rf_http_server *s, rf_http_auth_fn get, void *user,
                             const char *open_path)
{
    s->auth_get = get;
    s->auth_user = user;
    s->open_path = open_path;
}

bool rf_http_conn_detached(const rf_http_conn *c)
{
    return c->detached;
}

void rf_http_conn_set_tls(rf_http_conn *c, struct rf_tls_conn *tls)
{
    c->tls = tls;
}

uint64_t rf_http_status_count(const rf_http_server *s, unsigned ep, enum rf_http_status_slot st)
{
    if (ep >= RF_HTTP_EP__COUNT || (unsigned)st >= RF_HTTP_ST__COUNT)
        return 0;
    return atomic_load_explicit(&s->status[ep][st], memory_order_relaxed);
}

uint64_t rf_http_server_body_in_use(const rf_http_server *s)
{
    return atomic_load_explicit(&s->body_in_use_pub, memory_order_relaxed);
}

/* ---- connection ------------------------------------------------------------- */

uint64_t rf_http_conn_memory_bound(const rf_http_limits *limits)
{
    rf_http_limits d = {0};
    if (limits)
        d = *limits;
    uint64_t hdr = d.max_header ? d.max_header : 32u << 10;
    uint64_t nh = d.max_headers ? d.max_headers : 64;
    uint64_t out = d.max_output ? d.max_output : 64u << 10;
    /* libdeflate's decompressor: about 10 KiB (40 KiB leaves room for its
     * versions); a parked answer (sync=true), kept once made. Held bytes
     * come from the server's body budget. */
    return sizeof(rf_http_conn) + hdr + nh * sizeof(rf_http_header) + out + (40u << 10) +
           sizeof(rf_http_response);
}

rf_http_conn *rf_http_conn_new(rf_http_server *s, const char *peer_text, rf_err *err)
{
    rf_http_conn *c = calloc(1, sizeof(*c));
    if (c) {
        c->hdr = malloc(s->lim.max_header);
        c->headers = calloc(s->lim.max_headers, sizeof(*c->headers));
    }
    if (!c || !c->hdr || !c->headers) {
        if (c) {
            free(c->hdr);
            free(c->headers);
        }
        free(c);
        rf_err_set(err, ENOMEM, "http: out of memory for a connection");
        return NULL;
    }
    c->srv = s;
    c->fd = -1;
    snprintf(c->peer, sizeof(c->peer), "%s", peer_text ? peer_text : "");
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    rf_stats_add(&s->counters[RF_HTTP_C_CONNECTIONS], 1);
    return c;
}

void rf_http_conn_free(rf_http_conn *c)
{
    if (!c)
        return;
    rf_http_buf_release(c->srv, &c->body);
    rf_http_buf_release(c->srv, &c->decoded);
    rf_http_buf_release(c->srv, &c->held);
    free(c->parked);
    libdeflate_free_decompressor(c->inflater);
    free(c->hdr);
    free(c->headers);
    free(c->out);
    free(c);
}

/* Bytes that arrive while an answer is parked wait here for its resume. */
static int hold(rf_http_conn *c, const char *p, size_t n)
{
    const rf_http_limits *lim = &c->srv->lim;
    if (rf_http_buf_reserve(c->srv, &c->held, c->held.len + n,
                            (size_t)lim->max_header + (size_t)lim->max_body) < 0) {
        rf_stats_add(&c->srv->rejects[RF_HTTP_REJ_OUTPUT_OVERFLOW], 1);
        c->closing = c->failed = true;
        return RF_HTTP_CLOSE;
    }
    memcpy(c->held.p + c->held.len, p, n);
    c->held.len += n;
    return RF_HTTP_KEEP;
}

/* Runs the parser over bytes of the stream (fresh, or held while parked). */
static int parse_bytes(rf_http_conn *c, const char *data, size_t len)
{
    size_t done = http_parser_execute(&c->parser, &c->srv->settings, data, len);
    if (c->detached)
        return RF_HTTP_KEEP;
    if (c->park_id) /* paused after a parked answer: the rest waits for it */
        return c->closing || done >= len ? RF_HTTP_KEEP : hold(c, data + done, len - done);
    if (c->failed) {
        c->closing = true;
        return RF_HTTP_CLOSE;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW)
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_HEADER_TOO_LARGE, 431, true,
                   "request header fields too large");
        else if (e == HPE_INVALID_CONTENT_LENGTH || e == HPE_UNEXPECTED_CONTENT_LENGTH)
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_BAD_REQUEST, 400, true, "bad Content-Length");
        else
            refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_BAD_REQUEST, 400, true,
                   http_errno_description(e));
        c->failed = c->closing = true;
        return RF_HTTP_CLOSE;
    }
    return c->closing ? RF_HTTP_CLOSE : RF_HTTP_KEEP;
}

int rf_http_conn_feed(rf_http_conn *c, const char *data, size_t len, int64_t wall_ns,
                      int64_t mono_ns)
{
    if (c->detached)
        return RF_HTTP_KEEP; /* the thread that took the answer ends the connection */
    if (c->failed || (c->closing && !c->park_id))
        return RF_HTTP_CLOSE;
    rf_stats_add(&c->srv->counters[RF_HTTP_C_BYTES_IN], len);
    if (c->park_id) /* a closing one answers and closes; the others parse these later */
        return c->closing || len == 0 ? RF_HTTP_KEEP : hold(c, data, len);
    c->wall_ns = wall_ns;
    c->mono_ns = mono_ns;
    if (c->in_request && mono_ns - c->request_start_ns > (int64_t)c->srv->lim.request_timeout_ns)
        return rf_http_conn_timeout(c); /* trickling bytes do not keep a request alive */
    if (len == 0)
        return RF_HTTP_KEEP;
    return parse_bytes(c, data, len);
}

void rf_http_server_set_park(rf_http_server *s, rf_http_park_fn fn, void *user)
{
    s->park = fn;
    s->park_user = user;
}

uint64_t rf_http_conn_parked(const rf_http_conn *c)
{
    return c->park_id;
}

int rf_http_conn_resume(rf_http_conn *c, uint64_t park_id, int outcome)
{
    if (!park_id || c->park_id != park_id)
        return c->closing ? RF_HTTP_CLOSE : RF_HTTP_KEEP;
    c->park_id = 0;
    rf_http_response r = *c->parked;
    if (outcome)
        park_outcome(c, &r, outcome);
    emit(c, c->parked_ep, &r, c->parked_head);
    http_parser_pause(&c->parser, 0);
    if (c->closing || c->failed) {
        c->closing = c->failed = true;
        rf_http_buf_release(c->srv, &c->held);
        return RF_HTTP_CLOSE;
    }
    if (c->held.len == 0)
        return RF_HTTP_KEEP;
    /* The held bytes may park again: they are parsed from a buffer of
     * their own, and what follows a new park is held anew. */
    rf_http_buf bytes = c->held;
    c->held = (rf_http_buf){0};
    int rc = parse_bytes(c, (const char *)bytes.p, bytes.len);
    rf_http_buf_release(c->srv, &bytes);
    return rc;
}

void rf_http_conn_set_fd(rf_http_conn *c, int fd)
{
    c->fd = fd;
}

int rf_http_conn_fd(const rf_http_conn *c)
{
    return c->fd;
}

void rf_http_conn_eof(rf_http_conn *c)
{
    c->closing = true;
}

void rf_http_conn_output(const rf_http_conn *c, const char **data, size_t *len)
{
    *data = c->out ? c->out : ""; /* never NULL: callers may memcpy 0 bytes from it */
    *len = c->out_len;
}

void rf_http_conn_consume(rf_http_conn *c, size_t n)
{
    if (n >= c->out_len) {
        c->out_len = 0;
        return;
    }
    memmove(c->out, c->out + n, c->out_len - n);
    c->out_len -= n;
}

bool rf_http_conn_closing(const rf_http_conn *c)
{
    return c->closing;
}

bool rf_http_conn_in_request(const rf_http_conn *c)
{
    return c->in_request;
}

int rf_http_conn_timeout(rf_http_conn *c)
{
    if (c->in_request && !c->closing)
        refuse(c, RF_HTTP_EP_NONE, RF_HTTP_REJ_TIMEOUT, 408, true, "request timed out");
    c->closing = c->failed = true;
    return RF_HTTP_CLOSE;
}

/* ---- request accessors -------------------------------------------------------- */

const char *rf_http_header_get(const rf_http_request *req, const char *name, size_t *len)
{
    return find_header(req->headers, req->n_headers, name, len);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

char *rf_http_query_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 <= cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (cap)
        out[o] = '\0';
    return out;
}

int rf_http_query_get(const rf_http_request *req, const char *name, char *out, size_t cap)
{
    if (!req->query || cap == 0)
        return -ENOENT;
    size_t nl = strlen(name);
    const char *p = req->query, *end = req->query + req->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == nl && !memcmp(p, name, nl)) {
            size_t o = 0;
            for (const char *v = eq ? eq + 1 : pe; v < pe; v++) {
                int ch = (unsigned char)*v;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    if (pe - v < 3 || hexval(v[1]) < 0 || hexval(v[2]) < 0)
                        return -EINVAL;
                    ch = hexval(v[1]) * 16 + hexval(v[2]);
                    v += 2;
                }
                if (o + 1 >= cap)
                    return -ENOSPC;
                out[o++] = (char)ch;
            }
            out[o] = '\0';
            return (int)o;
        }
        p = pe + 1;
    }
    return -ENOENT;
}
