/* The store: the engine-facing face of the time-series storage. One shard per
 * worker; each shard is an append-only stream of segment files
 * (storage/segment/segment.h, docs/FORMAT.md) under DIR/shard-NN/.
 *
 * Threads and ownership
 *
 *   worker k ──append──▶ shard k: per-series point buffers (worker-owned)
 *                           │ a full (block_points) or old (block_max_age) buffer
 *                           │ is encoded + CRC'd by the worker into a slot
 *                           ▼
 *                 submit ring (SPSC, slot pointers)  ──▶  I/O thread (one per store)
 *                 free ring   (SPSC, slot pointers)  ◀──   copies records into a staging
 *                                                          buffer, writes it with io_uring,
 *                                                          fsyncs per policy, rolls segments,
 *                                                          runs retention
 *
 *   - All rf_store_shard functions except rf_store_wait_durable and
 *     rf_store_shard_stats_read must be called from the one thread that owns
 *     the shard (its worker). None of them blocks or makes a syscall, and
 *     rf_store_append allocates only while a series is finding its size
 *     (its first point, and a buffer doubling on its way to block_points);
 *     at steady state it allocates nothing.
 *   - Slots are preallocated (queue_blocks per shard, each big enough for a
 *     full block). The submit ring holds as many pointers as there are slots,
 *     so it can never be full; the bound is the slot pool.
 *   - Back-pressure: when no slot is free (the I/O thread is behind), a
 *     series whose buffer is full keeps its points in memory (its buffer is
 *     the bound), the cut is retried on the next append/tick/flush, and each
 *     point that arrives for that full buffer meanwhile is dropped and counted
 *     (dropped_backpressure; backpressure_events counts the failed cuts).
 *     Nothing is dropped silently.
 *
 * Durability (what each policy promises; see docs/FORMAT.md "Durability")
 *   A block is *written* once the I/O thread's write of it completed (it is in
 *   the kernel page cache: survives a crash of the process, not of the
 *   machine), and *durable* once an fdatasync covering it completed (survives
 *   power loss, given honest disks). Points still in a worker's buffer, in a
 *   slot or in the staging buffer are in process memory only.
 *     RF_DURABILITY_INTERVAL  fdatasync at most sync_interval_ns after a write:
 *                             a machine crash loses at most the last interval
 *                             of written blocks (plus what was not yet written).
 *     RF_DURABILITY_BYTES     fdatasync whenever sync_bytes have been written
 *                             since the last one: loses at most that many bytes.
 *     RF_DURABILITY_NEVER     no fdatasync except on explicit rf_store_flush;
 *                             the kernel writes back when it likes (~30 s).
 *   In every policy rf_store_flush + rf_store_wait_durable is a barrier:
 *   everything appended before the flush is durable when the wait returns 0.
 *   Segment closes fdatasync the footer (except with NEVER).
 *
 * Write errors (ENOSPC, EDQUOT, EROFS, EIO, ...)
 *   A failed write, fdatasync, segment creation or footer turns the shard
 *   *degraded*: the error is logged and counted (write_errors, by errno), what
 *   was staged but not written is dropped and counted in blocks and points
 *   (dropped_io_error, dropped_io_error_points), and so is every block the
 *   worker hands in until a retry succeeds: the worker never waits and nothing
 *   accumulates. The I/O thread retries after io_retry_min_ns, doubling the
 *   wait after each failed retry up to io_retry_max_ns (errors less than
 *   2 x io_retry_max_ns apart keep the longer wait, so a disk that flaps does
 *   not make a storm of retries). A retry first closes the segment whose write
 *   failed: it is cut back to the end of the last complete record that write
 *   got to disk (blocks up to there count as written, the rest as lost: what
 *   is counted lost is never served) and given a footer the way recovery at
 *   open does (rf_seg_recover), then opens a new segment; the first successful
 *   write turns the shard ok again (recoveries counts it). A failed fdatasync
 *   is not retried on the same data: its segment is closed the same way, and
 *   the blocks it covered are not promised durable.
 */
#ifndef RF_STORAGE_STORE_H
#define RF_STORAGE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error/error.h"
#include "core/event/event.h"

