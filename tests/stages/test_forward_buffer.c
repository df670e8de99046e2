/* stages/forward without a receiver: the remote_write encoding (decoded
 * back with the receiver's protobuf code), the disk buffer's recovery from
 * a damaged record, a torn tail and an unreadable file, and the memory
 * buffer's bound with its drops counted. The receiver is a closed loopback
 * port, so every request fails and everything stays buffered. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <math.h>
#include <snappy-c.h>
#include <zlib.h>

#include "ingest/http/prom_remote.pb-c.h"
#include "stages/forward/forward.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_encode_prom(void **state)
{
    (void)state;
    const char *lp = "cpu,host=a,zone=b usage=1.5 1000000000\n"
                     "m\\ x,t\\=k=v\\,1 f=3i,s=\"str, x\",b=true 2000000000\n"
                     "9bad-name,x=y 1f=2 3000000\n";
    uint8_t *body = NULL;
    size_t len = 0;
    uint64_t samples = 0, unsupported = 0;
    assert_int_equal(rf_fwd_encode_prom(lp, strlen(lp), &body, &len, &samples, &unsupported), 0);
    assert_int_equal(samples, 4);
    assert_int_equal(unsupported, 1);
    size_t raw_len = 0;
    assert_int_equal(snappy_uncompressed_length((const char *)body, len, &raw_len), SNAPPY_OK);
    char *raw = malloc(raw_len);
    assert_int_equal(snappy_uncompress((const char *)body, len, raw, &raw_len), SNAPPY_OK);
    RfProm__WriteRequest *wr = rf_prom__write_request__unpack(NULL, raw_len, (uint8_t *)raw);
    assert_non_null(wr);
    assert_int_equal(wr->n_timeseries, 4);
    RfProm__TimeSeries *t = wr->timeseries[0];
    assert_int_equal(t->n_labels, 3);
    assert_string_equal(t->labels[0]->name, "__name__");
    assert_string_equal(t->labels[0]->value, "cpu_usage");
    assert_string_equal(t->labels[1]->name, "host");
    assert_string_equal(t->labels[2]->value, "b");
    assert_int_equal(t->samples[0]->timestamp, 1000);
    assert_true(t->samples[0]->value == 1.5);
    t = wr->timeseries[1];
    assert_string_equal(t->labels[0]->value, "m_x_f"); /* escaped space, sanitised */
    assert_string_equal(t->labels[1]->name, "t_k");
    assert_string_equal(t->labels[1]->value, "v,1"); /* values keep their text */
    assert_true(t->samples[0]->value == 3);
    assert_true(wr->timeseries[2]->samples[0]->value == 1); /* b=true */
    t = wr->timeseries[3];
    assert_string_equal(t->labels[0]->value, "_9bad_name_1f");
    assert_int_equal(t->samples[0]->timestamp, 3);
    rf_prom__write_request__free_unpacked(wr, NULL);
    free(raw);
    free(body);
}

/* The body's protobuf, unsnappied (malloc'd) and decoded. */
static RfProm__WriteRequest *decode_body(const uint8_t *body, size_t len, uint8_t **raw,
                                         size_t *raw_len)
{
    assert_int_equal(snappy_uncompressed_length((const char *)body, len, raw_len), SNAPPY_OK);
    *raw = malloc(*raw_len ? *raw_len : 1);
    assert_non_null(*raw);
    assert_int_equal(snappy_uncompress((const char *)body, len, (char *)*raw, raw_len), SNAPPY_OK);
    RfProm__WriteRequest *wr = rf_prom__write_request__unpack(NULL, *raw_len, *raw);
    assert_non_null(wr);
    return wr;
}

/* The hand-written encoder writes exactly what protobuf-c's packer writes
 * for the message it decodes to (proto3 zero values left out, labels in
 * order), over lines that reach every branch: tags sorting before and
 * after "__name__", unsorted tags, escapes, zero/negative-zero values and
 * timestamps, negative timestamps, integers beyond 2^53, exponents, long
 * mantissas, booleans, a string field, a line without fields. Values
 * parsed on the fast path equal strtod's, checked on random decimals. One
 * body is reused for every request, smaller after larger. */
