/* StatsD/DogStatsD and Graphite plaintext: the protocol documents' examples,
 * kinds, sample rates, tags, timestamps and canonical keys. */
#include <errno.h>

#include "tests/ingest/ingest_test_util.h"

static fixture *fx(void)
{
    rf_parse_config cfg = {.source_id = 3};
    return fixture_new(&cfg);
}

/* The examples of etsy/statsd's docs/metric_types.md. */
static void test_statsd_metric_types(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_statsd,
                         "gorets:1|c\n"
                         "gorets:1|c|@0.1\n"
                         "glork:320|ms|@0.1\n"
                         "gaugor:333|g\n"
                         "gaugor:-10|g\n"
                         "gaugor:+4|g\n"
                         "uniques:765|s\n"
                         "hist:2.5|h\n"
                         "dist:-7e2|d\n"),
                     0);
    assert_int_equal(n_data(f), 9);
    const rf_event *e = data_ev(f, 0);
    assert_int_equal(e->kind, RF_KIND_COUNTER);
    assert_int_equal(e->value_type, RF_VALUE_F64);
    assert_true(e->value.f64 == 1.0);
    assert_true(e->sample_rate == 1.0f);
    assert_int_equal(e->series_id, id_of("gorets count"));
    assert_int_equal(e->event_time_ns, T_WALL);
    assert_int_equal(e->recv_time_ns, T_MONO);
    assert_int_equal(e->flags, RF_EVF_STATSD);
    assert_int_equal(e->aux, 0); /* no rate */
    assert_int_equal(e->source_id, 3);
    assert_true(data_ev(f, 1)->sample_rate == 0.1f);
    /* The exact rate, for StatsD's value * (1 / rate) in double. */
    double rate;
    memcpy(&rate, &data_ev(f, 1)->aux, sizeof(rate));
    assert_true(rate == 0.1);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("gorets count"));
    e = data_ev(f, 2);
    assert_int_equal(e->kind, RF_KIND_TIMER);
    assert_true(e->value.f64 == 320.0);
    assert_true(e->sample_rate == 0.1f);
    assert_int_equal(e->series_id, id_of("glork timer"));
    e = data_ev(f, 3);
    assert_int_equal(e->kind, RF_KIND_GAUGE);
    assert_true(e->value.f64 == 333.0);
    assert_int_equal(e->series_id, id_of("gaugor gauge"));
    e = data_ev(f, 4);
    assert_int_equal(e->kind, RF_KIND_GAUGE_DELTA);
    assert_true(e->value.f64 == -10.0);
    assert_int_equal(e->series_id, id_of("gaugor gauge")); /* deltas apply to the same gauge */
    e = data_ev(f, 5);
    assert_int_equal(e->kind, RF_KIND_GAUGE_DELTA);
    assert_true(e->value.f64 == 4.0);
    e = data_ev(f, 6);
    assert_int_equal(e->kind, RF_KIND_SET);
    assert_int_equal(e->value_type, RF_VALUE_STRING);
    assert_int_equal(e->value.u64, hash_str("765"));
    assert_int_equal(e->series_id, id_of("uniques set"));
    assert_int_equal(data_ev(f, 7)->kind, RF_KIND_HISTOGRAM);
    assert_true(data_ev(f, 7)->value.f64 == 2.5);
    assert_int_equal(data_ev(f, 7)->series_id, id_of("hist histogram"));
    assert_int_equal(data_ev(f, 8)->kind, RF_KIND_DISTRIBUTION);
    assert_true(data_ev(f, 8)->value.f64 == -700.0);
    assert_int_equal(data_ev(f, 8)->series_id, id_of("dist distribution"));
    assert_int_equal(n_defs(f), 6);
    assert_string_equal(def_text(f, id_of("gaugor gauge")), "gaugor gauge");
    fixture_free(f);
}

/* DogStatsD datagram format: tags (sorted into the key, any order), bare
 * tags, packed values, client timestamps, ignored extension sections. */
