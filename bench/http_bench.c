/* HTTP ingest against the TCP line listener, per core, on the same stream.
 *
 *   http/influx/tcp_lines/<read>   the TCP listener's work without its
 *                                  syscalls: a stream of line-protocol
 *                                  bodies framed by rf_linebuf in reads of
 *                                  <read> bytes, the lines parsed
 *   http/influx/plain/<read>       the same lines as POST /write bodies of
 *                                  5,000 lines, fed to the HTTP layer in
 *                                  reads of <read> bytes (keep-alive), parsed
 *                                  by the endpoint; answers consumed
 *   http/influx/gzip/<read>        the same, each body gzip'd (level 6):
 *                                  inflating is in the measure, not deflating
 *   http/prom/remote_write/<read>  remote_write requests of 2,000 series x 1
 *                                  sample with 8 labels (Prometheus' default
 *                                  max_samples_per_send), snappy + protobuf
 *                                  decode, mapping, parsing
 *   http/otlp/protobuf/<read>      OTLP requests of 500 gauges x 4 points with
 *                                  2 attributes, 3 resource attributes
 * items/s: points (events) out of the parser; the flush callback only counts.
 * Lines: "cpu,host=h-NNNN,region=r-N,az=a-N,service=s-NN usage_idle=..,
 * usage_user=..,load=..i <ns>", 1000 series; the parse caches are warm. */
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bench/shim/bench_shim.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/listen/listen_pvt.h"

#define LINES_PER_BODY 5000
#define BODIES 8

typedef struct sink {
    uint64_t events;
} sink;

static void sink_flush(void *user, rf_event *ev, size_t n)
{
    sink *s = user;
    s->events += rf_parse_output_discard(ev, n);
}

/* BODIES bodies of LINES_PER_BODY lines, one after the other. */
static char *make_lines(size_t *len_out, size_t *body_len)
{
    size_t cap = (size_t)BODIES * LINES_PER_BODY * 160, len = 0;
    char *buf = malloc(cap);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int64_t ts = 1700000000000000000LL;
    for (int b = 0; b < BODIES; b++) {
        size_t start = len;
        for (int i = 0; i < LINES_PER_BODY; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            unsigned s = (unsigned)((b * LINES_PER_BODY + i) * 2654435761u % 1000);
            len += (size_t)snprintf(buf + len, cap - len,
                                    "cpu,host=h-%04u,region=r-%u,az=a-%u,service=s-%02u "
                                    "usage_idle=%u.%02u,usage_user=%u.%03u,load=%ui %lld\n",
                                    s, s % 4, s % 6, s % 30, (unsigned)(x % 100),
                                    (unsigned)((x >> 8) % 100), (unsigned)((x >> 16) % 100),
                                    (unsigned)((x >> 24) % 1000), (unsigned)((x >> 40) % 64),
                                    (long long)(ts + b * LINES_PER_BODY + i));
        }
        body_len[b] = len - start;
    }
    *len_out = len;
    return buf;
}

static void lines_emit(void *ctx, const char *data, size_t len, uint32_t flags)
{
    (void)flags;
    rf_parse_ctx *pc = ctx;
    static const rf_recv_info rx = {.wall_ns = 1700000000000000000LL, .mono_ns = 1};
    rf_parse_influx(pc, &rx, data, len);
}

static rf_parse_ctx *new_ctx(sink *sk, rf_event *batch)
{
    rf_parse_config cfg = {.source_id = 1};
    return rf_parse_ctx_new(&cfg, batch, 256, sink_flush, sk, NULL);
}

static void bm_tcp_lines(rf_bench_state *st)
{
    size_t read = (size_t)rf_bench_arg(st, 0), len, bl[BODIES];
    char *lines = make_lines(&len, bl);
    static rf_event batch[256];
    sink sk = {0};
    rf_parse_ctx *pc = new_ctx(&sk, batch);
    char *held = malloc(65536);
    rf_linebuf lb = {.buf = held, .cap = 65536};
    uint64_t streams = 0;
    while (rf_bench_keep_running(st)) {
        for (size_t off = 0; off < len; off += read) {
            size_t n = len - off < read ? len - off : read;
            rf_linebuf_feed(&lb, lines + off, n, lines_emit, pc);
            rf_parse_flush(pc); /* once per read, as on_burst_end does per poll */
        }
        streams++;
    }
    rf_bench_set_items_processed(st, (int64_t)sk.events);
    rf_bench_set_bytes_processed(st, (int64_t)(streams * len));
    rf_parse_ctx_free(pc);
    free(held);
    free(lines);
}

static size_t gzip_of(const char *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, Z_FINISH);
    size_t n = z.total_out;
    deflateEnd(&z);
    return n;
}

