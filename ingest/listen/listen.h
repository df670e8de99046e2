/* Socket listeners on io_uring: UDP and TCP sources that hand raw bytes to a
 * handler, with no allocation and no syscall per datagram or line.
 *
 * Shape
 *   A listener set is one io_uring owned by one thread (a pinned worker). It
 *   holds several listeners (sockets) and is driven from that thread's poll
 *   loop:
 *
 *     control thread                        owning thread (worker)
 *     --------------                        ----------------------
 *     rf_listener_set_new()
 *     rf_listener_add() x N   (socket, bind: errors reported here)
 *                                           rf_listener_set_start()   ops.start
 *                                           rf_listener_set_poll()    ops.poll
 *                                           rf_listener_set_wait()    ops.wait
 *     rf_listener_set_wake()  (any thread)                            ops.wake
 *     rf_listener_counter()   (any thread, relaxed reads)
 *     rf_listener_set_free()  (after the owner stopped polling)
 *
 *   The ring is created by rf_listener_set_start() on the owning thread
 *   (IORING_SETUP_SINGLE_ISSUER, so the kernel holds us to it), which also
 *   allocates the receive buffers there (first touch: memory on the worker's
 *   NUMA node). rf_listener_add works before start only; a reload attaches
 *   and detaches listeners on a set that is already polled (see "Live
 *   changes" below).
 *
 * Receive path
 *   UDP: one multishot recvmsg per socket into a provided-buffer ring (buffer
 *   group 0): the kernel picks a buffer per datagram and posts one completion;
 *   nothing is submitted per packet. Each datagram is delivered whole, with its
 *   source address, as one chunk. The socket has SO_REUSEPORT (one socket per
 *   worker on the same port; the kernel spreads flows by 4-tuple hash),
 *   SO_TIMESTAMPNS (each datagram's receipt time, see rf_listen_chunk.mono_ns)
 *   and SO_RXQ_OVFL: the kernel's cumulative drop count arrives in a cmsg on
 *   the first datagram queued after a drop and is published as KERNEL_DROPS.
 *   A datagram larger than the buffer (see rf_listener_set_options) is
 *   truncated, flagged RF_LISTEN_CHUNK_TRUNCATED and counted; with the default
 *   buffer size every UDP datagram fits.
 *
 *   TCP: one multishot accept per socket; one multishot recv per connection
 *   from buffer group 1 (shared by all connections of the set). Bytes are
 *   framed into lines: the handler receives only complete lines, and a line
 *   split across reads is delivered once, whole (copied into a per-connection
 *   line buffer of max_line_bytes; lines wholly inside one read are passed in
 *   place, without a copy). A line longer than max_line_bytes is cut: its
 *   first bytes are handed over once flagged RF_LISTEN_CHUNK_LINE_TOO_LONG
 *   (for the reject log, never to be parsed), LINES_TOO_LONG is counted, and
 *   the connection resynchronises after the next '\n'.
 *   End of stream (the peer closed or half-closed its side): an unterminated
 *   last line is delivered (flag RF_LISTEN_CHUNK_FINAL), as InfluxDB and
 *   Graphite do, then the connection is closed. A reset (ECONNRESET) discards
 *   the unterminated line (the client aborted mid-line) and counts RESET.
 *   Connections beyond max_connections are accepted and closed at once
 *   (REFUSED), and so are those of a peer address that already holds
 *   max_connections_per_source (REFUSED_SOURCE). A connection silent for
 *   idle_timeout_ns is shut down (partial line discarded, TIMED_OUT); the
 *   check runs in poll, at a granularity of idle_timeout/8 (1 ms .. 1 s), so
 *   a worker must poll or wake at least that often for the timeout to be on
 *   time (its sleep_max_ns bounds it).
 *
 *   Accept failures (EMFILE, ENFILE) pause accepting for 100 ms instead of
 *   spinning; clients wait in the listen backlog meanwhile. Note that io_uring
 *   reads RLIMIT_NOFILE when an accept is submitted: a raised limit applies
 *   from the next re-arm.
 *
 *   Buffers return to their ring right after the handler returns, in one
 *   batch per poll. When the ring runs dry the kernel ends the multishot
 *   operation with ENOBUFS: counted, and re-armed after the buffers of the
 *   batch are back. ENOBUFS is back-pressure, not loss: the data waits in the
 *   socket buffer (UDP loss shows as KERNEL_DROPS); frequent ENOBUFS means the
 *   owner fell behind by more than the ring holds (raise udp_buffers or
 *   tcp_buffers). Any multishot operation that ends (a completion without
 *   IORING_CQE_F_MORE) is re-armed and counted in REARMS.
 *
 * Wake-up
 *   rf_listener_set_wait() blocks in io_uring_enter until a completion, the
 *   timeout, or rf_listener_set_wake() from another thread (an eventfd whose
 *   read is always armed in the ring). Repeated wakes before the owner runs
 *   cost one atomic exchange each; only the first writes the eventfd.
 *
 * Errors are negative errno with an rf_err sentence ("listener lp-udp: bind
 * 127.0.0.1:8089: Address already in use"). */
