/* Sinks (stages/sink): what it costs a worker to turn events into output.
 *
 *   stages/sink/format_json/<series>   rf_sink_format_json of one event into a buffer
 *   stages/sink/format_lp/<series>     rf_sink_format_lp: the line the lp_udp and lp_tcp
 *                                      forwarders queue ("<key>=<value> <ns>\n")
 *   stages/sink/json_file/<series>     the json sink as a worker drives it:
 *                                      rf_sink_write of a 256-event batch, then
 *                                      rf_sink_flush (write(2) to a regular file)
 *   stages/sink/lp_udp/<series>        the lp_udp forwarder: rf_sink_write of a batch,
 *                                      rf_sink_flush packing lines into datagrams
 *                                      (sendmmsg to a loopback socket nobody reads,
 *                                      so the kernel drops them at the receiver: the
 *                                      sender's cost is all there is to measure)
 *
 * The events are gauges (doubles) of <series> series in random order; the
 * series text comes from a series table (rf_series_table_find + the key), as
 * the daemon's namer does (stages/pipeline/pipeline.c). items/s is events per second
 * of CPU time (system time of the write and send calls included);
 * bytes/s is output bytes. The json_file benchmark truncates its (unlinked)
 * file outside the timed region every 64 MiB so the disk does not fill. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/shim/bench_shim.h"
#include "core/event/event.h"
#include "stages/series/series_table.h"
#include "stages/sink/sink.h"

#define BATCH 256u
#define RING_EVENTS (1u << 16)
#define TRUNCATE_AT (64u << 20)

typedef struct fixture {
    uint32_t n;
    rf_series_table *table;
    rf_event *events; /* RING_EVENTS, cycled */
} fixture;

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static const char *namer_series_text(void *ctx, uint64_t series_id, uint32_t *len)
{
    const rf_series_table *t = ctx;
    int32_t slot = rf_series_table_find(t, series_id);
    if (slot < 0)
        return NULL;
    const rf_series_key *k = rf_series_table_key(t, slot);
    *len = k->len;
    return k->text;
}

static fixture *fixture_get(uint32_t n)
{
    static fixture *cache[4];
    for (int i = 0; i < 4; i++)
        if (cache[i] && cache[i]->n == n)
            return cache[i];
    fixture *f = calloc(1, sizeof(*f));
    uint64_t *ids = malloc(n * sizeof(*ids));
    if (!f || !ids)
        goto fail;
    f->n = n;
    f->table = rf_series_table_new(n * 2 > 1024 ? n * 2 : 1024);
    f->events = calloc(RING_EVENTS, sizeof(*f->events));
    if (!f->table || !f->events)
        goto fail;
    for (uint32_t i = 0; i < n; i++) {
        char text[160];
        int len = snprintf(text, sizeof(text),
                           "system,dc=eu%u,host=server-%05u.example.com,service=api usage_idle",
                           i % 4, i);
        /* measurement "system" (6 bytes); the field starts after the space. */
        rf_series_key *k = rf_series_key_new(text, (size_t)len, 6, (size_t)len - 10);
        if (!k)
            goto fail;
        ids[i] = k->series_id;
        if (rf_series_table_define(f->table, k) < 0)
            goto fail;
    }
    uint64_t x = 0x9e3779b97f4a7c15ull ^ n;
    int64_t t = 1796155462000000000ll;
    for (uint32_t i = 0; i < RING_EVENTS; i++) {
        rf_event *e = &f->events[i];
        e->series_id = ids[rng(&x) % n];
        e->event_time_ns = t + (int64_t)i * 1000;
        e->recv_time_ns = e->event_time_ns;
        e->kind = RF_KIND_GAUGE;
        e->value_type = RF_VALUE_F64;
        e->value.f64 = (double)(rng(&x) % 100000) / 100.0;
        e->priority = RF_PRIO_STANDARD;
        e->sample_rate = 1.0f;
    }
    free(ids);
    for (int i = 0; i < 4; i++)
        if (!cache[i]) {
            cache[i] = f;
            break;
        }
    return f;
fail:
    free(ids);
    if (f) {
        rf_series_table_free(f->table);
        free(f->events);
        free(f);
    }
    return NULL;
}

typedef int (*format_fn)(const rf_sink_namer *, const rf_event *, char *, uint32_t);

static void run_format(rf_bench_state *s, format_fn fmt)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    if (!f) {
        rf_bench_skip_with_error(s, "setup failed");
        return;
    }
    const rf_sink_namer namer = {.series_text = namer_series_text, .ctx = f->table};
    char buf[1024];
    uint64_t bytes = 0, events = 0;
    uint32_t at = 0;
    while (rf_bench_keep_running(s)) {
        for (uint32_t i = 0; i < BATCH; i++) {
            int k = fmt(&namer, &f->events[at], buf, sizeof(buf));
            if (k <= 0) {
                rf_bench_skip_with_error(s, "format failed");
                return;
            }
            bytes += (uint64_t)k;
            at = (at + 1) & (RING_EVENTS - 1);
        }
        events += BATCH;
        rf_bench_do_not_optimize(buf);
    }
    rf_bench_set_items_processed(s, (int64_t)events);
    rf_bench_set_bytes_processed(s, (int64_t)bytes);
    rf_bench_counter(s, "B/line", events ? (double)bytes / (double)events : 0, false);
}

