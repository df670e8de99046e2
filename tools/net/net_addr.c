/* Host:port text to a connected or bound socket (net_addr.h). */
#include "tools/net/net_addr.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int rf_net_split_host_port(const char *text, char *host, size_t host_size, char *port,
                           size_t port_size)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || !colon[1])
        return -EINVAL;
    snprintf(host, host_size, "%.*s", (int)(colon - text), text);
    size_t l = strlen(host);
    if (l >= 2 && host[0] == '[' && host[l - 1] == ']') {
        memmove(host, host + 1, l - 2);
        host[l - 2] = '\0';
    }
    snprintf(port, port_size, "%s", colon + 1);
    return 0;
}

int rf_net_target_option(const char *tool, const char *arg, char *host, size_t host_size,
                         char *port, size_t port_size)
{
    if (rf_net_split_host_port(arg, host, host_size, port, port_size) == 0)
        return 0;
    fprintf(stderr, "ringflow %s: --target wants HOST:PORT, got '%s'\n", tool, arg);
    return -EINVAL;
}

int rf_net_transport_option(const char *tool, const char *arg, bool *tcp)
{
    if (!strcmp(arg, "udp") || !strcmp(arg, "tcp")) {
        *tcp = arg[0] == 't';
        return 0;
    }
    fprintf(stderr, "ringflow %s: --transport is udp or tcp, got '%s'\n", tool, arg);
    return -EINVAL;
}

int rf_net_socket(const char *host, const char *port, const rf_net_socket_opts *o,
                  struct sockaddr_storage *addr, socklen_t *addr_len, rf_err *err)
{
    struct addrinfo hints = {.ai_flags = o->listen ? AI_NUMERICHOST | AI_PASSIVE : 0,
                             .ai_socktype = o->socktype},
                    *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return rf_err_set(err, EINVAL, "%s:%s: %s", host, port, gai_strerror(rc));
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC | o->type_flags, 0);
    if (fd < 0) {
        rc = rf_err_set(err, errno, "socket: %s", strerror(errno));
        goto out;
    }
    int one = 1;
    if (o->reuseaddr)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (o->sndbuf)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->sndbuf, sizeof(o->sndbuf));
    if (o->rcvbuf && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &o->rcvbuf, sizeof(o->rcvbuf)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->rcvbuf, sizeof(o->rcvbuf));
    if (!o->listen) {
        if (connect(fd, res->ai_addr, res->ai_addrlen) != 0)
            rc = rf_err_set(err, errno, "connect %s:%s: %s", host, port, strerror(errno));
    } else if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
               (o->socktype == SOCK_STREAM && listen(fd, o->backlog ? o->backlog : 128) != 0)) {
        rc = rf_err_set(err, errno, "%s:%s: %s", host, port, strerror(errno));
    }
    if (rc != 0) {
        close(fd);
    } else if (addr) {
        memcpy(addr, res->ai_addr, res->ai_addrlen);
        *addr_len = res->ai_addrlen;
    }
out:
    freeaddrinfo(res);
    return rc != 0 ? rc : fd;
}

char *rf_net_read_all(int fd, int timeout_ms, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) != 1)
            break;
        if (n + 1 == cap) {
            char *g = realloc(buf, cap * 2);
            if (!g) {
                free(buf);
                return NULL;
            }
            buf = g;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}
