/* End to end without a NIC: a generated capture read by the net_pcap vdev
 * (--no-huge --no-pci --in-memory), configured from YAML through
 * rf_dpdk_config_parse, delivered to handlers that run the real parsers, and
 * checked exactly: the events (series, values), the peers, and every drop
 * reason. One EAL per process, so this binary holds one test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/protocol/protocol.h"
#include "tests/dpdk/pkt_build.h"
#include "tests/ingest/ingest_test_util.h"

/* One input per protocol, as a shard has one per listener. */
typedef struct input {
    enum rf_listen_protocol protocol;
    rf_parse_ctx *parser;
    rf_event batch[64];
    collected out;
    unsigned chunks, bursts;
    int peer_family;
    uint16_t peer_port;
    char peer_text[RF_LISTEN_ADDR_TEXT_MAX];
    char peer6_text[RF_LISTEN_ADDR_TEXT_MAX]; /* the last IPv6 sender */
} input;

static void on_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    input *in = ctx;
    assert_null(l);
    assert_int_equal(c->flags, 0);
    assert_true(c->mono_ns > 0 && c->wall_ns > 0);
    in->chunks++;
    in->peer_family = c->peer->sa_family;
    rf_listen_addr_format(c->peer, c->peer_len, in->peer_text, sizeof(in->peer_text));
    if (c->peer->sa_family == AF_INET6)
        memcpy(in->peer6_text, in->peer_text, sizeof(in->peer6_text));
    in->peer_port = c->peer->sa_family == AF_INET
                        ? ntohs(((const struct sockaddr_in *)c->peer)->sin_port)
                        : ntohs(((const struct sockaddr_in6 *)c->peer)->sin6_port);
    const rf_recv_info rx = {.wall_ns = c->wall_ns, .mono_ns = c->mono_ns};
    if (in->protocol == RF_LISTEN_PROTO_INFLUX_LINE)
        rf_parse_influx(in->parser, &rx, c->data, c->len);
    else
        rf_parse_statsd(in->parser, &rx, c->data, c->len);
}

static void on_burst_end(void *ctx, const rf_listener *l)
{
    input *in = ctx;
    assert_null(l);
    in->bursts++;
    rf_parse_flush(in->parser);
}

/* The data event of the series whose canonical key is `key`, or NULL. */
static const rf_event *find_series(const collected *c, const char *key)
{
    uint64_t id = rf_series_id_of_key(key, strlen(key));
    bool defined = false;
    for (size_t i = 0; i < c->n; i++) {
        if (c->ev[i].series_id != id)
            continue;
        if (c->ev[i].kind == RF_KIND_SERIES_DEF) {
            const rf_series_key *k = (const rf_series_key *)(uintptr_t)c->ev[i].aux;
            assert_string_equal(k->text, key);
            defined = true;
        } else {
            assert_true(defined); /* the def comes first */
            return &c->ev[i];
        }
    }
    return NULL;
}

static size_t n_of_kind(const collected *c, bool defs)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        n += (c->ev[i].kind == RF_KIND_SERIES_DEF) == defs;
    return n;
}

static const uint8_t A4[4] = {10, 0, 0, 1}, B4[4] = {10, 0, 0, 2};
static const uint8_t A6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static const uint8_t B6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};

static pb_spec v4(uint16_t dport, const char *payload)
{
    pb_spec s = {.family = 4, .sport = 40000, .dport = dport, .payload = payload};
    memcpy(s.src4, A4, 4);
    memcpy(s.dst4, B4, 4);
    return s;
}

static pb_spec v6(uint16_t dport, const char *payload)
{
    pb_spec s = {.family = 6, .sport = 40006, .dport = dport, .payload = payload};
    memcpy(s.src6, A6, 16);
    memcpy(s.dst6, B6, 16);
    return s;
}

static char big_payload[1400];

