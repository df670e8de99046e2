/* Query results against a reference computed here from the generated
 * points: raw selections, tag matchers (=, !=, =~, !~, missing tags, escaped
 * values), time ranges, aggregations with steps and group-by, and output
 * formats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <regex.h>

#include "storage/query/query.h"
#include "storage/segment/segment.h"
#include "tests/storage/store_test_util.h"

#define T0 1700000000000000000LL
#define SEC 1000000000LL
#define NP 700

typedef struct gseries {
    const char *meas, *dc, *host_key, *host, *field; /* host_key: escaped form in the key */
    uint8_t vt;
    int start; /* first point index */
    rf_series_key *key;
} gseries;

static gseries G[] = {
    {"cpu", "eu", "h0", "h0", "usage", RF_VALUE_F64, 0, NULL},
    {"cpu", "eu", "h1", "h1", "usage", RF_VALUE_F64, 50, NULL},
    {"cpu", "eu", "h2", "h2", "usage", RF_VALUE_F64, 0, NULL},
    {"cpu", "us", "h3", "h3", "usage", RF_VALUE_F64, 0, NULL},
    {"cpu", "us", "h4", "h4", "usage", RF_VALUE_F64, 300, NULL},
    {"cpu", "us", "h5", "h5", "usage", RF_VALUE_F64, 0, NULL},
    {"cpu", "eu", "h0", "h0", "idle", RF_VALUE_I64, 0, NULL},
    {"cpu", "us", "h3", "h3", "idle", RF_VALUE_I64, 0, NULL},
    {"cpu", "us", "h4", "h4", "idle", RF_VALUE_I64, 0, NULL},
    {"cpu", "us", "x\\,y", "x,y", "usage", RF_VALUE_F64, 0, NULL},
    {"mem", "eu", "h0", "h0", "used", RF_VALUE_U64, 0, NULL},
    {"log", "eu", "h0", "h0", "msg", RF_VALUE_STRING, 0, NULL},
};
#define NG (sizeof(G) / sizeof(G[0]))

static int64_t gt(size_t s, int i)
{
    return T0 + (int64_t)i * 10 * SEC + (int64_t)s * 1000;
}

static uint64_t gv(size_t s, int i)
{
    if (G[s].vt == RF_VALUE_F64) {
        /* a 2-decimal random walk, deterministic per series */
        uint64_t x = 0x9E3779B97F4A7C15ull * (s + 1);
        double v = 50;
        for (int k = 0; k <= i; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            v += (double)((int)(x % 201) - 100) / 100.0;
        }
        return tu_f64(round(v * 100) / 100);
    }
    if (G[s].vt == RF_VALUE_I64)
        return (uint64_t)(int64_t)(i * 3 - 500 + (int)s);
    return (uint64_t)i * 4096 + s;
}

static double gd(size_t s, int i)
{
    rf_event ev = {.value = {.u64 = gv(s, i)}, .value_type = G[s].vt};
    return rf_event_value_as_f64(&ev);
}

static char *g_dir;

static int setup(void **state)
{
    (void)state;
    g_dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.segment_max_bytes = 16384; /* several closed segments plus open ones */
    rf_store *st;
    rf_err e;
    if (rf_store_open(g_dir, &cfg, 2, &st, &e))
        return -1;
    for (size_t s = 0; s < NG; s++) {
        char tags[64];
        snprintf(tags, sizeof(tags), "dc=%s,host=%s", G[s].dc, G[s].host_key);
        G[s].key = tu_key(G[s].meas, tags, G[s].field);
        rf_store_define_series(rf_store_shard_get(st, rf_event_owner(G[s].key->series_id, 2)),
                               G[s].key);
    }
    for (int i = 0; i < NP; i++)
        for (size_t s = 0; s < NG; s++) {
            if (i < G[s].start)
                continue;
            rf_event ev = tu_event(G[s].key->series_id, gt(s, i), G[s].vt, gv(s, i));
            tu_append(rf_store_shard_get(st, rf_event_owner(G[s].key->series_id, 2)), &ev);
        }
    /* flushed but left open: the query reads closed and open segments */
    for (uint32_t k = 0; k < 2; k++)
        if (tu_flush_durable(rf_store_shard_get(st, k), 10 * SEC) != 0)
            return -1;
    *(rf_store **)state = st;
    return 0;
}

