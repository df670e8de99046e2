/* Prometheus remote_read, the samples response (promapi_pvt.h): a snappy
 * block of a ReadRequest in, a snappy block of a ReadResponse out, each
 * query's matchers resolved by the series index and its points read as
 * PromQL reads them. Runs on the query thread. */
#include <errno.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/prom_read.pb-c.h"
#include "storage/promapi/promapi_pvt.h"

#define MAX_REQUEST (16u << 20) /* decoded ReadRequest: far above what a server sends */

typedef struct built {
    RfPromread__QueryResult **results;
    size_t n_results;
} built;

static void built_free(built *b)
{
    for (size_t r = 0; r < b->n_results; r++) {
        RfPromread__QueryResult *qr = b->results[r];
        if (!qr)
            continue;
        for (size_t i = 0; i < qr->n_timeseries; i++) {
            RfProm__TimeSeries *ts = qr->timeseries[i];
            for (size_t k = 0; k < ts->n_labels; k++)
                free(ts->labels[k]);
            free(ts->labels);
            for (size_t k = 0; k < ts->n_samples; k++)
                free(ts->samples[k]);
            free(ts->samples);
            free(ts);
        }
        free(qr->timeseries);
        free(qr);
    }
    free(b->results);
}

/* One query's series into qr. Returns 0 or a negative errno (msg filled). */
static int one_query(rf_series_index *ix, const RfPromread__Query *q, RfPromread__QueryResult *qr,
                     char *msg, size_t msg_len)
{
    rf_promql_matcher *m = calloc(q->n_matchers ? q->n_matchers : 1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    rf_err err;
    int rc = 0;
    size_t nm = 0;
    for (; nm < q->n_matchers && rc == 0; nm++) {
        const RfPromread__LabelMatcher *lm = q->matchers[nm];
        if (lm->type < 0 || lm->type > 3) {
            snprintf(msg, msg_len, "unknown matcher type %d", (int)lm->type);
            rc = -EINVAL;
            break;
        }
        if ((rc = rf_promql_matcher_init(&m[nm], lm->name, (enum rf_promql_match)lm->type,
                                         lm->value, &err)) < 0)
            snprintf(msg, msg_len, "%s", err.msg);
    }
    rf_promql_source src;
    rf_series_index_source(ix, &src);
    rf_promql_series *s = NULL;
    size_t n = 0;
    if (rc == 0 && (rc = src.select(src.user, m, nm, q->start_timestamp_ms, q->end_timestamp_ms, &s,
                                    &n, &err)) < 0)
        snprintf(msg, msg_len, "%s", err.msg);
    rf_promql_matchers_free(m, nm);
    if (rc < 0)
        return rc;
    qr->timeseries = calloc(n ? n : 1, sizeof(*qr->timeseries));
    for (size_t i = 0; qr->timeseries && i < n && rc == 0; i++) {
        RfProm__TimeSeries *ts = malloc(sizeof(*ts));
        size_t nl = 0;
        for (const char *p = s[i].labels.buf; p < s[i].labels.buf + s[i].labels.len; nl++) {
            p += strlen(p) + 1;
            p += strlen(p) + 1;
        }
        if (!ts) {
            rc = -ENOMEM;
            break;
        }
        rf_prom__time_series__init(ts);
        qr->timeseries[qr->n_timeseries++] = ts;
        ts->labels = calloc(nl ? nl : 1, sizeof(*ts->labels));
        ts->samples = calloc(s[i].n ? s[i].n : 1, sizeof(*ts->samples));
        if (!ts->labels || !ts->samples) {
            rc = -ENOMEM;
            break;
        }
        for (const char *p = s[i].labels.buf; p < s[i].labels.buf + s[i].labels.len;) {
            RfProm__Label *l = malloc(sizeof(*l));
            if (!l) {
                rc = -ENOMEM;
                break;
            }
            rf_prom__label__init(l);
            l->name = (char *)p;
            p += strlen(p) + 1;
            l->value = (char *)p;
            p += strlen(p) + 1;
            ts->labels[ts->n_labels++] = l;
        }
        for (size_t k = 0; k < s[i].n && rc == 0; k++) {
            if (s[i].t[k] < q->start_timestamp_ms || s[i].t[k] > q->end_timestamp_ms)
                continue;
            RfProm__Sample *sm = malloc(sizeof(*sm));
            if (!sm) {
                rc = -ENOMEM;
                break;
            }
            rf_prom__sample__init(sm);
            sm->value = s[i].v[k];
            sm->timestamp = s[i].t[k];
            ts->samples[ts->n_samples++] = sm;
        }
    }
    /* Label text points into the index (valid while it is); samples are
     * copied, so the source's arrays can go now. */
    src.release(src.user, s, n);
    if (!qr->timeseries)
        rc = -ENOMEM;
    if (rc == -ENOMEM)
        snprintf(msg, msg_len, "out of memory");
    return rc;
}

int rf_promapi_remote_read(rf_series_index *ix, const uint8_t *body, size_t len, char **out,
                           size_t *out_len, char *msg, size_t msg_len)
{
    size_t raw_len;
    *out = NULL;
    *out_len = 0;
    if (snappy_uncompressed_length((const char *)body, len, &raw_len) != SNAPPY_OK) {
        snprintf(msg, msg_len, "body is not a snappy block");
        return 400;
    }
    if (raw_len > MAX_REQUEST) {
        snprintf(msg, msg_len, "ReadRequest of %zu bytes, more than the limit", raw_len);
        return 413;
    }
    char *raw = malloc(raw_len ? raw_len : 1);
    if (!raw || snappy_uncompress((const char *)body, len, raw, &raw_len) != SNAPPY_OK) {
        free(raw);
        snprintf(msg, msg_len, raw ? "snappy block does not decode" : "out of memory");
        return raw ? 400 : 500;
    }
    RfPromread__ReadRequest *req = rf_promread__read_request__unpack(NULL, raw_len, (uint8_t *)raw);
    free(raw);
    if (!req) {
        snprintf(msg, msg_len, "body is not a ReadRequest");
        return 400;
    }
    built b = {.results = calloc(req->n_queries ? req->n_queries : 1, sizeof(*b.results))};
    int status = b.results ? 200 : 500;
    for (size_t i = 0; status == 200 && i < req->n_queries; i++) {
        RfPromread__QueryResult *qr = calloc(1, sizeof(*qr));
        if (!qr) {
            status = 500;
            break;
        }
        rf_promread__query_result__init(qr);
        b.results[b.n_results++] = qr;
        int rc = one_query(ix, req->queries[i], qr, msg, msg_len);
        if (rc < 0)
            status = rc == -EINVAL ? 400 : 500;
    }
    rf_promread__read_request__free_unpacked(req, NULL);
    if (status == 200) {
        RfPromread__ReadResponse resp = RF_PROMREAD__READ_RESPONSE__INIT;
        resp.results = b.results;
        resp.n_results = b.n_results;
        size_t plen = rf_promread__read_response__get_packed_size(&resp);
        uint8_t *packed = malloc(plen ? plen : 1);
        size_t clen = snappy_max_compressed_length(plen);
        char *c = malloc(clen);
        if (packed && c) {
            rf_promread__read_response__pack(&resp, packed);
            if (snappy_compress((const char *)packed, plen, c, &clen) == SNAPPY_OK) {
                *out = c;
                *out_len = clen;
                c = NULL;
            }
        }
        free(packed);
        free(c);
        if (!*out) {
            snprintf(msg, msg_len, "out of memory");
            status = 500;
        }
    }
    built_free(&b);
    return status;
}
