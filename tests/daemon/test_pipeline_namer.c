/* The pipeline's namer (how its sinks turn a series id into text): a
 * series the shard's table does not hold, id 0 ("no series") included, is
 * written by id and never dereferenced or named after another series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/event/event.h"
#include "daemon/pipeline.h"

static char g_dir[256];

static char *read_all(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Writes one gauge of series `id` through the pipeline's JSON sink. */
static void write_one(rf_pipeline *p, uint64_t id, double v)
{
    rf_event e = {0};
    e.series_id = id;
    e.value.f64 = v;
    e.value_type = RF_VALUE_F64;
    e.sample_rate = 1.0f;
    rf_sink *s = (rf_sink *)rf_pipeline_sink(p, 0);
    assert_non_null(s);
    assert_int_equal(rf_sink_write(s, &e, 1), 1);
    rf_sink_flush(s, 1);
}

static void test_unknown_series_are_written_by_id(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf-test-namer-%d", (int)getpid());
    char cmd[600], path[300], text[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/out.jsonl", g_dir);
    int len = snprintf(text, sizeof(text),
                       "pipeline:\n"
                       "  max_series: 64\n"
                       "  sinks: [{name: out, type: json, path: \"%s\"}]\n"
                       "  routes: [{subject: \">\", sinks: [out]}]\n",
                       path);
    rf_cfg_doc *doc = NULL;
    rf_err err;
    rf_err_clear(&err);
    if (rf_cfg_load_string(text, (size_t)len, "namer", &doc, &err) != 0)
        fail_msg("%s", err.msg);
    rf_pipeline_settings ps;
    if (rf_pipeline_settings_parse(rf_cfg_root(doc), g_dir, &ps, &err) != 0)
        fail_msg("%s", err.msg);
    rf_pipeline *p = NULL;
    if (rf_pipeline_new(&ps, 0, 1, NULL, &p, &err) != 0)
        fail_msg("%s", err.msg);

    /* An empty table: id 0 and an unknown id. */
    write_one(p, 0, 1);
    write_one(p, 0x1234, 2);
    /* With a series in slot 0, id 0 must still not be named after it. */
    const char *key = "cpu,host=a usage";
    rf_series_key *k = rf_series_key_new(key, strlen(key), 3, 11);
    rf_event def = {0};
    def.kind = RF_KIND_SERIES_DEF;
    def.series_id = k->series_id;
    def.aux = (uint64_t)(uintptr_t)k;
    rf_pipeline_process_at(p, &def, 1, 1);
    write_one(p, 0, 3);
    write_one(p, def.series_id, 4);

    const char *out = read_all(path);
    assert_non_null(strstr(out, "\"series\":null,\"series_id\":\"0000000000000000\",\"value\":1,"));
    assert_non_null(strstr(out, "\"series\":null,\"series_id\":\"0000000000001234\",\"value\":2,"));
    assert_non_null(strstr(out, "\"series\":null,\"series_id\":\"0000000000000000\",\"value\":3,"));
    assert_non_null(strstr(out, "\"series\":\"cpu,host=a usage\",\"value\":4,"));

    rf_pipeline_free(p);
    rf_pipeline_settings_release(&ps);
    rf_cfg_free(doc);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_series_are_written_by_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
