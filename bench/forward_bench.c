/* The HTTP forwarders' sender (stages/forward): what it costs to turn a
 * request's worth of buffered lines into the body that is sent.
 *
 *   forward/encode_prom/reused/<shape>  rf_fwd_body_prom with one body kept
 *                                       across requests, as the sender does:
 *                                       protobuf WriteRequest from the lines,
 *                                       then snappy
 *   forward/encode_prom/fresh/<shape>   rf_fwd_encode_prom: the same with new
 *                                       buffers per request (malloc'd, freed)
 *   forward/encode_influx_gzip/<level>  rf_fwd_body_gzip of the lines of shape 1
 *                                       at zlib level <level> (influx_http)
 *
 * A request is 10,000 lines (the sinks' default max_samples), written as the
 * sink writes them ("<series key>=<value> <ns>\n"). Shapes: 0 is the lines of
 * scripts/forward-bench.sh (fwdbench,host=h<i> v=<integer>, 1,000 series);
 * 1 has three tags, a 40-byte key and two-decimal values (10,000 series).
 * items/s is samples per second of CPU time; bytes/s is line bytes in. */
#include <stdio.h>
#include <stdlib.h>

#include "bench/shim/bench_shim.h"
#include "stages/forward/forward.h"

#define LINES 10000u

typedef struct request {
    char *text;
    size_t len;
} request;

static const request *request_get(int shape)
{
    static request cache[2];
    request *r = &cache[shape & 1];
    if (r->text)
        return r;
    r->text = malloc(LINES * 160);
    if (!r->text)
        return NULL;
    int64_t t = 1796155462000000000ll;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 0; i < LINES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int n;
        if (shape == 0)
            n = sprintf(r->text + r->len, "fwdbench,host=h%u v=%u %lld\n", i % 1000, i,
                        (long long)(t + (int64_t)(i / 1000) * 1000000));
        else
            n = sprintf(r->text + r->len,
                        "system,dc=eu%u,host=server-%05u.example.com,service=api "
                        "usage_idle=%g %lld\n",
                        i % 4, i, (double)(x % 100000) / 100.0, (long long)(t + i * 1000));
        r->len += (size_t)n;
    }
    return r;
}

static void bm_encode_prom_reused(rf_bench_state *s)
{
    const request *r = request_get((int)rf_bench_arg(s, 0));
    rf_fwd_body *b = rf_fwd_body_new();
    if (!r || !b) {
        rf_bench_skip_with_error(s, "setup failed");
        rf_fwd_body_free(b);
        return;
    }
    uint64_t samples = 0, unsupported = 0;
    size_t out = 0;
    while (rf_bench_keep_running(s)) {
        if (rf_fwd_body_prom(b, r->text, r->len, &samples, &unsupported)) {
            rf_bench_skip_with_error(s, "encode failed");
            break;
        }
        rf_bench_do_not_optimize(rf_fwd_body_data(b, &out));
    }
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)samples);
    rf_bench_set_bytes_processed(s, rf_bench_iterations(s) * (int64_t)r->len);
    rf_bench_counter(s, "body_bytes_per_sample", samples ? (double)out / (double)samples : 0,
                     false);
    rf_fwd_body_free(b);
}

static void bm_encode_prom_fresh(rf_bench_state *s)
{
    const request *r = request_get((int)rf_bench_arg(s, 0));
    if (!r) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    uint64_t samples = 0, unsupported = 0;
    while (rf_bench_keep_running(s)) {
        uint8_t *body = NULL;
        size_t len = 0;
        if (rf_fwd_encode_prom(r->text, r->len, &body, &len, &samples, &unsupported)) {
            rf_bench_skip_with_error(s, "encode failed");
            break;
        }
        rf_bench_do_not_optimize(body);
        free(body);
    }
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)samples);
    rf_bench_set_bytes_processed(s, rf_bench_iterations(s) * (int64_t)r->len);
}

static void bm_encode_influx_gzip(rf_bench_state *s)
{
    const request *r = request_get(1);
    rf_fwd_body *b = rf_fwd_body_new();
    if (!r || !b) {
        rf_bench_skip_with_error(s, "setup failed");
        rf_fwd_body_free(b);
        return;
    }
    size_t out = 0;
    while (rf_bench_keep_running(s)) {
        if (rf_fwd_body_gzip(b, r->text, r->len, (int)rf_bench_arg(s, 0))) {
            rf_bench_skip_with_error(s, "gzip failed");
            break;
        }
        rf_bench_do_not_optimize(rf_fwd_body_data(b, &out));
    }
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)LINES);
    rf_bench_set_bytes_processed(s, rf_bench_iterations(s) * (int64_t)r->len);
    rf_bench_counter(s, "ratio", (double)r->len / (double)(out ? out : 1), false);
    rf_fwd_body_free(b);
}

RF_BENCH_REGISTER(forward_benchmarks)
{
    static const int64_t shapes[] = {0, 1};
    static const int64_t levels[] = {1, 6};
    rf_bench_register_args("forward/encode_prom/reused", bm_encode_prom_reused, shapes, 2);
    rf_bench_register_args("forward/encode_prom/fresh", bm_encode_prom_fresh, shapes, 2);
    rf_bench_register_args("forward/encode_influx_gzip", bm_encode_influx_gzip, levels, 2);
}
