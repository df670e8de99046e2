/* Correlation: id groups closed by TTL (monotonic), by member count and by
 * capacity eviction, with counters; sequence and burst patterns; member
 * lookup; configuration errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock/clock.h"
#include "stages/correlate/correlate.h"
#include "stage_test_util.h"

#define S RF_NS_PER_S

static stage_events got; /* what the stage under test emitted */

static rf_correlator *mk(const rf_correlator_config *cfg)
{
    rf_correlator *c = NULL;
    rf_err err;
    if (rf_correlator_new(cfg, 64, (rf_emitter){stage_events_collect, &got}, &c, &err) != 0)
        fail_msg("correlator: %s", err.msg);
    got.n = 0;
    return c;
}

static rf_event ev_at(uint64_t series, uint64_t cid, int64_t event_t, int64_t recv_t)
{
    rf_event e = {0};
    e.series_id = series;
    e.correlation_id = cid;
    e.event_time_ns = event_t;
    e.recv_time_ns = recv_t;
    return e;
}

static void feed(rf_correlator *c, rf_event e, int32_t slot)
{
    rf_correlator_process(c, &e, &slot, 1);
}

static void test_id_ttl_monotonic(void **state)
{
    (void)state;
    rf_correlator_config cfg = {.id_capacity = 100, .id_ttl_ns = 10 * S};
    rf_correlator *c = mk(&cfg);
    int64_t m0 = 5000 * S;
    /* Event (wall) times jump around, even backwards by a day: TTL ignores them. */
    feed(c, ev_at(11, 1, 1000 * S, m0), -1);
    feed(c, ev_at(12, 1, 1000 * S - 86400 * S, m0 + 1 * S), -1);
    feed(c, ev_at(11, 1, 1003 * S, m0 + 2 * S), -1);
    feed(c, ev_at(13, 2, 1000 * S, m0 + 5 * S), -1);
    rf_correlator_tick(c, m0 + 9 * S);
    assert_int_equal(got.n, 0);
    rf_correlator_tick(c, m0 + 10 * S); /* group 1 reaches its TTL; group 2 not yet */
    assert_int_equal(got.n, 1);
    const rf_event *g = &got.ev[0];
    assert_int_equal(g->kind, RF_KIND_CORRELATED);
    assert_int_equal(g->correlation_id, 1);
    assert_int_equal((uint32_t)g->aux, 3);             /* three events */
    assert_int_equal((uint32_t)(g->aux >> 32), 0);     /* id group */
    assert_int_equal(g->series_id, 12);                /* the earliest member event (a day back) */
    assert_int_equal(g->value.i64, 86400 * S + 3 * S); /* span of event times */
    uint64_t m[8];
    assert_int_equal(rf_correlator_members(c, 1, m, 8), 2); /* distinct series */
    assert_int_equal(m[0], 11);
    assert_int_equal(m[1], 12);
    rf_correlator_tick(c, m0 + 15 * S); /* group 2: one event, closes silently */
    assert_int_equal(got.n, 1);
    rf_correlator_stats st;
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.closed_ttl, 2);
    assert_int_equal(st.closed_small, 1);
    assert_int_equal(st.id_open, 0);
    assert_int_equal(st.id_events, 4);
    assert_int_equal(rf_correlator_members(c, 99, m, 8), -ENOENT);
    rf_correlator_free(c);
}

/* The other direction: event (wall) times an hour ahead of the group's first
 * event, as after a forward step of the wall clock, do not close the group
 * before its TTL of monotonic receipt time either. */
