/* Sinks: object lifetime, the JSON-lines writer, line formatting and the
 * count-only stand-in for storage. Forwarder I/O is in sink_net.c. */
#include "stages/sink/sink_pvt.h"

#include "core/mem/bound.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

#define SINK_DEFAULT_BUFFER (256u * 1024u)
#define SINK_MIN_BUFFER 4096u

/* ---------------------------------------------------------------- formatting */

void rf_sink_time_rfc3339_nano(int64_t wall_ns, char *buf)
{
    /* gmtime_r is the slow part; a sink writes many events per second of
     * event time, so the date-time prefix is cached per thread. */
    static __thread int64_t cached_sec = INT64_MIN;
    static __thread char cached[80]; /* 19 used; sized for any int */
    int64_t sec = wall_ns / RF_NS_PER_S;
    int64_t ns = wall_ns % RF_NS_PER_S;
    if (ns < 0) {
        ns += RF_NS_PER_S;
        sec -= 1;
    }
    if (sec != cached_sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = sec;
    }
    memcpy(buf, cached, 19);
    buf[19] = '.';
    for (int i = 28; i >= 20; i--) {
        buf[i] = (char)('0' + ns % 10);
        ns /= 10;
    }
    buf[29] = 'Z';
    buf[30] = '\0';
}

/* A small cursor over a caller's buffer; `over` records that it ran out. */
typedef struct out {
    char *p;
    uint32_t n, cap;
    bool over;
} out;

static void put(out *o, const char *s, size_t len)
{
    if (o->over || o->n + len > o->cap) {
        o->over = true;
        return;
    }
    memcpy(o->p + o->n, s, len);
    o->n += (uint32_t)len;
}

static void puts_(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out *o, const char *fmt, ...)
{
    if (o->over)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
    va_end(ap);
    if (k < 0 || (uint32_t)k >= o->cap - o->n)
        o->over = true;
    else
        o->n += (uint32_t)k;
}

/* Decimal integers without vsnprintf: the line protocol sinks write a
 * timestamp per line and often an integer value, and vsnprintf's format
 * parsing cost more than the rest of the line (stages/sink/format_lp). */
static void put_u64(out *o, uint64_t v)
{
    char b[20];
    char *p = b + sizeof(b);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, p, (size_t)(b + sizeof(b) - p));
}

static void put_i64(out *o, int64_t v)
{
    if (v < 0) {
        put(o, "-", 1);
        put_u64(o, -(uint64_t)v); /* INT64_MIN too: its magnitude fits a uint64 */
    } else {
        put_u64(o, (uint64_t)v);
    }
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void put_double(out *o, double v)
{
    /* An integer below 1e15 in magnitude: %.15g prints exactly its digits
     * (no exponent below 15 digits), and so does put_i64. -0 stays with
     * snprintf ("-0"). */
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v && (v != 0 || !signbit(v))) {
        put_i64(o, (int64_t)v);
        return;
    }
    /* Two decimals at most (money, percentages, most gauges): v is the
     * double nearest k/100 with k below 1e15, so k/100 lies on %.15g's
     * grid and v within far less than half a step of it: %.15g prints
     * exactly k/100, without trailing zeros, in fixed notation (0.01 <=
     * |v| < 1e13), and it reads back as v. */
    if (v > -1e13 && v < 1e13 && v != 0) {
        const int64_t k = llround(v * 100.0);
        if ((double)k / 100.0 == v) {
            const uint64_t m = k < 0 ? -(uint64_t)k : (uint64_t)k;
            if (k < 0)
                put(o, "-", 1);
            put_u64(o, m / 100);
            const char frac[3] = {'.', (char)('0' + m / 10 % 10), (char)('0' + m % 10)};
            if (m % 100)
                put(o, frac, m % 10 ? 3 : 2);
            return;
        }
    }
    char b[32];
    snprintf(b, sizeof(b), "%.15g", v);
    if (strtod(b, NULL) != v)
        snprintf(b, sizeof(b), "%.17g", v);
    puts_(o, b);
}

