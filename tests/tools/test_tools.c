/* Tests of the companion tools: `ringflow record`, `ringflow replay`, the
 * recording format, `ringflow load`'s deterministic output, and `ringflow top`
 * without a terminal.
 *
 * The commands run as child processes of the built `ringflow` binary (its
 * path is argv[1], passed by meson) against sockets this test owns on
 * loopback; the recording format is checked through storage/recfile/recfile.h.
 * Every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock/clock.h"
#include "storage/recfile/recfile.h"
#include "tools/replay/replay.h"

static const char *g_ringflow;
static char g_dir[256];

/* ---- helpers ------------------------------------------------------------- */

static void path_in(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", g_dir, name);
}

/* Starts argv (argv[0] is replaced by the ringflow binary); stderr of the
 * child goes to *err_fd when err_fd is not NULL, stdout to /dev/null. */
static pid_t spawn(char *const argv[], int *err_fd)
{
    int p[2] = {-1, -1};
    if (err_fd)
        assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        if (err_fd) {
            dup2(p[1], STDERR_FILENO);
            close(p[0]);
            close(p[1]);
        }
        execv(g_ringflow, argv);
        _exit(127);
    }
    if (err_fd) {
        close(p[1]);
        *err_fd = p[0];
    }
    return pid;
}

/* Waits at most timeout_ms for pid; kills it past that. Returns the exit code. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int status = 0;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (waited >= timeout_ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("child %d did not exit within %d ms", (int)pid, timeout_ms);
        }
        usleep(10000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run(char *const argv[], int timeout_ms)
{
    return wait_exit(spawn(argv, NULL), timeout_ms);
}

/* Reads the child's stderr until `n` "listening on" lines arrived; returns
 * the ports in order. */
static void read_ports(int fd, uint16_t *ports, int n)
{
    char buf[4096];
    size_t len = 0;
    int found = 0;
    int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while (found < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_true(rf_clock_mono_ns() < deadline);
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        assert_true(r > 0);
        len += (size_t)r;
        buf[len] = '\0';
        found = 0;
        for (char *p = buf; (p = strstr(p, "listening on ")); p++) {
            char *colon = strchr(p, ' ');
            colon = strchr(colon + 1, ' ');
            colon = strchr(colon + 1, ' ');
            char *end = strchr(colon, '(');
            if (!end)
                break;
            char *c = end;
            while (c > colon && *c != ':')
                c--;
            if (found < n)
                ports[found] = (uint16_t)atoi(c + 1);
            found++;
        }
    }
}

static int udp_receiver(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int rb = 16 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rb, sizeof(rb));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

typedef struct dgrams {
    char *data[4096];
    size_t len[4096];
    size_t n;
} dgrams;

/* Collects datagrams until none arrived for quiet_ms. */
static void collect(int fd, dgrams *d, int quiet_ms)
{
    char buf[65536];
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, quiet_ms) <= 0)
            return;
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        assert_true(r >= 0);
        assert_true(d->n < 4096);
        d->data[d->n] = malloc((size_t)r + 1);
        memcpy(d->data[d->n], buf, (size_t)r);
        d->data[d->n][r] = '\0';
        d->len[d->n++] = (size_t)r;
    }
}

static void dgrams_free(dgrams *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->data[i]);
    d->n = 0;
}

/* Concatenation of the datagrams (malloc'ed, NUL-terminated). */
static char *dgrams_join(const dgrams *d, size_t *len_out)
{
    size_t len = 0;
    for (size_t i = 0; i < d->n; i++)
        len += d->len[i];
    char *s = malloc(len + 1), *p = s;
    for (size_t i = 0; i < d->n; i++) {
        memcpy(p, d->data[i], d->len[i]);
        p += d->len[i];
    }
    *p = '\0';
    if (len_out)
        *len_out = len;
    return s;
}

typedef struct rec_list {
    rf_rec r[256];
    char *payload[256];
    char name[256][64];
    size_t n;
} rec_list;

/* Reads a recording; returns the reader's last result (0 clean, <0 torn). */
static int read_all(const char *path, rec_list *out)
{
    rf_rec_reader *rd;
    rf_err err;
    out->n = 0;
    int rc = rf_rec_reader_open(&rd, path, &err);
    if (rc)
        return rc;
    rf_rec r;
    while ((rc = rf_rec_reader_next(rd, &r, &err)) > 0 && out->n < 256) {
        out->r[out->n] = r;
        out->payload[out->n] = malloc(r.payload_len + 1);
        memcpy(out->payload[out->n], r.payload, r.payload_len);
        out->payload[out->n][r.payload_len] = '\0';
        snprintf(out->name[out->n], 64, "%s", r.name);
        out->n++;
    }
    rf_rec_reader_close(rd);
    return rc;
}

