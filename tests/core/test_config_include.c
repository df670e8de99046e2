/* Configuration beyond one file: `include:` of files and globs, ${VAR}
 * substitution, messages that name the included file, and rf_cfg_write's
 * merged output loading back to the same tree. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config/config.h"

static char g_dir[64];

static int make_dir(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf_cfg_inc.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes g_dir/name; returns the full path (static buffer per call site). */
static const char *put(const char *name, const char *text)
{
    static char paths[8][256];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    mkdir(p, 0755);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static const char *str_at(const rf_cfg_node *root, const char *sec, const char *key)
{
    const rf_cfg_node *m = rf_cfg_get(root, sec);
    assert_non_null(m);
    const rf_cfg_node *v = rf_cfg_get(m, key);
    assert_non_null(v);
    return rf_cfg_scalar(v);
}

static void includes_merge_in_order(void **state)
{
    (void)state;
    const char *main = put("main.yaml", "include: [base.yaml, conf.d/*.yaml]\n"
                                        "engine:\n  workers: 2\n  data_dir: ./data\n"
                                        "listeners:\n  - {name: a}\n");
    put("base.yaml", "engine:\n  run_dir: /run/x\n");
    put("conf.d/10-first.yaml",
        "engine:\n  workers: 4\nlisteners:\n  - {name: b}\n  - {name: c}\n");
    put("conf.d/20-second.yaml", "engine:\n  workers: 8\n");
    put("conf.d/README", "not yaml: [\n"); /* not matched by the glob */
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    int rc = rf_cfg_load_file(main, &doc, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, 0);
    const rf_cfg_node *root = rf_cfg_root(doc);
    /* Later files win; mappings merge key by key; lists are replaced. */
    assert_string_equal(str_at(root, "engine", "workers"), "8");
    assert_string_equal(str_at(root, "engine", "data_dir"), "./data");
    assert_string_equal(str_at(root, "engine", "run_dir"), "/run/x");
    const rf_cfg_node *l = rf_cfg_get(root, "listeners");
    assert_int_equal(rf_cfg_seq_len(l), 2);
    /* `include` is the loader's: no module sees it, nothing is unknown. */
    assert_false(rf_cfg_has(root, "include"));
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
}

static void empty_glob_is_fine_missing_file_is_not(void **state)
{
    (void)state;
    const char *main = put("m2.yaml", "include: nothing.d/*.yaml\nengine: {workers: 3}\n");
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), 0);
    assert_string_equal(str_at(rf_cfg_root(doc), "engine", "workers"), "3");
    rf_cfg_free(doc);

    main = put("m3.yaml", "engine: {workers: 3}\ninclude:\n  - missing.yaml\n");
    doc = NULL;
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), -EINVAL);
    assert_null(doc);
    char want[512];
    snprintf(want, sizeof(want),
             "%s:3:5: include[0]: cannot open %s/missing.yaml: No such file "
             "or directory",
             main, g_dir);
    assert_string_equal(err.msg, want);
}

static void errors_name_the_included_file(void **state)
{
    (void)state;
    const char *main = put("m4.yaml", "include: conf4.d/*.yaml\nengine:\n  workers: 2\n");
    const char *inc = put("conf4.d/a.yaml", "# a comment\nengine:\n  workerz: 2\n");
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), 0);
    const rf_cfg_node *engine;
    uint32_t w;
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "engine", &engine, &err), 0);
    assert_int_equal(rf_cfg_u32(engine, "workers", 1, 64, 2, &w, &err), 0);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), -EINVAL);
    char want[512];
    snprintf(want, sizeof(want), "%s:3:3: engine.workerz: unknown key (accepted: workers)", inc);
    assert_string_equal(err.msg, want);
    rf_cfg_free(doc);

    /* A value overridden by an include is reported where it was written. */
    inc = put("conf4.d/a.yaml", "engine:\n\n  workers: 100\n");
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), 0);
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "engine", &engine, &err), 0);
    assert_int_equal(rf_cfg_u32(engine, "workers", 1, 64, 2, &w, &err), -EINVAL);
    snprintf(want, sizeof(want),
             "%s:3:12: engine.workers: expected an integer from 1 to 64, got "
             "'100'",
             inc);
    assert_string_equal(err.msg, want);
    rf_cfg_free(doc);

    /* A syntax error in the included file. */
    inc = put("conf4.d/a.yaml", "engine: [\n");
    doc = NULL;
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), -EINVAL);
    assert_non_null(strstr(err.msg, inc));
    assert_non_null(strstr(err.msg, "invalid YAML"));
    put("conf4.d/a.yaml", "engine: {}\n");
}

static void self_include_is_refused(void **state)
{
    (void)state;
    const char *main = put("loop.yaml", "include: loop.yaml\n");
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "nested deeper than 8 files"));
}

