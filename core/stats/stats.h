/* Metrics: counters, gauges and latency histograms that the data path writes
 * and the control thread reads, plus the registry that names them.
 *
 * Contract
 *   - Single writer, no read-modify-write. Every value has exactly one writing
 *     thread (the core that owns it). The writer updates it with a relaxed
 *     load and a relaxed store (rf_stats_add, rf_hist_record): no lock prefix,
 *     no cache line bouncing. Readers (the control thread) use relaxed loads
 *     and may see a value a few updates old, never a torn one. A counter that
 *     two threads would write is two counters: give each core its own and let
 *     the reader sum them (entries with the same name and labels are summed).
 *   - Placement. Values written by different cores must not share a cache
 *     line: keep a core's counters in that core's own (64-byte aligned) state.
 *   - The registry belongs to the control thread: registering, unregistering,
 *     clearing and exporting happen there only. Nothing here is called by a
 *     worker except rf_stats_add / rf_stats_set / rf_hist_record.
 *   - A registered value must stay readable until it is unregistered.
 *   - `clear counters` is a reader-side baseline (rf_stats_clear): the
 *     control thread remembers the current values and subtracts them in
 *     rf_stats_value / rf_stats_hist_read(..., since_clear=true). The writers
 *     are never written by the reader. The Prometheus export ignores the
 *     baseline on purpose: Prometheus expects counters that only go up.
 *
 * Histograms
 *   Log-linear buckets in the manner of HdrHistogram: values below 128 have
 *   a bucket each; above that every power of two is split into 64 equal
 *   buckets, so a bucket's width is at most 1/64 (1.6 %) of its value: two
 *   significant digits. Values are nanoseconds from 0 to RF_HIST_MAX_NS (60 s,
 *   larger values land in the last bucket; max keeps the exact value). 1984
 *   buckets of 8 bytes: 16 KiB per histogram, one per writing core.
 *
 *     index:   0 .. 127 | 128 .. 191   | 192 .. 255   | ... | 1920 .. 1983
 *     values:  0 .. 127 | 128 .. 255/2 | 256 .. 511/4 | ... | 2^35 .. 2^36-1 / 2^29
 *
 * Typical use
 *     struct my_core { _Atomic uint64_t parsed; rf_hist latency; } *c;   (per core)
 *     rf_stats_register_counter("ringflow_parsed_events", "Events parsed.",
 *                               "worker=\"0\"", &c->parsed);           (control)
 *     rf_stats_add(&c->parsed, n);                                      (worker)
 *     rf_hist_record(&c->latency, now - ev->recv_ns);                   (worker)
 */
#ifndef RF_CORE_STATS_H
#define RF_CORE_STATS_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- writer side (hot path) ---------------------------------------------- */

/* Adds n to a counter that only the calling thread writes. The relaxed load
 * reads the caller's own last store; the relaxed store pairs with the relaxed
 * load in rf_stats_load on the control thread (no ordering needed: a counter
 * publishes nothing but itself). */
static inline void rf_stats_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Sets a gauge that only the calling thread writes (pairs as rf_stats_add). */
static inline void rf_stats_set(_Atomic uint64_t *g, uint64_t v)
{
    atomic_store_explicit(g, v, memory_order_relaxed);
}

