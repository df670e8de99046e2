/* Recovery of one segment file: after a crash the segment that was being
 * written has no footer, may end in a torn record and (after media damage)
 * may hold corrupt records anywhere. Keep every record whose CRC holds, cut
 * the tail, index what is left in a new footer, and say what was lost. */
#include "storage/segment/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log/log.h"

int rf_segment_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int quarantine(const char *path, rf_seg_recovery *rep, rf_err *err)
{
    char dst[4096];
    if (snprintf(dst, sizeof(dst), "%s.corrupt", path) >= (int)sizeof(dst))
        return rf_err_set(err, ENAMETOOLONG, "%s: path too long", path);
    if (rename(path, dst) < 0)
        return rf_err_set(err, errno, "%s: rename to %s: %s", path, dst, strerror(errno));
    rep->quarantined = true;
    return 0;
}

int rf_seg_recover(const char *path, bool sync, rf_seg_recovery *rep, rf_err *err)
{
    memset(rep, 0, sizeof(*rep));
    rf_seg_reader r;
    rf_err e;
    rf_err_clear(&e);
    int rc = rf_seg_reader_open(path, 0, &r, &e);
    if (rc == -EPROTONOSUPPORT) {
        if (err)
            *err = e;
        return rc;
    }
    if (rc == -EBADMSG) {
        struct stat st;
        if (stat(path, &st) == 0 && st.st_size < (off_t)RF_SEG_HEADER_SIZE) {
            /* The header is the first thing written: a crash before it was
             * complete leaves a file with nothing in it to keep. */
            rf_log_warn("store", "recovery: removing segment with torn header file=%s bytes=%lld",
                        path, (long long)st.st_size);
            rep->removed = true;
            rep->tail_bytes_cut = (uint64_t)st.st_size;
            return unlink(path) < 0
                       ? rf_err_set(err, errno, "%s: unlink: %s", path, strerror(errno))
                       : 0;
        }
        rf_log_error("store", "recovery: quarantining unreadable segment file=%s reason=\"%s\"",
                     path, e.msg);
        return quarantine(path, rep, err);
    }
    if (rc < 0) {
        if (err)
            *err = e;
        return rc;
    }
    if (r.closed) {
        rf_seg_reader_close(&r);
        return 0;
    }
    rep->was_open = true;
    rep->records_kept = r.records;
    rep->blocks_kept = r.idx.n_blocks;
    rep->tail_bytes_cut = r.tail_bytes;
    rep->corrupt_regions = r.corrupt_regions;
    rep->corrupt_bytes = r.corrupt_bytes;
    for (uint64_t i = 0; i < r.corrupt_regions && i < RF_SEG_MAX_REPORTED; i++)
        rf_log_error("store",
                     "recovery: skipped corrupt bytes shard=%" PRIu32 " file=%s offset=%" PRIu64
                     " bytes=%" PRIu64,
                     r.hdr.shard, path, r.reported[i].offset, r.reported[i].len);
    if (r.tail_bytes)
        rf_log_warn("store",
                    "recovery: cut torn tail shard=%" PRIu32 " file=%s offset=%" PRIu64
                    " bytes=%" PRIu64,
                    r.hdr.shard, path, r.data_end, r.tail_bytes);

    if (r.records == 0) {
        rf_log_warn("store", "recovery: removing segment without records shard=%" PRIu32 " file=%s",
                    r.hdr.shard, path);
        rf_seg_reader_close(&r);
        rep->removed = true;
        return unlink(path) < 0 ? rf_err_set(err, errno, "%s: unlink: %s", path, strerror(errno))
                                : 0;
    }

    uint64_t end = r.data_end;
    size_t flen;
    uint8_t *footer = rf_seg_footer_build(&r.idx, end, r.hdr.version, &flen);
    rf_seg_reader_close(&r);
    if (!footer)
        return rf_err_set(err, ENOMEM, "%s: building footer: out of memory", path);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = rf_err_set(err, errno, "%s: open for repair: %s", path, strerror(errno));
        free(footer);
        return rc;
    }
    /* Cut first, then append: a crash in between leaves an open segment that
     * the next recovery scans again, to the same result. */
    if (ftruncate(fd, (off_t)end) < 0)
        rc = rf_err_set(err, errno, "%s: truncate to %" PRIu64 ": %s", path, end, strerror(errno));
    else if ((rc = rf_segment_pwrite_all(fd, footer, flen, end)) < 0)
        rc =
            rf_err_set(err, -rc, "%s: writing footer at %" PRIu64 ": %s", path, end, strerror(-rc));
    else if (sync && fdatasync(fd) < 0)
        rc = rf_err_set(err, errno, "%s: fdatasync: %s", path, strerror(errno));
    close(fd);
    free(footer);
    if (rc == 0)
        rf_log_info("store", "recovery: closed segment file=%s records=%" PRIu64 " blocks=%" PRIu64,
                    path, rep->records_kept, rep->blocks_kept);
    return rc;
}
