/* InfluxDB line protocol: the reference's own examples, every data type and
 * escape rule, exact float parsing, timestamps, and canonical series keys. */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "tests/ingest/ingest_test_util.h"

static fixture *lp_fixture(enum rf_ts_precision prec)
{
    rf_parse_config cfg = {.source_id = 7, .precision = prec};
    return fixture_new(&cfg);
}

/* Spec example: myMeasurement,tag1=value1,tag2=value2 fieldKey="fieldValue" 1556813561098000000 */
static void test_spec_basic_line(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_influx,
                         "myMeasurement,tag1=value1,tag2=value2 fieldKey=\"fieldValue\" "
                         "1556813561098000000\n"),
                     0);
    assert_int_equal(f->out.n, 2);
    const rf_event *d = &f->out.ev[0];
    assert_int_equal(d->kind, RF_KIND_SERIES_DEF); /* the def comes first */
    const rf_event *e = &f->out.ev[1];
    uint64_t id = id_of("myMeasurement,tag1=value1,tag2=value2 fieldKey");
    assert_int_equal(d->series_id, id);
    assert_int_equal(e->series_id, id);
    const rf_series_key *k = (const rf_series_key *)(uintptr_t)d->aux;
    assert_string_equal(k->text, "myMeasurement,tag1=value1,tag2=value2 fieldKey");
    assert_int_equal(k->measurement_len, 13);
    assert_int_equal(k->field_offset, 38);
    assert_int_equal(e->kind, RF_KIND_GAUGE);
    assert_int_equal(e->value_type, RF_VALUE_STRING);
    assert_int_equal(e->value.u64, hash_str("fieldValue"));
    assert_int_equal(e->event_time_ns, 1556813561098000000LL);
    assert_int_equal(e->recv_time_ns, T_MONO);
    /* The text travels with the string value (an owned block in aux). */
    assert_int_equal(e->flags, RF_EVF_HAS_CLIENT_TIME | RF_EVF_OWNS_AUX);
    assert_string_equal(((const rf_event_text *)(uintptr_t)e->aux)->text, "fieldValue");
    assert_int_equal(e->source_id, 7);
    assert_true(e->sample_rate == 1.0f);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 1);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_EVENTS), 1);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_SERIES_DEFS), 1);
    fixture_free(f);
}

/* Reference "home" sample data at second precision: several fields -> one
 * event per field, same timestamp. */
static void test_spec_home_multi_field(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_S);
    assert_int_equal(run(f, rf_parse_influx,
                         "home,room=Living\\ Room temp=21.1,hum=35.9,co=0i 1641024000\n"
                         "home,room=Kitchen temp=21.0,hum=35.9,co=0i 1641024000\n"),
                     0);
    assert_int_equal(n_data(f), 6);
    assert_int_equal(n_defs(f), 6);
    const rf_event *t = data_ev(f, 0), *h = data_ev(f, 1), *c = data_ev(f, 2);
    assert_int_equal(t->series_id, id_of("home,room=Living\\ Room temp"));
    assert_int_equal(h->series_id, id_of("home,room=Living\\ Room hum"));
    assert_int_equal(c->series_id, id_of("home,room=Living\\ Room co"));
    assert_int_equal(t->value_type, RF_VALUE_F64);
    assert_true(t->value.f64 == 21.1);
    assert_true(h->value.f64 == 35.9);
    assert_int_equal(c->value_type, RF_VALUE_I64);
    assert_int_equal(c->value.i64, 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(data_ev(f, (size_t)i)->event_time_ns, 1641024000LL * 1000000000LL);
    assert_int_equal(data_ev(f, 3)->series_id, id_of("home,room=Kitchen temp"));
    assert_true(data_ev(f, 3)->value.f64 == 21.0);
    assert_string_equal(def_text(f, t->series_id), "home,room=Living\\ Room temp");
    fixture_free(f);
}

