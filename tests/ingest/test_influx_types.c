/* Line protocol as InfluxDB takes it: a field's type is fixed by its first
 * write (a value of another type refuses the line, across lines, contexts
 * and a restart's seeded table), a key given twice keeps its last value, the
 * field key `time` is refused, strings are bounded at 64 KiB. */
#include <errno.h>
#include <stdio.h>

#include "tests/ingest/ingest_test_util.h"

static fixture *lp(rf_field_types *types, uint32_t max_line)
{
    rf_parse_config cfg = {
        .precision = RF_PRECISION_NS, .field_types = types, .max_line_len = max_line};
    return fixture_new(&cfg);
}

/* The sequence: v=1, then v="s", then v=1i to one series. */
static void test_conflict_across_lines(void **state)
{
    (void)state;
    fixture *f = lp(NULL, 0);
    assert_int_equal(run(f, rf_parse_influx, "m v=1\nm v=\"s\"\nm v=1i\nm v=2.5\n"), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_FIELD_TYPE_CONFLICT), 2);
    assert_int_equal(n_data(f), 2);
    assert_int_equal(data_ev(f, 0)->value_type, RF_VALUE_F64);
    assert_true(data_ev(f, 1)->value.f64 == 2.5);
    /* Another series (a tag, another field) has a type of its own. */
    assert_int_equal(run(f, rf_parse_influx, "m,h=a v=1i\nm w=true\nm,h=a v=2i\n"), 0);
    /* The whole line goes: its good field is not written either. */
    assert_int_equal(run(f, rf_parse_influx, "m w=1,x=2\n"), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_FIELD_TYPE_CONFLICT), 3);
    assert_int_equal(n_data(f), 5);
    rf_reject_entry e[1];
    assert_int_equal(rf_parse_reject_log_read(f->ctx, e, 1), 1);
    assert_string_equal(rf_reject_reason_name(e[0].reason), "field_type_conflict");
    fixture_free(f);
}

/* Every type against every other: refused unless equal, on the cache's path
 * (second line) and on the miss path (a fresh context on the same table). */
static void test_conflict_every_type(void **state)
{
    (void)state;
    static const char *const v[] = {"1.5", "-3i", "7u", "true", "\"x\""};
    rf_err err;
    rf_field_types *t = rf_field_types_new(1024, &err);
    assert_non_null(t);
    for (int a = 0; a < 5; a++) {
        for (int b = 0; b < 5; b++) {
            char text[128];
            snprintf(text, sizeof(text), "t%d_%d f=%s\nt%d_%d f=%s\n", a, b, v[a], a, b, v[b]);
            fixture *f = lp(t, 0);
            assert_int_equal(run(f, rf_parse_influx, text), a != b);
            fixture_free(f);
            f = lp(t, 0); /* a second context: the type comes from the table */
            snprintf(text, sizeof(text), "t%d_%d f=%s\n", a, b, v[b]);
            assert_int_equal(run(f, rf_parse_influx, text), a != b);
            assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_FIELD_TYPE_CONFLICT), a != b);
            fixture_free(f);
        }
    }
    rf_field_types_free(t);
}

/* What a restart does: the table is seeded with the stored types first. */
static void test_conflict_with_seeded_type(void **state)
{
    (void)state;
    rf_err err;
    rf_field_types *t = rf_field_types_new(64, &err);
    assert_int_equal(rf_field_types_claim(t, id_of("cpu,host=a usage"), RF_VALUE_F64),
                     RF_VALUE_F64);
    assert_int_equal(rf_field_types_claim(t, id_of("cpu,host=a usage"), RF_VALUE_I64),
                     RF_VALUE_F64);
    assert_int_equal(rf_field_types_get(t, id_of("cpu,host=a usage")), RF_VALUE_F64);
    assert_int_equal(rf_field_types_get(t, id_of("cpu,host=b usage")), -ENOENT);
    fixture *f = lp(t, 0);
    assert_int_equal(run(f, rf_parse_influx, "cpu,host=a usage=1i\ncpu,host=a usage=1\n"), 1);
    assert_int_equal(n_data(f), 1);
    fixture_free(f);
    rf_field_types_free(t);
}

/* A full table tracks no more (counted); the context still checks what
 * its cache holds. */
static void test_full_table_untracked(void **state)
{
    (void)state;
    rf_err err;
    rf_field_types *t = rf_field_types_new(64, &err);
    uint64_t base = 0x1000;
    int full = 0;
    for (uint64_t i = 0; i < 200; i++)
        full += rf_field_types_claim(t, base + (i << 3), RF_VALUE_F64) == -ENOSPC;
    assert_int_equal(full, 200 - 64);
    assert_int_equal(rf_field_types_untracked(t), 200 - 64);
    fixture *f = lp(t, 0);
    assert_int_equal(run(f, rf_parse_influx, "u v=1\nu v=1i\n"), 1);
    fixture_free(f);
    rf_field_types_free(t);
}

