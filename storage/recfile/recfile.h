/* Recording files: what `ringflow record` writes and `ringflow replay` reads.
 *
 * The format is specified in docs/FORMAT.md ("Recording format"); in short:
 *
 *   file   = header (32 bytes) record*
 *   header = "RFRECORD" u32 version(1) u32 header_size(32) i64 created_wall_ns
 *            u32 flags(0) u32 crc32c(bytes 0..28)
 *   record = u32 magic ("RCd1", RF_REC_MAGIC) u32 total_len
 *            i64 wall_ns i64 mono_ns u32 payload_len u32 conn
 *            u8 transport u8 protocol u8 flags u8 name_len
 *            u16 src_port u16 src_family u8 src_addr[16]
 *            name[name_len] payload[payload_len] u32 crc32c(everything before it)
 *
 * All integers little-endian. A record is written with one buffered write;
 * the CRC makes a record cut by a crash (a torn tail) or damaged on disk
 * detectable: the reader stops there and says so, it never returns a partial
 * or corrupt payload.
 *
 * Contract
 *   - Writer and reader are single-threaded objects; no global state.
 *   - Functions return 0 or a negative errno; messages go into rf_err.
 */
#ifndef RF_STORAGE_RECFILE_H
#define RF_STORAGE_RECFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "core/error/error.h"

#define RF_REC_FILE_MAGIC "RFRECORD"
#define RF_REC_VERSION 1u
#define RF_REC_HEADER_SIZE 32u
#define RF_REC_MAGIC                                                                               \
    0x31644352u               /* "RCd1" on disk (bytes 52 43 64 31); segment records use "RFr1" */
#define RF_REC_FIXED_SIZE 56u /* record bytes before the name */
#define RF_REC_CRC_SIZE 4u
#define RF_REC_NAME_MAX 255u
/* Largest payload accepted by the reader: bounds what a corrupt length can
 * make it allocate. UDP datagrams are < 64 KiB; TCP reads are recorded in
 * chunks well under this. */
#define RF_REC_MAX_PAYLOAD (16u << 20)

enum rf_rec_transport {
    RF_REC_UDP = 0,
    RF_REC_TCP = 1
};
/* Same numbering as enum rf_listen_protocol. */
enum rf_rec_protocol {
    RF_REC_INFLUX = 0,
    RF_REC_STATSD = 1,
    RF_REC_GRAPHITE = 2,
    RF_REC_HTTP = 3,    /* raw HTTP request bytes (ringflowd's tap does not record them) */
    RF_REC_COLLECTD = 4 /* collectd binary datagrams, as received (signed/encrypted too) */
};

enum {
    RF_REC_F_TRUNCATED = 1u << 0, /* UDP datagram larger than the capture buffer */
    RF_REC_F_FINAL = 1u << 1,     /* TCP: the stream ended; payload is its unterminated tail */
    RF_REC_F_OPEN = 1u << 2,      /* TCP: first record of a connection (payload may be empty) */
};

/* One record as the reader returns it. Pointers are valid until the next
 * read or close. */
typedef struct rf_rec {
    int64_t wall_ns;
    int64_t mono_ns;
    uint32_t conn;     /* TCP connection number within the capture (1, 2, ...); 0 for UDP */
    uint8_t transport; /* enum rf_rec_transport */
    uint8_t protocol;  /* enum rf_rec_protocol */
    uint8_t flags;     /* RF_REC_F_* */
    uint16_t src_port;
    uint16_t src_family;  /* 4, 6, or 0 when unknown */
    uint8_t src_addr[16]; /* IPv4 in the first 4 bytes */
    const char *name;     /* listener name, NUL-terminated */
    const uint8_t *payload;
    uint32_t payload_len;
} rf_rec;

/* "influx_line", "statsd", "graphite", "http", "collectd"; "unknown" past them. */
const char *rf_rec_protocol_name(unsigned p);
const char *rf_rec_transport_name(unsigned t); /* "udp", "tcp" */
/* Fills family/port/addr of r from a sockaddr (AF_INET/AF_INET6). */
void rf_rec_set_source(rf_rec *r, const struct sockaddr *sa);
/* "1.2.3.4:5" / "[::1]:5" / "-". Returns buf. */
const char *rf_rec_source_format(const rf_rec *r, char *buf, size_t size);

/* ---- writer --------------------------------------------------------------- */

typedef struct rf_rec_writer rf_rec_writer;

typedef struct rf_rec_writer_options {
    /* Path of the recording. With max_bytes == 0 this is the file; with
     * rotation the files are <path>.000001, <path>.000002, ... */
    const char *path;
    uint64_t max_bytes; /* per file; 0 = one unbounded file */
    uint32_t max_files; /* with rotation: oldest files beyond this are deleted; 0 = keep all */
} rf_rec_writer_options;

int rf_rec_writer_open(rf_rec_writer **out, const rf_rec_writer_options *opt, rf_err *err);
/* Appends one record (name, payload and fields from r). Rotates first when
 * the record would push the current file past max_bytes (a record larger
 * than max_bytes gets a file of its own). */
int rf_rec_writer_append(rf_rec_writer *w, const rf_rec *r, rf_err *err);
/* Hands buffered records to the kernel (readers see them after this). */
int rf_rec_writer_flush(rf_rec_writer *w, rf_err *err);
/* Flushes and closes; returns the flush result. Safe on NULL. */
int rf_rec_writer_close(rf_rec_writer *w, rf_err *err);

typedef struct rf_rec_writer_stats {
    uint64_t records;
    uint64_t bytes;   /* file bytes written, headers included */
    uint32_t files;   /* files opened */
    uint32_t deleted; /* files removed by rotation */
} rf_rec_writer_stats;
void rf_rec_writer_stats_read(const rf_rec_writer *w, rf_rec_writer_stats *out);

/* ---- reader --------------------------------------------------------------- */

typedef struct rf_rec_reader rf_rec_reader;

/* Opens one recording file and checks its header: -EBADMSG (not a recording,
 * or a damaged header), -EPROTONOSUPPORT (a newer version). */
int rf_rec_reader_open(rf_rec_reader **out, const char *path, rf_err *err);
/* Also from an already open stream positioned at offset 0 (takes ownership). */
int rf_rec_reader_open_stream(rf_rec_reader **out, FILE *f, const char *name, rf_err *err);

/* Reads the next record into *r. Returns 1 for a record, 0 at a clean end of
 * file, or a negative errno: -EBADMSG for a torn tail or a damaged record
 * (err says which and at what offset). After a non-positive return, reading
 * stops. */
int rf_rec_reader_next(rf_rec_reader *rd, rf_rec *r, rf_err *err);
/* Offset of the first byte not yet consumed (where a torn tail starts). */
uint64_t rf_rec_reader_offset(const rf_rec_reader *rd);
int64_t rf_rec_reader_created_ns(const rf_rec_reader *rd);
void rf_rec_reader_close(rf_rec_reader *rd);

/* True when the first bytes of a file are a recording header magic. */
bool rf_rec_is_recording(const uint8_t *head, size_t len);

/* The files of a rotated recording <path>.NNNNNN in sequence order (when
 * `path` itself does not exist). Returns the count (0 when none) or a
 * negative errno; *out is a malloc'ed array of malloc'ed strings. */
int rf_rec_list_rotated(const char *path, char ***out, rf_err *err);

#endif
