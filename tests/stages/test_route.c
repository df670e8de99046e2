/* Routing: wildcard table, subject templates, fan-out, critical bit, per-slot
 * cache and its invalidation on reconfiguration. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stages/alert/alert.h"
#include "stages/correlate/correlate.h"
#include "stages/route/route.h"
#include "stages/sink/sink.h"
#include "stage_test_util.h"

static void test_wildcard_table(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *subject;
        bool match;
    } cases[] = {
        {"a.b.c", "a.b.c", true},
        {"a.b.c", "a.b", false},
        {"a.b.c", "a.b.c.d", false},
        {"a.b.c", "a.b.x", false},
        {"a.*.c", "a.b.c", true},
        {"a.*.c", "a.xyz.c", true},
        {"a.*.c", "a.b.d", false},
        {"a.*.c", "a.c", false},
        {"a.*.c", "a.b.b.c", false},
        {"a.>", "a.b", true},
        {"a.>", "a.b.c.d", true},
        {"a.>", "a", false},
        {"a.>", "b.c", false},
        {">", "a", true},
        {">", "a.b.c", true},
        {"*", "a", true},
        {"*", "a.b", false},
        {"*.*", "a.b", true},
        {"*.>", "a", false},
        {"*.>", "a.b", true},
        {"telemetry.*.cpu.>", "telemetry.web1.cpu.usage", true},
        {"telemetry.*.cpu.>", "telemetry.web1.mem.usage", false},
        {"ab.c", "a.c", false},
        {"a.bc", "a.b", false},
        {"health.>", "health.ingest", true},
        {"alert.*", "alert.high_cpu", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = rf_subject_match(cases[i].pattern, cases[i].subject);
        if (got != cases[i].match)
            fail_msg("case %zu: '%s' vs '%s': got %d", i, cases[i].pattern, cases[i].subject, got);
    }
}

static void test_invalid_patterns(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *needle;
    } bad[] = {
        {"a.>.c", "only allowed as the last token"},
        {"a..b", "token 2 is empty"},
        {".a", "token 1 is empty"},
        {"a.", "token 2 is empty"},
        {"", "empty"},
        {"a*", "must be a whole token"},
        {"a.b*.c", "token 2 'b*'"},
        {"a.>b", "must be a whole token"},
        {"a b", "whitespace"},
        {">.a", "only allowed as the last token"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_err err;
        rf_err_clear(&err);
        int rc = rf_subject_pattern_check(bad[i].pattern, &err);
        if (rc != -EINVAL || !strstr(err.msg, bad[i].needle))
            fail_msg("'%s': rc %d msg '%s' (expected '%s')", bad[i].pattern, rc, err.msg,
                     bad[i].needle);
        assert_false(rf_subject_match(bad[i].pattern, "a.b.c"));
    }
    assert_int_equal(rf_subject_pattern_check("a.*.>", NULL), 0);
}

static void test_subject_templates(void **state)
{
    (void)state;
    rf_series_key *k = stage_test_key("cpu,dc=eu\\ west,host=web1.example usage_idle");
    char buf[RF_SUBJECT_MAX];
    assert_int_equal(rf_subject_build("telemetry.{measurement}.{field}", k, buf, NULL),
                     (int)strlen("telemetry.cpu.usage_idle"));
    assert_string_equal(buf, "telemetry.cpu.usage_idle");
    rf_subject_build("telemetry.{host}.{measurement}.{field}", k, buf, NULL);
    assert_string_equal(buf, "telemetry.web1_example.cpu.usage_idle");
    rf_subject_build("t.{dc}.{rack}.{field}", k, buf, NULL);
    assert_string_equal(buf, "t.eu_west._.usage_idle");
    rf_err err;
    assert_int_equal(rf_subject_build("t.{measurement", k, buf, &err), -EINVAL);
    assert_int_equal(rf_subject_build("t.*.{field}", k, buf, &err), -EINVAL);

    char v[32];
    assert_int_equal(rf_series_key_tag(k, "dc", v, sizeof(v)), 7);
    assert_string_equal(v, "eu west");
    assert_int_equal(rf_series_key_tag(k, "nope", v, sizeof(v)), -1);

    rf_series_matcher m = {.measurement = "cp*", .field = "usage_*", .n_tags = 1};
    m.tags[0].key = "host";
    m.tags[0].value = "web*";
    assert_true(rf_series_matcher_match(&m, k));
    m.tags[0].value = "db*";
    assert_false(rf_series_matcher_match(&m, k));
    rf_series_key_free(k);
}

static const char *const sink_names[] = {"store", "json", "fwd", "pager"};

static rf_router *mk_router(const rf_route_config *routes, uint32_t n, const char *tmpl)
{
    rf_router_config cfg = {.routes = routes,
                            .n_routes = n,
                            .sink_names = sink_names,
                            .n_sink_names = 4,
                            .data_template = tmpl};
    rf_router *r = NULL;
    rf_err err;
    if (rf_router_new(&cfg, 1024, &r, &err) != 0)
        fail_msg("router: %s", err.msg);
    return r;
}

static void test_fanout_and_critical(void **state)
{
    (void)state;
    static const char *const s_store[] = {"store"};
    static const char *const s_json_fwd[] = {"json", "fwd"};
    static const char *const s_pager[] = {"pager", "json"};
    rf_route_config routes[] = {
        {.name = "all", .pattern = "telemetry.>", .sinks = s_store, .n_sinks = 1},
        {.name = "cpu", .pattern = "telemetry.*.cpu.*", .sinks = s_json_fwd, .n_sinks = 2},
        {.name = "hot",
         .pattern = "telemetry.db1.cpu.>",
         .sinks = s_pager,
         .n_sinks = 2,
         .cls = RF_ROUTE_CRITICAL},
        {.name = "alerts",
         .pattern = "alert.>",
         .sinks = s_pager,
         .n_sinks = 1,
         .cls = RF_ROUTE_CRITICAL},
    };
    rf_router *r = mk_router(routes, 4, "telemetry.{host}.{measurement}.{field}");
    rf_series_key *k0 = stage_test_key("cpu,host=web1 usage");
    rf_series_key *k1 = stage_test_key("cpu,host=db1 usage");
    rf_series_key *k2 = stage_test_key("mem,host=web1 free");
    rf_series_key *k3 = stage_test_key("disk free");
    rf_router_define(r, 0, k0);
    rf_router_define(r, 1, k1);
    rf_router_define(r, 2, k2);
    rf_router_define(r, 3, k3);
    const char *const rules[] = {"high_cpu"};
    assert_int_equal(rf_router_bind_names(r, RF_SUBJ_ALERT, rules, 1, NULL), 0);

    rf_event ev[6];
    memset(ev, 0, sizeof(ev));
    int32_t slots[6] = {0, 1, 2, 3, 0, 77};
    ev[4].kind = RF_KIND_ALERT;
    ev[4].aux = 0;
    assert_int_equal(rf_router_route_batch(r, ev, slots, 6), 2);

    const rf_route_set *s0 = rf_router_set(r, ev[0].route_hint);
    assert_int_equal(s0->n_sinks, 3); /* store, json, fwd */
    assert_int_equal(s0->n_critical, 0);
    assert_int_equal(s0->flags & RF_ROUTESET_CRITICAL, 0);

    const rf_route_set *s1 = rf_router_set(r, ev[1].route_hint);
    assert_int_equal(s1->n_sinks, 4);
    assert_int_equal(s1->n_critical, 2); /* json reached by both classes: critical wins */
    assert_int_equal(s1->sinks[0], 1);   /* json */
    assert_int_equal(s1->sinks[1], 3);   /* pager */
    assert_true(s1->flags & RF_ROUTESET_CRITICAL);

    const rf_route_set *s2 = rf_router_set(r, ev[2].route_hint);
    assert_int_equal(s2->n_sinks, 1);
    assert_int_equal(s2->sinks[0], 0);
    /* "disk free" has no host tag: telemetry._.disk.free still matches telemetry.> */
    assert_int_equal(ev[3].route_hint, ev[2].route_hint);
    const rf_route_set *s4 = rf_router_set(r, ev[4].route_hint);
    assert_int_equal(s4->n_sinks, 1);
    assert_int_equal(s4->sinks[0], 3);
    assert_int_equal(ev[5].route_hint, RF_ROUTE_SET_NONE);

    rf_router_stats st;
    rf_router_stats_read(r, &st);
    assert_int_equal(st.sets,
                     5); /* empty, {store,json,fwd}, {json,pager,store,fwd}, {store}, {pager} */
    assert_int_equal(st.routed, 5);
    assert_int_equal(st.unrouted, 1);
    assert_int_equal(st.no_key, 1);
    uint64_t resolved = st.resolved;

    /* Routing again is a cache hit: nothing resolved. */
    rf_router_route_batch(r, ev, slots, 4);
    rf_router_stats_read(r, &st);
    assert_int_equal(st.resolved, resolved);

    int64_t h = rf_router_resolve_subject(r, "health.ingest");
    assert_int_equal(h, RF_ROUTE_SET_NONE);

    rf_router_free(r);
    rf_series_key_free(k0);
    rf_series_key_free(k1);
    rf_series_key_free(k2);
    rf_series_key_free(k3);
}

