/* Parsing pipeline.correlation from the YAML configuration. Control thread only. */
#include "stages/correlate/correlate_pvt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"

void rf_correlator_config_release(rf_correlator_config_parsed *p)
{
    for (uint32_t i = 0; p->patterns && i < p->cfg.n_patterns; i++) {
        rf_corr_pattern_config *q = &p->patterns[i];
        free((char *)q->name);
        free((char *)q->key_tag);
        rf_series_matcher_release(&q->a);
        rf_series_matcher_release(&q->b);
    }
    free(p->patterns);
    memset(p, 0, sizeof(*p));
}

static int parse_matcher(const rf_cfg_node *item, const char *key, rf_series_matcher *m,
                         rf_err *err)
{
    const rf_cfg_node *node;
    int rc = rf_cfg_require(item, key, err);
    if (!rc)
        rc = rf_cfg_map(item, key, &node, err);
    if (!rc)
        rc = rf_series_matcher_parse(node, m, err);
    return rc;
}

static int parse_pattern(const rf_cfg_node *item, rf_corr_pattern_config *p, rf_err *err)
{
    static const char *const types[] = {"sequence", "burst"};
    char *name = NULL, *key = NULL;
    int rc = rf_cfg_strdup_key(item, "name", true, &name, err);
    p->name = name;
    if (!rc)
        rc = rf_cfg_strdup_key(item, "key", false, &key, err);
    p->key_tag = key;
    int type = 0;
    uint64_t within = 0;
    if (rc || (rc = rf_cfg_require(item, "type", err)) ||
        (rc = rf_cfg_enum(item, "type", types, 2, 0, &type, err)) ||
        (rc = rf_cfg_require(item, "within", err)) ||
        (rc = rf_cfg_duration(item, "within", 1, 365ull * 86400 * RF_NS_PER_S, 0, &within, err)) ||
        (rc = rf_cfg_bool(item, "critical", false, &p->critical, err)))
        return rc;
    p->type = (enum rf_corr_pattern_type)type;
    p->within_ns = (int64_t)within;
    if (p->type == RF_CORR_SEQUENCE) {
        if ((rc = parse_matcher(item, "first", &p->a, err)) ||
            (rc = parse_matcher(item, "then", &p->b, err)))
            return rc;
    } else {
        if ((rc = parse_matcher(item, "match", &p->a, err)) ||
            (rc = rf_cfg_require(item, "count", err)) ||
            (rc = rf_cfg_u32(item, "count", 2, RF_CORR_BURST_MAX, 2, &p->count, err)))
            return rc;
    }
    rf_correlator_config one = {.patterns = p, .n_patterns = 1};
    rf_err cerr;
    rf_err_clear(&cerr);
    if (rf_correlator_config_check(&one, &cerr) != 0)
        return rf_cfg_fail(item, err, "%s", cerr.msg);
    return 0;
}

int rf_correlator_config_parse(const rf_cfg_node *pipeline, rf_correlator_config_parsed *out,
                               rf_err *err)
{
    memset(out, 0, sizeof(*out));
    const rf_cfg_node *corr, *id, *seq;
    uint64_t ttl = 0;
    rf_correlator_config *c = &out->cfg;
    int rc;
    if ((rc = rf_cfg_map(pipeline, "correlation", &corr, err)) ||
        (rc = rf_cfg_map(corr, "id", &id, err)) ||
        (rc = rf_cfg_u32(id, "capacity", 1, 1u << 26, 10000, &c->id_capacity, err)) ||
        (rc = rf_cfg_duration(id, "ttl", RF_NS_PER_MS, 365ull * 86400 * RF_NS_PER_S,
                              3600ull * RF_NS_PER_S, &ttl, err)) ||
        (rc = rf_cfg_u32(id, "close_after", 0, 1u << 30, 0, &c->id_close_members, err)) ||
        (rc = rf_cfg_u32(id, "min_members", 1, 1u << 30, 2, &c->id_min_members, err)) ||
        (rc = rf_cfg_u32(corr, "pattern_keys", 1, 1u << 26, 4096, &c->pattern_keys, err)) ||
        (rc = rf_cfg_u32(corr, "history", 1, 1u << 20, 256, &c->closed_history, err)) ||
        (rc = rf_cfg_seq(corr, "patterns", 0, 65535, &seq, err)))
        return rc;
    c->id_ttl_ns = (int64_t)ttl;
    size_t n = rf_cfg_seq_len(seq);
    out->patterns = calloc(n ? n : 1, sizeof(rf_corr_pattern_config));
    if (!out->patterns)
        return rf_err_set(err, ENOMEM, "config: out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        c->n_patterns = (uint32_t)i + 1;
        rc = parse_pattern(item, &out->patterns[i], err);
        for (size_t j = 0; !rc && j < i; j++) {
            if (strcmp(out->patterns[j].name, out->patterns[i].name) == 0)
                rc = rf_cfg_fail_key(item, "name", err, "pattern '%s' is defined twice",
                                     out->patterns[i].name);
        }
    }
    if (rc) {
        rf_correlator_config_release(out);
        return rc;
    }
    c->patterns = out->patterns;
    return 0;
}
