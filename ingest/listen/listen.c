/* UDP and TCP listeners on one io_uring per owning thread. The contract is in
 * listen.h; this file holds the sockets, the ring, the buffer rings and the
 * completion dispatch.
 *
 * Completion routing: user_data packs (kind, listener index, connection slot).
 * A connection slot is freed only on the last completion of its recv (one
 * without IORING_CQE_F_MORE), so no completion can arrive for a reused slot:
 * to close a connection we shut the socket down and let that last completion
 * come back, never close the fd under an armed request.
 *
 * Buffer rings: group 0 (UDP, large buffers) and group 1 (TCP), each a
 * page-aligned ring of io_uring_buf entries the kernel consumes from the head
 * while we append recycled buffers at the tail. Recycled entries are written
 * during the poll and published with one release store of the tail at its end
 * (io_uring_buf_ring_advance), before anything is re-armed. */
#include "ingest/listen/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/log/log.h"
#include "core/mem/bound.h"
#include "core/worker/worker.h"
#include "ingest/listen/listen_pvt.h"

#define LOG_COMP "listen"

/* How long a TCP listener waits before accepting again after accept failed
 * (nginx waits 500 ms on EMFILE; connections wait in the backlog meanwhile). */
#define ACCEPT_BACKOFF_NS (100 * RF_NS_PER_MS)

enum { BGID_UDP = 0, BGID_TCP = 1, BG__COUNT = 2 };

enum ud_kind {
    UD_WAKE = 1,   /* eventfd read */
    UD_UDP = 2,    /* multishot recvmsg of a UDP listener */
    UD_ACCEPT = 3, /* multishot accept of a TCP listener */
    UD_RECV = 4,   /* multishot recv of a TCP connection */
    UD_CANCEL = 5, /* cancel of a removed listener's request (its result is ignored) */
};

static inline uint64_t ud_pack(enum ud_kind kind, uint32_t listener, uint32_t slot)
{
    return (uint64_t)kind | (uint64_t)listener << 8 | (uint64_t)slot << 24;
}

/* msg_namelen for UDP recvmsg: a sockaddr_in6 (28) rounded up to 8 so that the
 * cmsg area after it in the buffer stays aligned for struct cmsghdr. */
#define UDP_NAME_BYTES 32u
/* Room for both control messages a datagram can carry: SO_RXQ_OVFL's drop
 * count and SO_TIMESTAMPNS's receipt time. */
#define UDP_CTRL_BYTES ((unsigned)(CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct timespec))))
#define UDP_HDR_BYTES ((unsigned)sizeof(struct io_uring_recvmsg_out) + UDP_NAME_BYTES + UDP_CTRL_BYTES)

/* DRAINING: its listener is being removed; the connection is shut both
 * ways, and what the client sent before is still read and delivered up to
 * the end of the stream (then the connection closes; an unterminated last
 * line is cut by the removal, not ended by the client: discarded and
 * counted). */
enum conn_state { CONN_FREE = 0, CONN_OPEN = 1, CONN_CLOSING = 2, CONN_DRAINING = 3 };
enum detach_state { ATTACHED = 0, DETACHING = 1, DETACHED = 2 };

typedef struct rf_conn {
    int fd;
    uint8_t state;            /* enum conn_state */
    int64_t last_active_ns;   /* mono time of the last data */
    rf_linebuf lines;
    struct sockaddr_in6 peer; /* large enough for AF_INET too */
    socklen_t peer_len;
    char peer_text[RF_LISTEN_ADDR_TEXT_MAX];
} rf_conn;

struct rf_listener {
    rf_listener_set *set;
    uint32_t index;
    rf_listener_config cfg;
    int fd;
    int family;
    uint16_t port;
    int rcvbuf_granted;
    bool burst;           /* delivered something during the current poll */
    /* Live removal (rf_listener_set_detach): DETACHING while the cancelled
     * multishot request and the connections wind down, DETACHED once the
     * socket is closed. */
    uint8_t detach_state;
    bool armed;           /* its multishot recvmsg/accept is in the kernel */
    bool backlog_taken;   /* TCP, detaching: the accept queue was drained */
    rf_component *component;

    /* UDP recvmsg template: the kernel reads msg_namelen/msg_controllen from
     * it at every (re)arm, so it lives as long as the listener. */
    struct msghdr msg;

    /* TCP: preallocated connection table, free slots on a stack, and one
     * max_line_bytes line buffer per slot in a lazily backed mapping. */
    rf_conn *conns;
    uint32_t *free_slots;
    uint32_t n_free;
    char *line_mem;
    size_t line_mem_bytes;
    _Atomic uint32_t open; /* written by the owner, read by anyone */
    int64_t accept_retry_ns; /* accept failed (or no SQE to arm): re-arm at this time; 0 = armed */

    /* Single writer (the owner): relaxed load + store compiles to a plain add;
     * readers use relaxed loads. */
    _Atomic uint64_t ctr[RF_LC__COUNT];
};

typedef struct rf_bufgroup {
    struct io_uring_buf_ring *br;
    size_t ring_bytes;
    char *mem;
    size_t mem_bytes;
    uint32_t count;
    uint32_t size;
    int mask;
    int pending;  /* entries added since the last advance */
    bool registered;
} rf_bufgroup;

struct rf_listener_set {
    char name[RF_LISTENER_NAME_MAX];
    rf_listener_set_options opt;
    rf_listener **listeners;
    uint32_t n_listeners;
    uint32_t cap_listeners;

    struct io_uring ring;
    bool ring_ready;
    bool started;
    rf_bufgroup bg[BG__COUNT];
    struct io_uring_cqe **cqes;

    int wake_fd;
    uint64_t wake_value;           /* target of the armed eventfd read */
    _Atomic uint32_t wake_pending; /* 1 from a wake until its completion is reaped */
    bool wake_armed;

    bool accept_backoff;           /* some listener waits to re-arm its accept */
    uint32_t detaching;            /* listeners being removed (rf_listener_set_detach) */
    int64_t idle_check_every_ns;   /* 0: no TCP listener has an idle timeout */
    int64_t next_idle_check_ns;
};

/* ---- small helpers ------------------------------------------------------ */

