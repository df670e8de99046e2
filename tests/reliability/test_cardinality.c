/* Cardinality protection: with pipeline.max_series small, a storm of new
 * series is refused and counted (series_rejected, their events
 * unknown_series), the series that existed before keep flowing to the store
 * without a single loss, and `show series top N` names the measurement that
 * caused it. Input over TCP, so nothing is lost before the engine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

#define MAX_SERIES 40 /* per worker */
#define KEEP 20
#define STORM 2000
#define ROUNDS 50

static void send_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t k = write(fd, buf, len);
        assert_true(k > 0);
        buf += k;
        len -= (size_t)k;
    }
}

static void test_cardinality_limit(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-card");
    const int port = tproc_port_base() + 4;
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine:\n"
             "  workers: 2\n"
             "  idle: {sleep: 5ms}\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {enabled: false}\n"
             "storage: {block_points: 64}\n"
             "pipeline:\n"
             "  max_series: %d\n",
             port, MAX_SERIES);
    tproc_write_file("card.yaml", cfg);
    proc d;
    rel_start(&d, (const char *[]){"--config", "card.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);

    const int64_t t0 = rel_now_ns() - 600 * 1000000000LL;
    static char buf[1 << 20];
    size_t len = 0;
    /* The established series first, and let them be defined. */
    for (int s = 0; s < KEEP; s++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "good,host=h%d v=%di %lld\n", s,
                                0, (long long)t0);
    send_all(fd, buf, len);
    usleep(300 * 1000);
    /* The storm, interleaved with the established series. */
    uint64_t good_sent = KEEP, storm_sent = 0;
    for (int r = 1; r <= ROUNDS; r++) {
        len = 0;
        for (int s = 0; s < KEEP; s++, good_sent++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "good,host=h%d v=%di %lld\n",
                                    s, r, (long long)(t0 + r));
        for (int s = 0; s < STORM / ROUNDS * 2; s++, storm_sent++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "storm,id=%d v=1i %lld\n",
                                    (r * STORM / ROUNDS + s) % STORM, (long long)(t0 + r));
        send_all(fd, buf, len);
    }
    close(fd);

    rf_json *st = rel_show_settled(15000);
    assert_non_null(st);
    const uint64_t lines = rel_sum(st, "listeners", "lines_ok");
    const uint64_t active = rel_obj(st, "series", "active_series");
    const uint64_t rejected = rel_obj(st, "series", "rejected_by_cardinality_limit");
    const uint64_t series_rejected = rel_sum(st, "stages", "series_rejected");
    const uint64_t unknown = rel_sum(st, "stages", "unknown_series");
    const uint64_t processed = rel_sum(st, "stages", "processed");
    rf_json_free(st);
    fprintf(stderr, "lines=%lu active=%lu rejected=%lu unknown=%lu processed=%lu\n", lines,
            active, rejected, unknown, processed);
    assert_int_equal(lines, good_sent + storm_sent);
    assert_true(active <= 2 * MAX_SERIES);
    assert_true(rejected > 0);
    assert_int_equal(series_rejected, rejected);
    /* Every event is either processed or dropped as unknown (its series was
     * refused): nothing in between. */
    assert_int_equal(processed + unknown, good_sent + storm_sent);

    /* Who caused it: the storm measurement leads `show series top 1`. */
    rf_json *top = rel_show("show series top 1 json");
    assert_non_null(top);
    const rf_json *rows = rf_json_get(top, "series_by_measurement");
    assert_int_equal(rf_json_len(rows), 1);
    assert_string_equal(rf_json_str(rows->child, "measurement", ""), "storm");
    rf_json_free(top);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    /* The established series lost nothing; the storm stored only what its
     * admitted series carried. */
    assert_int_equal(rel_store_count("good"), good_sent);
    assert_int_equal(rel_store_count("good") + rel_store_count("storm"), processed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cardinality_limit, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