static void test_dogstatsd(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_statsd,
                         "page.views:1|c|#env:prod,service:web\n"
                         "page.views:2|c|#service:web,env:prod\n"
                         "users.online:1|c|@0.5|#country:china\n"
                         "song.length:240|h|@0.5|#genre:rock,beta\n"
                         "lat:1:2:3.5|d|#region:eu-west:1\n"
                         "ts.metric:9|g|T1700000100|e:ext|#a:b\n"
                         "empty.items:1|c|#,x:1,,\n"
                         "multi:1|c|#role:b,role:a,beta,role:a,beta\n"),
                     0);
    assert_int_equal(n_data(f), 10);
    assert_int_equal(data_ev(f, 9)->series_id, id_of("multi,beta,role=a,role=b count"));
    uint64_t pv = id_of("page.views,env=prod,service=web count");
    assert_int_equal(data_ev(f, 0)->series_id, pv);
    assert_int_equal(data_ev(f, 1)->series_id, pv);
    assert_true(data_ev(f, 1)->value.f64 == 2.0);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("users.online,country=china count"));
    assert_true(data_ev(f, 2)->sample_rate == 0.5f);
    assert_int_equal(data_ev(f, 3)->series_id, id_of("song.length,beta,genre=rock histogram"));
    assert_string_equal(def_text(f, data_ev(f, 3)->series_id),
                        "song.length,beta,genre=rock histogram");
    uint64_t lat = id_of("lat,region=eu-west:1 distribution");
    for (size_t i = 4; i < 7; i++) {
        assert_int_equal(data_ev(f, i)->series_id, lat);
        assert_int_equal(data_ev(f, i)->kind, RF_KIND_DISTRIBUTION);
    }
    assert_true(data_ev(f, 4)->value.f64 == 1.0);
    assert_true(data_ev(f, 5)->value.f64 == 2.0);
    assert_true(data_ev(f, 6)->value.f64 == 3.5);
    const rf_event *t = data_ev(f, 7);
    assert_int_equal(t->series_id, id_of("ts.metric,a=b gauge"));
    assert_int_equal(t->event_time_ns, 1700000100LL * 1000000000LL);
    assert_int_equal(t->flags, RF_EVF_HAS_CLIENT_TIME | RF_EVF_STATSD);
    assert_int_equal(data_ev(f, 8)->series_id, id_of("empty.items,x=1 count"));
    assert_int_equal(n_defs(f), 7);
    fixture_free(f);
}

/* The text of a string value's event. */
static const char *text_of_ev(const rf_event *e)
{
    assert_int_equal(e->value_type, RF_VALUE_STRING);
    assert_true(e->flags & RF_EVF_OWNS_AUX);
    const rf_event_text *t = (const rf_event_text *)(uintptr_t)e->aux;
    assert_int_equal(e->value.u64, hash_str(t->text));
    return t->text;
}

/* DogStatsD events and service checks (docs.datadoghq.com's datagram
 * formats): routed as series of their own, the title, text and message
 * kept as string fields, counted. */
static void test_dogstatsd_events_and_checks(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_statsd,
                         "_e{9,11}:Disk full|/var at 99%|d:1700000100|h:web1|p:low|t:warning|"
                         "#env:prod\n"
                         "_sc|db.up|2|d:1700000100|h:db1|#env:prod|m:down: disk|full\n"
                         "_e{5,2}:Title|a\n" /* text shorter than said */
                         "_sc|db.up|7\n"     /* no such status */
                         "_e{2,0}:Up||c:ci-42\n"),
                     2);
    assert_int_equal(n_data(f), 8);
    uint64_t ev = id_of("Disk\\ full,alert_type=warning,env=prod,host=web1,priority=low event");
    const rf_event *e = data_ev(f, 0);
    assert_int_equal(e->series_id, ev);
    assert_true(e->value.f64 == 1.0);
    assert_int_equal(e->event_time_ns, 1700000100LL * 1000000000LL);
    assert_int_equal(e->flags, RF_EVF_HAS_CLIENT_TIME); /* not a StatsD sample: not flushed */
    e = data_ev(f, 1);
    assert_int_equal(e->series_id,
                     id_of("Disk\\ full,alert_type=warning,env=prod,host=web1,priority=low title"));
    assert_string_equal(text_of_ev(e), "Disk full");
    assert_int_equal(e->event_time_ns, 1700000100LL * 1000000000LL);
    e = data_ev(f, 2);
    assert_int_equal(e->series_id,
                     id_of("Disk\\ full,alert_type=warning,env=prod,host=web1,priority=low text"));
    assert_string_equal(text_of_ev(e), "/var at 99%");
    e = data_ev(f, 3);
    assert_string_equal(def_text(f, e->series_id), "db.up,env=prod,host=db1 status");
    assert_int_equal(e->series_id, id_of("db.up,env=prod,host=db1 status"));
    assert_true(e->value.f64 == 2.0);
    e = data_ev(f, 4); /* the message is the rest of the line, '|' included */
    assert_int_equal(e->series_id, id_of("db.up,env=prod,host=db1 message"));
    assert_string_equal(text_of_ev(e), "down: disk|full");
    /* an empty text; the container id a tag */
    assert_int_equal(data_ev(f, 5)->series_id, id_of("Up,container_id=ci-42 event"));
    assert_string_equal(text_of_ev(data_ev(f, 6)), "Up");
    assert_string_equal(text_of_ev(data_ev(f, 7)), "");
    /* a check without a message has only its status, in the same series */
    assert_int_equal(run(f, rf_parse_statsd, "_sc|db.up|0|#env:prod|h:db1\n"), 0);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_DD_EVENTS), 2);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_DD_SERVICE_CHECKS), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 1);
    fixture_free(f);
}