static inline void ctr_add(rf_listener *l, enum rf_listen_counter_id id, uint64_t n)
{
    /* Single writer: only the owning thread updates counters. */
    atomic_store_explicit(&l->ctr[id], atomic_load_explicit(&l->ctr[id], memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void ctr_set(rf_listener *l, enum rf_listen_counter_id id, uint64_t v)
{
    atomic_store_explicit(&l->ctr[id], v, memory_order_relaxed);
}

static const char *const transport_names[] = {"udp", "tcp"};
static const char *const protocol_names[] = {"influx_line", "statsd", "graphite", "http"};
static const char *const counter_names[RF_LC__COUNT] = {
    [RF_LC_DATAGRAMS] = "datagrams",
    [RF_LC_READS] = "reads",
    [RF_LC_BYTES] = "bytes",
    [RF_LC_TRUNCATED] = "truncated",
    [RF_LC_CONN_ACCEPTED] = "connections_accepted",
    [RF_LC_CONN_REFUSED] = "connections_refused",
    [RF_LC_CONN_CLOSED] = "connections_closed",
    [RF_LC_CONN_RESET] = "connections_reset",
    [RF_LC_CONN_TIMED_OUT] = "connections_timed_out",
    [RF_LC_CONN_ERRORS] = "connection_errors",
    [RF_LC_ACCEPT_ERRORS] = "accept_errors",
    [RF_LC_LINES_TOO_LONG] = "lines_too_long",
    [RF_LC_PARTIAL_DISCARDED] = "partial_lines_discarded",
    [RF_LC_CONN_REFUSED_SOURCE] = "connections_refused_per_source",
    [RF_LC_KERNEL_DROPS] = "kernel_drops",
    [RF_LC_ENOBUFS] = "enobufs",
    [RF_LC_REARMS] = "rearms",
    [RF_LC_RECV_ERRORS] = "recv_errors",
};

const char *rf_listen_transport_name(enum rf_listen_transport t)
{
    return (unsigned)t < 2 ? transport_names[t] : "unknown";
}

const char *rf_listen_protocol_name(enum rf_listen_protocol p)
{
    return (unsigned)p < 4 ? protocol_names[p] : "unknown";
}

const char *rf_listen_counter_name(enum rf_listen_counter_id id)
{
    return (unsigned)id < RF_LC__COUNT ? counter_names[id] : "unknown";
}

uint64_t rf_listener_counter(const rf_listener *l, enum rf_listen_counter_id id)
{
    if ((unsigned)id >= RF_LC__COUNT)
        return 0;
    return atomic_load_explicit(&l->ctr[id], memory_order_relaxed);
}

uint32_t rf_listener_connections(const rf_listener *l)
{
    return atomic_load_explicit(&l->open, memory_order_relaxed);
}

const char *rf_listener_name(const rf_listener *l) { return l->cfg.name; }
const rf_listener_config *rf_listener_config_of(const rf_listener *l) { return &l->cfg; }
uint16_t rf_listener_port(const rf_listener *l) { return l->port; }
int rf_listener_rcvbuf_granted(const rf_listener *l) { return l->rcvbuf_granted; }
unsigned rf_listener_set_count(const rf_listener_set *set) { return set->n_listeners; }

rf_listener *rf_listener_set_at(rf_listener_set *set, unsigned i)
{
    return i < set->n_listeners ? set->listeners[i] : NULL;
}

const char *rf_listen_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa && sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa && sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, size, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "?");
    }
    return buf;
}

void rf_listener_config_init(rf_listener_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->address, sizeof(cfg->address), "127.0.0.1");
    cfg->max_connections = 1024;
    cfg->max_line_bytes = 65536;
}

/* ---- set lifecycle ------------------------------------------------------ */

static bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* The set options with every zero field at its default (listen.h). */
static rf_listener_set_options options_with_defaults(const rf_listener_set_options *opt)
{
    rf_listener_set_options o = opt ? *opt : (rf_listener_set_options){0};
    if (!o.sq_entries) o.sq_entries = 256;
    if (!o.cq_entries) o.cq_entries = 4096;
    if (!o.cqe_batch) o.cqe_batch = 256;
    if (!o.udp_buffers) o.udp_buffers = 256;
    if (!o.udp_buffer_bytes) o.udp_buffer_bytes = 65536 + UDP_HDR_BYTES;
    if (!o.tcp_buffers) o.tcp_buffers = 256;
    if (!o.tcp_buffer_bytes) o.tcp_buffer_bytes = 16384;
    return o;
}

int rf_listener_set_new(rf_listener_set **out, const char *name,
                        const rf_listener_set_options *opt, rf_err *err)
{
    *out = NULL;
    rf_listener_set_options o = options_with_defaults(opt);
    if (!is_pow2(o.udp_buffers) || !is_pow2(o.tcp_buffers) || o.udp_buffers > 32768 ||
        o.tcp_buffers > 32768)
        return rf_err_set(err, EINVAL, "listener set %s: buffer counts must be powers of two "
                          "up to 32768 (udp %u, tcp %u)", name, o.udp_buffers, o.tcp_buffers);
    if (o.udp_buffer_bytes < UDP_HDR_BYTES + 512)
        return rf_err_set(err, EINVAL, "listener set %s: udp_buffer_bytes %u below the minimum %u",
                          name, o.udp_buffer_bytes, UDP_HDR_BYTES + 512);
    if (o.tcp_buffer_bytes < 512)
        return rf_err_set(err, EINVAL, "listener set %s: tcp_buffer_bytes %u below 512", name,
                          o.tcp_buffer_bytes);

    rf_listener_set *s = calloc(1, sizeof(*s));
    if (!s)
        return rf_err_set(err, ENOMEM, "listener set %s: out of memory", name);
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->opt = o;
    s->wake_fd = -1;
    s->cqes = calloc(o.cqe_batch, sizeof(*s->cqes));
    s->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (!s->cqes || s->wake_fd < 0) {
        int e = s->cqes ? errno : ENOMEM;
        rf_listener_set_free(s);
        return rf_err_set(err, e, "listener set %s: %s", name, strerror(e));
    }
    *out = s;
    return 0;
}

static void conn_teardown(rf_listener *l)
{
    if (l->conns) {
        for (uint32_t i = 0; i < l->cfg.max_connections; i++)
            if (l->conns[i].state != CONN_FREE)
                close(l->conns[i].fd);
    }
    free(l->conns);
    free(l->free_slots);
    if (l->line_mem)
        munmap(l->line_mem, l->line_mem_bytes);
}

void rf_listener_set_free(rf_listener_set *set)
{
    if (!set)
        return;
    /* Exiting the ring first cancels every armed request and drops the
     * kernel's file references; the fds are closed after. */
    if (set->ring_ready)
        io_uring_queue_exit(&set->ring);
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        rf_listener *l = set->listeners[i];
        if (!l)
            continue; /* a slot rf_listener_set_remove emptied */
        conn_teardown(l);
        if (l->fd >= 0)
            close(l->fd);
        if (l->component && set->started) {
            rf_component_transition(l->component, RF_STATE_STOPPING, NULL);
            rf_component_transition(l->component, RF_STATE_STOPPED, NULL);
        }
        free(l);
    }
    for (int g = 0; g < BG__COUNT; g++) {
        if (set->bg[g].br)
            munmap(set->bg[g].br, set->bg[g].ring_bytes);
        if (set->bg[g].mem)
            munmap(set->bg[g].mem, set->bg[g].mem_bytes);
    }
    if (set->wake_fd >= 0)
        close(set->wake_fd);
    free(set->listeners);
    free(set->cqes);
    free(set);
}

/* ---- sockets ------------------------------------------------------------ */

