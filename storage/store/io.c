/* The store's I/O thread: drains every shard's submit ring into staging
 * buffers, writes them with io_uring (one write per staging buffer, all
 * shards' writes in one submit), fdatasyncs per the durability policy, rolls
 * segments by size and age, and applies retention.
 *
 * Per shard at most one operation (a write or an fdatasync) is in flight, so
 * a completed fdatasync covers every write that completed before it was
 * issued: durable_seq = written seq at issue time. While a write is in
 * flight the other staging buffer fills. Rare operations (creating a file,
 * writing a footer, closing) are plain syscalls: this thread may block, the
 * workers never wait for it.
 *
 * Write errors
 *   Any failed write, fdatasync, create or footer makes the shard degraded
 *   (shard_error): counted by errno, logged with the file, and `dropping`
 *   until retry_at, so every block staged or handed in meanwhile goes straight
 *   back to the free ring, counted in blocks and points (lose_blocks). The
 *   worker never waits and no memory grows: the slots keep cycling. The
 *   segment whose write failed is `torn`: it holds complete records up to
 *   disk_off (the end of the last complete record the failed write got to
 *   disk: those blocks count as written, keep_written_prefix) and maybe part
 *   of a record after it. A retry (try_resume) cuts it back to disk_off, so
 *   that nothing counted as lost can be served later, closes it and gives
 *   it a footer with rf_seg_recover (exactly what recovery at open would do,
 *   and idempotent if this fails half-way), then opens a fresh segment at
 *   once as a probe: its header write succeeding is the first successful
 *   write, which makes the shard ok again (recovered) even when no block is
 *   waiting. A failed retry doubles the wait up to io_retry_max_ns. A retry
 *   is not even tried while the filesystem is read-only or, after ENOSPC,
 *   has less room than a staging buffer (can_retry): a probe that fits but
 *   leaves no room for the data would only make the shard flap.
 *   In-memory index and dictionary of a torn segment are never used again:
 *   they describe records of the failed write too. */
#include "storage/store/store_pvt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

#define SLOT_ESIZE sizeof(rf_store_slot *)

/* ---- write errors: state, counters, published text ---------------------- */

static void errtext_write(rf_store_errtext *t, const char *text)
{
    uint64_t w[RF_STORE_ERRTEXT_WORDS] = {0};
    size_t n = strlen(text);
    if (n > sizeof(w) - 1)
        n = sizeof(w) - 1;
    memcpy(w, text, n);
    uint32_t seq = atomic_load_explicit(&t->seq, memory_order_relaxed); /* own value */
    atomic_store_explicit(&t->seq, seq + 1, memory_order_relaxed); /* odd: readers retry (S7) */
    /* S7: orders the odd seq before the words; pairs with the reader's
     * acquire fence before it re-reads seq. */
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < RF_STORE_ERRTEXT_WORDS; i++)
        atomic_store_explicit(&t->w[i], w[i], memory_order_relaxed);
    /* S7: pairs with the reader's acquire-load of seq: the words are complete. */
    atomic_store_explicit(&t->seq, seq + 2, memory_order_release);
}

static void errtext_read(const rf_store_errtext *t, char *out, size_t cap)
{
    uint64_t w[RF_STORE_ERRTEXT_WORDS];
    for (int tries = 0;; tries++) {
        /* S7: pairs with the writer's final release-store. */
        uint32_t s1 = atomic_load_explicit(&t->seq, memory_order_acquire);
        for (int i = 0; i < RF_STORE_ERRTEXT_WORDS; i++)
            w[i] = atomic_load_explicit(&t->w[i], memory_order_relaxed);
        /* S7: pairs with the writer's release fence: a word of a newer write
         * implies the seq below is no longer s1. */
        atomic_thread_fence(memory_order_acquire);
        uint32_t s2 = atomic_load_explicit(&t->seq, memory_order_relaxed);
        if ((s1 == s2 && !(s1 & 1)) || tries == 1000) {
            if (s1 != s2 || (s1 & 1))
                w[0] = 0; /* never settled (cannot happen at this write rate): say nothing */
            break;
        }
    }
    w[RF_STORE_ERRTEXT_WORDS - 1] &= ~(0xffull << 56); /* NUL-terminated whatever was copied */
    snprintf(out, cap, "%s", (const char *)w);
}

static void publish_durable(rf_store_shard *sh)
{
    const rf_store_io *io = &sh->io;
    uint64_t d = io->durable < io->durable_cap ? io->durable : io->durable_cap;
    atomic_store_explicit(&sh->durable_seq, d, memory_order_release); /* S4 */
}

/* From now on no flush barrier beyond `cap` can be met (S4: durable_seq
 * stops there, io_failed makes rf_store_wait_durable return -EIO). */
static void barrier_broken(rf_store_shard *sh, uint64_t cap)
{
    if (atomic_load_explicit(&sh->io_failed, memory_order_relaxed)) /* own value */
        return;
    sh->io.durable_cap = cap;
    publish_durable(sh);
    atomic_store_explicit(&sh->io_failed, true, memory_order_release); /* S4 */
}

