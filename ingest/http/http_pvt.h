/* Internals of ingest/http shared between its files. Do not include from
 * outside this folder: the contract is http.h. */
#ifndef RF_INGEST_HTTP_PVT_H
#define RF_INGEST_HTTP_PVT_H

#include <http_parser.h>
#include <zlib.h>

#include "ingest/http/http.h"

/* A growable byte buffer whose capacity is charged to the server's budget. */
typedef struct rf_http_buf {
    uint8_t *p;
    size_t len, cap;
} rf_http_buf;

/* Grows b to hold at least `need` bytes (doubling, capped at `max`), charging
 * the growth to the server's budget. 0, -E2BIG (need > max) or -EBUSY (budget
 * spent) or -ENOMEM. */
int rf_http_buf_reserve(rf_http_server *s, rf_http_buf *b, size_t need, size_t max);
/* Frees b's memory and returns it to the budget. */
void rf_http_buf_release(rf_http_server *s, rf_http_buf *b);

/* Inflates a gzip body (several members allowed) from in into out (reset
 * first), at most max bytes. z is the connection's stream, initialised on
 * first use (*z_ready) and reused. 0, -E2BIG (larger than max), -EBADMSG
 * (not gzip / corrupt / truncated), -EBUSY, -ENOMEM. */
int rf_http_gunzip(rf_http_server *s, z_stream *z, bool *z_ready, const uint8_t *in,
                   size_t in_len, rf_http_buf *out, size_t max);

#endif
