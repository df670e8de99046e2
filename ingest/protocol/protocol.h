/* Wire-protocol parsers: InfluxDB line protocol, StatsD/DogStatsD and Graphite
 * plaintext, turned into rf_event records with canonical series ids.
 *
 * Threading. An rf_parse_ctx belongs to one ingest thread: every rf_parse_*
 * call, the flush callback and the caches run on that thread, without locks,
 * allocations or syscalls per event (one allocation per series the context has
 * not announced yet). Other threads (the control thread) may only read the
 * counters (rf_parse_counter) and the reject log (rf_parse_reject_log_read).
 *
 * Input. The parse functions take a buffer of complete lines ('\n'-separated;
 * a trailing '\r' is tolerated; the last line may lack its '\n'). Every line is
 * parsed on its own: a malformed line is rejected alone (counted by reason and
 * kept in the reject log) and parsing continues at the next line. Stream
 * transports frame lines before they get here (ingest/listen/frame.c).
 *
 * Output. Events go into a caller-provided array; when it is full, and when the
 * caller calls rf_parse_flush() (at the end of its receive burst), the flush
 * callback receives the filled prefix and must take the events out before it
 * returns (the array is reused). The parse functions never flush a partial
 * batch on their own, so a listener can parse many datagrams per flush.
 *
 * Series identity (canonical key). Every event carries series_id =
 * rf_series_id_of_key(canonical text), with the canonical text
 *
 *     <measurement>[,<tag key>[=<tag value>]]... <field>
 *
 * where the components are the *unescaped* names, the tags are sorted by key
 * (bytewise, unsigned; a repeated key is rejected as duplicate_tag except in
 * DogStatsD, where a key may carry several values: those sort by value, a bare
 * tag first, exact repeats dropped), and each component is re-escaped with a
 * backslash before ',' ' ' '\' (and '=' except in the measurement). So the
 * same series gets the same id whatever the tag order or the escaping style
 * the client used ("a\b" and "a\\b" are both the name a\b, canonical "a\\b").
 * Per protocol:
 *   line protocol  measurement, tags, field key (one series per field);
 *   StatsD         measurement = metric name, tags from "|#k:v,...", a bare
 *                  DogStatsD tag "|#t" is "t" without "=", field = the type
 *                  name: count (c), gauge (g, also +N/-N deltas), timer (ms),
 *                  histogram (h), distribution (d), set (s); "|c:<id>" is
 *                  the tag container_id; DogStatsD events and service
 *                  checks as statsd.c says;
 *   Graphite       measurement = the dotted path, tags from ";k=v", field
 *                  "value", unless templates map it (rf_graphite_templates_new).
 * The first time a context meets a series id it emits an RF_KIND_SERIES_DEF
 * event (series_id set, aux = (uintptr_t) of a new rf_series_key) before the
 * series' first data event. Ownership of the key moves with the event: whoever
 * consumes or drops it frees it with rf_series_key_free. The context remembers
 * announced ids in a bounded set; when an id is evicted (counted as
 * RF_PC_ANNOUNCE_EVICTIONS) it may be announced again, so consumers must accept
 * duplicate defs (same id, same text).
 *
 * Errors: constructors return NULL / negative errno and fill an rf_err. */
#ifndef RF_INGEST_PROTOCOL_H
#define RF_INGEST_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "core/event/event.h"

/* Why a line was rejected. The names (rf_reject_reason_name) are stable: they
 * are what the stats socket and the metrics exposition print. */
