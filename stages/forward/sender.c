/* The sender thread of a forwarding sink: takes chunks from the worker,
 * keeps them in the buffer, sends the oldest as one HTTP request with
 * libcurl (a multi handle, so that chunks keep moving into the buffer while
 * a request waits on the receiver), and retries with backoff. See forward.h
 * for the contract; docs/ARCHITECTURE.md ("Forwarding") for why libcurl. */
#include "stages/forward/forward_pvt.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "core/stats/stats.h"

#define DEF_MAX_SAMPLES 10000u
#define DEF_MAX_BYTES (1u << 20)
#define DEF_MAX_DELAY (200 * RF_NS_PER_MS)
#define DEF_TIMEOUT (10 * RF_NS_PER_S)
#define DEF_BACKOFF_BASE (100 * RF_NS_PER_MS)
#define DEF_BACKOFF_MAX (30 * RF_NS_PER_S)
#define DEF_BREAKER_FAILURES 5u
#define DEF_BREAKER_COOLDOWN (10 * RF_NS_PER_S)
#define DEF_MEMORY_BUFFER (64ull << 20)
#define DEF_DISK_BUFFER (1ull << 30)
#define DEF_SEGMENT (8ull << 20)
#define DEF_GRACE (2 * RF_NS_PER_S)
/* Longest wait between two looks at the worker's ring when nothing wakes
 * the sender (a missed wakeup costs at most this much latency). */
#define IDLE_POLL_MS 50
/* A Retry-After beyond this is capped: a receiver's typo must not park the
 * sink for a day. */
#define RETRY_AFTER_MAX (600 * RF_NS_PER_S)
/* influx_http's gzip level (libdeflate). Level 1 compresses the sink's
 * lines about 8.7:1 at 4.6 M lines per CPU-second, level 6 10.3:1 at 1.6 M
 * (bench/forward_bench.c, encode_influx_gzip): the sender's CPU is the
 * scarcer resource on the loopback or LAN links a forwarder mostly uses. */
#define GZIP_LEVEL 1

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *const drop_names[RF_FWD_DROP__COUNT] = {
    "rejected", "buffer_full", "shutdown", "string_unsupported", "corrupt", "io_error"};

const char *rf_fwd_drop_name(unsigned reason)
{
    return reason < RF_FWD_DROP__COUNT ? drop_names[reason] : "unknown";
}

const char *rf_fwd_state_name(uint32_t state)
{
    static const char *const n[] = {"up", "backing_off", "circuit_open"};
    return state < 3 ? n[state] : "unknown";
}

static uint64_t rng_next(uint64_t *x)
{
    /* splitmix64: jitter only decorrelates senders; it need not be secure. */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- worker side */

long rf_fwd_submit(rf_fwd *f, const char *p, uint32_t len, uint64_t *lines)
{
    uint32_t take = len;
    if (take > RF_FWD_CHUNK_BYTES) {
        const char *nl = memrchr(p, '\n', RF_FWD_CHUNK_BYTES);
        if (!nl)
            return -E2BIG;
        take = (uint32_t)(nl - p) + 1;
    }
    fwd_chunk *c;
    if (!rf_ring_dequeue(f->free_ring, &c, sizeof(c)))
        return 0; /* every chunk is with the sender: the lines wait in the sink */
    memcpy(c->data, p, take);
    c->len = take;
    uint32_t n = 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + take - q))); q++)
        n++;
    c->lines = n;
    c->wall_ns = rf_clock_wall_ns();
    /* Cannot fail: there are RF_FWD_CHUNKS chunks and the ring holds as many. */
    rf_ring_enqueue(f->full, &c, sizeof(c));
    /* W1: pairs with S1 (fence-fence): either the sender sees the chunk on
     * its re-check, or we see it sleeping and wake it. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&f->sleeping, memory_order_relaxed))
        curl_multi_wakeup(f->multi);
    *lines += n;
    return take;
}

/* ---------------------------------------------------------------- sender side */

static void drain_ring(rf_fwd *f)
{
    fwd_chunk *c = f->held;
    f->held = NULL;
    while (c || rf_ring_dequeue(f->full, &c, sizeof(c))) {
        if (!fwd_buffer_append(f, c)) {
            f->held = c; /* block: no room; the worker runs out of chunks */
            return;
        }
        rf_ring_enqueue(f->free_ring, &c, sizeof(c));
        c = NULL;
    }
}

