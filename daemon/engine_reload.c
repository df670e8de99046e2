/* The engine's live reload (rf_engine_reload, daemon/engine.h): the new
 * pipeline prepared on every worker and swapped at its next tick, live
 * listener changes, log level and idle policy. Control thread. */
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
#include "daemon/memory_budget.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"

/* Every worker runs on ps now: the settings it replaced can go (the first
 * ones belong to the caller of rf_engine_start, not to us). The series
 * tables keep their size, so the running max_series stays. */
static void pipeline_adopt(rf_engine *e, rf_pipeline_settings *ps)
{
    const uint32_t max_series = e->settings.pipeline.max_series;
    if (e->live_pipeline) {
        rf_pipeline_settings_release(e->live_pipeline);
        free(e->live_pipeline);
    }
    e->live_pipeline = ps;
    e->settings.pipeline = *ps;
    e->settings.pipeline.max_series = max_series;
}

/* Before a reload: a change of the previous one that some worker has not
 * taken yet stays queued, never overwritten, so the new reload is refused
 * (-EBUSY, nothing changed). Once every worker has taken it, what it
 * replaced is freed here. */
static int reload_settle(rf_engine *e, rf_err *err)
{
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_shard *sh = e->workers[i]->shard;
        if (!rf_pipeline_applied(rf_shard_pipeline(sh)))
            return rf_err_set(err, EBUSY,
                              "worker-%u has not taken the previous reload's pipeline "
                              "yet (it stays queued); nothing changed, reload again once it has",
                              i);
        if (!rf_shard_listeners_settled(sh))
            return rf_err_set(err, EBUSY,
                              "worker-%u has not taken the previous reload's listener "
                              "change yet (it stays queued); nothing changed, reload again once "
                              "it has",
                              i);
    }
    if (e->queued_pipeline) {
        pipeline_adopt(e, e->queued_pipeline);
        e->queued_pipeline = NULL;
    }
    /* Listeners the last reload removed that retired after it returned. */
    rf_engine_reap_inputs(e);
    return 0;
}

/* Builds the new pipeline stages of every shard (all or nothing), hands
 * them to the workers and waits until each has swapped. Takes ownership of
 * next->pipeline (zeroed there). */
static int reload_pipeline(rf_engine *e, rf_settings *next, rf_err *err)
{
    rf_pipeline_settings *ps = malloc(sizeof(*ps));
    if (!ps)
        return rf_err_set(err, ENOMEM, "pipeline: out of memory");
    *ps = next->pipeline;
    memset(&next->pipeline, 0, sizeof(next->pipeline));
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_pipeline *p = (rf_pipeline *)rf_shard_pipeline(e->workers[i]->shard);
        /* The new stages go on worker i's node, as the first ones did. */
        rf_mem_scope_enter(&e->memory[i]);
        int rc = rf_pipeline_prepare(p, ps, err);
        rf_mem_scope_leave(&e->memory[i]);
        if (rc < 0) {
            for (uint32_t j = 0; j < i; j++)
                rf_pipeline_discard_prepared(
                    (rf_pipeline *)rf_shard_pipeline(e->workers[j]->shard));
            rf_pipeline_settings_release(ps);
            free(ps);
            return rf_err_wrap(err, "pipeline: ");
        }
    }
    for (uint32_t i = 0; i < e->n_workers; i++) {
        rf_pipeline_publish((rf_pipeline *)rf_shard_pipeline(e->workers[i]->shard));
        rf_worker_wake(e->workers[i]->thread);
    }
    /* Workers swap at their next tick (every 10 ms, or when woken). */
    int64_t deadline = rf_clock_mono_ns() + e->reload_wait_ns;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        const rf_pipeline *p = rf_shard_pipeline(e->workers[i]->shard);
        while (!rf_pipeline_applied(p) && rf_clock_mono_ns() < deadline)
            usleep(1000);
        if (!rf_pipeline_applied(p)) {
            /* The worker keeps the new stages pending and takes them at its
             * next tick; until then it runs on the old settings, the others
             * on ps: both stay (reload_settle, engine_free), and
             * e->settings.pipeline, which the start's stages may still
             * read, is not touched. */
            rf_log_error("engine", "worker-%u did not take the new pipeline within %lld ms", i,
                         (long long)(e->reload_wait_ns / RF_NS_PER_MS));
            e->queued_pipeline = ps;
            return 1; /* applied, but not everywhere yet: the caller says so */
        }
    }
    pipeline_adopt(e, ps);
    return 0;
}

/* ---- live listener changes ------------------------------------------------ */

/* Whether two configurations of one listener name describe the same
 * socket and behaviour (the handler is the shard's, not configuration). */
