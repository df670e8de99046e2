/* Reading a segment: map it, trust a valid footer for the index, otherwise
 * scan record by record, resynchronising on the record magic after damage.
 * Data is re-checked against its CRC each time it is handed out. */
#include "storage/segment/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes/bytes.h"

static const uint8_t rec_magic[4] = {0x52, 0x46, 0x72, 0x31};

/* A key sharing its prefix with an earlier record, put back together. */
struct rf_seg_keybuf {
    char *p;
    size_t cap;
};

/* Fills idx (allocated for the footer's counts) from a version 3 compact
 * footer payload. False when the bytes do not parse exactly or a time falls
 * outside the segment's range. */
static bool footer_compact_load(rf_seg_index *idx, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    if (p >= end || *p > 18)
        return false;
    uint64_t unit = 1;
    for (unsigned e = *p++; e > 0; e--)
        unit *= 10;
    size_t nb = 0;
    for (size_t i = 0; i < idx->n_series; i++) {
        rf_seg_series_ref *s = &idx->series[i];
        uint64_t dict, nblk;
        if (end - p < 8)
            return false;
        s->series_id = rf_read_le64(p);
        p += 8;
        if (rf_varint_get(&p, end, &dict) < 0 || rf_varint_get(&p, end, &nblk) < 0 ||
            nblk > idx->n_blocks - nb)
            return false;
        s->dict_offset = dict;
        s->first_block = (uint32_t)nb;
        s->n_blocks = (uint32_t)nblk;
        s->min_time = INT64_MAX;
        s->max_time = INT64_MIN;
        uint64_t prev = 0;
        for (uint64_t j = 0; j < nblk; j++, nb++) {
            rf_seg_block_ref *b = &idx->blocks[nb];
            uint64_t off, rec_len, pts, lo, span, t0, t1;
            if (rf_varint_get(&p, end, &off) < 0 || rf_varint_get(&p, end, &rec_len) < 0 ||
                rf_varint_get(&p, end, &pts) < 0 || rf_varint_get(&p, end, &lo) < 0 ||
                rf_varint_get(&p, end, &span) < 0 || rec_len > UINT32_MAX || pts > UINT32_MAX ||
                __builtin_mul_overflow(lo, unit, &t0) || __builtin_mul_overflow(span, unit, &t1) ||
                __builtin_add_overflow(t0, t1, &t1) || __builtin_add_overflow(prev, off, &off))
                return false;
            /* every time lies in [min_time, max_time] of the segment */
            const uint64_t range = (uint64_t)idx->max_time - (uint64_t)idx->min_time;
            if (idx->max_time < idx->min_time || t1 > range)
                return false;
            b->series_id = s->series_id;
            b->offset = off;
            b->rec_len = (uint32_t)rec_len;
            b->n_points = (uint32_t)pts;
            b->min_time = (int64_t)((uint64_t)idx->min_time + t0);
            b->max_time = (int64_t)((uint64_t)idx->min_time + t1);
            if (b->min_time < s->min_time)
                s->min_time = b->min_time;
            if (b->max_time > s->max_time)
                s->max_time = b->max_time;
            prev = off;
        }
    }
    return p == end && nb == idx->n_blocks;
}

/* Loads the index from the trailer and footer. False when either is missing
 * or fails a check: the caller then scans. */
