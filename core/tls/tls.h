/* TLS for servers whose owner does the socket I/O (OpenSSL over memory BIOs).
 *
 * Shape
 *   An rf_tls_server is one listener's certificate, key and client-CA
 *   settings (an SSL_CTX), shared by every thread that serves that listener.
 *   An rf_tls_conn is one connection's TLS state (an SSL over two memory
 *   BIOs), owned by the thread that reads the socket:
 *
 *     socket bytes --rf_tls_conn_feed--> rbio --SSL_read--> plaintext
 *     plaintext --rf_tls_conn_write--> SSL_write --> wbio --rf_tls_conn_out--> socket
 *
 *   Nothing here reads or writes a socket, blocks or starts a thread: the
 *   io_uring worker feeds what it received and sends what is pending. The
 *   handshake is driven by the same calls (rf_tls_conn_read makes progress
 *   with whatever came in), so it is bounded by the owner's own timeouts.
 *
 * Reload
 *   A reload (control thread, SIGHUP) loads the files into a new server and,
 *   when they all loaded, rf_tls_server_take moves its SSL_CTX into the
 *   running one; a file missing or wrong leaves the old context in force. New connections take the context current at
 *   rf_tls_conn_new (SSL_CTX is reference-counted: a connection keeps the
 *   one it started with). The swap is a mutex held for a pointer copy and a
 *   reference count, once per connection, never per byte.
 *
 * Refusals
 *   rf_tls_conn_read says why a connection failed (enum rf_tls_fail) so the
 *   owner can count it; the alert OpenSSL wrote is left in the output to be
 *   sent before the close. */
#ifndef RF_CORE_TLS_H
#define RF_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/config/config.h"
#include "core/error/error.h"

#define RF_TLS_PATH_MAX 256

/* `tls:` of a listener: {cert_file, key_file, client_ca_file, min_version}. */
typedef struct rf_tls_config {
    bool enabled; /* the mapping is present */
    char cert_file[RF_TLS_PATH_MAX];
    char key_file[RF_TLS_PATH_MAX];
    char client_ca_file[RF_TLS_PATH_MAX]; /* "": no client certificate asked */
    int min_version;                      /* 12 or 13 (TLS 1.2, 1.3); default 12 */
} rf_tls_config;

/* Parses map's `tls` key (absent: enabled false). cert_file and key_file are
 * required; files are not opened here (rf_tls_server_new does). */
int rf_tls_config_parse(const rf_cfg_node *map, rf_tls_config *out, rf_err *err);

typedef struct rf_tls_server rf_tls_server;
typedef struct rf_tls_conn rf_tls_conn;

/* Loads certificate, key (checked against each other) and client CA. */
rf_tls_server *rf_tls_server_new(const rf_tls_config *cfg, rf_err *err);
/* Reload: t takes from's context (from, loaded with rf_tls_server_new, is
 * freed). A reload loads into a new server first, so files that do not load
 * leave t as it was. */
void rf_tls_server_take(rf_tls_server *t, rf_tls_server *from);
/* After every connection was freed. */
void rf_tls_server_free(rf_tls_server *t);

/* Why a connection's TLS ended in error (the owner's counters). */
enum rf_tls_fail {
    RF_TLS_FAIL_NONE = 0,
    RF_TLS_FAIL_HANDSHAKE,           /* not TLS, no common version or cipher, a client alert */
    RF_TLS_FAIL_CLIENT_CERT_MISSING, /* client_ca_file set and no certificate sent */
    RF_TLS_FAIL_CLIENT_CERT_INVALID, /* a certificate the CA did not sign, expired, ... */
    RF_TLS_FAIL_PROTOCOL,            /* after the handshake: a bad record */
};

rf_tls_conn *rf_tls_conn_new(rf_tls_server *t, rf_err *err);
void rf_tls_conn_free(rf_tls_conn *c);

/* Ciphertext received from the socket (copied). 0 or -ENOMEM. */
int rf_tls_conn_feed(rf_tls_conn *c, const void *data, size_t len);
/* Plaintext decrypted from what was fed: > 0 bytes, 0 when more input is
 * needed (or the handshake is in progress), -EPIPE when the peer closed its
 * TLS side, -EPROTO on failure (*why says which). Call until it returns
 * <= 0; then send rf_tls_conn_out (handshake records, alerts). */
ssize_t rf_tls_conn_read(rf_tls_conn *c, void *buf, size_t cap, enum rf_tls_fail *why);
/* Encrypts plaintext into the output. 0, or -EPROTO (the connection failed). */
int rf_tls_conn_write(rf_tls_conn *c, const void *data, size_t len);
/* Queues a close_notify alert. */
void rf_tls_conn_close_notify(rf_tls_conn *c);
/* Ciphertext waiting to be sent; consume what the socket took. */
void rf_tls_conn_out(rf_tls_conn *c, const char **data, size_t *len);
void rf_tls_conn_consume(rf_tls_conn *c, size_t n);
/* Whether the handshake is done. */
bool rf_tls_conn_established(const rf_tls_conn *c);

/* Hand-over to another thread (a detached HTTP answer): the owner calls
 * release once it no longer touches c; the taker calls acquire, which waits
 * for that release, before it uses c. */
void rf_tls_conn_release(rf_tls_conn *c);
void rf_tls_conn_acquire(rf_tls_conn *c);

/* Sends everything pending on a socket, waiting (poll) at most timeout_ms
 * for room each time. For a thread that answers a connection it took over
 * (storage/promapi); never on an io_uring worker. 0 or -errno. */
int rf_tls_conn_send_blocking(rf_tls_conn *c, int fd, int timeout_ms);

/* Bytes of memory one connection holds at most besides its queued I/O. */
#define RF_TLS_CONN_MEMORY (64u << 10)

#endif
