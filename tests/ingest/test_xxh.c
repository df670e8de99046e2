/* XXH3 for the tests' expected values, independent of the parser's code path. */
#include <stddef.h>
#include <stdint.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

uint64_t rf_test_xxh3(const char *s, size_t n);
uint64_t rf_test_xxh3(const char *s, size_t n)
{
    return XXH3_64bits(s, n);
}
