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

/* Reads the header of an encoded block: number of points and value type. */
int rf_block_peek(const uint8_t *in, size_t len, uint32_t *n_points, uint8_t *value_type);

/* Decodes into ts/value_bits, each with room for `room` points. Returns the
 * number of points, or -EBADMSG (corrupt) / -ENOSPC (room too small). */
long rf_block_decode(rf_block_codec *codec, const uint8_t *in, size_t len, int64_t *ts,
                     uint64_t *value_bits, uint32_t room);

#endif
