/* The NATS side of a forwarding sink (protocol RF_FWD_NATS): the sender
 * thread of sender.c, with nats.c in place of libcurl. The buffer, the
 * chunk hand-over from the worker, backoff and the circuit breaker are
 * sender.c's and buffer*.c's; this file turns the oldest entries into
 * messages and settles them.
 *
 * Why line protocol as the payload: the receiving ringflowd already has a
 * zero-copy line-protocol parser feeding the pipeline (ingest), any NATS
 * tool can read the messages, and a batch of lines costs ~30-60 bytes per
 * point, which the payload (up to 64 KiB per message) amortises; a binary
 * encoding would add a second format to keep compatible for a few bytes.
 *
 * A batch (the entries fwd_buffer_peek hands out, up to max_bytes and
 * max_samples) is published whole: every entry split by subject, one
 * message per (entry, subject), each with its Nats-Msg-Id. JetStream: all
 * are published asynchronously (nats.c bounds them at max_pending in
 * flight) and the batch is removed from the buffer only when every ack
 * came back positive; otherwise the whole batch is published again after a
 * backoff and the stream's duplicate window discards what it already has
 * (counted from the acks' "duplicate" flag). Core NATS: published, then a
 * flush (PING/PONG) confirms the server read them; no subscriber ack.
 *
 * Threads: nats.c runs its own (reader, flusher, reconnect); the ack
 * handler runs on one of them and only touches the atomics of fwd_nats. */
#include "stages/forward/forward_pvt.h"

#include <errno.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/stats/stats.h"
#include "ingest/nats/nats_source.h"

#define DEF_SUBJECT "ringflow.{measurement}.{shard}"
#define DEF_MAX_PENDING 256
#define DEF_RECONNECT_WAIT (250 * RF_NS_PER_MS)
/* How long one wait for acks lasts before the sender looks at its ring
 * and at stop again. */
#define ACK_POLL_MS 50
#define SUBJ_MAX 256

/* One line of a batch: the subject it goes to (hash and text in the
 * subject arena) and where it is. */
typedef struct nats_line {
    uint64_t subj_hash;
    uint32_t subj_off, subj_len;
    uint32_t off, len;
    uint32_t order; /* position in the entry: the sort keeps lines in order */
} nats_line;

typedef struct fwd_nats {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    bool stream_ready;
    bool published; /* some async publish was made: nats.c's pending table exists */
    /* Set by nats.c's callback thread when the connection is closed (its
     * last callback for it); read by fwd_nats_close, which waits for it
     * so that no callback (on_disconnected reads the rf_fwd) runs on a
     * freed sink. Release/acquire pair. */
    _Atomic bool conn_closed;
    uint32_t shards;
    const char *subject;
    /* Written by nats.c's thread in the ack handler, read by the sender
     * after js_PublishAsyncComplete (which orders them: relaxed counters
     * are enough, the sender only sums). */
    _Atomic uint64_t acks_ok, acks_err, acks_dup;
    _Atomic int last_ack_err; /* jsErrCode of the last negative ack, same pairing */
    nats_line *lines;
    size_t lines_cap;
    char *arena;
    size_t arena_cap, arena_len;
    char *payload;
    size_t payload_cap;
    char err_text[160];
} fwd_nats;

const char *rf_fwd_nats_conn_name(uint32_t conn)
{
    static const char *const n[] = {"disconnected", "connecting",    "connected",    "closed",
                                    "reconnecting", "draining_subs", "draining_pubs"};
    return conn < 7 ? n[conn] : "unknown";
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    return h;
}

/* Where the measurement ends (first unescaped ',' or ' ') and where the
 * series key ends (the '=' between field and value: the last '=' before
 * the last space, as values in these lines are never strings). */
