/* Configuration: every way a user can get a file wrong must give the exact
 * message (file, line, column, path, what is accepted); the embedded default
 * must parse to the documented values. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config/config.h"
#include "daemon/daemon_config.h"
#include "daemon/settings.h"
#include "ingest/listen/listen.h"
#include "numa/numa.h"

#define SRC "ringflow.yaml"

/* ---- helpers ------------------------------------------------------------ */

static rf_cfg_doc *load_ok(const char *yaml)
{
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    int rc = rf_cfg_load_string(yaml, strlen(yaml), SRC, &doc, &err);
    if (rc != 0)
        print_message("unexpected error: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(doc);
    return doc;
}

static void expect_load_error(const char *yaml, size_t len, const char *msg)
{
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_string(yaml, len, SRC, &doc, &err), -EINVAL);
    assert_null(doc);
    assert_int_equal(err.code, EINVAL);
    assert_string_equal(err.msg, msg);
}

/* Declares the sections other modules will own, as the daemon does until
 * their parsers exist. */
/* Sections other modules parse. The whole daemon's default (every section
 * parsed by its owner) is checked by tests/daemon (--check-config on the
 * printed default); here only the engine/log part is under test. */
static void mark_other_sections(const rf_cfg_doc *doc)
{
    const rf_cfg_node *root = rf_cfg_root(doc);
    rf_cfg_mark_known(root, "listeners");
    rf_cfg_mark_known(root, "ingest");
    rf_cfg_mark_known(root, "pipeline");
    rf_cfg_mark_known(root, "storage");
    rf_cfg_mark_known(root, "stats");
}

/* Parses the daemon's sections then checks unknown keys, as ringflowd does. */
static int daemon_parse(const char *yaml, rf_daemon_config *cfg, rf_err *err)
{
    rf_cfg_doc *doc = load_ok(yaml);
    int rc = rf_daemon_config_parse(doc, cfg, err);
    if (rc == 0) {
        mark_other_sections(doc);
        rc = rf_cfg_check_unknown_keys(doc, err);
    }
    rf_cfg_free(doc);
    return rc;
}

static void expect_daemon_error(const char *yaml, const char *msg)
{
    rf_daemon_config cfg;
    rf_daemon_config_defaults(&cfg);
    cfg.engine.workers = 77; /* a sentinel: a failed parse must not touch cfg */
    rf_err err = {0};
    rf_cfg_doc *doc = load_ok(yaml);
    int rc = rf_daemon_config_parse(doc, &cfg, &err);
    if (rc < 0) {
        assert_int_equal(cfg.engine.workers, 77);
    } else {
        mark_other_sections(doc);
        rc = rf_cfg_check_unknown_keys(doc, &err);
    }
    rf_cfg_free(doc);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err.msg, msg);
}

