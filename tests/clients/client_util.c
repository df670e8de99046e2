#include "client_util.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Everything this process started and has not reaped: killed by
 * cu_kill_children() when a test fails half-way. */
#define CU_MAX_CHILDREN 16
static pid_t g_children[CU_MAX_CHILDREN];

static void child_add(pid_t pid)
{
    for (int i = 0; i < CU_MAX_CHILDREN; i++)
        if (!g_children[i]) {
            g_children[i] = pid;
            return;
        }
}

static void child_reaped(pid_t pid)
{
    for (int i = 0; i < CU_MAX_CHILDREN; i++)
        if (g_children[i] == pid)
            g_children[i] = 0;
}

int cu_kill_children(void **state)
{
    (void)state;
    for (int i = 0; i < CU_MAX_CHILDREN; i++)
        if (g_children[i] > 0) {
            kill(g_children[i], SIGKILL);
            waitpid(g_children[i], NULL, 0);
            g_children[i] = 0;
        }
    return 0;
}

const char *cu_find_program(const char *name)
{
    static char found[1024];
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/local/sbin",
             path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof(found), "%s/%s", d, name);
        struct stat st;
        if (stat(found, &st) == 0 && S_ISREG(st.st_mode) && access(found, X_OK) == 0)
            return found;
    }
    return NULL;
}

const char *cu_clients_dir(void)
{
    const char *d = getenv("RF_CLIENTS_DIR");
    if (!d) {
        fprintf(stderr, "RF_CLIENTS_DIR is not set (run through meson test)\n");
        abort();
    }
    return d;
}

int cu_node_module_present(const char *module)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/node_modules/%s/package.json", cu_clients_dir(), module);
    return access(path, R_OK) == 0;
}

char *cu_node_or_skip(const char *module)
{
    const char *node = cu_find_program("node");
    if (!node) {
        printf("SKIP: node is not installed\n");
        return NULL;
    }
    if (!cu_node_module_present(module)) {
        printf("SKIP: tests/clients/node_modules/%s is missing "
               "(scripts/install-deps.sh runs npm ci in tests/clients)\n",
               module);
        return NULL;
    }
    return strdup(node);
}

pid_t cu_spawn(const char *tag, const char *const *argv)
{
    char out[512], err[512];
    snprintf(out, sizeof(out), "%s/%s.out", tproc_dir(), tag);
    snprintf(err, sizeof(err), "%s/%s.err", tproc_dir(), tag);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&fa, tproc_dir());
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
    child_add(pid);
    return pid;
}