/* DogStatsD's container id (|c:) is the tag container_id, beside the
 * line's own tags, in any section order; an empty one is no tag; a line
 * without it is another series. */
static void test_dogstatsd_container_id(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_statsd,
                         "req:1|c|c:ci-abc|#env:prod\n"
                         "req:2|c|#env:prod|c:ci-abc\n"
                         "req:3|c|#env:prod\n"
                         "req:4.5|ms|@0.5|c:in-123\n"
                         "req:5|c|c:|#env:prod\n"),
                     0);
    assert_int_equal(n_data(f), 5);
    uint64_t with = id_of("req,container_id=ci-abc,env=prod count");
    assert_int_equal(data_ev(f, 0)->series_id, with);
    assert_int_equal(data_ev(f, 1)->series_id, with);
    assert_string_equal(def_text(f, with), "req,container_id=ci-abc,env=prod count");
    assert_int_equal(data_ev(f, 2)->series_id, id_of("req,env=prod count"));
    assert_int_equal(data_ev(f, 3)->series_id, id_of("req,container_id=in-123 timer"));
    assert_true(data_ev(f, 3)->value.f64 == 4.5); /* numbers parse after the section */
    assert_int_equal(data_ev(f, 4)->series_id, id_of("req,env=prod count"));
    fixture_free(f);
    /* The tag counts against max_tags. */
    rf_parse_config cfg = {.source_id = 3, .max_tags = 1};
    f = fixture_new(&cfg);
    assert_int_equal(run(f, rf_parse_statsd, "req:1|c|c:x|#env:prod\nreq:1|c|c:x\n"), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_TOO_MANY_TAGS), 1);
    fixture_free(f);
}

static void test_statsd_rejects_and_neighbours(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_statsd,
                         "a:1|c\n"
                         ":1|c\n"     /* empty name */
                         "b:|c\n"     /* empty value */
                         "c:1|\n"     /* empty type */
                         "d:1|c|@0\n" /* rate must be > 0 */
                         "e:1|c|@x\n"
                         "f:1:|c\n"      /* empty packed value */
                         "g:1|c||#a\n"   /* empty section */
                         "h:1|c|#a|#b\n" /* two tag sections */
                         "i:inf|g\n"
                         "j:1|g|Tabc\n"
                         "z:5|c\n"),
                     10);
    assert_int_equal(n_data(f), 2);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("z count"));
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 6);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 3);
    fixture_free(f);
}

/* Graphite: "path value timestamp", -1/missing timestamp, fractions, blanks,
 * 1.1 tags sorted into the key, as collectd's write_graphite sends. */
