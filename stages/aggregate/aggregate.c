/* Tumbling-window aggregation. Contract in aggregate.h, design notes in
 * README.md next to this file.
 *
 * Data layout (all allocated by rf_aggregator_new, sized by the config):
 *
 *   bind[slot * n_rules + r]   0 unresolved, 1 rule does not apply, else state+2
 *   states[]                   agg_state, dense, appended, never freed
 *   carry[slot]                last value per series, only for grouped rules
 *   gindex[]                   open addressing (group id, rule) -> state+1,
 *                              only when some rule groups
 *   pend[]                     windows held open after their state moved on
 *   sketch pool / HLL pool     fixed blocks, free lists
 *
 * Closing: every state checks its own windows against close_wm when it gets
 * an event (so a busy series never waits for the sweep), and an incremental
 * sweep (SWEEP_CHUNK states per call) closes idle ones once close_wm passes
 * next_close, the earliest end of any open window.
 */
#include "stages/aggregate/aggregate.h"

#include "core/mem/bound.h"
#include "core/mem/mem.h"
#include "core/stats/stats.h"

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "stages/aggregate/partial.h"
#include "stages/sketch/sketch.h"

#define NONE32 UINT32_MAX
#define BIND_UNRESOLVED 0u
#define BIND_NONE 1u
#define OUT_CAP 256u
#define SWEEP_CHUNK 1024u
#define SCRATCH_BYTES (65536u + 256u)
#define MAX_WINDOW_NS (7LL * 86400LL * RF_NS_PER_S)

enum {
    ST_DEFS_SENT = 1u << 0,
    ST_LATE = 1u << 1,
    ST_FREE = 1u << 2
};
/* A (rule, group) announcement forgotten (its aggregate series expired). */
#define DEFS_GONE UINT64_MAX

/* Peer message types (low byte of the subkind, RF_PEER_STAGE_AGGREGATE). */
enum {
    AGG_MSG_PARTIAL = 1,
    AGG_MSG_REPORT = 2
};
/* Report flags (aux of a report; see "Reports" below). */
enum {
    REP_IDLE = 1u,
    REP_FINAL = 2u
};
/* Bounded wait of an owner for the workers' reports, beyond lateness and
 * idle grace: three pipeline ticks (README.md, "Bounded wait"). */
#define MERGE_WAIT_SLACK_NS (300 * RF_NS_PER_MS)

/* Accumulators of one window. n == 0 means "no window open". */
typedef struct agg_window {
    int64_t start;
    double wcount; /* sum of 1/sample_rate */
    double sum;
    double min, max;
    double first, last;
    double mean, m2; /* Welford */
    double increase;
    uint32_t n;   /* raw events */
    uint32_t aux; /* sketch (or HLL for sets) block, NONE32 when none */
} agg_window;

typedef struct agg_state {
    uint64_t group_id; /* series id, or hash of the group's canonical text */
    agg_window w;
    union {
        double carry; /* ungrouped: the series' last value (NaN: none yet) */
        uint32_t gx;  /* grouped: its current window's accumulators, gacc[gx]
                         * (grouped rules keep their carry per series) */
    };
    uint32_t pending;  /* index+1 into pend[], 0 when none */
    uint32_t rep_slot; /* a series of the group: source of the key text */
    uint32_t refs;     /* grouped: series bound to it (it goes with the last) */
    uint16_t rule;
    uint8_t kind;  /* enum rf_metric_kind of the first event */
    uint8_t flags; /* ST_* */
} agg_state;

static_assert(sizeof(agg_state) <= 128, "aggregation state must stay within 128 bytes");

typedef struct pending_win {
    agg_window w;
    uint32_t gx; /* grouped: the parked window's accumulators */
    uint32_t state;
    uint32_t next_free;
    uint8_t flags;
} pending_win;

typedef struct block_pool {
    uint8_t *mem;
    size_t bsize;
    uint32_t cap, used_hw, nfree;
    uint32_t *free;
} block_pool;

typedef struct rule_rt {
    rf_agg_rule r;
    bool any_measurement, any_field, has_quantile;
    uint16_t mlen, flen;
    uint16_t glen[RF_AGG_MAX_GROUP_BY];
    double window_s;
    char fname[RF_AGG_MAX_FUNCS][16]; /* ":<fn>" suffixes, formatted once */
    uint8_t fname_len[RF_AGG_MAX_FUNCS];
    uint64_t sig;           /* rf_agg_rule_sig: how partials name the rule */
    int64_t done_through;   /* owner: windows ending at or before it were emitted (or
                              * every worker had passed them): a partial for one is late */
    int64_t remote_through; /* the same for windows merged from remote partials */
} rule_rt;

/* Owner side: one group's window being merged from the workers' partials. */
typedef struct own_win {
    uint64_t group_id;
    int64_t start;
    int64_t first_mono; /* when its first partial arrived (bounded wait) */
    rf_agg_acc acc;
    rf_ddsketch *sk; /* malloc'd when a partial brings one */
    rf_hll *hll;
    char *text; /* the group's canonical text, malloc'd */
    uint16_t len, mlen, foff, rule;
    uint8_t kind, late, used;
    uint8_t remote;   /* merged from remote partials: completes by remote_edges/_wait */
    uint8_t done;     /* remote, emitted: kept (blocks freed) for remote_wait from
                       * first_mono, so that an edge's partial for it is late */
    uint64_t senders; /* remote: bit (edge id % 64) of each edge that sent a partial */
    uint32_t next;    /* hash chain (index + 1), or free list */
} own_win;

struct rf_aggregator {
    rule_rt *rules;
    uint32_t n_rules;
    bool grouped;
    bool any_quantile;
    uint8_t late_policy;
    int64_t lateness, grace;
    const rf_series_table *series;
    rf_emitter emitter;
    uint32_t max_series;
    uint32_t *bind;
    double *carry;
    agg_state *states;
    size_t bind_bytes, states_bytes, gindex_bytes;
    uint32_t n_states, max_states;
    uint32_t state_free, n_state_free; /* retired states (ST_FREE), linked by rep_slot */
    uint32_t *gindex;
    uint64_t gmask;
    pending_win *pend;
    uint32_t max_pending, pend_free, pend_hw;
    block_pool sk, hll;
    double sketch_alpha;
    uint32_t sketch_bins;
    int64_t wm, close_wm;
    int64_t tick_wm, wm_mono; /* the watermark the last tick saw, and the
                               * monotonic time of the first tick that saw it */
    int64_t next_close, pass_min;
    bool sweeping;
    uint32_t cursor;
    int64_t emit_mono;
    rf_agg_stats st;
    uint32_t n_out;
    char *scratch;

    /* Two-level aggregation of grouped rules (README.md). Worker side: the
     * windows' accumulators, and what it last reported. */
    uint32_t index, shards;
    rf_peer_send_fn send;
    void *send_ctx;
    rf_agg_acc *gacc;
    size_t gacc_bytes;
    uint32_t gacc_cap, gacc_hw, gacc_nfree;
    uint32_t *gacc_free;
    int64_t ct_pass; /* closed-through while a sweep pass runs */
    int64_t rep_ct;  /* what this worker last reported */
    bool rep_any, rep_idle;
    /* Owner side: windows being merged (chained hash on group, start,
     * rule), the workers' latest reports, the aggregate series announced. */
    own_win *own;
    uint32_t own_cap, own_hw, own_n, own_free;
    uint32_t *own_head;
    uint32_t own_nb;
    uint32_t own_sketches, own_sets;
    int64_t *peer_ct;   /* each worker's latest closed-through, and whether it was */
    uint8_t *peer_idle; /* idle then (nothing open: not waited for) */
    int64_t merge_wait;
    int64_t now_mono;
    uint64_t *defs; /* (group, rule) keys announced, open addressing */
    uint32_t defs_cap, defs_n;
    rf_ddsketch *sk_tmp; /* a received sketch, decoded */
    uint32_t sk_tmp_bins;
    bool closed;
    bool handing_over; /* handover, flush: own partials merge at once */
    /* Between hosts (README.md, "Between hosts"). */
    uint32_t edge_id, remote_edges;
    int64_t remote_wait;
    rf_agg_partial_out_fn partial_out;
    void *partial_out_ctx;
    rf_event out[OUT_CAP];
};

/* ---- functions and config ------------------------------------------------ */

static const char *const fn_names[RF_AGG_FN__COUNT] = {
    "count", "sum", "min", "max", "avg", "first", "last", "stddev", "rate", "increase", "p",
};

int rf_agg_func_parse(const char *name, rf_agg_func *out)
{
    if (!name)
        return -EINVAL;
    if (strcmp(name, "mean") == 0) {
        *out = (rf_agg_func){RF_AGG_AVG, 0};
        return 0;
    }
    for (int i = 0; i < RF_AGG_QUANTILE; i++)
        if (strcmp(name, fn_names[i]) == 0) {
            *out = (rf_agg_func){(uint8_t)i, 0};
            return 0;
        }
    if (name[0] != 'p' || !name[1])
        return -EINVAL;
    const char *d = name + 1;
    size_t nd = 0, ndot = 0, len = strlen(d);
    for (size_t i = 0; i < len; i++) {
        if (d[i] >= '0' && d[i] <= '9')
            nd++;
        else if (d[i] == '.' && i > 0 && i + 1 < len)
            ndot++;
        else
            return -EINVAL;
    }
    if (ndot > 1 || nd > 12)
        return -EINVAL;
    double q;
    if (ndot || len <= 2)
        q = strtod(d, NULL) / 100.0; /* p50, p5, p99.9 */
    else if (strcmp(d, "100") == 0)
        q = 1.0;
    else {
        char buf[20] = "0.";
        memcpy(buf + 2, d, len + 1); /* p999 -> 0.999, p9999 -> 0.9999 */
        q = strtod(buf, NULL);
    }
    if (!(q >= 0 && q <= 1))
        return -EINVAL;
    *out = (rf_agg_func){RF_AGG_QUANTILE, q};
    return 0;
}

const char *rf_agg_func_name(const rf_agg_func *f, char *buf, unsigned long size)
{
    if (f->fn == RF_AGG_QUANTILE)
        snprintf(buf, size, "p%.6g", f->q * 100.0);
    else if (f->fn < RF_AGG_FN__COUNT)
        snprintf(buf, size, "%s", fn_names[f->fn]);
    else
        snprintf(buf, size, "?");
    return buf;
}

void rf_agg_config_defaults(rf_agg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->late_policy = RF_AGG_LATE_DROP;
    cfg->idle_grace_ns = RF_NS_PER_S;
    cfg->max_pending = 65536;
    cfg->max_sketches = 4096;
    cfg->max_sets = 4096;
    cfg->sketch_alpha = RF_DDSKETCH_DEFAULT_ALPHA;
    cfg->sketch_bins = RF_DDSKETCH_DEFAULT_BINS;
}

void rf_agg_config_release(rf_agg_config *cfg)
{
    free(cfg->rules);
    cfg->rules = NULL;
    cfg->n_rules = 0;
}

