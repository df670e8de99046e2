/* ringflow load: the synthetic telemetry generator (see load.c). */
#ifndef RF_TOOLS_LOAD_H
#define RF_TOOLS_LOAD_H

int rf_cli_load(int argc, char **argv);

#endif
