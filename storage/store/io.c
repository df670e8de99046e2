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
 * workers never wait for it. */
#include "storage/store/store_pvt.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

#define SLOT_ESIZE sizeof(rf_store_slot *)

static void fail_shard(rf_store_shard *sh, const char *what, int err)
{
    rf_log_error(RF_STORE_COMPONENT, "shard=%" PRIu32 " file=%s %s: %s; shard stops persisting",
                 sh->index, sh->io.path, what, strerror(err));
    rf_store_count(&sh->write_errors, 1);
    atomic_store_explicit(&sh->io_failed, true, memory_order_release); /* S4 */
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

static int seg_open(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    int64_t wall = rf_clock_wall_ns();
    char name[64], dir[PATH_MAX];
    rf_seg_name(name, sizeof(name), io->next_seq, wall);
    if (snprintf(dir, sizeof(dir), "%s/shard-%02" PRIu32, st->dir, sh->index) >= (int)sizeof(dir) ||
        snprintf(io->path, sizeof(io->path), "%s/%s", dir, name) >= (int)sizeof(io->path)) {
        fail_shard(sh, "segment path", ENAMETOOLONG);
        return -ENAMETOOLONG;
    }
    io->fd = open(io->path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (io->fd < 0) {
        int e = errno;
        fail_shard(sh, "create segment", e);
        return -e;
    }
    /* The new name must survive a machine crash along with its data. */
    if (st->cfg.durability != RF_DURABILITY_NEVER)
        (void)fsync_dir(dir);
    rf_seg_header h = {.version = RF_SEG_VERSION, .shard = sh->index, .seq = io->next_seq,
                       .created_ns = wall};
    rf_store_stage *s = &io->stage[io->active];
    rf_seg_header_encode(&h, s->data + s->len); /* the stage is empty: staged data never outlives its segment */
    s->len += RF_SEG_HEADER_SIZE;
    io->seg_seq = io->next_seq++;
    io->seg_size = RF_SEG_HEADER_SIZE;
    io->disk_off = 0;
    io->seg_created_mono = rf_clock_mono_ns();
    rf_seg_index_reset(&io->idx);
    rf_u64map_clear(&io->dict);
    return 0;
}

/* Appends footer and trailer, syncs and closes. Called only with nothing
 * staged and nothing in flight for this shard. */
static void seg_close(rf_store *st, rf_store_shard *sh)
{
    rf_store_io *io = &sh->io;
    if (io->fd < 0)
        return;
    bool failed = atomic_load_explicit(&sh->io_failed, memory_order_relaxed);
    if (!failed) {
        size_t flen;
        uint8_t *footer = rf_seg_footer_build(&io->idx, io->disk_off, &flen);
        int rc = footer ? rf_segment_pwrite_all(io->fd, footer, flen, io->disk_off) : -ENOMEM;
        free(footer);
        bool flush_asked = atomic_load_explicit(&sh->flush_req, memory_order_acquire) > io->durable;
        if (rc == 0 && (st->cfg.durability != RF_DURABILITY_NEVER || flush_asked)) {
            rc = fdatasync(io->fd) < 0 ? -errno : 0;
            if (rc == 0) {
                io->durable = io->written;
                io->bytes_since_sync = 0;
                io->last_sync_mono = rf_clock_mono_ns();
                rf_store_count(&sh->fsyncs, 1);
                atomic_store_explicit(&sh->durable_seq, io->durable, memory_order_release);
            }
        }
        if (rc < 0) {
            /* The segment stays footer-less: the next open scans it. */
            fail_shard(sh, "closing segment", -rc);
        } else {
            io->disk_off += flen;
            rf_store_seg_add(st, sh->index, io->seg_seq, io->disk_off, io->idx.max_time, io->path);
        }
    }
    close(io->fd);
    io->fd = -1;
    io->rolling = false;
    io->seg_size = 0;
    rf_seg_index_reset(&io->idx);
    rf_u64map_clear(&io->dict);
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

/* Copies one block record (and its series' dictionary record when this
 * segment has none yet) into staging. False when it must wait. */
static bool place(rf_store *st, rf_store_shard *sh, const rf_store_slot *slot)
{
    rf_store_io *io = &sh->io;
    if (atomic_load_explicit(&sh->io_failed, memory_order_relaxed)) {
        rf_store_count(&sh->dropped_io_error, 1);
        return true;
    }
    if (io->rolling)
        return false;
    uint64_t dv;
    bool have_dict = io->fd >= 0 && rf_u64map_get(&io->dict, slot->series_id, &dv);
    size_t dlen = have_dict ? 0 : rf_seg_rec_size(slot->key->len);
    size_t need = dlen + slot->len;
    /* The size limit is on the closed file: records, the footer they will
     * need (40 bytes per series and per block) and the trailer. */
    size_t footer = rf_seg_rec_size((uint32_t)((io->idx.n_series + io->idx.n_blocks + 2) * 40u)) +
                    RF_SEG_TRAILER_SIZE;
    if (io->fd >= 0 && io->idx.n_blocks > 0 &&
        io->seg_size + need + footer > st->cfg.segment_max_bytes) {
        io->rolling = true;
        return false;
    }
    if (io->fd < 0) {
        if (io->stage[io->active].len || io->state != RF_IO_IDLE)
            return false; /* the previous segment's data is still on its way */
        if (seg_open(st, sh) < 0) {
            rf_store_count(&sh->dropped_io_error, 1);
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
        rf_seg_rec h = {
            .type = RF_SEG_REC_SERIES,
            .aux16 = k->measurement_len,
            .payload_len = k->len,
            .count = k->field_offset,
            .series_id = slot->series_id,
        };
        uint8_t *p = s->data + s->len;
        rf_seg_rec_put_header(p, &h);
        memcpy(p + RF_SEG_REC_HDR_SIZE, k->text, k->len);
        rf_seg_rec_seal(p);
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
    s->last_seq = slot->seq;
    s->blocks++;
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
    if (io->state != RF_IO_IDLE || io->fd < 0)
        return false;
    if (atomic_load_explicit(&sh->io_failed, memory_order_relaxed)) {
        /* What is still staged will not be written: count it, then close
         * without a footer (the next open scans what made it to disk). */
        for (int i = 0; i < 2; i++) {
            rf_store_count(&sh->dropped_io_error, io->stage[i].blocks);
            io->stage[i].len = 0;
            io->stage[i].blocks = 0;
            io->stage[i].last_seq = 0;
        }
        seg_close(st, sh);
        return true;
    }
    const rf_store_config *cfg = &st->cfg;
    rf_store_stage *s = &io->stage[io->active];
    if (io->written > io->durable) {
        uint64_t flush_req = atomic_load_explicit(&sh->flush_req, memory_order_acquire); /* S3 */
        bool due = (flush_req > io->durable && (io->written >= flush_req || s->len == 0)) ||
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
    if (io->rolling || (io->idx.n_blocks > 0 && now - io->seg_created_mono >= cfg->segment_max_age_ns)) {
        seg_close(st, sh);
        return true;
    }
    return false;
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
            fail_shard(sh, "write", res ? -res : EIO);
            rf_store_count(&sh->dropped_io_error, s->blocks);
        } else {
            io->inflight_done += (size_t)res;
            if (io->inflight_done < s->len) {
                submit_write(st, sh); /* short write: the rest */
                return;
            }
            io->disk_off += s->len;
            io->bytes_since_sync += s->len;
            rf_store_count(&sh->bytes_written, s->len);
            rf_store_count(&sh->blocks_written, s->blocks);
            if (s->last_seq > io->written) {
                io->written = s->last_seq;
                atomic_store_explicit(&sh->written_seq, io->written, memory_order_release); /* S4 */
            }
        }
        s->len = 0;
        s->blocks = 0;
        s->last_seq = 0;
    } else if (io->state == RF_IO_SYNCING) {
        if (res < 0) {
            /* After a failed fsync the page cache may have dropped the data:
             * retrying could report success for lost writes. */
            fail_shard(sh, "fdatasync", -res);
        } else {
            io->durable = io->sync_target;
            io->bytes_since_sync = 0;
            io->last_sync_mono = rf_clock_mono_ns();
            rf_store_count(&sh->fsyncs, 1);
            atomic_store_explicit(&sh->durable_seq, io->durable, memory_order_release); /* S4 */
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

static void *io_main(void *arg)
{
    rf_store *st = arg;
    uint64_t ret_done = 0;
    /* first periodic run right away: the store may have been down for days */
    st->last_retention_mono = rf_clock_mono_ns() - st->cfg.retention_interval_ns;
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
            rf_store_retention_apply(st, atomic_load_explicit(&st->retention_now, memory_order_relaxed));
            ret_done = req;
            atomic_store_explicit(&st->retention_done, req, memory_order_release);
        } else if (st->cfg.retention_interval_ns > 0 &&
                   now - st->last_retention_mono >= st->cfg.retention_interval_ns) {
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
        if (!progress) {
            if (inflight) {
                struct __kernel_timespec ts = {0, (long long)st->cfg.io_idle_wait_us * 1000};
                (void)io_uring_wait_cqe_timeout(&st->uring, &cqe, &ts);
            } else {
                struct timespec ts = {0, (long)st->cfg.io_idle_wait_us * 1000};
                nanosleep(&ts, NULL);
            }
        }
    }
    for (uint32_t i = 0; i < st->n_shards; i++)
        seg_close(st, st->shards[i]);
    return NULL;
}

int rf_store_io_start(rf_store *st, rf_err *err)
{
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
