/* Alert rules: binding rules to series, the fire/resolve state machine,
 * rate anchors and absence ticks. See alert.h for the semantics. */
#include "stages/alert/alert_pvt.h"

#include "core/mem/bound.h"
#include "core/mem/mem.h"
#include "core/stats/stats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_SLOT UINT32_MAX
#define OUT_BATCH 256u
#define RATE_ANCHORS 8u

enum phase {
    PH_OK = 0,
    PH_PENDING = 1,
    PH_FIRING = 2
};

typedef struct rule {
    char name[64];
    rf_series_matcher match; /* deep copy */
    uint8_t type, op;
    bool absence_any;
    double fire, resolve;
    int64_t for_ns, window_ns, absent_ns, anchor_step;
    uint64_t series_id; /* "alert,rule=<name> state": names a rule-wide rule on the wire */
    /* Rule-wide absence (alert.h "Rule-wide rules"). Every shard: the
     * samples processed since its last report, and the latest of them. */
    uint64_t seen_n;
    int64_t seen_recv, seen_event;
    /* The owner only: the latest sample known from any shard (valid once
     * any_started), the one the current fire was decided on, and whether
     * the rule's series was defined by this stage. */
    uint32_t owner;
    bool any_started, series_defined;
    uint8_t any_phase;
    int64_t any_last_mono, any_last_event;
    int64_t any_fired_mono, any_fired_event;
    uint64_t any_instance;
    uint64_t fired, resolved;
} rule;

/* One (rule, series) binding. */
typedef struct astate {
    uint32_t rule;
    uint8_t phase;
    uint8_t rate_n, rate_head;
    uint8_t tbase;     /* TB_*: the clock of `since` and the rate anchors, 0 before a sample */
    int64_t since;     /* sample clock when the condition began to hold (PENDING) */
    int64_t last_mono; /* ABSENCE: receipt time of the last sample, 0 before the first tick */
    uint64_t series_id;
    uint64_t instance; /* correlation id of the current firing */
} astate;

typedef struct anchor {
    int64_t t;
    double v;
} anchor;

/* A slot's bindings are contiguous: states[first .. first + count). */
typedef rf_slot_span slot_bind;
/* The rule of a binding whose series expired (rf_alerts_forget). */
#define RULE_GONE UINT32_MAX

struct rf_alerts {
    uint32_t n_rules;
    rule *rules;
    uint32_t max_slots, max_bindings;
    slot_bind *slot; /* per slot: its bindings (one 8-byte load per event) */
    astate *states;
    uint32_t n_states, cap_states;
    /* RATE_ANCHORS per binding, indexed like states, present when any rule
     * is a rate rule: the ring's address follows from the slot record alone,
     * so it is prefetched together with the state (no dependent miss). */
    anchor *anchors;
    uint32_t cap_anchors; /* in bindings */
    bool has_rate;
    uint32_t *absent; /* binding indices of per-series ABSENCE rules */
    uint32_t n_absent, cap_absent;
    bool absent_stale; /* absent[] may name bindings of expired series */
    /* Rule-wide rules: their indices, sorted by series_id (a report names
     * its rule by that id). */
    uint32_t *any_rules;
    uint32_t n_any;
    uint32_t index, shards;
    bool edge; /* rf_alerts_set_edge: binds threshold rules only */
    rf_peer_send_fn send;
    void *send_ctx;
    bool ticked;
    int64_t last_tick_mono;
    int64_t next_due; /* rf_alerts_next_due: computed by each tick */
    rf_emitter out;
    rf_event obuf[OUT_BATCH];
    uint32_t on;
    rf_alerts_stats st;
};

int rf_cmp_op_parse(const char *s)
{
    static const char *const ops[] = {">", ">=", "<", "<=", "==", "!="};
    for (int i = 0; i < 6; i++) {
        if (strcmp(s, ops[i]) == 0)
            return i;
    }
    return -1;
}

const char *rf_cmp_op_name(enum rf_cmp_op op)
{
    static const char *const ops[] = {">", ">=", "<", "<=", "==", "!="};
    return (unsigned)op < 6 ? ops[op] : "?";
}

int rf_alert_rule_series_text(const char *name, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "alert,rule=%s state", name);
    return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

static inline bool cmp(uint8_t op, double x, double t)
{
    switch (op) {
    case RF_CMP_GT: return x > t;
    case RF_CMP_GE: return x >= t;
    case RF_CMP_LT: return x < t;
    case RF_CMP_LE: return x <= t;
    case RF_CMP_EQ: return x == t;
    default: return x != t;
    }
}

