/* Alert rules: fire/resolve sequences with for-duration and hysteresis,
 * flapping, rate of change, for-durations and rates across wall-clock steps,
 * absence through tick, matcher binding, and configuration errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/clock/clock.h"
#include "stages/alert/alert.h"
#include "stage_test_util.h"

#define S RF_NS_PER_S

static stage_events got; /* what the stage under test emitted */

static rf_alerts *mk(const rf_alert_rule_config *rules, uint32_t n)
{
    rf_alerts_config cfg = {.rules = rules, .n_rules = n};
    rf_alerts *a = NULL;
    rf_err err;
    rf_emitter out = {stage_events_collect, &got};
    if (rf_alerts_new(&cfg, 64, out, &a, &err) != 0)
        fail_msg("alerts: %s", err.msg);
    got.n = 0;
    return a;
}

/* Feeds one sample of slot 0 at event time t seconds. */
static void feed(rf_alerts *a, int32_t slot, double t_s, double v)
{
    rf_event e = {0};
    e.event_time_ns = (int64_t)(t_s * S);
    e.recv_time_ns = (int64_t)(t_s * S) + 7;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    rf_alerts_process(a, &e, &slot, 1);
}

/* A compact trace of what was emitted: "F@10 R@12" (F fire, R resolve, at event time s). */
static const char *trace(void)
{
    static char buf[512];
    size_t o = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < got.n && o < sizeof(buf) - 16; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%c@%g", i ? " " : "",
                              (got.ev[i].flags & RF_EVF_ALERT_RESOLVED) ? 'R' : 'F',
                              (double)got.ev[i].event_time_ns / S);
    return buf;
}

static void test_threshold_for_and_hysteresis(void **state)
{
    (void)state;
    rf_alert_rule_config r = {.name = "high_cpu",
                              .type = RF_ALERT_THRESHOLD,
                              .op = RF_CMP_GT,
                              .fire = 90,
                              .resolve = 80,
                              .has_resolve = true,
                              .for_ns = 10 * S};
    r.match.measurement = "cpu";
    rf_alerts *a = mk(&r, 1);
    rf_series_key *k = stage_test_key("cpu,host=a usage");
    rf_alerts_define(a, 0, k);

    feed(a, 0, 0, 95); /* pending */
    feed(a, 0, 5, 95); /* pending */
    assert_int_equal(got.n, 0);
    feed(a, 0, 10, 95); /* held 10 s: fire */
    feed(a, 0, 11, 85); /* below fire, above resolve: still firing */
    feed(a, 0, 12, 79); /* resolve */
    feed(a, 0, 13, 95); /* pending again */
    feed(a, 0, 14, 50); /* back to OK before `for`: nothing */
    feed(a, 0, 30, 95);
    feed(a, 0, 39, 95);
    assert_string_equal(trace(), "F@10 R@12");

    const rf_event *f = &got.ev[0], *rs = &got.ev[1];
    assert_int_equal(f->kind, RF_KIND_ALERT);
    assert_int_equal(f->priority, RF_PRIO_CRITICAL);
    assert_int_equal(f->aux, 0);
    assert_int_equal(f->flags, 0);
    assert_true(f->value.f64 == 95);
    assert_int_equal(f->series_id, k->series_id);
    assert_int_equal(f->recv_time_ns, 10 * S + 7);
    assert_int_equal(rs->flags, RF_EVF_ALERT_RESOLVED);
    assert_true(f->correlation_id != 0);
    assert_true(f->correlation_id == rs->correlation_id);
    assert_string_equal(rf_alerts_rule_name(a, 0), "high_cpu");

    rf_alerts_stats st;
    rf_alerts_stats_read(a, &st);
    assert_int_equal(st.fired, 1);
    assert_int_equal(st.resolved, 1);
    assert_int_equal(st.bindings, 1);
    rf_alerts_free(a);
    rf_series_key_free(k);
}