static void test_id_ttl_wall_step_ahead(void **state)
{
    (void)state;
    rf_correlator_config cfg = {.id_capacity = 100, .id_ttl_ns = 10 * S};
    rf_correlator *c = mk(&cfg);
    int64_t m0 = 700 * S;
    feed(c, ev_at(21, 7, 1000 * S, m0), -1);
    feed(c, ev_at(22, 7, 1000 * S + 3600 * S, m0 + 1 * S), -1);
    feed(c, ev_at(21, 7, 1001 * S + 3600 * S, m0 + 2 * S), -1);
    rf_correlator_tick(c, m0 + 10 * S - 1);
    assert_int_equal(got.n, 0);
    rf_correlator_tick(c, m0 + 10 * S);
    assert_int_equal(got.n, 1);
    assert_int_equal((uint32_t)got.ev[0].aux, 3);
    assert_int_equal(got.ev[0].value.i64, 3601 * S); /* span of event times */
    rf_correlator_free(c);
}

static void test_id_capacity_and_members(void **state)
{
    (void)state;
    rf_correlator_config cfg = {.id_capacity = 3, .id_ttl_ns = 3600 * S};
    rf_correlator *c = mk(&cfg);
    for (uint64_t id = 1; id <= 5; id++) {
        feed(c, ev_at(100 + id, id, (int64_t)id, (int64_t)id), -1);
        feed(c, ev_at(200 + id, id, (int64_t)id + 1, (int64_t)id), -1);
    }
    /* Ids 4 and 5 evicted the oldest groups, 1 then 2. */
    assert_int_equal(got.n, 2);
    assert_int_equal(got.ev[0].correlation_id, 1);
    assert_int_equal(got.ev[1].correlation_id, 2);
    rf_correlator_stats st;
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.evicted_capacity, 2);
    assert_int_equal(st.id_open, 3);
    /* Reinsertion after eviction works (the hash stayed consistent). */
    feed(c, ev_at(999, 1, 50, 50), -1);
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.evicted_capacity, 3); /* id 3 made room */
    assert_int_equal(st.id_opened, 6);
    rf_correlator_drain(c, 100);
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.id_open, 0);
    assert_int_equal(st.closed_small, 1); /* the new lone id 1 */
    assert_int_equal(got.n, 5);           /* 1, 2, 3, then 4 and 5 on drain */
    rf_correlator_free(c);

    /* Close on member count: the third event closes the group at once. */
    rf_correlator_config cm = {.id_capacity = 10, .id_close_members = 3};
    c = mk(&cm);
    feed(c, ev_at(1, 42, 10, 1), -1);
    feed(c, ev_at(2, 42, 20, 2), -1);
    assert_int_equal(got.n, 0);
    feed(c, ev_at(3, 42, 30, 3), -1);
    assert_int_equal(got.n, 1);
    assert_int_equal((uint32_t)got.ev[0].aux, 3);
    assert_int_equal(got.ev[0].value.i64, 20);
    assert_int_equal(got.ev[0].recv_time_ns, 3);
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.closed_members, 1);
    rf_correlator_free(c);
}

static void test_id_table_churn(void **state)
{
    (void)state;
    /* Many ids through a small table: every hash deletion path runs; the
     * table must keep finding what it holds. */
    rf_correlator_config cfg = {.id_capacity = 64, .id_ttl_ns = 1000, .id_close_members = 4};
    rf_correlator *c = mk(&cfg);
    uint64_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t id = (x >> 33) % 300 + 1;
        feed(c, ev_at(id, id, i, i / 10), -1);
        got.n = 0;
    }
    rf_correlator_stats st;
    rf_correlator_stats_read(c, &st);
    assert_true(st.id_open <= 64);
    assert_int_equal(st.id_opened,
                     st.closed_ttl + st.closed_members + st.evicted_capacity + st.id_open);
    rf_correlator_free(c);
}

/* A correlator of one pattern: "auth failed" then "auth ok" of one host
 * within 60 s (critical). */
static rf_correlator *mk_fail_then_ok(void)
{
    static rf_corr_pattern_config p = {.name = "fail_then_ok",
                                       .type = RF_CORR_SEQUENCE,
                                       .key_tag = "host",
                                       .within_ns = 60 * S,
                                       .critical = true};
    p.a.measurement = "auth";
    p.a.field = "failed";
    p.b.measurement = "auth";
    p.b.field = "ok";
    rf_correlator_config cfg = {.patterns = &p, .n_patterns = 1};
    return mk(&cfg);
}

