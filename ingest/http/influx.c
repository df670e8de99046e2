/* InfluxDB v1 and v2 write endpoints and /ping (contract in http.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ingest/http/http.h"

/* InfluxDB 1.8 is the version whose /write and /ping these follow; clients
 * (Telegraf, influxdb-python) read the header to pick the protocol. */
#define RF_INFLUX_VERSION "1.8.10"

static bool parse_precision(const char *p, bool v2, enum rf_ts_precision *out)
{
    static const struct {
        const char *name;
        enum rf_ts_precision prec;
        bool v1_only;
    } names[] = {
        {"ns", RF_PRECISION_NS, false}, {"n", RF_PRECISION_NS, true},
        {"us", RF_PRECISION_US, false}, {"u", RF_PRECISION_US, true},
        {"ms", RF_PRECISION_MS, false}, {"s", RF_PRECISION_S, false},
        {"m", RF_PRECISION_M, true},    {"h", RF_PRECISION_H, true},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(p, names[i].name) && !(v2 && names[i].v1_only)) {
            *out = names[i].prec;
            return true;
        }
    return false;
}

/* v1 answers {"error":...}; v2 {"code":"invalid","message":...}. */
static void fail(rf_http_response *resp, bool v2, int status, const char *code, const char *msg)
{
    rf_http_resp_error(resp, status, "%s", msg);
    if (!v2)
        return;
    char tail[RF_HTTP_RESP_BODY_MAX];
    static const char pre1[] = "{\"error\":";
    size_t tl = resp->body_len - (sizeof(pre1) - 1);
    memcpy(tail, resp->body + sizeof(pre1) - 1, tl);
    int n = snprintf(resp->body, sizeof(resp->body), "{\"code\":\"%s\",\"message\":", code);
    if ((size_t)n + tl > sizeof(resp->body)) {
        rf_http_resp_error(resp, status, "%s", code); /* cannot happen with our messages */
        return;
    }
    memcpy(resp->body + n, tail, tl);
    resp->body_len = (size_t)n + tl;
}

int rf_http_ingest_sync_query(rf_http_ingest *in, const rf_http_request *req,
                              rf_http_response *resp)
{
    in->sync_wanted = false;
    char v[8];
    int rc = rf_http_query_get(req, "sync", v, sizeof(v));
    if (rc == -ENOENT || (rc >= 0 && (!strcmp(v, "false") || !strcmp(v, "0"))))
        return 0;
    if (rc < 0 || (strcmp(v, "true") != 0 && strcmp(v, "1") != 0)) {
        rf_http_resp_error(resp, 400, "sync must be true or false");
        resp->reject = RF_HTTP_REJ_BAD_PARAMETER;
        return -1;
    }
    if (!in->sync) {
        rf_http_resp_error(resp, 400,
                           "sync=true is not offered here: it needs storage enabled and a "
                           "listener of class standard");
        resp->reject = RF_HTTP_REJ_BAD_PARAMETER;
        return -1;
    }
    in->sync_wanted = true;
    return 0;
}

void rf_http_ingest_sync_park(rf_http_ingest *in, rf_http_response *resp)
{
    if (!in->sync_wanted)
        return;
    in->sync_wanted = false;
    /* Refused whole: nothing was taken, nothing to wait for. */
    if (resp->reject >= 0 || resp->status >= 500 ||
        (resp->status >= 300 && !(resp->status == 400 && resp->points)))
        return;
    resp->park = true;
}

