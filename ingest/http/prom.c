/* Prometheus remote_write 1.0 receiver (contract in http.h): snappy block ->
 * protobuf WriteRequest read in place (prom_remote.proto is its schema; the
 * protobuf-c code generated from it serves the sender and the tests) ->
 * rf_parse_series on the worker's parse context, which owns series identity
 * (canonical keys, the raw-bytes cache keyed here on each series' label
 * bytes, announcements, validation, the reject log). */
#include <errno.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes/bytes.h"
#include "ingest/http/http_pvt.h"
#include "ingest/http/prom_remote.pb-c.h"

static const char *const counter_names[RF_PROM_C__COUNT] = {
    [RF_PROM_C_REQUESTS] = "requests",   [RF_PROM_C_SERIES] = "series",
    [RF_PROM_C_SAMPLES] = "samples",     [RF_PROM_C_STALE] = "stale_markers",
    [RF_PROM_C_EXEMPLARS] = "exemplars", [RF_PROM_C_METADATA] = "metadata",
};

const char *rf_prom_counter_name(enum rf_prom_counter_id id)
{
    return (unsigned)id < RF_PROM_C__COUNT ? counter_names[id] : "unknown";
}

uint64_t rf_http_ingest_prom_counter(const rf_http_ingest *in, enum rf_prom_counter_id id)
{
    if (!in->dec || (unsigned)id >= RF_PROM_C__COUNT)
        return 0;
    return atomic_load_explicit(&in->dec->prom[id], memory_order_relaxed);
}

/* ---- the wire ------------------------------------------------------------------
 * Protobuf read in place (why not protobuf-c's unpack: docs/ARCHITECTURE.md,
 * "remote_write decoding"). Two passes over the decoded block: check_request
 * walks every message and field the way protobuf-c's unpack does and refuses
 * what it refuses (a truncated varint or length, a known field of the wrong
 * wire type, groups, wire types 6 and 7, field number 0), and adds up what
 * the unpacked message would occupy (decode_limit, the bound it always had);
 * only a request that passes is turned into points, so a malformed one
 * stores nothing, as before. The second pass trusts the structure. */

enum {
    WT_VARINT = 0,
    WT_I64 = 1,
    WT_LEN = 2,
    WT_I32 = 5
};

typedef struct wire {
    const uint8_t *p, *end;
} wire;

static bool get_varint(wire *w, uint64_t *v)
{
    if (w->p < w->end && *w->p < 0x80) { /* keys, lengths under 128: most of them */
        *v = *w->p++;
        return true;
    }
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 70 && w->p < w->end; shift += 7) {
        uint8_t b = *w->p++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false; /* past the end, or more than 10 bytes */
}

/* The next field's number and wire type; false at the end or on a bad key. */
static bool get_key(wire *w, uint32_t *field, unsigned *wt)
{
    uint64_t k;
    if (w->p >= w->end || !get_varint(w, &k) || (k >> 3) == 0 || (k >> 3) > UINT32_MAX)
        return false;
    *field = (uint32_t)(k >> 3);
    *wt = (unsigned)(k & 7);
    return true;
}

/* A length-delimited field's bytes as a sub-reader. */
static bool get_len(wire *w, wire *sub)
{
    uint64_t n;
    if (!get_varint(w, &n) || n > (uint64_t)(w->end - w->p))
        return false;
    sub->p = w->p;
    sub->end = w->p + n;
    w->p += n;
    return true;
}

static bool skip_field(wire *w, unsigned wt)
{
    uint64_t v;
    wire sub = {0};
    switch (wt) {
    case WT_VARINT: return get_varint(w, &v);
    case WT_I64:
        if (w->end - w->p < 8)
            return false;
        w->p += 8;
        return true;
    case WT_LEN: return get_len(w, &sub);
    case WT_I32:
        if (w->end - w->p < 4)
            return false;
        w->p += 4;
        return true;
    default: return false; /* groups (3, 4), 6, 7: protobuf-c refuses them too */
    }
}

