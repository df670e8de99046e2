/* The ringflow subcommands. Each takes (argc, argv) with argv[0] the command
 * name and returns the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef RF_TOOLS_CLI_COMMANDS_H
#define RF_TOOLS_CLI_COMMANDS_H

typedef struct rf_cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} rf_cli_command;

/* X-macro: one line per command, so the table and the declarations agree. */
#define RF_CLI_COMMANDS(X)                                                                         \
    X("query", rf_cli_query, "read the store: raw points or aggregates, as table/csv/json/line")   \
    X("load", rf_cli_load, "send synthetic telemetry to an engine (rate, series, shapes, probes)") \
    X("stat", rf_cli_stat, "the state of a running ringflowd (tables, or --json)")                 \
    X("admin", rf_cli_admin, "reload, shutdown, log-level, clear-counters on a running ringflowd") \
    X("top", rf_cli_top, "live view of a running ringflowd, refreshed every second")               \
    X("record", rf_cli_record, "capture UDP/TCP traffic into a recording (size-bounded, rotated)") \
    X("replay", rf_cli_replay,                                                                     \
      "send a recording, pcap or line file to an engine, paced or at max speed")

#endif
