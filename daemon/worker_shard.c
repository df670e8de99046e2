/* One worker's shard: the ingest side (listener set, one parse context per
 * listener) and the processing chain of the series this worker owns. */
#include "daemon/worker_shard.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/assert/assert.h"
#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/stats/stats.h"
#include "core/mem/bound.h"
#include "ingest/dpdk/dpdk.h"
#include "ingest/nats/nats_source.h"
#include "ingest/http/http.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"
#include "ingest/spread/spread.h"
#include "stages/pipeline/pipeline.h"
#include "daemon/tap.h"
#include "core/worker/worker.h"
#include "storage/store/store.h"

/* A shard ticks this soon after work (batches, windows and timers that
 * work started are looked at as often as before), and otherwise at its
 * pipeline's next deadline (rf_pipeline_next_due_ns), at least once every
 * RF_SHARD_TICK_MAX_NS (the storage component's health). */
#define RF_SHARD_TICK_NS (10 * RF_NS_PER_MS)
#define RF_SHARD_TICK_MAX_NS (1000 * RF_NS_PER_MS)
/* Events a parse context collects before handing them to dispatch. */
#define RF_SHARD_PARSE_BATCH 256
/* Inputs a shard can ever have: the start's listeners and DPDK ports, and
 * room for the listeners reloads add (a reload that would pass it is
 * refused: restart to compact). */
#define RF_SHARD_MAX_INPUTS                                                                        \
    (4 * RF_SETTINGS_MAX_LISTENERS + RF_DPDK_MAX_PORTS * RF_DPDK_MAX_UDP_PORTS)

/* A reload's listener changes for one shard (control thread builds it). */
typedef struct rf_shard_listener_change {
    struct rf_shard_input *attach[RF_SETTINGS_MAX_LISTENERS];
    uint32_t n_attach;
    char detach[RF_SETTINGS_MAX_LISTENERS][RF_LISTENER_NAME_MAX];
    uint32_t n_detach;
    rf_listener_set *new_crit_set; /* created for the first critical listener */
    _Atomic bool applied;
} rf_shard_listener_change;

/* One listener as this shard reads it: the socket and its parse context. */
typedef struct rf_shard_input {
    rf_shard *shard;
    rf_listener *listener;
    enum rf_listen_protocol protocol;
    bool critical; /* a `class: critical` listener: its events are critical */
    /* Live removal (worker-owned): detaching until the listener closed. */
    bool retiring;
    bool attached; /* its listener is in one of the shard's sets */
    /* Set (release) by the worker once it let go of the input for good: its
     * listener closed and out of its set, its parser flushed, the input out
     * of the worker's own list. The control thread (acquire) then folds its
     * counters into `retired` and frees it (rf_shard_inputs_reap). */
    _Atomic bool retired;
    rf_parse_ctx *parser;
    uint16_t source_id;  /* its parse context's (rf_shard_parse_handed finds it by it) */
    rf_http_front *http; /* protocol http: its connections, on parser */
    rf_event batch[RF_SHARD_PARSE_BATCH];
} rf_shard_input;

struct rf_shard {
    uint32_t index, workers;
    rf_shard_dispatch_fn dispatch;
    void *dispatch_ctx;
    rf_shard_busy_fn busy;
    void *busy_ctx;
    rf_shard_sync_fn sync; /* HTTP sync=true (rf_shard_set_sync); NULL: not offered */
    rf_shard_sync_cancel_fn sync_cancel;
    void *sync_ctx;

    rf_listener_set *listeners;
    /* The `class: critical` listeners, in a set of their own: polled before
     * the standard set and, through the critical hook, between its
     * datagrams, with buffers of their own, so routine traffic (however
     * much) never sits in front of them. NULL when there are none. */
    rf_listener_set *crit_listeners;
    uint32_t n_crit_listeners, n_std_listeners; /* attached now (worker-owned after start) */
    bool crit_wake_linked; /* crit set's completions end a wait in the standard set */
    bool started_sets[2];  /* worker: [0] standard set, [1] critical set started */
    _Atomic(rf_listener_set *) crit_for_wake; /* the critical set once started */
    /* A listener change of a reload (see rf_shard_listeners_prepare):
     * published by the control thread (release store into `change`), taken
     * by the worker with an exchange to NULL (acquire), which sets the
     * change's `applied` (release) once done and never touches it again;
     * the control thread frees it once it reads `applied` (acquire), through
     * its own pointer `published`. So neither frees what the other may
     * still read. */
    _Atomic(struct rf_shard_listener_change *) change;
    struct rf_shard_listener_change *published; /* control thread's, until applied */
    struct rf_shard_listener_change *prepared;  /* control thread's, until published */
    uint32_t n_retiring; /* worker: inputs whose listener is still detaching */
    rf_shard_critical_fn crit_hook;
    void *crit_hook_ctx;
    /* ingest/spread: the hand-off (NULL: none) and the peer wake-up. */
    rf_spread *spread;
    rf_shard_wake_peer_fn spread_wake;
    void *spread_wake_ctx;
    _Atomic uint64_t spread_orphaned; /* runs handed here for a listener gone */
    _Atomic(rf_tap *) *tap_slot;      /* the engine's recording tap pointer (daemon/tap.h) */
    bool in_crit_hook;
    /* Every input, for the control thread (its table: views, reaping,
     * freeing): listener inputs of the start, DPDK ones, then listeners
     * added by reloads, in free slots first. A removed listener's input is
     * freed once the worker retired it, its slot NULL until reused, its
     * counters added to `retired`; so reloads that add and remove
     * listeners do not grow the table or the memory. The worker never
     * reads this table. */
    rf_shard_input *inputs[RF_SHARD_MAX_INPUTS];
    uint32_t n_inputs;        /* slots in use or freed: [0, n_inputs) */
    uint32_t n_live_inputs;   /* non-NULL slots */
    rf_shard_retired retired; /* control thread: what reaped inputs had counted */
    rf_shard_retired retired_named[RF_SETTINGS_MAX_LISTENERS]; /* the same, per name */
    uint32_t n_retired_named;
    /* The worker's own list: the inputs it reads and detaches (attached or
     * retiring listeners, DPDK ones), filled before start and by listener
     * changes; an input leaves it when retired. */
    rf_shard_input *active[RF_SHARD_MAX_INPUTS];
    uint32_t n_active;
    /* The worker's n_retiring, published (release) after each retirement;
     * the control thread (acquire) waits for 0 before reaping a reload's
     * removed listeners. */
    _Atomic uint32_t retiring_now;
    rf_dpdk_queue *dpdk_queues[RF_DPDK_MAX_PORTS];
    uint32_t n_dpdk_queues;
    /* The `nats_source:` pull consumers of this worker's shards, and the
     * parse context their payloads go through (ingest/nats). */
    rf_nats_source *nats;
    rf_shard_input *nats_input;
    /* payload: partials: each line's block, decoded here (one, reused). */
    uint8_t *partial_block;
    uint64_t partial_lines_bad; /* lines that were no partial (acked: a retry cannot mend them) */
    bool ingest_stopped;
    bool stopping_ingest; /* rf_shard_stop_ingest is removing every listener */

