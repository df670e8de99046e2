/* Segment format and store round trips: CRC32C, write -> close -> reopen ->
 * query exact, queries of open segments, rolling, format versioning. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sys/stat.h>

#include "core/clock/clock.h"
#include "storage/query/query.h"
#include "storage/segment/segment.h"
#include "tests/storage/store_test_util.h"

static void test_crc32c_vectors(void **state)
{
    (void)state;
    assert_int_equal(rf_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(rf_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(rf_crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    uint8_t buf[4099];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof(buf); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    for (size_t len = 0; len < 300; len++) {
        for (size_t off = 0; off < 9; off++) {
            uint32_t a = rf_crc32c(0, buf + off, len);
            assert_int_equal(a, rf_crc32c_sw(0, buf + off, len));
            size_t cut = len / 3;
            assert_int_equal(a,
                             rf_crc32c(rf_crc32c(0, buf + off, cut), buf + off + cut, len - cut));
        }
    }
    assert_int_equal(rf_crc32c(0, buf, sizeof(buf)), rf_crc32c_sw(0, buf, sizeof(buf)));
    print_message("crc32c hardware path: %s\n", rf_crc32c_hw_available() ? "yes" : "no");
}

static void test_header_and_names(void **state)
{
    (void)state;
    uint8_t b[RF_SEG_HEADER_SIZE];
    rf_seg_header h = {.version = RF_SEG_VERSION, .shard = 3, .seq = 42, .created_ns = 123456789};
    rf_seg_header_encode(&h, b);
    rf_seg_header g;
    rf_err e;
    assert_int_equal(rf_seg_header_decode(b, sizeof(b), &g, "x", &e), 0);
    assert_int_equal(g.shard, 3);
    assert_int_equal(g.seq, 42);
    b[20] ^= 1;
    assert_int_equal(rf_seg_header_decode(b, sizeof(b), &g, "x", &e), -EBADMSG);
    assert_int_equal(rf_seg_header_decode(b, 10, &g, "x", &e), -EBADMSG);
    char name[64];
    uint64_t seq;
    assert_int_equal(rf_seg_name(name, sizeof(name), 17, 1700000000123456789LL), 0);
    assert_string_equal(name, "seg-0000000017-1700000000123.rfs");
    assert_true(rf_seg_name_parse(name, &seq));
    assert_int_equal(seq, 17);
    assert_false(rf_seg_name_parse("seg-12.rfs.corrupt", &seq));
    assert_false(rf_seg_name_parse("other.rfs", &seq));
}

/* ---- store round trip ---- */

#define NS 12
#define NPTS 3000

typedef struct series_def {
    rf_series_key *key;
    uint8_t vt;
} series_def;

static uint64_t value_of(int s, int i, uint8_t vt)
{
    switch (vt) {
    case RF_VALUE_I64: return (uint64_t)(int64_t)((i * 7919) % 100003 - 50000) * (s + 1);
    case RF_VALUE_U64: return (uint64_t)i * 1000 + (uint64_t)s;
    case RF_VALUE_BOOL: return (uint64_t)((i / 3 + s) & 1);
    default: {
        /* two decimals, with the odd special value */
        double d = round((sin(i * 0.01 + s) * 1000.0)) / 100.0;
        if (i % 997 == 5)
            d = -0.0;
        if (i % 1499 == 7)
            d = NAN;
        return tu_f64(d);
    }
    }
}

static int64_t time_of(int s, int i)
{
    return 1700000000000000000LL + (int64_t)i * 10000000000LL + s;
}

static void make_series(series_def *d)
{
    static const uint8_t vts[] = {RF_VALUE_F64, RF_VALUE_I64, RF_VALUE_U64, RF_VALUE_BOOL};
    for (int s = 0; s < NS; s++) {
        char tags[64];
        snprintf(tags, sizeof(tags), "host=h%d,rack=r%d", s, s % 3);
        d[s].key = tu_key("rt", tags, "v");
        d[s].vt = vts[s % 4];
    }
}

