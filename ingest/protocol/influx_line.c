/* InfluxDB line protocol:
 *
 *   <measurement>[,<tag key>=<tag value>...] <field key>=<value>[,...] [<timestamp>]
 *
 * Rules implemented (InfluxDB line protocol reference, "Special characters",
 * "Data types and format", "Comments"):
 *   - measurement: "\," and "\ " are escapes; tag keys, tag values and field
 *     keys: "\,", "\=" and "\ ". "\\" is one backslash everywhere; any other
 *     backslash is literal. A backslash as the last byte of the line is
 *     bad_escape. Tag values and keys must not be empty.
 *   - string field values: double-quoted, "\"" and "\\" are escapes, other
 *     backslashes literal; value.u64 = XXH3_64bits of the unescaped text;
 *     at most RF_STRING_MAX (64 KiB) unescaped bytes, else string_too_long.
 *   - field keys: the same key twice in a line keeps the last value (in the
 *     first one's place), as InfluxDB does; the key `time` is refused
 *     (time_field_key). A value whose type is not the one the field was
 *     first written with refuses the line (field_type_conflict, protocol.h
 *     "Field types").
 *   - integers "<int64>i", unsigned "<uint64>u" (range-checked), floats in
 *     decimal with optional fraction and exponent ("1", "-1.5", "1e-3", ".5",
 *     "1."); no leading '+', no inf/nan/hex; overflow (rounds to inf) and
 *     underflow (a non-zero value that rounds to 0, e.g. "1e-400") are both
 *     out_of_range; subnormals are kept (number.c).
 *   - booleans t T true True TRUE f F false False FALSE.
 *   - timestamp: optional signed integer in the configured precision,
 *     converted to ns with an overflow check; absent -> receive wall time;
 *     outside the window -> rejected or clamped (cfg.ts_policy).
 *   - '#' as the first non-blank byte: comment; blank lines skipped; leading
 *     blanks and trailing blanks / "\r" tolerated.
 * Each field becomes one event (kind RF_KIND_GAUGE: the protocol does not say
 * whether a field is a counter) with the line's timestamp. */
#include "ingest/protocol/protocol_pvt.h"

#include <errno.h>

#include "core/clock/clock.h"

int rf_parse_set_precision(rf_parse_ctx *ctx, enum rf_ts_precision precision)
{
    RF_ASSERT_OWNER(&ctx->owner);
    if ((unsigned)precision > RF_PRECISION_H)
        return -EINVAL;
    ctx->cfg.precision = precision;
    return 0;
}

int rf_parse_set_kind(rf_parse_ctx *ctx, unsigned kind)
{
    RF_ASSERT_OWNER(&ctx->owner);
    if (kind >= RF_KIND_SERIES_DEF)
        return -EINVAL;
    ctx->line_kind = (uint8_t)kind;
    return 0;
}

/* First c in [p, end) not escaped by an odd run of backslashes, or NULL. */
static inline const char *find_unescaped(const char *p, const char *end, char c)
{
    const char *start = p;
    while (p < end) {
        const char *hit = memchr(p, c, (size_t)(end - p));
        if (!hit)
            return NULL;
        const char *b = hit;
        while (b > start && b[-1] == '\\')
            b--;
        if (((hit - b) & 1) == 0)
            return hit;
        p = hit + 1;
    }
    return NULL;
}