static void bm_format_json(rf_bench_state *s)
{
    run_format(s, rf_sink_format_json);
}
static void bm_format_lp(rf_bench_state *s)
{
    run_format(s, rf_sink_format_lp);
}

/* Drives a sink as a worker does: write a batch, flush. */
static void run_sink(rf_bench_state *s, rf_sink *sink, fixture *f, int trunc_fd)
{
    uint32_t at = 0;
    uint64_t events = 0, since_trunc = 0;
    rf_sink_stats st0, st;
    rf_sink_stats_read(sink, &st0);
    int64_t now = 1;
    while (rf_bench_keep_running(s)) {
        rf_sink_write(sink, &f->events[at], BATCH);
        rf_sink_flush(sink, now++);
        at = (at + BATCH) & (RING_EVENTS - 1);
        events += BATCH;
        since_trunc += BATCH * 100u; /* ~100 bytes per JSON line: a cheap upper guess */
        if (trunc_fd >= 0 && since_trunc >= TRUNCATE_AT) {
            rf_bench_pause_timing(s);
            if (ftruncate(trunc_fd, 0) != 0)
                rf_bench_skip_with_error(s, "ftruncate failed");
            since_trunc = 0;
            rf_bench_resume_timing(s);
        }
    }
    rf_sink_stats_read(sink, &st);
    uint64_t drops = (st.drop_queue_full - st0.drop_queue_full) +
                     (st.drop_io_error - st0.drop_io_error) +
                     (st.drop_oversize - st0.drop_oversize);
    rf_bench_set_items_processed(s, (int64_t)events);
    rf_bench_set_bytes_processed(s, (int64_t)(st.bytes_out - st0.bytes_out));
    rf_bench_counter(s, "drops", (double)drops, false);
    if (drops)
        rf_bench_set_label(s, "sink dropped events: figure not valid");
}

static void bm_json_file(rf_bench_state *s)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    char path[] = "/tmp/ringflow-bench-sink-XXXXXX";
    int fd = mkstemp(path);
    if (!f || fd < 0) {
        rf_bench_skip_with_error(s, "setup failed");
        if (fd >= 0)
            close(fd);
        return;
    }
    unlink(path); /* gone when closed */
    /* O_APPEND, as the sink opens a path: after a truncate, writes go to the start. */
    if (fcntl(fd, F_SETFL, O_APPEND) != 0) {
        rf_bench_skip_with_error(s, "fcntl failed");
        close(fd);
        return;
    }
    const rf_sink_namer namer = {.series_text = namer_series_text, .ctx = f->table};
    rf_sink_config cfg = {.name = "bench_json", .type = RF_SINK_JSON, .fd = fd};
    rf_sink *sink = NULL;
    rf_err err = {0};
    if (rf_sink_new(&cfg, &namer, &sink, &err) < 0) {
        rf_bench_skip_with_error(s, "rf_sink_new failed");
        close(fd);
        return;
    }
    run_sink(s, sink, f, fd);
    rf_sink_free(sink);
    close(fd);
}

static void bm_lp_udp(rf_bench_state *s)
{
    fixture *f = fixture_get((uint32_t)rf_bench_arg(s, 0));
    /* A bound socket nobody reads: the destination exists (no ICMP errors). */
    int rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (!f || rx < 0 || bind(rx, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(rx, (struct sockaddr *)&a, &alen) != 0) {
        rf_bench_skip_with_error(s, "setup failed");
        if (rx >= 0)
            close(rx);
        return;
    }
    const rf_sink_namer namer = {.series_text = namer_series_text, .ctx = f->table};
    rf_sink_config cfg = {.name = "bench_lp_udp",
                          .type = RF_SINK_LP_UDP,
                          .host = "127.0.0.1",
                          .port = ntohs(a.sin_port)};
    rf_sink *sink = NULL;
    rf_err err = {0};
    if (rf_sink_new(&cfg, &namer, &sink, &err) < 0) {
        rf_bench_skip_with_error(s, "rf_sink_new failed");
        close(rx);
        return;
    }
    run_sink(s, sink, f, -1);
    rf_sink_free(sink);
    close(rx);
}

RF_BENCH_REGISTER(sink_benchmarks)
{
    static const int64_t series[] = {1000, 100000};
    rf_bench_register_args("stages/sink/format_json", bm_format_json, series, 2);
    rf_bench_register_args("stages/sink/format_lp", bm_format_lp, series, 2);
    rf_bench_register_args("stages/sink/json_file", bm_json_file, series, 2);
    rf_bench_register_args("stages/sink/lp_udp", bm_lp_udp, series, 2);
}
