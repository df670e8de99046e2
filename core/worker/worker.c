/* Pinned worker threads: the poll loop, the idle strategy and the futex
 * wake-up that lets an idle worker sleep without adding latency when work
 * arrives. */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/worker/worker.h"
#include "core/stats/stats.h"

struct rf_worker {
    pthread_t thread;
    rf_component *component;
    rf_worker_ops ops;
    int cpu;
    int start_error;

    /* Idle policy: written by the control thread, read by the worker between
     * polls; relaxed, a change may take effect a few polls late. */
    _Atomic uint32_t idle_spin;
    _Atomic uint32_t idle_yield;
    _Atomic int64_t idle_sleep_max_ns;
    _Atomic bool idle_adaptive;

    /* Set (release) by rf_worker_request_stop, read (acquire) by the loop. */
    _Atomic bool stop_requested;

    /* The sleep/wake handshake (a Dekker pattern, so both sides use seq_cst
     * fences): the worker stores 1, fences, polls once more, then waits while
     * it is still 1; a producer enqueues, fences, and wakes when it reads 1.
     * Either the worker's last poll sees the producer's enqueue, or the
     * producer sees sleeping == 1: a wake-up is never lost. */
    _Atomic uint32_t sleeping;

    /* Statistics: written by the worker thread only (relaxed single-writer
     * stores), read by the control thread; `wakeups` by producers (atomic add). */
    _Atomic uint64_t polls, busy_polls, items, sleeps, busy_ns, spins_cut;
    _Atomic uint64_t wakeups;
    /* What a sleep costs the worker in CPU, as the adaptive policy measured
     * it (ns); worker writes (relaxed), control thread reads. */
    _Atomic int64_t sleep_cost_ns;
};

/* The load-adaptive policy (worker.h, docs/ARCHITECTURE.md "Workers: idle
 * and wake-up"). Occupancy is the share of a period spent in polls that did
 * work; at or above half of it spinning costs little next to the work and
 * the worker keeps the whole configured window. Below it the worker spins
 * at most what one sleep costs it in CPU (ski rental: an idle period then
 * costs at most twice what the best choice would have), and only while
 * most recent gaps were that short; otherwise it sleeps at its first empty
 * poll. */
#define OCC_PERIOD_NS (10 * RF_NS_PER_MS)
#define SHORT_ONE 1024u /* short_frac's fixed point: 1024 = every gap */
#define SLEEP_COST_INIT_NS (10 * RF_NS_PER_US)
#define SLEEP_COST_MIN_NS (2 * RF_NS_PER_US)
#define SLEEP_COST_MAX_NS (100 * RF_NS_PER_US)
#define SLEEP_COST_SAMPLE 8 /* one sleep in 8 pays the two CPU-clock reads */

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * RF_NS_PER_S + ts.tv_nsec;
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

static void worker_sleep(rf_worker *w)
{
    int64_t ns = atomic_load_explicit(&w->idle_sleep_max_ns, memory_order_relaxed);
    int64_t due = w->ops.next_due_ns ? w->ops.next_due_ns(w->ops.ctx) : 0;
    if (due) {
        int64_t left = due - rf_clock_mono_ns();
        if (left < ns)
            ns = left;
        if (ns <= 0)
            return; /* time-driven work is due: poll instead */
    }
    struct timespec ts = {.tv_sec = ns / RF_NS_PER_S, .tv_nsec = ns % RF_NS_PER_S};
    rf_stats_add(&w->sleeps, 1);
    if (w->ops.wait) {
        w->ops.wait(w->ops.ctx, ns);
        return;
    }
    /* The kernel compares *addr with 1 atomically before sleeping, so a wake
     * (which stores 0 first) between our last poll and this call is not lost. */
    futex(&w->sleeping, FUTEX_WAIT_PRIVATE, 1, &ts);
}

/* short_frac after an idle gap of gap_ns: would a spin of one sleep's cost
 * have bridged it? (a 1/8 moving average) */
static uint32_t gap_seen(uint32_t short_frac, int64_t gap_ns, int64_t sleep_cost_ns)
{
    uint32_t hit = gap_ns <= sleep_cost_ns ? SHORT_ONE : 0;
    return (7 * short_frac + hit) / 8;
}

/* The worker this thread runs (NULL on other threads). */
static _Thread_local rf_worker *t_current;

bool rf_worker_current_stop_requested(void)
{
    /* Pairs with the release in rf_worker_request_stop. */
    return t_current && atomic_load_explicit(&t_current->stop_requested, memory_order_acquire);
}

