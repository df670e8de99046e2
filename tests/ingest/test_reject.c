/* Validation: every reject reason with its counter and log entry, good lines
 * next to bad ones, the reject log's order and wrap-around, series-def
 * emission and the bounded caches, batch flushing. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "tests/ingest/ingest_test_util.h"

#define A50 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void test_reason_names_stable(void **state)
{
    (void)state;
    static const char *const want[RF_REJ__COUNT] = {
        "syntax",
        "bad_escape",
        "bad_number",
        "out_of_range",
        "timestamp_window",
        "line_too_long",
        "nul_byte",
        "invalid_utf8",
        "too_many_tags",
        "key_too_long",
        "empty_field_set",
        "too_many_fields",
        "duplicate_tag",
        "unknown_type",
        "no_memory",
        "signed_packet",
        "encrypted_packet",
        "field_type_conflict",
        "time_field_key",
        "string_too_long",
        "bad_signature",
        "unknown_user",
        "decrypt_failed",
        "unsigned_packet",
        "unencrypted_packet",
    };
    for (int i = 0; i < RF_REJ__COUNT; i++)
        assert_string_equal(rf_reject_reason_name((enum rf_reject_reason)i), want[i]);
    assert_string_equal(rf_reject_reason_name(RF_REJ__COUNT), "unknown");
}

/* One bad line per reason, each between two good lines: every good line still
 * produces its event, every bad line bumps exactly its own counter. */
