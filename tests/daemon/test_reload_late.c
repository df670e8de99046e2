/* Reloads a worker takes late (the engine's "not taken within the wait"
 * path, daemon/engine.h), in process so that ASan and TSan see both sides:
 *
 *   - a late reload: one worker is held (rf_engine_test_hold) past the
 *     reload's wait; the workers that took the new pipeline keep running on
 *     it, new series and all, and the held one takes it when it comes back;
 *   - a second reload while the first is still pending on a worker is
 *     refused (-EBUSY) and changes nothing; once every worker has taken the
 *     first, the next reload applies;
 *   - the engine stops cleanly with a reload still pending;
 *   - listeners added and removed by many reloads do not pile up: the
 *     shard's inputs stay bounded and every cycle applies;
 *   - stopping a recording (the tap) under traffic, and with a held worker
 *     that misses the grace period.
 *
 * Ports: tproc_port_base's, a pair per test (never the defaults), so a
 * failed test that leaves its engine running does not fail the next.
 * Waits are on conditions with deadlines, not sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/stats/stats.h"
#include "core/worker/worker.h"
#include "daemon/engine.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/settings.h"
#include "daemon/worker_shard.h"
#include "daemon/tap.h"
#include "daemon_proc.h"
#include "core/mem/mem.h"

/* How long the reload waits for the workers here (10 s in the daemon). */
#define WAIT_NS (300 * RF_NS_PER_MS)

static int load(const char *text, rf_settings *s)
{
    tproc_write_file("cfg.yaml", text);
    char path[512];
    snprintf(path, sizeof(path), "%s/cfg.yaml", tproc_dir());
    rf_err err;
    rf_err_clear(&err);
    memset(s, 0, sizeof(*s));
    int rc = rf_settings_load(path, s, &err);
    if (rc < 0)
        fprintf(stderr, "settings: %s\n", err.msg);
    return rc;
}

/* The extra listener is an HTTP one (its front freed with it) when set. */
static bool g_extra_http;

/* One UDP influx listener on port (and a second on port + 1 when extra),
 * everything routed to sink `sink`. */
static const char *config(int port, const char *sink, bool extra, uint32_t per_measurement)
{
    static char buf[2048];
    char extra_listener[160] = "";
    if (extra)
        snprintf(extra_listener, sizeof(extra_listener),
                 "  - {name: extra, transport: %s, protocol: %s, port: %d}\n",
                 g_extra_http ? "tcp" : "udp", g_extra_http ? "http" : "influx_line", port + 1);
    snprintf(buf, sizeof(buf),
             "engine: {workers: 2, pin_workers: false, idle: {sleep: 1ms}, run_dir: %s/run,"
             " data_dir: %s}\n"
             "listeners:\n"
             "  - {name: main, transport: udp, protocol: influx_line, port: %d}\n"
             "%s"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  max_series: 4096\n"
             "  max_series_per_measurement: %u\n"
             "  batch: {max_events: 10, interval: 20ms}\n"
             "  sinks:\n"
             "    - {name: %s, type: json, path: %s/%s.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [%s]}\n",
             tproc_dir(), tproc_dir(), port, extra_listener, per_measurement, sink, tproc_dir(),
             sink, sink);
    return buf;
}

/* Each line from a socket of its own: SO_REUSEPORT picks a worker's
 * socket by the sender's address, so one socket would reach one worker (the
 * held one, perhaps) and these spread over both. */
static void send_series(int port, const char *measurement, int first, int n)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = first; i < first + n; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        assert_true(fd >= 0);
        char line[128];
        int len = snprintf(line, sizeof(line), "%s,host=h%d v=%di\n", measurement, i, i);
        assert_int_equal(sendto(fd, line, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to)), len);
        close(fd);
    }
}

static uint64_t series_of(rf_engine *e, uint32_t worker)
{
    /* The series table's own counters (atomic), not the stage readers. */
    rf_series_table_stats st;
    rf_series_table_stats_read(rf_pipeline_series(rf_shard_pipeline(rf_engine_shard(e, worker))),
                               &st);
    return st.count;
}

