/* StatsD with the DogStatsD extensions:
 *
 *   <name>:<value>[:<value>...]|<type>[|@<rate>][|#<tag>[:<value>],...][|T<unix s>][|...]
 *
 *   type  c counter (RF_KIND_COUNTER), g gauge (RF_KIND_GAUGE; a value with a
 *         leading '+' or '-' is a delta, RF_KIND_GAUGE_DELTA with the signed
 *         value), ms timer, h histogram, d distribution, s set (value.u64 =
 *         XXH3_64bits of the member text, value_type RF_VALUE_STRING; the
 *         member is taken whole, ':' included).
 *   @rate sample rate in (0, 1], stored in sample_rate (1.0 when absent) and,
 *         exactly as sent (a double: StatsD scales by 1/rate in double, and
 *         float 0.1 is not 0.1), as the bits of a double in aux (0 when
 *         absent). Every StatsD event carries RF_EVF_STATSD (stages/statsd
 *         flushes them).
 *   #tags DogStatsD tags, "k:v" (split at the first ':') or bare "k"; empty
 *         items (",,") are ignored.
 *   T     DogStatsD client timestamp, Unix seconds (window-checked: outside
 *         it rejected or clamped, per cfg.ts_policy).
 *   c:    DogStatsD container id: the tag container_id (an empty one is
 *         ignored).
 *   Other sections ("e:...") are ignored: newer agents add them and a
 *   collector must not reject the metric for them.
 * DogStatsD events (_e{<title bytes>,<text bytes>}:<title>|<text>|d:|h:|p:|t:|
 * s:|k:|#tags) and service checks (_sc|<name>|<status>|d:|h:|#tags|m:<msg>)
 * are routed as series of their own (not StatsD samples, so not flushed):
 * the title or name as the measurement, field "event" (value 1) or "status"
 * (0..3), tags the line's own plus host, priority, alert_type,
 * source_type_name, aggregation_key, container_id from their sections; d: is
 * the client time. An event's title and text are the string fields "title"
 * and "text", a check's message (m:, the rest of the line) the string field
 * "message"; texts are kept as sent (the "\n" DogStatsD writes for a
 * newline is not unescaped). Counted as RF_PC_DD_EVENTS /
 * RF_PC_DD_SERVICE_CHECKS.
 * Several values packed in one line ("name:1:2:3|h", DogStatsD protocol v1.1)
 * become one event each. Several lines per datagram, '\n'-separated.
 * Event time is the receive wall time unless |T is given. */
#include "core/clock/clock.h"
#include "ingest/protocol/protocol_pvt.h"

struct statsd_series {
    rf_span name;
    rf_span tags;      /* after "|#", may be empty */
    rf_span container; /* after "|c:", empty when none */
};

/* Every occurrence of the id tag taken out of the DogStatsD tags by walking
 * them all (statsd_take_id's path for a line that repeats the tag). */
static uint64_t statsd_take_id_all(rf_parse_ctx *ctx, rf_span *tags)
{
    const char *p = tags->p, *end = p + tags->len;
    char *out = ctx->idless;
    size_t n = 0;
    bool found = false;
    uint64_t id = 0;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *ie = c ? c : end;
        const char *colon = memchr(p, ':', (size_t)(ie - p));
        const char *ke = colon ? colon : ie;
        if (rf_is_id_tag(ctx, p, (size_t)(ke - p))) {
            if (!found && colon)
                id = rf_corr_id_of(colon + 1, (size_t)(ie - colon - 1));
            found = true;
        } else if (ie > p) {
            if (n)
                out[n++] = ',';
            memcpy(out + n, p, (size_t)(ie - p));
            n += (size_t)(ie - p);
        }
        p = ie + 1;
    }
    if (!found)
        return 0;
    *tags = (rf_span){out, (uint32_t)n};
    return id;
}

/* With an id tag configured (protocol.h, corr_id_tag): when the DogStatsD
 * tags have it, points *tags at them without it (every occurrence; a copy
 * in ctx->idless unless it was first or last) and returns the id of the
 * first one's value; else 0, *tags unchanged. */
