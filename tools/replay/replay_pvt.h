/* Private to tools/replay: the types shared by replay.c (options, main loop),
 * replay_source.c (reading inputs) and replay_send.c (sending). */
#ifndef RF_TOOLS_REPLAY_PVT_H
#define RF_TOOLS_REPLAY_PVT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/error/error.h"
#include "storage/recfile/recfile.h"

#define RP_BATCH 64
#define RP_SLOT_BYTES 65536

/* Set by SIGINT/SIGTERM, or by the sender when the TCP connection is lost:
 * every loop stops at its next item. */
extern volatile sig_atomic_t rp_stop;

typedef struct rp_opts {
    char host[256];
    char port[16];
    bool tcp;
    double speed; /* 0 = max */
    int protocol; /* text files and --rewrite-timestamps of pcaps: enum rf_rec_protocol */
    bool protocol_set;
    bool rewrite;
    int precision;
    uint32_t max_datagram;
    uint32_t repeat;
    const char *listener; /* recordings: only this listener's records */
    int pcap_port;        /* pcaps: only datagrams to this UDP port; -1 = all */
    bool json;
    bool quiet;
    bool print;
    /* --into: the in-process engine */
    const char *into;
    const char *config;
    uint32_t workers;  /* 0: engine.workers of the configuration */
    int64_t tick_ns;   /* 0: the engine's default */
    bool sending_opts; /* an option only a send takes was given */
    char **files;
    int n_files;
} rp_opts;

typedef struct rp_item {
    const uint8_t *data;
    size_t len;
    bool has_time;
    int64_t pace_ns; /* monotonic-like time for pacing */
    int64_t wall_ns; /* receive wall time for --rewrite-timestamps */
    uint8_t protocol;
    bool from_tcp; /* a chunk of complete lines (may exceed a datagram) */
} rp_item;

enum rp_kind {
    RP_RECORDING,
    RP_PCAP,
    RP_TEXT
};

typedef struct rp_stats {
    uint64_t items, sends, lines, bytes, errors, oversize;
    uint64_t skipped_filter, skipped_nonudp, skipped_fragments, skipped_truncated;
    uint64_t rewritten, not_rewritable;
    uint64_t torn;
    /* Recordings: the first listener seen, and records of other listeners
     * sent to the same target (without --listener). */
    char first_listener[256];
    uint8_t first_protocol;
    uint64_t other_listeners, other_protocols;
} rp_stats;

typedef struct rp_src {
    enum rp_kind kind;
    const char *path;
    FILE *f;
    rf_rec_reader *rd;
    /* pcap */
    bool swapped, nanos;
    uint32_t linktype;
    uint8_t *pkt;
    size_t pkt_cap;
    /* text */
    uint8_t *text;
    size_t text_len, text_cap;
    size_t text_take; /* bytes of the current item, discarded by src_consumed */
    bool text_eof;
} rp_src;

typedef struct rp_sender {
    const rp_opts *o;
    int fd;
    char *slots;
    struct iovec iov[RP_BATCH];
    unsigned n;
    rp_stats *st;
    bool dead; /* TCP connection lost */
} rp_sender;

/* Inputs (replay_source.c). rp_src_open detects the kind from the first
 * bytes; rp_src_next returns 1 with the next item, 0 at the end, -1 with err
 * filled; the item's data stays valid until rp_src_consumed. */
int rp_src_open(rp_src *s, const char *path, const rp_opts *o, rf_err *err);
void rp_src_close(rp_src *s);
int rp_src_next(rp_src *s, const rp_opts *o, rp_item *it, rp_stats *st, rf_err *err);
void rp_src_consumed(rp_src *s);

/* Sending (replay_send.c), from the main loop's thread. rp_sender_open
 * connects to o->host:o->port (UDP: with room for RP_BATCH datagrams) and
 * prints why on failure (returns -1); st receives the counts. */
int rp_sender_open(rp_sender *sd, const rp_opts *o, rp_stats *st);
/* UDP: sends the queued datagrams (sendmmsg); TCP: nothing is queued. */
void rp_sender_flush(rp_sender *sd);
/* Sends one payload: UDP queued (cut at line boundaries above
 * --max-datagram; a longer line is skipped and counted as oversize), TCP
 * written at once with a '\n' added when missing; a lost TCP connection sets
 * rp_stop. */
void rp_sender_send(rp_sender *sd, const char *p, size_t len);
/* Lines in a payload; an unterminated last line counts. */
uint64_t rp_count_lines(const char *p, size_t len);

#endif
