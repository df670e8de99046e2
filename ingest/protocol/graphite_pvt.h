/* Graphite templates, compiled (graphite_templates.c); used by graphite.c. */
#ifndef RF_INGEST_GRAPHITE_PVT_H
#define RF_INGEST_GRAPHITE_PVT_H

#include "ingest/protocol/protocol_pvt.h"

#define RF_GT_MAX 64       /* templates: one bit each in the matcher's sets */
#define RF_GT_MAX_PARTS 32 /* parts of a template or a filter */
#define RF_GT_MAX_TAGS 16  /* default tags of a template, or global */

/* One "[filter] template [tags]": spans into text. */
typedef struct rf_gt_template {
    char *text;
    uint32_t nfilter, nparts, ntags;
    rf_span filter[RF_GT_MAX_PARTS];
    rf_span part[RF_GT_MAX_PARTS];
    uint8_t role[RF_GT_MAX_PARTS]; /* GT_SKIP, GT_MEASUREMENT, ... (graphite_templates.c) */
    rf_span tag_key[RF_GT_MAX_TAGS], tag_val[RF_GT_MAX_TAGS];
} rf_gt_template;

struct rf_graphite_templates {
    char sep[16];
    uint32_t sep_len;
    uint32_t n;
    int default_idx; /* the template without a filter, or -1 */
    rf_gt_template t[RF_GT_MAX];
    char *tags_text;
    uint32_t ntags;
    rf_span tag_key[RF_GT_MAX_TAGS], tag_val[RF_GT_MAX_TAGS];
};

/* The template for a path split at '.' (np parts), or NULL. */
const rf_gt_template *rf_gt_match(const rf_graphite_templates *g, const rf_span *path, uint32_t np);

/* Applies the templates to the path `whole` (without its ";" tags): sets
 * parts->measurement and *field when the template names them (joined
 * names written into ctx->unesc), adds its tags to parts (tags already in
 * parts win), then the global tags. Miss path only. */
enum rf_parse_result rf_gt_apply(rf_parse_ctx *ctx, const rf_graphite_templates *g, rf_span whole,
                                 rf_series_parts *parts, rf_span *field);

#endif