static void daemon_ok(const char *yaml, rf_daemon_config *cfg)
{
    rf_err err = {0};
    int rc = daemon_parse(yaml, cfg, &err);
    if (rc != 0)
        print_message("unexpected error: %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void assert_documented_defaults(const rf_daemon_config *c)
{
    assert_int_equal(c->engine.workers, 2);
    assert_true(c->engine.pin_workers);
    assert_int_equal(c->engine.n_cpus, 0);
    assert_string_equal(c->engine.data_dir, "./data");
    assert_string_equal(c->engine.run_dir, "./run");
    assert_int_equal(c->engine.ring.capacity, 65536);
    assert_int_equal(c->engine.ring.full_policy, RF_RING_BLOCK);
    assert_int_equal(c->engine.idle.spin, 2000);
    assert_int_equal(c->engine.idle.yield, 100);
    assert_int_equal(c->engine.idle.sleep_max_ns, 1000000000);
    assert_int_equal(c->log.level, RF_LOG_INFO);
    assert_int_equal(c->log.format, RF_LOG_TEXT);
}

/* ---- document-level errors ---------------------------------------------- */

static void syntax_error_names_position_and_libyaml_problem(void **state)
{
    (void)state;
    const char *y = "engine:\n  workers: 2\n  cpus: [0, 1\nlog:\n  level: info\n";
    expect_load_error(y, strlen(y),
                      SRC ":4:4: invalid YAML: did not find expected ',' or ']' "
                          "(while parsing a flow sequence that started at line 3, column 9)");
}

static void syntax_error_bad_indentation(void **state)
{
    (void)state;
    const char *y = "engine:\n  workers: 2\n pin_workers: true\n";
    expect_load_error(y, strlen(y),
                      SRC ":3:2: invalid YAML: did not find expected key "
                          "(while parsing a block mapping that started at line 1, column 1)");
}

static void invalid_utf8_is_located_by_line_and_column(void **state)
{
    (void)state;
    const char *y = "engine:\n  data_dir: \xff\n";
    expect_load_error(y, strlen(y), SRC ":2:13: invalid YAML: invalid leading UTF-8 octet");
}

static void duplicate_key(void **state)
{
    (void)state;
    const char *y = "engine:\n  workers: 2\n  workers: 3\n";
    expect_load_error(y, strlen(y),
                      SRC
                      ":3:3: engine.workers: duplicate key (first defined at line 2, column 3)");
}

static void duplicate_top_level_key(void **state)
{
    (void)state;
    const char *y = "log:\n  level: info\nlog:\n  level: warn\n";
    expect_load_error(y, strlen(y),
                      SRC ":3:1: log: duplicate key (first defined at line 1, column 1)");
}

static void anchor_is_rejected(void **state)
{
    (void)state;
    const char *y = "engine:\n  workers: &w 2\n";
    expect_load_error(y, strlen(y),
                      SRC
                      ":2:12: engine.workers: anchors (&w) are not supported; write the value out");
}

static void alias_is_rejected(void **state)
{
    (void)state;
    const char *y = "engine:\n  workers: 2\nlog: *defaults\n";
    expect_load_error(y, strlen(y),
                      SRC ":3:6: log: aliases (*defaults) are not supported; write the value out");
}

static void multiple_documents_are_rejected(void **state)
{
    (void)state;
    const char *y = "engine:\n  workers: 2\n---\nlog:\n  level: info\n";
    expect_load_error(y, strlen(y),
                      SRC ":3:1: a second YAML document; a configuration is one document");
}

static void non_scalar_key_is_rejected(void **state)
{
    (void)state;
    const char *y = "engine:\n  ? [a, b]\n  : 2\n";
    expect_load_error(y, strlen(y), SRC ":2:5: engine: keys must be scalars, got a list");
}

static void top_level_must_be_a_mapping(void **state)
{
    (void)state;
    const char *y = "- engine\n- log\n";
    expect_load_error(y, strlen(y),
                      SRC ":1:1: the top level must be a mapping of sections, got a list");
    const char *s = "workers=2\n";
    expect_load_error(s, strlen(s),
                      SRC ":1:1: the top level must be a mapping of sections, got 'workers=2'");
}

static void nesting_depth_is_bounded(void **state)
{
    (void)state;
    char y[256] = "a: ";
    char expect[512];
    size_t o = strlen(y);
    for (int i = 0; i < RF_CFG_MAX_DEPTH + 5; i++)
        y[o++] = '[';
    for (int i = 0; i < RF_CFG_MAX_DEPTH + 5; i++)
        y[o++] = ']';
    y[o] = '\0';
    /* The root mapping is level 1, so the 64th '[' (column 3 + 64) is one too
     * many; its path is "a" and 63 indices. */
    int w = snprintf(expect, sizeof(expect), SRC ":1:%d: a", 3 + RF_CFG_MAX_DEPTH);
    for (int i = 0; i < RF_CFG_MAX_DEPTH - 1; i++)
        w += snprintf(expect + w, sizeof(expect) - (size_t)w, "[0]");
    snprintf(expect + w, sizeof(expect) - (size_t)w, ": nested deeper than %d levels",
             RF_CFG_MAX_DEPTH);
    expect_load_error(y, o, expect);
}

static void missing_file(void **state)
{
    (void)state;
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_cfg_load_file("/nonexistent/ringflow.yaml", &doc, &err), -ENOENT);
    assert_null(doc);
    assert_string_equal(err.msg,
                        "cannot open /nonexistent/ringflow.yaml: No such file or directory");
}

/* ---- values ------------------------------------------------------------- */

static void out_of_range_integer(void **state)
{
    (void)state;
    expect_daemon_error("# ringflow\n"
                        "log:\n"
                        "  level: info\n"
                        "\n"
                        "engine:\n"
                        "  pin_workers: true\n"
                        "  workers: 0\n",
                        SRC ":7:12: engine.workers: expected an integer from 1 to 64, got '0'");
    expect_daemon_error("engine:\n  workers: 65\n",
                        SRC ":2:12: engine.workers: expected an integer from 1 to 64, got '65'");
    expect_daemon_error("engine:\n  workers: 99999999999999999999\n",
                        SRC ":2:12: engine.workers: expected an integer from 1 to 64, "
                            "got '99999999999999999999'");
    expect_daemon_error("engine:\n  workers: -1\n",
                        SRC ":2:12: engine.workers: expected an integer from 1 to 64, got '-1'");
}

static void wrong_type(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  workers: [1, 2]\n",
                        SRC ":2:12: engine.workers: expected an integer from 1 to 64, got a list");
    expect_daemon_error("engine:\n  workers: two\n",
                        SRC ":2:12: engine.workers: expected an integer from 1 to 64, got 'two'");
    expect_daemon_error(
        "engine:\n  workers:\n",
        SRC ":2:11: engine.workers: expected an integer from 1 to 64, got an empty value");
    expect_daemon_error("engine: 5\n", SRC ":1:9: engine: expected a mapping, got '5'");
    expect_daemon_error("engine:\n  ring: [64]\n",
                        SRC ":2:9: engine.ring: expected a mapping, got a list");
    expect_daemon_error("engine:\n  cpus: 3\n", SRC ":2:9: engine.cpus: expected a list, got '3'");
}

static void bad_bool(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  pin_workers: maybe\n", SRC
                        ":2:16: engine.pin_workers: expected true or false (or yes/no, on/off), "
                        "got 'maybe'");
    rf_daemon_config cfg;
    daemon_ok("engine:\n  pin_workers: OFF\n", &cfg);
    assert_false(cfg.engine.pin_workers);
    daemon_ok("engine:\n  pin_workers: yes\n", &cfg);
    assert_true(cfg.engine.pin_workers);
}

static void bad_enum_lists_accepted_values(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  ring:\n    full_policy: drop\n",
                        SRC ":3:18: engine.ring.full_policy: expected one of block, drop_newest, "
                            "got 'drop'");
    expect_daemon_error("log:\n  level: loud\n", SRC
                        ":2:10: log.level: expected one of debug, info, warn, error, got 'loud'");
    expect_daemon_error("log:\n  format: xml\n",
                        SRC ":2:11: log.format: expected one of text, json, got 'xml'");
}

