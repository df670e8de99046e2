/* Sinks: where routed events leave the engine.
 *
 * Types
 *   RF_SINK_JSON        one JSON object per line to a file (appended) or stdout:
 *                       {"time":"2026-11-23T17:49:43.123456789Z","series":"cpu,host=a usage",
 *                        "value":0.5,"kind":"gauge","priority":"standard"}
 *                       alerts add "rule":"<name>","state":"firing"|"resolved",
 *                       correlated events add "members":N,"correlation_id":"<hex>".
 *                       A series whose text the namer does not know (id 0, a
 *                       series another shard defined or a limit refused) is
 *                       written as "series":null,"series_id":"<hex>"; a sink
 *                       never needs the key. A rule-wide alert names its rule's
 *                       series, "alert,rule=<name> state". Non-finite doubles
 *                       are null.
 *   RF_SINK_LP_UDP      line protocol forwarded over UDP / TCP:
 *   RF_SINK_LP_TCP        "<series key text>=<value> <event_time_ns>\n"
 *                       (the key text already is "measurement,tags field"); i64
 *                       values get "i", u64 "u", bool true/false; string values
 *                       (only a hash travels) are dropped as "unsupported".
 *                       Alerts: ringflow_alert,rule=<name> state="firing",value=<v>,series="<key>" <ts>
 *                       Correlated: ringflow_correlated,pattern=<id> members=<n>i,span_ns=<v>i,correlation_id=<id>u <ts>
 *   RF_SINK_PROM_REMOTE_WRITE, RF_SINK_INFLUX_HTTP
 *                       the same lines, handed in chunks to a sender thread
 *                       that delivers them at least once over HTTP from a
 *                       memory or disk buffer (stages/forward/forward.h;
 *                       remote_write: one series per numeric field, named
 *                       <measurement>_<field>). Sampled StatsD counters go out
 *                       as value / rate in every line-protocol sink.
 *   RF_SINK_NATS        the same lines through the same sender and buffer,
 *                       published to NATS subjects filled per line from a
 *                       template ({measurement}, {field}, {shard}), JetStream
 *                       with acks and Nats-Msg-Id, or core NATS
 *                       (forward.h, rf_fwd_nats_config; stages/forward/sender_nats.c).
 *   RF_SINK_COUNT_ONLY  STAND-IN for the storage writer until the storage issue
 *                       lands: counts what it would store (events by kind, 64
 *                       bytes each) and stores nothing.
 *
 * Threading and blocking
 *   A sink belongs to one worker (each worker has its own instances, its own
 *   buffer and, for forwarders, its own connection): no locks. The worker
 *   calls rf_sink_write() for the events of a batch (it only formats into a
 *   bounded in-memory buffer) and rf_sink_flush() once per batch, or at once
 *   for critical events. Flush does non-blocking I/O only: sockets are
 *   O_NONBLOCK, TCP connects are asynchronous and completed on later flushes,
 *   and whatever the kernel does not take now stays queued. The JSON sink
 *   writes to a regular file or stdout with write(2); a slow disk can delay it
 *   as any write does, but a full pipe on stdout (EAGAIN) never blocks it.
 *
 * Loss is counted, never silent
 *   queue_full    the buffer had no room for the line
 *   disconnected  the forwarder's circuit breaker was open (fail fast), the
 *                 rest of a line cut by a connection loss, or a line still
 *                 queued when the engine stopped (rf_sink_discard_pending)
 *   unsupported   a value the format cannot express: NaN/Inf in LP, a string
 *                 whose text is not with the event (see rf_sink_format_json)
 *                 or, in LP, a string holding a newline; any string for
 *                 prom_remote_write (Prometheus samples are numbers)
 *   oversize      a line longer than a datagram (UDP)
 *   io_error      the JSON sink's write failed with a hard error (buffer dropped)
 *   Bytes the kernel accepted on a TCP connection that the peer then lost are
 *   not seen by us (no application acks): delivery is at most once. UDP
 *   cannot see loss at all; an ICMP "port unreachable" surfaces as
 *   ECONNREFUSED on a later send and counts as a failure (connect_failures),
 *   but the datagrams already sent into the void are not counted as drops.
 *
 * Reconnect, backoff, circuit breaker (forwarders)
 *   After a failure (connect refused or timed out, send error, peer closed)
 *   the next attempt waits a delay drawn uniformly from
 *   [0, min(backoff_max, backoff_base * 2^attempt)] ("full jitter"); attempt
 *   resets on a successful connect. After breaker_failures consecutive
 *   failures the breaker opens: new events are dropped (disconnected) and no
 *   attempt is made for breaker_cooldown; then one probe connect runs
 *   (half-open): success closes the breaker, failure opens it again. Events
 *   queued before the breaker opened stay queued (bounded) and are sent after
 *   recovery.
 *   All times are monotonic nanoseconds passed in by the caller (testable;
 *   wall-clock jumps do not matter).
 */
