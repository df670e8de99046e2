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
#define RF_CLI_COMMANDS(X) \
    X("load", rf_cli_load, "send synthetic telemetry to an engine (rate, series, shapes, probes)")

#endif
