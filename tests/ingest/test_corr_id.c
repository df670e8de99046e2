/* The correlation id tag (rf_parse_config.corr_id_tag): in each protocol the
 * tag leaves the series (key, id, raw cache) and its value becomes the
 * correlation_id of every event of the line; the same value gives the same
 * id in every protocol; a context without it keeps the tag as a series tag. */
#include <errno.h>
#include <stdio.h>

#include "ingest_test_util.h"

static fixture *fx_id(void)
{
    rf_parse_config cfg = {0};
    strcpy(cfg.corr_id_tag, "request_id");
    return fixture_new(&cfg);
}

static uint64_t want_id(const char *value)
{
    uint64_t h = hash_str(value);
    return h ? h : 1;
}

static void test_influx_id_tag(void **state)
{
    (void)state;
    fixture *f = fx_id();
    assert_int_equal(run(f, rf_parse_influx,
                         "api,svc=front,request_id=abc lat=1,n=2i 1700000000000000000\n"
                         "api,request_id=def,svc=front lat=3\n"
                         "api,svc=front lat=4\n"
                         /* escapes in the value are resolved: the id of "x y,z" */
                         "api,svc=front,request_id=x\\ y\\,z lat=5\n"
                         /* a tag whose key only starts like it stays a tag */
                         "api,request_idx=1,svc=front lat=6\n"
                         /* an escaped comma in another value is no tag boundary */
                         "api,svc=a\\,request_id\\=q lat=7\n"
                         /* twice: both leave the series, the first is the id */
                         "api,request_id=a,svc=front,request_id=b lat=8\n"
                         /* in the middle, with an escaped value */
                         "api,a=1,request_id=x\\=y,svc=front lat=9\n"),
                     0);
    assert_int_equal(n_data(f), 9);
    const uint64_t front = id_of("api,svc=front lat");
    /* Both fields of the first line carry the id; the series has no id tag. */
    assert_int_equal(data_ev(f, 0)->series_id, front);
    assert_int_equal(data_ev(f, 0)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 1)->series_id, id_of("api,svc=front n"));
    assert_int_equal(data_ev(f, 1)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 2)->series_id, front);
    assert_int_equal(data_ev(f, 2)->correlation_id, want_id("def"));
    assert_int_equal(data_ev(f, 3)->series_id, front);
    assert_int_equal(data_ev(f, 3)->correlation_id, 0);
    assert_int_equal(data_ev(f, 4)->series_id, front);
    assert_int_equal(data_ev(f, 4)->correlation_id, want_id("x y,z"));
    assert_int_equal(data_ev(f, 5)->series_id, id_of("api,request_idx=1,svc=front lat"));
    assert_int_equal(data_ev(f, 5)->correlation_id, 0);
    assert_int_equal(data_ev(f, 6)->series_id, id_of("api,svc=a\\,request_id\\=q lat"));
    assert_int_equal(data_ev(f, 6)->correlation_id, 0);
    assert_int_equal(data_ev(f, 7)->series_id, front);
    assert_int_equal(data_ev(f, 7)->correlation_id, want_id("a"));
    assert_int_equal(data_ev(f, 8)->series_id, id_of("api,a=1,svc=front lat"));
    assert_int_equal(data_ev(f, 8)->correlation_id, want_id("x=y"));
    assert_string_equal(def_text(f, front), "api,svc=front lat");
    /* Many ids, one series: announced once, and from the raw cache after the
     * first line (the tag is cut before the raw bytes are hashed). */
    collected_reset(&f->out);
    uint64_t misses = rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES);
    char line[128];
    for (int i = 0; i < 100; i++) {
        snprintf(line, sizeof(line), "api,svc=front,request_id=r%d lat=%d\n", i, i);
        assert_int_equal(run(f, rf_parse_influx, line), 0);
        assert_int_equal(data_ev(f, (size_t)i)->series_id, front);
    }
    assert_int_equal(n_defs(f), 0);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES), misses);
    fixture_free(f);
}

