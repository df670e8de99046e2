/* HTTPS against plain HTTP line-protocol ingest, per core, on the same
 * requests: what TLS costs the worker that serves an http listener.
 *
 *   tls/influx/plain/<read>  POST /write requests of 5,000 lines (keep-alive)
 *                            fed to the HTTP layer in reads of <read> bytes,
 *                            parsed by the endpoint, answers consumed
 *   tls/influx/tls/<read>    the same requests as TLS 1.3 records
 *                            (AES-256-GCM, the default suite) fed in reads of
 *                            <read> bytes of ciphertext to the connection's
 *                            rf_tls_conn (core/tls, memory BIOs), decrypted
 *                            into the HTTP layer; its answers encrypted. The
 *                            client's encryption is outside the measure
 *                            (paused); the handshake is done before it.
 * items/s: points out of the parser. The certificate is a P-256 key made at
 * start (no file from the repository). */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/shim/bench_shim.h"
#include "core/tls/tls.h"
#include "ingest/http/http.h"

#define LINES 5000
#define REQUESTS 4

static uint64_t g_events;

static void sink_flush(void *user, rf_event *ev, size_t n)
{
    (void)user;
    g_events += rf_parse_output_discard(ev, n);
}

static char *make_requests(size_t *out_len)
{
    size_t cap = (size_t)REQUESTS * (LINES * 160 + 256), o = 0;
    char *buf = malloc(cap), *body = malloc(LINES * 160);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int r = 0; r < REQUESTS; r++) {
        size_t bl = 0;
        for (int i = 0; i < LINES; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            unsigned s = (unsigned)((r * LINES + i) * 2654435761u % 1000);
            bl +=
                (size_t)snprintf(body + bl, LINES * 160 - bl,
                                 "cpu,host=h-%04u,region=r-%u,service=s-%02u "
                                 "usage_idle=%u.%02u,load=%ui %lld\n",
                                 s, s % 4, s % 30, (unsigned)(x % 100), (unsigned)((x >> 8) % 100),
                                 (unsigned)((x >> 40) % 64), 1700000000000000000LL + r * LINES + i);
        }
        o += (size_t)snprintf(buf + o, cap - o,
                              "POST /write?db=b HTTP/1.1\r\nHost: b\r\nContent-Length: %zu\r\n\r\n",
                              bl);
        memcpy(buf + o, body, bl);
        o += bl;
    }
    free(body);
    *out_len = o;
    return buf;
}

typedef struct rig {
    rf_event batch[256];
    rf_parse_ctx *pc;
    rf_http_server *srv;
    rf_http_ingest in;
    rf_http_conn *conn;
} rig;

static void rig_open(rig *r)
{
    rf_parse_config cfg = {.source_id = 1};
    r->pc = rf_parse_ctx_new(&cfg, r->batch, 256, sink_flush, NULL, NULL);
    r->srv = rf_http_server_new(NULL, NULL);
    r->in = (rf_http_ingest){.parse = r->pc};
    rf_http_ingest_add_influx(r->srv, &r->in, NULL);
    r->conn = rf_http_conn_new(r->srv, "bench", NULL);
}

static void rig_close(rig *r)
{
    rf_http_conn_free(r->conn);
    rf_http_ingest_release(&r->in);
    rf_http_server_free(r->srv);
    rf_parse_ctx_free(r->pc);
}

static void bm_plain(rf_bench_state *st)
{
    size_t read = (size_t)rf_bench_arg(st, 0), len;
    char *req = make_requests(&len);
    rig *r = calloc(1, sizeof(*r));
    rig_open(r);
    g_events = 0;
    uint64_t streams = 0;
    while (rf_bench_keep_running(st)) {
        for (size_t off = 0; off < len; off += read) {
            size_t n = len - off < read ? len - off : read;
            rf_http_conn_feed(r->conn, req + off, n, 1700000000000000000LL, 1);
            const char *o;
            size_t ol;
            rf_http_conn_output(r->conn, &o, &ol);
            rf_http_conn_consume(r->conn, ol);
        }
        streams++;
    }
    if (rf_http_conn_closing(r->conn))
        rf_bench_skip_with_error(st, "requests were refused");
    rf_bench_set_items_processed(st, (int64_t)g_events);
    rf_bench_set_bytes_processed(st, (int64_t)(streams * len));
    rig_close(r);
    free(r);
    free(req);
}

/* A self-signed P-256 certificate and its key, as PEM files in /tmp. */
static bool make_cert(char *cert, char *key)
{
    strcpy(cert, "/tmp/rf-tls-bench-cert-XXXXXX");
    strcpy(key, "/tmp/rf-tls-bench-key-XXXXXX");
    int cf = mkstemp(cert), kf = mkstemp(key);
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool ok = cf >= 0 && kf >= 0 && pk && x;
    if (ok) {
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), 0);
        X509_gmtime_adj(X509_getm_notAfter(x), 86400);
        X509_set_pubkey(x, pk);
        X509_NAME *nm = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"bench", -1, -1,
                                   0);
        X509_set_issuer_name(x, nm);
        ok = X509_sign(x, pk, EVP_sha256()) > 0;
    }
    FILE *cfp = ok ? fdopen(cf, "w") : NULL, *kfp = ok ? fdopen(kf, "w") : NULL;
    ok = ok && cfp && kfp && PEM_write_X509(cfp, x) &&
         PEM_write_PrivateKey(kfp, pk, NULL, NULL, 0, NULL, NULL);
    if (cfp)
        fclose(cfp);
    if (kfp)
        fclose(kfp);
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok;
}