static uint64_t statsd_take_id(rf_parse_ctx *ctx, rf_span *tags)
{
    const char *p = tags->p, *end = p + tags->len;
    const char *k = rf_find_id_item(ctx, p, end, ',', ':', true, true);
    if (!k)
        return 0;
    const char *ie = memchr(k, ',', (size_t)(end - k));
    if (!ie)
        ie = end;
    if (ie < end && rf_find_id_item(ctx, ie, end, ',', ':', false, true))
        return statsd_take_id_all(ctx, tags);
    const char *a = k + ctx->id_tag_len;
    uint64_t id = a < ie ? rf_corr_id_of(a + 1, (size_t)(ie - a - 1)) : 0;
    if (k == p) {
        const char *rest = ie < end ? ie + 1 : end;
        *tags = (rf_span){rest, (uint32_t)(end - rest)};
    } else if (ie == end) {
        *tags = (rf_span){p, (uint32_t)(k - 1 - p)};
    } else {
        char *out = ctx->idless;
        const size_t head = (size_t)(k - p), tail = (size_t)(end - ie - 1);
        memcpy(out, p, head);
        memcpy(out + head, ie + 1, tail);
        *tags = (rf_span){out, (uint32_t)(head + tail)};
    }
    return id;
}

static enum rf_parse_result statsd_split(rf_parse_ctx *ctx, const void *arg, rf_series_parts *parts)
{
    const struct statsd_series *s = arg;
    parts->measurement = s->name;
    parts->esc = RF_ESC_NONE;
    parts->esc_tags = RF_ESC_NONE;
    parts->multi_tags = true;
    parts->tags = ctx->tags;
    parts->ntags = 0;
    const char *p = s->tags.p, *end = p + s->tags.len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *ie = c ? c : end;
        if (ie > p) {
            if (parts->ntags >= ctx->cfg.max_tags)
                return RF_PARSE_REJ_TOO_MANY_TAGS;
            rf_tag *t = &ctx->tags[parts->ntags++];
            const char *colon = memchr(p, ':', (size_t)(ie - p));
            if (colon) {
                t->key = (rf_span){p, (uint32_t)(colon - p)};
                t->value = (rf_span){colon + 1, (uint32_t)(ie - colon - 1)};
                t->has_value = true;
            } else {
                t->key = (rf_span){p, (uint32_t)(ie - p)};
                t->value = (rf_span){ie, 0};
                t->has_value = false;
            }
        }
        p = ie + 1;
    }
    /* Borrowed from the line rather than composed into the tag text: no
     * scratch buffer to share with the rest of the line's parsing. */
    if (s->container.len) {
        if (parts->ntags >= ctx->cfg.max_tags)
            return RF_PARSE_REJ_TOO_MANY_TAGS;
        rf_tag *t = &ctx->tags[parts->ntags++];
        t->key = (rf_span){"container_id", 12};
        t->value = s->container;
        t->has_value = true;
    }
    return RF_PARSE_OK;
}

static const struct {
    char type[3];
    uint8_t type_len;
    uint8_t kind;
    uint8_t field_len;
    const char *field;
} statsd_types[] = {
    {"c", 1, RF_KIND_COUNTER, 5, "count"},
    {"g", 1, RF_KIND_GAUGE, 5, "gauge"},
    {"ms", 2, RF_KIND_TIMER, 5, "timer"},
    {"h", 1, RF_KIND_HISTOGRAM, 9, "histogram"},
    {"d", 1, RF_KIND_DISTRIBUTION, 12, "distribution"},
    {"s", 1, RF_KIND_SET, 3, "set"},
};

/* The series of a line (its correlation id taken out of the tags), then
 * the line's nf pending values emitted. */
static int statsd_finish(rf_parse_ctx *ctx, struct statsd_series *ser, uint32_t nf, int64_t ts,
                         uint8_t flags, bool clamped)
{
    uint64_t cid = 0;
    if (RF_UNLIKELY(ctx->id_tag_len) && ser->tags.len)
        cid = statsd_take_id(ctx, &ser->tags);
    XXH128_hash_t hn = XXH3_128bits_withSeed(ser->name.p, ser->name.len, RF_PROTO_STATSD);
    XXH128_hash_t ht = XXH3_128bits_withSeed(ser->tags.p, ser->tags.len, hn.low64);
    if (RF_UNLIKELY(ser->container.len))
        ht = XXH3_128bits_withSeed(ser->container.p, ser->container.len, ht.low64 ^ ht.high64);
    XXH128_hash_t raw = {.low64 = ht.low64, .high64 = ht.high64 ^ hn.high64};
    int r = rf_series_finish_line(ctx, raw, nf, statsd_split, ser, ts, flags, cid);
    if (RF_UNLIKELY(clamped))
        return rf_ts_count_clamped(ctx, r);
    return r;
}

