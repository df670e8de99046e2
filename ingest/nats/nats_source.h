/* A NATS JetStream source for one worker: durable pull consumers on the
 * shards this worker owns, handing message payloads (line protocol, as the
 * nats sink writes them) to the worker without blocking it.
 *
 * Shards and consumers
 *   The publishing sink's subject template (e.g. "rf.{measurement}.{shard}")
 *   is given here too. Worker w of W owns the shards s with s % W == w and
 *   has one durable pull consumer per owned shard, "<durable>-s<s>", filtered
 *   to the template with {shard} = s and the other placeholders '*'
 *   (nats-server 2.9 takes one filter subject per consumer). A durable per
 *   shard outlives the process: a restarted aggregator resumes where its
 *   acks stopped, and a changed worker count moves whole shards.
 *
 * Threads
 *   A fetch thread of the source (nats.c's calls block) fetches batches
 *   round-robin from the consumers and puts the messages in an SPSC ring to
 *   the worker (bounded: it fetches no more while the ring is full). The
 *   worker calls rf_nats_source_poll from its loop: no lock, no allocation,
 *   no syscall; each message goes to the handler and then back through a
 *   second SPSC ring, and the fetch thread acknowledges it (accepted) or
 *   negatively acknowledges it (not accepted: redelivered at once). The
 *   worker is woken with `wake` (any thread) when messages arrive.
 *
 * At least once
 *   A message is acked only after the handler accepted its events. One that
 *   is never acked (the process died) is redelivered after ack_wait; a
 *   redelivered message (NumDelivered > 1) is counted. max_ack_pending
 *   bounds what a consumer hands out unacknowledged. Duplicates of points
 *   that were accepted but whose ack was lost are possible within that
 *   window; the sink's Nats-Msg-Id removes those of the publishing side. */
#ifndef RF_INGEST_NATS_SOURCE_H
#define RF_INGEST_NATS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"

#define RF_NATS_SOURCE_MAX_SERVERS 8u

typedef struct rf_nats_source_config {
    const char *servers[RF_NATS_SOURCE_MAX_SERVERS];
    uint32_t n_servers;
    const char *stream;       /* the stream the sink publishes into */
    const char *subject;      /* the sink's template */
    const char *durable;      /* consumer name base; per shard "<durable>-s<shard>" */
    uint32_t shards;          /* the sink's shards */
    uint32_t workers, worker; /* this source serves worker `worker` of `workers` */
    uint32_t batch;           /* messages per fetch; 0: 64 */
    uint32_t max_ack_pending; /* per consumer; 0: 1024 */
    int64_t ack_wait_ns;      /* redelivery after; 0: 30 s */
    uint32_t ring;            /* messages between the fetch thread and the worker; 0: 256 */
    const char *creds_file, *tls_ca, *tls_cert, *tls_key;
    /* Labels of the ringflow_nats_source_* metrics (registered by new and
     * removed by free, both on the control thread); NULL: none. */
    const char *metric_labels;
} rf_nats_source_config;

typedef struct rf_nats_source_stats {
    uint64_t messages, bytes; /* handed to the worker */
    uint64_t acked, nacked;   /* settled after the handler */
    uint64_t redelivered;     /* messages delivered more than once */
    uint64_t fetch_errors;    /* fetches that failed (not the empty ones) */
    uint32_t consumers;       /* consumers (owned shards) */
    uint32_t connection;      /* natsConnStatus, as in rf_fwd_stats.nats_conn */
} rf_nats_source_stats;

typedef struct rf_nats_source rf_nats_source;

/* Handler: the payload of one message (whole lines) and its subject;
 * returns whether its events were accepted. */
typedef bool (*rf_nats_source_handler)(void *ctx, const char *subject, const char *data,
                                       size_t len);

/* Connects, creates or binds the consumers and starts the fetch thread.
 * wake(wake_ctx) is called from the fetch thread after it queued messages
 * for an empty ring (may be NULL). Errors name the consumer or server. */
