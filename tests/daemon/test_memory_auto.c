/* The `auto` memory defaults: the embedded default configuration's
 * memory_limit is half of this host's memory and its max_series is sized so
 * that the worst case fits; an explicit max_series keeps its value, and a
 * limit too small for the fixed parts is still refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config/config.h"
#include "daemon/memory_budget.h"
#include "daemon/settings.h"

static int load_text(const char *text, rf_settings *s, rf_err *err)
{
    char path[] = "/tmp/rf_mem_auto.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = rf_settings_load(path, s, err);
    unlink(path);
    return rc;
}

static void default_fits_half_the_host(void **state)
{
    (void)state;
    static rf_settings s;
    rf_err err = {0};
    assert_int_equal(rf_settings_load(NULL, &s, &err), 0);
    const uint64_t host = rf_memory_host_bytes();
    assert_true(host > 0);
    assert_true(s.daemon.engine.memory_limit_auto);
    assert_int_equal(s.daemon.engine.memory_limit, host / 2);
    assert_true(s.pipeline.max_series_auto);
    assert_int_equal(s.pipeline.max_series % 1024, 0);
    assert_true(s.pipeline.max_series <= RF_PIPELINE_DEFAULT_MAX_SERIES);
    rf_memory_budget b;
    rf_memory_budget_compute(&s, &b);
    assert_true(b.total <= s.daemon.engine.memory_limit);
    /* The largest that fits: 1024 more series would not (unless at the cap). */
    if (s.pipeline.max_series < RF_PIPELINE_DEFAULT_MAX_SERIES) {
        s.pipeline.max_series += 1024;
        rf_memory_budget_compute(&s, &b);
        assert_true(b.total > s.daemon.engine.memory_limit);
    }
    print_message("host %llu MiB: memory_limit %llu MiB, max_series %u per worker\n",
                  (unsigned long long)(host >> 20),
                  (unsigned long long)(s.daemon.engine.memory_limit >> 20),
                  s.pipeline.max_series -
                      (s.pipeline.max_series < RF_PIPELINE_DEFAULT_MAX_SERIES ? 1024 : 0));
    rf_settings_release(&s);
}

static void auto_follows_an_explicit_limit(void **state)
{
    (void)state;
    static rf_settings s;
    rf_err err = {0};
    /* A 4 GiB limit: max_series shrinks to fit it. */
    int rc = load_text("engine: {memory_limit: 4GiB}\nstats: {prometheus: {enabled: false}}\n"
                       "storage: {buffer_memory: 64MiB}\n",
                       &s, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(s.daemon.engine.memory_limit, 4ull << 30);
    assert_true(s.pipeline.max_series < RF_PIPELINE_DEFAULT_MAX_SERIES);
    rf_memory_budget b;
    rf_memory_budget_compute(&s, &b);
    assert_true(b.total <= 4ull << 30);
    rf_settings_release(&s);

    /* An explicit max_series is kept, and refused when it does not fit. */
    assert_int_equal(
        load_text("engine: {memory_limit: 1GiB}\npipeline: {max_series: 1048576}\n", &s, &err),
        -EINVAL);
    assert_non_null(strstr(err.msg, "engine.memory_limit: this configuration can need up to"));

    /* Too small for the fixed parts even at 1024 series: refused too. */
    assert_int_equal(load_text("engine: {memory_limit: 16MiB}\n", &s, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "engine.memory_limit"));

    /* A per-measurement limit above what auto gives is named. */
    assert_int_equal(load_text("engine: {memory_limit: 4GiB}\n"
                               "storage: {buffer_memory: 64MiB}\n"
                               "pipeline: {max_series_per_measurement: 1000000}\n",
                               &s, &err),
                     -EINVAL);
    assert_non_null(strstr(err.msg, "pipeline.max_series: auto gives"));
}

/* A reload keeps the running tables' size under auto when it still fits,
 * so that a pipeline change does not name max_series as needing a restart. */
static void reload_keeps_the_running_size_when_it_fits(void **state)
{
    (void)state;
    static rf_settings s;
    rf_err err = {0};
    const char *text = "engine: {memory_limit: 4GiB}\nstats: {prometheus: {enabled: false}}\n"
                       "storage: {buffer_memory: 64MiB}\n";
    assert_int_equal(load_text(text, &s, &err), 0);
    const uint32_t own = s.pipeline.max_series;
    assert_true(own > 20 * 1024 && own < RF_PIPELINE_DEFAULT_MAX_SERIES);
    /* Smaller than what auto found: it fits, so it is kept. */
    assert_true(rf_memory_budget_keep_max_series(&s, own - 10 * 1024));
    assert_int_equal(s.pipeline.max_series, own - 10 * 1024);
    /* Larger: it does not fit the limit, so the file's own value stands. */
    s.pipeline.max_series = own;
    assert_false(rf_memory_budget_keep_max_series(&s, own + 50 * 1024));
    assert_int_equal(s.pipeline.max_series, own);
    /* An explicit max_series is never replaced. */
    s.pipeline.max_series_auto = false;
    assert_false(rf_memory_budget_keep_max_series(&s, own - 10 * 1024));
    assert_int_equal(s.pipeline.max_series, own);
    rf_settings_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(default_fits_half_the_host),
        cmocka_unit_test(auto_follows_an_explicit_limit),
        cmocka_unit_test(reload_keeps_the_running_size_when_it_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