static void rec_list_free(rec_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->payload[i]);
    l->n = 0;
}

static void write_recording(const char *path, const rf_rec *recs, size_t n)
{
    rf_rec_writer *w;
    rf_err err;
    rf_rec_writer_options wo = {.path = path};
    assert_int_equal(rf_rec_writer_open(&w, &wo, &err), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rf_rec_writer_append(w, &recs[i], &err), 0);
    assert_int_equal(rf_rec_writer_close(w, &err), 0);
}

/* ---- record ---------------------------------------------------------------- */

static const char *const k_udp_payloads[] = {
    "cpu,host=a usage=1 1700000000000000000",
    "cpu,host=b usage=2\ncpu,host=c usage=3\n",
    "mem,host=a free=42i",
};

static void test_record_udp_tcp(void **state)
{
    (void)state;
    char out[512];
    path_in(out, sizeof(out), "cap.rfrec");
    char *argv[] = {"ringflow", "record", "--udp",      "0",  "--tcp", "0/graphite",
                    "-o",       out,      "--duration", "20", NULL};
    int err_fd;
    pid_t pid = spawn(argv, &err_fd);
    uint16_t ports[2];
    read_ports(err_fd, ports, 2);

    /* UDP from a socket whose source port we know. */
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons(ports[0]),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(u, (struct sockaddr *)&dst, sizeof(dst)), 0);
    struct sockaddr_in me;
    socklen_t ml = sizeof(me);
    getsockname(u, (struct sockaddr *)&me, &ml);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(send(u, k_udp_payloads[i], strlen(k_udp_payloads[i]), 0),
                         (ssize_t)strlen(k_udp_payloads[i]));
    usleep(100000); /* UDP first, then TCP: the recording keeps arrival order */

    int t = socket(AF_INET, SOCK_STREAM, 0);
    dst.sin_port = htons(ports[1]);
    assert_int_equal(connect(t, (struct sockaddr *)&dst, sizeof(dst)), 0);
    const char *tcp1 = "a.b 1 1700000000\nc.d 2", *tcp2 = " 1700000001\ne.f 3";
    assert_int_equal(send(t, tcp1, strlen(tcp1), 0), (ssize_t)strlen(tcp1));
    usleep(50000);
    assert_int_equal(send(t, tcp2, strlen(tcp2), 0), (ssize_t)strlen(tcp2));
    close(t); /* "e.f 3" arrives unterminated: recorded with the FINAL flag */
    usleep(200000);
    kill(pid, SIGTERM);
    assert_int_equal(wait_exit(pid, 5000), 0);
    close(err_fd);
    close(u);

    rec_list l;
    assert_int_equal(read_all(out, &l), 0);
    assert_true(l.n >= 5);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(l.payload[i], k_udp_payloads[i]);
        assert_int_equal(l.r[i].transport, RF_REC_UDP);
        assert_int_equal(l.r[i].protocol, RF_REC_INFLUX);
        assert_string_equal(l.name[i], "influx_line-udp");
        assert_int_equal(l.r[i].src_family, 4);
        assert_int_equal(l.r[i].src_port, ntohs(me.sin_port));
        assert_int_equal(l.r[i].conn, 0);
        assert_true(l.r[i].wall_ns > 1600000000LL * RF_NS_PER_S);
        if (i)
            assert_true(l.r[i].mono_ns >= l.r[i - 1].mono_ns);
    }
    /* TCP: chunks of whole lines; their concatenation is the stream. */
    char stream[256] = "";
    for (size_t i = 3; i < l.n; i++) {
        assert_int_equal(l.r[i].transport, RF_REC_TCP);
        assert_int_equal(l.r[i].protocol, RF_REC_GRAPHITE);
        assert_string_equal(l.name[i], "graphite-tcp");
        assert_int_equal(l.r[i].conn, 1);
        if (i + 1 < l.n)
            assert_int_equal(l.payload[i][l.r[i].payload_len - 1], '\n');
        strcat(stream, l.payload[i]);
    }
    assert_true(l.r[3].flags & RF_REC_F_OPEN);
    assert_true(l.r[l.n - 1].flags & RF_REC_F_FINAL);
    assert_string_equal(stream, "a.b 1 1700000000\nc.d 2 1700000001\ne.f 3");
    rec_list_free(&l);
}

/* Every truncation of a recording reads back as its complete prefix, then a
 * torn-tail error (or a clean end exactly at a record boundary); a flipped
 * byte is a checksum error; never a partial payload. */
