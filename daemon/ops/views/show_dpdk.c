/* `show dpdk`: the DPDK ports (device statistics) and queues, and the ports'
 * metrics (label port="<name>"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/ops/views/views_pvt.h"

enum pfield {
    PF_IPACKETS,
    PF_IBYTES,
    PF_IMISSED,
    PF_IERRORS,
    PF_RX_NOMBUF
};

static uint64_t port_field(const rf_dpdk_port_stats *st, unsigned field)
{
    switch (field) {
    case PF_IPACKETS: return st->ipackets;
    case PF_IBYTES: return st->ibytes;
    case PF_IMISSED: return st->imissed;
    case PF_IERRORS: return st->ierrors;
    default: return st->rx_nombuf;
    }
}

/* A device read (rte_eth_stats_get) per metric: five per port and scrape,
 * on the control thread; cheap next to the scrape itself. A port whose
 * statistics cannot be read shows 0. */
static uint64_t read_port_metric(void *ctx)
{
    const metric_ctx *m = ctx;
    rf_dpdk_port_stats st;
    rf_err err;
    rf_err_clear(&err);
    if (rf_dpdk_port_stats_get(rf_engine_dpdk(g_view.engine), m->a, &st, &err) < 0)
        return 0;
    return port_field(&st, m->field);
}

static const metric_def port_metrics[] = {
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_ipackets",
     "Packets a DPDK port received (the device's count).", NULL, PF_IPACKETS},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_ibytes", "Bytes a DPDK port received.", NULL,
     PF_IBYTES},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_imissed",
     "Packets a DPDK port dropped because its RX queues were full (workers too slow).", NULL,
     PF_IMISSED},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_ierrors", "Erroneous packets a DPDK port received.",
     NULL, PF_IERRORS},
    {RF_METRIC_COUNTER, "ringflow_dpdk_port_rx_nombuf",
     "Receive failures of a DPDK port for want of an mbuf (pool too small).", NULL, PF_RX_NOMBUF},
};

int rf_views_show_dpdk(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show dpdk' takes no arguments (besides json)");
    rf_dpdk *d = g_view.engine ? rf_engine_dpdk(g_view.engine) : NULL;
    if (!d) {
        rf_ops_no_data(w, "dpdk_ports", "DPDK is not enabled, or did not start (see the log)");
        return 0;
    }
    static const char *const pcols[] = {"port",    "name",      "node",   "pool_nodes",
                                        "queues",  "ipackets",  "ibytes", "imissed",
                                        "ierrors", "rx_nombuf", "error"};
    RF_OPS_TABLE_BEGIN(w, "dpdk_ports", pcols);
    for (unsigned p = 0; p < rf_dpdk_port_count(d); p++) {
        rf_dpdk_port_stats st;
        rf_err serr;
        rf_err_clear(&serr);
        bool ok = rf_dpdk_port_stats_get(d, p, &st, &serr) == 0;
        char nodes[128] = "";
        size_t off = 0;
        for (unsigned i = 0; i < rf_dpdk_port_pool_count(d, p) && off < sizeof(nodes); i++)
            off += (size_t)snprintf(nodes + off, sizeof(nodes) - off, "%s%d", i ? "," : "",
                                    rf_dpdk_port_pool_node(d, p, i));
        const rf_dpdk_port_stats *b = p < RF_DPDK_MAX_PORTS ? &g_view.base_port[p] : NULL;
        rf_ops_cell_u64(w, p);
        rf_ops_cell_str(w, rf_dpdk_port_name(d, p));
        rf_ops_cell_i64(w, rf_dpdk_port_numa_node(d, p));
        rf_ops_cell_str(w, nodes);
        rf_ops_cell_u64(w, rf_dpdk_queue_count(d, p));
        for (unsigned f = PF_IPACKETS; f <= PF_RX_NOMBUF; f++)
            rf_ops_cell_u64(w,
                            ok ? rf_views_sub0(port_field(&st, f), b ? port_field(b, f) : 0) : 0);
        rf_ops_cell_str(w, ok ? "" : serr.msg);
    }
    rf_ops_table_end(w);

    rf_ops_dpdk_queues_table(w, d);
    return 0;
}

void rf_ops_dpdk_queues_table(rf_ops_writer *w, rf_dpdk *d)
{
    unsigned queues = 0;
    for (unsigned p = 0; d && p < rf_dpdk_port_count(d); p++)
        queues += rf_dpdk_queue_count(d, p);
    if (!queues)
        return;
    static const char *const qcols[] = {"port",  "queue",   "worker",
                                        "node",  "packets", "datagrams",
                                        "bytes", "dropped", "drops_by_reason"};
    RF_OPS_TABLE_BEGIN(w, "dpdk_queues", qcols);
    for (unsigned p = 0; p < rf_dpdk_port_count(d); p++) {
        for (unsigned q = 0; q < rf_dpdk_queue_count(d, p); q++) {
            const rf_dpdk_queue *dq = rf_dpdk_queue_at(d, p, q);
            char reasons[512];
            uint64_t dropped = rf_dpdk_queue_drops(dq, reasons, sizeof(reasons));
            rf_ops_cell_u64(w, p);
            rf_ops_cell_u64(w, q);
            rf_ops_cell_u64(w, q); /* queue q is polled by worker q (dpdk.h) */
            rf_ops_cell_i64(w, rf_dpdk_queue_numa_node(dq));
            RF_OPS_CELLS_U64(w, rf_dpdk_queue_counter(dq, RF_DC_PACKETS),
                             rf_dpdk_queue_counter(dq, RF_DC_DATAGRAMS),
                             rf_dpdk_queue_counter(dq, RF_DC_BYTES), dropped);
            rf_ops_cell_str(w, reasons);
        }
    }
    rf_ops_table_end(w);
}

/* `show dpdk` and the ports' metrics (label port="<name>"). The show is
 * registered even without DPDK, so that it says why there is nothing. */
int rf_views_dpdk_attach(rf_engine *engine)
{
    int rc = rf_ops_register_show("dpdk",
                                  "DPDK ports (ipackets, imissed, ierrors, rx_nombuf) and queues",
                                  rf_views_show_dpdk, NULL);
    if (rc < 0)
        return rc;
    g_view.dpdk_shown = true;
    rf_dpdk *d = rf_engine_dpdk(engine);
    for (unsigned p = 0; d && p < rf_dpdk_port_count(d) && rc >= 0; p++) {
        /* The port's name as a label value: backslash, quote, newline escaped. */
        char name[2 * RF_LISTENER_NAME_MAX], labels[RF_STATS_LABELS_MAX];
        size_t o = 0;
        for (const char *c = rf_dpdk_port_name(d, p); *c && o + 3 < sizeof(name); c++) {
            if (*c == '\\' || *c == '"' || *c == '\n')
                name[o++] = '\\';
            name[o++] = *c == '\n' ? 'n' : *c;
        }
        name[o] = '\0';
        snprintf(labels, sizeof(labels), "port=\"%s\"", name);
        for (size_t k = 0; k < N_OF(port_metrics) && rc >= 0; k++) {
            const metric_def *md = &port_metrics[k];
            metric_ctx *m = rf_views_new_ctx(p, 0, md->field);
            rc = m ? rf_views_keep_id(rf_stats_register_fn(md->type, md->name, md->help, labels,
                                                           read_port_metric, m))
                   : -ENOSPC;
        }
    }
    return rc < 0 ? rc : 0;
}

size_t rf_views_dpdk_metric_ctxs(void)
{
    return (size_t)RF_DPDK_MAX_PORTS * N_OF(port_metrics);
}
