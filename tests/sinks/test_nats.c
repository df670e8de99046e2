/* The nats sink against a real nats-server (Debian's), started by the test
 * on a loopback port of its own with its JetStream store in the temp dir;
 * what arrived is read back with nats.c, as any consumer would:
 *   js        JetStream: every point in the stream exactly once, on the
 *             subject rf.<measurement>.<shard> with the documented shard
 *             (FNV-1a 64 of the series key text modulo shards)
 *   dedup     the server is frozen (SIGSTOP) while a batch is in flight: the
 *             acks time out, the sink publishes again, and once the server
 *             runs again the stream keeps one copy (duplicates counted)
 *   disk_kill disk buffer: the server frozen, ringflowd SIGKILLed with the
 *             batch published but unacknowledged, the server resumed and
 *             ringflowd restarted: the recovered entries go out again under
 *             the same Nats-Msg-Id, and every point is stored once
 *   core      core NATS: a subscriber sees every point
 *   e2e       edge ringflowd -> JetStream -> aggregator ringflowd (nats_source,
 *             2 workers): every point in the aggregator's json sink once,
 *             with the aggregator stopped and restarted mid-stream
 *   global    aggregation between hosts: two edge ringflowd send their group
 *             windows as partials (aggregate rule `partials: {to: bus}`) over
 *             JetStream, an aggregator ringflowd (nats_source `payload:
 *             partials`) merges them; its aggregates equal those of a fourth
 *             ringflowd fed every point: counts, sums, min, max, avg exactly,
 *             quantiles within the sketch's 1 %
 *   config    --check-config names each bad nats / nats_source key
 *   source    ingest/nats: two workers' pull sources split 4 shards, each
 *             gets only its own, a refused message is redelivered (counted),
 *             and durable consumers resume after the sources are recreated
 * A missing nats-server makes the test SKIP (exit 77). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "fwd_util.h"
#include "ingest/nats/nats_source.h"

#define SHARDS 4
#define SERIES 8

static int g_lp_port, g_nats_port;
static pid_t g_nats = -1;
static char g_url[64];

static void ports(void)
{
    int base = tproc_port_base();
    g_lp_port = base + 3;
    g_nats_port = base + 6;
    snprintf(g_url, sizeof(g_url), "nats://127.0.0.1:%d", g_nats_port);
}

static void start_nats(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", g_nats_port);
    g_nats = cu_spawn("nats", (const char *const[]){"/usr/sbin/nats-server", "-a", "127.0.0.1",
                                                    "-p", port, "-js", "-sd", "./js", NULL});
    for (int i = 0; i < 200; i++) {
        natsConnection *nc = NULL;
        if (natsConnection_ConnectTo(&nc, g_url) == NATS_OK) {
            natsConnection_Destroy(nc);
            return;
        }
        usleep(50 * 1000);
    }
    fail_msg("nats-server did not answer on port %d; stderr:\n%s", g_nats_port,
             cu_output("nats", "err"));
}

/* Every test: the server installed (else SKIP), its ports, the server up. */
static void begin(void)
{
    fwd_require("/usr/sbin/nats-server", "nats-server");
    ports();
    start_nats();
}

static void start_rf(proc *d, const char *extra)
{
    char cfg[4096];
    snprintf(
        cfg, sizeof(cfg),
        "engine: {workers: 2, idle: {sleep: 5ms}}\n"
        "listeners:\n"
        "  - {name: lp, transport: tcp, protocol: influx_line, port: %d, address: 127.0.0.1}\n"
        "stats: {prometheus: {enabled: false}}\n"
        "storage: {enabled: false}\n"
        "pipeline:\n"
        "  batch: {max_events: 1000, interval: 20ms}\n"
        "  sinks:\n"
        "    - {name: bus, type: nats, servers: [\"%s\"], subject: \"rf.{measurement}.{shard}\",\n"
        "       shards: %d, timeout: 1s, backoff: {base: 50ms, max: 200ms}, %s}\n"
        "  routes:\n"
        "    - {subject: \"telemetry.>\", sinks: [bus]}\n",
        g_lp_port, g_url, SHARDS, extra);
    cu_daemon_start(d, "ringflowd.yaml", cfg);
}