static void test_torn_tail(void **state)
{
    (void)state;
    char path[512], cut[512];
    path_in(path, sizeof(path), "torn.rfrec");
    path_in(cut, sizeof(cut), "torn-cut.rfrec");
    rf_rec recs[4];
    const char *pl[4] = {"one 1\n", "two 2\n", "three 3\n", "four 4\n"};
    size_t ends[4], off = RF_REC_HEADER_SIZE;
    for (int i = 0; i < 4; i++) {
        recs[i] = (rf_rec){.wall_ns = 1000 + i,
                           .mono_ns = 10 + i,
                           .name = "x",
                           .payload = (const uint8_t *)pl[i],
                           .payload_len = (uint32_t)strlen(pl[i])};
        off += RF_REC_FIXED_SIZE + 1 + strlen(pl[i]) + RF_REC_CRC_SIZE;
        ends[i] = off;
    }
    write_recording(path, recs, 4);
    FILE *f = fopen(path, "rb");
    char buf[1024];
    size_t total = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_int_equal(total, ends[3]);
    for (size_t len = RF_REC_HEADER_SIZE; len <= total; len++) {
        f = fopen(cut, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        size_t complete = 0;
        while (complete < 4 && ends[complete] <= len)
            complete++;
        rec_list l;
        int rc = read_all(cut, &l);
        assert_int_equal(l.n, complete);
        for (size_t i = 0; i < l.n; i++)
            assert_string_equal(l.payload[i], pl[i]);
        bool boundary = len == RF_REC_HEADER_SIZE || (complete && ends[complete - 1] == len);
        assert_int_equal(rc, boundary ? 0 : -EBADMSG);
        rec_list_free(&l);
    }
    /* A flipped payload byte in record 2 (index 1). */
    buf[ends[0] + RF_REC_FIXED_SIZE + 2] ^= 0x20;
    f = fopen(cut, "wb");
    fwrite(buf, 1, total, f);
    fclose(f);
    rec_list l;
    assert_int_equal(read_all(cut, &l), -EBADMSG);
    assert_int_equal(l.n, 1);
    rec_list_free(&l);
    /* A short header is not a recording. */
    f = fopen(cut, "wb");
    fwrite(buf, 1, 10, f);
    fclose(f);
    rf_rec_reader *rd;
    assert_int_equal(rf_rec_reader_open(&rd, cut, NULL), -EBADMSG);
}

static void test_rotation(void **state)
{
    (void)state;
    char base[512];
    path_in(base, sizeof(base), "rot.rfrec");
    rf_rec_writer *w;
    rf_rec_writer_options wo = {.path = base, .max_bytes = 4096, .max_files = 3};
    assert_int_equal(rf_rec_writer_open(&w, &wo, NULL), 0);
    char payload[200];
    for (int i = 0; i < 100; i++) {
        snprintf(payload, sizeof(payload), "m v=%di %0180d\n", i, 0);
        rf_rec r = {.wall_ns = i,
                    .mono_ns = i,
                    .name = "l",
                    .payload = (const uint8_t *)payload,
                    .payload_len = (uint32_t)strlen(payload)};
        assert_int_equal(rf_rec_writer_append(w, &r, NULL), 0);
    }
    rf_rec_writer_stats ws;
    rf_rec_writer_stats_read(w, &ws);
    assert_int_equal(rf_rec_writer_close(w, NULL), 0);
    assert_true(ws.files > 3);
    assert_int_equal(ws.deleted, ws.files - 3);
    char **files;
    int n = rf_rec_list_rotated(base, &files, NULL);
    assert_int_equal(n, 3);
    int64_t expect = -1;
    for (int i = 0; i < n; i++) {
        struct stat st;
        assert_int_equal(stat(files[i], &st), 0);
        assert_true(st.st_size <= 4096);
        rec_list l;
        assert_int_equal(read_all(files[i], &l), 0);
        for (size_t k = 0; k < l.n; k++) {
            if (expect >= 0)
                assert_int_equal(l.r[k].wall_ns, expect);
            expect = l.r[k].wall_ns + 1;
        }
        rec_list_free(&l);
        free(files[i]);
    }
    free(files);
    assert_int_equal(expect, 100); /* the newest files survive, in order */
}

/* ---- replay ------------------------------------------------------------------ */

static char *run_stdout(char *const argv[], int timeout_ms, int *code);

static void test_replay_recording_udp(void **state)
{
    (void)state;
    char path[512], port_arg[32];
    path_in(path, sizeof(path), "replay.rfrec");
    /* A big TCP chunk (cut at lines for UDP), datagrams, 100 ms apart. */
    static char big[3000];
    big[0] = '\0';
    for (int i = 0; i < 100; i++)
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "big,n=%02d v=%di\n", i, i);
    const int64_t base = 1700000000LL * RF_NS_PER_S;
    rf_rec recs[] = {
        {.wall_ns = base,
         .mono_ns = 0,
         .name = "influx_line-udp",
         .payload = (const uint8_t *)"cpu v=1",
         .payload_len = 7},
        {.wall_ns = base + 100 * RF_NS_PER_MS,
         .mono_ns = 100 * RF_NS_PER_MS,
         .name = "influx_line-udp",
         .payload = (const uint8_t *)"cpu v=2 5\nmem v=3\n",
         .payload_len = 18},
        {.wall_ns = base + 200 * RF_NS_PER_MS,
         .mono_ns = 200 * RF_NS_PER_MS,
         .name = "influx_line-tcp",
         .transport = RF_REC_TCP,
         .conn = 1,
         .payload = (const uint8_t *)big,
         .payload_len = (uint32_t)strlen(big)},
    };
    write_recording(path, recs, 3);

    uint16_t port;
    int fd = udp_receiver(&port);
    snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%u", port);

    /* As recorded: 200 ms at least; datagrams byte-identical; the chunk cut
     * into datagrams of <= 1000 bytes at line ends. */
    int64_t t0 = rf_clock_mono_ns();
    char *a1[] = {"ringflow", "replay",  "--target", port_arg, "--max-datagram",
                  "1000",     "--quiet", path,       NULL};
    assert_int_equal(run(a1, 10000), 0);
    int64_t took = rf_clock_mono_ns() - t0;
    assert_true(took >= 190 * RF_NS_PER_MS);
    dgrams d = {0};
    collect(fd, &d, 300);
    assert_true(d.n >= 4);
    assert_string_equal(d.data[0], "cpu v=1");
    assert_string_equal(d.data[1], "cpu v=2 5\nmem v=3\n");
    size_t joined_len;
    dgrams rest = {0};
    for (size_t i = 2; i < d.n; i++) {
        assert_true(d.len[i] <= 1000);
        assert_int_equal(d.data[i][d.len[i] - 1], '\n');
        rest.data[rest.n] = d.data[i];
        rest.len[rest.n++] = d.len[i];
    }
    char *joined = dgrams_join(&rest, &joined_len);
    assert_string_equal(joined, big);
    free(joined);
    dgrams_free(&d);

    /* Two listeners in one recording, one target: said and counted (the
     * record of the second listener, same protocol). */
    char *aj[] = {"ringflow", "replay", "--target", port_arg, "--speed",
                  "max",      "--json", "--quiet",  path,     NULL};
    int code = -1;
    char *js = run_stdout(aj, 10000, &code);
    assert_int_equal(code, 0);
    assert_non_null(strstr(js, "\"other_listeners\":1,\"other_protocols\":0"));
    free(js);
    collect(fd, &d, 300);
    dgrams_free(&d);

    /* --speed max and --rewrite-timestamps: the recorded wall times appear.
     * The two UDP records are 5 s apart here, so a paced replay could not
     * finish within the bound, which still leaves room for a slow start
     * (ASan, a loaded machine: a 150 ms bound on 100 ms apart failed there). */
    char path2[512];
    path_in(path2, sizeof(path2), "replay-far.rfrec");
    rf_rec far[] = {recs[0], recs[1]};
    far[1].wall_ns = base + 5 * RF_NS_PER_S;
    far[1].mono_ns = 5 * RF_NS_PER_S;
    write_recording(path2, far, 2);
    char *a2[] = {"ringflow",
                  "replay",
                  "--target",
                  port_arg,
                  "--speed",
                  "max",
                  "--rewrite-timestamps",
                  "--listener",
                  "influx_line-udp",
                  "--quiet",
                  path2,
                  NULL};
    t0 = rf_clock_mono_ns();
    assert_int_equal(run(a2, 10000), 0);
    assert_true(rf_clock_mono_ns() - t0 < 2500 * RF_NS_PER_MS);
    collect(fd, &d, 300);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.data[0], "cpu v=1 1700000000000000000");
    assert_string_equal(d.data[1], "cpu v=2 5\nmem v=3 1700000005000000000\n");
    dgrams_free(&d);

    /* Over TCP (to nobody): a clear failure, exit 1. */
    char *a3[] = {"ringflow", "replay",  "--target", "127.0.0.1:1", "--transport",
                  "tcp",      "--quiet", path,       NULL};
    assert_int_equal(run(a3, 10000), 1);
    /* Usage errors: exit 2. */
    char *a4[] = {"ringflow", "replay", "--speed", "0", path, NULL};
    assert_int_equal(run(a4, 10000), 2);
    close(fd);
}

