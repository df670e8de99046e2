/* Block encoding: header, per-column choices and the optional zstd pass.
 *
 * Block layout (little-endian; details in docs/FORMAT.md, "Block encoding"):
 *
 *   u8      version (low 4 bits, = 1) | flags (bit 4: body is zstd-compressed)
 *   u8      value type (enum rf_value_type)
 *   varint  n, the number of points (1..RF_BLOCK_MAX_POINTS)
 *   [varint raw body length, when compressed]
 *   body    timestamp column (integer column) then value column
 *
 * The block ends exactly where the body ends: the decoder requires every byte
 * to be accounted for, which turns most corruption into -EBADMSG before the
 * segment's CRC32C is even consulted. */
#include "storage/encode/encode.h"

#include "core/event/event.h"
#include "storage/encode/bitstream.h"
#include "storage/encode/encode_pvt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

/* Bodies shorter than this are not worth a zstd attempt: the frame header
 * alone (6 bytes plus 3 per block) eats most of what it could save. */
#define RF_ZSTD_MIN_BODY 64u

#define RF_BODY_BOUND(n) (RF_TS_BOUND(n) + RF_INTCOL_BOUND(n) + 8u)
#define RF_HDR_MAX 12u

struct rf_block_codec {
    int zstd_level;
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint64_t *scratch[3]; /* RF_BLOCK_MAX_POINTS words each */
    uint8_t *body;        /* encode: the body; decode: the decompressed body */
    uint8_t *alt;         /* encode: the runner-up value column */
    uint8_t *zbuf;        /* encode: the compressed body */
    size_t zcap;
    const uint8_t *texts; /* decode: where the last block's texts start, or NULL */
};

rf_block_codec *rf_block_codec_new(int zstd_level)
{
    if (zstd_level < 0 || zstd_level > 19)
        return NULL;
    rf_block_codec *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->zstd_level = zstd_level;
    size_t body_cap =
        RF_BODY_BOUND(RF_BLOCK_MAX_POINTS) + RF_GORILLA_BOUND(RF_BLOCK_MAX_POINTS) + RF_BITW_SLACK;
    c->zcap = ZSTD_compressBound(body_cap);
    /* Large buffers: the kernel maps their pages on first touch, so a codec
     * that only ever sees small blocks costs little resident memory. */
    for (int i = 0; i < 3; i++)
        c->scratch[i] = malloc(RF_BLOCK_MAX_POINTS * sizeof(uint64_t));
    c->body = malloc(body_cap);
    c->alt = malloc(body_cap);
    c->zbuf = malloc(c->zcap);
    c->cctx = ZSTD_createCCtx();
    c->dctx = ZSTD_createDCtx();
    if (!c->scratch[0] || !c->scratch[1] || !c->scratch[2] || !c->body || !c->alt || !c->zbuf ||
        !c->cctx || !c->dctx) {
        rf_block_codec_free(c);
        return NULL;
    }
    /* The block header records the raw length and the segment checksums the
     * block, so the frame needs neither a content size nor its own checksum. */
    if (zstd_level > 0 &&
        (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, zstd_level)) ||
         ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 0)) ||
         ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0)) ||
         ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_dictIDFlag, 0)))) {
        rf_block_codec_free(c);
        return NULL;
    }
    return c;
}

void rf_block_codec_free(rf_block_codec *c)
{
    if (!c)
        return;
    for (int i = 0; i < 3; i++)
        free(c->scratch[i]);
    free(c->body);
    free(c->alt);
    free(c->zbuf);
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c);
}

/* Is a zstd attempt worth its cost (about 1 us plus 0.3..0.8 ns a byte, even
 * when nothing compresses)? After our own encoders, what zstd still finds is
 * recurring values: string hashes or integers from a small set, periodic XOR
 * patterns. Those skew the byte histogram; Rice-coded noise and raw mantissas
 * leave it nearly uniform. So: sample up to 512 bytes spread over the body and
 * try zstd only when equal-byte pairs are at least 1.5 times as frequent as in
 * uniform random bytes. (Measured on the generator's classes: noise 1.0..1.25,
 * classes where zstd helps 2.8..27.) */
