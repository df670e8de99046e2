/* Configuration: a YAML document loaded into a tree of nodes that remember
 * where they came from, and typed accessors that validate while they read.
 *
 * Contract
 *   - A document is loaded whole and rejected whole unless it is one YAML
 *     document made of mappings, sequences and scalars: syntax errors,
 *     duplicate keys, anchors and aliases, several documents, keys that are not
 *     scalars and a top level that is not a mapping are errors. An empty
 *     document (or one holding only comments) is an empty mapping.
 *   - Every module reads its own section of the same document: it takes a
 *     sub-node with rf_cfg_map / rf_cfg_seq and runs accessors on it. An absent
 *     (or empty, `key:`) section reads as an empty mapping or list, so every
 *     accessor on it returns its default. An empty scalar value (`workers:`)
 *     is not a default but an error: the user meant to write something. Nodes
 *     stay valid, and can be read again, until rf_cfg_free.
 *   - Every accessor marks its key as known in that mapping, whether the key is
 *     present or not. Once every module has parsed, rf_cfg_check_unknown_keys
 *     reports the first key, in document order, that nobody asked for, with the
 *     keys that mapping accepts. A key declared with rf_cfg_mark_known is
 *     accepted without looking inside it (its owner has not parsed it).
 *   - Errors return -EINVAL (loading: the -errno of the failed call, e.g.
 *     -ENOENT, -EACCES, -EISDIR; -EFBIG past RF_CFG_MAX_FILE_BYTES; -ENOMEM)
 *     and fill the rf_err; every problem with the content reads
 *         FILE:LINE:COL: PATH: problem
 *     e.g. "ringflow.yaml:7:12: engine.workers: expected an integer from 1 to
 *     64, got '0'". LINE and COL are 1-based and point at the offending value;
 *     at the key for unknown and duplicate keys; at the enclosing mapping for a
 *     missing required key. PATH joins keys with '.' and list indices as [i]
 *     ("listeners[2].port"); it is left out for problems of the whole document.
 *   - On error an accessor leaves *out unchanged.
 *   - The known-key bookkeeping is written by accessors even through const
 *     pointers: a document belongs to one thread at a time (the control
 *     thread). Nothing here is for the hot path.
 *
 * Typical use (the daemon):
 *     rf_cfg_doc *doc;
 *     if (rf_cfg_load_file(path, &doc, &err) < 0) ...
 *     const rf_cfg_node *root = rf_cfg_root(doc), *engine;
 *     rf_cfg_map(root, "engine", &engine, &err);
 *     rf_cfg_u32(engine, "workers", 1, 64, 2, &cfg.workers, &err);
 *     ...every module parses its section...
 *     rf_cfg_check_unknown_keys(doc, &err);     (last)
 *     rf_cfg_free(doc);
 *
 * Includes and environment (while loading, before any module reads)
 *   - ${NAME} in a value is replaced by the environment variable NAME; an
 *     unset one is an error at the value. ${NAME:-default} takes `default`
 *     when NAME is unset or empty. Only "${" starts a reference (a lone '$'
 *     stays); "$${" writes a literal "${". Keys are not substituted. Inside
 *     a flow mapping ({a: b}) the braces are YAML's: quote the value there
 *     ({port: "${PORT}"}).
 *   - A top-level `include:` names a file or a glob, or a list of them,
 *     relative to the directory of the file that names it (conf.d/NAME.yaml for every NAME: a glob).
 *     Each file is loaded as a document of its own (with its own ${...} and
 *     include:, at most 8 files deep) and merged over the including one, in
 *     list order and, for a glob, in name order: mappings merge key by key,
 *     and any other value (a scalar, a list) replaces the one before it. So a
 *     file in conf.d/ overrides the main file, and a later one an earlier one.
 *     A glob matching nothing includes nothing; a missing plain path is an
 *     error at the include item.
 *   - Every node keeps the file it was written in: messages about an
 *     included value (and unknown keys in it) name that file, line and column.
 *   - The `include` key itself is consumed by the loader: modules never see
 *     it, and rf_cfg_write leaves it out.
 *
 * Units
 *   durations: an integer or decimal with ns, us, ms, s, m, h or d ("250us",
 *   "1.5s", "90d"); a plain number is seconds. Values are nanoseconds.
 *   sizes: an integer with B, KiB, MiB, GiB or TiB ("64KiB"); a plain number is
 *   bytes. Decimal units (KB, MB) are rejected: they are ambiguous.
 */
