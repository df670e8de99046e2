/* Everything ringflowd is configured with, loaded and validated as a whole.
 *
 * rf_settings_load reads one document (a file, or the embedded default), lets
 * every module parse its own section, then rejects any key nobody asked for.
 * Either all of it is valid and *out is filled, or nothing is: a reload that
 * fails leaves the running settings untouched. */
#ifndef RF_DAEMON_SETTINGS_H
#define RF_DAEMON_SETTINGS_H

#include "core/error/error.h"
#include "daemon/daemon_config.h"
#include "daemon/ops/ops.h"
#include "daemon/ingest_settings.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/privileges.h"
#include "daemon/storage_settings.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/nats/nats_source.h"

/* Top-level sections whose content is fingerprinted, so a reload can say
 * exactly which ones changed. */
enum rf_settings_section {
    RF_SECTION_LISTENERS,
    RF_SECTION_INGEST,
    RF_SECTION_DPDK,
    RF_SECTION_STORAGE,
    RF_SECTION_PIPELINE,
    RF_SECTION_STATS,
    RF_SECTION__COUNT
};
extern const char *const rf_settings_section_names[RF_SECTION__COUNT];

typedef struct rf_settings {
    char source[RF_DAEMON_PATH_MAX]; /* the file, or "<default>" */
    /* A hash of each section's YAML tree (keys, values, structure). */
    uint64_t section_hash[RF_SECTION__COUNT];
    rf_daemon_config daemon;
    rf_privileges privileges; /* engine.user / engine.group, resolved on this host */
    rf_ops_config stats;      /* the `stats:` section (daemon/ops) */
    rf_ingest_settings ingest;
    rf_dpdk_config dpdk;
    rf_storage_settings storage;
    rf_pipeline_settings pipeline;       /* owns allocations: see rf_settings_release */
    rf_nats_source_settings nats_source; /* the `nats_source:` section; applied at start */
} rf_settings;

/* path NULL: the embedded default. Returns 0 or a negative errno with err filled. */
int rf_settings_load(const char *path, rf_settings *out, rf_err *err);

/* Releases what rf_settings_load allocated inside *s (the pipeline's
 * configuration strings). A struct copy shares them: release exactly one. */
void rf_settings_release(rf_settings *s);

#endif