static int zstd_worth_trying(const uint8_t *body, size_t len)
{
    uint32_t hist[256] = {0};
    size_t step = len > 512 ? len / 512 : 1;
    uint64_t m = 0;
    for (size_t i = 0; i < len && m < 512; i += step, m++)
        hist[body[i]]++;
    uint64_t pairs = 0; /* ordered equal pairs: sum h (h - 1) */
    for (int b = 0; b < 256; b++)
        pairs += (uint64_t)hist[b] * (hist[b] ? hist[b] - 1 : 0);
    /* uniform: pairs ~ m (m - 1) / 256 */
    return pairs * 256 * 2 >= 3 * m * (m - 1);
}

size_t rf_block_encode_bound(uint32_t n)
{
    return RF_HDR_MAX + RF_BODY_BOUND(n);
}

/* Writes the value column at out and returns its end. */
static uint8_t *encode_values(rf_block_codec *c, uint8_t value_type, const uint64_t *v, uint32_t n,
                              uint8_t *out)
{
    /* Measured values move by steps, so deltas (or deltas of deltas, for
     * counters) are what is small; the words themselves are only worth trying
     * for bools and string hashes, and for raw double bits (below). */
    const unsigned diff_xf = RF_XF_BIT(RF_XF_DELTA) | RF_XF_BIT(RF_XF_DOD);
    const unsigned all_xf = diff_xf | RF_XF_BIT(RF_XF_NONE);
    uint64_t *ints = c->scratch[2];

    if (value_type != RF_VALUE_F64) {
        /* int64, uint64, bools and string hashes: the words as integers */
        *out++ = RF_VENC_INT;
        unsigned xf =
            value_type == RF_VALUE_BOOL || value_type == RF_VALUE_STRING ? all_xf : diff_xf;
        return rf_intcol_encode(out, v, n, xf, c->scratch[0], c->scratch[1]);
    }

    int d = rf_decimal_scale(v, n, ints);
    if (d >= 0) {
        out[0] = RF_VENC_DECIMAL;
        out[1] = (uint8_t)d;
        uint8_t *end = rf_intcol_encode(out + 2, ints, n, diff_xf, c->scratch[0], c->scratch[1]);
        /* Scaled decimals beat XOR unless the integers are nearly full width;
         * only then is Gorilla worth computing as well. */
        if ((size_t)(end - out) <= 4u * n + 32u)
            return end;
        uint8_t *alt_end = rf_gorilla_encode(c->alt + 1, v, n);
        size_t alt_len = (size_t)(alt_end - c->alt);
        if (alt_len < (size_t)(end - out)) {
            c->alt[0] = RF_VENC_GORILLA;
            memcpy(out, c->alt, alt_len);
            return out + alt_len;
        }
        return end;
    }

    /* Arbitrary doubles: Gorilla, or the raw words as integers (which wins on
     * full-entropy mantissas, where XOR control bits are pure overhead). */
    out[0] = RF_VENC_GORILLA;
    uint8_t *end = rf_gorilla_encode(out + 1, v, n);
    c->alt[0] = RF_VENC_INT;
    uint8_t *alt_end = rf_intcol_encode(c->alt + 1, v, n, diff_xf, c->scratch[0], c->scratch[1]);
    size_t alt_len = (size_t)(alt_end - c->alt);
    if (alt_len < (size_t)(end - out)) {
        memcpy(out, c->alt, alt_len);
        return out + alt_len;
    }
    return end;
}

static long encode_body(rf_block_codec *c, uint8_t version, uint8_t value_type, uint32_t n,
                        size_t body_len, uint8_t *out, size_t cap);

static bool times_ok(const int64_t *ts, uint32_t n)
{
    for (uint32_t i = 1; i < n; i++)
        if (ts[i] < ts[i - 1])
            return false;
    return true;
}

long rf_block_encode(rf_block_codec *c, uint8_t value_type, const int64_t *ts,
                     const uint64_t *value_bits, uint32_t n, uint8_t *out, size_t cap)
{
    if (!c || !ts || !value_bits || !out || n == 0 || n > RF_BLOCK_MAX_POINTS ||
        value_type > RF_VALUE_STRING || !times_ok(ts, n))
        return -EINVAL;
    uint8_t *end = rf_ts_encode(c->body, ts, n, c->scratch[2], c->scratch[0], c->scratch[1]);
    end = encode_values(c, value_type, value_bits, n, end);
    return encode_body(c, RF_BLOCK_VERSION, value_type, n, (size_t)(end - c->body), out, cap);
}