int rf_agg_config_check(const rf_agg_config *cfg, rf_err *err)
{
    if (!cfg->rules || cfg->n_rules == 0 || cfg->n_rules > RF_AGG_MAX_RULES)
        return rf_err_set(err, EINVAL, "aggregation: from 1 to %u rules, got %u", RF_AGG_MAX_RULES,
                          cfg->n_rules);
    if (cfg->late_policy > RF_AGG_LATE_CURRENT)
        return rf_err_set(err, EINVAL, "aggregation: bad late policy %u", cfg->late_policy);
    if (cfg->allowed_lateness_ns < 0 || cfg->idle_grace_ns < 0)
        return rf_err_set(err, EINVAL, "aggregation: lateness and idle grace must be >= 0");
    double alpha = cfg->sketch_alpha ? cfg->sketch_alpha : RF_DDSKETCH_DEFAULT_ALPHA;
    uint32_t bins = cfg->sketch_bins ? cfg->sketch_bins : RF_DDSKETCH_DEFAULT_BINS;
    if (!(alpha >= 1e-4 && alpha < 0.5) || bins < 16 || bins > RF_DDSKETCH_MAX_BINS)
        return rf_err_set(err, EINVAL,
                          "aggregation: sketch_alpha must be in [0.0001, 0.5) and sketch_bins in "
                          "16..%u",
                          RF_DDSKETCH_MAX_BINS);
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        const rf_agg_rule *r = &cfg->rules[i];
        if (!r->measurement[0] || !r->field[0] || !memchr(r->measurement, 0, RF_AGG_NAME_MAX) ||
            !memchr(r->field, 0, RF_AGG_NAME_MAX))
            return rf_err_set(err, EINVAL, "aggregation rule %u: empty or unterminated name", i);
        if (r->window_ns <= 0 || r->window_ns > MAX_WINDOW_NS)
            return rf_err_set(err, EINVAL, "aggregation rule %u: window must be in (0, 7d]", i);
        if (r->n_funcs == 0 || r->n_funcs > RF_AGG_MAX_FUNCS)
            return rf_err_set(err, EINVAL, "aggregation rule %u: from 1 to %u functions", i,
                              RF_AGG_MAX_FUNCS);
        for (uint32_t f = 0; f < r->n_funcs; f++)
            if (r->funcs[f].fn >= RF_AGG_FN__COUNT ||
                (r->funcs[f].fn == RF_AGG_QUANTILE && !(r->funcs[f].q >= 0 && r->funcs[f].q <= 1)))
                return rf_err_set(err, EINVAL, "aggregation rule %u: bad function %u", i, f);
        if (r->n_group_by > RF_AGG_MAX_GROUP_BY)
            return rf_err_set(err, EINVAL, "aggregation rule %u: at most %u group_by keys", i,
                              RF_AGG_MAX_GROUP_BY);
        for (uint32_t g = 0; g < r->n_group_by; g++)
            if (!r->group_by[g][0] || !memchr(r->group_by[g], 0, RF_AGG_NAME_MAX))
                return rf_err_set(err, EINVAL, "aggregation rule %u: empty group_by key", i);
    }
    return 0;
}

/* ---- pools ------------------------------------------------------------- */

static int pool_init(block_pool *p, uint32_t cap, size_t bsize)
{
    p->bsize = (bsize + 63) & ~(size_t)63;
    p->cap = cap;
    /* Untouched blocks are never paged in: reserving the pool costs address
     * space, not memory, until windows use it. core/mem: on the worker's
     * node when the engine allocates in its scope. */
    p->mem = rf_mem_zalloc((size_t)cap * p->bsize, 64);
    p->free = rf_mem_zalloc((size_t)cap * sizeof(uint32_t), 4);
    return p->mem && p->free ? 0 : -ENOMEM;
}

static void pool_fini(block_pool *p)
{
    rf_mem_free(p->mem, (size_t)p->cap * p->bsize);
    rf_mem_free(p->free, (size_t)p->cap * sizeof(uint32_t));
}

static uint32_t pool_get(block_pool *p)
{
    if (p->nfree)
        return p->free[--p->nfree];
    if (p->used_hw < p->cap)
        return p->used_hw++;
    return NONE32;
}

static void pool_put(block_pool *p, uint32_t i)
{
    p->free[p->nfree++] = i;
}

static inline void *pool_at(const block_pool *p, uint32_t i)
{
    return p->mem + (size_t)i * p->bsize;
}

/* ---- lifecycle --------------------------------------------------------- */

uint64_t rf_agg_rule_sig(const rf_agg_rule *r)
{
    /* Everything that decides what a partial holds and means; the names are
     * NUL-terminated within RF_AGG_NAME_MAX (rf_agg_config_check). */
    char b[(RF_AGG_MAX_GROUP_BY + 2) * (RF_AGG_NAME_MAX + 1) + RF_AGG_MAX_FUNCS * 40 + 64];
    size_t n = 0;
    n += (size_t)snprintf(b + n, sizeof(b) - n, "%s\x1f%s\x1f%lld", r->measurement, r->field,
                          (long long)r->window_ns);
    for (uint32_t f = 0; f < r->n_funcs && f < RF_AGG_MAX_FUNCS; f++)
        n += (size_t)snprintf(b + n, sizeof(b) - n, "\x1f%u:%.17g", r->funcs[f].fn,
                              r->funcs[f].fn == RF_AGG_QUANTILE ? r->funcs[f].q : 0.0);
    for (uint32_t g = 0; g < r->n_group_by && g < RF_AGG_MAX_GROUP_BY; g++)
        n += (size_t)snprintf(b + n, sizeof(b) - n, "\x1eg%s", r->group_by[g]);
    return rf_series_id_of_key(b, n < sizeof(b) ? n : sizeof(b) - 1);
}

/* States, bindings and the group index are touched at random once per event:
 * core/mem backs them with huge pages and pages them in lazily. */
rf_aggregator *rf_aggregator_new(const rf_agg_config *cfg, const rf_series_table *series,
                                 rf_emitter out, rf_err *err)
{
    if (!series)
        return rf_err_set(err, EINVAL, "aggregation: no series table"), NULL;
    if (rf_agg_config_check(cfg, err) < 0)
        return NULL;
    rf_aggregator *a = calloc(1, sizeof(*a));
    if (!a)
        return rf_err_set(err, ENOMEM, "aggregation: out of memory"), NULL;
    rf_series_table_stats ts;
    rf_series_table_stats_read(series, &ts);
    a->series = series;
    a->emitter = out;
    a->max_series = ts.max_series;
    a->n_rules = cfg->n_rules;
    a->late_policy = cfg->late_policy;
    a->lateness = cfg->allowed_lateness_ns;
    a->grace = cfg->idle_grace_ns;
    a->max_states = cfg->max_states ? cfg->max_states : ts.max_series;
    a->max_pending = cfg->max_pending ? cfg->max_pending : 65536;
    a->sketch_alpha = cfg->sketch_alpha ? cfg->sketch_alpha : RF_DDSKETCH_DEFAULT_ALPHA;
    a->sketch_bins = cfg->sketch_bins ? cfg->sketch_bins : RF_DDSKETCH_DEFAULT_BINS;
    a->wm = INT64_MIN;
    a->close_wm = INT64_MIN;
    a->tick_wm = INT64_MIN;
    a->next_close = INT64_MAX;
    a->shards = 1;
    a->merge_wait = a->lateness + a->grace + MERGE_WAIT_SLACK_NS;
    a->edge_id = cfg->edge_id;
    a->remote_edges = cfg->remote_edges;
    a->remote_wait = cfg->remote_wait_ns > 0 ? cfg->remote_wait_ns : 10 * RF_NS_PER_S;
    a->own_free = NONE32;
    a->peer_ct = malloc(sizeof(int64_t));
    a->peer_idle = calloc(1, 1);
    a->rules = calloc(cfg->n_rules, sizeof(rule_rt));
    if (!a->peer_ct || !a->peer_idle)
        goto nomem;
    a->peer_ct[0] = INT64_MIN;
    if (!a->rules)
        goto nomem;
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        rule_rt *rt = &a->rules[i];
        rt->r = cfg->rules[i];
        rt->any_measurement = strcmp(rt->r.measurement, "*") == 0;
        rt->any_field = strcmp(rt->r.field, "*") == 0;
        rt->mlen = (uint16_t)strlen(rt->r.measurement);
        rt->flen = (uint16_t)strlen(rt->r.field);
        for (uint32_t g = 0; g < rt->r.n_group_by; g++)
            rt->glen[g] = (uint16_t)strlen(rt->r.group_by[g]);
        for (uint32_t f = 0; f < rt->r.n_funcs; f++) {
            rt->has_quantile |= rt->r.funcs[f].fn == RF_AGG_QUANTILE;
            rf_agg_func_name(&rt->r.funcs[f], rt->fname[f], sizeof(rt->fname[f]));
            rt->fname_len[f] = (uint8_t)strlen(rt->fname[f]);
        }
        rt->window_s = (double)rt->r.window_ns / (double)RF_NS_PER_S;
        rt->sig = rf_agg_rule_sig(&rt->r);
        rt->done_through = INT64_MIN;
        rt->remote_through = INT64_MIN;
        a->grouped |= rt->r.n_group_by > 0;
        a->any_quantile |= rt->has_quantile;
    }
    a->bind_bytes = (size_t)a->max_series * a->n_rules * sizeof(uint32_t);
    a->bind = rf_mem_huge_zalloc(a->bind_bytes);
    a->states_bytes = (size_t)a->max_states * sizeof(agg_state);
    a->states = rf_mem_huge_zalloc(a->states_bytes);
    a->pend = rf_mem_zalloc((size_t)a->max_pending * sizeof(pending_win), 8);
    a->scratch = rf_mem_zalloc(SCRATCH_BYTES, 8);
    if (!a->bind || !a->states || !a->pend || !a->scratch)
        goto nomem;
    a->pend_free = NONE32;
    a->state_free = NONE32;
    if (a->grouped) {
        a->carry = rf_mem_zalloc((size_t)a->max_series * sizeof(double), 8);
        uint64_t nb = 16;
        while (nb < 2ull * a->max_states)
            nb <<= 1;
        a->gmask = nb - 1;
        a->gindex_bytes = nb * sizeof(uint32_t);
        a->gindex = rf_mem_huge_zalloc(a->gindex_bytes);
        /* A window's accumulators per grouped state, and one per parked
         * window: dense, so only what groups use is paged in. */
        a->gacc_cap = a->max_states + a->max_pending;
        a->gacc_bytes = (size_t)a->gacc_cap * sizeof(rf_agg_acc);
        a->gacc = rf_mem_huge_zalloc(a->gacc_bytes);
        a->gacc_free = rf_mem_zalloc((size_t)a->gacc_cap * sizeof(uint32_t), 4);
        if (!a->carry || !a->gindex || !a->gacc || !a->gacc_free)
            goto nomem;
        for (uint32_t i = 0; i < a->max_series; i++)
            a->carry[i] = NAN;
    }
    if (pool_init(&a->sk, cfg->max_sketches ? cfg->max_sketches : 4096,
                  rf_ddsketch_size(a->sketch_bins)) < 0 ||
        pool_init(&a->hll, cfg->max_sets ? cfg->max_sets : 4096, sizeof(rf_hll)) < 0)
        goto nomem;
    return a;
nomem:
    rf_aggregator_free(a);
    rf_err_set(err, ENOMEM, "aggregation: out of memory for %u series x %u rules", ts.max_series,
               cfg->n_rules);
    return NULL;
}

void rf_aggregator_free(rf_aggregator *a)
{
    if (!a)
        return;
    free(a->rules);
    rf_mem_huge_free(a->bind, a->bind_bytes);
    rf_mem_free(a->carry, (size_t)a->max_series * sizeof(double));
    rf_mem_huge_free(a->states, a->states_bytes);
    rf_mem_huge_free(a->gindex, a->gindex_bytes);
    rf_mem_free(a->pend, (size_t)a->max_pending * sizeof(pending_win));
    rf_mem_free(a->scratch, SCRATCH_BYTES);
    rf_mem_huge_free(a->gacc, a->gacc_bytes);
    rf_mem_free(a->gacc_free, (size_t)a->gacc_cap * sizeof(uint32_t));
    for (uint32_t i = 0; i < a->own_hw; i++)
        if (a->own[i].used) {
            free(a->own[i].text);
            free(a->own[i].sk);
            free(a->own[i].hll);
        }
    free(a->own);
    free(a->own_head);
    free(a->peer_ct);
    free(a->peer_idle);
    free(a->defs);
    free(a->sk_tmp);
    pool_fini(&a->sk);
    pool_fini(&a->hll);
    free(a);
}

