/* Sinks: exact JSON and line-protocol lines, a JSON file written per batch,
 * UDP and TCP forwarding to real loopback sockets, and what happens when the
 * TCP listener dies: backoff, circuit breaker, drops by reason, no blocking,
 * reconnect and delivery of what was queued. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock/clock.h"
#include "stages/sink/sink.h"

static const char *const texts[] = {"", "cpu,host=a usage", "mem,host=b free", "quote\"d x"};

static const char *series_text(void *ctx, uint64_t id, uint32_t *len)
{
    (void)ctx;
    if (id == 0 || id > 3)
        return NULL;
    *len = (uint32_t)strlen(texts[id]);
    return texts[id];
}

static const char *rule_name(void *ctx, uint32_t id)
{
    (void)ctx;
    return id == 7 ? "high_cpu" : NULL;
}

static const rf_sink_namer namer = {series_text, rule_name, NULL};

/* 2026-11-23T17:49:43.123456789Z */
#define T0 1795456183123456789LL

static rf_event ev_f64(uint64_t sid, double v, int64_t t)
{
    rf_event e = {0};
    e.series_id = sid;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    e.event_time_ns = t;
    e.sample_rate = 1.0f;
    return e;
}

static void test_format_json(void **state)
{
    (void)state;
    char buf[512];
    rf_event e = ev_f64(1, 0.5, T0);
    int n = rf_sink_format_json(&namer, &e, buf, sizeof(buf));
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf,
                        "{\"time\":\"2026-11-23T17:49:43.123456789Z\",\"series\":\"cpu,host=a "
                        "usage\",\"value\":0.5,\"kind\":\"gauge\",\"priority\":\"standard\"}\n");

    rf_event a = ev_f64(3, 97.25, T0);
    a.kind = RF_KIND_ALERT;
    a.priority = RF_PRIO_CRITICAL;
    a.aux = 7;
    a.flags = RF_EVF_ALERT_RESOLVED;
    n = rf_sink_format_json(&namer, &a, buf, sizeof(buf));
    buf[n] = '\0';
    assert_string_equal(buf, "{\"time\":\"2026-11-23T17:49:43.123456789Z\",\"series\":\"quote\\\"d "
                             "x\",\"value\":97.25,\"kind\":\"alert\",\"priority\":\"critical\","
                             "\"rule\":\"high_cpu\",\"state\":\"resolved\"}\n");

    rf_event u = {0};
    u.series_id = 99;
    u.value.i64 = -3;
    u.value_type = RF_VALUE_I64;
    u.event_time_ns = 0;
    n = rf_sink_format_json(&namer, &u, buf, sizeof(buf));
    buf[n] = '\0';
    assert_string_equal(buf, "{\"time\":\"1970-01-01T00:00:00.000000000Z\",\"series\":null,"
                             "\"series_id\":\"0000000000000063\",\"value\":-3,\"kind\":\"gauge\","
                             "\"priority\":\"standard\"}\n");
    assert_int_equal(rf_sink_format_json(&namer, &e, buf, 20), -ENOSPC);
}

static void test_format_lp(void **state)
{
    (void)state;
    char buf[512];
    rf_event e = ev_f64(1, 0.1, T0);
    int n = rf_sink_format_lp(&namer, &e, buf, sizeof(buf));
    buf[n] = '\0';
    assert_string_equal(buf, "cpu,host=a usage=0.1 1795456183123456789\n");
    e.value_type = RF_VALUE_I64;
    e.value.i64 = 42;
    n = rf_sink_format_lp(&namer, &e, buf, sizeof(buf));
    buf[n] = '\0';
    assert_string_equal(buf, "cpu,host=a usage=42i 1795456183123456789\n");
    e.value_type = RF_VALUE_STRING; /* without its text: not expressible */
    assert_int_equal(rf_sink_format_lp(&namer, &e, buf, sizeof(buf)), 0);
    rf_event a = ev_f64(1, 91, T0);
    a.kind = RF_KIND_ALERT;
    a.aux = 7;
    n = rf_sink_format_lp(&namer, &a, buf, sizeof(buf));
    buf[n] = '\0';
    assert_string_equal(buf, "ringflow_alert,rule=high_cpu state=\"firing\",value=91,"
                             "series=\"cpu,host=a usage\" 1795456183123456789\n");
}

