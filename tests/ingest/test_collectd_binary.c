/* collectd's binary network protocol: value lists as the network plugin
 * writes them (tests/clients/test_collectd.c has the real collectd), NaN,
 * truncation, signed and encrypted datagrams (made here with OpenSSL as
 * collectd's network.c makes them), the auth file. */
#include "tests/ingest/ingest_test_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

typedef struct pkt {
    uint8_t b[1024];
    size_t n;
} pkt;

static void put_part(pkt *p, uint16_t type, const void *payload, size_t len)
{
    uint16_t plen = (uint16_t)(4 + len);
    p->b[p->n++] = (uint8_t)(type >> 8);
    p->b[p->n++] = (uint8_t)type;
    p->b[p->n++] = (uint8_t)(plen >> 8);
    p->b[p->n++] = (uint8_t)plen;
    memcpy(p->b + p->n, payload, len);
    p->n += len;
}

static void put_str(pkt *p, uint16_t type, const char *s)
{
    put_part(p, type, s, strlen(s) + 1);
}

static void put_be64(uint8_t *o, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        o[i] = (uint8_t)v;
}

/* A values part: gauges as little-endian doubles, the rest big-endian. */
static void put_values(pkt *p, const uint8_t *types, const double *vals, uint16_t count)
{
    uint8_t body[2 + 16 * 9];
    body[0] = (uint8_t)(count >> 8);
    body[1] = (uint8_t)count;
    memcpy(body + 2, types, count);
    for (uint16_t i = 0; i < count; i++) {
        uint8_t *o = body + 2 + count + 8 * i;
        if (types[i] == 1)
            memcpy(o, &vals[i], 8);
        else
            put_be64(o, (uint64_t)(int64_t)vals[i]);
    }
    put_part(p, 6, body, 2 + (size_t)count * 9);
}

static size_t parse(fixture *f, const pkt *p)
{
    collected_reset(&f->out);
    size_t r = rf_parse_collectd(f->ctx, &f->rx, (const char *)p->b, p->n);
    rf_parse_flush(f->ctx);
    return r;
}

static void test_value_lists(void **state)
{
    (void)state;
    rf_parse_config cfg = {.source_id = 1};
    fixture *f = fixture_new(&cfg);
    pkt p = {0};
    uint8_t t[8];
    put_str(&p, 0, "rack1.node-7");
    put_be64(t, 1700000100ull << 30); /* time_hr: 2^-30 s */
    put_part(&p, 8, t, 8);
    put_str(&p, 2, "app");
    put_str(&p, 3, "web.1");
    put_str(&p, 4, "load");
    put_values(&p, (const uint8_t[]){1, 1, 1}, (const double[]){0.5, 1.25, -3e-5}, 3);
    put_str(&p, 4, "derive"); /* the identity so far persists */
    put_str(&p, 5, "requests");
    put_values(&p, (const uint8_t[]){2}, (const double[]){-1000}, 1);
    put_str(&p, 4, "gauge");
    put_values(&p, (const uint8_t[]){1, 1}, (const double[]){NAN, 7}, 2);
    assert_int_equal(parse(f, &p), 0);
    assert_int_equal(n_data(f), 3 + 1 + 1);
    /* No types.db: three values are named by index, one by "value". */
    assert_int_equal(data_ev(f, 0)->series_id,
                     id_of("app_0,host=rack1.node-7,instance=web.1,type=load value"));
    assert_int_equal(data_ev(f, 2)->series_id,
                     id_of("app_2,host=rack1.node-7,instance=web.1,type=load value"));
    assert_true(data_ev(f, 2)->value.f64 == -3e-5);
    assert_int_equal(data_ev(f, 0)->event_time_ns, 1700000100LL * 1000000000LL);
    assert_int_equal(data_ev(f, 0)->flags, RF_EVF_HAS_CLIENT_TIME);
    const rf_event *d = data_ev(f, 3);
    assert_int_equal(d->series_id, id_of("app_value,host=rack1.node-7,instance=web.1,type=derive,"
                                         "type_instance=requests value"));
    assert_true(d->value.f64 == -1000);
    assert_int_equal(d->kind, RF_KIND_CUMULATIVE);
    /* The NaN is skipped and counted; its neighbour in the list stays. */
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_NAN_VALUES), 1);
    assert_int_equal(data_ev(f, 4)->series_id, id_of("app_1,host=rack1.node-7,instance=web.1,"
                                                     "type=gauge,type_instance=requests value"));
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 3);
    fixture_free(f);
}

