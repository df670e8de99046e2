/* Correlation is the same whatever the number of workers (issue 23, items 2
 * and 3).
 *
 * A recording drives `ringflow replay --into DIR --workers N` (N = 1..4) and
 * a live ringflowd (1 to 4 workers, on ports of its own; with 2 or more a
 * reload that changes a pattern, then the stream again) with:
 *   - 100 hosts each sending `disk` then `cpuhot` (two series of one host,
 *     on different workers half the time): a sequence pattern keyed by host
 *     must give 100 groups;
 *   - 100 users whose `login` and `sudo` lines come in one datagram (the two
 *     events may reach the key's owner in either order): 100 groups;
 *   - 40 hosts with 3 error series each (a burst of 3 on the host): 40 groups;
 *   - 60 request ids, each on 4 series in three protocols (line protocol tag,
 *     DogStatsD tag, Graphite tag; `ingest.correlation.id_tag`): 60 id groups
 *     of 4 events, and the ids never become series.
 * The pattern groups are counted per pattern in the correlated JSON sink. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../daemon/daemon_proc.h"
#include "storage/recfile/recfile.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
#define HOSTS 100
#define USERS 100
#define BURST_HOSTS 40
#define IDS 60

static int64_t g_w0; /* recorded wall time at the start (10 min ago) */
static int g_port;

/* ---- helpers ---------------------------------------------------------------- */


static char *run_ok(const char *cmd)
{
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out); /* tproc_shell_ok printed what failed */
    return out;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    const size_t nl = strlen(needle);
    for (const char *p = text; (p = strstr(p, needle)); p += nl)
        n++;
    return n;
}

static long long json_num(const char *json, const char *key)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "\"%s\":", key);
    const char *p = strstr(json, needle);
    if (!p)
        fail_msg("no %s in %s", key, json);
    return strtoll(p + strlen(needle), NULL, 10);
}

/* The sum of a column over a JSON table's rows ("col":N each). */
static long long sum_col(const char *json, const char *col)
{
    char needle[128];
    snprintf(needle, sizeof(needle), "\"%s\":", col);
    long long sum = 0;
    for (const char *p = json; (p = strstr(p, needle)); p += strlen(needle))
        sum += strtoll(p + strlen(needle), NULL, 10);
    return sum;
}

static const char *ringflow(void)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    return cli;
}

/* ---- the stream ---------------------------------------------------------------- */

/* The payloads of the stream, in order: (protocol, text). */
typedef struct payload {
    uint8_t protocol; /* enum rf_rec_protocol */
    char *text;
} payload;

static payload g_pl[16];
static int g_npl;

static void add_payload(uint8_t protocol, const char *text)
{
    g_pl[g_npl].protocol = protocol;
    g_pl[g_npl].text = strdup(text);
    g_npl++;
}

