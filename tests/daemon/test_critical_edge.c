/* The critical edge (docs/ARCHITECTURE.md, "The critical lane"), in
 * process so that ASan and TSan see every thread:
 *
 *   - a threshold alert on a critical event of a series the other worker
 *     owns leaves while that owner is held (rf_engine_test_hold, a worker
 *     stuck or asleep): the worker the datagram arrived at evaluates the
 *     rule and writes the alert. Before the edge the event waited in the
 *     owner's critical ring and the alert came only after the hold;
 *   - the owner still gets the event once it runs again (its pipeline
 *     processes it: storage, aggregation), and does not raise the alert a
 *     second time (one threshold state per series);
 *   - the same series sent through a socket that lands on the other worker
 *     is evaluated by the first worker's edge (the claim), so a breach
 *     there does not fire again and a recovery resolves the one alert.
 *
 * SO_REUSEPORT picks a worker by the sender's address, so the test first
 * learns which worker a client socket reaches (its critical-event counter)
 * and then picks a series owned by the other one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
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
#include "core/event/event.h"
#include "daemon/engine.h"
#include "daemon/settings.h"
#include "daemon/worker_shard.h"
#include "stages/pipeline/pipeline.h"
#include "daemon_proc.h"
#include "engine_inproc.h"

#define HOLD_NS (3 * RF_NS_PER_S)

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    return fd;
}

static int udp_bound(int port)
{
    int fd = udp_socket();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_line(int fd, int port, const char *line)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t len = strlen(line);
    assert_int_equal(sendto(fd, line, len, 0, (struct sockaddr *)&to, sizeof(to)), (ssize_t)len);
}

/* The next datagram on fd within ms into buf; its length, or 0 on timeout. */
static size_t recv_within(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) != 1)
        return 0;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    return (size_t)n;
}

static uint64_t critical_events(rf_engine *e, uint32_t worker)
{
    rf_engine_worker_stats st;
    rf_engine_worker_stats_read(e, worker, &st);
    return st.critical_events;
}

