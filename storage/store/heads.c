/* Reading the series' in-memory heads while the workers run (store.h,
 * "Reading the heads").
 *
 * H1, the mailbox of a shard (head_state, head_req):
 *   reader: fills *req, stores head_req, then release-stores POSTED;
 *   worker: CAS POSTED -> TAKEN with acquire (pairs with the reader's
 *           release: it sees the request), fills the buffer, release-stores
 *           DONE;
 *   reader: acquire-loads DONE (pairs with the worker's release: it sees the
 *           chunk), reads it, stores IDLE (nobody else looks at IDLE).
 *   Withdrawing at the deadline: the reader CASes POSTED -> IDLE; if the
 *   worker took it first, the reader waits for DONE (one chunk: bounded).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/event/event.h"
#include "storage/store/store.h"
#include "storage/store/store_pvt.h"

/* One series in a chunk: this header, the key (NUL-terminated, padded to 8)
 * and n points of rf_store_point. */
typedef struct head_rec {
    uint64_t series_id;
    uint32_t key_len;
    uint16_t measurement_len, field_offset;
    uint32_t n;
    uint8_t value_type;
    uint8_t pad[3];
} head_rec;

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t rec_bytes(uint32_t key_len, uint32_t n)
{
    return sizeof(head_rec) + pad8((size_t)key_len + 1) + (size_t)n * sizeof(rf_store_point);
}

/* Copies s's buffer, sorted by time (a copy of an unsorted buffer is sorted
 * here, not in place: the cut sorts the worker's own). */
static void copy_series(uint8_t *dst, const rf_store_series *s)
{
    head_rec h = {.series_id = s->series_id,
                  .key_len = s->key->len,
                  .measurement_len = s->key->measurement_len,
                  .field_offset = s->key->field_offset,
                  .n = s->n,
                  .value_type = s->value_type};
    memcpy(dst, &h, sizeof(h));
    dst += sizeof(h);
    memcpy(dst, s->key->text, (size_t)s->key->len + 1);
    dst += pad8((size_t)s->key->len + 1);
    rf_store_point *p = (rf_store_point *)(void *)dst;
    if (s->n) /* a series known by its key alone may have no point buffer */
        memcpy(p, s->pts, (size_t)s->n * sizeof(*p));
    if (!s->unsorted)
        return;
    for (uint32_t i = 1; i < s->n; i++) { /* stable: equal times keep arrival order */
        rf_store_point x = p[i];
        uint32_t j = i;
        while (j > 0 && p[j - 1].t > x.t) {
            p[j] = p[j - 1];
            j--;
        }
        p[j] = x;
    }
}

uint32_t rf_store_serve_heads(rf_store_shard *sh)
{
    /* Relaxed first: one load per poll when nothing is posted. */
    if (atomic_load_explicit(&sh->head_state, memory_order_relaxed) != RF_HEAD_POSTED)
        return 0;
    uint32_t expect = RF_HEAD_POSTED;
    if (!atomic_compare_exchange_strong_explicit(&sh->head_state, &expect, RF_HEAD_TAKEN,
                                                 memory_order_acquire, memory_order_relaxed))
        return 0; /* withdrawn meanwhile (H1) */
    rf_store_head_req *r = sh->head_req;
    r->len = 0;
    r->examined = 0;
    uint32_t copied = 0;
    while (r->cursor < sh->n_series && r->examined < RF_STORE_HEAD_SERIES_PER_POLL) {
        const rf_store_series *s = sh->series_all[r->cursor];
        if (s->value_type != RF_VALUE_STRING && r->want(r->ctx, s->series_id, s->n)) {
            size_t need = rec_bytes(s->key->len, s->n);
            /* A series that does not fit waits for the next chunk (an empty
             * chunk holds any series: rf_store_heads_read sizes it). */
            if (r->len + need > r->cap)
                break;
            copy_series(r->buf + r->len, s);
            r->len += need;
            copied++;
        }
        r->cursor++;
        r->examined++;
    }
    r->done = r->cursor >= sh->n_series;
    r->cut_seq = sh->seq;
    rf_stats_add(&sh->head_chunks, 1);
    rf_stats_add(&sh->head_series, copied);
    rf_stats_add(&sh->head_bytes, r->len);
    atomic_store_explicit(&sh->head_state, RF_HEAD_DONE, memory_order_release); /* H1 */
    return copied;
}

/* ---- the reader ---- */

