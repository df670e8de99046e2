/* Private to ingest/listen: do not include from other modules (tests may).
 *
 * Line framing of a byte stream (frame.c), kept apart from the socket code so
 * it can be tested byte by byte without sockets.
 *
 * rf_linebuf holds the unterminated tail of a stream between reads, at most
 * `cap` bytes (the line length limit). Invariants: len <= cap; when
 * `discarding` is set, len == 0 and the stream is inside an overlong line
 * whose excerpt was already emitted: bytes are skipped up to the next '\n'. */
#ifndef RF_INGEST_LISTEN_PVT_H
#define RF_INGEST_LISTEN_PVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rf_linebuf {
    char *buf;       /* cap bytes, owned by the caller */
    uint32_t cap;    /* longest line accepted, without '\n' */
    uint32_t len;    /* bytes of the unterminated line held */
    bool discarding; /* skipping the rest of an overlong line */
} rf_linebuf;

/* Receives complete lines (flags 0), an overlong line's excerpt
 * (RF_LISTEN_CHUNK_LINE_TOO_LONG) or the last unterminated line at end of
 * stream (RF_LISTEN_CHUNK_FINAL). */
typedef void (*rf_line_emit_fn)(void *ctx, const char *data, size_t len, uint32_t flags);

/* Frames data[0..n): emits every complete line (runs of lines in place, a line
 * completed from the held tail from buf), keeps the new tail. Returns the
 * number of overlong lines found. */
uint32_t rf_linebuf_feed(rf_linebuf *lb, const char *data, size_t n, rf_line_emit_fn emit,
                         void *ctx);

/* End of stream: emits the held unterminated line, if any (and not inside an
 * overlong line), then resets. Returns 1 when a line was emitted. */
uint32_t rf_linebuf_finish(rf_linebuf *lb, rf_line_emit_fn emit, void *ctx);

/* Forgets the held tail; returns how many bytes were held (0: nothing lost). */
static inline uint32_t rf_linebuf_reset(rf_linebuf *lb)
{
    uint32_t had = lb->len;
    lb->len = 0;
    lb->discarding = false;
    return had;
}

/* ---- the listener set's internals, shared by its files --------------------
 *
 * listen.c (set lifecycle, names, memory bounds), listen_socket.c (opening
 * sockets, /proc drops), listen_uring.c (the ring, buffer rings and the
 * completion dispatch) and listen_live.c (attach and detach while running)
 * all work on these structs. Everything here is owned by the set's thread
 * unless a field says otherwise. */

#include <liburing.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "core/assert/assert.h"
#include "core/clock/clock.h"
#include "core/stats/stats.h"
#include "core/worker/worker.h"
#include "ingest/listen/listen.h"


/* How long a TCP listener waits before accepting again after accept failed
 * (nginx waits 500 ms on EMFILE; connections wait in the backlog meanwhile). */
#define ACCEPT_BACKOFF_NS (100 * RF_NS_PER_MS)

enum {
    BGID_UDP = 0,
    BGID_TCP = 1,
    BG__COUNT = 2
};

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
#define UDP_CTRL_BYTES                                                                             \
    ((unsigned)(CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct timespec))))
#define UDP_HDR_BYTES                                                                              \
    ((unsigned)sizeof(struct io_uring_recvmsg_out) + UDP_NAME_BYTES + UDP_CTRL_BYTES)

/* DRAINING: its listener is being removed; the connection is shut both
 * ways, and what the client sent before is still read and delivered up to
 * the end of the stream (then the connection closes; an unterminated last
 * line is cut by the removal, not ended by the client: discarded and
 * counted). */
enum conn_state {
    CONN_FREE = 0,
    CONN_OPEN = 1,
    CONN_CLOSING = 2,
    CONN_DRAINING = 3
};
enum detach_state {
    ATTACHED = 0,
    DETACHING = 1,
    DETACHED = 2
};

typedef struct rf_conn {
    int fd;
    uint8_t state;          /* enum conn_state */
    int64_t last_active_ns; /* mono time of the last data */
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
    bool burst; /* delivered something during the current poll */
    /* Live removal (rf_listener_set_detach): DETACHING while the cancelled
     * multishot request and the connections wind down, DETACHED once the
     * socket is closed. */
    uint8_t detach_state;
    bool armed;         /* its multishot recvmsg/accept is in the kernel */
    bool backlog_taken; /* TCP, detaching: the accept queue was drained */
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
    _Atomic uint32_t open;   /* written by the owner, read by anyone */
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
    int pending; /* entries added since the last advance */
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

    bool accept_backoff;         /* some listener waits to re-arm its accept */
    uint32_t detaching;          /* listeners being removed (rf_listener_set_detach) */
    int64_t idle_check_every_ns; /* 0: no TCP listener has an idle timeout */
    int64_t next_idle_check_ns;
    rf_owner owner; /* the thread that started the set (listen.h "Shape") */
};

static inline void ctr_add(rf_listener *l, enum rf_listen_counter_id id, uint64_t n)
{
    rf_stats_add(&l->ctr[id], n); /* single writer: the owning thread */
}

static inline void ctr_set(rf_listener *l, enum rf_listen_counter_id id, uint64_t v)
{
    atomic_store_explicit(&l->ctr[id], v, memory_order_relaxed);
}

/* Set lifecycle (listen.c): closes a TCP listener's connections and frees
 * its tables; the listener itself stays. */
void rf_listen_conn_teardown(rf_listener *l);

/* Sockets (listen_socket.c). Puts an opened listener into the set's table,
 * reusing a slot rf_listener_set_remove emptied; called by the thread that
 * owns the set at that moment (the control thread before start, the owner
 * after). 0, -ENOSPC or -ENOMEM. */
int rf_listen_set_insert(rf_listener_set *set, rf_listener *l, rf_err *err);

/* Ring and completions (listen_uring.c); all on the set's owning thread,
 * after its ring exists. */
/* Registers buffer group bgid (BGID_UDP or BGID_TCP) of count buffers (a
 * power of two) of size bytes; once per group. 0 or -errno. */
int rf_listen_bufgroup_setup(rf_listener_set *set, int bgid, uint32_t count, uint32_t size,
                             rf_err *err);
/* An SQE, submitting what is queued when the SQ is full; NULL when the
 * kernel refused (the caller counts it). */
struct io_uring_sqe *rf_listen_get_sqe(rf_listener_set *set);
/* Arms l's multishot recvmsg (UDP) or accept (TCP); without an SQE, counts a
 * recv error and retries after the accept back-off. */
void rf_listen_arm_listener(rf_listener *l);
/* Hands a chunk to l's handler and marks l as having a burst to end. */
void rf_listen_deliver(rf_listener *l, rf_listen_chunk *c);
/* Takes accepted connection fd into a free slot and arms its recv, or
 * closes and counts it past the connection caps. */
void rf_listen_conn_adopt(rf_listener *l, int fd, int64_t mono);

/* Live changes (listen_live.c): closes the detaching listeners nothing of
 * which is armed any more; called by the poll. */
void rf_listen_detach_progress(rf_listener_set *set);

#endif
