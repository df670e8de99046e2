#include "core/log/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock/clock.h"

/* Written by the control thread, read by all: relaxed, since a record logged
 * at the old level during a change is harmless. */
static _Atomic int g_level = RF_LOG_INFO;
static _Atomic int g_format = RF_LOG_TEXT;
static _Atomic int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rf_log_set_level(enum rf_log_level level) { atomic_store_explicit(&g_level, level, memory_order_relaxed); }
enum rf_log_level rf_log_get_level(void) { return atomic_load_explicit(&g_level, memory_order_relaxed); }
void rf_log_set_format(enum rf_log_format f) { atomic_store_explicit(&g_format, f, memory_order_relaxed); }
void rf_log_set_fd(int fd) { atomic_store_explicit(&g_fd, fd, memory_order_relaxed); }

int rf_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *rf_log_level_name(enum rf_log_level level)
{
    return (level >= 0 && level <= RF_LOG_ERROR) ? level_names[level] : "unknown";
}

/* Appends s to out with JSON (or logfmt-in-quotes) escaping; returns new length. */
static size_t append_escaped(char *out, size_t pos, size_t cap, const char *s)
{
    for (; *s && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (c < 0x20) {
            pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
        } else {
            out[pos++] = (char)c;
        }
    }
    return pos;
}

void rf_log(enum rf_log_level level, const char *component, const char *fmt, ...)
{
    if (level < rf_log_get_level())
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    char ts[40];
    rf_clock_format_rfc3339(rf_clock_wall_ns(), ts, sizeof(ts));
    char line[4400];
    size_t pos;
    if (atomic_load_explicit(&g_format, memory_order_relaxed) == RF_LOG_JSON) {
        pos = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"",
                               ts, rf_log_level_name(level));
        pos = append_escaped(line, pos, sizeof(line), component);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",\"msg\":\"");
        pos = append_escaped(line, pos, sizeof(line), msg);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
    } else {
        pos = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s component=%s msg=\"", ts,
                               rf_log_level_name(level), component);
        pos = append_escaped(line, pos, sizeof(line), msg);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"\n");
    }
    if (pos >= sizeof(line))
        pos = sizeof(line) - 1;
    ssize_t w = write(atomic_load_explicit(&g_fd, memory_order_relaxed), line, pos);
    (void)w; /* nowhere to report a failing log sink */
}
