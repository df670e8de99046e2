/* The engine's `show` providers for the stats socket: listeners, errors,
 * stages, storage and series; and the listeners' parser counters on
 * /metrics. Each reads counters that one worker (or the store's I/O thread)
 * writes, with relaxed loads, on the control thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/stats/stats.h"
#include "daemon/engine.h"
#include "daemon/tap.h"
#include "daemon/ops/ops.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/worker_shard.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"
#include "storage/store/store.h"

static int no_args(const char *name, const char *args, rf_err *err)
{
    if (args && *args)
        return rf_err_set(err, EINVAL, "'show %s' takes no arguments", name);
    return 0;
}

/* ---- listeners ---------------------------------------------------------- */

/* One row of `show listeners`, from an input's counters or from what the
 * removed listeners of one name had counted: one schema for both. */
typedef struct listener_row {
    const char *name, *proto, *transport;
    uint64_t listen[RF_LC__COUNT];
    uint64_t parse[RF_PC__COUNT];
    uint64_t rejects[RF_REJ__COUNT];
    uint64_t kernel_drops, connections;
} listener_row;

static void listener_row_write(rf_ops_writer *w, uint32_t wi, const listener_row *r)
{
    char reasons[512] = "";
    size_t len = 0;
    for (int k = 0; k < RF_REJ__COUNT && len < sizeof(reasons); k++)
        if (r->rejects[k])
            len += (size_t)snprintf(reasons + len, sizeof(reasons) - len, "%s%s=%lu",
                                    len ? "," : "", rf_reject_reason_name(k),
                                    (unsigned long)r->rejects[k]);
    rf_ops_cell_u64(w, wi);
    rf_ops_cell_str(w, r->name);
    rf_ops_cell_str(w, r->proto);
    rf_ops_cell_str(w, r->transport);
    rf_ops_cell_u64(w, r->listen[RF_LC_DATAGRAMS]);
    rf_ops_cell_u64(w, r->listen[RF_LC_READS]);
    rf_ops_cell_u64(w, r->listen[RF_LC_BYTES]);
    rf_ops_cell_u64(w, r->parse[RF_PC_LINES_OK]);
    rf_ops_cell_u64(w, r->parse[RF_PC_EVENTS]);
    rf_ops_cell_u64(w, r->parse[RF_PC_SERIES_DEFS]);
    rf_ops_cell_u64(w, r->parse[RF_PC_LINES_REJECTED]);
    rf_ops_cell_u64(w, r->parse[RF_PC_TIMESTAMPS_CLAMPED]);
    rf_ops_cell_u64(w, r->kernel_drops);
    rf_ops_cell_u64(w, r->connections);
    rf_ops_cell_u64(w, r->listen[RF_LC_CONN_REFUSED]);
    rf_ops_cell_u64(w, r->listen[RF_LC_CONN_REFUSED_SOURCE]);
    rf_ops_cell_u64(w, r->listen[RF_LC_CONN_TIMED_OUT]);
    rf_ops_cell_u64(w, r->listen[RF_LC_LINES_TOO_LONG]);
    rf_ops_cell_u64(w, r->listen[RF_LC_PARTIAL_DISCARDED]);
    rf_ops_cell_u64(w, r->listen[RF_LC_ENOBUFS]);
    rf_ops_cell_str(w, reasons);
}

static int show_listeners(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("listeners", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {
        "worker",     "listener",   "protocol",      "transport",     "datagrams",
        "reads",      "bytes",      "lines_ok",      "events",        "series_defs",
        "rejected",   "timestamps_clamped", "kernel_drops", "connections", "conn_refused",
        "conn_refused_per_source", "conn_timed_out", "lines_too_long", "partial_lines_discarded",
        "enobufs", "rejects_by_reason"};
    RF_OPS_TABLE_BEGIN(w, "listeners", cols);
    listener_row row;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            const rf_parse_ctx *pc = rf_shard_input_parser(s, i);
            const rf_listener *l = rf_shard_input_listener(s, i);
            if (!pc)
                continue; /* an empty slot (a removed listener's, freed) */
            memset(&row, 0, sizeof(row));
            row.name = "dpdk";
            row.proto = "-";
            row.transport = "dpdk";
            for (int c = 0; c < RF_PC__COUNT; c++)
                row.parse[c] = rf_parse_counter(pc, (enum rf_parse_counter_id)c);
            for (int k = 0; k < RF_REJ__COUNT; k++)
                row.rejects[k] = rf_parse_reject_count(pc, (enum rf_reject_reason)k);
            if (l) {
                const rf_listener_config *lc = rf_listener_config_of(l);
                row.name = rf_listener_name(l);
                row.proto = rf_listen_protocol_name(lc->protocol);
                row.transport = rf_listen_transport_name(lc->transport);
                for (int c = 0; c < RF_LC__COUNT; c++)
                    row.listen[c] = rf_listener_counter(l, (enum rf_listen_counter_id)c);
                row.kernel_drops = row.listen[RF_LC_KERNEL_DROPS];
                uint64_t proc_drops;
                if (lc->transport == RF_LISTEN_UDP && rf_listener_proc_drops(l, &proc_drops) == 0 &&
                    proc_drops > row.kernel_drops)
                    row.kernel_drops = proc_drops;
                row.connections = rf_listener_connections(l);
            }
            listener_row_write(w, wi, &row);
        }
        /* Listeners reloads removed (and freed): a row per name with what
         * they had counted, so the table still adds up to every total. */
        for (uint32_t k = 0; k < rf_shard_retired_names(s); k++) {
            const rf_shard_retired *r = rf_shard_retired_named(s, k);
            char name[RF_LISTENER_NAME_MAX + 16];
            snprintf(name, sizeof(name), "%s%s", r->name,
                     strcmp(r->name, "(removed)") ? " (removed)" : "");
            memset(&row, 0, sizeof(row));
            row.name = name;
            row.proto = "-";
            row.transport = "-";
            memcpy(row.listen, r->listen, sizeof(row.listen));
            memcpy(row.parse, r->parse, sizeof(row.parse));
            memcpy(row.rejects, r->rejects, sizeof(row.rejects));
            row.kernel_drops = r->listen[RF_LC_KERNEL_DROPS];
            listener_row_write(w, wi, &row);
        }
    }
    rf_ops_table_end(w);

    /* HTTP listeners, when any: traffic and refusals per worker, then
     * answers per endpoint and status. */
    bool any_http = false;
    for (uint32_t wi = 0; wi < rf_engine_workers(e) && !any_http; wi++)
        for (uint32_t i = 0; i < rf_shard_input_count(rf_engine_shard(e, wi)); i++)
            any_http |= rf_shard_input_http(rf_engine_shard(e, wi), i) != NULL;
    if (any_http) {
        static const char *const hcols[] = {
            "worker", "listener", "requests", "bytes_in", "bytes_out", "body_bytes",
            "decoded_bytes", "points", "continues", "connections", "body_in_use",
            "rejects_by_reason", "decoders"};
        RF_OPS_TABLE_BEGIN(w, "http", hcols);
        for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
            const rf_shard *s = rf_engine_shard(e, wi);
            for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
                const rf_http_front *hf = rf_shard_input_http(s, i);
                if (!hf)
                    continue;
                const rf_http_server *hs = rf_http_front_server(hf);
                const rf_http_ingest *hi = rf_http_front_ingest(hf);
                char rej[512] = "", rw[512] = "";
                size_t len = 0;
                for (int r = 0; r < RF_HTTP_REJ__COUNT && len < sizeof(rej); r++) {
                    uint64_t n = rf_http_reject_count(hs, (enum rf_http_reject)r);
                    if (n)
                        len += (size_t)snprintf(rej + len, sizeof(rej) - len, "%s%s=%lu",
                                                len ? "," : "", rf_http_reject_name(r),
                                                (unsigned long)n);
                }
                len = 0;
                for (int c = 0; c < RF_PROM_C__COUNT && len < sizeof(rw); c++)
                    len += (size_t)snprintf(rw + len, sizeof(rw) - len, "%sremote_write_%s=%lu",
                                            len ? "," : "", rf_prom_counter_name(c),
                                            (unsigned long)rf_http_ingest_prom_counter(hi, c));
                for (int c = 0; c < RF_OTLP_C__COUNT && len < sizeof(rw); c++)
                    len += (size_t)snprintf(rw + len, sizeof(rw) - len, ",otlp_%s=%lu",
                                            rf_otlp_counter_name(c),
                                            (unsigned long)rf_http_ingest_otlp_counter(hi, c));
                const rf_listener *l = rf_shard_input_listener(s, i);
                rf_ops_cell_u64(w, wi);
                rf_ops_cell_str(w, l ? rf_listener_name(l) : "-");
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_REQUESTS));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_BYTES_IN));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_BYTES_OUT));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_BODY_BYTES));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_DECODED_BYTES));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_POINTS));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_CONTINUES));
                rf_ops_cell_u64(w, rf_http_counter(hs, RF_HTTP_C_CONNECTIONS));
                rf_ops_cell_u64(w, rf_http_server_body_in_use(hs));
                rf_ops_cell_str(w, rej);
                rf_ops_cell_str(w, rw);
            }
        }
        rf_ops_table_end(w);
        static const char *const rcols[] = {"worker", "listener", "endpoint", "status",
                                            "requests"};
        RF_OPS_TABLE_BEGIN(w, "http_requests", rcols);
        for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
            const rf_shard *s = rf_engine_shard(e, wi);
            for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
                const rf_http_front *hf = rf_shard_input_http(s, i);
                if (!hf)
                    continue;
                const rf_http_server *hs = rf_http_front_server(hf);
                const rf_listener *l = rf_shard_input_listener(s, i);
                for (unsigned ep = 0; ep < RF_HTTP_EP__COUNT; ep++) {
                    if (ep >= rf_http_server_routes(hs) && ep != RF_HTTP_EP_NONE)
                        continue;
                    for (int st = 0; st < RF_HTTP_ST__COUNT; st++) {
                        uint64_t n = rf_http_status_count(hs, ep, (enum rf_http_status_slot)st);
                        if (!n)
                            continue;
                        char code[8];
                        int c = rf_http_status_slot_code((enum rf_http_status_slot)st);
                        snprintf(code, sizeof(code), c ? "%d" : "other", c);
                        rf_ops_cell_u64(w, wi);
                        rf_ops_cell_str(w, l ? rf_listener_name(l) : "-");
                        rf_ops_cell_str(w, rf_http_server_route_name(hs, ep));
                        rf_ops_cell_str(w, code);
                        rf_ops_cell_u64(w, n);
                    }
                }
            }
        }
        rf_ops_table_end(w);
    }

    /* DPDK queues, when any: packets and drops by reason (the table of
     * `show dpdk`, one schema). */
    rf_ops_dpdk_queues_table(w, rf_engine_dpdk(e));
    return 0;
}

