/* Prometheus remote_write 1.0 receiver (contract in http.h): snappy block ->
 * protobuf WriteRequest (protobuf-c, code generated from prom_remote.proto at
 * build time) -> line-protocol text -> the worker's parse context.
 *
 * Why through text: the parse context owns series identity (canonical keys,
 * the raw-bytes cache, announcements, validation, the reject log). Feeding it
 * "name,label=value value=<v> <ms>" lines keeps one definition of all that;
 * a series' prefix is written once per TimeSeries and hits the raw cache for
 * every sample after the first. */
#include <errno.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http_pvt.h"
#include "ingest/http/prom_remote.pb-c.h"

/* Line text handed to the parser per call: large enough that the call
 * overhead vanishes, small enough to stay in L2. */
#define PROM_TEXT_CAP (64u << 10)
/* A series prefix longer than this cannot be a valid key (max_key_len is at
 * most 65535 canonical bytes); it is refused without being written. */
#define PROM_PREFIX_MAX (PROM_TEXT_CAP / 2)
/* Arena memory kept between requests. */
#define PROM_ARENA_KEEP (1u << 20)

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk;

struct rf_prom_state {
    rf_http_server *srv;
    rf_http_ingest *in;
    rf_http_buf raw; /* the decoded snappy block */
    arena_chunk *chunks;
    uint64_t arena_total, arena_max;
    bool arena_full;
    char *text;
    size_t text_len;
    char prefix[PROM_PREFIX_MAX];
    _Atomic uint64_t counters[RF_PROM_C__COUNT];
};

static void ctr_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed); /* single writer */
}

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
    if (!in->prom || (unsigned)id >= RF_PROM_C__COUNT)
        return 0;
    return atomic_load_explicit(&in->prom->counters[id], memory_order_relaxed);
}

/* ---- the decoder's arena ------------------------------------------------------
 * protobuf-c allocates every message, array and string of a WriteRequest;
 * a bump arena makes that a pointer increment, frees it all at once, and
 * bounds it: past arena_max the allocation fails, so does the unpack. */

static void *arena_alloc(void *user, size_t size)
{
    struct rf_prom_state *ps = user;
    size = (size + 15) & ~(size_t)15;
    arena_chunk *c = ps->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > PROM_ARENA_KEEP ? size : PROM_ARENA_KEEP;
        if (c && c->cap * 2 > cap)
            cap = c->cap * 2; /* fewer chunks for big requests */
        if (ps->arena_total + cap > ps->arena_max) {
            cap = size;
            if (ps->arena_total + cap > ps->arena_max) {
                ps->arena_full = true;
                return NULL;
            }
        }
        arena_chunk *n = malloc(sizeof(*n) + cap);
        if (!n)
            return NULL;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        ps->chunks = n;
        ps->arena_total += cap;
        c = n;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    return p;
}

static void arena_free(void *user, void *p)
{
    (void)user;
    (void)p; /* released with the arena */
}

/* Keeps the oldest chunk (at most PROM_ARENA_KEEP) for the next request. */
static void arena_reset(struct rf_prom_state *ps)
{
    arena_chunk *c = ps->chunks, *keep = NULL;
    while (c) {
        arena_chunk *next = c->next;
        if (!next && c->cap <= PROM_ARENA_KEEP) {
            keep = c;
        } else {
            ps->arena_total -= c->cap;
            free(c);
        }
        c = next;
    }
    if (keep)
        keep->used = 0;
    ps->chunks = keep;
    ps->arena_full = false;
}

/* ---- text --------------------------------------------------------------------- */

static void text_flush(struct rf_prom_state *ps, const rf_recv_info *rx, size_t *rejected)
{
    if (ps->text_len) {
        *rejected += rf_parse_influx(ps->in->parse, rx, ps->text, ps->text_len);
        ps->text_len = 0;
    }
}

/* Appends s escaped for line protocol: in a measurement ',' and ' ', in a tag
 * also '='; a backslash is doubled so that one before an escaped character
 * keeps its meaning. Returns false when it does not fit or holds a '\n'
 * (which line protocol cannot carry). */
