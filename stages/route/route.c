/* Routing: subject patterns, subject templates, route-set interning and the
 * per-slot route cache. See route.h for the contract. */
#include "stages/route/route.h"

#include "core/mem/bound.h"
#include "core/stats/stats.h"
#include "core/mem/mem.h"
#include "stages/match/match.h"


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#define UNRESOLVED UINT32_MAX
#define ROUTE_WORDS (RF_ROUTER_MAX_ROUTES / 64u)

/* ---------------------------------------------------------------- patterns */

typedef struct pattern {
    uint8_t ntok;
    bool tail_wild; /* last token is '>' */
    uint8_t tok_len[RF_SUBJECT_MAX_TOKENS];
    uint16_t tok_off[RF_SUBJECT_MAX_TOKENS];
    char text[RF_SUBJECT_MAX];
} pattern;

/* A split literal subject. */
typedef struct subject_toks {
    uint8_t ntok;
    uint8_t tok_len[RF_SUBJECT_MAX_TOKENS];
    uint16_t tok_off[RF_SUBJECT_MAX_TOKENS];
    const char *text;
} subject_toks;

static int pattern_compile(const char *src, pattern *p, rf_err *err)
{
    size_t len = strlen(src);
    if (len == 0)
        return rf_err_set(err, EINVAL, "subject pattern is empty");
    if (len >= RF_SUBJECT_MAX)
        return rf_err_set(err, EINVAL, "subject pattern '%.40s...' is longer than %u bytes", src,
                          RF_SUBJECT_MAX - 1);
    memcpy(p->text, src, len + 1);
    p->ntok = 0;
    p->tail_wild = false;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = src[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            return rf_err_set(err, EINVAL, "subject pattern '%s': whitespace at byte %zu", src, i);
        if (c != '.' && c != '\0')
            continue;
        size_t tl = i - start;
        unsigned tn = p->ntok + 1u;
        if (tl == 0)
            return rf_err_set(err, EINVAL, "subject pattern '%s': token %u is empty", src, tn);
        if (p->ntok == RF_SUBJECT_MAX_TOKENS)
            return rf_err_set(err, EINVAL, "subject pattern '%s': more than %u tokens", src,
                              RF_SUBJECT_MAX_TOKENS);
        const char *t = src + start;
        for (size_t j = 0; j < tl; j++) {
            if ((t[j] == '*' || t[j] == '>') && tl != 1)
                return rf_err_set(err, EINVAL,
                                  "subject pattern '%s': token %u '%.*s': a wildcard ('*' or '>') "
                                  "must be a whole token",
                                  src, tn, (int)tl, t);
        }
        if (tl == 1 && t[0] == '>' && c != '\0')
            return rf_err_set(
                err, EINVAL, "subject pattern '%s': token %u '>' is only allowed as the last token",
                src, tn);
        if (tl == 1 && t[0] == '>')
            p->tail_wild = true;
        p->tok_off[p->ntok] = (uint16_t)start;
        p->tok_len[p->ntok] = (uint8_t)tl;
        p->ntok++;
        start = i + 1;
    }
    return 0;
}

static bool subject_split(const char *s, size_t len, subject_toks *st)
{
    st->text = s;
    st->ntok = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (st->ntok == RF_SUBJECT_MAX_TOKENS || i == start)
            return false;
        st->tok_off[st->ntok] = (uint16_t)start;
        st->tok_len[st->ntok] = (uint8_t)(i - start);
        st->ntok++;
        start = i + 1;
    }
    return true;
}

static bool pattern_match(const pattern *p, const subject_toks *st)
{
    unsigned fixed = p->tail_wild ? p->ntok - 1u : p->ntok;
    if (p->tail_wild ? st->ntok <= fixed : st->ntok != fixed)
        return false;
    for (unsigned i = 0; i < fixed; i++) {
        uint8_t pl = p->tok_len[i];
        const char *pt = p->text + p->tok_off[i];
        if (pl == 1 && pt[0] == '*')
            continue;
        if (pl != st->tok_len[i] || memcmp(pt, st->text + st->tok_off[i], pl) != 0)
            return false;
    }
    return true;
}