/* DogStatsD metadata sections of events and service checks ("d:", "h:",
 * "p:", "t:", "s:", "k:", "c:", "#", "m:"): the client time, tags added to
 * the line's own ("h:" becomes host, "p:" priority, "t:" alert_type, "s:"
 * source_type_name, "k:" aggregation_key, "c:" container_id) composed into
 * ctx->unesc, and a check's message (*msg, p NULL when none). Returns 0 or
 * a reason + 1. */
static enum rf_parse_result dd_sections(rf_parse_ctx *ctx, const char *s, const char *end,
                                        struct statsd_series *ser, int64_t *ts, uint8_t *flags,
                                        bool *clamped, rf_span *msg)
{
    static const struct {
        char c;
        const char *key;
    } named[] = {{'h', "host"},
                 {'p', "priority"},
                 {'t', "alert_type"},
                 {'s', "source_type_name"},
                 {'k', "aggregation_key"},
                 {'c', "container_id"}};
    char *out = ctx->unesc;
    size_t n = 0, cap = ctx->cfg.max_line_len;
    const char *own = NULL;
    size_t own_len = 0;
    while (s < end) { /* at a '|' */
        s++;
        if (s >= end)
            break; /* a trailing '|': no section */
        const char *se = memchr(s, '|', (size_t)(end - s));
        if (!se)
            se = end;
        if (s[0] == 'm' && se - s >= 2 && s[1] == ':') {
            /* a check's message: the rest of the line, whatever it holds */
            *msg = (rf_span){s + 2, (uint32_t)(end - s - 2)};
            break;
        }
        if (s[0] == '#') {
            own = s + 1;
            own_len = (size_t)(se - s - 1);
        } else if (s[0] == 'd' && se - s >= 2 && s[1] == ':') {
            int64_t sec;
            enum rf_parse_result e = rf_parse_i64(s + 2, (size_t)(se - s - 2), &sec);
            if (e)
                return e;
            if (__builtin_mul_overflow(sec, RF_NS_PER_S, ts))
                return RF_PARSE_REJ_OUT_OF_RANGE;
            *flags = RF_EVF_HAS_CLIENT_TIME;
            *clamped = false;
            if ((e = rf_ts_check(ctx, ts, flags, clamped)))
                return e;
        } else if (se - s >= 2 && s[1] == ':') {
            for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
                if (s[0] != named[i].c || se - s == 2)
                    continue;
                size_t kl = strlen(named[i].key), vl = (size_t)(se - s - 2);
                if (n + kl + vl + 2 > cap)
                    return RF_PARSE_REJ_LINE_TOO_LONG;
                if (n)
                    out[n++] = ',';
                memcpy(out + n, named[i].key, kl);
                out[n + kl] = ':';
                memcpy(out + n + kl + 1, s + 2, vl);
                n += kl + 1 + vl;
            }
        }
        s = se;
    }
    if (own_len) {
        if (n + own_len + 1 > cap)
            return RF_PARSE_REJ_LINE_TOO_LONG;
        if (n)
            out[n++] = ',';
        memcpy(out + n, own, own_len);
        n += own_len;
    }
    ser->tags = (rf_span){out, (uint32_t)n};
    return RF_PARSE_OK;
}

/* A string field of an event or a check: its text borrowed from the line
 * (rf_series_finish_line makes the owned block once the line is good). */
static enum rf_parse_result dd_string(rf_pending *f, const char *field, rf_span text)
{
    if (text.len > RF_STRING_MAX)
        return RF_PARSE_REJ_STRING_TOO_LONG;
    if (memchr(text.p, '\0', text.len))
        return RF_PARSE_REJ_NUL_BYTE;
    rf_pending_init(f, field, (uint32_t)strlen(field), RF_ESC_NONE, RF_KIND_GAUGE);
    f->value_type = RF_VALUE_STRING;
    f->value.u64 = XXH3_64bits(text.p, text.len);
    f->text = text;
    f->text_escaped = 0;
    return RF_PARSE_OK;
}

/* An event or a service check: series `name` (tags and time from the
 * sections at s), field `field` = value, then the string fields: an event's
 * title and text (text.p set), a check's message (when it has one);
 * counted in `counter`. */