int rf_alert_rule_check(const rf_alert_rule_config *rc, uint32_t i, rf_err *err)
{
    const char *n = rc->name;
    if (!n || !*n)
        return rf_err_set(err, EINVAL, "alert rule %u: no name", i);
    if (strlen(n) >= 64)
        return rf_err_set(err, EINVAL, "alert rule '%s': name longer than 63 bytes", n);
    for (const char *p = n; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return rf_err_set(err, EINVAL,
                              "alert rule '%s': name may hold only letters, digits, '_' and '-' "
                              "(it becomes the subject token alert.<name>)",
                              n);
    }
    if ((unsigned)rc->type > RF_ALERT_ABSENCE)
        return rf_err_set(err, EINVAL, "alert rule '%s': unknown type %d", n, (int)rc->type);
    if (rc->type == RF_ALERT_ABSENCE) {
        if (rc->absent_ns <= 0)
            return rf_err_set(err, EINVAL, "alert rule '%s': absence needs a duration > 0", n);
        return 0;
    }
    if ((unsigned)rc->op > RF_CMP_NE)
        return rf_err_set(err, EINVAL, "alert rule '%s': unknown operator %d", n, (int)rc->op);
    if (!isfinite(rc->fire))
        return rf_err_set(err, EINVAL, "alert rule '%s': threshold is not a finite number", n);
    if (rc->for_ns < 0)
        return rf_err_set(err, EINVAL, "alert rule '%s': negative for-duration", n);
    if (rc->type == RF_ALERT_RATE && rc->window_ns <= 0)
        return rf_err_set(err, EINVAL, "alert rule '%s': rate needs a window > 0", n);
    if (rc->has_resolve) {
        double f = rc->fire, r = rc->resolve;
        bool ok = true;
        switch (rc->op) {
        case RF_CMP_GT:
        case RF_CMP_GE: ok = r <= f; break;
        case RF_CMP_LT:
        case RF_CMP_LE: ok = r >= f; break;
        default: ok = r == f; break;
        }
        if (!ok || !isfinite(r))
            return rf_err_set(err, EINVAL,
                              "alert rule '%s': resolve threshold %g must be on the safe side of "
                              "fire threshold %g for operator %s (hysteresis)",
                              n, r, f, rf_cmp_op_name(rc->op));
    }
    return 0;
}

int rf_alerts_new(const rf_alerts_config *cfg, uint32_t max_slots, rf_emitter out,
                  rf_alerts **alerts, rf_err *err)
{
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        int rc = rf_alert_rule_check(&cfg->rules[i], i, err);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(cfg->rules[i].name, cfg->rules[j].name) == 0)
                return rf_err_set(err, EINVAL, "alert rule '%s': defined twice (rules %u and %u)",
                                  cfg->rules[i].name, j, i);
        }
    }
    if (cfg->n_rules > RF_SLOT_SPAN_MAX)
        return rf_err_set(err, EINVAL, "alerts: %u rules, at most %u", cfg->n_rules,
                          RF_SLOT_SPAN_MAX);
    rf_alerts *a = calloc(1, sizeof(*a));
    if (!a)
        return rf_err_set(err, ENOMEM, "alerts: out of memory");
    a->n_rules = cfg->n_rules;
    a->max_slots = max_slots;
    a->max_bindings = cfg->max_bindings ? cfg->max_bindings : 4u * (max_slots ? max_slots : 1);
    a->out = out;
    a->rules = calloc(cfg->n_rules ? cfg->n_rules : 1, sizeof(rule));
    /* Per series slot, read per event: core/mem, on the worker's node in the
     * engine's scope. */
    a->slot = rf_mem_zalloc((max_slots ? max_slots : 1) * sizeof(slot_bind), 8);
    if (!a->rules || !a->slot) {
        rf_alerts_free(a);
        return rf_err_set(err, ENOMEM, "alerts: out of memory for %u slots", max_slots);
    }
    for (uint32_t i = 0; i < max_slots; i++)
        a->slot[i] = (slot_bind){RF_SLOT_SPAN_NONE, 0, 0};
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        const rf_alert_rule_config *rc = &cfg->rules[i];
        rule *r = &a->rules[i];
        snprintf(r->name, sizeof(r->name), "%s", rc->name);
        r->type = (uint8_t)rc->type;
        r->op = (uint8_t)rc->op;
        r->fire = rc->fire;
        r->resolve = rc->has_resolve ? rc->resolve : rc->fire;
        r->for_ns = rc->for_ns;
        r->window_ns = rc->window_ns;
        r->anchor_step = rc->window_ns / RATE_ANCHORS;
        r->absent_ns = rc->absent_ns;
        r->absence_any = rc->absence_any;
        a->has_rate |= rc->type == RF_ALERT_RATE;
        char text[96];
        int tl = rf_alert_rule_series_text(r->name, text, sizeof(text)); /* names < 64 bytes */
        r->series_id = rf_series_id_of_key(text, tl > 0 ? (size_t)tl : 0);
        if (rf_series_matcher_copy(&r->match, &rc->match) != 0) {
            rf_alerts_free(a);
            return rf_err_set(err, ENOMEM, "alerts: out of memory");
        }
        a->n_any += r->type == RF_ALERT_ABSENCE && r->absence_any;
    }
    a->any_rules = calloc(a->n_any ? a->n_any : 1, sizeof(uint32_t));
    if (!a->any_rules) {
        rf_alerts_free(a);
        return rf_err_set(err, ENOMEM, "alerts: out of memory");
    }
    a->n_any = 0;
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        if (a->rules[i].type != RF_ALERT_ABSENCE || !a->rules[i].absence_any)
            continue;
        /* Insertion by series id: rules are few and this runs once. */
        uint32_t j = a->n_any++;
        while (j > 0 && a->rules[a->any_rules[j - 1]].series_id > a->rules[i].series_id) {
            a->any_rules[j] = a->any_rules[j - 1];
            j--;
        }
        a->any_rules[j] = i;
    }
    a->shards = 1;
    RF_STAT_SET(a->st.rules, cfg->n_rules);
    *alerts = a;
    return 0;
}

