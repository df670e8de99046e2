/* Store lifecycle: configuration, directory layout, recovery at open, and an
 * orderly close. Layout: DIR/shard-NN/seg-<seq>-<created ms>.rfs. */
#include "storage/store/store_pvt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

void rf_store_config_default(rf_store_config *c)
{
    memset(c, 0, sizeof(*c));
    c->block_points = 1024;
    c->block_max_age_ns = 300 * RF_NS_PER_S;
    c->segment_max_bytes = 64ull << 20;
    c->segment_max_age_ns = 3600 * RF_NS_PER_S;
    c->durability = RF_DURABILITY_INTERVAL;
    c->sync_interval_ns = RF_NS_PER_S;
    c->sync_bytes = 8ull << 20;
    c->queue_blocks = 256;
    c->staging_bytes = 1u << 20;
    c->zstd_level = 1;
    c->retention_max_age_ns = 90LL * 86400 * RF_NS_PER_S;
    c->retention_max_bytes = 0;
    c->retention_interval_ns = 60 * RF_NS_PER_S;
    c->io_idle_wait_us = 1000;
    c->tick_cut_budget_ns = 500 * RF_NS_PER_US;
    c->time_unit_ns = 0; /* auto */
    c->io_retry_min_ns = 100 * RF_NS_PER_MS;
    c->io_retry_max_ns = 5 * RF_NS_PER_S;
}

static int check_config(const rf_store_config *c, rf_err *err)
{
    if (c->time_unit_ns < 0 || c->time_unit_ns > RF_NS_PER_S)
        return rf_err_set(err, EINVAL, "store: time_unit_ns %lld outside 0..1e9",
                          (long long)c->time_unit_ns);
    if (c->block_points < 1 || c->block_points > RF_BLOCK_MAX_POINTS)
        return rf_err_set(err, EINVAL, "store: block_points %" PRIu32 " outside 1..%u",
                          c->block_points, RF_BLOCK_MAX_POINTS);
    if (c->queue_blocks < 2 || c->queue_blocks > (1u << 20))
        return rf_err_set(err, EINVAL, "store: queue_blocks %" PRIu32 " outside 2..1048576",
                          c->queue_blocks);
    if (c->durability > RF_DURABILITY_NEVER)
        return rf_err_set(err, EINVAL, "store: unknown durability policy %d", (int)c->durability);
    if (c->segment_version != 0 && (c->segment_version < 2 || c->segment_version > RF_SEG_VERSION))
        return rf_err_set(err, EINVAL, "store: segment_version %" PRIu32 " outside 2..%u",
                          c->segment_version, RF_SEG_VERSION);
    if (c->segment_max_bytes < 4096)
        return rf_err_set(err, EINVAL, "store: segment_max_bytes below 4096");
    if (c->block_max_age_ns <= 0 || c->segment_max_age_ns <= 0 || c->sync_interval_ns <= 0 ||
        c->io_idle_wait_us == 0 || c->io_idle_wait_us >= 1000000)
        return rf_err_set(err, EINVAL,
                          "store: ages, intervals and io_idle_wait_us must be positive "
                          "(io_idle_wait_us below 1 s)");
    return 0;
}

typedef struct seg_file {
    uint32_t shard;
    uint64_t seq;
    char path[PATH_MAX];
} seg_file;

