/* The disk buffer's files: an append-only log in the store's segment
 * framing (storage/segment: the 64-byte file header, 40-byte record
 * headers, CRC32C per record, resynchronisation after a damaged record).
 * docs/FORMAT.md, "Forward buffer", is the normative description.
 *
 *   <buffer.path>/seg-<seq>-<ms>.rfs   header, then FORWARD records (the
 *                                      entries) with ACK and SENT records
 *                                      interleaved as requests complete
 *
 * Recovery reads every file in sequence order: the highest ACK says what is
 * done, the highest SENT what a request may have carried before the crash
 * (sent again now: counted as redelivered, at most one request's worth).
 * A damaged record is skipped up to the next valid one and a torn tail
 * ignored, both counted; a file whose header is unreadable is renamed
 * *.corrupt. Nothing is ever appended to a recovered file: each start opens
 * a new one, and writes the recovered ACK and SENT into it first, so the
 * newest file always carries the latest state and an old file can be
 * deleted as soon as its last entry is acknowledged. Sender thread only. */
#include "stages/forward/forward_pvt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "storage/segment/segment.h"

static int mkdir_p(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static void file_path(const fwd_buffer *b, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", b->dir, name);
}

static int cmp_file(const void *a, const void *b)
{
    const fwd_file *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static fwd_file *add_file(fwd_buffer *b)
{
    if (b->n_files == b->cap_files) {
        size_t cap = b->cap_files ? b->cap_files * 2 : 16;
        fwd_file *n = realloc(b->files, cap * sizeof(*n));
        if (!n)
            return NULL;
        b->files = n;
        b->cap_files = cap;
    }
    fwd_file *f = &b->files[b->n_files++];
    memset(f, 0, sizeof(*f));
    f->rfd = -1;
    return f;
}

static void remove_file(fwd_buffer *b, size_t i)
{
    char path[4200];
    file_path(b, b->files[i].name, path, sizeof(path));
    if (b->files[i].rfd >= 0)
        close(b->files[i].rfd);
    unlink(path);
    b->bytes -= b->files[i].bytes;
    memmove(&b->files[i], &b->files[i + 1], (b->n_files - i - 1) * sizeof(fwd_file));
    b->n_files--;
}

/* Writes one whole record at the end of the current file; on a failure the
 * file is cut back to where it was, so no half record stays in the middle. */
static int write_record(rf_fwd *f, const uint8_t *rec, size_t n)
{
    fwd_buffer *b = &f->buf;
    fwd_file *cur = &b->files[b->n_files - 1];
    int rc = rf_segment_pwrite_all(b->wfd, rec, n, cur->bytes);
    if (rc == 0 && b->sync && fdatasync(b->wfd) < 0)
        rc = -errno;
    if (rc < 0) {
        if (ftruncate(b->wfd, (off_t)cur->bytes) <
            0) { /* best effort; recovery skips a torn tail */
        }
        if (!b->io_error_logged)
            rf_log_error("forward", "sink %s: disk buffer %s/%s: append failed: %s (logged once)",
                         f->name, b->dir, cur->name, strerror(-rc));
        b->io_error_logged = true;
        return rc;
    }
    cur->bytes += n;
    b->bytes += n;
    rf_stats_add(&f->st[FS_DISK_WRITTEN], n);
    return 0;
}

static int write_marker(rf_fwd *f, uint8_t type, uint64_t seq)
{
    uint8_t rec[RF_SEG_REC_HDR_SIZE + RF_SEG_REC_CRC_SIZE];
    rf_seg_rec h = {.type = type, .series_id = seq};
    rf_seg_rec_put_header(rec, &h);
    rf_seg_rec_seal(rec);
    return write_record(f, rec, sizeof(rec));
}

/* Starts a new file and writes the current ACK and SENT into it. */
static int open_file(rf_fwd *f, rf_err *err)
{
    fwd_buffer *b = &f->buf;
    uint64_t seq = b->n_files ? b->files[b->n_files - 1].seq + 1 : 1;
    fwd_file *nf = add_file(b);
    if (!nf)
        return rf_err_set(err, ENOMEM, "sink %s: out of memory", f->name);
    int64_t now = rf_clock_wall_ns();
    rf_seg_name(nf->name, sizeof(nf->name), seq, now);
    nf->seq = seq;
    char path[4200];
    file_path(b, nf->name, path, sizeof(path));
    if (b->wfd >= 0)
        close(b->wfd);
    b->wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (b->wfd < 0) {
        int e = errno;
        b->n_files--;
        return rf_err_set(err, e, "sink %s: disk buffer: create %s: %s", f->name, path,
                          strerror(e));
    }
    uint8_t hdr[RF_SEG_HEADER_SIZE];
    rf_seg_header h = {.version = RF_SEG_VERSION, .seq = seq, .created_ns = now};
    rf_seg_header_encode(&h, hdr);
    int rc = write_record(f, hdr, sizeof(hdr));
    if (!rc && b->acked_seq)
        rc = write_marker(f, RF_SEG_REC_FORWARD_ACK, b->acked_seq);
    /* Always: the last SENT of the log is the one recovery believes, and a
     * lowered mark must win over a higher one in an older file. */
    if (!rc)
        rc = write_marker(f, RF_SEG_REC_FORWARD_SENT, b->sent_seq);
    if (rc)
        return rf_err_set(err, -rc, "sink %s: disk buffer: write %s: %s", f->name, path,
                          strerror(-rc));
    return 0;
}

/* A recovered file's records: entries go to the FIFO (filtered once the
 * highest ACK of all files is known), markers raise acked/sent. */
typedef struct scan_state {
    fwd_entry *e;
    size_t n, cap;
} scan_state;

static int scan_file(rf_fwd *f, fwd_file *ff, scan_state *ss)
{
    fwd_buffer *b = &f->buf;
    char path[4200];
    file_path(b, ff->name, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rf_log_warn("forward", "sink %s: disk buffer: cannot read %s: %s", f->name, path,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    ff->bytes = size;
    b->bytes += size;
    const uint8_t *map = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    rf_err err = {0};
    rf_seg_header h;
    if (size && map == MAP_FAILED)
        map = NULL;
    if (!map || rf_seg_header_decode(map, size, &h, path, &err) < 0) {
        char bad[4300];
        snprintf(bad, sizeof(bad), "%s.corrupt", path);
        rename(path, bad);
        rf_log_warn("forward", "sink %s: disk buffer: %s; renamed to %s", f->name,
                    map ? err.msg : "empty or unmappable file", bad);
        rf_stats_add(&f->st[FS_CORRUPT_BYTES], size);
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_CORRUPT], 1);
        if (map)
            munmap((void *)map, size);
        b->bytes -= size;
        return -1;
    }
    uint64_t pos = RF_SEG_HEADER_SIZE;
    while (pos < size) {
        rf_seg_rec r;
        long len = rf_seg_rec_check(map + pos, size - pos, &r);
        if (len > 0) {
            if (r.type == RF_SEG_REC_FORWARD) {
                if (ss->n == ss->cap) {
                    size_t cap = ss->cap ? ss->cap * 2 : 256;
                    fwd_entry *n = realloc(ss->e, cap * sizeof(*n));
                    if (!n)
                        break;
                    ss->e = n;
                    ss->cap = cap;
                }
                ss->e[ss->n++] = (fwd_entry){.seq = r.series_id,
                                             .len = r.payload_len,
                                             .events = r.count,
                                             .wall_ns = r.min_time,
                                             .file_seq = ff->seq,
                                             .offset = pos};
                if (r.series_id > ff->last_entry)
                    ff->last_entry = r.series_id;
                if (r.series_id >= b->next_seq)
                    b->next_seq = r.series_id + 1;
            } else if (r.type == RF_SEG_REC_FORWARD_ACK && r.series_id > b->acked_seq) {
                b->acked_seq = r.series_id;
            } else if (r.type == RF_SEG_REC_FORWARD_SENT) {
                /* The last one counts. Buffers written before the mark
                 * waited for the connection may hold a mark put back
                 * after a refused connect: lower than the one before. */
                b->sent_seq = r.series_id;
            }
            pos += (uint64_t)len;
            continue;
        }
        uint64_t next = len == -EAGAIN ? 0 : rf_seg_resync(map, size, pos + 1);
        uint64_t skipped = (next ? next : size) - pos;
        rf_log_warn("forward", "sink %s: disk buffer %s: %s at offset %llu: %llu bytes skipped",
                    f->name, path, next ? "damaged record" : "torn or damaged tail",
                    (unsigned long long)pos, (unsigned long long)skipped);
        rf_stats_add(&f->st[FS_CORRUPT_BYTES], skipped);
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_CORRUPT], 1);
        if (!next)
            break;
        pos = next;
    }
    munmap((void *)map, size);
    return 0;
}