/* The chunks the sender never buffered (held, or still in the ring) when it
 * stops: lost with the process, counted. */
static void drop_unbuffered(rf_fwd *f)
{
    fwd_chunk *c = f->held;
    f->held = NULL;
    while (c || rf_ring_dequeue(f->full, &c, sizeof(c))) {
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_SHUTDOWN], c->lines);
        rf_ring_enqueue(f->free_ring, &c, sizeof(c));
        c = NULL;
    }
}

static size_t on_body(char *ptr, size_t size, size_t n, void *ud)
{
    rf_fwd *f = ud;
    size_t len = size * n, room = sizeof(f->resp) - 1 - f->resp_len;
    size_t k = len < room ? len : room;
    memcpy(f->resp + f->resp_len, ptr, k);
    f->resp_len += k;
    f->resp[f->resp_len] = '\0';
    return len;
}

/* CURLOPT_PREREQFUNCTION: the connection is up (TLS handshake included)
 * and the request is about to go out on it. */
static int on_connected(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                        int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    rf_fwd *f = ud;
    fwd_buffer_mark_sent(f, f->mark_on_connect);
    return CURL_PREREQFUNC_OK;
}

static bool stopping(rf_fwd *f)
{
    /* Pairs with the release store in rf_fwd_free. */
    return atomic_load_explicit(&f->stop, memory_order_acquire);
}

/* Stopping, and no more sending: a disk buffer keeps everything for the
 * next start; a memory buffer sends on for the grace, but only while the
 * receiver answers (a reload frees the old sinks on the worker, which must
 * not wait out a backoff for a receiver that is down). */
static bool give_up(rf_fwd *f, int64_t now)
{
    return stopping(f) &&
           (f->buf.type == RF_FWD_BUFFER_DISK || now >= f->shutdown_deadline ||
            atomic_load_explicit(&f->st[FS_STATE], memory_order_relaxed) != RF_FWD_UP);
}

/* Runs one request to its end (or until shutdown gives up on it). Returns
 * the curl result; *status is the HTTP status (0 without an answer). */
