/* Internals shared by the parsers of ingest/protocol. Do not include from
 * outside this folder: the public contract is protocol.h. */
#ifndef RF_INGEST_PROTOCOL_PVT_H
#define RF_INGEST_PROTOCOL_PVT_H

#include <locale.h>
#include <stdatomic.h>
#include <string.h>

#include "ingest/protocol/protocol.h"
#include "core/assert/assert.h"
#include "core/stats/stats.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define RF_LIKELY(x) __builtin_expect(!!(x), 1)
#define RF_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Protocol seeds keep the raw-bytes hashes of different protocols apart when
 * one context parses several of them. */
enum {
    RF_PROTO_INFLUX = 1,
    RF_PROTO_STATSD = 2,
    RF_PROTO_GRAPHITE = 3,
    RF_PROTO_COLLECTD = 4,
    RF_PROTO_DECODED = 5 /* rf_parse_series: raw bytes of a binary encoding */
};

/* A borrowed byte range. */
typedef struct rf_span {
    const char *p;
    uint32_t len;
} rf_span;

/* How a component was written on the wire, i.e. which backslash escapes the
 * unescaper must resolve. */
enum rf_esc {
    RF_ESC_NONE = 0, /* StatsD, Graphite: bytes are the name */
    RF_ESC_MEAS = 1, /* line protocol measurement: \, \space \\ */
    RF_ESC_KEY = 2,  /* line protocol tag key/value, field key: \, \= \space \\ */
};

/* One tag of a line being canonicalised; `key.p == NULL` never happens; a
 * DogStatsD bare tag has has_value false. */
typedef struct rf_tag {
    rf_span key;
    rf_span value;
    bool has_value;
} rf_tag;

/* The series part of a line as the canonicaliser needs it (miss path only). */
typedef struct rf_series_parts {
    rf_span measurement;
    uint8_t esc; /* enum rf_esc for the measurement; tags use esc_tags */
    uint8_t esc_tags;
    bool multi_tags; /* a key may repeat with different values (DogStatsD) */
    uint32_t ntags;
    rf_tag *tags; /* ctx->tags scratch */
} rf_series_parts;

/* Raw cache slot: `check` is a 64-bit hash of (raw series bytes, raw field)
 * that also depends on bits not used for the slot index, with its low 3 bits
 * holding the field's fixed type + 1 (protocol.h, "Field types"), so the
 * type comes with the id in one load; 0 means empty. */
typedef struct rf_raw_slot {
    uint64_t check;
    uint64_t id;
} rf_raw_slot;

/* The reject-log slot: a seqlock over words so that the reader's copy is a
 * sequence of relaxed atomic loads (no data race in the C11 sense). */
#define RF_REJ_WORDS ((sizeof(rf_reject_entry) + 7) / 8)
typedef struct rf_reject_slot {
    _Atomic uint64_t seq;                 /* odd while being written */
    _Atomic uint64_t words[RF_REJ_WORDS]; /* an rf_reject_entry */
} rf_reject_slot;

/* One value of a line, kept until the whole line is known to be valid. */
typedef struct rf_pending {
    rf_span field; /* raw field name (line protocol key, or type name) */
    uint8_t field_esc;
    uint8_t value_type;
    uint8_t kind;
    uint8_t fresh;        /* 1: id came from the miss path (insert into cache) */
    uint8_t fixed_type;   /* the field's type + 1 as fixed (cache or rf_field_types); 0 unknown */
    uint8_t field_has_bs; /* the raw field name holds a backslash (line protocol) */
    uint8_t text_escaped; /* text holds \" or \\ escapes */
    rf_span text;         /* a string value's raw text (between the quotes), or p NULL */
    rf_event_text *owned; /* its block, made once the line is known good */
    float sample_rate;
    rf_value value;
    uint64_t aux;    /* the event's aux (StatsD: the exact sample rate's bits), else 0 */
    uint64_t check;  /* raw cache check hash */
    uint64_t raw_lo; /* raw series hash (slot group) */
    uint64_t series_id;
    rf_series_key *def; /* to announce before the value, or NULL */
} rf_pending;

