/* `show record`: the recording of what the listeners receive (daemon/tap.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "daemon/tap.h"

#include "daemon/ops/views/views_pvt.h"

int rf_views_show_record(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    rf_engine *e = ctx;
    int rc = rf_views_no_args("record", args, err);
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
