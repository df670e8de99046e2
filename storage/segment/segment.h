/* Segment files: the on-disk format of the store (docs/FORMAT.md, "Segment
 * files", is the normative description; this header is its C face).
 *
 * A segment is one append-only file of one shard:
 *
 *   +----------------+---------+---------+-----+---------+----------------+---------+
 *   | file header 64 | record  | record  | ... | record  | footer record  | trailer |
 *   +----------------+---------+---------+-----+---------+----------------+---------+
 *                     series dictionary and block records  (only once closed)  16 B
 *
 * Every record is a fixed 40-byte header, a payload and a CRC32C of header +
 * payload. The header starts with a per-record magic so that a reader can
 * resynchronise after a corrupt record by searching for the next magic whose
 * record CRC holds. A series-dictionary record (series id -> canonical key
 * text) precedes the first block of its series in every segment, so each
 * segment is self-describing. Closing a segment appends a footer record (the
 * index: series -> blocks with offsets and time ranges) and a trailer that
 * points at it; a closed segment is never written again.
 *
 * Readers take a closed segment's index from its footer; an open segment (no
 * valid trailer/footer: still being written, or left by a crash) is scanned.
 * Scanning never returns a record whose CRC fails; it reports where it had to
 * skip bytes and how long the unusable tail is. rf_seg_recover() turns a
 * scanned segment into a closed one (cut the tail, append a footer).
 *
 * All integers are little-endian; the code assumes a little-endian host.
 */
#ifndef RF_STORAGE_SEGMENT_H
#define RF_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/crc32c/crc32c.h"
#include "core/error/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the segment format code assumes a little-endian host"
#endif

/* 3: compact footer and shared-prefix dictionary records; 2: string blocks
 * may hold texts (block version 2). 1 and 2 are read too. */
#define RF_SEG_VERSION 3u
#define RF_SEG_MAGIC "RFSEGMNT" /* 8 bytes at offset 0 of every segment */
#define RF_SEG_HEADER_SIZE 64u
#define RF_SEG_REC_MAGIC 0x31724652u /* "RFr1" on disk, first 4 bytes of every record */
#define RF_SEG_REC_HDR_SIZE 40u
#define RF_SEG_REC_CRC_SIZE 4u
#define RF_SEG_TRAILER_MAGIC 0x444E4546u /* "FEND" */
#define RF_SEG_TRAILER_SIZE 16u
/* Largest payload a reader accepts: bounds what a corrupt length can make it read. */
#define RF_SEG_MAX_PAYLOAD (256u << 20)
#define RF_SEG_SUFFIX ".rfs"

enum rf_seg_rec_type {
    RF_SEG_REC_BLOCK = 1,  /* payload: one encoded block (storage/encode) */
    RF_SEG_REC_SERIES = 2, /* payload: canonical key text of one series */
    RF_SEG_REC_FOOTER = 3, /* payload: the segment index */
    /* Forward buffer files (stages/forward, docs/FORMAT.md "Forward buffer"):
     * the same framing in a log of its own, never in a store's shard. */
    RF_SEG_REC_FORWARD = 4,      /* payload: lines; series_id = entry seq, count = events */
    RF_SEG_REC_FORWARD_ACK = 5,  /* no payload; series_id = highest acknowledged entry */
    RF_SEG_REC_FORWARD_SENT = 6, /* no payload; series_id = highest entry sent */
};

/* ---- file header ---------------------------------------------------------- */

typedef struct rf_seg_header {
    uint32_t version;
    uint32_t shard;
    uint64_t seq; /* position of the segment in its shard's stream */
    int64_t
        created_ns; /* wall clock at creation (an event-clock store: its first block's, docs/FORMAT.md) */
} rf_seg_header;

void rf_seg_header_encode(const rf_seg_header *h, uint8_t out[RF_SEG_HEADER_SIZE]);
/* Returns 0; -EBADMSG for a bad magic/CRC or a short file; -EPROTONOSUPPORT for
 * a version newer than RF_SEG_VERSION (message says which). `what` names the
 * file in messages. */
int rf_seg_header_decode(const uint8_t *in, size_t len, rf_seg_header *h, const char *what,
                         rf_err *err);

/* ---- records -------------------------------------------------------------- */

/* A decoded record header. Field meaning by type:
 *   BLOCK:  value_type, count = points, series_id, min/max_time of the points
 *   SERIES: aux16 = measurement length, count = field offset, series_id
 *   FOOTER: count = number of series, series_id = number of blocks,
 *           min/max_time of the whole segment */
typedef struct rf_seg_rec {
    uint8_t type;
    uint8_t value_type;
    uint16_t aux16;
    uint32_t payload_len;
    uint32_t count;
    uint64_t series_id;
    int64_t min_time;
    int64_t max_time;
} rf_seg_rec;

