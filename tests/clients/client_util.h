/* Helpers for the real-client tests: find and run third-party programs
 * (collectd, node) with deadlines, talk to ringflowd's outputs (the store
 * through `ringflow query`, JSON-lines sinks, the stats socket) and compare
 * exactly. Built on tests/daemon/daemon_proc.h (temp dir, ringflowd). */
#ifndef RF_TESTS_CLIENTS_CLIENT_UTIL_H
#define RF_TESTS_CLIENTS_CLIENT_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "daemon_proc.h"

/* meson reports a test that exits 77 as SKIP. */
#define CU_EXIT_SKIP 77

/* The first executable `name` in $PATH, /usr/sbin or /sbin; NULL if none.
 * Returns a static buffer (one per call site is enough: copy if needed). */
const char *cu_find_program(const char *name);

/* The directory of this folder's sources (RF_CLIENTS_DIR, set by meson). */
const char *cu_clients_dir(void);

/* node's path (malloc'd) when node and tests/clients/node_modules/<module>
 * are installed; else prints why the test skips and returns NULL. */
char *cu_node_or_skip(const char *module);
/* Runs `node <this folder>/<script> <port> <arg>` (tag "node") for up to 20 s;
 * fails with its stderr unless it exits 0; returns its stdout (malloc'd). */
char *cu_run_node_script(const char *node, const char *script, int port, const char *arg);

/* Spawns argv (argv[0] a path) with cwd = the temp dir, stdout/stderr to
 * <tmp>/<tag>.out / <tag>.err. */
pid_t cu_spawn(const char *tag, const char *const *argv);
/* Waits up to timeout_ms: the exit code, 128+signal, or -1 (then SIGKILLed). */
int cu_wait(pid_t pid, int timeout_ms);
/* SIGTERM, then wait up to timeout_ms (SIGKILL after). */
int cu_stop(pid_t pid, int timeout_ms);
/* The captured output of a spawned tag ("out" or "err"), malloc'd (tests
 * may leak it: they are short processes). */
char *cu_output(const char *tag, const char *stream);

/* cmocka teardown: SIGKILLs whatever cu_spawn / cu_daemon_start started
 * and was not reaped (a failed assertion jumps past the normal stop). */
int cu_kill_children(void **state);
/* Makes the temp dir (tmp_prefix) and runs the one test `test` named
 * `name` with cu_kill_children as its teardown; returns what main returns. */
int cu_run_test(const char *tmp_prefix, const char *name, void (*test)(void **state));

/* Writes the config, starts ringflowd on it and waits for "running:". */
void cu_daemon_start(proc *d, const char *config_name, const char *config_text);
/* cu_daemon_start on ringflowd.yaml with the pipeline every client test
 * uses: `listeners` (YAML list items), 50 ms batches, sinks "store" and
 * "seen" (./seen.jsonl, JSON) plus `extra_sinks` (list items), the route
 * "telemetry.>" -> store, seen, then `pipeline_tail` (more routes, then more
 * pipeline keys). extra_sinks and pipeline_tail may be "". */
void cu_daemon_start_pipeline(proc *d, const char *listeners, const char *extra_sinks,
                              const char *pipeline_tail);
/* SIGTERM (drain: rings, aggregator windows, sinks, store) and exit 0. */
void cu_daemon_stop(proc *d);
/* Fails unless the log has listener totals and every one says
 * lines_rejected=0, and it says store_rejected=0. */
void cu_expect_nothing_rejected(const char *log);

/* `ringflow <args>` in the temp dir (args is passed to sh: quote it);
 * returns a malloc'd stdout. Fails the test on a non-zero exit. */
char *cu_ringflow(const char *args);
/* `ringflow query --dir ./data/store <args>`. */
char *cu_query(const char *args);
/* The same query must match nothing: exit 1, "no series matched" said. */
void cu_query_expect_none(const char *args);

/* Lines of text that are exactly `line` (whole-line match). */
int cu_count_line(const char *text, const char *line);
/* Fails with the whole text when `line` is not a line of it exactly once. */
void cu_expect_line(const char *text, const char *line);
/* Number of lines (a missing final '\n' still counts the last line). */
int cu_count_lines(const char *text);
/* Occurrences of needle. */
int cu_count(const char *text, const char *needle);

/* Polls <tmp>/<name> until it has at least `lines` lines; returns the count
 * reached (less than `lines` on timeout). */
int cu_wait_file_lines(const char *name, int lines, int timeout_ms);
/* Waits up to 10 s for <tmp>/<name> to hold `events` lines; fails, with the
 * file and ringflowd's stderr, unless it then holds exactly that many. */
void cu_wait_events(const proc *d, const char *name, int events);
/* Runs cu_query(query_args) (a --format csv query) and fails unless it
 * prints the header and exactly n rows, row i being
 * "<t0_s + i * step_s>000000000,<row_prefix>,<values[i]>" with row_prefix
 * "measurement,field,tags"; frees the output. */
void cu_expect_csv_rows(const char *query_args, const char *row_prefix, long long t0_s, int step_s,
                        const char *const *values, int n);

/* JSON-lines sink output: the line whose "series" is exactly `series`
 * (exactly one such line, else the test fails); returns its "value" and
 * copies its "time" text into time_out (64 bytes) when not NULL. */
double cu_json_value(const char *text, const char *series, char *time_out);

/* One HTTP/1.0 request to 127.0.0.1:port (body may be NULL); waits up to
 * 10 s for the whole answer. Returns its body (malloc'd) and *status, or
 * NULL when the connection failed (*status -1). */
char *cu_http(int port, const char *method, const char *path, const char *body, int *status);

/* Wall-clock ns now. */
int64_t cu_now_ns(void);
/* A Unix stream socket connected to path, retried for timeout_ms; -1 when it
 * never came up (collectd's unixsock). */
int cu_unixsock_connect(const char *path, int timeout_ms);
/* One collectd unixsock command (PUTVAL ...) on fd, its status line read
 * from in: fails the test unless collectd answers "0 Success". */
void cu_collectd_putval(int fd, FILE *in, const char *cmd);
/* RFC 3339 with nanoseconds, as the JSON sink writes times. */
void cu_rfc3339(int64_t ns, char out[64]);

#endif
