/* Test helpers for the protocol parsers: a flush callback that collects every
 * event, and lookups over what was collected; for the listeners: the
 * configuration every listener test starts from. */
#ifndef RF_TESTS_INGEST_UTIL_H
#define RF_TESTS_INGEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"

#define T_WALL 1700000000000000000LL /* 2023-11-14T22:13:20Z */
#define T_MONO 123456789LL

typedef struct collected {
    rf_event *ev;
    size_t n, cap;
    size_t flushes;
} collected;

static inline void collect_flush(void *user, rf_event *events, size_t n)
{
    collected *c = user;
    if (c->n + n > c->cap) {
        c->cap = (c->n + n) * 2;
        c->ev = realloc(c->ev, c->cap * sizeof(*c->ev));
        assert_non_null(c->ev);
    }
    memcpy(c->ev + c->n, events, n * sizeof(*events));
    c->n += n;
    c->flushes++;
}

static inline void collected_reset(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->ev[i].kind == RF_KIND_SERIES_DEF)
            rf_series_key_free((rf_series_key *)(uintptr_t)c->ev[i].aux);
    rf_event_free_texts(c->ev, (uint32_t)c->n); /* string values' texts */
    c->n = 0;
    c->flushes = 0;
}

static inline void collected_free(collected *c)
{
    collected_reset(c);
    free(c->ev);
    c->ev = NULL;
    c->cap = 0;
}

/* A fixture: context + batch + collector. */
typedef struct fixture {
    rf_event batch[16];
    collected out;
    rf_parse_ctx *ctx;
    rf_recv_info rx;
} fixture;

static inline fixture *fixture_new(const rf_parse_config *cfg)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    rf_err err;
    rf_err_clear(&err);
    f->ctx = rf_parse_ctx_new(cfg, f->batch, 16, collect_flush, &f->out, &err);
    assert_non_null(f->ctx);
    f->rx = (rf_recv_info){.wall_ns = T_WALL, .mono_ns = T_MONO, .source_addr = "10.0.0.7:5000"};
    return f;
}

static inline void fixture_free(fixture *f)
{
    rf_parse_ctx_free(f->ctx); /* flushes leftovers into f->out */
    collected_free(&f->out);
    free(f);
}

/* Parses text with the given parser and flushes; returns rejected lines. */
typedef size_t (*parse_fn)(rf_parse_ctx *, const rf_recv_info *, const char *, size_t);
static inline size_t run(fixture *f, parse_fn fn, const char *text)
{
    size_t r = fn(f->ctx, &f->rx, text, strlen(text));
    rf_parse_flush(f->ctx);
    return r;
}

/* Data events only (defs skipped): the i-th one. */
static inline const rf_event *data_ev(const fixture *f, size_t i)
{
    for (size_t k = 0; k < f->out.n; k++) {
        if (f->out.ev[k].kind == RF_KIND_SERIES_DEF)
            continue;
        if (i-- == 0)
            return &f->out.ev[k];
    }
    fail_msg("no data event %zu", i);
    return NULL;
}

static inline size_t count_kind(const fixture *f, int kind, int want_def)
{
    size_t n = 0;
    for (size_t k = 0; k < f->out.n; k++) {
        int is_def = f->out.ev[k].kind == RF_KIND_SERIES_DEF;
        if (want_def ? is_def : (!is_def && (kind < 0 || f->out.ev[k].kind == kind)))
            n++;
    }
    return n;
}

static inline size_t n_data(const fixture *f)
{
    return count_kind(f, -1, 0);
}

static inline size_t n_defs(const fixture *f)
{
    return count_kind(f, 0, 1);
}

/* The canonical text announced for a series id, or NULL. */
static inline const char *def_text(const fixture *f, uint64_t id)
{
    for (size_t k = 0; k < f->out.n; k++) {
        if (f->out.ev[k].kind == RF_KIND_SERIES_DEF && f->out.ev[k].series_id == id) {
            const rf_series_key *key = (const rf_series_key *)(uintptr_t)f->out.ev[k].aux;
            assert_int_equal(key->series_id, id);
            return key->text;
        }
    }
    return NULL;
}

static inline uint64_t id_of(const char *canonical)
{
    return rf_series_id_of_key(canonical, strlen(canonical));
}

static inline uint64_t hash_str(const char *s)
{
    /* The parsers hash string values with XXH3_64bits (seed 0); so does this. */
    extern uint64_t rf_test_xxh3(const char *, size_t);
    return rf_test_xxh3(s, strlen(s));
}

/* ---- listeners ---- */

/* A listener configuration as the listener tests use it: `name`, transport
 * t, loopback (rf_listener_config_init's default address), an ephemeral port
 * (0) and on_data(ctx, ...) as the handler. Callers set whatever else they
 * test. */
static inline void it_listener_config(
    rf_listener_config *cfg, const char *name, enum rf_listen_transport t,
    void (*on_data)(void *ctx, const rf_listener *l, const rf_listen_chunk *chunk), void *ctx)
{
    rf_listener_config_init(cfg);
    if (name)
        snprintf(cfg->name, sizeof(cfg->name), "%s", name);
    cfg->transport = t;
    cfg->port = 0;
    cfg->handler = (rf_listen_handler){.on_data = on_data, .ctx = ctx};
}

#endif
