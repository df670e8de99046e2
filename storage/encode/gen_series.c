/* Synthetic telemetry series: see gen_series.h. */
#include "storage/encode/gen_series.h"

#include "core/event/event.h"

#include <math.h>
#include <string.h>

static double uniform01(uint64_t *s)
{
    return (double)(rf_gen_next(s) >> 11) * 0x1p-53;
}

/* Standard normal by Box-Muller (one of the pair; speed does not matter here). */
static double gauss(uint64_t *s)
{
    double u1 = uniform01(s), u2 = uniform01(s);
    if (u1 < 0x1p-60)
        u1 = 0x1p-60;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static uint64_t bits_of(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static void gen_ts(uint64_t *s, enum rf_gen_ts tclass, uint32_t n, int64_t *ts)
{
    const int64_t step = 10000000000ll;       /* 10 s */
    const int64_t t0 = 1767225600000000000ll; /* 2026-01-01T00:00:00Z */
    int64_t prev = INT64_MIN;
    for (uint32_t i = 0; i < n; i++) {
        int64_t t = t0 + (int64_t)i * step;
        if (tclass == RF_GEN_TS_JITTER_RARE && rf_gen_next(s) % 100 == 0)
            t += (int64_t)(1 + rf_gen_next(s) % 50) * 1000000;
        else if (tclass == RF_GEN_TS_JITTER_ALL)
            t += ((int64_t)(rf_gen_next(s) % 2001) - 1000) * 1000;
        if (t < prev) /* jitter never reorders: keep the series non-decreasing */
            t = prev;
        ts[i] = prev = t;
    }
}

uint8_t rf_gen_series(uint64_t seed, enum rf_gen_value vclass, enum rf_gen_ts tclass, uint32_t n,
                      int64_t *ts, uint64_t *v)
{
    uint64_t s = seed * 0x2545f4914f6cdd1dull + (uint64_t)vclass * 1000003u + (uint64_t)tclass;
    gen_ts(&s, tclass, n, ts);
    int64_t cents = 10000 + (int64_t)(rf_gen_next(&s) % 10000); /* 100.00 .. 199.99 */
    double x = 100.0 + uniform01(&s);
    uint64_t counter = rf_gen_next(&s) % 1000000;

    switch (vclass) {
    case RF_GEN_GAUGE_2DEC_WALK:
        for (uint32_t i = 0; i < n; i++) {
            /* the double strtod would give for the printed 2-decimal value */
            v[i] = bits_of((double)cents / 100.0);
            cents += llround(gauss(&s) * 100.0);
        }
        return RF_VALUE_F64;
    case RF_GEN_COUNTER_STEADY:
        for (uint32_t i = 0; i < n; i++) {
            v[i] = bits_of((double)counter);
            counter += 600; /* e.g. 60/s over 10 s */
        }
        return RF_VALUE_F64;
    case RF_GEN_COUNTER_SPARSE:
        for (uint32_t i = 0; i < n; i++) {
            v[i] = bits_of((double)counter);
            if (rf_gen_next(&s) % 100 < 5)
                counter += 1 + rf_gen_next(&s) % 5;
        }
        return RF_VALUE_F64;
    case RF_GEN_GAUGE_NEAR_CONST:
        for (uint32_t i = 0; i < n; i++) {
            v[i] = bits_of((double)cents / 100.0);
            if (rf_gen_next(&s) % 100 == 0)
                cents += llround(gauss(&s) * 500.0);
        }
        return RF_VALUE_F64;
    case RF_GEN_COUNTER_BUSY:
        for (uint32_t i = 0; i < n; i++) {
            v[i] = bits_of((double)counter);
            counter += (uint64_t)llround(1000.0 + 30.0 * gauss(&s));
        }
        return RF_VALUE_F64;
    case RF_GEN_DOUBLE_RANDOM:
        for (uint32_t i = 0; i < n; i++)
            v[i] = bits_of(uniform01(&s) * 1000.0);
        return RF_VALUE_F64;
    case RF_GEN_DOUBLE_WALK:
        for (uint32_t i = 0; i < n; i++) {
            v[i] = bits_of(x);
            x += gauss(&s);
        }
        return RF_VALUE_F64;
    case RF_GEN_FLOAT32_SENSOR:
        for (uint32_t i = 0; i < n; i++) {
            float f = (float)(20.0 + 5.0 * sin((double)i / 360.0) + 0.05 * gauss(&s));
            v[i] = bits_of((double)f);
        }
        return RF_VALUE_F64;
    case RF_GEN_INT_EDGES:
    default: {
        static const uint64_t edges[] = {
            (uint64_t)INT64_MIN,
            (uint64_t)INT64_MAX,
            UINT64_MAX,
            0,
            1,
            (uint64_t)-1ll,
            (uint64_t)INT64_MIN + 1,
            (uint64_t)INT64_MAX - 1,
            1ull << 63,
            1ull << 53,
        };
        for (uint32_t i = 0; i < n; i++) {
            uint64_t r = rf_gen_next(&s);
            switch (r % 4) {
            case 0: v[i] = edges[(r >> 8) % (sizeof edges / sizeof edges[0])]; break;
            case 1: v[i] = r; break;
            case 2: v[i] = i ? v[i - 1] + (r >> 60) : r; break;
            default: v[i] = i ? v[i - 1] : r; break;
            }
        }
        return RF_VALUE_I64;
    }
    }
}

const char *rf_gen_value_name(enum rf_gen_value vclass)
{
    static const char *names[RF_GEN__VALUE_COUNT] = {
        "gauge_2dec_walk", "counter_steady", "counter_sparse", "gauge_near_const", "counter_busy",
        "double_random",   "double_walk",    "float32_sensor", "int_edges",
    };
    return (unsigned)vclass < RF_GEN__VALUE_COUNT ? names[vclass] : "?";
}

const char *rf_gen_ts_name(enum rf_gen_ts tclass)
{
    static const char *names[RF_GEN__TS_COUNT] = {"regular", "jitter_rare", "jitter_all"};
    return (unsigned)tclass < RF_GEN__TS_COUNT ? names[tclass] : "?";
}
