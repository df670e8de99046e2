/* Safe defaults: engine.user / engine.group. Started as root, ringflowd binds
 * everything (a listener on a port below 1024 among them, and a receive
 * buffer past net.core.rmem_max), then runs as nobody:nogroup: every thread in
 * /proc/PID/task holds the user's uids and gids and no capability, data still
 * goes in and is stored, reloads work (and one that needs what the user may
 * not do is refused clearly), and it exits 0 having removed its sockets.
 * Unknown names are configuration errors with FILE:LINE:COL, and a directory
 * the user could not use stops the start with a message naming it.
 *
 * The tests that start the daemon as root skip when not run as root; the
 * whole test then exits 77 (SKIP) if nothing else failed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/reliability/rel_util.h"

#define NOBODY 65534u
#define NOGROUP 65534u

static bool g_root;

/* n lines of measurement m over TCP to port, then closed. */
static void send_lines(int port, const char *m, int n, int first)
{
    int fd = rel_tcp_to(port);
    assert_true(fd >= 0);
    static char buf[1 << 20];
    size_t len = 0;
    const int64_t t0 = rel_now_ns() - 60 * 1000000000LL;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s,host=h%d v=%di %lld\n", m, i % 20,
                                first + i, (long long)(t0 + first + i));
    assert_true(rel_send_all(fd, buf, len));
    close(fd);
}

/* A free TCP port below 1024 on loopback (only root may bind it). */
static int privileged_port(void)
{
    for (int i = 0; i < 300; i++) {
        int port = 700 + (int)((getpid() + i) % 300);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (ok)
            return port;
    }
    return -1;
}

/* One "Key:\tn1\tn2..." line of a status file, `want` numbers in `base`. */
static int status_nums(const char *text, const char *key, int base, unsigned long long *v, int want)
{
    char k[32];
    snprintf(k, sizeof(k), "\n%s:", key);
    const char *s = strstr(text, k);
    if (!s)
        return -1;
    s += strlen(k);
    for (int i = 0; i < want; i++) {
        char *end;
        v[i] = strtoull(s, &end, base);
        if (end == s)
            return -1;
        s = end;
    }
    return 0;
}

/* Every thread of pid, read from /proc/PID/task/TID/status: all uids NOBODY,
 * all gids NOGROUP, only NOGROUP as supplementary group, no capability in any
 * set, no_new_privs. Returns the number of threads. */
static int check_every_thread(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int threads = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[400];
        snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
        char text[8192];
        snprintf(text, sizeof(text), "\n%s", tproc_read_file(path));
        if (strlen(text) < 8)
            continue; /* the thread ended meanwhile */
        char name[64] = "?";
        const char *nm = strstr(text, "\nName:\t");
        if (nm)
            sscanf(nm + 7, "%63[^\n]", name);
        unsigned long long u[4], g[4], prm, eff, inh, amb, bnd, nnp;
        assert_int_equal(status_nums(text, "Uid", 10, u, 4), 0);
        assert_int_equal(status_nums(text, "Gid", 10, g, 4), 0);
        assert_int_equal(status_nums(text, "CapInh", 16, &inh, 1), 0);
        assert_int_equal(status_nums(text, "CapPrm", 16, &prm, 1), 0);
        assert_int_equal(status_nums(text, "CapEff", 16, &eff, 1), 0);
        assert_int_equal(status_nums(text, "CapBnd", 16, &bnd, 1), 0);
        assert_int_equal(status_nums(text, "CapAmb", 16, &amb, 1), 0);
        assert_int_equal(status_nums(text, "NoNewPrivs", 10, &nnp, 1), 0);
        fprintf(stderr,
                "thread %s (%s): uid %llu/%llu/%llu/%llu gid %llu/%llu/%llu/%llu "
                "cap inh %llx prm %llx eff %llx bnd %llx amb %llx nnp %llu\n",
                de->d_name, name, u[0], u[1], u[2], u[3], g[0], g[1], g[2], g[3], inh, prm, eff,
                bnd, amb, nnp);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(u[i], NOBODY);
            assert_int_equal(g[i], NOGROUP);
        }
        assert_int_equal(inh, 0);
        assert_int_equal(prm, 0);
        assert_int_equal(eff, 0);
        assert_int_equal(bnd, 0);
        assert_int_equal(amb, 0);
        assert_int_equal(nnp, 1);
        const char *groups = strstr(text, "\nGroups:");
        assert_non_null(groups);
        unsigned long long g0 = 0;
        char rest[64] = "";
        assert_true(sscanf(groups + 8, "%llu%63[^\n]", &g0, rest) >= 1);
        assert_int_equal(g0, NOGROUP);
        for (char *c = rest; *c; c++)
            assert_true(*c == ' ' || *c == '\t'); /* no other group */
        threads++;
    }
    closedir(d);
    return threads;
}

