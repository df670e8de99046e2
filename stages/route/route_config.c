/* Parsing pipeline.subjects and pipeline.routes from the YAML configuration.
 * Control thread only. */
#include "stages/route/route.h"
#include "stages/match/match.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rf_router_config_release(rf_router_config_parsed *p)
{
    for (uint32_t i = 0; p->routes && i < p->cfg.n_routes; i++) {
        rf_route_config *r = &p->routes[i];
        free((char *)r->name);
        free((char *)r->pattern);
        for (uint32_t j = 0; j < r->n_sinks; j++)
            free((char *)r->sinks[j]);
        free((void *)r->sinks);
    }
    free(p->routes);
    memset(p, 0, sizeof(*p));
}

static int parse_route(const rf_cfg_node *item, const char *const *sink_names, uint32_t n_sinks,
                       rf_route_config *r, rf_err *err)
{
    char *name = NULL, *pattern = NULL;
    int rc = rf_cfg_strdup_key(item, "name", false, &name, err);
    r->name = name;
    if (!rc)
        rc = rf_cfg_strdup_key(item, "subject", true, &pattern, err);
    r->pattern = pattern;
    if (rc)
        return rc;
    rf_err perr;
    rf_err_clear(&perr);
    if (rf_subject_pattern_check(pattern, &perr) != 0)
        return rf_cfg_fail(rf_cfg_get(item, "subject"), err, "%s", perr.msg);
    static const char *const classes[] = {"standard", "critical"};
    int cls = 0;
    rc = rf_cfg_enum(item, "class", classes, 2, 0, &cls, err);
    if (rc)
        return rc;
    r->cls = cls ? RF_ROUTE_CRITICAL : RF_ROUTE_STANDARD;
    const rf_cfg_node *sinks;
    rc = rf_cfg_seq(item, "sinks", 1, RF_ROUTER_MAX_SINKS, &sinks, err);
    if (rc)
        return rc;
    size_t n = rf_cfg_seq_len(sinks);
    const char **list = calloc(n, sizeof(char *));
    if (!list)
        return rf_err_set(err, ENOMEM, "config: out of memory");
    r->sinks = list;
    for (size_t i = 0; i < n; i++) {
        const rf_cfg_node *sn = rf_cfg_seq_at(sinks, i);
        char buf[RF_SUBJECT_MAX];
        rc = rf_cfg_node_str(sn, 1, buf, sizeof(buf), err);
        if (rc)
            return rc;
        uint32_t k = 0;
        while (k < n_sinks && strcmp(sink_names[k], buf) != 0)
            k++;
        if (k == n_sinks) {
            char known[512] = "";
            size_t o = 0;
            for (uint32_t j = 0; j < n_sinks && o < sizeof(known); j++)
                o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", j ? ", " : "",
                                      sink_names[j]);
            return rf_cfg_fail(sn, err, "unknown sink '%s' (sinks: %s)", buf,
                               n_sinks ? known : "none defined");
        }
        if (!(list[i] = strdup(buf)))
            return rf_err_set(err, ENOMEM, "config: out of memory");
        r->n_sinks = (uint32_t)i + 1;
    }
    return 0;
}

int rf_router_config_parse(const rf_cfg_node *pipeline, const char *const *sink_names,
                           uint32_t n_sinks, rf_router_config_parsed *out, rf_err *err)
{
    memset(out, 0, sizeof(*out));
    const rf_cfg_node *subjects, *routes;
    int rc = rf_cfg_map(pipeline, "subjects", &subjects, err);
    if (!rc)
        rc = rf_cfg_str(subjects, "data", 1, "telemetry.{measurement}.{field}", out->data_template,
                        sizeof(out->data_template), err);
    if (!rc)
        rc = rf_cfg_str(subjects, "aggregate", 1, "aggregate.{measurement}.{field}",
                        out->aggregate_template, sizeof(out->aggregate_template), err);
    if (rc)
        return rc;
    /* Templates are checked by building a subject from a sample key. */
    static const char sample[] = "m,host=h f";
    rf_series_key *k = rf_series_key_new(sample, sizeof(sample) - 1, 1, sizeof(sample) - 2);
    if (!k)
        return rf_err_set(err, ENOMEM, "config: out of memory");
    const char *keys[2] = {"data", "aggregate"};
    const char *tmpls[2] = {out->data_template, out->aggregate_template};
    for (int i = 0; i < 2 && !rc; i++) {
        char buf[RF_SUBJECT_MAX];
        rf_err terr;
        rf_err_clear(&terr);
        if (rf_subject_build(tmpls[i], k, buf, &terr) < 0)
            rc = rf_cfg_fail(rf_cfg_get(subjects, keys[i]), err, "%s", terr.msg);
    }
    rf_series_key_free(k);
    if (rc)
        return rc;
    rc = rf_cfg_seq(pipeline, "routes", 0, RF_ROUTER_MAX_ROUTES, &routes, err);
    if (rc)
        return rc;
    size_t n = rf_cfg_seq_len(routes);
    out->routes = calloc(n ? n : 1, sizeof(rf_route_config));
    if (!out->routes)
        return rf_err_set(err, ENOMEM, "config: out of memory");
    for (size_t i = 0; i < n; i++) {
        out->cfg.n_routes = (uint32_t)i + 1;
        rc = parse_route(rf_cfg_seq_at(routes, i), sink_names, n_sinks, &out->routes[i], err);
        if (rc) {
            rf_router_config_release(out);
            return rc;
        }
    }
    out->cfg.routes = out->routes;
    out->cfg.n_routes = (uint32_t)n;
    out->cfg.sink_names = sink_names;
    out->cfg.n_sink_names = n_sinks;
    out->cfg.data_template = out->data_template;
    out->cfg.aggregate_template = out->aggregate_template;
    return 0;
}
