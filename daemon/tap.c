/* The recording tap (tap.h): per-worker byte rings and the thread that
 * writes them to a recording file.
 *
 * Each ring is single-producer (its worker) single-consumer (the tap
 * thread) over a power-of-two byte buffer with free-running 64-bit
 * positions. A record is a 56-byte header, the listener's name and the
 * payload, padded to 8 bytes; a record never wraps: when it does not fit
 * before the end, a wrap marker fills the rest and the record starts at 0.
 * The synchronising edges:
 *   T1 the worker's release-store of `tail` after writing a record pairs
 *      with the tap thread's acquire-load: the record's bytes are visible.
 *   T2 the tap thread's release-store of `head` after reading records pairs
 *      with the worker's acquire-load when its cached head says full: the
 *      worker overwrites only bytes the tap thread is done with. */
#include "daemon/tap.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "storage/recfile/recfile.h"
#include "core/stats/stats.h"
#include "core/bytes/bytes.h"

#define TAP_HDR 56u
#define TAP_KIND_DATA 1u
#define TAP_KIND_WRAP 2u

typedef struct tap_ring {
    alignas(64) _Atomic uint64_t tail;                             /* T1: producer's */
    uint64_t head_cache;                                           /* producer's view of head */
    _Atomic uint64_t captured, bytes, dropped_full, dropped_large; /* producer writes, relaxed */
    alignas(64) _Atomic uint64_t head;                             /* T2: consumer's */
    alignas(64) uint8_t *buf;
    uint64_t cap, mask;
} tap_ring;

struct rf_tap {
    char path[4096];
    uint32_t workers;
    tap_ring *rings;
    rf_rec_writer *writer;
    pthread_t thread;
    _Atomic bool stop; /* release by rf_tap_stop, acquire by the thread */
    int64_t started_wall_ns;
    /* Written by the tap thread, read by anyone (relaxed). */
    _Atomic uint64_t written, write_errors, file_bytes, files;
    char first_error[RF_ERR_MSG_MAX];
    _Atomic bool has_error;
};


/* ---- the worker side ------------------------------------------------------ */

static void capture(tap_ring *r, const rf_listener *l, const rf_listen_chunk *c)
{
    const rf_listener_config *lc = rf_listener_config_of(l);
    const bool tcp = lc->transport == RF_LISTEN_TCP;
    if (c->flags & RF_LISTEN_CHUNK_LINE_TOO_LONG) {
        /* Only an excerpt of the line is here: recorded, it would replay
         * as a short valid line. Not recorded, counted. */
        rf_stats_add(&r->dropped_large, 1);
        return;
    }
    const char *name = rf_listener_name(l);
    size_t name_len = strlen(name);
    if (name_len > 255)
        name_len = 255;
    /* A TCP line completed across reads comes without its '\n'. */
    const bool add_nl =
        tcp && !(c->flags & RF_LISTEN_CHUNK_FINAL) && (c->len == 0 || c->data[c->len - 1] != '\n');
    const uint64_t payload = c->len + (add_nl ? 1 : 0);
    const uint64_t need = (TAP_HDR + name_len + payload + 7) & ~(uint64_t)7;
    if (need > r->cap / 4) {
        rf_stats_add(&r->dropped_large, 1);
        return;
    }
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed); /* own index */
    uint64_t pos = tail & r->mask;
    uint64_t room_to_end = r->cap - pos;
    uint64_t want = need <= room_to_end ? need : room_to_end + need;
    if (r->cap - (tail - r->head_cache) < want) {
        /* T2 */
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (r->cap - (tail - r->head_cache) < want) {
            rf_stats_add(&r->dropped_full, 1);
            return;
        }
    }
    if (need > room_to_end) {
        rf_write_le32(r->buf + pos, (uint32_t)room_to_end);
        rf_write_le32(r->buf + pos + 4, TAP_KIND_WRAP);
        tail += room_to_end;
        pos = 0;
    }
    uint8_t *p = r->buf + pos;
    rf_write_le32(p, (uint32_t)need);
    rf_write_le32(p + 4, TAP_KIND_DATA);
    rf_write_le64(p + 8, (uint64_t)c->wall_ns);
    rf_write_le64(p + 16, (uint64_t)c->mono_ns);
    rf_write_le32(p + 24, (uint32_t)payload);
    rf_write_le32(p + 28, tcp ? c->conn + 1 : 0);
    p[32] = tcp ? RF_REC_TCP : RF_REC_UDP;
    p[33] = (uint8_t)lc->protocol;
    p[34] = (uint8_t)(((c->flags & RF_LISTEN_CHUNK_TRUNCATED) ? RF_REC_F_TRUNCATED : 0) |
                      ((c->flags & RF_LISTEN_CHUNK_FINAL) ? RF_REC_F_FINAL : 0));
    p[35] = (uint8_t)name_len;
    uint16_t port = 0, family = 0;
    uint8_t addr[16] = {0};
    if (c->peer && c->peer->sa_family == AF_INET && c->peer_len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)c->peer;
        port = ntohs(in->sin_port);
        family = 4;
        memcpy(addr, &in->sin_addr, 4);
    } else if (c->peer && c->peer->sa_family == AF_INET6 &&
               c->peer_len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)c->peer;
        port = ntohs(in6->sin6_port);
        family = 6;
        memcpy(addr, &in6->sin6_addr, 16);
    }
    rf_write_le16(p + 36, port);
    rf_write_le16(p + 38, family);
    memcpy(p + 40, addr, 16);
    memcpy(p + TAP_HDR, name, name_len);
    memcpy(p + TAP_HDR + name_len, c->data, c->len);
    if (add_nl)
        p[TAP_HDR + name_len + c->len] = '\n';
    /* T1: the record above happens-before the tap thread reads it. */
    atomic_store_explicit(&r->tail, tail + need, memory_order_release);
    rf_stats_add(&r->captured, 1);
    rf_stats_add(&r->bytes, payload);
}