static void bad_duration(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  idle:\n    sleep: 5x\n", SRC
                        ":3:12: engine.idle.sleep: expected a duration in seconds or with a unit "
                        "(ns, us, ms, s, m, h, d), got '5x'");
    expect_daemon_error("engine:\n  idle:\n    sleep: 1ms5\n", SRC
                        ":3:12: engine.idle.sleep: expected a duration in seconds or with a unit "
                        "(ns, us, ms, s, m, h, d), got '1ms5'");
    expect_daemon_error("engine:\n  idle:\n    sleep: 5s\n", SRC
                        ":3:12: engine.idle.sleep: expected a duration from 10us to 1s, got '5s'");
    expect_daemon_error("engine:\n  idle:\n    sleep: 9us\n", SRC
                        ":3:12: engine.idle.sleep: expected a duration from 10us to 1s, got '9us'");
    rf_daemon_config cfg;
    daemon_ok("engine:\n  idle:\n    sleep: 250us\n", &cfg);
    assert_int_equal(cfg.engine.idle.sleep_max_ns, 250000);
    daemon_ok("engine:\n  idle:\n    sleep: 0.5\n", &cfg); /* plain number: seconds */
    assert_int_equal(cfg.engine.idle.sleep_max_ns, 500000000);
    assert_true(cfg.engine.idle.adaptive);
    daemon_ok("engine:\n  idle:\n    adaptive: false\n", &cfg);
    assert_false(cfg.engine.idle.adaptive);
}

static void power_of_two(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  ring:\n    capacity: 1000\n",
                        SRC ":3:15: engine.ring.capacity: expected a power of two from 64 to "
                            "16777216, got '1000'");
    expect_daemon_error("engine:\n  ring:\n    capacity: 32\n",
                        SRC ":3:15: engine.ring.capacity: expected a power of two from 64 to "
                            "16777216, got '32'");
    expect_daemon_error("engine:\n  ring:\n    capacity: 33554432\n",
                        SRC ":3:15: engine.ring.capacity: expected a power of two from 64 to "
                            "16777216, got '33554432'");
    rf_daemon_config cfg;
    daemon_ok("engine:\n  ring:\n    capacity: 0x400\n", &cfg);
    assert_int_equal(cfg.engine.ring.capacity, 1024);
}

static void strings(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  data_dir: ''\n",
                        SRC ":2:13: engine.data_dir: expected a non-empty string, got ''");
    expect_daemon_error("engine:\n  run_dir:\n",
                        SRC ":2:11: engine.run_dir: expected a string, got an empty value");
    expect_daemon_error("engine:\n  run_dir: {a: 1}\n",
                        SRC ":2:12: engine.run_dir: expected a string, got a mapping");

    rf_cfg_doc *doc = load_ok("name: abcdefghij\nq: \"a\\0b\"\n");
    char buf[8];
    rf_err err = {0};
    assert_int_equal(rf_cfg_str(rf_cfg_root(doc), "name", 0, "", buf, sizeof(buf), &err), -EINVAL);
    assert_string_equal(err.msg,
                        SRC ":1:7: name: expected a string of at most 7 bytes, got 10 bytes");
    assert_int_equal(rf_cfg_str(rf_cfg_root(doc), "q", 0, "", buf, sizeof(buf), &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":2:4: q: a NUL byte is not allowed in a string");
    assert_int_equal(rf_cfg_str(rf_cfg_root(doc), "absent", 0, "dflt", buf, sizeof(buf), &err), 0);
    assert_string_equal(buf, "dflt");
    rf_cfg_free(doc);
}

static void cpus(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  workers: 2\n  cpus: [1, 1]\n",
                        SRC ":3:13: engine.cpus[1]: CPU 1 is already given to worker 0");
    expect_daemon_error("engine:\n  workers: 2\n  cpus: [0, 1, 2]\n",
                        SRC ":3:9: engine.cpus: expected one CPU id per worker (2), got 3");
    expect_daemon_error("engine:\n  workers: 1\n  cpus:\n    - 5000\n",
                        SRC ":4:7: engine.cpus[0]: expected an integer from 0 to 4095, got '5000'");
    /* Kept in the order given; not checked against this machine when the
     * workers are not pinned (the list is not used then). */
    rf_daemon_config cfg;
    daemon_ok("engine:\n  workers: 3\n  pin_workers: false\n  cpus: [4000, 2, 6]\n", &cfg);
    assert_int_equal(cfg.engine.n_cpus, 3);
    assert_int_equal(cfg.engine.cpus[0], 4000);
    assert_int_equal(cfg.engine.cpus[1], 2);
    assert_int_equal(cfg.engine.cpus[2], 6);
}

/* Pinned workers: every CPU must be online here, or the file is refused when
 * it is checked (--check-config, reload), not when the engine starts. The
 * machine's online set comes from numa/, as in the engine's placement. */