struct rf_parse_ctx {
    rf_parse_config cfg;
    /* output */
    rf_event *batch;
    size_t batch_cap;
    size_t batch_n;
    rf_parse_flush_fn flush;
    void *user;
    /* per-call receive info */
    const rf_recv_info *rx;
    /* series raw cache and announced-ids set (open addressing, bounded probe) */
    rf_raw_slot *raw;
    uint32_t raw_mask;
    uint64_t *announced;
    uint32_t ann_mask;
    int64_t forget_at; /* receipt time the caches are emptied at (cfg.forget_ns); 0: unset */
    /* scratch, sized from the configuration at creation */
    rf_tag *tags;          /* max_tags + 1 */
    rf_pending *pend;      /* max_fields */
    char *canon;           /* canonical key under construction, max_key_len + 1 */
    char *unesc;           /* unescaped string field / component, max_line_len + 1 */
    char *idless;          /* the series section without the id tag, max_line_len + 1
                           * (allocated only with cfg.corr_id_tag) */
    uint32_t id_tag_len;   /* strlen(cfg.corr_id_tag); 0: no id tag */
    locale_t c_locale;     /* strtod_l: '.' whatever the process locale */
    rf_field_types *types; /* cfg.field_types, or own_types */
    rf_field_types *own_types;
    /* counters: written by the owning thread only (relaxed load + store) */
    _Atomic uint64_t counters[RF_PC__COUNT];
    _Atomic uint64_t rejects[RF_REJ__COUNT];
    /* reject log */
    rf_reject_slot *rlog;
    uint32_t rlog_mask;
    _Atomic uint64_t rlog_head;    /* number of entries ever written */
    rf_reject_entry *first_reject; /* rf_parse_capture_first_reject, or NULL */
    /* rf_parse_set_extra_tag: key and value as line protocol escapes them;
     * extra_seed (0 when none) goes into the raw hash, so one line with two
     * different extra tags is two cache entries. */
    char extra_key[2 * RF_PARSE_EXTRA_TAG_MAX], extra_val[2 * RF_PARSE_EXTRA_TAG_MAX];
    uint32_t extra_key_len, extra_val_len;
    uint64_t extra_seed;
    uint8_t line_kind; /* rf_parse_set_kind: enum rf_metric_kind of line-protocol fields */
    /* collectd's crypto state (collectd_auth.c), made on the first signed or
     * encrypted datagram when cfg.collectd_auth is set; NULL before. */
    struct rf_cd_crypto *cd_crypto;
    rf_owner owner; /* the ingest thread (protocol.h "Threading"), checked on each call */
};

/* What a line parser and each step of it return: the line is accepted
 * (RF_PARSE_OK), skipped (RF_PARSE_SKIP: blank or a comment, not counted), or
 * rejected for one reason: RF_PARSE_REJ_<reason> is enum rf_reject_reason's
 * RF_REJ_<reason> + 1 (rf_parse_reject_reason gives it back). Rejections are
 * positive and OK is 0, so a step passes a rejection on with `if (r) return r;`. */
enum rf_parse_result {
    RF_PARSE_SKIP = -1,
    RF_PARSE_OK = 0,
    RF_PARSE_REJ_SYNTAX = RF_REJ_SYNTAX + 1,
    RF_PARSE_REJ_BAD_ESCAPE = RF_REJ_BAD_ESCAPE + 1,
    RF_PARSE_REJ_BAD_NUMBER = RF_REJ_BAD_NUMBER + 1,
    RF_PARSE_REJ_OUT_OF_RANGE = RF_REJ_OUT_OF_RANGE + 1,
    RF_PARSE_REJ_TIMESTAMP_WINDOW = RF_REJ_TIMESTAMP_WINDOW + 1,
    RF_PARSE_REJ_LINE_TOO_LONG = RF_REJ_LINE_TOO_LONG + 1,
    RF_PARSE_REJ_NUL_BYTE = RF_REJ_NUL_BYTE + 1,
    RF_PARSE_REJ_INVALID_UTF8 = RF_REJ_INVALID_UTF8 + 1,
    RF_PARSE_REJ_TOO_MANY_TAGS = RF_REJ_TOO_MANY_TAGS + 1,
    RF_PARSE_REJ_KEY_TOO_LONG = RF_REJ_KEY_TOO_LONG + 1,
    RF_PARSE_REJ_EMPTY_FIELD_SET = RF_REJ_EMPTY_FIELD_SET + 1,
    RF_PARSE_REJ_TOO_MANY_FIELDS = RF_REJ_TOO_MANY_FIELDS + 1,
    RF_PARSE_REJ_DUPLICATE_TAG = RF_REJ_DUPLICATE_TAG + 1,
    RF_PARSE_REJ_UNKNOWN_TYPE = RF_REJ_UNKNOWN_TYPE + 1,
    RF_PARSE_REJ_NO_MEMORY = RF_REJ_NO_MEMORY + 1,
    RF_PARSE_REJ_SIGNED_PACKET = RF_REJ_SIGNED_PACKET + 1,
    RF_PARSE_REJ_ENCRYPTED_PACKET = RF_REJ_ENCRYPTED_PACKET + 1,
    RF_PARSE_REJ_FIELD_TYPE_CONFLICT = RF_REJ_FIELD_TYPE_CONFLICT + 1,
    RF_PARSE_REJ_TIME_FIELD_KEY = RF_REJ_TIME_FIELD_KEY + 1,
    RF_PARSE_REJ_STRING_TOO_LONG = RF_REJ_STRING_TOO_LONG + 1,
    RF_PARSE_REJ_BAD_SIGNATURE = RF_REJ_BAD_SIGNATURE + 1,
    RF_PARSE_REJ_UNKNOWN_USER = RF_REJ_UNKNOWN_USER + 1,
    RF_PARSE_REJ_DECRYPT_FAILED = RF_REJ_DECRYPT_FAILED + 1,
    RF_PARSE_REJ_UNSIGNED_PACKET = RF_REJ_UNSIGNED_PACKET + 1,
    RF_PARSE_REJ_UNENCRYPTED_PACKET = RF_REJ_UNENCRYPTED_PACKET + 1,
};
_Static_assert((int)RF_PARSE_REJ_UNENCRYPTED_PACKET == (int)RF_REJ__COUNT,
               "one result per reject reason");

