/* Line-protocol forwarders over UDP and TCP: non-blocking connect, send,
 * reconnect with full-jitter exponential backoff, and the circuit breaker.
 * Everything here runs inside rf_sink_flush() and never waits: a connect in
 * progress is polled with a zero timeout on the next flush. */
#include "stages/sink/sink_pvt.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

#define DEFAULT_DATAGRAM 1432u
#define DEFAULT_BACKOFF_BASE (100 * RF_NS_PER_MS)
#define DEFAULT_BACKOFF_MAX (30 * RF_NS_PER_S)
#define DEFAULT_CONNECT_TIMEOUT (5 * RF_NS_PER_S)
#define DEFAULT_BREAKER_FAILURES 5u
#define DEFAULT_BREAKER_COOLDOWN (10 * RF_NS_PER_S)

static uint64_t rng_next(uint64_t *x)
{
    /* splitmix64: jitter only needs to decorrelate forwarders, not be secure. */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int rf_sink_net_open(rf_sink *s, const rf_sink_config *cfg, rf_err *err)
{
    if (!cfg->host || !cfg->port)
        return rf_err_set(err, EINVAL, "sink %s: a forwarder needs host and port", s->name);
    char port[8];
    snprintf(port, sizeof(port), "%u", cfg->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = cfg->type == RF_SINK_LP_UDP ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(cfg->host, port, &hints, &res);
    if (g != 0 || !res)
        return rf_err_set(err, EINVAL, "sink %s: cannot resolve %s: %s", s->name, cfg->host,
                          gai_strerror(g));
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    s->max_datagram = cfg->max_datagram ? cfg->max_datagram : DEFAULT_DATAGRAM;
    if (s->max_datagram > s->cap)
        s->max_datagram = s->cap;
    s->backoff_base = cfg->backoff_base_ns > 0 ? cfg->backoff_base_ns : DEFAULT_BACKOFF_BASE;
    s->backoff_max = cfg->backoff_max_ns > 0 ? cfg->backoff_max_ns : DEFAULT_BACKOFF_MAX;
    if (s->backoff_max < s->backoff_base)
        return rf_err_set(err, EINVAL, "sink %s: backoff max is below backoff base", s->name);
    s->connect_timeout =
        cfg->connect_timeout_ns > 0 ? cfg->connect_timeout_ns : DEFAULT_CONNECT_TIMEOUT;
    s->breaker_failures = cfg->breaker_failures ? cfg->breaker_failures : DEFAULT_BREAKER_FAILURES;
    s->cooldown =
        cfg->breaker_cooldown_ns > 0 ? cfg->breaker_cooldown_ns : DEFAULT_BREAKER_COOLDOWN;
    s->rng = cfg->jitter_seed ? cfg->jitter_seed : (uint64_t)rf_clock_mono_ns() ^ (uintptr_t)s;
    ST_SET(s, state, RF_SINK_DISCONNECTED);
    ST_SET(s, next_attempt_ns, 0); /* first flush connects */
    return 0;
}

void rf_sink_net_close(rf_sink *s)
{
    if (s->sock >= 0)
        close(s->sock);
    s->sock = -1;
}

/* Records a failure: closes the socket, schedules the next attempt with full
 * jitter, and opens the breaker when failures run in a row. */
static int net_fail(rf_sink *s, int64_t now, int code, const char *what)
{
    bool was_connected = s->st.state == RF_SINK_CONNECTED;
    rf_sink_net_close(s);
    if (was_connected) {
        ST_ADD(s, disconnects, 1);
        /* A TCP line cut in the middle would be garbage on the next
         * connection: drop its rest, counted. */
        if (s->type == RF_SINK_LP_TCP && s->head > 0 && s->buf[s->head - 1] != '\n') {
            char *nl = memchr(s->buf + s->head, '\n', s->tail - s->head);
            sink_buf_consumed(s, nl ? (uint32_t)(nl - (s->buf + s->head)) + 1 : s->tail - s->head);
            ST_ADD(s, drop_disconnected, 1);
        }
    } else {
        ST_ADD(s, connect_failures, 1);
    }
    s->consecutive_failures++;
    uint32_t shift = s->attempt < 40 ? s->attempt : 40;
    int64_t ceiling = s->backoff_base << shift;
    if (ceiling > s->backoff_max || ceiling <= 0)
        ceiling = s->backoff_max;
    if (s->attempt < 62)
        s->attempt++;
    int64_t delay = (int64_t)(rng_next(&s->rng) % (uint64_t)(ceiling + 1));
    ST_SET(s, next_attempt_ns, now + delay);
    ST_SET(s, state, RF_SINK_DISCONNECTED);
    if (s->breaker == BREAKER_HALF_OPEN || s->consecutive_failures >= s->breaker_failures) {
        if (s->breaker != BREAKER_OPEN && s->breaker != BREAKER_HALF_OPEN) {
            ST_ADD(s, breaker_opens, 1);
            rf_log_warn("sink", "sink %s: circuit breaker open after %u failures (last: %s: %s)",
                        s->name, s->consecutive_failures, what, strerror(code));
        }
        s->breaker = BREAKER_OPEN;
        s->breaker_until = now + s->cooldown;
        ST_SET(s, state, RF_SINK_BREAKER_OPEN);
        ST_SET(s, next_attempt_ns, s->breaker_until);
    }
    return -code;
}

/* Evidence that the peer works: a TCP connect, or a UDP send (a UDP
 * "connect" proves nothing, so it does not reset the backoff). */
static void net_success(rf_sink *s)
{
    if (s->breaker != BREAKER_CLOSED)
        rf_log_info("sink", "sink %s: connected, circuit breaker closed", s->name);
    s->attempt = 0;
    s->consecutive_failures = 0;
    s->breaker = BREAKER_CLOSED;
}

static void net_connected(rf_sink *s)
{
    ST_SET(s, state, RF_SINK_CONNECTED);
    ST_ADD(s, connects, 1);
    if (s->type == RF_SINK_LP_TCP)
        net_success(s);
}

static int net_connect(rf_sink *s, int64_t now)
{
    int type = s->type == RF_SINK_LP_UDP ? SOCK_DGRAM : SOCK_STREAM;
    s->sock = socket(s->addr.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->sock < 0)
        return net_fail(s, now, errno, "socket");
    if (type == SOCK_STREAM) {
        int one = 1;
        setsockopt(s->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (connect(s->sock, (struct sockaddr *)&s->addr, s->addrlen) == 0) {
        net_connected(s);
        return 0;
    }
    if (errno == EINPROGRESS) {
        ST_SET(s, state, RF_SINK_CONNECTING);
        s->connect_deadline = now + s->connect_timeout;
        return 0;
    }
    return net_fail(s, now, errno, "connect");
}

/* Completes a connect in progress without waiting. */
static int net_poll_connect(rf_sink *s, int64_t now)
{
    struct pollfd p = {.fd = s->sock, .events = POLLOUT};
    int r = poll(&p, 1, 0);
    if (r == 0) {
        if (now >= s->connect_deadline)
            return net_fail(s, now, ETIMEDOUT, "connect");
        return 0;
    }
    int soerr = 0;
    socklen_t l = sizeof(soerr);
    if (r < 0 || getsockopt(s->sock, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0)
        return net_fail(s, now, errno, "connect");
    if (soerr)
        return net_fail(s, now, soerr, "connect");
    net_connected(s);
    return 0;
}

static void count_lines(rf_sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ST_ADD(s, lines_out, p[i] == '\n');
    ST_ADD(s, bytes_out, n);
}

static int net_send_tcp(rf_sink *s, int64_t now)
{
    /* A peer that closed shows as EOF on a read; learn it before sending
     * into a dead connection (the listener never sends us data). */
    char tmp[64];
    ssize_t r = recv(s->sock, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (r == 0)
        return net_fail(s, now, ECONNRESET, "peer closed");
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return net_fail(s, now, errno, "recv");
    while (s->tail > s->head) {
        ssize_t k = send(s->sock, s->buf + s->head, s->tail - s->head, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            count_lines(s, s->buf + s->head, (size_t)k);
            sink_buf_consumed(s, (uint32_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0; /* kernel buffer full: the rest waits for the next flush */
        return net_fail(s, now, k < 0 ? errno : EPIPE, "send");
    }
    return 0;
}

static int net_send_udp(rf_sink *s, int64_t now)
{
    while (s->tail > s->head) {
        /* One datagram: as many whole lines as fit in max_datagram. */
        uint32_t avail = s->tail - s->head;
        uint32_t len = avail;
        if (len > s->max_datagram) {
            char *nl = memrchr(s->buf + s->head, '\n', s->max_datagram);
            len = nl ? (uint32_t)(nl - (s->buf + s->head)) + 1 : s->max_datagram;
        }
        ssize_t k = send(s->sock, s->buf + s->head, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k >= 0) {
            count_lines(s, s->buf + s->head, len);
            sink_buf_consumed(s, len);
            if (s->consecutive_failures || s->breaker != BREAKER_CLOSED)
                net_success(s);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return 0;
        /* ECONNREFUSED: an ICMP port unreachable came back for an earlier
         * datagram; nobody listens. The datagram in hand is kept. */
        return net_fail(s, now, errno, "send");
    }
    return 0;
}

int rf_sink_net_flush(rf_sink *s, int64_t now)
{
    if (s->breaker == BREAKER_OPEN) {
        if (now < s->breaker_until)
            return 0;
        s->breaker = BREAKER_HALF_OPEN; /* one probe */
        ST_SET(s, state, RF_SINK_DISCONNECTED);
        ST_SET(s, next_attempt_ns, now);
    }
    if (s->st.state == RF_SINK_DISCONNECTED) {
        if (now < s->st.next_attempt_ns)
            return 0;
        int rc = net_connect(s, now);
        if (rc)
            return rc;
    }
    if (s->st.state == RF_SINK_CONNECTING) {
        int rc = net_poll_connect(s, now);
        if (rc || s->st.state != RF_SINK_CONNECTED)
            return rc;
    }
    if (s->tail == s->head)
        return 0; /* a dead TCP peer is noticed on the next flush with data */
    ST_ADD(s, flushes, 1);
    return s->type == RF_SINK_LP_TCP ? net_send_tcp(s, now) : net_send_udp(s, now);
}
