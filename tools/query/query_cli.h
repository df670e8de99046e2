/* ringflow query: the command over storage/query (see query.c). */
#ifndef RF_TOOLS_QUERY_CLI_H
#define RF_TOOLS_QUERY_CLI_H

int rf_cli_query(int argc, char **argv);

#endif