int rf_subject_pattern_check(const char *pattern_text, rf_err *err)
{
    pattern p;
    return pattern_compile(pattern_text, &p, err);
}

bool rf_subject_match(const char *pattern_text, const char *subject)
{
    pattern p;
    subject_toks st;
    if (pattern_compile(pattern_text, &p, NULL) != 0)
        return false;
    size_t len = strlen(subject);
    if (len >= RF_SUBJECT_MAX || !subject_split(subject, len, &st))
        return false;
    return pattern_match(&p, &st);
}

/* ---------------------------------------------------------------- templates */

enum part_kind {
    PART_LIT,
    PART_MEAS,
    PART_FIELD,
    PART_TAG
};

#define TEMPLATE_MAX_PARTS 32u

typedef struct tmpl_part {
    uint8_t kind;
    uint16_t off, len; /* into tmpl.text: literal bytes or the tag name */
} tmpl_part;

typedef struct tmpl {
    uint32_t nparts;
    tmpl_part parts[TEMPLATE_MAX_PARTS];
    char text[RF_SUBJECT_MAX];
} tmpl;

static int tmpl_compile(const char *src, tmpl *t, rf_err *err)
{
    size_t len = strlen(src);
    if (len == 0 || len >= RF_SUBJECT_MAX)
        return rf_err_set(err, EINVAL, "subject template '%s': length must be 1..%u", src,
                          RF_SUBJECT_MAX - 1);
    memcpy(t->text, src, len + 1);
    t->nparts = 0;
    size_t i = 0;
    while (i < len) {
        if (t->nparts == TEMPLATE_MAX_PARTS)
            return rf_err_set(err, EINVAL, "subject template '%s': too many parts", src);
        tmpl_part *p = &t->parts[t->nparts++];
        if (src[i] == '{') {
            const char *close = strchr(src + i, '}');
            if (!close || close == src + i + 1)
                return rf_err_set(err, EINVAL,
                                  "subject template '%s': '{' at byte %zu has no name or no '}'",
                                  src, i);
            size_t nl = (size_t)(close - (src + i + 1));
            p->off = (uint16_t)(i + 1);
            p->len = (uint16_t)nl;
            if (nl == 11 && memcmp(src + i + 1, "measurement", 11) == 0)
                p->kind = PART_MEAS;
            else if (nl == 5 && memcmp(src + i + 1, "field", 5) == 0)
                p->kind = PART_FIELD;
            else
                p->kind = PART_TAG;
            i += nl + 2;
        } else {
            size_t j = i;
            while (j < len && src[j] != '{') {
                if (src[j] == '}' || src[j] == '*' || src[j] == '>' || src[j] == ' ')
                    return rf_err_set(err, EINVAL,
                                      "subject template '%s': '%c' at byte %zu is not allowed", src,
                                      src[j], j);
                j++;
            }
            p->kind = PART_LIT;
            p->off = (uint16_t)i;
            p->len = (uint16_t)(j - i);
            i = j;
        }
    }
    return 0;
}

