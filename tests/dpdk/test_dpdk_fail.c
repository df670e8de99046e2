/* Graceful degradation: DPDK that cannot start says what to check, and a
 * second attempt in the same process is refused cleanly. One EAL per process:
 * the mode (argv[1]) picks the scenario.
 *   eal:   a vdev no driver knows -> EAL init fails
 *   nodev: EAL starts, the configured device does not exist -> ENODEV */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/dpdk/dpdk.h"

static const char *mode = "eal";

static void base(rf_dpdk_config *cfg)
{
    rf_dpdk_config_init(cfg);
    cfg->enabled = true;
    cfg->huge_pages = false;
    cfg->pci = false;
    cfg->in_memory = true;
    snprintf(cfg->eal_args[cfg->n_eal_args++], RF_DPDK_ARG_MAX, "--no-telemetry");
    snprintf(cfg->eal_args[cfg->n_eal_args++], RF_DPDK_ARG_MAX, "--log-level=error");
    rf_dpdk_port_config_init(&cfg->ports[0]);
    snprintf(cfg->ports[0].name, sizeof(cfg->ports[0].name), "nic0");
    cfg->n_ports = 1;
}

static void test_fail(void **state)
{
    (void)state;
    rf_dpdk_config cfg;
    base(&cfg);
    if (strcmp(mode, "eal") == 0)
        snprintf(cfg.ports[0].vdev, RF_DPDK_ARG_MAX, "net_nosuchdriver0");
    else
        snprintf(cfg.ports[0].device, RF_DPDK_ARG_MAX, "0000:99:00.0");
    rf_dpdk *d = NULL;
    rf_err err;
    int rc = rf_dpdk_open(&cfg, 2, &d, &err);
    assert_true(rc < 0);
    assert_null(d);
    printf("# %s\n", err.msg);
    if (strcmp(mode, "eal") == 0) {
        assert_non_null(strstr(err.msg, "DPDK: EAL init failed"));
        assert_non_null(strstr(err.msg, "check hugepages"));
        assert_non_null(strstr(err.msg, "net_nosuchdriver0"));
    } else {
        assert_int_equal(rc, -ENODEV);
        assert_non_null(strstr(err.msg, "no ethdev named '0000:99:00.0'"));
    }
    /* EAL cannot be initialised twice: a clean refusal, not a crash. */
    rc = rf_dpdk_open(&cfg, 2, &d, &err);
    assert_int_equal(rc, -EALREADY);
    assert_non_null(strstr(err.msg, "already initialised"));
}

int main(int argc, char **argv)
{
    if (argc > 1)
        mode = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