static void test_sequence(void **state)
{
    (void)state;
    rf_correlator *c = mk_fail_then_ok();
    rf_series_key *ka = stage_test_key("auth,host=a failed");
    rf_series_key *kb = stage_test_key("auth,host=a ok");
    rf_series_key *kc = stage_test_key("auth,host=b ok");
    rf_series_key *kn = stage_test_key("auth failed"); /* no host tag: not part of it */
    rf_correlator_define(c, 0, ka);
    rf_correlator_define(c, 1, kb);
    rf_correlator_define(c, 2, kc);
    rf_correlator_define(c, 3, kn);

    feed(c, ev_at(ka->series_id, 0, 0, 1), 0);
    feed(c, ev_at(kn->series_id, 0, 1 * S, 1), 3);
    feed(c, ev_at(kc->series_id, 0, 10 * S, 2), 2); /* other host */
    assert_int_equal(got.n, 0);
    feed(c, ev_at(kb->series_id, 0, 30 * S, 3), 1); /* A then B within 60 s */
    assert_int_equal(got.n, 1);
    feed(c, ev_at(kb->series_id, 0, 40 * S, 4), 1); /* disarmed: nothing */
    feed(c, ev_at(ka->series_id, 0, 100 * S, 5), 0);
    feed(c, ev_at(kb->series_id, 0, 161 * S, 6), 1); /* 61 s later: too late */
    assert_int_equal(got.n, 1);

    const rf_event *g = &got.ev[0];
    assert_int_equal(g->kind, RF_KIND_CORRELATED);
    assert_int_equal(g->priority, RF_PRIO_CRITICAL);
    assert_int_equal((uint32_t)g->aux, 2);
    assert_int_equal((uint32_t)(g->aux >> 32), 1);
    assert_int_equal(g->value.i64, 30 * S);
    assert_int_equal(g->series_id, kb->series_id);
    assert_true(g->correlation_id >> 62 == 1);
    uint64_t m[4];
    assert_int_equal(rf_correlator_members(c, g->correlation_id, m, 4), 2);
    assert_int_equal(m[0], ka->series_id);
    assert_int_equal(m[1], kb->series_id);
    uint32_t nn;
    const char *const *names = rf_correlator_names(c, &nn);
    assert_int_equal(nn, 2);
    assert_string_equal(names[0], "id");
    assert_string_equal(names[1], "fail_then_ok");
    rf_correlator_stats st;
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.sequences, 1);
    rf_correlator_free(c);
    rf_series_key_free(ka);
    rf_series_key_free(kb);
    rf_series_key_free(kc);
    rf_series_key_free(kn);
}

/* Series lifecycle: a forgotten slot's bindings no longer take part (its
 * old series' events arm nothing), and the slot's next series binds afresh
 * in their room, with its own role and key. */
static void test_forget_and_reuse(void **state)
{
    (void)state;
    rf_correlator *c = mk_fail_then_ok();
    rf_series_key *ka = stage_test_key("auth,host=a failed");
    rf_series_key *kb = stage_test_key("auth,host=a ok");
    rf_series_key *kc = stage_test_key("auth,host=c ok");
    rf_series_key *kd = stage_test_key("auth,host=c failed");
    rf_correlator_define(c, 0, ka);
    rf_correlator_define(c, 1, kb);
    rf_correlator_forget(c, 0);
    feed(c, ev_at(ka->series_id, 0, 0, 1), 0); /* forgotten: arms nothing */
    feed(c, ev_at(kb->series_id, 0, 1 * S, 2), 1);
    assert_int_equal(got.n, 0);
    rf_correlator_define(c, 0, kc); /* slot 0 again: B of host c */
    rf_correlator_define(c, 2, kd);
    feed(c, ev_at(kd->series_id, 0, 2 * S, 3), 2);
    feed(c, ev_at(kc->series_id, 0, 3 * S, 4), 0);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.ev[0].series_id, kc->series_id);
    rf_correlator_free(c);
    rf_series_key_free(ka);
    rf_series_key_free(kb);
    rf_series_key_free(kc);
    rf_series_key_free(kd);
}

