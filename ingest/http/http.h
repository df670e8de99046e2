/* HTTP/1.1 request layer: turns the bytes of a TCP connection, fed in
 * whatever chunks the socket delivered, into requests handed to endpoint
 * handlers, and their answers into bytes for the caller to write back.
 *
 * Shape
 *   An rf_http_server belongs to one thread (a worker): its routes, limits,
 *   body-memory budget and counters. An rf_http_conn is one TCP connection of
 *   that server. The layer does no I/O: whoever owns the socket (the io_uring
 *   listener) feeds received bytes in, writes rf_http_conn_output() out, and
 *   closes when told to. Everything below runs on the owning thread, with no
 *   lock; other threads only read counters (relaxed loads, single writer).
 *
 *     bytes --rf_http_conn_feed--> http_parser (libhttp-parser, the Node.js
 *       parser: streaming, so a request may arrive one byte at a time)
 *       --> url + headers (bounded: max_header -> 431)
 *       --> body (Content-Length or chunked; bounded: max_body -> 413)
 *       --> Content-Encoding gzip inflated (bounded: max_decoded -> 413)
 *       --> the route's handler --> rf_http_response --> output bytes
 *
 *   Keep-alive and pipelining: one feed may complete several requests; they
 *   are answered in order into the same output. `Expect: 100-continue` gets
 *   its interim answer as soon as the headers are in and the declared length
 *   fits. HTTP/1.0 and `Connection: close` end the connection after the
 *   answer.
 *
 * Memory
 *   Per connection: the parser, a header buffer of max_header bytes and an
 *   output buffer, allocated at rf_http_conn_new. Bodies (as received, and
 *   inflated) grow per request by doubling and are kept for the next request
 *   of the connection while small (<= 1 MiB each); every body byte is taken
 *   from the server's body_budget first, so all connections of a worker
 *   together never hold more than body_budget of bodies. A request that would
 *   pass it is answered 503 with Retry-After (the client retries; nothing is
 *   lost) and its connection closed. The output is bounded by max_output: a
 *   client that pipelines requests and never reads its answers is cut off
 *   (reject output_overflow). So a connection holds at most
 *   rf_http_conn_memory_bound() bytes besides its share of the budget.
 *
 * Errors and drops
 *   Nothing a client sends crashes or stalls the layer: a malformed request
 *   is answered 400 and the connection closed (the stream cannot be trusted
 *   past a framing error), a limit with its status code, and every refusal is
 *   counted by reason (enum rf_http_reject). A handler's own refusals (bad
 *   lines of a write) are the handler's to count; the layer counts requests by
 *   endpoint and status. Functions that can fail return negative errno and
 *   fill an rf_err. */
#ifndef RF_INGEST_HTTP_H
#define RF_INGEST_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "ingest/protocol/protocol.h"

enum rf_http_method {
    RF_HTTP_GET = 1u << 0,
    RF_HTTP_HEAD = 1u << 1,
    RF_HTTP_POST = 1u << 2,
    RF_HTTP_PUT = 1u << 3,
    RF_HTTP_OTHER = 1u << 4,
};

typedef struct rf_http_limits {
    uint64_t max_body;    /* request body as sent: 32 MiB; more -> 413 */
    uint64_t max_decoded; /* body after Content-Encoding (gzip, snappy): 64 MiB; more -> 413 */
    uint32_t max_header;  /* request line + headers: 32 KiB; more -> 431 */
    uint32_t max_headers; /* header count: 64; more -> 431 */
    uint32_t max_output;  /* answers not yet written: 64 KiB; more -> close */
    uint64_t body_budget; /* bodies of all connections of the server: 128 MiB; -> 503 */
    /* A request not complete this long after its first byte: 408 and close,
     * checked when the next bytes arrive (a client that stalls instead is
     * the listener's idle_timeout's). 30 s; slowloris bound. */
    uint64_t request_timeout_ns;
} rf_http_limits;

/* Why the layer refused a request (or a connection). Stable names
 * (rf_http_reject_name) for the stats socket and /metrics. */