/* Points "nt,host=h<i % SERIES> v=<i> <t0 + i ms>" for i in [first, first + n). */
static void send_points(int first, int n)
{
    size_t cap = (size_t)n * 64 + 1;
    char *buf = malloc(cap), *o = buf;
    int64_t t0 = cu_now_ns() / 1000000 - 60000;
    for (int i = first; i < first + n; i++)
        o += snprintf(o, cap - (size_t)(o - buf), "nt,host=h%d v=%d %lld000000\n", i % SERIES, i,
                      (long long)(t0 + i));
    fwd_send_tcp(g_lp_port, buf, (size_t)(o - buf));
    free(buf);
}

/* The documented shard of a series key text, computed independently. */
static unsigned shard_of(const char *key, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)key[i]) * 0x100000001b3ull;
    return (unsigned)(h % SHARDS);
}

/* Counts every point of one message into seen[]; checks its subject. */
static void count_msg(const char *subj, const char *data, int len, int *seen, int max)
{
    for (const char *p = data, *end = data + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        int host = -1, v = -1;
        assert_int_equal(sscanf(p, "nt,host=h%d v=%d", &host, &v), 2);
        assert_true(v >= 0 && v < max);
        seen[v]++;
        const char *eq = strchr(p, '=');
        eq = strchr(eq + 1, '='); /* the field's: "nt,host=hK v=" */
        char want[64];
        snprintf(want, sizeof(want), "rf.nt.%u", shard_of(p, (size_t)(eq - p)));
        assert_string_equal(subj, want);
        p = nl + 1;
    }
}

static void connect_js(natsConnection **nc, jsCtx **js)
{
    assert_int_equal(natsConnection_ConnectTo(nc, g_url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(js, *nc, NULL), NATS_OK);
}

/* Reads the whole stream RF with a pull consumer until `want` points came
 * or nothing more arrives; asserts each of [0, want) exactly once. */
static void expect_stream(int want)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode ec = 0;
    assert_int_equal(natsConnection_ConnectTo(&nc, g_url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&js, nc, NULL), NATS_OK);
    assert_int_equal(js_PullSubscribe(&sub, js, "rf.>", "check", NULL, NULL, &ec), NATS_OK);
    int *seen = calloc((size_t)want, sizeof(int));
    int total = 0;
    for (int round = 0; round < 200 && total <= want; round++) {
        natsMsgList list = {0};
        natsStatus s = natsSubscription_Fetch(&list, sub, 64, 200, &ec);
        if (s == NATS_TIMEOUT && total == want)
            break;
        for (int i = 0; i < list.Count; i++) {
            count_msg(natsMsg_GetSubject(list.Msgs[i]), natsMsg_GetData(list.Msgs[i]),
                      natsMsg_GetDataLength(list.Msgs[i]), seen, want);
            natsMsg_Ack(list.Msgs[i], NULL);
        }
        natsMsgList_Destroy(&list);
        total = 0;
        for (int i = 0; i < want; i++)
            total += seen[i];
    }
    for (int i = 0; i < want; i++)
        if (seen[i] != 1)
            fail_msg("point %d stored %d times", i, seen[i]);
    free(seen);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

#define JS_SINK "stream: {name: RF, storage: file}"

static void test_js(void **state)
{
    (void)state;
    begin();
    proc d;
    start_rf(&d, JS_SINK);
    send_points(0, 3000);
    assert_int_equal(fwd_stat_wait("bus", "acked", 3000, 20000), 3000);
    expect_stream(3000);
    /* A JetStream ack late on a loaded machine is retried; Nats-Msg-Id
     * makes the retry a duplicate the server drops, never a second copy
     * (expect_stream above counted exactly one of each). So retries are
     * allowed, but a duplicate only ever comes from one. */
    if (fwd_stat("bus", "retries") == 0)
        assert_int_equal(fwd_stat("bus", "nats_duplicates"), 0);
    assert_true(fwd_stat("bus", "nats_msgs") >= SHARDS);
    char *top = cu_ringflow("top"); /* the operator's view names the connection */
    assert_non_null(strstr(top, " connected"));
    free(top);
    cu_daemon_stop(&d);
}

static void test_dedup(void **state)
{
    (void)state;
    begin();
    proc d;
    start_rf(&d, JS_SINK);
    send_points(0, 10);
    assert_int_equal(fwd_stat_wait("bus", "acked", 10, 20000), 10);
    kill(g_nats, SIGSTOP);
    send_points(10, 1990);
    /* The acks cannot come: the sink gives up on them and publishes again. */
    assert_true(fwd_stat_wait("bus", "retries", 2, 20000) >= 2);
    kill(g_nats, SIGCONT);
    assert_int_equal(fwd_stat_wait("bus", "acked", 2000, 30000), 2000);
    assert_true(fwd_stat("bus", "nats_duplicates") >= 1);
    expect_stream(2000);
    cu_daemon_stop(&d);
}

static void test_disk_kill(void **state)
{
    (void)state;
    begin();
    proc d;
    const char *sink = JS_SINK ", buffer: {type: disk, path: ./fbuf}";
    start_rf(&d, sink);
    send_points(0, 10);
    assert_int_equal(fwd_stat_wait("bus", "acked", 10, 20000), 10);
    kill(g_nats, SIGSTOP);
    send_points(10, 1990);
    assert_true(fwd_stat_wait("bus", "retries", 1, 20000) >= 1);
    /* every unacknowledged point in the disk buffer before the kill (a slow,
     * sanitized build may still have some in a worker's queue) */
    assert_true(fwd_stat_wait("bus", "queued_events", 1990, 30000) >= 1990);
    kill(d.pid, SIGKILL);
    cu_wait(d.pid, 5000);
    kill(g_nats, SIGCONT);
    start_rf(&d, sink);
    assert_true(fwd_stat_wait("bus", "acked", 1990, 30000) >= 1990);
    assert_true(fwd_stat("bus", "nats_duplicates") >= 1);
    expect_stream(2000);
    cu_daemon_stop(&d);
}

static int g_core_seen[2000];

static void on_core(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc;
    (void)sub;
    (void)closure;
    const char *p = natsMsg_GetData(m), *end = p + natsMsg_GetDataLength(m);
    for (; p < end; p = strchr(p, '\n') + 1) {
        int host, v;
        if (sscanf(p, "nt,host=h%d v=%d", &host, &v) == 2 && v >= 0 && v < 2000)
            __atomic_add_fetch(&g_core_seen[v], 1, __ATOMIC_RELAXED); /* read after the wait */
    }
    natsMsg_Destroy(m);
}

static void test_core(void **state)
{
    (void)state;
    begin();
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, g_url), NATS_OK);
    assert_int_equal(natsConnection_Subscribe(&sub, nc, "rf.nt.*", on_core, NULL), NATS_OK);
    assert_int_equal(natsConnection_FlushTimeout(nc, 2000), NATS_OK);
    proc d;
    start_rf(&d, "mode: core");
    send_points(0, 2000);
    assert_int_equal(fwd_stat_wait("bus", "acked", 2000, 20000), 2000);
    int total = 0;
    for (int round = 0; round < 100 && total < 2000; round++) {
        usleep(20 * 1000);
        total = 0;
        for (int i = 0; i < 2000; i++)
            total += __atomic_load_n(&g_core_seen[i], __ATOMIC_RELAXED);
    }
    for (int i = 0; i < 2000; i++)
        assert_int_equal(__atomic_load_n(&g_core_seen[i], __ATOMIC_RELAXED), 1);
    cu_daemon_stop(&d);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

