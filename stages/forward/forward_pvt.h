/* Private to stages/forward: the sender object and its buffer. Do not
 * include from outside this folder; use forward.h. */
#ifndef RF_STAGES_FORWARD_PVT_H
#define RF_STAGES_FORWARD_PVT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/ring/ring.h"
#include "core/stats/stats.h"
#include "stages/forward/forward.h"

/* A chunk: whole lines handed from the worker to the sender. */
typedef struct fwd_chunk {
    uint32_t len;
    uint32_t lines;
    int64_t wall_ns; /* when the worker handed it over */
    char data[RF_FWD_CHUNK_BYTES];
} fwd_chunk;

/* One buffered entry. Memory buffer: `mem` holds the lines. Disk buffer:
 * the record sits in file `file_seq` at `offset` (payload after the
 * 40-byte record header). */
typedef struct fwd_entry {
    uint64_t seq;
    uint32_t len, events;
    int64_t wall_ns;
    char *mem;
    uint64_t file_seq, offset;
} fwd_entry;

/* A disk buffer file: its sequence number, size, and the highest entry
 * sequence number it holds (it can go once that one is acknowledged). */
typedef struct fwd_file {
    char name[40]; /* rf_seg_name() */
    int rfd;       /* read descriptor, opened at the first read; -1 */
    uint64_t seq;
    uint64_t bytes;
    uint64_t last_entry;
    uint64_t unacked_events; /* for drop_oldest accounting */
} fwd_file;

/* The buffer: a FIFO of entries (a growable ring of fwd_entry), plus the
 * disk files when it is a disk buffer. Sender thread only. */
typedef struct fwd_buffer {
    enum rf_fwd_buffer_type type;
    enum rf_fwd_full_policy policy;
    uint64_t max_bytes, segment_bytes, bytes;
    bool sync;
    fwd_entry *q;
    size_t q_cap, q_head, q_len;
    size_t inflight; /* entries at the front that the current request carries */
    uint64_t next_seq;
    uint64_t acked_seq; /* disk: highest acknowledged entry */
    uint64_t sent_seq;  /* disk: highest entry a request carried (on disk before it is sent) */
    /* Disk. */
    char *dir;
    uint32_t instance_tag;
    fwd_file *files;
    size_t n_files, cap_files;
    int wfd;      /* the file being appended (files[n_files-1]) */
    int lockfd;   /* <dir>/lock, flock'ed while this sender owns the folder */
    bool opened;  /* disk: recovered and writable (the sender does it) */
    uint8_t *rec; /* scratch: one record being written */
    bool io_error_logged;
} fwd_buffer;

struct rf_fwd {
    rf_fwd_config cfg;
    char name[64];
    rf_ring *full, *free_ring; /* fwd_chunk * elements, see forward.h */
    fwd_chunk *chunks;
    /* Policy block: a chunk taken from `full` that the buffer had no room
     * for; it goes in first once there is (sender thread only). */
    fwd_chunk *held;
    pthread_t thread;
    bool started;
    /* Control: the owner sets stop (release) and the sender reads it
     * (acquire) at every loop turn. */
    _Atomic bool stop;
    /* Wakeup: the sender sets sleeping (seq_cst) before it re-checks the full
     * ring and waits; the worker enqueues, then reads sleeping (seq_cst) and
     * wakes it. Both fences are seq_cst so one of them sees the other. */
    _Atomic bool sleeping;
    void *curl, *multi; /* CURL *, CURLM * */
    struct curl_slist *hdrs;
    fwd_buffer buf;
    uint64_t rng;
    uint32_t attempt, consecutive_failures;
    int64_t next_attempt_mono;
    int64_t shutdown_deadline;
    rf_fwd_body *body;      /* the request body, rebuilt in place per request */
    size_t mark_on_connect; /* entries the request carries, marked sent once connected */
    char resp[256];         /* start of the last response body, for the log */
    size_t resp_len;
    /* Statistics (core/stats single-writer values): written by the sender
     * only with rf_stats_add / rf_stats_set, read by any thread. The queue
     * gauges go down by adding the two's complement. */
    _Atomic uint64_t st[32];
    int metric_ids[24];
    uint32_t n_metrics;
    struct fwd_nats *nats; /* protocol RF_FWD_NATS (sender_nats.c) */
};

