/* Listener tests on real loopback sockets: UDP datagrams (IPv4, IPv6, source
 * address, kernel drops), TCP line framing (every split offset, slow writer,
 * many connections, half-close, reset, cap, idle timeout, overlong lines),
 * wait/wake across threads, configuration, and no fd leaks. Every wait is
 * bounded by a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/log/log.h"
#include "core/worker/worker.h"
#include "ingest/listen/listen.h"
#include "ingest/listen/listen_pvt.h"
#include "tests/ingest/ingest_test_util.h"

/* ---- helpers -------------------------------------------------------------- */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

/* Collects what a listener delivers: normalized text (each chunk followed by
 * '\n' when it lacks one) plus per-flag counts. */
typedef struct sink {
    char *buf;
    size_t len, cap;
    uint32_t chunks, too_long, final, truncated, bursts;
    char last_too_long[128];
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* UDP: datagram verification against the generator. */
    uint32_t datagrams, mismatches;
    int64_t last_mono_ns, last_wall_ns; /* receipt times of the last chunk */
    bool check_gen;
} sink;

static void sink_append(sink *s, const char *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->buf = realloc(s->buf, s->cap);
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static size_t gen_datagram(uint32_t i, char *out)
{
    /* Sizes cycle through 1..1400 bytes plus an occasional large one. */
    size_t n = (i % 97 == 0) ? 9000 + i % 1000 : 1 + (i * 37) % 1400;
    for (size_t j = 0; j < n; j++)
        out[j] = (char)('a' + (i + j) % 26);
    if (n > 8)
        snprintf(out, 9, "%08u", i);
    return n;
}

static void on_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    (void)l;
    sink *s = ctx;
    s->chunks++;
    s->last_mono_ns = c->mono_ns;
    s->last_wall_ns = c->wall_ns;
    if (c->peer && c->peer_len <= sizeof(s->peer)) {
        memcpy(&s->peer, c->peer, c->peer_len);
        s->peer_len = c->peer_len;
    }
    if (c->flags & RF_LISTEN_CHUNK_TRUNCATED)
        s->truncated++;
    if (c->flags & RF_LISTEN_CHUNK_LINE_TOO_LONG) {
        s->too_long++;
        size_t n = c->len < sizeof(s->last_too_long) - 1 ? c->len : sizeof(s->last_too_long) - 1;
        memcpy(s->last_too_long, c->data, n);
        s->last_too_long[n] = '\0';
        return;
    }
    if (c->flags & RF_LISTEN_CHUNK_FINAL)
        s->final++;
    if (s->check_gen) {
        static char want[20000];
        size_t n = gen_datagram(s->datagrams, want);
        if (n != c->len || memcmp(want, c->data, n) != 0)
            s->mismatches++;
        s->datagrams++;
        return;
    }
    sink_append(s, c->data, c->len);
    if (c->len == 0 || c->data[c->len - 1] != '\n')
        sink_append(s, "\n", 1);
}

static void on_burst(void *ctx, const rf_listener *l)
{
    (void)l;
    ((sink *)ctx)->bursts++;
}

typedef bool (*cond_fn)(void *arg);

/* Polls until cond holds or ms pass; returns whether it held. */
static bool poll_until(rf_listener_set *set, cond_fn cond, void *arg, int ms)
{
    int64_t deadline = rf_clock_mono_ns() + (int64_t)ms * RF_NS_PER_MS;
    while (!cond(arg)) {
        if (rf_clock_mono_ns() > deadline)
            return false;
        if (rf_listener_set_poll(set) == 0)
            rf_listener_set_wait(set, 2 * RF_NS_PER_MS);
    }
    return true;
}

static void poll_for(rf_listener_set *set, int ms)
{
    int64_t deadline = rf_clock_mono_ns() + (int64_t)ms * RF_NS_PER_MS;
    while (rf_clock_mono_ns() < deadline)
        if (rf_listener_set_poll(set) == 0)
            rf_listener_set_wait(set, RF_NS_PER_MS);
}

typedef struct ctr_cond {
    rf_listener *l;
    enum rf_listen_counter_id id;
    uint64_t want;
} ctr_cond;

static bool ctr_reached(void *arg)
{
    ctr_cond *c = arg;
    return rf_listener_counter(c->l, c->id) >= c->want;
}

static bool wait_ctr(rf_listener_set *set, rf_listener *l, enum rf_listen_counter_id id,
                     uint64_t want, int ms)
{
    ctr_cond c = {l, id, want};
    return poll_until(set, ctr_reached, &c, ms);
}

typedef struct len_cond {
    sink *s;
    size_t want;
} len_cond;

static bool len_reached(void *arg)
{
    len_cond *c = arg;
    return c->s->len >= c->want;
}

static bool wait_len(rf_listener_set *set, sink *s, size_t want, int ms)
{
    len_cond c = {s, want};
    return poll_until(set, len_reached, &c, ms);
}

/* A started set with one listener. */
typedef struct listen_fixture {
    rf_listener_set *set;
    rf_listener *l;
    sink s;
    int fds_before;
} listen_fixture;

static void fx_open(listen_fixture *fx, enum rf_listen_transport t, const char *addr,
                    const rf_listener_set_options *opt, void (*tweak)(rf_listener_config *))
{
    memset(fx, 0, sizeof(*fx));
    fx->fds_before = count_fds();
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_listener_set_new(&fx->set, "test", opt, &err), 0);
    rf_listener_config cfg;
    char name[RF_LISTENER_NAME_MAX];
    snprintf(name, sizeof(name), "t-%s", rf_listen_transport_name(t));
    it_listener_config(&cfg, name, t, on_data, &fx->s);
    snprintf(cfg.address, sizeof(cfg.address), "%s", addr);
    cfg.protocol = RF_LISTEN_PROTO_INFLUX_LINE;
    cfg.rcvbuf_bytes = 4u << 20;
    cfg.handler.on_burst_end = on_burst;
    if (tweak)
        tweak(&cfg);
    int rc = rf_listener_add(fx->set, &cfg, &fx->l, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(rf_listener_port(fx->l) != 0);
    rc = rf_listener_set_start(fx->set, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void fx_close(listen_fixture *fx)
{
    rf_listener_set_free(fx->set);
    free(fx->s.buf);
    assert_int_equal(count_fds(), fx->fds_before);
}

/* A UDP socket connected to addr:port, with a large send buffer. */
static int udp_sender(int family, const char *addr, uint16_t port)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int sz = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    struct sockaddr_storage dst = {0};
    socklen_t dlen;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&dst;
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        inet_pton(AF_INET, addr, &in->sin_addr);
        dlen = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&dst;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &in6->sin6_addr);
        dlen = sizeof(*in6);
    }
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, dlen), 0);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static int rf_listener_start_check(rf_listener_set *set)
{
    rf_err err;
    int rc = rf_listener_set_start(set, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    return rc;
}

/* ---- framing, without sockets -------------------------------------------- */

typedef struct frame_sink {
    char out[4096];
    size_t len;
    uint32_t lines, too_long, final;
} frame_sink;

static void frame_emit(void *ctx, const char *d, size_t n, uint32_t flags)
{
    frame_sink *f = ctx;
    if (flags & RF_LISTEN_CHUNK_LINE_TOO_LONG) {
        f->too_long++;
        return;
    }
    if (flags & RF_LISTEN_CHUNK_FINAL)
        f->final++;
    memcpy(f->out + f->len, d, n);
    f->len += n;
    if (n == 0 || d[n - 1] != '\n')
        f->out[f->len++] = '\n';
    for (size_t i = 0; i < n; i++)
        f->lines += d[i] == '\n';
    if (n == 0 || d[n - 1] != '\n')
        f->lines++;
}

/* Every split of the stream into three reads gives the same lines, once. */
static void test_frame_every_split(void **state)
{
    (void)state;
    const char *msg = "cpu,host=a usage=1.5\nmem free=2i\n\nlast x=3\nno-newline";
    const char *want = "cpu,host=a usage=1.5\nmem free=2i\n\nlast x=3\nno-newline\n";
    size_t n = strlen(msg);
    char lbuf[64];
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            rf_linebuf lb = {.buf = lbuf, .cap = sizeof(lbuf)};
            frame_sink f = {0};
            assert_int_equal(rf_linebuf_feed(&lb, msg, a, frame_emit, &f), 0);
            assert_int_equal(rf_linebuf_feed(&lb, msg + a, b - a, frame_emit, &f), 0);
            assert_int_equal(rf_linebuf_feed(&lb, msg + b, n - b, frame_emit, &f), 0);
            assert_int_equal(rf_linebuf_finish(&lb, frame_emit, &f), 1);
            f.out[f.len] = '\0';
            assert_string_equal(f.out, want);
            assert_int_equal(f.lines, 5);
            assert_int_equal(f.final, 1);
        }
    }
}