/* ---- listeners on /metrics: rejects by reason, clamped timestamps -------- */

/* One registered series: a parser and which of its counters, or (reason
 * LM_TRAFFIC) one of the listener's own counters. */
#define LM_CLAMPED (-1)
#define LM_TRAFFIC (-2)
#define LM_HTTP_REQ (-3) /* requests of endpoint ep answered with status slot traffic */
#define LM_HTTP_REJ (-4) /* HTTP refusals of reason traffic */
#define LM_HTTP_CTR (-5) /* HTTP counter traffic */
#define LM_PROM (-6)     /* remote_write counter traffic */
#define LM_OTLP (-7)     /* OTLP counter traffic */
typedef struct listener_metric {
    const rf_parse_ctx *pc;
    const rf_listener *l;
    const rf_http_front *hf;
    int reason;   /* enum rf_reject_reason, or one of the LM_ kinds above */
    int traffic;  /* with LM_TRAFFIC: an index into listener_traffic[]; see LM_HTTP_* */
    int ep;       /* LM_HTTP_REQ: the endpoint */
} listener_metric;

/* The listener's traffic on /metrics: what an operator alerts on (kernel
 * drops above all). */
static const struct {
    const char *name, *help;
    enum rf_metric_type type;
} listener_traffic[] = {
    {"ringflow_listener_datagrams", "UDP datagrams a listener received.", RF_METRIC_COUNTER},
    {"ringflow_listener_bytes", "Payload bytes a listener received.", RF_METRIC_COUNTER},
    {"ringflow_listener_kernel_drops",
     "UDP datagrams the kernel dropped at a listener's full receive queue.", RF_METRIC_COUNTER},
    {"ringflow_listener_lines", "Lines a listener's parser accepted.", RF_METRIC_COUNTER},
    {"ringflow_listener_events", "Events a listener's parser produced.", RF_METRIC_COUNTER},
    {"ringflow_listener_connections", "TCP connections open now.", RF_METRIC_GAUGE},
    {"ringflow_listener_partial_lines_discarded",
     "Unterminated TCP lines lost when their connection was reset, timed out or ended by a "
     "reload or stop.",
     RF_METRIC_COUNTER},
};
#define LM_TRAFFIC_N (sizeof(listener_traffic) / sizeof(listener_traffic[0]))

/* The series of one input (a listener on one worker, or a DPDK queue),
 * allocated on their own: each series' read function holds a pointer into
 * its block, so blocks never move. */
#define LM_HTTP_N (RF_HTTP_EP__COUNT * RF_HTTP_ST__COUNT + RF_HTTP_REJ__COUNT + RF_HTTP_C__COUNT + \
                   RF_PROM_C__COUNT + RF_OTLP_C__COUNT)
#define LM_PER_INPUT (RF_REJ__COUNT + 1 + LM_TRAFFIC_N + LM_HTTP_N)
typedef struct lm_input {
    uint32_t worker, input;
    char name[64];
    listener_metric m[LM_PER_INPUT];
    int ids[LM_PER_INPUT];
    size_t n;
} lm_input;

static struct {
    lm_input **in; /* NULL where an input's series were taken down */
    size_t n, cap;
    rf_engine *engine; /* whose input_gone hook points here */
} g_lm;

