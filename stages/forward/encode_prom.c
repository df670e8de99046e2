/* Request bodies of the HTTP forwarders, built into buffers that live as
 * long as the sender (rf_fwd_body): after the first requests no request
 * allocates, so no page of a fresh mapping is faulted in per request (the
 * profile of the first version, which built protobuf-c structures in new
 * allocations per request, had 15 % of the sender's time in page faults).
 *
 * remote_write: a snappy block of a protobuf WriteRequest, encoded here
 * by hand straight from the line text (only four tiny messages are
 * involved, ingest/http/prom_remote.proto), one pass per line:
 *
 *   WriteRequest  1: repeated TimeSeries (len-delimited, tag 0x0a)
 *   TimeSeries    1: repeated Label (0x0a)   2: repeated Sample (0x12)
 *   Label         1: name (0x0a)             2: value (0x12)
 *   Sample        1: value, double (0x09)    2: timestamp ms, int64 (0x10)
 *
 * A TimeSeries' size is known before it is written (its labels are
 * unescaped first), so every length prefix is written once, in place. As
 * protobuf-c does for proto3 fields, zero numbers and empty strings are
 * left out: the bytes are the ones rf_prom__write_request__pack would
 * write for the same series (tests/stages/test_forward_buffer.c checks
 * that), and the generated decoder reads them back.
 *
 * The lines are the sink's own (rf_sink_format_lp): canonical keys, so the
 * parser only needs the escapes line protocol defines ('\' before ',', '=',
 * ' ', '"' or '\'). Sender thread (one body per sender). */
#include "stages/forward/forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <snappy-c.h>

#include "core/bytes/bytes.h"

typedef struct span {
    const char *p;
    uint32_t n;
} span;

typedef struct label {
    span name, value;
} label;

struct rf_fwd_body {
    uint8_t *pb; /* the protobuf WriteRequest (remote_write) */
    size_t pb_len, pb_cap;
    uint8_t *out; /* what is sent: snappy or gzip of the above */
    size_t out_len, out_cap;
    char *scratch; /* one line's unescaped names and values */
    size_t scratch_cap;
    label *tags; /* one line's tags, sorted by name */
    size_t tags_cap;
    struct libdeflate_compressor *gz; /* for level gz_level; NULL until the first gzip */
    int gz_level;
};

static int reserve(void **p, size_t *cap, size_t need, size_t esize)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * esize);
    if (!n)
        return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

rf_fwd_body *rf_fwd_body_new(void)
{
    return calloc(1, sizeof(rf_fwd_body));
}

void rf_fwd_body_free(rf_fwd_body *b)
{
    if (!b)
        return;
    libdeflate_free_compressor(b->gz);
    free(b->pb);
    free(b->out);
    free(b->scratch);
    free(b->tags);
    free(b);
}

const uint8_t *rf_fwd_body_data(const rf_fwd_body *b, size_t *len)
{
    *len = b->out_len;
    return b->out;
}

/* ---------------------------------------------------------------- line text */

static bool escapable(char c)
{
    return c == ',' || c == '=' || c == ' ' || c == '"' || c == '\\';
}

/* Index of the first unescaped `stop` in s[0..len) (outside double quotes
 * when `quotes`), or len. */
static size_t scan(const char *s, size_t len, char stop, char stop2, bool quotes)
{
    bool q = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\')
            i++;
        else if (quotes && c == '"')
            q = !q;
        else if (!q && (c == stop || c == stop2))
            return i;
    }
    return len;
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Copies s[0..len) to o unescaped; a name is also made a valid Prometheus
 * name (other characters become '_', a leading digit gets a '_' before it;
 * `first`: o starts the name). Returns the end of what was written, which
 * is at most len + 1 bytes. */
static char *unescape(char *o, const char *s, size_t len, bool name, bool first)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len && escapable(s[i + 1]))
            c = s[++i];
        if (name && !name_char(c, first)) {
            if (first && c >= '0' && c <= '9')
                *o++ = '_';
            else
                c = '_';
        }
        first = false;
        *o++ = c;
    }
    return o;
}

/* A label value as it is in the line when it holds no escape (most do),
 * else unescaped into *scratch. */
static span value_span(char **scratch, const char *s, size_t len)
{
    if (!memchr(s, '\\', len))
        return (span){s, (uint32_t)len};
    char *start = *scratch;
    *scratch = unescape(start, s, len, false, false);
    return (span){start, (uint32_t)(*scratch - start)};
}

static int span_cmp(span a, span b)
{
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

/* 10^0 .. 10^22: exactly representable as doubles. */
static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* [-]digits[.digits] with at most 15 significant digits: the digits are
 * an exact integer below 2^53 and the divisor an exact power of ten, so
 * one division rounds correctly (what strtod returns). Anything else
 * (exponents, long mantissas) is left to strtod. */
static bool fast_decimal(const char *s, size_t len, double *v)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    uint64_t m = 0;
    unsigned digits = 0, frac = 0;
    bool dot = false, any = false;
    for (; i < len; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            any = true;
            if (m == 0 && c == '0') {
                frac += dot;
                continue; /* a leading zero is no significant digit */
            }
            if (++digits > 15)
                return false;
            m = m * 10 + (uint64_t)(c - '0');
            frac += dot;
        } else if (c == '.' && !dot) {
            dot = true;
        } else {
            return false;
        }
    }
    if (!any || frac > 22)
        return false;
    double x = (double)m / pow10_exact[frac];
    *v = neg ? -x : x;
    return true;
}

