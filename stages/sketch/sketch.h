/* Mergeable summaries for the aggregation stage: a quantile sketch (DDSketch)
 * and a distinct-count sketch (HyperLogLog). Both are fixed-size, allocation
 * free after init, and merge exactly (merging two sketches gives the sketch of
 * the union), so per-shard partial results can be combined downstream.
 *
 * ---- Quantiles: DDSketch (Masson, Rim, Lee, VLDB 2019) ---------------------
 * Why DDSketch and not HDR histogram: telemetry values have no known range
 * (latencies in ns or s, byte counts, negative temperatures), and DDSketch
 * gives a *relative* error bound over the whole double range, handles
 * negatives and zero, and merges by adding bucket counts. HDR needs a
 * configured [lowest, highest] range and integer values.
 *
 * Guarantee: for q in [0,1], rf_ddsketch_quantile returns v' with
 *     |v' - v| <= alpha * |v|
 * where v is the element at rf_quantile_rank(q, count) of the sorted
 * inserted values -- provided the bucket holding v was not collapsed
 * (below). Default alpha = 1% (RF_DDSKETCH_DEFAULT_ALPHA).
 *
 * Index mapping: bucket i holds values whose "approximate log2" lies in
 * [i/m, (i+1)/m); the approximate log2 is exponent + P(mantissa-1) with the
 * cubic P(s) = 6/35 s^3 - 3/5 s^2 + 10/7 s (DDSketch's cubically interpolated
 * mapping). It costs a few multiplies instead of a log() call and needs ~1%
 * more buckets than the exact logarithm: d(approx)/d(ln x) >= 10/7, so with
 * m = 7 / (10 ln gamma), gamma = (1+alpha)/(1-alpha), every bucket spans at
 * most a factor gamma and returning lower_bound * (1+alpha) is within alpha of
 * anything in it. About 35 buckets per doubling (116 per decade) at 1%.
 *
 * Bounded form: two stores (positive values, and negative values by |v|) of
 * `bins` uint32 counts each, each a contiguous index range. When a store would
 * span more than `bins` indices, its lowest buckets (smallest positive values;
 * for the negative store the largest |v|, i.e. the most negative values) are
 * collapsed into the lowest kept bucket: only the bottom of the distribution
 * loses accuracy, upper quantiles keep the bound. `bins` = 512 covers a ratio
 * of 2^(512/35) ~ 25,000 between the smallest and largest |v| of one sign
 * without collapsing; rf_ddsketch.collapsed counts collapse operations.
 * |v| below DBL_MIN (zero and subnormals) goes to a zero counter; NaN and
 * infinities are refused (return -EINVAL) and not counted.
 * Size: rf_ddsketch_size(bins) = 72 + 8*bins bytes (4,168 B at 512 bins).
 * Counts saturate at 2^32-1 per bucket.
 *
 * ---- Distinct counts: HyperLogLog, precision 10 ----------------------------
 * 1,024 one-byte registers (1 KiB). The member is already a 64-bit hash
 * (StatsD sets carry value.u64 = hash of the member); it is re-mixed with a
 * 64-bit finaliser so a weak upstream hash cannot bias registers. Estimate:
 * the standard HLL estimator with linear counting while the raw estimate is
 * <= 2.5 m (m = 1024) and some register is empty; 64-bit hashes need no
 * large-range correction. Standard error 1.04/sqrt(1024) = 3.25% for large
 * cardinalities; below ~2,500 members linear counting does better (about 1% at
 * 100 members, exact in practice for a handful). Exact small sets were not
 * chosen: they need variable memory and most set series are either tiny (HLL
 * is then nearly exact anyway) or large.
 */
#ifndef RF_STAGES_SKETCH_H
#define RF_STAGES_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define RF_DDSKETCH_DEFAULT_ALPHA 0.01
#define RF_DDSKETCH_DEFAULT_BINS 512u
#define RF_DDSKETCH_MAX_BINS 65536u

typedef struct rf_ddsketch {
    double multiplier; /* m: buckets per unit of approximate log2 */
    double alpha;
    uint64_t count; /* values accepted, zeros included */
    uint64_t zero_count;
    double min, max;    /* exact extremes, quantile results are clamped to them */
    int32_t lo[2];      /* key of counts[s*bins + 0] for store s (0: pos, 1: neg) */
    uint32_t n[2];      /* keys in use from lo[s]; 0 = store empty */
    uint32_t bins;      /* capacity of each store */
    uint32_t collapsed; /* collapse operations (accuracy lost at the low end) */
    uint32_t counts[];  /* 2 * bins */
} rf_ddsketch;

/* The one quantile definition of ringflow: StatsD's nearest rank. Of n
 * sorted values (n >= 1) the q-quantile (q in [0, 1]) is the one at 1-based
 * rank round(q * n), clamped to [1, n] (round half up, as JavaScript's
 * Math.round in StatsD's process_metrics.js); returns its 0-based index. No
 * interpolation: a quantile is always a value that was sent. Used by the
 * StatsD flush (stages/statsd), this sketch (and so the aggregation stage's
 * pNN) and `ringflow query --agg pNN` (storage/query). */
static inline uint64_t rf_quantile_rank(double q, uint64_t n)
{
    double r = q * (double)n + 0.5;
    uint64_t k = r >= (double)n ? n : r < 1 ? 1 : (uint64_t)r;
    return k - 1;
}

/* Bytes for a sketch of `bins` buckets per store. */
size_t rf_ddsketch_size(uint32_t bins);
/* Initialises `mem` (rf_ddsketch_size(bins) bytes). alpha in [1e-4, 0.5),
 * bins 16..RF_DDSKETCH_MAX_BINS. Returns 0 or -EINVAL. */
int rf_ddsketch_init(rf_ddsketch *s, double alpha, uint32_t bins);
/* Empties the sketch, keeping alpha and bins. */
void rf_ddsketch_reset(rf_ddsketch *s);
/* Adds `weight` occurrences of v. Returns 0, or -EINVAL for NaN/inf. */
int rf_ddsketch_add_n(rf_ddsketch *s, double v, uint32_t weight);
static inline int rf_ddsketch_add(rf_ddsketch *s, double v)
{
    return rf_ddsketch_add_n(s, v, 1);
}
/* q in [0,1]; NaN when the sketch is empty. */
double rf_ddsketch_quantile(const rf_ddsketch *s, double q);
/* dst += src. Both must have the same alpha; bins may differ. Returns 0 or -EINVAL. */
int rf_ddsketch_merge(rf_ddsketch *dst, const rf_ddsketch *src);

/* The bucket index of |v| > 0 and the value a bucket reports (exposed for tests). */
int32_t rf_ddsketch_key(const rf_ddsketch *s, double absv);
double rf_ddsketch_key_value(const rf_ddsketch *s, int32_t key);

#define RF_HLL_PRECISION 10u
#define RF_HLL_REGISTERS (1u << RF_HLL_PRECISION)

typedef struct rf_hll {
    uint8_t reg[RF_HLL_REGISTERS];
} rf_hll;

void rf_hll_reset(rf_hll *h);
void rf_hll_add(rf_hll *h, uint64_t member_hash);
double rf_hll_estimate(const rf_hll *h);
void rf_hll_merge(rf_hll *dst, const rf_hll *src);

#endif