static CURLcode perform(rf_fwd *f, const uint8_t *body, size_t len, long *status,
                        int64_t *retry_after_ns, bool *aborted)
{
    CURL *e = f->curl;
    f->resp_len = 0;
    f->resp[0] = '\0';
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_multi_add_handle(f->multi, e);
    CURLcode result = CURLE_OK;
    *aborted = false;
    for (;;) {
        int running = 0;
        curl_multi_perform(f->multi, &running);
        if (!running)
            break;
        drain_ring(f);
        if (give_up(f, rf_clock_mono_ns())) {
            *aborted = true;
            break;
        }
        curl_multi_poll(f->multi, NULL, 0, IDLE_POLL_MS, NULL);
    }
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(f->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            result = m->data.result;
    curl_multi_remove_handle(f->multi, e);
    *status = 0;
    *retry_after_ns = 0;
    if (*aborted)
        return CURLE_ABORTED_BY_CALLBACK;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_off_t ra = 0;
    if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        *retry_after_ns = ra * RF_NS_PER_S > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : ra * RF_NS_PER_S;
    return result;
}

static void schedule_retry(rf_fwd *f, int64_t now, int64_t retry_after)
{
    f->consecutive_failures++;
    uint32_t shift = f->attempt < 40 ? f->attempt : 40;
    int64_t ceiling = f->cfg.backoff_base_ns << shift;
    if (ceiling > f->cfg.backoff_max_ns || ceiling <= 0)
        ceiling = f->cfg.backoff_max_ns;
    if (f->attempt < 62)
        f->attempt++;
    int64_t delay = (int64_t)(rng_next(&f->rng) % (uint64_t)(ceiling + 1));
    if (retry_after > 0)
        delay = retry_after; /* the receiver said when: ask no sooner, no later */
    uint32_t state = RF_FWD_BACKING_OFF;
    if (f->consecutive_failures >= f->cfg.breaker_failures) {
        if (delay < f->cfg.breaker_cooldown_ns)
            delay = f->cfg.breaker_cooldown_ns;
        if (atomic_load_explicit(&f->st[FS_STATE], memory_order_relaxed) != RF_FWD_CIRCUIT_OPEN)
            rf_log_warn("forward",
                        "sink %s: circuit open after %u failed requests; next "
                        "attempt in %lld ms",
                        f->name, f->consecutive_failures, (long long)(delay / RF_NS_PER_MS));
        state = RF_FWD_CIRCUIT_OPEN;
    }
    f->next_attempt_mono = now + delay;
    rf_stats_set(&f->st[FS_STATE], state);
    rf_stats_add(&f->st[FS_RETRIES], 1);
}

bool fwd_stopping(rf_fwd *f)
{
    return stopping(f);
}

void fwd_drain_ring(rf_fwd *f)
{
    drain_ring(f);
}

void fwd_schedule_retry(rf_fwd *f, int64_t now, int64_t retry_after_ns)
{
    schedule_retry(f, now, retry_after_ns);
}

/* Sends the oldest entries once and settles them: acknowledged, rejected,
 * or kept for a retry. */
static void send_once(rf_fwd *f, char **lines, size_t *cap)
{
    size_t len = 0;
    uint64_t events = 0;
    size_t n = fwd_buffer_peek(f, lines, cap, &len, &events);
    if (n == 0)
        return;
    const uint8_t *body = (const uint8_t *)*lines;
    size_t body_len = len;
    int rc = 0;
    if (f->cfg.protocol == RF_FWD_PROM_REMOTE_WRITE) {
        uint64_t samples = 0, unsupported = 0;
        rc = rf_fwd_body_prom(f->body, *lines, len, &samples, &unsupported);
        body = rf_fwd_body_data(f->body, &body_len);
        /* Counted per attempt that gets this far once: a retry re-encodes
         * the same lines, so count on the first attempt only. */
        if (!rc && f->attempt == 0)
            rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_UNSUPPORTED], unsupported);
    } else if (f->cfg.gzip) {
        rc = rf_fwd_body_gzip(f->body, *lines, len, GZIP_LEVEL);
        body = rf_fwd_body_data(f->body, &body_len);
    }
    if (rc) {
        f->next_attempt_mono = rf_clock_mono_ns() + f->cfg.backoff_base_ns;
        return; /* out of memory: try again later, nothing is lost */
    }
    /* The disk buffer's "sent" mark is written once libcurl has a
     * connection for the request (on_connected), not before: a kill
     * while connecting, or a refused connect, leaves no mark, so a restart
     * counts only requests that could have reached the receiver as
     * possible duplicates (redelivered). */
    f->mark_on_connect = n;
    long status = 0;
    int64_t retry_after = 0;
    bool aborted = false;
    CURLcode res = perform(f, body, body_len, &status, &retry_after, &aborted);
    f->mark_on_connect = 0;
    if (aborted)
        return;
    int64_t now = rf_clock_mono_ns();
    rf_stats_set(&f->st[FS_LAST_STATUS], (uint64_t)status);
    if (res == CURLE_OK && status >= 200 && status < 300) {
        if (f->consecutive_failures >= f->cfg.breaker_failures)
            rf_log_info("forward", "sink %s: receiver answers again (HTTP %ld)", f->name, status);
        fwd_buffer_remove(f, n, true);
        rf_stats_add(&f->st[FS_REQUESTS_OK], 1);
        f->attempt = 0;
        f->consecutive_failures = 0;
        f->next_attempt_mono = now;
        rf_stats_set(&f->st[FS_STATE], RF_FWD_UP);
        return;
    }
    if (res == CURLE_OK && status != 408 && status != 429 && status < 500) {
        rf_log_warn("forward", "sink %s: receiver rejected %llu events with HTTP %ld: %.200s",
                    f->name, (unsigned long long)events, status, f->resp);
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_REJECTED], events);
        fwd_buffer_remove(f, n, false);
        f->attempt = 0;
        f->consecutive_failures = 0;
        rf_stats_set(&f->st[FS_STATE], RF_FWD_UP);
        return;
    }
    /* No connection was made: the receiver never saw these events (and no
     * sent mark was written for them). */
    if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
        res == CURLE_COULDNT_RESOLVE_PROXY || res == CURLE_SSL_CONNECT_ERROR)
        rf_stats_add(&f->st[FS_RETRIED_UNSENT], events);
    if (f->consecutive_failures == 0)
        rf_log_warn("forward", "sink %s: request failed (%s, HTTP %ld); retrying with backoff",
                    f->name, res == CURLE_OK ? "receiver busy or failing" : curl_easy_strerror(res),
                    status);
    schedule_retry(f, now, retry_after);
}

/* Disk: takes the folder's lock and recovers, waiting while a previous
 * sender (a reload's old sink) still holds it. False when stopped first. */