static void test_rewrite_functions(void **state)
{
    (void)state;
    char out[1024];
    uint64_t n = 0;
    const char *in = "m,t=a\\ b f=1\n" /* escaped space in a tag */
                     "m f=\"a b c\"\n" /* quoted string with spaces */
                     "m f=1 123\n"     /* has a timestamp */
                     "# comment\n"
                     "\n"
                     "m f=2\r\n"          /* CRLF: the time goes before \r */
                     "m f=\"x\\\" y\" 7"; /* escaped quote, has a timestamp */
    size_t len = rf_replay_rewrite_influx(in, strlen(in), 5000000123LL, 0, out, &n);
    out[len] = '\0';
    assert_string_equal(out, "m,t=a\\ b f=1 5000000123\n"
                             "m f=\"a b c\" 5000000123\n"
                             "m f=1 123\n"
                             "# comment\n"
                             "\n"
                             "m f=2 5000000123\r\n"
                             "m f=\"x\\\" y\" 7");
    assert_int_equal(n, 3);
    n = 0;
    len = rf_replay_rewrite_influx("m f=1", 5, 5000000123LL, 3, out, &n); /* seconds */
    out[len] = '\0';
    assert_string_equal(out, "m f=1 5");
    n = 0;
    const char *g = "a.b 1\nc.d 2 -1\ne.f 3 100\n";
    len = rf_replay_rewrite_graphite(g, strlen(g), 7 * RF_NS_PER_S + 5, out, &n);
    out[len] = '\0';
    assert_string_equal(out, "a.b 1 7\nc.d 2 7\ne.f 3 100\n");
    assert_int_equal(n, 2);
}

