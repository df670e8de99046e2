/* Block encoder tests: edge values, property-style random round trips over
 * every data class and block size, argument errors, truncation and bit flips,
 * and the bytes/point goals. Run under ASan/UBSan as well:
 *   meson setup build-encode-asan -Db_sanitize=address,undefined
 *   meson test -C build-encode-asan --suite encode */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event/event.h"
#include "storage/encode/encode.h"
#include "storage/encode/encode_pvt.h"
#include "storage/encode/gen_series.h"

#define MAXP RF_BLOCK_MAX_POINTS

typedef struct fixture {
    rf_block_codec *codec[3]; /* zstd levels 0, 1, 3 */
    int64_t *ts, *ts2;
    uint64_t *v, *v2;
    uint8_t *buf;
    size_t cap;
} fixture;

static fixture F;

static int setup(void **state)
{
    (void)state;
    static const int levels[3] = {0, 1, 3};
    for (int i = 0; i < 3; i++)
        F.codec[i] = rf_block_codec_new(levels[i]);
    F.ts = malloc(MAXP * sizeof *F.ts);
    F.ts2 = malloc(MAXP * sizeof *F.ts2);
    F.v = malloc(MAXP * sizeof *F.v);
    F.v2 = malloc(MAXP * sizeof *F.v2);
    F.cap = rf_block_encode_bound(MAXP);
    F.buf = malloc(F.cap);
    return F.codec[0] && F.codec[1] && F.codec[2] && F.ts && F.ts2 && F.v && F.v2 && F.buf ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        rf_block_codec_free(F.codec[i]);
    free(F.ts);
    free(F.ts2);
    free(F.v);
    free(F.v2);
    free(F.buf);
    return 0;
}

static uint64_t dbits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* Encodes F.ts/F.v[0..n) with codec c, checks the bound, the -ENOSPC paths
 * and a bit-exact round trip; returns the encoded size. */
static long roundtrip(rf_block_codec *c, uint8_t vt, uint32_t n)
{
    long len = rf_block_encode(c, vt, F.ts, F.v, n, F.buf, F.cap);
    assert_true(len > 0);
    assert_true((size_t)len <= rf_block_encode_bound(n));

    uint32_t pn = 0;
    uint8_t pvt = 0xff;
    assert_int_equal(rf_block_peek(F.buf, (size_t)len, &pn, &pvt), 0);
    assert_int_equal(pn, n);
    assert_int_equal(pvt, vt);

    memset(F.ts2, 0xa5, n * sizeof *F.ts2);
    memset(F.v2, 0x5a, n * sizeof *F.v2);
    long got = rf_block_decode(c, F.buf, (size_t)len, F.ts2, F.v2, n);
    assert_int_equal(got, n);
    assert_memory_equal(F.ts, F.ts2, n * sizeof *F.ts);
    assert_memory_equal(F.v, F.v2, n * sizeof *F.v);

    if (n > 1)
        assert_int_equal(rf_block_decode(c, F.buf, (size_t)len, F.ts2, F.v2, n - 1), -ENOSPC);
    /* a cap one byte short must fail cleanly, not write past it */
    uint8_t *tight = malloc((size_t)len);
    assert_non_null(tight);
    assert_int_equal(rf_block_encode(c, vt, F.ts, F.v, n, tight, (size_t)len - 1), -ENOSPC);
    assert_int_equal(rf_block_encode(c, vt, F.ts, F.v, n, tight, (size_t)len), len);
    assert_memory_equal(tight, F.buf, (size_t)len);
    free(tight);
    return len;
}

static void regular_ts(uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        F.ts[i] = 1767225600000000000ll + (int64_t)i * 10000000000ll;
}