static bool listener_same(const rf_listener_config *a, const rf_listener_config *b)
{
    return a->transport == b->transport && a->protocol == b->protocol &&
           strcmp(a->address, b->address) == 0 && a->port == b->port &&
           a->rcvbuf_bytes == b->rcvbuf_bytes && a->max_connections == b->max_connections &&
           a->max_line_bytes == b->max_line_bytes && a->idle_timeout_ns == b->idle_timeout_ns &&
           a->worker_mask == b->worker_mask && a->critical == b->critical &&
           a->graphite_templates == b->graphite_templates && /* interned: equal sets, one pointer */
           memcmp(&a->otlp, &b->otlp, sizeof(a->otlp)) == 0;
}

static const rf_listener_config *listener_named(const rf_ingest_settings *in, const char *name)
{
    for (size_t i = 0; i < in->n_listeners; i++)
        if (strcmp(in->listeners[i].name, name) == 0)
            return &in->listeners[i];
    return NULL;
}

/* Holds a port one of our running listeners binds (so a probe without
 * SO_REUSEPORT would find it taken by ourselves). */
static bool port_is_ours(const rf_ingest_settings *cur, const rf_listener_config *lc)
{
    for (size_t i = 0; i < cur->n_listeners; i++) {
        const rf_listener_config *o = &cur->listeners[i];
        if (o->transport == lc->transport && o->port == lc->port &&
            strcmp(o->address, lc->address) == 0)
            return true;
    }
    return false;
}

/* Applies the difference between the running listeners and next's: new
 * ones are bound first, on every worker that takes them (a bind error
 * changes nothing), then each worker attaches its new listeners and removes
 * the ones that went or changed (a changed listener is removed and added:
 * on the same port, the new socket binds beside the old one, SO_REUSEPORT,
 * and the old one's queue is still read before it closes). Listeners whose
 * configuration did not change keep their sockets and connections. Returns
 * 0 (nothing to do), 1 (applied) or a negative errno. */
static int listeners_prepare(rf_engine *e, const rf_settings *next, bool *changed, rf_err *err)
{
    const rf_ingest_settings *cur = &e->settings.ingest, *nx = &next->ingest;
    bool add[RF_SETTINGS_MAX_LISTENERS] = {false};
    const char *remove[RF_SETTINGS_MAX_LISTENERS];
    uint32_t n_remove = 0, n_add = 0;
    *changed = false;
    for (size_t i = 0; i < cur->n_listeners; i++) {
        const rf_listener_config *n = listener_named(nx, cur->listeners[i].name);
        if (!n || !listener_same(&cur->listeners[i], n))
            remove[n_remove++] = cur->listeners[i].name;
    }
    for (size_t i = 0; i < nx->n_listeners; i++) {
        const rf_listener_config *o = listener_named(cur, nx->listeners[i].name);
        if (!o || !listener_same(o, &nx->listeners[i])) {
            add[i] = true;
            n_add++;
            int rc;
            if (!port_is_ours(cur, &nx->listeners[i]) &&
                (rc = rf_shard_probe_listener(&nx->listeners[i], err)) < 0)
                return rc;
        }
    }
    if (n_add == 0 && n_remove == 0)
        return 0;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        int rc = rf_shard_listeners_prepare(e->workers[i]->shard, next, add, remove, n_remove, err);
        if (rc < 0) {
            for (uint32_t j = 0; j < e->n_workers; j++)
                rf_shard_listeners_discard(e->workers[j]->shard);
            return rc;
        }
    }
    for (size_t i = 0; i < nx->n_listeners; i++)
        if (add[i] && nx->listeners[i].critical &&
            !atomic_load_explicit(&e->critical_lane, memory_order_relaxed)) {
            int rc = rf_engine_create_critical_rings(e, err);
            if (rc < 0) {
                for (uint32_t j = 0; j < e->n_workers; j++)
                    rf_shard_listeners_discard(e->workers[j]->shard);
                return rc;
            }
            /* Pairs with the acquire in serve_critical: rings first. */
            atomic_store_explicit(&e->critical_lane, true, memory_order_release);
            break;
        }
    *changed = true;
    return 1;
}

static void listeners_discard(rf_engine *e)
{
    for (uint32_t i = 0; i < e->n_workers; i++)
        rf_shard_listeners_discard(e->workers[i]->shard);
}

/* Hands the prepared changes to the workers and waits until each took its
 * own (10 s; a worker that does not is logged, its change stays queued).
 * Returns how many workers had not taken theirs by then. */
