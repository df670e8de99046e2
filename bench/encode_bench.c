/* Block encoder benchmarks: encode and decode speed (items = points) and the
 * bytes/point of each data class at each block size, on the series generator
 * of storage/encode/gen_series.h.
 *
 *   ringflow-bench --benchmark_filter='^encode/' --benchmark_repetitions=5 \
 *                  --benchmark_report_aggregates_only=true
 *
 * Names: encode/<impl>/<class>/<points per block>, decode/<impl>/... with impl
 * rf (rf_block_encode, zstd level 1) or gorilla (the Gorilla XOR value stream
 * alone, as a baseline). Each iteration handles 64 Ki points split into blocks.
 * The counter B/pt is every byte of every block (header included) per point. */
#include "bench/shim/bench_shim.h"

#include "core/event/event.h"
#include "storage/encode/encode.h"
#include "storage/encode/encode_pvt.h"
#include "storage/encode/gen_series.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOTAL_POINTS 65536u
#define ZSTD_LEVEL 1

typedef struct corpus {
    uint32_t per_block, blocks;
    uint8_t vt;
    int64_t *ts;
    uint64_t *v;
    uint8_t *enc; /* blocks back to back */
    size_t *off;  /* blocks + 1 offsets into enc */
    size_t cap;
} corpus;

static const enum rf_gen_value bench_classes[] = {
    RF_GEN_GAUGE_2DEC_WALK, RF_GEN_COUNTER_STEADY, RF_GEN_COUNTER_SPARSE, RF_GEN_GAUGE_NEAR_CONST,
    RF_GEN_COUNTER_BUSY,    RF_GEN_DOUBLE_WALK,    RF_GEN_DOUBLE_RANDOM,  RF_GEN_FLOAT32_SENSOR,
};
#define NCLASS (sizeof bench_classes / sizeof bench_classes[0])
/* TS variants are folded into the class index: index + NCLASS * tsclass */

static int corpus_make(corpus *c, enum rf_gen_value vc, enum rf_gen_ts tc, uint32_t per_block,
                       rf_block_codec *codec)
{
    memset(c, 0, sizeof *c);
    c->per_block = per_block;
    c->blocks = TOTAL_POINTS / per_block;
    uint32_t n = c->blocks * per_block;
    c->ts = malloc(n * sizeof *c->ts);
    c->v = malloc(n * sizeof *c->v);
    c->cap = (size_t)c->blocks * rf_block_encode_bound(per_block);
    c->enc = malloc(c->cap);
    c->off = malloc((c->blocks + 1) * sizeof *c->off);
    if (!c->ts || !c->v || !c->enc || !c->off)
        return -1;
    for (uint32_t b = 0; b < c->blocks; b++)
        c->vt = rf_gen_series(77 + b, vc, tc, per_block, c->ts + (size_t)b * per_block,
                              c->v + (size_t)b * per_block);
    size_t pos = 0;
    for (uint32_t b = 0; b < c->blocks; b++) {
        c->off[b] = pos;
        long len =
            rf_block_encode(codec, c->vt, c->ts + (size_t)b * per_block,
                            c->v + (size_t)b * per_block, per_block, c->enc + pos, c->cap - pos);
        if (len < 0)
            return -1;
        pos += (size_t)len;
    }
    c->off[c->blocks] = pos;
    return 0;
}

static void corpus_free(corpus *c)
{
    free(c->ts);
    free(c->v);
    free(c->enc);
    free(c->off);
}

/* The benchmark functions take the block size as their argument and find
 * their class through a per-function constant. */
