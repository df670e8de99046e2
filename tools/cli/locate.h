/* Where the running engine is: the default stats socket, admin socket and
 * store of every ringflow subcommand (a --socket or --dir flag still wins).
 *
 * Contract
 *   The run directory comes from, in this order:
 *     1. `ringflow --config FILE COMMAND ...`: FILE's engine.run_dir and
 *        stats.socket / stats.admin_socket (FILE read as ringflowd reads it:
 *        includes, environment), and its store (storage.dir);
 *     2. RINGFLOW_RUN_DIR: DIR/ringflow.sock and DIR/ringflow-admin.sock;
 *     3. the packaged configuration, RF_CONFIG_FILE (/etc/ringflow/ringflow.yaml
 *        for a package, SYSCONFDIR/ringflow/ringflow.yaml for `meson install`)
 *        when it exists, read as in 1;
 *     4. the embedded default (./run, ./data/store): a build run from its
 *        checkout, as scripts/run.sh does.
 *   A FILE given with --config that cannot be read is an error (the caller
 *   exits 2 with the message); a packaged file that cannot be read is
 *   skipped with a warning. The store follows the configuration (1, 3, 4).
 *   Resolved once, on first use; single-threaded (the CLI's main thread).
 */
#ifndef RF_TOOLS_CLI_LOCATE_H
#define RF_TOOLS_CLI_LOCATE_H

/* Records `--config FILE` (call before any of the others). */
void rf_cli_locate_config(const char *path);
/* Resolves; 0, or -errno with the message on stderr. */
int rf_cli_locate(void);
const char *rf_cli_stats_socket(void);
const char *rf_cli_admin_socket(void);
const char *rf_cli_store_dir(void);
/* How they were found ("--config FILE", "RINGFLOW_RUN_DIR", a file, or
 * "the built-in default"), for messages that say where it looked. */
const char *rf_cli_locate_source(void);

#endif
