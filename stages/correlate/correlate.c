/* Correlation: the id table (hash + FIFO by opening), pattern bindings,
 * sequence and burst state, and the closed-group history. See correlate.h. */
#include "stages/correlate/correlate_pvt.h"

#include "core/mem/bound.h"
#include "core/mem/mem.h"
#include "core/stats/stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define NIL UINT32_MAX
#define OUT_BATCH 256u
#define DEFAULT_ID_CAPACITY 10000u
#define DEFAULT_ID_TTL (3600LL * 1000000000LL)
#define DEFAULT_PATTERN_KEYS 4096u
#define DEFAULT_HISTORY 256u
#define REUSE_PROBES 8u
/* Peer messages staged per pass before they go out (grouped by shard). */
#define PEER_BATCH 256u

enum close_reason {
    CLOSE_TTL,
    CLOSE_MEMBERS,
    CLOSE_CAPACITY,
    CLOSE_DRAIN
};

/* ---------------------------------------------------------------- types */

typedef struct id_group {
    uint64_t id;
    int64_t opened_mono;
    int64_t first_time, last_time;
    uint64_t first_series; /* the earliest member event's series (ties: the lower id) */
    uint32_t count;
    uint32_t n_members;
    uint32_t prev, next; /* FIFO by opening; free list through next */
    uint64_t members[RF_CORR_MAX_MEMBERS];
} id_group;

enum role {
    ROLE_A = 1,
    ROLE_B = 2
};

typedef struct binding {
    uint64_t key;     /* hash of the key tag value */
    uint16_t pattern; /* index into patterns */
    uint8_t role;
    uint16_t owner; /* shard that holds the key's state: rf_event_owner(key, shards) */
} binding;

typedef struct pkey {
    uint64_t key;
    uint16_t pattern;
    uint8_t n, head;   /* BURST ring */
    bool armed;        /* SEQUENCE: an A is waiting */
    bool b_waiting;    /* SEQUENCE: a B that found no A (an A may still arrive after it) */
    int64_t last_time; /* latest event time seen on this key (for reuse) */
    int64_t a_time;
    uint64_t a_series;
    int64_t b_time;
    uint64_t b_series;
    int64_t times[RF_CORR_BURST_MAX];
    uint64_t series[RF_CORR_BURST_MAX];
} pkey;

typedef struct pattern {
    char name[64];
    uint32_t sig; /* identity of the definition in peer messages (peer_sig) */
    uint8_t type;
    bool critical;
    rf_series_matcher a, b;
    char key_tag[64];
    int64_t within;
    uint32_t count;
} pattern;

typedef struct closed {
    uint64_t id;
    uint32_t n;
    uint64_t members[RF_CORR_MAX_MEMBERS];
} closed;

/* A slot's bindings are contiguous: binds[first .. first + count). */
typedef rf_slot_span slot_bind;

struct rf_correlator {
    /* id groups */
    uint32_t cap, n_open;
    int64_t ttl;
    uint32_t close_members, min_members;
    id_group *groups;
    uint32_t head, tail, free_list; /* FIFO oldest..newest */
    uint32_t *hash;                 /* group index + 1; 0 empty */
    uint32_t hmask;
    int64_t now_mono; /* latest receipt time seen */
    /* patterns */
    uint32_t n_patterns;
    pattern *patterns;
    const char **names;
    uint32_t max_slots;
    slot_bind *slot; /* per slot: its bindings (one 8-byte load) */
    binding *binds;
    uint32_t n_binds, cap_binds;
    pkey *pkeys;
    uint32_t pk_cap, pk_used, pk_hand;
    uint32_t *pk_hash; /* pkey index + 1; 0 empty */
    uint32_t pk_hmask;
    uint64_t seq;
    /* history */
    closed *hist;
    uint32_t hist_cap, hist_next;
    /* output */
    rf_emitter out;
    rf_event obuf[OUT_BATCH];
    uint32_t on;
    /* shards (rf_correlator_set_peers): messages to other shards' state,
     * staged in pout/pdest, sent grouped by shard through psorted */
    rf_peer_send_fn peer_send;
    void *peer_ctx;
    uint32_t self, shards;
    bool closing;     /* rf_correlator_close: groups are emitted here from now on */
    uint32_t *pcount; /* shards + 1 */
    uint32_t pn;
    uint16_t pdest[PEER_BATCH];
    rf_event pout[PEER_BATCH];
    rf_event psorted[PEER_BATCH];
    rf_correlator_stats st;
};

/* ---------------------------------------------------------------- helpers */

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

static inline uint32_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static void out_flush(rf_correlator *c)
{
    rf_emit(&c->out, c->obuf, c->on);
    c->on = 0;
}

static inline rf_event *peer_slot(rf_correlator *c, uint32_t to);