static int teardown(void **state)
{
    rf_err e;
    rf_store_close(*(rf_store **)state, &e);
    for (size_t s = 0; s < NG; s++)
        rf_series_key_free(G[s].key);
    tu_rmrf(g_dir);
    free(g_dir);
    return 0;
}

/* ---- reference ---- */

static bool ref_match(size_t s, const rf_query *q)
{
    if (strcmp(G[s].meas, q->measurement) || (q->field && strcmp(G[s].field, q->field)))
        return false;
    for (uint32_t m = 0; m < q->n_matchers; m++) {
        const rf_query_matcher *mt = &q->matchers[m];
        const char *v = strcmp(mt->tag, "dc") == 0     ? G[s].dc
                        : strcmp(mt->tag, "host") == 0 ? G[s].host
                                                       : "";
        bool ok;
        if (mt->op == RF_MATCH_EQ || mt->op == RF_MATCH_NE) {
            ok = strcmp(v, mt->value) == 0;
        } else {
            regex_t re;
            char pat[256];
            snprintf(pat, sizeof(pat), "^(%s)$", mt->value);
            regcomp(&re, pat, REG_EXTENDED | REG_NOSUB);
            ok = regexec(&re, v, 0, NULL, 0) == 0;
            regfree(&re);
        }
        if (mt->op == RF_MATCH_NE || mt->op == RF_MATCH_NRE)
            ok = !ok;
        if (!ok)
            return false;
    }
    return true;
}

static const rf_query_set *find_set(const rf_query_result *r, size_t s)
{
    for (size_t k = 0; k < r->n_sets; k++) {
        const rf_query_set *set = &r->sets[k];
        if (strcmp(set->measurement, G[s].meas) || strcmp(set->field, G[s].field))
            continue;
        bool host_ok = false;
        for (uint32_t t = 0; t < set->n_tags; t++)
            host_ok |=
                strcmp(set->tags[t].key, "host") == 0 && strcmp(set->tags[t].value, G[s].host) == 0;
        if (host_ok)
            return set;
    }
    return NULL;
}

static void check_raw(const rf_query *q)
{
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(g_dir, q, &r, &e), 0);
    size_t want_sets = 0;
    for (size_t s = 0; s < NG; s++) {
        if (!ref_match(s, q))
            continue;
        size_t n = 0;
        for (int i = G[s].start; i < NP; i++)
            n += gt(s, i) >= q->start_ns && gt(s, i) < q->end_ns;
        if (!n)
            continue;
        want_sets++;
        const rf_query_set *set = find_set(r, s);
        assert_non_null(set);
        assert_int_equal(set->n, n);
        assert_int_equal(set->value_type, G[s].vt);
        size_t j = 0;
        for (int i = G[s].start; i < NP; i++) {
            if (gt(s, i) < q->start_ns || gt(s, i) >= q->end_ns)
                continue;
            assert_int_equal(set->ts[j], gt(s, i));
            assert_int_equal(set->bits[j], gv(s, i));
            j++;
        }
    }
    assert_int_equal(r->n_sets, want_sets);
    /* sorted by series key */
    for (size_t k = 1; k < r->n_sets; k++)
        assert_true(strcmp(r->sets[k - 1].measurement, r->sets[k].measurement) <= 0);
    rf_query_result_free(r);
}

