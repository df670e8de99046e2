/* ringflow top: a live view of a running ringflowd, redrawn every second from
 * `show stats json`. Plain ANSI (clear, home, cursor hide/show); the terminal
 * is put in non-canonical mode to read 'q' and restored on every way out.
 *
 * The live view needs a terminal on stdout. Without one (a pipe, a file, a
 * script, CI) top prints frames as plain text, one after another without
 * escape codes, and exits: one frame, or --iterations N frames an interval
 * apart; the exit status is the last frame's (1 when the daemon could not be
 * read), so it never waits on a terminal that is not there. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "tools/cli/client.h"
#include "tools/cli/locate.h"
#include "tools/cli/commands.h"

static volatile sig_atomic_t g_quit;

static void on_signal(int sig)
{
    (void)sig;
    g_quit = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringflow top [--socket PATH] [--once] [--iterations N] [--interval MS]\n"
            "Live view of a running ringflowd: events/s per worker and listener, ring\n"
            "fill, drops, p99 latency, storage rates. q or Ctrl-C quits. When stdout is\n"
            "not a terminal, frames are printed as plain text and top exits after\n"
            "--iterations of them (default 1).\n"
            "\n"
            "  -s, --socket PATH     the stats socket (default %s)\n"
            "  -1, --once            print one frame without clearing the screen, then exit\n"
            "  -n, --iterations N    stop after N frames (1..1000000; default: until q on a\n"
            "                        terminal, 1 otherwise)\n"
            "  -i, --interval MS     refresh period (default 1000, 100..60000)\n"
            "  -h, --help            this help\n",
            rf_cli_stats_socket());
}

static void human_bytes(char *buf, size_t size, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void human_duration(char *buf, size_t size, double s)
{
    unsigned long long t = (unsigned long long)s;
    if (t >= 86400)
        snprintf(buf, size, "%llud%02lluh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600)
        snprintf(buf, size, "%lluh%02llum", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, size, "%llum%02llus", t / 60, t % 60);
    else
        snprintf(buf, size, "%llus", t);
}

/* A section that is {"no_data": "..."} prints its reason; true if so. */
static bool no_data(FILE *f, const rf_json *sec)
{
    if (!sec) {
        fprintf(f, "  no data: not reported by this daemon\n");
        return true;
    }
    const char *why = rf_json_str(sec, "no_data", NULL);
    if (why) {
        fprintf(f, "  no data: %s\n", why);
        return true;
    }
    return false;
}

/* Rows of a section whose columns this view does not know in advance
 * (listeners, storage): its first text field, then every *_per_s and
 * dropped* field. */
/* The numbers worth a glance in a generic row: rates, drops, rejects and
 * the main totals. */
static bool glance_key(const char *key)
{
    static const char *const exact[] = {
        "events",        "rejected", "kernel_drops", "processed",    "points_appended",
        "bytes_written", "segments", "bytes",        "write_errors", "series"};
    size_t kl = key ? strlen(key) : 0;
    if (!kl)
        return false;
    if ((kl > 6 && !strcmp(key + kl - 6, "_per_s")) || !strncmp(key, "dropped", 7))
        return true;
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (!strcmp(key, exact[i]))
            return true;
    return false;
}

static void glance_fields(FILE *f, const rf_json *obj)
{
    for (const rf_json *c = obj->child; c; c = c->next)
        if (c->type == RF_JSON_NUM && glance_key(c->key))
            fprintf(f, " %s=%.0f", c->key, c->num);
}

/* A table section (array of rows) or a key/value section (object). */
static void generic_rows(FILE *f, const rf_json *sec)
{
    if (no_data(f, sec))
        return;
    if (sec->type == RF_JSON_OBJ) {
        fprintf(f, " ");
        glance_fields(f, sec);
        fputc('\n', f);
        return;
    }
    if (sec->type != RF_JSON_ARR) {
        fprintf(f, "  (unexpected format)\n");
        return;
    }
    for (const rf_json *row = sec->child; row; row = row->next) {
        const char *name = "-";
        for (const rf_json *c = row->child; c; c = c->next)
            if (c->type == RF_JSON_STR) {
                name = c->str;
                break;
            }
        const rf_json *worker = rf_json_get(row, "worker");
        const rf_json *shard = rf_json_get(row, "shard");
        if (worker && worker->type == RF_JSON_NUM)
            fprintf(f, "  w%-2.0f %-20s", worker->num, name);
        else if (shard && shard->type == RF_JSON_NUM)
            fprintf(f, "  shard %-18.0f", shard->num);
        else
            fprintf(f, "  %-24s", name);
        glance_fields(f, row);
        fputc('\n', f);
    }
}