/* Special characters section of the reference. */
static void test_spec_escapes(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(
        run(f, rf_parse_influx,
            "my\\ Measurement fieldKey=\"string value\"\n"
            "myMeasurement fieldKey=\"\\\"string\\\" within a string\"\n"
            "myMeasurement,tag\\ Key1=tag\\ Value1,tag\\ Key2=tag\\ Value2 "
            "fieldKey=100\n"
            "myMeasurement,tagKey=\xf0\x9f\x8d\xad fieldKey=\"Launch \xf0\x9f\x9a\x80\" "
            "1556813561098000000\n"
            "m\\,x,t\\=k=v\\,w f\\=\\,k\\ =1\n"),
        0);
    assert_int_equal(n_data(f), 5);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("my\\ Measurement fieldKey"));
    assert_int_equal(data_ev(f, 0)->value.u64, hash_str("string value"));
    assert_int_equal(data_ev(f, 1)->value.u64, hash_str("\"string\" within a string"));
    assert_int_equal(
        data_ev(f, 2)->series_id,
        id_of("myMeasurement,tag\\ Key1=tag\\ Value1,tag\\ Key2=tag\\ Value2 fieldKey"));
    assert_true(data_ev(f, 2)->value.f64 == 100.0);
    assert_int_equal(data_ev(f, 3)->series_id,
                     id_of("myMeasurement,tagKey=\xf0\x9f\x8d\xad fieldKey"));
    assert_int_equal(data_ev(f, 3)->value.u64, hash_str("Launch \xf0\x9f\x9a\x80"));
    assert_int_equal(data_ev(f, 4)->series_id, id_of("m\\,x,t\\=k=v\\,w f\\=\\,k\\ "));
    fixture_free(f);
}

/* Backslashes: "\\" is one backslash, any other backslash is literal; both
 * spellings are the same series. */
static void test_spec_backslashes(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_influx,
                         "my\\Measurement fieldKey=\"string value\"\n"
                         "my\\\\Measurement fieldKey=\"string value\"\n"
                         "my\\\\\\Measurement fieldKey=1\n"
                         "m fieldKey=\"string\\\\value\"\n"
                         "m fieldKey=\"string\\value\"\n"
                         "m s=\"ends with\\\\\"\n"),
                     0);
    assert_int_equal(n_data(f), 6);
    uint64_t id = id_of("my\\\\Measurement fieldKey");
    assert_int_equal(data_ev(f, 0)->series_id, id);
    assert_int_equal(data_ev(f, 1)->series_id, id);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("my\\\\\\\\Measurement fieldKey"));
    assert_int_equal(data_ev(f, 3)->value.u64, hash_str("string\\value"));
    assert_int_equal(data_ev(f, 4)->value.u64, hash_str("string\\value"));
    assert_int_equal(data_ev(f, 5)->value.u64, hash_str("ends with\\"));
    /* one def for the two spellings of my\Measurement, one for m fieldKey */
    assert_int_equal(n_defs(f), 4);
    fixture_free(f);
}

static void test_integers_and_unsigned(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_influx,
                         "m a=-9223372036854775808i,b=9223372036854775807i,c=18446744073709551615u,"
                         "d=0u,e=-0i\n"),
                     0);
    assert_int_equal(data_ev(f, 0)->value_type, RF_VALUE_I64);
    assert_true(data_ev(f, 0)->value.i64 == INT64_MIN);
    assert_true(data_ev(f, 1)->value.i64 == INT64_MAX);
    assert_int_equal(data_ev(f, 2)->value_type, RF_VALUE_U64);
    assert_true(data_ev(f, 2)->value.u64 == UINT64_MAX);
    assert_true(data_ev(f, 3)->value.u64 == 0);
    assert_true(data_ev(f, 4)->value.i64 == 0);
    collected_reset(&f->out);
    assert_int_equal(run(f, rf_parse_influx,
                         "m a=9223372036854775808i\n"
                         "m a=-9223372036854775809i\n"
                         "m a=18446744073709551616u\n"
                         "m a=-1u\n"
                         "m a=1.5i\n"
                         "m a=i\n"
                         "m a=1x\n"),
                     7);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 3);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 4);
    assert_int_equal(n_data(f), 0);
    fixture_free(f);
}

