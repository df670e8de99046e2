/* libFuzzer target: rf_frame_scan driving a simulated TCP reader.
 *
 * The first input byte picks max_line (1..64), the second the read size
 * (1..256); the rest is the stream. The reader keeps its pending bytes in a
 * buffer of max_line + read size (the bound the framer promises) and collects
 * every line the framer hands out. Checked: the collected lines, with lines
 * longer than max_line removed, are exactly the stream's complete lines of at
 * most max_line bytes, in order (each once); handed-out ranges are whole lines;
 * the pending buffer never overflows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/protocol/protocol.h"

static int next_short_line(const char **p, const char *end, size_t max, const char **line,
                           size_t *len)
{
    while (*p < end) {
        const char *nl = memchr(*p, '\n', (size_t)(end - *p));
        if (!nl)
            return 0; /* trailing partial line: never complete */
        *line = *p;
        *len = (size_t)(nl - *p);
        *p = nl + 1;
        if (*len <= max)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t max_line = 1 + data[0] % 64;
    size_t chunk = 1 + data[1];
    const char *s = (const char *)data + 2, *end = (const char *)data + size;

    char *pending = malloc(max_line + chunk);
    if (!pending)
        return 0;
    size_t np = 0;
    rf_framer fr;
    rf_framer_init(&fr, max_line);
    const char *ref = s; /* reference cursor over the stream */
    for (const char *p = s; p < end;) {
        size_t n = (size_t)(end - p) < chunk ? (size_t)(end - p) : chunk;
        if (np + n > max_line + chunk)
            abort();
        memcpy(pending + np, p, n);
        np += n;
        p += n;
        rf_frame out;
        rf_frame_scan(&fr, pending, np, &out);
        if (out.parse_off + out.parse_len > out.consume || out.consume > np)
            abort();
        if (out.parse_len && pending[out.parse_off + out.parse_len - 1] != '\n')
            abort();
        const char *q = pending + out.parse_off, *qe = q + out.parse_len;
        while (q < qe) {
            const char *nl = memchr(q, '\n', (size_t)(qe - q));
            size_t len = (size_t)(nl - q);
            if (len <= max_line) {
                const char *want;
                size_t wl;
                if (!next_short_line(&ref, end, max_line, &want, &wl) || wl != len ||
                    memcmp(want, q, len) != 0)
                    abort();
            }
            q = nl + 1;
        }
        memmove(pending, pending + out.consume, np - out.consume);
        np -= out.consume;
        if (np > max_line)
            abort();
    }
    const char *want;
    size_t wl;
    if (next_short_line(&ref, end, max_line, &want, &wl))
        abort(); /* a complete short line was never handed out */
    free(pending);
    return 0;
}