static void *worker_main(void *arg)
{
    rf_worker *w = arg;
    t_current = w;
    char reason[RF_COMPONENT_REASON_MAX];

    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
        if (rc != 0) {
            snprintf(reason, sizeof(reason), "pin to cpu %d: %s", w->cpu, strerror(rc));
            w->start_error = -rc;
            rf_component_transition(w->component, RF_STATE_FAILED, reason);
            return NULL;
        }
    }
    if (w->ops.start) {
        rf_err err;
        rf_err_clear(&err);
        int rc = w->ops.start(w->ops.ctx, &err);
        if (rc < 0) {
            w->start_error = rc;
            rf_component_transition(w->component, RF_STATE_FAILED, err.msg);
            return NULL;
        }
    }
    rf_component_transition(w->component, RF_STATE_RUNNING, NULL);

    uint32_t idle_polls = 0;
    /* The adaptive policy (see OCC_PERIOD_NS): loaded says whether the last
     * occupancy period was at least half busy; short_frac is the share of
     * recent idle gaps (from the last work to the next) no longer than
     * sleep_cost_ns, what a sleep costs this thread in CPU (measured on one
     * sleep in SLEEP_COST_SAMPLE). idle_start_ns is when this idle period
     * began, and slept says whether it reached a sleep. */
    bool loaded = false, slept = false;
    int64_t occ_start_ns = rf_clock_mono_ns(), occ_busy_ns = 0, idle_start_ns = 0;
    int64_t sleep_cost_ns = SLEEP_COST_INIT_NS;
    uint32_t short_frac = 0, sleeps_seen = 0;
    for (;;) {
        /* Pairs with the release in rf_worker_request_stop. */
        bool stopping = atomic_load_explicit(&w->stop_requested, memory_order_acquire);
        int64_t t0 = rf_clock_mono_ns();
        if (t0 - occ_start_ns >= OCC_PERIOD_NS) {
            loaded = 2 * occ_busy_ns >= t0 - occ_start_ns;
            occ_start_ns = t0;
            occ_busy_ns = 0;
        }
        uint32_t done = w->ops.poll(w->ops.ctx);
        rf_stats_add(&w->polls, 1);
        if (done) {
            int64_t busy = rf_clock_mono_ns() - t0;
            occ_busy_ns += busy;
            rf_stats_add(&w->busy_polls, 1);
            rf_stats_add(&w->items, done);
            rf_stats_add(&w->busy_ns, (uint64_t)busy);
            if (idle_polls || slept)
                short_frac = gap_seen(short_frac, t0 - idle_start_ns, sleep_cost_ns);
            idle_polls = 0;
            slept = false;
            continue;
        }
        if (stopping)
            break; /* stop was requested before this empty poll: inputs are drained */

        if (idle_polls++ == 0)
            idle_start_ns = t0;
        uint32_t spin = atomic_load_explicit(&w->idle_spin, memory_order_relaxed);
        uint32_t yield = atomic_load_explicit(&w->idle_yield, memory_order_relaxed);
        bool adaptive = atomic_load_explicit(&w->idle_adaptive, memory_order_relaxed);
        if (adaptive && !loaded && !slept) {
            /* Ski rental: spin while the period is shorter than a sleep's
             * cost, if gaps that short are the rule; no yields. */
            if (2 * short_frac >= SHORT_ONE && t0 - idle_start_ns < sleep_cost_ns &&
                idle_polls <= spin)
                continue;
            if (idle_polls <= spin + yield)
                rf_stats_add(&w->spins_cut, 1);
        } else if (idle_polls <= spin) {
            continue;
        } else if (idle_polls <= spin + yield) {
            sched_yield();
            continue;
        }
        slept = true;
        atomic_store_explicit(&w->sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in rf_worker_wake */
        done = w->ops.poll(w->ops.ctx);
        if (done == 0 && !atomic_load_explicit(&w->stop_requested, memory_order_acquire)) {
            bool sample = adaptive && ++sleeps_seen % SLEEP_COST_SAMPLE == 0;
            int64_t cpu0 = sample ? thread_cpu_ns() : 0;
            worker_sleep(w);
            if (sample) {
                int64_t cost = thread_cpu_ns() - cpu0;
                cost = cost < SLEEP_COST_MIN_NS   ? SLEEP_COST_MIN_NS
                       : cost > SLEEP_COST_MAX_NS ? SLEEP_COST_MAX_NS
                                                  : cost;
                sleep_cost_ns = (7 * sleep_cost_ns + cost) / 8;
                atomic_store_explicit(&w->sleep_cost_ns, sleep_cost_ns, memory_order_relaxed);
            }
        }
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
        if (done) {
            /* Found by the last poll before the sleep: the gap ended without
             * one (t0, the empty poll just before, is near enough). */
            short_frac = gap_seen(short_frac, t0 - idle_start_ns, sleep_cost_ns);
            rf_stats_add(&w->busy_polls, 1);
            rf_stats_add(&w->items, done);
            idle_polls = 0;
            slept = false;
            continue;
        }
        /* Woken with nothing to do (the sleep timed out): an idle worker goes
         * back to sleep at its next empty poll instead of spinning and
         * yielding through its whole budget again after every sleep, which
         * kept an idle daemon at a quarter of a core. Work found by any poll
         * starts the spin phase over (idle_polls = 0 above). */
        idle_polls = spin + yield;
    }

    rf_component_transition(w->component, RF_STATE_STOPPING, NULL);
    if (w->ops.drain)
        w->ops.drain(w->ops.ctx);
    rf_component_transition(w->component, RF_STATE_STOPPED, NULL);
    return NULL;
}

