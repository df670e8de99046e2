/* Listener sockets: address parsing, socket options, the TCP connection
 * tables, adding a listener to a set, and the /proc fallback for kernel drop
 * counts. Part of ingest/listen (contract in listen.h, shared structs in
 * listen_pvt.h). */
#include "ingest/listen/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/log/log.h"
#include "ingest/listen/listen_pvt.h"

#define LOG_COMP "listen"

/* ---- sockets ------------------------------------------------------------ */

static bool addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static int parse_addr(const char *text, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

static int set_int_opt(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof(v)) < 0 ? -errno : 0;
}

/* Requests the receive buffer: SO_RCVBUFFORCE passes net.core.rmem_max with
 * CAP_NET_ADMIN; without it SO_RCVBUF is capped there. */
static void apply_rcvbuf(rf_listener *l)
{
    if (l->cfg.rcvbuf_bytes) {
        int v = (int)(l->cfg.rcvbuf_bytes > INT32_MAX / 2 ? INT32_MAX / 2 : l->cfg.rcvbuf_bytes);
        if (set_int_opt(l->fd, SOL_SOCKET, SO_RCVBUFFORCE, v) < 0)
            (void)set_int_opt(l->fd, SOL_SOCKET, SO_RCVBUF, v);
    }
    int got = 0;
    socklen_t gl = sizeof(got);
    if (getsockopt(l->fd, SOL_SOCKET, SO_RCVBUF, &got, &gl) == 0)
        l->rcvbuf_granted = got;
    /* The kernel reports twice the usable size (the rest is its own
     * bookkeeping): compare and say what the user wrote. */
    if (l->cfg.rcvbuf_bytes && (uint64_t)l->rcvbuf_granted / 2 < l->cfg.rcvbuf_bytes) {
        char want[32], got[32];
        rf_log_warn(LOG_COMP,
                    "listener %s: rcvbuf %s requested, the kernel gave %s (raise "
                    "net.core.rmem_max or grant CAP_NET_ADMIN)",
                    l->cfg.name, rf_cfg_format_size(l->cfg.rcvbuf_bytes, want, sizeof(want)),
                    rf_cfg_format_size((uint64_t)l->rcvbuf_granted / 2, got, sizeof(got)));
    }
}

