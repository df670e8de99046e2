/* Parsing pipeline.sinks from the YAML configuration. Control thread only. */
#include "stages/sink/sink_pvt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"

static void http_config_release(rf_fwd_config *c);

void rf_sink_configs_release(rf_sink_configs *c)
{
    for (uint32_t i = 0; c->sinks && i < c->n; i++) {
        free((char *)c->sinks[i].name);
        free((char *)c->sinks[i].path);
        free((char *)c->sinks[i].host);
        http_config_release(&c->sinks[i].http);
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

int sink_cfg_dup_str(const rf_cfg_node *map, const char *key, bool required, const char **out,
                     rf_err *err)
{
    return dup_str(map, key, required, out, err);
}

/* ---- the HTTP forwarders' keys (prom_remote_write, influx_http; sink.h) ---- */

static void http_config_release(rf_fwd_config *c)
{
    free((char *)c->url);
    for (uint32_t i = 0; i < c->n_headers; i++)
        free((char *)c->headers[i]);
    free((char *)c->username);
    free((char *)c->password);
    free((char *)c->token);
    free((char *)c->buffer_path);
    sink_nats_config_release(&c->nats);
    memset(c, 0, sizeof(*c));
}

static int parse_headers(const rf_cfg_node *item, rf_fwd_config *c, rf_err *err)
{
    const rf_cfg_node *h;
    int rc = rf_cfg_map(item, "headers", &h, err);
    if (rc)
        return rc;
    size_t n = rf_cfg_map_len(h);
    if (n > RF_FWD_MAX_HEADERS)
        return rf_cfg_fail_key(item, "headers", err, "at most %u headers", RF_FWD_MAX_HEADERS);
    for (size_t i = 0; i < n; i++) {
        const char *k = rf_cfg_map_key(h, i);
        const char *v = rf_cfg_scalar(rf_cfg_map_value(h, i));
        if (!v || strpbrk(k, ": \r\n") || strpbrk(v, "\r\n"))
            return rf_cfg_fail(
                rf_cfg_map_value(h, i), err,
                "a header is a name (no ':', space or newline) and a one-line value");
        size_t len = strlen(k) + strlen(v) + 3;
        char *line = malloc(len);
        if (!line)
            return rf_err_set(err, ENOMEM, "config: out of memory");
        snprintf(line, len, "%s: %s", k, v);
        c->headers[c->n_headers++] = line;
    }
    return 0;
}

static int parse_auth(const rf_cfg_node *item, rf_fwd_config *c, rf_err *err)
{
    static const char *const types[] = {"none", "basic", "bearer", "token"};
    const rf_cfg_node *a;
    int type = 0, rc;
    if ((rc = rf_cfg_map(item, "auth", &a, err)) ||
        (rc = rf_cfg_enum(a, "type", types, 4, 0, &type, err)))
        return rc;
    c->auth = (enum rf_fwd_auth)type;
    if (c->auth == RF_FWD_AUTH_BASIC) {
        rc = dup_str(a, "username", true, &c->username, err);
        return rc ? rc : dup_str(a, "password", false, &c->password, err);
    }
    if (c->auth != RF_FWD_AUTH_NONE)
        return dup_str(a, "token", true, &c->token, err);
    return 0;
}

static int parse_buffer(const rf_cfg_node *item, rf_sink_config *s, rf_err *err)
{
    static const char *const types[] = {"memory", "disk"};
    /* Indexed by enum rf_fwd_full_policy. */
    static const char *const policies[] = {"drop_newest", "drop_oldest", "block"};
    rf_fwd_config *c = &s->http;
    const rf_cfg_node *b;
    int type = 0, policy = 0, rc;
    uint64_t max = 0, seg = 0;
    if ((rc = rf_cfg_map(item, "buffer", &b, err)) ||
        (rc = rf_cfg_enum(b, "type", types, 2, 0, &type, err)) ||
        /* A disk buffer is chosen not to lose data: when it is full, the
         * default is to slow the clients down (docs/RELIABILITY.md). */
        (rc = rf_cfg_enum(b, "policy", policies, 3, type == RF_FWD_BUFFER_DISK ? RF_FWD_BLOCK : 0,
                          &policy, err)) ||
        (rc = rf_cfg_size(b, "max_bytes", 1ull << 20, 1ull << 50, type ? 1ull << 30 : 64ull << 20,
                          &max, err)) ||
        (rc = rf_cfg_size(b, "segment_bytes", 64 * 1024, 1ull << 32, 8ull << 20, &seg, err)) ||
        (rc = rf_cfg_bool(b, "sync", false, &c->sync, err)))
        return rc;
    c->buffer = (enum rf_fwd_buffer_type)type;
    c->policy = (enum rf_fwd_full_policy)policy;
    c->buffer_max_bytes = max;
    c->segment_bytes = seg;
    if (c->buffer == RF_FWD_BUFFER_DISK)
        return dup_str(b, "path", true, &c->buffer_path, err);
    return 0;
}

static int http_config_parse(const rf_cfg_node *item, rf_sink_config *s, rf_err *err)
{
    rf_fwd_config *c = &s->http;
    bool nats = s->type == RF_SINK_NATS;
    c->protocol = nats                                   ? RF_FWD_NATS
                  : s->type == RF_SINK_PROM_REMOTE_WRITE ? RF_FWD_PROM_REMOTE_WRITE
                                                         : RF_FWD_INFLUX_HTTP;
    uint64_t queue = 0, samples = 0, bytes = 0, delay = 0, timeout = 0, base = 0, max = 0, cool = 0;
    const rf_cfg_node *batch, *backoff, *breaker;
    int rc;
    if ((nats && (rc = sink_nats_config_parse(item, c, err))) ||
        (!nats && ((rc = dup_str(item, "url", true, &c->url, err)) ||
                   (rc = parse_headers(item, c, err)) || (rc = parse_auth(item, c, err)))) ||
        (rc = parse_buffer(item, s, err)) ||
        (rc = rf_cfg_bool(item, "gzip", true, &c->gzip, err)) ||
        (rc = rf_cfg_size(item, "queue", 4096, 1ull << 30, 256 * 1024, &queue, err)) ||
        (rc = rf_cfg_map(item, "batch", &batch, err)) ||
        (rc = rf_cfg_u64(batch, "max_samples", 1, 10000000, 10000, &samples, err)) ||
        (rc = rf_cfg_size(batch, "max_bytes", 4096, 256ull << 20, 1ull << 20, &bytes, err)) ||
        (rc = rf_cfg_duration(batch, "max_delay", RF_NS_PER_MS, 60ull * RF_NS_PER_S,
                              50 * RF_NS_PER_MS, &delay, err)) ||
        (rc = rf_cfg_duration(item, "timeout", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              10 * RF_NS_PER_S, &timeout, err)) ||
        (rc = rf_cfg_map(item, "backoff", &backoff, err)) ||
        (rc = rf_cfg_duration(backoff, "base", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              100 * RF_NS_PER_MS, &base, err)) ||
        (rc = rf_cfg_duration(backoff, "max", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              30 * RF_NS_PER_S, &max, err)) ||
        (rc = rf_cfg_map(item, "breaker", &breaker, err)) ||
        (rc = rf_cfg_u32(breaker, "failures", 1, 1000000, 5, &c->breaker_failures, err)) ||
        (rc = rf_cfg_duration(breaker, "cooldown", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              10 * RF_NS_PER_S, &cool, err)))
        return rc;
    if (!nats && strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8))
        return rf_cfg_fail_key(item, "url", err, "must be an http:// or https:// URL");
    if (max < base)
        return rf_cfg_fail_key(backoff, "max", err, "backoff max is below backoff base");
    s->buffer_bytes = (uint32_t)queue;
    c->max_samples = (uint32_t)samples;
    c->max_bytes = (uint32_t)bytes;
    c->max_delay_ns = (int64_t)delay;
    c->timeout_ns = (int64_t)timeout;
    c->backoff_base_ns = (int64_t)base;
    c->backoff_max_ns = (int64_t)max;
    c->breaker_cooldown_ns = (int64_t)cool;
    return 0;
}

static int parse_sink(const rf_cfg_node *item, rf_sink_config *s, rf_err *err)
{
    static const char *const types[] = {"json",        "lp_udp", "lp_tcp",
                                        "count_only",  "store",  "prom_remote_write",
                                        "influx_http", "nats"};
    int rc = dup_str(item, "name", true, &s->name, err);
    if (rc)
        return rc;
    int type = 0;
    if ((rc = rf_cfg_require(item, "type", err)) ||
        (rc = rf_cfg_enum(item, "type", types, 8, 0, &type, err)))
        return rc;
    s->type = (enum rf_sink_type)type;
    if (s->type == RF_SINK_PROM_REMOTE_WRITE || s->type == RF_SINK_INFLUX_HTTP ||
        s->type == RF_SINK_NATS)
        return http_config_parse(item, s, err);
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
