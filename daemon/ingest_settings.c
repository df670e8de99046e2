#include "daemon/ingest_settings.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"

static const char *const precision_names[] = {"ns", "us", "ms", "s"};
/* Indexed by enum rf_ts_policy. */
static const char *const ts_policy_names[] = {"reject", "clamp"};

/* ingest.collectd.types_db: Debian's collectd ships it where the default
 * points. A path given must load; the default is used when it is there (a
 * host without collectd still starts; its data sources are then named by
 * "value" or their index). Loaded once per path and kept for the process:
 * every parse context of every configuration reads it, reloads included. */
static const char *const security_names[] = {"none", "sign", "encrypt"};

static int parse_collectd(const rf_cfg_node *ingest, rf_ingest_settings *out, rf_err *err)
{
    rf_parse_config *pc = &out->parse;
    static char loaded_path[512];
    static rf_collectd_types *loaded;
    const rf_cfg_node *cd = NULL;
    char path[512];
    int rc;
    if ((rc = rf_cfg_map(ingest, "collectd", &cd, err)) < 0 ||
        (rc = rf_cfg_str(cd, "types_db", 0, RF_COLLECTD_TYPES_DB_DEFAULT, path, sizeof(path),
                         err)) < 0)
        return rc;
    /* collectd's server-side SecurityLevel and AuthFile. */
    int level = RF_COLLECTD_SECURITY_NONE;
    if ((rc = rf_cfg_enum(cd, "security_level", security_names, 3, RF_COLLECTD_SECURITY_NONE,
                          &level, err)) < 0 ||
        (rc = rf_cfg_str(cd, "auth_file", 0, "", out->collectd_auth_file,
                         sizeof(out->collectd_auth_file), err)) < 0)
        return rc;
    out->collectd_security = (enum rf_collectd_security)level;
    if (level != RF_COLLECTD_SECURITY_NONE && !out->collectd_auth_file[0])
        return rf_cfg_fail_key(
            cd, "security_level", err,
            "%s needs an auth_file (collectd's AuthFile: `user: password` lines)",
            security_names[level]);
    const bool given = rf_cfg_has(cd, "types_db");
    if (!path[0] || (!given && access(path, R_OK) != 0)) {
        pc->collectd_types = NULL;
        return 0;
    }
    if (!loaded || strcmp(loaded_path, path) != 0) {
        rf_collectd_types *t = rf_collectd_types_load(path, err);
        if (!t) {
            char why[RF_ERR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", err ? err->msg : path);
            return rf_cfg_fail_key(cd, "types_db", err, "%s", why);
        }
        loaded = t; /* an earlier one stays: contexts built from it may still run */
        snprintf(loaded_path, sizeof(loaded_path), "%s", path);
    }
    pc->collectd_types = loaded;
    return 0;
}

int rf_ingest_settings_parse(const rf_cfg_node *root, rf_ingest_settings *out, rf_err *err)
{
    rf_ingest_settings next;
    memset(&next, 0, sizeof(next));

    const rf_cfg_node *seq = NULL;
    int rc = rf_cfg_seq(root, "listeners", 0, RF_SETTINGS_MAX_LISTENERS, &seq, err);
    if (rc < 0)
        return rc;
    rc = rf_listener_config_parse_list(seq, next.listeners, RF_SETTINGS_MAX_LISTENERS,
                                       &next.n_listeners, err);
    if (rc < 0)
        return rc;

    const rf_cfg_node *ingest = NULL;
    if ((rc = rf_cfg_map(root, "ingest", &ingest, err)) < 0)
        return rc;
    int precision = RF_PRECISION_NS, ts_policy = RF_TS_REJECT;
    uint64_t past = 0, future = 0;
    uint32_t max_tags = 0, max_fields = 0, max_key = 0;
    if ((rc = rf_cfg_enum(ingest, "precision", precision_names, 4, RF_PRECISION_NS, &precision,
                          err)) < 0 ||
        (rc = rf_cfg_duration(ingest, "timestamp_past", 0, 100ull * 365 * 86400 * RF_NS_PER_S, 0,
                              &past, err)) < 0 ||
        (rc = rf_cfg_duration(ingest, "timestamp_future", 0, 100ull * 365 * 86400 * RF_NS_PER_S,
                              3600ull * RF_NS_PER_S, &future, err)) < 0 ||
        (rc = rf_cfg_enum(ingest, "timestamp_policy", ts_policy_names, 2, RF_TS_REJECT, &ts_policy,
                          err)) < 0 ||
        (rc = rf_cfg_u32(ingest, "max_tags", 1, 1024, 64, &max_tags, err)) < 0 ||
        (rc = rf_cfg_u32(ingest, "max_fields", 1, 4096, 256, &max_fields, err)) < 0 ||
        (rc = rf_cfg_u32(ingest, "max_key", 16, 65535, 1024, &max_key, err)) < 0)
        return rc;
    /* The correlation id tag (protocol.h, corr_id_tag): the parsers need it,
     * so it is an ingest setting (a change takes a restart, as the rest of
     * `ingest:` does). */
    const rf_cfg_node *corr = NULL;
    if ((rc = rf_cfg_map(ingest, "correlation", &corr, err)) < 0 ||
        (rc = rf_cfg_str(corr, "id_tag", 0, "", next.parse.corr_id_tag,
                         sizeof(next.parse.corr_id_tag), err)) < 0)
        return rc;
    for (const char *c = next.parse.corr_id_tag; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.' || *c == '-'))
            return rf_cfg_fail_key(corr, "id_tag", err,
                                   "may hold only letters, digits, '_', '.' and '-'");
    if ((rc = parse_collectd(ingest, &next, err)) < 0 ||
        (rc = rf_spread_config_parse(ingest, &next.spread, err)) < 0)
        return rc;
    next.parse.precision = (enum rf_ts_precision)precision;
    next.parse.ts_past_ns = (int64_t)past;
    next.parse.ts_future_ns = (int64_t)future;
    next.parse.ts_policy = (uint8_t)ts_policy;
    next.parse.max_tags = max_tags;
    next.parse.max_fields = max_fields;
    next.parse.max_key_len = max_key;
    *out = next;
    return 0;
}
