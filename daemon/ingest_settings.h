/* The daemon's ingest settings: the `listeners:` list (parsed by
 * ingest/listen) and the `ingest:` section (parser limits, the accepted
 * timestamp window and what happens outside it: timestamp_policy reject or
 * clamp; `correlation: {id_tag: TAG}`, the tag whose value becomes the
 * events' correlation id instead of part of their series), validated
 * together. */
#ifndef RF_DAEMON_INGEST_SETTINGS_H
#define RF_DAEMON_INGEST_SETTINGS_H

#include <stddef.h>

#include "core/config/config.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"
#include "ingest/spread/spread.h"

#define RF_SETTINGS_MAX_LISTENERS 64

typedef struct rf_ingest_settings {
    size_t n_listeners;
    rf_listener_config listeners[RF_SETTINGS_MAX_LISTENERS];
    /* Shared by every listener; source_id is set per listener at start. */
    rf_parse_config parse;
    /* ingest.collectd.security_level and auth_file (protocol.h, "collectd's
     * network security"): the engine loads the file at start and again at
     * every reload; the level and the path take a restart. */
    enum rf_collectd_security collectd_security;
    char collectd_auth_file[512];
    /* ingest.spread (ingest/spread/spread.h): one client over every core. */
    rf_spread_config spread;
} rf_ingest_settings;

/* Reads `listeners:` and `ingest:` from the document root. All or nothing. */
int rf_ingest_settings_parse(const rf_cfg_node *root, rf_ingest_settings *out, rf_err *err);

#endif