enum rf_reject_reason {
    RF_REJ_SYNTAX = 0,          /* structure wrong: missing '=', ':' or '|', empty name, ... */
    RF_REJ_BAD_ESCAPE,          /* a backslash with nothing after it / unterminated escape */
    RF_REJ_BAD_NUMBER,          /* value or timestamp is not a number of the expected form */
    RF_REJ_OUT_OF_RANGE,        /* number does not fit (int64, uint64, finite double, rate) */
    RF_REJ_TIMESTAMP_WINDOW,    /* timestamp outside [recv - past, recv + future] */
    RF_REJ_LINE_TOO_LONG,       /* line longer than max_line_len */
    RF_REJ_NUL_BYTE,            /* a NUL byte in the line */
    RF_REJ_INVALID_UTF8,        /* measurement, key, tag value or name not valid UTF-8 */
    RF_REJ_TOO_MANY_TAGS,       /* more than max_tags tags */
    RF_REJ_KEY_TOO_LONG,        /* canonical series key longer than max_key_len */
    RF_REJ_EMPTY_FIELD_SET,     /* line protocol line with no field */
    RF_REJ_TOO_MANY_FIELDS,     /* more fields (values) in one line than max_fields */
    RF_REJ_DUPLICATE_TAG,       /* the same tag key twice in one line */
    RF_REJ_UNKNOWN_TYPE,        /* StatsD type other than c, g, ms, h, d, s */
    RF_REJ_NO_MEMORY,           /* the series key could not be allocated */
    RF_REJ_SIGNED_PACKET,       /* collectd: a signed datagram, no auth file configured */
    RF_REJ_ENCRYPTED_PACKET,    /* collectd: an encrypted datagram, no auth file configured */
    RF_REJ_FIELD_TYPE_CONFLICT, /* a value of another type than the field's (see "Field types") */
    RF_REJ_TIME_FIELD_KEY,      /* line protocol field key `time` (InfluxDB refuses it too) */
    RF_REJ_STRING_TOO_LONG,     /* a string value over RF_STRING_MAX bytes (unescaped) */
    RF_REJ_BAD_SIGNATURE,       /* collectd: the HMAC-SHA-256 does not match the user's password */
    RF_REJ_UNKNOWN_USER,        /* collectd: a signed/encrypted part names a user not in the file */
    RF_REJ_DECRYPT_FAILED,     /* collectd: the decrypted part's SHA-1 does not match (wrong key) */
    RF_REJ_UNSIGNED_PACKET,    /* collectd: a plain value list, security_level sign */
    RF_REJ_UNENCRYPTED_PACKET, /* collectd: a plain or only signed value list, level encrypt */
    RF_REJ__COUNT
};

/* Stable lower-case name of a reason ("syntax", "bad_escape", ...); "unknown"
 * for an out-of-range value. */
const char *rf_reject_reason_name(enum rf_reject_reason reason);

/* What happens to a client timestamp outside [recv - past, recv + future]. */
enum rf_ts_policy {
    RF_TS_REJECT = 0, /* the line is rejected (reason timestamp_window) */
    RF_TS_CLAMP = 1,  /* the line is kept with the receive wall time as its event
                       * time, as if it had no timestamp (RF_EVF_HAS_CLIENT_TIME
                       * cleared), and counted in RF_PC_TIMESTAMPS_CLAMPED. Not
                       * the window edge: a timestamp outside the window says the
                       * client's clock is wrong, not that the event happened at
                       * the edge, and a future edge (timestamp_future ahead of
                       * now) would drag the shard's watermark up to that far
                       * ahead and close every open window early. */
};

/* Unit of line-protocol timestamps (the "precision" of the InfluxDB API). */
enum rf_ts_precision {
    RF_PRECISION_NS = 0,
    RF_PRECISION_US = 1,
    RF_PRECISION_MS = 2,
    RF_PRECISION_S = 3,
    RF_PRECISION_M = 4, /* minutes and hours: the InfluxDB v1 /write API accepts them */
    RF_PRECISION_H = 5,
};

/* Field types. The type of a field (float, integer, unsigned, boolean or
 * string: enum rf_value_type) is fixed by its first write, per series id
 * (measurement, tags and field), as InfluxDB fixes it per shard; a line with a
 * value of another type is refused whole (field_type_conflict), never
 * converted. The types live in an rf_field_types table that every parse
 * context of a process shares (rf_parse_config.field_types), filled at start
 * from what the store holds (rf_query_series_types), so that a type survives
 * a restart. A claim is one atomic compare-and-swap, made once per series
 * per context (the context's raw-series cache keeps the type beside the id,
 * so a known series costs one byte compare per value). A line refused for a
 * conflict in a later field may leave an earlier, new field's type claimed.
 * When the table is full (a bounded probe), a new series' type is not
 * tracked (counted: rf_field_types_untracked) and only the context's cache
 * checks it. */
