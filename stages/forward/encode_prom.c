/* Line protocol -> Prometheus remote_write 1.0 body (snappy block of a
 * protobuf WriteRequest), with the protobuf-c code generated for the
 * remote_write receiver (ingest/http/prom_remote.proto). Sender thread.
 *
 * The lines are the sink's own (rf_sink_format_lp): canonical keys, so the
 * parser only needs the escapes line protocol defines ('\' before ',', '=',
 * ' ', '"' or '\'). Parsing records offsets; pointers are made once every
 * array has its final size. */
#include "stages/forward/forward.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "ingest/http/prom_remote.pb-c.h"

typedef struct lab {
    uint32_t name, value;
} lab; /* offsets into text */
typedef struct ser {
    uint32_t first, n;
    double v;
    int64_t ms;
} ser; /* into labref */

typedef struct enc {
    char *text;
    size_t n_text, cap_text;
    lab *labs;
    size_t n_labs, cap_labs;
    uint32_t *labref;
    size_t n_labref, cap_labref;
    ser *sers;
    size_t n_sers, cap_sers;
} enc;

static int grow(void **p, size_t *cap, size_t need, size_t esize)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need)
        c *= 2;
    void *n = realloc(*p, c * esize);
    if (!n)
        return -ENOMEM;
    *p = n;
    *cap = c;
    return 0;
}

/* Appends s[0..len) unescaped (and, for names, sanitised) to text plus a
 * NUL; returns its offset or -ENOMEM. */
static long put_text(enc *e, const char *s, size_t len, bool name)
{
    if (grow((void **)&e->text, &e->cap_text, e->n_text + len + 2, 1))
        return -ENOMEM;
    size_t at = e->n_text;
    char *o = e->text + at;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len && strchr(",= \"\\", s[i + 1]))
            c = s[++i];
        if (name) {
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                      (c >= '0' && c <= '9' && (o > e->text + at)) || c == ':';
            if (!ok && c >= '0' && c <= '9')
                *o++ = '_'; /* a name cannot start with a digit */
            else if (!ok)
                c = '_';
        }
        *o++ = c;
    }
    *o++ = '\0';
    e->n_text = (size_t)(o - e->text);
    return (long)at;
}

/* Index of the first unescaped `stop` char in s[0..len) outside quotes
 * (when `quotes`), or len. */
static size_t scan(const char *s, size_t len, const char *stop, bool quotes)
{
    bool q = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\') {
            i++;
            continue;
        }
        if (quotes && s[i] == '"')
            q = !q;
        else if (!q && strchr(stop, s[i]))
            return i;
    }
    return len;
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
    char buf[64];
    size_t n = len < sizeof(buf) ? len : sizeof(buf) - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (n && (buf[n - 1] == 'i' || buf[n - 1] == 'u'))
        buf[--n] = '\0';
    char *end;
    *v = strtod(buf, &end);
    return end != buf && *end == '\0';
}

static int parse_line(enc *e, const char *s, size_t len, uint64_t *unsupported)
{
    size_t key_end = scan(s, len, " ", false);
    if (key_end >= len)
        return 0; /* not a line we wrote: nothing to send */
    const char *f = s + key_end + 1;
    size_t flen = scan(f, len - key_end - 1, " ", true);
    int64_t ms = 0;
    if (key_end + 1 + flen < len)
        ms = strtoll(f + flen + 1, NULL, 10) / 1000000;
    size_t m_end = scan(s, key_end, ",", false);
    /* Tag labels, shared by every field of the line. */
    size_t first_tag = e->n_labs;
    size_t at = m_end;
    while (at < key_end) {
        const char *t = s + at + 1;
        size_t tl = scan(t, key_end - at - 1, ",", false);
        size_t eq = scan(t, tl, "=", false);
        if (eq < tl) {
            if (grow((void **)&e->labs, &e->cap_labs, e->n_labs + 1, sizeof(lab)))
                return -ENOMEM;
            long n = put_text(e, t, eq, true), v = put_text(e, t + eq + 1, tl - eq - 1, false);
            if (n < 0 || v < 0)
                return -ENOMEM;
            e->labs[e->n_labs++] = (lab){(uint32_t)n, (uint32_t)v};
        }
        at += 1 + tl;
    }
    size_t n_tags = e->n_labs - first_tag;
    for (size_t fa = 0; fa < flen;) {
        size_t one = scan(f + fa, flen - fa, ",", true);
        size_t eq = scan(f + fa, one, "=", false);
        double v;
        if (eq < one && field_value(f + fa + eq + 1, one - eq - 1, &v)) {
            /* __name__ = measurement_field, sanitised as a whole. */
            char mname[512];
            size_t ml = m_end < sizeof(mname) - 1 ? m_end : sizeof(mname) - 1;
            memcpy(mname, s, ml);
            size_t take = eq < sizeof(mname) - ml - 2 ? eq : sizeof(mname) - ml - 2;
            mname[ml] = '_';
            memcpy(mname + ml + 1, f + fa, take);
            if (grow((void **)&e->labs, &e->cap_labs, e->n_labs + 1, sizeof(lab)) ||
                grow((void **)&e->labref, &e->cap_labref, e->n_labref + n_tags + 1, 4) ||
                grow((void **)&e->sers, &e->cap_sers, e->n_sers + 1, sizeof(ser)))
                return -ENOMEM;
            long nn = put_text(e, "__name__", 8, false);
            long nv = put_text(e, mname, ml + 1 + take, true);
            if (nn < 0 || nv < 0)
                return -ENOMEM;
            e->labs[e->n_labs] = (lab){(uint32_t)nn, (uint32_t)nv};
            ser *sr = &e->sers[e->n_sers++];
            *sr = (ser){(uint32_t)e->n_labref, (uint32_t)n_tags + 1, v, ms};
            e->labref[e->n_labref++] = (uint32_t)e->n_labs++;
            for (size_t k = 0; k < n_tags; k++)
                e->labref[e->n_labref++] = (uint32_t)(first_tag + k);
        } else {
            (*unsupported)++;
        }
        fa += one + 1;
    }
    return 0;
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp((*(RfProm__Label *const *)a)->name, (*(RfProm__Label *const *)b)->name);
}

