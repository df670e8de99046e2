/* The ops server in-process: the line protocol (every command, text and
 * JSON, bad commands, partial lines, many clients, a client that never
 * reads), privilege levels (admin socket, SO_PEERCRED owner), stale and live
 * sockets, and the HTTP endpoints (/metrics parsed back, /health 200/503).
 *
 * The server runs on its own thread here, standing in for the daemon's
 * control thread; the test thread only talks to it through sockets while it
 * runs (the registry is touched before start or after stop). */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/stats/stats.h"
#include "core/worker/worker.h"
#include "daemon/ops/ops.h"
#include "tests/ops/prom_check.h"
#include "tools/cli/client.h"

static char g_dir[64];
static rf_ops_config g_cfg;
static rf_ops_server *g_srv;
static pthread_t g_thread;
static _Atomic bool g_run;
static _Atomic int g_reloads, g_shutdowns;
static _Atomic bool g_reload_fails;
static _Atomic uint64_t g_parsed[2];
static rf_hist *g_hist;

static int hook_reload(void *ctx, char *msg, size_t size)
{
    (void)ctx;
    atomic_fetch_add(&g_reloads, 1);
    if (atomic_load(&g_reload_fails)) {
        snprintf(msg, size, "reload refused, the running configuration stays: bad.yaml:3:5: x");
        return -EINVAL;
    }
    snprintf(msg, size, "reload applied from test.yaml");
    return 0;
}

static void hook_shutdown(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&g_shutdowns, 1);
}

static void *server_main(void *arg)
{
    (void)arg;
    while (atomic_load(&g_run))
        rf_ops_server_run(g_srv, 20);
    return NULL;
}

/* A provider as another module would write it: a table, with arguments. */
static int show_listeners(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    if (*args)
        return rf_err_set(err, EINVAL, "'show listeners' takes no arguments");
    static const char *const cols[] = {"name", "protocol", "events_per_s", "packets"};
    rf_ops_table_begin(w, "listeners", cols, 4);
    rf_ops_cell_str(w, "lp-udp");
    rf_ops_cell_str(w, "influx_line");
    rf_ops_cell_f64(w, 1234.5, 1);
    rf_ops_cell_u64(w, 99);
    rf_ops_cell_str(w, "weird \"name\"\nwith newline");
    rf_ops_cell_str(w, "statsd");
    rf_ops_cell_f64(w, 0, 1);
    rf_ops_cell_u64(w, 0);
    rf_ops_table_end(w);
    return 0;
}

