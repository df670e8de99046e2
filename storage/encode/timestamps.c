/* Timestamp column: the resolution the clock really had, then an integer
 * column (delta or delta-of-delta).
 *
 * Timestamps are nanoseconds, but most sources stamp in whole seconds,
 * milliseconds (Prometheus, most line protocol) or microseconds. When every
 * offset from the first timestamp is a multiple of 10^9, 10^6 or 10^3 ns,
 * the column stores the offsets in that unit: jitter of a few milliseconds
 * then costs ~10 bits instead of ~30, and a regular interval still costs
 * nothing per point.
 *
 * Layout: u8 unit code (0: 1 ns, 1: 1 us, 2: 1 ms, 3: 1 s); for code 0 an
 * integer column of the timestamps; otherwise varint zigzag(ts[0]) and an
 * integer column of q[i] = (ts[i] - ts[0]) / unit, so q[0] = 0. Offsets are
 * computed in uint64_t: ts is non-decreasing, so ts[i] - ts[0] is the true
 * non-negative offset even across the whole int64 range. */
#include "storage/encode/encode_pvt.h"

#include <errno.h>
#include <stdint.h>

static const uint64_t unit_ns[4] = {1, 1000, 1000000, 1000000000};

/* Divisibility with the divisor a constant, so the compiler multiplies by its
 * inverse instead of dividing. */
static inline int divisible(uint64_t d, unsigned code)
{
    switch (code) {
    case 3: return d % 1000000000u == 0;
    case 2: return d % 1000000u == 0;
    case 1: return d % 1000u == 0;
    default: return 1;
    }
}

uint8_t *rf_ts_encode(uint8_t *out, const int64_t *ts, uint32_t n, uint64_t *q, uint64_t *scratch_a,
                      uint64_t *scratch_b)
{
    const unsigned xf = RF_XF_BIT(RF_XF_DELTA) | RF_XF_BIT(RF_XF_DOD);
    /* int64_t and uint64_t may alias: the column works on words */
    const uint64_t *w = (const uint64_t *)ts;
    const uint64_t t0 = w[0];
    unsigned code = 3;
    for (uint32_t i = 1; i < n && code; i++)
        while (code && !divisible(w[i] - t0, code))
            code--;

    *out++ = (uint8_t)code;
    if (code == 0)
        return rf_intcol_encode(out, w, n, xf, scratch_a, scratch_b);
    out = rf_varint_put(out, rf_zigzag(t0));
    switch (code) {
    case 3:
        for (uint32_t i = 0; i < n; i++)
            q[i] = (w[i] - t0) / 1000000000u;
        break;
    case 2:
        for (uint32_t i = 0; i < n; i++)
            q[i] = (w[i] - t0) / 1000000u;
        break;
    default:
        for (uint32_t i = 0; i < n; i++)
            q[i] = (w[i] - t0) / 1000u;
        break;
    }
    return rf_intcol_encode(out, q, n, xf, scratch_a, scratch_b);
}

long rf_ts_decode(const uint8_t *in, size_t len, uint32_t n, int64_t *ts)
{
    const uint8_t *p = in, *end = in + len;
    if (len < 1 || in[0] > 3)
        return -EBADMSG;
    unsigned code = *p++;
    uint64_t *w = (uint64_t *)ts;
    uint64_t t0 = 0;
    if (code && rf_varint_get(&p, end, &t0) < 0)
        return -EBADMSG;
    long used = rf_intcol_decode(p, (size_t)(end - p), n, w);
    if (used < 0)
        return used;
    /* Order is checked here, in the same pass as the scaling: offsets must
     * not decrease and must not leave the int64 range past ts[0]. */
    uint64_t bad = 0;
    if (code) {
        if (w[0] != 0) /* the encoder always stores offsets from ts[0] */
            return -EBADMSG;
        const int64_t first = (int64_t)rf_unzigzag(t0);
        const uint64_t unit = unit_ns[code];
        /* the largest offset that keeps ts within int64 */
        const uint64_t room = (uint64_t)INT64_MAX - (uint64_t)first;
        uint64_t prev = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t q = w[i];
            bad |= (q < prev) | (q > room / unit);
            prev = q;
            w[i] = (uint64_t)first + q * unit;
        }
    } else {
        for (uint32_t i = 1; i < n; i++)
            bad |= ts[i] < ts[i - 1];
    }
    return bad ? -EBADMSG : (p - in) + used;
}
