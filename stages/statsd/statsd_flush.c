/* StatsD flush semantics per worker. Contract in statsd_flush.h; why it is a
 * stage of its own: docs/ARCHITECTURE.md ("StatsD flush"). */
#include "stages/statsd/statsd_flush.h"

#include "core/mem/bound.h"
#include "core/stats/stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stages/sketch/sketch.h"

/* Output events handed to the emitter at a time. */
#define SD_OUT_BATCH 256u
/* Timer fields before the percentiles (Telegraf's names). */
enum {
    SD_T_COUNT,
    SD_T_LOWER,
    SD_T_UPPER,
    SD_T_MEAN,
    SD_T_MEDIAN,
    SD_T_STDDEV,
    SD_T_SUM,
    SD_T__N
};
static const char *const timer_fields[SD_T__N] = {"count",  "lower",  "upper", "mean",
                                                  "median", "stddev", "sum"};

enum sd_type {
    SD_COUNTER,
    SD_GAUGE,
    SD_TIMER,
    SD_SET
};

typedef struct sd_state {
    int32_t slot;
    uint8_t type;        /* enum sd_type */
    uint8_t updated;     /* received something this interval */
    uint8_t has_value;   /* gauge: value holds the current gauge */
    uint8_t zero_member; /* set: the member hash 0 is in it (0 marks a free slot) */
    uint32_t announced;  /* bit i: output field i's series announced, ids[i] set */
    uint32_t n, cap;     /* timer values / set members held, and room */
    uint32_t vals_cap;   /* timer: the values buffer's room (cap says sketch mode) */
    double value;        /* counter sum, gauge value, timer sum of 1/rate */
    double t_sum, t_min, t_max, t_mean, t_m2; /* timer past the cap: running */
    double *vals;                             /* timer values this interval (cap) */
    uint64_t *members;                        /* set: open addressing, cap a power of two */
    rf_ddsketch *sk;                          /* timer past timer_max_values (this interval) */
    rf_hll *hll;                              /* set past set_max_exact (this interval) */
    uint64_t *ids;                            /* output series ids, in field order */
} sd_state;

struct rf_statsd_flusher {
    rf_statsd_config cfg;
    const rf_series_table *series;
    rf_emitter out;
    sd_state *states;
    uint32_t n_states, cap_states;
    /* slot -> state index + 1, open addressing on the slot (power of two). */
    uint32_t *index;
    uint32_t index_mask;
    int64_t next_flush; /* wall ns of the next boundary; 0 before the first tick */
    rf_event buf[SD_OUT_BATCH];
    uint32_t nbuf;
    char key[65536 + 64]; /* canonical keys are at most 65535 bytes (protocol.h) */
    uint64_t held;        /* bytes of states, index, values, members, sketches, ids */
    rf_statsd_stats st;
};

/* Whether `more` bytes fit under max_memory; if so they are counted as held
 * (the caller gives them back with unhold when the allocation fails or frees
 * an old buffer). */
static bool hold(rf_statsd_flusher *f, uint64_t more)
{
    if (f->held + more > f->cfg.max_memory) {
        RF_STAT_ADD(f->st.memory_capped, 1);
        return false;
    }
    f->held += more;
    RF_STAT_SET(f->st.held_bytes, f->held);
    return true;
}

static void unhold(rf_statsd_flusher *f, uint64_t less)
{
    f->held -= less;
    RF_STAT_SET(f->st.held_bytes, f->held);
}

uint32_t rf_statsd_state_bytes(void)
{
    return (uint32_t)sizeof(sd_state);
}

uint64_t rf_statsd_flusher_memory_bound(const rf_statsd_config *cfg)
{
    /* held counts requested bytes; the allocator adds at most 16 B to a
     * chunk, and the smallest chunk held is 128 B (16 values or members),
     * so an eighth more covers it. */
    return rf_mem_alloc_bound(sizeof(rf_statsd_flusher)) + cfg->max_memory + cfg->max_memory / 8;
}

void rf_statsd_config_defaults(rf_statsd_config *c)
{
    memset(c, 0, sizeof(*c));
    c->enabled = true;
    c->flush_interval_ns = 10 * 1000000000LL;
    c->n_percentiles = 2;
    c->percentiles[0] = 90;
    c->percentiles[1] = 99;
    c->timer_max_values = 10000;
    c->set_max_exact = 10000;
    c->max_memory = 64ull << 20;
}