int cu_wait(pid_t pid, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            child_reaped(pid);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        usleep(10 * 1000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    child_reaped(pid);
    return -1;
}

int cu_stop(pid_t pid, int timeout_ms)
{
    kill(pid, SIGTERM);
    return cu_wait(pid, timeout_ms);
}

char *cu_output(const char *tag, const char *stream)
{
    char name[256];
    snprintf(name, sizeof(name), "%s.%s", tag, stream);
    return strdup(tproc_read_dir_file(name));
}

char *cu_run_node_script(const char *node, const char *script, int port, const char *arg)
{
    char path[1024], port_s[16];
    snprintf(path, sizeof(path), "%s/%s", cu_clients_dir(), script);
    snprintf(port_s, sizeof(port_s), "%d", port);
    pid_t pid = cu_spawn("node", (const char *[]){node, path, port_s, arg, NULL});
    int rc = cu_wait(pid, 20000);
    if (rc != 0)
        fail_msg("node %s exited %d:\n%s", script, rc, cu_output("node", "err"));
    return cu_output("node", "out");
}

int cu_run_test(const char *tmp_prefix, const char *name, void (*test)(void **state))
{
    tproc_dir_init(tmp_prefix);
    const struct CMUnitTest tests[] = {
        {.name = name, .test_func = test, .teardown_func = cu_kill_children},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

void cu_daemon_start(proc *d, const char *config_name, const char *config_text)
{
    tproc_write_file(config_name, config_text);
    tproc_start(d, (const char *[]){"--config", config_name, NULL});
    child_add(d->pid);
    if (!tproc_wait_log(d, "msg=\"running:", 10000))
        fail_msg("ringflowd did not start; stderr:\n%s", tproc_read_file(d->err_path));
}

void cu_daemon_start_pipeline(proc *d, const char *listeners, const char *extra_sinks,
                              const char *pipeline_tail)
{
    char cfg[8192];
    int n = snprintf(cfg, sizeof(cfg),
                     "engine: {workers: 2, idle: {sleep: 5ms}}\n"
                     "listeners:\n"
                     "%s"
                     "stats: {prometheus: {enabled: false}}\n"
                     "pipeline:\n"
                     "  batch: {max_events: 1000, interval: 50ms}\n"
                     "  sinks:\n"
                     "    - {name: store, type: store}\n"
                     "    - {name: seen, type: json, path: ./seen.jsonl}\n"
                     "%s"
                     "  routes:\n"
                     "    - {subject: \"telemetry.>\", sinks: [store, seen]}\n"
                     "%s",
                     listeners, extra_sinks, pipeline_tail);
    if (n < 0 || (size_t)n >= sizeof(cfg))
        fail_msg("ringflowd config longer than %zu bytes", sizeof(cfg));
    cu_daemon_start(d, "ringflowd.yaml", cfg);
}

void cu_daemon_stop(proc *d)
{
    kill(d->pid, SIGTERM);
    int rc = tproc_wait_exit(d, 15000);
    child_reaped(d->pid);
    if (rc != 0)
        fail_msg("ringflowd exited %d; stderr:\n%s", rc, tproc_read_file(d->err_path));
}

void cu_expect_nothing_rejected(const char *log)
{
    /* Every listener's final line says lines_rejected=0. */
    assert_true(cu_count(log, "lines_rejected=") > 0);
    assert_int_equal(cu_count(log, "lines_rejected=0 "), cu_count(log, "lines_rejected="));
    assert_non_null(strstr(log, "store_rejected=0"));
}

/* `ringflow <args>` in the temp dir, stderr with stdout; *rc its exit
 * status as pclose says it. */
static char *run_ringflow(const char *args, int *rc)
{
    const char *cli = getenv("RINGFLOW");
    assert_non_null(cli);
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' %s 2>&1", tproc_dir(), cli, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, len = 0, n;
    char *out = malloc(cap);
    assert_non_null(out);
    while ((n = fread(out + len, 1, cap - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    *rc = pclose(p);
    return out;
}

char *cu_ringflow(const char *args)
{
    int rc;
    char *out = run_ringflow(args, &rc);
    if (rc != 0)
        fail_msg("ringflow %s: exit status %d:\n%s", args, rc, out);
    return out;
}

void cu_query_expect_none(const char *args)
{
    char full[4096];
    snprintf(full, sizeof(full), "query --dir ./data/store %s", args);
    int rc;
    char *out = run_ringflow(full, &rc);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 1 || !strstr(out, "no series matched"))
        fail_msg("ringflow %s: expected exit 1 and \"no series matched\", got %d:\n%s", full, rc,
                 out);
    free(out);
}

char *cu_query(const char *args)
{
    char full[4096];
    snprintf(full, sizeof(full), "query --dir ./data/store %s", args);
    return cu_ringflow(full);
}

void cu_expect_csv_rows(const char *query_args, const char *row_prefix, long long t0_s, int step_s,
                        const char *const *values, int n)
{
    char *out = cu_query(query_args);
    int lines = cu_count_lines(out);
    if (lines != 1 + n)
        fail_msg("query %s: want the header and %d rows, got %d lines:\n%s", query_args, n, lines,
                 out);
    for (int i = 0; i < n; i++) {
        char line[1024];
        snprintf(line, sizeof(line), "%lld000000000,%s,%s", t0_s + (long long)i * step_s,
                 row_prefix, values[i]);
        cu_expect_line(out, line);
    }
    free(out);
}

int cu_count_line(const char *text, const char *line)
{
    size_t len = strlen(line);
    int n = 0;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && memcmp(p, line, len) == 0)
            n++;
        if (!e)
            break;
        p = e + 1;
    }
    return n;
}

void cu_expect_line(const char *text, const char *line)
{
    int n = cu_count_line(text, line);
    if (n != 1)
        fail_msg("want the line\n  %s\nexactly once (found %d times) in:\n%s", line, n, text);
}

int cu_count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n')
            n++;
    size_t len = strlen(text);
    if (len && text[len - 1] != '\n')
        n++;
    return n;
}

int cu_count(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

int cu_wait_file_lines(const char *name, int lines, int timeout_ms)
{
    int n = 0;
    for (int t = 0; t <= timeout_ms; t += 20) {
        n = cu_count_lines(tproc_read_dir_file(name));
        if (n >= lines)
            return n;
        usleep(20 * 1000);
    }
    return n;
}

void cu_wait_events(const proc *d, const char *name, int events)
{
    int got = cu_wait_file_lines(name, events, 10000);
    if (got != events) {
        /* A copy: tproc_read_file reuses one buffer. */
        char *text = strdup(tproc_read_dir_file(name));
        fail_msg("%d of %d events arrived:\n%s\nringflowd stderr:\n%s", got, events, text,
                 tproc_read_file(d->err_path));
    }
}

double cu_json_value(const char *text, const char *series, char *time_out)
{
    char needle[512];
    snprintf(needle, sizeof(needle), "\"series\":\"%s\",", series);
    const char *hit = strstr(text, needle);
    if (!hit)
        fail_msg("no JSON line for series %s in:\n%s", series, text);
    if (cu_count(text, needle) != 1)
        fail_msg("more than one JSON line for series %s in:\n%s", series, text);
    const char *bol = hit;
    while (bol > text && bol[-1] != '\n')
        bol--;
    const char *eol = strchr(hit, '\n');
    size_t linelen = eol ? (size_t)(eol - bol) : strlen(bol);
    char line[2048];
    snprintf(line, sizeof(line), "%.*s",
             (int)(linelen < sizeof(line) - 1 ? linelen : sizeof(line) - 1), bol);
    const char *v = strstr(line, "\"value\":");
    if (!v)
        fail_msg("no value in %s", line);
    char *end;
    double d = strtod(v + 8, &end);
    if (end == v + 8)
        fail_msg("value is not a number in %s", line);
    if (time_out) {
        const char *t = strstr(line, "\"time\":\"");
        if (!t)
            fail_msg("no time in %s", line);
        t += 8;
        const char *q = strchr(t, '"');
        snprintf(time_out, 64, "%.*s", (int)(q ? q - t : 0), t);
    }
    return d;
}

int64_t cu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void cu_rfc3339(int64_t ns, char out[64])
{
    time_t s = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&s, &tm);
    char d[32];
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 64, "%s.%09lldZ", d, (long long)(ns % 1000000000LL));
}

char *cu_http(int port, const char *method, const char *path, const char *body, int *status)
{
    *status = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    size_t bl = body ? strlen(body) : 0;
    char head[8192];
    int hl = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, bl);
    if (fd < 0 || hl >= (int)sizeof(head) || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl ||
        (bl && send(fd, body, bl, MSG_NOSIGNAL) != (ssize_t)bl)) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (!buf || poll(&pf, 1, 10000) != 1)
            fail_msg("%s %s: no answer within 10 s", method, path);
        if (len + 4096 > cap)
            buf = realloc(buf, cap *= 2);
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    sscanf(buf, "HTTP/1.%*d %d", status);
    char *b = strstr(buf, "\r\n\r\n");
    char *out = strdup(b ? b + 4 : "");
    free(buf);
    return out;
}

int cu_unixsock_connect(const char *path, int timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        fail_msg("unix socket path too long: %s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    for (int t = 0; t < timeout_ms; t += 20) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        close(fd);
        usleep(20 * 1000);
    }
    return -1;
}

void cu_collectd_putval(int fd, FILE *in, const char *cmd)
{
    char line[512];
    snprintf(line, sizeof(line), "%s\n", cmd);
    if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
        fail_msg("collectd unixsock write: %s", cmd);
    char reply[512];
    if (!fgets(reply, sizeof(reply), in))
        fail_msg("collectd closed the unixsock after: %s", cmd);
    if (strncmp(reply, "0 Success", 9) != 0)
        fail_msg("collectd refused %s: %s", cmd, reply);
}