static void cpus_must_be_online(void **state)
{
    (void)state;
    rf_numa_topology topo;
    rf_err err = {0};
    assert_int_equal(rf_numa_topology_load(NULL, &topo, &err), 0);
    unsigned first_on = 0, off = 0, n_on = 0;
    while (!rf_numa_cpuset_has(&topo.online, first_on))
        first_on++;
    while (rf_numa_cpuset_has(&topo.online, off))
        off++;
    char online[256], yaml[512], want[512];
    rf_numa_cpulist_format(&topo.online, online, sizeof(online));

    /* The offline id is named with its place, and the online CPUs listed. */
    snprintf(yaml, sizeof(yaml), "engine:\n  workers: 2\n  cpus: [%u, %u]\n", first_on, off);
    int col = snprintf(NULL, 0, "  cpus: [%u, ", first_on) + 1;
    snprintf(want, sizeof(want),
             SRC ":3:%d: engine.cpus[1]: CPU %u is not online on this machine (online CPUs: %s)",
             col, off, online);
    expect_daemon_error(yaml, want);
    /* The highest id accepted by the syntax is past what numa/ can hold. */
    snprintf(want, sizeof(want),
             SRC ":3:10: engine.cpus[0]: CPU 4095 is not online on this machine (online CPUs: %s)",
             online);
    expect_daemon_error("engine:\n  workers: 1\n  cpus: [4095]\n", want);

    /* Every online CPU (up to the worker limit), in descending order: accepted. */
    unsigned ids[RF_DAEMON_MAX_WORKERS];
    for (unsigned cpu = RF_NUMA_MAX_CPUS; cpu-- > 0 && n_on < RF_DAEMON_MAX_WORKERS;)
        if (rf_numa_cpuset_has(&topo.online, cpu))
            ids[n_on++] = cpu;
    int len = snprintf(yaml, sizeof(yaml), "engine:\n  workers: %u\n  cpus: [", n_on);
    for (unsigned i = 0; i < n_on; i++)
        len += snprintf(yaml + len, sizeof(yaml) - (size_t)len, "%s%u", i ? ", " : "", ids[i]);
    snprintf(yaml + len, sizeof(yaml) - (size_t)len, "]\n");
    rf_daemon_config cfg;
    daemon_ok(yaml, &cfg);
    assert_int_equal(cfg.engine.n_cpus, n_on);
    for (unsigned i = 0; i < n_on; i++)
        assert_int_equal(cfg.engine.cpus[i], ids[i]);
}

/* The generic accessors the daemon does not use itself. */
static void generic_numbers_and_sizes(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("offset: -5\nratio: 1.5\nsegment: 64KB\nbig: 2GiB\nok: 4 MiB\n"
                              "any: -9223372036854775808\n");
    const rf_cfg_node *root = rf_cfg_root(doc);
    rf_err err = {0};
    int64_t i;
    double d;
    uint64_t u;
    assert_int_equal(rf_cfg_i64(root, "offset", -3, 3, 0, &i, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":1:9: offset: expected an integer from -3 to 3, got '-5'");
    assert_int_equal(rf_cfg_i64(root, "any", INT64_MIN, INT64_MAX, 0, &i, &err), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(rf_cfg_double(root, "ratio", 0, 1, 0.5, &d, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":2:8: ratio: expected a number from 0 to 1, got '1.5'");
    assert_int_equal(rf_cfg_size(root, "segment", 4096, 1ull << 30, 0, &u, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":3:10: segment: expected a size in bytes or with a unit "
                                     "(B, KiB, MiB, GiB, TiB), got '64KB'");
    assert_int_equal(rf_cfg_size(root, "big", 4096, 1ull << 30, 0, &u, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":4:6: big: expected a size from 4KiB to 1GiB, got '2GiB'");
    assert_int_equal(rf_cfg_size(root, "ok", 4096, 1ull << 30, 0, &u, &err), 0);
    assert_int_equal(u, 4u << 20);
    assert_int_equal(rf_cfg_u64(root, "missing", 0, UINT64_MAX, 42, &u, &err), 0);
    assert_int_equal(u, 42);
    /* An unbounded maximum is stated as "at least". */
    assert_int_equal(rf_cfg_u64(root, "offset", 1, UINT64_MAX, 0, &u, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":1:9: offset: expected an integer of at least 1, got '-5'");
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
}

static void unit_parsing(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ns;
    } durations[] = {
        {"250us", 250000ull},     {"100ms", 100000000ull},
        {"5s", 5000000000ull},    {"1m", 60000000000ull},
        {"1h", 3600000000000ull}, {"90d", 7776000000000000ull},
        {"7", 7000000000ull},     {"1.5s", 1500000000ull},
        {"10 ns", 10ull},         {"0", 0},
        {"0.000000001s", 1ull},
    };
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        uint64_t ns = 0;
        assert_int_equal(rf_cfg_parse_duration(durations[i].text, &ns), 0);
        assert_true(ns == durations[i].ns);
    }
    static const char *const bad_durations[] = {"",   "s",   "-1s", ".5s", "5x",
                                                "5 ", "1.s", "5S",  "1ms5"};
    for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++) {
        uint64_t ns = 0;
        assert_int_equal(rf_cfg_parse_duration(bad_durations[i], &ns), -EINVAL);
    }
    uint64_t v;
    assert_int_equal(rf_cfg_parse_duration("1.0000000001s", &v), -ERANGE); /* below 1ns */
    assert_int_equal(rf_cfg_parse_duration("214000d", &v), -ERANGE);       /* past 2^64 ns */

    static const struct {
        const char *text;
        uint64_t bytes;
    } sizes[] = {
        {"64KiB", 65536}, {"1MiB", 1048576}, {"4GiB", 4ull << 30},
        {"512B", 512},    {"512", 512},      {"2TiB", 2ull << 40},
    };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(rf_cfg_parse_size(sizes[i].text, &v), 0);
        assert_true(v == sizes[i].bytes);
    }
    assert_int_equal(rf_cfg_parse_size("1.5KiB", &v), -EINVAL);
    assert_int_equal(rf_cfg_parse_size("1KB", &v), -EINVAL);
    assert_int_equal(rf_cfg_parse_size("16777216TiB", &v), -ERANGE);

    char buf[32];
    assert_string_equal(rf_cfg_format_duration(10000, buf, sizeof(buf)), "10us");
    assert_string_equal(rf_cfg_format_duration(1500000000, buf, sizeof(buf)), "1500ms");
    assert_string_equal(rf_cfg_format_duration(0, buf, sizeof(buf)), "0s");
    assert_string_equal(rf_cfg_format_size(1536, buf, sizeof(buf)), "1536B");
    assert_string_equal(rf_cfg_format_size(1ull << 30, buf, sizeof(buf)), "1GiB");
}

/* ---- keys --------------------------------------------------------------- */

static void unknown_key_lists_accepted(void **state)
{
    (void)state;
    expect_daemon_error("engine:\n  workers: 2\n  workerz: 4\n", SRC
                        ":3:3: engine.workerz: unknown key (accepted: workers, pin_workers, cpus, "
                        "data_dir, run_dir, user, group, memory_limit, ring, idle)");
    expect_daemon_error("engine:\n  ring:\n    size: 64\n", SRC
                        ":3:5: engine.ring.size: unknown key (accepted: capacity, full_policy)");
    expect_daemon_error(
        "log:\n  level: info\nenigne:\n  workers: 2\n",
        SRC ":3:1: enigne: unknown key (accepted: engine, log, listeners, ingest, pipeline, "
            "storage, stats)");
}

static void unknown_keys_reported_in_document_order(void **state)
{
    (void)state;
    /* Two mistakes: the first one in the file is reported. */
    expect_daemon_error("log:\n  colour: true\nengine:\n  workerz: 4\n",
                        SRC ":2:3: log.colour: unknown key (accepted: level, format, file)");
}

static void marked_sections_are_not_looked_into(void **state)
{
    (void)state;
    rf_daemon_config cfg;
    /* storage is declared known by its (future) owner: its keys are its business. */
    daemon_ok("storage:\n  anything: [1, 2]\n  nested: {x: 1}\n", &cfg);

    /* A mapping a module opened but read nothing from accepts no keys. */
    rf_cfg_doc *doc = load_ok("stats:\n  socket: x\n");
    const rf_cfg_node *stats;
    rf_err err = {0};
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "stats", &stats, &err), 0);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":2:3: stats.socket: unknown key (no keys are accepted here)");
    rf_cfg_free(doc);
}