static void write_points(rf_store *st, series_def *d, int from, int to)
{
    uint32_t shards = rf_store_shards(st);
    for (int i = from; i < to; i++)
        for (int s = 0; s < NS; s++) {
            rf_store_shard *sh =
                rf_store_shard_get(st, rf_event_owner(d[s].key->series_id, shards));
            rf_event ev =
                tu_event(d[s].key->series_id, time_of(s, i), d[s].vt, value_of(s, i, d[s].vt));
            tu_append(sh, &ev);
        }
}

static void check_points(const char *dir, series_def *d, int n)
{
    rf_query q = {.measurement = "rt", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, NS);
    assert_int_equal(r->stats.blocks_corrupt, 0);
    for (int s = 0; s < NS; s++) {
        /* sets are sorted by key: h0, h1, h10, h11, h2, ... */
        const rf_query_set *set = NULL;
        char want[16];
        snprintf(want, sizeof(want), "h%d", s);
        for (size_t k = 0; k < r->n_sets; k++)
            if (strcmp(r->sets[k].tags[0].value, want) == 0)
                set = &r->sets[k];
        assert_non_null(set);
        assert_int_equal(set->n, n);
        assert_int_equal(set->value_type, d[s].vt);
        assert_string_equal(set->field, "v");
        for (int i = 0; i < n; i++) {
            assert_int_equal(set->ts[i], time_of(s, i));
            assert_int_equal(set->bits[i], value_of(s, i, d[s].vt));
        }
    }
    rf_query_result_free(r);
}

/* rf_seg_store_walk callback: a segment's footer index equals what a full
 * scan of its blocks finds; counts the files in *ctx. */
static int footer_matches_scan(void *ctx, uint32_t shard, uint64_t seq, const char *f)
{
    (void)shard;
    (void)seq;
    rf_err e;
    rf_seg_reader a, b;
    assert_int_equal(rf_seg_reader_open(f, 0, &a, &e), 0);
    assert_int_equal(rf_seg_reader_open(f, RF_SEG_OPEN_FORCE_SCAN, &b, &e), 0);
    assert_true(a.closed);
    assert_false(b.closed);
    assert_int_equal(a.idx.n_blocks, b.idx.n_blocks);
    assert_int_equal(a.idx.n_series, b.idx.n_series);
    assert_memory_equal(a.idx.blocks, b.idx.blocks, a.idx.n_blocks * sizeof(*a.idx.blocks));
    assert_memory_equal(a.idx.series, b.idx.series, a.idx.n_series * sizeof(*a.idx.series));
    rf_seg_reader_close(&a);
    rf_seg_reader_close(&b);
    (*(unsigned *)ctx)++;
    return 0;
}