static void test_raw_selections(void **state)
{
    (void)state;
    rf_query_matcher m1[] = {{"host", RF_MATCH_EQ, "h1"}};
    rf_query q = {.measurement = "cpu",
                  .field = "usage",
                  .matchers = m1,
                  .n_matchers = 1,
                  .start_ns = INT64_MIN,
                  .end_ns = INT64_MAX};
    check_raw(&q);
    rf_query_matcher m2[] = {{"dc", RF_MATCH_NE, "eu"}, {"host", RF_MATCH_RE, "h[34]"}};
    q = (rf_query){.measurement = "cpu",
                   .matchers = m2,
                   .n_matchers = 2,
                   .start_ns = INT64_MIN,
                   .end_ns = INT64_MAX};
    check_raw(&q);
    q.start_ns = T0 + 1000 * SEC;
    q.end_ns = T0 + 4000 * SEC;
    check_raw(&q);
    rf_query_matcher m3[] = {{"host", RF_MATCH_NRE, "h[0-4]"}};
    q = (rf_query){.measurement = "cpu",
                   .matchers = m3,
                   .n_matchers = 1,
                   .start_ns = INT64_MIN,
                   .end_ns = INT64_MAX};
    check_raw(&q);
    rf_query_matcher m4[] = {{"host", RF_MATCH_EQ, "x,y"}}; /* escaped in the key */
    q.matchers = m4;
    check_raw(&q);
    rf_query_matcher m5[] = {{"rack", RF_MATCH_EQ, ""}}; /* no series has the tag */
    q.matchers = m5;
    check_raw(&q);
    rf_query_matcher m6[] = {{"rack", RF_MATCH_NE, ""}};
    q.matchers = m6;
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 0);
    rf_query_result_free(r);
    q = (rf_query){.measurement = "mem", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    check_raw(&q);
    q.measurement = "nope";
    check_raw(&q);
}

/* A folder that only looks like a shard (an operator's copy, say) is not
 * one: the store never opens it, so a query must not read it either, or
 * every point in it would be counted twice. */
static void test_shard_folders_as_the_store_names_them(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cp -r '%s/shard-00' '%s/shard-00.bak' && cp -r '%s/shard-01' '%s/shard-+1' && "
             "cp -r '%s/shard-01' '%s/shard-1x'",
             g_dir, g_dir, g_dir, g_dir, g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    rf_query q = {.measurement = "cpu", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    check_raw(&q);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s/shard-00.bak' '%s/shard-+1' '%s/shard-1x'", g_dir, g_dir,
             g_dir);
    assert_int_equal(system(cmd), 0);

    uint32_t k;
    assert_true(rf_seg_shard_dir_parse("shard-00", &k) && k == 0);
    assert_true(rf_seg_shard_dir_parse("shard-7", &k) && k == 7);
    assert_true(rf_seg_shard_dir_parse("shard-123", &k) && k == 123);
    assert_false(rf_seg_shard_dir_parse("shard-", &k));
    assert_false(rf_seg_shard_dir_parse("shard-+1", &k));
    assert_false(rf_seg_shard_dir_parse("shard- 1", &k));
    assert_false(rf_seg_shard_dir_parse("shard-00.bak", &k));
    assert_false(rf_seg_shard_dir_parse("shard-99999999999", &k));
}

/* Step buckets over the whole int64 range: a bucket that would start
 * before INT64_MIN starts at INT64_MIN, none wraps round (a point at
 * INT64_MIN came out in a bucket of the year 2262), and a query from a
 * bounded start reaches INT64_MAX without overflowing. */
