/* The long reliability runs, skipped (exit 77) unless RF_LONG=1:
 *   RF_LONG=1 meson test -C build --suite reliability-long
 *   - overload: one minute of UDP at the generator's full rate (well above
 *     what two workers sustain: drops must appear) with rf_probe lines on the
 *     critical path; RSS sampled every second stays under a bound, the daemon
 *     stays up, the critical-path percentiles are reported; then a gentle
 *     stream right after must arrive with zero loss (the engine recovers by
 *     itself);
 *   - twice the sustainable rate under engine.memory_limit: the sustainable
 *     rate is found first on this machine (a ramp of `ringflow load --rate R`,
 *     the highest R with zero loss by the loss counters), then 2R is offered
 *     for 60 s to a daemon whose memory_limit is its own computed worst case,
 *     while probes go to a `class: critical` listener: resident memory sampled
 *     every second stays under the limit (and /health says so), not one
 *     critical probe is lost, the daemon stays up, and a gentle stream
 *     afterwards arrives with zero loss. Latency is reported (critical probes
 *     against the routine stream's own probes, in the same run) and compared
 *     as a ratio only.
 * The SIGKILL/restart rounds of test_faults also run 40 times instead of 4
 * under RF_LONG=1. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <sys/uio.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "tests/reliability/rel_util.h"

static uint64_t drops_of(const rf_json *st)
{
    return rel_sum(st, "listeners", "kernel_drops") + rel_sum(st, "listeners", "rejected") +
           rel_sum(st, "workers", "dropped_ring_full") + rel_sum(st, "stages", "unknown_series") +
           rel_sum(st, "stages", "store_rejected") +
           rel_sum(st, "storage_shards", "dropped_io_error");
}

/* The gentle stream after an overload: GENTLE_LINES lines over UDP to port
 * at about 5000 a second, each one datagram, every one sent whole. */
#define GENTLE_LINES 5000
static void send_gentle(int port)
{
    int fd = rel_udp_to(port);
    assert_true(fd >= 0);
    const int64_t t0 = rel_now_ns();
    for (int i = 0; i < GENTLE_LINES; i++) {
        char line[128];
        int len = snprintf(line, sizeof(line), "after,h=h%d v=%di %lld\n", i % 50, i,
                           (long long)(t0 + i));
        assert_int_equal(send(fd, line, (size_t)len, 0), len);
        if (i % 50 == 49)
            usleep(10 * 1000); /* 5000 events/s */
    }
    close(fd);
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
             "    - {name: probes, subject: \"telemetry.rf_probe.>\", sinks: [probes], class: "
             "critical}\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n",
             port);
    proc d;
    assert_true(rel_start_config(&d, "overload.yaml", cfg, 10000));
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
        if (strcmp(rf_json_str(r, "histogram", ""), "ringflow_critical_path_seconds") != 0)
            continue; /* the per-stage histograms */
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
    assert_true(drops > 0);                   /* it really was overload */
    assert_true(rss_max < rss0 + 512 * 1024); /* bounded: +512 MiB at most */

    /* Load falls back: a gentle stream arrives without a single loss. */
    st = rel_show_settled(10000);
    const uint64_t d0 = drops_of(st), p0 = rel_sum(st, "stages", "processed");
    rf_json_free(st);
    send_gentle(port);
    st = rel_show_settled(10000);
    assert_int_equal(drops_of(st), d0);
    assert_int_equal(rel_sum(st, "stages", "processed"), p0 + GENTLE_LINES);
    rf_json_free(st);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 60000), 0);
}

/* ---- twice the sustainable rate, under engine.memory_limit ---------------- */

#define X2_SECONDS 60
#define X2_PROBE_EVERY_US 2000
#define X2_PROBES (X2_SECONDS * 1000000 / X2_PROBE_EVERY_US)

/* Every loss counter of the routine path (the critical listener has its own
 * check), and the events processed. */
static uint64_t loss_of(const rf_json *st)
{
    return rel_sum_where(st, "listeners", "kernel_drops", "listener", "routine") +
           rel_sum(st, "listeners", "rejected") + rel_sum(st, "workers", "dropped_ring_full") +
           rel_sum(st, "stages", "unknown_series") + rel_sum(st, "stages", "store_rejected") +
           rel_sum(st, "storage_shards", "dropped_io_error");
}

