/* HTTP ingest in the real daemon: an `http` listener on a port of its own,
 * driven over loopback with raw HTTP/1.1 (pipelined keep-alive requests, a
 * gzip body, a partial write, Prometheus remote_write), then the daemon
 * stops and `ringflow query` must return every accepted point exactly, and
 * none of the refused ones. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "daemon_proc.h"

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

/* Reads until the server closes (the last request said Connection: close). */
static char *read_to_eof(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)n;
    assert_true(n == 0); /* a clean end, not a timeout or a reset */
    buf[len] = '\0';
    return buf;
}

static size_t gzip_of(const char *in, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)strlen(in);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    size_t n = z.total_out;
    deflateEnd(&z);
    return n;
}

/* Protobuf by hand (the test must not share the daemon's generated code):
 * WriteRequest{timeseries: [{labels: [__name__=rw_temp, room=r1], samples}]} */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static size_t put_ld(uint8_t *p, int field, const uint8_t *b, size_t len)
{
    size_t n = 0;
    p[n++] = (uint8_t)(field << 3 | 2);
    n += put_varint(p + n, len);
    memmove(p + n, b, len);
    return n + len;
}

static size_t put_label(uint8_t *p, const char *name, const char *value)
{
    uint8_t inner[128];
    size_t n = put_ld(inner, 1, (const uint8_t *)name, strlen(name));
    n += put_ld(inner + n, 2, (const uint8_t *)value, strlen(value));
    return put_ld(p, 1, inner, n);
}

static size_t put_sample(uint8_t *p, double v, int64_t ms)
{
    uint8_t inner[32];
    size_t n = 0;
    inner[n++] = 0x09; /* field 1, fixed64 */
    memcpy(inner + n, &v, 8);
    n += 8;
    inner[n++] = 0x10; /* field 2, varint */
    n += put_varint(inner + n, (uint64_t)ms);
    return put_ld(p, 2, inner, n);
}

#define RW_SAMPLES 5

static size_t remote_write_body(char *out, size_t cap, int64_t ms0)
{
    uint8_t ts[1024], wr[1100];
    size_t n = put_label(ts, "__name__", "rw_temp");
    n += put_label(ts + n, "room", "r1");
    for (int i = 0; i < RW_SAMPLES; i++)
        n += put_sample(ts + n, 20.25 + i, ms0 + i * 1000);
    size_t wl = put_ld(wr, 1, ts, n);
    size_t cl = cap;
    assert_int_equal(snappy_compress((const char *)wr, wl, out, &cl), SNAPPY_OK);
    return cl;
}

static char *post_once(int port, const char *target, const char *body, size_t len);

/* ExportMetricsServiceRequest by hand: resource service.name=svc, gauge
 * otel_temp with one double point at t_ns. */
static size_t otlp_body(uint8_t *out, int64_t t_ns, double v)
{
    uint8_t kv[64], any[32], res[80], dp[64], gauge[80], metric[128], sm[160], rm[256];
    size_t n = put_ld(any, 1, (const uint8_t *)"svc", 3);
    size_t k = put_ld(kv, 1, (const uint8_t *)"service.name", 12);
    k += put_ld(kv + k, 2, any, n);
    size_t r = put_ld(res, 1, kv, k);
    size_t d = 0;
    dp[d++] = 0x19; /* time_unix_nano, fixed64 */
    memcpy(dp + d, &t_ns, 8);
    d += 8;
    dp[d++] = 0x21; /* as_double */
    memcpy(dp + d, &v, 8);
    d += 8;
    size_t g = put_ld(gauge, 1, dp, d);
    size_t m = put_ld(metric, 1, (const uint8_t *)"otel_temp", 9);
    m += put_ld(metric + m, 5, gauge, g);
    size_t s = put_ld(sm, 2, metric, m);
    size_t x = put_ld(rm, 1, res, r);
    x += put_ld(rm + x, 2, sm, s);
    return put_ld(out, 1, rm, x);
}