/* Writes the capture; returns the number of frames. */
static unsigned write_capture(const char *path)
{
    FILE *f = pb_pcap_open(path);
    assert_non_null(f);
    pb_spec specs[32];
    unsigned n = 0;
    /* Delivered (8 datagrams). */
    specs[n++] = v4(8089, "cpu,host=a usage=1.5 1700000000000000000\n");
    specs[n] = v4(8125, "req:3|c\n"), specs[n++].vlan_tags = 1;
    specs[n++] = v6(8089, "mem,host=b free=42i,used=7i\n");
    specs[n] = v6(8125, "lat:12.5|ms|#env:prod\n"), specs[n++].vlan_tags = 2;
    specs[n] = v4(8089, "disk,host=c io=9\n"), specs[n++].no_udp_csum = true;
    specs[n] = v6(8125, "hits:1|c\n"), specs[n++].hop_by_hop = true;
    specs[n] = v4(8125, "x:1|g"), specs[n++].pad_to = 60; /* Ethernet padding ignored */
    specs[n++] = v4(8089, "not a valid line\n");          /* delivered, parser rejects */
    /* Dropped, one reason each (bad_udp_checksum twice). */
    specs[n] = v4(8089, "m f=1\n"), specs[n++].bad_ip_csum = true;  /* bad_ip_checksum */
    specs[n] = v4(8089, "m f=2\n"), specs[n++].ip_total_delta = 20; /* truncated */
    specs[n] = v4(8089, "m f=3\n"), specs[n++].fragment = true;     /* ip_fragment */
    specs[n] = v6(8089, "m f=4\n"), specs[n++].fragment = true;     /* ip_fragment */
    specs[n] = v4(8089, "m f=5\n"), specs[n++].proto = 6;           /* not_udp */
    specs[n++] = v4(9999, "m f=6\n");                               /* unknown_port */
    specs[n] = v4(8089, "m f=7\n"), specs[n++].udp_len_delta = 10;  /* bad_udp_length */
    specs[n] = v4(8089, "m f=8\n"), specs[n++].bad_udp_csum = true; /* bad_udp_checksum */
    specs[n] = v6(8089, "m f=9\n"), specs[n++].no_udp_csum = true;  /* bad_udp_checksum */
    specs[n] = v4(8089, "m f=10\n"), specs[n++].ihl = 4;            /* bad_ip_header */
    specs[n] = v4(8125, "m:1|c\n"), specs[n++].cut = 30;            /* truncated (frame cut) */
    memset(big_payload, 'x', sizeof(big_payload) - 1);
    specs[n++] = v4(8125, big_payload); /* 1442 bytes > 1024 data room: multi_segment */
    unsigned seq = 0;
    pb_frame fr;
    for (unsigned i = 0; i < n; i++) {
        pb_build(&specs[i], &fr);
        pb_pcap_write(f, &fr, seq++);
    }
    pb_build_arp(&fr); /* not_ip */
    pb_pcap_write(f, &fr, seq++);
    fclose(f);
    return seq;
}

static const char *yaml_fmt = "dpdk:\n"
                              "  enabled: true\n"
                              "  huge_pages: false\n"
                              "  pci: false\n"
                              "  in_memory: true\n"
                              "  memory: 128MiB\n"
                              "  eal_args: [--no-telemetry, --log-level=warning]\n"
                              "  ports:\n"
                              "    - name: cap0\n"
                              "      vdev: net_pcap0,rx_pcap=%s\n"
                              "      mbufs: 1023\n"
                              "      mbuf_cache: 32\n"
                              "      mbuf_size: 1024\n"
                              "      rx_descriptors: 256\n"
                              "      burst: 8\n"
                              "  udp_ports:\n"
                              "    - {port: 8089, protocol: influx_line}\n"
                              "    - {port: 8125, protocol: statsd}\n";

