/* HTTP sync writes (ingest/http/http.h, "Sync writes"): a barrier through
 * the worker rings that answers a write only once its points are in blocks
 * fdatasync'ed to the store. Runs on the worker threads.
 *
 * The requesting worker (the one whose listener took the request) parks
 * the answer as a waiter of its open round. Once per poll, after every
 * event of the poll was dispatched and its staging flushed, the round is
 * sent: a marker down the sync ring to each worker whose event ring got
 * events since the last round, carrying how many events that ring had been
 * given (sent_to). The owner takes the barrier once it has taken that many
 * events from the ring (received_from; they were processed as they were
 * taken, so they are in its store's buffers): rf_store_flush cuts every
 * buffered series and asks the I/O thread for an fdatasync, and its ticket
 * goes back in an ack. The requester then waits, without blocking, for the
 * store's durable mark to pass each ticket (rf_store_wait_durable with no
 * timeout is one load), and answers the round's waiters. Its own shard's
 * barrier is taken at once. So many sync writes of one poll share one
 * marker, one cut and one fdatasync per shard. */
#include "daemon/engine_pvt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/mem/bound.h"
#include "core/stats/stats.h"

enum sync_msg_type {
    SYNC_MARK = 1, /* from the requester: a barrier after `value` events */
    SYNC_ACK = 2,  /* from the owner: its barrier's ticket (`value`), or rc */
};

typedef struct sync_msg {
    uint32_t type, from;
    uint64_t round;
    uint64_t value;
    int64_t rc;
} sync_msg;

typedef struct sync_waiter {
    rf_http_sync_done_fn done;
    void *done_ctx;
    uint64_t cookie;
    uint64_t round;
} sync_waiter;

typedef struct sync_round {
    uint64_t id; /* 0: a free slot */
    int64_t deadline_ns;
    uint64_t need_ack;     /* workers whose ack is still to come */
    uint64_t need_durable; /* workers whose ticket is not durable yet */
    uint64_t ticket[RF_DAEMON_MAX_WORKERS];
    int rc; /* the first failure, else 0 */
} sync_round;

typedef struct sync_held {
    bool valid;
    uint64_t round, after;
} sync_held;

struct rf_sync_state {
    sync_round rounds[RF_SYNC_ROUNDS];
    uint32_t in_flight;
    sync_waiter waiters[RF_SYNC_WAITERS];
    uint32_t n_waiters;
    uint32_t open_waiters;                  /* waiters of the round not sent yet */
    uint64_t next_round;                    /* the open round's id */
    uint64_t marked[RF_DAEMON_MAX_WORKERS]; /* sent_to[j] at the last marker to j */
    uint64_t drops_seen;                    /* dropped_ring_full at the last round sent */
    sync_held held[RF_DAEMON_MAX_WORKERS];  /* a marker taken, its barrier not yet */
    uint32_t n_held;
};

static rf_store_shard *store_of(const rf_engine_worker *w, uint32_t j)
{
    return w->engine->store ? rf_store_shard_get(w->engine->store, j) : NULL;
}

static sync_round *round_find(struct rf_sync_state *st, uint64_t id)
{
    for (uint32_t i = 0; i < RF_SYNC_ROUNDS; i++)
        if (st->rounds[i].id == id)
            return &st->rounds[i];
    return NULL;
}

/* A barrier's ticket (or failure) for round r from worker j. */
static void round_ticket(sync_round *r, uint32_t j, uint64_t ticket, int rc)
{
    r->need_ack &= ~(1ull << j);
    if (rc < 0) {
        if (!r->rc)
            r->rc = rc;
        return;
    }
    r->ticket[j] = ticket;
    r->need_durable |= 1ull << j;
}

/* rf_http_ingest.sync: the answer waits for the open round. */
static int sync_begin(void *ctx, rf_http_sync_done_fn done, void *done_ctx, uint64_t cookie)
{
    rf_engine_worker *w = ctx;
    if (!w->engine->store)
        return -ENOTSUP;
    if (!w->sync) {
        if (!(w->sync = calloc(1, sizeof(*w->sync))))
            return -EBUSY;
        w->sync->next_round = 1;
        w->sync->drops_seen = atomic_load_explicit(&w->dropped_ring_full, memory_order_relaxed);
    }
    struct rf_sync_state *st = w->sync;
    /* The open round needs a slot when it is sent. */
    if (st->n_waiters == RF_SYNC_WAITERS ||
        (st->open_waiters == 0 && st->in_flight == RF_SYNC_ROUNDS))
        return -EBUSY;
    st->waiters[st->n_waiters++] = (sync_waiter){
        .done = done, .done_ctx = done_ctx, .cookie = cookie, .round = st->next_round};
    st->open_waiters++;
    return 0;
}

