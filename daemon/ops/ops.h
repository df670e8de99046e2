/* Ops: the stats socket, the admin socket and the Prometheus listener of
 * ringflowd, and the `show` provider interface other modules report through.
 *
 * Everything here runs on the control thread. Nothing blocks: the sockets are
 * non-blocking and multiplexed on one epoll set that the daemon's control loop
 * polls next to its signalfd (rf_ops_server_fd). Workers are never called:
 * their numbers are read through single-writer counters (core/stats).
 *
 * Line protocol (HAProxy runtime API style), on both Unix sockets:
 *   - one command per line ('\n', an optional '\r' is ignored, at most
 *     RF_OPS_LINE_MAX bytes; a longer line is refused and the client closed);
 *     partial lines are buffered until complete.
 *   - every reply ends with an empty line; a reply never contains one, so a
 *     client reads until "\n\n".
 *   - `show X` prints text; `show X json` prints one JSON object on one line
 *     whose keys are the section names (`{"workers":[{...},...]}`).
 *     `show stats json` holds every section.
 *   - an unknown or malformed command answers "error: ..." and the connection
 *     stays usable.
 *   - `reload`, `shutdown`, `set log level LVL` and `clear counters` need the
 *     admin socket (mode 0600), or, on the ops socket (mode 0660), a peer
 *     whose uid (SO_PEERCRED) is the daemon's own. Others get "error:
 *     permission denied".
 *
 * Slow clients: each client has a bounded output buffer (stats.client_buffer).
 * A reply is always accepted when nothing is pending; when output is already
 * pending and the reply would pass the bound, the client is disconnected and
 * counted (ringflow_ops_clients_dropped_slow_total). So a client that never
 * reads costs at most the bound, and everybody else is served meanwhile.
 *
 * Prometheus (HTTP/1.1, Connection: close): GET /metrics (text format 0.0.4),
 * GET /health (200 "ok" when every registered rf_component is running; 503
 * naming each one that is not, with its state and reason), 404 otherwise.
 * Requests are bounded (RF_OPS_HTTP_REQUEST_MAX); the whole exchange must end
 * within stats.prometheus.timeout, or the connection is closed and counted.
 *
 * Nobody else's crowd locks an operator out. Each socket has its own budget
 * of clients (RF_OPS_MAX_*_CLIENTS), and when one is full:
 *   - admin socket (0600: only its owner and root reach it): the newcomer
 *     takes the slot of the client that has been quiet longest;
 *   - stats socket (0660) and HTTP: a newcomer of the daemon's uid or root
 *     (an operator: SO_PEERCRED, and for HTTP from loopback the uid the
 *     kernel's socket table gives the peer's socket) takes the slot of the
 *     quietest client of any other user; on HTTP, anyone else takes the slot
 *     of the quietest other non-operator client that has not sent a whole
 *     request and has been connected for at least 100 ms; else refused. An
 *     operator's client is never pushed out by someone else's.
 * Every eviction and refusal is counted (ringflow_ops_clients_evicted_total,
 * ringflow_ops_clients_refused_total). Idle clients do not keep their
 * slots: an HTTP client that sends nothing for stats.prometheus.idle_timeout
 * (1 s) before its request is complete is closed
 * (ringflow_http_idle_closed_total), and a stats or admin client that
 * neither sends nor takes any reply for stats.client_idle_timeout (60 s) is
 * closed (ringflow_ops_clients_idle_closed_total).
 */
#ifndef RF_DAEMON_OPS_H
#define RF_DAEMON_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config/config.h"
#include "core/error/error.h"
#include "core/auth/auth.h"
#include "core/tls/tls.h"
#include "core/stats/stats.h"

typedef struct rf_engine rf_engine;

#define RF_OPS_SUN_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path), with the NUL */
#define RF_OPS_LINE_MAX 1024
/* Each socket has a budget of its own, so that a crowd on one (the HTTP
 * port, open to every local user) never takes the others' slots. */