static char *query(const char *args)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd %s && %s query --dir ./data/store %s 2>&1", tproc_dir(), cli,
             args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    size_t n;
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_http_live(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-http-live");
    int port = tproc_port_base() + 3;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: true, listen: 127.0.0.1:%d}}\n",
             port, port + 1);
    tproc_write_file("http.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "http.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));

    int status = 0;
    char *out = NULL;
    char *body = tproc_http_get(port, "/ping", &status);
    assert_int_equal(status, 204);
    free(body);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t0 = (int64_t)now.tv_sec - 3600; /* seconds; inside the retention */

    /* One connection, three pipelined requests: a partial write (line 3 is
     * refused, the others kept), a gzip body, remote_write; the last asks to
     * close. */
    char plain[512];
    int pl = snprintf(plain, sizeof(plain),
                      "lab,room=a t=21.5 %lld\nlab,room=a t=22.5 %lld\nlab,room=a t=oops %lld\n"
                      "lab,room=b t=-3.25 %lld\n",
                      (long long)t0, (long long)t0 + 10, (long long)t0 + 20, (long long)t0);
    char zsrc[256];
    snprintf(zsrc, sizeof(zsrc), "lab,room=z t=99.125 %lld\n", (long long)t0);
    uint8_t gz[512];
    size_t gl = gzip_of(zsrc, gz, sizeof(gz));
    char rw[2048];
    size_t rwl = remote_write_body(rw, sizeof(rw), t0 * 1000);

    char req[8192];
    size_t rl = 0;
    rl += (size_t)snprintf(req + rl, sizeof(req) - rl,
                           "POST /write?db=site1&precision=s HTTP/1.1\r\nHost: t\r\n"
                           "Content-Length: %d\r\n\r\n%s",
                           pl, plain);
    rl += (size_t)snprintf(req + rl, sizeof(req) - rl,
                           "POST /api/v2/write?org=o&bucket=site2&precision=s HTTP/1.1\r\n"
                           "Host: t\r\nAuthorization: Token x\r\nContent-Encoding: gzip\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           gl);
    memcpy(req + rl, gz, gl);
    rl += gl;
    rl += (size_t)snprintf(req + rl, sizeof(req) - rl,
                           "POST /api/v1/write HTTP/1.1\r\nHost: t\r\nContent-Encoding: snappy\r\n"
                           "Content-Type: application/x-protobuf\r\nConnection: close\r\n"
                           "Content-Length: %zu\r\n\r\n",
                           rwl);
    memcpy(req + rl, rw, rwl);
    rl += rwl;
    int fd = connect_to(port);
    /* In two pieces cut inside the gzip body: framing across reads. */
    size_t cut = rl / 2;
    send_all(fd, req, cut);
    usleep(50 * 1000);
    send_all(fd, req + cut, rl - cut);
    char *resp = read_to_eof(fd);
    close(fd);
    if (count_of(resp, "HTTP/1.1 ") != 3)
        fail_msg("want 3 answers, got:\n%s", resp);
    const char *a1 = strstr(resp, "HTTP/1.1 ");
    assert_true(!strncmp(a1, "HTTP/1.1 400", 12));
    assert_non_null(strstr(resp, "partial write: unable to parse 'lab,room=a t=oops"));
    assert_non_null(strstr(resp, "dropped=1"));
    const char *a2 = strstr(a1 + 1, "HTTP/1.1 ");
    assert_true(!strncmp(a2, "HTTP/1.1 204", 12));
    const char *a3 = strstr(a2 + 1, "HTTP/1.1 ");
    if (strncmp(a3, "HTTP/1.1 204", 12))
        fail_msg("remote_write answer: %s", a3);
    free(resp);

    /* The counters name the requests by endpoint and status, on the stats
     * socket and on /metrics. The /ping and the three requests may have
     * gone to either worker: the sums are checked. */
    char *stat = tproc_ask("show listeners");
    assert_non_null(stat);
    if (!strstr(stat, "http_requests") || !strstr(stat, "influx_write") ||
        !strstr(stat, "prom_write") || !strstr(stat, "remote_write_samples=5"))
        fail_msg("show listeners:\n%s", stat);
    free(stat);
    char *metrics = tproc_http_get(port + 1, "/metrics", &status);
    assert_int_equal(status, 200);
    assert_non_null(metrics);
    static const char *const want_series[] = {
        "endpoint=\"influx_write\",status=\"400\"} 1",
        "endpoint=\"influx_v2_write\",status=\"204\"} 1",
        "endpoint=\"prom_write\",status=\"204\"} 1",
        "endpoint=\"ping\",status=\"204\"} 1",
    };
    for (size_t k = 0; k < sizeof(want_series) / sizeof(want_series[0]); k++)
        if (!strstr(metrics, want_series[k]))
            fail_msg("/metrics lacks %s", want_series[k]);
    assert_non_null(strstr(metrics, "ringflow_http_rejects"));
    assert_non_null(strstr(metrics, "ringflow_remote_write_samples"));
    free(metrics);

    /* OTLP/HTTP (protobuf): 200 with an empty ExportMetricsServiceResponse. */
    uint8_t ob[512];
    size_t obl = otlp_body(ob, t0 * 1000000000LL + 7, 36.625);
    char *oa = post_once(port, "/v1/metrics", (const char *)ob, obl);
    if (strncmp(oa, "HTTP/1.1 200", 12) || !strstr(oa, "Content-Length: 0\r\n"))
        fail_msg("OTLP answer: %s", oa);
    free(oa);

    usleep(300 * 1000);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);

    out = query("otel_temp --field value --where service.name=svc --format csv");
    char ow[64];
    snprintf(ow, sizeof(ow), "%lld,", (long long)(t0 * 1000000000LL + 7));
    if (!strstr(out, ow) || !strstr(out, ",36.625"))
        fail_msg("OTLP point:\n%s", out);
    free(out);

    /* Exactly the accepted points, with db/bucket as the tag db. */
    out = query("lab --field t --where db=site1 --where room=a --format csv");
    char want[64];
    snprintf(want, sizeof(want), "%lld000000000", (long long)t0);
    if (!strstr(out, want) || !strstr(out, ",21.5") || !strstr(out, ",22.5") ||
        strstr(out, "oops") || count_of(out, "\n") != 3)
        fail_msg("site1 room a:\n%s", out);
    free(out);
    out = query("lab --field t --where db=site1 --where room=b --format csv");
    if (!strstr(out, ",-3.25"))
        fail_msg("site1 room b:\n%s", out);
    free(out);
    out = query("lab --field t --where db=site2 --format csv");
    if (!strstr(out, ",99.125") || count_of(out, "\n") != 2)
        fail_msg("site2 (gzip, v2):\n%s", out);
    free(out);
    out = query("rw_temp --field value --where room=r1 --format csv");
    for (int i = 0; i < RW_SAMPLES; i++) {
        char v[32], t[32];
        snprintf(v, sizeof(v), ",%g", 20.25 + i);
        snprintf(t, sizeof(t), "%lld", (long long)(t0 + i) * 1000000000LL);
        if (!strstr(out, v) || !strstr(out, t))
            fail_msg("remote_write sample %d (%s at %s) missing:\n%s", i, v, t, out);
    }
    free(out);
}