static inline size_t rf_seg_rec_size(uint32_t payload_len)
{
    return RF_SEG_REC_HDR_SIZE + (size_t)payload_len + RF_SEG_REC_CRC_SIZE;
}

/* Writes the header of `h` at rec[0..40). The payload goes at rec + 40. */
void rf_seg_rec_put_header(uint8_t *rec, const rf_seg_rec *h);
/* Computes and stores the CRC of a record whose header and payload are in place. */
void rf_seg_rec_seal(uint8_t *rec);
/* Checks the record at p (avail bytes readable). Returns its total size and
 * fills *h; -EAGAIN when the bytes end before the record does (torn tail or
 * still being written); -EBADMSG for a bad magic, type, length or CRC. */
long rf_seg_rec_check(const uint8_t *p, size_t avail, rf_seg_rec *h);
/* The first offset at or after `from` in map[0..size) where a valid record
 * other than a footer starts (resynchronising after a corrupt record), or 0
 * when none does. */
uint64_t rf_seg_resync(const uint8_t *map, size_t size, uint64_t from);

/* ---- index (footer) -------------------------------------------------------- */

typedef struct rf_seg_block_ref {
    uint64_t series_id;
    uint64_t offset;  /* of the record in the file */
    uint32_t rec_len; /* whole record, header and CRC included */
    uint32_t n_points;
    int64_t min_time;
    int64_t max_time;
} rf_seg_block_ref;

typedef struct rf_seg_series_ref {
    uint64_t series_id;
    uint64_t dict_offset; /* offset of its SERIES record; 0 when none survived */
    uint32_t first_block; /* index into the block table (blocks are grouped by series) */
    uint32_t n_blocks;
    int64_t min_time;
    int64_t max_time;
} rf_seg_series_ref;

/* A growing index, filled by the writer as it places records and by the
 * scanner as it finds them. */
typedef struct rf_seg_index {
    rf_seg_block_ref *blocks;
    size_t n_blocks, cap_blocks;
    rf_seg_series_ref *series; /* until finished: only series_id and dict_offset are set */
    size_t n_series, cap_series;
    int64_t min_time, max_time;
} rf_seg_index;

void rf_seg_index_init(rf_seg_index *idx);
void rf_seg_index_free(rf_seg_index *idx);
void rf_seg_index_reset(rf_seg_index *idx);
int rf_seg_index_add_block(rf_seg_index *idx, const rf_seg_block_ref *b);
int rf_seg_index_add_series(rf_seg_index *idx, uint64_t series_id, uint64_t dict_offset);
/* Sorts series by id and blocks by (series, offset), fills first_block,
 * n_blocks and time ranges; adds series entries for blocks whose dictionary
 * record is missing (dict_offset 0). */
int rf_seg_index_finish(rf_seg_index *idx);
/* Finishes idx and encodes footer record + trailer for a footer starting at
 * file offset `at`, in the layout of segment format `version` (the file's:
 * 3 and later compact, 1 and 2 fixed 40-byte entries). Returns a malloc'd
 * buffer (*len bytes) or NULL (-ENOMEM). */
uint8_t *rf_seg_footer_build(rf_seg_index *idx, uint64_t at, uint32_t version, size_t *len);

/* ---- series dictionary records --------------------------------------------- */

/* Value-type byte of a SERIES record in a version 3 file whose payload is
 * varint back, varint shared, then the key's bytes after its first `shared`:
 * the first `shared` bytes are those of the full SERIES record `back` bytes
 * before it in the same file (docs/FORMAT.md). 0: the payload is the key. */
#define RF_SEG_SERIES_SHARED 1u
/* Size of the SERIES record of a key of `len` bytes: whole (back == 0), or
 * sharing its first `shared` bytes with the full record `back` bytes earlier. */
size_t rf_seg_series_rec_size(uint32_t len, uint64_t back, uint32_t shared);
/* Writes that record at rec (rf_seg_series_rec_size bytes) and seals it. */
void rf_seg_series_rec_build(uint8_t *rec, uint64_t series_id, const char *key, uint32_t len,
                             uint16_t measurement_len, uint32_t field_offset, uint64_t back,
                             uint32_t shared);

/* ---- reading ---------------------------------------------------------------- */

#define RF_SEG_MAX_REPORTED 8

typedef struct rf_seg_region {
    uint64_t offset;
    uint64_t len;
} rf_seg_region;