static void test_round_trip(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    series_def d[NS];
    make_series(d);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 3, &st, &e), 0);
    for (int s = 0; s < NS; s++)
        assert_int_equal(
            rf_store_define_series(rf_store_shard_get(st, rf_event_owner(d[s].key->series_id, 3)),
                                   d[s].key),
            0);
    rf_event unknown = tu_event(12345, 1, RF_VALUE_F64, 0);
    assert_int_equal(rf_store_append(rf_store_shard_get(st, 0), &unknown), -ENOENT);
    write_points(st, d, 0, NPTS / 2);
    /* flush + durable, then the open segments are readable by scanning */
    for (uint32_t k = 0; k < 3; k++)
        assert_int_equal(tu_flush_durable(rf_store_shard_get(st, k), 10000000000LL), 0);
    check_points(dir, d, NPTS / 2);
    write_points(st, d, NPTS / 2, NPTS);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(rf_store_shard_get(st, 0), &ss);
    assert_int_equal(ss.dropped_unknown_series, 1);

    /* one writer per directory */
    rf_store *second;
    assert_int_equal(rf_store_open(dir, &cfg, 3, &second, &e), -EBUSY);
    assert_non_null(strstr(e.msg, "LOCK"));
    assert_int_equal(rf_store_close(st, &e), 0);
    st = NULL;

    /* reopen: nothing to repair, every segment closed */
    assert_int_equal(rf_store_open(dir, &cfg, 3, &st, &e), 0);
    rf_store_stats stats;
    rf_store_stats_read(st, &stats);
    assert_int_equal(stats.recovery.segments_open, 0);
    assert_int_equal(stats.recovery.tail_bytes_cut, 0);
    assert_true(stats.recovery.segments_seen >= 3);
    assert_int_equal(rf_store_close(st, &e), 0);
    check_points(dir, d, NPTS);

    /* the footer index agrees with a scan of every segment */
    unsigned n_files = 0;
    assert_int_equal(rf_seg_store_walk(dir, footer_matches_scan, &n_files, &e), 0);
    assert_true(n_files >= 3);
    for (int s = 0; s < NS; s++)
        rf_series_key_free(d[s].key);
    tu_rmrf(dir);
    free(dir);
}

static void test_rolling_and_age_cuts(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.segment_max_bytes = 8192;
    cfg.block_max_age_ns = 1000000; /* 1 ms */
    cfg.tick_cut_budget_ns = 0;     /* every due cut in one tick (the budget has its own test) */
    series_def d[NS];
    make_series(d);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int s = 0; s < NS; s++)
        assert_int_equal(rf_store_define_series(sh, d[s].key), 0);
    write_points(st, d, 0, 10);
    /* nothing is full: only age cuts these */
    int64_t t0 = rf_clock_mono_ns();
    rf_store_tick(sh, t0 - 1000000000); /* a second earlier they were not there: nothing cut */
    rf_store_shard_stats ss0;
    rf_store_shard_stats_read(sh, &ss0);
    assert_int_equal(ss0.blocks_cut_by_age, 0);
    rf_store_tick(sh, t0 + 5000000);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    assert_int_equal(ss.blocks_cut_by_age, NS);
    assert_int_equal(ss.points_buffered, 0);
    write_points(st, d, 10, NPTS);
    assert_int_equal(rf_store_close(st, &e), 0);
    check_points(dir, d, NPTS);
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_stats stats;
    rf_store_stats_read(st, &stats);
    assert_true(stats.recovery.segments_seen > 5);
    assert_int_equal(stats.recovery.segments_open, 0);
    /* Readable at once, as the daemon logs it right after opening. */
    assert_int_equal(stats.segments, stats.recovery.segments_seen);
    assert_true(stats.bytes > 0);
    print_message("rolled into %" PRIu64 " segments\n", stats.recovery.segments_seen);
    assert_int_equal(rf_store_close(st, &e), 0);
    for (int s = 0; s < NS; s++)
        rf_series_key_free(d[s].key);
    tu_rmrf(dir);
    free(dir);
}

/* Many series filling their blocks at the same moment: the cuts are queued
 * and paced (one per block_points/16 appends, and within the tick budget),
 * not all encoded at once; blocks still hold exactly block_points points and
 * every point is stored. */