size_t rf_block_encode_bound_text(uint32_t n)
{
    return rf_block_encode_bound(n) + RF_BLOCK_TEXT_BYTES;
}

long rf_block_encode_text(rf_block_codec *c, const int64_t *ts, const rf_block_text *texts,
                          uint32_t n, uint8_t *out, size_t cap)
{
    if (!c || !ts || !texts || !out || n == 0 || n > RF_BLOCK_MAX_POINTS || !times_ok(ts, n))
        return -EINVAL;
    uint64_t *lens = c->scratch[2];
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        lens[i] = texts[i].len;
        total += texts[i].len;
    }
    if (total > RF_BLOCK_TEXT_BYTES)
        return -EINVAL;
    /* The lengths first (scratch[2] is free again once they are encoded). */
    uint8_t *col = c->alt;
    col[0] = RF_VENC_TEXT;
    uint8_t *col_end =
        rf_intcol_encode(col + 1, lens, n, RF_XF_BIT(RF_XF_DELTA), c->scratch[0], c->scratch[1]);
    uint8_t *end = rf_ts_encode(c->body, ts, n, c->scratch[2], c->scratch[0], c->scratch[1]);
    memcpy(end, col, (size_t)(col_end - col));
    end += col_end - col;
    for (uint32_t i = 0; i < n; i++) {
        memcpy(end, texts[i].p, texts[i].len);
        end += texts[i].len;
    }
    return encode_body(c, RF_BLOCK_VERSION_TEXT, RF_VALUE_STRING, n, (size_t)(end - c->body), out,
                       cap);
}

/* The header, then the body in c->body as it is or zstd-compressed. */
static long encode_body(rf_block_codec *c, uint8_t version, uint8_t value_type, uint32_t n,
                        size_t body_len, uint8_t *out, size_t cap)
{
    uint8_t hdr[RF_HDR_MAX];
    hdr[0] = version;
    hdr[1] = value_type;
    uint8_t *h = rf_varint_put(hdr + 2, n);
    const uint8_t *payload = c->body;
    size_t payload_len = body_len;

    if (c->zstd_level > 0 && body_len >= RF_ZSTD_MIN_BODY && zstd_worth_trying(c->body, body_len)) {
        size_t z = ZSTD_compress2(c->cctx, c->zbuf, c->zcap, c->body, body_len);
        /* Keep the frame only when it saves at least 1/32 of the body:
         * decompression costs more per point than our own decoders, so a
         * gain of a few bytes is not worth it at read time. */
        if (!ZSTD_isError(z) && z + rf_varint_len(body_len) + body_len / 32 < body_len) {
            hdr[0] |= RF_BLOCK_FLAG_ZSTD;
            h = rf_varint_put(h, body_len);
            payload = c->zbuf;
            payload_len = z;
        }
    }

    size_t hdr_len = (size_t)(h - hdr);
    if (hdr_len + payload_len > cap)
        return -ENOSPC;
    memcpy(out, hdr, hdr_len);
    memcpy(out + hdr_len, payload, payload_len);
    return (long)(hdr_len + payload_len);
}

/* Parses the fixed header; returns its length or -EBADMSG. */
static long parse_header(const uint8_t *in, size_t len, uint32_t *n_points, uint8_t *value_type,
                         int *compressed)
{
    if (!in || len < 3)
        return -EBADMSG;
    unsigned version = in[0] & 0x0f;
    if ((version != RF_BLOCK_VERSION && version != RF_BLOCK_VERSION_TEXT) ||
        (in[0] & ~(0x0fu | RF_BLOCK_FLAG_ZSTD)) || in[1] > RF_VALUE_STRING ||
        (version == RF_BLOCK_VERSION_TEXT && in[1] != RF_VALUE_STRING))
        return -EBADMSG;
    const uint8_t *p = in + 2;
    uint64_t n;
    if (rf_varint_get(&p, in + len, &n) < 0 || n == 0 || n > RF_BLOCK_MAX_POINTS)
        return -EBADMSG;
    *n_points = (uint32_t)n;
    *value_type = in[1];
    *compressed = (in[0] & RF_BLOCK_FLAG_ZSTD) != 0;
    return p - in;
}

