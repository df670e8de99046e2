/* Series table: definitions, duplicates, cardinality limit, lookups under
 * many collisions, and tag parsing of canonical keys (escapes kept). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stages/series/series_table.h"

static rf_series_key *mk(const char *text)
{
    size_t len = strlen(text);
    /* measurement: up to the first unescaped ',' or ' '; field after the last unescaped ' ' */
    size_t m = 0;
    while (m < len && text[m] != ',' && text[m] != ' ')
        m += text[m] == '\\' ? 2 : 1;
    size_t f = 0;
    for (size_t i = 0; i < len; i += text[i] == '\\' ? 2 : 1)
        if (text[i] == ' ')
            f = i + 1;
    return rf_series_key_new(text, len, m, f);
}

static void test_define_find(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(4);
    assert_non_null(t);
    rf_series_key *k = mk("cpu,host=a usage");
    uint64_t id = k->series_id;
    assert_int_equal(rf_series_table_find(t, id), -1);
    assert_int_equal(rf_series_table_define(t, k), 0);
    assert_int_equal(rf_series_table_find(t, id), 0);
    assert_string_equal(rf_series_table_key(t, 0)->text, "cpu,host=a usage");
    /* duplicate: same slot, new key freed */
    assert_int_equal(rf_series_table_define(t, mk("cpu,host=a usage")), 0);
    assert_int_equal(rf_series_table_define(t, mk("cpu,host=b usage")), 1);
    assert_int_equal(rf_series_table_define(t, mk("cpu,host=c usage")), 2);
    assert_int_equal(rf_series_table_define(t, mk("cpu,host=d usage")), 3);
    assert_int_equal(rf_series_table_define(t, mk("cpu,host=e usage")), -ENOSPC);
    /* a known series is still accepted at the limit */
    assert_int_equal(rf_series_table_define(t, mk("cpu,host=b usage")), 1);
    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.count, 4);
    assert_int_equal(st.defined, 4);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.rejected_cardinality, 1);
    assert_null(rf_series_table_key(t, 4));
    assert_int_equal(rf_series_table_define(t, NULL), -EINVAL);
    rf_series_table_free(t);
}

static void test_many_and_collisions(void **state)
{
    (void)state;
    enum { N = 100000 };
    rf_series_table *t = rf_series_table_new(N);
    assert_non_null(t);
    char buf[64];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "m,host=h%d v", i);
        assert_int_equal(rf_series_table_define(t, mk(buf)), i);
    }
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "m,host=h%d v", i);
        assert_int_equal(rf_series_table_find(t, rf_series_id_of_key(buf, strlen(buf))), i);
    }
    /* ids that collide on the low bits (the probe start) but differ above */
    rf_series_table *c = rf_series_table_new(64);
    for (int i = 0; i < 64; i++) {
        rf_series_key *k = mk("x y");
        k->series_id = ((uint64_t)(i + 1) << 40) | 5;
        assert_int_equal(rf_series_table_define(c, k), i);
    }
    for (int i = 0; i < 64; i++)
        assert_int_equal(rf_series_table_find(c, ((uint64_t)(i + 1) << 40) | 5), i);
    assert_int_equal(rf_series_table_find(c, ((uint64_t)99 << 40) | 5), -1);
    rf_series_table_free(c);
    assert_int_equal(rf_series_table_find(t, 12345), -1);
    rf_series_table_free(t);
}

static void expect_tag(const rf_series_key *k, const rf_series_tag *tg, const char *key,
                       const char *val)
{
    assert_int_equal(tg->key_len, strlen(key));
    assert_memory_equal(k->text + tg->key_off, key, tg->key_len);
    if (!val) {
        assert_int_equal(tg->val_off, 0);
    } else {
        assert_int_equal(tg->val_len, strlen(val));
        assert_memory_equal(k->text + tg->val_off, val, tg->val_len);
    }
}

static void test_tags(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(8);
    int32_t s = rf_series_table_define(t, mk("disk\\ io,dc=eu\\,west,host=a\\=b,ssd bytes\\ read"));
    assert_true(s >= 0);
    const rf_series_key *k = rf_series_table_key(t, s);
    const rf_series_tag *tags;
    assert_int_equal(rf_series_table_tags(t, s, &tags), 3);
    expect_tag(k, &tags[0], "dc", "eu\\,west");
    expect_tag(k, &tags[1], "host", "a\\=b");
    expect_tag(k, &tags[2], "ssd", NULL);
    int32_t s2 = rf_series_table_define(t, mk("up value"));
    assert_int_equal(rf_series_table_tags(t, s2, &tags), 0);
    /* more tags than the preallocated pool: it grows */
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof(buf), "wide");
    for (int i = 0; i < 100; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, ",k%03d=v%d", i, i);
    snprintf(buf + o, sizeof(buf) - o, " f");
    int32_t s3 = rf_series_table_define(t, mk(buf));
    assert_true(s3 >= 0);
    assert_int_equal(rf_series_table_tags(t, s3, &tags), 100);
    expect_tag(rf_series_table_key(t, s3), &tags[99], "k099", "v99");
    rf_series_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_define_find),
        cmocka_unit_test(test_many_and_collisions),
        cmocka_unit_test(test_tags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
