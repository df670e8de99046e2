/* The worker side of a shard: per-series point buffers and block cuts.
 *
 * rf_store_append is the worker's hot path: one hash lookup, two stores into
 * preallocated arrays. A buffer becomes a block when it holds block_points
 * points (the cut is queued and paced, see "Pacing the cuts"), when it is
 * older than block_max_age_ns at a tick, when a point arrives with another
 * value type, or on flush. The cut encodes and checksums the block on the
 * worker (that work scales with the workers, the single I/O thread only
 * copies and writes) into a free slot and hands the slot to the I/O thread. */
#include "storage/store/store_pvt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_estimateCCtxSize, for rf_store_memory_bound */
#include <zstd.h>

#include "core/clock/clock.h"
#include "core/mem/bound.h"
#include "core/mem/mem.h"

#define SLOT_ESIZE sizeof(rf_store_slot *)

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t c = 2;
    while (c < n)
        c <<= 1;
    return c;
}

/* slot_mem: every slot holds the record of a full block, a block of texts
 * included (RF_BLOCK_TEXT_BYTES more; a number block touches only the first
 * pages of its slot, which are mapped lazily). */
static size_t slot_cap_of(const rf_store_config *cfg)
{
    size_t slot_cap = rf_seg_rec_size((uint32_t)rf_block_encode_bound_text(cfg->block_points));
    return (slot_cap + 63) & ~(size_t)63;
}

static size_t stage_alloc_bytes(const rf_store_shard *sh)
{
    return (sh->io.stage_cap + 4095) & ~(size_t)4095;
}

static int shard_init(rf_store_shard *sh, rf_store *store, uint32_t index);

/* The shard's buffers and slots (the slot memory and the two staging
 * buffers: the big ones) on its worker's node, when the engine placed it:
 * everything is allocated in the worker's core/mem scope (cfg.shard_scope).
 * A refused bind leaves them to first touch; it never fails here. */
int rf_store_shard_init(rf_store_shard *sh, rf_store *store, uint32_t index)
{
    rf_mem_scope *scope = store->cfg.shard_scope ? &store->cfg.shard_scope[index] : NULL;
    if (scope)
        rf_mem_scope_enter(scope);
    int rc = shard_init(sh, store, index);
    if (scope)
        rf_mem_scope_leave(scope);
    return rc;
}

static int shard_init(rf_store_shard *sh, rf_store *store, uint32_t index)
{
    const rf_store_config *cfg = &store->cfg;
    sh->store = store;
    sh->index = index;
    sh->io.fd = -1;
    rf_seg_index_init(&sh->io.idx);
    if (rf_u64map_init(&sh->series_map, 64) < 0 || rf_u64map_init(&sh->io.dict, 64) < 0)
        return -ENOMEM;
    sh->codec = rf_block_codec_new(cfg->zstd_level);
    sh->enc_ts = malloc(cfg->block_points * sizeof(*sh->enc_ts));
    sh->enc_bits = malloc(cfg->block_points * sizeof(*sh->enc_bits));
    sh->enc_texts = malloc(cfg->block_points * sizeof(*sh->enc_texts));
    if (!sh->codec || !sh->enc_ts || !sh->enc_bits || !sh->enc_texts)
        return -ENOMEM;
    sh->n_slots = pow2_at_least(cfg->queue_blocks);
    sh->submit = rf_ring_create(sh->n_slots, SLOT_ESIZE);
    sh->free_ring = rf_ring_create(sh->n_slots, SLOT_ESIZE);
    if (!sh->submit || !sh->free_ring)
        return -ENOMEM;
    size_t slot_cap = slot_cap_of(cfg);
    sh->slots = calloc(sh->n_slots, sizeof(*sh->slots));
    sh->slot_mem = rf_mem_zalloc(slot_cap * sh->n_slots, 64);
    if (!sh->slots || !sh->slot_mem)
        return -ENOMEM;
    for (uint32_t i = 0; i < sh->n_slots; i++) {
        rf_store_slot *s = &sh->slots[i];
        s->cap = (uint32_t)slot_cap;
        s->rec = sh->slot_mem + (size_t)i * slot_cap;
        if (!rf_ring_enqueue(sh->free_ring, &s, SLOT_ESIZE))
            return -EINVAL;
    }
    /* Staging must hold at least a full block plus the largest dictionary
     * record (and the segment header) so that every record fits somewhere. */
    size_t stage = cfg->staging_bytes;
    size_t need = RF_SEG_HEADER_SIZE + rf_seg_rec_size(RF_STORE_MAX_KEY) + slot_cap;
    if (stage < need)
        stage = need;
    sh->io.stage_cap = stage;
    for (int i = 0; i < 2; i++) {
        sh->io.stage[i].data = rf_mem_zalloc(stage_alloc_bytes(sh), 4096);
        if (!sh->io.stage[i].data)
            return -ENOMEM;
    }
    sh->hard_cap = cfg->block_points + (cfg->block_points / 4 ? cfg->block_points / 4 : 1);
    sh->appends_per_cut = cfg->block_points / 16 ? cfg->block_points / 16 : 1;
    sh->first_cap = cfg->block_points < 16 ? cfg->block_points : 16;
    sh->growth_budget = cfg->buffer_memory;
    sh->io.last_sync_mono = rf_clock_mono_ns();
    /* Buffer ages count from open until the first tick; an event-clock store
     * reads no clock for them (store.h "Event clock": tick first). */
    sh->now = cfg->event_clock ? 0 : sh->io.last_sync_mono;
    return 0;
}

