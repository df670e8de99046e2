/* Store benchmarks: the worker-side append path with the I/O thread writing
 * to a temporary directory, and query scan speed over closed segments.
 *
 *   ringflow-bench --benchmark_filter='^store/' --benchmark_repetitions=5 \
 *                  --benchmark_report_aggregates_only=true
 *
 * store/append/<series>: points/s through rf_store_append on one worker
 *   thread (the benchmark thread) into 1 shard, block_points 1024, durability
 *   INTERVAL 1 s, values from the encoder's 2-decimal random walk generator.
 *   Back-pressure is waited out (the point is offered again), so the figure
 *   is the rate the I/O thread sustains, not the rate of filling memory;
 *   bp_waits counts those waits. Wall-clock time (the I/O thread is part of
 *   the work); pts_per_worker_cpu_s divides by the worker thread's CPU time
 *   (the per-core cost, robust on a shared machine). TMPDIR chooses the disk.
 * store/append_batch/<series>: the same points through rf_store_append_batch
 *   in groups of 256 (as the pipeline hands them over), which fetches each
 *   point's map slot, series and buffer tail ahead. A point refused by
 *   back-pressure is not offered again here: `refused` counts them.
 * store/append_stall/<series>: the worst pause a burst of cuts puts into the
 *   append path. Every series starts empty and gets one point per round, so
 *   all of them fill their 1024-point blocks in the same round (series that
 *   report at one interval do this). Each 256-append batch (what a worker
 *   hands the store per stage-chain call) is timed in thread CPU time, so
 *   preemption by neighbours does not count: batch_p50_us, batch_p99_us,
 *   batch_p999_us and batch_max_us are the distribution over the run. Before
 *   cuts were paced, a round in which 1,000 series filled cost one batch
 *   tens of milliseconds; that pause is what an event queued behind it waits.
 * store/head_chunk/<series>: what serving a query's head read costs the
 *   worker per poll (store.h "Reading the heads"): <series> series hold 64
 *   points each in their buffers (a 5 s interval's 5 minutes); a reader
 *   thread reads every head again and again with rf_store_heads_read while
 *   the benchmark thread, as the worker, serves one chunk per iteration.
 *   Each rf_store_serve_heads that served is timed in thread CPU time:
 *   chunk_p50_us, chunk_p99_us, chunk_max_us; series_per_chunk and
 *   reads (whole head reads completed).
 * store/bytes/v<format>/<class>/<points per series>: bytes per point on disk of a store
 *   holding TSBS-like rows: hosts of 10 fields each (measurement cpu, the 10
 *   tags of TSBS's devops cpu table, fields usage_user .. usage_guest_nice),
 *   every field of every host at the same timestamps (10 s apart, appended
 *   in lockstep, row by row), about 2 M points in all, default store config
 *   (1024-point blocks, zstd 1), one shard, closed by rf_store_close, writing
 *   segment format 2 (as before format 3) or 3. Classes
 *   (gen_series.h): 2-decimal random walk gauges, steady and busy counters,
 *   random doubles. RF_BENCH_BLOCK_POINTS=N in the environment sets another
 *   block size (what-if figures). Counters: B/pt is every byte of every
 *   segment file (st_size) per point; ts, values, block_hdr, rec, dict,
 *   footer and file split it: the block's timestamp column, its value column,
 *   the block's own header, record framing of block records (header + CRC),
 *   dictionary records, footer + trailer, file headers. Not a speed figure:
 *   one iteration.
 * store/query/raw, store/query/agg: points/s decoded by rf_query_run over a
 *   store of 200 series x 20,000 points (4 M points, closed segments): all
 *   raw points of one measurement; and count/avg/p99 per 1 h step grouped by
 *   a tag. pts_per_cpu_s: the same per second of the query thread's CPU. */
#include "bench/shim/bench_shim.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/event/event.h"
#include "storage/encode/encode.h"
#include "storage/encode/encode_pvt.h"
#include "storage/encode/gen_series.h"
#include "storage/segment/segment.h"
#include "storage/query/query.h"
#include "storage/store/store.h"

#define GEN_POINTS 4096u
#define BATCH 65536u
#define APPEND_BATCH 256u /* what the pipeline hands the store at once */

