/* Parser throughput: InfluxDB line protocol, StatsD/DogStatsD and Graphite on
 * realistic input, one core, one parse context (as one ingest thread).
 *
 *   parse/influx/10tags5fields/<series>  lines of ~270 bytes: measurement, 10
 *                                        tags, 3 floats + 2 integers, ns time
 *   parse/influx/1tag1field/<series>     short lines (~50 bytes)
 *   parse/statsd/dogstatsd/<series>      "name:v|type|@rate|#6 tags"
 *   parse/graphite/plain/<series>        "collectd.host.plugin.type value ts"
 *   parse/influx/10tags5fields_id/...    the wide lines with a request_id tag of
 *                                        its own per line, ingest.correlation.id_tag
 *                                        set: the tag is cut out of the series
 *   parse/influx/10tags5fields_idtag_unused/...  id_tag set, lines without it
 *   parse/statsd/dogstatsd_id/...        the DogStatsD lines with request_id
 *
 * The input holds 1000 distinct series (shuffled). The argument is the size
 * of the raw-bytes cache and of the announced set: 65536 (the default) keeps
 * every series cached, the steady state of a collector; 16 makes nearly every
 * line take the miss path (unescape, validate, sort tags, build and hash the
 * canonical key, allocate and announce a series key): the cost of a burst of
 * new series. Each iteration parses a ~1 MiB buffer of complete lines and
 * flushes; bytes/s
 * is input bytes, items/s is data events (one per field). The flush callback
 * only counts (and frees series keys), so this is the parser alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/shim/bench_shim.h"
#include "ingest/protocol/protocol.h"

#define BUF_BYTES (1u << 20)

typedef struct sink {
    uint64_t events;
} sink;

static void sink_flush(void *user, rf_event *ev, size_t n)
{
    sink *s = user;
    s->events += rf_parse_output_discard(ev, n);
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

typedef size_t (*gen_fn)(char *out, size_t cap, uint64_t series, uint64_t *rng, int64_t ts);
typedef size_t (*parse_fn)(rf_parse_ctx *, const rf_recv_info *, const char *, size_t);

static size_t gen_influx_wide(char *o, size_t cap, uint64_t s, uint64_t *r, int64_t ts)
{
    uint64_t a = rng_next(r);
    return (size_t)snprintf(
        o, cap,
        "system_metrics,host=server-%05llu.prod.example.com,region=us-east-%llu,az=us-east-1%c,"
        "datacenter=dc-%02llu,rack=rack-%03llu,cluster=prod-cluster-%llu,service=api-gateway-%llu,"
        "env=production,version=v2.%llu.3,team=platform-infra "
        "cpu_user=%llu.%06llu,cpu_system=%llu.%03llu,load_avg=%llu.%02llu,"
        "requests=%llui,errors=%llui %lld\n",
        (unsigned long long)s, (unsigned long long)(s % 4), (char)('a' + s % 6),
        (unsigned long long)(s % 40), (unsigned long long)(s % 500), (unsigned long long)(s % 12),
        (unsigned long long)(s % 30), (unsigned long long)(s % 20), (unsigned long long)(a % 100),
        (unsigned long long)(a % 1000000), (unsigned long long)((a >> 20) % 100),
        (unsigned long long)((a >> 27) % 1000), (unsigned long long)((a >> 37) % 64),
        (unsigned long long)((a >> 43) % 100), (unsigned long long)((a >> 17) % 1000000),
        (unsigned long long)((a >> 50) % 10), (long long)ts);
}

static size_t gen_influx_narrow(char *o, size_t cap, uint64_t s, uint64_t *r, int64_t ts)
{
    uint64_t a = rng_next(r);
    return (size_t)snprintf(o, cap, "temp,sensor=s%llu value=%llu.%02llu %lld\n",
                            (unsigned long long)s, (unsigned long long)(a % 90),
                            (unsigned long long)((a >> 10) % 100), (long long)ts);
}

static size_t gen_statsd(char *o, size_t cap, uint64_t s, uint64_t *r, int64_t ts)
{
    (void)ts;
    static const char *const types[] = {"c", "g", "ms", "h", "d"};
    uint64_t a = rng_next(r);
    return (size_t)snprintf(
        o, cap,
        "app.requests.latency.%llu:%llu.%llu|%s|@0.5|#env:prod,service:checkout,"
        "region:us-east-1,host:web-%03llu,version:1.4.2,endpoint:/api/v1/cart\n",
        (unsigned long long)(s / 100), (unsigned long long)(a % 1000),
        (unsigned long long)((a >> 12) % 10), types[s % 5], (unsigned long long)(s % 100));
}

static size_t gen_graphite(char *o, size_t cap, uint64_t s, uint64_t *r, int64_t ts)
{
    uint64_t a = rng_next(r);
    return (size_t)snprintf(
        o, cap, "collectd.web-%04llu_example_com.cpu-%llu.cpu-idle %llu.%03llu %lld\n",
        (unsigned long long)(s / 8), (unsigned long long)(s % 8), (unsigned long long)(a % 100),
        (unsigned long long)((a >> 9) % 1000), (long long)(ts / 1000000000));
}

/* The wide line with ",request_id=<hex>" after the measurement. */
static size_t gen_influx_wide_id(char *o, size_t cap, uint64_t s, uint64_t *r, int64_t ts)
{
    char tmp[512];
    size_t n = gen_influx_wide(tmp, sizeof(tmp), s, r, ts);
    const char *comma = memchr(tmp, ',', n);
    size_t m = (size_t)(comma - tmp);
    memcpy(o, tmp, m);
    m += (size_t)snprintf(o + m, cap - m, ",request_id=%016llx", (unsigned long long)rng_next(r));
    memcpy(o + m, comma, n - (size_t)(comma - tmp));
    return m + n - (size_t)(comma - tmp);
}

