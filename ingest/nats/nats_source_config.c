/* The `nats_source:` section (nats_source.h). Control thread only. */
#include "ingest/nats/nats_source.h"

#include <errno.h>
#include <string.h>

#include "core/clock/clock.h"

static int parse_servers(const rf_cfg_node *sec, rf_nats_source_settings *st, rf_err *err)
{
    const rf_cfg_node *seq;
    int rc = rf_cfg_seq(sec, "servers", st->enabled ? 1 : 0, RF_NATS_SOURCE_MAX_SERVERS, &seq, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < rf_cfg_seq_len(seq); i++) {
        const rf_cfg_node *n = rf_cfg_seq_at(seq, i);
        char *url = st->servers[st->n_servers];
        if ((rc = rf_cfg_node_str(n, 1, url, RF_NATS_SOURCE_STR, err)))
            return rc;
        if (strncmp(url, "nats://", 7) && strncmp(url, "tls://", 6))
            return rf_cfg_fail(n, err, "a nats:// or tls:// URL");
        st->n_servers++;
    }
    return 0;
}

int rf_nats_source_settings_parse(const rf_cfg_node *root, rf_nats_source_settings *out,
                                  rf_err *err)
{
    rf_nats_source_settings st;
    memset(&st, 0, sizeof(st));
    const rf_cfg_node *sec, *tls;
    uint64_t ack_wait = 0;
    int rc, payload = 0;
    static const char *const payloads[] = {"lines", "partials"};
    if ((rc = rf_cfg_map(root, "nats_source", &sec, err)) ||
        (rc = rf_cfg_bool(sec, "enabled", false, &st.enabled, err)) ||
        (rc = parse_servers(sec, &st, err)) ||
        (rc = rf_cfg_str(sec, "stream", 1, "RINGFLOW", st.stream, sizeof(st.stream), err)) ||
        (rc = rf_cfg_str(sec, "subject", 1, "ringflow.{measurement}.{shard}", st.subject,
                         sizeof(st.subject), err)) ||
        (rc = rf_cfg_str(sec, "durable", 1, "ringflow", st.durable, sizeof(st.durable), err)) ||
        (rc = rf_cfg_u32(sec, "shards", 1, 65536, 1, &st.shards, err)) ||
        (rc = rf_cfg_u32(sec, "hosts", 1, 64, 1, &st.hosts, err)) ||
        (rc = rf_cfg_u32(sec, "host", 0, 63, 0, &st.host, err)) ||
        (rc = rf_cfg_u32(sec, "batch", 1, 4096, 64, &st.batch, err)) ||
        (rc = rf_cfg_u32(sec, "max_ack_pending", 1, 1u << 20, 1024, &st.max_ack_pending, err)) ||
        (rc = rf_cfg_duration(sec, "ack_wait", RF_NS_PER_S, 3600ull * RF_NS_PER_S, 30 * RF_NS_PER_S,
                              &ack_wait, err)) ||
        (rc = rf_cfg_str(sec, "creds", 0, "", st.creds, sizeof(st.creds), err)) ||
        (rc = rf_cfg_map(sec, "tls", &tls, err)) ||
        (rc = rf_cfg_str(tls, "ca", 0, "", st.tls_ca, sizeof(st.tls_ca), err)) ||
        (rc = rf_cfg_str(tls, "cert", 0, "", st.tls_cert, sizeof(st.tls_cert), err)) ||
        (rc = rf_cfg_str(tls, "key", 0, "", st.tls_key, sizeof(st.tls_key), err)) ||
        (rc = rf_cfg_enum(sec, "payload", payloads, 2, 0, &payload, err)))
        return rc;
    st.partials = payload == 1;
    if (!st.tls_cert[0] != !st.tls_key[0])
        return rf_cfg_fail_key(sec, "tls", err, "cert and key go together");
    if (!strstr(st.subject, "{shard}") && st.shards > 1)
        return rf_cfg_fail_key(sec, "subject", err, "shards > 1 needs {shard} in the subject");
    if (st.host >= st.hosts)
        return rf_cfg_fail_key(sec, "host", err, "a host index below hosts");
    if (strpbrk(st.durable, ".*> \t") || strpbrk(st.stream, ".*> \t"))
        return rf_cfg_fail_key(sec, "durable", err,
                               "stream and durable names without '.', '*', '>' or spaces");
    st.ack_wait_ns = (int64_t)ack_wait;
    *out = st;
    return 0;
}

static const char *or_null(const char *s)
{
    return s[0] ? s : NULL;
}

void rf_nats_source_config_from(const rf_nats_source_settings *st, uint32_t worker,
                                uint32_t workers, rf_nats_source_config *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < st->n_servers; i++)
        out->servers[i] = st->servers[i];
    out->n_servers = st->n_servers;
    out->stream = st->stream;
    out->subject = st->subject;
    out->durable = st->durable;
    out->shards = st->shards;
    /* Host h of H, worker w of W: the source of worker h * W + w of H * W,
     * so the hosts own disjoint shards and together all of them. */
    out->workers = workers * st->hosts;
    out->worker = st->host * workers + worker;
    out->batch = st->batch;
    out->max_ack_pending = st->max_ack_pending;
    out->ack_wait_ns = st->ack_wait_ns;
    out->creds_file = or_null(st->creds);
    out->tls_ca = or_null(st->tls_ca);
    out->tls_cert = or_null(st->tls_cert);
    out->tls_key = or_null(st->tls_key);
}
