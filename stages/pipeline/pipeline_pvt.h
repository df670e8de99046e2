/* Private to stages/pipeline: what pipeline.c (the chain) and
 * pipeline_config.c (its YAML) share. */
#ifndef RF_STAGES_PIPELINE_PVT_H
#define RF_STAGES_PIPELINE_PVT_H

#include "stages/pipeline/pipeline.h"

/* The router configuration points into the settings struct itself (its
 * templates and the sink names); settings are copied by value, so every use
 * rebuilds those pointers from the copy at hand. */
rf_router_config rf_pipeline_router_config(const rf_pipeline_settings *ps);

#endif