/* A classic pcap (Ethernet) with UDP/IPv4 and UDP/IPv6 datagrams to the
 * engine's port, one to another port, a TCP segment and an IPv4 fragment. */
static size_t put_pkt(uint8_t *out, uint32_t usec, const uint8_t *frame, size_t len)
{
    uint32_t h[4] = {1700000000u, usec, (uint32_t)len, (uint32_t)len};
    memcpy(out, h, 16);
    memcpy(out + 16, frame, len);
    return 16 + len;
}

static size_t eth_udp4(uint8_t *f, uint16_t dport, const char *payload, bool fragment,
                       uint8_t proto)
{
    size_t pl = strlen(payload);
    memset(f, 0, 14 + 28);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    uint16_t tot = (uint16_t)(28 + pl);
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    if (fragment)
        ip[6] = 0x20; /* MF */
    ip[8] = 64;
    ip[9] = proto;
    ip[12] = 127, ip[15] = 1, ip[16] = 127, ip[19] = 1;
    uint8_t *udp = ip + 20;
    udp[0] = 0x30, udp[1] = 0x39;
    udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
    udp[4] = (uint8_t)((8 + pl) >> 8), udp[5] = (uint8_t)(8 + pl);
    memcpy(udp + 8, payload, pl);
    return 14 + 28 + pl;
}

static size_t eth_udp6(uint8_t *f, uint16_t dport, const char *payload)
{
    size_t pl = strlen(payload);
    memset(f, 0, 14 + 48);
    f[12] = 0x86, f[13] = 0xdd;
    uint8_t *ip = f + 14;
    ip[0] = 0x60;
    ip[4] = (uint8_t)((8 + pl) >> 8), ip[5] = (uint8_t)(8 + pl);
    ip[6] = 17;
    ip[7] = 64;
    ip[23] = 1, ip[39] = 1;
    uint8_t *udp = ip + 40;
    udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
    udp[4] = (uint8_t)((8 + pl) >> 8), udp[5] = (uint8_t)(8 + pl);
    memcpy(udp + 8, payload, pl);
    return 14 + 48 + pl;
}

static void test_replay_pcap(void **state)
{
    (void)state;
    char path[512], port_arg[32];
    path_in(path, sizeof(path), "cap.pcap");
    static uint8_t file[8192], frame[2048];
    size_t off = 0;
    uint32_t gh[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1};
    memcpy(file, gh, 24);
    off = 24;
    off += put_pkt(file + off, 0, frame, eth_udp4(frame, 8089, "p1 v=1\n", false, 17));
    off += put_pkt(file + off, 1000, frame, eth_udp4(frame, 9999, "other v=1\n", false, 17));
    off += put_pkt(file + off, 2000, frame, eth_udp4(frame, 8089, "tcp v=1\n", false, 6));
    off += put_pkt(file + off, 3000, frame, eth_udp4(frame, 8089, "frag v=1\n", true, 17));
    off += put_pkt(file + off, 4000, frame, eth_udp6(frame, 8089, "p6 v=2\n"));
    off += put_pkt(file + off, 5000, frame, eth_udp4(frame, 8089, "p3 v=3", false, 17));
    FILE *f = fopen(path, "wb");
    fwrite(file, 1, off, f);
    fclose(f);

    uint16_t port;
    int fd = udp_receiver(&port);
    snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%u", port);
    char *argv[] = {"ringflow", "replay",  "--target", port_arg, "--pcap-port",
                    "8089",     "--quiet", path,       NULL};
    assert_int_equal(run(argv, 10000), 0);
    dgrams d = {0};
    collect(fd, &d, 300);
    assert_int_equal(d.n, 3);
    assert_string_equal(d.data[0], "p1 v=1\n");
    assert_string_equal(d.data[1], "p6 v=2\n");
    assert_string_equal(d.data[2], "p3 v=3");
    dgrams_free(&d);
    close(fd);
}

