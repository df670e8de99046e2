/* An http listener's connections on the HTTP layer (contract in http.h). */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "ingest/http/http.h"
#include "ingest/listen/listen.h"

struct rf_http_front {
    rf_http_server *srv;
    rf_http_ingest in;
    rf_http_conn **conns; /* by listener slot; created at a connection's first read */
    uint32_t max_conns;
};

/* Written once at start-up, before any worker creates a front; workers
 * start after (thread creation orders it). */
static rf_http_routes_fn extra_routes;

void rf_http_front_set_extra_routes(rf_http_routes_fn fn)
{
    extra_routes = fn;
}

rf_http_front *rf_http_front_new(const rf_http_limits *limits, rf_parse_ctx *parse,
                                 enum rf_ts_precision precision, uint32_t max_conns,
                                 bool (*busy)(void *user), void *busy_user, rf_err *err)
{
    rf_http_front *f = calloc(1, sizeof(*f));
    if (!f || !(f->conns = calloc(max_conns ? max_conns : 1, sizeof(*f->conns)))) {
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
    for (uint32_t i = 0; i < f->max_conns; i++)
        rf_http_conn_free(f->conns[i]);
    rf_http_ingest_release(&f->in);
    rf_http_server_free(f->srv);
    free(f->conns);
    free(f);
}

/* Writes what the socket takes now; false when the connection is broken. */
static bool flush_output(rf_http_conn *hc, int fd)
{
    for (;;) {
        const char *o;
        size_t ol;
        rf_http_conn_output(hc, &o, &ol);
        if (ol == 0)
            return true;
        ssize_t n = send(fd, o, ol, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            rf_http_conn_consume(hc, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

int rf_http_front_stream(rf_http_front *f, const rf_listen_chunk *c)
{
    if (c->conn >= f->max_conns)
        return 1;
    rf_http_conn *hc = f->conns[c->conn];
    if (!hc && !(hc = f->conns[c->conn] = rf_http_conn_new(f->srv, c->peer_text, NULL)))
        return 1; /* out of memory: the client gets a closed connection, not a hang */
    rf_http_conn_set_fd(hc, c->fd);
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
           (uint64_t)max_conns * (sizeof(void *) + rf_http_conn_memory_bound(limits)) + budget +
           prom;
}