/* CPU time of the calling thread: on a shared machine the wall-clock rate
 * mostly measures the neighbours, this measures our thread's work. */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static char *make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/rf-store-bench-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static rf_series_key **make_keys(uint32_t n, const char *meas)
{
    rf_series_key **k = malloc(n * sizeof(*k));
    for (uint32_t i = 0; i < n; i++) {
        char t[128];
        int len = snprintf(t, sizeof(t), "%s,host=h%u,region=r%u value", meas, i, i % 8);
        k[i] = rf_series_key_new(t, (size_t)len, strlen(meas), (size_t)len - 5);
    }
    return k;
}

static void append_run(rf_bench_state *s, bool batched)
{
    uint32_t nser = (uint32_t)rf_bench_arg(s, 0);
    char *dir = make_tmpdir();
    if (!dir) {
        rf_bench_skip_with_error(s, "mkdtemp failed");
        return;
    }
    rf_store_config cfg;
    rf_store_config_default(&cfg);
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, &cfg, 1, &st, &e)) {
        rf_bench_skip_with_error(s, e.msg);
        return;
    }
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key **keys = make_keys(nser, "bench");
    for (uint32_t i = 0; i < nser; i++)
        rf_store_define_series(sh, keys[i]);
    int64_t ts[GEN_POINTS];
    uint64_t vals[GEN_POINTS];
    uint8_t vt = rf_gen_series(7, RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_REGULAR, GEN_POINTS, ts, vals);
    uint64_t bp_waits = 0, refused = 0, total = 0, round = 0;
    rf_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.value_type = vt;
    /* Steady state, untimed: every series' buffer part full at a different
     * phase, so blocks are cut at the long-run rate from the first batch on
     * (with 10,000 series a cold start would time no cut at all). */
    int64_t t_base = 1700000000000000000LL - 1024LL * 10000000000LL;
    for (uint32_t si = 0; si < nser; si++) {
        ev.series_id = keys[si]->series_id;
        for (uint32_t i = 0; i < (si * 7919u) % 1024u; i++) {
            ev.event_time_ns = t_base + (int64_t)i * 10000000000LL;
            ev.value.u64 = vals[i % GEN_POINTS];
            while (rf_store_append(sh, &ev) == -ENOBUFS)
                ;
        }
    }
    rf_store_shard_stats ss0;
    rf_store_shard_stats_read(sh, &ss0);
    rf_event group[APPEND_BATCH];
    for (uint32_t i = 0; i < APPEND_BATCH; i++)
        group[i] = ev;
    double cpu0 = thread_cpu_s();
    while (rf_bench_keep_running(s)) {
        /* BATCH points: every series gets BATCH / nser consecutive points */
        for (uint32_t p = 0; p < BATCH; p++) {
            uint32_t si = p % nser;
            uint64_t i = round * (BATCH / nser) + p / nser;
            rf_event *e = batched ? &group[p % APPEND_BATCH] : &ev;
            e->series_id = keys[si]->series_id;
            e->event_time_ns = 1700000000000000000LL + (int64_t)i * 10000000000LL;
            e->value.u64 = vals[(i + si) % GEN_POINTS];
            if (!batched) {
                while (rf_store_append(sh, &ev) == -ENOBUFS)
                    bp_waits++; /* the refused point is offered again */
            } else if (p % APPEND_BATCH == APPEND_BATCH - 1) {
                refused += rf_store_append_batch(sh, group, APPEND_BATCH, NULL, NULL);
            }
        }
        round++;
        total += BATCH;
    }
    double cpu = thread_cpu_s() - cpu0;
    rf_bench_set_items_processed(s, (int64_t)total);
    rf_bench_counter(s, "pts_per_worker_cpu_s", cpu > 0 ? (double)total / cpu : 0, false);
    rf_bench_counter(s, "bp_waits", (double)bp_waits, false);
    if (batched)
        rf_bench_counter(s, "refused", (double)refused, false);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    rf_bench_counter(s, "blocks", (double)(ss.blocks_cut - ss0.blocks_cut), false);
    rf_bench_counter(s, "MB_written", (double)ss.bytes_written / 1e6, false);
    rf_store_close(st, &e); /* after the timed loop: not measured */
    for (uint32_t i = 0; i < nser; i++)
        rf_series_key_free(keys[i]);
    free(keys);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static void bm_append(rf_bench_state *s)
{
    append_run(s, false);
}
static void bm_append_batch(rf_bench_state *s)
{
    append_run(s, true);
}