typedef struct shard_read {
    rf_store_head_req req;
    bool active;   /* posted, not yet finished */
    bool answered; /* the worker answered at least the last chunk */
    uint64_t cut_seq;
} shard_read;

/* The copy: one arena per read. */
typedef struct arena {
    uint8_t *p;
    size_t len, cap;
} arena;

static int arena_add(arena *a, const void *src, size_t n)
{
    if (n == 0)
        return 0; /* an empty arena has no buffer yet: memcpy(NULL, ..., 0) is UB */
    if (a->len + n > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : RF_STORE_HEAD_CHUNK;
        while (nc < a->len + n)
            nc *= 2;
        uint8_t *g = realloc(a->p, nc);
        if (!g)
            return -ENOMEM;
        a->p = g;
        a->cap = nc;
    }
    memcpy(a->p + a->len, src, n);
    a->len += n;
    return 0;
}

static void post(rf_store_shard *sh, shard_read *r)
{
    sh->head_req = &r->req;
    atomic_store_explicit(&sh->head_state, RF_HEAD_POSTED, memory_order_release); /* H1 */
    /* An idle worker may sleep up to a second before its next poll. */
    if (sh->store->head_wake)
        sh->store->head_wake(sh->store->head_wake_ctx, sh->index);
}

void rf_store_set_head_wake(rf_store *store, rf_store_wake_fn wake, void *ctx)
{
    store->head_wake = wake;
    store->head_wake_ctx = ctx;
}

/* Takes the shard's request back; true when it holds an answered chunk. */
static bool withdraw(rf_store_shard *sh)
{
    uint32_t expect = RF_HEAD_POSTED;
    if (atomic_compare_exchange_strong_explicit(&sh->head_state, &expect, RF_HEAD_IDLE,
                                                memory_order_relaxed, memory_order_relaxed))
        return false;
    /* The worker took it: one bounded chunk, then DONE (H1). */
    while (atomic_load_explicit(&sh->head_state, memory_order_acquire) != RF_HEAD_DONE) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return true;
}

static int drain_chunk(shard_read *r, arena *a, size_t *n_series, uint64_t *n_points,
                       uint64_t max_points)
{
    for (size_t off = 0; off < r->req.len;) {
        head_rec h;
        memcpy(&h, r->req.buf + off, sizeof(h));
        off += rec_bytes(h.key_len, h.n);
        (*n_series)++;
        *n_points += h.n;
    }
    if (max_points && *n_points > max_points)
        return -E2BIG; /* before the chunk is kept: the copy stays within the limit */
    if (arena_add(a, r->req.buf, r->req.len) < 0)
        return -ENOMEM;
    r->cut_seq = r->req.cut_seq;
    return 0;
}

static int build(arena *a, size_t n_series, rf_store_heads *h)
{
    h->series = calloc(n_series ? n_series : 1, sizeof(*h->series));
    if (!h->series)
        return -ENOMEM;
    size_t k = 0;
    for (size_t off = 0; off < a->len; k++) {
        head_rec r;
        memcpy(&r, a->p + off, sizeof(r));
        const char *key = (const char *)(a->p + off + sizeof(r));
        /* The points as two columns: t and v (arena records hold pairs). */
        const rf_store_point *p =
            (const rf_store_point *)(const void *)(a->p + off + sizeof(r) + pad8(r.key_len + 1));
        int64_t *t = malloc((r.n ? r.n : 1) * sizeof(*t));
        uint64_t *v = malloc((r.n ? r.n : 1) * sizeof(*v));
        if (!t || !v) {
            free(t);
            free(v);
            h->n = k;
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < r.n; i++) {
            t[i] = p[i].t;
            v[i] = p[i].v;
        }
        char *kc = malloc((size_t)r.key_len + 1);
        if (!kc) {
            free(t);
            free(v);
            h->n = k;
            return -ENOMEM;
        }
        memcpy(kc, key, (size_t)r.key_len + 1);
        h->series[k] = (rf_store_head_series){.series_id = r.series_id,
                                              .key = kc,
                                              .key_len = r.key_len,
                                              .measurement_len = r.measurement_len,
                                              .field_offset = r.field_offset,
                                              .value_type = r.value_type,
                                              .n = r.n,
                                              .t = t,
                                              .v = v};
        off += rec_bytes(r.key_len, r.n);
    }
    h->n = k;
    return 0;
}

/* Waits until the I/O thread wrote every block cut before the copy ended
 * (S4: acquire of written_seq, released by io after the write completed). */
