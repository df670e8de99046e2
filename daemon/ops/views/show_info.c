/* `show info`: the daemon's version, uptime, configuration, memory, log level
 * and placement. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "rf_build_config.h"

#include "daemon/ops/views/views_pvt.h"
#include "core/mem/mem.h"

int rf_views_show_info(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show info' takes no arguments (besides json)");
    char started[40];
    rf_clock_format_rfc3339(g_view.start_wall_ns, started, sizeof(started));
    rf_ops_obj_begin(w, "info");
    rf_ops_kv_str(w, "version", RF_VERSION);
    rf_ops_kv_i64(w, "pid", (int64_t)getpid());
    rf_ops_kv_str(w, "started", started);
    rf_ops_kv_u64(w, "uptime_s", rf_views_read_uptime(NULL));
    rf_ops_kv_str(w, "config", g_view.source);
    rf_ops_kv_u64(w, "workers", g_view.workers);
    rf_ops_kv_u64(w, "rss_bytes", rf_mem_rss_bytes());
    rf_ops_kv_u64(w, "rss_peak_bytes", g_mem.rss_peak);
    rf_ops_kv_u64(w, "memory_limit_bytes", g_mem.limit);
    rf_ops_kv_u64(w, "memory_worst_case_bytes", g_mem.worst);
    rf_ops_kv_u64(w, "memory_over_limit_s", g_mem.over_s);
    rf_ops_kv_str(w, "log_level", rf_log_level_name(rf_log_get_level()));
    rf_ops_kv_u64(w, "components", rf_component_count());
    if (g_view.engine)
        rf_ops_kv_str(w, "placement", rf_engine_placement(g_view.engine));
    const rf_ops_server *srv = rf_ops_server_current();
    if (srv) {
        rf_ops_server_stats st;
        rf_ops_server_stats_read(srv, &st);
        rf_ops_kv_u64(w, "ops_clients", st.clients);
        rf_ops_kv_u64(w, "ops_clients_dropped_slow", st.dropped_slow);
        rf_ops_kv_u64(w, "prometheus_port", rf_ops_server_prometheus_port(srv));
    }
    rf_ops_obj_end(w);
    return 0;
}