typedef struct rf_store rf_store;
typedef struct rf_store_shard rf_store_shard;

enum rf_store_durability {
    RF_DURABILITY_INTERVAL = 0,
    RF_DURABILITY_BYTES = 1,
    RF_DURABILITY_NEVER = 2,
};

typedef struct rf_store_config {
    uint32_t block_points;      /* points per block (default 1024, max RF_BLOCK_MAX_POINTS) */
    int64_t block_max_age_ns;   /* a partial block is cut this long after its first point (5 min);
                                    * the trade: longer = bigger blocks (better compression),
                                    * but buffered points are lost if the process dies */
    uint64_t segment_max_bytes; /* roll after this size (64 MiB) */
    int64_t segment_max_age_ns; /* roll a segment this old (1 h) */
    enum rf_store_durability durability; /* default RF_DURABILITY_INTERVAL */
    int64_t sync_interval_ns;            /* INTERVAL: 1 s */
    uint64_t sync_bytes;                 /* BYTES: 8 MiB */
    uint32_t queue_blocks;               /* slots per shard between worker and I/O thread (256) */
    uint32_t staging_bytes;              /* I/O staging per shard, two of them (1 MiB) */
    struct rf_mem_scope *shard_scope;    /* placement, not configuration: each shard's worker's
                                    * core/mem allocation scope ([shards]; NULL: none), set by
                                    * the engine and used by rf_store_open only, so that a
                                    * shard's buffers and slots are on its worker's node */
    int zstd_level;                      /* passed to the block encoder (1; 0 = no zstd) */
    int64_t
        retention_max_age_ns; /* remove segments whose newest point is older (90 days; 0 = off) */
    uint64_t retention_max_bytes;  /* keep the store under this size (0 = no limit) */
    int64_t retention_interval_ns; /* how often the I/O thread applies retention (60 s) */
    uint32_t io_idle_wait_us;      /* I/O thread's wait when idle (1000) */
    int64_t tick_cut_budget_ns;    /* encode time rf_store_tick may spend per call on queued
                                    * and age cuts (500 us; 0 = no limit: every due cut at once) */
    int64_t io_retry_min_ns;       /* after a write error the first retry comes this long after
                                    * it (100 ms; 0 = default) ... */
    int64_t io_retry_max_ns;       /* ... and each failed retry doubles the wait, up to this (5 s;
                                    * 0 = default). See "Write errors" above. */
    uint64_t buffer_memory;        /* bytes per shard the series' point buffers may grow into
                                    * beyond their first 16 points (0 = no budget: each buffer is
                                    * bounded by block_points + block_points/4 only). A buffer
                                    * that would pass it is cut instead (a smaller block, counted
                                    * in blocks_cut_by_memory). See "Memory" below. */
    bool event_clock;              /* the store reads no clock of its own for anything that
                                    * reaches the disk: see "Event clock" below (replay) */
    int64_t time_unit_ns;          /* stored times are rounded down to a multiple of this:
                                    * 1 keeps every nanosecond; 1000000 stores milliseconds, as
                                    * Prometheus and VictoriaMetrics do. Values are never
                                    * changed. 0 (the default, "auto"): points whose time the
                                    * client sent (RF_EVF_HAS_CLIENT_TIME) are kept exact, points
                                    * stamped at receipt are kept to the millisecond (a receipt
                                    * time means nothing below that, and its jitter costs about a
                                    * byte a point). */
    uint32_t segment_version;      /* segment format written: 0 (the default) or 3, the newest;
                                    * 2 for files that builds from before format 3 can read
                                    * (docs/FORMAT.md). Every version is read either way. */
} rf_store_config;

void rf_store_config_default(rf_store_config *cfg);

/* What recovery found at open, summed over every segment. */
typedef struct rf_store_recovery {
    uint64_t segments_seen;
    uint64_t segments_open;        /* had no valid footer: scanned and closed */
    uint64_t segments_removed;     /* empty or torn before their header was complete */
    uint64_t segments_quarantined; /* unreadable header: renamed *.corrupt, never served */
    uint64_t blocks_kept;          /* in scanned segments */
    uint64_t tail_bytes_cut;
    uint64_t corrupt_regions; /* skipped in the middle of segments */
    uint64_t corrupt_bytes;
} rf_store_recovery;

