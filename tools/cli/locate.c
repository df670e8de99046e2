/* The engine's location for the CLI (tools/cli/locate.h). */
#include "tools/cli/locate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon_config.h"
#include "daemon/ops/ops.h"
#include "daemon/storage_settings.h"
#include "rf_build_config.h"

static const char *g_config;
static bool g_done;
static char g_stats[RF_OPS_SUN_PATH_MAX], g_admin[RF_OPS_SUN_PATH_MAX];
static char g_store[RF_DAEMON_PATH_MAX];
static char g_source[RF_DAEMON_PATH_MAX + 32];

void rf_cli_locate_config(const char *path)
{
    g_config = path;
}

/* path NULL: the embedded default. Only the sections that say where things
 * are; the rest is ringflowd's to check. */
static int from_config(const char *path, rf_err *err)
{
    static rf_daemon_config dc; /* large: paths */
    static rf_ops_config ops;
    static rf_storage_settings st;
    rf_cfg_doc *doc;
    int rc = rf_daemon_config_load(path, &dc, &doc, err);
    if (rc < 0)
        return rc;
    if ((rc = rf_ops_config_parse(rf_cfg_root(doc), dc.engine.run_dir, &ops, err)) == 0 &&
        (rc = rf_storage_settings_parse(rf_cfg_root(doc), dc.engine.data_dir, &st, err)) == 0) {
        snprintf(g_stats, sizeof(g_stats), "%s", ops.socket);
        snprintf(g_admin, sizeof(g_admin), "%s", ops.admin_socket);
        snprintf(g_store, sizeof(g_store), "%s", st.dir);
    }
    rf_cfg_free(doc);
    return rc;
}

int rf_cli_locate(void)
{
    if (g_done)
        return 0;
    g_done = true;
    rf_err err;
    rf_err_clear(&err);
    if (g_config) {
        if (from_config(g_config, &err) < 0) {
            fprintf(stderr, "ringflow: --config %s: %s\n", g_config, err.msg);
            return -(err.code ? err.code : EINVAL);
        }
        snprintf(g_source, sizeof(g_source), "--config %s", g_config);
        return 0;
    }
    const char *packaged = RF_CONFIG_FILE;
    bool from_file = access(packaged, F_OK) == 0;
    if (from_file && from_config(packaged, &err) < 0) {
        fprintf(stderr, "ringflow: warning: %s: %s; using the built-in default\n", packaged,
                err.msg);
        from_file = false;
    }
    if (from_file) {
        snprintf(g_source, sizeof(g_source), "%s", packaged);
    } else {
        rf_err_clear(&err);
        if (from_config(NULL, &err) < 0) { /* the embedded default always loads */
            fprintf(stderr, "ringflow: %s\n", err.msg);
            return -EINVAL;
        }
        snprintf(g_source, sizeof(g_source), "the built-in default");
    }
    const char *env = getenv("RINGFLOW_RUN_DIR");
    if (env && *env) {
        snprintf(g_stats, sizeof(g_stats), "%s/ringflow.sock", env);
        snprintf(g_admin, sizeof(g_admin), "%s/ringflow-admin.sock", env);
        snprintf(g_source, sizeof(g_source), "RINGFLOW_RUN_DIR");
    }
    return 0;
}

static void need(void)
{
    if (rf_cli_locate() < 0)
        exit(2);
}

const char *rf_cli_stats_socket(void)
{
    return need(), g_stats;
}
const char *rf_cli_admin_socket(void)
{
    return need(), g_admin;
}
const char *rf_cli_store_dir(void)
{
    return need(), g_store;
}
const char *rf_cli_locate_source(void)
{
    return need(), g_source;
}
