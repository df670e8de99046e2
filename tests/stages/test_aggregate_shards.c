/* Two-level aggregation between shards (stages/aggregate/README.md): the
 * partials' wire form, N aggregators joined by an in-process mesh against one
 * aggregator seeing every series, late partials under both lateness
 * policies, the owner's bounded wait, and reload handovers (the merged
 * windows move to the new aggregator; partials for a rule it lacks are
 * counted and dropped). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stages/aggregate/aggregate.h"
#include "stages/aggregate/partial.h"
#include "stage_test_util.h"

#define S 1000000000LL
#define T0 (1699999200LL * S) /* a multiple of every window used here */
#define MAXN 4

/* ---- harness ------------------------------------------------------------- */

typedef struct cap {
    rf_event *ev;
    size_t n, cap;
} cap;

static void on_emit(void *ctx, const rf_event *e, uint32_t n)
{
    cap *c = ctx;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->ev = realloc(c->ev, c->cap * sizeof(rf_event));
    }
    memcpy(c->ev + c->n, e, n * sizeof(rf_event));
    c->n += n;
}

static void cap_free(cap *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == RF_KIND_SERIES_DEF)
            rf_series_key_free((rf_series_key *)(uintptr_t)c->ev[i].aux);
    free(c->ev);
    memset(c, 0, sizeof(*c));
}

/* An in-process mesh of n aggregators, each with its own series table: a
 * FIFO queue per destination, delivered after each call as the pipeline
 * does. A shard marked down loses what is sent to it (and never reports). */
typedef struct mesh {
    uint32_t n;
    rf_series_table *t[MAXN];
    rf_aggregator *a[MAXN];
    cap out[MAXN];
    struct {
        rf_event *ev;
        size_t n, cap;
    } q[MAXN];
    bool down[MAXN];
    int64_t now;
} mesh;

static void mesh_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    mesh *m = ctx;
    assert_true(to < m->n);
    for (uint32_t i = 0; i < n; i++) {
        if (m->down[to]) {
            if (ev[i].flags & RF_EVF_OWNS_AUX)
                free((void *)(uintptr_t)ev[i].aux);
            continue;
        }
        if (m->q[to].n == m->q[to].cap) {
            m->q[to].cap = m->q[to].cap ? 2 * m->q[to].cap : 64;
            m->q[to].ev = realloc(m->q[to].ev, m->q[to].cap * sizeof(rf_event));
        }
        m->q[to].ev[m->q[to].n++] = ev[i];
    }
}

static void mesh_deliver(mesh *m)
{
    for (bool any = true; any;) {
        any = false;
        for (uint32_t s = 0; s < m->n; s++) {
            for (size_t i = 0; i < m->q[s].n; i++) {
                rf_event e = m->q[s].ev[i];
                rf_aggregator_receive(m->a[s], &e, m->now);
                if (e.flags & RF_EVF_OWNS_AUX)
                    free((void *)(uintptr_t)e.aux);
                any = true;
            }
            m->q[s].n = 0;
        }
    }
}

static void mesh_init(mesh *m, uint32_t n, const rf_agg_config *cfg)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    for (uint32_t s = 0; s < n; s++) {
        rf_err err;
        m->t[s] = rf_series_table_new(256);
        m->a[s] = rf_aggregator_new(cfg, m->t[s], (rf_emitter){on_emit, &m->out[s]}, &err);
        if (!m->a[s])
            fail_msg("aggregator: %s", err.msg);
        if (n > 1)
            assert_int_equal(rf_aggregator_set_peers(m->a[s], s, n, mesh_send, m), 0);
    }
}

static void mesh_free(mesh *m)
{
    for (uint32_t s = 0; s < m->n; s++) {
        rf_aggregator_free(m->a[s]);
        rf_series_table_free(m->t[s]);
        cap_free(&m->out[s]);
        free(m->q[s].ev);
    }
}

/* The shard a series belongs to, its definition there. */
static uint64_t mesh_def(mesh *m, const char *text)
{
    rf_series_key *k = stage_test_key(text);
    uint64_t id = k->series_id;
    assert_true(rf_series_table_define(m->t[rf_event_owner(id, m->n)], k) >= 0);
    return id;
}