static bool open_disk(rf_fwd *f)
{
    bool logged = false;
    while (!f->buf.opened) {
        rf_err err = {0};
        int rc = fwd_disk_open(f, &err);
        if (rc == 0)
            break;
        if (!logged)
            rf_log_warn("forward", "sink %s: disk buffer %s: %s; waiting", f->name, f->buf.dir,
                        rc == -EWOULDBLOCK ? "in use by another sender" : err.msg);
        logged = true;
        if (stopping(f))
            return false;
        curl_multi_poll(f->multi, NULL, 0, 20, NULL);
    }
    if (logged)
        rf_log_info("forward", "sink %s: disk buffer %s ready", f->name, f->buf.dir);
    return true;
}

static void *sender_main(void *arg)
{
    rf_fwd *f = arg;
    char *lines = NULL;
    size_t cap = 0;
    if (!open_disk(f)) {
        /* Stopped before the folder was ours: what the worker handed over
         * is lost with the process, counted. */
        drop_unbuffered(f);
        return NULL;
    }
    for (;;) {
        bool stop = stopping(f); /* before draining: chunks submitted before stop are seen */
        drain_ring(f);
        int64_t now = rf_clock_mono_ns();
        if (stop && (f->buf.q_len == 0 || give_up(f, now)))
            break;
        if (f->buf.q_len && now >= f->next_attempt_mono) {
            if (f->cfg.protocol == RF_FWD_NATS)
                fwd_nats_send_once(f, &lines, &cap);
            else
                send_once(f, &lines, &cap);
            continue;
        }
        int64_t wait_ms = IDLE_POLL_MS;
        if (f->buf.q_len && (f->next_attempt_mono - now) / RF_NS_PER_MS < wait_ms)
            wait_ms = (f->next_attempt_mono - now) / RF_NS_PER_MS + 1;
        atomic_store_explicit(&f->sleeping, true, memory_order_relaxed);
        /* S1: pairs with W1 in rf_fwd_submit. */
        atomic_thread_fence(memory_order_seq_cst);
        /* A held chunk waits for an ack, not for the worker. */
        if ((rf_ring_count(f->full) == 0 || f->held) && !stopping(f))
            curl_multi_poll(f->multi, NULL, 0, (int)wait_ms, NULL);
        atomic_store_explicit(&f->sleeping, false, memory_order_relaxed);
    }
    if (f->buf.type == RF_FWD_BUFFER_MEMORY && f->buf.q_len) {
        uint64_t lost = 0;
        for (size_t i = 0; i < f->buf.q_len; i++)
            lost += f->buf.q[(f->buf.q_head + i) % f->buf.q_cap].events;
        rf_stats_add(&f->st[FS_DROP0 + RF_FWD_DROP_SHUTDOWN], lost);
        rf_log_warn("forward", "sink %s: %llu events not delivered at shutdown (memory buffer)",
                    f->name, (unsigned long long)lost);
        fwd_buffer_remove(f, f->buf.q_len, false);
    }
    drop_unbuffered(f);
    free(lines);
    return NULL;
}

/* ---------------------------------------------------------------- lifetime */

static int set_defaults(rf_fwd_config *c, const char *name, rf_err *err)
{
    if (c->protocol == RF_FWD_NATS && !c->nats.n_servers)
        return rf_err_set(err, EINVAL, "sink %s: nats needs at least one server", name);
    if (c->protocol != RF_FWD_NATS &&
        (!c->url || (strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8))))
        return rf_err_set(err, EINVAL, "sink %s: url must start with http:// or https://", name);
    if (!c->max_samples)
        c->max_samples = DEF_MAX_SAMPLES;
    if (!c->max_bytes)
        c->max_bytes = DEF_MAX_BYTES;
    if (c->max_delay_ns <= 0)
        c->max_delay_ns = DEF_MAX_DELAY;
    if (c->timeout_ns <= 0)
        c->timeout_ns = DEF_TIMEOUT;
    if (c->backoff_base_ns <= 0)
        c->backoff_base_ns = DEF_BACKOFF_BASE;
    if (c->backoff_max_ns <= 0)
        c->backoff_max_ns = DEF_BACKOFF_MAX;
    if (c->backoff_max_ns < c->backoff_base_ns)
        return rf_err_set(err, EINVAL, "sink %s: backoff max is below backoff base", name);
    if (!c->breaker_failures)
        c->breaker_failures = DEF_BREAKER_FAILURES;
    if (c->breaker_cooldown_ns <= 0)
        c->breaker_cooldown_ns = DEF_BREAKER_COOLDOWN;
    if (!c->buffer_max_bytes)
        c->buffer_max_bytes = c->buffer == RF_FWD_BUFFER_DISK ? DEF_DISK_BUFFER : DEF_MEMORY_BUFFER;
    if (!c->segment_bytes)
        c->segment_bytes = DEF_SEGMENT;
    if (c->segment_bytes > c->buffer_max_bytes)
        c->segment_bytes = c->buffer_max_bytes;
    if (c->shutdown_grace_ns <= 0)
        c->shutdown_grace_ns = DEF_GRACE;
    return 0;
}

