/* libFuzzer target for the segment reader (storage/segment/reader.c): any
 * file must open to an index, or be refused with an error, and every series
 * key and block the index then points at must be served checked or refused,
 * never read out of bounds.
 *
 * The record CRCs would make nearly every mutation a refused record, so the
 * harness puts the checksums right before it reads: the first input byte
 * picks the header's format version (1..3) and whether to reseal; with
 * resealing, every record the walk from offset 64 finds (magic, a length
 * that fits) gets its CRC recomputed, and a trailer at the end its own. That
 * lets the fuzzer reach the footer and dictionary parsers (both layouts),
 * not only the checksum comparison.
 *
 * Built by tests/fuzz/meson.build with -Dfuzz=true; run with scripts/fuzz.sh.
 * Seed corpus: tests/fuzz/corpus/segment (segments of both formats, the
 * first byte added as described). */
#include "storage/segment/segment.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/bytes/bytes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reseal(uint8_t *f, size_t size)
{
    size_t pos = RF_SEG_HEADER_SIZE;
    while (pos + RF_SEG_REC_HDR_SIZE + RF_SEG_REC_CRC_SIZE <= size &&
           rf_read_le32(f + pos) == RF_SEG_REC_MAGIC) {
        uint32_t plen = rf_read_le32(f + pos + 8);
        if (plen > size - pos - RF_SEG_REC_HDR_SIZE - RF_SEG_REC_CRC_SIZE)
            break;
        rf_seg_rec_seal(f + pos);
        pos += rf_seg_rec_size(plen);
    }
    if (size >= RF_SEG_HEADER_SIZE + RF_SEG_TRAILER_SIZE) {
        uint8_t *t = f + size - RF_SEG_TRAILER_SIZE;
        if (rf_read_le32(t + 8) == RF_SEG_TRAILER_MAGIC)
            rf_write_le32(t + 12, rf_crc32c(0, t, 12));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof(path), "/tmp/rf-fuzz-segment-%d.rfs", (int)getpid());
    if (size < 1)
        return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    size_t fsize = RF_SEG_HEADER_SIZE + size;
    uint8_t *f = malloc(fsize);
    if (!f)
        abort();
    rf_seg_header h = {.version = 1u + (mode & 3u) % 3u, .shard = 0, .seq = 1, .created_ns = 0};
    rf_seg_header_encode(&h, f);
    memcpy(f + RF_SEG_HEADER_SIZE, data, size);
    if (mode & 4u)
        reseal(f, fsize);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, f, fsize) != (ssize_t)fsize)
        abort();
    close(fd);
    free(f);

    for (unsigned flags = 0; flags <= RF_SEG_OPEN_FORCE_SCAN; flags += RF_SEG_OPEN_FORCE_SCAN) {
        rf_seg_reader r;
        rf_err err;
        if (rf_seg_reader_open(path, flags, &r, &err) < 0)
            continue;
        for (size_t i = 0; i < r.idx.n_series; i++) {
            const rf_seg_series_ref *s = &r.idx.series[i];
            uint32_t len, foff;
            uint16_t mlen;
            const char *key = rf_seg_reader_key(&r, s, &len, &mlen, &foff);
            if (key && (mlen > len || foff > len))
                abort();
            volatile char sink = 0;
            for (uint32_t k = 0; key && k < len; k++)
                sink ^= key[k];
            if (rf_seg_reader_find(&r, s->series_id) == NULL)
                abort();
            if ((uint64_t)s->first_block + s->n_blocks > r.idx.n_blocks)
                abort();
            for (uint32_t b = 0; b < s->n_blocks; b++) {
                const uint8_t *payload;
                rf_seg_rec rh;
                long n = rf_seg_reader_block(&r, &r.idx.blocks[s->first_block + b], &payload, &rh);
                for (long k = 0; k < n; k++)
                    sink ^= (char)payload[k];
            }
        }
        rf_seg_reader_close(&r);
    }
    return 0;
}