static void test_edge_doubles(void **state)
{
    (void)state;
    const uint64_t edges[] = {
        0x7ff8000000000000ull, /* quiet NaN */
        0x7ff8000000000001ull, /* quiet NaN with payload */
        0x7ff0000000000001ull, /* signalling NaN */
        0xfff8dead0000beefull, /* negative NaN with payload */
        0x7fffffffffffffffull, /* NaN, all payload bits */
        dbits(INFINITY),
        dbits(-INFINITY),
        dbits(0.0),
        dbits(-0.0),
        0x0000000000000001ull,          /* smallest subnormal */
        0x000fffffffffffffull,          /* largest subnormal */
        0x8000000000000001ull,          /* negative subnormal */
        dbits(2.2250738585072014e-308), /* DBL_MIN */
        dbits(1.7976931348623157e308),  /* DBL_MAX */
        dbits(0.1 + 0.2),
        dbits(1e-10),
        dbits(1e22),
        dbits(9007199254740993.0),
        dbits(21.37),
        dbits(-5.5),
    };
    const uint32_t ne = sizeof edges / sizeof edges[0];
    /* every edge alone, in a run, and mixed into decimal gauges */
    for (uint32_t e = 0; e < ne; e++) {
        for (uint32_t n = 1; n <= 130; n += 43) {
            regular_ts(n);
            for (uint32_t i = 0; i < n; i++)
                F.v[i] = (i % 7 == 3) ? edges[e] : dbits((double)(1000 + i) / 100.0);
            F.v[n - 1] = edges[e];
            for (int c = 0; c < 3; c++)
                roundtrip(F.codec[c], RF_VALUE_F64, n);
            for (uint32_t i = 0; i < n; i++)
                F.v[i] = edges[e];
            roundtrip(F.codec[0], RF_VALUE_F64, n);
        }
    }
    regular_ts(ne * 10);
    for (uint32_t i = 0; i < ne * 10; i++)
        F.v[i] = edges[(i * 7) % ne];
    roundtrip(F.codec[1], RF_VALUE_F64, ne * 10);
}

/* Decimals with nearly full-width integers (9 decimals, |m| up to 2^52): the
 * encoder also tries Gorilla and keeps the smaller. */
static void test_wide_decimals(void **state)
{
    (void)state;
    uint64_t rng = 99;
    for (uint32_t n = 1; n <= 4096; n = n * 4 + 3) {
        regular_ts(n);
        for (uint32_t i = 0; i < n; i++) {
            int64_t m = (int64_t)(rf_gen_next(&rng) >> 12) - (1ll << 51);
            F.v[i] = dbits((double)m / 1e9);
        }
        for (int c = 0; c < 3; c++)
            roundtrip(F.codec[c], RF_VALUE_F64, n);
        /* 9 decimals again, but in tiny steps: the scaled integers win */
        for (uint32_t i = 0; i < n; i++)
            F.v[i] = dbits(1.0 + (double)i * 1e-9);
        roundtrip(F.codec[0], RF_VALUE_F64, n);
    }
    assert_int_equal(rf_block_decode(F.codec[0], F.buf, 8, NULL, F.v2, 1), -EINVAL);
}

static void test_edge_integers(void **state)
{
    (void)state;
    const uint64_t edges[] = {(uint64_t)INT64_MIN,     (uint64_t)INT64_MAX,     UINT64_MAX, 0, 1,
                              (uint64_t)INT64_MIN + 1, (uint64_t)INT64_MAX - 1, 1ull << 63};
    const uint32_t ne = sizeof edges / sizeof edges[0];
    for (uint8_t vt = RF_VALUE_I64; vt <= RF_VALUE_STRING; vt++) {
        for (uint32_t a = 0; a < ne; a++) {
            for (uint32_t b = 0; b < ne; b++) {
                regular_ts(5);
                F.v[0] = edges[a];
                F.v[1] = edges[b];
                F.v[2] = edges[a];
                F.v[3] = edges[b];
                F.v[4] = edges[b];
                roundtrip(F.codec[a % 3], vt, 5);
            }
        }
    }
    /* timestamps at the limits: deltas and deltas of deltas wrap */
    F.ts[0] = INT64_MIN;
    F.ts[1] = INT64_MIN;
    F.ts[2] = 0;
    F.ts[3] = INT64_MAX;
    F.ts[4] = INT64_MAX;
    for (int i = 0; i < 5; i++)
        F.v[i] = (uint64_t)i;
    roundtrip(F.codec[0], RF_VALUE_BOOL, 5);
    F.ts[0] = INT64_MIN;
    F.ts[1] = INT64_MAX;
    roundtrip(F.codec[0], RF_VALUE_U64, 2);
    roundtrip(F.codec[0], RF_VALUE_U64, 1);
    /* bools: alternating, runs, all true */
    for (uint32_t n = 1; n <= 5000; n = n * 3 + 1) {
        regular_ts(n);
        for (uint32_t i = 0; i < n; i++)
            F.v[i] = (i / 17) & 1;
        roundtrip(F.codec[1], RF_VALUE_BOOL, n);
        for (uint32_t i = 0; i < n; i++)
            F.v[i] = i & 1;
        roundtrip(F.codec[0], RF_VALUE_BOOL, n);
        for (uint32_t i = 0; i < n; i++)
            F.v[i] = 1;
        roundtrip(F.codec[0], RF_VALUE_BOOL, n);
    }
}

