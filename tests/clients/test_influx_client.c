/* The official InfluxDB JavaScript client (@influxdata/influxdb-client, npm,
 * not written here) produces the line protocol; ringflowd receives it over
 * TCP (through the client's own WriteApi: batching, default tags, time
 * conversion) and over UDP (Point.toLineProtocol in one datagram).
 *
 * The points need every escaping rule the client applies: a space and a comma
 * in the measurement, space/comma/equals in tag keys and values, a space in a
 * field key, a string field with quotes, a backslash, a comma and '=', and
 * every value type: float (exponents, the largest double, a whole number),
 * integer "i" up to 2^53-1, unsigned "u" up to 2^64-1, booleans in the
 * client's "T"/"F" spelling; a nanosecond timestamp given as text and one the
 * client converts from a Date.
 * Asserted, per transport: every field's exact value, the unescaped
 * measurement and tags and the timestamp to the nanosecond through
 * `ringflow query --format csv` (string fields as their text, CSV-quoted);
 * the canonical (re-escaped) series
 * key of one field through a JSON sink; nothing rejected, nothing extra. */
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

static void test_influx_client(void **state)
{
    (void)state;
    int port = tproc_port_base() + 3;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: lp-udp, transport: udp, protocol: influx_line, port: %d}\n"
             "  - {name: lp-tcp, transport: tcp, protocol: influx_line, port: %d}\n",
             port, port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");

    /* An hour ago, with every sub-second digit used. */
    long long t_s = (long long)(cu_now_ns() / 1000000000LL) - 3600;
    long long t_ns = t_s * 1000000000LL + 123456789LL;
    char t_ns_arg[32];
    snprintf(t_ns_arg, sizeof(t_ns_arg), "%lld", t_ns);
    char *sent = cu_run_node_script(g_node, "influx_client.js", port, t_ns_arg);
    printf("the client sent:\n%s", sent);
    /* WriteApi's batch (2 lines) and the datagram (2 lines). */
    assert_int_equal(cu_count_lines(sent), 4);
    free(sent);

    /* 10 fields + 1, per transport. */
    const int want_events = 2 * 11;
    cu_wait_events(&d, "seen.jsonl", want_events);
    usleep(200 * 1000);
    cu_daemon_stop(&d);
    cu_expect_nothing_rejected(tproc_read_file(d.err_path));

    /* The canonical key: measurement and names re-escaped, tags sorted. */
    char *seen = strdup(tproc_read_dir_file("seen.jsonl"));
    assert_int_equal(cu_count_lines(seen), want_events);
    char ts[64], line[1024];
    cu_rfc3339(t_ns, ts);
    snprintf(
        line, sizeof(line),
        "{\"time\":\"%s\",\"series\":\"disk\\\\ io\\\\,raw,host\\\\ name=web\\\\ "
        "01,k\\\\=v=a\\\\=b,"
        "path=/var/lib\\\\,data,transport=udp read\\\\ bytes\",\"value\":1234.5,\"kind\":\"gauge\","
        "\"priority\":\"standard\"}",
        ts);
    cu_expect_line(seen, line);
    free(seen);

    /* A string field comes back as its text, CSV-quoted (quotes doubled). */
    const char *note_csv = "\"he said \"\"hi\"\" \\ ok, a=b\"";
    const struct {
        const char *field, *value;
    } fields[] = {
        {"big", "-1.7976931348623157e+308"},
        {"degraded", "false"},
        {"healthy", "true"},
        {"max_safe", "9007199254740991"},
        {"note", note_csv},
        {"ops", "-42"},
        {"read bytes", "1234.5"},
        {"tiny", "2.5e-300"},
        {"total", "18446744073709551615"},
        {"whole", "3"},
    };
    static const char *transports[] = {"tcp", "udp"};
    for (int tr = 0; tr < 2; tr++) {
        /* The TCP path went through WriteApi, which adds its default tag. */
        const char *tags =
            tr == 0 ? "host name=web 01;k=v=a=b;path=/var/lib,data;source=writeapi;transport=tcp"
                    : "host name=web 01;k=v=a=b;path=/var/lib,data;transport=udp";
        char args[256];
        snprintf(args, sizeof(args), "'disk io,raw' --where transport=%s --format csv",
                 transports[tr]);
        char *out = cu_query(args);
        assert_int_equal(cu_count_lines(out), 1 + 10);
        for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
            snprintf(line, sizeof(line), "%lld,\"disk io,raw\",%s,\"%s\",%s", t_ns, fields[f].field,
                     tags, fields[f].value);
            cu_expect_line(out, line);
        }
        free(out);
        /* The Date the client converted: ms precision, + 1 ms. */
        snprintf(args, sizeof(args), "cpu --where transport=%s --format csv", transports[tr]);
        out = cu_query(args);
        assert_int_equal(cu_count_lines(out), 2);
        snprintf(line, sizeof(line), "%lld,cpu,usage,host=a;%stransport=%s,0.1",
                 t_s * 1000000000LL + 124000000LL, tr == 0 ? "source=writeapi;" : "",
                 transports[tr]);
        cu_expect_line(out, line);
        free(out);
    }
}

int main(void)
{
    g_node = cu_node_or_skip("@influxdata/influxdb-client");
    if (!g_node)
        return CU_EXIT_SKIP;
    return cu_run_test("rf-test-influx-client", "test_influx_client", test_influx_client);
}