static void test_floats(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_influx,
                         "m a=1e3,b=-1.5E-3,c=.5,d=1.,e=0,f=-0.0,g=1.7976931348623157e308,"
                         "h=4.9e-324,i=12345678901234567890123,j=0.1,k=0e-400\n"),
                     0);
    assert_int_equal(n_data(f), 11);
    assert_true(data_ev(f, 0)->value.f64 == 1000.0);
    assert_true(data_ev(f, 1)->value.f64 == -0.0015);
    assert_true(data_ev(f, 2)->value.f64 == 0.5);
    assert_true(data_ev(f, 3)->value.f64 == 1.0);
    assert_true(data_ev(f, 4)->value.f64 == 0.0);
    assert_true(signbit(data_ev(f, 5)->value.f64));
    assert_true(data_ev(f, 6)->value.f64 == 1.7976931348623157e308);
    assert_true(data_ev(f, 7)->value.f64 == 4.9e-324);
    assert_true(data_ev(f, 8)->value.f64 == 12345678901234567890123.0);
    assert_true(data_ev(f, 9)->value.f64 == 0.1);
    assert_true(data_ev(f, 10)->value.f64 == 0.0);
    collected_reset(&f->out);
    assert_int_equal(run(f, rf_parse_influx,
                         "m a=1.2.3\nm a=inf\nm a=nan\nm a=NaN\nm a=+1\nm a=1e\nm a=0x10\n"
                         "m a=-\nm a=.\nm a=1e+\nm a=--1\n"),
                     11);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 11);
    assert_int_equal(run(f, rf_parse_influx, "m a=1e309\nm a=-2e308\n"), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 2);
    /* Underflow has the rule overflow has: a value that is not zero but
     * would be stored as zero is out of range; a subnormal that rounds to a
     * representable non-zero value is kept (3e-324 is the smallest, 4.9e-324). */
    assert_int_equal(
        run(f, rf_parse_influx, "m a=1e-400\nm a=-1e-400\nm a=2e-324\nm a=0.0000001e-320\n"), 4);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 6);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(run(f, rf_parse_influx, "m a=3e-324,b=-0e-999,c=0.000e-400\n"), 0);
    assert_int_equal(n_data(f), 3);
    assert_true(data_ev(f, 0)->value.f64 == 4.9e-324);
    assert_true(data_ev(f, 1)->value.f64 == 0.0 && signbit(data_ev(f, 1)->value.f64));
    assert_true(data_ev(f, 2)->value.f64 == 0.0);
    fixture_free(f);
}

/* The fast path must round exactly as strtod: compare bit patterns over many
 * generated decimals of every shape (short, long, big and small exponents). */
static void test_floats_match_strtod(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char line[128], num[96];
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int ndig = 1 + (int)(x % 25);
        int dot = (int)((x >> 8) % (unsigned)(ndig + 1));
        int exp = (int)((x >> 16) % 700) - 350;
        int has_exp = (x >> 26) & 1;
        size_t n = 0;
        if ((x >> 27) & 1)
            num[n++] = '-';
        uint64_t y = x;
        for (int d = 0; d < ndig; d++) {
            if (d == dot && d > 0)
                num[n++] = '.';
            y = y * 6364136223846793005ull + 1442695040888963407ull;
            num[n++] = (char)('0' + (y >> 60) % 10);
        }
        if (has_exp)
            n += (size_t)snprintf(num + n, sizeof(num) - n, "e%d", exp);
        num[n] = '\0';
        double want = strtod(num, NULL);
        snprintf(line, sizeof(line), "m v=%s\n", num);
        size_t rej = run(f, rf_parse_influx, line);
        /* Every generated mantissa has a non-zero digit only when it is not
         * all zeros; strtod's 0 for a non-zero mantissa is an underflow. */
        bool all_zero = strspn(num + (num[0] == '-'), "0.") == strcspn(num + (num[0] == '-'), "e");
        if (isinf(want) || (want == 0 && !all_zero)) {
            assert_int_equal(rej, 1);
            continue;
        }
        assert_int_equal(rej, 0);
        double got = data_ev(f, 0)->value.f64;
        if (memcmp(&got, &want, sizeof(got)) != 0)
            fail_msg("%s: got %.17g want %.17g", num, got, want);
        collected_reset(&f->out);
    }
    fixture_free(f);
}

static void test_booleans(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(
        run(f, rf_parse_influx, "m a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE\n"),
        0);
    assert_int_equal(n_data(f), 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(data_ev(f, i)->value_type, RF_VALUE_BOOL);
        assert_int_equal(data_ev(f, i)->value.u64, i < 5 ? 1 : 0);
    }
    assert_int_equal(run(f, rf_parse_influx, "m a=tRUE\nm a=yes\nm a=fals\n"), 3);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 3);
    fixture_free(f);
}

