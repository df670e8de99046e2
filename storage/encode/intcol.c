/* Integer columns: one transform (none, delta, delta-of-delta) and one
 * residual coder (all zero, fixed-width packing, Rice, sparse), chosen per
 * column: transforms ranked by a one-pass estimate, coders by exact size.
 * Timestamps, integer values, bools, scaled decimals and raw double bits all
 * go through here: one mechanism, parameterised.
 *
 * Why these coders: a regular interval makes delta-of-delta all zero (a
 * column costs its seeds only); counters that move rarely are sparse; noisy
 * gauges give roughly Gaussian deltas, for which Rice coding sits within about
 * 1% of the entropy (fixed width would spend the bits of the largest delta on
 * every point); uniform data packs at its width.
 *
 * All arithmetic is on uint64_t so deltas wrap instead of overflowing: a
 * column holding INT64_MIN next to INT64_MAX round-trips like any other. */
#include "storage/encode/bitstream.h"
#include "storage/encode/encode_pvt.h"

#include <errno.h>
#include <string.h>

typedef struct seq_plan {
    unsigned kind;
    unsigned k;       /* PACK width, RICE k, SPARSE gap k */
    unsigned k2;      /* SPARSE value k */
    uint32_t nonzero; /* SPARSE pair count */
    uint64_t payload; /* payload bits, exact */
    uint64_t total;   /* payload bits + header bits, for comparisons */
} seq_plan;

static inline uint64_t rice_bits(uint64_t x, unsigned k)
{
    uint64_t q = x >> k;
    return q < RF_RICE_ESC ? q + 1 + k : RF_RICE_ESC + 6 + rf_bitlen64(x);
}

static inline void rice_put(rf_bitw *w, uint64_t x, unsigned k)
{
    uint64_t q = x >> k;
    if (q < RF_RICE_ESC) {
        /* q ones, a zero, k low bits: at most 24 + 1 + 31 = 56 bits, one put */
        uint64_t code = ((1ull << q) - 1) | ((x & rf_mask64(k)) << (q + 1));
        rf_bitw_put(w, code, (unsigned)q + 1 + k);
    } else {
        unsigned len = rf_bitlen64(x);
        rf_bitw_put(w, (1ull << RF_RICE_ESC) - 1, RF_RICE_ESC);
        rf_bitw_put(w, len - 1, 6);
        rf_bitw_put64(w, x, len);
    }
}

/* Reads one Rice value; returns -1 on a non-canonical escape (corrupt). */
static inline int rice_get(rf_bitr *r, unsigned k, uint64_t kmask, uint64_t *out)
{
    uint64_t w = rf_bitr_peek(r);
    unsigned q = (unsigned)__builtin_ctzll(~w | (1ull << RF_RICE_ESC));
    if (__builtin_expect(q < RF_RICE_ESC, 1)) {
        *out = ((uint64_t)q << k) | ((w >> (q + 1)) & kmask);
        r->pos += q + 1 + k;
        return 0;
    }
    r->pos += RF_RICE_ESC;
    unsigned len = (unsigned)rf_bitr_get(r, 6) + 1;
    uint64_t x = rf_bitr_get64(r, len);
    if (rf_bitlen64(x) != len || (x >> k) < RF_RICE_ESC)
        return -1;
    *out = x;
    return 0;
}

static uint64_t bits_to_bytes(uint64_t bits)
{
    return (bits + 7) / 8;
}

/* Cheap statistics of a residual sequence, gathered for every transform in
 * the same pass that computes the residuals. */
typedef struct seq_stats {
    uint64_t all;    /* OR of the values: the packing width */
    uint64_t sumlen; /* sum of bit lengths: a proxy for Rice cost */
    uint32_t nonzero;
} seq_stats;

static inline void stats_add(seq_stats *s, uint64_t x)
{
    s->all |= x;
    s->nonzero += x != 0;
    /* bit length without a branch: (x | 1) only differs from x at 0 */
    s->sumlen += 64u - (unsigned)__builtin_clzll(x | 1) - (x == 0);
}

