/* Series identity: canonical keys, the raw-bytes cache and the announced set.
 *
 * Hot path (series_lookup in protocol_pvt.h): the raw bytes of a line's series
 * section (measurement and tags exactly as received) are hashed to 128 bits
 * once per line, combined with each raw field name, and looked up in an
 * open-addressed table (probe window of 8, no tombstones: a full window
 * overwrites one of its slots and counts an eviction). A hit gives the id
 * without unescaping, validating or sorting anything: identical raw bytes were
 * validated when they were first cached. Two different raw (series, field)
 * pairs would share an entry only if they agree on a 64-bit check hash and the
 * slot group (see rf_series_lookup).
 *
 * Miss path (here): validate the components (NUL, UTF-8, empty names, tag
 * count, duplicates, key length), sort the tags by unescaped key, write the
 * canonical text (protocol.h documents the form) and hash it with
 * rf_series_id_of_key. Ids not yet in the announced set get an rf_series_key.
 * Nothing is inserted in either table until the whole line is known to be
 * valid (rf_series_emit_line), so a cached id is always an announced id. */
#include "ingest/protocol/protocol_pvt.h"

bool rf_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* ASCII runs, 8 bytes at a time */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ull)
                break;
            p += 8;
        }
        if (p >= end)
            break;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) < n)
            return false;
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false; /* overlong, out of range or surrogate */
        p += n;
    }
    return true;
}

static inline bool is_escapable(char c, uint8_t esc)
{
    switch (esc) {
    case RF_ESC_MEAS: return c == ',' || c == ' ' || c == '\\';
    case RF_ESC_KEY: return c == ',' || c == ' ' || c == '\\' || c == '=';
    default: return false;
    }
}

/* Next unescaped byte of s at *i, or -1 at the end. */
static inline int next_byte(rf_span s, uint32_t *i, uint8_t esc)
{
    if (*i >= s.len)
        return -1;
    char c = s.p[*i];
    if (c == '\\' && esc != RF_ESC_NONE && *i + 1 < s.len && is_escapable(s.p[*i + 1], esc)) {
        *i += 2;
        return (unsigned char)s.p[*i - 1];
    }
    *i += 1;
    return (unsigned char)c;
}

int rf_cmp_unescaped(rf_span a, rf_span b, uint8_t esc)
{
    uint32_t i = 0, j = 0;
    for (;;) {
        int x = next_byte(a, &i, esc), y = next_byte(b, &j, esc);
        if (x != y)
            return x < y ? -1 : 1; /* -1 (end) sorts first: a prefix comes first */
        if (x < 0)
            return 0;
    }
}

/* Appends the unescaped bytes of s re-escaped canonically (out_esc) to
 * ctx->canon at *len. False when max_key_len would be exceeded. */
static bool put_component(rf_parse_ctx *ctx, uint32_t *len, rf_span s, uint8_t in_esc,
                          uint8_t out_esc)
{
    uint32_t i = 0, n = *len, max = ctx->cfg.max_key_len;
    char *out = ctx->canon;
    int c;
    while ((c = next_byte(s, &i, in_esc)) >= 0) {
        if (is_escapable((char)c, out_esc)) {
            if (n + 2 > max)
                return false;
            out[n++] = '\\';
        } else if (n + 1 > max) {
            return false;
        }
        out[n++] = (char)c;
    }
    *len = n;
    return true;
}

static bool put_byte(rf_parse_ctx *ctx, uint32_t *len, char c)
{
    if (*len + 1 > ctx->cfg.max_key_len)
        return false;
    ctx->canon[(*len)++] = c;
    return true;
}

static enum rf_parse_result check_name(rf_span s, bool allow_empty)
{
    if (s.len == 0)
        return allow_empty ? 0 : RF_PARSE_REJ_SYNTAX;
    if (memchr(s.p, '\0', s.len))
        return RF_PARSE_REJ_NUL_BYTE;
    if (!rf_utf8_valid(s.p, s.len))
        return RF_PARSE_REJ_INVALID_UTF8;
    return RF_PARSE_OK;
}

