/* Seeding the field types from the store (field_types_seed.h). */
#include "daemon/field_types_seed.h"

#include <errno.h>

#include "core/log/log.h"
#include "storage/query/query.h"

typedef struct seed_ctx {
    rf_field_types *types;
    uint64_t series, untracked;
} seed_ctx;

static void seed_one(void *ctx, uint64_t series_id, uint8_t value_type)
{
    seed_ctx *s = ctx;
    s->series++;
    if (rf_field_types_claim(s->types, series_id, value_type) < 0)
        s->untracked++;
}

int rf_field_types_open(const char *store_dir, uint64_t series, rf_field_types **out, rf_err *err)
{
    *out = rf_field_types_new(2 * series, err);
    if (!*out)
        return -ENOMEM;
    if (!store_dir)
        return 0;
    seed_ctx s = {.types = *out};
    int rc = rf_query_series_types(store_dir, seed_one, &s, err);
    if (rc < 0) {
        rf_err_wrap(err, "field types from the store: ");
        rf_field_types_free(*out);
        *out = NULL;
        return rc;
    }
    rf_log_info("engine", "field types: %lu series entries read from the store%s",
                (unsigned long)s.series, s.untracked ? " (some untracked: table full)" : "");
    return 0;
}