/* Estimated bits of the best coder, to rank transforms before the exact plan. */
static uint64_t stats_estimate(const seq_stats *s, uint32_t cnt)
{
    if (!s->all)
        return 8;
    uint64_t best = (uint64_t)rf_bitlen64(s->all) * cnt;
    uint64_t rice = s->sumlen + cnt;
    if (rice < best)
        best = rice;
    if ((uint64_t)s->nonzero * 8 <= cnt) {
        uint64_t sparse = s->sumlen + (uint64_t)s->nonzero * (rf_bitlen64(cnt / s->nonzero) + 2);
        if (sparse < best)
            best = sparse;
    }
    return best + 16;
}

/* Lowest of four Rice parameters to try, from the mean bit length. */
static unsigned rice_k_low(uint64_t sumlen, uint64_t count)
{
    uint64_t mean = count ? sumlen / count : 0;
    return mean > 2 ? (unsigned)(mean - 2 > RF_RICE_KMAX ? RF_RICE_KMAX : mean - 2) : 0;
}

/* Exact plan for x[0..cnt), cnt >= 1, given its statistics. */
static seq_plan seq_plan_of(const uint64_t *x, uint32_t cnt, const seq_stats *st)
{
    seq_plan best = {.kind = RF_SEQ_ZERO, .total = 8};
    if (st->all == 0)
        return best;

    unsigned width = rf_bitlen64(st->all);
    best = (seq_plan){.kind = RF_SEQ_PACK, .k = width, .payload = (uint64_t)width * cnt};
    best.total = 8 + bits_to_bytes(best.payload) * 8;

    /* Rice: exact cost of four parameters around the mean length, one pass. */
    unsigned k0 = rice_k_low(st->sumlen, cnt);
    uint64_t c[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; i < cnt; i++) {
        uint64_t v = x[i];
        c[0] += rice_bits(v, k0);
        c[1] += rice_bits(v, k0 + 1);
        c[2] += rice_bits(v, k0 + 2);
        c[3] += rice_bits(v, k0 + 3);
    }
    for (unsigned j = 0; j < 4 && k0 + j <= RF_RICE_KMAX; j++) {
        /* two streams: up to one more padding byte, and the split's varint */
        uint64_t bytes = bits_to_bytes(c[j]) + 1;
        uint64_t total = 8 + 2 * rf_varint_len(bytes) * 8 + bytes * 8;
        if (total < best.total)
            best = (seq_plan){.kind = RF_SEQ_RICE, .k = k0 + j, .payload = c[j], .total = total};
    }

    /* Sparse: only worth a pass when at most one residual in eight is nonzero. */
    if ((uint64_t)st->nonzero * 8 <= cnt) {
        unsigned kv0 = rice_k_low(st->sumlen, st->nonzero);
        unsigned kg0 = rice_k_low((uint64_t)rf_bitlen64(cnt / st->nonzero) * 2, 2);
        uint64_t cg[4] = {0, 0, 0, 0}, cv[4] = {0, 0, 0, 0};
        uint32_t next = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            if (!x[i])
                continue;
            uint64_t gap = i - next, val = x[i] - 1;
            next = i + 1;
            for (unsigned j = 0; j < 4; j++) {
                cg[j] += rice_bits(gap, kg0 + j);
                cv[j] += rice_bits(val, kv0 + j);
            }
        }
        unsigned bg = 0, bv = 0;
        for (unsigned j = 1; j < 4; j++) {
            if (kg0 + j <= RF_RICE_KMAX && cg[j] < cg[bg])
                bg = j;
            if (kv0 + j <= RF_RICE_KMAX && cv[j] < cv[bv])
                bv = j;
        }
        uint64_t payload = cg[bg] + cv[bv];
        uint64_t bytes = bits_to_bytes(payload);
        uint64_t total = 16 + (rf_varint_len(st->nonzero) + rf_varint_len(bytes) + bytes) * 8;
        if (total < best.total)
            best = (seq_plan){.kind = RF_SEQ_SPARSE,
                              .k = kg0 + bg,
                              .k2 = kv0 + bv,
                              .nonzero = st->nonzero,
                              .payload = payload,
                              .total = total};
    }
    return best;
}

