/* Private to stages/alert: shared by the engine (alert.c) and the config
 * parser (alert_config.c). Do not include from outside this folder. */
#ifndef RF_STAGES_ALERT_PVT_H
#define RF_STAGES_ALERT_PVT_H

#include "stages/alert/alert.h"

/* Validates one rule (rule index i for messages); 0 or -EINVAL with err set. */
int rf_alert_rule_check(const rf_alert_rule_config *rc, uint32_t i, rf_err *err);

#endif
