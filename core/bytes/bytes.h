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
 */
#ifndef RF_CORE_BYTES_H
#define RF_CORE_BYTES_H

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

#endif
