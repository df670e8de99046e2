/* The pipeline's YAML: the `pipeline` section (sinks, routes, rules,
 * correlation, aggregations, batching, cardinality limits) parsed into
 * rf_pipeline_settings, which a shard's pipeline is then built from. */
#include "stages/pipeline/pipeline.h"
#include "stages/pipeline/pipeline_pvt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

/* The router configuration points into the settings struct itself (its
 * templates and the sink names); settings are copied by value, so every use
 * rebuilds those pointers from the copy at hand. */
rf_router_config rf_pipeline_router_config(const rf_pipeline_settings *ps)
{
    rf_router_config cfg = ps->routes.cfg;
    cfg.sink_names = (const char *const *)ps->sinks.names;
    cfg.data_template = ps->routes.data_template;
    cfg.aggregate_template = ps->routes.aggregate_template;
    return cfg;
}

void rf_pipeline_settings_release(rf_pipeline_settings *ps)
{
    rf_alerts_config_release(&ps->alerts);
    rf_correlator_config_release(&ps->correlation);
    rf_router_config_release(&ps->routes);
    rf_agg_config_release(&ps->aggregation);
    rf_sink_configs_release(&ps->sinks);
    free(ps->overrides);
    memset(ps, 0, sizeof(*ps));
}

/* Sinks and routes when the configuration names none: the same as the
 * embedded default (daemon/default_config.yaml), so leaving the section out
 * stores everything rather than routing nothing. */
static const char k_default_routing[] =
    "pipeline:\n"
    "  sinks:\n"
    "    - {name: store, type: store}\n"
    "    - {name: alerts, type: json, path: \"%s/alerts.jsonl\"}\n"
    "  routes:\n"
    "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n"
    "    - {name: aggregates, subject: \"aggregate.>\", sinks: [store]}\n"
    "    - {name: alerts, subject: \"alert.>\", sinks: [alerts], class: critical}\n"
    "    - {name: correlated, subject: \"correlated.>\", sinks: [alerts], class: critical}\n";

/* max_series_per_measurement and cardinality_overrides (per shard, like
 * max_series). A limit above max_series could never apply: refused, so that
 * the file says what the daemon does. Override names are matched against the
 * canonical measurement text, hashed here once. */
static int parse_cardinality(const rf_cfg_node *pipeline, rf_pipeline_settings *ps, rf_err *err)
{
    int rc;
    const rf_cfg_node *seq = NULL;
    if ((rc = rf_cfg_u32(pipeline, "max_series_per_measurement", 0, 1u << 26, 0,
                         &ps->limits.max_per_measurement, err)) < 0)
        return rc;
    if (ps->limits.max_per_measurement > ps->max_series)
        return rf_cfg_fail_key(pipeline, "max_series_per_measurement", err,
                               "%u is more than max_series (%u), so it would never apply: both "
                               "are per worker; use a value up to max_series, or 0 for no limit",
                               ps->limits.max_per_measurement, ps->max_series);
    if ((rc = rf_cfg_seq(pipeline, "cardinality_overrides", 0,
                         RF_PIPELINE_MAX_CARDINALITY_OVERRIDES, &seq, err)) < 0)
        return rc;
    size_t n = rf_cfg_seq_len(seq);
    if (n == 0)
        return 0;
    ps->overrides = calloc(n, sizeof(*ps->overrides));
    if (!ps->overrides)
        return rf_err_set(err, ENOMEM, "pipeline.cardinality_overrides: out of memory");
    for (size_t i = 0; i < n; i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        char name[256], canon[512];
        uint32_t max = 0;
        if ((rc = rf_cfg_require(item, "measurement", err)) < 0 ||
            (rc = rf_cfg_str(item, "measurement", 1, "", name, sizeof(name), err)) < 0 ||
            (rc = rf_cfg_require(item, "max_series", err)) < 0 ||
            (rc = rf_cfg_u32(item, "max_series", 0, 1u << 26, 0, &max, err)) < 0)
            return rc;
        if (max > ps->max_series)
            return rf_cfg_fail_key(item, "max_series", err,
                                   "%u is more than pipeline.max_series (%u), so it would never "
                                   "apply: use a value up to max_series, or 0 for no limit",
                                   max, ps->max_series);
        int len = rf_series_measurement_canon(name, canon, sizeof(canon));
        if (len < 0)
            return rf_cfg_fail_key(item, "measurement", err, "measurement name too long");
        uint64_t h = rf_series_measurement_hash(canon, (size_t)len);
        for (size_t j = 0; j < i; j++)
            if (ps->overrides[j].hash == h)
                return rf_cfg_fail_key(item, "measurement", err,
                                       "measurement '%s' already has an override (item %zu)", name,
                                       j);
        ps->overrides[i] = (rf_series_limit_override){h, max};
    }
    ps->limits.n_overrides = (uint32_t)n;
    ps->limits.overrides = ps->overrides;
    return 0;
}

