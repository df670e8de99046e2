/* Prometheus remote_write 1.0 receiver (contract in http.h): snappy block ->
 * protobuf WriteRequest (protobuf-c, code generated from prom_remote.proto at
 * build time) -> line-protocol text -> the worker's parse context.
 *
 * Why through text: the parse context owns series identity (canonical keys,
 * the raw-bytes cache, announcements, validation, the reject log). Feeding it
 * "name,label=value value=<v> <ms>" lines keeps one definition of all that;
 * a series' prefix is written once per TimeSeries and hits the raw cache for
 * every sample after the first. */
#include <errno.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http_pvt.h"
#include "ingest/http/prom_remote.pb-c.h"

static const char *const counter_names[RF_PROM_C__COUNT] = {
    [RF_PROM_C_REQUESTS] = "requests",   [RF_PROM_C_SERIES] = "series",
    [RF_PROM_C_SAMPLES] = "samples",     [RF_PROM_C_STALE] = "stale_markers",
    [RF_PROM_C_EXEMPLARS] = "exemplars", [RF_PROM_C_METADATA] = "metadata",
};

const char *rf_prom_counter_name(enum rf_prom_counter_id id)
{
    return (unsigned)id < RF_PROM_C__COUNT ? counter_names[id] : "unknown";
}

uint64_t rf_http_ingest_prom_counter(const rf_http_ingest *in, enum rf_prom_counter_id id)
{
    if (!in->dec || (unsigned)id >= RF_PROM_C__COUNT)
        return 0;
    return atomic_load_explicit(&in->dec->prom[id], memory_order_relaxed);
}

/* ---- text --------------------------------------------------------------------- */

/* "name,k=v,..." of a series into ps->prefix; its length, or 0 when it cannot
 * be written (no __name__, a '\n', too long). */
static size_t build_prefix(rf_decode_state *ps, const RfProm__TimeSeries *ts)
{
    const char *name = NULL;
    for (size_t i = 0; i < ts->n_labels; i++)
        if (!strcmp(ts->labels[i]->name, "__name__"))
            name = ts->labels[i]->value;
    if (!name || !*name)
        return 0;
    size_t o = 0;
    if (!rf_lp_put_escaped(ps->prefix, &o, sizeof(ps->prefix), name, false))
        return 0;
    for (size_t i = 0; i < ts->n_labels; i++) {
        const RfProm__Label *l = ts->labels[i];
        if (!strcmp(l->name, "__name__") || !*l->value)
            continue;
        if (o + 1 > sizeof(ps->prefix))
            return 0;
        ps->prefix[o++] = ',';
        if (!rf_lp_put_escaped(ps->prefix, &o, sizeof(ps->prefix), l->name, true) ||
            o + 1 > sizeof(ps->prefix))
            return 0;
        ps->prefix[o++] = '=';
        if (!rf_lp_put_escaped(ps->prefix, &o, sizeof(ps->prefix), l->value, true))
            return 0;
    }
    return o;
}

#define STALE_NAN_BITS 0x7ff0000000000002ull

