/* The whole per-core stage chain: rf_pipeline_process, as a worker runs it
 * on a batch of events it owns, with the daemon's own configuration parsing
 * (stages/pipeline/pipeline.c) and a real storage shard.
 *
 *   ringflow-bench --benchmark_filter='^stages/chain/' --benchmark_repetitions=5 \
 *                  --benchmark_report_aggregates_only=true
 *
 * stages/chain/<variant>/<series>: batches of 256 gauge events over N
 * series chosen round-robin (the series table, an aggregation rule with
 * count, sum, min, max and avg over 10 s windows, a threshold alert rule, a
 * correlation burst pattern, routing, and the deliveries), with
 * rf_pipeline_tick every 64 batches (as a worker's 10 ms tick would come at
 * a few million events/s). Event time advances 10 us per event, so windows
 * close and aggregates flow on as the run goes.
 *   store:   routed to a storage shard (cut, encode, CRC; its I/O thread
 *            writes to TMPDIR), aggregates and alerts to counting sinks;
 *   nostore: everything routed to counting sinks (the stages alone).
 * A warm-up of 3 M events runs first, untimed (its rate is
 * warmup_events_per_cpu_s), so the figure is the steady state.
 * items/s is events per second of the benchmark thread's CPU time; the
 * issue's target for the chain is 5 M events/s per core. store_series and
 * store_buffer_MB: what the storage shard holds at the end. */
#include "bench/shim/bench_shim.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/event/event.h"
#include "stages/pipeline/pipeline.h"
#include "storage/store/store.h"

#define CHAIN_BATCH 256

