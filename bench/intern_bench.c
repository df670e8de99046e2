/* Series-key interning on its own (ingest/protocol/series_key.c): the step of
 * every parsed line that turns its raw series bytes and field name into a
 * series id, without the rest of the parser.
 *
 *   parse/intern/hit/<series>    the hot path: XXH3-128 of the raw series bytes,
 *                                then rf_series_finish_line: raw-cache lookup of
 *                                (series, field) and the event written to the
 *                                batch. <series> known series in random order,
 *                                all in the cache (2^18 slots); the lines' raw
 *                                bytes lie one after the other, as in a receive
 *                                buffer
 *   parse/intern/miss/<tags>     every line a series the context has not seen (16
 *                                cache slots, 16 announced ids): the miss path of
 *                                rf_series_finish_line: split, validate (UTF-8,
 *                                names), sort the tags, re-escape, build the
 *                                canonical key, hash it to the id
 *                                (rf_series_id_of_key), allocate the rf_series_key
 *                                and emit the definition; the flush callback frees
 *                                the keys. <tags> tags per series, sent in reverse
 *                                key order so the sort does work
 *   parse/intern/id_of_key/<bytes>  rf_series_id_of_key alone on canonical keys of
 *                                about that length
 *
 * items/s is lines (series resolutions) per second of CPU time. Drives the
 * library's internal entry point (protocol_pvt.h, private to ingest/protocol;
 * as encode_bench.c uses encode_pvt.h): the split callback hands over spans
 * prepared at setup, so line parsing is not measured here (parse/... is). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/shim/bench_shim.h"
#include "ingest/protocol/protocol_pvt.h"

#define BATCH_CAP 1024u
#define MAX_TAGS 16u

typedef struct series_raw {
    const char *text; /* raw series bytes (measurement,tags) */
    uint32_t len;
    rf_span meas;
    uint32_t ntags;
    rf_tag tags[MAX_TAGS];
} series_raw;

typedef struct corpus {
    uint32_t n, tags;
    char *text;
    series_raw *s;
    /* The lines in arrival order: line i is series order[i] (random), its raw
     * bytes copied one after the other into `stream` as in a receive buffer,
     * so a hit touches the bytes in sequence and the cache, not the corpus. */
    uint32_t *order;
    uint32_t n_order;
    char *stream;
    const char **line_text;
    uint32_t *line_len;
} corpus;

typedef struct flush_sink {
    uint64_t events, defs;
} flush_sink;

static void on_flush(void *user, rf_event *ev, size_t n)
{
    flush_sink *fs = user;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == RF_KIND_SERIES_DEF) {
            rf_series_key_free((rf_series_key *)(uintptr_t)ev[i].aux);
            fs->defs++;
        } else {
            fs->events++;
        }
    }
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void corpus_free(corpus *c)
{
    if (!c)
        return;
    free(c->text);
    free(c->s);
    free(c->order);
    free(c->stream);
    free(c->line_text);
    free(c->line_len);
    free(c);
}

/* Raw text "system,tK=..,...,t1=..,t0=.." with tags in reverse key order. */
static corpus *corpus_make(uint32_t n, uint32_t tags)
{
    corpus *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->n = n;
    c->tags = tags;
    size_t per = 24 + (size_t)tags * 32;
    c->text = malloc((size_t)n * per);
    c->s = calloc(n, sizeof(*c->s));
    c->n_order = n < (1u << 16) ? (1u << 16) : n;
    c->order = malloc(c->n_order * sizeof(*c->order));
    c->stream = malloc((size_t)c->n_order * per);
    c->line_text = malloc(c->n_order * sizeof(*c->line_text));
    c->line_len = malloc(c->n_order * sizeof(*c->line_len));
    if (!c->text || !c->s || !c->order || !c->stream || !c->line_text || !c->line_len) {
        corpus_free(c);
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *p = c->text + (size_t)i * per;
        series_raw *s = &c->s[i];
        int len = snprintf(p, per, "system");
        s->meas = (rf_span){p, 6};
        for (uint32_t t = tags; t-- > 0;) {
            char *k = p + len + 1;
            int kl = snprintf(p + len, per - (size_t)len, ",tag%02u=", t);
            len += kl;
            char *v = p + len;
            int vl = t == 0 ? snprintf(p + len, per - (size_t)len, "host-%07u", i)
                            : snprintf(p + len, per - (size_t)len, "v%u", (i + t) % (7 * t + 3));
            len += vl;
            s->tags[s->ntags++] = (rf_tag){
                .key = {k, (uint32_t)(kl - 2)}, .value = {v, (uint32_t)vl}, .has_value = true};
        }
        s->text = p;
        s->len = (uint32_t)len;
    }
    uint64_t x = 0x2545f4914f6cdd1dull ^ n;
    size_t at = 0;
    for (uint32_t i = 0; i < c->n_order; i++) {
        c->order[i] = (uint32_t)(rng(&x) % n);
        const series_raw *sr = &c->s[c->order[i]];
        memcpy(c->stream + at, sr->text, sr->len);
        c->line_text[i] = c->stream + at;
        c->line_len[i] = sr->len;
        at += sr->len;
    }
    return c;
}


/* The split callback: the spans prepared at setup, copied into the context's
 * tag scratch (the canonicaliser sorts them in place). */
static int split_prepared(rf_parse_ctx *ctx, const void *arg, rf_series_parts *parts)
{
    const series_raw *s = arg;
    parts->measurement = s->meas;
    parts->esc = RF_ESC_MEAS;
    parts->esc_tags = RF_ESC_KEY;
    parts->multi_tags = false;
    parts->tags = ctx->tags;
    parts->ntags = s->ntags;
    memcpy(ctx->tags, s->tags, s->ntags * sizeof(rf_tag));
    return 0;
}

