/* Label sets, matchers, regular expressions and the query arena
 * (contract in promql.h and promql_pvt.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "storage/promql/promql_pvt.h"

/* ---- arena ---- */

typedef struct pq_chunk {
    struct pq_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} pq_chunk;

/* Chunks a reset let go are kept in `spare` and used again: a range query
 * resets its step arena at every step, and giving the chunks back to the
 * allocator each time cost page faults (it returns them to the kernel) that
 * were a third of a 10,000-series query's time. What is kept is the most
 * one step used. */
struct pq_arena {
    pq_chunk *head;
    pq_chunk *spare;
    size_t bytes;
};

pq_arena *pq_arena_new(void)
{
    return calloc(1, sizeof(pq_arena));
}

static void free_chunks(pq_chunk *c)
{
    for (pq_chunk *n; c; c = n) {
        n = c->next;
        free(c);
    }
}

void pq_arena_free(pq_arena *a)
{
    if (!a)
        return;
    free_chunks(a->head);
    free_chunks(a->spare);
    free(a);
}

void pq_arena_reset(pq_arena *a)
{
    pq_chunk *c = a->head;
    if (!c)
        return;
    for (pq_chunk *x = c->next, *n; x; x = n) {
        n = x->next;
        x->next = a->spare;
        a->spare = x;
    }
    c->next = NULL;
    c->used = 0;
}

/* A spare chunk of at least cap bytes, unlinked, or NULL. */
static pq_chunk *take_spare(pq_arena *a, size_t cap)
{
    for (pq_chunk **pp = &a->spare; *pp; pp = &(*pp)->next)
        if ((*pp)->cap >= cap) {
            pq_chunk *c = *pp;
            *pp = c->next;
            return c;
        }
    return NULL;
}

void *pq_arena_alloc(pq_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > (64u << 10) ? n : (64u << 10);
        pq_chunk *c = take_spare(a, cap);
        if (!c) {
            if (!(c = malloc(sizeof(*c) + cap)))
                return NULL;
            c->cap = cap;
            a->bytes += cap;
        }
        c->used = 0;
        /* A big allocation goes behind the current chunk so the rest of
         * that chunk stays usable. */
        if (a->head && n > (64u << 10)) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
        c->used = n;
        return c->data;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

size_t pq_arena_bytes(const pq_arena *a)
{
    return a->bytes;
}

/* ---- labels ---- */

const char *rf_promql_labels_get(rf_promql_labels l, const char *name)
{
    const char *p = l.buf, *end = l.buf + l.len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        int c = strcmp(p, name);
        if (c == 0)
            return v;
        if (c > 0)
            return NULL;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

void pq_lb_from(pq_lb *b, rf_promql_labels l)
{
    b->n = 0;
    const char *p = l.buf, *end = l.buf + l.len;
    while (p < end && b->n < PQ_MAX_LABELS) {
        const char *v = p + strlen(p) + 1;
        b->l[b->n++] = (pq_label){p, v};
        p = v + strlen(v) + 1;
    }
}

void pq_lb_del(pq_lb *b, const char *name)
{
    for (uint32_t i = 0; i < b->n; i++)
        if (strcmp(b->l[i].name, name) == 0) {
            b->l[i] = b->l[--b->n];
            return;
        }
}

void pq_lb_set(pq_lb *b, const char *name, const char *value)
{
    pq_lb_del(b, name);
    if (value[0] && b->n < PQ_MAX_LABELS)
        b->l[b->n++] = (pq_label){name, value};
}

void pq_lb_keep(pq_lb *b, char *const *names, size_t n)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++)
            keep = strcmp(b->l[i].name, names[j]) == 0;
        if (keep)
            b->l[k++] = b->l[i];
    }
    b->n = k;
}

static int cmp_label(const void *x, const void *y)
{
    return strcmp(((const pq_label *)x)->name, ((const pq_label *)y)->name);
}

