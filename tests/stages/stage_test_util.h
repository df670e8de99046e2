/* Helpers shared by the stage tests: series keys from canonical text, a
 * fixed buffer for what a stage emits, and the seeded random numbers the
 * reference computations draw. Header only (static inline), so each test
 * stays one source file. */
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

/* SplitMix64: the next number of the sequence *state seeds (same seed, same
 * sequence, so the random references are the same on every run). */
static inline uint64_t stage_test_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform double in the open interval (0, 1) from the sequence *state. */
static inline double stage_test_uniform(uint64_t *state)
{
    return ((double)(stage_test_splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
}

/* qsort comparator for doubles, ascending. */
static inline int stage_test_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
