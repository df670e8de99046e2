/* The ops server: two Unix stream sockets speaking the line protocol and one
 * TCP listener speaking just enough HTTP/1.1 for Prometheus, all
 * non-blocking on one epoll set owned by the control thread.
 *
 * Every client has an input buffer (one line, or one HTTP request head) and a
 * bounded output buffer. The server never waits for a client: it writes what
 * the socket takes and asks epoll to say when more fits. See ops.h for what
 * happens to a client that stops reading. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/mem/bound.h"
#include "core/worker/worker.h"
#include "daemon/ops/ops_pvt.h"

#define COMPONENT "ops"
#define LISTEN_BACKLOG 64
#define READ_CHUNK 4096
/* epoll tags: listeners are tagged apart from client slots. */
#define TAG_LISTENER (1ull << 63)
/* An HTTP client this young is never evicted for a newcomer: its request
 * may be on its way, and a flood of newcomers must not push it out. */
#define HTTP_EVICT_MIN_AGE_NS (100 * RF_NS_PER_MS)

enum lkind {
    L_OPS = 0,
    L_ADMIN = 1,
    L_HTTP = 2,
    L_COUNT = 3
};

typedef struct listener {
    int fd;
    char path[RF_OPS_SUN_PATH_MAX]; /* Unix sockets: removed at stop if still ours */
    ino_t ino;
    dev_t dev;
} listener;

typedef struct client {
    int fd;
    enum lkind kind;
    uint32_t gen;
    bool admin;
    bool closing;        /* close once the output is flushed */
    bool shutdown_after; /* call the shutdown hook once the reply is flushed */
    bool want_out;       /* EPOLLOUT is armed */
    bool eof;            /* the peer sent EOF: EPOLLIN is no longer watched */
    char in[RF_OPS_HTTP_REQUEST_MAX];
    size_t in_len;
    rf_strbuf out;
    size_t out_off;
    int64_t accepted_ns;
    int64_t last_active_ns; /* the last byte received, or reply bytes the socket took */
    uid_t uid;              /* the peer's: SO_PEERCRED, or for HTTP loopback_peer_uid; -1 unknown */
    rf_tls_conn *tls;       /* HTTP with stats.prometheus.tls: the TLS state */
} client;

/* /metrics refusals by reason (rf_ops_server_stats.http_rejects). */
enum http_reject {
    HR_TLS_HANDSHAKE = 0,
    HR_CERT_MISSING,
    HR_CERT_INVALID,
    HR_AUTH_MISSING,
    HR_AUTH_BAD,
    HR__COUNT
};
static const char *const http_reject_names[HR__COUNT] = {
    "tls_handshake_failed", "client_cert_missing", "client_cert_invalid", "auth_missing",
    "auth_bad"};

const char *rf_ops_http_reject_name(unsigned i)
{
    return i < HR__COUNT ? http_reject_names[i] : "unknown";
}

struct rf_ops_server {
    int ep;
    listener ls[L_COUNT];
    client *clients[RF_OPS_MAX_CLIENTS];
    uint32_t n_kind[L_COUNT]; /* clients of each socket, against its budget */
    uint32_t gen;
    rf_ops_config cfg;
    rf_ops_hooks hooks;
    uint16_t prom_port;
    /* Written and read by the control thread only; _Atomic so the registry
     * can read them like any other counter. */
    _Atomic uint64_t n_clients, connections, commands, command_errors, denied, dropped_slow,
        refused_full, evicted, http_requests, http_timeouts, http_idle_closed, idle_closed;
    _Atomic uint64_t http_rejects[HR__COUNT];
    rf_tls_server *tls; /* stats.prometheus.tls, or NULL */
    rf_auth *auth;      /* stats.prometheus.auth, or NULL */
    int metric_ids[16 + HR__COUNT];
    int n_ids;
};

/* Mirrors the client slots (calloc'ed on accept, a request buffer each) and
 * their output, cut at cfg->client_buffer; a reply being rendered (a
 * /metrics body of every registered series) is counted as 8 MiB. */
#define BOUND_RENDER (8ull << 20)
_Static_assert(sizeof(client) <= RF_OPS_HTTP_REQUEST_MAX + 128,
               "rf_ops_server_memory_bound: a client");
uint64_t rf_ops_server_memory_bound(const rf_ops_config *cfg)
{
    return RF_OPS_MAX_CLIENTS * (rf_mem_alloc_bound(RF_OPS_HTTP_REQUEST_MAX + 128) +
                                 rf_mem_alloc_bound(cfg->client_buffer)) +
           BOUND_RENDER;
}

static rf_ops_server *g_current;
/* Registered once per process and restarted on later starts, so tests that
 * start several servers do not fill the component registry. */
static rf_component *g_component;

const rf_ops_server *rf_ops_server_current(void)
{
    return g_current;
}

static void bump(_Atomic uint64_t *c)
{
    rf_stats_add(c, 1); /* control thread is the only writer */
}

/* ---- binding ---------------------------------------------------------------- */

/* Is something answering on the socket at path? 1 yes, 0 no (stale), <0 error. */
static int socket_alive(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    if (rc == 0)
        return 1;
    return e == ECONNREFUSED ? 0 : -e;
}