/* Sends one request on a new connection; returns the answer (until close). */
static char *post_once(int port, const char *target, const char *body, size_t len)
{
    int fd = connect_to(port);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                     "Content-Type: application/x-protobuf\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     target, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
    char *r = read_to_eof(fd);
    close(fd);
    return r;
}

/* A worker whose rings dropped points (64 slots, drop_newest, one body of
 * 4,000 series) answers the next write 503 with Retry-After, so the client
 * retries instead of being told its points were taken; a second later it
 * takes writes again. */
static void test_http_busy_503(void **state)
{
    (void)state;
    int port = tproc_port_base() + 6;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}, ring: {capacity: 64, full_policy: "
             "drop_newest}}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port);
    tproc_write_file("busy.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "busy.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    size_t cap = 4000 * 40, len = 0;
    char *big = malloc(cap);
    for (int i = 0; i < 4000; i++)
        len += (size_t)snprintf(big + len, cap - len, "flood,s=%d v=%d\n", i, i);
    /* The first write fills the rings: whatever its answer, points were dropped. */
    char *r = post_once(port, "/write?db=x", big, len);
    free(r);
    /* One keep-alive connection, so the same worker answers. */
    int fd = connect_to(port);
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "POST /write?db=x HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", len);
    bool saw_503 = false;
    for (int k = 0; k < 3 && !saw_503; k++) {
        send_all(fd, head, (size_t)n);
        send_all(fd, big, len);
        char buf[4096];
        ssize_t got = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(got > 12);
        buf[got] = '\0';
        saw_503 = !strncmp(buf, "HTTP/1.1 503", 12);
        if (saw_503)
            assert_non_null(strstr(buf, "Retry-After: 1\r\n"));
    }
    close(fd);
    assert_true(saw_503);
    /* After a quiet second, a small write is taken again. */
    sleep(2);
    r = post_once(port, "/write?db=x", "calm v=1\n", 9);
    if (strncmp(r, "HTTP/1.1 204", 12))
        fail_msg("after the storm: %s", r);
    free(r);
    free(big);
    char *stat = tproc_ask("show listeners");
    assert_non_null(stat);
    assert_non_null(strstr(stat, "busy="));
    free(stat);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
}

