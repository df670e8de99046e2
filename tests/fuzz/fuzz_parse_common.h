/* Shared body of the parser fuzz targets.
 *
 * Each input is parsed twice by one long-lived context whose caches are tiny
 * (so eviction paths run constantly). Checked on every input:
 *   - no crash, leak or UB (ASan/UBSan; every series key handed out is freed);
 *   - every SERIES_DEF's text hashes to its series_id and precedes, in the
 *     output, the first data event of that id for this context;
 *   - the second pass (raw-cache hits) yields exactly the data events of the
 *     first pass (miss path): the cache never changes an id or a value;
 *   - the rejected-line count is the same both times and matches the counters. */
#ifndef RF_FUZZ_PARSE_COMMON_H
#define RF_FUZZ_PARSE_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/protocol/protocol.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define FUZZ_MAX_EVENTS 65536

typedef struct fuzz_sink {
    rf_event ev[FUZZ_MAX_EVENTS];
    size_t n;
} fuzz_sink;

static fuzz_sink fuzz_out;
static rf_event fuzz_batch[7]; /* odd size: batches end mid-line */

/* Graphite templates for the next context (fuzz_graphite sets them for half
 * of its inputs), or NULL. */
static const struct rf_graphite_templates *fuzz_templates;

static void fuzz_flush(void *user, rf_event *events, size_t n)
{
    fuzz_sink *s = user;
    for (size_t i = 0; i < n; i++) {
        const rf_event *e = &events[i];
        if (e->kind == RF_KIND_SERIES_DEF) {
            rf_series_key *k = (rf_series_key *)(uintptr_t)e->aux;
            if (!k || k->series_id != e->series_id ||
                rf_series_id_of_key(k->text, k->len) != e->series_id || strlen(k->text) != k->len ||
                k->field_offset > k->len || k->measurement_len >= k->field_offset)
                abort();
            rf_series_key_free(k);
            continue;
        }
        if (e->series_id == 0 || e->kind >= RF_KIND__COUNT || e->value_type > RF_VALUE_STRING)
            abort();
        rf_event copy = *e;
        if (e->flags & RF_EVF_OWNS_AUX) {
            /* A string's text: its hash is the value, and it ends here. */
            const rf_event_text *t = (const rf_event_text *)(uintptr_t)e->aux;
            if (e->value_type != RF_VALUE_STRING || !t || t->text[t->len] != '\0' ||
                XXH3_64bits(t->text, t->len) != e->value.u64)
                abort();
            rf_event_free_texts(e, 1);
            copy.aux = 0; /* the two passes' blocks differ only in where they were */
        }
        if (s->n < FUZZ_MAX_EVENTS)
            s->ev[s->n++] = copy;
    }
}

/* collectd's users for the next context (fuzz_collectd.c sets it), or NULL. */
static rf_collectd_auth *fuzz_collectd_auth;

/* A fresh context per input: field types are claimed at first write and the
 * claims outlive the input (as in a daemon), so a context kept across inputs
 * would make one input's two passes depend on what came before it. */
static rf_parse_ctx *fuzz_ctx(void)
{
    rf_parse_ctx *ctx = NULL;
    {
        rf_parse_config cfg = {
            .source_id = 1,
            .precision = RF_PRECISION_NS,
            .ts_past_ns = 0,
            .ts_future_ns = 0,
            .max_line_len = 4096,
            .max_tags = 16,
            .max_fields = 64,
            .max_key_len = 512,
            .series_cache_slots = 64,
            .announced_slots = 64,
            .reject_log_slots = 4,
            /* A short id tag, so that random input meets it: the code that
             * cuts it out of the series runs under the fuzzers too. */
            .corr_id_tag = "id",
            .graphite_templates = fuzz_templates,
            .collectd_auth = fuzz_collectd_auth,
        };
        ctx = rf_parse_ctx_new(&cfg, fuzz_batch, sizeof(fuzz_batch) / sizeof(fuzz_batch[0]),
                               fuzz_flush, &fuzz_out, NULL);
        if (!ctx)
            abort();
    }
    return ctx;
}

typedef size_t (*fuzz_parse_fn)(rf_parse_ctx *, const rf_recv_info *, const char *, size_t);

static rf_event fuzz_first[FUZZ_MAX_EVENTS];

static int fuzz_parse_twice(fuzz_parse_fn fn, const uint8_t *data, size_t size)
{
    rf_parse_ctx *ctx = fuzz_ctx();
    rf_recv_info rx = {.wall_ns = 1700000000000000000LL, .mono_ns = 42, .source_addr = "fuzz"};
    uint64_t rej0 = rf_parse_counter(ctx, RF_PC_LINES_REJECTED);

    fuzz_out.n = 0;
    size_t r1 = fn(ctx, &rx, (const char *)data, size);
    rf_parse_flush(ctx);
    size_t n1 = fuzz_out.n;
    memcpy(fuzz_first, fuzz_out.ev, n1 * sizeof(rf_event));

    fuzz_out.n = 0;
    size_t r2 = fn(ctx, &rx, (const char *)data, size);
    rf_parse_flush(ctx);
    if (r1 != r2 || n1 != fuzz_out.n || memcmp(fuzz_first, fuzz_out.ev, n1 * sizeof(rf_event)))
        abort();
    if (rf_parse_counter(ctx, RF_PC_LINES_REJECTED) - rej0 != r1 + r2)
        abort();
    rf_reject_entry log[4];
    size_t nl = rf_parse_reject_log_read(ctx, log, 4);
    for (size_t i = 0; i < nl; i++)
        if (log[i].excerpt_len > RF_REJECT_EXCERPT_MAX || log[i].reason >= RF_REJ__COUNT)
            abort();
    rf_parse_ctx_free(ctx);
    return 0;
}

#endif