#ifndef RF_INGEST_LISTEN_H
#define RF_INGEST_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/error/error.h"
#include "core/auth/auth.h"
#include "core/tls/tls.h"

#define RF_LISTENER_NAME_MAX 48
#define RF_LISTENER_ADDR_MAX 46 /* INET6_ADDRSTRLEN */
/* "[ffff:...:ffff]:65535" plus NUL. */
#define RF_LISTEN_ADDR_TEXT_MAX 56

enum rf_listen_transport {
    RF_LISTEN_UDP = 0,
    RF_LISTEN_TCP = 1,
};

/* Which parser the lead maps the listener to; the listener itself never
 * looks at the bytes beyond '\n'. */
enum rf_listen_protocol {
    RF_LISTEN_PROTO_INFLUX_LINE = 0,
    RF_LISTEN_PROTO_STATSD = 1,
    RF_LISTEN_PROTO_GRAPHITE = 2,
    RF_LISTEN_PROTO_HTTP = 3,     /* TCP only; bytes go to on_stream unframed (ingest/http) */
    RF_LISTEN_PROTO_COLLECTD = 4, /* UDP only; collectd's binary network protocol */
};

const char *rf_listen_transport_name(enum rf_listen_transport t); /* "udp", "tcp" */
const char *rf_listen_protocol_name(enum rf_listen_protocol p);   /* "influx_line", ... */

typedef struct rf_listener rf_listener;
typedef struct rf_listener_set rf_listener_set;

/* Chunk flags. */
enum {
    /* UDP: the datagram was larger than the buffer; data holds its first bytes. */
    RF_LISTEN_CHUNK_TRUNCATED = 1u << 0,
    /* TCP: data is the first bytes of a line longer than max_line_bytes; the
     * rest of the line was discarded. For the reject log only. */
    RF_LISTEN_CHUNK_LINE_TOO_LONG = 1u << 1,
    /* TCP: the stream ended; data is its last line, without '\n'. */
    RF_LISTEN_CHUNK_FINAL = 1u << 2,
};

/* What the handler receives. Valid only during the call. */
typedef struct rf_listen_chunk {
    /* UDP: one datagram. TCP: one or more complete lines ("\n"-terminated,
     * except with RF_LISTEN_CHUNK_FINAL and when a line was completed from the
     * line buffer, which is handed over without its '\n'). */
    const char *data;
    size_t len;
    /* The sender (UDP) or peer (TCP). */
    const struct sockaddr *peer;
    socklen_t peer_len;
    /* TCP: the peer as "ip:port", formatted once at accept. UDP: NULL (format
     * with rf_listen_addr_format only when needed, e.g. on a rejected line). */
    const char *peer_text;
    /* Receipt time. UDP: the kernel's receipt of the datagram (SO_TIMESTAMPNS,
     * taken to monotonic time with the offset read at the poll), so time in
     * the socket queue and the completion queue counts; TCP (and UDP when the
     * kernel gave no stamp): read once per poll batch (vDSO, no syscall). */
    int64_t mono_ns;
    int64_t wall_ns;
    /* TCP: connection slot, stable while the connection lives (per-connection
     * state kept by the handler can be indexed by it). UDP: 0. */
    uint32_t conn;
    uint32_t flags; /* RF_LISTEN_CHUNK_* */
    /* TCP: the connection's socket, for a stream handler that answers
     * (non-blocking writes only; the listener owns and closes it). UDP: -1. */
    int fd;
} rf_listen_chunk;