static void nested_path_with_index(void **state)
{
    (void)state;
    const char *y = "listeners:\n"
                    "  - port: 8089\n"
                    "  - port: 8090\n"
                    "  - port: 99999\n";
    rf_cfg_doc *doc = load_ok(y);
    const rf_cfg_node *ls;
    rf_err err = {0};
    assert_int_equal(rf_cfg_seq(rf_cfg_root(doc), "listeners", 1, 16, &ls, &err), 0);
    assert_int_equal(rf_cfg_seq_len(ls), 3);
    uint32_t port = 0;
    assert_int_equal(rf_cfg_u32(rf_cfg_seq_at(ls, 0), "port", 1, 65535, 0, &port, &err), 0);
    assert_int_equal(port, 8089);
    assert_int_equal(rf_cfg_u32(rf_cfg_seq_at(ls, 2), "port", 1, 65535, 0, &port, &err), -EINVAL);
    assert_string_equal(
        err.msg, SRC ":4:11: listeners[2].port: expected an integer from 1 to 65535, got '99999'");
    assert_string_equal(rf_cfg_path(rf_cfg_seq_at(ls, 1)), "listeners[1]");
    assert_null(rf_cfg_seq_at(ls, 3));
    rf_cfg_free(doc);
}

static void unknown_key_in_list_item(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("listeners:\n  - port: 1\n  - port: 2\n    bind: 0.0.0.0\n");
    const rf_cfg_node *ls;
    rf_err err = {0};
    uint32_t port;
    assert_int_equal(rf_cfg_seq(rf_cfg_root(doc), "listeners", 0, 16, &ls, &err), 0);
    for (size_t i = 0; i < rf_cfg_seq_len(ls); i++)
        assert_int_equal(rf_cfg_u32(rf_cfg_seq_at(ls, i), "port", 1, 65535, 0, &port, &err), 0);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":4:5: listeners[1].bind: unknown key (accepted: port)");
    rf_cfg_free(doc);
}

static void list_item_must_be_a_mapping(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("listeners: [5]\n");
    const rf_cfg_node *ls;
    rf_err err = {0};
    uint32_t port;
    assert_int_equal(rf_cfg_seq(rf_cfg_root(doc), "listeners", 0, 16, &ls, &err), 0);
    assert_int_equal(rf_cfg_u32(rf_cfg_seq_at(ls, 0), "port", 1, 65535, 0, &port, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":1:13: listeners[0]: expected a mapping, got '5'");
    rf_cfg_free(doc);
}

static void list_length(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("a: [1, 2, 3]\nb: []\n");
    const rf_cfg_node *seq;
    rf_err err = {0};
    const rf_cfg_node *root = rf_cfg_root(doc);
    assert_int_equal(rf_cfg_seq(root, "a", 0, 2, &seq, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":1:4: a: expected a list of at most 2 items, got 3");
    assert_int_equal(rf_cfg_seq(root, "b", 1, 4, &seq, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":2:4: b: expected a list of 1 to 4 items, got 0");
    assert_int_equal(rf_cfg_seq(root, "c", 1, 4, &seq, &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":1:1: c: missing required key");
    rf_cfg_free(doc);
}

static void missing_required_key_points_at_mapping(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("listeners:\n  - port: 1\n  - host: a\n    proto: udp\n");
    const rf_cfg_node *ls;
    rf_err err = {0};
    assert_int_equal(rf_cfg_seq(rf_cfg_root(doc), "listeners", 0, 16, &ls, &err), 0);
    assert_int_equal(rf_cfg_require(rf_cfg_seq_at(ls, 0), "port", &err), 0);
    assert_int_equal(rf_cfg_require(rf_cfg_seq_at(ls, 1), "port", &err), -EINVAL);
    assert_string_equal(err.msg, SRC ":3:5: listeners[1].port: missing required key");
    rf_cfg_free(doc);
}

static void cross_field_errors_use_the_same_format(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("batch:\n  max: 500\n");
    const rf_cfg_node *batch;
    rf_err err = {0};
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "batch", &batch, &err), 0);
    assert_int_equal(rf_cfg_fail_key(batch, "max", &err, "must not exceed %s (%u)", "ring", 256),
                     -EINVAL);
    assert_string_equal(err.msg, SRC ":2:8: batch.max: must not exceed ring (256)");
    assert_int_equal(rf_cfg_fail_key(batch, "interval", &err, "required with max"), -EINVAL);
    assert_string_equal(err.msg, SRC ":2:3: batch.interval: required with max");
    rf_cfg_free(doc);
}

static void map_iteration_claims_keys(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("routes:\n  critical: 1\n  routine: 2\n");
    const rf_cfg_node *routes;
    rf_err err = {0};
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "routes", &routes, &err), 0);
    assert_int_equal(rf_cfg_map_len(routes), 2);
    assert_string_equal(rf_cfg_map_key(routes, 0), "critical");
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), -EINVAL);
    assert_string_equal(err.msg,
                        SRC ":3:3: routes.routine: unknown key (no keys are accepted here)");
    const rf_cfg_node *v = rf_cfg_map_value(routes, 1);
    assert_string_equal(rf_cfg_scalar(v), "2");
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
}

