/* collectd 5.12's network plugin (Debian's collectd-core, not written here)
 * with SecurityLevel Sign and Encrypt -> ringflowd's collectd listener at
 * security_level sign with an auth file -> store -> `ringflow query`.
 *
 * Two collectd processes, so that each value reaches ringflowd once by one
 * way (collectd sends every value to every <Server>):
 *   "signer"     host signed-host: <Server> Sign with the right password,
 *                Sign with a wrong one, Sign as a user the file lacks, and
 *                a plain one (no security);
 *   "encryptor"  host encrypted-host: <Server> Encrypt with the right
 *                password and with a wrong one.
 * Asserted: the values of both hosts in the store exactly, once each, and
 * nothing else; each refusal counted under its reason in `ringflow stat
 * errors` (bad_signature, unknown_user, unsigned_packet, decrypt_failed).
 * Then the auth file changes (the signer's password is no longer the one in
 * the file) and a reload (SIGHUP) reads it: collectd's next values are
 * refused as bad_signature, the encryptor's still arrive. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client_util.h"

static const char *g_collectd;

typedef struct collectd {
    const char *name;
    pid_t pid;
    int fd;
    FILE *in;
} collectd;

/* Starts collectd `name` with the network <Server> blocks `servers`, and
 * connects to its unixsock. */
static void collectd_start(collectd *c, const char *name, const char *host, const char *servers)
{
    char conf[4096], path[512], sock[512];
    snprintf(conf, sizeof(conf),
             "Hostname \"%s\"\n"
             "FQDNLookup false\n"
             "Interval 1\n"
             "WriteThreads 1\n"
             "BaseDir \"%s\"\n"
             "PIDFile \"%s/%s.pid\"\n"
             "TypesDB \"/usr/share/collectd/types.db\"\n"
             "LoadPlugin logfile\n"
             "<Plugin logfile>\n  LogLevel info\n  File STDERR\n</Plugin>\n"
             "LoadPlugin unixsock\n"
             "<Plugin unixsock>\n  SocketFile \"%s/%s.sock\"\n  SocketPerms \"0600\"\n</Plugin>\n"
             "LoadPlugin network\n"
             "<Plugin network>\n%s</Plugin>\n",
             host, tproc_dir(), tproc_dir(), name, tproc_dir(), name, servers);
    snprintf(path, sizeof(path), "%s.conf", name);
    tproc_write_file(path, conf);
    snprintf(path, sizeof(path), "%s/%s.conf", tproc_dir(), name);
    c->name = name;
    c->pid = cu_spawn(name, (const char *[]){g_collectd, "-f", "-C", path, NULL});
    snprintf(sock, sizeof(sock), "%s/%s.sock", tproc_dir(), name);
    c->fd = cu_unixsock_connect(sock, 10000);
    if (c->fd < 0)
        fail_msg("collectd %s: the unixsock never came up; stderr:\n%s", name,
                 cu_output(name, "err"));
    c->in = fdopen(dup(c->fd), "r");
}

static void collectd_flush(collectd *c)
{
    const char *flush = "FLUSH\n";
    assert_int_equal(write(c->fd, flush, strlen(flush)), (ssize_t)strlen(flush));
    char reply[256];
    if (!fgets(reply, sizeof(reply), c->in) || strncmp(reply, "0 Done", 6) != 0)
        fail_msg("collectd %s FLUSH: %s", c->name, reply);
}

static void collectd_stop(collectd *c)
{
    fclose(c->in);
    close(c->fd);
    int rc = cu_stop(c->pid, 10000);
    char *err = cu_output(c->name, "err");
    if (rc != 0)
        fail_msg("collectd %s exited %d:\n%s", c->name, rc, err);
    if (strstr(err, "too old") || strstr(err, "were left"))
        fail_msg("collectd %s dropped values itself:\n%s", c->name, err);
    free(err);
}

