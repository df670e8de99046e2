/* Running as an unprivileged user after binding (engine.user, engine.group).
 *
 * Started as root with engine.user set, ringflowd gives up root in two steps,
 * because the engine binds its listeners and starts its threads in one call
 * (rf_engine_start) and capabilities are per thread:
 *
 *   1. rf_privileges_enter, while the process is still single-threaded:
 *      ambient set cleared, bounding set emptied (needs CAP_SETPCAP, so done
 *      first), supplementary groups, then setresgid(g, g, g) and
 *      setresuid(u, u, 0): from here on every file is created as the user.
 *      Only CAP_NET_BIND_SERVICE (ports below 1024) and CAP_NET_ADMIN
 *      (SO_RCVBUFFORCE past net.core.rmem_max) stay permitted and effective;
 *      PR_SET_NO_NEW_PRIVS is set. Threads started afterwards inherit all of
 *      it. The saved uid stays 0 only so that step 2 can clear every thread.
 *   2. rf_privileges_drop, once every thread runs: setresuid(u, u, u). glibc
 *      applies it to every thread of the process (nptl(7)), and since a uid
 *      goes from 0 to nonzero, the kernel clears each thread's permitted,
 *      effective and ambient sets (capabilities(7), "Effect of user ID
 *      changes on capabilities"). Then /proc/self/task/N/status of every
 *      thread is read back and the drop fails unless all of them hold the
 *      user's uids and gids and no capability.
 *
 * Between the two steps (the time rf_engine_start takes: milliseconds) the
 * process could still switch its effective uid back to 0, holding only the
 * two network capabilities; after step 2 nothing can.
 *
 * Not root at start: with engine.user naming the user it already runs as,
 * both steps do nothing; naming another user is an error.
 */
#ifndef RF_DAEMON_PRIVILEGES_H
#define RF_DAEMON_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config/config.h"
#include "core/error/error.h"

#define RF_PRIV_NAME_MAX 64
#define RF_PRIV_MAX_GROUPS 256

typedef struct rf_privileges {
    bool enabled; /* engine.user is set */
    uid_t uid;
    gid_t gid;
    char user[RF_PRIV_NAME_MAX];  /* the name, or the number when it has no passwd entry */
    char group[RF_PRIV_NAME_MAX]; /* likewise */
    /* Supplementary groups: the user's (getgrouplist) when it has a passwd
     * entry, else just gid. */
    uint32_t n_groups;
    gid_t groups[RF_PRIV_MAX_GROUPS];
} rf_privileges;

/* Resolves engine.user / engine.group (names or numeric ids) on this host.
 * `engine` is the engine mapping (NULL when absent): errors name the key's
 * FILE:LINE:COL. An unknown user or group, a group without a user, or uid or
 * gid 0 are errors. Empty user and group: out->enabled = false. */
int rf_privileges_resolve(const rf_cfg_node *engine, const char *user, const char *group,
                          rf_privileges *out, rf_err *err);

/* Step 1 (see above). Returns 1 when there is nothing to do (not root and
 * already running as that user), 0 done, negative on error (nothing useful
 * can continue: exit). */
int rf_privileges_enter(const rf_privileges *p, rf_err *err);

/* After step 1: whether the user may access `path` with `mode` (R_OK, W_OK,
 * X_OK); the error names `what`, the path, its owner and mode. */
int rf_privileges_check_access(const rf_privileges *p, const char *what, const char *path, int mode,
                               rf_err *err);

/* Step 2, then the check of every thread. On success `summary` holds who the
 * process now runs as (for the log). */
int rf_privileges_drop(const rf_privileges *p, char *summary, size_t summary_size, rf_err *err);

/* Reads every thread of the calling process from /proc/self/task and fails,
 * naming the first thread that differs, unless each one has all four uids
 * equal to uid, all four gids equal to gid, and empty permitted, effective
 * and ambient capability sets. *threads gets the number of threads read. */
int rf_privileges_verify_threads(uid_t uid, gid_t gid, unsigned *threads, rf_err *err);

#endif
