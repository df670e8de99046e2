/* Parsing pipeline.alerts from the YAML configuration. Control thread only. */
#include "stages/alert/alert_pvt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"

void rf_alerts_config_release(rf_alerts_config_parsed *p)
{
    for (uint32_t i = 0; p->rules && i < p->cfg.n_rules; i++) {
        free((char *)p->rules[i].name);
        rf_series_matcher_release(&p->rules[i].match);
    }
    free(p->rules);
    memset(p, 0, sizeof(*p));
}

static int parse_rule(const rf_cfg_node *item, uint32_t idx, rf_alert_rule_config *r, rf_err *err)
{
    static const char *const types[] = {"threshold", "rate", "absence"};
    static const char *const ops[] = {">", ">=", "<", "<=", "==", "!="};
    static const char *const scopes[] = {"series", "any"};
    char *name = NULL;
    int rc = rf_cfg_strdup_key(item, "name", true, &name, err);
    r->name = name;
    if (rc)
        return rc;
    const rf_cfg_node *match;
    int type = 0, op = 0, scope = 0;
    uint64_t for_ns = 0, window = 0, absent = 0;
    if ((rc = rf_cfg_map(item, "match", &match, err)) ||
        (rc = rf_series_matcher_parse(match, &r->match, err)) ||
        (rc = rf_cfg_enum(item, "type", types, 3, 0, &type, err)))
        return rc;
    r->type = (enum rf_alert_type)type;
    if (r->type == RF_ALERT_ABSENCE) {
        if ((rc = rf_cfg_require(item, "absent", err)) ||
            (rc = rf_cfg_duration(item, "absent", 1, 365ull * 86400 * RF_NS_PER_S, 0, &absent,
                                  err)) ||
            (rc = rf_cfg_enum(item, "scope", scopes, 2, 0, &scope, err)))
            return rc;
        r->absent_ns = (int64_t)absent;
        r->absence_any = scope == 1;
    } else {
        if ((rc = rf_cfg_require(item, "op", err)) ||
            (rc = rf_cfg_enum(item, "op", ops, 6, 0, &op, err)) ||
            (rc = rf_cfg_require(item, "fire", err)) ||
            (rc = rf_cfg_double(item, "fire", -INFINITY, INFINITY, 0, &r->fire, err)) ||
            (rc = rf_cfg_duration(item, "for", 0, 365ull * 86400 * RF_NS_PER_S, 0, &for_ns, err)))
            return rc;
        r->op = (enum rf_cmp_op)op;
        r->for_ns = (int64_t)for_ns;
        if (rf_cfg_has(item, "resolve")) {
            r->has_resolve = true;
            rc = rf_cfg_double(item, "resolve", -INFINITY, INFINITY, 0, &r->resolve, err);
            if (rc)
                return rc;
        }
        if (r->type == RF_ALERT_RATE) {
            if ((rc = rf_cfg_require(item, "window", err)) ||
                (rc = rf_cfg_duration(item, "window", RF_NS_PER_MS, 86400ull * RF_NS_PER_S, 0,
                                      &window, err)))
                return rc;
            r->window_ns = (int64_t)window;
        }
    }
    rf_err cerr;
    rf_err_clear(&cerr);
    if (rf_alert_rule_check(r, idx, &cerr) != 0)
        return rf_cfg_fail(item, err, "%s", cerr.msg);
    return 0;
}

int rf_alerts_config_parse(const rf_cfg_node *pipeline, rf_router *router,
                           rf_alerts_config_parsed *out, rf_err *err)
{
    memset(out, 0, sizeof(*out));
    const rf_cfg_node *seq;
    int rc = rf_cfg_seq(pipeline, "alerts", 0, 1u << 20, &seq, err);
    if (rc)
        return rc;
    size_t n = rf_cfg_seq_len(seq);
    out->rules = calloc(n ? n : 1, sizeof(rf_alert_rule_config));
    if (!out->rules)
        return rf_err_set(err, ENOMEM, "config: out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        out->cfg.n_rules = (uint32_t)i + 1;
        rc = parse_rule(item, (uint32_t)i, &out->rules[i], err);
        for (size_t j = 0; !rc && j < i; j++) {
            if (strcmp(out->rules[j].name, out->rules[i].name) == 0)
                rc = rf_cfg_fail_key(item, "name", err, "alert rule '%s' is defined twice",
                                     out->rules[i].name);
        }
        if (!rc && router) {
            char subj[RF_SUBJECT_MAX];
            snprintf(subj, sizeof(subj), "alert.%s", out->rules[i].name);
            if (rf_router_resolve_subject(router, subj) <= 0)
                rc = rf_cfg_fail_key(item, "name", err,
                                     "alert rule '%s' references no route or sink: no route "
                                     "matches subject '%s'",
                                     out->rules[i].name, subj);
        }
    }
    if (rc) {
        rf_alerts_config_release(out);
        return rc;
    }
    out->cfg.rules = out->rules;
    return 0;
}