/* ---- bytes per point ---- */

#define BYTES_TOTAL_POINTS 2048000u
#define ROW_FIELDS 10u

static const char *const tsbs_fields[ROW_FIELDS] = {
    "usage_user", "usage_system",  "usage_idle",  "usage_nice",  "usage_iowait",
    "usage_irq",  "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice"};


typedef struct byte_split {
    uint64_t file, ts, values, block_hdr, rec, dict, footer, hdr;
} byte_split;

/* Where the bytes of one segment file go: walks its records as written. */
static int split_segment(void *ctx, uint32_t shard, uint64_t seq, const char *path)
{
    (void)shard;
    (void)seq;
    byte_split *b = ctx;
    rf_seg_reader r;
    rf_err e;
    if (rf_seg_reader_open(path, RF_SEG_OPEN_FORCE_SCAN, &r, &e) < 0)
        return -EBADMSG;
    rf_block_codec *codec = rf_block_codec_new(0);
    int64_t *ts = malloc(RF_BLOCK_MAX_POINTS * sizeof(*ts));
    uint64_t *v = malloc(RF_BLOCK_MAX_POINTS * sizeof(*v));
    uint64_t *q = malloc(3 * RF_BLOCK_MAX_POINTS * sizeof(*q));
    uint8_t *enc = malloc(RF_TS_BOUND(RF_BLOCK_MAX_POINTS));
    int rc = codec && ts && v && q && enc ? 0 : -ENOMEM;
    b->file += r.size;
    b->hdr += RF_SEG_HEADER_SIZE;
    for (uint64_t pos = RF_SEG_HEADER_SIZE; rc == 0 && pos < r.size;) {
        rf_seg_rec h;
        long len = rf_seg_rec_check(r.map + pos, r.size - pos, &h);
        if (len < 0) {
            b->footer += r.size - pos; /* the trailer */
            break;
        }
        if (h.type == RF_SEG_REC_BLOCK) {
            const uint8_t *payload = r.map + pos + (uint64_t)len - 4 - h.payload_len;
            long n = rf_block_decode(codec, payload, h.payload_len, ts, v, RF_BLOCK_MAX_POINTS);
            if (n <= 0) {
                rc = -EBADMSG;
                break;
            }
            /* The encoder's own timestamp column for these points: its size
             * is what the block spends on time. */
            size_t tlen = (size_t)(rf_ts_encode(enc, ts, (uint32_t)n, q, q + RF_BLOCK_MAX_POINTS,
                                                q + 2 * RF_BLOCK_MAX_POINTS) -
                                   enc);
            uint8_t vb[10];
            size_t hlen = 2 + (size_t)(rf_varint_put(vb, (uint64_t)n) - vb);
            b->rec += (uint64_t)len - h.payload_len;
            b->ts += tlen;
            b->block_hdr += hlen;
            b->values += h.payload_len - tlen - hlen;
        } else if (h.type == RF_SEG_REC_SERIES) {
            b->dict += (uint64_t)len;
        } else {
            b->footer += (uint64_t)len;
        }
        pos += (uint64_t)len;
    }
    free(ts);
    free(v);
    free(q);
    free(enc);
    rf_block_codec_free(codec);
    rf_seg_reader_close(&r);
    return rc;
}