void rf_store_shard_destroy(rf_store_shard *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i < sh->n_series; i++) {
        rf_store_series *s = sh->series_all[i];
        if (s->texts)
            for (uint32_t k = 0; k < s->n; k++)
                free((void *)(uintptr_t)s->pts[k].v);
        free(s->pts);
        rf_series_key_free(s->key);
        free(s);
    }
    free(sh->series_all);
    while (sh->retired_head) {
        rf_store_series *s = sh->retired_head;
        sh->retired_head = s->queue_next;
        rf_series_key_free(s->key);
        free(s);
    }
    free(sh->enc_ts);
    free(sh->enc_bits);
    free(sh->enc_texts);
    rf_u64map_free(&sh->series_map);
    rf_u64map_free(&sh->io.dict);
    rf_seg_index_free(&sh->io.idx);
    free(sh->io.dict_base);
    rf_block_codec_free(sh->codec);
    rf_ring_destroy(sh->submit);
    rf_ring_destroy(sh->free_ring);
    free(sh->slots);
    rf_mem_free(sh->slot_mem, slot_cap_of(&sh->store->cfg) * sh->n_slots);
    rf_mem_free(sh->io.stage[0].data, stage_alloc_bytes(sh));
    rf_mem_free(sh->io.stage[1].data, stage_alloc_bytes(sh));
    free(sh);
}

int rf_store_define_series(rf_store_shard *sh, const rf_series_key *key)
{
    uint64_t v;
    if (rf_u64map_get(&sh->series_map, key->series_id, &v))
        return 0;
    if (key->len > RF_STORE_MAX_KEY || key->series_id == 0)
        return -EINVAL;
    /* Buffers start small and double up to block_points as a series proves
     * it fills them before its age cut: memory follows each series' rate
     * instead of series x block_points. They keep their size across cuts,
     * so steady-state appends never allocate. */
    uint32_t n = sh->first_cap;
    /* (and past it to hard_cap while a cut is queued; within buffer_memory,
     * see "The buffer budget") */
    rf_store_series *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->series_id = key->series_id;
    s->cap = n;
    s->key = rf_series_key_new(key->text, key->len, key->measurement_len, key->field_offset);
    s->pts = malloc(n * sizeof(*s->pts));
    if (sh->n_series == sh->cap_series) {
        size_t cap = sh->cap_series ? sh->cap_series * 2 : 64;
        rf_store_series **p = realloc(sh->series_all, cap * sizeof(*p));
        if (p) {
            sh->series_all = p;
            sh->cap_series = cap;
        }
    }
    if (!s->key || !s->pts || sh->n_series == sh->cap_series ||
        rf_u64map_put(&sh->series_map, s->series_id, (uint64_t)(uintptr_t)s) < 0) {
        rf_series_key_free(s->key);
        free(s->pts);
        free(s);
        return -ENOMEM;
    }
    /* the key as stored reflects the id given (the text hashes to it) */
    s->key->series_id = key->series_id;
    s->all_idx = (uint32_t)sh->n_series;
    sh->series_all[sh->n_series++] = s;
    rf_stats_add(&sh->series_count, 1);
    rf_stats_add(&sh->buffer_bytes, (uint64_t)n * sizeof(*s->pts));
    return 0;
}

static void list_remove(rf_store_shard *sh, rf_store_series *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        sh->oldest = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        sh->newest = s->prev;
    s->prev = s->next = NULL;
}

static void list_push(rf_store_shard *sh, rf_store_series *s)
{
    s->next = NULL;
    s->prev = sh->newest;
    if (sh->newest)
        sh->newest->next = s;
    else
        sh->oldest = s;
    sh->newest = s;
}

/* Encodes the first min(n, block_points) points of s into a slot and hands it
 * to the I/O thread; points beyond them stay buffered (a paced cut lets a
 * buffer run past block_points, see "Pacing the cuts"). Returns 0, or
 * -ENOBUFS when no slot is free (nothing changes then). */