static const rf_series_key *g_keys[4];
static const rf_series_key *key_of(void *ctx, int32_t slot)
{
    (void)ctx;
    return slot >= 0 && slot < 4 ? g_keys[slot] : NULL;
}

static void test_reconfigure_invalidates(void **state)
{
    (void)state;
    static const char *const s_store[] = {"store"};
    static const char *const s_pager[] = {"pager"};
    rf_route_config before[] = {{.pattern = "telemetry.>", .sinks = s_store, .n_sinks = 1}};
    rf_router *r = mk_router(before, 1, NULL);
    rf_series_key *k = stage_test_key("cpu,host=a usage");
    g_keys[0] = k;
    rf_router_set_key_source(r, key_of, NULL);

    rf_event ev = {0};
    int32_t slot = 0;
    rf_router_route_batch(r, &ev, &slot, 1); /* resolves lazily through key_of */
    assert_int_equal(rf_router_set(r, ev.route_hint)->sinks[0], 0);

    rf_route_config after[] = {
        {.pattern = "telemetry.cpu.*", .sinks = s_pager, .n_sinks = 1, .cls = RF_ROUTE_CRITICAL}};
    rf_router_config cfg = {
        .routes = after, .n_routes = 1, .sink_names = sink_names, .n_sink_names = 4};
    assert_int_equal(rf_router_reconfigure(r, &cfg, NULL), 0);
    assert_int_equal(rf_router_route_batch(r, &ev, &slot, 1), 1);
    const rf_route_set *s = rf_router_set(r, ev.route_hint);
    assert_int_equal(s->sinks[0], 3);
    assert_true(s->flags & RF_ROUTESET_CRITICAL);

    /* A bad configuration is refused and the old one stays. */
    static const char *const s_unknown[] = {"nowhere"};
    rf_route_config bad[] = {{.name = "x", .pattern = "a.*", .sinks = s_unknown, .n_sinks = 1}};
    cfg.routes = bad;
    rf_err err;
    assert_int_equal(rf_router_reconfigure(r, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "unknown sink 'nowhere'"));
    rf_route_config bad2[] = {{.name = "y", .pattern = "a.>.b", .sinks = s_store, .n_sinks = 1}};
    cfg.routes = bad2;
    assert_int_equal(rf_router_reconfigure(r, &cfg, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "route 0 (y)"));
    assert_int_equal(rf_router_route_batch(r, &ev, &slot, 1), 1);

    rf_router_free(r);
    rf_series_key_free(k);
}


