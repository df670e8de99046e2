/* ringflow query: the command over storage/query (see query.c). */
#ifndef RF_TOOLS_QUERY_CLI_H
#define RF_TOOLS_QUERY_CLI_H

#include "storage/query/query.h"

int rf_cli_query(int argc, char **argv);
/* `ringflow query --url`: the raw points of q from a running engine's query
 * API (query_url.c). Returns the exit status: 0, 1 (nothing matched, or
 * the engine refused), 2 (usage). */
int rf_cli_query_url(const char *url, const rf_query *q, enum rf_query_format fmt);

#endif
