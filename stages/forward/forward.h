/* Forwarding over HTTP: the sender side of the `prom_remote_write` and
 * `influx_http` sinks (stages/sink), with its buffer (memory or disk).
 *
 * Data path
 *
 *   worker (rf_sink_write/flush)            sender thread (one per rf_fwd)
 *   formats line protocol into the    -->   full ring: chunk pointers
 *   sink's byte queue; rf_fwd_submit        drains chunks into the buffer,
 *   copies whole lines into a free   <--    free ring: chunks given back
 *   chunk and enqueues it (no lock,         sends the oldest entries as one
 *   no allocation, no syscall unless        request, removes them only when
 *   the sender sleeps: then one wakeup)     the receiver acknowledged them
 *
 *   Both rings are core/ring SPSC rings of pointers: the worker is the only
 *   producer of `full` and consumer of `free`, the sender the reverse. A
 *   chunk (RF_FWD_CHUNK_BYTES) belongs to whoever took it from a ring last.
 *
 * The buffer (sender thread only)
 *   An entry is one chunk's lines: its sequence number, event count and the
 *   wall time it was handed over. memory: entries in RAM, bounded by
 *   max_bytes. disk: entries appended to segment files (storage/segment's
 *   record framing and CRC32C, record type RF_SEG_REC_FORWARD; acks are
 *   RF_SEG_REC_FORWARD_ACK records in the same log; docs/FORMAT.md,
 *   "Forward buffer"). When the buffer is full, `policy` drops the newest
 *   entry or the oldest ones, counted either way, or (block) holds the
 *   chunk: the sender takes no more chunks until the buffer has room, the
 *   worker's submit finds no free chunk, and the sink makes its worker wait
 *   (stages/sink), which stops reading its sockets: TCP and HTTP clients
 *   are slowed by their own flow control, UDP overflows the socket (counted
 *   there), peers block on their rings. Nothing is dropped for it; a worker
 *   asked to stop while blocked drops what still does not fit, counted.
 *
 * Delivery: at least once, in order
 *   The sender sends the oldest entries (up to max_samples / max_bytes of
 *   lines) as one request and waits for it: one request in flight, so a
 *   crash duplicates at most that one batch. 2xx: the entries are
 *   acknowledged and removed (disk: an ack record first). 429, 5xx, a
 *   timeout or a connection failure: the same entries are retried after a
 *   full-jitter exponential backoff, or after Retry-After when the receiver
 *   sent one. Any other 4xx: the request is dropped and its events counted
 *   under rejected (the receiver will never take it; retrying would block
 *   everything behind it). With a disk buffer an entry survives SIGKILL of
 *   the process once the sender appended it (write(2): the page cache
 *   survives the process; `sync: true` adds fdatasync against power loss).
 *   What is still in the worker's queue or a chunk is lost with the
 *   process, as anything in memory is.
 *
 * Receiver state: up, backing off (a retry is scheduled), circuit open
 *   (after breaker_failures failures in a row: the next attempt waits
 *   breaker_cooldown; nothing is dropped for it, the buffer keeps filling).
 */
#ifndef RF_STAGES_FORWARD_H
#define RF_STAGES_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"

/* Lines move from a worker to its sender in chunks of this size; a line
 * longer than this cannot be forwarded (rf_fwd_submit says so). */
#define RF_FWD_CHUNK_BYTES (64u * 1024u)
/* Chunks per sender: what a worker can hand over while its sender is busy. */
#define RF_FWD_CHUNKS 16u
#define RF_FWD_MAX_HEADERS 16u

enum rf_fwd_protocol {
    RF_FWD_PROM_REMOTE_WRITE = 0, /* snappy(protobuf WriteRequest), remote_write 1.0 */
    RF_FWD_INFLUX_HTTP = 1,       /* line protocol, InfluxDB /write or /api/v2/write */
    RF_FWD_NATS = 2,              /* line protocol as NATS messages (sender_nats.c) */
};

/* NATS publishing (protocol RF_FWD_NATS). Each buffered entry is split by
 * subject: the subject template's placeholders {measurement}, {field} and
 * {shard} are filled per line ({shard}: FNV-1a 64 of the line's series key
 * text, "measurement,tags field", modulo shards), and the lines of one
 * subject become one message whose payload is those lines. JetStream: each
 * message carries Nats-Msg-Id "<sink>.<worker>.<entry wall ns>.<entry
 * seq>.<subject hash>", stable across retries and disk-buffer recovery, so
 * the stream's duplicate window drops a re-publish; an entry is removed
 * once every message of the batch was acknowledged. core: published and
 * flushed, at most once to subscribers. */
