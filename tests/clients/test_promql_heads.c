/* The query API sees what a running engine accepted, before its block is
 * written (storage/store "Reading the heads"): with block_max_age at its 5
 * minutes, a point sent over HTTP is returned by /api/v1/query within a
 * second; and while points keep coming and blocks are cut (block_points
 * 16) between queries, count_over_time never passes what was sent (no
 * point twice) and never goes back (no point lost between the head and
 * the segments), ending at exactly what was sent. (A cut landing inside
 * one query, between its head copy and its segment read, is rare here;
 * tests/storage/test_heads.c places it there on purpose.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_util.h"

static json_t *query(int port, const char *expr, int64_t at_ms)
{
    char path[1024], enc[512];
    size_t k = 0;
    for (const char *c = expr; *c && k + 4 < sizeof(enc); c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')
            enc[k++] = *c;
        else
            k += (size_t)snprintf(enc + k, sizeof(enc) - k, "%%%02X", (unsigned char)*c);
    }
    enc[k] = '\0';
    snprintf(path, sizeof(path), "/api/v1/query?query=%s&time=%.3f", enc, (double)at_ms / 1000);
    int status;
    char *body = cu_http(port, "GET", path, NULL, &status);
    if (status != 200)
        fail_msg("%s answered %d: %s", path, status, body ? body : "(nothing)");
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    free(body);
    assert_non_null(j);
    json_t *r = json_incref(json_object_get(json_object_get(j, "data"), "result"));
    json_decref(j);
    return r;
}

/* The value of a one-series instant answer, or -1 when it is empty. */
static double one_value(json_t *result)
{
    if (json_array_size(result) == 0)
        return -1;
    assert_int_equal(json_array_size(result), 1);
    json_t *v = json_object_get(json_array_get(result, 0), "value");
    return atof(json_string_value(json_array_get(v, 1)));
}

static void write_lines(int port, const char *lines)
{
    int status;
    char *r = cu_http(port, "POST", "/write?db=heads&precision=ms", lines, &status);
    if (status != 204)
        fail_msg("/write answered %d: %s", status, r ? r : "(nothing)");
    free(r);
}

static void expect_refused(int port, const char *path, int want_status, const char *want_type)
{
    int status;
    char *body = cu_http(port, "GET", path, NULL, &status);
    print_message("%s -> %d %s\n", path, status, body ? body : "");
    if (status != want_status || !body || !strstr(body, want_type))
        fail_msg("%s answered %d %s; expected %d %s", path, status, body ? body : "", want_status,
                 want_type);
    free(body);
}

/* `name  N` (the table layout of ringflow stat) in the output. */
static void expect_counter(const char *stat, const char *name, unsigned long want)
{
    const char *p = strstr(stat, name);
    if (!p)
        fail_msg("no %s in:\n%s", name, stat);
    p += strlen(name);
    while (*p == ' ' || *p == ':' || *p == '\t')
        p++;
    if (strtoul(p, NULL, 10) != want)
        fail_msg("%s is not %lu in:\n%s", name, want, stat);
}