/* Per-shard counters; each is written by one thread (worker or I/O thread). */
typedef struct rf_store_shard_stats {
    uint64_t series; /* series defined here: with the pipeline, those it was handed
                                    * a point of since the start (not every series it knows) */
    uint64_t points_appended;
    uint64_t points_buffered; /* in series buffers now */
    uint64_t blocks_cut;
    uint64_t blocks_cut_by_age;
    uint64_t backpressure_events;  /* a cut found no free slot */
    uint64_t dropped_backpressure; /* points dropped because their series' buffer was full */
    uint64_t dropped_unknown_series;
    uint64_t dropped_encode_error;
    uint64_t
        out_of_order_cuts;   /* blocks whose points arrived out of time order (sorted at the cut) */
    uint64_t blocks_written; /* by the I/O thread */
    uint64_t bytes_written;
    uint64_t fsyncs;
    uint64_t write_errors;
    uint64_t dropped_io_error;     /* blocks lost to write errors (their points:
                                    * rf_store_shard_io_status.dropped_io_error_points) */
    uint64_t submitted_seq;        /* flush tickets: last block handed to the I/O thread */
    uint64_t written_seq;          /* last block whose write completed */
    uint64_t durable_seq;          /* every block up to this one is covered by a completed
                                    * fdatasync; it never passes the last block before the first
                                    * one lost to a write error (a flush barrier over a lost block
                                    * can never be met) */
    uint64_t cuts_deferred;        /* full buffers queued for a paced cut (see rf_store_append) */
    uint64_t cut_queue;            /* full buffers waiting to be encoded now */
    uint64_t cut_queue_high;       /* the most that ever waited */
    uint64_t blocks_cut_by_memory; /* blocks cut early because growing their buffer would have
                                    * passed buffer_memory (also in blocks_cut) */
    uint64_t buffer_bytes;         /* point-buffer bytes the series hold now (capacity) */
} rf_store_shard_stats;

/* The I/O side of a shard after write errors (rf_store_shard_io_status_read). */
enum rf_store_io_health {
    RF_STORE_IO_OK = 0,
    RF_STORE_IO_DEGRADED = 1, /* a write error and no successful write since: blocks are dropped
                               * and counted while the I/O thread retries with backoff */
};

typedef struct rf_store_shard_io_status {
    enum rf_store_io_health state;
    int64_t degraded_since_ns; /* wall clock of the error that began the episode; 0 when ok */
    uint64_t recoveries;       /* degraded -> ok transitions since open */
    uint64_t dropped_io_error_points; /* points in the blocks counted in dropped_io_error */
    /* write_errors split by errno (failed operations, failed retries included) */
    uint64_t write_errors_enospc, write_errors_edquot, write_errors_erofs, write_errors_eio,
        write_errors_other;
    int last_errno;       /* of the latest error; 0 when none since open */
    char last_error[256]; /* "write file=PATH: No space left on device"; "" when none */
} rf_store_shard_io_status;

typedef struct rf_store_stats {
    uint64_t segments; /* files in the store, open ones included */
    uint64_t bytes;
    uint64_t segments_removed; /* by retention since open */
    uint64_t bytes_removed;
    uint64_t retention_runs;
    rf_store_recovery recovery;
} rf_store_stats;

/* Opens (creating) the store in `dir` with `shards` shards (1..1024), runs
 * recovery on every segment found (all shard-* folders, even beyond `shards`),
 * and starts the I/O thread. cfg NULL means defaults. Returns 0 or a negative
 * errno with *err saying which file and why (-EPROTONOSUPPORT: a segment was
 * written by a newer format version, nothing is modified then; -EBUSY: the
 * store is already open, DIR/LOCK is flock'ed by its owner). */
int rf_store_open(const char *dir, const rf_store_config *cfg, uint32_t shards, rf_store **out,
                  rf_err *err);

rf_store_shard *rf_store_shard_get(rf_store *store, uint32_t index);
uint32_t rf_store_shards(const rf_store *store);