static void run_encode(rf_bench_state *s, unsigned cls, enum rf_gen_ts tc)
{
    uint32_t per_block = (uint32_t)rf_bench_arg(s, 0);
    rf_block_codec *codec = rf_block_codec_new(ZSTD_LEVEL);
    corpus c;
    if (!codec || corpus_make(&c, bench_classes[cls], tc, per_block, codec) < 0) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    uint8_t *out = malloc(rf_block_encode_bound(per_block));
    size_t bytes = 0;
    while (rf_bench_keep_running(s)) {
        bytes = 0;
        for (uint32_t b = 0; b < c.blocks; b++) {
            long len = rf_block_encode(codec, c.vt, c.ts + (size_t)b * per_block,
                                       c.v + (size_t)b * per_block, per_block, out,
                                       rf_block_encode_bound(per_block));
            bytes += (size_t)len;
        }
        rf_bench_do_not_optimize(out);
    }
    uint64_t pts = (uint64_t)c.blocks * per_block;
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)pts);
    rf_bench_counter(s, "B/pt", (double)bytes / (double)pts, false);
    free(out);
    corpus_free(&c);
    rf_block_codec_free(codec);
}

static void run_decode(rf_bench_state *s, unsigned cls, enum rf_gen_ts tc)
{
    uint32_t per_block = (uint32_t)rf_bench_arg(s, 0);
    rf_block_codec *codec = rf_block_codec_new(ZSTD_LEVEL);
    corpus c;
    if (!codec || corpus_make(&c, bench_classes[cls], tc, per_block, codec) < 0) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    int64_t *ts = malloc(per_block * sizeof *ts);
    uint64_t *v = malloc(per_block * sizeof *v);
    while (rf_bench_keep_running(s)) {
        for (uint32_t b = 0; b < c.blocks; b++) {
            long n =
                rf_block_decode(codec, c.enc + c.off[b], c.off[b + 1] - c.off[b], ts, v, per_block);
            if (n != (long)per_block) {
                rf_bench_skip_with_error(s, "decode failed");
                break;
            }
        }
        rf_bench_do_not_optimize(v);
        rf_bench_do_not_optimize(ts);
    }
    uint64_t pts = (uint64_t)c.blocks * per_block;
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)pts);
    rf_bench_counter(s, "B/pt", (double)c.off[c.blocks] / (double)pts, false);
    free(ts);
    free(v);
    corpus_free(&c);
    rf_block_codec_free(codec);
}

/* Baseline: the Gorilla XOR value stream alone (no timestamps, no header). */
static void run_gorilla(rf_bench_state *s, unsigned cls, int decode)
{
    uint32_t per_block = (uint32_t)rf_bench_arg(s, 0);
    uint32_t blocks = TOTAL_POINTS / per_block;
    int64_t *ts = malloc(per_block * sizeof *ts);
    uint64_t *v = malloc((size_t)blocks * per_block * sizeof *v);
    uint64_t *dv = malloc(per_block * sizeof *dv);
    size_t bound = RF_GORILLA_BOUND(per_block) + 32;
    uint8_t *enc = malloc((size_t)blocks * bound);
    for (uint32_t b = 0; b < blocks; b++) {
        rf_gen_series(77 + b, bench_classes[cls], RF_GEN_TS_REGULAR, per_block, ts,
                      v + (size_t)b * per_block);
        rf_gorilla_encode(enc + (size_t)b * bound, v + (size_t)b * per_block, per_block);
    }
    size_t bytes = 0;
    while (rf_bench_keep_running(s)) {
        bytes = 0;
        for (uint32_t b = 0; b < blocks; b++) {
            uint8_t *blk = enc + (size_t)b * bound;
            if (decode) {
                rf_gorilla_decode(blk, bound, per_block, dv);
            } else {
                bytes +=
                    (size_t)(rf_gorilla_encode(blk, v + (size_t)b * per_block, per_block) - blk) -
                    4;
            }
        }
        rf_bench_do_not_optimize(dv);
        rf_bench_do_not_optimize(enc);
    }
    uint64_t pts = (uint64_t)blocks * per_block;
    rf_bench_set_items_processed(s, rf_bench_iterations(s) * (int64_t)pts);
    if (!decode)
        rf_bench_counter(s, "B/pt", (double)bytes / (double)pts, false);
    free(ts);
    free(v);
    free(dv);
    free(enc);
}