/* The worker whose socket gets what fd sends (one line, counted there). */
static uint32_t worker_of(rf_engine *e, int fd, int port)
{
    const uint64_t before[2] = {critical_events(e, 0), critical_events(e, 1)};
    send_line(fd, port, "hello,host=probe v=0\n");
    const int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while (rf_clock_mono_ns() < deadline) {
        for (uint32_t w = 0; w < 2; w++)
            if (critical_events(e, w) > before[w])
                return w;
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fail_msg("no worker counted the line");
    return 0;
}

static rf_pipeline_stats pipeline_stats(rf_engine *e, uint32_t worker)
{
    rf_pipeline_stats st;
    rf_pipeline_stats_read(rf_shard_pipeline(rf_engine_shard(e, worker)), &st);
    return st;
}

static void test_alert_leaves_while_owner_is_held(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-critical-edge");
    const int port = tproc_port_base() + 20, sink_port = port + 1;
    int sink = udp_bound(sink_port);

    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, pin_workers: false, run_dir: %s/run, data_dir: %s}\n"
             "listeners:\n"
             "  - {name: alarms, transport: udp, protocol: influx_line, port: %d, class: "
             "critical}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  max_series: 4096\n"
             "  sinks:\n"
             "    - {name: pager, type: lp_udp, host: 127.0.0.1, port: %d}\n"
             "    - {name: quiet, type: count_only}\n"
             "  routes:\n"
             "    - {name: alerts, subject: \"alert.>\", sinks: [pager], class: critical}\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [quiet]}\n"
             "  alerts:\n"
             "    - {name: hot, type: threshold, match: {measurement: crit, field: v}, op: \">\","
             " fire: 50, resolve: 40}\n",
             tproc_dir(), tproc_dir(), port, sink_port);
    rf_settings s;
    rf_engine *e = engine_inproc_start(cfg, &s);

    /* Client sockets until one lands on each worker. */
    int client[2] = {-1, -1};
    for (int tries = 0; tries < 64 && (client[0] < 0 || client[1] < 0); tries++) {
        int fd = udp_socket();
        uint32_t w = worker_of(e, fd, port);
        if (client[w] < 0)
            client[w] = fd;
        else
            close(fd);
    }
    assert_true(client[0] >= 0 && client[1] >= 0);

    /* A series owned by worker 1, sent to worker 0's socket. */
    const uint32_t arrive = 0, owner = 1;
    char key[64], line[128];
    for (int h = 0;; h++) {
        int len = snprintf(key, sizeof(key), "crit,host=h%d v", h);
        if (rf_event_owner(rf_series_id_of_key(key, (size_t)len), 2) == owner) {
            snprintf(line, sizeof(line), "crit,host=h%d v=", h);
            break;
        }
    }
    char buf[512];
    char text[160];
    /* The probes' lines settle, then a sample under the threshold: the
     * series is known at its edge and its owner. */
    struct timespec settle = {0, 100 * 1000 * 1000};
    nanosleep(&settle, NULL);
    const uint64_t base = pipeline_stats(e, owner).processed;
    snprintf(text, sizeof(text), "%s10\n", line);
    send_line(client[arrive], port, text);
    const int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while ((pipeline_stats(e, owner).processed < base + 1 ||
            pipeline_stats(e, arrive).edge_evaluated < 1) &&
           rf_clock_mono_ns() < deadline) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(pipeline_stats(e, owner).processed >= base + 1);
    const uint64_t owner_processed = pipeline_stats(e, owner).processed;
    const uint64_t edge_taken = pipeline_stats(e, arrive).edge_evaluated;

    /* The owner is stuck; the breach arrives at the other worker. */
    rf_engine_test_hold(e, owner, HOLD_NS);
    const int64_t t0 = rf_clock_mono_ns();
    snprintf(text, sizeof(text), "%s90\n", line);
    send_line(client[arrive], port, text);
    size_t n = recv_within(sink, buf, sizeof(buf), 1000);
    const int64_t took = rf_clock_mono_ns() - t0;
    fprintf(stderr, "alert after %.3f ms with the owner held: %s", (double)took / 1e6,
            n ? buf : "(none)\n");
    assert_true(n > 0); /* before the edge: only once the hold (3 s) ended */
    assert_true(took < HOLD_NS / 2);
    assert_non_null(strstr(buf, "hot"));
    assert_null(strstr(buf, "resolved"));
    /* The owner has not run since: nothing of it was needed. The edge
     * counts after its sinks, so wait for its counter. */
    assert_int_equal(pipeline_stats(e, owner).processed, owner_processed);
    while (pipeline_stats(e, arrive).edge_evaluated < edge_taken + 1 &&
           rf_clock_mono_ns() < deadline) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "edge: worker 0 took %lu (unknown %lu), worker 1 took %lu (unknown %lu)\n",
            (unsigned long)pipeline_stats(e, 0).edge_evaluated,
            (unsigned long)pipeline_stats(e, 0).edge_unknown,
            (unsigned long)pipeline_stats(e, 1).edge_evaluated,
            (unsigned long)pipeline_stats(e, 1).edge_unknown);
    assert_int_equal(pipeline_stats(e, arrive).edge_evaluated, edge_taken + 1);

    /* Once it runs again the owner takes the sample (its storage and
     * aggregation side), and raises no second alert. */
    const int64_t until = t0 + HOLD_NS + 5 * RF_NS_PER_S;
    while (pipeline_stats(e, owner).processed < owner_processed + 1 && rf_clock_mono_ns() < until) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(pipeline_stats(e, owner).processed >= owner_processed + 1);

    /* The same series through the owner's own socket: the claim sends it to
     * the edge, whose state is firing, so another breach raises nothing and
     * a recovery resolves the one alert. */
    snprintf(text, sizeof(text), "%s95\n", line);
    send_line(client[owner], port, text);
    assert_int_equal(recv_within(sink, buf, sizeof(buf), 300), 0);
    snprintf(text, sizeof(text), "%s5\n", line);
    send_line(client[owner], port, text);
    n = recv_within(sink, buf, sizeof(buf), 2000);
    assert_true(n > 0);
    fprintf(stderr, "then: %s", buf);
    assert_non_null(strstr(buf, "hot"));
    assert_int_equal(recv_within(sink, buf, sizeof(buf), 300), 0);

    /* Read while the workers run (stage counters are relaxed atomics, so
     * this holds under TSan too). */
    rf_alerts_stats owner_alerts = {0};
    rf_pipeline_stage_stats ss;
    rf_pipeline_stages_read(rf_shard_pipeline(rf_engine_shard(e, owner)), &ss);
    owner_alerts = ss.alerts;
    assert_int_equal(owner_alerts.fired, 0); /* every fire was the edge's */

    rf_engine_stop(e);
    rf_settings_release(&s);
    close(client[0]);
    close(client[1]);
    close(sink);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alert_leaves_while_owner_is_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