static void build_stream(void)
{
    static char buf[1 << 16];
    const int64_t ts = g_w0;
    size_t len = 0;
    /* 1. disk for every host; 2. cpuhot for every host, 1 s later. */
    for (int h = 0; h < HOSTS; h++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "disk,host=h%d used=90 %" PRId64 "\n",
                                h, ts + h);
    add_payload(RF_REC_INFLUX, buf);
    len = 0;
    for (int h = 0; h < HOSTS; h++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                "cpuhot,host=h%d temp=99 %" PRId64 "\n", h, ts + NS_PER_S + h);
    add_payload(RF_REC_INFLUX, buf);
    /* 3. login then sudo of each user, in one datagram. */
    len = 0;
    for (int u = 0; u < USERS; u++)
        len +=
            (size_t)snprintf(buf + len, sizeof(buf) - len,
                             "login,user=u%d ok=1i %" PRId64 "\nsudo,user=u%d ok=1i %" PRId64 "\n",
                             u, ts + 2 * NS_PER_S + u, u, ts + 2 * NS_PER_S + 1000 + u);
    add_payload(RF_REC_INFLUX, buf);
    /* 4. three error series per host. */
    len = 0;
    for (int h = 0; h < BURST_HOSTS; h++)
        for (int p = 0; p < 3; p++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                    "errors,host=b%d,proc=p%d n=1i %" PRId64 "\n", h, p,
                                    ts + 3 * NS_PER_S + h * 10 + p);
    add_payload(RF_REC_INFLUX, buf);
    /* 5. request ids: two line-protocol series, a DogStatsD one, a Graphite one. */
    len = 0;
    for (int i = 0; i < IDS; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                "api,svc=front,request_id=r%d lat=%d %" PRId64 "\n"
                                "db,request_id=r%d,svc=pg q=1i %" PRId64 "\n",
                                i, i, ts + 4 * NS_PER_S + i, i, ts + 4 * NS_PER_S + 500 + i);
    add_payload(RF_REC_INFLUX, buf);
    len = 0;
    for (int i = 0; i < IDS; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                "cache.hit:1|c|#request_id:r%d,svc:cache\n", i);
    add_payload(RF_REC_STATSD, buf);
    len = 0;
    for (int i = 0; i < IDS; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                                "auth.check;request_id=r%d;svc=auth 1 %" PRId64 "\n", i,
                                (ts + 4 * NS_PER_S) / NS_PER_S);
    add_payload(RF_REC_GRAPHITE, buf);
}

static const char *const k_listener[] = {"lp", "statsd", "graphite"};

static void write_recording(const char *path)
{
    rf_rec_writer *w;
    rf_rec_writer_options wo = {.path = path};
    rf_err err;
    if (rf_rec_writer_open(&w, &wo, &err) != 0)
        fail_msg("%s", err.msg);
    for (int i = 0; i < g_npl; i++) {
        rf_rec r = {
            .wall_ns = g_w0 + i * 10 * NS_PER_MS,
            .mono_ns = 5000 * NS_PER_S + i * 10 * NS_PER_MS,
            .transport = RF_REC_UDP,
            .protocol = g_pl[i].protocol,
            .src_port = 40000,
            .src_family = 4,
            .src_addr = {127, 0, 0, 1},
            .name = k_listener[g_pl[i].protocol],
            .payload = (const uint8_t *)g_pl[i].text,
            .payload_len = (uint32_t)strlen(g_pl[i].text),
        };
        if (rf_rec_writer_append(w, &r, &err) != 0)
            fail_msg("append: %s", err.msg);
    }
    assert_int_equal(rf_rec_writer_close(w, &err), 0);
}

static void write_config(const char *name, int workers, const char *login_within)
{
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: %d, idle: {sleep: 2ms}}\n"
             "listeners:\n"
             "  - {name: lp, transport: udp, protocol: influx_line, port: %d, rcvbuf: 4MiB}\n"
             "  - {name: statsd, transport: udp, protocol: statsd, port: %d}\n"
             "  - {name: graphite, transport: udp, protocol: graphite, port: %d}\n"
             "ingest:\n"
             "  correlation: {id_tag: request_id}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline:\n"
             "  sinks:\n"
             "    - {name: data, type: count_only}\n"
             "    - {name: corr, type: json, path: ./corr.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [data]}\n"
             "    - {subject: \"correlated.>\", sinks: [corr], class: critical}\n"
             "  correlation:\n"
             "    patterns:\n"
             "      - {name: disk_then_hot, type: sequence, first: {measurement: disk}, then: "
             "{measurement: cpuhot},\n"
             "         key: host, within: 1m}\n"
             "      - {name: login_sudo, type: sequence, first: {measurement: login}, then: "
             "{measurement: sudo},\n"
             "         key: user, within: %s}\n"
             "      - {name: error_burst, type: burst, match: {measurement: errors}, count: 3,\n"
             "         within: 10s, key: host}\n",
             workers, g_port, g_port + 1, g_port + 2, login_within);
    tproc_write_file(name, cfg);
}

/* The groups in a correlated JSON-lines file: per pattern (1..3), id groups
 * of 4 events. */
