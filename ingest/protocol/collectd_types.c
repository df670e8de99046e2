/* collectd's types.db (types.db(5)): which data sources a value list of a
 * type has, by name. Loaded once on the control thread; read-only after. */
#include "ingest/protocol/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cd_type {
    char *name; /* the type, then its data source names, NUL-separated */
    uint32_t n_ds;
    const char **ds;
} cd_type;

struct rf_collectd_types {
    cd_type *types;
    uint32_t n;
};

void rf_collectd_types_free(rf_collectd_types *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++) {
        free(t->types[i].name);
        free(t->types[i].ds);
    }
    free(t->types);
    free(t);
}

/* One line "name ds:TYPE:min:max, ds:...": 0, or -EINVAL when malformed. */
static int parse_line(char *line, cd_type *out)
{
    char *save = NULL, *name = strtok_r(line, " \t", &save);
    char *rest = strtok_r(NULL, "", &save);
    if (!name || !rest)
        return -EINVAL;
    /* Data sources are separated by ',' and/or blanks (both occur in
     * Debian's types.db): at most one per separator, plus one. */
    uint32_t n = 1;
    for (const char *c = rest; *c; c++)
        n += *c == ',' || *c == ' ' || *c == '\t';
    out->ds = calloc(n, sizeof(char *));
    out->name = strdup(name);
    if (!out->ds || !out->name)
        return -ENOMEM;
    out->n_ds = 0;
    for (char *s2 = NULL, *ds = strtok_r(rest, ", \t\r\n", &s2); ds;
         ds = strtok_r(NULL, ", \t\r\n", &s2)) {
        char *colon = strchr(ds, ':');
        if (!colon || colon == ds || out->n_ds == n)
            return -EINVAL;
        *colon = '\0';
        out->ds[out->n_ds++] = ds;
    }
    if (out->n_ds == 0)
        return -EINVAL;
    /* The names point into `rest`, which dies with the line: copy them
     * behind the type's name. */
    size_t len = strlen(name) + 1;
    for (uint32_t i = 0; i < out->n_ds; i++)
        len += strlen(out->ds[i]) + 1;
    char *block = malloc(len), *w = block;
    if (!block)
        return -ENOMEM;
    w = stpcpy(w, name) + 1;
    for (uint32_t i = 0; i < out->n_ds; i++) {
        const char *src = out->ds[i];
        out->ds[i] = w;
        w = stpcpy(w, src) + 1;
    }
    free(out->name);
    out->name = block;
    return 0;
}

static int cmp_type(const void *a, const void *b)
{
    return strcmp(((const cd_type *)a)->name, ((const cd_type *)b)->name);
}

rf_collectd_types *rf_collectd_types_load(const char *path, rf_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rf_err_set(err, errno, "collectd types_db %s: %s", path, strerror(errno));
        return NULL;
    }
    rf_collectd_types *t = calloc(1, sizeof(*t));
    char line[4096];
    uint32_t cap = 0, lineno = 0;
    int rc = t ? 0 : -ENOMEM;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
            continue;
        if (t->n == cap) {
            cap = cap ? cap * 2 : 256;
            cd_type *nt = realloc(t->types, cap * sizeof(cd_type));
            if (!nt) {
                rc = -ENOMEM;
                break;
            }
            t->types = nt;
        }
        cd_type *ty = &t->types[t->n];
        memset(ty, 0, sizeof(*ty));
        t->n++;
        rc = parse_line(p, ty);
    }
    fclose(f);
    if (rc == 0 && t->n)
        qsort(t->types, t->n, sizeof(cd_type), cmp_type);
    if (rc < 0) {
        rf_err_set(err, -rc, "collectd types_db %s:%u: %s", path, lineno,
                   rc == -ENOMEM ? "out of memory" : "not \"name ds:TYPE:min:max[, ...]\"");
        rf_collectd_types_free(t);
        return NULL;
    }
    return t;
}

const char *rf_collectd_types_ds(const rf_collectd_types *t, const char *type, size_t len,
                                 uint32_t i)
{
    if (!t)
        return NULL;
    /* Sorted by name at load: a binary search per value list. */
    uint32_t lo = 0, hi = t->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const cd_type *ty = &t->types[mid];
        int c = strncmp(ty->name, type, len);
        if (c == 0 && ty->name[len] != '\0')
            c = 1; /* longer than `type`: after it */
        if (c == 0)
            return i < ty->n_ds ? ty->ds[i] : NULL;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
