/* The long reliability runs, skipped (exit 77) unless RF_LONG=1:
 *   RF_LONG=1 meson test -C build --suite reliability-long
 *   - overload: one minute of UDP at the generator's full rate (well above
 *     what two workers sustain: drops must appear) with rf_probe lines on the
 *     critical path; RSS sampled every second stays under a bound, the daemon
 *     stays up, the critical-path percentiles are reported; then a gentle
 *     stream right after must arrive with zero loss (the engine recovers by
 *     itself);
 *   - soak: scripts/soak.sh --seconds 60 (mixed protocols, RSS/fd/latency
 *     sampled, CSV + PNG), which must pass its own verdict.
 * The SIGKILL/restart rounds of test_faults also run 40 times instead of 4
 * under RF_LONG=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

static uint64_t drops_of(const rf_json *st)
{
    return rel_sum(st, "listeners", "kernel_drops") + rel_sum(st, "listeners", "rejected") +
           rel_sum(st, "workers", "dropped_ring_full") + rel_sum(st, "stages", "unknown_series") +
           rel_sum(st, "stages", "store_rejected") +
           rel_sum(st, "storage_shards", "dropped_io_error");
}

static void test_overload_minute(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-overload");
    const int port = tproc_port_base();
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, ring: {capacity: 4096, full_policy: drop_newest}}\n"
             "listeners:\n"
             "  - {name: udp, transport: udp, protocol: influx_line, port: %d, rcvbuf: 8MiB}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "pipeline:\n"
             "  sinks:\n"
             "    - {name: store, type: store}\n"
             "    - {name: probes, type: json, path: /dev/null}\n"
             "  routes:\n"
             "    - {name: probes, subject: \"telemetry.rf_probe.>\", sinks: [probes], class: critical}\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n",
             port);
    tproc_write_file("overload.yaml", cfg);
    proc d;
    rel_start(&d, (const char *[]){"--config", "overload.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    usleep(500 * 1000);
    const long rss0 = rel_rss_kib(d.pid);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' load --target 127.0.0.1:%d --rate 0 --duration 60 --series 5000 --sockets 8 "
             "--critical 0.0005 --quiet >/dev/null 2>&1 &",
             getenv("RINGFLOW"), port);
    free(rel_sh(cmd, NULL));
    long rss_max = rss0;
    for (int s = 0; s < 62; s++) {
        sleep(1);
        int status;
        if (waitpid(d.pid, &status, WNOHANG) == d.pid)
            fail_msg("ringflowd ended during the overload (status 0x%x); its log: %s", status,
                     d.err_path);
        long r = rel_rss_kib(d.pid);
        if (r > rss_max)
            rss_max = r;
    }
    rf_json *st = rel_show_settled(20000);
    assert_non_null(st);
    const uint64_t drops = drops_of(st);
    const uint64_t processed = rel_sum(st, "stages", "processed");
    const rf_json *lat = rf_json_get(st, "latency");
    double p99 = 0, p999 = 0, mx = 0, n = 0;
    for (const rf_json *r = lat ? lat->child : NULL; r; r = r->next) {
        n += rf_json_num(r, "count", 0);
        if (rf_json_num(r, "p99_us", 0) > p99)
            p99 = rf_json_num(r, "p99_us", 0);
        if (rf_json_num(r, "p999_us", 0) > p999)
            p999 = rf_json_num(r, "p999_us", 0);
        if (rf_json_num(r, "max_us", 0) > mx)
            mx = rf_json_num(r, "max_us", 0);
    }
    rf_json_free(st);
    fprintf(stderr,
            "overload: processed=%lu dropped=%lu rss %ld -> max %ld KiB; critical path over %.0f "
            "probes: p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
            processed, drops, rss0, rss_max, n, p99, p999, mx);
    assert_true(drops > 0);                     /* it really was overload */
    assert_true(rss_max < rss0 + 512 * 1024);   /* bounded: +512 MiB at most */

    /* Load falls back: a gentle stream arrives without a single loss. */
    st = rel_show_settled(10000);
    const uint64_t d0 = drops_of(st), p0 = rel_sum(st, "stages", "processed");
    rf_json_free(st);
    int fd = rel_udp_to(port);
    const int64_t t0 = rel_now_ns();
    for (int i = 0; i < 5000; i++) {
        char line[128];
        int len = snprintf(line, sizeof(line), "after,h=h%d v=%di %lld\n", i % 50, i,
                           (long long)(t0 + i));
        assert_int_equal(send(fd, line, (size_t)len, 0), len);
        if (i % 50 == 49)
            usleep(10 * 1000); /* 5000 events/s */
    }
    close(fd);
    st = rel_show_settled(10000);
    assert_int_equal(drops_of(st), d0);
    assert_int_equal(rel_sum(st, "stages", "processed"), p0 + 5000);
    rf_json_free(st);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 60000), 0);
}

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
    const char *lng = getenv("RF_LONG");
    if (!lng || strcmp(lng, "1") != 0) {
        fprintf(stderr, "long reliability runs: set RF_LONG=1\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_overload_minute, rel_teardown),
        cmocka_unit_test_teardown(test_soak_60s, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