/* Indices into rf_fwd.st (the counters of rf_fwd_stats). */
enum {
    FS_QUEUED_EVENTS,
    FS_QUEUED_BYTES,
    FS_IN_FLIGHT,
    FS_ACKED_EVENTS,
    FS_ACKED_BYTES,
    FS_REQUESTS_OK,
    FS_RETRIES,
    FS_DROP0, /* RF_FWD_DROP__COUNT slots */
    FS_REDELIVERED = FS_DROP0 + RF_FWD_DROP__COUNT,
    FS_DISK_WRITTEN,
    FS_RECOVERED,
    FS_CORRUPT_BYTES,
    FS_OLDEST_WALL,
    FS_STATE,
    FS_LAST_STATUS,
    FS_NATS_MSGS,
    FS_NATS_DUPLICATES,
    FS_NATS_PENDING,
    FS_NATS_CONN,
    FS_RETRIED_UNSENT,
    FS__COUNT
};
_Static_assert(FS__COUNT <= 32, "rf_fwd.st too small");

/* ---- the sender (sender.c), for sender_nats.c ---- */
bool fwd_stopping(rf_fwd *f);
void fwd_drain_ring(rf_fwd *f);
/* A failed attempt: the next one after a full-jitter backoff (or
 * retry_after_ns when > 0), the circuit opening after breaker_failures. */
void fwd_schedule_retry(rf_fwd *f, int64_t now, int64_t retry_after_ns);

/* ---- NATS (sender_nats.c) ---- */
int fwd_nats_open(rf_fwd *f, rf_err *err); /* rf_fwd_new: connects (retrying in the background) */
void fwd_nats_send_once(rf_fwd *f, char **lines, size_t *cap);
void fwd_nats_close(rf_fwd *f);

/* ---- the buffer (buffer.c; disk files in buffer_disk.c) ---- */
/* Memory: ready. Disk: prepared only; the sender calls fwd_disk_open. */
int fwd_buffer_open(rf_fwd *f, rf_err *err);
void fwd_buffer_close(rf_fwd *f);
/* Appends one chunk as an entry, applying the policy when full. False only
 * under policy block when there is no room: the caller keeps the chunk. */
bool fwd_buffer_append(rf_fwd *f, const fwd_chunk *c);
/* Copies the lines of the oldest entries, up to the request limits, into
 * *out (grown as needed); returns the number of entries (0: empty). */
size_t fwd_buffer_peek(rf_fwd *f, char **out, size_t *cap, size_t *len, uint64_t *events);
/* The oldest n entries are done (acknowledged or rejected). */
void fwd_buffer_remove(rf_fwd *f, size_t n, bool acked);
/* Disk: records that the oldest n entries are being sent: the HTTP sender
 * calls it once the request's connection is up (nothing is marked for a
 * connect that fails), the NATS sender before publishing. */
void fwd_buffer_mark_sent(rf_fwd *f, size_t n);

/* Disk side (buffer_disk.c). */
/* rf_fwd_new: the folder and its lock file; the sender thread then takes
 * the lock and recovers (fwd_disk_open: -EWOULDBLOCK while another holds it). */
int fwd_disk_prepare(rf_fwd *f, rf_err *err);
int fwd_disk_open(rf_fwd *f, rf_err *err);
void fwd_disk_close(fwd_buffer *b);
int fwd_disk_append(rf_fwd *f, fwd_entry *e, const char *data);
int fwd_disk_read(fwd_buffer *b, const fwd_entry *e, char *out);
void fwd_disk_ack(rf_fwd *f, uint64_t seq, bool sent_only);
bool fwd_disk_make_room(rf_fwd *f, uint64_t need);
/* Nothing unacknowledged left: the current file (acknowledged entries and
 * markers only) is replaced by a fresh one, so its bytes count no more. */
void fwd_disk_reclaim(rf_fwd *f);

#endif