#ifndef RF_CORE_CONFIG_H
#define RF_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error/error.h"

typedef struct rf_cfg_doc rf_cfg_doc;
typedef struct rf_cfg_node rf_cfg_node;

enum rf_cfg_kind {
    RF_CFG_SCALAR,
    RF_CFG_SEQUENCE,
    RF_CFG_MAPPING
};

/* Limits that keep a hostile or mistaken file from exhausting the control
 * thread: configuration files are small. */
#define RF_CFG_MAX_FILE_BYTES (4u << 20)
#define RF_CFG_MAX_DEPTH 64

/* ---- documents ---------------------------------------------------------- */

/* Loads `path`; messages name the file as `path`. */
int rf_cfg_load_file(const char *path, rf_cfg_doc **out, rf_err *err);
/* Loads `len` bytes of `text`; messages name it `source` (e.g. "<default>"). */
int rf_cfg_load_string(const char *text, size_t len, const char *source, rf_cfg_doc **out,
                       rf_err *err);
void rf_cfg_free(rf_cfg_doc *doc);

/* Writes the document (merged, substituted) as one YAML document, comments
 * and `include:` gone; loading the output gives the same tree. */
int rf_cfg_write(const rf_cfg_doc *doc, FILE *out, rf_err *err);

/* The top-level mapping (never NULL). */
const rf_cfg_node *rf_cfg_root(const rf_cfg_doc *doc);
const char *rf_cfg_source(const rf_cfg_doc *doc);

/* Reports the first key, in document order, of a mapping some module read
 * that no accessor asked for:
 *   "FILE:3:3: engine.workerz: unknown key (accepted: workers, pin_workers, ...)"
 * Mappings nobody opened (under a key declared with rf_cfg_mark_known) are not
 * looked into. Call it after every module has parsed. */
int rf_cfg_check_unknown_keys(const rf_cfg_doc *doc, rf_err *err);

/* ---- nodes -------------------------------------------------------------- */

enum rf_cfg_kind rf_cfg_kind(const rf_cfg_node *node);
/* "engine.ring.capacity", "listeners[2]"; "" for the root. */
const char *rf_cfg_path(const rf_cfg_node *node);
unsigned rf_cfg_line(const rf_cfg_node *node);
unsigned rf_cfg_column(const rf_cfg_node *node);
/* The scalar's text, NULL for mappings and sequences. */
const char *rf_cfg_scalar(const rf_cfg_node *node);

/* Formats "FILE:LINE:COL: PATH: <fmt...>" at `node` into err; returns -EINVAL.
 * For checks the typed accessors cannot make (cross-field rules). */