static void test_timestamps_and_precision(void **state)
{
    (void)state;
    static const struct {
        enum rf_ts_precision p;
        const char *line;
        int64_t want;
    } cases[] = {
        {RF_PRECISION_NS, "m v=1 1556813561098000000", 1556813561098000000LL},
        {RF_PRECISION_US, "m v=1 1556813561098000", 1556813561098000000LL},
        {RF_PRECISION_MS, "m v=1 1556813561098", 1556813561098000000LL},
        {RF_PRECISION_S, "m v=1 1556813561", 1556813561000000000LL},
        {RF_PRECISION_S, "m v=1 -1", -1000000000LL},
        {RF_PRECISION_M, "m v=1 27000000", 27000000LL * 60 * 1000000000LL},
        {RF_PRECISION_H, "m v=1 450000", 450000LL * 3600 * 1000000000LL},
        {RF_PRECISION_NS, "m v=1", T_WALL},
        {RF_PRECISION_NS, "m v=1   ", T_WALL},
        {RF_PRECISION_NS, "m v=1 5  ", 5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture *f = lp_fixture(cases[i].p);
        assert_int_equal(run(f, rf_parse_influx, cases[i].line), 0);
        assert_int_equal(data_ev(f, 0)->event_time_ns, cases[i].want);
        assert_int_equal(data_ev(f, 0)->flags,
                         cases[i].want == T_WALL ? 0 : RF_EVF_HAS_CLIENT_TIME);
        fixture_free(f);
    }
    fixture *f = lp_fixture(RF_PRECISION_S);
    assert_int_equal(run(f, rf_parse_influx,
                         "m v=1 9223372037\n"           /* * 1e9 overflows */
                         "m v=1 99999999999999999999\n" /* not an int64 */
                         "m v=1 12x\n"
                         "m v=1 1 2\n"),
                     4);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 1);
    fixture_free(f);
}

/* A context changes precision between calls (one per HTTP request), and the
 * first bad line of a call is kept however many follow it. */
static void test_set_precision_and_first_reject(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(rf_parse_set_precision(f->ctx, RF_PRECISION_MS), 0);
    assert_int_equal(rf_parse_set_precision(f->ctx, (enum rf_ts_precision)6), -EINVAL);
    rf_reject_entry first = {0};
    rf_parse_capture_first_reject(f->ctx, &first);
    assert_int_equal(run(f, rf_parse_influx, "m v=1 1000\nbad1\nm v=2 2000\nbad2 x\n"), 2);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1000LL * 1000000LL);
    assert_int_equal(first.seq, 1);
    assert_int_equal(first.reason, RF_REJ_EMPTY_FIELD_SET);
    assert_memory_equal(first.excerpt, "bad1", 4);
    assert_int_equal(first.excerpt_len, 4);
    rf_parse_capture_first_reject(f->ctx, NULL);
    assert_int_equal(run(f, rf_parse_influx, "bad3\n"), 1);
    assert_int_equal(first.seq, 1);
    fixture_free(f);
}

/* The db of an HTTP write becomes a tag, unless the line has its own. */
static void test_extra_tag(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(rf_parse_set_extra_tag(f->ctx, "db", "my db,x"), 0);
    assert_int_equal(run(f, rf_parse_influx, "cpu,host=a v=1 1\ncpu,db=own,host=a v=2 2\n"), 0);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("cpu,db=my\\ db\\,x,host=a v"));
    assert_int_equal(data_ev(f, 1)->series_id, id_of("cpu,db=own,host=a v"));
    assert_string_equal(def_text(f, data_ev(f, 0)->series_id), "cpu,db=my\\ db\\,x,host=a v");
    /* Same raw line, another db: another series (the raw cache keeps them apart). */
    assert_int_equal(rf_parse_set_extra_tag(f->ctx, "db", "other"), 0);
    assert_int_equal(run(f, rf_parse_influx, "cpu,host=a v=1 1\n"), 0);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("cpu,db=other,host=a v"));
    assert_int_equal(rf_parse_set_extra_tag(f->ctx, "db", NULL), 0);
    assert_int_equal(run(f, rf_parse_influx, "cpu,host=a v=1 1\n"), 0);
    assert_int_equal(data_ev(f, 3)->series_id, id_of("cpu,host=a v"));
    assert_int_equal(rf_parse_set_extra_tag(f->ctx, "", "x"), -EINVAL);
    assert_int_equal(rf_parse_set_extra_tag(f->ctx, "db", "\xff"), -EILSEQ);
    fixture_free(f);
}