/* Doubles take shortcuts (integers, two decimals) that must print what the
 * general rule prints: %.15g, or %.17g when that does not read back. */
static void test_format_lp_doubles(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    static const double fixed[] = {0.01,        -0.01,          0.1,   0.5,   -0.5,    1.05,
                                   100.1,       1e13,           1e15,  -1e15, 9.99e12, 123.456,
                                   1e-5,        0.015,          -0.0,  0.0,   1e300,   2.675,
                                   1e12 + 0.01, 99999999999.99, 5e-324};
    for (int i = 0; i < 200000 + (int)(sizeof(fixed) / sizeof(fixed[0])); i++) {
        double v;
        if (i < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
            v = fixed[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            /* Mostly 0-3 decimals over many magnitudes, some arbitrary bits. */
            int64_t k = (int64_t)(x >> (11 + x % 40)) * ((x & 1) ? -1 : 1);
            static const double div[] = {1, 10, 100, 1000};
            v = (x % 7 == 0) ? (double)(x >> 12) * 1e-9 : (double)k / div[(x >> 8) % 4];
        }
        char want[64], line[128];
        snprintf(want, sizeof(want), "%.15g", v);
        if (strtod(want, NULL) != v)
            snprintf(want, sizeof(want), "%.17g", v);
        snprintf(line, sizeof(line), "cpu,host=a usage=%s 1795456183123456789\n", want);
        rf_event e = ev_f64(1, v, T0);
        char buf[256];
        int n = rf_sink_format_lp(&namer, &e, buf, sizeof(buf));
        assert_true(n > 0);
        buf[n] = '\0';
        assert_string_equal(buf, line);
    }
}

/* A string event as the parser hands it on: the hash as its value, the
 * text in an owned block. */
static rf_event ev_string(uint64_t series, const char *text)
{
    rf_event e = ev_f64(series, 0, T0);
    size_t len = strlen(text);
    rf_event_text *t = rf_event_text_new(len);
    assert_non_null(t);
    memcpy(t->text, text, len + 1);
    e.value_type = RF_VALUE_STRING;
    e.value.u64 = 0x1234abcd5678ef90ull;
    e.aux = (uint64_t)(uintptr_t)t;
    e.flags = RF_EVF_OWNS_AUX;
    return e;
}

/* Strings are written as their text, escaped for the format, never as the
 * hash that stands for them in the value. */
static void test_format_strings(void **state)
{
    (void)state;
    char buf[512];
    rf_event e = ev_string(1, "say \"hi\" \\ back\ttab");
    int n = rf_sink_format_json(&namer, &e, buf, sizeof(buf));
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"time\":\"2026-11-23T17:49:43.123456789Z\",\"series\":\"cpu,host=a "
                             "usage\",\"value\":\"say \\\"hi\\\" \\\\ back\\u0009tab\",\"kind\":"
                             "\"gauge\",\"priority\":\"standard\"}\n");
    n = rf_sink_format_lp(&namer, &e, buf, sizeof(buf));
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf,
                        "cpu,host=a usage=\"say \\\"hi\\\" \\\\ back\ttab\" 1795456183123456789\n");
    rf_event_free_texts(&e, 1);
    /* Empty, and UTF-8 kept as it is. */
    rf_event u = ev_string(1, "");
    n = rf_sink_format_lp(&namer, &u, buf, sizeof(buf));
    buf[n] = '\0';
    assert_string_equal(buf, "cpu,host=a usage=\"\" 1795456183123456789\n");
    rf_event_free_texts(&u, 1);
    u = ev_string(1, "h\xc3\xa9");
    n = rf_sink_format_json(&namer, &u, buf, sizeof(buf));
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"value\":\"h\xc3\xa9\""));
    rf_event_free_texts(&u, 1);
    /* A newline: JSON escapes it, LP cannot carry it (counted unsupported). */
    rf_event nl = ev_string(1, "two\nlines");
    n = rf_sink_format_json(&namer, &nl, buf, sizeof(buf));
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"value\":\"two\\nlines\""));
    assert_int_equal(rf_sink_format_lp(&namer, &nl, buf, sizeof(buf)), 0);
    rf_event_free_texts(&nl, 1);
    /* Without its text: JSON refuses it too rather than write a hash. */
    rf_event bare = ev_f64(1, 0, T0);
    bare.value_type = RF_VALUE_STRING;
    bare.value.u64 = 0x1234abcd5678ef90ull;
    assert_int_equal(rf_sink_format_json(&namer, &bare, buf, sizeof(buf)), 0);
}

