/* Segment format: file header, record framing, index (footer) encoding and
 * file names. Byte layouts are in docs/FORMAT.md; the code reads and writes
 * them at fixed offsets with core/bytes (the index arrays are copied whole:
 * little-endian host, see segment.h). */
#include "storage/segment/segment.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes/bytes.h"

/* The footer tables are the in-memory structs byte for byte. */
_Static_assert(sizeof(rf_seg_block_ref) == 40, "rf_seg_block_ref is a 40-byte footer entry");
_Static_assert(sizeof(rf_seg_series_ref) == 40, "rf_seg_series_ref is a 40-byte footer entry");


/* ---- file header ---- */

void rf_seg_header_encode(const rf_seg_header *h, uint8_t out[RF_SEG_HEADER_SIZE])
{
    memset(out, 0, RF_SEG_HEADER_SIZE);
    memcpy(out, RF_SEG_MAGIC, 8);
    rf_write_le32(out + 8, h->version);
    rf_write_le32(out + 12, RF_SEG_HEADER_SIZE);
    rf_write_le32(out + 16, h->shard);
    rf_write_le32(out + 20, 0); /* flags: none defined in versions 1 to 3 */
    rf_write_le64(out + 24, h->seq);
    rf_write_le64(out + 32, (uint64_t)h->created_ns);
    rf_write_le32(out + 60, rf_crc32c(0, out, 60));
}

int rf_seg_header_decode(const uint8_t *in, size_t len, rf_seg_header *h, const char *what,
                         rf_err *err)
{
    if (len < RF_SEG_HEADER_SIZE)
        return rf_err_set(err, EBADMSG, "%s: segment header truncated (%zu of %u bytes)", what, len,
                          RF_SEG_HEADER_SIZE);
    if (memcmp(in, RF_SEG_MAGIC, 8) != 0)
        return rf_err_set(err, EBADMSG, "%s: not a ringflow segment (bad magic)", what);
    /* The version is checked before the CRC: a later version may lay out the
     * rest of the header differently, and the right message is "too new". */
    uint32_t version = rf_read_le32(in + 8);
    if (version > RF_SEG_VERSION)
        return rf_err_set(err, EPROTONOSUPPORT,
                          "%s: segment format version %" PRIu32
                          " is newer than this build supports (%u); upgrade ringflow to read it",
                          what, version, RF_SEG_VERSION);
    if (version == 0)
        return rf_err_set(err, EBADMSG, "%s: segment format version 0 is invalid", what);
    if (rf_read_le32(in + 60) != rf_crc32c(0, in, 60))
        return rf_err_set(err, EBADMSG, "%s: segment header checksum mismatch", what);
    if (rf_read_le32(in + 12) != RF_SEG_HEADER_SIZE)
        return rf_err_set(err, EBADMSG, "%s: unexpected segment header size %" PRIu32, what,
                          rf_read_le32(in + 12));
    h->version = version;
    h->shard = rf_read_le32(in + 16);
    h->seq = rf_read_le64(in + 24);
    h->created_ns = (int64_t)rf_read_le64(in + 32);
    return 0;
}

/* ---- records ---- */

void rf_seg_rec_put_header(uint8_t *rec, const rf_seg_rec *h)
{
    rf_write_le32(rec, RF_SEG_REC_MAGIC);
    rec[4] = h->type;
    rec[5] = h->value_type;
    rf_write_le16(rec + 6, h->aux16);
    rf_write_le32(rec + 8, h->payload_len);
    rf_write_le32(rec + 12, h->count);
    rf_write_le64(rec + 16, h->series_id);
    rf_write_le64(rec + 24, (uint64_t)h->min_time);
    rf_write_le64(rec + 32, (uint64_t)h->max_time);
}

void rf_seg_rec_seal(uint8_t *rec)
{
    uint32_t len = rf_read_le32(rec + 8);
    rf_write_le32(rec + RF_SEG_REC_HDR_SIZE + len,
                  rf_crc32c(0, rec, RF_SEG_REC_HDR_SIZE + (size_t)len));
}

