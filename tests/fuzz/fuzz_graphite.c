/* libFuzzer target: rf_parse_graphite (see fuzz_parse_common.h for the checks).
 * An input whose first byte is odd is parsed with a template set that uses
 * every kind of part (filters, measurement*, field, field*, default tags, a
 * default template), the rest without templates. */
#include "tests/fuzz/fuzz_parse_common.h"

static const rf_graphite_templates *fuzz_template_set(void)
{
    static rf_graphite_templates *g;
    if (!g) {
        static const char *const specs[] = {
            "servers.* .host.measurement.field*",        "stats.*.gauges host.measurement* dc=eu",
            "a.b.c measurement.measurement.field.field", "*.x.* region.measurement.field",
            "measurement.host.. env=prod,tier=1",
        };
        rf_err err = {0};
        g = rf_graphite_templates_new(specs, sizeof(specs) / sizeof(specs[0]), ".", "site=fz",
                                      &err);
        if (!g)
            abort();
    }
    return g;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && (data[0] & 1)) {
        fuzz_templates = fuzz_template_set();
        int r = fuzz_parse_twice(rf_parse_graphite, data + 1, size - 1);
        fuzz_templates = NULL;
        return r;
    }
    return fuzz_parse_twice(rf_parse_graphite, data, size);
}