static double get_f64(wire *w)
{
    uint64_t bits = rf_read_le64(w->p);
    w->p += 8;
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* A message whose fields are known by (number -> wire type, or a nested
 * message) in `shape`; unknown fields skipped. `cost` gains the unpacked
 * size of what it holds. */
typedef struct shape {
    uint8_t wt[6];                 /* per field 1..5: wire type + 1; 0 unknown */
    const struct shape *nested[6]; /* a message field's shape */
    uint16_t nested_size[6];       /* its unpacked struct size, plus a pointer */
} shape;

static const shape label_shape, sample_shape;

/* The form every sender writes a Label (name, then value, each under 128
 * bytes) and a Sample (value, then timestamp) in: checked without the
 * generic loop's table lookups and branches, which were most of the first
 * pass. Anything else takes the generic loop. */
static bool check_common_form(wire w, const shape *sh, uint64_t *cost)
{
    const uint8_t *p = w.p, *end = w.end;
    if (sh == &label_shape) {
        if (end - p < 4 || p[0] != 0x0a || p[1] >= 0x80 || end - p < 4 + p[1] ||
            p[2 + p[1]] != 0x12)
            return false;
        const uint8_t *v = p + 3 + p[1];
        if (*v >= 0x80 || end - v != 1 + *v)
            return false;
        *cost += (uint64_t)p[1] + *v + 2;
        return true;
    }
    if (sh == &sample_shape) {
        if (end - p < 11 || p[0] != 0x09 || p[9] != 0x10)
            return false;
        wire t = {p + 10, end};
        uint64_t ms;
        return get_varint(&t, &ms) && t.p == end;
    }
    return false;
}

static bool check_message(wire w, const shape *sh, uint64_t *cost, unsigned depth)
{
    if (check_common_form(w, sh, cost))
        return true;
    uint32_t f = 0;
    unsigned wt = 0;
    while (w.p < w.end) {
        if (!get_key(&w, &f, &wt))
            return false;
        if (f >= 6 || !sh->wt[f]) {
            if (!skip_field(&w, wt))
                return false;
            continue;
        }
        if (wt != sh->wt[f] - 1u)
            return false;
        if (wt != WT_LEN) {
            if (!skip_field(&w, wt))
                return false;
            continue;
        }
        wire sub = {0};
        if (!get_len(&w, &sub))
            return false;
        if (sh->nested[f]) {
            *cost += sh->nested_size[f];
            if (depth > 4 || !check_message(sub, sh->nested[f], cost, depth + 1))
                return false;
        } else {
            *cost += (uint64_t)(sub.end - sub.p) + 1; /* a string: its bytes and a NUL */
        }
    }
    return true;
}

#define PTR sizeof(void *)
#define LEN_F (WT_LEN + 1)
static const shape label_shape = {.wt = {[1] = LEN_F, [2] = LEN_F}};
static const shape sample_shape = {.wt = {[1] = WT_I64 + 1, [2] = WT_VARINT + 1}};
static const shape exemplar_shape = {
    .wt = {[1] = LEN_F, [2] = WT_I64 + 1, [3] = WT_VARINT + 1},
    .nested = {[1] = &label_shape},
    .nested_size = {[1] = sizeof(RfProm__Label) + PTR},
};
static const shape series_shape = {
    .wt = {[1] = LEN_F, [2] = LEN_F, [3] = LEN_F},
    .nested = {[1] = &label_shape, [2] = &sample_shape, [3] = &exemplar_shape},
    .nested_size = {[1] = sizeof(RfProm__Label) + PTR,
                    [2] = sizeof(RfProm__Sample) + PTR,
                    [3] = sizeof(RfProm__Exemplar) + PTR},
};
static const shape metadata_shape = {
    .wt = {[1] = WT_VARINT + 1, [2] = LEN_F, [4] = LEN_F, [5] = LEN_F}};
static const shape request_shape = {
    .wt = {[1] = LEN_F, [3] = LEN_F},
    .nested = {[1] = &series_shape, [3] = &metadata_shape},
    .nested_size =
        {[1] = sizeof(RfProm__TimeSeries) + PTR, [3] = sizeof(RfProm__MetricMetadata) + PTR},
};

/* Labels of one series beyond max_tags' ceiling (ingest.max_tags <= 1024)
 * cannot all be tags: the series is refused (too_many_tags) without a
 * bigger array. */
#define PROM_LABELS_MAX 1025

typedef struct prom_series {
    const char *name;
    uint32_t name_len;
    uint32_t nlabels; /* may exceed PROM_LABELS_MAX: counted, not kept */
    rf_parse_tag labels[PROM_LABELS_MAX];
    const uint8_t *raw, *raw_end; /* the label fields' bytes when back to back */
    bool raw_split;               /* another field between two labels */
    uint64_t samples, exemplars;
} prom_series;

/* The labels of a series (checked structure). */
static void read_labels(wire ts, prom_series *ps)
{
    ps->name = NULL;
    ps->name_len = 0;
    ps->nlabels = 0;
    ps->raw = ps->raw_end = NULL;
    ps->raw_split = false;
    ps->samples = ps->exemplars = 0;
    uint32_t f = 0;
    unsigned wt = 0;
    const uint8_t *prev_end = NULL;
    while (ts.p < ts.end) {
        const uint8_t *at = ts.p;
        get_key(&ts, &f, &wt);
        if (wt != WT_LEN || f > 3) {
            skip_field(&ts, wt);
            continue;
        }
        wire sub = {0};
        get_len(&ts, &sub);
        if (f == 2) {
            ps->samples++;
            continue;
        }
        if (f == 3) {
            ps->exemplars++;
            continue;
        }
        /* A Label: the last name and value win, as protobuf merges them. */
        rf_parse_tag l = {.key = "", .value = ""};
        const uint8_t *q = sub.p;
        if (sub.end - q >= 4 && q[0] == 0x0a && q[1] < 0x80 && sub.end - q >= 4 + q[1] &&
            q[2 + q[1]] == 0x12 && q[3 + q[1]] < 0x80 && sub.end - q == 4 + q[1] + q[3 + q[1]]) {
            /* the common form (check_common_form) */
            l = (rf_parse_tag){.key = (const char *)q + 2,
                               .key_len = q[1],
                               .value = (const char *)q + 4 + q[1],
                               .value_len = q[3 + q[1]]};
            sub.p = sub.end;
        }
        while (sub.p < sub.end) {
            wire s = {0};
            get_key(&sub, &f, &wt);
            if (wt != WT_LEN || f > 2) {
                skip_field(&sub, wt);
                continue;
            }
            get_len(&sub, &s);
            if (f == 1) {
                l.key = (const char *)s.p;
                l.key_len = (uint32_t)(s.end - s.p);
            } else {
                l.value = (const char *)s.p;
                l.value_len = (uint32_t)(s.end - s.p);
            }
        }
        if (!ps->raw)
            ps->raw = at;
        else if (prev_end != at)
            ps->raw_split = true;
        prev_end = ps->raw_end = ts.p;
        if (l.key_len == 8 && !memcmp(l.key, "__name__", 8)) {
            ps->name = l.value;
            ps->name_len = l.value_len;
            continue;
        }
        if (!l.value_len)
            continue; /* Prometheus: an empty label is an absent one */
        if (ps->nlabels < PROM_LABELS_MAX)
            ps->labels[ps->nlabels] = l;
        ps->nlabels++;
    }
}

typedef struct prom_tally {
    size_t rejected;
    uint64_t samples, stale, exemplars, series, metadata;
} prom_tally;

#define STALE_NAN_BITS 0x7ff0000000000002ull

/* Refuses every sample of a series the parse context cannot take as one
 * (no name, too many labels), naming it by `what`. */
static void refuse_series(rf_parse_ctx *pc, const rf_recv_info *rx, const prom_series *ps,
                          enum rf_reject_reason why, const char *what, size_t len, prom_tally *t)
{
    for (uint64_t k = 0; k < ps->samples; k++)
        rf_parse_reject_external(pc, rx, why, what, len);
    t->rejected += ps->samples;
}

static void take_series(rf_decode_state *ds, const rf_recv_info *rx, wire ts, prom_tally *t)
{
    rf_parse_ctx *pc = ds->in->parse;
    prom_series *ps = ds->series;
    read_labels(ts, ps);
    t->samples += ps->samples;
    t->exemplars += ps->exemplars;
    if (!ps->samples)
        return;
    if (!ps->name || !ps->name_len) {
        /* Named in the reject log by its first label's value. */
        const char *what = ps->nlabels ? ps->labels[0].value : "(no labels)";
        size_t wl = ps->nlabels ? ps->labels[0].value_len : strlen(what);
        refuse_series(pc, rx, ps, RF_REJ_SYNTAX, what, wl, t);
        return;
    }
    if (ps->nlabels > PROM_LABELS_MAX - 1) {
        refuse_series(pc, rx, ps, RF_REJ_TOO_MANY_TAGS, ps->name, ps->name_len, t);
        return;
    }
    rf_parse_series s = {
        .raw = ps->raw_split ? NULL : (const char *)ps->raw,
        .raw_len = (size_t)(ps->raw_end - ps->raw),
        .measurement = ps->name,
        .measurement_len = ps->name_len,
        .tags = ps->labels,
        .ntags = ps->nlabels,
        .field = "value",
        .field_len = 5,
        .precision = RF_PRECISION_MS,
    };
    rf_parse_series_begin(pc, rx, &s);
    uint32_t f = 0;
    unsigned wt = 0;
    while (ts.p < ts.end) {
        get_key(&ts, &f, &wt);
        if (f != 2 || wt != WT_LEN) {
            skip_field(&ts, wt);
            continue;
        }
        wire sm = {0};
        get_len(&ts, &sm);
        double value = 0;
        uint64_t ms = 0;
        while (sm.p < sm.end) {
            get_key(&sm, &f, &wt);
            if (f == 1 && wt == WT_I64)
                value = get_f64(&sm);
            else if (f == 2 && wt == WT_VARINT)
                get_varint(&sm, &ms);
            else
                skip_field(&sm, wt);
        }
        uint64_t bits;
        memcpy(&bits, &value, sizeof(bits));
        if (bits == STALE_NAN_BITS) {
            t->stale++;
            continue;
        }
        t->rejected += rf_parse_series_f64(pc, &s, value, (int64_t)ms);
    }
}

/* The points of a checked WriteRequest. */
static void take_request(rf_decode_state *ds, const rf_recv_info *rx, wire w, prom_tally *t)
{
    uint32_t f = 0;
    unsigned wt = 0;
    while (w.p < w.end) {
        get_key(&w, &f, &wt);
        if (wt != WT_LEN || (f != 1 && f != 3)) {
            skip_field(&w, wt);
            continue;
        }
        wire sub = {0};
        get_len(&w, &sub);
        if (f == 3) {
            t->metadata++;
            continue;
        }
        t->series++;
        take_series(ds, rx, sub, t);
    }
}

static void on_write(void *user, const rf_http_request *req, rf_http_response *resp)
{
    rf_decode_state *ps = user;
    rf_http_ingest *in = ps->in;
    const rf_http_limits *lim = rf_http_server_limits(ps->srv);
    if (rf_http_ingest_sync_query(in, req, resp) < 0)
        return;
    if (req->content_encoding &&
        !(req->content_encoding_len == 6 && !strncasecmp(req->content_encoding, "snappy", 6))) {
        rf_http_resp_error(resp, 415, "remote_write bodies are snappy blocks");
        resp->reject = RF_HTTP_REJ_UNSUPPORTED_ENCODING;
        return;
    }
    if (in->busy && in->busy(in->busy_user)) {
        rf_http_resp_error(resp, 503, "engine is shedding load; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        return;
    }
    size_t raw_len;
    if (snappy_uncompressed_length((const char *)req->body, req->body_len, &raw_len) != SNAPPY_OK) {
        rf_http_resp_error(resp, 400, "body is not a snappy block");
        resp->reject = RF_HTTP_REJ_BAD_SNAPPY;
        return;
    }
    /* The header's length is the client's word: checked before allocating. */
    if (raw_len > lim->max_decoded) {
        rf_http_resp_error(resp, 413, "snappy block decodes to %zu bytes, more than the limit",
                           raw_len);
        resp->reject = RF_HTTP_REJ_DECODED_TOO_LARGE;
        return;
    }
    int rc = rf_http_buf_reserve(ps->srv, &ps->raw, raw_len ? raw_len : 1, lim->max_decoded);
    if (rc) {
        rf_http_resp_error(resp, 503, "too many request bodies in progress; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        return;
    }
    size_t got = ps->raw.cap;
    if (snappy_uncompress((const char *)req->body, req->body_len, (char *)ps->raw.p, &got) !=
            SNAPPY_OK ||
        got != raw_len) {
        rf_http_resp_error(resp, 400, "snappy block does not decode (corrupt, or its length lies)");
        resp->reject = RF_HTTP_REJ_BAD_SNAPPY;
        goto out;
    }
    wire w = {ps->raw.p, ps->raw.p + raw_len};
    uint64_t cost = sizeof(RfProm__WriteRequest);
    if (!check_message(w, &request_shape, &cost, 0)) {
        rf_http_resp_error(resp, 400, "body is not a protobuf WriteRequest");
        resp->reject = RF_HTTP_REJ_BAD_PROTOBUF;
        goto out;
    }
    if (cost > ps->arena_max) {
        rf_http_resp_error(resp, 413, "WriteRequest needs more than %llu bytes to decode",
                           (unsigned long long)ps->arena_max);
        resp->reject = RF_HTTP_REJ_DECODE_LIMIT;
        goto out;
    }
    if (!ps->series && !(ps->series = malloc(sizeof(*ps->series)))) {
        rf_http_resp_error(resp, 503, "out of memory; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        goto out;
    }
    memset(&in->first, 0, sizeof(in->first));
    rf_parse_capture_first_reject(in->parse, &in->first);
    uint64_t ev0 = rf_parse_counter(in->parse, RF_PC_EVENTS);
    rf_recv_info rx = {.wall_ns = req->wall_ns, .mono_ns = req->mono_ns, .source_addr = req->peer};
    prom_tally t = {0};
    take_request(ps, &rx, w, &t);
    rf_parse_flush(in->parse);
    rf_parse_capture_first_reject(in->parse, NULL);
    rf_stats_add(&ps->prom[RF_PROM_C_REQUESTS], 1);
    rf_stats_add(&ps->prom[RF_PROM_C_SERIES], t.series);
    rf_stats_add(&ps->prom[RF_PROM_C_METADATA], t.metadata);
    rf_stats_add(&ps->prom[RF_PROM_C_SAMPLES], t.samples);
    rf_stats_add(&ps->prom[RF_PROM_C_STALE], t.stale);
    rf_stats_add(&ps->prom[RF_PROM_C_EXEMPLARS], t.exemplars);
    resp->points = rf_parse_counter(in->parse, RF_PC_EVENTS) - ev0;
    if (t.rejected)
        rf_http_resp_error(
            resp, 400, "%srefused sample of '%.*s': %s; dropped=%zu",
            resp->points ? "partial write: " : "", (int)in->first.excerpt_len, in->first.excerpt,
            rf_reject_reason_name((enum rf_reject_reason)in->first.reason), t.rejected);
out:
    rf_http_ingest_sync_park(in, resp);
    if (ps->raw.cap > RF_DECODE_KEEP)
        rf_http_buf_release(ps->srv, &ps->raw);
}

int rf_http_ingest_add_prom(rf_http_server *s, rf_http_ingest *in, uint64_t arena_max, rf_err *err)
{
    rf_decode_state *ps = rf_decode_state_get(s, in, arena_max, err);
    if (!ps)
        return -(err && err->code ? err->code : ENOMEM);
    int rc =
        rf_http_server_route(s, "/api/v1/write", RF_HTTP_POST, "prom_write", on_write, ps, err);
    return rc < 0 ? rc : 0;
}
