/* Basic and bearer authentication from files (contract in auth.h). */
#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/auth/auth.h"

#define LINE_MAX_LEN 1024

enum secret_kind {
    SK_PLAIN = 0,
    SK_SHA1,
    SK_CRYPT
};

typedef struct user {
    char *name;
    char *secret; /* plain text, or the crypt(3) hash */
    unsigned char sha1[20];
    enum secret_kind kind;
    bool cached; /* ok_digest holds the SHA-256 of the password last accepted */
    unsigned char ok_digest[32];
} user;

typedef struct cred_set {
    user *users;
    size_t n_users;
    char **tokens;
    size_t n_tokens;
} cred_set;

struct rf_auth {
    pthread_mutex_t lock; /* guards set (swapped by reload) and the users' caches */
    cred_set set;
    struct crypt_data crypt; /* crypt_rn's scratch, under lock */
};

int rf_auth_config_parse(const rf_cfg_node *map, rf_auth_config *out, rf_err *err)
{
    memset(out, 0, sizeof(*out));
    const rf_cfg_node *a;
    int rc;
    if (!rf_cfg_get(map, "auth"))
        return 0;
    if ((rc = rf_cfg_map(map, "auth", &a, err)) < 0)
        return rc;
    if ((rc = rf_cfg_str(a, "basic_file", 0, "", out->basic_file, sizeof(out->basic_file), err)) <
            0 ||
        (rc = rf_cfg_str(a, "bearer_token_file", 0, "", out->bearer_token_file,
                         sizeof(out->bearer_token_file), err)) < 0)
        return rc;
    if (!rf_auth_config_enabled(out))
        return rf_cfg_fail(a, err, "auth: expected basic_file, bearer_token_file or both");
    return 0;
}

bool rf_auth_config_enabled(const rf_auth_config *cfg)
{
    return cfg->basic_file[0] || cfg->bearer_token_file[0];
}

static void set_free(cred_set *s)
{
    for (size_t i = 0; i < s->n_users; i++) {
        OPENSSL_cleanse(s->users[i].secret, strlen(s->users[i].secret));
        free(s->users[i].name);
        free(s->users[i].secret);
    }
    for (size_t i = 0; i < s->n_tokens; i++) {
        OPENSSL_cleanse(s->tokens[i], strlen(s->tokens[i]));
        free(s->tokens[i]);
    }
    free(s->users);
    free(s->tokens);
    memset(s, 0, sizeof(*s));
}

/* Standard base64 (with padding) into out; the decoded length or -1. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    if (len == 0 || len % 4 || len / 4 * 3 > cap)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (in[len - 1] == '=')
        n--;
    if (in[len - 2] == '=')
        n--;
    return n;
}

static void trim_eol(char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
}

static int add_user(cred_set *s, const char *path, unsigned lineno, char *line, rf_err *err)
{
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return rf_err_set(err, EINVAL, "%s:%u: expected user:password", path, lineno);
    *colon = '\0';
    const char *secret = colon + 1;
    user u = {0};
    if (strncmp(secret, "$apr1$", 6) == 0)
        return rf_err_set(err, EINVAL,
                          "%s:%u: $apr1$ (Apache MD5) is not supported; use htpasswd -B "
                          "(bcrypt), -s ({SHA}) or a crypt(3) hash",
                          path, lineno);
    if (strncmp(secret, "{SHA}", 5) == 0) {
        unsigned char raw[64]; /* the decoder writes whole 3-byte groups */
        u.kind = SK_SHA1;
        if (b64_decode(secret + 5, strlen(secret + 5), raw, sizeof(raw)) != 20)
            return rf_err_set(err, EINVAL, "%s:%u: {SHA} needs the base64 of 20 bytes", path,
                              lineno);
        memcpy(u.sha1, raw, sizeof(u.sha1));
    } else if (secret[0] == '$') {
        u.kind = SK_CRYPT;
    }
    user *nu = realloc(s->users, (s->n_users + 1) * sizeof(*nu));
    if (!nu)
        return rf_err_set(err, ENOMEM, "%s: out of memory", path);
    s->users = nu;
    u.name = strdup(line);
    u.secret = strdup(secret);
    if (!u.name || !u.secret) {
        free(u.name);
        free(u.secret);
        return rf_err_set(err, ENOMEM, "%s: out of memory", path);
    }
    s->users[s->n_users++] = u;
    return 0;
}

static int add_token(cred_set *s, const char *path, char *line, rf_err *err)
{
    char **nt = realloc(s->tokens, (s->n_tokens + 1) * sizeof(*nt));
    if (!nt || !(nt[s->n_tokens] = strdup(line))) {
        if (nt)
            s->tokens = nt;
        return rf_err_set(err, ENOMEM, "%s: out of memory", path);
    }
    s->tokens = nt;
    s->n_tokens++;
    return 0;
}

static int load_file(cred_set *s, const char *path, bool basic, rf_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return rf_err_set(err, errno, "auth: %s: %s", path, strerror(errno));
    char line[LINE_MAX_LEN];
    unsigned lineno = 0, n = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = rf_err_set(err, EINVAL, "%s:%u: line longer than %d bytes", path, lineno,
                            LINE_MAX_LEN - 2);
            break;
        }
        trim_eol(line);
        if (line[0] == '\0' || line[0] == '#')
            continue;
        rc = basic ? add_user(s, path, lineno, line, err) : add_token(s, path, line, err);
        n++;
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    if (rc == 0 && n == 0)
        rc = rf_err_set(err, EINVAL, "auth: %s holds no %s", path, basic ? "user" : "token");
    return rc;
}

