#include "daemon_proc.h"

#include "tools/cli/client.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <time.h>

extern char **environ;

static char g_dir[256];

/* Every directory tproc_dir_init made, removed at exit unless
 * RF_KEEP_TEST_DIRS is set (to look at a failed test's files). */
#define MAX_MADE_DIRS 64
static char g_made[MAX_MADE_DIRS][256];
static int g_n_made;
static pid_t g_maker; /* a forked child that exits does not remove them */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_made_dirs(void)
{
    if (getenv("RF_KEEP_TEST_DIRS") || getpid() != g_maker)
        return;
    for (int i = 0; i < g_n_made; i++)
        nftw(g_made[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tproc_dir_init(const char *prefix)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        abort();
    }
    if (g_n_made == 0) {
        g_maker = getpid();
        atexit(remove_made_dirs);
    }
    if (g_n_made < MAX_MADE_DIRS)
        memcpy(g_made[g_n_made++], g_dir, sizeof(g_dir));
    return g_dir;
}

const char *tproc_dir(void)
{
    return g_dir;
}

void tproc_write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        abort();
    }
    fputs(text, f);
    fclose(f);
}

char *tproc_shell(const char *cmd, int *status)
{
    char full[4096];
    snprintf(full, sizeof(full), "cd %s && %s", g_dir, cmd);
    FILE *p = popen(full, "r");
    if (!p) {
        *status = 128;
        return strdup("");
    }
    size_t cap = 1 << 16, len = 0, n;
    char *out = malloc(cap);
    while (out && (n = fread(out + len, 1, cap - 1 - len, p)) > 0) {
        len += n;
        if (cap - 1 - len == 0) {
            char *grown = realloc(out, cap * 2);
            if (!grown)
                break;
            out = grown;
            cap *= 2;
        }
    }
    if (out)
        out[len] = '\0';
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

char *tproc_shell_ok(const char *cmd)
{
    int status;
    char *out = tproc_shell(cmd, &status);
    if (out && status == 0)
        return out;
    fprintf(stderr, "`%s` exited %d:\n%s\n", cmd, status, out ? out : "(out of memory)");
    free(out);
    return NULL;
}

char *tproc_read_file(const char *path)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    if (!f)
        return strcpy(buf, "");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

char *tproc_read_dir_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    return tproc_read_file(path);
}

/* Every daemon started here, so that a test that fails (cmocka jumps out of
 * it, skipping its kill) leaves none running: a leftover daemon spins on
 * the pinned CPUs and makes the tests after it time out. */
#define TPROC_MAX_STARTED 64
static pid_t g_started[TPROC_MAX_STARTED];
static int g_n_started;

static void kill_leftovers(void)
{
    for (int i = 0; i < g_n_started; i++)
        if (g_started[i] > 0 && waitpid(g_started[i], NULL, WNOHANG) == 0) {
            kill(g_started[i], SIGKILL);
            waitpid(g_started[i], NULL, 0);
        }
}

void tproc_start(proc *p, const char *const *args)
{
    const char *bin = getenv("RINGFLOWD");
    if (!bin) {
        fprintf(stderr, "RINGFLOWD is not set\n");
        abort();
    }
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)bin;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    static int seq;
    seq++;
    snprintf(p->out_path, sizeof(p->out_path), "%s/stdout.%d", g_dir, seq);
    snprintf(p->err_path, sizeof(p->err_path), "%s/stderr.%d", g_dir, seq);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addchdir_np(&fa, g_dir);
    if (posix_spawn(&p->pid, bin, &fa, NULL, argv, environ) != 0) {
        perror("posix_spawn");
        abort();
    }
    posix_spawn_file_actions_destroy(&fa);
    if (g_n_started == 0)
        atexit(kill_leftovers);
    if (g_n_started < TPROC_MAX_STARTED)
        g_started[g_n_started++] = p->pid;
}

int tproc_wait_exit(proc *p, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 10) {
        int status;
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10 * 1000);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    return -1;
}

int tproc_run(const char *const *args, proc *p)
{
    tproc_start(p, args);
    return tproc_wait_exit(p, 10000);
}

int tproc_wait_log(proc *p, const char *needle, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (strstr(tproc_read_file(p->err_path), needle))
            return 1;
        usleep(20 * 1000);
    }
    return 0;
}

static int port_free(int type, int port)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Ten consecutive ports free for TCP and UDP right now, chosen at random
 * (once per process), so concurrent test runs do not collide. A port could
 * still be taken between this check and the daemon's bind; the range is
 * wide enough for that to be rare, and the daemon then fails loudly. */
int tproc_port_base(void)
{
    static int base;
    if (base)
        return base;
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    /* Below the kernel's ephemeral range (net.ipv4.ip_local_port_range,
     * 32768.. by default): a port found free there can be taken a moment
     * later by any outgoing connection of the machine, and the daemon's
     * bind then fails with EADDRINUSE. */
    int lo = 10000, hi = 32000;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int eph_lo = 0, eph_hi = 0;
    if (f) {
        if (fscanf(f, "%d %d", &eph_lo, &eph_hi) == 2 && eph_lo > lo + 1000)
            hi = eph_lo - 20;
        fclose(f);
    }
    for (int attempt = 0; attempt < 200; attempt++) {
        int b = lo + (rand() % ((hi - lo) / 10)) * 10;
        int ok = 1;
        for (int i = 0; i < 10 && ok; i++)
            ok = port_free(SOCK_STREAM, b + i) && port_free(SOCK_DGRAM, b + i);
        if (ok)
            return base = b;
    }
    fprintf(stderr, "no block of 10 free ports found\n");
    abort();
}

char *tproc_http_get(int port, const char *path, int *status)
{
    *status = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    char req[512];
    /* Connection: close: a server that keeps connections alive (the
     * receivers the forwarding tests start) ends the response by closing. */
    int rl = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    size_t cap = 4 << 20, len = 0;
    char *buf = malloc(cap);
    if (!buf || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        free(buf);
        close(fd);
        return NULL;
    }
    /* The server closes after one response; 5 s without a byte is a failure. */
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1)
            break;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    char *body = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.1 %d", status) != 1 || !body) {
        *status = -1;
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

char *tproc_ask(const char *cmd)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/run/ringflow.sock", tproc_dir());
    int fd = rf_cli_connect(path);
    if (fd < 0)
        return NULL;
    char *reply = NULL;
    int rc = rf_cli_request(fd, cmd, RF_CLI_TIMEOUT_MS, &reply);
    close(fd);
    if (rc < 0) {
        free(reply);
        return NULL;
    }
    return reply;
}