static void test_encode_prom_matches_protobuf_c(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "cpu,host=a,zone=b usage=1.5 1000000000\n",
        "m,A=1,Z=2,_a=3,a=4,zz=5 v=2 5000000\n",
        "m,z=1,b=2,a=3 v=-0.0,w=0,x=-0 0\n",
        "m,t=x v=0.1,w=123456789012345,x=1234567890123456,y=9007199254740993i -5000000\n",
        "m,t=x v=1e300,w=-2.5e-7,x=0.000000000000000000001,y=18446744073709551615u\n",
        "m,t=x v=12.34567890123456789,w=.5,x=5.,y=+3 7\n",
        "m,t=x a=true,b=false,c=t,d=F,s=\"str, x\" 9000000000\n",
        "m\\ x\\,y,t\\=k=v\\,1\\ 2 f\\ g=3i 2000000000\n",
        "9bad-name,1x=y 1f=2 3000000\n",
        "nofields\n",
        "m,empty=e v=1\n",
    };
    rf_fwd_body *b = rf_fwd_body_new();
    assert_non_null(b);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            /* Round 0: each line alone; round 1: everything up to it. */
            char text[4096] = "";
            for (size_t k = round ? 0 : i; k <= i; k++)
                strcat(text, lines[k]);
            uint64_t samples = 0, unsupported = 0;
            assert_int_equal(rf_fwd_body_prom(b, text, strlen(text), &samples, &unsupported), 0);
            size_t len = 0, raw_len = 0;
            const uint8_t *body = rf_fwd_body_data(b, &len);
            uint8_t *raw = NULL;
            RfProm__WriteRequest *wr = decode_body(body, len, &raw, &raw_len);
            assert_int_equal(wr->n_timeseries, samples);
            size_t packed_len = rf_prom__write_request__get_packed_size(wr);
            uint8_t *packed = malloc(packed_len ? packed_len : 1);
            assert_non_null(packed);
            rf_prom__write_request__pack(wr, packed);
            assert_int_equal(packed_len, raw_len);
            assert_memory_equal(packed, raw, raw_len);
            for (size_t t = 0; t < wr->n_timeseries; t++)
                for (size_t l = 1; l < wr->timeseries[t]->n_labels; l++)
                    assert_true(strcmp(wr->timeseries[t]->labels[l - 1]->name,
                                       wr->timeseries[t]->labels[l]->name) < 0);
            free(packed);
            free(raw);
            rf_prom__write_request__free_unpacked(wr, NULL);
        }
    }
    /* Specific values the branches above must have produced. */
    const char *one = lines[3];
    uint64_t samples = 0, unsupported = 0;
    assert_int_equal(rf_fwd_body_prom(b, one, strlen(one), &samples, &unsupported), 0);
    size_t len = 0, raw_len = 0;
    uint8_t *raw = NULL;
    const uint8_t *body = rf_fwd_body_data(b, &len);
    RfProm__WriteRequest *wr = decode_body(body, len, &raw, &raw_len);
    assert_int_equal(wr->n_timeseries, 4);
    assert_true(wr->timeseries[0]->samples[0]->value == 0.1);
    assert_true(wr->timeseries[1]->samples[0]->value == 123456789012345.0);
    assert_true(wr->timeseries[2]->samples[0]->value == 1234567890123456.0);
    assert_true(wr->timeseries[3]->samples[0]->value == strtod("9007199254740993", NULL));
    assert_int_equal(wr->timeseries[0]->samples[0]->timestamp, -5);
    rf_prom__write_request__free_unpacked(wr, NULL);
    free(raw);
    /* Timestamps: 19 digits (today's ns), and beyond int64 (strtoll's
     * saturation), negative too. */
    static const struct {
        const char *line;
        int64_t ms;
    } stamps[] = {{"m v=1 1796155462123456789\n", 1796155462123},
                  {"m v=1 -1796155462123456789\n", -1796155462123},
                  {"m v=1 9999999999999999999\n", INT64_MAX / 1000000},
                  {"m v=1 -99999999999999999999\n", INT64_MIN / 1000000}};
    for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++) {
        assert_int_equal(
            rf_fwd_body_prom(b, stamps[i].line, strlen(stamps[i].line), &samples, &unsupported), 0);
        body = rf_fwd_body_data(b, &len);
        wr = decode_body(body, len, &raw, &raw_len);
        assert_int_equal(wr->timeseries[0]->samples[0]->timestamp, stamps[i].ms);
        rf_prom__write_request__free_unpacked(wr, NULL);
        free(raw);
    }
    /* Random decimals as the sink prints them: the fast path reads what
     * strtod reads, bit for bit. */
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        char line[128], num[40];
        int digits = 1 + (int)(x % 17);
        double v = (double)(int64_t)(x >> 11) / pow(10.0, (double)(x % 23));
        snprintf(num, sizeof(num), "%.*g", digits, (x & 1) ? -v : v);
        snprintf(line, sizeof(line), "m,t=x v=%s 1000000\n", num);
        samples = 0;
        assert_int_equal(rf_fwd_body_prom(b, line, strlen(line), &samples, &unsupported), 0);
        assert_int_equal(samples, 1);
        body = rf_fwd_body_data(b, &len);
        wr = decode_body(body, len, &raw, &raw_len);
        double want = strtod(num, NULL);
        double got = wr->timeseries[0]->n_samples ? wr->timeseries[0]->samples[0]->value : 0;
        if (want == 0)
            assert_true(got == 0); /* zero is left out, -0 with it (as protobuf-c) */
        else
            assert_memory_equal(&got, &want, sizeof(got));
        rf_prom__write_request__free_unpacked(wr, NULL);
        free(raw);
    }
    rf_fwd_body_free(b);
}