/* The previous frame, for rates: counters are cumulative, so events/s and
 * bytes/s are the difference between two snapshots over the time between
 * them (the daemon's own per-second figures exist for workers only). */
typedef struct snapshot {
    rf_json *root;
    double t; /* CLOCK_MONOTONIC seconds when it was read */
} snapshot;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The row of `table` in prev whose `k1` (and `k2`, when given) match row's. */
static const rf_json *matching_row(const rf_json *prev, const char *table, const rf_json *row,
                                   const char *k1, const char *k2)
{
    const rf_json *sec = prev ? rf_json_get(prev, table) : NULL;
    if (!sec || sec->type != RF_JSON_ARR)
        return NULL;
    for (const rf_json *r = sec->child; r; r = r->next) {
        const rf_json *a = rf_json_get(r, k1), *b = rf_json_get(row, k1);
        if (!a || !b || a->type != b->type)
            continue;
        if (a->type == RF_JSON_NUM ? a->num != b->num : strcmp(a->str, b->str) != 0)
            continue;
        if (k2 && strcmp(rf_json_str(r, k2, ""), rf_json_str(row, k2, "")) != 0)
            continue;
        return r;
    }
    return NULL;
}

/* Per second of `col` between prev's matching row and row; -1 when unknown
 * (the first frame, or a row that is new). */
static double rate(const rf_json *prev_row, const rf_json *row, const char *col, double dt)
{
    if (!prev_row || dt <= 0)
        return -1;
    double d = rf_json_num(row, col, 0) - rf_json_num(prev_row, col, 0);
    return d < 0 ? 0 : d / dt; /* a clear counters in between: no negative rate */
}

static void cell_rate(FILE *f, double r, bool bytes)
{
    if (r < 0) {
        fprintf(f, " %12s", "-");
    } else if (bytes) {
        char b[32];
        human_bytes(b, sizeof(b), r);
        fprintf(f, " %10s/s", b);
    } else {
        fprintf(f, " %12.0f", r);
    }
}

static void render_listeners(FILE *f, const rf_json *root, const snapshot *prev, double dt)
{
    const rf_json *ls = rf_json_get(root, "listeners");
    if (no_data(f, ls))
        return;
    if (ls->type != RF_JSON_ARR) {
        generic_rows(f, ls);
        return;
    }
    fprintf(f, "  %-3s %-22s %-15s %12s %12s %12s %12s %10s\n", "w", "listener", "proto",
            "events/s", "bytes/s", "rejected", "kernel_drop", "conns");
    for (const rf_json *r = ls->child; r; r = r->next) {
        const rf_json *pr =
            matching_row(prev ? prev->root : NULL, "listeners", r, "worker", "listener");
        char proto[24];
        snprintf(proto, sizeof(proto), "%s/%s", rf_json_str(r, "protocol", "?"),
                 rf_json_str(r, "transport", "?"));
        /* wide enough for influx_line/tcp, the longest; never cut */
        fprintf(f, "  %-3.0f %-22s %-15s", rf_json_num(r, "worker", 0),
                rf_json_str(r, "listener", "?"), proto);
        cell_rate(f, rate(pr, r, "events", dt), false);
        cell_rate(f, rate(pr, r, "bytes", dt), true);
        fprintf(f, " %12.0f %12.0f %10.0f\n", rf_json_num(r, "rejected", 0),
                rf_json_num(r, "kernel_drops", 0), rf_json_num(r, "connections", 0));
    }
}

/* Forwarding sinks, when there are any: delivery rate, backlog, drops, the
 * oldest unsent event, the receiver's state and a nats sink's connection. */