typedef struct rf_field_types rf_field_types;
/* capacity: slots (rounded up to a power of two, at least 64); size it at
 * twice the series the process can hold. NULL with err filled (ENOMEM). */
rf_field_types *rf_field_types_new(uint64_t capacity, rf_err *err);
void rf_field_types_free(rf_field_types *t);
uint64_t rf_field_types_memory_bound(uint64_t capacity);
/* Any thread: fixes series_id's type to value_type unless it has one, and
 * returns the type it has (value_type, or the one fixed before); -ENOSPC
 * when there was no room (not tracked). */
int rf_field_types_claim(rf_field_types *t, uint64_t series_id, uint8_t value_type);
/* Any thread: the fixed type, or -ENOENT. */
int rf_field_types_get(const rf_field_types *t, uint64_t series_id);
uint64_t rf_field_types_untracked(const rf_field_types *t);

/* Longest string value, unescaped bytes (InfluxDB's limit, 64 KiB). */
#define RF_STRING_MAX 65536u

typedef struct rf_parse_config {
    uint16_t source_id;             /* copied into every event */
    enum rf_ts_precision precision; /* line protocol only; Graphite is seconds */
    int64_t ts_past_ns;             /* accept event times >= recv wall - past; 0 = no limit */
    int64_t ts_future_ns;           /* accept event times <= recv wall + future; 0 = no limit */
    uint8_t ts_policy;              /* enum rf_ts_policy: outside the window, reject or clamp.
                                     * Either way a timestamp that is not a number or does
                                     * not fit int64 ns stays rejected (bad_number,
                                     * out_of_range): it is no time at all. */
    uint32_t max_line_len;          /* bytes, without the '\n'; 0 = 65536 */
    uint32_t max_tags;              /* per line; 0 = 64 */
    uint32_t max_fields;            /* events per line; 0 = 256 */
    uint32_t max_key_len;           /* canonical key bytes (<= 65535); 0 = 1024 */
    uint32_t series_cache_slots;    /* raw-bytes -> id cache, rounded up to 2^k; 0 = 65536 */
    uint32_t announced_slots;       /* announced-ids set, rounded up to 2^k; 0 = 65536 */
    int64_t forget_ns;              /* both of the above are emptied this often (receipt
                                     * clock, rf_recv_info.mono_ns): every series is announced
                                     * again, so one the worker expired meanwhile is defined
                                     * anew. Half pipeline.series_idle_ttl; 0 = never */
    uint32_t reject_log_slots;      /* last rejected lines kept, rounded to 2^k; 0 = 64 */
    /* The correlation id tag (ingest.correlation.id_tag), "" for none;
     * [A-Za-z0-9_.-], at most 63 bytes. A tag with this key is taken out of
     * the series (its key, id and the raw-bytes cache never see it, so ids
     * do not become series) and its value, unescaped, is hashed into the
     * correlation_id of every event of the line: XXH3-64 of the value's
     * bytes, 0 mapped to 1, the same in every protocol. An empty value (a
     * bare DogStatsD tag among them) gives no id; when a line repeats the
     * tag (DogStatsD), the first one gives the id and all are taken out.
     *   line protocol  cpu,host=a,request_id=abc v=1
     *   DogStatsD      cpu:1|g|#host:a,request_id:abc
     *   Graphite       cpu;host=a;request_id=abc 1 */
    char corr_id_tag[64];
    /* collectd: the data source names (ingest.collectd.types_db), or NULL
     * (then "value" or the index names them). Owned by whoever loaded it,
     * outliving every context. */
    const struct rf_collectd_types *collectd_types;
    /* collectd: signed and encrypted datagrams (rf_collectd_auth below), or
     * NULL (then they are refused as signed_packet / encrypted_packet and
     * plain ones are taken). Not owned, must outlive the context. */
    struct rf_collectd_auth *collectd_auth;
    /* Where field types are fixed ("Field types" above); not owned, must
     * outlive the context. NULL: the context makes one of its own
     * (series_cache_slots x 2 slots), as a single-context user wants. */
    rf_field_types *field_types;
    /* Graphite: the templates (rf_graphite_templates_new), or NULL (the
     * path is the measurement, the field "value"). Not owned, must outlive
     * the context. */
    const struct rf_graphite_templates *graphite_templates;
} rf_parse_config;

