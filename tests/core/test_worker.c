/* Worker runtime and lifecycle: transitions, polling, drain, sleep and wake,
 * start failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/worker/worker.h"

static void test_lifecycle_legal_path(void **state)
{
    (void)state;
    rf_component_registry_reset();
    rf_component *c = rf_component_register("sink", "sink-a");
    assert_non_null(c);
    assert_int_equal(rf_component_state(c), RF_STATE_REGISTERED);
    assert_int_equal(rf_component_transition(c, RF_STATE_CONFIGURING, NULL), 0);
    assert_int_equal(rf_component_transition(c, RF_STATE_RUNNING, NULL), 0);
    assert_int_equal(rf_component_transition(c, RF_STATE_STOPPING, NULL), 0);
    assert_int_equal(rf_component_transition(c, RF_STATE_STOPPED, "shutdown"), 0);
    char reason[RF_COMPONENT_REASON_MAX];
    rf_component_reason(c, reason, sizeof(reason));
    assert_string_equal(reason, "shutdown");
    assert_int_equal(rf_component_transition(c, RF_STATE_CONFIGURING, NULL), 0);
    assert_int_equal(rf_component_transition(c, RF_STATE_FAILED, "disk full"), 0);
    rf_component_reason(c, reason, sizeof(reason));
    assert_string_equal(reason, "disk full");
    assert_string_equal(rf_lifecycle_state_name(rf_component_state(c)), "failed");
    assert_int_equal(rf_component_count(), 1);
    assert_ptr_equal(rf_component_at(0), c);
    assert_null(rf_component_at(1));
}

static void test_lifecycle_illegal_transitions(void **state)
{
    (void)state;
    rf_component_registry_reset();
    rf_component *c = rf_component_register("sink", "sink-b");
    /* registered cannot jump to running, stopping or stopped */
    assert_int_equal(rf_component_transition(c, RF_STATE_RUNNING, NULL), -EINVAL);
    assert_int_equal(rf_component_transition(c, RF_STATE_STOPPING, NULL), -EINVAL);
    assert_int_equal(rf_component_transition(c, RF_STATE_STOPPED, NULL), -EINVAL);
    assert_int_equal(rf_component_state(c), RF_STATE_REGISTERED);
    assert_int_equal(rf_component_transition(c, RF_STATE_CONFIGURING, NULL), 0);
    assert_int_equal(rf_component_transition(c, RF_STATE_STOPPED, NULL), -EINVAL);
    assert_int_equal(rf_component_transition(c, RF_STATE_RUNNING, NULL), 0);
    assert_int_equal(rf_component_transition(c, RF_STATE_CONFIGURING, NULL), -EINVAL);
    assert_int_equal(rf_component_state(c), RF_STATE_RUNNING);
}

static void test_registry_full(void **state)
{
    (void)state;
    rf_component_registry_reset();
    for (unsigned i = 0; i < RF_COMPONENTS_MAX; i++)
        assert_non_null(rf_component_register("x", "x"));
    assert_null(rf_component_register("x", "one-too-many"));
    /* A removed component's slot is taken again; readers skip a freed one. */
    rf_component *gone = rf_component_at(7);
    rf_component_unregister(gone);
    assert_null(rf_component_at(7));
    rf_component *again = rf_component_register("y", "reused");
    assert_ptr_equal(again, gone);
    assert_string_equal(rf_component_at(7)->name, "reused");
    assert_int_equal(rf_component_count(), RF_COMPONENTS_MAX);
    rf_component_registry_reset();
}

/* A component's reason is written by its owner at every transition while
 * the control thread reads it (/health, show workers): FAILED ->
 * CONFIGURING -> RUNNING -> FAILED, as the storage shard's component goes
 * through write errors. The reader must see a whole reason, one that was
 * written, never a mix of two (and, under TSan, no data race). */
#define FLAP_READS 100000
/* Set by the reader once it has read FLAP_READS times: the owner flaps
 * until then, so the two always overlap. */
static _Atomic bool flap_stop;
static const char *const flap_reasons[] = {
    "",
    "degraded by write errors, retrying (123456 points lost so far): No space left on device",
    "writes resumed after write errors",
};

static void *flap_owner(void *arg)
{
    rf_component *c = arg;
    /* Relaxed: a flag with no data behind it. */
    while (!atomic_load_explicit(&flap_stop, memory_order_relaxed)) {
        rf_component_transition(c, RF_STATE_FAILED, flap_reasons[1]);
        rf_component_transition(c, RF_STATE_CONFIGURING, flap_reasons[2]);
        rf_component_transition(c, RF_STATE_RUNNING, NULL);
    }
    return NULL;
}

