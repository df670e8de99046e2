/* `show errors`: the most recent rejected lines, newest first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "daemon/worker_shard.h"
#include "ingest/protocol/protocol.h"

#include "daemon/ops/views/views_pvt.h"

#define VIEW_ERRORS_MAX 64

int rf_views_show_errors(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = rf_views_no_args("errors", args, err);
    if (rc)
        return rc;
    static const char *const cols[] = {"time",   "worker", "source_id",
                                       "reason", "source", "excerpt"};
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
            size_t n =
                rf_parse_reject_log_read(rf_shard_input_parser(s, i), entries, VIEW_ERRORS_MAX);
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