/* Reader side of both (pairs with the relaxed stores above). */
static inline uint64_t rf_stats_load(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* The same pairing for counters kept as plain fields of a stage's stats
 * struct (one writer, the worker; readers on the control thread for `show`
 * and /metrics): the worker's relaxed store of its own running value pairs
 * with the relaxed loads of RF_STAT_LOAD and rf_stats_load_words. The worker
 * may read its own fields plainly. Each field is read whole; the fields are
 * not one snapshot. */
#define RF_STAT_ADD(field, n)                                                                      \
    __atomic_store_n(&(field), (__typeof__(field))((field) + (n)), __ATOMIC_RELAXED)
#define RF_STAT_SET(field, v) __atomic_store_n(&(field), (__typeof__(field))(v), __ATOMIC_RELAXED)
#define RF_STAT_LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Copies `bytes` (a multiple of 8) of 64-bit counters written by
 * RF_STAT_ADD/RF_STAT_SET, each with a relaxed load (pairs with those
 * stores). src must be 8-byte aligned and hold only 64-bit fields in that
 * range. */
static inline void rf_stats_load_words(void *dst, const void *src, size_t bytes)
{
    uint64_t *d = dst;
    const uint64_t *s = src;
    for (size_t i = 0; i < bytes / sizeof(uint64_t); i++)
        d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

#define RF_HIST_SUB_BITS 6
#define RF_HIST_SUB (1u << RF_HIST_SUB_BITS) /* 64 buckets per power of two */
#define RF_HIST_LINEAR (2u * RF_HIST_SUB)    /* 0..127 one bucket each */
#define RF_HIST_MAX_NS 60000000000ull        /* 60 s */
#define RF_HIST_MAX_LOG2 36                  /* 2^36 ns > 60 s */
#define RF_HIST_BUCKETS ((RF_HIST_MAX_LOG2 - RF_HIST_SUB_BITS + 1) * RF_HIST_SUB) /* 1984 */

/* One writer thread per histogram; see the file comment. */
typedef struct rf_hist {
    _Alignas(64) _Atomic uint64_t count;
    _Atomic uint64_t sum; /* ns; wraps after 584 years of latency */
    _Atomic uint64_t max; /* largest value recorded, exact */
    _Atomic uint64_t buckets[RF_HIST_BUCKETS];
} rf_hist;

static inline uint32_t rf_hist_index(uint64_t v)
{
    if (v < RF_HIST_LINEAR)
        return (uint32_t)v;
    if (v >= (1ull << RF_HIST_MAX_LOG2))
        return RF_HIST_BUCKETS - 1;
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(v);
    uint32_t shift = msb - RF_HIST_SUB_BITS;
    return (shift + 1u) * RF_HIST_SUB + (uint32_t)(v >> shift) - RF_HIST_SUB;
}

/* Records one value (ns). Writer thread only: relaxed load+store pairs, each
 * pairing with the relaxed loads of rf_hist_snapshot on the control thread. */
static inline void rf_hist_record(rf_hist *h, uint64_t v)
{
    rf_stats_add(&h->buckets[rf_hist_index(v)], 1);
    rf_stats_add(&h->count, 1);
    rf_stats_add(&h->sum, v);
    if (v > atomic_load_explicit(&h->max, memory_order_relaxed))
        atomic_store_explicit(&h->max, v, memory_order_relaxed);
}

void rf_hist_init(rf_hist *h);

/* Smallest and largest value that land in bucket i. */
uint64_t rf_hist_bucket_low(uint32_t i);
uint64_t rf_hist_bucket_high(uint32_t i);

/* ---- reader side: snapshots ---------------------------------------------- */

/* A plain copy the control thread can add up and subtract. `count` is the sum
 * of the buckets (so the buckets and the count always agree, even when the
 * writer was mid-record while we copied). */
typedef struct rf_hist_snap {
    uint64_t count, sum, max;
    uint64_t buckets[RF_HIST_BUCKETS];
} rf_hist_snap;

void rf_hist_snapshot(const rf_hist *h, rf_hist_snap *out);
void rf_hist_snap_reset(rf_hist_snap *s);
/* s += o (merging cores). */
void rf_hist_snap_merge(rf_hist_snap *s, const rf_hist_snap *o);
/* s -= base (values since a baseline); max becomes the upper bound of the
 * highest non-empty bucket, capped by the exact max. */
void rf_hist_snap_sub(rf_hist_snap *s, const rf_hist_snap *base);
/* The value at quantile q (0..1): the upper bound of the bucket holding rank
 * ceil(q*count), capped by max; 0 when empty. */
uint64_t rf_hist_snap_quantile(const rf_hist_snap *s, double q);
/* How many values are <= le_ns, counting whole buckets whose upper bound is
 * <= le_ns (a lower bound of the true count, monotonic in le_ns). */
uint64_t rf_hist_snap_count_le(const rf_hist_snap *s, uint64_t le_ns);

/* ---- growing text buffer (exports) --------------------------------------- */

typedef struct rf_strbuf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed; the content is truncated */
} rf_strbuf;

void rf_strbuf_printf(rf_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rf_strbuf_vprintf(rf_strbuf *b, const char *fmt, va_list ap);
void rf_strbuf_append(rf_strbuf *b, const char *s, size_t n);
void rf_strbuf_free(rf_strbuf *b);

/* ---- the registry (control thread only) ---------------------------------- */

enum rf_metric_type {
    RF_METRIC_COUNTER = 0,
    RF_METRIC_GAUGE = 1,
    RF_METRIC_HISTOGRAM = 2
};

#define RF_STATS_MAX_METRICS 4096
#define RF_STATS_NAME_MAX 96
#define RF_STATS_HELP_MAX 160
#define RF_STATS_LABELS_MAX 160

/* A value computed at read time (control thread), e.g. from a snapshot. */
typedef uint64_t (*rf_stats_read_fn)(void *ctx);

/* Each returns an id >= 0, or -EINVAL (bad name: [a-zA-Z_:][a-zA-Z0-9_:]*, a
 * counter named *_total: the exporter adds the suffix; labels with a newline
 * or unbalanced quotes), -ENOSPC (registry full).
 * `labels` is a Prometheus label list without braces (`worker="0",ring="0->1"`)
 * or NULL/"". Histograms are in nanoseconds and exported in seconds: name them
 * *_seconds. Entries with the same name must have the same type and help. */
int rf_stats_register_counter(const char *name, const char *help, const char *labels,
                              const _Atomic uint64_t *value);
int rf_stats_register_gauge(const char *name, const char *help, const char *labels,
                            const _Atomic uint64_t *value);
int rf_stats_register_fn(enum rf_metric_type type, const char *name, const char *help,
                         const char *labels, rf_stats_read_fn fn, void *ctx);
int rf_stats_register_histogram(const char *name, const char *help, const char *labels,
                                const rf_hist *hist);
/* A computed value in nanoseconds, exported in seconds (9 decimals), the
 * base unit Prometheus expects: name it *_seconds. rf_stats_value still
 * returns nanoseconds. */
int rf_stats_register_fn_ns(enum rf_metric_type type, const char *name, const char *help,
                            const char *labels, rf_stats_read_fn fn, void *ctx);
/* Removes an entry. Its slot, and so its id, is reused by a later
 * registration: forget the id (registering and removing as often as reloads
 * do never fills the registry). */
void rf_stats_unregister(int id);
/* Forgets everything (tests, process exit). */
void rf_stats_reset(void);

/* Takes the baseline that rf_stats_value / rf_stats_hist_read subtract
 * ("clear counters"). Gauges are not affected. */
void rf_stats_clear(void);

/* Iteration over live entries, in registration order. */
typedef struct rf_stats_info {
    int id;
    enum rf_metric_type type;
    const char *name, *help, *labels;
} rf_stats_info;

/* Fills *out for the next live entry with id >= *cursor and advances the
 * cursor; false at the end. Start with *cursor = 0. */
bool rf_stats_next(int *cursor, rf_stats_info *out);
/* Counter/gauge value; since_clear subtracts the clear baseline (counters). */
uint64_t rf_stats_value(int id, bool since_clear);
/* Histogram snapshot of one entry (since_clear: minus the baseline). */
void rf_stats_hist_read(int id, bool since_clear, rf_hist_snap *out);

/* Every entry in the Prometheus text exposition format 0.0.4: # HELP and
 * # TYPE once per name, counters with _total, histograms as _bucket{le=...}
 * (cumulative, in seconds, ending with +Inf = count), _sum and _count.
 * Entries sharing name and labels are summed (per-core values). */
void rf_stats_write_prometheus(rf_strbuf *out);

/* Escapes s as a Prometheus label value (backslash, quote, newline). */
void rf_stats_escape(rf_strbuf *out, const char *s);

#endif