static void test_reason_read_while_owner_transitions(void **state)
{
    (void)state;
    rf_component_registry_reset();
    rf_component *c = rf_component_register("storage", "store-shard-0");
    assert_non_null(c);
    rf_component_transition(c, RF_STATE_CONFIGURING, NULL);
    rf_component_transition(c, RF_STATE_RUNNING, NULL);
    pthread_t t;
    atomic_store(&flap_stop, false);
    assert_int_equal(pthread_create(&t, NULL, flap_owner, c), 0);
    unsigned long reads = 0, torn = 0;
    char seen[RF_COMPONENT_REASON_MAX];
    while (reads < FLAP_READS) {
        rf_component_reason(c, seen, sizeof(seen));
        reads++;
        bool known = false;
        for (size_t k = 0; k < sizeof(flap_reasons) / sizeof(flap_reasons[0]); k++)
            known |= strcmp(seen, flap_reasons[k]) == 0;
        if (!known && torn++ == 0)
            print_message("torn reason: '%s'\n", seen);
    }
    atomic_store_explicit(&flap_stop, true, memory_order_relaxed);
    pthread_join(t, NULL);
    print_message("%lu reads, %lu torn\n", reads, torn);
    assert_int_equal(torn, 0);
    rf_component_registry_reset();
}

/* A poll function fed through a counter: `pending` items are handed out one
 * batch at a time; drain() records that it ran after the last poll. */
typedef struct feed {
    _Atomic uint32_t pending;
    _Atomic uint64_t handled;
    _Atomic int drained;
    _Atomic int64_t handled_at_ns;
} feed;

static uint32_t feed_poll(void *ctx)
{
    feed *f = ctx;
    uint32_t n = atomic_exchange(&f->pending, 0);
    if (n) {
        atomic_fetch_add(&f->handled, n);
        atomic_store(&f->handled_at_ns, rf_clock_mono_ns());
    }
    return n;
}

/* Waits for cond(ctx) to hold, checking every 100 us, at most timeout_ns;
 * returns whether it held (the caller asserts it). */
static bool wait_until(bool (*cond)(void *ctx), void *ctx, int64_t timeout_ns)
{
    const int64_t t0 = rf_clock_mono_ns();
    while (!cond(ctx)) {
        if (rf_clock_mono_ns() - t0 >= timeout_ns)
            return cond(ctx);
        usleep(100);
    }
    return true;
}

static bool feed_handled_some(void *ctx)
{
    return atomic_load(&((feed *)ctx)->handled) != 0;
}

/* A worker and a count of sleeps it must reach. */
typedef struct sleeps_goal {
    rf_worker *w;
    uint64_t at_least;
} sleeps_goal;

static bool worker_slept(void *ctx)
{
    sleeps_goal *g = ctx;
    rf_worker_stats st;
    rf_worker_stats_read(g->w, &st);
    return st.sleeps >= g->at_least;
}

static void feed_drain(void *ctx)
{
    feed *f = ctx;
    atomic_store(&f->drained, atomic_load(&f->pending) == 0 ? 1 : -1);
}

static void test_worker_runs_drains_and_stops(void **state)
{
    (void)state;
    rf_component_registry_reset();
    feed f = {0};
    rf_worker_ops ops = {.poll = feed_poll, .drain = feed_drain, .ctx = &f};
    rf_idle_policy idle = {.spin = 10, .yield = 10, .sleep_max_ns = RF_NS_PER_MS};
    rf_worker *w;
    rf_err err;
    assert_int_equal(rf_worker_start(&w, "w-test", -1, &idle, &ops, &err), 0);
    for (int i = 0; i < 100; i++) {
        atomic_fetch_add(&f.pending, 3);
        rf_worker_wake(w);
        usleep(100);
    }
    atomic_fetch_add(&f.pending, 5); /* queued right before stop: must still be handled */
    rf_worker_request_stop(w);
    rf_component *c = rf_worker_component(w);
    assert_int_equal(rf_worker_join(w), 0);
    assert_int_equal(atomic_load(&f.handled), 305);
    assert_int_equal(atomic_load(&f.drained), 1);
    assert_int_equal(rf_component_state(c), RF_STATE_STOPPED);
}

/* An idle worker that has slept once sleeps again at its next empty poll:
 * it does not spin and yield through its budget after every timed-out sleep
 * (which kept an idle daemon at a quarter of a core). Work starts the spin
 * phase over. */
