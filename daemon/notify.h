/* The service manager's view of ringflowd: sd_notify(3) messages for a
 * systemd unit of Type=notify (debian/ringflow.service).
 *
 * Contract
 *   - Every function is a no-op when the daemon was not started by systemd
 *     (no NOTIFY_SOCKET), or was built without libsystemd: callers do not ask.
 *   - READY=1 once the engine runs (listeners bound, workers started), so
 *     `systemctl start` returns when telemetry is accepted, and again after
 *     each reload; RELOADING=1 (with MONOTONIC_USEC, which systemd 253+ asks
 *     for) when a reload starts; STOPPING=1 when the drain starts. STATUS=
 *     carries a line for `systemctl status`.
 *   - The watchdog (WatchdogSec= in the unit, WATCHDOG_USEC in the
 *     environment): rf_notify_watchdog is called on every turn of the control
 *     loop and pings at half the interval, so a control thread that stops
 *     turning (stuck in a reload, a deadlock) gets the service restarted.
 *   - Control thread only.
 */
#ifndef RF_DAEMON_NOTIFY_H
#define RF_DAEMON_NOTIFY_H

#include <stdint.h>

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC; call once at start. */
void rf_notify_init(void);
void rf_notify_ready(const char *status);
void rf_notify_reloading(void);
void rf_notify_stopping(void);
/* now_ns: CLOCK_MONOTONIC. Pings when half the watchdog interval passed. */
void rf_notify_watchdog(int64_t now_ns);

#endif