static bool load_footer(rf_seg_reader *r)
{
    if (r->size < RF_SEG_HEADER_SIZE + RF_SEG_TRAILER_SIZE + rf_seg_rec_size(0))
        return false;
    const uint8_t *t = r->map + r->size - RF_SEG_TRAILER_SIZE;
    const uint64_t at = rf_read_le64(t);
    const uint32_t magic = rf_read_le32(t + 8);
    const uint32_t crc = rf_read_le32(t + 12);
    if (magic != RF_SEG_TRAILER_MAGIC || crc != rf_crc32c(0, t, 12))
        return false;
    if (at < RF_SEG_HEADER_SIZE || at >= r->size - RF_SEG_TRAILER_SIZE)
        return false;
    rf_seg_rec h;
    long len = rf_seg_rec_check(r->map + at, r->size - RF_SEG_TRAILER_SIZE - at, &h);
    if (len < 0 || h.type != RF_SEG_REC_FOOTER ||
        at + (uint64_t)len != r->size - RF_SEG_TRAILER_SIZE)
        return false;
    uint64_t ns = h.count, nb = h.series_id;
    const uint8_t *p = r->map + at + RF_SEG_REC_HDR_SIZE;
    rf_seg_index *idx = &r->idx;
    /* Each entry takes at least 9 (series) or 5 (block) bytes compact, 40
     * fixed: counts the payload cannot hold are refused before allocating. */
    if (ns > h.payload_len / 9 || nb > h.payload_len / 5)
        return false;
    idx->series = malloc((ns ? ns : 1) * sizeof(*idx->series));
    idx->blocks = malloc((nb ? nb : 1) * sizeof(*idx->blocks));
    if (!idx->series || !idx->blocks)
        return false;
    idx->n_series = idx->cap_series = ns;
    idx->n_blocks = idx->cap_blocks = nb;
    idx->min_time = h.min_time;
    idx->max_time = h.max_time;
    if (h.value_type == 1 && r->hdr.version >= 3) {
        if (!footer_compact_load(idx, p, h.payload_len))
            return false;
    } else if (h.value_type == 0 && r->hdr.version <= 2) {
        if ((ns + nb) * 40u != h.payload_len)
            return false;
        memcpy(idx->series, p, ns * 40u);
        memcpy(idx->blocks, p + ns * 40u, nb * 40u);
    } else {
        return false;
    }
    /* The CRC says the footer is what the writer wrote; these checks keep a
     * writer bug from turning into an out-of-bounds read. */
    for (uint64_t i = 0; i < nb; i++) {
        const rf_seg_block_ref *b = &idx->blocks[i];
        if (b->offset < RF_SEG_HEADER_SIZE || b->rec_len < rf_seg_rec_size(0) ||
            b->offset + b->rec_len > at)
            return false;
    }
    for (uint64_t i = 0; i < ns; i++) {
        const rf_seg_series_ref *s = &idx->series[i];
        if ((uint64_t)s->first_block + s->n_blocks > nb || s->dict_offset >= at ||
            (i && s->series_id <= idx->series[i - 1].series_id))
            return false;
    }
    r->closed = true;
    r->data_end = at;
    return true;
}

uint64_t rf_seg_resync(const uint8_t *map, size_t size, uint64_t from)
{
    const uint8_t *end = map + size;
    const uint8_t *p = map + from;
    while (p + RF_SEG_REC_HDR_SIZE <= end) {
        p = memmem(p, (size_t)(end - p), rec_magic, 4);
        if (!p)
            return 0;
        rf_seg_rec h;
        if (rf_seg_rec_check(p, (size_t)(end - p), &h) > 0 && h.type != RF_SEG_REC_FOOTER)
            return (uint64_t)(p - map);
        p++;
    }
    return 0;
}

/* Next offset after `from` where a valid record starts, or 0 when none. */
static uint64_t resync(const rf_seg_reader *r, uint64_t from)
{
    return rf_seg_resync(r->map, r->size, from);
}

static int scan(rf_seg_reader *r)
{
    rf_seg_index *idx = &r->idx;
    uint64_t pos = RF_SEG_HEADER_SIZE;
    r->data_end = pos;
    while (pos < r->size) {
        rf_seg_rec h;
        long len = rf_seg_rec_check(r->map + pos, r->size - pos, &h);
        if (len > 0) {
            int rc = 0;
            if (h.type == RF_SEG_REC_BLOCK) {
                rf_seg_block_ref b = {
                    .series_id = h.series_id,
                    .offset = pos,
                    .rec_len = (uint32_t)len,
                    .n_points = h.count,
                    .min_time = h.min_time,
                    .max_time = h.max_time,
                };
                rc = rf_seg_index_add_block(idx, &b);
            } else if (h.type == RF_SEG_REC_SERIES) {
                rc = rf_seg_index_add_series(idx, h.series_id, pos);
            }
            if (rc < 0)
                return rc;
            pos += (uint64_t)len;
            /* A footer record (its trailer lost) is not data: a recovered
             * segment gets a fresh one after the last data record. */
            if (h.type != RF_SEG_REC_FOOTER) {
                r->records++;
                r->data_end = pos;
            }
            continue;
        }
        uint64_t next = resync(r, pos + 1);
        if (!next)
            break; /* nothing valid follows: the rest is the tail */
        if (r->corrupt_regions < RF_SEG_MAX_REPORTED)
            r->reported[r->corrupt_regions] = (rf_seg_region){pos, next - pos};
        r->corrupt_regions++;
        r->corrupt_bytes += next - pos;
        pos = next;
    }
    r->tail_bytes = r->size - r->data_end;
    return rf_seg_index_finish(idx);
}