static void putvals(collectd *c, const char *host, long long t0, const char *const *vals, int n)
{
    char cmd[512];
    for (int i = 0; i < n; i++) {
        snprintf(cmd, sizeof(cmd), "PUTVAL \"%s/app-web.1/gauge-temp\" interval=1 %lld:%s", host,
                 t0 + i, vals[i]);
        cu_collectd_putval(c->fd, c->in, cmd);
    }
}

/* FLUSHes both until `want` events have arrived (as test_collectd.c: a
 * FLUSH can overtake values still in collectd's write queue). */
static int flush_until(collectd *a, collectd *b, int want)
{
    int got = 0;
    for (int i = 0; i < 50 && got < want; i++) {
        collectd_flush(a);
        collectd_flush(b);
        got = cu_wait_file_lines("seen.jsonl", want, 200);
    }
    return got;
}

/* How many of the rejected datagrams `ringflow stat errors` lists (its log
 * of the last rejections, one row each) carry `reason`. */
static long reason_count(const char *errors, const char *reason)
{
    return cu_count(errors, reason);
}

static void test_collectd_sign_encrypt(void **state)
{
    (void)state;
    int port = tproc_port_base() + 7;
    char auth[512], listeners[256], tail[1024];
    snprintf(auth, sizeof(auth), "%s/collectd.passwd", tproc_dir());
    tproc_write_file("collectd.passwd", "# collectd AuthFile\nsigner: s1gn pass\n"
                                        "encryptor: 3ncrypt\n");
    snprintf(listeners, sizeof(listeners),
             "  - {name: collectd, transport: udp, protocol: collectd, port: %d}\n", port);
    snprintf(tail, sizeof(tail), "ingest:\n  collectd: {security_level: sign, auth_file: \"%s\"}\n",
             auth);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", tail);

    char servers[2048];
    snprintf(servers, sizeof(servers),
             "  <Server \"127.0.0.1\" \"%d\">\n    SecurityLevel \"Sign\"\n"
             "    Username \"signer\"\n    Password \"s1gn pass\"\n  </Server>\n"
             "  <Server \"127.0.0.1\" \"%d\">\n    SecurityLevel \"Sign\"\n"
             "    Username \"signer\"\n    Password \"wrong\"\n  </Server>\n"
             "  <Server \"127.0.0.1\" \"%d\">\n    SecurityLevel \"Sign\"\n"
             "    Username \"stranger\"\n    Password \"s1gn pass\"\n  </Server>\n"
             "  Server \"127.0.0.1\" \"%d\"\n",
             port, port, port, port);
    collectd signer;
    collectd_start(&signer, "signer", "signed-host", servers);
    snprintf(servers, sizeof(servers),
             "  <Server \"127.0.0.1\" \"%d\">\n    SecurityLevel \"Encrypt\"\n"
             "    Username \"encryptor\"\n    Password \"3ncrypt\"\n  </Server>\n"
             "  <Server \"127.0.0.1\" \"%d\">\n    SecurityLevel \"Encrypt\"\n"
             "    Username \"encryptor\"\n    Password \"3ncrypt!\"\n  </Server>\n",
             port, port);
    collectd encryptor;
    collectd_start(&encryptor, "encryptor", "encrypted-host", servers);

    /* An hour ago, on a minute: inside retention and the accepted window. */
    long long t0 = (long long)(cu_now_ns() / 1000000000LL - 3600) / 60 * 60;
    static const char *signed_vals[] = {"21.5", "-0.125", "123456.789012"};
    static const char *enc_vals[] = {"7", "1e-09", "-42.75"};
    putvals(&signer, "signed-host", t0, signed_vals, 3);
    putvals(&encryptor, "encrypted-host", t0, enc_vals, 3);
    int got = flush_until(&signer, &encryptor, 6);
    if (got < 6)
        fail_msg("%d of 6 events arrived; ringflowd stderr:\n%s", got, tproc_read_file(d.err_path));

    char *errors = cu_ringflow("stat --socket ./run/ringflow.sock errors");
    printf("ringflow stat errors:\n%s", errors);
    static const char *const reasons[] = {"bad_signature", "unknown_user", "unsigned_packet",
                                          "decrypt_failed"};
    for (int i = 0; i < 4; i++)
        if (reason_count(errors, reasons[i]) < 1)
            fail_msg("want collectd's %s datagrams refused and counted:\n%s", reasons[i], errors);
    long bad_sig_before = reason_count(errors, "bad_signature");
    free(errors);

    /* The file changes: the signer's password is no longer the one it
     * signs with. A reload reads it again. */
    tproc_write_file("collectd.passwd", "signer: changed\nencryptor: 3ncrypt\n");
    assert_int_equal(kill(d.pid, SIGHUP), 0);
    if (!tproc_wait_log(&d, "reload applied", 10000))
        fail_msg("no reload in the log:\n%s", tproc_read_file(d.err_path));
    usleep(300 * 1000);
    static const char *after_vals[] = {"99"};
    putvals(&signer, "signed-host", t0 + 10, after_vals, 1);
    putvals(&encryptor, "encrypted-host", t0 + 10, after_vals, 1);
    got = flush_until(&signer, &encryptor, 7);
    if (got < 7)
        fail_msg("%d of 7 events arrived; ringflowd stderr:\n%s", got, tproc_read_file(d.err_path));
    /* The signer's new value: refused by the reloaded file (its good
     * server now signs with a password the file no longer has). */
    for (int i = 0; i < 50; i++) {
        errors = cu_ringflow("stat --socket ./run/ringflow.sock errors");
        if (reason_count(errors, "bad_signature") >= bad_sig_before + 2)
            break;
        free(errors);
        errors = NULL;
        collectd_flush(&signer);
        usleep(100 * 1000);
    }
    if (!errors)
        fail_msg("the reloaded auth file did not refuse the signer's values");
    free(errors);

    collectd_stop(&signer);
    collectd_stop(&encryptor);
    usleep(200 * 1000);
    cu_daemon_stop(&d);
    assert_int_equal(cu_count_lines(tproc_read_dir_file("seen.jsonl")), 7);

    cu_expect_csv_rows("app_value --where host=signed-host --format csv",
                       "app_value,value,host=signed-host;instance=web.1;type=gauge;"
                       "type_instance=temp",
                       t0, 1, signed_vals, 3);
    static const char *enc_all[] = {"7", "1e-09", "-42.75"};
    char *out = cu_query("app_value --where host=encrypted-host --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 4);
    for (int i = 0; i < 3; i++) {
        char line[512];
        snprintf(line, sizeof(line),
                 "%lld000000000,app_value,value,host=encrypted-host;instance=web.1;type=gauge;"
                 "type_instance=temp,%s",
                 t0 + i, enc_all[i]);
        cu_expect_line(out, line);
    }
    char line[512];
    snprintf(line, sizeof(line),
             "%lld000000000,app_value,value,host=encrypted-host;instance=web.1;type=gauge;"
             "type_instance=temp,99",
             t0 + 10);
    cu_expect_line(out, line);
    free(out);
}

int main(void)
{
    g_collectd = cu_find_program("collectd");
    if (!g_collectd) {
        printf("SKIP: collectd is not installed (Debian package collectd-core; "
               "scripts/install-deps.sh installs it)\n");
        return CU_EXIT_SKIP;
    }
    g_collectd = strdup(g_collectd);
    if (access("/usr/share/collectd/types.db", R_OK) != 0) {
        printf("SKIP: /usr/share/collectd/types.db is missing (collectd-core)\n");
        return CU_EXIT_SKIP;
    }
    return cu_run_test("rf-test-collectd-sec", "test_collectd_sign_encrypt",
                       test_collectd_sign_encrypt);
}