static uint32_t listeners_apply(rf_engine *e, const rf_settings *next)
{
    uint32_t late = 0;
    bool waiting[RF_DAEMON_MAX_WORKERS] = {false};
    for (uint32_t i = 0; i < e->n_workers; i++) {
        waiting[i] = rf_shard_listeners_publish(e->workers[i]->shard);
        if (waiting[i])
            rf_worker_wake(e->workers[i]->thread);
    }
    int64_t deadline = rf_clock_mono_ns() + e->reload_wait_ns;
    for (uint32_t i = 0; i < e->n_workers; i++) {
        while (waiting[i] && !rf_shard_listeners_applied(e->workers[i]->shard)) {
            if (rf_clock_mono_ns() > deadline) {
                rf_log_error("engine", "worker-%u did not take its listener change within %lld ms",
                             i, (long long)(e->reload_wait_ns / RF_NS_PER_MS));
                late++;
                break;
            }
            usleep(1000);
        }
    }
    /* The removed listeners close as soon as their queues are read and
     * their TCP clients gone: free them now (within the same deadline), so
     * neither memory nor /health keeps them after the reload returns. One
     * that takes longer is freed at the next reload or control tick. */
    for (uint32_t i = 0; i < e->n_workers; i++)
        while (!late && rf_shard_listeners_retiring(e->workers[i]->shard) &&
               rf_clock_mono_ns() < deadline)
            usleep(1000);
    rf_engine_reap_inputs(e);
    e->settings.ingest.n_listeners = next->ingest.n_listeners;
    memcpy(e->settings.ingest.listeners, next->ingest.listeners,
           next->ingest.n_listeners * sizeof(next->ingest.listeners[0]));
    e->settings.section_hash[RF_SECTION_LISTENERS] = next->section_hash[RF_SECTION_LISTENERS];
    return late;
}

