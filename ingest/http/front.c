/* An http listener's connections on the HTTP layer, in clear or through TLS
 * (contract in http.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "core/tls/tls.h"
#include "ingest/http/http_pvt.h"
#include "ingest/listen/listen.h"

/* Plaintext taken out of TLS per SSL_read: one record's worth. */
#define TLS_PLAIN_CHUNK (16u << 10)

struct rf_http_front {
    rf_http_server *srv;
    rf_http_ingest in;
    rf_http_conn **conns; /* by listener slot; created at a connection's first read */
    rf_tls_conn **tls;    /* by listener slot; NULL: in clear (or handed to a detached answer) */
    int64_t *hs_start;    /* by listener slot: mono time of a TLS connection's first bytes */
    uint32_t max_conns;
    rf_http_security *sec; /* the listener's TLS and credentials; NULL: none */
    uint32_t feeding;      /* the slot whose bytes the layer is parsing (park hook) */
};

static bool flush_output(rf_http_conn *hc, int fd);
static int tls_send(rf_http_front *f, rf_tls_conn *t, rf_http_conn *hc, int fd, int rc);

/* Written once at start-up, before any worker creates a front; workers
 * start after (thread creation orders it). */
static rf_http_routes_fn extra_routes;

void rf_http_front_set_extra_routes(rf_http_routes_fn fn)
{
    extra_routes = fn;
}

/* The layer parked an answer of the connection being fed (sync=true): ask
 * the engine for its barrier. The cookie names the slot and the park id's
 * low half, so a done call for a connection that ended (its slot reused)
 * finds no match and does nothing. */
static void sync_done(void *done_ctx, uint64_t cookie, int outcome);

static int front_park(void *user, rf_http_conn *c, uint64_t park_id)
{
    rf_http_front *f = user;
    (void)c;
    if (!f->in.sync)
        return -EBUSY;
    return f->in.sync(f->in.busy_user, sync_done, f,
                      ((uint64_t)f->feeding << 32) | (park_id & 0xffffffffu));
}

static void sync_done(void *done_ctx, uint64_t cookie, int outcome)
{
    rf_http_front *f = done_ctx;
    uint32_t slot = (uint32_t)(cookie >> 32);
    rf_http_conn *hc = slot < f->max_conns ? f->conns[slot] : NULL;
    if (!hc)
        return;
    uint64_t id = rf_http_conn_parked(hc);
    if (!id || (id & 0xffffffffu) != (cookie & 0xffffffffu))
        return;
    f->feeding = slot;
    int fd = rf_http_conn_fd(hc);
    int rc = rf_http_conn_resume(hc, id, outcome);
    rf_tls_conn *t = f->tls[slot];
    if (t)
        rc = tls_send(f, t, hc, fd, rc);
    else if (!flush_output(hc, fd))
        rc = RF_HTTP_CLOSE;
    /* Not inside a read: the listener ends the connection at its next one. */
    if (rc == RF_HTTP_CLOSE)
        shutdown(fd, SHUT_RDWR);
}

void rf_http_front_set_sync(rf_http_front *f, rf_http_sync_fn fn)
{
    f->in.sync = fn;
}

rf_http_front *rf_http_front_new(const rf_http_limits *limits, rf_parse_ctx *parse,
                                 enum rf_ts_precision precision, uint32_t max_conns,
                                 bool (*busy)(void *user), void *busy_user, const char *listener,
                                 rf_err *err)
{
    rf_http_front *f = calloc(1, sizeof(*f));
    if (!f || !(f->conns = calloc(max_conns ? max_conns : 1, sizeof(*f->conns))) ||
        !(f->tls = calloc(max_conns ? max_conns : 1, sizeof(*f->tls))) ||
        !(f->hs_start = calloc(max_conns ? max_conns : 1, sizeof(*f->hs_start)))) {
        if (f) {
            free(f->conns);
            free(f->tls);
            free(f->hs_start);
        }
        free(f);
        rf_err_set(err, ENOMEM, "http: out of memory for %u connections", max_conns);
        return NULL;
    }
    f->max_conns = max_conns;
    f->in = (rf_http_ingest){
        .parse = parse, .precision = precision, .busy = busy, .busy_user = busy_user};
    if (!(f->srv = rf_http_server_new(limits, err)) ||
        rf_http_ingest_add_influx(f->srv, &f->in, err) < 0 ||
        rf_http_ingest_add_prom(f->srv, &f->in, 0, err) < 0 ||
        rf_http_ingest_add_otlp(f->srv, &f->in, err) < 0 ||
        (extra_routes && extra_routes(f->srv, err) < 0)) {
        rf_http_front_free(f);
        return NULL;
    }
    rf_http_server_set_park(f->srv, front_park, f);
    if (listener) {
        f->sec = rf_http_security_get(listener);
        rf_http_server_set_auth(f->srv, rf_http_security_auth, f->sec, "/ping");
    }
    return f;
}