static void test_burst(void **state)
{
    (void)state;
    rf_corr_pattern_config p = {.name = "errors_burst",
                                .type = RF_CORR_BURST,
                                .key_tag = "host",
                                .within_ns = 10 * S,
                                .count = 3};
    p.a.measurement = "errors";
    rf_correlator_config cfg = {.patterns = &p, .n_patterns = 1};
    rf_correlator *c = mk(&cfg);
    rf_series_key *ka1 = stage_test_key("errors,host=a,svc=x count");
    rf_series_key *ka2 = stage_test_key("errors,host=a,svc=y count");
    rf_series_key *kb = stage_test_key("errors,host=b,svc=x count");
    rf_correlator_define(c, 0, ka1);
    rf_correlator_define(c, 1, ka2);
    rf_correlator_define(c, 2, kb);

    static const struct {
        int32_t slot;
        int t;
    } seq[] = {{0, 0},  {2, 1},  {1, 20}, {2, 21}, {0, 25},
               {2, 40}, {1, 28}, {0, 29}, {0, 30}, {1, 31}};
    uint32_t after[10];
    for (int i = 0; i < 10; i++) {
        const rf_series_key *k = seq[i].slot == 0 ? ka1 : seq[i].slot == 1 ? ka2 : kb;
        feed(c, ev_at(k->series_id, 0, seq[i].t * S, i), seq[i].slot);
        after[i] = got.n;
    }
    /* Host a: 0, 20, 25 span 25 s: no; 20, 25, 28 span 8 s: burst at t=28.
     * Then 29, 30, 31: second burst. Host b: 1, 21, 40: never 3 within 10 s. */
    assert_int_equal(after[5], 0);
    assert_int_equal(after[6], 1);
    assert_int_equal(after[8], 1);
    assert_int_equal(after[9], 2);
    assert_int_equal((uint32_t)got.ev[0].aux, 3);
    assert_int_equal(got.ev[0].value.i64, 8 * S);
    assert_int_equal(got.ev[0].priority, RF_PRIO_STANDARD);
    uint64_t m[4];
    assert_int_equal(rf_correlator_members(c, got.ev[0].correlation_id, m, 4), 3);
    assert_int_equal(m[0], ka2->series_id); /* t=20 */
    assert_int_equal(m[1], ka1->series_id); /* t=25 */
    assert_int_equal(m[2], ka2->series_id); /* t=28 */
    rf_correlator_stats st;
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.bursts, 2);
    rf_correlator_free(c);

    /* A key table of 2: a third host finds it full (keys are fresh). */
    cfg.pattern_keys = 2;
    c = mk(&cfg);
    rf_series_key *kc = stage_test_key("errors,host=c count");
    rf_correlator_define(c, 0, ka1);
    rf_correlator_define(c, 1, kb);
    rf_correlator_define(c, 2, kc);
    for (int32_t s = 0; s < 3; s++)
        feed(c, ev_at(1, 0, 0, 0), s);
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.pattern_keys_full, 1);
    /* Much later the idle keys are reused. */
    feed(c, ev_at(1, 0, 100 * S, 0), 2);
    rf_correlator_stats_read(c, &st);
    assert_int_equal(st.pattern_keys_reused, 1);
    rf_correlator_free(c);
    rf_series_key_free(ka1);
    rf_series_key_free(ka2);
    rf_series_key_free(kb);
    rf_series_key_free(kc);
}

/* ---- several shards: groups on their owners, through peer messages ---- */

#define MESH_MAX 4
#define MESH_Q 8192

typedef struct mesh {
    uint32_t n;
    rf_correlator *c[MESH_MAX];
    rf_event q[MESH_MAX][MESH_Q];
    uint32_t qn[MESH_MAX];
} mesh;