/* Splits the series section into measurement and tags (miss path only). */
static enum rf_parse_result split_series(rf_parse_ctx *ctx, const char *p, const char *end,
                                         rf_series_parts *parts)
{
    parts->esc = RF_ESC_MEAS;
    parts->esc_tags = RF_ESC_KEY;
    parts->multi_tags = false;
    parts->tags = ctx->tags;
    parts->ntags = 0;
    const char *q = p;
    while (q < end && *q != ',') {
        if (*q == '\\' && q + 1 < end)
            q++;
        q++;
    }
    parts->measurement = (rf_span){p, (uint32_t)(q - p)};
    while (q < end) { /* at a ',' */
        q++;
        const char *k = q;
        while (q < end && *q != '=' && *q != ',') {
            if (*q == '\\' && q + 1 < end)
                q++;
            q++;
        }
        if (q >= end || *q != '=')
            return RF_PARSE_REJ_SYNTAX;
        const char *v = ++q;
        while (q < end && *q != ',') {
            if (*q == '=')
                return RF_PARSE_REJ_SYNTAX; /* unescaped '=' in a tag value */
            if (*q == '\\' && q + 1 < end)
                q++;
            q++;
        }
        if (parts->ntags >= ctx->cfg.max_tags)
            return RF_PARSE_REJ_TOO_MANY_TAGS;
        ctx->tags[parts->ntags++] = (rf_tag){
            .key = {k, (uint32_t)(v - 1 - k)},
            .value = {v, (uint32_t)(q - v)},
            .has_value = true,
        };
    }
    if (ctx->extra_seed) {
        rf_span ek = {ctx->extra_key, ctx->extra_key_len};
        for (uint32_t i = 0; i < parts->ntags; i++)
            if (rf_cmp_unescaped(ctx->tags[i].key, ek, RF_ESC_KEY) == 0)
                return RF_PARSE_OK; /* the line's own tag wins */
        if (parts->ntags >= ctx->cfg.max_tags)
            return RF_PARSE_REJ_TOO_MANY_TAGS;
        ctx->tags[parts->ntags++] = (rf_tag){
            .key = ek,
            .value = {ctx->extra_val, ctx->extra_val_len},
            .has_value = true,
        };
    }
    return RF_PARSE_OK;
}


/* Escapes for a tag key or value (',', '=', ' ', '\\'); returns the length. */
static uint32_t escape_tag(char *out, const char *in, size_t len)
{
    uint32_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ',' || c == '=' || c == ' ' || c == '\\')
            out[o++] = '\\';
        out[o++] = c;
    }
    return o;
}

int rf_parse_set_extra_tag(rf_parse_ctx *ctx, const char *key, const char *value)
{
    RF_ASSERT_OWNER(&ctx->owner);
    if (!value || !*value) {
        ctx->extra_seed = 0;
        return 0;
    }
    if (!key || !*key)
        return -EINVAL;
    size_t kl = strlen(key), vl = strlen(value);
    if (kl > RF_PARSE_EXTRA_TAG_MAX || vl > RF_PARSE_EXTRA_TAG_MAX)
        return -ENAMETOOLONG;
    if (!rf_utf8_valid(key, kl) || !rf_utf8_valid(value, vl))
        return -EILSEQ;
    ctx->extra_key_len = escape_tag(ctx->extra_key, key, kl);
    ctx->extra_val_len = escape_tag(ctx->extra_val, value, vl);
    uint64_t h = XXH3_64bits(ctx->extra_key, ctx->extra_key_len);
    h = XXH3_64bits_withSeed(ctx->extra_val, ctx->extra_val_len, h);
    ctx->extra_seed = h ? h : 1;
    return 0;
}

/* The id tag's item, every occurrence, taken out of the series section
 * [*p, *end) by walking all of it (influx_take_id's path for the rare line
 * that has the tag twice, or an escaped lookalike). */
static uint64_t influx_take_id_all(rf_parse_ctx *ctx, const char **p, const char **end)
{
    const char *s = *p, *e = *end;
    const uint32_t kl = ctx->id_tag_len;
    const char *q = s;
    while (q < e && *q != ',') {
        if (*q == '\\' && q + 1 < e)
            q++;
        q++;
    }
    char *out = ctx->idless;
    size_t n = (size_t)(q - s);
    memcpy(out, s, n);
    bool found = false;
    uint64_t id = 0;
    while (q < e) { /* at a ',' */
        const char *t = q + 1, *r = t;
        while (r < e && *r != ',') {
            if (*r == '\\' && r + 1 < e)
                r++;
            r++;
        }
        if ((size_t)(r - t) > kl && t[kl] == '=' && rf_is_id_tag(ctx, t, kl)) {
            if (!found) {
                /* The value unescaped (\, \= \space \\), as the canonical key would. */
                const char *v = t + kl + 1;
                size_t m = 0;
                for (; v < r; v++) {
                    if (*v == '\\' && v + 1 < r &&
                        (v[1] == ',' || v[1] == '=' || v[1] == ' ' || v[1] == '\\'))
                        v++;
                    ctx->unesc[m++] = *v;
                }
                id = rf_corr_id_of(ctx->unesc, m);
            }
            found = true;
        } else {
            memcpy(out + n, q, (size_t)(r - q));
            n += (size_t)(r - q);
        }
        q = r;
    }
    if (!found)
        return 0;
    *p = out;
    *end = out + n;
    return id;
}

