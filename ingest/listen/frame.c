/* Line framing for stream listeners: turns reads of arbitrary size into whole
 * lines, with a bounded per-connection buffer. See listen_pvt.h. */
#include "ingest/listen/listen_pvt.h"

#include <string.h>

#include "ingest/listen/listen.h"

/* Emits data[0..n), which ends with '\n', as runs of lines, cutting out the
 * lines longer than cap. Only called when n > cap + 1: a shorter run cannot
 * hold an overlong line, so the common case never scans line by line. */
static uint32_t emit_checked(const rf_linebuf *lb, const char *data, size_t n, rf_line_emit_fn emit,
                             void *ctx)
{
    const char *end = data + n, *run = data, *p = data;
    uint32_t over = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        /* data ends with '\n', so nl is found. */
        if ((size_t)(nl - p) > lb->cap) {
            if (p > run)
                emit(ctx, run, (size_t)(p - run), 0);
            emit(ctx, p, lb->cap, RF_LISTEN_CHUNK_LINE_TOO_LONG);
            over++;
            run = nl + 1;
        }
        p = nl + 1;
    }
    if (end > run)
        emit(ctx, run, (size_t)(end - run), 0);
    return over;
}

uint32_t rf_linebuf_feed(rf_linebuf *lb, const char *data, size_t n, rf_line_emit_fn emit,
                         void *ctx)
{
    const char *p = data, *end = data + n;
    uint32_t over = 0;

    if (lb->discarding) {
        const char *nl = memchr(p, '\n', n);
        if (!nl)
            return 0;
        lb->discarding = false;
        p = nl + 1;
    }

    /* Complete the held line first: it is the only copy on this path. */
    if (lb->len > 0 && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t take = (size_t)((nl ? nl : end) - p);
        if ((size_t)lb->len + take > lb->cap) {
            emit(ctx, lb->buf, lb->len, RF_LISTEN_CHUNK_LINE_TOO_LONG);
            over++;
            lb->len = 0;
            if (!nl) {
                lb->discarding = true;
                return over;
            }
        } else {
            memcpy(lb->buf + lb->len, p, take);
            lb->len += (uint32_t)take;
            if (!nl)
                return over;
            emit(ctx, lb->buf, lb->len, 0);
            lb->len = 0;
        }
        p = nl + 1;
    }

    if (p == end)
        return over;

    /* Every complete line of the rest, in place. */
    const char *last = memrchr(p, '\n', (size_t)(end - p));
    if (last) {
        size_t run = (size_t)(last + 1 - p);
        if (run <= (size_t)lb->cap + 1)
            emit(ctx, p, run, 0);
        else
            over += emit_checked(lb, p, run, emit, ctx);
        p = last + 1;
    }

    size_t tail = (size_t)(end - p);
    if (tail > lb->cap) {
        emit(ctx, p, lb->cap, RF_LISTEN_CHUNK_LINE_TOO_LONG);
        over++;
        lb->discarding = true;
    } else if (tail > 0) {
        memcpy(lb->buf, p, tail);
        lb->len = (uint32_t)tail;
    }
    return over;
}

uint32_t rf_linebuf_finish(rf_linebuf *lb, rf_line_emit_fn emit, void *ctx)
{
    uint32_t emitted = 0;
    if (!lb->discarding && lb->len > 0) {
        emit(ctx, lb->buf, lb->len, RF_LISTEN_CHUNK_FINAL);
        emitted = 1;
    }
    rf_linebuf_reset(lb);
    return emitted;
}
