/* Structured logging: one line per record, written with a single write(2) so
 * lines from different threads never interleave.
 *
 * Text format (logfmt):
 *   ts=2026-11-23T17:49:43.123Z level=info component=ingest msg="listener up" port=8089
 * JSON format:
 *   {"ts":"2026-11-23T17:49:43.123Z","level":"info","component":"ingest","msg":"listener up port=8089"}
 * Under journald (rf_log_set_journal), text without its own time:
 *   <6>level=info component=ingest msg="listener up" port=8089
 *
 * Logging is for the control plane and for rare events. The per-event hot path
 * never logs: it counts, and the counters are read through the stats socket.
 */
#ifndef RF_CORE_LOG_H
#define RF_CORE_LOG_H

#include <stdbool.h>

#include "core/error/error.h"

enum rf_log_level {
    RF_LOG_DEBUG = 0,
    RF_LOG_INFO = 1,
    RF_LOG_WARN = 2,
    RF_LOG_ERROR = 3
};
enum rf_log_format {
    RF_LOG_TEXT = 0,
    RF_LOG_JSON = 1
};

/* Set from the control thread; read by every thread (relaxed: a level change
 * need not be seen at once). */
void rf_log_set_level(enum rf_log_level level);
enum rf_log_level rf_log_get_level(void);
void rf_log_set_format(enum rf_log_format format);
/* Where records go (default 2, stderr). */
void rf_log_set_fd(int fd);

/* log.file: records are appended to `path` (created 0640 if missing) from
 * now on. The file keeps one descriptor number for the life of the process:
 * rf_log_reopen replaces what it points at (dup3), so a thread writing at
 * that instant writes whole to the old file or the new, never to a closed or
 * reused descriptor. Returns 0 or a negative errno, err filled. Control
 * thread only (one caller at a time). */
int rf_log_open_file(const char *path, rf_err *err);
/* Opens the log.file path again, for logrotate (its `create` or a rename):
 * the entry point for SIGUSR1 or an admin command. Nothing to do (0) when
 * records go to stderr. On failure records keep going to the old file. */
int rf_log_reopen(rf_err *err);
/* The log.file path in use, or "" for stderr. */
const char *rf_log_file(void);

/* journald's stream format: each record starts with its syslog priority
 * ("<3>" for error) and carries no timestamp of its own (the journal stamps
 * it). rf_log_stderr_is_journal says whether stderr is the journal's stream
 * (systemd sets JOURNAL_STREAM to its device:inode), so the daemon turns this
 * on only there and only while records go to stderr. */
void rf_log_set_journal(bool on);
bool rf_log_stderr_is_journal(void);

/* Parses "debug", "info", "warn", "error"; returns -1 when unknown. */
int rf_log_level_parse(const char *name);
const char *rf_log_level_name(enum rf_log_level level);

/* Writes one record. `fmt` produces the message; keep it one line. */
void rf_log(enum rf_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline bool rf_log_enabled(enum rf_log_level level)
{
    return level >= rf_log_get_level();
}

#define rf_log_debug(comp, ...)                                                                    \
    do {                                                                                           \
        if (rf_log_enabled(RF_LOG_DEBUG))                                                          \
            rf_log(RF_LOG_DEBUG, comp, __VA_ARGS__);                                               \
    } while (0)
#define rf_log_info(comp, ...) rf_log(RF_LOG_INFO, comp, __VA_ARGS__)
#define rf_log_warn(comp, ...) rf_log(RF_LOG_WARN, comp, __VA_ARGS__)
#define rf_log_error(comp, ...) rf_log(RF_LOG_ERROR, comp, __VA_ARGS__)

#endif
