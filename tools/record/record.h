/* ringflow record: standalone capture of UDP/TCP traffic into a recording
 * (see record.c; the file format is in recfile.h and docs/FORMAT.md). */
#ifndef RF_TOOLS_RECORD_H
#define RF_TOOLS_RECORD_H

int rf_cli_record(int argc, char **argv);

#endif