rf_statsd_flusher *rf_statsd_flusher_new(const rf_statsd_config *cfg, const rf_series_table *series,
                                         rf_emitter out, rf_err *err)
{
    if (cfg->flush_interval_ns <= 0 || cfg->n_percentiles > RF_STATSD_MAX_PERCENTILES ||
        cfg->timer_max_values < 1 || cfg->set_max_exact < 1 || cfg->max_memory < (1u << 20)) {
        rf_err_set(err, EINVAL, "statsd: bad configuration");
        return NULL;
    }
    rf_statsd_flusher *f = calloc(1, sizeof(*f));
    if (!f) {
        rf_err_set(err, ENOMEM, "statsd: out of memory");
        return NULL;
    }
    f->cfg = *cfg;
    f->series = series;
    f->out = out;
    return f;
}

static void state_release(sd_state *s)
{
    free(s->vals);
    free(s->members);
    free(s->sk);
    free(s->hll);
    free(s->ids);
}

void rf_statsd_flusher_free(rf_statsd_flusher *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->n_states; i++)
        state_release(&f->states[i]);
    free(f->states);
    free(f->index);
    free(f);
}

void rf_statsd_flusher_set_config(rf_statsd_flusher *f, const rf_statsd_config *cfg)
{
    if (cfg->flush_interval_ns != f->cfg.flush_interval_ns)
        f->next_flush = 0; /* re-aligned at the next tick */
    bool same_pct =
        cfg->n_percentiles == f->cfg.n_percentiles &&
        memcmp(cfg->percentiles, f->cfg.percentiles, cfg->n_percentiles * sizeof(double)) == 0;
    f->cfg = *cfg;
    /* Other percentiles are other fields: announced again by name. */
    if (!same_pct)
        for (uint32_t i = 0; i < f->n_states; i++)
            f->states[i].announced &= (1u << SD_T__N) - 1;
}

void rf_statsd_flusher_stats_read(const rf_statsd_flusher *f, rf_statsd_stats *out)
{
    _Static_assert(sizeof(rf_statsd_stats) % sizeof(uint64_t) == 0, "64-bit counters only");
    rf_stats_load_words(out, &f->st, sizeof(*out));
    out->states = RF_STAT_LOAD(f->n_states);
}

/* ---- the state of a series ------------------------------------------------ */