static void mesh_push(mesh *m, uint64_t id, int64_t t, double v)
{
    m->now = 1000 * S + (t - T0); /* monotonic time goes with the stream */
    rf_event e;
    memset(&e, 0, sizeof(e));
    e.series_id = id;
    e.event_time_ns = t;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    e.kind = RF_KIND_GAUGE;
    e.sample_rate = 1.0f;
    rf_aggregator_process(m->a[rf_event_owner(id, m->n)], &e, 1);
    mesh_deliver(m);
}

static void mesh_tick(mesh *m, int64_t now)
{
    m->now = now;
    for (uint32_t s = 0; s < m->n; s++)
        if (!m->down[s])
            rf_aggregator_tick(m->a[s], now);
    mesh_deliver(m);
}

/* The stop: every shard closes, the mesh goes quiet, every shard drains. */
static void mesh_stop(mesh *m)
{
    for (uint32_t s = 0; s < m->n; s++)
        if (!m->down[s])
            rf_aggregator_close(m->a[s]);
    mesh_deliver(m);
    for (uint32_t s = 0; s < m->n; s++)
        if (!m->down[s])
            rf_aggregator_flush(m->a[s]);
    mesh_deliver(m);
}

/* The aggregate (text, window) across every shard's output: exactly one. */
static const rf_event *mesh_find(const mesh *m, const char *text, int64_t ws, int *count)
{
    uint64_t id = rf_series_id_of_key(text, strlen(text));
    const rf_event *found = NULL;
    *count = 0;
    for (uint32_t s = 0; s < m->n; s++)
        for (size_t i = 0; i < m->out[s].n; i++) {
            const rf_event *e = &m->out[s].ev[i];
            if (e->kind == RF_KIND_AGGREGATE && e->series_id == id && e->event_time_ns == ws) {
                found = e;
                (*count)++;
            }
        }
    return found;
}

static double mesh_val(const mesh *m, const char *text, int64_t ws)
{
    int n;
    const rf_event *e = mesh_find(m, text, ws, &n);
    if (n != 1)
        fail_msg("%s at %+lld s: %d results, want 1", text, (long long)((ws - T0) / S), n);
    return e->value.f64;
}

static rf_agg_rule rule(const char *m, const char *f, int64_t window, const char *const *fns,
                        const char *group_by)
{
    rf_agg_rule r;
    memset(&r, 0, sizeof(r));
    snprintf(r.measurement, sizeof(r.measurement), "%s", m);
    snprintf(r.field, sizeof(r.field), "%s", f);
    r.window_ns = window;
    for (; *fns; fns++)
        assert_int_equal(rf_agg_func_parse(*fns, &r.funcs[r.n_funcs++]), 0);
    if (group_by) {
        snprintf(r.group_by[0], sizeof(r.group_by[0]), "%s", group_by);
        r.n_group_by = 1;
    }
    return r;
}

static uint64_t rng = 7;

/* ---- the wire form --------------------------------------------------------- */