static inline bool rf_parse_rejected(enum rf_parse_result r)
{
    return r > RF_PARSE_OK;
}

/* collectd_auth.c: what collectd.c needs of the published auth table. */
typedef struct rf_cd_user {
    const char *name, *password; /* NUL-terminated; the password is the HMAC key */
    uint32_t name_len, password_len;
    uint8_t key[32]; /* SHA-256 of the password: the AES-256 key */
} rf_cd_user;
typedef struct rf_cd_policy rf_cd_policy;
/* The table published last (acquire; pairs with rf_collectd_auth_load's release). */
const rf_cd_policy *rf_cd_policy_get(const rf_collectd_auth *a);
enum rf_collectd_security rf_cd_policy_level(const rf_cd_policy *p);
const rf_cd_user *rf_cd_user_find(const rf_cd_policy *p, const char *name, size_t len);
/* A context's crypto state: OpenSSL contexts made once, and a buffer of
 * RF_CD_SCRATCH bytes the first encrypted part of a datagram is decrypted
 * into (the receive buffer is read-only; nested parts decrypt in place). */
#define RF_CD_SCRATCH 65536u
typedef struct rf_cd_crypto rf_cd_crypto;
rf_cd_crypto *rf_cd_crypto_new(void);
void rf_cd_crypto_free(rf_cd_crypto *c);
uint8_t *rf_cd_scratch(rf_cd_crypto *c);
/* HMAC-SHA-256 of msg[0..n) with the user's password equals mac (constant time). */
bool rf_cd_hmac_ok(rf_cd_crypto *c, const rf_cd_user *u, const uint8_t *msg, size_t n,
                   const uint8_t mac[32]);
/* Decrypts in[0..n) (n > 20) into out (out == in allowed) with AES-256-OFB,
 * the user's key and iv; true when out[0..20) is the SHA-1 of out[20..n). */
bool rf_cd_decrypt_ok(rf_cd_crypto *c, const rf_cd_user *u, const uint8_t iv[16], const uint8_t *in,
                      size_t n, uint8_t *out);

/* The reason of a rejection (rf_parse_rejected(r)). */
static inline enum rf_reject_reason rf_parse_reject_reason(enum rf_parse_result r)
{
    return (enum rf_reject_reason)(r - 1);
}

/* Compares two components by their unescaped bytes (series_key.c). */
int rf_cmp_unescaped(rf_span a, rf_span b, uint8_t esc);

/* The accepted window of event times around the receive wall time. */
static inline bool rf_ts_in_window(const rf_parse_ctx *ctx, int64_t ts)
{
    int64_t wall = ctx->rx->wall_ns;
    if (ctx->cfg.ts_past_ns && ts < wall - ctx->cfg.ts_past_ns)
        return false;
    if (ctx->cfg.ts_future_ns && ts > wall + ctx->cfg.ts_future_ns)
        return false;
    return true;
}