/* ---- load ----------------------------------------------------------------------- */

static char *load_once(const char *port_arg, int fd, const char *sockets)
{
    char *argv[] = {"ringflow", "load",   "--target",  (char *)port_arg, "--count",
                    "200",      "--rate", "0",         "--series",       "10",
                    "--seed",   "7",      "--sockets", (char *)sockets,  "--quiet",
                    NULL};
    assert_int_equal(run(argv, 10000), 0);
    dgrams d = {0};
    collect(fd, &d, 300);
    char *all = dgrams_join(&d, NULL);
    dgrams_free(&d);
    return all;
}

static void test_load_deterministic(void **state)
{
    (void)state;
    uint16_t port;
    int fd = udp_receiver(&port);
    char port_arg[32];
    snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%u", port);
    char *a = load_once(port_arg, fd, "1");
    char *b = load_once(port_arg, fd, "3");
    assert_string_equal(a, b); /* same seed, same stream, however many sockets */
    size_t lines = 0;
    for (char *line = a, *nl; (nl = strchr(line, '\n')); line = nl + 1, lines++) {
        *nl = '\0';
        unsigned s, t1, t2, fp;
        int ip;
        int consumed = 0;
        assert_int_equal(sscanf(line, "load,series=s%u,t1=v%u,t2=v%u f0=%d.%u%n", &s, &t1, &t2, &ip,
                                &fp, &consumed),
                         5);
        assert_int_equal((size_t)consumed, strlen(line)); /* no timestamp by default */
        assert_int_equal(s, lines % 10);
        assert_int_equal(t1, s % 10);
        assert_int_equal(t2, s % 17);
        const char *dot = strchr(line, '.');
        assert_int_equal(strlen(dot + 1), 2); /* --decimals 2 */
    }
    assert_int_equal(lines, 200);
    free(a);
    free(b);
    close(fd);
}

/* Bursts: the integral of the piecewise rate. 1 s of 1000/s with 20000/s for
 * 0.1 s of every 0.5 s: 2 x (0.1 x 20000 + 0.4 x 1000) = 4800 events. */
static void test_load_burst(void **state)
{
    (void)state;
    uint16_t port;
    int fd = udp_receiver(&port);
    char port_arg[32];
    snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%u", port);
    char *argv[] = {"ringflow", "load",          "--target",   port_arg, "--rate",  "1000",
                    "--burst",  "20000:0.1:0.5", "--duration", "1",      "--quiet", NULL};
    assert_int_equal(run(argv, 10000), 0);
    dgrams d = {0};
    collect(fd, &d, 300);
    size_t len;
    char *all = dgrams_join(&d, &len);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += all[i] == '\n';
    assert_true(lines >= 4500 && lines <= 4900);
    free(all);
    dgrams_free(&d);
    char *bad[] = {"ringflow", "load", "--rate", "0", "--burst", "10:1:2", NULL};
    assert_int_equal(run(bad, 10000), 2);
    close(fd);
}

/* Runs argv and returns what it printed on stdout (malloc'ed, NUL-terminated). */
static char *run_stdout(char *const argv[], int timeout_ms, int *code)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        close(p[0]);
        close(p[1]);
        execv(g_ringflow, argv);
        _exit(127);
    }
    close(p[1]);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    int64_t deadline = rf_clock_mono_ns() + (int64_t)timeout_ms * RF_NS_PER_MS;
    for (;;) {
        if (rf_clock_mono_ns() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            close(p[0]);
            free(out);
            fail_msg("%s %s did not finish within %d ms", argv[0], argv[1], timeout_ms);
        }
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t r = read(p[0], out + len, cap - 1 - len);
        assert_true(r >= 0);
        if (r == 0)
            break;
        len += (size_t)r;
        assert_true(len < cap - 1);
    }
    out[len] = '\0';
    close(p[0]);
    *code = wait_exit(pid, timeout_ms);
    return out;
}

/* --critical: the summary counts the probe lines that were sent, in every
 * protocol (it said 0 for StatsD and Graphite, whose probes carry no seq). */