    rf_pipeline *pipeline;
    int64_t next_tick_ns;
    bool worked; /* events processed since the last tick (rf_shard_tick) */

    /* The storage shard's health for /health and `show workers`: a write
     * error stops the shard persisting (storage/store/io.c), which the
     * store does not report as a component itself; the worker marks this
     * component failed on its next tick (reliability: faults are reported). */
    rf_store_shard *store;
    rf_component *store_component;
};

/* ---- ingest ------------------------------------------------------------- */

static void input_flush(void *user, rf_event *events, size_t n)
{
    rf_shard_input *in = user;
    if (in->critical)
        for (size_t i = 0; i < n; i++)
            events[i].priority = RF_PRIO_CRITICAL;
    in->shard->dispatch(in->shard->dispatch_ctx, events, (uint32_t)n);
}

/* Between two routine datagrams or TCP reads: critical work first. */
static void input_serve_critical(rf_shard_input *in)
{
    rf_shard *s = in->shard;
    if (!in->critical && s->crit_hook && !s->in_crit_hook) {
        s->in_crit_hook = true;
        s->crit_hook(s->crit_hook_ctx);
        s->in_crit_hook = false;
    }
}

/* ingest/spread: a TCP run of a routine line listener goes to a peer with a
 * free chunk buffer (true: taken) or is parsed here. A TCP chunk is the one
 * with a peer text (UDP, DPDK and NATS chunks have none). Not while stopping:
 * the last lines are parsed where they landed. */
static bool input_hand_off(rf_shard_input *in, const rf_listener *l, const rf_listen_chunk *c)
{
    rf_shard *s = in->shard;
    if (!s->spread || !l || !c->peer_text || in->critical || s->stopping_ingest ||
        in->protocol == RF_LISTEN_PROTO_HTTP || in->protocol == RF_LISTEN_PROTO_COLLECTD)
        return false;
    const int to = rf_spread_offer(s->spread, s->index, rf_listener_config_of(l)->worker_mask,
                                   in->source_id, (uint8_t)in->protocol, c->data, c->len,
                                   c->peer_text, c->mono_ns, c->wall_ns);
    if (to < 0)
        return false;
    s->spread_wake(s->spread_wake_ctx, (uint32_t)to);
    return true;
}

static void input_on_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    rf_shard_input *in = ctx;
    /* A recording in progress (`record start` on the admin socket) gets a
     * copy first; one load when none runs. DPDK inputs have no listener. */
    if (l && in->shard->tap_slot)
        rf_tap_capture_maybe(in->shard->tap_slot, in->shard->index, l, c);
    char addr[RF_LISTEN_ADDR_TEXT_MAX];
    /* TCP peers are formatted once per connection by the listener; a UDP
     * sender is formatted here, once per datagram, for the reject log. */
    const char *source = c->peer_text;
    if (!source && c->peer)
        source = rf_listen_addr_format(c->peer, c->peer_len, addr, sizeof(addr));
    const rf_recv_info rx = {.wall_ns = c->wall_ns, .mono_ns = c->mono_ns, .source_addr = source};

    if (c->flags & (RF_LISTEN_CHUNK_LINE_TOO_LONG | RF_LISTEN_CHUNK_TRUNCATED)) {
        rf_parse_reject_external(in->parser, &rx, RF_REJ_LINE_TOO_LONG, c->data, c->len);
        return;
    }
    if (input_hand_off(in, l, c)) {
        input_serve_critical(in);
        return;
    }
    switch (in->protocol) {
    case RF_LISTEN_PROTO_INFLUX_LINE: rf_parse_influx(in->parser, &rx, c->data, c->len); break;
    case RF_LISTEN_PROTO_STATSD: rf_parse_statsd(in->parser, &rx, c->data, c->len); break;
    case RF_LISTEN_PROTO_GRAPHITE: rf_parse_graphite(in->parser, &rx, c->data, c->len); break;
    case RF_LISTEN_PROTO_COLLECTD: rf_parse_collectd(in->parser, &rx, c->data, c->len); break;
    case RF_LISTEN_PROTO_HTTP: break; /* its bytes take input_on_stream */
    }
    input_serve_critical(in);
}

static void input_on_burst_end(void *ctx, const rf_listener *l);

/* An http listener's reads go to its connections' HTTP layer unframed. */
static int input_on_stream(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    (void)l;
    rf_shard_input *in = ctx;
    int rc = rf_http_front_stream(in->http, c);
    input_serve_critical(in);
    return rc;
}

static void input_on_conn_end(void *ctx, const rf_listener *l, uint32_t conn)
{
    (void)l;
    rf_shard_input *in = ctx;
    rf_http_front_conn_end(in->http, conn);
}

static bool input_busy(void *user)
{
    rf_shard *s = ((rf_shard_input *)user)->shard;
    return s->busy && s->busy(s->busy_ctx);
}

static int input_sync(void *user, rf_http_sync_done_fn done, void *done_ctx, uint64_t cookie)
{
    rf_shard *s = ((rf_shard_input *)user)->shard;
    return s->sync ? s->sync(s->sync_ctx, done, done_ctx, cookie) : -ENOTSUP;
}

/* sync=true on an http listener's writes: where the points can be made
 * durable, which is the store, and not on the critical lane, whose events
 * take the critical rings the sync barrier does not follow. */
static void input_offer_sync(rf_shard *s, rf_shard_input *in)
{
    if (in->http && s->store && !in->critical)
        rf_http_front_set_sync(in->http, input_sync);
}

static rf_listen_handler input_handler(rf_shard_input *in)
{
    rf_listen_handler h = {.on_data = input_on_data, .on_burst_end = input_on_burst_end, .ctx = in};
    if (in->http) {
        h.on_stream = input_on_stream;
        h.on_conn_end = input_on_conn_end;
    }
    return h;
}

static void input_on_burst_end(void *ctx, const rf_listener *l)
{
    (void)l;
    rf_shard_input *in = ctx;
    rf_parse_flush(in->parser);
}

static bool listener_on_worker(const rf_listener_config *cfg, uint32_t worker)
{
    return cfg->worker_mask == 0 || (cfg->worker_mask >> worker) & 1u;
}

/* A parse context for one source, dispatching into this shard. */
/* A parse context for one source, dispatching into this shard; not yet in
 * s->inputs (input_append). */