static void test_partial_wire(void **state)
{
    (void)state;
    rf_agg_partial p = {.kind = RF_KIND_TIMER,
                        .flags = RF_AGG_PF_LATE,
                        .rule = 3,
                        .sender = 1,
                        .rule_sig = 0x1122334455667788ull,
                        .group_id = 0x0102030405060708ull,
                        .start = T0,
                        .window_ns = 10 * S};
    rf_agg_acc_reset(&p.acc);
    const char *text = "lat,svc=api ms";
    p.text = text;
    p.text_len = (uint16_t)strlen(text);
    p.measurement_len = 3;
    p.field_offset = 12;
    rf_ddsketch *sk = malloc(rf_ddsketch_size(512));
    rf_ddsketch_init(sk, 0.01, 512);
    for (int i = 0; i < 100; i++) {
        double x = 0.5 + 1000 * stage_test_uniform(&rng) - (i % 10 == 0 ? 2000 : 0);
        rf_agg_acc_add(&p.acc, x, x, 1, 0, T0 + i);
        rf_ddsketch_add(sk, x);
    }
    size_t len;
    uint8_t *b = rf_agg_partial_encode(&p, sk, NULL, &len);
    assert_non_null(b);
    assert_int_equal(len, rf_agg_partial_size(&p, sk, NULL));
    /* The layout of README.md: version, kind, flags; little-endian length,
     * group id at 32, window start at 40, the text at 184. */
    assert_int_equal(b[0], 1);
    assert_int_equal(b[1], RF_KIND_TIMER);
    assert_int_equal(b[2], RF_AGG_PF_LATE | RF_AGG_PF_SKETCH);
    assert_int_equal(b[4] | b[5] << 8 | b[6] << 16 | (uint32_t)b[7] << 24, len);
    assert_int_equal(b[32], 0x08);
    assert_int_equal(b[39], 0x01);
    assert_memory_equal(b + 184, text, strlen(text));
    rf_agg_partial d;
    assert_int_equal(rf_agg_partial_decode(b, len, &d), 0);
    assert_int_equal(d.group_id, p.group_id);
    assert_int_equal(d.rule_sig, p.rule_sig);
    assert_int_equal(d.start, T0);
    assert_int_equal(d.acc.n, 100);
    assert_memory_equal(&d.acc, &p.acc, sizeof(p.acc));
    assert_memory_equal(d.text, text, strlen(text));
    rf_ddsketch *back = malloc(rf_ddsketch_size(512));
    assert_int_equal(rf_agg_partial_sketch(&d, back, 512), 0);
    for (double q = 0; q <= 1; q += 0.125)
        assert_true(rf_ddsketch_quantile(back, q) == rf_ddsketch_quantile(sk, q));
    /* Damaged blocks are refused, not read past their end. */
    assert_int_equal(rf_agg_partial_decode(b, len - 1, &d), -EINVAL);
    b[0] = 2;
    assert_int_equal(rf_agg_partial_decode(b, len, &d), -EINVAL);
    b[0] = 1;
    b[10] = 0xff; /* text longer than the block */
    assert_int_equal(rf_agg_partial_decode(b, len, &d), -EINVAL);
    free(b);
    /* An HLL travels whole. */
    rf_hll h;
    rf_hll_reset(&h);
    for (uint64_t i = 0; i < 500; i++)
        rf_hll_add(&h, i * 0x9E3779B97F4A7C15ull);
    p.flags = 0;
    b = rf_agg_partial_encode(&p, NULL, &h, &len);
    assert_int_equal(rf_agg_partial_decode(b, len, &d), 0);
    assert_non_null(d.hll);
    assert_memory_equal(d.hll, h.reg, RF_HLL_REGISTERS);
    free(b);
    free(sk);
    free(back);
}

/* Merging accumulators: any split of the values, any order of merging, gives
 * the same sum, mean and deviation as adding them all to one. */
static void test_acc_split_invariance(void **state)
{
    (void)state;
    enum {
        N = 3000
    };
    static double x[N];
    for (int i = 0; i < N; i++)
        x[i] = 1e6 + (stage_test_uniform(&rng) - 0.5) * 1000.0 / 3.0; /* offset, thirds */
    rf_agg_acc one;
    rf_agg_acc_reset(&one);
    for (int i = 0; i < N; i++)
        rf_agg_acc_add(&one, x[i], x[i], 1, 0, T0 + i);
    for (int parts = 2; parts <= 7; parts++) {
        rf_agg_acc p[7];
        for (int k = 0; k < parts; k++)
            rf_agg_acc_reset(&p[k]);
        for (int i = 0; i < N; i++) {
            int k = (int)(stage_test_uniform(&rng) * parts) % parts;
            rf_agg_acc_add(&p[k], x[i], x[i], 1, 0, T0 + i);
        }
        rf_agg_acc m;
        rf_agg_acc_reset(&m);
        for (int k = parts; k-- > 0;) /* another order than the adds */
            rf_agg_acc_merge(&m, &p[k]);
        assert_int_equal(m.n, N);
        assert_true(rf_agg_dd_value(m.sum) == rf_agg_dd_value(one.sum));
        assert_true(rf_agg_acc_mean(&m) == rf_agg_acc_mean(&one));
        assert_true(rf_agg_acc_stddev(&m) == rf_agg_acc_stddev(&one));
        assert_true(m.first == one.first && m.last == one.last);
        assert_true(m.min == one.min && m.max == one.max);
    }
    /* And the values are right: the deviation against a two-pass one in
     * long double (the one-pass formula in doubles loses it all here). */
    long double mean = 0, var = 0;
    for (int i = 0; i < N; i++)
        mean += x[i];
    mean /= N;
    for (int i = 0; i < N; i++)
        var += (x[i] - mean) * (x[i] - mean);
    double sd = (double)sqrtl(var / N);
    assert_true(fabs(rf_agg_acc_stddev(&one) - sd) <= 1e-12 * sd);
    assert_true(fabs(rf_agg_acc_mean(&one) - (double)mean) <= 1e-15 * (double)mean);
}