#ifndef RF_STAGES_SINK_H
#define RF_STAGES_SINK_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/event/event.h"
#include "stages/forward/forward.h"

enum rf_sink_type {
    RF_SINK_JSON = 0,
    RF_SINK_LP_UDP = 1,
    RF_SINK_LP_TCP = 2,
    RF_SINK_COUNT_ONLY = 3,
    /* The worker's storage shard. Not an rf_sink: the engine appends what a
     * route sends here to storage/store; rf_sink_new refuses this type. */
    RF_SINK_STORE = 4,
    /* HTTP forwarders with a sender thread and a buffer (stages/forward):
     * Prometheus remote_write 1.0 and InfluxDB /write or /api/v2/write. */
    RF_SINK_PROM_REMOTE_WRITE = 5,
    RF_SINK_INFLUX_HTTP = 6,
    /* NATS (JetStream or core) through the same sender and buffer. */
    RF_SINK_NATS = 7,
};

/* Connection state of a forwarder (rf_sink_stats.state). */
enum rf_sink_conn_state {
    RF_SINK_DISCONNECTED = 0, /* waiting for the next attempt */
    RF_SINK_CONNECTING = 1,
    RF_SINK_CONNECTED = 2,
    RF_SINK_BREAKER_OPEN = 3,
};

/* How a sink turns ids into text. Either function may be NULL or return NULL. */
typedef struct rf_sink_namer {
    const char *(*series_text)(void *ctx, uint64_t series_id, uint32_t *len);
    const char *(*rule_name)(void *ctx, uint32_t rule_id);
    void *ctx;
} rf_sink_namer;

typedef struct rf_sink_config {
    const char *name;
    enum rf_sink_type type;
    /* JSON: path to append to; NULL or "-" is stdout. fd > 0 overrides path
     * (not closed by the sink); leave it 0 otherwise. */
    const char *path;
    int fd;
    /* Buffer bytes (the bounded queue); 0: 256 KiB. */
    uint32_t buffer_bytes;
    /* Forwarders. */
    const char *host; /* numeric IPv4/IPv6 address or a name resolved at new() */
    uint16_t port;
    uint32_t max_datagram;       /* UDP payload bound; 0: 1432 */
    int64_t backoff_base_ns;     /* 0: 100 ms */
    int64_t backoff_max_ns;      /* 0: 30 s */
    int64_t connect_timeout_ns;  /* 0: 5 s */
    uint32_t breaker_failures;   /* 0: 5 consecutive failures open the breaker */
    int64_t breaker_cooldown_ns; /* 0: 10 s */
    uint64_t jitter_seed;        /* 0: seeded from the clock */
    /* HTTP forwarders: everything but the buffer path's worker folder. */
    rf_fwd_config http;
    /* Which worker's instance this is (set by the pipeline): a disk buffer
     * lives in <buffer.path>/worker-<instance>. */
    uint32_t instance;
} rf_sink_config;

