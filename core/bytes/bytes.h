/* Byte order: fixed-width integers read from and written to byte buffers at
 * any alignment, in a stated byte order.
 *
 * Contract
 *   - Every on-disk or on-wire format of ringflow (segments, recordings, the
 *     aggregate partials, the daemon's tap ring) is little-endian; the calls
 *     here are the one way its integers are read and written. Network headers
 *     (UDP, IPv4, pcap in its swapped form) are big-endian: rf_read_be16/32.
 *   - `p` may be unaligned and may alias anything: the access is a memcpy,
 *     which the compiler turns into one load or store on a little-endian host
 *     and a load plus a byte swap on a big-endian one.
 *   - No bounds: the caller has checked that 2, 4 or 8 bytes are there.
 *     Except the LEB128 varints (unsigned, 7 bits a byte, low group first,
 *     at most 10 bytes), which block encodings and segment footers share:
 *     rf_varint_get is bounded by `end` and returns -EBADMSG when the varint
 *     is cut short or longer than 64 bits.
 */
#ifndef RF_CORE_BYTES_H
#define RF_CORE_BYTES_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define RF_BYTES_HOST_LE 0
#else
#define RF_BYTES_HOST_LE 1
#endif

static inline uint16_t rf_bytes_to_le16(uint16_t v)
{
    return RF_BYTES_HOST_LE ? v : __builtin_bswap16(v);
}
static inline uint32_t rf_bytes_to_le32(uint32_t v)
{
    return RF_BYTES_HOST_LE ? v : __builtin_bswap32(v);
}
static inline uint64_t rf_bytes_to_le64(uint64_t v)
{
    return RF_BYTES_HOST_LE ? v : __builtin_bswap64(v);
}

static inline uint16_t rf_read_le16(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return rf_bytes_to_le16(v);
}

static inline uint32_t rf_read_le32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return rf_bytes_to_le32(v);
}

static inline uint64_t rf_read_le64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return rf_bytes_to_le64(v);
}

static inline void rf_write_le16(void *p, uint16_t v)
{
    v = rf_bytes_to_le16(v);
    memcpy(p, &v, 2);
}

static inline void rf_write_le32(void *p, uint32_t v)
{
    v = rf_bytes_to_le32(v);
    memcpy(p, &v, 4);
}

static inline void rf_write_le64(void *p, uint64_t v)
{
    v = rf_bytes_to_le64(v);
    memcpy(p, &v, 8);
}

/* Big-endian (network order) reads, for packet headers and swapped pcap files. */
static inline uint16_t rf_read_be16(const void *p)
{
    return __builtin_bswap16(rf_read_le16(p));
}

static inline uint32_t rf_read_be32(const void *p)
{
    return __builtin_bswap32(rf_read_le32(p));
}

/* LEB128 varints. */
static inline uint8_t *rf_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline unsigned rf_varint_len(uint64_t v)
{
    unsigned n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Reads a varint at *p (< end); advances *p. -EBADMSG when truncated or longer
 * than 64 bits. */
static inline int rf_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    const uint8_t *q = *p;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (q >= end)
            return -EBADMSG;
        uint8_t b = *q++;
        if (shift == 63 && b > 1)
            return -EBADMSG;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return 0;
        }
    }
    return -EBADMSG;
}

#endif