static void expect_owned_by_nobody(const char *rel)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", tproc_dir(), rel);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if (st.st_uid != NOBODY || st.st_gid != NOGROUP)
        fprintf(stderr, "%s: owner %u:%u\n", path, (unsigned)st.st_uid, (unsigned)st.st_gid);
    assert_int_equal(st.st_uid, NOBODY);
    assert_int_equal(st.st_gid, NOGROUP);
}

static bool exists(const char *rel)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", tproc_dir(), rel);
    struct stat st;
    return lstat(path, &st) == 0;
}

static size_t count_lines(const char *rel)
{
    size_t n = 0;
    for (const char *c = tproc_read_dir_file(rel); *c; c++)
        n += *c == '\n';
    return n;
}

/* ---- configuration errors (any user) --------------------------------------- */

static void expect_config_error(const char *name, const char *yaml, const char *message)
{
    tproc_write_file(name, yaml);
    proc p;
    assert_int_equal(tproc_run((const char *[]){"--check-config", name, NULL}, &p), 3);
    const char *err = tproc_read_file(p.err_path);
    if (!strstr(err, message))
        fprintf(stderr, "expected '%s' in:\n%s\n", message, err);
    assert_non_null(strstr(err, message));
}

static void test_names_are_checked_with_their_place(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-priv-cfg");
    expect_config_error("bad-user.yaml", "engine:\n  user: rf-no-such-user\n",
                        "bad-user.yaml:2:9: engine.user: unknown user 'rf-no-such-user'");
    expect_config_error("bad-group.yaml", "engine:\n  user: nobody\n  group: rf-no-such-group\n",
                        "bad-group.yaml:3:10: engine.group: unknown group 'rf-no-such-group'");
    expect_config_error("group-only.yaml", "engine:\n  group: nogroup\n",
                        "group-only.yaml:2:10: engine.group: 'nogroup' without engine.user");
    expect_config_error("root.yaml", "engine:\n  user: root\n",
                        "root.yaml:2:9: engine.user: 'root' is root (uid 0)");
    expect_config_error("no-entry.yaml", "engine:\n  user: 4000000\n",
                        "no-entry.yaml:2:9: engine.user: uid 4000000 has no passwd entry");
    expect_config_error("dpdk.yaml",
                        "engine:\n  user: nobody\n"
                        "dpdk:\n  enabled: true\n"
                        "  ports:\n    - {name: cap0, vdev: \"net_pcap0,rx_pcap=x.pcap\"}\n",
                        "dpdk.yaml:2:9: engine.user: cannot be combined with dpdk.enabled");

    /* Numeric ids are taken as they are. */
    tproc_write_file("numeric.yaml", "engine:\n  user: 65534\n  group: 65534\n");
    proc p;
    assert_int_equal(tproc_run((const char *[]){"--check-config", "numeric.yaml", NULL}, &p), 0);

    /* Running, not only checking: the same error, before anything exists. */
    assert_int_equal(tproc_run((const char *[]){"--config", "bad-user.yaml", NULL}, &p), 3);
    assert_non_null(strstr(tproc_read_file(p.err_path), "bad-user.yaml:2:9: engine.user"));
    assert_false(exists("run"));
    assert_false(exists("data"));
}

/* ---- Prometheus on a non-loopback address is logged (any user) ------------- */

static void test_prometheus_elsewhere_than_loopback_warns(void **state)
{
    (void)state;
    tproc_dir_init("rf-rel-priv-prom");
    const int port = tproc_port_base() + 7;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n"
             "  prometheus: {listen: 0.0.0.0:%d}\n"
             "storage: {enabled: false}\n",
             port, port + 1);
    proc d;
    assert_true(rel_start_config(&d, "prom.yaml", cfg, 20000));
    char needle[128];
    snprintf(needle, sizeof(needle), "prometheus: bound to non-loopback address 0.0.0.0:%d",
             port + 1);
    assert_non_null(strstr(tproc_read_file(d.err_path), needle));
    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 30000), 0);
}

/* ---- root: refused when the user could not do its work --------------------- */