static void test_load_probes_counted(void **state)
{
    (void)state;
    static const struct {
        const char *proto, *probe_prefix;
    } cases[] = {
        {"influx", "rf_probe,gen=ringflow-load seq="},
        {"statsd", "rf_probe.sent_mono_ns:"},
        {"graphite", "rf_probe.sent_mono_ns "},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint16_t port;
        int fd = udp_receiver(&port);
        char port_arg[32];
        snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%u", port);
        char *argv[] = {
            "ringflow", "load", "--target", port_arg,  "--protocol", (char *)cases[c].proto,
            "--count",  "2000", "--rate",   "0",       "--critical", "0.5",
            "--seed",   "3",    "--json",   "--quiet", NULL};
        int code = -1;
        char *summary = run_stdout(argv, 10000, &code);
        assert_int_equal(code, 0);
        dgrams d = {0};
        collect(fd, &d, 300);
        char *all = dgrams_join(&d, NULL);
        dgrams_free(&d);
        close(fd);

        unsigned long probes = 0, lines = 0, seq = 0;
        for (char *line = all, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
            *nl = '\0';
            lines++;
            if (strncmp(line, "rf_probe", 8) != 0)
                continue;
            assert_memory_equal(line, cases[c].probe_prefix, strlen(cases[c].probe_prefix));
            probes++;
            if (c == 0) { /* line protocol: seq counts 1, 2, ... */
                unsigned long got = strtoul(line + strlen(cases[c].probe_prefix), NULL, 10);
                assert_int_equal(got, ++seq);
            }
        }
        free(all);
        assert_int_equal(lines, 2000);
        /* Half of 2000 lines, give or take (binomial, sd ~22). */
        assert_true(probes > 800 && probes < 1200);
        const char *pj = strstr(summary, "\"probes\":");
        assert_non_null(pj);
        assert_int_equal(strtoul(pj + 9, NULL, 10), probes);
        free(summary);
    }
}

/* ---- top ------------------------------------------------------------------------ */

static pid_t g_fake_server = -1;

static int kill_fake_server(void **state)
{
    (void)state;
    if (g_fake_server > 0) {
        kill(g_fake_server, SIGKILL);
        waitpid(g_fake_server, NULL, 0);
    }
    g_fake_server = -1;
    return 0;
}

/* A stand-in for ringflowd's stats socket (a child process, in
 * g_fake_server): answers every `show stats json` with a fixed document, on
 * any number of connections, until it is killed. */
static pid_t fake_stats_socket(const char *path)
{
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t pl = strlen(path);
    assert_true(pl < sizeof(a.sun_path));
    memcpy(a.sun_path, path, pl + 1);
    unlink(path);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 8), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        close(l);
        g_fake_server = pid;
        return pid;
    }
    /* Counters grow by a fixed step per request: top's rates come from
     * two snapshots. */
    unsigned long k = 0;
    char reply[2048];
    for (;;) {
        int c = accept(l, NULL, NULL);
        if (c < 0)
            continue;
        char buf[256];
        size_t len = 0;
        ssize_t n;
        while ((n = read(c, buf + len, sizeof(buf) - 1 - len)) > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            char *nl;
            while ((nl = strchr(buf, '\n'))) {
                k++;
                int rl = snprintf(
                    reply, sizeof(reply),
                    "{\"info\": {\"version\": \"9.9.9-fake\", \"pid\": 4242, \"uptime_s\": 75, "
                    "\"workers\": 1, \"rss_bytes\": 1048576, \"config\": \"fake.yaml\", "
                    "\"log_level\": \"info\"}, \"workers\": [{\"worker\": 0, \"name\": \"w0\", "
                    "\"state\": \"running\", \"cpu\": 1, \"events_per_s\": 12.5}], "
                    "\"listeners\": [{\"worker\": 0, \"listener\": \"lp\", \"protocol\": "
                    "\"influx_line\", \"transport\": \"udp\", \"events\": %lu, \"bytes\": %lu, "
                    "\"rejected\": 0, \"kernel_drops\": 0, \"connections\": 0}], "
                    "\"storage_shards\": [{\"shard\": 0, \"series\": 10, \"points_appended\": %lu, "
                    "\"bytes_written\": %lu, \"points_buffered\": 5}]}\n\n",
                    1000 * k, 64000 * k, 500 * k, 32768 * k);
                if (!strncmp(buf, "show stats json", 15) && write(c, reply, (size_t)rl) != rl)
                    _exit(1);
                len -= (size_t)(nl + 1 - buf);
                memmove(buf, nl + 1, len + 1);
            }
        }
        close(c);
    }
}

