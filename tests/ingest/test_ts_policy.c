/* The timestamp window and its policy (ingest.timestamp_past/_future,
 * timestamp_policy), for every protocol that carries a client timestamp: line
 * protocol, Graphite and DogStatsD's |T. At both edges: the edge itself is
 * inside, one unit beyond is outside; outside, reject drops the line
 * (timestamp_window) and clamp keeps it with the receive wall time, without
 * RF_EVF_HAS_CLIENT_TIME, counted once per accepted line. */
#include <stdio.h>

#include "tests/ingest/ingest_test_util.h"

#define NS 1000000000LL
#define PAST (3600 * NS)  /* 1 h */
#define FUTURE (600 * NS) /* 10 min */

static fixture *ts_fixture(enum rf_ts_policy policy, enum rf_ts_precision prec)
{
    rf_parse_config cfg = {.source_id = 3,
                           .precision = prec,
                           .ts_past_ns = PAST,
                           .ts_future_ns = FUTURE,
                           .ts_policy = (uint8_t)policy};
    return fixture_new(&cfg);
}

typedef struct ts_case {
    const char *line;
    int64_t want; /* the client's time when inside */
    int inside;
} ts_case;

/* Runs the four lines one at a time and checks each outcome under policy. */
static void check_cases(parse_fn fn, enum rf_ts_precision prec, const ts_case *cases, size_t n,
                        enum rf_ts_policy policy)
{
    fixture *f = ts_fixture(policy, prec);
    size_t outside = 0;
    for (size_t i = 0; i < n; i++) {
        collected_reset(&f->out);
        size_t rej = run(f, fn, cases[i].line);
        if (cases[i].inside) {
            if (rej != 0)
                fail_msg("'%s' was rejected", cases[i].line);
            assert_int_equal(n_data(f), 1);
            assert_int_equal(data_ev(f, 0)->event_time_ns, cases[i].want);
            /* (StatsD's events carry RF_EVF_STATSD as well) */
            assert_int_equal(data_ev(f, 0)->flags & ~RF_EVF_STATSD, RF_EVF_HAS_CLIENT_TIME);
            continue;
        }
        outside++;
        if (policy == RF_TS_REJECT) {
            if (rej != 1)
                fail_msg("'%s' was kept", cases[i].line);
            assert_int_equal(n_data(f), 0);
        } else {
            if (rej != 0)
                fail_msg("'%s' was rejected under clamp", cases[i].line);
            assert_int_equal(n_data(f), 1);
            const rf_event *e = data_ev(f, 0);
            assert_int_equal(e->event_time_ns, T_WALL);     /* the receipt time */
            assert_int_equal(e->flags & ~RF_EVF_STATSD, 0); /* no longer the client's */
            assert_int_equal(e->recv_time_ns, T_MONO);
            assert_int_equal(e->source_id, 3);
        }
    }
    if (policy == RF_TS_REJECT) {
        assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_TIMESTAMP_WINDOW), outside);
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), n - outside);
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), 0);
    } else {
        assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_TIMESTAMP_WINDOW), 0);
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_REJECTED), 0);
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), n);
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), outside);
    }
    fixture_free(f);
}

/* T_WALL = 1700000000 s: the window is [1699996400 s, 1700000600 s]. */

static void test_influx_edges(void **state)
{
    (void)state;
    char l[4][96];
    snprintf(l[0], sizeof(l[0]), "m,h=a v=1 %lld", (long long)(T_WALL - PAST));
    snprintf(l[1], sizeof(l[1]), "m,h=a v=1 %lld", (long long)(T_WALL - PAST - 1));
    snprintf(l[2], sizeof(l[2]), "m,h=a v=1 %lld", (long long)(T_WALL + FUTURE));
    snprintf(l[3], sizeof(l[3]), "m,h=a v=1 %lld", (long long)(T_WALL + FUTURE + 1));
    const ts_case ns[] = {
        {l[0], T_WALL - PAST, 1}, {l[1], 0, 0}, {l[2], T_WALL + FUTURE, 1}, {l[3], 0, 0}};
    check_cases(rf_parse_influx, RF_PRECISION_NS, ns, 4, RF_TS_REJECT);
    check_cases(rf_parse_influx, RF_PRECISION_NS, ns, 4, RF_TS_CLAMP);
    /* Second precision: the unit is the step. Several fields: one clamp
     * per line, every field at the receipt time. */
    const ts_case s[] = {{"m v=1 1699996400", T_WALL - PAST, 1},
                         {"m v=1 1699996399", 0, 0},
                         {"m v=1 1700000600", T_WALL + FUTURE, 1},
                         {"m v=1 1700000601", 0, 0}};
    check_cases(rf_parse_influx, RF_PRECISION_S, s, 4, RF_TS_REJECT);
    check_cases(rf_parse_influx, RF_PRECISION_S, s, 4, RF_TS_CLAMP);
    fixture *f = ts_fixture(RF_TS_CLAMP, RF_PRECISION_S);
    assert_int_equal(run(f, rf_parse_influx, "m a=1,b=2,c=3 946684800\n"), 0);
    assert_int_equal(n_data(f), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(data_ev(f, i)->event_time_ns, T_WALL);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), 1);
    fixture_free(f);
}