int rf_aggregator_set_peers(rf_aggregator *a, uint32_t index, uint32_t shards, rf_peer_send_fn send,
                            void *ctx)
{
    if (shards == 0 || index >= shards)
        return -EINVAL;
    int64_t *ct = malloc((size_t)shards * sizeof(int64_t));
    uint8_t *idle = calloc(shards, 1);
    if (!ct || !idle) {
        free(ct);
        free(idle);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < shards; i++)
        ct[i] = INT64_MIN;
    free(a->peer_ct);
    free(a->peer_idle);
    a->peer_ct = ct;
    a->peer_idle = idle;
    a->index = index;
    a->shards = shards;
    a->send = send;
    a->send_ctx = ctx;
    return 0;
}

/* ---- text of aggregate series ------------------------------------------ */

/* Writes the canonical text of the state's series or group (without the
 * ":fn" suffix) into a->scratch. Returns its length; *mlen and *foff receive
 * the measurement length and field offset. */
static uint32_t group_text(const rf_aggregator *a, const rule_rt *rt, int32_t slot, uint32_t *mlen,
                           uint32_t *foff)
{
    const rf_series_key *k = rf_series_table_key(a->series, slot);
    char *b = a->scratch;
    if (rt->r.n_group_by == 0) {
        memcpy(b, k->text, k->len);
        *mlen = k->measurement_len;
        *foff = k->field_offset;
        return k->len;
    }
    uint32_t n = k->measurement_len;
    memcpy(b, k->text, n);
    *mlen = n;
    const rf_series_tag *tags;
    uint32_t nt = rf_series_table_tags(a->series, slot, &tags);
    for (uint32_t i = 0; i < nt; i++) {
        const char *tk = k->text + tags[i].key_off;
        for (uint32_t g = 0; g < rt->r.n_group_by; g++) {
            if (rt->glen[g] == tags[i].key_len && memcmp(rt->r.group_by[g], tk, rt->glen[g]) == 0) {
                /* The tag's whole "k[=v]" text, as it is in the key. */
                uint32_t end = tags[i].val_off ? (uint32_t)tags[i].val_off + tags[i].val_len
                                               : (uint32_t)tags[i].key_off + tags[i].key_len;
                uint32_t len = end - tags[i].key_off;
                b[n++] = ',';
                memcpy(b + n, tk, len);
                n += len;
                break;
            }
        }
    }
    b[n++] = ' ';
    *foff = n;
    uint32_t fl = k->len - k->field_offset;
    memcpy(b + n, k->text + k->field_offset, fl);
    return n + fl;
}

/* ---- emission ---------------------------------------------------------- */

static void out_flush(rf_aggregator *a)
{
    uint32_t n = a->n_out;
    a->n_out = 0;
    rf_emit(&a->emitter, a->out, n);
}

static void out_push(rf_aggregator *a, const rf_event *ev)
{
    if (a->n_out == OUT_CAP)
        out_flush(a);
    a->out[a->n_out++] = *ev;
}

/* Start of the window of length len holding t. Every caller adds len to a
 * start, so the result keeps start + len within int64: the window holding
 * INT64_MIN, which would start before it, starts at INT64_MIN (so "nothing
 * yet", INT64_MIN, stays that), and the last one ends at INT64_MAX (only
 * t == INT64_MAX is at its end, not before). Timestamps that far out are
 * only accepted with no ingest.timestamp_past limit; without this they
 * wrapped into 2262. */
static inline int64_t align_down(int64_t t, int64_t len)
{
    const int64_t r = t % len;
    int64_t start = t - r; /* |r| < len: no overflow, and rounds towards 0 */
    if (r < 0 && __builtin_sub_overflow(start, len, &start))
        start = INT64_MIN;
    return start > INT64_MAX - len ? INT64_MAX - len : start;
}

/* The end of the window that starts at `start`, saturated. */
static inline int64_t win_end(int64_t start, int64_t len)
{
    int64_t e;
    return __builtin_add_overflow(start, len, &e) ? INT64_MAX : e;
}

/* The value of function f for one window: from a local state's window
 * (ungrouped rules) or from an owner's merged window (grouped rules). */
typedef struct win_src {
    const agg_state *s; /* local */
    const agg_window *w;
    const own_win *o; /* owner */
} win_src;

static bool fn_value(const rf_aggregator *a, const rule_rt *rt, const win_src *src,
                     const rf_agg_func *f, double *v)
{
    if (src->o) {
        const own_win *o = src->o;
        const rf_agg_acc *m = &o->acc;
        if (o->kind == RF_KIND_SET) {
            if (f->fn != RF_AGG_COUNT || !o->hll)
                return false;
            *v = rf_hll_estimate(o->hll);
            return true;
        }
        double inc = rf_agg_dd_value(o->kind == RF_KIND_COUNTER ? m->sum : m->inc);
        switch (f->fn) {
        case RF_AGG_COUNT: *v = rf_agg_dd_value(m->wcount); break;
        case RF_AGG_SUM: *v = rf_agg_dd_value(m->sum); break;
        case RF_AGG_MIN: *v = m->min; break;
        case RF_AGG_MAX: *v = m->max; break;
        case RF_AGG_AVG: *v = rf_agg_acc_mean(m); break;
        case RF_AGG_FIRST: *v = m->first; break;
        case RF_AGG_LAST: *v = m->last; break;
        case RF_AGG_STDDEV: *v = rf_agg_acc_stddev(m); break;
        case RF_AGG_INCREASE: *v = inc; break;
        case RF_AGG_RATE: *v = inc / rt->window_s; break;
        case RF_AGG_QUANTILE:
            if (!o->sk)
                return false;
            *v = rf_ddsketch_quantile(o->sk, f->q);
            break;
        default: return false;
        }
        return m->n > 0;
    }
    const agg_state *s = src->s;
    const agg_window *w = src->w;
    if (s->kind == RF_KIND_SET) {
        if (f->fn != RF_AGG_COUNT || w->aux == NONE32)
            return false;
        *v = rf_hll_estimate(pool_at(&a->hll, w->aux));
        return true;
    }
    double inc = s->kind == RF_KIND_COUNTER ? w->sum : w->increase;
    switch (f->fn) {
    case RF_AGG_COUNT: *v = w->wcount; break;
    case RF_AGG_SUM: *v = w->sum; break;
    case RF_AGG_MIN: *v = w->min; break;
    case RF_AGG_MAX: *v = w->max; break;
    case RF_AGG_AVG: *v = w->mean; break;
    case RF_AGG_FIRST: *v = w->first; break;
    case RF_AGG_LAST: *v = w->last; break;
    case RF_AGG_STDDEV: *v = sqrt(w->m2 > 0 ? w->m2 / w->n : 0); break;
    case RF_AGG_INCREASE: *v = inc; break;
    case RF_AGG_RATE: *v = inc / rt->window_s; break;
    case RF_AGG_QUANTILE:
        if (w->aux == NONE32)
            return false;
        *v = rf_ddsketch_quantile(pool_at(&a->sk, w->aux), f->q);
        break;
    default: return false;
    }
    return true;
}

/* Emits one window's aggregates: the text of its series or group (without
 * ":fn") is in a->scratch[0..base). announce: define the aggregate series
 * first (their first window here). */
static void emit_values(rf_aggregator *a, const rule_rt *rt, const win_src *src, uint8_t kind,
                        int64_t start, uint32_t base, uint32_t mlen, uint32_t foff, bool announce,
                        uint8_t late)
{
    char *b = a->scratch;
    b[base] = ':';
    if (a->n_out == 0 || a->emit_mono == 0)
        a->emit_mono = rf_clock_mono_ns();
    rf_event ev = {
        .event_time_ns = start,
        .recv_time_ns = a->emit_mono,
        .sample_rate = 1.0f,
        .value_type = RF_VALUE_F64,
        .priority = RF_PRIO_STANDARD,
    };
    for (uint32_t i = 0; i < rt->r.n_funcs; i++) {
        const rf_agg_func *f = &rt->r.funcs[i];
        if (kind == RF_KIND_SET && f->fn != RF_AGG_COUNT)
            continue; /* a set only has a distinct count */
        double v;
        bool have = fn_value(a, rt, src, f, &v);
        if (!have && !announce)
            continue;
        size_t nl = rt->fname_len[i];
        memcpy(b + base + 1, rt->fname[i], nl);
        size_t len = base + 1 + nl;
        if (announce) {
            rf_series_key *k = rf_series_key_new(b, len, mlen, foff);
            if (k) {
                rf_event def = ev;
                def.kind = RF_KIND_SERIES_DEF;
                def.series_id = k->series_id;
                def.aux = (uint64_t)(uintptr_t)k;
                def.value.u64 = 0;
                out_push(a, &def);
                RF_STAT_ADD(a->st.series_defs, 1);
            } else {
                RF_STAT_ADD(a->st.key_alloc_failed, 1);
            }
        }
        if (!have)
            continue;
        ev.kind = RF_KIND_AGGREGATE;
        ev.series_id = rf_series_id_of_key(b, len);
        ev.value.f64 = v;
        ev.aux = (uint64_t)rt->r.window_ns;
        ev.flags = late ? RF_EVF_LATE : 0;
        out_push(a, &ev);
        RF_STAT_ADD(a->st.aggregates, 1);
    }
    RF_STAT_ADD(a->st.windows_emitted, 1);
}

/* ---- two-level aggregation: worker side ------------------------------------ */

static void aggregator_receive(rf_aggregator *a, const rf_event *ev);

/* To shard `to`: through the pipeline's transport, or, without one (a lone
 * aggregator: tests, benchmarks), straight to this aggregator's owner side. */
static void peer_out(rf_aggregator *a, uint32_t to, const rf_event *ev)
{
    if (a->send && !(a->handing_over && to == a->index)) {
        a->send(a->send_ctx, to, ev, 1);
        return;
    }
    aggregator_receive(a, ev);
    if (ev->flags & RF_EVF_OWNS_AUX)
        free((void *)(uintptr_t)ev->aux);
}

/* Reports: "every window of mine that ends at or before ct is closed and its
 * partial sent", and whether anything is open here at all (idle: owners do
 * not wait for this worker). Sent to every shard, after the partials it
 * covers (each channel is FIFO). While a sweep pass runs, windows it has not
 * visited may be due: the value from the pass's start holds. */
static int64_t closed_through(const rf_aggregator *a, bool *idle)
{
    *idle = false;
    if (a->sweeping)
        return a->ct_pass;
    if (a->next_close == INT64_MAX) {
        *idle = true;
        return a->close_wm;
    }
    return a->next_close - 1 < a->close_wm ? a->next_close - 1 : a->close_wm;
}

static void send_report(rf_aggregator *a, int64_t ct, unsigned flags)
{
    rf_event ev = {
        .kind = RF_KIND_PEER,
        .subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_AGGREGATE, AGG_MSG_REPORT),
        .event_time_ns = ct,
        .value.u64 = a->index,
        .aux = flags,
        .sample_rate = 1.0f,
    };
    a->rep_ct = ct;
    a->rep_idle = (flags & REP_IDLE) != 0;
    a->rep_any = true;
    for (uint32_t j = 0; j < a->shards; j++) {
        RF_STAT_ADD(a->st.reports_sent, 1);
        peer_out(a, j, &ev);
    }
}

/* A report only when it can complete something: when ct crosses a window
 * boundary of a grouped rule, or the worker goes idle or busy. So at most
 * about one per rule and window per peer, whatever the event rate. */