static void test_refuses_what_the_user_cannot_use(void **state)
{
    (void)state;
    if (!g_root)
        skip();
    /* mkdtemp made the directory 0700 root: nobody cannot even reach the
     * configuration file in it. */
    const char *dir = tproc_dir_init("rf-rel-priv-deny");
    const int port = tproc_port_base() + 5;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine:\n  user: nobody\n  data_dir: %s\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n  prometheus: {enabled: false}\n",
             "./data", port);
    tproc_write_file("deny.yaml", cfg);
    proc p;
    assert_int_equal(tproc_run((const char *[]){"--config", "deny.yaml", NULL}, &p), 1);
    const char *err = tproc_read_file(p.err_path);
    fprintf(stderr, "%s", err);
    assert_non_null(strstr(err, "engine.user: user nobody cannot read the configuration file "
                                "(a reload reads it again) deny.yaml: Permission denied"));
    assert_false(exists("run/ringflow.sock"));

    /* Reachable now, but data_dir existed already, owned by root. */
    assert_int_equal(chmod(dir, 0755), 0);
    char path[600];
    snprintf(path, sizeof(path), "%s/rootdata", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(cfg, sizeof(cfg),
             "engine:\n  user: nobody\n  data_dir: ./rootdata\n"
             "listeners:\n"
             "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
             "stats:\n  prometheus: {enabled: false}\n",
             port);
    tproc_write_file("deny.yaml", cfg);
    assert_int_equal(tproc_run((const char *[]){"--config", "deny.yaml", NULL}, &p), 1);
    err = tproc_read_file(p.err_path);
    fprintf(stderr, "%s", err);
    assert_non_null(strstr(err, "engine.user: user nobody cannot create files in engine.data_dir "
                                "./rootdata: Permission denied (owner uid 0 gid 0, mode 0755)"));
    assert_false(exists("run/ringflow.sock"));
}

/* ---- root: the whole run as nobody ----------------------------------------- */

static const char *config_text(int port, int low, bool copy_sink, const char *copy_path,
                               int extra_listener)
{
    static char cfg[4096];
    size_t n = (size_t)snprintf(
        cfg, sizeof(cfg),
        "engine:\n"
        "  user: nobody\n"
        "  group: nogroup\n"
        "  workers: 2\n"
        "  idle: {sleep: 5ms}\n"
        "listeners:\n"
        "  - {name: tcp, transport: tcp, protocol: influx_line, port: %d}\n"
        "  - {name: udp, transport: udp, protocol: influx_line, port: %d, rcvbuf: 4MiB}\n"
        "  - {name: low, transport: tcp, protocol: influx_line, port: %d}\n",
        port, port + 1, low);
    if (extra_listener)
        n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
                              "  - {name: extra, transport: tcp, protocol: influx_line, "
                              "port: %d}\n",
                              extra_listener);
    n += (size_t)snprintf(cfg + n, sizeof(cfg) - n,
                          "stats:\n"
                          "  prometheus: {listen: 127.0.0.1:%d}\n"
                          "storage: {block_points: 64}\n",
                          port + 2);
    if (copy_sink)
        snprintf(cfg + n, sizeof(cfg) - n,
                 "pipeline:\n"
                 "  batch: {max_events: 100, interval: 100ms}\n"
                 "  sinks:\n"
                 "    - {name: store, type: store}\n"
                 "    - {name: copy, type: json, path: %s}\n"
                 "  routes:\n"
                 "    - {name: data, subject: \"telemetry.>\", sinks: [store, copy]}\n",
                 copy_path);
    return cfg;
}