/* Graphite templates, as Telegraf's and InfluxDB's graphite inputs have
 * them. Each spec is "[filter] template [k=v,...]":
 *   template  '.'-separated names for the path's '.'-separated parts:
 *             "measurement", "field", a tag key, "" (skip); a last
 *             "measurement*" or "field*" takes the rest of the path. Parts
 *             named alike are joined by the separator.
 *   filter    '.'-separated, "*" matches any one part; a filter matches a
 *             path it is a prefix of. The most specific filter wins (part by
 *             part from the left, an exact part before "*"); a template
 *             without a filter is the default (at most one). No match and no
 *             default: the path is the measurement.
 *   tags      the template's default tags.
 * An empty measurement is the whole path, an empty field "value". Tags: the
 * line's Graphite 1.1 ";k=v" tags first, then the template's from the path,
 * then its defaults, then `tags` (global, "k=v,..."), each key once (the
 * first one wins). `separator` NULL is ".". At most 64 templates of 32 parts
 * and 16 tags. NULL and *err filled on a bad spec. */
typedef struct rf_graphite_templates rf_graphite_templates;
rf_graphite_templates *rf_graphite_templates_new(const char *const *specs, size_t n,
                                                 const char *separator, const char *tags,
                                                 rf_err *err);
void rf_graphite_templates_free(rf_graphite_templates *g);

/* Receives `n` (> 0) events; they must be consumed (copied, enqueued) before it
 * returns. It owns the rf_series_key of every RF_KIND_SERIES_DEF among them. */
typedef void (*rf_parse_flush_fn)(void *user, rf_event *events, size_t n);

/* What the receive path knows about one buffer. */
typedef struct rf_recv_info {
    int64_t wall_ns;         /* rf_clock_wall_ns() at receipt: default event time, window base */
    int64_t mono_ns;         /* rf_clock_mono_ns() at receipt: recv_time_ns of the events */
    const char *source_addr; /* "ip:port" of the sender for the reject log, or NULL;
                              * read only when a line is rejected */
} rf_recv_info;

typedef struct rf_parse_ctx rf_parse_ctx;

/* Creates a context writing into batch[0..batch_cap) (batch_cap >= 1; the array
 * must outlive the context). NULL with `err` filled on bad configuration
 * (EINVAL) or allocation failure (ENOMEM). */
rf_parse_ctx *rf_parse_ctx_new(const rf_parse_config *cfg, rf_event *batch, size_t batch_cap,
                               rf_parse_flush_fn flush, void *user, rf_err *err);
/* The most memory rf_parse_ctx_new(cfg, ...) allocates, caches and scratch
 * all touched, with the allocator's rounding (core/mem/bound.h); the batch
 * is the caller's. */
uint64_t rf_parse_ctx_memory_bound(const rf_parse_config *cfg);
/* Frees the context; events still in the batch are handed to flush first. */
void rf_parse_ctx_free(rf_parse_ctx *ctx);

/* Parse every line of buf[0..len) (rx must not be NULL; buf need not be
 * NUL-terminated and is not modified). Events of valid lines go to the batch,
 * invalid lines are counted and logged. Returns the number of lines rejected. */
size_t rf_parse_influx(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len);
size_t rf_parse_statsd(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len);
size_t rf_parse_graphite(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len);
/* One datagram of collectd's binary network protocol (collectd.c has the
 * mapping); returns the refusals counted: 0, 1 (a value list skipped for the
 * security level, or the rest of the datagram refused) or 2 (both). */
