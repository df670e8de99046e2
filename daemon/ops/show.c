/* The `show` providers: who answers which section, and the placeholders for
 * components that are not running yet. The views themselves are in
 * daemon/ops/views/ (`show latency`, built in, too). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ops/ops_pvt.h"
#include "daemon/ops/views/views_pvt.h"

#define RF_OPS_MAX_SHOWS 32
#define RF_OPS_SHOW_NAME_MAX 24

typedef struct show_entry {
    char name[RF_OPS_SHOW_NAME_MAX];
    char help[96];
    const char *absent; /* what is "not running" while no provider is registered */
    rf_ops_show_fn fn;
    void *ctx;
} show_entry;

/* The documented sections, in `show stats` order. Control thread only. */
static show_entry g_shows[RF_OPS_MAX_SHOWS] = {
    {"info", "version, uptime, configuration, pid, workers, memory", "engine", NULL, NULL},
    {"workers", "per worker: state, cpu, events/s, busy %, drops", "engine", NULL, NULL},
    {"rings", "per ring from->to: capacity, fill, high-water, full events, drops", "engine", NULL,
     NULL},
    {"listeners", "per listener and protocol: packets, bytes, events, rejects, kernel drops",
     "listeners", NULL, NULL},
    {"errors", "recent rejected lines with reason and source", "ingest reject log", NULL, NULL},
    {"stages", "per stage: events in/out, drops, state", "stages", NULL, NULL},
    {"storage", "per shard: segments, bytes written, blocks, errors", "storage", NULL, NULL},
    {"series", "top N measurements by cardinality (show series top N)", "series tables", NULL,
     NULL},
    {"latency", "latency histograms: count, p50, p90, p99, p99.9, max", "latency histograms",
     rf_views_show_latency, NULL},
};
static unsigned g_n_shows = 9;

static show_entry *find_show(const char *name)
{
    for (unsigned i = 0; i < g_n_shows; i++)
        if (!strcmp(g_shows[i].name, name))
            return &g_shows[i];
    return NULL;
}

int rf_ops_register_show(const char *name, const char *help, rf_ops_show_fn fn, void *ctx)
{
    if (!name || !*name || strlen(name) >= RF_OPS_SHOW_NAME_MAX || !fn || !strcmp(name, "stats") ||
        strpbrk(name, " \t\r\n"))
        return -EINVAL;
    show_entry *e = find_show(name);
    if (e && e->fn)
        return -EEXIST;
    if (!e) {
        if (g_n_shows >= RF_OPS_MAX_SHOWS)
            return -ENOSPC;
        e = &g_shows[g_n_shows++];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%s", name);
        e->absent = NULL;
    }
    if (help && *help)
        snprintf(e->help, sizeof(e->help), "%s", help);
    e->fn = fn;
    e->ctx = ctx;
    return 0;
}

void rf_ops_unregister_show(const char *name)
{
    show_entry *e = find_show(name);
    if (e) {
        e->fn = NULL;
        e->ctx = NULL;
    }
}

static int show_one(rf_ops_writer *w, show_entry *e, const char *args, rf_err *err)
{
    if (!e->fn) {
        char what[RF_OPS_SHOW_NAME_MAX + 128];
        snprintf(what, sizeof(what), "%.100s not running", e->absent ? e->absent : e->name);
        rf_ops_no_data(w, e->name, what);
        return 0;
    }
    return e->fn(w, args, e->ctx, err);
}

int rf_ops_show(const char *name, const char *args, bool json, rf_strbuf *out, rf_err *err)
{
    rf_ops_writer w;
    rf_ops_writer_init(&w, out, json);
    size_t start = out->len;
    int rc = 0;
    if (json)
        rf_strbuf_append(out, "{", 1);
    if (!strcmp(name, "stats")) {
        if (args && *args) {
            rc = rf_err_set(err, EINVAL, "'show stats' takes no arguments (besides json)");
        } else {
            for (unsigned i = 0; i < g_n_shows; i++) {
                rf_err sub;
                rf_err_clear(&sub);
                size_t mark = out->len;
                unsigned sections = w.sections;
                if (show_one(&w, &g_shows[i], "", &sub) < 0) {
                    /* One failing provider does not hide the others. */
                    out->len = mark;
                    out->p[mark] = '\0';
                    w.sections = sections;
                    rf_ops_no_data(&w, g_shows[i].name, sub.msg);
                }
            }
        }
    } else {
        show_entry *e = find_show(name);
        if (!e)
            rc = rf_err_set(err, ENOENT, "unknown section '%s' (try 'help')", name);
        else
            rc = show_one(&w, e, args ? args : "", err);
    }
    if (rc < 0) {
        out->len = start;
        if (out->p)
            out->p[start] = '\0';
    } else if (json) {
        rf_strbuf_append(out, "}\n", 2);
    }
    rf_ops_writer_fini(&w);
    return rc;
}

void rf_ops_show_help(rf_strbuf *out)
{
    for (unsigned i = 0; i < g_n_shows; i++) {
        char cmd[RF_OPS_SHOW_NAME_MAX + 32];
        snprintf(cmd, sizeof(cmd), "show %.23s%s [json]", g_shows[i].name,
                 !strcmp(g_shows[i].name, "series") ? " top N" : "");
        rf_strbuf_printf(out, "  %-28s %s%s\n", cmd, g_shows[i].help,
                         g_shows[i].fn ? "" : " (not running)");
    }
}