static void test_runs_as_nobody(void **state)
{
    (void)state;
    if (!g_root)
        skip();
    const char *dir = tproc_dir_init("rf-rel-priv");
    assert_int_equal(chmod(dir, 0755), 0); /* nobody must reach its files */
    const int port = tproc_port_base();
    const int low = privileged_port();
    assert_true(low > 0);
    proc d;
    assert_true(rel_start_config(&d, "priv.yaml", config_text(port, low, false, NULL, 0), 20000));
    const char *log = tproc_read_file(d.err_path);
    assert_non_null(strstr(log, "running as user nobody (uid 65534), group nogroup (gid 65534), "
                                "groups 65534; no capabilities on any of its"));
    assert_null(strstr(log, "running as root"));
    /* CAP_NET_ADMIN was held while binding: the 4 MiB receive buffer was
     * granted past net.core.rmem_max. */
    assert_null(strstr(log, "SO_RCVBUF granted"));

    /* Every thread: control, workers, the store's I/O thread. */
    int threads = check_every_thread(d.pid);
    fprintf(stderr, "%d threads checked\n", threads);
    assert_true(threads >= 4);

    /* Data in, on the ordinary port and on the one below 1024. */
    send_lines(port, "cpu", 3000, 0);
    send_lines(low, "low", 500, 0);

    /* Prometheus answers. */
    char resp[512];
    assert_int_equal(rel_http_get(port + 2, "/health", resp, sizeof(resp)), 200);

    /* Reload 1 (SIGHUP): the pipeline gains a json sink, whose file the
     * user creates. */
    tproc_write_file("priv.yaml", config_text(port, low, true, "./data/copy.jsonl", 0));
    kill(d.pid, SIGHUP);
    assert_true(tproc_wait_log(&d, "msg=\"reload applied from priv.yaml\"", 20000));
    expect_owned_by_nobody("data/copy.jsonl");

    /* Reload 2 (admin socket): a sink in a directory only root may write.
     * Refused, said why, the running configuration kept. */
    char path[600];
    snprintf(path, sizeof(path), "%s/private", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    tproc_write_file("priv.yaml", config_text(port, low, true, "./private/copy.jsonl", 0));
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' admin reload 2>&1", getenv("RINGFLOW"));
    int st;
    char *out = rel_sh(cmd, &st);
    fprintf(stderr, "reload 2: %s", out);
    assert_int_not_equal(st, 0);
    assert_non_null(strstr(out, "Permission denied"));
    assert_non_null(strstr(out, "ringflowd runs as user nobody, group nogroup"));
    free(out);

    /* Reload 3: a new listener on a port below 1024 cannot be bound by
     * nobody. Listeners change live, bound before anything is applied, so
     * the whole reload is refused, saying which port and why. */
    const int low2 = privileged_port();
    assert_true(low2 > 0 && low2 != low);
    tproc_write_file("priv.yaml", config_text(port, low, true, "./data/copy.jsonl", low2));
    out = rel_sh(cmd, &st);
    fprintf(stderr, "reload 3: %s", out);
    assert_int_not_equal(st, 0);
    assert_non_null(strstr(out, "listeners:"));
    assert_non_null(strstr(out, "Permission denied"));
    free(out);

    /* Reload 4: the same without that listener: applied (the copy sink). */
    tproc_write_file("priv.yaml", config_text(port, low, true, "./data/copy.jsonl", 0));
    out = rel_sh(cmd, &st);
    fprintf(stderr, "reload 4: %s", out);
    assert_int_equal(st, 0);
    free(out);

    /* Still running, still nobody everywhere, data still flowing. */
    assert_true(check_every_thread(d.pid) >= 4);
    send_lines(port, "cpu", 2000, 3000);
    rf_json *sj = rel_show_settled(20000);
    assert_non_null(sj);
    assert_int_equal(rel_sum(sj, "listeners", "lines_ok"), 5500);
    rf_json_free(sj);

    kill(d.pid, SIGTERM);
    assert_int_equal(tproc_wait_exit(&d, 60000), 0);
    /* The only errors of the run are the refused reloads 2 and 3. */
    log = tproc_read_file(d.err_path);
    const char *e1 = strstr(log, "level=error");
    assert_non_null(e1);
    assert_non_null(strstr(e1, "msg=\"reload failed: pipeline: sink copy"));
    const char *e2 = strstr(e1 + 1, "level=error");
    assert_non_null(e2);
    assert_non_null(strstr(e2, "msg=\"reload failed: listeners: listener extra"));
    assert_null(strstr(e2 + 1, "level=error"));
    /* The sockets were removed by nobody on the way out. */
    assert_false(exists("run/ringflow.sock"));
    assert_false(exists("run/ringflow-admin.sock"));
    /* What it created belongs to nobody, and holds every point. */
    expect_owned_by_nobody("data");
    expect_owned_by_nobody("run");
    expect_owned_by_nobody("data/store");
    expect_owned_by_nobody("data/store/LOCK");
    expect_owned_by_nobody("data/store/shard-00");
    assert_int_equal(rel_store_count("cpu"), 5000);
    assert_int_equal(rel_store_count("low"), 500);
    /* The sink added by reload 1 got what came after it. */
    assert_int_equal(count_lines("data/copy.jsonl"), 2000);
}

int main(void)
{
    g_root = geteuid() == 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_names_are_checked_with_their_place, rel_teardown),
        cmocka_unit_test_teardown(test_prometheus_elsewhere_than_loopback_warns, rel_teardown),
        cmocka_unit_test_teardown(test_refuses_what_the_user_cannot_use, rel_teardown),
        cmocka_unit_test_teardown(test_runs_as_nobody, rel_teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (failed == 0 && !g_root) {
        fprintf(stderr, "the tests that start ringflowd as root were skipped (not root)\n");
        return 77;
    }
    return failed;
}