int rf_pipeline_settings_parse(const rf_cfg_node *root, const char *data_dir,
                               rf_pipeline_settings *out, rf_err *err)
{
    rf_pipeline_settings ps;
    memset(&ps, 0, sizeof(ps));
    rf_router *probe = NULL;
    const rf_cfg_node *pipeline = NULL, *batch = NULL;
    uint64_t interval = 0;
    int rc;
    if ((rc = rf_cfg_map(root, "pipeline", &pipeline, err)) < 0)
        return rc;
    /* `auto` (and left out): the most that fits engine.memory_limit, found
     * once every section is parsed (rf_memory_budget_resolve). */
    const rf_cfg_node *ms = rf_cfg_get(pipeline, "max_series");
    ps.max_series_auto = !ms || (rf_cfg_scalar(ms) && strcmp(rf_cfg_scalar(ms), "auto") == 0);
    ps.max_series = RF_PIPELINE_DEFAULT_MAX_SERIES;
    if (!ps.max_series_auto &&
        (rc = rf_cfg_u32(pipeline, "max_series", 1, 1u << 26, RF_PIPELINE_DEFAULT_MAX_SERIES,
                         &ps.max_series, err)) < 0)
        return rc;
    if ((rc = rf_cfg_map(pipeline, "batch", &batch, err)) < 0 ||
        (rc = rf_cfg_u32(batch, "max_events", 1, RF_BATCH_MAX_EVENTS, RF_BATCH_DEFAULT_MAX_EVENTS,
                         &ps.batch.max_events, err)) < 0 ||
        (rc = rf_cfg_duration(batch, "interval", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              (uint64_t)RF_BATCH_DEFAULT_INTERVAL_NS, &interval, err)) < 0)
        return rc;
    ps.batch.interval_ns = (int64_t)interval;
    /* Idle series expire (issue 24); 0 keeps every series until restart. */
    uint64_t ttl = 0;
    if ((rc = rf_cfg_duration(pipeline, "series_idle_ttl", 0, 365ull * 86400 * RF_NS_PER_S,
                              (uint64_t)RF_PIPELINE_DEFAULT_SERIES_IDLE_TTL_NS, &ttl, err)) < 0)
        return rc;
    ps.series_idle_ttl_ns = (int64_t)ttl;
    if ((rc = parse_cardinality(pipeline, &ps, err)) < 0)
        goto fail;

    /* Sinks and routes fall back to the documented defaults when left out:
     * routes alone use the default sinks (store, alerts); sinks alone are an
     * error (no route would reach them). */
    {
        bool own_sinks = rf_cfg_has(pipeline, "sinks"), own_routes = rf_cfg_has(pipeline, "routes");
        if (own_sinks && !own_routes) {
            rc = rf_cfg_fail_key(
                pipeline, "sinks", err,
                "sinks are configured but no routes, so nothing would reach them: "
                "add pipeline.routes, e.g. [{subject: \"telemetry.>\", sinks: [...]}]");
            goto fail;
        }
        rf_cfg_doc *def = NULL;
        const rf_cfg_node *dp = NULL;
        if (!own_sinks || !own_routes) {
            char text[sizeof(k_default_routing) + 4200];
            int tlen = snprintf(text, sizeof(text), k_default_routing, data_dir);
            if ((rc = rf_cfg_load_string(text, (size_t)tlen, "<default routing>", &def, err)) < 0)
                goto fail;
            if ((rc = rf_cfg_map(rf_cfg_root(def), "pipeline", &dp, err)) < 0) {
                rf_cfg_free(def);
                goto fail;
            }
        }
        rc = rf_sink_configs_parse(own_sinks ? pipeline : dp, &ps.sinks, err);
        if (rc == 0)
            rc = rf_router_config_parse(own_routes ? pipeline : dp, ps.sinks.names, ps.sinks.n,
                                        &ps.routes, err);
        if (def) {
            rf_cfg_free(def);
            /* The user's absent sections are still declared known. */
            if (!own_sinks)
                rf_cfg_mark_known(pipeline, "sinks");
            if (!own_routes)
                rf_cfg_mark_known(pipeline, "routes");
            if (!own_routes)
                rf_cfg_mark_known(pipeline, "subjects");
        }
        if (rc < 0)
            goto fail;
    }
    /* Alert rules are checked against the routes (a rule nobody routes is an
     * error), which needs a router built from them. */
    const rf_router_config probe_cfg = rf_pipeline_router_config(&ps);
    if ((rc = rf_router_new(&probe_cfg, 1, &probe, err)) < 0)
        goto fail;
    if ((rc = rf_alerts_config_parse(pipeline, probe, &ps.alerts, err)) < 0)
        goto fail;
    /* A per-series absence must fire before its series expires: the expiry
     * drops the rule's state of the series (pipeline.h "Series lifecycle"). */
    for (uint32_t i = 0; ps.series_idle_ttl_ns && i < ps.alerts.cfg.n_rules; i++) {
        const rf_alert_rule_config *r = &ps.alerts.cfg.rules[i];
        if (r->type == RF_ALERT_ABSENCE && !r->absence_any &&
            r->absent_ns >= ps.series_idle_ttl_ns) {
            rc = rf_cfg_fail_key(pipeline, "series_idle_ttl", err,
                                 "alert rule %s: absent (%.0f s) must be shorter than "
                                 "series_idle_ttl (%.0f s), or the series expires before the "
                                 "rule can fire: lengthen series_idle_ttl or shorten absent",
                                 r->name, (double)r->absent_ns / 1e9,
                                 (double)ps.series_idle_ttl_ns / 1e9);
            goto fail;
        }
    }
    if ((rc = rf_correlator_config_parse(pipeline, &ps.correlation, err)) < 0)
        goto fail;
    if ((rc = rf_aggregate_config_parse(pipeline, &ps.aggregation, err)) < 0)
        goto fail;
    for (uint32_t r = 0; r < ps.aggregation.n_rules; r++) {
        const char *to = ps.aggregation.rules[r].partials_to;
        uint32_t j = 0;
        while (to[0] && j < ps.sinks.n && strcmp(ps.sinks.names[j], to) != 0)
            j++;
        if (to[0] && (j == ps.sinks.n || ps.sinks.sinks[j].type == RF_SINK_STORE ||
                      ps.sinks.sinks[j].type == RF_SINK_JSON ||
                      ps.sinks.sinks[j].type == RF_SINK_COUNT_ONLY)) {
            rc = rf_cfg_fail_key(pipeline, "aggregations", err,
                                 "aggregation rule %u: partials.to '%s' is not a line-protocol "
                                 "sink of pipeline.sinks (nats, lp_tcp, ...)",
                                 r, to);
            goto fail;
        }
    }
    if ((rc = rf_statsd_config_parse(pipeline, &ps.statsd, err)) < 0)
        goto fail;
    rf_router_free(probe);
    *out = ps;
    return 0;
fail:
    rf_router_free(probe);
    rf_pipeline_settings_release(&ps);
    return rc;
}