/* Moves what one side wrote into the other side's input. */
static void client_to_server(BIO *cw, rf_tls_conn *srv)
{
    char *p;
    long n = BIO_get_mem_data(cw, &p);
    if (n > 0) {
        rf_tls_conn_feed(srv, p, (size_t)n);
        (void)BIO_reset(cw);
    }
}

static void server_to_client(rf_tls_conn *srv, BIO *cr)
{
    const char *p;
    size_t n;
    rf_tls_conn_out(srv, &p, &n);
    if (n) {
        BIO_write(cr, p, (int)n);
        rf_tls_conn_consume(srv, n);
    }
}

static void bm_tls(rf_bench_state *st)
{
    size_t read = (size_t)rf_bench_arg(st, 0), len;
    char cert[64], key[64];
    if (!make_cert(cert, key)) {
        rf_bench_skip_with_error(st, "could not make a certificate");
        return;
    }
    rf_tls_config tc = {.enabled = true, .min_version = 13};
    snprintf(tc.cert_file, sizeof(tc.cert_file), "%s", cert);
    snprintf(tc.key_file, sizeof(tc.key_file), "%s", key);
    rf_tls_server *ts = rf_tls_server_new(&tc, NULL);
    unlink(cert);
    unlink(key);
    rf_tls_conn *sc = ts ? rf_tls_conn_new(ts, NULL) : NULL;
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *cl = SSL_new(cctx);
    BIO *cr = BIO_new(BIO_s_mem()), *cw = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cr, -1);
    SSL_set_bio(cl, cr, cw);
    SSL_set_connect_state(cl);
    char plain[16384];
    enum rf_tls_fail why;
    for (int i = 0; sc && i < 10 && !(SSL_is_init_finished(cl) && rf_tls_conn_established(sc));
         i++) {
        (void)SSL_do_handshake(cl);
        client_to_server(cw, sc);
        (void)rf_tls_conn_read(sc, plain, sizeof(plain), &why);
        server_to_client(sc, cr);
    }
    if (!sc || !rf_tls_conn_established(sc)) {
        rf_bench_skip_with_error(st, "no handshake");
        goto out;
    }
    char *req = make_requests(&len);
    rig *r = calloc(1, sizeof(*r));
    rig_open(r);
    g_events = 0;
    uint64_t streams = 0, wire = 0;
    char *cipher = NULL;
    while (rf_bench_keep_running(st)) {
        rf_bench_pause_timing(st);
        SSL_write(cl, req, (int)len);
        char *p;
        long clen = BIO_get_mem_data(cw, &p);
        free(cipher);
        cipher = malloc((size_t)clen);
        memcpy(cipher, p, (size_t)clen);
        (void)BIO_reset(cw);
        wire += (uint64_t)clen;
        rf_bench_resume_timing(st);
        for (size_t off = 0; off < (size_t)clen; off += read) {
            size_t n = (size_t)clen - off < read ? (size_t)clen - off : read;
            rf_tls_conn_feed(sc, cipher + off, n);
            ssize_t got;
            while ((got = rf_tls_conn_read(sc, plain, sizeof(plain), &why)) > 0)
                rf_http_conn_feed(r->conn, plain, (size_t)got, 1700000000000000000LL, 1);
            const char *o, *so;
            size_t ol, sl;
            rf_http_conn_output(r->conn, &o, &ol);
            if (ol) {
                rf_tls_conn_write(sc, o, ol);
                rf_http_conn_consume(r->conn, ol);
            }
            rf_tls_conn_out(sc, &so, &sl); /* what send() would take */
            rf_tls_conn_consume(sc, sl);
        }
        streams++;
    }
    if (rf_http_conn_closing(r->conn))
        rf_bench_skip_with_error(st, "requests were refused");
    rf_bench_set_items_processed(st, (int64_t)g_events);
    rf_bench_set_bytes_processed(st, (int64_t)(streams * len));
    rf_bench_counter(st, "wire_bytes", (double)wire, true);
    free(cipher);
    rig_close(r);
    free(r);
    free(req);
out:
    SSL_free(cl);
    SSL_CTX_free(cctx);
    rf_tls_conn_free(sc);
    rf_tls_server_free(ts);
}

RF_BENCH_REGISTER(tls_benchmarks)
{
    static const int64_t reads[] = {16384, 65536};
    rf_bench_register_args("tls/influx/plain", bm_plain, reads, 2);
    rf_bench_register_args("tls/influx/tls", bm_tls, reads, 2);
}