static uint32_t slot_home(int32_t slot, uint32_t mask)
{
    return (uint32_t)(((uint64_t)(uint32_t)slot * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static int index_grow(rf_statsd_flusher *f)
{
    uint32_t cap = f->index ? (f->index_mask + 1) * 2 : 1024;
    if (!hold(f, (uint64_t)cap * sizeof(uint32_t)))
        return -ENOMEM;
    uint32_t *ix = calloc(cap, sizeof(uint32_t));
    if (!ix) {
        unhold(f, (uint64_t)cap * sizeof(uint32_t));
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < f->n_states; i++) {
        uint32_t h = slot_home(f->states[i].slot, cap - 1);
        while (ix[h])
            h = (h + 1) & (cap - 1);
        ix[h] = i + 1;
    }
    if (f->index)
        unhold(f, (uint64_t)(f->index_mask + 1) * sizeof(uint32_t));
    free(f->index);
    f->index = ix;
    f->index_mask = cap - 1;
    return 0;
}

static enum sd_type type_of(uint8_t kind)
{
    switch (kind) {
    case RF_KIND_COUNTER: return SD_COUNTER;
    case RF_KIND_GAUGE:
    case RF_KIND_GAUGE_DELTA: return SD_GAUGE;
    case RF_KIND_SET: return SD_SET;
    default: return SD_TIMER;
    }
}

/* The state of `slot`, made on its first sample; NULL when out of memory. */
static sd_state *state_of(rf_statsd_flusher *f, int32_t slot, uint8_t kind)
{
    if (f->index) {
        for (uint32_t h = slot_home(slot, f->index_mask);; h = (h + 1) & f->index_mask) {
            uint32_t i = f->index[h];
            if (!i)
                break;
            if (f->states[i - 1].slot == slot)
                return &f->states[i - 1];
        }
    }
    /* A new series: keep the index at most half full. */
    if ((!f->index || (f->n_states + 1) * 2 > f->index_mask + 1) && index_grow(f) < 0)
        return NULL;
    if (f->n_states == f->cap_states) {
        uint32_t cap = f->cap_states ? f->cap_states * 2 : 256;
        const uint64_t more = (uint64_t)(cap - f->cap_states) * sizeof(sd_state);
        if (!hold(f, more))
            return NULL;
        sd_state *s = realloc(f->states, (size_t)cap * sizeof(sd_state));
        if (!s) {
            unhold(f, more);
            return NULL;
        }
        f->states = s;
        f->cap_states = cap;
    }
    sd_state *s = &f->states[f->n_states];
    memset(s, 0, sizeof(*s));
    s->slot = slot;
    s->type = (uint8_t)type_of(kind);
    uint32_t h = slot_home(slot, f->index_mask);
    while (f->index[h])
        h = (h + 1) & f->index_mask;
    RF_STAT_ADD(f->n_states, 1);
    f->index[h] = f->n_states;
    return s;
}

/* ---- samples ---------------------------------------------------------------- */

static void timer_running_add(sd_state *s, double x)
{
    s->t_sum += x;
    if (x < s->t_min)
        s->t_min = x;
    if (x > s->t_max)
        s->t_max = x;
    double d = x - s->t_mean;
    s->t_mean += d / (double)s->n;
    s->t_m2 += d * (x - s->t_mean);
}

/* Past timer_max_values: the values so far go into a sketch and running sums. */
static int timer_to_sketch(rf_statsd_flusher *f, sd_state *s)
{
    if (!s->sk) {
        const uint64_t size = rf_ddsketch_size(RF_DDSKETCH_DEFAULT_BINS);
        if (!hold(f, size))
            return -ENOMEM;
        s->sk = malloc(size);
        if (!s->sk) {
            unhold(f, size);
            return -ENOMEM;
        }
        rf_ddsketch_init(s->sk, RF_DDSKETCH_DEFAULT_ALPHA, RF_DDSKETCH_DEFAULT_BINS);
    } else {
        rf_ddsketch_reset(s->sk);
    }
    uint32_t n = s->n;
    s->t_sum = 0;
    s->t_min = INFINITY;
    s->t_max = -INFINITY;
    s->t_mean = s->t_m2 = 0;
    for (uint32_t i = 0; i < n; i++) {
        s->n = i + 1;
        timer_running_add(s, s->vals[i]);
        rf_ddsketch_add(s->sk, s->vals[i]);
    }
    s->cap = UINT32_MAX; /* marks sketch mode for this interval */
    RF_STAT_ADD(f->st.sketched, 1);
    return 0;
}

static int timer_add(rf_statsd_flusher *f, sd_state *s, double x)
{
    if (s->cap == UINT32_MAX) {
        s->n++;
        timer_running_add(s, x);
        rf_ddsketch_add(s->sk, x);
        return 0;
    }
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        if (cap > f->cfg.timer_max_values)
            cap = f->cfg.timer_max_values;
        const uint64_t more = (uint64_t)(cap - s->cap) * sizeof(double);
        /* Past timer_max_values, or when the values would not fit under
         * max_memory, the interval goes on in a sketch (a timer with no values
         * yet and no room drops the sample: there is nothing to summarise). */
        if (s->n >= f->cfg.timer_max_values || (s->n && !hold(f, more))) {
            if (timer_to_sketch(f, s) < 0)
                return -ENOMEM;
            return timer_add(f, s, x);
        }
        if (!s->n && !hold(f, more))
            return -ENOMEM;
        double *v = realloc(s->vals, (size_t)cap * sizeof(double));
        if (!v) {
            unhold(f, more);
            return -ENOMEM;
        }
        s->vals = v;
        s->cap = s->vals_cap = cap;
    }
    s->vals[s->n++] = x;
    return 0;
}

static uint64_t member_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int set_grow(rf_statsd_flusher *f, sd_state *s)
{
    uint32_t cap = s->cap ? s->cap * 2 : 16;
    if (!hold(f, (uint64_t)cap * sizeof(uint64_t)))
        return -ENOMEM;
    uint64_t *m = calloc(cap, sizeof(uint64_t));
    if (!m) {
        unhold(f, (uint64_t)cap * sizeof(uint64_t));
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < s->cap; i++) {
        uint64_t v = s->members[i];
        if (!v)
            continue;
        uint32_t h = (uint32_t)member_mix(v) & (cap - 1);
        while (m[h])
            h = (h + 1) & (cap - 1);
        m[h] = v;
    }
    unhold(f, (uint64_t)s->cap * sizeof(uint64_t));
    free(s->members);
    s->members = m;
    s->cap = cap;
    return 0;
}

static int set_add(rf_statsd_flusher *f, sd_state *s, uint64_t member)
{
    if (s->hll && s->n == UINT32_MAX) {
        rf_hll_add(s->hll, member);
        return 0;
    }
    if (member == 0) {
        if (!s->zero_member)
            s->n++;
        s->zero_member = 1;
        return 0;
    }
    if (!s->members || (s->n + 1) * 2 > s->cap) {
        /* Past the exact bound, or when a larger table would not fit under
         * max_memory: the members so far seed a HyperLogLog. */
        if (s->n >= f->cfg.set_max_exact || (s->members && set_grow(f, s) < 0)) {
            if (!s->hll) {
                if (!hold(f, sizeof(rf_hll)))
                    return -ENOMEM;
                if (!(s->hll = malloc(sizeof(rf_hll)))) {
                    unhold(f, sizeof(rf_hll));
                    return -ENOMEM;
                }
            }
            rf_hll_reset(s->hll);
            for (uint32_t i = 0; i < s->cap; i++)
                if (s->members[i])
                    rf_hll_add(s->hll, s->members[i]);
            if (s->zero_member)
                rf_hll_add(s->hll, 0);
            s->n = UINT32_MAX; /* marks HLL mode for this interval */
            RF_STAT_ADD(f->st.hll_sets, 1);
            rf_hll_add(s->hll, member);
            return 0;
        }
        if (!s->members && set_grow(f, s) < 0)
            return -ENOMEM;
    }
    uint32_t h = (uint32_t)member_mix(member) & (s->cap - 1);
    while (s->members[h]) {
        if (s->members[h] == member)
            return 0;
        h = (h + 1) & (s->cap - 1);
    }
    s->members[h] = member;
    s->n++;
    return 0;
}

static int sample_apply(rf_statsd_flusher *f, sd_state *s, const rf_event *ev)
{
    if (s->type == SD_SET) {
        s->updated = 1;
        return set_add(f, s, ev->value.u64);
    }
    double x = rf_event_value_as_f64(ev);
    if (!isfinite(x)) {
        RF_STAT_ADD(f->st.invalid, 1);
        return 0;
    }
    double rate = 1.0;
    if (ev->aux)
        memcpy(&rate, &ev->aux, sizeof(rate));
    switch (s->type) {
    case SD_COUNTER:
        s->value += x * (1.0 / rate); /* StatsD: Number(v) * (1 / sampleRate) */
        break;
    case SD_GAUGE:
        if (ev->kind == RF_KIND_GAUGE_DELTA && s->has_value)
            s->value += x;
        else
            s->value = x;
        s->has_value = 1;
        break;
    default:
        if (timer_add(f, s, x) < 0)
            return -ENOMEM;
        s->value += 1.0 / rate; /* StatsD's timer_counters */
        break;
    }
    s->updated = 1;
    return 0;
}

uint32_t rf_statsd_flusher_process(rf_statsd_flusher *f, rf_event *ev, int32_t *slots, uint32_t n)
{
    if (!f->cfg.enabled)
        return n;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!(ev[i].flags & RF_EVF_STATSD) || ev[i].kind >= RF_KIND_CUMULATIVE) {
            ev[m] = ev[i];
            slots[m++] = slots[i];
            continue;
        }
        RF_STAT_ADD(f->st.samples, 1);
        sd_state *s = state_of(f, slots[i], ev[i].kind);
        if (!s || sample_apply(f, s, &ev[i]) < 0)
            RF_STAT_ADD(f->st.no_memory, 1);
        if (f->cfg.keep_raw) {
            ev[m] = ev[i];
            slots[m++] = slots[i];
        } else {
            RF_STAT_ADD(f->st.raw_dropped, 1);
        }
    }
    return m;
}