typedef struct rf_seg_reader {
    int fd;
    const uint8_t *map;
    size_t size; /* bytes mapped (file size at open) */
    rf_seg_header hdr;
    bool closed;       /* index came from a valid footer */
    uint64_t data_end; /* end of the last valid record (footer start when closed) */
    rf_seg_index idx;  /* finished: sorted, grouped */
    /* what scanning an open segment found (zero for closed segments) */
    uint64_t records;
    uint64_t corrupt_regions;
    uint64_t corrupt_bytes;
    uint64_t tail_bytes; /* bytes after data_end that are not a complete valid record */
    rf_seg_region reported[RF_SEG_MAX_REPORTED]; /* first corrupt regions */
    struct rf_seg_keybuf *keybuf; /* a shared-prefix key put back together (rf_seg_reader_key) */
} rf_seg_reader;

enum {
    RF_SEG_OPEN_FORCE_SCAN = 1u << 0 /* ignore the footer (tests, verification) */
};

/* Maps `path` read-only, validates its header, loads the index from the footer
 * or by scanning. Returns 0, -EBADMSG (bad header), -EPROTONOSUPPORT (newer
 * version), or -errno from the system; *err says which file and why. */
int rf_seg_reader_open(const char *path, unsigned flags, rf_seg_reader *r, rf_err *err);
void rf_seg_reader_close(rf_seg_reader *r);

/* Finds a series in the index; NULL when absent. */
const rf_seg_series_ref *rf_seg_reader_find(const rf_seg_reader *r, uint64_t series_id);
/* The key of a series from its dictionary record: returns the text (not NUL
 * terminated) and its length, measurement length and field offset, or NULL
 * when the segment has no valid dictionary record for it (or, for a record
 * that shares a prefix, none for the record it shares with). The text is
 * valid until the next call on this reader (a shared-prefix key is put back
 * together in a buffer of the reader's) or until it is closed. */
const char *rf_seg_reader_key(const rf_seg_reader *r, const rf_seg_series_ref *s, uint32_t *len,
                              uint16_t *measurement_len, uint32_t *field_offset);
/* The encoded payload of a block, after re-checking its CRC (a closed segment
 * is trusted for its index, never for its data). Returns the payload length
 * or -EBADMSG. */
long rf_seg_reader_block(const rf_seg_reader *r, const rf_seg_block_ref *b, const uint8_t **payload,
                         rf_seg_rec *h);

/* ---- recovery ----------------------------------------------------------------- */

typedef struct rf_seg_recovery {
    bool was_open;    /* had no valid footer */
    bool removed;     /* held no record: deleted */
    bool quarantined; /* unreadable header: renamed to *.corrupt */
    uint64_t records_kept;
    uint64_t blocks_kept;
    uint64_t tail_bytes_cut;
    uint64_t corrupt_regions;
    uint64_t corrupt_bytes;
} rf_seg_recovery;

/* Makes a segment closed: a segment with a valid footer is left alone; an open
 * one is scanned, its invalid tail cut (ftruncate), a footer indexing every
 * valid record appended and the file fsynced (unless `sync` is false). A file
 * with an unreadable header is renamed to <path>.corrupt; one with no record
 * is removed. Everything done is logged (component "store") with the path,
 * offsets and byte counts, and summed into *rep. Returns 0, -EPROTONOSUPPORT
 * for a newer format version (the file is not touched), or -errno. */
int rf_seg_recover(const char *path, bool sync, rf_seg_recovery *rep, rf_err *err);

/* File name of segment `seq` created at wall time `created_ns`:
 * "seg-<seq, 10 digits>-<created ms since epoch, 13 digits>.rfs", so that
 * names sort in stream order. Returns 0 or -ENAMETOOLONG. */
int rf_seg_name(char *buf, size_t len, uint64_t seq, int64_t created_ns);
/* Parses a segment file name; false when it is not one. */
bool rf_seg_name_parse(const char *name, uint64_t *seq);

/* A store's shard folder is "shard-" and its index in decimal digits only
 * (written "shard-%02u"): the one rule by which the store opens shards and
 * queries find them, so a copy such as "shard-00.bak" is neither. False when
 * the name is not one (or the index passes UINT32_MAX). */
bool rf_seg_shard_dir_parse(const char *name, uint32_t *shard);

/* Calls fn for every segment file of every shard folder of store directory
 * `dir` (the names rf_seg_shard_dir_parse and rf_seg_name_parse accept), in
 * directory order; a folder that cannot be opened, or a path longer than
 * PATH_MAX, is skipped. fn returns 0 to go on; anything else stops the walk
 * and is returned. Returns 0, fn's value, or -errno (err set) when dir cannot
 * be opened. */
typedef int (*rf_seg_walk_fn)(void *ctx, uint32_t shard, uint64_t seq, const char *path);
int rf_seg_store_walk(const char *dir, rf_seg_walk_fn fn, void *ctx, rf_err *err);

/* Writes all n bytes at off (retrying short writes and EINTR); 0 or -errno. */
int rf_segment_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off);

#endif