int rf_seg_reader_open(const char *path, unsigned flags, rf_seg_reader *r, rf_err *err)
{
    memset(r, 0, sizeof(*r));
    rf_seg_index_init(&r->idx);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return rf_err_set(err, errno, "%s: open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(r->fd, &st) < 0) {
        int e = errno;
        close(r->fd);
        return rf_err_set(err, e, "%s: stat: %s", path, strerror(e));
    }
    r->size = (size_t)st.st_size;
    if (r->size > 0) {
        void *m = mmap(NULL, r->size, PROT_READ, MAP_SHARED, r->fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(r->fd);
            return rf_err_set(err, e, "%s: mmap: %s", path, strerror(e));
        }
        r->map = m;
    }
    r->keybuf = calloc(1, sizeof(*r->keybuf));
    if (!r->keybuf) {
        rf_seg_reader_close(r);
        return rf_err_set(err, ENOMEM, "%s: out of memory", path);
    }
    int rc = rf_seg_header_decode(r->map, r->size, &r->hdr, path, err);
    if (rc < 0) {
        rf_seg_reader_close(r);
        return rc;
    }
    if ((flags & RF_SEG_OPEN_FORCE_SCAN) || !load_footer(r)) {
        rf_seg_index_free(&r->idx);
        r->closed = false;
        rc = scan(r);
        if (rc < 0) {
            rf_seg_reader_close(r);
            return rf_err_set(err, -rc, "%s: scan: %s", path, strerror(-rc));
        }
    }
    return 0;
}

void rf_seg_reader_close(rf_seg_reader *r)
{
    if (r->map)
        munmap((void *)r->map, r->size);
    if (r->fd >= 0)
        close(r->fd);
    rf_seg_index_free(&r->idx);
    if (r->keybuf)
        free(r->keybuf->p);
    free(r->keybuf);
    r->keybuf = NULL;
    r->map = NULL;
    r->fd = -1;
}

const rf_seg_series_ref *rf_seg_reader_find(const rf_seg_reader *r, uint64_t series_id)
{
    size_t lo = 0, hi = r->idx.n_series;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t id = r->idx.series[mid].series_id;
        if (id == series_id)
            return &r->idx.series[mid];
        if (id < series_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* A SERIES record at `off` and its key bytes: the payload of a whole one, the
 * bytes after the prefix of a shared-prefix one (*back, *shared set). */
static const uint8_t *series_rec(const rf_seg_reader *r, uint64_t off, rf_seg_rec *h,
                                 uint64_t *back, uint64_t *shared, size_t *len)
{
    if (!off || off >= r->data_end)
        return NULL;
    long n = rf_seg_rec_check(r->map + off, r->data_end - off, h);
    if (n < 0 || h->type != RF_SEG_REC_SERIES)
        return NULL;
    const uint8_t *p = r->map + off + RF_SEG_REC_HDR_SIZE, *end = p + h->payload_len;
    *back = *shared = 0;
    if (h->value_type == RF_SEG_SERIES_SHARED && r->hdr.version >= 3) {
        if (rf_varint_get(&p, end, back) < 0 || rf_varint_get(&p, end, shared) < 0 || !*back ||
            *back > off)
            return NULL;
    } else if (h->value_type != 0) {
        return NULL;
    }
    *len = (size_t)(end - p);
    return p;
}

const char *rf_seg_reader_key(const rf_seg_reader *r, const rf_seg_series_ref *s, uint32_t *len,
                              uint16_t *measurement_len, uint32_t *field_offset)
{
    rf_seg_rec h, bh;
    uint64_t back, shared, bback, bshared;
    size_t tail, blen;
    const uint8_t *t = series_rec(r, s->dict_offset, &h, &back, &shared, &tail);
    if (!t || h.series_id != s->series_id)
        return NULL;
    const char *key = (const char *)t;
    if (back) {
        /* The prefix comes from a whole record earlier in the file (never a
         * chain: the writer shares only with whole records). */
        const uint8_t *b = series_rec(r, s->dict_offset - back, &bh, &bback, &bshared, &blen);
        if (!b || bback || shared > blen || !r->keybuf)
            return NULL;
        struct rf_seg_keybuf *kb = r->keybuf;
        if (shared + tail > kb->cap) {
            char *q = realloc(kb->p, shared + tail);
            if (!q)
                return NULL;
            kb->p = q;
            kb->cap = shared + tail;
        }
        memcpy(kb->p, b, shared);
        memcpy(kb->p + shared, t, tail);
        key = kb->p;
        tail += shared;
    }
    if (h.aux16 > tail || h.count > tail)
        return NULL;
    *len = (uint32_t)tail;
    *measurement_len = h.aux16;
    *field_offset = h.count;
    return key;
}

long rf_seg_reader_block(const rf_seg_reader *r, const rf_seg_block_ref *b, const uint8_t **payload,
                         rf_seg_rec *h)
{
    if (b->offset + b->rec_len > r->data_end)
        return -EBADMSG;
    long n = rf_seg_rec_check(r->map + b->offset, b->rec_len, h);
    if (n != (long)b->rec_len || h->type != RF_SEG_REC_BLOCK || h->series_id != b->series_id)
        return -EBADMSG;
    *payload = r->map + b->offset + RF_SEG_REC_HDR_SIZE;
    return (long)h->payload_len;
}