#define RF_FWD_NATS_MAX_SERVERS 8u
typedef struct rf_fwd_nats_config {
    const char *servers[RF_FWD_NATS_MAX_SERVERS]; /* nats:// or tls:// URLs */
    uint32_t n_servers;
    const char *subject;         /* template; default "ringflow.{measurement}.{shard}" */
    uint32_t shards;             /* {shard} modulo; 0: 1 */
    bool core;                   /* core NATS instead of JetStream */
    uint32_t max_pending;        /* JetStream: async publishes in flight; 0: 256 */
    const char *stream;          /* JetStream: create this stream if missing (NULL: do not) */
    bool stream_memory;          /* its storage: memory instead of file */
    int64_t duplicate_window_ns; /* its duplicate window; 0: the server's (2 min) */
    uint32_t stream_replicas;    /* its copies in a nats-server cluster (1..5); 0: 1 */
    const char *creds_file;      /* user credentials file (JWT and nkey seed), nats.c reads it */
    const char *tls_ca, *tls_cert, *tls_key;
    int64_t reconnect_wait_ns; /* 0: 250 ms (nats.c adds jitter) */
} rf_fwd_nats_config;

enum rf_fwd_buffer_type {
    RF_FWD_BUFFER_MEMORY = 0,
    RF_FWD_BUFFER_DISK = 1
};
enum rf_fwd_full_policy {
    RF_FWD_DROP_NEWEST = 0,
    RF_FWD_DROP_OLDEST = 1,
    RF_FWD_BLOCK = 2 /* back-pressure to the worker (the disk buffer's default) */
};
enum rf_fwd_auth {
    RF_FWD_AUTH_NONE = 0,
    RF_FWD_AUTH_BASIC = 1,
    RF_FWD_AUTH_BEARER = 2,
    RF_FWD_AUTH_TOKEN = 3 /* "Authorization: Token <t>", InfluxDB 2 */
};

typedef struct rf_fwd_config {
    enum rf_fwd_protocol protocol;
    const char *url;                         /* http:// or https:// */
    const char *headers[RF_FWD_MAX_HEADERS]; /* "Name: value" each */
    uint32_t n_headers;
    enum rf_fwd_auth auth;
    const char *username, *password;         /* basic */
    const char *token;                       /* bearer / token */
    bool gzip;                               /* influx_http: gzip the body */
    uint32_t max_samples;                    /* per request; 0: 10000 */
    uint32_t max_bytes;                      /* line bytes per request; 0: 1 MiB */
    int64_t max_delay_ns;                    /* worker hand-over delay; 0: 200 ms */
    int64_t timeout_ns;                      /* per request; 0: 10 s */
    int64_t backoff_base_ns, backoff_max_ns; /* 0: 100 ms, 30 s */
    uint32_t breaker_failures;               /* 0: 5 */
    int64_t breaker_cooldown_ns;             /* 0: 10 s */
    uint64_t jitter_seed;                    /* 0: from the clock */
    /* The buffer. */
    enum rf_fwd_buffer_type buffer;
    uint64_t buffer_max_bytes; /* 0: 64 MiB (memory), 1 GiB (disk) */
    const char *buffer_path;   /* disk: a directory of its own */
    enum rf_fwd_full_policy policy;
    bool sync;              /* disk: fdatasync after appending */
    uint64_t segment_bytes; /* disk: per file; 0: 8 MiB */
    /* Memory buffer: how long rf_fwd_free may keep sending at shutdown. */
    int64_t shutdown_grace_ns; /* 0: 2 s */
    uint32_t instance;         /* worker index: the metrics' worker label */
    rf_fwd_nats_config nats;   /* protocol RF_FWD_NATS */
} rf_fwd_config;

enum rf_fwd_state {
    RF_FWD_UP = 0,
    RF_FWD_BACKING_OFF = 1,
    RF_FWD_CIRCUIT_OPEN = 2
};

/* Drop reasons (events; rf_fwd_stats.dropped[]). */
enum rf_fwd_drop {
    RF_FWD_DROP_REJECTED = 0,    /* the receiver answered a 4xx other than 429 */
    RF_FWD_DROP_BUFFER_FULL = 1, /* the buffer was full (policy drop_newest or drop_oldest) */
    RF_FWD_DROP_SHUTDOWN = 2,    /* memory buffer: still unsent when the engine stopped */
    RF_FWD_DROP_UNSUPPORTED = 3, /* "string_unsupported": string fields the remote_write
                                    encoder found in lines (the prom_remote_write sink drops
                                    string values before, counted drop_string_unsupported in
                                    its stats, so from a sink this stays 0) */
    RF_FWD_DROP_CORRUPT = 4,     /* disk: a damaged region, torn tail or unreadable file skipped
                                    at recovery (one each: the events in it cannot be known) */
    RF_FWD_DROP_IO_ERROR = 5,    /* disk: an append failed (disk full, I/O error) */
    RF_FWD_DROP__COUNT
};