static int cut(rf_store_shard *sh, rf_store_series *s)
{
    rf_store_slot *slot = sh->spare;
    if (slot) {
        sh->spare = NULL;
    } else if (!rf_ring_dequeue(sh->free_ring, &slot, SLOT_ESIZE)) {
        if (!sh->store->cfg.event_clock) {
            rf_stats_add(&sh->backpressure_events, 1);
            return -ENOBUFS;
        }
        /* Event clock: where a block ends must not depend on how far the
         * I/O thread is behind, so wait for it (a replay, not a live
         * worker; every slot comes back, written or counted lost). */
        while (!rf_ring_dequeue(sh->free_ring, &slot, SLOT_ESIZE)) { /* S2 */
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    const uint32_t block_points = sh->store->cfg.block_points;
    /* Points of one series can arrive slightly out of time order (two
     * workers receive it, each stamping receipt time, and one hands its
     * events over a ring): sort the buffer here rather than cut a block at
     * every inversion, which made blocks of a few dozen points. Insertion
     * sort is stable (equal times keep arrival order) and linear on the
     * nearly sorted buffers this sees. The whole buffer is sorted, so what
     * stays behind a partial cut is sorted too. */
    if (s->unsorted) {
        for (uint32_t i = 1; i < s->n; i++) {
            rf_store_point x = s->pts[i];
            uint32_t j = i;
            while (j > 0 && s->pts[j - 1].t > x.t) {
                s->pts[j] = s->pts[j - 1];
                j--;
            }
            s->pts[j] = x;
        }
        s->unsorted = false;
        rf_stats_add(&sh->out_of_order_cuts, 1);
    }
    uint32_t n = s->n < block_points ? s->n : block_points;
    /* The buffer interleaves (time, value) so that an append touches one
     * cache line; the encoder wants columns. */
    for (uint32_t i = 0; i < n; i++) {
        sh->enc_ts[i] = s->pts[i].t;
        sh->enc_bits[i] = s->pts[i].v;
    }
    long len;
    uint8_t *payload = slot->rec + RF_SEG_REC_HDR_SIZE;
    const size_t room = slot->cap - RF_SEG_REC_HDR_SIZE - RF_SEG_REC_CRC_SIZE;
    if (s->texts) {
        /* Texts: each point's value is its own copy (append_to), freed once
         * encoded whatever came of it. */
        for (uint32_t i = 0; i < n; i++) {
            const rf_event_text *t = (const rf_event_text *)(uintptr_t)s->pts[i].v;
            sh->enc_texts[i] = (rf_block_text){t->text, t->len};
            s->text_bytes -= t->len;
        }
        len = rf_block_encode_text(sh->codec, sh->enc_ts, sh->enc_texts, n, payload, room);
        for (uint32_t i = 0; i < n; i++)
            free((void *)(uintptr_t)s->pts[i].v);
    } else {
        len = rf_block_encode(sh->codec, s->value_type, sh->enc_ts, sh->enc_bits, n, payload, room);
    }
    if (len < 0) {
        /* Cannot happen for a buffer this module filled (times sorted, n in
         * range); if it does, the points are lost, loudly counted. */
        rf_stats_add(&sh->dropped_encode_error, n);
        sh->spare = slot; /* the free ring is io's to produce into: keep it here */
    } else {
        rf_seg_rec h = {
            .type = RF_SEG_REC_BLOCK,
            .value_type = s->value_type,
            .payload_len = (uint32_t)len,
            .count = n,
            .series_id = s->series_id,
            .min_time = s->pts[0].t,
            .max_time = s->pts[n - 1].t,
        };
        rf_seg_rec_put_header(slot->rec, &h);
        rf_seg_rec_seal(slot->rec);
        slot->seq = ++sh->seq;
        slot->key = s->key;
        slot->series_id = s->series_id;
        slot->min_time = h.min_time;
        slot->max_time = h.max_time;
        slot->n_points = n;
        slot->len = (uint32_t)rf_seg_rec_size((uint32_t)len);
        slot->cut_mono = sh->now;
        slot->cut_wall = sh->now_wall;
        /* S1. Never fails: the ring holds as many pointers as there are slots. */
        rf_ring_enqueue(sh->submit, &slot, SLOT_ESIZE);
        atomic_store_explicit(&sh->submitted_seq, sh->seq, memory_order_relaxed);
        rf_stats_add(&sh->blocks_cut, 1);
    }
    uint32_t rest = s->n - n;
    list_remove(sh, s);
    if (rest) {
        /* What arrived while the cut was queued starts the next block; it
         * ages from now (its first point's arrival is not kept). */
        memmove(s->pts, s->pts + n, rest * sizeof(*s->pts));
        s->opened_ns = sh->now;
        list_push(sh, s);
    }
    s->n = rest;
    atomic_store_explicit(&sh->points_buffered,
                          atomic_load_explicit(&sh->points_buffered, memory_order_relaxed) - n,
                          memory_order_relaxed);
    return 0;
}

/* ---- Pacing the cuts ------------------------------------------------------
 *
 * Encoding a full block costs tens of microseconds. Series that report at
 * the same interval fill their blocks at the same moment: cut inline, a
 * thousand of them stalled the worker for tens of milliseconds at once, and
 * every event behind them, critical ones included, waited that long (the
 * critical path's p99 at 1 M events/s was 3.7 ms, 0.14 ms without the
 * store). So a buffer that reaches block_points is queued instead, and the
 * queue is worked off a little at a time: one cut per block_points/16
 * appends (16 times the rate at which buffers can fill, so the queue always
 * drains under load; 64 appends for 1024-point blocks), and within a time budget at
 * each tick (for when appends stop). Meanwhile a queued buffer keeps taking
 * points, up to hard_cap = block_points + block_points/4; only a buffer at
 * hard_cap is cut inline. Blocks still hold exactly block_points points (the
 * cut takes the first block_points), so block boundaries do not depend on
 * timing. */

static void queue_push(rf_store_shard *sh, rf_store_series *s)
{
    s->queued = true;
    s->queue_next = NULL;
    if (sh->queue_tail)
        sh->queue_tail->queue_next = s;
    else
        sh->queue_head = s;
    sh->queue_tail = s;
    sh->queue_len++;
    rf_stats_add(&sh->cuts_deferred, 1);
    atomic_store_explicit(&sh->cut_queue_len, sh->queue_len, memory_order_relaxed);
    if (sh->queue_len > atomic_load_explicit(&sh->cut_queue_high, memory_order_relaxed))
        atomic_store_explicit(&sh->cut_queue_high, sh->queue_len, memory_order_relaxed);
}

/* Cuts the series at the head of the queue. Returns 1 when a block was cut,
 * 0 when the head no longer needed one (cut inline meanwhile), -ENOBUFS when
 * no slot is free (the head stays). */
static int queue_cut_one(rf_store_shard *sh)
{
    rf_store_series *s = sh->queue_head;
    int cut_done = 0;
    if (s->n >= sh->store->cfg.block_points) {
        if (cut(sh, s) < 0)
            return -ENOBUFS;
        cut_done = 1;
    }
    sh->queue_head = s->queue_next;
    if (!sh->queue_head)
        sh->queue_tail = NULL;
    sh->queue_len--;
    s->queued = false;
    s->queue_next = NULL;
    /* No full block is left behind: hard_cap < 2 x block_points. */
    atomic_store_explicit(&sh->cut_queue_len, sh->queue_len, memory_order_relaxed);
    return cut_done;
}

/* ---- The buffer budget ----------------------------------------------------
 *
 * Without a budget a shard's buffers can reach max_series x hard_cap points
 * (20 KiB a series with 1024-point blocks): with a million series, tens of
 * GiB. buffer_memory bounds what they grow into beyond their first
 * allocation: a buffer whose growth would pass it is cut instead, a smaller
 * block than block_points (counted in blocks_cut_by_memory); a queued one
 * (full already) is cut now rather than paced. Nothing is dropped for it and
 * the worker never waits: without a free slot the point is refused exactly
 * as at hard_cap (dropped_backpressure). Memory comes back when a buffer
 * grown for a faster past is found at most a quarter full by its age cut:
 * it is halved (down to its first size), once per age cut. First come,
 * first served otherwise: series that grew keep their size. */

/* Grows a series' buffer (doubling, at most to hard_cap). Rare: only while a
 * series is still finding its size, and once past block_points while a cut
 * is queued. Returns 0, -ENOSPC when the budget does not allow it, -ENOMEM. */
static int grow(rf_store_shard *sh, rf_store_series *s)
{
    uint32_t cap = s->cap * 2 < sh->hard_cap ? s->cap * 2 : sh->hard_cap;
    uint64_t more = (uint64_t)(cap - s->cap) * sizeof(rf_store_point);
    if (sh->growth_budget && sh->growth_bytes + more > sh->growth_budget)
        return -ENOSPC;
    rf_store_point *p = realloc(s->pts, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    s->pts = p;
    s->cap = cap;
    sh->growth_bytes += more;
    rf_stats_add(&sh->buffer_bytes, more);
    return 0;
}

/* Halves an empty buffer that its age cut found at most a quarter full
 * (budgeted shards only: without a budget, sizes stay as they grew). */
static void shrink_after_age_cut(rf_store_shard *sh, rf_store_series *s, uint32_t had)
{
    if (!sh->growth_budget || s->n || s->cap <= sh->first_cap || had > s->cap / 4)
        return;
    uint32_t cap = s->cap / 2 > sh->first_cap ? s->cap / 2 : sh->first_cap;
    rf_store_point *p = realloc(s->pts, cap * sizeof(*p));
    if (!p)
        return; /* keeps the larger buffer */
    uint64_t less = (uint64_t)(s->cap - cap) * sizeof(rf_store_point);
    s->pts = p;
    s->cap = cap;
    sh->growth_bytes -= less;
    atomic_store_explicit(&sh->buffer_bytes,
                          atomic_load_explicit(&sh->buffer_bytes, memory_order_relaxed) - less,
                          memory_order_relaxed);
}

int rf_store_append(rf_store_shard *sh, const rf_event *ev)
{
    return rf_store_append_keyed(sh, ev, NULL, NULL);
}

/* A series' first point: defines it from its key, or counts the point. */
static rf_store_series *define_late(rf_store_shard *sh, const rf_event *ev, rf_store_key_fn key_of,
                                    void *ctx)
{
    const rf_series_key *key = key_of ? key_of(ctx, ev->series_id) : NULL;
    uint64_t v;
    if (!key || key->series_id != ev->series_id || rf_store_define_series(sh, key) < 0 ||
        !rf_u64map_get(&sh->series_map, ev->series_id, &v)) {
        rf_stats_add(&sh->dropped_unknown_series, 1);
        return NULL;
    }
    return (rf_store_series *)(uintptr_t)v;
}

static int append_to(rf_store_shard *sh, rf_store_series *s, const rf_event *ev);

int rf_store_append_keyed(rf_store_shard *sh, const rf_event *ev, rf_store_key_fn key_of, void *ctx)
{
    uint64_t v;
    rf_store_series *s;
    if (__builtin_expect(rf_u64map_get(&sh->series_map, ev->series_id, &v), 1))
        s = (rf_store_series *)(uintptr_t)v;
    else if (!(s = define_late(sh, ev, key_of, ctx)))
        return -ENOENT;
    return append_to(sh, s, ev);
}

/* With many series every append is three cache misses in a row: the map
 * slot, the series, the buffer's tail. One after another they cost the
 * worker most of its time at 100,000 series (stages/chain/store); issued a
 * group at a time as prefetches they overlap. APPEND_GROUP events are in
 * flight: enough to cover a miss, few enough that the lines stay cached. */
#define APPEND_GROUP 16

uint32_t rf_store_append_batch(rf_store_shard *sh, const rf_event *ev, uint32_t n,
                               rf_store_key_fn key_of, void *ctx)
{
    const rf_u64map *map = &sh->series_map;
    uint32_t refused = 0;
    for (uint32_t base = 0; base < n; base += APPEND_GROUP) {
        const uint32_t m = n - base < APPEND_GROUP ? n - base : APPEND_GROUP;
        const rf_event *e = ev + base;
        rf_store_series *s[APPEND_GROUP];
        for (uint32_t i = 0; i < m; i++)
            __builtin_prefetch(&map->e[rf_u64map_slot(map, e[i].series_id)]);
        for (uint32_t i = 0; i < m; i++) {
            uint64_t v;
            s[i] = rf_u64map_get(map, e[i].series_id, &v) ? (rf_store_series *)(uintptr_t)v : NULL;
            if (s[i])
                __builtin_prefetch(s[i]);
        }
        for (uint32_t i = 0; i < m; i++)
            if (s[i]) /* a hint: past the end when the buffer is full, which is harmless */
                __builtin_prefetch(&s[i]->pts[s[i]->n], 1);
        for (uint32_t i = 0; i < m; i++) {
            /* Looked up again when the group's first point defined it. */
            rf_store_series *x = s[i] ? s[i] : define_late(sh, &e[i], key_of, ctx);
            if (!x || append_to(sh, x, &e[i]) < 0)
                refused++;
        }
    }
    return refused;
}

static int append_to(rf_store_shard *sh, rf_store_series *s, const rf_event *ev)
{
    const uint32_t block_points = sh->store->cfg.block_points;
    /* A string value with its text (core/event/event.h) is kept as text;
     * one without (a hash only) as the hash, as before. */
    const rf_event_text *text = NULL;
    if (__builtin_expect(ev->value_type == RF_VALUE_STRING && (ev->flags & RF_EVF_OWNS_AUX), 0))
        text = (const rf_event_text *)(uintptr_t)ev->aux;
    if (s->n) {
        if (__builtin_expect(ev->value_type != s->value_type || (text != NULL) != s->texts ||
                                 (text && s->text_bytes + text->len > RF_BLOCK_TEXT_BYTES),
                             0)) {
            /* One value type per block (texts or hashes), and a block of
             * texts holds at most RF_BLOCK_TEXT_BYTES of them: everything
             * buffered goes first. */
            /* One value type per block: everything buffered goes first. */
            while (s->n) {
                if (cut(sh, s) < 0) {
                    rf_stats_add(&sh->dropped_backpressure, 1);
                    return -ENOBUFS;
                }
            }
        } else if (__builtin_expect(s->n == sh->hard_cap, 0)) {
            /* The queue did not reach this buffer in time (or no slot was
             * free): cut it now. Without a slot the point has nowhere to go. */
            if (cut(sh, s) < 0) {
                rf_stats_add(&sh->dropped_backpressure, 1);
                return -ENOBUFS;
            }
        }
    }
    int64_t t = ev->event_time_ns;
    int64_t unit = sh->store->cfg.time_unit_ns;
    if (unit == 0) /* auto: the client's times exact, receipt times to the millisecond */
        unit = (ev->flags & RF_EVF_HAS_CLIENT_TIME) ? 1 : RF_NS_PER_MS;
    if (unit > 1) {
        int64_t r = t % unit;
        t -= r < 0 ? r + unit : r; /* down, also before 1970 */
    }
    if (s->n && t < s->pts[s->n - 1].t)
        s->unsorted = true; /* sorted at the cut */
    if (__builtin_expect(s->n == s->cap, 0)) {
        int g = grow(sh, s);
        if (g < 0) {
            /* the budget, or no memory: make room by cutting what is there */
            if (cut(sh, s) < 0) {
                rf_stats_add(&sh->dropped_backpressure, 1);
                return -ENOBUFS;
            }
            if (g == -ENOSPC)
                rf_stats_add(&sh->blocks_cut_by_memory, 1);
        }
    }
    uint64_t v = ev->value.u64;
    if (__builtin_expect(text != NULL, 0)) {
        rf_event_text *copy = malloc(sizeof(*copy) + text->len + 1);
        if (!copy) {
            rf_stats_add(&sh->dropped_encode_error, 1);
            return -ENOMEM;
        }
        memcpy(copy, text, sizeof(*copy) + text->len + 1);
        v = (uint64_t)(uintptr_t)copy;
        s->text_bytes += text->len;
    }
    if (s->n == 0) {
        s->value_type = ev->value_type;
        s->texts = text != NULL;
        s->opened_ns = sh->now;
        list_push(sh, s);
    }
    s->pts[s->n] = (rf_store_point){t, v};
    s->n++;
    rf_stats_add(&sh->points_appended, 1);
    rf_stats_add(&sh->points_buffered, 1);
    if (s->n == block_points && !s->queued)
        queue_push(sh, s);
    if (sh->queue_head && ++sh->appends_since_cut >= sh->appends_per_cut) {
        sh->appends_since_cut = 0;
        (void)queue_cut_one(sh); /* no slot: the head waits; hard_cap bounds it */
    }
    return 0;
}

void rf_store_tick_wall(rf_store_shard *sh, int64_t now_mono_ns, int64_t now_wall_ns)
{
    sh->now_wall = now_wall_ns;
    rf_store_tick(sh, now_mono_ns);
}

static void reap_retired(rf_store_shard *sh);

int64_t rf_store_next_due_ns(const rf_store_shard *sh)
{
    if (sh->queue_head || sh->retired_head)
        return 0;
    return sh->oldest ? sh->oldest->opened_ns + sh->store->cfg.block_max_age_ns : INT64_MAX;
}

void rf_store_tick(rf_store_shard *sh, int64_t now_mono_ns)
{
    sh->now = now_mono_ns;
    if (sh->retired_head)
        reap_retired(sh);
    const rf_store_config *cfg = &sh->store->cfg;
    /* No budget on an event clock: it is measured in real time. */
    const int64_t budget = cfg->event_clock ? 0 : cfg->tick_cut_budget_ns;
    /* The budget is checked after each cut, so at least one cut runs. */
    const int64_t deadline = budget > 0 ? rf_clock_mono_ns() + budget : INT64_MAX;
    while (sh->queue_head) {
        if (queue_cut_one(sh) < 0)
            return; /* no slot: the I/O thread is behind; retried next tick */
        if (budget > 0 && rf_clock_mono_ns() >= deadline)
            return;
    }
    /* Oldest first; stop at the first young buffer, when slots run out or
     * when the budget is spent. */
    int64_t limit = now_mono_ns - cfg->block_max_age_ns;
    while (sh->oldest && sh->oldest->opened_ns <= limit) {
        rf_store_series *s = sh->oldest;
        const uint32_t had = s->n;
        if (cut(sh, s) < 0)
            break;
        rf_stats_add(&sh->blocks_cut_by_age, 1);
        shrink_after_age_cut(sh, s, had);
        if (budget > 0 && rf_clock_mono_ns() >= deadline)
            break;
    }
}

int rf_store_forget_series(rf_store_shard *sh, uint64_t series_id)
{
    uint64_t v;
    if (!rf_u64map_get(&sh->series_map, series_id, &v))
        return 0;
    rf_store_series *s = (rf_store_series *)(uintptr_t)v;
    /* A full buffer waiting for its paced cut stays (it is rare: an idle
     * series' buffer was cut by age long before it expires). */
    if (s->queued)
        return -EBUSY;
    while (s->n)
        if (cut(sh, s) < 0)
            return -ENOBUFS;
    rf_u64map_remove(&sh->series_map, series_id);
    rf_store_series *last = sh->series_all[--sh->n_series];
    sh->series_all[s->all_idx] = last;
    last->all_idx = s->all_idx;
    const uint64_t bytes = (uint64_t)s->cap * sizeof(*s->pts);
    if (s->cap > sh->first_cap)
        sh->growth_bytes -= (uint64_t)(s->cap - sh->first_cap) * sizeof(*s->pts);
    free(s->pts);
    s->pts = NULL;
    atomic_store_explicit(&sh->buffer_bytes,
                          atomic_load_explicit(&sh->buffer_bytes, memory_order_relaxed) - bytes,
                          memory_order_relaxed);
    atomic_store_explicit(&sh->series_count,
                          atomic_load_explicit(&sh->series_count, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    s->retired_seq = sh->seq;
    s->queue_next = NULL;
    if (sh->retired_tail)
        sh->retired_tail->queue_next = s;
    else
        sh->retired_head = s;
    sh->retired_tail = s;
    return 0;
}

/* Frees forgotten series whose every block the I/O thread has written. */
static void reap_retired(rf_store_shard *sh)
{
    /* S4: pairs with the I/O thread's release store of written_seq, after
     * it copied those blocks (and their keys) into its staging buffer. */
    const uint64_t written = atomic_load_explicit(&sh->written_seq, memory_order_acquire);
    while (sh->retired_head && sh->retired_head->retired_seq <= written) {
        rf_store_series *s = sh->retired_head;
        sh->retired_head = s->queue_next;
        if (!sh->retired_head)
            sh->retired_tail = NULL;
        rf_series_key_free(s->key);
        free(s);
    }
}

int rf_store_flush(rf_store_shard *sh, uint64_t *ticket)
{
    int rc = 0;
    /* Queued cuts first, in the order their buffers filled, then every
     * other buffer oldest first. */
    while (sh->queue_head) {
        if (queue_cut_one(sh) < 0) {
            rc = -EAGAIN;
            goto out;
        }
    }
    while (sh->oldest) {
        if (cut(sh, sh->oldest) < 0) {
            rc = -EAGAIN;
            break;
        }
    }
out:
    /* S3: after the S1 enqueues of every block the ticket covers. */
    atomic_store_explicit(&sh->flush_req, sh->seq, memory_order_release);
    if (ticket)
        *ticket = sh->seq;
    return rc;
}

int rf_store_wait_durable(rf_store_shard *sh, uint64_t ticket, int64_t timeout_ns)
{
    int64_t deadline = rf_clock_mono_ns() + timeout_ns;
    for (;;) {
        if (atomic_load_explicit(&sh->durable_seq, memory_order_acquire) >= ticket)
            return 0;
        if (atomic_load_explicit(&sh->io_failed, memory_order_acquire))
            return -EIO;
        if (rf_clock_mono_ns() >= deadline)
            return -ETIMEDOUT;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

void rf_store_shard_stats_read(const rf_store_shard *sh, rf_store_shard_stats *o)
{
#define LD(f) atomic_load_explicit(&sh->f, memory_order_relaxed)
    o->series = LD(series_count);
    o->points_appended = LD(points_appended);
    o->points_buffered = LD(points_buffered);
    o->blocks_cut = LD(blocks_cut);
    o->blocks_cut_by_age = LD(blocks_cut_by_age);
    o->backpressure_events = LD(backpressure_events);
    o->dropped_backpressure = LD(dropped_backpressure);
    o->dropped_unknown_series = LD(dropped_unknown_series);
    o->dropped_encode_error = LD(dropped_encode_error);
    o->out_of_order_cuts = LD(out_of_order_cuts);
    o->blocks_written = LD(blocks_written);
    o->bytes_written = LD(bytes_written);
    o->fsyncs = LD(fsyncs);
    o->write_errors = LD(write_errors);
    o->dropped_io_error = LD(dropped_io_error);
    o->submitted_seq = LD(submitted_seq);
    o->written_seq = LD(written_seq);
    o->durable_seq = LD(durable_seq);
    o->cuts_deferred = LD(cuts_deferred);
    o->cut_queue = LD(cut_queue_len);
    o->cut_queue_high = LD(cut_queue_high);
    o->blocks_cut_by_memory = LD(blocks_cut_by_memory);
    o->buffer_bytes = LD(buffer_bytes);
#undef LD
}

/* ---- rf_store_memory_bound: what the code above and io.c allocate -------- */

static uint64_t alloc_sz(uint64_t bytes)
{
    return rf_mem_alloc_bound(bytes);
}

/* An array that doubles up to n elements: its capacity (at most 2n) and the
 * old array alive while realloc copies (at most n). */
static uint64_t doubling(uint64_t n, uint64_t esize)
{
    return alloc_sz(3 * n * esize);
}

/* An rf_u64map holding n keys: capacity a power of two at most 4n (load <=
 * 1/2), and the half-size array alive while it rehashes. */
static uint64_t u64map_sz(uint64_t n)
{
    uint64_t cap = 16;
    while (cap < 4 * n)
        cap <<= 1;
    return alloc_sz(cap * sizeof(rf_u64map_entry)) + alloc_sz(cap / 2 * sizeof(rf_u64map_entry));
}

void rf_store_memory_bound(const rf_store_config *cfg_in, uint32_t max_series,
                           uint32_t max_key_bytes, rf_store_memory *out)
{
    rf_store_config def;
    if (!cfg_in) {
        rf_store_config_default(&def);
        cfg_in = &def;
    }
    const rf_store_config *cfg = cfg_in;
    const uint64_t bp = cfg->block_points ? cfg->block_points : 1;
    memset(out, 0, sizeof(*out));

    /* fixed: rf_store_shard_init, and the shard struct itself */
    const uint64_t n_slots = pow2_at_least(cfg->queue_blocks);
    size_t slot_cap = rf_seg_rec_size((uint32_t)rf_block_encode_bound_text((uint32_t)bp));
    slot_cap = (slot_cap + 63) & ~(size_t)63;
    uint64_t stage = cfg->staging_bytes;
    const uint64_t need = RF_SEG_HEADER_SIZE + rf_seg_rec_size(RF_STORE_MAX_KEY) + slot_cap;
    if (stage < need)
        stage = need;
    stage = (stage + 4095) & ~(uint64_t)4095;
    uint64_t f = alloc_sz(sizeof(rf_store_shard));
    f += alloc_sz(n_slots * sizeof(rf_store_slot)) + alloc_sz(n_slots * slot_cap);
    f += 2 * alloc_sz(stage);
    f += 2 * alloc_sz(rf_ring_memsize((uint32_t)n_slots, SLOT_ESIZE) + 128);
    f += 2 * alloc_sz(bp * sizeof(int64_t)); /* enc_ts, enc_bits */
    /* The codec (storage/encode): three scratch columns, two bodies and the
     * zstd output, touched up to one block's bound; zstd's contexts at the
     * level's largest (unknown source size). */
    const uint64_t eb = rf_block_encode_bound((uint32_t)bp);
    f += 4096 + 3 * alloc_sz(bp * sizeof(uint64_t)) + 2 * alloc_sz(eb) +
         alloc_sz(ZSTD_compressBound(eb));
    f += (cfg->zstd_level > 0 ? ZSTD_estimateCCtxSize(cfg->zstd_level) : 0) +
         ZSTD_estimateDCtxSize();
    out->fixed = f;

    /* series: rf_store_define_series, and the I/O thread's per-segment state */
    const uint64_t ns = max_series;
    const uint32_t first = cfg->block_points < 16 ? cfg->block_points : 16;
    uint64_t s = ns * (alloc_sz(sizeof(rf_store_series)) +
                       alloc_sz(sizeof(rf_series_key) + (uint64_t)max_key_bytes + 1) +
                       alloc_sz((uint64_t)first * sizeof(rf_store_point)));
    s += doubling(ns, sizeof(rf_store_series *)); /* series_all */
    s += u64map_sz(ns);                           /* series_map */
    s += u64map_sz(ns);                           /* io.dict: series in the open segment */
    s += alloc_sz((uint64_t)max_key_bytes);       /* io.dict_base: the key later ones share with */
    /* The open segment's index: a series entry per series and a block entry
     * per record (the smallest record, a one-point block, is 45 bytes), then
     * the footer built from it at the roll. */
    const uint64_t blocks =
        cfg->segment_max_bytes / (RF_SEG_REC_HDR_SIZE + RF_SEG_REC_CRC_SIZE + 1) + 1;
    s += doubling(ns, sizeof(rf_seg_series_ref)) + doubling(blocks, sizeof(rf_seg_block_ref));
    s += alloc_sz(ns * sizeof(rf_seg_series_ref) + blocks * sizeof(rf_seg_block_ref) + 4096);
    out->series = s;

    /* buffers: growth beyond the first allocation (the allocator rounds
     * each buffer, counted in "series" by its header) */
    const uint64_t hard_cap = bp + (bp / 4 ? bp / 4 : 1);
    uint64_t grow_all = ns * (hard_cap > first ? hard_cap - first : 0) * sizeof(rf_store_point);
    out->buffers =
        cfg->buffer_memory && cfg->buffer_memory < grow_all ? cfg->buffer_memory : grow_all;
    out->total = out->fixed + out->series + out->buffers;
}