void rf_alerts_free(rf_alerts *a)
{
    if (!a)
        return;
    for (uint32_t i = 0; a->rules && i < a->n_rules; i++)
        rf_series_matcher_release(&a->rules[i].match);
    free(a->rules);
    rf_mem_free(a->slot, (a->max_slots ? a->max_slots : 1) * sizeof(slot_bind));
    free(a->states);
    free(a->anchors);
    free(a->absent);
    free(a->any_rules);
    free(a);
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t esize)
{
    if (need <= *cap)
        return true;
    uint32_t nc = *cap ? *cap : 64;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, (size_t)nc * esize);
    if (!np)
        return false;
    *p = np;
    *cap = nc;
    return true;
}

uint32_t rf_alerts_rule_count(const rf_alerts *a)
{
    return a->n_rules;
}

const char *rf_alerts_rule_name(const rf_alerts *a, uint32_t rule_id)
{
    return rule_id < a->n_rules ? a->rules[rule_id].name : NULL;
}

void rf_alerts_stats_read(const rf_alerts *a, rf_alerts_stats *out)
{
    out->rules = RF_STAT_LOAD(a->st.rules);
    rf_stats_load_words(&out->evaluated, &a->st.evaluated,
                        sizeof(*out) - offsetof(rf_alerts_stats, evaluated));
    out->bindings = RF_STAT_LOAD(a->n_states);
}

/* ---------------------------------------------------------------- emission */

static void out_flush(rf_alerts *a)
{
    rf_emit(&a->out, a->obuf, a->on);
    a->on = 0;
}

