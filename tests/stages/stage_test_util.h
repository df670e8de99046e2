/* Helpers shared by the stage tests: series keys from canonical text.
 * Header only (static inline), so each test stays one source file. */
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

#endif