static void line_parts(const char *p, uint32_t len, uint32_t *meas_end, uint32_t *field_start,
                       uint32_t *key_end)
{
    uint32_t i = 0;
    while (i < len && p[i] != ',' && p[i] != ' ')
        i += p[i] == '\\' ? 2 : 1;
    *meas_end = i < len ? i : len;
    while (i < len && p[i] != ' ')
        i += p[i] == '\\' ? 2 : 1;
    *field_start = i < len ? i + 1 : len;
    uint32_t sp = len;
    while (sp > *field_start && p[sp - 1] != ' ')
        sp--;
    uint32_t eq = sp;
    while (eq > *field_start && p[eq - 1] != '=')
        eq--;
    *key_end = eq > *field_start ? eq - 1 : len;
}

/* Appends a subject token: backslashes removed, bytes that cannot be in a
 * token become '_' (route.h's rule), never empty. */
static size_t put_token(char *out, size_t room, const char *p, uint32_t n)
{
    size_t k = 0;
    for (uint32_t i = 0; i < n && k < room; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n)
            c = p[++i];
        out[k++] = (c == '.' || c == ' ' || c == '*' || c == '>' || c == '\t') ? '_' : c;
    }
    if (k == 0 && room)
        out[k++] = '_';
    return k;
}

/* Fills the template for one line into out (cap SUBJ_MAX). */
static size_t subject_of(const fwd_nats *n, const char *p, uint32_t len, char *out)
{
    uint32_t me, fs, ke;
    line_parts(p, len, &me, &fs, &ke);
    size_t k = 0;
    for (const char *t = n->subject; *t && k < SUBJ_MAX - 1;) {
        size_t room = SUBJ_MAX - 1 - k;
        if (!strncmp(t, "{measurement}", 13)) {
            k += put_token(out + k, room, p, me);
            t += 13;
        } else if (!strncmp(t, "{field}", 7)) {
            k += put_token(out + k, room, p + fs, ke > fs ? ke - fs : 0);
            t += 7;
        } else if (!strncmp(t, "{shard}", 7)) {
            int w =
                snprintf(out + k, room + 1, "%llu", (unsigned long long)(fnv1a(p, ke) % n->shards));
            k += w > 0 && (size_t)w <= room ? (size_t)w : 0;
            t += 7;
        } else {
            out[k++] = *t++;
        }
    }
    out[k] = '\0';
    return k;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    const nats_line *x = a, *y = b;
    if (x->subj_hash != y->subj_hash)
        return x->subj_hash < y->subj_hash ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Splits one entry's lines by subject, sorted by subject hash (line order
 * kept within a subject). Returns the number of lines or -ENOMEM. */
static long split_entry(fwd_nats *n, const char *p, uint32_t len)
{
    size_t cnt = 0;
    n->arena_len = 0;
    for (uint32_t off = 0; off < len;) {
        const char *nl = memchr(p + off, '\n', len - off);
        uint32_t l = nl ? (uint32_t)(nl - (p + off)) + 1 : len - off;
        char subj[SUBJ_MAX];
        size_t sl = subject_of(n, p + off, l - (nl ? 1 : 0), subj);
        if (grow((void **)&n->lines, &n->lines_cap, cnt + 1, sizeof(nats_line)) ||
            grow((void **)&n->arena, &n->arena_cap, n->arena_len + sl + 1, 1))
            return -ENOMEM;
        memcpy(n->arena + n->arena_len, subj, sl + 1);
        n->lines[cnt] = (nats_line){.subj_hash = fnv1a(subj, sl),
                                    .subj_off = (uint32_t)n->arena_len,
                                    .subj_len = (uint32_t)sl,
                                    .off = off,
                                    .len = l,
                                    .order = (uint32_t)cnt};
        n->arena_len += sl + 1;
        cnt++;
        off += l;
    }
    qsort(n->lines, cnt, sizeof(nats_line), cmp_line);
    return (long)cnt;
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    fwd_nats *n = closure;
    if (pa) {
        atomic_fetch_add_explicit(&n->acks_ok, 1, memory_order_relaxed);
        if (pa->Duplicate)
            atomic_fetch_add_explicit(&n->acks_dup, 1, memory_order_relaxed);
    } else {
        atomic_store_explicit(&n->last_ack_err, pae ? (int)pae->ErrCode : 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&n->acks_err, 1, memory_order_relaxed);
    }
    natsMsg_Destroy(msg);
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc;
    rf_log_info("forward", "sink %s: connected to NATS", ((rf_fwd *)closure)->name);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    rf_log_warn("forward", "sink %s: NATS connection lost; reconnecting",
                ((rf_fwd *)closure)->name);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    fwd_nats *n = closure;
    /* Pairs with the acquire load in fwd_nats_close. */
    atomic_store_explicit(&n->conn_closed, true, memory_order_release);
}

