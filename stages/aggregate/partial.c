/* Partial aggregates and their wire form. Contract in partial.h, byte layout
 * in README.md ("Partials on the wire"). */
#include "stages/aggregate/partial.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes/bytes.h"

/* ---- double-double sums --------------------------------------------------- */

/* s + e == a + b exactly (Knuth's TwoSum; no branch, any magnitudes). */
static inline void two_sum(double a, double b, double *s, double *e)
{
    double x = a + b, bb = x - a;
    *s = x;
    *e = (a - (x - bb)) + (b - bb);
}

static inline void dd_add(rf_agg_dd *d, double x)
{
    double s, e;
    two_sum(d->hi, x, &s, &e);
    d->hi = s;
    d->lo += e;
}

/* Exactly commutative: two_sum is, and the low parts add in one order. */
static inline void dd_merge(rf_agg_dd *d, const rf_agg_dd *o)
{
    double s, e;
    two_sum(d->hi, o->hi, &s, &e);
    d->hi = s;
    d->lo = (d->lo + o->lo) + e;
}

void rf_agg_acc_reset(rf_agg_acc *a)
{
    memset(a, 0, sizeof(*a));
    a->min = INFINITY;
    a->max = -INFINITY;
}

void rf_agg_acc_add(rf_agg_acc *a, double x, double xs, double w, double inc, int64_t t)
{
    dd_add(&a->wcount, w);
    dd_add(&a->sum, xs);
    dd_add(&a->raw, x);
    double p = x * x;
    dd_add(&a->sq, p);
    a->sq.lo += fma(x, x, -p); /* the square's own rounding error */
    if (inc != 0)
        dd_add(&a->inc, inc);
    if (x < a->min)
        a->min = x;
    if (x > a->max)
        a->max = x;
    /* Event time, then value: an order no split between workers changes. */
    if (a->n == 0 || t < a->first_t || (t == a->first_t && x < a->first)) {
        a->first = x;
        a->first_t = t;
    }
    if (a->n == 0 || t > a->last_t || (t == a->last_t && x > a->last)) {
        a->last = x;
        a->last_t = t;
    }
    a->n++;
}

void rf_agg_acc_merge(rf_agg_acc *dst, const rf_agg_acc *src)
{
    if (src->n == 0)
        return;
    if (dst->n == 0) {
        *dst = *src;
        return;
    }
    dd_merge(&dst->wcount, &src->wcount);
    dd_merge(&dst->sum, &src->sum);
    dd_merge(&dst->raw, &src->raw);
    dd_merge(&dst->sq, &src->sq);
    dd_merge(&dst->inc, &src->inc);
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->first_t < dst->first_t || (src->first_t == dst->first_t && src->first < dst->first)) {
        dst->first = src->first;
        dst->first_t = src->first_t;
    }
    if (src->last_t > dst->last_t || (src->last_t == dst->last_t && src->last > dst->last)) {
        dst->last = src->last;
        dst->last_t = src->last_t;
    }
    dst->n += src->n;
}

/* d / n as a normalised double-double (q, *lo). */
static double dd_div(rf_agg_dd d, double n, double *lo)
{
    double s = d.hi + d.lo;
    double sl = d.lo - (s - d.hi);
    double q = s / n;
    *lo = (fma(-q, n, s) + sl) / n;
    return q;
}

double rf_agg_acc_mean(const rf_agg_acc *a)
{
    if (a->n == 0)
        return NAN;
    double lo, q = dd_div(a->raw, (double)a->n, &lo);
    return q + lo;
}

double rf_agg_acc_stddev(const rf_agg_acc *a)
{
    if (a->n == 0)
        return NAN;
    const double n = (double)a->n;
    double ml, m = dd_div(a->raw, n, &ml);
    double ql, q = dd_div(a->sq, n, &ql);
    /* var = E[x^2] - mean^2 with 106-bit terms: the cancellation that makes
     * the one-pass formula unusable in doubles costs bits of 106 here. */
    double p = m * m;
    double pl = fma(m, m, -p) + 2.0 * m * ml;
    double var = (q - p) + (ql - pl);
    return var > 0 ? sqrt(var) : 0.0;
}

