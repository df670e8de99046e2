/* rf_frame_scan: complete lines, kept tails, overlong lines, and a simulated
 * TCP reader that must parse every line exactly once whatever the split. */
#include <stdio.h>

#include "tests/ingest/ingest_test_util.h"

static void test_frame_basic(void **state)
{
    (void)state;
    rf_framer fr;
    rf_framer_init(&fr, 16);
    rf_frame out;
    const char *b = "a v=1\nb v=2\npart";
    rf_frame_scan(&fr, b, strlen(b), &out);
    assert_int_equal(out.parse_off, 0);
    assert_int_equal(out.parse_len, 12);
    assert_int_equal(out.consume, 12);
    assert_int_equal(out.overlong, 0);
    rf_frame_scan(&fr, "part", 4, &out); /* no newline yet: keep all */
    assert_int_equal(out.parse_len, 0);
    assert_int_equal(out.consume, 0);
    rf_frame_scan(&fr, "", 0, &out);
    assert_int_equal(out.parse_len, 0);
    assert_int_equal(out.consume, 0);
    rf_frame_scan(&fr, "x\n", 2, &out);
    assert_int_equal(out.parse_len, 2);
    assert_int_equal(out.consume, 2);
}

static void test_frame_overlong(void **state)
{
    (void)state;
    rf_framer fr;
    rf_framer_init(&fr, 8);
    rf_frame out;
    /* exactly max_line bytes pending: still a candidate line */
    rf_frame_scan(&fr, "ok\n12345678", 11, &out);
    assert_int_equal(out.parse_len, 3);
    assert_int_equal(out.consume, 3);
    assert_int_equal(out.overlong, 0);
    /* one more byte: overlong, dropped, discarding until '\n' */
    rf_frame_scan(&fr, "123456789", 9, &out);
    assert_int_equal(out.overlong, 1);
    assert_int_equal(out.overlong_off, 0);
    assert_int_equal(out.parse_len, 0);
    assert_int_equal(out.consume, 9);
    assert_true(fr.discarding);
    rf_frame_scan(&fr, "more junk", 9, &out);
    assert_int_equal(out.overlong, 0);
    assert_int_equal(out.consume, 9);
    rf_frame_scan(&fr, "end\nb v=2\nc", 11, &out);
    assert_false(fr.discarding);
    assert_int_equal(out.parse_off, 4);
    assert_int_equal(out.parse_len, 6);
    assert_int_equal(out.consume, 10);
    /* a complete overlong line is left to the parser (line_too_long) */
    rf_frame_scan(&fr, "0123456789abc\n", 14, &out);
    assert_int_equal(out.parse_len, 14);
    assert_int_equal(out.overlong, 0);
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
        fixture *f = fixture_new(&cfg);
        rf_framer fr;
        rf_framer_init(&fr, 64);
        char pending[256];
        size_t np = 0;
        for (size_t off = 0; off < len; off += chunk) {
            size_t n = len - off < chunk ? len - off : chunk;
            memcpy(pending + np, stream + off, n);
            np += n;
            rf_frame out;
            rf_frame_scan(&fr, pending, np, &out);
            assert_int_equal(rf_parse_influx(f->ctx, &f->rx, pending + out.parse_off,
                                             out.parse_len),
                             0);
            memmove(pending, pending + out.consume, np - out.consume);
            np -= out.consume;
            assert_true(np <= 64);
        }
        rf_parse_flush(f->ctx);
        assert_int_equal(np, 0);
        assert_int_equal(n_data(f), 60);
        for (size_t i = 0; i < 60; i++)
            assert_int_equal(data_ev(f, i)->value.i64, (int64_t)i);
        fixture_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_basic),
        cmocka_unit_test(test_frame_overlong),
        cmocka_unit_test(test_frame_stream_all_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