static int setup_curl(rf_fwd *f, rf_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    f->curl = curl_easy_init();
    f->multi = curl_multi_init();
    if (!f->curl || !f->multi)
        return rf_err_set(err, ENOMEM, "sink %s: cannot create an HTTP client", f->name);
    const rf_fwd_config *c = &f->cfg;
    if (c->protocol == RF_FWD_NATS)
        return 0; /* the multi handle only serves as the sender's wakeup */
    struct curl_slist *h = NULL;
    bool prom = c->protocol == RF_FWD_PROM_REMOTE_WRITE;
    char auth[1024];
    const char *fixed[] = {
        prom ? "Content-Type: application/x-protobuf" : "Content-Type: text/plain; charset=utf-8",
        prom ? "Content-Encoding: snappy" : (c->gzip ? "Content-Encoding: gzip" : NULL),
        prom ? "X-Prometheus-Remote-Write-Version: 0.1.0" : NULL,
        "Expect:", /* no 100-continue round trip before each body */
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (fixed[i])
            h = curl_slist_append(h, fixed[i]);
    for (uint32_t i = 0; i < c->n_headers; i++)
        h = curl_slist_append(h, c->headers[i]);
    if (c->auth == RF_FWD_AUTH_TOKEN || c->auth == RF_FWD_AUTH_BEARER) {
        snprintf(auth, sizeof(auth), "Authorization: %s %s",
                 c->auth == RF_FWD_AUTH_TOKEN ? "Token" : "Bearer", c->token ? c->token : "");
        h = curl_slist_append(h, auth);
    }
    if (!h)
        return rf_err_set(err, ENOMEM, "sink %s: out of memory", f->name);
    f->hdrs = h;
    CURL *e = f->curl;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ringflow");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout_ns / RF_NS_PER_MS));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->timeout_ns / RF_NS_PER_MS));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_connected);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, f);
    if (c->auth == RF_FWD_AUTH_BASIC) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, c->username ? c->username : "");
        curl_easy_setopt(e, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    return 0;
}

static uint64_t oldest_age_ns(void *ctx)
{
    rf_fwd *f = ctx;
    int64_t t = (int64_t)atomic_load_explicit(&f->st[FS_OLDEST_WALL], memory_order_relaxed);
    int64_t now = rf_clock_wall_ns();
    return t && now > t ? (uint64_t)(now - t) : 0;
}

/* The sender's counters on /metrics. Registration failures (a full
 * registry) only cost the metric, never the sink. */
static void register_metrics(rf_fwd *f)
{
    static const struct {
        int idx;
        bool gauge;
        const char *name, *help;
    } m[] = {
        {FS_QUEUED_EVENTS, true, "ringflow_forward_queued_events",
         "Events in the forward buffer, not yet acknowledged (in flight included)."},
        {FS_QUEUED_BYTES, true, "ringflow_forward_queued_bytes",
         "Line bytes in the forward buffer, not yet acknowledged."},
        {FS_IN_FLIGHT, true, "ringflow_forward_in_flight_events",
         "Events of the request in flight."},
        {FS_ACKED_EVENTS, false, "ringflow_forward_acked_events",
         "Events the receiver acknowledged."},
        {FS_RETRIES, false, "ringflow_forward_retries", "Requests that failed and are retried."},
        {FS_REDELIVERED, false, "ringflow_forward_redelivered_events",
         "Events sent again after a restart whose earlier request may have reached the receiver "
         "(the only possible duplicates)."},
        {FS_RETRIED_UNSENT, false, "ringflow_forward_retried_unsent_events",
         "Events of requests that never reached the receiver (no connection), sent again."},
        {FS_DISK_WRITTEN, false, "ringflow_forward_disk_written_bytes",
         "Bytes the disk buffer wrote."},
        {FS_STATE, true, "ringflow_forward_state",
         "Receiver state: 0 up, 1 backing off, 2 circuit open."},
    };
    char labels[160];
    snprintf(labels, sizeof(labels), "sink=\"%s\",worker=\"%u\"", f->name, f->cfg.instance);
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        int id = m[i].gauge
                     ? rf_stats_register_gauge(m[i].name, m[i].help, labels, &f->st[m[i].idx])
                     : rf_stats_register_counter(m[i].name, m[i].help, labels, &f->st[m[i].idx]);
        if (id >= 0)
            f->metric_ids[f->n_metrics++] = id;
    }
    for (int r = 0; r < RF_FWD_DROP__COUNT; r++) {
        char rl[200];
        snprintf(rl, sizeof(rl), "%s,reason=\"%s\"", labels, drop_names[r]);
        int id = rf_stats_register_counter("ringflow_forward_dropped_events",
                                           "Events the forwarder dropped, by reason.", rl,
                                           &f->st[FS_DROP0 + r]);
        if (id >= 0)
            f->metric_ids[f->n_metrics++] = id;
    }
    if (f->cfg.protocol == RF_FWD_NATS) {
        static const struct {
            int idx;
            bool gauge;
            const char *name, *help;
        } nm[] = {
            {FS_NATS_MSGS, false, "ringflow_nats_published_messages",
             "NATS messages published and, for JetStream, acknowledged."},
            {FS_NATS_DUPLICATES, false, "ringflow_nats_duplicate_acks",
             "JetStream acks saying the message was a duplicate (a retry already stored)."},
            {FS_NATS_PENDING, true, "ringflow_nats_pending_acks",
             "JetStream publishes awaiting their ack."},
            {FS_NATS_CONN, true, "ringflow_nats_connection",
             "Connection: 0 disconnected, 1 connecting, 2 connected, 3 closed, 4 reconnecting."},
        };
        for (size_t i = 0; i < sizeof(nm) / sizeof(nm[0]); i++) {
            int id =
                nm[i].gauge
                    ? rf_stats_register_gauge(nm[i].name, nm[i].help, labels, &f->st[nm[i].idx])
                    : rf_stats_register_counter(nm[i].name, nm[i].help, labels, &f->st[nm[i].idx]);
            if (id >= 0)
                f->metric_ids[f->n_metrics++] = id;
        }
    }
    int id = rf_stats_register_fn_ns(RF_METRIC_GAUGE, "ringflow_forward_oldest_unsent_seconds",
                                     "Age of the oldest unacknowledged event in the buffer.",
                                     labels, oldest_age_ns, f);
    if (id >= 0)
        f->metric_ids[f->n_metrics++] = id;
}