/* The engine out of room for series (pipeline.max_series, which
 * engine.memory_limit sizes when left to auto): once a shard refuses new
 * series at its table's limit, writes are answered 503 with Retry-After,
 * on InfluxDB's endpoint and OTLP's alike, although no ring dropped
 * anything (block policy); a second after the last new refusal, writes of
 * known series are taken again. */
static void test_http_series_limit_503(void **state)
{
    (void)state;
    int port = tproc_port_base() + 10;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}, ring: {full_policy: block}}\n"
             "pipeline: {max_series: 64}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port);
    tproc_write_file("limit.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "limit.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    /* A known series first, then new ones far past 2 x 64. */
    char *r = post_once(port, "/write?db=x", "known v=1\n", 10);
    if (strncmp(r, "HTTP/1.1 204", 12))
        fail_msg("the first write: %s", r);
    free(r);
    /* Each endpoint in turn: new series go in (whatever the answer), then
     * the probe, until it is answered 503. The refusals happen on the
     * series' owners a moment later, so a loaded machine may need a few
     * rounds; each round's new series keep the refusals fresh. */
    int next_series = 0;
    for (int probe = 0; probe < 2; probe++) {
        bool saw_503 = false;
        for (int k = 0; k < 40 && !saw_503; k++) {
            size_t cap = 200 * 40, len = 0;
            char *batch = malloc(cap);
            for (int i = 0; i < 200; i++, next_series++)
                len += (size_t)snprintf(batch + len, cap - len, "many,s=%d v=1\n", next_series);
            free(post_once(port, "/write?db=x", batch, len));
            free(batch);
            if (probe == 0) {
                uint8_t ob[256];
                size_t obl = otlp_body(ob, 0, 1.5);
                char req[512];
                int n = snprintf(req, sizeof(req),
                                 "POST /v1/metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                                 "Content-Type: application/x-protobuf\r\nContent-Length: "
                                 "%zu\r\n\r\n",
                                 obl);
                int fd = connect_to(port);
                send_all(fd, req, (size_t)n);
                send_all(fd, ob, obl);
                r = read_to_eof(fd);
                close(fd);
            } else {
                r = post_once(port, "/write?db=x", "known v=2\n", 10);
            }
            saw_503 = !strncmp(r, "HTTP/1.1 503", 12);
            if (saw_503 && !strstr(r, "Retry-After: 1\r\n"))
                fail_msg("503 without Retry-After: %s", r);
            if (!saw_503)
                usleep(25 * 1000);
            free(r);
        }
        if (!saw_503) {
            kill(d.pid, SIGKILL); /* the next test binds its own daemon */
            fail_msg("%s never answered 503", probe == 0 ? "/v1/metrics" : "/write");
        }
    }
    /* No new series now: once the owners have worked through what was
     * queued (under load that can take a few seconds) and a second has
     * passed, a known series is taken again. */
    bool taken = false;
    for (int k = 0; k < 20 && !taken; k++) {
        sleep(1);
        r = post_once(port, "/write?db=x", "known v=3\n", 10);
        taken = !strncmp(r, "HTTP/1.1 204", 12);
        free(r);
    }
    if (!taken) {
        kill(d.pid, SIGKILL); /* the next test binds its own daemon */
        fail_msg("writes were still refused 20 s after the last new series");
    }
    char *stat = tproc_ask("show series");
    assert_non_null(stat);
    assert_null(strstr(stat, "rejected_shard_limit=0"));
    free(stat);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
}

