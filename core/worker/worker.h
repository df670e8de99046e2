/* Pinned worker threads and the lifecycle every component reports.
 *
 * Lifecycle
 *   Every component (worker, listener, sink, storage shard, stats socket)
 *   registers an rf_component and moves through
 *
 *       registered -> configuring -> running -> stopping -> stopped
 *                         |             |          |
 *                         +-----------> failed <---+
 *
 *   (stopped -> configuring restarts a component on reconfiguration;
 *   failed -> configuring is the way back for a component that recovers by
 *   itself, e.g. a storage shard whose disk has room again, which then goes
 *   on to running; "failed" is never left for "running" directly). Any
 *   other transition is refused with -EINVAL, so a state shown by the stats
 *   socket is always one the component really passed through. The state is
 *   written by the component's own thread and read by the control thread.
 *
 * Workers
 *   A worker is a thread pinned to one CPU that calls its poll function in a
 *   loop. poll() does a batch of work and returns how much it did; the idle
 *   strategy decides what happens when it returns 0 several times in a row:
 *   spin `spin` polls, then sched_yield `yield` times, then sleep up to
 *   `sleep_max_ns` on a futex that producers can wake with rf_worker_wake().
 *   A sleep that ends with nothing to do is followed by another at the next
 *   empty poll: the spin and yield budget is spent again only after work.
 *   A sleep also ends when ops.next_due_ns says time-driven work is due, so
 *   `sleep_max_ns` is a bound, not a tick.
 *
 *   Adaptive (idle.adaptive, the default): spinning pays only when work comes
 *   back sooner than a sleep would cost. The worker measures its occupancy
 *   (the share of each 10 ms spent in polls that did work), each idle gap
 *   (from its last work to its next) and, on one sleep in 8, what a sleep
 *   costs it in CPU (CLOCK_THREAD_CPUTIME_ID around the wait, 2-100 us).
 *   At least half busy, it keeps the whole window (spin, yield, as with
 *   adaptive off). Below that it spins at most one sleep's cost and no
 *   yields (ski rental: an idle period then costs at most twice the best
 *   choice), and only while at least half of the recent gaps were that
 *   short; otherwise it sleeps (in its wait, io_uring) at its first empty
 *   poll. Latency: a sleeping worker is woken by the arrival itself (a
 *   critical datagram, or a peer's rf_worker_wake), so what spinning saves
 *   is one wake-up, and only when the gap is shorter than the spin.
 *   rf_worker_wake() costs one fence and one load when the worker is awake and
 *   a futex syscall only when it sleeps; call it once per enqueued batch, not
 *   per event.
 *
 *   Shutdown: rf_worker_request_stop(); the worker keeps polling until poll()
 *   returns 0 (its inputs are drained; stop the producers first), then calls
 *   drain(), which flushes what it holds, and exits. rf_worker_join() waits.
 */
#ifndef RF_CORE_WORKER_H
#define RF_CORE_WORKER_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/error/error.h"

enum rf_lifecycle_state {
    RF_STATE_REGISTERED = 0,
    RF_STATE_CONFIGURING = 1,
    RF_STATE_RUNNING = 2,
    RF_STATE_STOPPING = 3,
    RF_STATE_STOPPED = 4,
    RF_STATE_FAILED = 5,
};

#define RF_COMPONENT_NAME_MAX 48
#define RF_COMPONENT_REASON_MAX 160
#define RF_COMPONENTS_MAX 256

/* The reason and time of the last transition are rewritten at every
 * transition while the control thread may be reading them (a storage shard
 * goes failed -> configuring -> running on its worker while /health reads
 * it), so they sit behind a sequence lock: the owner makes `seq` odd,
 * writes them (relaxed atomic words: no data race), makes it even again;
 * a reader retries until it read the same even `seq` before and after.
 * Read them with rf_component_reason, never directly. */
#define RF_COMPONENT_REASON_WORDS (RF_COMPONENT_REASON_MAX / 8)

typedef struct rf_component {
    char name[RF_COMPONENT_NAME_MAX];
    char kind[16]; /* "worker", "listener", "sink", "storage", "stats", ... */
    /* Written by the owning thread with release after the reason and time;
     * read by the control thread with acquire (pairs). */
    _Atomic int state;
    _Atomic unsigned seq; /* the sequence lock of since_mono_ns and reason */
    _Atomic int64_t since_mono_ns;
    _Atomic uint64_t reason_words[RF_COMPONENT_REASON_WORDS]; /* NUL-terminated text */
    bool in_use; /* control thread: the slot holds a registered component */
} rf_component;

const char *rf_lifecycle_state_name(enum rf_lifecycle_state s);

