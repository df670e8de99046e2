/* The Python `influxdb` client (Debian python3-influxdb, not written here)
 * writes to ringflowd's http listener exactly as it writes to InfluxDB 1.8:
 * ping, write_points in s, ms and ns precision, batches with its own tags,
 * gzip. Every point it was told was accepted is queried back exactly (the
 * database name as the tag db), and the point the server refused is not
 * stored and reached the client as a 400 with the reason. A value of
 * another type than the field's first one is refused as InfluxDB refuses it
 * (field_type_conflict, in `stat errors` too), and still after a restart on
 * the same store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_util.h"

static const char *g_python = "/usr/bin/python3";

static char *run_client(int port, long long t0, const char *phase)
{
    char script[1024], p[16], t[32];
    snprintf(script, sizeof(script), "%s/influx_python.py", cu_clients_dir());
    snprintf(p, sizeof(p), "%d", port);
    snprintf(t, sizeof(t), "%lld", t0);
    pid_t pid = cu_spawn("python", (const char *const[]){g_python, script, p, t, phase, NULL});
    int rc = cu_wait(pid, 30000);
    if (rc != 0)
        fail_msg("influx_python.py exited %d:\n%s", rc, cu_output("python", "err"));
    return cu_output("python", "out");
}

static void test_influx_python(void **state)
{
    (void)state;
    int port = tproc_port_base() + 5;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");
    long long t0 = (long long)(cu_now_ns() / 1000000000LL) - 3600;
    char *said = run_client(port, t0, NULL);
    printf("the client said:\n%s", said);
    assert_non_null(strstr(said, "ping 1.8.10"));
    assert_non_null(strstr(said, "bad refused: 400"));
    assert_non_null(strstr(said, "unable to parse 'py_bad v=oops'"));
    assert_non_null(strstr(said, "conflict refused: 400"));
    assert_non_null(strstr(said, "field_type_conflict"));
    assert_non_null(strstr(said, "done"));
    free(said);
    char *errors = cu_ringflow("stat --socket ./run/ringflow.sock errors");
    assert_non_null(strstr(errors, "field_type_conflict"));
    free(errors);
    /* 2 x 2 fields + 1 + 7 + 1 + 4 */
    cu_wait_events(&d, "seen.jsonl", 17);
    usleep(200 * 1000);
    cu_daemon_stop(&d);
    /* The json sink (behind its batcher) wrote each string's text, escaped
     * as JSON, not the hash that stands for it in the event. */
    const char *seen = tproc_read_dir_file("seen.jsonl");
    static const char *const texts[] = {
        "\"series\":\"py_str,db=pydb say\",\"value\":\"say \\\"hi\\\"\"",
        "\"series\":\"py_str,db=pydb path\",\"value\":\"C:\\\\tmp\\\\x\"",
        "\"series\":\"py_str,db=pydb utf8\",\"value\":\"caf\xc3\xa9 \xe2\x82\xac\"",
        "\"series\":\"py_str,db=pydb csv\",\"value\":\"a,b;c=d e\"",
    };
    for (int i = 0; i < 4; i++)
        if (!strstr(seen, texts[i]))
            fail_msg("want %s in the json sink's output:\n%s", texts[i], seen);

    /* The same store after a restart: the field's type came back with it. */
    free(tproc_shell_ok("rm -f seen.jsonl"));
    cu_daemon_start_pipeline(&d, listeners, "", "");
    said = run_client(port, t0, "restart");
    printf("after the restart the client said:\n%s", said);
    assert_non_null(strstr(said, "int after restart refused: 400"));
    assert_non_null(strstr(said, "string after restart refused: 400"));
    assert_int_equal(cu_count(said, "field_type_conflict"), 2);
    assert_non_null(strstr(said, "done"));
    free(said);
    cu_wait_events(&d, "seen.jsonl", 1);
    cu_daemon_stop(&d);

    char line[512];
    char *out = cu_query("py_cpu --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 5);
    snprintf(line, sizeof(line), "%lld,py_cpu,usage,\"db=pydb;dc=eu,west;host=h 1\",1.5",
             (t0 + 180) * 1000000000LL);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld,py_cpu,usage,\"db=pydb;dc=eu,west;host=h 1\",12.5",
             t0 * 1000000000LL);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld,py_cpu,usage,\"db=pydb;dc=eu,west;host=h 1\",99",
             (t0 + 60) * 1000000000LL);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld,py_cpu,cores,\"db=pydb;dc=eu,west;host=h 1\",8",
             t0 * 1000000000LL);
    cu_expect_line(out, line);
    free(out);
    out = cu_query("py_mem --format csv");
    snprintf(line, sizeof(line), "%lld,py_mem,free,db=pydb;host=h2,-3.25",
             t0 * 1000000000LL + 5000000LL);
    cu_expect_line(out, line);
    free(out);
    out = cu_query("py_disk --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 7);
    for (int i = 0; i < 7; i++) {
        snprintf(line, sizeof(line), "%lld,py_disk,n,db=pydb;via=batch,%d", t0 * 1000000000LL + i,
                 i);
        cu_expect_line(out, line);
    }
    free(out);
    out = cu_query("py_gzip --format csv");
    snprintf(line, sizeof(line), "%lld,py_gzip,v,db=pydb,0.1", t0 * 1000000000LL);
    cu_expect_line(out, line);
    free(out);
    /* Strings as the client meant them, quotes, backslashes and UTF-8 kept. */
    out = cu_query("py_str --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 4);
    snprintf(line, sizeof(line), "%lld,py_str,say,db=pydb,\"say \"\"hi\"\"\"", t0 * 1000000000LL);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld,py_str,path,db=pydb,C:\\tmp\\x", t0 * 1000000000LL);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld,py_str,utf8,db=pydb,caf\xc3\xa9 \xe2\x82\xac",
             t0 * 1000000000LL);
    cu_expect_line(out, line);
    snprintf(line, sizeof(line), "%lld,py_str,csv,db=pydb,\"a,b;c=d e\"", t0 * 1000000000LL);
    cu_expect_line(out, line);
    free(out);
    out = cu_query("py_str --field say --format json");
    assert_non_null(strstr(out, "\"say \\\"hi\\\"\"]"));
    free(out);
    char cmd[256];
    int status;
    snprintf(cmd, sizeof(cmd), "'%s' query --dir ./data/store py_str --agg count 2>&1",
             getenv("RINGFLOW"));
    out = tproc_shell(cmd, &status);
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(out, "holds strings"));
    free(out);
    cu_query_expect_none("py_bad --format csv");
}

int main(void)
{
    if (access(g_python, X_OK) != 0 ||
        system("/usr/bin/python3 -c 'import influxdb' 2>/dev/null") != 0) {
        printf("python3-influxdb is not installed (scripts/install-deps.sh): skipped\n");
        return CU_EXIT_SKIP;
    }
    return cu_run_test("rf-test-influx-python", "test_influx_python", test_influx_python);
}
