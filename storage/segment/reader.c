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
    if ((ns + nb) * 40u != h.payload_len)
        return false;
    const uint8_t *p = r->map + at + RF_SEG_REC_HDR_SIZE;
    rf_seg_index *idx = &r->idx;
    idx->series = malloc((ns ? ns : 1) * sizeof(*idx->series));
    idx->blocks = malloc((nb ? nb : 1) * sizeof(*idx->blocks));
    if (!idx->series || !idx->blocks)
        return false;
    memcpy(idx->series, p, ns * 40u);
    memcpy(idx->blocks, p + ns * 40u, nb * 40u);
    idx->n_series = idx->cap_series = ns;
    idx->n_blocks = idx->cap_blocks = nb;
    idx->min_time = h.min_time;
    idx->max_time = h.max_time;
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

const char *rf_seg_reader_key(const rf_seg_reader *r, const rf_seg_series_ref *s, uint32_t *len,
                              uint16_t *measurement_len, uint32_t *field_offset)
{
    if (!s->dict_offset || s->dict_offset >= r->data_end)
        return NULL;
    rf_seg_rec h;
    long n = rf_seg_rec_check(r->map + s->dict_offset, r->data_end - s->dict_offset, &h);
    if (n < 0 || h.type != RF_SEG_REC_SERIES || h.series_id != s->series_id ||
        h.aux16 > h.payload_len || h.count > h.payload_len)
        return NULL;
    *len = h.payload_len;
    *measurement_len = h.aux16;
    *field_offset = h.count;
    return (const char *)r->map + s->dict_offset + RF_SEG_REC_HDR_SIZE;
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