static uint64_t read_listener_metric(void *ctx)
{
    const listener_metric *m = ctx;
    if (m->hf) {
        const rf_http_server *hs = rf_http_front_server(m->hf);
        switch (m->reason) {
        case LM_HTTP_REQ:
            return rf_http_status_count(hs, (unsigned)m->ep, (enum rf_http_status_slot)m->traffic);
        case LM_HTTP_REJ: return rf_http_reject_count(hs, (enum rf_http_reject)m->traffic);
        case LM_HTTP_CTR: return rf_http_counter(hs, (enum rf_http_counter_id)m->traffic);
        case LM_OTLP:
            return rf_http_ingest_otlp_counter(rf_http_front_ingest(m->hf),
                                               (enum rf_otlp_counter_id)m->traffic);
        default:
            return rf_http_ingest_prom_counter(rf_http_front_ingest(m->hf),
                                               (enum rf_prom_counter_id)m->traffic);
        }
    }
    if (m->reason == LM_CLAMPED)
        return rf_parse_counter(m->pc, RF_PC_TIMESTAMPS_CLAMPED);
    if (m->reason >= 0)
        return rf_parse_reject_count(m->pc, (enum rf_reject_reason)m->reason);
    switch (m->traffic) {
    case 0: return m->l ? rf_listener_counter(m->l, RF_LC_DATAGRAMS) : 0;
    case 1: return m->l ? rf_listener_counter(m->l, RF_LC_BYTES) : 0;
    case 2: {
        /* As show listeners does: the socket's own count when it is larger
         * (drops after the last datagram read are only there). */
        if (!m->l)
            return 0;
        uint64_t k = rf_listener_counter(m->l, RF_LC_KERNEL_DROPS), proc;
        if (rf_listener_config_of(m->l)->transport == RF_LISTEN_UDP &&
            rf_listener_proc_drops(m->l, &proc) == 0 && proc > k)
            k = proc;
        return k;
    }
    case 3: return rf_parse_counter(m->pc, RF_PC_LINES_OK);
    case 4: return rf_parse_counter(m->pc, RF_PC_EVENTS);
    case 5: return m->l ? rf_listener_connections(m->l) : 0;
    default: return m->l ? rf_listener_counter(m->l, RF_LC_PARTIAL_DISCARDED) : 0;
    }
}

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label_escape(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; *in && o + 3 < cap; in++) {
        if (*in == '\\' || *in == '"' || *in == '\n') {
            out[o++] = '\\';
            out[o++] = *in == '\n' ? 'n' : *in;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

/* Takes an input's series off /metrics; the record stays. */
static void lm_input_takedown(lm_input *x)
{
    for (size_t k = 0; k < x->n; k++)
        rf_stats_unregister(x->ids[k]);
    x->n = 0;
}

static void lm_input_unregister(lm_input *x)
{
    lm_input_takedown(x);
    free(x);
}

/* An http listener's series: requests by endpoint and status, refusals by
 * reason, traffic, and the remote_write decoder's counts. */
static int lm_http_add(lm_input *x, const rf_http_front *hf, int kind, int which, int ep,
                       enum rf_metric_type type, const char *name, const char *help,
                       const char *labels)
{
    listener_metric *m = &x->m[x->n];
    *m = (listener_metric){.hf = hf, .reason = kind, .traffic = which, .ep = ep};
    int id = rf_stats_register_fn(type, name, help, labels, read_listener_metric, m);
    if (id < 0)
        return id;
    x->ids[x->n++] = id;
    return 0;
}

static int lm_http_register(lm_input *x, const rf_http_front *hf, const char *plain)
{
    const rf_http_server *hs = rf_http_front_server(hf);
    char labels[RF_STATS_LABELS_MAX + 64];
    int rc;
    for (unsigned ep = 0; ep < RF_HTTP_EP__COUNT; ep++) {
        if (ep >= rf_http_server_routes(hs) && ep != RF_HTTP_EP_NONE)
            continue;
        for (int st = 0; st < RF_HTTP_ST__COUNT; st++) {
            int code = rf_http_status_slot_code((enum rf_http_status_slot)st);
            char cs[8];
            snprintf(cs, sizeof(cs), code ? "%d" : "other", code);
            snprintf(labels, sizeof(labels), "%s,endpoint=\"%s\",status=\"%s\"", plain,
                     rf_http_server_route_name(hs, ep), cs);
            if ((rc = lm_http_add(x, hf, LM_HTTP_REQ, st, (int)ep, RF_METRIC_COUNTER,
                                  "ringflow_http_requests", "HTTP requests answered, by "
                                  "endpoint and status.", labels)) < 0)
                return rc;
        }
    }
    for (int r = 0; r < RF_HTTP_REJ__COUNT; r++) {
        snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", plain,
                 rf_http_reject_name((enum rf_http_reject)r));
        if ((rc = lm_http_add(x, hf, LM_HTTP_REJ, r, 0, RF_METRIC_COUNTER,
                              "ringflow_http_rejects", "HTTP requests or connections the "
                              "HTTP layer refused, by reason.", labels)) < 0)
            return rc;
    }
    for (int c = 0; c < RF_HTTP_C__COUNT; c++) {
        char name[RF_STATS_NAME_MAX];
        snprintf(name, sizeof(name), "ringflow_http_%s", rf_http_counter_name(c));
        if ((rc = lm_http_add(x, hf, LM_HTTP_CTR, c, 0, RF_METRIC_COUNTER, name,
                              "An HTTP listener's traffic (see ingest/http/http.h).", plain)) < 0)
            return rc;
    }
    for (int c = 0; c < RF_PROM_C__COUNT; c++) {
        char name[RF_STATS_NAME_MAX];
        snprintf(name, sizeof(name), "ringflow_remote_write_%s", rf_prom_counter_name(c));
        if ((rc = lm_http_add(x, hf, LM_PROM, c, 0, RF_METRIC_COUNTER, name,
                              "Prometheus remote_write decoding (see ingest/http/http.h).",
                              plain)) < 0)
            return rc;
    }
    for (int c = 0; c < RF_OTLP_C__COUNT; c++) {
        char name[RF_STATS_NAME_MAX];
        snprintf(name, sizeof(name), "ringflow_otlp_%s", rf_otlp_counter_name(c));
        if ((rc = lm_http_add(x, hf, LM_OTLP, c, 0, RF_METRIC_COUNTER, name,
                              "OTLP/HTTP metrics decoding (see ingest/http/http.h).", plain)) < 0)
            return rc;
    }
    return 0;
}

/* Registers the series of input i of worker wi. */
static int lm_input_register(const rf_shard *s, uint32_t wi, uint32_t i, lm_input **out)
{
    lm_input *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->worker = wi;
    x->input = i;
    const rf_listener *l = rf_shard_input_listener(s, i);
    const rf_parse_ctx *pc = rf_shard_input_parser(s, i);
    /* escaped and cut so the labels fit RF_STATS_LABELS_MAX */
    label_escape(x->name, sizeof(x->name), l ? rf_listener_name(l) : "dpdk");
    const char *proto = l ? rf_listen_protocol_name(rf_listener_config_of(l)->protocol) : "-";
    char plain[RF_STATS_LABELS_MAX];
    snprintf(plain, sizeof(plain), "worker=\"%u\",listener=\"%s\",protocol=\"%s\"", wi, x->name,
             proto);
    int rc = 0;
    for (int r = -1; r < RF_REJ__COUNT; r++) {
        char labels[RF_STATS_LABELS_MAX + 64]; /* fits the registry's: the name was cut for it */
        if (r >= 0)
            snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", plain,
                     rf_reject_reason_name((enum rf_reject_reason)r));
        listener_metric *m = &x->m[x->n];
        *m = (listener_metric){.pc = pc, .l = l, .reason = r < 0 ? LM_CLAMPED : r};
        int id = r < 0 ? rf_stats_register_fn(RF_METRIC_COUNTER,
                                              "ringflow_listener_timestamps_clamped",
                                              "Accepted lines whose out-of-window timestamp "
                                              "was replaced by the receive time.",
                                              plain, read_listener_metric, m)
                       : rf_stats_register_fn(RF_METRIC_COUNTER,
                                              "ringflow_listener_lines_rejected",
                                              "Lines a listener's parser rejected, by reason.",
                                              labels, read_listener_metric, m);
        if (id < 0) {
            rc = id;
            goto fail;
        }
        x->ids[x->n++] = id;
    }
    for (size_t t = 0; t < LM_TRAFFIC_N; t++) {
        listener_metric *m = &x->m[x->n];
        *m = (listener_metric){.pc = pc, .l = l, .reason = LM_TRAFFIC, .traffic = (int)t};
        int id = rf_stats_register_fn(listener_traffic[t].type, listener_traffic[t].name,
                                      listener_traffic[t].help, plain, read_listener_metric, m);
        if (id < 0) {
            rc = id;
            goto fail;
        }
        x->ids[x->n++] = id;
    }
    const rf_http_front *hf = rf_shard_input_http(s, i);
    if (hf && (rc = lm_http_register(x, hf, plain)) < 0)
        goto fail;
    *out = x;
    return 0;
fail:
    lm_input_unregister(x);
    return rc;
}

/* The series of input `slot` of worker wi, or NULL. */
static lm_input **lm_find(uint32_t wi, uint32_t slot)
{
    for (size_t k = 0; k < g_lm.n; k++)
        if (g_lm.in[k] && g_lm.in[k]->worker == wi && g_lm.in[k]->input == slot)
            return &g_lm.in[k];
    return NULL;
}

/* The engine is about to free input `slot` of worker wi (a listener a
 * reload removed, closed): its series read it, so they go first. */
static void lm_input_gone(void *ctx, uint32_t wi, uint32_t slot)
{
    (void)ctx;
    lm_input **x = lm_find(wi, slot);
    if (x) {
        lm_input_unregister(*x);
        *x = NULL;
    }
}

/* Gives every input that has no series yet its series: all of them at the
 * start, then those a live reload added, in new or reused slots (control
 * thread, the one that also serves /metrics, so a scrape never sees half of
 * it). A listener removed and added again under its name is a new input:
 * the removed one's series are taken down, or the two would export the same
 * label set. */