static void check_query_thread_cpus(void);

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void test_promql_heads(void **state)
{
    (void)state;
    int port = tproc_port_base() + 5;
    char listeners[256];
    snprintf(listeners, sizeof(listeners),
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n", port);
    proc d;
    cu_daemon_start_pipeline(&d, listeners, "", "storage: {block_max_age: 5m, block_points: 16}\n");

    /* One point: seen within a second although its block is not cut. */
    int64_t now = cu_now_ns() / 1000000;
    char line[256];
    snprintf(line, sizeof(line), "heads_probe,host=a value=42 %lld\n", (long long)now);
    int64_t sent = mono_ms();
    write_lines(port, line);
    double v = -1;
    int64_t seen_after = -1;
    while (mono_ms() - sent < 3000) {
        json_t *r = query(port, "heads_probe", now + 1000);
        v = one_value(r);
        json_decref(r);
        if (v >= 0) {
            seen_after = mono_ms() - sent;
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    print_message("heads_probe seen %lld ms after it was sent\n", (long long)seen_after);
    assert_true(v == 42);
    assert_true(seen_after >= 0 && seen_after < 1000);

    /* Points keep coming, blocks are cut every 16 of them: each answer
     * counts at most what was sent, never less than the one before. */
    const int rounds = 40, per_round = 7;
    const int64_t t0 = now - 200 * 1000;
    int total = 0, last = 0, checked = 0;
    char expr[] = "count_over_time(heads_run[5m])";
    for (int r = 0; r < rounds; r++) {
        char body[4096];
        size_t k = 0;
        for (int i = 0; i < per_round; i++, total++)
            k += (size_t)snprintf(body + k, sizeof(body) - k, "heads_run,host=b value=%d %lld\n",
                                  total, (long long)(t0 + total * 500));
        write_lines(port, body);
        for (int q = 0; q < 3; q++) {
            json_t *res = query(port, expr, now + 1000);
            double c = one_value(res);
            json_decref(res);
            int got = c < 0 ? 0 : (int)c;
            if (got > total || got < last)
                fail_msg("round %d: %d points counted, %d sent, %d counted before", r, got, total,
                         last);
            last = got;
            checked++;
        }
    }
    /* Everything arrives (the batch interval is 50 ms). */
    int64_t until = mono_ms() + 3000;
    while (last < total && mono_ms() < until) {
        json_t *res = query(port, expr, now + 1000);
        double c = one_value(res);
        json_decref(res);
        assert_true(c <= total);
        last = (int)c;
    }
    print_message("%d answers checked; %d of %d points counted at the end\n", checked, last, total);
    assert_int_equal(last, total);

    /* Still once each after the engine wrote them all (restart), now with
     * limits (storage.query): each refusal answered and counted. */
    cu_daemon_stop(&d);
    cu_daemon_start_pipeline(&d, listeners, "",
                             "storage: {block_max_age: 5m, block_points: 16,\n"
                             "  query: {max_samples: 300, max_series: 2}}\n");
    json_t *res = query(port, expr, now + 1000);
    assert_true(one_value(res) == total);
    json_decref(res);
    expect_refused(
        port,
        "/api/v1/"
        "query?query=count_over_time(heads_run%5B5m%5D)%2Bcount_over_time(heads_run%5B4m%5D)",
        422, "execution");
    expect_refused(port,
                   "/api/v1/query?query=%7B__name__%3D~%22heads_.%2A%22%7D%20or%20heads_probe", 422,
                   "execution");
    char *st = cu_ringflow("stat --socket ./run/ringflow.sock storage");
    print_message("%s", st);
    expect_counter(st, "refused_max_samples", 1);
    expect_counter(st, "refused_max_series", 1);
    expect_counter(st, "refused_timeout", 0);
    free(st);
    cu_daemon_stop(&d);

    /* A query past its time: 11,000 steps of a 30-day quantile. */
    cu_daemon_start_pipeline(&d, listeners, "", "storage: {query: {timeout: 1ms}}\n");
    char path[512];
    snprintf(path, sizeof(path),
             "/api/v1/query_range?query=quantile_over_time(0.5,heads_run%%5B30d%%5D)"
             "&start=%.3f&end=%.3f&step=1",
             (double)now / 1000 - 10999, (double)now / 1000);
    expect_refused(port, path, 503, "timeout");
    st = cu_ringflow("stat --socket ./run/ringflow.sock storage");
    expect_counter(st, "refused_timeout", 1);
    free(st);
    cu_daemon_stop(&d);

    check_query_thread_cpus();
}

/* The Cpus_allowed_list of pid's thread named `name` into out[64]. */
static bool thread_cpus(int pid, const char *name, char out[64])
{
    char path[300];
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    bool found = false;
    for (struct dirent *e; d && !found && (e = readdir(d));) {
        char comm[64] = "", line[256];
        snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", pid, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof(comm), f))
            comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        if (strcmp(comm, name) != 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/status", pid, e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "Cpus_allowed_list: %63s", out) == 1)
                found = true;
        fclose(f);
    }
    if (d)
        closedir(d);
    return found;
}

/* With the worker pinned to CPU 1, the query thread runs anywhere but
 * there (rf_promapi_avoid_cpus). */
static void check_query_thread_cpus(void)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2 ||
        !CPU_ISSET(1, &allowed)) {
        print_message("query thread CPUs: not checked (needs CPU 1 and another)\n");
        return;
    }
    int port = tproc_port_base() + 6;
    char cfg[512];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 1, cpus: [1]}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "pipeline:\n"
             "  sinks:\n"
             "    - {name: store, type: store}\n"
             "  routes:\n"
             "    - {subject: \"telemetry.>\", sinks: [store]}\n",
             port);
    proc d;
    cu_daemon_start(&d, "pinned.yaml", cfg);
    char cpus[64] = "";
    assert_true(thread_cpus(d.pid, "rf-query", cpus));
    print_message("query thread CPUs with the worker on CPU 1: %s\n", cpus);
    /* The allowed list without CPU 1, in the kernel's list syntax. */
    CPU_CLR(1, &allowed);
    char want[64] = "";
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed))
            continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &allowed))
            e++;
        size_t k = strlen(want);
        if (e == c)
            snprintf(want + k, sizeof(want) - k, "%s%d", k ? "," : "", c);
        else
            snprintf(want + k, sizeof(want) - k, "%s%d-%d", k ? "," : "", c, e);
        c = e;
    }
    assert_string_equal(cpus, want);
    cu_daemon_stop(&d);
}

int main(void)
{
    return cu_run_test("promql-heads", "promql_heads", test_promql_heads);
}