/* gzip into a reused body: what it writes inflates back to the input, at
 * two levels in turn. */
static void test_body_gzip(void **state)
{
    (void)state;
    rf_fwd_body *b = rf_fwd_body_new();
    assert_non_null(b);
    static char in[200000];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)('a' + (i * 7 + i / 13) % 26);
    for (int round = 0; round < 4; round++) {
        size_t n = round % 2 ? sizeof(in) : 1000;
        assert_int_equal(rf_fwd_body_gzip(b, in, n, round < 2 ? 1 : 6), 0);
        size_t len = 0;
        const uint8_t *z = rf_fwd_body_data(b, &len);
        static char back[sizeof(in) + 1];
        z_stream s = {0};
        assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
        s.next_in = (Bytef *)z;
        s.avail_in = (uInt)len;
        s.next_out = (Bytef *)back;
        s.avail_out = sizeof(back);
        assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
        assert_int_equal(s.total_out, n);
        assert_memory_equal(back, in, n);
        inflateEnd(&s);
    }
    rf_fwd_body_free(b);
}

static rf_fwd_config down_config(enum rf_fwd_buffer_type type, const char *path)
{
    rf_fwd_config c = {0};
    c.protocol = RF_FWD_INFLUX_HTTP;
    c.url = "http://127.0.0.1:1/write"; /* nobody listens on port 1 */
    c.backoff_base_ns = 1000000000;
    c.backoff_max_ns = 1000000000;
    c.buffer = type;
    c.buffer_path = path;
    c.shutdown_grace_ns = 50000000;
    c.timeout_ns = 500000000;
    return c;
}

static rf_fwd_stats wait_queued(rf_fwd *f, uint64_t want)
{
    rf_fwd_stats st;
    for (int i = 0; i < 400; i++) {
        rf_fwd_stats_read(f, &st);
        if (st.queued_events >= want)
            break;
        sleep_ms(10);
    }
    return st;
}

