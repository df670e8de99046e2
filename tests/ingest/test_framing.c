/* The TCP listener's line framing (rf_linebuf_feed/finish, ingest/listen/
 * frame.c) without sockets: complete lines, the held tail, a line exactly at
 * the limit, an overlong line cut once and resynchronised at its '\n' (held,
 * in place, and at the end of stream), and framing feeding the line-protocol
 * parser, which must parse every line exactly once whatever the read size.
 * (test_listen.c splits a stream at every pair of offsets; fuzz_framing checks
 * arbitrary splits and limits.) */
#include <stdio.h>

#include "ingest/listen/listen.h"
#include "ingest/listen/listen_pvt.h"
#include "tests/ingest/ingest_test_util.h"

/* What the framer emitted, one record per callback. */
typedef struct emitted {
    struct {
        char text[64];
        size_t len;
        uint32_t flags;
    } e[32];
    size_t n;
} emitted;

static void record(void *ctx, const char *d, size_t n, uint32_t flags)
{
    emitted *em = ctx;
    assert_true(em->n < 32);
    assert_true(n < sizeof(em->e[0].text));
    memcpy(em->e[em->n].text, d, n);
    em->e[em->n].text[n] = '\0';
    em->e[em->n].len = n;
    em->e[em->n].flags = flags;
    em->n++;
}

static void expect(const emitted *em, size_t i, const char *text, uint32_t flags)
{
    assert_true(i < em->n);
    assert_string_equal(em->e[i].text, text);
    assert_int_equal(em->e[i].len, strlen(text));
    assert_int_equal(em->e[i].flags, flags);
}

static uint32_t feed(rf_linebuf *lb, const char *s, emitted *em)
{
    return rf_linebuf_feed(lb, s, strlen(s), record, em);
}

static void test_frame_basic(void **state)
{
    (void)state;
    char buf[16];
    rf_linebuf lb = {.buf = buf, .cap = sizeof(buf)};
    emitted em = {0};
    /* Whole lines go out in place, as one run; the tail is held. */
    assert_int_equal(feed(&lb, "a v=1\nb v=2\npart", &em), 0);
    assert_int_equal(em.n, 1);
    expect(&em, 0, "a v=1\nb v=2\n", 0);
    assert_int_equal(lb.len, 4);
    /* No newline yet: held, nothing emitted; an empty read changes nothing. */
    assert_int_equal(feed(&lb, "ial", &em), 0);
    assert_int_equal(feed(&lb, "", &em), 0);
    assert_int_equal(em.n, 1);
    assert_int_equal(lb.len, 7);
    /* The newline completes the held line (from buf, without its '\n'), and
     * the rest of the read goes out in place. */
    assert_int_equal(feed(&lb, " v=3\nc v=4\n", &em), 0);
    assert_int_equal(em.n, 3);
    expect(&em, 1, "partial v=3", 0);
    expect(&em, 2, "c v=4\n", 0);
    assert_int_equal(lb.len, 0);
    /* End of stream with nothing held: nothing to emit. */
    assert_int_equal(rf_linebuf_finish(&lb, record, &em), 0);
    assert_int_equal(em.n, 3);
    /* End of stream with a held line: delivered once, flagged FINAL. */
    assert_int_equal(feed(&lb, "last", &em), 0);
    assert_int_equal(rf_linebuf_finish(&lb, record, &em), 1);
    expect(&em, 3, "last", RF_LISTEN_CHUNK_FINAL);
    assert_int_equal(lb.len, 0);
}

static void test_frame_overlong(void **state)
{
    (void)state;
    char buf[8];
    rf_linebuf lb = {.buf = buf, .cap = sizeof(buf)};
    emitted em = {0};
    /* Exactly cap bytes held: still a line. */
    assert_int_equal(feed(&lb, "ok\n12345678", &em), 0);
    expect(&em, 0, "ok\n", 0);
    assert_int_equal(lb.len, 8);
    assert_int_equal(feed(&lb, "\n", &em), 0);
    expect(&em, 1, "12345678", 0);
    /* One byte more than cap, unterminated: its excerpt is emitted once and
     * the rest is skipped up to its '\n', across reads. */
    assert_int_equal(feed(&lb, "123456789", &em), 1);
    expect(&em, 2, "12345678", RF_LISTEN_CHUNK_LINE_TOO_LONG);
    assert_true(lb.discarding);
    assert_int_equal(feed(&lb, "more junk", &em), 0);
    assert_int_equal(em.n, 3);
    assert_int_equal(feed(&lb, "end\nb v=2\nc", &em), 0);
    assert_false(lb.discarding);
    expect(&em, 3, "b v=2\n", 0);
    /* A held line that the next read makes overlong: the held part is the
     * excerpt. */
    assert_int_equal(feed(&lb, "234567890\nd v=4\n", &em), 1);
    expect(&em, 4, "c", RF_LISTEN_CHUNK_LINE_TOO_LONG);
    expect(&em, 5, "d v=4\n", 0);
    /* A complete overlong line inside a run: cut out of the run, the lines
     * around it delivered. */
    assert_int_equal(feed(&lb, "e v=5\n0123456789abc\nf v=6\n", &em), 1);
    expect(&em, 6, "e v=5\n", 0);
    expect(&em, 7, "01234567", RF_LISTEN_CHUNK_LINE_TOO_LONG);
    expect(&em, 8, "f v=6\n", 0);
    /* An overlong unterminated line at end of stream: no FINAL after its
     * excerpt, and the buffer is reset for the next connection. */
    assert_int_equal(feed(&lb, "0123456789", &em), 1);
    expect(&em, 9, "01234567", RF_LISTEN_CHUNK_LINE_TOO_LONG);
    assert_int_equal(rf_linebuf_finish(&lb, record, &em), 0);
    assert_int_equal(em.n, 10);
    assert_false(lb.discarding);
    assert_int_equal(lb.len, 0);
}