static void mesh_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    mesh *m = ctx;
    assert_true(to < m->n);
    assert_true(m->qn[to] + n <= MESH_Q);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].kind, RF_KIND_PEER);
        assert_int_equal(RF_PEER_STAGE_OF(ev[i].subkind), RF_PEER_STAGE_CORRELATE);
        assert_false(ev[i].flags & RF_EVF_OWNS_AUX);
    }
    memcpy(&m->q[to][m->qn[to]], ev, n * sizeof(*ev));
    m->qn[to] += n;
}

/* Hands every queued message to its shard, shards in order, until none. */
static void mesh_deliver(mesh *m)
{
    for (bool any = true; any;) {
        any = false;
        for (uint32_t s = 0; s < m->n; s++) {
            for (uint32_t i = 0; i < m->qn[s]; i++)
                rf_correlator_receive(m->c[s], &m->q[s][i]);
            any |= m->qn[s] != 0;
            m->qn[s] = 0;
        }
    }
}

static rf_corr_pattern_config g_pats[3];

static void mesh_patterns(void)
{
    memset(g_pats, 0, sizeof(g_pats));
    g_pats[0] = (rf_corr_pattern_config){
        .name = "login_sudo", .type = RF_CORR_SEQUENCE, .key_tag = "user", .within_ns = 10 * S};
    g_pats[0].a.measurement = "login";
    g_pats[0].b.measurement = "sudo";
    g_pats[1] = (rf_corr_pattern_config){
        .name = "errs", .type = RF_CORR_BURST, .key_tag = "host", .within_ns = 10 * S, .count = 3};
    g_pats[1].a.measurement = "errors";
    g_pats[2] = (rf_corr_pattern_config){
        .name = "any_two", .type = RF_CORR_BURST, .within_ns = 1000 * S, .count = 2};
    g_pats[2].a.measurement = "rare"; /* no key tag: one key for every series */
}

#define MESH_KEYS 64
static rf_series_key *g_keys[MESH_KEYS];
static uint32_t g_nkeys;

static void mesh_keys(void)
{
    char text[128];
    g_nkeys = 0;
    for (int u = 0; u < 12; u++) {
        snprintf(text, sizeof(text), "login,user=u%d ok", u);
        g_keys[g_nkeys++] = stage_test_key(text);
        snprintf(text, sizeof(text), "sudo,user=u%d ok", u);
        g_keys[g_nkeys++] = stage_test_key(text);
    }
    for (int h = 0; h < 8; h++)
        for (int p = 0; p < 3; p++) {
            snprintf(text, sizeof(text), "errors,host=h%d,proc=p%d n", h, p);
            g_keys[g_nkeys++] = stage_test_key(text);
        }
    g_keys[g_nkeys++] = stage_test_key("rare,host=a x");
    g_keys[g_nkeys++] = stage_test_key("rare,host=b x");
    for (int i = 0; i < 6; i++) {
        snprintf(text, sizeof(text), "plain,svc=s%d v", i); /* bound to nothing: ids only */
        g_keys[g_nkeys++] = stage_test_key(text);
    }
    assert_true(g_nkeys <= MESH_KEYS);
}

static void mesh_new(mesh *m, uint32_t n, const rf_correlator_config *cfg)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    for (uint32_t s = 0; s < n; s++) {
        rf_err err;
        if (rf_correlator_new(cfg, MESH_KEYS, (rf_emitter){stage_events_collect, &got}, &m->c[s],
                              &err) != 0 ||
            rf_correlator_set_peers(m->c[s], mesh_send, m, s, n, &err) != 0)
            fail_msg("correlator: %s", err.msg);
        /* Each shard knows the series it owns (slot = index in g_keys). */
        for (uint32_t k = 0; k < g_nkeys; k++)
            if (rf_event_owner(g_keys[k]->series_id, n) == s)
                rf_correlator_define(m->c[s], (int32_t)k, g_keys[k]);
    }
}