static uint8_t *seq_write(uint8_t *out, const uint64_t *x, uint32_t cnt, const seq_plan *p)
{
    rf_bitw w;
    switch (p->kind) {
    case RF_SEQ_ZERO: *out++ = RF_SEQ_ZERO; return out;
    case RF_SEQ_PACK:
        *out++ = (uint8_t)(RF_SEQ_PACK | ((p->k - 1) << 2));
        rf_bitw_init(&w, out);
        for (uint32_t i = 0; i < cnt; i++)
            rf_bitw_put64(&w, x[i], p->k);
        return out + rf_bitw_bytes(&w);
    case RF_SEQ_RICE: {
        /* two streams, even and odd residuals (see rice_decode_xf) */
        uint64_t bits_a = 0, bits_b = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            uint64_t b = rice_bits(x[i], p->k);
            bits_a += (i & 1) ? 0 : b;
            bits_b += (i & 1) ? b : 0;
        }
        uint64_t len_a = bits_to_bytes(bits_a), len_b = bits_to_bytes(bits_b);
        *out++ = (uint8_t)(RF_SEQ_RICE | (p->k << 2));
        out = rf_varint_put(out, len_a + len_b);
        out = rf_varint_put(out, len_a);
        rf_bitw_init(&w, out);
        for (uint32_t i = 0; i < cnt; i += 2)
            rice_put(&w, x[i], p->k);
        out += rf_bitw_bytes(&w);
        rf_bitw_init(&w, out);
        for (uint32_t i = 1; i < cnt; i += 2)
            rice_put(&w, x[i], p->k);
        return out + rf_bitw_bytes(&w);
    }
    default: {
        *out++ = (uint8_t)(RF_SEQ_SPARSE | (p->k << 2));
        *out++ = (uint8_t)p->k2;
        out = rf_varint_put(out, p->nonzero);
        out = rf_varint_put(out, bits_to_bytes(p->payload));
        rf_bitw_init(&w, out);
        uint32_t next = 0;
        for (uint32_t i = 0; i < cnt; i++) {
            if (!x[i])
                continue;
            rice_put(&w, i - next, p->k);
            rice_put(&w, x[i] - 1, p->k2);
            next = i + 1;
        }
        return out + rf_bitw_bytes(&w);
    }
    }
}

uint8_t *rf_intcol_encode(uint8_t *out, const uint64_t *v, uint32_t n, unsigned xf_mask,
                          uint64_t *scratch_a, uint64_t *scratch_b)
{
    /* One pass: delta residuals into a, delta-of-delta into b (NONE uses v
     * itself), and their statistics, in locals so they stay in registers. */
    seq_stats st[3] = {{0}, {0}, {0}};
    if (xf_mask & RF_XF_BIT(RF_XF_NONE))
        for (uint32_t i = 0; i < n; i++)
            stats_add(&st[0], v[i]);
    if (n > 1 && (xf_mask & (RF_XF_BIT(RF_XF_DELTA) | RF_XF_BIT(RF_XF_DOD)))) {
        uint64_t prev_d = v[1] - v[0];
        uint64_t a0 = rf_zigzag(prev_d);
        scratch_a[0] = a0;
        uint64_t or_a = a0, or_b = 0, len_a = 0, len_b = 0;
        uint32_t nz_a = a0 != 0, nz_b = 0;
        len_a = 64u - (unsigned)__builtin_clzll(a0 | 1) - (a0 == 0);
        for (uint32_t i = 2; i < n; i++) {
            uint64_t d = v[i] - v[i - 1];
            uint64_t a = rf_zigzag(d), b = rf_zigzag(d - prev_d);
            prev_d = d;
            scratch_a[i - 1] = a;
            scratch_b[i - 2] = b;
            or_a |= a;
            or_b |= b;
            nz_a += a != 0;
            nz_b += b != 0;
            len_a += 64u - (unsigned)__builtin_clzll(a | 1) - (a == 0);
            len_b += 64u - (unsigned)__builtin_clzll(b | 1) - (b == 0);
        }
        st[1] = (seq_stats){or_a, len_a, nz_a};
        st[2] = (seq_stats){or_b, len_b, nz_b};
    }
    const uint64_t *res[3] = {v, scratch_a, scratch_b};
    uint64_t seed[2] = {rf_zigzag(v[0]), n > 1 ? rf_zigzag(v[1] - v[0]) : 0};

    /* Rank the transforms by estimate; plan exactly those within 3% of the
     * best estimate (usually one). */
    uint64_t est[3], seed_bits[3], best_est = UINT64_MAX;
    for (unsigned xf = RF_XF_NONE; xf <= RF_XF_DOD; xf++) {
        est[xf] = UINT64_MAX;
        if (!(xf_mask & RF_XF_BIT(xf)))
            continue;
        uint32_t seeds = xf < n ? xf : n;
        seed_bits[xf] = 8;
        for (uint32_t s = 0; s < seeds; s++)
            seed_bits[xf] += 8 * rf_varint_len(seed[s]);
        est[xf] = seed_bits[xf] + (n > seeds ? stats_estimate(&st[xf], n - seeds) : 0);
        if (est[xf] < best_est)
            best_est = est[xf];
    }
    unsigned best_xf = 0;
    seq_plan best = {0};
    uint64_t best_total = UINT64_MAX;
    for (unsigned xf = RF_XF_NONE; xf <= RF_XF_DOD; xf++) {
        if (est[xf] == UINT64_MAX || est[xf] > best_est + best_est / 32 + 64)
            continue;
        uint32_t seeds = xf < n ? xf : n;
        uint64_t total = seed_bits[xf];
        seq_plan p = {0};
        if (n > seeds) {
            p = seq_plan_of(res[xf], n - seeds, &st[xf]);
            total += p.total;
        }
        if (total < best_total) {
            best_total = total;
            best_xf = xf;
            best = p;
        }
    }

    uint32_t seeds = best_xf < n ? best_xf : n;
    *out++ = (uint8_t)best_xf;
    for (uint32_t s = 0; s < seeds; s++)
        out = rf_varint_put(out, seed[s]);
    if (n > seeds)
        out = seq_write(out, res[best_xf], n - seeds, &best);
    return out;
}