typedef struct rf_sink_stats {
    uint64_t accepted;  /* events turned into lines (or counted) */
    uint64_t lines_out; /* lines handed whole to the kernel */
    uint64_t bytes_out;
    uint64_t flushes; /* flush calls that did I/O */
    uint64_t drop_queue_full;
    uint64_t drop_disconnected;
    uint64_t drop_unsupported;
    uint64_t drop_string_unsupported; /* of drop_unsupported: string values the protocol cannot
                                         carry (prom_remote_write) */
    uint64_t drop_oversize;
    uint64_t drop_io_error;
    uint64_t connects; /* successful connects */
    uint64_t connect_failures;
    uint64_t disconnects; /* established connections lost */
    uint64_t breaker_opens;
    uint64_t blocked_ns; /* HTTP forwarders, policy block: the worker waited for room */
    uint32_t state;      /* enum rf_sink_conn_state (forwarders) */
    uint32_t queued_bytes;
    int64_t next_attempt_ns; /* monotonic time of the next connect attempt */
    /* Count-only stand-in. */
    uint64_t by_kind[RF_KIND__COUNT];
    uint64_t critical;
    uint64_t would_store_bytes;
    /* HTTP forwarders (has_fwd): the sender's side. */
    bool has_fwd;
    rf_fwd_stats fwd;
} rf_sink_stats;

typedef struct rf_sink rf_sink;

/* Validates cfg (type, path/host, port, limits) and opens what can be opened
 * now (the file; forwarders connect on the first flush). The namer is copied. */
int rf_sink_new(const rf_sink_config *cfg, const rf_sink_namer *namer, rf_sink **out, rf_err *err);
/* The memory such a sink holds (its buffer, the bounded queue, and itself;
 * rf_mem_alloc_bound rounding). 0 for store sinks, which are the storage's. */
uint64_t rf_sink_memory_bound(const rf_sink_config *cfg);

/* Makes one last non-blocking flush attempt and closes. */
void rf_sink_free(rf_sink *s);

/* Formats n events into the sink's buffer. Never does I/O for forwarders; the
 * JSON sink flushes inline when its buffer fills in the middle of a batch.
 * Returns how many events were accepted (the rest are counted as drops). */
uint32_t rf_sink_write(rf_sink *s, const rf_event *events, uint32_t n);

/* Line-protocol sinks: queues one line already formatted (len bytes, the
 * last a '\n') as rf_sink_write queues an event's; counted the same way
 * (accepted, or a drop by reason). What stages/aggregate's partials
 * between hosts travel in. */
bool rf_sink_write_line(rf_sink *s, const char *line, uint32_t len);

/* Non-blocking I/O: writes what the kernel takes now, drives connects and
 * backoff. now_ns is monotonic. Returns 0, or a negative errno when a
 * failure was recorded (informational: nothing to retry, the sink does). */
int rf_sink_flush(rf_sink *s, int64_t now_ns);

/* Bytes still queued. */
uint32_t rf_sink_pending(const rf_sink *s);

/* Shutdown: counts every line still queued (a partly sent one included) as
 * dropped (disconnected) and empties the queue, so that what a downstream
 * never took is counted before the final summary. Returns the lines dropped. */
uint64_t rf_sink_discard_pending(rf_sink *s);

const char *rf_sink_name(const rf_sink *s);
enum rf_sink_type rf_sink_type_of(const rf_sink *s);
void rf_sink_stats_read(const rf_sink *s, rf_sink_stats *out);

/* Parses "json", "lp_udp", "lp_tcp", "count_only", "store", "prom_remote_write",
 * "influx_http", "nats"; -1 when unknown. */
int rf_sink_type_parse(const char *name);

