/* The sender's buffer: a FIFO of entries, in memory or on disk (the files
 * are buffer_disk.c's). Sender thread only. Sizes: a memory entry costs its
 * line bytes; a disk entry its whole record (header and CRC included), so
 * max_bytes bounds what the files hold. */
#include "stages/forward/forward_pvt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/log/log.h"
#include "storage/segment/segment.h"

static uint64_t entry_cost(const fwd_buffer *b, uint32_t len)
{
    return b->type == RF_FWD_BUFFER_DISK ? rf_seg_rec_size(len) : len;
}

static fwd_entry *entry_at(fwd_buffer *b, size_t i)
{
    return &b->q[(b->q_head + i) % b->q_cap];
}

static int push(fwd_buffer *b, const fwd_entry *e)
{
    if (b->q_len == b->q_cap) {
        size_t cap = b->q_cap ? b->q_cap * 2 : 64;
        fwd_entry *q = malloc(cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < b->q_len; i++)
            q[i] = *entry_at(b, i);
        free(b->q);
        b->q = q;
        b->q_cap = cap;
        b->q_head = 0;
    }
    *entry_at(b, b->q_len++) = *e;
    return 0;
}

/* Queue statistics after every change: counts and the oldest entry's time. */
static void publish(rf_fwd *f, int64_t events_delta, int64_t bytes_delta)
{
    rf_stats_add(&f->st[FS_QUEUED_EVENTS], (uint64_t)events_delta);
    rf_stats_add(&f->st[FS_QUEUED_BYTES], (uint64_t)bytes_delta);
    rf_stats_set(&f->st[FS_OLDEST_WALL],
                 f->buf.q_len ? (uint64_t)entry_at(&f->buf, 0)->wall_ns : 0);
}

static void pop_front(rf_fwd *f)
{
    fwd_buffer *b = &f->buf;
    fwd_entry *e = entry_at(b, 0);
    if (b->type == RF_FWD_BUFFER_MEMORY)
        b->bytes -= e->len;
    free(e->mem);
    b->q_head = (b->q_head + 1) % b->q_cap;
    b->q_len--;
    if (b->inflight)
        b->inflight--;
}

int fwd_buffer_open(rf_fwd *f, rf_err *err)
{
    fwd_buffer *b = &f->buf;
    b->type = f->cfg.buffer;
    b->policy = f->cfg.policy;
    b->sync = f->cfg.sync;
    b->max_bytes = f->cfg.buffer_max_bytes;
    b->segment_bytes = f->cfg.segment_bytes;
    b->next_seq = 1;
    b->wfd = -1;
    b->lockfd = -1;
    if (b->type == RF_FWD_BUFFER_DISK)
        return fwd_disk_prepare(f, err);
    b->opened = true;
    return 0;
}

void fwd_buffer_close(rf_fwd *f)
{
    fwd_buffer *b = &f->buf;
    while (b->q_len)
        pop_front(f);
    if (b->type == RF_FWD_BUFFER_DISK)
        fwd_disk_close(b);
    free(b->q);
    b->q = NULL;
}

/* drop_oldest: removes the oldest entries not in flight until `need` more
 * bytes fit; false when that is impossible (then the newest is dropped). */
static bool make_room(rf_fwd *f, uint64_t need)
{
    fwd_buffer *b = &f->buf;
    if (b->type == RF_FWD_BUFFER_DISK)
        return fwd_disk_make_room(f, need);
    while (b->bytes + need > b->max_bytes && b->q_len > b->inflight) {
        /* The in-flight entries are at the front: the oldest one not in
         * flight goes, by moving the in-flight ones up one slot. */
        fwd_entry victim = *entry_at(b, b->inflight);
        for (size_t i = b->inflight; i > 0; i--)
            *entry_at(b, i) = *entry_at(b, i - 1);
        b->q_head = (b->q_head + 1) % b->q_cap;
        b->q_len--;
        b->bytes -= victim.len;
        free(victim.mem);
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_BUFFER_FULL], victim.events);
        publish(f, -(int64_t)victim.events, -(int64_t)victim.len);
    }
    return b->bytes + need <= b->max_bytes;
}

