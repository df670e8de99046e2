/* ringflow replay --rewrite-timestamps: gives the lines without a timestamp
 * the recorded receive time (contract in replay.h). */
#include "tools/replay/replay.h"

#include <stdbool.h>
#include <string.h>

#include "core/clock/clock.h"
#include "storage/recfile/recfile.h"

/* ---- timestamp rewriting -------------------------------------------------- */

static char *put_i64(char *p, int64_t v)
{
    char tmp[24];
    int n = 0;
    uint64_t m = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Whether a line-protocol line (no '\n') has a timestamp: the part after the
 * field set. Escapes (backslash) and quoted string field values (which may
 * hold spaces) are honoured. Returns -1 for blank/comment lines, 0 without a
 * timestamp (and *end_of_fields set to where one would go), 1 with one. */
static int influx_has_ts(const char *s, size_t len, size_t *end_of_fields)
{
    size_t i = 0;
    while (i < len && is_blank(s[i]))
        i++;
    if (i == len || s[i] == '#')
        return -1;
    /* measurement and tags: up to the first unescaped space */
    while (i < len && s[i] != ' ') {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        i++;
    }
    while (i < len && s[i] == ' ')
        i++;
    /* fields: up to the first unescaped space outside quotes */
    bool quoted = false;
    while (i < len && (quoted || s[i] != ' ')) {
        if (s[i] == '\\' && i + 1 < len)
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        i++;
    }
    size_t eof = i;
    while (eof > 0 && is_blank(s[eof - 1]))
        eof--;
    *end_of_fields = eof;
    while (i < len && is_blank(s[i]))
        i++;
    return i < len ? 1 : 0;
}

/* Copies line[0..head), a space when asked, ts, then line[tail..llen):
 * the line with ts put in place of what lay between head and tail. */
static char *splice_ts(char *o, const char *line, size_t llen, size_t head, size_t tail, bool space,
                       int64_t ts)
{
    memcpy(o, line, head);
    o += head;
    if (space)
        *o++ = ' ';
    o = put_i64(o, ts);
    memcpy(o, line + tail, llen - tail);
    return o + (llen - tail);
}

static int64_t in_precision(int64_t wall_ns, int precision)
{
    static const int64_t div[] = {1, 1000, 1000000, 1000000000};
    return wall_ns / div[precision >= 0 && precision <= 3 ? precision : 0];
}

size_t rf_replay_rewrite_influx(const char *in, size_t len, int64_t wall_ns, int precision,
                                char *out, uint64_t *rewritten)
{
    char *o = out;
    const int64_t ts = in_precision(wall_ns, precision);
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (in + pos)) : len - pos;
        const char *line = in + pos;
        size_t eof = 0;
        if (influx_has_ts(line, llen, &eof) == 0) {
            o = splice_ts(o, line, llen, eof, eof, true, ts); /* trailing blanks / '\r' kept */
            (*rewritten)++;
        } else {
            memcpy(o, line, llen);
            o += llen;
        }
        if (nl)
            *o++ = '\n';
        pos += llen + (nl ? 1 : 0);
    }
    return (size_t)(o - out);
}

size_t rf_replay_rewrite_graphite(const char *in, size_t len, int64_t wall_ns, char *out,
                                  uint64_t *rewritten)
{
    char *o = out;
    const int64_t ts = wall_ns / RF_NS_PER_S;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - (in + pos)) : len - pos;
        const char *line = in + pos;
        /* tokens: path value [timestamp] */
        size_t tok_start[4], tok_end[4], nt = 0, i = 0;
        while (i < llen && nt < 4) {
            while (i < llen && is_blank(line[i]))
                i++;
            if (i == llen)
                break;
            tok_start[nt] = i;
            while (i < llen && !is_blank(line[i]))
                i++;
            tok_end[nt++] = i;
        }
        bool comment = nt > 0 && line[tok_start[0]] == '#';
        if (!comment && nt == 2) {
            o = splice_ts(o, line, llen, tok_end[1], tok_end[1], true, ts);
            (*rewritten)++;
        } else if (!comment && nt == 3 && tok_end[2] - tok_start[2] == 2 &&
                   !memcmp(line + tok_start[2], "-1", 2)) {
            o = splice_ts(o, line, llen, tok_start[2], tok_end[2], false, ts);
            (*rewritten)++;
        } else {
            memcpy(o, line, llen);
            o += llen;
        }
        if (nl)
            *o++ = '\n';
        pos += llen + (nl ? 1 : 0);
    }
    return (size_t)(o - out);
}