/* The DogStatsD line with ",request_id:<hex>" as its last tag. */
static size_t gen_statsd_id(char *o, size_t cap, uint64_t s, uint64_t *r, int64_t ts)
{
    size_t n = gen_statsd(o, cap, s, r, ts) - 1; /* without the '\n' */
    n += (size_t)snprintf(o + n, cap - n, ",request_id:%016llx\n", (unsigned long long)rng_next(r));
    return n;
}

static const char *g_id_tag = "";

static void run_parse(rf_bench_state *st, gen_fn gen, parse_fn parse)
{
    uint64_t nseries = 1000;
    uint32_t slots = (uint32_t)rf_bench_arg(st, 0);
    char *buf = malloc(BUF_BYTES + 512);
    rf_event *batch = malloc(256 * sizeof(rf_event));
    if (!buf || !batch) {
        rf_bench_skip_with_error(st, "out of memory");
        free(buf);
        free(batch);
        return;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int64_t ts = 1700000000000000000LL;
    size_t len = 0;
    uint64_t line = 0;
    while (len < BUF_BYTES) {
        /* series in a shuffled order so consecutive lines differ */
        uint64_t s = (line * 2654435761u) % nseries;
        len += gen(buf + len, 512, s, &rng, ts + (int64_t)line);
        line++;
    }
    sink sk = {0};
    rf_parse_config cfg = {.source_id = 1,
                           .precision = RF_PRECISION_NS,
                           .series_cache_slots = slots,
                           .announced_slots = slots};
    snprintf(cfg.corr_id_tag, sizeof(cfg.corr_id_tag), "%s", g_id_tag);
    rf_parse_ctx *ctx = rf_parse_ctx_new(&cfg, batch, 256, sink_flush, &sk, NULL);
    if (!ctx) {
        rf_bench_skip_with_error(st, "context");
        free(buf);
        free(batch);
        return;
    }
    rf_recv_info rx = {.wall_ns = ts, .mono_ns = 1};
    /* warm the caches outside the timed loop (a steady-state collector) */
    parse(ctx, &rx, buf, len);
    rf_parse_flush(ctx);
    sk.events = 0;
    uint64_t misses0 = rf_parse_counter(ctx, RF_PC_CACHE_MISSES);
    size_t rejected = 0;
    while (rf_bench_keep_running(st)) {
        rejected += parse(ctx, &rx, buf, len);
        rf_parse_flush(ctx);
    }
    int64_t it = rf_bench_iterations(st);
    rf_bench_set_bytes_processed(st, it * (int64_t)len);
    rf_bench_set_items_processed(st, (int64_t)sk.events);
    rf_bench_counter(st, "lines/s", (double)line * (double)it, true);
    rf_bench_counter(st, "B/line", (double)len / (double)line, false);
    rf_bench_counter(st, "miss%",
                     100.0 * (double)(rf_parse_counter(ctx, RF_PC_CACHE_MISSES) - misses0) /
                         (double)(sk.events + 1),
                     false);
    if (rejected)
        rf_bench_skip_with_error(st, "generated lines were rejected");
    rf_parse_ctx_free(ctx);
    free(buf);
    free(batch);
}

static void bm_influx_wide(rf_bench_state *st)
{
    run_parse(st, gen_influx_wide, rf_parse_influx);
}

static void bm_influx_wide_id(rf_bench_state *st)
{
    g_id_tag = "request_id";
    run_parse(st, gen_influx_wide_id, rf_parse_influx);
    g_id_tag = "";
}

static void bm_influx_wide_idtag_unused(rf_bench_state *st)
{
    g_id_tag = "request_id";
    run_parse(st, gen_influx_wide, rf_parse_influx);
    g_id_tag = "";
}

static void bm_statsd_id(rf_bench_state *st)
{
    g_id_tag = "request_id";
    run_parse(st, gen_statsd_id, rf_parse_statsd);
    g_id_tag = "";
}

static void bm_influx_narrow(rf_bench_state *st)
{
    run_parse(st, gen_influx_narrow, rf_parse_influx);
}

static void bm_statsd(rf_bench_state *st)
{
    run_parse(st, gen_statsd, rf_parse_statsd);
}

static void bm_graphite(rf_bench_state *st)
{
    run_parse(st, gen_graphite, rf_parse_graphite);
}

RF_BENCH_REGISTER(parse_benchmarks)
{
    static const int64_t series[] = {65536, 16};
    rf_bench_register_args("parse/influx/10tags5fields", bm_influx_wide, series, 2);
    rf_bench_register_args("parse/influx/1tag1field", bm_influx_narrow, series, 2);
    rf_bench_register_args("parse/statsd/dogstatsd", bm_statsd, series, 2);
    rf_bench_register_args("parse/graphite/plain", bm_graphite, series, 2);
    rf_bench_register_args("parse/influx/10tags5fields_id", bm_influx_wide_id, series, 1);
    rf_bench_register_args("parse/influx/10tags5fields_idtag_unused", bm_influx_wide_idtag_unused,
                           series, 1);
    rf_bench_register_args("parse/statsd/dogstatsd_id", bm_statsd_id, series, 1);
}