static void maybe_report(rf_aggregator *a)
{
    if (!a->grouped || a->closed)
        return;
    bool idle;
    int64_t ct = closed_through(a, &idle);
    if (a->rep_any && ct == a->rep_ct && idle == a->rep_idle)
        return;
    bool send = !a->rep_any || idle != a->rep_idle;
    for (uint32_t r = 0; !send && r < a->n_rules; r++) {
        const rule_rt *rt = &a->rules[r];
        if (rt->r.n_group_by)
            send = align_down(ct, rt->r.window_ns) != align_down(a->rep_ct, rt->r.window_ns);
    }
    if (send)
        send_report(a, ct, idle ? REP_IDLE : 0);
}

static uint32_t gacc_get(rf_aggregator *a)
{
    if (a->gacc_nfree)
        return a->gacc_free[--a->gacc_nfree];
    return a->gacc_hw < a->gacc_cap ? a->gacc_hw++ : NONE32;
}

static void gacc_put(rf_aggregator *a, uint32_t i)
{
    a->gacc_free[a->gacc_nfree++] = i;
}

/* A grouped window closed on this worker: its partial goes to the group's
 * owner (rf_event_owner of the group id). */
static void send_partial(rf_aggregator *a, agg_state *s, const agg_window *w, uint32_t gx,
                         uint8_t late)
{
    const rule_rt *rt = &a->rules[s->rule];
    uint32_t mlen, foff;
    uint32_t len = group_text(a, rt, (int32_t)s->rep_slot, &mlen, &foff);
    if (len > UINT16_MAX) {
        RF_STAT_ADD(a->st.partial_alloc_failed, 1);
        return;
    }
    /* A partial must not reach an owner that takes this worker for idle:
     * it would count as late there. Say "busy" first. */
    if (a->rep_any && a->rep_idle && !a->closed) {
        bool idle;
        int64_t ct = closed_through(a, &idle);
        if (ct >= w->start + rt->r.window_ns)
            ct = w->start + rt->r.window_ns - 1; /* a flush: not closed by time */
        send_report(a, ct, 0);
    }
    rf_agg_partial p = {
        .kind = s->kind,
        .flags = late ? RF_AGG_PF_LATE : 0,
        .rule = s->rule,
        .sender = a->index,
        .rule_sig = rt->sig,
        .group_id = s->group_id,
        .start = w->start,
        .window_ns = rt->r.window_ns,
        .acc = a->gacc[gx],
        .text = a->scratch,
        .text_len = (uint16_t)len,
        .measurement_len = (uint16_t)mlen,
        .field_offset = (uint16_t)foff,
    };
    const rf_ddsketch *sk = NULL;
    const rf_hll *hll = NULL;
    if (w->aux != NONE32) {
        if (s->kind == RF_KIND_SET)
            hll = pool_at(&a->hll, w->aux);
        else if (rt->has_quantile)
            sk = pool_at(&a->sk, w->aux);
    }
    size_t blen;
    uint8_t *block = rf_agg_partial_encode(&p, sk, hll, &blen);
    if (!block) {
        RF_STAT_ADD(a->st.partial_alloc_failed, 1);
        return;
    }
    rf_event ev = {
        .kind = RF_KIND_PEER,
        .subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_AGGREGATE, AGG_MSG_PARTIAL),
        .flags = RF_EVF_OWNS_AUX,
        .aux = (uint64_t)(uintptr_t)block,
        .series_id = s->group_id,
        .event_time_ns = w->start,
        .value.u64 = a->index,
        .sample_rate = 1.0f,
    };
    RF_STAT_ADD(a->st.partials_sent, 1);
    RF_STAT_ADD(a->st.windows_closed, 1);
    peer_out(a, rf_event_owner(s->group_id, a->shards), &ev);
}

static void emit_window(rf_aggregator *a, agg_state *s, const agg_window *w, uint32_t gx,
                        uint8_t late)
{
    const rule_rt *rt = &a->rules[s->rule];
    if (rt->r.n_group_by) {
        send_partial(a, s, w, gx, late);
        return;
    }
    uint32_t mlen, foff;
    uint32_t base = group_text(a, rt, (int32_t)s->rep_slot, &mlen, &foff);
    const win_src src = {.s = s, .w = w};
    emit_values(a, rt, &src, s->kind, w->start, base, mlen, foff, !(s->flags & ST_DEFS_SENT), late);
    s->flags |= ST_DEFS_SENT;
    RF_STAT_ADD(a->st.windows_closed, 1);
}

static inline block_pool *pool_of(rf_aggregator *a, const agg_state *s)
{
    return s->kind == RF_KIND_SET ? &a->hll : &a->sk;
}

static inline bool is_grouped(const rf_aggregator *a, const agg_state *s)
{
    return a->rules[s->rule].r.n_group_by > 0;
}

static void close_pending(rf_aggregator *a, agg_state *s)
{
    uint32_t pi = s->pending - 1;
    pending_win *p = &a->pend[pi];
    emit_window(a, s, &p->w, p->gx, p->flags);
    if (p->w.aux != NONE32)
        pool_put(pool_of(a, s), p->w.aux);
    if (is_grouped(a, s))
        gacc_put(a, p->gx);
    p->next_free = a->pend_free;
    a->pend_free = pi;
    s->pending = 0;
}

static void close_current(rf_aggregator *a, agg_state *s)
{
    emit_window(a, s, &s->w, is_grouped(a, s) ? s->gx : NONE32, s->flags & ST_LATE);
    s->w.n = 0; /* aux stays attached: reset when the next window opens */
    s->flags &= (uint8_t)~ST_LATE;
}

static inline void note_open(rf_aggregator *a, int64_t end)
{
    if (end < a->next_close)
        a->next_close = end;
}

static void open_window(rf_aggregator *a, const rule_rt *rt, agg_state *s, int64_t start)
{
    agg_window *w = &s->w;
    w->start = start;
    w->n = 0;
    w->wcount = w->sum = w->mean = w->m2 = w->increase = 0;
    w->first = w->last = 0;
    w->min = INFINITY;
    w->max = -INFINITY;
    if (rt->r.n_group_by)
        rf_agg_acc_reset(&a->gacc[s->gx]);
    if (s->kind == RF_KIND_SET) {
        if (w->aux == NONE32 && (w->aux = pool_get(&a->hll)) == NONE32)
            RF_STAT_ADD(a->st.set_pool_empty, 1);
        if (w->aux != NONE32)
            rf_hll_reset(pool_at(&a->hll, w->aux));
    } else if (rt->has_quantile) {
        if (w->aux == NONE32) {
            if ((w->aux = pool_get(&a->sk)) == NONE32)
                RF_STAT_ADD(a->st.sketch_pool_empty, 1);
            else
                rf_ddsketch_init(pool_at(&a->sk, w->aux), a->sketch_alpha, a->sketch_bins);
        } else {
            rf_ddsketch_reset(pool_at(&a->sk, w->aux));
        }
    }
    note_open(a, start + rt->r.window_ns);
}

/* The state moves to a later window while its current one may still receive
 * late events: park the current window in pend[] until the watermark closes
 * it. Only one window per state is held; without room, it closes now. */
static void park_current(rf_aggregator *a, agg_state *s)
{
    if (s->pending) {
        close_pending(a, s);
        RF_STAT_ADD(a->st.early_closes, 1);
    }
    const bool grouped = is_grouped(a, s);
    uint32_t pi = a->pend_free;
    if (pi != NONE32)
        a->pend_free = a->pend[pi].next_free;
    else if (a->pend_hw < a->max_pending)
        pi = a->pend_hw++;
    uint32_t ngx = NONE32;
    if (pi != NONE32 && a->lateness != 0 && grouped && (ngx = gacc_get(a)) == NONE32) {
        a->pend[pi].next_free = a->pend_free; /* no accumulators: close now */
        a->pend_free = pi;
        pi = NONE32;
    }
    if (pi == NONE32 || a->lateness == 0) {
        close_current(a, s);
        if (pi != NONE32) {
            a->pend[pi].next_free = a->pend_free;
            a->pend_free = pi;
        } else {
            RF_STAT_ADD(a->st.early_closes, 1);
        }
        return;
    }
    pending_win *p = &a->pend[pi];
    p->w = s->w;
    p->state = (uint32_t)(s - a->states);
    p->flags = s->flags & ST_LATE;
    if (grouped) {
        p->gx = s->gx; /* the accumulators went with the window */
        s->gx = ngx;
    }
    s->flags &= (uint8_t)~ST_LATE;
    s->w.aux = NONE32; /* the block went with the window */
    s->w.n = 0;
    s->pending = pi + 1;
}

/* ---- per event ---------------------------------------------------------- */

static uint32_t new_state(rf_aggregator *a, uint32_t rule, int32_t slot, uint64_t gid, uint8_t kind)
{
    if (a->n_states >= a->max_states && a->state_free == NONE32) {
        RF_STAT_ADD(a->st.states_full, 1);
        return NONE32;
    }
    uint32_t gx = NONE32;
    if (a->rules[rule].r.n_group_by && (gx = gacc_get(a)) == NONE32) {
        RF_STAT_ADD(a->st.states_full, 1);
        return NONE32;
    }
    uint32_t i;
    if (a->state_free != NONE32) {
        /* A retired state (rf_aggregator_forget_series) comes back first. */
        i = a->state_free;
        a->state_free = a->states[i].rep_slot;
        RF_STAT_ADD(a->n_state_free, -1);
        assert((a->states[i].flags & ST_FREE) && a->states[i].w.n == 0 && !a->states[i].pending);
    } else {
        i = a->n_states;
        RF_STAT_ADD(a->n_states, 1);
    }
    agg_state *s = &a->states[i];
    memset(s, 0, sizeof(*s));
    s->group_id = gid;
    s->w.aux = NONE32;
    if (gx != NONE32)
        s->gx = gx;
    else
        s->carry = NAN;
    s->rep_slot = (uint32_t)slot;
    s->rule = (uint16_t)rule;
    s->kind = kind;
    return i;
}

static inline bool name_is(const char *want, uint16_t wlen, const char *have, size_t hlen)
{
    return wlen == hlen && memcmp(want, have, hlen) == 0;
}

static inline uint64_t gindex_home(const rf_aggregator *a, uint64_t gid, uint32_t rule)
{
    return (gid ^ ((uint64_t)(rule + 1) * 0x9E3779B97F4A7C15ull)) & a->gmask;
}

/* A group state leaves the index (its last series expired). Linear probing
 * without tombstones: later entries that would become unreachable from
 * their home move back into the hole. */
static void gindex_remove(rf_aggregator *a, uint32_t si)
{
    uint64_t i = gindex_home(a, a->states[si].group_id, a->states[si].rule);
    while (a->gindex[i] != si + 1) {
        if (a->gindex[i] == 0)
            return;
        i = (i + 1) & a->gmask;
    }
    for (uint64_t j = i;;) {
        j = (j + 1) & a->gmask;
        const uint32_t e = a->gindex[j];
        if (e == 0)
            break;
        const agg_state *o = &a->states[e - 1];
        const uint64_t home = gindex_home(a, o->group_id, o->rule);
        if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
            continue; /* still reachable from its home */
        a->gindex[i] = e;
        i = j;
    }
    a->gindex[i] = 0;
}

