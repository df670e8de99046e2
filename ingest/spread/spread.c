/* Chunk hand-off between workers: see spread.h. */
#include "ingest/spread/spread.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem/bound.h"
#include "core/ring/ring.h"
#include "core/stats/stats.h"

/* A chunk buffer: what the consumer needs beside the bytes. */
typedef struct spread_slot {
    uint32_t len;
    uint16_t source_id;
    uint8_t protocol;
    int64_t mono_ns, wall_ns;
    char peer[RF_SPREAD_PEER_TEXT_MAX];
    char data[RF_SPREAD_BUFFER_BYTES];
} spread_slot;

/* One ordered pair from -> to. The slots belong to `from`: it pops a free
 * one, fills it and puts its index on `full`; `to` takes the index, parses
 * and puts it on `back`. Each ring's release (enqueue) and acquire (dequeue)
 * order the slot's bytes: filled before `to` reads them, read before `from`
 * fills them again (core/ring, P1/C1). */
typedef struct spread_pair {
    rf_ring *full; /* producer from, consumer to */
    rf_ring *back; /* producer to, consumer from */
    spread_slot *slots;
    uint32_t *free_idx; /* from's stack of free slot indices */
    uint32_t n_free, outstanding;
} spread_pair;

/* Aligned: each worker writes its own, and neighbours must not share a line. */
typedef struct spread_counters {
    _Alignas(64) _Atomic uint64_t handed_chunks, handed_bytes, local_chunks, local_bytes,
        taken_chunks, taken_bytes, no_buffer;
    uint32_t next_peer; /* round-robin start (the producer's) */
} spread_counters;

struct rf_spread {
    uint32_t workers, buffers, min_chunk;
    bool enabled;
    spread_pair *pairs; /* [from * workers + to] */
    spread_counters *per_worker;
};

void rf_spread_config_init(rf_spread_config *cfg)
{
    cfg->enabled = false;
    cfg->buffers = RF_SPREAD_BUFFERS_DEFAULT;
    cfg->min_chunk = RF_SPREAD_MIN_CHUNK_DEFAULT;
}

int rf_spread_config_parse(const rf_cfg_node *ingest, rf_spread_config *out, rf_err *err)
{
    rf_spread_config c;
    rf_spread_config_init(&c);
    const rf_cfg_node *sp = NULL;
    uint64_t min_chunk = 0;
    int rc;
    if ((rc = rf_cfg_map(ingest, "spread", &sp, err)) < 0 ||
        (rc = rf_cfg_bool(sp, "enabled", c.enabled, &c.enabled, err)) < 0 ||
        (rc = rf_cfg_u32(sp, "buffers", 2, RF_SPREAD_BUFFERS_MAX, c.buffers, &c.buffers, err)) <
            0 ||
        (rc = rf_cfg_size(sp, "min_chunk", 64, RF_SPREAD_BUFFER_BYTES, c.min_chunk, &min_chunk,
                          err)) < 0)
        return rc;
    if (c.buffers & (c.buffers - 1))
        return rf_cfg_fail_key(sp, "buffers", err, "must be a power of two (2..%u), not %u",
                               RF_SPREAD_BUFFERS_MAX, c.buffers);
    c.min_chunk = (uint32_t)min_chunk;
    *out = c;
    return 0;
}

static spread_pair *pair_of(const rf_spread *sp, uint32_t from, uint32_t to)
{
    return &sp->pairs[(size_t)from * sp->workers + to];
}

uint64_t rf_spread_memory_bound(uint32_t workers, const rf_spread_config *cfg)
{
    if (workers < 2 || !cfg->enabled)
        return 0;
    const uint64_t pairs = (uint64_t)workers * (workers - 1);
    const uint64_t per_pair = 2 * rf_ring_memory_bound(cfg->buffers, 8) +
                              rf_mem_alloc_bound((uint64_t)cfg->buffers * sizeof(spread_slot)) +
                              rf_mem_alloc_bound((uint64_t)cfg->buffers * sizeof(uint32_t));
    return rf_mem_alloc_bound(sizeof(rf_spread)) +
           rf_mem_alloc_bound((uint64_t)workers * workers * sizeof(spread_pair)) +
           rf_mem_alloc_bound((uint64_t)workers * sizeof(spread_counters)) + pairs * per_pair;
}