#define CLASS_FNS(i)                                                                               \
    static void bm_enc_##i(rf_bench_state *s)                                                      \
    {                                                                                              \
        run_encode(s, i, RF_GEN_TS_REGULAR);                                                       \
    }                                                                                              \
    static void bm_dec_##i(rf_bench_state *s)                                                      \
    {                                                                                              \
        run_decode(s, i, RF_GEN_TS_REGULAR);                                                       \
    }                                                                                              \
    static void bm_genc_##i(rf_bench_state *s)                                                     \
    {                                                                                              \
        run_gorilla(s, i, 0);                                                                      \
    }                                                                                              \
    static void bm_gdec_##i(rf_bench_state *s)                                                     \
    {                                                                                              \
        run_gorilla(s, i, 1);                                                                      \
    }
CLASS_FNS(0)
CLASS_FNS(1)
CLASS_FNS(2)
CLASS_FNS(3)
CLASS_FNS(4)
CLASS_FNS(5)
CLASS_FNS(6)
CLASS_FNS(7)

static void bm_enc_walk_jr(rf_bench_state *s)
{
    run_encode(s, 0, RF_GEN_TS_JITTER_RARE);
}
static void bm_dec_walk_jr(rf_bench_state *s)
{
    run_decode(s, 0, RF_GEN_TS_JITTER_RARE);
}
static void bm_enc_walk_ja(rf_bench_state *s)
{
    run_encode(s, 0, RF_GEN_TS_JITTER_ALL);
}
static void bm_dec_walk_ja(rf_bench_state *s)
{
    run_decode(s, 0, RF_GEN_TS_JITTER_ALL);
}

RF_BENCH_REGISTER(encode_benchmarks)
{
    static const int64_t sizes[] = {120, 1024, 8192};
    static const rf_bench_fn enc[NCLASS] = {bm_enc_0, bm_enc_1, bm_enc_2, bm_enc_3,
                                            bm_enc_4, bm_enc_5, bm_enc_6, bm_enc_7};
    static const rf_bench_fn dec[NCLASS] = {bm_dec_0, bm_dec_1, bm_dec_2, bm_dec_3,
                                            bm_dec_4, bm_dec_5, bm_dec_6, bm_dec_7};
    static const rf_bench_fn genc[NCLASS] = {bm_genc_0, bm_genc_1, bm_genc_2, bm_genc_3,
                                             bm_genc_4, bm_genc_5, bm_genc_6, bm_genc_7};
    static const rf_bench_fn gdec[NCLASS] = {bm_gdec_0, bm_gdec_1, bm_gdec_2, bm_gdec_3,
                                             bm_gdec_4, bm_gdec_5, bm_gdec_6, bm_gdec_7};
    static char names[NCLASS * 4][96];
    for (unsigned i = 0; i < NCLASS; i++) {
        const char *cn = rf_gen_value_name(bench_classes[i]);
        snprintf(names[4 * i + 0], sizeof names[0], "encode/rf/%s", cn);
        snprintf(names[4 * i + 1], sizeof names[0], "decode/rf/%s", cn);
        snprintf(names[4 * i + 2], sizeof names[0], "encode/gorilla/%s", cn);
        snprintf(names[4 * i + 3], sizeof names[0], "decode/gorilla/%s", cn);
        rf_bench_register_args(names[4 * i + 0], enc[i], sizes, 3);
        rf_bench_register_args(names[4 * i + 1], dec[i], sizes, 3);
        rf_bench_register_args(names[4 * i + 2], genc[i], sizes, 3);
        rf_bench_register_args(names[4 * i + 3], gdec[i], sizes, 3);
    }
    rf_bench_register_args("encode/rf/gauge_2dec_walk+ts_jitter_rare", bm_enc_walk_jr, sizes, 3);
    rf_bench_register_args("decode/rf/gauge_2dec_walk+ts_jitter_rare", bm_dec_walk_jr, sizes, 3);
    rf_bench_register_args("encode/rf/gauge_2dec_walk+ts_jitter_all", bm_enc_walk_ja, sizes, 3);
    rf_bench_register_args("decode/rf/gauge_2dec_walk+ts_jitter_all", bm_dec_walk_ja, sizes, 3);
}
