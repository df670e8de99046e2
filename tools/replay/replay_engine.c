/* The in-process replay engine: the daemon's configuration, parsers,
 * pipelines and store, driven by one thread on the recording's clocks. See
 * engine.h for the determinism contract. */
#include "tools/replay/replay_engine.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/clock/clock.h"
#include "core/event/event.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/field_types_seed.h"
#include "daemon/settings.h"
#include "storage/segment/segment.h"
#include "storage/store/store.h"

/* Events a parser collects before its flush (as daemon/worker_shard.c). */
#define RE_PARSE_BATCH 256
/* Inputs: the configured listeners, then listener names of the recording
 * the configuration does not have. */
#define RE_MAX_INPUTS (RF_SETTINGS_MAX_LISTENERS + 64)

typedef struct re_input {
    rf_replay_engine *e;
    char name[RF_REC_NAME_MAX + 1];
    uint8_t protocol; /* the parser's: enum rf_rec_protocol (= rf_listen_protocol) */
    bool critical;    /* a `class: critical` listener: its events are critical */
    bool configured;  /* a listener of the configuration (else: a name only recorded) */
    rf_parse_ctx *parser;
    rf_event batch[RE_PARSE_BATCH];
} re_input;

/* Peer messages to one shard (stages/pipeline/pipeline.h "Between shards"), in the
 * order they were sent; grown by doubling, reused. */
typedef struct re_peer_queue {
    rf_event *ev;
    uint32_t n, cap;
} re_peer_queue;

struct rf_replay_engine {
    rf_settings settings; /* owns the pipeline configuration the pipelines point into */
    bool have_settings;
    char dir[RF_DAEMON_PATH_MAX];
    char store_dir[RF_DAEMON_PATH_MAX];
    uint32_t workers;
    int64_t tick_ns;
    rf_store *store;
    rf_field_types *field_types;     /* every listener's parser, as in the daemon */
    rf_collectd_auth *collectd_auth; /* the configuration's collectd users, or NULL */
    rf_pipeline **pipes;
    rf_event (*part)[RE_PARSE_BATCH]; /* per shard: its share of one parser flush */
    uint32_t *n_part;
    re_peer_queue *peer_in; /* per shard: peer messages sent to it, not yet delivered */
    bool delivering_peers;
    re_input *inputs[RE_MAX_INPUTS];
    uint32_t n_inputs;
    re_input *last_input; /* records of one listener come in runs */
    bool warned_protocol, warned_inputs;
    bool *forwarder; /* per sink: an lp_udp / lp_tcp sink made count_only */

    /* The engine's clock: recorded monotonic time + offset (never backwards). */
    bool started;
    int64_t mono_offset;
    int64_t now_mono, now_wall; /* of the latest record */
    int64_t first_mono;
    int64_t next_tick;
    rf_replay_summary sum;
};

/* ---- peer messages -------------------------------------------------------- */

/* The in-process transport: queued per destination, delivered by
 * deliver_peers in shard order, so a replay stays deterministic. */
static void peer_send(void *ctx, uint32_t to, const rf_event *ev, uint32_t n)
{
    rf_replay_engine *e = ctx;
    re_peer_queue *q = &e->peer_in[to];
    if (q->n + n > q->cap) {
        uint32_t cap = q->cap ? q->cap : 256;
        while (cap < q->n + n)
            cap *= 2;
        rf_event *grown = realloc(q->ev, (size_t)cap * sizeof(rf_event));
        if (!grown) {
            e->sum.peer_dropped += n;
            for (uint32_t i = 0; i < n; i++)
                if (ev[i].flags & RF_EVF_OWNS_AUX)
                    free((void *)(uintptr_t)ev[i].aux);
            return;
        }
        q->ev = grown;
        q->cap = cap;
    }
    memcpy(q->ev + q->n, ev, (size_t)n * sizeof(rf_event));
    q->n += n;
}

/* Hands every queued peer message to its shard, shards in index order,
 * until none is left (a delivery may send more). */