size_t rf_parse_collectd(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len);

/* Series that arrive decoded rather than as text (Prometheus remote_write's
 * labels): the same identity (canonical key, raw-bytes cache, announcements),
 * checks, counters and reject reasons as a line-protocol line with one
 * field, without writing line protocol and parsing it back.
 *
 *   measurement, tags  the names as they are (unescaped), tags in any order;
 *                      the same checks as a line's (empty names, NUL, UTF-8,
 *                      max_tags, duplicate keys, max_key_len), and a '\n' in
 *                      any of them is refused (syntax): no text form of a key
 *                      can hold one. The correlation id tag (corr_id_tag) is
 *                      taken out as in every protocol.
 *   raw                bytes that determine the measurement and tags
 *                      entirely (the labels as they came on the wire), hashed
 *                      once per series for the raw cache: the same raw bytes
 *                      must always come with the same names. NULL: hashed
 *                      from the names themselves.
 *   field              the field name of every sample (e.g. "value").
 * Each sample is one event (kind gauge, a float), counted as one line
 * (lines_ok) or refused alone (counted and logged like a line; the excerpt
 * is "measurement,tag=value,..." as line protocol escapes it). */
typedef struct rf_parse_tag {
    const char *key, *value;
    uint32_t key_len, value_len;
} rf_parse_tag;

typedef struct rf_parse_series {
    const char *raw;
    size_t raw_len;
    const char *measurement;
    uint32_t measurement_len;
    const rf_parse_tag *tags;
    uint32_t ntags;
    const char *field;
    uint32_t field_len;
    enum rf_ts_precision precision; /* of the samples' times */
    /* private: set by rf_parse_series_begin and the first sample taken */
    uint64_t raw_lo, raw_hi, correlation_id, series_id;
    bool known;
} rf_parse_series;

/* Starts a series received as rx (owning thread; rx, s and what s points to
 * must stay valid until its last sample). */
void rf_parse_series_begin(rf_parse_ctx *ctx, const rf_recv_info *rx, rf_parse_series *s);
/* One sample of s: value (not finite: out_of_range) at time, a client time in
 * s->precision (checked against the window like a line's, clamped or refused
 * per ts_policy; past int64 nanoseconds: out_of_range). Goes to the batch like
 * a parsed line's event. Returns 0 when taken, 1 when refused. */
size_t rf_parse_series_f64(rf_parse_ctx *ctx, rf_parse_series *s, double value, int64_t time);

/* A collectd types.db: type name -> data source names. Read-only once
 * loaded, shared by every parse context (rf_parse_config.collectd_types). */
typedef struct rf_collectd_types rf_collectd_types;
#define RF_COLLECTD_TYPES_DB_DEFAULT "/usr/share/collectd/types.db"
/* Loads `path` (lines "name ds:TYPE:min:max[, ...]", '#' comments). NULL
 * with err filled when it cannot be read or a line is malformed. */
rf_collectd_types *rf_collectd_types_load(const char *path, rf_err *err);
void rf_collectd_types_free(rf_collectd_types *t);
/* The name of data source i of `type`, or NULL (no such type or index, or t NULL). */
const char *rf_collectd_types_ds(const rf_collectd_types *t, const char *type, size_t len,
                                 uint32_t i);