/* ---- shards against one ------------------------------------------------------ */

static void run_stream(mesh *m, uint32_t shards, const rf_agg_config *cfg)
{
    mesh_init(m, shards, cfg);
    uint64_t ids[30];
    for (int h = 0; h < 30; h++) {
        char key[64];
        snprintf(key, sizeof(key), "cpu,host=h%02d,region=r%d usage", h, h % 3);
        ids[h] = mesh_def(m, key);
    }
    uint64_t r = 99; /* the same values whatever the shard count */
    for (int step = 0; step < 500; step++) {
        int h = step % 30;
        int64_t t = T0 + (int64_t)step * (S / 10); /* 5 windows of 10 s */
        mesh_push(m, ids[h], t, 40 + 20 * stage_test_uniform(&r) + 1.0 / 3.0);
        if (step % 50 == 0)
            mesh_tick(m, 1000 * S + (int64_t)step * (S / 10));
    }
}

static void test_shards_equal_one(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", "sum",  "min", "max", "avg", "stddev",
                                      "first", "last", "p50", "p99", NULL};
    rf_agg_rule rules[2] = {rule("cpu", "usage", 10 * S, fns, "region"),
                            rule("cpu", "usage", 10 * S, (const char *const[]){"avg", NULL}, NULL)};
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg);
    cfg.rules = rules;
    cfg.n_rules = 2;
    /* Lateness: a state moving to its next window parks the previous one
     * (with its accumulators) while events of the new one arrive. */
    cfg.allowed_lateness_ns = S / 2;
    mesh one, many;
    run_stream(&one, 1, &cfg);
    mesh_stop(&one);
    /* The reference is right: 100 events per window, every third host in a
     * region (regression: the first event of a window once went into the
     * parked one's sums). */
    for (int w = 0; w < 5; w++)
        for (int reg = 0; reg < 3; reg++) {
            char text[64];
            snprintf(text, sizeof(text), "cpu,region=r%d usage:count", reg);
            int want = 0;
            for (int step = w * 100; step < w * 100 + 100; step++)
                want += (step % 30) % 3 == reg;
            assert_true(mesh_val(&one, text, T0 + w * 10 * S) == want);
        }
    for (uint32_t n = 2; n <= 4; n++) {
        run_stream(&many, n, &cfg);
        /* The first four windows closed during the stream, not at the stop. */
        int before = 0;
        for (uint32_t s = 0; s < n; s++)
            for (size_t i = 0; i < many.out[s].n; i++)
                before += many.out[s].ev[i].kind == RF_KIND_AGGREGATE;
        assert_true(before >= 4 * 3 * 10);
        mesh_stop(&many);
        for (int w = 0; w < 5; w++)
            for (int reg = 0; reg < 3; reg++)
                for (int f = 0; fns[f]; f++) {
                    char text[64];
                    snprintf(text, sizeof(text), "cpu,region=r%d usage:%s", reg, fns[f]);
                    double a = mesh_val(&one, text, T0 + w * 10 * S);
                    double b = mesh_val(&many, text, T0 + w * 10 * S);
                    if (fns[f][0] == 'p' ? fabs(a - b) > 0.02 * fabs(a) : a != b) {
                        for (uint32_t s = 0; s < n; s++) {
                            rf_agg_stats st;
                            rf_aggregator_stats_read(many.a[s], &st);
                            fprintf(stderr,
                                    "shard %u: sent %lu recv %lu late %lu forced %lu rep %lu/%lu\n",
                                    s, (unsigned long)st.partials_sent,
                                    (unsigned long)st.partials_received,
                                    (unsigned long)st.partials_late, (unsigned long)st.owner_forced,
                                    (unsigned long)st.reports_sent,
                                    (unsigned long)st.reports_received);
                        }
                        fail_msg("%u shards, window %d, %s: %.17g, one shard %.17g", n, w, text, b,
                                 a);
                    }
                }
        for (int h = 0; h < 30; h++) {
            char text[64];
            snprintf(text, sizeof(text), "cpu,host=h%02d,region=r%d usage:avg", h, h % 3);
            assert_true(mesh_val(&one, text, T0) == mesh_val(&many, text, T0));
        }
        rf_agg_stats st;
        rf_aggregator_stats_read(many.a[0], &st);
        assert_true(st.partials_sent > 0);
        assert_int_equal(st.partials_late, 0);
        assert_int_equal(st.owner_forced, 0);
        /* One report per window boundary (or idle/busy turn) per peer: a few
         * per window, never per event. */
        assert_true(st.reports_sent <= 4 * 6 * n);
        mesh_free(&many);
    }
    mesh_free(&one);
}