/* Running state of the inverse transform, so that the decoding loops can
 * rebuild the values as they read residuals (one pass instead of two; the
 * prefix sums run beside the bit reader's dependency chain, not after it). */
typedef struct xf_state {
    uint64_t acc; /* last value */
    uint64_t d;   /* last delta (DOD) */
} xf_state;

static inline __attribute__((always_inline)) uint64_t xf_step(unsigned xf, xf_state *s, uint64_t r)
{
    if (xf == RF_XF_DELTA) {
        s->acc += rf_unzigzag(r);
        return s->acc;
    }
    if (xf == RF_XF_DOD) {
        s->d += rf_unzigzag(r);
        s->acc += s->d;
        return s->acc;
    }
    return r;
}

/* Rice-decodes cnt residuals and applies the transform. The payload is two
 * bit streams, a (residuals 0, 2, 4, ...) of len_a bytes then b (1, 3, 5, ...)
 * of len_b bytes. A Rice stream is one long dependency chain (position ->
 * load -> count ones -> position); two independent chains let the core
 * overlap them, which is most of the decode speed. Returns -1 on corruption. */
static inline __attribute__((always_inline)) int rice_decode_xf(const uint8_t *pa, size_t len_a,
                                                                const uint8_t *pb, size_t len_b,
                                                                unsigned k, uint32_t cnt,
                                                                uint64_t *x, unsigned xf,
                                                                xf_state s)
{
    const uint64_t kmask = rf_mask64(k);
    const uint64_t stop = 1ull << RF_RICE_ESC;
    /* below these bit positions an 8-byte load stays inside its stream */
    const size_t fast_a = len_a >= 8 ? (len_a - 7) * 8 : 0;
    const size_t fast_b = len_b >= 8 ? (len_b - 7) * 8 : 0;
    size_t pos_a = 0, pos_b = 0;
    uint32_t i = 0; /* even at the top of each phase */
    for (;;) {
        while (i + 1 < cnt && pos_a < fast_a && pos_b < fast_b) {
            uint64_t wa = rf_read_le64(pa + (pos_a >> 3)) >> (pos_a & 7);
            uint64_t wb = rf_read_le64(pb + (pos_b >> 3)) >> (pos_b & 7);
            unsigned qa = (unsigned)__builtin_ctzll(~wa | stop);
            unsigned qb = (unsigned)__builtin_ctzll(~wb | stop);
            if (__builtin_expect(qa >= RF_RICE_ESC || qb >= RF_RICE_ESC, 0))
                break; /* an escape: the careful step below takes it */
            uint64_t ra = ((uint64_t)qa << k) | ((wa >> (qa + 1)) & kmask);
            uint64_t rb = ((uint64_t)qb << k) | ((wb >> (qb + 1)) & kmask);
            pos_a += qa + 1 + k;
            pos_b += qb + 1 + k;
            x[i] = xf_step(xf, &s, ra);
            x[i + 1] = xf_step(xf, &s, rb);
            i += 2;
        }
        if (i >= cnt)
            break;
        /* careful step: one pair (or the last value) through the bounded
         * reader; handles escapes and the streams' tails */
        rf_bitr br_a = {pa, len_a, pos_a}, br_b = {pb, len_b, pos_b};
        uint64_t r;
        if (rice_get(&br_a, k, kmask, &r) < 0)
            return -1;
        x[i++] = xf_step(xf, &s, r);
        if (i < cnt) {
            if (rice_get(&br_b, k, kmask, &r) < 0)
                return -1;
            x[i++] = xf_step(xf, &s, r);
        }
        pos_a = br_a.pos;
        pos_b = br_b.pos;
    }
    return (pos_a + 7) / 8 == len_a && (pos_b + 7) / 8 == len_b ? 0 : -1;
}

