/* The C face of Google Benchmark. Benchmarks are written in C against this
 * header; bench_shim.cc (the only C++ in the project) registers them with
 * Google Benchmark and forwards the state calls.
 *
 * A benchmark file registers its functions from a constructor:
 *
 *     static void bm_ring_8(rf_bench_state *s) {
 *         while (rf_bench_keep_running(s)) { ... }
 *         rf_bench_set_items_processed(s, n);
 *     }
 *     RF_BENCH_REGISTER(ring_benchmarks) {
 *         static const int64_t bursts[] = {1, 8, 32};
 *         rf_bench_register_args("ring/rf/8B", bm_ring_8, bursts, 3);
 *     }
 *
 * Names are "<area>/<impl>/<variant>" and the argument is appended by Google
 * Benchmark ("ring/rf/8B/32"), so rivals line up by name. */
#ifndef RF_BENCH_SHIM_H
#define RF_BENCH_SHIM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rf_bench_state rf_bench_state;
typedef void (*rf_bench_fn)(rf_bench_state *state);

/* Registration (call before main runs, i.e. from RF_BENCH_REGISTER). */
void rf_bench_register(const char *name, rf_bench_fn fn);
/* One instance per argument value; the argument is read with rf_bench_arg(s, 0). */
void rf_bench_register_args(const char *name, rf_bench_fn fn, const int64_t *args, int nargs);
/* Like rf_bench_register_args, with wall-clock ("real") time as the measure:
 * for benchmarks whose work happens on threads they start themselves. */
void rf_bench_register_args_realtime(const char *name, rf_bench_fn fn, const int64_t *args,
                                     int nargs);

/* State. */
bool rf_bench_keep_running(rf_bench_state *s);
int64_t rf_bench_arg(rf_bench_state *s, int index);
int64_t rf_bench_iterations(rf_bench_state *s);
void rf_bench_pause_timing(rf_bench_state *s);
void rf_bench_resume_timing(rf_bench_state *s);
void rf_bench_set_items_processed(rf_bench_state *s, int64_t items);
void rf_bench_set_bytes_processed(rf_bench_state *s, int64_t bytes);
/* A named counter; as_rate divides it by the measured time (per second). */
void rf_bench_counter(rf_bench_state *s, const char *name, double value, bool as_rate);
void rf_bench_set_label(rf_bench_state *s, const char *label);
void rf_bench_skip_with_error(rf_bench_state *s, const char *msg);
/* Keeps the compiler from optimising away a computed value. */
void rf_bench_do_not_optimize(const void *p);

#define RF_BENCH_REGISTER(name)                                                                    \
    static void name(void) __attribute__((constructor));                                           \
    static void name(void)

#ifdef __cplusplus
}
#endif

#endif
