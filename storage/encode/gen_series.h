/* Synthetic telemetry series for the encoder tests and benchmarks (and any
 * tool that wants realistic points). Deterministic: the same seed gives the
 * same points on every machine, so bytes/point figures are reproducible.
 *
 * Value classes (what each models is in docs/PERFORMANCE.md, "Storage
 * encoding"):
 *   GAUGE_2DEC_WALK   2-decimal gauge, random walk, step ~ N(0, 1.0) rounded
 *                     to 0.01 (entropy floor ~1.09 bytes/point)
 *   COUNTER_STEADY    monotonic counter, constant increase per interval
 *   COUNTER_SPARSE    monotonic counter that moves in 5% of intervals by 1..5
 *   GAUGE_NEAR_CONST  2-decimal gauge that changes in 1% of intervals
 *   COUNTER_BUSY      counter increasing by ~N(1000, 30) per interval (high entropy)
 *   DOUBLE_RANDOM     uniform doubles in [0, 1000), full 52-bit mantissas
 *   DOUBLE_WALK       random walk in full double precision
 *   FLOAT32_SENSOR    sine plus noise stored as float32 then widened
 *   INT_EDGES         int64 words: extremes, wrap-around jumps, random
 *
 * Timestamp classes (ns since the epoch, 10 s interval):
 *   TS_REGULAR        exactly every 10 s
 *   TS_JITTER_RARE    1% of points late by 1..50 ms (whole ms)
 *   TS_JITTER_ALL     every point off the grid by -1000..+1000 us (whole us)
 */
#ifndef RF_STORAGE_ENCODE_GEN_SERIES_H
#define RF_STORAGE_ENCODE_GEN_SERIES_H

#include <stdint.h>

enum rf_gen_value {
    RF_GEN_GAUGE_2DEC_WALK,
    RF_GEN_COUNTER_STEADY,
    RF_GEN_COUNTER_SPARSE,
    RF_GEN_GAUGE_NEAR_CONST,
    RF_GEN_COUNTER_BUSY,
    RF_GEN_DOUBLE_RANDOM,
    RF_GEN_DOUBLE_WALK,
    RF_GEN_FLOAT32_SENSOR,
    RF_GEN_INT_EDGES,
    RF_GEN__VALUE_COUNT
};

enum rf_gen_ts {
    RF_GEN_TS_REGULAR,
    RF_GEN_TS_JITTER_RARE,
    RF_GEN_TS_JITTER_ALL,
    RF_GEN__TS_COUNT
};

/* Fills ts[0..n) and value_bits[0..n); returns the value type the class is
 * stored as (enum rf_value_type). */
uint8_t rf_gen_series(uint64_t seed, enum rf_gen_value vclass, enum rf_gen_ts tclass, uint32_t n,
                      int64_t *ts, uint64_t *value_bits);

const char *rf_gen_value_name(enum rf_gen_value vclass);
const char *rf_gen_ts_name(enum rf_gen_ts tclass);

/* The generator's PRNG (splitmix64), for tests that need their own numbers. */
static inline uint64_t rf_gen_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
