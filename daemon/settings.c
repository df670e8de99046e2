/* Loading the whole configuration: each module's section, then the
 * unknown-key check, all before anything is applied. */
#include "daemon/settings.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/event/event.h"
#include "daemon/memory_budget.h"

const char *const rf_settings_section_names[RF_SECTION__COUNT] = {"listeners", "ingest",   "dpdk",
                                                                  "storage",   "pipeline", "stats"};

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

/* The errors of the sections, so that one run of --check-config (or one
 * refused reload) names every broken section, not only the first: each
 * section is parsed even when one before it failed (they read the same
 * document independently). */
typedef struct section_errors {
    unsigned n;
    int rc;
    rf_err first;
    char more[RF_ERR_MSG_MAX];
    size_t more_len;
} section_errors;

static void section_error(section_errors *c, int rc, const rf_err *e)
{
    if (c->n++ == 0) {
        c->rc = rc;
        c->first = *e;
        return;
    }
    if (c->more_len < sizeof(c->more))
        c->more_len += (size_t)snprintf(c->more + c->more_len, sizeof(c->more) - c->more_len,
                                        "%s%s", c->more_len ? "; " : "", e->msg);
}

static int section_errors_report(const section_errors *c, rf_err *err)
{
    if (c->n == 1)
        *err = c->first;
    else
        rf_err_set(err, c->first.code, "%s (and %u more: %s)", c->first.msg, c->n - 1, c->more);
    return c->rc;
}

int rf_settings_load(const char *path, rf_settings *out, rf_err *err)
{
    rf_settings next;
    memset(&next, 0, sizeof(next));
    snprintf(next.source, sizeof(next.source), "%s", path ? path : RF_DAEMON_DEFAULT_SOURCE);

    rf_cfg_doc *doc = NULL;
    int rc = rf_daemon_config_load(path, &next.daemon, &doc, err);
    if (rc < 0)
        return rc; /* no document, or no engine section to place the others */

    section_errors errs;
    memset(&errs, 0, sizeof(errs));
    rf_err e;
#define SECTION(call)                                                                              \
    do {                                                                                           \
        rf_err_clear(&e);                                                                          \
        int r_ = (call);                                                                           \
        if (r_ < 0)                                                                                \
            section_error(&errs, r_, &e);                                                          \
    } while (0)
    /* engine.user / engine.group resolved on this host now: an unknown name
     * stops the daemon before it binds anything. */
    const rf_cfg_node *engine = rf_cfg_get(rf_cfg_root(doc), "engine");
    SECTION(rf_privileges_resolve(engine, next.daemon.engine.user, next.daemon.engine.group,
                                  &next.privileges, &e));
    /* Each module's section parser runs here, on the same document. */
    SECTION(rf_ops_config_parse(rf_cfg_root(doc), next.daemon.engine.run_dir, &next.stats, &e));
    unsigned before = errs.n;
    SECTION(rf_ingest_settings_parse(rf_cfg_root(doc), &next.ingest, &e));
    const bool ingest_ok = errs.n == before;
    before = errs.n;
    SECTION(rf_dpdk_config_parse(rf_cfg_root(doc), &next.dpdk, &e));
    /* DPDK needs root for as long as it runs (hugepage files, VFIO/UIO
     * devices, PCI sysfs, its own threads), so the two cannot be combined;
     * refused here rather than at start so --check-config says so too. */
    if (errs.n == before && next.privileges.enabled && next.dpdk.enabled)
        SECTION(rf_cfg_fail(rf_cfg_get(engine, "user"), &e,
                            "cannot be combined with dpdk.enabled: true (DPDK needs root while it "
                            "runs: hugepages, VFIO/UIO devices, PCI); leave engine.user empty or "
                            "disable DPDK"));
    SECTION(rf_nats_source_settings_parse(rf_cfg_root(doc), &next.nats_source, &e));
    SECTION(rf_storage_settings_parse(rf_cfg_root(doc), next.daemon.engine.data_dir, &next.storage,
                                      &e));
    SECTION(rf_pipeline_settings_parse(rf_cfg_root(doc), next.daemon.engine.data_dir,
                                       &next.pipeline, &e));
    /* Cross-section check: a listener may only name workers that exist. */
    for (size_t i = 0; ingest_ok && i < next.ingest.n_listeners; i++) {
        const rf_listener_config *l = &next.ingest.listeners[i];
        if (next.daemon.engine.workers < 64 && (l->worker_mask >> next.daemon.engine.workers) != 0)
            SECTION(rf_err_set(&e, EINVAL,
                               "%s: listeners: listener '%s' names a worker beyond engine.workers "
                               "(%u)",
                               next.source, l->name, next.daemon.engine.workers));
    }
    /* A section that failed did not read all its keys: the unknown-key
     * check would name them too. It runs once every section is right. */
    if (errs.n == 0)
        SECTION(rf_cfg_check_unknown_keys(doc, &e));
    /* The `auto` sizes (memory_limit, max_series), then engine.memory_limit
     * against the worst case of everything above. */
    if (errs.n == 0)
        SECTION(rf_memory_budget_resolve(&next, rf_cfg_root(doc), &e));
    if (errs.n == 0)
        SECTION(rf_memory_budget_check(&next, engine, &e));
#undef SECTION
    /* After the check: walking the tree marks keys as known. */
    if (errs.n == 0)
        fingerprint_sections(doc, &next);
    rf_cfg_free(doc);
    if (errs.n) {
        rf_settings_release(&next);
        return section_errors_report(&errs, err);
    }
    *out = next;
    return 0;
}

void rf_settings_release(rf_settings *s)
{
    rf_pipeline_settings_release(&s->pipeline);
}