/* collectd's network security, as collectd 5.12's server side has it (its
 * <Listen> options SecurityLevel and AuthFile). One rf_collectd_auth is
 * shared by every parse context of a process (rf_parse_config.collectd_auth);
 * it holds the security level and the users of the auth file, replaced whole
 * by rf_collectd_auth_load (at start and at each reload) while the ingest
 * threads read them.
 *
 * The auth file is collectd's AuthFile: one `user: password` a line, the user
 * up to the first ':' (taken as written, spaces included), the password after
 * the spaces that follow it, up to the end of the line ('\r' dropped); blank
 * lines, lines starting with '#' (after spaces) and lines without ':' or
 * password are skipped; a user given twice keeps its first password.
 *
 * Per datagram (collectd.c):
 *   signed part (0x0200)     HMAC-SHA-256, key the user's password, over the
 *                            user name and every byte after the part; the
 *                            parts it covers are taken as signed. Unknown
 *                            user: unknown_user; mismatch: bad_signature;
 *                            both refuse the rest of the datagram.
 *   encrypted part (0x0210)  AES-256-OFB, key SHA-256(password), IV in the
 *                            part; inside, SHA-1 of the payload then the
 *                            payload (parts of its own, taken as encrypted).
 *                            Unknown user: unknown_user; checksum mismatch:
 *                            decrypt_failed.
 *   level none               plain, signed and encrypted parts all taken.
 *   level sign               a plain value list is skipped (unsigned_packet).
 *   level encrypt            a plain or only signed value list is skipped
 *                            (unencrypted_packet).
 * A skipped value list is counted once per datagram, like a refusal. */
enum rf_collectd_security {
    RF_COLLECTD_SECURITY_NONE = 0,
    RF_COLLECTD_SECURITY_SIGN = 1,
    RF_COLLECTD_SECURITY_ENCRYPT = 2,
};
typedef struct rf_collectd_auth rf_collectd_auth;
/* An empty one: level none, no users (signed and encrypted parts are then
 * refused as unknown_user). NULL with err filled (ENOMEM). */
rf_collectd_auth *rf_collectd_auth_new(rf_err *err);
/* After every context that reads it is gone. */
void rf_collectd_auth_free(rf_collectd_auth *a);
/* Control thread: reads `path` (NULL or "": no users; a level above none then
 * fails with EINVAL, as collectd refuses it) and publishes the level and the
 * users together. On error (the file cannot be read) nothing changes. The
 * tables replaced stay allocated until rf_collectd_auth_free, since an ingest
 * thread may still be reading one (a few hundred bytes per reload). */
int rf_collectd_auth_load(rf_collectd_auth *a, enum rf_collectd_security level, const char *path,
                          rf_err *err);
/* Control thread: publishes in `to` the table `from` has (loaded aside, so
 * that a reload can read the file first and apply it last), and frees
 * `from`. */
void rf_collectd_auth_take(rf_collectd_auth *to, rf_collectd_auth *from);
/* Users of the table published last. */
size_t rf_collectd_auth_users(const rf_collectd_auth *a);
/* The bytes a parse context allocates for its crypto state on its first
 * signed or encrypted datagram (counted by rf_parse_ctx_memory_bound when
 * collectd_auth is set). */
uint64_t rf_collectd_auth_ctx_memory_bound(void);

/* Changes the line-protocol precision for the following rf_parse_influx calls
 * (owning thread). An HTTP write names its precision per request, while the
 * context and its caches live as long as the worker. -EINVAL when out of range. */
int rf_parse_set_precision(rf_parse_ctx *ctx, enum rf_ts_precision precision);

/* The kind (enum rf_metric_kind) of the events the following rf_parse_influx
 * calls make; RF_KIND_GAUGE, the default, unless a decoder that knows more
 * says so (OTLP: a monotonic cumulative sum is RF_KIND_CUMULATIVE, a delta
 * one RF_KIND_COUNTER). Owning thread. -EINVAL for a kind that is not a
 * data kind (RF_KIND_SERIES_DEF and after). */
int rf_parse_set_kind(rf_parse_ctx *ctx, unsigned kind);

/* A tag added to every line-protocol line of the following rf_parse_influx
 * calls, unless the line has a tag of that key already (the line's own wins,
 * as VictoriaMetrics does with the `db` of an InfluxDB write). The HTTP write
 * endpoints use it for db/bucket. It counts toward max_tags. value NULL or ""
 * removes it. Owning thread. -EINVAL for an empty key, -ENAMETOOLONG for a key
 * or value over RF_PARSE_EXTRA_TAG_MAX bytes, -EILSEQ for invalid UTF-8 or a
 * NUL byte. */
#define RF_PARSE_EXTRA_TAG_MAX 256u
int rf_parse_set_extra_tag(rf_parse_ctx *ctx, const char *key, const char *value);