static void test_decimal_detection(void **state)
{
    (void)state;
    uint64_t in[4], ints[4];
    struct {
        double v[2];
        int d;
    } cases[] = {
        {{0.1, 0.2}, 1},       {{1.5, 2.25}, 2},
        {{21.37, -5.0}, 2},    {{1e-9, 0}, 9},
        {{1e-10, 0}, -1},      {{0.1 + 0.2, 0}, -1},
        {{1.005, 3}, 3},       {{0x1p53, 0}, 0},
        {{0x1p53 + 2, 0}, -1}, {{123456789.123456789, 0}, -1},
        {{0, 0}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        in[0] = dbits(cases[i].v[0]);
        in[1] = dbits(cases[i].v[1]);
        assert_int_equal(rf_decimal_scale(in, 2, ints), cases[i].d);
    }
    in[0] = dbits(-0.0);
    assert_int_equal(rf_decimal_scale(in, 1, ints), -1);
    in[0] = dbits(NAN);
    assert_int_equal(rf_decimal_scale(in, 1, ints), -1);
    in[0] = dbits(INFINITY);
    assert_int_equal(rf_decimal_scale(in, 1, ints), -1);
    in[0] = 1; /* subnormal */
    assert_int_equal(rf_decimal_scale(in, 1, ints), -1);
    /* a late value raising D rescales the earlier ones */
    in[0] = dbits(7.0);
    in[1] = dbits(0.5);
    in[2] = dbits(0.125);
    assert_int_equal(rf_decimal_scale(in, 3, ints), 3);
    assert_int_equal((int64_t)ints[0], 7000);
    assert_int_equal((int64_t)ints[1], 500);
    assert_int_equal((int64_t)ints[2], 125);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    rf_block_codec *c = F.codec[0];
    regular_ts(4);
    memset(F.v, 0, 4 * sizeof *F.v);
    assert_int_equal(rf_block_encode(c, RF_VALUE_F64, F.ts, F.v, 0, F.buf, F.cap), -EINVAL);
    assert_int_equal(rf_block_encode(c, RF_VALUE_F64, F.ts, F.v, MAXP + 1, F.buf, F.cap), -EINVAL);
    assert_int_equal(rf_block_encode(c, 5, F.ts, F.v, 4, F.buf, F.cap), -EINVAL);
    assert_int_equal(rf_block_encode(NULL, RF_VALUE_F64, F.ts, F.v, 4, F.buf, F.cap), -EINVAL);
    F.ts[2] = F.ts[1] - 1;
    assert_int_equal(rf_block_encode(c, RF_VALUE_F64, F.ts, F.v, 4, F.buf, F.cap), -EINVAL);
    assert_null(rf_block_codec_new(-1));
    assert_null(rf_block_codec_new(20));
    assert_int_equal(rf_block_peek(F.buf, 0, NULL, NULL), -EBADMSG);
    assert_int_equal(rf_block_decode(c, F.buf, 0, F.ts2, F.v2, 4), -EBADMSG);
    regular_ts(MAXP);
    for (uint32_t i = 0; i < MAXP; i++)
        F.v[i] = dbits((double)i);
    roundtrip(F.codec[1], RF_VALUE_F64, MAXP);
}

/* Property: every class, timestamp class, size and codec level round-trips. */
static void test_random_roundtrips(void **state)
{
    (void)state;
    uint64_t rng = 0x5eed0001;
    const int iters = getenv("RF_TEST_LONG") ? 20000 : 1500;
    for (int it = 0; it < iters; it++) {
        uint64_t r = rf_gen_next(&rng);
        uint32_t n;
        switch (r % 8) {
        case 0: n = 1 + (uint32_t)(r >> 8) % 3; break;
        case 1: n = MAXP - (uint32_t)(r >> 8) % 2; break;
        case 2:
        case 3: n = 1 + (uint32_t)(r >> 8) % 8192; break;
        default: n = 1 + (uint32_t)(r >> 8) % 300; break;
        }
        if (r % 8 == 1 && it % 16 != 1)
            n = 1 + (uint32_t)(r >> 8) % 2000; /* keep the huge blocks rarer */
        enum rf_gen_value vc = (enum rf_gen_value)((r >> 24) % RF_GEN__VALUE_COUNT);
        enum rf_gen_ts tc = (enum rf_gen_ts)((r >> 32) % RF_GEN__TS_COUNT);
        uint8_t vt = rf_gen_series(r, vc, tc, n, F.ts, F.v);
        /* sometimes reinterpret the words, or sprinkle specials into them */
        if ((r >> 40) % 4 == 0)
            vt = (uint8_t)((r >> 44) % 5);
        if ((r >> 48) % 5 == 0) {
            uint32_t k = 1 + (uint32_t)(r >> 52) % 4;
            for (uint32_t j = 0; j < k; j++) {
                uint64_t q = rf_gen_next(&rng);
                static const uint64_t sp[] = {0x7ff8000000000001ull,
                                              0xfff0000000000000ull,
                                              0x8000000000000000ull,
                                              1,
                                              UINT64_MAX,
                                              (uint64_t)INT64_MIN};
                F.v[q % n] = sp[(q >> 32) % 6];
            }
        }
        roundtrip(F.codec[it % 3], vt, n);
    }
}

/* Truncation at every offset and random bit flips: never a crash or an
 * out-of-bounds read (ASan), truncation always -EBADMSG. */
static void test_corruption(void **state)
{
    (void)state;
    uint64_t rng = 0xbadf00d;
    uint8_t *copy = malloc(F.cap);
    assert_non_null(copy);
    struct {
        enum rf_gen_value vc;
        enum rf_gen_ts tc;
        uint32_t n;
        int level;
    } cases[] = {
        {RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_JITTER_RARE, 300, 0},
        {RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_REGULAR, 300, 1},
        {RF_GEN_COUNTER_SPARSE, RF_GEN_TS_JITTER_ALL, 200, 0},
        {RF_GEN_GAUGE_NEAR_CONST, RF_GEN_TS_REGULAR, 500, 0},
        {RF_GEN_DOUBLE_WALK, RF_GEN_TS_REGULAR, 100, 0},
        {RF_GEN_DOUBLE_RANDOM, RF_GEN_TS_REGULAR, 60, 0},
        {RF_GEN_FLOAT32_SENSOR, RF_GEN_TS_JITTER_RARE, 200, 2},
        {RF_GEN_INT_EDGES, RF_GEN_TS_JITTER_ALL, 150, 0},
        {RF_GEN_COUNTER_STEADY, RF_GEN_TS_REGULAR, 1000, 0},
        {RF_GEN_COUNTER_BUSY, RF_GEN_TS_REGULAR, 1000, 1},
    };
    long flips_ok = 0, flips_bad = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        rf_block_codec *c = F.codec[cases[ci].level];
        uint32_t n = cases[ci].n;
        uint8_t vt = rf_gen_series(ci + 7, cases[ci].vc, cases[ci].tc, n, F.ts, F.v);
        long len = rf_block_encode(c, vt, F.ts, F.v, n, F.buf, F.cap);
        assert_true(len > 0);
        for (long cut = 0; cut < len; cut++) {
            /* an exact-size heap copy so ASan sees any read past the end */
            uint8_t *t = malloc(cut ? (size_t)cut : 1);
            memcpy(t, F.buf, (size_t)cut);
            assert_int_equal(rf_block_decode(c, t, (size_t)cut, F.ts2, F.v2, n), -EBADMSG);
            free(t);
        }
        for (int f = 0; f < 400; f++) {
            memcpy(copy, F.buf, (size_t)len);
            int flips = 1 + (int)(rf_gen_next(&rng) % 3);
            for (int j = 0; j < flips; j++) {
                uint64_t q = rf_gen_next(&rng);
                copy[q % (uint64_t)len] ^= (uint8_t)(1u << ((q >> 32) % 8));
            }
            uint8_t *t = malloc((size_t)len);
            memcpy(t, copy, (size_t)len);
            long got = rf_block_decode(c, t, (size_t)len, F.ts2, F.v2, MAXP);
            free(t);
            assert_true(got == -EBADMSG || (got > 0 && got <= MAXP));
            if (got > 0) {
                flips_ok++;
                for (long i = 1; i < got; i++)
                    assert_true(F.ts2[i] >= F.ts2[i - 1]);
            } else {
                flips_bad++;
            }
        }
    }
    /* Bit flips are the CRC's job; this only records how many the decoder
     * alone catches, for docs/PERFORMANCE.md. */
    printf("bit flips: %ld rejected by the decoder, %ld decoded to other points\n", flips_bad,
           flips_ok);
    free(copy);
}

