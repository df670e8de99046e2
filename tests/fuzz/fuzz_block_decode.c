/* libFuzzer target for rf_block_decode: arbitrary bytes must decode to
 * -EBADMSG or to points, never crash or read out of bounds; points that do
 * decode must survive encode -> decode unchanged (the round-trip contract).
 *
 * Built by tests/fuzz/meson.build with -Dfuzz=true; run with scripts/fuzz.sh.
 * Seed corpus: any blocks rf_block_encode produced (the tests' blocks will do). */
#include "storage/encode/encode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rf_block_codec *codec;
    static int64_t ts[RF_BLOCK_MAX_POINTS], ts2[RF_BLOCK_MAX_POINTS];
    static uint64_t v[RF_BLOCK_MAX_POINTS], v2[RF_BLOCK_MAX_POINTS];
    static uint8_t *buf;
    if (!codec) {
        codec = rf_block_codec_new(1);
        buf = malloc(rf_block_encode_bound(RF_BLOCK_MAX_POINTS));
        if (!codec || !buf)
            abort();
    }
    /* an exact-size copy, so that any read past the end is an ASan report */
    uint8_t *in = malloc(size ? size : 1);
    if (!in)
        abort();
    memcpy(in, data, size);

    uint32_t n_peek = 0;
    uint8_t vt = 0;
    int peeked = rf_block_peek(in, size, &n_peek, &vt);
    long n = rf_block_decode(codec, in, size, ts, v, RF_BLOCK_MAX_POINTS);
    free(in);
    if (n == -EBADMSG)
        return 0;
    if (n <= 0 || peeked != 0 || (uint32_t)n != n_peek)
        abort();
    for (long i = 1; i < n; i++)
        if (ts[i] < ts[i - 1])
            abort();

    long len =
        rf_block_encode(codec, vt, ts, v, (uint32_t)n, buf, rf_block_encode_bound((uint32_t)n));
    if (len <= 0)
        abort();
    if (rf_block_decode(codec, buf, (size_t)len, ts2, v2, (uint32_t)n) != n ||
        memcmp(ts, ts2, (size_t)n * sizeof *ts) || memcmp(v, v2, (size_t)n * sizeof *v))
        abort();
    return 0;
}