/* Validates, sorts and writes "measurement[,k=v...]" into ctx->canon. */
static enum rf_parse_result build_prefix(rf_parse_ctx *ctx, rf_series_parts *parts,
                                         int32_t *prefix_len)
{
    enum rf_parse_result r = check_name(parts->measurement, false);
    if (r)
        return r;
    if (parts->ntags > ctx->cfg.max_tags)
        return RF_PARSE_REJ_TOO_MANY_TAGS;
    rf_tag *t = parts->tags;
    for (uint32_t i = 0; i < parts->ntags; i++) {
        if ((r = check_name(t[i].key, false)) || (r = check_name(t[i].value, !t[i].has_value)))
            return r;
    }
    /* Insertion sort: tag counts are small and this runs once per new raw
     * series. Equal keys: an error, except where the protocol allows
     * multi-valued tags (DogStatsD), which sort by value and drop exact
     * repeats. */
    uint32_t nt = 0;
    for (uint32_t i = 0; i < parts->ntags; i++) {
        rf_tag x = t[i];
        uint32_t j = nt;
        bool dup = false;
        while (j > 0) {
            int c = rf_cmp_unescaped(t[j - 1].key, x.key, parts->esc_tags);
            if (c == 0) {
                if (!parts->multi_tags)
                    return RF_PARSE_REJ_DUPLICATE_TAG;
                c = (int)t[j - 1].has_value - (int)x.has_value;
                if (c == 0 && x.has_value)
                    c = rf_cmp_unescaped(t[j - 1].value, x.value, parts->esc_tags);
                if (c == 0) {
                    dup = true;
                    break;
                }
            }
            if (c < 0)
                break;
            j--;
        }
        if (dup)
            continue;
        memmove(&t[j + 1], &t[j], (nt - j) * sizeof(*t));
        t[j] = x;
        nt++;
    }
    parts->ntags = nt;
    uint32_t n = 0;
    if (!put_component(ctx, &n, parts->measurement, parts->esc, RF_ESC_MEAS))
        return RF_PARSE_REJ_KEY_TOO_LONG;
    for (uint32_t i = 0; i < parts->ntags; i++) {
        if (!put_byte(ctx, &n, ',') ||
            !put_component(ctx, &n, t[i].key, parts->esc_tags, RF_ESC_KEY))
            return RF_PARSE_REJ_KEY_TOO_LONG;
        if (t[i].has_value && (!put_byte(ctx, &n, '=') ||
                               !put_component(ctx, &n, t[i].value, parts->esc_tags, RF_ESC_KEY)))
            return RF_PARSE_REJ_KEY_TOO_LONG;
    }
    *prefix_len = (int32_t)n;
    return RF_PARSE_OK;
}

static uint32_t measurement_canon_len(const rf_parse_ctx *ctx, uint32_t prefix_len)
{
    /* The measurement ends at the first unescaped ',' of the canonical text. */
    const char *c = ctx->canon;
    for (uint32_t i = 0; i < prefix_len; i++) {
        if (c[i] == '\\')
            i++;
        else if (c[i] == ',')
            return i;
    }
    return prefix_len;
}

static bool announced_contains(const rf_parse_ctx *ctx, uint64_t id)
{
    uint32_t i = (uint32_t)(id >> 32) & ctx->ann_mask;
    for (unsigned probe = 0; probe < 8; probe++) {
        uint64_t v = ctx->announced[(i + probe) & ctx->ann_mask];
        if (v == id)
            return true;
        if (v == 0)
            return false;
    }
    return false;
}

static void announced_insert(rf_parse_ctx *ctx, uint64_t id)
{
    uint32_t i = (uint32_t)(id >> 32) & ctx->ann_mask;
    for (unsigned probe = 0; probe < 8; probe++) {
        uint64_t *v = &ctx->announced[(i + probe) & ctx->ann_mask];
        if (*v == id)
            return;
        if (*v == 0) {
            *v = id;
            return;
        }
    }
    /* Window full: forget one (chosen by the id's low bits); it will be
     * announced again if it comes back through the miss path. */
    ctx->announced[(i + (id & 7)) & ctx->ann_mask] = id;
    rf_stats_add(&ctx->counters[RF_PC_ANNOUNCE_EVICTIONS], 1);
}