static void test_refused(void **state)
{
    (void)state;
    rf_parse_config cfg = {.source_id = 1};
    fixture *f = fixture_new(&cfg);
    pkt p = {0};
    put_str(&p, 2, "app");
    put_str(&p, 4, "gauge");
    put_values(&p, (const uint8_t[]){1}, (const double[]){1}, 1);
    pkt cut = p;
    cut.n -= 3; /* the last part runs past the datagram */
    assert_int_equal(parse(f, &cut), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 1);
    pkt bad = {0};
    put_str(&bad, 2, "no-nul");
    bad.b[bad.n - 1] = 'x'; /* a string without its NUL */
    assert_int_equal(parse(f, &bad), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), 2);
    /* Signed and encrypted datagrams: refused whole, by reason. */
    pkt sig = {0};
    uint8_t mac[32 + 8] = {0};
    put_part(&sig, 0x0200, mac, sizeof(mac));
    memcpy(sig.b + sig.n, p.b, p.n);
    sig.n += p.n;
    assert_int_equal(parse(f, &sig), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SIGNED_PACKET), 1);
    pkt enc = {0};
    mac[1] = 1; /* a user name of one byte */
    put_part(&enc, 0x0210, mac, sizeof(mac));
    assert_int_equal(parse(f, &enc), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_ENCRYPTED_PACKET), 1);
    /* The good datagram still goes in. */
    assert_int_equal(parse(f, &p), 0);
    assert_int_equal(n_data(f), 1);
    fixture_free(f);
}

/* ---- signed and encrypted datagrams ---- */

/* An auth file with `text`, loaded at `level` into a new rf_collectd_auth. */
static rf_collectd_auth *auth_with(enum rf_collectd_security level, const char *text)
{
    char path[] = "/tmp/rf-test-collectd-auth-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    rf_err err;
    rf_err_clear(&err);
    rf_collectd_auth *a = rf_collectd_auth_new(&err);
    assert_non_null(a);
    int rc = rf_collectd_auth_load(a, level, path, &err);
    unlink(path);
    if (rc < 0)
        fail_msg("auth load: %s", err.msg);
    return a;
}

/* A plain datagram: one gauge value list of `app`. */
static pkt plain_gauge(double v)
{
    pkt p = {0};
    put_str(&p, 0, "h1");
    put_str(&p, 2, "app");
    put_str(&p, 4, "gauge");
    put_values(&p, (const uint8_t[]){1}, (const double[]){v}, 1);
    return p;
}

/* As collectd's network_send_buffer_signed: the signature part (HMAC-SHA-256
 * with the password over the user name and the payload), then the payload. */
static pkt sign(const pkt *in, const char *user, const char *password)
{
    pkt o = {0};
    size_t ul = strlen(user), plen = 36 + ul;
    o.b[0] = 0x02, o.b[1] = 0x00, o.b[2] = (uint8_t)(plen >> 8), o.b[3] = (uint8_t)plen;
    memcpy(o.b + 36, user, ul);
    memcpy(o.b + plen, in->b, in->n);
    o.n = plen + in->n;
    unsigned int mac_len = 0;
    assert_non_null(HMAC(EVP_sha256(), password, (int)strlen(password), o.b + 36, ul + in->n,
                         o.b + 4, &mac_len));
    assert_int_equal(mac_len, 32);
    return o;
}

/* As collectd's network_send_buffer_encrypted: user, IV, then AES-256-OFB
 * (key SHA-256 of the password) over SHA-1(payload) and the payload. */