bool pq_lb_build(pq_lb *b, pq_arena *a, rf_promql_labels *out)
{
    qsort(b->l, b->n, sizeof(b->l[0]), cmp_label);
    size_t len = 0;
    for (uint32_t i = 0; i < b->n; i++)
        len += strlen(b->l[i].name) + strlen(b->l[i].value) + 2;
    char *buf = pq_arena_alloc(a, len + 1);
    if (!buf)
        return false;
    char *p = buf;
    for (uint32_t i = 0; i < b->n; i++) {
        size_t nl = strlen(b->l[i].name) + 1, vl = strlen(b->l[i].value) + 1;
        memcpy(p, b->l[i].name, nl);
        memcpy(p + nl, b->l[i].value, vl);
        p += nl + vl;
    }
    *out = (rf_promql_labels){buf, (uint32_t)len};
    return true;
}

/* Pairwise by name then value, as Prometheus orders label sets. */
int pq_labels_cmp(rf_promql_labels a, rf_promql_labels b)
{
    const char *p = a.buf, *pe = a.buf + a.len, *q = b.buf, *qe = b.buf + b.len;
    while (p < pe && q < qe) {
        int c = strcmp(p, q);
        if (c)
            return c;
        p += strlen(p) + 1;
        q += strlen(q) + 1;
        if ((c = strcmp(p, q)))
            return c;
        p += strlen(p) + 1;
        q += strlen(q) + 1;
    }
    return (p < pe) - (q < qe);
}

bool pq_labels_eq(rf_promql_labels a, rf_promql_labels b)
{
    return a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0;
}

void pq_labels_text(rf_promql_labels l, char *buf, size_t len)
{
    size_t o = 0;
    const char *name = rf_promql_labels_get(l, "__name__");
    if (name)
        o += (size_t)snprintf(buf, len, "%s", name);
    o += (size_t)snprintf(buf + (o < len ? o : len), o < len ? len - o : 0, "{");
    bool first = true;
    const char *p = l.buf, *end = l.buf + l.len;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, "__name__") != 0) {
            o += (size_t)snprintf(buf + (o < len ? o : len), o < len ? len - o : 0, "%s%s=\"%s\"",
                                  first ? "" : ", ", p, v);
            first = false;
        }
        p = v + strlen(v) + 1;
    }
    snprintf(buf + (o < len ? o : len), o < len ? len - o : 0, "}");
}

