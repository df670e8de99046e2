/* Live changes to a running listener set: attaching a listener, and
 * detaching one without losing what the kernel already accepted for it.
 * Part of ingest/listen (contract in listen.h, shared structs in
 * listen_pvt.h); runs on the set's owning thread. */
#include "ingest/listen/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log/log.h"
#include "ingest/listen/listen_pvt.h"

#define LOG_COMP "listen"

/* ---- live attach and detach ---------------------------------------------- */

int rf_listener_set_attach(rf_listener_set *set, rf_listener *l, rf_err *err)
{
    if (!set->started)
        return rf_err_set(err, EINVAL, "listener %s: set %s not started", l->cfg.name, set->name);
    RF_ASSERT_OWNER(&set->owner);
    int rc;
    const int bgid = l->cfg.transport == RF_LISTEN_UDP ? BGID_UDP : BGID_TCP;
    /* The first listener of its transport in this set brings its buffers. */
    if (!set->bg[bgid].registered &&
        (rc = rf_listen_bufgroup_setup(
             set, bgid, bgid == BGID_UDP ? set->opt.udp_buffers : set->opt.tcp_buffers,
             bgid == BGID_UDP ? set->opt.udp_buffer_bytes : set->opt.tcp_buffer_bytes, err)) < 0)
        return rc;
    if ((rc = rf_listen_set_insert(set, l, err)) < 0)
        return rc;
    rf_listen_arm_listener(l);
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
    enum {
        MAX_DRAIN = 4096
    };
    static _Thread_local char buf[65536];
    for (int i = 0; i < MAX_DRAIN; i++) {
        struct sockaddr_storage peer;
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {
            .msg_name = &peer, .msg_namelen = sizeof(peer), .msg_iov = &iov, .msg_iovlen = 1};
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
        rf_listen_deliver(l, &c);
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
    RF_ASSERT_OWNER(&set->owner);
    if (l->set != set || l->detach_state != ATTACHED)
        return;
    l->detach_state = DETACHING;
    set->detaching++;
    if (l->component)
        rf_component_transition(l->component, RF_STATE_STOPPING, "removed by a reload");
    if (l->armed) {
        struct io_uring_sqe *sqe = rf_listen_get_sqe(set);
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
void rf_listen_detach_progress(rf_listener_set *set)
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
            for (uint32_t k = 0;
                 k < l->cfg.max_connections + 4096u &&
                 (fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;
                 k++)
                rf_listen_conn_adopt(l, fd, now);
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
    RF_ASSERT_OWNER(&set->owner);
    if (l->set != set || l->detach_state != DETACHED || set->listeners[l->index] != l)
        return;
    set->listeners[l->index] = NULL;
    l->set = NULL;
}