bool fwd_buffer_append(rf_fwd *f, const fwd_chunk *c)
{
    fwd_buffer *b = &f->buf;
    uint64_t cost = entry_cost(b, c->len);
    if (b->bytes + cost > b->max_bytes && b->policy == RF_FWD_BLOCK) {
        /* A disk buffer frees whole files only: with everything acknowledged
         * the current file may still fill it, and no ack would ever come. */
        if (b->type == RF_FWD_BUFFER_DISK && b->q_len == 0)
            fwd_disk_reclaim(f);
        if (b->bytes + cost > b->max_bytes)
            return false;
    }
    if (b->bytes + cost > b->max_bytes &&
        (b->policy != RF_FWD_DROP_OLDEST || !make_room(f, cost))) {
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_BUFFER_FULL], c->lines);
        return true;
    }
    fwd_entry e = {.seq = b->next_seq, .len = c->len, .events = c->lines, .wall_ns = c->wall_ns};
    if (b->type == RF_FWD_BUFFER_DISK) {
        if (fwd_disk_append(f, &e, c->data) < 0) {
            rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_IO_ERROR], c->lines);
            return true;
        }
    } else {
        e.mem = malloc(c->len ? c->len : 1);
        if (!e.mem) {
            rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_BUFFER_FULL], c->lines);
            return true;
        }
        memcpy(e.mem, c->data, c->len);
        b->bytes += c->len;
    }
    if (push(b, &e) < 0) {
        /* Out of memory for the index: the entry is not sendable. On disk it
         * would come back at the next start; count it as lost here. */
        free(e.mem);
        if (b->type == RF_FWD_BUFFER_MEMORY)
            b->bytes -= c->len;
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_BUFFER_FULL], c->lines);
        return true;
    }
    b->next_seq++;
    publish(f, c->lines, c->len);
    return true;
}

size_t fwd_buffer_peek(rf_fwd *f, char **out, size_t *cap, size_t *len, uint64_t *events)
{
    fwd_buffer *b = &f->buf;
    size_t n = 0;
    *len = 0;
    *events = 0;
    while (n < b->q_len) {
        fwd_entry *e = entry_at(b, n);
        if (n && (*len + e->len > f->cfg.max_bytes || *events + e->events > f->cfg.max_samples))
            break;
        if (*len + e->len > *cap) {
            size_t c = *len + e->len + RF_FWD_CHUNK_BYTES;
            char *p = realloc(*out, c);
            if (!p)
                break;
            *out = p;
            *cap = c;
        }
        if (b->type == RF_FWD_BUFFER_DISK) {
            if (fwd_disk_read(b, e, *out + *len) < 0) {
                /* Unreadable now (a damaged file): the entry cannot be sent. */
                if (n == 0) {
                    rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_CORRUPT], e->events);
                    fwd_buffer_remove(f, 1, false);
                    continue;
                }
                break;
            }
        } else {
            memcpy(*out + *len, e->mem, e->len);
        }
        *len += e->len;
        *events += e->events;
        n++;
    }
    b->inflight = n;
    rf_stats_set(&f->st[FS_IN_FLIGHT], *events);
    return n;
}

void fwd_buffer_mark_sent(rf_fwd *f, size_t n)
{
    fwd_buffer *b = &f->buf;
    if (b->type != RF_FWD_BUFFER_DISK || n == 0)
        return;
    uint64_t last = entry_at(b, n - 1)->seq;
    if (last > b->sent_seq)
        fwd_disk_ack(f, last, true);
}

void fwd_buffer_remove(rf_fwd *f, size_t n, bool acked)
{
    fwd_buffer *b = &f->buf;
    uint64_t events = 0, bytes = 0, last = 0;
    for (size_t i = 0; i < n && b->q_len; i++) {
        fwd_entry *e = entry_at(b, 0);
        events += e->events;
        bytes += e->len;
        last = e->seq;
        pop_front(f);
    }
    b->inflight = 0;
    rf_stats_set(&f->st[FS_IN_FLIGHT], 0);
    if (acked) {
        rf_stats_add(&f->st[FS_ACKED_EVENTS], events);
        rf_stats_add(&f->st[FS_ACKED_BYTES], bytes);
    }
    /* Rejected entries are done too: the ack record says "never again". */
    if (b->type == RF_FWD_BUFFER_DISK && last)
        fwd_disk_ack(f, last, false);
    publish(f, -(int64_t)events, -(int64_t)bytes);
}