/* Blocks that will never be written. Every block up to io->written was
 * written before them (one stream per shard, in seq order). */
static void lose_blocks(rf_store_shard *sh, uint64_t blocks, uint64_t points)
{
    if (!blocks)
        return;
    rf_stats_add(&sh->dropped_io_error, blocks);
    rf_stats_add(&sh->dropped_io_error_points, points);
    barrier_broken(sh, sh->io.written);
}

static void lose_stage(rf_store_shard *sh, rf_store_stage *s)
{
    lose_blocks(sh, s->blocks, s->points);
    s->len = 0;
    s->blocks = 0;
    s->points = 0;
    s->last_seq = 0;
}

static bool want_sync(const rf_store *st, rf_store_shard *sh)
{
    return st->cfg.durability != RF_DURABILITY_NEVER ||
           atomic_load_explicit(&sh->flush_req, memory_order_acquire) > sh->io.durable; /* S3 */
}

static void synced(rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    io->durable = io->written;
    io->bytes_since_sync = 0;
    io->last_sync_mono = rf_clock_mono_ns();
    rf_stats_add(&sh->fsyncs, 1);
    publish_durable(sh);
}

/* Errors close together (a retry that failed, or a disk that flaps) keep
 * doubling the wait; a first error after a quiet spell starts again. */
static void schedule_retry(rf_store *st, rf_store_shard *sh, int64_t now)
{
    rf_store_io *io = &sh->io;
    const rf_store_config *cfg = &st->cfg;
    if (io->backoff_ns && now - io->last_error_mono <= 2 * cfg->io_retry_max_ns) {
        io->backoff_ns *= 2;
        if (io->backoff_ns > cfg->io_retry_max_ns)
            io->backoff_ns = cfg->io_retry_max_ns;
    } else {
        io->backoff_ns = cfg->io_retry_min_ns;
    }
    io->last_error_mono = now;
    io->retry_at = now + io->backoff_ns;
}

/* A write, fdatasync, create, truncate or footer failed: count it by errno,
 * say so, and drop blocks until the next retry. */
static void shard_error(rf_store *st, rf_store_shard *sh, const char *what, const char *path,
                        int err)
{
    rf_store_io *io = &sh->io;
    int64_t now = rf_clock_mono_ns();
    rf_stats_add(&sh->write_errors, 1);
    rf_stats_add(err == ENOSPC   ? &sh->werr_enospc
                 : err == EDQUOT ? &sh->werr_edquot
                 : err == EROFS  ? &sh->werr_erofs
                 : err == EIO    ? &sh->werr_eio
                                 : &sh->werr_other,
                 1);
    char text[RF_STORE_ERRTEXT_WORDS * 8];
    snprintf(text, sizeof(text), "%s file=%s: %s", what, path, strerror(err));
    errtext_write(&sh->last_error, text);
    /* S8: after the text, so that a reader that sees this errno reads this
     * text or a newer one (pairs with the acquire in the status read). */
    atomic_store_explicit(&sh->last_errno, err, memory_order_release);
    schedule_retry(st, sh, now);
    io->dropping = true;
    if (!io->failing) {
        io->waiting_logged = false;
        io->failing = true;
        io->failing_since_mono = now;
        /* own counters: relaxed reads this thread's last stores */
        io->episode_blocks = atomic_load_explicit(&sh->dropped_io_error, memory_order_relaxed);
        io->episode_points =
            atomic_load_explicit(&sh->dropped_io_error_points, memory_order_relaxed);
        /* published by the S6 release-store just below */
        atomic_store_explicit(&sh->degraded_since_ns, rf_clock_wall_ns(), memory_order_relaxed);
        /* S6: after degraded_since_ns. */
        atomic_store_explicit(&sh->io_health, RF_STORE_IO_DEGRADED, memory_order_release);
        rf_log_error(RF_STORE_COMPONENT,
                     "shard=%" PRIu32 " %s file=%s: %s; shard degraded: blocks are dropped and "
                     "counted until a write succeeds, retrying in %" PRId64 " ms",
                     sh->index, what, path, strerror(err),
                     (int64_t)(io->backoff_ns / RF_NS_PER_MS));
    } else {
        rf_log_warn(RF_STORE_COMPONENT,
                    "shard=%" PRIu32 " retry failed: %s file=%s: %s; still degraded, next retry "
                    "in %" PRId64 " ms",
                    sh->index, what, path, strerror(err), (int64_t)(io->backoff_ns / RF_NS_PER_MS));
    }
}

