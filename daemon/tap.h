/* The recording tap: copies what a running engine's listeners receive into
 * a recording file (docs/FORMAT.md "Recording format"), the same format
 * `ringflow record` writes standalone, so `ringflow replay` reads both.
 *
 * Shape
 *
 *   worker k ── rf_tap_capture ──▶ byte ring k (SPSC) ──▶ tap thread ──▶ rf_rec_writer
 *
 *   - Started and stopped by the control thread (the admin socket's
 *     `record start PATH ...` / `record stop`). While it runs, each worker
 *     copies every chunk its listeners deliver (a UDP datagram, or the
 *     complete lines of a TCP read) with its receipt time, source, listener
 *     and protocol into its own ring: one memcpy, no lock, no syscall, no
 *     allocation. The tap thread writes the rings' records to the file.
 *   - The tap never slows ingest: when a worker's ring is full the chunk is
 *     not recorded and is counted (dropped_full); the engine processes it
 *     as always. Nothing else is ever dropped by the tap.
 *   - Workers reach the tap through an atomic pointer the engine owns
 *     (rf_tap_capture_maybe): one load per chunk when no recording runs.
 *     Stopping is a grace period, as RCU does it: the engine unpublishes the
 *     pointer, then asks each worker to answer at the top of its next loop
 *     (a capture happens inside a loop, so none still holds the old pointer;
 *     request and answer are a release/acquire pair each way, so the
 *     captures happen before the free), and only then rf_tap_stop drains
 *     the rings and closes the file. A worker that does not answer in time
 *     gets rf_tap_abandon: the file is closed, the memory kept until the engine
 *     stops.
 *
 * TCP chunks are recorded as complete lines, each ending in '\n' (the
 * listener hands a line completed across reads over without it); the
 * connection number is the listener's connection slot + 1, so a slot reused
 * by a later connection shares its number in the recording.
 */
#ifndef RF_DAEMON_TAP_H
#define RF_DAEMON_TAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error/error.h"
#include "ingest/listen/listen.h"

typedef struct rf_tap rf_tap;

typedef struct rf_tap_options {
    const char *path;    /* the recording (with max_bytes: path.000001, ...) */
    uint64_t max_bytes;  /* per file; 0 = one file */
    uint32_t max_files;  /* with rotation: keep at most this many; 0 = all */
    uint32_t ring_bytes; /* per worker (default 16 MiB, at least 256 KiB) */
} rf_tap_options;

typedef struct rf_tap_stats {
    uint64_t captured;      /* chunks copied into the rings */
    uint64_t bytes;         /* their payload bytes */
    uint64_t dropped_full;  /* chunks not recorded: a ring was full */
    uint64_t dropped_large; /* chunks not recorded: larger than a quarter of a ring */
    uint64_t written;       /* records in the file(s) */
    uint64_t file_bytes;
    uint64_t write_errors; /* records the writer refused (disk full, ...) */
    uint32_t files;
    int64_t started_wall_ns;
} rf_tap_stats;

/* Control thread: opens the recording (errors name the file) and starts the
 * tap thread. Publish it with atomic_store(..., memory_order_release) where
 * the workers look (rf_tap_capture_maybe). */
int rf_tap_start(const rf_tap_options *opt, uint32_t workers, rf_tap **out, rf_err *err);

/* Control thread, after the pointer the workers read was set to NULL and
 * the grace period passed (no worker can still be capturing): drains the
 * rings to the file, closes it and frees the tap. *final receives the last figures (may be NULL). Returns 0
 * or the writer's first error. */
int rf_tap_stop(rf_tap *t, rf_tap_stats *final, rf_err *err);

/* Control thread, when the grace period did not pass in time (a worker
 * that may still capture): stops the tap thread and closes the file, like
 * rf_tap_stop, but leaves the tap's memory allocated (a late capture
 * writes into a ring nobody reads) until rf_tap_free_abandoned. */
int rf_tap_abandon(rf_tap *t, rf_tap_stats *final, rf_err *err);
/* Frees an abandoned tap once no worker can touch it (they have stopped). */
void rf_tap_free_abandoned(rf_tap *t);

/* Any thread: counters (relaxed reads). */
void rf_tap_stats_read(const rf_tap *t, rf_tap_stats *out);
const char *rf_tap_path(const rf_tap *t);

/* Worker `worker`: records one chunk of listener l if a tap is published in
 * *slot. Cheap when none is (one relaxed load). */
void rf_tap_capture_maybe(_Atomic(rf_tap *) *slot, uint32_t worker, const rf_listener *l,
                          const rf_listen_chunk *c);

#endif
