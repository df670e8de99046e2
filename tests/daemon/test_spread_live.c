/* One client over every core (ingest/spread), in process so that ASan and
 * TSan see every thread: one TCP client streams line protocol into a
 * 2-worker engine whose every event goes to an lp_tcp sink this test
 * listens on.
 *
 *   - every point arrives exactly once with its exact value (compared as
 *     doubles, value by value) while runs were handed to the other worker;
 *   - both workers parsed: the receiving worker handed runs (spread_handed)
 *     and the other took them (spread_taken), and both produced events;
 *   - lines rejected wherever they were parsed are counted, and the reject
 *     log names the client's address;
 *   - per series, the points are in time order except across runs parsed at
 *     once on two workers (docs/ARCHITECTURE.md, "One client over every
 *     core"): the inversions seen are printed, and each must be between
 *     points at most RF_SPREAD_REORDER_LINES lines apart in the stream: one
 *     listener poll of the receiver (256 reads of 16 KiB) and a peer's
 *     buffers (8 runs). The stream here (2 MB) is smaller than that bound,
 *     so this part only catches a point lost far back or a duplicate; the
 *     exact check is with the hand-off off;
 *   - with `ingest.spread.enabled: false` nothing is handed and the order is
 *     exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "daemon/engine.h"
#include "daemon/settings.h"
#include "daemon/worker_shard.h"
#include "ingest/protocol/protocol.h"
#include "daemon_proc.h"
#include "engine_inproc.h"

#define HOSTS 100
#define TIMES 300
#define FIELDS 4
#define POINTS (HOSTS * TIMES * FIELDS)
#define BAD_LINES 3
/* The documented window in lines of this stream (about 70 bytes each). */
#define RF_SPREAD_REORDER_LINES ((256 + 8) * 16384 / 70)

typedef struct sink_server {
    int listen_fd;
    char *buf;
    size_t len, cap;
    uint64_t lines, want;
    int64_t deadline_ns;
} sink_server;