uint64_t pq_hash(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

bool pq_valid_label_name(const char *s)
{
    if (!s[0] || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (const char *p = s + 1; *p; p++)
        if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* ---- regular expressions ---- */

void *pq_re_compile(const char *pattern, rf_err *err)
{
    int ec;
    PCRE2_SIZE eo;
    /* ANCHORED and ENDANCHORED: the whole value must match, as Prometheus'
     * "^(?:re)$" does, without splicing the user's text into another
     * pattern. UTF: label values are UTF-8, and '.' is one code point. */
    pcre2_code *re = pcre2_compile(
        (PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
        PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        rf_err_set(err, EINVAL, "invalid regular expression \"%s\": %s at offset %zu", pattern,
                   (const char *)msg, (size_t)eo);
        return NULL;
    }
    return re;
}

void pq_re_free(void *re)
{
    pcre2_code_free(re);
}

bool pq_re_match(void *re, const char *s, size_t len)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        return false;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++)
        out[(*o)++] = s[i];
}

/* Go's Regexp.Expand: $name or ${name}, name = [A-Za-z0-9_]+; a number is a
 * group index, other names are named groups; an unknown group is empty;
 * $$ is a dollar. */
bool pq_re_replace(void *re, const char *s, const char *repl, char *out, size_t cap)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        return false;
    size_t len = strlen(s);
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    if (rc < 0) {
        pcre2_match_data_free(md);
        return false;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t groups = pcre2_get_ovector_count(md);
    size_t o = 0;
    for (const char *p = repl; *p;) {
        if (*p != '$') {
            put(out, cap, &o, p++, 1);
            continue;
        }
        p++;
        if (*p == '$') {
            put(out, cap, &o, p++, 1);
            continue;
        }
        bool brace = *p == '{';
        const char *n0 = p + brace, *n1 = n0;
        while ((*n1 >= 'a' && *n1 <= 'z') || (*n1 >= 'A' && *n1 <= 'Z') ||
               (*n1 >= '0' && *n1 <= '9') || *n1 == '_')
            n1++;
        if (n1 == n0 || (brace && *n1 != '}')) {
            put(out, cap, &o, "$", 1); /* not a reference: kept as text */
            continue;
        }
        char name[64];
        size_t nl = (size_t)(n1 - n0) < sizeof(name) - 1 ? (size_t)(n1 - n0) : sizeof(name) - 1;
        memcpy(name, n0, nl);
        name[nl] = '\0';
        p = n1 + brace;
        long g = -1;
        if (strspn(name, "0123456789") == nl) {
            g = strtol(name, NULL, 10);
        } else {
            int num = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
            g = num > 0 ? num : -1;
        }
        if (g >= 0 && (uint32_t)g < groups && (int)g < rc && ov[2 * g] != PCRE2_UNSET)
            put(out, cap, &o, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    }
    out[o < cap ? o : cap - 1] = '\0';
    pcre2_match_data_free(md);
    return true;
}

/* ---- matchers ---- */

bool rf_promql_matcher_match(const rf_promql_matcher *m, rf_promql_labels l)
{
    const char *v = rf_promql_labels_get(l, m->name);
    if (!v)
        v = "";
    switch (m->op) {
    case RF_PROMQL_EQ: return strcmp(v, m->value) == 0;
    case RF_PROMQL_NE: return strcmp(v, m->value) != 0;
    case RF_PROMQL_RE: return pq_re_match(m->re, v, strlen(v));
    case RF_PROMQL_NRE: return !pq_re_match(m->re, v, strlen(v));
    }
    return false;
}

int rf_promql_matcher_init(rf_promql_matcher *m, const char *name, enum rf_promql_match op,
                           const char *value, rf_err *err)
{
    *m = (rf_promql_matcher){.op = op, .name = strdup(name), .value = strdup(value)};
    if (!m->name || !m->value) {
        rf_promql_matcher_release(m);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    if ((op == RF_PROMQL_RE || op == RF_PROMQL_NRE) && !(m->re = pq_re_compile(value, err))) {
        rf_promql_matcher_release(m);
        return -EINVAL;
    }
    return 0;
}

void rf_promql_matcher_release(rf_promql_matcher *m)
{
    free((char *)m->name);
    free((char *)m->value);
    if (m->re)
        pq_re_free(m->re);
    *m = (rf_promql_matcher){0};
}

void rf_promql_matchers_free(rf_promql_matcher *m, size_t n)
{
    if (!m)
        return;
    for (size_t i = 0; i < n; i++)
        rf_promql_matcher_release(&m[i]);
    free(m);
}

const char *rf_promql_error_name(enum rf_promql_error e)
{
    switch (e) {
    case RF_PROMQL_OK: return "";
    case RF_PROMQL_BAD_DATA: return "bad_data";
    case RF_PROMQL_EXECUTION: return "execution";
    case RF_PROMQL_TIMEOUT: return "timeout";
    case RF_PROMQL_INTERNAL: return "internal";
    }
    return "internal";
}

int rf_promql_error_status(enum rf_promql_error e)
{
    switch (e) {
    case RF_PROMQL_OK: return 200;
    case RF_PROMQL_BAD_DATA: return 400;
    case RF_PROMQL_EXECUTION: return 422;
    case RF_PROMQL_TIMEOUT: return 503;
    case RF_PROMQL_INTERNAL: return 500;
    }
    return 500;
}
