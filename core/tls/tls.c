/* TLS over memory BIOs (contract in tls.h). */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/tls/tls.h"

struct rf_tls_server {
    pthread_mutex_t lock; /* guards ctx: swapped by reload, read at each new connection */
    SSL_CTX *ctx;
};

struct rf_tls_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    _Atomic bool released;
};

static const char *const versions[] = {"1.2", "1.3"};

int rf_tls_config_parse(const rf_cfg_node *map, rf_tls_config *out, rf_err *err)
{
    memset(out, 0, sizeof(*out));
    out->min_version = 12;
    const rf_cfg_node *t;
    int rc, v;
    if (!rf_cfg_get(map, "tls"))
        return 0;
    if ((rc = rf_cfg_map(map, "tls", &t, err)) < 0)
        return rc;
    if ((rc = rf_cfg_require(t, "cert_file", err)) < 0 ||
        (rc = rf_cfg_require(t, "key_file", err)) < 0 ||
        (rc = rf_cfg_str(t, "cert_file", 1, "", out->cert_file, sizeof(out->cert_file), err)) < 0 ||
        (rc = rf_cfg_str(t, "key_file", 1, "", out->key_file, sizeof(out->key_file), err)) < 0 ||
        (rc = rf_cfg_str(t, "client_ca_file", 0, "", out->client_ca_file,
                         sizeof(out->client_ca_file), err)) < 0 ||
        (rc = rf_cfg_enum(t, "min_version", versions, 2, 0, &v, err)) < 0)
        return rc;
    out->min_version = v == 1 ? 13 : 12;
    out->enabled = true;
    return 0;
}

/* The first queued OpenSSL error as text, and the queue emptied. */
static int ssl_fail(rf_err *err, const char *what, const char *path)
{
    char buf[256] = "unknown error";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return rf_err_set(err, EINVAL, "tls: %s '%s': %s", what, path, buf);
}