/* Formats one event as a JSON line / a line-protocol line into buf (cap
 * bytes, newline included). A string value is written as its text (a JSON
 * string; an LP string field, '"' and '\\' escaped), which it carries in an
 * owned block for the pass it is in (core/event/event.h): the sink formats
 * during that pass (rf_sink_write), or in a batcher's own copy of the text
 * (stages/batch). Returns the length, 0 when the event
 * cannot be expressed (a string whose text is not with it, or one with a
 * newline in LP; NaN/Inf in LP), or -ENOSPC when it does not fit. Exposed
 * for tests and tools. */
int rf_sink_format_json(const rf_sink_namer *namer, const rf_event *ev, char *buf, uint32_t cap);
int rf_sink_format_lp(const rf_sink_namer *namer, const rf_event *ev, char *buf, uint32_t cap);

/* ---- configuration (YAML through core/config) ----
 *
 *   pipeline:
 *     sinks:
 *       - {name: store, type: count_only}
 *       - {name: events, type: json, path: /var/log/ringflow/events.jsonl, buffer: 256KiB}
 *       - name: fwd
 *         type: lp_tcp                 # lp_udp | lp_tcp
 *         host: 10.0.0.5
 *         port: 8086
 *         buffer: 1MiB                 # the bounded queue
 *         max_datagram: 1432B          # lp_udp
 *         backoff: {base: 100ms, max: 30s}
 *         connect_timeout: 5s
 *         breaker: {failures: 5, cooldown: 10s}
 *
 * Names are unique; errors name the line. Strings are owned by `out`. */
typedef struct rf_sink_configs {
    uint32_t n;
    rf_sink_config *sinks;
    const char **names; /* names[i] == sinks[i].name: the router's sink ids */
} rf_sink_configs;

int rf_sink_configs_parse(const rf_cfg_node *pipeline, rf_sink_configs *out, rf_err *err);
void rf_sink_configs_release(rf_sink_configs *c);

/* The HTTP forwarders' keys (sink_config.c):
 *
 *       - name: vm
 *         type: prom_remote_write        # or influx_http
 *         url: http://10.0.0.5:8428/api/v1/write
 *         headers: {X-Scope-OrgID: lab}
 *         auth: {type: basic, username: u, password: p}   # bearer|token: {token: t}
 *         gzip: true                     # influx_http
 *         batch: {max_samples: 10000, max_bytes: 1MiB, max_delay: 50ms}
 *         timeout: 10s
 *         backoff: {base: 100ms, max: 30s}
 *         breaker: {failures: 5, cooldown: 10s}
 *         queue: 256KiB                  # the worker's line queue
 *         buffer: {type: disk, path: /var/lib/ringflow/forward/vm, max_bytes: 1GiB,
 *                  policy: block, sync: false, segment_bytes: 8MiB}
 *         # memory buffer (the default): {type: memory, max_bytes: 64MiB, policy: ...}
 *         # policy: block (the default for disk: the worker waits, back-pressure
 *         # to its clients), drop_newest (the default for memory), drop_oldest
 */
/* The nats sink takes the same batch, timeout, backoff, breaker, queue and
 * buffer keys, and in place of url/headers/auth/gzip:
 *
 *       - name: bus
 *         type: nats
 *         servers: [nats://127.0.0.1:4222]   # or one string; tls:// too
 *         subject: "ringflow.{measurement}.{shard}"
 *         shards: 16
 *         mode: jetstream                    # or core (at most once)
 *         max_pending: 256                   # JetStream publishes awaiting acks
 *         stream: {name: RINGFLOW, storage: file, duplicate_window: 2m,
 *                  replicas: 1}                      # created if missing; replicas: its
 *                                                    # copies in a nats-server cluster
 *         creds: /etc/ringflow/nats.creds
 *         tls: {ca: ca.pem, cert: c.pem, key: c.key}
 *         reconnect_wait: 250ms
 */

/* Formats wall-clock ns as RFC 3339 UTC with nanoseconds
 * ("2026-11-23T17:49:43.123456789Z"), 31 bytes + NUL; buf at least 32 bytes. */
void rf_sink_time_rfc3339_nano(int64_t wall_ns, char *buf);

#endif
