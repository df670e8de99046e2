/* Double-specific encodings: decimal scaling and the Gorilla XOR fallback.
 *
 * Decimal scaling. Telemetry gauges are mostly printed numbers ("21.37") that
 * strtod turned into the nearest double. Such a value v is exactly
 * (double)m / 10^D for its digits m: both sides are the correctly rounded
 * quotient of the same real number (m < 2^53 converts exactly, 10^D <= 10^9
 * is exact, IEEE division is correctly rounded). The encoder finds the
 * smallest D that works for the whole block and *checks* the reconstruction
 * bit for bit for every value, so a value that merely looks decimal (NaN,
 * infinities, -0.0, 0.1 + 0.2, subnormals) makes the block fall back rather
 * than come back different. The decoder performs the very same division.
 *
 * Gorilla (Pelkonen et al., VLDB 2015) XORs each value with the previous one
 * and stores the meaningful bits of the XOR with a reusable leading/trailing
 * zero window. Used when the values are not short decimals. */
#include "storage/encode/bitstream.h"
#include "storage/encode/encode_pvt.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static const double pow10_tab[10] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

static inline double from_bits(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline uint64_t to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

/* m such that (double)m / 10^d has the bits `bits`, or -1 (in *ok = 0). */
static inline int scale_one(uint64_t bits, unsigned d, int64_t *m)
{
    double x = from_bits(bits) * pow10_tab[d];
    /* NaN and infinities fail here; so does anything too large for an exact
     * integer, at this d and every larger one. */
    if (!(fabs(x) <= 0x1p53))
        return -1;
    int64_t c = llrint(x);
    if (to_bits((double)c / pow10_tab[d]) != bits)
        return 0;
    *m = c;
    return 1;
}

int rf_decimal_scale(const uint64_t *bits, uint32_t n, uint64_t *ints)
{
    unsigned d = 0;
    uint32_t first_at_d = 0; /* values before this index were checked at a smaller d */
    for (uint32_t i = 0; i < n; i++) {
        int64_t m;
        for (;;) {
            int r = scale_one(bits[i], d, &m);
            if (r > 0)
                break;
            if (r < 0 || ++d > 9)
                return -1;
            first_at_d = i;
        }
        ints[i] = (uint64_t)m;
    }
    /* A value exact at d is exact at any larger d in theory (same real
     * quotient); check it anyway rather than trust the argument. */
    for (uint32_t i = 0; i < first_at_d; i++) {
        int64_t m;
        if (scale_one(bits[i], d, &m) <= 0)
            return -1;
        ints[i] = (uint64_t)m;
    }
    return (int)d;
}

int rf_decimal_unscale(uint64_t *v, uint32_t n, unsigned d)
{
    const double p = pow10_tab[d];
    uint64_t bad = 0;
    if (d == 0) {
        /* integral values (counters): m / 1.0 is m, skip the division */
        for (uint32_t i = 0; i < n; i++) {
            int64_t m = (int64_t)v[i];
            bad |= (v[i] + (1ull << 53)) > (1ull << 54);
            v[i] = to_bits((double)m);
        }
        return bad ? -EBADMSG : 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        int64_t m = (int64_t)v[i];
        /* the encoder never stores |m| > 2^53: anything else is corruption */
        bad |= (v[i] + (1ull << 53)) > (1ull << 54);
        v[i] = to_bits((double)m / p);
    }
    return bad ? -EBADMSG : 0;
}

uint8_t *rf_gorilla_encode(uint8_t *out, const uint64_t *v, uint32_t n)
{
    rf_bitw w;
    rf_bitw_init(&w, out + 4);
    rf_bitw_put64(&w, v[0], 64);
    uint64_t prev = v[0];
    unsigned win_lead = 65, win_trail = 0; /* 65: no window yet */
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = v[i] ^ prev;
        prev = v[i];
        if (!x) {
            rf_bitw_put(&w, 0, 1);
            continue;
        }
        unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
        if (lead > 31)
            lead = 31;
        if (win_lead <= 64 && lead >= win_lead && trail >= win_trail) {
            /* control "10" (first bit 1, second 0), then the window's bits */
            rf_bitw_put(&w, 1, 2);
            rf_bitw_put64(&w, x >> win_trail, 64 - win_lead - win_trail);
        } else {
            unsigned sig = 64 - lead - trail;
            /* control "11", 5 bits leading zeros, 6 bits (length - 1) */
            rf_bitw_put(&w, 3u | (lead << 2) | ((uint64_t)(sig - 1) << 7), 13);
            rf_bitw_put64(&w, x >> trail, sig);
            win_lead = lead;
            win_trail = trail;
        }
    }
    uint32_t len = (uint32_t)rf_bitw_bytes(&w);
    rf_write_le32(out, len);
    return out + 4 + len;
}

long rf_gorilla_decode(const uint8_t *in, size_t len, uint32_t n, uint64_t *out)
{
    if (len < 4)
        return -EBADMSG;
    const uint32_t plen = rf_read_le32(in);
    if (plen > len - 4)
        return -EBADMSG;
    rf_bitr r;
    rf_bitr_init(&r, in + 4, plen);
    uint64_t prev = rf_bitr_get64(&r, 64);
    out[0] = prev;
    unsigned win_lead = 65, win_trail = 0;
    for (uint32_t i = 1; i < n; i++) {
        uint64_t w = rf_bitr_peek(&r);
        uint64_t x;
        if (!(w & 1)) {
            r.pos += 1;
            x = 0;
        } else if (!(w & 2)) {
            if (win_lead > 64)
                return -EBADMSG;
            r.pos += 2;
            x = rf_bitr_get64(&r, 64 - win_lead - win_trail) << win_trail;
        } else {
            unsigned lead = (unsigned)(w >> 2) & 31, sig = (unsigned)((w >> 7) & 63) + 1;
            if (lead + sig > 64)
                return -EBADMSG;
            r.pos += 13;
            win_lead = lead;
            win_trail = 64 - lead - sig;
            x = rf_bitr_get64(&r, sig) << win_trail;
        }
        prev ^= x;
        out[i] = prev;
    }
    if (!rf_bitr_exact(&r))
        return -EBADMSG;
    return 4 + (long)plen;
}