/* The first write that completed after an error. */
static void recovered(rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    io->failing = false;
    rf_stats_add(&sh->recoveries, 1);
    atomic_store_explicit(&sh->degraded_since_ns, 0, memory_order_relaxed); /* S6 publishes it */
    /* S6 */
    atomic_store_explicit(&sh->io_health, RF_STORE_IO_OK, memory_order_release);
    /* own counters: relaxed reads this thread's last stores */
    uint64_t blocks = atomic_load_explicit(&sh->dropped_io_error, memory_order_relaxed);
    uint64_t points = atomic_load_explicit(&sh->dropped_io_error_points, memory_order_relaxed);
    rf_log_warn(RF_STORE_COMPONENT,
                "shard=%" PRIu32 " resumed persisting file=%s after %.1f s degraded; lost "
                "meanwhile: %" PRIu64 " blocks, %" PRIu64 " points",
                sh->index, io->path, (double)(rf_clock_mono_ns() - io->failing_since_mono) / 1e9,
                blocks - io->episode_blocks, points - io->episode_points);
}

/* The segment format this store writes (rf_store_config.segment_version). */
static uint32_t seg_version(const rf_store *st)
{
    return st->cfg.segment_version ? st->cfg.segment_version : RF_SEG_VERSION;
}

/* Forgets the open segment's in-memory state (its fd is closed or lost). */
static void seg_forget(rf_store_io *io)
{
    io->fd = -1;
    io->rolling = false;
    io->seg_size = 0;
    io->disk_off = 0;
    rf_seg_index_reset(&io->idx);
    rf_u64map_clear(&io->dict);
    io->dict_base_off = 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Opens segment next_seq for `first` (NULL: the probe of a retry, which has
 * no block). Its header time and name are the wall clock now, or with
 * event_clock the tick time its first block was cut at (store.h "Event
 * clock"): the same input then names and dates every segment the same. */
static int seg_open(rf_store *st, rf_store_shard *sh, const rf_store_slot *first)
{
    rf_store_io *io = &sh->io;
    const bool event_clock = st->cfg.event_clock;
    int64_t wall = event_clock ? (first ? first->cut_wall : io->last_cut_wall) : rf_clock_wall_ns();
    char name[64], dir[PATH_MAX];
    rf_seg_name(name, sizeof(name), io->next_seq, wall);
    if (snprintf(dir, sizeof(dir), "%s/shard-%02" PRIu32, st->dir, sh->index) >= (int)sizeof(dir) ||
        snprintf(io->path, sizeof(io->path), "%s/%s", dir, name) >= (int)sizeof(io->path)) {
        shard_error(st, sh, "segment path", dir, ENAMETOOLONG);
        return -ENAMETOOLONG;
    }
    io->fd = open(io->path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (io->fd < 0) {
        int e = errno;
        shard_error(st, sh, "create segment", io->path, e);
        return -e;
    }
    /* The new name must survive a machine crash along with its data. */
    if (st->cfg.durability != RF_DURABILITY_NEVER)
        (void)fsync_dir(dir);
    rf_seg_header h = {
        .version = seg_version(st), .shard = sh->index, .seq = io->next_seq, .created_ns = wall};
    rf_store_stage *s = &io->stage[io->active];
    rf_seg_header_encode(
        &h, s->data + s->len); /* the stage is empty: staged data never outlives its segment */
    s->len += RF_SEG_HEADER_SIZE;
    io->seg_seq = io->next_seq++;
    io->seg_size = RF_SEG_HEADER_SIZE;
    io->disk_off = 0;
    io->seg_created_mono =
        event_clock ? (first ? first->cut_mono : io->last_cut_mono) : rf_clock_mono_ns();
    rf_seg_index_reset(&io->idx);
    rf_u64map_clear(&io->dict);
    io->dict_base_off = 0;
    return 0;
}

/* Appends footer and trailer, syncs and closes. Called only with nothing
 * staged and nothing in flight for this shard, never on a torn segment. On
 * failure the segment becomes torn (the footer may be half written after
 * disk_off) and the next retry closes it. */
static void seg_close(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    if (io->fd < 0)
        return;
    if (io->idx.n_blocks == 0) {
        /* Only a header: the probe after a write error that no block
         * followed. Nothing to keep, and its seq can be used again. */
        close(io->fd);
        if (unlink(io->path) == 0 && io->seg_seq + 1 == io->next_seq)
            io->next_seq--;
        seg_forget(io);
        return;
    }
    size_t flen;
    uint8_t *footer = rf_seg_footer_build(&io->idx, io->disk_off, seg_version(st), &flen);
    int rc = footer ? rf_segment_pwrite_all(io->fd, footer, flen, io->disk_off) : -ENOMEM;
    free(footer);
    if (rc < 0) {
        io->torn = true;
        shard_error(st, sh, "writing footer", io->path, -rc);
        return;
    }
    if (want_sync(st, sh)) {
        if (fdatasync(io->fd) < 0) {
            int e = errno;
            /* Not retried on the same pages (see complete()); what was
             * written since the last good sync is not promised durable. */
            io->torn = true;
            shard_error(st, sh, "fdatasync at close", io->path, e); /* first: S8 */
            barrier_broken(sh, io->durable);
            return;
        }
        synced(sh);
    }
    io->disk_off += flen;
    rf_store_seg_add(st, sh->index, io->seg_seq, io->disk_off, io->idx.max_time, io->path);
    close(io->fd);
    seg_forget(io);
}

/* Closing the torn segment the way recovery at open would, in two steps
 * (a retry checks for room in between: cutting frees space, the footer
 * needs some). Each returns 0, or -errno with *what naming the step; the
 * segment then stays torn or recover_pending and the next call resumes. */

/* Cuts it back to disk_off, the end of the last complete record on disk
 * (what follows belongs to blocks counted as lost), and closes it. */
static int cut_torn(rf_store_shard *sh, const char **what)
{
    rf_store_io *io = &sh->io;
    if (io->fd < 0 || !io->torn)
        return 0;
    if (io->disk_off == 0) {
        /* Not even the header got written: nothing to keep. */
        close(io->fd);
        io->torn = false;
        seg_forget(io);
        if (unlink(io->path) < 0 && errno != ENOENT) {
            *what = "removing torn segment";
            io->recover_pending = true; /* rf_seg_recover removes it, now or at open */
            return -errno;
        }
        if (io->seg_seq + 1 == io->next_seq)
            io->next_seq--;
        return 0;
    }
    if (ftruncate(io->fd, (off_t)io->disk_off) < 0) {
        *what = "cutting torn segment";
        return -errno;
    }
    close(io->fd);
    io->torn = false;
    io->recover_pending = true;
    seg_forget(io);
    return 0;
}

/* rf_seg_recover gives the cut segment a footer (and fsyncs it), or removes
 * it when it holds no record; then retention knows it. */
static int finish_torn(rf_store *st, rf_store_shard *sh, const char **what)
{
    rf_store_io *io = &sh->io;
    if (!io->recover_pending)
        return 0;
    rf_seg_recovery rep;
    rf_err e;
    bool sync = want_sync(st, sh);
    int rc = rf_seg_recover(io->path, sync, &rep, &e);
    if (rc < 0) {
        *what = "closing torn segment";
        return rc;
    }
    io->recover_pending = false;
    if (sync)
        synced(sh);
    if (!rep.removed && !rep.quarantined) {
        rf_seg_reader r;
        if (rf_seg_reader_open(io->path, 0, &r, &e) == 0) {
            rf_store_seg_add(st, sh->index, r.hdr.seq, r.size, r.idx.max_time, io->path);
            rf_seg_reader_close(&r);
        } else {
            rf_log_error(RF_STORE_COMPONENT, "shard=%" PRIu32 " %s", sh->index, e.msg);
        }
    }
    return 0;
}

/* Whether a retry can work, from the shard directory's filesystem: not
 * while it is mounted read-only, nor after ENOSPC while it has less room than
 * one staging buffer (a retry that can write a header but not the next
 * buffer would only turn the shard ok for a moment and fail again). EDQUOT,
 * EIO and the rest are simply retried. False with *why filled. */
static bool can_retry(rf_store *st, rf_store_shard *sh, char *why, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s/shard-%02" PRIu32, PATH_MAX - 16, st->dir, sh->index);
    struct statvfs v;
    if (statvfs(dir, &v) < 0)
        return true; /* cannot tell: try */
    if (v.f_flag & ST_RDONLY) {
        snprintf(why, cap, "%s is on a read-only filesystem", dir);
        return false;
    }
    if (atomic_load_explicit(&sh->last_errno, memory_order_relaxed) == ENOSPC) { /* own value */
        /* root may use the blocks reserved for it */
        uint64_t room = (uint64_t)(geteuid() == 0 ? v.f_bfree : v.f_bavail) * v.f_frsize;
        if (room < sh->io.stage_cap) {
            snprintf(why, cap, "%s has %" PRIu64 " bytes free, a write may need %zu", dir, room,
                     sh->io.stage_cap);
            return false;
        }
    }
    return true;
}

/* When the wait after an error is over: close the torn segment, stop
 * dropping and open a new segment right away, so that the first successful
 * write (its header) tells the shard is ok again. */
static bool try_resume(rf_store *st, rf_store_shard *sh, int64_t now)
{
    rf_store_io *io = &sh->io;
    if (!io->dropping || now < io->retry_at || io->state != RF_IO_IDLE)
        return false;
    char why[PATH_MAX + 96];
    const char *what = "";
    int rc = 0;
    if (!can_retry(st, sh, why, sizeof(why)) ||
        ((rc = cut_torn(sh, &what)) == 0 && !can_retry(st, sh, why, sizeof(why)))) {
        /* Not an error of its own (nothing was tried): wait longer. */
        schedule_retry(st, sh, now);
        if (!io->waiting_logged)
            rf_log_warn(RF_STORE_COMPONENT,
                        "shard=%" PRIu32 " still degraded: %s; checking again in %" PRId64 " ms",
                        sh->index, why, (int64_t)(io->backoff_ns / RF_NS_PER_MS));
        io->waiting_logged = true;
        return true;
    }
    if (rc == 0)
        rc = finish_torn(st, sh, &what);
    if (rc < 0) {
        shard_error(st, sh, what, io->path, -rc);
        return true;
    }
    io->dropping = false;
    if (io->fd < 0)
        (void)seg_open(st, sh, NULL); /* a failure is a failed retry: shard_error did the rest */
    return true;
}

static void submit_write(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    rf_store_stage *s = &io->stage[io->inflight];
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->uring);
    if (!sqe) {
        io_uring_submit(&st->uring);
        sqe = io_uring_get_sqe(&st->uring); /* depth >= 2 * shards: cannot fail twice */
    }
    io_uring_prep_write(sqe, io->fd, s->data + io->inflight_done,
                        (unsigned)(s->len - io->inflight_done), io->disk_off + io->inflight_done);
    io_uring_sqe_set_data(sqe, sh);
    io->state = RF_IO_WRITING;
}

static void submit_sync(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->uring);
    if (!sqe) {
        io_uring_submit(&st->uring);
        sqe = io_uring_get_sqe(&st->uring);
    }
    io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data(sqe, sh);
    io->sync_target = io->written;
    io->state = RF_IO_SYNCING;
}

static void start_stage_write(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    io->inflight = io->active;
    io->inflight_done = 0;
    io->active ^= 1;
    submit_write(st, sh);
}

/* How much of key k the segment's last whole dictionary record shares with
 * it: 0 (write k whole) unless that saves most of it. Keys of one row differ
 * only in the field name; keys of different rows usually early on. */
static uint32_t dict_shared(const rf_store_io *io, const rf_series_key *k)
{
    if (!io->dict_base_off)
        return 0;
    uint32_t n = k->len < io->dict_base_len ? k->len : io->dict_base_len;
    uint32_t i = 0;
    while (i < n && k->text[i] == io->dict_base[i])
        i++;
    return i >= 16 && i * 2 >= k->len ? i : 0;
}

/* Makes the whole record just placed at `off` the one later keys share with. */
static void dict_base_set(rf_store_io *io, const rf_series_key *k, uint64_t off)
{
    if (k->len > io->dict_base_cap) {
        char *p = realloc(io->dict_base, k->len);
        if (!p) {
            io->dict_base_off = 0; /* keys are written whole meanwhile */
            return;
        }
        io->dict_base = p;
        io->dict_base_cap = k->len;
    }
    memcpy(io->dict_base, k->text, k->len);
    io->dict_base_len = k->len;
    io->dict_base_off = off;
}

/* Copies one block record (and its series' dictionary record when this
 * segment has none yet) into staging. False when it must wait. */
static bool place(rf_store *st, rf_store_shard *sh, const rf_store_slot *slot)
{
    rf_store_io *io = &sh->io;
    if (io->dropping) {
        lose_blocks(sh, 1, slot->n_points);
        return true;
    }
    if (io->rolling)
        return false;
    uint64_t dv;
    bool have_dict = io->fd >= 0 && rf_u64map_get(&io->dict, slot->series_id, &dv);
    uint32_t shared =
        have_dict || io->fd < 0 || seg_version(st) < 3 ? 0 : dict_shared(io, slot->key);
    uint64_t back = shared ? io->seg_size - io->dict_base_off : 0;
    size_t dlen = have_dict ? 0 : rf_seg_series_rec_size(slot->key->len, back, shared);
    size_t need = dlen + slot->len;
    /* The size limit is on the closed file: records, the footer they will
     * need (40 bytes per series and per block) and the trailer. */
    size_t footer = rf_seg_rec_size((uint32_t)((io->idx.n_series + io->idx.n_blocks + 2) * 40u)) +
                    RF_SEG_TRAILER_SIZE;
    if (io->fd >= 0 && io->idx.n_blocks > 0 &&
        (io->seg_size + need + footer > st->cfg.segment_max_bytes ||
         /* event clock: the age roll is decided here, by the blocks' own
          * times, never by when this thread gets to look (kick) */
         (st->cfg.event_clock &&
          slot->cut_mono - io->seg_created_mono >= st->cfg.segment_max_age_ns))) {
        io->rolling = true;
        return false;
    }
    if (io->fd < 0) {
        if (io->stage[io->active].len || io->state != RF_IO_IDLE)
            return false; /* the previous segment's data is still on its way */
        if (seg_open(st, sh, slot) < 0) {
            lose_blocks(sh, 1, slot->n_points);
            return true;
        }
    }
    rf_store_stage *s = &io->stage[io->active];
    if (s->len + need > io->stage_cap) {
        if (io->state != RF_IO_IDLE)
            return false;
        start_stage_write(st, sh);
        s = &io->stage[io->active];
    }
    if (!have_dict) {
        const rf_series_key *k = slot->key;
        rf_seg_series_rec_build(s->data + s->len, slot->series_id, k->text, k->len,
                                k->measurement_len, k->field_offset, back, shared);
        if (!shared)
            dict_base_set(io, k, io->seg_size);
        if (rf_seg_index_add_series(&io->idx, slot->series_id, io->seg_size) < 0 ||
            rf_u64map_put(&io->dict, slot->series_id, io->seg_size) < 0)
            rf_log_error(RF_STORE_COMPONENT, "shard=%" PRIu32 " out of memory indexing %s",
                         sh->index, io->path); /* the footer will lack it; a scan still finds it */
        s->len += dlen;
        io->seg_size += dlen;
    }
    memcpy(s->data + s->len, slot->rec, slot->len);
    rf_seg_block_ref b = {
        .series_id = slot->series_id,
        .offset = io->seg_size,
        .rec_len = slot->len,
        .n_points = slot->n_points,
        .min_time = slot->min_time,
        .max_time = slot->max_time,
    };
    if (rf_seg_index_add_block(&io->idx, &b) < 0)
        rf_log_error(RF_STORE_COMPONENT, "shard=%" PRIu32 " out of memory indexing %s", sh->index,
                     io->path);
    s->len += slot->len;
    io->last_cut_mono = slot->cut_mono;
    io->last_cut_wall = slot->cut_wall;
    s->last_seq = slot->seq;
    s->blocks++;
    s->points += slot->n_points;
    io->seg_size += slot->len;
    return true;
}

static bool drain(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    bool progress = false;
    for (;;) {
        rf_store_slot *slot = io->held;
        if (!slot && !rf_ring_dequeue(sh->submit, &slot, SLOT_ESIZE)) /* S1 */
            break;
        io->held = NULL;
        if (!place(st, sh, slot)) {
            io->held = slot;
            break;
        }
        rf_ring_enqueue(sh->free_ring, &slot, SLOT_ESIZE); /* S2; never full: one entry per slot */
        progress = true;
    }
    return progress;
}

/* Starts the shard's next operation when none is in flight. */
static bool kick(rf_store *st, rf_store_shard *sh, int64_t now)
{
    rf_store_io *io = &sh->io;
    if (io->state != RF_IO_IDLE)
        return false;
    if (io->dropping)
        return try_resume(st, sh, now);
    if (io->fd < 0)
        return false;
    const rf_store_config *cfg = &st->cfg;
    rf_store_stage *s = &io->stage[io->active];
    if (io->written > io->durable) {
        uint64_t flush_req = atomic_load_explicit(&sh->flush_req, memory_order_acquire); /* S3 */
        bool due =
            (flush_req > io->durable && (io->written >= flush_req || s->len == 0)) ||
            (cfg->durability == RF_DURABILITY_INTERVAL &&
             now - io->last_sync_mono >= cfg->sync_interval_ns) ||
            (cfg->durability == RF_DURABILITY_BYTES && io->bytes_since_sync >= cfg->sync_bytes);
        if (due) {
            submit_sync(st, sh);
            return true;
        }
    }
    if (s->len) {
        start_stage_write(st, sh);
        return true;
    }
    if (io->rolling || (!cfg->event_clock && io->idx.n_blocks > 0 &&
                        now - io->seg_created_mono >= cfg->segment_max_age_ns)) {
        seg_close(st, sh);
        return true;
    }
    return false;
}

/* A stage write failed after inflight_done bytes: the records complete in
 * that prefix are on disk (a short write then ENOSPC or EFBIG is the usual
 * way a disk fills), so they count as written and disk_off moves past them;
 * the cut at the next retry keeps them. Only the rest of the stage is lost. */
static void keep_written_prefix(rf_store_shard *sh, rf_store_stage *s)
{
    rf_store_io *io = &sh->io;
    size_t done = io->inflight_done, off = 0;
    if (io->disk_off == 0) {
        /* The stage begins the segment with its file header. */
        if (done < RF_SEG_HEADER_SIZE)
            return;
        off = RF_SEG_HEADER_SIZE;
    }
    size_t keep = off;
    uint64_t blocks = 0, points = 0;
    while (off < done) {
        rf_seg_rec h;
        long n = rf_seg_rec_check(s->data + off, done - off, &h);
        if (n <= 0)
            break; /* -EAGAIN: the record the write was cut in */
        off += (size_t)n;
        keep = off;
        if (h.type == RF_SEG_REC_BLOCK) {
            blocks++;
            points += h.count;
        }
    }
    io->disk_off += keep;
    io->bytes_since_sync += keep;
    rf_stats_add(&sh->bytes_written, keep);
    if (!blocks)
        return;
    /* The stage's blocks have consecutive seqs (nothing is staged while
     * blocks are being dropped), in the order of their records. */
    rf_stats_add(&sh->blocks_written, blocks);
    io->written = s->last_seq - s->blocks + blocks;
    atomic_store_explicit(&sh->written_seq, io->written, memory_order_release); /* S4 */
    s->blocks -= blocks;
    s->points -= points;
}

static void complete(rf_store *st, rf_store_shard *sh, int res)
{
    rf_store_io *io = &sh->io;
    if (io->state == RF_IO_WRITING) {
        rf_store_stage *s = &io->stage[io->inflight];
        if (res == -EINTR || res == -EAGAIN) {
            submit_write(st, sh);
            return;
        }
        if (res <= 0) {
            keep_written_prefix(sh, s);
            /* The error first: a reader that sees the loss or the broken
             * barrier below also sees its cause (S8). */
            shard_error(st, sh, "write", io->path, res ? -res : EIO);
            /* What earlier writes put in the page cache is complete: make it
             * durable before the loss breaks every later flush barrier
             * (tickets before the loss can still be met). */
            if (io->written > io->durable && want_sync(st, sh)) {
                if (fdatasync(io->fd) == 0)
                    synced(sh);
                else
                    barrier_broken(sh, io->durable);
            }
            io->torn = true;
            io->seg_size = io->disk_off;
            io->state = RF_IO_IDLE;
            /* The failed stage and the one filling behind it (its records
             * were placed for offsets after the failed ones). */
            lose_stage(sh, s);
            lose_stage(sh, &io->stage[io->active]);
            return;
        } else {
            io->inflight_done += (size_t)res;
            if (io->inflight_done < s->len) {
                submit_write(st, sh); /* short write: the rest */
                return;
            }
            io->disk_off += s->len;
            io->bytes_since_sync += s->len;
            rf_stats_add(&sh->bytes_written, s->len);
            rf_stats_add(&sh->blocks_written, s->blocks);
            if (s->last_seq > io->written) {
                io->written = s->last_seq;
                atomic_store_explicit(&sh->written_seq, io->written, memory_order_release); /* S4 */
            }
            if (io->failing)
                recovered(sh);
        }
        s->len = 0;
        s->blocks = 0;
        s->points = 0;
        s->last_seq = 0;
    } else if (io->state == RF_IO_SYNCING) {
        if (res < 0) {
            /* After a failed fsync the page cache may have dropped the data:
             * retrying could report success for lost writes. The blocks it
             * covered are not promised durable; the segment is closed by
             * the next retry through rf_seg_recover, which re-reads it and
             * keeps only records whose CRC holds. */
            io->state = RF_IO_IDLE;
            shard_error(st, sh, "fdatasync", io->path, -res); /* first: S8 */
            barrier_broken(sh, io->durable);
            io->torn = true;
            lose_stage(sh, &io->stage[io->active]);
            return;
        } else {
            io->durable = io->sync_target;
            io->bytes_since_sync = 0;
            io->last_sync_mono = rf_clock_mono_ns();
            rf_stats_add(&sh->fsyncs, 1);
            publish_durable(sh);
        }
    }
    io->state = RF_IO_IDLE;
}

static bool shard_quiet(rf_store_shard *sh)
{
    const rf_store_io *io = &sh->io;
    return io->state == RF_IO_IDLE && !io->held && rf_ring_count(sh->submit) == 0 &&
           io->stage[io->active].len == 0;
}

/* The longest idle sleep of the I/O thread: what a write that arrives
 * after a quiet spell may wait before this thread looks (a block's flush is
 * not on the critical path; the durability interval is seconds). */
#define IO_IDLE_WAIT_MAX_US 16000

static void *io_main(void *arg)
{
    rf_store *st = arg;
    uint64_t ret_done = 0;
    /* first periodic run right away: the store may have been down for days */
    st->last_retention_mono = rf_clock_mono_ns() - st->cfg.retention_interval_ns;
    /* The idle sleep doubles while nothing happens, from io_idle_wait_us up
     * to IO_IDLE_WAIT_MAX_US: at a 1 ms period this thread alone kept an
     * idle daemon at 2-3 % of a core. Any progress or I/O in flight brings
     * it back to io_idle_wait_us. */
    uint32_t idle_wait_us = st->cfg.io_idle_wait_us;
    for (;;) {
        int64_t now = rf_clock_mono_ns();
        bool stop = atomic_load_explicit(&st->stop, memory_order_acquire);
        bool progress = false, inflight = false;
        for (uint32_t i = 0; i < st->n_shards; i++) {
            rf_store_shard *sh = st->shards[i];
            progress |= drain(st, sh);
            progress |= kick(st, sh, now);
        }
        if (io_uring_sq_ready(&st->uring))
            io_uring_submit(&st->uring);
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&st->uring, head, cqe)
        {
            if (cqe->user_data != LIBURING_UDATA_TIMEOUT) /* old kernels: liburing's own timeouts */
                complete(st, io_uring_cqe_get_data(cqe), cqe->res);
            n++;
        }
        io_uring_cq_advance(&st->uring, n);
        progress |= n > 0;

        uint64_t req = atomic_load_explicit(&st->retention_req, memory_order_acquire); /* S5 */
        if (req != ret_done) {
            rf_store_retention_apply(
                st, atomic_load_explicit(&st->retention_now, memory_order_relaxed));
            ret_done = req;
            atomic_store_explicit(&st->retention_done, req, memory_order_release);
        } else if (st->cfg.retention_interval_ns > 0 && !st->cfg.event_clock &&
                   now - st->last_retention_mono >= st->cfg.retention_interval_ns) {
            /* (not on an event clock: the wall clock here is not the data's) */
            rf_store_retention_apply(st, rf_clock_wall_ns());
            st->last_retention_mono = now;
        }
        for (uint32_t i = 0; i < st->n_shards; i++)
            inflight |= st->shards[i]->io.state != RF_IO_IDLE;
        rf_store_stats_publish(st);

        if (stop) {
            bool quiet = true;
            for (uint32_t i = 0; i < st->n_shards && quiet; i++)
                quiet = shard_quiet(st->shards[i]);
            if (quiet)
                break;
        }
        if (progress || inflight)
            idle_wait_us = st->cfg.io_idle_wait_us;
        if (!progress) {
            if (inflight) {
                struct __kernel_timespec ts = {0, (long long)st->cfg.io_idle_wait_us * 1000};
                (void)io_uring_wait_cqe_timeout(&st->uring, &cqe, &ts);
            } else {
                struct timespec ts = {0, (long)idle_wait_us * 1000};
                nanosleep(&ts, NULL);
                if (idle_wait_us <= IO_IDLE_WAIT_MAX_US / 2)
                    idle_wait_us *= 2;
            }
        }
    }
    for (uint32_t i = 0; i < st->n_shards; i++) {
        rf_store_shard *sh = st->shards[i];
        if (sh->io.torn || sh->io.recover_pending) {
            /* One last try, so the next open finds the segment closed; if it
             * fails, that open's recovery does the same. */
            const char *what = "";
            int rc = cut_torn(sh, &what);
            if (rc == 0)
                rc = finish_torn(st, sh, &what);
            if (rc < 0)
                rf_log_error(RF_STORE_COMPONENT,
                             "shard=%" PRIu32 " %s file=%s: %s; the next open recovers it",
                             sh->index, what, sh->io.path, strerror(-rc));
            if (sh->io.fd >= 0)
                close(sh->io.fd);
            seg_forget(&sh->io);
        } else {
            seg_close(st, sh);
            if (sh->io.torn) {
                /* its footer failed just now */
                const char *what = "";
                if ((cut_torn(sh, &what) < 0 || finish_torn(st, sh, &what) < 0) && sh->io.fd >= 0)
                    close(sh->io.fd);
                seg_forget(&sh->io);
            }
        }
    }
    return NULL;
}