static void test_flapping(void **state)
{
    (void)state;
    static const double vals[] = {91, 85, 91, 85, 91, 85, 79};
    /* Without hysteresis every crossing fires or resolves. */
    rf_alert_rule_config r = {
        .name = "flap", .type = RF_ALERT_THRESHOLD, .op = RF_CMP_GT, .fire = 90};
    rf_alerts *a = mk(&r, 1);
    rf_series_key *k = stage_test_key("cpu,host=a usage");
    rf_alerts_define(a, 0, k);
    for (int i = 0; i < 7; i++)
        feed(a, 0, i, vals[i]);
    assert_string_equal(trace(), "F@0 R@1 F@2 R@3 F@4 R@5");
    rf_alerts_free(a);

    /* With a resolve threshold of 80 the same input fires once. */
    r.resolve = 80;
    r.has_resolve = true;
    a = mk(&r, 1);
    rf_alerts_define(a, 0, k);
    for (int i = 0; i < 7; i++)
        feed(a, 0, i, vals[i]);
    assert_string_equal(trace(), "F@0 R@6");
    rf_alerts_free(a);

    /* Less-than rules mirror it: < 10 fires, resolves at >= 20. */
    rf_alert_rule_config low = {.name = "low_disk",
                                .type = RF_ALERT_THRESHOLD,
                                .op = RF_CMP_LT,
                                .fire = 10,
                                .resolve = 20,
                                .has_resolve = true};
    a = mk(&low, 1);
    rf_alerts_define(a, 0, k);
    static const double lv[] = {50, 9, 15, 11, 19.9, 20, 5};
    for (int i = 0; i < 7; i++)
        feed(a, 0, i, lv[i]);
    assert_string_equal(trace(), "F@1 R@5 F@6");
    rf_alerts_free(a);
    rf_series_key_free(k);
}

static void test_rate_of_change(void **state)
{
    (void)state;
    rf_alert_rule_config r = {.name = "fast_growth",
                              .type = RF_ALERT_RATE,
                              .op = RF_CMP_GT,
                              .fire = 100,
                              .resolve = 50,
                              .has_resolve = true,
                              .window_ns = 10 * S};
    rf_alerts *a = mk(&r, 1);
    rf_series_key *k = stage_test_key("net,host=a bytes");
    rf_alerts_define(a, 0, k);
    double v = 0;
    int t = 0;
    for (; t <= 30; t++) { /* 60/s: below 100 */
        feed(a, 0, t, v);
        v += 60;
    }
    assert_int_equal(got.n, 0);
    for (; t <= 60; t++) { /* 200/s: fires once the window sees it */
        feed(a, 0, t, v);
        v += 200;
    }
    assert_int_equal(got.n, 1);
    /* Rate over the window at the fire: between 100 and 200. */
    assert_true(got.ev[0].value.f64 > 100 && got.ev[0].value.f64 <= 200);
    double fired_at = (double)got.ev[0].event_time_ns / S;
    assert_true(fired_at > 30 && fired_at <= 40);
    for (; t <= 90; t++) { /* flat: rate 0 -> resolve */
        feed(a, 0, t, v);
    }
    assert_int_equal(got.n, 2);
    assert_int_equal(got.ev[1].flags, RF_EVF_ALERT_RESOLVED);
    assert_true(got.ev[1].value.f64 < 50);
    rf_alerts_free(a);
    rf_series_key_free(k);
}

/* ---- wall-clock steps ------------------------------------------------------ */

/* One sample with its event time, receipt time (monotonic) and flags. */
static void feed_at(rf_alerts *a, int64_t event_ns, int64_t recv_ns, uint8_t flags, double v)
{
    rf_event e = {0};
    e.event_time_ns = event_ns;
    e.recv_time_ns = recv_ns;
    e.flags = flags;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    int32_t slot = 0;
    rf_alerts_process(a, &e, &slot, 1);
}

