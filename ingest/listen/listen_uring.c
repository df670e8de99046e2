/* UDP and TCP listeners on one io_uring per owning thread. The contract is in
 * listen.h; this file holds the ring, the buffer rings and the completion
 * dispatch (sockets: listen_socket.c; live changes: listen_live.c).
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

#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log/log.h"
#include "ingest/listen/listen_pvt.h"

#define LOG_COMP "listen"

/* ---- ring setup --------------------------------------------------------- */

int rf_listen_bufgroup_setup(rf_listener_set *set, int bgid, uint32_t count, uint32_t size,
                             rf_err *err)
{
    rf_bufgroup *g = &set->bg[bgid];
    long page = sysconf(_SC_PAGESIZE);
    g->count = count;
    g->size = size;
    g->mask = io_uring_buf_ring_mask(count);
    g->ring_bytes =
        ((size_t)count * sizeof(struct io_uring_buf) + (size_t)page - 1) & ~((size_t)page - 1);
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
        io_uring_buf_ring_add(g->br, g->mem + (size_t)i * size, size, (unsigned short)i, g->mask,
                              (int)i);
    io_uring_buf_ring_advance(g->br, (int)count);
    return 0;
}

static inline void buf_recycle(rf_listener_set *set, int bgid, uint16_t bid)
{
    rf_bufgroup *g = &set->bg[bgid];
    io_uring_buf_ring_add(g->br, g->mem + (size_t)bid * g->size, g->size, bid, g->mask,
                          g->pending++);
}

static inline void *buf_addr(rf_listener_set *set, int bgid, uint16_t bid)
{
    return set->bg[bgid].mem + (size_t)bid * set->bg[bgid].size;
}

/* An SQE, submitting what is queued when the SQ is full (only under a burst
 * of re-arms larger than the SQ). NULL means the kernel refused: the caller
 * counts it. */
struct io_uring_sqe *rf_listen_get_sqe(rf_listener_set *set)
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
    struct io_uring_sqe *sqe = rf_listen_get_sqe(set);
    if (!sqe) {
        rf_log_error(LOG_COMP, "listener set %s: no SQE to arm the wake-up", set->name);
        return;
    }
    io_uring_prep_read(sqe, set->wake_fd, &set->wake_value, sizeof(set->wake_value), 0);
    io_uring_sqe_set_data64(sqe, ud_pack(UD_WAKE, 0, 0));
    set->wake_armed = true;
}

void rf_listen_arm_listener(rf_listener *l)
{
    struct io_uring_sqe *sqe = rf_listen_get_sqe(l->set);
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
    struct io_uring_sqe *sqe = rf_listen_get_sqe(l->set);
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
    /* The owner is the thread that starts the set; every later call is its. */
    RF_ASSERT_OWNER(&set->owner);
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
        return rf_err_set(err, -rc, "listener set %s: io_uring_setup: %s", set->name,
                          strerror(-rc));
    set->ring_ready = true;

    bool udp = false, tcp = false;
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        udp |= set->listeners[i]->cfg.transport == RF_LISTEN_UDP;
        tcp |= set->listeners[i]->cfg.transport == RF_LISTEN_TCP;
    }
    if (udp && (rc = rf_listen_bufgroup_setup(set, BGID_UDP, set->opt.udp_buffers,
                                              set->opt.udp_buffer_bytes, err)) < 0)
        return rc;
    if (tcp && (rc = rf_listen_bufgroup_setup(set, BGID_TCP, set->opt.tcp_buffers,
                                              set->opt.tcp_buffer_bytes, err)) < 0)
        return rc;

    arm_wake(set);
    for (uint32_t i = 0; i < set->n_listeners; i++)
        rf_listen_arm_listener(set->listeners[i]);
    rc = io_uring_submit(&set->ring);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener set %s: io_uring_submit: %s", set->name,
                          strerror(-rc));
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

