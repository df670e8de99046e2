/* Private to storage/store: the structures behind store.h. Do not include
 * from other folders.
 *
 * Ownership of every field is stated per block; "worker" is the shard's owner
 * thread, "io" the store's I/O thread. Counters read by other threads are
 * _Atomic and written by their single owner with relaxed stores (readers
 * only display them). The synchronising edges are:
 *   S1 worker enqueues a slot pointer on `submit` (ring release)  pairs with
 *      io's dequeue (ring acquire): the slot's record bytes are visible to io.
 *   S2 io enqueues the slot pointer on `free` after copying it    pairs with
 *      the worker's dequeue: io no longer reads the slot the worker refills.
 *   S3 worker's release-store of flush_req (after S1 of the blocks it covers)
 *      pairs with io's acquire-load: io sees the request and those blocks.
 *   S4 io's release-store of durable_seq / written_seq / io_failed pairs with
 *      rf_store_wait_durable's acquire-load.
 *   S5 retention_req (release, caller) / retention_done (release, io) with
 *      acquire-loads on the other side.
 *   S6 io's release-store of io_health (after degraded_since_ns) pairs with
 *      rf_store_shard_io_status_read's acquire-load: a reader that sees
 *      "degraded" sees when it began.
 *   S7 last_error is a seqlock (rf_store_errtext): io's release fence after
 *      making seq odd and release-store of the even seq pair with the
 *      reader's acquire-load of seq and acquire fence before re-reading it.
 *   S8 io's release-store of last_errno (after writing last_error) pairs
 *      with rf_store_shard_io_status_read's acquire-load before it reads the
 *      text: a reader that sees an errno sees its text (or a newer one).
 */
#ifndef RF_STORAGE_STORE_PVT_H
#define RF_STORAGE_STORE_PVT_H

#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "core/ring/ring.h"
#include "storage/encode/encode.h"
#include "storage/segment/segment.h"
#include "storage/store/store.h"
#include "storage/u64map/u64map.h"
#include "core/stats/stats.h"

#define RF_STORE_COMPONENT "store"
#define RF_STORE_MAX_KEY 65535u

/* A sealed block on its way to disk: the complete record (header, encoded
 * payload, CRC), built by the worker. */
typedef struct rf_store_slot {
    uint64_t seq;             /* per-shard block sequence, 1-based */
    const rf_series_key *key; /* immutable until the store closes */
    uint64_t series_id;
    int64_t min_time, max_time;
    uint32_t n_points;
    uint32_t len; /* record bytes in rec */
    uint32_t cap;
    uint8_t *rec;
    int64_t cut_mono, cut_wall; /* the shard's tick clock at the cut (event_clock; written
                                 * before S1, like the record) */
} rf_store_slot;

typedef struct rf_store_point {
    int64_t t;
    uint64_t v;
} rf_store_point;

/* A series' point buffer (worker-owned). */
typedef struct rf_store_series {
    uint64_t series_id;
    rf_series_key *key;
    rf_store_point *pts;
    uint32_t n;
    uint32_t cap; /* points pts can hold now (<= the shard's hard_cap) */
    uint8_t value_type;
    bool texts;          /* RF_VALUE_STRING with their texts: each pts[].v is a
                                 * malloc'd rf_event_text copy, freed at the cut */
    uint32_t text_bytes; /* their bytes; a block holds at most RF_BLOCK_TEXT_BYTES */
    bool queued;         /* on the shard's cut queue (holds >= block_points points) */
    bool unsorted;       /* a point arrived older than the one before: sort at the cut */
    int64_t opened_ns;   /* shard->now when the first buffered point arrived */
    struct rf_store_series *prev, *next; /* non-empty buffers, oldest first */
    struct rf_store_series *queue_next;  /* cut queue, FIFO; the retired list */
    uint32_t all_idx;                    /* its index in the shard's series_all */
    uint64_t retired_seq;                /* retired: the last block seq that may point at its key */
} rf_store_series;

/* Staging buffer of the I/O thread: records are copied here and written in
 * one io_uring write per buffer. */
typedef struct rf_store_stage {
    uint8_t *data;
    size_t len;
    uint64_t last_seq; /* highest block seq in it (0: none) */
    uint64_t blocks;
    uint64_t points; /* in those blocks: what a failed write loses */
} rf_store_stage;

enum rf_store_io_state {
    RF_IO_IDLE = 0,
    RF_IO_WRITING,
    RF_IO_SYNCING
};

