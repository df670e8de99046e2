/* The process's field-type table (ingest/protocol/protocol.h, "Field types"):
 * made by the engine before its workers, shared by every parse context, and
 * filled from the store so that a field's type survives a restart. */
#ifndef RF_DAEMON_FIELD_TYPES_SEED_H
#define RF_DAEMON_FIELD_TYPES_SEED_H

#include <stdint.h>

#include "core/error/error.h"
#include "ingest/protocol/protocol.h"

/* Room for `series` series (twice as many slots), seeded with the type of
 * each series' oldest block in the store at store_dir (NULL: no store).
 * Returns 0 and *out, or a negative errno with *err. */
int rf_field_types_open(const char *store_dir, uint64_t series, rf_field_types **out, rf_err *err);

#endif
