/* Graphite plaintext protocol:
 *
 *   <path>[;<tag>=<value>...] <value> [<timestamp>]
 *
 * Separated by one or more blanks (space or tab). The value is a decimal
 * float (a leading '+' is accepted, as carbon's float() does; nan and inf are
 * not). The timestamp is Unix seconds, integer or with a fraction (kept to the
 * nanosecond, further digits truncated); "-1" or no timestamp means the receive
 * wall time (collectd and carbon clients send -1 for "now"); outside the
 * window it is rejected or clamped (cfg.ts_policy). Graphite 1.1 tags
 * follow the path, ';'-separated, each "tag=value" (split at the first '=',
 * both non-empty); they are sorted into the canonical key like any other tags.
 * Field name "value", kind RF_KIND_GAUGE. With templates
 * (rf_parse_config.graphite_templates) the path's parts name the
 * measurement, the field and tags instead; they are applied on the miss
 * path only: the mapping is a function of the path, so the raw cache keyed
 * by the path (and the field "value") stays right. */
#include "core/bytes/bytes.h"
#include "core/clock/clock.h"
#include "ingest/protocol/graphite_pvt.h"

#include <strings.h>

struct graphite_series {
    rf_span path; /* path with its ";tags" */
};

static enum rf_parse_result graphite_split(rf_parse_ctx *ctx, const void *arg,
                                           rf_series_parts *parts)
{
    const struct graphite_series *s = arg;
    const char *p = s->path.p, *end = p + s->path.len;
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *me = semi ? semi : end;
    parts->measurement = (rf_span){p, (uint32_t)(me - p)};
    parts->esc = RF_ESC_NONE;
    parts->esc_tags = RF_ESC_NONE;
    parts->multi_tags = false;
    parts->tags = ctx->tags;
    parts->ntags = 0;
    for (const char *q = me; q < end;) { /* at a ';' */
        q++;
        const char *te = memchr(q, ';', (size_t)(end - q));
        if (!te)
            te = end;
        const char *eq = memchr(q, '=', (size_t)(te - q));
        if (!eq)
            return RF_PARSE_REJ_SYNTAX;
        if (parts->ntags >= ctx->cfg.max_tags)
            return RF_PARSE_REJ_TOO_MANY_TAGS;
        ctx->tags[parts->ntags++] = (rf_tag){
            .key = {q, (uint32_t)(eq - q)},
            .value = {eq + 1, (uint32_t)(te - eq - 1)},
            .has_value = true,
        };
        q = te;
    }
    if (ctx->cfg.graphite_templates)
        return rf_gt_apply(ctx, ctx->cfg.graphite_templates, parts->measurement, parts,
                           &ctx->pend[0].field);
    return RF_PARSE_OK;
}

/* Every occurrence of the id tag taken out of the path's tags by walking
 * them all (graphite_take_id's path for a line that repeats it). */
static uint64_t graphite_take_id_all(rf_parse_ctx *ctx, rf_span *path)
{
    const char *p = path->p, *end = p + path->len;
    const char *semi = memchr(p, ';', path->len);
    if (!semi)
        return 0;
    char *out = ctx->idless;
    size_t n = (size_t)(semi - p);
    memcpy(out, p, n);
    bool found = false;
    uint64_t id = 0;
    for (const char *q = semi; q < end;) { /* at a ';' */
        const char *t = q + 1;
        const char *te = memchr(t, ';', (size_t)(end - t));
        if (!te)
            te = end;
        const char *eq = memchr(t, '=', (size_t)(te - t));
        if (eq && rf_is_id_tag(ctx, t, (size_t)(eq - t))) {
            if (!found)
                id = rf_corr_id_of(eq + 1, (size_t)(te - eq - 1));
            found = true;
        } else {
            memcpy(out + n, q, (size_t)(te - q));
            n += (size_t)(te - q);
        }
        q = te;
    }
    if (!found)
        return 0;
    *path = (rf_span){out, (uint32_t)n};
    return id;
}

/* With an id tag configured (protocol.h, corr_id_tag): when the path's
 * ";tag=value" items have it, points *path at the path without it (a copy
 * in ctx->idless unless it was last) and returns the id of its value; else
 * 0, *path unchanged. */
static uint64_t graphite_take_id(rf_parse_ctx *ctx, rf_span *path)
{
    const char *p = path->p, *end = p + path->len;
    const char *k = rf_find_id_item(ctx, p, end, ';', '=', false, false);
    if (!k)
        return 0;
    const char *te = memchr(k, ';', (size_t)(end - k));
    if (!te)
        te = end;
    if (te < end && rf_find_id_item(ctx, te, end, ';', '=', false, false))
        return graphite_take_id_all(ctx, path);
    const char *v = k + ctx->id_tag_len + 1;
    uint64_t id = rf_corr_id_of(v, (size_t)(te - v));
    if (te == end) {
        *path = (rf_span){p, (uint32_t)(k - 1 - p)};
    } else {
        char *out = ctx->idless;
        const size_t head = (size_t)(k - p), tail = (size_t)(end - te - 1);
        memcpy(out, p, head);
        memcpy(out + head, te + 1, tail);
        *path = (rf_span){out, (uint32_t)(head + tail)};
    }
    return id;
}

