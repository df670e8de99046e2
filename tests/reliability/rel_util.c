#include "tests/reliability/rel_util.h"

#include "core/clock/clock.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t g_started[64];
static int g_n_started;

void rel_start(proc *p, const char *const *args)
{
    tproc_start(p, args);
    if (g_n_started < 64)
        g_started[g_n_started++] = p->pid;
}

bool rel_start_config(proc *p, const char *file, const char *yaml, int timeout_ms)
{
    tproc_write_file(file, yaml);
    rel_start(p, (const char *const[]){"--config", file, NULL});
    return tproc_wait_log(p, "msg=\"running:", timeout_ms);
}

int rel_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_n_started; i++) {
        if (waitpid(g_started[i], NULL, WNOHANG) == 0) {
            kill(g_started[i], SIGKILL);
            waitpid(g_started[i], NULL, 0);
        }
    }
    g_n_started = 0;
    return 0;
}

rf_json *rel_show(const char *cmd)
{
    char *reply = tproc_ask(cmd ? cmd : "show stats json");
    if (!reply)
        return NULL;
    rf_err err;
    rf_json *j = rf_json_parse(reply, &err);
    if (!j)
        fprintf(stderr, "rel_show %s: %s\n%.400s\n", cmd ? cmd : "stats", err.msg, reply);
    free(reply);
    return j;
}

uint64_t rel_sum_where(const rf_json *doc, const char *table, const char *col,
                       const char *match_col, const char *match_val)
{
    const rf_json *t = rf_json_get(doc, table);
    if (!t || t->type != RF_JSON_ARR)
        return 0;
    double sum = 0;
    for (const rf_json *row = t->child; row; row = row->next) {
        if (match_col) {
            const rf_json *m = rf_json_get(row, match_col);
            if (!m)
                continue;
            char buf[64];
            const char *v = m->type == RF_JSON_STR ? m->str : buf;
            if (m->type != RF_JSON_STR)
                snprintf(buf, sizeof(buf), "%.0f", m->num);
            if (strcmp(v, match_val) != 0)
                continue;
        }
        sum += rf_json_num(row, col, 0);
    }
    return (uint64_t)sum;
}

uint64_t rel_sum(const rf_json *doc, const char *table, const char *col)
{
    return rel_sum_where(doc, table, col, NULL, NULL);
}

uint64_t rel_obj(const rf_json *doc, const char *obj, const char *key)
{
    return (uint64_t)rf_json_num(rf_json_get(doc, obj), key, 0);
}

static uint64_t fingerprint(const rf_json *d)
{
    static const char *const cols[][2] = {{"listeners", "datagrams"},
                                          {"listeners", "reads"},
                                          {"listeners", "kernel_drops"},
                                          {"listeners", "lines_ok"},
                                          {"listeners", "rejected"},
                                          {"workers", "processed"},
                                          {"workers", "dropped_ring_full"},
                                          {"stages", "processed"},
                                          {"stages", "unknown_series"},
                                          {"stages", "to_store"},
                                          {"stages", "store_rejected"},
                                          {"sinks", "accepted"},
                                          {"sinks", "lines_out"},
                                          {"sinks", "dropped_queue_full"},
                                          {"storage_shards", "points_appended"},
                                          {"storage_shards", "blocks_written"}};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
        h = (h ^ rel_sum(d, cols[i][0], cols[i][1])) * 1099511628211ull;
    return h;
}

/* Whether every worker polled at least `min` times since `prev` (updated).
 * Counters that stand still prove nothing while the workers are off their
 * CPUs: on a starved machine a quiet half second can be a worker that has
 * not run, with datagrams still in its socket (rel_loss failed so once). */
static bool workers_ran(const rf_json *d, uint64_t *prev, size_t cap, uint64_t min)
{
    const rf_json *t = rf_json_get(d, "workers");
    if (!t || t->type != RF_JSON_ARR)
        return false;
    bool ran = true;
    size_t i = 0;
    for (const rf_json *row = t->child; row && i < cap; row = row->next, i++) {
        uint64_t polls = (uint64_t)rf_json_num(row, "polls", 0);
        if (polls < prev[i] + min)
            ran = false;
        prev[i] = polls;
    }
    return ran;
}

