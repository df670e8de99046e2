/* DDSketch with the cubically interpolated mapping, and HyperLogLog p=10.
 * See sketch.h for the guarantees and the reasoning. */
#include "stages/sketch/sketch.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* P(s) = A s^3 + B s^2 + C s: P(0) = 0, P(1) = 1, increasing on [0,1]. */
#define CUBIC_A (6.0 / 35.0)
#define CUBIC_B (-3.0 / 5.0)
#define CUBIC_C (10.0 / 7.0)

size_t rf_ddsketch_size(uint32_t bins)
{
    return sizeof(rf_ddsketch) + 2u * (size_t)bins * sizeof(uint32_t);
}

int rf_ddsketch_init(rf_ddsketch *s, double alpha, uint32_t bins)
{
    if (!(alpha >= 1e-4 && alpha < 0.5) || bins < 16 || bins > RF_DDSKETCH_MAX_BINS)
        return -EINVAL;
    double gamma = (1 + alpha) / (1 - alpha);
    s->alpha = alpha;
    s->multiplier = 1.0 / (CUBIC_C * log(gamma));
    s->bins = bins;
    rf_ddsketch_reset(s);
    return 0;
}

void rf_ddsketch_reset(rf_ddsketch *s)
{
    s->count = 0;
    s->zero_count = 0;
    s->min = INFINITY;
    s->max = -INFINITY;
    s->lo[0] = s->lo[1] = 0;
    s->n[0] = s->n[1] = 0;
    s->collapsed = 0;
    /* counts are zeroed lazily: a store's range is cleared as it grows. */
}

static inline double approx_log2(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, sizeof(bits));
    double e = (double)((int)((bits >> 52) & 0x7ff) - 1023);
    uint64_t mant = (bits & 0xfffffffffffffull) | 0x3ff0000000000000ull;
    double sig;
    memcpy(&sig, &mant, sizeof(sig));
    double t = sig - 1.0;
    return ((CUBIC_A * t + CUBIC_B) * t + CUBIC_C) * t + e;
}

int32_t rf_ddsketch_key(const rf_ddsketch *s, double absv)
{
    /* floor without the libm call (no SSE4.1 round in the baseline ISA);
     * |y| < 2^31 for every finite double at any alpha >= 1e-4 we accept. */
    double y = approx_log2(absv) * s->multiplier;
    int32_t k = (int32_t)y;
    return k - (y < (double)k);
}

/* Inverse of approx_log2: P is increasing, so bisection is exact enough and
 * this runs only when a quantile is read, never per value. */
static double approx_exp2(double y)
{
    double e = floor(y);
    double f = y - e;
    double lo = 0, hi = 1;
    for (int i = 0; i < 60; i++) {
        double mid = 0.5 * (lo + hi);
        double p = ((CUBIC_A * mid + CUBIC_B) * mid + CUBIC_C) * mid;
        if (p < f)
            lo = mid;
        else
            hi = mid;
    }
    return ldexp(1.0 + lo, (int)e);
}

double rf_ddsketch_key_value(const rf_ddsketch *s, int32_t key)
{
    return approx_exp2((double)key / s->multiplier) * (1 + s->alpha);
}

/* Adds `w` at `key` in store st, whose keys ascend with the value order of
 * the store (negative values are stored under -key, see sketch.h), keeping the
 * range within `bins` by collapsing the lowest keys. */
static void store_add(rf_ddsketch *s, int st, int32_t key, uint32_t w)
{
    uint32_t *c = s->counts + (size_t)st * s->bins;
    int32_t lo = s->lo[st];
    uint32_t n = s->n[st];
    if (n && key >= lo && key < lo + (int32_t)n) {
        uint32_t *b = &c[key - lo];
        *b = (*b > UINT32_MAX - w) ? UINT32_MAX : *b + w;
        return;
    }
    if (n == 0) {
        s->lo[st] = key;
        s->n[st] = 1;
        c[0] = w;
        return;
    }
    int64_t hi = (int64_t)lo + n - 1;
    if (key > hi)
        hi = key;
    int64_t newlo = key < lo ? key : lo;
    if (hi - newlo + 1 > (int64_t)s->bins) {
        newlo = hi - (int64_t)s->bins + 1;
        s->collapsed++;
    }
    if (newlo > lo) {
        /* Collapse keys lo..newlo-1 into newlo, then shift down. */
        uint64_t folded = 0;
        int64_t shift = newlo - lo;
        for (int64_t k = 0; k < shift && k < (int64_t)n; k++)
            folded += c[k];
        if (shift < (int64_t)n) {
            memmove(c, c + shift, (size_t)(n - shift) * sizeof(*c));
            n -= (uint32_t)shift;
        } else {
            n = 1;
            c[0] = 0;
        }
        folded += c[0];
        c[0] = folded > UINT32_MAX ? UINT32_MAX : (uint32_t)folded;
        lo = (int32_t)newlo;
    } else if (newlo < lo) {
        uint32_t shift = (uint32_t)(lo - newlo);
        memmove(c + shift, c, (size_t)n * sizeof(*c));
        memset(c, 0, (size_t)shift * sizeof(*c));
        n += shift;
        lo = (int32_t)newlo;
    }
    uint32_t newn = (uint32_t)(hi - lo + 1);
    if (newn > n)
        memset(c + n, 0, (size_t)(newn - n) * sizeof(*c));
    s->lo[st] = lo;
    s->n[st] = newn;
    if (key < lo)
        key = lo;
    uint32_t *b = &c[key - lo];
    *b = (*b > UINT32_MAX - w) ? UINT32_MAX : *b + w;
}