static inline bool escaped_at(const char *start, const char *q)
{
    const char *b = q;
    while (b > start && b[-1] == '\\')
        b--;
    return (q - b) & 1;
}

/* With an id tag configured (protocol.h, corr_id_tag): when the series
 * section [*p, *end) has the tag, points it at the section without it (a
 * copy in ctx->idless, or a prefix of the line when the tag is last) and
 * returns the id of its value; else leaves it and returns 0. A key that
 * unescapes to the tag is written as the tag: the tag's bytes cannot be
 * escaped. */
static uint64_t influx_take_id(rf_parse_ctx *ctx, const char **p, const char **end)
{
    const char *s = *p, *e = *end;
    const uint32_t kl = ctx->id_tag_len;
    const char *k = rf_find_id_item(ctx, s, e, ',', '=', false, false);
    if (!k)
        return 0;
    if (escaped_at(s, k - 1))
        return influx_take_id_all(ctx, p, end);
    const char *v = k + kl + 1, *r = v;
    bool esc = false;
    while (r < e && *r != ',') {
        if (*r == '\\' && r + 1 < e) {
            r++;
            esc = true;
        }
        r++;
    }
    if (r < e && rf_find_id_item(ctx, r, e, ',', '=', false, false))
        return influx_take_id_all(ctx, p, end); /* twice: every one leaves */
    uint64_t id;
    if (!esc) {
        id = rf_corr_id_of(v, (size_t)(r - v));
    } else { /* unescaped (\, \= \space \\), as the canonical key would be */
        size_t m = 0;
        for (const char *c = v; c < r; c++) {
            if (*c == '\\' && c + 1 < r &&
                (c[1] == ',' || c[1] == '=' || c[1] == ' ' || c[1] == '\\'))
                c++;
            ctx->unesc[m++] = *c;
        }
        id = rf_corr_id_of(ctx->unesc, m);
    }
    if (r == e) { /* the last tag: the section is the line up to it */
        *end = k - 1;
        return id;
    }
    char *out = ctx->idless;
    const size_t head = (size_t)(k - 1 - s), tail = (size_t)(e - r);
    memcpy(out, s, head);
    memcpy(out + head, r, tail);
    *p = out;
    *end = out + head + tail;
    return id;
}

struct influx_series {
    const char *p, *end;
};

static enum rf_parse_result influx_split(rf_parse_ctx *ctx, const void *arg, rf_series_parts *parts)
{
    const struct influx_series *s = arg;
    return split_series(ctx, s->p, s->end, parts);
}

static inline bool bool_is(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(p, lit, n) == 0;
}

/* Parses the value starting at *pp (just after '='); leaves *pp at the byte
 * after the value (',', ' ' or end). */