static rf_shard_input *input_create(rf_shard *s, const rf_settings *settings, uint16_t source_id,
                                    enum rf_listen_protocol protocol, uint32_t max_line,
                                    uint32_t max_conns, const rf_graphite_templates *templates,
                                    const char *name, rf_err *err)
{
    rf_shard_input *in = calloc(1, sizeof(*in));
    if (!in) {
        rf_err_set(err, ENOMEM, "shard %u: out of memory for %s", s->index, name);
        return NULL;
    }
    in->shard = s;
    in->protocol = protocol;
    rf_parse_config pc = settings->ingest.parse;
    pc.forget_ns = settings->pipeline.series_idle_ttl_ns / 2;
    pc.source_id = source_id;
    pc.max_line_len = max_line;
    pc.graphite_templates = templates;
    in->source_id = source_id;
    in->parser = rf_parse_ctx_new(&pc, in->batch, RF_SHARD_PARSE_BATCH, input_flush, in, err);
    if (!in->parser) {
        rf_err_wrap(err, "%s: ", name);
        free(in);
        return NULL;
    }
    if (protocol == RF_LISTEN_PROTO_HTTP &&
        (!(in->http =
               rf_http_front_new(NULL, in->parser, pc.precision, max_conns, input_busy, in,
                                 /* the TLS and auth of the listener; inputs of
                                         * listeners are named "listener <name>" */
                                 strncmp(name, "listener ", 9) == 0 ? name + 9 : name, err)) ||
         rf_http_front_set_otlp(in->http,
                                source_id < settings->ingest.n_listeners
                                    ? &settings->ingest.listeners[source_id].otlp
                                    : NULL,
                                err) < 0)) {
        rf_http_front_free(in->http);
        rf_err_wrap(err, "%s: ", name);
        rf_parse_ctx_free(in->parser);
        free(in);
        return NULL;
    }
    return in;
}

/* Mirrors input_create. */
uint64_t rf_shard_input_memory_bound(const rf_settings *settings, const rf_listener_config *lc)
{
    _Static_assert(sizeof(rf_shard_input) <= RF_SHARD_PARSE_BATCH * sizeof(rf_event) + 64,
                   "rf_shard_input_memory_bound: the input");
    rf_parse_config pc = settings->ingest.parse;
    pc.max_line_len = lc->max_line_bytes;
    return rf_parse_ctx_memory_bound(&pc) +
           rf_mem_alloc_bound(RF_SHARD_PARSE_BATCH * sizeof(rf_event) + 64);
}

static void input_free(rf_shard_input *in)
{
    if (!in)
        return;
    rf_http_front_free(in->http);
    rf_parse_ctx_free(in->parser);
    free(in);
}

/* Control thread only: a slot in the table (a freed one first). */
static int input_append(rf_shard *s, rf_shard_input *in, rf_err *err)
{
    uint32_t i = 0;
    while (i < s->n_inputs && s->inputs[i])
        i++;
    if (i == RF_SHARD_MAX_INPUTS)
        return rf_err_set(err, ENOSPC, "shard %u: %u inputs, the most one shard can have", s->index,
                          i);
    s->inputs[i] = in;
    if (i == s->n_inputs)
        s->n_inputs++;
    s->n_live_inputs++;
    return 0;
}

/* Before start, or on the worker: an input the worker now reads. */
static void input_activate(rf_shard *s, rf_shard_input *in)
{
    s->active[s->n_active++] = in;
}

static rf_shard_input *shard_new_input(rf_shard *s, const rf_settings *settings, uint16_t source_id,
                                       enum rf_listen_protocol protocol, uint32_t max_line,
                                       uint32_t max_conns, const rf_graphite_templates *templates,
                                       const char *name, rf_err *err)
{
    rf_shard_input *in =
        input_create(s, settings, source_id, protocol, max_line, max_conns, templates, name, err);
    if (in && input_append(s, in, err) < 0) {
        input_free(in);
        return NULL;
    }
    if (in)
        input_activate(s, in);
    return in;
}