static void bytes_run(rf_bench_state *s, enum rf_gen_value cls, uint32_t version)
{
    uint32_t per_series = (uint32_t)rf_bench_arg(s, 0);
    uint32_t hosts = BYTES_TOTAL_POINTS / ROW_FIELDS / per_series;
    uint32_t nser = hosts * ROW_FIELDS;
    char *dir = make_tmpdir();
    rf_series_key **keys = calloc(nser, sizeof(*keys));
    int64_t *ts = malloc((size_t)per_series * sizeof(*ts));
    uint64_t *vals = malloc((size_t)nser * per_series * sizeof(*vals));
    if (!dir || !keys || !ts || !vals) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    rf_store_config cfg;
    rf_store_config_default(&cfg);
    cfg.segment_version = version;
    const char *bp = getenv("RF_BENCH_BLOCK_POINTS"); /* what-if runs: other block sizes */
    if (bp && atoi(bp) > 0)
        cfg.block_points = (uint32_t)atoi(bp);
    rf_store *st = NULL;
    rf_err e;
    byte_split b = {0};
    uint8_t vt = 0;
    for (uint32_t k = 0; k < nser; k++) {
        char t[512];
        uint32_t h = k / ROW_FIELDS;
        int mlen = 3;
        int len = snprintf(t, sizeof(t),
                           "cpu,arch=x64,datacenter=eu-west-1a,hostname=host_%u,os=Ubuntu16.04LTS,"
                           "rack=%u,region=eu-west-1,service=%u,service_environment=production,"
                           "service_version=%u,team=NYC ",
                           h, h % 100, h % 20, h % 2);
        int foff = len;
        len += snprintf(t + len, sizeof(t) - (size_t)len, "%s", tsbs_fields[k % ROW_FIELDS]);
        keys[k] = rf_series_key_new(t, (size_t)len, (size_t)mlen, (size_t)foff);
        vt = rf_gen_series(1000 + k, cls, RF_GEN_TS_REGULAR, per_series, ts,
                           vals + (size_t)k * per_series);
    }
    while (rf_bench_keep_running(s)) {
        if (rf_store_open(dir, &cfg, 1, &st, &e)) {
            rf_bench_skip_with_error(s, e.msg);
            break;
        }
        rf_store_shard *sh = rf_store_shard_get(st, 0);
        for (uint32_t k = 0; k < nser; k++)
            rf_store_define_series(sh, keys[k]);
        rf_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.value_type = vt;
        for (uint32_t i = 0; i < per_series; i++)
            for (uint32_t k = 0; k < nser; k++) {
                ev.series_id = keys[k]->series_id;
                ev.event_time_ns = ts[i];
                ev.value.u64 = vals[(size_t)k * per_series + i];
                while (rf_store_append(sh, &ev) == -ENOBUFS)
                    ;
            }
        if (rf_store_close(st, &e) < 0) {
            rf_bench_skip_with_error(s, e.msg);
            break;
        }
        memset(&b, 0, sizeof(b));
        if (rf_seg_store_walk(dir, split_segment, &b, &e) != 0) {
            rf_bench_skip_with_error(s, "reading the segments failed");
            break;
        }
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        mkdir(dir, 0700);
    }
    double pts = (double)nser * per_series;
    rf_bench_counter(s, "B/pt", (double)b.file / pts, false);
    rf_bench_counter(s, "ts", (double)b.ts / pts, false);
    rf_bench_counter(s, "values", (double)b.values / pts, false);
    rf_bench_counter(s, "block_hdr", (double)b.block_hdr / pts, false);
    rf_bench_counter(s, "rec", (double)b.rec / pts, false);
    rf_bench_counter(s, "dict", (double)b.dict / pts, false);
    rf_bench_counter(s, "footer", (double)b.footer / pts, false);
    rf_bench_counter(s, "file", (double)b.hdr / pts, false);
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)pts);
    for (uint32_t k = 0; k < nser; k++)
        rf_series_key_free(keys[k]);
    free(keys);
    free(ts);
    free(vals);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

#define BYTES_BENCH(fn, cls, version)                                                              \
    static void fn(rf_bench_state *s)                                                              \
    {                                                                                              \
        bytes_run(s, cls, version);                                                                \
    }
BYTES_BENCH(bm_bytes_gauge_v2, RF_GEN_GAUGE_2DEC_WALK, 2)
BYTES_BENCH(bm_bytes_counter_v2, RF_GEN_COUNTER_STEADY, 2)
BYTES_BENCH(bm_bytes_busy_v2, RF_GEN_COUNTER_BUSY, 2)
BYTES_BENCH(bm_bytes_double_v2, RF_GEN_DOUBLE_RANDOM, 2)
BYTES_BENCH(bm_bytes_gauge_v3, RF_GEN_GAUGE_2DEC_WALK, 3)
BYTES_BENCH(bm_bytes_counter_v3, RF_GEN_COUNTER_STEADY, 3)
BYTES_BENCH(bm_bytes_busy_v3, RF_GEN_COUNTER_BUSY, 3)
BYTES_BENCH(bm_bytes_double_v3, RF_GEN_DOUBLE_RANDOM, 3)