/* Fixed-width unpacking and the transform; w <= 56 takes one load per value
 * and carries no dependency beyond the index. */
static inline __attribute__((always_inline)) void pack_decode_xf(const uint8_t *base, size_t len,
                                                                 unsigned width, uint32_t cnt,
                                                                 uint64_t *x, unsigned xf,
                                                                 xf_state s)
{
    rf_bitr r;
    rf_bitr_init(&r, base, len);
    if (width <= 56) {
        const uint64_t mask = rf_mask64(width);
        const size_t fast_end = len >= 8 ? (len - 7) * 8 : 0;
        uint32_t i = 0;
        size_t pos = 0;
        for (; i < cnt && pos < fast_end; i++, pos += width)
            x[i] = xf_step(xf, &s, (rf_read_le64(base + (pos >> 3)) >> (pos & 7)) & mask);
        r.pos = pos;
        for (; i < cnt; i++) {
            x[i] = xf_step(xf, &s, rf_bitr_peek(&r) & mask);
            r.pos += width;
        }
    } else {
        for (uint32_t i = 0; i < cnt; i++)
            x[i] = xf_step(xf, &s, rf_bitr_get64(&r, width));
    }
}

/* One out-of-line copy per transform, so xf is a constant inside the loops. */
#define RF_DEFINE_DECODERS(name, xf)                                                               \
    __attribute__((noinline)) static int rice_decode_##name(                                       \
        const uint8_t *a, size_t la, const uint8_t *b, size_t lb, unsigned k, uint32_t c,          \
        uint64_t *x, xf_state s)                                                                   \
    {                                                                                              \
        return rice_decode_xf(a, la, b, lb, k, c, x, xf, s);                                       \
    }                                                                                              \
    __attribute__((noinline)) static void pack_decode_##name(                                      \
        const uint8_t *b, size_t l, unsigned w, uint32_t c, uint64_t *x, xf_state s)               \
    {                                                                                              \
        pack_decode_xf(b, l, w, c, x, xf, s);                                                      \
    }
RF_DEFINE_DECODERS(none, RF_XF_NONE)
RF_DEFINE_DECODERS(delta, RF_XF_DELTA)
RF_DEFINE_DECODERS(dod, RF_XF_DOD)

static int rice_decode(const uint8_t *a, size_t la, const uint8_t *b, size_t lb, unsigned k,
                       uint32_t c, uint64_t *x, unsigned xf, xf_state s)
{
    switch (xf) {
    case RF_XF_DELTA: return rice_decode_delta(a, la, b, lb, k, c, x, s);
    case RF_XF_DOD: return rice_decode_dod(a, la, b, lb, k, c, x, s);
    default: return rice_decode_none(a, la, b, lb, k, c, x, s);
    }
}

static void pack_decode(const uint8_t *b, size_t l, unsigned w, uint32_t c, uint64_t *x,
                        unsigned xf, xf_state s)
{
    switch (xf) {
    case RF_XF_DELTA: pack_decode_delta(b, l, w, c, x, s); break;
    case RF_XF_DOD: pack_decode_dod(b, l, w, c, x, s); break;
    default: pack_decode_none(b, l, w, c, x, s); break;
    }
}