static void write_common(rf_http_ingest *in, const rf_http_request *req, rf_http_response *resp,
                         bool v2)
{
    if (rf_http_ingest_sync_query(in, req, resp) < 0)
        return;
    char db[RF_PARSE_EXTRA_TAG_MAX + 1], prec[8];
    int rc = rf_http_query_get(req, v2 ? "bucket" : "db", db, sizeof(db));
    if (rc == -ENOENT || rc == 0) {
        fail(resp, v2, 400, "invalid", v2 ? "bucket is required" : "database is required");
        resp->reject = RF_HTTP_REJ_BAD_PARAMETER;
        return;
    }
    if (rc < 0) {
        fail(resp, v2, 400, "invalid", v2 ? "bad bucket" : "bad database name");
        resp->reject = RF_HTTP_REJ_BAD_PARAMETER;
        return;
    }
    enum rf_ts_precision p = RF_PRECISION_NS;
    rc = rf_http_query_get(req, "precision", prec, sizeof(prec));
    if ((rc < 0 && rc != -ENOENT) || (rc > 0 && !parse_precision(prec, v2, &p))) {
        fail(resp, v2, 400, "invalid", "invalid precision");
        resp->reject = RF_HTTP_REJ_BAD_PARAMETER;
        return;
    }
    if (req->content_encoding) {
        fail(resp, v2, 415, "unsupported media type",
             "unsupported Content-Encoding (gzip or none)");
        resp->reject = RF_HTTP_REJ_UNSUPPORTED_ENCODING;
        return;
    }
    if (in->busy && in->busy(in->busy_user)) {
        fail(resp, v2, 503, "unavailable", "engine is shedding load; retry");
        rf_http_resp_header(resp, "Retry-After: 1");
        resp->reject = RF_HTTP_REJ_BUSY;
        return;
    }
    if (rf_parse_set_extra_tag(in->parse, in->db_tag ? in->db_tag : "db", db)) {
        fail(resp, v2, 400, "invalid", "database name is not valid UTF-8 or too long");
        resp->reject = RF_HTTP_REJ_BAD_PARAMETER;
        return;
    }
    rf_parse_set_precision(in->parse, p);
    memset(&in->first, 0, sizeof(in->first));
    rf_parse_capture_first_reject(in->parse, &in->first);
    uint64_t ev0 = rf_parse_counter(in->parse, RF_PC_EVENTS);
    rf_recv_info rx = {.wall_ns = req->wall_ns, .mono_ns = req->mono_ns, .source_addr = req->peer};
    size_t rejected = rf_parse_influx(in->parse, &rx, (const char *)req->body, req->body_len);
    rf_parse_flush(in->parse);
    rf_parse_capture_first_reject(in->parse, NULL);
    rf_parse_set_extra_tag(in->parse, NULL, NULL);
    rf_parse_set_precision(in->parse, in->precision);
    resp->points = rf_parse_counter(in->parse, RF_PC_EVENTS) - ev0;
    if (rejected == 0)
        return; /* 204 */
    char msg[RF_HTTP_RESP_BODY_MAX];
    snprintf(msg, sizeof(msg), "%sunable to parse '%.*s': %s; dropped=%zu",
             resp->points ? "partial write: " : "", (int)in->first.excerpt_len, in->first.excerpt,
             rf_reject_reason_name((enum rf_reject_reason)in->first.reason), rejected);
    fail(resp, v2, 400, "invalid", msg);
}

static void on_write_v1(void *user, const rf_http_request *req, rf_http_response *resp)
{
    write_common(user, req, resp, false);
    rf_http_ingest_sync_park(user, resp);
}

static void on_write_v2(void *user, const rf_http_request *req, rf_http_response *resp)
{
    write_common(user, req, resp, true);
    rf_http_ingest_sync_park(user, resp);
}

static void on_ping(void *user, const rf_http_request *req, rf_http_response *resp)
{
    rf_http_ingest *in = user;
    const char *v = in->version ? in->version : RF_INFLUX_VERSION;
    rf_http_resp_header(resp, "X-Influxdb-Version: %s", v);
    rf_http_resp_header(resp, "X-Influxdb-Build: OSS");
    char verbose[8];
    if (rf_http_query_get(req, "verbose", verbose, sizeof(verbose)) > 0 &&
        strcmp(verbose, "false") != 0) {
        resp->status = 200;
        resp->content_type = "application/json";
        resp->body_len =
            (size_t)snprintf(resp->body, sizeof(resp->body), "{\"version\":\"%s\"}", v);
    }
}

int rf_http_ingest_add_influx(rf_http_server *s, rf_http_ingest *in, rf_err *err)
{
    if (!in || !in->parse)
        return rf_err_set(err, EINVAL, "http: the InfluxDB endpoints need a parse context");
    int rc;
    if ((rc = rf_http_server_route(s, "/write", RF_HTTP_POST, "influx_write", on_write_v1, in,
                                   err)) < 0 ||
        (rc = rf_http_server_route(s, "/api/v2/write", RF_HTTP_POST, "influx_v2_write", on_write_v2,
                                   in, err)) < 0 ||
        (rc = rf_http_server_route(s, "/ping", RF_HTTP_GET | RF_HTTP_HEAD, "ping", on_ping, in,
                                   err)) < 0)
        return rc;
    return 0;
}
