/* ringflow: the companion CLI. One subcommand per tool; each lives in its own
 * file under tools/ and registers in the table below. */
#include <stdio.h>
#include <string.h>

#include "rf_build_config.h"
#include "tools/cli/commands.h"

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
    fprintf(out, "Usage: ringflow COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`ringflow COMMAND --help` describes each command.\n");
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
