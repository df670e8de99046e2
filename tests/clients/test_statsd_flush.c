/* lynx and statsd-client (npm) -> a UDP tee -> ringflowd's StatsD listener
 * and Etsy's StatsD 0.9 (npm `statsd`), the reference daemon, whose flush is
 * the expected result (statsd_flush.js).
 *
 * The clients send counters with sample rates (lynx drops and marks samples
 * itself), gauges set and moved by +/- deltas, timers (some sampled) and
 * sets with repeated members, partly packed several to a datagram. StatsD
 * flushes the burst to a Graphite socket of the script; ringflowd (two
 * workers, the default StatsD settings but an hour's interval) flushes it at
 * its stop. Asserted, for every value StatsD flushed: ringflowd stored the
 * same double under measurement = the metric name and Telegraf's field name
 * (counter/gauge/set `value`; timer count, lower, upper, mean, median,
 * stddev, sum, 90_percentile, 99_percentile), and nothing else of those
 * measurements (no raw samples). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_util.h"

static const char *g_node;

/* The value of field `field` in a `ringflow query --format csv` output of
 * one measurement without tags; fails unless there is exactly one row. */
static double stored_value(const char *csv, const char *meas, const char *field)
{
    char prefix[256];
    snprintf(prefix, sizeof(prefix), ",%s,%s,,", meas, field);
    const char *hit = NULL;
    for (const char *p = strstr(csv, prefix); p; p = strstr(p + 1, prefix)) {
        if (hit)
            fail_msg("%s %s: more than one row:\n%s", meas, field, csv);
        hit = p;
    }
    if (!hit)
        fail_msg("%s %s: not stored; the store has:\n%s", meas, field, csv);
    return strtod(hit + strlen(prefix), NULL);
}

static void test_statsd_flush(void **state)
{
    (void)state;
    /* The whole burst in one of ringflowd's intervals: not across an hour. */
    int64_t now_s = cu_now_ns() / 1000000000LL;
    if (3600 - now_s % 3600 < 30)
        sleep((unsigned)(3600 - now_s % 3600 + 1));
    int port = tproc_port_base();
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: statsd, transport: udp, protocol: statsd, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "  statsd: {flush_interval: 1h}\n");
    char etsy_base[16];
    snprintf(etsy_base, sizeof(etsy_base), "%d", port + 3); /* StatsD, its mgmt, Graphite */
    char *out = cu_run_node_script(g_node, "statsd_flush.js", port, etsy_base);
    printf("%s", out);
    cu_daemon_stop(&d); /* the interval is flushed at the stop */
    cu_expect_nothing_rejected(tproc_read_file(d.err_path));

    /* Every value StatsD flushed, stored the same; per measurement, as many
     * rows as StatsD has values (nothing raw, nothing more). */
    char meas[128] = "", *csv = NULL;
    int values = 0, rows_want = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char m[128], field[64], want_s[64];
        if (sscanf(line, "%127s %63s %63s", m, field, want_s) != 3)
            fail_msg("statsd_flush.js printed %s", line);
        if (strcmp(m, meas) != 0) {
            if (csv)
                assert_int_equal(cu_count_lines(csv) - 1, rows_want);
            free(csv);
            char args[256];
            snprintf(args, sizeof(args), "'%s' --format csv", m);
            csv = cu_query(args);
            snprintf(meas, sizeof(meas), "%s", m);
            rows_want = 0;
        }
        double want = strtod(want_s, NULL), got = stored_value(csv, m, field);
        if (got != want)
            fail_msg("%s %s: ringflow %.17g, StatsD %s", m, field, got, want_s);
        rows_want++;
        values++;
    }
    if (csv)
        assert_int_equal(cu_count_lines(csv) - 1, rows_want);
    free(csv);
    /* lynx.* and sdc.*: at least the unsampled gauge, timers and sets. */
    if (values < 2 * 9 + 4)
        fail_msg("only %d values from StatsD:\n%s", values, out);
    free(out);
}

int main(void)
{
    g_node = cu_node_or_skip("statsd");
    if (!g_node)
        return CU_EXIT_SKIP;
    /* the other two modules only need to be there: their paths are not kept */
    static const char *const also[] = {"lynx", "statsd-client"};
    for (size_t i = 0; i < sizeof(also) / sizeof(also[0]); i++) {
        char *path = cu_node_or_skip(also[i]);
        if (!path)
            return CU_EXIT_SKIP;
        free(path);
    }
    return cu_run_test("rf-test-statsd-flush", "test_statsd_flush", test_statsd_flush);
}