int rf_fwd_new(const rf_fwd_config *cfg, const char *name, rf_fwd **out, rf_err *err)
{
    rf_fwd *f = calloc(1, sizeof(*f));
    if (!f)
        return rf_err_set(err, ENOMEM, "sink %s: out of memory", name);
    f->cfg = *cfg;
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->buf.wfd = -1;
    f->buf.lockfd = -1;
    int rc = set_defaults(&f->cfg, f->name, err);
    if (rc)
        goto fail;
    f->rng = cfg->jitter_seed ? cfg->jitter_seed : (uint64_t)rf_clock_mono_ns() ^ (uintptr_t)f;
    f->chunks = calloc(RF_FWD_CHUNKS, sizeof(fwd_chunk));
    f->full = rf_ring_create(RF_FWD_CHUNKS, sizeof(fwd_chunk *));
    f->free_ring = rf_ring_create(RF_FWD_CHUNKS, sizeof(fwd_chunk *));
    if (!f->chunks || !f->full || !f->free_ring) {
        rc = rf_err_set(err, ENOMEM, "sink %s: out of memory for chunks", f->name);
        goto fail;
    }
    /* Before the thread exists: this thread stands in for the sender as the
     * free ring's producer (pthread_create orders it before the sender). */
    for (uint32_t i = 0; i < RF_FWD_CHUNKS; i++) {
        fwd_chunk *c = &f->chunks[i];
        rf_ring_enqueue(f->free_ring, &c, sizeof(c));
    }
    f->body = rf_fwd_body_new();
    if (!f->body) {
        rc = rf_err_set(err, ENOMEM, "sink %s: out of memory for the request body", f->name);
        goto fail;
    }
    if ((rc = setup_curl(f, err)) || (rc = fwd_buffer_open(f, err)) ||
        (f->cfg.protocol == RF_FWD_NATS && (rc = fwd_nats_open(f, err))))
        goto fail;
    if ((rc = -pthread_create(&f->thread, NULL, sender_main, f))) {
        rf_err_set(err, -rc, "sink %s: cannot start the sender thread", f->name);
        goto fail;
    }
    f->started = true;
    register_metrics(f);
    *out = f;
    return 0;
fail:
    rf_fwd_free(f);
    return rc < 0 ? rc : -rc;
}