/* Makes a series known to the shard (copies the key) and allocates its point
 * buffer: 16 points to start, doubled by rf_store_append whenever the series
 * fills it before an age cut, up to block_points (16 bytes per point).
 * Defining a known series again is a no-op. Returns 0, -EINVAL (key over
 * 65535 bytes) or -ENOMEM. A series the shard never gets a point of costs
 * it nothing: define it when its first point comes (rf_store_append_keyed),
 * not when the series is first seen. */
int rf_store_define_series(rf_store_shard *shard, const rf_series_key *key);

/* Appends one point (event_time_ns, value, value_type) to its series' buffer.
 * Returns 0; -ENOENT when the series was never defined; -ENOBUFS when the
 * point was dropped by back-pressure (both counted). Points of one series
 * should come in time order: an older point cuts the current block first. */
int rf_store_append(rf_store_shard *shard, const rf_event *ev);

/* Where rf_store_append_keyed finds the key of a series the shard does not
 * know yet: NULL when there is none (the point is then counted in
 * dropped_unknown_series). Called on the worker, only for a series' first
 * point; the key is copied. */
typedef const rf_series_key *(*rf_store_key_fn)(void *ctx, uint64_t series_id);

/* rf_store_append, defining the series first (from key_of) when this is the
 * first point the shard gets of it. Same returns, and -ENOMEM/-EINVAL when
 * the definition failed (counted in dropped_unknown_series). */
int rf_store_append_keyed(rf_store_shard *shard, const rf_event *ev, rf_store_key_fn key_of,
                          void *ctx);

/* rf_store_append_keyed over n points, the same as n calls one after
 * another, with the memory each needs fetched ahead (the fast way with many
 * series). Returns how many points were refused (each counted as its
 * single append would have). */
uint32_t rf_store_append_batch(rf_store_shard *shard, const rf_event *ev, uint32_t n,
                               rf_store_key_fn key_of, void *ctx);

/* Series lifecycle (stages/pipeline/pipeline.h): the series expired. Its
 * buffered points are cut into a block now, its buffer freed and it is
 * forgotten (its key is freed at a later tick, once the I/O thread wrote
 * every block that names it); a later point defines it again. Its blocks
 * stay in the segments. Returns 0 (also for a series the shard does not
 * hold), -EBUSY for a full buffer queued for its cut (kept), -ENOBUFS when
 * no slot is free for the cut (kept, its points too). */
int rf_store_forget_series(rf_store_shard *shard, uint64_t series_id);

/* Cuts blocks whose first point was buffered more than block_max_age_ns
 * before `now_mono_ns` (rf_clock_mono_ns), and retries cuts delayed by
 * back-pressure. Call every few hundred ms from the worker loop. */
void rf_store_tick(rf_store_shard *shard, int64_t now_mono_ns);

/* rf_store_tick, and the wall clock at now_mono_ns: an event-clock store
 * stamps the blocks cut until the next tick with it (the segment they open
 * is named and dated by it). Without event_clock the wall time is not used. */
void rf_store_tick_wall(rf_store_shard *shard, int64_t now_mono_ns, int64_t now_wall_ns);
/* The monotonic time at which rf_store_tick next has work, as of the last
 * tick and append: the oldest buffer's block_max_age; 0 while cuts are
 * queued or retired buffers wait (tick again soon); INT64_MAX for none. */
int64_t rf_store_next_due_ns(const rf_store_shard *shard);

/* ---- Event clock (cfg.event_clock) ------------------------------------------
 *
 * For replaying a recording (tools/replay, `ringflow replay --into`): the
 * segment files must come out byte for byte the same from the same input,
 * whatever the speed of the machine, the disk or the I/O thread. So in this
 * mode nothing that reaches the disk depends on a clock the store reads or on
 * thread timing:
 *   - buffer ages (block_max_age cuts) run on the times given to
 *     rf_store_tick / rf_store_tick_wall only (tick once before the first
 *     append: ages count from the latest tick);
 *   - rf_store_tick works off every due cut, whatever tick_cut_budget_ns says
 *     (a budget measured in real time would move blocks between ticks);
 *   - a cut that finds no free slot waits for one (sleeping on the worker's
 *     thread) instead of holding the points and counting back-pressure, so
 *     block boundaries never depend on how far the I/O thread is behind;
 *   - each block carries the tick times it was cut at. A segment's header
 *     time and file name are the wall time of its first block; it rolls by
 *     age when a block cut segment_max_age_ns (of tick time) after its first
 *     one arrives, or at close (never on the I/O thread's clock), and by size
 *     as always;
 *   - periodic retention is off (rf_store_retention_run still applies it on
 *     demand, as of the wall time given).
 * The I/O thread still writes, syncs and stages as it likes: which write a
 * record travels in does not change the file. */

