/* DDSketch relative-error bound on adversarial distributions (heavy tails,
 * bimodal, constants, huge dynamic range, negatives and zero), merging,
 * bounded collapsing; HyperLogLog accuracy. References are computed here by
 * sorting the same seeded data. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stages/sketch/sketch.h"
#include "stage_test_util.h"

static uint64_t rng = 0x1234567;

static uint64_t next_u64(void)
{
    return stage_test_splitmix64(&rng);
}

static double uni(void) /* (0,1) */
{
    return stage_test_uniform(&rng);
}

static double normal(void)
{
    return sqrt(-2 * log(uni())) * cos(2 * M_PI * uni());
}

static rf_ddsketch *sk_new(uint32_t bins)
{
    rf_ddsketch *s = malloc(rf_ddsketch_size(bins));
    assert_int_equal(rf_ddsketch_init(s, 0.01, bins), 0);
    return s;
}

static const double qs[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};
#define NQ (sizeof(qs) / sizeof(qs[0]))

/* Asserts the alpha bound for every q in qs[] from index q_from. */
static void check_bound(const char *what, rf_ddsketch *s, double *v, size_t n, size_t q_from)
{
    qsort(v, n, sizeof(double), stage_test_cmp_double);
    for (size_t i = q_from; i < NQ; i++) {
        double rank = floor(qs[i] * (double)n + 0.5); /* nearest rank, 1-based */
        double ref = v[rank < 1 ? 0 : rank > (double)n ? n - 1 : (size_t)rank - 1];
        double got = rf_ddsketch_quantile(s, qs[i]);
        double tol = s->alpha * fabs(ref) * (1 + 1e-9) + 1e-300;
        if (!(fabs(got - ref) <= tol))
            fail_msg("%s: q=%g ref=%.17g got=%.17g rel=%.3g", what, qs[i], ref, got,
                     fabs(got - ref) / fabs(ref));
    }
}

typedef double (*gen_fn)(void);

static double g_pareto(void)
{
    return 1.0 / pow(uni(), 1 / 1.1);
}
static double g_lognormal(void)
{
    return exp(3 * normal());
}
static double g_bimodal(void)
{
    return uni() < 0.7 ? 10 + normal() : 1e4 + 100 * normal();
}
static double g_const(void)
{
    return 42.0;
}
static double g_zero(void)
{
    return 0.0;
}
static double g_range(void)
{
    return pow(10, 200 * uni() - 100);
}
static double g_mixed_sign(void)
{
    double u = uni();
    if (u < 0.2)
        return 0.0;
    if (u < 0.6)
        return -exp(2 * normal());
    return exp(2 * normal());
}
static double g_negative(void)
{
    return -1.0 / pow(uni(), 1 / 1.5);
}
static double g_tiny(void)
{
    return 1e-300 * (1 + uni());
}
static double g_uniform_int(void)
{
    return (double)(next_u64() % 1000);
}

static void run_dist(const char *name, gen_fn g, size_t n, uint32_t bins)
{
    double *v = malloc(n * sizeof(double));
    rf_ddsketch *s = sk_new(bins);
    for (size_t i = 0; i < n; i++) {
        v[i] = g();
        assert_int_equal(rf_ddsketch_add(s, v[i]), 0);
    }
    assert_int_equal(s->count, n);
    assert_int_equal(s->collapsed, 0);
    check_bound(name, s, v, n, 0);
    free(v);
    free(s);
}

static void test_distributions(void **state)
{
    (void)state;
    run_dist("pareto", g_pareto, 200000, 2048);
    run_dist("lognormal", g_lognormal, 200000, 2048);
    run_dist("bimodal", g_bimodal, 200000, 1024);
    run_dist("constant", g_const, 1000, 16);
    run_dist("zero", g_zero, 1000, 16);
    run_dist("range 1e-100..1e100", g_range, 200000, 32768);
    run_dist("mixed sign + zeros", g_mixed_sign, 200000, 2048);
    run_dist("negative heavy tail", g_negative, 200000, 2048);
    run_dist("tiny", g_tiny, 10000, 64);
    run_dist("integers 0..999", g_uniform_int, 100000, 1024);
    run_dist("single", g_const, 1, 16);
}

static void test_mapping(void **state)
{
    (void)state;
    rf_ddsketch *s = sk_new(64);
    /* Every bucket's reported value is within alpha of both of its edges,
     * and keys are monotone in the value. */
    int32_t prev = INT32_MIN;
    for (double x = 1e-12; x < 1e12; x *= 1.0007) {
        int32_t k = rf_ddsketch_key(s, x);
        assert_true(k >= prev);
        prev = k;
        double r = rf_ddsketch_key_value(s, k);
        assert_true(fabs(r - x) <= 0.01 * x * (1 + 1e-9));
    }
    assert_true(isnan(rf_ddsketch_quantile(s, 0.5)));
    assert_int_equal(rf_ddsketch_add(s, NAN), -EINVAL);
    assert_int_equal(rf_ddsketch_add(s, INFINITY), -EINVAL);
    assert_int_equal(s->count, 0);
    assert_int_equal(rf_ddsketch_init(s, 0.7, 64), -EINVAL);
    assert_int_equal(rf_ddsketch_init(s, 0.01, 8), -EINVAL);
    free(s);
}