/* Samples stamped at receipt carry the daemon's wall clock; it steps by
 * `step` after the sample at 3 s. The for-duration (10 s) and the rate are
 * measured on monotonic receipt time, so the rule fires at the sample 10 s
 * after the condition began, whatever the step: before, a step ahead fired
 * it at once (event time had moved an hour) and a step back held it for an
 * hour. Returns the second (monotonic, from 0) of the first fire, -1 if none. */
static int fire_second(const rf_alert_rule_config *r, int64_t step, double slope)
{
    rf_alerts *a = mk(r, 1);
    rf_series_key *k = stage_test_key("cpu,host=a usage");
    rf_alerts_define(a, 0, k);
    const int64_t real0 = 1700000000LL * S, mono0 = 4242 * S;
    int at = -1;
    for (int t = 0; t <= 40 && at < 0; t++) {
        int64_t wall = real0 + t * S + (t > 3 ? step : 0);
        feed_at(a, wall, mono0 + t * S, 0, 95 + slope * t);
        if (got.n) {
            at = t;
            assert_int_equal(got.ev[0].event_time_ns, wall); /* stamped with the sample's time */
        }
    }
    rf_alerts_free(a);
    rf_series_key_free(k);
    return at;
}

static void test_wall_step_for_duration(void **state)
{
    (void)state;
    rf_alert_rule_config th = {
        .name = "hot", .type = RF_ALERT_THRESHOLD, .op = RF_CMP_GT, .fire = 90, .for_ns = 10 * S};
    assert_int_equal(fire_second(&th, 0, 0), 10);
    assert_int_equal(fire_second(&th, 3600 * S, 0), 10);  /* ahead */
    assert_int_equal(fire_second(&th, -3600 * S, 0), 10); /* back */

    /* Rate 100/s over a 10 s window (evaluated from 5 s of history on),
     * for 5 s: fires at 10 s whatever the step. */
    rf_alert_rule_config rate = {.name = "growth",
                                 .type = RF_ALERT_RATE,
                                 .op = RF_CMP_GT,
                                 .fire = 50,
                                 .window_ns = 10 * S,
                                 .for_ns = 5 * S};
    assert_int_equal(fire_second(&rate, 0, 100), 10);
    assert_int_equal(fire_second(&rate, 3600 * S, 100), 10);
    assert_int_equal(fire_second(&rate, -3600 * S, 100), 10);

    /* Client timestamps keep event-time semantics: a batch of 11 samples
     * (0..10 s) that arrives in one receive still fires at the sample of
     * 10 s, and receipt times play no part. */
    rf_alerts *a = mk(&th, 1);
    rf_series_key *k = stage_test_key("cpu,host=a usage");
    rf_alerts_define(a, 0, k);
    for (int t = 0; t <= 10; t++)
        feed_at(a, t * S, 99 * S, RF_EVF_HAS_CLIENT_TIME, 95);
    assert_string_equal(trace(), "F@10");
    rf_alerts_free(a);

    /* A series that changes clocks restarts its pending duration: 5 s on
     * receipt time, then client timestamps 5 s later than that do not add up
     * to 10 s. */
    a = mk(&th, 1);
    rf_alerts_define(a, 0, k);
    for (int t = 0; t <= 5; t++)
        feed_at(a, 1000 * S + t * S, t * S, 0, 95);
    for (int t = 6; t <= 15; t++)
        feed_at(a, 1000 * S + t * S, t * S, RF_EVF_HAS_CLIENT_TIME, 95);
    assert_int_equal(got.n, 0);
    feed_at(a, 1016 * S, 16 * S, RF_EVF_HAS_CLIENT_TIME, 95); /* 10 s on the client clock */
    assert_string_equal(trace(), "F@1016");
    rf_alerts_free(a);
    rf_series_key_free(k);
}

/* Takes the SERIES_DEF events out of `got` (freeing their keys) and says
 * how many there were, each checked to be `text`. */
