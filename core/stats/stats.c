/* The metrics registry, histogram snapshots and the Prometheus export. Every
 * function here runs on the control thread except the inline writers in
 * stats.h. */
#include "core/stats/stats.h"

#include "core/log/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- histograms ---------------------------------------------------------- */

void rf_hist_init(rf_hist *h)
{
    atomic_init(&h->count, 0);
    atomic_init(&h->sum, 0);
    atomic_init(&h->max, 0);
    for (uint32_t i = 0; i < RF_HIST_BUCKETS; i++)
        atomic_init(&h->buckets[i], 0);
}

uint64_t rf_hist_bucket_low(uint32_t i)
{
    if (i < RF_HIST_LINEAR)
        return i;
    uint32_t shift = i / RF_HIST_SUB - 1u;
    uint64_t sub = (uint64_t)(i % RF_HIST_SUB) + RF_HIST_SUB;
    return sub << shift;
}

uint64_t rf_hist_bucket_high(uint32_t i)
{
    if (i < RF_HIST_LINEAR)
        return i;
    if (i >= RF_HIST_BUCKETS - 1)
        return UINT64_MAX; /* the last bucket also takes everything above 2^36 */
    uint32_t shift = i / RF_HIST_SUB - 1u;
    uint64_t sub = (uint64_t)(i % RF_HIST_SUB) + RF_HIST_SUB;
    return ((sub + 1) << shift) - 1;
}

void rf_hist_snapshot(const rf_hist *h, rf_hist_snap *out)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < RF_HIST_BUCKETS; i++) {
        /* Pairs with the relaxed store in rf_hist_record (single writer). */
        out->buckets[i] = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        n += out->buckets[i];
    }
    out->count = n;
    /* Relaxed, pairing with the writer's relaxed stores: sum and max may be a
     * few records ahead of or behind the buckets, never torn. */
    out->sum = atomic_load_explicit(&h->sum, memory_order_relaxed);
    out->max = atomic_load_explicit(&h->max, memory_order_relaxed);
}

void rf_hist_snap_reset(rf_hist_snap *s)
{
    memset(s, 0, sizeof(*s));
}

void rf_hist_snap_merge(rf_hist_snap *s, const rf_hist_snap *o)
{
    for (uint32_t i = 0; i < RF_HIST_BUCKETS; i++)
        s->buckets[i] += o->buckets[i];
    s->count += o->count;
    s->sum += o->sum;
    if (o->max > s->max)
        s->max = o->max;
}

void rf_hist_snap_sub(rf_hist_snap *s, const rf_hist_snap *base)
{
    uint64_t n = 0;
    uint32_t top = 0;
    for (uint32_t i = 0; i < RF_HIST_BUCKETS; i++) {
        s->buckets[i] = s->buckets[i] >= base->buckets[i] ? s->buckets[i] - base->buckets[i] : 0;
        n += s->buckets[i];
        if (s->buckets[i])
            top = i;
    }
    s->count = n;
    s->sum = s->sum >= base->sum ? s->sum - base->sum : 0;
    if (n == 0) {
        s->max = 0;
    } else {
        uint64_t hi = rf_hist_bucket_high(top);
        if (hi < s->max)
            s->max = hi;
    }
}

uint64_t rf_hist_snap_quantile(const rf_hist_snap *s, double q)
{
    if (s->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)s->count + 0.999999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < RF_HIST_BUCKETS; i++) {
        seen += s->buckets[i];
        if (seen >= rank) {
            uint64_t hi = rf_hist_bucket_high(i);
            return hi < s->max ? hi : s->max;
        }
    }
    return s->max;
}

uint64_t rf_hist_snap_count_le(const rf_hist_snap *s, uint64_t le_ns)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < RF_HIST_BUCKETS && rf_hist_bucket_high(i) <= le_ns; i++)
        n += s->buckets[i];
    return n;
}

/* ---- text buffer ----------------------------------------------------------- */