static void emit_alert(rf_alerts *a, uint32_t rule_id, uint64_t series_id, double v,
                       int64_t t_event, int64_t t_recv, uint64_t instance, bool resolved)
{
    if (a->on == OUT_BATCH)
        out_flush(a);
    rf_event *e = &a->obuf[a->on++];
    memset(e, 0, sizeof(*e));
    e->event_time_ns = t_event;
    e->recv_time_ns = t_recv;
    e->series_id = series_id;
    e->value.f64 = v;
    e->correlation_id = instance;
    e->aux = rule_id;
    e->sample_rate = 1.0f;
    e->value_type = RF_VALUE_F64;
    e->kind = RF_KIND_ALERT;
    e->priority = RF_PRIO_CRITICAL;
    e->flags = resolved ? RF_EVF_ALERT_RESOLVED : 0;
    if (resolved) {
        RF_STAT_ADD(a->st.resolved, 1);
        a->rules[rule_id].resolved++;
    } else {
        RF_STAT_ADD(a->st.fired, 1);
        a->rules[rule_id].fired++;
    }
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* High bit marks an alert instance. A function of what fired and when, not
 * of a worker's counter, so that 1 worker and N give the same ids. */
static uint64_t new_instance(const rule *r, uint64_t series_id, int64_t t_event, int64_t t_recv)
{
    uint64_t h =
        mix64(r->series_id ^ mix64(series_id ^ mix64((uint64_t)t_event ^ mix64((uint64_t)t_recv))));
    return (1ull << 63) | h;
}

/* ---------------------------------------------------------------- binding */

static void absent_compact(rf_alerts *a);

void rf_alerts_define(rf_alerts *a, int32_t slot, const rf_series_key *key)
{
    if (slot < 0 || (uint32_t)slot >= a->max_slots || !key || !rf_slot_span_open(a->slot[slot]))
        return;
    /* Bindings of expired series leave absent[] before their room is reused. */
    if (a->absent_stale)
        absent_compact(a);
    const uint32_t absent_before = a->n_absent;
    /* A rule's own series carries alerts, never samples: nothing binds to
     * it (a per-series absence on measurement "alert" would fire on it). */
    for (uint32_t i = 0; i < a->n_rules; i++)
        if (a->rules[i].series_id == key->series_id)
            return;
    uint32_t first = a->n_states;
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->n_rules; i++) {
        rule *r = &a->rules[i];
        if ((a->edge && r->type != RF_ALERT_THRESHOLD) || !rf_series_matcher_match(&r->match, key))
            continue;
        if (a->n_states >= a->max_bindings ||
            !grow((void **)&a->states, &a->cap_states, a->n_states + 1, sizeof(astate))) {
            RF_STAT_ADD(a->st.bindings_refused, 1);
            continue;
        }
        astate *s = &a->states[a->n_states];
        memset(s, 0, sizeof(*s));
        s->rule = i;
        s->series_id = key->series_id;
        if (a->has_rate && a->cap_anchors < a->cap_states) {
            anchor *na = realloc(a->anchors, (size_t)a->cap_states * RATE_ANCHORS * sizeof(anchor));
            if (!na) {
                RF_STAT_ADD(a->st.bindings_refused, 1);
                continue;
            }
            a->anchors = na;
            a->cap_anchors = a->cap_states;
        }
        if (r->type == RF_ALERT_ABSENCE && !r->absence_any) {
            if (!grow((void **)&a->absent, &a->cap_absent, a->n_absent + 1, sizeof(uint32_t))) {
                RF_STAT_ADD(a->st.bindings_refused, 1);
                continue;
            }
            a->absent[a->n_absent++] = a->n_states;
        }
        RF_STAT_ADD(a->n_states, 1);
        n++;
    }
    uint32_t at = rf_slot_span_place(&a->slot[slot], first, n);
    if (at != first) {
        /* The room of the slot's expired series: move the new bindings in. */
        memmove(&a->states[at], &a->states[first], (size_t)n * sizeof(astate));
        for (uint32_t i = absent_before; i < a->n_absent; i++)
            a->absent[i] -= first - at;
        RF_STAT_SET(a->n_states, first);
    }
}

/* Drops the absent[] entries of expired series' bindings (swap with last). */
static void absent_compact(rf_alerts *a)
{
    for (uint32_t i = 0; i < a->n_absent;) {
        if (a->states[a->absent[i]].rule == RULE_GONE)
            a->absent[i] = a->absent[--a->n_absent];
        else
            i++;
    }
    a->absent_stale = false;
}

void rf_alerts_forget(rf_alerts *a, int32_t slot)
{
    if (slot < 0 || (uint32_t)slot >= a->max_slots || rf_slot_span_open(a->slot[slot]))
        return;
    const slot_bind sb = a->slot[slot];
    for (uint32_t j = 0; j < sb.count; j++)
        a->states[sb.first + j].rule = RULE_GONE;
    a->absent_stale |= sb.count > 0;
    rf_slot_span_retire(&a->slot[slot]);
}

/* ---------------------------------------------------------------- evaluation */

/* The clock a binding measures for-durations and rates on. A sample's own
 * event time when it has one that is not the daemon's wall clock (a client
 * timestamp, or an aggregate's window start): replayed or batched data then
 * alerts as it would have live. Otherwise its monotonic receipt time: the
 * event time of such a sample is the wall clock at receipt, and a step of the
 * wall clock must neither fire a for-duration at once nor stall it. */
enum {
    TB_EVENT = 1,
    TB_RECV = 2
};