static enum rf_parse_result parse_value(rf_parse_ctx *ctx, const char **pp, const char *end,
                                        rf_pending *f)
{
    const char *p = *pp;
    if (p >= end)
        return RF_PARSE_REJ_SYNTAX;
    if (*p == '"') {
        const char *s = ++p;
        bool escaped = false;
        for (;;) {
            if (p >= end)
                return (p - s >= 2 && p[-1] == '"' && p[-2] == '\\') ? RF_PARSE_REJ_BAD_ESCAPE
                                                                     : RF_PARSE_REJ_SYNTAX;
            char c = *p;
            if (c == '"')
                break;
            if (c == '\\') {
                if (p + 1 >= end)
                    return RF_PARSE_REJ_BAD_ESCAPE;
                if (p[1] == '"' || p[1] == '\\') {
                    escaped = true;
                    p += 2;
                    continue;
                }
            } else if (c == '\0') {
                return RF_PARSE_REJ_NUL_BYTE;
            }
            p++;
        }
        size_t n = (size_t)(p - s);
        if (n > RF_STRING_MAX && !escaped)
            return RF_PARSE_REJ_STRING_TOO_LONG;
        f->text = (rf_span){s, (uint32_t)n};
        f->text_escaped = escaped;
        if (!escaped) {
            f->value.u64 = XXH3_64bits(s, n);
        } else {
            char *u = ctx->unesc;
            size_t m = 0;
            for (size_t i = 0; i < n; i++) {
                if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
                    i++;
                u[m++] = s[i];
            }
            if (m > RF_STRING_MAX)
                return RF_PARSE_REJ_STRING_TOO_LONG;
            f->value.u64 = XXH3_64bits(u, m);
        }
        f->value_type = RF_VALUE_STRING;
        p++; /* closing quote */
        if (p < end && *p != ',' && *p != ' ')
            return RF_PARSE_REJ_SYNTAX;
        *pp = p;
        return RF_PARSE_OK;
    }
    char c0 = *p;
    if (c0 == 't' || c0 == 'T' || c0 == 'f' || c0 == 'F') {
        const char *s = p;
        while (p < end && *p != ',' && *p != ' ')
            p++;
        size_t n = (size_t)(p - s);
        *pp = p;
        f->value_type = RF_VALUE_BOOL;
        if (n == 1 || bool_is(s, n, "true") || bool_is(s, n, "True") || bool_is(s, n, "TRUE")) {
            f->value.u64 = (c0 == 't' || c0 == 'T');
            return RF_PARSE_OK;
        }
        if (bool_is(s, n, "false") || bool_is(s, n, "False") || bool_is(s, n, "FALSE")) {
            f->value.u64 = 0;
            return RF_PARSE_OK;
        }
        return RF_PARSE_REJ_BAD_NUMBER;
    }
    /* Numbers: one scan, then the suffix decides the type. */
    rf_numtok t;
    enum rf_parse_result r = rf_num_scan(p, end, false, &t);
    if (r)
        return r;
    p = t.end;
    char suf = p < end ? *p : 0;
    if (suf == 'i' || suf == 'u') {
        p++;
        if ((p < end && *p != ',' && *p != ' ') || (t.flags & (RF_NUM_DOT | RF_NUM_EXP)))
            return RF_PARSE_REJ_BAD_NUMBER;
        *pp = p;
        if (suf == 'u') {
            f->value_type = RF_VALUE_U64;
            if (t.flags & RF_NUM_NEG)
                return RF_PARSE_REJ_BAD_NUMBER;
            if (RF_UNLIKELY(t.nint > 19))
                return rf_parse_u64(t.start, t.nint, &f->value.u64);
            f->value.u64 = t.w;
            return RF_PARSE_OK;
        }
        f->value_type = RF_VALUE_I64;
        if (RF_UNLIKELY(t.nint > 19))
            return rf_parse_i64(t.start, (size_t)(t.end - t.start), &f->value.i64);
        bool neg = t.flags & RF_NUM_NEG;
        if (t.w > (uint64_t)INT64_MAX + neg)
            return RF_PARSE_REJ_OUT_OF_RANGE;
        f->value.i64 = neg ? (int64_t)(0 - t.w) : (int64_t)t.w;
        return RF_PARSE_OK;
    }
    if (p < end && *p != ',' && *p != ' ')
        return RF_PARSE_REJ_BAD_NUMBER;
    *pp = p;
    f->value_type = RF_VALUE_F64;
    return rf_num_f64(ctx, &t, &f->value.f64);
}

/* The index of an earlier field of the line with f's key (unescaped), or n. */
static uint32_t field_index(const rf_pending *pend, uint32_t n, const rf_pending *f)
{
    for (uint32_t j = 0; j < n; j++) {
        const rf_pending *o = &pend[j];
        if (o->field.len == f->field.len && memcmp(o->field.p, f->field.p, f->field.len) == 0)
            return j;
        if ((o->field_has_bs || f->field_has_bs) &&
            rf_cmp_unescaped(o->field, f->field, RF_ESC_KEY) == 0)
            return j;
    }
    return n;
}