static int set_load(cred_set *s, const rf_auth_config *cfg, rf_err *err)
{
    memset(s, 0, sizeof(*s));
    int rc = 0;
    if (cfg->basic_file[0])
        rc = load_file(s, cfg->basic_file, true, err);
    if (rc == 0 && cfg->bearer_token_file[0])
        rc = load_file(s, cfg->bearer_token_file, false, err);
    if (rc)
        set_free(s);
    return rc;
}

rf_auth *rf_auth_new(const rf_auth_config *cfg, rf_err *err)
{
    rf_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        rf_err_set(err, ENOMEM, "auth: out of memory");
        return NULL;
    }
    if (set_load(&a->set, cfg, err)) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

void rf_auth_take(rf_auth *a, rf_auth *from)
{
    cred_set next = from->set;
    memset(&from->set, 0, sizeof(from->set));
    rf_auth_free(from);
    pthread_mutex_lock(&a->lock);
    cred_set old = a->set;
    a->set = next;
    pthread_mutex_unlock(&a->lock);
    set_free(&old);
}

void rf_auth_free(rf_auth *a)
{
    if (!a)
        return;
    set_free(&a->set);
    pthread_mutex_destroy(&a->lock);
    OPENSSL_cleanse(&a->crypt, sizeof(a->crypt));
    free(a);
}

const char *rf_auth_challenge(rf_auth *a)
{
    pthread_mutex_lock(&a->lock);
    bool basic = a->set.n_users > 0;
    pthread_mutex_unlock(&a->lock);
    return basic ? "Basic realm=\"ringflow\", charset=\"UTF-8\"" : "Bearer realm=\"ringflow\"";
}

static bool same(const void *a, size_t al, const void *b, size_t bl)
{
    return al == bl && CRYPTO_memcmp(a, b, al) == 0;
}

/* Under a->lock. */
static bool password_ok(rf_auth *a, user *u, const char *pw, size_t pl)
{
    unsigned char d[32];
    unsigned dl = 0;
    switch (u->kind) {
    case SK_PLAIN: return same(u->secret, strlen(u->secret), pw, pl);
    case SK_SHA1:
        return EVP_Digest(pw, pl, d, &dl, EVP_sha1(), NULL) == 1 && same(d, dl, u->sha1, 20);
    case SK_CRYPT: break;
    }
    if (EVP_Digest(pw, pl, d, &dl, EVP_sha256(), NULL) != 1)
        return false;
    if (u->cached && same(d, dl, u->ok_digest, sizeof(u->ok_digest)))
        return true;
    char pwz[LINE_MAX_LEN];
    if (pl >= sizeof(pwz) || memchr(pw, '\0', pl))
        return false;
    memcpy(pwz, pw, pl);
    pwz[pl] = '\0';
    /* crypt_rn: NULL on failure, never the "*0" token; and libasan does not
     * intercept it (its crypt_r interceptor calls a null pointer against
     * libxcrypt). */
    const char *h = crypt_rn(pwz, u->secret, &a->crypt, (int)sizeof(a->crypt));
    OPENSSL_cleanse(pwz, pl);
    bool ok = h && h[0] != '*' && same(h, strlen(h), u->secret, strlen(u->secret));
    if (ok) {
        memcpy(u->ok_digest, d, sizeof(u->ok_digest));
        u->cached = true;
    }
    return ok;
}

static bool scheme_is(const char *v, size_t len, const char *scheme, size_t *rest)
{
    size_t sl = strlen(scheme);
    if (len <= sl || strncasecmp(v, scheme, sl) != 0 || v[sl] != ' ')
        return false;
    *rest = sl + 1;
    while (*rest < len && v[*rest] == ' ')
        (*rest)++;
    return true;
}

static enum rf_auth_result check_basic(rf_auth *a, const char *b64, size_t len)
{
    unsigned char dec[LINE_MAX_LEN];
    int n = b64_decode(b64, len, dec, sizeof(dec) - 1);
    if (n <= 0)
        return RF_AUTH_BAD;
    const unsigned char *colon = memchr(dec, ':', (size_t)n);
    if (!colon)
        return RF_AUTH_BAD;
    size_t ul = (size_t)(colon - dec);
    const char *pw = (const char *)colon + 1;
    size_t pl = (size_t)n - ul - 1;
    enum rf_auth_result r = RF_AUTH_BAD;
    for (size_t i = 0; i < a->set.n_users; i++) {
        user *u = &a->set.users[i];
        if (strlen(u->name) == ul && memcmp(u->name, dec, ul) == 0) {
            r = password_ok(a, u, pw, pl) ? RF_AUTH_OK : RF_AUTH_BAD;
            break;
        }
    }
    OPENSSL_cleanse(dec, sizeof(dec));
    return r;
}

enum rf_auth_result rf_auth_check(rf_auth *a, const char *value, size_t len)
{
    if (!value)
        return RF_AUTH_MISSING;
    size_t rest;
    enum rf_auth_result r = RF_AUTH_MISSING;
    pthread_mutex_lock(&a->lock);
    if (a->set.n_users && scheme_is(value, len, "Basic", &rest)) {
        r = check_basic(a, value + rest, len - rest);
    } else if (a->set.n_tokens &&
               (scheme_is(value, len, "Bearer", &rest) || scheme_is(value, len, "Token", &rest))) {
        r = RF_AUTH_BAD;
        for (size_t i = 0; i < a->set.n_tokens; i++)
            if (same(a->set.tokens[i], strlen(a->set.tokens[i]), value + rest, len - rest))
                r = RF_AUTH_OK;
    }
    pthread_mutex_unlock(&a->lock);
    return r;
}
