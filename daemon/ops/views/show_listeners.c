/* `show listeners`: per listener and worker, its traffic, events, rejects and
 * drops; the HTTP listeners' requests and answers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/worker_shard.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"

#include "daemon/ops/views/views_pvt.h"

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
            len +=
                (size_t)snprintf(reasons + len, sizeof(reasons) - len, "%s%s=%lu", len ? "," : "",
                                 rf_reject_reason_name(k), (unsigned long)r->rejects[k]);
    rf_ops_cell_u64(w, wi);
    rf_ops_cell_str(w, r->name);
    rf_ops_cell_str(w, r->proto);
    rf_ops_cell_str(w, r->transport);
    RF_OPS_CELLS_U64(w, r->listen[RF_LC_DATAGRAMS], r->listen[RF_LC_READS], r->listen[RF_LC_BYTES],
                     r->parse[RF_PC_LINES_OK], r->parse[RF_PC_EVENTS], r->parse[RF_PC_SERIES_DEFS],
                     r->parse[RF_PC_LINES_REJECTED], r->parse[RF_PC_TIMESTAMPS_CLAMPED],
                     r->kernel_drops, r->connections, r->listen[RF_LC_CONN_REFUSED],
                     r->listen[RF_LC_CONN_REFUSED_SOURCE], r->listen[RF_LC_CONN_TIMED_OUT],
                     r->listen[RF_LC_LINES_TOO_LONG], r->listen[RF_LC_PARTIAL_DISCARDED],
                     r->listen[RF_LC_ENOBUFS], r->parse[RF_PC_DD_EVENTS],
                     r->parse[RF_PC_DD_SERVICE_CHECKS]);
    rf_ops_cell_str(w, reasons);
}

int rf_views_show_listeners(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = rf_views_no_args("listeners", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {"worker",
                                       "listener",
                                       "protocol",
                                       "transport",
                                       "datagrams",
                                       "reads",
                                       "bytes",
                                       "lines_ok",
                                       "events",
                                       "series_defs",
                                       "rejected",
                                       "timestamps_clamped",
                                       "kernel_drops",
                                       "connections",
                                       "conn_refused",
                                       "conn_refused_per_source",
                                       "conn_timed_out",
                                       "lines_too_long",
                                       "partial_lines_discarded",
                                       "enobufs",
                                       "dd_events",
                                       "dd_service_checks",
                                       "rejects_by_reason"};
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
            "worker",      "listener",          "requests", "bytes_in",  "bytes_out",
            "body_bytes",  "decoded_bytes",     "points",   "continues", "connections",
            "body_in_use", "rejects_by_reason", "decoders"};
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
                RF_OPS_CELLS_U64(
                    w, rf_http_counter(hs, RF_HTTP_C_REQUESTS),
                    rf_http_counter(hs, RF_HTTP_C_BYTES_IN),
                    rf_http_counter(hs, RF_HTTP_C_BYTES_OUT),
                    rf_http_counter(hs, RF_HTTP_C_BODY_BYTES),
                    rf_http_counter(hs, RF_HTTP_C_DECODED_BYTES),
                    rf_http_counter(hs, RF_HTTP_C_POINTS), rf_http_counter(hs, RF_HTTP_C_CONTINUES),
                    rf_http_counter(hs, RF_HTTP_C_CONNECTIONS), rf_http_server_body_in_use(hs));
                rf_ops_cell_str(w, rej);
                rf_ops_cell_str(w, rw);
            }
        }
        rf_ops_table_end(w);
        static const char *const rcols[] = {"worker", "listener", "endpoint", "status", "requests"};
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