static double bytes_per_point(rf_block_codec *c, enum rf_gen_value vc, enum rf_gen_ts tc,
                              uint32_t n, int blocks, double *gorilla_values)
{
    long total = 0, gor = 0;
    uint8_t *gbuf = malloc(RF_GORILLA_BOUND(n) + 32);
    for (int b = 0; b < blocks; b++) {
        uint8_t vt = rf_gen_series(1000 + (uint64_t)b, vc, tc, n, F.ts, F.v);
        long len = rf_block_encode(c, vt, F.ts, F.v, n, F.buf, F.cap);
        assert_true(len > 0);
        total += len;
        gor += (rf_gorilla_encode(gbuf, F.v, n) - gbuf) - 4;
    }
    free(gbuf);
    if (gorilla_values)
        *gorilla_values = (double)gor / ((double)n * blocks);
    return (double)total / ((double)n * blocks);
}

/* The goals at 1024 points a block, counting every block byte. */
static void test_size_goals(void **state)
{
    (void)state;
    rf_block_codec *c = F.codec[1];
    double g;
    double walk = bytes_per_point(c, RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_REGULAR, 1024, 16, NULL);
    printf("gauge_2dec_walk: %.3f B/pt\n", walk);
    assert_true(walk <= 1.2);
    static const enum rf_gen_value low[] = {RF_GEN_COUNTER_STEADY, RF_GEN_COUNTER_SPARSE,
                                            RF_GEN_GAUGE_NEAR_CONST};
    for (int i = 0; i < 3; i++) {
        double b = bytes_per_point(c, low[i], RF_GEN_TS_REGULAR, 1024, 16, NULL);
        printf("%s: %.3f B/pt\n", rf_gen_value_name(low[i]), b);
        assert_true(b <= 0.2);
    }
    static const enum rf_gen_value arb[] = {RF_GEN_DOUBLE_RANDOM, RF_GEN_DOUBLE_WALK,
                                            RF_GEN_FLOAT32_SENSOR};
    for (int i = 0; i < 3; i++) {
        double b = bytes_per_point(c, arb[i], RF_GEN_TS_REGULAR, 1024, 16, &g);
        printf("%s: %.3f B/pt (Gorilla XOR values alone: %.3f)\n", rf_gen_value_name(arb[i]), b, g);
        assert_true(b <= g + 0.02); /* our figure includes timestamps and the header */
    }
}

