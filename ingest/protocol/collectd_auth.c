/* collectd's network security (protocol.h, "collectd's network security"):
 * the auth file, the table the ingest threads read, and the crypto a context
 * does with OpenSSL's libcrypto.
 *
 * Publication. A table (level + users) is immutable once built; the control
 * thread publishes a new one with a release store and keeps the old ones in a
 * list until rf_collectd_auth_free, because an ingest thread that loaded the
 * old pointer (acquire) may still be reading it and nothing tells when it is
 * done. Reloads are rare and a table is small, so the list is the price of
 * reading without locks. */
#include "ingest/protocol/protocol_pvt.h"

#include "core/mem/bound.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

struct rf_cd_policy {
    enum rf_collectd_security level;
    size_t n_users;
    rf_cd_user *users;          /* sorted by name (bytes, then length) */
    char *strings;              /* every name and password, NUL-terminated */
    struct rf_cd_policy *older; /* the table this one replaced (kept, see above) */
};

struct rf_collectd_auth {
    /* Written by the control thread (release, rf_collectd_auth_load); read by
     * ingest threads (acquire, rf_cd_policy_get). */
    _Atomic(rf_cd_policy *) current;
};

static void policy_free(rf_cd_policy *p)
{
    while (p) {
        rf_cd_policy *older = p->older;
        free(p->users);
        free(p->strings);
        free(p);
        p = older;
    }
}

rf_collectd_auth *rf_collectd_auth_new(rf_err *err)
{
    rf_collectd_auth *a = calloc(1, sizeof(*a));
    rf_cd_policy *p = calloc(1, sizeof(*p));
    if (!a || !p) {
        free(a);
        free(p);
        rf_err_set(err, ENOMEM, "collectd auth: out of memory");
        return NULL;
    }
    atomic_init(&a->current, p);
    return a;
}

void rf_collectd_auth_free(rf_collectd_auth *a)
{
    if (!a)
        return;
    policy_free(atomic_load_explicit(&a->current, memory_order_relaxed));
    free(a);
}

static int user_cmp(const void *x, const void *y)
{
    const rf_cd_user *a = x, *b = y;
    uint32_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    if (a->name_len != b->name_len)
        return a->name_len < b->name_len ? -1 : 1;
    /* Equal names: the earlier line first (collectd keeps the first one). */
    return a->name < b->name ? -1 : a->name > b->name;
}

/* Parses the file's lines as collectd's fbhash does, into p. */
static int read_users(const char *path, rf_cd_policy *p, rf_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        return rf_err_set(err, e, "collectd auth_file %s: %s", path, strerror(e));
    }
    char *text = NULL;
    size_t text_len = 0, cap = 0;
    char line[4096];
    int rc = 0;
    /* Names and passwords go into one growing buffer; offsets first, the
     * pointers once it stops moving. */
    size_t n = 0, users_cap = 0;
    rf_cd_user *users = NULL;
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *key = line;
        while (*key && isspace((unsigned char)*key))
            key++;
        if (!*key || *key == '#')
            continue;
        char *colon = strchr(key, ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *pw = colon + 1;
        while (*pw && isspace((unsigned char)*pw))
            pw++;
        if (!*pw)
            continue;
        size_t kl = strlen(key), pl = strlen(pw);
        if (text_len + kl + pl + 2 > cap || n == users_cap) {
            size_t ncap = (cap + kl + pl + 2) * 2;
            size_t nucap = users_cap ? users_cap * 2 : 16;
            char *nt = realloc(text, ncap);
            if (nt)
                text = nt, cap = ncap;
            rf_cd_user *nu = realloc(users, nucap * sizeof(*nu));
            if (nu)
                users = nu, users_cap = nucap;
            if (!nt || !nu) {
                rc = rf_err_set(err, ENOMEM, "collectd auth_file %s: out of memory", path);
                goto out;
            }
        }
        rf_cd_user *u = &users[n++];
        memset(u, 0, sizeof(*u));
        u->name = (const char *)(uintptr_t)text_len; /* an offset until the end */
        u->name_len = (uint32_t)kl;
        memcpy(text + text_len, key, kl + 1);
        text_len += kl + 1;
        u->password = (const char *)(uintptr_t)text_len;
        u->password_len = (uint32_t)pl;
        memcpy(text + text_len, pw, pl + 1);
        text_len += pl + 1;
    }
    if (ferror(f)) {
        rc = rf_err_set(err, EIO, "collectd auth_file %s: read error", path);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        users[i].name = text + (uintptr_t)users[i].name;
        users[i].password = text + (uintptr_t)users[i].password;
        if (!EVP_Digest(users[i].password, users[i].password_len, users[i].key, NULL, EVP_sha256(),
                        NULL)) {
            rc = rf_err_set(err, EIO, "collectd auth_file %s: SHA-256 failed", path);
            goto out;
        }
    }
    qsort(users, n, sizeof(*users), user_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!kept || users[kept - 1].name_len != users[i].name_len ||
            memcmp(users[kept - 1].name, users[i].name, users[i].name_len) != 0)
            users[kept++] = users[i];
    p->users = users;
    p->n_users = kept;
    p->strings = text;
    users = NULL;
    text = NULL;
