/* A strict reader of the Prometheus text exposition format 0.0.4 for tests:
 * parses every line, and checks what a scraper relies on:
 *   - HELP/TYPE lines are well formed, TYPE at most once per family and
 *     before its samples; every sample belongs to a declared family;
 *   - counters are named *_total;
 *   - label lists are name="value" pairs with valid escapes;
 *   - histograms: per label set, buckets ordered by le with non-decreasing
 *     counts, the last one le="+Inf", equal to _count, and _sum present.
 * Header-only (static functions): include it in one test file each. */
#ifndef RF_TESTS_OPS_PROM_CHECK_H
#define RF_TESTS_OPS_PROM_CHECK_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct prom_sample {
    char name[128];
    char labels[256]; /* without braces, as written */
    double value;
} prom_sample;

typedef struct prom_family {
    char name[128];
    char type[16];
} prom_family;

typedef struct prom_doc {
    prom_sample *s;
    size_t n, cap;
    prom_family f[512];
    size_t nf;
} prom_doc;

static inline void prom_free(prom_doc *d)
{
    free(d->s);
    memset(d, 0, sizeof(*d));
}

static inline const prom_family *prom_family_of(const prom_doc *d, const char *name)
{
    for (size_t i = 0; i < d->nf; i++)
        if (!strcmp(d->f[i].name, name))
            return &d->f[i];
    return NULL;
}

static inline const char *prom_type(const prom_doc *d, const char *family)
{
    const prom_family *f = prom_family_of(d, family);
    return f ? f->type : "";
}

static inline bool prom_value(const prom_doc *d, const char *name, const char *labels, double *v)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->s[i].name, name) && !strcmp(d->s[i].labels, labels)) {
            *v = d->s[i].value;
            return true;
        }
    return false;
}

static inline bool prom_name_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

/* Checks name="v",name="v" (p points after '{'); returns the end ('}') or NULL. */
static inline const char *prom_labels_ok(const char *p)
{
    if (*p == '}')
        return p;
    for (;;) {
        const char *n = p;
        while (*p && *p != '=')
            p++;
        if (*p != '=' || !prom_name_ok(n, (size_t)(p - n)) || p[1] != '"')
            return NULL;
        p += 2;
        while (*p && *p != '"') {
            if (*p == '\\') {
                if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                    return NULL;
                p++;
            }
            if (*p == '\n' || !*p)
                return NULL;
            p++;
        }
        if (*p != '"')
            return NULL;
        p++;
        if (*p == '}')
            return p;
        if (*p != ',')
            return NULL;
        p++;
    }
}

/* The family a sample belongs to (histograms: strip _bucket/_sum/_count). */
static inline const prom_family *prom_owner(const prom_doc *d, const char *name)
{
    const prom_family *f = prom_family_of(d, name);
    if (f)
        return f;
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(name), sl = strlen(sfx[k]);
        if (l > sl && !strcmp(name + l - sl, sfx[k])) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(l - sl), name);
            f = prom_family_of(d, base);
            if (f && !strcmp(f->type, "histogram"))
                return f;
        }
    }
    return NULL;
}

/* Splits labels into the le value and the rest (for histogram checks). */
static inline void prom_split_le(const char *labels, char *rest, size_t rsize, char *le,
                                 size_t lsize)
{
    rest[0] = le[0] = '\0';
    const char *p = strstr(labels, "le=\"");
    if (p && (p == labels || p[-1] == ',')) {
        const char *e = strchr(p + 4, '"');
        snprintf(le, lsize, "%.*s", (int)(e - p - 4), p + 4);
        size_t before = (size_t)(p - labels);
        if (before > 0)
            before--; /* the comma */
        snprintf(rest, rsize, "%.*s%s", (int)before, labels,
                 e[1] == ',' && before == 0 ? e + 2 : e + 1);
    } else {
        snprintf(rest, rsize, "%s", labels);
    }
}

static inline int prom_fail(char *err, size_t size, const char *what, const char *line)
{
    snprintf(err, size, "%s: '%.*s'", what, (int)strcspn(line, "\n"), line);
    return -1;
}

