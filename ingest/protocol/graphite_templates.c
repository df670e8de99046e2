/* Graphite templates, as Telegraf's and InfluxDB's graphite inputs have them
 * (protocol.h, rf_graphite_templates_new). A template is compiled once into
 * spans over its own copy of the text; applying one to a path (graphite.c's
 * miss path only) writes the joined names into the context's scratch. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "ingest/protocol/protocol_pvt.h"
#include "ingest/protocol/graphite_pvt.h"

enum {
    GT_SKIP = 0,
    GT_MEASUREMENT,
    GT_MEASUREMENT_REST,
    GT_FIELD,
    GT_FIELD_REST,
    GT_TAG
};

static bool span_is(rf_span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* Splits [p, end) at `sep` into at most cap spans; -1 when there are more. */
static int split_at(const char *p, const char *end, char sep, rf_span *out, uint32_t cap)
{
    uint32_t n = 0;
    for (;;) {
        const char *e = memchr(p, sep, (size_t)(end - p));
        if (!e)
            e = end;
        if (n == cap)
            return -1;
        out[n++] = (rf_span){p, (uint32_t)(e - p)};
        if (e == end)
            return (int)n;
        p = e + 1;
    }
}

/* "k=v,k2=v2" into keys/vals; both sides non-empty. */
static int parse_tags(const char *p, const char *end, rf_span *keys, rf_span *vals, uint32_t *n,
                      const char *what, rf_err *err)
{
    rf_span items[RF_GT_MAX_TAGS];
    int k = split_at(p, end, ',', items, RF_GT_MAX_TAGS);
    if (k < 0)
        return rf_err_set(err, EINVAL, "%s: at most %d tags", what, RF_GT_MAX_TAGS);
    for (int i = 0; i < k; i++) {
        const char *eq = memchr(items[i].p, '=', items[i].len);
        if (!eq || eq == items[i].p || eq + 1 == items[i].p + items[i].len)
            return rf_err_set(err, EINVAL, "%s: tag '%.*s' is not key=value", what,
                              (int)items[i].len, items[i].p);
        keys[i] = (rf_span){items[i].p, (uint32_t)(eq - items[i].p)};
        vals[i] = (rf_span){eq + 1, (uint32_t)(items[i].p + items[i].len - eq - 1)};
    }
    *n = (uint32_t)k;
    return 0;
}

static int compile_one(rf_gt_template *t, const char *spec, rf_err *err)
{
    size_t len = strlen(spec);
    if (!(t->text = malloc(len + 1)))
        return rf_err_set(err, ENOMEM, "graphite template: out of memory");
    memcpy(t->text, spec, len + 1);
    const char *tok[4], *tokend[4];
    int ntok = 0;
    for (const char *p = t->text, *end = p + len; p < end;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (p == end)
            break;
        if (ntok == 3)
            return rf_err_set(err, EINVAL, "graphite template '%s': more than 3 words", spec);
        tok[ntok] = p;
        while (p < end && !isspace((unsigned char)*p))
            p++;
        tokend[ntok++] = p;
    }
    if (ntok == 0)
        return rf_err_set(err, EINVAL, "graphite template: empty");
    int ti = 0;
    bool tags = false;
    if (ntok == 3) {
        ti = 1;
        tags = true;
    } else if (ntok == 2) {
        tags = memchr(tok[1], '=', (size_t)(tokend[1] - tok[1])) != NULL;
        ti = tags ? 0 : 1;
    }
    if (ti == 1) {
        int n = split_at(tok[0], tokend[0], '.', t->filter, RF_GT_MAX_PARTS);
        if (n < 0)
            return rf_err_set(err, EINVAL, "graphite template '%s': filter longer than %d parts",
                              spec, RF_GT_MAX_PARTS);
        for (int i = 0; i < n; i++)
            if (t->filter[i].len == 0)
                return rf_err_set(err, EINVAL, "graphite template '%s': empty filter part", spec);
        t->nfilter = (uint32_t)n;
    }
    rf_span part[RF_GT_MAX_PARTS];
    int n = split_at(tok[ti], tokend[ti], '.', part, RF_GT_MAX_PARTS);
    if (n < 0)
        return rf_err_set(err, EINVAL, "graphite template '%s': longer than %d parts", spec,
                          RF_GT_MAX_PARTS);
    bool rest = false, named = false;
    for (int i = 0; i < n; i++) {
        uint8_t r = GT_TAG;
        if (part[i].len == 0)
            r = GT_SKIP;
        else if (span_is(part[i], "measurement"))
            r = GT_MEASUREMENT;
        else if (span_is(part[i], "measurement*"))
            r = GT_MEASUREMENT_REST;
        else if (span_is(part[i], "field"))
            r = GT_FIELD;
        else if (span_is(part[i], "field*"))
            r = GT_FIELD_REST;
        if (r == GT_MEASUREMENT_REST || r == GT_FIELD_REST) {
            if (rest)
                return rf_err_set(
                    err, EINVAL, "graphite template '%s': either 'measurement*' or 'field*'", spec);
            if (i != n - 1)
                return rf_err_set(err, EINVAL,
                                  "graphite template '%s': '%.*s' takes the rest of the path, "
                                  "it must come last",
                                  spec, (int)part[i].len, part[i].p);
            rest = true;
        }
        named |= r != GT_SKIP;
        t->role[i] = r;
        t->part[i] = part[i];
    }
    if (!named)
        return rf_err_set(err, EINVAL, "graphite template '%s': names nothing", spec);
    t->nparts = (uint32_t)n;
    if (tags)
        return parse_tags(tok[ti + 1], tokend[ti + 1], t->tag_key, t->tag_val, &t->ntags,
                          "graphite template", err);
    return 0;
}