/* ---- late partials ------------------------------------------------------------- */

/* A series text of measurement m, tag host=<i>, on shard `want` of n. */
static void key_on(char *buf, size_t size, uint32_t want, uint32_t n, const char *group)
{
    for (int i = 0;; i++) {
        snprintf(buf, size, "cpu,host=x%d,region=%s usage", i, group);
        if (rf_event_owner(rf_series_id_of_key(buf, strlen(buf)), n) == want)
            return;
    }
}

static void late_case(uint8_t policy)
{
    static const char *const fns[] = {"count", "sum", NULL};
    rf_agg_rule rules[1] = {rule("cpu", "usage", 10 * S, fns, "region")};
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg);
    cfg.rules = rules;
    cfg.n_rules = 1;
    cfg.late_policy = policy;
    mesh m;
    mesh_init(&m, 2, &cfg);
    char ka[64], kb[64];
    key_on(ka, sizeof(ka), 0, 2, "eu");
    key_on(kb, sizeof(kb), 1, 2, "eu");
    uint64_t a = mesh_def(&m, ka), b = mesh_def(&m, kb);
    mesh_tick(&m, 1 * S); /* both report: shard 1 has nothing open */
    mesh_push(&m, a, T0 + 1 * S, 1);
    mesh_push(&m, a, T0 + 12 * S, 2); /* closes window 0 on shard 0: complete */
    assert_true(mesh_val(&m, "cpu,region=eu usage:sum", T0) == 1);
    /* Shard 1 (its watermark far behind) takes an event of window 0 and
     * closes it: its partial reaches the owner after the window came out. */
    mesh_push(&m, b, T0 + 3 * S, 10);
    mesh_push(&m, b, T0 + 14 * S, 20);
    mesh_push(&m, a, T0 + 25 * S, 3); /* closes window 1 */
    mesh_push(&m, b, T0 + 26 * S, 30);
    mesh_stop(&m);
    uint64_t late = 0;
    for (uint32_t s = 0; s < 2; s++) {
        rf_agg_stats st;
        rf_aggregator_stats_read(m.a[s], &st);
        late += st.partials_late;
    }
    assert_int_equal(late, 1);
    assert_true(mesh_val(&m, "cpu,region=eu usage:sum", T0) == 1); /* once, unchanged */
    int n;
    const rf_event *w1 = mesh_find(&m, "cpu,region=eu usage:sum", T0 + 10 * S, &n);
    assert_int_equal(n, 1);
    if (policy == RF_AGG_LATE_DROP) {
        assert_true(w1->value.f64 == 2 + 20);
        assert_int_equal(w1->flags & RF_EVF_LATE, 0);
    } else {
        assert_true(w1->value.f64 == 2 + 20 + 10); /* into the earliest open window */
        assert_int_equal(w1->flags & RF_EVF_LATE, RF_EVF_LATE);
    }
    mesh_free(&m);
}

