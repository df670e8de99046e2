/* ringflowd fed by DPDK from a capture: a generated pcap read by the
 * net_pcap vdev (--no-huge --no-pci), through the same parsers, rings,
 * aggregation and sinks as the io_uring path. Exact aggregates and exact
 * per-reason packet drops; the port's device statistics (ipackets = the
 * frames in the capture, ibytes = their bytes, no imissed, ierrors or
 * rx_nombuf) in `show dpdk` (text and JSON) and on /metrics. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../dpdk/pkt_build.h"
#include "daemon_proc.h"
#include "tools/cli/client.h"

#define HOSTS 8
#define POINTS 6

static double json_value_of(const char *text, const char *series)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "\"series\":\"%s\",\"value\":", series);
    const char *p = strstr(text, needle);
    return p ? strtod(p + strlen(needle), NULL) : NAN;
}

static uint64_t g_frame_bytes; /* every frame written to the capture */
static pid_t g_pid;            /* the daemon while it may run: stopped if a check fails */

static int teardown(void **state)
{
    (void)state;
    if (g_pid > 0) {
        kill(g_pid, SIGKILL); /* a failed check left it running, polling */
        waitpid(g_pid, NULL, 0);
        g_pid = 0;
    }
    return 0;
}

static void add_frame(FILE *f, pb_spec *spec, uint32_t *seq)
{
    pb_frame fr;
    pb_build(spec, &fr);
    pb_pcap_write(f, &fr, (*seq)++);
    g_frame_bytes += fr.len;
}

/* Row 0 of table `table` in `show dpdk json`, from a parsed reply. */
static const rf_json *row0(const rf_json *doc, const char *table)
{
    const rf_json *t = rf_json_get(doc, table);
    if (!t || !t->child)
        fail_msg("no %s rows in show dpdk json", table);
    return t->child;
}

/* GET /metrics from 127.0.0.1:port into buf; the HTTP status. */
static int http_get(int port, const char *path, char *buf, size_t cap)
{
    int code;
    char *body = tproc_http_get(port, path, &code);
    if (!body)
        return -1;
    snprintf(buf, cap, "%s", body);
    free(body);
    return code;
}

/* The value of the sample `name{labels}` in a /metrics body, or -1. */
static double metric(const char *body, const char *name_labels)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "\n%s ", name_labels);
    const char *p = strstr(body, needle);
    return p ? strtod(p + strlen(needle), NULL) : -1;
}

