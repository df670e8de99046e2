/* The JetStream pull source of one worker (nats_source.h): a fetch thread
 * that owns every nats.c call, and two SPSC rings to and from the worker. */
#include "ingest/nats/nats_source.h"

#include <errno.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ring/ring.h"
#include "core/stats/stats.h"

#define DEF_BATCH 64u
#define DEF_MAX_ACK_PENDING 1024
#define DEF_ACK_WAIT_NS (30ll * 1000000000ll)
#define DEF_RING 256u
/* How long one fetch waits on an idle consumer: settling (acks) waits at
 * most this times the number of consumers. */
#define FETCH_WAIT_MS 20
#define SUBJ_MAX 256

/* A message back from the worker: accepted or not. */
typedef struct settled_msg {
    natsMsg *msg;
    uint64_t accepted;
} settled_msg;

struct rf_nats_source {
    rf_nats_source_config cfg;
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription **subs;
    uint32_t n_subs;
    rf_ring *to_worker, *to_fetcher; /* natsMsg * / settled_msg, SPSC each */
    uint32_t outstanding;            /* fetcher: fetched and not yet settled */
    void (*wake)(void *);
    void *wake_ctx;
    pthread_t thread;
    bool started;
    /* The owner sets stop (release); the fetch thread reads it (acquire). */
    _Atomic bool stop;
    /* Single-writer counters (core/stats): the worker writes messages and
     * bytes, the fetch thread the rest; any thread reads them relaxed. */
    _Alignas(64) _Atomic uint64_t messages, bytes;
    _Alignas(64) _Atomic uint64_t acked, nacked, redelivered, fetch_errors, connection;
    int metric_ids[6];
    uint32_t n_metrics;
};

static void register_metrics(rf_nats_source *s, const char *labels)
{
    const struct {
        _Atomic uint64_t *v;
        bool gauge;
        const char *name, *help;
    } m[] = {
        {&s->messages, false, "ringflow_nats_source_messages",
         "NATS messages handed to the worker."},
        {&s->bytes, false, "ringflow_nats_source_bytes", "Payload bytes handed to the worker."},
        {&s->acked, false, "ringflow_nats_source_acked",
         "NATS messages acknowledged after their events were accepted."},
        {&s->nacked, false, "ringflow_nats_source_nacked", "NATS messages refused (redelivered)."},
        {&s->redelivered, false, "ringflow_nats_source_redelivered",
         "NATS messages delivered more than once."},
        {&s->connection, true, "ringflow_nats_source_connection",
         "Connection: 0 disconnected, 1 connecting, 2 connected, 3 closed, 4 reconnecting."},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        int id = m[i].gauge ? rf_stats_register_gauge(m[i].name, m[i].help, labels, m[i].v)
                            : rf_stats_register_counter(m[i].name, m[i].help, labels, m[i].v);
        if (id >= 0)
            s->metric_ids[s->n_metrics++] = id;
    }
}

/* The consumer filter of one shard: {shard} = shard, other placeholders '*'. */
static void shard_filter(const char *tmpl, uint32_t shard, char *out, size_t cap)
{
    size_t k = 0;
    for (const char *t = tmpl; *t && k + 12 < cap;) {
        if (!strncmp(t, "{shard}", 7)) {
            k += (size_t)snprintf(out + k, cap - k, "%u", shard);
            t += 7;
        } else if (*t == '{' && strchr(t, '}')) {
            out[k++] = '*';
            t = strchr(t, '}') + 1;
        } else {
            out[k++] = *t++;
        }
    }
    out[k] = '\0';
}

int rf_nats_options_new(const char *const *servers, uint32_t n_servers, const char *creds,
                        const char *tls_ca, const char *tls_cert, const char *tls_key,
                        natsOptions **opts)
{
    natsStatus st = natsOptions_Create(opts);
    if (st == NATS_OK)
        st = natsOptions_SetServers(*opts, (const char **)servers, (int)n_servers);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(*opts, -1);
    if (st == NATS_OK && creds)
        st = natsOptions_SetUserCredentialsFromFiles(*opts, creds, NULL);
    if (st == NATS_OK && (tls_ca || tls_cert))
        st = natsOptions_SetSecure(*opts, true);
    if (st == NATS_OK && tls_ca)
        st = natsOptions_LoadCATrustedCertificates(*opts, tls_ca);
    if (st == NATS_OK && tls_cert)
        st = natsOptions_LoadCertificatesChain(*opts, tls_cert, tls_key);
    return (int)st;
}