/* Binds a Unix socket at path with `mode`, safely:
 *   - an existing file that is not a socket is never removed;
 *   - an existing socket where a process answers (another ringflowd) makes
 *     this fail with -EADDRINUSE; a socket nobody answers on is stale and is
 *     replaced;
 *   - the socket never exists at `path` with a wider mode than `mode`: it is
 *     bound in a private directory (0700), chmod-ed there, then renamed into
 *     place (which also replaces a stale one atomically). The bind goes
 *     through /proc/self/fd/N/ so the temporary path fits sun_path whatever
 *     the directory's length. */
static int bind_unix(listener *l, const char *path, mode_t mode, rf_err *err)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return rf_err_set(err, EEXIST, "%s exists and is not a socket; not replacing it", path);
        int alive = socket_alive(path);
        if (alive > 0)
            return rf_err_set(err, EADDRINUSE,
                              "%s: another ringflowd is answering on this socket; stop it or "
                              "choose another stats.socket/admin_socket",
                              path);
        if (alive < 0)
            return rf_err_set(err, -alive, "%s: cannot tell whether it is in use: %s", path,
                              strerror(-alive));
        rf_log_warn(COMPONENT, "replacing stale socket %s (nobody answers on it)", path);
    }
    char dirbuf[RF_OPS_SUN_PATH_MAX], tmpl[RF_OPS_SUN_PATH_MAX + 32];
    snprintf(dirbuf, sizeof(dirbuf), "%s", path);
    snprintf(tmpl, sizeof(tmpl), "%s/.ringflow-sock-XXXXXX", dirname(dirbuf));
    if (!mkdtemp(tmpl))
        return rf_err_set(err, errno, "%s: temporary directory: %s", path, strerror(errno));
    int rc = 0;
    int dfd = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (dfd < 0 || fd < 0) {
        rc = rf_err_set(err, errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/s", dfd);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || fchmodat(dfd, "s", mode, 0) < 0 ||
        listen(fd, LISTEN_BACKLOG) < 0 || renameat(dfd, "s", AT_FDCWD, path) < 0) {
        rc = rf_err_set(err, errno, "%s: bind: %s", path, strerror(errno));
        unlinkat(dfd, "s", 0);
        goto out;
    }
    if (lstat(path, &st) == 0) {
        l->ino = st.st_ino;
        l->dev = st.st_dev;
    }
    snprintf(l->path, sizeof(l->path), "%s", path);
    l->fd = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    rmdir(tmpl);
    return rc;
}

static int bind_http(listener *l, const char *listen_on, uint16_t *port_out, rf_err *err)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", listen_on);
    char *colon = strrchr(host, ':');
    if (!colon)
        return rf_err_set(err, EINVAL, "prometheus listen '%s': expected HOST:PORT", listen_on);
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return rf_err_set(err, EINVAL, "prometheus listen '%s': bad IPv4 address", listen_on);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return rf_err_set(err, errno, "prometheus: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        return rf_err_set(err, e, "prometheus: listen on %s: %s", listen_on, strerror(e));
    }
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port_out = ntohs(sa.sin_port);
    l->fd = fd;
    return 0;
}

/* ---- clients ------------------------------------------------------------------ */

static uint64_t client_tag(unsigned slot, const client *c)
{
    return ((uint64_t)c->gen << 32) | slot;
}

static void client_close(rf_ops_server *s, unsigned slot)
{
    client *c = s->clients[slot];
    if (!c)
        return;
    /* The reply has been flushed: start the shutdown before the peer sees
     * EOF, so a client that waits for EOF knows the drain has begun. */
    if (c->shutdown_after && s->hooks.shutdown)
        s->hooks.shutdown(s->hooks.ctx);
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    rf_tls_conn_free(c->tls);
    rf_strbuf_free(&c->out);
    s->n_kind[c->kind]--;
    free(c);
    s->clients[slot] = NULL;
    rf_stats_set(&s->n_clients, rf_stats_load(&s->n_clients) - 1);
}

static void set_events(rf_ops_server *s, unsigned slot, bool out)
{
    client *c = s->clients[slot];
    /* After EOF, input is not watched any more: a half-closed peer would
     * otherwise report readable (EOF) forever. */
    struct epoll_event ev = {.events = (c->eof ? 0 : EPOLLIN | EPOLLRDHUP) | (out ? EPOLLOUT : 0),
                             .data.u64 = client_tag(slot, c)};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

static void arm_out(rf_ops_server *s, unsigned slot, bool on)
{
    if (s->clients[slot]->want_out != on)
        set_events(s, slot, on);
}

static void set_eof(rf_ops_server *s, unsigned slot)
{
    client *c = s->clients[slot];
    c->eof = true;
    c->closing = true;
    set_events(s, slot, c->want_out);
}

/* Writes what the socket takes. Returns false when the client was closed. */
static bool client_flush(rf_ops_server *s, unsigned slot)
{
    client *c = s->clients[slot];
    if (c->tls) {
        /* The reply becomes TLS records at once (one /metrics body: the
         * HTTP timeout bounds a scraper that does not read them). */
        if (c->out_off < c->out.len &&
            rf_tls_conn_write(c->tls, c->out.p + c->out_off, c->out.len - c->out_off) < 0) {
            client_close(s, slot);
            return false;
        }
        c->out.len = c->out_off = 0;
        if (c->closing)
            rf_tls_conn_close_notify(c->tls);
        for (;;) {
            const char *p;
            size_t len;
            rf_tls_conn_out(c->tls, &p, &len);
            if (len == 0)
                break;
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
            if (n > 0) {
                rf_tls_conn_consume(c->tls, (size_t)n);
                c->last_active_ns = rf_clock_mono_ns();
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                arm_out(s, slot, true);
                return true;
            }
            client_close(s, slot);
            return false;
        }
    }
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            c->last_active_ns = rf_clock_mono_ns();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            arm_out(s, slot, true);
            return true;
        }
        client_close(s, slot); /* peer gone */
        return false;
    }
    c->out.len = c->out_off = 0;
    arm_out(s, slot, false);
    if (c->closing) {
        client_close(s, slot);
        return false;
    }
    return true;
}

