/* The stats-socket client shared by `ringflow stat` and `ringflow top`: send
 * one command, read one reply (up to the empty line that ends every reply),
 * and a small JSON reader for the `json` replies.
 *
 * The JSON reader parses one document into a tree (objects keep key order).
 * It accepts RFC 8259 JSON; \u escapes outside ASCII are kept as '?' (the
 * daemon never sends them: its text is ASCII). Depth is limited to 64. */
#ifndef RF_TOOLS_CLI_CLIENT_H
#define RF_TOOLS_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error/error.h"

#define RF_CLI_DEFAULT_SOCKET "./run/ringflow.sock"
#define RF_CLI_TIMEOUT_MS 5000

/* Connects to the Unix socket at path; returns the fd or -errno. */
int rf_cli_connect(const char *path);
/* Sends cmd + '\n' and reads the reply (without its final empty line) into a
 * malloc'ed string in *reply. Returns 0, or -errno (-ETIMEDOUT after
 * timeout_ms without the end of the reply, -ECONNRESET on EOF). */
int rf_cli_request(int fd, const char *cmd, int timeout_ms, char **reply);

enum rf_json_type {
    RF_JSON_NULL,
    RF_JSON_BOOL,
    RF_JSON_NUM,
    RF_JSON_STR,
    RF_JSON_ARR,
    RF_JSON_OBJ
};

typedef struct rf_json {
    enum rf_json_type type;
    double num;            /* numbers; booleans as 0/1 */
    char *str;             /* strings */
    char *key;             /* member name inside an object */
    struct rf_json *child; /* first element/member */
    struct rf_json *next;  /* next sibling */
} rf_json;

/* Parses text (the whole string must be one value, surrounding whitespace
 * allowed). Returns NULL with err filled (err may be NULL): EBADMSG with
 * where the text went wrong, or ENOMEM. */
rf_json *rf_json_parse(const char *text, rf_err *err);
void rf_json_free(rf_json *j);
/* Member `key` of an object, NULL when absent or j is not an object. */
const rf_json *rf_json_get(const rf_json *j, const char *key);
double rf_json_num(const rf_json *obj, const char *key, double def);
const char *rf_json_str(const rf_json *obj, const char *key, const char *def);
size_t rf_json_len(const rf_json *arr);

#endif
