/* ringflow stat: one look at a running ringflowd through its stats socket. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli/client.h"
#include "tools/cli/locate.h"
#include "tools/cli/commands.h"

static const char *const default_sections[] = {"info",   "workers", "rings",  "listeners", "errors",
                                               "stages", "storage", "series", "latency"};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringflow stat [--socket PATH] [--json] [SECTION...]\n"
            "Prints the state of a running ringflowd, read from its stats socket.\n"
            "\n"
            "  -s, --socket PATH   the stats socket (default %s)\n"
            "  -j, --json          everything as one JSON object (show stats json)\n"
            "  -h, --help          this help\n"
            "\n"
            "SECTION: info, workers, rings, listeners, errors, stages, storage, series,\n"
            "latency (default: all of them, in that order); also dpdk, memory and record,\n"
            "and whatever else the daemon lists: `ringflow stat help` asks it.\n"
            "series takes [top N] [refused|active]: cardinality per measurement (active\n"
            "and refused series, events dropped because their series was refused, the\n"
            "limit), the top 10 by active+refused series unless told otherwise, e.g.\n"
            "`ringflow stat series top 5 refused`.\n"
            "Exit status: 0 ok, 1 the daemon could not be asked, 2 usage.\n",
            rf_cli_stats_socket());
}

/* A word that belongs to the series section: top, N, refused, active. */
static bool series_word(const char *w)
{
    return !strcmp(w, "top") || !strcmp(w, "refused") || !strcmp(w, "active") ||
           (*w && strspn(w, "0123456789") == strlen(w));
}

int rf_cli_stat(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL; /* the engine's (tools/cli/locate.h) */
    bool json = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
        switch (opt) {
        case 's': path = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path)
        path = rf_cli_stats_socket();
    int fd = rf_cli_connect(path);
    if (fd < 0) {
        fprintf(stderr,
                "ringflow stat: cannot connect to %s: %s (is ringflowd running? the "
                "socket is %s's; see ringflow --help and --socket)\n",
                path, strerror(-fd), rf_cli_locate_source());
        return 1;
    }
    int status = 0;
    const char *const *sections = default_sections;
    size_t n = sizeof(default_sections) / sizeof(default_sections[0]);
    if (optind < argc) {
        sections = (const char *const *)argv + optind;
        n = (size_t)(argc - optind);
    }
    if (n == 1 && !strcmp(sections[0], "help")) {
        /* The daemon knows its sections: its own help lists every `show`. */
        char *reply = NULL;
        int rc = rf_cli_request(fd, "help", RF_CLI_TIMEOUT_MS, &reply);
        if (rc == 0 && reply)
            fputs(reply, stdout);
        free(reply);
        close(fd);
        return rc == 0 ? 0 : 1;
    }
    static const char *const all[] = {"stats"};
    if (json) {
        sections = all;
        n = 1;
    }
    for (size_t i = 0; i < n; i++) {
        char cmd[128];
        /* The series view's own words go with it: series [top N] [refused|active]. */
        char args[64] = "";
        const char *section = sections[i];
        if (!strcmp(section, "series")) {
            size_t al = 0;
            while (i + 1 < n && al < sizeof(args) && series_word(sections[i + 1]))
                al += (size_t)snprintf(args + al, sizeof(args) - al, " %s", sections[++i]);
        }
        snprintf(cmd, sizeof(cmd), "show %s%s%s", section, args, json ? " json" : "");
        char *reply = NULL;
        int rc = rf_cli_request(fd, cmd, RF_CLI_TIMEOUT_MS, &reply);
        if (rc < 0) {
            fprintf(stderr, "ringflow stat: %s: %s\n", cmd, strerror(-rc));
            status = 1;
            break;
        }
        if (!strncmp(reply, "error: ", 7)) {
            fprintf(stderr, "ringflow stat: %s", reply);
            if (strstr(reply, "unknown section"))
                fprintf(stderr, "ringflow stat: `ringflow stat help` lists the sections\n");
            status = 1;
        } else {
            fputs(reply, stdout);
            if (!json && i + 1 < n)
                fputc('\n', stdout);
        }
        free(reply);
    }
    close(fd);
    return status;
}