/* Overlong lines are cut once, wherever the reads split them, and the stream
 * resynchronises at the next newline. */
static void test_frame_overlong_resync(void **state)
{
    (void)state;
    char msg[256];
    size_t n = 0;
    n += (size_t)sprintf(msg + n, "ok1 v=1\n");
    memset(msg + n, 'x', 40);
    n += 40;
    n += (size_t)sprintf(msg + n, "\nok2 v=2\nexact16_bytes_ok\n");
    memset(msg + n, 'y', 17);
    n += 17;
    n += (size_t)sprintf(msg + n, "\nok3 v=3\n");
    const char *want = "ok1 v=1\nok2 v=2\nexact16_bytes_ok\nok3 v=3\n";
    char lbuf[16];
    for (size_t step = 1; step <= n; step++) {
        rf_linebuf lb = {.buf = lbuf, .cap = sizeof(lbuf)};
        frame_sink f = {0};
        uint32_t over = 0;
        for (size_t off = 0; off < n; off += step)
            over +=
                rf_linebuf_feed(&lb, msg + off, off + step > n ? n - off : step, frame_emit, &f);
        rf_linebuf_finish(&lb, frame_emit, &f);
        f.out[f.len] = '\0';
        assert_string_equal(f.out, want);
        assert_int_equal(over, 2);
        assert_int_equal(f.too_long, 2);
    }
}

/* ---- UDP ------------------------------------------------------------------ */

static void udp_many(const char *addr, int family)
{
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, addr, NULL, NULL);
    fx.s.check_gen = true;
    assert_true(rf_listener_rcvbuf_granted(fx.l) > 0);

    int fd = udp_sender(family, addr, rf_listener_port(fx.l));
    static char dg[20000];
    const uint32_t total = 20000;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < total; i++) {
        size_t n = gen_datagram(i, dg);
        assert_int_equal(send(fd, dg, n, 0), (ssize_t)n);
        bytes += n;
        /* Stay well inside the receive buffer: drops are tested elsewhere. */
        if (i % 200 == 199)
            assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, i + 1, 5000));
    }
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, total, 5000));
    assert_int_equal(fx.s.datagrams, total);
    assert_int_equal(fx.s.mismatches, 0);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_BYTES), bytes);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_TRUNCATED), 0);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_KERNEL_DROPS), 0);
    assert_true(fx.s.bursts > 0);

    /* The source address is the sender's. */
    struct sockaddr_storage me;
    socklen_t mlen = sizeof(me);
    getsockname(fd, (struct sockaddr *)&me, &mlen);
    char a[RF_LISTEN_ADDR_TEXT_MAX], b[RF_LISTEN_ADDR_TEXT_MAX];
    rf_listen_addr_format((struct sockaddr *)&me, mlen, a, sizeof(a));
    rf_listen_addr_format((struct sockaddr *)&fx.s.peer, fx.s.peer_len, b, sizeof(b));
    assert_string_equal(a, b);
    close(fd);
    fx_close(&fx);
}

static void test_udp_many_ipv4(void **state)
{
    (void)state;
    udp_many("127.0.0.1", AF_INET);
}

static void test_udp_many_ipv6(void **state)
{
    (void)state;
    udp_many("::1", AF_INET6);
}

/* The largest IPv4 datagram fits a default buffer; a small buffer truncates
 * and says so. */
static void test_udp_max_and_truncation(void **state)
{
    (void)state;
    static char big[65507];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('0' + i % 10);
    for (int small = 0; small < 2; small++) {
        rf_listener_set_options o = {0};
        if (small)
            o.udp_buffer_bytes = 4096;
        listen_fixture fx;
        fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", &o, NULL);
        int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
        assert_int_equal(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
        assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, 1, 5000));
        if (small) {
            assert_int_equal(fx.s.truncated, 1);
            assert_int_equal(rf_listener_counter(fx.l, RF_LC_TRUNCATED), 1);
            assert_true(fx.s.len < 4096);
        } else {
            assert_int_equal(fx.s.truncated, 0);
            assert_int_equal(fx.s.len, sizeof(big) + 1); /* + the sink's '\n' */
            assert_memory_equal(fx.s.buf, big, sizeof(big));
        }
        close(fd);
        fx_close(&fx);
    }
}

/* A UDP chunk carries the kernel's receipt time, not the time it was polled:
 * a datagram that waited 80 ms in the socket says so (the critical path is
 * measured from it). */
static void test_udp_receipt_time_is_the_kernels(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", NULL, NULL);
    int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
    int64_t sent_mono = rf_clock_mono_ns(), sent_wall = rf_clock_wall_ns();
    assert_int_equal(send(fd, "x v=1\n", 6, 0), 6);
    struct timespec nap = {0, 80 * 1000 * 1000};
    nanosleep(&nap, NULL);
    int64_t poll_mono = rf_clock_mono_ns();
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, 1, 5000));
    print_message("receipt %.3f ms after send, poll %.3f ms after send\n",
                  (double)(fx.s.last_mono_ns - sent_mono) / 1e6,
                  (double)(poll_mono - sent_mono) / 1e6);
    /* Stamped between the send and well before the poll (it waited 80 ms). */
    assert_true(fx.s.last_mono_ns >= sent_mono - RF_NS_PER_MS);
    assert_true(fx.s.last_mono_ns < poll_mono - 40 * RF_NS_PER_MS);
    assert_true(fx.s.last_wall_ns >= sent_wall - RF_NS_PER_MS);
    assert_true(fx.s.last_wall_ns < sent_wall + 40 * RF_NS_PER_MS);
    close(fd);
    fx_close(&fx);
}

static void small_rcvbuf(rf_listener_config *c)
{
    c->rcvbuf_bytes = 16384;
}

/* Kernel drops: overflow a small receive buffer while nobody polls, drain,
 * send one more datagram (it carries the drop count), compare with /proc. */