static void nodes_stay_usable_after_parsing(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("engine:\n  workers: 4\nstats:\n  socket: s.sock\n");
    rf_daemon_config a, b;
    rf_err err = {0};
    assert_int_equal(rf_daemon_config_parse(doc, &a, &err), 0);
    assert_int_equal(rf_daemon_config_parse(doc, &b, &err), 0);
    assert_int_equal(b.engine.workers, 4);
    /* A later module reads its own section from the same document. */
    const rf_cfg_node *stats, *workers;
    char sock[64];
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "stats", &stats, &err), 0);
    assert_int_equal(rf_cfg_str(stats, "socket", 1, "", sock, sizeof(sock), &err), 0);
    assert_string_equal(sock, "s.sock");
    const rf_cfg_node *engine;
    assert_int_equal(rf_cfg_map(rf_cfg_root(doc), "engine", &engine, &err), 0);
    workers = rf_cfg_get(engine, "workers");
    assert_non_null(workers);
    assert_int_equal(rf_cfg_kind(workers), RF_CFG_SCALAR);
    assert_int_equal(rf_cfg_line(workers), 2);
    assert_int_equal(rf_cfg_column(workers), 12);
    assert_string_equal(rf_cfg_path(workers), "engine.workers");
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
}

/* ---- the daemon's defaults and files ------------------------------------ */

static void embedded_default_parses_to_documented_defaults(void **state)
{
    (void)state;
    rf_daemon_config cfg;
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    int rc = rf_daemon_config_load(NULL, &cfg, &doc, &err);
    if (rc != 0)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_string_equal(rf_cfg_source(doc), "<default>");
    mark_other_sections(doc);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
    assert_documented_defaults(&cfg);

    /* The C defaults agree with the file. */
    rf_daemon_config_defaults(&cfg);
    assert_documented_defaults(&cfg);
}

static void embedded_default_is_the_source_file(void **state)
{
    (void)state;
    const char *root = getenv("RF_SOURCE_ROOT");
    if (!root)
        skip();
    char path[4096];
    snprintf(path, sizeof(path), "%s/daemon/default_config.yaml", root);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_string_equal(rf_daemon_default_config_text(), text);
}

static void empty_inputs_give_defaults(void **state)
{
    (void)state;
    static const char *const empties[] = {"",      "\n",  "# only a comment\n",
                                          "---\n", "~\n", "engine:\nlog:\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        rf_daemon_config cfg;
        memset(&cfg, 0xff, sizeof(cfg));
        daemon_ok(empties[i], &cfg);
        assert_documented_defaults(&cfg);
    }
}