static bool addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static int parse_addr(const char *text, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

static int set_int_opt(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* Requests the receive buffer: SO_RCVBUFFORCE passes net.core.rmem_max with
 * CAP_NET_ADMIN; without it SO_RCVBUF is capped there. */
static void apply_rcvbuf(rf_listener *l)
{
    if (l->cfg.rcvbuf_bytes) {
        int v = (int)(l->cfg.rcvbuf_bytes > INT32_MAX / 2 ? INT32_MAX / 2 : l->cfg.rcvbuf_bytes);
        if (set_int_opt(l->fd, SOL_SOCKET, SO_RCVBUFFORCE, v) < 0)
            (void)set_int_opt(l->fd, SOL_SOCKET, SO_RCVBUF, v);
    }
    int got = 0;
    socklen_t gl = sizeof(got);
    if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0)
        l->rcvbuf_granted = got;
    /* The kernel reports twice the usable size (the rest is its own
     * bookkeeping): compare and say what the user wrote. */
    if (l->cfg.rcvbuf_bytes && (uint64_t)l->rcvbuf_granted / 2 < l->cfg.rcvbuf_bytes) {
        char want[32], got[32];
        rf_log_warn(LOG_COMP,
                    "listener %s: rcvbuf %s requested, the kernel gave %s (raise "
                    "net.core.rmem_max or grant CAP_NET_ADMIN)",
                    l->cfg.name, rf_cfg_format_size(l->cfg.rcvbuf_bytes, want, sizeof(want)),
                    rf_cfg_format_size((uint64_t)l->rcvbuf_granted / 2, got, sizeof(got)));
    }
}

static int open_socket(rf_listener *l, rf_err *err)
{
    const rf_listener_config *c = &l->cfg;
    struct sockaddr_storage ss;
    socklen_t slen;
    if (parse_addr(c->address, c->port, &ss, &slen) < 0)
        return rf_err_set(err, EINVAL, "listener %s: address '%s' is not an IPv4 or IPv6 literal",
                          c->name, c->address);
    l->family = ss.ss_family;
    if (!addr_is_loopback(&ss))
        rf_log_warn(LOG_COMP, "listener %s: bound to non-loopback address %s: reachable from the "
                    "network, unauthenticated", c->name, c->address);

    /* Blocking sockets on purpose: io_uring handles readiness itself, and a
     * blocking socket makes it wait by poll rather than return EAGAIN. */
    int type = c->transport == RF_LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
    l->fd = socket(l->family, type | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return rf_err_set(err, errno, "listener %s: socket: %s", c->name, strerror(errno));
    int rc = set_int_opt(l->fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (rc == 0 && c->transport == RF_LISTEN_TCP)
        rc = set_int_opt(l->fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && l->family == AF_INET6)
        rc = set_int_opt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (rc == 0 && c->transport == RF_LISTEN_UDP)
        rc = set_int_opt(l->fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    /* The kernel's receipt time of each datagram: what the critical path is
     * measured from, so that time spent waiting in the socket queue (while
     * the worker was busy) counts too. */
    if (rc == 0 && c->transport == RF_LISTEN_UDP)
        rc = set_int_opt(l->fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener %s: setsockopt: %s", c->name, strerror(-rc));
    apply_rcvbuf(l);

    char at[RF_LISTEN_ADDR_TEXT_MAX];
    rf_listen_addr_format((struct sockaddr *)&ss, slen, at, sizeof(at));
    if (bind(l->fd, (struct sockaddr *)&ss, slen) < 0)
        return rf_err_set(err, errno, "listener %s: bind %s: %s", c->name, at, strerror(errno));
    if (c->transport == RF_LISTEN_TCP && listen(l->fd, SOMAXCONN) < 0)
        return rf_err_set(err, errno, "listener %s: listen %s: %s", c->name, at, strerror(errno));

    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(l->fd, (struct sockaddr *)&bound, &blen) == 0)
        l->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                    : ((struct sockaddr_in6 *)&bound)->sin6_port);
    return 0;
}

static int tcp_tables(rf_listener *l, rf_err *err)
{
    uint32_t n = l->cfg.max_connections;
    l->conns = calloc(n, sizeof(*l->conns));
    l->free_slots = calloc(n, sizeof(*l->free_slots));
    /* One line buffer per slot, reserved but not backed until a connection
     * actually holds a partial line there. */
    l->line_mem_bytes = (size_t)n * l->cfg.max_line_bytes;
    void *m = mmap(NULL, l->line_mem_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    l->line_mem = m == MAP_FAILED ? NULL : m;
    if (!l->conns || !l->free_slots || !l->line_mem)
        return rf_err_set(err, ENOMEM, "listener %s: out of memory for %u connections of %u-byte "
                          "lines", l->cfg.name, n, l->cfg.max_line_bytes);
    for (uint32_t i = 0; i < n; i++) {
        l->conns[i].fd = -1;
        l->conns[i].lines.buf = l->line_mem + (size_t)i * l->cfg.max_line_bytes;
        l->conns[i].lines.cap = l->cfg.max_line_bytes;
        l->free_slots[i] = n - 1 - i; /* slot 0 on top */
    }
    l->n_free = n;
    return 0;
}

int rf_listener_open(const rf_listener_config *cfg, rf_listener **out, rf_err *err)
{
    *out = NULL;
    const char *nm = cfg->name[0] ? cfg->name : "?";
    if (!cfg->handler.on_data)
        return rf_err_set(err, EINVAL, "listener %s: no handler", nm);
    if ((unsigned)cfg->transport > RF_LISTEN_TCP || (unsigned)cfg->protocol > RF_LISTEN_PROTO_HTTP)
        return rf_err_set(err, EINVAL, "listener %s: bad transport or protocol", nm);

    rf_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return rf_err_set(err, ENOMEM, "listener %s: out of memory", nm);
    l->cfg = *cfg;
    if (!l->cfg.name[0])
        snprintf(l->cfg.name, sizeof(l->cfg.name), "%s-%s", rf_listen_protocol_name(cfg->protocol),
                 rf_listen_transport_name(cfg->transport));
    if (!l->cfg.max_connections)
        l->cfg.max_connections = 1024;
    if (!l->cfg.max_line_bytes)
        l->cfg.max_line_bytes = 65536;
    l->fd = -1;

    int rc = open_socket(l, err);
    if (rc == 0 && l->cfg.transport == RF_LISTEN_TCP)
        rc = tcp_tables(l, err);
    if (rc < 0) {
        rf_listener_close(l);
        return rc;
    }
    if (l->cfg.transport == RF_LISTEN_UDP) {
        l->msg.msg_namelen = UDP_NAME_BYTES;
        l->msg.msg_controllen = UDP_CTRL_BYTES;
    }
    l->component = rf_component_register("listener", l->cfg.name);
    if (l->component)
        rf_component_transition(l->component, RF_STATE_CONFIGURING, NULL);
    /* Debug: each worker opens its own socket; the daemon logs one line per
     * listener once all of them are open. */
    rf_log_debug(LOG_COMP, "listener %s: socket %s %s port %u protocol %s SO_RCVBUF %d", l->cfg.name,
                rf_listen_transport_name(l->cfg.transport), l->cfg.address, l->port,
                rf_listen_protocol_name(l->cfg.protocol), l->rcvbuf_granted);
    *out = l;
    return 0;
}

void rf_listener_close(rf_listener *l)
{
    if (!l)
        return;
    conn_teardown(l);
    if (l->fd >= 0)
        close(l->fd);
    /* Its owner is done with it (never attached, or removed from its set):
     * the component leaves the registry (/health) with it. */
    rf_component_unregister(l->component);
    free(l);
}

/* Puts an opened listener into the set's table (either thread that owns
 * the set at this moment: the control thread before start, the owner
 * after). */
static int set_insert(rf_listener_set *set, rf_listener *l, rf_err *err)
{
    uint32_t used = 0;
    for (uint32_t i = 0; i < set->n_listeners; i++)
        used += set->listeners[i] != NULL;
    if (used >= UINT16_MAX)
        return rf_err_set(err, ENOSPC, "listener %s: set %s is full", l->cfg.name, set->name);
    if (set->n_listeners == set->cap_listeners) {
        uint32_t nc = set->cap_listeners ? set->cap_listeners * 2 : 4;
        rf_listener **nl = realloc(set->listeners, nc * sizeof(*nl));
        if (!nl)
            return rf_err_set(err, ENOMEM, "listener %s: out of memory", l->cfg.name);
        set->listeners = nl;
        set->cap_listeners = nc;
    }
    if (l->cfg.transport == RF_LISTEN_TCP && l->cfg.idle_timeout_ns) {
        int64_t every = (int64_t)(l->cfg.idle_timeout_ns / 8);
        if (every < RF_NS_PER_MS) every = RF_NS_PER_MS;
        if (every > RF_NS_PER_S) every = RF_NS_PER_S;
        if (!set->idle_check_every_ns || every < set->idle_check_every_ns)
            set->idle_check_every_ns = every;
    }
    /* A slot rf_listener_set_remove emptied first: listeners that reloads
     * add and remove must not grow the table (or pass the 16-bit index in
     * a request's user data). A removed listener's requests have all
     * ended (DETACHED), so no completion can name its old slot, except its
     * cancel's, which is ignored whoever holds the slot now. */
    uint32_t i = 0;
    while (i < set->n_listeners && set->listeners[i])
        i++;
    l->set = set;
    l->index = i;
    set->listeners[i] = l;
    if (i == set->n_listeners)
        set->n_listeners++;
    return 0;
}

int rf_listener_add(rf_listener_set *set, const rf_listener_config *cfg, rf_listener **out,
                    rf_err *err)
{
    if (out)
        *out = NULL;
    const char *nm = cfg->name[0] ? cfg->name : "?";
    if (set->started)
        return rf_err_set(err, EBUSY, "listener %s: set %s already started", nm, set->name);
    rf_listener *l;
    int rc = rf_listener_open(cfg, &l, err);
    if (rc < 0)
        return rc;
    if ((rc = set_insert(set, l, err)) < 0) {
        rf_listener_close(l);
        return rc;
    }
    if (out)
        *out = l;
    return 0;
}

/* ---- ring setup --------------------------------------------------------- */

static int bufgroup_setup(rf_listener_set *set, int bgid, uint32_t count, uint32_t size, rf_err *err)
{
    rf_bufgroup *g = &set->bg[bgid];
    long page = sysconf(_SC_PAGESIZE);
    g->count = count;
    g->size = size;
    g->mask = io_uring_buf_ring_mask(count);
    g->ring_bytes = ((size_t)count * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
    g->mem_bytes = (size_t)count * size;
    /* liburing 2.3 has no io_uring_setup_buf_ring (2.4): map and register
     * the ring ourselves. */
    void *r = mmap(NULL, g->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *m = mmap(NULL, g->mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g->br = r == MAP_FAILED ? NULL : r;
    g->mem = m == MAP_FAILED ? NULL : m;
    if (!g->br || !g->mem)
        return rf_err_set(err, ENOMEM, "listener set %s: out of memory for %u buffers of %u bytes",
                          set->name, count, size);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)g->br, .ring_entries = count, .bgid = (uint16_t)bgid};
    int rc = io_uring_register_buf_ring(&set->ring, &reg, 0);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener set %s: register buffer ring %d: %s", set->name, bgid,
                          strerror(-rc));
    g->registered = true;
    io_uring_buf_ring_init(g->br);
    for (uint32_t i = 0; i < count; i++)
        io_uring_buf_ring_add(g->br, g->mem + (size_t)i * size, size, (unsigned short)i, g->mask, (int)i);
    io_uring_buf_ring_advance(g->br, (int)count);
    return 0;
}

static inline void buf_recycle(rf_listener_set *set, int bgid, uint16_t bid)
{
    rf_bufgroup *g = &set->bg[bgid];
    io_uring_buf_ring_add(g->br, g->mem + (size_t)bid * g->size, g->size, bid, g->mask, g->pending++);
}

static inline void *buf_addr(rf_listener_set *set, int bgid, uint16_t bid)
{
    return set->bg[bgid].mem + (size_t)bid * set->bg[bgid].size;
}

/* An SQE, submitting what is queued when the SQ is full (only under a burst
 * of re-arms larger than the SQ). NULL means the kernel refused: the caller
 * counts it. */
static struct io_uring_sqe *get_sqe(rf_listener_set *set)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&set->ring);
    if (!sqe) {
        io_uring_submit(&set->ring);
        sqe = io_uring_get_sqe(&set->ring);
    }
    return sqe;
}

static void arm_wake(rf_listener_set *set)
{
    struct io_uring_sqe *sqe = get_sqe(set);
    if (!sqe) {
        rf_log_error(LOG_COMP, "listener set %s: no SQE to arm the wake-up", set->name);
        return;
    }
    io_uring_prep_read(sqe, set->wake_fd, &set->wake_value, sizeof(set->wake_value), 0);
    io_uring_sqe_set_data64(sqe, ud_pack(UD_WAKE, 0, 0));
    set->wake_armed = true;
}

static void arm_listener(rf_listener *l)
{
    struct io_uring_sqe *sqe = get_sqe(l->set);
    if (!sqe) {
        /* Try again after the back-off rather than go deaf. */
        ctr_add(l, RF_LC_RECV_ERRORS, 1);
        l->accept_retry_ns = rf_clock_mono_ns() + ACCEPT_BACKOFF_NS;
        l->set->accept_backoff = true;
        return;
    }
    if (l->cfg.transport == RF_LISTEN_UDP) {
        io_uring_prep_recvmsg_multishot(sqe, l->fd, &l->msg, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BGID_UDP;
        io_uring_sqe_set_data64(sqe, ud_pack(UD_UDP, l->index, 0));
    } else {
        io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, ud_pack(UD_ACCEPT, l->index, 0));
    }
    l->armed = true;
}

static void conn_release(rf_listener *l, uint32_t slot);

/* Called only when no recv is armed on the slot (after accept, or after the
 * last completion of the previous one). */
static void arm_recv(rf_listener *l, uint32_t slot)
{
    struct io_uring_sqe *sqe = get_sqe(l->set);
    if (!sqe) {
        /* Nothing armed, so nothing will complete: close it now rather than
         * leave the client hanging. */
        ctr_add(l, RF_LC_CONN_ERRORS, 1);
        if (rf_linebuf_reset(&l->conns[slot].lines))
            ctr_add(l, RF_LC_PARTIAL_DISCARDED, 1);
        conn_release(l, slot);
        return;
    }
    io_uring_prep_recv_multishot(sqe, l->conns[slot].fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID_TCP;
    io_uring_sqe_set_data64(sqe, ud_pack(UD_RECV, l->index, slot));
}

int rf_listener_set_start(rf_listener_set *set, rf_err *err)
{
    if (set->started)
        return rf_err_set(err, EALREADY, "listener set %s: already started", set->name);
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* SINGLE_ISSUER: only this thread submits (the kernel enforces it).
     * COOP_TASKRUN + TASKRUN_FLAG: completions' task work does not interrupt
     * the polling thread with an IPI; the kernel raises IORING_SQ_TASKRUN and
     * the next poll runs it with one io_uring_enter for the whole batch. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG;
    p.cq_entries = set->opt.cq_entries;
    int rc = io_uring_queue_init_params(set->opt.sq_entries, &set->ring, &p);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener set %s: io_uring_setup: %s", set->name, strerror(-rc));
    set->ring_ready = true;

    bool udp = false, tcp = false;
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        udp |= set->listeners[i]->cfg.transport == RF_LISTEN_UDP;
        tcp |= set->listeners[i]->cfg.transport == RF_LISTEN_TCP;
    }
    if (udp && (rc = bufgroup_setup(set, BGID_UDP, set->opt.udp_buffers,
                                    set->opt.udp_buffer_bytes, err)) < 0)
        return rc;
    if (tcp && (rc = bufgroup_setup(set, BGID_TCP, set->opt.tcp_buffers,
                                    set->opt.tcp_buffer_bytes, err)) < 0)
        return rc;

    arm_wake(set);
    for (uint32_t i = 0; i < set->n_listeners; i++)
        arm_listener(set->listeners[i]);
    rc = io_uring_submit(&set->ring);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener set %s: io_uring_submit: %s", set->name, strerror(-rc));
    set->started = true;
    set->next_idle_check_ns = rf_clock_mono_ns() + set->idle_check_every_ns;
    for (uint32_t i = 0; i < set->n_listeners; i++)
        if (set->listeners[i]->component)
            rf_component_transition(set->listeners[i]->component, RF_STATE_RUNNING, NULL);
    return 0;
}

/* ---- completions -------------------------------------------------------- */

typedef struct emit_ctx {
    rf_listener *l;
    rf_listen_chunk *chunk;
} emit_ctx;

static void deliver(rf_listener *l, rf_listen_chunk *c)
{
    l->burst = true;
    l->cfg.handler.on_data(l->cfg.handler.ctx, l, c);
}

static void emit_line(void *ctx, const char *data, size_t len, uint32_t flags)
{
    emit_ctx *e = ctx;
    e->chunk->data = data;
    e->chunk->len = len;
    e->chunk->flags = flags;
    deliver(e->l, e->chunk);
}

static void conn_chunk(rf_listener *l, uint32_t slot, rf_listen_chunk *c, int64_t mono, int64_t wall)
{
    rf_conn *cn = &l->conns[slot];
    c->peer = (const struct sockaddr *)&cn->peer;
    c->peer_len = cn->peer_len;
    c->peer_text = cn->peer_text;
    c->mono_ns = mono;
    c->wall_ns = wall;
    c->conn = slot;
    c->fd = cn->fd;
}

static void conn_release(rf_listener *l, uint32_t slot)
{
    rf_conn *cn = &l->conns[slot];
    close(cn->fd);
    cn->fd = -1;
    cn->state = CONN_FREE;
    rf_linebuf_reset(&cn->lines);
    if (l->cfg.handler.on_conn_end)
        l->cfg.handler.on_conn_end(l->cfg.handler.ctx, l, slot);
    l->free_slots[l->n_free++] = slot;
    atomic_store_explicit(&l->open, atomic_load_explicit(&l->open, memory_order_relaxed) - 1,
                          memory_order_relaxed);
}

static bool same_address(const struct sockaddr_in6 *a, socklen_t alen, const struct sockaddr_in6 *b,
                         socklen_t blen)
{
    if (alen == 0 || blen == 0 || a->sin6_family != b->sin6_family)
        return false;
    if (a->sin6_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    return memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
}

/* Whether a new connection from peer would pass max_connections_per_source.
 * The scan of the table runs only once that many connections are open in
 * all, so a listener below its per-source limit pays nothing per accept. */
static bool source_full(const rf_listener *l, const struct sockaddr_in6 *peer, socklen_t len)
{
    const uint32_t max = l->cfg.max_connections_per_source;
    /* Relaxed: this thread (the owner) is the only writer of open (the
     * stores in on_accept and conn_release); no other thread's data is read
     * through it. */
    if (!max || atomic_load_explicit(&l->open, memory_order_relaxed) < max)
        return false;
    uint32_t n = 0;
    for (uint32_t i = 0; i < l->cfg.max_connections && n < max; i++) {
        const rf_conn *cn = &l->conns[i];
        n += cn->state != CONN_FREE && same_address(&cn->peer, cn->peer_len, peer, len);
    }
    return n >= max;
}

/* Gives the accepted fd a slot and arms its recv; refuses it (closed,
 * counted) past max_connections or max_connections_per_source. A listener
 * being removed still takes what its accept queue held, drained at once
 * (shut both ways, as rf_listener_set_detach does to the others), so the
 * lines it sent are delivered rather than closed unread. */
static void conn_adopt(rf_listener *l, int fd, int64_t mono)
{
    if (l->n_free == 0) {
        close(fd);
        ctr_add(l, RF_LC_CONN_REFUSED, 1);
        return;
    }
    struct sockaddr_in6 peer;
    socklen_t peer_len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0)
        peer_len = 0;
    if (source_full(l, &peer, peer_len)) {
        /* One address holding every slot would lock every other sender out. */
        close(fd);
        ctr_add(l, RF_LC_CONN_REFUSED_SOURCE, 1);
        return;
    }
    uint32_t slot = l->free_slots[--l->n_free];
    rf_conn *cn = &l->conns[slot];
    cn->fd = fd;
    cn->state = CONN_OPEN;
    cn->last_active_ns = mono;
    cn->peer = peer;
    cn->peer_len = peer_len;
    rf_listen_addr_format((struct sockaddr *)&cn->peer, cn->peer_len, cn->peer_text,
                          sizeof(cn->peer_text));
    atomic_store_explicit(&l->open, atomic_load_explicit(&l->open, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    ctr_add(l, RF_LC_CONN_ACCEPTED, 1);
    if (l->detach_state != ATTACHED) {
        cn->state = CONN_DRAINING;
        shutdown(fd, SHUT_RDWR);
    }
    arm_recv(l, slot);
}

static void on_accept(rf_listener *l, const struct io_uring_cqe *cqe, int64_t mono)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->armed = false;
    if (l->detach_state != ATTACHED) {
        /* Accepted before the cancel took effect: drained like the others. */
        if (cqe->res >= 0)
            conn_adopt(l, cqe->res, mono);
        return;
    }
    if (cqe->res < 0) {
        ctr_add(l, RF_LC_ACCEPT_ERRORS, 1);
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            /* Out of fds (EMFILE, ENFILE, ENOBUFS): re-arming at once would
             * spin on the same error. Pending clients wait in the backlog. */
            l->accept_retry_ns = mono + ACCEPT_BACKOFF_NS;
            l->set->accept_backoff = true;
        }
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        arm_listener(l);
        ctr_add(l, RF_LC_REARMS, 1);
    }
    conn_adopt(l, cqe->res, mono);
}

static void on_recv(rf_listener *l, uint32_t slot, const struct io_uring_cqe *cqe, int64_t mono,
                    int64_t wall)
{
    rf_listener_set *set = l->set;
    rf_conn *cn = &l->conns[slot];
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;

    if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        ctr_add(l, RF_LC_READS, 1);
        ctr_add(l, RF_LC_BYTES, (uint64_t)res);
        if (cn->state == CONN_OPEN || cn->state == CONN_DRAINING) {
            cn->last_active_ns = mono;
            rf_listen_chunk c;
            conn_chunk(l, slot, &c, mono, wall);
            if (l->cfg.handler.on_stream) {
                c.data = buf_addr(set, BGID_TCP, bid);
                c.len = (size_t)res;
                c.flags = 0;
                l->burst = true;
                if (l->cfg.handler.on_stream(l->cfg.handler.ctx, l, &c) &&
                    cn->state == CONN_OPEN) {
                    /* FIN after the answer; the recv stays armed and ends with
                     * the peer's close (SHUT_RD would discard, and a close with
                     * unread bytes would reset, the answer). */
                    cn->state = CONN_CLOSING;
                    shutdown(cn->fd, SHUT_WR);
                }
            } else {
                emit_ctx e = {l, &c};
                uint32_t over = rf_linebuf_feed(&cn->lines, buf_addr(set, BGID_TCP, bid),
                                                (size_t)res, emit_line, &e);
                if (over)
                    ctr_add(l, RF_LC_LINES_TOO_LONG, over);
            }
        }
        buf_recycle(set, BGID_TCP, bid);
        if (!more) {
            if (cn->state == CONN_OPEN || cn->state == CONN_DRAINING) {
                arm_recv(l, slot);
                ctr_add(l, RF_LC_REARMS, 1);
            } else {
                conn_release(l, slot);
            }
        }
        return;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER)
        buf_recycle(set, BGID_TCP, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
    if (more)
        return; /* not expected for res <= 0; the request is still armed */

    if (res == -ENOBUFS && (cn->state == CONN_OPEN || cn->state == CONN_DRAINING)) {
        /* Data waits in the socket; re-armed after this batch's buffers are back. */
        ctr_add(l, RF_LC_ENOBUFS, 1);
        ctr_add(l, RF_LC_REARMS, 1);
        arm_recv(l, slot);
        return;
    }
    if (cn->state == CONN_DRAINING) {
        /* The end of what the client had sent when its listener went. */
        if (rf_linebuf_reset(&cn->lines))
            ctr_add(l, RF_LC_PARTIAL_DISCARDED, 1);
        ctr_add(l, res == 0 ? RF_LC_CONN_CLOSED : RF_LC_CONN_ERRORS, 1);
    } else if (cn->state == CONN_OPEN) {
        if (res == 0) {
            rf_listen_chunk c;
            conn_chunk(l, slot, &c, mono, wall);
            emit_ctx e = {l, &c};
            rf_linebuf_finish(&cn->lines, emit_line, &e);
            ctr_add(l, RF_LC_CONN_CLOSED, 1);
        } else {
            if (rf_linebuf_reset(&cn->lines))
                ctr_add(l, RF_LC_PARTIAL_DISCARDED, 1);
            ctr_add(l, res == -ECONNRESET ? RF_LC_CONN_RESET : RF_LC_CONN_ERRORS, 1);
        }
    }
    conn_release(l, slot);
}

static void on_udp(rf_listener *l, const struct io_uring_cqe *cqe, int64_t mono, int64_t wall)
{
    rf_listener_set *set = l->set;
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        l->armed = false;
        if (l->detach_state == ATTACHED) {
            arm_listener(l);
            ctr_add(l, RF_LC_REARMS, 1);
        }
    }
    if (cqe->res == -ECANCELED)
        return; /* the end of a request rf_listener_set_detach cancelled */
    if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
        ctr_add(l, cqe->res == -ENOBUFS ? RF_LC_ENOBUFS : RF_LC_RECV_ERRORS, 1);
        return;
    }
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    void *buf = buf_addr(set, BGID_UDP, bid);
    struct io_uring_recvmsg_out *o = cqe->res >= 0 ? io_uring_recvmsg_validate(buf, cqe->res, &l->msg)
                                                   : NULL;
    if (!o) {
        ctr_add(l, RF_LC_RECV_ERRORS, 1);
        buf_recycle(set, BGID_UDP, bid);
        return;
    }
    int64_t rx_wall = 0;
    for (struct cmsghdr *cm = io_uring_recvmsg_cmsg_firsthdr(o, &l->msg); cm;
         cm = io_uring_recvmsg_cmsg_nexthdr(o, &l->msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET)
            continue;
        if (cm->cmsg_type == SO_RXQ_OVFL) {
            uint32_t drops;
            memcpy(&drops, CMSG_DATA(cm), sizeof(drops));
            ctr_set(l, RF_LC_KERNEL_DROPS, drops);
        } else if (cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            rx_wall = (int64_t)ts.tv_sec * RF_NS_PER_S + ts.tv_nsec;
        }
    }
    if (rx_wall > 0 && rx_wall <= wall) {
        /* The kernel stamps CLOCK_REALTIME; the offset to monotonic time is
         * the one read at this poll. A wall-clock step between receipt and
         * now would skew it: a result in the future or more than 10 s back is
         * not believed, and the poll's own times stand. */
        int64_t rx_mono = mono - (wall - rx_wall);
        if (rx_mono > mono - 10 * RF_NS_PER_S) {
            mono = rx_mono;
            wall = rx_wall;
        }
    }
    rf_listen_chunk c = {
        .fd = -1,
        .data = io_uring_recvmsg_payload(o, &l->msg),
        .len = io_uring_recvmsg_payload_length(o, cqe->res, &l->msg),
        .peer = io_uring_recvmsg_name(o),
        .peer_len = o->namelen > UDP_NAME_BYTES ? UDP_NAME_BYTES : o->namelen,
        .mono_ns = mono,
        .wall_ns = wall,
    };
    if (o->flags & MSG_TRUNC) {
        c.flags |= RF_LISTEN_CHUNK_TRUNCATED;
        ctr_add(l, RF_LC_TRUNCATED, 1);
    }
    ctr_add(l, RF_LC_DATAGRAMS, 1);
    ctr_add(l, RF_LC_BYTES, c.len);
    deliver(l, &c);
    buf_recycle(set, BGID_UDP, bid);
}