enum rf_http_reject {
    RF_HTTP_REJ_BAD_REQUEST = 0,      /* the parser refused the bytes: 400, close */
    RF_HTTP_REJ_HEADER_TOO_LARGE,     /* 431, close */
    RF_HTTP_REJ_BODY_TOO_LARGE,       /* 413, close */
    RF_HTTP_REJ_DECODED_TOO_LARGE,    /* inflated past max_decoded: 413 */
    RF_HTTP_REJ_BAD_ENCODING,         /* a gzip body that does not inflate: 400 */
    RF_HTTP_REJ_UNSUPPORTED_ENCODING, /* 415 */
    RF_HTTP_REJ_EXPECTATION,          /* an Expect other than 100-continue: 417 */
    RF_HTTP_REJ_NOT_FOUND,            /* 404 */
    RF_HTTP_REJ_METHOD,               /* 405 */
    RF_HTTP_REJ_BUSY,                 /* body budget spent: 503, close */
    RF_HTTP_REJ_TIMEOUT,              /* a request left unfinished too long: 408, close */
    RF_HTTP_REJ_OUTPUT_OVERFLOW,      /* answers not read by the client: close */
    RF_HTTP_REJ_BAD_SNAPPY,           /* remote_write: not a snappy block, or a lying length: 400 */
    RF_HTTP_REJ_BAD_PROTOBUF,         /* remote_write: not a WriteRequest: 400 */
    RF_HTTP_REJ_DECODE_LIMIT,         /* remote_write: decoded message past its memory bound: 413 */
    RF_HTTP_REJ_BAD_PARAMETER,        /* a write's query (db, precision) refused: 400 */
    RF_HTTP_REJ_BAD_JSON,             /* OTLP: a JSON body that is not the message: 400 */
    /* A TLS listener's connection refusals (front.c, core/tls): closed. */
    RF_HTTP_REJ_TLS_HANDSHAKE_FAILED, /* not TLS (plain HTTP), no common version, client alert */
    RF_HTTP_REJ_CLIENT_CERT_MISSING,  /* client_ca_file set and no certificate */
    RF_HTTP_REJ_CLIENT_CERT_INVALID,  /* a certificate the client CA does not verify */
    RF_HTTP_REJ_AUTH_MISSING,         /* auth configured, no (usable) Authorization: 401 */
    RF_HTTP_REJ_AUTH_BAD,             /* wrong user, password or token: 401 */
    /* A write with sync=true (see "Sync writes" below) whose points were
     * taken but not confirmed on disk: */
    RF_HTTP_REJ_SYNC_TIMEOUT,     /* not durable within the engine's sync timeout: 503 */
    RF_HTTP_REJ_SYNC_FAILED,      /* a storage write error: 500 */
    RF_HTTP_REJ_SYNC_DROPPED,     /* the rings dropped points meanwhile (drop_newest): 503 */
    RF_HTTP_REJ_SYNC_UNAVAILABLE, /* too many sync writes waiting already: 503 */
    RF_HTTP_REJ__COUNT
};
const char *rf_http_reject_name(enum rf_http_reject r); /* "bad_request", ... */

/* Status codes counted per endpoint; anything else counts as "other". */
#define RF_HTTP_STATUS_CODES                                                                       \
    X(200) X(204) X(400) X(401) X(404) X(405) X(408) X(413) X(415) X(417) X(431) X(500) X(503)
enum rf_http_status_slot {
#define X(c) RF_HTTP_ST_##c,
    RF_HTTP_STATUS_CODES
#undef X
        RF_HTTP_ST_OTHER,
    RF_HTTP_ST__COUNT
};
int rf_http_status_slot_code(enum rf_http_status_slot s); /* 200, ...; 0 for other */

#define RF_HTTP_MAX_ROUTES 15
/* Endpoint index of requests that matched no route (404, or a request the
 * layer refused before it had a path). */
#define RF_HTTP_EP_NONE RF_HTTP_MAX_ROUTES
#define RF_HTTP_EP__COUNT (RF_HTTP_MAX_ROUTES + 1)

typedef struct rf_http_header {
    const char *name, *value;
    uint32_t name_len, value_len;
} rf_http_header;

/* One request as the handler sees it; valid only during the call. */
typedef struct rf_http_request {
    enum rf_http_method method;
    const char *path; /* without the query; not NUL-terminated */
    size_t path_len;
    const char *query; /* after '?', raw (percent-encoded); NULL when none */
    size_t query_len;
    const rf_http_header *headers;
    uint32_t n_headers;
    /* The body, gzip already inflated. content_encoding is the remaining
     * encoding the handler must undo itself (e.g. "snappy"), or NULL. */
    const uint8_t *body;
    size_t body_len;
    const char *content_encoding;
    size_t content_encoding_len;
    size_t wire_body_len;     /* bytes as received (before inflating) */
    const char *peer;         /* "ip:port" or "" */
    int64_t wall_ns, mono_ns; /* when the request's last byte was fed */
    int fd;                   /* the connection's socket (rf_http_conn_set_fd), or -1 */
    /* The connection's TLS state (core/tls) on a TLS listener, else NULL. A
     * handler that detaches answers through it, not on fd in clear: see
     * rf_http_response.detached. */
    struct rf_tls_conn *tls;
} rf_http_request;

