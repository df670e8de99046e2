/* libFuzzer target: rf_parse_collectd, one datagram per input (see
 * fuzz_parse_common.h for the checks), with an auth file of one user
 * (alice: pw; the corpus has datagrams signed and encrypted with it) at the
 * security level the input's length picks (none, sign, encrypt), so the
 * signed, encrypted and refused paths all run. */
#include "tests/fuzz/fuzz_parse_common.h"

#include <unistd.h>

static rf_collectd_auth *levels[3];

static void auth_init(void)
{
    char path[] = "/tmp/rf-fuzz-collectd-auth-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "alice: pw\nbob: other\n";
    if (fd < 0 || write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1))
        abort();
    close(fd);
    for (int i = 0; i < 3; i++)
        if (!(levels[i] = rf_collectd_auth_new(NULL)) ||
            rf_collectd_auth_load(levels[i], (enum rf_collectd_security)i, path, NULL) < 0)
            abort();
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!levels[0])
        auth_init();
    fuzz_collectd_auth = levels[size % 3];
    return fuzz_parse_twice(rf_parse_collectd, data, size);
}
