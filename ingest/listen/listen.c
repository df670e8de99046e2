/* UDP and TCP listeners on one io_uring per owning thread. The contract is in
 * listen.h; the private structs shared by this module's files are in
 * listen_pvt.h. This file holds the names and accessors, the set's lifecycle
 * and the memory bounds; the sockets are in listen_socket.c, the ring and the
 * completion dispatch in listen_uring.c, live attach and detach in
 * listen_live.c. */
#include "ingest/listen/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/mem/bound.h"
#include "ingest/listen/listen_pvt.h"

/* ---- small helpers ------------------------------------------------------ */

static const char *const transport_names[] = {"udp", "tcp"};
static const char *const protocol_names[] = {"influx_line", "statsd", "graphite", "http",
                                             "collectd"};
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

const char *rf_listener_name(const rf_listener *l)
{
    return l->cfg.name;
}
const rf_listener_config *rf_listener_config_of(const rf_listener *l)
{
    return &l->cfg;
}
uint16_t rf_listener_port(const rf_listener *l)
{
    return l->port;
}
int rf_listener_rcvbuf_granted(const rf_listener *l)
{
    return l->rcvbuf_granted;
}
unsigned rf_listener_set_count(const rf_listener_set *set)
{
    return set->n_listeners;
}

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

static bool is_pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

/* The set options with every zero field at its default (listen.h). */
static rf_listener_set_options options_with_defaults(const rf_listener_set_options *opt)
{
    rf_listener_set_options o = opt ? *opt : (rf_listener_set_options){0};
    if (!o.sq_entries)
        o.sq_entries = 256;
    if (!o.cq_entries)
        o.cq_entries = 4096;
    if (!o.cqe_batch)
        o.cqe_batch = 256;
    if (!o.udp_buffers)
        o.udp_buffers = 256;
    if (!o.udp_buffer_bytes)
        o.udp_buffer_bytes = 65536 + UDP_HDR_BYTES;
    if (!o.tcp_buffers)
        o.tcp_buffers = 256;
    if (!o.tcp_buffer_bytes)
        o.tcp_buffer_bytes = 16384;
    return o;
}

int rf_listener_set_new(rf_listener_set **out, const char *name, const rf_listener_set_options *opt,
                        rf_err *err)
{
    *out = NULL;
    rf_listener_set_options o = options_with_defaults(opt);
    if (!is_pow2(o.udp_buffers) || !is_pow2(o.tcp_buffers) || o.udp_buffers > 32768 ||
        o.tcp_buffers > 32768)
        return rf_err_set(err, EINVAL,
                          "listener set %s: buffer counts must be powers of two "
                          "up to 32768 (udp %u, tcp %u)",
                          name, o.udp_buffers, o.tcp_buffers);
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

void rf_listen_conn_teardown(rf_listener *l)
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
        rf_listen_conn_teardown(l);
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