static inline int64_t sample_clock(const rf_event *ev, uint8_t *base)
{
    if ((ev->flags & RF_EVF_HAS_CLIENT_TIME) || ev->kind == RF_KIND_AGGREGATE) {
        *base = TB_EVENT;
        return ev->event_time_ns;
    }
    *base = TB_RECV;
    return ev->recv_time_ns;
}

/* The rate over the window, after recording the sample; false while the
 * retained history is shorter than half the window. */
static bool rate_update(rf_alerts *a, const rule *r, astate *s, int64_t t, double v, double *rate)
{
    anchor *ring = &a->anchors[(size_t)(s - a->states) * RATE_ANCHORS];
    /* Drop anchors older than the window, keeping at least one. */
    while (s->rate_n > 1 && t - ring[s->rate_head].t > r->window_ns) {
        s->rate_head = (uint8_t)((s->rate_head + 1) % RATE_ANCHORS);
        s->rate_n--;
    }
    if (s->rate_n == 1 && t - ring[s->rate_head].t > r->window_ns) {
        s->rate_n = 0; /* a gap longer than the window: start again */
    }
    bool have = false;
    if (s->rate_n > 0) {
        const anchor *ref = &ring[s->rate_head];
        int64_t dt = t - ref->t;
        if (dt > 0 && dt * 2 >= r->window_ns) {
            *rate = (v - ref->v) * 1e9 / (double)dt;
            have = true;
        }
    }
    /* Record an anchor every window/8 of event time. */
    uint32_t last = (s->rate_head + s->rate_n + RATE_ANCHORS - 1) % RATE_ANCHORS;
    if (s->rate_n == 0 || t - ring[last].t >= r->anchor_step) {
        if (s->rate_n == RATE_ANCHORS) {
            s->rate_head = (uint8_t)((s->rate_head + 1) % RATE_ANCHORS);
            s->rate_n--;
        }
        uint32_t pos = (s->rate_head + s->rate_n) % RATE_ANCHORS;
        ring[pos].t = t;
        ring[pos].v = v;
        s->rate_n++;
    }
    return have;
}

/* t: the sample's clock (sample_clock); alerts carry its event time. */
static void step(rf_alerts *a, uint32_t rid, const rule *r, astate *s, const rf_event *ev, double x,
                 int64_t t)
{
    switch (s->phase) {
    case PH_OK:
        if (!cmp(r->op, x, r->fire))
            return;
        if (r->for_ns > 0) {
            s->phase = PH_PENDING;
            s->since = t;
            return;
        }
        break;
    case PH_PENDING:
        if (!cmp(r->op, x, r->fire)) {
            s->phase = PH_OK;
            return;
        }
        if (t - s->since < r->for_ns)
            return;
        break;
    default: /* PH_FIRING */
        if (cmp(r->op, x, r->resolve))
            return;
        s->phase = PH_OK;
        emit_alert(a, rid, s->series_id, x, ev->event_time_ns, ev->recv_time_ns, s->instance, true);
        return;
    }
    s->phase = PH_FIRING;
    s->instance = new_instance(r, s->series_id, ev->event_time_ns, ev->recv_time_ns);
    emit_alert(a, rid, s->series_id, x, ev->event_time_ns, ev->recv_time_ns, s->instance, false);
}

/* Whether sample (recv, event) comes after (recv0, event0): receipt time
 * first, event time on a tie, so every shard count orders samples alike. */
static inline bool later(int64_t recv, int64_t event, int64_t recv0, int64_t event0)
{
    return recv > recv0 || (recv == recv0 && event > event0);
}

/* Prefetch distances (events ahead): the slot's binding record first, then,
 * once that is in cache, the binding state it points to (and the rate
 * anchors beside it). With series spread over more memory than the caches
 * hold, these hide most of the two DRAM round trips per event. */
#define PF_SLOT 16u
#define PF_STATE 8u