static void settle(rf_nats_source *s)
{
    settled_msg m;
    while (rf_ring_dequeue(s->to_fetcher, &m, sizeof(m))) {
        if (m.accepted) {
            natsMsg_Ack(m.msg, NULL);
            rf_stats_add(&s->acked, 1);
        } else {
            natsMsg_Nak(m.msg, NULL);
            rf_stats_add(&s->nacked, 1);
        }
        natsMsg_Destroy(m.msg);
        s->outstanding--;
    }
}

static void fetch_one(rf_nats_source *s, natsSubscription *sub, uint32_t room)
{
    natsMsgList list = {0};
    jsErrCode ec = 0;
    natsStatus st = natsSubscription_Fetch(&list, sub, (int)room, FETCH_WAIT_MS, &ec);
    if (st != NATS_OK && st != NATS_TIMEOUT)
        rf_stats_add(&s->fetch_errors, 1);
    bool was_empty = rf_ring_count(s->to_worker) == 0;
    for (int i = 0; i < list.Count; i++) {
        natsMsg *m = list.Msgs[i];
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            if (meta->NumDelivered > 1)
                rf_stats_add(&s->redelivered, 1);
            jsMsgMetaData_Destroy(meta);
        }
        /* Room was checked: outstanding <= ring capacity. */
        rf_ring_enqueue(s->to_worker, &m, sizeof(m));
        list.Msgs[i] = NULL; /* the worker has it now */
        s->outstanding++;
    }
    natsMsgList_Destroy(&list);
    if (list.Count && was_empty && s->wake)
        s->wake(s->wake_ctx);
}

static bool stopping(rf_nats_source *s)
{
    /* Pairs with the release store in rf_nats_source_free. */
    return atomic_load_explicit(&s->stop, memory_order_acquire);
}

static void *fetch_main(void *arg)
{
    rf_nats_source *s = arg;
    uint32_t next = 0;
    while (!stopping(s)) {
        settle(s);
        rf_stats_set(&s->connection, (uint64_t)natsConnection_Status(s->nc));
        uint32_t room = s->cfg.ring - s->outstanding;
        if (room > s->cfg.batch)
            room = s->cfg.batch;
        if (room == 0 || s->n_subs == 0) {
            struct timespec ts = {0, 1000 * 1000}; /* the worker is behind: wait for settles */
            nanosleep(&ts, NULL);
            continue;
        }
        fetch_one(s, s->subs[next], room);
        next = (next + 1) % s->n_subs;
    }
    settle(s);
    return NULL;
}

static int fail(rf_nats_source *s, natsStatus st, const char *what, rf_err *err)
{
    (void)s;
    return rf_err_set(err, EIO, "nats source: %s: %s", what, natsStatus_GetText(st));
}

static int subscribe(rf_nats_source *s, rf_err *err)
{
    const rf_nats_source_config *c = &s->cfg;
    s->subs = calloc(c->shards, sizeof(*s->subs));
    if (!s->subs)
        return rf_err_set(err, ENOMEM, "nats source: out of memory");
    for (uint32_t shard = c->worker; shard < c->shards; shard += c->workers) {
        char filter[SUBJ_MAX], durable[128];
        shard_filter(c->subject, shard, filter, sizeof(filter));
        snprintf(durable, sizeof(durable), "%s-s%u", c->durable, shard);
        jsSubOptions so;
        jsSubOptions_Init(&so);
        so.Stream = c->stream;
        so.ManualAck = true;
        so.Config.AckPolicy = js_AckExplicit;
        so.Config.MaxAckPending = c->max_ack_pending;
        so.Config.AckWait = c->ack_wait_ns;
        jsErrCode ec = 0;
        natsStatus st =
            js_PullSubscribe(&s->subs[s->n_subs], s->js, filter, durable, NULL, &so, &ec);
        if (st != NATS_OK)
            return rf_err_set(err, EIO, "nats source: consumer %s on %s (stream %s): %s (%d)",
                              durable, filter, c->stream, natsStatus_GetText(st), (int)ec);
        s->n_subs++;
    }
    return 0;
}

