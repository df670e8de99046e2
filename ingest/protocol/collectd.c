/* collectd's binary network protocol (the `network` plugin), one datagram
 * at a time. Mapping as Telegraf's collectd parser ("split" mode):
 *
 *   measurement  <plugin>_<data source name>, the data source named by the
 *                types.db entry of the value list's type (load ->
 *                load_shortterm, load_midterm, load_longterm); a type the
 *                types.db lacks (or no types.db): "value" for a single
 *                value, else its index ("0", "1", ...);
 *   tags         host, instance (the plugin instance), type, type_instance,
 *                each only when not empty;
 *   field        value (float64, whatever the wire type: gauge, derive,
 *                counter, absolute; kind gauge for gauges and absolutes,
 *                cumulative for counters and derives);
 *   time         time_hr (2^-30 s) or time (s) of the value list, else the
 *                receipt time.
 *
 * Parts: <type u16 BE><length u16 BE, header included><payload>; strings are
 * NUL-terminated. host 0x0000, time 0x0001, plugin 0x0002, plugin instance
 * 0x0003, type 0x0004, type instance 0x0005, values 0x0006 (count u16 BE,
 * count type bytes, count 8-byte values: gauge little-endian double, the
 * others big-endian integers), interval 0x0007, time_hr 0x0008, interval_hr
 * 0x0009; notifications (0x0100 message, 0x0101 severity) are skipped.
 * A values part emits one event per value with the identity the parts
 * before it set (they persist for the rest of the datagram, as collectd
 * sends them once per change).
 *
 * Counted: a NaN value is skipped (collectd sends NaN for a counter's first
 * reading) and counted as nan_value, not rejected; a signed (0x0200) or
 * encrypted (0x0210) datagram is refused whole as `signed_packet` /
 * `encrypted_packet` (no user and key can be configured yet); a part that
 * does not fit the datagram, a bad string or value count rejects the rest
 * of the datagram (`syntax`). */
#include "core/clock/clock.h"
#include "ingest/protocol/protocol_pvt.h"

#include <math.h>
#include <stdio.h>

enum {
    CD_HOST = 0x0000,
    CD_TIME = 0x0001,
    CD_PLUGIN = 0x0002,
    CD_PLUGIN_INSTANCE = 0x0003,
    CD_TYPE = 0x0004,
    CD_TYPE_INSTANCE = 0x0005,
    CD_VALUES = 0x0006,
    CD_INTERVAL = 0x0007,
    CD_TIME_HR = 0x0008,
    CD_INTERVAL_HR = 0x0009,
    CD_SIGNATURE = 0x0200,
    CD_ENCRYPTION = 0x0210,
};

/* The identity of the value list being read. */
typedef struct cd_ident {
    rf_span host, plugin, plugin_instance, type, type_instance;
    int64_t time_ns; /* 0: none sent */
} cd_ident;

struct cd_series {
    const cd_ident *id;
    rf_span measurement;
};

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static enum rf_parse_result cd_split(rf_parse_ctx *ctx, const void *arg, rf_series_parts *parts)
{
    const struct cd_series *s = arg;
    static const char *const keys[] = {"host", "instance", "type", "type_instance"};
    const rf_span vals[] = {s->id->host, s->id->plugin_instance, s->id->type, s->id->type_instance};
    parts->measurement = s->measurement;
    parts->esc = RF_ESC_NONE;
    parts->esc_tags = RF_ESC_NONE;
    parts->multi_tags = false;
    parts->tags = ctx->tags;
    parts->ntags = 0;
    for (int i = 0; i < 4; i++) {
        if (!vals[i].len)
            continue;
        if (parts->ntags >= ctx->cfg.max_tags)
            return RF_PARSE_REJ_TOO_MANY_TAGS;
        rf_tag *t = &ctx->tags[parts->ntags++];
        t->key = (rf_span){keys[i], (uint32_t)strlen(keys[i])};
        t->value = vals[i];
        t->has_value = true;
    }
    return RF_PARSE_OK;
}

/* A string part: its payload without the terminating NUL. */
static enum rf_parse_result cd_string(const uint8_t *payload, size_t n, rf_span *out)
{
    if (n == 0 || payload[n - 1] != '\0' || memchr(payload, '\0', n - 1))
        return RF_PARSE_REJ_SYNTAX;
    *out = (rf_span){(const char *)payload, (uint32_t)(n - 1)};
    return RF_PARSE_OK;
}

/* The name of data source i of a value list of n values (Telegraf's DSName). */
static rf_span cd_ds_name(const rf_parse_ctx *ctx, rf_span type, uint32_t i, uint32_t n, char *buf)
{
    const char *name = rf_collectd_types_ds(ctx->cfg.collectd_types, type.p, type.len, i);
    if (name)
        return (rf_span){name, (uint32_t)strlen(name)};
    if (n == 1)
        return (rf_span){"value", 5};
    int k = snprintf(buf, 16, "%u", i);
    return (rf_span){buf, (uint32_t)k};
}