static bool wait_written(rf_store_shard *sh, uint64_t seq, int64_t deadline)
{
    for (;;) {
        if (atomic_load_explicit(&sh->written_seq, memory_order_acquire) >= seq)
            return true;
        /* Blocks lost to a write error are never written (and counted). */
        if (atomic_load_explicit(&sh->io_health, memory_order_acquire) == RF_STORE_IO_DEGRADED)
            return false;
        if (rf_clock_mono_ns() >= deadline)
            return false;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

int rf_store_heads_read(rf_store *store, rf_store_head_want_fn want, void *ctx,
                        int64_t deadline_mono_ns, uint64_t max_points, rf_store_heads **out)
{
    const uint32_t n = store->n_shards;
    rf_store_heads *h = calloc(1, sizeof(*h));
    shard_read *rd = calloc(n, sizeof(*rd));
    arena a = {0};
    size_t n_series = 0;
    uint64_t n_points = 0;
    int rc = 0;
    if (!h || !rd) {
        rc = -ENOMEM;
        goto out;
    }
    /* At least one series of the longest key and the fullest buffer fits,
     * so the worker never meets a series it cannot hand over. */
    size_t cap = RF_STORE_HEAD_CHUNK;
    if (n && rec_bytes(RF_STORE_MAX_KEY, store->shards[0]->hard_cap) > cap)
        cap = rec_bytes(RF_STORE_MAX_KEY, store->shards[0]->hard_cap);
    for (uint32_t i = 0; i < n; i++) {
        rd[i].req = (rf_store_head_req){.want = want, .ctx = ctx, .cap = cap};
        if (!(rd[i].req.buf = malloc(cap))) {
            rc = -ENOMEM;
            goto out;
        }
        /* Touched here: the worker's copy must not take the page faults of
         * fresh memory (slow on a paravirtualised MMU). */
        memset(rd[i].req.buf, 0, cap);
    }
    for (uint32_t i = 0; i < n; i++) {
        rd[i].active = true;
        post(store->shards[i], &rd[i]);
    }
    for (uint32_t left = n; left;) {
        bool progress = false;
        bool late = rf_clock_mono_ns() >= deadline_mono_ns;
        for (uint32_t i = 0; i < n; i++) {
            rf_store_shard *sh = store->shards[i];
            if (!rd[i].active)
                continue;
            bool got = atomic_load_explicit(&sh->head_state, memory_order_acquire) ==
                       RF_HEAD_DONE; /* H1 */
            if (!got && late) {
                got = withdraw(sh);
                if (!got) {
                    rd[i].active = false;
                    h->incomplete = true;
                    left--;
                    continue;
                }
            }
            if (!got)
                continue;
            progress = true;
            h->chunks++;
            h->bytes += rd[i].req.len;
            rc = drain_chunk(&rd[i], &a, &n_series, &n_points, max_points);
            atomic_store_explicit(&sh->head_state, RF_HEAD_IDLE, memory_order_relaxed);
            rd[i].answered = true;
            if (rc < 0) {
                /* Every other shard's request is withdrawn below. */
                rd[i].active = false;
                left--;
                continue;
            }
            if (rd[i].req.done || late) {
                if (!rd[i].req.done)
                    h->incomplete = true;
                rd[i].active = false;
                left--;
            } else {
                post(sh, &rd[i]);
            }
        }
        if (rc < 0) {
            for (uint32_t i = 0; i < n; i++) {
                if (!rd[i].active)
                    continue;
                withdraw(store->shards[i]); /* its chunk, if any, is not wanted */
                atomic_store_explicit(&store->shards[i]->head_state, RF_HEAD_IDLE,
                                      memory_order_relaxed);
                rd[i].active = false;
            }
            goto out;
        }
        if (left && !progress) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
    for (uint32_t i = 0; i < n; i++)
        if (rd[i].answered && !wait_written(store->shards[i], rd[i].cut_seq, deadline_mono_ns))
            h->incomplete = true;
    rc = build(&a, n_series, h);
out:
    if (rd)
        for (uint32_t i = 0; i < n; i++)
            free(rd[i].req.buf);
    free(rd);
    free(a.p);
    if (rc < 0) {
        rf_store_heads_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void rf_store_heads_free(rf_store_heads *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        free((void *)h->series[i].key);
        free((void *)h->series[i].t);
        free((void *)h->series[i].v);
    }
    free(h->series);
    free(h);
}