static uint32_t resolve(rf_aggregator *a, int32_t slot, uint32_t r, uint8_t kind)
{
    const rule_rt *rt = &a->rules[r];
    const rf_series_key *k = rf_series_table_key(a->series, slot);
    if (!rt->any_measurement && !name_is(rt->r.measurement, rt->mlen, k->text, k->measurement_len))
        return BIND_NONE;
    if (!rt->any_field &&
        !name_is(rt->r.field, rt->flen, k->text + k->field_offset, k->len - k->field_offset))
        return BIND_NONE;
    uint32_t si;
    if (rt->r.n_group_by == 0) {
        si = new_state(a, r, slot, k->series_id, kind);
    } else {
        uint32_t mlen, foff;
        uint32_t len = group_text(a, rt, slot, &mlen, &foff);
        uint64_t gid = rf_series_id_of_key(a->scratch, len);
        uint64_t i = gindex_home(a, gid, r);
        for (;; i = (i + 1) & a->gmask) {
            uint32_t e = a->gindex[i];
            if (e == 0)
                break;
            agg_state *s = &a->states[e - 1];
            if (s->group_id == gid && s->rule == r) {
                s->refs++;
                return e - 1 + 2;
            }
        }
        si = new_state(a, r, slot, gid, kind);
        if (si != NONE32) {
            a->gindex[i] = si + 1;
            a->states[si].refs = 1;
        }
    }
    return si == NONE32 ? BIND_NONE : si + 2;
}

/* Chooses the window ev goes to (lateness rules in aggregate.h), or NULL when
 * it is dropped as too late. *in_order: ev lands in the state's newest window. */
static agg_window *pick_window(rf_aggregator *a, const rule_rt *rt, agg_state *s, int64_t t,
                               bool *in_order, uint32_t *gx)
{
    *gx = s->gx;
    const int64_t len = rt->r.window_ns, cw = a->close_wm;
    const int64_t ws = align_down(t, len);
    *in_order = false;
    if (ws + len > cw) { /* its window is still open */
        agg_window *w = NULL;
        if (s->w.n == 0 || ws > s->w.start) {
            if (s->w.n)
                park_current(a, s); /* the accumulators go with it: s->gx changes */
            open_window(a, rt, s, ws);
            w = &s->w;
            *gx = s->gx;
            *in_order = true;
        } else if (ws == s->w.start) {
            w = &s->w;
            *in_order = true;
        } else if (s->pending && a->pend[s->pending - 1].w.start == ws) {
            w = &a->pend[s->pending - 1].w;
            *gx = a->pend[s->pending - 1].gx;
        }
        if (w) {
            if (ws + len <= a->wm)
                RF_STAT_ADD(a->st.late_applied, 1);
            return w;
        }
        /* Older than what the state holds: that window was closed early
         * (pending table full), so the event is treated as beyond lateness. */
    }
    if (a->late_policy == RF_AGG_LATE_DROP) {
        RF_STAT_ADD(a->st.late_dropped, 1);
        return NULL;
    }
    RF_STAT_ADD(a->st.late_to_current, 1);
    if (s->pending) {
        a->pend[s->pending - 1].flags |= ST_LATE;
        *gx = a->pend[s->pending - 1].gx;
        return &a->pend[s->pending - 1].w;
    }
    if (s->w.n == 0)
        open_window(a, rt, s, align_down(cw, len)); /* ends after cw: open */
    s->flags |= ST_LATE;
    return &s->w;
}

static void apply(rf_aggregator *a, agg_state *s, int32_t slot, const rf_event *ev, double x)
{
    const rule_rt *rt = &a->rules[s->rule];
    /* A group whose key-text series expired takes the next one that has an
     * event (its windows were closed then: none is open without a source). */
    if (s->rep_slot == NONE32)
        s->rep_slot = (uint32_t)slot;
    const int64_t len = rt->r.window_ns;
    /* Close what the watermark has passed before deciding where ev goes. */
    if (s->pending && a->pend[s->pending - 1].w.start + len <= a->close_wm)
        close_pending(a, s);
    if (s->w.n && s->w.start + len <= a->close_wm)
        close_current(a, s);
    bool in_order;
    uint32_t gx;
    agg_window *w = pick_window(a, rt, s, ev->event_time_ns, &in_order, &gx);
    if (!w)
        return;
    RF_STAT_ADD(a->st.applied, 1);

    double wgt = 1.0;
    if (ev->sample_rate > 0 && ev->sample_rate < 1)
        wgt = 1.0 / ev->sample_rate;
    if (s->kind == RF_KIND_SET) {
        w->n++;
        w->wcount += wgt;
        if (rt->r.n_group_by)
            a->gacc[gx].n++;
        if (w->aux != NONE32)
            rf_hll_add(pool_at(&a->hll, w->aux), ev->value.u64);
        return;
    }
    double *carry = rt->r.n_group_by ? &a->carry[slot] : &s->carry;
    double inc = 0;
    if (ev->kind == RF_KIND_GAUGE_DELTA) {
        x += isnan(*carry) ? 0 : *carry;
        *carry = x;
    } else if (ev->kind == RF_KIND_COUNTER) {
        inc = x * wgt;
    } else if (in_order) {
        /* Cumulative increase from consecutive in-order samples; a drop is a
         * reset and the new value counts from 0. Late samples do not move the
         * carry (they would look like resets). */
        double prev = *carry;
        if (!isnan(prev))
            inc = x >= prev ? x - prev : x;
        *carry = x;
    }
    if (rt->r.n_group_by) {
        /* The partial's accumulators (partial.h): mergeable, and the same
         * whichever worker saw which of the group's series. */
        w->n++;
        rf_agg_acc_add(&a->gacc[gx], x, ev->kind == RF_KIND_COUNTER ? x * wgt : x, wgt, inc,
                       ev->event_time_ns);
        if (rt->has_quantile && w->aux != NONE32)
            rf_ddsketch_add(pool_at(&a->sk, w->aux), x);
        return;
    }
    uint32_t n = ++w->n;
    w->wcount += wgt;
    w->sum += ev->kind == RF_KIND_COUNTER ? x * wgt : x;
    if (x < w->min)
        w->min = x;
    if (x > w->max)
        w->max = x;
    if (n == 1)
        w->first = x;
    w->last = x;
    double d = x - w->mean;
    w->mean += d / n;
    w->m2 += d * (x - w->mean);
    w->increase += inc;
    if (rt->has_quantile && w->aux != NONE32)
        rf_ddsketch_add(pool_at(&a->sk, w->aux), x);
}

/* ---- two-level aggregation: owner side -------------------------------------- */

static inline uint32_t own_bucket(const rf_aggregator *a, uint64_t gid, int64_t start,
                                  uint16_t rule)
{
    uint64_t h = gid ^ ((uint64_t)start * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)rule << 48);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (uint32_t)(h & (a->own_nb - 1));
}

static own_win *own_find(rf_aggregator *a, uint64_t gid, int64_t start, uint16_t rule)
{
    if (!a->own_nb)
        return NULL;
    for (uint32_t e = a->own_head[own_bucket(a, gid, start, rule)]; e; e = a->own[e - 1].next) {
        own_win *o = &a->own[e - 1];
        if (o->group_id == gid && o->start == start && o->rule == rule)
            return o;
    }
    return NULL;
}

/* Grows the bucket array to twice the entries (rehash): per group window at
 * most, amortised; never per event. */
static int own_rehash(rf_aggregator *a, uint32_t nb)
{
    uint32_t *h = calloc(nb, sizeof(uint32_t));
    if (!h)
        return -ENOMEM;
    free(a->own_head);
    a->own_head = h;
    a->own_nb = nb;
    for (uint32_t i = 0; i < a->own_hw; i++) {
        own_win *o = &a->own[i];
        if (!o->used)
            continue;
        uint32_t b = own_bucket(a, o->group_id, o->start, o->rule);
        o->next = h[b];
        h[b] = i + 1;
    }
    return 0;
}

static own_win *own_add(rf_aggregator *a, uint64_t gid, int64_t start, uint16_t rule)
{
    if (a->own_n >= a->max_states) {
        RF_STAT_ADD(a->st.owner_full, 1);
        return NULL;
    }
    if (a->own_n + 1 > a->own_nb / 2 && own_rehash(a, a->own_nb ? a->own_nb * 2 : 64) < 0 &&
        !a->own_nb)
        return NULL;
    uint32_t i = a->own_free;
    if (i != NONE32) {
        a->own_free = a->own[i].next;
    } else {
        if (a->own_hw == a->own_cap) {
            uint32_t cap = a->own_cap ? a->own_cap * 2 : 64;
            own_win *g = realloc(a->own, (size_t)cap * sizeof(own_win));
            if (!g)
                return NULL;
            a->own = g;
            a->own_cap = cap;
        }
        i = a->own_hw++;
    }
    own_win *o = &a->own[i];
    memset(o, 0, sizeof(*o));
    o->group_id = gid;
    o->start = start;
    o->rule = rule;
    o->used = 1;
    rf_agg_acc_reset(&o->acc);
    uint32_t b = own_bucket(a, gid, start, rule);
    o->next = a->own_head[b];
    a->own_head[b] = i + 1;
    RF_STAT_ADD(a->own_n, 1);
    return o;
}

/* A merged window's text, sketch and HLL, freed. */
static void own_free_blocks(rf_aggregator *a, own_win *o)
{
    free(o->text);
    if (o->sk)
        a->own_sketches--;
    if (o->hll)
        a->own_sets--;
    free(o->sk);
    free(o->hll);
    o->text = NULL;
    o->sk = NULL;
    o->hll = NULL;
}

static void own_remove(rf_aggregator *a, own_win *o)
{
    uint32_t i = (uint32_t)(o - a->own);
    uint32_t *pp = &a->own_head[own_bucket(a, o->group_id, o->start, o->rule)];
    while (*pp != i + 1)
        pp = &a->own[*pp - 1].next;
    *pp = o->next;
    own_free_blocks(a, o);
    o->used = 0;
    o->next = a->own_free;
    a->own_free = i;
    RF_STAT_ADD(a->own_n, -1);
}

static uint64_t defs_key(uint16_t rule, uint64_t gid)
{
    uint64_t k = gid ^ ((uint64_t)(rule + 1) * 0x9E3779B97F4A7C15ull);
    return k == 0 || k == DEFS_GONE ? 1 : k;
}

/* (rule, group) is no longer announced: its aggregate series expired, so the
 * next result announces it again. A tombstone (lookups probe past it); the
 * next growth drops it. */
static void defs_forget(rf_aggregator *a, uint16_t rule, uint64_t gid)
{
    if (!a->defs_cap)
        return;
    uint64_t k = defs_key(rule, gid);
    uint32_t j = (uint32_t)(k * 0x9E3779B97F4A7C15ull >> 32) & (a->defs_cap - 1);
    for (; a->defs[j]; j = (j + 1) & (a->defs_cap - 1))
        if (a->defs[j] == k) {
            a->defs[j] = DEFS_GONE;
            return;
        }
}

/* Whether (rule, group) was announced here; records it if not. A set that
 * cannot grow announces again (a duplicate definition is harmless). */
static bool defs_seen(rf_aggregator *a, uint16_t rule, uint64_t gid)
{
    uint64_t k = defs_key(rule, gid);
    if (a->defs_n + 1 > a->defs_cap / 2) {
        uint32_t cap = a->defs_cap ? a->defs_cap * 2 : 256;
        uint64_t *d = calloc(cap, sizeof(uint64_t));
        if (!d)
            return false;
        a->defs_n = 0;
        for (uint32_t i = 0; i < a->defs_cap; i++)
            if (a->defs[i] && a->defs[i] != DEFS_GONE) {
                a->defs_n++;
                uint32_t j = (uint32_t)(a->defs[i] * 0x9E3779B97F4A7C15ull >> 32) & (cap - 1);
                while (d[j])
                    j = (j + 1) & (cap - 1);
                d[j] = a->defs[i];
            }
        free(a->defs);
        a->defs = d;
        a->defs_cap = cap;
    }
    uint32_t j = (uint32_t)(k * 0x9E3779B97F4A7C15ull >> 32) & (a->defs_cap - 1);
    for (; a->defs[j]; j = (j + 1) & (a->defs_cap - 1))
        if (a->defs[j] == k)
            return true;
    a->defs[j] = k;
    a->defs_n++;
    return false;
}