/* Returns the subject length; *truncated set when it did not fit. */
static size_t tmpl_build(const tmpl *t, const rf_series_key *key, char *buf, bool *truncated)
{
    size_t o = 0;
    *truncated = false;
    for (uint32_t i = 0; i < t->nparts; i++) {
        const tmpl_part *p = &t->parts[i];
        size_t room = RF_SUBJECT_MAX - o;
        size_t w = 0;
        const char *v = NULL;
        size_t vl = 0;
        switch (p->kind) {
        case PART_LIT:
            w = p->len < room - 1 ? p->len : room - 1;
            memcpy(buf + o, t->text + p->off, w);
            if (w < p->len)
                *truncated = true;
            break;
        case PART_MEAS:
            v = key->text;
            vl = key->measurement_len;
            break;
        case PART_FIELD:
            v = key->text + key->field_offset;
            vl = key->len - key->field_offset;
            break;
        default: {
            char name[RF_SUBJECT_MAX];
            memcpy(name, t->text + p->off, p->len);
            name[p->len] = '\0';
            if (!rf_series_key_find_tag(key, name, p->len, &v, &vl)) {
                v = "_";
                vl = 1;
            }
            break;
        }
        }
        if (p->kind != PART_LIT) {
            w = rf_series_key_unescape(v, vl, buf + o, room, true);
            if (w == 0 && room > 1) {
                buf[o] = '_'; /* an empty value would make an empty token */
                w = 1;
            }
            if (w < vl && w == room - 1)
                *truncated = true;
        }
        o += w;
        buf[o] = '\0';
        if (*truncated)
            break;
    }
    if (*truncated) {
        /* Cut back to a token boundary so the subject stays well formed. */
        char *dot = memrchr(buf, '.', o);
        o = dot ? (size_t)(dot - buf) : o;
        buf[o] = '\0';
    }
    return o;
}

int rf_subject_build(const char *template_text, const rf_series_key *key, char *buf, rf_err *err)
{
    tmpl t;
    int rc = tmpl_compile(template_text, &t, err);
    if (rc)
        return rc;
    bool trunc;
    return (int)tmpl_build(&t, key, buf, &trunc);
}

/* ---------------------------------------------------------------- route table */

typedef struct route {
    pattern pat;
    uint8_t cls;
    uint16_t n_sinks;
    uint16_t *sinks;
} route;

typedef struct set_entry {
    rf_route_set pub;
    uint64_t bits[ROUTE_WORDS];
} set_entry;

/* Everything that a configuration determines; swapped whole on reconfigure. */
typedef struct route_table {
    uint32_t n_routes;
    uint32_t n_sinks;
    route *routes;
    tmpl templates[2]; /* RF_SUBJ_DATA, RF_SUBJ_AGGREGATE */
    set_entry **sets;  /* by id; sets[0] is the empty set */
    uint8_t *set_flags;
    uint32_t n_sets, cap_sets;
    uint32_t *hash; /* open addressing: set id, 0 = empty (set 0 is never hashed) */
    uint32_t hash_mask;
} route_table;

typedef struct name_cache {
    uint32_t n;
    char **names;
    uint32_t *ids;
} name_cache;

struct rf_router {
    route_table *tab;
    uint32_t max_slots;
    uint32_t *cache[2];
    name_cache names[2]; /* RF_SUBJ_ALERT, RF_SUBJ_CORRELATED */
    rf_router_key_fn key_fn;
    void *key_ctx;
    rf_router_stats st;
};

static void table_free(route_table *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n_routes; i++)
        free(t->routes[i].sinks);
    free(t->routes);
    for (uint32_t i = 0; i < t->n_sets; i++)
        free(t->sets[i]);
    free(t->sets);
    free(t->set_flags);
    free(t->hash);
    free(t);
}

static set_entry *set_alloc(uint32_t n_sinks)
{
    set_entry *s = calloc(1, sizeof(*s) + n_sinks * sizeof(uint16_t));
    if (s)
        s->pub.sinks = (const uint16_t *)(s + 1);
    return s;
}