static bool same_filter(const rf_gt_template *a, const rf_gt_template *b)
{
    if (a->nfilter != b->nfilter)
        return false;
    for (uint32_t i = 0; i < a->nfilter; i++)
        if (a->filter[i].len != b->filter[i].len ||
            memcmp(a->filter[i].p, b->filter[i].p, a->filter[i].len) != 0)
            return false;
    return true;
}

rf_graphite_templates *rf_graphite_templates_new(const char *const *specs, size_t n,
                                                 const char *separator, const char *tags,
                                                 rf_err *err)
{
    if (n > RF_GT_MAX) {
        rf_err_set(err, EINVAL, "graphite: at most %d templates, got %zu", RF_GT_MAX, n);
        return NULL;
    }
    rf_graphite_templates *g = calloc(1, sizeof(*g));
    if (!g) {
        rf_err_set(err, ENOMEM, "graphite templates: out of memory");
        return NULL;
    }
    g->default_idx = -1;
    if (!separator)
        separator = ".";
    size_t sl = strlen(separator);
    if (sl == 0 || sl >= sizeof(g->sep)) {
        rf_err_set(err, EINVAL, "graphite separator: 1 to %zu bytes", sizeof(g->sep) - 1);
        goto fail;
    }
    memcpy(g->sep, separator, sl + 1);
    g->sep_len = (uint32_t)sl;
    if (tags && tags[0]) {
        size_t tl = strlen(tags);
        if (!(g->tags_text = malloc(tl + 1))) {
            rf_err_set(err, ENOMEM, "graphite templates: out of memory");
            goto fail;
        }
        memcpy(g->tags_text, tags, tl + 1);
        if (parse_tags(g->tags_text, g->tags_text + tl, g->tag_key, g->tag_val, &g->ntags,
                       "graphite tags", err) < 0)
            goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        rf_gt_template *t = &g->t[g->n++];
        if (compile_one(t, specs[i], err) < 0)
            goto fail;
        for (size_t j = 0; j < i; j++) {
            if (same_filter(&g->t[j], t)) {
                rf_err_set(err, EINVAL, "graphite template '%s': %s", specs[i],
                           t->nfilter ? "the same filter as an earlier one"
                                      : "a second template without a filter");
                goto fail;
            }
        }
        if (!t->nfilter)
            g->default_idx = (int)i;
    }
    return g;
fail:
    rf_graphite_templates_free(g);
    return NULL;
}

void rf_graphite_templates_free(rf_graphite_templates *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->n; i++)
        free(g->t[i].text);
    free(g->tags_text);
    free(g);
}

/* Telegraf's filter tree, walked over the filters themselves: at depth d
 * among the candidates `set`, an exact part first, then '*'; a filter that
 * ends here is the fallback (as a tree node's own template). */
static int search(const rf_graphite_templates *g, uint64_t set, const rf_span *path, uint32_t np,
                  uint32_t d)
{
    uint64_t exact = 0, wild = 0;
    int here = -1;
    for (uint32_t i = 0; i < g->n; i++) {
        if (!(set >> i & 1))
            continue;
        const rf_gt_template *t = &g->t[i];
        if (t->nfilter == d) {
            here = (int)i;
        } else if (d < np) {
            if (span_is(t->filter[d], "*"))
                wild |= 1ull << i;
            else if (t->filter[d].len == path[d].len &&
                     memcmp(t->filter[d].p, path[d].p, path[d].len) == 0)
                exact |= 1ull << i;
        }
    }
    if (exact) {
        int r = search(g, exact, path, np, d + 1);
        if (r >= 0)
            return r;
    }
    if (wild)
        return search(g, wild, path, np, d + 1);
    return here;
}

const rf_gt_template *rf_gt_match(const rf_graphite_templates *g, const rf_span *path, uint32_t np)
{
    uint64_t set = 0;
    for (uint32_t i = 0; i < g->n; i++)
        if (g->t[i].nfilter)
            set |= 1ull << i;
    int r = set ? search(g, set, path, np, 0) : -1;
    if (r < 0)
        r = g->default_idx;
    return r < 0 ? NULL : &g->t[r];
}

