/* Partial aggregates: what one worker knows of one group's window, and the
 * byte form in which it travels to the group's owner (between shards now,
 * between hosts later). Internal to stages/aggregate (aggregate.c and its
 * tests); the wire form is specified in README.md, "Partials on the wire",
 * and is the contract: version 1, little-endian, no pointers.
 *
 * Additive quantities are kept as unevaluated sums hi + lo (a double-double:
 * each addition's rounding error goes to lo, error-free), so that a sum does
 * not depend, in practice, on how its terms were split between workers or in
 * which order partials merge: the rounded value hi + lo is the correctly
 * rounded exact sum unless that sum lies within about n * 2^-106 of the sum of
 * |terms| of a rounding boundary. That is what makes sum, avg and stddev of a
 * group come out the same with 1 or N workers (README.md, "Exactness").
 */
#ifndef RF_STAGES_AGGREGATE_PARTIAL_H
#define RF_STAGES_AGGREGATE_PARTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stages/sketch/sketch.h"

#define RF_AGG_PARTIAL_VERSION 1u
#define RF_AGG_PARTIAL_HEADER 184u
/* Partial flags (wire byte 2). */
enum {
    RF_AGG_PF_LATE = 1u << 0,   /* holds events applied beyond lateness (late_events: current) */
    RF_AGG_PF_SKETCH = 1u << 1, /* a DDSketch follows the text */
    RF_AGG_PF_HLL = 1u << 2,    /* an HLL follows (after the sketch, if any) */
};

typedef struct rf_agg_dd {
    double hi, lo;
} rf_agg_dd;

/* The accumulators of one group's window (sketch and HLL apart). */
typedef struct rf_agg_acc {
    rf_agg_dd wcount; /* sum of 1/sample_rate */
    rf_agg_dd sum;    /* counters: sum of value/sample_rate; others: sum of values */
    rf_agg_dd raw;    /* sum of raw values (avg) */
    rf_agg_dd sq;     /* sum of squared raw values (stddev) */
    rf_agg_dd inc;    /* cumulative increase (non-counters) */
    double min, max;
    double first, last; /* by event time; ties: the smaller value first, the larger last */
    int64_t first_t, last_t;
    uint32_t n; /* raw events */
    uint32_t pad;
} rf_agg_acc;

void rf_agg_acc_reset(rf_agg_acc *a);
/* One value x (raw) at event time t, weight w (1/sample_rate), added to sum
 * as xs (x*w for counters, x otherwise) and to the increase as inc. */
void rf_agg_acc_add(rf_agg_acc *a, double x, double xs, double w, double inc, int64_t t);
/* dst += src (commutative up to the double-double rounding above). */
void rf_agg_acc_merge(rf_agg_acc *dst, const rf_agg_acc *src);
static inline double rf_agg_dd_value(rf_agg_dd d)
{
    return d.hi + d.lo;
}
/* raw / n and the population standard deviation, in double-double. */
double rf_agg_acc_mean(const rf_agg_acc *a);
double rf_agg_acc_stddev(const rf_agg_acc *a);

/* A decoded partial: views into the encoded block (valid while it lives). */
typedef struct rf_agg_partial {
    uint8_t kind;      /* enum rf_metric_kind of the group */
    uint8_t flags;     /* RF_AGG_PF_* */
    uint16_t rule;     /* the sender's rule index */
    uint32_t sender;   /* the sender's shard index */
    uint64_t rule_sig; /* rf_agg_rule_sig of the sender's rule */
    uint64_t group_id; /* rf_series_id_of_key(text) */
    int64_t start, window_ns;
    rf_agg_acc acc;
    const char *text; /* the group's canonical text, without ":fn"; not NUL-terminated */
    uint16_t text_len, measurement_len, field_offset;
    /* RF_AGG_PF_SKETCH: the sketch's fields and its two stores' counts. */
    double sk_alpha;
    uint64_t sk_count, sk_zero;
    double sk_min, sk_max;
    uint32_t sk_collapsed;
    int32_t sk_lo[2];
    uint32_t sk_n[2];
    const uint8_t *sk_counts[2]; /* sk_n[s] little-endian u32 each */
    const uint8_t *hll;          /* RF_AGG_PF_HLL: RF_HLL_REGISTERS bytes */
} rf_agg_partial;

/* Bytes rf_agg_partial_encode will write for p (sketch and hll as given). */
size_t rf_agg_partial_size(const rf_agg_partial *p, const rf_ddsketch *sk, const rf_hll *hll);
/* Encodes p (its text, acc, identity) and, when not NULL, the sketch and
 * HLL, into a malloc'd block of *len bytes. NULL when out of memory. */
uint8_t *rf_agg_partial_encode(const rf_agg_partial *p, const rf_ddsketch *sk, const rf_hll *hll,
                               size_t *len);
/* Decodes a block (len bytes; the total length is also in the header).
 * Returns 0, or -EINVAL for a bad version or a length that does not add up. */
int rf_agg_partial_decode(const uint8_t *b, size_t len, rf_agg_partial *out);
/* The total length a block's header states (the first 8 bytes suffice). */
uint32_t rf_agg_partial_block_len(const uint8_t *b);
/* Rebuilds the decoded sketch into dst (rf_ddsketch_size(bins) bytes with
 * bins >= max(sk_n[0], sk_n[1], 16)). Returns 0 or -EINVAL. */
int rf_agg_partial_sketch(const rf_agg_partial *p, rf_ddsketch *dst, uint32_t bins);

#endif