static void deliver_peers(rf_replay_engine *e)
{
    if (e->delivering_peers)
        return;
    e->delivering_peers = true;
    for (bool any = true; any;) {
        any = false;
        for (uint32_t s = 0; s < e->workers; s++) {
            re_peer_queue *q = &e->peer_in[s];
            uint32_t done = 0;
            while (done < q->n) {
                /* A copy of one batch: delivering may append to (and move) q. */
                rf_event batch[RE_PARSE_BATCH];
                uint32_t m = q->n - done < RE_PARSE_BATCH ? q->n - done : RE_PARSE_BATCH;
                memcpy(batch, q->ev + done, (size_t)m * sizeof(rf_event));
                done += m;
                rf_pipeline_process_at(e->pipes[s], batch, m, e->now_mono);
                any = true;
            }
            q->n = 0;
        }
    }
    e->delivering_peers = false;
}

/* ---- clock ------------------------------------------------------------- */

static void tick_all(rf_replay_engine *e, int64_t mono, int64_t wall)
{
    for (uint32_t s = 0; s < e->workers; s++)
        rf_pipeline_tick(e->pipes[s], mono, wall);
    deliver_peers(e);
    e->sum.ticks++;
}

/* Moves the clock to a record's times: every tick point up to it first. */
static void advance(rf_replay_engine *e, int64_t rec_mono, int64_t rec_wall)
{
    int64_t mono = rec_mono + e->mono_offset;
    if (!e->started) {
        e->started = true;
        e->first_mono = mono;
        e->sum.first_wall_ns = rec_wall;
        e->now_mono = mono;
        e->now_wall = rec_wall;
        tick_all(e, mono, rec_wall); /* before anything is appended (store.h "Event clock") */
        /* The next multiple of tick_ns after it (floor division: mono may be negative). */
        int64_t q = mono / e->tick_ns - (mono % e->tick_ns < 0);
        e->next_tick = (q + 1) * e->tick_ns;
        return;
    }
    if (mono < e->now_mono) {
        /* Another recording's timeline, or a damaged one: time stands still
         * for this record and runs on from here. */
        e->mono_offset += e->now_mono - mono;
        mono = e->now_mono;
        e->sum.clock_steps_back++;
    }
    while (e->next_tick <= mono) {
        tick_all(e, e->next_tick, e->now_wall + (e->next_tick - e->now_mono));
        e->next_tick += e->tick_ns;
    }
    e->now_mono = mono;
    e->now_wall = rec_wall;
}

/* ---- dispatch ------------------------------------------------------------ */

/* A parser's flush: each event to the shard that owns it, in order, then the
 * shards in index order. */
static void input_flush(void *user, rf_event *events, size_t n)
{
    re_input *in = user;
    rf_replay_engine *e = in->e;
    if (in->critical)
        for (size_t i = 0; i < n; i++)
            events[i].priority = RF_PRIO_CRITICAL;
    for (size_t i = 0; i < n; i++) {
        uint32_t owner = rf_event_owner(events[i].series_id, e->workers);
        e->part[owner][e->n_part[owner]++] = events[i]; /* n <= RE_PARSE_BATCH */
    }
    for (uint32_t s = 0; s < e->workers; s++) {
        if (!e->n_part[s])
            continue;
        rf_pipeline_process_at(e->pipes[s], e->part[s], e->n_part[s], e->now_mono);
        e->n_part[s] = 0;
    }
    deliver_peers(e);
}