/* ---- wire form --------------------------------------------------------------- */

static inline void putf(uint8_t *b, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    rf_write_le64(b, v);
}
static inline double getf(const uint8_t *b)
{
    uint64_t v = rf_read_le64(b);
    double d;
    memcpy(&d, &v, 8);
    return d;
}

/* alpha, count, zero, min, max, collapsed, reserved (48), then per store lo, n
 * (8) and n counts. */
static size_t sketch_bytes(const rf_ddsketch *sk)
{
    return 48u + 16u + 4u * ((size_t)sk->n[0] + sk->n[1]);
}

size_t rf_agg_partial_size(const rf_agg_partial *p, const rf_ddsketch *sk, const rf_hll *hll)
{
    size_t n = RF_AGG_PARTIAL_HEADER + p->text_len;
    if (sk)
        n += sketch_bytes(sk);
    if (hll)
        n += RF_HLL_REGISTERS;
    return n;
}

uint8_t *rf_agg_partial_encode(const rf_agg_partial *p, const rf_ddsketch *sk, const rf_hll *hll,
                               size_t *len)
{
    const size_t n = rf_agg_partial_size(p, sk, hll);
    if (n > UINT32_MAX)
        return NULL;
    uint8_t *b = malloc(n);
    if (!b)
        return NULL;
    const rf_agg_acc *a = &p->acc;
    b[0] = RF_AGG_PARTIAL_VERSION;
    b[1] = p->kind;
    b[2] = (uint8_t)((p->flags & RF_AGG_PF_LATE) | (sk ? RF_AGG_PF_SKETCH : 0) |
                     (hll ? RF_AGG_PF_HLL : 0));
    b[3] = 0;
    rf_write_le32(b + 4, (uint32_t)n);
    rf_write_le16(b + 8, p->rule);
    rf_write_le16(b + 10, p->text_len);
    rf_write_le16(b + 12, p->measurement_len);
    rf_write_le16(b + 14, p->field_offset);
    rf_write_le32(b + 16, a->n);
    rf_write_le32(b + 20, p->sender);
    rf_write_le64(b + 24, p->rule_sig);
    rf_write_le64(b + 32, p->group_id);
    rf_write_le64(b + 40, (uint64_t)p->start);
    rf_write_le64(b + 48, (uint64_t)p->window_ns);
    rf_write_le64(b + 56, (uint64_t)a->first_t);
    rf_write_le64(b + 64, (uint64_t)a->last_t);
    const rf_agg_dd *dd[5] = {&a->wcount, &a->sum, &a->raw, &a->sq, &a->inc};
    for (int i = 0; i < 5; i++) {
        putf(b + 72 + 16 * i, dd[i]->hi);
        putf(b + 80 + 16 * i, dd[i]->lo);
    }
    putf(b + 152, a->min);
    putf(b + 160, a->max);
    putf(b + 168, a->first);
    putf(b + 176, a->last);
    uint8_t *q = b + RF_AGG_PARTIAL_HEADER;
    memcpy(q, p->text, p->text_len);
    q += p->text_len;
    if (sk) {
        putf(q, sk->alpha);
        rf_write_le64(q + 8, sk->count);
        rf_write_le64(q + 16, sk->zero_count);
        putf(q + 24, sk->min);
        putf(q + 32, sk->max);
        rf_write_le32(q + 40, sk->collapsed);
        rf_write_le32(q + 44, 0);
        q += 48;
        for (int s = 0; s < 2; s++) {
            rf_write_le32(q, (uint32_t)sk->lo[s]);
            rf_write_le32(q + 4, sk->n[s]);
            q += 8;
            const uint32_t *c = sk->counts + (size_t)s * sk->bins;
            for (uint32_t i = 0; i < sk->n[s]; i++, q += 4)
                rf_write_le32(q, c[i]);
        }
    }
    if (hll) {
        memcpy(q, hll->reg, RF_HLL_REGISTERS);
        q += RF_HLL_REGISTERS;
    }
    *len = n;
    return b;
}