long rf_seg_rec_check(const uint8_t *p, size_t avail, rf_seg_rec *h)
{
    if (avail < 4)
        return -EAGAIN;
    if (rf_read_le32(p) != RF_SEG_REC_MAGIC)
        return -EBADMSG;
    if (avail < RF_SEG_REC_HDR_SIZE)
        return -EAGAIN;
    uint8_t type = p[4];
    uint32_t plen = rf_read_le32(p + 8);
    if (type < RF_SEG_REC_BLOCK || type > RF_SEG_REC_FORWARD_SENT || plen > RF_SEG_MAX_PAYLOAD)
        return -EBADMSG;
    size_t total = rf_seg_rec_size(plen);
    if (avail < total)
        return -EAGAIN;
    if (rf_read_le32(p + RF_SEG_REC_HDR_SIZE + plen) != rf_crc32c(0, p, RF_SEG_REC_HDR_SIZE + plen))
        return -EBADMSG;
    h->type = type;
    h->value_type = p[5];
    h->aux16 = rf_read_le16(p + 6);
    h->payload_len = plen;
    h->count = rf_read_le32(p + 12);
    h->series_id = rf_read_le64(p + 16);
    h->min_time = (int64_t)rf_read_le64(p + 24);
    h->max_time = (int64_t)rf_read_le64(p + 32);
    return (long)total;
}

/* ---- index ---- */

void rf_seg_index_init(rf_seg_index *idx)
{
    memset(idx, 0, sizeof(*idx));
    idx->min_time = INT64_MAX;
    idx->max_time = INT64_MIN;
}

void rf_seg_index_free(rf_seg_index *idx)
{
    free(idx->blocks);
    free(idx->series);
    rf_seg_index_init(idx);
}

void rf_seg_index_reset(rf_seg_index *idx)
{
    idx->n_blocks = 0;
    idx->n_series = 0;
    idx->min_time = INT64_MAX;
    idx->max_time = INT64_MIN;
}

static int grow(void **p, size_t *cap, size_t need, size_t esize)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * esize);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

int rf_seg_index_add_block(rf_seg_index *idx, const rf_seg_block_ref *b)
{
    if (grow((void **)&idx->blocks, &idx->cap_blocks, idx->n_blocks + 1, sizeof(*b)) < 0)
        return -ENOMEM;
    idx->blocks[idx->n_blocks++] = *b;
    if (b->min_time < idx->min_time)
        idx->min_time = b->min_time;
    if (b->max_time > idx->max_time)
        idx->max_time = b->max_time;
    return 0;
}

int rf_seg_index_add_series(rf_seg_index *idx, uint64_t series_id, uint64_t dict_offset)
{
    if (grow((void **)&idx->series, &idx->cap_series, idx->n_series + 1, sizeof(*idx->series)) < 0)
        return -ENOMEM;
    rf_seg_series_ref *s = &idx->series[idx->n_series++];
    memset(s, 0, sizeof(*s));
    s->series_id = series_id;
    s->dict_offset = dict_offset;
    return 0;
}