static const char pipeline_yaml[] =
    "pipeline:\n"                                                                       /* 1 */
    "  subjects: {data: \"telemetry.{host}.{measurement}.{field}\"}\n"                  /* 2 */
    "  sinks:\n"                                                                        /* 3 */
    "    - {name: store, type: count_only}\n"                                           /* 4 */
    "    - {name: events, type: json, path: \"-\", buffer: 64KiB}\n"                    /* 5 */
    "    - name: fwd\n"                                                                 /* 6 */
    "      type: lp_tcp\n"                                                              /* 7 */
    "      host: 127.0.0.1\n"                                                           /* 8 */
    "      port: 8086\n"                                                                /* 9 */
    "      backoff: {base: 50ms, max: 10s}\n"                                           /* 10 */
    "      breaker: {failures: 3, cooldown: 5s}\n"                                      /* 11 */
    "  routes:\n"                                                                       /* 12 */
    "    - {name: all, subject: \"telemetry.>\", sinks: [store]}\n"                     /* 13 */
    "    - {name: page, subject: \"alert.>\", sinks: [events, fwd], class: critical}\n" /* 14 */
    "  correlation:\n"                                                                  /* 15 */
    "    id: {capacity: 500, ttl: 10m}\n"                                               /* 16 */
    "    patterns:\n"                                                                   /* 17 */
    "      - name: fail_then_ok\n"                                                      /* 18 */
    "        type: sequence\n"                                                          /* 19 */
    "        first: {measurement: auth, field: failed}\n"                               /* 20 */
    "        then: {measurement: auth, field: ok}\n"                                    /* 21 */
    "        key: host\n"                                                               /* 22 */
    "        within: 60s\n"                                                             /* 23 */
    "      - {name: burst, type: burst, match: {measurement: errors}, count: 5, within: 10s}\n"
    "  alerts:\n"                                                    /* 25 */
    "    - name: high_cpu\n"                                         /* 26 */
    "      match: {measurement: cpu, tags: {host: \"web*\"}}\n"      /* 27 */
    "      op: \">\"\n"                                              /* 28 */
    "      fire: 90\n"                                               /* 29 */
    "      resolve: 80\n"                                            /* 30 */
    "      for: 30s\n"                                               /* 31 */
    "    - {name: silent, type: absence, absent: 1m, scope: any}\n"; /* 32 */