/* fixed_type: the field's type + 1 (never 0), kept in the check's low bits. */
static void raw_insert(rf_parse_ctx *ctx, uint64_t check, uint64_t raw_lo, uint64_t id,
                       uint8_t fixed_type)
{
    uint32_t i = rf_raw_home(ctx, check, raw_lo);
    for (unsigned probe = 0; probe < RF_RAW_PROBE; probe++) {
        rf_raw_slot *s = &ctx->raw[(i + probe) & ctx->raw_mask];
        if (s->check == 0 || (s->check & ~7ull) == check) {
            s->check = check | fixed_type;
            s->id = id;
            return;
        }
    }
    /* Window full: overwrite one slot of it (chosen by the check's bits). */
    rf_raw_slot *s = &ctx->raw[(i + ((check >> 32) % RF_RAW_PROBE)) & ctx->raw_mask];
    s->check = check | fixed_type;
    s->id = id;
    rf_stats_add(&ctx->counters[RF_PC_CACHE_EVICTIONS], 1);
}

enum rf_parse_result rf_series_resolve(rf_parse_ctx *ctx, rf_series_parts *parts,
                                       int32_t *prefix_len, rf_pending *p)
{
    enum rf_parse_result r;
    rf_stats_add(&ctx->counters[RF_PC_CACHE_MISSES], 1);
    if (*prefix_len < 0 && (r = build_prefix(ctx, parts, prefix_len)))
        return r;
    if ((r = check_name(p->field, false)))
        return r;
    uint32_t n = (uint32_t)*prefix_len;
    uint32_t mlen = measurement_canon_len(ctx, n);
    if (!put_byte(ctx, &n, ' '))
        return RF_PARSE_REJ_KEY_TOO_LONG;
    uint32_t field_off = n;
    if (!put_component(ctx, &n, p->field, p->field_esc, RF_ESC_KEY))
        return RF_PARSE_REJ_KEY_TOO_LONG;
    p->series_id = rf_series_id_of_key(ctx->canon, n);
    p->fresh = 1;
    p->def = NULL;
    if (!announced_contains(ctx, p->series_id)) {
        p->def = rf_series_key_new(ctx->canon, n, mlen, field_off);
        if (!p->def)
            return RF_PARSE_REJ_NO_MEMORY;
    }
    return RF_PARSE_OK;
}

void rf_series_drop_defs(rf_pending *pend, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (pend[i].def) {
            rf_series_key_free(pend[i].def);
            pend[i].def = NULL;
        }
    }
}

void rf_series_emit_line(rf_parse_ctx *ctx, rf_pending *pend, uint32_t n, int64_t event_time,
                         uint8_t flags, uint64_t correlation_id)
{
    const int64_t recv = ctx->rx->mono_ns;
    const uint16_t source = ctx->cfg.source_id;
    uint64_t defs = 0;
    for (uint32_t i = 0; i < n; i++) {
        rf_pending *p = &pend[i];
        if (RF_UNLIKELY(p->fresh)) {
            raw_insert(ctx, p->check, p->raw_lo, p->series_id, p->fixed_type);
            p->fresh = 0;
            if (p->def) {
                announced_insert(ctx, p->series_id);
                rf_event *d = rf_emit_slot(ctx);
                memset(d, 0, sizeof(*d));
                d->event_time_ns = event_time;
                d->recv_time_ns = recv;
                d->series_id = p->series_id;
                d->aux = (uint64_t)(uintptr_t)p->def;
                d->sample_rate = 1.0f;
                d->source_id = source;
                d->kind = RF_KIND_SERIES_DEF;
                d->flags = flags;
                p->def = NULL; /* ownership moves with the event */
                defs++;
                rf_emit_commit(ctx);
            }
        }
        rf_event *e = rf_emit_slot(ctx);
        e->event_time_ns = event_time;
        e->recv_time_ns = recv;
        e->series_id = p->series_id;
        e->value = p->value;
        e->correlation_id = correlation_id;
        /* a string's text block, else the parser's aux (StatsD: the rate's bits) */
        e->aux = p->owned ? (uint64_t)(uintptr_t)p->owned : p->aux;
        e->sample_rate = p->sample_rate;
        e->source_id = source;
        e->value_type = p->value_type;
        e->kind = p->kind;
        e->priority = RF_PRIO_STANDARD;
        e->flags = p->owned ? (uint8_t)(flags | RF_EVF_OWNS_AUX) : flags;
        p->owned = NULL; /* ownership moves with the event */
        e->subkind = 0;
        e->route_hint = 0;
        rf_emit_commit(ctx);
    }
    if (defs)
        rf_stats_add(&ctx->counters[RF_PC_SERIES_DEFS], defs);
    rf_stats_add(&ctx->counters[RF_PC_EVENTS], n);
}