static inline bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* First ' ' or '\t' in [p, end), or end. Eight bytes per step: a byte of w
 * equals c exactly when the same byte of w ^ c*0x01..01 is zero, and the
 * classic (x - 0x01..01) & ~x & 0x80..80 marks the lowest zero byte
 * exactly (higher marks may be false positives, hence ctz of the lowest). */
static inline const char *find_blank(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - p >= 8) {
        const uint64_t w = rf_read_le64(p); /* p[0] is the low byte: ctz finds the first */
        uint64_t a = w ^ (ones * ' '), b = w ^ (ones * '\t');
        uint64_t m = ((a - ones) & ~a & highs) | ((b - ones) & ~b & highs);
        if (m)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
    while (p < end && !is_blank(*p))
        p++;
    return p;
}

/* "<digits>[.<digits>]" seconds -> ns. */
static enum rf_parse_result parse_seconds(const char *p, size_t n, int64_t *out)
{
    const char *dot = memchr(p, '.', n);
    size_t il = dot ? (size_t)(dot - p) : n;
    int64_t sec;
    enum rf_parse_result r = rf_parse_i64(p, il, &sec);
    if (r)
        return r;
    if (sec < 0)
        return RF_PARSE_REJ_OUT_OF_RANGE; /* only "-1" (handled by the caller) is allowed */
    int64_t ns = 0;
    if (dot) {
        size_t fl = n - il - 1;
        if (fl == 0)
            return RF_PARSE_REJ_BAD_NUMBER;
        int64_t scale = RF_NS_PER_S;
        for (size_t i = 0; i < fl; i++) {
            char c = dot[1 + i];
            if ((unsigned char)(c - '0') >= 10)
                return RF_PARSE_REJ_BAD_NUMBER;
            if (scale > 1) {
                scale /= 10;
                ns += (c - '0') * scale;
            }
        }
    }
    if (__builtin_mul_overflow(sec, RF_NS_PER_S, out) || __builtin_add_overflow(*out, ns, out))
        return RF_PARSE_REJ_OUT_OF_RANGE;
    return RF_PARSE_OK;
}

static enum rf_parse_result graphite_line(rf_parse_ctx *ctx, const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    while (p < end && is_blank(*p))
        p++;
    while (end > p && is_blank(end[-1]))
        end--;
    if (p == end)
        return RF_PARSE_SKIP;
    const char *pe = find_blank(p, end);
    if (pe == end)
        return RF_PARSE_REJ_SYNTAX; /* a path and nothing else */
    const char *v = pe;
    while (v < end && is_blank(*v))
        v++;
    const char *ve = find_blank(v, end);
    const char *t = ve;
    while (t < end && is_blank(*t))
        t++;
    const char *tend = find_blank(t, end);
    if (tend != end)
        return RF_PARSE_REJ_SYNTAX; /* more than three tokens */
    if (*p == ';')
        return RF_PARSE_REJ_SYNTAX; /* tags without a path */

    struct graphite_series ser = {.path = {p, (uint32_t)(pe - p)}};
    uint64_t cid = 0;
    if (RF_UNLIKELY(ctx->id_tag_len))
        cid = graphite_take_id(ctx, &ser.path);
    XXH128_hash_t raw = XXH3_128bits_withSeed(ser.path.p, ser.path.len, RF_PROTO_GRAPHITE);
    __builtin_prefetch(&ctx->raw[(uint32_t)raw.low64 & ~3u & ctx->raw_mask]);

    /* "nan": collectd's write_graphite sends it for a rate's first sample
     * (nothing to divide yet). No value, not a malformed one: skipped and
     * counted (nan_value), as the collectd listener does. */
    if (ve - v == 3 && strncasecmp(v, "nan", 3) == 0) {
        rf_stats_add(&ctx->counters[RF_PC_NAN_VALUES], 1);
        return RF_PARSE_SKIP;
    }
    rf_pending *f = &ctx->pend[0];
    rf_pending_init(f, "value", 5, RF_ESC_NONE, RF_KIND_GAUGE);
    f->value_type = RF_VALUE_F64;
    enum rf_parse_result r = rf_parse_f64(ctx, v, (size_t)(ve - v), true, &f->value.f64);
    if (r)
        return r;

    int64_t ts = ctx->rx->wall_ns;
    uint8_t flags = 0;
    bool clamped = false;
    size_t tl = (size_t)(tend - t);
    if (tl && !(tl == 2 && t[0] == '-' && t[1] == '1')) {
        if ((r = parse_seconds(t, tl, &ts)))
            return r;
        flags = RF_EVF_HAS_CLIENT_TIME;
        if ((r = rf_ts_check(ctx, &ts, &flags, &clamped)))
            return r;
    }
    r = rf_series_finish_line(ctx, raw, 1, graphite_split, &ser, ts, flags, cid);
    if (RF_UNLIKELY(clamped))
        return rf_ts_count_clamped(ctx, r);
    return r;
}

size_t rf_parse_graphite(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len)
{
    RF_ASSERT_OWNER(&ctx->owner);
    return rf_for_each_line(ctx, rx, buf, len, graphite_line);
}