static void render_forwarders(FILE *f, const rf_json *root, const snapshot *prev, double dt)
{
    const rf_json *fw = rf_json_get(root, "forwarders");
    if (!fw || fw->type != RF_JSON_ARR || !fw->child)
        return;
    fprintf(f, "\nFORWARDERS\n  %-3s %-22s %-12s %12s %12s %12s %12s  %s\n", "w", "sink", "state",
            "acked/s", "queued", "dropped", "oldest_ms", "nats");
    for (const rf_json *r = fw->child; r; r = r->next) {
        const rf_json *pr =
            matching_row(prev ? prev->root : NULL, "forwarders", r, "worker", "sink");
        fprintf(f, "  %-3.0f %-22s %-12s", rf_json_num(r, "worker", 0), rf_json_str(r, "sink", "?"),
                rf_json_str(r, "state", "?"));
        cell_rate(f, rate(pr, r, "acked", dt), false);
        fprintf(f, " %12.0f %12.0f %12.0f  %s\n", rf_json_num(r, "queued_events", 0),
                rf_json_num(r, "dropped_rejected", 0) + rf_json_num(r, "dropped_buffer_full", 0) +
                    rf_json_num(r, "dropped_other", 0),
                rf_json_num(r, "oldest_unsent_ms", 0), rf_json_str(r, "nats_conn", "-"));
    }
}

/* HTTP listeners, when there are any: request and point rates, refusals. */
static void render_http(FILE *f, const rf_json *root, const snapshot *prev, double dt)
{
    const rf_json *hs = rf_json_get(root, "http");
    if (!hs || hs->type != RF_JSON_ARR || !hs->child)
        return;
    fprintf(f, "\nHTTP\n");
    fprintf(f, "  %-3s %-22s %12s %12s %12s %12s %s\n", "w", "listener", "requests/s", "points/s",
            "bytes/s", "body_mem", "refused");
    for (const rf_json *r = hs->child; r; r = r->next) {
        const rf_json *pr = matching_row(prev ? prev->root : NULL, "http", r, "worker", "listener");
        char mem[32];
        human_bytes(mem, sizeof(mem), rf_json_num(r, "body_in_use", 0));
        fprintf(f, "  %-3.0f %-22s", rf_json_num(r, "worker", 0), rf_json_str(r, "listener", "?"));
        cell_rate(f, rate(pr, r, "requests", dt), false);
        cell_rate(f, rate(pr, r, "points", dt), false);
        cell_rate(f, rate(pr, r, "bytes_in", dt), true);
        fprintf(f, " %12s %s\n", mem, rf_json_str(r, "rejects_by_reason", ""));
    }
}

static void render_storage(FILE *f, const rf_json *root, const snapshot *prev, double dt)
{
    generic_rows(f, rf_json_get(root, "storage"));
    const rf_json *shards = rf_json_get(root, "storage_shards");
    if (!shards || shards->type != RF_JSON_ARR)
        return;
    fprintf(f, "  %-6s %12s %12s %12s %12s %12s\n", "shard", "points/s", "written/s", "series",
            "buffered", "dropped");
    for (const rf_json *r = shards->child; r; r = r->next) {
        const rf_json *pr =
            matching_row(prev ? prev->root : NULL, "storage_shards", r, "shard", NULL);
        fprintf(f, "  %-6.0f", rf_json_num(r, "shard", 0));
        cell_rate(f, rate(pr, r, "points_appended", dt), false);
        cell_rate(f, rate(pr, r, "bytes_written", dt), true);
        double dropped = 0;
        for (const rf_json *c = r->child; c; c = c->next)
            if (c->type == RF_JSON_NUM && c->key && !strncmp(c->key, "dropped", 7))
                dropped += c->num;
        fprintf(f, " %12.0f %12.0f %12.0f\n", rf_json_num(r, "series", 0),
                rf_json_num(r, "points_buffered", 0), dropped);
    }
}

