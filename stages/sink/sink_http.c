/* The worker's side of the HTTP forwarders (prom_remote_write,
 * influx_http): rf_sink_write formats line protocol into the sink's queue
 * as for lp_tcp; here the queued lines go to the sender thread
 * (stages/forward) in chunks. No I/O, no lock: a chunk moves through an
 * SPSC ring; when none is free the lines wait in the queue (bounded: what
 * does not fit is counted queue_full by rf_sink_write). */
#include "stages/sink/sink_pvt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/stats/stats.h"
#include "core/worker/worker.h"

static uint64_t blocked_ns(void *ctx)
{
    const rf_sink *s = ctx;
    /* Relaxed: pairs with the worker's relaxed ST_ADD; one counter, read whole. */
    return __atomic_load_n(&s->st.blocked_ns, __ATOMIC_RELAXED);
}

int rf_sink_http_open(rf_sink *s, const rf_sink_config *cfg, rf_err *err)
{
    rf_fwd_config fc = cfg->http;
    char path[4096];
    if (fc.buffer == RF_FWD_BUFFER_DISK && fc.buffer_path) {
        /* One buffer per worker instance: each has its own sender. */
        if (snprintf(path, sizeof(path), "%s/worker-%u", fc.buffer_path, cfg->instance) >=
            (int)sizeof(path))
            return rf_err_set(err, ENAMETOOLONG, "sink %s: buffer.path too long", s->name);
        fc.buffer_path = path;
    }
    if (!fc.backoff_base_ns)
        fc.backoff_base_ns = cfg->backoff_base_ns;
    if (!fc.backoff_max_ns)
        fc.backoff_max_ns = cfg->backoff_max_ns;
    fc.instance = cfg->instance;
    if (!fc.jitter_seed)
        fc.jitter_seed = cfg->jitter_seed;
    s->max_delay = fc.max_delay_ns > 0 ? fc.max_delay_ns : 50 * 1000000ll;
    s->block = fc.policy == RF_FWD_BLOCK;
    s->blocked_metric = -1;
    int rc = rf_fwd_new(&fc, s->name, &s->fwd, err);
    if (rc == 0) {
        /* Beside the sender's ringflow_forward_* series, same labels. A
         * full registry costs the metric only. */
        char labels[160];
        snprintf(labels, sizeof(labels), "sink=\"%s\",worker=\"%u\"", s->name, cfg->instance);
        s->blocked_metric = rf_stats_register_fn_ns(
            RF_METRIC_COUNTER, "ringflow_forward_blocked_seconds",
            "Time the worker waited for room in the forward buffer (policy block).", labels,
            blocked_ns, s);
    }
    return rc;
}

int rf_sink_http_flush(rf_sink *s, int64_t now_ns, bool force)
{
    if (s->tail == s->head) {
        s->pending_since = 0;
        return 0;
    }
    if (!s->pending_since)
        s->pending_since = now_ns;
    if (!force && s->tail - s->head < RF_FWD_CHUNK_BYTES / 2 &&
        now_ns - s->pending_since < s->max_delay)
        return 0; /* let a chunk fill: fewer, larger entries */
    ST_ADD(s, flushes, 1);
    while (s->tail > s->head) {
        /* The sender counts the lines into a local: s->st is read by other
         * threads, its fields only through ST_ADD. */
        uint64_t lines = 0;
        long k = rf_fwd_submit(s->fwd, s->buf + s->head, s->tail - s->head, &lines);
        ST_ADD(s, lines_out, lines);
        if (k == -E2BIG) {
            /* A line longer than a chunk cannot travel: drop it, counted. */
            char *nl = memchr(s->buf + s->head, '\n', s->tail - s->head);
            sink_buf_consumed(s, nl ? (uint32_t)(nl - (s->buf + s->head)) + 1 : s->tail - s->head);
            ST_ADD(s, drop_oversize, 1);
            continue;
        }
        if (k <= 0)
            break; /* no free chunk: the sender is behind; try on the next flush */
        ST_ADD(s, bytes_out, (uint64_t)k);
        sink_buf_consumed(s, (uint32_t)k);
    }
    s->pending_since = s->tail > s->head ? now_ns : 0;
    return 0;
}

bool rf_sink_http_wait_room(rf_sink *s)
{
    uint32_t queued = s->tail - s->head;
    rf_sink_http_flush(s, rf_clock_mono_ns(), true);
    if (s->tail - s->head < queued) {
        sink_buf_compact(s);
        return true;
    }
    if (rf_worker_current_stop_requested())
        return false;
    /* The sender frees a chunk when the receiver acknowledges a request:
     * polling every millisecond costs nothing next to that, and only here. */
    int64_t t0 = rf_clock_mono_ns();
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
    ST_ADD(s, blocked_ns, (uint64_t)(rf_clock_mono_ns() - t0));
    return true;
}

void rf_sink_http_close(rf_sink *s)
{
    /* Whatever is still queued goes to the sender, which then delivers it
     * (memory buffer, within its grace) or keeps it on disk. */
    for (int i = 0; i < 64 && s->tail > s->head; i++) {
        rf_sink_http_flush(s, 0, true);
        if (s->tail > s->head) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    rf_sink_discard_pending(s); /* counted as disconnected */
    if (s->blocked_metric >= 0)
        rf_stats_unregister(s->blocked_metric);
    s->blocked_metric = -1;
    rf_fwd_free(s->fwd);
    s->fwd = NULL;
}
