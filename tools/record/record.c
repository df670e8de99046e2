/* ringflow record: a standalone capture of what arrives on UDP/TCP ports.
 *
 * Listens on the ports given (plain sockets: a capture must not compete with
 * an engine for the same port, so there is no SO_REUSEPORT here) and appends
 * every datagram, and every run of complete TCP lines, to a recording file
 * (storage/recfile/recfile.h, docs/FORMAT.md "Recording format") with its
 * receive times, source, listener name, protocol and transport.
 *
 * UDP is read with recvmmsg in batches; TCP is framed at line boundaries so a
 * recorded chunk never ends inside a line (a replay over UDP can then cut
 * payloads into datagrams without splitting a line). One thread, poll().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "tools/cli/locate.h"
#include "tools/record/record.h"
#include "tools/cli/client.h"
#include "storage/recfile/recfile.h"
#include "tools/net/net_addr.h"

#define REC_MAX_LISTENERS 16
#define REC_MAX_CONNS 256
#define REC_BATCH 32
#define REC_DGRAM_BYTES 65536
#define REC_TCP_READ 65536
/* A TCP "line" longer than this is recorded in pieces (no line is lost, but
 * that one line no longer fits one record). */
#define REC_TCP_PENDING_MAX (1u << 20)

typedef struct rec_listener {
    int fd;
    uint8_t transport;
    uint8_t protocol;
    char name[64];
    char addr_text[64];
} rec_listener;

typedef struct rec_conn {
    int fd;
    int listener;
    uint32_t id;
    bool first;
    struct sockaddr_storage peer;
    char *pending;
    size_t pending_len;
} rec_conn;

typedef struct rec_opts {
    char output[4096];
    uint64_t max_bytes;
    uint32_t max_files;
    double duration_s;
    uint64_t count;
    uint32_t rcvbuf;
    bool quiet;
    bool json;
    struct {
        char spec[300];
        uint8_t transport;
    } listen[REC_MAX_LISTENERS];
    unsigned n_listen;
    bool engine; /* --engine: the running daemon records (admin socket) */
    char socket[4096];
} rec_opts;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: ringflow record --output FILE (--udp SPEC | --tcp SPEC)... [OPTIONS]\n"
        "       ringflow record --output FILE --engine [--socket PATH] [OPTIONS]\n"
        "Captures what arrives on UDP/TCP ports into a recording for `ringflow replay`.\n"
        "With --engine, a running ringflowd records what its own listeners receive (the\n"
        "admin socket's `record start`/`record stop`; the daemon writes FILE, as its user).\n\n"
        "  --engine                record from the running engine instead of binding ports\n"
        "  --socket PATH           with --engine: its admin socket (default: the\n"
        "                          engine's, see ringflow --help)\n"
        "  --udp [ADDR:]PORT[/PROTOCOL]  listen on UDP (repeatable); PROTOCOL is influx\n"
        "                          (default), statsd or graphite; ADDR defaults to 127.0.0.1,\n"
        "                          IPv6 as [::1]:PORT; PORT 0 picks a free port\n"
        "  --tcp [ADDR:]PORT[/PROTOCOL]  listen on TCP (repeatable)\n"
        "  -o, --output FILE       the recording (with rotation: FILE.000001, FILE.000002, ...)\n"
        "  --max-bytes SIZE        rotate when a file would exceed SIZE (e.g. 64MiB; default:\n"
        "                          one unbounded file)\n"
        "  --max-files N           with --max-bytes: keep the newest N files (default 10, 0 = "
        "all)\n"
        "  --duration SECONDS      stop after this long (default: until SIGINT/SIGTERM)\n"
        "  --count N               stop after N records\n"
        "  --rcvbuf SIZE           UDP receive buffer to request (default 8MiB)\n"
        "  --json                  summary as JSON\n"
        "  --quiet                 no listening/progress lines on stderr\n\n"
        "Each listener's name is <protocol>-<transport> (influx_line-udp, ...), with -<port>\n"
        "added when two would share a name. The bound addresses are printed on stderr as\n"
        "`ringflow record: listening on udp 127.0.0.1:8089 (influx_line-udp)`.\n");
}

