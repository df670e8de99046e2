/* How stages hand events on. Every stage processes a batch of events on the
 * worker that owns their series and passes what it produces (the events
 * themselves, aggregates, correlated events, alerts) to an emitter: a
 * function pointer and its context, called once per output batch, never per
 * event where a batch is available. The worker wires the stages together. */
#ifndef RF_STAGES_STAGE_H
#define RF_STAGES_STAGE_H

#include <stdint.h>

#include "core/event/event.h"

typedef struct rf_emitter {
    void (*emit)(void *ctx, const rf_event *events, uint32_t n);
    void *ctx;
} rf_emitter;

static inline void rf_emit(const rf_emitter *e, const rf_event *events, uint32_t n)
{
    if (n && e->emit)
        e->emit(e->ctx, events, n);
}

#endif