static void test_dpdk_live(void **state)
{
    (void)state;
    const char *dir = tproc_dir_init("rf-test-dpdk-live");
    char pcap[512];
    snprintf(pcap, sizeof(pcap), "%s/in.pcap", dir);
    FILE *f = pb_pcap_open(pcap);
    assert_non_null(f);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t t0 = ((int64_t)now.tv_sec / 10 - 3) * 10 * 1000000000LL;
    double sum[HOSTS] = {0};
    uint32_t seq = 0;
    char payload[256];
    pb_spec base = {
        .family = 4, .src4 = {10, 0, 0, 1}, .dst4 = {10, 0, 0, 2}, .sport = 40000, .dport = 8089};
    for (int h = 0; h < HOSTS; h++) {
        for (int i = 0; i < POINTS; i++) {
            double v = (double)(h * 100 + i) + 0.25;
            sum[h] += v;
            snprintf(payload, sizeof(payload), "net,host=n%d rx=%.2f %lld\n", h, v,
                     (long long)(t0 + i * 1000000000LL));
            pb_spec s = base;
            s.payload = payload;
            /* Every other host over IPv6 with a VLAN tag. */
            if (h % 2) {
                s.family = 6;
                s.vlan_tags = 1;
                s.src6[15] = 1;
                s.dst6[15] = 2;
            }
            add_frame(f, &s, &seq);
        }
    }
    /* Frames that must be dropped, each for its own counted reason. */
    pb_spec bad = base;
    bad.payload = "net,host=bad rx=1 1\n";
    pb_spec b1 = bad;
    b1.bad_ip_csum = true;
    add_frame(f, &b1, &seq);
    pb_spec b2 = bad;
    b2.fragment = true;
    add_frame(f, &b2, &seq);
    pb_spec b3 = bad;
    b3.dport = 9999;
    add_frame(f, &b3, &seq);
    pb_spec b4 = bad;
    b4.proto = 6;
    add_frame(f, &b4, &seq);
    fclose(f);

    int port = tproc_port_base() + 7;
    char cfg[4096];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, idle: {sleep: 1ms}}\n"
             "listeners:\n"
             "  - {transport: udp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: true, listen: \"127.0.0.1:%d\"}}\n"
             "storage: {enabled: false}\n"
             "dpdk:\n"
             "  enabled: true\n"
             "  huge_pages: false\n"
             "  pci: false\n"
             "  in_memory: true\n"
             "  memory: 128MiB\n"
             "  file_prefix: rf-test-%d\n"
             "  eal_args: [--no-telemetry, --log-level=warning]\n"
             "  ports:\n"
             "    - {name: cap0, vdev: \"net_pcap0,rx_pcap=%s\", rx_queues: 1, mbufs: 1023,\n"
             "       mbuf_cache: 32, mbuf_size: 2048, rx_descriptors: 256}\n"
             "  udp_ports:\n"
             "    - {port: 8089, protocol: influx_line}\n"
             "pipeline:\n"
             "  batch: {max_events: 1000, interval: 100ms}\n"
             "  sinks:\n"
             "    - {name: aggs, type: json, path: ./aggs.jsonl}\n"
             "  routes:\n"
             "    - {subject: \"aggregate.>\", sinks: [aggs]}\n"
             "  aggregation: {allowed_lateness: 120s}\n"
             "  aggregations:\n"
             "    - {measurement: net, field: rx, window: 10s, functions: [count, sum]}\n",
             port, port + 1, (int)getpid(), pcap);
    tproc_write_file("dpdk.yaml", cfg);
    proc d;
    g_pid = 0;
    tproc_start(&d, (const char *[]){"--config", "dpdk.yaml", NULL});
    g_pid = d.pid;
    assert_true(tproc_wait_log(&d, "msg=\"running:", 20000));
    usleep(1000 * 1000); /* net_pcap delivers the file once, at once */

    /* The port's device statistics: every frame of the capture, its bytes,
     * nothing missed, in error or short of mbufs. */
    const uint64_t frames = seq;
    rf_json *doc = NULL;
    for (int t = 0; t < 100; t++) {
        char *reply = tproc_ask("show dpdk json");
        rf_json_free(doc);
        doc = reply ? rf_json_parse(reply, NULL) : NULL;
        free(reply);
        const rf_json *ports = doc ? rf_json_get(doc, "dpdk_ports") : NULL;
        if (ports && ports->child && rf_json_num(ports->child, "ipackets", 0) == (double)frames)
            break;
        usleep(100 * 1000);
    }
    assert_non_null(doc);
    const rf_json *p0 = row0(doc, "dpdk_ports");
    assert_string_equal(rf_json_str(p0, "name", ""), "cap0");
    assert_true(rf_json_num(p0, "ipackets", -1) == (double)frames);
    assert_true(rf_json_num(p0, "ibytes", -1) == (double)g_frame_bytes);
    assert_true(rf_json_num(p0, "imissed", -1) == 0);
    assert_true(rf_json_num(p0, "ierrors", -1) == 0);
    assert_true(rf_json_num(p0, "rx_nombuf", -1) == 0);
    assert_true(rf_json_num(p0, "queues", -1) == 1);
    assert_string_equal(rf_json_str(p0, "error", "?"), "");
    /* net_pcap has no node: the pool is on worker 0's. */
    assert_true(rf_json_num(p0, "node", 0) == -1);
    const rf_json *q0 = row0(doc, "dpdk_queues");
    assert_true(rf_json_num(q0, "packets", -1) == (double)frames);
    assert_true(rf_json_num(q0, "datagrams", -1) == HOSTS * POINTS);
    assert_true(rf_json_num(q0, "worker", -1) == 0);
    assert_true(rf_json_num(q0, "node", -2) >= 0);
    /* `show listeners` lists the queues too: the same dpdk_queues schema,
     * column for column, so a JSON client sees one shape under one name. */
    char *lreply = tproc_ask("show listeners json");
    assert_non_null(lreply);
    rf_json *ldoc = rf_json_parse(lreply, NULL);
    free(lreply);
    assert_non_null(ldoc);
    const rf_json *lq0 = row0(ldoc, "dpdk_queues");
    size_t n_cols = 0, n_lcols = 0;
    for (const rf_json *c = q0->child; c; c = c->next, n_cols++)
        assert_non_null(rf_json_get(lq0, c->key));
    for (const rf_json *c = lq0->child; c; c = c->next)
        n_lcols++;
    assert_int_equal(n_lcols, n_cols);
    assert_true(rf_json_num(lq0, "port", -1) == 0);
    rf_json_free(ldoc);
    rf_json_free(doc);
    char *text = tproc_ask("show dpdk");
    assert_non_null(text);
    assert_non_null(strstr(text, "ipackets"));
    assert_non_null(strstr(text, "rx_nombuf"));
    assert_non_null(strstr(text, "cap0"));
    free(text);
    char *help = tproc_ask("help");
    assert_non_null(help);
    assert_non_null(strstr(help, "dpdk"));
    free(help);

    static char body[1 << 20];
    assert_int_equal(http_get(port + 1, "/metrics", body, sizeof(body)), 200);
    if (getenv("RF_TEST_VERBOSE"))
        for (const char *l = strstr(body, "ringflow_dpdk"); l; l = strstr(l + 1, "ringflow_dpdk"))
            printf("%.*s\n", (int)strcspn(l, "\n"), l);
    assert_true(metric(body, "ringflow_dpdk_port_ipackets_total{port=\"cap0\"}") == (double)frames);
    assert_true(metric(body, "ringflow_dpdk_port_ibytes_total{port=\"cap0\"}") ==
                (double)g_frame_bytes);
    assert_true(metric(body, "ringflow_dpdk_port_imissed_total{port=\"cap0\"}") == 0);
    assert_true(metric(body, "ringflow_dpdk_port_ierrors_total{port=\"cap0\"}") == 0);
    assert_true(metric(body, "ringflow_dpdk_port_rx_nombuf_total{port=\"cap0\"}") == 0);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 20000), 0);
    g_pid = 0;

    const char *log = tproc_read_file(d.err_path);
    assert_null(strstr(log, "continuing without DPDK"));
    assert_non_null(strstr(log, "dpdk queue 0 final: packets=52 datagrams=48"));
    assert_non_null(strstr(log, " bad_ip_checksum=1"));
    assert_non_null(strstr(log, " ip_fragment=1"));
    assert_non_null(strstr(log, " unknown_port=1"));
    assert_non_null(strstr(log, " not_udp=1"));

    char *aggs = strdup(tproc_read_dir_file("aggs.jsonl"));
    for (int h = 0; h < HOSTS; h++) {
        char series[128];
        snprintf(series, sizeof(series), "net,host=n%d rx:count", h);
        double c = json_value_of(aggs, series);
        if (isnan(c))
            fail_msg("no aggregate for %s", series);
        assert_true(c == POINTS);
        snprintf(series, sizeof(series), "net,host=n%d rx:sum", h);
        double s = json_value_of(aggs, series);
        if (isnan(s) || fabs(s - sum[h]) > 1e-9 * sum[h])
            fail_msg("%s: got %.17g want %.17g", series, s, sum[h]);
    }
    assert_null(strstr(aggs, "host=bad"));
    free(aggs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_dpdk_live, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