static void x2_config(int port, uint64_t memory_limit)
{
    char cfg[2048];
    snprintf(
        cfg, sizeof(cfg),
        "engine: {workers: 2, memory_limit: %lu, ring: {capacity: 4096, full_policy: "
        "drop_newest}}\n"
        "listeners:\n"
        "  - {name: routine, transport: udp, protocol: influx_line, port: %d, rcvbuf: 8MiB}\n"
        "  - {name: alarms, transport: udp, protocol: influx_line, port: %d, class: critical, "
        "rcvbuf: 8MiB}\n"
        "ingest: {max_key: 256, max_tags: 16}\n"
        "stats: {prometheus: {enabled: true, listen: \"127.0.0.1:%d\"}, client_buffer: 256KiB}\n"
        "storage: {buffer_memory: 32MiB, segment_max_bytes: 4MiB}\n"
        "pipeline:\n"
        "  max_series: 20000\n"
        "  sinks:\n"
        "    - {name: store, type: store}\n"
        "    - {name: probes, type: lp_udp, host: 127.0.0.1, port: %d}\n"
        "  routes:\n"
        "    - {name: probes, subject: \"telemetry.rf_probe.>\", sinks: [probes], class: "
        "critical}\n"
        "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n",
        (unsigned long)memory_limit, port, port + 1, port + 3, port + 2);
    tproc_write_file("x2.yaml", cfg);
}

/* `ringflow load` at rate (events/s; one field a line) for secs seconds, in
 * the foreground; returns the events it sent. */
static uint64_t load_at(int port, double rate, double secs, double critical)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' load --target 127.0.0.1:%d --rate %.0f --duration %.1f --series 5000 "
             "--sockets 8 --critical %g --quiet --json 2>/dev/null",
             getenv("RINGFLOW"), port, rate, secs, critical);
    char *out = rel_sh(cmd, NULL);
    const char *e = out ? strstr(out, "\"events\":") : NULL;
    uint64_t n = e ? strtoull(e + 9, NULL, 10) : 0;
    free(out);
    return n;
}

/* The /health status code from the Prometheus listener (-1: no answer). */
static int health_code(int port)
{
    char buf[2048] = "";
    const int code = rel_http_get(port, "/health", buf, sizeof(buf));
    if (code != 200)
        fprintf(stderr, "/health: %s\n", buf);
    return code;
}

