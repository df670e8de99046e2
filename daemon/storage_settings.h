/* The daemon's `storage:` section: where the store lives and the knobs of
 * storage/store (block size, segment rolls, durability, retention). */
#ifndef RF_DAEMON_STORAGE_SETTINGS_H
#define RF_DAEMON_STORAGE_SETTINGS_H

#include <stdbool.h>

#include "core/config/config.h"
#include "daemon/daemon_config.h"
#include "storage/store/store.h"

/* storage.buffer_memory when not given: what each shard's series buffers
 * may grow into beyond their first 16 points (storage/store/store.h). At
 * 20 KiB a series with full 1024-point buffers, 13,000 series per worker fill
 * it; past that, blocks get smaller, nothing is lost. Without it the bound
 * was max_series x 20 KiB: 20 GiB per worker at the default max_series. */
#define RF_STORAGE_DEFAULT_BUFFER_MEMORY (256ull << 20)

/* storage.query: the limits of one query of the Prometheus query API
 * (storage/promapi/promapi.h). */
typedef struct rf_query_settings {
    int64_t timeout_ns;    /* 2m, Prometheus' default */
    uint64_t max_samples;  /* 50,000,000, Prometheus' default */
    uint64_t max_series;   /* 0 = no limit */
    uint64_t index_memory; /* the series index's bound, counted in engine.memory_limit (256 MiB) */
} rf_query_settings;

typedef struct rf_storage_settings {
    bool enabled;
    char dir[RF_DAEMON_PATH_MAX]; /* default: <engine.data_dir>/store */
    rf_store_config store;
    rf_query_settings query;
} rf_storage_settings;

int rf_storage_settings_parse(const rf_cfg_node *root, const char *data_dir,
                              rf_storage_settings *out, rf_err *err);

#endif