static void enc_free(enc *e)
{
    free(e->text);
    free(e->labs);
    free(e->labref);
    free(e->sers);
}

int rf_fwd_encode_prom(const char *lp, size_t len, uint8_t **body, size_t *body_len,
                       uint64_t *samples, uint64_t *unsupported)
{
    enc e = {0};
    int rc = 0;
    RfProm__Label *labels = NULL, **lptr = NULL;
    RfProm__Sample *smp = NULL, **sptr = NULL;
    RfProm__TimeSeries *ts = NULL, **tsptr = NULL;
    uint8_t *pb = NULL;
    *body = NULL;
    *body_len = 0;
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(lp + at, '\n', len - at);
        size_t l = nl ? (size_t)(nl - (lp + at)) : len - at;
        if ((rc = parse_line(&e, lp + at, l, unsupported)))
            goto out;
        at += l + 1;
    }
    size_t nl_ = e.n_labs ? e.n_labs : 1, nr = e.n_labref ? e.n_labref : 1,
           ns = e.n_sers ? e.n_sers : 1;
    labels = malloc(nl_ * sizeof(*labels));
    lptr = malloc(nr * sizeof(*lptr));
    smp = malloc(ns * sizeof(*smp));
    sptr = malloc(ns * sizeof(*sptr));
    ts = malloc(ns * sizeof(*ts));
    tsptr = malloc(ns * sizeof(*tsptr));
    if (!labels || !lptr || !smp || !sptr || !ts || !tsptr) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < e.n_labs; i++) {
        rf_prom__label__init(&labels[i]);
        labels[i].name = e.text + e.labs[i].name;
        labels[i].value = e.text + e.labs[i].value;
    }
    for (size_t i = 0; i < e.n_labref; i++)
        lptr[i] = &labels[e.labref[i]];
    for (size_t i = 0; i < e.n_sers; i++) {
        rf_prom__sample__init(&smp[i]);
        smp[i].value = e.sers[i].v;
        smp[i].timestamp = e.sers[i].ms;
        sptr[i] = &smp[i];
        rf_prom__time_series__init(&ts[i]);
        ts[i].labels = lptr + e.sers[i].first;
        ts[i].n_labels = e.sers[i].n;
        /* remote_write wants labels sorted by name. */
        qsort(ts[i].labels, ts[i].n_labels, sizeof(*ts[i].labels), label_cmp);
        ts[i].samples = &sptr[i];
        ts[i].n_samples = 1;
        tsptr[i] = &ts[i];
    }
    RfProm__WriteRequest wr = RF_PROM__WRITE_REQUEST__INIT;
    wr.timeseries = tsptr;
    wr.n_timeseries = e.n_sers;
    size_t pl = rf_prom__write_request__get_packed_size(&wr);
    pb = malloc(pl ? pl : 1);
    size_t cap = snappy_max_compressed_length(pl);
    *body = malloc(cap);
    if (!pb || !*body) {
        rc = -ENOMEM;
        goto out;
    }
    rf_prom__write_request__pack(&wr, pb);
    *body_len = cap;
    if (snappy_compress((const char *)pb, pl, (char *)*body, body_len) != SNAPPY_OK) {
        rc = -EIO;
        goto out;
    }
    *samples = e.n_sers;
out:
    if (rc) {
        free(*body);
        *body = NULL;
    }
    free(pb);
    free(labels);
    free(lptr);
    free(smp);
    free(sptr);
    free(ts);
    free(tsptr);
    enc_free(&e);
    return rc;
}
