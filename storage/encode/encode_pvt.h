/* Internals of the block encoders, shared by encode.c, intcol.c and floats.c.
 * Private to storage/encode (tests and benchmarks may include it for white-box
 * checks and the Gorilla baseline). The byte layouts are in docs/FORMAT.md,
 * "Block encoding". */
#ifndef RF_STORAGE_ENCODE_PVT_H
#define RF_STORAGE_ENCODE_PVT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bytes/bytes.h"

#define RF_BLOCK_VERSION 1u
#define RF_BLOCK_VERSION_TEXT 2u /* string blocks that hold their texts (RF_VENC_TEXT) */
#define RF_BLOCK_FLAG_ZSTD 0x10u

/* Value column encodings (first byte of the value column). */
enum rf_value_enc {
    RF_VENC_INT = 0,     /* integer column over the raw 64-bit words */
    RF_VENC_DECIMAL = 1, /* decimals byte D, then integer column over value * 10^D */
    RF_VENC_GORILLA = 2, /* u32 payload length, then Gorilla XOR bit stream */
    RF_VENC_TEXT = 3,    /* block version 2 only: integer column of the n lengths, then the
                          * texts back to back */
};

/* Integer column transforms (first byte of an integer column). */
enum rf_xf {
    RF_XF_NONE = 0,  /* the words themselves */
    RF_XF_DELTA = 1, /* zigzag(v[i] - v[i-1]) */
    RF_XF_DOD = 2,   /* zigzag((v[i] - v[i-1]) - (v[i-1] - v[i-2])) */
};
#define RF_XF_BIT(x) (1u << (x))

/* Residual sequence coders (low 2 bits of the sequence byte; the high 6 bits
 * carry the parameter). */
enum rf_seq {
    RF_SEQ_ZERO = 0,   /* every residual is 0 */
    RF_SEQ_PACK = 1,   /* fixed width w = param + 1 */
    RF_SEQ_RICE = 2,   /* Rice code with k = param (<= 31), escape for outliers */
    RF_SEQ_SPARSE = 3, /* (gap, value - 1) pairs of the nonzero residuals, Rice coded */
};
#define RF_RICE_ESC 24u /* unary prefix of this many ones announces an escaped value */
#define RF_RICE_KMAX 31u

/* Largest integer column for n points: transform byte, two 10-byte seeds,
 * sequence byte, extra byte and two varints, then at worst 64 bits a point. */
#define RF_INTCOL_BOUND(n) (64u + 8u * (size_t)(n))

/* Integer column. Chooses among the transforms in xf_mask (RF_XF_BIT set) and
 * the sequence coders the smallest; writes at out (needs RF_INTCOL_BOUND(n) +
 * RF_BITW_SLACK bytes) and returns the end. scratch_a/b: n words each. */
uint8_t *rf_intcol_encode(uint8_t *out, const uint64_t *v, uint32_t n, unsigned xf_mask,
                          uint64_t *scratch_a, uint64_t *scratch_b);
/* Decodes n words into out; returns the bytes consumed or -EBADMSG. */
long rf_intcol_decode(const uint8_t *in, size_t len, uint32_t n, uint64_t *out);

/* Timestamp column (timestamps.c): unit code, then an integer column.
 * q, scratch_a/b: n words each. Returns the end / bytes consumed or -EBADMSG;
 * the decoder rejects timestamps that decrease. */
uint8_t *rf_ts_encode(uint8_t *out, const int64_t *ts, uint32_t n, uint64_t *q, uint64_t *scratch_a,
                      uint64_t *scratch_b);
long rf_ts_decode(const uint8_t *in, size_t len, uint32_t n, int64_t *ts);
#define RF_TS_BOUND(n) (11u + RF_INTCOL_BOUND(n))

/* Decimal detection: the smallest D <= 9 such that every value is exactly
 * (double)m / 10^D for an integer |m| <= 2^53, checked bit for bit; fills
 * ints with the m. Returns D, or -1 when there is none. */
int rf_decimal_scale(const uint64_t *bits, uint32_t n, uint64_t *ints);
/* In place: m -> bits of (double)m / 10^D. -EBADMSG if some |m| > 2^53. */
int rf_decimal_unscale(uint64_t *v, uint32_t n, unsigned d);

/* Gorilla XOR stream (u32 length + bits); out needs 10 * n + 16 + slack bytes. */
uint8_t *rf_gorilla_encode(uint8_t *out, const uint64_t *v, uint32_t n);
long rf_gorilla_decode(const uint8_t *in, size_t len, uint32_t n, uint64_t *out);
#define RF_GORILLA_BOUND(n) (16u + 10u * (size_t)(n))

/* LEB128 varints: rf_varint_put, rf_varint_len, rf_varint_get (core/bytes). */

static inline uint64_t rf_zigzag(uint64_t x)
{
    return (x << 1) ^ (0 - (x >> 63));
}

static inline uint64_t rf_unzigzag(uint64_t y)
{
    return (y >> 1) ^ (0 - (y & 1));
}

#endif