/* ---- the source (ingest/nats) ---- */

typedef struct got {
    int worker;
    int seen[64];
    int refuse_once; /* value whose first delivery is refused; -1: none */
    int bad_shard;
} got;

static bool on_src(void *ctx, const char *subject, const char *data, size_t len)
{
    got *g = ctx;
    unsigned shard = 99;
    int v = -1;
    sscanf(subject, "rf.nt.%u", &shard);
    if (shard % 2 != (unsigned)g->worker)
        g->bad_shard++;
    assert_true(len > 0 && sscanf(data, "nt v=%d", &v) == 1 && v >= 0 && v < 64);
    if (v == g->refuse_once) {
        g->refuse_once = -1;
        return false;
    }
    g->seen[v]++;
    return true;
}

static void publish_src(jsCtx *js, int first, int n)
{
    for (int v = first; v < first + n; v++) {
        char subj[32], data[32];
        snprintf(subj, sizeof(subj), "rf.nt.%d", v % SHARDS);
        int len = snprintf(data, sizeof(data), "nt v=%d 1\n", v);
        jsErrCode ec = 0;
        assert_int_equal(js_Publish(NULL, js, subj, data, len, NULL, &ec), NATS_OK);
    }
}

static rf_nats_source *new_src(int worker)
{
    rf_nats_source_config c = {.servers = {g_url},
                               .n_servers = 1,
                               .stream = "RF",
                               .subject = "rf.{measurement}.{shard}",
                               .durable = "agg",
                               .shards = SHARDS,
                               .workers = 2,
                               .worker = (uint32_t)worker,
                               .ack_wait_ns = 2000000000ll};
    rf_nats_source *s = NULL;
    rf_err err = {0};
    if (rf_nats_source_new(&c, NULL, NULL, &s, &err))
        fail_msg("%s", err.msg);
    return s;
}