static void test_udp_kernel_drops(void **state)
{
    (void)state;
    rf_listener_set_options o = {.udp_buffers = 16};
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", &o, small_rcvbuf);
    int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
    char dg[1000];
    memset(dg, 'z', sizeof(dg));
    for (int i = 0; i < 3000; i++)
        send(fd, dg, sizeof(dg), 0);
    poll_for(fx.set, 100);
    uint64_t got = rf_listener_counter(fx.l, RF_LC_DATAGRAMS);
    assert_true(got < 3000);
    assert_int_equal(send(fd, dg, sizeof(dg), 0), (ssize_t)sizeof(dg));
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, got + 1, 5000));
    uint64_t drops = rf_listener_counter(fx.l, RF_LC_KERNEL_DROPS), proc = 0;
    assert_int_equal(rf_listener_proc_drops(fx.l, &proc), 0);
    fprintf(stderr,
            "# udp drops: delivered %" PRIu64 " of 3001, SO_RXQ_OVFL %" PRIu64
            ", /proc/net/udp %" PRIu64 ", enobufs %" PRIu64 ", rearms %" PRIu64 "\n",
            rf_listener_counter(fx.l, RF_LC_DATAGRAMS), drops, proc,
            rf_listener_counter(fx.l, RF_LC_ENOBUFS), rf_listener_counter(fx.l, RF_LC_REARMS));
    assert_true(drops > 0);
    assert_int_equal(drops, proc);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_DATAGRAMS) + drops, 3001);
    close(fd);
    fx_close(&fx);
}

/* Out of provided buffers: the multishot ends with ENOBUFS, is counted and
 * re-armed, and nothing queued in the socket is lost. */
static void test_udp_enobufs_rearm(void **state)
{
    (void)state;
    rf_listener_set_options o = {.udp_buffers = 2};
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", &o, NULL);
    fx.s.check_gen = true;
    int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
    static char dg[20000];
    for (uint32_t i = 0; i < 200; i++) {
        size_t n = gen_datagram(i, dg);
        send(fd, dg, n, 0);
    }
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, 200, 5000));
    assert_int_equal(fx.s.mismatches, 0);
    assert_true(rf_listener_counter(fx.l, RF_LC_ENOBUFS) > 0);
    assert_true(rf_listener_counter(fx.l, RF_LC_REARMS) >=
                rf_listener_counter(fx.l, RF_LC_ENOBUFS));
    close(fd);
    fx_close(&fx);
}

/* ---- TCP ------------------------------------------------------------------ */

static const char *const LINES = "cpu,host=a usage=1.5 1\nmem,host=b free=2i 2\nlast x=3 3\n";

static void test_tcp_split_every_offset(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, NULL);
    int fd = tcp_connect(rf_listener_port(fx.l));
    size_t n = strlen(LINES);
    uint64_t bytes = 0;
    for (size_t k = 0; k <= n; k++) {
        size_t before = fx.s.len;
        write_all(fd, LINES, k);
        bytes += k;
        /* The first part must have been read on its own before the second. */
        assert_true(wait_ctr(fx.set, fx.l, RF_LC_BYTES, bytes, 5000));
        write_all(fd, LINES + k, n - k);
        bytes += n - k;
        assert_true(wait_len(fx.set, &fx.s, before + n, 5000));
        assert_int_equal(fx.s.len, before + n);
        assert_memory_equal(fx.s.buf + before, LINES, n);
    }
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_LINES_TOO_LONG), 0);
    close(fd);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    assert_int_equal(rf_listener_connections(fx.l), 0);
    fx_close(&fx);
}

static void test_tcp_slow_writer(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, NULL);
    int fd = tcp_connect(rf_listener_port(fx.l));
    size_t n = strlen(LINES);
    for (size_t i = 0; i < n; i++) {
        write_all(fd, LINES + i, 1);
        assert_true(wait_ctr(fx.set, fx.l, RF_LC_BYTES, i + 1, 5000));
    }
    assert_true(wait_len(fx.set, &fx.s, n, 5000));
    assert_string_equal(fx.s.buf, LINES);
    assert_int_equal(fx.s.chunks, 3); /* one per line, each whole */
    close(fd);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    fx_close(&fx);
}

static void many_conns(rf_listener_config *c)
{
    c->max_connections = 512;
}

static void test_tcp_many_connections(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, many_conns);
    enum {
        CONNS = 400,
        PER = 20
    };
    static int fds[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = tcp_connect(rf_listener_port(fx.l));
        if (i % 64 == 63)
            rf_listener_set_poll(fx.set);
    }
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_ACCEPTED, CONNS, 5000));
    assert_int_equal(rf_listener_connections(fx.l), CONNS);
    /* Interleave: every connection writes its lines in two halves, split
     * mid-line, round robin. */
    char line[PER * 32];
    size_t total = 0;
    for (int half = 0; half < 2; half++) {
        for (int i = 0; i < CONNS; i++) {
            size_t n = 0;
            for (int j = 0; j < PER; j++)
                n += (size_t)sprintf(line + n, "m,conn=%d seq=%di\n", i, j);
            size_t cut = n / 2 + 3;
            if (half == 0)
                write_all(fds[i], line, cut);
            else
                write_all(fds[i], line + cut, n - cut);
            if (half == 1)
                total += n;
        }
        rf_listener_set_poll(fx.set);
    }
    assert_true(wait_len(fx.set, &fx.s, total, 10000));
    assert_int_equal(fx.s.len, total);
    /* Every line arrived once, whole. */
    static uint8_t seen[CONNS][PER];
    memset(seen, 0, sizeof(seen));
    uint32_t lines = 0;
    for (char *p = fx.s.buf; *p; p = strchr(p, '\n') + 1) {
        int c, s;
        assert_int_equal(sscanf(p, "m,conn=%d seq=%di\n", &c, &s), 2);
        assert_true(c >= 0 && c < CONNS && s >= 0 && s < PER);
        seen[c][s]++;
        lines++;
    }
    assert_int_equal(lines, CONNS * PER);
    for (int i = 0; i < CONNS; i++)
        for (int j = 0; j < PER; j++)
            assert_int_equal(seen[i][j], 1);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, CONNS, 5000));
    assert_int_equal(rf_listener_connections(fx.l), 0);
    fx_close(&fx);
}

static void test_tcp_half_close_final_line(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, NULL);
    int fd = tcp_connect(rf_listener_port(fx.l));
    write_all(fd, "a v=1\nb v=2", 11);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_BYTES, 11, 5000));
    assert_string_equal(fx.s.buf, "a v=1\n");
    shutdown(fd, SHUT_WR);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    assert_string_equal(fx.s.buf, "a v=1\nb v=2\n");
    assert_int_equal(fx.s.final, 1);
    assert_int_equal(rf_listener_connections(fx.l), 0);
    /* The server closed its side: the client reads EOF. */
    char c;
    assert_int_equal(read(fd, &c, 1), 0);
    close(fd);
    fx_close(&fx);
}

static void test_tcp_reset(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, NULL);
    int fd = tcp_connect(rf_listener_port(fx.l));
    write_all(fd, "whole v=1\npartial v=", 20);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_BYTES, 20, 5000));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_RESET, 1, 5000));
    assert_string_equal(fx.s.buf, "whole v=1\n");
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_PARTIAL_DISCARDED), 1);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_CLOSED), 0);
    assert_int_equal(rf_listener_connections(fx.l), 0);
    fx_close(&fx);
}

static void cap4(rf_listener_config *c)
{
    c->max_connections = 4;
}