static void test_graphite_edges(void **state)
{
    (void)state;
    /* Graphite keeps fractions to the nanosecond: the unit beyond is 1 ns. */
    const ts_case c[] = {{"a.b 1 1699996400", T_WALL - PAST, 1},
                         {"a.b 1 1699996399.999999999", 0, 0},
                         {"a.b 1 1700000600", T_WALL + FUTURE, 1},
                         {"a.b 1 1700000600.000000001", 0, 0}};
    check_cases(rf_parse_graphite, RF_PRECISION_NS, c, 4, RF_TS_REJECT);
    check_cases(rf_parse_graphite, RF_PRECISION_NS, c, 4, RF_TS_CLAMP);
    /* "-1" means now under either policy: nothing to clamp. */
    fixture *f = ts_fixture(RF_TS_CLAMP, RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_graphite, "a.b 1 -1\n"), 0);
    assert_int_equal(data_ev(f, 0)->event_time_ns, T_WALL);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), 0);
    fixture_free(f);
}

static void test_dogstatsd_edges(void **state)
{
    (void)state;
    const ts_case c[] = {{"a:1|g|T1699996400", T_WALL - PAST, 1},
                         {"a:1|g|T1699996399", 0, 0},
                         {"a:1|c|#k:v|T1700000600", T_WALL + FUTURE, 1},
                         {"a:1|c|#k:v|T1700000601", 0, 0}};
    check_cases(rf_parse_statsd, RF_PRECISION_NS, c, 4, RF_TS_REJECT);
    check_cases(rf_parse_statsd, RF_PRECISION_NS, c, 4, RF_TS_CLAMP);
    /* Plain StatsD has no timestamp: the receipt time, nothing clamped. */
    fixture *f = ts_fixture(RF_TS_CLAMP, RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_statsd, "a:1|c\n"), 0);
    assert_int_equal(data_ev(f, 0)->event_time_ns, T_WALL);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), 0);
    fixture_free(f);
}

/* A clamped line that is rejected for another reason counts as that reject,
 * not as a clamp; a timestamp that is no time at all stays rejected. */
static void test_clamp_then_reject(void **state)
{
    (void)state;
    fixture *f = ts_fixture(RF_TS_CLAMP, RF_PRECISION_S);
    assert_int_equal(run(f, rf_parse_influx,
                         "m,t=\xff v=1 946684800\n" /* clamped, then invalid UTF-8 */
                         "m v=1 9223372037\n"       /* * 1e9 overflows int64 */
                         "m v=1 12x\n"),
                     3);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_INVALID_UTF8), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 1);
    assert_int_equal(run(f, rf_parse_statsd, "a:x|g|T946684800\n"), 1); /* value after |T */
    assert_int_equal(run(f, rf_parse_graphite, "a.b 1 1e400\n"), 1);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), 0);
    assert_int_equal(n_data(f), 0);
    fixture_free(f);
}

/* No window (0 = no limit): clamp has nothing to do; a bad policy value is
 * refused at creation. */
static void test_no_window_and_bad_policy(void **state)
{
    (void)state;
    rf_parse_config cfg = {.ts_policy = RF_TS_CLAMP};
    fixture *f = fixture_new(&cfg);
    assert_int_equal(run(f, rf_parse_influx, "m v=1 1\nm v=1 7258118400000000000\n"), 0);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1);
    assert_int_equal(data_ev(f, 1)->event_time_ns, 7258118400000000000LL);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_TIMESTAMPS_CLAMPED), 0);
    fixture_free(f);

    rf_event batch[4];
    collected out = {0};
    rf_err err;
    rf_err_clear(&err);
    cfg.ts_policy = 2;
    assert_null(rf_parse_ctx_new(&cfg, batch, 4, collect_flush, &out, &err));
    assert_non_null(strstr(err.msg, "timestamp policy"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_influx_edges),
        cmocka_unit_test(test_graphite_edges),
        cmocka_unit_test(test_dogstatsd_edges),
        cmocka_unit_test(test_clamp_then_reject),
        cmocka_unit_test(test_no_window_and_bad_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