static char *write_temp(const char *text)
{
    const char *dir = getenv("TMPDIR");
    char *path = malloc(4096);
    assert_non_null(path);
    snprintf(path, 4096, "%s/rf_test_config_XXXXXX", dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void file_round_trip(void **state)
{
    (void)state;
    char *path = write_temp("engine:\n"
                            "  workers: 4\n"
                            "  pin_workers: off\n"
                            "  cpus: [3, 2, 1, 0]\n"
                            "  data_dir: /var/lib/ringflow\n"
                            "  run_dir: /run/ringflow\n"
                            "  ring:\n"
                            "    capacity: 1024\n"
                            "    full_policy: drop_newest\n"
                            "  idle:\n"
                            "    spin: 0\n"
                            "    yield: 0\n"
                            "    sleep: 50us\n"
                            "log:\n"
                            "  level: debug\n"
                            "  format: json\n");
    rf_daemon_config cfg;
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_daemon_config_load(path, &cfg, &doc, &err), 0);
    assert_string_equal(rf_cfg_source(doc), path);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
    assert_int_equal(cfg.engine.workers, 4);
    assert_false(cfg.engine.pin_workers);
    assert_int_equal(cfg.engine.n_cpus, 4);
    assert_int_equal(cfg.engine.cpus[0], 3);
    assert_int_equal(cfg.engine.cpus[3], 0);
    assert_string_equal(cfg.engine.data_dir, "/var/lib/ringflow");
    assert_string_equal(cfg.engine.run_dir, "/run/ringflow");
    assert_int_equal(cfg.engine.ring.capacity, 1024);
    assert_int_equal(cfg.engine.ring.full_policy, RF_RING_DROP_NEWEST);
    assert_int_equal(cfg.engine.idle.spin, 0);
    assert_int_equal(cfg.engine.idle.yield, 0);
    assert_int_equal(cfg.engine.idle.sleep_max_ns, 50000);
    assert_int_equal(cfg.log.level, RF_LOG_DEBUG);
    assert_int_equal(cfg.log.format, RF_LOG_JSON);
    unlink(path);
    free(path);
}

static void file_errors_name_the_file(void **state)
{
    (void)state;
    char *path = write_temp("engine:\n  workers: 100\n");
    rf_daemon_config cfg;
    rf_cfg_doc *doc = (rf_cfg_doc *)&cfg; /* must stay untouched on error */
    rf_err err = {0};
    assert_int_equal(rf_daemon_config_load(path, &cfg, &doc, &err), -EINVAL);
    assert_ptr_equal(doc, (rf_cfg_doc *)&cfg);
    char expect[4200];
    snprintf(expect, sizeof(expect),
             "%s:2:12: engine.workers: expected an integer from 1 to 64, got '100'", path);
    assert_string_equal(err.msg, expect);
    unlink(path);
    free(path);
}

static void empty_file_gives_defaults(void **state)
{
    (void)state;
    char *path = write_temp("");
    rf_daemon_config cfg;
    rf_cfg_doc *doc = NULL;
    rf_err err = {0};
    assert_int_equal(rf_daemon_config_load(path, &cfg, &doc, &err), 0);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    rf_cfg_free(doc);
    assert_documented_defaults(&cfg);
    unlink(path);
    free(path);
}

/* ---- the other sections, through the whole daemon's validation ---------- */

/* rf_settings_load on a file, as --check-config does: every module parses its
 * own section. The message starts with the file's path; `msg` is the rest. */
static void expect_settings_error(const char *yaml, const char *msg)
{
    char path[] = "/tmp/rf-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(yaml);
    assert_int_equal(write(fd, yaml, len), (ssize_t)len);
    close(fd);
    static rf_settings s; /* large; one test thread */
    rf_err err = {0};
    int rc = rf_settings_load(path, &s, &err);
    unlink(path);
    if (rc == 0)
        rf_settings_release(&s);
    assert_int_equal(rc, -EINVAL);
    char want[1024];
    snprintf(want, sizeof(want), "%s%s", path, msg);
    assert_string_equal(err.msg, want);
}

static void aggregation_function_listed_twice(void **state)
{
    (void)state;
    expect_settings_error("pipeline:\n"
                          "  aggregations:\n"
                          "    - {measurement: cpu, window: 1m, functions: [avg, p99, avg]}\n",
                          ":3:60: pipeline.aggregations[0].functions[2]: function 'avg' listed "
                          "twice");
}

/* The series matcher (stages/route) of an alert rule's match. */
static void matcher_at_most_four_tag_conditions(void **state)
{
    (void)state;
    expect_settings_error("pipeline:\n"
                          "  alerts:\n"
                          "    - name: hot\n"
                          "      type: threshold\n"
                          "      match:\n"
                          "        measurement: cpu\n"
                          "        tags: {a: x, b: x, c: x, d: x, e: x}\n"
                          "      op: \">\"\n"
                          "      fire: 90\n",
                          ":7:15: pipeline.alerts[0].match.tags: at most 4 tag conditions, got 5");
}

static void listener_not_a_mapping_and_too_many(void **state)
{
    (void)state;
    expect_settings_error("listeners:\n  - udp\n",
                          ":2:5: listeners[0]: expected a mapping with transport, protocol, port, "
                          "...");
    /* The daemon's list holds 64: its own bound on the sequence answers
     * first, with the generic message. */
    static char yaml[16384];
    int len = snprintf(yaml, sizeof(yaml), "listeners:\n");
    for (int i = 0; i < 65; i++)
        len += snprintf(yaml + len, sizeof(yaml) - (size_t)len,
                        "  - {transport: udp, protocol: statsd, port: %d}\n", 20000 + i);
    expect_settings_error(yaml, ":2:3: listeners: expected a list of at most 64 items, got 65");
    /* ingest/listen's own bound, for a caller with less room. */
    rf_cfg_doc *doc = load_ok("listeners:\n"
                              "  - {transport: udp, protocol: statsd, port: 8125}\n"
                              "  - {transport: tcp, protocol: graphite, port: 2003}\n"
                              "  - {transport: udp, protocol: influx_line, port: 8089}\n");
    rf_listener_config out[2];
    size_t n = 0;
    rf_err err = {0};
    assert_int_equal(
        rf_listener_config_parse_list(rf_cfg_get(rf_cfg_root(doc), "listeners"), out, 2, &n, &err),
        -EINVAL);
    assert_string_equal(err.msg, SRC ":2:3: listeners: at most 2 listeners, got 3");
    assert_int_equal(n, 0);
    rf_cfg_free(doc);
}

/* An http listener's otlp allow-lists; the key on another protocol and a
 * list too long are refused. */
static void listener_otlp_attributes(void **state)
{
    (void)state;
    rf_cfg_doc *doc = load_ok("listeners:\n"
                              "  - {transport: tcp, protocol: http, port: 18086, otlp: "
                              "{resource_attributes: [service.name, k8s.pod.name], "
                              "scope_attributes: ['*']}}\n"
                              "  - {transport: tcp, protocol: http, port: 18087, name: h2}\n");
    rf_listener_config out[2];
    size_t n = 0;
    rf_err err = {0};
    int rc =
        rf_listener_config_parse_list(rf_cfg_get(rf_cfg_root(doc), "listeners"), out, 2, &n, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_true(out[0].otlp.resource_set);
    assert_int_equal(out[0].otlp.n_resource, 2);
    assert_int_equal(out[0].otlp.n_scope, 1);
    assert_string_equal(out[0].otlp.names[1], "k8s.pod.name");
    assert_string_equal(out[0].otlp.names[2], "*");
    assert_false(out[1].otlp.resource_set);
    assert_int_equal(out[1].otlp.n_resource + out[1].otlp.n_scope, 0);
    rf_cfg_free(doc);
    expect_settings_error("listeners:\n  - {transport: tcp, protocol: influx_line, port: 18089, "
                          "otlp: {resource_attributes: [a]}}\n",
                          ":2:64: listeners[0].otlp: otlp is a setting of protocol http");
    expect_settings_error("listeners:\n  - {transport: tcp, protocol: http, port: 18086, "
                          "otlp: {resource_attributes: [a, b, c, d, e, f, g, h, i], "
                          "scope_attributes: [a, b, c, d, e, f, g, h]}}\n",
                          ":2:126: listeners[0].otlp.scope_attributes: at most 16 resource and "
                          "scope attribute names together");
}

static void dpdk_port_and_udp_port_not_mappings(void **state)
{
    (void)state;
    expect_settings_error("dpdk:\n  ports:\n    - net_pcap0\n",
                          ":3:7: dpdk.ports[0]: expected a mapping with name and device, vdev or "
                          "port_id");
    expect_settings_error("dpdk:\n  udp_ports:\n    - 8125\n",
                          ":3:7: dpdk.udp_ports[0]: expected a mapping {port, protocol}");
}

static void sink_backoff_max_below_base(void **state)
{
    (void)state;
    expect_settings_error("pipeline:\n"
                          "  sinks:\n"
                          "    - name: fwd\n"
                          "      type: lp_udp\n"
                          "      host: 127.0.0.1\n"
                          "      port: 9999\n"
                          "      backoff: {base: 2s, max: 1s}\n"
                          "  routes:\n"
                          "    - {subject: \"telemetry.>\", sinks: [fwd]}\n",
                          ":7:32: pipeline.sinks[0].backoff.max: backoff max is below backoff "
                          "base");
}

static void admin_socket_must_differ_from_stats_socket(void **state)
{
    (void)state;
    expect_settings_error("stats:\n"
                          "  socket: /tmp/rf-same.sock\n"
                          "  admin_socket: /tmp/rf-same.sock\n",
                          ":3:17: stats.admin_socket: must differ from stats.socket "
                          "(/tmp/rf-same.sock)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(syntax_error_names_position_and_libyaml_problem),
        cmocka_unit_test(syntax_error_bad_indentation),
        cmocka_unit_test(invalid_utf8_is_located_by_line_and_column),
        cmocka_unit_test(duplicate_key),
        cmocka_unit_test(duplicate_top_level_key),
        cmocka_unit_test(anchor_is_rejected),
        cmocka_unit_test(alias_is_rejected),
        cmocka_unit_test(multiple_documents_are_rejected),
        cmocka_unit_test(non_scalar_key_is_rejected),
        cmocka_unit_test(top_level_must_be_a_mapping),
        cmocka_unit_test(nesting_depth_is_bounded),
        cmocka_unit_test(missing_file),
        cmocka_unit_test(out_of_range_integer),
        cmocka_unit_test(wrong_type),
        cmocka_unit_test(bad_bool),
        cmocka_unit_test(bad_enum_lists_accepted_values),
        cmocka_unit_test(bad_duration),
        cmocka_unit_test(power_of_two),
        cmocka_unit_test(strings),
        cmocka_unit_test(cpus),
        cmocka_unit_test(cpus_must_be_online),
        cmocka_unit_test(aggregation_function_listed_twice),
        cmocka_unit_test(matcher_at_most_four_tag_conditions),
        cmocka_unit_test(listener_not_a_mapping_and_too_many),
        cmocka_unit_test(listener_otlp_attributes),
        cmocka_unit_test(dpdk_port_and_udp_port_not_mappings),
        cmocka_unit_test(sink_backoff_max_below_base),
        cmocka_unit_test(admin_socket_must_differ_from_stats_socket),
        cmocka_unit_test(generic_numbers_and_sizes),
        cmocka_unit_test(unit_parsing),
        cmocka_unit_test(unknown_key_lists_accepted),
        cmocka_unit_test(unknown_keys_reported_in_document_order),
        cmocka_unit_test(marked_sections_are_not_looked_into),
        cmocka_unit_test(nested_path_with_index),
        cmocka_unit_test(unknown_key_in_list_item),
        cmocka_unit_test(list_item_must_be_a_mapping),
        cmocka_unit_test(list_length),
        cmocka_unit_test(missing_required_key_points_at_mapping),
        cmocka_unit_test(cross_field_errors_use_the_same_format),
        cmocka_unit_test(map_iteration_claims_keys),
        cmocka_unit_test(nodes_stay_usable_after_parsing),
        cmocka_unit_test(embedded_default_parses_to_documented_defaults),
        cmocka_unit_test(embedded_default_is_the_source_file),
        cmocka_unit_test(empty_inputs_give_defaults),
        cmocka_unit_test(file_round_trip),
        cmocka_unit_test(file_errors_name_the_file),
        cmocka_unit_test(empty_file_gives_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