static void test_graphite(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_graphite,
                         "foo.bar.baz 42 1700000000\n"
                         "collectd.host1.cpu-0.cpu-idle 98.5 1700000010\r\n"
                         "x.y\t-1.5e2\t-1\n"
                         "x.y +3\n"
                         "x.z  7   1700000000.25  \n"
                         "disk.used;rack=a1;datacenter=dc1;server=web01 87.5 1700000000\n"
                         "disk.used;server=web01;datacenter=dc1;rack=a1 88 1700000060\n"
                         /* collectd's write_graphite, a rate's first sample */
                         "collectd.host1.if-eth0.if_octets.rx nan 1700000000\n"),
                     0);
    assert_int_equal(n_data(f), 7);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_NAN_VALUES), 1);
    const rf_event *e = data_ev(f, 0);
    assert_int_equal(e->series_id, id_of("foo.bar.baz value"));
    assert_int_equal(e->kind, RF_KIND_GAUGE);
    assert_int_equal(e->value_type, RF_VALUE_F64);
    assert_true(e->value.f64 == 42.0);
    assert_int_equal(e->event_time_ns, 1700000000LL * 1000000000LL);
    assert_int_equal(e->flags, RF_EVF_HAS_CLIENT_TIME);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("collectd.host1.cpu-0.cpu-idle value"));
    assert_true(data_ev(f, 1)->value.f64 == 98.5);
    assert_int_equal(data_ev(f, 1)->event_time_ns, 1700000010LL * 1000000000LL);
    assert_true(data_ev(f, 2)->value.f64 == -150.0);
    assert_int_equal(data_ev(f, 2)->event_time_ns, T_WALL);
    assert_int_equal(data_ev(f, 2)->flags, 0);
    assert_true(data_ev(f, 3)->value.f64 == 3.0);
    assert_int_equal(data_ev(f, 3)->event_time_ns, T_WALL);
    assert_int_equal(data_ev(f, 4)->event_time_ns, 1700000000250000000LL);
    uint64_t du = id_of("disk.used,datacenter=dc1,rack=a1,server=web01 value");
    assert_int_equal(data_ev(f, 5)->series_id, du);
    assert_int_equal(data_ev(f, 6)->series_id, du);
    assert_string_equal(def_text(f, du), "disk.used,datacenter=dc1,rack=a1,server=web01 value");
    assert_int_equal(n_defs(f), 5);

    collected_reset(&f->out);
    assert_int_equal(run(f, rf_parse_graphite,
                         "ok 1\n"
                         "a.b\n"       /* no value */
                         "a.b 1 2 3\n" /* extra token */
                         "a.b x 1700000000\n"
                         "a.b 1 17000x\n"
                         "a.b 1 1700000000.\n"
                         "a.b 1 -5\n"
                         "a.b;tag 1\n" /* tag without '=' */
                         "a.b;=v 1\n"  /* empty tag key */
                         ";t=v 1\n"    /* tags without a path */
                         "a.b;t=1;t=2 1\n"
                         "ok 2\n"),
                     10);
    assert_int_equal(n_data(f), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 5);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_NUMBER), 3);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_OUT_OF_RANGE), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_DUPLICATE_TAG), 1);
    fixture_free(f);
}

/* Graphite templates (Telegraf's graphite input's documented examples):
 * filters, the most specific one winning, greedy parts, the separator,
 * default tags per template and global, Graphite 1.1 tags beside them. */