static const char *chain_config(bool store)
{
    static char buf[2048];
    snprintf(
        buf, sizeof(buf),
        "pipeline:\n"
        "  batch: {max_events: 100, interval: 5s}\n"
        "  sinks:\n"
        "    - {name: data, type: %s}\n"
        "    - {name: aggs, type: count_only}\n"
        "    - {name: alerts, type: count_only}\n"
        "  routes:\n"
        "    - {subject: \"telemetry.>\", sinks: [data]}\n"
        "    - {subject: \"aggregate.>\", sinks: [aggs]}\n"
        "    - {subject: \"alert.>\", sinks: [alerts], class: critical}\n"
        "  aggregations:\n"
        "    - {measurement: bench, field: v, window: 10s, functions: [count, sum, min, max, "
        "avg]}\n"
        "  alerts:\n"
        "    - {name: hot, type: threshold, match: {measurement: bench, field: v}, op: \">\",\n"
        "       fire: 990, resolve: 900}\n"
        "  correlation:\n"
        "    patterns:\n"
        "      - {name: burst, type: burst, match: {measurement: errors}, count: 3, within: 10s,\n"
        "         key: host}\n",
        store ? "store" : "count_only");
    return buf;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The measured traffic: gauges over the series round-robin, 10 us apart in
 * event time. */
typedef struct chain_gen {
    const uint64_t *ids;
    uint32_t nser;
    uint64_t n, batches, x;
    int64_t t;
    rf_event batch[CHAIN_BATCH];
} chain_gen;

static void chain_step(chain_gen *g, rf_pipeline *p)
{
    for (uint32_t b = 0; b < CHAIN_BATCH; b++, g->n++) {
        rf_event *ev = &g->batch[b];
        memset(ev, 0, sizeof(*ev));
        ev->kind = RF_KIND_GAUGE;
        ev->value_type = RF_VALUE_F64;
        ev->series_id = g->ids[g->n % g->nser];
        g->x ^= g->x << 13;
        g->x ^= g->x >> 7;
        g->x ^= g->x << 17;
        ev->value.f64 = (double)(g->x % 100000) / 100.0; /* 2 decimals, 0..999.99 */
        ev->event_time_ns = g->t += 10000;
        ev->recv_time_ns = 1;
        ev->sample_rate = 1.0f;
        ev->flags = RF_EVF_HAS_CLIENT_TIME;
    }
    rf_pipeline_process(p, g->batch, CHAIN_BATCH);
    if (++g->batches % 64 == 0)
        rf_pipeline_tick(p, rf_clock_mono_ns(), rf_clock_wall_ns());
}

static void bm_chain(rf_bench_state *s, bool with_store)
{
    const uint32_t nser = (uint32_t)rf_bench_arg(s, 0);
    rf_err err;
    rf_err_clear(&err);
    const char *text = chain_config(with_store);
    rf_cfg_doc *doc = NULL;
    rf_pipeline_settings ps;
    memset(&ps, 0, sizeof(ps));
    char dir[4096] = "";
    rf_store *store = NULL;
    rf_pipeline *p = NULL;
    if (rf_cfg_load_string(text, strlen(text), "<bench>", &doc, &err) < 0 ||
        rf_pipeline_settings_parse(rf_cfg_root(doc), "/tmp", &ps, &err) < 0) {
        rf_bench_skip_with_error(s, err.msg);
        goto out;
    }
    if (with_store) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/rf-chain-bench-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            rf_bench_skip_with_error(s, "mkdtemp failed");
            dir[0] = '\0';
            goto out;
        }
        rf_store_config sc;
        rf_store_config_default(&sc);
        sc.queue_blocks = 4096;
        if (rf_store_open(dir, &sc, 1, &store, &err) < 0) {
            rf_bench_skip_with_error(s, err.msg);
            goto out;
        }
    }
    if (rf_pipeline_new(&ps, 0, 1, store ? rf_store_shard_get(store, 0) : NULL, &p, &err) < 0) {
        rf_bench_skip_with_error(s, err.msg);
        goto out;
    }
    /* The series are defined first, as their SERIES_DEF events would. */
    uint64_t *ids = malloc(nser * sizeof(*ids));
    rf_event batch[CHAIN_BATCH];
    uint32_t nb = 0;
    for (uint32_t i = 0; i < nser; i++) {
        char key[96];
        int len = snprintf(key, sizeof(key), "bench,host=h%u,region=r%u v", i, i % 16);
        rf_series_key *k = rf_series_key_new(key, (size_t)len, 5, (size_t)len - 1);
        ids[i] = k->series_id;
        rf_event *ev = &batch[nb++];
        memset(ev, 0, sizeof(*ev));
        ev->kind = RF_KIND_SERIES_DEF;
        ev->series_id = k->series_id;
        ev->aux = (uint64_t)(uintptr_t)k;
        if (nb == CHAIN_BATCH || i + 1 == nser) {
            rf_pipeline_process(p, batch, nb);
            nb = 0;
        }
    }
    chain_gen g = {.ids = ids, .nser = nser, .x = 88172645463325252ull, .t = 1700000000000000000LL};
    /* Warm-up, untimed by the benchmark: three 10 s windows of event time
     * (3 M events), so that the aggregate series exist and the first blocks
     * are cut before the measured loop. What it cost is reported apart
     * (warmup_events_per_cpu_s): a cold start is not the steady state, and
     * at 100,000 series it is mostly first-touch of new memory. */
    const uint64_t warmup = 3000000;
    double cpu0 = thread_cpu_s();
    while (g.n < warmup) {
        chain_step(&g, p);
    }
    double warm_cpu = thread_cpu_s() - cpu0;
    rf_bench_counter(s, "warmup_events_per_cpu_s", warm_cpu > 0 ? (double)g.n / warm_cpu : 0,
                     false);
    g.n = 0;
    cpu0 = thread_cpu_s();
    while (rf_bench_keep_running(s)) {
        chain_step(&g, p);
    }
    double cpu = thread_cpu_s() - cpu0;
    rf_bench_set_items_processed(s, (int64_t)g.n);
    rf_bench_counter(s, "events_per_cpu_s", cpu > 0 ? (double)g.n / cpu : 0, false);
    rf_pipeline_stats st;
    rf_pipeline_stats_read(p, &st);
    rf_bench_counter(s, "store_rejected", (double)st.store_rejected, false);
    rf_bench_counter(s, "unknown", (double)st.unknown_series, false);
    if (store) {
        /* What the store holds for the run: series it was given a point of,
         * and the capacity of their point buffers. */
        rf_store_shard_stats ss;
        rf_store_shard_stats_read(rf_store_shard_get(store, 0), &ss);
        rf_bench_counter(s, "store_series", (double)ss.series, false);
        rf_bench_counter(s, "store_buffer_MB", (double)ss.buffer_bytes / 1e6, false);
    }
    free(ids);
out:
    rf_pipeline_free(p);
    if (store) {
        rf_err e2;
        rf_store_close(store, &e2);
    }
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    rf_pipeline_settings_release(&ps);
    rf_cfg_free(doc);
}

static void bm_chain_store(rf_bench_state *s)
{
    bm_chain(s, true);
}
static void bm_chain_nostore(rf_bench_state *s)
{
    bm_chain(s, false);
}

RF_BENCH_REGISTER(pipeline_benchmarks)
{
    static const int64_t series[] = {1000, 100000};
    rf_bench_register_args("stages/chain/store", bm_chain_store, series, 2);
    rf_bench_register_args("stages/chain/nostore", bm_chain_nostore, series, 2);
}
