/* Helpers shared by the segment/store/query tests (test-only). */
#ifndef RF_TESTS_STORE_TEST_UTIL_H
#define RF_TESTS_STORE_TEST_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/event/event.h"
#include "storage/store/store.h"

static inline int tu_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline void tu_rmrf(const char *dir)
{
    nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh temporary directory (caller frees the string). */
static inline char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/rf-store-test-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Key "meas,tags field" (tags may be "" for none). */
static inline rf_series_key *tu_key(const char *meas, const char *tags, const char *field)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "%s%s%s %s", meas, tags[0] ? "," : "", tags, field);
    size_t mlen = strlen(meas);
    size_t foff = (size_t)n - strlen(field);
    return rf_series_key_new(buf, (size_t)n, mlen, foff);
}

/* A config that makes small blocks and reacts fast, for tests. */
static inline void tu_config(rf_store_config *c)
{
    rf_store_config_default(c);
    c->block_points = 64;
    c->queue_blocks = 64;
    c->io_idle_wait_us = 100;
    c->sync_interval_ns = 5000000;
    c->retention_interval_ns = 0;
    c->time_unit_ns = 1; /* these tests check every nanosecond (auto is the daemon's default) */
}

static inline rf_event tu_event(uint64_t id, int64_t t, uint8_t vt, uint64_t bits)
{
    rf_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.series_id = id;
    ev.event_time_ns = t;
    ev.value_type = vt;
    ev.value.u64 = bits;
    ev.sample_rate = 1.0f;
    return ev;
}

static inline uint64_t tu_f64(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* Appends, waiting out back-pressure (a refused point was not stored, so it
 * is offered again). */
static inline void tu_append(rf_store_shard *sh, const rf_event *ev)
{
    int rc;
    while ((rc = rf_store_append(sh, ev)) == -ENOBUFS) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    if (rc != 0)
        abort();
}

/* Flushes a shard and waits until it is durable. A flush that meets
 * back-pressure (every slot in flight: the I/O thread is behind) cuts what
 * it can and returns -EAGAIN, as store.h says; it is called again. Returns
 * rf_store_wait_durable's result. */
static inline int tu_flush_durable(rf_store_shard *sh, int64_t timeout_ns)
{
    uint64_t ticket;
    int rc;
    while ((rc = rf_store_flush(sh, &ticket)) == -EAGAIN) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    if (rc != 0)
        return rc;
    return rf_store_wait_durable(sh, ticket, timeout_ns);
}

#endif
