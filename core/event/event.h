/* The event record: the one fixed-size unit that travels on every hot path.
 *
 * Every telemetry value that enters ringflow becomes exactly one rf_event of
 * 64 bytes (one cache line, static-asserted below). A line-protocol line with
 * three fields becomes three events. Strings never travel in rings: the
 * series key (measurement, sorted tags and field name) is reduced to a 64-bit
 * series_id by rf_series_id_of_key(), and the key text reaches the owning
 * worker once, in an RF_KIND_SERIES_DEF event that carries a pointer to an
 * immutable rf_series_key whose ownership moves with the event.
 *
 * Ownership of a series: rf_event_owner(series_id, workers) is the only rule
 * that maps a series to a worker; every component uses it, so a series'
 * aggregation windows, correlation entries and storage shard live on one core.
 *
 * Times:
 *   event_time_ns  wall-clock nanoseconds since the Unix epoch (what the
 *                  client said, or receipt time when it said nothing);
 *   recv_time_ns   monotonic nanoseconds (rf_clock_mono_ns) at receipt; the
 *                  critical-path latency is now - recv_time_ns at the exit.
 */
#ifndef RF_CORE_EVENT_H
#define RF_CORE_EVENT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define RF_EVENT_SIZE 64u

/* How `value` is to be read. */
enum rf_value_type {
    RF_VALUE_F64 = 0,
    RF_VALUE_I64 = 1,
    RF_VALUE_U64 = 2,
    RF_VALUE_BOOL = 3,   /* value.u64 is 0 or 1 */
    RF_VALUE_STRING = 4, /* value.u64 is XXH3-64 of the text; the text itself, when it travels,
                          * is an rf_event_text in aux (RF_EVF_OWNS_AUX), see below */
};

/* What the value means; drives aggregation semantics (StatsD rules among them). */
enum rf_metric_kind {
    RF_KIND_GAUGE = 0,        /* last value wins */
    RF_KIND_COUNTER = 1,      /* StatsD counter: add value / sample_rate per interval */
    RF_KIND_GAUGE_DELTA = 2,  /* StatsD "+N"/"-N" gauge: add to the current gauge */
    RF_KIND_TIMER = 3,        /* StatsD ms timer */
    RF_KIND_HISTOGRAM = 4,    /* StatsD/DogStatsD histogram */
    RF_KIND_DISTRIBUTION = 5, /* DogStatsD distribution */
    RF_KIND_SET = 6,          /* StatsD set: value.u64 is the member's hash */
    RF_KIND_CUMULATIVE = 7,   /* monotonic counter as sent by line protocol/Prometheus */
    RF_KIND_AGGREGATE = 8,    /* produced by the aggregation stage */
    RF_KIND_ALERT = 9,        /* produced by alert rules; aux = rule id, flags = fire/resolve */
    RF_KIND_CORRELATED = 10,  /* produced by correlation; aux = member count */
    RF_KIND_SERIES_DEF = 11,  /* control: aux is an rf_series_key * moving to the owner */
    RF_KIND_PEER = 12,        /* between two shards' stages: `subkind` says which stage and what
                               * (enum rf_peer_stage, RF_PEER_SUBKIND); see "Peer messages" below */
    RF_KIND__COUNT
};

/* Priority class: critical events bypass batching and take the fast path. */
enum rf_priority {
    RF_PRIO_STANDARD = 0,
    RF_PRIO_CRITICAL = 1,
};

/* Event flags. */
enum {
    RF_EVF_HAS_CLIENT_TIME = 1u << 0, /* event_time_ns came from the client */
    RF_EVF_ALERT_RESOLVED = 1u << 1,  /* RF_KIND_ALERT: resolve rather than fire */
    RF_EVF_LATE = 1u << 2,            /* applied to a closed window */
    RF_EVF_OWNS_AUX = 1u << 3,        /* RF_KIND_PEER: aux is a malloc'd block that moves with the
                                       * event; whoever ends the event's life frees it (free()).
                                       * A data event of RF_VALUE_STRING: aux is its
                                       * rf_event_text (rf_event_text_free) */
    RF_EVF_STATSD = 1u << 4,          /* a raw StatsD sample (ingest/protocol/statsd.c): aux holds
                                       * its sample rate as the bits of a double, 0 for no rate;
                                       * stages/statsd flushes these */
    RF_EVF_EDGE_DONE = 1u << 5,       /* a critical event whose threshold rules and critical
                                       * deliveries ran where it arrived (the critical edge,
                                       * stages/pipeline/pipeline.h): its owner skips them */
};

/* Peer messages (RF_KIND_PEER): what one shard's stage sends another's, for
 * the state that must live on one owner whatever shard saw the data
 * (two-level aggregation, correlation by key or id, rule-wide alerts). They
 * travel on the peer rings between workers (daemon/engine.c), or in process
 * in a replay; the receiving pipeline hands them to the stage named by the
 * high byte of `subkind`, the low byte being that stage's own message type.
 * A stage keeps nothing of an event it is handed: an owned aux block is
 * freed by the pipeline after the stage returns (or by the transport when it
 * drops one, counted). series_id is not a series of the receiver's table. */
enum rf_peer_stage {
    RF_PEER_STAGE_AGGREGATE = 1,
    RF_PEER_STAGE_CORRELATE = 2,
    RF_PEER_STAGE_ALERT = 3,
};
#define RF_PEER_SUBKIND(stage, type)                                                               \
    ((uint16_t)(((unsigned)(stage) << 8) | ((unsigned)(type)&0xffu)))