static void sync_cancel(void *ctx, void *done_ctx)
{
    rf_engine_worker *w = ctx;
    struct rf_sync_state *st = w->sync;
    if (!st)
        return;
    for (uint32_t i = 0; i < st->n_waiters;) {
        if (st->waiters[i].done_ctx != done_ctx) {
            i++;
            continue;
        }
        if (st->waiters[i].round == st->next_round)
            st->open_waiters--;
        st->waiters[i] = st->waiters[--st->n_waiters];
    }
}

void rf_engine_sync_attach(rf_engine_worker *w)
{
    rf_shard_set_sync(w->shard, sync_begin, sync_cancel, w);
}

/* The owner's side: the barrier of a marker whose events were all taken.
 * False while back-pressure keeps buffers from being cut (tried again). */
static bool take_barrier(rf_engine_worker *w, uint32_t from, const sync_held *h)
{
    uint64_t ticket = 0;
    int rc = rf_store_flush(store_of(w, w->index), &ticket);
    if (rc == -EAGAIN)
        return false;
    if (from == w->index) {
        /* Every round waiting on its own shard had its points processed
         * before this cut. */
        (void)h;
        for (uint32_t i = 0; i < RF_SYNC_ROUNDS; i++) {
            sync_round *r = &w->sync->rounds[i];
            if (r->id && (r->need_ack >> from & 1))
                round_ticket(r, from, ticket, rc);
        }
        return true;
    }
    sync_msg ack = {
        .type = SYNC_ACK, .from = w->index, .round = h->round, .value = ticket, .rc = rc};
    /* Never full (RF_SYNC_RING_SLOTS); a lost ack would only time out. */
    (void)rf_ring_enqueue(w->sync_outbound[from], &ack, sizeof(ack));
    rf_worker_wake(w->engine->workers[from]->thread);
    return true;
}

/* Takes the sync rings' messages: markers wait in `held` (one per sender:
 * a later one stays in the ring), acks fill their round. */
static uint32_t take_messages(rf_engine_worker *w)
{
    uint32_t got = 0;
    for (uint32_t j = 0; j < w->engine->n_workers; j++) {
        rf_ring *r = w->sync_inbound[j];
        if (!r)
            continue;
        sync_msg m;
        while (!(w->sync && w->sync->held[j].valid) && rf_ring_dequeue(r, &m, sizeof(m))) {
            got++;
            if (m.type == SYNC_MARK) {
                if (!w->sync && !(w->sync = calloc(1, sizeof(*w->sync)))) {
                    /* No memory for the state: the requester times out. */
                    continue;
                }
                if (w->sync->next_round == 0) {
                    w->sync->next_round = 1;
                    w->sync->drops_seen =
                        atomic_load_explicit(&w->dropped_ring_full, memory_order_relaxed);
                }
                w->sync->held[j] = (sync_held){.valid = true, .round = m.round, .after = m.value};
                w->sync->n_held++;
            } else if (m.type == SYNC_ACK && w->sync) {
                sync_round *rd = round_find(w->sync, m.round);
                if (rd) /* else it timed out already */
                    round_ticket(rd, m.from, m.value, (int)m.rc);
            }
        }
    }
    return got;
}

/* Answers the waiters of round r with outcome rc and frees the round. */
static void round_finish(rf_engine_worker *w, sync_round *r, int rc)
{
    struct rf_sync_state *st = w->sync;
    sync_waiter done[RF_SYNC_WAITERS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < st->n_waiters;) {
        if (st->waiters[i].round != r->id) {
            i++;
            continue;
        }
        done[n++] = st->waiters[i];
        st->waiters[i] = st->waiters[--st->n_waiters];
    }
    r->id = 0;
    st->in_flight--;
    rf_stats_add(rc ? (rc == -ETIMEDOUT ? &w->sync_timeouts : &w->sync_failed) : &w->sync_answered,
                 n);
    /* Out of the table first: an answer may park a pipelined request anew. */
    for (uint32_t i = 0; i < n; i++)
        done[i].done(done[i].done_ctx, done[i].cookie, rc);
}