static size_t count_str(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Without a terminal on stdout (here a pipe) top prints plain frames and
 * exits: one by default, N with --iterations N (an interval apart); it used
 * to redraw forever. Unreachable daemon: one error frame, exit status 1. */
static void test_top_without_terminal(void **state)
{
    (void)state;
    char sock[512];
    path_in(sock, sizeof(sock), "top.sock");
    fake_stats_socket(sock);

    char *one[] = {"ringflow", "top", "--socket", sock, NULL};
    int code = -1;
    int64_t t0 = rf_clock_mono_ns();
    char *out = run_stdout(one, 5000, &code);
    assert_int_equal(code, 0);
    assert_true(rf_clock_mono_ns() - t0 < 3 * RF_NS_PER_S); /* did not wait a second frame out */
    assert_int_equal(count_str(out, "ringflow top  "), 1);
    assert_non_null(strstr(out, "version 9.9.9-fake  pid 4242  up 1m15s  workers 1"));
    assert_non_null(strstr(out, "running"));
    assert_null(strchr(out, '\033')); /* no screen control codes in a pipe */
    assert_null(strstr(out, "q or Ctrl-C quits"));
    free(out);

    char *three[] = {"ringflow", "top",        "--socket", sock, "--iterations",
                     "3",        "--interval", "200",      NULL};
    t0 = rf_clock_mono_ns();
    out = run_stdout(three, 10000, &code);
    int64_t took = rf_clock_mono_ns() - t0;
    assert_int_equal(code, 0);
    assert_int_equal(count_str(out, "ringflow top  "), 3);
    assert_true(took >= 400 * RF_NS_PER_MS); /* two intervals between three frames */
    assert_null(strchr(out, '\033'));
    /* Rates from two snapshots: the first frame has none ('-'); the others
     * 1000 events and 500 points per request over >= 200 ms. */
    int frames = 0;
    for (const char *p = out; (p = strstr(p, "  0   lp ")); p++, frames++) {
        char rest[256];
        sscanf(p + 9, "%*s %255s", rest);
        if (frames == 0) {
            assert_string_equal(rest, "-");
        } else {
            double r = atof(rest);
            assert_true(r > 100 && r <= 5100);
        }
    }
    assert_int_equal(frames, 3);
    assert_int_equal(count_str(out, " influx_line/udp "), 3); /* the protocol column, not cut */
    const char *shard = strstr(strstr(out, "ringflow top  ") + 1, "ringflow top  ");
    assert_non_null(shard);
    shard = strstr(shard, "points/s"); /* the storage shards' header */
    assert_non_null(shard);
    shard = strchr(shard, '\n');
    assert_non_null(shard);
    char line[256];
    sscanf(shard + 1, "%255[^\n]", line);
    /* shard 0: 500 points a request, 32 KiB written a request */
    double pts = 0;
    assert_int_equal(sscanf(line, " 0 %lf", &pts), 1);
    assert_true(pts > 50 && pts <= 2600);
    assert_non_null(strstr(line, "KiB/s"));
    free(out);

    kill_fake_server(NULL);
    unlink(sock);

    /* Nobody listening: one error frame on stderr, status 1, no retry loop. */
    out = run_stdout(one, 5000, &code);
    assert_int_equal(code, 1);
    assert_string_equal(out, "");
    free(out);

    char *bad[] = {"ringflow", "top", "--iterations", "0", NULL};
    assert_int_equal(run(bad, 5000), 2);
}

/* A bad level is a usage error (exit 2), found before any socket is tried:
 * the socket's own "usage: set log level ..." reply exited 1, unlike every
 * other usage error of the CLI. */
static void test_admin_bad_level_is_usage_error(void **state)
{
    (void)state;
    char sock[300];
    path_in(sock, sizeof(sock), "no-such-admin.sock");
    char *bad[] = {"ringflow", "admin", "--socket", sock, "log-level", "loud", NULL};
    assert_int_equal(run(bad, 5000), 2);
    char *missing[] = {"ringflow", "admin", "--socket", sock, "log-level", NULL};
    assert_int_equal(run(missing, 5000), 2);
    /* A good level goes on to the socket: absent here, so exit 1. */
    char *good[] = {"ringflow", "admin", "--socket", sock, "log-level", "warn", NULL};
    assert_int_equal(run(good, 5000), 1);
}

/* ---- main ---------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/rf-test-tools-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-ringflow\n", argv[0]);
        return 2;
    }
    g_ringflow = argv[1];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_udp_tcp),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_rewrite_functions),
        cmocka_unit_test(test_replay_recording_udp),
        cmocka_unit_test(test_replay_pcap),
        cmocka_unit_test(test_load_deterministic),
        cmocka_unit_test(test_load_burst),
        cmocka_unit_test(test_load_probes_counted),
        cmocka_unit_test_teardown(test_top_without_terminal, kill_fake_server),
        cmocka_unit_test(test_admin_bad_level_is_usage_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