static void environment_substitution(void **state)
{
    (void)state;
    setenv("RF_TEST_DIR", "/srv/rf", 1);
    setenv("RF_TEST_EMPTY", "", 1);
    unsetenv("RF_TEST_UNSET");
    const char *yaml = "engine:\n"
                       "  data_dir: ${RF_TEST_DIR}/data\n"
                       "  run_dir: ${RF_TEST_UNSET:-/run/default}\n"
                       "  user: \"${RF_TEST_EMPTY:-nobody}\"\n"
                       "  group: a$b $${RF_TEST_DIR} $$c\n";
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_string(yaml, strlen(yaml), "e.yaml", &doc, &err), 0);
    const rf_cfg_node *root = rf_cfg_root(doc);
    assert_string_equal(str_at(root, "engine", "data_dir"), "/srv/rf/data");
    assert_string_equal(str_at(root, "engine", "run_dir"), "/run/default");
    assert_string_equal(str_at(root, "engine", "user"), "nobody");
    assert_string_equal(str_at(root, "engine", "group"), "a$b ${RF_TEST_DIR} $$c");
    rf_cfg_free(doc);

    const char *bad = "engine:\n  data_dir: x${RF_TEST_UNSET}\n";
    assert_int_equal(rf_cfg_load_string(bad, strlen(bad), "e.yaml", &doc, &err), -EINVAL);
    assert_string_equal(err.msg, "e.yaml:2:13: engine.data_dir: ${RF_TEST_UNSET}: the environment "
                                 "variable RF_TEST_UNSET is not set (give a default with "
                                 "${RF_TEST_UNSET:-VALUE})");
    const char *open = "engine:\n  data_dir: ${RF_TEST_DIR\n";
    assert_int_equal(rf_cfg_load_string(open, strlen(open), "e.yaml", &doc, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "e.yaml:2:13: engine.data_dir: '${' must start"));

    /* Include paths are substituted too. */
    setenv("RF_TEST_INC", "env-inc.yaml", 1);
    put("env-inc.yaml", "engine: {workers: 5}\n");
    const char *main = put("m5.yaml", "include: ${RF_TEST_INC}\n");
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), 0);
    assert_string_equal(str_at(rf_cfg_root(doc), "engine", "workers"), "5");
    rf_cfg_free(doc);
}

/* rf_cfg_write: the merged tree, loadable, and the same once loaded again. */
static void written_config_loads_back(void **state)
{
    (void)state;
    setenv("RF_TEST_DIR", "/srv/rf", 1);
    const char *main =
        put("m6.yaml", "include: conf6.d/*.yaml\n"
                       "engine:\n  data_dir: ${RF_TEST_DIR}\n  user: ''\n"
                       "  cpus: []\n  group:\n"
                       "pipeline:\n  routes:\n    - {name: x, subject: \"telemetry.>\"}\n"
                       "  note: 'yes: a colon'\n");
    put("conf6.d/a.yaml", "engine: {workers: 7}\n");
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_file(main, &doc, &err), 0);
    char out_path[128];
    snprintf(out_path, sizeof(out_path), "%s/written.yaml", g_dir);
    FILE *f = fopen(out_path, "w");
    assert_non_null(f);
    assert_int_equal(rf_cfg_write(doc, f, &err), 0);
    fclose(f);
    rf_cfg_free(doc);

    assert_int_equal(rf_cfg_load_file(out_path, &doc, &err), 0);
    const rf_cfg_node *root = rf_cfg_root(doc);
    assert_false(rf_cfg_has(root, "include"));
    assert_string_equal(str_at(root, "engine", "data_dir"), "/srv/rf");
    assert_string_equal(str_at(root, "engine", "workers"), "7");
    assert_string_equal(str_at(root, "engine", "user"), "");
    assert_string_equal(str_at(root, "pipeline", "note"), "yes: a colon");
    const rf_cfg_node *engine = rf_cfg_get(root, "engine");
    assert_int_equal(rf_cfg_kind(rf_cfg_get(engine, "cpus")), RF_CFG_SEQUENCE);
    char group[8];
    /* A null stays a null ("an empty value", as in the source), not "~". */
    assert_int_equal(rf_cfg_str(engine, "group", 0, "dflt", group, sizeof(group), &err), -EINVAL);
    assert_non_null(strstr(err.msg, "an empty value"));
    const rf_cfg_node *routes = rf_cfg_get(rf_cfg_get(root, "pipeline"), "routes");
    assert_string_equal(rf_cfg_scalar(rf_cfg_get(rf_cfg_seq_at(routes, 0), "subject")),
                        "telemetry.>");
    rf_cfg_free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(includes_merge_in_order),
        cmocka_unit_test(empty_glob_is_fine_missing_file_is_not),
        cmocka_unit_test(errors_name_the_included_file),
        cmocka_unit_test(self_include_is_refused),
        cmocka_unit_test(environment_substitution),
        cmocka_unit_test(written_config_loads_back),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