static pkt encrypt(const pkt *in, const char *user, const char *password, uint8_t iv_seed)
{
    pkt o = {0};
    size_t ul = strlen(user), head = 6 + ul + 16, plen = head + 20 + in->n;
    o.b[0] = 0x02, o.b[1] = 0x10, o.b[2] = (uint8_t)(plen >> 8), o.b[3] = (uint8_t)plen;
    o.b[4] = (uint8_t)(ul >> 8), o.b[5] = (uint8_t)ul;
    memcpy(o.b + 6, user, ul);
    uint8_t *iv = o.b + 6 + ul;
    for (int i = 0; i < 16; i++)
        iv[i] = (uint8_t)(iv_seed + 7 * i);
    uint8_t clear[1024];
    SHA1(in->b, in->n, clear);
    memcpy(clear + 20, in->b, in->n);
    uint8_t key[32];
    SHA256((const uint8_t *)password, strlen(password), key);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    assert_true(EVP_EncryptInit_ex(c, EVP_aes_256_ofb(), NULL, key, iv));
    assert_true(EVP_EncryptUpdate(c, o.b + head, &n, clear, (int)(20 + in->n)));
    assert_int_equal(n, (int)(20 + in->n));
    EVP_CIPHER_CTX_free(c);
    o.n = plen;
    return o;
}

static fixture *auth_fixture(rf_collectd_auth *a)
{
    rf_parse_config cfg = {.source_id = 1, .collectd_auth = a};
    return fixture_new(&cfg);
}

static void test_signed(void **state)
{
    (void)state;
    rf_collectd_auth *a = auth_with(RF_COLLECTD_SECURITY_SIGN, "alice: s3cret pass\nbob:hunter2\n");
    fixture *f = auth_fixture(a);
    pkt p = plain_gauge(42.25);
    pkt good = sign(&p, "alice", "s3cret pass");
    assert_int_equal(parse(f, &good), 0);
    assert_int_equal(n_data(f), 1);
    assert_true(data_ev(f, 0)->value.f64 == 42.25);
    assert_int_equal(data_ev(f, 0)->series_id, id_of("app_value,host=h1,type=gauge value"));
    pkt bob = sign(&p, "bob", "hunter2");
    assert_int_equal(parse(f, &bob), 0);
    assert_int_equal(n_data(f), 1);
    /* Wrong password, unknown user, a byte changed after signing, a plain
     * value list at level sign: each refused under its own reason. */
    pkt wrong = sign(&p, "alice", "s3cret");
    assert_int_equal(parse(f, &wrong), 1);
    pkt who = sign(&p, "mallory", "x");
    assert_int_equal(parse(f, &who), 1);
    pkt tampered = good;
    tampered.b[tampered.n - 1] ^= 1;
    assert_int_equal(parse(f, &tampered), 1);
    assert_int_equal(parse(f, &p), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_SIGNATURE), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_UNKNOWN_USER), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_UNSIGNED_PACKET), 1);
    /* Unsigned parts before a signed one are skipped (and counted), the
     * signed ones taken: collectd reads them alike. */
    pkt mixed = p;
    memcpy(mixed.b + mixed.n, good.b, good.n);
    mixed.n += good.n;
    assert_int_equal(parse(f, &mixed), 1);
    assert_int_equal(n_data(f), 1);
    /* Both: a skipped plain list and a bad signature after it. */
    pkt mixed_bad = p;
    memcpy(mixed_bad.b + mixed_bad.n, wrong.b, wrong.n);
    mixed_bad.n += wrong.n;
    assert_int_equal(parse(f, &mixed_bad), 2);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_SIGNATURE), 3);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_UNSIGNED_PACKET), 3);
    /* An encrypted one satisfies level sign too. */
    pkt enc = encrypt(&p, "bob", "hunter2", 3);
    assert_int_equal(parse(f, &enc), 0);
    assert_int_equal(n_data(f), 1);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 4);
    fixture_free(f);
    rf_collectd_auth_free(a);
}

