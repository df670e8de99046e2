/* The query API's parts (promapi.c: routes and the query thread; read.c:
 * remote_read). Not a public header: include storage/promapi/promapi.h. */
#ifndef RF_STORAGE_PROMAPI_PVT_H
#define RF_STORAGE_PROMAPI_PVT_H

#include <stddef.h>
#include <stdint.h>

#include "storage/index/index.h"

/* Answers one remote_read body (a snappy block of a ReadRequest): returns
 * the HTTP status; on 200 *out (malloc'd) is the snappy block of the
 * ReadResponse, else msg says why. Runs on the query thread. */
int rf_promapi_remote_read(rf_series_index *ix, const uint8_t *body, size_t len, char **out,
                           size_t *out_len, char *msg, size_t msg_len);

#endif
