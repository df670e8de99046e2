/* Helpers shared by the reliability tests: the stats socket of a running
 * ringflowd (tools/cli/client.h), counters summed over workers, shutdown
 * summary lines, and process resources (fds, RSS) read from /proc.
 *
 * Every helper works in the directory tests/daemon/daemon_proc.h created
 * (tproc_dir()); the daemon runs there with run_dir ./run. */
#ifndef RF_TESTS_RELIABILITY_REL_UTIL_H
#define RF_TESTS_RELIABILITY_REL_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/daemon/daemon_proc.h"
#include "tools/cli/client.h"

/* tproc_start that also remembers the daemon, so that rel_teardown can
 * kill it when an assertion ended the test early (no orphans). */
void rel_start(proc *p, const char *const *args);
/* cmocka teardown: SIGKILLs every daemon rel_start started that is still
 * running (and reaps it). */
int rel_teardown(void **state);
/* Writes yaml to file (in tproc_dir()), rel_starts ringflowd on it and
 * waits up to timeout_ms for its "running:" log line; false when none came. */
bool rel_start_config(proc *p, const char *file, const char *yaml, int timeout_ms);

/* `show stats json` (or any `show ... json` when cmd is given) from the
 * daemon in tproc_dir(); NULL when it cannot be asked. Free with rf_json_free. */
rf_json *rel_show(const char *cmd);
/* Sum of column `col` over the rows of table `table` in a stats document;
 * with match_col/match_val only the rows whose match_col equals it. */
uint64_t rel_sum(const rf_json *doc, const char *table, const char *col);
uint64_t rel_sum_where(const rf_json *doc, const char *table, const char *col,
                       const char *match_col, const char *match_val);
/* A number in an object section ("storage", "series", "info"). */
uint64_t rel_obj(const rf_json *doc, const char *obj, const char *key);
/* Reads `show stats json` until every counter the loss equation uses has
 * not moved over three reads 250 ms apart while every worker kept polling
 * (or timeout_ms passed: then says so on stderr and returns the last). */
rf_json *rel_show_settled(int timeout_ms);

/* Sum of `key=N` over the log lines that contain `needle` (after it). */
uint64_t rel_log_sum(const char *log, const char *needle, const char *key);
/* Events sink `sink` dropped, by every reason its shutdown summary ("sink
 * NAME final:") counts: queue_full, disconnected, unsupported, oversize,
 * io_error. */
uint64_t rel_sink_final_drops(const char *log, const char *sink);

/* A connected UDP socket to 127.0.0.1:port (blocking). */
int rel_udp_to(int port);
/* A blocking TCP connection to 127.0.0.1:port, -1 on failure. */
int rel_tcp_to(int port);
/* A TCP listener on 127.0.0.1:port with a small receive buffer (rcvbuf bytes,
 * 0 = default); -1 on failure. */
int rel_tcp_listen(int port, int rcvbuf);
/* Accepts every connection pending on listener lfd (made non-blocking; the
 * daemon has exited, so each ends in EOF) and counts the complete lines
 * received. lfd stays open. */
uint64_t rel_drain_peer(int lfd);
/* Sends all of buf on the socket fd (no SIGPIPE); false when a send failed. */
bool rel_send_all(int fd, const void *buf, size_t len);
/* GET path from 127.0.0.1:port (tproc_http_get): the HTTP status code (-1:
 * no answer), the body NUL-terminated into buf (cut at cap). */
int rel_http_get(int port, const char *path, char *buf, size_t cap);

/* Open file descriptors of pid; resident set in KiB. -1 when unknown. */
int rel_fd_count(pid_t pid);
long rel_rss_kib(pid_t pid);

/* Runs a shell command in tproc_dir(); its stdout (malloc'ed) and exit code. */
char *rel_sh(const char *cmd, int *status);
/* `ringflow query --agg count` of measurement m: total points in the store at
 * ./data/store (0 when none). */
uint64_t rel_store_count(const char *measurement);
/* The same for the store in dir (relative to tproc_dir()); a failed query is
 * printed to stderr. */
uint64_t rel_store_count_in(const char *dir, const char *measurement);

/* Packets the kernel dropped before any socket on this host (all CPUs:
 * netdev backlog full), from /proc/net/softnet_stat. */
uint64_t rel_softnet_drops(void);

/* Current wall clock in ns. */
int64_t rel_now_ns(void);

/* ---- critical-lane probes (test_critical, test_long) ---------------------- */

/* Latencies in ns, grown as they come. */
typedef struct rel_lat_set {
    int64_t *v;
    size_t n, cap;
} rel_lat_set;
/* The q quantile (0..1) of s in ms, 0 when s is empty (sorts s). */
double rel_pct_ms(rel_lat_set *s, double q);

/* The receiving end of an lp_udp probe sink. The sink sends one line per
 * field:
 *   rf_probe,lane=crit seq=<n>i <t>       rf_probe,lane=crit sent_mono_ns=<v>i <t>
 *   rf_probe,gen=ringflow-load sent_mono_ns=<v>i <t>  (the routine stream's probes)
 * The critical seq lines mark seen[] (dup counts the repeats); every
 * sent_mono_ns line adds its latency (the kernel's receipt here minus the
 * send time, both CLOCK_MONOTONIC) to crit or routine. */
typedef struct rel_probe_rx {
    int fd;
    int n_probes;  /* seq 0 .. n_probes-1 are tracked */
    uint8_t *seen; /* seen[seq]: that probe's seq line came back */
    uint32_t dup;  /* seq lines that came back again */
    rel_lat_set crit, routine;
} rel_probe_rx;
/* A receiver bound to 127.0.0.1:port, kernel receive timestamps on, for
 * n_probes critical probes; NULL (the reason on stderr) when the socket
 * cannot be set up. */
rel_probe_rx *rel_probe_rx_open(int port, int n_probes);
/* Reads every datagram waiting, without blocking. */
void rel_probe_rx_drain(rel_probe_rx *rx);
/* Drains every 10 ms for ms milliseconds: what is still on its way. */
void rel_probe_rx_drain_for(rel_probe_rx *rx, int ms);
/* How many distinct critical probes came back. */
uint32_t rel_probe_rx_seen(const rel_probe_rx *rx);
/* Closes the socket and frees rx. */
void rel_probe_rx_free(rel_probe_rx *rx);
/* Sends critical probe seq (one datagram: its seq and CLOCK_MONOTONIC send
 * time) on the connected UDP socket fd; false when not sent whole. */
bool rel_probe_send(int fd, int seq);

#endif
