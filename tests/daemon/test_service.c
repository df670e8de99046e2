/* ringflowd as a service: started through a generated configuration with
 * includes and environment variables, the sd_notify messages a Type=notify
 * unit waits for (READY, RELOADING, WATCHDOG, STOPPING) on a socket of the
 * test's own, --print-config, and log.file. Ports are the test's own
 * (tproc_port_base), never the defaults. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon_proc.h"

static int setup(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-service");
    return 0;
}

/* main.yaml includes every .yaml file of conf.d; values come from the environment. */
static void write_config_tree(void)
{
    int port = tproc_port_base();
    char buf[2048];
    setenv("RF_SVC_DATA", "./data-svc", 1);
    setenv("RF_SVC_PORT", "0", 1);
    snprintf(buf, sizeof(buf), "%d", port);
    setenv("RF_SVC_PORT", buf, 1);
    unsetenv("RF_SVC_UNSET");
    tproc_write_file("main.yaml", "include: conf.d/*.yaml\n"
                                  "engine:\n"
                                  "  workers: 1\n"
                                  "  data_dir: ${RF_SVC_DATA}\n"
                                  "  run_dir: ${RF_SVC_UNSET:-./run}\n"
                                  "  idle: {sleep: 10ms}\n"
                                  "log:\n"
                                  "  level: info\n");
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/conf.d", tproc_dir());
    mkdir(dir, 0755);
    tproc_write_file("conf.d/10-listeners.yaml", "listeners:\n"
                                                 "  - name: svc-udp\n"
                                                 "    transport: udp\n"
                                                 "    protocol: influx_line\n"
                                                 "    port: ${RF_SVC_PORT}\n"
                                                 "    rcvbuf: 1MiB\n");
    snprintf(buf, sizeof(buf),
             "stats:\n  prometheus: {listen: \"127.0.0.1:%d\"}\n"
             "engine:\n  workers: 2\n",
             port + 2);
    tproc_write_file("conf.d/20-stats.yaml", buf);
}

static int notify_socket(char *path, size_t size)
{
    snprintf(path, size, "%s/notify.sock", tproc_dir());
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(a.sun_path));
    strcpy(a.sun_path, path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Waits up to timeout_ms for a notification containing `needle`; the
 * messages read meanwhile are appended to seen. */
static int wait_notify(int fd, const char *needle, int timeout_ms, char *seen, size_t seen_size)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        int left =
            timeout_ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0)
            continue;
        char msg[1024];
        ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        size_t l = strlen(seen);
        snprintf(seen + l, seen_size - l, "%s|", msg);
        if (strstr(msg, needle))
            return 1;
    }
}

/* `ringflow [global] stat` run from the temp directory with `env`; its exit
 * code. */