static int table_build(const rf_router_config *cfg, route_table **out, rf_err *err)
{
    if (cfg->n_routes > RF_ROUTER_MAX_ROUTES)
        return rf_err_set(err, EINVAL, "routes: %u routes, at most %u are supported", cfg->n_routes,
                          RF_ROUTER_MAX_ROUTES);
    if (cfg->n_sink_names > RF_ROUTER_MAX_SINKS)
        return rf_err_set(err, EINVAL, "sinks: %u sinks, at most %u are supported",
                          cfg->n_sink_names, RF_ROUTER_MAX_SINKS);
    route_table *t = calloc(1, sizeof(*t));
    if (!t)
        return rf_err_set(err, ENOMEM, "routes: out of memory");
    int rc = 0;
    t->n_sinks = cfg->n_sink_names;
    t->routes = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof(route));
    t->cap_sets = 64;
    t->sets = calloc(t->cap_sets, sizeof(*t->sets));
    t->set_flags = calloc(t->cap_sets, 1);
    t->hash_mask = 127;
    t->hash = calloc(t->hash_mask + 1, sizeof(uint32_t));
    if (!t->routes || !t->sets || !t->set_flags || !t->hash) {
        rc = rf_err_set(err, ENOMEM, "routes: out of memory");
        goto fail;
    }
    t->sets[0] = set_alloc(0);
    if (!t->sets[0]) {
        rc = rf_err_set(err, ENOMEM, "routes: out of memory");
        goto fail;
    }
    t->n_sets = 1;
    const char *tp[2] = {
        cfg->data_template ? cfg->data_template : "telemetry.{measurement}.{field}",
        cfg->aggregate_template ? cfg->aggregate_template : "aggregate.{measurement}.{field}"};
    for (int i = 0; i < 2; i++) {
        rc = tmpl_compile(tp[i], &t->templates[i], err);
        if (rc)
            goto fail;
    }
    for (uint32_t i = 0; i < cfg->n_routes; i++) {
        const rf_route_config *rc_ = &cfg->routes[i];
        route *r = &t->routes[i];
        t->n_routes = i + 1;
        const char *rname = rc_->name ? rc_->name : "(unnamed)";
        if (!rc_->pattern) {
            rc = rf_err_set(err, EINVAL, "route %u (%s): no subject pattern", i, rname);
            goto fail;
        }
        rc = pattern_compile(rc_->pattern, &r->pat, err);
        if (rc) {
            rf_err_wrap(err, "route %u (%s): ", i, rname);
            goto fail;
        }
        if (rc_->n_sinks == 0) {
            rc = rf_err_set(err, EINVAL, "route %u (%s): no sinks", i, rname);
            goto fail;
        }
        r->cls = rc_->cls == RF_ROUTE_CRITICAL ? RF_ROUTE_CRITICAL : RF_ROUTE_STANDARD;
        r->sinks = calloc(rc_->n_sinks, sizeof(uint16_t));
        if (!r->sinks) {
            rc = rf_err_set(err, ENOMEM, "routes: out of memory");
            goto fail;
        }
        for (uint32_t j = 0; j < rc_->n_sinks; j++) {
            const char *sn = rc_->sinks[j];
            uint32_t k = 0;
            while (k < cfg->n_sink_names && (!sn || strcmp(cfg->sink_names[k], sn) != 0))
                k++;
            if (k == cfg->n_sink_names) {
                rc = rf_err_set(err, EINVAL, "route %u (%s): unknown sink '%s'", i, rname,
                                sn ? sn : "(null)");
                goto fail;
            }
            r->sinks[r->n_sinks++] = (uint16_t)k;
        }
    }
    *out = t;
    return 0;
fail:
    table_free(t);
    return rc;
}

static uint32_t bits_hash(const uint64_t *bits)
{
    return (uint32_t)XXH3_64bits(bits, ROUTE_WORDS * sizeof(uint64_t));
}

static int table_grow_hash(route_table *t)
{
    uint32_t nm = t->hash_mask * 2 + 1;
    uint32_t *nh = calloc(nm + 1, sizeof(uint32_t));
    if (!nh)
        return -ENOMEM;
    for (uint32_t id = 1; id < t->n_sets; id++) {
        uint32_t h = bits_hash(t->sets[id]->bits) & nm;
        while (nh[h])
            h = (h + 1) & nm;
        nh[h] = id;
    }
    free(t->hash);
    t->hash = nh;
    t->hash_mask = nm;
    return 0;
}

