/* Loading the whole configuration: each module's section, then the
 * unknown-key check, all before anything is applied. */
#include "daemon/settings.h"

#include <stdio.h>
#include <string.h>

int rf_settings_load(const char *path, rf_settings *out, rf_err *err)
{
    rf_settings next;
    memset(&next, 0, sizeof(next));
    snprintf(next.source, sizeof(next.source), "%s", path ? path : RF_DAEMON_DEFAULT_SOURCE);

    rf_cfg_doc *doc = NULL;
    int rc = rf_daemon_config_load(path, &next.daemon, &doc, err);
    if (rc < 0)
        return rc;

    /* Each module's section parser runs here, on the same document. */

    rc = rf_cfg_check_unknown_keys(doc, err);
    rf_cfg_free(doc);
    if (rc < 0) {
        rf_settings_release(&next);
        return rc;
    }
    *out = next;
    return 0;
}

void rf_settings_release(rf_settings *s)
{
    (void)s;
}
