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
 * Signed (0x0200) and encrypted (0x0210) parts: as collectd 5.12's server
 * reads them, with the users and level of rf_parse_config.collectd_auth
 * (protocol.h, "collectd's network security"; the crypto is in
 * collectd_auth.c). Without it they are refused as `signed_packet` /
 * `encrypted_packet` (collectd would take a signed one unverified: a
 * signature nobody checks is not worth believing).
 *
 * Counted: a NaN value is skipped (collectd sends NaN for a counter's first
 * reading) and counted as nan_value, not rejected; a part that does not fit
 * its buffer, a bad string or value count rejects the rest of the datagram
 * (`syntax`). */
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

/* Where a datagram's walk stands: what the parts read so far allow. */
enum {
    CD_SIGNED = 1,
    CD_ENCRYPTED = 2
};
#define CD_SIG_HEAD 36u   /* type, length, HMAC-SHA-256 */
#define CD_ENC_HEAD 42u   /* type, length, user length, IV, SHA-1 */
#define CD_MAX_NESTING 4u /* a signed or encrypted part inside another, this deep */

typedef struct cd_walk {
    rf_parse_ctx *ctx;
    const rf_cd_policy *policy; /* NULL: no auth configured */
    uint64_t ok;                /* values parts taken */
    /* The first value list skipped for the security level (counted once). */
    enum rf_parse_result skipped;
    const uint8_t *skipped_at;
    size_t skipped_len;
    /* Where a refusal happened (the rest of that buffer is refused). */
    const uint8_t *fail_at, *fail_end;
} cd_walk;

static enum rf_parse_result cd_parts(cd_walk *w, const uint8_t *p, const uint8_t *end,
                                     unsigned flags, unsigned depth);

static rf_cd_crypto *cd_crypto(rf_parse_ctx *ctx)
{
    /* Once per context, on its first signed or encrypted datagram. */
    if (!ctx->cd_crypto)
        ctx->cd_crypto = rf_cd_crypto_new();
    return ctx->cd_crypto;
}

/* A signed part at p (plen bytes): verified, the rest of the buffer is walked
 * as signed; it ends the buffer either way. */
static enum rf_parse_result cd_signed(cd_walk *w, const uint8_t *p, size_t plen, const uint8_t *end,
                                      unsigned flags, unsigned depth)
{
    if (plen <= CD_SIG_HEAD)
        return RF_PARSE_REJ_SYNTAX;
    if (!w->policy)
        return RF_PARSE_REJ_SIGNED_PACKET;
    const char *user = (const char *)p + CD_SIG_HEAD;
    const rf_cd_user *u = rf_cd_user_find(w->policy, user, plen - CD_SIG_HEAD);
    if (!u)
        return RF_PARSE_REJ_UNKNOWN_USER;
    rf_cd_crypto *c = cd_crypto(w->ctx);
    if (!c)
        return RF_PARSE_REJ_NO_MEMORY;
    /* The HMAC covers the user name and everything after the part. */
    if (!rf_cd_hmac_ok(c, u, p + CD_SIG_HEAD, (size_t)(end - p) - CD_SIG_HEAD, p + 4))
        return RF_PARSE_REJ_BAD_SIGNATURE;
    return cd_parts(w, p + plen, end, flags | CD_SIGNED, depth + 1);
}

/* An encrypted part at p (plen bytes): decrypted, checked, its payload walked
 * as encrypted. */