static void test_step_buckets_at_the_ends_of_time(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_series_key *key = tu_key("edge", "h=a", "v");
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_store_define_series(sh, key);
    const int64_t min = 60 * SEC;
    const int64_t ts[] = {INT64_MIN, INT64_MIN + 1, INT64_MIN + min, -1, 0, INT64_MAX - 1};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        rf_event ev = tu_event(key->series_id, ts[i], RF_VALUE_I64, (uint64_t)i);
        tu_append(sh, &ev);
    }
    assert_int_equal(tu_flush_durable(sh, 10 * SEC), 0);
    assert_int_equal(rf_store_close(st, &e), 0);

    const rf_query_agg count[] = {{RF_AGG_COUNT, 0}};
    rf_query q = {.measurement = "edge",
                  .start_ns = INT64_MIN,
                  .end_ns = INT64_MAX,
                  .aggs = count,
                  .n_aggs = 1,
                  .step_ns = min};
    rf_query_result *r;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    const rf_query_set *set = &r->sets[0];
    /* Origin 0: floor(t / 1m) * 1m, the first clamped to INT64_MIN. */
    const int64_t want_ts[] = {INT64_MIN, INT64_MIN / min * min, -min, 0, INT64_MAX / min * min};
    const double want_n[] = {2, 1, 1, 1, 1};
    assert_int_equal(set->n, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(set->ts[i], want_ts[i]);
        assert_true(set->values[i] == want_n[i]);
    }
    rf_query_result_free(r);

    /* A bounded start is the origin: INT64_MAX - 1 is ~2^63 steps away. */
    q.start_ns = -7 * SEC;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    set = &r->sets[0];
    assert_int_equal(set->n, 2);
    assert_int_equal(set->ts[0], -7 * SEC);
    assert_true(set->values[0] == 2);
    int64_t last = (int64_t)(-7 * SEC + ((__int128)INT64_MAX - 1 + 7 * SEC) / min * min);
    assert_int_equal(set->ts[1], last);
    assert_true(set->values[1] == 1);
    rf_query_result_free(r);
    rf_series_key_free(key);
    tu_rmrf(dir);
    free(dir);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double ref_quantile(const double *v, size_t n, double q)
{
    double *c = malloc(n * sizeof(*c));
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_d);
    /* Nearest rank, 1-based round(q * n) clamped to [1, n]: StatsD's. */
    double rank = floor(q * (double)n + 0.5);
    size_t k = rank < 1 ? 0 : rank > (double)n ? n - 1 : (size_t)rank - 1;
    double r = c[k];
    free(c);
    return r;
}

static void check_close(double got, double want)
{
    if (fabs(got - want) > 1e-9 * (fabs(want) + 1))
        fail_msg("got %.17g want %.17g", got, want);
}

/* Aggregates by dc (or nothing) with a step, against a brute-force reference. */
static void check_agg(const rf_query *q, bool by_dc)
{
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(g_dir, q, &r, &e), 0);
    const char *groups[] = {"eu", "us"};
    size_t want_sets = 0;
    for (int g = 0; g < (by_dc ? 2 : 1); g++) {
        /* points of the group, in time order (times are unique by construction) */
        size_t cap = NG * NP, n = 0;
        int64_t *ts = malloc(cap * sizeof(*ts));
        double *vs = malloc(cap * sizeof(*vs));
        for (int i = 0; i < NP; i++)
            for (size_t s = 0; s < NG; s++) {
                if (i < G[s].start || !ref_match(s, q) || (by_dc && strcmp(G[s].dc, groups[g])))
                    continue;
                int64_t t = gt(s, i);
                if (t < q->start_ns || t >= q->end_ns)
                    continue;
                ts[n] = t;
                vs[n++] = gd(s, i);
            }
        if (!n) {
            free(ts);
            free(vs);
            continue;
        }
        want_sets++;
        const rf_query_set *set = NULL;
        for (size_t k = 0; k < r->n_sets; k++)
            if (!by_dc || strcmp(r->sets[k].tags[0].value, groups[g]) == 0)
                set = &r->sets[k];
        assert_non_null(set);
        if (by_dc) {
            assert_int_equal(set->n_tags, 1);
            assert_string_equal(set->tags[0].key, "dc");
        }
        size_t row = 0;
        for (size_t i = 0; i < n;) {
            int64_t b = q->step_ns ? q->start_ns + (ts[i] - q->start_ns) / q->step_ns * q->step_ns
                                   : (q->start_ns == INT64_MIN ? ts[0] : q->start_ns);
            size_t j = i;
            while (j < n &&
                   (q->step_ns ? q->start_ns + (ts[j] - q->start_ns) / q->step_ns * q->step_ns == b
                               : true))
                j++;
            assert_true(row < set->n);
            assert_int_equal(set->ts[row], b);
            double sum = 0, mn = INFINITY, mx = -INFINITY;
            for (size_t k = i; k < j; k++) {
                sum += vs[k];
                mn = fmin(mn, vs[k]);
                mx = fmax(mx, vs[k]);
            }
            const double *got = &set->values[row * q->n_aggs];
            for (uint32_t a = 0; a < q->n_aggs; a++) {
                switch (q->aggs[a].fn) {
                case RF_AGG_COUNT: assert_true(got[a] == (double)(j - i)); break;
                case RF_AGG_SUM: check_close(got[a], sum); break;
                case RF_AGG_MIN: assert_true(got[a] == mn); break;
                case RF_AGG_MAX: assert_true(got[a] == mx); break;
                case RF_AGG_AVG: check_close(got[a], sum / (double)(j - i)); break;
                case RF_AGG_LAST: assert_true(got[a] == vs[j - 1]); break;
                case RF_AGG_QUANTILE:
                    check_close(got[a], ref_quantile(vs + i, j - i, q->aggs[a].q));
                    break;
                }
            }
            row++;
            i = j;
        }
        assert_int_equal(set->n, row);
        free(ts);
        free(vs);
    }
    assert_int_equal(r->n_sets, want_sets);
    rf_query_result_free(r);
}

