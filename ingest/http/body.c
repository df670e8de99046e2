/* Request bodies: budget-charged buffers and gzip inflation. zlib rather than
 * libdeflate: zlib inflates into a buffer that grows as output appears, so a
 * bomb stops at max bytes of output; libdeflate wants the whole output size
 * up front, which a gzip trailer states only modulo 2^32 and a client may
 * lie about. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

int rf_http_gunzip(rf_http_server *s, z_stream *z, bool *z_ready, const uint8_t *in, size_t in_len,
                   rf_http_buf *out, size_t max)
{
    if (!*z_ready) {
        memset(z, 0, sizeof(*z));
        /* 16 + MAX_WBITS: gzip framing only (header and CRC checked). */
        if (inflateInit2(z, 16 + MAX_WBITS) != Z_OK)
            return -ENOMEM;
        *z_ready = true;
    } else {
        inflateReset(z);
    }
    out->len = 0;
    z->next_in = (Bytef *)(uintptr_t)in;
    size_t left_in = in_len;
    for (;;) {
        if (out->len == out->cap) {
            size_t want = out->cap ? out->cap * 2 : (in_len < 16384 ? 65536 : in_len * 4);
            if (want > max)
                want = max;
            if (want <= out->len)
                return -E2BIG; /* full at max with output still coming */
            int rc = rf_http_buf_reserve(s, out, want, max);
            if (rc)
                return rc;
        }
        /* uInt is 32 bits: feed and drain in slices. */
        uInt avail_in = left_in > UINT32_MAX ? UINT32_MAX : (uInt)left_in;
        size_t room = out->cap - out->len;
        uInt avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
        z->avail_in = avail_in;
        z->next_out = out->p + out->len;
        z->avail_out = avail_out;
        int zr = inflate(z, Z_NO_FLUSH);
        left_in -= avail_in - z->avail_in;
        out->len += avail_out - z->avail_out;
        if (zr == Z_STREAM_END) {
            if (left_in == 0)
                return 0;
            /* Concatenated members are one gzip stream (RFC 1952, 2.2). */
            inflateReset(z);
            continue;
        }
        if (zr == Z_BUF_ERROR && left_in == 0 && z->avail_out != 0)
            return -EBADMSG; /* truncated: no input left, no end of stream */
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
        if (left_in == 0 && z->avail_out != 0 && zr == Z_OK)
            return -EBADMSG;
    }
}