/* Queues a reply within the client's bound (see ops.h). Returns false when the
 * client was disconnected. */
static bool client_reply(rf_ops_server *s, unsigned slot, const rf_strbuf *reply)
{
    client *c = s->clients[slot];
    size_t pending = c->out.len - c->out_off;
    if (pending > 0 && pending + reply->len > s->cfg.client_buffer) {
        bump(&s->dropped_slow);
        rf_log_warn(COMPONENT,
                    "disconnecting a stats client that does not read its replies "
                    "(%zu bytes pending, limit %llu)",
                    pending, (unsigned long long)s->cfg.client_buffer);
        client_close(s, slot);
        return false;
    }
    if (c->out_off > 0) { /* compact before growing */
        memmove(c->out.p, c->out.p + c->out_off, pending);
        c->out.len = pending;
        c->out_off = 0;
    }
    rf_strbuf_append(&c->out, reply->p ? reply->p : "", reply->len);
    if (c->out.oom) {
        client_close(s, slot);
        return false;
    }
    return client_flush(s, slot);
}

static bool run_line(rf_ops_server *s, unsigned slot, const char *line)
{
    client *c = s->clients[slot];
    rf_ops_peer peer = {.admin = c->admin};
    rf_strbuf reply = {0};
    bump(&s->commands);
    enum rf_ops_cmd_result r = rf_ops_command(line, &peer, &s->hooks, &reply);
    if (r == RF_OPS_CMD_ERROR || r == RF_OPS_CMD_DENIED)
        bump(&s->command_errors);
    if (r == RF_OPS_CMD_DENIED) {
        bump(&s->denied);
        rf_log_warn(COMPONENT, "refused admin command '%s' from a read-only client", line);
    }
    if (reply.oom) {
        rf_strbuf_free(&reply);
        rf_strbuf_printf(&reply, "error: out of memory\n\n");
    }
    if (r == RF_OPS_CMD_QUIT)
        c->closing = true;
    if (r == RF_OPS_CMD_SHUTDOWN) {
        c->closing = true;
        c->shutdown_after = true;
    }
    bool alive = r == RF_OPS_CMD_QUIT ? client_flush(s, slot) : client_reply(s, slot, &reply);
    rf_strbuf_free(&reply);
    return alive;
}

/* Runs every complete line in the input buffer. */
static bool line_input(rf_ops_server *s, unsigned slot, bool eof)
{
    client *c = s->clients[slot];
    size_t start = 0;
    for (size_t i = 0; i < c->in_len; i++) {
        if (c->in[i] != '\n')
            continue;
        c->in[i] = '\0';
        if (i > start && c->in[i - 1] == '\r')
            c->in[i - 1] = '\0';
        char line[RF_OPS_LINE_MAX + 1];
        snprintf(line, sizeof(line), "%.*s", RF_OPS_LINE_MAX, c->in + start);
        start = i + 1;
        /* A bare empty line is a no-op: it gets no reply (clients that send
         * "\r\n" keep-alives stay in step). */
        if (line[0] && !run_line(s, slot, line))
            return false;
        c = s->clients[slot];
        if (c->closing)
            return true;
    }
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    if (eof && c->in_len > 0) { /* a last command without '\n' */
        char line[RF_OPS_LINE_MAX + 1];
        size_t l = c->in_len < RF_OPS_LINE_MAX ? c->in_len : RF_OPS_LINE_MAX;
        memcpy(line, c->in, l);
        line[l] = '\0';
        c->in_len = 0;
        if (!run_line(s, slot, line))
            return false;
    }
    if (c->in_len >= RF_OPS_LINE_MAX) {
        rf_strbuf r = {0};
        rf_strbuf_printf(&r, "error: line longer than %d bytes; closing\n\n", RF_OPS_LINE_MAX);
        bump(&s->command_errors);
        c->closing = true;
        c->in_len = 0;
        bool alive = client_reply(s, slot, &r);
        rf_strbuf_free(&r);
        return alive;
    }
    return true;
}

/* ---- HTTP --------------------------------------------------------------------- */

/* extra: header lines ("Name: value\r\n"...), or "". */
static void http_response_h(rf_strbuf *out, int code, const char *reason, const char *ctype,
                            const char *extra, const rf_strbuf *body, bool head_only)
{
    rf_strbuf_printf(out,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "%sConnection: close\r\n\r\n",
                     code, reason, ctype, body->len, extra);
    if (!head_only && body->len)
        rf_strbuf_append(out, body->p, body->len);
}

static void http_response(rf_strbuf *out, int code, const char *reason, const char *ctype,
                          const rf_strbuf *body, bool head_only)
{
    http_response_h(out, code, reason, ctype, "", body, head_only);
}

/* recv() for a client, through TLS when it has it: plaintext bytes, 0 at the
 * end of the stream (or a TLS failure, counted), -1 with errno. Handshake
 * records are sent as they are produced. */