/* Each of this worker's DPDK RX queues, one parse context per UDP port. */
static int shard_add_dpdk_inputs(rf_shard *s, const rf_settings *settings, rf_dpdk *dpdk,
                                 rf_err *err)
{
    const rf_dpdk_config *dc = &settings->dpdk;
    for (unsigned p = 0; p < rf_dpdk_port_count(dpdk); p++) {
        if (s->index >= rf_dpdk_queue_count(dpdk, p))
            continue;
        rf_dpdk_queue *q = rf_dpdk_queue_at(dpdk, p, s->index);
        if (!q)
            continue;
        s->dpdk_queues[s->n_dpdk_queues++] = q;
        for (uint32_t u = 0; u < dc->n_udp_ports; u++) {
            char name[64];
            snprintf(name, sizeof(name), "dpdk %s udp %u", rf_dpdk_port_name(dpdk, p),
                     dc->udp_ports[u].port);
            /* Source ids after the listeners': port-major, then UDP port. */
            uint16_t source = (uint16_t)(settings->ingest.n_listeners + p * dc->n_udp_ports + u);
            rf_shard_input *in = shard_new_input(s, settings, source, dc->udp_ports[u].protocol, 0,
                                                 0, NULL, name, err);
            if (!in)
                return -(err->code ? err->code : ENOMEM);
            const rf_listen_handler h = {
                .on_data = input_on_data, .on_burst_end = input_on_burst_end, .ctx = in};
            int rc = rf_dpdk_queue_set_handler(q, dc->udp_ports[u].port, &h, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

static void nats_wake(void *ctx)
{
    rf_shard_wake(ctx);
}

/* A message's events are accepted once parsed and handed to the pipeline
 * (the flush dispatches them): only then is the message acked. */
static bool nats_on_msg(void *ctx, const char *subject, const char *data, size_t len)
{
    (void)subject;
    rf_shard_input *in = ctx;
    const int64_t wall = rf_clock_wall_ns(), mono = rf_clock_mono_ns();
    const rf_listen_chunk c = {
        .data = data, .len = (uint32_t)len, .wall_ns = wall, .mono_ns = mono, .peer_text = "nats"};
    input_on_data(in, NULL, &c);
    rf_parse_flush(in->parser);
    return true;
}

/* payload: partials. Every line is one edge's partial of one group's
 * window (stages/aggregate/aggregate.h, rf_agg_partial_line), merged by
 * this worker's aggregator: the shard of a line depends on its group only,
 * so every edge's partials of a group meet here. A line that is no partial
 * is counted and the message still acked (redelivery would not mend it). */
#define PARTIAL_BLOCK_MAX (256u * 1024u)
static bool nats_on_partials(void *ctx, const char *subject, const char *data, size_t len)
{
    (void)subject;
    rf_shard *s = ctx;
    for (const char *p = data, *end = data + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le > p) {
            long n =
                rf_agg_partial_line_parse(p, (size_t)(le - p), s->partial_block, PARTIAL_BLOCK_MAX);
            if (n <= 0 || rf_pipeline_receive_partial(s->pipeline, s->partial_block, (size_t)n) < 0)
                s->partial_lines_bad++;
        }
        p = le + 1;
    }
    return true;
}

/* This worker's share of the `nats_source:` shards; counters on /metrics. */
static int shard_add_nats_input(rf_shard *s, const rf_settings *settings, rf_err *err)
{
    if (settings->nats_source.partials && !(s->partial_block = malloc(PARTIAL_BLOCK_MAX)))
        return rf_err_set(err, ENOMEM, "nats_source: out of memory");
    uint16_t source =
        (uint16_t)(settings->ingest.n_listeners + RF_DPDK_MAX_PORTS * settings->dpdk.n_udp_ports);
    s->nats_input = shard_new_input(s, settings, source, RF_LISTEN_PROTO_INFLUX_LINE, 0, 0, NULL,
                                    "nats_source", err);
    if (!s->nats_input)
        return -(err->code ? err->code : ENOMEM);
    rf_nats_source_config nc;
    char labels[32];
    rf_nats_source_config_from(&settings->nats_source, s->index, s->workers, &nc);
    snprintf(labels, sizeof(labels), "worker=\"%u\"", s->index);
    nc.metric_labels = labels;
    return rf_nats_source_new(&nc, nats_wake, s, &s->nats, err);
}

static int shard_add_inputs(rf_shard *s, const rf_settings *settings, rf_err *err)
{
    int rc = rf_listener_set_new(&s->listeners, "ingest", NULL, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < settings->ingest.n_listeners; i++) {
        const rf_listener_config *lc = &settings->ingest.listeners[i];
        if (lc->critical && listener_on_worker(lc, s->index) && !s->crit_listeners &&
            (rc = rf_listener_set_new(&s->crit_listeners, "ingest-critical", NULL, err)) < 0)
            return rc;
    }
    for (size_t i = 0; i < settings->ingest.n_listeners; i++) {
        const rf_listener_config *lc = &settings->ingest.listeners[i];
        if (!listener_on_worker(lc, s->index))
            continue;
        char name[RF_LISTENER_NAME_MAX + 16];
        snprintf(name, sizeof(name), "listener %s", lc->name);
        rf_shard_input *in =
            shard_new_input(s, settings, (uint16_t)i, lc->protocol, lc->max_line_bytes,
                            lc->max_connections, lc->graphite_templates, name, err);
        if (!in)
            return -(err->code ? err->code : ENOMEM);

        in->critical = lc->critical;
        input_offer_sync(s, in);
        rf_listener_config cfg = *lc;
        cfg.handler = input_handler(in);
        rc = rf_listener_add(lc->critical ? s->crit_listeners : s->listeners, &cfg, &in->listener,
                             err);
        if (rc < 0)
            return rc;
        in->attached = true;
        if (lc->critical)
            s->n_crit_listeners++;
        else
            s->n_std_listeners++;
    }
    return 0;
}

int rf_shard_probe_listeners(const rf_settings *settings, rf_err *err)
{
    for (size_t i = 0; i < settings->ingest.n_listeners; i++) {
        int rc = rf_shard_probe_listener(&settings->ingest.listeners[i], err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int rf_shard_probe_listener(const rf_listener_config *lc, rf_err *err)
{
    {
        if (lc->port == 0)
            return 0;
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        socklen_t len;
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, lc->address, &v4->sin_addr) == 1) {
            v4->sin_family = AF_INET;
            v4->sin_port = htons(lc->port);
            len = sizeof(*v4);
        } else if (inet_pton(AF_INET6, lc->address, &v6->sin6_addr) == 1) {
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(lc->port);
            len = sizeof(*v6);
        } else {
            return rf_err_set(err, EINVAL, "listener %s: '%s' is not an IP address", lc->name,
                              lc->address);
        }
        /* Without SO_REUSEPORT: if anyone (another ringflowd among them)
         * holds the port, this bind fails, where our own reuseport sockets
         * would silently share the traffic with it. */
        int fd =
            socket(ss.ss_family,
                   (lc->transport == RF_LISTEN_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return rf_err_set(err, errno, "listener %s: socket: %s", lc->name, strerror(errno));
        if (lc->transport == RF_LISTEN_TCP) {
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        }
        int rc = bind(fd, (struct sockaddr *)&ss, len);
        int e = errno;
        close(fd);
        if (rc < 0)
            return rf_err_set(err, e, "listener %s: %s %s port %u: %s%s", lc->name,
                              rf_listen_transport_name(lc->transport), lc->address, lc->port,
                              strerror(e),
                              e == EADDRINUSE ? " (another process, perhaps another ringflowd, "
                                                "holds it)"
                                              : "");
    }
    return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

int rf_shard_new(const rf_settings *settings, uint32_t index, uint32_t workers,
                 rf_store_shard *store, rf_dpdk *dpdk, rf_shard **out, rf_err *err)
{
    rf_shard *s = calloc(1, sizeof(*s));
    if (!s)
        return rf_err_set(err, ENOMEM, "shard %u: out of memory", index);
    s->index = index;
    s->workers = workers;
    int rc = 0;
    if ((rc = rf_pipeline_new(&settings->pipeline, index, workers, store, &s->pipeline, err)) < 0)
        goto fail;
    if (store) {
        char name[32];
        snprintf(name, sizeof(name), "store-shard-%u", index);
        s->store = store;
        s->store_component = rf_component_register("storage", name);
        if (s->store_component) {
            rf_component_transition(s->store_component, RF_STATE_CONFIGURING, NULL);
            rf_component_transition(s->store_component, RF_STATE_RUNNING, NULL);
        }
    }
    if ((rc = shard_add_inputs(s, settings, err)) < 0)
        goto fail;
    if (dpdk && (rc = shard_add_dpdk_inputs(s, settings, dpdk, err)) < 0)
        goto fail;
    if (settings->nats_source.enabled && (rc = shard_add_nats_input(s, settings, err)) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    rf_shard_free(s);
    return rc;
}

void rf_shard_free(rf_shard *s)
{
    if (!s)
        return;
    /* The NATS fetch thread first: it stops calling rf_shard_wake, and acks
     * what the worker took (the rest is redelivered). */
    rf_nats_source_free(s->nats);
    if (s->partial_lines_bad)
        rf_log_warn("nats_source", "worker-%u: %lu lines were no partial aggregate (dropped)",
                    s->index, (unsigned long)s->partial_lines_bad);
    free(s->partial_block);
    /* The listener set first: it may still hold events parsed but not
     * dispatched; the parse contexts hand theirs over when freed. */
    rf_listener_set_free(s->listeners);
    rf_listener_set_free(s->crit_listeners);
    rf_shard_listeners_discard(s);
    rf_shard_listener_change *ch = s->published;
    if (ch) {
        /* Published but never applied (the worker stopped first): its
         * listeners were never attached (closed below with their inputs). */
        rf_listener_set_free(ch->new_crit_set);
        free(ch);
    }
    for (uint32_t i = 0; i < s->n_inputs; i++) {
        rf_shard_input *in = s->inputs[i];
        if (!in)
            continue;
        /* A listener lives in its set while attached (freed with it); one
         * never attached, or removed from its set, is ours to close. */
        if (in->listener && !in->attached)
            rf_listener_close(in->listener);
        /* An http listener's connections and decoders; the set that fed
         * them is gone. */
        rf_http_front_free(in->http);
        /* Anything still batched here would go to a dispatcher that is
         * gone: the engine drained before freeing, so the batch is empty. */
        rf_parse_ctx_free(in->parser);
        free(in);
    }
    rf_pipeline_free(s->pipeline);
    free(s);
}

void rf_shard_set_dispatch(rf_shard *s, rf_shard_dispatch_fn fn, void *ctx)
{
    s->dispatch = fn;
    s->dispatch_ctx = ctx;
}

void rf_shard_set_sync(rf_shard *s, rf_shard_sync_fn fn, rf_shard_sync_cancel_fn cancel, void *ctx)
{
    s->sync = fn;
    s->sync_cancel = cancel;
    s->sync_ctx = ctx;
}

void rf_shard_set_busy(rf_shard *s, rf_shard_busy_fn fn, void *ctx)
{
    s->busy = fn;
    s->busy_ctx = ctx;
}

static int ensure_started(rf_shard *s, rf_listener_set *set, rf_err *err);

int rf_shard_start(rf_shard *s, rf_err *err)
{
    s->next_tick_ns = rf_clock_mono_ns() + RF_SHARD_TICK_NS;
    if (s->n_std_listeners) {
        int rc = ensure_started(s, s->listeners, err);
        if (rc < 0)
            return rc;
    }
    if (s->n_crit_listeners) {
        /* The worker sleeps in the standard set: a critical completion must
         * end that sleep too (ensure_started links them). */
        int rc = ensure_started(s, s->crit_listeners, err);
        if (rc < 0)
            return rc;
    }
    if (s->n_dpdk_queues) {
        int rc = rf_dpdk_thread_register(err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- live listener changes (a reload) ---------------------------------- */

/* Worker: the active input of the listener called name, if any. */
static rf_shard_input *input_by_name(rf_shard *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_active; i++) {
        rf_shard_input *in = s->active[i];
        if (in->listener && !in->retiring && strcmp(rf_listener_name(in->listener), name) == 0)
            return in;
    }
    return NULL;
}

int rf_shard_listeners_prepare(rf_shard *s, const rf_settings *next, const bool *add,
                               const char *const *remove, uint32_t n_remove, rf_err *err)
{
    rf_shard_listeners_discard(s);
    rf_shard_listener_change *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return rf_err_set(err, ENOMEM, "shard %u: out of memory for a listener change", s->index);
    int rc = 0;
    /* Every name: the worker finds which of them it has (its inputs are
     * its own to read; a name it does not have is skipped there). */
    for (uint32_t i = 0; i < n_remove; i++)
        snprintf(ch->detach[ch->n_detach++], RF_LISTENER_NAME_MAX, "%s", remove[i]);
    for (size_t i = 0; i < next->ingest.n_listeners; i++) {
        const rf_listener_config *lc = &next->ingest.listeners[i];
        if (!add[i] || !listener_on_worker(lc, s->index))
            continue;
        char name[RF_LISTENER_NAME_MAX + 16];
        snprintf(name, sizeof(name), "listener %s", lc->name);
        rf_shard_input *in = input_create(s, next, (uint16_t)i, lc->protocol, lc->max_line_bytes,
                                          lc->max_connections, lc->graphite_templates, name, err);
        if (!in) {
            rc = -(err->code ? err->code : ENOMEM);
            break;
        }
        in->critical = lc->critical;
        input_offer_sync(s, in);
        ch->attach[ch->n_attach++] = in;
        rf_listener_config cfg = *lc;
        cfg.handler = input_handler(in);
        if ((rc = rf_listener_open(&cfg, &in->listener, err)) < 0)
            break;
        if (lc->critical && !s->crit_listeners && !ch->new_crit_set &&
            (rc = rf_listener_set_new(&ch->new_crit_set, "ingest-critical", NULL, err)) < 0)
            break;
    }
    if (rc == 0 && s->n_live_inputs + ch->n_attach > RF_SHARD_MAX_INPUTS)
        rc = rf_err_set(err, ENOSPC,
                        "shard %u: the listeners of this reload would pass %u inputs, "
                        "the most one shard can have",
                        s->index, RF_SHARD_MAX_INPUTS);
    s->prepared = ch;
    if (rc < 0)
        rf_shard_listeners_discard(s);
    return rc;
}

void rf_shard_listeners_discard(rf_shard *s)
{
    rf_shard_listener_change *ch = s->prepared;
    if (!ch)
        return;
    for (uint32_t i = 0; i < ch->n_attach; i++) {
        rf_listener_close(ch->attach[i]->listener);
        input_free(ch->attach[i]);
    }
    rf_listener_set_free(ch->new_crit_set);
    free(ch);
    s->prepared = NULL;
}

bool rf_shard_listeners_publish(rf_shard *s)
{
    rf_shard_listener_change *ch = s->prepared;
    s->prepared = NULL;
    if (!ch)
        return false;
    if (ch->n_attach == 0 && ch->n_detach == 0) {
        free(ch);
        return false;
    }
    /* One change at a time: the engine refuses a reload until the last one
     * was taken (rf_shard_listeners_settled), so none is overwritten. */
    RF_ASSERT(s->published == NULL);
    rf_err err;
    rf_err_clear(&err);
    for (uint32_t i = 0; i < ch->n_attach; i++)
        (void)input_append(s, ch->attach[i], &err); /* room was checked in prepare */
    s->published = ch;
    /* Pairs with the worker's acquire exchange in rf_shard_poll_ingest. */
    atomic_store_explicit(&s->change, ch, memory_order_release);
    return true;
}

bool rf_shard_listeners_applied(rf_shard *s)
{
    rf_shard_listener_change *ch = s->published;
    /* Pairs with the worker's release store of applied: it is done with ch. */
    if (!ch || !atomic_load_explicit(&ch->applied, memory_order_acquire))
        return false;
    s->published = NULL;
    free(ch);
    return true;
}

bool rf_shard_listeners_settled(rf_shard *s)
{
    return s->published == NULL || rf_shard_listeners_applied(s);
}

/* Worker: starts a set that had no listener at start, and keeps the
 * critical set's completions able to end a sleep in the standard set. */
static int ensure_started(rf_shard *s, rf_listener_set *set, rf_err *err)
{
    if (!s->started_sets[set == s->crit_listeners]) {
        int rc = rf_listener_set_start(set, err);
        if (rc < 0)
            return rc;
        s->started_sets[set == s->crit_listeners] = true;
        if (set == s->crit_listeners)
            /* Pairs with the acquire in rf_shard_wake (another thread). */
            atomic_store_explicit(&s->crit_for_wake, set, memory_order_release);
    }
    if (!s->crit_wake_linked && s->started_sets[0] && s->started_sets[1]) {
        int rc = rf_listener_set_wake_with(s->crit_listeners, s->listeners, err);
        if (rc < 0)
            return rc;
        s->crit_wake_linked = true;
    }
    return 0;
}

/* Worker: starts removing an input's listener (ingest/listen: its queue is
 * still read, then the socket closes; retire_progress finishes it). */
static void input_detach(rf_shard *s, rf_shard_input *in)
{
    rf_listener_set_detach(in->critical ? s->crit_listeners : s->listeners, in->listener);
    in->retiring = true;
    s->n_retiring++;
    if (in->critical)
        s->n_crit_listeners--;
    else
        s->n_std_listeners--;
}

static void apply_listener_change(rf_shard *s, rf_shard_listener_change *ch)
{
    for (uint32_t i = 0; i < ch->n_detach; i++) {
        rf_shard_input *in = input_by_name(s, ch->detach[i]);
        if (in && in->attached)
            input_detach(s, in);
    }
    if (ch->new_crit_set) {
        s->crit_listeners = ch->new_crit_set;
        ch->new_crit_set = NULL;
    }
    for (uint32_t i = 0; i < ch->n_attach; i++) {
        rf_shard_input *in = ch->attach[i];
        rf_listener_set *set = in->critical ? s->crit_listeners : s->listeners;
        rf_err err;
        rf_err_clear(&err);
        int rc = ensure_started(s, set, &err);
        if (rc == 0)
            rc = rf_listener_set_attach(set, in->listener, &err);
        if (rc < 0) {
            /* Bound, but this worker cannot poll it: say so, loudly. Its
             * socket stays bound and unread (kernel drops show it). */
            rf_log_error("shard", "worker-%u: listener %s not attached: %s", s->index,
                         rf_listener_name(in->listener), err.msg);
            continue;
        }
        in->attached = true;
        input_activate(s, in);
        if (in->critical)
            s->n_crit_listeners++;
        else
            s->n_std_listeners++;
    }
    /* Pairs with the acquire in rf_shard_listeners_retiring. */
    atomic_store_explicit(&s->retiring_now, s->n_retiring, memory_order_release);
    /* Pairs with the acquire in rf_shard_listeners_applied. */
    atomic_store_explicit(&ch->applied, true, memory_order_release);
}

/* Worker: inputs whose listener finished closing hand over what they
 * parsed last, leave the listener set and this worker's list, and are
 * retired: the control thread frees them (rf_shard_inputs_reap). */
static void retire_progress(rf_shard *s)
{
    for (uint32_t i = 0; i < s->n_active && s->n_retiring;) {
        rf_shard_input *in = s->active[i];
        if (!in->retiring || !rf_listener_detached(in->listener)) {
            i++;
            continue;
        }
        rf_parse_flush(in->parser);
        if (in->http && s->sync_cancel)
            s->sync_cancel(s->sync_ctx, in->http); /* its parked answers have no connection */
        rf_listener_set_remove(in->critical ? s->crit_listeners : s->listeners, in->listener);
        in->attached = false;
        s->active[i] = s->active[--s->n_active];
        s->n_retiring--;
        /* A reload's removal, once per worker; at a stop every listener
         * goes, and its final counters say so. Before the release below:
         * from there the control thread may free the listener. */
        if (!s->stopping_ingest)
            rf_log_info("shard", "worker-%u listener %s: removed (port %u closed)", s->index,
                        rf_listener_name(in->listener), rf_listener_port(in->listener));
        /* Pairs with the acquire in rf_shard_inputs_reap: everything this
         * worker did with the input happens before it is freed. */
        atomic_store_explicit(&in->retired, true, memory_order_release);
        /* Pairs with the acquire in rf_shard_listeners_retiring. */
        atomic_store_explicit(&s->retiring_now, s->n_retiring, memory_order_release);
    }
}


uint32_t rf_shard_poll_critical(rf_shard *s)
{
    if (s->ingest_stopped || !s->n_crit_listeners)
        return 0;
    return rf_listener_set_poll(s->crit_listeners);
}

bool rf_shard_critical_pending(const rf_shard *s)
{
    return !s->ingest_stopped && s->n_crit_listeners && rf_listener_set_pending(s->crit_listeners);
}

bool rf_shard_has_critical(const rf_shard *s)
{
    return s->n_crit_listeners > 0;
}

void rf_shard_set_tap(rf_shard *s, _Atomic(rf_tap *) *slot)
{
    s->tap_slot = slot;
}

void rf_shard_set_spread(rf_shard *s, rf_spread *sp, rf_shard_wake_peer_fn wake, void *ctx)
{
    s->spread = sp;
    s->spread_wake = wake;
    s->spread_wake_ctx = ctx;
}

void rf_shard_parse_handed(rf_shard *s, const rf_spread_chunk *c)
{
    rf_shard_input *in = NULL;
    for (uint32_t i = 0; i < s->n_active && !in; i++) {
        rf_shard_input *a = s->active[i];
        if (a->listener && !a->retiring && a->source_id == c->source_id &&
            (uint8_t)a->protocol == c->protocol)
            in = a;
    }
    if (!in) {
        rf_stats_add(&s->spread_orphaned, 1);
        return;
    }
    const rf_recv_info rx = {.wall_ns = c->wall_ns, .mono_ns = c->mono_ns, .source_addr = c->peer};
    switch (in->protocol) {
    case RF_LISTEN_PROTO_INFLUX_LINE: rf_parse_influx(in->parser, &rx, c->data, c->len); break;
    case RF_LISTEN_PROTO_STATSD: rf_parse_statsd(in->parser, &rx, c->data, c->len); break;
    case RF_LISTEN_PROTO_GRAPHITE: rf_parse_graphite(in->parser, &rx, c->data, c->len); break;
    default: break; /* never offered (input_hand_off) */
    }
    rf_parse_flush(in->parser);
    input_serve_critical(in);
}

uint64_t rf_shard_spread_orphaned(const rf_shard *s)
{
    return atomic_load_explicit(&s->spread_orphaned, memory_order_relaxed);
}

void rf_shard_set_critical_hook(rf_shard *s, rf_shard_critical_fn fn, void *ctx)
{
    s->crit_hook = fn;
    s->crit_hook_ctx = ctx;
}

uint32_t rf_shard_poll_ingest(rf_shard *s)
{
    if (s->ingest_stopped)
        return 0;
    /* A reload's listener change: one relaxed load per poll when none. */
    if (__builtin_expect(atomic_load_explicit(&s->change, memory_order_relaxed) != NULL, 0)) {
        /* Taken, so the next poll does not see it again. Pairs with the
         * release store in rf_shard_listeners_publish. */
        rf_shard_listener_change *ch =
            atomic_exchange_explicit(&s->change, NULL, memory_order_acquire);
        if (ch)
            apply_listener_change(s, ch); /* the last thing it does is set applied */
    }
    if (__builtin_expect(s->n_retiring != 0, 0))
        retire_progress(s);
    /* The critical listeners only when no hook serves them (the engine's
     * hook polls them itself, first, and must be their only poller so that
     * a set is never polled from inside its own poll). */
    uint32_t work = s->crit_hook ? 0 : rf_shard_poll_critical(s);
    if (s->n_std_listeners)
        work += rf_listener_set_poll(s->listeners);
    for (uint32_t i = 0; i < s->n_dpdk_queues; i++)
        work += rf_dpdk_queue_poll(s->dpdk_queues[i], 0);
    if (s->nats)
        work += s->partial_block ? rf_nats_source_poll(s->nats, 64, nats_on_partials, s)
                                 : rf_nats_source_poll(s->nats, 64, nats_on_msg, s->nats_input);
    return work;
}

/* How long a stopping worker keeps reading what its sockets already hold. */
#define RF_SHARD_STOP_DRAIN_NS (2 * RF_NS_PER_S)

void rf_shard_stop_ingest(rf_shard *s)
{
    /* Every listener is removed as a reload removes one: what the kernel
     * had already accepted into a UDP socket's queue is read and parsed
     * before the socket closes (it was lost, uncounted, when the sockets
     * were simply closed at exit: 866,635 of 1 M datagrams once, in the
     * harness, after the workers had fallen behind), and TCP clients see
     * the connection end. The listener sets themselves (their wake-up
     * eventfds, which other threads may still write) close in
     * rf_shard_free. */
    s->stopping_ingest = true;
    for (uint32_t i = 0; i < s->n_active; i++) {
        rf_shard_input *in = s->active[i];
        if (in->listener && in->attached && !in->retiring) {
            /* No new datagrams into the socket, so the drain reaches its end
             * and nothing arrives between its last read and the close. */
            (void)rf_listener_quiesce(in->listener);
            input_detach(s, in);
        }
    }
    const int64_t deadline = rf_clock_mono_ns() + RF_SHARD_STOP_DRAIN_NS;
    while (s->n_retiring && rf_clock_mono_ns() < deadline) {
        uint32_t work = 0;
        if (s->started_sets[1])
            work += rf_listener_set_poll(s->crit_listeners);
        if (s->started_sets[0])
            work += rf_listener_set_poll(s->listeners);
        retire_progress(s);
        if (!work) {
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (s->n_retiring)
        rf_log_warn("shard",
                    "worker-%u: %u listener(s) still closing after %d s at stop; what "
                    "their sockets still held is not read",
                    s->index, s->n_retiring, (int)(RF_SHARD_STOP_DRAIN_NS / RF_NS_PER_S));
    s->ingest_stopped = true;
    /* Flush what the parsers hold so it reaches its owners before they
     * drain (the retired ones flushed when they retired). */
    for (uint32_t i = 0; i < s->n_active; i++)
        rf_parse_flush(s->active[i]->parser);
}

/* ---- processing ------------------------------------------------------- */

void rf_shard_process(rf_shard *s, const rf_event *ev, uint32_t n)
{
    rf_pipeline_process(s->pipeline, ev, n);
    s->worked = true;
}

void rf_shard_edge_process(rf_shard *s, rf_event *ev, uint32_t n)
{
    rf_pipeline_edge_process(s->pipeline, ev, n);
    s->worked = true;
}

uint32_t rf_shard_tick(rf_shard *s)
{
    /* A query's request for the store's in-memory heads is served at every
     * poll, one bounded chunk at a time (store.h "Reading the heads"): one
     * relaxed load when none is posted. */
    uint32_t heads = s->store ? rf_store_serve_heads(s->store) : 0;
    /* One vDSO clock read per poll (a batch), not per event. */
    int64_t now = rf_clock_mono_ns();
    if (s->worked) {
        /* Work may have started a timer the last tick did not know of. */
        s->worked = false;
        if (s->next_tick_ns > now + RF_SHARD_TICK_NS)
            s->next_tick_ns = now + RF_SHARD_TICK_NS;
    }
    if (now < s->next_tick_ns && !rf_pipeline_swap_pending(s->pipeline))
        return heads;
    s->next_tick_ns = now + RF_SHARD_TICK_NS; /* replaced below, after the tick */
    if (s->store_component) {
        /* The store's I/O thread retries after a write error and says when
         * a write succeeded again: the component follows (failed while
         * degraded; failed -> configuring -> running once it is ok, the
         * recovery path core/worker/worker.h allows). */
        enum rf_lifecycle_state cs = rf_component_state(s->store_component);
        rf_store_shard_io_status io;
        rf_store_shard_io_status_read(s->store, &io);
        if (io.state == RF_STORE_IO_DEGRADED && cs == RF_STATE_RUNNING) {
            char reason[RF_COMPONENT_REASON_MAX];
            snprintf(reason, sizeof(reason),
                     "degraded by write errors, retrying (%lu points lost so far): %.80s",
                     (unsigned long)io.dropped_io_error_points, io.last_error);
            rf_component_transition(s->store_component, RF_STATE_FAILED, reason);
        } else if (io.state == RF_STORE_IO_OK && cs == RF_STATE_FAILED) {
            rf_component_transition(s->store_component, RF_STATE_CONFIGURING,
                                    "writes resumed after write errors");
            rf_component_transition(s->store_component, RF_STATE_RUNNING, NULL);
        }
    }
    uint32_t work = rf_pipeline_tick(s->pipeline, now, rf_clock_wall_ns());
    /* The next tick at the pipeline's next deadline: an idle worker sleeps
     * until then instead of waking every 10 ms for nothing; never sooner
     * than the old period, never later than the bound. */
    const int64_t due = rf_pipeline_next_due_ns(s->pipeline);
    s->next_tick_ns = due < now + RF_SHARD_TICK_NS       ? now + RF_SHARD_TICK_NS
                      : due > now + RF_SHARD_TICK_MAX_NS ? now + RF_SHARD_TICK_MAX_NS
                                                         : due;
    return heads + work;
}

int64_t rf_shard_next_tick_ns(const rf_shard *s)
{
    return s->next_tick_ns;
}

void rf_shard_drain(rf_shard *s)
{
    rf_pipeline_drain(s->pipeline);
}

void rf_shard_set_peer_send(rf_shard *s, rf_peer_send_fn fn, void *ctx)
{
    rf_pipeline_set_peer_send(s->pipeline, fn, ctx);
}

void rf_shard_close_stages(rf_shard *s)
{
    rf_pipeline_close_stages(s->pipeline);
}

bool rf_shard_has_wait(const rf_shard *s)
{
    return s->n_inputs > 0;
}

void rf_shard_wait(rf_shard *s, int64_t timeout_ns)
{
    if (s->n_dpdk_queues && !s->ingest_stopped) {
        /* A NIC queue has no wake-up: nap briefly and poll again. */
        int64_t ns = timeout_ns < 50 * RF_NS_PER_US ? timeout_ns : 50 * RF_NS_PER_US;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        return;
    }
    if (!s->ingest_stopped && (s->started_sets[0] || s->started_sets[1])) {
        rf_listener_set_wait(s->started_sets[0] ? s->listeners : s->crit_listeners, timeout_ns);
        return;
    }
    /* Ingest stopped: completions may be pending forever, so the ring would
     * not block; sleep briefly instead (shutdown is near). */
    struct timespec ts = {0, timeout_ns < RF_NS_PER_MS ? timeout_ns : RF_NS_PER_MS};
    nanosleep(&ts, NULL);
}

void rf_shard_wake(rf_shard *s)
{
    /* Both sets: which one the worker sleeps in changes with reloads, and a
     * wake of a set nobody waits in costs one eventfd write at most. */
    rf_listener_set_wake(s->listeners);
    rf_listener_set *crit = atomic_load_explicit(&s->crit_for_wake, memory_order_acquire);
    if (crit)
        rf_listener_set_wake(crit);
}

void rf_shard_log_summary(const rf_shard *s)
{
    rf_pipeline_log_summary(s->pipeline);
    for (uint32_t q = 0; q < s->n_dpdk_queues; q++) {
        /* Every counter by its stable name, drops included. */
        char line[1024];
        size_t len = 0;
        for (int c = 0; c < RF_DC__COUNT && len < sizeof(line); c++)
            len += (size_t)snprintf(line + len, sizeof(line) - len, " %s=%lu",
                                    rf_dpdk_counter_name((enum rf_dpdk_counter_id)c),
                                    (unsigned long)rf_dpdk_queue_counter(
                                        s->dpdk_queues[q], (enum rf_dpdk_counter_id)c));
        rf_log_info("shard", "worker-%u dpdk queue %u final:%s", s->index, q, line);
    }
    /* Listeners reloads removed, freed since: one line per name, in the
     * live lines' form, so a sum over a name's lines counts all of it. */
    for (uint32_t k = 0; k < s->n_retired_named; k++) {
        const rf_shard_retired *r = &s->retired_named[k];
        rf_log_info(
            "shard",
            "worker-%u listener %s final: datagrams=%lu reads=%lu bytes=%lu kernel_drops=%lu "
            "lines_ok=%lu lines_rejected=%lu events=%lu series_defs=%lu "
            "partial_lines_discarded=%lu removed_instances=%u",
            s->index, r->name, (unsigned long)r->listen[RF_LC_DATAGRAMS],
            (unsigned long)r->listen[RF_LC_READS], (unsigned long)r->listen[RF_LC_BYTES],
            (unsigned long)r->listen[RF_LC_KERNEL_DROPS], (unsigned long)r->parse[RF_PC_LINES_OK],
            (unsigned long)r->parse[RF_PC_LINES_REJECTED], (unsigned long)r->parse[RF_PC_EVENTS],
            (unsigned long)r->parse[RF_PC_SERIES_DEFS],
            (unsigned long)r->listen[RF_LC_PARTIAL_DISCARDED], r->inputs);
    }
    for (uint32_t i = 0; i < s->n_inputs; i++) {
        const rf_shard_input *in = s->inputs[i];
        const rf_listener *l = in ? in->listener : NULL;
        if (!l)
            continue; /* a freed slot, or a DPDK input (logged with its queue) */
        uint64_t drops = rf_listener_counter(l, RF_LC_KERNEL_DROPS);
        uint64_t proc_drops = 0;
        if (rf_listener_config_of(l)->transport == RF_LISTEN_UDP &&
            rf_listener_proc_drops(l, &proc_drops) == 0 && proc_drops > drops)
            drops = proc_drops;
        rf_log_info(
            "shard",
            "worker-%u listener %s final: datagrams=%lu reads=%lu bytes=%lu kernel_drops=%lu "
            "lines_ok=%lu lines_rejected=%lu events=%lu series_defs=%lu "
            "partial_lines_discarded=%lu",
            s->index, rf_listener_name(l), (unsigned long)rf_listener_counter(l, RF_LC_DATAGRAMS),
            (unsigned long)rf_listener_counter(l, RF_LC_READS),
            (unsigned long)rf_listener_counter(l, RF_LC_BYTES), (unsigned long)drops,
            (unsigned long)rf_parse_counter(in->parser, RF_PC_LINES_OK),
            (unsigned long)rf_parse_counter(in->parser, RF_PC_LINES_REJECTED),
            (unsigned long)rf_parse_counter(in->parser, RF_PC_EVENTS),
            (unsigned long)rf_parse_counter(in->parser, RF_PC_SERIES_DEFS),
            (unsigned long)rf_listener_counter(l, RF_LC_PARTIAL_DISCARDED));
    }
}

uint64_t rf_shard_unknown_series_drops(const rf_shard *s)
{
    rf_pipeline_stats st;
    rf_pipeline_stats_read(s->pipeline, &st);
    return st.unknown_series;
}

const rf_pipeline *rf_shard_pipeline(const rf_shard *s)
{
    return s->pipeline;
}

uint32_t rf_shard_input_count(const rf_shard *s)
{
    return s->n_inputs;
}

const rf_parse_ctx *rf_shard_input_parser(const rf_shard *s, uint32_t i)
{
    return i < s->n_inputs && s->inputs[i] ? s->inputs[i]->parser : NULL;
}

const rf_listener *rf_shard_input_listener(const rf_shard *s, uint32_t i)
{
    return i < s->n_inputs && s->inputs[i] ? s->inputs[i]->listener : NULL;
}

const rf_shard_retired *rf_shard_retired_counters(const rf_shard *s)
{
    return &s->retired;
}

bool rf_shard_listeners_retiring(const rf_shard *s)
{
    /* Pairs with the worker's release stores of retiring_now. */
    return atomic_load_explicit(&s->retiring_now, memory_order_acquire) != 0;
}

uint32_t rf_shard_retired_names(const rf_shard *s)
{
    return s->n_retired_named;
}

const rf_shard_retired *rf_shard_retired_named(const rf_shard *s, uint32_t i)
{
    return i < s->n_retired_named ? &s->retired_named[i] : NULL;
}

static void retired_add(rf_shard_retired *r, const rf_shard_input *in)
{
    r->inputs++;
    for (int c = 0; c < RF_PC__COUNT; c++)
        r->parse[c] += rf_parse_counter(in->parser, (enum rf_parse_counter_id)c);
    for (int k = 0; k < RF_REJ__COUNT; k++)
        r->rejects[k] += rf_parse_reject_count(in->parser, (enum rf_reject_reason)k);
    for (int c = 0; c < RF_LC__COUNT; c++)
        r->listen[c] += rf_listener_counter(in->listener, (enum rf_listen_counter_id)c);
}

/* Control thread: adds a retired input's final counters to the totals and
 * to its name's record. */
static void retired_fold(rf_shard *s, const rf_shard_input *in)
{
    retired_add(&s->retired, in);
    const char *name = rf_listener_name(in->listener);
    uint32_t i = 0;
    while (i < s->n_retired_named && strcmp(s->retired_named[i].name, name) != 0)
        i++;
    if (i == s->n_retired_named) {
        if (i == RF_SETTINGS_MAX_LISTENERS) {
            i--; /* the last record takes every further name */
            snprintf(s->retired_named[i].name, sizeof(s->retired_named[i].name), "(removed)");
        } else {
            snprintf(s->retired_named[i].name, sizeof(s->retired_named[i].name), "%s", name);
            s->n_retired_named++;
        }
    }
    retired_add(&s->retired_named[i], in);
}

uint32_t rf_shard_inputs_reap(rf_shard *s, rf_shard_input_gone_fn gone, void *ctx)
{
    uint32_t freed = 0;
    for (uint32_t i = 0; i < s->n_inputs; i++) {
        rf_shard_input *in = s->inputs[i];
        /* Pairs with the release store in retire_progress. */
        if (!in || !atomic_load_explicit(&in->retired, memory_order_acquire))
            continue;
        if (gone)
            gone(ctx, s->index, i); /* readers of its counters let go first */
        retired_fold(s, in);
        rf_listener_close(in->listener);
        rf_http_front_free(in->http); /* an http listener's connection state */
        rf_parse_ctx_free(in->parser);
        free(in);
        s->inputs[i] = NULL;
        s->n_live_inputs--;
        freed++;
    }
    while (s->n_inputs && !s->inputs[s->n_inputs - 1])
        s->n_inputs--;
    return freed;
}

const rf_http_front *rf_shard_input_http(const rf_shard *s, uint32_t i)
{
    return i < s->n_inputs && s->inputs[i] ? s->inputs[i]->http : NULL;
}

uint32_t rf_shard_dpdk_queue_count(const rf_shard *s)
{
    return s->n_dpdk_queues;
}

const rf_dpdk_queue *rf_shard_dpdk_queue(const rf_shard *s, uint32_t i)
{
    return i < s->n_dpdk_queues ? s->dpdk_queues[i] : NULL;
}