static void test_cuts_are_paced(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 64; /* hard cap 80; one queued cut per 4 appends */
    cfg.queue_blocks = 512;
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    enum {
        SERIES = 200
    };
    rf_series_key *k[SERIES];
    char name[32];
    for (int i = 0; i < SERIES; i++) {
        snprintf(name, sizeof(name), "s=%d", i);
        k[i] = tu_key("paced", name, "v");
        assert_int_equal(rf_store_define_series(sh, k[i]), 0);
    }
    /* Round robin: every series reaches 64 points within the last round. */
    for (int p = 0; p < 64; p++)
        for (int i = 0; i < SERIES; i++) {
            rf_event ev = tu_event(k[i]->series_id, 1000 + p, RF_VALUE_I64, (uint64_t)p);
            assert_int_equal(rf_store_append(sh, &ev), 0);
        }
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    assert_int_equal(ss.cuts_deferred, SERIES);
    /* During the last round (200 appends) at most 200/4 queued cuts ran. */
    assert_true(ss.blocks_cut <= SERIES / 4);
    assert_true(ss.cut_queue >= SERIES - SERIES / 4);
    assert_true(ss.cut_queue_high >= ss.cut_queue && ss.cut_queue_high <= SERIES);
    /* Another 16 points per series: the queue drains while appends go on,
     * and no buffer reaches its hard cap (64 + 16 = 80). */
    for (int p = 64; p < 80; p++)
        for (int i = 0; i < SERIES; i++) {
            rf_event ev = tu_event(k[i]->series_id, 1000 + p, RF_VALUE_I64, (uint64_t)p);
            assert_int_equal(rf_store_append(sh, &ev), 0);
        }
    rf_store_shard_stats_read(sh, &ss);
    assert_int_equal(ss.cut_queue, 0);
    assert_int_equal(ss.blocks_cut, SERIES);
    assert_int_equal(ss.points_buffered, SERIES * 16);
    assert_int_equal(ss.dropped_backpressure, 0);
    assert_int_equal(rf_store_close(st, &e), 0);
    /* Every point, in order, in blocks of exactly 64 then 16. */
    rf_query q = {.measurement = "paced", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, SERIES);
    for (size_t i = 0; i < r->n_sets; i++) {
        assert_int_equal(r->sets[i].n, 80);
        for (size_t j = 0; j < 80; j++) {
            assert_int_equal(r->sets[i].ts[j], 1000 + (int64_t)j);
            assert_int_equal(r->sets[i].bits[j], j);
        }
    }
    rf_query_result_free(r);
    rf_store_stats stats;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_stats_read(st, &stats);
    assert_int_equal(stats.recovery.blocks_kept, 0); /* closed cleanly: nothing to scan */
    assert_int_equal(rf_store_close(st, &e), 0);
    for (int i = 0; i < SERIES; i++)
        rf_series_key_free(k[i]);
    tu_rmrf(dir);
    free(dir);
}

/* A series alone is cut within block_points/16 of its own appends after it
 * fills: pacing needs no tick and no other traffic. (A buffer at its hard
 * cap is cut inline; test_backpressure_counted runs into it.) */
static void test_single_series_cut_soon(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 64;
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("cap", "", "v");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    /* One series alone: its own appends pace its queued cut (every 4th
     * append), so it is cut 4 points after filling. */
    for (int p = 0; p < 68; p++) {
        rf_event ev = tu_event(k->series_id, p, RF_VALUE_I64, (uint64_t)p);
        assert_int_equal(rf_store_append(sh, &ev), 0);
    }
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    assert_int_equal(ss.blocks_cut, 1);
    assert_int_equal(ss.points_buffered, 4);
    assert_int_equal(rf_store_close(st, &e), 0);
    rf_series_key_free(k);
    tu_rmrf(dir);
    free(dir);
}

/* rf_store_tick spends at most its budget on cuts (at least one cut per
 * call): with a 1 ns budget, one due cut per tick. */
static void test_tick_budget(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_max_age_ns = 1000000; /* 1 ms */
    cfg.tick_cut_budget_ns = 1;
    series_def d[NS];
    make_series(d);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int s = 0; s < NS; s++)
        assert_int_equal(rf_store_define_series(sh, d[s].key), 0);
    write_points(st, d, 0, 10);
    int64_t later = rf_clock_mono_ns() + 5000000;
    for (int t = 1; t <= NS; t++) {
        rf_store_tick(sh, later);
        rf_store_shard_stats ss;
        rf_store_shard_stats_read(sh, &ss);
        assert_int_equal(ss.blocks_cut_by_age, t);
    }
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    assert_int_equal(ss.points_buffered, 0);
    assert_int_equal(rf_store_close(st, &e), 0);
    check_points(dir, d, 10);
    for (int s = 0; s < NS; s++)
        rf_series_key_free(d[s].key);
    tu_rmrf(dir);
    free(dir);
}