static ssize_t client_recv(rf_ops_server *s, client *c, void *buf, size_t cap)
{
    if (!c->tls)
        return recv(c->fd, buf, cap, 0);
    for (;;) {
        enum rf_tls_fail why;
        ssize_t n = rf_tls_conn_read(c->tls, buf, cap, &why);
        if (n > 0)
            return n;
        if (n == -EPROTO) {
            static const enum http_reject by_fail[] = {
                [RF_TLS_FAIL_HANDSHAKE] = HR_TLS_HANDSHAKE,
                [RF_TLS_FAIL_CLIENT_CERT_MISSING] = HR_CERT_MISSING,
                [RF_TLS_FAIL_CLIENT_CERT_INVALID] = HR_CERT_INVALID,
                [RF_TLS_FAIL_PROTOCOL] = HR_TLS_HANDSHAKE};
            if (why != RF_TLS_FAIL_PROTOCOL || !rf_tls_conn_established(c->tls))
                bump(&s->http_rejects[by_fail[why]]);
        }
        /* Handshake records and alerts: best effort, the socket has room
         * for a few hundred bytes. */
        const char *p;
        size_t len;
        rf_tls_conn_out(c->tls, &p, &len);
        while (len) {
            ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w <= 0)
                break;
            rf_tls_conn_consume(c->tls, (size_t)w);
            rf_tls_conn_out(c->tls, &p, &len);
        }
        if (n < 0)
            return 0;
        char cipher[READ_CHUNK];
        ssize_t r = recv(c->fd, cipher, sizeof(cipher), 0);
        if (r <= 0)
            return r;
        if (rf_tls_conn_feed(c->tls, cipher, (size_t)r) < 0)
            return 0;
    }
}

/* Components that share a kind and a name are one on /metrics: a listener
 * is a socket on each of its workers, and one removed and added again by a
 * reload leaves its stopped instance behind. Exporting each would repeat
 * the label set, which a scraper rejects. The live instances count (the
 * stopped ones only when nothing else is left): the state is the first that
 * is not running, or running. Returns false for every instance but the
 * first of its group. */
static bool component_group(unsigned i, enum rf_lifecycle_state *state)
{
    const rf_component *c = rf_component_at(i);
    if (!c)
        return false; /* a freed slot */
    unsigned n = rf_component_count();
    for (unsigned j = 0; j < i; j++) {
        const rf_component *d = rf_component_at(j);
        if (d && !strcmp(d->kind, c->kind) && !strcmp(d->name, c->name))
            return false;
    }
    bool live = false;
    for (unsigned j = i; j < n; j++) {
        const rf_component *d = rf_component_at(j);
        if (d && !strcmp(d->kind, c->kind) && !strcmp(d->name, c->name) &&
            rf_component_state(d) != RF_STATE_STOPPED)
            live = true;
    }
    *state = live ? RF_STATE_RUNNING : RF_STATE_STOPPED;
    for (unsigned j = i; j < n; j++) {
        const rf_component *d = rf_component_at(j);
        if (!d)
            continue;
        enum rf_lifecycle_state st = rf_component_state(d);
        if (!strcmp(d->kind, c->kind) && !strcmp(d->name, c->name) &&
            (!live || st != RF_STATE_STOPPED) && st != RF_STATE_RUNNING) {
            *state = st;
            break;
        }
    }
    return true;
}

static void metrics_body(rf_strbuf *b)
{
    rf_stats_write_prometheus(b);
    /* The lifecycle of every component: 1 when running. */
    unsigned n = rf_component_count();
    if (n) {
        static const char *const family[2][2] = {
            {"ringflow_component_up", "1 when the component is running."},
            {"ringflow_component_state", "Lifecycle state: 0 registered, 1 configuring, 2 "
                                         "running, 3 stopping, 4 stopped, 5 failed."}};
        for (int f = 0; f < 2; f++) {
            rf_strbuf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", family[f][0], family[f][1],
                             family[f][0]);
            for (unsigned i = 0; i < n; i++) {
                enum rf_lifecycle_state st;
                if (!component_group(i, &st))
                    continue;
                const rf_component *c = rf_component_at(i);
                rf_strbuf_printf(b, "%s{kind=\"", family[f][0]);
                rf_stats_escape(b, c->kind);
                rf_strbuf_printf(b, "\",name=\"");
                rf_stats_escape(b, c->name);
                rf_strbuf_printf(b, "\"} %d\n", f == 0 ? st == RF_STATE_RUNNING : (int)st);
            }
        }
    }
}

/* 200 "ok" or 503 with one line per component that is not running. */
static int health_body(rf_strbuf *b)
{
    unsigned n = rf_component_count(), bad = 0;
    for (unsigned i = 0; i < n; i++) {
        const rf_component *c = rf_component_at(i);
        if (!c)
            continue; /* a freed slot */
        enum rf_lifecycle_state st = rf_component_state(c);
        if (st == RF_STATE_RUNNING)
            continue;
        bad++;
        char reason[RF_COMPONENT_REASON_MAX];
        rf_component_reason(c, reason, sizeof(reason));
        rf_strbuf_printf(b, "%s %s: %s%s%s\n", c->kind, c->name, rf_lifecycle_state_name(st),
                         reason[0] ? ": " : "", reason);
    }
    if (!bad)
        rf_strbuf_printf(b, "ok\n");
    return bad ? 503 : 200;
}