static void mesh_free(mesh *m)
{
    for (uint32_t s = 0; s < m->n; s++)
        rf_correlator_free(m->c[s]);
}

/* A stream over g_keys: (key index, correlation id, event time). */
typedef struct mev {
    uint32_t k;
    uint64_t cid;
    int64_t t;
} mev;

static uint32_t mesh_stream(mev *out)
{
    uint32_t n = 0;
    uint64_t x = 42;
    for (int round = 0; round < 3; round++) {
        const int64_t t0 = (int64_t)round * 100 * S;
        /* Users: login then sudo, one second apart (user 5 sudo too late). */
        for (uint32_t u = 0; u < 12; u++) {
            out[n++] = (mev){2 * u, 0, t0 + u};
            out[n++] = (mev){2 * u + 1, 0, t0 + (u == 5 ? 30 * S : 1 * S) + u};
        }
        /* Bursts: 3 error series of each host within 3 s (host 7: 30 s apart). */
        for (uint32_t h = 0; h < 8; h++)
            for (uint32_t p = 0; p < 3; p++)
                out[n++] = (mev){24 + h * 3 + p, 0, t0 + 2 * S + (h == 7 ? p * 30 * S : p * S)};
        out[n++] = (mev){48 + (uint32_t)round % 2, 0, t0 + 5 * S};
        /* Ids: 10 ids, each on 2..5 events of different series, some on
         * login series too (A events no B follows within the window: they
         * make no group whatever their order). */
        for (uint64_t id = 1; id <= 10; id++) {
            uint32_t members = 2 + (uint32_t)(stage_test_splitmix64(&x) % 4);
            for (uint32_t j = 0; j < members; j++) {
                uint32_t k = j % 2 ? 50 + (uint32_t)((id + j) % 6)
                                   : 2 * (uint32_t)(stage_test_splitmix64(&x) % 12);
                out[n++] = (mev){k, id * 1000003u + (uint64_t)round,
                                 t0 + 50 * S + (int64_t)j * S + (int64_t)id};
            }
        }
    }
    return n;
}

/* Runs the stream through n shards, batches of 16 events split by series
 * owner, messages delivered after every batch; drains at the end. */
static void mesh_run(uint32_t n, const mev *st, uint32_t len)
{
    rf_correlator_config cfg = {.patterns = g_pats, .n_patterns = 3};
    mesh *m = calloc(1, sizeof(*m));
    mesh_new(m, n, &cfg);
    got.n = 0;
    for (uint32_t i = 0; i < len; i += 16) {
        for (uint32_t s = 0; s < n; s++) {
            rf_event ev[16];
            int32_t slots[16];
            uint32_t k = 0;
            for (uint32_t j = i; j < len && j < i + 16; j++) {
                const rf_series_key *key = g_keys[st[j].k];
                if (rf_event_owner(key->series_id, n) != s)
                    continue;
                ev[k] = ev_at(key->series_id, st[j].cid, st[j].t, 1000 * S + j);
                slots[k++] = (int32_t)st[j].k;
            }
            if (k)
                rf_correlator_process(m->c[s], ev, slots, k);
        }
        mesh_deliver(m);
    }
    for (uint32_t s = 0; s < n; s++)
        rf_correlator_drain(m->c[s], 2000 * S);
    mesh_deliver(m);
    if (n > 1) {
        uint64_t fwd = 0, rcv = 0;
        for (uint32_t s = 0; s < n; s++) {
            rf_correlator_stats stt;
            rf_correlator_stats_read(m->c[s], &stt);
            fwd += stt.forwarded;
            rcv += stt.received;
            assert_int_equal(stt.peer_stale + stt.peer_malformed, 0);
        }
        assert_true(fwd > 0);
        assert_int_equal(fwd, rcv);
    }
    mesh_free(m);
    free(m);
}