static void test_tcp_connection_cap(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, cap4);
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = tcp_connect(rf_listener_port(fx.l));
        /* Accept in order, so the first four are the ones kept. */
        assert_true(wait_ctr(fx.set, fx.l, i < 4 ? RF_LC_CONN_ACCEPTED : RF_LC_CONN_REFUSED,
                             i < 4 ? (uint64_t)i + 1 : (uint64_t)i - 3, 5000));
    }
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_ACCEPTED), 4);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_REFUSED), 2);
    assert_int_equal(rf_listener_connections(fx.l), 4);
    for (int i = 4; i < 6; i++) {
        char c;
        ssize_t r = read(fds[i], &c, 1);
        assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    }
    /* Freed slots are reused. */
    close(fds[0]);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    int again = tcp_connect(rf_listener_port(fx.l));
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_ACCEPTED, 5, 5000));
    write_all(again, "ok v=1\n", 7);
    assert_true(wait_len(fx.set, &fx.s, 7, 5000));
    assert_string_equal(fx.s.buf, "ok v=1\n");
    close(again);
    for (int i = 1; i < 6; i++)
        close(fds[i]);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 5, 5000));
    fx_close(&fx);
}

static void per_source2(rf_listener_config *c)
{
    c->max_connections = 8;
    c->max_connections_per_source = 2;
}

static int tcp_connect_from(const char *src, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &from.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    return fd;
}

/* One address cannot take every slot: past max_connections_per_source its
 * connections are refused and counted by that reason, while another
 * address still gets in; a slot freed is that address's again. */
static void test_tcp_per_source_cap(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, per_source2);
    const uint16_t port = rf_listener_port(fx.l);
    int a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = tcp_connect_from("127.0.0.3", port);
        assert_true(wait_ctr(fx.set, fx.l, i < 2 ? RF_LC_CONN_ACCEPTED : RF_LC_CONN_REFUSED_SOURCE,
                             i < 2 ? (uint64_t)i + 1 : (uint64_t)i - 1, 5000));
    }
    int b = tcp_connect_from("127.0.0.4", port);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_ACCEPTED, 3, 5000));
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_REFUSED_SOURCE), 2);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_REFUSED), 0);
    assert_int_equal(rf_listener_connections(fx.l), 3);
    for (int i = 2; i < 4; i++) {
        char c;
        ssize_t r = read(a[i], &c, 1);
        assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
    }
    close(a[0]);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    int again = tcp_connect_from("127.0.0.3", port);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_ACCEPTED, 4, 5000));
    write_all(again, "ok v=1\n", 7);
    assert_true(wait_len(fx.set, &fx.s, 7, 5000));
    close(again);
    close(b);
    for (int i = 1; i < 4; i++)
        close(a[i]);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 4, 5000));
    fx_close(&fx);
}

static void idle50ms(rf_listener_config *c)
{
    c->idle_timeout_ns = 50 * RF_NS_PER_MS;
}

static void test_tcp_idle_timeout(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, idle50ms);
    int quiet = tcp_connect(rf_listener_port(fx.l));
    int busy = tcp_connect(rf_listener_port(fx.l));
    write_all(quiet, "half", 4);
    int64_t t0 = rf_clock_mono_ns();
    /* The busy one keeps talking every 10 ms and must survive. */
    while (rf_clock_mono_ns() - t0 < 300 * RF_NS_PER_MS) {
        write_all(busy, "b v=1\n", 6);
        poll_for(fx.set, 10);
    }
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_TIMED_OUT), 1);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_PARTIAL_DISCARDED), 1);
    assert_int_equal(rf_listener_connections(fx.l), 1);
    char c;
    assert_int_equal(read(quiet, &c, 1), 0);
    close(quiet);
    close(busy);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    fx_close(&fx);
}

/* A worker that sleeps in the set's wait with a long bound (idle.sleep, 1 s
 * by default) still closes an idle connection on time: the wait ends at the
 * next idle check, not at the bound. */
static void test_tcp_idle_timeout_ends_a_long_wait(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, idle50ms);
    int quiet = tcp_connect(rf_listener_port(fx.l));
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_ACCEPTED, 1, 5000));
    int64_t t0 = rf_clock_mono_ns();
    while (rf_listener_counter(fx.l, RF_LC_CONN_TIMED_OUT) == 0 &&
           rf_clock_mono_ns() - t0 < 5 * RF_NS_PER_S) {
        rf_listener_set_wait(fx.set, 2 * RF_NS_PER_S);
        rf_listener_set_poll(fx.set);
    }
    int64_t took_ms = (rf_clock_mono_ns() - t0) / RF_NS_PER_MS;
    /* 50 ms and a check every 6.25 ms; the 2 s wait would make it >= 2,000 */
    if (took_ms > 1000)
        fail_msg("timed out after %ld ms (idle timeout 50 ms)", (long)took_ms);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_TIMED_OUT), 1);
    close(quiet);
    fx_close(&fx);
}

static void line64(rf_listener_config *c)
{
    c->max_line_bytes = 64;
}

static void test_tcp_line_too_long(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, line64);
    int fd = tcp_connect(rf_listener_port(fx.l));
    static char msg[40000];
    size_t n = (size_t)sprintf(msg, "ok1 v=1\n");
    memset(msg + n, 'x', 30000); /* spans many reads */
    n += 30000;
    n += (size_t)sprintf(msg + n, "\nok2 v=2\n");
    memset(msg + n, 'y', 100); /* inside one read */
    n += 100;
    n += (size_t)sprintf(msg + n, "\nok3 v=3\n");
    write_all(fd, msg, n);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_BYTES, n, 5000));
    assert_string_equal(fx.s.buf, "ok1 v=1\nok2 v=2\nok3 v=3\n");
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_LINES_TOO_LONG), 2);
    assert_int_equal(fx.s.too_long, 2);
    assert_int_equal(strlen(fx.s.last_too_long), 64);
    assert_int_equal(fx.s.last_too_long[0], 'y');
    close(fd);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    fx_close(&fx);
}

/* ---- wait / wake ------------------------------------------------------------ */

typedef struct waiter {
    rf_listener_set *set;
    _Atomic int phase; /* 1: started, 2: in the long wait, 3: done */
    int64_t waited_ns;
    int64_t timeout_wait_ns;
    int64_t returned_at;
    int rc;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    rf_err err;
    /* The owning thread starts the set (SINGLE_ISSUER). */
    w->rc = rf_listener_set_start(w->set, &err);
    if (w->rc == 0) {
        int64_t t = rf_clock_mono_ns();
        rf_listener_set_wait(w->set, 30 * RF_NS_PER_MS);
        w->timeout_wait_ns = rf_clock_mono_ns() - t;
        rf_listener_set_poll(w->set);
        atomic_store(&w->phase, 2);
        t = rf_clock_mono_ns();
        rf_listener_set_wait(w->set, 10 * RF_NS_PER_S);
        w->returned_at = rf_clock_mono_ns();
        w->waited_ns = w->returned_at - t;
        rf_listener_set_poll(w->set);
    }
    atomic_store(&w->phase, 3);
    return NULL;
}

