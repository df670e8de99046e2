// The C shim over Google Benchmark: the only C++ in ringflow. It turns
// rf_bench_* calls into benchmark::State calls and registers C functions.
#include "bench/shim/bench_shim.h"

#include <benchmark/benchmark.h>

struct rf_bench_state {
    benchmark::State *st;
};

namespace
{

void run_c_benchmark(benchmark::State &st, rf_bench_fn fn)
{
    rf_bench_state s{&st};
    fn(&s);
}

benchmark::internal::Benchmark *register_one(const char *name, rf_bench_fn fn)
{
    return benchmark::RegisterBenchmark(name, run_c_benchmark, fn);
}

} // namespace

extern "C" {

void rf_bench_register(const char *name, rf_bench_fn fn)
{
    register_one(name, fn);
}

void rf_bench_register_args(const char *name, rf_bench_fn fn, const int64_t *args, int nargs)
{
    auto *b = register_one(name, fn);
    for (int i = 0; i < nargs; i++)
        b->Arg(args[i]);
}

void rf_bench_register_args_realtime(const char *name, rf_bench_fn fn, const int64_t *args,
                                     int nargs)
{
    auto *b = register_one(name, fn);
    for (int i = 0; i < nargs; i++)
        b->Arg(args[i]);
    b->UseRealTime();
}

// KeepRunning() is inline in Google Benchmark; the cost per iteration is one
// call through this shim, so benchmarks do a batch of work per iteration.
bool rf_bench_keep_running(rf_bench_state *s)
{
    return s->st->KeepRunning();
}

int64_t rf_bench_arg(rf_bench_state *s, int index)
{
    return s->st->range(index);
}
int64_t rf_bench_iterations(rf_bench_state *s)
{
    return (int64_t)s->st->iterations();
}
void rf_bench_pause_timing(rf_bench_state *s)
{
    s->st->PauseTiming();
}
void rf_bench_resume_timing(rf_bench_state *s)
{
    s->st->ResumeTiming();
}
void rf_bench_set_items_processed(rf_bench_state *s, int64_t n)
{
    s->st->SetItemsProcessed(n);
}
void rf_bench_set_bytes_processed(rf_bench_state *s, int64_t n)
{
    s->st->SetBytesProcessed(n);
}
void rf_bench_set_label(rf_bench_state *s, const char *label)
{
    s->st->SetLabel(label);
}
void rf_bench_skip_with_error(rf_bench_state *s, const char *msg)
{
    s->st->SkipWithError(msg);
}

void rf_bench_counter(rf_bench_state *s, const char *name, double value, bool as_rate)
{
    s->st->counters[name] = benchmark::Counter(value, as_rate ? benchmark::Counter::kIsRate
                                                              : benchmark::Counter::kDefaults);
}

void rf_bench_do_not_optimize(const void *p)
{
    benchmark::DoNotOptimize(p);
}

} // extern "C"

BENCHMARK_MAIN();