/* A client timestamp that parsed: within the window, 0; outside it,
 * RF_PARSE_REJ_TIMESTAMP_WINDOW under the reject policy, or (clamp) *ts becomes
 * the receive wall time, *flags loses RF_EVF_HAS_CLIENT_TIME, *clamped is set
 * (the caller counts it once the line is accepted) and 0. */
static inline enum rf_parse_result rf_ts_check(const rf_parse_ctx *ctx, int64_t *ts, uint8_t *flags,
                                               bool *clamped)
{
    if (RF_LIKELY(rf_ts_in_window(ctx, *ts)))
        return RF_PARSE_OK;
    if (ctx->cfg.ts_policy != RF_TS_CLAMP)
        return RF_PARSE_REJ_TIMESTAMP_WINDOW;
    *ts = ctx->rx->wall_ns;
    *flags = (uint8_t)(*flags & ~RF_EVF_HAS_CLIENT_TIME);
    *clamped = true;
    return RF_PARSE_OK;
}

/* Counts a clamped timestamp of a line that was accepted (r == 0). */
static inline enum rf_parse_result rf_ts_count_clamped(rf_parse_ctx *ctx, enum rf_parse_result r)
{
    if (r == 0)
        rf_stats_add(&ctx->counters[RF_PC_TIMESTAMPS_CLAMPED], 1);
    return r;
}

/* Fills the per-value defaults of a pending event. */
static inline void rf_pending_init(rf_pending *f, const char *field, uint32_t field_len,
                                   uint8_t field_esc, uint8_t kind)
{
    f->field = (rf_span){field, field_len};
    f->field_esc = field_esc;
    f->kind = kind;
    f->sample_rate = 1.0f;
    f->aux = 0;
    f->def = NULL;
    f->fresh = 0;
    f->fixed_type = 0;
    f->field_has_bs = 0;
    f->text.p = NULL;
    f->owned = NULL;
}

/* Resolves the ids of pend[0..n) (cache, then the miss path with the parts
 * that split() produces on the first miss) and emits the line. Returns
 * RF_PARSE_OK or a rejection (nothing emitted then). */
typedef enum rf_parse_result (*rf_split_fn)(rf_parse_ctx *ctx, const void *arg,
                                            rf_series_parts *parts);
enum rf_parse_result rf_series_finish_line(rf_parse_ctx *ctx, XXH128_hash_t raw, uint32_t n,
                                           rf_split_fn split, const void *arg, int64_t event_time,
                                           uint8_t flags, uint64_t correlation_id);

/* The correlation id of an id tag's value (protocol.h, corr_id_tag): never 0;
 * an empty value is no id (0). */
static inline uint64_t rf_corr_id_of(const char *v, size_t n)
{
    if (n == 0)
        return 0;
    uint64_t h = XXH3_64bits(v, n);
    return h ? h : 1;
}

/* Where an item whose key is the id tag starts in [p, end): items are
 * separated by `sep` (the first one starts at p when at_start); the key is
 * followed by `kv`, or (bare_ok) by `sep` or the end. NULL when none. A few
 * memchr calls a line: the cheap test every line pays once an id tag is set. */
static inline const char *rf_find_id_item(const rf_parse_ctx *ctx, const char *p, const char *end,
                                          char sep, char kv, bool at_start, bool bare_ok)
{
    const size_t kl = ctx->id_tag_len;
    const char *k = at_start ? p : NULL;
    for (;;) {
        if (!k) {
            const char *c = memchr(p, sep, (size_t)(end - p));
            if (!c)
                return NULL;
            k = c + 1;
        }
        if ((size_t)(end - k) >= kl && *k == ctx->cfg.corr_id_tag[0] &&
            memcmp(k, ctx->cfg.corr_id_tag, kl) == 0) {
            const char *a = k + kl;
            if ((a < end && *a == kv) || (bare_ok && (a == end || *a == sep)))
                return k;
        }
        p = k;
        k = NULL;
    }
}

/* True when [k, k+n) is the configured id tag's key. */
static inline bool rf_is_id_tag(const rf_parse_ctx *ctx, const char *k, size_t n)
{
    return n == ctx->id_tag_len && memcmp(k, ctx->cfg.corr_id_tag, n) == 0;
}

/* reject.c */
void rf_reject_line(rf_parse_ctx *ctx, enum rf_reject_reason reason, const char *line, size_t len);

/* The next free event of the batch; the caller fills every field, then
 * calls rf_emit_commit (which flushes when the batch is full). Writing in
 * place rather than copying a stack-built event avoids store-forwarding stalls
 * (byte stores read back as 16-byte loads). */