static void test_wait_wake_other_thread(void **state)
{
    (void)state;
    int fds = count_fds();
    rf_listener_set *set;
    rf_err err;
    assert_int_equal(rf_listener_set_new(&set, "ww", NULL, &err), 0);
    sink s = {0};
    rf_listener_config cfg;
    it_listener_config(&cfg, NULL, RF_LISTEN_UDP, on_data, &s);
    assert_int_equal(rf_listener_add(set, &cfg, NULL, &err), 0);
    waiter w = {.set = set};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while (atomic_load(&w.phase) < 2 && rf_clock_mono_ns() < deadline)
        usleep(1000);
    assert_int_equal(w.rc, 0);
    usleep(50 * 1000); /* let it enter the long wait */
    int64_t woke_at = rf_clock_mono_ns();
    rf_listener_set_wake(set);
    rf_listener_set_wake(set); /* repeated: one eventfd write, harmless */
    pthread_join(th, NULL);
    fprintf(stderr, "# wait: a 30 ms timeout took %.1f ms; wake to return %.0f us\n",
            (double)w.timeout_wait_ns / 1e6, (double)(w.returned_at - woke_at) / 1e3);
    assert_true(w.timeout_wait_ns >= 25 * RF_NS_PER_MS && w.timeout_wait_ns < RF_NS_PER_S);
    assert_true(w.waited_ns < RF_NS_PER_S);
    assert_true(w.returned_at - woke_at < 100 * RF_NS_PER_MS);
    rf_listener_set_free(set);
    assert_int_equal(count_fds(), fds);
}

/* A datagram also ends the wait. */
static void test_wait_returns_on_data(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", NULL, NULL);
    int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
    send(fd, "x v=1\n", 6, 0);
    int64_t t = rf_clock_mono_ns();
    rf_listener_set_wait(fx.set, 5 * RF_NS_PER_S);
    assert_true(rf_clock_mono_ns() - t < RF_NS_PER_S);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, 1, 5000));
    close(fd);
    fx_close(&fx);
}

/* ---- errors and configuration ---------------------------------------------- */

/* ---- live attach and detach ------------------------------------------------ */

typedef struct detached_cond {
    rf_listener *l;
} detached_cond;

static bool is_detached(void *arg)
{
    return rf_listener_detached(((detached_cond *)arg)->l);
}

/* Polls the set until l is detached (rf_listener_set_detach done), at most ms. */
static bool wait_detached(rf_listener_set *set, rf_listener *l, int ms)
{
    detached_cond dc = {l};
    return poll_until(set, is_detached, &dc, ms);
}

static bool port_free(int type, uint16_t port)
{
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* No SO_REUSEPORT: fails while any socket of ours holds the port. For
     * TCP, SO_REUSEADDR looks past the TIME_WAIT our active close left. */
    int one = 1;
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A UDP listener opened by another thread is attached to a running set and
 * receives; detached while datagrams wait in its socket, every one of them
 * is still delivered, then its port is closed. The set's other listener is
 * untouched throughout. */
static void test_live_attach_detach_udp(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", NULL, NULL);
    sink s2 = {0};
    rf_listener_config cfg;
    it_listener_config(&cfg, "live-udp", RF_LISTEN_UDP, on_data, &s2);
    cfg.rcvbuf_bytes = 4u << 20;
    rf_listener *l2;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_listener_open(&cfg, &l2, &err), 0);
    assert_int_equal(rf_listener_set_attach(fx.set, l2, &err), 0);
    const uint16_t port2 = rf_listener_port(l2);

    int fd1 = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
    int fd2 = udp_sender(AF_INET, "127.0.0.1", port2);
    assert_int_equal(send(fd2, "a v=1\n", 6, 0), 6);
    assert_true(wait_ctr(fx.set, l2, RF_LC_DATAGRAMS, 1, 5000));

    /* 500 datagrams queued, unpolled, then the removal. */
    for (int i = 0; i < 500; i++)
        assert_int_equal(send(fd2, "b v=2\n", 6, 0), 6);
    rf_listener_set_detach(fx.set, l2);
    assert_true(wait_detached(fx.set, l2, 5000));
    assert_int_equal(rf_listener_counter(l2, RF_LC_DATAGRAMS), 501);
    assert_int_equal(s2.chunks, 501);
    assert_true(port_free(SOCK_DGRAM, port2));

    /* The other listener never noticed. */
    assert_int_equal(send(fd1, "c v=3\n", 6, 0), 6);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, 1, 5000));
    close(fd1);
    close(fd2);
    free(s2.buf);
    fx_close(&fx); /* fds back to where they were: the removed socket too */
}

/* A TCP listener removed with a client connected: every complete line the
 * client had sent is delivered, those still unread in the kernel included;
 * the partial last one is discarded and counted; the client sees the
 * connection end, and the port refuses new connections. */
static void test_live_detach_tcp(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, NULL);
    const uint16_t port = rf_listener_port(fx.l);
    int c = tcp_connect(port);
    write_all(c, "one v=1\ntwo v=2\n", 16);
    assert_true(wait_len(fx.set, &fx.s, 16, 5000));
    /* Sent, not yet read when the removal comes: still delivered. */
    write_all(c, "three v=3\nfour v=4\npartial v=", 30);
    usleep(20 * 1000); /* in the kernel's receive queue by now */
    rf_listener_set_detach(fx.set, fx.l);
    assert_true(wait_detached(fx.set, fx.l, 5000));
    assert_string_equal(fx.s.buf, "one v=1\ntwo v=2\nthree v=3\nfour v=4\n");
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_PARTIAL_DISCARDED), 1);
    assert_int_equal(rf_listener_connections(fx.l), 0);
    char b;
    assert_int_equal(recv(c, &b, 1, 0), 0); /* our side closed it */
    close(c);
    assert_true(port_free(SOCK_STREAM, port));
    int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c2, (struct sockaddr *)&a, sizeof(a)), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(c2);
    fx_close(&fx);
}

/* Connections not yet taken from the accept queue when the listener is
 * removed (their accept's completion not yet reaped, or still queued in the
 * kernel): what they sent is delivered, not closed unread with them. */
static void test_live_detach_tcp_accept_queue(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", NULL, NULL);
    const uint16_t port = rf_listener_port(fx.l);
    int c[3];
    char line[3][16];
    for (int i = 0; i < 3; i++) {
        c[i] = tcp_connect(port);
        snprintf(line[i], sizeof(line[i]), "q%d v=1\n", i);
        write_all(c[i], line[i], strlen(line[i]));
    }
    /* No poll since: nothing of them was reaped. */
    rf_listener_set_detach(fx.set, fx.l);
    assert_true(wait_detached(fx.set, fx.l, 5000));
    assert_int_equal(fx.s.len, 21);
    for (int i = 0; i < 3; i++)
        assert_non_null(strstr(fx.s.buf, line[i]));
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_CONN_REFUSED), 0);
    assert_int_equal(rf_listener_connections(fx.l), 0);
    for (int i = 0; i < 3; i++) {
        char b;
        assert_int_equal(recv(c[i], &b, 1, 0), 0); /* ended by our side */
        close(c[i]);
    }
    fx_close(&fx);
}

/* A TCP listener attached live to a set that so far had only UDP brings its
 * buffers with it. */
static void test_live_attach_first_tcp(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", NULL, NULL);
    sink s2 = {0};
    rf_listener_config cfg;
    it_listener_config(&cfg, "live-tcp", RF_LISTEN_TCP, on_data, &s2);
    rf_listener *l2;
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_listener_open(&cfg, &l2, &err), 0);
    assert_int_equal(rf_listener_set_attach(fx.set, l2, &err), 0);
    int c = tcp_connect(rf_listener_port(l2));
    write_all(c, LINES, strlen(LINES));
    assert_true(wait_len(fx.set, &s2, strlen(LINES), 5000));
    assert_string_equal(s2.buf, LINES);
    close(c);
    free(s2.buf);
    fx_close(&fx);
}