/* Between hosts: the merged window, as one partial, to the rule's sink. */
static void own_send_remote(rf_aggregator *a, const rule_rt *rt, const own_win *o)
{
    const rf_agg_partial p = {
        .kind = o->kind,
        .flags = (uint8_t)(o->late ? RF_AGG_PF_LATE : 0),
        .rule = o->rule,
        .sender = a->edge_id,
        .rule_sig = rt->sig,
        .group_id = o->group_id,
        .start = o->start,
        .window_ns = rt->r.window_ns,
        .acc = o->acc,
        .text = o->text,
        .text_len = o->len,
        .measurement_len = o->mlen,
        .field_offset = o->foff,
    };
    size_t blen;
    uint8_t *block = rf_agg_partial_encode(&p, o->sk, o->hll, &blen);
    if (block && a->partial_out(a->partial_out_ctx, o->rule, o->group_id, o->start, block, blen))
        RF_STAT_ADD(a->st.remote_out, 1);
    else
        RF_STAT_ADD(a->st.remote_out_failed, 1);
    free(block);
}

/* The one result of a group's window. */
static void own_emit(rf_aggregator *a, own_win *o)
{
    rule_rt *rt = &a->rules[o->rule];
    const bool out = rt->r.partials_to[0] && a->partial_out;
    if (out)
        own_send_remote(a, rt, o);
    if (!out || rt->r.partials_local) {
        memcpy(a->scratch, o->text, o->len);
        const win_src src = {.o = o};
        emit_values(a, rt, &src, o->kind, o->start, o->len, o->mlen, o->foff,
                    !defs_seen(a, o->rule, o->group_id), o->late);
    }
    int64_t end = win_end(o->start, rt->r.window_ns);
    int64_t *through = o->remote ? &rt->remote_through : &rt->done_through;
    if (end > *through)
        *through = end;
    if (!o->remote) {
        own_remove(a, o);
        return;
    }
    /* Edges send in no common order (shards are fetched in turn): what
     * marks a remote window emitted is its own entry, kept without its
     * blocks until remote_wait has passed. */
    own_free_blocks(a, o);
    o->done = 1;
    o->first_mono = a->now_mono;
}

/* Emits every merged window that ends at or before ct (all = every one).
 * Windows merged from remote partials only with remote_too: this host's
 * workers' reports say nothing of the edges'. */
static void own_emit_through(rf_aggregator *a, int64_t ct, bool all, bool remote_too)
{
    for (uint32_t i = 0; i < a->own_hw && a->own_n; i++) {
        own_win *o = &a->own[i];
        if (o->used && o->done && remote_too)
            own_remove(a, o);
        else if (o->used && !o->done && (remote_too || !o->remote) &&
                 (all || win_end(o->start, a->rules[o->rule].r.window_ns) <= ct))
            own_emit(a, o);
    }
}

static int rule_of_sig(const rf_aggregator *a, uint64_t sig, uint16_t hint)
{
    if (hint < a->n_rules && a->rules[hint].sig == sig)
        return hint;
    for (uint32_t r = 0; r < a->n_rules; r++)
        if (a->rules[r].sig == sig)
            return (int)r;
    return -1;
}

static void own_merge_sketch(rf_aggregator *a, own_win *o, const rf_agg_partial *p)
{
    if (!o->sk) {
        if (a->own_sketches >= a->sk.cap) {
            RF_STAT_ADD(a->st.sketch_pool_empty, 1);
            return;
        }
        o->sk = malloc(rf_ddsketch_size(a->sketch_bins));
        if (!o->sk) {
            RF_STAT_ADD(a->st.sketch_pool_empty, 1);
            return;
        }
        rf_ddsketch_init(o->sk, a->sketch_alpha, a->sketch_bins);
        a->own_sketches++;
    }
    uint32_t bins = 16;
    for (int s = 0; s < 2; s++)
        if (p->sk_n[s] > bins)
            bins = p->sk_n[s];
    if (bins > a->sk_tmp_bins) {
        rf_ddsketch *t = realloc(a->sk_tmp, rf_ddsketch_size(bins));
        if (!t) {
            RF_STAT_ADD(a->st.sketch_pool_empty, 1);
            return;
        }
        a->sk_tmp = t;
        a->sk_tmp_bins = bins;
    }
    if (rf_agg_partial_sketch(p, a->sk_tmp, bins) < 0 || rf_ddsketch_merge(o->sk, a->sk_tmp) < 0)
        RF_STAT_ADD(a->st.partials_bad, 1); /* another alpha (a reload in between), or malformed */
}

static own_win *own_merge(rf_aggregator *a, int r, const rf_agg_partial *pp, int64_t start,
                          uint8_t late);

static void own_partial(rf_aggregator *a, const rf_event *ev)
{
    const uint8_t *b = (const uint8_t *)(uintptr_t)ev->aux;
    rf_agg_partial p;
    if (!(ev->flags & RF_EVF_OWNS_AUX) || !b ||
        rf_agg_partial_decode(b, rf_agg_partial_block_len(b), &p) < 0) {
        RF_STAT_ADD(a->st.partials_bad, 1);
        return;
    }
    int r = rule_of_sig(a, p.rule_sig, p.rule);
    if (r < 0 || p.window_ns != a->rules[r].r.window_ns) {
        RF_STAT_ADD(a->st.partials_no_rule, 1); /* gone with a reload, or not yet here */
        return;
    }
    rule_rt *rt = &a->rules[r];
    RF_STAT_ADD(a->st.partials_received, 1);
    const int64_t len = rt->r.window_ns;
    int64_t start = p.start;
    uint8_t late = (p.flags & RF_AGG_PF_LATE) != 0;
    const int64_t closed = rt->done_through;
    if (win_end(start, len) <= closed) {
        /* Its window was emitted: late data, by the stage's lateness rule. */
        RF_STAT_ADD(a->st.partials_late, 1);
        if (a->late_policy == RF_AGG_LATE_DROP || closed > INT64_MAX - len)
            return;
        start = align_down(closed, len); /* the earliest window still open */
        late = 1;
    }
    own_merge(a, r, &p, start, late);
}

/* Merges a decoded partial into the window (rule r, group, start), made
 * when it is the first. NULL when there is no room (counted). */
static own_win *own_merge(rf_aggregator *a, int r, const rf_agg_partial *pp, int64_t start,
                          uint8_t late)
{
    const rf_agg_partial p = *pp;
    const rule_rt *rt = &a->rules[r];
    own_win *o = own_find(a, p.group_id, start, (uint16_t)r);
    if (o && o->done) {
        RF_STAT_ADD(a->st.remote_late, 1); /* emitted as a remote window already */
        return NULL;
    }
    if (!o) {
        o = own_add(a, p.group_id, start, (uint16_t)r);
        if (o)
            o->text = malloc(p.text_len ? p.text_len : 1);
        if (!o || !o->text) {
            if (o)
                own_remove(a, o);
            else
                RF_STAT_ADD(a->st.partial_alloc_failed, 1);
            return NULL;
        }
        memcpy(o->text, p.text, p.text_len);
        o->len = p.text_len;
        o->mlen = p.measurement_len;
        o->foff = p.field_offset;
        o->kind = p.kind;
        o->first_mono = a->now_mono;
    }
    rf_agg_acc_merge(&o->acc, &p.acc);
    o->late |= late;
    if ((p.flags & RF_AGG_PF_SKETCH) && rt->has_quantile)
        own_merge_sketch(a, o, &p);
    if (p.flags & RF_AGG_PF_HLL) {
        if (!o->hll && a->own_sets < a->hll.cap && (o->hll = malloc(sizeof(rf_hll)))) {
            rf_hll_reset(o->hll);
            a->own_sets++;
        }
        if (o->hll)
            rf_hll_merge(o->hll, (const rf_hll *)(const void *)p.hll);
        else
            RF_STAT_ADD(a->st.set_pool_empty, 1);
    }
    return o;
}

/* Every window every busy worker has closed is complete: emitted. The
 * windows so passed count as done even with nothing merged, so that a
 * partial for one that comes later is late, as its events would have been
 * on one worker. With every worker idle, whatever was merged is complete. */
static void own_complete(rf_aggregator *a)
{
    int64_t g = INT64_MAX;
    for (uint32_t j = 0; j < a->shards; j++)
        if (!a->peer_idle[j] && a->peer_ct[j] < g)
            g = a->peer_ct[j];
    if (g == INT64_MAX) {
        own_emit_through(a, g, true, false);
        return;
    }
    for (uint32_t r = 0; r < a->n_rules; r++) {
        rule_rt *rt = &a->rules[r];
        int64_t e = align_down(g, rt->r.window_ns);
        if (rt->r.n_group_by && e > rt->done_through)
            rt->done_through = e;
    }
    if (a->own_n)
        own_emit_through(a, g, false, false);
}

static void own_report(rf_aggregator *a, uint64_t sender, int64_t ct, uint64_t flags)
{
    if (sender >= a->shards) {
        RF_STAT_ADD(a->st.partials_bad, 1);
        return;
    }
    RF_STAT_ADD(a->st.reports_received, 1);
    /* The latest report wins: a worker that was idle may be busy again. */
    a->peer_ct[sender] = ct;
    a->peer_idle[sender] = (flags & (REP_IDLE | REP_FINAL)) != 0;
    own_complete(a);
}

static void aggregator_receive(rf_aggregator *a, const rf_event *ev)
{
    if (ev->kind != RF_KIND_PEER || RF_PEER_STAGE_OF(ev->subkind) != RF_PEER_STAGE_AGGREGATE) {
        RF_STAT_ADD(a->st.partials_bad, 1);
        return;
    }
    switch (RF_PEER_TYPE_OF(ev->subkind)) {
    case AGG_MSG_PARTIAL: own_partial(a, ev); break;
    case AGG_MSG_REPORT: own_report(a, ev->value.u64, ev->event_time_ns, ev->aux); break;
    default: RF_STAT_ADD(a->st.partials_bad, 1); break;
    }
}

void rf_aggregator_receive(rf_aggregator *a, const rf_event *ev, int64_t now_mono_ns)
{
    a->now_mono = now_mono_ns;
    a->emit_mono = 0;
    aggregator_receive(a, ev);
    out_flush(a);
}

/* The bounded wait: a merged window whose first partial came merge_wait ago
 * (remote_wait for one merged from remote partials) is emitted with what it
 * has. */
static void own_tick(rf_aggregator *a, int64_t now)
{
    for (uint32_t i = 0; i < a->own_hw && a->own_n; i++) {
        own_win *o = &a->own[i];
        if (!o->used || now - o->first_mono < (o->remote ? a->remote_wait : a->merge_wait))
            continue;
        if (o->done) {
            own_remove(a, o);
            continue;
        }
        if (o->remote)
            RF_STAT_ADD(a->st.remote_timed_out, 1);
        else
            RF_STAT_ADD(a->st.owner_forced, 1);
        own_emit(a, o);
    }
}

/* ---- between hosts ------------------------------------------------------------ */

void rf_aggregator_set_partial_out(rf_aggregator *a, rf_agg_partial_out_fn out, void *ctx)
{
    a->partial_out = out;
    a->partial_out_ctx = ctx;
}