/* The id of the set for a matched-route bitset, interning it if new.
 * Returns UNRESOLVED when the set cannot be created (limit or memory). */
static uint32_t table_intern(route_table *t, const uint64_t *bits)
{
    bool any = false;
    for (unsigned w = 0; w < ROUTE_WORDS; w++)
        any |= bits[w] != 0;
    if (!any)
        return RF_ROUTE_SET_NONE;
    uint32_t h = bits_hash(bits) & t->hash_mask;
    for (uint32_t id; (id = t->hash[h]) != 0; h = (h + 1) & t->hash_mask) {
        if (memcmp(t->sets[id]->bits, bits, sizeof(t->sets[id]->bits)) == 0)
            return id;
    }
    if (t->n_sets >= RF_ROUTER_MAX_SETS)
        return UNRESOLVED;
    /* Union of sinks; critical wins when a sink is reached by both classes. */
    uint8_t reach[RF_ROUTER_MAX_SINKS] = {0}; /* 1 standard, 2 critical */
    for (uint32_t i = 0; i < t->n_routes; i++) {
        if (!(bits[i / 64] >> (i % 64) & 1))
            continue;
        const route *r = &t->routes[i];
        for (uint16_t j = 0; j < r->n_sinks; j++) {
            uint8_t v = r->cls == RF_ROUTE_CRITICAL ? 2 : 1;
            if (reach[r->sinks[j]] < v)
                reach[r->sinks[j]] = v;
        }
    }
    uint32_t n = 0;
    for (uint32_t k = 0; k < t->n_sinks; k++)
        n += reach[k] != 0;
    set_entry *s = set_alloc(n);
    if (!s)
        return UNRESOLVED;
    uint16_t *sinks = (uint16_t *)s->pub.sinks;
    uint16_t o = 0;
    for (uint32_t pass = 2; pass >= 1; pass--) {
        for (uint32_t k = 0; k < t->n_sinks; k++) {
            if (reach[k] == pass)
                sinks[o++] = (uint16_t)k;
        }
        if (pass == 2)
            s->pub.n_critical = o;
    }
    s->pub.n_sinks = o;
    s->pub.flags = s->pub.n_critical ? RF_ROUTESET_CRITICAL : 0;
    memcpy(s->bits, bits, sizeof(s->bits));
    if (t->n_sets == t->cap_sets) {
        uint32_t nc = t->cap_sets * 2;
        set_entry **ns = realloc(t->sets, nc * sizeof(*ns));
        if (ns)
            t->sets = ns;
        uint8_t *nf = realloc(t->set_flags, nc);
        if (nf)
            t->set_flags = nf;
        if (!ns || !nf) {
            free(s);
            return UNRESOLVED;
        }
        t->cap_sets = nc;
    }
    if ((t->n_sets + 1) * 2 > t->hash_mask + 1 && table_grow_hash(t) != 0) {
        free(s);
        return UNRESOLVED;
    }
    uint32_t id = t->n_sets;
    /* Relaxed: pairs with the relaxed load in rf_router_stats_read (a count
     * for the ops views; the worker is the only writer). */
    __atomic_store_n(&t->n_sets, id + 1, __ATOMIC_RELAXED);
    s->pub.id = id;
    t->sets[id] = s;
    t->set_flags[id] = (uint8_t)s->pub.flags;
    h = bits_hash(bits) & t->hash_mask;
    while (t->hash[h])
        h = (h + 1) & t->hash_mask;
    t->hash[h] = id;
    return id;
}