static void test_every_reason_alone(void **state)
{
    (void)state;
    static const struct {
        enum rf_reject_reason reason;
        parse_fn fn;
        const char *bad;
        size_t bad_len; /* 0: strlen */
    } cases[] = {
        {RF_REJ_SYNTAX, rf_parse_influx, "m,t v=1", 0},
        {RF_REJ_SYNTAX, rf_parse_influx, "m v", 0},
        {RF_REJ_SYNTAX, rf_parse_influx, "m =1", 0},
        {RF_REJ_SYNTAX, rf_parse_influx, "m,t= v=1", 0},
        {RF_REJ_SYNTAX, rf_parse_influx, ",t=1 v=1", 0},
        {RF_REJ_SYNTAX, rf_parse_influx, "m v=\"unterminated", 0},
        {RF_REJ_SYNTAX, rf_parse_influx, "m v=\"s\"x", 0},
        {RF_REJ_BAD_ESCAPE, rf_parse_influx, "m v=1 1\\", 0},
        {RF_REJ_BAD_ESCAPE, rf_parse_influx, "m,t=a\\", 0},
        {RF_REJ_BAD_ESCAPE, rf_parse_influx, "m v=\"abc\\\"", 0},
        {RF_REJ_BAD_NUMBER, rf_parse_influx, "m v=1.2.3", 0},
        {RF_REJ_OUT_OF_RANGE, rf_parse_influx, "m v=99999999999999999999i", 0},
        {RF_REJ_TIMESTAMP_WINDOW, rf_parse_influx, "m v=1 1", 0},
        {RF_REJ_TIMESTAMP_WINDOW, rf_parse_influx, "m v=1 1800000000000000000", 0},
        {RF_REJ_NUL_BYTE, rf_parse_influx, "m,t=a\0b v=1", 11},
        {RF_REJ_NUL_BYTE, rf_parse_influx, "m v=\"a\0b\"", 9},
        {RF_REJ_NUL_BYTE, rf_parse_influx, "m v=1\0", 6},
        {RF_REJ_INVALID_UTF8, rf_parse_influx, "m,t=\xff v=1", 0},
        {RF_REJ_INVALID_UTF8, rf_parse_influx, "m \xc0\xaf=1", 0},     /* overlong '/' */
        {RF_REJ_INVALID_UTF8, rf_parse_influx, "\xed\xa0\x80 v=1", 0}, /* surrogate */
        {RF_REJ_TOO_MANY_TAGS, rf_parse_influx, "m,a=1,b=2,c=3,d=4,e=5 v=1", 0},
        {RF_REJ_KEY_TOO_LONG, rf_parse_influx,
         "m,t=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa v=1", 0},
        {RF_REJ_EMPTY_FIELD_SET, rf_parse_influx, "m", 0},
        {RF_REJ_EMPTY_FIELD_SET, rf_parse_influx, "m,t=1", 0},
        {RF_REJ_EMPTY_FIELD_SET, rf_parse_influx, "m,t=1 ", 0},
        {RF_REJ_TOO_MANY_FIELDS, rf_parse_influx, "m a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9", 0},
        {RF_REJ_DUPLICATE_TAG, rf_parse_influx, "m,a=1,b=2,a=3 v=1", 0},
        {RF_REJ_LINE_TOO_LONG, rf_parse_influx, "m v=1,s=\"" A50 A50 A50 A50 A50 "\"", 0},
        {RF_REJ_SYNTAX, rf_parse_statsd, "name|c", 0},
        {RF_REJ_UNKNOWN_TYPE, rf_parse_statsd, "name:1|x", 0},
        {RF_REJ_BAD_NUMBER, rf_parse_statsd, "name:abc|c", 0},
        {RF_REJ_OUT_OF_RANGE, rf_parse_statsd, "name:1|c|@1.5", 0},
        {RF_REJ_NUL_BYTE, rf_parse_statsd, "name:a\0|s", 9},
        {RF_REJ_INVALID_UTF8, rf_parse_statsd, "n\xfe:1|c", 0},
        {RF_REJ_SYNTAX, rf_parse_graphite, "a.b.c", 0},
        {RF_REJ_BAD_NUMBER, rf_parse_graphite, "a.b.c 1x 1700000000", 0},
        {RF_REJ_TIMESTAMP_WINDOW, rf_parse_graphite, "a.b.c 1 1", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rf_parse_config cfg = {
            .ts_past_ns = 3600LL * 1000000000LL,
            .ts_future_ns = 600LL * 1000000000LL,
            .max_line_len = 200,
            .max_tags = 4,
            .max_fields = 8,
            .max_key_len = 64,
        };
        fixture *f = fixture_new(&cfg);
        const char *good = cases[i].fn == rf_parse_influx   ? "ok v=1\n"
                           : cases[i].fn == rf_parse_statsd ? "ok:1|c\n"
                                                            : "ok 1 -1\n";
        char buf[512];
        size_t gl = strlen(good);
        size_t bl = cases[i].bad_len ? cases[i].bad_len : strlen(cases[i].bad);
        size_t n = 0;
        memcpy(buf + n, good, gl), n += gl;
        memcpy(buf + n, cases[i].bad, bl), n += bl;
        buf[n++] = '\n';
        memcpy(buf + n, good, gl), n += gl;
        size_t rej = cases[i].fn(f->ctx, &f->rx, buf, n);
        rf_parse_flush(f->ctx);
        if (rej != 1 || rf_parse_reject_count(f->ctx, cases[i].reason) != 1)
            fail_msg("case %zu (%s): rejected %zu, %s=%llu", i, cases[i].bad, rej,
                     rf_reject_reason_name(cases[i].reason),
                     (unsigned long long)rf_parse_reject_count(f->ctx, cases[i].reason));
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_REJECTED), 1);
        assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 2);
        assert_int_equal(n_data(f), 2);
        rf_reject_entry e[4];
        assert_int_equal(rf_parse_reject_log_read(f->ctx, e, 4), 1);
        assert_int_equal(e[0].reason, cases[i].reason);
        assert_int_equal(e[0].seq, 1);
        assert_int_equal(e[0].wall_ns, T_WALL);
        assert_string_equal(e[0].source, "10.0.0.7:5000");
        size_t ex = bl < RF_REJECT_EXCERPT_MAX ? bl : RF_REJECT_EXCERPT_MAX;
        assert_int_equal(e[0].excerpt_len, ex);
        for (size_t k = 0; k < ex; k++) {
            unsigned char c = (unsigned char)cases[i].bad[k];
            assert_int_equal(e[0].excerpt[k], (c >= 0x20 && c < 0x7f) ? (char)c : '?');
        }
        fixture_free(f);
    }
}

static void test_reject_log_order_and_wrap(void **state)
{
    (void)state;
    rf_parse_config cfg = {.reject_log_slots = 4};
    fixture *f = fixture_new(&cfg);
    f->rx.source_addr = NULL;
    char line[32];
    for (int i = 0; i < 10; i++) {
        f->rx.wall_ns = T_WALL + i;
        int n = snprintf(line, sizeof(line), "bad%d", i);
        assert_int_equal(rf_parse_influx(f->ctx, &f->rx, line, (size_t)n), 1);
    }
    rf_reject_entry e[8];
    assert_int_equal(rf_parse_reject_log_read(f->ctx, e, 8), 4);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(e[k].seq, 10 - k);
        assert_int_equal(e[k].wall_ns, T_WALL + 9 - k);
        assert_int_equal(e[k].reason, RF_REJ_EMPTY_FIELD_SET);
        snprintf(line, sizeof(line), "bad%d", 9 - k);
        assert_memory_equal(e[k].excerpt, line, 4);
        assert_string_equal(e[k].source, "");
    }
    assert_int_equal(rf_parse_reject_log_read(f->ctx, e, 2), 2);
    assert_int_equal(e[1].seq, 9);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_EMPTY_FIELD_SET), 10);
    fixture_free(f);
}