static void test_late_partial(void **state)
{
    (void)state;
    late_case(RF_AGG_LATE_DROP);
    late_case(RF_AGG_LATE_CURRENT);
}

/* ---- the bounded wait -------------------------------------------------------------- */

static void test_bounded_wait(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", NULL};
    rf_agg_rule rules[1] = {rule("cpu", "usage", 10 * S, fns, "region")};
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg); /* lateness 0, idle grace 1 s: a wait of 1.3 s */
    cfg.rules = rules;
    cfg.n_rules = 1;
    mesh m;
    mesh_init(&m, 2, &cfg);
    char group[16], k[64];
    for (int g = 0;; g++) { /* a group shard 0 owns */
        snprintf(group, sizeof(group), "g%d", g);
        snprintf(k, sizeof(k), "cpu,region=%s usage", group);
        if (rf_event_owner(rf_series_id_of_key(k, strlen(k)), 2) == 0)
            break;
    }
    char ka[64];
    key_on(ka, sizeof(ka), 0, 2, group);
    uint64_t a = mesh_def(&m, ka);
    m.down[1] = true; /* shard 1 never reports */
    mesh_push(&m, a, T0 + 1 * S, 1);
    mesh_push(&m, a, T0 + 11 * S, 1); /* the partial arrives at 1011 s */
    char text[64];
    snprintf(text, sizeof(text), "cpu,region=%s usage:count", group);
    int n;
    mesh_find(&m, text, T0, &n);
    assert_int_equal(n, 0); /* waiting for shard 1 */
    mesh_tick(&m, 1011 * S + 1299 * (S / 1000));
    mesh_find(&m, text, T0, &n);
    assert_int_equal(n, 0);
    mesh_tick(&m, 1011 * S + 1300 * (S / 1000));
    assert_true(mesh_val(&m, text, T0) == 1);
    rf_agg_stats st;
    rf_aggregator_stats_read(m.a[0], &st);
    assert_int_equal(st.owner_forced, 1);
    mesh_free(&m);
}

/* ---- reload ----------------------------------------------------------------------- */

static void test_handover(void **state)
{
    (void)state;
    static const char *const fns[] = {"sum", NULL};
    rf_agg_rule rules[2] = {rule("cpu", "usage", 10 * S, fns, "region"),
                            rule("mem", "used", 10 * S, fns, NULL)};
    rf_agg_config cfg;
    rf_agg_config_defaults(&cfg);
    cfg.rules = rules;
    cfg.n_rules = 1;
    mesh m;
    mesh_init(&m, 2, &cfg);
    char group[16], k[64];
    for (int g = 0;; g++) { /* a group shard 0 owns */
        snprintf(group, sizeof(group), "g%d", g);
        snprintf(k, sizeof(k), "cpu,region=%s usage", group);
        if (rf_event_owner(rf_series_id_of_key(k, strlen(k)), 2) == 0)
            break;
    }
    char ka[64], kb[64], text[64];
    key_on(ka, sizeof(ka), 0, 2, group);
    key_on(kb, sizeof(kb), 1, 2, group);
    snprintf(text, sizeof(text), "cpu,region=%s usage:sum", group);
    uint64_t a = mesh_def(&m, ka), b = mesh_def(&m, kb);
    mesh_push(&m, a, T0 + 1 * S, 1);
    mesh_push(&m, a, T0 + 11 * S, 2); /* window 0's partial at shard 0, waiting for shard 1 */
    mesh_push(&m, b, T0 + 2 * S, 10);

    /* Shard 0 reloads, the rule kept and one added: the merged window moves,
     * the open one goes out as a partial, and the result is still one row. */
    cfg.n_rules = 2;
    rf_err err;
    rf_aggregator *next = rf_aggregator_new(&cfg, m.t[0], (rf_emitter){on_emit, &m.out[0]}, &err);
    assert_non_null(next);
    assert_int_equal(rf_aggregator_set_peers(next, 0, 2, mesh_send, &m), 0);
    rf_aggregator_handover(m.a[0], next);
    rf_aggregator_free(m.a[0]);
    m.a[0] = next;
    mesh_deliver(&m);
    mesh_push(&m, a, T0 + 13 * S, 4);
    mesh_push(&m, b, T0 + 12 * S, 20); /* shard 1 closes window 0 */
    assert_true(mesh_val(&m, text, T0) == 11);

    /* Shard 0 reloads again without the rule: what it merged comes out now,
     * and shard 1's partials for that rule are counted, not merged. */
    cfg.rules = rules + 1;
    cfg.n_rules = 1;
    next = rf_aggregator_new(&cfg, m.t[0], (rf_emitter){on_emit, &m.out[0]}, &err);
    assert_non_null(next);
    assert_int_equal(rf_aggregator_set_peers(next, 0, 2, mesh_send, &m), 0);
    rf_aggregator_handover(m.a[0], next);
    rf_aggregator_free(m.a[0]);
    m.a[0] = next;
    mesh_deliver(&m);
    assert_true(mesh_val(&m, text, T0 + 10 * S) == 2 + 4); /* shard 0's part of window 1 */
    mesh_stop(&m);
    rf_agg_stats st;
    rf_aggregator_stats_read(m.a[0], &st);
    assert_int_equal(st.partials_no_rule, 1); /* shard 1's window 1 */
    mesh_free(&m);
}