static void *sink_thread(void *arg)
{
    sink_server *s = arg;
    struct pollfd pfd[9];
    int n = 1;
    pfd[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
    /* One connection per worker's sink; each ends its lines with '\n', so
     * lines of different connections are kept apart by per-connection
     * staging (a partial line waits in `part`). */
    static char part[8][4096];
    size_t part_len[8] = {0};
    char rd[65536];
    while (s->lines < s->want && rf_clock_mono_ns() < s->deadline_ns) {
        if (poll(pfd, (nfds_t)n, 100) <= 0)
            continue;
        if ((pfd[0].revents & POLLIN) && n < 9) {
            int c = accept(s->listen_fd, NULL, NULL);
            if (c >= 0)
                pfd[n++] = (struct pollfd){.fd = c, .events = POLLIN};
        }
        for (int i = 1; i < n; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t got = read(pfd[i].fd, rd, sizeof(rd));
            if (got <= 0)
                continue;
            for (ssize_t k = 0; k < got; k++) {
                char ch = rd[k];
                if (part_len[i - 1] < sizeof(part[0]))
                    part[i - 1][part_len[i - 1]++] = ch;
                if (ch != '\n')
                    continue;
                if (s->len + part_len[i - 1] > s->cap) {
                    s->cap = 2 * (s->cap + part_len[i - 1]);
                    s->buf = realloc(s->buf, s->cap);
                }
                memcpy(s->buf + s->len, part[i - 1], part_len[i - 1]);
                s->len += part_len[i - 1];
                part_len[i - 1] = 0;
                s->lines++;
            }
        }
    }
    for (int i = 1; i < n; i++)
        close(pfd[i].fd);
    return NULL;
}

static int tcp_listen(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

/* The value of field f of host h at time t: a 2-decimal walk, unique. */
static void value_text(int h, int t, int f, char *out, size_t cap)
{
    long cents = 10000 + (long)h * 37 + (long)t * 13 + (long)f * 101 + ((t * 7 + h) % 17);
    snprintf(out, cap, "%ld.%02ld", cents / 100, cents % 100);
}

static const int64_t base_s = 1700000000;

/* The stream: host-major within each timestamp (as TSBS sends), with
 * BAD_LINES lines that have no field spread through it. */
static char *make_stream(size_t *len)
{
    size_t cap = (size_t)HOSTS * TIMES * 96 + 4096, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    int bad = 0;
    for (int t = 0; t < TIMES; t++)
        for (int h = 0; h < HOSTS; h++) {
            if (bad < BAD_LINES && h == 50 && t % 100 == 50) {
                n += (size_t)snprintf(s + n, cap - n, "cpu,host=bad%d\n", bad);
                bad++;
            }
            n += (size_t)snprintf(s + n, cap - n, "cpu,host=h%d ", h);
            for (int f = 0; f < FIELDS; f++) {
                char v[32];
                value_text(h, t, f, v, sizeof(v));
                n += (size_t)snprintf(s + n, cap - n, "%sf%d=%s", f ? "," : "", f, v);
            }
            n += (size_t)snprintf(s + n, cap - n, " %lld000000000\n", (long long)(base_s + 10 * t));
        }
    assert_int_equal(bad, BAD_LINES);
    *len = n;
    return s;
}

static rf_engine_worker_stats wstats(rf_engine *e, uint32_t w)
{
    rf_engine_worker_stats st;
    rf_engine_worker_stats_read(e, w, &st);
    return st;
}

static void run(bool spread)
{
    tproc_dir_init(spread ? "rf-test-spread-on" : "rf-test-spread-off");
    const int port = tproc_port_base() + (spread ? 30 : 32), sink_port = port + 1;
    sink_server srv = {.listen_fd = tcp_listen(sink_port), .want = POINTS};
    srv.deadline_ns = rf_clock_mono_ns() + 30 * RF_NS_PER_S;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sink_thread, &srv), 0);

    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, pin_workers: false, run_dir: %s/run, data_dir: %s}\n"
             "listeners:\n"
             "  - {name: lp, transport: tcp, protocol: influx_line, port: %d}\n"
             "ingest: {timestamp_past: 0s, spread: {enabled: %s}}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  max_series: 4096\n"
             "  sinks:\n"
             "    - {name: out, type: lp_tcp, host: 127.0.0.1, port: %d, buffer: 64MiB}\n"
             "  routes:\n"
             "    - {name: all, subject: \"telemetry.>\", sinks: [out]}\n",
             tproc_dir(), tproc_dir(), port, spread ? "true" : "false", sink_port);
    rf_settings s;
    rf_engine *e = engine_inproc_start(cfg, &s);

    size_t len = 0;
    char *stream = make_stream(&len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof(to)), 0);
    struct sockaddr_in me;
    socklen_t me_len = sizeof(me);
    assert_int_equal(getsockname(c, (struct sockaddr *)&me, &me_len), 0);
    char client[64];
    snprintf(client, sizeof(client), "127.0.0.1:%u", (unsigned)ntohs(me.sin_port));
    for (size_t off = 0; off < len;) {
        ssize_t w = write(c, stream + off, len - off < 65536 ? len - off : 65536);
        assert_true(w > 0);
        off += (size_t)w;
    }
    close(c);
    assert_int_equal(pthread_join(th, NULL), 0);
    close(srv.listen_fd);

    /* Counters while the engine still runs. */
    rf_engine_worker_stats w0 = wstats(e, 0), w1 = wstats(e, 1);
    const uint64_t handed = w0.spread_handed_chunks + w1.spread_handed_chunks;
    const uint64_t taken = w0.spread_taken_chunks + w1.spread_taken_chunks;
    print_message("spread %s: handed %lu (%lu B), local %lu, taken %lu, no_buffer %lu; "
                  "events parsed %lu / %lu\n",
                  spread ? "on" : "off", (unsigned long)handed,
                  (unsigned long)(w0.spread_handed_bytes + w1.spread_handed_bytes),
                  (unsigned long)(w0.spread_local_chunks + w1.spread_local_chunks),
                  (unsigned long)taken, (unsigned long)(w0.spread_no_buffer + w1.spread_no_buffer),
                  (unsigned long)w0.events_parsed, (unsigned long)w1.events_parsed);
    assert_int_equal(handed, taken);
    if (spread) {
        assert_true(handed > 0);
        /* Both parsed: the receiver and the one it handed runs to. */
        assert_true(w0.events_parsed > 0 && w1.events_parsed > 0);
        assert_true((w0.spread_handed_chunks > 0 && w1.spread_taken_chunks > 0) ||
                    (w1.spread_handed_chunks > 0 && w0.spread_taken_chunks > 0));
    } else {
        assert_int_equal(handed, 0);
        assert_int_equal(w0.spread_local_chunks + w1.spread_local_chunks, 0);
    }
    /* Rejects: counted wherever parsed, each naming the client. */
    uint64_t rejected = 0, named = 0;
    for (uint32_t w = 0; w < 2; w++) {
        const rf_shard *sh = rf_engine_shard(e, w);
        for (uint32_t i = 0; i < rf_shard_input_count(sh); i++) {
            const rf_parse_ctx *p = rf_shard_input_parser(sh, i);
            if (!p)
                continue;
            rejected += rf_parse_counter(p, RF_PC_LINES_REJECTED);
            rf_reject_entry log[16];
            size_t nlog = rf_parse_reject_log_read(p, log, 16);
            for (size_t k = 0; k < nlog; k++) {
                assert_string_equal(log[k].source, client);
                named++;
            }
        }
    }
    assert_int_equal(rejected, BAD_LINES);
    assert_int_equal(named, BAD_LINES);
    rf_engine_stop(e);

    /* Every point once, its exact value; the order per series. */
    assert_int_equal(srv.lines, POINTS);
    static uint8_t seen[HOSTS][TIMES][FIELDS];
    static int last_t[HOSTS][FIELDS];
    static uint32_t last_line[HOSTS][FIELDS];
    memset(seen, 0, sizeof(seen));
    for (int h = 0; h < HOSTS; h++)
        for (int f = 0; f < FIELDS; f++)
            last_t[h][f] = -1;
    uint64_t inversions = 0;
    uint32_t widest = 0;
    char *p = srv.buf, *end = srv.buf + srv.len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        *nl = '\0';
        int h = -1, f = -1;
        long long ts = 0;
        char val[64];
        if (sscanf(p, "cpu,host=h%d f%d=%63[^ ] %lld", &h, &f, val, &ts) != 4)
            fail_msg("unexpected sink line: %s", p);
        assert_true(h >= 0 && h < HOSTS && f >= 0 && f < FIELDS);
        const long long t_ll = (ts / 1000000000ll - base_s) / 10;
        assert_true(t_ll >= 0 && t_ll < TIMES);
        const int t = (int)t_ll;
        char want[32];
        value_text(h, t, f, want, sizeof(want));
        if (strtod(val, NULL) != strtod(want, NULL))
            fail_msg("host %d field %d time %d: %s, sent %s", h, f, t, val, want);
        assert_int_equal(seen[h][t][f], 0);
        seen[h][t][f] = 1;
        /* The line's place in the stream (bad lines aside). */
        const uint32_t line = (uint32_t)(t * HOSTS + h);
        if (t < last_t[h][f]) {
            inversions++;
            uint32_t gap = last_line[h][f] - line;
            widest = gap > widest ? gap : widest;
        } else {
            last_t[h][f] = t;
            last_line[h][f] = line;
        }
        p = nl + 1;
    }
    print_message("spread %s: %lu points out of time order per series, widest %u lines\n",
                  spread ? "on" : "off", (unsigned long)inversions, widest);
    if (!spread)
        assert_int_equal(inversions, 0);
    assert_true(widest <= RF_SPREAD_REORDER_LINES);
    free(srv.buf);
    free(stream);
    rf_settings_release(&s);
}

static void test_spread_on(void **state)
{
    (void)state;
    run(true);
}

static void test_spread_off(void **state)
{
    (void)state;
    run(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_on),
        cmocka_unit_test(test_spread_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