static int register_listener_metrics(rf_engine *e)
{
    /* What the reload freed lets go of its series (lm_input_gone) first. */
    rf_engine_reap_inputs(e);
    size_t kept = 0; /* compact: entries of freed inputs are NULL */
    for (size_t k = 0; k < g_lm.n; k++)
        if (g_lm.in[k])
            g_lm.in[kept++] = g_lm.in[k];
    g_lm.n = kept;
    for (uint32_t wi = 0; wi < rf_engine_workers(e) && wi < RF_DAEMON_MAX_WORKERS; wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            if (!rf_shard_input_parser(s, i) || lm_find(wi, i))
                continue; /* an empty slot, or an input that has its series */
            if (g_lm.n == g_lm.cap) {
                size_t cap = g_lm.cap ? g_lm.cap * 2 : 16;
                lm_input **p = realloc(g_lm.in, cap * sizeof(*p));
                if (!p)
                    return -ENOMEM;
                g_lm.in = p;
                g_lm.cap = cap;
            }
            lm_input *x;
            int rc = lm_input_register(s, wi, i, &x);
            if (rc < 0)
                return rc;
            /* The removed input keeps its (empty) record until it is freed
             * (lm_input_gone), so that it is not given series again. */
            for (size_t k = 0; k < g_lm.n; k++)
                if (g_lm.in[k] && g_lm.in[k]->worker == wi && strcmp(g_lm.in[k]->name, x->name) == 0)
                    lm_input_takedown(g_lm.in[k]);
            g_lm.in[g_lm.n++] = x;
        }
    }
    return 0;
}

static void unregister_listener_metrics(void)
{
    if (g_lm.engine)
        rf_engine_set_input_gone(g_lm.engine, NULL, NULL);
    for (size_t k = 0; k < g_lm.n; k++)
        if (g_lm.in[k])
            lm_input_unregister(g_lm.in[k]);
    free(g_lm.in);
    memset(&g_lm, 0, sizeof(g_lm));
}

int rf_engine_views_listeners_changed(rf_engine *e, rf_err *err)
{
    int rc = register_listener_metrics(e);
    if (rc < 0)
        return rf_err_set(err, -rc, "registering the new listeners' metrics: %s", strerror(-rc));
    return 0;
}

/* ---- errors: the most recent rejected lines, newest first --------------- */

#define VIEW_ERRORS_MAX 64

static int show_errors(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("errors", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {"time", "worker", "source_id", "reason", "source",
                                       "excerpt"};
    RF_OPS_TABLE_BEGIN(w, "errors", cols);
    rf_reject_entry *entries = calloc(VIEW_ERRORS_MAX, sizeof(*entries));
    if (!entries) {
        rf_ops_table_end(w);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            if (!rf_shard_input_parser(s, i))
                continue; /* an empty slot */
            size_t n = rf_parse_reject_log_read(rf_shard_input_parser(s, i), entries,
                                                VIEW_ERRORS_MAX);
            for (size_t k = 0; k < n; k++) {
                char ts[40], excerpt[RF_REJECT_EXCERPT_MAX + 1];
                rf_clock_format_rfc3339(entries[k].wall_ns, ts, sizeof(ts));
                memcpy(excerpt, entries[k].excerpt, entries[k].excerpt_len);
                excerpt[entries[k].excerpt_len] = '\0';
                rf_ops_cell_str(w, ts);
                rf_ops_cell_u64(w, wi);
                rf_ops_cell_u64(w, i);
                rf_ops_cell_str(w, rf_reject_reason_name(entries[k].reason));
                rf_ops_cell_str(w, entries[k].source);
                rf_ops_cell_str(w, excerpt);
            }
        }
    }
    free(entries);
    rf_ops_table_end(w);
    return 0;
}

/* ---- stages --------------------------------------------------------------- */

static int show_stages(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("stages", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {
        "worker",          "series",          "series_rejected", "processed",
        "unknown_series",  "unrouted",        "to_critical",     "to_standard",
        "to_store",        "store_rejected",  "routed",          "agg_applied",
        "agg_late_dropped", "agg_windows",    "alerts_fired",    "alerts_resolved",
        "corr_open",       "corr_forwarded",  "corr_received",   "corr_stale"};
    RF_OPS_TABLE_BEGIN(w, "stages", cols);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        rf_pipeline_stats ps;
        rf_pipeline_stage_stats st;
        rf_pipeline_stats_read(p, &ps);
        rf_pipeline_stages_read(p, &st);
        rf_ops_cell_u64(w, wi);
        rf_ops_cell_u64(w, st.series.count);
        rf_ops_cell_u64(w, ps.series_rejected);
        rf_ops_cell_u64(w, ps.processed);
        rf_ops_cell_u64(w, ps.unknown_series);
        rf_ops_cell_u64(w, ps.unrouted);
        rf_ops_cell_u64(w, ps.to_critical_sinks);
        rf_ops_cell_u64(w, ps.to_standard_sinks);
        rf_ops_cell_u64(w, ps.to_store);
        rf_ops_cell_u64(w, ps.store_rejected);
        rf_ops_cell_u64(w, st.router.routed);
        rf_ops_cell_u64(w, st.aggregation.applied);
        rf_ops_cell_u64(w, st.aggregation.late_dropped);
        rf_ops_cell_u64(w, st.aggregation.windows_emitted);
        rf_ops_cell_u64(w, st.alerts.fired);
        rf_ops_cell_u64(w, st.alerts.resolved);
        rf_ops_cell_u64(w, st.correlation.id_open);
        rf_ops_cell_u64(w, st.correlation.forwarded);
        rf_ops_cell_u64(w, st.correlation.received);
        rf_ops_cell_u64(w, st.correlation.peer_stale + st.correlation.peer_malformed);
    }
    rf_ops_table_end(w);

    static const char *const scols[] = {"worker", "sink", "accepted", "lines_out", "bytes_out",
                                        "dropped_queue_full", "dropped_disconnected",
                                        "dropped_other", "state"};
    static const char *const states[] = {"disconnected", "connecting", "connected",
                                         "breaker_open"};
    RF_OPS_TABLE_BEGIN(w, "sinks", scols);
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            if (!sk)
                continue; /* store sinks: see `show storage` */
            rf_sink_stats ss;
            rf_sink_stats_read(sk, &ss);
            rf_ops_cell_u64(w, wi);
            rf_ops_cell_str(w, rf_sink_name(sk));
            rf_ops_cell_u64(w, ss.accepted);
            rf_ops_cell_u64(w, ss.lines_out);
            rf_ops_cell_u64(w, ss.bytes_out);
            rf_ops_cell_u64(w, ss.drop_queue_full);
            rf_ops_cell_u64(w, ss.drop_disconnected);
            rf_ops_cell_u64(w, ss.drop_unsupported + ss.drop_oversize + ss.drop_io_error);
            /* A connection state is a forwarder's; a file or counting sink
             * has none (it read as "disconnected"). */
            const enum rf_sink_type t = rf_sink_type_of(sk);
            const bool forwarder = t == RF_SINK_LP_UDP || t == RF_SINK_LP_TCP;
            rf_ops_cell_str(w, !forwarder ? "-" : ss.state < 4 ? states[ss.state] : "?");
        }
    }
    rf_ops_table_end(w);
    return 0;
}

/* ---- storage -------------------------------------------------------------- */

