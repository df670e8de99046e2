/* `show forwarders`: per worker and forwarding sink (prom_remote_write,
 * influx_http, nats), where its events are: queued in the buffer, in flight,
 * acknowledged, dropped by reason, sent again after a restart; the age of
 * the oldest unsent one and the receiver's state (stages/forward/forward.h);
 * how long the worker waited for room (buffer policy block); string values
 * the sink could not carry (prom_remote_write; before the sender); line
 * bytes acknowledged and bytes the disk buffer wrote (write amplification). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/worker_shard.h"

#include "daemon/ops/views/views_pvt.h"

int rf_views_show_forwarders(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = rf_views_no_args("forwarders", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {"worker",
                                       "sink",
                                       "state",
                                       "queued_events",
                                       "queued_bytes",
                                       "in_flight",
                                       "acked",
                                       "retries",
                                       "dropped_rejected",
                                       "dropped_buffer_full",
                                       "dropped_other",
                                       "redelivered",
                                       "oldest_unsent_ms",
                                       "last_status",
                                       "nats_conn",
                                       "nats_msgs",
                                       "nats_duplicates",
                                       "nats_pending_acks",
                                       "blocked_ms",
                                       "dropped_string_unsupported",
                                       "acked_bytes",
                                       "disk_written_bytes",
                                       "retried_unsent"};
    RF_OPS_TABLE_BEGIN(w, "forwarders", cols);
    const int64_t now = rf_clock_wall_ns();
    for (uint32_t wi = 0; wi < rf_engine_workers(e); wi++) {
        const rf_pipeline *p = rf_shard_pipeline(rf_engine_shard(e, wi));
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            rf_sink_stats ss;
            if (!sk)
                continue;
            rf_sink_stats_read(sk, &ss);
            if (!ss.has_fwd)
                continue;
            const rf_fwd_stats *f = &ss.fwd;
            /* dropped_other: shutdown, corrupt and io_error (one column each
             * would pass the table's 24; /metrics has every reason). Strings
             * the encoder found go with the sink's, under
             * dropped_string_unsupported. */
            const uint64_t other = f->dropped[RF_FWD_DROP_SHUTDOWN] +
                                   f->dropped[RF_FWD_DROP_CORRUPT] +
                                   f->dropped[RF_FWD_DROP_IO_ERROR];
            const int64_t t = f->oldest_unsent_wall_ns;
            rf_ops_cell_u64(w, wi);
            rf_ops_cell_str(w, rf_sink_name(sk));
            rf_ops_cell_str(w, rf_fwd_state_name(f->state));
            RF_OPS_CELLS_U64(w, f->queued_events, f->queued_bytes, f->in_flight_events,
                             f->acked_events, f->retries, f->dropped[RF_FWD_DROP_REJECTED],
                             f->dropped[RF_FWD_DROP_BUFFER_FULL], other, f->redelivered,
                             t && now > t ? (uint64_t)(now - t) / 1000000u : 0, f->last_status);
            /* nats sinks only; "-" and zeros for the HTTP ones */
            rf_ops_cell_str(
                w, rf_sink_type_of(sk) == RF_SINK_NATS ? rf_fwd_nats_conn_name(f->nats_conn) : "-");
            RF_OPS_CELLS_U64(w, f->nats_msgs, f->nats_duplicates, f->nats_pending_acks,
                             ss.blocked_ns / 1000000u,
                             ss.drop_string_unsupported + f->dropped[RF_FWD_DROP_UNSUPPORTED],
                             f->acked_bytes, f->disk_bytes_written, f->retried_unsent);
        }
    }
    rf_ops_table_end(w);
    return 0;
}