/* Registers a component (control thread only). Returns NULL when the registry
 * is full. The component lives until rf_component_unregister or
 * rf_component_registry_reset(). */
rf_component *rf_component_register(const char *kind, const char *name);
/* Control thread: removes c, once its owner will never transition it again
 * (a listener a reload removed, freed); the slot is reused. */
void rf_component_unregister(rf_component *c);

/* Moves c to `to`; returns 0, or -EINVAL for a transition the diagram above
 * does not allow (the state is then unchanged). reason may be NULL. */
int rf_component_transition(rf_component *c, enum rf_lifecycle_state to, const char *reason);

static inline enum rf_lifecycle_state rf_component_state(const rf_component *c)
{
    /* Pairs with the release store in rf_component_transition. */
    return (enum rf_lifecycle_state)atomic_load_explicit(&c->state, memory_order_acquire);
}

/* Copies the reason of c's last transition into out (any thread; a whole
 * reason, never a mix of two). Returns the time of that transition. */
int64_t rf_component_reason(const rf_component *c, char *out, size_t size);

/* The registry's slots (control thread): rf_component_at(i) for i below
 * rf_component_count() is a component, or NULL for a slot freed by
 * rf_component_unregister (skip it). */
unsigned rf_component_count(void);
rf_component *rf_component_at(unsigned i);
/* Forgets every component (tests and process exit only). */
void rf_component_registry_reset(void);

typedef struct rf_worker rf_worker;

typedef struct rf_idle_policy {
    uint32_t spin;        /* empty polls before yielding */
    uint32_t yield;       /* yields before sleeping */
    int64_t sleep_max_ns; /* longest sleep (wake-ups and next_due_ns end it sooner) */
    bool adaptive;        /* scale spin and yield by what spinning recently paid */
} rf_idle_policy;

typedef struct rf_worker_ops {
    /* Optional: runs first on the worker's own thread (allocate core-local state). */
    int (*start)(void *ctx, rf_err *err);
    /* Does one batch of work; returns the number of items handled (0 = idle). */
    uint32_t (*poll)(void *ctx);
    /* Optional: after the inputs are drained at shutdown; flushes what is held. */
    void (*drain)(void *ctx);
    /* Optional pair replacing the futex sleep, for a worker that must also
     * wake on something else (an io_uring completion): wait() blocks at most
     * timeout_ns or until wake() is called from another thread; wake() must be
     * safe from any thread and cheap when repeated. */
    void (*wait)(void *ctx, int64_t timeout_ns);
    void (*wake)(void *ctx);
    /* Optional: CLOCK_MONOTONIC ns at which poll() next has time-driven work
     * (a tick), 0 for none; a sleep ends then. Worker thread. */
    int64_t (*next_due_ns)(void *ctx);
    void *ctx;
} rf_worker_ops;

typedef struct rf_worker_stats {
    uint64_t polls;        /* calls of poll() */
    uint64_t busy_polls;   /* polls that returned > 0 */
    uint64_t items;        /* sum of what poll() returned */
    uint64_t sleeps;       /* futex sleeps entered */
    uint64_t wakeups;      /* futex wakes issued by producers */
    uint64_t busy_ns;      /* time inside polls that returned > 0 */
    uint64_t spins_cut;    /* idle periods whose spin the adaptive policy shortened */
    int64_t sleep_cost_ns; /* CPU a sleep costs the worker (adaptive: measured; else 0) */
    int cpu;               /* pinned CPU, -1 when not pinned */
} rf_worker_stats;

/* Starts a worker thread named `name` pinned to `cpu` (-1: not pinned).
 * The worker registers an rf_component of kind "worker". Returns 0 or a
 * negative errno with err filled (e.g. pinning to a CPU that is offline). */
int rf_worker_start(rf_worker **out, const char *name, int cpu, const rf_idle_policy *idle,
                    const rf_worker_ops *ops, rf_err *err);

/* Producer side, after enqueueing a batch for this worker. */
void rf_worker_wake(rf_worker *w);

/* Asks the worker to drain and stop (any thread). */
void rf_worker_request_stop(rf_worker *w);
/* Whether the worker running the calling thread was asked to stop; false
 * outside a worker thread. For code that waits inside poll() (a sink
 * holding back-pressure) and must give up when the engine stops. */
bool rf_worker_current_stop_requested(void);

/* Waits for the worker to stop and frees it. Returns 0, or the negative errno
 * that start() failed with. */
int rf_worker_join(rf_worker *w);

void rf_worker_stats_read(const rf_worker *w, rf_worker_stats *out);
rf_component *rf_worker_component(rf_worker *w);

/* Changes the idle policy of a running worker (control thread). */
void rf_worker_set_idle(rf_worker *w, const rf_idle_policy *idle);

#endif
