/* Errors with context. Functions that can fail for reasons a user must read
 * return a negative errno-style code and, when given an rf_err, fill it with a
 * sentence saying what failed and why ("listener lp-udp: bind 127.0.0.1:8089:
 * Address already in use"). Callers add their own context with rf_err_wrap. */
#ifndef RF_CORE_ERROR_H
#define RF_CORE_ERROR_H

#define RF_ERR_MSG_MAX 1024

typedef struct rf_err {
    int code;                 /* positive errno value, 0 when no error */
    char msg[RF_ERR_MSG_MAX]; /* NUL-terminated sentence, empty when no error */
} rf_err;

/* Records an error (e may be NULL) and returns -code for `return rf_err_set(...)`. */
int rf_err_set(rf_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with more context ("config: " + msg). Returns -e->code. */
int rf_err_wrap(rf_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void rf_err_clear(rf_err *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

#endif