static bool strbuf_reserve(rf_strbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void rf_strbuf_append(rf_strbuf *b, const char *s, size_t n)
{
    if (!strbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void rf_strbuf_vprintf(rf_strbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof(small)) {
        rf_strbuf_append(b, small, (size_t)n);
    } else if (strbuf_reserve(b, (size_t)n)) {
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void rf_strbuf_printf(rf_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rf_strbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

void rf_strbuf_free(rf_strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- registry -------------------------------------------------------------- */

typedef struct stats_entry {
    bool live;
    enum rf_metric_type type;
    char name[RF_STATS_NAME_MAX];
    char help[RF_STATS_HELP_MAX];
    char labels[RF_STATS_LABELS_MAX];
    const _Atomic uint64_t *value; /* or fn/ctx, or hist */
    rf_stats_read_fn fn;
    void *ctx;
    const rf_hist *hist;
    bool ns_as_seconds;      /* rf_stats_register_fn_ns: exported / 1e9 */
    uint64_t base;           /* clear baseline (counters) */
    rf_hist_snap *hist_base; /* clear baseline (histograms), NULL until cleared */
} stats_entry;

/* Control thread only (see stats.h): plain, unsynchronised state. */
static stats_entry *g_entries;
static int g_n_entries; /* slots ever used: [0, g_n_entries) live or dead */
static int g_n_dead;    /* dead slots among them, reused before new ones */

static bool valid_name(const char *s)
{
    if (!s || !*s || strlen(s) >= RF_STATS_NAME_MAX)
        return false;
    for (const char *p = s; *p; p++) {
        bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p == ':';
        if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
            return false;
    }
    return true;
}

static bool valid_labels(const char *s)
{
    if (strlen(s) >= RF_STATS_LABELS_MAX)
        return false;
    bool in_quote = false;
    for (const char *p = s; *p; p++) {
        if (*p == '\n')
            return false;
        if (in_quote && *p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '"')
            in_quote = !in_quote;
    }
    return !in_quote;
}

static int add_entry(enum rf_metric_type type, const char *name, const char *help,
                     const char *labels)
{
    if (!labels)
        labels = "";
    if (!valid_name(name) || !valid_labels(labels) || (help && strlen(help) >= RF_STATS_HELP_MAX)) {
        /* A programming error, not an operator's: say so where it is seen
         * (callers rarely check), rather than lose the metric silently. */
        rf_log_error("stats", "metric %s{%s} refused: invalid name, labels or help", name, labels);
        return -EINVAL;
    }
    size_t nl = strlen(name);
    if (type == RF_METRIC_COUNTER && nl > 6 && !strcmp(name + nl - 6, "_total")) {
        rf_log_error("stats", "counter %s refused: the exposition adds _total itself", name);
        return -EINVAL;
    }
    if (!g_entries) {
        g_entries = calloc(RF_STATS_MAX_METRICS, sizeof(*g_entries));
        if (!g_entries)
            return -ENOMEM;
    }
    /* A removed entry's slot first: listeners that reloads add and remove
     * register and unregister their series every time, and the registry
     * must not fill up with the dead. Output is sorted by name and labels,
     * so which slot an entry takes changes nothing a scraper sees. */
    int id = g_n_entries;
    if (g_n_dead > 0) {
        for (id = 0; id < g_n_entries && g_entries[id].live; id++)
            ;
        g_n_dead--;
    } else if (g_n_entries >= RF_STATS_MAX_METRICS) {
        return -ENOSPC;
    } else {
        g_n_entries++;
    }
    stats_entry *e = &g_entries[id];
    memset(e, 0, sizeof(*e));
    e->live = true;
    e->type = type;
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->help, sizeof(e->help), "%s", help ? help : "");
    snprintf(e->labels, sizeof(e->labels), "%s", labels);
    return id;
}

int rf_stats_register_counter(const char *name, const char *help, const char *labels,
                              const _Atomic uint64_t *value)
{
    int id = add_entry(RF_METRIC_COUNTER, name, help, labels);
    if (id >= 0)
        g_entries[id].value = value;
    return id;
}

int rf_stats_register_gauge(const char *name, const char *help, const char *labels,
                            const _Atomic uint64_t *value)
{
    int id = add_entry(RF_METRIC_GAUGE, name, help, labels);
    if (id >= 0)
        g_entries[id].value = value;
    return id;
}

int rf_stats_register_fn(enum rf_metric_type type, const char *name, const char *help,
                         const char *labels, rf_stats_read_fn fn, void *ctx)
{
    if (type == RF_METRIC_HISTOGRAM || !fn)
        return -EINVAL;
    int id = add_entry(type, name, help, labels);
    if (id >= 0) {
        g_entries[id].fn = fn;
        g_entries[id].ctx = ctx;
    }
    return id;
}

int rf_stats_register_fn_ns(enum rf_metric_type type, const char *name, const char *help,
                            const char *labels, rf_stats_read_fn fn, void *ctx)
{
    int id = rf_stats_register_fn(type, name, help, labels, fn, ctx);
    if (id >= 0)
        g_entries[id].ns_as_seconds = true;
    return id;
}

int rf_stats_register_histogram(const char *name, const char *help, const char *labels,
                                const rf_hist *hist)
{
    if (!hist)
        return -EINVAL;
    int id = add_entry(RF_METRIC_HISTOGRAM, name, help, labels);
    if (id >= 0)
        g_entries[id].hist = hist;
    return id;
}

void rf_stats_unregister(int id)
{
    if (id < 0 || id >= g_n_entries || !g_entries[id].live)
        return;
    g_entries[id].live = false;
    free(g_entries[id].hist_base);
    g_entries[id].hist_base = NULL;
    g_n_dead++;
}

void rf_stats_reset(void)
{
    for (int i = 0; i < g_n_entries; i++)
        free(g_entries[i].hist_base);
    free(g_entries);
    g_entries = NULL;
    g_n_entries = 0;
    g_n_dead = 0;
}

static uint64_t raw_value(const stats_entry *e)
{
    return e->fn ? e->fn(e->ctx) : rf_stats_load(e->value);
}

void rf_stats_clear(void)
{
    for (int i = 0; i < g_n_entries; i++) {
        stats_entry *e = &g_entries[i];
        if (!e->live)
            continue;
        if (e->type == RF_METRIC_COUNTER) {
            e->base = raw_value(e);
        } else if (e->type == RF_METRIC_HISTOGRAM) {
            if (!e->hist_base)
                e->hist_base = malloc(sizeof(*e->hist_base));
            if (e->hist_base) /* out of memory: this histogram is not cleared */
                rf_hist_snapshot(e->hist, e->hist_base);
        }
    }
}

bool rf_stats_next(int *cursor, rf_stats_info *out)
{
    for (int i = *cursor < 0 ? 0 : *cursor; i < g_n_entries; i++) {
        const stats_entry *e = &g_entries[i];
        if (!e->live)
            continue;
        out->id = i;
        out->type = e->type;
        out->name = e->name;
        out->help = e->help;
        out->labels = e->labels;
        *cursor = i + 1;
        return true;
    }
    *cursor = g_n_entries;
    return false;
}

uint64_t rf_stats_value(int id, bool since_clear)
{
    if (id < 0 || id >= g_n_entries || !g_entries[id].live ||
        g_entries[id].type == RF_METRIC_HISTOGRAM)
        return 0;
    const stats_entry *e = &g_entries[id];
    uint64_t v = raw_value(e);
    if (since_clear && e->type == RF_METRIC_COUNTER)
        v = v >= e->base ? v - e->base : 0;
    return v;
}

void rf_stats_hist_read(int id, bool since_clear, rf_hist_snap *out)
{
    if (id < 0 || id >= g_n_entries || !g_entries[id].live ||
        g_entries[id].type != RF_METRIC_HISTOGRAM) {
        rf_hist_snap_reset(out);
        return;
    }
    const stats_entry *e = &g_entries[id];
    rf_hist_snapshot(e->hist, out);
    if (since_clear && e->hist_base)
        rf_hist_snap_sub(out, e->hist_base);
}

/* ---- Prometheus export ------------------------------------------------------- */

void rf_stats_escape(rf_strbuf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            rf_strbuf_append(out, "\\\\", 2);
        else if (*s == '"')
            rf_strbuf_append(out, "\\\"", 2);
        else if (*s == '\n')
            rf_strbuf_append(out, "\\n", 2);
        else
            rf_strbuf_append(out, s, 1);
    }
}

static int cmp_entries(const void *a, const void *b)
{
    const stats_entry *x = &g_entries[*(const int *)a], *y = &g_entries[*(const int *)b];
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    c = strcmp(x->labels, y->labels);
    if (c)
        return c;
    return *(const int *)a - *(const int *)b;
}

/* Bucket bounds exported to Prometheus, in ns (the internal 1984 buckets are
 * too many to scrape): 1 us to 60 s, then +Inf. */
static const uint64_t prom_bounds_ns[] = {
    1000,      5000,       10000,      25000,      50000,       100000,      250000,    500000,
    1000000,   2500000,    5000000,    10000000,   25000000,    50000000,    100000000, 250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000, 60000000000,
};

static void write_series_head(rf_strbuf *out, const char *name, const char *suffix,
                              const char *labels, const char *extra)
{
    rf_strbuf_printf(out, "%s%s", name, suffix);
    bool has_l = labels && *labels, has_x = extra && *extra;
    if (has_l || has_x)
        rf_strbuf_printf(out, "{%s%s%s}", has_l ? labels : "", has_l && has_x ? "," : "",
                         has_x ? extra : "");
}

void rf_stats_write_prometheus(rf_strbuf *out)
{
    int n = 0;
    int *order = malloc(sizeof(int) * (size_t)(g_n_entries ? g_n_entries : 1));
    if (!order) {
        out->oom = true;
        return;
    }
    for (int i = 0; i < g_n_entries; i++)
        if (g_entries[i].live)
            order[n++] = i;
    qsort(order, (size_t)n, sizeof(int), cmp_entries);

    rf_hist_snap *acc = NULL, *one = NULL;
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    for (int k = 0; k < n;) {
        const stats_entry *e = &g_entries[order[k]];
        if (k == 0 || strcmp(g_entries[order[k - 1]].name, e->name) != 0) {
            rf_strbuf_printf(out, "# HELP %s%s ", e->name,
                             e->type == RF_METRIC_COUNTER ? "_total" : "");
            for (const char *h = e->help; *h; h++) { /* HELP escapes \ and newline */
                if (*h == '\\')
                    rf_strbuf_append(out, "\\\\", 2);
                else if (*h == '\n')
                    rf_strbuf_append(out, "\\n", 2);
                else
                    rf_strbuf_append(out, h, 1);
            }
            rf_strbuf_printf(out, "\n# TYPE %s%s %s\n", e->name,
                             e->type == RF_METRIC_COUNTER ? "_total" : "", type_names[e->type]);
        }
        /* Sum the run of entries with this name and these labels (per-core
         * parts of one metric). A later entry of another type under the same
         * name is a registration mistake: it is skipped, not mixed in. */
        int j = k;
        if (e->type != RF_METRIC_HISTOGRAM) {
            uint64_t v = 0;
            for (; j < n && !strcmp(g_entries[order[j]].name, e->name) &&
                   !strcmp(g_entries[order[j]].labels, e->labels);
                 j++)
                if (g_entries[order[j]].type == e->type)
                    v += raw_value(&g_entries[order[j]]);
            write_series_head(out, e->name, e->type == RF_METRIC_COUNTER ? "_total" : "", e->labels,
                              NULL);
            if (e->ns_as_seconds)
                rf_strbuf_printf(out, " %llu.%09llu\n", (unsigned long long)(v / 1000000000u),
                                 (unsigned long long)(v % 1000000000u));
            else
                rf_strbuf_printf(out, " %llu\n", (unsigned long long)v);
        } else {
            if (!acc) {
                acc = malloc(sizeof(*acc));
                one = malloc(sizeof(*one));
                if (!acc || !one) {
                    out->oom = true;
                    break;
                }
            }
            rf_hist_snap_reset(acc);
            for (; j < n && !strcmp(g_entries[order[j]].name, e->name) &&
                   !strcmp(g_entries[order[j]].labels, e->labels);
                 j++) {
                if (g_entries[order[j]].type != RF_METRIC_HISTOGRAM)
                    continue;
                rf_hist_snapshot(g_entries[order[j]].hist, one);
                rf_hist_snap_merge(acc, one);
            }
            char le[48];
            for (size_t b = 0; b < sizeof(prom_bounds_ns) / sizeof(prom_bounds_ns[0]); b++) {
                snprintf(le, sizeof(le), "le=\"%g\"", (double)prom_bounds_ns[b] / 1e9);
                write_series_head(out, e->name, "_bucket", e->labels, le);
                rf_strbuf_printf(out, " %llu\n",
                                 (unsigned long long)rf_hist_snap_count_le(acc, prom_bounds_ns[b]));
            }
            write_series_head(out, e->name, "_bucket", e->labels, "le=\"+Inf\"");
            rf_strbuf_printf(out, " %llu\n", (unsigned long long)acc->count);
            write_series_head(out, e->name, "_sum", e->labels, NULL);
            rf_strbuf_printf(out, " %.9f\n", (double)acc->sum / 1e9);
            write_series_head(out, e->name, "_count", e->labels, NULL);
            rf_strbuf_printf(out, " %llu\n", (unsigned long long)acc->count);
        }
        k = j > k ? j : k + 1;
    }
    free(acc);
    free(one);
    free(order);
}
