/* The line protocol's commands: parsing one line, checking the caller's
 * level, running it and formatting the reply (always ending with an empty
 * line). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log/log.h"
#include "core/stats/stats.h"
#include "daemon/ops/ops_pvt.h"

#define COMPONENT "ops"
#define MAX_TOKENS 16

static enum rf_ops_cmd_result reply_error(rf_strbuf *out, const char *fmt, const char *arg)
{
    rf_strbuf_append(out, "error: ", 7);
    rf_strbuf_printf(out, fmt, arg);
    rf_strbuf_append(out, "\n\n", 2);
    return RF_OPS_CMD_ERROR;
}

static void help(rf_strbuf *out)
{
    rf_strbuf_printf(out, "Commands (one per line; every reply ends with an empty line):\n"
                          "  help                         this list\n"
                          "  quit                         close the connection\n");
    rf_ops_show_help(out);
    rf_strbuf_printf(
        out, "  show stats json              every section as one JSON object\n"
             "Admin (admin socket, or the daemon's own uid on this socket):\n"
             "  reload                       validate and apply the configuration file\n"
             "  shutdown                     drain and stop, as SIGTERM\n"
             "  set log level LEVEL          debug, info, warn or error\n"
             "  clear counters               workers, rings, DPDK ports and latency histograms\n"
             "                               count from zero in show views (listener, stage\n"
             "                               and storage counters go on; /metrics never resets)\n"
             "  record start PATH [max_bytes SIZE] [max_files N]\n"
             "                               copy what the listeners receive to a recording\n"
             "  record stop                  finish the recording (show record: its state)\n"
             "\n");
}

static bool is(const char *tok, const char *word)
{
    return tok && !strcmp(tok, word);
}

enum rf_ops_cmd_result rf_ops_command(const char *line, const rf_ops_peer *peer,
                                      const rf_ops_hooks *hooks, rf_strbuf *out)
{
    char buf[RF_OPS_LINE_MAX + 1];
    snprintf(buf, sizeof(buf), "%s", line);
    char *tok[MAX_TOKENS + 1] = {0};
    unsigned n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " \t\r", &save); t;
         t = strtok_r(NULL, " \t\r", &save)) {
        if (n == MAX_TOKENS)
            return reply_error(out, "too many words%s", "");
        tok[n++] = t;
    }
    if (n == 0)
        return reply_error(out, "empty command (try 'help')%s", "");

    if (is(tok[0], "help") && n == 1) {
        help(out);
        return RF_OPS_CMD_OK;
    }
    if ((is(tok[0], "quit") || is(tok[0], "exit")) && n == 1)
        return RF_OPS_CMD_QUIT;

    if (is(tok[0], "show")) {
        if (n < 2)
            return reply_error(out, "'show' needs a section (try 'help')%s", "");
        bool json = n > 2 && is(tok[n - 1], "json");
        if (json)
            n--;
        char args[RF_OPS_LINE_MAX] = "";
        size_t len = 0;
        for (unsigned i = 2; i < n; i++)
            len +=
                (size_t)snprintf(args + len, sizeof(args) - len, "%s%s", i > 2 ? " " : "", tok[i]);
        rf_err err;
        rf_err_clear(&err);
        size_t mark = out->len;
        if (rf_ops_show(tok[1], args, json, out, &err) < 0) {
            out->len = mark;
            return reply_error(out, "%s", err.msg);
        }
        rf_strbuf_append(out, "\n", 1);
        if (out->oom)
            return RF_OPS_CMD_ERROR;
        return RF_OPS_CMD_OK;
    }

    bool admin_cmd = (is(tok[0], "reload") && n == 1) || (is(tok[0], "shutdown") && n == 1) ||
                     (is(tok[0], "set") && is(tok[1], "log") && is(tok[2], "level")) ||
                     (is(tok[0], "clear") && is(tok[1], "counters") && n == 2) ||
                     (is(tok[0], "record") && (is(tok[1], "start") || is(tok[1], "stop")));
    if (!admin_cmd)
        return reply_error(out, "unknown command '%s' (try 'help')", line);
    if (!peer->admin) {
        reply_error(out, "permission denied: '%s' needs the admin socket or the daemon's own uid",
                    tok[0]);
        return RF_OPS_CMD_DENIED;
    }

    if (is(tok[0], "reload")) {
        if (!hooks || !hooks->reload)
            return reply_error(out, "reload is not available here%s", "");
        char msg[RF_ERR_MSG_MAX + 64] = "";
        int rc = hooks->reload(hooks->ctx, msg, sizeof(msg));
        /* The outcome text is one line: never end the reply early. */
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        if (rc < 0)
            return reply_error(out, "%s", msg);
        rf_strbuf_printf(out, "%s: %s\n\n", rc == 0 ? "ok" : "warning", msg);
        return RF_OPS_CMD_OK;
    }
    if (is(tok[0], "shutdown")) {
        if (!hooks || !hooks->shutdown)
            return reply_error(out, "shutdown is not available here%s", "");
        rf_strbuf_printf(out, "ok: draining and stopping\n\n");
        return RF_OPS_CMD_SHUTDOWN;
    }
    if (is(tok[0], "record")) {
        if (!hooks || !hooks->record)
            return reply_error(out, "record is not available here%s", "");
        char msg[RF_ERR_MSG_MAX + 64] = "";
        int rc = hooks->record(hooks->ctx, is(tok[1], "start"), (const char *const *)tok + 2, n - 2,
                               msg, sizeof(msg));
        for (char *p = msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
        if (rc < 0)
            return reply_error(out, "%s", msg);
        rf_strbuf_printf(out, "ok: %s\n\n", msg);
        return RF_OPS_CMD_OK;
    }
    if (is(tok[0], "set")) {
        int lvl = n == 4 ? rf_log_level_parse(tok[3]) : -1;
        if (lvl < 0)
            return reply_error(out, "usage: set log level debug|info|warn|error%s", "");
        rf_log_set_level((enum rf_log_level)lvl);
        rf_log_info(COMPONENT, "log level set to %s from the admin socket", tok[3]);
        rf_strbuf_printf(out, "ok: log level %s\n\n", rf_log_level_name((enum rf_log_level)lvl));
        return RF_OPS_CMD_OK;
    }
    /* clear counters: reader-side baselines only; the single writers on the
     * worker cores are never written from here. */
    rf_stats_clear();
    rf_ops_engine_clear();
    rf_log_info(COMPONENT, "counters cleared from the admin socket");
    rf_strbuf_printf(out, "ok: counters cleared\n\n");
    return RF_OPS_CMD_OK;
}