static void test_twice_sustainable_under_memory_limit(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-x2");
    const int port = tproc_port_base();
    const int crit_port = port + 1, sink_port = port + 2, prom_port = port + 3;
    rel_probe_rx *rx = rel_probe_rx_open(sink_port, X2_PROBES);
    assert_non_null(rx);

    /* 1. The sustainable rate on this machine, with this configuration: a
     * ramp, 4 s a step; the highest rate whose every event was processed
     * (loss counters still, processed up by what was sent). */
    x2_config(port, 0);
    proc d;
    rel_start(&d, (const char *[]){"--config", "x2.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    static const double rates[] = {50e3,  100e3, 150e3,  200e3,  300e3,  400e3, 500e3,
                                   600e3, 800e3, 1000e3, 1300e3, 1600e3, 2000e3};
    /* This is a shared 2-core machine: a step may lose a few events to a
     * moment when both cores were taken by something else, so a rate counts
     * as sustained when one of three tries lost nothing. */
    double sustainable = 0;
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        bool ok = false, offered_it = true;
        for (int attempt = 0; attempt < 3 && !ok && offered_it; attempt++) {
            rf_json *st = rel_show_settled(10000);
            assert_non_null(st);
            const uint64_t l0 = loss_of(st), p0 = rel_sum(st, "stages", "processed");
            const uint64_t k0 = rel_sum(st, "listeners", "kernel_drops"),
                           r0 = rel_sum(st, "workers", "dropped_ring_full"),
                           s0 = rel_sum(st, "stages", "store_rejected");
            rf_json_free(st);
            const uint64_t sent = load_at(port, rates[i], 4, 0);
            st = rel_show_settled(15000);
            assert_non_null(st);
            const uint64_t lost = loss_of(st) - l0, done = rel_sum(st, "stages", "processed") - p0;
            fprintf(stderr,
                    "ramp: %.0f events/s offered: %lu sent, %lu processed, %lu lost (kernel %lu, "
                    "rings %lu, store %lu)\n",
                    rates[i], (unsigned long)sent, (unsigned long)done, (unsigned long)lost,
                    (unsigned long)(rel_sum(st, "listeners", "kernel_drops") - k0),
                    (unsigned long)(rel_sum(st, "workers", "dropped_ring_full") - r0),
                    (unsigned long)(rel_sum(st, "stages", "store_rejected") - s0));
            rf_json_free(st);
            offered_it = sent >= (uint64_t)(rates[i] * 4 * 0.9);
            ok = offered_it && lost == 0 && done == sent;
        }
        if (!ok)
            break; /* lost some every time, or the generator could not offer it */
        sustainable = rates[i];
    }
    rf_json *mem = rel_show("show memory json");
    assert_non_null(mem);
    const uint64_t worst = rel_obj(mem, "memory", "worst_case_bytes");
    rf_json_free(mem);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 60000), 0);
    assert_true(sustainable > 0);
    assert_true(worst > 0);

    /* 2. Twice that for a minute, memory_limit = the computed worst case
     * rounded up to a MiB (what an operator who sets the limit gets). */
    const uint64_t limit = (worst + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    x2_config(port, limit);
    rel_start(&d, (const char *[]){"--config", "x2.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    const double offered = 2 * sustainable;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s' load --target 127.0.0.1:%d --rate %.0f --duration %d --series 5000 --sockets 8 "
             "--critical 0.0005 --quiet --json >x2-load.json 2>/dev/null &",
             getenv("RINGFLOW"), port, offered, X2_SECONDS);
    free(rel_sh(cmd, NULL));
    usleep(500 * 1000);
    const long rss0 = rel_rss_kib(d.pid);
    long rss_max = rss0;
    int healthy = 0, unhealthy = 0;
    int fd = rel_udp_to(crit_port);
    const int64_t t0 = rf_clock_mono_ns();
    int64_t next_sample = t0 + RF_NS_PER_S;
    for (int i = 0; i < X2_PROBES; i++) {
        assert_true(rel_probe_send(fd, i));
        rel_probe_rx_drain(rx);
        const int64_t now = rf_clock_mono_ns();
        if (now >= next_sample) {
            next_sample += RF_NS_PER_S;
            int status;
            if (waitpid(d.pid, &status, WNOHANG) == d.pid)
                fail_msg("ringflowd ended at 2x (status 0x%x); its log: %s", status, d.err_path);
            long r = rel_rss_kib(d.pid);
            if (r > rss_max)
                rss_max = r;
            if ((now - t0) / RF_NS_PER_S % 10 == 0) {
                if (health_code(prom_port) == 200)
                    healthy++;
                else
                    unhealthy++;
            }
        }
        /* one probe every X2_PROBE_EVERY_US, on the clock (not after a
         * fixed sleep: the loop itself takes time under load) */
        const int64_t due = t0 + (int64_t)(i + 1) * X2_PROBE_EVERY_US * 1000;
        const int64_t wait = due - rf_clock_mono_ns();
        if (wait > 0) {
            struct timespec ts = {0, wait};
            nanosleep(&ts, NULL);
        }
    }
    close(fd);
    rel_probe_rx_drain_for(rx, 5000); /* what is still on its way comes back */
    rf_json *st = rel_show_settled(20000);
    assert_non_null(st);
    rel_probe_rx_drain(rx);
    char *lj = rel_sh("cat x2-load.json", NULL);
    const char *ev = lj ? strstr(lj, "\"events_per_s\":") : NULL;
    const double achieved = ev ? strtod(ev + 15, NULL) : 0;
    free(lj);
    const uint64_t lost = loss_of(st), processed = rel_sum(st, "stages", "processed");
    const uint64_t crit_drops =
        rel_sum_where(st, "listeners", "kernel_drops", "listener", "alarms");
    const uint64_t over_s = rel_obj(st, "info", "memory_over_limit_s");
    const uint64_t rss_peak = rel_obj(st, "info", "rss_peak_bytes");
    const uint64_t cut_by_mem = rel_sum(st, "storage_shards", "blocks_cut_by_memory");
    rf_json_free(st);
    const uint32_t seen = rel_probe_rx_seen(rx);
    const int final_health = health_code(prom_port);
    fprintf(stderr,
            "2x: sustainable %.0f events/s, offered %.0f (generator achieved %.0f) for %d s: "
            "%lu processed, %lu lost (counted)\n"
            "  memory: limit %lu MiB (computed worst case %lu bytes), RSS %ld -> max %ld KiB "
            "sampled, peak %lu KiB by the daemon, over-limit seconds %lu, /health 200 %d of %d "
            "times and %d at the end; blocks cut by the buffer budget %lu\n"
            "  critical probes: %u/%d back (%u duplicates), kernel drops %lu; p50 %.3f ms, p99 "
            "%.3f ms, max %.3f ms\n"
            "  routine probes:  p50 %.3f ms, p99 %.3f ms, max %.3f ms (%zu)\n",
            sustainable, offered, achieved, X2_SECONDS, (unsigned long)processed,
            (unsigned long)lost, (unsigned long)(limit >> 20), (unsigned long)worst, rss0, rss_max,
            (unsigned long)(rss_peak >> 10), (unsigned long)over_s, healthy, healthy + unhealthy,
            final_health, (unsigned long)cut_by_mem, seen, X2_PROBES, rx->dup,
            (unsigned long)crit_drops, rel_pct_ms(&rx->crit, 0.5), rel_pct_ms(&rx->crit, 0.99),
            rel_pct_ms(&rx->crit, 1.0), rel_pct_ms(&rx->routine, 0.5),
            rel_pct_ms(&rx->routine, 0.99), rel_pct_ms(&rx->routine, 1.0), rx->routine.n);
    /* Memory: under the configured limit all along. */
    assert_true((uint64_t)rss_max * 1024 <= limit);
    assert_true(rss_peak <= limit);
    assert_int_equal(over_s, 0);
    assert_int_equal(unhealthy, 0);
    assert_int_equal(final_health, 200);
    /* The critical lane: not one probe lost, none twice. */
    assert_int_equal(crit_drops, 0);
    assert_int_equal(seen, X2_PROBES);
    assert_int_equal(rx->dup, 0);
    assert_int_equal(rx->crit.n, X2_PROBES);
    /* It was overload (drops counted), and latency only as a ratio within
     * the run: the critical lane's p99 below the routine probes'. */
    assert_true(lost > 0);
    assert_true(rx->routine.n > 10);
    assert_true(rel_pct_ms(&rx->crit, 0.99) < rel_pct_ms(&rx->routine, 0.99));

    /* 3. The load falls back: a gentle stream arrives without a loss. */
    st = rel_show_settled(10000);
    const uint64_t l0 = loss_of(st), p0 = rel_sum(st, "stages", "processed");
    rf_json_free(st);
    send_gentle(port);
    st = rel_show_settled(10000);
    assert_int_equal(loss_of(st), l0);
    assert_int_equal(rel_sum(st, "stages", "processed"), p0 + GENTLE_LINES);
    rf_json_free(st);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 60000), 0);
    rel_probe_rx_free(rx);
}

int main(void)
{
    const char *lng = getenv("RF_LONG");
    if (!lng || strcmp(lng, "1") != 0) {
        fprintf(stderr, "long reliability runs: set RF_LONG=1\n");
        return 77;
    }
    /* RF_LONG_TEST=PATTERN runs only the tests whose names match it. */
    if (getenv("RF_LONG_TEST"))
        cmocka_set_test_filter(getenv("RF_LONG_TEST"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_overload_minute, rel_teardown),
        cmocka_unit_test_teardown(test_twice_sustainable_under_memory_limit, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