#define RF_OPS_MAX_STATS_CLIENTS 64
#define RF_OPS_MAX_ADMIN_CLIENTS 8
#define RF_OPS_MAX_HTTP_CLIENTS 32
#define RF_OPS_MAX_CLIENTS                                                                         \
    (RF_OPS_MAX_STATS_CLIENTS + RF_OPS_MAX_ADMIN_CLIENTS + RF_OPS_MAX_HTTP_CLIENTS)
#define RF_OPS_HTTP_REQUEST_MAX 8192

/* ---- configuration: the `stats:` section --------------------------------- */

typedef struct rf_ops_config {
    char socket[RF_OPS_SUN_PATH_MAX];
    char admin_socket[RF_OPS_SUN_PATH_MAX];
    bool prometheus_enabled;
    char prometheus_listen[64]; /* "HOST:PORT", HOST an IPv4 address; port 0 = any */
    uint64_t client_buffer;     /* bytes of pending output per client */
    uint64_t http_timeout_ns;   /* an HTTP exchange must end within this */
    /* An HTTP client that sends nothing for this long before its request
     * head is complete is closed (stats.prometheus.idle_timeout). */
    uint64_t http_idle_timeout_ns;
    /* A stats or admin socket client that neither sends nor takes any of
     * its reply for this long is closed (stats.client_idle_timeout). */
    uint64_t client_idle_timeout_ns;
    /* stats.prometheus.tls and .auth (core/tls, core/auth): /metrics and
     * /health over TLS, /metrics behind credentials (/health stays open for
     * liveness probes). Files re-read at each reload; turning either on or
     * off takes a restart. */
    rf_tls_config tls;
    rf_auth_config auth;
} rf_ops_config;

/* Defaults, with the sockets under run_dir. */
void rf_ops_config_defaults(rf_ops_config *cfg, const char *run_dir);
/* Reads `stats:` of root into *cfg (all or nothing). A socket path that does
 * not fit sun_path is an error naming the limit. */
int rf_ops_config_parse(const rf_cfg_node *root, const char *run_dir, rf_ops_config *cfg,
                        rf_err *err);

/* ---- show providers --------------------------------------------------------- */

/* A writer renders sections as text or as JSON; providers call the same
 * functions either way. A section is a key/value object or a table. */
typedef struct rf_ops_writer rf_ops_writer;

bool rf_ops_writer_json(const rf_ops_writer *w);

void rf_ops_obj_begin(rf_ops_writer *w, const char *section);
void rf_ops_kv_str(rf_ops_writer *w, const char *key, const char *value);
void rf_ops_kv_u64(rf_ops_writer *w, const char *key, uint64_t value);
void rf_ops_kv_i64(rf_ops_writer *w, const char *key, int64_t value);
void rf_ops_kv_f64(rf_ops_writer *w, const char *key, double value, int decimals);
void rf_ops_obj_end(rf_ops_writer *w);

/* A table of ncols columns (names are JSON keys and text headers); cells are
 * given row by row, left to right, a row ends after ncols cells. */
void rf_ops_table_begin(rf_ops_writer *w, const char *section, const char *const *cols,
                        unsigned ncols);
/* rf_ops_table_begin with ncols counted from cols itself, so the count
 * cannot drift from the column list. cols must be an array: a pointer
 * (whose size says nothing of the list) does not compile. */
#define RF_OPS_TABLE_BEGIN(w, section, cols)                                                       \
    rf_ops_table_begin((w), (section), (cols), RF_OPS_COLS_COUNT(cols))
#define RF_OPS_COLS_COUNT(cols)                                                                    \
    ((unsigned)(sizeof(cols) / sizeof((cols)[0]) +                                                 \
                0 * sizeof(struct {                                                                \
                    _Static_assert(                                                                \
                        !__builtin_types_compatible_p(__typeof__(cols), __typeof__(&(cols)[0])),   \
                        "the columns must be an array, not a pointer");                            \
                    int array;                                                                     \
                })))