int rf_store_io_start(rf_store *st, rf_err *err)
{
    for (uint32_t i = 0; i < st->n_shards; i++)
        st->shards[i]->io.durable_cap = UINT64_MAX; /* before the thread: no loss yet */
    int rc = io_uring_queue_init(2 * st->n_shards + 8, &st->uring, 0);
    if (rc < 0)
        return rf_err_set(err, -rc, "%s: io_uring_queue_init: %s", st->dir, strerror(-rc));
    rc = pthread_create(&st->io_thread, NULL, io_main, st);
    if (rc) {
        io_uring_queue_exit(&st->uring);
        return rf_err_set(err, rc, "%s: starting the I/O thread: %s", st->dir, strerror(rc));
    }
    st->io_started = true;
    return 0;
}

void rf_store_io_stop(rf_store *st)
{
    if (!st->io_started)
        return;
    atomic_store_explicit(&st->stop, true, memory_order_release);
    pthread_join(st->io_thread, NULL);
    io_uring_queue_exit(&st->uring);
    st->io_started = false;
}

/* ---- readers ------------------------------------------------------------ */

const char *rf_store_io_health_name(enum rf_store_io_health h)
{
    return h == RF_STORE_IO_DEGRADED ? "degraded" : "ok";
}

void rf_store_shard_io_status_read(const rf_store_shard *sh, rf_store_shard_io_status *o)
{
    memset(o, 0, sizeof(*o));
    /* S6: pairs with the release-store in shard_error / recovered. */
    o->state = (enum rf_store_io_health)atomic_load_explicit(&sh->io_health, memory_order_acquire);
    /* after the S6 acquire: at least as new as the state read */
    o->degraded_since_ns = atomic_load_explicit(&sh->degraded_since_ns, memory_order_relaxed);
#define LD(f) atomic_load_explicit(&sh->f, memory_order_relaxed) /* display only */
    o->recoveries = LD(recoveries);
    o->dropped_io_error_points = LD(dropped_io_error_points);
    o->write_errors_enospc = LD(werr_enospc);
    o->write_errors_edquot = LD(werr_edquot);
    o->write_errors_erofs = LD(werr_erofs);
    o->write_errors_eio = LD(werr_eio);
    o->write_errors_other = LD(werr_other);
#undef LD
    /* S8: pairs with the release in shard_error: the text read after it is
     * at least as new as the errno. */
    o->last_errno = atomic_load_explicit(&sh->last_errno, memory_order_acquire);
    errtext_read(&sh->last_error, o->last_error, sizeof(o->last_error));
}