static void test_bind_error_message(void **state)
{
    (void)state;
    int fds = count_fds();
    int blocker = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    assert_int_equal(bind(blocker, (struct sockaddr *)&in, sizeof(in)), 0);
    socklen_t len = sizeof(in);
    getsockname(blocker, (struct sockaddr *)&in, &len);
    listen(blocker, 1);

    rf_listener_set *set;
    rf_err err;
    assert_int_equal(rf_listener_set_new(&set, "e", NULL, &err), 0);
    sink s = {0};
    rf_listener_config cfg;
    it_listener_config(&cfg, "lp-tcp", RF_LISTEN_TCP, on_data, &s);
    cfg.port = ntohs(in.sin_port);
    assert_int_equal(rf_listener_add(set, &cfg, NULL, &err), -EADDRINUSE);
    char want[128];
    snprintf(want, sizeof(want), "listener lp-tcp: bind 127.0.0.1:%u: Address already in use",
             cfg.port);
    assert_string_equal(err.msg, want);

    snprintf(cfg.address, sizeof(cfg.address), "localhost");
    assert_int_equal(rf_listener_add(set, &cfg, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not an IPv4 or IPv6 literal"));
    rf_listener_set_free(set);
    close(blocker);
    assert_int_equal(count_fds(), fds);
}

static void test_config_defaults_and_list(void **state)
{
    (void)state;
    rf_listener_config out[8];
    size_t n;
    rf_err err;
    assert_int_equal(rf_listener_config_parse_list(NULL, out, 8, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(out[0].transport, RF_LISTEN_UDP);
    assert_int_equal(out[0].port, 8089);
    assert_int_equal(out[1].transport, RF_LISTEN_TCP);
    assert_int_equal(out[1].port, 8089);
    assert_int_equal(out[2].protocol, RF_LISTEN_PROTO_STATSD);
    assert_int_equal(out[2].port, 8125);
    assert_int_equal(out[3].protocol, RF_LISTEN_PROTO_GRAPHITE);
    assert_int_equal(out[3].port, 2003);
    for (int i = 0; i < 4; i++)
        assert_string_equal(out[i].address, "127.0.0.1");
    /* TCP defaults that no idle crowd can hold for ever: an idle timeout,
     * and a share of the slots per peer address. */
    assert_int_equal(out[1].idle_timeout_ns, 120 * RF_NS_PER_S);
    assert_int_equal(out[1].max_connections_per_source, 64);
    assert_int_equal(out[3].idle_timeout_ns, 120 * RF_NS_PER_S);
    assert_int_equal(out[3].max_connections_per_source, 64);

    const char *yaml = "listeners:\n"
                       "  - transport: udp\n"
                       "    protocol: statsd\n"
                       "    address: \"::1\"\n"
                       "    rcvbuf: 8MiB\n"
                       "    workers: [0, 2]\n"
                       "  - name: gr\n"
                       "    transport: tcp\n"
                       "    protocol: graphite\n"
                       "    max_line: 4KiB\n"
                       "    idle_timeout: 90s\n"
                       "    max_connections: 10\n"
                       "    max_connections_per_source: 0\n"
                       "    templates: [\"stats.* .host.measurement*\", \"measurement*\"]\n"
                       "    separator: _\n"
                       "    tags: dc=x\n";
    rf_cfg_doc *doc;
    assert_int_equal(rf_cfg_load_string(yaml, strlen(yaml), "t.yaml", &doc, &err), 0);
    const rf_cfg_node *seq;
    assert_int_equal(rf_cfg_seq(rf_cfg_root(doc), "listeners", 0, 64, &seq, &err), 0);
    int rc = rf_listener_config_parse_list(seq, out, 8, &n, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].name, "statsd-udp");
    assert_string_equal(out[0].address, "::1");
    assert_int_equal(out[0].port, 8125);
    assert_int_equal(out[0].rcvbuf_bytes, 8u << 20);
    assert_int_equal(out[0].worker_mask, 5);
    assert_string_equal(out[1].name, "gr");
    assert_int_equal(out[1].port, 2003);
    assert_int_equal(out[1].max_line_bytes, 4096);
    assert_int_equal(out[1].idle_timeout_ns, 90 * RF_NS_PER_S);
    assert_int_equal(out[1].max_connections, 10);
    assert_int_equal(out[1].max_connections_per_source, 0);
    assert_null(out[0].graphite_templates);
    assert_non_null(out[1].graphite_templates);
    assert_int_equal(rf_cfg_check_unknown_keys(doc, &err), 0);
    /* The same templates again: the same compiled set (what a reload
     * compares listeners by). */
    const struct rf_graphite_templates *gt = out[1].graphite_templates;
    assert_int_equal(rf_listener_config_parse_list(seq, out, 8, &n, &err), 0);
    assert_ptr_equal(out[1].graphite_templates, gt);
    rf_cfg_free(doc);

    const char *bad[] = {
        "listeners:\n  - transport: udp\n    protocol: statsd\n    address: example.com\n",
        "listeners:\n  - transport: sctp\n    protocol: statsd\n",
        "listeners:\n  - protocol: statsd\n",
        "listeners:\n  - transport: udp\n    protocol: statsd\n  - transport: udp\n    protocol: "
        "statsd\n",
        "listeners:\n  - transport: udp\n    protocol: statsd\n    port: 70000\n",
        "listeners:\n  - transport: udp\n    protocol: statsd\n    templates: [measurement]\n",
        "listeners:\n  - transport: tcp\n    protocol: graphite\n    templates: [\"a.field*.b\"]\n",
        "listeners:\n  - transport: tcp\n    protocol: graphite\n    tags: dc\n",
    };
    const char *why[] = {"IPv4 or IPv6 literal", "transport",      "transport", "duplicate", "port",
                         "protocol graphite",    "must come last", "key=value"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(rf_cfg_load_string(bad[i], strlen(bad[i]), "b.yaml", &doc, &err), 0);
        assert_int_equal(rf_cfg_seq(rf_cfg_root(doc), "listeners", 0, 64, &seq, &err), 0);
        assert_int_equal(rf_listener_config_parse_list(seq, out, 8, &n, &err), -EINVAL);
        if (!strstr(err.msg, why[i]))
            fprintf(stderr, "case %zu: %s\n", i, err.msg);
        assert_non_null(strstr(err.msg, why[i]));
        assert_non_null(strstr(err.msg, "b.yaml:"));
        rf_cfg_free(doc);
    }
}


/* ---- more TCP and UDP cases ------------------------------------------------- */

static void test_tcp_ipv6_peer_text(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "::1", NULL, NULL);
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(rf_listener_port(fx.l))};
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&in6, sizeof(in6)), 0);
    write_all(fd, "v6 x=1\n", 7);
    assert_true(wait_len(fx.set, &fx.s, 7, 5000));
    assert_string_equal(fx.s.buf, "v6 x=1\n");
    struct sockaddr_in6 me;
    socklen_t ml = sizeof(me);
    getsockname(fd, (struct sockaddr *)&me, &ml);
    char want[RF_LISTEN_ADDR_TEXT_MAX], got[RF_LISTEN_ADDR_TEXT_MAX];
    snprintf(want, sizeof(want), "[::1]:%u", ntohs(me.sin6_port));
    rf_listen_addr_format((struct sockaddr *)&fx.s.peer, fx.s.peer_len, got, sizeof(got));
    assert_string_equal(got, want);
    close(fd);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, 1, 5000));
    fx_close(&fx);
}