/* "64MiB", "4096", "1GiB", "10KB"(=10*1000). */
static int parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -EINVAL;
    double mul = 1;
    if (!*end || !strcmp(end, "B"))
        mul = 1;
    else if (!strcmp(end, "KiB") || !strcmp(end, "K"))
        mul = 1024.0;
    else if (!strcmp(end, "MiB") || !strcmp(end, "M"))
        mul = 1048576.0;
    else if (!strcmp(end, "GiB") || !strcmp(end, "G"))
        mul = 1073741824.0;
    else if (!strcmp(end, "KB"))
        mul = 1e3;
    else if (!strcmp(end, "MB"))
        mul = 1e6;
    else if (!strcmp(end, "GB"))
        mul = 1e9;
    else
        return -EINVAL;
    *out = (uint64_t)(v * mul);
    return 0;
}

static int parse_protocol(const char *s, uint8_t *out)
{
    if (!strcmp(s, "influx") || !strcmp(s, "influx_line") || !strcmp(s, "line"))
        *out = RF_REC_INFLUX;
    else if (!strcmp(s, "statsd"))
        *out = RF_REC_STATSD;
    else if (!strcmp(s, "graphite"))
        *out = RF_REC_GRAPHITE;
    else
        return -EINVAL;
    return 0;
}

/* [ADDR:]PORT[/PROTOCOL] -> address text, port text, protocol. 0 or -EINVAL
 * with err set. */
static int parse_spec(const char *spec, char *addr, size_t asz, char *port, size_t psz,
                      uint8_t *proto, rf_err *err)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s", spec);
    *proto = RF_REC_INFLUX;
    char *slash = strrchr(tmp, '/');
    if (slash) {
        *slash = '\0';
        if (parse_protocol(slash + 1, proto) != 0)
            return rf_err_set(err, EINVAL, "'%s': protocol is influx, statsd or graphite", spec);
    }
    char *colon = strrchr(tmp, ':');
    const char *p = tmp;
    snprintf(addr, asz, "127.0.0.1");
    if (colon) {
        *colon = '\0';
        p = colon + 1;
        char *a = tmp;
        size_t l = strlen(a);
        if (l >= 2 && a[0] == '[' && a[l - 1] == ']') {
            a[l - 1] = '\0';
            a++;
        }
        snprintf(addr, asz, "%s", a);
    }
    char *end = NULL;
    unsigned long v = strtoul(p, &end, 10);
    if (!*p || *end || v > 65535)
        return rf_err_set(err, EINVAL, "'%s': expected [ADDR:]PORT[/PROTOCOL]", spec);
    snprintf(port, psz, "%lu", v);
    return 0;
}

