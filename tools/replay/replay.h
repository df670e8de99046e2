/* ringflow replay: sends a recording, a pcap capture or a file of lines to a
 * running engine over UDP or TCP, paced as recorded, faster, or at full speed
 * (see replay.c). */
#ifndef RF_TOOLS_REPLAY_H
#define RF_TOOLS_REPLAY_H

#include <stddef.h>
#include <stdint.h>

int rf_cli_replay(int argc, char **argv);

/* Timestamp rewriting, exposed for tests. Precision: 0 ns, 1 us, 2 ms, 3 s
 * (enum rf_ts_precision's numbering).
 *
 * rf_replay_rewrite_influx: each line-protocol line of in[0..len) that has no
 * timestamp gets " <wall_ns in precision>" appended (before any trailing
 * '\r' or blanks); lines with one, comments and blank lines are copied
 * unchanged. rf_replay_rewrite_graphite does the same for Graphite plaintext
 * ("path value" or "path value -1" get seconds). out must hold len + 24 per
 * line (len * 2 + 64 is always enough). Returns the bytes written; *rewritten
 * counts the lines changed. */
size_t rf_replay_rewrite_influx(const char *in, size_t len, int64_t wall_ns, int precision,
                                char *out, uint64_t *rewritten);
size_t rf_replay_rewrite_graphite(const char *in, size_t len, int64_t wall_ns, char *out,
                                  uint64_t *rewritten);

#endif