/* The requests of a stream, back to back, as a keep-alive client sends them. */
static char *make_requests(const char *target, const char *enc, const char *const *bodies,
                           const size_t *lens, int n, size_t *out_len)
{
    size_t cap = 4096;
    for (int i = 0; i < n; i++)
        cap += lens[i] + 256;
    char *buf = malloc(cap);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        o += (size_t)snprintf(
            buf + o, cap - o, "POST %s HTTP/1.1\r\nHost: b\r\n%s%s%sContent-Length: %zu\r\n\r\n",
            target, enc ? "Content-Encoding: " : "", enc ? enc : "", enc ? "\r\n" : "", lens[i]);
        memcpy(buf + o, bodies[i], lens[i]);
        o += lens[i];
    }
    *out_len = o;
    return buf;
}

static void run_http(rf_bench_state *st, const char *req, size_t len, bool prom)
{
    size_t read = (size_t)rf_bench_arg(st, 0);
    static rf_event batch[256];
    sink sk = {0};
    rf_parse_ctx *pc = new_ctx(&sk, batch);
    rf_http_server *srv = rf_http_server_new(NULL, NULL);
    rf_http_ingest in = {.parse = pc};
    rf_http_ingest_add_influx(srv, &in, NULL);
    rf_http_ingest_add_prom(srv, &in, 0, NULL);
    rf_http_ingest_add_otlp(srv, &in, NULL);
    rf_http_conn *c = rf_http_conn_new(srv, "bench", NULL);
    uint64_t streams = 0, refused = 0;
    while (rf_bench_keep_running(st)) {
        for (size_t off = 0; off < len; off += read) {
            size_t n = len - off < read ? len - off : read;
            rf_http_conn_feed(c, req + off, n, 1700000000000000000LL, 1);
            const char *o;
            size_t ol;
            rf_http_conn_output(c, &o, &ol);
            if (ol >= 12 && memcmp(o, "HTTP/1.1 204", 12) && memcmp(o, "HTTP/1.1 200", 12))
                refused++;
            rf_http_conn_consume(c, ol);
        }
        streams++;
    }
    if (refused || rf_http_conn_closing(c))
        rf_bench_skip_with_error(st, "requests were refused");
    rf_bench_set_items_processed(st, (int64_t)sk.events);
    rf_bench_set_bytes_processed(st, (int64_t)(streams * len));
    (void)prom;
    rf_http_conn_free(c);
    rf_http_ingest_release(&in);
    rf_http_server_free(srv);
    rf_parse_ctx_free(pc);
}

static void bm_http_influx(rf_bench_state *st, bool gz)
{
    size_t len, bl[BODIES];
    char *lines = make_lines(&len, bl);
    const char *bodies[BODIES];
    size_t lens[BODIES];
    char *zbuf[BODIES] = {0};
    size_t off = 0;
    for (int b = 0; b < BODIES; b++) {
        bodies[b] = lines + off;
        lens[b] = bl[b];
        if (gz) {
            zbuf[b] = malloc(bl[b] + 1024);
            lens[b] = gzip_of(lines + off, bl[b], (uint8_t *)zbuf[b], bl[b] + 1024);
            bodies[b] = zbuf[b];
        }
        off += bl[b];
    }
    size_t rl;
    char *req = make_requests("/write?db=bench", gz ? "gzip" : NULL, bodies, lens, BODIES, &rl);
    run_http(st, req, rl, false);
    free(req);
    for (int b = 0; b < BODIES; b++)
        free(zbuf[b]);
    free(lines);
}

static void bm_http_plain(rf_bench_state *st)
{
    bm_http_influx(st, false);
}
static void bm_http_gzip(rf_bench_state *st)
{
    bm_http_influx(st, true);
}

/* protobuf by hand, as a sender writes it */
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

static size_t put_ld(uint8_t *p, int field, const void *b, size_t len)
{
    size_t n = 0;
    p[n++] = (uint8_t)(field << 3 | 2);
    n += put_varint(p + n, len);
    memmove(p + n, b, len);
    return n + len;
}

static size_t put_label(uint8_t *p, const char *k, const char *v)
{
    uint8_t in[256];
    size_t n = put_ld(in, 1, k, strlen(k));
    n += put_ld(in + n, 2, v, strlen(v));
    return put_ld(p, 1, in, n);
}