/* Parses the pipeline sections of `yaml` in dependency order (sinks, routes,
 * router, correlation, alerts). Returns 0 or the first error. */
static int parse_pipeline(const char *yaml, rf_err *err)
{
    rf_cfg_doc *doc;
    int rc = rf_cfg_load_string(yaml, strlen(yaml), "<test>", &doc, err);
    if (rc)
        return rc;
    const rf_cfg_node *pl;
    rf_sink_configs sinks = {0};
    rf_router_config_parsed routes = {0};
    rf_correlator_config_parsed corr = {0};
    rf_alerts_config_parsed alerts = {0};
    rf_router *router = NULL;
    if ((rc = rf_cfg_map(rf_cfg_root(doc), "pipeline", &pl, err)) ||
        (rc = rf_sink_configs_parse(pl, &sinks, err)) ||
        (rc = rf_router_config_parse(pl, sinks.names, sinks.n, &routes, err)) ||
        (rc = rf_router_new(&routes.cfg, 16, &router, err)) ||
        (rc = rf_correlator_config_parse(pl, &corr, err)) ||
        (rc = rf_alerts_config_parse(pl, router, &alerts, err)) ||
        (rc = rf_cfg_check_unknown_keys(doc, err)))
        goto out;
    /* The parsed configuration is what the stages take. */
    assert_int_equal(sinks.n, 3);
    assert_int_equal(sinks.sinks[2].type, RF_SINK_LP_TCP);
    assert_int_equal(sinks.sinks[2].port, 8086);
    assert_int_equal(sinks.sinks[2].backoff_base_ns, 50 * 1000000LL);
    assert_int_equal(sinks.sinks[2].breaker_failures, 3);
    assert_int_equal(routes.cfg.n_routes, 2);
    assert_int_equal(routes.routes[1].cls, RF_ROUTE_CRITICAL);
    assert_int_equal(corr.cfg.id_capacity, 500);
    assert_int_equal(corr.cfg.id_ttl_ns, 600 * 1000000000LL);
    assert_int_equal(corr.cfg.n_patterns, 2);
    assert_int_equal(corr.patterns[1].count, 5);
    assert_int_equal(alerts.cfg.n_rules, 2);
    assert_true(alerts.rules[0].has_resolve && alerts.rules[0].resolve == 80);
    assert_int_equal(alerts.rules[0].for_ns, 30 * 1000000000LL);
    assert_true(alerts.rules[1].absence_any);
    rf_correlator *c;
    assert_int_equal(rf_correlator_new(&corr.cfg, 16, (rf_emitter){0}, &c, NULL), 0);
    rf_correlator_free(c);
    rf_alerts *a;
    assert_int_equal(rf_alerts_new(&alerts.cfg, 16, (rf_emitter){0}, &a, NULL), 0);
    rf_alerts_free(a);
out:
    rf_router_free(router);
    rf_alerts_config_release(&alerts);
    rf_correlator_config_release(&corr);
    rf_router_config_release(&routes);
    rf_sink_configs_release(&sinks);
    rf_cfg_free(doc);
    return rc;
}

