/* HTTP authentication from files: basic (user:password lines) and bearer
 * tokens, checked against a request's Authorization header.
 *
 * Files
 *   basic_file: one `user:secret` a line; '#' starts a comment line. The
 *   secret is one of
 *     {SHA}<base64>   SHA-1 of the password (htpasswd -s)
 *     $2b$ $2y$ $5$ $6$ $y$ $1$ ...   a crypt(3) hash, checked by libcrypt
 *                     (htpasswd -B bcrypt; mkpasswd -m sha-512/yescrypt)
 *     anything else   the password itself, compared as is
 *   Apache's $apr1$ (htpasswd's default MD5) is not a crypt(3) format: a file
 *   holding one is refused at load, naming the line.
 *   bearer_token_file: one token a line. `Authorization: Bearer <t>` and
 *   InfluxDB's `Authorization: Token <t>` both present one.
 *
 * Cost
 *   A crypt(3) hash is slow on purpose (bcrypt: milliseconds). Each user keeps
 *   the SHA-256 of the password last accepted, so a client that sends the same
 *   credentials on every request pays the hash once per reload, not per
 *   request. Everything compares in constant time (CRYPTO_memcmp).
 *
 * Threads
 *   One rf_auth is shared by the threads serving a listener. A check holds
 *   the rf_auth's mutex (uncontended: one lock per request, not per point);
 *   a reload (control thread, SIGHUP) reads the files into a new rf_auth and
 *   rf_auth_take swaps them in under the same mutex, so a file that does not load leaves the
 *   old credentials in force. */
#ifndef RF_CORE_AUTH_H
#define RF_CORE_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config/config.h"
#include "core/error/error.h"

#define RF_AUTH_PATH_MAX 256

/* `auth:` of a listener: {basic_file, bearer_token_file}; both optional. */
typedef struct rf_auth_config {
    char basic_file[RF_AUTH_PATH_MAX];
    char bearer_token_file[RF_AUTH_PATH_MAX];
} rf_auth_config;

/* Parses map's `auth` key (absent: both empty, no authentication). */
int rf_auth_config_parse(const rf_cfg_node *map, rf_auth_config *out, rf_err *err);
bool rf_auth_config_enabled(const rf_auth_config *cfg);

typedef struct rf_auth rf_auth;

/* Reads the files (an error names file:line). */
rf_auth *rf_auth_new(const rf_auth_config *cfg, rf_err *err);
/* Reload: a takes from's credentials (from, loaded with rf_auth_new, is
 * freed), so files that do not load leave a as it was. */
void rf_auth_take(rf_auth *a, rf_auth *from);
void rf_auth_free(rf_auth *a);

enum rf_auth_result {
    RF_AUTH_OK = 0,
    RF_AUTH_MISSING, /* no Authorization header, or a scheme not configured */
    RF_AUTH_BAD,     /* wrong user, password or token */
};
/* value: the Authorization header's value (NULL when absent). */
enum rf_auth_result rf_auth_check(rf_auth *a, const char *value, size_t len);
/* The WWW-Authenticate value for a 401 (static string). */
const char *rf_auth_challenge(rf_auth *a);

#endif