void rf_ops_cell_str(rf_ops_writer *w, const char *value);
void rf_ops_cell_u64(rf_ops_writer *w, uint64_t value);
/* n u64 cells in turn: what most of a row is. RF_OPS_CELLS_U64(w, a, b, c)
 * writes a, b and c, each converted to uint64_t as rf_ops_cell_u64 would. */
void rf_ops_cells_u64(rf_ops_writer *w, const uint64_t *values, unsigned n);
#define RF_OPS_CELLS_U64(w, ...)                                                                   \
    rf_ops_cells_u64((w), (const uint64_t[]){__VA_ARGS__},                                         \
                     (unsigned)(sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)))
void rf_ops_cell_i64(rf_ops_writer *w, int64_t value);
void rf_ops_cell_f64(rf_ops_writer *w, double value, int decimals);
void rf_ops_table_end(rf_ops_writer *w);

/* "no data: <what>" (text) / {"no_data":"<what>"} (JSON) for a section. */
void rf_ops_no_data(rf_ops_writer *w, const char *section, const char *what);

/* The `dpdk_queues` table (daemon/ops/views/show_dpdk.c): every show that lists the
 * DPDK queues writes it through this, so it has one schema under its name.
 * Nothing when d is NULL or has no queue. */
struct rf_dpdk;
void rf_ops_dpdk_queues_table(rf_ops_writer *w, struct rf_dpdk *d);

/* Writes the sections of `show NAME [ARGS]`. args is what follows NAME (""
 * when nothing; never containing the trailing "json"). Returns 0, or a
 * negative errno with a one-line message in err (e.g. bad arguments). */
typedef int (*rf_ops_show_fn)(rf_ops_writer *w, const char *args, void *ctx, rf_err *err);

/* Wiring a provider (control thread, e.g. after rf_engine_start):
 *
 *     static int show_listeners(rf_ops_writer *w, const char *args, void *ctx, rf_err *err)
 *     {
 *         if (*args)
 *             return rf_err_set(err, EINVAL, "'show listeners' takes no arguments");
 *         static const char *const cols[] = {"name", "protocol", "events_per_s", "kernel_drops"};
 *         RF_OPS_TABLE_BEGIN(w, "listeners", cols);
 *         for (each listener l)                      (read its single-writer counters)
 *             rf_ops_cell_str(w, l->name), rf_ops_cell_str(w, ...), rf_ops_cell_f64(w, r, 1),
 *             rf_ops_cell_u64(w, drops);
 *         rf_ops_table_end(w);
 *         return 0;
 *     }
 *     rf_ops_register_show("listeners", NULL, show_listeners, engine);
 *
 * and rf_ops_unregister_show("listeners") before what ctx points to goes
 * away. Column names are the JSON keys: keep them stable, snake_case, with
 * the unit in the name (_per_s, _bytes, _us). `ringflow top` shows every
 * *_per_s and dropped* column of listeners and storage rows by itself.
 *
 * Registers the provider of `show NAME` (control thread). The names the
 * protocol documents (listeners, errors, stages, storage, series, latency,
 * ...) exist before anyone provides them and answer "no data: <component>
 * not running" until then. Returns 0, -EEXIST (already provided), -ENOSPC,
 * -EINVAL (bad name). */
int rf_ops_register_show(const char *name, const char *help, rf_ops_show_fn fn, void *ctx);
void rf_ops_unregister_show(const char *name);

/* Renders `show NAME ARGS` into out exactly as the socket would (without the
 * final empty line). For tests and for the daemon's own use. Returns 0 or a
 * negative errno with err filled. */
int rf_ops_show(const char *name, const char *args, bool json, rf_strbuf *out, rf_err *err);

/* ---- the engine's numbers (workers, rings, components, process) ------------ */

/* Registers the `info`, `workers`, `rings` providers and the engine metrics.
 * engine may be NULL (then workers and rings have no data). source is the
 * configuration file shown by `show info`. */