static void on_write(void *user, const rf_http_request *req, rf_http_response *resp)
{
    rf_decode_state *ps = user;
    rf_http_ingest *in = ps->in;
    const rf_http_limits *lim = rf_http_server_limits(ps->srv);
    if (req->content_encoding &&
        !(req->content_encoding_len == 6 && !strncasecmp(req->content_encoding, "snappy", 6))) {
        rf_http_resp_error(resp, 415, "remote_write bodies are snappy blocks");
        resp->reject = RF_HTTP_REJ_UNSUPPORTED_ENCODING;
        return;
    }
    if (in->busy && in->busy(in->busy_user)) {
        rf_http_resp_error(resp, 503, "engine is shedding load; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        return;
    }
    size_t raw_len;
    if (snappy_uncompressed_length((const char *)req->body, req->body_len, &raw_len) != SNAPPY_OK) {
        rf_http_resp_error(resp, 400, "body is not a snappy block");
        resp->reject = RF_HTTP_REJ_BAD_SNAPPY;
        return;
    }
    /* The header's length is the client's word: checked before allocating. */
    if (raw_len > lim->max_decoded) {
        rf_http_resp_error(resp, 413, "snappy block decodes to %zu bytes, more than the limit",
                           raw_len);
        resp->reject = RF_HTTP_REJ_DECODED_TOO_LARGE;
        return;
    }
    int rc = rf_http_buf_reserve(ps->srv, &ps->raw, raw_len ? raw_len : 1, lim->max_decoded);
    if (rc) {
        rf_http_resp_error(resp, 503, "too many request bodies in progress; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        return;
    }
    size_t got = ps->raw.cap;
    if (snappy_uncompress((const char *)req->body, req->body_len, (char *)ps->raw.p, &got) !=
            SNAPPY_OK ||
        got != raw_len) {
        rf_http_resp_error(resp, 400, "snappy block does not decode (corrupt, or its length lies)");
        resp->reject = RF_HTTP_REJ_BAD_SNAPPY;
        goto out;
    }
    ProtobufCAllocator alloc = rf_decode_allocator(ps);
    RfProm__WriteRequest *wr = rf_prom__write_request__unpack(&alloc, raw_len, ps->raw.p);
    if (!wr) {
        if (ps->arena_full) {
            rf_http_resp_error(resp, 413, "WriteRequest needs more than %llu bytes to decode",
                               (unsigned long long)ps->arena_max);
            resp->reject = RF_HTTP_REJ_DECODE_LIMIT;
        } else {
            rf_http_resp_error(resp, 400, "body is not a protobuf WriteRequest");
            resp->reject = RF_HTTP_REJ_BAD_PROTOBUF;
        }
        goto out;
    }
    rf_stats_add(&ps->prom[RF_PROM_C_REQUESTS], 1);
    rf_stats_add(&ps->prom[RF_PROM_C_SERIES], wr->n_timeseries);
    rf_stats_add(&ps->prom[RF_PROM_C_METADATA], wr->n_metadata);

    rf_parse_set_precision(in->parse, RF_PRECISION_MS);
    memset(&in->first, 0, sizeof(in->first));
    rf_parse_capture_first_reject(in->parse, &in->first);
    uint64_t ev0 = rf_parse_counter(in->parse, RF_PC_EVENTS);
    rf_recv_info rx = {.wall_ns = req->wall_ns, .mono_ns = req->mono_ns, .source_addr = req->peer};
    size_t rejected = 0;
    uint64_t samples = 0, stale = 0, exemplars = 0;
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const RfProm__TimeSeries *ts = wr->timeseries[i];
        samples += ts->n_samples;
        exemplars += ts->n_exemplars;
        if (!ts->n_samples)
            continue;
        size_t pl = build_prefix(ps, ts);
        if (!pl) {
            /* Name the series by its first label in the reject log. */
            const char *what = ts->n_labels ? ts->labels[0]->value : "(no labels)";
            for (size_t k = 0; k < ts->n_samples; k++)
                rf_parse_reject_external(in->parse, &rx, RF_REJ_SYNTAX, what, strlen(what));
            rejected += ts->n_samples;
            continue;
        }
        for (size_t k = 0; k < ts->n_samples; k++) {
            const RfProm__Sample *sm = ts->samples[k];
            uint64_t bits;
            memcpy(&bits, &sm->value, sizeof(bits));
            if (bits == STALE_NAN_BITS) {
                stale++;
                continue;
            }
            if (!isfinite(sm->value)) {
                rf_parse_reject_external(in->parse, &rx, RF_REJ_OUT_OF_RANGE, ps->prefix, pl);
                rejected++;
                continue;
            }
            /* prefix + " value=" + 32 + " " + 24 + "\n" */
            if (ps->text_len + pl + 72 > RF_DECODE_TEXT_CAP)
                rf_decode_text_flush(ps, &rx, &rejected);
            char *t = ps->text + ps->text_len;
            memcpy(t, ps->prefix, pl);
            size_t o = pl;
            memcpy(t + o, " value=", 7);
            o += 7;
            o += rf_lp_put_value(t + o, sm->value);
            t[o++] = ' ';
            o += rf_lp_put_i64(t + o, sm->timestamp);
            t[o++] = '\n';
            ps->text_len += o;
        }
    }
    rf_decode_text_flush(ps, &rx, &rejected);
    rf_parse_flush(in->parse);
    rf_parse_capture_first_reject(in->parse, NULL);
    rf_parse_set_precision(in->parse, in->precision);
    rf_stats_add(&ps->prom[RF_PROM_C_SAMPLES], samples);
    rf_stats_add(&ps->prom[RF_PROM_C_STALE], stale);
    rf_stats_add(&ps->prom[RF_PROM_C_EXEMPLARS], exemplars);
    resp->points = rf_parse_counter(in->parse, RF_PC_EVENTS) - ev0;
    if (rejected)
        rf_http_resp_error(
            resp, 400, "%srefused sample of '%.*s': %s; dropped=%zu",
            resp->points ? "partial write: " : "", (int)in->first.excerpt_len, in->first.excerpt,
            rf_reject_reason_name((enum rf_reject_reason)in->first.reason), rejected);
out:
    rf_decode_arena_reset(ps);
    if (ps->raw.cap > RF_DECODE_KEEP)
        rf_http_buf_release(ps->srv, &ps->raw);
}

int rf_http_ingest_add_prom(rf_http_server *s, rf_http_ingest *in, uint64_t arena_max, rf_err *err)
{
    rf_decode_state *ps = rf_decode_state_get(s, in, arena_max, err);
    if (!ps)
        return -(err && err->code ? err->code : ENOMEM);
    int rc =
        rf_http_server_route(s, "/api/v1/write", RF_HTTP_POST, "prom_write", on_write, ps, err);
    return rc < 0 ? rc : 0;
}
