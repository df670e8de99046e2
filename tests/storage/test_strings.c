/* Strings stored as strings: texts handed to the store with their events
 * (core/event/event.h, rf_event_text) come back from a query byte for byte
 * (quotes, backslashes, commas, UTF-8, empty, 64 KiB) in every output
 * format, across block cuts, a reopen and recovery; strings stored as hashes
 * before (no text, block version 1) still read; and a version 1 segment (as
 * the code before format version 2 wrote it) is read the same. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/crc32c/crc32c.h"
#include "core/event/event.h"
#include "storage/query/query.h"
#include "storage/store/store.h"
#include "tests/storage/store_test_util.h"

#define T0 1700000000000000000LL
#define NTEXT 300

static char big[65536];

/* The i-th text: a few fixed ones, the 64 KiB one, then repeats. */
static const char *text_i(int i, size_t *len)
{
    static const char *const fixed[] = {"say \"hi\"", "a\\b",      "caf\xc3\xa9 \xe2\x82\xac",
                                        "",           "a,b;c=d e", "x"};
    if (i < 6) {
        *len = strlen(fixed[i]);
        return fixed[i];
    }
    if (i == 6) {
        *len = sizeof(big);
        return big;
    }
    static char buf[64];
    *len = (size_t)snprintf(buf, sizeof(buf), "state %d", i % 7);
    return buf;
}

static void append_text(rf_store_shard *sh, uint64_t id, int64_t t, const char *p, size_t len)
{
    rf_event ev = tu_event(id, t, RF_VALUE_STRING, XXH3_64bits(p, len));
    rf_event_text *txt = rf_event_text_new(len);
    assert_non_null(txt);
    memcpy(txt->text, p, len);
    ev.aux = (uint64_t)(uintptr_t)txt;
    ev.flags = RF_EVF_OWNS_AUX;
    tu_append(sh, &ev);
    rf_event_free_texts(&ev, 1); /* the pipeline's part: the store kept a copy */
}

static rf_query_result *raw(const char *dir, const char *meas)
{
    rf_query q = {.measurement = meas, .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r = NULL;
    rf_err e;
    rf_err_clear(&e);
    if (rf_query_run(dir, &q, &r, &e) != 0)
        fail_msg("query: %s", e.msg);
    return r;
}

static void check_texts(const char *dir)
{
    rf_query_result *r = raw(dir, "log");
    assert_int_equal(r->n_sets, 1);
    const rf_query_set *s = &r->sets[0];
    assert_int_equal(s->value_type, RF_VALUE_STRING);
    assert_int_equal(s->n, NTEXT);
    assert_non_null(s->texts);
    for (int i = 0; i < NTEXT; i++) {
        size_t len;
        const char *want = text_i(i, &len);
        assert_non_null(s->texts[i]);
        assert_int_equal(strlen(s->texts[i]), len);
        assert_memory_equal(s->texts[i], want, len);
        assert_int_equal(s->ts[i], T0 + i);
        assert_int_equal(s->bits[i], XXH3_64bits(want, len));
    }
    rf_query_result_free(r);
    /* The hashes stored before texts were: numbers, as they were. */
    r = raw(dir, "old");
    assert_int_equal(r->n_sets, 1);
    assert_null(r->sets[0].texts);
    assert_int_equal(r->sets[0].n, 3);
    assert_int_equal(r->sets[0].bits[2], 12345);
    rf_query_result_free(r);
}

static char *render(const char *dir, enum rf_query_format fmt, int64_t from, int64_t to)
{
    rf_query q = {.measurement = "log", .start_ns = from, .end_ns = to};
    rf_query_result *r = NULL;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_int_equal(rf_query_write(f, r, fmt), 0);
    fclose(f);
    rf_query_result_free(r);
    return out;
}

/* Rewrites a segment's header as format version 1 (what the code before
 * version 2 wrote: the rest of the file is the same for such blocks). */
static void make_v1(const char *path)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t h[64];
    assert_int_equal(pread(fd, h, 64, 0), 64);
    assert_int_equal(h[8], 2);
    h[8] = 1;
    uint32_t crc = rf_crc32c(0, h, 60);
    memcpy(h + 60, &crc, 4);
    assert_int_equal(pwrite(fd, h, 64, 0), 64);
    close(fd);
}

/* A one-shard store in dir. */
static rf_store *tu_open(const char *dir, const rf_store_config *cfg)
{
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, cfg, 1, &st, &e) != 0)
        fail_msg("open: %s", e.msg);
    return st;
}