static void emit(rf_correlator *c, uint64_t group_id, uint32_t pattern_id, uint32_t count,
                 const uint64_t *members, uint32_t n_members, uint64_t series_id, int64_t first,
                 int64_t last, int64_t recv, bool critical)
{
    closed *h = &c->hist[c->hist_next];
    c->hist_next = (c->hist_next + 1) % c->hist_cap;
    h->id = group_id;
    h->n = n_members < RF_CORR_MAX_MEMBERS ? n_members : RF_CORR_MAX_MEMBERS;
    memcpy(h->members, members, h->n * sizeof(uint64_t));

    /* Emitted where its series lives, so that every sink can name it as it
     * would with one shard: a message to the series' owner (RF_CORR_MSG_GROUP),
     * unless the stop began (peers may be gone: emitted here, unnamed). */
    const uint32_t to = rf_event_owner(series_id, c->shards);
    rf_event *e;
    if (to != c->self && !c->closing) {
        e = peer_slot(c, to);
    } else {
        if (c->on == OUT_BATCH)
            out_flush(c);
        e = &c->obuf[c->on++];
        memset(e, 0, sizeof(*e));
    }
    e->event_time_ns = last;
    e->recv_time_ns = recv;
    e->series_id = series_id;
    e->value.i64 = last - first;
    e->correlation_id = group_id;
    e->aux = (uint64_t)count | (uint64_t)pattern_id << 32;
    e->sample_rate = 1.0f;
    e->value_type = RF_VALUE_I64;
    e->kind = RF_KIND_CORRELATED;
    e->priority = critical ? RF_PRIO_CRITICAL : RF_PRIO_STANDARD;
    if (to != c->self && !c->closing) {
        e->kind = RF_KIND_PEER;
        e->subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, RF_CORR_MSG_GROUP);
        e->route_hint = pattern_id ? c->patterns[pattern_id - 1].sig : 0;
    }
    RF_STAT_ADD(c->st.emitted, 1);
}

/* Identifies a pattern's definition in a peer message: a receiver whose
 * pattern at that index is not this one (a reload between the two) drops it. */
static uint32_t peer_sig(const rf_corr_pattern_config *p)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s|%d|%s|%lld|%u", p->name ? p->name : "", (int)p->type,
                     p->key_tag ? p->key_tag : "", (long long)p->within_ns, p->count);
    return (uint32_t)XXH3_64bits(buf, n > 0 && (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf));
}

/* ---------------------------------------------------------------- id table */

static uint32_t id_find_pos(const rf_correlator *c, uint64_t id)
{
    uint32_t h = mix(id) & c->hmask;
    for (uint32_t v; (v = c->hash[h]) != 0; h = (h + 1) & c->hmask) {
        if (c->groups[v - 1].id == id)
            return h;
    }
    return NIL;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void hash_delete(uint32_t *hash, uint32_t mask, uint32_t pos,
                        uint32_t (*home)(const void *, uint32_t), const void *ctx)
{
    uint32_t i = pos;
    for (uint32_t j = (i + 1) & mask; hash[j] != 0; j = (j + 1) & mask) {
        uint32_t k = home(ctx, hash[j] - 1) & mask;
        /* Move j into the hole at i when its home k is not in (i, j]. */
        bool between = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!between) {
            hash[i] = hash[j];
            i = j;
        }
    }
    hash[i] = 0;
}

static uint32_t id_home(const void *ctx, uint32_t idx)
{
    return mix(((const rf_correlator *)ctx)->groups[idx].id);
}

static void id_close(rf_correlator *c, uint32_t gi, enum close_reason why, int64_t recv)
{
    id_group *g = &c->groups[gi];
    switch (why) {
    case CLOSE_TTL: RF_STAT_ADD(c->st.closed_ttl, 1); break;
    case CLOSE_MEMBERS: RF_STAT_ADD(c->st.closed_members, 1); break;
    case CLOSE_CAPACITY: RF_STAT_ADD(c->st.evicted_capacity, 1); break;
    default: RF_STAT_ADD(c->st.closed_drain, 1); break;
    }
    if (g->count >= c->min_members)
        emit(c, g->id, 0, g->count, g->members, g->n_members, g->first_series, g->first_time,
             g->last_time, recv, false);
    else
        RF_STAT_ADD(c->st.closed_small, 1);
    hash_delete(c->hash, c->hmask, id_find_pos(c, g->id), id_home, c);
    /* Unlink from the FIFO, push on the free list. */
    if (g->prev != NIL)
        c->groups[g->prev].next = g->next;
    else
        c->head = g->next;
    if (g->next != NIL)
        c->groups[g->next].prev = g->prev;
    else
        c->tail = g->prev;
    g->next = c->free_list;
    c->free_list = gi;
    RF_STAT_ADD(c->n_open, -1);
}

static void id_expire(rf_correlator *c, int64_t now)
{
    while (c->head != NIL && now - c->groups[c->head].opened_mono >= c->ttl)
        id_close(c, c->head, CLOSE_TTL, now);
}