static inline rf_event *rf_emit_slot(rf_parse_ctx *ctx)
{
    return &ctx->batch[ctx->batch_n];
}

static inline void rf_emit_commit(rf_parse_ctx *ctx)
{
    if (RF_UNLIKELY(++ctx->batch_n == ctx->batch_cap))
        rf_parse_flush(ctx);
}

/* series_key.c */

/* The raw cache. All fields of one raw series start their probe in the same
 * 4-slot group (one cache line) chosen by the series hash, offset by the field
 * hash: a line with several fields touches one or two cache lines, not one per
 * field. A probe covers RF_RAW_PROBE slots from there. */
#define RF_RAW_PROBE 16u

static inline uint32_t rf_raw_home(const rf_parse_ctx *ctx, uint64_t check, uint64_t raw_lo)
{
    return ((uint32_t)raw_lo & ~3u & ctx->raw_mask) + (uint32_t)((check >> 3) & 3);
}

/* Looks up the raw cache for (raw series hash, raw field bytes). Fills
 * p->check (low 3 bits clear) and, on a hit, p->series_id and p->fixed_type;
 * returns true on a hit. A false hit needs two different (series, field)
 * pairs to agree on 61 check bits and on the slot group: about 2^-75 per
 * lookup. */
static inline bool rf_series_lookup(rf_parse_ctx *ctx, XXH128_hash_t raw, rf_pending *p)
{
    uint64_t check =
        (XXH3_64bits_withSeed(p->field.p, p->field.len, raw.high64) ^ raw.low64) & ~7ull;
    check += (uint64_t)(check == 0) << 3;
    p->check = check;
    p->raw_lo = raw.low64;
    p->fixed_type = 0;
    uint32_t i = rf_raw_home(ctx, check, raw.low64);
    for (unsigned probe = 0; probe < RF_RAW_PROBE; probe++) {
        const rf_raw_slot *s = &ctx->raw[(i + probe) & ctx->raw_mask];
        if ((s->check & ~7ull) == check) {
            p->series_id = s->id;
            p->fixed_type = (uint8_t)(s->check & 7u);
            return true;
        }
        if (s->check == 0)
            return false;
    }
    return false;
}

/* Miss path: builds the canonical key of (parts, p->field) into ctx->canon,
 * validating every component; sets p->series_id and, when the id has not been
 * announced by this context, p->def (allocated). Returns RF_PARSE_OK or a
 * rejection. The canonical "measurement,tags" prefix is built once per line:
 * *prefix_len is -1 before the first call of a line and is kept by the callee.
 * parts->tags are sorted in place. */
enum rf_parse_result rf_series_resolve(rf_parse_ctx *ctx, rf_series_parts *parts,
                                       int32_t *prefix_len, rf_pending *p);

/* Emit phase of a valid line: inserts fresh ids in the cache, marks defs as
 * announced, emits defs and values. */
void rf_series_emit_line(rf_parse_ctx *ctx, rf_pending *pend, uint32_t n, int64_t event_time,
                         uint8_t flags, uint64_t correlation_id);

/* Frees the defs of a line that is rejected after resolution. */
void rf_series_drop_defs(rf_pending *pend, uint32_t n);

/* number.c: numbers are scanned once (rf_num_scan stops at the first byte
 * that cannot continue the number) and then converted. */
typedef struct rf_numtok {
    const char *start, *end; /* the scanned text */
    uint64_t w;              /* all mantissa digits as an integer; exact when
                              * nint + nfrac <= 19 (wraps otherwise, unused then) */
    uint32_t nint, nfrac;    /* digits before / after the '.' */
    int64_t e10;             /* explicit exponent, clamped to +-100000 */
    uint32_t flags;          /* RF_NUM_*; one word, written once: no partial
                              * stores for the caller's test to wait on */
} rf_numtok;

enum {
    RF_NUM_NEG = 1u,
    RF_NUM_DOT = 2u,
    RF_NUM_EXP = 4u
};

static inline bool rf_is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* [-+]?digits*[.digits*][(e|E)[-+]?digits+] with at least one mantissa digit;
 * '+' only when allow_plus. Returns RF_PARSE_OK or RF_PARSE_REJ_BAD_NUMBER. */
