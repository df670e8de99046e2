/* The binary decoders' shared state (http_pvt.h): the bounded protobuf
 * arena, the line text buffer and line-protocol escaping. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http_pvt.h"

/* ---- arena --------------------------------------------------------------------
 * protobuf-c allocates every message, array and string of a request; a bump
 * arena makes that a pointer increment, frees it all at once, and bounds it:
 * past arena_max the allocation fails, so does the unpack. */

static void *arena_alloc(void *user, size_t size)
{
    rf_decode_state *ps = user;
    size = (size + 15) & ~(size_t)15;
    arena_chunk *c = ps->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > RF_DECODE_KEEP ? size : RF_DECODE_KEEP;
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

ProtobufCAllocator rf_decode_allocator(rf_decode_state *ps)
{
    return (ProtobufCAllocator){.alloc = arena_alloc, .free = arena_free, .allocator_data = ps};
}

/* Keeps the oldest chunk (at most RF_DECODE_KEEP) for the next request. */
void rf_decode_arena_reset(rf_decode_state *ps)
{
    arena_chunk *c = ps->chunks, *keep = NULL;
    while (c) {
        arena_chunk *next = c->next;
        if (!next && c->cap <= RF_DECODE_KEEP) {
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

rf_decode_state *rf_decode_state_get(rf_http_server *s, rf_http_ingest *in, uint64_t arena_max,
                                     rf_err *err)
{
    if (!in || !in->parse) {
        rf_err_set(err, EINVAL, "http: the binary endpoints need a parse context");
        return NULL;
    }
    if (in->dec)
        return in->dec;
    rf_decode_state *ps = calloc(1, sizeof(*ps));
    char *text = malloc(RF_DECODE_TEXT_CAP);
    if (!ps || !text) {
        free(ps);
        free(text);
        rf_err_set(err, ENOMEM, "http: out of memory for the binary decoders");
        return NULL;
    }
    ps->srv = s;
    ps->in = in;
    ps->text = text;
    ps->arena_max = arena_max ? arena_max : 64u << 20;
    in->dec = ps;
    return ps;
}

void rf_http_ingest_release(rf_http_ingest *in)
{
    rf_decode_state *ps = in ? in->dec : NULL;
    if (!ps)
        return;
    rf_decode_arena_reset(ps);
    while (ps->chunks) {
        arena_chunk *n = ps->chunks->next;
        free(ps->chunks);
        ps->chunks = n;
    }
    rf_http_buf_release(ps->srv, &ps->raw);
    free(ps->text);
    free(ps->series);
    free(ps);
    in->dec = NULL;
}

/* ---- text ---------------------------------------------------------------------- */

void rf_decode_text_flush(rf_decode_state *ps, const rf_recv_info *rx, size_t *rejected)
{
    if (ps->text_len) {
        *rejected += rf_parse_influx(ps->in->parse, rx, ps->text, ps->text_len);
        ps->text_len = 0;
    }
}

/* A backslash is doubled so that one before an escaped character keeps its
 * meaning. */
bool rf_lp_put_escaped(char *out, size_t *o, size_t cap, const char *s, bool tag)
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

/* Digits without printf; the common case for counters and most gauges. */
size_t rf_lp_put_i64(char *out, int64_t v)
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

/* Most sample values are short decimals (12.5, 0.1, 1234.56). Such a value v
 * is written as "<m>e-<k>" with the smallest k for which the integer m,
 * below 2^53, gives back v as m / 10^k: that division is exact operands
 * correctly rounded, i.e. the correctly rounded value of the decimal m*10^-k,
 * which is what the parser computes from the text (its fast path performs
 * the very same division). So the value reads back bit for bit, without the
 * printf("%.17g") that cost a third of remote_write's time (PERFORMANCE.md,
 * "HTTP ingest"); anything else still takes printf. */
size_t rf_lp_put_value(char *out, double v)
{
    static const double p10[] = {1e0, 1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,
                                 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
    if (v == 0 && signbit(v)) {
        memcpy(out, "-0", 2); /* the sign of a zero is data (a gauge that went negative) */
        return 2;
    }
    /* The range test first: converting a double outside int64 is undefined. */
    if (fabs(v) < 1e15 && v == (double)(int64_t)v)
        return rf_lp_put_i64(out, (int64_t)v); /* a float without '.' is still a float */
    for (int k = 1; k < (int)(sizeof(p10) / sizeof(p10[0])); k++) {
        double m = nearbyint(v * p10[k]);
        if (!(fabs(m) < 9007199254740992.0)) /* 2^53; also false for NaN */
            break;
        if (m / p10[k] == v) {
            size_t o = rf_lp_put_i64(out, (int64_t)m);
            out[o++] = 'e';
            out[o++] = '-';
            if (k >= 10)
                out[o++] = (char)('0' + k / 10);
            out[o++] = (char)('0' + k % 10);
            return o;
        }
    }
    return (size_t)snprintf(out, 32, "%.17g", v);
}