static void test_dogstatsd_id_tag(void **state)
{
    (void)state;
    fixture *f = fx_id();
    assert_int_equal(run(f, rf_parse_statsd,
                         "cache.hit:1|c|#request_id:abc,svc:cache\n"
                         "cache.hit:1|c|#svc:cache,request_id:def|@0.5\n"
                         "cache.hit:1|c|#request_id:abc\n"
                         /* repeated: the first gives the id, all leave the series */
                         "cache.hit:1|c|#request_id:g1,svc:cache,request_id:g2\n"
                         /* bare tag: no id, and not a series tag either */
                         "cache.hit:1|c|#svc:cache,request_id\n"
                         "lat:1:2|ms|#request_id:abc,svc:cache\n"
                         /* in the middle */
                         "cache.hit:1|c|#env:x,request_id:mid,svc:cache\n"),
                     0);
    assert_int_equal(n_data(f), 8);
    const uint64_t with_svc = id_of("cache.hit,svc=cache count");
    assert_int_equal(data_ev(f, 0)->series_id, with_svc);
    assert_int_equal(data_ev(f, 0)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 1)->series_id, with_svc);
    assert_int_equal(data_ev(f, 1)->correlation_id, want_id("def"));
    assert_true(data_ev(f, 1)->sample_rate == 0.5f);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("cache.hit count"));
    assert_int_equal(data_ev(f, 2)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 3)->series_id, with_svc);
    assert_int_equal(data_ev(f, 3)->correlation_id, want_id("g1"));
    assert_int_equal(data_ev(f, 4)->series_id, with_svc);
    assert_int_equal(data_ev(f, 4)->correlation_id, 0);
    /* Packed values: each event of the line carries the id. */
    assert_int_equal(data_ev(f, 5)->series_id, id_of("lat,svc=cache timer"));
    assert_int_equal(data_ev(f, 5)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 6)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 7)->series_id, id_of("cache.hit,env=x,svc=cache count"));
    assert_int_equal(data_ev(f, 7)->correlation_id, want_id("mid"));
    assert_int_equal(n_defs(f), 4);
    fixture_free(f);
}

static void test_graphite_id_tag(void **state)
{
    (void)state;
    fixture *f = fx_id();
    assert_int_equal(run(f, rf_parse_graphite,
                         "auth.check;request_id=abc;svc=auth 1 1700000000\n"
                         "auth.check;svc=auth;request_id=def 2\n"
                         "auth.check;request_id=abc 3\n"
                         "auth.check;svc=auth 4\n"
                         "auth.check;request_id=a;svc=auth;request_id=b 5\n"
                         "auth.check;x=1;request_id=m;svc=auth 6\n"),
                     0);
    assert_int_equal(n_data(f), 6);
    const uint64_t svc = id_of("auth.check,svc=auth value");
    assert_int_equal(data_ev(f, 0)->series_id, svc);
    assert_int_equal(data_ev(f, 0)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 1)->series_id, svc);
    assert_int_equal(data_ev(f, 1)->correlation_id, want_id("def"));
    assert_int_equal(data_ev(f, 2)->series_id, id_of("auth.check value"));
    assert_int_equal(data_ev(f, 2)->correlation_id, want_id("abc"));
    assert_int_equal(data_ev(f, 3)->series_id, svc);
    assert_int_equal(data_ev(f, 3)->correlation_id, 0);
    assert_int_equal(data_ev(f, 4)->series_id, svc);
    assert_int_equal(data_ev(f, 4)->correlation_id, want_id("a"));
    assert_int_equal(data_ev(f, 5)->series_id, id_of("auth.check,svc=auth,x=1 value"));
    assert_int_equal(data_ev(f, 5)->correlation_id, want_id("m"));
    fixture_free(f);
}

/* One value, one id, whatever the protocol; without the setting the tag is
 * an ordinary series tag and no event has an id. */
static void test_id_across_protocols_and_off(void **state)
{
    (void)state;
    fixture *f = fx_id();
    assert_int_equal(run(f, rf_parse_influx, "a,request_id=r7 v=1\n"), 0);
    assert_int_equal(run(f, rf_parse_statsd, "b:1|g|#request_id:r7\n"), 0);
    assert_int_equal(run(f, rf_parse_graphite, "c;request_id=r7 1\n"), 0);
    assert_int_equal(data_ev(f, 0)->correlation_id, want_id("r7"));
    assert_int_equal(data_ev(f, 1)->correlation_id, want_id("r7"));
    assert_int_equal(data_ev(f, 2)->correlation_id, want_id("r7"));
    fixture_free(f);

    rf_parse_config off = {0};
    f = fixture_new(&off);
    assert_int_equal(run(f, rf_parse_influx, "a,request_id=r7 v=1\n"), 0);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("a,request_id=r7 v"));
    assert_int_equal(data_ev(f, 0)->correlation_id, 0);
    fixture_free(f);

    rf_parse_config bad = {0};
    strcpy(bad.corr_id_tag, "req id");
    rf_event batch[4];
    rf_err err;
    rf_err_clear(&err);
    assert_null(rf_parse_ctx_new(&bad, batch, 4, collect_flush, NULL, &err));
    assert_int_equal(err.code, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_influx_id_tag),
        cmocka_unit_test(test_dogstatsd_id_tag),
        cmocka_unit_test(test_graphite_id_tag),
        cmocka_unit_test(test_id_across_protocols_and_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
