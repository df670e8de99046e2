/* Time sources. Monotonic time measures durations (latency, timeouts, TTLs,
 * batch intervals, the aggregator's idle close, alert for-durations of
 * samples stamped at receipt) and never jumps; wall time stamps events (the
 * default event time at receipt, the base of the timestamp window, logs) and
 * aligns windows to calendar boundaries. Nothing that measures how long
 * something lasted reads the wall clock: a step of it (NTP, an operator)
 * must close, expire or fire nothing early (tests/reliability/test_clock.c
 * steps it under a running ringflowd). Both read the vDSO clock: no syscall
 * (and both go through libc's clock_gettime, which libfaketime intercepts). */
#ifndef RF_CORE_CLOCK_H
#define RF_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define RF_NS_PER_US 1000LL
#define RF_NS_PER_MS 1000000LL
#define RF_NS_PER_S 1000000000LL

/* Nanoseconds on CLOCK_MONOTONIC. */
static inline int64_t rf_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RF_NS_PER_S + ts.tv_nsec;
}

/* Nanoseconds since the Unix epoch on CLOCK_REALTIME. */
static inline int64_t rf_clock_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RF_NS_PER_S + ts.tv_nsec;
}

/* Formats wall-clock ns as RFC 3339 UTC with milliseconds
 * ("2026-11-23T17:49:43.123Z") into buf (at least 32 bytes). Returns buf. */
char *rf_clock_format_rfc3339(int64_t wall_ns, char *buf, unsigned long len);

#endif
