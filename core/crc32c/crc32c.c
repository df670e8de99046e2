/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every
 * segment record. Two paths with identical results: the SSE4.2 crc32
 * instruction (8 bytes per instruction, ~10x the table) when the CPU has it,
 * checked once at load time, and slicing-by-8 tables otherwise. No Debian
 * library ships CRC32C for C (zlib's crc32 is the other polynomial). */
#include "core/crc32c/crc32c.h"

#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

static uint32_t crc_table[8][256];
static uint32_t (*crc_impl)(uint32_t, const uint8_t *, size_t);
static bool crc_hw;

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* c is the running (inverted) register. */
static uint32_t crc_sw_raw(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
            crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
            crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
            crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw_raw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

/* Runs before main (and before any thread), so crc_impl is set once and only
 * read afterwards: no synchronisation needed. */
__attribute__((constructor)) static void crc_init(void)
{
    crc_table_init();
    crc_impl = crc_sw_raw;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        crc_impl = crc_hw_raw;
        crc_hw = true;
    }
#endif
}

uint32_t rf_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_impl(~crc, buf, len);
}

uint32_t rf_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    return ~crc_sw_raw(~crc, buf, len);
}

bool rf_crc32c_hw_available(void)
{
    return crc_hw;
}
