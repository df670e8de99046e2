/* Loading the whole configuration: each module's section, then the
 * unknown-key check, all before anything is applied. */
#include "daemon/settings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int rf_settings_load(const char *path, rf_settings *out, rf_err *err)
{
    rf_settings next;
    memset(&next, 0, sizeof(next));
    snprintf(next.source, sizeof(next.source), "%s", path ? path : RF_DAEMON_DEFAULT_SOURCE);

    rf_cfg_doc *doc = NULL;
    int rc = rf_daemon_config_load(path, &next.daemon, &doc, err);
    if (rc < 0)
        return rc;

    /* Each module's section parser runs here, on the same document. */
    rc = rf_ops_config_parse(rf_cfg_root(doc), next.daemon.engine.run_dir, &next.stats, err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    rc = rf_ingest_settings_parse(rf_cfg_root(doc), &next.ingest, err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    rc = rf_dpdk_config_parse(rf_cfg_root(doc), &next.dpdk, err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    rc = rf_storage_settings_parse(rf_cfg_root(doc), next.daemon.engine.data_dir, &next.storage,
                                   err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    rc = rf_pipeline_settings_parse(rf_cfg_root(doc), &next.pipeline, err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    /* Cross-section check: a listener may only name workers that exist. */
    for (size_t i = 0; i < next.ingest.n_listeners; i++) {
        const rf_listener_config *l = &next.ingest.listeners[i];
        if (next.daemon.engine.workers < 64 && (l->worker_mask >> next.daemon.engine.workers) != 0) {
            rf_cfg_free(doc);
            rf_settings_release(&next);
            return rf_err_set(err, EINVAL,
                              "%s: listeners: listener '%s' names a worker beyond engine.workers (%u)",
                              next.source, l->name, next.daemon.engine.workers);
        }
    }

    rc = rf_cfg_check_unknown_keys(doc, err);
    rf_cfg_free(doc);
    if (rc < 0) {
        rf_settings_release(&next);
        return rc;
    }
    *out = next;
    return 0;
}

void rf_settings_release(rf_settings *s)
{
    rf_pipeline_settings_release(&s->pipeline);
}