static uint32_t table_resolve_subject(route_table *t, const char *subject, size_t len,
                                      rf_router_stats *st)
{
    subject_toks toks;
    if (!subject_split(subject, len, &toks))
        return RF_ROUTE_SET_NONE;
    uint64_t bits[ROUTE_WORDS] = {0};
    for (uint32_t i = 0; i < t->n_routes; i++) {
        if (pattern_match(&t->routes[i].pat, &toks))
            bits[i / 64] |= 1ull << (i % 64);
    }
    RF_STAT_ADD(st->resolved, 1);
    uint32_t id = table_intern(t, bits);
    if (id == UNRESOLVED) {
        RF_STAT_ADD(st->sets_exhausted, 1);
        id = RF_ROUTE_SET_NONE;
    }
    return id;
}

/* ---------------------------------------------------------------- router */

static void names_resolve(rf_router *r, int which)
{
    name_cache *nc = &r->names[which];
    const char *prefix = which == 0 ? "alert." : "correlated.";
    for (uint32_t i = 0; i < nc->n; i++) {
        char subj[RF_SUBJECT_MAX];
        int n = snprintf(subj, sizeof(subj), "%s%s", prefix, nc->names[i] ? nc->names[i] : "_");
        if (n < 0 || (size_t)n >= sizeof(subj)) {
            RF_STAT_ADD(r->st.subject_truncated, 1);
            nc->ids[i] = RF_ROUTE_SET_NONE;
            continue;
        }
        nc->ids[i] = table_resolve_subject(r->tab, subj, (size_t)n, &r->st);
    }
}

static void names_free(name_cache *nc)
{
    for (uint32_t i = 0; i < nc->n; i++)
        free(nc->names[i]);
    free(nc->names);
    free(nc->ids);
    memset(nc, 0, sizeof(*nc));
}

int rf_router_new(const rf_router_config *cfg, uint32_t max_slots, rf_router **out, rf_err *err)
{
    rf_router *r = calloc(1, sizeof(*r));
    if (!r)
        return rf_err_set(err, ENOMEM, "router: out of memory");
    r->max_slots = max_slots;
    for (int i = 0; i < 2; i++) {
        /* Read per event: core/mem, on the worker's node in the engine's scope. */
        r->cache[i] = rf_mem_zalloc((max_slots ? max_slots : 1) * sizeof(uint32_t), 4);
        if (!r->cache[i]) {
            rf_router_free(r);
            return rf_err_set(err, ENOMEM, "router: out of memory for %u slots", max_slots);
        }
        memset(r->cache[i], 0xff, (size_t)max_slots * sizeof(uint32_t));
    }
    int rc = table_build(cfg, &r->tab, err);
    if (rc) {
        rf_router_free(r);
        return rc;
    }
    __atomic_store_n(&r->st.routes, cfg->n_routes, __ATOMIC_RELAXED);
    *out = r;
    return 0;
}

void rf_router_free(rf_router *r)
{
    if (!r)
        return;
    table_free(r->tab);
    rf_mem_free(r->cache[0], (r->max_slots ? r->max_slots : 1) * sizeof(uint32_t));
    rf_mem_free(r->cache[1], (r->max_slots ? r->max_slots : 1) * sizeof(uint32_t));
    names_free(&r->names[0]);
    names_free(&r->names[1]);
    free(r);
}

int rf_router_reconfigure(rf_router *r, const rf_router_config *cfg, rf_err *err)
{
    route_table *t;
    int rc = table_build(cfg, &t, err);
    if (rc)
        return rc;
    table_free(r->tab);
    r->tab = t;
    for (int i = 0; i < 2; i++)
        memset(r->cache[i], 0xff, (size_t)r->max_slots * sizeof(uint32_t));
    names_resolve(r, 0);
    names_resolve(r, 1);
    __atomic_store_n(&r->st.routes, cfg->n_routes, __ATOMIC_RELAXED);
    RF_STAT_ADD(r->st.reconfigurations, 1);
    return 0;
}

void rf_router_set_key_source(rf_router *r, rf_router_key_fn fn, void *ctx)
{
    r->key_fn = fn;
    r->key_ctx = ctx;
}