/* Texts come back byte for byte (quotes, backslashes, UTF-8, empty, 64 KiB),
 * repeated ones compress, corrupt lengths are refused, and a block of texts
 * says so while number blocks do not. */
static void test_texts(void **state)
{
    (void)state;
    rf_block_codec *c = rf_block_codec_new(1);
    assert_non_null(c);
    static char big[RF_BLOCK_TEXT_BYTES];
    memset(big, 'b', sizeof(big));
    const rf_block_text t[] = {
        {"say \"hi\"", 8}, {"", 0}, {"caf\xc3\xa9 \xe2\x82\xac", 9}, {"a\\b", 3}, {"x", 1},
    };
    const uint32_t n = sizeof(t) / sizeof(t[0]);
    int64_t ts[8] = {1, 2, 2, 5, 9};
    size_t cap = rf_block_encode_bound_text(n);
    uint8_t *out = malloc(cap);
    long len = rf_block_encode_text(c, ts, t, n, out, cap);
    assert_true(len > 0);
    uint8_t vt;
    uint32_t np;
    assert_int_equal(rf_block_peek(out, (size_t)len, &np, &vt), 0);
    assert_int_equal(vt, RF_VALUE_STRING);
    assert_int_equal(out[0] & 0x0f, 2);
    int64_t dts[8];
    uint64_t bits[8];
    assert_int_equal(rf_block_decode(c, out, (size_t)len, dts, bits, 8), n);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l;
        const char *p = rf_block_text_of(c, bits[i], &l);
        assert_non_null(p);
        assert_int_equal(l, t[i].len);
        assert_memory_equal(p, t[i].p, l);
        assert_int_equal(dts[i], ts[i]);
    }
    /* Every cut of the block is refused. */
    for (long k = 0; k < len; k++)
        assert_true(rf_block_decode(c, out, (size_t)k, dts, bits, 8) < 0);
    /* One text of the whole budget fits; one byte more does not. */
    rf_block_text one = {big, RF_BLOCK_TEXT_BYTES};
    free(out);
    cap = rf_block_encode_bound_text(2);
    out = malloc(cap);
    len = rf_block_encode_text(c, ts, &one, 1, out, cap);
    assert_true(len > 0 && (size_t)len < 1024); /* 64 KiB of one byte: zstd */
    assert_int_equal(rf_block_decode(c, out, (size_t)len, dts, bits, 8), 1);
    uint32_t l;
    assert_non_null(rf_block_text_of(c, bits[0], &l));
    assert_int_equal(l, RF_BLOCK_TEXT_BYTES);
    rf_block_text two[2] = {{big, RF_BLOCK_TEXT_BYTES}, {"x", 1}};
    assert_int_equal(rf_block_encode_text(c, ts, two, 2, out, cap), -EINVAL);
    /* Numbers and version 1 string blocks (hashes) have no texts. */
    uint64_t v[2] = {7, 8};
    len = rf_block_encode(c, RF_VALUE_STRING, ts, v, 2, out, cap);
    assert_int_equal(out[0] & 0x0f, 1);
    assert_int_equal(rf_block_decode(c, out, (size_t)len, dts, bits, 8), 2);
    assert_null(rf_block_text_of(c, bits[0], &l));
    assert_int_equal(bits[1], 8);
    /* A version 2 header on a number block is refused. */
    len = rf_block_encode(c, RF_VALUE_F64, ts, v, 2, out, cap);
    out[0] = (uint8_t)((out[0] & 0xf0) | 2);
    assert_int_equal(rf_block_decode(c, out, (size_t)len, dts, bits, 8), -EBADMSG);
    free(out);
    rf_block_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_doubles),  cmocka_unit_test(test_wide_decimals),
        cmocka_unit_test(test_edge_integers), cmocka_unit_test(test_decimal_detection),
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_random_roundtrips),
        cmocka_unit_test(test_corruption),    cmocka_unit_test(test_size_goals),
        cmocka_unit_test(test_texts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