int fwd_disk_prepare(rf_fwd *f, rf_err *err)
{
    fwd_buffer *b = &f->buf;
    if (!f->cfg.buffer_path || !*f->cfg.buffer_path)
        return rf_err_set(err, EINVAL, "sink %s: a disk buffer needs buffer.path", f->name);
    b->dir = strdup(f->cfg.buffer_path);
    b->rec = malloc(rf_seg_rec_size(RF_FWD_CHUNK_BYTES));
    if (!b->dir || !b->rec)
        return rf_err_set(err, ENOMEM, "sink %s: out of memory", f->name);
    int rc = mkdir_p(b->dir);
    if (rc)
        return rf_err_set(err, -rc, "sink %s: disk buffer: mkdir %s: %s", f->name, b->dir,
                          strerror(-rc));
    char path[4200];
    file_path(b, "lock", path, sizeof(path));
    b->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (b->lockfd < 0)
        return rf_err_set(err, errno, "sink %s: disk buffer: %s: %s", f->name, path,
                          strerror(errno));
    return 0;
}

int fwd_disk_open(rf_fwd *f, rf_err *err)
{
    fwd_buffer *b = &f->buf;
    /* One sender per folder: a reload's new sink waits here for the old
     * one to let go (rf_fwd_free closes the lock); so would a second
     * engine pointed at the same folder. */
    if (flock(b->lockfd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EWOULDBLOCK
                                    : rf_err_set(err, errno, "sink %s: disk buffer: lock %s: %s",
                                                 f->name, b->dir, strerror(errno));
    int rc;
    DIR *d = opendir(b->dir);
    if (!d)
        return rf_err_set(err, errno, "sink %s: disk buffer: open %s: %s", f->name, b->dir,
                          strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t seq;
        size_t l = strlen(de->d_name);
        if (l >= sizeof(b->files[0].name) || !rf_seg_name_parse(de->d_name, &seq))
            continue;
        fwd_file *ff = add_file(b);
        if (!ff) {
            closedir(d);
            return rf_err_set(err, ENOMEM, "sink %s: out of memory", f->name);
        }
        memcpy(ff->name, de->d_name, l + 1);
        ff->seq = seq;
    }
    closedir(d);
    if (b->n_files)
        qsort(b->files, b->n_files, sizeof(fwd_file), cmp_file);
    scan_state ss = {0};
    for (size_t i = 0; i < b->n_files;) {
        if (scan_file(f, &b->files[i], &ss) < 0) {
            memmove(&b->files[i], &b->files[i + 1], (b->n_files - i - 1) * sizeof(fwd_file));
            b->n_files--;
            continue;
        }
        i++;
    }
    uint64_t recovered = 0, redelivered = 0;
    for (size_t i = 0; i < ss.n; i++) {
        fwd_entry *e = &ss.e[i];
        if (e->seq <= b->acked_seq)
            continue;
        fwd_buffer *bb = b;
        if (bb->q_len == bb->q_cap) {
            size_t cap = bb->q_cap ? bb->q_cap * 2 : 64;
            fwd_entry *q = realloc(bb->q, cap * sizeof(*q));
            if (!q) {
                free(ss.e);
                return rf_err_set(err, ENOMEM, "sink %s: out of memory", f->name);
            }
            bb->q = q;
            bb->q_cap = cap;
        }
        bb->q[bb->q_len++] = *e; /* q_head is 0 while recovering */
        recovered += e->events;
        if (e->seq <= b->sent_seq)
            redelivered += e->events;
        for (size_t k = 0; k < b->n_files; k++)
            if (b->files[k].seq == e->file_seq)
                b->files[k].unacked_events += e->events;
        rf_stats_add(&f->st[FS_QUEUED_BYTES], e->len);
    }
    free(ss.e);
    rf_stats_add(&f->st[FS_QUEUED_EVENTS], recovered);
    rf_stats_add(&f->st[FS_RECOVERED], recovered);
    rf_stats_add(&f->st[FS_REDELIVERED], redelivered);
    if (b->q_len)
        rf_stats_set(&f->st[FS_OLDEST_WALL], (uint64_t)b->q[0].wall_ns);
    if (b->acked_seq >= b->next_seq)
        b->next_seq = b->acked_seq + 1;
    if ((rc = open_file(f, err)))
        return rc;
    /* The new file carries the state: fully acknowledged files can go. */
    for (size_t i = 0; i + 1 < b->n_files;) {
        if (b->files[i].unacked_events == 0)
            remove_file(b, i);
        else
            i++;
    }
    b->opened = true;
    if (recovered || b->n_files > 1)
        rf_log_info("forward",
                    "sink %s: disk buffer %s: %llu unacknowledged events recovered "
                    "(%llu possibly delivered before the restart, sent again)",
                    f->name, b->dir, (unsigned long long)recovered,
                    (unsigned long long)redelivered);
    return 0;
}

void fwd_disk_close(fwd_buffer *b)
{
    if (b->wfd >= 0)
        close(b->wfd);
    b->wfd = -1;
    if (b->lockfd >= 0)
        close(b->lockfd); /* releases the flock: a waiting successor goes on */
    b->lockfd = -1;
    for (size_t i = 0; i < b->n_files; i++)
        if (b->files[i].rfd >= 0)
            close(b->files[i].rfd);
    free(b->files);
    free(b->dir);
    free(b->rec);
    b->files = NULL;
    b->dir = NULL;
    b->rec = NULL;
}

int fwd_disk_append(rf_fwd *f, fwd_entry *e, const char *data)
{
    fwd_buffer *b = &f->buf;
    size_t n = rf_seg_rec_size(e->len);
    if (b->files[b->n_files - 1].bytes + n > b->segment_bytes) {
        rf_err err = {0};
        if (open_file(f, &err) < 0) {
            rf_log_error("forward", "%s", err.msg);
            return -EIO;
        }
    }
    rf_seg_rec h = {.type = RF_SEG_REC_FORWARD,
                    .payload_len = e->len,
                    .count = e->events,
                    .series_id = e->seq,
                    .min_time = e->wall_ns,
                    .max_time = e->wall_ns};
    rf_seg_rec_put_header(b->rec, &h);
    memcpy(b->rec + RF_SEG_REC_HDR_SIZE, data, e->len);
    rf_seg_rec_seal(b->rec);
    fwd_file *cur = &b->files[b->n_files - 1];
    uint64_t at = cur->bytes;
    int rc = write_record(f, b->rec, n);
    if (rc < 0)
        return rc;
    e->file_seq = cur->seq;
    e->offset = at;
    cur->last_entry = e->seq;
    cur->unacked_events += e->events;
    return 0;
}

static fwd_file *find_file(fwd_buffer *b, uint64_t seq)
{
    for (size_t i = 0; i < b->n_files; i++)
        if (b->files[i].seq == seq)
            return &b->files[i];
    return NULL;
}

int fwd_disk_read(fwd_buffer *b, const fwd_entry *e, char *out)
{
    fwd_file *ff = find_file(b, e->file_seq);
    if (!ff)
        return -ENOENT;
    if (ff->rfd < 0) {
        char path[4200];
        file_path(b, ff->name, path, sizeof(path));
        ff->rfd = open(path, O_RDONLY | O_CLOEXEC);
        if (ff->rfd < 0)
            return -errno;
    }
    /* The CRC is checked again: the page cache is trusted, the disk is not. */
    size_t n = rf_seg_rec_size(e->len);
    ssize_t k = pread(ff->rfd, b->rec, n, (off_t)e->offset);
    rf_seg_rec h;
    if (k != (ssize_t)n || rf_seg_rec_check(b->rec, n, &h) != (long)n || h.series_id != e->seq)
        return -EBADMSG;
    memcpy(out, b->rec + RF_SEG_REC_HDR_SIZE, e->len);
    return 0;
}

void fwd_disk_ack(rf_fwd *f, uint64_t seq, bool sent_only)
{
    fwd_buffer *b = &f->buf;
    if (sent_only) {
        if (write_marker(f, RF_SEG_REC_FORWARD_SENT, seq) == 0)
            b->sent_seq = seq;
        return;
    }
    if (write_marker(f, RF_SEG_REC_FORWARD_ACK, seq) < 0)
        return; /* the entries come back after a restart: duplicates, not loss */
    b->acked_seq = seq;
    for (size_t i = 0; i < b->n_files; i++) {
        fwd_file *ff = &b->files[i];
        if (ff->last_entry && ff->last_entry <= seq)
            ff->unacked_events = 0;
    }
    for (size_t i = 0; i + 1 < b->n_files;) {
        if (b->files[i].unacked_events == 0 && b->files[i].last_entry <= seq)
            remove_file(b, i);
        else
            i++;
    }
}

bool fwd_disk_make_room(rf_fwd *f, uint64_t need)
{
    fwd_buffer *b = &f->buf;
    /* Whole files only, oldest first, never the one being written nor one
     * holding an entry of the request in flight. */
    uint64_t inflight_last = b->inflight ? b->q[(b->q_head + b->inflight - 1) % b->q_cap].seq : 0;
    while (b->bytes + need > b->max_bytes && b->n_files > 1) {
        fwd_file *old = &b->files[0];
        uint64_t first = b->q_len ? b->q[b->q_head].seq : 0;
        if (b->inflight && first <= old->last_entry && inflight_last >= first)
            return false;
        uint64_t lost = 0, bytes = 0;
        while (b->q_len && b->q[b->q_head].file_seq == old->seq) {
            lost += b->q[b->q_head].events;
            bytes += b->q[b->q_head].len;
            b->q_head = (b->q_head + 1) % b->q_cap;
            b->q_len--;
        }
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_BUFFER_FULL], lost);
        rf_stats_add(&f->st[FS_QUEUED_EVENTS], (uint64_t) - (int64_t)lost);
        rf_stats_add(&f->st[FS_QUEUED_BYTES], (uint64_t) - (int64_t)bytes);
        remove_file(b, 0);
    }
    return b->bytes + need <= b->max_bytes;
}

void fwd_disk_reclaim(rf_fwd *f)
{
    fwd_buffer *b = &f->buf;
    /* Only a file that held an entry: a fresh one (markers only) is not
     * replaced again, so a buffer too small for a chunk does not spin. */
    if (!b->n_files || b->files[b->n_files - 1].last_entry == 0)
        return;
    rf_err err = {0};
    if (open_file(f, &err) < 0) {
        rf_log_error("forward", "%s", err.msg);
        return;
    }
    for (size_t i = 0; i + 1 < b->n_files;) {
        if (b->files[i].unacked_events == 0 && b->files[i].last_entry <= b->acked_seq)
            remove_file(b, i);
        else
            i++;
    }
}