static int show_series(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
{
    (void)ctx;
    unsigned n = 10;
    if (*args && sscanf(args, "top %u", &n) != 1)
        return rf_err_set(err, EINVAL, "usage: show series top N");
    rf_ops_obj_begin(w, "series");
    rf_ops_kv_u64(w, "top", n);
    rf_ops_obj_end(w);
    return 0;
}

static void start_server_cfg(uid_t owner, uint64_t client_buffer, uint64_t http_timeout_ns);

static void start_server(uid_t owner, uint64_t client_buffer)
{
    start_server_cfg(owner, client_buffer, 10000000000ull);
}

static void start_server_cfg(uid_t owner, uint64_t client_buffer, uint64_t http_timeout_ns)
{
    rf_ops_config_defaults(&g_cfg, g_dir);
    snprintf(g_cfg.prometheus_listen, sizeof(g_cfg.prometheus_listen), "127.0.0.1:0");
    g_cfg.client_buffer = client_buffer;
    g_cfg.http_timeout_ns = http_timeout_ns;
    rf_ops_hooks hooks = {.reload = hook_reload, .shutdown = hook_shutdown, .owner_uid = owner};
    rf_err err = {0};
    int rc = rf_ops_server_start(&g_cfg, &hooks, &g_srv, &err);
    if (rc < 0)
        print_message("start: %s\n", err.msg);
    assert_int_equal(rc, 0);
    atomic_store(&g_run, true);
    assert_int_equal(pthread_create(&g_thread, NULL, server_main, NULL), 0);
}

static void stop_server(void)
{
    atomic_store(&g_run, false);
    pthread_join(g_thread, NULL);
    rf_ops_server_stop(g_srv);
    g_srv = NULL;
}

static pid_t g_flood; /* the flooding child, killed after a failed test too */

/* After each test, even a failed one (cmocka jumps out of it). */
static int stop_if_running(void **state)
{
    (void)state;
    if (g_flood > 0) {
        kill(g_flood, SIGKILL);
        waitpid(g_flood, NULL, 0);
        g_flood = 0;
    }
    if (g_srv)
        stop_server();
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf-ops-test-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    rf_err err = {0};
    if (rf_ops_engine_attach(NULL, "test.yaml", &err) < 0)
        return -1;
    rf_ops_register_show("listeners", NULL, show_listeners, NULL);
    rf_ops_register_show("series", NULL, show_series, NULL);
    rf_stats_register_counter("test_parsed_events", "Events parsed.", "worker=\"0\"", &g_parsed[0]);
    rf_stats_register_counter("test_parsed_events", "Events parsed.", "worker=\"1\"", &g_parsed[1]);
    g_hist = aligned_alloc(64, sizeof(rf_hist));
    rf_hist_init(g_hist);
    for (int i = 1; i <= 1000; i++)
        rf_hist_record(g_hist, (uint64_t)i * 1000);
    rf_stats_register_histogram("test_critical_path_seconds", "Critical path latency.",
                                "path=\"critical\"", g_hist);
    rf_stats_add(&g_parsed[0], 100);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rf_ops_engine_detach();
    rf_stats_reset();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    (void)!system(cmd);
    free(g_hist);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static int connect_ok(const char *path)
{
    int fd = rf_cli_connect(path);
    if (fd < 0)
        print_message("connect %s: %s\n", path, strerror(-fd));
    assert_true(fd >= 0);
    return fd;
}

static char *ask(int fd, const char *cmd)
{
    char *reply = NULL;
    int rc = rf_cli_request(fd, cmd, 5000, &reply);
    if (rc < 0)
        print_message("%s: %s\n", cmd, strerror(-rc));
    assert_int_equal(rc, 0);
    return reply;
}

static rf_json *ask_json(int fd, const char *cmd)
{
    char *reply = ask(fd, cmd);
    rf_err err;
    rf_json *j = rf_json_parse(reply, &err);
    if (!j)
        print_message("%s: %s in: %s\n", cmd, err.msg, reply);
    assert_non_null(j);
    assert_int_equal(j->type, RF_JSON_OBJ);
    free(reply);
    return j;
}

/* Reads whatever arrives until EOF or timeout. */
static size_t read_all(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t n = recv(fd, buf + len, size - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == size - 1)
            break;
    }
    buf[len] = '\0';
    return len;
}

static char *http_get(uint16_t port, const char *request, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    size_t size = 4 << 20;
    char *buf = malloc(size);
    read_all(fd, buf, size, 5000);
    close(fd);
    assert_int_equal(sscanf(buf, "HTTP/1.1 %d", status), 1);
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    /* Content-Length agrees with the body */
    char *cl = strstr(buf, "Content-Length: ");
    assert_non_null(cl);
    assert_int_equal(strtoul(cl + 16, NULL, 10), strlen(body + 4));
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* ---- the protocol ------------------------------------------------------------ */

static const char *const sections[] = {"info",   "workers", "rings",  "listeners", "errors",
                                       "stages", "storage", "series", "latency"};
#define N_SECTIONS (sizeof(sections) / sizeof(sections[0]))

static void test_every_command(void **state)
{
    (void)state;
    start_server(getuid(), 1 << 20);
    int fd = connect_ok(g_cfg.socket);
    char *r = ask(fd, "help");
    assert_non_null(strstr(r, "show workers"));
    assert_non_null(strstr(r, "clear counters"));
    free(r);
    for (size_t i = 0; i < N_SECTIONS; i++) {
        char cmd[64];
        snprintf(cmd, sizeof(cmd), "show %s", sections[i]);
        r = ask(fd, cmd);
        char head[64];
        snprintf(head, sizeof(head), "# %s\n", sections[i]);
        assert_true(!strncmp(r, head, strlen(head)));
        assert_null(strstr(r, "\n\n")); /* only the final empty line ends a reply */
        free(r);
        snprintf(cmd, sizeof(cmd), "show %s json", sections[i]);
        rf_json *j = ask_json(fd, cmd);
        assert_non_null(rf_json_get(j, sections[i]));
        rf_json_free(j);
    }
    /* what the placeholders and providers say */
    rf_json *j = ask_json(fd, "show stats json");
    for (size_t i = 0; i < N_SECTIONS; i++)
        assert_non_null(rf_json_get(j, sections[i]));
    assert_string_equal(rf_json_str(rf_json_get(j, "stages"), "no_data", ""), "stages not running");
    assert_string_equal(rf_json_str(rf_json_get(j, "workers"), "no_data", ""),
                        "engine not running");
    const rf_json *info = rf_json_get(j, "info");
    assert_string_equal(rf_json_str(info, "config", ""), "test.yaml");
    assert_true(rf_json_num(info, "pid", 0) == getpid());
    assert_true(rf_json_num(info, "rss_bytes", 0) > 0);
    const rf_json *l = rf_json_get(j, "listeners");
    assert_int_equal(rf_json_len(l), 2);
    assert_string_equal(rf_json_str(l->child->next, "name", ""), "weird \"name\"\nwith newline");
    assert_true(rf_json_num(l->child, "events_per_s", 0) == 1234.5);
    const rf_json *lat = rf_json_get(j, "latency");
    assert_int_equal(rf_json_len(lat), 1);
    assert_true(rf_json_num(lat->child, "count", 0) == 1000);
    double p99 = rf_json_num(lat->child, "p99_us", 0);
    assert_true(p99 >= 985 && p99 <= 1000);
    assert_true(rf_json_num(lat->child, "max_us", 0) == 1000);
    rf_json_free(j);
    /* arguments reach the provider */
    j = ask_json(fd, "show series top 5 json");
    assert_true(rf_json_num(rf_json_get(j, "series"), "top", 0) == 5);
    rf_json_free(j);
    r = ask(fd, "show listeners");
    assert_non_null(strstr(r, "weird \"name\" with newline")); /* stays on its line */
    free(r);
    /* quit: no reply, the connection closes */
    assert_int_equal(send(fd, "quit\n", 5, MSG_NOSIGNAL), 5);
    char buf[16];
    assert_int_equal(read_all(fd, buf, sizeof(buf), 2000), 0);
    close(fd);
    stop_server();
}

static void test_bad_commands(void **state)
{
    (void)state;
    start_server(getuid(), 1 << 20);
    int fd = connect_ok(g_cfg.socket);
    static const char *const bad[] = {"bogus",
                                      "show",
                                      "show nothing",
                                      "show info extra",
                                      "show series top x",
                                      "set log level loud",
                                      "show stats",
                                      "clear",
                                      "help me"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *r = ask(fd, bad[i]);
        if (!strcmp(bad[i], "show stats")) { /* text form of everything: allowed */
            assert_non_null(strstr(r, "# info"));
        } else {
            if (strncmp(r, "error: ", 7))
                print_message("%s -> %s\n", bad[i], r);
            assert_true(!strncmp(r, "error: ", 7));
            assert_null(strchr(r, '\n') == r + strlen(r) - 1 ? NULL : strchr(r, '\n'));
        }
        free(r);
    }
    /* the connection is still usable */
    rf_json *j = ask_json(fd, "show info json");
    rf_json_free(j);
    /* an overlong line is refused and the client closed */
    char *big = malloc(RF_OPS_LINE_MAX + 10);
    memset(big, 'x', RF_OPS_LINE_MAX + 8);
    big[RF_OPS_LINE_MAX + 8] = '\0';
    char *r = NULL;
    assert_int_equal(rf_cli_request(fd, big, 5000, &r), 0);
    assert_non_null(strstr(r, "longer than"));
    free(r);
    free(big);
    char buf[64];
    assert_int_equal(read_all(fd, buf, sizeof(buf), 2000), 0); /* closed */
    close(fd);
    stop_server();
}

static void test_partial_lines(void **state)
{
    (void)state;
    start_server(getuid(), 1 << 20);
    int fd = connect_ok(g_cfg.socket);
    const char *cmd = "show info json\r\n";
    for (const char *p = cmd; *p; p++) {
        assert_int_equal(send(fd, p, 1, MSG_NOSIGNAL), 1);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    char buf[8192];
    size_t len = 0;
    while (len < 2 || memcmp(buf + len - 2, "\n\n", 2)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_true(poll(&p, 1, 5000) == 1);
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        assert_true(n > 0);
        len += (size_t)n;
    }
    buf[len] = '\0';
    assert_true(!strncmp(buf, "{\"info\":", 8));
    /* three commands in one write: three replies, in order */
    const char *three = "show errors\nbogus\nshow rings json\n";
    assert_int_equal(send(fd, three, strlen(three), MSG_NOSIGNAL), (ssize_t)strlen(three));
    len = read_all(fd, buf, sizeof(buf), 500);
    assert_non_null(strstr(buf, "# errors\nno data: ingest reject log not running\n\n"
                                "error: unknown command 'bogus' (try 'help')\n\n"
                                "{\"rings\":{\"no_data\":\"engine not running\"}}\n\n"));
    /* a last command without '\n' before EOF is answered */
    close(fd);
    fd = connect_ok(g_cfg.socket);
    assert_int_equal(send(fd, "show errors", 11, MSG_NOSIGNAL), 11);
    shutdown(fd, SHUT_WR);
    len = read_all(fd, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "# errors\nno data: ingest reject log not running\n\n");
    close(fd);
    stop_server();
}

static void test_many_clients(void **state)
{
    (void)state;
    start_server(getuid(), 1 << 20);
    enum {
        N = 60
    };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_ok(g_cfg.socket);
    /* all ask first, then all read: the server interleaves them */
    for (int i = 0; i < N; i++) {
        const char *c = i % 2 ? "show stats json\n" : "show info\n";
        assert_int_equal(send(fds[i], c, strlen(c), MSG_NOSIGNAL), (ssize_t)strlen(c));
    }
    for (int i = 0; i < N; i++) {
        char *buf = malloc(1 << 16);
        size_t len = 0;
        while (len < 2 || memcmp(buf + len - 2, "\n\n", 2)) {
            struct pollfd p = {.fd = fds[i], .events = POLLIN};
            assert_true(poll(&p, 1, 5000) == 1);
            ssize_t n = recv(fds[i], buf + len, (1 << 16) - 1 - len, 0);
            assert_true(n > 0);
            len += (size_t)n;
        }
        buf[len] = '\0';
        assert_true(i % 2 ? buf[0] == '{' : !strncmp(buf, "# info", 6));
        free(buf);
    }
    /* past RF_OPS_MAX_CLIENTS a connection is refused with a reason */
    int extra[RF_OPS_MAX_CLIENTS - N + 1];
    for (int i = 0; i < RF_OPS_MAX_CLIENTS - N; i++)
        extra[i] = connect_ok(g_cfg.socket);
    int over = connect_ok(g_cfg.socket);
    char buf[128];
    read_all(over, buf, sizeof(buf), 2000);
    assert_string_equal(buf, "error: too many clients\n\n");
    close(over);
    for (int i = 0; i < RF_OPS_MAX_CLIENTS - N; i++)
        close(extra[i]);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop_server();
}

static void test_client_that_never_reads(void **state)
{
    (void)state;
    start_server(getuid(), 64 << 10);
    int stuck = connect_ok(g_cfg.socket);
    int other = connect_ok(g_cfg.socket);
    /* The stuck client asks a lot and reads nothing; the server must neither
     * block on it nor hold more than the bound for it. */
    const char *cmd = "show stats json\n";
    size_t sent = 0;
    for (int i = 0; i < 4000; i++) {
        struct pollfd p = {.fd = stuck, .events = POLLOUT};
        if (poll(&p, 1, 1000) != 1)
            break;
        ssize_t n = send(stuck, cmd, strlen(cmd), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            break; /* disconnected: what we expect at some point */
        sent += (size_t)n;
        if (i % 200 == 0) { /* meanwhile others are served */
            rf_json *j = ask_json(other, "show info json");
            rf_json_free(j);
        }
    }
    assert_true(sent > 0);
    /* It was disconnected and counted. */
    rf_json *j = NULL;
    double dropped = 0;
    for (int tries = 0; tries < 100 && dropped < 1; tries++) {
        j = ask_json(other, "show info json");
        dropped = rf_json_num(rf_json_get(j, "info"), "ops_clients_dropped_slow", 0);
        rf_json_free(j);
        if (dropped < 1) {
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(dropped == 1);
    /* the stuck client sees EOF after what was buffered for it */
    char *buf = malloc(1 << 20);
    size_t total = 0;
    for (;;) {
        struct pollfd p = {.fd = stuck, .events = POLLIN};
        if (poll(&p, 1, 3000) != 1)
            fail_msg("the stuck client was not closed");
        ssize_t n = recv(stuck, buf, 1 << 20, 0);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    free(buf);
    assert_true(total > 0);
    close(stuck);
    close(other);
    stop_server();
}

/* ---- privilege levels ------------------------------------------------------------ */

static void admin_commands_work(int fd)
{
    atomic_store(&g_reload_fails, false);
    char *r = ask(fd, "set log level warn");
    assert_string_equal(r, "ok: log level warn\n");
    free(r);
    r = ask(fd, "set log level info");
    free(r);
    r = ask(fd, "clear counters");
    assert_string_equal(r, "ok: counters cleared\n");
    free(r);
    int before = atomic_load(&g_reloads);
    r = ask(fd, "reload");
    assert_string_equal(r, "ok: reload applied from test.yaml\n");
    free(r);
    atomic_store(&g_reload_fails, true);
    r = ask(fd, "reload");
    assert_non_null(strstr(r, "error: reload refused, the running configuration stays"));
    free(r);
    atomic_store(&g_reload_fails, false);
    assert_int_equal(atomic_load(&g_reloads), before + 2);
}

static void test_admin_socket(void **state)
{
    (void)state;
    /* owner uid deliberately not ours: only the admin socket grants admin */
    start_server(getuid() + 4242, 1 << 20);
    struct stat st;
    assert_int_equal(stat(g_cfg.socket, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(stat(g_cfg.admin_socket, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    int ops = connect_ok(g_cfg.socket);
    static const char *const admin_cmds[] = {"reload", "shutdown", "set log level debug",
                                             "clear counters"};
    for (size_t i = 0; i < 4; i++) {
        char *r = ask(ops, admin_cmds[i]);
        assert_true(!strncmp(r, "error: permission denied", 24));
        free(r);
    }
    assert_int_equal(atomic_load(&g_reloads), 0);
    assert_int_equal(atomic_load(&g_shutdowns), 0);
    int adm = connect_ok(g_cfg.admin_socket);
    admin_commands_work(adm);
    /* shutdown: replied, then the hook runs, then the connection closes */
    char *r = ask(adm, "shutdown");
    assert_string_equal(r, "ok: draining and stopping\n");
    free(r);
    char buf[16];
    assert_int_equal(read_all(adm, buf, sizeof(buf), 2000), 0);
    assert_int_equal(atomic_load(&g_shutdowns), 1);
    close(adm);
    close(ops);
    stop_server();
}

static void test_owner_uid_on_ops_socket(void **state)
{
    (void)state;
    /* SO_PEERCRED says we are the owner: admin commands pass on the ops socket */
    start_server(getuid(), 1 << 20);
    int ops = connect_ok(g_cfg.socket);
    admin_commands_work(ops);
    close(ops);
    stop_server();
}

/* clear counters is a reader-side baseline: the views count from zero, the
 * writers and /metrics keep their values. */
static void test_clear_counters(void **state)
{
    (void)state;
    start_server(getuid(), 1 << 20);
    int adm = connect_ok(g_cfg.admin_socket);
    free(ask(adm, "clear counters"));
    /* this thread is the histogram's single writer; the server only reads */
    for (int i = 0; i < 10; i++)
        rf_hist_record(g_hist, 5000000);
    rf_json *j = ask_json(adm, "show latency json");
    assert_true(rf_json_num(rf_json_get(j, "latency")->child, "count", 0) == 10);
    assert_true(rf_json_num(rf_json_get(j, "latency")->child, "max_us", 0) <= 5000);
    rf_json_free(j);
    free(ask(adm, "clear counters"));
    j = ask_json(adm, "show latency json");
    assert_true(rf_json_num(rf_json_get(j, "latency")->child, "count", 0) == 0);
    rf_json_free(j);
    assert_int_equal(rf_stats_load(&g_hist->count), 1010); /* the writer's value is untouched */
    int status;
    char *body = http_get(rf_ops_server_prometheus_port(g_srv),
                          "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &status);
    assert_non_null(strstr(body, "test_critical_path_seconds_count{path=\"critical\"} 1010\n"));
    free(body);
    close(adm);
    stop_server();
}

/* ---- sockets: stale, live, not a socket -------------------------------------------- */

static void test_stale_and_live_sockets(void **state)
{
    (void)state;
    rf_ops_config_defaults(&g_cfg, g_dir);
    /* a stale socket: bound by a process that went away (nobody listens) */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g_cfg.socket);
    unlink(g_cfg.socket);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    start_server(getuid(), 1 << 20);
    int c = connect_ok(g_cfg.socket);
    free(ask(c, "help"));
    close(c);
    /* a live one: a second server must refuse, and leave the first intact */
    rf_ops_server *second = NULL;
    rf_ops_hooks hooks = {.owner_uid = getuid()};
    rf_err err = {0};
    rf_ops_config cfg2 = g_cfg;
    cfg2.prometheus_enabled = false;
    assert_int_equal(rf_ops_server_start(&cfg2, &hooks, &second, &err), -EADDRINUSE);
    assert_non_null(strstr(err.msg, "another ringflowd is answering"));
    c = connect_ok(g_cfg.socket);
    free(ask(c, "help"));
    close(c);
    stop_server();
    /* stopping removed the socket files */
    struct stat st;
    assert_int_equal(lstat(g_cfg.socket, &st), -1);
    assert_int_equal(lstat(g_cfg.admin_socket, &st), -1);
    /* a regular file where the socket goes is never deleted */
    FILE *f = fopen(g_cfg.socket, "w");
    fputs("precious", f);
    fclose(f);
    assert_int_equal(rf_ops_server_start(&cfg2, &hooks, &second, &err), -EEXIST);
    assert_int_equal(lstat(g_cfg.socket, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    unlink(g_cfg.socket);
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static void test_prometheus(void **state)
{
    (void)state;
    start_server(getuid(), 1 << 20);
    uint16_t port = rf_ops_server_prometheus_port(g_srv);
    assert_true(port > 0);
    /* an idle HTTP client does not hold up the others */
    int idle = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(idle, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(idle, "GET /met", 8, 0), 8);

    int status;
    char *body = http_get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &status);
    assert_int_equal(status, 200);
    prom_doc doc;
    char err[256] = "";
    int rc = prom_parse(body, &doc, err, sizeof(err));
    if (rc < 0)
        print_message("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(prom_type(&doc, "test_parsed_events_total"), "counter");
    assert_string_equal(prom_type(&doc, "test_critical_path_seconds"), "histogram");
    assert_string_equal(prom_type(&doc, "ringflow_ops_clients"), "gauge");
    assert_string_equal(prom_type(&doc, "ringflow_component_up"), "gauge");
    assert_string_equal(prom_type(&doc, "process_resident_memory_bytes"), "gauge");
    double v;
    assert_true(prom_value(&doc, "test_parsed_events_total", "worker=\"0\"", &v) && v == 100);
    assert_true(
        prom_value(&doc, "test_critical_path_seconds_bucket", "path=\"critical\",le=\"+Inf\"", &v));
    assert_true(prom_value(&doc, "ringflow_component_up", "kind=\"stats\",name=\"ops\"", &v) &&
                v == 1);
    prom_free(&doc);
    free(body);

    body = http_get(port, "GET /health HTTP/1.0\r\n\r\n", &status);
    assert_int_equal(status, 200);
    assert_string_equal(body, "ok\n");
    free(body);
    body = http_get(port, "GET /nope HTTP/1.1\r\n\r\n", &status);
    assert_int_equal(status, 404);
    free(body);
    body = http_get(port, "POST /metrics HTTP/1.1\r\n\r\n", &status);
    assert_int_equal(status, 405);
    free(body);
    body = http_get(port, "garbage\r\n\r\n", &status);
    assert_int_equal(status, 400);
    free(body);
    /* a request head over the bound gets 431 */
    char *big = malloc(RF_OPS_HTTP_REQUEST_MAX + 100);
    snprintf(big, RF_OPS_HTTP_REQUEST_MAX + 100, "GET /metrics HTTP/1.1\r\nX: ");
    size_t l = strlen(big);
    memset(big + l, 'a', RF_OPS_HTTP_REQUEST_MAX + 50 - l);
    big[RF_OPS_HTTP_REQUEST_MAX + 50] = '\0';
    body = http_get(port, big, &status);
    assert_int_equal(status, 431);
    free(body);
    free(big);
    close(idle);
    stop_server();
}

/* An HTTP client that never finishes its request is closed after the
 * timeout, and counted. */
static void test_http_timeout(void **state)
{
    (void)state;
    rf_ops_config_defaults(&g_cfg, g_dir);
    start_server_cfg(getuid(), 1 << 20, 200000000ull);
    uint16_t port = rf_ops_server_prometheus_port(g_srv);
    int idle = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(idle, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(idle, "GET /metrics HTTP/1.1\r\n", 23, 0), 23);
    char buf[64];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(read_all(idle, buf, sizeof(buf), 3000), 0); /* closed, no reply */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(waited >= 0.15 && waited < 2.0);
    close(idle);
    int status;
    char *body = http_get(port, "GET /metrics HTTP/1.1\r\n\r\n", &status);
    assert_non_null(strstr(body, "ringflow_http_timeouts_total 1\n"));
    free(body);
    stop_server();
}

static double secs_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static int http_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* An HTTP client that sends nothing is closed after the short idle
 * timeout, long before the exchange's timeout, and counted. */
static void test_http_idle_client_cut(void **state)
{
    (void)state;
    rf_ops_config_defaults(&g_cfg, g_dir);
    snprintf(g_cfg.prometheus_listen, sizeof(g_cfg.prometheus_listen), "127.0.0.1:0");
    g_cfg.http_idle_timeout_ns = 300000000ull; /* the exchange's timeout stays 10 s */
    rf_ops_hooks hooks = {.reload = hook_reload, .shutdown = hook_shutdown, .owner_uid = getuid()};
    rf_err err = {0};
    assert_int_equal(rf_ops_server_start(&g_cfg, &hooks, &g_srv, &err), 0);
    atomic_store(&g_run, true);
    assert_int_equal(pthread_create(&g_thread, NULL, server_main, NULL), 0);
    uint16_t port = rf_ops_server_prometheus_port(g_srv);
    int idle = http_connect(port);
    assert_true(idle >= 0);
    char buf[64];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(read_all(idle, buf, sizeof(buf), 5000), 0); /* closed, no reply */
    double waited = secs_since(&t0);
    assert_true(waited >= 0.25 && waited < 3.0);
    close(idle);
    int status;
    char *body = http_get(port, "GET /metrics HTTP/1.1\r\n\r\n", &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "ringflow_http_idle_closed_total 1\n"));
    free(body);
    stop_server();
}

/* Stats and admin socket clients that go quiet are closed after
 * stats.client_idle_timeout; one that keeps asking is not. */
static void test_idle_unix_clients_closed(void **state)
{
    (void)state;
    rf_ops_config_defaults(&g_cfg, g_dir);
    snprintf(g_cfg.prometheus_listen, sizeof(g_cfg.prometheus_listen), "127.0.0.1:0");
    g_cfg.client_idle_timeout_ns = 400000000ull;
    rf_ops_hooks hooks = {.reload = hook_reload, .shutdown = hook_shutdown, .owner_uid = getuid()};
    rf_err err = {0};
    assert_int_equal(rf_ops_server_start(&g_cfg, &hooks, &g_srv, &err), 0);
    atomic_store(&g_run, true);
    assert_int_equal(pthread_create(&g_thread, NULL, server_main, NULL), 0);
    int quiet = connect_ok(g_cfg.socket);
    int quiet_admin = connect_ok(g_cfg.admin_socket);
    int busy = connect_ok(g_cfg.socket);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (secs_since(&t0) < 1.2) {
        free(ask(busy, "show info"));
        struct timespec d = {0, 100 * 1000 * 1000};
        nanosleep(&d, NULL); /* the pace of a live client, not a wait for a result */
    }
    char buf[64];
    assert_int_equal(read_all(quiet, buf, sizeof(buf), 3000), 0);
    assert_int_equal(read_all(quiet_admin, buf, sizeof(buf), 3000), 0);
    free(ask(busy, "show info")); /* still served */
    rf_ops_server_stats st;
    rf_ops_server_stats_read(g_srv, &st);
    assert_int_equal(st.idle_closed, 2);
    close(quiet);
    close(quiet_admin);
    close(busy);
    stop_server();
}

/* The admin socket always takes its owner: with its budget full, the
 * newcomer gets the slot of the client quiet longest, which is told why. */
static void test_admin_socket_always_takes_its_owner(void **state)
{
    (void)state;
    rf_ops_config_defaults(&g_cfg, g_dir);
    start_server(getuid(), 1 << 20);
    int fds[RF_OPS_MAX_ADMIN_CLIENTS];
    for (int i = 0; i < RF_OPS_MAX_ADMIN_CLIENTS; i++) {
        fds[i] = connect_ok(g_cfg.admin_socket);
        if (i > 0)
            free(ask(fds[i], "show info")); /* all but the first have spoken since */
    }
    int late = connect_ok(g_cfg.admin_socket);
    char *r = ask(late, "show info");
    assert_int_equal(strncmp(r, "# info", 6), 0);
    free(r);
    char buf[128];
    read_all(fds[0], buf, sizeof(buf), 3000);
    assert_string_equal(buf, "error: closed to make room for another client\n\n");
    rf_ops_server_stats st;
    rf_ops_server_stats_read(g_srv, &st);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.refused_full, 0);
    close(late);
    for (int i = 0; i < RF_OPS_MAX_ADMIN_CLIENTS; i++)
        close(fds[i]);
    stop_server();
}

/* The flood the review found: as an unprivileged user, hundreds of idle
 * HTTP connections, reopened as fast as they are cut. Root's stats socket,
 * admin socket and /health must all still answer every time: each socket
 * has its own budget, and the HTTP one gives a fresh request the slot of
 * a connection that has sent nothing. */
static void test_unprivileged_flood_locks_nobody_out(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* needs root to become nobody */
    rf_ops_config_defaults(&g_cfg, g_dir);
    start_server(getuid(), 1 << 20);
    uint16_t port = rf_ops_server_prometheus_port(g_srv);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlives the test */
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(3);
        enum {
            FLOOD = 200
        };
        int fds[FLOOD];
        for (int i = 0; i < FLOOD; i++)
            fds[i] = http_connect(port);
        for (;;) {
            struct pollfd p[FLOOD];
            for (int i = 0; i < FLOOD; i++) {
                if (fds[i] < 0)
                    fds[i] = http_connect(port);
                p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN | POLLRDHUP};
            }
            if (poll(p, FLOOD, 50) <= 0)
                continue;
            for (int i = 0; i < FLOOD; i++) {
                char c;
                if (fds[i] >= 0 && p[i].revents && recv(fds[i], &c, 1, MSG_DONTWAIT) <= 0) {
                    close(fds[i]);
                    fds[i] = http_connect(port); /* cut: straight back in */
                }
            }
        }
    }
    g_flood = child;
    /* Flooding: the HTTP slots are all taken. */
    rf_ops_server_stats st;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        rf_ops_server_stats_read(g_srv, &st);
    } while (st.clients < 24 && secs_since(&t0) < 10 && usleep(10000) == 0);
    assert_true(st.clients >= 24);
    /* Past the HTTP idle timeout (1 s), so the flood is also cut and back. */
    struct timespec t_rounds;
    clock_gettime(CLOCK_MONOTONIC, &t_rounds);
    for (int round = 0; round < 20 || secs_since(&t_rounds) < 2.5; round++) {
        struct timespec pace = {0, 50 * 1000 * 1000};
        nanosleep(&pace, NULL); /* an operator's pace, not a wait for a result */
        int fd = connect_ok(g_cfg.socket);
        char *r = ask(fd, "show info");
        if (strncmp(r, "# info", 6) != 0)
            fail_msg("round %d: stats socket answered: %s", round, r);
        free(r);
        close(fd);
        fd = connect_ok(g_cfg.admin_socket);
        r = ask(fd, "show info");
        if (strncmp(r, "# info", 6) != 0)
            fail_msg("round %d: admin socket answered: %s", round, r);
        free(r);
        close(fd);
        int status = 0;
        char *body = http_get(port, "GET /health HTTP/1.1\r\n\r\n", &status);
        assert_int_equal(status, 200);
        free(body);
    }
    rf_ops_server_stats_read(g_srv, &st);
    print_message("flood: %lu connections, %lu evicted, %lu refused, %lu closed idle\n",
                  (unsigned long)st.connections, (unsigned long)st.evicted,
                  (unsigned long)st.refused_full, (unsigned long)st.http_idle_closed);
    assert_true(st.evicted + st.refused_full > 0); /* the budget was contested */
    assert_true(st.http_idle_closed > 0);          /* idle flooders were cut */
    kill(child, SIGKILL);
    int wst;
    waitpid(child, &wst, 0);
    g_flood = 0;
    assert_true(WIFSIGNALED(wst)); /* it flooded until killed (exit 3: no setuid) */
    stop_server();
}

static void test_health_failing_component(void **state)
{
    (void)state;
    /* Components are registered before the server thread runs (the registry
     * is the control thread's) and restored to running at the end. */
    static rf_component *sink;
    if (!sink)
        sink = rf_component_register("sink", "sink-a");
    assert_non_null(sink);
    rf_component_transition(sink, RF_STATE_CONFIGURING, NULL);
    assert_int_equal(rf_component_transition(sink, RF_STATE_FAILED, "disk full"), 0);
    start_server(getuid(), 1 << 20);
    int status;
    char *body =
        http_get(rf_ops_server_prometheus_port(g_srv), "GET /health HTTP/1.1\r\n\r\n", &status);
    assert_int_equal(status, 503);
    assert_string_equal(body, "sink sink-a: failed: disk full\n");
    free(body);
    body = http_get(rf_ops_server_prometheus_port(g_srv), "GET /metrics HTTP/1.1\r\n\r\n", &status);
    assert_non_null(strstr(body, "ringflow_component_up{kind=\"sink\",name=\"sink-a\"} 0\n"));
    assert_non_null(strstr(body, "ringflow_component_state{kind=\"sink\",name=\"sink-a\"} 5\n"));
    free(body);
    stop_server();
    rf_component_transition(sink, RF_STATE_CONFIGURING, NULL);
    rf_component_transition(sink, RF_STATE_RUNNING, NULL);
}

/* ---- configuration ----------------------------------------------------------------------- */

static void test_config(void **state)
{
    (void)state;
    rf_ops_config c;
    rf_err err = {0};
    rf_cfg_doc *doc = NULL;
    const char *yaml = "stats:\n  socket: /tmp/a.sock\n  prometheus:\n    enabled: false\n";
    assert_int_equal(rf_cfg_load_string(yaml, strlen(yaml), "t.yaml", &doc, &err), 0);
    assert_int_equal(rf_ops_config_parse(rf_cfg_root(doc), "/run/x", &c, &err), 0);
    assert_string_equal(c.socket, "/tmp/a.sock");
    assert_string_equal(c.admin_socket, "/run/x/ringflow-admin.sock");
    assert_false(c.prometheus_enabled);
    assert_string_equal(c.prometheus_listen, "127.0.0.1:9273");
    rf_cfg_free(doc);

    char long_yaml[512];
    snprintf(long_yaml, sizeof(long_yaml), "stats:\n  admin_socket: /tmp/%0110d.sock\n", 0);
    assert_int_equal(rf_cfg_load_string(long_yaml, strlen(long_yaml), "t.yaml", &doc, &err), 0);
    assert_int_equal(rf_ops_config_parse(rf_cfg_root(doc), "/run/x", &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "t.yaml:2:17: stats.admin_socket: socket path is 120 bytes"));
    rf_cfg_free(doc);

    /* the default under a run_dir too long for sun_path says what to change */
    char run_dir[200];
    snprintf(run_dir, sizeof(run_dir), "/tmp/%0150d", 0);
    yaml = "stats: {}\n";
    assert_int_equal(rf_cfg_load_string(yaml, strlen(yaml), "t.yaml", &doc, &err), 0);
    assert_int_equal(rf_ops_config_parse(rf_cfg_root(doc), run_dir, &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "set stats.socket or a shorter engine.run_dir"));
    rf_cfg_free(doc);

    yaml = "stats:\n  prometheus:\n    listen: 0.0.0.0:70000\n";
    assert_int_equal(rf_cfg_load_string(yaml, strlen(yaml), "t.yaml", &doc, &err), 0);
    assert_int_equal(rf_ops_config_parse(rf_cfg_root(doc), "/run", &c, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "stats.prometheus.listen: expected IPV4:PORT"));
    rf_cfg_free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_command, stop_if_running),
        cmocka_unit_test_teardown(test_bad_commands, stop_if_running),
        cmocka_unit_test_teardown(test_partial_lines, stop_if_running),
        cmocka_unit_test_teardown(test_many_clients, stop_if_running),
        cmocka_unit_test_teardown(test_client_that_never_reads, stop_if_running),
        cmocka_unit_test_teardown(test_admin_socket, stop_if_running),
        cmocka_unit_test_teardown(test_owner_uid_on_ops_socket, stop_if_running),
        cmocka_unit_test_teardown(test_clear_counters, stop_if_running),
        cmocka_unit_test_teardown(test_stale_and_live_sockets, stop_if_running),
        cmocka_unit_test_teardown(test_prometheus, stop_if_running),
        cmocka_unit_test_teardown(test_http_timeout, stop_if_running),
        cmocka_unit_test_teardown(test_http_idle_client_cut, stop_if_running),
        cmocka_unit_test_teardown(test_idle_unix_clients_closed, stop_if_running),
        cmocka_unit_test_teardown(test_admin_socket_always_takes_its_owner, stop_if_running),
        cmocka_unit_test_teardown(test_unprivileged_flood_locks_nobody_out, stop_if_running),
        cmocka_unit_test_teardown(test_health_failing_component, stop_if_running),
        cmocka_unit_test_teardown(test_config, stop_if_running),
    };
    if (getenv("RF_TEST_FILTER")) /* one test by name, for a quick run by hand */
        cmocka_set_test_filter(getenv("RF_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