rf_json *rel_show_settled(int timeout_ms)
{
    rf_json *last = NULL;
    uint64_t prev = 0, polls[64] = {0};
    int same = 0;
    for (int t = 0; t < timeout_ms; t += 250) {
        rf_json *d = rel_show(NULL);
        if (d) {
            uint64_t f = fingerprint(d);
            bool ran = workers_ran(d, polls, 64, 3);
            same = (last && f == prev && ran) ? same + 1 : 0;
            prev = f;
            rf_json_free(last);
            last = d;
            if (same >= 2)
                return last;
        }
        usleep(250 * 1000);
    }
    fprintf(stderr, "rel_show_settled: not settled within %d ms; the last snapshot\n", timeout_ms);
    return last;
}

uint64_t rel_log_sum(const char *log, const char *needle, const char *key)
{
    uint64_t sum = 0;
    char k[64];
    snprintf(k, sizeof(k), " %s=", key);
    for (const char *line = log; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[2048];
        if (len >= sizeof(buf))
            len = sizeof(buf) - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        const char *n = strstr(buf, needle);
        if (n) {
            const char *p = strstr(n, k);
            if (p)
                sum += strtoull(strchr(p, '=') + 1, NULL, 10);
        }
        line = eol ? eol + 1 : NULL;
    }
    return sum;
}

uint64_t rel_sink_final_drops(const char *log, const char *sink)
{
    static const char *const reasons[] = {"queue_full", "disconnected", "unsupported", "oversize",
                                          "io_error"};
    char needle[128];
    snprintf(needle, sizeof(needle), "sink %s final:", sink);
    uint64_t drops = 0;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        drops += rel_log_sum(log, needle, reasons[i]);
    return drops;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* A socket of `type` connected to 127.0.0.1:port; -1 on failure. */
static int loopback_connect(int type, int port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = loopback(port);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int rel_udp_to(int port)
{
    return loopback_connect(SOCK_DGRAM, port);
}

int rel_tcp_to(int port)
{
    return loopback_connect(SOCK_STREAM, port);
}

int rel_tcp_listen(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rcvbuf)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in sa = loopback(port);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

uint64_t rel_drain_peer(int lfd)
{
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    uint64_t lines = 0;
    int c;
    static char buf[1 << 16];
    while ((c = accept(lfd, NULL, NULL)) >= 0) {
        ssize_t k;
        while ((k = read(c, buf, sizeof(buf))) > 0)
            for (ssize_t i = 0; i < k; i++)
                lines += buf[i] == '\n';
        close(c);
    }
    return lines;
}

bool rel_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t k = send(fd, p, len, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        p += k;
        len -= (size_t)k;
    }
    return true;
}

int rel_http_get(int port, const char *path, char *buf, size_t cap)
{
    int code;
    char *body = tproc_http_get(port, path, &code);
    if (!body)
        return -1;
    snprintf(buf, cap, "%s", body);
    free(body);
    return code;
}

int rel_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

long rel_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

char *rel_sh(const char *cmd, int *status)
{
    char full[4096];
    snprintf(full, sizeof(full), "cd '%s' && %s", tproc_dir(), cmd);
    FILE *p = popen(full, "r");
    if (!p)
        return strdup("");
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 4096)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    int st = pclose(p);
    if (status)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return buf;
}

uint64_t rel_store_count(const char *measurement)
{
    return rel_store_count_in("./data/store", measurement);
}

uint64_t rel_store_count_in(const char *dir, const char *measurement)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "'%s' query --dir '%s' --agg count --format csv %s",
             getenv("RINGFLOW"), dir, measurement);
    int st;
    char *out = rel_sh(cmd, &st);
    uint64_t total = 0;
    /* time_ns,measurement,field,tags,count: the last column of each row. */
    for (char *line = strchr(out, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char *eol = strchr(line + 1, '\n');
        if (eol)
            *eol = '\0';
        char *c = strrchr(line + 1, ',');
        if (c)
            total += strtoull(c + 1, NULL, 10);
        if (eol)
            *eol = '\n';
    }
    /* Exit 1 with no rows: nothing matched (ringflow query says so on its
     * stderr), which counts 0. */
    if (st != 0 && !(st == 1 && total == 0))
        fprintf(stderr, "query %s in %s failed (%d): %.300s\n", measurement, dir, st, out);
    free(out);
    return total;
}