void rf_worker_set_idle(rf_worker *w, const rf_idle_policy *idle)
{
    atomic_store_explicit(&w->idle_spin, idle->spin, memory_order_relaxed);
    atomic_store_explicit(&w->idle_yield, idle->yield, memory_order_relaxed);
    atomic_store_explicit(&w->idle_adaptive, idle->adaptive, memory_order_relaxed);
    atomic_store_explicit(&w->idle_sleep_max_ns,
                          idle->sleep_max_ns > 0 ? idle->sleep_max_ns : RF_NS_PER_MS,
                          memory_order_relaxed);
}

int rf_worker_start(rf_worker **out, const char *name, int cpu, const rf_idle_policy *idle,
                    const rf_worker_ops *ops, rf_err *err)
{
    if (!ops || !ops->poll)
        return rf_err_set(err, EINVAL, "worker %s: no poll function", name);
    if (cpu >= CPU_SETSIZE)
        return rf_err_set(err, EINVAL, "worker %s: cpu %d is out of range", name, cpu);
    rf_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return rf_err_set(err, ENOMEM, "worker %s: out of memory", name);
    w->component = rf_component_register("worker", name);
    if (!w->component) {
        free(w);
        return rf_err_set(err, ENOSPC, "worker %s: component registry is full", name);
    }
    w->ops = *ops;
    w->cpu = cpu;
    rf_worker_set_idle(w, idle);
    rf_component_transition(w->component, RF_STATE_CONFIGURING, NULL);

    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0) {
        rf_component_transition(w->component, RF_STATE_FAILED, strerror(rc));
        free(w);
        return rf_err_set(err, rc, "worker %s: pthread_create: %s", name, strerror(rc));
    }
    char tname[16];
    snprintf(tname, sizeof(tname), "%s", name);
    pthread_setname_np(w->thread, tname);
    *out = w;
    return 0;
}

void rf_worker_wake(rf_worker *w)
{
    /* Pairs with the worker's fence before its last poll (see `sleeping`). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed)) {
        atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->wakeups, 1, memory_order_relaxed);
        if (w->ops.wake)
            w->ops.wake(w->ops.ctx);
        else
            futex(&w->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
}

void rf_worker_request_stop(rf_worker *w)
{
    /* Pairs with the acquire loads in worker_main. */
    atomic_store_explicit(&w->stop_requested, true, memory_order_release);
    atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
    if (w->ops.wake)
        w->ops.wake(w->ops.ctx);
    else
        futex(&w->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL);
}

int rf_worker_join(rf_worker *w)
{
    pthread_join(w->thread, NULL);
    int rc = w->start_error;
    free(w);
    return rc;
}

void rf_worker_stats_read(const rf_worker *w, rf_worker_stats *out)
{
    out->polls = atomic_load_explicit(&w->polls, memory_order_relaxed);
    out->busy_polls = atomic_load_explicit(&w->busy_polls, memory_order_relaxed);
    out->items = atomic_load_explicit(&w->items, memory_order_relaxed);
    out->sleeps = atomic_load_explicit(&w->sleeps, memory_order_relaxed);
    out->wakeups = atomic_load_explicit(&w->wakeups, memory_order_relaxed);
    out->busy_ns = atomic_load_explicit(&w->busy_ns, memory_order_relaxed);
    out->spins_cut = atomic_load_explicit(&w->spins_cut, memory_order_relaxed);
    out->sleep_cost_ns = atomic_load_explicit(&w->sleep_cost_ns, memory_order_relaxed);
    out->cpu = w->cpu;
}

rf_component *rf_worker_component(rf_worker *w)
{
    return w->component;
}