void rf_alerts_process(rf_alerts *a, const rf_event *events, const int32_t *slots, uint32_t n)
{
    uint64_t evaluated = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + PF_SLOT < n && (uint32_t)slots[i + PF_SLOT] < a->max_slots)
            __builtin_prefetch(&a->slot[slots[i + PF_SLOT]]);
        if (i + PF_STATE < n && (uint32_t)slots[i + PF_STATE] < a->max_slots) {
            const slot_bind *pb = &a->slot[slots[i + PF_STATE]];
            if (pb->count) {
                __builtin_prefetch(&a->states[pb->first], 1);
                if (a->has_rate) {
                    const anchor *pa = &a->anchors[(size_t)pb->first * RATE_ANCHORS];
                    __builtin_prefetch(pa, 1);
                    __builtin_prefetch(pa + RATE_ANCHORS - 1, 1);
                }
            }
        }
        uint32_t slot = (uint32_t)slots[i];
        if (slot >= a->max_slots)
            continue;
        slot_bind sb = a->slot[slot];
        if (sb.count == 0)
            continue;
        const rf_event *ev = &events[i];
        if (ev->kind >= RF_KIND_ALERT)
            continue; /* never alert on alerts or control events */
        double x = rf_event_value_as_f64(ev);
        /* Its threshold rules ran at the critical edge (alert.h). */
        const bool edge_done = (ev->flags & RF_EVF_EDGE_DONE) != 0;
        astate *s = &a->states[sb.first];
        for (uint32_t j = 0; j < sb.count; j++, s++) {
            rule *r = &a->rules[s->rule];
            if (edge_done && r->type == RF_ALERT_THRESHOLD)
                continue;
            evaluated++;
            if (r->type != RF_ALERT_ABSENCE) {
                uint8_t base;
                int64_t t = sample_clock(ev, &base);
                if (__builtin_expect(s->tbase != base, 0)) {
                    /* First sample, or the series changed clocks: durations
                     * measured so far are on the other clock; start over. */
                    s->tbase = base;
                    s->rate_n = 0;
                    s->since = t;
                }
                if (r->type == RF_ALERT_THRESHOLD) {
                    step(a, s->rule, r, s, ev, x, t);
                } else {
                    double rate;
                    if (rate_update(a, r, s, t, x, &rate))
                        step(a, s->rule, r, s, ev, rate, t);
                }
            } else if (r->absence_any) {
                /* Reported to the rule's owner at the tick (alert.h). */
                if (r->seen_n++ == 0 ||
                    later(ev->recv_time_ns, ev->event_time_ns, r->seen_recv, r->seen_event)) {
                    r->seen_recv = ev->recv_time_ns;
                    r->seen_event = ev->event_time_ns;
                }
            } else {
                s->last_mono = ev->recv_time_ns;
                if (s->phase == PH_FIRING) {
                    s->phase = PH_OK;
                    emit_alert(a, s->rule, s->series_id, 0, ev->event_time_ns, ev->recv_time_ns,
                               s->instance, true);
                }
            }
        }
    }
    RF_STAT_ADD(a->st.evaluated, evaluated);
    out_flush(a);
}

/* ---------------------------------------------------------------- rule-wide */

void rf_alerts_set_peers(rf_alerts *a, uint32_t index, uint32_t shards, rf_peer_send_fn send,
                         void *ctx)
{
    /* Without a way to reach the others the stage can only be alone. */
    const bool alone = !send || shards == 0 || index >= shards;
    a->index = alone ? 0 : index;
    a->shards = alone ? 1 : shards;
    a->send = alone ? NULL : send;
    a->send_ctx = alone ? NULL : ctx;
    for (uint32_t i = 0; i < a->n_any; i++) {
        rule *r = &a->rules[a->any_rules[i]];
        r->owner = rf_event_owner(r->series_id, a->shards);
    }
}

void rf_alerts_set_edge(rf_alerts *a)
{
    a->edge = true;
}

uint64_t rf_alerts_rule_series_id(const rf_alerts *a, uint32_t rule_id)
{
    return rule_id < a->n_rules ? a->rules[rule_id].series_id : 0;
}

/* Before a rule-wide rule's first alert from this stage: its series, in the
 * output ahead of the alert, so the pipeline defines it in this shard's
 * table (like an aggregate series) before any sink names it. */
static void define_rule_series(rf_alerts *a, rule *r)
{
    if (r->series_defined)
        return;
    r->series_defined = true;
    char text[96];
    int len = rf_alert_rule_series_text(r->name, text, sizeof(text));
    rf_series_key *k = len > 0 ? rf_series_key_new(text, (size_t)len, 5, (size_t)len - 5) : NULL;
    if (!k) {
        RF_STAT_ADD(a->st.series_def_failed, 1); /* the alert still goes out, named by id */
        return;
    }
    if (a->on == OUT_BATCH)
        out_flush(a);
    rf_event *e = &a->obuf[a->on++];
    memset(e, 0, sizeof(*e));
    e->kind = RF_KIND_SERIES_DEF;
    e->series_id = k->series_id;
    e->aux = (uint64_t)(uintptr_t)k;
    e->sample_rate = 1.0f;
}