/* Polls both sources until `want` points were accepted in all (5 s bound). */
static int poll_until(rf_nats_source **src, got *g, int want)
{
    int total = 0;
    for (int round = 0; round < 500 && total < want; round++) {
        for (int w = 0; w < 2; w++)
            rf_nats_source_poll(src[w], 64, on_src, &g[w]);
        total = 0;
        for (int w = 0; w < 2; w++)
            for (int i = 0; i < 64; i++)
                total += g[w].seen[i];
        if (total < want)
            usleep(10 * 1000);
    }
    return total;
}

static void test_source(void **state)
{
    (void)state;
    begin();
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    connect_js(&nc, &js);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {"rf.*.*"};
    sc.Name = "RF";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    jsErrCode ec = 0;
    assert_int_equal(js_AddStream(NULL, js, &sc, NULL, &ec), NATS_OK);
    publish_src(js, 0, 32);
    rf_nats_source *src[2] = {new_src(0), new_src(1)};
    got g[2] = {{.worker = 0, .refuse_once = 4}, {.worker = 1, .refuse_once = -1}};
    assert_int_equal(poll_until(src, g, 32), 32);
    for (int v = 0; v < 32; v++)
        assert_int_equal(g[v % 2].seen[v], 1); /* shard v % 4 belongs to worker v % 2 */
    assert_int_equal(g[0].bad_shard + g[1].bad_shard, 0);
    rf_nats_source_stats st;
    rf_nats_source_stats_read(src[0], &st);
    assert_int_equal(st.consumers, 2);
    assert_true(st.redelivered >= 1);
    for (int w = 0; w < 2; w++)
        rf_nats_source_free(src[w]);
    /* The durables resume: only what is new arrives. */
    publish_src(js, 32, 8);
    src[0] = new_src(0);
    src[1] = new_src(1);
    assert_int_equal(poll_until(src, g, 40), 40);
    for (int v = 0; v < 40; v++)
        assert_int_equal(g[v % 2].seen[v], 1);
    for (int w = 0; w < 2; w++)
        rf_nats_source_free(src[w]);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

/* ---- configuration errors ---- */

static void expect_invalid(const char *yaml, const char *msg)
{
    proc p;
    tproc_write_file("bad.yaml", yaml);
    assert_int_equal(tproc_run((const char *[]){"--check-config", "bad.yaml", NULL}, &p), 3);
    const char *e = tproc_read_file(p.err_path);
    if (!strstr(e, msg))
        fail_msg("expected \"%s\" in:\n%s", msg, e);
}

#define SINK_YAML(extra)                                                                           \
    "pipeline:\n  sinks:\n    - {name: bus, type: nats, " extra "}\n"                              \
    "  routes:\n    - {subject: \"telemetry.>\", sinks: [bus]}\n"

static void test_config(void **state)
{
    (void)state;
    expect_invalid(SINK_YAML("subject: a.b"), "pipeline.sinks[0].servers: missing required key");
    expect_invalid(SINK_YAML("servers: [\"http://x:1\"]"), "a nats:// or tls:// URL");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"], subject: \"a.{host}\""),
                   "placeholders are {measurement}, {field} and {shard}");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"], subject: \"a..b\""),
                   "an empty subject token");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"], subject: \"a.>\""), "no wildcard");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"], mode: core, stream: {name: S}"),
                   "a stream is for mode jetstream");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"], tls: {cert: c.pem}"),
                   "cert and key go together");
    /* Partials between hosts: a line-protocol sink, and a grouped rule. */
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"]") "  aggregations:\n    - {measurement: m, "
                                                          "window: 1s, functions: [sum], "
                                                          "group_by: [r], partials: {to: nobus}}\n",
                   "partials.to 'nobus' is not a line-protocol sink");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"]") "  aggregations:\n    - {measurement: m, "
                                                          "window: 1s, functions: [sum], "
                                                          "partials: {to: bus}}\n",
                   "partials between hosts need group_by");
    expect_invalid("nats_source: {payload: points}\n", "nats_source.payload");
    expect_invalid("nats_source: {enabled: true, stream: RF}\n",
                   "nats_source.servers: missing required key");
    expect_invalid("nats_source: {servers: [\"nats://x:1\"], shards: 4, subject: a.b}\n",
                   "shards > 1 needs {shard} in the subject");
    expect_invalid(SINK_YAML("servers: [\"nats://x:1\"], stream: {name: S, replicas: 7}"),
                   "pipeline.sinks[0].stream.replicas");
    expect_invalid("nats_source: {servers: [\"nats://x:1\"], hosts: 2, host: 2}\n",
                   "a host index below hosts");
    /* Host h of H hands worker w of W the source of worker h * W + w of
     * H * W: of 8 shards, host 0's workers own {0, 4} and {1, 5}, host 1's
     * {2, 6} and {3, 7}. */
    rf_nats_source_settings st = {.hosts = 2, .host = 1, .shards = 8};
    rf_nats_source_config c;
    rf_nats_source_config_from(&st, 1, 2, &c);
    assert_int_equal(c.worker, 3);
    assert_int_equal(c.workers, 4);
    st.host = 0;
    rf_nats_source_config_from(&st, 1, 2, &c);
    assert_int_equal(c.worker, 1);
    assert_int_equal(c.workers, 4);
}