typedef struct rf_fwd_stats {
    uint64_t queued_events, queued_bytes; /* in the buffer, unacknowledged (in flight included) */
    uint64_t in_flight_events;
    uint64_t acked_events, acked_bytes, requests_ok;
    uint64_t retries; /* requests that failed and will be retried */
    uint64_t dropped[RF_FWD_DROP__COUNT];
    uint64_t redelivered;          /* disk: events a request carried before a restart
                                      and not acked, sent again, that request having
                                      possibly reached the receiver (the only possible
                                      duplicates: at most a batch) */
    uint64_t retried_unsent;       /* events of a request that failed before reaching the
                                      receiver (connection refused, DNS, TLS handshake),
                                      to be sent again: never duplicates, and not counted
                                      redelivered after a restart */
    uint64_t disk_bytes_written;   /* write amplification = this / acked_bytes */
    uint64_t recovered_events;     /* disk: unacked events found at start */
    uint64_t corrupt_bytes;        /* disk: bytes skipped at recovery (torn tails too) */
    int64_t oldest_unsent_wall_ns; /* hand-over time of the oldest entry; 0 when none */
    uint32_t state;                /* enum rf_fwd_state */
    uint32_t last_status;          /* last HTTP status (0: no answer) */
    /* NATS: messages published and acknowledged, acks that said "duplicate"
     * (a retry the stream had already stored), publishes awaiting an ack,
     * and the connection (natsConnStatus: 0 disconnected, 1 connecting,
     * 2 connected, 3 closed, 4 reconnecting). */
    uint64_t nats_msgs, nats_duplicates, nats_pending_acks;
    uint32_t nats_conn;
} rf_fwd_stats;

typedef struct rf_fwd rf_fwd;

/* Validates cfg, prepares the buffer and starts the sender thread (which
 * recovers a disk buffer). `name` names the sink in logs and in the
 * ringflow_forward_* metrics on /metrics (labels sink, worker; drops also
 * reason), registered here and removed by rf_fwd_free. */
int rf_fwd_new(const rf_fwd_config *cfg, const char *name, rf_fwd **out, rf_err *err);
/* Stops the sender and waits for it. Memory buffer: while the receiver is
 * up it keeps sending for up to shutdown_grace (the caller waits that
 * long at most); the rest is counted as dropped (shutdown). Disk buffer:
 * it stops at once; what is unacknowledged stays on disk for the next
 * start. */
void rf_fwd_free(rf_fwd *f);

/* Worker: moves whole lines from p[0..len) (each ending in '\n') into a
 * free chunk and hands it to the sender. Returns the bytes taken (a prefix
 * of whole lines; 0 when no chunk is free) and adds the lines taken to
 * *lines. A first line longer than RF_FWD_CHUNK_BYTES returns -E2BIG.
 * Never blocks; no syscall unless the sender sleeps. */
long rf_fwd_submit(rf_fwd *f, const char *p, uint32_t len, uint64_t *lines);

/* Any thread. */
void rf_fwd_stats_read(const rf_fwd *f, rf_fwd_stats *out);
const char *rf_fwd_state_name(uint32_t state);    /* "up", "backing_off", "circuit_open" */
const char *rf_fwd_nats_conn_name(uint32_t conn); /* "connected", "reconnecting", ... */
const char *rf_fwd_drop_name(unsigned reason);    /* "rejected", "buffer_full", ... */
/* Memory the sender holds (chunks, rings, a memory buffer at its bound,
 * request buffers for max_bytes). */
uint64_t rf_fwd_memory_bound(const rf_fwd_config *cfg);

/* A request body builder (encode_prom.c): its buffers grow to the largest
 * request and are kept, so a sender that reuses one allocates nothing per
 * request once warm. One thread at a time. */
typedef struct rf_fwd_body rf_fwd_body;
rf_fwd_body *rf_fwd_body_new(void); /* NULL: out of memory */
void rf_fwd_body_free(rf_fwd_body *b);
/* The remote_write body for line-protocol text: one TimeSeries per
 * numeric field, __name__ = <measurement>_<field> (characters outside
 * [a-zA-Z0-9_:] become '_'), tags as labels (sorted by name), ns timestamps
 * as ms, a protobuf WriteRequest encoded directly from the text (the bytes
 * protobuf-c's packer writes for it), snappy compressed. String fields are
 * skipped and added to *unsupported; *samples gets the number of series
 * written. Returns 0, -ENOMEM or -EIO; the body is rf_fwd_body_data's. */
int rf_fwd_body_prom(rf_fwd_body *b, const char *lp, size_t len, uint64_t *samples,
                     uint64_t *unsupported);
/* The gzip of in[0..len) at libdeflate `level` (1..12; influx_http). 0, -ENOMEM, -EIO. */
int rf_fwd_body_gzip(rf_fwd_body *b, const char *in, size_t len, int level);
/* The last body built (valid until the next call on b). */
const uint8_t *rf_fwd_body_data(const rf_fwd_body *b, size_t *len);
/* rf_fwd_body_prom into a malloc'd *body (tests, tools). Any thread. */
int rf_fwd_encode_prom(const char *lp, size_t len, uint8_t **body, size_t *body_len,
                       uint64_t *samples, uint64_t *unsupported);

#endif