static bool put_escaped(char *out, size_t *o, size_t cap, const char *s, bool tag)
{
    size_t n = *o;
    for (; *s; s++) {
        char c = *s;
        if (c == '\n')
            return false;
        if (n + 2 > cap)
            return false;
        if (c == ',' || c == ' ' || c == '\\' || (tag && c == '='))
            out[n++] = '\\';
        out[n++] = c;
    }
    *o = n;
    return true;
}

/* "name,k=v,..." of a series into ps->prefix; its length, or 0 when it cannot
 * be written (no __name__, a '\n', too long). */
static size_t build_prefix(struct rf_prom_state *ps, const RfProm__TimeSeries *ts)
{
    const char *name = NULL;
    for (size_t i = 0; i < ts->n_labels; i++)
        if (!strcmp(ts->labels[i]->name, "__name__"))
            name = ts->labels[i]->value;
    if (!name || !*name)
        return 0;
    size_t o = 0;
    if (!put_escaped(ps->prefix, &o, sizeof(ps->prefix), name, false))
        return 0;
    for (size_t i = 0; i < ts->n_labels; i++) {
        const RfProm__Label *l = ts->labels[i];
        if (!strcmp(l->name, "__name__") || !*l->value)
            continue;
        if (o + 1 > sizeof(ps->prefix))
            return 0;
        ps->prefix[o++] = ',';
        if (!put_escaped(ps->prefix, &o, sizeof(ps->prefix), l->name, true) ||
            o + 1 > sizeof(ps->prefix))
            return 0;
        ps->prefix[o++] = '=';
        if (!put_escaped(ps->prefix, &o, sizeof(ps->prefix), l->value, true))
            return 0;
    }
    return o;
}

/* Digits of an integral value without printf; the common case for counters
 * and most gauges. */
static size_t put_i64(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t o = 0;
    if (v < 0)
        out[o++] = '-';
    while (n)
        out[o++] = tmp[--n];
    return o;
}

static size_t put_value(char *out, double v)
{
    /* The range test first: converting a double outside int64 is undefined. */
    if (fabs(v) < 1e15 && v == (double)(int64_t)v)
        return put_i64(out, (int64_t)v); /* a float without '.' is still a float */
    return (size_t)snprintf(out, 32, "%.17g", v);
}

#define STALE_NAN_BITS 0x7ff0000000000002ull