/* The limit itself, on each path: cap bytes is a line, cap + 1 is not. */
static void test_frame_limit_edges(void **state)
{
    (void)state;
    char buf[8];
    rf_linebuf lb = {.buf = buf, .cap = sizeof(buf)};
    emitted em = {0};
    /* In place, a run of cap + 2 bytes: one line of cap + 1. */
    assert_int_equal(feed(&lb, "123456789\n", &em), 1);
    expect(&em, 0, "12345678", RF_LISTEN_CHUNK_LINE_TOO_LONG);
    /* In place, a line of exactly cap inside a longer run: kept whole. */
    assert_int_equal(feed(&lb, "12345678\nab\n", &em), 0);
    expect(&em, 1, "12345678\nab\n", 0);
    /* Held, completed to exactly cap: a line. */
    assert_int_equal(feed(&lb, "1234", &em), 0);
    assert_int_equal(feed(&lb, "5678\n", &em), 0);
    expect(&em, 2, "12345678", 0);
    /* Held, completed to cap + 1: overlong, the held part is the excerpt. */
    assert_int_equal(feed(&lb, "1234", &em), 0);
    assert_int_equal(feed(&lb, "56789\nok\n", &em), 1);
    expect(&em, 3, "1234", RF_LISTEN_CHUNK_LINE_TOO_LONG);
    expect(&em, 4, "ok\n", 0);
    assert_int_equal(em.n, 5);
    assert_int_equal(lb.len, 0);
}

/* Feeds the line-protocol parser from the framer, as the listener does. */
typedef struct parse_sink {
    fixture *f;
    size_t rejected;
} parse_sink;

static void parse_emit(void *ctx, const char *d, size_t n, uint32_t flags)
{
    parse_sink *ps = ctx;
    assert_int_equal(flags, 0);
    ps->rejected += rf_parse_influx(ps->f->ctx, &ps->f->rx, d, n);
}

/* A stream of lines delivered in reads of every size from 1 to 40 bytes:
 * the lines parsed are exactly the lines sent, each once. */
static void test_frame_stream_all_splits(void **state)
{
    (void)state;
    char stream[4096];
    size_t len = 0;
    for (int i = 0; i < 60; i++)
        len += (size_t)snprintf(stream + len, sizeof(stream) - len, "m,i=%d v=%di\n", i % 7, i);
    for (size_t chunk = 1; chunk <= 40; chunk++) {
        rf_parse_config cfg = {.max_line_len = 64};
        parse_sink ps = {.f = fixture_new(&cfg)};
        char buf[64];
        rf_linebuf lb = {.buf = buf, .cap = sizeof(buf)};
        for (size_t off = 0; off < len; off += chunk) {
            size_t n = len - off < chunk ? len - off : chunk;
            assert_int_equal(rf_linebuf_feed(&lb, stream + off, n, parse_emit, &ps), 0);
            assert_true(lb.len <= lb.cap);
        }
        assert_int_equal(rf_linebuf_finish(&lb, parse_emit, &ps), 0);
        rf_parse_flush(ps.f->ctx);
        assert_int_equal(ps.rejected, 0);
        assert_int_equal(n_data(ps.f), 60);
        for (size_t i = 0; i < 60; i++)
            assert_int_equal(data_ev(ps.f, i)->value.i64, (int64_t)i);
        fixture_free(ps.f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_basic),
        cmocka_unit_test(test_frame_overlong),
        cmocka_unit_test(test_frame_limit_edges),
        cmocka_unit_test(test_frame_stream_all_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
