/* Private to stages/sink: the sink object and the byte queue shared by the
 * JSON writer (sink.c) and the forwarders (sink_net.c). Do not include from
 * outside this folder; use sink.h. */
#ifndef RF_STAGES_SINK_PVT_H
#define RF_STAGES_SINK_PVT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "core/stats/stats.h"
#include "stages/sink/sink.h"

enum sink_breaker {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN = 1,
    BREAKER_HALF_OPEN = 2
};

/* The queue is one linear buffer: bytes [head, tail) are waiting. Appends go
 * at tail; when the room at the end runs out the waiting bytes are moved to
 * the front (rare: only when the consumer lags). Invariant for TCP: head is
 * either at a line start or inside the line being sent; never beyond tail. */
struct rf_sink {
    enum rf_sink_type type;
    char name[64];
    rf_sink_namer namer;
    rf_sink_stats st;
    char *buf;
    uint32_t cap, head, tail;
    /* JSON */
    int fd;
    bool own_fd;
    bool io_error_logged;
    /* Forwarders */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int sock;
    uint32_t max_datagram;
    int64_t backoff_base, backoff_max, connect_timeout, cooldown;
    uint32_t breaker_failures;
    uint32_t attempt; /* backoff exponent since the last success */
    uint32_t consecutive_failures;
    enum sink_breaker breaker;
    int64_t connect_deadline, breaker_until;
    uint64_t rng;
    /* HTTP forwarders (sink_http.c): the sender, and since when the oldest
     * queued line waits (0: nothing queued). */
    rf_fwd *fwd;
    int64_t pending_since, max_delay;
    bool block;         /* buffer policy block: a full queue makes the worker wait */
    int blocked_metric; /* ringflow_forward_blocked_seconds' id; -1: none */
};

/* s->st is written by the sink's worker only and read by rf_sink_stats_read
 * from any thread (the ops views, the drop report): the stage-counter
 * pairing of core/stats (RF_STAT_SET/RF_STAT_ADD, relaxed stores read with
 * relaxed loads), so each counter read is exact and monotonic, though the
 * fields are not one snapshot. */
#define ST_SET(s, f, v) RF_STAT_SET((s)->st.f, v)
#define ST_ADD(s, f, n) RF_STAT_ADD((s)->st.f, n)

/* What rf_sink_stats_read reports as queued_bytes (head and tail are the
 * worker's alone). */
static inline void sink_publish_queued(rf_sink *s)
{
    ST_SET(s, queued_bytes, s->tail - s->head);
}

static inline bool sink_is_http(enum rf_sink_type t)
{
    return t == RF_SINK_PROM_REMOTE_WRITE || t == RF_SINK_INFLUX_HTTP || t == RF_SINK_NATS;
}

/* Moves the waiting bytes to the front of the buffer. */
static inline void sink_buf_compact(rf_sink *s)
{
    if (s->head == 0)
        return;
    uint32_t n = s->tail - s->head;
    memmove(s->buf, s->buf + s->head, n);
    s->head = 0;
    s->tail = n;
}

static inline void sink_buf_consumed(rf_sink *s, uint32_t n)
{
    s->head += n;
    if (s->head == s->tail)
        s->head = s->tail = 0;
}

int rf_sink_net_open(rf_sink *s, const rf_sink_config *cfg, rf_err *err);
int rf_sink_net_flush(rf_sink *s, int64_t now_ns);
void rf_sink_net_close(rf_sink *s);

/* Configuration helpers (sink_config.c, sink_nats_config.c). */
int sink_cfg_dup_str(const rf_cfg_node *map, const char *key, bool required, const char **out,
                     rf_err *err);
int sink_nats_config_parse(const rf_cfg_node *item, rf_fwd_config *c, rf_err *err);
void sink_nats_config_release(rf_fwd_nats_config *c);

int rf_sink_http_open(rf_sink *s, const rf_sink_config *cfg, rf_err *err);
/* Hands queued lines to the sender: when a chunk's worth waits, when the
 * oldest has waited max_delay, or always when `force`. */
int rf_sink_http_flush(rf_sink *s, int64_t now_ns, bool force);
/* Policy block, the queue full: hands lines over if the sender takes some,
 * else waits a moment. True to try again; false when the worker is asked
 * to stop (the caller drops what does not fit, counted). */
bool rf_sink_http_wait_room(rf_sink *s);
void rf_sink_http_close(rf_sink *s);

#endif