static void on_write(void *user, const rf_http_request *req, rf_http_response *resp)
{
    struct rf_prom_state *ps = user;
    rf_http_ingest *in = ps->in;
    const rf_http_limits *lim = rf_http_server_limits(ps->srv);
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
    if (snappy_uncompressed_length((const char *)req->body, req->body_len, &raw_len) !=
        SNAPPY_OK) {
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
    ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = ps};
    RfProm__WriteRequest *wr = rf_prom__write_request__unpack(&alloc, raw_len, ps->raw.p);
    if (!wr) {
        if (ps->arena_full) {
            rf_http_resp_error(resp, 413, "WriteRequest needs more than %llu bytes to decode",
                               (unsigned long long)ps->arena_max);
            resp->reject = RF_HTTP_REJ_DECODE_LIMIT;
        } else {
            rf_http_resp_error(resp, 400, "body is not a protobuf WriteRequest");
            resp->reject = RF_HTTP_REJ_BAD_PROTOBUF;
        }
        goto out;
    }
    ctr_add(&ps->counters[RF_PROM_C_REQUESTS], 1);
    ctr_add(&ps->counters[RF_PROM_C_SERIES], wr->n_timeseries);
    ctr_add(&ps->counters[RF_PROM_C_METADATA], wr->n_metadata);

    rf_parse_set_precision(in->parse, RF_PRECISION_MS);
    memset(&in->first, 0, sizeof(in->first));
    rf_parse_capture_first_reject(in->parse, &in->first);
    uint64_t ev0 = rf_parse_counter(in->parse, RF_PC_EVENTS);
    rf_recv_info rx = {.wall_ns = req->wall_ns, .mono_ns = req->mono_ns, .source_addr = req->peer};
    size_t rejected = 0;
    uint64_t samples = 0, stale = 0, exemplars = 0;
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const RfProm__TimeSeries *ts = wr->timeseries[i];
        samples += ts->n_samples;
        exemplars += ts->n_exemplars;
        if (!ts->n_samples)
            continue;
        size_t pl = build_prefix(ps, ts);
        if (!pl) {
            /* Name the series by its first label in the reject log. */
            const char *what = ts->n_labels ? ts->labels[0]->value : "(no labels)";
            for (size_t k = 0; k < ts->n_samples; k++)
                rf_parse_reject_external(in->parse, &rx, RF_REJ_SYNTAX, what, strlen(what));
            rejected += ts->n_samples;
            continue;
        }
        for (size_t k = 0; k < ts->n_samples; k++) {
            const RfProm__Sample *sm = ts->samples[k];
            uint64_t bits;
            memcpy(&bits, &sm->value, sizeof(bits));
            if (bits == STALE_NAN_BITS) {
                stale++;
                continue;
            }
            if (!isfinite(sm->value)) {
                rf_parse_reject_external(in->parse, &rx, RF_REJ_OUT_OF_RANGE, ps->prefix, pl);
                rejected++;
                continue;
            }
            /* prefix + " value=" + 32 + " " + 24 + "\n" */
            if (ps->text_len + pl + 72 > PROM_TEXT_CAP)
                text_flush(ps, &rx, &rejected);
            char *t = ps->text + ps->text_len;
            memcpy(t, ps->prefix, pl);
            size_t o = pl;
            memcpy(t + o, " value=", 7);
            o += 7;
            o += put_value(t + o, sm->value);
            t[o++] = ' ';
            o += put_i64(t + o, sm->timestamp);
            t[o++] = '\n';
            ps->text_len += o;
        }
    }
    text_flush(ps, &rx, &rejected);
    rf_parse_flush(in->parse);
    rf_parse_capture_first_reject(in->parse, NULL);
    rf_parse_set_precision(in->parse, in->precision);
    ctr_add(&ps->counters[RF_PROM_C_SAMPLES], samples);
    ctr_add(&ps->counters[RF_PROM_C_STALE], stale);
    ctr_add(&ps->counters[RF_PROM_C_EXEMPLARS], exemplars);
    resp->points = rf_parse_counter(in->parse, RF_PC_EVENTS) - ev0;
    if (rejected)
        rf_http_resp_error(resp, 400, "%srefused sample of '%.*s': %s; dropped=%zu",
                           resp->points ? "partial write: " : "", (int)in->first.excerpt_len,
                           in->first.excerpt,
                           rf_reject_reason_name((enum rf_reject_reason)in->first.reason),
                           rejected);
out:
    arena_reset(ps);
    if (ps->raw.cap > PROM_ARENA_KEEP)
        rf_http_buf_release(ps->srv, &ps->raw);
}

int rf_http_ingest_add_prom(rf_http_server *s, rf_http_ingest *in, uint64_t arena_max,
                            rf_err *err)
{
    if (!in || !in->parse)
        return rf_err_set(err, EINVAL, "http: remote_write needs a parse context");
    if (in->prom)
        return rf_err_set(err, EEXIST, "http: remote_write added twice");
    struct rf_prom_state *ps = calloc(1, sizeof(*ps));
    char *text = malloc(PROM_TEXT_CAP);
    if (!ps || !text) {
        free(ps);
        free(text);
        return rf_err_set(err, ENOMEM, "http: out of memory for remote_write");
    }
    ps->srv = s;
    ps->in = in;
    ps->text = text;
    ps->arena_max = arena_max ? arena_max : 64u << 20;
    int rc = rf_http_server_route(s, "/api/v1/write", RF_HTTP_POST, "prom_write", on_write, ps,
                                  err);
    if (rc < 0) {
        free(text);
        free(ps);
        return rc;
    }
    in->prom = ps;
    return 0;
}

void rf_http_ingest_release(rf_http_ingest *in)
{
    struct rf_prom_state *ps = in ? in->prom : NULL;
    if (!ps)
        return;
    arena_reset(ps);
    while (ps->chunks) {
        arena_chunk *n = ps->chunks->next;
        free(ps->chunks);
        ps->chunks = n;
    }
    rf_http_buf_release(ps->srv, &ps->raw);
    free(ps->text);
    free(ps);
    in->prom = NULL;
}