/* Waits (5 s at most) until every worker holds at least `want` series. */
static bool wait_series(rf_engine *e, uint64_t want)
{
    int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while (rf_clock_mono_ns() < deadline) {
        if (series_of(e, 0) >= want && series_of(e, 1) >= want)
            return true;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static bool wait_applied(rf_engine *e, uint32_t worker)
{
    int64_t deadline = rf_clock_mono_ns() + 20 * RF_NS_PER_S;
    while (rf_clock_mono_ns() < deadline) {
        if (rf_pipeline_applied(rf_shard_pipeline(rf_engine_shard(e, worker))))
            return true;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static rf_engine *start(int port, rf_settings *s)
{
    assert_int_equal(load(config(port, "a", false, 0), s), 0);
    rf_err err;
    rf_err_clear(&err);
    rf_engine *e = NULL;
    if (rf_engine_start(s, &e, &err) < 0)
        fail_msg("start: %s", err.msg);
    rf_engine_test_reload_wait(e, WAIT_NS);
    /* Series on both workers (1/2 each by hash), so each series table has
     * measurements whose limits a swap re-reads. */
    send_series(port, "m", 0, 64);
    assert_true(wait_series(e, 8));
    return e;
}

static int reload_text(rf_engine *e, const char *text, rf_err *err)
{
    rf_settings next;
    assert_int_equal(load(text, &next), 0);
    rf_err_clear(err);
    int rc = rf_engine_reload(e, &next, err);
    rf_settings_release(&next);
    return rc;
}

static void test_late_reload_then_second_then_stop(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-reload-late");
    const int port = tproc_port_base();
    rf_settings s;
    rf_engine *e = start(port, &s);

    /* Worker 1 misses the reload's wait; worker 0 takes the new pipeline
     * (its series table now reads the new per-measurement limits). */
    rf_engine_test_hold(e, 1, 5 * RF_NS_PER_S);
    rf_err err;
    assert_int_equal(reload_text(e, config(port, "b", true, 1000), &err), 1);
    assert_non_null(strstr(err.msg, "not taken by every worker"));
    assert_true(rf_pipeline_applied(rf_shard_pipeline(rf_engine_shard(e, 0))));
    assert_false(rf_pipeline_applied(rf_shard_pipeline(rf_engine_shard(e, 1))));

    /* New series on worker 0: its limits come from the late reload's
     * settings, which must still be there. */
    uint64_t before = series_of(e, 0);
    send_series(port, "n", 0, 64);
    int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while (series_of(e, 0) < before + 8 && rf_clock_mono_ns() < deadline) {
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(series_of(e, 0) >= before + 8);

    /* A second reload while worker 1 still has the first pending: refused,
     * nothing changes (the first stays queued, not overwritten). */
    assert_int_equal(reload_text(e, config(port, "c", false, 0), &err), -EBUSY);
    assert_non_null(strstr(err.msg, "worker-1"));

    /* Worker 1 comes back and takes the first; then a reload applies. */
    assert_true(wait_applied(e, 1));
    assert_int_equal(reload_text(e, config(port, "c", false, 0), &err), 0);
    send_series(port, "o", 0, 64);
    assert_true(wait_series(e, 40));

    rf_engine_stop(e);
    rf_settings_release(&s);
    /* The last pipeline's sink got what came after it, from both workers. */
    char path[512];
    snprintf(path, sizeof(path), "%s/c.jsonl", tproc_dir());
    const char *out = tproc_read_file(path);
    assert_non_null(strstr(out, "\"series\":\"o,"));
}

static void test_stop_with_reload_pending(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-reload-late-stop");
    const int port = tproc_port_base() + 2; /* a pair per test */
    rf_settings s;
    rf_engine *e = start(port, &s);
    /* Long enough for the whole reload even under TSan. */
    rf_engine_test_hold(e, 0, 4 * RF_NS_PER_S);
    rf_err err;
    assert_int_equal(reload_text(e, config(port, "b", true, 10), &err), 1);
    /* Stops while worker 0 is still held with both changes queued. */
    rf_engine_stop(e);
    rf_settings_release(&s);
}

/* Components of kind listener named `name` in the registry. */
static unsigned listener_components(const char *name)
{
    unsigned n = 0;
    for (unsigned i = 0; i < rf_component_count(); i++) {
        const rf_component *c = rf_component_at(i);
        n += c && strcmp(c->kind, "listener") == 0 && strcmp(c->name, name) == 0;
    }
    return n;
}

/* Metrics registry entries whose labels name listener `name`. */
static unsigned listener_series(const char *name)
{
    char needle[96];
    snprintf(needle, sizeof(needle), "listener=\"%s\"", name);
    unsigned n = 0;
    rf_stats_info info;
    for (int cur = 0; rf_stats_next(&cur, &info);)
        n += strstr(info.labels, needle) != NULL;
    return n;
}

/* Resident memory says little under a sanitizer (redzones, quarantine). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RSS_CHECKS 0
#else
#define RSS_CHECKS 1
#endif

/* A listener added and removed by reload after reload, past the 384 inputs
 * a shard had room for: every reload applies, the shard's inputs, the
 * components (/health) and the metrics registry stay bounded, and what the
 * removed listeners counted stays in the totals. */
#define CYCLES 400
static void test_listener_add_remove_cycles(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-reload-cycles");
    const int port = tproc_port_base() + 4; /* a pair per test */
    rf_settings s;
    rf_engine *e = start(port, &s);
    /* Every change is taken here, however slow a sanitizer makes it. */
    rf_engine_test_reload_wait(e, 10 * RF_NS_PER_S);
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_engine_views_register(e, &err), 0);
    const uint32_t inputs_at_start = rf_shard_input_count(rf_engine_shard(e, 0));
    uint64_t rss_warm = 0;
    for (int c = 0; c < CYCLES; c++) {
        if (c == 50)
            rss_warm = rf_mem_rss_bytes(); /* allocator pools warmed up by then */
        int rc = reload_text(e, config(port, "a", true, 0), &err);
        if (rc != 0)
            fail_msg("cycle %d, add: %d %s", c, rc, err.msg);
        assert_int_equal(rf_engine_views_listeners_changed(e, &err), 0);
        if (c == 0) {
            assert_int_equal(listener_components("extra"), 2); /* one per worker */
            assert_true(listener_series("extra") > 0);
        }
        rc = reload_text(e, config(port, "a", false, 0), &err);
        if (rc != 0)
            fail_msg("cycle %d, remove: %d %s", c, rc, err.msg);
        assert_int_equal(rf_engine_views_listeners_changed(e, &err), 0);
        /* Gone from /health and /metrics once the reload returns. */
        if (listener_components("extra") != 0 || listener_series("extra") != 0)
            fail_msg("cycle %d: %u components, %u series of the removed listener", c,
                     listener_components("extra"), listener_series("extra"));
    }
    for (uint32_t w = 0; w < 2; w++)
        assert_true(rf_shard_input_count(rf_engine_shard(e, w)) <= inputs_at_start + 1);
    const uint64_t rss_end = rf_mem_rss_bytes();
    print_message("resident memory: %llu KiB after 50 cycles, %llu KiB after %d\n",
                  (unsigned long long)(rss_warm >> 10), (unsigned long long)(rss_end >> 10),
                  CYCLES);
    if (RSS_CHECKS)
        assert_true(rss_end < rss_warm + (16u << 20));
    assert_int_equal(rf_shard_retired_counters(rf_engine_shard(e, 0))->inputs, CYCLES);
    /* Named in the final summary and show listeners as the listener they were. */
    assert_int_equal(rf_shard_retired_names(rf_engine_shard(e, 0)), 1);
    assert_string_equal(rf_shard_retired_named(rf_engine_shard(e, 0), 0)->name, "extra");
    rf_engine_views_unregister();
    rf_engine_stop(e);
    rf_settings_release(&s);
}

/* The same with an HTTP listener coming and going (a request answered by
 * the first): its front (connections, decoders) is freed with it. */
static void test_http_listener_add_remove_cycles(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-reload-http-cycles");
    const int port = tproc_port_base() + 8; /* shared with the last test */
    rf_settings s;
    rf_engine *e = start(port, &s);
    rf_engine_test_reload_wait(e, 10 * RF_NS_PER_S);
    g_extra_http = true;
    rf_err err;
    for (int c = 0; c < 20; c++) {
        int rc = reload_text(e, config(port, "a", true, 0), &err);
        if (rc != 0)
            fail_msg("cycle %d, add: %d %s", c, rc, err.msg);
        if (c == 0) { /* the helper waits for the kept-alive connection to end (5 s) */
            int status;
            char *body = tproc_http_get(port + 1, "/ping", &status);
            free(body);
            if (status != 204 && status != 200)
                fail_msg("cycle %d: /ping answered %d", c, status);
        }
        rc = reload_text(e, config(port, "a", false, 0), &err);
        if (rc != 0)
            fail_msg("cycle %d, remove: %d %s", c, rc, err.msg);
        assert_int_equal(listener_components("extra"), 0);
    }
    g_extra_http = false;
    assert_int_equal(rf_shard_retired_counters(rf_engine_shard(e, 0))->inputs, 20);
    rf_engine_stop(e);
    rf_settings_release(&s);
}

/* ---- the recording tap's grace period (rf_engine_record_stop) ---------- */

static _Atomic bool g_send_stop;
static int g_send_port;

/* Sends lines from fresh sockets (both workers' listeners get some) until
 * told to stop. */
static void *sender(void *arg)
{
    (void)arg;
    int i = 0;
    while (!atomic_load(&g_send_stop)) {
        send_series(g_send_port, "rec", i % 256, 8);
        i += 8;
    }
    return NULL;
}

static unsigned threads_now(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Recordings started and stopped while the listeners receive: the tap is
 * freed only after every worker is done with it (TSan sees the pairing). */
static void test_record_stop_while_receiving(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-record-grace");
    const int port = tproc_port_base() + 6; /* a pair per test */
    rf_settings s;
    rf_engine *e = start(port, &s);
    /* The default grace (not the short one of the late-reload tests): a
     * worker busy with the traffic under a sanitizer is slow, not stuck. */
    rf_engine_test_reload_wait(e, 10 * RF_NS_PER_S);
    g_send_port = port;
    atomic_store(&g_send_stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender, NULL), 0);
    for (int round = 0; round < 20; round++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/rec-%d.rfrec", tproc_dir(), round);
        rf_tap_options opt = {.path = path, .ring_bytes = 1u << 18};
        rf_err err;
        rf_err_clear(&err);
        if (rf_engine_record_start(e, &opt, &err) < 0)
            fail_msg("record start: %s", err.msg);
        struct timespec ts = {0, 5 * 1000 * 1000}; /* let captures happen */
        nanosleep(&ts, NULL);
        rf_tap_stats st;
        assert_int_equal(rf_engine_record_stop(e, &st, &err), 0);
    }
    atomic_store(&g_send_stop, true);
    pthread_join(t, NULL);
    rf_engine_stop(e);
    rf_settings_release(&s);
}

/* A worker that does not pass its grace period in time: the stop says so,
 * keeps the tap's memory (the worker may still copy into its ring), but
 * stops the tap's thread and closes the file. */
static void test_record_stop_timeout_stops_the_thread(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-record-timeout");
    const int port = tproc_port_base() + 8; /* a pair per test */
    rf_settings s;
    rf_engine *e = start(port, &s);
    const unsigned threads_before = threads_now();
    char path[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    rf_tap_options opt = {.path = path, .ring_bytes = 1u << 18};
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_engine_record_start(e, &opt, &err), 0);
    assert_int_equal(threads_now(), threads_before + 1);
    rf_engine_test_hold(e, 1, 3 * WAIT_NS);
    rf_tap_stats st;
    assert_int_equal(rf_engine_record_stop(e, &st, &err), -ETIMEDOUT);
    assert_int_equal(threads_now(), threads_before); /* the tap thread is gone */
    /* The recording can start again once the worker is back. */
    int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    int rc;
    snprintf(path, sizeof(path), "%s/rec2.rfrec", tproc_dir());
    while ((rc = rf_engine_record_start(e, &opt, &err)) < 0 && rf_clock_mono_ns() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(rc, 0);
    /* This stop waits for worker 1 to come back from its hold. */
    rf_engine_test_reload_wait(e, 10 * RF_NS_PER_S);
    assert_int_equal(rf_engine_record_stop(e, &st, &err), 0);
    rf_engine_stop(e);
    rf_settings_release(&s);
}

int main(void)
{
    rf_log_set_level(RF_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_reload_then_second_then_stop),
        cmocka_unit_test(test_stop_with_reload_pending),
        cmocka_unit_test(test_listener_add_remove_cycles),
        cmocka_unit_test(test_http_listener_add_remove_cycles),
        cmocka_unit_test(test_record_stop_while_receiving),
        cmocka_unit_test(test_record_stop_timeout_stops_the_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