static enum rf_parse_result cd_encrypted(cd_walk *w, const uint8_t *p, size_t plen, unsigned flags,
                                         unsigned depth)
{
    if (plen <= CD_ENC_HEAD)
        return RF_PARSE_REJ_SYNTAX;
    size_t user_len = be16(p + 4);
    if (user_len == 0 || user_len > plen - (CD_ENC_HEAD + 1))
        return RF_PARSE_REJ_SYNTAX;
    if (!w->policy)
        return RF_PARSE_REJ_ENCRYPTED_PACKET;
    const rf_cd_user *u = rf_cd_user_find(w->policy, (const char *)p + 6, user_len);
    if (!u)
        return RF_PARSE_REJ_UNKNOWN_USER;
    rf_cd_crypto *c = cd_crypto(w->ctx);
    if (!c)
        return RF_PARSE_REJ_NO_MEMORY;
    const uint8_t *iv = p + 6 + user_len, *in = iv + 16;
    size_t n = plen - (6 + user_len + 16); /* SHA-1 and payload, > 20 */
    /* The first level decrypts out of the (read-only) receive buffer into
     * the scratch; a part inside one already there decrypts in place. */
    uint8_t *scratch = rf_cd_scratch(c);
    uint8_t *out = in >= scratch && in < scratch + RF_CD_SCRATCH ? (uint8_t *)in : scratch;
    if (n > RF_CD_SCRATCH)
        return RF_PARSE_REJ_SYNTAX;
    if (!rf_cd_decrypt_ok(c, u, iv, in, n, out))
        return RF_PARSE_REJ_DECRYPT_FAILED;
    return cd_parts(w, out + 20, out + n, flags | CD_ENCRYPTED, depth + 1);
}

/* The parts of p..end, each value list with the identity set before it in
 * the same buffer (collectd reads a signed or encrypted payload as a packet
 * of its own). */
static enum rf_parse_result cd_parts(cd_walk *w, const uint8_t *p, const uint8_t *end,
                                     unsigned flags, unsigned depth)
{
    rf_parse_ctx *ctx = w->ctx;
    cd_ident id = {0};
    enum rf_collectd_security level =
        w->policy ? rf_cd_policy_level(w->policy) : RF_COLLECTD_SECURITY_NONE;
    enum rf_parse_result r = RF_PARSE_OK;
    if (depth > CD_MAX_NESTING) {
        w->fail_at = p, w->fail_end = end;
        return RF_PARSE_REJ_SYNTAX;
    }
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
        /* As collectd: an encrypted part is always opened; under level
         * encrypt nothing else outside one counts, under sign nothing
         * outside a signed or encrypted part. */
        enum rf_parse_result skip = RF_PARSE_OK;
        if (type != CD_ENCRYPTION) {
            if (level == RF_COLLECTD_SECURITY_ENCRYPT && !(flags & CD_ENCRYPTED))
                skip = RF_PARSE_REJ_UNENCRYPTED_PACKET;
            else if (type != CD_SIGNATURE && level == RF_COLLECTD_SECURITY_SIGN && !flags)
                skip = RF_PARSE_REJ_UNSIGNED_PACKET;
        }
        if (skip) {
            if (type == CD_VALUES && !w->skipped) {
                w->skipped = skip;
                w->skipped_at = p;
                w->skipped_len = (size_t)(end - p);
            }
            p += plen;
            continue;
        }
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
                w->ok++;
            break;
        case CD_SIGNATURE:
            /* Refusals inside say where they were themselves. */
            w->fail_at = p, w->fail_end = end;
            return cd_signed(w, p, plen, end, flags, depth);
        case CD_ENCRYPTION:
            w->fail_at = p, w->fail_end = p + plen;
            if ((r = cd_encrypted(w, p, plen, flags, depth)))
                return r;
            break;
        default: break; /* interval, notifications, newer parts: not stored */
        }
        if (r)
            break;
        p += plen;
    }
    if (r) {
        w->fail_at = p;
        w->fail_end = end;
    }
    return r;
}

size_t rf_parse_collectd(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len)
{
    ctx->rx = rx;
    cd_walk w = {.ctx = ctx};
    if (ctx->cfg.collectd_auth)
        w.policy = rf_cd_policy_get(ctx->cfg.collectd_auth);
    const uint8_t *p = (const uint8_t *)buf;
    enum rf_parse_result r = cd_parts(&w, p, p + len, 0, 0);
    if (w.ok)
        rf_stats_add(&ctx->counters[RF_PC_LINES_OK], w.ok);
    size_t refused = 0;
    if (w.skipped) {
        rf_reject_line(ctx, rf_parse_reject_reason(w.skipped), (const char *)w.skipped_at,
                       w.skipped_len);
        refused++;
    }
    if (r > 0) {
        /* The rest of the buffer is refused: the log shows where it was. */
        rf_reject_line(ctx, rf_parse_reject_reason(r), (const char *)w.fail_at,
                       (size_t)(w.fail_end - w.fail_at));
        refused++;
    }
    return refused;
}