/* Cuts every buffered series into blocks and asks the I/O thread to write and
 * fdatasync them now. *ticket (may be NULL) receives the sequence number to
 * pass to rf_store_wait_durable. Returns 0, or -EAGAIN when back-pressure
 * kept some series from being cut (they are not covered by the ticket; call
 * again later). */
int rf_store_flush(rf_store_shard *shard, uint64_t *ticket);

/* Waits (sleeping, any thread) until every block up to `ticket` is durable.
 * Returns 0, -ETIMEDOUT, or -EIO once a write error lost a block (or made an
 * fdatasync fail) since the store opened, unless every block up to `ticket`
 * was already durable: a barrier over a lost block is never met, however
 * well the shard writes after recovering. */
int rf_store_wait_durable(rf_store_shard *shard, uint64_t ticket, int64_t timeout_ns);

/* Applies retention now, as of wall time now_wall_ns, and waits for it to
 * finish (any thread but the I/O thread). Only closed segments are removed,
 * whole, oldest newest-point first. Returns 0 or -ETIMEDOUT. */
int rf_store_retention_run(rf_store *store, int64_t now_wall_ns, int64_t timeout_ns);

void rf_store_stats_read(rf_store *store, rf_store_stats *out);
void rf_store_shard_stats_read(const rf_store_shard *shard, rf_store_shard_stats *out);
/* The shard's write-error state and counters (any thread: relaxed loads, and a
 * copy of last_error retried while the I/O thread rewrites it). */
void rf_store_shard_io_status_read(const rf_store_shard *shard, rf_store_shard_io_status *out);
const char *rf_store_io_health_name(enum rf_store_io_health h); /* "ok", "degraded" */

/* Stops the store: cuts every buffer of every shard, writes and closes every
 * segment (footer, fdatasync unless NEVER), joins the I/O thread and frees
 * everything. Call after the workers have stopped. Logs a final line for
 * each shard that had write errors ("store shard-N final: ...
 * dropped_io_error_points=..."). Returns 0, or -EIO when a shard lost
 * blocks to write errors since open (first such shard in *err), or -EAGAIN
 * when points could not be cut. */
int rf_store_close(rf_store *store, rf_err *err);

/* ---- Reading the heads --------------------------------------------------------
 *
 * The points a series' buffer holds wait there until their block is cut
 * (block_points, or block_max_age: minutes). A reader that must see
 * everything accepted (the query API, storage/promapi) copies them with
 * rf_store_heads_read, on its own thread, while the workers run:
 *
 *   - Ownership stays with the worker. The reader lends each shard a request
 *     (a buffer of RF_STORE_HEAD_CHUNK bytes and a cursor) through the
 *     shard's mailbox; the worker serves it in rf_store_serve_heads, called
 *     once per poll: it looks at no more than RF_STORE_HEAD_SERIES_PER_POLL
 *     series and copies no more than the buffer holds (RF_STORE_HEAD_CHUNK,
 *     or one series' fullest buffer with the longest key when that is more),
 *     then hands it back.
 *     The reader drains it and lends it again until every series was looked
 *     at. So a heavy read costs each worker at most one bounded chunk per
 *     poll, never a stall; the read takes as many polls as it needs.
 *   - Which series are copied: those `want` says yes to, given the id and
 *     the number of points buffered (called on the worker: it must only read
 *     what the reader does not change until rf_store_heads_read returns).
 *     String series are never copied (their texts stay the worker's).
 *   - No gap with the segments: each chunk notes the shard's last block seq
 *     when it ended; before returning, rf_store_heads_read waits (until the
 *     deadline) for the I/O thread to have written every block up to the
 *     last one (written_seq). A point accepted before the read is then in
 *     the copy, or in a block the segments show; points cut after it was
 *     copied are in both, and the reader keeps one (same series and time:
 *     storage/index merges by millisecond, the head's value winning).
 *   - A shard whose worker does not answer by the deadline (stopped, or the
 *     deadline was short) is withdrawn and left out: rf_store_heads
 *     .incomplete says so. */
