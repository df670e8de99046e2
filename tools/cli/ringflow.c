/* ringflow: the companion CLI. One subcommand per tool; each lives in its own
 * file under tools/ and registers in the table below. */
#include <stdio.h>
#include <string.h>

#include "rf_build_config.h"
#include "tools/cli/commands.h"
#include "tools/cli/locate.h"

#define RF_CLI_DECLARE(name, fn, summary) int fn(int argc, char **argv);
RF_CLI_COMMANDS(RF_CLI_DECLARE)
#undef RF_CLI_DECLARE

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const rf_cli_command commands[] = {
#define RF_CLI_ENTRY(name, fn, summary) {name, fn, summary},
    RF_CLI_COMMANDS(RF_CLI_ENTRY)
#undef RF_CLI_ENTRY
        {"help", cmd_help, "this list"},
    {"version", cmd_version, "the version"},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: ringflow [--config FILE] COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n`ringflow COMMAND --help` describes each command.\n\n"
            "The running engine (its stats and admin sockets, its store) is found from, in\n"
            "this order: --config FILE (ringflowd's configuration file), RINGFLOW_RUN_DIR\n"
            "(the directory of its sockets), %s when it exists, else the built-in\n"
            "default (./run, ./data/store). A --socket or --dir of a command wins.\n",
            RF_CONFIG_FILE);
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("ringflow %s\n", RF_VERSION);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    /* Global options, before the command. */
    if (argc >= 3 && (!strcmp(argv[1], "--config") || !strcmp(argv[1], "-c"))) {
        rf_cli_locate_config(argv[2]);
        if (rf_cli_locate() < 0)
            return 2;
        argc -= 2;
        argv += 2;
    } else if (argc >= 2 && !strncmp(argv[1], "--config=", 9)) {
        rf_cli_locate_config(argv[1] + 9);
        if (rf_cli_locate() < 0)
            return 2;
        argc -= 1;
        argv += 1;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help"))
        cmd = "help";
    else if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version"))
        cmd = "version";
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ringflow: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
