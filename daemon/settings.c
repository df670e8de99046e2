/* Loading the whole configuration: each module's section, then the
 * unknown-key check, all before anything is applied. */
#include "daemon/settings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/event/event.h"
#include "daemon/memory_budget.h"

const char *const rf_settings_section_names[RF_SECTION__COUNT] = {
    "listeners", "ingest", "dpdk", "storage", "pipeline", "stats"};

/* A structural hash of a YAML subtree: kinds, keys and scalars in order. */
static uint64_t node_hash(const rf_cfg_node *n, uint64_t h)
{
    h = h * 0x100000001b3ull ^ (uint64_t)rf_cfg_kind(n);
    switch (rf_cfg_kind(n)) {
    case RF_CFG_SCALAR: {
        const char *v = rf_cfg_scalar(n);
        return h * 0x9E3779B97F4A7C15ull ^ rf_series_id_of_key(v, strlen(v));
    }
    case RF_CFG_SEQUENCE:
        for (size_t i = 0; i < rf_cfg_seq_len(n); i++)
            h = node_hash(rf_cfg_seq_at(n, i), h);
        return h;
    case RF_CFG_MAPPING:
        for (size_t i = 0; i < rf_cfg_map_len(n); i++) {
            const char *k = rf_cfg_map_key(n, i);
            h = h * 0x9E3779B97F4A7C15ull ^ rf_series_id_of_key(k, strlen(k));
            h = node_hash(rf_cfg_map_value(n, i), h);
        }
        return h;
    }
    return h;
}

static void fingerprint_sections(const rf_cfg_doc *doc, rf_settings *s)
{
    const rf_cfg_node *root = rf_cfg_root(doc);
    for (int i = 0; i < RF_SECTION__COUNT; i++) {
        const rf_cfg_node *n = rf_cfg_get(root, rf_settings_section_names[i]);
        s->section_hash[i] = n ? node_hash(n, 1) : 0;
    }
}

int rf_settings_load(const char *path, rf_settings *out, rf_err *err)
{
    rf_settings next;
    memset(&next, 0, sizeof(next));
    snprintf(next.source, sizeof(next.source), "%s", path ? path : RF_DAEMON_DEFAULT_SOURCE);

    rf_cfg_doc *doc = NULL;
    int rc = rf_daemon_config_load(path, &next.daemon, &doc, err);
    if (rc < 0)
        return rc;

    /* engine.user / engine.group resolved on this host now: an unknown name
     * stops the daemon before it binds anything. */
    const rf_cfg_node *engine = rf_cfg_get(rf_cfg_root(doc), "engine");
    rc = rf_privileges_resolve(engine, next.daemon.engine.user, next.daemon.engine.group,
                               &next.privileges, err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }

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
    /* DPDK needs root for as long as it runs (hugepage files, VFIO/UIO
     * devices, PCI sysfs, its own threads), so the two cannot be combined;
     * refused here rather than at start so --check-config says so too. */
    if (next.privileges.enabled && next.dpdk.enabled) {
        rc = rf_cfg_fail(rf_cfg_get(engine, "user"), err,
                         "cannot be combined with dpdk.enabled: true (DPDK needs root while it "
                         "runs: hugepages, VFIO/UIO devices, PCI); leave engine.user empty or "
                         "disable DPDK");
        rf_cfg_free(doc);
        return rc;
    }
    rc = rf_storage_settings_parse(rf_cfg_root(doc), next.daemon.engine.data_dir, &next.storage,
                                   err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    rc = rf_pipeline_settings_parse(rf_cfg_root(doc), next.daemon.engine.data_dir, &next.pipeline,
                                    err);
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
    /* engine.memory_limit: against the worst case of everything above. */
    if (rc == 0)
        rc = rf_memory_budget_check(&next, engine, err);
    /* After the check: walking the tree marks keys as known. */
    if (rc == 0)
        fingerprint_sections(doc, &next);
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
