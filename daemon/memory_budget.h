/* The memory a configuration can need, at most, part by part; and
 * engine.memory_limit, checked against it when the configuration is loaded.
 *
 * Each module that allocates states its own worst case next to the code
 * that allocates (rf_ring_memory_bound, rf_store_memory_bound,
 * rf_aggregator_memory_bound, rf_alerts_memory_bound,
 * rf_correlator_memory_bound, rf_router_memory_bound, rf_sink_memory_bound,
 * rf_batcher_memory_bound, rf_listener_set_memory_bound,
 * rf_listener_memory_bound); this file adds them up for the whole daemon:
 * per worker (its rings, series table, stages, storage shard, parse
 * contexts, listener sets), once (the ops sockets, the process itself), and
 * the second set of stages a reload builds while the first still runs. The
 * parts whose owners have no such function yet (the series table, the parse
 * contexts, the pipeline's and the engine's own buffers) are computed here
 * from their allocation code, named so in their comments.
 *
 * What is counted is memory the process can come to hold: allocations at
 * the capacity they can reach (arrays that double: with the old copy alive
 * while they grow), with the allocator's rounding (rf_mem_alloc_bound),
 * reserved-but-lazy memory (huge-page tables, TCP line buffers, aggregation
 * pools) as if all of it were touched, the kernel's io_uring queues mapped
 * into the process. Not counted: kernel memory that is not mapped here
 * (socket receive queues: `rcvbuf`, charged to the socket, not to RSS) and
 * DPDK hugepages beyond dpdk.memory. */
#ifndef RF_DAEMON_MEMORY_BUDGET_H
#define RF_DAEMON_MEMORY_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/error/error.h"

struct rf_settings;

#define RF_MEM_PARTS_MAX 32

typedef struct rf_mem_part {
    const char *name;  /* "storage point buffers" */
    const char *lower; /* the keys that size it: "storage.buffer_memory" */
    uint64_t bytes;    /* for the whole daemon (every worker) */
} rf_mem_part;

typedef struct rf_memory_budget {
    uint64_t total;
    uint32_t n;
    rf_mem_part parts[RF_MEM_PARTS_MAX]; /* largest first */
} rf_memory_budget;

/* The worst case of settings s, part by part (pure: allocates nothing). */
void rf_memory_budget_compute(const struct rf_settings *s, rf_memory_budget *out);

/* When s->daemon.engine.memory_limit is set and the worst case exceeds it,
 * fails with an error at memory_limit (its FILE:LINE:COL, from engine =
 * the `engine:` mapping) naming the total, the limit and the biggest parts
 * with the keys to lower. Returns 0 otherwise. */
int rf_memory_budget_check(const struct rf_settings *s, const rf_cfg_node *engine, rf_err *err);

/* This host's memory for the process: physical memory, or the cgroup's
 * memory.max when that is lower (a container, a unit's MemoryMax=). */
uint64_t rf_memory_host_bytes(void);

/* The `auto` values (the defaults), once every section is parsed:
 *   - engine.memory_limit: auto = half of rf_memory_host_bytes(), so the
 *     worst case leaves the other half to the page cache (segments are
 *     read back through it), the kernel's socket buffers (not counted:
 *     rcvbuf) and the rest of the host.
 *   - pipeline.max_series: auto = the largest value, at most
 *     RF_PIPELINE_DEFAULT_MAX_SERIES and a multiple of 1024, whose worst
 *     case fits memory_limit (half of the host's memory when memory_limit
 *     is 0), so the default configuration cannot grow past the host.
 * When even 1024 series do not fit, max_series is 1024 and
 * rf_memory_budget_check refuses the configuration, naming the parts.
 * A max_series_per_measurement above the value found is refused at
 * pipeline.max_series. root: the document's top level, for messages. */
int rf_memory_budget_resolve(struct rf_settings *s, const rf_cfg_node *root, rf_err *err);

/* A reload: the series tables keep their size (changing it takes a
 * restart), but max_series: auto moves with the pipeline's worst case, so
 * every pipeline change would name it. When next's max_series is auto and
 * its worst case still fits its memory_limit with the `running` size, next
 * takes that size and this returns true; otherwise next keeps its own value
 * (the reload then names max_series as needing a restart). */
bool rf_memory_budget_keep_max_series(struct rf_settings *next, uint32_t running);

/* "1.5 GiB", "640 KiB", "12 B" into buf. */
const char *rf_memory_format(uint64_t bytes, char *buf, unsigned long size);

#endif
