/* CRC32C (Castagnoli), with SSE4.2 when the CPU has it: the one checksum of
 * the project (segment records, recordings, the disk formats). Pure
 * functions, any thread. */
#ifndef RF_CORE_CRC32C_H
#define RF_CORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC32C of buf, continuing from `crc` (0 to start): rf_crc32c(rf_crc32c(0,a),b)
 * is the CRC of a then b. */
uint32_t rf_crc32c(uint32_t crc, const void *buf, size_t len);
/* The table-driven path, always available (tests compare both paths). */
uint32_t rf_crc32c_sw(uint32_t crc, const void *buf, size_t len);
/* True when rf_crc32c uses the SSE4.2 instruction. */
bool rf_crc32c_hw_available(void);

#endif