/* ---- between hosts -------------------------------------------------------------- */

/* An edge's partial lines, as the pipeline would hand them to its sink. */
typedef struct lines {
    char *text[64];
    size_t len[64];
    uint32_t n;
} lines;

static bool on_partial(void *ctx, uint32_t rule, uint64_t gid, int64_t start, const uint8_t *b,
                       size_t len)
{
    (void)rule;
    lines *l = ctx;
    assert_true(l->n < 64);
    size_t cap = rf_agg_partial_line_size(len);
    char *t = malloc(cap);
    l->len[l->n] = rf_agg_partial_line(gid, start, b, len, t, cap);
    assert_true(l->len[l->n] > 0 && t[l->len[l->n] - 1] == '\n');
    l->text[l->n++] = t;
    return true;
}

static void receive_line(rf_aggregator *a, const char *line, size_t len, int64_t now)
{
    uint8_t block[65536];
    long n = rf_agg_partial_line_parse(line, len, block, sizeof(block));
    assert_true(n > 0);
    assert_int_equal(rf_aggregator_receive_remote(a, block, (size_t)n, now), 0);
}

/* Two edges (one aggregator each, partials_to set) send their group
 * windows as lines; a third aggregator merges them: the same sums, counts,
 * extremes and quantiles as one aggregator fed everything. A malformed
 * line is refused and counted, a partial after its window was emitted is
 * late, and a window with one edge of two in is emitted by remote_wait. */