static void test_graphite_templates(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "*.app env.service.resource.measurement",
        "stats.* .host.measurement* region=eu-east,agent=sensu",
        "stats2.* .host.measurement.field",
        "stats.web9 .host.field",
        "cpu measurement.measurement.field.field.region",
        "measurement*",
    };
    rf_err err = {0};
    rf_graphite_templates *g = rf_graphite_templates_new(specs, 6, "_", "region=global,dc=x", &err);
    assert_non_null(g);
    rf_parse_config cfg = {.source_id = 3, .graphite_templates = g};
    fixture *f = fixture_new(&cfg);
    assert_int_equal(run(f, rf_parse_graphite,
                         "stats.local.cpu.load 5\n"
                         "stats2.web1.mem.free 7\n"
                         "prod.app.cpu.user 3\n"
                         "stats.web9.x 1\n"
                         "cpu.usage.idle.percent.eu-east 2\n"
                         "other.thing 4\n"
                         "stats.local.cpu.load;host=over;zone=a 6\n"
                         "stats.local.cpu.load 8\n"),
                     0);
    assert_int_equal(n_data(f), 8);
    uint64_t load = id_of("cpu_load,agent=sensu,dc=x,host=local,region=eu-east value");
    assert_int_equal(data_ev(f, 0)->series_id, load);
    assert_string_equal(def_text(f, load),
                        "cpu_load,agent=sensu,dc=x,host=local,region=eu-east value");
    assert_true(data_ev(f, 0)->value.f64 == 5.0);
    assert_int_equal(data_ev(f, 1)->series_id, id_of("mem,dc=x,host=web1,region=global free"));
    assert_int_equal(data_ev(f, 2)->series_id,
                     id_of("user,dc=x,env=prod,region=global,resource=cpu,service=app value"));
    /* the exact "stats.web9" before "stats.*"; no measurement named: the path */
    assert_int_equal(data_ev(f, 3)->series_id,
                     id_of("stats.web9.x,dc=x,host=web9,region=global x"));
    /* parts named alike joined by the separator; the path's region wins */
    assert_int_equal(data_ev(f, 4)->series_id, id_of("cpu_usage,dc=x,region=eu-east idle_percent"));
    assert_int_equal(data_ev(f, 5)->series_id, id_of("other_thing,dc=x,region=global value"));
    /* a Graphite 1.1 tag wins over the template's */
    assert_int_equal(data_ev(f, 6)->series_id,
                     id_of("cpu_load,agent=sensu,dc=x,host=over,region=eu-east,zone=a value"));
    assert_int_equal(data_ev(f, 7)->series_id, load); /* the cached path, the same series */
    fixture_free(f);

    /* Without a default, an unmatched path is the measurement; a path shorter
     * than its template leaves the missing names out. */
    static const char *const two[] = {"a.b.* host.measurement.field", "x.* measurement.host"};
    rf_graphite_templates *g2 = rf_graphite_templates_new(two, 2, NULL, NULL, &err);
    assert_non_null(g2);
    cfg.graphite_templates = g2;
    f = fixture_new(&cfg);
    assert_int_equal(run(f, rf_parse_graphite, "a.b.c 1\nq.r 2\nx.h1 3\na.c.d 4\n"), 0);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("b,host=a c"));
    assert_int_equal(data_ev(f, 1)->series_id, id_of("q.r value"));
    assert_int_equal(data_ev(f, 2)->series_id, id_of("x,host=h1 value"));
    assert_int_equal(data_ev(f, 3)->series_id, id_of("a.c.d value"));
    fixture_free(f);
    rf_graphite_templates_free(g2);
    rf_graphite_templates_free(g);
}

/* Templates that cannot work are refused when compiled, with the reason. */
static void test_graphite_template_errors(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"a.field*.b", NULL},
        {"measurement*", "field*"}, /* two defaults */
        {"x.* measurement", "x.* field"},
        {"x.* measurement host", NULL},
        {"x.* measurement a=1 b", NULL},
        {"x..y measurement", NULL},
        {"..", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_err err = {0};
        size_t n = bad[i][1] ? 2 : 1;
        assert_null(rf_graphite_templates_new(bad[i], n, NULL, NULL, &err));
        assert_int_equal(err.code, EINVAL);
        assert_true(strstr(err.msg, "graphite") != NULL);
    }
    rf_err err = {0};
    static const char *const ok[] = {"measurement"};
    assert_null(rf_graphite_templates_new(ok, 1, "", NULL, &err));
    assert_null(rf_graphite_templates_new(ok, 1, NULL, "dc", &err));
}

/* The same series through different protocols keeps protocol-specific raw
 * caching apart but shares canonical ids where the keys coincide. */
static void test_cross_protocol_ids(void **state)
{
    (void)state;
    fixture *f = fx();
    assert_int_equal(run(f, rf_parse_graphite, "cpu;host=a 1\n"), 0);
    assert_int_equal(run(f, rf_parse_influx, "cpu,host=a value=2\n"), 0);
    assert_int_equal(data_ev(f, 0)->series_id, data_ev(f, 1)->series_id);
    assert_int_equal(n_defs(f), 1); /* announced once per context */
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_statsd_metric_types),
        cmocka_unit_test(test_dogstatsd),
        cmocka_unit_test(test_dogstatsd_events_and_checks),
        cmocka_unit_test(test_dogstatsd_container_id),
        cmocka_unit_test(test_statsd_rejects_and_neighbours),
        cmocka_unit_test(test_graphite),
        cmocka_unit_test(test_graphite_templates),
        cmocka_unit_test(test_graphite_template_errors),
        cmocka_unit_test(test_cross_protocol_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