static int dd_emit(rf_parse_ctx *ctx, rf_span name, const char *s, const char *end,
                   const char *field, double value, rf_span text, enum rf_parse_counter_id counter)
{
    struct statsd_series ser = {.name = name};
    int64_t ts = ctx->rx->wall_ns;
    uint8_t flags = 0;
    bool clamped = false;
    rf_span msg = {NULL, 0};
    int r = dd_sections(ctx, s, end, &ser, &ts, &flags, &clamped, &msg);
    if (r)
        return r;
    rf_pending *f = &ctx->pend[0];
    rf_pending_init(f, field, (uint32_t)strlen(field), RF_ESC_NONE, RF_KIND_GAUGE);
    f->value_type = RF_VALUE_F64;
    f->value.f64 = value;
    uint32_t nf = 1;
    if ((text.p ? 3u : msg.p ? 2u : 1u) > ctx->cfg.max_fields)
        return RF_PARSE_REJ_TOO_MANY_FIELDS;
    if (text.p) {
        if ((r = dd_string(&ctx->pend[nf++], "title", name)) ||
            (r = dd_string(&ctx->pend[nf++], "text", text)))
            return r;
    } else if (msg.p) {
        if ((r = dd_string(&ctx->pend[nf++], "message", msg)))
            return r;
    }
    r = statsd_finish(ctx, &ser, nf, ts, flags, clamped);
    if (!r)
        rf_stats_add(&ctx->counters[counter], 1);
    return r;
}

/* A DogStatsD event, _e{<title bytes>,<text bytes>}:<title>|<text>|...:
 * routed as measurement = the title, field "event", value 1 (kind gauge,
 * not flushed), tags from its sections (dd_sections). */
static enum rf_parse_result dd_event(rf_parse_ctx *ctx, const char *p, const char *end)
{
    const char *q = p + 3, *comma = memchr(q, ',', (size_t)(end - q));
    if (!comma)
        return RF_PARSE_REJ_SYNTAX;
    const char *close = memchr(comma, '}', (size_t)(end - comma));
    int64_t tl, xl;
    if (!close || close + 1 >= end || close[1] != ':' ||
        rf_parse_i64(q, (size_t)(comma - q), &tl) ||
        rf_parse_i64(comma + 1, (size_t)(close - comma - 1), &xl) || tl <= 0 || xl < 0)
        return RF_PARSE_REJ_SYNTAX;
    const char *title = close + 2;
    if (tl + xl + 1 > end - title || title[tl] != '|')
        return RF_PARSE_REJ_SYNTAX;
    const char *after = title + tl + 1 + xl;
    if (after < end && *after != '|')
        return RF_PARSE_REJ_SYNTAX;
    return dd_emit(ctx, (rf_span){title, (uint32_t)tl}, after, end, "event", 1,
                   (rf_span){title + tl + 1, (uint32_t)xl}, RF_PC_DD_EVENTS);
}

/* A DogStatsD service check, _sc|<name>|<status 0..3>|...: measurement =
 * the name, field "status", value the status, tags from its sections. */
static enum rf_parse_result dd_service_check(rf_parse_ctx *ctx, const char *p, const char *end)
{
    const char *name = p + 4, *nb = memchr(name, '|', (size_t)(end - name));
    if (!nb || nb == name)
        return RF_PARSE_REJ_SYNTAX;
    const char *st = nb + 1, *sb = memchr(st, '|', (size_t)(end - st));
    if (!sb)
        sb = end;
    int64_t status;
    if (rf_parse_i64(st, (size_t)(sb - st), &status) || status < 0 || status > 3)
        return RF_PARSE_REJ_BAD_NUMBER;
    return dd_emit(ctx, (rf_span){name, (uint32_t)(nb - name)}, sb, end, "status", (double)status,
                   (rf_span){NULL, 0}, RF_PC_DD_SERVICE_CHECKS);
}

