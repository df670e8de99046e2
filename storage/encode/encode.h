/* Block encoders: turn the points of one series over a time range into a
 * compact byte string and back, bit-for-bit.
 *
 * A block holds n points as two columns: timestamps (int64 ns since epoch,
 * non-decreasing) and values (64 raw bits each, read according to the block's
 * value type: IEEE-754 doubles, int64, uint64 or bool). The encoder looks at
 * the data and picks, per column, the encoding that fits best:
 *
 *   timestamps  delta-of-delta with zigzag and variable bit widths (a regular
 *               interval costs almost nothing per point)
 *   doubles     decimal-aware: values with at most D decimals (D <= 9) are
 *               scaled to integers, then delta + zigzag + bit-packing; otherwise
 *               Gorilla XOR; NaN payloads, infinities and -0.0 survive either way
 *   integers    delta (or delta-of-delta for counters) + zigzag + bit-packing
 *   bools       bit-packed
 *
 * and then compresses the whole block with zstd when that makes it smaller.
 * The chosen encodings are recorded in the block header that this module
 * writes, so decoding needs only the bytes.
 *
 * Contract
 *   - rf_block_encode never reads beyond n points and never writes beyond cap
 *     bytes; it returns the encoded size, or a negative errno (-ENOSPC when cap
 *     is too small: rf_block_encode_bound(n) is always enough, -EINVAL on bad
 *     arguments such as n == 0, n > RF_BLOCK_MAX_POINTS or decreasing times).
 *   - rf_block_decode validates everything it reads: truncated or corrupt input
 *     returns -EBADMSG, never reads out of bounds, never crashes. (Integrity is
 *     the segment's CRC32C; this is the second line of defence.)
 *   - decode(encode(x)) is the identity on the points for every x encode
 *     accepts: the points come back bit for bit. (The converse does not hold:
 *     encode may pick another encoding than the bytes a decode read.)
 *   - No allocation per call beyond the caller's rf_block_codec scratch space.
 */
#ifndef RF_STORAGE_ENCODE_H
#define RF_STORAGE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#define RF_BLOCK_MAX_POINTS 65536u

/* Scratch state reused across calls on one thread (zstd contexts, buffers). */
typedef struct rf_block_codec rf_block_codec;

/* zstd level: 0 disables compression; 1..19 as zstd. */
rf_block_codec *rf_block_codec_new(int zstd_level);
void rf_block_codec_free(rf_block_codec *codec);

/* Upper bound of the encoded size of n points. */
size_t rf_block_encode_bound(uint32_t n);

/* value_type is enum rf_value_type (core/event/event.h). */
long rf_block_encode(rf_block_codec *codec, uint8_t value_type, const int64_t *ts,
                     const uint64_t *value_bits, uint32_t n, uint8_t *out, size_t cap);

/* Strings (block version 2, value type RF_VALUE_STRING): the texts of the
 * points, at most RF_BLOCK_TEXT_BYTES in all (a writer cuts its block before
 * a text would pass that; one text alone is at most 64 KiB, so it fits).
 * The value column is the n lengths as an integer column, then the texts
 * back to back; the zstd pass over the body is what shares repeated texts
 * (docs/FORMAT.md). */
#define RF_BLOCK_TEXT_BYTES 65536u
typedef struct rf_block_text {
    const char *p;
    uint32_t len;
} rf_block_text;
/* Upper bound of an encoded block of n texts. */
size_t rf_block_encode_bound_text(uint32_t n);
/* As rf_block_encode for texts; -EINVAL also when they pass RF_BLOCK_TEXT_BYTES. */
long rf_block_encode_text(rf_block_codec *codec, const int64_t *ts, const rf_block_text *texts,
                          uint32_t n, uint8_t *out, size_t cap);
/* After rf_block_decode of a block of texts, value_bits[i] locates point i's
 * text; this returns it (not NUL-terminated) and its length. Valid until the
 * codec decodes again, and while the decoded input bytes are. NULL when the
 * last block decoded held no texts (numbers, or a version 1 string block,
 * whose words are 64-bit hashes of the texts). */
const char *rf_block_text_of(const rf_block_codec *codec, uint64_t value_bits, uint32_t *len);

/* Reads the header of an encoded block: number of points and value type. */
int rf_block_peek(const uint8_t *in, size_t len, uint32_t *n_points, uint8_t *value_type);

/* Decodes into ts/value_bits, each with room for `room` points. Returns the
 * number of points, or -EBADMSG (corrupt) / -ENOSPC (room too small). */
long rf_block_decode(rf_block_codec *codec, const uint8_t *in, size_t len, int64_t *ts,
                     uint64_t *value_bits, uint32_t room);

#endif
