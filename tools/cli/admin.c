/* ringflow admin: the admin socket's commands (reload, shutdown, set log
 * level, clear counters) from the command line. The socket is mode 0600:
 * run as the daemon's user. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log/log.h"
#include "tools/cli/client.h"
#include "tools/cli/locate.h"

int rf_cli_admin(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringflow admin [--socket PATH] COMMAND\n"
            "Sends one command to a running ringflowd's admin socket and prints the reply.\n\n"
            "  reload                  re-read the configuration file (validated first)\n"
            "  shutdown                drain and stop, as SIGTERM\n"
            "  log-level LEVEL         debug, info, warn or error\n"
            "  clear-counters          workers, rings, DPDK ports and latency histograms count\n"
            "                          from zero in `ringflow stat` (listener, stage and storage\n"
            "                          counters go on; /metrics never resets)\n\n"
            "  --socket PATH           default %s\n"
            "Exit status: 0 when the daemon answered ok, 1 otherwise, 2 for usage errors.\n",
            rf_cli_admin_socket());
}

int rf_cli_admin(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL; /* the engine's (tools/cli/locate.h) */
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    char cmd[128];
    const char *verb = argv[optind];
    if (!strcmp(verb, "reload") || !strcmp(verb, "shutdown")) {
        snprintf(cmd, sizeof(cmd), "%s", verb);
    } else if (!strcmp(verb, "clear-counters")) {
        snprintf(cmd, sizeof(cmd), "clear counters");
    } else if (!strcmp(verb, "log-level") && optind + 1 < argc) {
        /* Checked here, with the daemon's own table: a bad level is a usage
         * error (2), not a refusal by the daemon (1). */
        if (rf_log_level_parse(argv[optind + 1]) < 0) {
            fprintf(stderr, "ringflow admin: unknown log level '%s' (debug, info, warn or error)\n",
                    argv[optind + 1]);
            usage(stderr);
            return 2;
        }
        snprintf(cmd, sizeof(cmd), "set log level %s", argv[optind + 1]);
    } else if (!strcmp(verb, "log-level")) {
        fprintf(stderr, "ringflow admin: log-level needs a LEVEL\n");
        usage(stderr);
        return 2;
    } else {
        fprintf(stderr, "ringflow admin: unknown command '%s'\n", verb);
        usage(stderr);
        return 2;
    }
    if (!path)
        path = rf_cli_admin_socket();
    int fd = rf_cli_connect(path);
    if (fd < 0) {
        fprintf(stderr,
                "ringflow admin: cannot connect to %s: %s (is ringflowd running, and is "
                "this its user?)\n",
                path, strerror(-fd));
        return 1;
    }
    char *reply = NULL;
    int rc = rf_cli_request(fd, cmd, 30000, &reply);
    close(fd);
    if (rc < 0 || !reply) {
        fprintf(stderr, "ringflow admin: no reply from %s\n", path);
        free(reply);
        return 1;
    }
    fputs(reply, stdout);
    int ok = !strncmp(reply, "ok", 2);
    free(reply);
    return ok ? 0 : 1;
}