/* ---- query ---- */

#define Q_SERIES 200u
#define Q_POINTS 20000u

static char *q_dir;

static void q_cleanup(void)
{
    if (q_dir)
        nftw(q_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int q_prepare(void)
{
    if (q_dir)
        return 0;
    q_dir = make_tmpdir();
    if (!q_dir)
        return -1;
    atexit(q_cleanup);
    rf_store_config cfg;
    rf_store_config_default(&cfg);
    rf_store *st;
    rf_err e;
    if (rf_store_open(q_dir, &cfg, 1, &st, &e))
        return -1;
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key **keys = make_keys(Q_SERIES, "q");
    int64_t *ts = malloc(Q_POINTS * sizeof(*ts));
    uint64_t *v = malloc(Q_POINTS * sizeof(*v));
    for (uint32_t i = 0; i < Q_SERIES; i++) {
        rf_store_define_series(sh, keys[i]);
        uint8_t vt =
            rf_gen_series(100 + i, RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_REGULAR, Q_POINTS, ts, v);
        rf_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.series_id = keys[i]->series_id;
        ev.value_type = vt;
        for (uint32_t p = 0; p < Q_POINTS; p++) {
            ev.event_time_ns = ts[p];
            ev.value.u64 = v[p];
            while (rf_store_append(sh, &ev) == -ENOBUFS) {
                struct timespec d = {0, 20000};
                nanosleep(&d, NULL);
            }
        }
    }
    rf_store_close(st, &e);
    for (uint32_t i = 0; i < Q_SERIES; i++)
        rf_series_key_free(keys[i]);
    free(keys);
    free(ts);
    free(v);
    return 0;
}

static void run_query(rf_bench_state *s, const rf_query *q)
{
    if (q_prepare() < 0) {
        rf_bench_skip_with_error(s, "preparing the query store failed");
        return;
    }
    uint64_t points = 0;
    double cpu0 = thread_cpu_s();
    while (rf_bench_keep_running(s)) {
        rf_query_result *r;
        rf_err e;
        if (rf_query_run(q_dir, q, &r, &e)) {
            rf_bench_skip_with_error(s, e.msg);
            return;
        }
        points += r->stats.points_scanned;
        rf_bench_do_not_optimize(r);
        rf_query_result_free(r);
    }
    double cpu = thread_cpu_s() - cpu0;
    rf_bench_set_items_processed(s, (int64_t)points);
    rf_bench_counter(s, "pts_per_cpu_s", cpu > 0 ? (double)points / cpu : 0, false);
}

static void bm_query_raw(rf_bench_state *s)
{
    rf_query q = {.measurement = "q", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    run_query(s, &q);
}

static void bm_query_agg(rf_bench_state *s)
{
    static const rf_query_agg aggs[] = {
        {RF_AGG_COUNT, 0}, {RF_AGG_AVG, 0}, {RF_AGG_QUANTILE, 0.99}};
    static const char *const by[] = {"region"};
    rf_query q = {.measurement = "q",
                  .start_ns = INT64_MIN,
                  .end_ns = INT64_MAX,
                  .aggs = aggs,
                  .n_aggs = 3,
                  .step_ns = 3600LL * 1000000000LL,
                  .group_by = by,
                  .n_group_by = 1};
    run_query(s, &q);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bm_append_stall(rf_bench_state *s)
{
    uint32_t nser = (uint32_t)rf_bench_arg(s, 0);
    char *dir = make_tmpdir();
    if (!dir) {
        rf_bench_skip_with_error(s, "mkdtemp failed");
        return;
    }
    rf_store_config cfg;
    rf_store_config_default(&cfg);
    cfg.queue_blocks = 4096; /* the I/O thread's pace is not what is measured */
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, &cfg, 1, &st, &e)) {
        rf_bench_skip_with_error(s, e.msg);
        return;
    }
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key **keys = make_keys(nser, "stall");
    for (uint32_t i = 0; i < nser; i++)
        rf_store_define_series(sh, keys[i]);
    int64_t ts[GEN_POINTS];
    uint64_t vals[GEN_POINTS];
    uint8_t vt = rf_gen_series(7, RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_REGULAR, GEN_POINTS, ts, vals);
    rf_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.value_type = vt;
    enum {
        BATCH_EVENTS = 256
    };
    /* Untimed: the first block period, in which every buffer grows to its
     * full size (and the codec's tables are first touched). */
    uint64_t i_global = 0, bp_waits = 0;
    for (; i_global < (uint64_t)nser * 1100; i_global++) {
        uint32_t si = (uint32_t)(i_global % nser);
        uint64_t i = i_global / nser;
        ev.series_id = keys[si]->series_id;
        ev.event_time_ns = 1700000000000000000LL + (int64_t)i * 10000000000LL;
        ev.value.u64 = vals[(i + si) % GEN_POINTS];
        while (rf_store_append(sh, &ev) == -ENOBUFS)
            ;
    }
    /* Timed: 4 block periods, 4 rounds in which every series fills at once. */
    const uint64_t points = (uint64_t)nser * 4096;
    const size_t n_batches = (size_t)(points / BATCH_EVENTS);
    double *batch_us = malloc(n_batches * sizeof(*batch_us));
    uint64_t timed = 0;
    size_t nb = 0;
    while (rf_bench_keep_running(s)) {
        for (size_t b = 0; b < n_batches; b++) {
            double t0 = thread_cpu_s();
            for (uint32_t k = 0; k < BATCH_EVENTS; k++, i_global++, timed++) {
                uint32_t si = (uint32_t)(i_global % nser);
                uint64_t i = i_global / nser;
                ev.series_id = keys[si]->series_id;
                ev.event_time_ns = 1700000000000000000LL + (int64_t)i * 10000000000LL;
                ev.value.u64 = vals[(i + si) % GEN_POINTS];
                while (rf_store_append(sh, &ev) == -ENOBUFS)
                    bp_waits++;
            }
            double us = (thread_cpu_s() - t0) * 1e6;
            if (nb < n_batches)
                batch_us[nb++] = us;
            else if (us > batch_us[nb - 1])
                batch_us[nb - 1] = us; /* later iterations: keep the worst */
        }
        /* a tick's worth of catch-up, as the worker gives it every 10 ms */
        rf_store_tick(sh, 0);
    }
    qsort(batch_us, nb, sizeof(*batch_us), cmp_double);
    rf_bench_set_items_processed(s, (int64_t)timed);
    rf_bench_counter(s, "batch_p50_us", batch_us[nb / 2], false);
    rf_bench_counter(s, "batch_p99_us", batch_us[(size_t)((double)nb * 0.99)], false);
    rf_bench_counter(s, "batch_p999_us", batch_us[(size_t)((double)nb * 0.999)], false);
    rf_bench_counter(s, "batch_max_us", batch_us[nb - 1], false);
    rf_bench_counter(s, "bp_waits", (double)bp_waits, false);
    free(batch_us);
    rf_store_close(st, &e);
    for (uint32_t i = 0; i < nser; i++)
        rf_series_key_free(keys[i]);
    free(keys);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static bool want_all(void *ctx, uint64_t series_id, uint32_t n_points)
{
    (void)ctx;
    (void)series_id;
    return n_points > 0;
}

typedef struct head_reader {
    rf_store *st;
    _Atomic bool stop;
    _Atomic uint64_t reads;
} head_reader;

static void *head_reader_run(void *arg)
{
    head_reader *r = arg;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        rf_store_heads *h;
        int64_t deadline = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec + 200000000LL;
        if (rf_store_heads_read(r->st, want_all, NULL, deadline, 0, &h) == 0) {
            rf_store_heads_free(h);
            atomic_fetch_add_explicit(&r->reads, 1, memory_order_relaxed); /* statistics */
        }
    }
    return NULL;
}

static void bm_head_chunk(rf_bench_state *s)
{
    uint32_t nser = (uint32_t)rf_bench_arg(s, 0);
    char *dir = make_tmpdir();
    if (!dir) {
        rf_bench_skip_with_error(s, "mkdtemp failed");
        return;
    }
    rf_store_config cfg;
    rf_store_config_default(&cfg);
    cfg.block_max_age_ns = 3600LL * 1000000000LL; /* nothing is cut: the heads stay full */
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, &cfg, 1, &st, &e)) {
        rf_bench_skip_with_error(s, e.msg);
        free(dir);
        return;
    }
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key **keys = make_keys(nser, "heads");
    rf_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.value_type = RF_VALUE_F64;
    for (uint32_t i = 0; i < nser; i++) {
        rf_store_define_series(sh, keys[i]);
        ev.series_id = keys[i]->series_id;
        for (int k = 0; k < 64; k++) {
            ev.event_time_ns = 1700000000000000000LL + (int64_t)k * 5000000000LL;
            ev.value.u64 = (uint64_t)k;
            rf_store_append(sh, &ev);
        }
    }
    head_reader r = {.st = st};
    pthread_t t;
    pthread_create(&t, NULL, head_reader_run, &r);
    size_t cap = 1 << 16, nc = 0;
    double *chunk_us = malloc(cap * sizeof(*chunk_us));
    uint64_t series = 0;
    while (rf_bench_keep_running(s)) {
        for (;;) {
            double t0 = thread_cpu_s();
            uint32_t n = rf_store_serve_heads(sh);
            double us = (thread_cpu_s() - t0) * 1e6;
            if (n) {
                series += n;
                if (nc < cap)
                    chunk_us[nc++] = us;
                break;
            }
        }
    }
    atomic_store_explicit(&r.stop, true, memory_order_relaxed);
    /* The reader may be waiting for a chunk: serve until it stops. */
    struct timespec j = {0, 0};
    while (pthread_tryjoin_np(t, NULL) != 0) {
        rf_store_serve_heads(sh);
        nanosleep(&j, NULL);
    }
    qsort(chunk_us, nc, sizeof(*chunk_us), cmp_double);
    rf_bench_set_items_processed(s, (int64_t)series);
    if (nc) {
        rf_bench_counter(s, "chunk_p50_us", chunk_us[nc / 2], false);
        rf_bench_counter(s, "chunk_p99_us", chunk_us[(size_t)((double)nc * 0.99)], false);
        rf_bench_counter(s, "chunk_max_us", chunk_us[nc - 1], false);
        rf_bench_counter(s, "series_per_chunk", (double)series / (double)nc, false);
    }
    rf_bench_counter(s, "reads", (double)atomic_load(&r.reads), false);
    free(chunk_us);
    rf_store_close(st, &e);
    for (uint32_t i = 0; i < nser; i++)
        rf_series_key_free(keys[i]);
    free(keys);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

RF_BENCH_REGISTER(store_benchmarks)
{
    static const int64_t series[] = {100, 10000, 100000};
    rf_bench_register_args_realtime("store/append", bm_append, series, 3);
    rf_bench_register_args_realtime("store/append_batch", bm_append_batch, series, 3);
    static const int64_t stall_series[] = {1000, 10000};
    rf_bench_register_args("store/append_stall", bm_append_stall, stall_series, 2);
    static const int64_t one[] = {0};
    rf_bench_register_args_realtime("store/query/raw", bm_query_raw, one, 1);
    rf_bench_register_args_realtime("store/query/agg", bm_query_agg, one, 1);
    static const int64_t head_series[] = {1000, 10000};
    static const int64_t per_series[] = {2048, 8192, 102400};
    rf_bench_register_args_realtime("store/bytes/v2/gauge_2dec_walk", bm_bytes_gauge_v2, per_series,
                                    3);
    rf_bench_register_args_realtime("store/bytes/v2/counter_steady", bm_bytes_counter_v2,
                                    per_series, 3);
    rf_bench_register_args_realtime("store/bytes/v2/counter_busy", bm_bytes_busy_v2, per_series, 3);
    rf_bench_register_args_realtime("store/bytes/v2/double_random", bm_bytes_double_v2, per_series,
                                    3);
    rf_bench_register_args_realtime("store/bytes/v3/gauge_2dec_walk", bm_bytes_gauge_v3, per_series,
                                    3);
    rf_bench_register_args_realtime("store/bytes/v3/counter_steady", bm_bytes_counter_v3,
                                    per_series, 3);
    rf_bench_register_args_realtime("store/bytes/v3/counter_busy", bm_bytes_busy_v3, per_series, 3);
    rf_bench_register_args_realtime("store/bytes/v3/double_random", bm_bytes_double_v3, per_series,
                                    3);
    rf_bench_register_args_realtime("store/head_chunk", bm_head_chunk, head_series, 2);
}