void rf_tap_capture_maybe(_Atomic(rf_tap *) *slot, uint32_t worker, const rf_listener *l,
                          const rf_listen_chunk *c)
{
    /* Pairs with the release store that published the tap: its rings are
     * initialised. (On x86 an acquire load is a plain load.) */
    rf_tap *t = atomic_load_explicit(slot, memory_order_acquire);
    if (__builtin_expect(t == NULL, 1) || worker >= t->workers)
        return;
    capture(&t->rings[worker], l, c);
}

/* ---- the tap thread ------------------------------------------------------- */

static void note_error(rf_tap *t, const rf_err *err)
{
    rf_stats_add(&t->write_errors, 1);
    if (!atomic_load_explicit(&t->has_error, memory_order_relaxed)) {
        snprintf(t->first_error, sizeof(t->first_error), "%s", err->msg);
        atomic_store_explicit(&t->has_error, true, memory_order_release);
        rf_log_error("tap", "recording %s: %s (later records are counted as write errors)", t->path,
                     err->msg);
    }
}

/* Writes what ring r holds. Returns the records taken. */
static uint64_t drain(rf_tap *t, tap_ring *r)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed); /* own index */
    /* T1 */
    const uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t n = 0;
    while (head < tail) {
        const uint8_t *p = r->buf + (head & r->mask);
        const uint32_t total = rf_read_le32(p);
        if (rf_read_le32(p + 4) == TAP_KIND_DATA) {
            rf_rec rec;
            memset(&rec, 0, sizeof(rec));
            rec.wall_ns = (int64_t)rf_read_le64(p + 8);
            rec.mono_ns = (int64_t)rf_read_le64(p + 16);
            rec.payload_len = rf_read_le32(p + 24);
            rec.conn = rf_read_le32(p + 28);
            rec.transport = p[32];
            rec.protocol = p[33];
            rec.flags = p[34];
            const uint8_t name_len = p[35];
            rec.src_port = rf_read_le16(p + 36);
            rec.src_family = rf_read_le16(p + 38);
            memcpy(rec.src_addr, p + 40, 16);
            char name[256];
            memcpy(name, p + TAP_HDR, name_len);
            name[name_len] = '\0';
            rec.name = name;
            rec.payload = p + TAP_HDR + name_len;
            rf_err err;
            rf_err_clear(&err);
            if (rf_rec_writer_append(t->writer, &rec, &err) < 0)
                note_error(t, &err);
            else
                rf_stats_add(&t->written, 1);
            n++;
        }
        head += total;
    }
    /* T2: the bytes read above are free for the worker again. */
    atomic_store_explicit(&r->head, head, memory_order_release);
    return n;
}