static uint32_t take_defs(const char *text)
{
    uint32_t m = 0, defs = 0;
    for (uint32_t i = 0; i < got.n; i++) {
        if (got.ev[i].kind == RF_KIND_SERIES_DEF) {
            rf_series_key *k = (rf_series_key *)(uintptr_t)got.ev[i].aux;
            assert_string_equal(k->text, text);
            assert_true(k->series_id == got.ev[i].series_id);
            rf_series_key_free(k);
            defs++;
            continue;
        }
        got.ev[m++] = got.ev[i];
    }
    got.n = m;
    return defs;
}

static void test_absence_tick(void **state)
{
    (void)state;
    rf_alert_rule_config rules[2] = {
        {.name = "silent", .type = RF_ALERT_ABSENCE, .absent_ns = 5 * S},
        {.name = "no_gpu_at_all",
         .type = RF_ALERT_ABSENCE,
         .absent_ns = 5 * S,
         .absence_any = true},
    };
    rules[0].match.measurement = "heartbeat";
    rules[1].match.measurement = "gpu";
    rf_alerts *a = mk(rules, 2);
    rf_series_key *k = stage_test_key("heartbeat,host=a up");
    rf_alerts_define(a, 3, k);
    const int64_t allow = RF_ALERT_REPORT_ALLOWANCE_NS;
    uint64_t rule_series = rf_alerts_rule_series_id(a, 1);
    assert_true(rule_series == rf_series_id_of_key("alert,rule=no_gpu_at_all state",
                                                   strlen("alert,rule=no_gpu_at_all state")));

    int64_t base = 1000 * S;
    rf_alerts_tick(a, base, 42); /* starts the silence clocks */
    rf_alerts_tick(a, base + 4 * S, 42);
    assert_int_equal(got.n, 0);
    rf_alerts_tick(a, base + 5 * S, 42);
    assert_int_equal(got.n, 1); /* the heartbeat series */
    assert_int_equal(got.ev[0].aux, 0);
    assert_int_equal(got.ev[0].series_id, k->series_id);
    assert_true(got.ev[0].value.f64 == 5.0);
    /* The rule with no series at all: `absent` plus the report allowance,
     * under its own series, defined just before. */
    rf_alerts_tick(a, base + 5 * S + allow, 42);
    assert_int_equal(take_defs("alert,rule=no_gpu_at_all state"), 1);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.ev[1].aux, 1);
    assert_true(got.ev[1].series_id == rule_series);
    assert_true(got.ev[1].value.f64 == (double)(5 * S + allow) / 1e9);
    rf_alerts_tick(a, base + 9 * S, 42); /* already firing: nothing new */
    assert_int_equal(got.n, 2);

    /* Data comes back: the per-series rule resolves at once. */
    rf_event e = {0};
    e.event_time_ns = 77;
    e.recv_time_ns = base + 10 * S;
    e.value.f64 = 1;
    int32_t slot = 3;
    rf_alerts_process(a, &e, &slot, 1);
    assert_int_equal(got.n, 3);
    assert_int_equal(got.ev[2].flags, RF_EVF_ALERT_RESOLVED);
    assert_true(got.ev[2].correlation_id == got.ev[0].correlation_id);
    rf_alerts_tick(a, base + 14 * S, 42);
    assert_int_equal(got.n, 3);
    rf_alerts_tick(a, base + 15 * S, 42);
    assert_int_equal(got.n, 4); /* silent again for 5 s */
    rf_alerts_free(a);
    rf_series_key_free(k);
}

/* Series lifecycle: an expired series' bindings are dropped without an
 * event (a firing threshold does not resolve, an absence does not fire),
 * and the slot's next series binds afresh in their room: its state starts
 * at OK, its absence clock at its own first tick, evaluated once. */