int rf_spread_new(rf_spread **out, uint32_t workers, const rf_spread_config *cfg, rf_err *err)
{
    *out = NULL;
    if (workers < 2 || !cfg->enabled)
        return 0;
    if (cfg->buffers < 2 || cfg->buffers > RF_SPREAD_BUFFERS_MAX ||
        (cfg->buffers & (cfg->buffers - 1)))
        return rf_err_set(err, EINVAL, "spread: buffers %u: a power of two 2..%u", cfg->buffers,
                          RF_SPREAD_BUFFERS_MAX);
    rf_spread *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return rf_err_set(err, ENOMEM, "spread: out of memory");
    sp->workers = workers;
    sp->buffers = cfg->buffers;
    sp->min_chunk = cfg->min_chunk;
    sp->enabled = cfg->enabled;
    sp->pairs = calloc((size_t)workers * workers, sizeof(spread_pair));
    sp->per_worker = calloc(workers, sizeof(spread_counters));
    if (!sp->pairs || !sp->per_worker)
        goto nomem;
    for (uint32_t from = 0; from < workers; from++)
        for (uint32_t to = 0; to < workers; to++) {
            if (from == to)
                continue;
            spread_pair *p = pair_of(sp, from, to);
            p->full = rf_ring_create(cfg->buffers, 8);
            p->back = rf_ring_create(cfg->buffers, 8);
            p->slots = calloc(cfg->buffers, sizeof(spread_slot));
            p->free_idx = calloc(cfg->buffers, sizeof(uint32_t));
            if (!p->full || !p->back || !p->slots || !p->free_idx)
                goto nomem;
            for (uint32_t i = 0; i < cfg->buffers; i++)
                p->free_idx[i] = cfg->buffers - 1 - i;
            p->n_free = cfg->buffers;
        }
    *out = sp;
    return 0;
nomem:
    rf_spread_free(sp);
    return rf_err_set(err, ENOMEM, "spread: out of memory for %u workers x %u buffers", workers,
                      cfg->buffers);
}

void rf_spread_free(rf_spread *sp)
{
    if (!sp)
        return;
    if (sp->pairs)
        for (size_t i = 0; i < (size_t)sp->workers * sp->workers; i++) {
            rf_ring_destroy(sp->pairs[i].full);
            rf_ring_destroy(sp->pairs[i].back);
            free(sp->pairs[i].slots);
            free(sp->pairs[i].free_idx);
        }
    free(sp->pairs);
    free(sp->per_worker);
    free(sp);
}

/* Producer: takes back the slots `to` has parsed. */
static void take_back(spread_pair *p)
{
    uint64_t idx[RF_SPREAD_BUFFERS_MAX < 64 ? RF_SPREAD_BUFFERS_MAX : 64];
    uint32_t got;
    while ((got = rf_ring_dequeue_burst(p->back, idx, 8, sizeof(idx) / sizeof(idx[0]))) > 0) {
        for (uint32_t i = 0; i < got; i++)
            p->free_idx[p->n_free++] = (uint32_t)idx[i];
        p->outstanding -= got;
    }
}

void rf_spread_count_local(rf_spread *sp, uint32_t from, size_t len)
{
    spread_counters *c = &sp->per_worker[from];
    rf_stats_add(&c->local_chunks, 1);
    rf_stats_add(&c->local_bytes, len);
}

