/* Retention: removes whole closed segments, by the age of their newest point
 * and by the total size of the store, oldest first. Runs on the I/O thread,
 * which alone knows which segments are open (those are never removed) and
 * owns the list of closed ones. A query holding a removed segment mapped
 * keeps reading it: unlink frees the space when the last mapping goes. */
#include "storage/store/store_pvt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log/log.h"

int rf_store_seg_add(rf_store *st, uint32_t shard, uint64_t seq, uint64_t bytes, int64_t max_time,
                     const char *path)
{
    if (st->n_segs == st->cap_segs) {
        size_t cap = st->cap_segs ? st->cap_segs * 2 : 64;
        rf_store_seg *p = realloc(st->segs, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        st->segs = p;
        st->cap_segs = cap;
    }
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    st->segs[st->n_segs++] = (rf_store_seg){shard, seq, bytes, max_time, copy};
    st->closed_bytes += bytes;
    return 0;
}

uint64_t rf_store_open_bytes(const rf_store *st)
{
    uint64_t b = 0;
    for (uint32_t i = 0; i < st->n_shards; i++)
        if (st->shards[i]->io.fd >= 0)
            b += st->shards[i]->io.seg_size;
    return b;
}

void rf_store_stats_publish(rf_store *st)
{
    uint64_t open_segs = 0;
    for (uint32_t i = 0; i < st->n_shards; i++)
        open_segs += st->shards[i]->io.fd >= 0;
    atomic_store_explicit(&st->stat_segments, st->n_segs + open_segs, memory_order_relaxed);
    atomic_store_explicit(&st->stat_bytes, st->closed_bytes + rf_store_open_bytes(st),
                          memory_order_relaxed);
}

static void remove_seg(rf_store *st, size_t i, const char *why)
{
    rf_store_seg *s = &st->segs[i];
    if (unlink(s->path) < 0 && errno != ENOENT) {
        rf_log_error(RF_STORE_COMPONENT, "retention: unlink file=%s: %s", s->path, strerror(errno));
    } else {
        rf_log_info(RF_STORE_COMPONENT,
                    "retention: removed file=%s shard=%" PRIu32 " bytes=%" PRIu64 " reason=%s",
                    s->path, s->shard, s->bytes, why);
        rf_stats_add(&st->stat_removed, 1);
        rf_stats_add(&st->stat_bytes_removed, s->bytes);
    }
    st->closed_bytes -= s->bytes;
    free(s->path);
    st->segs[i] = st->segs[--st->n_segs];
}

/* Older = smaller newest-point time; segment order breaks ties. */
static bool older(const rf_store_seg *a, const rf_store_seg *b)
{
    if (a->max_time != b->max_time)
        return a->max_time < b->max_time;
    return a->seq < b->seq;
}

void rf_store_retention_apply(rf_store *st, int64_t now_wall_ns)
{
    const rf_store_config *cfg = &st->cfg;
    rf_stats_add(&st->stat_ret_runs, 1);
    if (cfg->retention_max_age_ns > 0) {
        int64_t limit = now_wall_ns - cfg->retention_max_age_ns;
        for (size_t i = 0; i < st->n_segs;) {
            if (st->segs[i].max_time < limit)
                remove_seg(st, i, "age");
            else
                i++;
        }
    }
    if (cfg->retention_max_bytes > 0) {
        uint64_t total = rf_store_open_bytes(st) + st->closed_bytes;
        while (total > cfg->retention_max_bytes && st->n_segs) {
            size_t o = 0;
            for (size_t i = 1; i < st->n_segs; i++)
                if (older(&st->segs[i], &st->segs[o]))
                    o = i;
            total -= st->segs[o].bytes;
            remove_seg(st, o, "size");
        }
    }
    /* before rf_store_retention_run returns: its caller reads the result */
    rf_store_stats_publish(st);
}

int rf_store_retention_run(rf_store *st, int64_t now_wall_ns, int64_t timeout_ns)
{
    atomic_store_explicit(&st->retention_now, now_wall_ns, memory_order_relaxed);
    uint64_t req =
        atomic_fetch_add_explicit(&st->retention_req, 1, memory_order_release) + 1; /* S5 */
    int64_t waited = 0;
    while (atomic_load_explicit(&st->retention_done, memory_order_acquire) < req) {
        if (waited >= timeout_ns)
            return -ETIMEDOUT;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
        waited += 200000;
    }
    return 0;
}