static void detach_progress(rf_listener_set *set);

static void idle_scan(rf_listener_set *set, int64_t now)
{
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        rf_listener *l = set->listeners[i];
        if (!l || l->detach_state != ATTACHED || l->cfg.transport != RF_LISTEN_TCP ||
            !l->cfg.idle_timeout_ns ||
            atomic_load_explicit(&l->open, memory_order_relaxed) == 0)
            continue;
        int64_t deadline = now - (int64_t)l->cfg.idle_timeout_ns;
        for (uint32_t s = 0; s < l->cfg.max_connections; s++) {
            rf_conn *cn = &l->conns[s];
            if (cn->state != CONN_OPEN || cn->last_active_ns > deadline)
                continue;
            /* The shutdown wakes the armed recv with 0 bytes; its last
             * completion releases the slot. */
            cn->state = CONN_CLOSING;
            if (rf_linebuf_reset(&cn->lines))
                ctr_add(l, RF_LC_PARTIAL_DISCARDED, 1);
            ctr_add(l, RF_LC_CONN_TIMED_OUT, 1);
            shutdown(cn->fd, SHUT_RDWR);
        }
    }
}

static void accept_retry(rf_listener_set *set, int64_t now)
{
    bool waiting = false;
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        rf_listener *l = set->listeners[i];
        if (!l || !l->accept_retry_ns)
            continue;
        if (l->detach_state != ATTACHED) {
            l->accept_retry_ns = 0; /* being removed: never re-armed */
            continue;
        }
        if (now >= l->accept_retry_ns) {
            l->accept_retry_ns = 0;
            arm_listener(l);
            ctr_add(l, RF_LC_REARMS, 1);
        } else {
            waiting = true;
        }
    }
    set->accept_backoff = waiting;
}

