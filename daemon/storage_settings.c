#include "daemon/storage_settings.h"

#include <stdio.h>
#include <string.h>

#include "core/clock/clock.h"
#include "storage/encode/encode.h"

static const char *const durability_names[] = {"interval", "bytes", "never"};

int rf_storage_settings_parse(const rf_cfg_node *root, const char *data_dir,
                              rf_storage_settings *out, rf_err *err)
{
    rf_storage_settings next;
    memset(&next, 0, sizeof(next));
    rf_store_config_default(&next.store);
    rf_store_config *c = &next.store;
    const rf_cfg_node *st = NULL, *ret = NULL;
    char def_dir[RF_DAEMON_PATH_MAX];
    snprintf(def_dir, sizeof(def_dir), "%.*s/store", (int)(sizeof(def_dir) - 7), data_dir);
    uint64_t block_age = 0, seg_bytes = 0, seg_age = 0, sync_interval = 0, sync_bytes = 0,
             max_age = 0, max_bytes = 0, ret_interval = 0;
    int durability = 0, precision = 0, rc;
    static const char *const precisions[] = {"auto", "ns", "us", "ms", "s"};
    static const int64_t precision_ns[] = {0, 1, RF_NS_PER_US, RF_NS_PER_MS, RF_NS_PER_S};
    uint32_t zstd = 0;
    if ((rc = rf_cfg_map(root, "storage", &st, err)) < 0 ||
        (rc = rf_cfg_bool(st, "enabled", true, &next.enabled, err)) < 0 ||
        (rc = rf_cfg_str(st, "dir", 1, def_dir, next.dir, sizeof(next.dir), err)) < 0 ||
        (rc = rf_cfg_u32(st, "block_points", 16, RF_BLOCK_MAX_POINTS, c->block_points,
                         &c->block_points, err)) < 0 ||
        (rc = rf_cfg_duration(st, "block_max_age", RF_NS_PER_S, 86400ull * RF_NS_PER_S,
                              (uint64_t)c->block_max_age_ns, &block_age, err)) < 0 ||
        (rc = rf_cfg_size(st, "segment_max_bytes", 1ull << 20, 1ull << 40, c->segment_max_bytes,
                          &seg_bytes, err)) < 0 ||
        (rc = rf_cfg_duration(st, "segment_max_age", RF_NS_PER_S, 30ull * 86400 * RF_NS_PER_S,
                              (uint64_t)c->segment_max_age_ns, &seg_age, err)) < 0 ||
        (rc = rf_cfg_enum(st, "durability", durability_names, 3, (int)c->durability, &durability,
                          err)) < 0 ||
        (rc = rf_cfg_duration(st, "sync_interval", RF_NS_PER_MS, 3600ull * RF_NS_PER_S,
                              (uint64_t)c->sync_interval_ns, &sync_interval, err)) < 0 ||
        (rc = rf_cfg_size(st, "sync_bytes", 4096, 1ull << 34, c->sync_bytes, &sync_bytes, err)) <
            0 ||
        (rc = rf_cfg_u32(st, "queue_blocks", 4, 65536, c->queue_blocks, &c->queue_blocks, err)) <
            0 ||
        (rc = rf_cfg_u32(st, "zstd_level", 0, 19, (uint32_t)c->zstd_level, &zstd, err)) < 0 ||
        (rc = rf_cfg_enum(st, "time_precision", precisions, 5, 0, &precision, err)) < 0 ||
        (rc = rf_cfg_size(st, "buffer_memory", 0, 1ull << 40, RF_STORAGE_DEFAULT_BUFFER_MEMORY,
                          &c->buffer_memory, err)) < 0 ||
        (rc = rf_cfg_map(st, "retention", &ret, err)) < 0 ||
        (rc = rf_cfg_duration(ret, "max_age", 0, 100ull * 365 * 86400 * RF_NS_PER_S,
                              (uint64_t)c->retention_max_age_ns, &max_age, err)) < 0 ||
        (rc = rf_cfg_size(ret, "max_bytes", 0, 1ull << 50, c->retention_max_bytes, &max_bytes,
                          err)) < 0 ||
        (rc = rf_cfg_duration(ret, "interval", RF_NS_PER_S, 86400ull * RF_NS_PER_S,
                              (uint64_t)c->retention_interval_ns, &ret_interval, err)) < 0)
        return rc;
    const rf_cfg_node *qn;
    uint64_t q_timeout = 0;
    if ((rc = rf_cfg_map(st, "query", &qn, err)) < 0 ||
        (rc = rf_cfg_duration(qn, "timeout", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              120ull * RF_NS_PER_S, &q_timeout, err)) < 0 ||
        (rc = rf_cfg_u64(qn, "max_samples", 1, 1ull << 40, 50000000ull, &next.query.max_samples,
                         err)) < 0 ||
        (rc = rf_cfg_u64(qn, "max_series", 0, 1ull << 32, 0, &next.query.max_series, err)) < 0 ||
        (rc = rf_cfg_size(qn, "index_memory", 1ull << 20, 1ull << 40, 256ull << 20,
                          &next.query.index_memory, err)) < 0)
        return rc;
    next.query.timeout_ns = (int64_t)q_timeout;
    c->block_max_age_ns = (int64_t)block_age;
    c->segment_max_bytes = seg_bytes;
    c->segment_max_age_ns = (int64_t)seg_age;
    c->durability = (enum rf_store_durability)durability;
    c->sync_interval_ns = (int64_t)sync_interval;
    c->sync_bytes = sync_bytes;
    c->zstd_level = (int)zstd;
    c->time_unit_ns = precision_ns[precision];
    c->retention_max_age_ns = (int64_t)max_age;
    c->retention_max_bytes = max_bytes;
    c->retention_interval_ns = (int64_t)ret_interval;
    *out = next;
    return 0;
}