static int show_storage(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("storage", args, err);
    if (rc)
        return rc;
    rf_store *store = rf_engine_store(e);
    if (!store) {
        rf_ops_no_data(w, "storage", "storage is disabled (storage.enabled: false)");
        return 0;
    }
    rf_store_stats st;
    rf_store_stats_read(store, &st);
    rf_ops_obj_begin(w, "storage");
    rf_ops_kv_str(w, "dir", rf_engine_settings(e)->storage.dir);
    rf_ops_kv_u64(w, "segments", st.segments);
    rf_ops_kv_u64(w, "bytes", st.bytes);
    rf_ops_kv_u64(w, "segments_removed_by_retention", st.segments_removed);
    rf_ops_kv_u64(w, "bytes_removed_by_retention", st.bytes_removed);
    rf_ops_kv_u64(w, "recovery_segments_scanned", st.recovery.segments_open);
    rf_ops_kv_u64(w, "recovery_tail_bytes_cut", st.recovery.tail_bytes_cut);
    rf_ops_kv_u64(w, "recovery_corrupt_regions", st.recovery.corrupt_regions);
    rf_ops_kv_u64(w, "recovery_segments_quarantined", st.recovery.segments_quarantined);
    rf_ops_obj_end(w);

    static const char *const cols[] = {
        "shard",           "series",       "points_appended",       "points_buffered",
        "blocks_written",  "bytes_written", "fsyncs",               "dropped_backpressure",
        "dropped_io_error", "write_errors", "dropped_io_error_points", "write_errors_by_errno",
        "state",           "degraded_since", "recoveries",          "last_error",
        "blocks_cut_by_memory", "buffer_bytes"};
    RF_OPS_TABLE_BEGIN(w, "storage_shards", cols);
    for (uint32_t i = 0; i < rf_store_shards(store); i++) {
        rf_store_shard_stats ss;
        rf_store_shard_io_status io;
        rf_store_shard_stats_read(rf_store_shard_get(store, i), &ss);
        rf_store_shard_io_status_read(rf_store_shard_get(store, i), &io);
        char by_errno[128] = "", since[40] = "";
        const struct {
            const char *name;
            uint64_t n;
        } errs[] = {{"ENOSPC", io.write_errors_enospc}, {"EDQUOT", io.write_errors_edquot},
                    {"EROFS", io.write_errors_erofs},   {"EIO", io.write_errors_eio},
                    {"other", io.write_errors_other}};
        size_t len = 0;
        for (size_t k = 0; k < sizeof(errs) / sizeof(errs[0]) && len < sizeof(by_errno); k++)
            if (errs[k].n)
                len += (size_t)snprintf(by_errno + len, sizeof(by_errno) - len, "%s%s=%lu",
                                        len ? "," : "", errs[k].name, (unsigned long)errs[k].n);
        if (io.state == RF_STORE_IO_DEGRADED && io.degraded_since_ns)
            rf_clock_format_rfc3339(io.degraded_since_ns, since, sizeof(since));
        rf_ops_cell_u64(w, i);
        rf_ops_cell_u64(w, ss.series);
        rf_ops_cell_u64(w, ss.points_appended);
        rf_ops_cell_u64(w, ss.points_buffered);
        rf_ops_cell_u64(w, ss.blocks_written);
        rf_ops_cell_u64(w, ss.bytes_written);
        rf_ops_cell_u64(w, ss.fsyncs);
        rf_ops_cell_u64(w, ss.dropped_backpressure);
        rf_ops_cell_u64(w, ss.dropped_io_error);
        rf_ops_cell_u64(w, ss.write_errors);
        rf_ops_cell_u64(w, io.dropped_io_error_points);
        rf_ops_cell_str(w, by_errno);
        rf_ops_cell_str(w, rf_store_io_health_name(io.state));
        rf_ops_cell_str(w, since);
        rf_ops_cell_u64(w, io.recoveries);
        rf_ops_cell_str(w, io.last_error);
        rf_ops_cell_u64(w, ss.blocks_cut_by_memory);
        rf_ops_cell_u64(w, ss.buffer_bytes);
    }
    rf_ops_table_end(w);
    return 0;
}

/* ---- storage on /metrics: writes, write errors, losses, degraded state --- */

enum storage_field {
    SF_POINTS_APPENDED,
    SF_BLOCKS_WRITTEN,
    SF_BYTES_WRITTEN,
    SF_DROPPED_BACKPRESSURE,
    SF_DROPPED_IO_BLOCKS,
    SF_DROPPED_IO_POINTS,
    SF_WERR_ENOSPC,
    SF_WERR_EDQUOT,
    SF_WERR_EROFS,
    SF_WERR_EIO,
    SF_WERR_OTHER,
    SF_RECOVERIES,
    SF_DEGRADED,
    SF_CUT_BY_MEMORY,
    SF_BUFFER_BYTES,
    SF__COUNT
};

static const struct {
    enum rf_metric_type type;
    const char *name, *help, *extra_labels;
} storage_metric_defs[SF__COUNT] = {
    [SF_POINTS_APPENDED] = {RF_METRIC_COUNTER, "ringflow_storage_points_appended",
                            "Points a storage shard took into its buffers.", NULL},
    [SF_BLOCKS_WRITTEN] = {RF_METRIC_COUNTER, "ringflow_storage_blocks_written",
                           "Blocks a storage shard's writes completed for.", NULL},
    [SF_BYTES_WRITTEN] = {RF_METRIC_COUNTER, "ringflow_storage_bytes_written",
                          "Bytes a storage shard wrote to its segments.", NULL},
    [SF_DROPPED_BACKPRESSURE] = {RF_METRIC_COUNTER, "ringflow_storage_dropped_backpressure_points",
                                 "Points dropped because their series' buffer was full.", NULL},
    [SF_DROPPED_IO_BLOCKS] = {RF_METRIC_COUNTER, "ringflow_storage_dropped_io_error_blocks",
                              "Blocks lost to write errors.", NULL},
    [SF_DROPPED_IO_POINTS] = {RF_METRIC_COUNTER, "ringflow_storage_dropped_io_error_points",
                              "Points in the blocks lost to write errors.", NULL},
    [SF_WERR_ENOSPC] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                        "Failed writes, fdatasyncs, creates and footers, by errno.",
                        "errno=\"ENOSPC\""},
    [SF_WERR_EDQUOT] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                        "Failed writes, fdatasyncs, creates and footers, by errno.",
                        "errno=\"EDQUOT\""},
    [SF_WERR_EROFS] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                       "Failed writes, fdatasyncs, creates and footers, by errno.",
                       "errno=\"EROFS\""},
    [SF_WERR_EIO] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                     "Failed writes, fdatasyncs, creates and footers, by errno.", "errno=\"EIO\""},
    [SF_WERR_OTHER] = {RF_METRIC_COUNTER, "ringflow_storage_write_errors",
                       "Failed writes, fdatasyncs, creates and footers, by errno.",
                       "errno=\"other\""},
    [SF_RECOVERIES] = {RF_METRIC_COUNTER, "ringflow_storage_recoveries",
                       "Times a degraded storage shard wrote again.", NULL},
    [SF_DEGRADED] = {RF_METRIC_GAUGE, "ringflow_storage_degraded",
                     "1 while a storage shard drops blocks after a write error and retries.", NULL},
    [SF_CUT_BY_MEMORY] = {RF_METRIC_COUNTER, "ringflow_storage_blocks_cut_by_memory",
                          "Blocks cut early: growing their buffer would have passed "
                          "storage.buffer_memory.", NULL},
    [SF_BUFFER_BYTES] = {RF_METRIC_GAUGE, "ringflow_storage_buffer_bytes",
                         "Bytes of series point buffers a storage shard holds.", NULL},
};

typedef struct storage_metric {
    const rf_store_shard *shard;
    enum storage_field field;
} storage_metric;

static struct {
    storage_metric *m;
    int *ids;
    size_t n;
} g_storage_m;

static uint64_t read_storage_metric(void *ctx)
{
    const storage_metric *m = ctx;
    rf_store_shard_stats ss;
    rf_store_shard_io_status io;
    rf_store_shard_stats_read(m->shard, &ss);
    rf_store_shard_io_status_read(m->shard, &io);
    switch (m->field) {
    case SF_POINTS_APPENDED: return ss.points_appended;
    case SF_BLOCKS_WRITTEN: return ss.blocks_written;
    case SF_BYTES_WRITTEN: return ss.bytes_written;
    case SF_DROPPED_BACKPRESSURE: return ss.dropped_backpressure;
    case SF_DROPPED_IO_BLOCKS: return ss.dropped_io_error;
    case SF_DROPPED_IO_POINTS: return io.dropped_io_error_points;
    case SF_WERR_ENOSPC: return io.write_errors_enospc;
    case SF_WERR_EDQUOT: return io.write_errors_edquot;
    case SF_WERR_EROFS: return io.write_errors_erofs;
    case SF_WERR_EIO: return io.write_errors_eio;
    case SF_WERR_OTHER: return io.write_errors_other;
    case SF_RECOVERIES: return io.recoveries;
    case SF_CUT_BY_MEMORY: return ss.blocks_cut_by_memory;
    case SF_BUFFER_BYTES: return ss.buffer_bytes;
    default: return io.state == RF_STORE_IO_DEGRADED;
    }
}

