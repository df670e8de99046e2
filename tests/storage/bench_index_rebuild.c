/* Measures the series index's rebuild time (storage/index): writes a store
 * of N series with one point each (distinct measurements, tags and fields),
 * closes it, then opens the index R times and prints each time, the median
 * and the index's memory. Not a test (docs/PERFORMANCE.md, "Series index
 * rebuild"): build/tests/storage/bench_index_rebuild [N [R]]. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "storage/index/index.h"
#include "tests/storage/store_test_util.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 1024;
    cfg.queue_blocks = 4096;
    rf_store *st;
    rf_err e;
    if (!dir || rf_store_open(dir, &cfg, 2, &st, &e) < 0) {
        fprintf(stderr, "store: %s\n", e.msg);
        return 1;
    }
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char tags[96], meas[32], field[32];
        snprintf(meas, sizeof(meas), "m%ld", i % 100);
        snprintf(tags, sizeof(tags), "dc=d%ld,host=h%ld,rack=r%ld", i % 10, i / 5, i % 1000);
        snprintf(field, sizeof(field), "f%ld", i % 5);
        rf_series_key *k = tu_key(meas, tags, field);
        rf_store_shard *sh = rf_store_shard_get(st, rf_event_owner(k->series_id, 2));
        rf_store_define_series(sh, k);
        rf_event ev = tu_event(k->series_id, 1700000000000000000LL + i, RF_VALUE_F64, tu_f64(1.0));
        tu_append(sh, &ev);
        rf_series_key_free(k);
    }
    if (rf_store_close(st, &e) < 0) {
        fprintf(stderr, "close: %s\n", e.msg);
        return 1;
    }
    fprintf(stderr, "wrote %ld series in %.1f s\n", n, now_s() - t0);
    double *t = calloc((size_t)runs, sizeof(*t)), *c = calloc((size_t)runs, sizeof(*c));
    uint64_t mem = 0;
    for (int r = 0; r < runs; r++) {
        rf_series_index *ix;
        double s = now_s(), cs = cpu_s();
        if (rf_series_index_open(dir, 0, &ix, &e) < 0) {
            fprintf(stderr, "index: %s\n", e.msg);
            return 1;
        }
        t[r] = now_s() - s;
        c[r] = cpu_s() - cs;
        mem = rf_series_index_memory(ix);
        if ((long)rf_series_index_count(ix) != n) {
            fprintf(stderr, "index has %zu series, want %ld\n", rf_series_index_count(ix), n);
            return 1;
        }
        rf_series_index_free(ix);
        printf("run %d: %.3f s wall, %.3f s cpu\n", r + 1, t[r], c[r]);
    }
    qsort(t, (size_t)runs, sizeof(*t), cmp_d);
    qsort(c, (size_t)runs, sizeof(*c), cmp_d);
    printf("series=%ld wall median=%.3f s (%.3f..%.3f) cpu median=%.3f s (%.3f..%.3f) memory=%.1f "
           "MiB\n",
           n, t[runs / 2], t[0], t[runs - 1], c[runs / 2], c[0], c[runs - 1],
           (double)mem / (1 << 20));
    tu_rmrf(dir);
    free(dir);
    free(t);
    free(c);
    return 0;
}