/* ---- flush ------------------------------------------------------------------ */

static void out_flush(rf_statsd_flusher *f)
{
    if (f->nbuf) {
        rf_emit(&f->out, f->buf, f->nbuf);
        f->nbuf = 0;
    }
}

static void out_push(rf_statsd_flusher *f, const rf_event *ev)
{
    f->buf[f->nbuf++] = *ev;
    if (f->nbuf == SD_OUT_BATCH)
        out_flush(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int field_name(const rf_statsd_flusher *f, const sd_state *s, uint32_t i, char *buf,
                      size_t size)
{
    if (s->type != SD_TIMER)
        return snprintf(buf, size, "value");
    if (i < SD_T__N)
        return snprintf(buf, size, "%s", timer_fields[i]);
    /* "%v_percentile" of a float64 in Go: 90 -> 90, 99.9 -> 99.9. */
    return snprintf(buf, size, "%.15g_percentile", f->cfg.percentiles[i - SD_T__N]);
}

/* Emits `v` as output field i of s, its definition first when not yet
 * announced (the ids are kept per state). */
static void emit_value(rf_statsd_flusher *f, sd_state *s, uint32_t i, double v,
                       const rf_event *tmpl)
{
    if (!(s->announced & (1u << i))) {
        const rf_series_key *k = rf_series_table_key(f->series, s->slot);
        if (!s->ids) {
            const uint64_t size = (SD_T__N + RF_STATSD_MAX_PERCENTILES) * sizeof(uint64_t);
            if (!hold(f, size)) {
                RF_STAT_ADD(f->st.no_memory, 1);
                return;
            }
            if (!(s->ids = calloc(1, size))) {
                unhold(f, size);
                RF_STAT_ADD(f->st.no_memory, 1);
                return;
            }
        }
        char name[64];
        int nl = field_name(f, s, i, name, sizeof(name));
        size_t base = k->field_offset;
        if (base + (size_t)nl >= sizeof(f->key))
            return;
        memcpy(f->key, k->text, base);
        memcpy(f->key + base, name, (size_t)nl);
        rf_series_key *nk = rf_series_key_new(f->key, base + (size_t)nl, k->measurement_len, base);
        if (!nk) {
            RF_STAT_ADD(f->st.no_memory, 1);
            return;
        }
        s->ids[i] = nk->series_id;
        s->announced |= 1u << i;
        rf_event def = *tmpl;
        def.kind = RF_KIND_SERIES_DEF;
        def.series_id = nk->series_id;
        def.aux = (uint64_t)(uintptr_t)nk;
        out_push(f, &def);
        RF_STAT_ADD(f->st.series_defs, 1);
    }
    rf_event ev = *tmpl;
    ev.series_id = s->ids[i];
    ev.value.f64 = v;
    out_push(f, &ev);
    RF_STAT_ADD(f->st.values, 1);
}

static void flush_timer(rf_statsd_flusher *f, sd_state *s, const rf_event *tmpl)
{
    uint32_t n = s->n;
    double count = s->value, lower, upper, sum = 0, mean, median, stddev;
    double pct[RF_STATSD_MAX_PERCENTILES];
    bool have[RF_STATSD_MAX_PERCENTILES];
    if (s->cap == UINT32_MAX) {
        lower = s->t_min;
        upper = s->t_max;
        sum = s->t_sum;
        mean = sum / n;
        stddev = sqrt(s->t_m2 / n);
        median = rf_ddsketch_quantile(s->sk, 0.5);
        for (uint32_t p = 0; p < f->cfg.n_percentiles; p++) {
            have[p] = true;
            pct[p] = rf_ddsketch_quantile(s->sk, f->cfg.percentiles[p] / 100.0);
        }
        s->cap = 0; /* back to exact values next interval, in a new buffer */
        unhold(f, (uint64_t)s->vals_cap * sizeof(double));
        s->vals_cap = 0;
        free(s->vals);
        s->vals = NULL;
    } else {
        /* Exactly StatsD's arithmetic (lib/process_metrics.js): sorted
         * values, their sum in that order, mean = sum / n, the two-pass
         * population deviation. */
        double *v = s->vals;
        qsort(v, n, sizeof(double), cmp_double);
        lower = v[0];
        upper = v[n - 1];
        for (uint32_t i = 0; i < n; i++)
            sum = i ? sum + v[i] : v[0];
        mean = sum / n;
        double d2 = 0;
        for (uint32_t i = 0; i < n; i++)
            d2 += (v[i] - mean) * (v[i] - mean);
        stddev = sqrt(d2 / n);
        uint32_t mid = n / 2;
        median = (n % 2) ? v[mid] : (v[mid - 1] + v[mid]) / 2;
        for (uint32_t p = 0; p < f->cfg.n_percentiles; p++) {
            double r = f->cfg.percentiles[p] / 100.0 * n;
            /* StatsD leaves a percentile out when its rank rounds to 0. */
            have[p] = n == 1 || floor(r + 0.5) >= 1;
            pct[p] = v[n == 1 ? 0 : rf_quantile_rank(f->cfg.percentiles[p] / 100.0, n)];
        }
    }
    const double vals[SD_T__N] = {count, lower, upper, mean, median, stddev, sum};
    for (uint32_t i = 0; i < SD_T__N; i++)
        emit_value(f, s, i, vals[i], tmpl);
    for (uint32_t p = 0; p < f->cfg.n_percentiles; p++)
        if (have[p])
            emit_value(f, s, SD_T__N + p, pct[p], tmpl);
    s->n = 0;
}

static void flush_set(rf_statsd_flusher *f, sd_state *s, const rf_event *tmpl)
{
    double v;
    if (s->n == UINT32_MAX) {
        v = rf_hll_estimate(s->hll);
        unhold(f, (uint64_t)s->cap * sizeof(uint64_t));
        free(s->members);
        s->members = NULL;
        s->cap = 0;
    } else {
        v = (double)s->n;
        if (s->members)
            memset(s->members, 0, (size_t)s->cap * sizeof(uint64_t));
    }
    emit_value(f, s, 0, v, tmpl);
    s->n = 0;
    s->zero_member = 0;
}

void rf_statsd_flusher_flush(rf_statsd_flusher *f, int64_t now_mono_ns, int64_t now_wall_ns)
{
    rf_event tmpl;
    memset(&tmpl, 0, sizeof(tmpl));
    tmpl.event_time_ns = now_wall_ns;
    tmpl.recv_time_ns = now_mono_ns;
    tmpl.sample_rate = 1.0f;
    tmpl.value_type = RF_VALUE_F64;
    tmpl.kind = RF_KIND_GAUGE;
    tmpl.priority = RF_PRIO_STANDARD;
    for (uint32_t i = 0; i < f->n_states; i++) {
        sd_state *s = &f->states[i];
        switch (s->type) {
        case SD_COUNTER:
            if (s->updated)
                emit_value(f, s, 0, s->value, &tmpl);
            s->value = 0;
            break;
        case SD_GAUGE:
            if (s->has_value && (s->updated || !f->cfg.delete_gauges))
                emit_value(f, s, 0, s->value, &tmpl);
            if (f->cfg.delete_gauges)
                s->has_value = 0;
            break;
        case SD_TIMER:
            if (s->updated && s->n)
                flush_timer(f, s, &tmpl);
            s->value = 0;
            break;
        default:
            if (s->updated)
                flush_set(f, s, &tmpl);
            break;
        }
        s->updated = 0;
    }
    out_flush(f);
    RF_STAT_ADD(f->st.flushes, 1);
}

int64_t rf_statsd_flusher_next_wall(const rf_statsd_flusher *f)
{
    return f->cfg.enabled ? f->next_flush : INT64_MAX;
}

void rf_statsd_flusher_tick(rf_statsd_flusher *f, int64_t now_mono_ns, int64_t now_wall_ns)
{
    const int64_t w = f->cfg.flush_interval_ns;
    if (!f->cfg.enabled)
        return;
    if (f->next_flush == 0 || now_wall_ns < f->next_flush - w) {
        /* First tick, a new interval, or the wall clock stepped back past
         * a whole interval: align to the next boundary from now. */
        f->next_flush = (now_wall_ns / w + 1) * w;
        return;
    }
    if (now_wall_ns < f->next_flush)
        return;
    const int64_t at = f->next_flush;
    f->next_flush = (now_wall_ns / w + 1) * w;
    rf_statsd_flusher_flush(f, now_mono_ns, at);
}