static int cmp_seg_file(const void *a, const void *b)
{
    const seg_file *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

typedef struct seg_list {
    seg_file *v;
    size_t n, cap;
} seg_list;

static int seg_list_add(void *ctx, uint32_t shard, uint64_t seq, const char *path)
{
    seg_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        seg_file *p = realloc(l->v, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n].shard = shard;
    l->v[l->n].seq = seq;
    if (snprintf(l->v[l->n].path, sizeof(l->v[l->n].path), "%s", path) <
        (int)sizeof(l->v[l->n].path))
        l->n++;
    return 0;
}

/* Every segment file of every shard folder, in stream order. */
static int list_segments(const char *dir, seg_file **out, size_t *n_out, rf_err *err)
{
    *out = NULL;
    *n_out = 0;
    seg_list l = {0};
    int rc = rf_seg_store_walk(dir, seg_list_add, &l, err);
    if (rc == -ENOMEM)
        rc = rf_err_set(err, ENOMEM, "%s: listing segments: out of memory", dir);
    if (rc < 0) {
        free(l.v);
        return rc;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof(*l.v), cmp_seg_file);
    *out = l.v;
    *n_out = l.n;
    return 0;
}

/* Refuses the whole store, before touching any file, when a segment was
 * written by a newer format version. */
static int check_versions(const seg_file *f, size_t n, rf_err *err)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t hdr[RF_SEG_HEADER_SIZE];
        int fd = open(f[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t r = pread(fd, hdr, sizeof(hdr), 0);
        close(fd);
        rf_seg_header h;
        if (r == (ssize_t)sizeof(hdr) &&
            rf_seg_header_decode(hdr, sizeof(hdr), &h, f[i].path, err) == -EPROTONOSUPPORT)
            return -EPROTONOSUPPORT;
    }
    rf_err_clear(err);
    return 0;
}

static int recover_all(rf_store *st, rf_err *err)
{
    seg_file *files;
    size_t n;
    int rc = list_segments(st->dir, &files, &n, err);
    if (rc < 0)
        return rc;
    if ((rc = check_versions(files, n, err)) < 0) {
        free(files);
        return rc;
    }
    rf_store_recovery *rec = &st->recovery;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rf_seg_recovery r;
        rec->segments_seen++;
        rc = rf_seg_recover(files[i].path, st->cfg.durability != RF_DURABILITY_NEVER, &r, err);
        if (rc < 0)
            break;
        rec->segments_open += r.was_open;
        rec->segments_removed += r.removed;
        rec->segments_quarantined += r.quarantined;
        if (r.was_open)
            rec->blocks_kept += r.blocks_kept;
        rec->tail_bytes_cut += r.tail_bytes_cut;
        rec->corrupt_regions += r.corrupt_regions;
        rec->corrupt_bytes += r.corrupt_bytes;
        if (files[i].shard < st->n_shards &&
            files[i].seq >= st->shards[files[i].shard]->io.next_seq)
            st->shards[files[i].shard]->io.next_seq = files[i].seq + 1;
        if (r.removed || r.quarantined)
            continue;
        rf_seg_reader sr;
        rf_err e;
        if (rf_seg_reader_open(files[i].path, 0, &sr, &e) < 0) {
            rf_log_error(RF_STORE_COMPONENT, "open: %s", e.msg);
            continue;
        }
        rf_store_seg_add(st, files[i].shard, files[i].seq, sr.size, sr.idx.max_time, files[i].path);
        rf_seg_reader_close(&sr);
    }
    free(files);
    if (rec->segments_open || rec->segments_removed || rec->segments_quarantined)
        rf_log_warn(RF_STORE_COMPONENT,
                    "recovery: dir=%s segments=%" PRIu64 " repaired=%" PRIu64 " removed=%" PRIu64
                    " quarantined=%" PRIu64 " tail_bytes_cut=%" PRIu64 " corrupt_regions=%" PRIu64
                    " corrupt_bytes=%" PRIu64,
                    st->dir, rec->segments_seen, rec->segments_open, rec->segments_removed,
                    rec->segments_quarantined, rec->tail_bytes_cut, rec->corrupt_regions,
                    rec->corrupt_bytes);
    return rc;
}

static void store_free(rf_store *st)
{
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* releases the flock */
    if (st->shards)
        for (uint32_t i = 0; i < st->n_shards; i++)
            rf_store_shard_destroy(st->shards[i]);
    free(st->shards);
    for (size_t i = 0; i < st->n_segs; i++)
        free(st->segs[i].path);
    free(st->segs);
    free(st);
}

