/* Internals of ingest/http shared between its files. Do not include from
 * outside this folder: the contract is http.h. */
#ifndef RF_INGEST_HTTP_PVT_H
#define RF_INGEST_HTTP_PVT_H

#include <http_parser.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <libdeflate.h>

#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "core/stats/stats.h"

/* A growable byte buffer whose capacity is charged to the server's budget. */
typedef struct rf_http_buf {
    uint8_t *p;
    size_t len, cap;
} rf_http_buf;

/* Grows b to hold at least `need` bytes (doubling, capped at `max`), charging
 * the growth to the server's budget. 0, -E2BIG (need > max) or -EBUSY (budget
 * spent) or -ENOMEM. */
int rf_http_buf_reserve(rf_http_server *s, rf_http_buf *b, size_t need, size_t max);
/* Frees b's memory and returns it to the budget. */
void rf_http_buf_release(rf_http_server *s, rf_http_buf *b);

/* Inflates a gzip body (several members allowed) from in into out (reset
 * first), at most max bytes. *inflater is the connection's libdeflate
 * decompressor, allocated on first use (libdeflate_free_decompressor with
 * the connection). 0, -E2BIG (larger than max), -EBADMSG (not gzip /
 * corrupt / truncated), -EBUSY, -ENOMEM. */
struct libdeflate_decompressor;
int rf_http_gunzip(rf_http_server *s, struct libdeflate_decompressor **inflater, const uint8_t *in,
                   size_t in_len, rf_http_buf *out, size_t max);

/* ---- the binary decoders' shared state (decode.c) -----------------------------
 * remote_write and OTLP decode protobuf into an arena and turn what they
 * decoded into line-protocol text for the parse context; they run on the
 * owning thread one request at a time, so one state serves both. */

/* Line text handed to the parser per call: large enough that the call
 * overhead vanishes, small enough to stay in L2. */
#define RF_DECODE_TEXT_CAP (64u << 10)
/* A series prefix longer than this cannot be a valid key (max_key_len is at
 * most 65535 canonical bytes); it is refused without being written. */
#define RF_DECODE_PREFIX_MAX (RF_DECODE_TEXT_CAP / 2)
/* Arena and decoded-block memory kept between requests. */
#define RF_DECODE_KEEP (1u << 20)

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
} arena_chunk;

typedef struct rf_decode_state {
    rf_http_server *srv;
    rf_http_ingest *in;
    rf_http_buf raw; /* a decoded snappy block */
    arena_chunk *chunks;
    uint64_t arena_total, arena_max;
    bool arena_full;
    char *text;
    size_t text_len;
    char prefix[RF_DECODE_PREFIX_MAX];
    struct prom_series *series; /* remote_write's labels of one series (prom.c) */
    _Atomic uint64_t prom[RF_PROM_C__COUNT];
    _Atomic uint64_t otlp[RF_OTLP_C__COUNT];
    rf_listen_otlp_config otlp_cfg; /* rf_http_ingest_set_otlp; zero: the defaults */
} rf_decode_state;

/* Buckets of one OTLP histogram point at most (besides +Inf): an explicit
 * histogram with more is refused, an exponential one is lowered in scale
 * until it fits. 160 is the SDKs' default exponential max_size; with count
 * and sum the line stays under the parser's default max_fields (256). */
#define RF_OTLP_BUCKETS_MAX 160u

/* The ingest's state, created by the first endpoint that needs it. */
rf_decode_state *rf_decode_state_get(rf_http_server *s, rf_http_ingest *in, uint64_t arena_max,
                                     rf_err *err);
/* protobuf-c allocations from the bounded arena; reset frees them all. */
ProtobufCAllocator rf_decode_allocator(rf_decode_state *ps);
void rf_decode_arena_reset(rf_decode_state *ps);
/* Parses the text gathered so far; adds the refused lines to *rejected. */
void rf_decode_text_flush(rf_decode_state *ps, const rf_recv_info *rx, size_t *rejected);

/* Appends NUL-terminated s escaped for line protocol (measurement: ',' ' ';
 * tag: also '='; '\\' doubled). False when it does not fit or holds a '\n'. */
bool rf_lp_put_escaped(char *out, size_t *o, size_t cap, const char *s, bool tag);
size_t rf_lp_put_i64(char *out, int64_t v);  /* digits, at most 20 bytes */
size_t rf_lp_put_value(char *out, double v); /* a finite double, at most 32 bytes */

/* OTLP JSON (otlp_json.c) into the generated structs, in the arena; NULL
 * with err filled (EBADMSG: the body is not the message; ENOMEM: the arena
 * is spent, ps->arena_full). The caller bounds len by RF_OTLP_JSON_MAX: jansson
 * builds its own tree first, a few times the text. */
#define RF_OTLP_JSON_MAX (8u << 20)
struct RfOtlp__ExportMetricsServiceRequest;
struct RfOtlp__ExportMetricsServiceRequest *rf_otlp_from_json(rf_decode_state *ps,
                                                              const uint8_t *body, size_t len,
                                                              rf_err *err);

/* ---- listeners' TLS and credentials (security.c) ----------------------------- */
typedef struct rf_http_security rf_http_security;
struct rf_tls_server;
/* The entry of a listener name, created when absent (NULL: no name, or the
 * table is full). Never freed while the process runs. */
rf_http_security *rf_http_security_get(const char *name);
/* What is in force now (NULL: plain / no authentication). */
struct rf_tls_server *rf_http_security_tls(rf_http_security *e);
struct rf_auth *rf_http_security_auth(void *entry); /* fits rf_http_auth_fn */

#endif