/* A control thread reads the log while the ingest thread keeps rejecting:
 * every entry it gets must be whole (its excerpt names its own seq). */
typedef struct reader_arg {
    rf_parse_ctx *ctx;
    atomic_bool stop;
    uint64_t seen;
    uint64_t torn;
} reader_arg;

static void *log_reader(void *p)
{
    reader_arg *a = p;
    rf_reject_entry e[8];
    char want[64];
    while (!atomic_load_explicit(&a->stop, memory_order_acquire)) {
        size_t n = rf_parse_reject_log_read(a->ctx, e, 8);
        for (size_t i = 0; i < n; i++) {
            int wl = snprintf(want, sizeof(want), "bad%llu", (unsigned long long)e[i].seq);
            if (e[i].excerpt_len != wl || memcmp(e[i].excerpt, want, (size_t)wl) != 0 ||
                e[i].wall_ns != (int64_t)e[i].seq)
                a->torn++;
            a->seen++;
        }
    }
    return NULL;
}

static void test_reject_log_concurrent_reader(void **state)
{
    (void)state;
    rf_parse_config cfg = {.reject_log_slots = 8};
    fixture *f = fixture_new(&cfg);
    reader_arg a = {.ctx = f->ctx};
    atomic_init(&a.stop, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, log_reader, &a), 0);
    char line[32];
    for (uint64_t i = 1; i <= 200000; i++) {
        f->rx.wall_ns = (int64_t)i;
        int n = snprintf(line, sizeof(line), "bad%llu", (unsigned long long)i);
        rf_parse_influx(f->ctx, &f->rx, line, (size_t)n);
    }
    atomic_store_explicit(&a.stop, true, memory_order_release);
    pthread_join(th, NULL);
    assert_int_equal(a.torn, 0);
    assert_true(a.seen > 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_EMPTY_FIELD_SET), 200000);
    fixture_free(f);
}

static void test_external_reject(void **state)
{
    (void)state;
    rf_parse_config cfg = {0};
    fixture *f = fixture_new(&cfg);
    rf_parse_reject_external(f->ctx, &f->rx, RF_REJ_LINE_TOO_LONG, "abc\x01", 4);
    rf_reject_entry e[1];
    assert_int_equal(rf_parse_reject_log_read(f->ctx, e, 1), 1);
    assert_int_equal(e[0].reason, RF_REJ_LINE_TOO_LONG);
    assert_memory_equal(e[0].excerpt, "abc?", 4);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_LINE_TOO_LONG), 1);
    fixture_free(f);
}

/* Defs: once per series per context, before the first value, with ownership
 * moving to the consumer (collected_free frees them: ASan/valgrind see leaks). */
static void test_series_def_once(void **state)
{
    (void)state;
    rf_parse_config cfg = {0};
    fixture *f = fixture_new(&cfg);
    assert_int_equal(run(f, rf_parse_influx, "m,h=a v=1\nm,h=a v=2\nm,h=a v=3,w=4\n"), 0);
    assert_int_equal(f->out.n, 6); /* def v, v, v, v, def w, w */
    assert_int_equal(f->out.ev[0].kind, RF_KIND_SERIES_DEF);
    assert_int_equal(f->out.ev[1].kind, RF_KIND_GAUGE);
    assert_int_equal(f->out.ev[4].kind, RF_KIND_SERIES_DEF);
    assert_int_equal(f->out.ev[4].series_id, id_of("m,h=a w"));
    assert_int_equal(f->out.ev[5].series_id, id_of("m,h=a w"));
    /* a rejected line announces nothing and caches nothing */
    assert_int_equal(run(f, rf_parse_influx, "n,h=a v=1,w=bad\n"), 1);
    assert_int_equal(f->out.n, 6);
    assert_int_equal(run(f, rf_parse_influx, "n,h=a v=1\n"), 0);
    assert_int_equal(f->out.n, 8);
    assert_int_equal(f->out.ev[6].kind, RF_KIND_SERIES_DEF);
    assert_string_equal(def_text(f, id_of("n,h=a v")), "n,h=a v");
    fixture_free(f);
}

/* Tiny tables: the announced set evicts (counted) and the evicted series is
 * announced again; the raw cache evicts (counted) without re-announcing what
 * the announced set still holds. */