int rf_aggregator_receive_remote(rf_aggregator *a, const uint8_t *block, size_t len,
                                 int64_t now_mono_ns)
{
    a->now_mono = now_mono_ns;
    a->emit_mono = 0;
    rf_agg_partial p;
    int r;
    if (len < 8 || rf_agg_partial_block_len(block) != len ||
        rf_agg_partial_decode(block, len, &p) < 0 || (r = rule_of_sig(a, p.rule_sig, p.rule)) < 0 ||
        p.window_ns != a->rules[r].r.window_ns) {
        RF_STAT_ADD(a->st.remote_bad, 1);
        return -EINVAL;
    }
    const rule_rt *rt = &a->rules[r];
    /* Emitted windows are known by their entries for remote_wait; one older
     * than that, by event time, behind the newest emitted one is late too
     * (its entry may be gone). Late remote partials are dropped: merging
     * them into a later window would move data between windows that other
     * edges' partials already settled. */
    const int64_t closed = rt->remote_through;
    if (closed != INT64_MIN && win_end(p.start, rt->r.window_ns) <= closed - a->remote_wait) {
        RF_STAT_ADD(a->st.remote_late, 1);
        out_flush(a);
        return 0;
    }
    own_win *o = own_merge(a, r, &p, p.start, (p.flags & RF_AGG_PF_LATE) != 0);
    if (o) {
        RF_STAT_ADD(a->st.remote_in, 1);
        o->remote = 1;
        o->senders |= 1ull << (p.sender & 63u);
        if (a->remote_edges && (uint32_t)__builtin_popcountll(o->senders) >= a->remote_edges) {
            RF_STAT_ADD(a->st.remote_complete, 1);
            own_emit(a, o);
        }
    }
    out_flush(a);
    return 0;
}

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
#define PARTIAL_LINE_HEAD "rf_partial,group="

size_t rf_agg_partial_line_size(size_t len)
{
    return sizeof(PARTIAL_LINE_HEAD) + 16 + 3 + (len * 4 + 2) / 3 + 1 + 21 + 1;
}

size_t rf_agg_partial_line(uint64_t group_id, int64_t start, const uint8_t *b, size_t len,
                           char *out, size_t cap)
{
    if (cap < rf_agg_partial_line_size(len))
        return 0;
    size_t k =
        (size_t)snprintf(out, cap, PARTIAL_LINE_HEAD "%016llx p=", (unsigned long long)group_id);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        out[k++] = b64_chars[v >> 18];
        out[k++] = b64_chars[(v >> 12) & 63];
        out[k++] = b64_chars[(v >> 6) & 63];
        out[k++] = b64_chars[v & 63];
    }
    if (i < len) { /* 1 or 2 bytes left: 2 or 3 characters, no '=' padding */
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0);
        out[k++] = b64_chars[v >> 18];
        out[k++] = b64_chars[(v >> 12) & 63];
        if (i + 1 < len)
            out[k++] = b64_chars[(v >> 6) & 63];
    }
    k += (size_t)snprintf(out + k, cap - k, " %lld\n", (long long)start);
    return k;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