/* One values part: an event per value. Returns 0 or a reject reason + 1. */
static enum rf_parse_result cd_values(rf_parse_ctx *ctx, const cd_ident *id, const uint8_t *p,
                                      size_t n)
{
    if (n < 2)
        return RF_PARSE_REJ_SYNTAX;
    uint32_t count = be16(p);
    if (count == 0 || n != 2 + (size_t)count * 9)
        return RF_PARSE_REJ_SYNTAX;
    if (!id->plugin.len)
        return RF_PARSE_REJ_SYNTAX;
    const uint8_t *types = p + 2, *vals = p + 2 + count;
    int64_t ts = id->time_ns ? id->time_ns : ctx->rx->wall_ns;
    uint8_t flags = id->time_ns ? RF_EVF_HAS_CLIENT_TIME : 0;
    bool clamped = false;
    enum rf_parse_result r = RF_PARSE_OK;
    if (id->time_ns && (r = rf_ts_check(ctx, &ts, &flags, &clamped)))
        return r;
    char meas[512], idx[16];
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *v = vals + (size_t)i * 8;
        double x;
        uint8_t kind = RF_KIND_GAUGE;
        switch (types[i]) {
        case 1: memcpy(&x, v, 8); break; /* gauge: x86 (little-endian) double */
        case 0:
            x = (double)be64(v);
            kind = RF_KIND_CUMULATIVE;
            break; /* counter */
        case 2:
            x = (double)(int64_t)be64(v);
            kind = RF_KIND_CUMULATIVE;
            break;                          /* derive */
        case 3: x = (double)be64(v); break; /* absolute */
        default: return RF_PARSE_REJ_SYNTAX;
        }
        if (isnan(x)) {
            rf_stats_add(&ctx->counters[RF_PC_NAN_VALUES], 1);
            continue;
        }
        if (!isfinite(x))
            return RF_PARSE_REJ_OUT_OF_RANGE;
        rf_span ds = cd_ds_name(ctx, id->type, i, count, idx);
        if ((size_t)id->plugin.len + 1 + ds.len > sizeof(meas))
            return RF_PARSE_REJ_KEY_TOO_LONG;
        memcpy(meas, id->plugin.p, id->plugin.len);
        meas[id->plugin.len] = '_';
        memcpy(meas + id->plugin.len + 1, ds.p, ds.len);
        struct cd_series ser = {.id = id, .measurement = {meas, id->plugin.len + 1 + ds.len}};
        /* The raw bytes: the measurement and the four tag values, apart. */
        XXH3_state_t st;
        XXH3_128bits_reset_withSeed(&st, RF_PROTO_COLLECTD);
        const rf_span parts[] = {ser.measurement, id->host, id->plugin_instance, id->type,
                                 id->type_instance};
        for (int k = 0; k < 5; k++) {
            XXH3_128bits_update(&st, parts[k].p, parts[k].len);
            XXH3_128bits_update(&st, "", 1);
        }
        XXH128_hash_t raw = XXH3_128bits_digest(&st);
        rf_pending *f = &ctx->pend[0];
        rf_pending_init(f, "value", 5, RF_ESC_NONE, kind);
        f->value_type = RF_VALUE_F64;
        f->value.f64 = x;
        if ((r = rf_series_finish_line(ctx, raw, 1, cd_split, &ser, ts, flags, 0)))
            return r;
    }
    return clamped ? rf_ts_count_clamped(ctx, 0) : 0;
}

size_t rf_parse_collectd(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len)
{
    ctx->rx = rx;
    const uint8_t *p = (const uint8_t *)buf, *end = p + len;
    cd_ident id = {0};
    uint64_t ok = 0;
    int r = 0;
    while (p < end) {
        if (end - p < 4) {
            r = RF_PARSE_REJ_SYNTAX;
            break;
        }
        uint16_t type = be16(p), plen = be16(p + 2);
        if (plen < 4 || plen > end - p) {
            r = RF_PARSE_REJ_SYNTAX;
            break;
        }
        const uint8_t *pl = p + 4;
        size_t n = plen - 4u;
        switch (type) {
        case CD_HOST: r = cd_string(pl, n, &id.host); break;
        case CD_PLUGIN: r = cd_string(pl, n, &id.plugin); break;
        case CD_PLUGIN_INSTANCE: r = cd_string(pl, n, &id.plugin_instance); break;
        case CD_TYPE: r = cd_string(pl, n, &id.type); break;
        case CD_TYPE_INSTANCE: r = cd_string(pl, n, &id.type_instance); break;
        case CD_TIME:
        case CD_TIME_HR:
            if (n != 8) {
                r = RF_PARSE_REJ_SYNTAX;
                break;
            }
            {
                uint64_t v = be64(pl);
                /* time_hr is in 2^-30 s: whole seconds and the fraction apart */
                unsigned __int128 ns = type == CD_TIME ? (unsigned __int128)v * RF_NS_PER_S
                                                       : ((unsigned __int128)v * RF_NS_PER_S) >> 30;
                if (ns > INT64_MAX)
                    r = RF_PARSE_REJ_OUT_OF_RANGE;
                else
                    id.time_ns = (int64_t)ns;
            }
            break;
        case CD_VALUES:
            r = cd_values(ctx, &id, pl, n);
            if (r == 0)
                ok++;
            break;
        case CD_SIGNATURE: r = RF_PARSE_REJ_SIGNED_PACKET; break;
        case CD_ENCRYPTION: r = RF_PARSE_REJ_ENCRYPTED_PACKET; break;
        default: break; /* interval, notifications, newer parts: not stored */
        }
        if (r)
            break;
        p += plen;
    }
    if (ok)
        rf_stats_add(&ctx->counters[RF_PC_LINES_OK], ok);
    if (r > 0) {
        /* The rest of the datagram is refused: the log shows where it was. */
        rf_reject_line(ctx, (enum rf_reject_reason)(r - 1), (const char *)p, (size_t)(end - p));
        return 1;
    }
    return 0;
}