int rf_cfg_fail(const rf_cfg_node *node, rf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for `key` of `map`: at its value when present, else at the mapping
 * (PATH is then the missing key's path). */
int rf_cfg_fail_key(const rf_cfg_node *map, const char *key, rf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- keys of a mapping -------------------------------------------------- */

/* Marks `key` known without reading it: its subtree belongs to a parser that
 * has not run (e.g. a module not built in). */
void rf_cfg_mark_known(const rf_cfg_node *map, const char *key);
/* Whether `key` is present (marks it known). */
bool rf_cfg_has(const rf_cfg_node *map, const char *key);
/* The raw value of `key`, or NULL when absent (marks it known). */
const rf_cfg_node *rf_cfg_get(const rf_cfg_node *map, const char *key);
/* Fails with "PATH.key: missing required key" (at the mapping) when absent. */
int rf_cfg_require(const rf_cfg_node *map, const char *key, rf_err *err);

/* Iterating a mapping whose keys are names the user chooses (e.g. a mapping
 * of stage names to settings). Reading entry i marks its key known. */
size_t rf_cfg_map_len(const rf_cfg_node *map);
const char *rf_cfg_map_key(const rf_cfg_node *map, size_t i);
const rf_cfg_node *rf_cfg_map_value(const rf_cfg_node *map, size_t i);

/* ---- sections ----------------------------------------------------------- */

/* *out = the mapping under `key`; an empty mapping when absent or empty. */
int rf_cfg_map(const rf_cfg_node *map, const char *key, const rf_cfg_node **out, rf_err *err);
/* *out = the list under `key` with min_len..max_len items; an empty list when
 * absent or empty (then min_len applies too: use 0 for optional lists). */
int rf_cfg_seq(const rf_cfg_node *map, const char *key, size_t min_len, size_t max_len,
               const rf_cfg_node **out, rf_err *err);
size_t rf_cfg_seq_len(const rf_cfg_node *seq);
/* Item i (i < rf_cfg_seq_len), path "PATH[i]". Run accessors on it directly. */
const rf_cfg_node *rf_cfg_seq_at(const rf_cfg_node *seq, size_t i);

/* ---- typed values of a node (list items, rf_cfg_get results) ------------ */

int rf_cfg_node_u64(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out,
                    rf_err *err);
int rf_cfg_node_u32(const rf_cfg_node *node, uint32_t min, uint32_t max, uint32_t *out,
                    rf_err *err);
int rf_cfg_node_i64(const rf_cfg_node *node, int64_t min, int64_t max, int64_t *out, rf_err *err);
/* Power of two within min..max. */
int rf_cfg_node_u64_pow2(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out,
                         rf_err *err);
/* Finite number within min..max. */
int rf_cfg_node_double(const rf_cfg_node *node, double min, double max, double *out, rf_err *err);
/* true/false, yes/no, on/off (any case). */
int rf_cfg_node_bool(const rf_cfg_node *node, bool *out, rf_err *err);
/* Copies a string of min_len..out_size-1 bytes into out. */
int rf_cfg_node_str(const rf_cfg_node *node, size_t min_len, char *out, size_t out_size,
                    rf_err *err);
/* *out = index into names[0..n_names) of the scalar. */
int rf_cfg_node_enum(const rf_cfg_node *node, const char *const *names, size_t n_names, int *out,
                     rf_err *err);
int rf_cfg_node_duration(const rf_cfg_node *node, uint64_t min_ns, uint64_t max_ns,
                         uint64_t *out_ns, rf_err *err);
int rf_cfg_node_size(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out,
                     rf_err *err);

/* ---- typed values of a mapping's key: `def` when absent ----------------- */

int rf_cfg_u64(const rf_cfg_node *map, const char *key, uint64_t min, uint64_t max, uint64_t def,
               uint64_t *out, rf_err *err);
int rf_cfg_u32(const rf_cfg_node *map, const char *key, uint32_t min, uint32_t max, uint32_t def,
               uint32_t *out, rf_err *err);
int rf_cfg_i64(const rf_cfg_node *map, const char *key, int64_t min, int64_t max, int64_t def,
               int64_t *out, rf_err *err);
int rf_cfg_u64_pow2(const rf_cfg_node *map, const char *key, uint64_t min, uint64_t max,
                    uint64_t def, uint64_t *out, rf_err *err);
int rf_cfg_double(const rf_cfg_node *map, const char *key, double min, double max, double def,
                  double *out, rf_err *err);
int rf_cfg_bool(const rf_cfg_node *map, const char *key, bool def, bool *out, rf_err *err);
int rf_cfg_str(const rf_cfg_node *map, const char *key, size_t min_len, const char *def, char *out,
               size_t out_size, rf_err *err);
int rf_cfg_enum(const rf_cfg_node *map, const char *key, const char *const *names, size_t n_names,
                int def, int *out, rf_err *err);
int rf_cfg_duration(const rf_cfg_node *map, const char *key, uint64_t min_ns, uint64_t max_ns,
                    uint64_t def_ns, uint64_t *out_ns, rf_err *err);
int rf_cfg_size(const rf_cfg_node *map, const char *key, uint64_t min, uint64_t max, uint64_t def,
                uint64_t *out, rf_err *err);

/* ---- units, also for command-line flags ---------------------------------- */

/* Return 0, or -EINVAL (bad form), -ERANGE (does not fit 64 bits or is not a
 * whole number of nanoseconds). */
int rf_cfg_parse_duration(const char *text, uint64_t *out_ns);
int rf_cfg_parse_size(const char *text, uint64_t *out_bytes);
/* In the largest unit that states the value exactly ("10us", "1536B",
 * "64KiB"), so messages quote limits the way a user writes them. Returns buf. */
const char *rf_cfg_format_duration(uint64_t ns, char *buf, size_t size);
const char *rf_cfg_format_size(uint64_t bytes, char *buf, size_t size);

#endif
