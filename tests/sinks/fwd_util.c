/* Helpers for the forwarding tests (fwd_util.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "fwd_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void fwd_require(const char *path, const char *package)
{
    if (access(path, X_OK) != 0) {
        printf("SKIP: %s is not installed (Debian package %s)\n", path, package);
        exit(CU_EXIT_SKIP);
    }
}

pid_t fwd_start_vm(int port, const char *dir)
{
    char data[256], listen[64];
    snprintf(data, sizeof(data), "-storageDataPath=./%s", dir);
    snprintf(listen, sizeof(listen), "-httpListenAddr=127.0.0.1:%d", port);
    pid_t pid = cu_spawn(
        "vm", (const char *const[]){"/usr/bin/victoria-metrics", data, listen, "-loggerLevel=ERROR",
                                    /* points just written are visible at once */
                                    "-search.latencyOffset=0s", "-search.disableCache", NULL});
    fwd_wait_http(port, "/health", 200, "vm");
    return pid;
}

void fwd_wait_http(int port, const char *path, int want, const char *tag)
{
    int status = 0;
    for (int i = 0; i < 300 && status != want; i++) {
        free(tproc_http_get(port, path, &status));
        if (status != want)
            usleep(50 * 1000);
    }
    if (status != want)
        fail_msg("%s did not answer %d on port %d (last: %d); stderr:\n%s", tag, want, port, status,
                 cu_output(tag, "err"));
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int fwd_vm_samples(int port, const char *match, int64_t *ts, int max, double *sum)
{
    int status = 0;
    free(tproc_http_get(port, "/internal/force_flush", &status));
    char path[512];
    snprintf(path, sizeof(path), "/api/v1/export?match[]=%s", match);
    char *body = tproc_http_get(port, path, &status);
    if (!body || status != 200) {
        free(body);
        return 0;
    }
    int n = 0;
    double s = 0;
    /* One JSON object per series: "values":[...],"timestamps":[...]. */
    for (const char *p = body; (p = strstr(p, "\"values\":["));) {
        p += 10;
        while (*p && *p != ']') {
            s += strtod(p, (char **)&p);
            if (*p == ',')
                p++;
        }
        const char *t = strstr(p, "\"timestamps\":[");
        if (!t)
            break;
        t += 14;
        while (*t && *t != ']') {
            int64_t v = strtoll(t, (char **)&t, 10);
            if (n < max)
                ts[n] = v;
            n++;
            if (*t == ',')
                t++;
        }
        p = t;
    }
    free(body);
    if (sum)
        *sum = s;
    qsort(ts, (size_t)(n < max ? n : max), sizeof(int64_t), cmp_i64);
    return n;
}

int fwd_vm_wait(int port, const char *match, int want, int timeout_ms)
{
    int64_t *ts = malloc(sizeof(int64_t) * (size_t)(want + 1));
    int n = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 200) {
        n = fwd_vm_samples(port, match, ts, want + 1, NULL);
        if (n >= want)
            break;
        usleep(200 * 1000);
    }
    free(ts);
    return n;
}

static int connect_to(int port, int type)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        fail_msg("cannot connect to 127.0.0.1:%d", port);
    return fd;
}

void fwd_send_tcp(int port, const char *text, size_t len)
{
    int fd = connect_to(port, SOCK_STREAM);
    for (size_t off = 0; off < len;) {
        ssize_t k = write(fd, text + off, len - off);
        if (k <= 0)
            fail_msg("write to port %d failed", port);
        off += (size_t)k;
    }
    close(fd);
}

void fwd_send_udp(int port, const char *text)
{
    int fd = connect_to(port, SOCK_DGRAM);
    assert_int_equal(send(fd, text, strlen(text), 0), (ssize_t)strlen(text));
    close(fd);
}

void fwd_send_points(int port, int n, int64_t t0_ms)
{
    size_t len;
    char *lp = fwd_points(0, n, t0_ms, &len);
    fwd_send_tcp(port, lp, len);
    free(lp);
}

char *fwd_points(int first, int n, int64_t t0_ms, size_t *len)
{
    size_t cap = (size_t)n * 48 + 1;
    char *buf = malloc(cap), *o = buf;
    for (int i = first; i < first + n; i++)
        o += snprintf(o, cap - (size_t)(o - buf), "fwd v=%d %lld000000\n", i,
                      (long long)(t0_ms + i));
    *len = (size_t)(o - buf);
    return buf;
}

long long fwd_stat(const char *sink, const char *col)
{
    char *r = tproc_ask("show forwarders");
    if (!r)
        return -1;
    const char *t = strstr(r, "# forwarders\n");
    long long sum = -1;
    if (t) {
        t += 13;
        /* Column index from the header line. */
        int idx = -1, k = 0;
        const char *eol = strchr(t, '\n');
        char head[1024];
        snprintf(head, sizeof(head), "%.*s", eol ? (int)(eol - t) : 0, t);
        for (char *save, *c = strtok_r(head, " ", &save); c; c = strtok_r(NULL, " ", &save), k++)
            if (strcmp(c, col) == 0)
                idx = k;
        for (const char *line = eol ? eol + 1 : ""; idx >= 0 && *line && *line != '\n';) {
            const char *end = strchr(line, '\n');
            char row[1024];
            snprintf(row, sizeof(row), "%.*s", end ? (int)(end - line) : (int)strlen(line), line);
            char *cells[32];
            int nc = 0;
            for (char *save, *c = strtok_r(row, " ", &save); c && nc < 32;
                 c = strtok_r(NULL, " ", &save))
                cells[nc++] = c;
            if (nc > idx && nc > 1 && strcmp(cells[1], sink) == 0)
                sum = (sum < 0 ? 0 : sum) + strtoll(cells[idx], NULL, 10);
            if (!end)
                break;
            line = end + 1;
        }
    }
    free(r);
    return sum;
}

long long fwd_stat_wait(const char *sink, const char *col, long long want, int timeout_ms)
{
    long long v = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        v = fwd_stat(sink, col);
        if (v >= want)
            break;
        usleep(50 * 1000);
    }
    return v;
}
