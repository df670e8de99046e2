/* Test helpers: run the real ringflowd ($RINGFLOWD) in a temp directory,
 * with stdout/stderr captured to files, and wait on it with deadlines. */
#ifndef RF_TESTS_DAEMON_PROC_H
#define RF_TESTS_DAEMON_PROC_H

#include <sys/types.h>

typedef struct proc {
    pid_t pid;
    char out_path[512], err_path[512];
} proc;

/* Creates the temp directory every other helper works in. */
const char *tproc_dir_init(const char *prefix);
const char *tproc_dir(void);
void tproc_write_file(const char *name, const char *text);
/* Reads a file into a static buffer ("" when missing). Not reentrant. */
char *tproc_read_file(const char *path);
/* The same for a file in the temp directory. */
char *tproc_read_dir_file(const char *name);
/* Runs `sh -c CMD` in the temp directory: its stdout (malloc'ed) and its
 * exit status in *status (128 when it did not exit normally). */
char *tproc_shell(const char *cmd, int *status);
/* The same, for a command that must succeed: its stdout, or NULL (the
 * command, its status and its output printed to stderr) when it failed. */
char *tproc_shell_ok(const char *cmd);
/* Starts ringflowd with NULL-terminated args, cwd = the temp directory. */
void tproc_start(proc *p, const char *const *args);
/* Waits up to timeout_ms; the exit code, 128+signal, or -1 (then killed). */
int tproc_wait_exit(proc *p, int timeout_ms);
/* Starts and waits (10 s). */
int tproc_run(const char *const *args, proc *p);
/* 1 once the daemon's stderr contains needle, 0 after timeout_ms. */
int tproc_wait_log(proc *p, const char *needle, int timeout_ms);
/* The first of 10 consecutive ports that were free (TCP and UDP) when
 * first asked; the same value for the rest of the process. */
int tproc_port_base(void);
/* GET path from 127.0.0.1:port: the body (free it) and the HTTP status, or
 * NULL and status -1 when there was no well-formed response within 5 s. */
char *tproc_http_get(int port, const char *path, int *status);
/* The reply to `cmd` on the stats socket of the daemon started in the temp
 * directory (run/ringflow.sock; malloc'ed), or NULL when it did not answer. */
char *tproc_ask(const char *cmd);

#endif
