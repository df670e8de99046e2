/* Parsing the nats sink's own keys (sink.h shows them); the batch, buffer,
 * backoff and breaker keys are the HTTP forwarders' (sink_http_config.c).
 * Control thread only. */
#include "stages/sink/sink_pvt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"

void sink_nats_config_release(rf_fwd_nats_config *c)
{
    for (uint32_t i = 0; i < c->n_servers; i++)
        free((char *)c->servers[i]);
    free((char *)c->subject);
    free((char *)c->stream);
    free((char *)c->creds_file);
    free((char *)c->tls_ca);
    free((char *)c->tls_cert);
    free((char *)c->tls_key);
    memset(c, 0, sizeof(*c));
}

/* A template is literal subject text and the placeholders {measurement},
 * {field}, {shard}; its tokens are non-empty and carry no wildcard. */
static int check_subject(const rf_cfg_node *item, const char *t, rf_err *err)
{
    size_t tok = 0;
    for (const char *p = t; *p; p++) {
        if (*p == '{') {
            const char *e = strchr(p, '}');
            size_t n = e ? (size_t)(e - p) + 1 : 0;
            if (!(n == 13 && !strncmp(p, "{measurement}", 13)) &&
                !(n == 7 && (!strncmp(p, "{field}", 7) || !strncmp(p, "{shard}", 7))))
                return rf_cfg_fail_key(item, "subject", err,
                                       "placeholders are {measurement}, {field} and {shard}");
            p = e;
            tok++;
        } else if (*p == '.') {
            if (!tok)
                return rf_cfg_fail_key(item, "subject", err, "an empty subject token");
            tok = 0;
        } else if (strchr("*> \t\r\n}", *p)) {
            return rf_cfg_fail_key(item, "subject", err,
                                   "a subject with no wildcard, space or stray '}'");
        } else {
            tok++;
        }
    }
    if (!tok)
        return rf_cfg_fail_key(item, "subject", err, "an empty subject token");
    return 0;
}

static int parse_servers(const rf_cfg_node *item, rf_fwd_nats_config *c, rf_err *err)
{
    const rf_cfg_node *seq;
    int rc = rf_cfg_require(item, "servers", err);
    if (rc || (rc = rf_cfg_seq(item, "servers", 1, RF_FWD_NATS_MAX_SERVERS, &seq, err)))
        return rc;
    for (size_t i = 0; i < rf_cfg_seq_len(seq); i++) {
        char url[1024];
        const rf_cfg_node *n = rf_cfg_seq_at(seq, i);
        if ((rc = rf_cfg_node_str(n, 1, url, sizeof(url), err)))
            return rc;
        if (strncmp(url, "nats://", 7) && strncmp(url, "tls://", 6))
            return rf_cfg_fail(n, err, "a nats:// or tls:// URL");
        if (!(c->servers[c->n_servers++] = strdup(url)))
            return rf_err_set(err, ENOMEM, "config: out of memory");
    }
    return 0;
}

static int parse_stream(const rf_cfg_node *item, rf_fwd_nats_config *c, rf_err *err)
{
    static const char *const storages[] = {"file", "memory"};
    const rf_cfg_node *st;
    int storage = 0, rc;
    uint64_t dup = 0;
    if ((rc = rf_cfg_map(item, "stream", &st, err)) || !rf_cfg_has(item, "stream"))
        return rc;
    if ((rc = sink_cfg_dup_str(st, "name", true, &c->stream, err)) ||
        (rc = rf_cfg_enum(st, "storage", storages, 2, 0, &storage, err)) ||
        (rc = rf_cfg_duration(st, "duplicate_window", RF_NS_PER_S, 7 * 86400ull * RF_NS_PER_S,
                              120 * RF_NS_PER_S, &dup, err)) ||
        (rc = rf_cfg_u32(st, "replicas", 1, 5, 1, &c->stream_replicas, err)))
        return rc;
    if (strpbrk(c->stream, ".*> \t"))
        return rf_cfg_fail_key(st, "name", err, "a stream name without '.', '*', '>' or spaces");
    c->stream_memory = storage == 1;
    c->duplicate_window_ns = (int64_t)dup;
    return 0;
}

int sink_nats_config_parse(const rf_cfg_node *item, rf_fwd_config *fc, rf_err *err)
{
    static const char *const modes[] = {"jetstream", "core"};
    rf_fwd_nats_config *c = &fc->nats;
    const rf_cfg_node *tls;
    int mode = 0, rc;
    uint64_t rwait = 0;
    if ((rc = parse_servers(item, c, err)) ||
        (rc = sink_cfg_dup_str(item, "subject", false, &c->subject, err)) ||
        (c->subject && (rc = check_subject(item, c->subject, err))) ||
        (rc = rf_cfg_u32(item, "shards", 1, 65536, 1, &c->shards, err)) ||
        (rc = rf_cfg_enum(item, "mode", modes, 2, 0, &mode, err)) ||
        (rc = rf_cfg_u32(item, "max_pending", 1, 1u << 20, 256, &c->max_pending, err)) ||
        (rc = parse_stream(item, c, err)) ||
        (rc = sink_cfg_dup_str(item, "creds", false, &c->creds_file, err)) ||
        (rc = rf_cfg_map(item, "tls", &tls, err)) ||
        (rc = sink_cfg_dup_str(tls, "ca", false, &c->tls_ca, err)) ||
        (rc = sink_cfg_dup_str(tls, "cert", false, &c->tls_cert, err)) ||
        (rc = sink_cfg_dup_str(tls, "key", false, &c->tls_key, err)) ||
        (rc = rf_cfg_duration(item, "reconnect_wait", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              250 * RF_NS_PER_MS, &rwait, err)))
        return rc;
    if (!c->tls_cert != !c->tls_key)
        return rf_cfg_fail_key(item, "tls", err, "cert and key go together");
    c->core = mode == 1;
    if (c->core && c->stream)
        return rf_cfg_fail_key(item, "stream", err, "a stream is for mode jetstream");
    c->reconnect_wait_ns = (int64_t)rwait;
    return 0;
}