uint64_t rel_softnet_drops(void)
{
    FILE *f = fopen("/proc/net/softnet_stat", "r");
    if (!f)
        return 0;
    uint64_t sum = 0;
    unsigned long processed, dropped;
    char line[512];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%lx %lx", &processed, &dropped) == 2)
            sum += dropped;
    fclose(f);
    return sum;
}

int64_t rel_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void lat_add(rel_lat_set *s, int64_t x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = x;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double rel_pct_ms(rel_lat_set *s, double q)
{
    if (!s->n)
        return 0;
    qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
    size_t i = (size_t)(q * (double)(s->n - 1));
    return (double)s->v[i] / 1e6;
}

rel_probe_rx *rel_probe_rx_open(int port, int n_probes)
{
    rel_probe_rx *rx = calloc(1, sizeof(*rx));
    rx->n_probes = n_probes;
    rx->seen = calloc((size_t)n_probes, 1);
    rx->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const char *failed = NULL;
    int big = 16 << 20, one = 1;
    struct sockaddr_in sa = loopback(port);
    if (rx->fd < 0) {
        failed = "socket";
    } else {
        /* Best effort: past net.core.rmem_max only with CAP_NET_ADMIN. */
        (void)setsockopt(rx->fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
        if (setsockopt(rx->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0)
            failed = "SO_TIMESTAMPNS";
        else if (bind(rx->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            failed = "bind";
    }
    if (failed) {
        fprintf(stderr, "probe receiver on port %d: %s: %s\n", port, failed, strerror(errno));
        rel_probe_rx_free(rx);
        return NULL;
    }
    return rx;
}

void rel_probe_rx_drain(rel_probe_rx *rx)
{
    char buf[65536];
    char ctrl[CMSG_SPACE(sizeof(struct timespec))];
    for (;;) {
        struct iovec iov = {buf, sizeof(buf) - 1};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof(ctrl)};
        ssize_t n = recvmsg(rx->fd, &mh, MSG_DONTWAIT);
        if (n <= 0)
            return;
        /* The kernel's receipt of the sink's datagram, not this thread's
         * (which competes for the two CPUs with the storm): taken to
         * CLOCK_MONOTONIC, the clock the probes carry. */
        int64_t now = rf_clock_mono_ns();
        const int64_t wall = rf_clock_wall_ns();
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                now -= wall - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
            }
        buf[n] = '\0';
        for (char *line = buf, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            const bool crit = strncmp(line, "rf_probe,lane=crit ", 19) == 0;
            const char *sent = strstr(line, " sent_mono_ns=");
            const char *seq = strstr(line, " seq=");
            if (sent) {
                int64_t t = strtoll(sent + 14, NULL, 10);
                lat_add(crit ? &rx->crit : &rx->routine, now - t);
            } else if (crit && seq) {
                long k = strtol(seq + 5, NULL, 10);
                if (k >= 0 && k < rx->n_probes) {
                    rx->dup += rx->seen[k];
                    rx->seen[k] = 1;
                }
            }
        }
    }
}

void rel_probe_rx_drain_for(rel_probe_rx *rx, int ms)
{
    for (int t = 0; t < ms; t += 10) {
        rel_probe_rx_drain(rx);
        struct timespec step = {0, 10 * 1000 * 1000};
        nanosleep(&step, NULL);
    }
}

uint32_t rel_probe_rx_seen(const rel_probe_rx *rx)
{
    uint32_t seen = 0;
    for (int i = 0; i < rx->n_probes; i++)
        seen += rx->seen[i];
    return seen;
}

void rel_probe_rx_free(rel_probe_rx *rx)
{
    if (!rx)
        return;
    if (rx->fd >= 0)
        close(rx->fd);
    free(rx->crit.v);
    free(rx->routine.v);
    free(rx->seen);
    free(rx);
}

bool rel_probe_send(int fd, int seq)
{
    char line[160];
    int len = snprintf(line, sizeof(line), "rf_probe,lane=crit seq=%di,sent_mono_ns=%lldi\n", seq,
                       (long long)rf_clock_mono_ns());
    return send(fd, line, (size_t)len, 0) == len;
}
