/* Series matchers, and the string helper the stages' parsers share, from the
 * YAML configuration. Control thread only. See match.h. */
#include "stages/match/match.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int rf_cfg_strdup_key(const rf_cfg_node *map, const char *key, bool required, char **out,
                      rf_err *err)
{
    *out = NULL;
    if (required) {
        int rc = rf_cfg_require(map, key, err);
        if (rc)
            return rc;
    } else if (!rf_cfg_has(map, key)) {
        return 0;
    }
    char buf[RF_MATCH_TEXT_MAX];
    int rc = rf_cfg_str(map, key, 1, "", buf, sizeof(buf), err);
    if (rc)
        return rc;
    *out = strdup(buf);
    return *out ? 0 : rf_err_set(err, ENOMEM, "config: out of memory");
}

int rf_series_matcher_parse(const rf_cfg_node *map, rf_series_matcher *out, rf_err *err)
{
    memset(out, 0, sizeof(*out));
    char *m = NULL, *f = NULL;
    int rc = rf_cfg_strdup_key(map, "measurement", false, &m, err);
    if (!rc)
        rc = rf_cfg_strdup_key(map, "field", false, &f, err);
    out->measurement = m;
    out->field = f;
    const rf_cfg_node *tags;
    if (!rc)
        rc = rf_cfg_map(map, "tags", &tags, err);
    if (rc) {
        rf_series_matcher_release(out);
        return rc;
    }
    size_t n = rf_cfg_map_len(tags);
    if (n > RF_MATCH_MAX_TAGS) {
        rf_series_matcher_release(out);
        return rf_cfg_fail(tags, err, "at most %u tag conditions, got %zu", RF_MATCH_MAX_TAGS, n);
    }
    for (size_t i = 0; i < n; i++) {
        char v[RF_MATCH_TEXT_MAX];
        rc = rf_cfg_node_str(rf_cfg_map_value(tags, i), 1, v, sizeof(v), err);
        char *k = rc ? NULL : strdup(rf_cfg_map_key(tags, i));
        char *vv = rc ? NULL : strdup(v);
        out->tags[i].key = k;
        out->tags[i].value = vv;
        out->n_tags = (uint32_t)i + 1;
        if (!rc && (!k || !vv))
            rc = rf_err_set(err, ENOMEM, "config: out of memory");
        if (rc) {
            rf_series_matcher_release(out);
            return rc;
        }
    }
    return 0;
}
