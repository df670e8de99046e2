/* Decoded series (protocol.h, rf_parse_series): a binary decoder's labels and
 * samples straight into events.
 *
 * Why not through line protocol: remote_write used to write each sample as a
 * line ("name,k=v value=<v> <ms>") and parse it back. Writing the value as
 * text and reading it again, escaping labels and scanning them for escapes
 * cost more than the decode (PERFORMANCE.md, "HTTP ingest"). Here the series
 * goes through the same identity machinery as a line (rf_series_finish_line:
 * the raw cache, the miss path's canonical key and checks, announcements,
 * field types), with the raw cache keyed on the caller's raw bytes: a series
 * seen before costs one hash of its raw bytes and one cache probe, and every
 * further sample of it in the same call none. */
#include <math.h>

#include "ingest/protocol/protocol_pvt.h"

/* The series' tags as the miss path wants them, in ctx->tags: the id tag
 * left out, '\n' refused. */
static enum rf_parse_result decoded_split(rf_parse_ctx *ctx, const void *arg,
                                          rf_series_parts *parts)
{
    const rf_parse_series *s = arg;
    parts->measurement = (rf_span){s->measurement, s->measurement_len};
    parts->esc = RF_ESC_NONE;
    parts->esc_tags = RF_ESC_NONE;
    parts->multi_tags = false;
    parts->tags = ctx->tags;
    parts->ntags = 0;
    if (memchr(s->measurement, '\n', s->measurement_len))
        return RF_PARSE_REJ_SYNTAX;
    for (uint32_t i = 0; i < s->ntags; i++) {
        const rf_parse_tag *t = &s->tags[i];
        if (ctx->id_tag_len && rf_is_id_tag(ctx, t->key, t->key_len))
            continue;
        if (parts->ntags >= ctx->cfg.max_tags)
            return RF_PARSE_REJ_TOO_MANY_TAGS;
        if (memchr(t->key, '\n', t->key_len) || memchr(t->value, '\n', t->value_len))
            return RF_PARSE_REJ_SYNTAX;
        ctx->tags[parts->ntags++] = (rf_tag){
            .key = {t->key, t->key_len},
            .value = {t->value, t->value_len},
            .has_value = true,
        };
    }
    return RF_PARSE_OK;
}

/* Chains component hashes: for a series without raw bytes, or whose raw
 * bytes hold the id tag (the cache must not see one entry per id). */
static XXH128_hash_t hash_names(const rf_parse_ctx *ctx, const rf_parse_series *s)
{
    XXH128_hash_t h = XXH3_128bits_withSeed(s->measurement, s->measurement_len, RF_PROTO_DECODED);
    for (uint32_t i = 0; i < s->ntags; i++) {
        const rf_parse_tag *t = &s->tags[i];
        if (ctx->id_tag_len && rf_is_id_tag(ctx, t->key, t->key_len))
            continue;
        /* Key and value apart, so that ("ab","c") and ("a","bc") differ. */
        h = XXH3_128bits_withSeed(t->key, t->key_len, h.low64 ^ 0x6b);
        h = XXH3_128bits_withSeed(t->value, t->value_len, h.high64 ^ 0x76);
    }
    return h;
}

void rf_parse_series_begin(rf_parse_ctx *ctx, const rf_recv_info *rx, rf_parse_series *s)
{
    RF_ASSERT_OWNER(&ctx->owner);
    rf_parse_begin(ctx, rx);
    s->known = false;
    s->correlation_id = 0;
    bool id_tag = false;
    if (RF_UNLIKELY(ctx->id_tag_len)) {
        for (uint32_t i = 0; i < s->ntags; i++) {
            const rf_parse_tag *t = &s->tags[i];
            if (rf_is_id_tag(ctx, t->key, t->key_len)) {
                if (!id_tag) /* the first one gives the id, as in DogStatsD */
                    s->correlation_id = rf_corr_id_of(t->value, t->value_len);
                id_tag = true;
            }
        }
    }
    XXH128_hash_t h = s->raw && !id_tag
                          ? XXH3_128bits_withSeed(s->raw, s->raw_len, RF_PROTO_DECODED)
                          : hash_names(ctx, s);
    s->raw_lo = h.low64;
    s->raw_hi = h.high64;
    __builtin_prefetch(&ctx->raw[(uint32_t)h.low64 & ~3u & ctx->raw_mask]);
}

/* "measurement,k=v,..." escaped as line protocol, for the reject log. */
static size_t series_excerpt(const rf_parse_series *s, char *out, size_t cap)
{
    size_t o = 0;
    for (uint32_t c = 0; c <= 2 * s->ntags; c++) {
        const char *p = s->measurement;
        size_t n = s->measurement_len;
        if (c) {
            const rf_parse_tag *t = &s->tags[(c - 1) / 2];
            p = c % 2 ? t->key : t->value;
            n = c % 2 ? t->key_len : t->value_len;
            if (o < cap)
                out[o++] = c % 2 ? ',' : '=';
        }
        for (size_t i = 0; i < n && o + 2 <= cap; i++) {
            if (p[i] == ',' || p[i] == ' ' || p[i] == '\\' || (c && p[i] == '='))
                out[o++] = '\\';
            out[o++] = p[i];
        }
    }
    return o;
}

static enum rf_parse_result sample(rf_parse_ctx *ctx, rf_parse_series *s, double value,
                                   int64_t time, bool *clamped)
{
    if (!isfinite(value))
        return RF_PARSE_REJ_OUT_OF_RANGE;
    int64_t ts;
    if (__builtin_mul_overflow(time, rf_precision_ns(s->precision), &ts))
        return RF_PARSE_REJ_OUT_OF_RANGE;
    uint8_t flags = RF_EVF_HAS_CLIENT_TIME;
    enum rf_parse_result r = rf_ts_check(ctx, &ts, &flags, clamped);
    if (r)
        return r;
    rf_pending *f = &ctx->pend[0];
    rf_pending_init(f, s->field, s->field_len, RF_ESC_NONE, RF_KIND_GAUGE);
    f->value_type = RF_VALUE_F64;
    f->value.f64 = value;
    if (s->known) {
        /* Resolved, typed and announced by an earlier sample of this call. */
        f->series_id = s->series_id;
        f->fresh = 0;
        rf_series_emit_line(ctx, f, 1, ts, flags, s->correlation_id);
        return RF_PARSE_OK;
    }
    XXH128_hash_t raw = {.low64 = s->raw_lo, .high64 = s->raw_hi};
    r = rf_series_finish_line(ctx, raw, 1, decoded_split, s, ts, flags, s->correlation_id);
    if (r == RF_PARSE_OK) {
        s->known = true;
        s->series_id = f->series_id;
    }
    return r;
}

size_t rf_parse_series_f64(rf_parse_ctx *ctx, rf_parse_series *s, double value, int64_t time)
{
    RF_ASSERT_OWNER(&ctx->owner);
    bool clamped = false;
    enum rf_parse_result r = sample(ctx, s, value, time, &clamped);
    if (RF_LIKELY(r == RF_PARSE_OK)) {
        rf_stats_add(&ctx->counters[RF_PC_LINES_OK], 1);
        if (RF_UNLIKELY(clamped))
            rf_ts_count_clamped(ctx, r);
        return 0;
    }
    char ex[RF_REJECT_EXCERPT_MAX];
    size_t n = series_excerpt(s, ex, sizeof(ex));
    rf_reject_line(ctx, rf_parse_reject_reason(r), ex, n);
    return 1;
}