/* storage.time_precision: times are stored rounded down to the unit (also
 * before 1970), values untouched, and points that round onto one time are
 * both kept. Then auto: the client's times exact, receipt times to the ms. */
static void test_time_unit_rounds_down(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.time_unit_ns = 1000000; /* ms */
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("ms", "", "v");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    static const int64_t in[] = {
        -1500001, -1, 0, 999999, 1000000, 1700000000123456789LL, 1700000000123999999LL};
    static const int64_t want[] = {
        -2000000, -1000000, 0, 0, 1000000, 1700000000123000000LL, 1700000000123000000LL};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        rf_event ev = tu_event(k->series_id, in[i], RF_VALUE_I64, (uint64_t)i);
        assert_int_equal(rf_store_append(sh, &ev), 0);
    }
    assert_int_equal(rf_store_close(st, &e), 0);
    rf_query q = {.measurement = "ms", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    assert_int_equal(r->sets[0].n, 7);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(r->sets[0].ts[i], want[i]);
        assert_int_equal(r->sets[0].bits[i], i);
    }
    rf_query_result_free(r);
    rf_series_key_free(k);
    tu_rmrf(dir);
    free(dir);

    dir = tu_tmpdir();
    tu_config(&cfg);
    cfg.time_unit_ns = 0; /* auto */
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    sh = rf_store_shard_get(st, 0);
    k = tu_key("auto", "", "v");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    rf_event a = tu_event(k->series_id, 1700000000123456789LL, RF_VALUE_I64, 1);
    a.flags = RF_EVF_HAS_CLIENT_TIME;
    rf_event b = tu_event(k->series_id, 1700000001123456789LL, RF_VALUE_I64, 2);
    assert_int_equal(rf_store_append(sh, &a), 0);
    assert_int_equal(rf_store_append(sh, &b), 0);
    assert_int_equal(rf_store_close(st, &e), 0);
    q.measurement = "auto";
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->sets[0].n, 2);
    assert_int_equal(r->sets[0].ts[0], 1700000000123456789LL); /* the client's: exact */
    assert_int_equal(r->sets[0].ts[1], 1700000001123000000LL); /* receipt: the ms */
    rf_query_result_free(r);
    rf_series_key_free(k);
    tu_rmrf(dir);
    free(dir);
}