/* What identifies a group whatever shard formed it (pattern groups' ids are
 * per shard sequence numbers, so not compared). */
static int cmp_group(const void *pa, const void *pb)
{
    const rf_event *a = pa, *b = pb;
    uint64_t ka[5] = {a->aux, a->aux >> 32 ? 0 : a->correlation_id, (uint64_t)a->event_time_ns,
                      (uint64_t)a->value.i64, a->series_id};
    uint64_t kb[5] = {b->aux, b->aux >> 32 ? 0 : b->correlation_id, (uint64_t)b->event_time_ns,
                      (uint64_t)b->value.i64, b->series_id};
    for (int i = 0; i < 5; i++)
        if (ka[i] != kb[i])
            return ka[i] < kb[i] ? -1 : 1;
    return 0;
}

static void test_shards_same_groups(void **state)
{
    (void)state;
    mesh_patterns();
    mesh_keys();
    static mev st[1024];
    uint32_t len = mesh_stream(st);
    static rf_event one[STAGE_EVENTS_CAP];
    mesh_run(1, st, len);
    uint32_t n1 = got.n;
    memcpy(one, got.ev, n1 * sizeof(rf_event));
    qsort(one, n1, sizeof(rf_event), cmp_group);
    uint32_t per_pattern[4] = {0};
    for (uint32_t i = 0; i < n1; i++)
        per_pattern[one[i].aux >> 32]++;
    /* 11 users and 7 hosts a round, 3 rounds; the keyless burst pairs the
     * three rare events once; 30 ids. */
    assert_int_equal(per_pattern[1], 33);
    assert_int_equal(per_pattern[2], 21);
    assert_int_equal(per_pattern[3], 1);
    assert_int_equal(per_pattern[0], 30);
    for (uint32_t n = 2; n <= MESH_MAX; n++) {
        mesh_run(n, st, len);
        qsort(got.ev, got.n, sizeof(rf_event), cmp_group);
        if (got.n != n1) {
            uint32_t pp[4] = {0};
            for (uint32_t i = 0; i < got.n; i++)
                pp[got.ev[i].aux >> 32]++;
            fail_msg("%u shards: %u groups (%u %u %u %u), 1 shard: %u (%u %u %u %u)", n, got.n,
                     pp[0], pp[1], pp[2], pp[3], n1, per_pattern[0], per_pattern[1], per_pattern[2],
                     per_pattern[3]);
        }
        for (uint32_t i = 0; i < n1; i++)
            if (cmp_group(&got.ev[i], &one[i]) != 0)
                fail_msg("%u shards: group %u differs (pattern %u, %u members, span %lld)", n, i,
                         (unsigned)(one[i].aux >> 32), (unsigned)one[i].aux,
                         (long long)one[i].value.i64);
    }
    for (uint32_t k = 0; k < g_nkeys; k++)
        rf_series_key_free(g_keys[k]);
}

/* B before A at the owner (they came by different paths): the same group as
 * A before B; an A after the window, none. */
static void test_sequence_any_arrival_order(void **state)
{
    (void)state;
    mesh_patterns();
    rf_correlator_config cfg = {.patterns = g_pats, .n_patterns = 1};
    rf_correlator *c = mk(&cfg);
    rf_series_key *ka = stage_test_key("login,user=x ok");
    rf_series_key *kb = stage_test_key("sudo,user=x ok");
    rf_correlator_define(c, 0, ka);
    rf_correlator_define(c, 1, kb);
    feed(c, ev_at(kb->series_id, 0, 13 * S, 1), 1);
    assert_int_equal(got.n, 0);
    feed(c, ev_at(ka->series_id, 0, 10 * S, 2), 0);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.ev[0].value.i64, 3 * S);
    assert_int_equal(got.ev[0].series_id, kb->series_id);
    assert_int_equal(got.ev[0].event_time_ns, 13 * S);
    feed(c, ev_at(kb->series_id, 0, 40 * S, 3), 1);
    feed(c, ev_at(ka->series_id, 0, 20 * S, 4), 0); /* 20 s before B: outside 10 s */
    assert_int_equal(got.n, 1);
    rf_correlator_free(c);
    rf_series_key_free(ka);
    rf_series_key_free(kb);
}

