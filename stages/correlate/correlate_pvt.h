/* Private to stages/correlate: shared by the engine (correlate.c) and the
 * config parser (correlate_config.c). Do not include from outside. */
#ifndef RF_STAGES_CORRELATE_PVT_H
#define RF_STAGES_CORRELATE_PVT_H

#include "stages/correlate/correlate.h"

/* Validates a whole configuration; 0 or -EINVAL with err naming the pattern. */
int rf_correlator_config_check(const rf_correlator_config *cfg, rf_err *err);

#endif
