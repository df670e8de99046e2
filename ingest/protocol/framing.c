/* Line framing for stream transports (see rf_frame_scan in protocol.h).
 * Pure: no I/O, no allocation; the state is one flag per connection, so the
 * TCP reader's buffer handling reduces to "parse this range, keep that tail". */
#include "ingest/protocol/protocol_pvt.h"

void rf_frame_scan(rf_framer *f, const char *buf, size_t len, rf_frame *out)
{
    size_t pos = 0;
    out->overlong = 0;
    out->overlong_off = 0;
    if (f->discarding) {
        const char *nl = memchr(buf, '\n', len);
        if (!nl) { /* still inside the overlong line: drop everything */
            out->parse_off = out->parse_len = 0;
            out->consume = len;
            return;
        }
        pos = (size_t)(nl - buf) + 1;
        f->discarding = false;
    }
    const char *last = memrchr(buf + pos, '\n', len - pos);
    size_t tail_start = last ? (size_t)(last - buf) + 1 : pos;
    out->parse_off = pos;
    out->parse_len = tail_start - pos;
    if (len - tail_start > f->max_line) {
        /* The partial line is already longer than any line may be: drop it
         * now and the rest of it as it arrives, up to its '\n'. */
        f->discarding = true;
        out->overlong = 1;
        out->overlong_off = tail_start;
        out->consume = len;
    } else {
        out->consume = tail_start;
    }
}