/* A message for a pattern the receiver does not have (a reload swapped one
 * shard first), or not a correlation message at all: counted, nothing else. */
static void test_peer_stale_and_malformed(void **state)
{
    (void)state;
    mesh_patterns();
    rf_correlator_config cfg = {.patterns = g_pats, .n_patterns = 1};
    mesh *m = calloc(1, sizeof(*m));
    rf_err err;
    m->n = 2;
    for (uint32_t s = 0; s < 2; s++) {
        if (s == 1)
            g_pats[0].within_ns = 20 * S; /* shard 1: the pattern changed under its name */
        assert_int_equal(
            rf_correlator_new(&cfg, 8, (rf_emitter){stage_events_collect, &got}, &m->c[s], &err),
            0);
        assert_int_equal(rf_correlator_set_peers(m->c[s], mesh_send, m, s, 2, &err), 0);
    }
    /* A user whose key shard 1 owns, seen on shard 0 (slot u: the first
     * whose event is forwarded). */
    char text[64];
    rf_series_key *keys[8] = {0};
    for (int u = 0; u < 8 && m->qn[1] == 0; u++) {
        snprintf(text, sizeof(text), "login,user=u%d ok", u);
        keys[u] = stage_test_key(text);
        rf_correlator_define(m->c[0], u, keys[u]);
        feed(m->c[0], ev_at(keys[u]->series_id, 0, 1 * S, 1), u);
    }
    assert_int_equal(m->qn[1], 1);
    rf_event bad[3] = {m->q[1][0], m->q[1][0], m->q[1][0]};
    bad[1].aux = (bad[1].aux & ~0xffffull) | 7; /* no pattern 7 */
    bad[2].subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, 99);
    mesh_deliver(m);
    for (int i = 1; i < 3; i++)
        rf_correlator_receive(m->c[1], &bad[i]);
    rf_correlator_stats st;
    rf_correlator_stats_read(m->c[1], &st);
    assert_int_equal(st.received, 3);
    assert_int_equal(st.peer_stale, 2);
    assert_int_equal(st.peer_malformed, 1);
    assert_int_equal(st.pattern_events, 0);
    rf_correlator_stats_read(m->c[0], &st);
    assert_int_equal(st.forwarded, 1);
    assert_int_equal(rf_correlator_set_peers(m->c[0], NULL, NULL, 0, 2, &err), -EINVAL);
    mesh_free(m);
    free(m);
    for (int u = 0; u < 8; u++)
        rf_series_key_free(keys[u]);
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        rf_corr_pattern_config p;
        const char *needle;
    } bad[] = {
        {{.name = "id", .within_ns = 1}, "reserved"},
        {{.name = "x", .within_ns = 0}, "window must be > 0"},
        {{.name = "x", .type = RF_CORR_BURST, .within_ns = 1, .count = 1}, "count 1 is not in"},
        {{.name = "x", .type = RF_CORR_BURST, .within_ns = 1, .count = 99}, "count 99"},
        {{.name = "a b", .within_ns = 1}, "letters"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_correlator_config cfg = {.patterns = &bad[i].p, .n_patterns = 1};
        rf_correlator *c;
        rf_err err;
        rf_err_clear(&err);
        assert_int_equal(rf_correlator_new(&cfg, 8, (rf_emitter){0}, &c, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].needle))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].needle);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_ttl_monotonic),
        cmocka_unit_test(test_id_ttl_wall_step_ahead),
        cmocka_unit_test(test_id_capacity_and_members),
        cmocka_unit_test(test_id_table_churn),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_forget_and_reuse),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_shards_same_groups),
        cmocka_unit_test(test_sequence_any_arrival_order),
        cmocka_unit_test(test_peer_stale_and_malformed),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