static int register_storage_metrics(rf_engine *e)
{
    rf_store *store = rf_engine_store(e);
    if (!store)
        return 0;
    size_t cap = (size_t)rf_store_shards(store) * SF__COUNT;
    g_storage_m.m = calloc(cap, sizeof(*g_storage_m.m));
    g_storage_m.ids = calloc(cap, sizeof(int));
    if (!g_storage_m.m || !g_storage_m.ids)
        return -ENOMEM;
    for (uint32_t i = 0; i < rf_store_shards(store); i++) {
        for (int f = 0; f < SF__COUNT; f++) {
            char labels[RF_STATS_LABELS_MAX];
            const char *x = storage_metric_defs[f].extra_labels;
            snprintf(labels, sizeof(labels), "shard=\"%u\"%s%s", i, x ? "," : "", x ? x : "");
            storage_metric *m = &g_storage_m.m[g_storage_m.n];
            m->shard = rf_store_shard_get(store, i);
            m->field = (enum storage_field)f;
            int id = rf_stats_register_fn(storage_metric_defs[f].type, storage_metric_defs[f].name,
                                          storage_metric_defs[f].help, labels,
                                          read_storage_metric, m);
            if (id < 0)
                return id;
            g_storage_m.ids[g_storage_m.n++] = id;
        }
    }
    return 0;
}

static void unregister_storage_metrics(void)
{
    for (size_t i = 0; i < g_storage_m.n; i++)
        rf_stats_unregister(g_storage_m.ids[i]);
    free(g_storage_m.m);
    free(g_storage_m.ids);
    memset(&g_storage_m, 0, sizeof(g_storage_m));
}

/* ---- series top N: cardinality per measurement ------------------------ */

/* Rows merged over the workers (each worker counts its own series), by the
 * hash of the measurement's whole name. */
#define VIEW_MEAS_MAX 16384u
#define VIEW_MEAS_BUCKETS (2u * VIEW_MEAS_MAX)

typedef struct meas_row {
    char name[RF_SERIES_MEAS_NAME];
    uint64_t hash;
    uint64_t active, refused_shard, refused_meas, dropped;
    uint32_t limit;           /* per worker; the largest seen (reloads apply one by one) */
    uint32_t workers_at_limit;
    bool other;
} meas_row;

typedef struct meas_acc {
    meas_row *rows;
    uint32_t *index; /* row + 1, 0 = empty */
    uint32_t n;      /* measurements past VIEW_MEAS_MAX - 1 are merged into "other" */
} meas_acc;

static meas_row *meas_row_of(meas_acc *a, const rf_series_meas_stats *m)
{
    /* "other" of every worker, and rows past the cap, share one row (hash 0). */
    uint64_t h = m->other ? 0 : m->hash;
    for (int pass = 0; pass < 2; pass++, h = 0) {
        uint32_t i = (uint32_t)(h ^ (h >> 32)) & (VIEW_MEAS_BUCKETS - 1);
        for (;; i = (i + 1) & (VIEW_MEAS_BUCKETS - 1)) {
            uint32_t r = a->index[i];
            if (r && a->rows[r - 1].hash == h)
                return &a->rows[r - 1];
            if (r)
                continue;
            /* The last row is kept for "other", which always finds room. */
            if (h && a->n >= VIEW_MEAS_MAX - 1)
                break; /* second pass: the shared "other" row */
            meas_row *row = &a->rows[a->n];
            memset(row, 0, sizeof(*row));
            row->hash = h;
            row->other = h == 0;
            snprintf(row->name, sizeof(row->name), "%s", h ? m->name : "(other measurements)");
            a->index[i] = ++a->n;
            return row;
        }
    }
    return NULL; /* not reached: "other" always has its row */
}

static void meas_add(void *ctx, const rf_series_meas_stats *m)
{
    meas_row *r = meas_row_of(ctx, m);
    if (!r)
        return;
    r->active += m->active;
    r->refused_shard += m->refused_shard_limit;
    r->refused_meas += m->refused_measurement_limit;
    r->dropped += m->dropped_events;
    if (!r->other && m->limit > r->limit)
        r->limit = m->limit;
    if (!r->other && m->limit && m->active >= m->limit)
        r->workers_at_limit++;
}

enum meas_rank { RANK_PRESSURE, RANK_REFUSED, RANK_ACTIVE };
static const char *const k_rank_names[] = {"active+refused", "refused", "active"};

static uint64_t rank_key(const meas_row *r, enum meas_rank by, int level)
{
    const uint64_t refused = r->refused_shard + r->refused_meas;
    switch (by) {
    case RANK_REFUSED: return level == 0 ? refused : level == 1 ? r->dropped : r->active;
    case RANK_ACTIVE: return level == 0 ? r->active : level == 1 ? refused : r->dropped;
    default: return level == 0 ? r->active + refused : level == 1 ? r->dropped : refused;
    }
}

static enum meas_rank g_rank_by; /* control thread only: qsort has no context */

static int meas_cmp(const void *x, const void *y)
{
    const meas_row *a = x, *b = y;
    for (int level = 0; level < 3; level++) {
        uint64_t ka = rank_key(a, g_rank_by, level), kb = rank_key(b, g_rank_by, level);
        if (ka != kb)
            return ka < kb ? 1 : -1;
    }
    return strcmp(a->name, b->name);
}

static void meas_acc_free(meas_acc *a)
{
    free(a->rows);
    free(a->index);
}

/* Every worker's measurements, merged and ranked. */
static int meas_collect(const rf_engine *e, enum meas_rank by, meas_acc *a)
{
    memset(a, 0, sizeof(*a));
    a->rows = malloc(VIEW_MEAS_MAX * sizeof(*a->rows));
    a->index = calloc(VIEW_MEAS_BUCKETS, sizeof(*a->index));
    if (!a->rows || !a->index) {
        meas_acc_free(a);
        return -ENOMEM;
    }
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++)
        rf_pipeline_measurements(rf_shard_pipeline(rf_engine_shard(e, wi)), meas_add, a);
    g_rank_by = by;
    qsort(a->rows, a->n, sizeof(a->rows[0]), meas_cmp);
    return 0;
}

static void series_metrics_refresh(const rf_engine *e, const meas_acc *ranked_by_refused);

/* show series [top N] [refused|active]: the measurements ranked by active +
 * refused series by default, so the one whose new series were all refused
 * still leads; `refused` ranks by refused series (then dropped events),
 * `active` by accepted series only. */
