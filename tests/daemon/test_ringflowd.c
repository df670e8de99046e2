/* ringflowd as a process: command line, configuration errors, signals,
 * reload refusal. Runs the real binary (path in $RINGFLOWD) in a temp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char g_dir[256];

typedef struct proc {
    pid_t pid;
    char out_path[512], err_path[512];
} proc;

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    if (!f)
        return strcpy(buf, "");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Starts ringflowd with args in g_dir, stdout/stderr to files. */
static void start(proc *p, const char *const *args)
{
    const char *bin = getenv("RINGFLOWD");
    assert_non_null(bin);
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)bin;
    for (; args[n - 1]; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    snprintf(p->out_path, sizeof(p->out_path), "%s/stdout.%d", g_dir, rand());
    snprintf(p->err_path, sizeof(p->err_path), "%s/stderr.%d", g_dir, rand());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&fa, g_dir);
    assert_int_equal(posix_spawn(&p->pid, bin, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
}

/* Waits up to timeout_ms; returns the exit code, or -1 on timeout (killed). */
static int wait_exit(proc *p, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 10) {
        int status;
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10 * 1000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    return -1;
}

static int run(const char *const *args, proc *p)
{
    start(p, args);
    return wait_exit(p, 10000);
}

/* Waits until the daemon's stderr contains `needle`. */
static int wait_log(proc *p, const char *needle, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (strstr(read_file(p->err_path), needle))
            return 1;
        usleep(20 * 1000);
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf-test-daemon-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static void test_help_version_usage(void **state)
{
    (void)state;
    proc p;
    assert_int_equal(run((const char *[]){"--help", NULL}, &p), 0);
    assert_non_null(strstr(read_file(p.out_path), "Usage: ringflowd"));
    assert_int_equal(run((const char *[]){"--version", NULL}, &p), 0);
    assert_non_null(strstr(read_file(p.out_path), "ringflowd "));
    assert_int_equal(run((const char *[]){"--bogus", NULL}, &p), 2);
    assert_int_equal(run((const char *[]){"stray", NULL}, &p), 2);
    assert_non_null(strstr(read_file(p.err_path), "unexpected argument 'stray'"));
}

static void test_default_config_is_valid(void **state)
{
    (void)state;
    proc p;
    assert_int_equal(run((const char *[]){"--print-default-config", NULL}, &p), 0);
    char printed[65536];
    snprintf(printed, sizeof(printed), "%s", read_file(p.out_path));
    assert_non_null(strstr(printed, "engine:"));
    write_file("default.yaml", printed);
    assert_int_equal(run((const char *[]){"--check-config", "default.yaml", NULL}, &p), 0);
    assert_non_null(strstr(read_file(p.out_path), "default.yaml: configuration is valid"));
}

static void test_check_config_errors(void **state)
{
    (void)state;
    proc p;
    write_file("bad-range.yaml", "engine:\n  workers: 0\n");
    assert_int_equal(run((const char *[]){"--check-config", "bad-range.yaml", NULL}, &p), 3);
    assert_non_null(strstr(read_file(p.err_path),
                           "bad-range.yaml:2:12: engine.workers: expected an integer from 1 to 64, got '0'"));

    write_file("unknown.yaml", "engine:\n  workerz: 2\n");
    assert_int_equal(run((const char *[]){"--check-config", "unknown.yaml", NULL}, &p), 3);
    assert_non_null(strstr(read_file(p.err_path), "unknown.yaml:2:3: engine.workerz: unknown key"));

    write_file("syntax.yaml", "engine: [1, 2\n");
    assert_int_equal(run((const char *[]){"--check-config", "syntax.yaml", NULL}, &p), 3);
    assert_non_null(strstr(read_file(p.err_path), "syntax.yaml:"));
    assert_non_null(strstr(read_file(p.err_path), "invalid YAML"));

    assert_int_equal(run((const char *[]){"--check-config", "missing.yaml", NULL}, &p), 3);
    assert_non_null(strstr(read_file(p.err_path), "missing.yaml"));

    /* Starting with a bad file must fail the same way, starting nothing. */
    assert_int_equal(run((const char *[]){"--config", "bad-range.yaml", NULL}, &p), 3);
    assert_null(strstr(read_file(p.err_path), "running:"));
}

/* A configuration on ports derived from the pid, so tests running beside
 * another ringflowd (or each other) do not collide. */
static const char *run_config(void)
{
    static char buf[1024];
    int port = 20000 + (int)(getpid() % 20000);
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
             "log:\n"
             "  level: info\n",
             port, port + 1);
    return buf;
}

static void test_sigterm_drains_and_exits_zero(void **state)
{
    (void)state;
    write_file("run.yaml", run_config());
    proc p;
    start(&p, (const char *[]){"--config", "run.yaml", NULL});
    assert_true(wait_log(&p, "msg=\"running:", 10000));
    char path[600];
    snprintf(path, sizeof(path), "%s/data-run", g_dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    kill(p.pid, SIGTERM);
    assert_int_equal(wait_exit(&p, 10000), 0);
    assert_non_null(strstr(read_file(p.err_path), "msg=\"stopped\""));
}

static void test_sigint_exits_zero(void **state)
{
    (void)state;
    write_file("run.yaml", run_config());
    proc p;
    start(&p, (const char *[]){"--config", "run.yaml", NULL});
    assert_true(wait_log(&p, "msg=\"running:", 10000));
    kill(p.pid, SIGINT);
    assert_int_equal(wait_exit(&p, 10000), 0);
}

static void test_sighup_bad_config_keeps_running(void **state)
{
    (void)state;
    write_file("reload.yaml", run_config());
    proc p;
    start(&p, (const char *[]){"--config", "reload.yaml", NULL});
    assert_true(wait_log(&p, "msg=\"running:", 10000));

    write_file("reload.yaml", "engine:\n  workers: [\n");
    kill(p.pid, SIGHUP);
    assert_true(wait_log(&p, "reload refused, the running configuration stays", 10000));
    assert_int_equal(kill(p.pid, 0), 0); /* still alive */

    /* A valid change that needs a restart is reported, not silently ignored. */
    write_file("reload.yaml", "engine:\n  workers: 1\n  data_dir: ./data-run\n  run_dir: ./run-run\nlog:\n  level: debug\n");
    kill(p.pid, SIGHUP);
    assert_true(wait_log(&p, "need a restart and were left as they are: engine.workers (2 -> 1)", 10000));

    kill(p.pid, SIGTERM);
    assert_int_equal(wait_exit(&p, 10000), 0);
}

/* A second daemon on the same ports must refuse to start (our sockets use
 * SO_REUSEPORT and would otherwise silently share the traffic). */
static void test_second_daemon_on_same_ports_refuses(void **state)
{
    (void)state;
    write_file("first.yaml", run_config());
    proc first, second;
    start(&first, (const char *[]){"--config", "first.yaml", NULL});
    assert_true(wait_log(&first, "msg=\"running:", 10000));
    start(&second, (const char *[]){"--config", "first.yaml", NULL});
    assert_int_equal(wait_exit(&second, 10000), 1);
    assert_non_null(strstr(read_file(second.err_path), "Address already in use (another process"));
    kill(first.pid, SIGTERM);
    assert_int_equal(wait_exit(&first, 10000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_version_usage),
        cmocka_unit_test(test_default_config_is_valid),
        cmocka_unit_test(test_check_config_errors),
        cmocka_unit_test(test_sigterm_drains_and_exits_zero),
        cmocka_unit_test(test_sigint_exits_zero),
        cmocka_unit_test(test_sighup_bad_config_keeps_running),
        cmocka_unit_test(test_second_daemon_on_same_ports_refuses),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