typedef struct rf_listen_handler {
    /* Called on the owning thread for every chunk. Must not call back into
     * the listener set. */
    void (*on_data)(void *ctx, const rf_listener *l, const rf_listen_chunk *chunk);
    /* Optional: after the last chunk of a poll for this listener (e.g. to call
     * rf_parse_flush once per burst). */
    void (*on_burst_end)(void *ctx, const rf_listener *l);
    /* Optional, TCP: when set, each read of a connection is handed over as
     * received, unframed (no line buffer; on_data is not called for it):
     * for protocols with framing of their own (HTTP). Returns 0 to go on,
     * 1 to end the connection: its write side is shut (what the handler
     * wrote goes out first), and the slot is freed when the peer closes or
     * the idle timeout ends it. */
    int (*on_stream)(void *ctx, const rf_listener *l, const rf_listen_chunk *chunk);
    /* Optional, TCP: the connection in slot `conn` is gone (per-connection
     * state kept by the handler can be freed). */
    void (*on_conn_end)(void *ctx, const rf_listener *l, uint32_t conn);
    void *ctx;
} rf_listen_handler;

/* protocol http, `otlp:` (ingest/http/http.h, OTLP): which resource and
 * scope attributes become tags. n_resource names first, then n_scope;
 * resource_set false: the receiver's default resource list. A name "*"
 * keeps every attribute of its kind. Zeroed by rf_listener_config_init, so
 * two configurations compare with memcmp. */
#define RF_LISTEN_OTLP_ATTRS_MAX 16u
#define RF_LISTEN_OTLP_ATTR_LEN 64u
typedef struct rf_listen_otlp_config {
    bool resource_set;
    uint8_t n_resource, n_scope;
    char names[RF_LISTEN_OTLP_ATTRS_MAX][RF_LISTEN_OTLP_ATTR_LEN];
} rf_listen_otlp_config;

typedef struct rf_listener_config {
    char name[RF_LISTENER_NAME_MAX]; /* used in logs, errors and stats */
    enum rf_listen_transport transport;
    char address[RF_LISTENER_ADDR_MAX]; /* IPv4 or IPv6 literal; non-loopback logs a warning */
    uint16_t port;                      /* 0: an ephemeral port (tests); see rf_listener_port */
    enum rf_listen_protocol protocol;
    uint32_t rcvbuf_bytes;    /* SO_RCVBUF request; 0 = kernel default */
    uint32_t max_connections; /* TCP; 0 = 1024 */
    uint32_t max_line_bytes;  /* TCP, without '\n'; 0 = 65536 */
    uint64_t idle_timeout_ns; /* TCP; 0 = never */
    /* TCP: connections one peer address may hold open at once on this
     * socket; 0 = no limit (max_connections only). */
    uint32_t max_connections_per_source;
    /* Which workers open a socket for this listener (bit i = worker i; 0 =
     * all). Read by whoever builds the sets; the listener ignores it. */
    uint64_t worker_mask;
    /* `class: critical`: a lane of its own for what must not wait behind
     * routine traffic. Read by whoever builds the sets (the engine gives
     * these listeners a set of their own, polled first); the listener
     * ignores it. */
    bool critical;
    /* protocol graphite: its templates (`templates`, `separator`, `tags`),
     * or NULL. Read by whoever makes the parse contexts; the listener
     * ignores it. Compiled once per distinct set and kept for the process
     * (listen_config.c), so equal configurations share one pointer. */
    const struct rf_graphite_templates *graphite_templates;
    rf_listen_otlp_config otlp; /* protocol http; read by whoever builds the http front */
    /* protocol http: `tls:` and `auth:` (core/tls, core/auth), applied by
     * ingest/http (rf_http_security_apply); the listener ignores them. */
    rf_tls_config tls;
    rf_auth_config auth;
    rf_listen_handler handler;
} rf_listener_config;

