/* Parsing pipeline.sinks from the YAML configuration. Control thread only. */
#include "stages/sink/sink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"

void rf_sink_configs_release(rf_sink_configs *c)
{
    for (uint32_t i = 0; c->sinks && i < c->n; i++) {
        free((char *)c->sinks[i].name);
        free((char *)c->sinks[i].path);
        free((char *)c->sinks[i].host);
        rf_sink_http_config_release(&c->sinks[i].http);
    }
    free(c->sinks);
    free(c->names);
    memset(c, 0, sizeof(*c));
}

static int dup_str(const rf_cfg_node *map, const char *key, bool required, const char **out,
                   rf_err *err)
{
    char buf[4096];
    *out = NULL;
    if (required) {
        int rc = rf_cfg_require(map, key, err);
        if (rc)
            return rc;
    } else if (!rf_cfg_has(map, key)) {
        return 0;
    }
    int rc = rf_cfg_str(map, key, 1, "", buf, sizeof(buf), err);
    if (rc)
        return rc;
    *out = strdup(buf);
    return *out ? 0 : rf_err_set(err, ENOMEM, "config: out of memory");
}

static int parse_sink(const rf_cfg_node *item, rf_sink_config *s, rf_err *err)
{
    static const char *const types[] = {"json", "lp_udp", "lp_tcp", "count_only", "store",
                                        "prom_remote_write", "influx_http"};
    int rc = dup_str(item, "name", true, &s->name, err);
    if (rc)
        return rc;
    int type = 0;
    if ((rc = rf_cfg_require(item, "type", err)) || (rc = rf_cfg_enum(item, "type", types, 7, 0,
                                                                        &type, err)))
        return rc;
    s->type = (enum rf_sink_type)type;
    if (s->type == RF_SINK_PROM_REMOTE_WRITE || s->type == RF_SINK_INFLUX_HTTP)
        return rf_sink_http_config_parse(item, s, err);
    uint64_t buffer = 0;
    rc = rf_cfg_size(item, "buffer", 4096, 1ull << 30, 256 * 1024, &buffer, err);
    if (rc)
        return rc;
    s->buffer_bytes = (uint32_t)buffer;
    if (s->type == RF_SINK_JSON)
        return dup_str(item, "path", false, &s->path, err);
    if (s->type == RF_SINK_COUNT_ONLY || s->type == RF_SINK_STORE)
        return 0;
    uint32_t port = 0;
    if ((rc = dup_str(item, "host", true, &s->host, err)) ||
        (rc = rf_cfg_require(item, "port", err)) ||
        (rc = rf_cfg_u32(item, "port", 1, 65535, 1, &port, err)))
        return rc;
    s->port = (uint16_t)port;
    uint64_t dg = 0, base = 0, max = 0, cto = 0, cool = 0;
    uint32_t failures = 0;
    const rf_cfg_node *backoff, *breaker;
    if ((rc = rf_cfg_size(item, "max_datagram", 64, 65507, 1432, &dg, err)) ||
        (rc = rf_cfg_map(item, "backoff", &backoff, err)) ||
        (rc = rf_cfg_duration(backoff, "base", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              100 * RF_NS_PER_MS, &base, err)) ||
        (rc = rf_cfg_duration(backoff, "max", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              30 * RF_NS_PER_S, &max, err)) ||
        (rc = rf_cfg_duration(item, "connect_timeout", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              5 * RF_NS_PER_S, &cto, err)) ||
        (rc = rf_cfg_map(item, "breaker", &breaker, err)) ||
        (rc = rf_cfg_u32(breaker, "failures", 1, 1000000, 5, &failures, err)) ||
        (rc = rf_cfg_duration(breaker, "cooldown", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              10 * RF_NS_PER_S, &cool, err)))
        return rc;
    if (max < base)
        return rf_cfg_fail_key(backoff, "max", err, "backoff max is below backoff base");
    if (s->type == RF_SINK_LP_UDP && dg > buffer)
        return rf_cfg_fail_key(item, "max_datagram", err, "larger than the buffer");
    s->max_datagram = (uint32_t)dg;
    s->backoff_base_ns = (int64_t)base;
    s->backoff_max_ns = (int64_t)max;
    s->connect_timeout_ns = (int64_t)cto;
    s->breaker_failures = failures;
    s->breaker_cooldown_ns = (int64_t)cool;
    return 0;
}

int rf_sink_configs_parse(const rf_cfg_node *pipeline, rf_sink_configs *out, rf_err *err)
{
    memset(out, 0, sizeof(*out));
    const rf_cfg_node *seq;
    int rc = rf_cfg_seq(pipeline, "sinks", 0, 256, &seq, err);
    if (rc)
        return rc;
    size_t n = rf_cfg_seq_len(seq);
    out->sinks = calloc(n ? n : 1, sizeof(rf_sink_config));
    out->names = calloc(n ? n : 1, sizeof(char *));
    if (!out->sinks || !out->names) {
        rf_sink_configs_release(out);
        return rf_err_set(err, ENOMEM, "config: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        out->n = (uint32_t)i + 1;
        rc = parse_sink(item, &out->sinks[i], err);
        if (!rc) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(out->names[j], out->sinks[i].name) == 0) {
                    rc = rf_cfg_fail_key(item, "name", err, "sink '%s' is defined twice",
                                         out->sinks[i].name);
                    break;
                }
            }
        }
        if (rc) {
            rf_sink_configs_release(out);
            return rc;
        }
        out->names[i] = out->sinks[i].name;
    }
    return 0;
}