static rule *any_rule_of(rf_alerts *a, uint64_t series_id)
{
    uint32_t lo = 0, hi = a->n_any;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        rule *r = &a->rules[a->any_rules[mid]];
        if (r->series_id == series_id)
            return r;
        if (r->series_id < series_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void rf_alerts_peer_receive(rf_alerts *a, const rf_event *ev)
{
    rule *r = RF_PEER_TYPE_OF(ev->subkind) == RF_ALERT_PEER_REPORT && ev->value.u64
                  ? any_rule_of(a, ev->series_id)
                  : NULL;
    if (!r || r->owner != a->index) {
        RF_STAT_ADD(a->st.reports_unknown, 1);
        return;
    }
    RF_STAT_ADD(a->st.reports_received, 1);
    if (a->ticked && ev->recv_time_ns < a->last_tick_mono - RF_ALERT_REPORT_ALLOWANCE_NS)
        RF_STAT_ADD(a->st.reports_late, 1);
    if (!r->any_started ||
        later(ev->recv_time_ns, ev->event_time_ns, r->any_last_mono, r->any_last_event)) {
        r->any_started = true;
        r->any_last_mono = ev->recv_time_ns;
        r->any_last_event = ev->event_time_ns;
    }
}

/* One report per rule-wide rule that saw samples since the last one. */
static void send_reports(rf_alerts *a)
{
    for (uint32_t i = 0; i < a->n_any; i++) {
        rule *r = &a->rules[a->any_rules[i]];
        if (r->seen_n == 0)
            continue;
        rf_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.kind = RF_KIND_PEER;
        ev.subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_ALERT, RF_ALERT_PEER_REPORT);
        ev.series_id = r->series_id;
        ev.value.u64 = r->seen_n;
        ev.value_type = RF_VALUE_U64;
        ev.recv_time_ns = r->seen_recv;
        ev.event_time_ns = r->seen_event;
        ev.aux = a->index;
        ev.sample_rate = 1.0f;
        r->seen_n = 0;
        RF_STAT_ADD(a->st.reports_sent, 1);
        if (a->send)
            a->send(a->send_ctx, r->owner, &ev, 1);
        else
            rf_alerts_peer_receive(a, &ev); /* alone: after this tick's decisions */
    }
}

/* The owner: a sample newer than the one the fire was decided on ends it. */
static void any_resolve(rf_alerts *a, uint32_t rid, rule *r)
{
    if (r->any_phase != PH_FIRING ||
        !later(r->any_last_mono, r->any_last_event, r->any_fired_mono, r->any_fired_event))
        return;
    r->any_phase = PH_OK;
    define_rule_series(a, r);
    emit_alert(a, rid, r->series_id, 0, r->any_last_event, r->any_last_mono, r->any_instance, true);
}

static void any_tick(rf_alerts *a, uint32_t rid, rule *r, int64_t now_mono, int64_t now_wall)
{
    if (!r->any_started) {
        r->any_started = true; /* the silence clock starts at the first tick */
        r->any_last_mono = now_mono;
        r->any_last_event = now_wall;
        return;
    }
    if (r->any_phase == PH_FIRING) {
        any_resolve(a, rid, r);
        return;
    }
    if (now_mono - r->any_last_mono < r->absent_ns + RF_ALERT_REPORT_ALLOWANCE_NS)
        return;
    r->any_phase = PH_FIRING;
    r->any_fired_mono = r->any_last_mono;
    r->any_fired_event = r->any_last_event;
    r->any_instance = new_instance(r, r->series_id, now_wall, now_mono);
    define_rule_series(a, r);
    emit_alert(a, rid, r->series_id, (double)(now_mono - r->any_last_mono) / 1e9, now_wall,
               now_mono, r->any_instance, false);
}

void rf_alerts_flush(rf_alerts *a)
{
    send_reports(a);
    for (uint32_t i = 0; i < a->n_any; i++) {
        rule *r = &a->rules[a->any_rules[i]];
        if (r->owner == a->index)
            any_resolve(a, a->any_rules[i], r);
    }
    out_flush(a);
}

/* ---------------------------------------------------------------- ticks */

void rf_alerts_tick(rf_alerts *a, int64_t now_mono, int64_t now_wall)
{
    if (a->absent_stale)
        absent_compact(a);
    /* When the next tick has a decision to make, found on the way: the
     * earliest silence to come due (a sample only moves one later, so an
     * early wake-up at worst). */
    int64_t due = INT64_MAX;
    for (uint32_t i = 0; i < a->n_absent; i++) {
        astate *s = &a->states[a->absent[i]];
        const rule *r = &a->rules[s->rule];
        if (s->last_mono == 0) {
            s->last_mono = now_mono; /* the silence clock starts at the first tick */
            if (now_mono + r->absent_ns < due)
                due = now_mono + r->absent_ns;
            continue;
        }
        if (s->phase != PH_FIRING && now_mono - s->last_mono < r->absent_ns &&
            s->last_mono + r->absent_ns < due)
            due = s->last_mono + r->absent_ns;
        if (s->phase != PH_FIRING && now_mono - s->last_mono >= r->absent_ns) {
            s->phase = PH_FIRING;
            s->instance = new_instance(r, s->series_id, now_wall, now_mono);
            emit_alert(a, s->rule, s->series_id, (double)(now_mono - s->last_mono) / 1e9, now_wall,
                       now_mono, s->instance, false);
        }
    }
    /* Decisions first, on what reports of earlier ticks said; this tick's
     * reports (the owner's own included) count from the next one. */
    for (uint32_t i = 0; i < a->n_any; i++) {
        rule *r = &a->rules[a->any_rules[i]];
        if (r->owner != a->index)
            continue;
        any_tick(a, a->any_rules[i], r, now_mono, now_wall);
        /* Firing: it resolves on a report, which comes with work (the
         * worker ticks soon after any). Else its silence's end. */
        const int64_t end = r->any_last_mono + r->absent_ns + RF_ALERT_REPORT_ALLOWANCE_NS;
        if (r->any_phase != PH_FIRING && end < due)
            due = end;
    }
    send_reports(a);
    a->ticked = true;
    a->last_tick_mono = now_mono;
    a->next_due = due;
    out_flush(a);
}

int64_t rf_alerts_next_due(const rf_alerts *a)
{
    /* Before the first tick the clocks have not started: tick soon. */
    return a->ticked ? a->next_due : 0;
}

int rf_alerts_check_routes(const rf_alerts_config *cfg, rf_router *router, rf_err *err)
{
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        const char *n = cfg->rules[i].name ? cfg->rules[i].name : "";
        char subj[RF_SUBJECT_MAX];
        snprintf(subj, sizeof(subj), "alert.%s", n);
        int64_t id = rf_router_resolve_subject(router, subj);
        if (id <= 0)
            return rf_err_set(err, EINVAL,
                              "alert rule '%s' references no route or sink: no route matches "
                              "subject '%s'",
                              n, subj);
    }
    return 0;
}