static void id_event(rf_correlator *c, const rf_event *ev)
{
    RF_STAT_ADD(c->st.id_events, 1);
    uint32_t pos = id_find_pos(c, ev->correlation_id);
    id_group *g;
    uint32_t gi;
    if (pos != NIL) {
        gi = c->hash[pos] - 1;
        g = &c->groups[gi];
        g->count++;
        if (ev->event_time_ns < g->first_time ||
            (ev->event_time_ns == g->first_time && ev->series_id < g->first_series)) {
            g->first_time = ev->event_time_ns;
            g->first_series = ev->series_id;
        }
        if (ev->event_time_ns > g->last_time)
            g->last_time = ev->event_time_ns;
        uint32_t m = 0;
        while (m < g->n_members && g->members[m] != ev->series_id)
            m++;
        if (m == g->n_members && m < RF_CORR_MAX_MEMBERS)
            g->members[g->n_members++] = ev->series_id;
    } else {
        if (c->n_open == c->cap)
            id_close(c, c->head, CLOSE_CAPACITY, ev->recv_time_ns);
        gi = c->free_list;
        g = &c->groups[gi];
        c->free_list = g->next;
        g->id = ev->correlation_id;
        g->opened_mono = ev->recv_time_ns;
        g->first_time = g->last_time = ev->event_time_ns;
        g->first_series = ev->series_id;
        g->count = 1;
        g->n_members = 1;
        g->members[0] = ev->series_id;
        g->prev = c->tail;
        g->next = NIL;
        if (c->tail != NIL)
            c->groups[c->tail].next = gi;
        else
            c->head = gi;
        c->tail = gi;
        uint32_t h = mix(g->id) & c->hmask;
        while (c->hash[h])
            h = (h + 1) & c->hmask;
        c->hash[h] = gi + 1;
        RF_STAT_ADD(c->n_open, 1);
        RF_STAT_ADD(c->st.id_opened, 1);
    }
    if (c->close_members && g->count >= c->close_members)
        id_close(c, gi, CLOSE_MEMBERS, ev->recv_time_ns);
}

/* ---------------------------------------------------------------- patterns */

static uint32_t pk_home(const void *ctx, uint32_t idx)
{
    const pkey *k = &((const rf_correlator *)ctx)->pkeys[idx];
    return mix(k->key ^ ((uint64_t)k->pattern * 0x9e3779b97f4a7c15ull));
}

static uint32_t pk_find_pos(const rf_correlator *c, uint64_t key, uint16_t p)
{
    uint32_t h = mix(key ^ ((uint64_t)p * 0x9e3779b97f4a7c15ull)) & c->pk_hmask;
    for (uint32_t v; (v = c->pk_hash[h]) != 0; h = (h + 1) & c->pk_hmask) {
        const pkey *k = &c->pkeys[v - 1];
        if (k->key == key && k->pattern == p)
            return h;
    }
    return h | 0x80000000u; /* not found: the empty position, flagged */
}

static pkey *pk_get(rf_correlator *c, uint64_t key, uint16_t p, int64_t t)
{
    uint32_t pos = pk_find_pos(c, key, p);
    if (!(pos & 0x80000000u))
        return &c->pkeys[c->pk_hash[pos] - 1];
    uint32_t idx;
    if (c->pk_used < c->pk_cap) {
        idx = c->pk_used;
        RF_STAT_ADD(c->pk_used, 1);
    } else {
        /* Full: reuse a key idle longer than its pattern's window (a clock
         * hand over the table, a few probes per miss). */
        idx = NIL;
        for (uint32_t i = 0; i < REUSE_PROBES; i++) {
            uint32_t cand = c->pk_hand;
            c->pk_hand = (c->pk_hand + 1) % c->pk_cap;
            const pkey *k = &c->pkeys[cand];
            if (t - k->last_time > c->patterns[k->pattern].within) {
                idx = cand;
                break;
            }
        }
        if (idx == NIL) {
            RF_STAT_ADD(c->st.pattern_keys_full, 1);
            return NULL;
        }
        RF_STAT_ADD(c->st.pattern_keys_reused, 1);
        pkey *old = &c->pkeys[idx];
        uint32_t opos = pk_find_pos(c, old->key, old->pattern);
        hash_delete(c->pk_hash, c->pk_hmask, opos, pk_home, c);
        pos = pk_find_pos(c, key, p); /* the deletion may have moved the empty slot */
    }
    pkey *k = &c->pkeys[idx];
    memset(k, 0, offsetof(pkey, times));
    k->key = key;
    k->pattern = p;
    c->pk_hash[pos & ~0x80000000u] = idx + 1;
    return k;
}

static uint64_t group_id(rf_correlator *c, uint32_t pattern_id)
{
    return (1ull << 62) | ((uint64_t)pattern_id << 40) | (++c->seq & ((1ull << 40) - 1));
}