/* Appends the parts of `role` (joined by the separator) at out + *n. */
static bool join_role(const rf_graphite_templates *g, const rf_gt_template *t, uint8_t role,
                      rf_span key, const rf_span *path, uint32_t np, rf_span rest, char *out,
                      size_t *n, size_t cap)
{
    bool any = false;
    for (uint32_t i = 0; i < t->nparts && i < np; i++) {
        uint8_t r = t->role[i];
        bool greedy = (r == GT_MEASUREMENT_REST && role == GT_MEASUREMENT) ||
                      (r == GT_FIELD_REST && role == GT_FIELD);
        if (r != role && !greedy)
            continue;
        if (r == GT_TAG && !span_is(key, "") &&
            (t->part[i].len != key.len || memcmp(t->part[i].p, key.p, key.len) != 0))
            continue;
        const char *s = path[i].p;
        size_t len = greedy ? (size_t)(rest.p + rest.len - s) : path[i].len;
        if (*n + len * (1 + g->sep_len) + g->sep_len > cap)
            return false;
        if (any) {
            memcpy(out + *n, g->sep, g->sep_len);
            *n += g->sep_len;
        }
        any = true;
        for (size_t k = 0; k < len; k++) {
            if (greedy && s[k] == '.' && g->sep_len != 1) {
                memcpy(out + *n, g->sep, g->sep_len);
                *n += g->sep_len;
            } else {
                out[(*n)++] = greedy && s[k] == '.' ? g->sep[0] : s[k];
            }
        }
    }
    return true;
}

static bool has_key(const rf_series_parts *parts, rf_span key)
{
    for (uint32_t i = 0; i < parts->ntags; i++)
        if (parts->tags[i].key.len == key.len && memcmp(parts->tags[i].key.p, key.p, key.len) == 0)
            return true;
    return false;
}

static enum rf_parse_result add_tag(rf_parse_ctx *ctx, rf_series_parts *parts, rf_span k, rf_span v)
{
    if (has_key(parts, k))
        return RF_PARSE_OK;
    if (parts->ntags >= ctx->cfg.max_tags)
        return RF_PARSE_REJ_TOO_MANY_TAGS;
    parts->tags[parts->ntags++] = (rf_tag){.key = k, .value = v, .has_value = true};
    return RF_PARSE_OK;
}

enum rf_parse_result rf_gt_apply(rf_parse_ctx *ctx, const rf_graphite_templates *g, rf_span whole,
                                 rf_series_parts *parts, rf_span *field)
{
    rf_span path[RF_GT_MAX_PARTS + 1];
    uint32_t np = 0;
    const char *p = whole.p, *end = p + whole.len;
    while (np < RF_GT_MAX_PARTS + 1) {
        const char *e = memchr(p, '.', (size_t)(end - p));
        path[np++] = (rf_span){p, (uint32_t)((e ? e : end) - p)};
        if (!e)
            break;
        p = e + 1;
    }
    const rf_gt_template *t = rf_gt_match(g, path, np);
    enum rf_parse_result r;
    if (!t) { /* the whole path, field "value", as without templates */
        for (uint32_t i = 0; i < g->ntags; i++)
            if ((r = add_tag(ctx, parts, g->tag_key[i], g->tag_val[i])))
                return r;
        return RF_PARSE_OK;
    }
    char *out = ctx->unesc;
    size_t n = 0, cap = ctx->cfg.max_line_len;
    const rf_span none = {"", 0};
    size_t m0 = n;
    if (!join_role(g, t, GT_MEASUREMENT, none, path, np, whole, out, &n, cap))
        return RF_PARSE_REJ_LINE_TOO_LONG;
    if (n > m0)
        parts->measurement = (rf_span){out + m0, (uint32_t)(n - m0)};
    size_t f0 = n;
    if (!join_role(g, t, GT_FIELD, none, path, np, whole, out, &n, cap))
        return RF_PARSE_REJ_LINE_TOO_LONG;
    if (n > f0)
        *field = (rf_span){out + f0, (uint32_t)(n - f0)};
    /* The path's own ";" tags are already in parts and win; then the tags
     * the template takes from the path, its default tags, the global ones. */
    for (uint32_t i = 0; i < t->nparts && i < np; i++) {
        if (t->role[i] != GT_TAG || has_key(parts, t->part[i]))
            continue;
        size_t v0 = n;
        if (!join_role(g, t, GT_TAG, t->part[i], path, np, whole, out, &n, cap))
            return RF_PARSE_REJ_LINE_TOO_LONG;
        if ((r = add_tag(ctx, parts, t->part[i], (rf_span){out + v0, (uint32_t)(n - v0)})))
            return r;
    }
    for (uint32_t i = 0; i < t->ntags; i++)
        if ((r = add_tag(ctx, parts, t->tag_key[i], t->tag_val[i])))
            return r;
    for (uint32_t i = 0; i < g->ntags; i++)
        if ((r = add_tag(ctx, parts, g->tag_key[i], g->tag_val[i])))
            return r;
    return RF_PARSE_OK;
}
