/* Request bodies: budget-charged buffers and gzip inflation.
 *
 * libdeflate rather than zlib's inflate: a body is inflated only once it is
 * all in (Content-Length or chunked, http.c buffers it), and libdeflate's
 * whole-buffer decoder is about twice zlib's speed on such bodies
 * (PERFORMANCE.md, "HTTP ingest"). It wants the output buffer up front,
 * which the gzip trailer states only modulo 2^32 and in the client's word:
 * the trailer is a first guess, the buffer doubles when a member does not
 * fit, and a body that does not fit max bytes is refused (a gzip bomb stops
 * at max bytes of output, as it did with zlib's growing buffer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes/bytes.h"
#include "ingest/http/http_pvt.h"

/* Keeps the budget accounting in one place (http.c owns the counter). */
int rf_http_budget_take(rf_http_server *s, size_t n);
void rf_http_budget_give(rf_http_server *s, size_t n);

int rf_http_buf_reserve(rf_http_server *s, rf_http_buf *b, size_t need, size_t max)
{
    if (need <= b->cap)
        return 0;
    if (need > max)
        return -E2BIG;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > max)
        cap = max;
    int rc = rf_http_budget_take(s, cap - b->cap);
    if (rc)
        return rc;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        rf_http_budget_give(s, cap - b->cap);
        return -ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void rf_http_buf_release(rf_http_server *s, rf_http_buf *b)
{
    rf_http_budget_give(s, b->cap);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

int rf_http_gunzip(rf_http_server *s, struct libdeflate_decompressor **inflater, const uint8_t *in,
                   size_t in_len, rf_http_buf *out, size_t max)
{
    out->len = 0;
    if (in_len < 18)
        return -EBADMSG; /* shorter than a gzip header and trailer */
    if (!*inflater && !(*inflater = libdeflate_alloc_decompressor()))
        return -ENOMEM;
    /* The first guess: the trailer's size (of the last member, modulo 2^32,
     * and the client's word), no more than deflate's ~1032:1 can make of
     * in_len, nor than max. */
    uint64_t guess = rf_read_le32(in + in_len - 4);
    if (guess > (uint64_t)in_len * 1032u)
        guess = (uint64_t)in_len * 1032u;
    if (guess > max)
        guess = max;
    int rc = rf_http_buf_reserve(s, out, guess ? (size_t)guess : 1, max);
    if (rc)
        return rc;
    size_t at = 0;
    while (at < in_len) { /* concatenated members are one gzip stream (RFC 1952, 2.2) */
        size_t used = 0, got = 0;
        enum libdeflate_result r = libdeflate_gzip_decompress_ex(
            *inflater, in + at, in_len - at, out->p + out->len, out->cap - out->len, &used, &got);
        if (r == LIBDEFLATE_SUCCESS) {
            at += used;
            out->len += got;
            continue;
        }
        if (r != LIBDEFLATE_INSUFFICIENT_SPACE)
            return -EBADMSG; /* not gzip, corrupt, truncated, or a CRC or size mismatch */
        /* The member is decoded again into a buffer twice the size: at most
         * log2(max / guess) times, so a bomb costs a bounded multiple of max. */
        if (out->cap >= max)
            return -E2BIG;
        rc = rf_http_buf_reserve(s, out, out->cap > max / 2 ? max : out->cap * 2, max);
        if (rc)
            return rc;
    }
    return 0;
}
