/* Loading a YAML document into the node tree (from libyaml's event stream, so
 * anchors, aliases and duplicate keys are seen before anything resolves them),
 * the known-key bookkeeping, sections, and the error format every message
 * shares. Typed values are in config_value.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "core/config/config.h"
#include "core/config/config_pvt.h"

/* Mappings are searched linearly (configuration mappings are short); the cap
 * keeps a hostile file from making duplicate detection quadratic in its size. */
#define MAX_ENTRIES 4096

/* ---- messages ----------------------------------------------------------- */

int rf_cfg_failv_at(const char *source, unsigned line, unsigned col, const char *path, rf_err *err,
                    const char *fmt, va_list ap)
{
    char problem[RF_ERR_MSG_MAX];
    vsnprintf(problem, sizeof(problem), fmt, ap);
    return rf_err_set(err, EINVAL, "%s:%u:%u: %s%s%s", source, line, col, path, path[0] ? ": " : "",
                      problem);
}

static int fail_at(const char *source, unsigned line, unsigned col, const char *path, rf_err *err,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail_at(const char *source, unsigned line, unsigned col, const char *path, rf_err *err,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = rf_cfg_failv_at(source, line, col, path, err, fmt, ap);
    va_end(ap);
    return rc;
}

int rf_cfg_fail(const rf_cfg_node *node, rf_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = rf_cfg_failv_at(node->source, node->line, node->col, node->path, err, fmt, ap);
    va_end(ap);
    return rc;
}

static char *join_key(const char *parent, const char *key)
{
    size_t lp = strlen(parent), lk = strlen(key);
    char *s = malloc(lp + lk + 2);
    if (!s)
        return NULL;
    if (lp)
        snprintf(s, lp + lk + 2, "%s.%s", parent, key);
    else
        memcpy(s, key, lk + 1);
    return s;
}

static char *join_index(const char *parent, size_t i)
{
    int n = snprintf(NULL, 0, "%s[%zu]", parent, i);
    char *s = malloc((size_t)n + 1);
    if (s)
        snprintf(s, (size_t)n + 1, "%s[%zu]", parent, i);
    return s;
}

int rf_cfg_fail_key(const rf_cfg_node *map, const char *key, rf_err *err, const char *fmt, ...)
{
    const rf_cfg_node *v = rf_cfg_get(map, key);
    va_list ap;
    va_start(ap, fmt);
    int rc;
    if (v) {
        rc = rf_cfg_failv_at(v->source, v->line, v->col, v->path, err, fmt, ap);
    } else {
        char *path = join_key(map->path, key);
        rc = rf_cfg_failv_at(map->source, map->line, map->col, path ? path : key, err, fmt, ap);
        free(path);
    }
    va_end(ap);
    return rc;
}

const char *rf_cfg_describe(const rf_cfg_node *n, char *buf, size_t size)
{
    if (n->kind == RF_CFG_MAPPING)
        return "a mapping";
    if (n->kind == RF_CFG_SEQUENCE)
        return "a list";
    if (n->null && n->u.scalar.len == 0)
        return "an empty value";
    /* Quote at most 40 bytes, never cutting a UTF-8 sequence, on one line. */
    size_t len = n->u.scalar.len, cut = len;
    if (cut > 40) {
        cut = 40;
        while (cut > 0 && ((unsigned char)n->u.scalar.text[cut] & 0xC0) == 0x80)
            cut--;
    }
    size_t o = 0;
    if (o + 1 < size)
        buf[o++] = '\'';
    for (size_t i = 0; i < cut && o + 5 < size; i++) {
        char c = n->u.scalar.text[i];
        if (c == '\n' || c == '\t' || c == '\0') {
            buf[o++] = '\\';
            buf[o++] = c == '\n' ? 'n' : c == '\t' ? 't' : '0';
        } else {
            buf[o++] = c;
        }
    }
    if (cut < len && o + 4 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    if (o + 1 < size)
        buf[o++] = '\'';
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}

/* ---- the tree ----------------------------------------------------------- */

void rf_cfg_node_free(rf_cfg_node *n)
{
    if (!n)
        return;
    switch (n->kind) {
    case RF_CFG_SCALAR: free(n->u.scalar.text); break;
    case RF_CFG_SEQUENCE:
        for (size_t i = 0; i < n->u.seq.n; i++)
            rf_cfg_node_free(n->u.seq.items[i]);
        free(n->u.seq.items);
        break;
    case RF_CFG_MAPPING:
        for (size_t i = 0; i < n->u.map.n; i++) {
            free(n->u.map.entries[i].key);
            rf_cfg_node_free(n->u.map.entries[i].value);
        }
        free(n->u.map.entries);
        for (size_t i = 0; i < n->u.map.n_asked; i++)
            free(n->u.map.asked[i]);
        free(n->u.map.asked);
        break;
    }
    free(n->path);
    free(n);
}

void rf_cfg_free(rf_cfg_doc *doc)
{
    if (!doc)
        return;
    rf_cfg_node_free(doc->root);
    for (size_t i = 0; i < doc->n_extra; i++)
        rf_cfg_node_free(doc->extra[i]);
    free(doc->extra);
    for (size_t i = 0; i < doc->n_sources; i++)
        free(doc->sources[i]);
    free(doc->sources);
    free(doc->source);
    free(doc);
}

/* Grows *arr (of `elem` bytes each) so that one more fits. */
int rf_cfg_grow(void *arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *p = realloc(*(void **)arr, ncap * elem);
    if (!p)
        return -ENOMEM;
    *(void **)arr = p;
    *cap = ncap;
    return 0;
}

/* Takes ownership of `path`. */
static rf_cfg_node *node_new(const rf_cfg_doc *doc, enum rf_cfg_kind kind, unsigned line,
                             unsigned col, char *path)
{
    if (!path)
        return NULL;
    rf_cfg_node *n = calloc(1, sizeof(*n));
    if (!n) {
        free(path);
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    n->col = col;
    n->path = path;
    n->doc = doc;
    n->source = doc->source;
    return n;
}

/* ---- loading ------------------------------------------------------------ */

struct loader {
    yaml_parser_t parser;
    rf_cfg_doc *doc;
    const char *source; /* the file being parsed: the doc's, or an included one */
    rf_cfg_node **root;
    const char *text;
    size_t len;
    rf_err *err;
    unsigned depth;
};

static int nomem(struct loader *ld)
{
    return rf_err_set(ld->err, ENOMEM, "%s: out of memory while loading", ld->doc->source);
}

static int yaml_error(struct loader *ld)
{
    const yaml_parser_t *p = &ld->parser;
    if (p->error == YAML_MEMORY_ERROR)
        return nomem(ld);
    unsigned line, col;
    if (p->error == YAML_READER_ERROR) {
        /* The reader reports a byte offset, not a mark: count lines ourselves. */
        size_t off = p->problem_offset < ld->len ? p->problem_offset : ld->len;
        line = 1;
        col = 1;
        for (size_t i = 0; i < off; i++) {
            if (ld->text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
    } else {
        line = (unsigned)p->problem_mark.line + 1;
        col = (unsigned)p->problem_mark.column + 1;
    }
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->context)
        return fail_at(ld->source, line, col, "", ld->err,
                       "invalid YAML: %s (%s that started at line %u, column %u)", problem,
                       p->context, (unsigned)p->context_mark.line + 1,
                       (unsigned)p->context_mark.column + 1);
    return fail_at(ld->source, line, col, "", ld->err, "invalid YAML: %s", problem);
}

static int next_event(struct loader *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->parser, ev))
        return yaml_error(ld);
    return 0;
}

static unsigned mark_line(const yaml_event_t *ev)
{
    return (unsigned)ev->start_mark.line + 1;
}
static unsigned mark_col(const yaml_event_t *ev)
{
    return (unsigned)ev->start_mark.column + 1;
}

static const char *event_anchor(const yaml_event_t *ev)
{
    const yaml_char_t *a = NULL;
    if (ev->type == YAML_SCALAR_EVENT)
        a = ev->data.scalar.anchor;
    else if (ev->type == YAML_SEQUENCE_START_EVENT)
        a = ev->data.sequence_start.anchor;
    else if (ev->type == YAML_MAPPING_START_EVENT)
        a = ev->data.mapping_start.anchor;
    return (const char *)a;
}

/* Anchors and aliases would make one node appear under several paths (and
 * merge keys would hide duplicates): the format stays a plain tree. */
static int reject_references(struct loader *ld, const yaml_event_t *ev, const char *path)
{
    if (ev->type == YAML_ALIAS_EVENT)
        return fail_at(ld->source, mark_line(ev), mark_col(ev), path, ld->err,
                       "aliases (*%s) are not supported; write the value out",
                       (const char *)ev->data.alias.anchor);
    const char *anchor = event_anchor(ev);
    if (anchor)
        return fail_at(ld->source, mark_line(ev), mark_col(ev), path, ld->err,
                       "anchors (&%s) are not supported; write the value out", anchor);
    return 0;
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static int build(struct loader *ld, yaml_event_t *ev, char *path, rf_cfg_node **out);

static int build_sequence(struct loader *ld, rf_cfg_node *n)
{
    for (;;) {
        yaml_event_t ev;
        int rc = next_event(ld, &ev);
        if (rc < 0)
            return rc;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (rf_cfg_grow(&n->u.seq.items, &n->u.seq.cap, n->u.seq.n, sizeof(rf_cfg_node *)) < 0) {
            yaml_event_delete(&ev);
            return nomem(ld);
        }
        /* Linked before it is built, so that rf_cfg_free releases a partial tree. */
        rf_cfg_node **slot = &n->u.seq.items[n->u.seq.n];
        *slot = NULL;
        n->u.seq.n++;
        rc = build(ld, &ev, join_index(n->path, n->u.seq.n - 1), slot);
        if (rc < 0)
            return rc;
    }
}

static int build_mapping(struct loader *ld, rf_cfg_node *n)
{
    const char *src = ld->source;
    for (;;) {
        yaml_event_t ev;
        int rc = next_event(ld, &ev);
        if (rc < 0)
            return rc;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        unsigned line = mark_line(&ev), col = mark_col(&ev);
        rc = reject_references(ld, &ev, n->path);
        if (rc == 0 && ev.type != YAML_SCALAR_EVENT)
            rc = fail_at(src, line, col, n->path, ld->err, "keys must be scalars, got %s",
                         ev.type == YAML_MAPPING_START_EVENT ? "a mapping" : "a list");
        if (rc == 0 && strlen((const char *)ev.data.scalar.value) != ev.data.scalar.length)
            rc = fail_at(src, line, col, n->path, ld->err, "a key contains a NUL byte");
        if (rc < 0) {
            yaml_event_delete(&ev);
            return rc;
        }
        const char *key = (const char *)ev.data.scalar.value;
        for (size_t i = 0; i < n->u.map.n; i++) {
            const struct rf_cfg_entry *e = &n->u.map.entries[i];
            if (strcmp(e->key, key) == 0) {
                char *kp = join_key(n->path, key);
                rc = kp ? fail_at(src, line, col, kp, ld->err,
                                  "duplicate key (first defined at line %u, column %u)", e->line,
                                  e->col)
                        : nomem(ld);
                free(kp);
                yaml_event_delete(&ev);
                return rc;
            }
        }
        if (n->u.map.n == MAX_ENTRIES) {
            yaml_event_delete(&ev);
            return fail_at(src, line, col, n->path, ld->err, "more than %d keys in one mapping",
                           MAX_ENTRIES);
        }
        char *key_copy = strdup(key);
        char *value_path = join_key(n->path, key);
        yaml_event_delete(&ev);
        if (!key_copy || !value_path ||
            rf_cfg_grow(&n->u.map.entries, &n->u.map.cap, n->u.map.n, sizeof(struct rf_cfg_entry)) <
                0) {
            free(key_copy);
            free(value_path);
            return nomem(ld);
        }
        struct rf_cfg_entry *e = &n->u.map.entries[n->u.map.n++];
        *e = (struct rf_cfg_entry){.key = key_copy, .source = src, .line = line, .col = col};
        rc = next_event(ld, &ev);
        if (rc < 0) {
            free(value_path);
            return rc;
        }
        rc = build(ld, &ev, value_path, &e->value);
        if (rc < 0)
            return rc;
    }
}

/* Builds the node that starts with *ev (consumed) at `path` (owned). */
static int build(struct loader *ld, yaml_event_t *ev, char *path, rf_cfg_node **out)
{
    int rc = path ? reject_references(ld, ev, path) : nomem(ld);
    if (rc < 0) {
        free(path);
        yaml_event_delete(ev);
        return rc;
    }
    unsigned line = mark_line(ev), col = mark_col(ev);
    enum rf_cfg_kind kind = ev->type == YAML_SCALAR_EVENT           ? RF_CFG_SCALAR
                            : ev->type == YAML_SEQUENCE_START_EVENT ? RF_CFG_SEQUENCE
                                                                    : RF_CFG_MAPPING;
    rf_cfg_node *n = node_new(ld->doc, kind, line, col, path);
    if (!n) {
        yaml_event_delete(ev);
        return nomem(ld);
    }
    n->source = ld->source;
    *out = n;
    if (kind == RF_CFG_SCALAR) {
        n->null = is_null_scalar(ev);
        n->u.scalar.len = ev->data.scalar.length;
        n->u.scalar.text = malloc(n->u.scalar.len + 1);
        if (n->u.scalar.text) {
            memcpy(n->u.scalar.text, ev->data.scalar.value, n->u.scalar.len);
            n->u.scalar.text[n->u.scalar.len] = '\0';
        }
        yaml_event_delete(ev);
        return n->u.scalar.text ? 0 : nomem(ld);
    }
    yaml_event_delete(ev);
    if (++ld->depth > RF_CFG_MAX_DEPTH)
        return fail_at(ld->source, line, col, n->path, ld->err, "nested deeper than %d levels",
                       RF_CFG_MAX_DEPTH);
    rc = kind == RF_CFG_SEQUENCE ? build_sequence(ld, n) : build_mapping(ld, n);
    ld->depth--;
    return rc;
}

static rf_cfg_node *empty_node(const rf_cfg_doc *doc, enum rf_cfg_kind kind, unsigned line,
                               unsigned col, const char *path)
{
    return node_new(doc, kind, line, col, strdup(path));
}

/* Reads the stream: at most one document, whose top level is a mapping. */
static int load_stream(struct loader *ld)
{
    const char *src = ld->source;
    yaml_event_t ev;
    int rc = next_event(ld, &ev); /* stream start */
    if (rc < 0)
        return rc;
    yaml_event_delete(&ev);
    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        *ld->root = empty_node(ld->doc, RF_CFG_MAPPING, 1, 1, "");
        if (*ld->root)
            (*ld->root)->source = src;
        return *ld->root ? 0 : nomem(ld);
    }
    yaml_event_delete(&ev); /* document start */
    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    if ((rc = build(ld, &ev, strdup(""), ld->root)) < 0)
        return rc;
    if ((rc = next_event(ld, &ev)) < 0) /* document end */
        return rc;
    yaml_event_delete(&ev);
    if ((rc = next_event(ld, &ev)) < 0)
        return rc;
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        rc = fail_at(src, mark_line(&ev), mark_col(&ev), "", ld->err,
                     "a second YAML document; a configuration is one document");
        yaml_event_delete(&ev);
        return rc;
    }
    yaml_event_delete(&ev);

    rf_cfg_node *root = *ld->root;
    if (root->kind == RF_CFG_SCALAR && root->null) {
        /* "---" alone, or a document of only a null: nothing is configured. */
        rf_cfg_node *empty = empty_node(ld->doc, RF_CFG_MAPPING, root->line, root->col, "");
        if (!empty)
            return nomem(ld);
        empty->source = src;
        rf_cfg_node_free(root);
        *ld->root = empty;
    } else if (root->kind != RF_CFG_MAPPING) {
        char buf[RF_CFG_DESCRIBE_MAX];
        return fail_at(src, root->line, root->col, "", ld->err,
                       "the top level must be a mapping of sections, got %s",
                       rf_cfg_describe(root, buf, sizeof(buf)));
    }
    return 0;
}

int rf_cfg_parse_tree(rf_cfg_doc *doc, const char *text, size_t len, const char *source,
                      rf_cfg_node **root, rf_err *err)
{
    struct loader ld = {
        .doc = doc, .source = source, .root = root, .text = text, .len = len, .err = err};
    if (!yaml_parser_initialize(&ld.parser))
        return rf_err_set(err, ENOMEM, "%s: out of memory while loading", source);
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
    int rc = load_stream(&ld);
    yaml_parser_delete(&ld.parser);
    return rc;
}

int rf_cfg_load_string(const char *text, size_t len, const char *source, rf_cfg_doc **out,
                       rf_err *err)
{
    rf_cfg_doc *doc = calloc(1, sizeof(*doc));
    if (doc)
        doc->source = strdup(source);
    if (!doc || !doc->source) {
        free(doc);
        return rf_err_set(err, ENOMEM, "%s: out of memory while loading", source);
    }
    int rc = rf_cfg_parse_tree(doc, text, len, doc->source, &doc->root, err);
    if (rc == 0)
        rc = rf_cfg_expand(doc, doc->root, 0, err);
    if (rc < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    doc->root->opened = true; /* every key at the top level must be claimed */
    *out = doc;
    return 0;
}

int rf_cfg_read_file(const char *path, char **text, size_t *text_len, rf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rf_err_set(err, errno, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return rf_err_set(err, e, "cannot read %s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return rf_err_set(err, EISDIR, "cannot read %s: %s", path, strerror(EISDIR));
    }
    /* Read up to one byte past the limit: the size of a pipe is not known. */
    size_t cap = RF_CFG_MAX_FILE_BYTES + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return rf_err_set(err, ENOMEM, "%s: out of memory while loading", path);
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(buf);
            return rf_err_set(err, e, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            close(fd);
            free(buf);
            return rf_err_set(err, EFBIG, "%s: larger than %u MiB; not a configuration file?", path,
                              RF_CFG_MAX_FILE_BYTES >> 20);
        }
    }
    close(fd);
    *text = buf;
    *text_len = len;
    return 0;
}

int rf_cfg_load_file(const char *path, rf_cfg_doc **out, rf_err *err)
{
    char *buf;
    size_t len;
    int rc = rf_cfg_read_file(path, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = rf_cfg_load_string(buf, len, path, out, err);
    free(buf);
    return rc;
}

const rf_cfg_node *rf_cfg_root(const rf_cfg_doc *doc)
{
    return doc->root;
}
const char *rf_cfg_source(const rf_cfg_doc *doc)
{
    return doc->source;
}

/* ---- nodes and keys ----------------------------------------------------- */

enum rf_cfg_kind rf_cfg_kind(const rf_cfg_node *n)
{
    return n->kind;
}
const char *rf_cfg_path(const rf_cfg_node *n)
{
    return n->path;
}
unsigned rf_cfg_line(const rf_cfg_node *n)
{
    return n->line;
}
unsigned rf_cfg_column(const rf_cfg_node *n)
{
    return n->col;
}
const char *rf_cfg_scalar(const rf_cfg_node *n)
{
    return n->kind == RF_CFG_SCALAR ? n->u.scalar.text : NULL;
}

static void record_asked(rf_cfg_node *m, const char *key)
{
    for (size_t i = 0; i < m->u.map.n_asked; i++)
        if (strcmp(m->u.map.asked[i], key) == 0)
            return;
    /* Out of memory here only shortens the "accepted" list of a later message. */
    char *copy = strdup(key);
    if (!copy ||
        rf_cfg_grow(&m->u.map.asked, &m->u.map.cap_asked, m->u.map.n_asked, sizeof(char *)) < 0) {
        free(copy);
        return;
    }
    m->u.map.asked[m->u.map.n_asked++] = copy;
}

/* Marks `key` asked for in a mapping and returns its value (NULL if absent,
 * or if `map` is not a mapping). */
static const rf_cfg_node *claim(const rf_cfg_node *map, const char *key)
{
    if (map->kind != RF_CFG_MAPPING)
        return NULL;
    rf_cfg_node *m = rf_cfg_mut(map);
    m->opened = true;
    record_asked(m, key);
    for (size_t i = 0; i < m->u.map.n; i++) {
        if (strcmp(m->u.map.entries[i].key, key) == 0) {
            m->u.map.entries[i].known = true;
            return m->u.map.entries[i].value;
        }
    }
    return NULL;
}

int rf_cfg_find(const rf_cfg_node *map, const char *key, const rf_cfg_node **value, rf_err *err)
{
    if (map->kind != RF_CFG_MAPPING && !(map->kind == RF_CFG_SCALAR && map->null)) {
        char buf[RF_CFG_DESCRIBE_MAX];
        return rf_cfg_fail(map, err, "expected a mapping, got %s",
                           rf_cfg_describe(map, buf, sizeof(buf)));
    }
    *value = claim(map, key);
    return 0;
}

void rf_cfg_mark_known(const rf_cfg_node *map, const char *key)
{
    (void)claim(map, key);
}
bool rf_cfg_has(const rf_cfg_node *map, const char *key)
{
    return claim(map, key) != NULL;
}
const rf_cfg_node *rf_cfg_get(const rf_cfg_node *map, const char *key)
{
    return claim(map, key);
}

int rf_cfg_require(const rf_cfg_node *map, const char *key, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = rf_cfg_find(map, key, &v, err);
    if (rc < 0)
        return rc;
    return v ? 0 : rf_cfg_fail_key(map, key, err, "missing required key");
}

size_t rf_cfg_map_len(const rf_cfg_node *map)
{
    if (map->kind != RF_CFG_MAPPING)
        return 0;
    rf_cfg_mut(map)->opened = true;
    return map->u.map.n;
}

const char *rf_cfg_map_key(const rf_cfg_node *map, size_t i)
{
    if (map->kind != RF_CFG_MAPPING || i >= map->u.map.n)
        return NULL;
    rf_cfg_mut(map)->u.map.entries[i].known = true;
    return map->u.map.entries[i].key;
}

const rf_cfg_node *rf_cfg_map_value(const rf_cfg_node *map, size_t i)
{
    return rf_cfg_map_key(map, i) ? map->u.map.entries[i].value : NULL;
}

/* ---- sections ----------------------------------------------------------- */

/* An empty section standing for an absent or null key; owned by the doc. */
static int empty_section(const rf_cfg_node *map, const char *key, const rf_cfg_node *null_value,
                         enum rf_cfg_kind kind, const rf_cfg_node **out, rf_err *err)
{
    rf_cfg_doc *doc = (rf_cfg_doc *)map->doc;
    const rf_cfg_node *at = null_value ? null_value : map;
    rf_cfg_node *n = node_new(doc, kind, at->line, at->col, join_key(map->path, key));
    if (n)
        n->source = at->source;
    if (!n || rf_cfg_grow(&doc->extra, &doc->cap_extra, doc->n_extra, sizeof(rf_cfg_node *)) < 0) {
        rf_cfg_node_free(n);
        return rf_err_set(err, ENOMEM, "%s: out of memory", doc->source);
    }
    doc->extra[doc->n_extra++] = n;
    n->opened = true;
    *out = n;
    return 0;
}

int rf_cfg_map(const rf_cfg_node *map, const char *key, const rf_cfg_node **out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = rf_cfg_find(map, key, &v, err);
    if (rc < 0)
        return rc;
    if (!v || (v->kind == RF_CFG_SCALAR && v->null))
        return empty_section(map, key, v, RF_CFG_MAPPING, out, err);
    if (v->kind != RF_CFG_MAPPING) {
        char buf[RF_CFG_DESCRIBE_MAX];
        return rf_cfg_fail(v, err, "expected a mapping, got %s",
                           rf_cfg_describe(v, buf, sizeof(buf)));
    }
    rf_cfg_mut(v)->opened = true;
    *out = v;
    return 0;
}

static const char *items(size_t n)
{
    return n == 1 ? "item" : "items";
}

int rf_cfg_seq(const rf_cfg_node *map, const char *key, size_t min_len, size_t max_len,
               const rf_cfg_node **out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = rf_cfg_find(map, key, &v, err);
    if (rc < 0)
        return rc;
    if (!v && min_len > 0)
        return rf_cfg_fail_key(map, key, err, "missing required key");
    const rf_cfg_node *seq = v;
    if (!v || (v->kind == RF_CFG_SCALAR && v->null)) {
        if ((rc = empty_section(map, key, v, RF_CFG_SEQUENCE, &seq, err)) < 0)
            return rc;
    } else if (v->kind != RF_CFG_SEQUENCE) {
        char buf[RF_CFG_DESCRIBE_MAX];
        return rf_cfg_fail(v, err, "expected a list, got %s", rf_cfg_describe(v, buf, sizeof(buf)));
    }
    size_t n = seq->u.seq.n;
    if (n < min_len || n > max_len) {
        if (min_len == max_len)
            return rf_cfg_fail(seq, err, "expected a list of exactly %zu %s, got %zu", min_len,
                               items(min_len), n);
        if (max_len == SIZE_MAX)
            return rf_cfg_fail(seq, err, "expected a list of at least %zu %s, got %zu", min_len,
                               items(min_len), n);
        if (min_len == 0)
            return rf_cfg_fail(seq, err, "expected a list of at most %zu %s, got %zu", max_len,
                               items(max_len), n);
        return rf_cfg_fail(seq, err, "expected a list of %zu to %zu items, got %zu", min_len,
                           max_len, n);
    }
    *out = seq;
    return 0;
}

size_t rf_cfg_seq_len(const rf_cfg_node *seq)
{
    return seq->kind == RF_CFG_SEQUENCE ? seq->u.seq.n : 0;
}

const rf_cfg_node *rf_cfg_seq_at(const rf_cfg_node *seq, size_t i)
{
    if (seq->kind != RF_CFG_SEQUENCE || i >= seq->u.seq.n)
        return NULL;
    rf_cfg_node *item = seq->u.seq.items[i];
    item->opened = true; /* the reader owns this item: its unknown keys are errors */
    return item;
}

/* ---- unknown keys ------------------------------------------------------- */

static int report_unknown(const rf_cfg_node *m, const struct rf_cfg_entry *e, rf_err *err)
{
    char accepted[RF_ERR_MSG_MAX / 2];
    size_t o = 0;
    accepted[0] = '\0';
    for (size_t i = 0; i < m->u.map.n_asked && o < sizeof(accepted); i++) {
        int w =
            snprintf(accepted + o, sizeof(accepted) - o, "%s%s", i ? ", " : "", m->u.map.asked[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    char *path = join_key(m->path, e->key);
    int rc;
    if (m->u.map.n_asked)
        rc = fail_at(e->source, e->line, e->col, path ? path : e->key, err,
                     "unknown key (accepted: %s)", accepted);
    else
        rc = fail_at(e->source, e->line, e->col, path ? path : e->key, err,
                     "unknown key (no keys are accepted here)");
    free(path);
    return rc;
}

static int check_node(const rf_cfg_node *n, rf_err *err)
{
    if (n->kind == RF_CFG_SEQUENCE) {
        for (size_t i = 0; i < n->u.seq.n; i++) {
            int rc = check_node(n->u.seq.items[i], err);
            if (rc < 0)
                return rc;
        }
    } else if (n->kind == RF_CFG_MAPPING && n->opened) {
        for (size_t i = 0; i < n->u.map.n; i++) {
            const struct rf_cfg_entry *e = &n->u.map.entries[i];
            if (!e->known)
                return report_unknown(n, e, err);
            int rc = check_node(e->value, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int rf_cfg_check_unknown_keys(const rf_cfg_doc *doc, rf_err *err)
{
    return check_node(doc->root, err);
}
