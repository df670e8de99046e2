/* An idle worker sleeps until its pipeline's next deadline (daemon/
 * worker_shard.c, rf_pipeline_next_due_ns) instead of waking every 10 ms,
 * and the deadlines still come on time. In process, idle.sleep at its
 * default (1 s), series expiry off so that nothing else wakes the workers:
 *
 *   - a standard sink's batch interval (50 ms): one routine line reaches
 *     the sink about 50 ms after it was sent, not at the next 1 s wake-up;
 *   - a per-series absence (300 ms): its alert leaves about 300 ms after
 *     the series' last sample;
 *   - and then, nothing being due, each worker sleeps a handful of times a
 *     second rather than the 100 of a fixed 10 ms tick. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/worker/worker.h"
#include "daemon/engine.h"
#include "daemon/settings.h"
#include "daemon_proc.h"
#include "engine_inproc.h"

static int udp_bound(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Milliseconds from t0 until a datagram containing `needle` arrives on fd
 * (others are skipped), or -1 after timeout_ms. */
static double arrival_ms(int fd, const char *needle, int64_t t0, int timeout_ms)
{
    const int64_t deadline = t0 + (int64_t)timeout_ms * RF_NS_PER_MS;
    char buf[2048];
    for (;;) {
        int64_t left = deadline - rf_clock_mono_ns();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left / RF_NS_PER_MS) + 1) != 1)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        if (strstr(buf, needle))
            return (double)(rf_clock_mono_ns() - t0) / 1e6;
    }
}

static uint64_t sleeps_of(rf_engine *e, uint32_t worker)
{
    rf_worker_stats st;
    const rf_component *c = NULL;
    rf_engine_worker_runtime_read(e, worker, &st, &c);
    return st.sleeps;
}

static void test_deadlines_of_an_idle_worker(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-idle-deadlines");
    const int port = tproc_port_base() + 30, sink_port = port + 1;
    int sink = udp_bound(sink_port);
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, pin_workers: false, run_dir: %s/run, data_dir: %s}\n"
             "listeners:\n"
             "  - {name: main, transport: udp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  max_series: 1024\n"
             "  series_idle_ttl: 0\n"
             "  batch: {max_events: 1000, interval: 50ms}\n"
             "  sinks:\n"
             "    - {name: out, type: lp_udp, host: 127.0.0.1, port: %d}\n"
             "  routes:\n"
             "    - {name: alerts, subject: \"alert.>\", sinks: [out], class: critical}\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [out]}\n"
             "  alerts:\n"
             "    - {name: gone, type: absence, match: {measurement: beat}, absent: 300ms}\n",
             tproc_dir(), tproc_dir(), port, sink_port);
    rf_settings s;
    rf_engine *e = engine_inproc_start(cfg, &s);
    assert_int_equal(s.daemon.engine.idle.sleep_max_ns, RF_NS_PER_S); /* the default */
    /* Past start-up: the workers are asleep in their waits. */
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);

    int tx = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char *line = "beat,host=a v=1\n";
    const int64_t t0 = rf_clock_mono_ns();
    assert_int_equal(sendto(tx, line, strlen(line), 0, (struct sockaddr *)&to, sizeof(to)),
                     (ssize_t)strlen(line));

    /* The batch interval, then the absence. Tolerances are wide for a
     * shared machine but far below the 1 s a missed deadline would cost. */
    const double batch_ms = arrival_ms(sink, "beat", t0, 2000);
    const double absent_ms = arrival_ms(sink, "gone", t0, 3000);
    fprintf(stderr, "batch flushed after %.1f ms (interval 50), absence after %.1f ms (300)\n",
            batch_ms, absent_ms);
    assert_true(batch_ms >= 40 && batch_ms < 300);
    assert_true(absent_ms >= 290 && absent_ms < 550);

    /* Nothing is due now: the workers sleep until the 1 s bound. */
    const uint64_t before[2] = {sleeps_of(e, 0), sleeps_of(e, 1)};
    struct timespec idle = {2, 0};
    nanosleep(&idle, NULL);
    const uint64_t slept[2] = {sleeps_of(e, 0) - before[0], sleeps_of(e, 1) - before[1]};
    fprintf(stderr, "idle 2 s: worker 0 slept %lu times, worker 1 %lu\n", (unsigned long)slept[0],
            (unsigned long)slept[1]);
    assert_true(slept[0] < 20 && slept[1] < 20); /* a 10 ms tick: about 200 */

    rf_engine_stop(e);
    rf_settings_release(&s);
    close(tx);
    close(sink);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadlines_of_an_idle_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