int rf_nats_source_new(const rf_nats_source_config *cfg, void (*wake)(void *), void *wake_ctx,
                       rf_nats_source **out, rf_err *err)
{
    if (!cfg->n_servers || !cfg->stream || !cfg->subject || !cfg->durable || !cfg->workers ||
        cfg->worker >= cfg->workers)
        return rf_err_set(err, EINVAL,
                          "nats source: servers, stream, subject, durable and a "
                          "worker below workers are required");
    rf_nats_source *s = calloc(1, sizeof(*s));
    if (!s)
        return rf_err_set(err, ENOMEM, "nats source: out of memory");
    s->cfg = *cfg;
    rf_nats_source_config *c = &s->cfg;
    if (!c->shards)
        c->shards = 1;
    if (!c->batch)
        c->batch = DEF_BATCH;
    if (!c->max_ack_pending)
        c->max_ack_pending = DEF_MAX_ACK_PENDING;
    if (c->ack_wait_ns <= 0)
        c->ack_wait_ns = DEF_ACK_WAIT_NS;
    if (!c->ring)
        c->ring = DEF_RING;
    s->wake = wake;
    s->wake_ctx = wake_ctx;
    int rc = 0;
    natsStatus st = (natsStatus)rf_nats_options_new(c->servers, c->n_servers, c->creds_file,
                                                    c->tls_ca, c->tls_cert, c->tls_key, &s->opts);
    if (st != NATS_OK) {
        rc = fail(s, st, "options (servers, credentials or TLS files)", err);
        goto out;
    }
    if ((st = natsConnection_Connect(&s->nc, s->opts)) != NATS_OK) {
        rc = fail(s, st, "connect", err);
        goto out;
    }
    if ((st = natsConnection_JetStream(&s->js, s->nc, NULL)) != NATS_OK) {
        rc = fail(s, st, "JetStream context", err);
        goto out;
    }
    s->to_worker = rf_ring_create(c->ring, sizeof(natsMsg *));
    s->to_fetcher = rf_ring_create(c->ring, sizeof(settled_msg));
    if (!s->to_worker || !s->to_fetcher) {
        rc = rf_err_set(err, ENOMEM, "nats source: out of memory for rings");
        goto out;
    }
    if ((rc = subscribe(s, err)))
        goto out;
    if ((rc = -pthread_create(&s->thread, NULL, fetch_main, s))) {
        rf_err_set(err, -rc, "nats source: cannot start the fetch thread");
        goto out;
    }
    s->started = true;
    if (c->metric_labels)
        register_metrics(s, c->metric_labels);
out:
    if (rc) {
        rf_nats_source_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void rf_nats_source_free(rf_nats_source *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n_metrics; i++)
        rf_stats_unregister(s->metric_ids[i]);
    if (s->started) {
        /* Pairs with the acquire in stopping(). */
        atomic_store_explicit(&s->stop, true, memory_order_release);
        pthread_join(s->thread, NULL);
    }
    /* Messages the worker never took: nak'ed, so the next consumer of the
     * shard gets them at once rather than after ack_wait. The fetch thread
     * is gone: this thread is the rings' only user now. */
    natsMsg *m;
    while (s->to_worker && rf_ring_dequeue(s->to_worker, &m, sizeof(m))) {
        natsMsg_Nak(m, NULL);
        natsMsg_Destroy(m);
    }
    for (uint32_t i = 0; i < s->n_subs; i++)
        natsSubscription_Destroy(s->subs[i]); /* leaves the durable consumers on the server */
    free(s->subs);
    jsCtx_Destroy(s->js);
    natsConnection_Destroy(s->nc);
    natsOptions_Destroy(s->opts);
    rf_ring_destroy(s->to_worker);
    rf_ring_destroy(s->to_fetcher);
    free(s);
}

uint32_t rf_nats_source_poll(rf_nats_source *s, uint32_t max, rf_nats_source_handler h, void *ctx)
{
    uint32_t n = 0;
    natsMsg *m;
    while (n < max && rf_ring_dequeue(s->to_worker, &m, sizeof(m))) {
        int len = natsMsg_GetDataLength(m);
        bool ok = h(ctx, natsMsg_GetSubject(m), natsMsg_GetData(m), (size_t)len);
        rf_stats_add(&s->messages, 1);
        rf_stats_add(&s->bytes, (uint64_t)len);
        settled_msg sm = {.msg = m, .accepted = ok};
        /* Cannot fail: at most `ring` messages are outstanding. */
        rf_ring_enqueue(s->to_fetcher, &sm, sizeof(sm));
        n++;
    }
    return n;
}

void rf_nats_source_stats_read(const rf_nats_source *s, rf_nats_source_stats *o)
{
    rf_nats_source *w = (rf_nats_source *)s;
    memset(o, 0, sizeof(*o));
    o->messages = atomic_load_explicit(&w->messages, memory_order_relaxed);
    o->bytes = atomic_load_explicit(&w->bytes, memory_order_relaxed);
    o->acked = atomic_load_explicit(&w->acked, memory_order_relaxed);
    o->nacked = atomic_load_explicit(&w->nacked, memory_order_relaxed);
    o->redelivered = atomic_load_explicit(&w->redelivered, memory_order_relaxed);
    o->fetch_errors = atomic_load_explicit(&w->fetch_errors, memory_order_relaxed);
    o->consumers = s->n_subs;
    o->connection = (uint32_t)atomic_load_explicit(&w->connection, memory_order_relaxed);
}