static void render(FILE *f, const rf_json *root, const char *path, const snapshot *prev, double dt)
{
    const rf_json *info = rf_json_get(root, "info");
    char up[32], rss[32], now[16];
    human_duration(up, sizeof(up), rf_json_num(info, "uptime_s", 0));
    human_bytes(rss, sizeof(rss), rf_json_num(info, "rss_bytes", 0));
    time_t t = time(NULL);
    strftime(now, sizeof(now), "%H:%M:%S", localtime(&t));
    fprintf(f, "ringflow top  %s  version %s  pid %.0f  up %s  workers %.0f  rss %s  %s\n", path,
            rf_json_str(info, "version", "?"), rf_json_num(info, "pid", 0), up,
            rf_json_num(info, "workers", 0), rss, now);
    fprintf(f, "config %s  log %s\n\n", rf_json_str(info, "config", "?"),
            rf_json_str(info, "log_level", "?"));

    const rf_json *workers = rf_json_get(root, "workers");
    fprintf(f, "WORKERS\n");
    if (!no_data(f, workers)) {
        fprintf(f, "  %-3s %-12s %-11s %4s %12s %6s %12s %12s\n", "id", "name", "state", "cpu",
                "events/s", "busy%", "drops", "block_waits");
        for (const rf_json *w = workers->child; w; w = w->next)
            fprintf(f, "  %-3.0f %-12s %-11s %4.0f %12.1f %6.1f %12.0f %12.0f\n",
                    rf_json_num(w, "worker", 0), rf_json_str(w, "name", "?"),
                    rf_json_str(w, "state", "?"), rf_json_num(w, "cpu", -1),
                    rf_json_num(w, "events_per_s", 0), rf_json_num(w, "busy_pct", 0),
                    rf_json_num(w, "dropped_ring_full", 0) +
                        rf_json_num(w, "dropped_unknown_series", 0),
                    rf_json_num(w, "block_waits", 0));
    }

    const rf_json *rings = rf_json_get(root, "rings");
    fprintf(f, "\nRINGS\n");
    if (!no_data(f, rings)) {
        fprintf(f, "  %-8s %-22s %18s %10s %10s %10s\n", "ring", "fill", "fill/capacity",
                "high_water", "full", "drops");
        for (const rf_json *r = rings->child; r; r = r->next) {
            double cap = rf_json_num(r, "capacity", 0), fill = rf_json_num(r, "fill", 0);
            char bar[21], name[16], fc[32];
            int filled = cap > 0 ? (int)(20.0 * fill / cap + 0.5) : 0;
            if (fill > 0 && filled == 0)
                filled = 1; /* something is queued: show it */
            for (int i = 0; i < 20; i++)
                bar[i] = i < filled ? '#' : '.';
            bar[20] = '\0';
            snprintf(name, sizeof(name), "%.0f->%.0f", rf_json_num(r, "from", 0),
                     rf_json_num(r, "to", 0));
            snprintf(fc, sizeof(fc), "%.0f/%.0f", fill, cap);
            fprintf(f, "  %-8s [%s] %18s %10.0f %10.0f %10.0f\n", name, bar, fc,
                    rf_json_num(r, "high_water", 0), rf_json_num(r, "full_events", 0),
                    rf_json_num(r, "dropped_newest", 0) + rf_json_num(r, "dropped_stopped", 0));
        }
    }

    fprintf(f, "\nLISTENERS\n");
    render_listeners(f, root, prev, dt);
    render_http(f, root, prev, dt);
    render_forwarders(f, root, prev, dt);
    fprintf(f, "\nSTORAGE\n");
    render_storage(f, root, prev, dt);

    const rf_json *lat = rf_json_get(root, "latency");
    fprintf(f, "\nLATENCY\n");
    if (!no_data(f, lat)) {
        fprintf(f, "  %-40s %12s %12s %12s\n", "histogram", "count", "p99 (us)", "max (us)");
        for (const rf_json *h = lat->child; h; h = h->next) {
            char name[160];
            const char *labels = rf_json_str(h, "labels", "");
            snprintf(name, sizeof(name), "%s%s%s%s", rf_json_str(h, "histogram", "?"),
                     *labels ? "{" : "", labels, *labels ? "}" : "");
            fprintf(f, "  %-40s %12.0f %12.1f %12.1f\n", name, rf_json_num(h, "count", 0),
                    rf_json_num(h, "p99_us", 0), rf_json_num(h, "max_us", 0));
        }
    }
}