/* Few TCP buffers shared by many busy connections: recv runs dry, is counted
 * and re-armed, and every line still arrives once, in order per connection. */
static void test_tcp_enobufs_rearm(void **state)
{
    (void)state;
    rf_listener_set_options o = {.tcp_buffers = 2, .tcp_buffer_bytes = 1024};
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_TCP, "127.0.0.1", &o, NULL);
    enum {
        CONNS = 32,
        PER = 200
    };
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++)
        fds[i] = tcp_connect(rf_listener_port(fx.l));
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_ACCEPTED, CONNS, 5000));
    static char buf[PER * 40];
    size_t total = 0;
    for (int i = 0; i < CONNS; i++) {
        size_t n = 0;
        for (int j = 0; j < PER; j++)
            n += (size_t)sprintf(buf + n, "m,conn=%d seq=%di\n", i, j);
        write_all(fds[i], buf, n);
        total += n;
    }
    assert_true(wait_len(fx.set, &fx.s, total, 10000));
    static int next[CONNS];
    memset(next, 0, sizeof(next));
    for (char *p = fx.s.buf; *p; p = strchr(p, '\n') + 1) {
        int c, q;
        assert_int_equal(sscanf(p, "m,conn=%d seq=%di\n", &c, &q), 2);
        assert_int_equal(q, next[c]);
        next[c]++;
    }
    for (int i = 0; i < CONNS; i++)
        assert_int_equal(next[i], PER);
    fprintf(stderr, "# tcp with 2 buffers: enobufs %" PRIu64 ", rearms %" PRIu64 "\n",
            rf_listener_counter(fx.l, RF_LC_ENOBUFS), rf_listener_counter(fx.l, RF_LC_REARMS));
    assert_true(rf_listener_counter(fx.l, RF_LC_ENOBUFS) > 0);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_CONN_CLOSED, CONNS, 5000));
    fx_close(&fx);
}

static int max_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int m = -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) > m)
            m = atoi(e->d_name);
    closedir(d);
    return m;
}

/* Out of fds: accept fails, pauses, and resumes once fds are free again.
 * io_uring reads RLIMIT_NOFILE when the accept is submitted, so the limit is
 * lowered before the set starts and lifted before the re-arm. */
static void test_tcp_accept_emfile_backoff(void **state)
{
    (void)state;
    int fds_before = count_fds();
    rf_listener_set *set;
    rf_err err;
    assert_int_equal(rf_listener_set_new(&set, "emfile", NULL, &err), 0);
    sink s = {0};
    rf_listener_config cfg;
    it_listener_config(&cfg, NULL, RF_LISTEN_TCP, on_data, &s);
    rf_listener *l;
    assert_int_equal(rf_listener_add(set, &cfg, &l, &err), 0);
    /* Client sockets exist before the limit; they connect under it. */
    int c[4];
    for (int i = 0; i < 4; i++)
        c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Fill every free fd number below `top`, then allow three more: the
     * ring's fd and two accepted sockets. */
    struct rlimit old;
    getrlimit(RLIMIT_NOFILE, &old);
    int top = max_fd() + 1;
    static int fillers[4096];
    int nf = 0;
    for (int fd; nf < 4096 && (fd = dup(0)) >= 0;) {
        if (fd >= top) {
            close(fd);
            break;
        }
        fillers[nf++] = fd;
    }
    struct rlimit lim = {.rlim_cur = (rlim_t)top + 3, .rlim_max = old.rlim_max};
    setrlimit(RLIMIT_NOFILE, &lim);
    int rc = rf_listener_set_start(set, &err);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(rf_listener_port(l))};
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    for (int i = 0; i < 4 && rc == 0; i++)
        connect(c[i], (struct sockaddr *)&in, sizeof(in));
    bool failed = rc == 0 && wait_ctr(set, l, RF_LC_ACCEPT_ERRORS, 1, 5000);
    uint64_t accepted = rf_listener_counter(l, RF_LC_CONN_ACCEPTED);
    setrlimit(RLIMIT_NOFILE, &old);
    for (int i = 0; i < nf; i++)
        close(fillers[i]);
    assert_int_equal(rc, 0);
    assert_true(failed);
    assert_int_equal(accepted, 2);
    /* After the pause the rest are accepted. */
    int64_t t = rf_clock_mono_ns();
    assert_true(wait_ctr(set, l, RF_LC_CONN_ACCEPTED, 4, 5000));
    fprintf(stderr,
            "# emfile: 2 accepted under the limit, %" PRIu64 " accept error(s), the "
            "other 2 accepted %.0f ms after the limit was lifted\n",
            rf_listener_counter(l, RF_LC_ACCEPT_ERRORS), (double)(rf_clock_mono_ns() - t) / 1e6);
    for (int i = 0; i < 4; i++)
        close(c[i]);
    assert_true(wait_ctr(set, l, RF_LC_CONN_CLOSED, 4, 5000));
    rf_listener_set_free(set);
    assert_int_equal(count_fds(), fds_before);
}

/* Two sets on the same UDP port (SO_REUSEPORT): the kernel spreads flows over
 * both sockets and nothing is lost or duplicated. */
static void test_udp_reuseport_spread(void **state)
{
    (void)state;
    listen_fixture a, b;
    fx_open(&a, RF_LISTEN_UDP, "127.0.0.1", NULL, NULL);
    uint16_t port = rf_listener_port(a.l);
    rf_err err;
    assert_int_equal(rf_listener_set_new(&b.set, "b", NULL, &err), 0);
    memset(&b.s, 0, sizeof(b.s));
    rf_listener_config cfg = *rf_listener_config_of(a.l);
    cfg.port = port;
    cfg.handler.ctx = &b.s;
    assert_int_equal(rf_listener_add(b.set, &cfg, &b.l, &err), 0);
    assert_int_equal(rf_listener_start_check(b.set), 0);
    enum {
        FLOWS = 32
    };
    for (int f = 0; f < FLOWS; f++) {
        int fd = udp_sender(AF_INET, "127.0.0.1", port);
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "flow%02d\n", f);
        send(fd, msg, (size_t)n, 0);
        close(fd);
    }
    int64_t deadline = rf_clock_mono_ns() + 5 * RF_NS_PER_S;
    while (rf_listener_counter(a.l, RF_LC_DATAGRAMS) + rf_listener_counter(b.l, RF_LC_DATAGRAMS) <
               FLOWS &&
           rf_clock_mono_ns() < deadline) {
        rf_listener_set_poll(a.set);
        rf_listener_set_poll(b.set);
    }
    uint64_t da = rf_listener_counter(a.l, RF_LC_DATAGRAMS),
             db = rf_listener_counter(b.l, RF_LC_DATAGRAMS);
    fprintf(stderr, "# reuseport: %" PRIu64 " + %" PRIu64 " datagrams\n", da, db);
    assert_int_equal(da + db, FLOWS);
    assert_true(da > 0 && db > 0);
    rf_listener_set_free(b.set);
    free(b.s.buf);
    fx_close(&a);
}