static void pattern_event(rf_correlator *c, const binding *b, const rf_event *ev)
{
    const pattern *p = &c->patterns[b->pattern];
    int64_t t = ev->event_time_ns;
    pkey *k = pk_get(c, b->key, b->pattern, t);
    if (!k)
        return;
    RF_STAT_ADD(c->st.pattern_events, 1);
    if (t > k->last_time)
        k->last_time = t;
    if (p->type == RF_CORR_SEQUENCE) {
        /* Judged on event times, whichever of A and B arrives first: with
         * several shards the two reach the key's owner by different paths. */
        if ((b->role & ROLE_B) && k->armed && t >= k->a_time && t - k->a_time <= p->within) {
            uint64_t m[2] = {k->a_series, ev->series_id};
            emit(c, group_id(c, b->pattern + 1u), b->pattern + 1u, 2, m, 2, ev->series_id,
                 k->a_time, t, ev->recv_time_ns, p->critical);
            k->armed = k->b_waiting = false; /* a group clears the key */
            RF_STAT_ADD(c->st.sequences, 1);
            return; /* an event that closes a sequence does not also arm it */
        }
        if ((b->role & ROLE_A) && k->b_waiting && k->b_time >= t && k->b_time - t <= p->within) {
            uint64_t m[2] = {ev->series_id, k->b_series};
            emit(c, group_id(c, b->pattern + 1u), b->pattern + 1u, 2, m, 2, k->b_series, t,
                 k->b_time, ev->recv_time_ns, p->critical);
            k->armed = k->b_waiting = false;
            RF_STAT_ADD(c->st.sequences, 1);
            return;
        }
        if ((b->role & ROLE_B) && (!k->b_waiting || t >= k->b_time)) {
            k->b_waiting = true;
            k->b_time = t;
            k->b_series = ev->series_id;
        }
        if ((b->role & ROLE_A) && (!k->armed || t >= k->a_time)) {
            k->armed = true; /* the latest A (by event time) counts */
            k->a_time = t;
            k->a_series = ev->series_id;
        }
        return;
    }
    /* BURST: ring of the last `count` events. */
    if (k->n == p->count) { /* full: the oldest leaves */
        k->head = (uint8_t)((k->head + 1) % RF_CORR_BURST_MAX);
        k->n--;
    }
    uint32_t pos = (k->head + k->n) % RF_CORR_BURST_MAX;
    k->times[pos] = t;
    k->series[pos] = ev->series_id;
    k->n++;
    if (k->n < p->count)
        return;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    uint64_t members[RF_CORR_BURST_MAX], latest = 0;
    for (uint32_t i = 0; i < k->n; i++) {
        uint32_t j = (k->head + i) % RF_CORR_BURST_MAX;
        lo = k->times[j] < lo ? k->times[j] : lo;
        /* The group is named by its latest member (ties: the highest id),
         * not by the last to arrive: arrival order differs with shards. */
        if (k->times[j] > hi || (k->times[j] == hi && k->series[j] > latest)) {
            hi = k->times[j];
            latest = k->series[j];
        }
        members[i] = k->series[j];
    }
    if (hi - lo > p->within)
        return;
    emit(c, group_id(c, b->pattern + 1u), b->pattern + 1u, k->n, members, k->n, latest, lo, hi,
         ev->recv_time_ns, p->critical);
    k->n = 0;
    k->head = 0;
    RF_STAT_ADD(c->st.bursts, 1);
}

/* ---------------------------------------------------------------- lifetime */

static int check_name(const char *n, uint32_t i, rf_err *err)
{
    if (!n || !*n)
        return rf_err_set(err, EINVAL, "correlation pattern %u: no name", i);
    if (strlen(n) >= 64)
        return rf_err_set(err, EINVAL, "correlation pattern '%s': name longer than 63 bytes", n);
    if (strcmp(n, "id") == 0)
        return rf_err_set(err, EINVAL,
                          "correlation pattern 'id': the name is reserved for id groups");
    for (const char *p = n; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return rf_err_set(err, EINVAL,
                              "correlation pattern '%s': name may hold only letters, digits, '_' "
                              "and '-'",
                              n);
    }
    return 0;
}

int rf_correlator_config_check(const rf_correlator_config *cfg, rf_err *err)
{
    if (cfg->id_ttl_ns < 0)
        return rf_err_set(err, EINVAL, "correlation: negative id TTL");
    if (cfg->n_patterns > RF_SLOT_SPAN_MAX) /* a slot's span counts them (stage.h) */
        return rf_err_set(err, EINVAL, "correlation: too many patterns");
    for (uint32_t i = 0; i < cfg->n_patterns; i++) {
        const rf_corr_pattern_config *p = &cfg->patterns[i];
        int rc = check_name(p->name, i, err);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(p->name, cfg->patterns[j].name) == 0)
                return rf_err_set(err, EINVAL, "correlation pattern '%s': defined twice", p->name);
        }
        if ((unsigned)p->type > RF_CORR_BURST)
            return rf_err_set(err, EINVAL, "correlation pattern '%s': unknown type %d", p->name,
                              (int)p->type);
        if (p->within_ns <= 0)
            return rf_err_set(err, EINVAL, "correlation pattern '%s': window must be > 0", p->name);
        if (p->type == RF_CORR_BURST && (p->count < 2 || p->count > RF_CORR_BURST_MAX))
            return rf_err_set(err, EINVAL, "correlation pattern '%s': count %u is not in 2..%u",
                              p->name, p->count, RF_CORR_BURST_MAX);
        if (p->key_tag && strlen(p->key_tag) >= 64)
            return rf_err_set(err, EINVAL, "correlation pattern '%s': key tag too long", p->name);
    }
    return 0;
}

