/* One worker's shard: ingest side and processing chain. */
#include "daemon/shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "stages/series/series_table.h"

/* Series a shard accepts before refusing new ones (cardinality limit). */
#define RF_SHARD_DEFAULT_MAX_SERIES (1u << 20)
#define RF_SHARD_TICK_NS (10 * RF_NS_PER_MS)

struct rf_shard {
    uint32_t index, workers;
    rf_shard_dispatch_fn dispatch;
    void *dispatch_ctx;
    rf_series_table *series;
    int64_t next_tick_ns;
    /* Single writer (this worker), relaxed; read by the control thread. */
    _Atomic uint64_t unknown_series_drops;
};

int rf_shard_new(const rf_settings *settings, uint32_t index, uint32_t workers, rf_shard **out,
                 rf_err *err)
{
    (void)settings;
    rf_shard *s = calloc(1, sizeof(*s));
    if (!s)
        return rf_err_set(err, ENOMEM, "shard %u: out of memory", index);
    s->index = index;
    s->workers = workers;
    s->series = rf_series_table_new(RF_SHARD_DEFAULT_MAX_SERIES);
    if (!s->series) {
        free(s);
        return rf_err_set(err, ENOMEM, "shard %u: out of memory for the series table", index);
    }
    *out = s;
    return 0;
}

void rf_shard_free(rf_shard *s)
{
    if (!s)
        return;
    rf_series_table_free(s->series);
    free(s);
}

void rf_shard_set_dispatch(rf_shard *s, rf_shard_dispatch_fn fn, void *ctx)
{
    s->dispatch = fn;
    s->dispatch_ctx = ctx;
}

int rf_shard_start(rf_shard *s, rf_err *err)
{
    (void)err;
    s->next_tick_ns = rf_clock_mono_ns() + RF_SHARD_TICK_NS;
    return 0;
}

uint32_t rf_shard_poll_ingest(rf_shard *s)
{
    (void)s;
    return 0;
}

void rf_shard_stop_ingest(rf_shard *s)
{
    (void)s;
}

void rf_shard_process(rf_shard *s, const rf_event *ev, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ev[i].kind == RF_KIND_SERIES_DEF) {
            rf_series_table_define(s->series, (rf_series_key *)(uintptr_t)ev[i].aux);
            continue;
        }
        int32_t slot = rf_series_table_find(s->series, ev[i].series_id);
        if (slot < 0) {
            atomic_store_explicit(&s->unknown_series_drops,
                                  atomic_load_explicit(&s->unknown_series_drops, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            continue;
        }
    }
}

uint32_t rf_shard_tick(rf_shard *s)
{
    /* One vDSO clock read per poll (a batch), not per event. */
    int64_t now = rf_clock_mono_ns();
    if (now < s->next_tick_ns)
        return 0;
    s->next_tick_ns = now + RF_SHARD_TICK_NS;
    return 0;
}

void rf_shard_drain(rf_shard *s)
{
    (void)s;
}

bool rf_shard_has_wait(const rf_shard *s)
{
    (void)s;
    return false;
}

void rf_shard_wait(rf_shard *s, int64_t timeout_ns)
{
    (void)s;
    (void)timeout_ns;
}

void rf_shard_wake(rf_shard *s)
{
    (void)s;
}

uint64_t rf_shard_unknown_series_drops(const rf_shard *s)
{
    return atomic_load_explicit(&s->unknown_series_drops, memory_order_relaxed);
}
