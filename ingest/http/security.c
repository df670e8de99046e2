/* TLS contexts and credentials of http listeners by name (contract in
 * http.h, "TLS and authentication of http listeners"). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth/auth.h"
#include "core/tls/tls.h"
#include "ingest/http/http_pvt.h"
#include "ingest/listen/listen.h"

#define MAX_ENTRIES 256

/* One listener name's. The objects are created the first time a name needs
 * them and then only reloaded, never freed while the process runs, so a
 * worker may keep the pointers it loaded; `on` says whether they are in
 * force. */
struct rf_http_security {
    char name[RF_LISTENER_NAME_MAX];
    rf_tls_server *tls;
    rf_auth *auth;
    /* Written by the control thread (apply), read by workers at each new
     * connection or request: release/acquire, so a worker that sees true
     * sees the object's contents. */
    _Atomic bool tls_on, auth_on;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the table's growth */
static rf_http_security *g_entries[MAX_ENTRIES];
static size_t g_n;

rf_http_security *rf_http_security_get(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&g_lock);
    rf_http_security *e = NULL;
    for (size_t i = 0; i < g_n && !e; i++)
        if (strcmp(g_entries[i]->name, name) == 0)
            e = g_entries[i];
    if (!e && g_n < MAX_ENTRIES && (e = calloc(1, sizeof(*e)))) {
        strncpy(e->name, name, sizeof(e->name) - 1);
        g_entries[g_n++] = e;
    }
    pthread_mutex_unlock(&g_lock);
    return e;
}

rf_tls_server *rf_http_security_tls(rf_http_security *e)
{
    /* Pairs with the release store in rf_http_security_apply. */
    return e && atomic_load_explicit(&e->tls_on, memory_order_acquire) ? e->tls : NULL;
}

struct rf_auth *rf_http_security_auth(void *entry)
{
    rf_http_security *e = entry;
    /* Pairs with the release store in rf_http_security_apply. */
    return e && atomic_load_explicit(&e->auth_on, memory_order_acquire) ? e->auth : NULL;
}

/* What one listener will hold once applied: files loaded, nothing swapped. */
typedef struct staged {
    rf_http_security *e;
    rf_tls_server *tls; /* new context when the entry has none yet */
    rf_tls_server *tls_next;
    rf_auth *auth, *auth_next;
    bool tls_on, auth_on;
} staged;

int rf_http_security_apply(const rf_listener_config *ls, size_t n, rf_err *err)
{
    staged *st = calloc(n ? n : 1, sizeof(*st));
    if (!st)
        return rf_err_set(err, ENOMEM, "tls: out of memory");
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const rf_listener_config *lc = &ls[i];
        if (lc->protocol != RF_LISTEN_PROTO_HTTP)
            continue;
        staged *s = &st[k++];
        if (!(s->e = rf_http_security_get(lc->name))) {
            rc = rf_err_set(err, ENOSPC, "listener %s: too many http listener names", lc->name);
            break;
        }
        s->tls_on = lc->tls.enabled;
        s->auth_on = rf_auth_config_enabled(&lc->auth);
        /* Loaded into objects of their own: a file that fails changes nothing. */
        if (s->tls_on && !(s->tls_next = rf_tls_server_new(&lc->tls, err)))
            rc = -EINVAL;
        else if (s->auth_on && !(s->auth_next = rf_auth_new(&lc->auth, err)))
            rc = -EINVAL;
        if (rc)
            rf_err_wrap(err, "listener %s: ", lc->name);
    }
    for (size_t i = 0; i < k; i++) {
        staged *s = &st[i];
        if (rc == 0) {
            /* The entry's object is loaded anew from the staged one, or
             * becomes it; a worker holding the entry's pointer sees the new
             * files at its next connection or request. */
            if (s->tls_next && s->e->tls) {
                rf_tls_server_take(s->e->tls, s->tls_next);
                s->tls_next = NULL;
            } else if (s->tls_next) {
                s->e->tls = s->tls_next;
                s->tls_next = NULL;
            }
            if (s->auth_next && s->e->auth) {
                rf_auth_take(s->e->auth, s->auth_next);
                s->auth_next = NULL;
            } else if (s->auth_next) {
                s->e->auth = s->auth_next;
                s->auth_next = NULL;
            }
            /* Pairs with the acquire loads in rf_http_security_tls/_auth. */
            atomic_store_explicit(&s->e->tls_on, s->tls_on, memory_order_release);
            atomic_store_explicit(&s->e->auth_on, s->auth_on, memory_order_release);
        }
        rf_tls_server_free(s->tls_next);
        rf_auth_free(s->auth_next);
    }
    /* Listeners that are gone or no longer http: serve nothing of theirs. */
    if (rc == 0) {
        pthread_mutex_lock(&g_lock);
        for (size_t j = 0; j < g_n; j++) {
            bool named = false;
            for (size_t i = 0; i < k && !named; i++)
                named = st[i].e == g_entries[j];
            if (!named) {
                atomic_store_explicit(&g_entries[j]->tls_on, false, memory_order_release);
                atomic_store_explicit(&g_entries[j]->auth_on, false, memory_order_release);
            }
        }
        pthread_mutex_unlock(&g_lock);
    }
    free(st);
    return rc;
}