#define RF_STORE_HEAD_CHUNK (128u * 1024u) /* or one full buffer of the longest key */
#define RF_STORE_HEAD_SERIES_PER_POLL 2048u

typedef bool (*rf_store_head_want_fn)(void *ctx, uint64_t series_id, uint32_t n_points);

typedef struct rf_store_head_series {
    uint64_t series_id;
    const char *key; /* canonical key text (core/event/event.h), NUL-terminated */
    uint32_t key_len;
    uint16_t measurement_len, field_offset;
    uint8_t value_type;
    uint32_t n;        /* points, in time order (equal times: arrival order) */
    const int64_t *t;  /* event time, ns */
    const uint64_t *v; /* value bits (value_type) */
} rf_store_head_series;

typedef struct rf_store_heads {
    rf_store_head_series *series;
    size_t n;
    bool incomplete; /* a shard did not answer, or its blocks were not all
                         * written, by the deadline */
    uint64_t chunks; /* requests served over every shard */
    uint64_t bytes;  /* copied */
} rf_store_heads;

/* On the reader's thread (never a worker). max_points (0: no limit) bounds
 * the copy: a read that would hold more points stops, frees what it copied
 * and returns -E2BIG (the query API counts it against max_samples). Returns
 * 0 and *out (free with rf_store_heads_free), -E2BIG or -ENOMEM. */
int rf_store_heads_read(rf_store *store, rf_store_head_want_fn want, void *ctx,
                        int64_t deadline_mono_ns, uint64_t max_points, rf_store_heads **out);
void rf_store_heads_free(rf_store_heads *h);

/* On the shard's worker, once per poll: serves a posted head request (one
 * bounded chunk). Returns the series copied (0: nothing was posted). */
uint32_t rf_store_serve_heads(rf_store_shard *shard);

/* Who serves a shard's head requests may sleep for up to its idle bound (a
 * second): rf_store_heads_read calls wake(ctx, shard index) after posting a
 * request, so a query does not wait for that sleep to end. Set once, before
 * any reader runs (the daemon sets it when its workers have started and
 * before it lets the query API read the store); NULL wakes nobody. */
typedef void (*rf_store_wake_fn)(void *ctx, uint32_t shard_index);
void rf_store_set_head_wake(rf_store *store, rf_store_wake_fn wake, void *ctx);

/* ---- Memory ----------------------------------------------------------------
 *
 * The most memory one shard of a store with this configuration can hold
 * (worker side and its share of the I/O thread), for at most max_series
 * series whose canonical keys are at most max_key_bytes long. Every
 * allocation is counted at its capacity plus what the allocator may add
 * (rf_mem_alloc_bound: 1/8 + 16 bytes); arrays that double are counted at
 * the capacity they can reach with the old array alive during the copy.
 * Reserved-but-untouched memory (the codec's scratch beyond block_points) is
 * left out: it is never paged in. Checked against the process's resident
 * memory in tests/storage/test_store_memory.c.
 *
 *   fixed    queue_blocks slots of a full block, two staging buffers, the
 *            codec (zstd contexts included), the two slot rings
 *   series   per series: its state, a copy of its key, its first buffer
 *            (16 points), its entries in the series map, the list and the
 *            open segment's dictionary; per open segment, the block index
 *            (at most segment_max_bytes / 45 records) and its footer
 *   buffers  point-buffer growth: max_series x (block_points + block_points/4
 *            - 16) x 16 bytes, or buffer_memory when that is smaller
 *
 * Not counted: the list of closed segment files (about 300 bytes per file
 * on disk, read at open). */
typedef struct rf_store_memory {
    uint64_t fixed, series, buffers;
    uint64_t total; /* per shard */
} rf_store_memory;
void rf_store_memory_bound(const rf_store_config *cfg, uint32_t max_series, uint32_t max_key_bytes,
                           rf_store_memory *out);

#endif