int rf_correlator_new(const rf_correlator_config *cfg, uint32_t max_slots, rf_emitter out,
                      rf_correlator **outp, rf_err *err)
{
    int rc = rf_correlator_config_check(cfg, err);
    if (rc)
        return rc;
    rf_correlator *c = calloc(1, sizeof(*c));
    if (!c)
        return rf_err_set(err, ENOMEM, "correlation: out of memory");
    c->out = out;
    c->cap = cfg->id_capacity ? cfg->id_capacity : DEFAULT_ID_CAPACITY;
    c->ttl = cfg->id_ttl_ns ? cfg->id_ttl_ns : DEFAULT_ID_TTL;
    c->close_members = cfg->id_close_members;
    c->min_members = cfg->id_min_members ? cfg->id_min_members : 2;
    /* The fixed tables through core/mem: on the worker's node in the
     * engine's scope (the bindings grow on the worker, so they stay malloc). */
    c->groups = rf_mem_zalloc((size_t)c->cap * sizeof(id_group), 8);
    c->hmask = pow2_at_least(c->cap * 2) - 1;
    c->hash = rf_mem_zalloc(((size_t)c->hmask + 1) * sizeof(uint32_t), 4);
    c->n_patterns = cfg->n_patterns;
    c->patterns = calloc(cfg->n_patterns + 1, sizeof(pattern));
    c->names = calloc(cfg->n_patterns + 1, sizeof(char *));
    c->max_slots = max_slots;
    c->slot = rf_mem_zalloc((max_slots ? max_slots : 1) * sizeof(slot_bind), 8);
    c->pk_cap = cfg->pattern_keys ? cfg->pattern_keys : DEFAULT_PATTERN_KEYS;
    c->pkeys = rf_mem_zalloc((size_t)c->pk_cap * sizeof(pkey), 8);
    c->pk_hmask = pow2_at_least(c->pk_cap * 2) - 1;
    c->pk_hash = rf_mem_zalloc(((size_t)c->pk_hmask + 1) * sizeof(uint32_t), 4);
    c->hist_cap = cfg->closed_history ? cfg->closed_history : DEFAULT_HISTORY;
    c->hist = rf_mem_zalloc((size_t)c->hist_cap * sizeof(closed), 8);
    if (!c->groups || !c->hash || !c->patterns || !c->names || !c->slot || !c->pkeys ||
        !c->pk_hash || !c->hist) {
        rf_correlator_free(c);
        return rf_err_set(err, ENOMEM, "correlation: out of memory");
    }
    for (uint32_t i = 0; i < max_slots; i++)
        c->slot[i] = (slot_bind){RF_SLOT_SPAN_NONE, 0, 0};
    /* Free list through every group; FIFO empty. */
    for (uint32_t i = 0; i < c->cap; i++)
        c->groups[i].next = i + 1 < c->cap ? i + 1 : NIL;
    c->free_list = 0;
    c->head = c->tail = NIL;
    c->names[0] = "id";
    c->shards = 1;
    c->pcount = calloc(2, sizeof(uint32_t));
    if (!c->pcount) {
        rf_correlator_free(c);
        return rf_err_set(err, ENOMEM, "correlation: out of memory");
    }
    for (uint32_t i = 0; i < cfg->n_patterns; i++) {
        const rf_corr_pattern_config *pc = &cfg->patterns[i];
        pattern *p = &c->patterns[i];
        snprintf(p->name, sizeof(p->name), "%s", pc->name);
        snprintf(p->key_tag, sizeof(p->key_tag), "%s", pc->key_tag ? pc->key_tag : "");
        p->type = (uint8_t)pc->type;
        p->critical = pc->critical;
        p->within = pc->within_ns;
        p->count = pc->count;
        p->sig = peer_sig(pc);
        if (rf_series_matcher_copy(&p->a, &pc->a) || rf_series_matcher_copy(&p->b, &pc->b)) {
            rf_correlator_free(c);
            return rf_err_set(err, ENOMEM, "correlation: out of memory");
        }
        c->names[i + 1] = p->name;
    }
    *outp = c;
    return 0;
}

void rf_correlator_free(rf_correlator *c)
{
    if (!c)
        return;
    for (uint32_t i = 0; c->patterns && i < c->n_patterns; i++) {
        rf_series_matcher_release(&c->patterns[i].a);
        rf_series_matcher_release(&c->patterns[i].b);
    }
    free(c->patterns);
    free(c->names);
    free(c->pcount);
    rf_mem_free(c->groups, (size_t)c->cap * sizeof(id_group));
    rf_mem_free(c->hash, ((size_t)c->hmask + 1) * sizeof(uint32_t));
    rf_mem_free(c->slot, (c->max_slots ? c->max_slots : 1) * sizeof(slot_bind));
    free(c->binds);
    rf_mem_free(c->pkeys, (size_t)c->pk_cap * sizeof(pkey));
    rf_mem_free(c->pk_hash, ((size_t)c->pk_hmask + 1) * sizeof(uint32_t));
    rf_mem_free(c->hist, (size_t)c->hist_cap * sizeof(closed));
    free(c);
}