static void test_non_loopback_warns(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    rf_log_set_fd(p[1]);
    rf_listener_set *set;
    rf_err err;
    assert_int_equal(rf_listener_set_new(&set, "w", NULL, &err), 0);
    sink s = {0};
    rf_listener_config cfg;
    it_listener_config(&cfg, "open-udp", RF_LISTEN_UDP, on_data, &s);
    snprintf(cfg.address, sizeof(cfg.address), "0.0.0.0");
    assert_int_equal(rf_listener_add(set, &cfg, NULL, &err), 0);
    rf_log_set_fd(2);
    char buf[2048];
    ssize_t n = read(p[0], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "level=warn"));
    assert_non_null(strstr(buf, "listener open-udp: bound to non-loopback address 0.0.0.0"));
    rf_listener_set_free(set);
    close(p[0]);
    close(p[1]);
}

/* ---- inside a real worker ------------------------------------------------------ */

typedef struct counting {
    _Atomic uint64_t datagrams;
    _Atomic int on_worker_thread; /* 1 while every chunk came from the worker */
    pthread_t main_thread;
} counting;

static void count_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    (void)l;
    (void)c;
    counting *k = ctx;
    if (pthread_equal(pthread_self(), k->main_thread))
        atomic_store(&k->on_worker_thread, 0);
    atomic_fetch_add(&k->datagrams, 1);
}

static void test_in_worker(void **state)
{
    (void)state;
    int fds = count_fds();
    rf_listener_set *set;
    rf_err err;
    assert_int_equal(rf_listener_set_new(&set, "wk", NULL, &err), 0);
    counting k = {.on_worker_thread = 1, .main_thread = pthread_self()};
    rf_listener_config cfg;
    it_listener_config(&cfg, NULL, RF_LISTEN_UDP, count_data, &k);
    rf_listener *l;
    assert_int_equal(rf_listener_add(set, &cfg, &l, &err), 0);
    rf_worker_ops ops = {.start = rf_listener_set_start_op,
                         .poll = rf_listener_set_poll_op,
                         .wait = rf_listener_set_wait_op,
                         .wake = rf_listener_set_wake_op,
                         .ctx = set};
    /* Sleeps quickly and for long: only io_uring completions wake it in time. */
    rf_idle_policy idle = {.spin = 10, .yield = 0, .sleep_max_ns = 10 * RF_NS_PER_S};
    rf_worker *w;
    int rc = rf_worker_start(&w, "listen-w", -1, &idle, &ops, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(l));
    for (int round = 0; round < 5; round++) {
        usleep(20 * 1000); /* the worker is asleep in io_uring by now */
        int64_t t = rf_clock_mono_ns();
        send(fd, "x v=1\n", 6, 0);
        while (atomic_load(&k.datagrams) < (uint64_t)round + 1 &&
               rf_clock_mono_ns() - t < 2 * RF_NS_PER_S)
            usleep(50);
        assert_int_equal(atomic_load(&k.datagrams), round + 1);
        if (round == 4)
            fprintf(stderr, "# worker asleep in io_uring: datagram handled after %.0f us\n",
                    (double)(rf_clock_mono_ns() - t) / 1e3);
    }
    rf_worker_stats ws;
    rf_worker_stats_read(w, &ws);
    assert_true(ws.sleeps >= 5);
    rf_worker_request_stop(w);
    assert_int_equal(rf_worker_join(w), 0);
    assert_int_equal(atomic_load(&k.on_worker_thread), 1);
    close(fd);
    rf_listener_set_free(set);
    assert_int_equal(count_fds(), fds);
}

/* ---- UDP under a steady poll -------------------------------------------------- */

/* The sender at full speed and the listener polled once per 64 datagrams, on
 * one thread, as a worker interleaves its other work with polling: every
 * datagram arrives, in order, byte for byte, and nothing is dropped in the
 * kernel (the backlog of 64 stays far inside the 4 MiB receive buffer; when
 * the provided buffers run out the receive is re-armed, not lost). The rate
 * printed is informative only: bench/ and scripts/harness.sh measure ingest
 * rates. */
static void test_udp_polled_every_64_no_loss(void **state)
{
    (void)state;
    listen_fixture fx;
    fx_open(&fx, RF_LISTEN_UDP, "127.0.0.1", NULL, NULL);
    fx.s.check_gen = true;
    int fd = udp_sender(AF_INET, "127.0.0.1", rf_listener_port(fx.l));
    static char dg[20000];
    const uint32_t total = 100000;
    uint64_t bytes = 0;
    int64_t t0 = rf_clock_mono_ns();
    for (uint32_t i = 0; i < total; i++) {
        size_t n = gen_datagram(i, dg);
        assert_int_equal(send(fd, dg, n, 0), (ssize_t)n);
        bytes += n;
        if ((i & 63) == 63)
            rf_listener_set_poll(fx.set);
    }
    assert_true(wait_ctr(fx.set, fx.l, RF_LC_DATAGRAMS, total, 10000));
    double s = (double)(rf_clock_mono_ns() - t0) / 1e9;
    assert_int_equal(fx.s.datagrams, total);
    assert_int_equal(fx.s.mismatches, 0);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_DATAGRAMS), total);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_BYTES), bytes);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_TRUNCATED), 0);
    assert_int_equal(rf_listener_counter(fx.l, RF_LC_KERNEL_DROPS), 0);
    fprintf(stderr,
            "# udp loopback, sender and listener on one thread, polled every 64: "
            "%.0f datagrams/s, %" PRIu64 " ENOBUFS re-arms (informative, not a benchmark)\n",
            (double)total / s, rf_listener_counter(fx.l, RF_LC_ENOBUFS));
    close(fd);
    fx_close(&fx);
}

int main(void)
{
    rf_log_set_level(RF_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_every_split),
        cmocka_unit_test(test_frame_overlong_resync),
        cmocka_unit_test(test_udp_many_ipv4),
        cmocka_unit_test(test_udp_many_ipv6),
        cmocka_unit_test(test_udp_max_and_truncation),
        cmocka_unit_test(test_udp_kernel_drops),
        cmocka_unit_test(test_udp_receipt_time_is_the_kernels),
        cmocka_unit_test(test_live_attach_detach_udp),
        cmocka_unit_test(test_live_detach_tcp),
        cmocka_unit_test(test_live_detach_tcp_accept_queue),
        cmocka_unit_test(test_live_attach_first_tcp),
        cmocka_unit_test(test_udp_enobufs_rearm),
        cmocka_unit_test(test_tcp_split_every_offset),
        cmocka_unit_test(test_tcp_slow_writer),
        cmocka_unit_test(test_tcp_many_connections),
        cmocka_unit_test(test_tcp_half_close_final_line),
        cmocka_unit_test(test_tcp_reset),
        cmocka_unit_test(test_tcp_connection_cap),
        cmocka_unit_test(test_tcp_per_source_cap),
        cmocka_unit_test(test_tcp_idle_timeout),
        cmocka_unit_test(test_tcp_idle_timeout_ends_a_long_wait),
        cmocka_unit_test(test_tcp_line_too_long),
        cmocka_unit_test(test_wait_wake_other_thread),
        cmocka_unit_test(test_wait_returns_on_data),
        cmocka_unit_test(test_bind_error_message),
        cmocka_unit_test(test_config_defaults_and_list),
        cmocka_unit_test(test_tcp_ipv6_peer_text),
        cmocka_unit_test(test_tcp_enobufs_rearm),
        cmocka_unit_test(test_tcp_accept_emfile_backoff),
        cmocka_unit_test(test_udp_reuseport_spread),
        cmocka_unit_test(test_non_loopback_warns),
        cmocka_unit_test(test_in_worker),
        cmocka_unit_test(test_udp_polled_every_64_no_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