/* Fills the defaults above (name, address 127.0.0.1, ...); the caller sets at
 * least transport, port, protocol and handler. */
void rf_listener_config_init(rf_listener_config *cfg);

/* Per-set resources. Zero fields take the defaults. */
typedef struct rf_listener_set_options {
    uint32_t sq_entries;       /* 256 */
    uint32_t cq_entries;       /* 4096 */
    uint32_t cqe_batch;        /* completions reaped per poll: 256 */
    uint32_t udp_buffers;      /* power of two: 256 */
    uint32_t udp_buffer_bytes; /* 65536 + header: any datagram fits; smaller truncates */
    uint32_t tcp_buffers;      /* power of two: 256 */
    uint32_t tcp_buffer_bytes; /* 16384 */
} rf_listener_set_options;

/* Memory, at most (rf_mem_alloc_bound rounding), for the daemon's budget:
 *   - a set with these options (NULL: defaults) once started: the io_uring
 *     queues (mapped from the kernel), the completion batch, and the
 *     provided buffers of each kind it has listeners of (udp_buffers x
 *     udp_buffer_bytes, tcp_buffers x tcp_buffer_bytes), touched by the
 *     kernel as data lands;
 *   - one listener: itself and, for TCP, its connection table and one
 *     max_line_bytes line buffer per connection (reserved lazily, backed
 *     only while a connection holds a partial line there: the bound is every
 *     connection holding one). */
uint64_t rf_listener_set_memory_bound(const rf_listener_set_options *opt, bool udp, bool tcp);
uint64_t rf_listener_memory_bound(const rf_listener_config *cfg);

/* Creates an empty set (control thread). opt may be NULL. */
int rf_listener_set_new(rf_listener_set **out, const char *name, const rf_listener_set_options *opt,
                        rf_err *err);

/* Opens and binds the listener's socket (control thread, before start).
 * Returns 0, or -EINVAL (bad config), -EADDRINUSE..., -EBUSY (set started),
 * -ENOSPC (more than 65535 listeners) with err filled. *out may be NULL. */
int rf_listener_add(rf_listener_set *set, const rf_listener_config *cfg, rf_listener **out,
                    rf_err *err);

/* Live changes (a reload). The control thread opens and binds a listener
 * outside any set (rf_listener_open: errors are reported there, before
 * anything changes); the owning thread then attaches it to its started set
 * (rf_listener_set_attach: arms it; the first listener of a transport
 * registers that transport's buffers). Removal runs on the owning thread:
 * rf_listener_set_detach cancels the listener's request and ends its TCP
 * connections: shut both ways, what the client had sent (every byte the
 * kernel acknowledged) is still delivered, later bytes are reset by the
 * kernel, the unterminated last line is discarded and counted
 * (PARTIAL_DISCARDED), as an idle timeout does; later polls finish it: a UDP socket's queue is read out (so what
 * the kernel accepted before the removal is delivered), then the socket is
 * closed and rf_listener_detached turns true. A detached listener keeps its
 * counters and stays in the set (its memory is freed with the set), so
 * readers never see it vanish, until rf_listener_set_remove takes it out.
 * rf_listener_close frees a listener that was opened and never attached,
 * or removed (control thread: it unregisters the listener's component). */
int rf_listener_open(const rf_listener_config *cfg, rf_listener **out, rf_err *err);
void rf_listener_close(rf_listener *l);
int rf_listener_set_attach(rf_listener_set *set, rf_listener *l, rf_err *err);
void rf_listener_set_detach(rf_listener_set *set, rf_listener *l);
bool rf_listener_detached(const rf_listener *l);
/* Owning thread, once rf_listener_detached(l): takes l out of its set for
 * good (its slot is reused by a later attach), so the set no longer frees
 * it. l keeps its counters and stays valid until rf_listener_close, which
 * the control thread calls once the owner is done with it (a reload's
 * removed listener: daemon/worker_shard.c). */