static void test_encrypted(void **state)
{
    (void)state;
    rf_collectd_auth *a = auth_with(RF_COLLECTD_SECURITY_ENCRYPT, "alice: s3cret\n");
    fixture *f = auth_fixture(a);
    pkt p = {0};
    put_str(&p, 0, "h1");
    put_str(&p, 2, "cpu");
    put_str(&p, 4, "load");
    put_values(&p, (const uint8_t[]){1, 1, 1}, (const double[]){0.5, 1.25, -3e-5}, 3);
    put_str(&p, 4, "derive");
    put_values(&p, (const uint8_t[]){2}, (const double[]){-7}, 1);
    pkt enc = encrypt(&p, "alice", "s3cret", 1);
    assert_int_equal(parse(f, &enc), 0);
    assert_int_equal(n_data(f), 4);
    assert_true(data_ev(f, 1)->value.f64 == 1.25);
    assert_true(data_ev(f, 2)->value.f64 == -3e-5);
    assert_true(data_ev(f, 3)->value.f64 == -7);
    assert_int_equal(data_ev(f, 3)->series_id, id_of("cpu_value,host=h1,type=derive value"));
    /* Two encrypted parts in one datagram, each with its own IV. */
    pkt two = encrypt(&p, "alice", "s3cret", 9);
    memcpy(two.b + two.n, enc.b, enc.n);
    two.n += enc.n;
    assert_int_equal(parse(f, &two), 0);
    assert_int_equal(n_data(f), 8);
    /* Wrong password: the checksum does not match. */
    pkt wrong = encrypt(&p, "alice", "secret", 1);
    assert_int_equal(parse(f, &wrong), 1);
    pkt who = encrypt(&p, "bob", "s3cret", 1);
    assert_int_equal(parse(f, &who), 1);
    pkt flipped = enc;
    flipped.b[flipped.n - 5] ^= 0x40;
    assert_int_equal(parse(f, &flipped), 1);
    /* Plain and only signed: not enough for level encrypt. */
    assert_int_equal(parse(f, &p), 1);
    pkt sig = sign(&p, "alice", "s3cret");
    assert_int_equal(parse(f, &sig), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_DECRYPT_FAILED), 2);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_UNKNOWN_USER), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_UNENCRYPTED_PACKET), 2);
    /* Signed inside encrypted (nesting): taken. */
    pkt both = encrypt(&sig, "alice", "s3cret", 5);
    assert_int_equal(parse(f, &both), 0);
    assert_int_equal(n_data(f), 4);
    fixture_free(f);
    rf_collectd_auth_free(a);
}

/* Level none with users: plain, signed and encrypted all taken, the
 * signatures still checked. Without an auth object: the old refusals. */
static void test_level_none(void **state)
{
    (void)state;
    rf_collectd_auth *a = auth_with(RF_COLLECTD_SECURITY_NONE, "alice: pw\n");
    fixture *f = auth_fixture(a);
    pkt p = plain_gauge(1);
    pkt sig = sign(&p, "alice", "pw"), enc = encrypt(&p, "alice", "pw", 2);
    pkt bad = sign(&p, "alice", "nope");
    assert_int_equal(parse(f, &p), 0);
    assert_int_equal(parse(f, &sig), 0);
    assert_int_equal(parse(f, &enc), 0);
    assert_int_equal(parse(f, &bad), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_SIGNATURE), 1);
    assert_int_equal(rf_parse_counter(f->ctx, RF_PC_LINES_OK), 3);
    fixture_free(f);
    /* A level above none needs a file, as collectd says. */
    rf_err err;
    rf_err_clear(&err);
    assert_int_equal(rf_collectd_auth_load(a, RF_COLLECTD_SECURITY_SIGN, "", &err), -EINVAL);
    assert_int_equal(rf_collectd_auth_load(a, RF_COLLECTD_SECURITY_SIGN, "/nonexistent/auth", &err),
                     -ENOENT);
    assert_int_equal(rf_collectd_auth_users(a), 1); /* unchanged */
    rf_collectd_auth_free(a);
}

/* Lengths that lie, parts cut short, nesting too deep: refused as syntax,
 * never read past the datagram (the ASan build runs this too). */