static void test_json_file_per_batch(void **state)
{
    (void)state;
    char path[] = "/tmp/rf_test_sink_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    rf_sink_config cfg = {
        .name = "json", .type = RF_SINK_JSON, .path = path, .buffer_bytes = 64 * 1024};
    rf_sink *s;
    rf_err err;
    assert_int_equal(rf_sink_new(&cfg, &namer, &s, &err), 0);
    rf_event evs[100];
    for (int i = 0; i < 100; i++)
        evs[i] = ev_f64(1 + (uint64_t)(i % 2), i, T0 + i);
    assert_int_equal(rf_sink_write(s, evs, 100), 100);
    rf_sink_stats st;
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.lines_out, 0); /* nothing written per event */
    assert_int_equal(rf_sink_flush(s, rf_clock_mono_ns()), 0);
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.lines_out, 100);
    assert_int_equal(st.flushes, 1);
    /* A batch larger than the buffer goes out in pieces, nothing dropped. */
    for (int k = 0; k < 20; k++)
        assert_int_equal(rf_sink_write(s, evs, 100), 100);
    rf_sink_flush(s, rf_clock_mono_ns());
    rf_sink_free(s);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof(line), f)) {
        if (lines == 3)
            assert_string_equal(line, "{\"time\":\"2026-11-23T17:49:43.123456792Z\",\"series\":"
                                      "\"mem,host=b free\",\"value\":3,\"kind\":\"gauge\","
                                      "\"priority\":\"standard\"}\n");
        lines++;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(lines, 2100);

    rf_sink_config bad = {.name = "x", .type = RF_SINK_JSON, .path = "/nonexistent/dir/f"};
    assert_true(rf_sink_new(&bad, &namer, &s, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/dir/f"));
}

static int listen_on(int type, uint16_t *port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(*port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (type == SOCK_STREAM)
        assert_int_equal(listen(fd, 8), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Reads until `want` bytes arrived or 2 s passed. */
static size_t read_upto(int fd, char *buf, size_t want)
{
    size_t got = 0;
    int64_t deadline = rf_clock_mono_ns() + 2 * RF_NS_PER_S;
    while (got < want && rf_clock_mono_ns() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, buf + got, want - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    return got;
}

static void test_udp_exact_lines(void **state)
{
    (void)state;
    uint16_t port = 0;
    int rx = listen_on(SOCK_DGRAM, &port);
    rf_sink_config cfg = {.name = "udp",
                          .type = RF_SINK_LP_UDP,
                          .host = "127.0.0.1",
                          .port = port,
                          .max_datagram = 64};
    rf_sink *s;
    rf_err err;
    assert_int_equal(rf_sink_new(&cfg, &namer, &s, &err), 0);
    rf_event evs[3] = {ev_f64(1, 1.5, 1000), ev_f64(2, 2, 2000), ev_f64(1, -7, 3000)};
    assert_int_equal(rf_sink_write(s, evs, 3), 3);
    assert_int_equal(rf_sink_flush(s, rf_clock_mono_ns()), 0);
    /* 64-byte datagrams: lines are never split across datagrams. */
    const char *want[] = {"cpu,host=a usage=1.5 1000\nmem,host=b free=2 2000\n",
                          "cpu,host=a usage=-7 3000\n"};
    for (int i = 0; i < 2; i++) {
        char buf[256];
        struct pollfd p = {.fd = rx, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 2000), 1);
        ssize_t k = recv(rx, buf, sizeof(buf) - 1, 0);
        assert_true(k > 0);
        buf[k] = '\0';
        assert_string_equal(buf, want[i]);
    }
    rf_sink_stats st;
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.lines_out, 3);
    /* A line longer than a datagram is dropped as oversize. */
    rf_event big = ev_f64(3, 1e300, INT64_MAX);
    char tmp[128];
    assert_true(rf_sink_format_lp(&namer, &big, tmp, sizeof(tmp)) > 0);
    rf_sink_config cfg2 = cfg;
    cfg2.max_datagram = 16;
    rf_sink *s2;
    assert_int_equal(rf_sink_new(&cfg2, &namer, &s2, &err), 0);
    assert_int_equal(rf_sink_write(s2, &big, 1), 0);
    rf_sink_stats_read(s2, &st);
    assert_int_equal(st.drop_oversize, 1);
    rf_sink_free(s2);
    rf_sink_free(s);
    close(rx);
}

/* Flushes with fake monotonic time `now`; asserts it returned quickly. */
static void flush_quick(rf_sink *s, int64_t now)
{
    int64_t t0 = rf_clock_mono_ns();
    rf_sink_flush(s, now);
    int64_t dt = rf_clock_mono_ns() - t0;
    if (dt > 50 * RF_NS_PER_MS)
        fail_msg("flush blocked for %lld ms", (long long)(dt / RF_NS_PER_MS));
}

static void test_udp_no_listener(void **state)
{
    (void)state;
    /* A port nobody listens on: ICMP refusals surface as ECONNREFUSED on a
     * later send; the sink backs off and never blocks. */
    uint16_t port = 0;
    int tmp = listen_on(SOCK_DGRAM, &port);
    close(tmp);
    rf_sink_config cfg = {.name = "udp0",
                          .type = RF_SINK_LP_UDP,
                          .host = "127.0.0.1",
                          .port = port,
                          .backoff_base_ns = RF_NS_PER_MS,
                          .backoff_max_ns = 10 * RF_NS_PER_MS,
                          .jitter_seed = 7};
    rf_sink *s;
    assert_int_equal(rf_sink_new(&cfg, &namer, &s, NULL), 0);
    rf_event e = ev_f64(1, 1, 1);
    int64_t now = 1;
    for (int i = 0; i < 200; i++) {
        rf_sink_write(s, &e, 1);
        flush_quick(s, now);
        now += RF_NS_PER_MS;
        if (i % 20 == 0)
            usleep(1000); /* let the ICMP errors arrive */
    }
    rf_sink_stats st;
    rf_sink_stats_read(s, &st);
    assert_true(st.connect_failures + st.disconnects > 0);
    assert_true(st.connects >= 1);
    rf_sink_free(s);
}

static void test_tcp_reconnect_backoff_breaker(void **state)
{
    (void)state;
    uint16_t port = 0;
    int lfd = listen_on(SOCK_STREAM, &port);
    rf_sink_config cfg = {.name = "tcp",
                          .type = RF_SINK_LP_TCP,
                          .host = "127.0.0.1",
                          .port = port,
                          .buffer_bytes = 4096,
                          .backoff_base_ns = 10 * RF_NS_PER_MS,
                          .backoff_max_ns = RF_NS_PER_S,
                          .breaker_failures = 3,
                          .breaker_cooldown_ns = 5 * RF_NS_PER_S,
                          .jitter_seed = 42};
    rf_sink *s;
    rf_err err;
    assert_int_equal(rf_sink_new(&cfg, &namer, &s, &err), 0);
    int64_t now = 1000 * RF_NS_PER_S; /* fake monotonic time drives backoff */

    rf_event evs[2] = {ev_f64(1, 1, 10), ev_f64(2, 2, 20)};
    rf_sink_write(s, evs, 2);
    flush_quick(s, now);
    int cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    for (int i = 0; i < 10 && rf_sink_pending(s); i++)
        flush_quick(s, now);
    char buf[8192];
    const char *want = "cpu,host=a usage=1 10\nmem,host=b free=2 20\n";
    assert_int_equal(read_upto(cfd, buf, strlen(want)), strlen(want));
    assert_string_equal(buf, want);
    rf_sink_stats st;
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.state, RF_SINK_CONNECTED);
    assert_int_equal(st.connects, 1);

    /* Kill the listener and the connection. */
    close(cfd);
    close(lfd);
    rf_sink_write(s, evs, 1);
    flush_quick(s, now); /* sees EOF: disconnected, backoff scheduled */
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.disconnects, 1);
    assert_int_equal(st.state, RF_SINK_DISCONNECTED);
    assert_true(st.next_attempt_ns >= now && st.next_attempt_ns <= now + 10 * RF_NS_PER_MS);

    /* Attempts are refused; each delay stays within the full-jitter ceiling. */
    int64_t ceiling = 20 * RF_NS_PER_MS;
    for (int i = 0; i < 10; i++) {
        rf_sink_stats_read(s, &st);
        if (st.state == RF_SINK_BREAKER_OPEN)
            break;
        now = st.next_attempt_ns;
        flush_quick(s, now);
        flush_quick(s, now); /* completes an asynchronous refusal, if any */
        rf_sink_stats_read(s, &st);
        if (st.state == RF_SINK_DISCONNECTED)
            assert_true(st.next_attempt_ns - now <= ceiling);
        ceiling *= 2;
    }
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.state, RF_SINK_BREAKER_OPEN);
    assert_int_equal(st.breaker_opens, 1);
    assert_true(st.connect_failures >= 2);

    /* While open: events are dropped as disconnected, fast, nothing blocks. */
    int64_t t0 = rf_clock_mono_ns();
    for (int i = 0; i < 1000; i++) {
        rf_sink_write(s, evs, 2);
        rf_sink_flush(s, now + 1);
    }
    assert_true(rf_clock_mono_ns() - t0 < 200 * RF_NS_PER_MS);
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.drop_disconnected, 2000);
    uint32_t queued = st.queued_bytes;
    assert_true(queued > 0); /* the line written before the breaker opened */

    /* Half-open probe after the cool-down fails: open again. */
    now += 5 * RF_NS_PER_S;
    flush_quick(s, now);
    flush_quick(s, now);
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.state, RF_SINK_BREAKER_OPEN);

    /* The listener comes back: the next probe connects and the queue drains. */
    uint16_t p2 = port;
    lfd = listen_on(SOCK_STREAM, &p2);
    assert_int_equal(p2, port);
    now += 5 * RF_NS_PER_S;
    flush_quick(s, now);
    cfd = accept(lfd, NULL, NULL);
    assert_true(cfd >= 0);
    for (int i = 0; i < 10 && rf_sink_pending(s); i++)
        flush_quick(s, now);
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.state, RF_SINK_CONNECTED);
    assert_int_equal(st.connects, 2);
    want = "cpu,host=a usage=1 10\n";
    assert_int_equal(read_upto(cfd, buf, strlen(want)), strlen(want));
    assert_string_equal(buf, want);

    /* Queue bound: a stalled reader (we never read) fills the kernel buffers
     * and then the 4 KiB queue; the overflow is counted as queue_full. */
    for (int i = 0; i < 20000; i++) {
        rf_sink_write(s, evs, 2);
        if (i % 100 == 0)
            flush_quick(s, now);
    }
    rf_sink_stats_read(s, &st);
    assert_true(st.drop_queue_full > 0);
    assert_true(st.queued_bytes <= 4096);
    rf_sink_free(s);
    close(cfd);
    close(lfd);
}