#define RF_PEER_STAGE_OF(subkind) ((unsigned)(subkind) >> 8)
#define RF_PEER_TYPE_OF(subkind) ((unsigned)(subkind)&0xffu)

typedef struct rf_event rf_event;
/* How a stage sends peer messages to shard `to` (which may be its own: the
 * pipeline then hands them back after the current pass). Must deliver:
 * never blocks the caller, and a message the transport cannot hold is
 * counted (and its owned aux freed), never silently lost. */
typedef void (*rf_peer_send_fn)(void *ctx, uint32_t to, const rf_event *ev, uint32_t n);

typedef union rf_value {
    double f64;
    int64_t i64;
    uint64_t u64;
} rf_value;

typedef struct rf_event {
    int64_t event_time_ns; /* wall clock, ns since epoch */
    int64_t recv_time_ns;  /* monotonic ns at receipt */
    uint64_t series_id;    /* rf_series_id_of_key() of the canonical key */
    rf_value value;
    uint64_t correlation_id; /* 0 when none */
    uint64_t aux;            /* kind-specific, see enum rf_metric_kind */
    float sample_rate;       /* StatsD "@rate"; 1.0 otherwise */
    uint16_t source_id;      /* index of the listener or source that produced it */
    uint8_t value_type;      /* enum rf_value_type */
    uint8_t kind;            /* enum rf_metric_kind */
    uint8_t priority;        /* enum rf_priority */
    uint8_t flags;           /* RF_EVF_* */
    uint16_t subkind;        /* RF_KIND_PEER: RF_PEER_SUBKIND(stage, type); 0 otherwise */
    uint32_t route_hint;     /* set by routing: index of the matched route set */
} rf_event;

static_assert(sizeof(rf_event) == RF_EVENT_SIZE, "rf_event must be exactly one 64-byte cache line");
static_assert(offsetof(rf_event, value) == 24,
              "rf_event layout changed: update docs/ARCHITECTURE.md");

/* A canonical series key: "measurement,tag1=v1,tag2=v2 field" with tags sorted
 * by key; names are unescaped, then re-escaped one canonical way, so every
 * spelling of a series has one text (exact rules: ingest/protocol/protocol.h).
 * Allocated once per new series by whoever first sees it; immutable afterwards. */
typedef struct rf_series_key {
    uint64_t series_id;
    uint32_t len;             /* bytes in text, without the terminating NUL */
    uint16_t measurement_len; /* prefix of text that is the measurement */
    uint16_t field_offset;    /* offset of the field name in text (after the space) */
    char text[];              /* NUL-terminated */
} rf_series_key;

/* The series id of a canonical key: 64-bit XXH3 of its bytes. Never 0 (0 is
 * reserved for "no series"), so a zero hash is mapped to 1. */
uint64_t rf_series_id_of_key(const char *key, size_t len);

/* The worker that owns a series. `workers` is at least 1. Uses the high bits
 * through a multiply so that it stays uniform for any worker count. */
static inline uint32_t rf_event_owner(uint64_t series_id, uint32_t workers)
{
    return (uint32_t)(((__uint128_t)series_id * workers) >> 64);
}

/* The text of a string value on its way from the parser to the owner's
 * pipeline: a malloc'd block in the event's aux, with RF_EVF_OWNS_AUX. It
 * lives for one pass: the owner's pipeline frees it once the event has been
 * through the stages and sinks (the store copies it), and whoever drops the
 * event before (a full ring under drop_newest, a stop) frees it. Sinks other
 * than the store must not keep it (they write the hash). Strings cost an
 * allocation each, numbers nothing; the bytes in flight are bounded by one
 * process-wide budget (RF_EVENT_TEXT_BUDGET, counted with one atomic add per
 * text): past it rf_event_text_new fails and the parser refuses the line
 * (no_memory). */
#define RF_EVENT_TEXT_BUDGET (64ull << 20)
typedef struct rf_event_text {
    uint32_t len;
    char text[]; /* len bytes, then a NUL */
} rf_event_text;
/* A block for len bytes (the caller writes text[0..len)); NULL when the
 * budget is spent or memory is short. */
rf_event_text *rf_event_text_new(size_t len);
void rf_event_text_free(rf_event_text *t);
/* Bytes of texts allocated and not freed, process-wide (any thread). */
uint64_t rf_event_text_bytes(void);
/* Frees the owned text of every data event in ev[0..n) that has one (peer
 * messages are their stage's). */
void rf_event_free_texts(const rf_event *ev, uint32_t n);

/* Reads the value as a double whatever its type (aggregation's common path). */
static inline double rf_event_value_as_f64(const rf_event *ev)
{
    switch (ev->value_type) {
    case RF_VALUE_I64: return (double)ev->value.i64;
    case RF_VALUE_U64:
    case RF_VALUE_BOOL: return (double)ev->value.u64;
    default: return ev->value.f64;
    }
}

/* Allocates a series key for `text` (which must already be canonical). Returns
 * NULL on allocation failure. Free with rf_series_key_free. */
rf_series_key *rf_series_key_new(const char *text, size_t len, size_t measurement_len,
                                 size_t field_offset);
/* The most memory rf_series_key_new holds for a key of at most len bytes,
 * with the allocator's rounding (core/mem/bound.h). */
unsigned long long rf_series_key_memory_bound(size_t len);
void rf_series_key_free(rf_series_key *key);

#endif
