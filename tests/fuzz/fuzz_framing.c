/* libFuzzer target: the TCP listener's line framing (rf_linebuf_feed and
 * rf_linebuf_finish, ingest/listen/frame.c), the code every TCP byte goes
 * through, driven as ingest/listen/listen.c drives it.
 *
 * Input layout:
 *   byte 0      the line limit (cap): 1..64 below 192, else 64..4096 in steps
 *               of 64 (a large cap takes the in-place fast path for runs)
 *   byte 1      k, the number of read-size bytes (0..31)
 *   k bytes     read sizes, used in turn until the stream ends: s < 200 reads
 *               s + 1 bytes, s >= 200 reads (s - 199) * 256 bytes (reads as
 *               large as a provided buffer); k = 0 is one read of everything
 *   the rest    the stream, then end of stream (rf_linebuf_finish)
 * Each read is copied into a buffer of exactly its size and freed after the
 * feed, and the line buffer is exactly cap bytes, as in the listener (whose
 * provided buffers are recycled after each feed): ASan sees any read past a
 * read, or of a read already given back.
 *
 * Checked against a reference split of the stream at '\n' (line = bytes
 * without the '\n'; the unterminated rest at the end is the final line):
 *   - every complete line of at most cap bytes is delivered exactly once,
 *     byte for byte, in order, in a flags-0 chunk; a chunk is one or more
 *     whole lines each ending in '\n', or one line without its '\n';
 *   - every line longer than cap is never delivered as a line: it yields
 *     exactly one LINE_TOO_LONG excerpt, 1..cap bytes, a prefix of the line,
 *     and the framer resynchronises after its '\n' (the next line arrives);
 *   - the final unterminated line is delivered once with FINAL if it is 1..cap
 *     bytes, as a LINE_TOO_LONG excerpt if longer, and nothing after it;
 *   - feed's return values add up to the LINE_TOO_LONG excerpts; finish
 *     returns 1 exactly when it delivered a FINAL line;
 *   - every emitted range lies inside the current read or the line buffer;
 *     between calls len <= cap, and discarding implies len == 0;
 *   - after finish the line buffer is reset: the same stream fed again in one
 *     read gives the same lines again. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/listen/listen.h"
#include "ingest/listen/listen_pvt.h"

enum ref_kind {
    REF_END,
    REF_LINE,
    REF_OVER,
    REF_FINAL
};

/* The reference: the next expected delivery in the stream. */
typedef struct ref {
    const char *p, *end;
    uint32_t cap;
} ref;

static enum ref_kind ref_next(ref *r, const char **line, size_t *len)
{
    if (r->p == r->end)
        return REF_END;
    const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
    *line = r->p;
    if (!nl) {
        *len = (size_t)(r->end - r->p);
        r->p = r->end;
        return *len > r->cap ? REF_OVER : REF_FINAL;
    }
    *len = (size_t)(nl - r->p);
    r->p = nl + 1;
    return *len > r->cap ? REF_OVER : REF_LINE;
}

typedef struct checker {
    ref r;
    const char *read, *lbuf; /* the buffers an emitted range may lie in */
    size_t read_len;
    uint32_t cap;
    uint64_t over_seen;
    bool final_seen;
    bool in_finish;
} checker;

static void expect_line(checker *c, const char *d, size_t n)
{
    const char *want;
    size_t wl;
    if (ref_next(&c->r, &want, &wl) != REF_LINE || wl != n || n > c->cap || memcmp(want, d, n) != 0)
        abort(); /* a line lost, duplicated, reordered, altered or overlong */
}

static void on_emit(void *ctx, const char *d, size_t n, uint32_t flags)
{
    checker *c = ctx;
    uintptr_t a = (uintptr_t)d, rd = (uintptr_t)c->read, lb = (uintptr_t)c->lbuf;
    bool in_read = c->read && a >= rd && n <= c->read_len && a - rd <= c->read_len - n;
    bool in_lbuf = a >= lb && n <= c->cap && a - lb <= c->cap - n;
    if (!in_read && !in_lbuf)
        abort();
    if (c->final_seen)
        abort(); /* nothing after the final line */
    const char *want;
    size_t wl;
    if (flags == 0) {
        if (n == 0 || c->in_finish)
            abort();
        const char *p = d, *end = d + n;
        if (d[n - 1] != '\n') { /* one line, completed from the held tail */
            if (memchr(d, '\n', n))
                abort();
            expect_line(c, d, n);
            return;
        }
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            expect_line(c, p, (size_t)(nl - p));
            p = nl + 1;
        }
    } else if (flags == RF_LISTEN_CHUNK_LINE_TOO_LONG) {
        if (c->in_finish || ref_next(&c->r, &want, &wl) != REF_OVER || n == 0 || n > c->cap ||
            n > wl || memcmp(want, d, n) != 0)
            abort();
        c->over_seen++;
    } else if (flags == RF_LISTEN_CHUNK_FINAL) {
        if (!c->in_finish || ref_next(&c->r, &want, &wl) != REF_FINAL || wl != n ||
            memcmp(want, d, n) != 0)
            abort();
        c->final_seen = true;
    } else {
        abort();
    }
}

static void check_state(const rf_linebuf *lb)
{
    if (lb->len > lb->cap || (lb->discarding && lb->len != 0))
        abort();
}

/* Feeds stream[0..n) in reads of the given sizes, then finishes; checks
 * everything above. */
static void run_stream(rf_linebuf *lb, const char *stream, size_t n, const uint8_t *sizes, size_t k)
{
    checker c = {.r = {stream, stream + n, lb->cap}, .lbuf = lb->buf, .cap = lb->cap};
    uint64_t over_returned = 0;
    size_t off = 0, i = 0;
    while (off < n) {
        size_t want = n - off;
        if (k) {
            uint8_t s = sizes[i++ % k];
            want = s < 200 ? (size_t)s + 1 : (size_t)(s - 199) * 256;
        }
        size_t len = want < n - off ? want : n - off;
        char *rd = malloc(len);
        if (!rd)
            abort();
        memcpy(rd, stream + off, len);
        c.read = rd;
        c.read_len = len;
        over_returned += rf_linebuf_feed(lb, rd, len, on_emit, &c);
        free(rd);
        c.read = NULL;
        c.read_len = 0;
        check_state(lb);
        off += len;
    }
    c.in_finish = true;
    uint32_t fin = rf_linebuf_finish(lb, on_emit, &c);
    const char *line;
    size_t len;
    if (ref_next(&c.r, &line, &len) != REF_END)
        abort(); /* something in the stream was never delivered */
    if (over_returned != c.over_seen || fin != (c.final_seen ? 1u : 0u))
        abort();
    if (lb->len != 0 || lb->discarding)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t cap = data[0] < 192 ? 1u + data[0] % 64u : 64u * (uint32_t)(data[0] - 191);
    size_t k = data[1] % 32u;
    if (size < 2 + k)
        return 0;
    const uint8_t *sizes = data + 2;
    const char *stream = (const char *)data + 2 + k;
    size_t n = size - 2 - k;

    char *lbuf = malloc(cap);
    if (!lbuf)
        abort();
    rf_linebuf lb = {.buf = lbuf, .cap = cap};
    run_stream(&lb, stream, n, sizes, k);
    run_stream(&lb, stream, n, NULL, 0); /* reused after finish, one read */
    free(lbuf);
    return 0;
}