int rf_router_bind_names(rf_router *r, enum rf_subject_class cls, const char *const *names,
                         uint32_t n, rf_err *err)
{
    if (cls != RF_SUBJ_ALERT && cls != RF_SUBJ_CORRELATED)
        return rf_err_set(err, EINVAL, "router: names bind only to alert or correlated subjects");
    name_cache nc = {0};
    nc.n = n;
    nc.names = calloc(n ? n : 1, sizeof(char *));
    nc.ids = calloc(n ? n : 1, sizeof(uint32_t));
    if (!nc.names || !nc.ids) {
        names_free(&nc);
        return rf_err_set(err, ENOMEM, "router: out of memory");
    }
    for (uint32_t i = 0; i < n; i++) {
        if (names[i] && !(nc.names[i] = strdup(names[i]))) {
            names_free(&nc);
            return rf_err_set(err, ENOMEM, "router: out of memory");
        }
    }
    int which = cls == RF_SUBJ_ALERT ? 0 : 1;
    names_free(&r->names[which]);
    r->names[which] = nc;
    names_resolve(r, which);
    return 0;
}

static uint32_t resolve_slot(rf_router *r, int cls, int32_t slot, const rf_series_key *key)
{
    if (!key && r->key_fn)
        key = r->key_fn(r->key_ctx, slot);
    if (!key)
        return UNRESOLVED; /* stays unresolved: the key may be defined later */
    char subj[RF_SUBJECT_MAX];
    bool trunc;
    size_t n = tmpl_build(&r->tab->templates[cls], key, subj, &trunc);
    RF_STAT_ADD(r->st.subject_truncated, trunc);
    uint32_t id = table_resolve_subject(r->tab, subj, n, &r->st);
    r->cache[cls][slot] = id;
    return id;
}

void rf_router_define(rf_router *r, int32_t slot, const rf_series_key *key)
{
    if (slot < 0 || (uint32_t)slot >= r->max_slots || !key)
        return;
    resolve_slot(r, RF_SUBJ_DATA, slot, key);
    resolve_slot(r, RF_SUBJ_AGGREGATE, slot, key);
}

int64_t rf_router_resolve_subject(rf_router *r, const char *subject)
{
    size_t len = strlen(subject);
    subject_toks toks;
    if (len >= RF_SUBJECT_MAX || !subject_split(subject, len, &toks))
        return -EINVAL;
    return table_resolve_subject(r->tab, subject, len, &r->st);
}

uint32_t rf_router_route_batch(rf_router *r, rf_event *events, const int32_t *slots, uint32_t n)
{
    const uint8_t *flags = r->tab->set_flags;
    uint64_t routed = 0, unrouted = 0, critical = 0, no_key = 0;
    uint32_t *data_cache = r->cache[RF_SUBJ_DATA];
    for (uint32_t i = 0; i < n; i++) {
        /* With more series than the caches hold, the cache entry is a DRAM
         * miss; fetch it ahead (data events are the common case). */
        if (i + 16 < n && (uint32_t)slots[i + 16] < r->max_slots)
            __builtin_prefetch(&data_cache[slots[i + 16]]);
        rf_event *ev = &events[i];
        uint32_t id;
        uint8_t k = ev->kind;
        if (k < RF_KIND_ALERT) {
            int cls = k == RF_KIND_AGGREGATE ? RF_SUBJ_AGGREGATE : RF_SUBJ_DATA;
            int32_t slot = slots[i];
            if ((uint32_t)slot >= r->max_slots) {
                id = RF_ROUTE_SET_NONE;
                no_key++;
            } else {
                id = r->cache[cls][slot];
                if (__builtin_expect(id == UNRESOLVED, 0)) {
                    id = resolve_slot(r, cls, slot, NULL);
                    flags = r->tab->set_flags; /* interning may have grown it */
                    if (id == UNRESOLVED) {
                        id = RF_ROUTE_SET_NONE;
                        no_key++;
                    }
                }
            }
        } else if (k == RF_KIND_ALERT) {
            uint32_t rid = (uint32_t)ev->aux;
            id = rid < r->names[0].n ? r->names[0].ids[rid] : RF_ROUTE_SET_NONE;
        } else if (k == RF_KIND_CORRELATED) {
            uint32_t pid = (uint32_t)(ev->aux >> 32);
            id = pid < r->names[1].n ? r->names[1].ids[pid] : RF_ROUTE_SET_NONE;
        } else {
            ev->route_hint = RF_ROUTE_SET_NONE; /* control events are not routed */
            continue;
        }
        ev->route_hint = id;
        uint8_t f = flags[id];
        routed += id != RF_ROUTE_SET_NONE;
        unrouted += id == RF_ROUTE_SET_NONE;
        critical += f & RF_ROUTESET_CRITICAL;
    }
    RF_STAT_ADD(r->st.routed, routed);
    RF_STAT_ADD(r->st.unrouted, unrouted);
    RF_STAT_ADD(r->st.critical, critical);
    RF_STAT_ADD(r->st.no_key, no_key);
    return (uint32_t)critical;
}