static int show_series(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    unsigned long top = 10;
    enum meas_rank by = RANK_PRESSURE;
    static const char usage[] = "usage: show series [top N] [refused|active]";
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", args ? args : "");
    bool seen_top = false, seen_rank = false;
    for (char *save = NULL, *tok = strtok_r(buf, " \t", &save); tok;
         tok = strtok_r(NULL, " \t", &save)) {
        if (!strcmp(tok, "top") && !seen_top) {
            char *n = strtok_r(NULL, " \t", &save), *end = NULL;
            top = n ? strtoul(n, &end, 10) : 0;
            if (!n || *end || top == 0)
                return rf_err_set(err, EINVAL, "%s (N >= 1)", usage);
            seen_top = true;
        } else if (!seen_rank && (!strcmp(tok, "refused") || !strcmp(tok, "active"))) {
            by = !strcmp(tok, "refused") ? RANK_REFUSED : RANK_ACTIVE;
            seen_rank = true;
        } else {
            return rf_err_set(err, EINVAL, "%s", usage);
        }
    }
    meas_acc acc;
    if (meas_collect(e, by, &acc) < 0)
        return rf_err_set(err, ENOMEM, "out of memory");
    uint64_t total = 0, rej_shard = 0, rej_meas = 0, again = 0, forgotten = 0, dropped = 0,
             unattributed = 0, failed = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        rf_pipeline_stage_stats st;
        rf_pipeline_stats ps;
        rf_pipeline_stages_read(p, &st);
        rf_pipeline_stats_read(p, &ps);
        total += st.series.count;
        rej_shard += st.series.rejected_shard_limit;
        rej_meas += st.series.rejected_measurement_limit;
        again += st.series.refused_again;
        forgotten += st.series.refused_forgotten;
        dropped += st.series.dropped_events;
        unattributed += st.series.dropped_unattributed;
        failed += ps.series_def_failed;
    }
    const rf_pipeline_settings *cfg = &rf_engine_settings(e)->pipeline;
    rf_ops_obj_begin(w, "series");
    rf_ops_kv_u64(w, "active_series", total);
    rf_ops_kv_u64(w, "max_series_per_worker", cfg->max_series);
    rf_ops_kv_u64(w, "max_series_per_measurement", cfg->limits.max_per_measurement);
    rf_ops_kv_u64(w, "cardinality_overrides", cfg->limits.n_overrides);
    rf_ops_kv_u64(w, "rejected_by_cardinality_limit", rej_shard + rej_meas);
    rf_ops_kv_u64(w, "rejected_shard_limit", rej_shard);
    rf_ops_kv_u64(w, "rejected_measurement_limit", rej_meas);
    rf_ops_kv_u64(w, "refused_announced_again", again);
    rf_ops_kv_u64(w, "refused_ids_forgotten", forgotten);
    rf_ops_kv_u64(w, "dropped_events_of_refused_series", dropped);
    rf_ops_kv_u64(w, "dropped_events_unattributed", unattributed);
    rf_ops_kv_u64(w, "definitions_failed", failed);
    rf_ops_kv_u64(w, "measurements", acc.n);
    rf_ops_kv_str(w, "ranked_by", k_rank_names[by]);
    rf_ops_obj_end(w);
    static const char *const cols[] = {"measurement",     "active_series",
                                       "refused_series",  "refused_measurement_limit",
                                       "refused_shard_limit", "dropped_events",
                                       "limit_per_worker", "at_limit", "workers_at_limit"};
    RF_OPS_TABLE_BEGIN(w, "series_by_measurement", cols);
    for (uint32_t i = 0; i < acc.n && i < top; i++) {
        const meas_row *r = &acc.rows[i];
        rf_ops_cell_str(w, r->name);
        rf_ops_cell_u64(w, r->active);
        rf_ops_cell_u64(w, r->refused_shard + r->refused_meas);
        rf_ops_cell_u64(w, r->refused_meas);
        rf_ops_cell_u64(w, r->refused_shard);
        rf_ops_cell_u64(w, r->dropped);
        rf_ops_cell_u64(w, r->limit);
        rf_ops_cell_str(w, r->workers_at_limit ? "yes" : "no");
        rf_ops_cell_u64(w, r->workers_at_limit);
    }
    rf_ops_table_end(w);
    if (by == RANK_REFUSED)
        series_metrics_refresh(e, &acc);
    meas_acc_free(&acc);
    return 0;
}

/* ---- series on /metrics: refused series of the top measurements -------- */

/* Per-measurement labels are bounded: the first SERIES_PROM_TOP measurements
 * seen with refused series (taken in order of refused series at each look)
 * get their own, and keep them for the life of the process, so that their
 * counters only go up; every other measurement is summed under
 * measurement="(other)". A look happens whenever the daemon reads its drop
 * counters (rf_engine_drops_read: at start and every 10 s) and on `show
 * series ... refused`. Per worker and reason, without a measurement:
 * ringflow_series_refused (pipeline.c). */
#define SERIES_PROM_TOP 10
#define SERIES_PROM_WORKERS_MAX 256

enum { SM_REFUSED_MEAS, SM_REFUSED_SHARD, SM_DROPPED, SM__COUNT };

typedef struct series_metric {
    uint64_t hash;      /* 0: "(other)" */
    int field;          /* SM_* */
    uint32_t slot[SERIES_PROM_WORKERS_MAX]; /* entry index per worker, UINT32_MAX unknown */
} series_metric;

static struct {
    const rf_engine *e;
    bool enabled;
    uint32_t n_meas;
    uint64_t hashes[SERIES_PROM_TOP];
    series_metric m[(SERIES_PROM_TOP + 1) * SM__COUNT];
    uint32_t n_m;
    int ids[(SERIES_PROM_TOP + 1) * SM__COUNT];
    uint64_t last_refused;
} g_sm;

static uint64_t sm_field(const rf_series_meas_stats *s, int field)
{
    return field == SM_REFUSED_MEAS ? s->refused_measurement_limit
           : field == SM_REFUSED_SHARD ? s->refused_shard_limit
                                       : s->dropped_events;
}

typedef struct sm_find {
    uint64_t hash;
    uint32_t index;
} sm_find;

static void sm_find_fn(void *ctx, const rf_series_meas_stats *m)
{
    sm_find *f = ctx;
    if (!m->other && m->hash == f->hash)
        f->index = m->index;
}

/* One labelled measurement over every worker. */
static uint64_t sm_read_one(series_metric *sm)
{
    uint64_t v = 0;
    const uint32_t workers = rf_engine_workers(g_sm.e);
    for (uint32_t wi = 0; wi < workers && wi < SERIES_PROM_WORKERS_MAX; wi++) {
        const rf_series_table *t = rf_pipeline_series(rf_shard_pipeline(rf_engine_shard(g_sm.e, wi)));
        if (sm->slot[wi] == UINT32_MAX) {
            /* Not on this worker when last looked: look again (entries never
             * move, so once found it is read directly). */
            sm_find f = {sm->hash, UINT32_MAX};
            rf_series_table_measurements(t, sm_find_fn, &f);
            sm->slot[wi] = f.index;
        }
        rf_series_meas_stats s;
        if (sm->slot[wi] != UINT32_MAX && rf_series_table_measurement(t, sm->slot[wi], &s))
            v += sm_field(&s, sm->field);
    }
    return v;
}

static uint64_t sm_read(void *ctx)
{
    series_metric *sm = ctx;
    if (sm->hash)
        return sm_read_one(sm);
    /* "(other)": the total less the labelled measurements. */
    uint64_t total = 0, labelled = 0;
    for (uint32_t wi = 0; wi < rf_engine_workers(g_sm.e); wi++) {
        rf_pipeline_stage_stats st;
        rf_pipeline_stages_read(rf_shard_pipeline(rf_engine_shard(g_sm.e, wi)), &st);
        total += sm->field == SM_REFUSED_MEAS    ? st.series.rejected_measurement_limit
                 : sm->field == SM_REFUSED_SHARD ? st.series.rejected_shard_limit
                                                 : st.series.dropped_events;
    }
    for (uint32_t i = 0; i < g_sm.n_m; i++)
        if (g_sm.m[i].hash && g_sm.m[i].field == sm->field)
            labelled += sm_read_one(&g_sm.m[i]);
    return total > labelled ? total - labelled : 0;
}

/* Registers the three series of one measurement (hash 0: "(other)"). */
static void sm_register(uint64_t hash, const char *name)
{
    static const char *const reasons[] = {"measurement_limit", "shard_limit"};
    rf_strbuf esc = {0};
    rf_stats_escape(&esc, name);
    /* Cut so that the labels fit RF_STATS_LABELS_MAX, never inside an escape. */
    size_t len = esc.p ? esc.len : 0;
    if (len > 96) {
        len = 96;
        size_t bs = 0;
        while (bs < len && esc.p[len - 1 - bs] == '\\')
            bs++;
        if (bs % 2)
            len--;
    }
    for (int field = 0; field < SM__COUNT; field++) {
        if (g_sm.n_m >= sizeof(g_sm.m) / sizeof(g_sm.m[0]))
            break;
        series_metric *sm = &g_sm.m[g_sm.n_m];
        sm->hash = hash;
        sm->field = field;
        for (uint32_t i = 0; i < SERIES_PROM_WORKERS_MAX; i++)
            sm->slot[i] = UINT32_MAX;
        char labels[RF_STATS_LABELS_MAX];
        int id;
        if (field == SM_DROPPED) {
            snprintf(labels, sizeof(labels), "measurement=\"%.*s\"", (int)len, esc.p ? esc.p : "");
            id = rf_stats_register_fn(RF_METRIC_COUNTER, "ringflow_series_refused_events_by_measurement",
                                      "Events dropped because their series was refused, for the "
                                      "top measurements (the rest as measurement=\"(other)\").",
                                      labels, sm_read, sm);
        } else {
            snprintf(labels, sizeof(labels), "measurement=\"%.*s\",reason=\"%s\"", (int)len,
                     esc.p ? esc.p : "", reasons[field]);
            id = rf_stats_register_fn(RF_METRIC_COUNTER, "ringflow_series_refused_by_measurement",
                                      "New series refused by reason, for the top measurements "
                                      "(the rest as measurement=\"(other)\").",
                                      labels, sm_read, sm);
        }
        if (id >= 0)
            g_sm.ids[g_sm.n_m++] = id;
    }
    rf_strbuf_free(&esc);
}