/* The value of the request head's Authorization header, or NULL. */
static const char *head_authorization(const char *head, const char *end, size_t *len)
{
    for (const char *l = strchr(head, '\n'); l && l < end; l = strchr(l + 1, '\n')) {
        const char *name = l + 1;
        if (strncasecmp(name, "authorization:", 14) != 0)
            continue;
        const char *v = name + 14;
        while (*v == ' ' || *v == '\t')
            v++;
        const char *e = v;
        while (*e && *e != '\r' && *e != '\n')
            e++;
        *len = (size_t)(e - v);
        return v;
    }
    return NULL;
}

static bool http_input(rf_ops_server *s, unsigned slot)
{
    client *c = s->clients[slot];
    if (c->closing)
        return true; /* answered already; what else arrives is ignored */
    c->in[c->in_len < sizeof(c->in) ? c->in_len : sizeof(c->in) - 1] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        end = strstr(c->in, "\n\n");
    rf_strbuf resp = {0}, body = {0};
    if (!end) {
        if (c->in_len < sizeof(c->in) - 1)
            return true; /* wait for the rest of the head */
        rf_strbuf_printf(&body, "request head larger than %d bytes\n", RF_OPS_HTTP_REQUEST_MAX);
        http_response(&resp, 431, "Request Header Fields Too Large", "text/plain", &body, false);
    } else {
        bump(&s->http_requests);
        char method[16] = "", target[256] = "", version[16] = "";
        if (sscanf(c->in, "%15s %255s %15s", method, target, version) != 3 ||
            strncmp(version, "HTTP/1.", 7) != 0) {
            rf_strbuf_printf(&body, "bad request\n");
            http_response(&resp, 400, "Bad Request", "text/plain", &body, false);
        } else {
            bool head = !strcmp(method, "HEAD");
            enum rf_auth_result auth;
            size_t authz_len = 0;
            const char *authz = head_authorization(c->in, end, &authz_len);
            char *q = strchr(target, '?');
            if (q)
                *q = '\0';
            if (strcmp(method, "GET") && !head) {
                rf_strbuf_printf(&body, "only GET and HEAD\n");
                http_response(&resp, 405, "Method Not Allowed", "text/plain", &body, false);
            } else if (!strcmp(target, "/metrics") && s->auth &&
                       (auth = rf_auth_check(s->auth, authz, authz_len)) != RF_AUTH_OK) {
                bump(&s->http_rejects[auth == RF_AUTH_MISSING ? HR_AUTH_MISSING : HR_AUTH_BAD]);
                rf_strbuf_printf(&body, "authorization %s\n",
                                 auth == RF_AUTH_MISSING ? "required" : "failed");
                char hdr[96];
                snprintf(hdr, sizeof(hdr), "WWW-Authenticate: %s\r\n", rf_auth_challenge(s->auth));
                http_response_h(&resp, 401, "Unauthorized", "text/plain", hdr, &body, head);
            } else if (!strcmp(target, "/metrics")) {
                metrics_body(&body);
                http_response(&resp, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", &body,
                              head);
            } else if (!strcmp(target, "/health")) {
                int code = health_body(&body);
                http_response(&resp, code, code == 200 ? "OK" : "Service Unavailable",
                              "text/plain; charset=utf-8", &body, head);
            } else {
                rf_strbuf_printf(&body, "not found: try /metrics or /health\n");
                http_response(&resp, 404, "Not Found", "text/plain", &body, head);
            }
        }
    }
    rf_strbuf_free(&body);
    c->closing = true;
    c->in_len = 0;
    bool alive;
    if (resp.oom) {
        client_close(s, slot);
        alive = false;
    } else {
        /* The whole response is queued at once: the bound does not apply, a
         * slow scraper is cut by the HTTP timeout instead. */
        rf_strbuf_append(&c->out, resp.p, resp.len);
        alive = client_flush(s, slot);
    }
    rf_strbuf_free(&resp);
    return alive;
}

static void client_readable(rf_ops_server *s, unsigned slot)
{
    for (;;) {
        client *c = s->clients[slot];
        size_t cap = c->kind == L_HTTP ? sizeof(c->in) - 1 : RF_OPS_LINE_MAX;
        if (c->in_len >= cap || c->closing) {
            /* HTTP: the head is complete or too big; lines: line_input closed
             * an oversized one. Drain and discard what else arrives. */
            char sink[READ_CHUNK];
            ssize_t n = client_recv(s, c, sink, sizeof(sink));
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                if (c->out_off >= c->out.len)
                    client_close(s, slot);
                else
                    set_eof(s, slot);
                return;
            }
            if (n < 0 && errno == EAGAIN)
                return;
            continue;
        }
        ssize_t n = client_recv(s, c, c->in + c->in_len, cap - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            c->last_active_ns = rf_clock_mono_ns();
            bool alive = c->kind == L_HTTP ? http_input(s, slot) : line_input(s, slot, false);
            if (!alive)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        /* EOF (or error): answer what was asked, then close. */
        if (c->kind != L_HTTP && !line_input(s, slot, true))
            return;
        c = s->clients[slot];
        if (!c)
            return;
        if (c->out_off >= c->out.len)
            client_close(s, slot);
        else
            set_eof(s, slot);
        return;
    }
}

/* The uid owning the other end of a loopback TCP connection, from the
 * kernel's socket table (sock_diag: the peer is a socket on this host), so
 * that HTTP clients have a user as Unix-socket clients do (SO_PEERCRED).
 * (uid_t)-1 when the peer is not on loopback or not found. The kernel
 * answers within the sendto, so the receive never waits. */