static void test_aggregations(void **state)
{
    (void)state;
    rf_query_agg aggs[14];
    const char *names[] = {"count",         "sum", "min", "max", "avg", "last",  "p50",
                           "quantile(0.9)", "p0",  "p1",  "p25", "p75", "p99.9", "p100"};
    for (int a = 0; a < 14; a++)
        assert_int_equal(rf_query_agg_parse(names[a], &aggs[a]), 0);
    const char *by[] = {"dc"};
    rf_query q = {.measurement = "cpu",
                  .field = "usage",
                  .start_ns = T0 + 100 * SEC,
                  .end_ns = T0 + 5000 * SEC,
                  .aggs = aggs,
                  .n_aggs = 14,
                  .step_ns = 600 * SEC,
                  .group_by = by,
                  .n_group_by = 1};
    check_agg(&q, true);
    /* one bucket over the range, no grouping, with a matcher */
    rf_query_matcher m[] = {{"host", RF_MATCH_RE, "h[0-3]"}};
    q = (rf_query){.measurement = "cpu",
                   .field = "usage",
                   .matchers = m,
                   .n_matchers = 1,
                   .start_ns = T0,
                   .end_ns = T0 + 7000 * SEC,
                   .aggs = aggs,
                   .n_aggs = 14};
    check_agg(&q, false);
    /* integers read as doubles, unbounded range, step */
    q = (rf_query){.measurement = "cpu",
                   .field = "idle",
                   .start_ns = T0 - 10 * SEC,
                   .end_ns = INT64_MAX,
                   .aggs = aggs,
                   .n_aggs = 14,
                   .step_ns = 1000 * SEC,
                   .group_by = by,
                   .n_group_by = 1};
    check_agg(&q, true);
    rf_query_agg bad;
    assert_int_equal(rf_query_agg_parse("p101", &bad), -EINVAL);
    assert_int_equal(rf_query_agg_parse("median", &bad), -EINVAL);
    char name[32];
    rf_query_agg_name(&aggs[7], name, sizeof(name));
    assert_string_equal(name, "p90");
}