uint32_t rf_listener_set_poll(rf_listener_set *set)
{
    if (!set->started)
        return 0;
    struct io_uring *ring = &set->ring;
    unsigned n = io_uring_peek_batch_cqe(ring, set->cqes, set->opt.cqe_batch);
    if (n == 0 && (IO_URING_READ_ONCE(*ring->sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))) {
        /* Completions are waiting as task work (COOP_TASKRUN) or in the
         * kernel's overflow list: one enter brings them into the CQ. */
        io_uring_get_events(ring);
        n = io_uring_peek_batch_cqe(ring, set->cqes, set->opt.cqe_batch);
    }

    int64_t mono = 0;
    if (n > 0 || set->idle_check_every_ns || set->accept_backoff)
        mono = rf_clock_mono_ns();
    if (n > 0) {
        int64_t wall = rf_clock_wall_ns();
        for (unsigned i = 0; i < n; i++) {
            const struct io_uring_cqe *cqe = set->cqes[i];
            uint64_t ud = cqe->user_data;
            enum ud_kind kind = (enum ud_kind)(ud & 0xff);
            if (kind == UD_WAKE) {
                set->wake_armed = false;
                continue;
            }
            rf_listener *l = set->listeners[(ud >> 8) & 0xffff];
            if (!l)
                continue; /* a removed listener's cancel (see set_insert) */
            switch (kind) {
            case UD_UDP: on_udp(l, cqe, mono, wall); break;
            case UD_ACCEPT: on_accept(l, cqe, mono); break;
            case UD_RECV: on_recv(l, (uint32_t)(ud >> 24), cqe, mono, wall); break;
            default: break;
            }
        }
        io_uring_cq_advance(ring, n);
        /* Publish the recycled buffers before re-arms are submitted below. */
        for (int g = 0; g < BG__COUNT; g++) {
            if (set->bg[g].pending) {
                io_uring_buf_ring_advance(set->bg[g].br, set->bg[g].pending);
                set->bg[g].pending = 0;
            }
        }
        for (uint32_t i = 0; i < set->n_listeners; i++) {
            rf_listener *l = set->listeners[i];
            if (l && l->burst) {
                l->burst = false;
                if (l->cfg.handler.on_burst_end)
                    l->cfg.handler.on_burst_end(l->cfg.handler.ctx, l);
            }
        }
    }
    if (!set->wake_armed) {
        /* Clear before re-arming: a wake after this store writes the eventfd
         * again, one before it found the worker already awake. Pairs with the
         * exchange in rf_listener_set_wake. */
        atomic_store_explicit(&set->wake_pending, 0, memory_order_seq_cst);
        arm_wake(set);
    }
    if (set->accept_backoff)
        accept_retry(set, mono);
    if (set->idle_check_every_ns && mono >= set->next_idle_check_ns) {
        set->next_idle_check_ns = mono + set->idle_check_every_ns;
        idle_scan(set, mono);
    }
    if (set->detaching)
        detach_progress(set);
    if (io_uring_sq_ready(ring))
        io_uring_submit(ring);
    return n;
}