/* The shard's open segment and write pipeline (io-owned). */
typedef struct rf_store_io {
    int fd; /* -1: no open segment */
    char path[PATH_MAX];
    uint64_t next_seq; /* of the next segment file */
    uint64_t seg_seq;
    int64_t seg_created_mono;             /* event_clock: its first block's cut_mono */
    int64_t last_cut_mono, last_cut_wall; /* event_clock: of the latest block placed (dates a
                                 * probe segment, which has no block of its own) */
    uint64_t seg_size;                    /* header + records placed (written or staged) */
    uint64_t disk_off;                    /* where the next write goes */
    rf_seg_index idx;
    rf_u64map dict; /* series with a dictionary record in this segment */
    /* The last whole dictionary record of this segment (0: none yet), which
     * later keys share their prefix with (docs/FORMAT.md, format 3): its
     * offset and a copy of its key (io-owned, grown on demand). */
    uint64_t dict_base_off;
    char *dict_base;
    uint32_t dict_base_len, dict_base_cap;
    rf_store_stage stage[2];
    size_t stage_cap;
    int active; /* stage being filled */
    enum rf_store_io_state state;
    int inflight; /* stage being written */
    size_t inflight_done;
    uint64_t sync_target; /* seq covered by the fsync in flight */
    bool rolling;         /* close the segment once everything staged is written */
    rf_store_slot *held;  /* dequeued, waiting for staging room */
    uint64_t written;     /* seq, io's copy */
    uint64_t durable;
    uint64_t bytes_since_sync;
    int64_t last_sync_mono;
    /* After a write error (io.c "Write errors"). */
    bool failing;         /* degraded: no successful write since the last error */
    bool dropping;        /* blocks are dropped until retry_at (then a retry) */
    bool torn;            /* fd's last write, fdatasync or footer failed: cut back to
                                 * disk_off and closed by the next retry, never written again */
    bool recover_pending; /* `path` was cut and closed but still needs its footer */
    int64_t retry_at;     /* mono */
    int64_t backoff_ns;   /* the wait before retry_at */
    int64_t last_error_mono;
    int64_t failing_since_mono;
    bool waiting_logged;  /* "still degraded: no room" said once per episode */
    uint64_t durable_cap; /* durable_seq never passes this (last block before the first
                                 * lost one; UINT64_MAX until a loss) */
    uint64_t episode_blocks, episode_points; /* dropped_io_error(_points) when the episode began */
} rf_store_io;

/* A head read lent to a shard's worker (heads.c). The reader fills every
 * field but the results before posting; the worker fills buf, len, cursor,
 * done and cut_seq while it holds it (H1 in heads.c). */
typedef struct rf_store_head_req {
    rf_store_head_want_fn want;
    void *ctx;
    uint8_t *buf;
    size_t cap, len;
    size_t cursor;     /* the next series_all index to look at */
    bool done;         /* every series looked at */
    uint64_t cut_seq;  /* the shard's last block seq when the chunk ended */
    uint32_t examined; /* series looked at in the last chunk */
} rf_store_head_req;

enum rf_store_head_state {
    RF_HEAD_IDLE = 0, /* the reader owns the request */
    RF_HEAD_POSTED,   /* waiting for the worker */
    RF_HEAD_TAKEN,    /* the worker is filling it */
    RF_HEAD_DONE,     /* filled: the reader's again */
};

/* Seqlock around a short text written by one thread (S7). All accesses are
 * atomic, so a reader racing the writer copies a mix, detects it by seq and
 * copies again. */
#define RF_STORE_ERRTEXT_WORDS 32
typedef struct rf_store_errtext {
    _Atomic uint32_t seq; /* odd while being written */
    _Atomic uint64_t w[RF_STORE_ERRTEXT_WORDS];
} rf_store_errtext;

struct rf_store_shard {
    /* ---- worker-owned ---- */
    rf_store *store;
    uint32_t index;
    rf_u64map series_map; /* series id -> rf_store_series * */
    rf_store_series **series_all;
    size_t n_series, cap_series;
    rf_block_codec *codec;
    int64_t *enc_ts; /* block_points each: the encoder's input columns */
    uint64_t *enc_bits;
    rf_block_text *enc_texts; /* a block of texts, block_points of them */
    rf_ring *submit;          /* worker -> io: rf_store_slot * */
    rf_ring *free_ring;       /* io -> worker: rf_store_slot * */
    rf_store_slot *slots;
    uint8_t *slot_mem;
    uint32_t n_slots;
    rf_store_slot *spare; /* a free slot the worker holds back (after an encode error) */
    rf_store_series *oldest, *newest;
    /* Full buffers waiting to be encoded, in the order they filled. Cuts are
     * deferred and paced (shard.c "Pacing the cuts") so that a burst of
     * series filling at once does not stall the worker for the time of all
     * their encodes. */
    rf_store_series *queue_head, *queue_tail;
    /* Series forgotten (rf_store_forget_series), oldest first: their keys
     * stay until the I/O thread has written every block cut before, the
     * slots of which point at them (written_seq >= retired_seq, S4). */
    rf_store_series *retired_head, *retired_tail;
    uint32_t queue_len;
    uint32_t hard_cap;        /* block_points + slack: a buffer never holds more */
    uint32_t appends_per_cut; /* pacing: one queued cut per this many appends */
    uint32_t appends_since_cut;
    /* The point-buffer budget (shard.c "The buffer budget"): bytes the
     * buffers hold beyond their first allocation, and the most they may. */
    uint64_t growth_bytes;
    uint64_t growth_budget; /* cfg.buffer_memory; 0 = none */
    uint32_t first_cap;     /* points a buffer gets at definition */
    int64_t now;
    int64_t now_wall; /* rf_store_tick_wall's wall time (event_clock) */
    uint64_t seq;     /* last block seq handed to io */

