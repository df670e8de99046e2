/* Prometheus 2.42 (Debian `prometheus`, not written here) scrapes a small
 * exporter with fixed values every second and remote_writes to ringflowd's
 * http listener, configured with nothing but the URL. Every sample stored
 * must be the exporter's value for its series, with __name__ as the
 * measurement, the labels (and Prometheus' job and instance) as tags, and
 * `up` 1; the remote_write counters show the requests answered 204. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_util.h"

static const char *g_prom = "/usr/bin/prometheus";

/* Each data row of `csv` (time,measurement,field,tags,value) has this value
 * text; returns the number of rows. */
static int rows_all(const char *csv, const char *want_tail)
{
    int rows = 0;
    const char *line = strchr(csv, '\n'); /* after the header */
    while (line && line[1]) {
        line++;
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t tl = strlen(want_tail);
        if (len < tl || memcmp(line + len - tl, want_tail, tl) != 0)
            fail_msg("row '%.*s' does not end in '%s'", (int)len, line, want_tail);
        rows++;
        line = end;
    }
    return rows;
}

static void test_prometheus_rw(void **state)
{
    (void)state;
    int port = tproc_port_base() + 2, exp_port = port + 1, web_port = port + 2;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "");

    char script[1024], ep[16];
    snprintf(script, sizeof(script), "%s/exporter.py", cu_clients_dir());
    snprintf(ep, sizeof(ep), "%d", exp_port);
    pid_t exporter =
        cu_spawn("exporter", (const char *const[]){"/usr/bin/python3", script, ep, NULL});

    char cfg[1024];
    snprintf(
        cfg, sizeof(cfg),
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: exp\n"
        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
        "remote_write:\n"
        "  - url: http://127.0.0.1:%d/api/v1/write\n"
        "    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}\n",
        exp_port, port);
    tproc_write_file("prometheus.yml", cfg);
    char web[64];
    snprintf(web, sizeof(web), "--web.listen-address=127.0.0.1:%d", web_port);
    pid_t prom =
        cu_spawn("prometheus", (const char *const[]){g_prom, "--config.file=prometheus.yml",
                                                     "--storage.tsdb.path=./prom-data", web, NULL});
    /* Until remote_write delivered a few scrapes (at most 30 s). */
    int ok = 0;
    for (int i = 0; i < 60 && !ok; i++) {
        usleep(500 * 1000);
        char *st = tproc_ask("show listeners");
        const char *p = st ? strstr(st, "remote_write_samples=") : NULL;
        long total = 0;
        while (p) {
            total += strtol(p + 21, NULL, 10);
            p = strstr(p + 1, "remote_write_samples=");
        }
        ok = total >= 40; /* 4 series + up and the scrape's own, several scrapes */
        free(st);
    }
    cu_stop(prom, 15000);
    cu_stop(exporter, 5000);
    if (!ok)
        fail_msg("remote_write delivered too little; prometheus said:\n%s",
                 cu_output("prometheus", "err"));
    char *st = tproc_ask("show listeners");
    assert_non_null(strstr(st, "prom_write"));
    free(st);
    usleep(200 * 1000);
    cu_daemon_stop(&d);

    char inst[64], q[256];
    snprintf(inst, sizeof(inst), "instance=127.0.0.1:%d", exp_port);
    snprintf(q, sizeof(q),
             "rf_test_temperature --field value --where room='a b' --where %s "
             "--where job=exp --format csv",
             inst);
    char *out = cu_query(q);
    if (rows_all(out, ",21.5") < 2)
        fail_msg("room a b:\n%s", out);
    free(out);
    snprintf(q, sizeof(q),
             "rf_test_temperature --field value --where room=c --where 'site=lab,1' "
             "--format csv");
    out = cu_query(q);
    if (rows_all(out, ",-3.25") < 2)
        fail_msg("room c:\n%s", out);
    free(out);
    out = cu_query("rf_test_requests_total --field value --where code=200 --format csv");
    if (rows_all(out, ",1234") < 2)
        fail_msg("requests_total:\n%s", out);
    free(out);
    out = cu_query("rf_test_ratio --field value --where job=exp --format csv");
    if (rows_all(out, ",0.125") < 2)
        fail_msg("ratio:\n%s", out);
    free(out);
    out = cu_query("up --field value --where job=exp --format csv");
    if (rows_all(out, ",1") < 2)
        fail_msg("up:\n%s", out);
    free(out);
}

int main(void)
{
    if (access(g_prom, X_OK) != 0) {
        printf("SKIP: prometheus is not installed (scripts/install-deps.sh)\n");
        return CU_EXIT_SKIP;
    }
    return cu_run_test("rf-test-prometheus-rw", "test_prometheus_rw", test_prometheus_rw);
}