static void *tap_main(void *arg)
{
    rf_tap *t = arg;
    int64_t last_flush = rf_clock_mono_ns();
    for (;;) {
        /* Pairs with the release store in rf_tap_stop: once seen, every
         * capture is over (grace period), so one more drain is the last. */
        const bool stopping = atomic_load_explicit(&t->stop, memory_order_acquire);
        uint64_t n = 0;
        for (uint32_t w = 0; w < t->workers; w++)
            n += drain(t, &t->rings[w]);
        int64_t now = rf_clock_mono_ns();
        if (now - last_flush > 200 * RF_NS_PER_MS || stopping) {
            rf_err err;
            rf_err_clear(&err);
            if (rf_rec_writer_flush(t->writer, &err) < 0)
                note_error(t, &err);
            rf_rec_writer_stats ws;
            rf_rec_writer_stats_read(t->writer, &ws);
            atomic_store_explicit(&t->file_bytes, ws.bytes, memory_order_relaxed);
            atomic_store_explicit(&t->files, ws.files, memory_order_relaxed);
            last_flush = now;
        }
        if (stopping)
            break;
        if (n == 0) {
            struct timespec ts = {0, RF_NS_PER_MS};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- control -------------------------------------------------------------- */

static void tap_free(rf_tap *t)
{
    if (!t)
        return;
    if (t->rings) {
        for (uint32_t w = 0; w < t->workers; w++)
            free(t->rings[w].buf);
        free(t->rings);
    }
    free(t);
}

int rf_tap_start(const rf_tap_options *opt, uint32_t workers, rf_tap **out, rf_err *err)
{
    *out = NULL;
    if (!opt->path || !opt->path[0])
        return rf_err_set(err, EINVAL, "record: no path");
    uint64_t cap = 1u << 18;
    uint64_t want = opt->ring_bytes ? opt->ring_bytes : 16u << 20;
    while (cap < want && cap < (1ull << 30))
        cap <<= 1;
    rf_tap *t = calloc(1, sizeof(*t));
    if (!t)
        return rf_err_set(err, ENOMEM, "record: out of memory");
    snprintf(t->path, sizeof(t->path), "%s", opt->path);
    t->workers = workers;
    t->rings = calloc(workers, sizeof(*t->rings));
    if (!t->rings) {
        tap_free(t);
        return rf_err_set(err, ENOMEM, "record: out of memory");
    }
    for (uint32_t w = 0; w < workers; w++) {
        tap_ring *r = &t->rings[w];
        r->cap = cap;
        r->mask = cap - 1;
        r->buf = aligned_alloc(64, cap);
        if (!r->buf) {
            tap_free(t);
            return rf_err_set(err, ENOMEM, "record: out of memory for %u rings of %lu bytes",
                              workers, (unsigned long)cap);
        }
    }
    const rf_rec_writer_options wo = {
        .path = t->path, .max_bytes = opt->max_bytes, .max_files = opt->max_files};
    int rc = rf_rec_writer_open(&t->writer, &wo, err);
    if (rc < 0) {
        tap_free(t);
        return rc;
    }
    t->started_wall_ns = rf_clock_wall_ns();
    if ((rc = pthread_create(&t->thread, NULL, tap_main, t)) != 0) {
        rf_rec_writer_close(t->writer, NULL);
        tap_free(t);
        return rf_err_set(err, rc, "record: thread: %s", strerror(rc));
    }
    pthread_setname_np(t->thread, "rf-tap");
    *out = t;
    return 0;
}

void rf_tap_stats_read(const rf_tap *t, rf_tap_stats *o)
{
    memset(o, 0, sizeof(*o));
    for (uint32_t w = 0; w < t->workers; w++) {
        const tap_ring *r = &t->rings[w];
        o->captured += atomic_load_explicit(&r->captured, memory_order_relaxed);
        o->bytes += atomic_load_explicit(&r->bytes, memory_order_relaxed);
        o->dropped_full += atomic_load_explicit(&r->dropped_full, memory_order_relaxed);
        o->dropped_large += atomic_load_explicit(&r->dropped_large, memory_order_relaxed);
    }
    o->written = atomic_load_explicit(&t->written, memory_order_relaxed);
    o->write_errors = atomic_load_explicit(&t->write_errors, memory_order_relaxed);
    o->file_bytes = atomic_load_explicit(&t->file_bytes, memory_order_relaxed);
    o->files = (uint32_t)atomic_load_explicit(&t->files, memory_order_relaxed);
    o->started_wall_ns = t->started_wall_ns;
}

const char *rf_tap_path(const rf_tap *t)
{
    return t->path;
}

/* Stops the thread (it drains the rings first) and closes the file. */
static int tap_close(rf_tap *t, rf_tap_stats *final, rf_err *err)
{
    /* Pairs with the thread's acquire load. */
    atomic_store_explicit(&t->stop, true, memory_order_release);
    pthread_join(t->thread, NULL);
    int rc = rf_rec_writer_close(t->writer, err);
    rf_tap_stats st;
    rf_tap_stats_read(t, &st); /* the thread published its last figures at its last flush */
    if (rc == 0 && atomic_load_explicit(&t->has_error, memory_order_acquire)) {
        rc = -EIO;
        rf_err_set(err, EIO, "%s", t->first_error);
    }
    if (final)
        *final = st;
    return rc;
}

int rf_tap_stop(rf_tap *t, rf_tap_stats *final, rf_err *err)
{
    if (!t)
        return 0;
    int rc = tap_close(t, final, err);
    tap_free(t);
    return rc;
}

int rf_tap_abandon(rf_tap *t, rf_tap_stats *final, rf_err *err)
{
    return t ? tap_close(t, final, err) : 0;
}

void rf_tap_free_abandoned(rf_tap *t)
{
    tap_free(t);
}
