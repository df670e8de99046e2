/* The `pipeline.statsd` settings of the YAML configuration (statsd_flush.h).
 * Control thread only. */
#include "stages/statsd/statsd_flush.h"

#include "core/clock/clock.h"

int rf_statsd_config_parse(const rf_cfg_node *pipeline, rf_statsd_config *out, rf_err *err)
{
    rf_statsd_config c;
    rf_statsd_config_defaults(&c);
    const rf_cfg_node *s, *pct = NULL;
    uint64_t ns;
    int rc;
    if ((rc = rf_cfg_map(pipeline, "statsd", &s, err)) < 0 ||
        (rc = rf_cfg_bool(s, "enabled", true, &c.enabled, err)) < 0 ||
        (rc = rf_cfg_bool(s, "keep_raw", false, &c.keep_raw, err)) < 0 ||
        (rc = rf_cfg_bool(s, "delete_gauges", false, &c.delete_gauges, err)) < 0 ||
        (rc = rf_cfg_duration(s, "flush_interval", RF_NS_PER_MS, 86400ull * RF_NS_PER_S,
                              (uint64_t)c.flush_interval_ns, &ns, err)) < 0 ||
        (rc = rf_cfg_u32(s, "timer_max_values", 1, 1u << 24, c.timer_max_values,
                         &c.timer_max_values, err)) < 0 ||
        (rc = rf_cfg_u32(s, "set_max_exact", 1, 1u << 24, c.set_max_exact, &c.set_max_exact, err)) <
            0 ||
        (rc = rf_cfg_size(s, "max_memory", 1ull << 20, 1ull << 40, c.max_memory, &c.max_memory,
                          err)) < 0)
        return rc;
    c.flush_interval_ns = (int64_t)ns;
    if (rf_cfg_has(s, "percentiles")) {
        if ((rc = rf_cfg_seq(s, "percentiles", 0, RF_STATSD_MAX_PERCENTILES, &pct, err)) < 0)
            return rc;
        c.n_percentiles = (uint32_t)rf_cfg_seq_len(pct);
        for (uint32_t i = 0; i < c.n_percentiles; i++) {
            const rf_cfg_node *item = rf_cfg_seq_at(pct, i);
            if ((rc = rf_cfg_node_double(item, 0.001, 100, &c.percentiles[i], err)) < 0)
                return rc;
            for (uint32_t j = 0; j < i; j++)
                if (c.percentiles[j] == c.percentiles[i])
                    return rf_cfg_fail(item, err, "percentile %g listed twice", c.percentiles[i]);
        }
    }
    *out = c;
    return 0;
}