out:
    free(users);
    free(text);
    fclose(f);
    return rc;
}

/* Publishes p (one table, `older` unset) in a; the control thread. */
static void publish(rf_collectd_auth *a, rf_cd_policy *p)
{
    /* Only the control thread writes `current`: a relaxed load of its own
     * last store. */
    p->older = atomic_load_explicit(&a->current, memory_order_relaxed);
    /* Pairs with the acquire in rf_cd_policy_get: a reader that sees p sees
     * its users. */
    atomic_store_explicit(&a->current, p, memory_order_release);
}

int rf_collectd_auth_load(rf_collectd_auth *a, enum rf_collectd_security level, const char *path,
                          rf_err *err)
{
    if ((unsigned)level > RF_COLLECTD_SECURITY_ENCRYPT)
        return rf_err_set(err, EINVAL, "collectd security_level %d is not none, sign or encrypt",
                          (int)level);
    const bool has_file = path && path[0];
    if (level > RF_COLLECTD_SECURITY_NONE && !has_file)
        return rf_err_set(err, EINVAL,
                          "collectd security_level sign or encrypt needs an auth_file (collectd "
                          "refuses it too)");
    rf_cd_policy *p = calloc(1, sizeof(*p));
    if (!p)
        return rf_err_set(err, ENOMEM, "collectd auth: out of memory");
    p->level = level;
    if (has_file) {
        int rc = read_users(path, p, err);
        if (rc < 0) {
            policy_free(p);
            return rc;
        }
    }
    publish(a, p);
    return 0;
}

void rf_collectd_auth_take(rf_collectd_auth *to, rf_collectd_auth *from)
{
    /* `from` was never shared: its tables are the control thread's alone. */
    rf_cd_policy *p = atomic_load_explicit(&from->current, memory_order_relaxed);
    policy_free(p->older);
    p->older = NULL;
    publish(to, p);
    free(from);
}

size_t rf_collectd_auth_users(const rf_collectd_auth *a)
{
    return rf_cd_policy_get(a)->n_users;
}

const rf_cd_policy *rf_cd_policy_get(const rf_collectd_auth *a)
{
    /* Pairs with the release store in rf_collectd_auth_load. */
    return atomic_load_explicit(&((rf_collectd_auth *)a)->current, memory_order_acquire);
}

enum rf_collectd_security rf_cd_policy_level(const rf_cd_policy *p)
{
    return p->level;
}