static int nats_fail(rf_fwd *f, natsStatus s, const char *what, rf_err *err)
{
    return rf_err_set(err, EINVAL, "sink %s: %s: %s", f->name, what, natsStatus_GetText(s));
}

int fwd_nats_open(rf_fwd *f, rf_err *err)
{
    const rf_fwd_nats_config *c = &f->cfg.nats;
    fwd_nats *n = calloc(1, sizeof(*n));
    if (!n)
        return rf_err_set(err, ENOMEM, "sink %s: out of memory", f->name);
    f->nats = n;
    n->shards = c->shards ? c->shards : 1;
    n->subject = c->subject ? c->subject : DEF_SUBJECT;
    int64_t rwait = c->reconnect_wait_ns > 0 ? c->reconnect_wait_ns : DEF_RECONNECT_WAIT;
    /* Reconnecting forever: the buffer holds meanwhile. */
    natsStatus s = (natsStatus)rf_nats_options_new(c->servers, c->n_servers, c->creds_file,
                                                   c->tls_ca, c->tls_cert, c->tls_key, &n->opts);
    if (s == NATS_OK)
        s = natsOptions_SetName(n->opts, f->name);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(n->opts, rwait / RF_NS_PER_MS);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(n->opts, f->cfg.timeout_ns / RF_NS_PER_MS);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(n->opts, true, on_connected, f);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(n->opts, on_disconnected, f);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(n->opts, on_closed, n);
    if (s != NATS_OK)
        return nats_fail(f, s, "NATS options (servers, credentials or TLS files)", err);
    /* With retry-on-failed-connect and a callback nats.c connects in the
     * background when no server answers now: NATS_NOT_YET_CONNECTED. */
    s = natsConnection_Connect(&n->nc, n->opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED)
        return nats_fail(f, s, "NATS connect", err);
    if (!c->core) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = f->cfg.timeout_ns / RF_NS_PER_MS;
        jo.PublishAsync.MaxPending = c->max_pending ? c->max_pending : DEF_MAX_PENDING;
        jo.PublishAsync.AckHandler = on_ack;
        jo.PublishAsync.AckHandlerClosure = n;
        if ((s = natsConnection_JetStream(&n->js, n->nc, &jo)) != NATS_OK)
            return nats_fail(f, s, "JetStream context", err);
    }
    n->stream_ready = c->core || !c->stream;
    return 0;
}

void fwd_nats_close(rf_fwd *f)
{
    fwd_nats *n = f->nats;
    if (!n)
        return;
    if (n->js) {
        /* Anything still unacknowledged is in the buffer (not removed).
         * nats.c 3.4 reads its pending table without a NULL check, and the
         * table is made by the first async publish: a sink that never
         * published (no server, or nothing routed to it) crashed here. */
        natsMsgList pending;
        if (n->published && js_PublishAsyncGetPendingList(&pending, n->js) == NATS_OK)
            natsMsgList_Destroy(&pending);
        jsCtx_Destroy(n->js);
    }
    if (n->nc) {
        /* nats.c runs the disconnected and closed callbacks in that order on
         * its own thread, after Close returns: wait (bounded) for the last. */
        natsConnection_Close(n->nc);
        for (int i = 0; i < 400 && !atomic_load_explicit(&n->conn_closed, memory_order_acquire);
             i++) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->opts);
    free(n->lines);
    free(n->arena);
    free(n->payload);
    free(n);
    f->nats = NULL;
}

/* Creates the configured stream once connected: subjects are the template
 * with every placeholder as '*'. An existing stream is left as it is. */
