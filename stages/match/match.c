/* Series matching: the tags of a series key, globs, and matchers over
 * measurement, field and tags. See match.h for the contract. */
#include "stages/match/match.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The tag list of a key: bytes between the measurement's ',' and the space
 * before the field ("" when the series has no tags). */
static void key_tags(const rf_series_key *key, const char **tags, size_t *len)
{
    size_t m = key->measurement_len;
    size_t f = key->field_offset;
    if (m < key->len && key->text[m] == ',' && f > m + 1) {
        *tags = key->text + m + 1;
        *len = f - 1 - (m + 1);
    } else {
        *tags = key->text + m;
        *len = 0;
    }
}

/* Finds the next unescaped `c` in s[0..len); returns len when absent. */
static size_t find_unescaped(const char *s, size_t len, char c)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            i++;
            continue;
        }
        if (s[i] == c)
            return i;
    }
    return len;
}

bool rf_series_key_find_tag(const rf_series_key *key, const char *tag, size_t taglen,
                            const char **val, size_t *vlen)
{
    const char *t;
    size_t tl;
    key_tags(key, &t, &tl);
    while (tl > 0) {
        size_t pair = find_unescaped(t, tl, ',');
        size_t eq = find_unescaped(t, pair, '=');
        if (eq < pair) {
            /* Compare the key unescaped. */
            size_t i = 0, j = 0;
            while (i < eq && j < taglen) {
                char c = t[i];
                if (c == '\\' && i + 1 < eq)
                    c = t[++i];
                if (c != tag[j])
                    break;
                i++;
                j++;
            }
            if (i == eq && j == taglen) {
                *val = t + eq + 1;
                *vlen = pair - eq - 1;
                return true;
            }
        }
        if (pair >= tl)
            break;
        t += pair + 1;
        tl -= pair + 1;
    }
    return false;
}

size_t rf_series_key_unescape(const char *s, size_t len, char *dst, size_t cap, bool subject)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len)
            c = s[++i];
        if (subject &&
            (c == '.' || c == ' ' || c == '*' || c == '>' || c == '\t' || c == '\n' || c == '\r'))
            c = '_';
        dst[o++] = c;
    }
    if (cap)
        dst[o] = '\0';
    return o;
}

int rf_series_key_tag(const rf_series_key *key, const char *tag, char *buf, size_t cap)
{
    const char *v;
    size_t vl;
    if (!rf_series_key_find_tag(key, tag, strlen(tag), &v, &vl))
        return -1;
    return (int)rf_series_key_unescape(v, vl, buf, cap, false);
}

bool rf_glob_match(const char *glob, const char *s, size_t len)
{
    /* Iterative '*' matching with one backtrack point (linear for one star,
     * quadratic at worst; globs are short and this runs per series, not per event). */
    size_t gi = 0, si = 0, star = SIZE_MAX, mark = 0;
    while (si < len) {
        if (glob[gi] == '*') {
            star = gi++;
            mark = si;
        } else if (glob[gi] != '\0' && glob[gi] == s[si]) {
            gi++;
            si++;
        } else if (star != SIZE_MAX) {
            gi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (glob[gi] == '*')
        gi++;
    return glob[gi] == '\0';
}

static bool glob_field(const char *glob, const char *s, size_t len)
{
    char buf[RF_MATCH_TEXT_MAX];
    if (!glob || (glob[0] == '*' && glob[1] == '\0'))
        return true;
    size_t n = rf_series_key_unescape(s, len, buf, sizeof(buf), false);
    return rf_glob_match(glob, buf, n);
}

bool rf_series_matcher_match(const rf_series_matcher *m, const rf_series_key *key)
{
    if (!glob_field(m->measurement, key->text, key->measurement_len))
        return false;
    if (!glob_field(m->field, key->text + key->field_offset, key->len - key->field_offset))
        return false;
    for (uint32_t i = 0; i < m->n_tags && i < RF_MATCH_MAX_TAGS; i++) {
        const char *v;
        size_t vl;
        if (!m->tags[i].key ||
            !rf_series_key_find_tag(key, m->tags[i].key, strlen(m->tags[i].key), &v, &vl))
            return false;
        if (!glob_field(m->tags[i].value, v, vl))
            return false;
    }
    return true;
}

static int dup_opt(const char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    char *d = strdup(src);
    if (!d)
        return -ENOMEM;
    *dst = d;
    return 0;
}

void rf_series_matcher_release(rf_series_matcher *m)
{
    free((char *)m->measurement);
    free((char *)m->field);
    for (uint32_t i = 0; i < RF_MATCH_MAX_TAGS; i++) {
        free((char *)m->tags[i].key);
        free((char *)m->tags[i].value);
    }
    memset(m, 0, sizeof(*m));
}

int rf_series_matcher_copy(rf_series_matcher *dst, const rf_series_matcher *src)
{
    memset(dst, 0, sizeof(*dst));
    int rc = dup_opt(&dst->measurement, src->measurement);
    rc |= dup_opt(&dst->field, src->field);
    dst->n_tags = src->n_tags < RF_MATCH_MAX_TAGS ? src->n_tags : RF_MATCH_MAX_TAGS;
    for (uint32_t i = 0; i < dst->n_tags; i++) {
        rc |= dup_opt(&dst->tags[i].key, src->tags[i].key);
        rc |= dup_opt(&dst->tags[i].value, src->tags[i].value);
    }
    if (rc) {
        rf_series_matcher_release(dst);
        return -ENOMEM;
    }
    return 0;
}
