/* Helpers shared by the stage tests: series keys from canonical text and a
 * fixed buffer for what a stage emits. Header only (static inline), so each
 * test stays one source file. */
#ifndef RF_TESTS_STAGES_STAGE_TEST_UTIL_H
#define RF_TESTS_STAGES_STAGE_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/event/event.h"

/* A key for canonical text "m,t=v field": the measurement ends at the first
 * unescaped ',' or ' ', the field starts after the last unescaped ' '. */
static inline rf_series_key *stage_test_key(const char *text)
{
    size_t len = strlen(text);
    size_t m = 0;
    while (m < len && text[m] != ',' && text[m] != ' ')
        m += text[m] == '\\' ? 2 : 1;
    size_t f = 0;
    for (size_t i = 0; i < len; i += text[i] == '\\' ? 2 : 1)
        if (text[i] == ' ')
            f = i + 1;
    return rf_series_key_new(text, len, m, f);
}

/* The events a stage emitted, in order; what does not fit is not kept (the
 * tests count far fewer). */
#define STAGE_EVENTS_CAP 1024
typedef struct stage_events {
    rf_event ev[STAGE_EVENTS_CAP];
    uint32_t n;
} stage_events;

/* rf_emitter callback: appends the batch to the stage_events in ctx. */
static inline void stage_events_collect(void *ctx, const rf_event *ev, uint32_t n)
{
    stage_events *got = ctx;
    for (uint32_t i = 0; i < n && got->n < STAGE_EVENTS_CAP; i++)
        got->ev[got->n++] = ev[i];
}

#endif