/* A string value's text, unescaped (\" and \\), in a block of its own. */
static rf_event_text *text_of(const rf_pending *p)
{
    const char *s = p->text.p;
    size_t n = p->text.len, m = n;
    if (p->text_escaped)
        for (size_t i = 0; i + 1 < n; i++)
            if (s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\')) {
                m--;
                i++;
            }
    rf_event_text *t = rf_event_text_new(m);
    if (!t)
        return NULL;
    if (!p->text_escaped) {
        memcpy(t->text, s, n);
        return t;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\'))
            i++;
        t->text[o++] = s[i];
    }
    return t;
}

enum rf_parse_result rf_series_finish_line(rf_parse_ctx *ctx, XXH128_hash_t raw, uint32_t n,
                                           rf_split_fn split, const void *arg, int64_t event_time,
                                           uint8_t flags, uint64_t correlation_id)
{
    rf_pending *pend = ctx->pend;
    rf_series_parts parts;
    bool have_parts = false;
    int32_t prefix_len = -1;
    bool slow = false; /* a miss (a type to claim) or a string (a text to make) */
    for (uint32_t i = 0; i < n; i++) {
        slow |= pend[i].text.p != NULL;
        if (RF_LIKELY(rf_series_lookup(ctx, raw, &pend[i]))) {
            if (RF_LIKELY(pend[i].fixed_type == pend[i].value_type + 1u))
                continue;
            rf_series_drop_defs(pend, i);
            return RF_PARSE_REJ_FIELD_TYPE_CONFLICT;
        }
        /* The same series earlier in this line (packed StatsD values, a
         * repeated field key): reuse its id, announce it once. */
        uint32_t j = 0;
        while (j < i && pend[j].check != pend[i].check)
            j++;
        if (j < i) {
            pend[i].series_id = pend[j].series_id;
            continue;
        }
        slow = true;
        enum rf_parse_result r = RF_PARSE_OK;
        if (!have_parts) {
            r = split(ctx, arg, &parts);
            have_parts = true;
        }
        if (!r)
            r = rf_series_resolve(ctx, &parts, &prefix_len, &pend[i]);
        if (r) {
            rf_series_drop_defs(pend, i);
            return r;
        }
    }
    if (RF_LIKELY(!slow)) {
        rf_series_emit_line(ctx, pend, n, event_time, flags, correlation_id);
        return RF_PARSE_OK;
    }
    /* Ids the cache did not know: their types from the shared table (fixed
     * here when new), once per series and context. */
    for (uint32_t i = 0; i < n; i++) {
        rf_pending *f = &pend[i];
        if (RF_LIKELY(f->fixed_type))
            continue;
        int t = rf_field_types_claim(ctx->types, f->series_id, f->value_type);
        f->fixed_type = (uint8_t)((t < 0 ? f->value_type : t) + 1);
        if (f->fixed_type != f->value_type + 1u) {
            rf_series_drop_defs(pend, n);
            return RF_PARSE_REJ_FIELD_TYPE_CONFLICT;
        }
    }
    /* The texts of string values, once nothing can refuse the line but
     * their own allocation. */
    for (uint32_t i = 0; i < n; i++) {
        if (RF_LIKELY(!pend[i].text.p))
            continue;
        if (!(pend[i].owned = text_of(&pend[i]))) {
            for (uint32_t j = 0; j < i; j++)
                rf_event_text_free(pend[j].owned);
            rf_series_drop_defs(pend, n);
            return RF_PARSE_REJ_NO_MEMORY;
        }
    }
    rf_series_emit_line(ctx, pend, n, event_time, flags, correlation_id);
    return RF_PARSE_OK;
}
