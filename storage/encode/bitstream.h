/* Bit streams for the block encoders. Private to storage/encode: do not
 * include from outside this folder (tests and benchmarks excepted).
 *
 * Bits are packed LSB-first into little-endian bytes, so a 64-bit load at
 * byte pos/8 shifted right by pos%8 yields the next 57 bits at once. Both
 * directions work a word at a time:
 *
 *   writer  keeps fewer than 8 pending bits in `acc` between calls and stores
 *           the whole 64-bit accumulator after every put. The store may touch
 *           up to 8 bytes past the last complete byte, so the buffer needs
 *           RF_BITW_SLACK bytes of room beyond the final size (codec scratch
 *           is sized for that; callers never hand the writer their own buffer).
 *   reader  never reads past `len`: the fast path loads 8 bytes when they are
 *           all inside, the tail path assembles the few remaining ones and
 *           pads with zeros. A corrupt stream may therefore "read" past its end;
 *           decoders detect that afterwards by comparing pos with the length.
 */
#ifndef RF_STORAGE_ENCODE_BITSTREAM_H
#define RF_STORAGE_ENCODE_BITSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/bytes/bytes.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "storage/encode assumes a little-endian host (the block format is little-endian)"
#endif

#define RF_BITW_SLACK 16u

/* Low n bits set, for n in 0..64. */
static inline uint64_t rf_mask64(unsigned n)
{
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

static inline unsigned rf_bitlen64(uint64_t x)
{
    return x ? 64u - (unsigned)__builtin_clzll(x) : 0u;
}

typedef struct rf_bitw {
    uint8_t *start;
    uint8_t *p;   /* byte holding the first pending bit */
    uint64_t acc; /* pending bits, fill < 8 between calls */
    unsigned fill;
} rf_bitw;

static inline void rf_bitw_init(rf_bitw *w, uint8_t *buf)
{
    w->start = w->p = buf;
    w->acc = 0;
    w->fill = 0;
}

/* Appends the n low bits of v; n <= 56 and v < 2^n (callers mask). */
static inline void rf_bitw_put(rf_bitw *w, uint64_t v, unsigned n)
{
    w->acc |= v << w->fill;
    w->fill += n;
    rf_write_le64(w->p, w->acc);
    unsigned bytes = w->fill >> 3; /* <= 7 because fill <= 63 */
    w->p += bytes;
    w->acc >>= bytes * 8;
    w->fill &= 7;
}

/* Appends n (0..64) low bits of v; v < 2^n. */
static inline void rf_bitw_put64(rf_bitw *w, uint64_t v, unsigned n)
{
    if (n <= 56) {
        rf_bitw_put(w, v, n);
    } else {
        rf_bitw_put(w, v & 0xffffffffull, 32);
        rf_bitw_put(w, v >> 32, n - 32);
    }
}

/* Bytes written so far, counting a final partial byte (already stored, its
 * unused high bits zero). */
static inline size_t rf_bitw_bytes(const rf_bitw *w)
{
    return (size_t)(w->p - w->start) + (w->fill ? 1u : 0u);
}

typedef struct rf_bitr {
    const uint8_t *base;
    size_t len; /* bytes */
    size_t pos; /* bits consumed */
} rf_bitr;

static inline void rf_bitr_init(rf_bitr *r, const uint8_t *base, size_t len)
{
    r->base = base;
    r->len = len;
    r->pos = 0;
}

__attribute__((noinline, cold)) static uint64_t rf_bitr_tail(const uint8_t *base, size_t len,
                                                             size_t off)
{
    uint64_t v = 0;
    if (off < len)
        memcpy(&v, base + off, len - off);
    return v;
}

/* The next 57 (at least) bits, LSB first; zeros past the end. */
static inline uint64_t rf_bitr_peek(const rf_bitr *r)
{
    size_t off = r->pos >> 3;
    uint64_t v;
    if (__builtin_expect(off + 8 <= r->len, 1))
        v = rf_read_le64(r->base + off);
    else
        v = rf_bitr_tail(r->base, r->len, off);
    return v >> (r->pos & 7);
}

static inline uint64_t rf_bitr_get(rf_bitr *r, unsigned n) /* n <= 56 */
{
    uint64_t v = rf_bitr_peek(r) & rf_mask64(n);
    r->pos += n;
    return v;
}

static inline uint64_t rf_bitr_get64(rf_bitr *r, unsigned n) /* n <= 64 */
{
    if (n <= 56)
        return rf_bitr_get(r, n);
    uint64_t lo = rf_bitr_get(r, 32);
    return lo | (rf_bitr_get(r, n - 32) << 32);
}

/* True when the reader consumed exactly the bytes it was given: every bit it
 * used was inside, and no whole byte was left over. */
static inline int rf_bitr_exact(const rf_bitr *r)
{
    return (r->pos + 7) / 8 == r->len;
}

#endif