void rf_fwd_free(rf_fwd *f)
{
    if (!f)
        return;
    for (uint32_t i = 0; i < f->n_metrics; i++)
        rf_stats_unregister(f->metric_ids[i]);
    if (f->started) {
        f->shutdown_deadline = rf_clock_mono_ns() + f->cfg.shutdown_grace_ns;
        /* Pairs with the acquire in stopping(); the deadline is published with it. */
        atomic_store_explicit(&f->stop, true, memory_order_release);
        curl_multi_wakeup(f->multi);
        pthread_join(f->thread, NULL);
    }
    fwd_nats_close(f);
    fwd_buffer_close(f);
    if (f->curl)
        curl_easy_cleanup(f->curl);
    if (f->multi)
        curl_multi_cleanup(f->multi);
    curl_slist_free_all(f->hdrs);
    rf_fwd_body_free(f->body);
    rf_ring_destroy(f->full);
    rf_ring_destroy(f->free_ring);
    free(f->chunks);
    free(f);
}

void rf_fwd_stats_read(const rf_fwd *f, rf_fwd_stats *o)
{
    memset(o, 0, sizeof(*o));
#define LD(i) atomic_load_explicit(&((rf_fwd *)f)->st[i], memory_order_relaxed)
    o->queued_events = LD(FS_QUEUED_EVENTS);
    o->queued_bytes = LD(FS_QUEUED_BYTES);
    o->in_flight_events = LD(FS_IN_FLIGHT);
    o->acked_events = LD(FS_ACKED_EVENTS);
    o->acked_bytes = LD(FS_ACKED_BYTES);
    o->requests_ok = LD(FS_REQUESTS_OK);
    o->retries = LD(FS_RETRIES);
    for (int i = 0; i < RF_FWD_DROP__COUNT; i++)
        o->dropped[i] = LD(FS_DROP0 + i);
    o->redelivered = LD(FS_REDELIVERED);
    o->retried_unsent = LD(FS_RETRIED_UNSENT);
    o->disk_bytes_written = LD(FS_DISK_WRITTEN);
    o->recovered_events = LD(FS_RECOVERED);
    o->corrupt_bytes = LD(FS_CORRUPT_BYTES);
    o->oldest_unsent_wall_ns = (int64_t)LD(FS_OLDEST_WALL);
    o->state = (uint32_t)LD(FS_STATE);
    o->last_status = (uint32_t)LD(FS_LAST_STATUS);
    o->nats_msgs = LD(FS_NATS_MSGS);
    o->nats_duplicates = LD(FS_NATS_DUPLICATES);
    o->nats_pending_acks = LD(FS_NATS_PENDING);
    o->nats_conn = (uint32_t)LD(FS_NATS_CONN);
#undef LD
}

uint64_t rf_fwd_memory_bound(const rf_fwd_config *cfg)
{
    uint64_t b = sizeof(rf_fwd) + (uint64_t)RF_FWD_CHUNKS * sizeof(fwd_chunk) +
                 2 * rf_ring_memory_bound(RF_FWD_CHUNKS, sizeof(void *));
    uint64_t req = cfg->max_bytes ? cfg->max_bytes : DEF_MAX_BYTES;
    b += 3 * (req + RF_FWD_CHUNK_BYTES); /* lines, encoded body, protobuf */
    if (cfg->buffer == RF_FWD_BUFFER_MEMORY)
        b += cfg->buffer_max_bytes ? cfg->buffer_max_bytes : DEF_MEMORY_BUFFER;
    if (cfg->protocol == RF_FWD_NATS) {
        /* nats.c: a copy of each unacknowledged message (at most a batch,
         * max_bytes of lines) and its reconnect buffer (8 MiB by default). */
        b += req + (8ull << 20);
    }
    return b;
}
