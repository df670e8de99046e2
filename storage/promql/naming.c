/* The one mapping between ringflow's series (measurement, field, tags) and
 * Prometheus metrics (name, labels); contract in promql.h. */
#include <errno.h>
#include <string.h>

#include "storage/promql/promql.h"

int rf_promql_metric_name(const char *measurement, const char *field, char *name, size_t cap,
                          const char **le)
{
    size_t ml = strlen(measurement), fl = strlen(field);
    const char *suffix = field;
    *le = NULL;
    if (strcmp(field, "value") == 0) {
        suffix = NULL;
    } else if (fl > 3 && strncmp(field, "le_", 3) == 0) {
        suffix = "bucket";
        *le = field + 3;
    }
    size_t sl = suffix ? strlen(suffix) + 1 : 0;
    if (ml + sl + 1 > cap)
        return -ENOSPC;
    memcpy(name, measurement, ml);
    if (suffix) {
        name[ml] = '_';
        memcpy(name + ml + 1, suffix, sl - 1);
    }
    name[ml + sl] = '\0';
    return (int)(ml + sl);
}