static void test_bounded_tables(void **state)
{
    (void)state;
    rf_parse_config cfg = {.series_cache_slots = 16, .announced_slots = 16};
    fixture *f = fixture_new(&cfg);
    char line[64];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(line, sizeof(line), "m,i=%d v=1\n", i);
        assert_int_equal(rf_parse_influx(f->ctx, &f->rx, line, (size_t)n), 0);
    }
    rf_parse_flush(f->ctx);
    assert_int_equal(n_defs(f), 200);
    assert_true(rf_parse_counter(f->ctx, RF_PC_ANNOUNCE_EVICTIONS) >= 200 - 16);
    assert_true(rf_parse_counter(f->ctx, RF_PC_CACHE_EVICTIONS) >= 200 - 16);
    collected_reset(&f->out);
    /* m,i=0 has long been evicted from both: announced again, same text */
    assert_int_equal(run(f, rf_parse_influx, "m,i=0 v=2\n"), 0);
    assert_int_equal(n_defs(f), 1);
    assert_string_equal(def_text(f, id_of("m,i=0 v")), "m,i=0 v");
    /* the most recent series hits the cache: no def, no miss */
    uint64_t misses = rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES);
    collected_reset(&f->out);
    assert_int_equal(run(f, rf_parse_influx, "m,i=0 v=3\n"), 0);
    assert_int_equal(n_defs(f), 0);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_CACHE_MISSES), misses);
    fixture_free(f);
}

static void test_batch_flushes_when_full(void **state)
{
    (void)state;
    rf_event batch[3];
    collected out = {0};
    rf_parse_config cfg = {0};
    rf_parse_ctx *ctx = rf_parse_ctx_new(&cfg, batch, 3, collect_flush, &out, NULL);
    assert_non_null(ctx);
    rf_recv_info rx = {.wall_ns = T_WALL, .mono_ns = T_MONO};
    const char *text = "m a=1,b=2,c=3,d=4\n"; /* 4 defs + 4 values = 8 events */
    assert_int_equal(rf_parse_influx(ctx, &rx, text, strlen(text)), 0);
    assert_int_equal(out.n, 6); /* two full batches, nothing partial */
    assert_int_equal(out.flushes, 2);
    rf_parse_flush(ctx);
    assert_int_equal(out.n, 8);
    assert_int_equal(out.flushes, 3);
    rf_parse_flush(ctx); /* nothing pending: no call */
    assert_int_equal(out.flushes, 3);
    assert_int_equal(rf_parse_counter(ctx, RF_PC_FLUSHES), 3);
    rf_parse_ctx_free(ctx);
    collected_free(&out);
}

static void test_free_flushes_leftovers(void **state)
{
    (void)state;
    rf_event batch[8];
    collected out = {0};
    rf_parse_config cfg = {0};
    rf_parse_ctx *ctx = rf_parse_ctx_new(&cfg, batch, 8, collect_flush, &out, NULL);
    assert_non_null(ctx);
    rf_recv_info rx = {.wall_ns = T_WALL, .mono_ns = T_MONO};
    assert_int_equal(rf_parse_influx(ctx, &rx, "m v=1", 5), 0);
    assert_int_equal(out.n, 0); /* not full, not flushed */
    rf_parse_ctx_free(ctx);
    assert_int_equal(out.n, 2); /* def + value handed over, keys freed by the owner */
    assert_int_equal(out.ev[1].value_type, RF_VALUE_F64);
    collected_free(&out);
}

static void test_bad_config(void **state)
{
    (void)state;
    rf_event batch[1];
    collected out = {0};
    rf_err err;
    rf_parse_config cfg = {.ts_past_ns = -1};
    assert_null(rf_parse_ctx_new(&cfg, batch, 1, collect_flush, &out, &err));
    assert_int_equal(err.code, 22);
    cfg = (rf_parse_config){.max_key_len = 70000};
    assert_null(rf_parse_ctx_new(&cfg, batch, 1, collect_flush, &out, &err));
    assert_int_equal(err.code, 22);
    cfg = (rf_parse_config){0};
    assert_null(rf_parse_ctx_new(&cfg, batch, 0, collect_flush, &out, &err));
    assert_null(rf_parse_ctx_new(&cfg, batch, 1, NULL, &out, &err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reason_names_stable),
        cmocka_unit_test(test_every_reason_alone),
        cmocka_unit_test(test_reject_log_order_and_wrap),
        cmocka_unit_test(test_reject_log_concurrent_reader),
        cmocka_unit_test(test_external_reject),
        cmocka_unit_test(test_series_def_once),
        cmocka_unit_test(test_bounded_tables),
        cmocka_unit_test(test_batch_flushes_when_full),
        cmocka_unit_test(test_free_flushes_leftovers),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
