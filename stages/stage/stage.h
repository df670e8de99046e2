/* How stages hand events on. Every stage processes a batch of events on the
 * worker that owns their series and passes what it produces (the events
 * themselves, aggregates, correlated events, alerts) to an emitter: a
 * function pointer and its context, called once per output batch, never per
 * event where a batch is available. The worker wires the stages together. */
#ifndef RF_STAGES_STAGE_H
#define RF_STAGES_STAGE_H

#include <stdbool.h>
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

/* A series-table slot's bindings in a stage's dense binding array (alerts,
 * correlation): [first, first + count), with room for `room` of them. When
 * the slot's series expires the stage retires the span (count 0, room kept,
 * RF_SLOT_SPAN_RETIRED); the slot's next series gets its bindings there when
 * they fit, so under churn the binding array holds each slot's largest
 * binding set, not one per series ever seen. */
typedef struct rf_slot_span {
    uint32_t first; /* RF_SLOT_SPAN_NONE: never defined */
    uint16_t count;
    uint16_t room; /* with RF_SLOT_SPAN_RETIRED while retired */
} rf_slot_span;
#define RF_SLOT_SPAN_NONE UINT32_MAX
#define RF_SLOT_SPAN_RETIRED 0x8000u
/* Bindings a slot may have: rules or patterns beyond are refused at build. */
#define RF_SLOT_SPAN_MAX 0x7fffu

/* Whether a definition of the slot binds (never defined, or retired). */
static inline bool rf_slot_span_open(rf_slot_span s)
{
    return s.first == RF_SLOT_SPAN_NONE || (s.room & RF_SLOT_SPAN_RETIRED);
}

/* A definition appended n bindings at `tail` (the array's previous end):
 * sets the slot's span and returns where they belong. When that is not
 * `tail`, the caller moves them there and cuts the array back to `tail`. */
static inline uint32_t rf_slot_span_place(rf_slot_span *s, uint32_t tail, uint32_t n)
{
    const uint16_t room = (uint16_t)(s->room & ~RF_SLOT_SPAN_RETIRED);
    if (s->first != RF_SLOT_SPAN_NONE && n <= room) {
        *s = (rf_slot_span){s->first, (uint16_t)n, room};
        return s->first;
    }
    *s = (rf_slot_span){tail, (uint16_t)n, (uint16_t)n};
    return tail;
}

/* The series expired: its bindings are no longer read (count 0). */
static inline void rf_slot_span_retire(rf_slot_span *s)
{
    if (s->first != RF_SLOT_SPAN_NONE)
        *s = (rf_slot_span){s->first, 0, (uint16_t)(s->room | RF_SLOT_SPAN_RETIRED)};
}

#endif