static uid_t loopback_peer_uid(int fd)
{
    struct sockaddr_in local, peer;
    socklen_t llen = sizeof(local), plen = sizeof(peer);
    if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 || peer.sin_family != AF_INET ||
        (ntohl(peer.sin_addr.s_addr) >> 24) != 127)
        return (uid_t)-1;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return (uid_t)-1;
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.nh.nlmsg_len = sizeof(req);
    req.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = AF_INET;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    /* The peer's socket: its source is our remote end. */
    req.r.id.idiag_sport = peer.sin_port;
    req.r.id.idiag_dport = local.sin_port;
    req.r.id.idiag_src[0] = peer.sin_addr.s_addr;
    req.r.id.idiag_dst[0] = local.sin_addr.s_addr;
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    uid_t uid = (uid_t)-1;
    if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) ==
        (ssize_t)sizeof(req)) {
        union {
            struct nlmsghdr nh;
            char b[1024];
        } buf;
        ssize_t n = recv(nl, &buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0 && NLMSG_OK(&buf.nh, (size_t)n) && buf.nh.nlmsg_type == SOCK_DIAG_BY_FAMILY &&
            buf.nh.nlmsg_len >= NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
            uid = ((const struct inet_diag_msg *)NLMSG_DATA(&buf.nh))->idiag_uid;
    }
    close(nl);
    return uid;
}

static uint32_t budget(enum lkind kind)
{
    return kind == L_ADMIN  ? RF_OPS_MAX_ADMIN_CLIENTS
           : kind == L_HTTP ? RF_OPS_MAX_HTTP_CLIENTS
                            : RF_OPS_MAX_STATS_CLIENTS;
}

/* The daemon's own user and root: the operators. */
static bool privileged(const rf_ops_server *s, uid_t uid)
{
    return uid == 0 || uid == s->hooks.owner_uid;
}

/* The client of a full socket that a newcomer (uid: its peer's, or -1 when
 * unknown) may replace, or -1: the rules are in ops.h. The quietest one
 * goes, so a client in the middle of an exchange is the last to. */
static int pick_victim(const rf_ops_server *s, enum lkind kind, uid_t newcomer, int64_t now)
{
    const bool op = privileged(s, newcomer);
    if (kind == L_OPS && !op)
        return -1;
    int victim = -1;
    int64_t quietest = INT64_MAX;
    for (unsigned slot = 0; slot < RF_OPS_MAX_CLIENTS; slot++) {
        const client *c = s->clients[slot];
        if (!c || c->kind != kind)
            continue;
        /* An operator's client is never pushed out by someone else's. */
        bool ok = kind == L_ADMIN ||
                  (!privileged(s, c->uid) &&
                   (op || (!c->closing && now - c->accepted_ns >= HTTP_EVICT_MIN_AGE_NS)));
        if (ok && c->last_active_ns < quietest) {
            quietest = c->last_active_ns;
            victim = (int)slot;
        }
    }
    return victim;
}

static void accept_all(rf_ops_server *s, enum lkind kind)
{
    for (;;) {
        int fd = accept4(s->ls[kind].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                rf_log_warn(COMPONENT, "accept: %s", strerror(errno));
            return;
        }
        const int64_t now = rf_clock_mono_ns();
        uid_t uid = (uid_t)-1;
        if (kind != L_HTTP) {
            struct ucred cred;
            socklen_t len = sizeof(cred);
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
                uid = cred.uid;
        } else {
            uid = loopback_peer_uid(fd);
        }
        if (s->n_kind[kind] >= budget(kind)) {
            int victim = pick_victim(s, kind, uid, now);
            if (victim < 0) {
                static const char msg[] = "error: too many clients\n\n";
                if (kind != L_HTTP)
                    (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                close(fd);
                bump(&s->refused_full);
                continue;
            }
            client *v = s->clients[victim];
            if (kind != L_HTTP) {
                static const char msg[] = "error: closed to make room for another client\n\n";
                (void)!send(v->fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            }
            client_close(s, (unsigned)victim);
            bump(&s->evicted);
        }
        /* Budgets add up to the table's size: a socket under its budget
         * always finds a free slot. */
        unsigned slot = 0;
        while (slot < RF_OPS_MAX_CLIENTS && s->clients[slot])
            slot++;
        client *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->kind = kind;
        c->gen = ++s->gen;
        c->accepted_ns = c->last_active_ns = now;
        c->uid = uid;
        if (kind == L_HTTP && s->tls && !(c->tls = rf_tls_conn_new(s->tls, NULL))) {
            close(fd);
            free(c);
            continue;
        }
        /* The owning uid may use admin commands on the ops socket too. */
        c->admin = kind == L_ADMIN || (kind == L_OPS && uid == s->hooks.owner_uid);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = client_tag(slot, c)};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            rf_tls_conn_free(c->tls);
            free(c);
            continue;
        }
        s->clients[slot] = c;
        s->n_kind[kind]++;
        bump(&s->connections);
        rf_stats_set(&s->n_clients, rf_stats_load(&s->n_clients) + 1);
    }
}

/* ---- lifecycle ----------------------------------------------------------------- */