static void test_forget_and_reuse(void **state)
{
    (void)state;
    rf_alert_rule_config r[2] = {
        {.name = "high", .type = RF_ALERT_THRESHOLD, .op = RF_CMP_GT, .fire = 90},
        {.name = "gone", .type = RF_ALERT_ABSENCE, .absent_ns = 5 * S},
    };
    r[0].match.measurement = "cpu";
    r[1].match.measurement = "cpu";
    rf_alerts *a = mk(r, 2);
    rf_series_key *x = stage_test_key("cpu,host=x usage"), *y = stage_test_key("cpu,host=y usage");
    rf_alerts_define(a, 0, x);
    feed(a, 0, 1, 95);
    assert_string_equal(trace(), "F@1");
    rf_alerts_tick(a, 2 * S, 42); /* x's silence clock runs */
    rf_alerts_forget(a, 0);
    feed(a, 0, 2, 10);              /* a stale slot: no binding, nothing */
    rf_alerts_tick(a, 100 * S, 42); /* x's absence is gone with it */
    assert_int_equal(got.n, 1);
    rf_alerts_define(a, 0, y);
    feed(a, 0, 3, 10); /* y starts at OK: no resolve of x's fire */
    assert_int_equal(got.n, 1);
    rf_alerts_tick(a, 101 * S, 42); /* y's silence clock starts here */
    rf_alerts_tick(a, 106 * S, 42); /* 5 s later: one fire, y's */
    assert_int_equal(got.n, 2);
    assert_int_equal(got.ev[1].series_id, y->series_id);
    rf_alerts_stats st;
    rf_alerts_stats_read(a, &st);
    assert_int_equal(st.bindings, 2); /* y's two in x's room, not four */
    rf_alerts_free(a);
    rf_series_key_free(x);
    rf_series_key_free(y);
}

/* N simulated shards of one rule set, reports carried by hand. */
#define SHARDS_MAX 4
typedef struct sim {
    uint32_t n;
    rf_alerts *a[SHARDS_MAX];
    stage_events out[SHARDS_MAX];
    rf_event q[SHARDS_MAX][64]; /* reports in flight, per destination */
    uint32_t qn[SHARDS_MAX];
} sim;

static void sim_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    sim *sm = ctx;
    for (uint32_t i = 0; i < n; i++)
        sm->q[to][sm->qn[to]++] = ev[i];
}

static void sim_deliver(sim *sm)
{
    for (uint32_t s = 0; s < sm->n; s++) {
        for (uint32_t i = 0; i < sm->qn[s]; i++)
            rf_alerts_peer_receive(sm->a[s], &sm->q[s][i]);
        sm->qn[s] = 0;
    }
}

static void sim_new(sim *sm, uint32_t n, const rf_alert_rule_config *rules, uint32_t n_rules)
{
    memset(sm, 0, sizeof(*sm));
    sm->n = n;
    rf_alerts_config cfg = {.rules = rules, .n_rules = n_rules};
    for (uint32_t s = 0; s < n; s++) {
        rf_err err;
        rf_emitter out = {stage_events_collect, &sm->out[s]};
        if (rf_alerts_new(&cfg, 64, out, &sm->a[s], &err) != 0)
            fail_msg("alerts: %s", err.msg);
        rf_alerts_set_peers(sm->a[s], s, n, sim_send, sm);
    }
}

static void sim_tick(sim *sm, int64_t mono, int64_t wall)
{
    for (uint32_t s = 0; s < sm->n; s++)
        rf_alerts_tick(sm->a[s], mono, wall);
    sim_deliver(sm);
}

/* What every shard emitted, alerts only, as "F@<mono ms> R@<mono ms>". */
static const char *sim_trace(sim *sm)
{
    static char buf[512];
    size_t o = 0;
    buf[0] = '\0';
    for (uint32_t s = 0; s < sm->n; s++)
        for (uint32_t i = 0; i < sm->out[s].n; i++) {
            const rf_event *e = &sm->out[s].ev[i];
            if (e->kind == RF_KIND_SERIES_DEF) {
                rf_series_key_free((rf_series_key *)(uintptr_t)e->aux);
                continue;
            }
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%c@%lld", o ? " " : "",
                                  (e->flags & RF_EVF_ALERT_RESOLVED) ? 'R' : 'F',
                                  (long long)(e->recv_time_ns / 1000000));
        }
    for (uint32_t s = 0; s < sm->n; s++)
        sm->out[s].n = 0;
    return buf;
}