static void test_strings_round_trip(void **state)
{
    (void)state;
    memset(big, 'q', sizeof(big));
    big[0] = '"';
    big[sizeof(big) - 1] = '\\';
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    /* Format 2 files, so that rewriting their header makes them exactly
     * what format 1 wrote (below); string blocks are the same in format 3. */
    cfg.segment_version = 2;
    rf_err e;
    rf_store *st = tu_open(dir, &cfg);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("log", "host=a", "msg"), *old = tu_key("old", "", "s");
    assert_int_equal(rf_store_define_series(sh, k), 0);
    assert_int_equal(rf_store_define_series(sh, old), 0);
    for (int i = 0; i < NTEXT; i++) {
        size_t len;
        const char *p = text_i(i, &len);
        append_text(sh, k->series_id, T0 + i, p, len);
    }
    for (int i = 0; i < 3; i++) { /* a string without its text: the hash, block version 1 */
        rf_event ev = tu_event(old->series_id, T0 + i, RF_VALUE_STRING, 12343 + (uint64_t)i);
        tu_append(sh, &ev);
    }
    assert_int_equal(rf_event_text_bytes(), 0); /* every text the store was given is its own */
    assert_int_equal(tu_flush_durable(sh, 10000000000LL), 0);
    check_texts(dir); /* an open segment, scanned */
    assert_int_equal(rf_store_close(st, &e), 0);
    check_texts(dir); /* closed */
    assert_int_equal(rf_store_close(tu_open(dir, &cfg), &e), 0);
    check_texts(dir); /* after a reopen */

    /* Every format: the text, quoted and escaped as the format wants. */
    static const char *const csv_rows[] = {",log,msg,host=a,\"say \"\"hi\"\"\"\n",
                                           ",log,msg,host=a,a\\b\n",
                                           ",log,msg,host=a,caf\xc3\xa9 \xe2\x82\xac\n",
                                           ",log,msg,host=a,\n", ",log,msg,host=a,\"a,b;c=d e\"\n"};
    static const char *const json_rows[] = {"[1700000000000000000,\"say \\\"hi\\\"\"]",
                                            "[1700000000000000001,\"a\\\\b\"]",
                                            "[1700000000000000003,\"\"]"};
    char *csv = render(dir, RF_QUERY_CSV, T0, T0 + 6),
         *json = render(dir, RF_QUERY_JSON, T0, T0 + 6);
    for (size_t i = 0; i < sizeof(csv_rows) / sizeof(csv_rows[0]); i++)
        if (!strstr(csv, csv_rows[i]))
            fail_msg("no %s in\n%s", csv_rows[i], csv);
    for (size_t i = 0; i < sizeof(json_rows) / sizeof(json_rows[0]); i++)
        if (!strstr(json, json_rows[i]))
            fail_msg("no %s in\n%s", json_rows[i], json);
    free(csv);
    free(json);
    char *line = render(dir, RF_QUERY_LINE, T0, T0 + 2);
    assert_string_equal(line, "log,host=a msg=\"say \\\"hi\\\"\" 1700000000000000000\n"
                              "log,host=a msg=\"a\\\\b\" 1700000000000000001\n");
    free(line);
    char *table = render(dir, RF_QUERY_TABLE, T0 + 6, T0 + 7);
    assert_non_null(strstr(table, "\"qqq"));
    assert_non_null(strstr(table, "...")); /* 64 KiB cut for people */
    free(table);

    /* The same files as a version 1 segment: read the same. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "ls %s/shard-00/*.rfs", dir);
    FILE *p = popen(cmd, "r");
    char path[1024];
    int n = 0;
    while (fgets(path, sizeof(path), p)) {
        path[strcspn(path, "\n")] = '\0';
        make_v1(path);
        n++;
    }
    pclose(p);
    assert_true(n >= 1);
    check_texts(dir);
    /* A store opens on version 1 segments and writes version 2 beside them,
     * and one of format 3 too; every segment is read. */
    assert_int_equal(rf_store_close(tu_open(dir, &cfg), &e), 0);
    tu_config(&cfg);
    st = tu_open(dir, &cfg);
    rf_series_key *k3 = tu_key("fmt3", "host=a", "msg");
    assert_int_equal(rf_store_define_series(rf_store_shard_get(st, 0), k3), 0);
    append_text(rf_store_shard_get(st, 0), k3->series_id, T0, "v3", 2);
    assert_int_equal(rf_store_close(st, &e), 0);
    rf_query_result *r3 = raw(dir, "fmt3");
    assert_int_equal(r3->n_sets, 1);
    assert_int_equal(r3->sets[0].n, 1);
    assert_string_equal(r3->sets[0].texts[0], "v3");
    rf_query_result_free(r3);
    rf_series_key_free(k3);
    check_texts(dir);

    rf_series_key_free(k);
    rf_series_key_free(old);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
