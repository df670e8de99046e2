/* The `pipeline.aggregation` settings and `pipeline.aggregations` rules of the
 * YAML configuration (format in aggregate.h). Control thread only. */
#include "stages/aggregate/aggregate.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "stages/sketch/sketch.h"

static const char *const late_names[] = {"drop", "current"};

static int parse_settings(const rf_cfg_node *pipeline, rf_agg_config *c, rf_err *err)
{
    const rf_cfg_node *s;
    uint64_t ns;
    int late, rc;
    if ((rc = rf_cfg_map(pipeline, "aggregation", &s, err)) < 0)
        return rc;
    if ((rc = rf_cfg_duration(s, "allowed_lateness", 0, 86400ull * RF_NS_PER_S, 0, &ns, err)) < 0)
        return rc;
    c->allowed_lateness_ns = (int64_t)ns;
    if ((rc = rf_cfg_duration(s, "idle_grace", 0, 86400ull * RF_NS_PER_S, RF_NS_PER_S, &ns, err)) <
        0)
        return rc;
    c->idle_grace_ns = (int64_t)ns;
    if ((rc = rf_cfg_enum(s, "late_events", late_names, 2, RF_AGG_LATE_DROP, &late, err)) < 0)
        return rc;
    c->late_policy = (uint8_t)late;
    if ((rc = rf_cfg_u32(s, "max_states", 0, 1u << 30, 0, &c->max_states, err)) < 0 ||
        (rc = rf_cfg_u32(s, "max_pending", 1, 1u << 26, 65536, &c->max_pending, err)) < 0 ||
        (rc = rf_cfg_u32(s, "max_sketches", 1, 1u << 24, 4096, &c->max_sketches, err)) < 0 ||
        (rc = rf_cfg_u32(s, "max_sets", 1, 1u << 24, 4096, &c->max_sets, err)) < 0 ||
        (rc = rf_cfg_double(s, "sketch_alpha", 0.0001, 0.25, RF_DDSKETCH_DEFAULT_ALPHA,
                            &c->sketch_alpha, err)) < 0 ||
        (rc = rf_cfg_u32(s, "sketch_bins", 16, RF_DDSKETCH_MAX_BINS, RF_DDSKETCH_DEFAULT_BINS,
                         &c->sketch_bins, err)) < 0 ||
        (rc = rf_cfg_u32(s, "edge_id", 0, 63, 0, &c->edge_id, err)) < 0 ||
        (rc = rf_cfg_u32(s, "remote_edges", 0, 64, 0, &c->remote_edges, err)) < 0 ||
        (rc = rf_cfg_duration(s, "remote_wait", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              10ull * RF_NS_PER_S, &ns, err)) < 0)
        return rc;
    c->remote_wait_ns = (int64_t)ns;
    return 0;
}

static int parse_rule(const rf_cfg_node *item, rf_agg_rule *r, rf_err *err)
{
    int rc;
    uint64_t ns;
    const rf_cfg_node *fns, *gb;
    if ((rc = rf_cfg_require(item, "measurement", err)) < 0 ||
        (rc = rf_cfg_str(item, "measurement", 1, "", r->measurement, RF_AGG_NAME_MAX, err)) < 0 ||
        (rc = rf_cfg_str(item, "field", 1, "*", r->field, RF_AGG_NAME_MAX, err)) < 0 ||
        (rc = rf_cfg_require(item, "window", err)) < 0 ||
        (rc = rf_cfg_duration(item, "window", RF_NS_PER_MS, 7ull * 86400 * RF_NS_PER_S, 0, &ns,
                              err)) < 0)
        return rc;
    r->window_ns = (int64_t)ns;
    if ((rc = rf_cfg_require(item, "functions", err)) < 0 ||
        (rc = rf_cfg_seq(item, "functions", 1, RF_AGG_MAX_FUNCS, &fns, err)) < 0)
        return rc;
    r->n_funcs = (uint32_t)rf_cfg_seq_len(fns);
    for (uint32_t i = 0; i < r->n_funcs; i++) {
        const rf_cfg_node *f = rf_cfg_seq_at(fns, i);
        const char *name = rf_cfg_scalar(f);
        if (!name || rf_agg_func_parse(name, &r->funcs[i]) < 0)
            return rf_cfg_fail(f, err, "unknown aggregation function '%s' (accepted: %s)",
                               name ? name : "", RF_AGG_FUNC_NAMES);
        for (uint32_t j = 0; j < i; j++)
            if (r->funcs[j].fn == r->funcs[i].fn && r->funcs[j].q == r->funcs[i].q)
                return rf_cfg_fail(f, err, "function '%s' listed twice", name);
    }
    if ((rc = rf_cfg_seq(item, "group_by", 0, RF_AGG_MAX_GROUP_BY, &gb, err)) < 0)
        return rc;
    r->n_group_by = (uint32_t)rf_cfg_seq_len(gb);
    for (uint32_t i = 0; i < r->n_group_by; i++)
        if ((rc = rf_cfg_node_str(rf_cfg_seq_at(gb, i), 1, r->group_by[i], RF_AGG_NAME_MAX, err)) <
            0)
            return rc;
    const rf_cfg_node *pt;
    if ((rc = rf_cfg_map(item, "partials", &pt, err)) < 0 ||
        (rc = rf_cfg_str(pt, "to", 0, "", r->partials_to, RF_AGG_NAME_MAX, err)) < 0 ||
        (rc = rf_cfg_bool(pt, "local", false, &r->partials_local, err)) < 0)
        return rc;
    if (r->partials_to[0] && !r->n_group_by)
        return rf_cfg_fail_key(item, "partials", err,
                               "partials between hosts need group_by (a per-series window is "
                               "complete on its host: route its aggregates instead)");
    return 0;
}

int rf_aggregate_config_parse(const rf_cfg_node *pipeline, rf_agg_config *out, rf_err *err)
{
    rf_agg_config c;
    rf_agg_config_defaults(&c);
    int rc = parse_settings(pipeline, &c, err);
    if (rc < 0)
        return rc;
    const rf_cfg_node *seq;
    if ((rc = rf_cfg_seq(pipeline, "aggregations", 0, RF_AGG_MAX_RULES, &seq, err)) < 0)
        return rc;
    c.n_rules = (uint32_t)rf_cfg_seq_len(seq);
    if (c.n_rules) {
        c.rules = calloc(c.n_rules, sizeof(rf_agg_rule));
        if (!c.rules)
            return rf_err_set(err, ENOMEM, "aggregations: out of memory");
    }
    for (uint32_t i = 0; i < c.n_rules; i++) {
        if ((rc = parse_rule(rf_cfg_seq_at(seq, i), &c.rules[i], err)) < 0) {
            rf_agg_config_release(&c);
            return rc;
        }
    }
    if (c.n_rules && (rc = rf_agg_config_check(&c, err)) < 0) {
        rf_err_wrap(err, "%s: ", rf_cfg_path(seq));
        rf_agg_config_release(&c);
        return rc;
    }
    *out = c;
    return 0;
}
