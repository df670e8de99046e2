/* Rule-wide alerts through ringflowd on several workers (issue 23, item 4).
 *
 * A `scope: any` absence rule over one heartbeat series, on 2 and 4
 * workers with the default routes: the series lives on one worker, yet the
 * rule must not fire while it flows, must fire exactly once when it stops,
 * and resolve when it resumes, naming its own series (alert,rule=<name>
 * state) in the alerts file. It used to fire on the workers that own no
 * heartbeat series and crash the daemon (SIGSEGV naming the series id 0). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_proc.h"

static void send_udp(int port, const char *payload)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(sendto(fd, payload, strlen(payload), 0, (struct sockaddr *)&sa, sizeof(sa)),
                     (ssize_t)strlen(payload));
    close(fd);
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The daemon is still running (a crash would have ended it). */
static void assert_alive(proc *d)
{
    int status;
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid)
        fail_msg("ringflowd ended early: %s %d\n%s", WIFSIGNALED(status) ? "signal" : "exit code",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                 tproc_read_file(d->err_path));
}

/* `hb,host=a up=1` every 0.5 s for `seconds`, checking the daemon lives. */
static void heartbeat(proc *d, int port, const char *hosts, double seconds)
{
    for (int i = 0; i < (int)(seconds * 2); i++) {
        char payload[256];
        size_t len = 0;
        for (const char *h = hosts; *h; h++)
            len += (size_t)snprintf(payload + len, sizeof(payload) - len, "hb,host=%c up=1\n", *h);
        send_udp(port, payload);
        usleep(500 * 1000);
        assert_alive(d);
    }
}

static void run_scenario(int workers, int port_offset, const char *hosts)
{
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "rf-test-alert-live-%d", workers);
    tproc_dir_init(prefix);
    const int port = tproc_port_base() + port_offset;
    char cfg[2048];
    /* No sinks or routes: the default routing (store, alerts.jsonl in the
     * data directory, alerts on the critical path). */
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: %d, data_dir: ./data, run_dir: ./run, idle: {sleep: 2ms}}\n"
             "listeners:\n"
             "  - {transport: udp, protocol: influx_line, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "pipeline:\n"
             "  max_series: 4096\n"
             "  alerts:\n"
             "    - {name: hb_missing, type: absence, match: {measurement: hb}, absent: 2s,"
             " scope: any}\n",
             workers, port);
    tproc_write_file("alert.yaml", cfg);
    proc d;
    tproc_start(&d, (const char *[]){"--config", "alert.yaml", NULL});
    assert_true(tproc_wait_log(&d, "msg=\"running:", 10000));

    /* Flowing: longer than `absent`, on whichever worker owns the series. */
    heartbeat(&d, port, hosts, 4.0);
    const char *alerts = tproc_read_dir_file("data/alerts.jsonl");
    if (count_lines_with(alerts, "\"state\":\"firing\"") != 0)
        fail_msg("%d workers: fired while the heartbeat flowed:\n%s", workers, alerts);

    /* Stopped: fires once, after `absent` of silence. */
    for (int i = 0; i < 6; i++) {
        usleep(500 * 1000);
        assert_alive(&d);
    }
    /* Resumed: resolves. */
    heartbeat(&d, port, hosts, 1.5);
    usleep(300 * 1000);

    kill(d.pid, SIGTERM);
    int rc = tproc_wait_exit(&d, 15000);
    if (rc != 0)
        fail_msg("%d workers: ringflowd exit %d\n%s", workers, rc, tproc_read_file(d.err_path));
    /* Every worker's alert stage says what it exchanged; no report went
     * astray (reports_late is a timing bound, not checked on a shared box). */
    const char *log = tproc_read_file(d.err_path);
    if (count_lines_with(log, "alerts final: evaluated=") != workers ||
        count_lines_with(log, "reports_unknown=0 ") != workers)
        fail_msg("%d workers: alert summaries:\n%s", workers, log);
    char *out = strdup(tproc_read_dir_file("data/alerts.jsonl"));
    if (count_lines_with(out, "\"state\":\"firing\"") != 1 ||
        count_lines_with(out, "\"state\":\"resolved\"") != 1)
        fail_msg("%d workers: want one firing and one resolved line:\n%s", workers, out);
    /* Every line names the rule and the rule's own series. */
    assert_int_equal(count_lines_with(out, "\"rule\":\"hb_missing\""), 2);
    assert_int_equal(count_lines_with(out, "\"series\":\"alert,rule=hb_missing state\""), 2);
    /* The fire says how long the silence was: at least `absent`. */
    const char *fire = strstr(out, "\"value\":");
    assert_non_null(fire);
    double silence = strtod(fire + 8, NULL);
    if (silence < 2.0 || silence > 3.5)
        fail_msg("%d workers: silence %.3f s, want 2..3.5:\n%s", workers, silence, out);
    free(out);
}

static void test_absence_any_two_workers(void **state)
{
    (void)state;
    run_scenario(2, 6, "a");
}

static void test_absence_any_four_workers(void **state)
{
    (void)state;
    run_scenario(4, 7, "abcd");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absence_any_two_workers),
        cmocka_unit_test(test_absence_any_four_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
