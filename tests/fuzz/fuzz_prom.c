/* libFuzzer target: the binary decoders behind the HTTP layer: remote_write
 * (ingest/http/prom.c: snappy, the protobuf read in place, the decoded-size
 * bound, rf_parse_series behind it) and OTLP metrics (otlp.c: protobuf-c,
 * the arena bound of decode.c, the escaping into line protocol and the
 * parser behind it).
 *
 * Input layout:
 *   byte 0   bit 2: OTLP; the rest is the body as sent: protobuf, or with
 *            bit 3 JSON (otlp_json.c, jansson).
 *            Else remote_write, and bit 0: the rest is the snappy block as
 *            sent (snappy itself is fuzzed, lying lengths included); else the
 *            rest is the protobuf message, compressed here so the decoder
 *            gets past snappy.
 *            bit 1: a small arena (64 KiB), so the decode bound trips.
 * Checked: the answer is 200 (OTLP), 204, 400, 413 or 415; every point the endpoint
 * reports was emitted; all memory charged to the body budget is back when the
 * connection is gone, but for the decoder's kept buffer (at most 1 MiB);
 * ASan checks every arena access. */
#include <snappy-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/http/http.h"

static uint64_t emitted;

static void count_flush(void *user, rf_event *ev, size_t n)
{
    (void)user;
    emitted += rf_parse_output_discard(ev, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const char *body = (const char *)data + 1;
    size_t blen = size - 1;
    char *packed = NULL;
    bool otlp = flags & 4;
    if (!otlp && !(flags & 1)) {
        size_t cl = snappy_max_compressed_length(blen);
        packed = malloc(cl ? cl : 1);
        if (snappy_compress(body, blen, packed, &cl) != SNAPPY_OK)
            abort();
        body = packed;
        blen = cl;
    }
    /* Built once per arena size: a context and a server per input would
     * spend the run in ASan's poisoning of their megabytes. */
    static rf_event batch[64];
    static rf_parse_ctx *ctx;
    static rf_http_server *srv[2];
    static rf_http_ingest ing[2];
    rf_err err;
    if (!ctx) {
        rf_parse_config cfg = {.series_cache_slots = 64, .announced_slots = 64};
        ctx = rf_parse_ctx_new(&cfg, batch, 64, count_flush, NULL, &err);
        for (int i = 0; i < 2; i++) {
            srv[i] = rf_http_server_new(NULL, &err);
            ing[i] = (rf_http_ingest){.parse = ctx};
            if (!ctx || !srv[i] || rf_http_ingest_add_prom(srv[i], &ing[i], i ? 65536 : 0, &err) ||
                rf_http_ingest_add_otlp(srv[i], &ing[i], &err))
                abort();
        }
    }
    int which = (flags & 2) ? 1 : 0;
    rf_http_server *s = srv[which];
    uint64_t points0 = rf_http_counter(s, RF_HTTP_C_POINTS);
    rf_http_conn *c = rf_http_conn_new(s, "", &err);
    char head[160];
    int hn = otlp ? snprintf(head, sizeof(head),
                             "POST /v1/metrics HTTP/1.1\r\nContent-Type: application/%s\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             flags & 8 ? "json" : "x-protobuf", blen)
                  : snprintf(head, sizeof(head),
                             "POST /api/v1/write HTTP/1.1\r\nContent-Encoding: snappy\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             blen);
    emitted = 0;
    rf_http_conn_feed(c, head, (size_t)hn, 1, 1);
    rf_http_conn_feed(c, body, blen, 1, 1);
    rf_parse_flush(ctx);
    const char *o;
    size_t ol;
    rf_http_conn_output(c, &o, &ol);
    if (ol < 12 || (memcmp(o, "HTTP/1.1 204", 12) && memcmp(o, "HTTP/1.1 200", 12) &&
                    memcmp(o, "HTTP/1.1 400", 12) && memcmp(o, "HTTP/1.1 413", 12) &&
                    memcmp(o, "HTTP/1.1 415", 12)))
        abort();
    if (rf_http_counter(s, RF_HTTP_C_POINTS) - points0 != emitted)
        abort();
    rf_http_conn_free(c);
    /* What stays charged is the decoder's kept snappy buffer (<= 1 MiB). */
    if (rf_http_server_body_in_use(s) > (1u << 20))
        abort();
    free(packed);
    return 0;
}