static int open_listener(const rec_opts *o, unsigned i, rec_listener *l)
{
    char addr[300], port[16];
    rf_err err;
    if (parse_spec(o->listen[i].spec, addr, sizeof(addr), port, sizeof(port), &l->protocol, &err) !=
        0) {
        fprintf(stderr, "ringflow record: %s\n", err.msg);
        return 2;
    }
    l->transport = o->listen[i].transport;
    const rf_net_socket_opts so = {
        .socktype = l->transport == RF_REC_TCP ? SOCK_STREAM : SOCK_DGRAM,
        .type_flags = SOCK_NONBLOCK,
        .listen = true,
        .reuseaddr = true,
        .rcvbuf = l->transport == RF_REC_UDP ? (int)o->rcvbuf : 0,
    };
    l->fd = rf_net_socket(addr, port, &so, NULL, NULL, &err);
    if (l->fd < 0) {
        fprintf(stderr, "ringflow record: %s %s\n", rf_rec_transport_name(l->transport), err.msg);
        return l->fd == -EINVAL ? 2 : 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(l->fd, (struct sockaddr *)&ss, &sl);
    rf_rec tmp = {0};
    rf_rec_set_source(&tmp, (struct sockaddr *)&ss);
    rf_rec_source_format(&tmp, l->addr_text, sizeof(l->addr_text));
    return 0;
}

typedef struct rec_state {
    rec_opts *o;
    rec_listener ls[REC_MAX_LISTENERS];
    unsigned n_ls;
    rec_conn conns[REC_MAX_CONNS];
    unsigned n_conns;
    uint32_t next_conn_id;
    rf_rec_writer *w;
    uint64_t records, datagrams, tcp_chunks, payload_bytes, refused, truncated;
    int failed; /* exit code of a write failure, 0 = none */
} rec_state;

static void write_rec(rec_state *s, rf_rec *r)
{
    rf_err err;
    if (s->failed)
        return;
    if (rf_rec_writer_append(s->w, r, &err) != 0) {
        fprintf(stderr, "ringflow record: %s\n", err.msg);
        s->failed = 1;
        g_stop = 1;
        return;
    }
    s->records++;
    s->payload_bytes += r->payload_len;
    if (s->o->count && s->records >= s->o->count)
        g_stop = 1;
}

static void drain_udp(rec_state *s, unsigned li, char *bufs)
{
    rec_listener *l = &s->ls[li];
    struct mmsghdr msgs[REC_BATCH];
    struct iovec iov[REC_BATCH];
    struct sockaddr_storage peers[REC_BATCH];
    /* A bounded number of batches per wake-up keeps TCP and other ports served. */
    for (int round = 0; round < 16 && !g_stop; round++) {
        for (unsigned i = 0; i < REC_BATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs + (size_t)i * REC_DGRAM_BYTES,
                                    .iov_len = REC_DGRAM_BYTES};
            msgs[i] = (struct mmsghdr){.msg_hdr = {.msg_name = &peers[i],
                                                   .msg_namelen = sizeof(peers[i]),
                                                   .msg_iov = &iov[i],
                                                   .msg_iovlen = 1}};
        }
        int n = recvmmsg(l->fd, msgs, REC_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        rf_rec r = {.wall_ns = rf_clock_wall_ns(),
                    .mono_ns = rf_clock_mono_ns(),
                    .transport = RF_REC_UDP,
                    .protocol = l->protocol,
                    .name = l->name};
        for (int i = 0; i < n && !(s->o->count && s->records >= s->o->count); i++) {
            rf_rec_set_source(&r, (struct sockaddr *)&peers[i]);
            r.flags = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) ? RF_REC_F_TRUNCATED : 0;
            s->truncated += r.flags ? 1 : 0;
            r.payload = (const uint8_t *)iov[i].iov_base;
            r.payload_len = msgs[i].msg_len;
            write_rec(s, &r);
            s->datagrams++;
        }
        if (n < REC_BATCH)
            return;
    }
}

static void accept_tcp(rec_state *s, unsigned li)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof(peer);
        int fd = accept4(s->ls[li].fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (s->n_conns == REC_MAX_CONNS) {
            close(fd);
            s->refused++;
            continue;
        }
        rec_conn *c = &s->conns[s->n_conns++];
        *c = (rec_conn){
            .fd = fd, .listener = (int)li, .id = ++s->next_conn_id, .first = true, .peer = peer};
    }
}

/* Records pending[0..len) for the connection. */
static void tcp_emit(rec_state *s, rec_conn *c, const char *data, size_t len, uint8_t flags)
{
    const rec_listener *l = &s->ls[c->listener];
    rf_rec r = {.wall_ns = rf_clock_wall_ns(),
                .mono_ns = rf_clock_mono_ns(),
                .conn = c->id,
                .transport = RF_REC_TCP,
                .protocol = l->protocol,
                .name = l->name,
                .flags = (uint8_t)(flags | (c->first ? RF_REC_F_OPEN : 0)),
                .payload = (const uint8_t *)data,
                .payload_len = (uint32_t)len};
    rf_rec_set_source(&r, (struct sockaddr *)&c->peer);
    c->first = false;
    write_rec(s, &r);
    s->tcp_chunks++;
}