int rf_ops_engine_attach(rf_engine *engine, const char *source, rf_err *err);
void rf_ops_engine_detach(void);
/* Samples counters for rates; call about once a second (control thread). */
void rf_ops_engine_sample(int64_t now_mono_ns);
/* `clear counters` for the engine view (reader-side baselines). */
void rf_ops_engine_clear(void);

/* ---- the server --------------------------------------------------------- */

typedef struct rf_ops_server rf_ops_server;

typedef struct rf_ops_hooks {
    /* `reload`: validate and apply; write the outcome sentence into msg.
     * Returns 0 applied, 1 applied in part, negative refused. */
    int (*reload)(void *ctx, char *msg, size_t msg_size);
    /* `shutdown`: start the same drain as SIGTERM (return at once). */
    void (*shutdown)(void *ctx);
    /* `record start PATH [max_bytes SIZE] [max_files N]` (start true) and
     * `record stop`: the words after start/stop in args. Writes the outcome
     * sentence into msg; returns 0 done, negative refused. NULL: absent. */
    int (*record)(void *ctx, bool start, const char *const *args, unsigned n_args, char *msg,
                  size_t msg_size);
    void *ctx;
    /* uid whose peers may run admin commands on the ops socket; the daemon
     * passes its effective uid (tests pass another to check refusal). */
    uid_t owner_uid;
} rf_ops_hooks;

typedef struct rf_ops_server_stats {
    uint64_t clients;     /* connected now */
    uint64_t connections; /* accepted since start */
    uint64_t commands;
    uint64_t command_errors; /* unknown or failed commands */
    uint64_t denied;         /* admin commands refused */
    uint64_t dropped_slow;   /* clients disconnected with a full output buffer */
    uint64_t refused_full;   /* connections refused: the socket's budget reached */
    uint64_t evicted;        /* clients closed to make room (see above) */
    uint64_t http_requests;
    uint64_t http_timeouts;
    uint64_t http_idle_closed; /* HTTP clients closed for sending nothing */
    uint64_t idle_closed;      /* stats/admin socket clients closed for idleness */
    /* /metrics refusals (ringflow_ops_http_rejects{reason}), by
     * rf_ops_http_reject_name: tls_handshake_failed, client_cert_missing,
     * client_cert_invalid, auth_missing, auth_bad. */
    uint64_t http_rejects[5];
} rf_ops_server_stats;
const char *rf_ops_http_reject_name(unsigned i);

/* Binds the sockets (a stale socket file left by a dead process is replaced;
 * a live daemon answering on it makes this fail with -EADDRINUSE) and the
 * Prometheus listener. Registers the "stats" component. */
int rf_ops_server_start(const rf_ops_config *cfg, const rf_ops_hooks *hooks, rf_ops_server **out,
                        rf_err *err);
/* The most memory a server started with cfg holds (core/mem/bound.h): every
 * client's request buffer and pending output (cfg->client_buffer), and the
 * one reply or /metrics body being rendered. */
uint64_t rf_ops_server_memory_bound(const rf_ops_config *cfg);
/* An fd that is readable when rf_ops_server_run has work. */
int rf_ops_server_fd(const rf_ops_server *s);
/* Serves whatever is ready, waiting at most timeout_ms (0: do not wait). */
void rf_ops_server_run(rf_ops_server *s, int timeout_ms);
/* Flushes what can be flushed without waiting, closes, removes the sockets. */
void rf_ops_server_stop(rf_ops_server *s);
/* The bound Prometheus port (useful with port 0), 0 when disabled. */
uint16_t rf_ops_server_prometheus_port(const rf_ops_server *s);
void rf_ops_server_stats_read(const rf_ops_server *s, rf_ops_server_stats *out);
/* Reload (control thread): the running server's certificate, key, client CA
 * and credential files read again from cfg's paths; one that does not load
 * leaves the old ones in force and returns the error. */
int rf_ops_server_reload_security(const rf_ops_config *cfg, rf_err *err);

/* The server the engine view reports in `show info` (set by start). */
const rf_ops_server *rf_ops_server_current(void);

#endif
