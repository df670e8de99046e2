/* Helpers for the forwarding tests: start the real receivers (Debian's
 * victoria-metrics, prometheus, influxd) on loopback ports of the test's
 * own, in its temp dir, and read back what they stored. Built on
 * tests/clients/client_util.h (temp dir, spawned children, ringflowd). */
#ifndef RF_TESTS_SINKS_FWD_UTIL_H
#define RF_TESTS_SINKS_FWD_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client_util.h"

/* Exits 77 (SKIP) with a message when `path` is not an executable. */
void fwd_require(const char *path, const char *package);

/* Polls GET path on 127.0.0.1:port until it answers `status` (bounded:
 * 15 s); fails the test otherwise, with the stderr of the spawned `tag`. */
void fwd_wait_http(int port, const char *path, int status, const char *tag);

/* victoria-metrics with its data under <tmp>/<dir>, listening on port;
 * waits (10 s) until /health answers. */
pid_t fwd_start_vm(int port, const char *dir);
/* Flushes VM and returns the sorted timestamps (ms) of every sample of the
 * series selected by `match` (a PromQL selector, URL-encoded), at most max;
 * returns the count; *values gets their sum when not NULL. */
int fwd_vm_samples(int port, const char *match, int64_t *ts, int max, double *sum);
/* Polls fwd_vm_samples until it reports at least `want` (or timeout_ms). */
int fwd_vm_wait(int port, const char *match, int want, int timeout_ms);

/* Sends text over one TCP connection to 127.0.0.1:port (fails the test if
 * it cannot). */
void fwd_send_tcp(int port, const char *text, size_t len);
/* One UDP datagram. */
void fwd_send_udp(int port, const char *text);
/* Sends fwd_points(0, n, t0_ms) over TCP. */
void fwd_send_points(int port, int n, int64_t t0_ms);
/* `n` line-protocol points "fwd v=<i> <t0_ms+i ms>" for i in [first, first+n). */
char *fwd_points(int first, int n, int64_t t0_ms, size_t *len);

/* Sums column `col` of the `forwarders` table of `show forwarders` over the
 * rows of sink `sink` (-1 when the daemon did not answer). */
long long fwd_stat(const char *sink, const char *col);
/* Waits until fwd_stat(sink, col) >= want; returns the last value. */
long long fwd_stat_wait(const char *sink, const char *col, long long want, int timeout_ms);

#endif