    _Atomic uint64_t series_count, points_appended, points_buffered, blocks_cut, blocks_cut_by_age,
        backpressure_events, dropped_backpressure, dropped_unknown_series, dropped_encode_error,
        out_of_order_cuts, submitted_seq, cuts_deferred, cut_queue_len, cut_queue_high,
        blocks_cut_by_memory, buffer_bytes;
    _Atomic uint64_t flush_req; /* S3 */

    /* ---- head reads (heads.c): H1 ---- */
    _Atomic uint32_t head_state;  /* enum rf_store_head_state */
    rf_store_head_req *head_req;  /* the reader's, lent while POSTED or TAKEN */
    _Atomic uint64_t head_chunks; /* chunks served (worker) */
    _Atomic uint64_t head_series; /* series copied (worker) */
    _Atomic uint64_t head_bytes;  /* bytes copied (worker) */

    /* ---- io-owned, read by others ---- */
    alignas(64) _Atomic uint64_t written_seq, durable_seq; /* S4 */
    _Atomic uint64_t blocks_written, bytes_written, fsyncs, write_errors, dropped_io_error;
    _Atomic bool io_failed; /* S4; set once a block was lost (or an fdatasync failed) and
                                 * never cleared: rf_store_wait_durable's -EIO */
    rf_store_io io;

    /* ---- io-owned, read by others: the write-error state (io.c) ---- */
    _Atomic uint64_t dropped_io_error_points, recoveries, werr_enospc, werr_edquot, werr_erofs,
        werr_eio, werr_other;
    _Atomic int64_t degraded_since_ns; /* wall; S6 */
    _Atomic int io_health;             /* enum rf_store_io_health; S6 */
    _Atomic int last_errno;            /* S8 */
    rf_store_errtext last_error;       /* S7 */
};

/* A closed segment as retention sees it (io-owned once the thread runs). */
typedef struct rf_store_seg {
    uint32_t shard;
    uint64_t seq;
    uint64_t bytes;
    int64_t max_time;
    char *path;
} rf_store_seg;

struct rf_store {
    char dir[PATH_MAX];
    int lock_fd; /* DIR/LOCK, flock'ed while open */
    rf_store_config cfg;
    uint32_t n_shards;
    rf_store_shard **shards;
    /* rf_store_set_head_wake; written before any head reader exists. */
    rf_store_wake_fn head_wake;
    void *head_wake_ctx;
    rf_store_recovery recovery; /* written at open, read-only afterwards */

    pthread_t io_thread;
    bool io_started;
    struct io_uring uring;
    _Atomic bool stop;

    /* closed segments (io-owned) */
    rf_store_seg *segs;
    size_t n_segs, cap_segs;
    uint64_t closed_bytes; /* sum of segs[].bytes */
    int64_t last_retention_mono;

    _Atomic uint64_t stat_segments, stat_bytes, stat_removed, stat_bytes_removed, stat_ret_runs;
    _Atomic uint64_t retention_req, retention_done; /* S5 */
    _Atomic int64_t retention_now;
};

/* shard.c */
int rf_store_shard_init(rf_store_shard *sh, rf_store *store, uint32_t index);
void rf_store_shard_destroy(rf_store_shard *sh);

/* io.c */
int rf_store_io_start(rf_store *store, rf_err *err);
void rf_store_io_stop(rf_store *store);

/* retention.c (io thread) */
int rf_store_seg_add(rf_store *store, uint32_t shard, uint64_t seq, uint64_t bytes,
                     int64_t max_time, const char *path);
void rf_store_retention_apply(rf_store *store, int64_t now_wall_ns);
uint64_t rf_store_open_bytes(const rf_store *store);
/* Refreshes stat_segments / stat_bytes (io thread). */
void rf_store_stats_publish(rf_store *store);

#endif