const rf_cd_user *rf_cd_user_find(const rf_cd_policy *p, const char *name, size_t len)
{
    size_t lo = 0, hi = p->n_users;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const rf_cd_user *u = &p->users[mid];
        size_t n = u->name_len < len ? u->name_len : len;
        int c = memcmp(u->name, name, n);
        if (!c && u->name_len != len)
            c = u->name_len < len ? -1 : 1;
        if (!c)
            return u;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* OpenSSL's algorithms fetched once per context: an implicit fetch at every
 * init would look them up (and lock) per datagram. */
struct rf_cd_crypto {
    EVP_CIPHER *aes;
    EVP_CIPHER_CTX *cipher;
    bool cipher_set; /* `cipher` has `aes`: later inits pass NULL and reuse it */
    EVP_MAC *hmac;
    EVP_MAC_CTX *mac;
    EVP_MD *sha1;
    EVP_MD_CTX *md;
    uint8_t scratch[RF_CD_SCRATCH];
};

/* OpenSSL's own allocations for the contexts above, with room to spare:
 * a cipher context and its AES key schedule, an HMAC context with its two
 * SHA-256 contexts, a SHA-1 context. */
#define CD_OPENSSL_BOUND 16384u

uint64_t rf_collectd_auth_ctx_memory_bound(void)
{
    return rf_mem_alloc_bound(sizeof(rf_cd_crypto)) + CD_OPENSSL_BOUND;
}

void rf_cd_crypto_free(rf_cd_crypto *c)
{
    if (!c)
        return;
    EVP_CIPHER_CTX_free(c->cipher);
    EVP_CIPHER_free(c->aes);
    EVP_MAC_CTX_free(c->mac);
    EVP_MAC_free(c->hmac);
    EVP_MD_CTX_free(c->md);
    EVP_MD_free(c->sha1);
    free(c);
}

rf_cd_crypto *rf_cd_crypto_new(void)
{
    rf_cd_crypto *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->aes = EVP_CIPHER_fetch(NULL, "AES-256-OFB", NULL);
    c->cipher = EVP_CIPHER_CTX_new();
    c->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    c->mac = c->hmac ? EVP_MAC_CTX_new(c->hmac) : NULL;
    c->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    c->md = EVP_MD_CTX_new();
    if (!c->aes || !c->cipher || !c->mac || !c->sha1 || !c->md) {
        rf_cd_crypto_free(c);
        return NULL;
    }
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_CTX_set_params(c->mac, params)) {
        rf_cd_crypto_free(c);
        return NULL;
    }
    return c;
}

uint8_t *rf_cd_scratch(rf_cd_crypto *c)
{
    return c->scratch;
}

bool rf_cd_hmac_ok(rf_cd_crypto *c, const rf_cd_user *u, const uint8_t *msg, size_t n,
                   const uint8_t mac[32])
{
    uint8_t got[EVP_MAX_MD_SIZE];
    size_t got_len = 0;
    if (!EVP_MAC_init(c->mac, (const unsigned char *)u->password, u->password_len, NULL) ||
        !EVP_MAC_update(c->mac, msg, n) || !EVP_MAC_final(c->mac, got, &got_len, sizeof(got)) ||
        got_len != 32)
        return false;
    return CRYPTO_memcmp(got, mac, 32) == 0;
}

bool rf_cd_decrypt_ok(rf_cd_crypto *c, const rf_cd_user *u, const uint8_t iv[16], const uint8_t *in,
                      size_t n, uint8_t *out)
{
    int out_len = 0;
    if (n <= 20 || n > INT32_MAX ||
        !EVP_DecryptInit_ex2(c->cipher, c->cipher_set ? NULL : c->aes, u->key, iv, NULL))
        return false;
    c->cipher_set = true;
    if (!EVP_DecryptUpdate(c->cipher, out, &out_len, in, (int)n) || (size_t)out_len != n)
        return false;
    uint8_t sum[EVP_MAX_MD_SIZE];
    unsigned int sum_len = 0;
    if (!EVP_DigestInit_ex2(c->md, c->sha1, NULL) || !EVP_DigestUpdate(c->md, out + 20, n - 20) ||
        !EVP_DigestFinal_ex(c->md, sum, &sum_len) || sum_len != 20)
        return false;
    return CRYPTO_memcmp(sum, out, 20) == 0;
}
