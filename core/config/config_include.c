/* What a file says beyond its own YAML: ${VAR} substitution in its values and
 * the files its `include:` names, merged over it (config.h, "Includes and
 * environment").
 *
 * Both happen while the document loads, before any module reads it, so every
 * accessor sees plain values and one tree; each node keeps the file, line and
 * column it was written at, so a message about an included value names the
 * included file. */
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config/config.h"
#include "core/config/config_pvt.h"

/* ---- ${VAR} ------------------------------------------------------------- */

static int fail_node(const rf_cfg_node *n, rf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_node(const rf_cfg_node *n, rf_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = rf_cfg_failv_at(n->source, n->line, n->col, n->path, err, fmt, ap);
    va_end(ap);
    return rc;
}

static bool name_char(char c, bool first)
{
    return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (!first && c >= '0' && c <= '9');
}

struct buf {
    char *p;
    size_t len, cap;
};

static int put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* Rewrites one scalar. Only "${" starts a reference, so a value with a lone
 * '$' (a regex, a password) is left as written; "$${" writes "${". */
static int substitute(rf_cfg_node *n, rf_err *err)
{
    const char *t = n->u.scalar.text;
    if (!strstr(t, "${"))
        return 0;
    struct buf out = {0};
    int rc = 0;
    const char *p = t;
    while (*p && rc == 0) {
        const char *d = strstr(p, "${");
        if (!d) {
            rc = put(&out, p, strlen(p));
            break;
        }
        if (d > p && d[-1] == '$') {
            /* "$${": everything up to the first '$', then a literal "${". */
            rc = put(&out, p, (size_t)(d - 1 - p));
            if (rc == 0)
                rc = put(&out, "${", 2);
            p = d + 2;
            continue;
        }
        if ((rc = put(&out, p, (size_t)(d - p))) < 0)
            break;
        const char *name = d + 2, *q = name;
        while (name_char(*q, q == name))
            q++;
        size_t name_len = (size_t)(q - name);
        const char *def = NULL, *end = NULL;
        if (name_len && q[0] == ':' && q[1] == '-') {
            def = q + 2;
            end = strchr(def, '}');
        } else if (name_len && q[0] == '}') {
            end = q;
        }
        if (!end) {
            rc = fail_node(n, err,
                           "'${' must start ${NAME} or ${NAME:-default} (NAME: letters, "
                           "digits and '_'); write $${ for a literal ${");
            break;
        }
        char var[256];
        if (name_len >= sizeof(var)) {
            rc = fail_node(n, err, "environment variable name longer than %zu bytes",
                           sizeof(var) - 1);
            break;
        }
        memcpy(var, name, name_len);
        var[name_len] = '\0';
        const char *val = getenv(var);
        /* As in the shell: ':-' takes the default when unset or empty. */
        if (def && (!val || !*val))
            rc = put(&out, def, (size_t)(end - def));
        else if (val)
            rc = put(&out, val, strlen(val));
        else
            rc = fail_node(n, err,
                           "${%s}: the environment variable %s is not set (give a "
                           "default with ${%s:-VALUE})",
                           var, var, var);
        p = end + 1;
    }
    if (rc == -ENOMEM)
        rc = rf_err_set(err, ENOMEM, "%s: out of memory while loading", n->source);
    if (rc < 0) {
        free(out.p);
        return rc;
    }
    if (!out.p && (rc = put(&out, "", 0)) < 0)
        return rf_err_set(err, ENOMEM, "%s: out of memory while loading", n->source);
    free(n->u.scalar.text);
    n->u.scalar.text = out.p;
    n->u.scalar.len = out.len;
    return 0;
}

static int substitute_tree(rf_cfg_node *n, rf_err *err)
{
    int rc = 0;
    switch (n->kind) {
    case RF_CFG_SCALAR: return substitute(n, err);
    case RF_CFG_SEQUENCE:
        for (size_t i = 0; i < n->u.seq.n && rc == 0; i++)
            rc = substitute_tree(n->u.seq.items[i], err);
        return rc;
    case RF_CFG_MAPPING:
        for (size_t i = 0; i < n->u.map.n && rc == 0; i++)
            rc = substitute_tree(n->u.map.entries[i].value, err);
        return rc;
    }
    return 0;
}

/* ---- merging ------------------------------------------------------------ */

static struct rf_cfg_entry *find_entry(rf_cfg_node *map, const char *key)
{
    for (size_t i = 0; i < map->u.map.n; i++)
        if (strcmp(map->u.map.entries[i].key, key) == 0)
            return &map->u.map.entries[i];
    return NULL;
}

static bool is_map(const rf_cfg_node *n)
{
    return n->kind == RF_CFG_MAPPING;
}

/* Moves src's entries into dst: mappings merge key by key, anything else
 * (scalars, lists, a mapping against a scalar) is replaced whole by src's.
 * src is left with no entries (its shell is the caller's to free). */
static int merge(rf_cfg_node *dst, rf_cfg_node *src, rf_err *err)
{
    for (size_t i = 0; i < src->u.map.n; i++) {
        struct rf_cfg_entry *se = &src->u.map.entries[i];
        struct rf_cfg_entry *de = find_entry(dst, se->key);
        if (de && is_map(de->value) && is_map(se->value)) {
            int rc = merge(de->value, se->value, err);
            if (rc < 0)
                return rc;
            continue; /* se->value, emptied, is freed with src */
        }
        if (de) {
            /* The override is where the value now comes from: messages
             * about it name the included file. */
            rf_cfg_node_free(de->value);
            free(de->key);
        } else {
            if (rf_cfg_grow(&dst->u.map.entries, &dst->u.map.cap, dst->u.map.n,
                            sizeof(struct rf_cfg_entry)) < 0)
                return rf_err_set(err, ENOMEM, "%s: out of memory while merging", se->source);
            de = &dst->u.map.entries[dst->u.map.n++];
        }
        *de = *se;
        *se = (struct rf_cfg_entry){0};
    }
    return 0;
}

/* ---- include ------------------------------------------------------------ */

/* Nested includes deeper than this are taken for a file including itself. */
#define MAX_INCLUDE_DEPTH 8

static const char *intern_source(rf_cfg_doc *doc, const char *path)
{
    for (size_t i = 0; i < doc->n_sources; i++)
        if (strcmp(doc->sources[i], path) == 0)
            return doc->sources[i];
    char *copy = strdup(path);
    if (!copy ||
        rf_cfg_grow(&doc->sources, &doc->cap_sources, doc->n_sources, sizeof(char *)) < 0) {
        free(copy);
        return NULL;
    }
    doc->sources[doc->n_sources++] = copy;
    return copy;
}

static int include_one(rf_cfg_doc *doc, rf_cfg_node *root, const rf_cfg_node *at, const char *path,
                       unsigned depth, rf_err *err)
{
    if (depth >= MAX_INCLUDE_DEPTH)
        return fail_node(at, err,
                         "%s: includes nested deeper than %d files (does a file include "
                         "itself?)",
                         path, MAX_INCLUDE_DEPTH);
    const char *source = intern_source(doc, path);
    if (!source)
        return rf_err_set(err, ENOMEM, "%s: out of memory while loading", path);
    char *text;
    size_t len;
    rf_err sub = {0};
    int rc = rf_cfg_read_file(path, &text, &len, &sub);
    if (rc < 0)
        return rf_cfg_fail(at, err, "%s", sub.msg);
    rf_cfg_node *tree = NULL;
    rc = rf_cfg_parse_tree(doc, text, len, source, &tree, err);
    free(text);
    if (rc == 0)
        rc = rf_cfg_expand(doc, tree, depth + 1, err);
    if (rc == 0)
        rc = merge(root, tree, err);
    rf_cfg_node_free(tree);
    return rc;
}

static bool has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* A directory of the pattern that does not exist matches nothing, like an
 * empty one; one that cannot be read is an error (its files would be missed). */
static int glob_error(const char *path, int e)
{
    (void)path;
    return e == ENOENT || e == ENOTDIR ? 0 : 1;
}

/* One item of `include:`: a path or a glob, relative to the directory of the
 * file that names it. A glob that matches nothing (an empty conf.d/) is no
 * error; a plain path that does not exist is. Matches go in name order. */
static int include_pattern(rf_cfg_doc *doc, rf_cfg_node *root, const rf_cfg_node *item,
                           unsigned depth, rf_err *err)
{
    if (item->kind != RF_CFG_SCALAR || item->u.scalar.len == 0) {
        char buf[RF_CFG_DESCRIBE_MAX];
        return fail_node(item, err, "expected a file name or a glob, got %s",
                         rf_cfg_describe(item, buf, sizeof(buf)));
    }
    const char *pat = item->u.scalar.text;
    char full[4096];
    const char *slash = strrchr(item->source, '/');
    int n = pat[0] == '/' || !slash ? snprintf(full, sizeof(full), "%s", pat)
                                    : snprintf(full, sizeof(full), "%.*s/%s",
                                               (int)(slash - item->source), item->source, pat);
    if (n < 0 || (size_t)n >= sizeof(full))
        return fail_node(item, err, "path too long");
    if (!has_glob(pat))
        return include_one(doc, root, item, full, depth, err);
    glob_t g;
    int grc = glob(full, 0, glob_error, &g);
    if (grc == GLOB_NOMATCH)
        return 0;
    if (grc != 0) {
        globfree(&g);
        return fail_node(item, err, "%s: cannot list the files it matches%s", full,
                         grc == GLOB_ABORTED ? " (a directory cannot be read)" : "");
    }
    int rc = 0;
    for (size_t i = 0; i < g.gl_pathc && rc == 0; i++)
        rc = include_one(doc, root, item, g.gl_pathv[i], depth, err);
    globfree(&g);
    return rc;
}

int rf_cfg_expand(rf_cfg_doc *doc, rf_cfg_node *root, unsigned depth, rf_err *err)
{
    int rc = substitute_tree(root, err);
    if (rc < 0 || root->kind != RF_CFG_MAPPING)
        return rc;
    struct rf_cfg_entry *e = find_entry(root, "include");
    if (!e)
        return 0;
    /* Taken out of the tree first: it is the loader's key, not a section,
     * and the merged result (--print-config) has no use for it. */
    rf_cfg_node *inc = e->value;
    free(e->key);
    size_t at = (size_t)(e - root->u.map.entries);
    memmove(e, e + 1, (root->u.map.n - at - 1) * sizeof(*e));
    root->u.map.n--;
    if (inc->kind == RF_CFG_SEQUENCE) {
        for (size_t i = 0; i < inc->u.seq.n && rc == 0; i++)
            rc = include_pattern(doc, root, inc->u.seq.items[i], depth, err);
    } else if (!(inc->kind == RF_CFG_SCALAR && inc->null)) {
        rc = include_pattern(doc, root, inc, depth, err);
    }
    rf_cfg_node_free(inc);
    return rc;
}