int rf_ddsketch_add_n(rf_ddsketch *s, double v, uint32_t w)
{
    if (!isfinite(v))
        return -EINVAL;
    if (w == 0)
        return 0;
    s->count += w;
    if (v < s->min)
        s->min = v;
    if (v > s->max)
        s->max = v;
    if (v >= DBL_MIN)
        store_add(s, 0, rf_ddsketch_key(s, v), w);
    else if (v <= -DBL_MIN)
        store_add(s, 1, -rf_ddsketch_key(s, -v), w);
    else
        s->zero_count += w;
    return 0;
}

double rf_ddsketch_quantile(const rf_ddsketch *s, double q)
{
    if (s->count == 0 || !(q >= 0 && q <= 1))
        return NAN;
    double rank = (double)rf_quantile_rank(q, s->count);
    double v = 0;
    uint64_t cum = 0;
    int found = 0;
    /* Negative store: ascending stored key = ascending value. */
    const uint32_t *c = s->counts + s->bins;
    for (uint32_t i = 0; i < s->n[1] && !found; i++) {
        cum += c[i];
        if ((double)cum > rank) {
            v = -rf_ddsketch_key_value(s, -(s->lo[1] + (int32_t)i));
            found = 1;
        }
    }
    if (!found) {
        cum += s->zero_count;
        if ((double)cum > rank) {
            v = 0;
            found = 1;
        }
    }
    c = s->counts;
    for (uint32_t i = 0; i < s->n[0] && !found; i++) {
        cum += c[i];
        if ((double)cum > rank) {
            v = rf_ddsketch_key_value(s, s->lo[0] + (int32_t)i);
            found = 1;
        }
    }
    if (!found) /* saturated counts: the top */
        v = s->max;
    if (v < s->min)
        v = s->min;
    if (v > s->max)
        v = s->max;
    return v;
}

int rf_ddsketch_merge(rf_ddsketch *dst, const rf_ddsketch *src)
{
    if (dst->alpha != src->alpha)
        return -EINVAL;
    if (src->count == 0)
        return 0;
    for (int st = 0; st < 2; st++) {
        const uint32_t *c = src->counts + (size_t)st * src->bins;
        /* Highest keys first, so collapses (if any) happen once at the bottom. */
        for (uint32_t i = src->n[st]; i-- > 0;)
            if (c[i])
                store_add(dst, st, src->lo[st] + (int32_t)i, c[i]);
    }
    dst->zero_count += src->zero_count;
    dst->count += src->count;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    return 0;
}

/* ---- HyperLogLog ------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
    /* splitmix64 / murmur3 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

void rf_hll_reset(rf_hll *h)
{
    memset(h->reg, 0, sizeof(h->reg));
}

void rf_hll_add(rf_hll *h, uint64_t member)
{
    uint64_t x = mix64(member);
    uint32_t idx = (uint32_t)(x >> (64 - RF_HLL_PRECISION));
    uint64_t w = x << RF_HLL_PRECISION;
    uint8_t rank = w ? (uint8_t)(__builtin_clzll(w) + 1) : (uint8_t)(64 - RF_HLL_PRECISION + 1);
    if (rank > h->reg[idx])
        h->reg[idx] = rank;
}

double rf_hll_estimate(const rf_hll *h)
{
    const double m = RF_HLL_REGISTERS;
    double sum = 0;
    uint32_t zeros = 0;
    for (uint32_t i = 0; i < RF_HLL_REGISTERS; i++) {
        sum += ldexp(1.0, -(int)h->reg[i]);
        zeros += h->reg[i] == 0;
    }
    double alpha = 0.7213 / (1.0 + 1.079 / m);
    double est = alpha * m * m / sum;
    if (est <= 2.5 * m && zeros)
        est = m * log(m / zeros);
    return est;
}

void rf_hll_merge(rf_hll *dst, const rf_hll *src)
{
    for (uint32_t i = 0; i < RF_HLL_REGISTERS; i++)
        if (src->reg[i] > dst->reg[i])
            dst->reg[i] = src->reg[i];
}
