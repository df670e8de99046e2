/* Private to daemon/ops: the writer's state and the command dispatcher shared
 * by the server and the tests. Do not include from outside this folder
 * (tests excepted). */
#ifndef RF_DAEMON_OPS_PVT_H
#define RF_DAEMON_OPS_PVT_H

#include "daemon/ops/ops.h"

#define RF_OPS_TABLE_MAX_COLS 32 /* show workers has 30 */

struct rf_ops_writer {
    rf_strbuf *out;
    bool json;
    unsigned sections; /* sections written so far (JSON commas) */
    unsigned items;    /* keys in the object / rows in the table so far */
    /* current table */
    unsigned ncols, col;
    const char *cols[RF_OPS_TABLE_MAX_COLS];
    char **cells; /* text mode: every cell, row-major, until table_end */
    size_t ncells, cap;
};

void rf_ops_writer_init(rf_ops_writer *w, rf_strbuf *out, bool json);
void rf_ops_writer_fini(rf_ops_writer *w);

/* The `show` lines of `help`. */
void rf_ops_show_help(rf_strbuf *out);

/* Who sent a command: decides whether admin commands are allowed. */
typedef struct rf_ops_peer {
    bool admin; /* admin socket, or the owning uid on the ops socket */
} rf_ops_peer;

enum rf_ops_cmd_result {
    RF_OPS_CMD_OK = 0,
    RF_OPS_CMD_ERROR = 1,    /* the reply is an error line */
    RF_OPS_CMD_QUIT = 2,     /* close after the reply */
    RF_OPS_CMD_SHUTDOWN = 3, /* reply, then call the shutdown hook */
    RF_OPS_CMD_DENIED = 4,   /* an admin command from a peer without the right */
};

/* Runs one command line (without '\n') and appends the reply, including the
 * final empty line, to out. */
enum rf_ops_cmd_result rf_ops_command(const char *line, const rf_ops_peer *peer,
                                      const rf_ops_hooks *hooks, rf_strbuf *out);

#endif
