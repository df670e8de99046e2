/* Batching by size and age. See batch.h. */
#include "stages/batch/batch.h"

#include "core/mem/bound.h"

#include <stdlib.h>
#include <string.h>

struct rf_batcher {
    rf_emitter out;
    uint32_t max_events;
    uint32_t len;
    int64_t interval_ns;
    int64_t first_ns; /* push time of the oldest pending event */
    rf_batcher_stats st;
    rf_event *buf;
};

rf_batcher *rf_batcher_new(const rf_batcher_config *cfg, rf_emitter out)
{
    uint32_t max = cfg && cfg->max_events ? cfg->max_events : RF_BATCH_DEFAULT_MAX_EVENTS;
    int64_t iv = cfg && cfg->interval_ns ? cfg->interval_ns : RF_BATCH_DEFAULT_INTERVAL_NS;
    if (max > RF_BATCH_MAX_EVENTS || iv < 0)
        return NULL;
    rf_batcher *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->buf = aligned_alloc(64, (size_t)max * sizeof(rf_event));
    if (!b->buf) {
        free(b);
        return NULL;
    }
    b->out = out;
    b->max_events = max;
    b->interval_ns = iv;
    return b;
}

void rf_batcher_free(rf_batcher *b)
{
    if (!b)
        return;
    rf_event_free_texts(b->buf, b->len);
    free(b->buf);
    free(b);
}

static void emit_batch(rf_batcher *b, int64_t now, uint64_t *reason)
{
    int64_t wait = now - b->first_ns;
    if (wait > b->st.max_wait_ns)
        b->st.max_wait_ns = wait;
    (*reason)++;
    b->st.batches++;
    uint32_t n = b->len;
    /* Reset before emitting so an emitter that pushes back into this batcher
     * (a loop in the wiring) sees a consistent, empty batch. */
    b->len = 0;
    rf_emit(&b->out, b->buf, n);
    /* The batch's own copies of string texts (keep_texts); the wiring never
     * pushes back into the batcher it emits from, so buf[0..n) is this batch. */
    rf_event_free_texts(b->buf, n);
}

/* A string value's text lives until the pipeline has delivered the batch it
 * came in (stages/pipeline), shorter than a batch waits here: the batcher
 * keeps a copy of its own (from the same budget, rf_event_text_new). When
 * none can be had the event goes on without its text, and a sink that needs
 * it counts it unsupported. */
static void keep_texts(rf_event *ev, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        /* The same events rf_event_free_texts frees. */
        if (!(ev[i].flags & RF_EVF_OWNS_AUX) || ev[i].kind == RF_KIND_PEER)
            continue;
        const rf_event_text *t = (const rf_event_text *)(uintptr_t)ev[i].aux;
        rf_event_text *c = t ? rf_event_text_new(t->len) : NULL;
        if (c)
            memcpy(c->text, t->text, t->len);
        else
            ev[i].flags &= (uint8_t)~RF_EVF_OWNS_AUX;
        ev[i].aux = (uint64_t)(uintptr_t)c;
    }
}

void rf_batcher_push(rf_batcher *b, const rf_event *events, uint32_t n, int64_t now)
{
    b->st.events += n;
    if (b->len && now - b->first_ns >= b->interval_ns)
        emit_batch(b, now, &b->st.flush_interval);
    while (n) {
        if (b->len == 0)
            b->first_ns = now;
        uint32_t room = b->max_events - b->len;
        uint32_t k = n < room ? n : room;
        memcpy(b->buf + b->len, events, (size_t)k * sizeof(rf_event));
        keep_texts(b->buf + b->len, k);
        b->len += k;
        events += k;
        n -= k;
        if (b->len == b->max_events)
            emit_batch(b, now, &b->st.flush_size);
    }
}

int rf_batcher_tick(rf_batcher *b, int64_t now)
{
    if (b->len && now - b->first_ns >= b->interval_ns) {
        emit_batch(b, now, &b->st.flush_interval);
        return 1;
    }
    return 0;
}

void rf_batcher_flush(rf_batcher *b, int64_t now)
{
    if (b->len)
        emit_batch(b, now, &b->st.flush_explicit);
}

int64_t rf_batcher_deadline(const rf_batcher *b)
{
    return b->len ? b->first_ns + b->interval_ns : INT64_MAX;
}

uint32_t rf_batcher_pending(const rf_batcher *b)
{
    return b->len;
}

void rf_batcher_stats_read(const rf_batcher *b, rf_batcher_stats *out)
{
    *out = b->st;
}

uint64_t rf_batcher_memory_bound(const rf_batcher_config *cfg)
{
    uint64_t max = cfg && cfg->max_events ? cfg->max_events : RF_BATCH_DEFAULT_MAX_EVENTS;
    return rf_mem_alloc_bound(sizeof(rf_batcher)) + rf_mem_alloc_bound(max * sizeof(rf_event) + 64);
}
