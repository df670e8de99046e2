#include "engine_inproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_proc.h"

rf_engine *engine_inproc_start(const char *yaml, rf_settings *s)
{
    tproc_write_file("cfg.yaml", yaml);
    char path[512];
    snprintf(path, sizeof(path), "%s/cfg.yaml", tproc_dir());
    memset(s, 0, sizeof(*s));
    rf_err err;
    rf_err_clear(&err);
    if (rf_settings_load(path, s, &err) < 0) {
        fprintf(stderr, "engine_inproc_start: settings: %s\n", err.msg);
        abort();
    }
    rf_engine *e = NULL;
    if (rf_engine_start(s, &e, &err) < 0) {
        fprintf(stderr, "engine_inproc_start: start: %s\n", err.msg);
        abort();
    }
    return e;
}