static void test_errors_and_parsers(void **state)
{
    (void)state;
    rf_query_matcher m[] = {{"host", RF_MATCH_RE, "(unclosed"}};
    rf_query q = {.measurement = "cpu",
                  .matchers = m,
                  .n_matchers = 1,
                  .start_ns = INT64_MIN,
                  .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), -EINVAL);
    assert_non_null(strstr(e.msg, "regular expression"));
    q.n_matchers = 0;
    q.start_ns = 5;
    q.end_ns = 5;
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), -EINVAL);
    char t1[] = "host=~h.*", t2[] = "dc!=eu", t3[] = "x!~a|b", t4[] = "k=v=w", t5[] = "novalue";
    rf_query_matcher pm;
    assert_int_equal(rf_query_matcher_parse(t1, &pm), 0);
    assert_int_equal(pm.op, RF_MATCH_RE);
    assert_string_equal(pm.tag, "host");
    assert_string_equal(pm.value, "h.*");
    assert_int_equal(rf_query_matcher_parse(t2, &pm), 0);
    assert_int_equal(pm.op, RF_MATCH_NE);
    assert_string_equal(pm.value, "eu");
    assert_int_equal(rf_query_matcher_parse(t3, &pm), 0);
    assert_int_equal(pm.op, RF_MATCH_NRE);
    assert_int_equal(rf_query_matcher_parse(t4, &pm), 0);
    assert_string_equal(pm.value, "v=w");
    assert_int_equal(rf_query_matcher_parse(t5, &pm), -EINVAL);
    assert_int_equal(rf_query_format_parse("json"), RF_QUERY_JSON);
    assert_int_equal(rf_query_format_parse("xml"), -1);

    /* Times: what the table output prints reads back, offsets move the
     * instant, relative and raw forms stay. 1764583200 = 2025-12-01T10:00:00Z. */
    const int64_t now = 1764583200LL * 1000000000LL;
    int64_t t;
    assert_int_equal(rf_query_time_parse("2025-12-01T10:00:00Z", 0, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(rf_query_time_parse("2025-12-01T10:00:00.123456789Z", 0, &t), 0);
    assert_int_equal(t, now + 123456789);
    assert_int_equal(rf_query_time_parse("2025-12-01T10:00:00.5Z", 0, &t), 0);
    assert_int_equal(t, now + 500000000);
    assert_int_equal(rf_query_time_parse("2025-12-01 12:00:00+02:00", 0, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(rf_query_time_parse("2025-12-01T05:30-04:30", 0, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(rf_query_time_parse("2025-12-01", 0, &t), 0);
    assert_int_equal(t, now - 10LL * 3600 * 1000000000LL);
    assert_int_equal(rf_query_time_parse("1969-12-31T23:59:59Z", 0, &t), 0);
    assert_int_equal(t, -1000000000LL);
    assert_int_equal(rf_query_time_parse("now", now, &t), 0);
    assert_int_equal(t, now);
    assert_int_equal(rf_query_time_parse("now-15m", now, &t), 0);
    assert_int_equal(t, now - 15LL * 60 * 1000000000LL);
    assert_int_equal(rf_query_time_parse("1700000000000000000", now, &t), 0);
    assert_int_equal(t, 1700000000000000000LL);
    const char *bad[] = {"2025-13-01",
                         "2025-02-30T00:00:00Z",
                         "2025-12-01T24:00:00Z",
                         "2025-12-01T10:00:00.Z",
                         "2025-12-01T10:00:00Q",
                         "2025-12-01T10",
                         "2025-12-01T10:00:00+2:00",
                         "now+5m",
                         "now-",
                         "12abc",
                         ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rf_query_time_parse(bad[i], now, &t) != -EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
}

static char *render(const rf_query_result *r, enum rf_query_format f)
{
    char *buf;
    size_t len;
    FILE *m = open_memstream(&buf, &len);
    assert_int_equal(rf_query_write(m, r, f), 0);
    fclose(m);
    return buf;
}

static void test_output_formats(void **state)
{
    (void)state;
    rf_query_matcher m[] = {{"host", RF_MATCH_EQ, "x,y"}};
    rf_query q = {.measurement = "cpu",
                  .field = "usage",
                  .matchers = m,
                  .n_matchers = 1,
                  .start_ns = gt(9, 0),
                  .end_ns = gt(9, 2)};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    assert_int_equal(r->sets[0].n, 2);
    char v0[32], v1[32];
    double d0 = gd(9, 0), d1 = gd(9, 1);
    snprintf(v0, sizeof(v0), "%.15g", d0);
    snprintf(v1, sizeof(v1), "%.15g", d1);
    char want[1024];
    char *csv = render(r, RF_QUERY_CSV);
    snprintf(want, sizeof(want),
             "time_ns,measurement,field,tags,value\n%lld,cpu,usage,\"dc=us;host=x,y\",%s\n%lld,cpu,"
             "usage,\"dc=us;host=x,y\",%s\n",
             (long long)gt(9, 0), v0, (long long)gt(9, 1), v1);
    assert_string_equal(csv, want);
    char *lp = render(r, RF_QUERY_LINE);
    snprintf(want, sizeof(want),
             "cpu,dc=us,host=x\\,y usage=%s %lld\ncpu,dc=us,host=x\\,y usage=%s %lld\n", v0,
             (long long)gt(9, 0), v1, (long long)gt(9, 1));
    assert_string_equal(lp, want);
    char *js = render(r, RF_QUERY_JSON);
    snprintf(want, sizeof(want),
             "{\"series\":[{\"measurement\":\"cpu\",\"field\":\"usage\",\"tags\":{\"dc\":\"us\","
             "\"host\":\"x,y\"},"
             "\"columns\":[\"time\",\"value\"],\"values\":[[%lld,%s],[%lld,%s]]}]}\n",
             (long long)gt(9, 0), v0, (long long)gt(9, 1), v1);
    assert_string_equal(js, want);
    char *tb = render(r, RF_QUERY_TABLE);
    assert_non_null(strstr(tb, "2023-11-14T22:13:20.000009000Z"));
    assert_non_null(strstr(tb, "cpu,dc=us,host=x,y usage"));
    free(csv);
    free(lp);
    free(js);
    free(tb);
    rf_query_result_free(r);
    /* aggregated line protocol names fields <field>_<agg> */
    rf_query_agg aggs[2] = {{RF_AGG_COUNT, 0}, {RF_AGG_QUANTILE, 0.99}};
    const char *by[] = {"dc"};
    q = (rf_query){.measurement = "mem",
                   .start_ns = T0,
                   .end_ns = T0 + 20 * SEC,
                   .aggs = aggs,
                   .n_aggs = 2,
                   .step_ns = 0,
                   .group_by = by,
                   .n_group_by = 1};
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), 0);
    lp = render(r, RF_QUERY_LINE);
    snprintf(want, sizeof(want), "mem,dc=eu used_count=2,used_p99=%.15g %lld\n",
             fmax(gd(10, 0), gd(10, 1)) /* nearest rank round(0.99 * 2) = 2 */, (long long)T0);
    assert_string_equal(lp, want);
    free(lp);
    rf_query_result_free(r);
}

/* An aggregate over a string field is refused by name; its points are not. */
static void test_string_agg_refused(void **state)
{
    (void)state;
    rf_query_agg a = {.fn = RF_AGG_COUNT};
    rf_query q = {
        .measurement = "log", .start_ns = INT64_MIN, .end_ns = INT64_MAX, .aggs = &a, .n_aggs = 1};
    rf_query_result *r = NULL;
    rf_err e;
    rf_err_clear(&e);
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), -EINVAL);
    assert_null(r);
    assert_non_null(strstr(e.msg, "log field msg holds strings"));
    q.n_aggs = 0;
    assert_int_equal(rf_query_run(g_dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    assert_int_equal(r->sets[0].value_type, RF_VALUE_STRING);
    rf_query_result_free(r);
}

typedef struct seen_types {
    int calls[sizeof(G) / sizeof(G[0])];
    int wrong;
} seen_types;

static void on_type(void *ctx, uint64_t id, uint8_t vt)
{
    seen_types *st = ctx;
    for (size_t s = 0; s < NG; s++)
        if (G[s].key->series_id == id) {
            st->calls[s]++;
            st->wrong += vt != G[s].vt;
            return;
        }
    st->wrong++;
}

/* What the engine seeds field types with: every stored series, its type. */
static void test_series_types(void **state)
{
    (void)state;
    seen_types st = {{0}, 0};
    rf_err e;
    assert_int_equal(rf_query_series_types(g_dir, on_type, &st, &e), 0);
    assert_int_equal(st.wrong, 0);
    for (size_t s = 0; s < NG; s++)
        assert_true(st.calls[s] >= 1);
    assert_true(rf_query_series_types("/nonexistent/rf", on_type, &st, &e) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_selections),
        cmocka_unit_test(test_shard_folders_as_the_store_names_them),
        cmocka_unit_test(test_step_buckets_at_the_ends_of_time),
        cmocka_unit_test(test_aggregations),
        cmocka_unit_test(test_errors_and_parsers),
        cmocka_unit_test(test_output_formats),
        cmocka_unit_test(test_string_agg_refused),
        cmocka_unit_test(test_series_types),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