static void register_metrics(rf_ops_server *s)
{
    static const struct {
        const char *name, *help;
        size_t off;
        bool gauge;
    } defs[] = {
        {"ringflow_ops_clients", "Stats socket and HTTP clients connected.",
         offsetof(rf_ops_server, n_clients), true},
        {"ringflow_ops_connections", "Connections accepted by the ops server.",
         offsetof(rf_ops_server, connections), false},
        {"ringflow_ops_commands", "Stats socket commands run.", offsetof(rf_ops_server, commands),
         false},
        {"ringflow_ops_command_errors", "Stats socket commands answered with an error.",
         offsetof(rf_ops_server, command_errors), false},
        {"ringflow_ops_denied", "Admin commands refused to read-only clients.",
         offsetof(rf_ops_server, denied), false},
        {"ringflow_ops_clients_dropped_slow",
         "Clients disconnected because they did not read their replies.",
         offsetof(rf_ops_server, dropped_slow), false},
        {"ringflow_ops_clients_refused", "Connections refused: the socket's budget was full.",
         offsetof(rf_ops_server, refused_full), false},
        {"ringflow_ops_clients_evicted",
         "Clients closed to give their slot to a newcomer (the socket's budget was full).",
         offsetof(rf_ops_server, evicted), false},
        {"ringflow_ops_clients_idle_closed",
         "Stats and admin socket clients closed after stats.client_idle_timeout of silence.",
         offsetof(rf_ops_server, idle_closed), false},
        {"ringflow_http_idle_closed",
         "HTTP clients closed for sending nothing for stats.prometheus.idle_timeout.",
         offsetof(rf_ops_server, http_idle_closed), false},
        {"ringflow_http_requests", "HTTP requests served.", offsetof(rf_ops_server, http_requests),
         false},
        {"ringflow_http_timeouts", "HTTP clients closed for being too slow.",
         offsetof(rf_ops_server, http_timeouts), false},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        const _Atomic uint64_t *v = (const _Atomic uint64_t *)((const char *)s + defs[i].off);
        int id = defs[i].gauge ? rf_stats_register_gauge(defs[i].name, defs[i].help, NULL, v)
                               : rf_stats_register_counter(defs[i].name, defs[i].help, NULL, v);
        if (id >= 0 && s->n_ids < (int)(sizeof(s->metric_ids) / sizeof(s->metric_ids[0])))
            s->metric_ids[s->n_ids++] = id;
    }
    for (unsigned r = 0; r < HR__COUNT; r++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", http_reject_names[r]);
        int id = rf_stats_register_counter("ringflow_ops_http_rejects",
                                           "Prometheus endpoint connections and requests refused "
                                           "(TLS, client certificate, credentials), by reason.",
                                           labels, &s->http_rejects[r]);
        if (id >= 0 && s->n_ids < (int)(sizeof(s->metric_ids) / sizeof(s->metric_ids[0])))
            s->metric_ids[s->n_ids++] = id;
    }
}

static void close_listeners(rf_ops_server *s)
{
    for (int k = 0; k < L_COUNT; k++) {
        listener *l = &s->ls[k];
        if (l->fd >= 0)
            close(l->fd);
        l->fd = -1;
        struct stat st;
        /* Remove the socket file only if it is still the one we bound (a
         * newer daemon may have taken the path over). */
        if (l->path[0] && lstat(l->path, &st) == 0 && st.st_ino == l->ino && st.st_dev == l->dev)
            unlink(l->path);
        l->path[0] = '\0';
    }
}

int rf_ops_server_start(const rf_ops_config *cfg, const rf_ops_hooks *hooks, rf_ops_server **out,
                        rf_err *err)
{
    rf_ops_server *s = calloc(1, sizeof(*s));
    if (!s)
        return rf_err_set(err, ENOMEM, "ops: out of memory");
    s->cfg = *cfg;
    s->hooks = *hooks;
    for (int k = 0; k < L_COUNT; k++)
        s->ls[k].fd = -1;
    int rc = 0;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0) {
        rc = rf_err_set(err, errno, "ops: epoll: %s", strerror(errno));
        goto fail;
    }
    if ((rc = bind_unix(&s->ls[L_OPS], cfg->socket, 0660, err)) < 0 ||
        (rc = bind_unix(&s->ls[L_ADMIN], cfg->admin_socket, 0600, err)) < 0)
        goto fail;
    if (cfg->prometheus_enabled &&
        (rc = bind_http(&s->ls[L_HTTP], cfg->prometheus_listen, &s->prom_port, err)) < 0)
        goto fail;
    if (cfg->prometheus_enabled && cfg->tls.enabled &&
        !(s->tls = rf_tls_server_new(&cfg->tls, err))) {
        rc = rf_err_wrap(err, "stats.prometheus: ");
        goto fail;
    }
    if (cfg->prometheus_enabled && rf_auth_config_enabled(&cfg->auth) &&
        !(s->auth = rf_auth_new(&cfg->auth, err))) {
        rc = rf_err_wrap(err, "stats.prometheus: ");
        goto fail;
    }
    for (int k = 0; k < L_COUNT; k++) {
        if (s->ls[k].fd < 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LISTENER | (uint64_t)k};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->ls[k].fd, &ev) < 0) {
            rc = rf_err_set(err, errno, "ops: epoll_ctl: %s", strerror(errno));
            goto fail;
        }
    }
    register_metrics(s);
    /* The component appears once the sockets are up; a start that failed
     * (e.g. another daemon answers) leaves it alone: the daemon exits. */
    if (!g_component)
        g_component = rf_component_register("stats", "ops");
    if (g_component) {
        rf_component_transition(g_component, RF_STATE_CONFIGURING, NULL);
        rf_component_transition(g_component, RF_STATE_RUNNING, NULL);
    }
    g_current = s;
    if (cfg->prometheus_enabled)
        rf_log_info(COMPONENT, "stats socket %s, admin socket %s, prometheus on port %u",
                    cfg->socket, cfg->admin_socket, s->prom_port);
    else
        rf_log_info(COMPONENT, "stats socket %s, admin socket %s, prometheus disabled", cfg->socket,
                    cfg->admin_socket);
    *out = s;
    return 0;