static int cli_stat(const char *env, const char *global)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cd %s && env -u RINGFLOW_RUN_DIR %s %s %s stat >/dev/null 2>&1",
             tproc_dir(), env, getenv("RINGFLOW"), global);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void includes_environment_and_notify(void **state)
{
    (void)state;
    write_config_tree();
    char path[600];
    int nfd = notify_socket(path, sizeof(path));
    setenv("NOTIFY_SOCKET", path, 1);
    setenv("WATCHDOG_USEC", "200000", 1);
    proc p;
    tproc_start(&p, (const char *[]){"--config", "main.yaml", NULL});
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    char seen[8192] = "";
    assert_true(wait_notify(nfd, "READY=1", 15000, seen, sizeof(seen)));
    /* The included values and the substituted ones are what runs. */
    char *log = tproc_read_file(p.err_path);
    assert_non_null(strstr(log, "workers=2 data_dir=./data-svc run_dir=./run "));
    char want[128];
    snprintf(want, sizeof(want), "listener svc-udp: udp 127.0.0.1 port %d", tproc_port_base());
    assert_non_null(strstr(log, want));
    /* Listener start lines: one per listener, with its workers and the
     * rcvbuf as configured. */
    assert_non_null(strstr(log, "workers 0,1"));
    assert_non_null(strstr(log, "rcvbuf 1MiB"));
    assert_null(strstr(strstr(log, want) + 1, want));
    /* memory_limit: auto, so the default has a limit, logged as itself. */
    assert_non_null(strstr(log, "engine.memory_limit "));
    assert_null(strstr(log, "engine.memory_limit none"));

    /* The CLI finds it: --config FILE first, then RINGFLOW_RUN_DIR. */
    assert_int_equal(cli_stat("", "--config main.yaml"), 0);
    assert_int_equal(cli_stat("RINGFLOW_RUN_DIR=/nonexistent", "--config main.yaml"), 0);
    char env[700];
    snprintf(env, sizeof(env), "RINGFLOW_RUN_DIR=%s/run", tproc_dir());
    assert_int_equal(cli_stat(env, ""), 0);
    assert_int_equal(cli_stat("RINGFLOW_RUN_DIR=/nonexistent", ""), 1);
    assert_int_equal(cli_stat("", "--config missing.yaml"), 2);

    /* The watchdog pings at half of WATCHDOG_USEC. */
    assert_true(wait_notify(nfd, "WATCHDOG=1", 3000, seen, sizeof(seen)));
    /* A reload: RELOADING (with the time systemd wants), then READY. */
    kill(p.pid, SIGHUP);
    assert_true(wait_notify(nfd, "RELOADING=1", 5000, seen, sizeof(seen)));
    assert_non_null(strstr(seen, "MONOTONIC_USEC="));
    assert_true(wait_notify(nfd, "READY=1", 10000, seen, sizeof(seen)));
    kill(p.pid, SIGTERM);
    assert_true(wait_notify(nfd, "STOPPING=1", 10000, seen, sizeof(seen)));
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
    /* A stop removes every listener on every worker: the final counters
     * say so, not a "removed" line per worker without its name. */
    assert_null(strstr(tproc_read_file(p.err_path), "removed (port"));
    close(nfd);
}

static void print_config_shows_the_merged_result(void **state)
{
    (void)state;
    write_config_tree();
    proc p;
    assert_int_equal(
        tproc_run((const char *[]){"--config", "main.yaml", "--print-config", NULL}, &p), 0);
    const char *out = tproc_read_file(p.out_path);
    assert_null(strstr(out, "include:"));
    assert_null(strstr(out, "${"));
    assert_non_null(strstr(out, "data_dir: ./data-svc"));
    assert_non_null(strstr(out, "workers: 2"));
    assert_non_null(strstr(out, "name: svc-udp"));
    /* The printed configuration is itself valid. */
    tproc_write_file("printed.yaml", out);
    assert_int_equal(tproc_run((const char *[]){"--check-config", "printed.yaml", NULL}, &p), 0);

    /* An error in an included file names that file, line and column. */
    tproc_write_file("conf.d/30-bad.yaml", "engine:\n  workers: 0\n");
    assert_int_equal(tproc_run((const char *[]){"--check-config", "main.yaml", NULL}, &p), 3);
    assert_non_null(strstr(tproc_read_file(p.err_path),
                           "conf.d/30-bad.yaml:2:12: engine.workers: expected an integer"));
    char bad[700];
    snprintf(bad, sizeof(bad), "%s/conf.d/30-bad.yaml", tproc_dir());
    unlink(bad);
}

static void log_file(void **state)
{
    (void)state;
    write_config_tree();
    char cfg[4096];
    snprintf(cfg, sizeof(cfg), "%s", tproc_read_dir_file("main.yaml"));
    char *log = strstr(cfg, "log:\n");
    assert_non_null(log);
    snprintf(log, sizeof(cfg) - (size_t)(log - cfg), "log:\n  level: info\n  file: ./svc.log\n");
    tproc_write_file("logfile.yaml", cfg);
    proc p;
    tproc_start(&p, (const char *[]){"--config", "logfile.yaml", NULL});
    struct timespec d = {0, 50 * 1000000};
    int i;
    for (i = 0; i < 200 && !strstr(tproc_read_dir_file("svc.log"), "msg=\"running:"); i++)
        nanosleep(&d, NULL);
    assert_true(i < 200);
    kill(p.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&p, 10000), 0);
    assert_non_null(strstr(tproc_read_dir_file("svc.log"), "msg=\"stopped\""));
    assert_null(strstr(tproc_read_file(p.err_path), "msg=\"running:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(includes_environment_and_notify),
        cmocka_unit_test(print_config_shows_the_merged_result),
        cmocka_unit_test(log_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