int rf_engine_reload(rf_engine *e, rf_settings *next, rf_err *err)
{
    next->ingest.parse.field_types = e->field_types;     /* new listeners share the table */
    next->ingest.parse.collectd_auth = e->collectd_auth; /* and the collectd users */
    const rf_daemon_config *cur = &e->settings.daemon, *nx = &next->daemon;
    /* The pipeline first: building it can still fail (a sink that cannot be
     * opened), and then nothing at all changes. */
    bool pipeline_changed =
        next->section_hash[RF_SECTION_PIPELINE] != e->settings.section_hash[RF_SECTION_PIPELINE];
    /* Nothing is prepared while a previous change is still queued. */
    int settle = reload_settle(e, err);
    if (settle < 0)
        return settle;
    /* collectd's auth file, read again (the level and the path take a
     * restart, as the rest of `ingest:`); applied with the rest below. */
    rf_collectd_auth *auth = NULL;
    if (e->collectd_auth &&
        (!(auth = rf_collectd_auth_new(err)) ||
         rf_collectd_auth_load(auth, e->settings.ingest.collectd_security,
                               e->settings.ingest.collectd_auth_file, err) < 0)) {
        rf_collectd_auth_free(auth);
        return rf_err_wrap(err, "ingest.collectd.auth_file: ");
    }
    /* Certificates, keys and credential files are read again at every
     * reload, changed or not (a renewed certificate keeps its path): any that
     * does not load refuses the reload before anything changed. */
    int sec = rf_http_security_apply(next->ingest.listeners, next->ingest.n_listeners, err);
    if (sec < 0) {
        rf_collectd_auth_free(auth);
        return rf_err_wrap(err, "listeners: ");
    }
    const uint32_t max_series_was = e->settings.pipeline.max_series;
    /* max_series: auto moves with the pipeline's worst case; the running
     * tables keep their size when the new file still fits with it. */
    if (e->settings.pipeline.max_series_auto)
        (void)rf_memory_budget_keep_max_series(next, max_series_was);
    const uint32_t max_series_new = next->pipeline.max_series;
    /* Listeners are bound before anything is applied: a port that cannot
     * be bound refuses the whole reload. */
    bool listeners_changed = false;
    if (next->section_hash[RF_SECTION_LISTENERS] !=
        e->settings.section_hash[RF_SECTION_LISTENERS]) {
        int rc = listeners_prepare(e, next, &listeners_changed, err);
        if (rc < 0) {
            rf_collectd_auth_free(auth);
            return rf_err_wrap(err, "listeners: ");
        }
        if (rc == 0) /* only comments or order changed */
            e->settings.section_hash[RF_SECTION_LISTENERS] =
                next->section_hash[RF_SECTION_LISTENERS];
    }
    bool pipeline_late = false;
    if (pipeline_changed) {
        int rc = reload_pipeline(e, next, err);
        pipeline_late = rc > 0;
        if (rc < 0) {
            listeners_discard(e);
            rf_collectd_auth_free(auth);
            return rc;
        }
        e->settings.section_hash[RF_SECTION_PIPELINE] = next->section_hash[RF_SECTION_PIPELINE];
    }
    uint32_t listeners_late = listeners_changed ? listeners_apply(e, next) : 0;
    char fixed[768] = "";
    size_t len = 0;
#define RELOAD_NOTE(...)                                                                           \
    do {                                                                                           \
        if (len < sizeof(fixed))                                                                   \
            len += (size_t)snprintf(fixed + len, sizeof(fixed) - len, __VA_ARGS__);                \
    } while (0)
    /* Not a restart: the change is queued and the worker takes it at its
     * next loop. But "applied" would not be true yet. */
    char late[160] = "";
    if (pipeline_late || listeners_late)
        snprintf(late, sizeof(late),
                 "%s%s%s not taken by every worker within %lld ms (queued, "
                 "see the log)",
                 pipeline_late ? "the pipeline" : "",
                 pipeline_late && listeners_late ? " and " : "",
                 listeners_late ? "the listener change" : "",
                 (long long)(e->reload_wait_ns / RF_NS_PER_MS));
    if (nx->engine.workers != cur->engine.workers)
        RELOAD_NOTE(" engine.workers (%u -> %u)", cur->engine.workers, nx->engine.workers);
    if (nx->engine.ring.capacity != cur->engine.ring.capacity)
        RELOAD_NOTE(" engine.ring.capacity (%u -> %u)", cur->engine.ring.capacity,
                    nx->engine.ring.capacity);
    if (nx->engine.ring.full_policy != cur->engine.ring.full_policy)
        RELOAD_NOTE(" engine.ring.full_policy");
    if (nx->engine.pin_workers != cur->engine.pin_workers ||
        nx->engine.n_cpus != cur->engine.n_cpus ||
        memcmp(nx->engine.cpus, cur->engine.cpus, sizeof(nx->engine.cpus)))
        RELOAD_NOTE(" engine.pin_workers/cpus");
    if (strcmp(nx->engine.data_dir, cur->engine.data_dir) != 0)
        RELOAD_NOTE(" engine.data_dir");
    if (strcmp(nx->engine.run_dir, cur->engine.run_dir) != 0)
        RELOAD_NOTE(" engine.run_dir");
    /* The new file was checked against its own limit; /health keeps
     * watching the one the daemon started with. */
    if (nx->engine.memory_limit != cur->engine.memory_limit)
        RELOAD_NOTE(" engine.memory_limit");
    /* Opened before privileges were given up (core/log: rf_log_reopen
     * reopens the same path, for logrotate). */
    if (strcmp(nx->log.file, cur->log.file) != 0)
        RELOAD_NOTE(" log.file");
    if (pipeline_changed && max_series_new != max_series_was)
        RELOAD_NOTE(" pipeline.max_series (%u -> %u)", max_series_was, max_series_new);
    /* Sections applied only at start (the stats section is the ops server's
     * to report; the pipeline was applied above). */
    for (int i = 0; i < RF_SECTION__COUNT; i++)
        if (i != RF_SECTION_STATS && i != RF_SECTION_PIPELINE && i != RF_SECTION_LISTENERS &&
            next->section_hash[i] != e->settings.section_hash[i])
            RELOAD_NOTE(" %s", rf_settings_section_names[i]);
#undef RELOAD_NOTE

    if (auth)
        rf_collectd_auth_take(e->collectd_auth, auth);
    /* Live: idle policy and logging. */
    const rf_idle_policy idle = {
        .spin = nx->engine.idle.spin,
        .yield = nx->engine.idle.yield,
        .sleep_max_ns = (int64_t)nx->engine.idle.sleep_max_ns,
        .adaptive = nx->engine.idle.adaptive,
    };
    for (uint32_t i = 0; i < e->n_workers; i++)
        rf_worker_set_idle(e->workers[i]->thread, &idle);
    rf_log_set_level(nx->log.level);
    rf_log_set_format(nx->log.format);

    /* The engine keeps its own settings (the shards point into them); only
     * what was applied changes. Nothing of `next` is kept: the caller frees it. */
    e->settings.daemon.engine.idle = nx->engine.idle;
    e->settings.daemon.log.level = nx->log.level;
    e->settings.daemon.log.format = nx->log.format;

    if (len > 0) {
        rf_err_set(err, 0, "these settings need a restart and were left as they are:%s%s%s", fixed,
                   late[0] ? "; " : "", late);
        return 1;
    }
    if (late[0]) {
        rf_err_set(err, 0, "%s", late);
        return 1;
    }
    return 0;
}