const rf_route_set *rf_router_set(const rf_router *r, uint32_t id)
{
    if (id >= r->tab->n_sets)
        return NULL;
    return &r->tab->sets[id]->pub;
}

void rf_router_stats_read(const rf_router *r, rf_router_stats *out)
{
    /* Field by field, relaxed: pairs with RF_STAT_ADD on the worker (the
     * ops views and tests read while it routes). */
#define LOAD(f) out->f = RF_STAT_LOAD(r->st.f)
    LOAD(routes);
    LOAD(resolved);
    LOAD(routed);
    LOAD(unrouted);
    LOAD(critical);
    LOAD(no_key);
    LOAD(subject_truncated);
    LOAD(sets_exhausted);
    LOAD(reconfigurations);
#undef LOAD
    out->sets = __atomic_load_n(&r->tab->n_sets, __ATOMIC_RELAXED);
}

uint64_t rf_router_memory_bound(const rf_router_config *cfg, uint32_t max_slots)
{
    if (!cfg || cfg->n_routes == 0)
        return 0;
    const uint64_t slots = max_slots ? max_slots : 1;
    uint64_t b =
        rf_mem_alloc_bound(sizeof(rf_router)) + 2 * rf_mem_alloc_bound(slots * sizeof(uint32_t));
    b +=
        rf_mem_alloc_bound(sizeof(route_table)) + rf_mem_alloc_bound(cfg->n_routes * sizeof(route));
    uint64_t sinks_per_route = cfg->n_sink_names ? cfg->n_sink_names : 1;
    b += cfg->n_routes * (rf_mem_alloc_bound(sinks_per_route * sizeof(uint16_t)) + 4096);
    uint64_t sets = cfg->n_routes < 17 ? 1ull << cfg->n_routes : RF_ROUTER_MAX_SETS;
    if (sets > RF_ROUTER_MAX_SETS)
        sets = RF_ROUTER_MAX_SETS;
    sets++; /* the empty set */
    b += sets * rf_mem_alloc_bound(sizeof(set_entry) + sinks_per_route * sizeof(uint16_t));
    uint64_t cap = 64, hash = 128;
    while (cap < sets)
        cap *= 2;
    while (hash < 2 * sets)
        hash *= 2;
    /* sets[] and set_flags doubled (old copies alive while they grow), the
     * hash rebuilt at twice the size (the old one alive meanwhile). */
    b += rf_mem_alloc_bound(cap * sizeof(set_entry *)) +
         rf_mem_alloc_bound(cap / 2 * sizeof(set_entry *));
    b += rf_mem_alloc_bound(cap) + rf_mem_alloc_bound(cap / 2);
    b += rf_mem_alloc_bound(hash * sizeof(uint32_t)) +
         rf_mem_alloc_bound(hash / 2 * sizeof(uint32_t));
    return b;
}
