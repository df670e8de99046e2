/* The OpenTelemetry JS SDK (@opentelemetry/sdk-metrics with its OTLP/HTTP
 * exporters, npm, not written here) exports to ringflowd's http listener
 * with nothing changed but the URL, once over protobuf (cumulative) and once
 * over JSON (delta): a counter, an up-down counter, a histogram and an
 * observable gauge. Every value the exporter was told was accepted is read
 * back from the store (ringflow query), with the resource attribute on the
 * default allow-list as a tag and the other one left out. */
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

/* Exactly one row "<time>,<measurement>,<field>,<tags>,<value>" whatever its
 * time (the SDK stamps points with its own clock). */
static void expect_row(const char *csv, const char *meas, const char *field, const char *tags,
                       const char *value)
{
    char row[256];
    snprintf(row, sizeof(row), ",%s,%s,%s,%s\n", meas, field, tags, value);
    if (cu_count(csv, row) != 1)
        fail_msg("expected one row ending '%s' in:\n%s", row, csv);
}

static void check_store(const char *mode)
{
    char svc[64], tags[128];
    snprintf(svc, sizeof(svc), "service.name=otel-%s", mode);
    char *out = cu_query("otel_requests --format csv");
    snprintf(tags, sizeof(tags), "route=/a;%s", svc);
    expect_row(out, "otel_requests", "value", tags, "7");
    snprintf(tags, sizeof(tags), "route=/b;%s", svc);
    expect_row(out, "otel_requests", "value", tags, "4");
    assert_null(strstr(out, "deployment.id"));
    free(out);
    out = cu_query("otel_queue --format csv");
    expect_row(out, "otel_queue", "value", svc, "7");
    free(out);
    out = cu_query("otel_latency --format csv");
    expect_row(out, "otel_latency", "count", svc, "4");
    expect_row(out, "otel_latency", "sum", svc, "30.5");
    expect_row(out, "otel_latency", "le_1", svc, "1");
    expect_row(out, "otel_latency", "le_5", svc, "2");
    expect_row(out, "otel_latency", "le_10", svc, "3");
    expect_row(out, "otel_latency", "le_+Inf", svc, "4");
    free(out);
    out = cu_query("otel_temp --format csv");
    snprintf(tags, sizeof(tags), "room=lab;%s", svc);
    expect_row(out, "otel_temp", "value", tags, "21.5");
    free(out);
}

static void test_otel_sdk(void **state)
{
    (void)state;
    int port = tproc_port_base() + 9;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: otlp, transport: tcp, protocol: http, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");
    static const char *const modes[] = {"proto", "json"};
    for (int m = 0; m < 2; m++) {
        char *said = cu_run_node_script(g_node, "otel_sdk.js", port, modes[m]);
        printf("the %s exporter said:\n%s", modes[m], said);
        if (!strstr(said, "export ok") || strstr(said, "export failed"))
            fail_msg("the %s export was not accepted:\n%s", modes[m], said);
        free(said);
    }
    /* Per export: 2 counter series, 1 up-down, 6 histogram fields, 1 gauge. */
    cu_wait_events(&d, "seen.jsonl", 2 * 10);
    /* The kinds the JSON sink shows: a cumulative counter, a delta one, an
     * up-down counter (a level: a gauge). */
    char *seen = strdup(tproc_read_dir_file("seen.jsonl")); /* a copy: the buffer is reused */
    static const char *const kinds[] = {
        "\"series\":\"otel_requests,route=/a,service.name=otel-proto value\",\"value\":7,"
        "\"kind\":\"cumulative\"",
        "\"series\":\"otel_requests,route=/a,service.name=otel-json value\",\"value\":7,"
        "\"kind\":\"counter\"",
        "\"series\":\"otel_latency,service.name=otel-json le_5\",\"value\":2,\"kind\":\"counter\"",
        "\"series\":\"otel_queue,service.name=otel-json value\",\"value\":7,\"kind\":\"gauge\"",
        "\"series\":\"otel_temp,room=lab,service.name=otel-proto value\",\"value\":21.5,"
        "\"kind\":\"gauge\""};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++)
        if (cu_count(seen, kinds[k]) != 1)
            fail_msg("expected once in seen.jsonl: %s\n%s", kinds[k], seen);
    free(seen);
    usleep(200 * 1000);
    cu_daemon_stop(&d);
    cu_expect_nothing_rejected(tproc_read_file(d.err_path));
    for (int m = 0; m < 2; m++)
        check_store(modes[m]);
}

int main(void)
{
    g_node = cu_node_or_skip("@opentelemetry/exporter-metrics-otlp-proto");
    if (!g_node)
        return CU_EXIT_SKIP;
    return cu_run_test("rf-test-otel-sdk", "test_otel_sdk", test_otel_sdk);
}
