/* The daemon's `storage:` section: where the store lives and the knobs of
 * storage/store (block size, segment rolls, durability, retention). */
#ifndef RF_DAEMON_STORAGE_SETTINGS_H
#define RF_DAEMON_STORAGE_SETTINGS_H

#include <stdbool.h>

#include "core/config/config.h"
#include "daemon/daemon_config.h"
#include "storage/store/store.h"

typedef struct rf_storage_settings {
    bool enabled;
    char dir[RF_DAEMON_PATH_MAX]; /* default: <engine.data_dir>/store */
    rf_store_config store;
} rf_storage_settings;

int rf_storage_settings_parse(const rf_cfg_node *root, const char *data_dir,
                              rf_storage_settings *out, rf_err *err);

#endif