static void bm_prom(rf_bench_state *st)
{
    enum {
        SERIES = 2000,
        REQS = 4
    };
    const char *bodies[REQS];
    size_t lens[REQS];
    char *sn[REQS];
    uint8_t *wr = malloc(SERIES * 512);
    uint64_t x = 42;
    for (int r = 0; r < REQS; r++) {
        size_t wl = 0;
        for (int s = 0; s < SERIES; s++) {
            uint8_t ts[512];
            char v[32];
            size_t n = 0;
            snprintf(v, sizeof(v), "node_cpu_seconds_total");
            n += put_label(ts + n, "__name__", v);
            snprintf(v, sizeof(v), "10.0.%d.%d:9100", s / 250, s % 250);
            n += put_label(ts + n, "instance", v);
            n += put_label(ts + n, "job", "node");
            snprintf(v, sizeof(v), "%d", s % 16);
            n += put_label(ts + n, "cpu", v);
            n += put_label(ts + n, "mode", s % 2 ? "user" : "idle");
            n += put_label(ts + n, "dc", "eu-west-1");
            n += put_label(ts + n, "env", "prod");
            n += put_label(ts + n, "team", "infra");
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            uint8_t sm[32];
            size_t sl = 0;
            double d = (double)(x % 1000000) / 100.0;
            sm[sl++] = 0x09;
            memcpy(sm + sl, &d, 8);
            sl += 8;
            sm[sl++] = 0x10;
            sl += put_varint(sm + sl, (uint64_t)(1700000000000LL + r * 15000));
            n += put_ld(ts + n, 2, sm, sl);
            wl += put_ld(wr + wl, 1, ts, n);
        }
        size_t cl = snappy_max_compressed_length(wl);
        sn[r] = malloc(cl);
        snappy_compress((const char *)wr, wl, sn[r], &cl);
        bodies[r] = sn[r];
        lens[r] = cl;
    }
    size_t rl;
    char *req = make_requests("/api/v1/write", "snappy", bodies, lens, REQS, &rl);
    run_http(st, req, rl, true);
    free(req);
    for (int r = 0; r < REQS; r++)
        free(sn[r]);
    free(wr);
}

/* OTLP: one resource (service.name, host.name, telemetry.sdk.version), 500
 * gauges of 4 points with 2 attributes each, as protobuf. */
static void bm_otlp(rf_bench_state *st)
{
    enum {
        METRICS = 500,
        POINTS = 4,
        REQS = 4
    };
    static uint8_t rq[REQS][METRICS * POINTS * 96 + 4096];
    const char *bodies[REQS];
    size_t lens[REQS];
    uint8_t *rm = malloc(sizeof(rq[0])), *sm = malloc(sizeof(rq[0]));
    uint64_t x = 7;
    for (int r = 0; r < REQS; r++) {
        size_t sl = 0;
        for (int m = 0; m < METRICS; m++) {
            uint8_t metric[POINTS * 96 + 64], gauge[POINTS * 96];
            size_t gl = 0;
            for (int p = 0; p < POINTS; p++) {
                uint8_t dp[96], kv[48], any[24];
                size_t dl = 0;
                char v[16];
                snprintf(v, sizeof(v), "cpu%d", p);
                size_t al = put_ld(any, 1, v, strlen(v));
                size_t kl = put_ld(kv, 1, "cpu", 3);
                kl += put_ld(kv + kl, 2, any, al);
                dl += put_ld(dp + dl, 7, kv, kl);
                al = put_ld(any, 1, p % 2 ? "user" : "idle", 4);
                kl = put_ld(kv, 1, "state", 5);
                kl += put_ld(kv + kl, 2, any, al);
                dl += put_ld(dp + dl, 7, kv, kl);
                uint64_t t = 1700000000000000000ull + (uint64_t)r * 15000000000ull;
                dp[dl++] = 0x19;
                memcpy(dp + dl, &t, 8);
                dl += 8;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                double d = (double)(x % 100000) / 100.0;
                dp[dl++] = 0x21;
                memcpy(dp + dl, &d, 8);
                dl += 8;
                gl += put_ld(gauge + gl, 1, dp, dl);
            }
            char name[48];
            snprintf(name, sizeof(name), "system.cpu.time.%d", m);
            size_t ml = put_ld(metric, 1, name, strlen(name));
            ml += put_ld(metric + ml, 5, gauge, gl);
            sl += put_ld(sm + sl, 2, metric, ml);
        }
        uint8_t res[256], kv[96], any[48];
        size_t rl = 0;
        static const char *const attrs[][2] = {{"service.name", "node-exporter"},
                                               {"host.name", "web-01"},
                                               {"telemetry.sdk.version", "1.9.0"}};
        for (int a = 0; a < 3; a++) {
            size_t al = put_ld(any, 1, attrs[a][1], strlen(attrs[a][1]));
            size_t kl = put_ld(kv, 1, attrs[a][0], strlen(attrs[a][0]));
            kl += put_ld(kv + kl, 2, any, al);
            rl += put_ld(res + rl, 1, kv, kl);
        }
        size_t rml = put_ld(rm, 1, res, rl);
        rml += put_ld(rm + rml, 2, sm, sl);
        lens[r] = put_ld(rq[r], 1, rm, rml);
        bodies[r] = (const char *)rq[r];
    }
    size_t total;
    char *req = make_requests("/v1/metrics", NULL, bodies, lens, REQS, &total);
    run_http(st, req, total, true);
    free(req);
    free(rm);
    free(sm);
}

RF_BENCH_REGISTER(http_benchmarks)
{
    static const int64_t reads[] = {16384};
    rf_bench_register_args("http/influx/tcp_lines", bm_tcp_lines, reads, 1);
    rf_bench_register_args("http/influx/plain", bm_http_plain, reads, 1);
    rf_bench_register_args("http/influx/gzip", bm_http_gzip, reads, 1);
    rf_bench_register_args("http/prom/remote_write", bm_prom, reads, 1);
    rf_bench_register_args("http/otlp/protobuf", bm_otlp, reads, 1);
}