void rf_correlator_define(rf_correlator *c, int32_t slot, const rf_series_key *key)
{
    if (slot < 0 || (uint32_t)slot >= c->max_slots || !key || !rf_slot_span_open(c->slot[slot]))
        return;
    uint32_t first = c->n_binds;
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_patterns; i++) {
        const pattern *p = &c->patterns[i];
        uint8_t role = 0;
        if (rf_series_matcher_match(&p->a, key))
            role |= ROLE_A;
        if (p->type == RF_CORR_SEQUENCE && rf_series_matcher_match(&p->b, key))
            role |= ROLE_B;
        if (!role)
            continue;
        uint64_t kh = 0;
        if (p->key_tag[0]) {
            char v[RF_MATCH_TEXT_MAX];
            int vl = rf_series_key_tag(key, p->key_tag, v, sizeof(v));
            if (vl < 0)
                continue; /* no key: the series does not take part */
            kh = XXH3_64bits(v, (size_t)vl);
        }
        if (c->n_binds == c->cap_binds) {
            uint32_t nc = c->cap_binds ? c->cap_binds * 2 : 64;
            binding *nb = realloc(c->binds, nc * sizeof(binding));
            if (!nb)
                break;
            c->binds = nb;
            c->cap_binds = nc;
        }
        c->binds[c->n_binds++] = (binding){.key = kh,
                                           .pattern = (uint16_t)i,
                                           .role = role,
                                           .owner = (uint16_t)rf_event_owner(kh, c->shards)};
        n++;
    }
    uint32_t at = rf_slot_span_place(&c->slot[slot], first, n);
    if (at != first) {
        /* The room of the slot's expired series: move the new bindings in. */
        memmove(&c->binds[at], &c->binds[first], (size_t)n * sizeof(binding));
        c->n_binds = first;
    }
}

void rf_correlator_forget(rf_correlator *c, int32_t slot)
{
    /* Pattern key state is keyed by tag value, not series: it ages out on its
     * own (the bounded key table's clock); only the bindings go. */
    if (slot >= 0 && (uint32_t)slot < c->max_slots)
        rf_slot_span_retire(&c->slot[slot]);
}

/* ---------------------------------------------------------------- shards */

/* Sends what is staged, one call per destination shard (a counting sort by
 * destination keeps each shard's messages in the order they were made). */
static void peer_flush(rf_correlator *c)
{
    const uint32_t n = c->pn;
    if (n == 0)
        return;
    c->pn = 0;
    uint32_t *cnt = c->pcount;
    memset(cnt, 0, ((size_t)c->shards + 1) * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        cnt[c->pdest[i] + 1u]++;
    for (uint32_t d = 1; d <= c->shards; d++)
        cnt[d] += cnt[d - 1];
    for (uint32_t i = 0; i < n; i++)
        c->psorted[cnt[c->pdest[i]]++] = c->pout[i];
    /* cnt[d] is now the end of shard d's run, which starts where d-1's ends. */
    for (uint32_t d = 0, start = 0; d < c->shards; d++) {
        if (cnt[d] > start)
            c->peer_send(c->peer_ctx, d, c->psorted + start, cnt[d] - start);
        start = cnt[d];
    }
    RF_STAT_ADD(c->st.forwarded, n);
}

static inline rf_event *peer_slot(rf_correlator *c, uint32_t to)
{
    if (c->pn == PEER_BATCH)
        peer_flush(c);
    c->pdest[c->pn] = (uint16_t)to;
    rf_event *m = &c->pout[c->pn++];
    memset(m, 0, sizeof(*m));
    return m;
}

/* The wire form of both messages is in correlate.h ("Several shards"). */
static void forward_pattern(rf_correlator *c, const binding *b, const rf_event *ev)
{
    rf_event *m = peer_slot(c, b->owner);
    m->event_time_ns = ev->event_time_ns;
    m->recv_time_ns = ev->recv_time_ns;
    m->series_id = ev->series_id;
    m->value.u64 = b->key;
    m->aux = (uint64_t)b->pattern | (uint64_t)b->role << 16 |
             (uint64_t)c->patterns[b->pattern].sig << 32;
    m->sample_rate = 1.0f;
    m->kind = RF_KIND_PEER;
    m->priority = ev->priority;
    m->subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, RF_CORR_MSG_PATTERN);
}

static void forward_id(rf_correlator *c, uint32_t to, const rf_event *ev)
{
    rf_event *m = peer_slot(c, to);
    m->event_time_ns = ev->event_time_ns;
    m->recv_time_ns = ev->recv_time_ns;
    m->series_id = ev->series_id;
    m->correlation_id = ev->correlation_id;
    m->sample_rate = 1.0f;
    m->kind = RF_KIND_PEER;
    m->priority = ev->priority;
    m->subkind = RF_PEER_SUBKIND(RF_PEER_STAGE_CORRELATE, RF_CORR_MSG_ID);
}