static void test_between_hosts(void **state)
{
    (void)state;
    static const char *const fns[] = {"count", "sum", "min", "max", "avg", "p50", "p99", NULL};
    rf_agg_rule edge_rule = rule("cpu", "usage", 10 * S, fns, "region");
    rf_agg_rule agg_rule = edge_rule;
    snprintf(edge_rule.partials_to, sizeof(edge_rule.partials_to), "bus");
    assert_true(rf_agg_rule_sig(&edge_rule) == rf_agg_rule_sig(&agg_rule));
    rf_agg_config ecfg, acfg;
    rf_agg_config_defaults(&ecfg);
    ecfg.rules = &edge_rule;
    ecfg.n_rules = 1;
    rf_agg_config_defaults(&acfg);
    acfg.rules = &agg_rule;
    acfg.n_rules = 1;
    acfg.remote_edges = 2;
    acfg.remote_wait_ns = 5 * S;
    mesh edge[2], ref, agg;
    lines out[2];
    memset(out, 0, sizeof(out));
    for (int e = 0; e < 2; e++) {
        ecfg.edge_id = (uint32_t)e;
        mesh_init(&edge[e], 1, &ecfg);
        rf_aggregator_set_partial_out(edge[e].a[0], on_partial, &out[e]);
    }
    mesh_init(&ref, 1, &acfg);
    mesh_init(&agg, 1, &acfg);
    uint64_t id_e[4], id_r[4];
    for (int h = 0; h < 4; h++) {
        char k[64];
        snprintf(k, sizeof(k), "cpu,host=h%d,region=r%d usage", h, h % 2);
        id_e[h] = mesh_def(&edge[h / 2], k);
        id_r[h] = mesh_def(&ref, k);
    }
    for (int i = 0; i < 400; i++) { /* two windows, hosts 0-1 on edge 0, 2-3 on edge 1 */
        int h = i % 4;
        double v = 1e6 + 1000 * stage_test_uniform(&rng);
        int64_t t = T0 + (int64_t)i * (S / 20);
        mesh_push(&edge[h / 2], id_e[h], t, v);
        mesh_push(&ref, id_r[h], t, v);
    }
    mesh_stop(&edge[0]);
    mesh_stop(&edge[1]);
    mesh_stop(&ref);
    assert_int_equal(out[0].n, 4); /* 2 regions x 2 windows each, no aggregates */
    assert_int_equal(out[1].n, 4);
    assert_int_equal(edge[0].out[0].n, 0);
    /* Not a partial: refused, counted, nothing merged. */
    uint8_t block[256];
    assert_int_equal(rf_agg_partial_line_parse("cpu v=1 1\n", 10, block, sizeof(block)), -EINVAL);
    char bad[128];
    snprintf(bad, sizeof(bad), "%.*s", 60, out[0].text[0]);
    long n = rf_agg_partial_line_parse(bad, strlen(bad), block, sizeof(block));
    assert_true(n > 0);
    assert_int_equal(rf_aggregator_receive_remote(agg.a[0], block, (size_t)n, 1), -EINVAL);
    /* Edge 1 first, then edge 0, except edge 0's last line, which waits. */
    for (uint32_t i = 0; i < out[1].n; i++)
        receive_line(agg.a[0], out[1].text[i], out[1].len[i], 2000 * S);
    for (uint32_t i = 0; i + 1 < out[0].n; i++)
        receive_line(agg.a[0], out[0].text[i], out[0].len[i], 2000 * S);
    rf_agg_stats st;
    rf_aggregator_stats_read(agg.a[0], &st);
    assert_int_equal(st.remote_complete, 3);
    assert_int_equal(st.remote_bad, 1);
    static const char *const names[] = {"count", "sum", "min", "max", "avg", "p50", "p99"};
    int compared = 0;
    for (int w = 0; w < 2; w++)
        for (int r = 0; r < 2; r++)
            for (int f = 0; f < 7; f++) {
                char text[64];
                snprintf(text, sizeof(text), "cpu,region=r%d usage:%s", r, names[f]);
                int cnt;
                const rf_event *e = mesh_find(&agg, text, T0 + w * 10 * S, &cnt);
                if (!cnt)
                    continue; /* the window still waiting */
                assert_int_equal(cnt, 1);
                assert_true(e->value.f64 == mesh_val(&ref, text, T0 + w * 10 * S));
                compared++;
            }
    assert_int_equal(compared, 3 * 7);
    /* The fourth window: out by the wait, with edge 1's part only. */
    mesh_tick(&agg, 2005 * S - 1);
    rf_aggregator_stats_read(agg.a[0], &st);
    assert_int_equal(st.remote_timed_out, 0);
    mesh_tick(&agg, 2005 * S);
    rf_aggregator_stats_read(agg.a[0], &st);
    assert_int_equal(st.remote_timed_out, 1);
    /* Edge 0's part now: that window was emitted, so it is late. */
    receive_line(agg.a[0], out[0].text[3], out[0].len[3], 2006 * S);
    rf_aggregator_stats_read(agg.a[0], &st);
    assert_int_equal(st.remote_late, 1);
    assert_int_equal(st.remote_in, 7);
    for (int e = 0; e < 2; e++) {
        for (uint32_t i = 0; i < out[e].n; i++)
            free(out[e].text[i]);
        mesh_free(&edge[e]);
    }
    mesh_free(&ref);
    mesh_free(&agg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_wire),     cmocka_unit_test(test_acc_split_invariance),
        cmocka_unit_test(test_shards_equal_one), cmocka_unit_test(test_late_partial),
        cmocka_unit_test(test_bounded_wait),     cmocka_unit_test(test_handover),
        cmocka_unit_test(test_between_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