static re_input *input_new(rf_replay_engine *e, const char *name, uint8_t protocol,
                           uint16_t source_id, uint32_t max_line, bool critical, rf_err *err)
{
    if (e->n_inputs == RE_MAX_INPUTS) {
        rf_err_set(err, ENOSPC, "replay: more than %u listener names", RE_MAX_INPUTS);
        return NULL;
    }
    re_input *in = calloc(1, sizeof(*in));
    if (!in) {
        rf_err_set(err, ENOMEM, "replay: out of memory for listener %s", name);
        return NULL;
    }
    in->e = e;
    snprintf(in->name, sizeof(in->name), "%s", name);
    in->protocol = protocol;
    in->critical = critical;
    /* What daemon/worker_shard.c gives each listener's parser. */
    rf_parse_config pc = e->settings.ingest.parse;
    pc.forget_ns = e->settings.pipeline.series_idle_ttl_ns / 2;
    pc.source_id = source_id;
    pc.max_line_len = max_line;
    in->parser = rf_parse_ctx_new(&pc, in->batch, RE_PARSE_BATCH, input_flush, in, err);
    if (!in->parser) {
        rf_err_wrap(err, "listener %s: ", name);
        free(in);
        return NULL;
    }
    e->inputs[e->n_inputs++] = in;
    return in;
}

static int inputs_configure(rf_replay_engine *e, rf_err *err)
{
    const rf_ingest_settings *ing = &e->settings.ingest;
    for (size_t i = 0; i < ing->n_listeners; i++) {
        const rf_listener_config *lc = &ing->listeners[i];
        re_input *in = input_new(e, lc->name, (uint8_t)lc->protocol, (uint16_t)i,
                                 lc->max_line_bytes, lc->critical, err);
        if (!in)
            return -(err->code ? err->code : ENOMEM);
        in->configured = true;
    }
    return 0;
}

static re_input *input_of(rf_replay_engine *e, const rf_rec *r)
{
    if (e->last_input && strcmp(e->last_input->name, r->name) == 0)
        return e->last_input;
    for (uint32_t i = 0; i < e->n_inputs; i++)
        if (strcmp(e->inputs[i]->name, r->name) == 0)
            return e->last_input = e->inputs[i];
    /* Not in the configuration: the recorded protocol and the default
     * limits, standard class; its source id follows the configured ones. */
    rf_err err;
    rf_err_clear(&err);
    re_input *in = input_new(e, r->name, r->protocol, (uint16_t)e->n_inputs, 0, false, &err);
    if (!in) {
        if (!e->warned_inputs)
            fprintf(stderr,
                    "ringflow replay: %s; records of such listeners are skipped "
                    "(counted)\n",
                    err.msg);
        e->warned_inputs = true;
        return NULL;
    }
    return e->last_input = in;
}

void rf_replay_engine_feed(rf_replay_engine *e, const rf_rec *r)
{
    e->sum.records++;
    e->sum.payload_bytes += r->payload_len;
    advance(e, r->mono_ns, r->wall_ns);
    e->sum.last_wall_ns = r->wall_ns;
    if (r->protocol > RF_REC_COLLECTD) {
        e->sum.bad_protocol++;
        return;
    }
    if (r->protocol == RF_REC_HTTP) {
        e->sum.http_records++;
        return;
    }
    if (r->payload_len == 0)
        return; /* a connection's open: nothing to parse */
    re_input *in = input_of(e, r);
    if (!in || !in->configured)
        e->sum.unknown_listener++;
    if (!in) {
        e->sum.skipped_records++;
        return;
    }
    if (in->configured && r->protocol != in->protocol && !e->warned_protocol) {
        fprintf(stderr,
                "ringflow replay: listener %s was recorded as %s but is %s in the "
                "configuration; its records are parsed as recorded\n",
                r->name, rf_rec_protocol_name(r->protocol), rf_rec_protocol_name(in->protocol));
        e->warned_protocol = true;
    }
    char src[64];
    const rf_recv_info rx = {.wall_ns = r->wall_ns,
                             .mono_ns = e->now_mono,
                             .source_addr = rf_rec_source_format(r, src, sizeof(src))};
    const char *data = (const char *)r->payload;
    if (r->flags & RF_REC_F_TRUNCATED) {
        /* The capture cut it (over 64 KiB), as a listener cuts what passes its
         * buffer: rejected whole, as the daemon does. */
        e->sum.truncated++;
        rf_parse_reject_external(in->parser, &rx, RF_REJ_LINE_TOO_LONG, data, r->payload_len);
        return;
    }
    switch (r->protocol) {
    case RF_REC_INFLUX: rf_parse_influx(in->parser, &rx, data, r->payload_len); break;
    case RF_REC_STATSD: rf_parse_statsd(in->parser, &rx, data, r->payload_len); break;
    case RF_REC_COLLECTD: rf_parse_collectd(in->parser, &rx, data, r->payload_len); break;
    default: rf_parse_graphite(in->parser, &rx, data, r->payload_len); break;
    }
    rf_parse_flush(in->parser);
}