static int ensure_stream(rf_fwd *f, fwd_nats *n)
{
    char subj[SUBJ_MAX];
    size_t k = 0;
    for (const char *t = n->subject; *t && k < sizeof(subj) - 2;) {
        const char *e = *t == '{' ? strchr(t, '}') : NULL;
        if (e) {
            subj[k++] = '*';
            t = e + 1;
        } else {
            subj[k++] = *t++;
        }
    }
    subj[k] = '\0';
    const char *subjects[1] = {subj};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = f->cfg.nats.stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = f->cfg.nats.stream_memory ? js_MemoryStorage : js_FileStorage;
    sc.Duplicates = f->cfg.nats.duplicate_window_ns;
    sc.Replicas = f->cfg.nats.stream_replicas ? (int64_t)f->cfg.nats.stream_replicas : 1;
    jsStreamInfo *si = NULL;
    jsErrCode ec = 0;
    natsStatus s = js_AddStream(&si, n->js, &sc, NULL, &ec);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK || ec == JSStreamNameExistErr) {
        n->stream_ready = true;
        return 0;
    }
    rf_log_warn("forward", "sink %s: cannot create stream %s (%s, JetStream error %d); retrying",
                f->name, sc.Name, natsStatus_GetText(s), (int)ec);
    return -EIO;
}

/* Publishes one entry's messages. Returns 0, or -EIO when nats.c refused
 * a publish (the batch will be retried whole). */
static int publish_entry(rf_fwd *f, fwd_nats *n, const fwd_entry *e, const char *p, uint64_t *msgs)
{
    long cnt = split_entry(n, p, e->len);
    if (cnt < 0)
        return (int)cnt;
    for (long i = 0; i < cnt;) {
        long j = i;
        size_t plen = 0;
        while (j < cnt && n->lines[j].subj_hash == n->lines[i].subj_hash) {
            plen += n->lines[j].len;
            j++;
        }
        if (grow((void **)&n->payload, &n->payload_cap, plen, 1))
            return -ENOMEM;
        plen = 0;
        for (long k = i; k < j; k++) {
            memcpy(n->payload + plen, p + n->lines[k].off, n->lines[k].len);
            plen += n->lines[k].len;
        }
        const char *subj = n->arena + n->lines[i].subj_off;
        natsStatus s;
        if (n->js) {
            char id[160];
            snprintf(id, sizeof(id), "%s.%u.%lld.%llu.%016llx", f->name, f->cfg.instance,
                     (long long)e->wall_ns, (unsigned long long)e->seq,
                     (unsigned long long)n->lines[i].subj_hash);
            natsMsg *m = NULL;
            s = natsMsg_Create(&m, subj, NULL, n->payload, (int)plen);
            if (s == NATS_OK)
                s = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
            if (s == NATS_OK)
                s = js_PublishMsgAsync(n->js, &m, NULL);
            n->published = true;
            natsMsg_Destroy(m); /* no effect when nats.c took it */
        } else {
            s = natsConnection_Publish(n->nc, subj, n->payload, (int)plen);
        }
        if (s != NATS_OK) {
            snprintf(n->err_text, sizeof(n->err_text), "%s", natsStatus_GetText(s));
            return -EIO;
        }
        (*msgs)++;
        i = j;
    }
    return 0;
}

/* JetStream: waits for the acks of everything published, in short slices
 * so that the worker's chunks keep moving into the buffer. Returns 0 when
 * all came back, -ETIMEDOUT (the unacknowledged ones are dropped from
 * nats.c's list: the retry publishes them again), -ECANCELED when stopping. */
static int wait_acks(rf_fwd *f, fwd_nats *n)
{
    int64_t deadline = rf_clock_mono_ns() + f->cfg.timeout_ns;
    for (;;) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = ACK_POLL_MS;
        if (js_PublishAsyncComplete(n->js, &po) == NATS_OK)
            return 0;
        fwd_drain_ring(f);
        bool give_up = fwd_stopping(f) && (f->buf.type == RF_FWD_BUFFER_DISK ||
                                           rf_clock_mono_ns() >= f->shutdown_deadline);
        if (give_up || rf_clock_mono_ns() >= deadline) {
            natsMsgList pending;
            if (js_PublishAsyncGetPendingList(&pending, n->js) == NATS_OK)
                natsMsgList_Destroy(&pending);
            return give_up ? -ECANCELED : -ETIMEDOUT;
        }
    }
}