static void test_backpressure_counted(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 4;
    cfg.queue_blocks = 2;
    cfg.io_idle_wait_us = 500000; /* a sleepy I/O thread */
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("bp", "", "v");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    uint64_t ok = 0, dropped = 0;
    for (int i = 0; i < 200; i++) {
        rf_event ev = tu_event(k->series_id, i, RF_VALUE_I64, (uint64_t)i);
        int rc = rf_store_append(sh, &ev);
        assert_true(rc == 0 || rc == -ENOBUFS);
        ok += rc == 0;
        dropped += rc == -ENOBUFS;
    }
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    assert_true(dropped > 0);
    assert_int_equal(ss.dropped_backpressure, dropped);
    assert_true(ss.backpressure_events > 0);
    assert_int_equal(ss.points_appended, ok);
    assert_int_equal(rf_store_close(st, &e), 0);
    /* everything accepted is on disk */
    rf_query q = {.measurement = "bp", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    assert_int_equal(r->sets[0].n, ok);
    rf_query_result_free(r);
    rf_series_key_free(k);
    tu_rmrf(dir);
    free(dir);
}

/* Points of one series arriving slightly out of time order (two workers
 * hand them over) fill one block and are stored sorted, none lost; before,
 * every inversion cut a block of its own. */
static void test_out_of_order_points_sorted_in_one_block(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 64;
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("ooo", "", "v");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    /* Pairs swapped: 1 0 3 2 5 4 ...; value = time, so order is checkable. */
    for (int i = 0; i < 64; i++) {
        int64_t t = 1000 + (i ^ 1);
        rf_event ev = tu_event(k->series_id, t, RF_VALUE_I64, (uint64_t)t);
        assert_int_equal(rf_store_append(sh, &ev), 0);
    }
    uint64_t ticket;
    assert_int_equal(rf_store_flush(sh, &ticket), 0);
    assert_int_equal(rf_store_wait_durable(sh, ticket, 5000000000LL), 0);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    assert_int_equal(ss.blocks_cut, 1);
    assert_int_equal(ss.out_of_order_cuts, 1);
    assert_int_equal(ss.dropped_backpressure, 0);
    assert_int_equal(rf_store_close(st, &e), 0);
    rf_query q = {.measurement = "ooo", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    assert_int_equal(r->sets[0].n, 64);
    for (int i = 0; i < 64; i++) {
        assert_int_equal(r->sets[0].ts[i], 1000 + i);
        assert_int_equal(r->sets[0].bits[i], (uint64_t)(1000 + i));
    }
    rf_query_result_free(r);
    rf_series_key_free(k);
    tu_rmrf(dir);
    free(dir);
}

/* ---- format 3 against format 2 ---- */

typedef struct seg_census {
    unsigned files, v2, v3;
    unsigned compact_footers, fixed_footers;
    unsigned whole_keys, shared_keys;
} seg_census;

/* rf_seg_store_walk callback: counts each file's format, footer layout and
 * kinds of dictionary record, and checks footer against scan. */
static int census(void *ctx, uint32_t shard, uint64_t seq, const char *f)
{
    seg_census *c = ctx;
    assert_int_equal(footer_matches_scan(&c->files, shard, seq, f), 0);
    rf_err e;
    rf_seg_reader r;
    assert_int_equal(rf_seg_reader_open(f, RF_SEG_OPEN_FORCE_SCAN, &r, &e), 0);
    if (r.hdr.version == 2)
        c->v2++;
    else if (r.hdr.version == 3)
        c->v3++;
    for (uint64_t pos = RF_SEG_HEADER_SIZE; pos < r.size;) {
        rf_seg_rec h;
        long n = rf_seg_rec_check(r.map + pos, r.size - pos, &h);
        if (n < 0)
            break; /* the trailer */
        if (h.type == RF_SEG_REC_SERIES && h.value_type == RF_SEG_SERIES_SHARED)
            c->shared_keys++;
        else if (h.type == RF_SEG_REC_SERIES)
            c->whole_keys++;
        else if (h.type == RF_SEG_REC_FOOTER && h.value_type == 1)
            c->compact_footers++;
        else if (h.type == RF_SEG_REC_FOOTER)
            c->fixed_footers++;
        pos += (uint64_t)n;
    }
    rf_seg_reader_close(&r);
    return 0;
}

/* A store written in format 2 (what builds before format 3 wrote, with the
 * writer's segment_version option) is read by this build, recovered in its
 * own format, and a store that goes on writing in format 3 serves both. */
static void test_format2_segments_read(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.segment_version = 2;
    series_def d[NS];
    make_series(d);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 2, &st, &e), 0);
    for (int s = 0; s < NS; s++)
        assert_int_equal(
            rf_store_define_series(rf_store_shard_get(st, rf_event_owner(d[s].key->series_id, 2)),
                                   d[s].key),
            0);
    write_points(st, d, 0, NPTS / 2);
    assert_int_equal(rf_store_close(st, &e), 0);
    seg_census c = {0};
    assert_int_equal(rf_seg_store_walk(dir, census, &c, &e), 0);
    assert_true(c.files >= 2);
    assert_int_equal(c.v2, c.files);
    assert_int_equal(c.fixed_footers, c.files);
    assert_int_equal(c.shared_keys, 0);
    check_points(dir, d, NPTS / 2);

    /* An open format-2 segment (its footer and trailer cut off, as a crash
     * leaves it) is closed by recovery with a format-2 footer. */
    char path[4096] = "";
    DIR *sd;
    snprintf(path, sizeof(path), "%s/shard-00", dir);
    assert_non_null(sd = opendir(path));
    for (struct dirent *de; (de = readdir(sd));)
        if (strncmp(de->d_name, "seg-", 4) == 0) {
            snprintf(path, sizeof(path), "%s/shard-00/%s", dir, de->d_name);
            break;
        }
    closedir(sd);
    rf_seg_reader r;
    assert_int_equal(rf_seg_reader_open(path, 0, &r, &e), 0);
    const uint64_t data_end = r.data_end;
    rf_seg_reader_close(&r);
    assert_int_equal(truncate(path, (off_t)data_end), 0);

    /* The default store (format 3) opens it, then writes format 3 beside. */
    rf_store_config_default(&cfg);
    tu_config(&cfg);
    assert_int_equal(rf_store_open(dir, &cfg, 2, &st, &e), 0);
    rf_store_stats stats;
    rf_store_stats_read(st, &stats);
    assert_int_equal(stats.recovery.segments_open, 1);
    for (int s = 0; s < NS; s++)
        assert_int_equal(
            rf_store_define_series(rf_store_shard_get(st, rf_event_owner(d[s].key->series_id, 2)),
                                   d[s].key),
            0);
    write_points(st, d, NPTS / 2, NPTS);
    assert_int_equal(rf_store_close(st, &e), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_seg_store_walk(dir, census, &c, &e), 0);
    assert_true(c.v2 >= 2);
    assert_true(c.v3 >= 2);
    assert_int_equal(c.fixed_footers, c.v2);
    assert_int_equal(c.compact_footers, c.v3);
    check_points(dir, d, NPTS);
    for (int s = 0; s < NS; s++)
        rf_series_key_free(d[s].key);
    tu_rmrf(dir);
    free(dir);
}

