/* zstd levels over encoded blocks: what the block codec's zstd level buys on
 * the storage generator's classes (storage/encode/gen_series.h), in bytes per
 * point and in speed.
 *
 *   encode/zstd/<class>/<level>      rf_block_encode with rf_block_codec_new(level),
 *                                    level 0 (no zstd), 1, 3, 9, 19: what the
 *                                    segment writer would store. The codec tries
 *                                    zstd only on bodies whose byte sample shows
 *                                    repeats and keeps it only when it saves >= 1/32
 *                                    (storage/encode/encode.c), so on most classes
 *                                    every level is the same bytes.
 *   encode/zstd_raw/<class>/<level>  ZSTD_compressCCtx at level 1, 3, 9, 19 over each
 *                                    block our encoders produce without zstd (level
 *                                    0): what zstd could still find at that level if
 *                                    it were always applied, and what it costs.
 *
 *   ringflow-bench --benchmark_filter='^encode/zstd' --benchmark_min_time=0.2 \
 *                  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
 *
 * Blocks of 1024 points (the segment writer's default, storage.block_points),
 * 64 blocks per iteration; items/s is points per second of CPU time. Counters:
 * B/pt (every byte of every block, header included, per point), zstd_blocks
 * (share of blocks the codec stored compressed) and, for zstd_raw, saved
 * (1 - zstd output / input). */
#include "bench/shim/bench_shim.h"

#include "core/event/event.h"
#include "storage/encode/encode.h"
#include "storage/encode/encode_pvt.h"
#include "storage/encode/gen_series.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define PER_BLOCK 1024u
#define BLOCKS 64u

/* The classes of the encode benchmarks, plus int_edges (integers from a small
 * set of words: the class where zstd pays, see docs/PERFORMANCE.md) and the
 * gauge with every timestamp jittered (the most entropy in a time column). */
typedef struct zclass {
    enum rf_gen_value v;
    enum rf_gen_ts ts;
    const char *suffix;
} zclass;

static const zclass classes[] = {
    {RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_GAUGE_2DEC_WALK, RF_GEN_TS_JITTER_ALL, "+ts_jitter_all"},
    {RF_GEN_COUNTER_STEADY, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_COUNTER_SPARSE, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_GAUGE_NEAR_CONST, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_COUNTER_BUSY, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_DOUBLE_WALK, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_DOUBLE_RANDOM, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_FLOAT32_SENSOR, RF_GEN_TS_REGULAR, ""},
    {RF_GEN_INT_EDGES, RF_GEN_TS_REGULAR, ""},
};
#define NCLASS (sizeof classes / sizeof classes[0])

typedef struct points {
    uint8_t vt;
    int64_t ts[BLOCKS * PER_BLOCK];
    uint64_t v[BLOCKS * PER_BLOCK];
} points;

static points *points_make(unsigned cls)
{
    points *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    for (uint32_t b = 0; b < BLOCKS; b++)
        p->vt = rf_gen_series(77 + b, classes[cls].v, classes[cls].ts, PER_BLOCK,
                              p->ts + (size_t)b * PER_BLOCK, p->v + (size_t)b * PER_BLOCK);
    return p;
}

static void run_codec_level(rf_bench_state *s, unsigned cls)
{
    int level = (int)rf_bench_arg(s, 0);
    rf_block_codec *codec = rf_block_codec_new(level);
    points *p = points_make(cls);
    size_t bound = rf_block_encode_bound(PER_BLOCK);
    uint8_t *out = malloc(bound);
    if (!codec || !p || !out) {
        rf_bench_skip_with_error(s, "setup failed");
        goto done;
    }
    size_t bytes = 0;
    unsigned zblocks = 0;
    while (rf_bench_keep_running(s)) {
        bytes = 0;
        zblocks = 0;
        for (uint32_t b = 0; b < BLOCKS; b++) {
            long len = rf_block_encode(codec, p->vt, p->ts + (size_t)b * PER_BLOCK,
                                       p->v + (size_t)b * PER_BLOCK, PER_BLOCK, out, bound);
            if (len < 0) {
                rf_bench_skip_with_error(s, "encode failed");
                goto done;
            }
            bytes += (size_t)len;
            zblocks += (out[0] & RF_BLOCK_FLAG_ZSTD) != 0;
        }
        rf_bench_do_not_optimize(out);
    }
    const double pts = (double)BLOCKS * PER_BLOCK;
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)pts);
    rf_bench_counter(s, "B/pt", (double)bytes / pts, false);
    rf_bench_counter(s, "zstd_blocks", (double)zblocks / BLOCKS, false);