static int open_socket(rf_listener *l, rf_err *err)
{
    const rf_listener_config *c = &l->cfg;
    struct sockaddr_storage ss;
    socklen_t slen;
    if (parse_addr(c->address, c->port, &ss, &slen) < 0)
        return rf_err_set(err, EINVAL, "listener %s: address '%s' is not an IPv4 or IPv6 literal",
                          c->name, c->address);
    l->family = ss.ss_family;
    if (!addr_is_loopback(&ss))
        rf_log_warn(LOG_COMP,
                    "listener %s: bound to non-loopback address %s: reachable from the "
                    "network, unauthenticated",
                    c->name, c->address);

    /* Blocking sockets on purpose: io_uring handles readiness itself, and a
     * blocking socket makes it wait by poll rather than return EAGAIN. */
    int type = c->transport == RF_LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
    l->fd = socket(l->family, type | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return rf_err_set(err, errno, "listener %s: socket: %s", c->name, strerror(errno));
    int rc = set_int_opt(l->fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (rc == 0 && c->transport == RF_LISTEN_TCP)
        rc = set_int_opt(l->fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (rc == 0 && l->family == AF_INET6)
        rc = set_int_opt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (rc == 0 && c->transport == RF_LISTEN_UDP)
        rc = set_int_opt(l->fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    /* The kernel's receipt time of each datagram: what the critical path is
     * measured from, so that time spent waiting in the socket queue (while
     * the worker was busy) counts too. */
    if (rc == 0 && c->transport == RF_LISTEN_UDP)
        rc = set_int_opt(l->fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
    if (rc < 0)
        return rf_err_set(err, -rc, "listener %s: setsockopt: %s", c->name, strerror(-rc));
    apply_rcvbuf(l);

    char at[RF_LISTEN_ADDR_TEXT_MAX];
    rf_listen_addr_format((struct sockaddr *)&ss, slen, at, sizeof(at));
    if (bind(l->fd, (struct sockaddr *)&ss, slen) < 0)
        return rf_err_set(err, errno, "listener %s: bind %s: %s", c->name, at, strerror(errno));
    if (c->transport == RF_LISTEN_TCP && listen(l->fd, SOMAXCONN) < 0)
        return rf_err_set(err, errno, "listener %s: listen %s: %s", c->name, at, strerror(errno));

    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(l->fd, (struct sockaddr *)&bound, &blen) == 0)
        l->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                   : ((struct sockaddr_in6 *)&bound)->sin6_port);
    return 0;
}

static int tcp_tables(rf_listener *l, rf_err *err)
{
    uint32_t n = l->cfg.max_connections;
    l->conns = calloc(n, sizeof(*l->conns));
    l->free_slots = calloc(n, sizeof(*l->free_slots));
    /* One line buffer per slot, reserved but not backed until a connection
     * actually holds a partial line there. */
    l->line_mem_bytes = (size_t)n * l->cfg.max_line_bytes;
    void *m = mmap(NULL, l->line_mem_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    l->line_mem = m == MAP_FAILED ? NULL : m;
    if (!l->conns || !l->free_slots || !l->line_mem)
        return rf_err_set(err, ENOMEM,
                          "listener %s: out of memory for %u connections of %u-byte "
                          "lines",
                          l->cfg.name, n, l->cfg.max_line_bytes);
    for (uint32_t i = 0; i < n; i++) {
        l->conns[i].fd = -1;
        l->conns[i].lines.buf = l->line_mem + (size_t)i * l->cfg.max_line_bytes;
        l->conns[i].lines.cap = l->cfg.max_line_bytes;
        l->free_slots[i] = n - 1 - i; /* slot 0 on top */
    }
    l->n_free = n;
    return 0;
}

int rf_listener_open(const rf_listener_config *cfg, rf_listener **out, rf_err *err)
{
    *out = NULL;
    const char *nm = cfg->name[0] ? cfg->name : "?";
    if (!cfg->handler.on_data)
        return rf_err_set(err, EINVAL, "listener %s: no handler", nm);
    if ((unsigned)cfg->transport > RF_LISTEN_TCP ||
        (unsigned)cfg->protocol > RF_LISTEN_PROTO_COLLECTD)
        return rf_err_set(err, EINVAL, "listener %s: bad transport or protocol", nm);

    rf_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return rf_err_set(err, ENOMEM, "listener %s: out of memory", nm);
    l->cfg = *cfg;
    if (!l->cfg.name[0])
        snprintf(l->cfg.name, sizeof(l->cfg.name), "%s-%s", rf_listen_protocol_name(cfg->protocol),
                 rf_listen_transport_name(cfg->transport));
    if (!l->cfg.max_connections)
        l->cfg.max_connections = 1024;
    if (!l->cfg.max_line_bytes)
        l->cfg.max_line_bytes = 65536;
    l->fd = -1;

    int rc = open_socket(l, err);
    if (rc == 0 && l->cfg.transport == RF_LISTEN_TCP)
        rc = tcp_tables(l, err);
    if (rc < 0) {
        rf_listener_close(l);
        return rc;
    }
    if (l->cfg.transport == RF_LISTEN_UDP) {
        l->msg.msg_namelen = UDP_NAME_BYTES;
        l->msg.msg_controllen = UDP_CTRL_BYTES;
    }
    l->component = rf_component_register("listener", l->cfg.name);
    if (l->component)
        rf_component_transition(l->component, RF_STATE_CONFIGURING, NULL);
    /* Debug: each worker opens its own socket; the daemon logs one line per
     * listener once all of them are open. */
    rf_log_debug(LOG_COMP, "listener %s: socket %s %s port %u protocol %s SO_RCVBUF %d",
                 l->cfg.name, rf_listen_transport_name(l->cfg.transport), l->cfg.address, l->port,
                 rf_listen_protocol_name(l->cfg.protocol), l->rcvbuf_granted);
    *out = l;
    return 0;
}

void rf_listener_close(rf_listener *l)
{
    if (!l)
        return;
    rf_listen_conn_teardown(l);
    if (l->fd >= 0)
        close(l->fd);
    /* Its owner is done with it (never attached, or removed from its set):
     * the component leaves the registry (/health) with it. */
    rf_component_unregister(l->component);
    free(l);
}

/* Puts an opened listener into the set's table (either thread that owns
 * the set at this moment: the control thread before start, the owner
 * after). */
int rf_listen_set_insert(rf_listener_set *set, rf_listener *l, rf_err *err)
{
    uint32_t used = 0;
    for (uint32_t i = 0; i < set->n_listeners; i++)
        used += set->listeners[i] != NULL;
    if (used >= UINT16_MAX)
        return rf_err_set(err, ENOSPC, "listener %s: set %s is full", l->cfg.name, set->name);
    if (set->n_listeners == set->cap_listeners) {
        uint32_t nc = set->cap_listeners ? set->cap_listeners * 2 : 4;
        rf_listener **nl = realloc(set->listeners, nc * sizeof(*nl));
        if (!nl)
            return rf_err_set(err, ENOMEM, "listener %s: out of memory", l->cfg.name);
        set->listeners = nl;
        set->cap_listeners = nc;
    }
    if (l->cfg.transport == RF_LISTEN_TCP && l->cfg.idle_timeout_ns) {
        int64_t every = (int64_t)(l->cfg.idle_timeout_ns / 8);
        if (every < RF_NS_PER_MS)
            every = RF_NS_PER_MS;
        if (every > RF_NS_PER_S)
            every = RF_NS_PER_S;
        if (!set->idle_check_every_ns || every < set->idle_check_every_ns)
            set->idle_check_every_ns = every;
    }
    /* A slot rf_listener_set_remove emptied first: listeners that reloads
     * add and remove must not grow the table (or pass the 16-bit index in
     * a request's user data). A removed listener's requests have all
     * ended (DETACHED), so no completion can name its old slot, except its
     * cancel's, which is ignored whoever holds the slot now. */
    uint32_t i = 0;
    while (i < set->n_listeners && set->listeners[i])
        i++;
    l->set = set;
    l->index = i;
    set->listeners[i] = l;
    if (i == set->n_listeners)
        set->n_listeners++;
    return 0;
}

int rf_listener_add(rf_listener_set *set, const rf_listener_config *cfg, rf_listener **out,
                    rf_err *err)
{
    if (out)
        *out = NULL;
    const char *nm = cfg->name[0] ? cfg->name : "?";
    if (set->started)
        return rf_err_set(err, EBUSY, "listener %s: set %s already started", nm, set->name);
    rf_listener *l;
    int rc = rf_listener_open(cfg, &l, err);
    if (rc < 0)
        return rc;
    if ((rc = rf_listen_set_insert(set, l, err)) < 0) {
        rf_listener_close(l);
        return rc;
    }
    if (out)
        *out = l;
    return 0;
}

/* ---- /proc fallback for drops --------------------------------------------- */

static int proc_drops_in(const char *path, unsigned long ino, uint64_t *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    char line[512];
    int rc = -ENOENT;
    if (!fgets(line, sizeof(line), f)) { /* header */
        fclose(f);
        return rc;
    }
    while (fgets(line, sizeof(line), f)) {
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
        unsigned long inode = 0, drops = 0;
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %lu", &inode, &drops) ==
                2 &&
            inode == ino) {
            *out = drops;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

int rf_listener_proc_drops(const rf_listener *l, uint64_t *out)
{
    if (l->cfg.transport != RF_LISTEN_UDP)
        return -EINVAL;
    /* First the socket's own drop counter (SO_MEMINFO, Linux 4.6+): exact and
     * race-free. /proc/net/udp is read through a seq_file that can skip an
     * entry while other sockets are created or closed; a skipped entry left
     * only KERNEL_DROPS, which misses the drops after the last datagram read
     * (seen as a few hundred uncounted datagrams in tests/reliability). */
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t mlen = sizeof(mem);
    if (getsockopt(l->fd, SOL_SOCKET, SO_MEMINFO, mem, &mlen) == 0 &&
        mlen > SK_MEMINFO_DROPS * sizeof(uint32_t)) {
        *out = mem[SK_MEMINFO_DROPS];
        return 0;
    }
    struct stat st;
    if (fstat(l->fd, &st) < 0)
        return -errno;
    return proc_drops_in(l->family == AF_INET6 ? "/proc/net/udp6" : "/proc/net/udp",
                         (unsigned long)st.st_ino, out);
}
