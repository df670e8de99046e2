/* The daemon's own settings: the `engine:` and `log:` sections, and the
 * embedded default configuration (daemon/default_config.yaml, compiled in).
 *
 * Contract
 *   - rf_daemon_config_parse reads only its two sections and does not check
 *     for unknown keys: other modules parse their sections (listeners,
 *     pipeline, storage, stats) from the same document, then the daemon calls
 *     rf_cfg_check_unknown_keys last. Until a module exists, the daemon
 *     declares its section with rf_cfg_mark_known.
 *   - Validation is complete before anything is applied: on error *cfg is left
 *     untouched, so a reload that fails keeps the running configuration.
 *   - Checks that need the machine (is CPU 7 online?) are made when workers
 *     start, not here: a configuration is valid or not on any host. The one
 *     exception is engine.user / engine.group: only their text is read here;
 *     rf_settings_load resolves them on this host (daemon/privileges.h), so
 *     that an unknown name stops the daemon, with its FILE:LINE:COL, before
 *     anything is bound. engine.memory_limit: auto (and pipeline.max_series:
 *     auto) are resolved there too, from this host's memory
 *     (daemon/memory_budget.h): the same file may fit one host and not a
 *     smaller one.
 */
#ifndef RF_DAEMON_CONFIG_H
#define RF_DAEMON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/log/log.h"
#include "core/ring/ring.h"

#define RF_DAEMON_MAX_WORKERS 64
#define RF_DAEMON_MAX_CPU 4095
#define RF_DAEMON_PATH_MAX 4096
#define RF_DAEMON_ID_MAX 64 /* engine.user / engine.group text */

/* Shown in messages about the embedded default ("<default>:12:3: ..."). */
#define RF_DAEMON_DEFAULT_SOURCE "<default>"

typedef struct rf_daemon_config {
    struct {
        uint32_t workers;
        bool pin_workers;
        /* 0: worker i on CPU i modulo the online CPUs; else one per worker. */
        uint32_t n_cpus;
        uint16_t cpus[RF_DAEMON_MAX_WORKERS];
        char data_dir[RF_DAEMON_PATH_MAX];
        char run_dir[RF_DAEMON_PATH_MAX];
        /* Run as this user / group once bound (names or numeric ids; empty:
         * stay who started ringflowd). Resolved by rf_settings_load. */
        char user[RF_DAEMON_ID_MAX];
        char group[RF_DAEMON_ID_MAX];
        /* The most memory the configuration may need, worst case, in bytes
         * (0: no limit). Checked by rf_settings_load (daemon/memory_budget.h).
         * `auto` (the default): memory_limit_auto, and rf_settings_load sets
         * memory_limit to half of this host's memory. */
        uint64_t memory_limit;
        bool memory_limit_auto;
        struct {
            uint32_t capacity; /* power of two */
            enum rf_ring_full_policy full_policy;
        } ring;
        struct {
            uint32_t spin;         /* polls before yielding */
            uint32_t yield;        /* yields before sleeping */
            uint64_t sleep_max_ns; /* longest single sleep */
            bool adaptive;         /* scale spin/yield by what spinning paid */
        } idle;
    } engine;
    struct {
        enum rf_log_level level;
        enum rf_log_format format;
        /* Append records here instead of stderr ("": stderr; the journal's
         * format when stderr is the journal). Takes a restart to change. */
        char file[RF_DAEMON_PATH_MAX];
    } log;
} rf_daemon_config;

/* The values documented in default_config.yaml. */
void rf_daemon_config_defaults(rf_daemon_config *cfg);

/* Reads `engine:` and `log:` from doc into *cfg (all of it, or nothing). */
int rf_daemon_config_parse(const rf_cfg_doc *doc, rf_daemon_config *cfg, rf_err *err);

/* Loads `path` (NULL: the embedded default), parses the daemon's sections into
 * *cfg and hands the document to the caller in *doc_out (free with
 * rf_cfg_free) for the other modules' parsers and the unknown-key check.
 * On error nothing is returned in *doc_out and *cfg is untouched. */
int rf_daemon_config_load(const char *path, rf_daemon_config *cfg, rf_cfg_doc **doc_out,
                          rf_err *err);

/* Writes the configuration `path` (NULL: the embedded default) resolves to,
 * its includes merged and ${VAR}s substituted, as YAML (--print-config).
 * Loads it only: the values are not validated (--check-config does that). */
int rf_daemon_config_print(const char *path, FILE *out, rf_err *err);

/* The embedded default configuration, NUL-terminated. */
const char *rf_daemon_default_config_text(void);

#endif
