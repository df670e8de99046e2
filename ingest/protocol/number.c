/* Numbers on the wire: strict syntax, exact values.
 *
 * Floats must come out bit-identical to strtod's correctly rounded result.
 * The fast path is Clinger's: when the decimal mantissa has at most 19 digits,
 * its value w is at most 2^53 and the decimal exponent e satisfies |e| <= 22,
 * both w and 10^|e| are exact doubles, so one IEEE multiply or divide gives the
 * correctly rounded result. Everything else (long mantissas, big exponents)
 * goes to strtod_l in the "C" locale after our own syntax check, so strtod
 * never sees "inf", "nan", hex floats or locale decimal commas. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "core/bytes/bytes.h"
#include "ingest/protocol/protocol_pvt.h"

enum rf_parse_result rf_num_f64_slow(rf_parse_ctx *ctx, const rf_numtok *t, double *out)
{
    /* All digits zero: zero whatever the exponent (and strtod agrees). */
    bool zero = true;
    for (const char *c = t->start; c < t->end && *c != 'e' && *c != 'E'; c++)
        if (*c >= '1' && *c <= '9') {
            zero = false;
            break;
        }
    if (zero) {
        *out = (t->flags & RF_NUM_NEG) ? -0.0 : 0.0;
        return RF_PARSE_OK;
    }
    /* The syntax is known to be a plain decimal, so strtod cannot read inf,
     * nan or hex; the "C" locale keeps '.' the decimal point. */
    size_t len = (size_t)(t->end - t->start);
    char *tmp = ctx->unesc; /* max_line_len + 1 bytes; a number is inside one line */
    memcpy(tmp, t->start, len);
    tmp[len] = '\0';
    double d = strtod_l(tmp, NULL, ctx->c_locale);
    /* One rule both ways: a value the double cannot hold is refused, too big
     * (inf) or too small (a non-zero mantissa that rounds to 0, which would
     * store a different number). Subnormals are kept: they are non-zero
     * values, only less precise. */
    if (isinf(d) || d == 0)
        return RF_PARSE_REJ_OUT_OF_RANGE;
    *out = d;
    return RF_PARSE_OK;
}

enum rf_parse_result rf_parse_f64(rf_parse_ctx *ctx, const char *p, size_t len, bool allow_plus,
                                  double *out)
{
    rf_numtok t;
    enum rf_parse_result r = rf_num_scan(p, p + len, allow_plus, &t);
    if (r)
        return r;
    if (t.end != p + len)
        return RF_PARSE_REJ_BAD_NUMBER;
    return rf_num_f64(ctx, &t, out);
}

/* True when the 8 bytes of w are all ASCII digits. */
static inline bool swar_all_digits(uint64_t w)
{
    return ((w & 0xf0f0f0f0f0f0f0f0ull) == 0x3030303030303030ull) &&
           (((w + 0x0606060606060606ull) & 0xf0f0f0f0f0f0f0f0ull) == 0x3030303030303030ull);
}

/* Value of 8 ASCII digits (first byte most significant), three multiplies. */
static inline uint64_t swar_8digits(uint64_t w)
{
    w -= 0x3030303030303030ull;
    w = (w * 10) + (w >> 8);
    w = (((w & 0x000000ff000000ffull) * (100 + (1000000ull << 32))) +
         (((w >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32)))) >>
        32;
    return w;
}

enum rf_parse_result rf_parse_u64(const char *p, size_t len, uint64_t *out)
{
    if (len == 0)
        return RF_PARSE_REJ_BAD_NUMBER;
    uint64_t v = 0;
    size_t i = 0;
    /* Up to 19 digits cannot overflow (10^19 - 1 < 2^64): no checks needed. */
    size_t safe = len < 19 ? len : 19;
    for (; i + 8 <= safe; i += 8) {
        const uint64_t w = rf_read_le64(p + i); /* p[i] is the low byte */
        if (!swar_all_digits(w))
            return RF_PARSE_REJ_BAD_NUMBER;
        v = v * 100000000u + swar_8digits(w);
    }
    for (; i < safe; i++) {
        unsigned d = (unsigned)(unsigned char)(p[i] - '0');
        if (d > 9)
            return RF_PARSE_REJ_BAD_NUMBER;
        v = v * 10 + d;
    }
    if (RF_UNLIKELY(len > 19)) {
        bool overflow = false;
        for (; i < len; i++) {
            unsigned d = (unsigned)(unsigned char)(p[i] - '0');
            if (d > 9)
                return RF_PARSE_REJ_BAD_NUMBER; /* a bad digit is a bad number, not a range error */
            if (!overflow &&
                (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, d, &v)))
                overflow = true;
        }
        if (overflow)
            return RF_PARSE_REJ_OUT_OF_RANGE;
    }
    *out = v;
    return RF_PARSE_OK;
}

enum rf_parse_result rf_parse_i64(const char *p, size_t len, int64_t *out)
{
    bool neg = len && p[0] == '-';
    uint64_t u;
    enum rf_parse_result r = rf_parse_u64(p + neg, len - neg, &u);
    if (r)
        return r;
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return RF_PARSE_REJ_OUT_OF_RANGE;
        *out = (int64_t)(0 - u);
    } else {
        if (u > (uint64_t)INT64_MAX)
            return RF_PARSE_REJ_OUT_OF_RANGE;
        *out = (int64_t)u;
    }
    return RF_PARSE_OK;
}