static void test_comments_blank_crlf(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_influx,
                         "# a comment line\n"
                         "\n"
                         "   \n"
                         "  # indented comment\r\n"
                         "cpu,host=a usage=1.5 10\r\n"
                         "\r\n"
                         "  cpu,host=b usage=2.5 20"), /* no final newline */
                     0);
    assert_int_equal(n_data(f), 2);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("cpu,host=a usage"));
    assert_int_equal(data_ev(f, 0)->event_time_ns, 10);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("cpu,host=b usage"));
    assert_true(data_ev(f, 1)->value.f64 == 2.5);
    assert_int_equal(data_ev(f, 1)->event_time_ns, 20);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 2);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_REJECTED), 0);
    fixture_free(f);
}

/* Same series whatever the tag order: one id, one def; different fields are
 * different series. */
static void test_canonical_order(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_NS);
    assert_int_equal(run(f, rf_parse_influx,
                         "cpu,zone=eu,host=a,core=0 v=1\n"
                         "cpu,host=a,core=0,zone=eu v=2\n"
                         "cpu,core=0,zone=eu,host=a v=3\n"
                         "cpu,core=0,zone=eu,host=a v=4\n"
                         "cpu,b=1,bb=2,a=3 v=5\n"),
                     0);
    uint64_t id = id_of("cpu,core=0,host=a,zone=eu v");
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(data_ev(f, i)->series_id, id);
    assert_int_equal(data_ev(f, 4)->series_id, id_of("cpu,a=3,b=1,bb=2 v"));
    assert_int_equal(n_defs(f), 2);
    assert_string_equal(def_text(f, id), "cpu,core=0,host=a,zone=eu v");
    /* 3 distinct raw spellings of the first series + 1, and line 4 hit the cache */
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES), 4);
    fixture_free(f);
}

/* The raw-bytes cache must never change an outcome: the second pass over the
 * same lines (all hits) yields exactly the first pass's data events. */
static void test_cache_hits_equal_misses(void **state)
{
    (void)state;
    fixture *f = lp_fixture(RF_PRECISION_MS);
    const char *text = "cpu,host=a\\b,zone=eu usage=1.5,idle=98i,ok=t,s=\"x\\\"y\" 1700000000000\n"
                       "cpu,zone=eu,host=a\\b usage=2.5 1700000001000\n"
                       "bad line\n"
                       "mem\\ x,k\\=1=v used=1000000000u\n";
    assert_int_equal(run(f, rf_parse_influx, text), 1);
    size_t n1 = n_data(f);
    assert_int_equal(n1, 6);
    rf_event first[6];
    for (size_t i = 0; i < n1; i++) {
        first[i] = *data_ev(f, i);
        first[i].aux = 0; /* a string's text block: where it is differs, not what */
    }
    collected_reset(&f->out);
    uint64_t misses = rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES);
    assert_int_equal(run(f, rf_parse_influx, text), 1);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES), misses);
    assert_int_equal(n_defs(f), 0);
    assert_int_equal(n_data(f), n1);
    for (size_t i = 0; i < n1; i++) {
        rf_event e = *data_ev(f, i);
        if (e.flags & RF_EVF_OWNS_AUX)
            assert_string_equal(((const rf_event_text *)(uintptr_t)e.aux)->text, "x\"y");
        e.aux = 0;
        assert_memory_equal(&e, &first[i], sizeof(rf_event));
    }
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_basic_line),
        cmocka_unit_test(test_spec_home_multi_field),
        cmocka_unit_test(test_spec_escapes),
        cmocka_unit_test(test_spec_backslashes),
        cmocka_unit_test(test_integers_and_unsigned),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_floats_match_strtod),
        cmocka_unit_test(test_booleans),
        cmocka_unit_test(test_timestamps_and_precision),
        cmocka_unit_test(test_set_precision_and_first_reject),
        cmocka_unit_test(test_extra_tag),
        cmocka_unit_test(test_comments_blank_crlf),
        cmocka_unit_test(test_canonical_order),
        cmocka_unit_test(test_cache_hits_equal_misses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