static void test_count_only(void **state)
{
    (void)state;
    rf_sink_config cfg = {.name = "store", .type = RF_SINK_COUNT_ONLY};
    rf_sink *s;
    assert_int_equal(rf_sink_new(&cfg, NULL, &s, NULL), 0);
    rf_event evs[3] = {ev_f64(1, 1, 1), ev_f64(1, 1, 1), ev_f64(1, 1, 1)};
    evs[2].kind = RF_KIND_ALERT;
    evs[2].priority = RF_PRIO_CRITICAL;
    assert_int_equal(rf_sink_write(s, evs, 3), 3);
    rf_sink_stats st;
    rf_sink_stats_read(s, &st);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(st.by_kind[RF_KIND_GAUGE], 2);
    assert_int_equal(st.by_kind[RF_KIND_ALERT], 1);
    assert_int_equal(st.critical, 1);
    assert_int_equal(st.would_store_bytes, 3 * 64);
    assert_int_equal(rf_sink_type_parse("count_only"), RF_SINK_COUNT_ONLY);
    assert_int_equal(rf_sink_type_parse("nope"), -1);
    rf_sink_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_json),
        cmocka_unit_test(test_format_lp),
        cmocka_unit_test(test_format_lp_doubles),
        cmocka_unit_test(test_format_strings),
        cmocka_unit_test(test_json_file_per_batch),
        cmocka_unit_test(test_udp_exact_lines),
        cmocka_unit_test(test_tcp_reconnect_backoff_breaker),
        cmocka_unit_test(test_udp_no_listener),
        cmocka_unit_test(test_count_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