static int pending_append(rec_conn *c, const char *p, size_t n)
{
    char *np = realloc(c->pending, c->pending_len + n);
    if (!np)
        return -ENOMEM;
    memcpy(np + c->pending_len, p, n);
    c->pending = np;
    c->pending_len += n;
    return 0;
}

/* Reads what the connection has; returns false when it ended. */
static bool read_tcp(rec_state *s, rec_conn *c, char *buf)
{
    for (int round = 0; round < 16; round++) {
        ssize_t n = recv(c->fd, buf, REC_TCP_READ, 0);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        if (n == 0) {
            if (c->pending_len)
                tcp_emit(s, c, c->pending, c->pending_len, RF_REC_F_FINAL);
            c->pending_len = 0;
            return false;
        }
        /* Complete lines: up to the last '\n' of this read. */
        const char *nl = memrchr(buf, '\n', (size_t)n);
        if (!nl) {
            if (pending_append(c, buf, (size_t)n) != 0)
                return false;
            if (c->pending_len >= REC_TCP_PENDING_MAX) {
                tcp_emit(s, c, c->pending, c->pending_len, 0);
                c->pending_len = 0;
            }
            continue;
        }
        size_t head = (size_t)(nl - buf) + 1;
        if (c->pending_len) {
            if (pending_append(c, buf, head) != 0)
                return false;
            tcp_emit(s, c, c->pending, c->pending_len, 0);
            c->pending_len = 0;
        } else {
            tcp_emit(s, c, buf, head, 0);
        }
        if ((size_t)n > head && pending_append(c, buf + head, (size_t)n - head) != 0)
            return false;
        if (g_stop)
            return true;
    }
    return true;
}

static void close_conn(rec_state *s, unsigned i)
{
    close(s->conns[i].fd);
    free(s->conns[i].pending);
    s->conns[i] = s->conns[--s->n_conns];
}