static void test_crafted(void **state)
{
    (void)state;
    rf_collectd_auth *a = auth_with(RF_COLLECTD_SECURITY_NONE, "alice: pw\n");
    fixture *f = auth_fixture(a);
    pkt p = plain_gauge(1);
    size_t syntax = 0;
    pkt sig = sign(&p, "alice", "pw"), enc = encrypt(&p, "alice", "pw", 4);
    /* Every truncation of a signed and an encrypted datagram. */
    for (size_t cut = 1; cut < enc.n; cut++) {
        pkt t = enc;
        t.n = cut;
        assert_int_equal(parse(f, &t), 1);
        assert_int_equal(n_data(f), 0);
        syntax++;
    }
    for (size_t cut = 1; cut < 36 + 5; cut++) { /* inside the signature part */
        pkt t = sig;
        t.n = cut;
        assert_int_equal(parse(f, &t), 1);
        syntax++;
    }
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), syntax);
    /* A signature part without a user (length 36), one longer than the
     * datagram. */
    pkt t = sig;
    t.b[3] = 36;
    assert_int_equal(parse(f, &t), 1);
    t = sig;
    t.b[2] = 0x7f;
    assert_int_equal(parse(f, &t), 1);
    /* Encrypted: user length 0, user length past the part, part of 42. */
    t = enc;
    t.b[4] = 0, t.b[5] = 0;
    assert_int_equal(parse(f, &t), 1);
    t = enc;
    t.b[5] = 200;
    assert_int_equal(parse(f, &t), 1);
    t = enc;
    t.b[2] = 0, t.b[3] = 42;
    assert_int_equal(parse(f, &t), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), syntax + 5);
    /* A payload whose own part lies about its length, correctly encrypted. */
    pkt lie = p;
    lie.b[3] = 200; /* the host part claims 200 bytes */
    pkt enc_lie = encrypt(&lie, "alice", "pw", 6);
    assert_int_equal(parse(f, &enc_lie), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), syntax + 6);
    /* Nesting: 4 levels of encryption are read, the 5th is refused. */
    pkt nest = p;
    for (int i = 0; i < 4; i++)
        nest = encrypt(&nest, "alice", "pw", (uint8_t)i);
    assert_int_equal(parse(f, &nest), 0);
    assert_int_equal(n_data(f), 1);
    nest = encrypt(&nest, "alice", "pw", 9);
    assert_int_equal(parse(f, &nest), 1);
    assert_int_equal(n_data(f), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_SYNTAX), syntax + 7);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_SIGNATURE), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_DECRYPT_FAILED), 0);
    fixture_free(f);
    rf_collectd_auth_free(a);
}

/* collectd's AuthFile rules; a reload (take) replaces the users while a
 * context keeps reading through the same object. */
static void test_auth_file(void **state)
{
    (void)state;
    rf_collectd_auth *a = auth_with(RF_COLLECTD_SECURITY_SIGN, "# users\n"
                                                               "\n"
                                                               "  alice:   pw one\r\n"
                                                               "alice: second\n"
                                                               "nopass:   \n"
                                                               "no colon here\n"
                                                               "carol : spaced\n");
    assert_int_equal(rf_collectd_auth_users(a), 2); /* alice, "carol " */
    fixture *f = auth_fixture(a);
    pkt p = plain_gauge(5);
    pkt first = sign(&p, "alice", "pw one"), second = sign(&p, "alice", "second");
    pkt carol = sign(&p, "carol ", "spaced"), carol2 = sign(&p, "carol", "spaced");
    assert_int_equal(parse(f, &first), 0);
    assert_int_equal(parse(f, &second), 1); /* the first line wins */
    assert_int_equal(parse(f, &carol), 0);
    assert_int_equal(parse(f, &carol2), 1); /* the name is taken as written */
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_SIGNATURE), 1);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_UNKNOWN_USER), 1);
    /* The file changes, the reload takes it: alice's new password now. */
    rf_collectd_auth *next = auth_with(RF_COLLECTD_SECURITY_SIGN, "alice: second\n");
    rf_collectd_auth_take(a, next);
    assert_int_equal(rf_collectd_auth_users(a), 1);
    assert_int_equal(parse(f, &first), 1);
    assert_int_equal(parse(f, &second), 0);
    assert_int_equal(rf_parse_reject_count(f->ctx, RF_REJ_BAD_SIGNATURE), 2);
    fixture_free(f);
    rf_collectd_auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_lists), cmocka_unit_test(test_refused),
        cmocka_unit_test(test_signed),      cmocka_unit_test(test_encrypted),
        cmocka_unit_test(test_level_none),  cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_auth_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
