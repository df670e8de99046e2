/* collectd (Debian's collectd-core, not written here) -> write_graphite ->
 * ringflowd's Graphite TCP listener -> store -> `ringflow query`.
 *
 * collectd runs in the foreground on a generated configuration (Interval 1,
 * plugins unixsock and write_graphite, nothing that reads the machine). The
 * test submits values with fixed timestamps through collectd's own unixsock
 * protocol (what `collectdctl putval` speaks; collectd acknowledges each one),
 * and three write_graphite nodes send them, in three of collectd's naming
 * styles, to the same ringflowd listener:
 *   plain   defaults (StoreRates true, EscapeCharacter "_"):
 *           collectd.<host>.<plugin>-<pinst>.<type>-<tinst>[.<ds>]
 *   raw     StoreRates false, SeparateInstances true, AlwaysAppendDS true:
 *           raw.<host>.<plugin>.<pinst>.<type>.<tinst>.<ds>
 *   tagged  UseTags true (Graphite 1.1 tags):
 *           tagged.<plugin>.<type>[.<ds>];host=..;plugin=..;plugin_instance=..;...
 * A fourth output, the `network` plugin, sends the same values in collectd's
 * binary protocol to ringflowd's collectd listener (UDP), mapped as Telegraf's
 * collectd parser does: measurement <plugin>_<data source> (types.db),
 * tags host, instance, type, type_instance, field value, raw DERIVE values.
 * Asserted: every path, tag set, value and timestamp in the store exactly,
 * and nothing else; the rate collectd computes for a DERIVE; and that the
 * "nan" collectd sends for the first sample of a rate (StoreRates) is
 * skipped (counted as nan_value, not rejected as a bad number), without
 * losing the lines around it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client_util.h"

static const char *g_collectd;

#define HOST "rack1.node-7"

static void test_collectd_write_graphite(void **state)
{
    (void)state;
    int port = tproc_port_base() + 1;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: graphite, transport: tcp, protocol: graphite, port: %d}\n"
             "  - {name: collectd, transport: udp, protocol: collectd, port: %d}\n",
             port, port + 5);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");

    char conf[4096];
    snprintf(
        conf, sizeof(conf),
        "Hostname \"" HOST "\"\n"
        "FQDNLookup false\n"
        "Interval 1\n"
        /* One write thread: several would take values of one series
              * out of order (collectd then drops the older as "too old"). */
        "WriteThreads 1\n"
        "BaseDir \"%s\"\n"
        "PIDFile \"%s/collectd.pid\"\n"
        "TypesDB \"/usr/share/collectd/types.db\"\n"
        "LoadPlugin logfile\n"
        "<Plugin logfile>\n  LogLevel info\n  File STDERR\n</Plugin>\n"
        "LoadPlugin unixsock\n"
        "<Plugin unixsock>\n  SocketFile \"%s/collectd.sock\"\n  SocketPerms \"0600\"\n</Plugin>\n"
        "LoadPlugin write_graphite\n"
        "<Plugin write_graphite>\n"
        "  <Node \"plain\">\n    Host \"127.0.0.1\"\n    Port \"%d\"\n    Protocol \"tcp\"\n"
        "    Prefix \"collectd.\"\n  </Node>\n"
        "  <Node \"raw\">\n    Host \"127.0.0.1\"\n    Port \"%d\"\n    Protocol \"tcp\"\n"
        "    Prefix \"raw.\"\n    StoreRates false\n    SeparateInstances true\n"
        "    AlwaysAppendDS true\n  </Node>\n"
        "  <Node \"tagged\">\n    Host \"127.0.0.1\"\n    Port \"%d\"\n    Protocol \"tcp\"\n"
        "    Prefix \"tagged.\"\n    UseTags true\n  </Node>\n"
        "</Plugin>\n"
        "LoadPlugin network\n"
        "<Plugin network>\n  Server \"127.0.0.1\" \"%d\"\n"
        /* Signed: refused whole (no user and key configured here). */
        "  <Server \"127.0.0.1\" \"%d\">\n    SecurityLevel \"Sign\"\n"
        "    Username \"ringflow\"\n    Password \"secret\"\n  </Server>\n</Plugin>\n",
        tproc_dir(), tproc_dir(), tproc_dir(), port, port, port, port + 5, port + 5);
    tproc_write_file("collectd.conf", conf);
    char conf_path[512];
    snprintf(conf_path, sizeof(conf_path), "%s/collectd.conf", tproc_dir());
    pid_t cd = cu_spawn("collectd", (const char *[]){g_collectd, "-f", "-C", conf_path, NULL});

    char sock[512];
    snprintf(sock, sizeof(sock), "%s/collectd.sock", tproc_dir());
    int fd = cu_unixsock_connect(sock, 10000);
    if (fd < 0)
        fail_msg("collectd's unixsock never came up; collectd stderr:\n%s",
                 cu_output("collectd", "err"));
    FILE *in = fdopen(dup(fd), "r");

    /* An hour ago, on a minute: inside retention and the accepted window. */
    long long t0 = (long long)(cu_now_ns() / 1000000000LL - 3600) / 60 * 60;
    char cmd[512];
    /* A gauge with instances that need escaping (the dot in "web.1", the
     * space in "temp c"). */
    static const char *gauge_vals[] = {"21.5", "-0.125", "123456.789012"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "PUTVAL \"" HOST "/app-web.1/gauge-temp c\" interval=1 %lld:%s",
                 t0 + i, gauge_vals[i]);
        cu_collectd_putval(fd, in, cmd);
    }
    /* A type with three data sources. */
    snprintf(cmd, sizeof(cmd), "PUTVAL " HOST "/app-web.1/load interval=1 %lld:0.5:1.25:-3e-05",
             t0);
    cu_collectd_putval(fd, in, cmd);
    /* A DERIVE: collectd turns it into a per-second rate (StoreRates). */
    static const char *derive_vals[] = {"1000", "1010", "1030"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "PUTVAL " HOST "/app-web.1/derive-requests interval=1 %lld:%s",
                 t0 + 2 * i, derive_vals[i]);
        cu_collectd_putval(fd, in, cmd);
    }
    /* Events that must arrive: 3 gauge + 3 load + rates 2 (plain), 3 + 3 + 3
     * raw derive (raw), 3 + 3 + 2 (tagged). The two "nan" lines are skipped.
     * Ask collectd to FLUSH until they have: a FLUSH can overtake values
     * still in collectd's write queue, and collectd's shutdown drops what is
     * left in that queue ("value lists were left"), so stopping it early
     * would lose data that is collectd's, not ours, to lose. */
    const int want_events = 8 + 9 + 8 + 9; /* + network: 3 gauge, 3 load, 3 raw derive */
    int got = 0;
    for (int i = 0; i < 50 && got < want_events; i++) {
        const char *flush = "FLUSH\n";
        assert_int_equal(write(fd, flush, strlen(flush)), (ssize_t)strlen(flush));
        char reply[256];
        if (!fgets(reply, sizeof(reply), in) || strncmp(reply, "0 Done", 6) != 0)
            fail_msg("collectd FLUSH: %s", reply);
        got = cu_wait_file_lines("seen.jsonl", want_events, 200);
    }
    fclose(in);
    close(fd);
    int crc = cu_stop(cd, 10000);
    char *cd_err = cu_output("collectd", "err");
    if (crc != 0)
        fail_msg("collectd exited %d:\n%s", crc, cd_err);
    if (got < want_events)
        fail_msg("%d of %d events arrived; collectd stderr:\n%s\nringflowd stderr:\n%s", got,
                 want_events, cd_err, tproc_read_file(d.err_path));
    /* collectd itself dropped nothing (the data is all ours to check). */
    if (strstr(cd_err, "too old") || strstr(cd_err, "were left"))
        fail_msg("collectd dropped values itself:\n%s", cd_err);
    free(cd_err);

    /* The rejected lines, with their reason, in the stats socket's error log. */
    char *errors = cu_ringflow("stat --socket ./run/ringflow.sock errors");
    printf("ringflow stat errors:\n%s", errors);
    if (cu_count(errors, "bad_number") != 0 || cu_count(errors, " nan ") != 0)
        fail_msg("want the two 'nan' lines skipped, not rejected:\n%s", errors);
    if (cu_count(errors, "signed_packet") < 1)
        fail_msg("want the network plugin's signed datagrams refused as signed_packet:\n%s",
                 errors);
    free(errors);

    usleep(200 * 1000);
    cu_daemon_stop(&d);
    const char *log = tproc_read_file(d.err_path);
    assert_non_null(strstr(log, "store_rejected=0"));
    assert_int_equal(cu_count_lines(tproc_read_dir_file("seen.jsonl")), want_events);

    /* ---- plain ---- */
    cu_expect_csv_rows("'collectd.rack1_node-7.app-web_1.gauge-temp_c' --format csv",
                       "collectd.rack1_node-7.app-web_1.gauge-temp_c,value,", t0, 1, gauge_vals, 3);
    static const char *ds[] = {"shortterm", "midterm", "longterm"};
    static const char *load_vals[] = {"0.5", "1.25", "-3e-05"};
    char args[256], row[256];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "'collectd.rack1_node-7.app-web_1.load.%s' --format csv",
                 ds[i]);
        snprintf(row, sizeof(row), "collectd.rack1_node-7.app-web_1.load.%s,value,", ds[i]);
        cu_expect_csv_rows(args, row, t0, 0, &load_vals[i], 1);
    }
    /* Rates: (1010-1000)/2 s and (1030-1010)/2 s; the first sample (nan) is
     * not stored. */
    static const char *rates[] = {"5", "10"};
    cu_expect_csv_rows("'collectd.rack1_node-7.app-web_1.derive-requests' --format csv",
                       "collectd.rack1_node-7.app-web_1.derive-requests,value,", t0 + 2, 2, rates,
                       2);

    /* ---- raw: separate instances, data source names, raw counter values ---- */
    cu_expect_csv_rows("'raw.rack1_node-7.app.web_1.gauge.temp_c.value' --format csv",
                       "raw.rack1_node-7.app.web_1.gauge.temp_c.value,value,", t0, 1, gauge_vals,
                       3);
    cu_expect_csv_rows("'raw.rack1_node-7.app.web_1.load.midterm' --format csv",
                       "raw.rack1_node-7.app.web_1.load.midterm,value,", t0, 0, &load_vals[1], 1);
    cu_expect_csv_rows("'raw.rack1_node-7.app.web_1.derive.requests.value' --format csv",
                       "raw.rack1_node-7.app.web_1.derive.requests.value,value,", t0, 2,
                       derive_vals, 3);

    /* ---- tagged: Graphite 1.1 tags, the host keeps its dot ---- */
    cu_expect_csv_rows("tagged.app.gauge --where host=" HOST " --format csv",
                       "tagged.app.gauge,value,host=" HOST
                       ";plugin=app;plugin_instance=web.1;type=gauge;type_instance=temp_c",
                       t0, 1, gauge_vals, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "tagged.app.load.%s --where ds_name=%s --format csv", ds[i],
                 ds[i]);
        snprintf(row, sizeof(row),
                 "tagged.app.load.%s,value,ds_name=%s;host=" HOST
                 ";plugin=app;plugin_instance=web.1;type=load",
                 ds[i], ds[i]);
        cu_expect_csv_rows(args, row, t0, 0, &load_vals[i], 1);
    }
    cu_expect_csv_rows("tagged.app.derive --where type_instance=requests --format csv",
                       "tagged.app.derive,value,host=" HOST
                       ";plugin=app;plugin_instance=web.1;type=derive;type_instance=requests",
                       t0 + 2, 2, rates, 2);

    /* ---- network: the binary protocol, Telegraf's collectd mapping ---- */
    cu_expect_csv_rows("app_value --where type=gauge --format csv",
                       "app_value,value,host=" HOST
                       ";instance=web.1;type=gauge;type_instance=temp c",
                       t0, 1, gauge_vals, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof(args), "app_%s --format csv", ds[i]);
        snprintf(row, sizeof(row), "app_%s,value,host=" HOST ";instance=web.1;type=load", ds[i]);
        cu_expect_csv_rows(args, row, t0, 0, &load_vals[i], 1);
    }
    cu_expect_csv_rows("app_value --where type=derive --format csv",
                       "app_value,value,host=" HOST
                       ";instance=web.1;type=derive;type_instance=requests",
                       t0, 2, derive_vals, 3);
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
    return cu_run_test("rf-test-collectd", "test_collectd_write_graphite",
                       test_collectd_write_graphite);
}