int rf_correlator_set_peers(rf_correlator *c, rf_peer_send_fn send, void *ctx, uint32_t index,
                            uint32_t shards, rf_err *err)
{
    if (shards == 0 || shards > RF_CORR_MAX_SHARDS || index >= shards || (shards > 1 && !send))
        return rf_err_set(err, EINVAL, "correlation: shard %u of %u", index, shards);
    uint32_t *cnt = calloc((size_t)shards + 1, sizeof(uint32_t));
    if (!cnt)
        return rf_err_set(err, ENOMEM, "correlation: out of memory");
    free(c->pcount);
    c->pcount = cnt;
    c->peer_send = send;
    c->peer_ctx = ctx;
    c->self = index;
    c->shards = shards;
    for (uint32_t i = 0; i < c->n_binds; i++)
        c->binds[i].owner = (uint16_t)rf_event_owner(c->binds[i].key, shards);
    return 0;
}

/* Prefetch distances (events ahead): the slot record, then its bindings.
 * With many series these hide DRAM round trips; see alert.c. */
#define PF_SLOT 16u
#define PF_BIND 8u

void rf_correlator_process(rf_correlator *c, const rf_event *events, const int32_t *slots,
                           uint32_t n)
{
    int64_t now = c->now_mono;
    const uint32_t self = c->self, shards = c->shards;
    for (uint32_t i = 0; i < n; i++) {
        if (i + PF_SLOT < n && (uint32_t)slots[i + PF_SLOT] < c->max_slots)
            __builtin_prefetch(&c->slot[slots[i + PF_SLOT]]);
        if (i + PF_BIND < n && (uint32_t)slots[i + PF_BIND] < c->max_slots) {
            const slot_bind *pb = &c->slot[slots[i + PF_BIND]];
            if (pb->count)
                __builtin_prefetch(&c->binds[pb->first]);
        }
        if (i + PF_BIND < n && events[i + PF_BIND].correlation_id)
            __builtin_prefetch(&c->hash[mix(events[i + PF_BIND].correlation_id) & c->hmask]);
        const rf_event *ev = &events[i];
        if (ev->kind >= RF_KIND_ALERT)
            continue;
        if (ev->recv_time_ns > now)
            now = ev->recv_time_ns;
        if (ev->correlation_id) {
            uint32_t to = rf_event_owner(ev->correlation_id, shards);
            if (to == self)
                id_event(c, ev);
            else
                forward_id(c, to, ev);
        }
        uint32_t slot = (uint32_t)slots[i];
        if (slot >= c->max_slots)
            continue;
        slot_bind sb = c->slot[slot];
        uint32_t bn = sb.count;
        if (bn == 0)
            continue;
        const binding *b = &c->binds[sb.first];
        for (uint32_t j = 0; j < bn; j++) {
            if (b[j].owner == self)
                pattern_event(c, &b[j], ev);
            else
                forward_pattern(c, &b[j], ev);
        }
    }
    c->now_mono = now;
    id_expire(c, now);
    peer_flush(c);
    out_flush(c);
}

int rf_correlator_receive(rf_correlator *c, const rf_event *ev)
{
    RF_STAT_ADD(c->st.received, 1);
    if (ev->kind != RF_KIND_PEER || RF_PEER_STAGE_OF(ev->subkind) != RF_PEER_STAGE_CORRELATE) {
        RF_STAT_ADD(c->st.peer_malformed, 1);
        return -EINVAL;
    }
    int rc = 0;
    switch (RF_PEER_TYPE_OF(ev->subkind)) {
    case RF_CORR_MSG_PATTERN: {
        const uint32_t pi = (uint32_t)(ev->aux & 0xffffu);
        const uint8_t role = (uint8_t)(ev->aux >> 16);
        /* A shard that swapped its configuration at another tick than the
         * sender: the pattern may be gone or another one at that index. */
        if (pi >= c->n_patterns || c->patterns[pi].sig != (uint32_t)(ev->aux >> 32) ||
            !(role & (ROLE_A | ROLE_B))) {
            RF_STAT_ADD(c->st.peer_stale, 1);
            rc = -ENOENT;
            break;
        }
        const binding b = {.key = ev->value.u64,
                           .pattern = (uint16_t)pi,
                           .role = role,
                           .owner = (uint16_t)c->self};
        pattern_event(c, &b, ev);
        break;
    }
    case RF_CORR_MSG_GROUP: {
        /* A group another shard formed, whose series is ours: emitted here
         * (counted there). A pattern group needs the same pattern here, or
         * the router would file it under another name. */
        const uint32_t pid = (uint32_t)(ev->aux >> 32);
        if (pid && (pid > c->n_patterns || c->patterns[pid - 1].sig != ev->route_hint)) {
            RF_STAT_ADD(c->st.peer_stale, 1);
            rc = -ENOENT;
            break;
        }
        if (c->on == OUT_BATCH)
            out_flush(c);
        rf_event *e = &c->obuf[c->on++];
        *e = *ev;
        e->kind = RF_KIND_CORRELATED;
        e->subkind = 0;
        e->route_hint = 0;
        break;
    }
    case RF_CORR_MSG_ID:
        if (ev->correlation_id == 0) {
            RF_STAT_ADD(c->st.peer_malformed, 1);
            rc = -EINVAL;
            break;
        }
        if (ev->recv_time_ns > c->now_mono)
            c->now_mono = ev->recv_time_ns;
        id_event(c, ev);
        id_expire(c, c->now_mono);
        break;
    default:
        RF_STAT_ADD(c->st.peer_malformed, 1);
        rc = -EINVAL;
        break;
    }
    peer_flush(c); /* a group this completed, for its series' owner */
    if (c->on)
        out_flush(c);
    return rc;
}