typedef struct groups {
    int pattern[4];
    int id4;
    int lines;
} groups;

static groups count_groups(const char *text)
{
    groups g = {0};
    g.lines = count_of(text, "\n");
    g.id4 = count_of(text, "\"members\":4,\"pattern\":0");
    for (int p = 1; p <= 3; p++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\"pattern\":%d", p);
        g.pattern[p] = count_of(text, needle);
    }
    return g;
}

/* times: how many times the stream was sent. */
static void check_groups(const char *what, const char *text, int times)
{
    groups g = count_groups(text);
    if (g.pattern[1] != times * HOSTS || g.pattern[2] != times * USERS ||
        g.pattern[3] != times * BURST_HOSTS || g.id4 != times * IDS ||
        g.lines != times * (HOSTS + USERS + BURST_HOSTS + IDS))
        fail_msg("%s: disk_then_hot %d (want %d), login_sudo %d (want %d), error_burst %d "
                 "(want %d), id groups of 4: %d (want %d), %d lines:\n%.2000s",
                 what, g.pattern[1], times * HOSTS, g.pattern[2], times * USERS, g.pattern[3],
                 times * BURST_HOSTS, g.id4, times * IDS, g.lines, text);
}

/* The lines of a correlated JSON-lines file, sorted, without the ids of
 * pattern groups (per-shard sequence numbers); malloc'ed, "\n"-joined. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *normalized(const char *text)
{
    char *copy = strdup(text);
    char *lines[4096];
    int n = 0;
    for (char *save = NULL, *l = strtok_r(copy, "\n", &save); l && n < 4096;
         l = strtok_r(NULL, "\n", &save)) {
        char *id = strstr(l, ",\"correlation_id\":\"");
        if (id && !strstr(l, "\"pattern\":0"))
            memmove(id, id + 37, strlen(id + 37) + 1); /* ,"correlation_id":"<16 hex>" */
        lines[n++] = l;
    }
    qsort(lines, (size_t)n, sizeof(lines[0]), cmp_str);
    size_t cap = strlen(text) + 2, len = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s\n", lines[i]);
    free(copy);
    return out;
}

/* ---- the tests ------------------------------------------------------------------ */

static void setup_stream(void)
{
    if (g_npl)
        return;
    tproc_dir_init("rf-test-corr-workers");
    g_port = tproc_port_base();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    g_w0 = ((int64_t)now.tv_sec - 600) * NS_PER_S;
    build_stream();
    char path[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    write_recording(path);
    write_config("replay.yaml", 1, "10s");
}

static void test_replay_workers(void **state)
{
    (void)state;
    setup_stream();
    char *one = NULL;
    for (int n = 1; n <= 4; n++) {
        char cmd[1024], dir[32];
        snprintf(dir, sizeof(dir), "w%d", n);
        snprintf(cmd, sizeof(cmd),
                 "%s replay rec.rfrec --into %s --config replay.yaml --workers %d --json",
                 ringflow(), dir, n);
        char *js = run_ok(cmd);
        assert_int_equal(json_num(js, "workers"), n);
        assert_int_equal(json_num(js, "lines_rejected"), 0);
        /* The ids are not series: 2 per host, 2 per user, 3 per burst host,
         * 4 for the id stream (api, db, cache.hit, auth.check). */
        long long defs = json_num(js, "series_defs");
        if (defs > 2 * HOSTS + 2 * USERS + 3 * BURST_HOSTS + 4)
            fail_msg("%d workers: %lld series definitions: the id tag became series", n, defs);
        char file[64];
        snprintf(file, sizeof(file), "%s/corr.jsonl", dir);
        char what[64];
        snprintf(what, sizeof(what), "replay --workers %d", n);
        const char *text = tproc_read_dir_file(file);
        check_groups(what, text, 1);
        /* Every group names its series (emitted on the series' owner), and
         * the lines are those of one worker. */
        if (strstr(text, "\"series\":null"))
            fail_msg("%s: a group without its series:\n%.2000s", what, text);
        char *norm = normalized(text);
        if (!one) {
            one = norm;
        } else {
            if (strcmp(one, norm) != 0) {
                size_t i = 0;
                while (one[i] && one[i] == norm[i])
                    i++;
                while (i > 0 && one[i - 1] != '\n')
                    i--;
                fail_msg("%s: the groups differ from 1 worker's from:\n%.300s\nvs\n%.300s", what,
                         one + i, norm + i);
            }
            free(norm);
        }
        free(js);
    }
    free(one);
}

static void send_udp(int port, const char *text)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(sendto(fd, text, strlen(text), 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)strlen(text));
    close(fd);
}

