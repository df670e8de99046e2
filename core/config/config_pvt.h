/* Private to core/config: the node tree shared by the loader (config.c) and
 * the typed accessors (config_value.c). Do not include from other modules. */
#ifndef RF_CORE_CONFIG_PVT_H
#define RF_CORE_CONFIG_PVT_H

#include <stdarg.h>

#include "core/config/config.h"

/* Room for rf_cfg_describe's longest answer (40 quoted bytes, escaped). */
#define RF_CFG_DESCRIBE_MAX 128

struct rf_cfg_entry {
    char *key;
    const char *source; /* the file the key was written in (owned by the doc) */
    unsigned line, col; /* of the key: unknown and duplicate keys point here */
    bool known;         /* some accessor asked for it */
    rf_cfg_node *value;
};

struct rf_cfg_node {
    enum rf_cfg_kind kind;
    /* The file the node was written in: the document's own, or one it
     * includes (owned by the doc, see rf_cfg_doc.sources). */
    const char *source;
    unsigned line, col;
    bool null;   /* plain "", "~" or "null": reads as an empty section */
    bool opened; /* a module read this mapping: check_unknown_keys looks inside */
    char *path;
    const rf_cfg_doc *doc;
    union {
        struct {
            char *text;
            size_t len; /* may differ from strlen(text) when it holds "\0" */
        } scalar;
        struct {
            rf_cfg_node **items;
            size_t n, cap;
        } seq;
        struct {
            struct rf_cfg_entry *entries;
            size_t n, cap;
            char **asked; /* every key asked for, present or not, in asking order */
            size_t n_asked, cap_asked;
        } map;
    } u;
};

struct rf_cfg_doc {
    char *source;
    rf_cfg_node *root;
    /* The names of the files it includes, for their nodes' messages. */
    char **sources;
    size_t n_sources, cap_sources;
    /* Empty sections handed out for absent keys; freed with the document. */
    rf_cfg_node **extra;
    size_t n_extra, cap_extra;
};

/* Accessors update bookkeeping through const pointers (see config.h). */
static inline rf_cfg_node *rf_cfg_mut(const rf_cfg_node *n)
{
    return (rf_cfg_node *)n;
}

/* *value = the value of `key` (NULL when absent), recording the key as asked
 * for. Fails unless `map` is a mapping (or a null, which reads as empty). */
int rf_cfg_find(const rf_cfg_node *map, const char *key, const rf_cfg_node **value, rf_err *err);

/* "a mapping", "a list", "an empty value" or the scalar quoted ('abc'),
 * shortened to 40 bytes: what a message says the user wrote. */
const char *rf_cfg_describe(const rf_cfg_node *node, char *buf, size_t size);

/* Parses one YAML text into a tree of doc's nodes (each naming `source`,
 * which must live as long as doc) without touching doc->root: the loader of
 * the top file and of each file it includes. */
int rf_cfg_parse_tree(rf_cfg_doc *doc, const char *text, size_t len, const char *source,
                      rf_cfg_node **root, rf_err *err);
/* Reads a whole file (at most RF_CFG_MAX_FILE_BYTES) into a malloc'd buffer. */
int rf_cfg_read_file(const char *path, char **text, size_t *len, rf_err *err);
/* config_include.c: substitutes ${VAR} in every scalar of the tree, then
 * merges the files its top-level `include:` names over it (recursively). */
int rf_cfg_expand(rf_cfg_doc *doc, rf_cfg_node *root, unsigned depth, rf_err *err);
void rf_cfg_node_free(rf_cfg_node *n);
int rf_cfg_grow(void *arr, size_t *cap, size_t n, size_t elem);

/* The one place the "FILE:LINE:COL: PATH: problem" format is written. */
int rf_cfg_failv_at(const char *source, unsigned line, unsigned col, const char *path, rf_err *err,
                    const char *fmt, va_list ap);

#endif