void rf_correlator_tick(rf_correlator *c, int64_t now_mono_ns)
{
    if (now_mono_ns > c->now_mono)
        c->now_mono = now_mono_ns;
    id_expire(c, c->now_mono);
    peer_flush(c);
    out_flush(c);
}

int64_t rf_correlator_next_due(const rf_correlator *c)
{
    if (c->pn)
        return 0;
    /* Groups are listed oldest first (id_expire closes from head). */
    return c->head != NIL ? c->groups[c->head].opened_mono + c->ttl : INT64_MAX;
}

void rf_correlator_drain(rf_correlator *c, int64_t now_mono_ns)
{
    while (c->head != NIL)
        id_close(c, c->head, CLOSE_DRAIN, now_mono_ns);
    peer_flush(c);
    out_flush(c);
}

void rf_correlator_close(rf_correlator *c, int64_t now_mono_ns)
{
    rf_correlator_drain(c, now_mono_ns);
    c->closing = true;
}

int rf_correlator_members(const rf_correlator *c, uint64_t correlation_id, uint64_t *out,
                          uint32_t cap)
{
    /* Newest first: an id reused by a client finds its latest group. */
    for (uint32_t i = 1; i <= c->hist_cap; i++) {
        const closed *h = &c->hist[(c->hist_next + c->hist_cap - i) % c->hist_cap];
        if (h->id == correlation_id && h->n) {
            uint32_t n = h->n < cap ? h->n : cap;
            memcpy(out, h->members, n * sizeof(uint64_t));
            return (int)n;
        }
    }
    return -ENOENT;
}

const char *const *rf_correlator_names(const rf_correlator *c, uint32_t *n)
{
    *n = c->n_patterns + 1;
    return c->names;
}

void rf_correlator_stats_read(const rf_correlator *c, rf_correlator_stats *out)
{
    rf_stats_load_words(&out->id_events, &c->st.id_events,
                        sizeof(*out) - offsetof(rf_correlator_stats, id_events));
    out->id_open = RF_STAT_LOAD(c->n_open);
    out->pattern_keys_used = RF_STAT_LOAD(c->pk_used);
}

uint64_t rf_correlator_memory_bound(const rf_correlator_config *cfg, uint32_t max_slots)
{
    const uint64_t cap = cfg->id_capacity ? cfg->id_capacity : DEFAULT_ID_CAPACITY;
    const uint64_t pk = cfg->pattern_keys ? cfg->pattern_keys : DEFAULT_PATTERN_KEYS;
    const uint64_t hist = cfg->closed_history ? cfg->closed_history : DEFAULT_HISTORY;
    const uint64_t slots = max_slots ? max_slots : 1;
    uint64_t b = rf_mem_alloc_bound(sizeof(rf_correlator));
    b += rf_mem_alloc_bound(cap * sizeof(id_group)) +
         rf_mem_alloc_bound((uint64_t)pow2_at_least((uint32_t)(cap * 2)) * sizeof(uint32_t));
    b += rf_mem_alloc_bound((cfg->n_patterns + 1ull) * (sizeof(pattern) + sizeof(char *))) +
         cfg->n_patterns * 8192ull; /* deep-copied matchers */
    b += rf_mem_alloc_bound(slots * sizeof(slot_bind));
    if (cfg->n_patterns) {
        uint64_t n = slots * cfg->n_patterns, c = 64;
        while (c < n)
            c *= 2;
        b += rf_mem_alloc_bound(c * sizeof(binding)) + rf_mem_alloc_bound(c / 2 * sizeof(binding));
    }
    b += rf_mem_alloc_bound(pk * sizeof(pkey)) +
         rf_mem_alloc_bound((uint64_t)pow2_at_least((uint32_t)(pk * 2)) * sizeof(uint32_t));
    b += rf_mem_alloc_bound(hist * sizeof(closed));
    b += rf_mem_alloc_bound((RF_CORR_MAX_SHARDS + 1ull) * sizeof(uint32_t)); /* set_peers */
    return b;
}