/* A look at who is refused: measurements not labelled yet get labels while
 * there is room. `ranked` (by refused) may be NULL: then it is collected. */
static void series_metrics_refresh(const rf_engine *e, const meas_acc *ranked)
{
    if (!g_sm.enabled || g_sm.e != e)
        return;
    if (g_sm.n_m == 0)
        sm_register(0, "(other)");
    if (g_sm.n_meas >= SERIES_PROM_TOP)
        return;
    meas_acc own;
    if (!ranked) {
        if (meas_collect(e, RANK_REFUSED, &own) < 0)
            return;
        ranked = &own;
    }
    for (uint32_t i = 0; i < ranked->n && g_sm.n_meas < SERIES_PROM_TOP; i++) {
        const meas_row *r = &ranked->rows[i];
        if (r->refused_shard + r->refused_meas == 0)
            break; /* ranked by refused: none after this one either */
        if (r->other)
            continue;
        bool known = false;
        for (uint32_t k = 0; k < g_sm.n_meas && !known; k++)
            known = g_sm.hashes[k] == r->hash;
        if (known)
            continue;
        g_sm.hashes[g_sm.n_meas++] = r->hash;
        sm_register(r->hash, r->name);
    }
    if (ranked == &own)
        meas_acc_free(&own);
}

static void series_metrics_unregister(void)
{
    for (uint32_t i = 0; i < g_sm.n_m; i++)
        rf_stats_unregister(g_sm.ids[i]);
    memset(&g_sm, 0, sizeof(g_sm));
}

void rf_engine_drops_read(const rf_engine *e, rf_engine_drops *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_shard *s = rf_engine_shard(e, wi);
        rf_engine_worker_stats ws;
        rf_engine_worker_stats_read(e, wi, &ws);
        out->ring_full += ws.dropped_ring_full;
        for (uint32_t i = 0; i < rf_shard_input_count(s); i++) {
            const rf_parse_ctx *pc = rf_shard_input_parser(s, i);
            if (!pc)
                continue; /* an empty slot: its counts are in the retired totals */
            out->rejected_lines += rf_parse_counter(pc, RF_PC_LINES_REJECTED);
            const rf_listener *l = rf_shard_input_listener(s, i);
            if (l)
                out->kernel += rf_listener_counter(l, RF_LC_KERNEL_DROPS);
        }
        const rf_shard_retired *r = rf_shard_retired_counters(s);
        out->rejected_lines += r->parse[RF_PC_LINES_REJECTED];
        out->kernel += r->listen[RF_LC_KERNEL_DROPS];
        for (uint32_t q = 0; q < rf_shard_dpdk_queue_count(s); q++)
            for (int c = RF_DC_DROP_FIRST; c < RF_DC__COUNT; c++)
                out->dpdk += rf_dpdk_queue_counter(rf_shard_dpdk_queue(s, q),
                                                   (enum rf_dpdk_counter_id)c);
        const rf_pipeline *p = rf_shard_pipeline(s);
        rf_pipeline_stats ps;
        rf_pipeline_stats_read(p, &ps);
        out->unknown_series += ps.unknown_series;
        out->cardinality += ps.series_rejected;
        out->unrouted += ps.unrouted;
        out->store += ps.store_rejected;
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            if (!sk)
                continue;
            rf_sink_stats ss;
            rf_sink_stats_read(sk, &ss);
            out->sinks += ss.drop_queue_full + ss.drop_disconnected + ss.drop_unsupported +
                          ss.drop_oversize + ss.drop_io_error;
        }
    }
    /* The daemon reads its drops at start and every 10 s: when series were
     * refused since the last look, the top refusing measurements get their
     * labelled metrics (see series_metrics_refresh). */
    if (g_sm.n_m == 0 || out->cardinality != g_sm.last_refused) {
        g_sm.last_refused = out->cardinality;
        series_metrics_refresh(e, NULL);
    }
}

/* ---- record (the recording tap) -------------------------------------------- */

static int show_record(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = no_args("record", args, err);
    if (rc)
        return rc;
    rf_tap_stats st;
    char path[4096];
    rf_ops_obj_begin(w, "record");
    if (!rf_engine_record_stats(e, &st, path, sizeof(path))) {
        rf_ops_kv_str(w, "state", "off");
        rf_ops_obj_end(w);
        return 0;
    }
    char started[40];
    rf_clock_format_rfc3339(st.started_wall_ns, started, sizeof(started));
    rf_ops_kv_str(w, "state", "recording");
    rf_ops_kv_str(w, "path", path);
    rf_ops_kv_str(w, "started", started);
    rf_ops_kv_u64(w, "captured", st.captured);
    rf_ops_kv_u64(w, "captured_bytes", st.bytes);
    rf_ops_kv_u64(w, "written", st.written);
    rf_ops_kv_u64(w, "file_bytes", st.file_bytes);
    rf_ops_kv_u64(w, "files", st.files);
    rf_ops_kv_u64(w, "not_recorded_ring_full", st.dropped_full);
    rf_ops_kv_u64(w, "not_recorded_too_large", st.dropped_large);
    rf_ops_kv_u64(w, "write_errors", st.write_errors);
    rf_ops_obj_end(w);
    return 0;
}


int rf_engine_views_register(rf_engine *e, rf_err *err)
{
    series_metrics_unregister();
    g_sm.e = e;
    g_sm.enabled = true;
    int rc;
    if ((rc = register_storage_metrics(e)) < 0)
        return rf_err_set(err, -rc, "registering the storage metrics: %s", strerror(-rc));
    if ((rc = rf_ops_register_show("listeners", "per listener: traffic, events, rejects, drops",
                                   show_listeners, e)) < 0 ||
        (rc = rf_ops_register_show("errors", "the most recent rejected lines", show_errors, e)) <
            0 ||
        (rc = rf_ops_register_show("stages", "per worker: series, stage counters, sinks",
                                   show_stages, e)) < 0 ||
        (rc = rf_ops_register_show("storage", "segments, bytes, per-shard writes and drops",
                                   show_storage, e)) < 0 ||
        (rc = rf_ops_register_show("series",
                                   "cardinality per measurement: active, refused, dropped "
                                   "([top N] [refused|active])",
                                   show_series, e)) < 0 ||
        (rc = rf_ops_register_show("record", "the recording of what the listeners receive "
                                   "(record start on the admin socket)",
                                   show_record, e)) < 0)
        return rf_err_set(err, -rc, "registering the engine's show commands: %s", strerror(-rc));
    g_lm.engine = e;
    rf_engine_set_input_gone(e, lm_input_gone, NULL);
    if ((rc = register_listener_metrics(e)) < 0)
        return rf_err_set(err, -rc, "registering the listeners' metrics: %s", strerror(-rc));
    return 0;
}

void rf_engine_views_unregister(void)
{
    series_metrics_unregister();
    unregister_storage_metrics();
    rf_ops_unregister_show("listeners");
    rf_ops_unregister_show("errors");
    rf_ops_unregister_show("stages");
    rf_ops_unregister_show("storage");
    rf_ops_unregister_show("series");
    rf_ops_unregister_show("record");
    unregister_listener_metrics();
}
