/* Test helper: the engine started in this process (rf_engine_start) from a
 * YAML configuration, for tests that reach into it while it runs (stats,
 * shards, flags) rather than drive the ringflowd binary (daemon_proc.h). */
#ifndef RF_TESTS_ENGINE_INPROC_H
#define RF_TESTS_ENGINE_INPROC_H

#include "daemon/engine.h"
#include "daemon/settings.h"

/* Writes yaml to cfg.yaml in the temp directory (tproc_dir_init first),
 * loads it into *s and starts the engine; on any error prints it and aborts
 * the test process. Stop with rf_engine_stop, then rf_settings_release. */
rf_engine *engine_inproc_start(const char *yaml, rf_settings *s);

#endif