uint32_t rf_agg_partial_block_len(const uint8_t *b)
{
    return rf_read_le32(b + 4);
}

int rf_agg_partial_decode(const uint8_t *b, size_t len, rf_agg_partial *out)
{
    if (len < RF_AGG_PARTIAL_HEADER || b[0] != RF_AGG_PARTIAL_VERSION || rf_read_le32(b + 4) != len)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rf_agg_acc *a = &out->acc;
    out->kind = b[1];
    out->flags = b[2];
    out->rule = rf_read_le16(b + 8);
    out->text_len = rf_read_le16(b + 10);
    out->measurement_len = rf_read_le16(b + 12);
    out->field_offset = rf_read_le16(b + 14);
    a->n = rf_read_le32(b + 16);
    out->sender = rf_read_le32(b + 20);
    out->rule_sig = rf_read_le64(b + 24);
    out->group_id = rf_read_le64(b + 32);
    out->start = (int64_t)rf_read_le64(b + 40);
    out->window_ns = (int64_t)rf_read_le64(b + 48);
    a->first_t = (int64_t)rf_read_le64(b + 56);
    a->last_t = (int64_t)rf_read_le64(b + 64);
    rf_agg_dd *dd[5] = {&a->wcount, &a->sum, &a->raw, &a->sq, &a->inc};
    for (int i = 0; i < 5; i++) {
        dd[i]->hi = getf(b + 72 + 16 * i);
        dd[i]->lo = getf(b + 80 + 16 * i);
    }
    a->min = getf(b + 152);
    a->max = getf(b + 160);
    a->first = getf(b + 168);
    a->last = getf(b + 176);
    size_t off = RF_AGG_PARTIAL_HEADER;
    if (out->text_len > len - off || out->field_offset > out->text_len ||
        out->measurement_len > out->field_offset)
        return -EINVAL;
    out->text = (const char *)b + off;
    off += out->text_len;
    if (out->flags & RF_AGG_PF_SKETCH) {
        if (len - off < 48)
            return -EINVAL;
        const uint8_t *q = b + off;
        out->sk_alpha = getf(q);
        out->sk_count = rf_read_le64(q + 8);
        out->sk_zero = rf_read_le64(q + 16);
        out->sk_min = getf(q + 24);
        out->sk_max = getf(q + 32);
        out->sk_collapsed = rf_read_le32(q + 40);
        off += 48;
        for (int s = 0; s < 2; s++) {
            if (len - off < 8)
                return -EINVAL;
            out->sk_lo[s] = (int32_t)rf_read_le32(b + off);
            out->sk_n[s] = rf_read_le32(b + off + 4);
            off += 8;
            if (out->sk_n[s] > RF_DDSKETCH_MAX_BINS || (len - off) / 4 < out->sk_n[s])
                return -EINVAL;
            out->sk_counts[s] = b + off;
            off += 4u * (size_t)out->sk_n[s];
        }
    }
    if (out->flags & RF_AGG_PF_HLL) {
        if (len - off < RF_HLL_REGISTERS)
            return -EINVAL;
        out->hll = b + off;
        off += RF_HLL_REGISTERS;
    }
    return off == len ? 0 : -EINVAL;
}

int rf_agg_partial_sketch(const rf_agg_partial *p, rf_ddsketch *dst, uint32_t bins)
{
    if (!(p->flags & RF_AGG_PF_SKETCH) || p->sk_n[0] > bins || p->sk_n[1] > bins ||
        rf_ddsketch_init(dst, p->sk_alpha, bins) < 0)
        return -EINVAL;
    dst->count = p->sk_count;
    dst->zero_count = p->sk_zero;
    dst->min = p->sk_min;
    dst->max = p->sk_max;
    dst->collapsed = p->sk_collapsed;
    for (int s = 0; s < 2; s++) {
        dst->lo[s] = p->sk_lo[s];
        dst->n[s] = p->sk_n[s];
        uint32_t *c = dst->counts + (size_t)s * bins;
        for (uint32_t i = 0; i < p->sk_n[s]; i++)
            c[i] = rf_read_le32(p->sk_counts[s] + 4u * i);
    }
    return 0;
}