/* ---- open ------------------------------------------------------------------ */

/* dir must not exist (it is created) or be an empty directory. */
static int prepare_dir(const char *dir, rf_err *err)
{
    if (mkdir(dir, 0755) == 0)
        return 0;
    if (errno != EEXIST)
        return rf_err_set(err, errno, "%s: %s", dir, strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return rf_err_set(err, errno, "%s: %s", dir, strerror(errno));
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = false;
    closedir(d);
    if (!empty)
        return rf_err_set(err, EEXIST,
                          "%s is not empty: a replay goes into a new or empty directory, so that "
                          "what it holds afterwards is the recording's and nothing else",
                          dir);
    return 0;
}

/* Every file the pipeline writes goes under dir; nothing is forwarded. */
static int redirect_sinks(rf_replay_engine *e, rf_err *err)
{
    rf_sink_configs *sc = &e->settings.pipeline.sinks;
    e->forwarder = calloc(sc->n ? sc->n : 1, sizeof(*e->forwarder));
    if (!e->forwarder)
        return rf_err_set(err, ENOMEM, "out of memory");
    for (uint32_t i = 0; i < sc->n; i++) {
        rf_sink_config *c = &sc->sinks[i];
        if (c->type == RF_SINK_JSON) {
            char path[RF_DAEMON_PATH_MAX];
            if (snprintf(path, sizeof(path), "%s/%s.jsonl", e->dir, c->name) >= (int)sizeof(path))
                return rf_err_set(err, ENAMETOOLONG, "sink %s: %s/%s.jsonl is too long", c->name,
                                  e->dir, c->name);
            char *p = strdup(path);
            if (!p)
                return rf_err_set(err, ENOMEM, "out of memory");
            free((char *)c->path); /* owned by the settings (rf_sink_configs_release) */
            c->path = p;
            c->fd = 0;
        } else if (c->type == RF_SINK_LP_UDP || c->type == RF_SINK_LP_TCP) {
            c->type = RF_SINK_COUNT_ONLY;
            e->forwarder[i] = true;
        }
    }
    return 0;
}

int rf_replay_engine_open(const rf_replay_engine_options *opt, rf_replay_engine **out, rf_err *err)
{
    rf_replay_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return rf_err_set(err, ENOMEM, "replay: out of memory");
    int rc = 0;
    if (snprintf(e->dir, sizeof(e->dir), "%s", opt->dir) >= (int)sizeof(e->dir) ||
        snprintf(e->store_dir, sizeof(e->store_dir), "%s/store", opt->dir) >=
            (int)sizeof(e->store_dir)) {
        rc = rf_err_set(err, ENAMETOOLONG, "%s: path too long", opt->dir);
        goto fail;
    }
    e->tick_ns = opt->tick_ns > 0 ? opt->tick_ns : RF_REPLAY_TICK_NS;
    if ((rc = rf_settings_load(opt->config, &e->settings, err)) < 0)
        goto fail;
    e->have_settings = true;
    e->workers = opt->workers ? opt->workers : e->settings.daemon.engine.workers;
    if (e->workers < 1 || e->workers > RF_DAEMON_MAX_WORKERS) {
        rc = rf_err_set(err, EINVAL, "replay: workers must be 1..%u", RF_DAEMON_MAX_WORKERS);
        goto fail;
    }
    e->sum.workers = e->workers;
    if ((rc = prepare_dir(e->dir, err)) < 0 || (rc = redirect_sinks(e, err)) < 0)
        goto fail;

    if (e->settings.storage.enabled) {
        rf_store_config sc = e->settings.storage.store;
        sc.event_clock = true;
        sc.tick_cut_budget_ns = 0;    /* implied by event_clock; said here too */
        sc.retention_interval_ns = 0; /* idem: retention never runs on this clock */
        if ((rc = rf_store_open(e->store_dir, &sc, e->workers, &e->store, err)) < 0) {
            rf_err_wrap(err, "storage: ");
            goto fail;
        }
    }
    /* One field-type table for every parser, filled from the store, as the
     * daemon does (daemon/field_types_seed.h). */
    if ((rc = rf_field_types_open(e->store ? e->store_dir : NULL,
                                  (uint64_t)e->settings.pipeline.max_series * e->workers,
                                  &e->field_types, err)) < 0)
        goto fail;
    e->settings.ingest.parse.field_types = e->field_types;
    /* collectd's users, as the daemon has them: a recording keeps signed and
     * encrypted datagrams as they came. */
    if (e->settings.ingest.collectd_auth_file[0] &&
        (!(e->collectd_auth = rf_collectd_auth_new(err)) ||
         (rc = rf_collectd_auth_load(e->collectd_auth, e->settings.ingest.collectd_security,
                                     e->settings.ingest.collectd_auth_file, err)) < 0)) {
        rc = rc < 0 ? rc : -ENOMEM;
        goto fail;
    }
    e->settings.ingest.parse.collectd_auth = e->collectd_auth;
    e->pipes = calloc(e->workers, sizeof(*e->pipes));
    e->part = calloc(e->workers, sizeof(*e->part));
    e->n_part = calloc(e->workers, sizeof(*e->n_part));
    e->peer_in = calloc(e->workers, sizeof(*e->peer_in));
    if (!e->pipes || !e->part || !e->n_part || !e->peer_in) {
        rc = rf_err_set(err, ENOMEM, "replay: out of memory for %u shards", e->workers);
        goto fail;
    }
    for (uint32_t s = 0; s < e->workers; s++) {
        if ((rc = rf_pipeline_new(&e->settings.pipeline, s, e->workers,
                                  e->store ? rf_store_shard_get(e->store, s) : NULL, &e->pipes[s],
                                  err)) < 0)
            goto fail;
        rf_pipeline_set_event_clock(e->pipes[s]);
        rf_pipeline_set_peer_send(e->pipes[s], peer_send, e);
    }
    if ((rc = inputs_configure(e, err)) < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    rf_replay_engine_free(e);
    return rc;
}

/* ---- finish -------------------------------------------------------------------- */

static int count_segment(void *ctx, uint32_t shard, uint64_t seq, const char *path)
{
    rf_replay_engine *e = ctx;
    (void)shard;
    (void)seq;
    struct stat st;
    if (stat(path, &st) == 0) {
        e->sum.segments++;
        e->sum.segment_bytes += (uint64_t)st.st_size;
    }
    return 0;
}

static void count_segments(rf_replay_engine *e)
{
    rf_seg_store_walk(e->store_dir, count_segment, e, NULL);
}

static void collect(rf_replay_engine *e)
{
    rf_replay_summary *m = &e->sum;
    for (uint32_t i = 0; i < e->n_inputs; i++) {
        const rf_parse_ctx *pc = e->inputs[i]->parser;
        m->lines_ok += rf_parse_counter(pc, RF_PC_LINES_OK);
        m->lines_rejected += rf_parse_counter(pc, RF_PC_LINES_REJECTED);
        m->events += rf_parse_counter(pc, RF_PC_EVENTS);
        m->series_defs += rf_parse_counter(pc, RF_PC_SERIES_DEFS);
        for (int r = 0; r < RF_REJ__COUNT; r++)
            m->rejected_by_reason[r] += rf_parse_reject_count(pc, (enum rf_reject_reason)r);
    }
    for (uint32_t s = 0; s < e->workers; s++) {
        const rf_pipeline *p = e->pipes[s];
        rf_pipeline_stats ps;
        rf_pipeline_stats_read(p, &ps);
        m->processed += ps.processed;
        m->unknown_series += ps.unknown_series;
        m->series_rejected += ps.series_rejected;
        m->series_expired += ps.series_expired;
        m->to_store += ps.to_store;
        m->store_rejected += ps.store_rejected;
        m->unrouted += ps.unrouted;
        rf_pipeline_stage_stats st;
        rf_pipeline_stages_read(p, &st);
        m->aggregates += st.has_aggregation ? st.aggregation.aggregates : 0;
        m->alerts_fired += st.has_alerts ? st.alerts.fired : 0;
        m->alerts_resolved += st.has_alerts ? st.alerts.resolved : 0;
        m->correlated += st.has_correlation ? st.correlation.emitted : 0;
        for (uint32_t j = 0; j < rf_pipeline_sink_count(p); j++) {
            const rf_sink *sk = rf_pipeline_sink(p, j);
            if (!sk)
                continue; /* a store sink */
            rf_sink_stats ss;
            rf_sink_stats_read(sk, &ss);
            m->sink_lines += ss.lines_out;
            m->sink_dropped += ss.drop_queue_full + ss.drop_disconnected + ss.drop_unsupported +
                               ss.drop_oversize + ss.drop_io_error;
            if (e->forwarder[j])
                m->not_forwarded += ss.accepted; /* a forwarder turned count_only */
        }
        if (e->store) {
            rf_store_shard_stats ss;
            rf_store_shard_stats_read(rf_store_shard_get(e->store, s), &ss);
            m->points_appended += ss.points_appended;
            m->blocks_cut += ss.blocks_cut;
            m->store_dropped +=
                ss.dropped_backpressure + ss.dropped_unknown_series + ss.dropped_encode_error;
        }
    }
    m->span_ns = e->started ? e->now_mono - e->first_mono : 0;
}

int rf_replay_engine_finish(rf_replay_engine *e, rf_replay_summary *out, rf_err *err)
{
    int rc = 0;
    for (uint32_t i = 0; i < e->n_inputs; i++)
        rf_parse_flush(e->inputs[i]->parser); /* empty: flushed per record */
    /* The stop order of stages/pipeline/pipeline.h "Between shards". */
    for (uint32_t s = 0; s < e->workers; s++)
        rf_pipeline_close_stages_at(e->pipes[s], e->now_mono);
    deliver_peers(e);
    for (uint32_t s = 0; s < e->workers; s++) {
        rf_pipeline_drain_at(e->pipes[s], e->now_mono);
        deliver_peers(e);
    }
    collect(e);
    if (e->store) {
        rc = rf_store_close(e->store, err);
        e->store = NULL;
        count_segments(e);
    }
    *out = e->sum;
    return rc;
}

void rf_replay_engine_free(rf_replay_engine *e)
{
    if (!e)
        return;
    /* Parsers first: their (empty) batches flush into the pipelines. */
    for (uint32_t i = 0; i < e->n_inputs; i++) {
        rf_parse_ctx_free(e->inputs[i]->parser);
        free(e->inputs[i]);
    }
    if (e->store) {
        rf_err err;
        rf_err_clear(&err);
        if (rf_store_close(e->store, &err) < 0)
            fprintf(stderr, "ringflow replay: closing the store: %s\n", err.msg);
    }
    rf_field_types_free(e->field_types); /* after the parsers */
    rf_collectd_auth_free(e->collectd_auth);
    for (uint32_t s = 0; e->pipes && s < e->workers; s++)
        rf_pipeline_free(e->pipes[s]);
    for (uint32_t s = 0; e->peer_in && s < e->workers; s++) {
        for (uint32_t i = 0; i < e->peer_in[s].n; i++)
            if (e->peer_in[s].ev[i].flags & RF_EVF_OWNS_AUX)
                free((void *)(uintptr_t)e->peer_in[s].ev[i].aux);
        free(e->peer_in[s].ev);
    }
    free(e->peer_in);
    free(e->pipes);
    free(e->part);
    free(e->n_part);
    free(e->forwarder);
    if (e->have_settings)
        rf_settings_release(&e->settings);
    free(e);
}
