/* Correlation: id groups closed by TTL (monotonic), by member count and by
 * capacity eviction, with counters; sequence and burst patterns; member
 * lookup; configuration errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
    assert_int_equal((uint32_t)g->aux, 3);     /* three events */
    assert_int_equal((uint32_t)(g->aux >> 32), 0); /* id group */
    assert_int_equal(g->series_id, 12); /* the earliest member event (a day back) */
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
    assert_int_equal(got.n, 5);            /* 1, 2, 3, then 4 and 5 on drain */
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
    assert_int_equal(st.id_opened, st.closed_ttl + st.closed_members + st.evicted_capacity +
                                       st.id_open);
    rf_correlator_free(c);
}

static void test_sequence(void **state)
{
    (void)state;
    rf_corr_pattern_config p = {.name = "fail_then_ok", .type = RF_CORR_SEQUENCE,
                                .key_tag = "host", .within_ns = 60 * S, .critical = true};
    p.a.measurement = "auth";
    p.a.field = "failed";
    p.b.measurement = "auth";
    p.b.field = "ok";
    rf_correlator_config cfg = {.patterns = &p, .n_patterns = 1};
    rf_correlator *c = mk(&cfg);
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
    feed(c, ev_at(kc->series_id, 0, 10 * S, 2), 2);  /* other host */
    assert_int_equal(got.n, 0);
    feed(c, ev_at(kb->series_id, 0, 30 * S, 3), 1);  /* A then B within 60 s */
    assert_int_equal(got.n, 1);
    feed(c, ev_at(kb->series_id, 0, 40 * S, 4), 1);  /* disarmed: nothing */
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

static void test_burst(void **state)
{
    (void)state;
    rf_corr_pattern_config p = {.name = "errors_burst", .type = RF_CORR_BURST, .key_tag = "host",
                                .within_ns = 10 * S, .count = 3};
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
    } seq[] = {{0, 0}, {2, 1}, {1, 20}, {2, 21}, {0, 25}, {2, 40}, {1, 28}, {0, 29}, {0, 30},
               {1, 31}};
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
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
