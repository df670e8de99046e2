/* One client over every core: a worker that receives a fast TCP stream hands
 * line-aligned chunks of it to other workers to parse, over SPSC rings.
 *
 * Shape
 *   The listener set frames a connection's reads into runs of whole lines
 *   (ingest/listen, frame.c); with a fast client each run is most of one
 *   16 KiB receive buffer. The receiving worker (the producer) offers each
 *   run here before parsing it: when a peer has a free chunk buffer, the run
 *   is copied into it and the peer (the consumer) parses it with its own
 *   parse context for the same listener, and dispatches the events by owner
 *   as if it had received them. Otherwise the producer parses it itself.
 *
 *   Per ordered pair of workers (from -> to): `buffers` chunk buffers owned
 *   by `from`, preallocated at rf_spread_new, a ring from -> to that carries
 *   the index of each filled buffer, and a ring to -> from that returns the
 *   index once `to` has parsed it. No allocation, no lock, no syscall on
 *   either side; the engine wakes a sleeping consumer (one wake per chunk,
 *   not per event).
 *
 * When a run is handed over (rf_spread_offer), cheapest test first
 *   - hand-off is enabled, the run holds at least min_chunk bytes (a slow
 *     client's reads are small: it keeps parsing where it lands) and fits a
 *     buffer;
 *   - a peer that runs the listener (peer_mask) has a free buffer: a peer
 *     still parsing earlier chunks has none, which is the back-pressure
 *     (nothing waits: the producer parses the run itself);
 *   - the peer is not handing chunks to this worker (its ring to us is
 *     empty): a peer with a fast client of its own is busy, and two busy
 *     workers trading chunks would only add copies.
 *   Peers are tried round-robin from the one after the last taker.
 *
 * Order (docs/ARCHITECTURE.md, "One client over every core")
 *   The chunks of one connection are parsed in parallel, so two points of one
 *   series in different chunks can reach their owner in either order. The
 *   window is bounded by the buffers in flight: a chunk is parsed before the
 *   producer has received more than (buffers x (workers - 1)) further handed
 *   chunks plus what it parsed itself meanwhile, and a point can only be
 *   overtaken by points of chunks in that window. Within a chunk the order is
 *   kept. The store sorts a block whose points arrived out of order at its
 *   cut (out_of_order_cuts), so what it keeps is the same.
 *
 * Threads
 *   rf_spread_new / free: control thread, no worker running. offer and
 *   outstanding: the producer's worker thread only (worker `from`). drain:
 *   the consumer's worker thread only (worker `self`). Stats: any thread
 *   (single-writer counters, relaxed). */
#ifndef RF_INGEST_SPREAD_H
#define RF_INGEST_SPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"

/* Chunk buffers per ordered pair: defaults and bounds. */
#define RF_SPREAD_BUFFERS_DEFAULT 8u
#define RF_SPREAD_BUFFERS_MAX 1024u
/* A read of the listener's TCP buffers (16 KiB) fits; a held line completed
 * from the line buffer that is longer is parsed where it landed. */
#define RF_SPREAD_BUFFER_BYTES 16384u
#define RF_SPREAD_MIN_CHUNK_DEFAULT 4096u
#define RF_SPREAD_PEER_TEXT_MAX 56u /* RF_LISTEN_ADDR_TEXT_MAX */

typedef struct rf_spread_config {
    bool enabled;       /* ingest.spread.enabled (default false: see docs/PERFORMANCE.md) */
    uint32_t buffers;   /* per ordered pair of workers, a power of two 2..1024 (8) */
    uint32_t min_chunk; /* runs shorter than this parse where they land (4 KiB) */
} rf_spread_config;

/* ingest.spread: {enabled, buffers, min_chunk} from the `ingest:` map (NULL
 * or absent: defaults). */
int rf_spread_config_parse(const rf_cfg_node *ingest, rf_spread_config *out, rf_err *err);
void rf_spread_config_init(rf_spread_config *cfg);

typedef struct rf_spread rf_spread;

/* What a consumer parses: valid during the parse callback only. */
typedef struct rf_spread_chunk {
    const char *data; /* whole lines */
    uint32_t len;
    uint32_t from;      /* the worker that received it */
    uint16_t source_id; /* the listener (its parse contexts' source_id) */
    uint8_t protocol;   /* enum rf_listen_protocol */
    const char *peer;   /* the client, "ip:port" (copied at the hand-off) */
    int64_t mono_ns;    /* receipt, as the listener stamped it */
    int64_t wall_ns;
} rf_spread_chunk;

/* Everything for `workers` workers (at least 2, and enabled; with 1 there is
 * nothing to spread: returns 0 and *out NULL, as when disabled). Returns 0 or a negative errno with err. */
int rf_spread_new(rf_spread **out, uint32_t workers, const rf_spread_config *cfg, rf_err *err);
void rf_spread_free(rf_spread *sp);
/* Memory rf_spread_new takes for this shape (core/mem/bound.h rounding). */
uint64_t rf_spread_memory_bound(uint32_t workers, const rf_spread_config *cfg);

/* Producer (worker `from`): offers a run of whole lines. Returns the worker
 * that took it (the caller wakes it), or -1: parse it here (counted as a
 * local chunk). peer_mask: the workers that run this listener (bit i). */
int rf_spread_offer(rf_spread *sp, uint32_t from, uint64_t peer_mask, uint16_t source_id,
                    uint8_t protocol, const char *data, size_t len, const char *peer,
                    int64_t mono_ns, int64_t wall_ns);
/* Producer: counts a run parsed here without an offer (e.g. while stopping). */
void rf_spread_count_local(rf_spread *sp, uint32_t from, size_t len);
/* Producer: chunks it handed over that the peers have not given back yet
 * (takes back what they returned). 0 means every handed chunk was parsed. */
uint32_t rf_spread_outstanding(rf_spread *sp, uint32_t from);

/* Consumer (worker `self`): parses what peers handed it, at most max_chunks,
 * with parse(ctx, chunk) for each, in each peer's order, then returns their
 * buffers. Returns the number of chunks parsed. */
typedef void (*rf_spread_parse_fn)(void *ctx, const rf_spread_chunk *chunk);
uint32_t rf_spread_drain(rf_spread *sp, uint32_t self, uint32_t max_chunks,
                         rf_spread_parse_fn parse, void *ctx);

/* Per worker, any thread (relaxed reads of single-writer counters). */
typedef struct rf_spread_stats {
    uint64_t handed_chunks, handed_bytes; /* runs this worker received and a peer parsed */
    uint64_t local_chunks, local_bytes;   /* runs this worker received and parsed itself */
    uint64_t taken_chunks, taken_bytes;   /* runs peers received and this worker parsed */
    uint64_t no_buffer;                   /* offers refused: every peer's buffers in use */
} rf_spread_stats;
void rf_spread_stats_read(const rf_spread *sp, uint32_t worker, rf_spread_stats *out);

#endif