long rf_agg_partial_line_parse(const char *line, size_t len, uint8_t *block, size_t cap)
{
    const size_t head = sizeof(PARTIAL_LINE_HEAD) - 1;
    if (len < head + 16 + 3 || memcmp(line, PARTIAL_LINE_HEAD, head) != 0 ||
        memcmp(line + head + 16, " p=", 3) != 0)
        return -EINVAL;
    const char *p = line + head + 19, *end = line + len;
    size_t n = 0;
    uint32_t acc = 0, bits = 0;
    for (; p < end && *p != ' ' && *p != '\n'; p++) {
        int v = b64_value(*p);
        if (v < 0)
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -ENOSPC;
            block[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)n;
}

/* ---- series lifecycle -------------------------------------------------------- */

void rf_aggregator_forget_series(rf_aggregator *a, int32_t slot, const rf_series_key *key)
{
    if (slot < 0 || (uint32_t)slot >= a->max_series)
        return;
    a->emit_mono = 0;
    uint32_t *row = &a->bind[(size_t)slot * a->n_rules];
    for (uint32_t r = 0; r < a->n_rules; r++) {
        uint32_t b = row[r];
        row[r] = BIND_UNRESOLVED; /* the slot's next series resolves afresh */
        if (b < 2)
            continue;
        agg_state *s = &a->states[b - 2];
        const bool grouped = is_grouped(a, s);
        if (grouped && s->rep_slot == (uint32_t)slot) {
            /* The group loses its source of key text: what this worker
             * holds of its windows goes to the owner now (a partial merges
             * exactly whenever it comes), and the next series of the group
             * with an event takes over (apply). */
            if (s->pending)
                close_pending(a, s);
            if (s->w.n)
                close_current(a, s);
            s->rep_slot = NONE32;
        }
        if (grouped && --s->refs > 0)
            continue; /* the group lives on in its other series */
        /* The state's last series: its windows are emitted (normally long
         * closed by the watermark: the TTL outlasts them) and the state,
         * its block and accumulators retired for reuse. */
        if (s->pending)
            close_pending(a, s);
        if (s->w.n)
            close_current(a, s);
        if (s->w.aux != NONE32)
            pool_put(pool_of(a, s), s->w.aux);
        s->w.aux = NONE32;
        if (grouped) {
            gindex_remove(a, b - 2);
            gacc_put(a, s->gx);
        }
        s->flags = ST_FREE;
        s->rep_slot = a->state_free;
        a->state_free = b - 2;
        RF_STAT_ADD(a->n_state_free, 1);
    }
    if (a->carry)
        a->carry[slot] = NAN;
    /* An aggregate series this aggregator announced as a group's owner:
     * its text is the group's and ":fn"; announce it again next time. */
    const char *colon = NULL;
    for (uint32_t i = key->field_offset; i < key->len; i++)
        if (key->text[i] == ':')
            colon = key->text + i;
    if (a->grouped && colon) {
        uint64_t gid = rf_series_id_of_key(key->text, (size_t)(colon - key->text));
        for (uint32_t r = 0; r < a->n_rules; r++)
            if (a->rules[r].r.n_group_by)
                defs_forget(a, (uint16_t)r, gid);
    }
    out_flush(a);
}

/* ---- sweep ----------------------------------------------------------------- */

static void sweep_visit(rf_aggregator *a, agg_state *s)
{
    int64_t len = a->rules[s->rule].r.window_ns;
    if (s->pending) {
        int64_t end = a->pend[s->pending - 1].w.start + len;
        if (end <= a->close_wm)
            close_pending(a, s);
        else if (end < a->pass_min)
            a->pass_min = end;
    }
    if (s->w.n) {
        int64_t end = s->w.start + len;
        if (end <= a->close_wm)
            close_current(a, s);
        else if (end < a->pass_min)
            a->pass_min = end;
    }
}

static void sweep_step(rf_aggregator *a, uint32_t budget)
{
    if (!a->sweeping) {
        if (a->close_wm < a->next_close)
            return;
        /* Every open window ends at or after next_close: what a report may
         * say while the pass runs. */
        a->ct_pass = a->next_close - 1;
        a->sweeping = true;
        a->cursor = 0;
        a->pass_min = INT64_MAX;
        a->next_close = INT64_MAX; /* windows opened during the pass lower it */
    }
    uint32_t end = a->cursor + budget;
    if (end > a->n_states || end < a->cursor)
        end = a->n_states;
    for (uint32_t i = a->cursor; i < end; i++) {
        /* Closing a window reads its series' key text: two dependent misses
         * per state at high cardinality, so start them ahead of the visit. */
        if (i + 32 < end)
            rf_series_table_prefetch_key(a->series, (int32_t)a->states[i + 32].rep_slot, 0);
        if (i + 16 < end)
            rf_series_table_prefetch_key(a->series, (int32_t)a->states[i + 16].rep_slot, 1);
        sweep_visit(a, &a->states[i]);
    }
    a->cursor = end;
    if (a->cursor >= a->n_states) {
        a->sweeping = false;
        if (a->pass_min < a->next_close)
            a->next_close = a->pass_min;
    }
}

static inline void set_wm(rf_aggregator *a, int64_t t)
{
    RF_STAT_SET(a->wm, t);
    int64_t c;
    if (__builtin_sub_overflow(t, a->lateness, &c)) /* t within lateness of INT64_MIN */
        c = INT64_MIN;
    if (c > a->close_wm)
        a->close_wm = c;
}

/* Events are handled in chunks of CHUNK, in passes, so that the cache misses
 * of a chunk overlap in the memory system instead of queueing one after the
 * other (at 1 M series every step is a miss): prefetch the index buckets;
 * look the slots up and prefetch the binding rows; then apply, prefetching
 * the state of the event PREFETCH_AHEAD places ahead. Measured at 100 k and
 * 1 M series: prefetching all states of a chunk in a separate pass was 20-30%
 * slower (it overruns the line fill buffers); distance 16 was no better. */
#define CHUNK 64u
#define PREFETCH_AHEAD 8u

static void process_one(rf_aggregator *a, const rf_event *ev, int32_t slot)
{
    const uint32_t R = a->n_rules;
    RF_STAT_ADD(a->st.events, 1);
    if (slot < 0 || (uint32_t)slot >= a->max_series) {
        RF_STAT_ADD(a->st.unknown_series, 1);
        return;
    }
    double x = 0;
    if (ev->kind != RF_KIND_SET) {
        x = rf_event_value_as_f64(ev);
        if (!isfinite(x)) {
            RF_STAT_ADD(a->st.invalid_value, 1);
            return;
        }
    }
    if (ev->event_time_ns > a->wm)
        set_wm(a, ev->event_time_ns);
    uint32_t *row = &a->bind[(size_t)slot * R];
    bool matched = false;
    for (uint32_t r = 0; r < R; r++) {
        uint32_t b = row[r];
        if (b == BIND_UNRESOLVED)
            row[r] = b = resolve(a, slot, r, ev->kind);
        if (b == BIND_NONE)
            continue;
        matched = true;
        apply(a, &a->states[b - 2], slot, ev, x);
    }
    if (!matched)
        RF_STAT_ADD(a->st.unmatched, 1);
}

/* Quantile rules: the sketch bucket an event lands in is a miss of its own
 * (the live buckets of many sketches do not fit L2). Once the state has
 * arrived (prefetched PREFETCH_AHEAD events earlier), map the value to its
 * bucket and prefetch that, SKETCH_AHEAD events before the update. Only the
 * first rule of the series is looked at; positive values only. */
#define SKETCH_AHEAD 4u

static void prefetch_bucket(const rf_aggregator *a, const rf_event *ev, int32_t slot)
{
    if (slot < 0 || (uint32_t)slot >= a->max_series || ev->kind == RF_KIND_SET)
        return;
    uint32_t b = a->bind[(size_t)slot * a->n_rules];
    if (b < 2)
        return;
    const agg_state *st = &a->states[b - 2];
    if (st->w.aux == NONE32 || st->kind == RF_KIND_SET || !a->rules[st->rule].has_quantile)
        return;
    const rf_ddsketch *sk = pool_at(&a->sk, st->w.aux);
    double x = rf_event_value_as_f64(ev);
    if (!(x >= DBL_MIN && x <= DBL_MAX))
        return;
    uint32_t k = (uint32_t)(rf_ddsketch_key(sk, x) - sk->lo[0]);
    if (k < sk->n[0])
        __builtin_prefetch(&sk->counts[k], 1);
}

void rf_aggregator_process(rf_aggregator *a, const rf_event *events, uint32_t n)
{
    const uint32_t R = a->n_rules;
    int32_t slots[CHUNK];
    a->emit_mono = 0;
    for (uint32_t base = 0; base < n; base += CHUNK) {
        uint32_t m = n - base < CHUNK ? n - base : CHUNK;
        const rf_event *evs = events + base;
        for (uint32_t i = 0; i < m; i++)
            rf_series_table_prefetch(a->series, evs[i].series_id);
        for (uint32_t i = 0; i < m; i++) {
            if (evs[i].kind >= RF_KIND_AGGREGATE) {
                slots[i] = INT32_MIN; /* not a data event */
                continue;
            }
            slots[i] = rf_series_table_find(a->series, evs[i].series_id);
            if (slots[i] >= 0 && (uint32_t)slots[i] < a->max_series) {
                __builtin_prefetch(&a->bind[(size_t)slots[i] * R]);
                if (a->carry)
                    __builtin_prefetch(&a->carry[slots[i]], 1);
            }
        }
        for (uint32_t i = 0; i < m; i++) {
            uint32_t j = i + PREFETCH_AHEAD;
            if (j < m && slots[j] >= 0 && (uint32_t)slots[j] < a->max_series) {
                uint32_t b = a->bind[(size_t)slots[j] * R];
                if (b >= 2) {
                    /* 120-byte states straddle up to three lines */
                    const char *p = (const char *)&a->states[b - 2];
                    __builtin_prefetch(p, 1);
                    __builtin_prefetch(p + 64, 1);
                    __builtin_prefetch(p + sizeof(agg_state) - 1, 1);
                }
            }
            if (a->any_quantile && i + SKETCH_AHEAD < m)
                prefetch_bucket(a, &evs[i + SKETCH_AHEAD], slots[i + SKETCH_AHEAD]);
            if (slots[i] == INT32_MIN) {
                RF_STAT_ADD(a->st.ignored, 1);
                continue;
            }
            process_one(a, &evs[i], slots[i]);
        }
    }
    sweep_step(a, SWEEP_CHUNK);
    maybe_report(a);
    out_flush(a);
}

/* The idle close, without the wall clock: while no event moves the
 * watermark, the shard's event time is taken to advance with monotonic time
 * from the first tick that saw the watermark where it is (up to one tick
 * interval late, never early). A window closes when that passes its end +
 * lateness + grace. A wall-clock step changes neither term: window boundaries
 * stay in event time, the elapsed idle time is monotonic. */
void rf_aggregator_tick(rf_aggregator *a, int64_t now_mono_ns)
{
    a->emit_mono = 0;
    if (a->wm != a->tick_wm) {
        a->tick_wm = a->wm;
        a->wm_mono = now_mono_ns;
    }
    int64_t idle = now_mono_ns - a->wm_mono, c;
    if (a->wm != INT64_MIN && idle > a->grace && !__builtin_add_overflow(a->wm, idle, &c) &&
        !__builtin_sub_overflow(c, a->lateness, &c) && !__builtin_sub_overflow(c, a->grace, &c) &&
        c > a->close_wm)
        a->close_wm = c;
    sweep_step(a, SWEEP_CHUNK * 16);
    a->now_mono = now_mono_ns;
    if (a->own_n)
        own_tick(a, now_mono_ns);
    maybe_report(a);
    out_flush(a);
}

/* Every local window out now: ungrouped ones emitted, grouped ones sent to
 * their owners as partials. */
static void close_local(rf_aggregator *a)
{
    for (uint32_t i = 0; i < a->n_states; i++) {
        agg_state *s = &a->states[i];
        if (s->pending)
            close_pending(a, s);
        if (s->w.n)
            close_current(a, s);
    }
    a->sweeping = false;
    a->next_close = INT64_MAX;
}

void rf_aggregator_close(rf_aggregator *a)
{
    a->emit_mono = 0;
    close_local(a);
    /* Owners need not wait for this worker any more. */
    if (a->grouped && !a->closed)
        send_report(a, INT64_MAX, REP_IDLE | REP_FINAL);
    a->closed = true;
    out_flush(a);
}

void rf_aggregator_flush(rf_aggregator *a)
{
    /* Windows opened since the close (events drained after it) go out too;
     * those this aggregator owns merge at once, before everything comes out. */
    a->handing_over = true;
    rf_aggregator_close(a);
    a->handing_over = false;
    /* Whatever was merged, at once: the stop's last step (no more partials
     * come), or a lone aggregator's end. */
    a->emit_mono = 0;
    own_emit_through(a, INT64_MAX, true, true);
    out_flush(a);
    /* A fresh start for whatever comes after (a lone aggregator flushed
     * mid-stream): windows are all out, no report is owed. */
    a->closed = false;
    a->rep_any = false;
    for (uint32_t j = 0; j < a->shards; j++) {
        a->peer_ct[j] = INT64_MIN;
        a->peer_idle[j] = 0;
    }
    for (uint32_t r = 0; r < a->n_rules; r++)
        a->rules[r].done_through = INT64_MIN;
}

void rf_aggregator_handover(rf_aggregator *old, rf_aggregator *next)
{
    old->emit_mono = 0;
    /* Its partials reach the owners' current aggregators; those it owns
     * itself merge here at once, so that they move (or come out) with the
     * rest of what it merged. No report: the new aggregator's own follow. */
    old->handing_over = true;
    close_local(old);
    old->handing_over = false;
    /* Done: its later flush (the pipeline drains the old stages) must not
     * tell the owners this worker stopped; the new aggregator reports. */
    old->closed = true;
    for (uint32_t i = 0; i < old->own_hw && old->own_n; i++) {
        own_win *o = &old->own[i];
        if (!o->used)
            continue;
        if (o->done) { /* the new aggregator may take a late partial for it: rare */
            own_remove(old, o);
            continue;
        }
        int r = next ? rule_of_sig(next, old->rules[o->rule].sig, o->rule) : -1;
        own_win *n = r >= 0 ? own_find(next, o->group_id, o->start, (uint16_t)r) : NULL;
        if (r >= 0 && !n)
            n = own_add(next, o->group_id, o->start, (uint16_t)r);
        if (!n) {
            own_emit(old, o); /* the rule is gone (or no room): what it has, now */
            continue;
        }
        /* Moved as it is: the blocks change hands, the wait goes on. */
        n->acc = o->acc;
        n->sk = o->sk;
        n->hll = o->hll;
        n->text = o->text;
        n->len = o->len;
        n->mlen = o->mlen;
        n->foff = o->foff;
        n->kind = o->kind;
        n->late = o->late;
        n->remote = o->remote;
        n->senders = o->senders;
        n->first_mono = o->first_mono;
        next->own_sketches += o->sk != NULL;
        next->own_sets += o->hll != NULL;
        o->sk = NULL;
        o->hll = NULL;
        o->text = NULL;
        own_remove(old, o);
    }
    if (next) {
        if (next->shards == old->shards) {
            memcpy(next->peer_ct, old->peer_ct, (size_t)old->shards * sizeof(int64_t));
            memcpy(next->peer_idle, old->peer_idle, old->shards);
        }
        for (uint32_t r = 0; r < old->n_rules; r++) {
            int nr = rule_of_sig(next, old->rules[r].sig, (uint16_t)r);
            if (nr >= 0 && old->rules[r].done_through > next->rules[nr].done_through)
                next->rules[nr].done_through = old->rules[r].done_through;
            if (nr >= 0 && old->rules[r].remote_through > next->rules[nr].remote_through)
                next->rules[nr].remote_through = old->rules[r].remote_through;
        }
    }
    out_flush(old);
}

void rf_aggregator_stats_read(const rf_aggregator *a, rf_agg_stats *out)
{
    _Static_assert(sizeof(rf_agg_stats) % sizeof(uint64_t) == 0, "64-bit counters only");
    rf_stats_load_words(out, &a->st, sizeof(*out));
    out->owner_windows = RF_STAT_LOAD(a->own_n);
    out->states = RF_STAT_LOAD(a->n_states) - RF_STAT_LOAD(a->n_state_free);
    out->watermark_ns = RF_STAT_LOAD(a->wm);
}

uint32_t rf_aggregator_state_bytes(void)
{
    return (uint32_t)sizeof(agg_state);
}

uint64_t rf_aggregator_memory_in_use(const rf_aggregator *a)
{
    uint64_t series = rf_series_table_count(a->series);
    uint64_t b = (uint64_t)a->n_states * sizeof(agg_state) + series * a->n_rules * sizeof(uint32_t);
    if (a->grouped)
        b += series * sizeof(double) + (a->gmask + 1) * sizeof(uint32_t);
    b += (uint64_t)a->pend_hw * sizeof(pending_win);
    b += (uint64_t)a->sk.used_hw * a->sk.bsize + (uint64_t)a->hll.used_hw * a->hll.bsize;
    b += (uint64_t)a->gacc_hw * sizeof(rf_agg_acc);
    b += (uint64_t)a->own_cap * sizeof(own_win) + (uint64_t)a->own_nb * sizeof(uint32_t) +
         (uint64_t)a->own_sketches * rf_ddsketch_size(a->sketch_bins) +
         (uint64_t)a->own_sets * sizeof(rf_hll) + (uint64_t)a->defs_cap * sizeof(uint64_t);
    return b;
}

uint64_t rf_aggregator_memory_bound(const rf_agg_config *cfg, uint32_t max_series)
{
    if (!cfg || cfg->n_rules == 0)
        return 0;
    const uint64_t max_states = cfg->max_states ? cfg->max_states : max_series;
    const uint64_t max_pending = cfg->max_pending ? cfg->max_pending : 65536;
    const uint32_t bins = cfg->sketch_bins ? cfg->sketch_bins : RF_DDSKETCH_DEFAULT_BINS;
    bool grouped = false;
    for (uint32_t i = 0; i < cfg->n_rules; i++)
        grouped |= cfg->rules[i].n_group_by > 0;
    uint64_t b = rf_mem_alloc_bound(sizeof(rf_aggregator)) +
                 rf_mem_alloc_bound((uint64_t)cfg->n_rules * sizeof(rule_rt));
    b += rf_mem_huge_bound((uint64_t)max_series * cfg->n_rules * sizeof(uint32_t));
    b += rf_mem_huge_bound(max_states * sizeof(agg_state));
    b += rf_mem_alloc_bound(max_pending * sizeof(pending_win)) + rf_mem_alloc_bound(SCRATCH_BYTES);
    if (grouped) {
        uint64_t nb = 16;
        while (nb < 2 * max_states)
            nb <<= 1;
        b += rf_mem_alloc_bound((uint64_t)max_series * sizeof(double)) +
             rf_mem_huge_bound(nb * sizeof(uint32_t));
        /* Window accumulators, and the owner's merge table at its cap (one
         * entry per state, with its bucket and announced-key share; the
         * group texts, like series keys, are not counted here). */
        b += rf_mem_huge_bound((max_states + max_pending) * sizeof(rf_agg_acc)) +
             rf_mem_alloc_bound((max_states + max_pending) * sizeof(uint32_t));
        b += rf_mem_alloc_bound(2 * max_states * sizeof(own_win)) +
             rf_mem_alloc_bound(4 * max_states * sizeof(uint32_t)) +
             rf_mem_alloc_bound(4 * max_states * sizeof(uint64_t));
        /* The owner's sketches and HLLs, capped like the pools. */
        const uint64_t osk = cfg->max_sketches ? cfg->max_sketches : 4096;
        const uint64_t ohl = cfg->max_sets ? cfg->max_sets : 4096;
        b += osk * rf_mem_alloc_bound(rf_ddsketch_size(bins)) +
             ohl * rf_mem_alloc_bound(sizeof(rf_hll));
    }
    const uint64_t sk = cfg->max_sketches ? cfg->max_sketches : 4096;
    const uint64_t hl = cfg->max_sets ? cfg->max_sets : 4096;
    b += rf_mem_alloc_bound(sk * ((rf_ddsketch_size(bins) + 63) & ~(size_t)63)) +
         rf_mem_alloc_bound(sk * sizeof(uint32_t));
    b += rf_mem_alloc_bound(hl * ((sizeof(rf_hll) + 63) & ~(size_t)63)) +
         rf_mem_alloc_bound(hl * sizeof(uint32_t));
    return b;
}