/* Keys of one row (same measurement and tags, other fields) are written as
 * shared-prefix records; each reads back whole, and damage to the record they
 * share with costs their keys in that segment, nothing else. */
static void test_shared_prefix_keys(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    enum {
        ROWS = 3,
        FIELDS = 4,
        PTS = 100
    };
    static const char *const fields[FIELDS] = {"usage_user", "usage_system", "usage_idle", "x"};
    rf_series_key *k[ROWS * FIELDS];
    for (int i = 0; i < ROWS * FIELDS; i++) {
        char tags[128];
        snprintf(tags, sizeof(tags),
                 "datacenter=eu-west-1a,hostname=host_%d,rack=%d,service_environment=production,"
                 "team=NYC",
                 i / FIELDS, i / FIELDS);
        k[i] = tu_key("cpu", tags, fields[i % FIELDS]);
    }
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int i = 0; i < ROWS * FIELDS; i++)
        assert_int_equal(rf_store_define_series(sh, k[i]), 0);
    for (int t = 0; t < PTS; t++)
        for (int i = 0; i < ROWS * FIELDS; i++) {
            rf_event ev = tu_event(k[i]->series_id, 1700000000000000000LL + t * 10000000000LL,
                                   RF_VALUE_F64, tu_f64(t * 0.25 + i));
            tu_append(sh, &ev);
        }
    assert_int_equal(rf_store_close(st, &e), 0);
    seg_census c = {0};
    assert_int_equal(rf_seg_store_walk(dir, census, &c, &e), 0);
    assert_int_equal(c.files, 1);
    assert_int_equal(c.whole_keys, ROWS);
    assert_int_equal(c.shared_keys, ROWS * (FIELDS - 1));

    char path[4096];
    DIR *sd;
    snprintf(path, sizeof(path), "%s/shard-00", dir);
    assert_non_null(sd = opendir(path));
    for (struct dirent *de; (de = readdir(sd));)
        if (strncmp(de->d_name, "seg-", 4) == 0)
            snprintf(path, sizeof(path), "%s/shard-00/%s", dir, de->d_name);
    closedir(sd);
    rf_seg_reader r;
    assert_int_equal(rf_seg_reader_open(path, 0, &r, &e), 0);
    for (int i = 0; i < ROWS * FIELDS; i++) {
        const rf_seg_series_ref *s = rf_seg_reader_find(&r, k[i]->series_id);
        assert_non_null(s);
        uint32_t len, foff;
        uint16_t mlen;
        const char *text = rf_seg_reader_key(&r, s, &len, &mlen, &foff);
        assert_non_null(text);
        assert_int_equal(len, k[i]->len);
        assert_memory_equal(text, k[i]->text, len);
        assert_int_equal(mlen, k[i]->measurement_len);
        assert_int_equal(foff, k[i]->field_offset);
    }
    /* the first row's whole record is the first record of the file */
    const rf_seg_series_ref *s0 = rf_seg_reader_find(&r, k[0]->series_id);
    const uint64_t base = s0->dict_offset;
    rf_seg_reader_close(&r);
    assert_int_equal(base, RF_SEG_HEADER_SIZE);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t junk = 0x5A;
    assert_int_equal(pwrite(fd, &junk, 1, (off_t)base + RF_SEG_REC_HDR_SIZE + 2), 1);
    close(fd);
    assert_int_equal(rf_seg_reader_open(path, 0, &r, &e), 0);
    for (int i = 0; i < ROWS * FIELDS; i++) {
        const rf_seg_series_ref *s = rf_seg_reader_find(&r, k[i]->series_id);
        uint32_t len, foff;
        uint16_t mlen;
        const char *text = rf_seg_reader_key(&r, s, &len, &mlen, &foff);
        if (i < FIELDS)
            assert_null(text); /* the damaged record's row */
        else
            assert_memory_equal(text, k[i]->text, k[i]->len);
    }
    rf_seg_reader_close(&r);
    for (int i = 0; i < ROWS * FIELDS; i++)
        rf_series_key_free(k[i]);
    tu_rmrf(dir);
    free(dir);
}