static void test_merge(void **state)
{
    (void)state;
    enum {
        N = 100000
    };
    double *v = malloc(N * sizeof(double));
    rf_ddsketch *a = sk_new(2048), *b = sk_new(2048), *all = sk_new(2048);
    for (size_t i = 0; i < N; i++) {
        v[i] = g_mixed_sign() * (i % 2 ? 1000 : 1);
        rf_ddsketch_add(i % 3 ? a : b, v[i]);
        rf_ddsketch_add(all, v[i]);
    }
    assert_int_equal(rf_ddsketch_merge(a, b), 0);
    assert_int_equal(a->count, N);
    for (size_t i = 0; i < NQ; i++)
        assert_true(rf_ddsketch_quantile(a, qs[i]) == rf_ddsketch_quantile(all, qs[i]));
    check_bound("merged", a, v, N, 0);
    rf_ddsketch *c = malloc(rf_ddsketch_size(64));
    rf_ddsketch_init(c, 0.02, 64);
    assert_int_equal(rf_ddsketch_merge(a, c), -EINVAL);
    free(c);
    free(v);
    free(a);
    free(b);
    free(all);
}

static void test_collapse(void **state)
{
    (void)state;
    /* 64 buckets span a factor 2^(64/35) ~ 3.5; values span 1..1e6, so the
     * low end collapses but quantiles within the top factor 3.5 keep the
     * bound. */
    enum {
        N = 100000
    };
    double *v = malloc(N * sizeof(double));
    rf_ddsketch *s = sk_new(64);
    for (size_t i = 0; i < N; i++) {
        v[i] = pow(10, 6 * uni());
        rf_ddsketch_add(s, v[i]);
    }
    assert_true(s->collapsed > 0);
    assert_true(s->n[0] <= 64);
    check_bound("collapsed (q >= 0.95)", s, v, N, 8);
    assert_true(rf_ddsketch_quantile(s, 0.01) <= rf_ddsketch_quantile(s, 0.95));
    /* weighted adds and reset */
    rf_ddsketch_reset(s);
    rf_ddsketch_add_n(s, 5, 99);
    rf_ddsketch_add_n(s, 10, 1); /* within the 64-bucket span: no collapse */
    assert_int_equal(s->count, 100);
    assert_int_equal(s->collapsed, 0);
    assert_true(fabs(rf_ddsketch_quantile(s, 0.98) - 5) <= 0.05);
    assert_true(fabs(rf_ddsketch_quantile(s, 1) - 10) <= 0.1);
    /* negative store collapses its most negative values */
    rf_ddsketch_reset(s);
    for (size_t i = 0; i < N; i++) {
        v[i] = -pow(10, 6 * uni());
        rf_ddsketch_add(s, v[i]);
    }
    assert_true(s->n[1] <= 64);
    check_bound("negative collapsed (q >= 0.95)", s, v, N, 8);
    free(v);
    free(s);
}

static void test_hll(void **state)
{
    (void)state;
    static const uint32_t ns[] = {1, 2, 5, 10, 50, 100, 1000, 3000, 10000, 100000, 1000000};
    rf_hll h;
    rf_hll_reset(&h);
    assert_true(rf_hll_estimate(&h) == 0);
    for (size_t t = 0; t < sizeof(ns) / sizeof(ns[0]); t++) {
        rf_hll_reset(&h);
        uint64_t base = next_u64();
        for (uint32_t i = 0; i < ns[t]; i++) {
            rf_hll_add(&h, base + i); /* consecutive members: a weak "hash" */
            rf_hll_add(&h, base + i); /* duplicates do not count */
        }
        double est = rf_hll_estimate(&h);
        double n = ns[t];
        /* 3 standard errors for large n (3 x 3.25%); linear counting below */
        double tol = n <= 100 ? fmax(1.0, 0.03 * n) : n <= 3000 ? 0.05 * n : 0.0975 * n;
        if (fabs(est - n) > tol)
            fail_msg("hll n=%g est=%g", n, est);
    }
    /* merge is the union */
    rf_hll a, b;
    rf_hll_reset(&a);
    rf_hll_reset(&b);
    for (uint64_t i = 0; i < 20000; i++) {
        rf_hll_add(&a, i);
        rf_hll_add(&b, i + 10000);
    }
    rf_hll_merge(&a, &b);
    assert_true(fabs(rf_hll_estimate(&a) - 30000) < 0.0975 * 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapping), cmocka_unit_test(test_distributions),
        cmocka_unit_test(test_merge),   cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_hll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