/* A field value: false for strings (and anything else unparseable). */
static bool field_value(const char *s, size_t len, double *v)
{
    if (len == 0 || s[0] == '"')
        return false;
    if ((len == 4 && !memcmp(s, "true", 4)) || (len == 1 && (s[0] == 't' || s[0] == 'T'))) {
        *v = 1;
        return true;
    }
    if ((len == 5 && !memcmp(s, "false", 5)) || (len == 1 && (s[0] == 'f' || s[0] == 'F'))) {
        *v = 0;
        return true;
    }
    if (s[len - 1] == 'i' || s[len - 1] == 'u')
        len--;
    if (fast_decimal(s, len, v))
        return true;
    char buf[64];
    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    *v = strtod(buf, &end);
    return end != buf && *end == '\0';
}

/* The line's timestamp (ns, as strtoll reads it) in milliseconds. Up to 19
 * digits (today's ns times have 19) fit a uint64; beyond int64 strtoll
 * saturates, and so does the fallback here. */
static int64_t timestamp_ms(const char *s, size_t len)
{
    bool neg = len && s[0] == '-';
    size_t i = neg;
    if (len > i && len - i <= 19) {
        uint64_t ns = 0;
        size_t d = i;
        for (; d < len && s[d] >= '0' && s[d] <= '9'; d++)
            ns = ns * 10 + (uint64_t)(s[d] - '0');
        if (ns <= (uint64_t)INT64_MAX)
            return (neg ? -(int64_t)ns : (int64_t)ns) / 1000000;
    }
    char buf[32];
    size_t n = len < sizeof(buf) - 1 ? len : sizeof(buf) - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return strtoll(buf, NULL, 10) / 1000000;
}

