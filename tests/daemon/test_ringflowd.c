/* ringflowd as a process: command line, configuration errors, signals,
 * reload refusal. Runs the real binary (path in $RINGFLOWD) in a temp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "daemon_proc.h"

static int setup(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-daemon");
    return 0;
}

static void test_help_version_usage(void **state)
{
    (void)state;
    proc p;
    assert_int_equal(tproc_run((const char *[]){"--help", NULL}, &p), 0);
    assert_non_null(strstr(tproc_read_file(p.out_path), "Usage: ringflowd"));
    assert_int_equal(tproc_run((const char *[]){"--version", NULL}, &p), 0);
    assert_non_null(strstr(tproc_read_file(p.out_path), "ringflowd "));
    assert_int_equal(tproc_run((const char *[]){"--bogus", NULL}, &p), 2);
    assert_int_equal(tproc_run((const char *[]){"stray", NULL}, &p), 2);
    assert_non_null(strstr(tproc_read_file(p.err_path), "unexpected argument 'stray'"));
}

static void test_default_config_is_valid(void **state)
{
    (void)state;
    proc p;
    assert_int_equal(tproc_run((const char *[]){"--print-default-config", NULL}, &p), 0);
    char printed[65536];
    snprintf(printed, sizeof(printed), "%s", tproc_read_file(p.out_path));
    assert_non_null(strstr(printed, "engine:"));
    tproc_write_file("default.yaml", printed);
    assert_int_equal(tproc_run((const char *[]){"--check-config", "default.yaml", NULL}, &p), 0);
    assert_non_null(strstr(tproc_read_file(p.out_path), "default.yaml: configuration is valid"));
}

static void test_check_config_errors(void **state)
{
    (void)state;
    proc p;
    tproc_write_file("bad-range.yaml", "engine:\n  workers: 0\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "bad-range.yaml", NULL}, &p), 3);
    assert_non_null(
        strstr(tproc_read_file(p.err_path),
               "bad-range.yaml:2:12: engine.workers: expected an integer from 1 to 64, got '0'"));

    tproc_write_file("unknown.yaml", "engine:\n  workerz: 2\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "unknown.yaml", NULL}, &p), 3);
    assert_non_null(
        strstr(tproc_read_file(p.err_path), "unknown.yaml:2:3: engine.workerz: unknown key"));

    tproc_write_file("syntax.yaml", "engine: [1, 2\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "syntax.yaml", NULL}, &p), 3);
    assert_non_null(strstr(tproc_read_file(p.err_path), "syntax.yaml:"));
    assert_non_null(strstr(tproc_read_file(p.err_path), "invalid YAML"));

    assert_int_equal(tproc_run((const char *[]){"--check-config", "missing.yaml", NULL}, &p), 3);
    assert_non_null(strstr(tproc_read_file(p.err_path), "missing.yaml"));

    /* Sinks without routes: nothing would reach them, said plainly. */
    tproc_write_file("sinks-only.yaml", "pipeline:\n  sinks: [{name: x, type: count_only}]\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "sinks-only.yaml", NULL}, &p), 3);
    assert_non_null(
        strstr(tproc_read_file(p.err_path),
               "sinks-only.yaml:2:10: pipeline.sinks: sinks are configured but no routes"));
    /* Errors in several sections: every section is named in one run. */
    tproc_write_file("three.yaml",
                     "listeners:\n  - {transport: udp, protocol: influx_line, port: 70000}\n"
                     "storage:\n  durability: sometimes\n"
                     "pipeline:\n  sinks: [{name: x, type: count_only}]\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "three.yaml", NULL}, &p), 3);
    const char *three = tproc_read_file(p.err_path);
    if (!strstr(three, "three.yaml:2:") || !strstr(three, "(and 2 more: three.yaml:4:") ||
        !strstr(three, "; three.yaml:6:10: pipeline.sinks"))
        fail_msg("not every section named: %s", three);
    /* Routes alone use the default sinks (store, alerts). */
    tproc_write_file("routes-only.yaml",
                     "pipeline:\n  routes: [{subject: \"telemetry.>\", sinks: [store]}]\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "routes-only.yaml", NULL}, &p),
                     0);

    /* Starting with a bad file must fail the same way, starting nothing. */
    assert_int_equal(tproc_run((const char *[]){"--config", "bad-range.yaml", NULL}, &p), 3);
    assert_null(strstr(tproc_read_file(p.err_path), "running:"));
}

/* A configuration on ports derived from the pid, so tests running beside
 * another ringflowd (or each other) do not collide. */
static const char *run_config(void)
{
    static char buf[1024];
    int port = tproc_port_base();
    snprintf(buf, sizeof(buf),
             "engine:\n"
             "  workers: 2\n"
             "  data_dir: ./data-run\n"
             "  run_dir: ./run-run\n"
             "  idle:\n"
             "    sleep: 10ms\n"
             "listeners:\n"
             "  - {transport: udp, protocol: influx_line, port: %d}\n"
             "  - {transport: tcp, protocol: graphite, port: %d}\n"
             "stats:\n"
             "  prometheus: {listen: \"127.0.0.1:%d\"}\n"
             "log:\n"
             "  level: info\n",
             port, port + 1, port + 2);
    return buf;
}

static void test_sigterm_drains_and_exits_zero(void **state)
{
    (void)state;
    tproc_write_file("run.yaml", run_config());
    proc p;
    tproc_start(&p, (const char *[]){"--config", "run.yaml", NULL});
    assert_true(tproc_wait_log(&p, "msg=\"running:", 10000));
    char path[600];
    snprintf(path, sizeof(path), "%s/data-run", tproc_dir());
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    kill(p.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
    assert_non_null(strstr(tproc_read_file(p.err_path), "msg=\"stopped\""));
}

static void test_sigint_exits_zero(void **state)
{
    (void)state;
    tproc_write_file("run.yaml", run_config());
    proc p;
    tproc_start(&p, (const char *[]){"--config", "run.yaml", NULL});
    assert_true(tproc_wait_log(&p, "msg=\"running:", 10000));
    kill(p.pid, SIGINT);
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
}

static void test_sighup_bad_config_keeps_running(void **state)
{
    (void)state;
    tproc_write_file("reload.yaml", run_config());
    proc p;
    tproc_start(&p, (const char *[]){"--config", "reload.yaml", NULL});
    assert_true(tproc_wait_log(&p, "msg=\"running:", 10000));

    tproc_write_file("reload.yaml", "engine:\n  workers: [\n");
    kill(p.pid, SIGHUP);
    assert_true(tproc_wait_log(&p, "reload refused, the running configuration stays", 10000));
    assert_int_equal(kill(p.pid, 0), 0); /* still alive */

    /* A pipeline change applies live; its table size (max_series) cannot and
     * is named. */
    char changed[2048];
    snprintf(changed, sizeof(changed),
             "%spipeline:\n  batch: {max_events: 5}\n  max_series: 1000\n", run_config());
    tproc_write_file("reload.yaml", changed);
    kill(p.pid, SIGHUP);
    /* From max_series: auto, whose value depends on the host's memory. */
    assert_true(tproc_wait_log(
        &p, "need a restart and were left as they are: pipeline.max_series (", 10000));
    assert_true(tproc_wait_log(&p, " -> 1000)", 1000));

    /* A valid change that needs a restart is reported, not silently ignored.
     * Built on run_config, so that the listeners and the Prometheus port stay
     * the test's own: a file without them means the default ports, which
     * another engine on the machine may hold. */
    char restart[2048];
    snprintf(restart, sizeof(restart), "%s", run_config());
    char *workers = strstr(restart, "  workers: 2\n");
    assert_non_null(workers);
    memmove(workers + strlen("  workers: 1\n  memory_limit: 64GiB\n"),
            workers + strlen("  workers: 2\n"), strlen(workers + strlen("  workers: 2\n")) + 1);
    memcpy(workers, "  workers: 1\n  memory_limit: 64GiB\n",
           strlen("  workers: 1\n  memory_limit: 64GiB\n"));
    tproc_write_file("reload.yaml", restart);
    kill(p.pid, SIGHUP);
    assert_true(tproc_wait_log(
        &p, "need a restart and were left as they are: engine.workers (2 -> 1)", 10000));
    assert_true(tproc_wait_log(&p, "engine.memory_limit", 1000));

    kill(p.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
}

/* A second daemon on the same ports must refuse to start (our sockets use
 * SO_REUSEPORT and would otherwise silently share the traffic). */
static void test_second_daemon_on_same_ports_refuses(void **state)
{
    (void)state;
    tproc_write_file("first.yaml", run_config());
    /* Same listener ports; its own run dir and Prometheus port, so the
     * listener probe is what must refuse it. */
    char second_cfg[2048];
    snprintf(second_cfg, sizeof(second_cfg), "%s", run_config());
    char *run = strstr(second_cfg, "./run-run");
    assert_non_null(run);
    memcpy(run, "./run-two", 9);
    char *prom = strstr(second_cfg, "127.0.0.1:");
    assert_non_null(prom);
    snprintf(prom, sizeof(second_cfg) - (size_t)(prom - second_cfg), "127.0.0.1:%d\"}\n",
             tproc_port_base() + 3);
    tproc_write_file("second.yaml", second_cfg);
    proc first, second;
    tproc_start(&first, (const char *[]){"--config", "first.yaml", NULL});
    assert_true(tproc_wait_log(&first, "msg=\"running:", 10000));
    tproc_start(&second, (const char *[]){"--config", "second.yaml", NULL});
    assert_int_equal(tproc_wait_exit(&second, 10000), 1);
    assert_non_null(
        strstr(tproc_read_file(second.err_path), "Address already in use (another process"));
    kill(first.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&first, 10000), 0);
}

/* Signals the daemon does not use for anything must not kill it (the
 * default action of most is to terminate, losing the points in memory and
 * leaving the sockets behind): SIGUSR1 reopens the log (a logged no-op while
 * it logs to stderr), the others are logged and ignored; SIGTERM still
 * drains and exits 0. */
static void test_unused_signals_do_not_kill(void **state)
{
    (void)state;
    tproc_write_file("run.yaml", run_config());
    proc p;
    tproc_start(&p, (const char *[]){"--config", "run.yaml", NULL});
    assert_true(tproc_wait_log(&p, "msg=\"running:", 10000));
    kill(p.pid, SIGUSR1);
    assert_true(tproc_wait_log(&p, "SIGUSR1: the log goes to stderr", 10000));
    const int others[] = {SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF,      SIGIO,
                          SIGPWR,  SIGXCPU, SIGSTKFLT, SIGRTMIN + 3, SIGRTMAX};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        kill(p.pid, others[i]);
        char needle[96];
        snprintf(needle, sizeof(needle), "signal %d (%s) ignored", others[i], strsignal(others[i]));
        if (!tproc_wait_log(&p, needle, 10000))
            fail_msg("no '%s' in the log; the daemon %s", needle,
                     kill(p.pid, 0) == 0 ? "runs" : "is gone");
    }
    kill(p.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
    assert_non_null(strstr(tproc_read_file(p.err_path), "msg=\"stopped\""));
}

/* Waits (10 s at most) until the file in the temp directory holds needle. */
static int wait_file_has(const char *name, const char *needle)
{
    for (int i = 0; i < 1000; i++) {
        if (strstr(tproc_read_dir_file(name), needle))
            return 1;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* With log.file, SIGUSR1 is logrotate's: after the file was renamed, the
 * daemon writes to a new file of that name. */
static void test_sigusr1_reopens_the_log_file(void **state)
{
    (void)state;
    char cfg[1200];
    snprintf(cfg, sizeof(cfg), "%slog:\n  file: ./rf.log\n", run_config());
    /* run_config ends with its own log section: drop it for this one. */
    char *dup = strstr(cfg, "log:\n  level: info\n");
    if (dup)
        memmove(dup, dup + strlen("log:\n  level: info\n"), strlen(dup + 19) + 1);
    tproc_write_file("logfile.yaml", cfg);
    proc p;
    tproc_start(&p, (const char *[]){"--config", "logfile.yaml", NULL});
    assert_true(wait_file_has("rf.log", "msg=\"running:"));
    char from[600], to[600];
    snprintf(from, sizeof(from), "%s/rf.log", tproc_dir());
    snprintf(to, sizeof(to), "%s/rf.log.1", tproc_dir());
    assert_int_equal(rename(from, to), 0);
    kill(p.pid, SIGUSR1);
    assert_true(wait_file_has("rf.log", "SIGUSR1: log file"));
    assert_null(strstr(tproc_read_dir_file("rf.log.1"), "SIGUSR1"));
    kill(p.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
    assert_true(wait_file_has("rf.log", "msg=\"stopped\""));
}

/* logrotate under load: the log file is renamed and SIGUSR1 sent ten times
 * while a client streams Graphite lines over TCP; every line is stored, and
 * the log goes on in the new file. */
static void test_sigusr1_under_load_loses_nothing(void **state)
{
    (void)state;
    enum {
        LINES = 20000,
        ROTATIONS = 10
    };
    char cfg[1200];
    snprintf(cfg, sizeof(cfg), "%slog:\n  file: ./rot.log\n", run_config());
    char *dup = strstr(cfg, "log:\n  level: info\n");
    if (dup)
        memmove(dup, dup + strlen("log:\n  level: info\n"), strlen(dup + 19) + 1);
    tproc_write_file("rotate.yaml", cfg);
    proc p;
    tproc_start(&p, (const char *[]){"--config", "rotate.yaml", NULL});
    assert_true(wait_file_has("rot.log", "msg=\"running:"));

    pid_t client = fork();
    assert_true(client >= 0);
    if (client == 0) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)(tproc_port_base() + 1))};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            _exit(2);
        char line[96];
        for (int i = 0; i < LINES; i++) {
            int n = snprintf(line, sizeof(line), "rotation.load %d %d\n", i, 1700000000 + i);
            if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
                _exit(3);
            if (i % 500 == 0)
                usleep(2000); /* spread the stream over the rotations */
        }
        shutdown(fd, SHUT_WR);
        char b;
        while (recv(fd, &b, 1, 0) > 0) {
        }
        close(fd);
        _exit(0);
    }
    for (int r = 1; r <= ROTATIONS; r++) {
        char from[600], to[600];
        snprintf(from, sizeof(from), "%s/rot.log", tproc_dir());
        snprintf(to, sizeof(to), "%s/rot.log.%d", tproc_dir(), r);
        assert_int_equal(rename(from, to), 0);
        kill(p.pid, SIGUSR1);
        assert_true(wait_file_has("rot.log", "SIGUSR1: log file"));
        usleep(10 * 1000);
    }
    int st = -1;
    assert_int_equal(waitpid(client, &st, 0), client);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    kill(p.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&p, 20000), 0);
    assert_true(wait_file_has("rot.log", "msg=\"stopped\""));

    char cmd[900];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && \"$RINGFLOW\" query --dir ./data-run/store rotation.load --format csv "
             "| tail -n +2 | wc -l",
             tproc_dir());
    char *out = tproc_shell_ok(cmd);
    assert_non_null(out);
    assert_int_equal(atoi(out), LINES);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version_usage),
        cmocka_unit_test(test_default_config_is_valid),
        cmocka_unit_test(test_check_config_errors),
        cmocka_unit_test(test_sigterm_drains_and_exits_zero),
        cmocka_unit_test(test_sigint_exits_zero),
        cmocka_unit_test(test_unused_signals_do_not_kill),
        cmocka_unit_test(test_sigusr1_reopens_the_log_file),
        cmocka_unit_test(test_sigusr1_under_load_loses_nothing),
        cmocka_unit_test(test_sighup_bad_config_keeps_running),
        cmocka_unit_test(test_second_daemon_on_same_ports_refuses),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