/* ---- edge -> JetStream -> aggregator ---- */

static void start_agg(proc *d)
{
    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 5ms}, run_dir: ./agg-run, data_dir: ./agg-data}\n"
             "listeners:\n"
             "  - {name: lp, transport: tcp, protocol: influx_line, port: %d, address: 127.0.0.1}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "nats_source: {enabled: true, servers: [\"%s\"], stream: RF,\n"
             "              subject: \"rf.{measurement}.{shard}\", shards: %d, durable: agg}\n"
             "pipeline:\n"
             "  batch: {max_events: 1000, interval: 20ms}\n"
             "  sinks:\n"
             "    - {name: out, type: json, path: ./agg.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [out]}\n",
             g_lp_port + 10, g_url, SHARDS);
    cu_daemon_start(d, "agg.yaml", cfg);
}

/* Counts the aggregator's json lines per point ("value":<v>); returns the total. */
static int agg_points(int *seen, int max)
{
    memset(seen, 0, sizeof(int) * (size_t)max);
    const char *text = tproc_read_dir_file("agg.jsonl"); /* a static buffer of 1 MiB */
    int total = 0;
    for (const char *p = text; p && (p = strstr(p, "\"value\":")); p++) {
        int v = atoi(p + 8);
        if (v >= 0 && v < max)
            seen[v]++;
        total++;
    }
    return total;
}

static int agg_wait(int *seen, int max, int want, int timeout_ms)
{
    int total = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        if ((total = agg_points(seen, max)) >= want)
            break;
        usleep(20 * 1000);
    }
    return total;
}

static void test_e2e(void **state)
{
    (void)state;
    begin();
    proc edge, agg;
    start_rf(&edge, JS_SINK);
    send_points(0, 10); /* the stream exists once the first batch is acked */
    assert_int_equal(fwd_stat_wait("bus", "acked", 10, 20000), 10);
    start_agg(&agg);
    send_points(10, 990);
    int seen[3000];
    assert_true(agg_wait(seen, 3000, 500, 20000) >= 500);
    cu_daemon_stop(&agg); /* mid-stream: what it took is acked, the rest redelivered */
    send_points(1000, 1000);
    assert_int_equal(fwd_stat_wait("bus", "acked", 2000, 20000), 2000);
    start_agg(&agg);
    send_points(2000, 1000);
    assert_int_equal(agg_wait(seen, 3000, 3000, 30000), 3000);
    for (int v = 0; v < 3000; v++)
        if (seen[v] != 1)
            fail_msg("point %d stored %d times by the aggregator", v, seen[v]);
    cu_daemon_stop(&agg);
    cu_daemon_stop(&edge);
}

/* ---- global aggregation: 2 edges -> JetStream -> 1 aggregator ---- */

#define G_FUNCS "[count, sum, min, max, avg, p50, p99]"
#define G_RULE                                                                                     \
    "  aggregation: {idle_grace: 200ms, edge_id: %d, remote_edges: 2, remote_wait: 5s}\n"          \
    "  aggregations:\n"                                                                            \
    "    - {measurement: gt, field: v, window: 1s, functions: " G_FUNCS ",\n"                      \
    "       group_by: [region]%s}\n"
