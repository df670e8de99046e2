/* The listeners on /metrics: rejects by reason, clamped timestamps, traffic,
 * HTTP answers; a removed listener's series stay under its name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/worker_shard.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"

#include "daemon/ops/views/views_pvt.h"

/* One registered series: a parser and which of its counters, or (reason
 * LM_TRAFFIC) one of the listener's own counters. */
#define LM_CLAMPED (-1)
#define LM_TRAFFIC (-2)
#define LM_HTTP_REQ (-3) /* requests of endpoint ep answered with status slot traffic */
#define LM_HTTP_REJ (-4) /* HTTP refusals of reason traffic */
#define LM_HTTP_CTR (-5) /* HTTP counter traffic */
#define LM_PROM (-6)     /* remote_write counter traffic */
#define LM_OTLP (-7)     /* OTLP counter traffic */
#define LM_NAN (-8)      /* values skipped as NaN (collectd, Graphite) */
typedef struct listener_metric {
    const rf_parse_ctx *pc;
    const rf_listener *l;
    const rf_http_front *hf;
    int reason;  /* enum rf_reject_reason, or one of the LM_ kinds above */
    int traffic; /* with LM_TRAFFIC: an index into listener_traffic[]; see LM_HTTP_* */
    int ep;      /* LM_HTTP_REQ: the endpoint */
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
    {"ringflow_listener_dogstatsd_events", "DogStatsD events (_e{...}) a listener's parser took.",
     RF_METRIC_COUNTER},
    {"ringflow_listener_dogstatsd_service_checks",
     "DogStatsD service checks (_sc|...) a listener's parser took.", RF_METRIC_COUNTER},
};
#define LM_TRAFFIC_N (sizeof(listener_traffic) / sizeof(listener_traffic[0]))

/* The series of one input (a listener on one worker, or a DPDK queue),
 * allocated on their own: each series' read function holds a pointer into
 * its block, so blocks never move. */
#define LM_HTTP_N                                                                                  \
    (RF_HTTP_EP__COUNT * RF_HTTP_ST__COUNT + RF_HTTP_REJ__COUNT + RF_HTTP_C__COUNT +               \
     RF_PROM_C__COUNT + RF_OTLP_C__COUNT)
#define LM_PER_INPUT (RF_REJ__COUNT + 2 + LM_TRAFFIC_N + LM_HTTP_N)
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
    if (m->reason == LM_NAN)
        return rf_parse_counter(m->pc, RF_PC_NAN_VALUES);
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
    case 6: return m->l ? rf_listener_counter(m->l, RF_LC_PARTIAL_DISCARDED) : 0;
    case 7: return rf_parse_counter(m->pc, RF_PC_DD_EVENTS);
    default: return rf_parse_counter(m->pc, RF_PC_DD_SERVICE_CHECKS);
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
                                  "ringflow_http_requests",
                                  "HTTP requests answered, by "
                                  "endpoint and status.",
                                  labels)) < 0)
                return rc;
        }
    }
    for (int r = 0; r < RF_HTTP_REJ__COUNT; r++) {
        snprintf(labels, sizeof(labels), "%s,reason=\"%s\"", plain,
                 rf_http_reject_name((enum rf_http_reject)r));
        if ((rc = lm_http_add(x, hf, LM_HTTP_REJ, r, 0, RF_METRIC_COUNTER, "ringflow_http_rejects",
                              "HTTP requests or connections the "
                              "HTTP layer refused, by reason.",
                              labels)) < 0)
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
        int id =
            r < 0 ? rf_stats_register_fn(RF_METRIC_COUNTER, "ringflow_listener_timestamps_clamped",
                                         "Accepted lines whose out-of-window timestamp "
                                         "was replaced by the receive time.",
                                         plain, read_listener_metric, m)
                  : rf_stats_register_fn(RF_METRIC_COUNTER, "ringflow_listener_lines_rejected",
                                         "Lines a listener's parser rejected, by reason.", labels,
                                         read_listener_metric, m);
        if (id < 0) {
            rc = id;
            goto fail;
        }
        x->ids[x->n++] = id;
    }
    {
        listener_metric *m = &x->m[x->n];
        *m = (listener_metric){.pc = pc, .l = l, .reason = LM_NAN};
        int id = rf_stats_register_fn(RF_METRIC_COUNTER, "ringflow_listener_nan_values",
                                      "Values skipped as NaN (collectd's, and Graphite's \"nan\" "
                                      "for a rate's first sample): not stored, not rejected.",
                                      plain, read_listener_metric, m);
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
                if (g_lm.in[k] && g_lm.in[k]->worker == wi &&
                    strcmp(g_lm.in[k]->name, x->name) == 0)
                    lm_input_takedown(g_lm.in[k]);
            g_lm.in[g_lm.n++] = x;
        }
    }
    return 0;
}

void rf_views_listener_metrics_unregister(void)
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

int rf_views_listener_metrics_attach(rf_engine *e)
{
    g_lm.engine = e;
    rf_engine_set_input_gone(e, lm_input_gone, NULL);
    return register_listener_metrics(e);
}