int rf_nats_source_new(const rf_nats_source_config *cfg, void (*wake)(void *), void *wake_ctx,
                       rf_nats_source **out, rf_err *err);
/* Stops the fetch thread, acks what the worker accepted and naks what it
 * never took (redelivered at once); anything else unacknowledged is
 * redelivered after ack_wait. Control thread, after the worker stopped. */
void rf_nats_source_free(rf_nats_source *s);

/* Worker: up to max messages to the handler. Returns how many. */
uint32_t rf_nats_source_poll(rf_nats_source *s, uint32_t max, rf_nats_source_handler h, void *ctx);

/* Any thread. */
void rf_nats_source_stats_read(const rf_nats_source *s, rf_nats_source_stats *out);

/* Shared with the nats sink (stages/forward/sender_nats.c): nats.c options
 * for these servers, reconnecting forever, with credentials (a creds
 * file) and TLS (CA, client cert and key) when given (NULL: not used).
 * Returns NATS_OK or nats.c's status; *opts is the caller's to destroy. */
struct __natsOptions;
int rf_nats_options_new(const char *const *servers, uint32_t n_servers, const char *creds,
                        const char *tls_ca, const char *tls_cert, const char *tls_key,
                        struct __natsOptions **opts);

/* ---- configuration: the top-level `nats_source:` section (nats_source_config.c)
 *
 *   nats_source:
 *     enabled: true
 *     servers: [nats://10.0.0.5:4222]
 *     stream: RF                          # the stream the edges' nats sink fills
 *     subject: "rf.{measurement}.{shard}" # the edges' sink template
 *     shards: 16                          # the edges' sink shards
 *     durable: agg                        # consumers agg-s0 .. agg-s15
 *     hosts: 1                            # aggregating hosts sharing the shards
 *     host: 0                             # this one's index, below hosts
 *     batch: 64
 *     max_ack_pending: 1024
 *     ack_wait: 30s
 *     creds: /etc/ringflow/nats.creds
 *     tls: {ca: ca.pem, cert: c.pem, key: c.key}
 *     payload: lines                      # or partials
 *
 * Every worker pulls its shards (see above); with `hosts: H`, worker w of
 * W on host h is worker h * W + w of H * W, so H aggregating hosts (the
 * same W each) own disjoint shards and together all of them; the payload is parsed as line
 * protocol, or, with `payload: partials`, read as the partial aggregates
 * edges send (rf_agg_partial_line, stages/aggregate/README.md "Between
 * hosts") and merged by this worker's aggregator: every partial of a group
 * is on one shard, so on one worker. Fixed-size strings: the settings are copied by value. A change
 * takes effect at the next start (a reload does not re-create consumers). */
#define RF_NATS_SOURCE_STR 256
typedef struct rf_nats_source_settings {
    bool enabled;
    char servers[RF_NATS_SOURCE_MAX_SERVERS][RF_NATS_SOURCE_STR];
    uint32_t n_servers;
    char stream[RF_NATS_SOURCE_STR], subject[RF_NATS_SOURCE_STR], durable[RF_NATS_SOURCE_STR];
    char creds[RF_NATS_SOURCE_STR], tls_ca[RF_NATS_SOURCE_STR], tls_cert[RF_NATS_SOURCE_STR],
        tls_key[RF_NATS_SOURCE_STR];
    uint32_t shards, batch, max_ack_pending;
    uint32_t hosts, host; /* this host's share of the shards (see above) */
    int64_t ack_wait_ns;
    bool partials; /* payload: partials (else lines) */
} rf_nats_source_settings;

int rf_nats_source_settings_parse(const rf_cfg_node *root, rf_nats_source_settings *out,
                                  rf_err *err);
/* The source config of worker `worker` of `workers`; points into *st. */
void rf_nats_source_config_from(const rf_nats_source_settings *st, uint32_t worker,
                                uint32_t workers, rf_nats_source_config *out);

#endif