fail:
    close_listeners(s);
    if (s->ep >= 0)
        close(s->ep);
    rf_tls_server_free(s->tls);
    rf_auth_free(s->auth);
    free(s);
    return rc < 0 ? rc : -EINVAL;
}

int rf_ops_server_fd(const rf_ops_server *s)
{
    return s->ep;
}

void rf_ops_server_run(rf_ops_server *s, int timeout_ms)
{
    struct epoll_event evs[64];
    int n = epoll_wait(s->ep, evs, 64, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint64_t tag = evs[i].data.u64;
        if (tag & TAG_LISTENER) {
            accept_all(s, (enum lkind)(tag & 0xff));
            continue;
        }
        unsigned slot = (unsigned)(tag & 0xffffffffu);
        client *c = slot < RF_OPS_MAX_CLIENTS ? s->clients[slot] : NULL;
        if (!c || c->gen != (uint32_t)(tag >> 32))
            continue; /* closed (and maybe reused) earlier in this batch */
        if ((evs[i].events & EPOLLOUT) && !client_flush(s, slot))
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            client_readable(s, slot);
    }
    /* HTTP clients get http_timeout_ns for the whole exchange, and
     * http_idle_timeout_ns of silence before their request is whole; stats
     * and admin clients client_idle_timeout_ns of silence either way. */
    int64_t now = rf_clock_mono_ns();
    for (unsigned slot = 0; slot < RF_OPS_MAX_CLIENTS; slot++) {
        client *c = s->clients[slot];
        if (!c)
            continue;
        const int64_t quiet = now - c->last_active_ns;
        if (c->kind == L_HTTP && now - c->accepted_ns > (int64_t)s->cfg.http_timeout_ns) {
            bump(&s->http_timeouts);
            client_close(s, slot);
        } else if (c->kind == L_HTTP && !c->closing && s->cfg.http_idle_timeout_ns &&
                   quiet > (int64_t)s->cfg.http_idle_timeout_ns) {
            bump(&s->http_idle_closed);
            client_close(s, slot);
        } else if (c->kind != L_HTTP && s->cfg.client_idle_timeout_ns &&
                   quiet > (int64_t)s->cfg.client_idle_timeout_ns) {
            bump(&s->idle_closed);
            client_close(s, slot);
        }
    }
}

void rf_ops_server_stop(rf_ops_server *s)
{
    if (!s)
        return;
    if (g_component)
        rf_component_transition(g_component, RF_STATE_STOPPING, NULL);
    for (unsigned slot = 0; slot < RF_OPS_MAX_CLIENTS; slot++) {
        client *c = s->clients[slot];
        if (!c)
            continue;
        /* Best effort: whatever the socket takes now (e.g. "ok: draining"). */
        if (c->out_off < c->out.len)
            (void)!send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
        c->shutdown_after = false;
        client_close(s, slot);
    }
    close_listeners(s);
    close(s->ep);
    for (int i = 0; i < s->n_ids; i++)
        rf_stats_unregister(s->metric_ids[i]);
    if (g_current == s)
        g_current = NULL;
    if (g_component)
        rf_component_transition(g_component, RF_STATE_STOPPED, "stopped");
    rf_tls_server_free(s->tls);
    rf_auth_free(s->auth);
    free(s);
}

uint16_t rf_ops_server_prometheus_port(const rf_ops_server *s)
{
    return s->prom_port;
}

void rf_ops_server_stats_read(const rf_ops_server *s, rf_ops_server_stats *out)
{
    out->clients = rf_stats_load(&s->n_clients);
    out->connections = rf_stats_load(&s->connections);
    out->commands = rf_stats_load(&s->commands);
    out->command_errors = rf_stats_load(&s->command_errors);
    out->denied = rf_stats_load(&s->denied);
    out->dropped_slow = rf_stats_load(&s->dropped_slow);
    out->refused_full = rf_stats_load(&s->refused_full);
    out->evicted = rf_stats_load(&s->evicted);
    out->http_requests = rf_stats_load(&s->http_requests);
    out->http_timeouts = rf_stats_load(&s->http_timeouts);
    out->http_idle_closed = rf_stats_load(&s->http_idle_closed);
    out->idle_closed = rf_stats_load(&s->idle_closed);
    for (unsigned r = 0; r < HR__COUNT; r++)
        out->http_rejects[r] = rf_stats_load(&s->http_rejects[r]);
}

int rf_ops_server_reload_security(const rf_ops_config *cfg, rf_err *err)
{
    rf_ops_server *s = g_current;
    if (!s)
        return 0;
    /* Both loaded before either is swapped: all or nothing. */
    rf_tls_server *tls = NULL;
    rf_auth *auth = NULL;
    if (s->tls && cfg->tls.enabled && !(tls = rf_tls_server_new(&cfg->tls, err)))
        return rf_err_wrap(err, "stats.prometheus: ");
    if (s->auth && rf_auth_config_enabled(&cfg->auth) && !(auth = rf_auth_new(&cfg->auth, err))) {
        rf_tls_server_free(tls);
        return rf_err_wrap(err, "stats.prometheus: ");
    }
    if (tls)
        rf_tls_server_take(s->tls, tls);
    if (auth)
        rf_auth_take(s->auth, auth);
    return 0;
}