static void test_pcap_end_to_end(void **state)
{
    (void)state;
    char dir[] = "/tmp/rf_dpdk_pcap_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/in.pcap", dir);
    unsigned frames = write_capture(path);

    char yaml[2048];
    snprintf(yaml, sizeof(yaml), yaml_fmt, path);
    rf_cfg_doc *doc;
    rf_err err;
    assert_int_equal(rf_cfg_load_string(yaml, strlen(yaml), "<test>", &doc, &err), 0);
    rf_dpdk_config cfg;
    int rc = rf_dpdk_config_parse(rf_cfg_root(doc), &cfg, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);

    rf_dpdk *d = NULL;
    rc = rf_dpdk_open(&cfg, 1, &d, &err);
    if (rc < 0)
        fail_msg("open: %s", err.msg);
    assert_int_equal(rf_dpdk_port_count(d), 1);
    assert_string_equal(rf_dpdk_port_name(d, 0), "cap0");
    assert_int_equal(rf_dpdk_queue_count(d, 0), 1);
    rf_dpdk_queue *q = rf_dpdk_queue_at(d, 0, 0);
    assert_non_null(q);
    assert_null(rf_dpdk_queue_at(d, 0, 1));

    static input lp = {.protocol = RF_LISTEN_PROTO_INFLUX_LINE};
    static input sd = {.protocol = RF_LISTEN_PROTO_STATSD};
    input *ins[2] = {&lp, &sd};
    const uint16_t ports[2] = {8089, 8125};
    for (int i = 0; i < 2; i++) {
        rf_parse_config pc = {.source_id = (uint16_t)i};
        ins[i]->parser =
            rf_parse_ctx_new(&pc, ins[i]->batch, 64, collect_flush, &ins[i]->out, &err);
        assert_non_null(ins[i]->parser);
        rf_listen_handler h = {.on_data = on_data, .on_burst_end = on_burst_end, .ctx = ins[i]};
        assert_int_equal(rf_dpdk_queue_set_handler(q, ports[i], &h, &err), 0);
    }
    rf_listen_handler h = {.on_data = on_data, .ctx = &lp};
    assert_int_equal(rf_dpdk_queue_set_handler(q, 9999, &h, &err), -EINVAL);

    assert_int_equal(rf_dpdk_thread_register(&err), 0);
    /* net_pcap reads the file once; poll until every frame came through. */
    int64_t deadline = rf_clock_mono_ns() + 10 * RF_NS_PER_S;
    while (rf_dpdk_queue_counter(q, RF_DC_PACKETS) < frames && rf_clock_mono_ns() < deadline)
        rf_dpdk_queue_poll(q, 0);
    for (int i = 0; i < 100; i++) /* nothing more may arrive */
        assert_int_equal(rf_dpdk_queue_poll(q, 0), 0);

    assert_int_equal(rf_dpdk_queue_counter(q, RF_DC_PACKETS), frames);
    assert_int_equal(rf_dpdk_queue_counter(q, RF_DC_DATAGRAMS), 8);
    assert_true(rf_dpdk_queue_counter(q, RF_DC_BURSTS) >= (frames + 7) / 8);
    static const struct {
        enum rf_dpdk_counter_id id;
        uint64_t n;
    } drops[] = {
        {RF_DC_DROP_NOT_IP, 1},           {RF_DC_DROP_IP_FRAGMENT, 2},
        {RF_DC_DROP_BAD_IP_HEADER, 1},    {RF_DC_DROP_BAD_IP_CHECKSUM, 1},
        {RF_DC_DROP_NOT_UDP, 1},          {RF_DC_DROP_BAD_UDP_LENGTH, 1},
        {RF_DC_DROP_BAD_UDP_CHECKSUM, 2}, {RF_DC_DROP_UNKNOWN_PORT, 1},
        {RF_DC_DROP_MULTI_SEGMENT, 1},    {RF_DC_DROP_TRUNCATED, 2},
    };
    uint64_t dropped = 0;
    for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
        uint64_t got = rf_dpdk_queue_counter(q, drops[i].id);
        if (got != drops[i].n)
            fail_msg("%s: %llu, expected %llu", rf_dpdk_counter_name(drops[i].id),
                     (unsigned long long)got, (unsigned long long)drops[i].n);
        dropped += got;
    }
    assert_int_equal(dropped + 8, frames);
    /* what show dpdk prints: the total and every reason, in counter order */
    char reasons[512];
    assert_int_equal(rf_dpdk_queue_drops(q, reasons, sizeof(reasons)), dropped);
    assert_string_equal(reasons, "not_ip=1,ip_fragment=2,bad_ip_header=1,bad_ip_checksum=1,"
                                 "not_udp=1,bad_udp_length=1,bad_udp_checksum=2,unknown_port=1,"
                                 "multi_segment=1,truncated=2");
    char small[12]; /* cut, never overrun; the total still counts every reason */
    assert_int_equal(rf_dpdk_queue_drops(q, small, sizeof(small)), dropped);
    assert_string_equal(small, "not_ip=1,ip");

    rf_dpdk_port_stats st;
    assert_int_equal(rf_dpdk_port_stats_get(d, 0, &st, &err), 0);
    assert_int_equal(st.ipackets, frames);
    assert_int_equal(st.rx_nombuf, 0);

    /* Line protocol: 4 datagrams, one rejected line, 5 series. */
    assert_int_equal(lp.chunks, 4);
    assert_int_equal(rf_parse_counter(lp.parser, RF_PC_LINES_REJECTED), 1);
    assert_int_equal(n_of_kind(&lp.out, false), 4);
    assert_int_equal(n_of_kind(&lp.out, true), 4);
    const rf_event *e = find_series(&lp.out, "cpu,host=a usage");
    assert_non_null(e);
    assert_int_equal(e->value_type, RF_VALUE_F64);
    assert_true(e->value.f64 == 1.5);
    assert_int_equal(e->event_time_ns, 1700000000000000000LL);
    e = find_series(&lp.out, "mem,host=b free");
    assert_non_null(e);
    assert_int_equal(e->value.i64, 42);
    e = find_series(&lp.out, "mem,host=b used");
    assert_non_null(e);
    assert_int_equal(e->value.i64, 7);
    e = find_series(&lp.out, "disk,host=c io");
    assert_non_null(e);
    assert_true(e->value.f64 == 9.0);

    /* StatsD: 4 datagrams, 4 series. */
    assert_int_equal(sd.chunks, 4);
    assert_int_equal(rf_parse_counter(sd.parser, RF_PC_LINES_REJECTED), 0);
    assert_int_equal(n_of_kind(&sd.out, false), 4);
    e = find_series(&sd.out, "req count");
    assert_non_null(e);
    assert_int_equal(e->kind, RF_KIND_COUNTER);
    assert_true(e->value.f64 == 3.0);
    e = find_series(&sd.out, "lat,env=prod timer");
    assert_non_null(e);
    assert_true(e->value.f64 == 12.5);
    e = find_series(&sd.out, "hits count");
    assert_non_null(e);
    e = find_series(&sd.out, "x gauge");
    assert_non_null(e);
    assert_true(e->value.f64 == 1.0);

    /* Peers: the last datagram per protocol. */
    assert_int_equal(lp.peer_family, AF_INET);
    assert_string_equal(lp.peer_text, "10.0.0.1:40000");
    assert_int_equal(sd.peer_family, AF_INET);
    assert_string_equal(lp.peer6_text, "[2001:db8::1]:40006");
    assert_string_equal(sd.peer6_text, "[2001:db8::1]:40006");
    assert_true(lp.bursts >= 1 && sd.bursts >= 1);
    assert_int_equal(rf_dpdk_queue_counter(q, RF_DC_BYTES),
                     strlen("cpu,host=a usage=1.5 1700000000000000000\n") + strlen("req:3|c\n") +
                         strlen("mem,host=b free=42i,used=7i\n") +
                         strlen("lat:12.5|ms|#env:prod\n") + strlen("disk,host=c io=9\n") +
                         strlen("hits:1|c\n") + strlen("x:1|g") + strlen("not a valid line\n"));

    rf_dpdk_thread_unregister();
    for (int i = 0; i < 2; i++) {
        rf_parse_ctx_free(ins[i]->parser);
        collected_free(&ins[i]->out);
    }
    rf_dpdk_close(d);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcap_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
