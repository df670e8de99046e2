/* Private to ingest/listen: do not include from other modules (tests may).
 *
 * Line framing of a byte stream (frame.c), kept apart from the socket code so
 * it can be tested byte by byte without sockets.
 *
 * rf_linebuf holds the unterminated tail of a stream between reads, at most
 * `cap` bytes (the line length limit). Invariants: len <= cap; when
 * `discarding` is set, len == 0 and the stream is inside an overlong line
 * whose excerpt was already emitted: bytes are skipped up to the next '\n'. */
#ifndef RF_INGEST_LISTEN_PVT_H
#define RF_INGEST_LISTEN_PVT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rf_linebuf {
    char *buf;       /* cap bytes, owned by the caller */
    uint32_t cap;    /* longest line accepted, without '\n' */
    uint32_t len;    /* bytes of the unterminated line held */
    bool discarding; /* skipping the rest of an overlong line */
} rf_linebuf;

/* Receives complete lines (flags 0), an overlong line's excerpt
 * (RF_LISTEN_CHUNK_LINE_TOO_LONG) or the last unterminated line at end of
 * stream (RF_LISTEN_CHUNK_FINAL). */
typedef void (*rf_line_emit_fn)(void *ctx, const char *data, size_t len, uint32_t flags);

/* Frames data[0..n): emits every complete line (runs of lines in place, a line
 * completed from the held tail from buf), keeps the new tail. Returns the
 * number of overlong lines found. */
uint32_t rf_linebuf_feed(rf_linebuf *lb, const char *data, size_t n, rf_line_emit_fn emit,
                         void *ctx);

/* End of stream: emits the held unterminated line, if any (and not inside an
 * overlong line), then resets. Returns 1 when a line was emitted. */
uint32_t rf_linebuf_finish(rf_linebuf *lb, rf_line_emit_fn emit, void *ctx);

/* Forgets the held tail; returns how many bytes were held (0: nothing lost). */
static inline uint32_t rf_linebuf_reset(rf_linebuf *lb)
{
    uint32_t had = lb->len;
    lb->len = 0;
    lb->discarding = false;
    return had;
}

#endif
