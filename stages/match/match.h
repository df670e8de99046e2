/* Series matching: which series a rule or pattern is about. Shared by alert
 * rules (stages/alert), correlation patterns (stages/correlate) and subject
 * templates (stages/route), which all read a series key's measurement, field
 * and tags.
 *
 * Contract
 *   - Pure functions of their arguments: no state, no locks; any thread.
 *   - A series key's text is line-protocol escaped; every comparison here is
 *     on the unescaped text, cut at RF_MATCH_TEXT_MAX - 1 bytes.
 *   - Allocation only in rf_series_matcher_copy and the configuration parsers.
 */
#ifndef RF_STAGES_MATCH_H
#define RF_STAGES_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/event/event.h"

/* Longest measurement, field or tag value compared (with its NUL), and the
 * longest string the configuration helpers take. */
#define RF_MATCH_TEXT_MAX 256u

/* A matcher selects series by measurement, field and tags. Each string is a
 * glob with '*' (any run of bytes, possibly empty); NULL or "*" matches all.
 * Values compare to the unescaped key text. All conditions must hold. */
#define RF_MATCH_MAX_TAGS 4u

typedef struct rf_series_matcher {
    const char *measurement;
    const char *field;
    struct {
        const char *key;   /* exact tag key */
        const char *value; /* glob; the tag must be present */
    } tags[RF_MATCH_MAX_TAGS];
    uint32_t n_tags;
} rf_series_matcher;

bool rf_series_matcher_match(const rf_series_matcher *m, const rf_series_key *key);

/* Deep copy (strings duplicated) for stages that keep a matcher beyond their
 * configuration's lifetime; release frees the copies. Returns 0 or -ENOMEM. */
int rf_series_matcher_copy(rf_series_matcher *dst, const rf_series_matcher *src);
void rf_series_matcher_release(rf_series_matcher *m);

/* Copies the unescaped value of tag `tag` into buf (NUL-terminated, truncated
 * to cap - 1). Returns its length, or -1 when the key has no such tag. */
int rf_series_key_tag(const rf_series_key *key, const char *tag, char *buf, size_t cap);

/* Glob with '*' only. */
bool rf_glob_match(const char *glob, const char *s, size_t len);

/* Locates tag `tag` (taglen bytes, given unescaped) in the key; on success
 * sets *val and *vlen to its value bytes, still escaped. */
bool rf_series_key_find_tag(const rf_series_key *key, const char *tag, size_t taglen,
                            const char **val, size_t *vlen);

/* Copies escaped bytes s[0..len) unescaped into dst (cap includes the NUL;
 * truncated to cap - 1). With `subject`, bytes that cannot appear in a
 * subject token ('.', ' ', '*', '>', tab, CR, LF) become '_'. Returns the
 * bytes written. */
size_t rf_series_key_unescape(const char *s, size_t len, char *dst, size_t cap, bool subject);

/* ---- configuration (YAML through core/config; match_config.c) ---- */

/* A matcher from a mapping {measurement: glob, field: glob, tags: {k: glob}}
 * (at most RF_MATCH_MAX_TAGS tags). Strings are owned: release with
 * rf_series_matcher_release. */
int rf_series_matcher_parse(const rf_cfg_node *map, rf_series_matcher *out, rf_err *err);

/* Duplicates the string under `key` (NULL when absent and not required). */
int rf_cfg_strdup_key(const rf_cfg_node *map, const char *key, bool required, char **out,
                      rf_err *err);

#endif