/* Hands `lines` lines "c<chunk> v=<i>" over as one chunk; waits for a free one. */
static void submit_chunk(rf_fwd *f, int chunk, int lines)
{
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < lines; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "c%d v=%d %d\n", chunk, i, i + 1);
    uint64_t taken = 0;
    for (int tries = 0; tries < 500; tries++) {
        long k = rf_fwd_submit(f, buf, (uint32_t)n, &taken);
        if (k > 0) {
            assert_int_equal(k, (long)n);
            return;
        }
        sleep_ms(5);
    }
    fail_msg("no free chunk");
}

static char *only_segment(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    char *found = NULL;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "seg-", 4) && strstr(de->d_name, ".rfs") &&
            !strstr(de->d_name, "corrupt")) {
            assert_null(found);
            found = malloc(strlen(dir) + strlen(de->d_name) + 2);
            sprintf(found, "%s/%s", dir, de->d_name);
        }
    closedir(d);
    assert_non_null(found);
    return found;
}

static void test_disk_recovery(void **state)
{
    (void)state;
    char dir[] = "/tmp/rf-fwdbuf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    rf_fwd_config c = down_config(RF_FWD_BUFFER_DISK, dir);
    rf_fwd *f = NULL;
    rf_err err = {0};
    assert_int_equal(rf_fwd_new(&c, "t", &f, &err), 0);
    for (int k = 0; k < 5; k++)
        submit_chunk(f, k, 10);
    assert_int_equal(wait_queued(f, 50).queued_events, 50);
    rf_fwd_free(f);

    /* Damage chunk 2's record, cut a record short at the end, and add a
     * file whose header is garbage. */
    char *seg = only_segment(dir);
    int fd = open(seg, O_RDWR);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    char *all = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, all, (size_t)st.st_size, 0), st.st_size);
    char *hit = memmem(all, (size_t)st.st_size, "c2 v=5", 6);
    assert_non_null(hit);
    assert_int_equal(pwrite(fd, "X", 1, hit - all), 1);
    /* A torn tail: the first 60 bytes of chunk 0's record again. */
    char *rec0 = memmem(all, (size_t)st.st_size, "c0 v=0", 6) - 40;
    assert_int_equal(pwrite(fd, rec0, 60, st.st_size), 60);
    close(fd);
    free(all);
    char junk[600];
    snprintf(junk, sizeof(junk), "%s/seg-0000000099-0000000000000.rfs", dir);
    fd = open(junk, O_WRONLY | O_CREAT, 0644);
    assert_int_equal(write(fd, "not a segment header at all, not 64 bytes", 41), 41);
    close(fd);

    for (int round = 0; round < 2; round++) {
        /* Twice: recovery is repeatable, never a crash loop. */
        assert_int_equal(rf_fwd_new(&c, "t", &f, &err), 0);
        rf_fwd_stats s = wait_queued(f, 40);
        assert_int_equal(s.queued_events, 40);
        assert_int_equal(s.recovered_events, 40);
        if (round == 0) {
            assert_true(s.dropped[RF_FWD_DROP_CORRUPT] >= 3); /* record, tail, junk file */
            assert_true(s.corrupt_bytes >= 60 + 41);
        }
        rf_fwd_free(f);
    }
    snprintf(junk, sizeof(junk), "%s/seg-0000000099-0000000000000.rfs.corrupt", dir);
    assert_int_equal(access(junk, F_OK), 0);
    free(seg);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Fills buf (a chunk's size) with whole lines of `measurement`; returns
 * the bytes, the line count in *lines. */
static size_t fill_chunk(char *buf, const char *measurement, int *lines)
{
    size_t n = 0;
    *lines = 0;
    while (n + 80 < RF_FWD_CHUNK_BYTES) {
        n += (size_t)snprintf(buf + n, RF_FWD_CHUNK_BYTES - n, "%s,host=h%05d value=%d 1\n",
                              measurement, *lines, *lines);
        (*lines)++;
    }
    return n;
}

/* Submits 40 such chunks (waiting for free ones) and returns once every
 * line is either queued or counted under `reason`. */
static rf_fwd_stats submit_40(rf_fwd *f, const char *big, size_t n, int lines, int reason)
{
    uint64_t taken = 0;
    int sent = 0;
    for (int tries = 0; sent < 40 && tries < 4000; tries++) {
        if (rf_fwd_submit(f, big, (uint32_t)n, &taken) > 0)
            sent++;
        else
            sleep_ms(2);
    }
    assert_int_equal(sent, 40);
    rf_fwd_stats s;
    for (int i = 0; i < 400; i++) {
        rf_fwd_stats_read(f, &s);
        if (s.queued_events + s.dropped[reason] == (uint64_t)sent * lines)
            break;
        sleep_ms(10);
    }
    /* Every line is either held or counted. */
    assert_int_equal(s.queued_events + s.dropped[reason], (uint64_t)sent * lines);
    assert_true(s.dropped[reason] > 0);
    return s;
}

static void test_memory_bound(void **state)
{
    (void)state;
    rf_fwd_config c = down_config(RF_FWD_BUFFER_MEMORY, NULL);
    c.buffer_max_bytes = 1 << 20;
    rf_fwd *f = NULL;
    rf_err err = {0};
    assert_int_equal(rf_fwd_new(&c, "m", &f, &err), 0);
    /* 40 chunks of ~64 KB into 1 MiB. */
    static char big[RF_FWD_CHUNK_BYTES];
    int lines;
    size_t n = fill_chunk(big, "padding_measurement", &lines);
    rf_fwd_stats s = submit_40(f, big, n, lines, RF_FWD_DROP_BUFFER_FULL);
    assert_true(s.queued_bytes <= c.buffer_max_bytes);
    rf_fwd_free(f);
}

static char g_mnt[64];

static int unmount_tmpfs(void **state)
{
    (void)state;
    if (g_mnt[0]) {
        umount2(g_mnt, MNT_DETACH);
        rmdir(g_mnt);
    }
    g_mnt[0] = '\0';
    return 0;
}

/* The disk fills up while buffering: appends that fail are cut off and
 * counted (io_error), what was written stays queued; once there is room
 * again, appends go on. A 320 KiB tmpfs; skipped where this process cannot
 * mount one. */
static void test_disk_full(void **state)
{
    (void)state;
    snprintf(g_mnt, sizeof(g_mnt), "/tmp/rf-fwdfull-XXXXXX");
    assert_non_null(mkdtemp(g_mnt));
    if (mount("tmpfs", g_mnt, "tmpfs", 0, "size=320k") != 0) {
        fprintf(stderr, "cannot mount a tmpfs (%s): test skipped\n", strerror(errno));
        rmdir(g_mnt);
        g_mnt[0] = '\0';
        skip();
    }
    rf_fwd_config c = down_config(RF_FWD_BUFFER_DISK, g_mnt);
    c.segment_bytes = 128 * 1024;
    rf_fwd *f = NULL;
    rf_err err = {0};
    assert_int_equal(rf_fwd_new(&c, "full", &f, &err), 0);
    /* 40 chunks of ~64 KB: about 2.5 MB into 320 KiB. */
    static char big[RF_FWD_CHUNK_BYTES];
    int lines;
    size_t n = fill_chunk(big, "full", &lines);
    rf_fwd_stats s = submit_40(f, big, n, lines, RF_FWD_DROP_IO_ERROR);
    assert_true(s.queued_events > 0);
    /* Room again: the next chunk is kept. */
    assert_int_equal(mount("tmpfs", g_mnt, "tmpfs", MS_REMOUNT, "size=16m"), 0);
    uint64_t before = s.queued_events, taken = 0;
    while (rf_fwd_submit(f, big, (uint32_t)n, &taken) <= 0)
        sleep_ms(2);
    for (int i = 0; i < 400 && s.queued_events < before + (uint64_t)lines; i++) {
        sleep_ms(10);
        rf_fwd_stats_read(f, &s);
    }
    assert_int_equal(s.queued_events, before + (uint64_t)lines);
    rf_fwd_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_prom),
        cmocka_unit_test(test_encode_prom_matches_protobuf_c),
        cmocka_unit_test(test_body_gzip),
        cmocka_unit_test(test_disk_recovery),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test_teardown(test_disk_full, unmount_tmpfs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