const char *rf_block_text_of(const rf_block_codec *c, uint64_t value_bits, uint32_t *len)
{
    if (!c->texts)
        return NULL;
    *len = (uint32_t)value_bits;
    return (const char *)c->texts + (value_bits >> 32);
}

int rf_block_peek(const uint8_t *in, size_t len, uint32_t *n_points, uint8_t *value_type)
{
    uint32_t n;
    uint8_t vt;
    int z;
    long h = parse_header(in, len, &n, &vt, &z);
    if (h < 0)
        return (int)h;
    if (n_points)
        *n_points = n;
    if (value_type)
        *value_type = vt;
    return 0;
}

long rf_block_decode(rf_block_codec *c, const uint8_t *in, size_t len, int64_t *ts,
                     uint64_t *value_bits, uint32_t room)
{
    if (!c || !ts || !value_bits)
        return -EINVAL;
    uint32_t n;
    uint8_t vt;
    int z;
    long h = parse_header(in, len, &n, &vt, &z);
    c->texts = NULL;
    if (h < 0)
        return h;
    if (n > room)
        return -ENOSPC;
    const bool text = (in[0] & 0x0f) == RF_BLOCK_VERSION_TEXT;

    const uint8_t *body = in + h;
    size_t body_len = len - (size_t)h;
    if (z) {
        const uint8_t *p = body;
        uint64_t raw;
        if (rf_varint_get(&p, in + len, &raw) < 0 || raw < RF_ZSTD_MIN_BODY ||
            raw > RF_BODY_BOUND(n) + RF_GORILLA_BOUND(n) + (text ? RF_BLOCK_TEXT_BYTES : 0))
            return -EBADMSG;
        size_t zlen = (size_t)(in + len - p);
        size_t got = ZSTD_decompressDCtx(c->dctx, c->body, (size_t)raw, p, zlen);
        if (ZSTD_isError(got) || got != raw)
            return -EBADMSG;
        body = c->body;
        body_len = (size_t)raw;
    }
    const uint8_t *end = body + body_len;

    long used = rf_ts_decode(body, body_len, n, ts); /* checks the order too */
    if (used < 0)
        return used;
    const uint8_t *p = body + used;

    if (p >= end)
        return -EBADMSG;
    unsigned enc = *p++;
    if ((enc == RF_VENC_TEXT) != text)
        return -EBADMSG;
    switch (enc) {
    case RF_VENC_TEXT: {
        /* The lengths, then exactly their sum of bytes; each word becomes
         * (offset << 32) | length for rf_block_text_of. */
        used = rf_intcol_decode(p, (size_t)(end - p), n, value_bits);
        if (used < 0)
            return used;
        const uint8_t *t = p + used;
        uint64_t off = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t l = value_bits[i];
            if (l > RF_BLOCK_TEXT_BYTES || off + l > (uint64_t)(end - t))
                return -EBADMSG;
            value_bits[i] = off << 32 | l;
            off += l;
        }
        if (t + off != end)
            return -EBADMSG;
        c->texts = t;
        return (long)n;
    }
    case RF_VENC_INT: used = rf_intcol_decode(p, (size_t)(end - p), n, value_bits); break;
    case RF_VENC_DECIMAL: {
        if (vt != RF_VALUE_F64 || p >= end || *p > 9)
            return -EBADMSG;
        unsigned d = *p++;
        used = rf_intcol_decode(p, (size_t)(end - p), n, value_bits);
        if (used >= 0 && rf_decimal_unscale(value_bits, n, d) < 0)
            return -EBADMSG;
        break;
    }
    case RF_VENC_GORILLA:
        if (vt != RF_VALUE_F64)
            return -EBADMSG;
        used = rf_gorilla_decode(p, (size_t)(end - p), n, value_bits);
        break;
    default: return -EBADMSG;
    }
    if (used < 0)
        return used;
    if (p + used != end)
        return -EBADMSG;
    return (long)n;
}