static void sim_free(sim *sm)
{
    sim_trace(sm); /* frees the keys of definitions not yet taken */
    for (uint32_t s = 0; s < sm->n; s++)
        rf_alerts_free(sm->a[s]);
}

/* The issue 23 scenario on 1, 2 and 4 shards: hb on one series every
 * 0.5 s; the shard that owns it is not always the rule's owner. Quiet while
 * it flows, one fire when it stops, one resolve when it resumes: the same
 * trace on every shard count. */
static void test_rule_wide_absence_on_n_shards(void **state)
{
    (void)state;
    rf_alert_rule_config r = {
        .name = "hb_missing", .type = RF_ALERT_ABSENCE, .absent_ns = 2 * S, .absence_any = true};
    r.match.measurement = "hb";
    rf_series_key *keys[4] = {stage_test_key("hb,host=a up"), stage_test_key("hb,host=b up"),
                              stage_test_key("hb,host=c up"), stage_test_key("hb,host=d up")};
    const char *want = NULL;
    for (uint32_t n = 1; n <= 4; n *= 2) {
        for (uint32_t host = 0; host < 4; host++) {
            sim sm;
            sim_new(&sm, n, &r, 1);
            uint32_t owner_of_series = rf_event_owner(keys[host]->series_id, n);
            for (uint32_t s = 0; s < n; s++)
                rf_alerts_define(sm.a[s], 0, keys[host]); /* only its owner sees samples */
            const int64_t tick = 10 * 1000 * 1000;
            int64_t t = 0;
            for (int step = 0; step < 1200; step++, t += tick) {
                /* hb at 0..4 s and again from 7 s, every 0.5 s */
                bool send = (t < 4 * S || t >= 7 * S) && t % (S / 2) == 0;
                if (send) {
                    rf_event e = {0};
                    e.series_id = keys[host]->series_id;
                    e.event_time_ns = 5000 * S + t;
                    e.recv_time_ns = t + 1;
                    e.value.f64 = 1;
                    e.value_type = RF_VALUE_F64;
                    int32_t slot = 0;
                    rf_alerts_process(sm.a[owner_of_series], &e, &slot, 1);
                }
                sim_tick(&sm, t + tick / 2, 9000 * S + t);
            }
            rf_alerts_stats st = {0}, sum = {0};
            for (uint32_t s = 0; s < n; s++) {
                rf_alerts_stats_read(sm.a[s], &st);
                sum.reports_sent += st.reports_sent;
                sum.reports_received += st.reports_received;
                sum.reports_unknown += st.reports_unknown;
                sum.reports_late += st.reports_late;
            }
            /* One report per tick that saw a sample: 8 + 10 samples. */
            assert_int_equal(sum.reports_sent, 18);
            assert_int_equal(sum.reports_received, 18);
            assert_int_equal(sum.reports_unknown, 0);
            assert_int_equal(sum.reports_late, 0);
            const char *tr = sim_trace(&sm);
            if (!want)
                want = strdup(tr);
            if (strcmp(tr, want) != 0)
                fail_msg("%u shards, host %u: %s, one shard: %s", n, host, tr, want);
            sim_free(&sm);
        }
    }
    /* Last sample 3.5 s (+1 ns); fired at the first tick 2.1 s after it;
     * resolved by the 7 s sample, stamped with its receipt time. */
    assert_string_equal(want, "F@5605 R@7000");
    free((void *)want);
    for (int i = 0; i < 4; i++)
        rf_series_key_free(keys[i]);
}