static void put_json_str(out *o, const char *s, size_t len)
{
    put(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, s + run, i - run);
        run = i + 1;
        if (c == '"')
            put(o, "\\\"", 2);
        else if (c == '\\')
            put(o, "\\\\", 2);
        else if (c == '\n')
            put(o, "\\n", 2);
        else
            putf(o, "\\u%04x", c);
    }
    put(o, s + run, len - run);
    put(o, "\"", 1);
}

static const char *const kind_names[RF_KIND__COUNT] = {
    "gauge",      "counter",   "gauge_delta", "timer",      "histogram",  "distribution", "set",
    "cumulative", "aggregate", "alert",       "correlated", "series_def", "peer",
};

static const char *series_text(const rf_sink_namer *nm, uint64_t id, uint32_t *len)
{
    if (nm && nm->series_text)
        return nm->series_text(nm->ctx, id, len);
    return NULL;
}

static const char *rule_name(const rf_sink_namer *nm, uint32_t id)
{
    if (nm && nm->rule_name)
        return nm->rule_name(nm->ctx, id);
    return NULL;
}

/* A string value's text (core/event/event.h: an owned block for one pass),
 * or NULL when the event has none (then no sink can write it faithfully). */
static const rf_event_text *string_text(const rf_event *ev)
{
    if (ev->value_type != RF_VALUE_STRING || !(ev->flags & RF_EVF_OWNS_AUX) || !ev->aux)
        return NULL;
    return (const rf_event_text *)(uintptr_t)ev->aux;
}

/* A StatsD set member travels as its hash alone (the parser keeps no text:
 * a set only counts distinct members), so "#<hash>" is all of it a sink can
 * write, and is what it writes; any other string without its text is
 * refused (counted unsupported). */
static bool set_member_hash_only(const rf_event *ev)
{
    return ev->value_type == RF_VALUE_STRING && ev->kind == RF_KIND_SET && !string_text(ev);
}

static void put_json_value(out *o, const rf_event *ev)
{
    switch (ev->value_type) {
    case RF_VALUE_I64: putf(o, "%" PRId64, ev->value.i64); break;
    case RF_VALUE_U64: putf(o, "%" PRIu64, ev->value.u64); break;
    case RF_VALUE_BOOL: puts_(o, ev->value.u64 ? "true" : "false"); break;
    case RF_VALUE_STRING: {
        const rf_event_text *t = string_text(ev); /* the caller checked it is there */
        if (t)
            put_json_str(o, t->text, t->len);
        else /* a set member: its identity is its hash (set_member_hash_only) */
            putf(o, "\"#%016" PRIx64 "\"", ev->value.u64);
        break;
    }
    default:
        if (isfinite(ev->value.f64))
            put_double(o, ev->value.f64);
        else
            puts_(o, "null");
    }
}

int rf_sink_format_json(const rf_sink_namer *namer, const rf_event *ev, char *buf, uint32_t cap)
{
    out o = {buf, 0, cap, false};
    if (ev->value_type == RF_VALUE_STRING && !string_text(ev) && !set_member_hash_only(ev))
        return 0; /* its text is gone: unsupported, rather than a hash for a value */
    char ts[32];
    rf_sink_time_rfc3339_nano(ev->event_time_ns, ts);
    puts_(&o, "{\"time\":\"");
    put(&o, ts, 30);
    puts_(&o, "\",\"series\":");
    uint32_t tl = 0;
    const char *t = series_text(namer, ev->series_id, &tl);
    if (t)
        put_json_str(&o, t, tl);
    else
        putf(&o, "null,\"series_id\":\"%016" PRIx64 "\"", ev->series_id);
    puts_(&o, ",\"value\":");
    put_json_value(&o, ev);
    puts_(&o, ",\"kind\":\"");
    puts_(&o, ev->kind < RF_KIND__COUNT ? kind_names[ev->kind] : "unknown");
    puts_(&o, ev->priority == RF_PRIO_CRITICAL ? "\",\"priority\":\"critical\""
                                               : "\",\"priority\":\"standard\"");
    if (ev->kind == RF_KIND_ALERT) {
        const char *rn = rule_name(namer, (uint32_t)ev->aux);
        puts_(&o, ",\"rule\":");
        if (rn)
            put_json_str(&o, rn, strlen(rn));
        else
            putf(&o, "\"%" PRIu32 "\"", (uint32_t)ev->aux);
        puts_(&o, (ev->flags & RF_EVF_ALERT_RESOLVED) ? ",\"state\":\"resolved\""
                                                      : ",\"state\":\"firing\"");
    } else if (ev->kind == RF_KIND_CORRELATED) {
        putf(&o, ",\"members\":%" PRIu32 ",\"pattern\":%" PRIu32, (uint32_t)ev->aux,
             (uint32_t)(ev->aux >> 32));
    }
    if (ev->correlation_id)
        putf(&o, ",\"correlation_id\":\"%016" PRIx64 "\"", ev->correlation_id);
    puts_(&o, "}\n");
    return o.over ? -ENOSPC : (int)o.n;
}