void rf_listen_deliver(rf_listener *l, rf_listen_chunk *c)
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
    rf_listen_deliver(e->l, e->chunk);
}

static void conn_chunk(rf_listener *l, uint32_t slot, rf_listen_chunk *c, int64_t mono,
                       int64_t wall)
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
void rf_listen_conn_adopt(rf_listener *l, int fd, int64_t mono)
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
    /* Single writer (the owner): relaxed load + store, as rf_stats_add. */
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
            rf_listen_conn_adopt(l, cqe->res, mono);
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
        rf_listen_arm_listener(l);
        ctr_add(l, RF_LC_REARMS, 1);
    }
    rf_listen_conn_adopt(l, cqe->res, mono);
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
                if (l->cfg.handler.on_stream(l->cfg.handler.ctx, l, &c) && cn->state == CONN_OPEN) {
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
            rf_listen_arm_listener(l);
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
    struct io_uring_recvmsg_out *o =
        cqe->res >= 0 ? io_uring_recvmsg_validate(buf, cqe->res, &l->msg) : NULL;
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
    rf_listen_deliver(l, &c);
    buf_recycle(set, BGID_UDP, bid);
}

static void idle_scan(rf_listener_set *set, int64_t now)
{
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        rf_listener *l = set->listeners[i];
        if (!l || l->detach_state != ATTACHED || l->cfg.transport != RF_LISTEN_TCP ||
            !l->cfg.idle_timeout_ns || atomic_load_explicit(&l->open, memory_order_relaxed) == 0)
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
            rf_listen_arm_listener(l);
            ctr_add(l, RF_LC_REARMS, 1);
        } else {
            waiting = true;
        }
    }
    set->accept_backoff = waiting;
}

uint32_t rf_listener_set_poll(rf_listener_set *set)
{
    RF_ASSERT_OWNER(&set->owner);
    if (!set->started)
        return 0;
    struct io_uring *ring = &set->ring;
    unsigned n = io_uring_peek_batch_cqe(ring, set->cqes, set->opt.cqe_batch);
    if (n == 0 &&
        (IO_URING_READ_ONCE(*ring->sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW))) {
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
        rf_listen_detach_progress(set);
    if (io_uring_sq_ready(ring))
        io_uring_submit(ring);
    return n;
}

static bool set_has_open_conns(const rf_listener_set *set)
{
    for (uint32_t i = 0; i < set->n_listeners; i++) {
        const rf_listener *l = set->listeners[i];
        /* Relaxed: `open` is written by this (the owning) thread. */
        if (l && l->cfg.transport == RF_LISTEN_TCP && l->cfg.idle_timeout_ns &&
            atomic_load_explicit(&l->open, memory_order_relaxed) != 0)
            return true;
    }
    return false;
}

void rf_listener_set_wait(rf_listener_set *set, int64_t timeout_ns)
{
    RF_ASSERT_OWNER(&set->owner);
    if (!set->started || timeout_ns <= 0)
        return;
    struct io_uring *ring = &set->ring;
    if (io_uring_cq_ready(ring))
        return;
    if (set->idle_check_every_ns && set_has_open_conns(set)) {
        /* An open connection's idle timeout is checked at the poll after
         * next_idle_check_ns: the wait ends then, not at the worker's
         * longer bound (idle.sleep). */
        int64_t left = set->next_idle_check_ns - rf_clock_mono_ns();
        if (left <= 0)
            return;
        if (left < timeout_ns)
            timeout_ns = left;
    }
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

int rf_listener_set_start_op(void *set, rf_err *err)
{
    return rf_listener_set_start(set, err);
}
uint32_t rf_listener_set_poll_op(void *set)
{
    return rf_listener_set_poll(set);
}
void rf_listener_set_wait_op(void *set, int64_t timeout_ns)
{
    rf_listener_set_wait(set, timeout_ns);
}
void rf_listener_set_wake_op(void *set)
{
    rf_listener_set_wake(set);
}