uint32_t rf_engine_sync_poll(rf_engine_worker *w)
{
    uint32_t work = take_messages(w);
    struct rf_sync_state *st = w->sync;
    if (!st)
        return work;
    if (st->n_held) {
        for (uint32_t j = 0; j < w->engine->n_workers; j++) {
            sync_held *h = &st->held[j];
            if (!h->valid || (j != w->index && w->received_from[j] < h->after))
                continue;
            if (take_barrier(w, j, h)) {
                h->valid = false;
                st->n_held--;
                work++;
            }
        }
        work += st->n_held; /* keep polling: the events or a free slot are coming */
    }
    if (!st->in_flight)
        return work;
    const int64_t now = rf_clock_mono_ns();
    for (uint32_t i = 0; i < RF_SYNC_ROUNDS; i++) {
        sync_round *r = &st->rounds[i];
        if (!r->id)
            continue;
        for (uint64_t m = r->need_durable; m; m &= m - 1) {
            const uint32_t j = (uint32_t)__builtin_ctzll(m);
            /* No timeout: one acquire load of the durable mark (and of
             * the failure flag), no sleep. */
            int rc = rf_store_wait_durable(store_of(w, j), r->ticket[j], 0);
            if (rc == -ETIMEDOUT)
                continue;
            r->need_durable &= ~(1ull << j);
            if (rc < 0 && !r->rc)
                r->rc = rc;
        }
        if (!r->need_ack && !r->need_durable) {
            round_finish(w, r, r->rc);
            work++;
        } else if (now >= r->deadline_ns) {
            round_finish(w, r, -ETIMEDOUT);
            work++;
        }
    }
    return work;
}

/* Sends the open round: after dispatch and staging of the poll, so the
 * markers are behind every event of its requests. */
void rf_engine_sync_issue(rf_engine_worker *w)
{
    struct rf_sync_state *st = w->sync;
    if (!st)
        return;
    if (!st->open_waiters) {
        /* Drops of polls without sync writes are not the next round's: a
         * sync write after a quiet hour must not be answered sync_dropped
         * for a drop of then. */
        st->drops_seen = atomic_load_explicit(&w->dropped_ring_full, memory_order_relaxed);
        return;
    }
    sync_round *r = round_find(st, 0);
    if (!r) /* cannot happen: sync_begin kept a slot */
        return;
    memset(r, 0, sizeof(*r));
    r->id = st->next_round++;
    r->deadline_ns = rf_clock_mono_ns() + RF_SYNC_TIMEOUT_NS;
    st->open_waiters = 0;
    st->in_flight++;
    rf_stats_add(&w->sync_rounds, 1);
    /* Points of these requests that a full ring dropped cannot be made
     * durable: the round answers 503 (the drop may have been another
     * request's: the client retries, at least once holds). */
    const uint64_t drops = atomic_load_explicit(&w->dropped_ring_full, memory_order_relaxed);
    if (drops != st->drops_seen) {
        st->drops_seen = drops;
        r->rc = -ENOBUFS;
    }
    const uint32_t self = w->index;
    for (uint32_t j = 0; j < w->engine->n_workers; j++) {
        if (j == self || w->sent_to[j] == st->marked[j])
            continue;
        sync_msg m = {.type = SYNC_MARK, .from = self, .round = r->id, .value = w->sent_to[j]};
        if (!rf_ring_enqueue(w->sync_outbound[j], &m, sizeof(m))) {
            r->rc = -EBUSY; /* cannot happen (RF_SYNC_RING_SLOTS) */
            continue;
        }
        st->marked[j] = w->sent_to[j];
        r->need_ack |= 1ull << j;
        rf_worker_wake(w->engine->workers[j]->thread);
    }
    if (w->local_since_round) {
        w->local_since_round = false;
        r->need_ack |= 1ull << self;
        /* A barrier of its own still held back (back-pressure) covers this
         * round too: it cuts everything buffered when it is taken. */
        if (!st->held[self].valid) {
            st->held[self] = (sync_held){.valid = true, .round = r->id};
            st->n_held++;
        }
    }
}

int64_t rf_engine_sync_next_due(const rf_engine_worker *w)
{
    if (!w->sync || (!w->sync->in_flight && !w->sync->n_held))
        return 0;
    return rf_clock_mono_ns() + RF_SYNC_RECHECK_NS;
}

int rf_engine_sync_rings_create(rf_engine_worker *w, uint32_t workers, rf_err *err)
{
    for (uint32_t j = 0; j < workers; j++) {
        if (j == w->index)
            continue;
        w->sync_inbound[j] = rf_ring_create(RF_SYNC_RING_SLOTS, sizeof(sync_msg));
        if (!w->sync_inbound[j])
            return rf_err_set(err, ENOMEM, "engine: sync ring %u->%u", j, w->index);
    }
    return 0;
}

uint64_t rf_engine_sync_memory_bound(uint32_t workers)
{
    const uint64_t peers = workers ? workers - 1 : 0;
    return peers * rf_ring_memory_bound(RF_SYNC_RING_SLOTS, sizeof(sync_msg)) +
           rf_mem_alloc_bound(sizeof(struct rf_sync_state));
}

void rf_engine_sync_free(rf_engine_worker *w)
{
    for (uint32_t j = 0; j < RF_DAEMON_MAX_WORKERS; j++) {
        rf_ring_destroy(w->sync_inbound[j]);
        w->sync_inbound[j] = NULL;
    }
    free(w->sync);
    w->sync = NULL;
}