void rf_listener_set_remove(rf_listener_set *set, rf_listener *l);
/* Before detaching a UDP listener for good (the daemon stopping): the
 * socket stops taking new datagrams (it is connected to its own address,
 * port 1, so the kernel delivers other senders' datagrams to the port's
 * other sockets, or counts them as the host's Udp NoPorts), while what is
 * queued stays readable; the detach then reads the queue to its end, with
 * no window in which an accepted datagram can be lost uncounted. Not for a
 * reload that keeps the port: connecting one socket of a SO_REUSEPORT group
 * makes the kernel stop hashing the group's traffic over its sockets (the
 * group is marked as having connected sockets for good). Any thread that
 * owns the listener; TCP: no-op. Returns 0 or a negative errno. */
int rf_listener_quiesce(rf_listener *l);

/* On the owning thread: creates the ring, registers the buffer rings, arms
 * the listeners. Returns 0 or a negative errno with err filled. */
int rf_listener_set_start(rf_listener_set *set, rf_err *err);

/* Owning thread. Non-blocking: reaps up to cqe_batch completions (no syscall
 * when nothing is pending), calls the handlers, recycles buffers, re-arms
 * what ended, closes idle connections, and submits at most once. Returns the
 * number of completions handled (0 = idle). 0 before start. */
uint32_t rf_listener_set_poll(rf_listener_set *set);

/* Owning thread: blocks until a completion is pending, timeout_ns passed
 * (<= 0: does not block), or rf_listener_set_wake. Does not consume
 * completions: poll does. Fits rf_worker_ops.wait. */
void rf_listener_set_wait(rf_listener_set *set, int64_t timeout_ns);

/* Any thread: makes a pending or the next rf_listener_set_wait return. Fits
 * rf_worker_ops.wake. */
void rf_listener_set_wake(rf_listener_set *set);

/* For a thread that polls two sets but sleeps in one: after both started, on
 * the owning thread, every completion posted to `set` also ends a wait in
 * `waiter` (the kernel signals waiter's wake-up eventfd, registered on set's
 * ring). Returns 0 or a negative errno with err filled. */
int rf_listener_set_wake_with(rf_listener_set *set, rf_listener_set *waiter, rf_err *err);

/* Owning thread: whether rf_listener_set_poll would find work now (a
 * completion in the queue, or task work / overflow the kernel holds for it).
 * A few loads, no syscall: cheap enough to ask between datagrams of another
 * set. */
bool rf_listener_set_pending(const rf_listener_set *set);

/* Closes every socket and connection and frees the set (no thread may be
 * polling it). Safe on NULL. */
void rf_listener_set_free(rf_listener_set *set);

/* Adapters with the rf_worker_ops signatures (ctx = the set), for a worker
 * that only listens; a worker that also runs stages calls the functions
 * above from its own ops. */
int rf_listener_set_start_op(void *set, rf_err *err);
uint32_t rf_listener_set_poll_op(void *set);
void rf_listener_set_wait_op(void *set, int64_t timeout_ns);
void rf_listener_set_wake_op(void *set);

unsigned rf_listener_set_count(const rf_listener_set *set);
rf_listener *rf_listener_set_at(rf_listener_set *set, unsigned i);

const char *rf_listener_name(const rf_listener *l);
const rf_listener_config *rf_listener_config_of(const rf_listener *l);
/* The bound port (useful with port 0). */
uint16_t rf_listener_port(const rf_listener *l);
/* SO_RCVBUF as the kernel granted it (getsockopt; Linux reports twice the
 * usable payload). A request above net.core.rmem_max is capped unless the
 * process has CAP_NET_ADMIN (SO_RCVBUFFORCE is tried first); a warning is
 * logged when the grant is below the request. */
int rf_listener_rcvbuf_granted(const rf_listener *l);

/* Counters: written only by the owning thread, read from any thread with
 * relaxed loads (each value exact and monotonic; not a consistent snapshot). */