void fwd_nats_send_once(rf_fwd *f, char **lines, size_t *cap)
{
    fwd_nats *n = f->nats;
    rf_stats_set(&f->st[FS_NATS_CONN], (uint64_t)natsConnection_Status(n->nc));
    if (!n->stream_ready && ensure_stream(f, n)) {
        fwd_schedule_retry(f, rf_clock_mono_ns(), 0);
        return;
    }
    size_t len = 0;
    uint64_t events = 0;
    size_t cnt = fwd_buffer_peek(f, lines, cap, &len, &events);
    if (cnt == 0)
        return;
    fwd_buffer_mark_sent(f, cnt);
    uint64_t ok0 = atomic_load_explicit(&n->acks_ok, memory_order_relaxed);
    uint64_t err0 = atomic_load_explicit(&n->acks_err, memory_order_relaxed);
    uint64_t dup0 = atomic_load_explicit(&n->acks_dup, memory_order_relaxed);
    uint64_t msgs = 0;
    size_t off = 0;
    int rc = 0;
    for (size_t i = 0; i < cnt && !rc; i++) {
        const fwd_entry *e = &f->buf.q[(f->buf.q_head + i) % f->buf.q_cap];
        rc = publish_entry(f, n, e, *lines + off, &msgs);
        off += e->len;
    }
    rf_stats_set(&f->st[FS_NATS_PENDING], msgs);
    if (!rc && n->js)
        rc = wait_acks(f, n);
    else if (!rc)
        rc = natsConnection_FlushTimeout(n->nc, f->cfg.timeout_ns / RF_NS_PER_MS) == NATS_OK ? 0
                                                                                             : -EIO;
    rf_stats_set(&f->st[FS_NATS_PENDING], 0);
    rf_stats_set(&f->st[FS_NATS_CONN], (uint64_t)natsConnection_Status(n->nc));
    if (rc == -ECANCELED)
        return; /* stopping: the entries stay (disk) or are counted at shutdown (memory) */
    uint64_t ok = atomic_load_explicit(&n->acks_ok, memory_order_relaxed) - ok0;
    uint64_t bad = atomic_load_explicit(&n->acks_err, memory_order_relaxed) - err0;
    rf_stats_add(&f->st[FS_NATS_DUPLICATES],
                 atomic_load_explicit(&n->acks_dup, memory_order_relaxed) - dup0);
    if (!rc && n->js && (bad || ok < msgs)) {
        snprintf(n->err_text, sizeof(n->err_text), "%llu negative acks, JetStream error %d",
                 (unsigned long long)bad,
                 atomic_load_explicit(&n->last_ack_err, memory_order_relaxed));
        rc = -EIO;
    }
    if (!rc) {
        if (f->consecutive_failures >= f->cfg.breaker_failures)
            rf_log_info("forward", "sink %s: NATS accepts again", f->name);
        rf_stats_add(&f->st[FS_NATS_MSGS], msgs);
        fwd_buffer_remove(f, cnt, true);
        rf_stats_add(&f->st[FS_REQUESTS_OK], 1);
        f->attempt = 0;
        f->consecutive_failures = 0;
        f->next_attempt_mono = rf_clock_mono_ns();
        rf_stats_set(&f->st[FS_STATE], RF_FWD_UP);
        return;
    }
    if (f->consecutive_failures == 0)
        rf_log_warn("forward",
                    "sink %s: NATS publish of %llu events failed (%s); retrying with "
                    "backoff",
                    f->name, (unsigned long long)events,
                    rc == -ETIMEDOUT ? "no ack in time" : n->err_text);
    fwd_schedule_retry(f, rf_clock_mono_ns(), 0);
}