int rf_spread_offer(rf_spread *sp, uint32_t from, uint64_t peer_mask, uint16_t source_id,
                    uint8_t protocol, const char *data, size_t len, const char *peer,
                    int64_t mono_ns, int64_t wall_ns)
{
    spread_counters *c = &sp->per_worker[from];
    if (!sp->enabled || len < sp->min_chunk || len > RF_SPREAD_BUFFER_BYTES)
        goto local;
    bool refused = false;
    const uint32_t n = sp->workers;
    for (uint32_t k = 0; k < n; k++) {
        const uint32_t to = (c->next_peer + k) % n;
        if (to == from || (peer_mask && !((peer_mask >> to) & 1u)))
            continue;
        /* A peer handing us chunks has a fast client of its own. */
        if (rf_ring_count(pair_of(sp, to, from)->full) != 0)
            continue;
        spread_pair *p = pair_of(sp, from, to);
        if (p->n_free == 0)
            take_back(p);
        if (p->n_free == 0) {
            refused = true;
            continue;
        }
        const uint32_t i = p->free_idx[--p->n_free];
        spread_slot *s = &p->slots[i];
        s->len = (uint32_t)len;
        s->source_id = source_id;
        s->protocol = protocol;
        s->mono_ns = mono_ns;
        s->wall_ns = wall_ns;
        /* A TCP peer is always named; a run without one keeps an empty name. */
        size_t pl = peer ? strnlen(peer, RF_SPREAD_PEER_TEXT_MAX - 1) : 0;
        memcpy(s->peer, peer ? peer : "", pl);
        s->peer[pl] = '\0';
        memcpy(s->data, data, len);
        const uint64_t idx = i;
        /* Cannot fail: the ring holds `buffers` and at most `buffers` slots
         * are out (one free index per slot not on a ring). */
        (void)rf_ring_enqueue(p->full, &idx, 8);
        p->outstanding++;
        c->next_peer = to + 1;
        rf_stats_add(&c->handed_chunks, 1);
        rf_stats_add(&c->handed_bytes, len);
        return (int)to;
    }
    if (refused)
        rf_stats_add(&c->no_buffer, 1);
local:
    rf_spread_count_local(sp, from, len);
    return -1;
}

uint32_t rf_spread_outstanding(rf_spread *sp, uint32_t from)
{
    uint32_t n = 0;
    for (uint32_t to = 0; to < sp->workers; to++) {
        if (to == from)
            continue;
        spread_pair *p = pair_of(sp, from, to);
        take_back(p);
        n += p->outstanding;
    }
    return n;
}

uint32_t rf_spread_drain(rf_spread *sp, uint32_t self, uint32_t max_chunks,
                         rf_spread_parse_fn parse, void *ctx)
{
    spread_counters *c = &sp->per_worker[self];
    uint32_t done = 0;
    for (uint32_t from = 0; from < sp->workers && done < max_chunks; from++) {
        if (from == self)
            continue;
        spread_pair *p = pair_of(sp, from, self);
        uint64_t idx;
        while (done < max_chunks && rf_ring_dequeue(p->full, &idx, 8)) {
            const spread_slot *s = &p->slots[idx];
            const rf_spread_chunk ch = {.data = s->data,
                                        .len = s->len,
                                        .from = from,
                                        .source_id = s->source_id,
                                        .protocol = s->protocol,
                                        .peer = s->peer,
                                        .mono_ns = s->mono_ns,
                                        .wall_ns = s->wall_ns};
            parse(ctx, &ch);
            rf_stats_add(&c->taken_chunks, 1);
            rf_stats_add(&c->taken_bytes, s->len);
            /* Cannot fail: `back` holds `buffers`, and only slots that
             * came on `full` go on it. */
            (void)rf_ring_enqueue(p->back, &idx, 8);
            done++;
        }
    }
    return done;
}

void rf_spread_stats_read(const rf_spread *sp, uint32_t worker, rf_spread_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!sp || worker >= sp->workers)
        return;
    spread_counters *c = &sp->per_worker[worker];
#define LD(f) out->f = atomic_load_explicit(&c->f, memory_order_relaxed)
    LD(handed_chunks);
    LD(handed_bytes);
    LD(local_chunks);
    LD(local_bytes);
    LD(taken_chunks);
    LD(taken_bytes);
    LD(no_buffer);
#undef LD
}