/* Hands the events parsed so far to the flush callback (no call when none). */
void rf_parse_flush(rf_parse_ctx *ctx);

/* For a flush callback that keeps nothing of what it is handed (benchmarks,
 * fuzzers, counting sinks): frees the batch's series keys (series
 * definitions) and string texts, and returns how many of its events are
 * data, i.e. not series definitions. */
uint64_t rf_parse_output_discard(rf_event *ev, size_t n);

/* Records a rejection that the caller detected itself (e.g. an overlong line
 * the framer discarded): counts it and logs the excerpt. */
void rf_parse_reject_external(rf_parse_ctx *ctx, const rf_recv_info *rx,
                              enum rf_reject_reason reason, const char *line, size_t len);

/* Counters. Written only by the context's thread (relaxed atomic stores);
 * any thread may read them at any time (relaxed loads: each value is exact and
 * monotonic, values are not a consistent snapshot of each other). */
enum rf_parse_counter_id {
    RF_PC_LINES_OK = 0,       /* lines that produced events (comments/blank not counted) */
    RF_PC_LINES_REJECTED,     /* sum of the per-reason counters */
    RF_PC_EVENTS,             /* data events emitted (series defs not included) */
    RF_PC_SERIES_DEFS,        /* RF_KIND_SERIES_DEF events emitted */
    RF_PC_CACHE_MISSES,       /* raw series bytes not in the cache: canonical key built */
    RF_PC_CACHE_EVICTIONS,    /* cache entries overwritten for lack of room */
    RF_PC_ANNOUNCE_EVICTIONS, /* announced ids forgotten for lack of room (may re-announce) */
    RF_PC_FLUSHES,            /* flush callback invocations */
    RF_PC_TIMESTAMPS_CLAMPED, /* accepted lines whose out-of-window timestamp was replaced
                               * by the receive time (ts_policy clamp); one per line */
    RF_PC_NAN_VALUES,         /* collectd, Graphite: NaN values skipped (a rate's first reading) */
    RF_PC_DD_EVENTS,          /* DogStatsD events (_e{...}) taken */
    RF_PC_DD_SERVICE_CHECKS,  /* DogStatsD service checks (_sc|...) taken */
    RF_PC__COUNT
};
uint64_t rf_parse_counter(const rf_parse_ctx *ctx, enum rf_parse_counter_id id);
uint64_t rf_parse_reject_count(const rf_parse_ctx *ctx, enum rf_reject_reason reason);

/* The reject log: the last reject_log_slots rejected lines. */
#define RF_REJECT_EXCERPT_MAX 128u
#define RF_REJECT_SOURCE_MAX 48u
typedef struct rf_reject_entry {
    uint64_t seq;    /* 1 for the first rejection of this context, then +1 */
    int64_t wall_ns; /* receive wall time of the buffer the line came in */
    uint16_t reason; /* enum rf_reject_reason */
    uint16_t excerpt_len;
    char excerpt[RF_REJECT_EXCERPT_MAX]; /* first bytes of the line; bytes outside
                                          * 0x20..0x7e replaced by '?'; not NUL-terminated */
    char source[RF_REJECT_SOURCE_MAX];   /* NUL-terminated, "" when unknown */
} rf_reject_entry;

/* Copies up to `max` most recent entries into out, newest first; returns the
 * count. Safe from any thread while the ingest thread writes (seqlock per slot,
 * see reject.c); an entry overwritten during the read is skipped, never torn. */
size_t rf_parse_reject_log_read(const rf_parse_ctx *ctx, rf_reject_entry *out, size_t max);

/* Owning thread: while `first` is set, the first line rejected afterwards is
 * also copied there (first->seq != 0 once filled; the caller zeroes it to arm
 * it again); NULL stops it. The reject log cannot serve this: it keeps the
 * newest lines, and an HTTP write answers with the first bad line of its body
 * however many followed. */
void rf_parse_capture_first_reject(rf_parse_ctx *ctx, rf_reject_entry *first);

#endif