static long seq_read(const uint8_t *in, size_t len, uint32_t cnt, uint64_t *x, unsigned xf,
                     xf_state st, int *applied)
{
    *applied = 0;
    const uint8_t *p = in, *end = in + len;
    if (p >= end)
        return -EBADMSG;
    unsigned kind = *p & 3, param = *p >> 2;
    p++;
    uint64_t plen;
    rf_bitr r;

    switch (kind) {
    case RF_SEQ_ZERO:
        if (param)
            return -EBADMSG;
        memset(x, 0, (size_t)cnt * sizeof *x);
        return p - in;

    case RF_SEQ_PACK: {
        unsigned width = param + 1;
        plen = bits_to_bytes((uint64_t)cnt * width);
        if (plen > (uint64_t)(end - p))
            return -EBADMSG;
        pack_decode(p, plen, width, cnt, x, xf, st);
        *applied = 1;
        return (p - in) + (long)plen;
    }

    case RF_SEQ_RICE: {
        unsigned k = param;
        uint64_t len_a;
        if (k > RF_RICE_KMAX || rf_varint_get(&p, end, &plen) < 0 || plen > (uint64_t)(end - p) ||
            rf_varint_get(&p, end, &len_a) < 0 || plen > (uint64_t)(end - p) || len_a > plen)
            return -EBADMSG;
        if (rice_decode(p, len_a, p + len_a, plen - len_a, k, cnt, x, xf, st) < 0)
            return -EBADMSG;
        *applied = 1;
        return (p - in) + (long)plen;
    }

    default: {
        unsigned kg = param;
        uint64_t m;
        if (p >= end)
            return -EBADMSG;
        unsigned kv = *p++;
        if (kg > RF_RICE_KMAX || kv > RF_RICE_KMAX || rf_varint_get(&p, end, &m) < 0 || m == 0 ||
            m > cnt || rf_varint_get(&p, end, &plen) < 0 || plen > (uint64_t)(end - p))
            return -EBADMSG;
        memset(x, 0, (size_t)cnt * sizeof *x);
        rf_bitr_init(&r, p, plen);
        uint64_t gmask = rf_mask64(kg), vmask = rf_mask64(kv);
        uint64_t next = 0;
        for (uint64_t j = 0; j < m; j++) {
            uint64_t gap, val;
            if (rice_get(&r, kg, gmask, &gap) < 0 || rice_get(&r, kv, vmask, &val) < 0)
                return -EBADMSG;
            if (gap >= cnt - next || val == UINT64_MAX)
                return -EBADMSG;
            next += gap;
            x[next++] = val + 1;
        }
        if (!rf_bitr_exact(&r))
            return -EBADMSG;
        return (p - in) + (long)plen;
    }
    }
}

long rf_intcol_decode(const uint8_t *in, size_t len, uint32_t n, uint64_t *out)
{
    const uint8_t *p = in, *end = in + len;
    if (p >= end || *p > RF_XF_DOD)
        return -EBADMSG;
    unsigned xf = *p++;
    uint32_t seeds = xf < n ? xf : n;
    uint64_t seed[2] = {0, 0};
    for (uint32_t s = 0; s < seeds; s++)
        if (rf_varint_get(&p, end, &seed[s]) < 0)
            return -EBADMSG;

    /* the seeds are the first values; the state continues from them */
    xf_state st = {0, 0};
    if (seeds >= 1)
        out[0] = st.acc = rf_unzigzag(seed[0]);
    if (seeds >= 2) {
        st.d = rf_unzigzag(seed[1]);
        out[1] = st.acc = st.acc + st.d;
    }
    if (n == seeds)
        return p - in;

    int applied;
    long c = seq_read(p, (size_t)(end - p), n - seeds, out + seeds, xf, st, &applied);
    if (c < 0)
        return c;
    p += c;
    if (!applied) {
        uint64_t *x = out + seeds;
        for (uint32_t i = 0; i < n - seeds; i++)
            x[i] = xf_step(xf, &st, x[i]);
    }
    return p - in;
}
