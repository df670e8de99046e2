#include "core/log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock/clock.h"

/* Written by the control thread, read by all: relaxed, since a record logged
 * at the old level during a change is harmless. */
static _Atomic int g_level = RF_LOG_INFO;
static _Atomic int g_format = RF_LOG_TEXT;
static _Atomic int g_fd = 2;
static _Atomic bool g_journal;
/* log.file: its path and the descriptor number records go to (control
 * thread only; g_fd is what other threads read). */
static char g_path[4096];
static int g_file_fd = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void rf_log_set_level(enum rf_log_level level)
{
    atomic_store_explicit(&g_level, level, memory_order_relaxed);
}
enum rf_log_level rf_log_get_level(void)
{
    return atomic_load_explicit(&g_level, memory_order_relaxed);
}
void rf_log_set_format(enum rf_log_format f)
{
    atomic_store_explicit(&g_format, f, memory_order_relaxed);
}
void rf_log_set_fd(int fd)
{
    atomic_store_explicit(&g_fd, fd, memory_order_relaxed);
}
void rf_log_set_journal(bool on)
{
    atomic_store_explicit(&g_journal, on, memory_order_relaxed);
}
const char *rf_log_file(void)
{
    return g_path;
}

bool rf_log_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static int open_log(const char *path, rf_err *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return rf_err_set(err, errno, "log.file %s: %s", path, strerror(errno));
    return fd;
}

int rf_log_open_file(const char *path, rf_err *err)
{
    if (strlen(path) >= sizeof(g_path))
        return rf_err_set(err, ENAMETOOLONG, "log.file %s: path too long", path);
    int fd = open_log(path, err);
    if (fd < 0)
        return fd;
    if (g_file_fd >= 0) {
        /* Same number, new file: see rf_log_reopen. */
        int rc = dup3(fd, g_file_fd, O_CLOEXEC) < 0 ? -errno : 0;
        close(fd);
        if (rc < 0)
            return rf_err_set(err, -rc, "log.file %s: dup3: %s", path, strerror(-rc));
    } else {
        g_file_fd = fd;
    }
    snprintf(g_path, sizeof(g_path), "%s", path);
    /* A file is no journal stream: records carry their time again. */
    rf_log_set_journal(false);
    atomic_store_explicit(&g_fd, g_file_fd, memory_order_relaxed);
    return 0;
}

int rf_log_reopen(rf_err *err)
{
    if (g_file_fd < 0)
        return 0;
    char path[sizeof(g_path)];
    snprintf(path, sizeof(path), "%s", g_path);
    return rf_log_open_file(path, err);
}

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
    const bool journal = atomic_load_explicit(&g_journal, memory_order_relaxed);
    pos = 0;
    if (journal) {
        /* sd-daemon priorities: error 3, warning 4, info 6, debug 7. */
        static const int prio[] = {7, 6, 4, 3};
        pos = (size_t)snprintf(line, sizeof(line), "<%d>", prio[level]);
    }
    if (atomic_load_explicit(&g_format, memory_order_relaxed) == RF_LOG_JSON) {
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
                                "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", ts,
                                rf_log_level_name(level));
        pos = append_escaped(line, pos, sizeof(line), component);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\",\"msg\":\"");
        pos = append_escaped(line, pos, sizeof(line), msg);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"}\n");
    } else {
        /* The journal stamps each record itself. */
        if (!journal)
            pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "ts=%s ", ts);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "level=%s component=%s msg=\"",
                                rf_log_level_name(level), component);
        pos = append_escaped(line, pos, sizeof(line), msg);
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "\"\n");
    }
    if (pos >= sizeof(line))
        pos = sizeof(line) - 1;
    ssize_t w = write(atomic_load_explicit(&g_fd, memory_order_relaxed), line, pos);
    (void)w; /* nowhere to report a failing log sink */
}