void rf_listener_set_wait(rf_listener_set *set, int64_t timeout_ns)
{
    if (!set->started || timeout_ns <= 0)
        return;
    struct io_uring *ring = &set->ring;
    if (io_uring_cq_ready(ring))
        return;
    struct __kernel_timespec ts = {.tv_sec = timeout_ns / RF_NS_PER_S,
                                   .tv_nsec = timeout_ns % RF_NS_PER_S};
    struct io_uring_cqe *cqe;
    /* Submits anything queued and sleeps for one completion; leaves it for poll. */
    io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
}

void rf_listener_set_wake(rf_listener_set *set)
{
    /* Only the first wake since the owner last re-armed the eventfd read
     * pays for a write. */
    if (atomic_exchange_explicit(&set->wake_pending, 1, memory_order_seq_cst) == 0) {
        uint64_t one = 1;
        ssize_t w = write(set->wake_fd, &one, sizeof(one));
        (void)w; /* EAGAIN only when the counter is saturated: already awake */
    }
}

/* ---- live attach and detach ---------------------------------------------- */

int rf_listener_set_attach(rf_listener_set *set, rf_listener *l, rf_err *err)
{
    if (!set->started)
        return rf_err_set(err, EINVAL, "listener %s: set %s not started", l->cfg.name, set->name);
    int rc;
    const int bgid = l->cfg.transport == RF_LISTEN_UDP ? BGID_UDP : BGID_TCP;
    /* The first listener of its transport in this set brings its buffers. */
    if (!set->bg[bgid].registered &&
        (rc = bufgroup_setup(set, bgid,
                             bgid == BGID_UDP ? set->opt.udp_buffers : set->opt.tcp_buffers,
                             bgid == BGID_UDP ? set->opt.udp_buffer_bytes
                                              : set->opt.tcp_buffer_bytes,
                             err)) < 0)
        return rc;
    if ((rc = set_insert(set, l, err)) < 0)
        return rc;
    arm_listener(l);
    io_uring_submit(&set->ring);
    if (l->component)
        rf_component_transition(l->component, RF_STATE_RUNNING, NULL);
    return 0;
}