/* A report the owner's stage has no rule for (a reload removed it, or the
 * rule is not rule-wide there) is counted, not applied; a late one is
 * applied and counted. */
static void test_rule_wide_reports_unknown_and_late(void **state)
{
    (void)state;
    rf_alert_rule_config r = {
        .name = "gone", .type = RF_ALERT_ABSENCE, .absent_ns = 1 * S, .absence_any = true};
    r.match.measurement = "x";
    rf_alerts *a = mk(&r, 1);
    rf_event rep = {0};
    rep.kind = RF_KIND_PEER;
    rep.subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_ALERT, RF_ALERT_PEER_REPORT);
    rep.series_id = 12345; /* no such rule */
    rep.value.u64 = 3;
    rf_alerts_peer_receive(a, &rep);
    rep.series_id = rf_alerts_rule_series_id(a, 0);
    rep.subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_ALERT, 99); /* no such message type */
    rf_alerts_peer_receive(a, &rep);
    rf_alerts_stats st;
    rf_alerts_stats_read(a, &st);
    assert_int_equal(st.reports_unknown, 2);
    assert_int_equal(st.reports_received, 0);

    rf_alerts_tick(a, 10 * S, 1);
    rf_alerts_tick(a, 12 * S, 2); /* fires: nothing since 10 s */
    assert_int_equal(take_defs("alert,rule=gone state"), 1);
    assert_int_equal(got.n, 1);
    /* A report of a sample at 11 s, long after the allowance: applied (it
     * resolves at the next tick) and counted as late. */
    rep.subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_ALERT, RF_ALERT_PEER_REPORT);
    rep.recv_time_ns = 11 * S;
    rep.event_time_ns = 111;
    rf_alerts_peer_receive(a, &rep);
    rf_alerts_stats_read(a, &st);
    assert_int_equal(st.reports_received, 1);
    assert_int_equal(st.reports_late, 1);
    rf_alerts_tick(a, 12 * S + 10 * 1000 * 1000, 3);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.ev[1].flags, RF_EVF_ALERT_RESOLVED);
    assert_int_equal(got.ev[1].event_time_ns, 111);
    assert_true(got.ev[1].correlation_id == got.ev[0].correlation_id);
    rf_alerts_free(a);
}

/* Nothing binds to a rule's own series. */
static void test_rule_series_not_bound(void **state)
{
    (void)state;
    rf_alert_rule_config rules[2] = {
        {.name = "any_alert", .type = RF_ALERT_ABSENCE, .absent_ns = 1 * S},
        {.name = "wide", .type = RF_ALERT_ABSENCE, .absent_ns = 1 * S, .absence_any = true},
    };
    rules[0].match.measurement = "alert";
    rules[1].match.measurement = "nothing";
    rf_alerts *a = mk(rules, 2);
    rf_series_key *own = stage_test_key("alert,rule=wide state");
    rf_series_key *other = stage_test_key("alert,rule=elsewhere state");
    rf_alerts_define(a, 0, own);
    rf_alerts_define(a, 1, other);
    rf_alerts_stats st;
    rf_alerts_stats_read(a, &st);
    assert_int_equal(st.bindings, 1); /* the other one only */
    rf_alerts_free(a);
    rf_series_key_free(own);
    rf_series_key_free(other);
}

