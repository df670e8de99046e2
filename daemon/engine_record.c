/* Recording from the listeners (daemon/tap.h): the control thread's side of
 * the tap, published to the workers and taken back through a grace period
 * (tap_req / tap_ack; the worker's side is tap_quiesce in
 * engine_dataplane.c). */
#include "daemon/engine_pvt.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/log/log.h"

int rf_engine_record_start(rf_engine *e, const rf_tap_options *opt, rf_err *err)
{
    if (atomic_load_explicit(&e->tap, memory_order_relaxed))
        return rf_err_set(err, EBUSY, "a recording is running already (to %s): record stop first",
                          rf_tap_path(atomic_load_explicit(&e->tap, memory_order_relaxed)));
    rf_tap *t;
    int rc = rf_tap_start(opt, e->n_workers, &t, err);
    if (rc < 0)
        return rc;
    /* Pairs with the workers' acquire loads: the tap is initialised. */
    atomic_store_explicit(&e->tap, t, memory_order_release);
    rf_log_info("engine", "recording what the listeners receive to %s", opt->path);
    return 0;
}

int rf_engine_record_stop(rf_engine *e, rf_tap_stats *final, rf_err *err)
{
    rf_tap *t = atomic_load_explicit(&e->tap, memory_order_relaxed);
    if (!t)
        return rf_err_set(err, ENOENT, "no recording is running");
    /* Relaxed: the release stores of tap_req below order it before what
     * the workers do after their acquire in tap_quiesce. */
    atomic_store_explicit(&e->tap, NULL, memory_order_relaxed);
    /* Grace period: a capture runs inside a worker's loop, so once a worker
     * has answered at the top of a loop begun after this request, none of
     * its captures can still use the tap (tap_quiesce). A sleeping worker
     * is woken to answer. */
    const uint64_t epoch = ++e->tap_epoch;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        /* Pairs with the acquire in tap_quiesce. */
        atomic_store_explicit(&e->workers[i]->tap_req, epoch, memory_order_release);
        rf_worker_wake(e->workers[i]->thread);
    }
    int64_t deadline = rf_clock_mono_ns() + e->tap_wait_ns;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_engine_worker *w = e->workers[i];
        /* Pairs with the release store of tap_ack in tap_quiesce; a worker
         * that is not running any more loops no more (its state's release,
         * this acquire). */
        while (atomic_load_explicit(&w->tap_ack, memory_order_acquire) != epoch &&
               rf_component_state(rf_worker_component(w->thread)) == RF_STATE_RUNNING) {
            if (rf_clock_mono_ns() > deadline) {
                /* Never free what a stuck worker might still use: the
                 * tap's memory stays allocated; its thread stops and the
                 * file is closed with what the rings held. */
                rf_tap_stats st;
                rf_err terr;
                rf_err_clear(&terr);
                (void)rf_tap_abandon(t, &st, &terr);
                if (e->n_abandoned_taps < sizeof(e->abandoned_taps) / sizeof(e->abandoned_taps[0]))
                    e->abandoned_taps[e->n_abandoned_taps++] = t; /* else left for good */
                if (final)
                    *final = st;
                rf_log_error("engine",
                             "worker-%u did not loop within %lld ms; the recording is "
                             "closed (%lu records), its buffers are kept until the engine stops",
                             i, (long long)(e->tap_wait_ns / RF_NS_PER_MS),
                             (unsigned long)st.written);
                return rf_err_set(err, ETIMEDOUT,
                                  "worker-%u did not loop within %lld ms; the "
                                  "recording is closed",
                                  i, (long long)(e->tap_wait_ns / RF_NS_PER_MS));
            }
            rf_worker_wake(w->thread);
            usleep(200);
        }
    }
    rf_tap_stats st;
    int rc = rf_tap_stop(t, &st, err);
    if (final)
        *final = st;
    rf_log_info("engine",
                "recording stopped: %lu chunks recorded (%lu bytes), %lu records in %u file(s), "
                "%lu not recorded (ring full), %lu too large, %lu write errors",
                (unsigned long)st.captured, (unsigned long)st.bytes, (unsigned long)st.written,
                st.files, (unsigned long)st.dropped_full, (unsigned long)st.dropped_large,
                (unsigned long)st.write_errors);
    return rc;
}

bool rf_engine_record_stats(const rf_engine *e, rf_tap_stats *out, char *path, size_t path_size)
{
    rf_tap *t = atomic_load_explicit(&((rf_engine *)e)->tap, memory_order_acquire);
    if (!t)
        return false;
    rf_tap_stats_read(t, out);
    snprintf(path, path_size, "%s", rf_tap_path(t));
    return true;
}