/* ---------------------------------------------------------------- protobuf */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *o, uint64_t v)
{
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

/* A string field (len-delimited); proto3 leaves an empty one out. */
static size_t str_size(uint32_t n)
{
    return n ? 1 + varint_len(n) + n : 0;
}

static uint8_t *put_str(uint8_t *o, uint8_t tag, span s)
{
    if (!s.n)
        return o;
    *o++ = tag;
    o = put_varint(o, s.n);
    memcpy(o, s.p, s.n);
    return o + s.n;
}

static size_t label_size(const label *l)
{
    return str_size(l->name.n) + str_size(l->value.n);
}

static uint8_t *put_label(uint8_t *o, const label *l)
{
    *o++ = 0x0a; /* TimeSeries.labels */
    o = put_varint(o, label_size(l));
    o = put_str(o, 0x0a, l->name);
    return put_str(o, 0x12, l->value);
}

/* One TimeSeries of one sample: `metric` (__name__) goes before tags[at]
 * so that the labels stay sorted by name. */
static int put_series(rf_fwd_body *b, const label *metric, const label *tags, size_t n_tags,
                      size_t at, double v, int64_t ms)
{
    size_t labels = 1 + varint_len(label_size(metric)) + label_size(metric);
    for (size_t i = 0; i < n_tags; i++)
        labels += 1 + varint_len(label_size(&tags[i])) + label_size(&tags[i]);
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    size_t sample = (v != 0 ? 9 : 0) + (ms ? 1 + varint_len((uint64_t)ms) : 0);
    size_t series = labels + 1 + varint_len(sample) + sample;
    if (reserve((void **)&b->pb, &b->pb_cap, b->pb_len + 1 + 10 + series, 1))
        return -ENOMEM;
    uint8_t *o = b->pb + b->pb_len;
    *o++ = 0x0a; /* WriteRequest.timeseries */
    o = put_varint(o, series);
    for (size_t i = 0; i < n_tags; i++) {
        if (i == at)
            o = put_label(o, metric);
        o = put_label(o, &tags[i]);
    }
    if (at == n_tags)
        o = put_label(o, metric);
    *o++ = 0x12; /* TimeSeries.samples */
    o = put_varint(o, sample);
    if (v != 0) { /* -0.0 too, as protobuf-c's zero test does */
        *o++ = 0x09;
        rf_write_le64(o, bits);
        o += 8;
    }
    if (ms) {
        *o++ = 0x10;
        o = put_varint(o, (uint64_t)ms);
    }
    b->pb_len = (size_t)(o - b->pb);
    return 0;
}

/* One line: its tags become labels (sorted by name), each numeric field a
 * TimeSeries named <measurement>_<field>. */
static int encode_line(rf_fwd_body *b, const char *s, size_t len, uint64_t *samples,
                       uint64_t *unsupported)
{
    size_t key_end = scan(s, len, ' ', ' ', false);
    if (key_end >= len)
        return 0; /* not a line we wrote: nothing to send */
    /* Unescaping never grows a value; a name grows by one '_' at most, and
     * the metric name is measurement + '_' + a field key: 2*len bounds all. */
    if (reserve((void **)&b->scratch, &b->scratch_cap, 2 * len + 16, 1))
        return -ENOMEM;
    char *sc = b->scratch;
    const char *f = s + key_end + 1;
    size_t flen = scan(f, len - key_end - 1, ' ', ' ', true);
    int64_t ms = 0;
    if (key_end + 1 + flen < len)
        ms = timestamp_ms(f + flen + 1, len - key_end - 1 - flen - 1);
    size_t m_end = scan(s, key_end, ',', ',', false);
    size_t n_tags = 0;
    for (size_t at = m_end; at < key_end;) {
        const char *t = s + at + 1;
        size_t tl = scan(t, key_end - at - 1, ',', ',', false);
        size_t eq = scan(t, tl, '=', '=', false);
        if (eq < tl) {
            if (reserve((void **)&b->tags, &b->tags_cap, n_tags + 1, sizeof(label)))
                return -ENOMEM;
            label l;
            char *name = sc;
            sc = unescape(sc, t, eq, true, true);
            l.name = (span){name, (uint32_t)(sc - name)};
            l.value = value_span(&sc, t + eq + 1, tl - eq - 1);
            /* Insertion sort: the sink's keys come sorted already. */
            size_t k = n_tags++;
            for (; k > 0 && span_cmp(b->tags[k - 1].name, l.name) > 0; k--)
                b->tags[k] = b->tags[k - 1];
            b->tags[k] = l;
        }
        at += 1 + tl;
    }
    static const span metric_label = {"__name__", 8};
    size_t metric_at = 0;
    while (metric_at < n_tags && span_cmp(b->tags[metric_at].name, metric_label) < 0)
        metric_at++;
    /* The measurement, sanitised once; each field's name is written after it. */
    char *mname = sc;
    char *mend = unescape(mname, s, m_end, true, true);
    for (size_t fa = 0; fa < flen;) {
        size_t one = scan(f + fa, flen - fa, ',', ',', true);
        size_t eq = scan(f + fa, one, '=', '=', false);
        double v;
        if (eq < one && field_value(f + fa + eq + 1, one - eq - 1, &v)) {
            *mend = '_';
            char *end = unescape(mend + 1, f + fa, eq, true, false);
            label metric = {metric_label, {mname, (uint32_t)(end - mname)}};
            int rc = put_series(b, &metric, b->tags, n_tags, metric_at, v, ms);
            if (rc)
                return rc;
            (*samples)++;
        } else {
            (*unsupported)++;
        }
        fa += one + 1;
    }
    return 0;
}

int rf_fwd_body_prom(rf_fwd_body *b, const char *lp, size_t len, uint64_t *samples,
                     uint64_t *unsupported)
{
    b->pb_len = 0;
    b->out_len = 0;
    *samples = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(lp + at, '\n', len - at);
        size_t l = nl ? (size_t)(nl - (lp + at)) : len - at;
        int rc = encode_line(b, lp + at, l, samples, unsupported);
        if (rc)
            return rc;
        at += l + 1;
    }
    size_t cap = snappy_max_compressed_length(b->pb_len);
    if (reserve((void **)&b->out, &b->out_cap, cap, 1))
        return -ENOMEM;
    size_t out_len = b->out_cap;
    if (snappy_compress((const char *)b->pb, b->pb_len, (char *)b->out, &out_len) != SNAPPY_OK)
        return -EIO;
    b->out_len = out_len;
    return 0;
}

int rf_fwd_body_gzip(rf_fwd_body *b, const char *in, size_t len, int level)
{
    /* libdeflate (as the HTTP ingest's inflater): whole-buffer, and at
     * level 1 about twice zlib's speed for the same size (forward_bench.c). */
    b->out_len = 0;
    if (!b->gz || b->gz_level != level) {
        libdeflate_free_compressor(b->gz);
        b->gz = libdeflate_alloc_compressor(level);
        if (!b->gz)
            return -ENOMEM;
        b->gz_level = level;
    }
    if (reserve((void **)&b->out, &b->out_cap, libdeflate_gzip_compress_bound(b->gz, len), 1))
        return -ENOMEM;
    b->out_len = libdeflate_gzip_compress(b->gz, in, len, b->out, b->out_cap);
    return b->out_len ? 0 : -EIO;
}

int rf_fwd_encode_prom(const char *lp, size_t len, uint8_t **body, size_t *body_len,
                       uint64_t *samples, uint64_t *unsupported)
{
    *body = NULL;
    *body_len = 0;
    rf_fwd_body *b = rf_fwd_body_new();
    if (!b)
        return -ENOMEM;
    int rc = rf_fwd_body_prom(b, lp, len, samples, unsupported);
    if (!rc) {
        *body = malloc(b->out_len ? b->out_len : 1);
        if (*body) {
            memcpy(*body, b->out, b->out_len);
            *body_len = b->out_len;
        } else {
            rc = -ENOMEM;
        }
    }
    rf_fwd_body_free(b);
    return rc;
}
