/* The official InfluxDB JavaScript client (@influxdata/influxdb-client, npm,
 * not written here) writes to ringflowd's http listener with nothing changed
 * but the URL: its own HTTP transport to /api/v2/write with a token, gzip,
 * batching and default tags. Every point it was told was accepted is read
 * back exactly (the bucket as the tag db), and the line the server refused
 * reached the client as a 400 and is not stored. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_util.h"

static const char *g_node;

static void test_influx_http_v2(void **state)
{
    (void)state;
    int port = tproc_port_base() + 7;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");
    long long t0 = (long long)(cu_now_ns() / 1000000000LL) - 3600;
    char arg[32];
    snprintf(arg, sizeof(arg), "%lld", t0);
    char *said = cu_run_node_script(g_node, "influx_http_v2.js", port, arg);
    printf("the client said:\n%s", said);
    assert_non_null(strstr(said, "written 3"));
    if (!strstr(said, "bad refused: 400") || !strstr(said, "unable to parse 'js_bad v=oops'"))
        fail_msg("the bad line was not refused to the client:\n%s", said);
    free(said);
    cu_wait_events(&d, "seen.jsonl", 6);
    usleep(200 * 1000);
    cu_daemon_stop(&d);

    char *out = cu_query("js_temp --format csv");
    assert_int_equal(cu_count_lines(out), 1 + 6);
    char line[256];
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "%lld,js_temp,c,app=node;db=js-bucket;room=r%d,%g",
                 (t0 + i) * 1000000000LL, i, 20.5 + i);
        cu_expect_line(out, line);
        snprintf(line, sizeof(line), "%lld,js_temp,n,app=node;db=js-bucket;room=r%d,%d",
                 (t0 + i) * 1000000000LL, i, i);
        cu_expect_line(out, line);
    }
    free(out);
    cu_query_expect_none("js_bad --format csv");
}

int main(void)
{
    g_node = cu_node_or_skip("@influxdata/influxdb-client");
    if (!g_node)
        return CU_EXIT_SKIP;
    return cu_run_test("rf-test-influx-http-v2", "test_influx_http_v2", test_influx_http_v2);
}