static void test_matchers_bind_once(void **state)
{
    (void)state;
    rf_alert_rule_config r = {
        .name = "web_hot", .type = RF_ALERT_THRESHOLD, .op = RF_CMP_GE, .fire = 1};
    r.match.measurement = "cpu";
    r.match.n_tags = 1;
    r.match.tags[0].key = "host";
    r.match.tags[0].value = "web*";
    rf_alerts *a = mk(&r, 1);
    rf_series_key *web = stage_test_key("cpu,host=web7 usage");
    rf_series_key *db = stage_test_key("cpu,host=db1 usage");
    rf_series_key *mem = stage_test_key("mem,host=web7 usage");
    rf_alerts_define(a, 0, web);
    rf_alerts_define(a, 1, db);
    rf_alerts_define(a, 2, mem);
    rf_alerts_define(a, 0, web); /* a re-announced series binds nothing new */
    for (int32_t s = 0; s < 3; s++)
        feed(a, s, 1, 5);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.ev[0].series_id, web->series_id);
    rf_alerts_stats st;
    rf_alerts_stats_read(a, &st);
    assert_int_equal(st.bindings, 1);
    assert_int_equal(st.evaluated, 1);
    rf_alerts_free(a);
    rf_series_key_free(web);
    rf_series_key_free(db);
    rf_series_key_free(mem);
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        rf_alert_rule_config r;
        const char *needle;
    } bad[] = {
        {{.name = "x", .op = 9}, "unknown operator"},
        {{.name = "x", .op = RF_CMP_GT, .fire = 90, .resolve = 95, .has_resolve = true},
         "hysteresis"},
        {{.name = "x", .op = RF_CMP_LT, .fire = 10, .resolve = 5, .has_resolve = true},
         "hysteresis"},
        {{.name = "a.b", .op = RF_CMP_GT}, "letters, digits"},
        {{.name = NULL}, "no name"},
        {{.name = "r", .type = RF_ALERT_RATE, .op = RF_CMP_GT}, "window"},
        {{.name = "r", .type = RF_ALERT_ABSENCE}, "duration"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_alerts_config cfg = {.rules = &bad[i].r, .n_rules = 1};
        rf_alerts *a;
        rf_err err;
        rf_err_clear(&err);
        assert_int_equal(rf_alerts_new(&cfg, 8, (rf_emitter){0}, &a, &err), -EINVAL);
        if (!strstr(err.msg, bad[i].needle))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].needle);
    }
    rf_alert_rule_config dup[2] = {{.name = "d", .op = RF_CMP_GT}, {.name = "d", .op = RF_CMP_GT}};
    rf_alerts_config cfg = {.rules = dup, .n_rules = 2};
    rf_alerts *a;
    rf_err err;
    assert_int_equal(rf_alerts_new(&cfg, 8, (rf_emitter){0}, &a, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "defined twice"));
    assert_int_equal(rf_cmp_op_parse(">="), RF_CMP_GE);
    assert_int_equal(rf_cmp_op_parse("=>"), -1);

    /* A rule whose alerts reach no sink. */
    static const char *const sinks[] = {"pager"};
    rf_route_config ok_routes[] = {
        {.pattern = "alert.d", .sinks = sinks, .n_sinks = 1, .cls = RF_ROUTE_CRITICAL}};
    rf_router_config rcfg = {
        .routes = ok_routes, .n_routes = 1, .sink_names = sinks, .n_sink_names = 1};
    rf_router *router;
    assert_int_equal(rf_router_new(&rcfg, 8, &router, NULL), 0);
    rf_alert_rule_config two[2] = {{.name = "d", .op = RF_CMP_GT}, {.name = "e", .op = RF_CMP_GT}};
    cfg.rules = two;
    assert_int_equal(rf_alerts_check_routes(&cfg, router, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "alert rule 'e' references no route or sink"));
    cfg.n_rules = 1;
    assert_int_equal(rf_alerts_check_routes(&cfg, router, &err), 0);
    rf_router_free(router);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_for_and_hysteresis),
        cmocka_unit_test(test_flapping),
        cmocka_unit_test(test_rate_of_change),
        cmocka_unit_test(test_wall_step_for_duration),
        cmocka_unit_test(test_absence_tick),
        cmocka_unit_test(test_forget_and_reuse),
        cmocka_unit_test(test_rule_wide_absence_on_n_shards),
        cmocka_unit_test(test_rule_wide_reports_unknown_and_late),
        cmocka_unit_test(test_rule_series_not_bound),
        cmocka_unit_test(test_matchers_bind_once),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