/* Line protocol escaping for a tag value: ',', '=', ' ' get a backslash. */
static void put_lp_tag(out *o, const char *s)
{
    for (; *s; s++) {
        if (*s == ',' || *s == '=' || *s == ' ')
            put(o, "\\", 1);
        put(o, s, 1);
    }
}

static void put_lp_strfield(out *o, const char *s, size_t len)
{
    put(o, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            put(o, "\\", 1);
        put(o, s + i, 1);
    }
    put(o, "\"", 1);
}

int rf_sink_format_lp(const rf_sink_namer *namer, const rf_event *ev, char *buf, uint32_t cap)
{
    out o = {buf, 0, cap, false};
    uint32_t tl = 0;
    const char *t = series_text(namer, ev->series_id, &tl);
    if (ev->kind == RF_KIND_ALERT) {
        const char *rn = rule_name(namer, (uint32_t)ev->aux);
        puts_(&o, "ringflow_alert,rule=");
        if (rn)
            put_lp_tag(&o, rn);
        else
            putf(&o, "%" PRIu32, (uint32_t)ev->aux);
        puts_(&o, (ev->flags & RF_EVF_ALERT_RESOLVED) ? " state=\"resolved\",value="
                                                      : " state=\"firing\",value=");
        put_double(&o, rf_event_value_as_f64(ev));
        if (t) {
            puts_(&o, ",series=");
            put_lp_strfield(&o, t, tl);
        }
    } else if (ev->kind == RF_KIND_CORRELATED) {
        putf(&o,
             "ringflow_correlated,pattern=%" PRIu32 " members=%" PRIu32 "i,span_ns=%" PRId64
             "i,correlation_id=%" PRIu64 "u",
             (uint32_t)(ev->aux >> 32), (uint32_t)ev->aux, ev->value.i64, ev->correlation_id);
    } else {
        if (!t)
            return 0;
        const rf_event_text *text = string_text(ev);
        /* A string without its text cannot be written, nor one holding a
         * newline: it would end the line (InfluxDB's parser splits there). */
        if (ev->value_type == RF_VALUE_STRING &&
            (!text || memchr(text->text, '\n', text->len) != NULL))
            return 0;
        put(&o, t, tl);
        put(&o, "=", 1);
        /* A sampled StatsD counter stands for value / rate events. */
        const bool sampled =
            ev->kind == RF_KIND_COUNTER && ev->sample_rate > 0.0f && ev->sample_rate < 1.0f;
        switch (sampled ? RF_VALUE_F64 : ev->value_type) {
        case RF_VALUE_I64:
            put_i64(&o, ev->value.i64);
            put(&o, "i", 1);
            break;
        case RF_VALUE_U64:
            put_u64(&o, ev->value.u64);
            put(&o, "u", 1);
            break;
        case RF_VALUE_BOOL: puts_(&o, ev->value.u64 ? "true" : "false"); break;
        case RF_VALUE_STRING: put_lp_strfield(&o, text->text, text->len); break;
        default: {
            const double v =
                sampled ? rf_event_value_as_f64(ev) / (double)ev->sample_rate : ev->value.f64;
            if (!isfinite(v))
                return 0; /* line protocol has no NaN/Inf */
            put_double(&o, v);
        }
        }
    }
    put(&o, " ", 1);
    put_i64(&o, ev->event_time_ns);
    put(&o, "\n", 1);
    return o.over ? -ENOSPC : (int)o.n;
}