int rf_http_front_set_otlp(rf_http_front *f, const struct rf_listen_otlp_config *cfg, rf_err *err)
{
    return rf_http_ingest_set_otlp(&f->in, cfg, err);
}

void rf_http_front_free(rf_http_front *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->max_conns; i++) {
        rf_http_conn_free(f->conns[i]);
        rf_tls_conn_free(f->tls[i]);
    }
    free(f->tls);
    free(f->hs_start);
    rf_http_ingest_release(&f->in);
    rf_http_server_free(f->srv);
    free(f->conns);
    free(f);
}

/* Writes what the socket takes now of an output (an HTTP connection's
 * answers, or a TLS connection's records); false when the connection is
 * broken. */
typedef void (*output_fn)(void *obj, const char **data, size_t *len);
typedef void (*consume_fn)(void *obj, size_t n);

static bool send_output(void *obj, output_fn output, consume_fn consume, int fd)
{
    for (;;) {
        const char *o;
        size_t ol;
        output(obj, &o, &ol);
        if (ol == 0)
            return true;
        ssize_t n = send(fd, o, ol, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            consume(obj, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

static void http_output(void *obj, const char **data, size_t *len)
{
    rf_http_conn_output(obj, data, len);
}

static void http_consume(void *obj, size_t n)
{
    rf_http_conn_consume(obj, n);
}

static void tls_output(void *obj, const char **data, size_t *len)
{
    rf_tls_conn_out(obj, data, len);
}

static void tls_consume(void *obj, size_t n)
{
    rf_tls_conn_consume(obj, n);
}

static bool flush_output(rf_http_conn *hc, int fd)
{
    return send_output(hc, http_output, http_consume, fd);
}

static bool flush_tls(rf_tls_conn *t, int fd)
{
    return send_output(t, tls_output, tls_consume, fd);
}

static enum rf_http_reject tls_reject(enum rf_tls_fail why)
{
    switch (why) {
    case RF_TLS_FAIL_CLIENT_CERT_MISSING: return RF_HTTP_REJ_CLIENT_CERT_MISSING;
    case RF_TLS_FAIL_CLIENT_CERT_INVALID: return RF_HTTP_REJ_CLIENT_CERT_INVALID;
    case RF_TLS_FAIL_HANDSHAKE: return RF_HTTP_REJ_TLS_HANDSHAKE_FAILED;
    default: return RF_HTTP_REJ_BAD_REQUEST; /* a broken record after the handshake */
    }
}

/* One read of a TLS connection: ciphertext in, the plaintext through the
 * HTTP layer, its answers encrypted and sent. Returns RF_HTTP_KEEP or
 * RF_HTTP_CLOSE. */
static int tls_stream(rf_http_front *f, rf_tls_conn *t, rf_http_conn *hc, const rf_listen_chunk *c)
{
    int rc = RF_HTTP_KEEP;
    if (rf_tls_conn_feed(t, c->data, c->len) < 0)
        return RF_HTTP_CLOSE;
    char plain[TLS_PLAIN_CHUNK];
    for (;;) {
        enum rf_tls_fail why;
        ssize_t n = rf_tls_conn_read(t, plain, sizeof(plain), &why);
        if (n == 0) {
            /* A handshake trickled byte by byte is bounded like a request. */
            if (!rf_tls_conn_established(t) &&
                c->mono_ns - f->hs_start[c->conn] >
                    (int64_t)rf_http_server_limits(f->srv)->request_timeout_ns) {
                rf_http_server_count_reject(f->srv, RF_HTTP_REJ_TLS_HANDSHAKE_FAILED);
                rc = RF_HTTP_CLOSE;
            }
            break;
        }
        if (n < 0) {
            if (n == -EPROTO)
                rf_http_server_count_reject(f->srv, tls_reject(why));
            rc = RF_HTTP_CLOSE;
            break;
        }
        rc = rf_http_conn_feed(hc, plain, (size_t)n, c->wall_ns, c->mono_ns);
        if (rc == RF_HTTP_CLOSE || rf_http_conn_detached(hc))
            break;
    }
    return tls_send(f, t, hc, c->fd, rc);
}

/* The HTTP layer's answers into TLS records, sent; rc the layer's verdict.
 * Returns RF_HTTP_KEEP or RF_HTTP_CLOSE. */
static int tls_send(rf_http_front *f, rf_tls_conn *t, rf_http_conn *hc, int fd, int rc)
{
    uint32_t max_output = rf_http_server_limits(f->srv)->max_output;
    /* While max_output is still unsent, the rest waits in the HTTP layer's
     * output, which bounds it. */
    for (;;) {
        const char *o, *pending;
        size_t ol, pl;
        rf_http_conn_output(hc, &o, &ol);
        rf_tls_conn_out(t, &pending, &pl);
        if (ol == 0 || pl >= max_output)
            break;
        if (ol > max_output - pl)
            ol = max_output - pl;
        if (rf_tls_conn_write(t, o, ol) < 0)
            return RF_HTTP_CLOSE;
        rf_http_conn_consume(hc, ol);
    }
    if (rc == RF_HTTP_CLOSE)
        rf_tls_conn_close_notify(t);
    if (!flush_tls(t, fd))
        return RF_HTTP_CLOSE;
    return rc;
}

int rf_http_front_stream(rf_http_front *f, const rf_listen_chunk *c)
{
    if (c->conn >= f->max_conns)
        return 1;
    rf_http_conn *hc = f->conns[c->conn];
    if (!hc) {
        if (!(hc = f->conns[c->conn] = rf_http_conn_new(f->srv, c->peer_text, NULL)))
            return 1; /* out of memory: the client gets a closed connection, not a hang */
        /* The context in force now serves the connection to its end. */
        rf_tls_server *ts = rf_http_security_tls(f->sec);
        if (ts && !(f->tls[c->conn] = rf_tls_conn_new(ts, NULL)))
            return 1;
        rf_http_conn_set_tls(hc, f->tls[c->conn]);
        f->hs_start[c->conn] = c->mono_ns;
    }
    rf_http_conn_set_fd(hc, c->fd);
    f->feeding = c->conn;
    if (rf_http_conn_detached(hc))
        return 0; /* the thread that took the answer ends the connection */
    rf_tls_conn *t = f->tls[c->conn];
    if (t) {
        int rc = tls_stream(f, t, hc, c);
        if (rf_http_conn_detached(hc)) {
            /* The answering thread owns the TLS state from here on. */
            f->tls[c->conn] = NULL;
            rf_http_conn_set_tls(hc, NULL);
            rf_tls_conn_release(t);
            return 0;
        }
        return rc == RF_HTTP_CLOSE ? 1 : 0;
    }
    int rc = rf_http_conn_feed(hc, c->data, c->len, c->wall_ns, c->mono_ns);
    if (!flush_output(hc, c->fd))
        return 1;
    return rc == RF_HTTP_CLOSE ? 1 : 0;
}

void rf_http_front_conn_end(rf_http_front *f, uint32_t conn)
{
    if (conn < f->max_conns && f->conns[conn]) {
        rf_http_conn_eof(f->conns[conn]);
        rf_http_conn_free(f->conns[conn]);
        f->conns[conn] = NULL;
        rf_tls_conn_free(f->tls[conn]);
        f->tls[conn] = NULL;
    }
}

const rf_http_server *rf_http_front_server(const rf_http_front *f)
{
    return f->srv;
}

const rf_http_ingest *rf_http_front_ingest(const rf_http_front *f)
{
    return &f->in;
}

uint64_t rf_http_front_memory_bound(const rf_http_limits *limits, uint32_t max_conns)
{
    uint64_t budget = limits && limits->body_budget ? limits->body_budget : 128u << 20;
    /* remote_write: its line text and prefix scratch, and its arena. */
    uint64_t prom = (96u << 10) + (64u << 20);
    return sizeof(rf_http_front) +
           (uint64_t)max_conns *
               (2 * sizeof(void *) + sizeof(int64_t) + rf_http_conn_memory_bound(limits)) +
           budget + prom;
}

uint64_t rf_http_front_tls_memory_bound(const rf_http_limits *limits, uint32_t max_conns)
{
    /* OpenSSL's state and at most max_output of records waiting to be sent. */
    uint64_t out = limits && limits->max_output ? limits->max_output : 64u << 10;
    return (uint64_t)max_conns * (RF_TLS_CONN_MEMORY + out);
}