static int parse_opts(int argc, char **argv, rec_opts *o)
{
    *o = (rec_opts){.max_files = 10, .rcvbuf = 8u << 20};
    static const struct option opts[] = {{"udp", required_argument, NULL, 'u'},
                                         {"tcp", required_argument, NULL, 't'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"max-bytes", required_argument, NULL, 'B'},
                                         {"max-files", required_argument, NULL, 'F'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"rcvbuf", required_argument, NULL, 'R'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"engine", no_argument, NULL, 'E'},
                                         {"socket", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    o->socket[0] = '\0'; /* the engine's (tools/cli/locate.h), when --engine needs it */
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        char *end = NULL;
        uint64_t sz = 0;
        switch (c) {
        case 'u':
        case 't':
            if (o->n_listen == REC_MAX_LISTENERS) {
                fprintf(stderr, "ringflow record: at most %d listeners\n", REC_MAX_LISTENERS);
                return 2;
            }
            snprintf(o->listen[o->n_listen].spec, sizeof(o->listen[0].spec), "%s", optarg);
            o->listen[o->n_listen++].transport = c == 'u' ? RF_REC_UDP : RF_REC_TCP;
            break;
        case 'o': snprintf(o->output, sizeof(o->output), "%s", optarg); break;
        case 'B':
        case 'R':
            if (parse_size(optarg, &sz) != 0) {
                fprintf(stderr, "ringflow record: '%s' is not a size (e.g. 64MiB)\n", optarg);
                return 2;
            }
            if (c == 'B')
                o->max_bytes = sz;
            else
                o->rcvbuf = sz > INT32_MAX ? INT32_MAX : (uint32_t)sz;
            break;
        case 'F': o->max_files = (uint32_t)strtoul(optarg, &end, 10); break;
        case 'd': o->duration_s = strtod(optarg, &end); break;
        case 'n': o->count = strtoull(optarg, &end, 10); break;
        case 'j': o->json = true; break;
        case 'q': o->quiet = true; break;
        case 'E': o->engine = true; break;
        case 'S': snprintf(o->socket, sizeof(o->socket), "%s", optarg); break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "ringflow record: '%s' is not a number\n", optarg);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringflow record: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o->engine && o->n_listen) {
        fprintf(stderr,
                "ringflow record: --engine records the engine's own listeners: no --udp/--tcp\n");
        return 2;
    }
    if (!o->output[0] || (!o->n_listen && !o->engine)) {
        fprintf(stderr, "ringflow record: --output and at least one --udp or --tcp (or --engine) "
                        "are required\n");
        usage(stderr);
        return 2;
    }
    if (o->max_bytes && o->max_bytes < 4096) {
        fprintf(stderr, "ringflow record: --max-bytes must be at least 4096\n");
        return 2;
    }
    if (o->duration_s < 0) {
        fprintf(stderr, "ringflow record: --duration must be >= 0\n");
        return 2;
    }
    return 0;
}

static void name_listeners(rec_state *s)
{
    for (unsigned i = 0; i < s->n_ls; i++) {
        rec_listener *l = &s->ls[i];
        snprintf(l->name, sizeof(l->name), "%s-%s", rf_rec_protocol_name(l->protocol),
                 rf_rec_transport_name(l->transport));
    }
    for (unsigned i = 0; i < s->n_ls; i++) {
        bool dup = false;
        for (unsigned j = 0; j < s->n_ls; j++)
            dup = dup || (j != i && s->ls[j].protocol == s->ls[i].protocol &&
                          s->ls[j].transport == s->ls[i].transport);
        if (dup) {
            const char *port = strrchr(s->ls[i].addr_text, ':');
            size_t l = strlen(s->ls[i].name);
            snprintf(s->ls[i].name + l, sizeof(s->ls[i].name) - l, "-%s", port ? port + 1 : "?");
        }
    }
}

/* One admin command; the reply (malloc'ed) or NULL with a message printed. */
static char *admin_request(const char *socket, const char *cmd)
{
    int fd = rf_cli_connect(socket);
    if (fd < 0) {
        fprintf(stderr,
                "ringflow record: cannot connect to %s: %s (is ringflowd running, and is "
                "this its user?)\n",
                socket, strerror(-fd));
        return NULL;
    }
    char *reply = NULL;
    int rc = rf_cli_request(fd, cmd, 30000, &reply);
    close(fd);
    if (rc < 0 || !reply) {
        fprintf(stderr, "ringflow record: no reply from %s\n", socket);
        free(reply);
        return NULL;
    }
    return reply;
}

/* --engine: the daemon records; this process starts it, waits (duration,
 * count or a signal) and stops it. */
static int record_from_engine(const rec_opts *o)
{
    /* The daemon runs elsewhere: give it an absolute path. */
    char abs[8200];
    if (o->output[0] == '/') {
        snprintf(abs, sizeof(abs), "%s", o->output);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof(cwd))) {
            fprintf(stderr, "ringflow record: getcwd: %s\n", strerror(errno));
            return 1;
        }
        snprintf(abs, sizeof(abs), "%s/%s", cwd, o->output);
    }
    if (strchr(abs, ' ')) {
        fprintf(stderr, "ringflow record: with --engine the path must not contain spaces\n");
        return 2;
    }
    if (strlen(abs) > 1000) {
        fprintf(stderr, "ringflow record: the path is too long for the admin socket\n");
        return 2;
    }
    char cmd[1100];
    int n = snprintf(cmd, sizeof(cmd), "record start %.1000s", abs);
    if (o->max_bytes)
        snprintf(cmd + n, sizeof(cmd) - (size_t)n, " max_bytes %llu max_files %u",
                 (unsigned long long)o->max_bytes, o->max_files);
    const char *sock = o->socket[0] ? o->socket : rf_cli_admin_socket();
    char *reply = admin_request(sock, cmd);
    if (!reply)
        return 1;
    if (strncmp(reply, "ok", 2) != 0) {
        fprintf(stderr, "ringflow record: %s", reply);
        free(reply);
        return 1;
    }
    if (!o->quiet)
        fprintf(stderr, "ringflow record: the engine is recording to %s\n", abs);
    free(reply);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    const int64_t t0 = rf_clock_mono_ns();
    while (!g_stop) {
        if (o->duration_s > 0 && (double)(rf_clock_mono_ns() - t0) / 1e9 >= o->duration_s)
            break;
        if (o->count) {
            char *st = admin_request(sock, "show record json");
            rf_json *doc = st ? rf_json_parse(st, NULL) : NULL;
            double written = doc ? rf_json_num(rf_json_get(doc, "record"), "written", 0) : 0;
            rf_json_free(doc);
            free(st);
            if ((uint64_t)written >= o->count)
                break;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    reply = admin_request(sock, "record stop");
    if (!reply)
        return 1;
    bool ok = strncmp(reply, "ok", 2) == 0;
    if (o->json) {
        printf("{\"engine\":true,\"path\":\"%.1000s\",\"reply\":\"", abs);
        for (const char *p = reply; *p && *p != '\n'; p++)
            putchar(*p == '"' ? '\'' : *p);
        printf("\"}\n");
    } else {
        fputs(reply, ok ? stdout : stderr);
    }
    free(reply);
    return ok ? 0 : 1;
}


int rf_cli_record(int argc, char **argv)
{
    rec_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (o.engine)
        return record_from_engine(&o);

    rec_state *s = calloc(1, sizeof(*s));
    char *bufs = malloc((size_t)REC_BATCH * REC_DGRAM_BYTES);
    if (!s || !bufs) {
        fprintf(stderr, "ringflow record: out of memory\n");
        free(s);
        free(bufs);
        return 1;
    }
    s->o = &o;
    for (unsigned i = 0; i < o.n_listen; i++) {
        s->ls[i].fd = -1;
        if ((rc = open_listener(&o, i, &s->ls[i])) != 0)
            goto out;
        s->n_ls++;
    }
    name_listeners(s);

    rf_err err;
    rf_rec_writer_options wo = {
        .path = o.output, .max_bytes = o.max_bytes, .max_files = o.max_bytes ? o.max_files : 0};
    if (rf_rec_writer_open(&s->w, &wo, &err) != 0) {
        fprintf(stderr, "ringflow %s\n", err.msg);
        rc = 1;
        goto out;
    }
    if (!o.quiet) {
        for (unsigned i = 0; i < s->n_ls; i++)
            fprintf(stderr, "ringflow record: listening on %s %s (%s)\n",
                    rf_rec_transport_name(s->ls[i].transport), s->ls[i].addr_text, s->ls[i].name);
        fflush(stderr);
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    const int64_t t0 = rf_clock_mono_ns();
    const int64_t end_ns = o.duration_s > 0 ? t0 + (int64_t)(o.duration_s * 1e9) : INT64_MAX;
    const bool tty = isatty(STDERR_FILENO) && !o.quiet;
    int64_t next_report = t0 + RF_NS_PER_S;
    struct pollfd pfd[REC_MAX_LISTENERS + REC_MAX_CONNS];
    while (!g_stop) {
        int64_t now = rf_clock_mono_ns();
        if (now >= end_ns)
            break;
        unsigned np = 0;
        for (unsigned i = 0; i < s->n_ls; i++)
            pfd[np++] = (struct pollfd){.fd = s->ls[i].fd, .events = POLLIN};
        for (unsigned i = 0; i < s->n_conns; i++)
            pfd[np++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
        int64_t wait_ms = (end_ns - now) / RF_NS_PER_MS + 1;
        int n = poll(pfd, np, wait_ms > 100 ? 100 : (int)wait_ms);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "ringflow record: poll: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (n > 0) {
            for (unsigned i = 0; i < s->n_ls && !g_stop; i++) {
                if (!(pfd[i].revents & POLLIN))
                    continue;
                if (s->ls[i].transport == RF_REC_UDP)
                    drain_udp(s, i, bufs);
                else
                    accept_tcp(s, i);
            }
            /* Connections accepted in this round are polled from the next. */
            unsigned polled = np - s->n_ls;
            for (unsigned k = polled; k-- > 0 && !g_stop;) {
                if (!(pfd[s->n_ls + k].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                if (!read_tcp(s, &s->conns[k], bufs))
                    close_conn(s, k);
            }
        }
        if (rf_rec_writer_flush(s->w, &err) != 0) {
            fprintf(stderr, "ringflow %s\n", err.msg);
            s->failed = 1;
            break;
        }
        if (tty && now >= next_report) {
            fprintf(stderr, "\rringflow record: %.0f s  %" PRIu64 " records  %" PRIu64 " bytes  ",
                    (double)(now - t0) * 1e-9, s->records, s->payload_bytes);
            next_report += RF_NS_PER_S;
        }
    }
    if (tty)
        fputc('\n', stderr);
    /* Lines still waiting for their '\n' on open connections: record what
     * arrived (it was received; a replay decides what to do with it). */
    for (unsigned i = 0; i < s->n_conns; i++)
        if (s->conns[i].pending_len && !s->failed)
            tcp_emit(s, &s->conns[i], s->conns[i].pending, s->conns[i].pending_len, 0);
    double elapsed = (double)(rf_clock_mono_ns() - t0) * 1e-9;
    rf_rec_writer_stats ws;
    rf_rec_writer_stats_read(s->w, &ws);
    if (rf_rec_writer_close(s->w, &err) != 0) {
        fprintf(stderr, "ringflow %s\n", err.msg);
        s->failed = 1;
    }
    s->w = NULL;
    if (o.json)
        printf("{\"records\":%" PRIu64 ",\"datagrams\":%" PRIu64 ",\"tcp_chunks\":%" PRIu64
               ",\"payload_bytes\":%" PRIu64 ",\"file_bytes\":%" PRIu64 ",\"files\":%u,"
               "\"files_deleted\":%u,\"truncated\":%" PRIu64 ",\"refused\":%" PRIu64
               ",\"elapsed_s\":%.3f}\n",
               s->records, s->datagrams, s->tcp_chunks, s->payload_bytes, ws.bytes, ws.files,
               ws.deleted, s->truncated, s->refused, elapsed);
    else
        printf("recorded %" PRIu64 " records (%" PRIu64 " datagrams, %" PRIu64
               " tcp chunks), %" PRIu64 " payload bytes, into %u file%s (%" PRIu64
               " bytes, %u rotated away) in %.1f s; %" PRIu64 " truncated, %" PRIu64
               " connections refused\n",
               s->records, s->datagrams, s->tcp_chunks, s->payload_bytes, ws.files,
               ws.files == 1 ? "" : "s", ws.bytes, ws.deleted, elapsed, s->truncated, s->refused);
    if (s->failed)
        rc = 1;
out:
    for (unsigned i = 0; i < s->n_conns; i++) {
        close(s->conns[i].fd);
        free(s->conns[i].pending);
    }
    for (unsigned i = 0; i < o.n_listen; i++)
        if (s->ls[i].fd >= 0 && i < s->n_ls)
            close(s->ls[i].fd);
    if (s->w)
        rf_rec_writer_close(s->w, NULL);
    free(s);
    free(bufs);
    return rc;
}