done:
    free(out);
    free(p);
    rf_block_codec_free(codec);
}

static void run_raw_level(rf_bench_state *s, unsigned cls)
{
    int level = (int)rf_bench_arg(s, 0);
    rf_block_codec *codec = rf_block_codec_new(0);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    points *p = points_make(cls);
    size_t bound = rf_block_encode_bound(PER_BLOCK);
    uint8_t *enc = malloc((size_t)BLOCKS * bound);
    size_t off[BLOCKS + 1];
    size_t zcap = ZSTD_compressBound(bound);
    uint8_t *z = malloc(zcap);
    if (!codec || !cctx || !p || !enc || !z) {
        rf_bench_skip_with_error(s, "setup failed");
        goto done;
    }
    off[0] = 0;
    for (uint32_t b = 0; b < BLOCKS; b++) {
        long len = rf_block_encode(codec, p->vt, p->ts + (size_t)b * PER_BLOCK,
                                   p->v + (size_t)b * PER_BLOCK, PER_BLOCK, enc + off[b], bound);
        if (len < 0) {
            rf_bench_skip_with_error(s, "encode failed");
            goto done;
        }
        off[b + 1] = off[b] + (size_t)len;
    }
    size_t zbytes = 0;
    while (rf_bench_keep_running(s)) {
        zbytes = 0;
        for (uint32_t b = 0; b < BLOCKS; b++) {
            size_t r = ZSTD_compressCCtx(cctx, z, zcap, enc + off[b], off[b + 1] - off[b], level);
            if (ZSTD_isError(r)) {
                rf_bench_skip_with_error(s, ZSTD_getErrorName(r));
                goto done;
            }
            zbytes += r;
        }
        rf_bench_do_not_optimize(z);
    }
    const double pts = (double)BLOCKS * PER_BLOCK;
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)pts);
    rf_bench_set_bytes_processed(s, rf_bench_iterations(s) * (int64_t)off[BLOCKS]);
    rf_bench_counter(s, "B/pt", (double)zbytes / pts, false);
    rf_bench_counter(s, "in_B/pt", (double)off[BLOCKS] / pts, false);
    rf_bench_counter(s, "saved", 1.0 - (double)zbytes / (double)off[BLOCKS], false);
done:
    free(z);
    free(enc);
    free(p);
    ZSTD_freeCCtx(cctx);
    rf_block_codec_free(codec);
}

/* One pair of functions per class below; a class added above needs its line. */
_Static_assert(NCLASS == 10, "zstd_bench.c: one ZSTD_FNS line per class");

#define ZSTD_FNS(i)                                                                                \
    static void bm_level_##i(rf_bench_state *s)                                                    \
    {                                                                                              \
        run_codec_level(s, i);                                                                     \
    }                                                                                              \
    static void bm_raw_##i(rf_bench_state *s)                                                      \
    {                                                                                              \
        run_raw_level(s, i);                                                                       \
    }
ZSTD_FNS(0)
ZSTD_FNS(1)
ZSTD_FNS(2)
ZSTD_FNS(3)
ZSTD_FNS(4)
ZSTD_FNS(5)
ZSTD_FNS(6)
ZSTD_FNS(7)
ZSTD_FNS(8)
ZSTD_FNS(9)

RF_BENCH_REGISTER(zstd_benchmarks)
{
    static const int64_t codec_levels[] = {0, 1, 3, 9, 19};
    static const int64_t raw_levels[] = {1, 3, 9, 19};
    static const rf_bench_fn level_fns[NCLASS] = {bm_level_0, bm_level_1, bm_level_2, bm_level_3,
                                                  bm_level_4, bm_level_5, bm_level_6, bm_level_7,
                                                  bm_level_8, bm_level_9};
    static const rf_bench_fn raw_fns[NCLASS] = {bm_raw_0, bm_raw_1, bm_raw_2, bm_raw_3, bm_raw_4,
                                                bm_raw_5, bm_raw_6, bm_raw_7, bm_raw_8, bm_raw_9};
    static char names[NCLASS * 2][96];
    for (unsigned i = 0; i < NCLASS; i++) {
        const char *cn = rf_gen_value_name(classes[i].v);
        snprintf(names[2 * i], sizeof names[0], "encode/zstd/%s%s", cn, classes[i].suffix);
        snprintf(names[2 * i + 1], sizeof names[0], "encode/zstd_raw/%s%s", cn, classes[i].suffix);
        rf_bench_register_args(names[2 * i], level_fns[i], codec_levels, 5);
        rf_bench_register_args(names[2 * i + 1], raw_fns[i], raw_levels, 4);
    }
}