/* Reads what is still queued on a removed UDP socket, so that a datagram
 * accepted by the kernel before the removal is parsed, not lost: bounded
 * (the socket stays in its port's group until it is closed, and a sender
 * that keeps sending would keep this going). */
static void udp_drain_queue(rf_listener *l)
{
    enum { MAX_DRAIN = 4096 };
    static _Thread_local char buf[65536];
    for (int i = 0; i < MAX_DRAIN; i++) {
        struct sockaddr_storage peer;
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {.msg_name = &peer, .msg_namelen = sizeof(peer), .msg_iov = &iov,
                            .msg_iovlen = 1};
        ssize_t n = recvmsg(l->fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            return;
        rf_listen_chunk c = {
            .fd = -1,
            .data = buf,
            .len = (size_t)n > sizeof(buf) ? sizeof(buf) : (size_t)n,
            .peer = (const struct sockaddr *)&peer,
            .peer_len = mh.msg_namelen,
            .mono_ns = rf_clock_mono_ns(),
            .wall_ns = rf_clock_wall_ns(),
        };
        if ((size_t)n > sizeof(buf)) {
            c.flags |= RF_LISTEN_CHUNK_TRUNCATED;
            ctr_add(l, RF_LC_TRUNCATED, 1);
        }
        ctr_add(l, RF_LC_DATAGRAMS, 1);
        ctr_add(l, RF_LC_BYTES, c.len);
        deliver(l, &c);
    }
}

int rf_listener_quiesce(rf_listener *l)
{
    if (l->cfg.transport != RF_LISTEN_UDP || l->fd < 0)
        return 0;
    /* A connected UDP socket receives only from its peer: the kernel's
     * lookup skips it for every other sender, so new datagrams go to the
     * port's other sockets or, with none left, count as the host's NoPorts
     * (and their senders get port unreachable). What is queued stays
     * readable. The peer is the socket's own address, port 1. */
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons(1);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
        in6->sin6_port = htons(1);
    }
    return connect(l->fd, (struct sockaddr *)&ss, len) < 0 ? -errno : 0;
}

void rf_listener_set_detach(rf_listener_set *set, rf_listener *l)
{
    if (l->set != set || l->detach_state != ATTACHED)
        return;
    l->detach_state = DETACHING;
    set->detaching++;
    if (l->component)
        rf_component_transition(l->component, RF_STATE_STOPPING, "removed by a reload");
    if (l->armed) {
        struct io_uring_sqe *sqe = get_sqe(set);
        if (sqe) {
            enum ud_kind k = l->cfg.transport == RF_LISTEN_UDP ? UD_UDP : UD_ACCEPT;
            io_uring_prep_cancel64(sqe, ud_pack(k, l->index, 0), 0);
            io_uring_sqe_set_data64(sqe, ud_pack(UD_CANCEL, l->index, 0));
        }
    }
    if (l->cfg.transport == RF_LISTEN_TCP) {
        /* Open connections drain: both sides are shut, so the armed recv
         * delivers what the client had sent and then ends (0 bytes), which
         * releases the slot and closes the connection; a partial last line
         * is discarded and counted (PARTIAL_DISCARDED). Both sides, not the
         * read side only: with our FIN sent and the read side shut, the
         * kernel answers any later data with a reset instead of
         * acknowledging it (RFC 1122 4.2.2.13; tcp_rcv_state_process's
         * FIN_WAIT case), so every byte the client saw acknowledged is in
         * the queue this recv reads and none can arrive between its last
         * read and the close, on any kernel. The loss equation then
         * balances against the sender's acknowledged bytes
         * (rel_loss / test_tcp_*_loses_nothing_uncounted). */
        for (uint32_t i = 0; i < l->cfg.max_connections; i++) {
            rf_conn *cn = &l->conns[i];
            if (cn->state != CONN_OPEN)
                continue;
            cn->state = CONN_DRAINING;
            shutdown(cn->fd, SHUT_RDWR);
        }
    }
    io_uring_submit(&set->ring);
}

