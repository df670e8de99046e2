/* The soak, 60 seconds of it, in the default test run (release build; the
 * ASan stage leaves it out, see scripts/test.sh): scripts/soak.sh drives
 * ringflowd with mixed protocols (influx UDP with critical probes, influx
 * TCP, StatsD UDP, Graphite TCP), storage, an aggregation and an alert rule,
 * samples RSS, fds, events, drops by place and latency every interval, and
 * passes only when the daemon ran to the end, exited 0 on SIGTERM, holds no
 * more fds than after warm-up (+4) and its RSS ends below 1.5 x the warm-up
 * RSS + 64 MiB. The 30-minute run is `scripts/soak.sh` (docs/RELIABILITY.md). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/reliability/rel_util.h"

static void test_soak_60s(void **state)
{
    (void)state;
    const char *src = getenv("RF_SOURCE_ROOT");
    char bin[1024];
    snprintf(bin, sizeof(bin), "%s", getenv("RINGFLOWD"));
    const char *build = dirname(dirname(bin));
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "RF_SKIP_BUILD=1 '%s/scripts/soak.sh' --seconds 60 --build-dir '%s' --out '%s/soak' "
             "2>&1",
             src, build, tproc_dir_init("rf-rel-soak"));
    int rc;
    char *out = rel_sh(cmd, &rc);
    fprintf(stderr, "%s", out);
    free(out);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_soak_60s, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