/* Value of the first header `name` (case-insensitive), or NULL. */
const char *rf_http_header_get(const rf_http_request *req, const char *name, size_t *len);

/* Query parameter `name`, percent-decoded ('+' as space) into out (NUL-
 * terminated). Returns its length, -ENOENT when absent, -ENOSPC when it does
 * not fit in cap - 1 bytes, -EINVAL for a bad escape. */
int rf_http_query_get(const rf_http_request *req, const char *name, char *out, size_t cap);
/* The other way, for clients: s percent-encoded into out (NUL-terminated;
 * letters, digits and -_.~ as they are, every other byte %XX), cut to fit
 * cap - 1 bytes at a whole escape. Returns out. */
char *rf_http_query_encode(const char *s, char *out, size_t cap);

#define RF_HTTP_RESP_BODY_MAX 1024
#define RF_HTTP_RESP_HEADERS_MAX 256

/* What a handler answers. The layer fills defaults (status 204, no body)
 * before the call and turns it into bytes after. */
typedef struct rf_http_response {
    int status;
    const char *content_type;               /* static string, or NULL (no body) */
    char headers[RF_HTTP_RESP_HEADERS_MAX]; /* extra "Name: value\r\n" lines */
    size_t headers_len;
    char body[RF_HTTP_RESP_BODY_MAX];
    size_t body_len;
    uint64_t points; /* points the request delivered, for the counters */
    bool close;      /* close the connection after this answer */
    int reject;      /* enum rf_http_reject the layer counts, or -1 (none) */
    /* The handler answers later, on another thread, on a dup() of req->fd:
     * the layer writes nothing for this request, ignores every later byte
     * of the connection, and counts the request as 200. The other thread
     * writes the answer with "Connection: close" and shuts the socket down;
     * the client's close then ends the connection here. For work that must
     * not run on the owning thread (PromQL queries, storage/promapi).
     * On a TLS connection (req->tls set) the other thread owns req->tls
     * from then on: it calls rf_tls_conn_acquire(req->tls) before writing
     * (the owning thread may still be sending records), writes with
     * rf_tls_conn_write + rf_tls_conn_send_blocking, and frees it with
     * rf_tls_conn_free. */
    bool detached;
    /* The answer waits (parked) for rf_http_conn_resume on the owning
     * thread: the layer keeps this response, writes nothing more on the
     * connection and holds the bytes that follow (pipelined requests) until
     * then. Only honoured when the server has a park hook
     * (rf_http_server_set_park); else the answer goes out at once. */
    bool park;
} rf_http_response;

/* Appends an extra header line (printf format, without "\r\n"); dropped when
 * it does not fit. */