/* Hostile clients: 600 idle keep-alive connections against max_connections
 * 400 (the rest refused at accept), and slowloris clients that send half a
 * request header; with idle_timeout 1s every one is closed, the counters
 * say so, and a good request is still answered during and after. */
static void test_http_idle_and_slowloris(void **state)
{
    (void)state;
    int port = tproc_port_base() + 8;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d, max_connections: 200,"
             " max_connections_per_source: 0, idle_timeout: 1s}\n"
             "stats: {prometheus: {enabled: false}}\n",
             port);
    tproc_write_file("idle.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "idle.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
    enum {
        N = 600
    };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_to(port);
        if (i % 2) /* slowloris: a request that never ends */
            send_all(fds[i], "POST /write?db=x HTTP/1.1\r\nHost: t\r\nContent-Le", 46);
    }
    /* 200 per worker x 2 workers take connections; a good request still
     * gets through (on a worker with room, or after the timeout). */
    int status = 0;
    char *body = NULL;
    for (int k = 0; k < 30 && status != 204; k++) {
        free(body);
        body = tproc_http_get(port, "/ping", &status);
        if (status != 204)
            usleep(200 * 1000);
    }
    free(body);
    assert_int_equal(status, 204);
    /* After the idle timeout every held connection is closed by the server:
     * reading gives end of stream (or a reset for a refused one). */
    sleep(3);
    int closed = 0;
    for (int i = 0; i < N; i++) {
        char buf[256];
        struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t n;
        while ((n = recv(fds[i], buf, sizeof(buf), 0)) > 0)
            ;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            closed++;
        close(fds[i]);
    }
    assert_int_equal(closed, N);
    /* 600 connections, at most 2 x 200 held: the rest refused at accept. */
    char *stat = tproc_ask("show listeners json");
    assert_non_null(stat);
    unsigned long refused = 0;
    for (const char *p = stat; (p = strstr(p, "\"conn_refused\":")); p++)
        refused += strtoul(p + 15, NULL, 10);
    if (refused < N - 400)
        fail_msg("conn_refused %lu, want at least %d:\n%s", refused, N - 400, stat);
    free(stat);
    body = tproc_http_get(port, "/ping", &status);
    assert_int_equal(status, 204);
    free(body);
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 15000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_live),
        cmocka_unit_test(test_http_busy_503),
        cmocka_unit_test(test_http_series_limit_503),
        cmocka_unit_test(test_http_idle_and_slowloris),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
