/* `ringflow replay REC --into DIR` over every protocol code a recording can
 * hold (storage/recfile: what ringflowd's tap writes, its listener's
 * protocol): collectd datagrams (4) are parsed as collectd, signed ones
 * checked with the configuration's auth file; raw HTTP requests (3) and an
 * unknown code are skipped, each counted under its own name. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../daemon/daemon_proc.h"
#include "storage/recfile/recfile.h"

#define NS_PER_S INT64_C(1000000000)

static const char *ringflow(void)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    return cli;
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

typedef struct pkt {
    uint8_t b[512];
    size_t n;
} pkt;

static void put_part(pkt *p, uint16_t type, const void *payload, size_t len)
{
    uint16_t plen = (uint16_t)(4 + len);
    uint8_t h[4] = {(uint8_t)(type >> 8), (uint8_t)type, (uint8_t)(plen >> 8), (uint8_t)plen};
    memcpy(p->b + p->n, h, 4);
    memcpy(p->b + p->n + 4, payload, len);
    p->n += 4 + len;
}

static void put_str(pkt *p, uint16_t type, const char *s)
{
    put_part(p, type, s, strlen(s) + 1);
}

/* One gauge value list of host h, at time t_s (whole seconds). */
static pkt gauge(const char *h, int64_t t_s, double v)
{
    pkt p = {0};
    put_str(&p, 0, h);
    uint8_t t[8];
    for (int i = 7, k = 0; i >= 0; i--, k++)
        t[i] = (uint8_t)((uint64_t)t_s >> (8 * k));
    put_part(&p, 1, t, 8);
    put_str(&p, 2, "app");
    put_str(&p, 4, "gauge");
    uint8_t vals[2 + 1 + 8] = {0, 1, 1};
    memcpy(vals + 3, &v, 8);
    put_part(&p, 6, vals, sizeof(vals));
    return p;
}

static pkt sign(const pkt *in, const char *user, const char *password)
{
    pkt o = {0};
    size_t ul = strlen(user), plen = 36 + ul;
    o.b[0] = 0x02, o.b[2] = (uint8_t)(plen >> 8), o.b[3] = (uint8_t)plen;
    memcpy(o.b + 36, user, ul);
    memcpy(o.b + plen, in->b, in->n);
    o.n = plen + in->n;
    unsigned int mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), password, (int)strlen(password), o.b + 36, ul + in->n,
                         o.b + 4, &mac_len));
    return o;
}

static void put(rf_rec_writer *w, const char *listener, uint8_t transport, uint8_t protocol,
                int64_t wall, const void *payload, size_t len)
{
    rf_rec r = {
        .wall_ns = wall,
        .mono_ns = 5000 * NS_PER_S + (wall % (100 * NS_PER_S)),
        .transport = transport,
        .protocol = protocol,
        .src_port = 40000,
        .src_family = 4,
        .src_addr = {127, 0, 0, 1},
        .name = listener,
        .payload = payload,
        .payload_len = (uint32_t)len,
    };
    rf_err err;
    if (rf_rec_writer_append(w, &r, &err) != 0)
        fail_msg("append: %s", err.msg);
}

static void test_replay_every_protocol(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-replay-protocols");
    int port = tproc_port_base();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    const int64_t t0 = (int64_t)now.tv_sec - 1800;
    char path[512], auth[512];
    snprintf(path, sizeof(path), "%s/rec.rfrec", tproc_dir());
    snprintf(auth, sizeof(auth), "%s/collectd.passwd", tproc_dir());
    tproc_write_file("collectd.passwd", "alice: s3cret\n");

    rf_rec_writer *w;
    rf_err err;
    rf_rec_writer_options wo = {.path = path};
    if (rf_rec_writer_open(&w, &wo, &err) != 0)
        fail_msg("open: %s", err.msg);
    pkt plain = gauge("plain-host", t0, 21.5);
    pkt g2 = gauge("signed-host", t0 + 1, -0.125);
    pkt good = sign(&g2, "alice", "s3cret");
    pkt g3 = gauge("forged-host", t0 + 2, 99);
    pkt forged = sign(&g3, "alice", "guess");
    put(w, "cd", RF_REC_UDP, RF_REC_COLLECTD, t0 * NS_PER_S, plain.b, plain.n);
    put(w, "cd", RF_REC_UDP, RF_REC_COLLECTD, (t0 + 1) * NS_PER_S, good.b, good.n);
    put(w, "cd", RF_REC_UDP, RF_REC_COLLECTD, (t0 + 2) * NS_PER_S, forged.b, forged.n);
    const char http[] = "POST /write?db=x HTTP/1.1\r\nContent-Length: 8\r\n\r\nm v=1 1\n";
    put(w, "web", RF_REC_TCP, RF_REC_HTTP, (t0 + 3) * NS_PER_S, http, strlen(http));
    put(w, "odd", RF_REC_UDP, 9, (t0 + 4) * NS_PER_S, "x v=1\n", 6);
    if (rf_rec_writer_close(w, &err) != 0)
        fail_msg("close: %s", err.msg);

    char cfg[2048];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2}\n"
             "listeners:\n"
             "  - {name: cd, transport: udp, protocol: collectd, port: %d}\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "ingest:\n"
             "  timestamp_past: 1h\n"
             "  collectd: {security_level: none, auth_file: \"%s\"}\n"
             "pipeline:\n"
             "  sinks:\n"
             "    - {name: store, type: store}\n"
             "  routes:\n"
             "    - {name: data, subject: \"telemetry.>\", sinks: [store]}\n",
             port, port + 1, auth);
    tproc_write_file("replay.yaml", cfg);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s replay rec.rfrec --into out --config replay.yaml --json",
             ringflow());
    char *json = tproc_shell_ok(cmd);
    assert_non_null(json);
    printf("%s\n", json);
    assert_int_equal(json_num(json, "records"), 5);
    assert_int_equal(json_num(json, "http_records"), 1);
    assert_int_equal(json_num(json, "bad_protocol"), 1);
    assert_int_equal(json_num(json, "lines_ok"), 2);
    assert_int_equal(json_num(json, "bad_signature"), 1);
    free(json);

    snprintf(cmd, sizeof(cmd), "%s query --dir out/store app_value --format csv", ringflow());
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out);
    printf("%s", out);
    char line[256];
    snprintf(line, sizeof(line), "%lld000000000,app_value,value,host=plain-host;type=gauge,21.5\n",
             (long long)t0);
    if (!strstr(out, line))
        fail_msg("want %s in:\n%s", line, out);
    snprintf(line, sizeof(line),
             "%lld000000000,app_value,value,host=signed-host;type=gauge,-0.125\n",
             (long long)(t0 + 1));
    if (!strstr(out, line))
        fail_msg("want %s in:\n%s", line, out);
    assert_null(strstr(out, "forged-host"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_every_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