/* The payloads in order over UDP, with pauses that keep the order between
 * datagrams (as in the recording), then time to process them. */
static void send_stream(void)
{
    for (int i = 0; i < g_npl; i++) {
        send_udp(g_port + g_pl[i].protocol, g_pl[i].text);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* Data events in the stream: 2 per host and user, 3 per burst host, 4 per id. */
#define EVENTS (2 * HOSTS + 2 * USERS + 3 * BURST_HOSTS + 4 * IDS)

/* `show stages json` once the workers processed `events` data events and
 * (balanced) every correlation message sent was received (a slow build may
 * take a while); the last reply after 20 s otherwise. After a reload the
 * counters do not balance: they are the new correlators', and the groups
 * the old ones sent at the swap are received by new ones. */
static char *wait_processed(long long events, bool balanced)
{
    char *st = NULL;
    for (int t = 0; t < 400; t++) {
        free(st);
        st = tproc_ask("show stages json");
        assert_non_null(st);
        if (sum_col(st, "processed") >= events &&
            (!balanced || sum_col(st, "corr_forwarded") == sum_col(st, "corr_received")))
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return st;
}

static void test_live_workers(void **state)
{
    (void)state;
    setup_stream();
    static const int counts[] = {1, 2, 3, 4};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
        int n = counts[k];
        char name[32];
        snprintf(name, sizeof(name), "live%d.yaml", n);
        write_config(name, n, "10s");
        char path[600];
        snprintf(path, sizeof(path), "%s/corr.jsonl", tproc_dir());
        unlink(path);
        proc d;
        tproc_start(&d, (const char *[]){"--config", name, NULL});
        assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));
        send_stream();
        /* `show stages`: what went to other workers' groups arrived there. */
        char *st = wait_processed(EVENTS, true);
        long long fwd = sum_col(st, "corr_forwarded"), rcv = sum_col(st, "corr_received");
        if ((n > 1 && fwd == 0) || (n == 1 && fwd != 0) || fwd != rcv ||
            sum_col(st, "corr_stale") != 0)
            fail_msg("%d workers: forwarded %lld, received %lld:\n%s", n, fwd, rcv, st);
        free(st);
        /* With several workers, a reload that changes a pattern (each worker
         * swaps its correlator at its own tick); the stream again. The open
         * id groups leave at the swap; the second stream's are new ones. */
        int times = 1;
        if (n > 1) {
            write_config(name, n, "20s");
            kill(d.pid, SIGHUP);
            char needle[128];
            snprintf(needle, sizeof(needle), "reload applied from %s", name);
            assert_true(tproc_wait_log(&d, needle, 10000));
            send_stream();
            free(wait_processed(2 * EVENTS, false));
            /* Then what the last group messages take to arrive. */
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            times = 2;
        }
        kill(d.pid, SIGTERM);
        assert_int_equal(tproc_wait_exit(&d, 20000), 0);
        char what[64];
        snprintf(what, sizeof(what), "ringflowd with %d workers", n);
        const char *text = tproc_read_file(path);
        check_groups(what, text, times);
        if (strstr(text, "\"series\":null"))
            fail_msg("%s: a group without its series:\n%.2000s", what, text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_workers),
        cmocka_unit_test(test_live_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