/* One frame into a string (so the screen is redrawn in one write). The
 * snapshot it read replaces *prev (rates in the next frame). */
static char *frame(int *fd, const char *path, int *status, snapshot *prev)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    *status = 0;
    if (*fd < 0)
        *fd = rf_cli_connect(path);
    char *reply = NULL;
    int rc = *fd < 0 ? *fd : rf_cli_request(*fd, "show stats json", RF_CLI_TIMEOUT_MS, &reply);
    if (rc < 0) {
        fprintf(f, "ringflow top  %s: %s (retrying; is ringflowd running?)\n", path, strerror(-rc));
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        *status = 1;
    } else {
        rf_err err;
        rf_json *root = rf_json_parse(reply, &err);
        if (!root) {
            fprintf(f, "ringflow top: unexpected reply: %s\n", err.msg);
            *status = 1;
        } else {
            const double now = mono_s();
            render(f, root, path, prev, prev->root ? now - prev->t : 0);
            rf_json_free(prev->root);
            prev->root = root;
            prev->t = now;
        }
    }
    free(reply);
    fclose(f);
    return text;
}

int rf_cli_top(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"once", no_argument, NULL, '1'},
        {"iterations", required_argument, NULL, 'n'},
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL; /* the engine's (tools/cli/locate.h) */
    bool once = false;
    long interval = 1000, iterations = 0; /* 0: until q (terminal) or 1 (no terminal) */
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "s:1n:i:h", opts, NULL)) != -1) {
        switch (opt) {
        case 's': path = optarg; break;
        case '1': once = true; break;
        case 'n': {
            char *end;
            iterations = strtol(optarg, &end, 10);
            if (!*optarg || *end || iterations < 1 || iterations > 1000000) {
                fprintf(stderr, "ringflow top: --iterations: expected 1..1000000\n");
                return 2;
            }
            break;
        }
        case 'i': {
            char *end;
            interval = strtol(optarg, &end, 10);
            if (*end || interval < 100 || interval > 60000) {
                fprintf(stderr, "ringflow top: --interval: expected 100..60000 ms\n");
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    int fd = -1, status = 0;
    if (!path)
        path = rf_cli_stats_socket();
    snapshot prev = {0};
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    if (once || !isatty(STDOUT_FILENO)) {
        /* Plain frames: no terminal to redraw, nobody to press q. */
        long n = once ? 1 : iterations ? iterations : 1;
        for (long i = 0; i < n && !g_quit; i++) {
            if (i > 0) {
                fflush(stdout);
                poll(NULL, 0, (int)interval); /* a signal ends the wait and the loop */
                if (g_quit)
                    break;
                fputc('\n', stdout);
            }
            char *text = frame(&fd, path, &status, &prev);
            if (text)
                fputs(text, status ? stderr : stdout);
            free(text);
        }
        fflush(stdout);
        if (fd >= 0)
            close(fd);
        rf_json_free(prev.root);
        return status;
    }
    struct termios saved;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
    if (tty) {
        struct termios raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG stays: Ctrl-C is SIGINT */
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    fputs("\033[?25l", stdout);
    bool stdin_open = true;
    for (long shown = 0; !g_quit;) {
        char *text = frame(&fd, path, &status, &prev);
        fputs("\033[H\033[2J", stdout);
        if (text)
            fputs(text, stdout);
        fputs("\nq or Ctrl-C quits\n", stdout);
        fflush(stdout);
        free(text);
        if (iterations && ++shown >= iterations)
            break;
        /* A closed stdin (e.g. </dev/null) is no longer watched: only a
         * signal ends the view then. */
        struct pollfd p = {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN};
        if (poll(&p, 1, (int)interval) > 0 && (p.revents & (POLLIN | POLLHUP))) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n == 0 && !tty)
                stdin_open = false;
            if (n == 1 && (c == 'q' || c == 'Q'))
                g_quit = 1;
        }
    }
    fputs("\033[?25h", stdout);
    fflush(stdout);
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    if (fd >= 0)
        close(fd);
    rf_json_free(prev.root);
    return 0;
}