static void test_duplicate_key_last_wins(void **state)
{
    (void)state;
    fixture *f = lp(NULL, 0);
    assert_int_equal(run(f, rf_parse_influx, "dup v=1,v=2 1000\n"), 0);
    assert_int_equal(n_data(f), 1);
    assert_true(data_ev(f, 0)->value.f64 == 2.0);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1000);
    collected_reset(&f->out);
    /* In the first one's place; escaped spellings are one key. */
    assert_int_equal(run(f, rf_parse_influx, "m a=1,b=2,a=3,a\\ b=4,a\\ b=5,c\\d=6,c\\\\d=7\n"), 0);
    assert_int_equal(n_data(f), 4);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("m a"));
    assert_true(data_ev(f, 0)->value.f64 == 3.0);
    assert_true(data_ev(f, 1)->value.f64 == 2.0);
    assert_int_equal(data_ev(f, 2)->series_id, id_of("m a\\ b"));
    assert_true(data_ev(f, 2)->value.f64 == 5.0);
    assert_int_equal(data_ev(f, 3)->series_id, id_of("m c\\\\d"));
    assert_true(data_ev(f, 3)->value.f64 == 7.0);
    /* The last one decides the type too: a conflict with the field's type. */
    assert_int_equal(run(f, rf_parse_influx, "m a=1,a=1i\n"), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_FIELD_TYPE_CONFLICT), 1);
    fixture_free(f);
}

static void test_time_field_key_refused(void **state)
{
    (void)state;
    fixture *f = lp(NULL, 0);
    assert_int_equal(run(f, rf_parse_influx, "m time=1\nm v=1,time=2i\n"), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_TIME_FIELD_KEY), 2);
    /* Only the exact key: others, and a tag named time, are fine. */
    assert_int_equal(run(f, rf_parse_influx, "m time2=1,Time=2,times=3\nm,time=x v=1\n"), 0);
    assert_int_equal(n_data(f), 4);
    fixture_free(f);
}

/* Writes `s v="<reps x unit>"\n` into buf; returns buf. */
static char *string_line(char *buf, const char *unit, size_t reps)
{
    size_t u = strlen(unit), n = (size_t)sprintf(buf, "s v=\"");
    for (size_t i = 0; i < reps; i++, n += u)
        memcpy(buf + n, unit, u);
    memcpy(buf + n, "\"\n", 3);
    return buf;
}

static void test_string_bound(void **state)
{
    (void)state;
    char *line = malloc(2 * (RF_STRING_MAX + 1) + 64);
    assert_non_null(line);
    fixture *f = lp(NULL, 200000);
    /* Exactly 64 KiB kept, one byte more refused; an escape counts once,
     * unescaped. */
    assert_int_equal(run(f, rf_parse_influx, string_line(line, "x", RF_STRING_MAX)), 0);
    assert_int_equal(run(f, rf_parse_influx, string_line(line, "x", RF_STRING_MAX + 1)), 1);
    assert_int_equal(run(f, rf_parse_influx, string_line(line, "\\\"", RF_STRING_MAX)), 0);
    assert_int_equal(run(f, rf_parse_influx, string_line(line, "\\\"", RF_STRING_MAX + 1)), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_STRING_TOO_LONG), 2);
    assert_int_equal(n_data(f), 2);
    fixture_free(f);
    free(line);
}

/* A string value's text travels with its event, unescaped, its hash the
 * value; the budget counts it until it is freed. */
static void test_string_text_travels(void **state)
{
    (void)state;
    fixture *f = lp(NULL, 0);
    assert_int_equal(run(f, rf_parse_influx,
                         "s a=\"say \\\"hi\\\"\",b=\"a\\\\b\\c\",c=\"caf\xc3\xa9\",d=\"\",e=1\n"),
                     0);
    assert_int_equal(n_data(f), 5);
    static const char *const want[] = {"say \"hi\"", "a\\b\\c", "caf\xc3\xa9", ""};
    uint64_t bytes = 0;
    for (int i = 0; i < 4; i++) {
        const rf_event *e = data_ev(f, (size_t)i);
        assert_int_equal(e->value_type, RF_VALUE_STRING);
        assert_true(e->flags & RF_EVF_OWNS_AUX);
        const rf_event_text *t = (const rf_event_text *)(uintptr_t)e->aux;
        assert_int_equal(t->len, strlen(want[i]));
        assert_string_equal(t->text, want[i]);
        assert_int_equal(e->value.u64, hash_str(want[i]));
        bytes += sizeof(*t) + t->len + 1;
    }
    assert_false(data_ev(f, 4)->flags & RF_EVF_OWNS_AUX);
    assert_int_equal(rf_event_text_bytes(), bytes);
    /* A refused line makes no text. */
    assert_int_equal(run(f, rf_parse_influx, "s a=\"x\",e=oops\n"), 1);
    assert_int_equal(rf_event_text_bytes(), bytes);
    fixture_free(f);
    assert_int_equal(rf_event_text_bytes(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conflict_across_lines),
        cmocka_unit_test(test_conflict_every_type),
        cmocka_unit_test(test_conflict_with_seeded_type),
        cmocka_unit_test(test_full_table_untracked),
        cmocka_unit_test(test_duplicate_key_last_wins),
        cmocka_unit_test(test_time_field_key_refused),
        cmocka_unit_test(test_string_bound),
        cmocka_unit_test(test_string_text_travels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
