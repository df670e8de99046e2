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

#include "core/clock/clock.h"

#define SLOT_ESIZE sizeof(rf_store_slot *)

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t c = 2;
    while (c < n)
        c <<= 1;
    return c;
}

int rf_store_shard_init(rf_store_shard *sh, rf_store *store, uint32_t index)
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
    if (!sh->codec || !sh->enc_ts || !sh->enc_bits)
        return -ENOMEM;
    sh->n_slots = pow2_at_least(cfg->queue_blocks);
    sh->submit = rf_ring_create(sh->n_slots, SLOT_ESIZE);
    sh->free_ring = rf_ring_create(sh->n_slots, SLOT_ESIZE);
    if (!sh->submit || !sh->free_ring)
        return -ENOMEM;
    size_t slot_cap = rf_seg_rec_size((uint32_t)rf_block_encode_bound(cfg->block_points));
    slot_cap = (slot_cap + 63) & ~(size_t)63;
    sh->slots = calloc(sh->n_slots, sizeof(*sh->slots));
    sh->slot_mem = aligned_alloc(64, slot_cap * sh->n_slots);
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
        sh->io.stage[i].data = aligned_alloc(4096, (stage + 4095) & ~(size_t)4095);
        if (!sh->io.stage[i].data)
            return -ENOMEM;
    }
    sh->hard_cap = cfg->block_points + (cfg->block_points / 4 ? cfg->block_points / 4 : 1);
    sh->appends_per_cut = cfg->block_points / 16 ? cfg->block_points / 16 : 1;
    sh->io.last_sync_mono = rf_clock_mono_ns();
    sh->now = sh->io.last_sync_mono; /* buffer ages count from open until the first tick */
    return 0;
}

void rf_store_shard_destroy(rf_store_shard *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; i < sh->n_series; i++) {
        rf_store_series *s = sh->series_all[i];
        free(s->pts);
        rf_series_key_free(s->key);
        free(s);
    }
    free(sh->series_all);
    free(sh->enc_ts);
    free(sh->enc_bits);
    rf_u64map_free(&sh->series_map);
    rf_u64map_free(&sh->io.dict);
    rf_seg_index_free(&sh->io.idx);
    rf_block_codec_free(sh->codec);
    rf_ring_destroy(sh->submit);
    rf_ring_destroy(sh->free_ring);
    free(sh->slots);
    free(sh->slot_mem);
    free(sh->io.stage[0].data);
    free(sh->io.stage[1].data);
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
    uint32_t n = sh->store->cfg.block_points < 16 ? sh->store->cfg.block_points : 16;
    /* (and past it to hard_cap while a cut is queued) */
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
    sh->series_all[sh->n_series++] = s;
    rf_store_count(&sh->series_count, 1);
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
        rf_store_count(&sh->backpressure_events, 1);
        return -ENOBUFS;
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
        rf_store_count(&sh->out_of_order_cuts, 1);
    }
    uint32_t n = s->n < block_points ? s->n : block_points;
    /* The buffer interleaves (time, value) so that an append touches one
     * cache line; the encoder wants columns. */
    for (uint32_t i = 0; i < n; i++) {
        sh->enc_ts[i] = s->pts[i].t;
        sh->enc_bits[i] = s->pts[i].v;
    }
    long len = rf_block_encode(sh->codec, s->value_type, sh->enc_ts, sh->enc_bits, n,
                               slot->rec + RF_SEG_REC_HDR_SIZE,
                               slot->cap - RF_SEG_REC_HDR_SIZE - RF_SEG_REC_CRC_SIZE);
    if (len < 0) {
        /* Cannot happen for a buffer this module filled (times sorted, n in
         * range); if it does, the points are lost, loudly counted. */
        rf_store_count(&sh->dropped_encode_error, n);
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
        /* S1. Never fails: the ring holds as many pointers as there are slots. */
        rf_ring_enqueue(sh->submit, &slot, SLOT_ESIZE);
        atomic_store_explicit(&sh->submitted_seq, sh->seq, memory_order_relaxed);
        rf_store_count(&sh->blocks_cut, 1);
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
    rf_store_count(&sh->cuts_deferred, 1);
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

/* Grows a series' buffer (doubling, at most to hard_cap). Rare: only while a
 * series is still finding its size, and once past block_points while a cut
 * is queued. */
static int grow(rf_store_series *s, uint32_t hard_cap)
{
    uint32_t cap = s->cap * 2 < hard_cap ? s->cap * 2 : hard_cap;
    rf_store_point *p = realloc(s->pts, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    s->pts = p;
    s->cap = cap;
    return 0;
}

int rf_store_append(rf_store_shard *sh, const rf_event *ev)
{
    uint64_t v;
    if (__builtin_expect(!rf_u64map_get(&sh->series_map, ev->series_id, &v), 0)) {
        rf_store_count(&sh->dropped_unknown_series, 1);
        return -ENOENT;
    }
    rf_store_series *s = (rf_store_series *)(uintptr_t)v;
    const uint32_t block_points = sh->store->cfg.block_points;
    if (s->n) {
        if (__builtin_expect(ev->value_type != s->value_type, 0)) {
            /* One value type per block: everything buffered goes first. */
            while (s->n) {
                if (cut(sh, s) < 0) {
                    rf_store_count(&sh->dropped_backpressure, 1);
                    return -ENOBUFS;
                }
            }
        } else if (__builtin_expect(s->n == sh->hard_cap, 0)) {
            /* The queue did not reach this buffer in time (or no slot was
             * free): cut it now. Without a slot the point has nowhere to go. */
            if (cut(sh, s) < 0) {
                rf_store_count(&sh->dropped_backpressure, 1);
                return -ENOBUFS;
            }
        }
    }
    if (s->n && ev->event_time_ns < s->pts[s->n - 1].t)
        s->unsorted = true; /* sorted at the cut */
    if (__builtin_expect(s->n == s->cap, 0) && grow(s, sh->hard_cap) < 0) {
        /* no memory to grow: make room by cutting what is there */
        if (cut(sh, s) < 0) {
            rf_store_count(&sh->dropped_backpressure, 1);
            return -ENOBUFS;
        }
    }
    if (s->n == 0) {
        s->value_type = ev->value_type;
        s->opened_ns = sh->now;
        list_push(sh, s);
    }
    s->pts[s->n] = (rf_store_point){ev->event_time_ns, ev->value.u64};
    s->n++;
    rf_store_count(&sh->points_appended, 1);
    rf_store_count(&sh->points_buffered, 1);
    if (s->n == block_points && !s->queued)
        queue_push(sh, s);
    if (sh->queue_head && ++sh->appends_since_cut >= sh->appends_per_cut) {
        sh->appends_since_cut = 0;
        (void)queue_cut_one(sh); /* no slot: the head waits; hard_cap bounds it */
    }
    return 0;
}

void rf_store_tick(rf_store_shard *sh, int64_t now_mono_ns)
{
    sh->now = now_mono_ns;
    const rf_store_config *cfg = &sh->store->cfg;
    const int64_t budget = cfg->tick_cut_budget_ns;
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
        if (cut(sh, sh->oldest) < 0)
            break;
        rf_store_count(&sh->blocks_cut_by_age, 1);
        if (budget > 0 && rf_clock_mono_ns() >= deadline)
            break;
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
#undef LD
}