static int cmp_block(const void *a, const void *b)
{
    const rf_seg_block_ref *x = a, *y = b;
    if (x->series_id != y->series_id)
        return x->series_id < y->series_id ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_series(const void *a, const void *b)
{
    const rf_seg_series_ref *x = a, *y = b;
    if (x->series_id != y->series_id)
        return x->series_id < y->series_id ? -1 : 1;
    return x->dict_offset < y->dict_offset ? -1 : x->dict_offset > y->dict_offset;
}

int rf_seg_index_finish(rf_seg_index *idx)
{
    if (idx->n_blocks)
        qsort(idx->blocks, idx->n_blocks, sizeof(*idx->blocks), cmp_block);
    if (idx->n_series)
        qsort(idx->series, idx->n_series, sizeof(*idx->series), cmp_series);
    /* Merge the dictionary entries (one per series, the first if repeated)
     * with the block runs into a fresh table. */
    size_t cap = idx->n_series + idx->n_blocks + 1;
    rf_seg_series_ref *out = malloc(cap * sizeof(*out));
    if (!out)
        return -ENOMEM;
    size_t n = 0, si = 0, bi = 0;
    while (si < idx->n_series || bi < idx->n_blocks) {
        uint64_t id;
        if (si < idx->n_series &&
            (bi >= idx->n_blocks || idx->series[si].series_id <= idx->blocks[bi].series_id))
            id = idx->series[si].series_id;
        else
            id = idx->blocks[bi].series_id;
        rf_seg_series_ref *s = &out[n++];
        memset(s, 0, sizeof(*s));
        s->series_id = id;
        s->min_time = INT64_MAX;
        s->max_time = INT64_MIN;
        if (si < idx->n_series && idx->series[si].series_id == id)
            s->dict_offset = idx->series[si].dict_offset;
        while (si < idx->n_series && idx->series[si].series_id == id)
            si++;
        s->first_block = (uint32_t)bi;
        while (bi < idx->n_blocks && idx->blocks[bi].series_id == id) {
            if (idx->blocks[bi].min_time < s->min_time)
                s->min_time = idx->blocks[bi].min_time;
            if (idx->blocks[bi].max_time > s->max_time)
                s->max_time = idx->blocks[bi].max_time;
            bi++;
        }
        s->n_blocks = (uint32_t)(bi - s->first_block);
    }
    free(idx->series);
    idx->series = out;
    idx->n_series = n;
    idx->cap_series = cap;
    return 0;
}

/* The largest power of ten (at most 10^18) that divides every block's time
 * offsets in the compact footer: 10 s samples need one byte or two where ns
 * would need five to seven. */
static uint64_t footer_time_unit(const rf_seg_index *idx, unsigned *exp)
{
    static const uint64_t pow10[19] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull};
    unsigned e = 18;
    for (size_t i = 0; i < idx->n_blocks && e > 0; i++) {
        const rf_seg_block_ref *b = &idx->blocks[i];
        uint64_t lo = (uint64_t)b->min_time - (uint64_t)idx->min_time;
        uint64_t span = (uint64_t)b->max_time - (uint64_t)b->min_time;
        while (e > 0 && (lo % pow10[e] || span % pow10[e]))
            e--;
    }
    *exp = e;
    return pow10[e];
}

/* Version 3 footer payload (docs/FORMAT.md "Footer record"): a unit byte,
 * then per series its id, dictionary offset and block count, each followed
 * by its blocks as varints relative to the previous one. Every entry fits in
 * the 40 bytes of the fixed layout, which is what writers reserve. */
static size_t footer_compact(const rf_seg_index *idx, uint8_t *out)
{
    unsigned e;
    const uint64_t unit = footer_time_unit(idx, &e);
    uint8_t *p = out;
    *p++ = (uint8_t)e;
    for (size_t i = 0; i < idx->n_series; i++) {
        const rf_seg_series_ref *s = &idx->series[i];
        rf_write_le64(p, s->series_id);
        p = rf_varint_put(p + 8, s->dict_offset);
        p = rf_varint_put(p, s->n_blocks);
        uint64_t prev = 0;
        for (uint32_t j = 0; j < s->n_blocks; j++) {
            const rf_seg_block_ref *b = &idx->blocks[s->first_block + j];
            p = rf_varint_put(p, b->offset - prev);
            p = rf_varint_put(p, b->rec_len);
            p = rf_varint_put(p, b->n_points);
            p = rf_varint_put(p, ((uint64_t)b->min_time - (uint64_t)idx->min_time) / unit);
            p = rf_varint_put(p, ((uint64_t)b->max_time - (uint64_t)b->min_time) / unit);
            prev = b->offset;
        }
    }
    return (size_t)(p - out);
}