#define G_WINDOWS 5
#define G_HOSTS 8

/* One ringflowd of the global test: `name` gives its directories and
 * ports (slot), `sinks`/`routes` its outputs, `tail` more top-level keys. */
static void start_global(proc *d, const char *name, int slot, int workers, int edge_id,
                         const char *partials, const char *sinks, const char *routes,
                         const char *tail)
{
    char cfg[4096], file[64];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: %d, idle: {sleep: 5ms}, run_dir: ./%s-run, data_dir: ./%s-data}\n"
             "listeners:\n"
             "  - {name: lp, transport: tcp, protocol: influx_line, port: %d, address: "
             "127.0.0.1}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "%s"
             "pipeline:\n"
             "  batch: {max_events: 1000, interval: 20ms}\n" G_RULE "  sinks:\n%s"
             "  routes:\n%s",
             workers, name, name, g_lp_port + 20 + slot, tail, edge_id, partials, sinks, routes);
    snprintf(file, sizeof(file), "%s.yaml", name);
    cu_daemon_start(d, file, cfg);
}

/* The stream the edges publish into, made by the test (so the aggregator's
 * consumers can bind before the first partial). */
static void make_partials_stream(void)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    connect_js(&nc, &js);
    const char *subjects[] = {"rfp.>"};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = "RFP";
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    jsErrCode ec = 0;
    assert_int_equal(js_AddStream(&si, js, &sc, NULL, &ec), NATS_OK);
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
}

typedef struct g_point {
    char series[64], time[48];
    double value;
} g_point;

/* The aggregates of a json sink file: series, window time and value. */
static int g_read(const char *file, g_point *out, int max)
{
    const char *text = tproc_read_dir_file(file);
    int n = 0;
    for (const char *p = text; p && *p && n < max;) {
        const char *t = strstr(p, "\"time\":\""), *sr = strstr(p, "\"series\":\""),
                   *v = strstr(p, "\"value\":"), *nl = strchr(p, '\n');
        if (!t || !sr || !v || !nl)
            break;
        snprintf(out[n].time, sizeof(out[n].time), "%.*s", (int)(strchr(t + 8, '"') - (t + 8)),
                 t + 8);
        snprintf(out[n].series, sizeof(out[n].series), "%.*s",
                 (int)(strchr(sr + 10, '"') - (sr + 10)), sr + 10);
        out[n].value = strtod(v + 8, NULL);
        n++;
        p = nl + 1;
    }
    return n;
}

static int g_wait(const char *file, g_point *out, int max, int want, int timeout_ms)
{
    int n = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        if ((n = g_read(file, out, max)) >= want)
            break;
        usleep(50 * 1000);
    }
    return n;
}

