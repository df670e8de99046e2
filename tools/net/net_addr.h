/* Host:port text to a socket, for the command-line tools that send to or
 * listen on an address given by the user (ringflow load, replay, record).
 *
 * Contract
 *   - rf_net_split_host_port parses "HOST:PORT" (IPv6 as "[ADDR]:PORT");
 *     the port is the text after the last ':'.
 *   - rf_net_socket resolves, creates the socket (close-on-exec), applies the
 *     options, then connects (a client) or binds and, for SOCK_STREAM,
 *     listens (a server). Errors are a negative errno with err saying which
 *     step failed and on which address; nothing is left open on error.
 *     An address that does not resolve is -EINVAL.
 *   - rf_net_target_option and rf_net_transport_option parse the --target
 *     and --transport options every sending tool takes, with one wording for
 *     their errors (printed to stderr, naming the tool).
 *   - Control path only: getaddrinfo may block on DNS.
 */
#ifndef RF_TOOLS_NET_ADDR_H
#define RF_TOOLS_NET_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/error/error.h"

typedef struct rf_net_socket_opts {
    int socktype;   /* SOCK_DGRAM or SOCK_STREAM */
    int type_flags; /* more socket() type flags (SOCK_NONBLOCK); SOCK_CLOEXEC is always set */
    bool listen;    /* bind (numeric host, AI_PASSIVE) instead of connect */
    bool reuseaddr; /* SO_REUSEADDR before bind */
    int sndbuf;     /* SO_SNDBUF before connect; 0: the kernel's default */
    int rcvbuf;     /* SO_RCVBUFFORCE, or SO_RCVBUF when not permitted; 0: default */
    int backlog;    /* SOCK_STREAM listeners; 0: 128 */
} rf_net_socket_opts;

/* Splits text into host (brackets of an IPv6 address removed) and port.
 * Returns 0, or -EINVAL when there is no ':' or the host or port is empty. */
int rf_net_split_host_port(const char *text, char *host, size_t host_size, char *port,
                           size_t port_size);

/* --target HOST:PORT for `ringflow TOOL`: 0, or -EINVAL after printing why. */
int rf_net_target_option(const char *tool, const char *arg, char *host, size_t host_size,
                         char *port, size_t port_size);

/* --transport udp|tcp for `ringflow TOOL`: 0 with *tcp set, or -EINVAL after
 * printing why. */
int rf_net_transport_option(const char *tool, const char *arg, bool *tcp);

/* Returns the socket, or a negative errno (err set). addr/addr_len, when not
 * NULL, receive the address connected or bound to. */
int rf_net_socket(const char *host, const char *port, const rf_net_socket_opts *o,
                  struct sockaddr_storage *addr, socklen_t *addr_len, rf_err *err);

/* Reads until the peer closes (or timeout_ms passes without a byte): a
 * malloc'd NUL-terminated buffer of *len bytes, or NULL when out of memory.
 * For one-request-per-connection clients (ringflow query --url). */
char *rf_net_read_all(int fd, int timeout_ms, size_t *len);

#endif