static SSL_CTX *ctx_build(const rf_tls_config *cfg, rf_err *err)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        rf_err_set(err, ENOMEM, "tls: out of memory for a context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, cfg->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* Renegotiation would let a client restart the handshake at will. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* Idle connections give their record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        ssl_fail(err, "certificate", cfg->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        ssl_fail(err, "key", cfg->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_fail(err, "key does not match the certificate", cfg->key_file);
        goto fail;
    }
    if (cfg->client_ca_file[0]) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_ca_file);
        if (!names || SSL_CTX_load_verify_locations(ctx, cfg->client_ca_file, NULL) != 1) {
            if (names)
                sk_X509_NAME_pop_free(names, X509_NAME_free);
            ssl_fail(err, "client CA", cfg->client_ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

rf_tls_server *rf_tls_server_new(const rf_tls_config *cfg, rf_err *err)
{
    rf_tls_server *t = calloc(1, sizeof(*t));
    if (!t) {
        rf_err_set(err, ENOMEM, "tls: out of memory");
        return NULL;
    }
    if (!(t->ctx = ctx_build(cfg, err))) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void rf_tls_server_take(rf_tls_server *t, rf_tls_server *from)
{
    SSL_CTX *ctx = from->ctx;
    from->ctx = NULL;
    rf_tls_server_free(from);
    pthread_mutex_lock(&t->lock);
    SSL_CTX *old = t->ctx;
    t->ctx = ctx;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* connections that started on it hold their own reference */
}

void rf_tls_server_free(rf_tls_server *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

rf_tls_conn *rf_tls_conn_new(rf_tls_server *t, rf_err *err)
{
    rf_tls_conn *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    pthread_mutex_lock(&t->lock);
    c->ssl = SSL_new(t->ctx); /* takes its own reference to the context */
    pthread_mutex_unlock(&t->lock);
    if (!c->ssl)
        goto oom;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        goto oom;
    }
    /* An empty read BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return c;
oom:
    free(c);
    ERR_clear_error();
    rf_err_set(err, ENOMEM, "tls: out of memory for a connection");
    return NULL;
}

void rf_tls_conn_free(rf_tls_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl); /* frees both BIOs */
    free(c);
}

int rf_tls_conn_feed(rf_tls_conn *c, const void *data, size_t len)
{
    while (len) {
        int n = BIO_write(c->rbio, data, len > (1u << 30) ? 1 << 30 : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            return -ENOMEM;
        }
        data = (const char *)data + n;
        len -= (size_t)n;
    }
    return 0;
}

static enum rf_tls_fail classify(rf_tls_conn *c)
{
    unsigned long e = ERR_peek_last_error();
    int reason = ERR_GET_REASON(e);
    enum rf_tls_fail why = RF_TLS_FAIL_PROTOCOL;
    if (!SSL_is_init_finished(c->ssl)) {
        why = RF_TLS_FAIL_HANDSHAKE;
        if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
            why = RF_TLS_FAIL_CLIENT_CERT_MISSING;
        else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED ||
                 SSL_get_verify_result(c->ssl) != X509_V_OK)
            why = RF_TLS_FAIL_CLIENT_CERT_INVALID;
    }
    ERR_clear_error();
    return why;
}

ssize_t rf_tls_conn_read(rf_tls_conn *c, void *buf, size_t cap, enum rf_tls_fail *why)
{
    *why = RF_TLS_FAIL_NONE;
    ERR_clear_error(); /* SSL_get_error reads this thread's queue */
    int n = SSL_read(c->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: return 0;
    case SSL_ERROR_ZERO_RETURN: return -EPIPE;
    default: *why = classify(c); return -EPROTO;
    }
}

int rf_tls_conn_write(rf_tls_conn *c, const void *data, size_t len)
{
    ERR_clear_error();
    while (len) {
        /* A memory BIO takes everything: SSL_write returns the whole length. */
        int n = SSL_write(c->ssl, data, len > (1u << 30) ? 1 << 30 : (int)len);
        if (n <= 0) {
            ERR_clear_error();
            return -EPROTO;
        }
        data = (const char *)data + n;
        len -= (size_t)n;
    }
    return 0;
}

void rf_tls_conn_close_notify(rf_tls_conn *c)
{
    ERR_clear_error();
    if (SSL_is_init_finished(c->ssl))
        (void)SSL_shutdown(c->ssl);
    ERR_clear_error();
}

void rf_tls_conn_out(rf_tls_conn *c, const char **data, size_t *len)
{
    char *p = NULL;
    long n = BIO_get_mem_data(c->wbio, &p);
    *data = p;
    *len = n > 0 ? (size_t)n : 0;
}

void rf_tls_conn_consume(rf_tls_conn *c, size_t n)
{
    char sink[4096];
    while (n) {
        int r = BIO_read(c->wbio, sink, n > sizeof(sink) ? (int)sizeof(sink) : (int)n);
        if (r <= 0)
            break;
        n -= (size_t)r;
    }
}

bool rf_tls_conn_established(const rf_tls_conn *c)
{
    return SSL_is_init_finished(c->ssl);
}

int rf_tls_conn_send_blocking(rf_tls_conn *c, int fd, int timeout_ms)
{
    for (;;) {
        const char *p;
        size_t len;
        rf_tls_conn_out(c, &p, &len);
        if (len == 0)
            return 0;
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            rf_tls_conn_consume(c, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return w == 0 ? -EPIPE : -errno;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        if (poll(&pf, 1, timeout_ms) != 1)
            return -ETIMEDOUT;
    }
}

void rf_tls_conn_release(rf_tls_conn *c)
{
    /* Pairs with the acquire load in rf_tls_conn_acquire: the owner's last
     * writes to the SSL state happen before the taker's first. */
    atomic_store_explicit(&c->released, true, memory_order_release);
}

void rf_tls_conn_acquire(rf_tls_conn *c)
{
    /* Pairs with the release store in rf_tls_conn_release. */
    while (!atomic_load_explicit(&c->released, memory_order_acquire)) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}