uint8_t *rf_seg_footer_build(rf_seg_index *idx, uint64_t at, uint32_t version, size_t *len)
{
    if (rf_seg_index_finish(idx) < 0)
        return NULL;
    const bool compact = version >= 3;
    /* the bound of either layout: a compact entry never passes 40 bytes */
    size_t plen = (idx->n_series + idx->n_blocks) * 40u + (compact ? 1u : 0u);
    if (plen > RF_SEG_MAX_PAYLOAD)
        return NULL;
    uint8_t *buf = malloc(rf_seg_rec_size((uint32_t)plen) + RF_SEG_TRAILER_SIZE);
    if (!buf)
        return NULL;
    uint8_t *payload = buf + RF_SEG_REC_HDR_SIZE;
    if (compact) {
        plen = footer_compact(idx, payload);
    } else {
        if (idx->n_series)
            memcpy(payload, idx->series, idx->n_series * 40u);
        if (idx->n_blocks)
            memcpy(payload + idx->n_series * 40u, idx->blocks, idx->n_blocks * 40u);
    }
    rf_seg_rec h = {
        .type = RF_SEG_REC_FOOTER,
        .value_type = compact ? 1 : 0, /* the payload's layout */
        .payload_len = (uint32_t)plen,
        .count = (uint32_t)idx->n_series,
        .series_id = idx->n_blocks,
        .min_time = idx->min_time,
        .max_time = idx->max_time,
    };
    rf_seg_rec_put_header(buf, &h);
    rf_seg_rec_seal(buf);
    const size_t rlen = rf_seg_rec_size((uint32_t)plen);
    uint8_t *t = buf + rlen;
    rf_write_le64(t, at);
    rf_write_le32(t + 8, RF_SEG_TRAILER_MAGIC);
    rf_write_le32(t + 12, rf_crc32c(0, t, 12));
    *len = rlen + RF_SEG_TRAILER_SIZE;
    return buf;
}

/* ---- series dictionary records ---- */

size_t rf_seg_series_rec_size(uint32_t len, uint64_t back, uint32_t shared)
{
    if (!back)
        return rf_seg_rec_size(len);
    return rf_seg_rec_size(rf_varint_len(back) + rf_varint_len(shared) + len - shared);
}

void rf_seg_series_rec_build(uint8_t *rec, uint64_t series_id, const char *key, uint32_t len,
                             uint16_t measurement_len, uint32_t field_offset, uint64_t back,
                             uint32_t shared)
{
    uint8_t *p = rec + RF_SEG_REC_HDR_SIZE;
    if (back) {
        p = rf_varint_put(p, back);
        p = rf_varint_put(p, shared);
    } else {
        shared = 0;
    }
    memcpy(p, key + shared, len - shared);
    p += len - shared;
    rf_seg_rec h = {
        .type = RF_SEG_REC_SERIES,
        .value_type = back ? RF_SEG_SERIES_SHARED : 0,
        .aux16 = measurement_len,
        .payload_len = (uint32_t)(p - rec - RF_SEG_REC_HDR_SIZE),
        .count = field_offset,
        .series_id = series_id,
    };
    rf_seg_rec_put_header(rec, &h);
    rf_seg_rec_seal(rec);
}

/* ---- names ---- */

int rf_seg_name(char *buf, size_t len, uint64_t seq, int64_t created_ns)
{
    int n = snprintf(buf, len, "seg-%010" PRIu64 "-%013" PRId64 RF_SEG_SUFFIX, seq,
                     created_ns / 1000000);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

bool rf_seg_shard_dir_parse(const char *name, uint32_t *shard)
{
    if (strncmp(name, "shard-", 6) != 0)
        return false;
    uint64_t v = 0;
    const char *p = name + 6;
    if (*p == '\0')
        return false;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
        if (v > UINT32_MAX)
            return false;
    }
    *shard = (uint32_t)v;
    return true;
}

bool rf_seg_name_parse(const char *name, uint64_t *seq)
{
    size_t n = strlen(name);
    if (n < 4 + 10 + 1 + 4 || strncmp(name, "seg-", 4) != 0 ||
        strcmp(name + n - strlen(RF_SEG_SUFFIX), RF_SEG_SUFFIX) != 0)
        return false;
    uint64_t v = 0;
    size_t i = 4;
    for (; i < n && name[i] >= '0' && name[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(name[i] - '0');
    if (i == 4 || name[i] != '-')
        return false;
    *seq = v;
    return true;
}