/* An array grown by grow() above to hold n elements: capacity a power of two
 * times 64 (at most 2n), the old half alive during realloc. */
static uint64_t grown_bound(uint64_t n, uint64_t esize)
{
    uint64_t cap = 64;
    while (cap < n)
        cap *= 2;
    return rf_mem_alloc_bound(cap * esize) + rf_mem_alloc_bound(cap / 2 * esize);
}

uint64_t rf_alerts_memory_bound(const rf_alerts_config *cfg, uint32_t max_slots)
{
    if (!cfg || cfg->n_rules == 0)
        return 0;
    const uint64_t slots = max_slots ? max_slots : 1;
    uint64_t bindings = cfg->max_bindings ? cfg->max_bindings : 4 * slots;
    /* A series binds at most one state per rule. */
    if (bindings > slots * cfg->n_rules)
        bindings = slots * cfg->n_rules;
    bool rate = false, absence = false;
    uint64_t matchers = 0;
    for (uint32_t i = 0; i < cfg->n_rules; i++) {
        rate |= cfg->rules[i].type == RF_ALERT_RATE;
        absence |= cfg->rules[i].type == RF_ALERT_ABSENCE && !cfg->rules[i].absence_any;
        matchers += 4096; /* a deep-copied matcher: names and tag patterns */
    }
    uint64_t b = rf_mem_alloc_bound(sizeof(rf_alerts)) +
                 rf_mem_alloc_bound((uint64_t)cfg->n_rules * sizeof(rule)) + matchers +
                 rf_mem_alloc_bound((uint64_t)cfg->n_rules * sizeof(uint32_t)) + /* any_rules */
                 rf_mem_alloc_bound(slots * sizeof(slot_bind));
    b += grown_bound(bindings, sizeof(astate));
    if (rate)
        b += grown_bound(bindings, RATE_ANCHORS * sizeof(anchor));
    if (absence)
        b += grown_bound(bindings, sizeof(uint32_t));
    return b;
}