static inline int prom_parse(const char *text, prom_doc *d, char *err, size_t esize)
{
    memset(d, 0, sizeof(*d));
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            return prom_fail(err, esize, "last line without newline", line);
        char buf[1024];
        snprintf(buf, sizeof(buf), "%.*s", (int)(eol - line), line);
        if (!strncmp(buf, "# HELP ", 7)) {
            const char *n = buf + 7, *sp = strchr(n, ' ');
            if (!sp || !prom_name_ok(n, (size_t)(sp - n)))
                return prom_fail(err, esize, "bad HELP", line);
        } else if (!strncmp(buf, "# TYPE ", 7)) {
            char name[128], type[16];
            if (sscanf(buf + 7, "%127s %15s", name, type) != 2 || !prom_name_ok(name, strlen(name)))
                return prom_fail(err, esize, "bad TYPE", line);
            if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
                strcmp(type, "summary") && strcmp(type, "untyped"))
                return prom_fail(err, esize, "unknown type", line);
            if (prom_family_of(d, name))
                return prom_fail(err, esize, "TYPE twice", line);
            if (!strcmp(type, "counter") &&
                (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
                return prom_fail(err, esize, "counter not named *_total", line);
            if (d->nf == sizeof(d->f) / sizeof(d->f[0]))
                return prom_fail(err, esize, "too many families for the checker", line);
            snprintf(d->f[d->nf].name, sizeof(d->f[0].name), "%s", name);
            snprintf(d->f[d->nf].type, sizeof(d->f[0].type), "%s", type);
            d->nf++;
        } else if (buf[0] == '#' || buf[0] == '\0') {
            /* comment or blank: allowed */
        } else {
            prom_sample s = {0};
            const char *p = buf;
            while (*p && *p != '{' && *p != ' ')
                p++;
            if (!prom_name_ok(buf, (size_t)(p - buf)))
                return prom_fail(err, esize, "bad metric name", line);
            snprintf(s.name, sizeof(s.name), "%.*s", (int)(p - buf), buf);
            if (*p == '{') {
                const char *e = prom_labels_ok(p + 1);
                if (!e)
                    return prom_fail(err, esize, "bad labels", line);
                snprintf(s.labels, sizeof(s.labels), "%.*s", (int)(e - p - 1), p + 1);
                p = e + 1;
            }
            if (*p != ' ')
                return prom_fail(err, esize, "no value", line);
            char *end;
            const char *val = p + 1;
            if (!strcmp(val, "+Inf") || !strcmp(val, "-Inf") || !strcmp(val, "NaN"))
                s.value = strtod(val, NULL);
            else {
                s.value = strtod(val, &end);
                if (end == val || (*end && *end != ' '))
                    return prom_fail(err, esize, "bad value", line);
            }
            if (!prom_owner(d, s.name))
                return prom_fail(err, esize, "sample without a TYPE before it", line);
            if (d->n == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 256;
                d->s = realloc(d->s, d->cap * sizeof(*d->s));
            }
            d->s[d->n++] = s;
        }
        line = eol + 1;
    }
    /* Histograms: per family and label set, cumulative buckets up to +Inf = _count. */
    for (size_t i = 0; i < d->n; i++) {
        const prom_family *f = prom_owner(d, d->s[i].name);
        size_t nl = strlen(f->name);
        if (strcmp(f->type, "histogram") || strcmp(d->s[i].name + nl, "_count"))
            continue;
        double prev_le = -INFINITY, prev_count = 0;
        bool saw_inf = false, saw_sum = false;
        char bucket[140], sum[140];
        snprintf(bucket, sizeof(bucket), "%s_bucket", f->name);
        snprintf(sum, sizeof(sum), "%s_sum", f->name);
        for (size_t j = 0; j < d->n; j++) {
            char rest[256], le[64];
            if (!strcmp(d->s[j].name, sum) && !strcmp(d->s[j].labels, d->s[i].labels))
                saw_sum = true;
            if (strcmp(d->s[j].name, bucket))
                continue;
            prom_split_le(d->s[j].labels, rest, sizeof(rest), le, sizeof(le));
            if (strcmp(rest, d->s[i].labels))
                continue;
            if (!le[0])
                return prom_fail(err, esize, "bucket without le", d->s[j].name);
            double lev = !strcmp(le, "+Inf") ? INFINITY : strtod(le, NULL);
            if (lev <= prev_le || d->s[j].value < prev_count)
                return prom_fail(err, esize, "buckets not cumulative/ordered", d->s[j].labels);
            prev_le = lev;
            prev_count = d->s[j].value;
            if (isinf(lev)) {
                saw_inf = true;
                if (d->s[j].value != d->s[i].value)
                    return prom_fail(err, esize, "+Inf bucket != _count", d->s[j].labels);
            }
        }
        if (!saw_inf || !saw_sum)
            return prom_fail(err, esize, "histogram without +Inf bucket or _sum", d->s[i].labels);
    }
    return 0;
}

#endif