int rf_store_open(const char *dir, const rf_store_config *cfg, uint32_t shards, rf_store **out,
                  rf_err *err)
{
    *out = NULL;
    rf_store_config def;
    if (!cfg) {
        rf_store_config_default(&def);
        cfg = &def;
    }
    int rc = check_config(cfg, err);
    if (rc < 0)
        return rc;
    if (shards < 1 || shards > 1024)
        return rf_err_set(err, EINVAL, "store: %" PRIu32 " shards outside 1..1024", shards);
    if (strlen(dir) > PATH_MAX - 64)
        return rf_err_set(err, ENAMETOOLONG, "store: directory path too long");
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return rf_err_set(err, errno, "%s: mkdir: %s", dir, strerror(errno));
    rf_store *st = calloc(1, sizeof(*st));
    if (!st)
        return rf_err_set(err, ENOMEM, "store: out of memory");
    st->lock_fd = -1;
    snprintf(st->dir, sizeof(st->dir), "%s", dir);
    /* One writer per directory: a second store (another process) appending
     * to the same segments would corrupt them. The kernel drops the lock
     * when the process dies, so a crash never leaves the store locked. */
    char lock[PATH_MAX];
    snprintf(lock, sizeof(lock), "%.*s/LOCK", PATH_MAX - 8, dir);
    /* Read-only is enough for flock, and a file open for writing would pin
     * the filesystem writable: `mount -o remount,ro` refuses (EBUSY) while
     * one is open, and a shard between segments holds none. */
    st->lock_fd = open(lock, O_CREAT | O_RDONLY | O_CLOEXEC, 0644);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        rc = rf_err_set(err, e == EWOULDBLOCK ? EBUSY : e, "%s: %s", lock,
                        e == EWOULDBLOCK ? "the store is open in another process or handle"
                                         : strerror(e));
        store_free(st);
        return rc;
    }
    st->cfg = *cfg;
    /* 0 = the default wait between retries after a write error */
    if (st->cfg.io_retry_min_ns <= 0)
        st->cfg.io_retry_min_ns = 100 * RF_NS_PER_MS;
    if (st->cfg.io_retry_max_ns <= 0)
        st->cfg.io_retry_max_ns = 5 * RF_NS_PER_S;
    if (st->cfg.io_retry_max_ns < st->cfg.io_retry_min_ns)
        st->cfg.io_retry_max_ns = st->cfg.io_retry_min_ns;
    st->n_shards = shards;
    st->shards = calloc(shards, sizeof(*st->shards));
    if (!st->shards) {
        store_free(st);
        return rf_err_set(err, ENOMEM, "store: out of memory");
    }
    for (uint32_t i = 0; i < shards; i++) {
        char sdir[PATH_MAX];
        snprintf(sdir, sizeof(sdir), "%s/shard-%02" PRIu32, dir, i);
        if (mkdir(sdir, 0755) < 0 && errno != EEXIST) {
            rc = rf_err_set(err, errno, "%s: mkdir: %s", sdir, strerror(errno));
            store_free(st);
            return rc;
        }
        st->shards[i] = calloc(1, sizeof(rf_store_shard));
        if (!st->shards[i] || (rc = rf_store_shard_init(st->shards[i], st, i)) < 0) {
            store_free(st);
            return rf_err_set(err, ENOMEM, "store: shard %" PRIu32 ": out of memory", i);
        }
        st->shards[i]->io.next_seq = 1;
    }
    if ((rc = recover_all(st, err)) < 0) {
        rf_err_wrap(err, "store: recovery: ");
        store_free(st);
        return rc;
    }
    /* What recovery found, readable at once (the I/O thread refreshes it
     * from now on): the daemon logs it right after this returns. Before
     * the thread starts, this thread is the only one touching it. */
    rf_store_stats_publish(st);
    if ((rc = rf_store_io_start(st, err)) < 0) {
        store_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

rf_store_shard *rf_store_shard_get(rf_store *st, uint32_t index)
{
    return index < st->n_shards ? st->shards[index] : NULL;
}

uint32_t rf_store_shards(const rf_store *st)
{
    return st->n_shards;
}

void rf_store_stats_read(rf_store *st, rf_store_stats *o)
{
    o->segments = atomic_load_explicit(&st->stat_segments, memory_order_relaxed);
    o->bytes = atomic_load_explicit(&st->stat_bytes, memory_order_relaxed);
    o->segments_removed = atomic_load_explicit(&st->stat_removed, memory_order_relaxed);
    o->bytes_removed = atomic_load_explicit(&st->stat_bytes_removed, memory_order_relaxed);
    o->retention_runs = atomic_load_explicit(&st->stat_ret_runs, memory_order_relaxed);
    o->recovery = st->recovery;
}

int rf_store_close(rf_store *st, rf_err *err)
{
    if (!st)
        return 0;
    /* The workers have stopped, so this thread may act as every shard's
     * owner. A refused cut only means the I/O thread is behind: wait for it. */
    for (uint32_t i = 0; i < st->n_shards; i++) {
        int64_t deadline = rf_clock_mono_ns() + 60 * RF_NS_PER_S;
        while (rf_store_flush(st->shards[i], NULL) == -EAGAIN && rf_clock_mono_ns() < deadline) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    rf_store_io_stop(st);
    int rc = 0;
    for (uint32_t i = 0; i < st->n_shards; i++) {
        rf_store_shard *sh = st->shards[i];
        /* The I/O thread is joined: its last stores are visible. */
        rf_store_shard_stats ss;
        rf_store_shard_io_status io;
        rf_store_shard_stats_read(sh, &ss);
        rf_store_shard_io_status_read(sh, &io);
        if (ss.write_errors)
            rf_log_warn(RF_STORE_COMPONENT,
                        "store shard-%" PRIu32 " final: blocks_written=%" PRIu64
                        " write_errors=%" PRIu64 " enospc=%" PRIu64 " edquot=%" PRIu64
                        " erofs=%" PRIu64 " eio=%" PRIu64 " other=%" PRIu64
                        " dropped_io_error=%" PRIu64 " dropped_io_error_points=%" PRIu64
                        " recoveries=%" PRIu64 " state=%s",
                        i, ss.blocks_written, ss.write_errors, io.write_errors_enospc,
                        io.write_errors_edquot, io.write_errors_erofs, io.write_errors_eio,
                        io.write_errors_other, ss.dropped_io_error, io.dropped_io_error_points,
                        io.recoveries, rf_store_io_health_name(io.state));
        /* Every shard's trouble is named, not only the first one's: each
         * shard adds its worst to the one message. */
        char what[192] = "";
        int code = 0;
        if (ss.dropped_io_error) {
            code = EIO;
            snprintf(what, sizeof(what),
                     "shard %" PRIu32 " lost %" PRIu64 " blocks (%" PRIu64
                     " points) to write errors",
                     i, ss.dropped_io_error, io.dropped_io_error_points);
        } else if (atomic_load_explicit(&sh->io_failed, memory_order_acquire)) {
            code = EIO;
            snprintf(what, sizeof(what),
                     "shard %" PRIu32 " had an fdatasync fail: blocks written before it are not "
                     "promised durable",
                     i);
        } else if (atomic_load_explicit(&sh->points_buffered, memory_order_relaxed)) {
            code = EAGAIN;
            snprintf(what, sizeof(what), "shard %" PRIu32 " could not write every buffer", i);
        }
        if (!code)
            continue;
        if (!rc) {
            rc = rf_err_set(err, code, "%s: %s", st->dir, what);
        } else if (err) {
            size_t len = strlen(err->msg);
            snprintf(err->msg + len, sizeof(err->msg) - len, ", %s", what);
        }
        /* A lost block outweighs a buffer still held. */
        if (code == EIO && rc == -EAGAIN) {
            rc = -EIO;
            if (err)
                err->code = EIO;
        }
    }
    if (rc == -EIO && err) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof(err->msg) - len, " (see log)");
    }
    store_free(st);
    return rc;
}