void rf_http_resp_header(rf_http_response *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Sets status and a JSON body {"error":"<message>"} (message escaped, cut to
 * fit). */
void rf_http_resp_error(rf_http_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

typedef void (*rf_http_handler_fn)(void *user, const rf_http_request *req, rf_http_response *resp);

typedef struct rf_http_server rf_http_server;
typedef struct rf_http_conn rf_http_conn;

/* limits may be NULL or have zero fields: the defaults above. */
rf_http_server *rf_http_server_new(const rf_http_limits *limits, rf_err *err);
void rf_http_server_free(rf_http_server *s); /* after every connection was freed */
const rf_http_limits *rf_http_server_limits(const rf_http_server *s);

/* Adds a route: exact path (or a prefix: a path ending in '*'), methods a
 * mask of enum rf_http_method. `name`
 * (static) names the endpoint in counters. Returns the endpoint index
 * (0..RF_HTTP_MAX_ROUTES-1) or -ENOSPC / -EINVAL. */
int rf_http_server_route(rf_http_server *s, const char *path, unsigned methods, const char *name,
                         rf_http_handler_fn fn, void *user, rf_err *err);
unsigned rf_http_server_routes(const rf_http_server *s);
const char *rf_http_server_route_name(const rf_http_server *s,
                                      unsigned ep); /* "none" for EP_NONE */

/* Counters: written by the owning thread only, read by any (relaxed). */
enum rf_http_counter_id {
    RF_HTTP_C_REQUESTS = 0,  /* answered with a final status */
    RF_HTTP_C_BYTES_IN,      /* bytes fed */
    RF_HTTP_C_BYTES_OUT,     /* bytes handed to the caller to write */
    RF_HTTP_C_BODY_BYTES,    /* request bodies as received */
    RF_HTTP_C_DECODED_BYTES, /* request bodies after gzip */
    RF_HTTP_C_POINTS,        /* points delivered by handlers */
    RF_HTTP_C_CONTINUES,     /* 100 Continue sent */
    RF_HTTP_C_CONNECTIONS,   /* connections created */
    RF_HTTP_C__COUNT
};
const char *rf_http_counter_name(enum rf_http_counter_id id);
uint64_t rf_http_counter(const rf_http_server *s, enum rf_http_counter_id id);
uint64_t rf_http_reject_count(const rf_http_server *s, enum rf_http_reject r);
/* Counts a refusal decided outside the layer (the TLS front); owning thread. */
void rf_http_server_count_reject(rf_http_server *s, enum rf_http_reject r);
uint64_t rf_http_status_count(const rf_http_server *s, unsigned ep, enum rf_http_status_slot st);
/* Body bytes held by connections now (relaxed read). */
uint64_t rf_http_server_body_in_use(const rf_http_server *s);

/* A connection; peer_text ("ip:port") is copied. NULL with err on ENOMEM. */
rf_http_conn *rf_http_conn_new(rf_http_server *s, const char *peer_text, rf_err *err);
/* The socket the connection's bytes come from (for rf_http_response.detached). */
void rf_http_conn_set_fd(rf_http_conn *c, int fd);
int rf_http_conn_fd(const rf_http_conn *c); /* -1 when unknown */
void rf_http_conn_free(rf_http_conn *c);    /* returns its bodies to the budget */
/* Per connection, besides bodies (which the server's budget bounds). */
uint64_t rf_http_conn_memory_bound(const rf_http_limits *limits);

/* Feeds received bytes (may be any split of the stream). Complete requests
 * are handled at once and answered into the output. Returns
 * RF_HTTP_KEEP (go on reading) or RF_HTTP_CLOSE: write the output, then
 * close; later bytes are ignored. The caller should write the output before
 * feeding more (max_output bounds what a client that does not read can pile
 * up). wall_ns/mono_ns: receipt time of these bytes. */
enum {
    RF_HTTP_KEEP = 0,
    RF_HTTP_CLOSE = 1
};
int rf_http_conn_feed(rf_http_conn *c, const char *data, size_t len, int64_t wall_ns,
                      int64_t mono_ns);
/* The peer ended its side: a request in progress is abandoned (no answer). */
void rf_http_conn_eof(rf_http_conn *c);

/* Output waiting to be written; consume what was written. */
void rf_http_conn_output(const rf_http_conn *c, const char **data, size_t *len);
void rf_http_conn_consume(rf_http_conn *c, size_t n);
bool rf_http_conn_closing(const rf_http_conn *c);

/* Whether a request is partly received (headers or body pending). */
bool rf_http_conn_in_request(const rf_http_conn *c);
/* The owner's timer says the connection is too slow or idle: a request in
 * progress gets 408 (counted) and the connection closes; an idle one just
 * closes. Returns RF_HTTP_CLOSE. */
int rf_http_conn_timeout(rf_http_conn *c);
/* Whether a handler took the connection's answer over (detached). */
bool rf_http_conn_detached(const rf_http_conn *c);
/* The connection's TLS state, handed to handlers in rf_http_request.tls. */
void rf_http_conn_set_tls(rf_http_conn *c, struct rf_tls_conn *tls);

/* Parked answers (rf_http_response.park). When a handler parks, the layer
 * numbers the wait (a park id, unique per server) and calls the server's
 * park hook with it, still inside rf_http_conn_feed; the hook returns 0 when
 * something will call rf_http_conn_resume(c, id, ...) later on the owning
 * thread (never from inside the hook), or a negative errno: the answer then
 * goes out at once as 503 + Retry-After (sync_unavailable). While parked,
 * the connection's later bytes are held (at most max_header + max_body;
 * past that the connection is closed, counted output_overflow) and parsed
 * after the answer, so pipelined answers stay in order. */
typedef int (*rf_http_park_fn)(void *user, rf_http_conn *c, uint64_t park_id);
void rf_http_server_set_park(rf_http_server *s, rf_http_park_fn fn, void *user);
/* The id of the connection's parked answer; 0 when none. */
uint64_t rf_http_conn_parked(const rf_http_conn *c);
/* Ends the wait `park_id` (nothing when the connection is not parked on
 * it): outcome 0 writes the parked answer as the handler made it; -ETIMEDOUT
 * (503, sync_timeout), -ENOBUFS (503, sync_dropped), -EBUSY (503,
 * sync_unavailable) or any other error (500, sync_failed) replace it with an
 * error naming why, with Retry-After on the 503s. Then parses the held
 * bytes. Returns RF_HTTP_KEEP or RF_HTTP_CLOSE like rf_http_conn_feed; write
 * the output after it. */
int rf_http_conn_resume(rf_http_conn *c, uint64_t park_id, int outcome);

/* Authentication (core/auth). When get returns an rf_auth, every request
 * whose path is not open_path (NULL: none) must carry an Authorization
 * rf_auth_check accepts; otherwise it is answered 401 with WWW-Authenticate
 * as soon as its headers are in (the body is not read), counted auth_missing
 * or auth_bad, and the connection closed. get is called once per request
 * (the credentials in force can change with a reload). */
struct rf_auth;
typedef struct rf_auth *(*rf_http_auth_fn)(void *user);
void rf_http_server_set_auth(rf_http_server *s, rf_http_auth_fn get, void *user,
                             const char *open_path);

/* ---- ingest endpoints (influx.c, prom.c) ----------------------------------------
 *
 * The write endpoints feed an rf_parse_ctx of the owning thread (the
 * listener's), so their points take the same path, checks, counters and
 * reject log as the line listeners'. An rf_http_ingest is the endpoints'
 * state; the caller owns it and keeps it as long as the server.
 *
 * InfluxDB (rf_http_ingest_add_influx):
 *   POST /write?db=&rp=&precision=            v1; precision n/ns, u/us, ms, s, m, h
 *   POST /api/v2/write?org=&bucket=&precision= v2; precision ns, us, ms, s
 *   GET|HEAD /ping                            204, X-Influxdb-Version
 *   - db (v1) or bucket (v2) becomes the tag `db_tag` ("db") of every line
 *     that has no tag of that key (VictoriaMetrics does the same with db);
 *     rp and org are accepted and ignored: the engine has one store, and
 *     retention is storage.retention's.
 *   - db (v1) and bucket (v2) are required, as InfluxDB requires them: 400.
 *   - Authorization (Token, Basic) is checked only on a listener with
 *     `auth:` (rf_http_server_set_auth; else accepted, unchecked); u/p in
 *     the query string are never read.
 *   - 204 when every line was taken. When some lines are refused the others
 *     are kept and the answer is 400 with the first refused line, its reason
 *     and how many lines were refused: {"error":"partial write: unable to
 *     parse '<line>': <reason>; dropped=N"} (v1) or {"code":"invalid",
 *     "message":"..."} (v2), as InfluxDB answers. The lines are counted and
 *     logged by reason in the parse context, like the line listeners'.
 *   - 503 with Retry-After when `busy` says the engine refuses work (a full
 *     ring under drop_newest, the memory limit): nothing of the body is taken,
 *     the client retries. 415 for a Content-Encoding other than gzip. */
/* Sync writes: `sync=true` (or `sync=1`) in the query of /write,
 * /api/v2/write, /api/v1/write or /v1/metrics asks for an answer only once
 * the request's points are in blocks fdatasync'ed to the store. The
 * handler parses the body as always, then parks its answer; the front asks
 * the engine (rf_http_ingest.sync) for a barrier behind the points, with a
 * cookie naming the connection; the engine calls done(done_ctx, cookie,
 * outcome) on the same thread once the points are durable (outcome 0) or
 * cannot be confirmed (rf_http_conn_resume's outcomes). sync returns 0 (done
 * will be called, never from inside sync), -EBUSY (too many waiting: 503),
 * or -ENOTSUP (no store: 400, refused before the body is read). Without
 * rf_http_ingest.sync, sync=true is refused with 400. sync=false or 0 is
 * the default. Requests refused whole (4xx, 503) are answered at once. */
typedef void (*rf_http_sync_done_fn)(void *done_ctx, uint64_t cookie, int outcome);
typedef int (*rf_http_sync_fn)(void *user, rf_http_sync_done_fn done, void *done_ctx,
                               uint64_t cookie);

typedef struct rf_http_ingest {
    rf_parse_ctx *parse;            /* required: the owning thread's context */
    enum rf_ts_precision precision; /* restored after each request */
    const char *db_tag;             /* "db" when NULL */
    const char *version;            /* X-Influxdb-Version; "1.8.10" when NULL */
    /* Optional: true when the engine cannot take points now (503). */
    bool (*busy)(void *user);
    void *busy_user;
    /* Optional: offers sync=true (see "Sync writes"); called with busy_user
     * once the request's points were handed to the engine. */
    rf_http_sync_fn sync;
    /* private */
    bool sync_wanted; /* the request in progress asked for sync=true */
    rf_reject_entry first;
    struct rf_decode_state *dec;
} rf_http_ingest;

/* Adds the InfluxDB routes. Returns 0 or a negative errno (routes full). */
int rf_http_ingest_add_influx(rf_http_server *s, rf_http_ingest *in, rf_err *err);

/* Prometheus remote_write 1.0 (rf_http_ingest_add_prom):
 *   POST /api/v1/write   a snappy block (Content-Encoding: snappy, assumed
 *                        when absent) of a protobuf WriteRequest
 *   - Each sample becomes one point: measurement = __name__, field "value",
 *     tags = the other labels (empty values dropped: Prometheus treats an
 *     empty label as an absent one), time = the sample's milliseconds. So
 *     http_requests_total{job="api"} reads back as
 *     `ringflow query http_requests_total --where job=api --field value`.
 *   - Staleness markers (the NaN 0x7ff0000000000002) are counted
 *     (RF_PROM_C_STALE) and not stored: the store has no deletion mark, and a
 *     series that stops is what a reader sees anyway. Other NaN and
 *     infinities are refused (out_of_range), like any non-finite value.
 *   - Exemplars and metadata are counted and ignored; fields unknown to
 *     remote_write 1.0 (native histograms) are skipped.
 *   - Bounds: the snappy header's length is checked against max_decoded
 *     before anything is allocated (a lying length is 413 or 400), the block
 *     is decoded into a budget-charged buffer, and the protobuf is read in
 *     place (no allocation per message): a request whose unpacked message
 *     would take more than arena_max bytes is refused whole (huge repeated
 *     fields: 413, counted decode_limit), as is a malformed one (400) before
 *     any of its points is taken. A series with more labels than max_tags
 *     is refused sample by sample (too_many_tags).
 *   - Labels are checked as a line's tags are (NUL, UTF-8, duplicates, key
 *     length; a '\n' is syntax), each refused sample counted by reason.
 *   - Answers: 204; 400 (bad snappy or protobuf, or refused samples: the
 *     others are kept, and the answer names the first and counts them). */
enum rf_prom_counter_id {
    RF_PROM_C_REQUESTS = 0, /* WriteRequests decoded */
    RF_PROM_C_SERIES,
    RF_PROM_C_SAMPLES,   /* samples seen (stored, stale or refused) */
    RF_PROM_C_STALE,     /* staleness markers skipped */
    RF_PROM_C_EXEMPLARS, /* ignored */
    RF_PROM_C_METADATA,  /* ignored */
    RF_PROM_C__COUNT
};
const char *rf_prom_counter_name(enum rf_prom_counter_id id);
/* OTLP/HTTP metrics (rf_http_ingest_add_otlp), see below. */
enum rf_otlp_counter_id {
    RF_OTLP_C_REQUESTS = 0, /* ExportMetricsServiceRequests decoded */
    RF_OTLP_C_METRICS,
    RF_OTLP_C_DATA_POINTS,        /* data points seen, of every type */
    RF_OTLP_C_NO_VALUE,           /* points flagged FLAG_NO_RECORDED_VALUE: skipped */
    RF_OTLP_C_REJECTED,           /* data points refused (reported in partial_success) */
    RF_OTLP_C_DROPPED_ATTRIBUTES, /* resource and scope attributes left out by the allow-list */
    RF_OTLP_C__COUNT
};
const char *rf_otlp_counter_name(enum rf_otlp_counter_id id);
uint64_t rf_http_ingest_otlp_counter(const rf_http_ingest *in, enum rf_otlp_counter_id id);
uint64_t rf_http_ingest_prom_counter(const rf_http_ingest *in, enum rf_prom_counter_id id);

/* Adds the remote_write route. arena_max: bound of a request's unpacked
 * size, counted as protobuf-c would lay the message out (0: 64 MiB;
 * Prometheus sends 2,000 samples a request by default, about 200 KiB). Returns 0 or a negative errno. */
int rf_http_ingest_add_prom(rf_http_server *s, rf_http_ingest *in, uint64_t arena_max, rf_err *err);
/* OTLP/HTTP metrics (rf_http_ingest_add_otlp):
 *   POST /v1/metrics   application/x-protobuf ExportMetricsServiceRequest,
 *                      or application/json in the protobuf JSON mapping (at
 *                      most 8 MiB after gzip: jansson builds a tree first);
 *                      the answer in the request's encoding
 *   - measurement = the metric's name; tags = the data point's attributes,
 *     the resource's attributes on the allow-list (default service.name,
 *     service.namespace, service.instance.id, host.name) and the scope's on
 *     theirs (default none); rf_http_ingest_set_otlp sets both lists (a
 *     listener's `otlp: {resource_attributes: [...], scope_attributes:
 *     [...]}`, "*" for all). What a list leaves out is counted
 *     (dropped_attributes), once per resource or scope. Attribute values:
 *     strings as they are, booleans, integers and doubles as text; bytes,
 *     arrays, maps and empty values are not tags.
 *   - gauge: field "value" (as_int an integer, as_double a float), kind
 *     RF_KIND_GAUGE.
 *   - sum: field "value", the value as sent. Cumulative monotonic (a
 *     Counter): the running total, kind RF_KIND_CUMULATIVE, read with
 *     rate()/increase() like a Prometheus counter. Cumulative
 *     non-monotonic (an UpDownCounter): the current level, RF_KIND_GAUGE.
 *     Delta: each point is the increment over its own interval
 *     [start_time, time], kind RF_KIND_COUNTER (summed by aggregation); a
 *     total over a window is sum_over_time(), a rate sum_over_time() over
 *     the window's seconds (rate() would be wrong). Not accumulated here:
 *     that would be per-series state kept across requests and workers.
 *     Unspecified temporality is taken as cumulative.
 *   - histogram: fields count, sum (when sent) and the cumulative bucket
 *     counts le_<bound> with le_+Inf last, bounds in their shortest form
 *     (le_0.1), as Prometheus names them: rf_promql_metric_name reads them
 *     as name_count, name_sum and name_bucket{le="0.1"}. The kind follows
 *     the temporality as for a monotonic sum (delta: per-interval counts).
 *     At most RF_OTLP_BUCKETS_MAX (160) finite bounds, else refused.
 *   - exponential histogram: the same fields, its buckets turned into
 *     explicit ones: each negative bucket (most negative first) up to
 *     -base^index, the zero bucket up to zero_threshold (le_0 when 0), each
 *     positive bucket up to base^(index + 1), base = 2^(2^-scale); past 160
 *     buckets the scale is lowered (neighbours merged, exactly) until they
 *     fit. Scale and offsets are not kept.
 *   - summary: fields count and sum on the metric's series, and each
 *     quantile as field "value" of the series with the extra tag
 *     quantile=<q> (name{quantile="0.99"} in PromQL). A quantile outside
 *     [0, 1] or a non-finite value refuses the point.
 *   - points flagged FLAG_NO_RECORDED_VALUE are counted (no_value_points),
 *     not stored and not refused.
 *   - time = time_unix_nano; 0 means the time of receipt.
 *   - Answers: 200 with an ExportMetricsServiceResponse, whose
 *     partial_success carries rejected_data_points and a message naming the
 *     first refused point when any was refused (the others are kept), as the
 *     OTLP specification defines (JSON: {"partialSuccess": {...}}, {} when
 *     all were taken); 400 for a body that is not the message, 413 past the
 *     decoder's arena, 503 with Retry-After when busy (rf_http_ingest.busy). */
int rf_http_ingest_add_otlp(rf_http_server *s, rf_http_ingest *in, rf_err *err);
/* The attribute allow-lists (see above), copied; NULL: the defaults. After
 * rf_http_ingest_add_otlp. 0 or -EINVAL. */
struct rf_listen_otlp_config;
int rf_http_ingest_set_otlp(rf_http_ingest *in, const struct rf_listen_otlp_config *cfg,
                            rf_err *err);

/* For the write handlers: reads `sync` from the query before anything is
 * taken. Returns 0 (go on; in->sync_wanted says whether to park at the
 * end) or -1 with resp filled (400, bad_parameter: a value other than
 * true/false/1/0, or sync asked where it is not offered). */
int rf_http_ingest_sync_query(rf_http_ingest *in, const rf_http_request *req,
                              rf_http_response *resp);
/* At the end of a write handler: parks the answer when sync was asked and
 * the request's points were taken (a 2xx, or a 400 for a partial write). */
void rf_http_ingest_sync_park(rf_http_ingest *in, rf_http_response *resp);

/* Frees what the endpoints allocated (decoder buffers); before the server. */
void rf_http_ingest_release(rf_http_ingest *in);

/* ---- the listener side (front.c) ------------------------------------------------
 *
 * What an `http` listener (ingest/listen, protocol http) hands its
 * connections to: one front per listener per worker, with its server, its
 * endpoints (InfluxDB and remote_write on the given parse context) and a
 * connection table indexed by the listener's slot. rf_http_front_stream fits
 * rf_listen_handler.on_stream (after the caller's own bookkeeping), and
 * rf_http_front_conn_end on_conn_end.
 *
 * Answers are written with send(MSG_DONTWAIT) on the connection's socket
 * right after the read that completed them: one syscall per read that
 * finished requests, not per point. What the socket does not take at once
 * (a client that does not read) stays in the connection's output, bounded
 * by max_output, and is retried after the connection's next read. */
typedef struct rf_http_front rf_http_front;
/* busy/busy_user: rf_http_ingest.busy (NULL: never busy). */
/* listener: the listener's name, whose TLS and auth (rf_http_security_apply)
 * the front serves with; NULL for none. */
rf_http_front *rf_http_front_new(const rf_http_limits *limits, rf_parse_ctx *parse,
                                 enum rf_ts_precision precision, uint32_t max_conns,
                                 bool (*busy)(void *user), void *busy_user, const char *listener,
                                 rf_err *err);
void rf_http_front_free(rf_http_front *f);
/* Returns 0 (keep) or 1 (close the connection once the answer is out). */
struct rf_listen_chunk;
int rf_http_front_stream(rf_http_front *f, const struct rf_listen_chunk *c);
void rf_http_front_conn_end(rf_http_front *f, uint32_t conn);
const rf_http_server *rf_http_front_server(const rf_http_front *f);
/* Routes every front created from now on adds after the ingest endpoints
 * (the Prometheus query API, storage/promapi); NULL for none. Set before
 * the workers start, from the thread that starts them. */
typedef int (*rf_http_routes_fn)(rf_http_server *s, rf_err *err);
void rf_http_front_set_extra_routes(rf_http_routes_fn fn);
const rf_http_ingest *rf_http_front_ingest(const rf_http_front *f);
/* Offers sync=true on the front's write endpoints (rf_http_ingest.sync,
 * called with the front's busy_user). A parked answer is written by the
 * engine's done call: plain answers with send(MSG_DONTWAIT) as after a read,
 * TLS ones encrypted first; an answer that closes the connection shuts its
 * socket down, and the listener's next read ends it. */
void rf_http_front_set_sync(rf_http_front *f, rf_http_sync_fn fn);
/* The OTLP attribute allow-lists (rf_http_ingest_set_otlp). */
int rf_http_front_set_otlp(rf_http_front *f, const struct rf_listen_otlp_config *cfg, rf_err *err);

/* ---- TLS and authentication of http listeners (security.c) ----------------------
 *
 * Per listener name, the TLS context (core/tls) and credentials (core/auth)
 * its fronts use, shared by the workers. rf_http_security_apply (control
 * thread: engine start, and every reload, SIGHUP) reads every http
 * listener's certificate, key, client CA and credential files; when one of
 * them does not load it returns the error and nothing changes (the reload is
 * refused, the old certificates and credentials stay in force). Otherwise the
 * new ones take effect at once: for TLS at each new connection (a connection
 * keeps the context it started with), for credentials at each request. A
 * listener whose `tls:` or `auth:` went away serves without them from its
 * next connection or request. A front created for a listener name (the name
 * given to rf_http_front_new) finds its entry here; entries live until the
 * process ends (a few hundred bytes each, one per listener name ever seen).
 *
 * On a TLS listener the front feeds each read into the connection's
 * rf_tls_conn, hands the plaintext to the HTTP layer, encrypts its answers
 * and sends them with send(MSG_DONTWAIT) like plain answers; what the socket
 * does not take waits in the TLS output (at most max_output more is
 * encrypted while some is waiting). A handshake is bounded by the same
 * idle_timeout and request_timeout as a request. Failures are counted in the
 * server's rejects (tls_handshake_failed, client_cert_missing,
 * client_cert_invalid) and the alert OpenSSL wrote is sent before the close.
 * /ping stays open without credentials (load balancers' health checks). */
struct rf_listener_config;
int rf_http_security_apply(const struct rf_listener_config *ls, size_t n, rf_err *err);
/* The front's memory at most: connections and the server's body budget. */
uint64_t rf_http_front_memory_bound(const rf_http_limits *limits, uint32_t max_conns);
/* What TLS adds to it on a listener with `tls:`. */
uint64_t rf_http_front_tls_memory_bound(const rf_http_limits *limits, uint32_t max_conns);

#endif