enum rf_listen_counter_id {
    RF_LC_DATAGRAMS = 0, /* UDP datagrams delivered */
    RF_LC_READS,         /* TCP receive completions with data */
    RF_LC_BYTES,         /* payload bytes received */
    RF_LC_TRUNCATED,     /* UDP datagrams larger than a buffer */
    RF_LC_CONN_ACCEPTED,
    RF_LC_CONN_REFUSED,        /* over max_connections: accepted and closed */
    RF_LC_CONN_REFUSED_SOURCE, /* over max_connections_per_source: accepted and closed */
    RF_LC_CONN_CLOSED,         /* ended by the peer (EOF) */
    RF_LC_CONN_RESET,          /* ended by ECONNRESET */
    RF_LC_CONN_TIMED_OUT,      /* closed for idleness */
    RF_LC_CONN_ERRORS,         /* ended by another receive error */
    RF_LC_ACCEPT_ERRORS,       /* accept failures (EMFILE, ...): accept pauses 100 ms */
    RF_LC_LINES_TOO_LONG,
    RF_LC_PARTIAL_DISCARDED, /* unterminated lines lost to a reset or timeout */
    RF_LC_KERNEL_DROPS,      /* UDP: latest SO_RXQ_OVFL value (cumulative, kernel's count) */
    RF_LC_ENOBUFS,           /* multishot ended because the buffer ring was empty */
    RF_LC_REARMS,            /* multishot operations re-submitted */
    RF_LC_RECV_ERRORS,       /* UDP receive errors, malformed completions */
    RF_LC__COUNT
};
const char *rf_listen_counter_name(enum rf_listen_counter_id id); /* "datagrams", ... */
uint64_t rf_listener_counter(const rf_listener *l, enum rf_listen_counter_id id);
/* TCP connections open now (relaxed read). */
uint32_t rf_listener_connections(const rf_listener *l);

/* UDP fallback for drops: the socket's drop counter (SO_MEMINFO), or when
 * that is unavailable the "drops" column of /proc/net/udp{,6} for this
 * socket's inode (control thread). Counts the same thing as KERNEL_DROPS but
 * also drops that no later datagram reported yet. Returns 0 and *out,
 * -ENOENT when the socket is not listed, -EINVAL for TCP. */
int rf_listener_proc_drops(const rf_listener *l, uint64_t *out);

/* Formats an AF_INET/AF_INET6 address as "1.2.3.4:5" or "[::1]:5". Returns buf. */
const char *rf_listen_addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* ---- configuration ------------------------------------------------------ */

typedef struct rf_cfg_node rf_cfg_node;

/* Parses a `listeners:` list (from rf_cfg_seq; NULL or empty = the defaults
 * below) into out[0..cap), *n_out set. Each item:
 *   name: text                       default "<protocol>-<transport>"
 *   transport: udp | tcp             required
 *   protocol: influx_line | statsd | graphite | http   required (http: tcp only)
 *   address: IPv4/IPv6 literal       default 127.0.0.1
 *   port: 1..65535                   default by protocol (8089, 8125, 2003, 8086)
 *   rcvbuf: size                     default 0 (kernel default)
 *   max_connections: 1..1048576      default 1024
 *   max_connections_per_source: 0..1048576  default 64 (0 = no limit)
 *   max_line: size 64B..16MiB        default 64KiB
 *   idle_timeout: duration           default 2m (0 = never)
 *   workers: [indices 0..63]         default all
 *   templates: [text]                graphite only: "[filter] template [k=v,...]"
 *   separator: text                  graphite only: joins template names, default "."
 *   tags: "k=v,..."                  graphite only: default tags of every line
 *     (the three as ingest/protocol/protocol.h rf_graphite_templates_new has them)
 * Defaults when no list is given: influx_line on UDP and TCP 8089, statsd on
 * UDP 8125, graphite on TCP 2003, all on 127.0.0.1. Duplicate names and
 * duplicate transport/address/port are errors. The handler is left empty:
 * the caller sets it. */
int rf_listener_config_parse_list(const rf_cfg_node *listeners_seq, rf_listener_config *out,
                                  size_t cap, size_t *n_out, rf_err *err);

#endif