static enum rf_parse_result statsd_line(rf_parse_ctx *ctx, const char *line, size_t len)
{
    const char *p = line, *end = line + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end)
        return RF_PARSE_SKIP;
    if (RF_UNLIKELY(*p == '_')) {
        if (end - p > 3 && memcmp(p, "_e{", 3) == 0)
            return dd_event(ctx, p, end);
        if (end - p > 4 && memcmp(p, "_sc|", 4) == 0)
            return dd_service_check(ctx, p, end);
    }
    const char *bar = memchr(p, '|', (size_t)(end - p));
    if (!bar)
        return RF_PARSE_REJ_SYNTAX;
    const char *colon = memchr(p, ':', (size_t)(bar - p));
    if (!colon || colon == p || colon + 1 == bar)
        return RF_PARSE_REJ_SYNTAX;
    struct statsd_series ser = {.name = {p, (uint32_t)(colon - p)}, .tags = {bar, 0}};

    /* type */
    const char *t = bar + 1;
    const char *tb = memchr(t, '|', (size_t)(end - t));
    const char *te = tb ? tb : end;
    int ti = -1;
    for (unsigned i = 0; i < sizeof(statsd_types) / sizeof(statsd_types[0]); i++) {
        if ((size_t)(te - t) == statsd_types[i].type_len &&
            memcmp(t, statsd_types[i].type, statsd_types[i].type_len) == 0) {
            ti = (int)i;
            break;
        }
    }
    if (ti < 0)
        return (te == t) ? RF_PARSE_REJ_SYNTAX : RF_PARSE_REJ_UNKNOWN_TYPE;
    uint8_t kind = statsd_types[ti].kind;
    const char *field = statsd_types[ti].field;
    uint32_t field_len = statsd_types[ti].field_len;

    /* sections */
    double rate = 1.0;
    int64_t ts = ctx->rx->wall_ns;
    uint8_t flags = 0;
    bool have_tags = false, clamped = false;
    for (const char *s = te; s < end;) { /* at a '|' */
        s++;
        const char *se = memchr(s, '|', (size_t)(end - s));
        if (!se)
            se = end;
        if (se == s)
            return RF_PARSE_REJ_SYNTAX;
        if (*s == '@') {
            double r;
            enum rf_parse_result e = rf_parse_f64(ctx, s + 1, (size_t)(se - s - 1), false, &r);
            if (e)
                return e;
            if (!(r > 0.0 && r <= 1.0))
                return RF_PARSE_REJ_OUT_OF_RANGE;
            rate = r;
        } else if (*s == '#') {
            if (have_tags)
                return RF_PARSE_REJ_SYNTAX;
            have_tags = true;
            ser.tags = (rf_span){s + 1, (uint32_t)(se - s - 1)};
        } else if (*s == 'T') {
            int64_t sec;
            enum rf_parse_result e = rf_parse_i64(s + 1, (size_t)(se - s - 1), &sec);
            if (e)
                return e;
            if (__builtin_mul_overflow(sec, RF_NS_PER_S, &ts))
                return RF_PARSE_REJ_OUT_OF_RANGE;
            flags = RF_EVF_HAS_CLIENT_TIME;
            clamped = false; /* the last |T counts */
            if ((e = rf_ts_check(ctx, &ts, &flags, &clamped)))
                return e;
        } else if (*s == 'c' && se - s >= 2 && s[1] == ':') {
            ser.container = (rf_span){s + 2, (uint32_t)(se - s - 2)};
        }
        s = se;
    }

    /* values */
    uint32_t nf = 0;
    const char *v = colon + 1;
    while (v <= bar) {
        const char *ve;
        if (kind == RF_KIND_SET) {
            ve = bar;
        } else {
            ve = memchr(v, ':', (size_t)(bar - v));
            if (!ve)
                ve = bar;
        }
        if (nf >= ctx->cfg.max_fields)
            return RF_PARSE_REJ_TOO_MANY_FIELDS;
        rf_pending *f = &ctx->pend[nf];
        rf_pending_init(f, field, field_len, RF_ESC_NONE, kind);
        f->sample_rate = (float)rate;
        if (rate != 1.0)
            memcpy(&f->aux, &rate, sizeof(f->aux));
        size_t n = (size_t)(ve - v);
        if (n == 0)
            return RF_PARSE_REJ_SYNTAX;
        if (kind == RF_KIND_SET) {
            if (memchr(v, '\0', n))
                return RF_PARSE_REJ_NUL_BYTE;
            f->value_type = RF_VALUE_STRING;
            f->value.u64 = XXH3_64bits(v, n);
        } else {
            bool sign = (*v == '+' || *v == '-');
            enum rf_parse_result e = rf_parse_f64(ctx, v, n, kind == RF_KIND_GAUGE, &f->value.f64);
            if (e)
                return e;
            f->value_type = RF_VALUE_F64;
            if (kind == RF_KIND_GAUGE && sign)
                f->kind = RF_KIND_GAUGE_DELTA;
        }
        nf++;
        v = ve + 1;
    }

    return statsd_finish(ctx, &ser, nf, ts, (uint8_t)(flags | RF_EVF_STATSD), clamped);
}

size_t rf_parse_statsd(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len)
{
    RF_ASSERT_OWNER(&ctx->owner);
    return rf_for_each_line(ctx, rx, buf, len, statsd_line);
}
