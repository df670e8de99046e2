/* TCP line framing (ingest/listen/frame.c): rf_linebuf_feed turning reads of
 * a byte stream into whole lines, as a TCP listener does for every read
 * before the parser sees the bytes.
 *
 *   parse/frame/linebuf/short/<read bytes>  ~38-byte lines, as `ringflow load` sends
 *   parse/frame/linebuf/wide/<read bytes>   ~300-byte lines (10 tags, 5 fields)
 *
 * A ~1 MiB stream of complete lines is fed in reads of <read bytes> (1448: one
 * Ethernet TCP segment; 16384: the listener's default receive buffer,
 * tcp_buffer_bytes; 65536), so most reads end inside a line and its tail is
 * held and completed by the next read. The emit callback only counts (the
 * parser is parse/...), so this is the framing alone. items/s is reads framed
 * per second of CPU time (ns per read = 1e9 / items/s), bytes/s stream bytes,
 * lines/s lines. The framer looks only at the first line of a read (to
 * complete the held tail) and the last '\n' (memrchr): the lines in between
 * go to the parser as one run without being scanned, so its cost is per read,
 * not per byte, as long as a read is shorter than the line limit. Uses listen_pvt.h (private to
 * ingest/listen, "tests may"): the framer has no public header. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/shim/bench_shim.h"
#include "ingest/listen/listen.h"
#include "ingest/listen/listen_pvt.h"

#define STREAM_BYTES (1u << 20)
#define MAX_LINE 65536u /* the listener's default max_line_bytes */

typedef struct stream {
    char *data;
    size_t len;
    uint64_t lines;
} stream;

typedef struct counts {
    const char *held; /* the linebuf's own buffer */
    uint64_t bytes, runs, over;
    uint64_t completed; /* lines completed from a held tail: emitted without their '\n' */
} counts;

static void count_emit(void *ctx, const char *data, size_t len, uint32_t flags)
{
    counts *c = ctx;
    c->bytes += len;
    c->runs++;
    c->over += (flags & RF_LISTEN_CHUNK_LINE_TOO_LONG) != 0;
    c->completed += data == c->held;
    rf_bench_do_not_optimize(data);
}

static stream *stream_get(int wide)
{
    static stream cache[2];
    stream *s = &cache[wide];
    if (s->data)
        return s;
    s->data = malloc(STREAM_BYTES + 1024);
    if (!s->data)
        return NULL;
    uint64_t x = 88172645463325252ull;
    size_t len = 0;
    uint64_t lines = 0;
    while (len < STREAM_BYTES) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint32_t series = (uint32_t)(x % 1000);
        int n;
        if (!wide)
            n = snprintf(s->data + len, 1024, "load,series=s%u,t1=v%u,t2=v%u f0=%u.%02u\n", series,
                         series % 10, series % 17, (unsigned)(x >> 20) % 10000,
                         (unsigned)(x >> 40) % 100);
        else
            n = snprintf(s->data + len, 1024,
                         "system_metrics,host=server-%05u.prod.example.com,region=us-east-%u,"
                         "az=us-east-1a,datacenter=dc-%02u,rack=rack-%03u,cluster=prod-%u,"
                         "service=api-gateway-%u,env=production,version=v2.%u.3,team=infra "
                         "cpu_user=%u.%06u,cpu_system=%u.%03u,load_avg=%u.%02u,requests=%ui,"
                         "errors=%ui 1796155462%09u\n",
                         series, series % 4, series % 40, series % 500, series % 12, series % 30,
                         series % 20, (unsigned)(x >> 8) % 100, (unsigned)(x >> 16) % 1000000,
                         (unsigned)(x >> 24) % 100, (unsigned)(x >> 32) % 1000,
                         (unsigned)(x >> 40) % 64, (unsigned)(x >> 44) % 100,
                         (unsigned)(x >> 12) % 1000000, (unsigned)(x >> 50) % 10,
                         (unsigned)(x % 1000000000u));
        if (n <= 0 || len + (size_t)n > STREAM_BYTES)
            break;
        len += (size_t)n;
        lines++;
    }
    s->len = len;
    s->lines = lines;
    return s;
}

static void run_linebuf(rf_bench_state *s, int wide)
{
    size_t read_bytes = (size_t)rf_bench_arg(s, 0);
    stream *st = stream_get(wide);
    char *held = malloc(MAX_LINE);
    if (!st || !held) {
        rf_bench_skip_with_error(s, "setup failed");
        free(held);
        return;
    }
    rf_linebuf lb = {.buf = held, .cap = MAX_LINE};
    counts c = {.held = held};
    uint64_t streams = 0;
    while (rf_bench_keep_running(s)) {
        for (size_t off = 0; off < st->len; off += read_bytes) {
            size_t n = st->len - off < read_bytes ? st->len - off : read_bytes;
            rf_linebuf_feed(&lb, st->data + off, n, count_emit, &c);
        }
        streams++;
    }
    /* Every line was complete and whole: nothing may be held or cut, and
     * every byte but the '\n' of each line completed from a tail came out. */
    if (lb.len != 0 || c.over != 0 || c.bytes + c.completed != streams * st->len)
        rf_bench_skip_with_error(s, "framing lost or cut bytes");
    const uint64_t reads_per_stream = (st->len + read_bytes - 1) / read_bytes;
    rf_bench_set_items_processed(s, (int64_t)(streams * reads_per_stream));
    rf_bench_set_bytes_processed(s, (int64_t)(streams * st->len));
    rf_bench_counter(s, "lines/s", (double)(streams * st->lines), true);
    rf_bench_counter(s, "emits/read",
                     streams ? (double)c.runs / (double)(streams * reads_per_stream) : 0, false);
    free(held);
}

static void bm_linebuf_short(rf_bench_state *s)
{
    run_linebuf(s, 0);
}
static void bm_linebuf_wide(rf_bench_state *s)
{
    run_linebuf(s, 1);
}

RF_BENCH_REGISTER(framing_benchmarks)
{
    static const int64_t reads[] = {1448, 16384, 65536};
    rf_bench_register_args("parse/frame/linebuf/short", bm_linebuf_short, reads, 3);
    rf_bench_register_args("parse/frame/linebuf/wide", bm_linebuf_wide, reads, 3);
}
