/* HTTP writes with sync=true (docs/RELIABILITY.md, "What an HTTP 2xx
 * promises"): a 2xx means the request's points are in blocks fdatasync'ed
 * to the store. Checked the hard way: writes to a daemon whose blocks would
 * otherwise stay in memory for ten minutes (block_max_age) across both
 * workers' shards, SIGKILL right after the last answer, and every point is
 * read back from the store the dead daemon left (and again after a restart
 * and a clean stop). The same writes without sync lose their points to the
 * same kill: the check can fail, and does when the barrier is skipped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

#define REQUESTS 24
#define LINES 40 /* per request: 40 new series, spread over both workers' shards */
#define CONNS 4  /* each sends its requests pipelined in pairs */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* One request's text: LINES points of measurement m, request k, each of a
 * series of its own (a series' older point arriving late, as concurrent
 * connections would make it, cuts its block early and would hide the
 * difference sync makes). */
static size_t request_of(char *out, size_t cap, const char *target, const char *m, int k,
                         long long t0)
{
    char body[LINES * 64];
    size_t bl = 0;
    for (int i = 0; i < LINES; i++)
        bl += (size_t)snprintf(body + bl, sizeof(body) - bl, "%s,s=%d v=%d %lld\n", m,
                               k * LINES + i, i, t0);
    return (size_t)snprintf(
        out, cap, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s", target, bl, body);
}

/* Reads n answers (204s have no body): the count of "HTTP/1.1 204". */
static int read_answers(int fd, int n, char *last, size_t cap)
{
    char buf[8192];
    size_t len = 0;
    int seen = 0, ok = 0;
    while (seen < n) {
        ssize_t got = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
        buf[len] = '\0';
        char *p = buf, *end;
        while ((end = strstr(p, "\r\n\r\n"))) {
            seen++;
            ok += !strncmp(p, "HTTP/1.1 204", 12);
            snprintf(last, cap, "%.*s", (int)(end - p), p);
            p = end + 4;
        }
        len -= (size_t)(p - buf);
        memmove(buf, p, len);
    }
    return ok;
}

/* Writes REQUESTS requests over CONNS connections, two pipelined at a time
 * per connection and all connections at once; returns the 204s. */
static int write_all(int port, const char *target, const char *m, long long t0)
{
    int fds[CONNS], ok = 0;
    char last[512] = "";
    for (int c = 0; c < CONNS; c++)
        fds[c] = connect_to(port);
    for (int k = 0; k < REQUESTS; k += 2 * CONNS) {
        for (int c = 0; c < CONNS; c++) {
            char req[2][LINES * 64 + 256];
            size_t l0 = request_of(req[0], sizeof(req[0]), target, m, k + 2 * c, t0);
            size_t l1 = request_of(req[1], sizeof(req[1]), target, m, k + 2 * c + 1, t0);
            assert_true(rel_send_all(fds[c], req[0], l0));
            assert_true(rel_send_all(fds[c], req[1], l1));
        }
        for (int c = 0; c < CONNS; c++)
            ok += read_answers(fds[c], 2, last, sizeof(last));
    }
    for (int c = 0; c < CONNS; c++)
        close(fds[c]);
    if (ok != REQUESTS)
        fprintf(stderr, "%d of %d answered 204; last answer:\n%s\n", ok, REQUESTS, last);
    return ok;
}

static const char *config(int port)
{
    static char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: true, listen: \"127.0.0.1:%d\"}}\n"
             "storage: {block_max_age: 10m, durability: interval, sync_interval: 10s}\n",
             port, port + 1);
    return cfg;
}

/* The sum over workers of a /metrics counter's samples whose labels hold
 * `label` (e.g. outcome="durable"). */
static uint64_t metric_sum(int port, const char *name, const char *label)
{
    static char body[1 << 20];
    assert_int_equal(rel_http_get(port, "/metrics", body, sizeof(body)), 200);
    uint64_t sum = 0;
    const size_t n = strlen(name);
    for (const char *p = body; (p = strstr(p, name)) != NULL; p += n) {
        const char *end = strchr(p, '}');
        if ((p != body && p[-1] != '\n') || p[n] != '{' || !end)
            continue;
        const char *l = strstr(p, label);
        if (l && l < end)
            sum += strtoull(end + 1, NULL, 10);
    }
    return sum;
}

static void test_sync_survives_sigkill(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-http-sync");
    const int port = tproc_port_base() + 2;
    proc d;
    assert_true(rel_start_config(&d, "sync.yaml", config(port), 15000));
    const long long t0 = (long long)(rel_now_ns() / 1000000000LL) - 600;

    /* A bad value is refused before anything is taken. */
    int fd = connect_to(port);
    char req[LINES * 64 + 256], last[512];
    size_t l = request_of(req, sizeof(req), "/write?db=x&precision=s&sync=maybe", "bad", 0, t0);
    assert_true(rel_send_all(fd, req, l));
    assert_int_equal(read_answers(fd, 1, last, sizeof(last)), 0);
    assert_non_null(strstr(last, "HTTP/1.1 400"));
    close(fd);

    /* With sync, on the v1 and v2 endpoints. */
    assert_int_equal(write_all(port, "/write?db=x&precision=s&sync=true", "synced", t0), REQUESTS);
    assert_int_equal(write_all(port, "/api/v2/write?bucket=x&precision=s&sync=1", "synced2", t0),
                     REQUESTS);
    /* Without sync (last: a barrier cuts every buffered series, so it
     * would cover these too): 204 as soon as the points are in the engine;
     * they sit in the series buffers, and the kill takes them. */
    assert_int_equal(write_all(port, "/write?db=x&precision=s", "nosync", t0), REQUESTS);
    /* Every sync request was answered durable, none timed out or failed. */
    assert_int_equal(
        metric_sum(port + 1, "ringflow_worker_sync_answers_total", "outcome=\"durable\""),
        2 * REQUESTS);
    assert_int_equal(metric_sum(port + 1, "ringflow_worker_sync_answers_total", "outcome=\"t"), 0);
    assert_true(metric_sum(port + 1, "ringflow_worker_sync_rounds_total", "worker=") > 0);
    kill(d.pid, SIGKILL);
    assert_int_equal(tproc_wait_exit(&d, 10000), 128 + SIGKILL);

    const uint64_t want = (uint64_t)REQUESTS * LINES;
    uint64_t synced = rel_store_count("synced"), synced2 = rel_store_count("synced2");
    uint64_t nosync = rel_store_count("nosync");
    fprintf(stderr, "after SIGKILL: synced %lu, synced2 %lu of %lu; without sync %lu\n",
            (unsigned long)synced, (unsigned long)synced2, (unsigned long)want,
            (unsigned long)nosync);
    assert_int_equal(synced, want);
    assert_int_equal(synced2, want);
    /* What the same check finds without the barrier: points lost. */
    assert_true(nosync < want);

    /* Recovery keeps them: restart, clean stop, count again. */
    assert_true(rel_start_config(&d, "sync.yaml", config(port), 15000));
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
    assert_int_equal(rel_store_count("synced"), want);
    assert_int_equal(rel_store_count("synced2"), want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sync_survives_sigkill, rel_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