static rf_parse_ctx *ctx_make(uint32_t cache_slots, uint32_t announced, rf_event *batch,
                              flush_sink *fs)
{
    rf_parse_config cfg = {.series_cache_slots = cache_slots, .announced_slots = announced};
    rf_err err = {0};
    return rf_parse_ctx_new(&cfg, batch, BATCH_CAP, on_flush, fs, &err);
}

/* One line's series step, as rf_parse_influx does it after scanning the
 * fields: hash the raw series bytes, one pending field, finish the line. */
static inline int intern_line(rf_parse_ctx *ctx, const char *text, uint32_t len,
                              const series_raw *s, double value, int64_t ts)
{
    XXH128_hash_t raw = XXH3_128bits_withSeed(text, len, RF_PROTO_INFLUX);
    rf_pending *f = &ctx->pend[0];
    rf_pending_init(f, "usage_idle", 10, RF_ESC_KEY, RF_KIND_GAUGE);
    f->value_type = RF_VALUE_F64;
    f->value.f64 = value;
    return rf_series_finish_line(ctx, raw, 1, split_prepared, s, ts, 0, 0);
}

static void run_intern(rf_bench_state *s, corpus *c, uint32_t cache_slots, uint32_t announced,
                       int warm)
{
    static rf_event batch[BATCH_CAP];
    flush_sink fs = {0};
    rf_parse_ctx *ctx = c ? ctx_make(cache_slots, announced, batch, &fs) : NULL;
    if (!ctx) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    rf_recv_info rx = {.wall_ns = 1796155462000000000ll, .mono_ns = 1};
    ctx->rx = &rx; /* set by rf_parse_* per call; read by the emit path */
    if (warm) {
        for (uint32_t i = 0; i < c->n; i++)
            intern_line(ctx, c->s[i].text, c->s[i].len, &c->s[i], 1.0, rx.wall_ns);
        rf_parse_flush(ctx);
    }
    uint64_t misses0 = rf_parse_counter(ctx, RF_PC_CACHE_MISSES);
    uint64_t lines = 0;
    uint32_t at = 0;
    int failed = 0;
    while (rf_bench_keep_running(s)) {
        for (uint32_t i = 0; i < 256; i++) {
            /* The corpus entry is only an address here: split reads it on
             * the miss path. */
            failed |= intern_line(ctx, c->line_text[at], c->line_len[at], &c->s[c->order[at]],
                                  (double)i, rx.wall_ns);
            if (++at == c->n_order)
                at = 0;
        }
        lines += 256;
    }
    rf_parse_flush(ctx);
    uint64_t misses = rf_parse_counter(ctx, RF_PC_CACHE_MISSES) - misses0;
    if (failed)
        rf_bench_skip_with_error(s, "a line was rejected");
    rf_bench_set_items_processed(s, (int64_t)lines);
    rf_bench_counter(s, "miss_share", lines ? (double)misses / (double)lines : 0, false);
    rf_parse_ctx_free(ctx);
}

static void bm_hit(rf_bench_state *s)
{
    static corpus *cache[4];
    uint32_t n = (uint32_t)rf_bench_arg(s, 0);
    corpus *c = NULL;
    for (int i = 0; i < 4 && !c; i++)
        if (cache[i] && cache[i]->n == n)
            c = cache[i];
    if (!c) {
        c = corpus_make(n, 3);
        for (int i = 0; i < 4; i++)
            if (!cache[i]) {
                cache[i] = c;
                break;
            }
    }
    run_intern(s, c, 1u << 18, 1u << 18, 1);
}

static void bm_miss(rf_bench_state *s)
{
    /* 2^16 distinct series through 16 cache slots: nearly every line misses. */
    corpus *c = corpus_make(1u << 16, (uint32_t)rf_bench_arg(s, 0));
    run_intern(s, c, 16, 16, 0);
    corpus_free(c);
}

static void bm_id_of_key(rf_bench_state *s)
{
    size_t want = (size_t)rf_bench_arg(s, 0);
    enum {
        NKEYS = 1024
    };
    char *keys = malloc(NKEYS * (want + 64));
    size_t *lens = malloc(NKEYS * sizeof(*lens));
    if (!keys || !lens) {
        rf_bench_skip_with_error(s, "setup failed");
        free(keys);
        free(lens);
        return;
    }
    size_t total = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        char *k = keys + i * (want + 64);
        size_t len = (size_t)snprintf(k, want + 64, "system,host=h%05zu", i);
        while (len + 12 < want)
            len += (size_t)snprintf(k + len, want + 64 - len, ",t%zu=v%zu", len % 97, i % 13);
        len += (size_t)snprintf(k + len, want + 64 - len, " usage_idle");
        lens[i] = len;
        total += len;
    }
    uint64_t acc = 0, n = 0;
    while (rf_bench_keep_running(s)) {
        for (size_t i = 0; i < NKEYS; i++)
            acc += rf_series_id_of_key(keys + i * (want + 64), lens[i]);
        n += NKEYS;
    }
    rf_bench_do_not_optimize(&acc);
    rf_bench_set_items_processed(s, (int64_t)n);
    rf_bench_set_bytes_processed(s, (int64_t)(n / NKEYS) * (int64_t)total);
    free(keys);
    free(lens);
}

RF_BENCH_REGISTER(intern_benchmarks)
{
    static const int64_t series[] = {1000, 100000};
    static const int64_t tags[] = {3, 10};
    static const int64_t key_bytes[] = {48, 256};
    rf_bench_register_args("parse/intern/hit", bm_hit, series, 2);
    rf_bench_register_args("parse/intern/miss", bm_miss, tags, 2);
    rf_bench_register_args("parse/intern/id_of_key", bm_id_of_key, key_bytes, 2);
}