static inline enum rf_parse_result rf_num_scan(const char *p, const char *end, bool allow_plus,
                                               rf_numtok *t)
{
    uint32_t flags = 0;
    t->start = p;
    if (p < end && (*p == '-' || (allow_plus && *p == '+'))) {
        if (*p == '-')
            flags |= RF_NUM_NEG;
        p++;
    }
    uint64_t w = 0;
    const char *d0 = p;
    while (p < end && rf_is_digit(*p))
        w = w * 10 + (uint64_t)(*p++ - '0');
    uint32_t nint = (uint32_t)(p - d0), nfrac = 0;
    if (p < end && *p == '.') {
        flags |= RF_NUM_DOT;
        const char *f0 = ++p;
        while (p < end && rf_is_digit(*p))
            w = w * 10 + (uint64_t)(*p++ - '0');
        nfrac = (uint32_t)(p - f0);
    }
    int64_t e = RF_PARSE_OK;
    enum rf_parse_result r = RF_PARSE_OK;
    if (nint + nfrac == 0) {
        r = RF_PARSE_REJ_BAD_NUMBER;
    } else if (p < end && (*p == 'e' || *p == 'E')) {
        flags |= RF_NUM_EXP;
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p == end || !rf_is_digit(*p))
            r = RF_PARSE_REJ_BAD_NUMBER;
        for (; p < end && rf_is_digit(*p); p++)
            if (e < 100000)
                e = e * 10 + (*p - '0');
        if (eneg)
            e = -e;
    }
    t->end = p;
    t->w = w;
    t->nint = nint;
    t->nfrac = nfrac;
    t->e10 = e;
    t->flags = flags;
    return r;
}

/* The correctly rounded double of a scanned number (Clinger's fast path, else
 * strtod_l on the text). Returns RF_PARSE_OK or RF_PARSE_REJ_OUT_OF_RANGE (overflow). */
enum rf_parse_result rf_num_f64_slow(rf_parse_ctx *ctx, const rf_numtok *t, double *out);
static inline enum rf_parse_result rf_num_f64(rf_parse_ctx *ctx, const rf_numtok *t, double *out)
{
    static const double pow10[23] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    int64_t e = t->e10 - (int64_t)t->nfrac;
    if (RF_LIKELY(t->nint + t->nfrac <= 19 && t->w <= (1ull << 53) && e >= -22 && e <= 22)) {
        /* w and 10^|e| are exact doubles: one IEEE operation rounds correctly */
        double d = (double)t->w;
        d = e < 0 ? d / pow10[-e] : d * pow10[e];
        *out = (t->flags & RF_NUM_NEG) ? -d : d;
        return RF_PARSE_OK;
    }
    return rf_num_f64_slow(ctx, t, out);
}

/* Parses all of [p, p+len) as a float (rf_num_scan syntax). Returns RF_PARSE_OK,
 * RF_PARSE_REJ_BAD_NUMBER or RF_PARSE_REJ_OUT_OF_RANGE. */
enum rf_parse_result rf_parse_f64(rf_parse_ctx *ctx, const char *p, size_t len, bool allow_plus,
                                  double *out);
/* [-]digits -> int64 / digits -> uint64, with range checks; same returns. */
enum rf_parse_result rf_parse_i64(const char *p, size_t len, int64_t *out);
enum rf_parse_result rf_parse_u64(const char *p, size_t len, uint64_t *out);

/* Validation helpers (series_key.c). */
bool rf_utf8_valid(const char *p, size_t len);

/* Nanoseconds in one unit of a precision (range-checked by its setters). */
static inline int64_t rf_precision_ns(enum rf_ts_precision p)
{
    static const int64_t ns[] = {
        [RF_PRECISION_NS] = 1,
        [RF_PRECISION_US] = 1000,
        [RF_PRECISION_MS] = 1000000,
        [RF_PRECISION_S] = 1000000000,
        [RF_PRECISION_M] = 60 * 1000000000LL,
        [RF_PRECISION_H] = 3600 * 1000000000LL,
    };
    return ns[p];
}

/* Starts a call of the owning thread on a buffer received as rx: the
 * receive info the events and rejects read, and the caches emptied when
 * forget_ns says so (context.c). */
void rf_parse_begin(rf_parse_ctx *ctx, const rf_recv_info *rx);

/* Line iteration shared by the three parsers: calls fn for each line (without
 * '\n' and a trailing '\r'), skipping blank lines; rejects overlong lines. */
typedef enum rf_parse_result (*rf_line_fn)(rf_parse_ctx *ctx, const char *line, size_t len);
size_t rf_for_each_line(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len,
                        rf_line_fn fn);

#endif