/* The good document with line `line` (1-based) replaced. */
static char *with_line(int line, const char *replacement)
{
    static char buf[4096];
    const char *p = pipeline_yaml;
    size_t o = 0;
    for (int l = 1; *p; l++) {
        const char *nl = strchr(p, '\n');
        size_t len = (size_t)(nl - p) + 1;
        if (l == line)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s\n", replacement);
        else
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%.*s", (int)len, p);
        p += len;
    }
    return buf;
}

static void test_pipeline_config(void **state)
{
    (void)state;
    rf_err err;
    rf_err_clear(&err);
    if (parse_pipeline(pipeline_yaml, &err) != 0)
        fail_msg("good pipeline rejected: %s", err.msg);
    static const struct {
        int line;
        const char *text, *needle;
    } bad[] = {
        {13, "    - {name: all, subject: \"telemetry.>.x\", sinks: [store]}", "<test>:13:"},
        {13, "    - {name: all, subject: \"tele*\", sinks: [store]}", "must be a whole token"},
        {13, "    - {name: all, subject: \"a..b\", sinks: [store]}", "token 2 is empty"},
        {14, "    - {name: page, subject: \"alert.>\", sinks: [events, pager]}",
         "<test>:14:56: pipeline.routes[1].sinks[1]: unknown sink 'pager' (sinks: store, events, "
         "fwd)"},
        {28, "      op: \"=>\"", "<test>:28:"},
        {30, "      resolve: 95", "hysteresis"},
        {14, "    - {name: page, subject: \"alert.silent\", sinks: [events]}",
         "alert rule 'high_cpu' references no route or sink"},
        {7, "      type: lp_sctp", "<test>:7:"},
        {19, "        type: seq", "<test>:19:"},
        {2, "  subjects: {data: \"telemetry.{host\"}", "<test>:2:"},
        {16, "    id: {capacity: 500, ttl: 10m, colour: blue}", "colour"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_err_clear(&err);
        int rc = parse_pipeline(with_line(bad[i].line, bad[i].text), &err);
        if (rc == 0 || !strstr(err.msg, bad[i].needle))
            fail_msg("case %zu: rc %d, message '%s' lacks '%s'", i, rc, err.msg, bad[i].needle);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wildcard_table),          cmocka_unit_test(test_invalid_patterns),
        cmocka_unit_test(test_subject_templates),       cmocka_unit_test(test_fanout_and_critical),
        cmocka_unit_test(test_reconfigure_invalidates), cmocka_unit_test(test_pipeline_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