static void test_global(void **state)
{
    (void)state;
    begin();
    make_partials_stream();
    proc agg, edge[2], ref;
    char src[512];
    snprintf(src, sizeof(src),
             "nats_source: {enabled: true, servers: [\"%s\"], stream: RFP, payload: partials,\n"
             "              subject: \"rfp.{measurement}.{shard}\", shards: %d, durable: glob}\n",
             g_url, SHARDS);
    const char *json_out = "    - {name: out, type: json, path: ./%s.jsonl}\n";
    const char *agg_route = "    - {subject: \"aggregate.>\", sinks: [out]}\n";
    char sinks[512], bus[512];
    snprintf(sinks, sizeof(sinks), json_out, "agg");
    start_global(&agg, "agg", 0, 2, 0, "", sinks, agg_route, src);
    snprintf(bus, sizeof(bus),
             "    - {name: bus, type: nats, servers: [\"%s\"], subject: "
             "\"rfp.{measurement}.{shard}\",\n"
             "       shards: %d, timeout: 1s, backoff: {base: 50ms, max: 200ms}}\n",
             g_url, SHARDS);
    for (int e = 0; e < 2; e++) {
        char name[16];
        snprintf(name, sizeof(name), "edge%d", e);
        /* No route: what leaves an edge is its partials. One worker: two
         * would add the in-engine merge, whose partials can come late when
         * a worker idle until then gets old events (README.md, "Late
         * partials"), and this test feeds 30 s old points in one burst. */
        start_global(&edge[e], name, 1 + e, 1, e, ", partials: {to: bus}", bus,
                     "    - {subject: \"nothing.>\", sinks: [bus]}\n", "");
    }
    snprintf(sinks, sizeof(sinks), json_out, "ref");
    start_global(&ref, "ref", 3, 1, 0, "", sinks, agg_route, "");

    /* G_WINDOWS windows of 1 s, 30 s ago; 8 hosts in 2 regions, hosts
     * 0-3 on edge 0 and 4-7 on edge 1, so each edge has both regions in
     * every window; every point to the reference too. Values in steps of
     * 1/8, with a spread (the quantiles have something to tell). */
    int64_t t0 = (cu_now_ns() / 1000000000 - 30) * 1000;
    size_t cap = 1 << 20, len[2] = {0, 0}, rlen = 0;
    char *buf[2] = {malloc(cap), malloc(cap)}, *all = malloc(cap);
    for (int w = 0; w < G_WINDOWS; w++)
        for (int i = 0; i < 400; i++) {
            int h = i % G_HOSTS, e = h >= G_HOSTS / 2;
            double v = (double)((i * 7919 + w * 31) % 2000) / 8.0 - 50.0;
            char line[128];
            int n = snprintf(line, sizeof(line), "gt,host=h%d,region=r%d v=%.3f %lld000000\n", h,
                             h % 2, v, (long long)(t0 + w * 1000 + i * 2));
            memcpy(buf[e] + len[e], line, (size_t)n);
            len[e] += (size_t)n;
            memcpy(all + rlen, line, (size_t)n);
            rlen += (size_t)n;
        }
    fwd_send_tcp(g_lp_port + 21, buf[0], len[0]);
    fwd_send_tcp(g_lp_port + 22, buf[1], len[1]);
    fwd_send_tcp(g_lp_port + 23, all, rlen);
    free(buf[0]);
    free(buf[1]);
    free(all);

    const int want = 2 * G_WINDOWS * 7; /* regions x windows x functions */
    static g_point got[512], exp[512];
    int n_exp = g_wait("ref.jsonl", exp, 512, want, 30000);
    int n_got = g_wait("agg.jsonl", got, 512, want, 30000);
    /* Stopped first: their final counters are in the logs whatever fails. */
    cu_daemon_stop(&edge[0]);
    cu_daemon_stop(&edge[1]);
    cu_daemon_stop(&agg);
    cu_daemon_stop(&ref);
    const char *log = tproc_read_file(agg.err_path);
    if (n_got != want)
        fail_msg("the aggregator emitted %d of %d aggregates; its log:\n%s", n_got, want, log);
    assert_int_equal(n_exp, want);
    int quantiles = 0;
    for (int i = 0; i < n_exp; i++) {
        const g_point *m = NULL;
        for (int j = 0; j < n_got && !m; j++)
            if (!strcmp(got[j].series, exp[i].series) && !strcmp(got[j].time, exp[i].time))
                m = &got[j];
        if (!m)
            fail_msg("no %s at %s from the aggregator", exp[i].series, exp[i].time);
        if (strstr(exp[i].series, ":p")) {
            quantiles++;
            if (fabs(m->value - exp[i].value) > 0.01 * fabs(exp[i].value))
                fail_msg("%s at %s: %.17g, one engine %.17g (beyond 1 %%)", exp[i].series,
                         exp[i].time, m->value, exp[i].value);
        } else if (m->value != exp[i].value) {
            fail_msg("%s at %s: %.17g, one engine %.17g", exp[i].series, exp[i].time, m->value,
                     exp[i].value);
        }
    }
    assert_int_equal(quantiles, 2 * G_WINDOWS * 2);
    /* Every window came complete: both edges in, none by the wait. */
    assert_non_null(strstr(log, "remote_timed_out=0"));
    assert_null(strstr(log, "remote_bad=1"));
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void **);
    } tests[] = {
        {"js", test_js},         {"dedup", test_dedup},   {"disk_kill", test_disk_kill},
        {"core", test_core},     {"source", test_source}, {"e2e", test_e2e},
        {"config", test_config}, {"global", test_global},
    };
    for (size_t i = 0; argc > 1 && i < sizeof(tests) / sizeof(tests[0]); i++)
        if (strcmp(argv[1], tests[i].name) == 0)
            return cu_run_test("rf-nats", tests[i].name, tests[i].fn);
    fprintf(stderr, "usage: test_nats js|dedup|disk_kill|core|source|e2e|config|global\n");
    return 2;
}