static void test_future_version_refused(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    assert_int_equal(rf_store_close(st, &e), 0);
    char path[4096];
    snprintf(path, sizeof(path), "%s/shard-00/seg-0000000009-0000000000000.rfs", dir);
    uint8_t hdr[RF_SEG_HEADER_SIZE + 100];
    memset(hdr, 0xAB, sizeof(hdr));
    rf_seg_header h = {.version = RF_SEG_VERSION + 1, .shard = 0, .seq = 9};
    rf_seg_header_encode(&h, hdr);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
    close(fd);
    rf_err_clear(&e);
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), -EPROTONOSUPPORT);
    print_message("refused: %s\n", e.msg);
    char want[64];
    snprintf(want, sizeof(want), "version %u", RF_SEG_VERSION + 1);
    assert_non_null(strstr(e.msg, want));
    assert_non_null(strstr(e.msg, "seg-0000000009"));
    /* untouched */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, (off_t)sizeof(hdr));
    rf_query q = {.measurement = "x", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), -EPROTONOSUPPORT);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_header_and_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rolling_and_age_cuts),
        cmocka_unit_test(test_backpressure_counted),
        cmocka_unit_test(test_cuts_are_paced),
        cmocka_unit_test(test_time_unit_rounds_down),
        cmocka_unit_test(test_single_series_cut_soon),
        cmocka_unit_test(test_tick_budget),
        cmocka_unit_test(test_out_of_order_points_sorted_in_one_block),
        cmocka_unit_test(test_future_version_refused),
        cmocka_unit_test(test_format2_segments_read),
        cmocka_unit_test(test_shared_prefix_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