/* A detaching listener is closed once nothing of it is armed: its request
 * ended (the cancel's completion, or the last one it posted) and every
 * connection was released. */
static void detach_progress(rf_listener_set *set)
{
    for (uint32_t i = 0; i < set->n_listeners && set->detaching; i++) {
        rf_listener *l = set->listeners[i];
        if (!l || l->detach_state != DETACHING || l->armed ||
            atomic_load_explicit(&l->open, memory_order_relaxed) != 0)
            continue;
        if (l->cfg.transport == RF_LISTEN_TCP && !l->backlog_taken) {
            /* Connections still in the accept queue would be reset by the
             * close with what they sent: taken and drained first, once (a
             * client that keeps connecting must not keep the port open). */
            l->backlog_taken = true;
            /* Its accept is no longer armed: nothing else reads the socket,
             * and a blocking accept4 would wait on an empty queue. */
            fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
            int fd;
            const int64_t now = rf_clock_mono_ns();
            /* Bounded: the queue holds at most the listen backlog, but a
             * client connecting without pause would refill it. */
            for (uint32_t k = 0; k < l->cfg.max_connections + 4096u &&
                                 (fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;
                 k++)
                conn_adopt(l, fd, now);
            if (atomic_load_explicit(&l->open, memory_order_relaxed) != 0)
                continue; /* closed once they are */
        }
        if (l->cfg.transport == RF_LISTEN_UDP) {
            uint64_t drops;
            udp_drain_queue(l);
            if (rf_listener_proc_drops(l, &drops) == 0 &&
                drops > rf_listener_counter(l, RF_LC_KERNEL_DROPS))
                ctr_set(l, RF_LC_KERNEL_DROPS, drops); /* final: the socket goes */
        }
        if (l->burst) {
            l->burst = false;
            if (l->cfg.handler.on_burst_end)
                l->cfg.handler.on_burst_end(l->cfg.handler.ctx, l);
        }
        close(l->fd);
        l->fd = -1;
        l->detach_state = DETACHED;
        set->detaching--;
        if (l->component)
            rf_component_transition(l->component, RF_STATE_STOPPED, "removed by a reload");
        /* Debug: the owner of the set logs it with its worker's name. */
        rf_log_debug(LOG_COMP, "listener %s: removed (port %u closed)", l->cfg.name, l->port);
    }
}

bool rf_listener_detached(const rf_listener *l)
{
    return l->detach_state == DETACHED;
}

void rf_listener_set_remove(rf_listener_set *set, rf_listener *l)
{
    if (l->set != set || l->detach_state != DETACHED || set->listeners[l->index] != l)
        return;
    set->listeners[l->index] = NULL;
    l->set = NULL;
}

int rf_listener_set_wake_with(rf_listener_set *set, rf_listener_set *waiter, rf_err *err)
{
    if (!set->started || !waiter->started)
        return rf_err_set(err, EINVAL, "listener set %s: wake-with %s before both started",
                          set->name, waiter->name);
    int rc = io_uring_register_eventfd(&set->ring, waiter->wake_fd);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener set %s: register eventfd of %s: %s", set->name,
                          waiter->name, strerror(-rc));
    return 0;
}

bool rf_listener_set_pending(const rf_listener_set *set)
{
    if (!set->started)
        return false;
    /* io_uring_cq_ready: acquire load of the kernel's CQ tail (pairs with the
     * kernel's release when it posts). */
    return io_uring_cq_ready(&set->ring) ||
           (IO_URING_READ_ONCE(*set->ring.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

int rf_listener_set_start_op(void *set, rf_err *err) { return rf_listener_set_start(set, err); }
uint32_t rf_listener_set_poll_op(void *set) { return rf_listener_set_poll(set); }
void rf_listener_set_wait_op(void *set, int64_t timeout_ns) { rf_listener_set_wait(set, timeout_ns); }
void rf_listener_set_wake_op(void *set) { rf_listener_set_wake(set); }

/* ---- /proc fallback for drops --------------------------------------------- */

static int proc_drops_in(const char *path, unsigned long ino, uint64_t *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char line[512];
    int rc = -ENOENT;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return rc;
    }
    while (fgets(line, sizeof(line), f)) {
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
        unsigned long inode = 0, drops = 0;
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %lu", &inode, &drops) == 2 &&
            inode == ino) {
            *out = drops;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

int rf_listener_proc_drops(const rf_listener *l, uint64_t *out)
{
    if (l->cfg.transport != RF_LISTEN_UDP)
        return -EINVAL;
    /* First the socket's own drop counter (SO_MEMINFO, Linux 4.6+): exact and
     * race-free. /proc/net/udp is read through a seq_file that can skip an
     * entry while other sockets are created or closed; a skipped entry left
     * only KERNEL_DROPS, which misses the drops after the last datagram read
     * (seen as a few hundred uncounted datagrams in tests/reliability). */
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t mlen = sizeof(mem);
    if (getsockopt(l->fd, SOL_SOCKET, SO_MEMINFO, mem, &mlen) == 0 &&
        mlen > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
        *out = mem[SK_MEMINFO_DROPS];
        return 0;
    }
    struct stat st;
    if (fstat(l->fd, &st) < 0)
        return -errno;
    return proc_drops_in(l->family == AF_INET6 ? "/proc/net/udp6" : "/proc/net/udp",
                         (unsigned long)st.st_ino, out);
}

/* ---- memory bounds (listen.h) ------------------------------------------- */

uint64_t rf_listener_set_memory_bound(const rf_listener_set_options *opt, bool udp, bool tcp)
{
    rf_listener_set_options o = options_with_defaults(opt);
    const uint64_t page = 4096;
    uint64_t b = rf_mem_alloc_bound(sizeof(rf_listener_set)) +
                 rf_mem_alloc_bound((uint64_t)o.cqe_batch * sizeof(struct io_uring_cqe *));
    /* SQ ring (index array), SQEs, CQ ring (CQEs): the kernel's pages, mapped here. */
    b += ((uint64_t)o.sq_entries * (sizeof(struct io_uring_sqe) + 4) + 2 * page) +
         ((uint64_t)o.cq_entries * sizeof(struct io_uring_cqe) + page);
    b += 4 * rf_mem_alloc_bound(sizeof(rf_listener *)); /* the listener array (grows) */
    if (udp)
        b += (((uint64_t)o.udp_buffers * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1)) +
             (uint64_t)o.udp_buffers * o.udp_buffer_bytes;
    if (tcp)
        b += (((uint64_t)o.tcp_buffers * sizeof(struct io_uring_buf) + page - 1) & ~(page - 1)) +
             (uint64_t)o.tcp_buffers * o.tcp_buffer_bytes;
    return b;
}

uint64_t rf_listener_memory_bound(const rf_listener_config *cfg)
{
    uint64_t b = rf_mem_alloc_bound(sizeof(rf_listener));
    if (cfg->transport == RF_LISTEN_TCP) {
        const uint64_t n = cfg->max_connections ? cfg->max_connections : 1024;
        const uint64_t line = cfg->max_line_bytes ? cfg->max_line_bytes : 65536;
        b += rf_mem_alloc_bound(n * sizeof(rf_conn)) + rf_mem_alloc_bound(n * sizeof(uint32_t)) +
             ((n * line + 4095) & ~4095ull);
    }
    return b;
}