/* ---------------------------------------------------------------- lifetime */

int rf_sink_type_parse(const char *name)
{
    static const char *const names[] = {"json",        "lp_udp", "lp_tcp",
                                        "count_only",  "store",  "prom_remote_write",
                                        "influx_http", "nats"};
    for (int i = 0; i < 8; i++) {
        if (strcmp(name, names[i]) == 0)
            return i;
    }
    return -1;
}

int rf_sink_new(const rf_sink_config *cfg, const rf_sink_namer *namer, rf_sink **out_sink,
                rf_err *err)
{
    const char *nm = cfg->name ? cfg->name : "(unnamed)";
    if (cfg->type == RF_SINK_STORE)
        return rf_err_set(err, EINVAL,
                          "sink %s: type store is served by the engine's storage, "
                          "not by an rf_sink",
                          nm);
    if ((unsigned)cfg->type > RF_SINK_NATS)
        return rf_err_set(err, EINVAL, "sink %s: unknown type %d", nm, (int)cfg->type);
    rf_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return rf_err_set(err, ENOMEM, "sink %s: out of memory", nm);
    s->type = cfg->type;
    snprintf(s->name, sizeof(s->name), "%s", nm);
    if (namer)
        s->namer = *namer;
    s->fd = -1;
    s->sock = -1;
    int rc = 0;
    if (cfg->type != RF_SINK_COUNT_ONLY) {
        s->cap = cfg->buffer_bytes ? cfg->buffer_bytes : SINK_DEFAULT_BUFFER;
        if (s->cap < SINK_MIN_BUFFER)
            s->cap = SINK_MIN_BUFFER;
        s->buf = malloc(s->cap);
        if (!s->buf) {
            rc = rf_err_set(err, ENOMEM, "sink %s: out of memory for %u buffer bytes", nm, s->cap);
            goto fail;
        }
    }
    if (cfg->type == RF_SINK_JSON) {
        if (cfg->fd > 0) {
            s->fd = cfg->fd;
        } else if (!cfg->path || strcmp(cfg->path, "-") == 0) {
            s->fd = STDOUT_FILENO;
        } else {
            s->fd = open(cfg->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (s->fd < 0) {
                rc = rf_err_set(err, errno, "sink %s: open %s: %s", nm, cfg->path, strerror(errno));
                goto fail;
            }
            s->own_fd = true;
        }
    } else if (cfg->type == RF_SINK_LP_UDP || cfg->type == RF_SINK_LP_TCP) {
        rc = rf_sink_net_open(s, cfg, err);
        if (rc)
            goto fail;
    } else if (sink_is_http(cfg->type)) {
        rc = rf_sink_http_open(s, cfg, err);
        if (rc)
            goto fail;
    }
    *out_sink = s;
    return 0;
fail:
    free(s->buf);
    free(s);
    return rc;
}

void rf_sink_free(rf_sink *s)
{
    if (!s)
        return;
    /* One last non-blocking attempt; a forwarder that is not connected does
     * not start a connect while closing. */
    if (s->type == RF_SINK_JSON || ((s->type == RF_SINK_LP_UDP || s->type == RF_SINK_LP_TCP) &&
                                    s->st.state == RF_SINK_CONNECTED))
        rf_sink_flush(s, rf_clock_mono_ns());
    if (s->own_fd)
        close(s->fd);
    if (s->type == RF_SINK_LP_UDP || s->type == RF_SINK_LP_TCP)
        rf_sink_net_close(s);
    if (sink_is_http(s->type))
        rf_sink_http_close(s);
    free(s->buf);
    free(s);
}

uint64_t rf_sink_discard_pending(rf_sink *s)
{
    /* Every queued line ends in '\n', the one being sent included (head may
     * be inside it), so the newlines in [head, tail) are the lines lost. */
    uint64_t lines = 0;
    for (uint32_t i = s->head; i < s->tail; i++)
        lines += s->buf[i] == '\n';
    ST_ADD(s, drop_disconnected, lines);
    s->head = s->tail = 0;
    sink_publish_queued(s);
    return lines;
}

const char *rf_sink_name(const rf_sink *s)
{
    return s->name;
}

enum rf_sink_type rf_sink_type_of(const rf_sink *s)
{
    return s->type;
}

uint32_t rf_sink_pending(const rf_sink *s)
{
    return s->tail - s->head;
}

void rf_sink_stats_read(const rf_sink *s, rf_sink_stats *o)
{
    /* Field by field, relaxed: pairs with ST_ADD/ST_SET (sink_pvt.h). */
    memset(o, 0, sizeof(*o));
#define LOAD(f) o->f = __atomic_load_n(&s->st.f, __ATOMIC_RELAXED)
    LOAD(accepted);
    LOAD(lines_out);
    LOAD(bytes_out);
    LOAD(flushes);
    LOAD(drop_queue_full);
    LOAD(drop_disconnected);
    LOAD(drop_unsupported);
    LOAD(drop_string_unsupported);
    LOAD(blocked_ns);
    LOAD(drop_oversize);
    LOAD(drop_io_error);
    LOAD(connects);
    LOAD(connect_failures);
    LOAD(disconnects);
    LOAD(breaker_opens);
    LOAD(state);
    LOAD(queued_bytes); /* the worker publishes tail - head (sink_publish_queued) */
    LOAD(next_attempt_ns);
    for (int k = 0; k < RF_KIND__COUNT; k++)
        LOAD(by_kind[k]);
    LOAD(critical);
    LOAD(would_store_bytes);
#undef LOAD
    if (s->fwd) {
        o->has_fwd = true;
        rf_fwd_stats_read(s->fwd, &o->fwd);
    }
}

/* ---------------------------------------------------------------- write/flush */

static int json_flush(rf_sink *s)
{
    int rc = 0;
    while (s->tail > s->head) {
        ssize_t k = write(s->fd, s->buf + s->head, s->tail - s->head);
        if (k > 0) {
            /* Count whole lines handed over; a partial write leaves the rest queued. */
            const char *p = s->buf + s->head;
            for (ssize_t i = 0; i < k; i++)
                ST_ADD(s, lines_out, p[i] == '\n');
            ST_ADD(s, bytes_out, (uint64_t)k);
            sink_buf_consumed(s, (uint32_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break; /* a full pipe: keep the bytes, try on the next flush */
        rc = k < 0 ? -errno : -EIO;
        const char *p = s->buf + s->head;
        uint32_t lines = 0;
        for (uint32_t i = 0; i < s->tail - s->head; i++)
            lines += p[i] == '\n';
        ST_ADD(s, drop_io_error, lines);
        if (!s->io_error_logged) {
            rf_log_error("sink", "sink %s: write failed: %s; dropping %u lines (logged once)",
                         s->name, strerror(-rc), lines);
            s->io_error_logged = true;
        }
        s->head = s->tail = 0;
        break;
    }
    return rc;
}

int rf_sink_flush(rf_sink *s, int64_t now_ns)
{
    int rc = 0;
    switch (s->type) {
    case RF_SINK_JSON:
        if (s->tail == s->head)
            return 0;
        ST_ADD(s, flushes, 1);
        rc = json_flush(s);
        break;
    case RF_SINK_LP_UDP:
    case RF_SINK_LP_TCP: rc = rf_sink_net_flush(s, now_ns); break;
    case RF_SINK_PROM_REMOTE_WRITE:
    case RF_SINK_INFLUX_HTTP:
    case RF_SINK_NATS: rc = rf_sink_http_flush(s, now_ns, false); break;
    default: return 0;
    }
    sink_publish_queued(s);
    return rc;
}

uint32_t rf_sink_write(rf_sink *s, const rf_event *events, uint32_t n)
{
    if (s->type == RF_SINK_COUNT_ONLY) {
        for (uint32_t i = 0; i < n; i++) {
            uint8_t k = events[i].kind;
            ST_ADD(s, by_kind[k < RF_KIND__COUNT ? k : 0], 1);
            ST_ADD(s, critical, events[i].priority == RF_PRIO_CRITICAL);
        }
        ST_ADD(s, accepted, n);
        ST_ADD(s, would_store_bytes, (uint64_t)n * RF_EVENT_SIZE);
        return n;
    }
    bool lp = s->type != RF_SINK_JSON;
    if (lp && s->breaker == BREAKER_OPEN) {
        ST_ADD(s, drop_disconnected, n); /* fail fast while the breaker is open */
        return 0;
    }
    uint32_t accepted = 0;
    for (uint32_t i = 0; i < n; i++) {
        const rf_event *ev = &events[i];
        if (ev->kind == RF_KIND_SERIES_DEF)
            continue;
        if (ev->value_type == RF_VALUE_STRING && s->type == RF_SINK_PROM_REMOTE_WRITE) {
            /* remote_write samples are numbers: a string cannot travel. */
            ST_ADD(s, drop_unsupported, 1);
            ST_ADD(s, drop_string_unsupported, 1);
            continue;
        }
        int k = lp ? rf_sink_format_lp(&s->namer, ev, s->buf + s->tail, s->cap - s->tail)
                   : rf_sink_format_json(&s->namer, ev, s->buf + s->tail, s->cap - s->tail);
        if (k == -ENOSPC && s->head > 0) {
            sink_buf_compact(s);
            k = lp ? rf_sink_format_lp(&s->namer, ev, s->buf + s->tail, s->cap - s->tail)
                   : rf_sink_format_json(&s->namer, ev, s->buf + s->tail, s->cap - s->tail);
        }
        /* Policy block: wait for the sender rather than drop; the worker
         * stops reading its inputs meanwhile (back-pressure). */
        while (k == -ENOSPC && s->block && rf_sink_http_wait_room(s))
            k = rf_sink_format_lp(&s->namer, ev, s->buf + s->tail, s->cap - s->tail);
        if (k == -ENOSPC && !lp) {
            /* JSON: a batch larger than the buffer goes out in pieces. */
            json_flush(s);
            sink_buf_compact(s);
            k = rf_sink_format_json(&s->namer, ev, s->buf + s->tail, s->cap - s->tail);
        }
        if (k == 0) {
            ST_ADD(s, drop_unsupported, 1);
            continue;
        }
        if (k < 0) {
            ST_ADD(s, drop_queue_full, 1);
            continue;
        }
        if (s->type == RF_SINK_LP_UDP && (uint32_t)k > s->max_datagram) {
            ST_ADD(s, drop_oversize, 1);
            continue;
        }
        s->tail += (uint32_t)k;
        accepted++;
    }
    ST_ADD(s, accepted, accepted);
    sink_publish_queued(s);
    return accepted;
}

bool rf_sink_write_line(rf_sink *s, const char *line, uint32_t len)
{
    if (s->type == RF_SINK_COUNT_ONLY || s->type == RF_SINK_JSON || len == 0 ||
        line[len - 1] != '\n') {
        ST_ADD(s, drop_unsupported, 1);
        return false;
    }
    if (s->breaker == BREAKER_OPEN) {
        ST_ADD(s, drop_disconnected, 1);
        return false;
    }
    if (s->cap - s->tail < len && s->head > 0)
        sink_buf_compact(s);
    if (s->cap - s->tail < len) {
        ST_ADD(s, drop_queue_full, 1);
        return false;
    }
    if (s->type == RF_SINK_LP_UDP && len > s->max_datagram) {
        ST_ADD(s, drop_oversize, 1);
        return false;
    }
    memcpy(s->buf + s->tail, line, len);
    s->tail += len;
    ST_ADD(s, accepted, 1);
    return true;
}

uint64_t rf_sink_memory_bound(const rf_sink_config *cfg)
{
    if (cfg->type == RF_SINK_STORE)
        return 0;
    uint64_t b = rf_mem_alloc_bound(sizeof(rf_sink));
    if (cfg->type != RF_SINK_COUNT_ONLY) {
        uint64_t cap = cfg->buffer_bytes ? cfg->buffer_bytes : SINK_DEFAULT_BUFFER;
        b += rf_mem_alloc_bound(cap < SINK_MIN_BUFFER ? SINK_MIN_BUFFER : cap);
    }
    if (sink_is_http(cfg->type))
        b += rf_fwd_memory_bound(&cfg->http);
    return b;
}
