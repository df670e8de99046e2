/* The document back as YAML (rf_cfg_write): what --print-config shows, the
 * configuration as the modules read it, after substitution and includes.
 * libyaml's emitter chooses the quoting, so every value reads back as the
 * same text. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "core/config/config.h"
#include "core/config/config_pvt.h"

static int emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) ? 0 : -EIO;
}

static int write_node(yaml_emitter_t *em, const rf_cfg_node *n)
{
    yaml_event_t ev;
    int rc;
    switch (n->kind) {
    case RF_CFG_SCALAR: {
        /* A null stays a null, as written (plain); an empty string is
         * quoted so that it stays one. */
        const char *text = n->u.scalar.text;
        size_t len = n->u.scalar.len;
        yaml_scalar_style_t style = n->null    ? YAML_PLAIN_SCALAR_STYLE
                                    : len == 0 ? YAML_SINGLE_QUOTED_SCALAR_STYLE
                                               : YAML_ANY_SCALAR_STYLE;
        yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)len, 1, 1, style);
        return emit(em, &ev);
    }
    case RF_CFG_SEQUENCE:
        yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_ANY_SEQUENCE_STYLE);
        if ((rc = emit(em, &ev)) < 0)
            return rc;
        for (size_t i = 0; i < n->u.seq.n; i++)
            if ((rc = write_node(em, n->u.seq.items[i])) < 0)
                return rc;
        yaml_sequence_end_event_initialize(&ev);
        return emit(em, &ev);
    case RF_CFG_MAPPING:
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if ((rc = emit(em, &ev)) < 0)
            return rc;
        for (size_t i = 0; i < n->u.map.n; i++) {
            const struct rf_cfg_entry *e = &n->u.map.entries[i];
            yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)e->key,
                                         (int)strlen(e->key), 1, 1, YAML_ANY_SCALAR_STYLE);
            if ((rc = emit(em, &ev)) < 0 || (rc = write_node(em, e->value)) < 0)
                return rc;
        }
        yaml_mapping_end_event_initialize(&ev);
        return emit(em, &ev);
    }
    return 0;
}

int rf_cfg_write(const rf_cfg_doc *doc, FILE *out, rf_err *err)
{
    yaml_emitter_t em;
    if (!yaml_emitter_initialize(&em))
        return rf_err_set(err, ENOMEM, "out of memory");
    yaml_emitter_set_output_file(&em, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    yaml_event_t ev;
    int rc;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    if ((rc = emit(&em, &ev)) == 0) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
        rc = emit(&em, &ev);
    }
    if (rc == 0)
        rc = write_node(&em, doc->root);
    if (rc == 0) {
        yaml_document_end_event_initialize(&ev, 1);
        rc = emit(&em, &ev);
    }
    if (rc == 0) {
        yaml_stream_end_event_initialize(&ev);
        rc = emit(&em, &ev);
    }
    if (rc == 0 && !yaml_emitter_flush(&em))
        rc = -EIO;
    if (rc < 0)
        rc = rf_err_set(err, EIO, "writing the configuration: %s",
                        em.problem ? em.problem : strerror(errno));
    yaml_emitter_delete(&em);
    return rc;
}
