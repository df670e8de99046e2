/* sd_notify for ringflowd (daemon/notify.h). */
#include "daemon/notify.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rf_build_config.h"
#if RF_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static bool g_on;
static int64_t g_watchdog_half_ns; /* 0: no watchdog */
static int64_t g_last_ping_ns;

static void notify_send(const char *msg)
{
#if RF_HAVE_SYSTEMD
    if (g_on)
        (void)sd_notify(0, msg); /* nothing to do if the manager is gone */
#else
    (void)msg;
#endif
}

void rf_notify_init(void)
{
    g_on = getenv("NOTIFY_SOCKET") != NULL;
#if RF_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (g_on && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        g_watchdog_half_ns = (int64_t)(usec * 1000 / 2);
#endif
}

void rf_notify_ready(const char *status)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status ? status : "running");
    notify_send(msg);
}

void rf_notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[128];
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    notify_send(msg);
}

void rf_notify_stopping(void)
{
    notify_send("STOPPING=1\nSTATUS=draining and stopping");
}

void rf_notify_watchdog(int64_t now_ns)
{
    if (!g_watchdog_half_ns || now_ns - g_last_ping_ns < g_watchdog_half_ns)
        return;
    g_last_ping_ns = now_ns;
    notify_send("WATCHDOG=1");
}
