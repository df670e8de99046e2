#include "core/error/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int rf_err_set(rf_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return -code;
}

int rf_err_wrap(rf_err *e, const char *fmt, ...)
{
    if (!e)
        return -1;
    char prefix[RF_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* Shift the old message right by the prefix length, truncating at the end. */
    size_t plen = strnlen(prefix, sizeof(e->msg) - 1);
    size_t olen = strnlen(e->msg, sizeof(e->msg) - 1);
    if (plen + olen > sizeof(e->msg) - 1)
        olen = sizeof(e->msg) - 1 - plen;
    memmove(e->msg + plen, e->msg, olen);
    memcpy(e->msg, prefix, plen);
    e->msg[plen + olen] = '\0';
    return -e->code;
}