static void test_idle_worker_stays_asleep(void **state)
{
    (void)state;
    rf_component_registry_reset();
    feed f = {0};
    rf_worker_ops ops = {.poll = feed_poll, .ctx = &f};
    rf_idle_policy idle = {.spin = 5000, .yield = 50, .sleep_max_ns = RF_NS_PER_MS};
    rf_worker *w;
    rf_err err;
    assert_int_equal(rf_worker_start(&w, "w-idle", -1, &idle, &ops, &err), 0);
    rf_worker_stats a, b;
    sleeps_goal goal = {.w = w, .at_least = 2};
    assert_true(wait_until(worker_slept, &goal, 5 * RF_NS_PER_S));
    rf_worker_stats_read(w, &a);
    /* 1 ms sleeps: 20 more take about 20 ms, however slow the machine is
     * allowed 5 s */
    goal.at_least = a.sleeps + 20;
    assert_true(wait_until(worker_slept, &goal, 5 * RF_NS_PER_S));
    rf_worker_stats_read(w, &b);
    uint64_t sleeps = b.sleeps - a.sleeps, polls = b.polls - a.polls;
    /* two polls a sleep (the one that found nothing, the one before the
     * futex); 5,050 each without the rule */
    if (polls > 3 * sleeps + 10)
        fail_msg("%lu polls over %lu sleeps", (unsigned long)polls, (unsigned long)sleeps);
    /* work resets it: the next idle phase spins again before sleeping */
    atomic_fetch_add(&f.pending, 1);
    rf_worker_wake(w);
    assert_true(wait_until(feed_handled_some, &f, 5 * RF_NS_PER_S));
    rf_worker_request_stop(w);
    assert_int_equal(rf_worker_join(w), 0);
}

/* Starts a worker that sleeps up to 30 s at its first empty poll (spin and
 * yield are 0) and waits until it does. */
static rf_worker *start_asleep(const rf_worker_ops *ops, const char *name)
{
    rf_idle_policy idle = {.spin = 0, .yield = 0, .sleep_max_ns = 30 * RF_NS_PER_S};
    rf_worker *w;
    rf_err err;
    assert_int_equal(rf_worker_start(&w, name, -1, &idle, ops, &err), 0);
    sleeps_goal asleep = {.w = w, .at_least = 1};
    assert_true(wait_until(worker_slept, &asleep, 5 * RF_NS_PER_S));
    return w;
}

/* With a long sleep, only rf_worker_wake can make the worker see new work
 * promptly: the work must be handled long before the sleep would end. */
static void test_worker_wake_interrupts_sleep(void **state)
{
    (void)state;
    rf_component_registry_reset();
    feed f = {0};
    rf_worker_ops ops = {.poll = feed_poll, .ctx = &f};
    rf_worker *w = start_asleep(&ops, "w-sleep");
    rf_worker_stats st;

    int64_t t0 = rf_clock_mono_ns();
    atomic_fetch_add(&f.pending, 1);
    rf_worker_wake(w);
    assert_true(wait_until(feed_handled_some, &f, 5 * RF_NS_PER_S));
    assert_int_equal(atomic_load(&f.handled), 1);
    assert_true(atomic_load(&f.handled_at_ns) - t0 < RF_NS_PER_S);
    rf_worker_stats_read(w, &st);
    assert_true(st.wakeups >= 1);

    rf_worker_request_stop(w);
    assert_int_equal(rf_worker_join(w), 0);
}

/* Arrivals spaced far beyond the spin window (the everyday-rate case): the
 * adaptive policy cuts the window after each spin that found nothing, so the
 * worker spends a small fraction of the polls a fixed window costs. */
static void test_adaptive_spin_shrinks_when_it_never_pays(void **state)
{
    (void)state;
    rf_component_registry_reset();
    feed f = {0};
    rf_worker_ops ops = {.poll = feed_poll, .ctx = &f};
    const uint32_t spin = 20000, rounds = 20;
    rf_idle_policy idle = {
        .spin = spin, .yield = 0, .sleep_max_ns = 30 * RF_NS_PER_S, .adaptive = true};
    rf_worker *w;
    rf_err err;
    assert_int_equal(rf_worker_start(&w, "w-adapt", -1, &idle, &ops, &err), 0);
    sleeps_goal goal = {.w = w, .at_least = 1};
    rf_worker_stats a = {0}, b;
    for (uint32_t i = 0; i < rounds; i++) {
        assert_true(wait_until(worker_slept, &goal, 5 * RF_NS_PER_S));
        rf_worker_stats_read(w, &b);
        if (i == 0)
            a = b;
        /* asleep now: the next sleep is the one after this work */
        goal.at_least = b.sleeps + 1;
        /* A gap much longer than a 20,000-poll spin lasts. */
        usleep(20000);
        atomic_fetch_add(&f.pending, 1);
        rf_worker_wake(w);
    }
    assert_true(wait_until(worker_slept, &goal, 5 * RF_NS_PER_S));
    rf_worker_stats_read(w, &b);
    rf_worker_request_stop(w);
    assert_int_equal(rf_worker_join(w), 0);
    assert_int_equal(atomic_load(&f.handled), rounds);
    /* a fixed window: rounds * spin polls. Adaptive: gaps this long are
     * never bridged by a spin of one sleep's cost (microseconds), so the
     * worker sleeps at its first empty poll: a few polls an arrival (halving
     * the window instead, down to 1/64 of it, spent over 40,000 here). */
    uint64_t polls = b.polls - a.polls;
    if (polls > (uint64_t)rounds * 64)
        fail_msg("%lu polls for %u arrivals", (unsigned long)polls, rounds);
    assert_true(b.spins_cut >= 6);
}