static enum rf_parse_result influx_line(rf_parse_ctx *ctx, const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end || *p == '#')
        return RF_PARSE_SKIP; /* blank or comment */
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (RF_UNLIKELY(end[-1] == '\\')) {
        const char *b = end - 1;
        while (b > p && b[-1] == '\\')
            b--;
        if ((end - b) & 1)
            return RF_PARSE_REJ_BAD_ESCAPE; /* a lone backslash escapes nothing */
    }

    const char *sp = find_unescaped(p, end, ' ');
    if (!sp) {
        if (memchr(p, '\0', (size_t)(end - p)))
            return RF_PARSE_REJ_NUL_BYTE;
        return RF_PARSE_REJ_EMPTY_FIELD_SET;
    }
    const char *ser = p, *ser_end = sp;
    uint64_t cid = 0;
    if (RF_UNLIKELY(ctx->id_tag_len))
        cid = influx_take_id(ctx, &ser, &ser_end);
    XXH128_hash_t raw =
        XXH3_128bits_withSeed(ser, (size_t)(ser_end - ser), RF_PROTO_INFLUX ^ ctx->extra_seed);
    /* The cache group of this series: fetched while the fields are parsed. */
    __builtin_prefetch(&ctx->raw[(uint32_t)raw.low64 & ~3u & ctx->raw_mask]);

    rf_pending *pend = ctx->pend;
    uint32_t nf = 0, maxf = ctx->cfg.max_fields;
    /* Keys seen in this line, by (length, first byte): a key whose bit is
     * clear is no repeat, and the scan for one is skipped (escapes aside). */
    uint64_t seen = 0;
    bool any_bs = false;
    const char *q = sp + 1;
    if (q >= end)
        return RF_PARSE_REJ_EMPTY_FIELD_SET;
    for (;;) {
        const char *k = q;
        bool bs = false;
        while (q < end && *q != '=') {
            char c = *q;
            if (c == ' ' || c == ',')
                return RF_PARSE_REJ_SYNTAX;
            if (c == '\\' && q + 1 < end) {
                bs = true;
                q++;
            }
            q++;
        }
        if (q >= end || q == k)
            return RF_PARSE_REJ_SYNTAX;
        if (q - k == 4 && memcmp(k, "time", 4) == 0)
            return RF_PARSE_REJ_TIME_FIELD_KEY; /* no escape spells it otherwise */
        if (nf >= maxf)
            return RF_PARSE_REJ_TOO_MANY_FIELDS;
        rf_pending *f = &pend[nf];
        rf_pending_init(f, k, (uint32_t)(q - k), RF_ESC_KEY, ctx->line_kind);
        f->field_has_bs = bs;
        q++;
        enum rf_parse_result r = parse_value(ctx, &q, end, f);
        if (r)
            return r;
        /* A key given twice: the last value wins, in the first one's place. */
        uint64_t bit = 1ull << ((f->field.len * 31u + (unsigned char)*k) & 63u);
        any_bs |= bs;
        uint32_t j = (seen & bit) || any_bs ? field_index(pend, nf, f) : nf;
        seen |= bit;
        if (j < nf)
            pend[j] = *f;
        else
            nf++;
        if (q < end && *q == ',') {
            q++;
            continue;
        }
        break;
    }

    int64_t ts = ctx->rx->wall_ns;
    uint8_t flags = 0;
    bool clamped = false;
    if (q < end) { /* at a ' ' */
        while (q < end && *q == ' ')
            q++;
        const char *t = q;
        while (q < end && *q != ' ')
            q++;
        if (q != end)
            return RF_PARSE_REJ_SYNTAX; /* trailing blanks were stripped: junk after the timestamp */
        int64_t v;
        enum rf_parse_result r = rf_parse_i64(t, (size_t)(q - t), &v);
        if (r)
            return r;
        if (__builtin_mul_overflow(v, rf_precision_ns(ctx->cfg.precision), &ts))
            return RF_PARSE_REJ_OUT_OF_RANGE;
        flags = RF_EVF_HAS_CLIENT_TIME;
        if ((r = rf_ts_check(ctx, &ts, &flags, &clamped)))
            return r;
    }

    struct influx_series arg = {ser, ser_end};
    enum rf_parse_result r =
        rf_series_finish_line(ctx, raw, nf, influx_split, &arg, ts, flags, cid);
    if (RF_UNLIKELY(clamped))
        return rf_ts_count_clamped(ctx, r);
    return r;
}

size_t rf_parse_influx(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len)
{
    RF_ASSERT_OWNER(&ctx->owner);
    return rf_for_each_line(ctx, rx, buf, len, influx_line);
}
