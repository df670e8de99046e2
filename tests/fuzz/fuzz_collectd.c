/* libFuzzer target: rf_parse_collectd, one datagram per input (see
 * fuzz_parse_common.h for the checks). */
#include "tests/fuzz/fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_parse_twice(rf_parse_collectd, data, size);
}