static int64_t due_at_ns;

static int64_t due_next(void *ctx)
{
    (void)ctx;
    /* Once passed, nothing more is due (a real tick sets the next one). */
    int64_t due = atomic_load_explicit((_Atomic int64_t *)&due_at_ns, memory_order_relaxed);
    return due > rf_clock_mono_ns() ? due : 0;
}

/* A sleep ends when the worker's time-driven work is due (next_due_ns),
 * however long sleep_max_ns is: ticks are not late for a longer sleep. */
static void test_sleep_ends_when_work_is_due(void **state)
{
    (void)state;
    rf_component_registry_reset();
    feed f = {0};
    rf_worker_ops ops = {.poll = feed_poll, .next_due_ns = due_next, .ctx = &f};
    due_at_ns = 0;
    rf_worker *w = start_asleep(&ops, "w-due");
    sleeps_goal goal = {.w = w};
    /* asleep for 30 s; a tick due in 50 ms must end the next sleep then */
    rf_worker_stats st;
    rf_worker_stats_read(w, &st);
    atomic_store_explicit((_Atomic int64_t *)&due_at_ns, rf_clock_mono_ns() + 50 * RF_NS_PER_MS,
                          memory_order_relaxed);
    atomic_fetch_add(&f.pending, 1);
    rf_worker_wake(w);
    assert_true(wait_until(feed_handled_some, &f, 5 * RF_NS_PER_S));
    goal.at_least = st.sleeps + 2; /* the sleep until the tick, and the one after it */
    assert_true(wait_until(worker_slept, &goal, 5 * RF_NS_PER_S));
    rf_worker_request_stop(w);
    assert_int_equal(rf_worker_join(w), 0);
}

static void test_worker_pinning_to_offline_cpu_fails(void **state)
{
    (void)state;
    rf_component_registry_reset();
    feed f = {0};
    rf_worker_ops ops = {.poll = feed_poll, .ctx = &f};
    rf_idle_policy idle = {.spin = 1, .yield = 1, .sleep_max_ns = RF_NS_PER_MS};
    rf_worker *w;
    rf_err err;
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    assert_int_equal(rf_worker_start(&w, "w-offline", (int)cpus + 7, &idle, &ops, &err), 0);
    rf_component *c = rf_worker_component(w);
    int64_t t0 = rf_clock_mono_ns();
    while (rf_component_state(c) == RF_STATE_CONFIGURING && rf_clock_mono_ns() - t0 < RF_NS_PER_S)
        usleep(1000);
    assert_int_equal(rf_component_state(c), RF_STATE_FAILED);
    char reason[RF_COMPONENT_REASON_MAX];
    rf_component_reason(c, reason, sizeof(reason));
    assert_non_null(strstr(reason, "pin to cpu"));
    assert_int_equal(rf_worker_join(w), -EINVAL);
}

static void test_worker_rejects_missing_poll(void **state)
{
    (void)state;
    rf_worker_ops ops = {0};
    rf_idle_policy idle = {0};
    rf_worker *w;
    rf_err err;
    assert_int_equal(rf_worker_start(&w, "w-nopoll", -1, &idle, &ops, &err), -EINVAL);
    assert_string_equal(err.msg, "worker w-nopoll: no poll function");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_legal_path),
        cmocka_unit_test(test_lifecycle_illegal_transitions),
        cmocka_unit_test(test_registry_full),
        cmocka_unit_test(test_reason_read_while_owner_transitions),
        cmocka_unit_test(test_worker_runs_drains_and_stops),
        cmocka_unit_test(test_worker_wake_interrupts_sleep),
        cmocka_unit_test(test_idle_worker_stays_asleep),
        cmocka_unit_test(test_adaptive_spin_shrinks_when_it_never_pays),
        cmocka_unit_test(test_sleep_ends_when_work_is_due),
        cmocka_unit_test(test_worker_pinning_to_offline_cpu_fails),
        cmocka_unit_test(test_worker_rejects_missing_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
