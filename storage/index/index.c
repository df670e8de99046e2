/* The series index and its PromQL source (contract in index.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/event/event.h"
#include "storage/index/index.h"
#include "storage/query/query.h"
#include "storage/segment/segment.h"
#include "storage/u64map/u64map.h"

typedef struct ix_entry {
    uint32_t labels_off, labels_len;
    uint32_t meas_off, field_off; /* NUL-terminated in the pool */
} ix_entry;

/* A posting list: the series having one label name = value. */
typedef struct ix_posting {
    uint32_t key_off, key_len; /* "name\0value" in the pool */
    uint64_t hash;
    uint32_t *ids;
    uint32_t n, cap;
} ix_posting;

struct rf_series_index {
    char *dir;
    char *pool;
    size_t pool_len, pool_cap;
    ix_entry *e;
    size_t n, cap;
    ix_posting *post; /* open addressing, key_len 0 = empty */
    size_t post_used, post_cap;
    uint64_t memory, limit;
    /* series id -> entry id + 1 (0 would read as absent: a key that cannot
     * be a metric is stored as UINT32_MAX + 1, "seen, not indexed") */
    rf_u64map by_id;
    /* The heads attached for one query (rf_series_index_set_heads): per
     * entry, its head series' index in heads->series, or UINT32_MAX. */
    const rf_store_heads *heads;
    uint32_t *head_of;
    size_t head_of_cap;
    /* Which series the next head read copies (rf_series_index_want_head):
     * every series holding points unless head_filtered; then those whose
     * bit is set in head_want (one per entry), and the keys ix does not
     * know. */
    bool head_filtered;
    uint64_t *head_want;
    size_t head_want_words;
};

/* Counts bytes about to be allocated; -ENOMEM when the index (the id map
 * and the head table included: rf_series_index_memory) would pass its
 * limit. */
static int charge(rf_series_index *ix, uint64_t bytes)
{
    ix->memory += bytes;
    return ix->limit && rf_series_index_memory(ix) > ix->limit ? -ENOMEM : 0;
}

/* Appends n bytes to the pool; returns their offset or -1. */
static long pool_add(rf_series_index *ix, const char *s, size_t n)
{
    if (ix->pool_len + n > ix->pool_cap) {
        size_t nc = ix->pool_cap ? ix->pool_cap * 2 : (1u << 16);
        while (nc < ix->pool_len + n)
            nc *= 2;
        if (nc > UINT32_MAX || charge(ix, nc - ix->pool_cap) < 0)
            return -1;
        char *p = realloc(ix->pool, nc);
        if (!p)
            return -1;
        ix->pool = p;
        ix->pool_cap = nc;
    }
    if (n) /* the pool is NULL until its first byte */
        memcpy(ix->pool + ix->pool_len, s, n);
    ix->pool_len += n;
    return (long)(ix->pool_len - n);
}

static ix_posting *posting_find(const rf_series_index *ix, const char *key, size_t len, uint64_t h)
{
    if (!ix->post_cap)
        return NULL;
    size_t i = h & (ix->post_cap - 1);
    while (ix->post[i].key_len) {
        if (ix->post[i].hash == h && ix->post[i].key_len == len &&
            memcmp(ix->pool + ix->post[i].key_off, key, len) == 0)
            return &ix->post[i];
        i = (i + 1) & (ix->post_cap - 1);
    }
    return &ix->post[i];
}

static int posting_grow(rf_series_index *ix)
{
    size_t nc = ix->post_cap ? ix->post_cap * 2 : 1024;
    if (charge(ix, (nc - ix->post_cap) * sizeof(ix_posting)) < 0)
        return -ENOMEM;
    ix_posting *p = calloc(nc, sizeof(*p));
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < ix->post_cap; i++) {
        if (!ix->post[i].key_len)
            continue;
        size_t j = ix->post[i].hash & (nc - 1);
        while (p[j].key_len)
            j = (j + 1) & (nc - 1);
        p[j] = ix->post[i];
    }
    free(ix->post);
    ix->post = p;
    ix->post_cap = nc;
    return 0;
}

static int posting_add(rf_series_index *ix, const char *key, size_t len, uint32_t id)
{
    if ((ix->post_used + 1) * 2 > ix->post_cap && posting_grow(ix) < 0)
        return -ENOMEM;
    uint64_t h = XXH3_64bits(key, len);
    ix_posting *p = posting_find(ix, key, len, h);
    if (!p->key_len) {
        long off = pool_add(ix, key, len);
        if (off < 0)
            return -ENOMEM;
        *p = (ix_posting){.key_off = (uint32_t)off, .key_len = (uint32_t)len, .hash = h};
        ix->post_used++;
    }
    if (p->n == p->cap) {
        uint32_t nc = p->cap ? p->cap * 2 : 4;
        if (charge(ix, (uint64_t)(nc - p->cap) * sizeof(uint32_t)) < 0)
            return -ENOMEM;
        uint32_t *ids = realloc(p->ids, nc * sizeof(*ids));
        if (!ids)
            return -ENOMEM;
        p->ids = ids;
        p->cap = nc;
    }
    p->ids[p->n++] = id;
    return 0;
}

/* ---- series keys ---- */

/* Copies s[0..n) without line-protocol escapes into out; returns the length. */
static size_t unescape_into(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        out[o++] = s[i];
    }
    out[o] = '\0';
    return o;
}

typedef struct kv {
    const char *k, *v;
} kv;

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const kv *)a)->k, ((const kv *)b)->k);
}

/* The label set of a series, "name\0value\0..." sorted, into out (cap
 * bytes). tags: n pairs. Returns its length or -ENOSPC. */
static long labels_of(const char *meas, const char *field, const kv *tags, size_t n_tags, char *out,
                      size_t cap)
{
    char name[1024];
    const char *le;
    if (rf_promql_metric_name(meas, field, name, sizeof(name), &le) < 0)
        return -ENOSPC;
    kv l[130];
    size_t n = 0;
    l[n++] = (kv){"__name__", name};
    if (le)
        l[n++] = (kv){"le", le};
    for (size_t i = 0; i < n_tags && n < 130; i++) {
        if (!tags[i].v[0] || strcmp(tags[i].k, "__name__") == 0 ||
            (le && strcmp(tags[i].k, "le") == 0))
            continue;
        l[n++] = tags[i];
    }
    qsort(l, n, sizeof(*l), cmp_kv);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(l[i].k, l[i - 1].k) == 0)
            continue; /* a tag given twice: the first */
        size_t kl = strlen(l[i].k) + 1, vl = strlen(l[i].v) + 1;
        if (o + kl + vl > cap)
            return -ENOSPC;
        memcpy(out + o, l[i].k, kl);
        memcpy(out + o + kl, l[i].v, vl);
        o += kl + vl;
    }
    return (long)o;
}

/* Splits a canonical key "meas,k=v,k=v field" into unescaped parts inside
 * buf (at least 2 * len + 2 bytes). Returns the number of tags or -EBADMSG. */
static int split_key(const char *t, uint32_t len, uint16_t mlen, uint32_t foff, char *buf,
                     const char **meas, const char **field, kv *tags, int max_tags)
{
    if (mlen > len || foff > len || foff < mlen)
        return -EBADMSG;
    char *o = buf;
    *meas = o;
    o += unescape_into(t, mlen, o) + 1;
    *field = o;
    o += unescape_into(t + foff, len - foff, o) + 1;
    int n = 0;
    size_t i = (size_t)mlen + 1, end = foff ? foff - 1 : 0;
    while (i < end && n < max_tags) {
        size_t c = i, eq = 0;
        bool have_eq = false;
        while (c < end && t[c] != ',') {
            if (t[c] == '\\') {
                c += 2;
                continue;
            }
            if (t[c] == '=' && !have_eq) {
                eq = c;
                have_eq = true;
            }
            c++;
        }
        if (c > end)
            c = end;
        if (!have_eq)
            eq = c;
        tags[n].k = o;
        o += unescape_into(t + i, eq - i, o) + 1;
        tags[n].v = o;
        o += unescape_into(t + eq + (have_eq ? 1 : 0), have_eq ? c - eq - 1 : 0, o) + 1;
        n++;
        i = c + 1;
    }
    return n;
}

static int add_series(rf_series_index *ix, const char *text, uint32_t len, uint16_t mlen,
                      uint32_t foff, uint32_t *id_out)
{
    *id_out = UINT32_MAX;
    char small[1024], lab[8192];
    char *buf = 2 * (size_t)len + 2 <= sizeof(small) ? small : malloc(2 * (size_t)len + 2);
    if (!buf)
        return -ENOMEM;
    const char *meas, *field;
    kv tags[128];
    int nt = split_key(text, len, mlen, foff, buf, &meas, &field, tags, 128);
    long ll = nt < 0 ? -1 : labels_of(meas, field, tags, (size_t)nt, lab, sizeof(lab));
    int rc = 0;
    if (ll < 0)
        goto out; /* a key that cannot be a metric: not indexed */
    if (ix->n == ix->cap) {
        size_t nc = ix->cap ? ix->cap * 2 : 1024;
        if (charge(ix, (nc - ix->cap) * sizeof(ix_entry)) < 0) {
            rc = -ENOMEM;
            goto out;
        }
        ix_entry *e = realloc(ix->e, nc * sizeof(*e));
        if (!e) {
            rc = -ENOMEM;
            goto out;
        }
        ix->e = e;
        ix->cap = nc;
    }
    long lo = pool_add(ix, lab, (size_t)ll), mo = pool_add(ix, meas, strlen(meas) + 1),
         fo = pool_add(ix, field, strlen(field) + 1);
    if (lo < 0 || mo < 0 || fo < 0) {
        rc = -ENOMEM;
        goto out;
    }
    uint32_t id = (uint32_t)ix->n++;
    *id_out = id;
    ix->e[id] = (ix_entry){(uint32_t)lo, (uint32_t)ll, (uint32_t)mo, (uint32_t)fo};
    for (const char *p = lab; p < lab + ll && rc == 0;) {
        const char *v = p + strlen(p) + 1;
        size_t kl = (size_t)(v + strlen(v) - p);
        rc = posting_add(ix, p, kl, id);
        p = v + strlen(v) + 1;
    }
out:
    if (buf != small)
        free(buf);
    return rc;
}

/* add_series once per series id (ix->by_id). */
static int add_series_once(rf_series_index *ix, uint64_t series_id, const char *text, uint32_t len,
                           uint16_t mlen, uint32_t foff)
{
    uint32_t id;
    int rc = add_series(ix, text, len, mlen, foff, &id);
    if (rc == 0)
        rc = rf_u64map_put(&ix->by_id, series_id, (uint64_t)id + 1);
    return rc;
}

static int index_segment(rf_series_index *ix, const rf_seg_reader *r)
{
    int rc = 0;
    for (size_t i = 0; i < r->idx.n_series && rc == 0; i++) {
        const rf_seg_series_ref *s = &r->idx.series[i];
        uint64_t v;
        if (rf_u64map_get(&ix->by_id, s->series_id, &v))
            continue;
        uint32_t len, foff;
        uint16_t mlen;
        const char *text = rf_seg_reader_key(r, s, &len, &mlen, &foff);
        if (!text)
            continue;
        rc = add_series_once(ix, s->series_id, text, len, mlen, foff);
    }
    return rc;
}

/* Sizes the tables for about n series at once: growing them by doubling
 * copied (and page-faulted) the whole pool several times over. */
static int reserve(rf_series_index *ix, size_t n)
{
    if (n <= ix->cap)
        return 0;
    ix_entry *e = realloc(ix->e, n * sizeof(*e));
    if (!e || charge(ix, (n - ix->cap) * sizeof(*e)) < 0)
        return -ENOMEM;
    ix->e = e;
    ix->cap = n;
    size_t pool = n * 48; /* label text, measurement and field: ~48 bytes a series */
    if (pool > ix->pool_cap && pool <= UINT32_MAX) {
        char *p = realloc(ix->pool, pool);
        if (!p || charge(ix, pool - ix->pool_cap) < 0)
            return -ENOMEM;
        ix->pool = p;
        ix->pool_cap = pool;
    }
    /* Distinct label pairs are fewer than series: a quarter, grown if more. */
    while (ix->post_cap < n / 2 && ix->post_cap < ((size_t)1 << 30))
        if (posting_grow(ix) < 0)
            return -ENOMEM;
    return 0;
}

#define MAX_OPEN_READERS 4096

/* Every segment of every shard: their series counts first (to size the
 * tables), then their keys. Segments past MAX_OPEN_READERS are read one at
 * a time with the tables growing as needed. */
typedef struct walk_ctx {
    rf_series_index *ix;
    rf_seg_reader *rd;
    size_t n_rd, total;
} walk_ctx;

static int on_segment(void *ctx, uint32_t shard, uint64_t seq, const char *path)
{
    walk_ctx *w = ctx;
    rf_seg_reader r;
    rf_err serr;
    (void)shard;
    (void)seq;
    if (rf_seg_reader_open(path, 0, &r, &serr) < 0)
        return 0; /* unreadable: queries skip it too (storage/query) */
    if (w->n_rd < MAX_OPEN_READERS) {
        w->rd[w->n_rd++] = r;
        w->total += r.idx.n_series;
        return 0;
    }
    int rc = index_segment(w->ix, &r);
    rf_seg_reader_close(&r);
    return rc;
}

static int index_dir(rf_series_index *ix, rf_err *err)
{
    walk_ctx w = {.ix = ix, .rd = malloc(MAX_OPEN_READERS * sizeof(rf_seg_reader))};
    if (!w.rd)
        return rf_err_set(err, ENOMEM, "out of memory");
    int rc = rf_seg_store_walk(ix->dir, on_segment, &w, err);
    if (rc == -ENOENT)
        rc = 0;                    /* no store yet (nothing written): an empty index */
    if (rc < 0 && rc != -ENOMEM) { /* the store directory cannot be read: err says why */
        for (size_t i = 0; i < w.n_rd; i++)
            rf_seg_reader_close(&w.rd[i]);
        free(w.rd);
        return rc;
    }
    rf_seg_reader *rd = w.rd;
    size_t n_rd = w.n_rd, total = w.total;
    if (rc == 0)
        rc = reserve(ix, total);
    if (rc == 0 && ix->by_id.count == 0) {
        rf_u64map_free(&ix->by_id);
        rc = rf_u64map_init(&ix->by_id, total > UINT32_MAX / 4 ? UINT32_MAX / 4 : (uint32_t)total);
    }
    for (size_t i = 0; i < n_rd; i++) {
        if (rc == 0)
            rc = index_segment(ix, &rd[i]);
        rf_seg_reader_close(&rd[i]);
    }
    free(rd);
    if (rc == -ENOMEM)
        return rf_err_set(err, ENOMEM,
                          "%s: the series index passed its memory limit (%llu bytes) "
                          "at %zu series",
                          ix->dir, (unsigned long long)ix->limit, ix->n);
    return rc < 0 ? rf_err_set(err, -rc, "%s: indexing failed: %s", ix->dir, strerror(-rc)) : 0;
}

int rf_series_index_open(const char *store_dir, uint64_t memory_limit, rf_series_index **out,
                         rf_err *err)
{
    rf_series_index *ix = calloc(1, sizeof(*ix));
    if (!ix || !(ix->dir = strdup(store_dir)) || rf_u64map_init(&ix->by_id, 1024) < 0) {
        if (ix)
            free(ix->dir);
        free(ix);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    ix->limit = memory_limit;
    int rc = index_dir(ix, err);
    if (rc < 0) {
        rf_series_index_free(ix);
        return rc;
    }
    *out = ix;
    return 0;
}

void rf_series_index_free(rf_series_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->post_cap; i++)
        free(ix->post[i].ids);
    free(ix->post);
    free(ix->e);
    free(ix->pool);
    free(ix->dir);
    free(ix->head_of);
    free(ix->head_want);
    rf_u64map_free(&ix->by_id);
    free(ix);
}

size_t rf_series_index_count(const rf_series_index *ix)
{
    return ix->n;
}

uint64_t rf_series_index_memory(const rf_series_index *ix)
{
    return ix->memory + ((uint64_t)ix->by_id.mask + 1) * sizeof(rf_u64map_entry) +
           ix->head_of_cap * sizeof(uint32_t) + ix->head_want_words * sizeof(uint64_t);
}

/* ---- the heads ---- */

bool rf_series_index_want_head(void *ctx, uint64_t series_id, uint32_t n_points)
{
    const rf_series_index *ix = ctx;
    uint64_t v;
    /* Read on a worker while the reader waits in rf_store_heads_read: ix
     * (the map and the filter) does not change until it returns. */
    if (!rf_u64map_get(&ix->by_id, series_id, &v))
        return true; /* its key: ix learns the series (set_heads) */
    if (n_points == 0)
        return false;
    if (!ix->head_filtered)
        return true;
    const uint64_t id = v - 1; /* UINT32_MAX: seen, not indexed, never selected */
    return id < (uint64_t)ix->head_want_words * 64 && (ix->head_want[id >> 6] >> (id & 63)) & 1;
}

void rf_series_index_heads_want_all(rf_series_index *ix)
{
    ix->head_filtered = false;
}

/* Sizes head_want to one bit per entry, new words zero. */
static int head_want_reserve(rf_series_index *ix)
{
    const size_t words = (ix->n + 63) / 64;
    if (words <= ix->head_want_words)
        return 0;
    if (ix->limit &&
        rf_series_index_memory(ix) + (words - ix->head_want_words) * sizeof(uint64_t) > ix->limit)
        return -ENOMEM;
    uint64_t *g = realloc(ix->head_want, words * sizeof(*g));
    if (!g)
        return -ENOMEM;
    memset(g + ix->head_want_words, 0, (words - ix->head_want_words) * sizeof(*g));
    ix->head_want = g;
    ix->head_want_words = words;
    return 0;
}

int rf_series_index_heads_want_none(rf_series_index *ix)
{
    if (head_want_reserve(ix) < 0)
        return -ENOMEM;
    if (ix->head_want_words) /* no buffer before the first series */
        memset(ix->head_want, 0, ix->head_want_words * sizeof(*ix->head_want));
    ix->head_filtered = true;
    return 0;
}

int rf_series_index_heads_want(void *ctx, const rf_promql_matcher *m, size_t n)
{
    rf_series_index *ix = ctx;
    uint32_t *ids;
    size_t n_ids;
    /* Series learnt from the heads since the filter was set have no bit yet. */
    if (!ix->head_filtered ? rf_series_index_heads_want_none(ix) < 0 : head_want_reserve(ix) < 0)
        return -ENOMEM;
    if (rf_series_index_select(ix, m, n, &ids, &n_ids) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < n_ids; i++) /* head_want covers every entry: want_none sized it */
        ix->head_want[ids[i] >> 6] |= (uint64_t)1 << (ids[i] & 63);
    free(ids);
    return 0;
}

int rf_series_index_set_heads(rf_series_index *ix, const rf_store_heads *h)
{
    ix->heads = NULL;
    if (!h)
        return 0;
    int rc = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const rf_store_head_series *s = &h->series[i];
        uint64_t v;
        if (!rf_u64map_get(&ix->by_id, s->series_id, &v))
            rc = add_series_once(ix, s->series_id, s->key, s->key_len, s->measurement_len,
                                 s->field_offset);
    }
    if (rc < 0)
        return rc;
    if (ix->head_of_cap < ix->n) {
        if (ix->limit &&
            rf_series_index_memory(ix) + (ix->n - ix->head_of_cap) * sizeof(*ix->head_of) >
                ix->limit)
            return -ENOMEM;
        uint32_t *g = realloc(ix->head_of, ix->n * sizeof(*g));
        if (!g)
            return -ENOMEM;
        ix->head_of = g;
        ix->head_of_cap = ix->n;
    }
    if (ix->n) /* an empty index has no head_of buffer yet: memset(NULL, ..., 0) is UB */
        memset(ix->head_of, 0xff, ix->n * sizeof(*ix->head_of));
    for (size_t i = 0; i < h->n; i++) {
        uint64_t v;
        if (h->series[i].n && rf_u64map_get(&ix->by_id, h->series[i].series_id, &v) &&
            v <= UINT32_MAX)
            ix->head_of[v - 1] = (uint32_t)i;
    }
    ix->heads = h;
    return 0;
}

rf_promql_labels rf_series_index_labels(const rf_series_index *ix, uint32_t id)
{
    return (rf_promql_labels){ix->pool + ix->e[id].labels_off, ix->e[id].labels_len};
}

int rf_series_index_select(const rf_series_index *ix, const rf_promql_matcher *m, size_t n,
                           uint32_t **ids, size_t *n_ids)
{
    /* Candidates: the shortest posting list of an `=` matcher with a
     * value; a matcher `name=""` selects series without the label, which
     * postings cannot list. */
    const uint32_t *cand = NULL;
    size_t n_cand = ix->n;
    for (size_t i = 0; i < n; i++) {
        if (m[i].op != RF_PROMQL_EQ || !m[i].value[0])
            continue;
        size_t nl = strlen(m[i].name), vl = strlen(m[i].value);
        char key[2048];
        if (nl + vl + 1 > sizeof(key))
            continue;
        memcpy(key, m[i].name, nl + 1);
        memcpy(key + nl + 1, m[i].value, vl);
        const ix_posting *p = posting_find(ix, key, nl + 1 + vl, XXH3_64bits(key, nl + 1 + vl));
        size_t pn = p && p->key_len ? p->n : 0;
        if (!cand || pn < n_cand) {
            cand = p && p->key_len ? p->ids : (const uint32_t *)"";
            n_cand = pn;
        }
    }
    uint32_t *o = malloc((n_cand ? n_cand : 1) * sizeof(*o));
    if (!o)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n_cand; i++) {
        uint32_t id = cand ? cand[i] : (uint32_t)i;
        rf_promql_labels l = rf_series_index_labels(ix, id);
        bool ok = true;
        for (size_t j = 0; j < n && ok; j++)
            ok = rf_promql_matcher_match(&m[j], l);
        if (ok)
            o[k++] = id;
    }
    *ids = o;
    *n_ids = k;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names (name == NULL) or values of `name` over the selected series. */
static int collect_labels(const rf_series_index *ix, const char *name, const rf_promql_matcher *m,
                          size_t n, const char ***out, size_t *n_out)
{
    uint32_t *ids;
    size_t n_ids;
    if (rf_series_index_select(ix, m, n, &ids, &n_ids) < 0)
        return -ENOMEM;
    size_t cap = 64, k = 0;
    const char **o = malloc(cap * sizeof(*o));
    for (size_t i = 0; i < n_ids && o; i++) {
        rf_promql_labels l = rf_series_index_labels(ix, ids[i]);
        for (const char *p = l.buf; p < l.buf + l.len;) {
            const char *v = p + strlen(p) + 1;
            const char *pick = !name ? p : strcmp(p, name) == 0 ? v : NULL;
            p = v + strlen(v) + 1;
            if (!pick)
                continue;
            if (k == cap) {
                const char **g = realloc(o, (cap *= 2) * sizeof(*o));
                if (!g) {
                    free(o);
                    o = NULL;
                    break;
                }
                o = g;
            }
            o[k++] = pick;
        }
    }
    free(ids);
    if (!o)
        return -ENOMEM;
    if (k)
        qsort(o, k, sizeof(*o), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || strcmp(o[u - 1], o[i]) != 0)
            o[u++] = o[i];
    *out = o;
    *n_out = u;
    return 0;
}

int rf_series_index_label_names(const rf_series_index *ix, const rf_promql_matcher *m, size_t n,
                                const char ***out, size_t *n_out)
{
    return collect_labels(ix, NULL, m, n, out, n_out);
}

int rf_series_index_label_values(const rf_series_index *ix, const char *name,
                                 const rf_promql_matcher *m, size_t n, const char ***out,
                                 size_t *n_out)
{
    return collect_labels(ix, name, m, n, out, n_out);
}

/* ---- the PromQL source ---- */

static int cmp_by_meas(const void *a, const void *b, void *arg)
{
    const rf_series_index *ix = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    int c = strcmp(ix->pool + ix->e[x].meas_off, ix->pool + ix->e[y].meas_off);
    return c ? c : (x > y) - (x < y);
}

static void src_release(void *user, rf_promql_series *s, size_t n)
{
    (void)user;
    for (size_t i = 0; i < n; i++) {
        free((void *)s[i].t);
        free((void *)s[i].v);
    }
    free(s);
}

static double as_double(uint8_t type, uint64_t bits)
{
    double d;
    switch (type) {
    case RF_VALUE_I64: return (double)(int64_t)bits;
    case RF_VALUE_U64:
    case RF_VALUE_BOOL: return (double)bits;
    default: memcpy(&d, &bits, sizeof(d)); return d;
    }
}

/* The set's points in ms (the last of equal milliseconds kept), converted
 * in place and taken from the set (its ts and bits become out's t and v:
 * both 8-byte elements, written at or before the one read), so a query does
 * not hold each point twice while a measurement is read. */
static int convert(rf_query_set *set, rf_promql_series *out)
{
    int64_t *t = set->ts;
    double *v = (double *)(void *)set->bits;
    size_t k = 0;
    for (size_t i = 0; i < set->n; i++) {
        const int64_t ns = set->ts[i], ms = ns / 1000000 - (ns % 1000000 < 0);
        const double d = as_double(set->value_type, set->bits[i]);
        if (k && t[k - 1] == ms)
            k--;
        t[k] = ms;
        v[k++] = d;
    }
    set->ts = NULL;
    set->bits = NULL;
    out->t = t;
    out->v = v;
    out->n = k;
    return 0;
}

/* The head of entry id, or NULL. */
static const rf_store_head_series *head_of(const rf_series_index *ix, uint32_t id)
{
    if (!ix->heads || id >= ix->head_of_cap || ix->head_of[id] == UINT32_MAX)
        return NULL;
    return &ix->heads->series[ix->head_of[id]];
}

/* Merges the head's points in [mint, maxt] (ms) into out (the segments'
 * points, ms ascending): one sample per millisecond, the head's winning (it
 * was written last; the same point read from both is kept once). */
static int merge_head(const rf_store_head_series *h, int64_t mint, int64_t maxt,
                      rf_promql_series *out)
{
    size_t cap = out->n + h->n;
    int64_t *t = malloc((cap ? cap : 1) * sizeof(*t));
    double *v = malloc((cap ? cap : 1) * sizeof(*v));
    if (!t || !v) {
        free(t);
        free(v);
        return -ENOMEM;
    }
    size_t k = 0, i = 0;
    for (uint32_t j = 0; j <= h->n; j++) {
        int64_t ms = INT64_MAX;
        if (j < h->n) {
            int64_t ns = h->t[j];
            ms = ns / 1000000 - (ns % 1000000 < 0);
            if (ms < mint || ms > maxt)
                continue;
        }
        while (i < out->n && out->t[i] < ms) {
            t[k] = out->t[i];
            v[k++] = out->v[i++];
        }
        if (j == h->n)
            break;
        if (i < out->n && out->t[i] == ms)
            i++; /* the segments' copy */
        if (k && t[k - 1] == ms)
            k--; /* equal milliseconds in the head: the last */
        t[k] = ms;
        v[k++] = as_double(h->value_type, h->v[j]);
    }
    free((void *)out->t);
    free((void *)out->v);
    out->t = t;
    out->v = v;
    out->n = k;
    return 0;
}

/* Reads one measurement's selected series (ids[0..n)) into out. */
static int read_measurement(rf_series_index *ix, const uint32_t *ids, size_t n, int64_t mint,
                            int64_t maxt, rf_promql_series *out, size_t *n_out, rf_err *err)
{
    const ix_entry *e0 = &ix->e[ids[0]];
    const char *field = ix->pool + e0->field_off;
    for (size_t i = 1; i < n && field; i++)
        if (strcmp(ix->pool + ix->e[ids[i]].field_off, field) != 0)
            field = NULL;
    rf_query q = {.measurement = ix->pool + e0->meas_off,
                  .field = field,
                  .start_ns = mint > INT64_MIN / 1000000 ? mint * 1000000 : INT64_MIN,
                  .end_ns = maxt < INT64_MAX / 1000000 - 1 ? (maxt + 1) * 1000000 : INT64_MAX};
    /* The selected series by label set (open addressing over their hash):
     * positions in ids; got[i] once ids[i] was read from the segments. */
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *slot = malloc(cap * sizeof(*slot));
    bool *got = calloc(n, sizeof(*got));
    if (!slot || !got) {
        free(slot);
        free(got);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    memset(slot, 0xff, cap * sizeof(*slot));
    for (size_t i = 0; i < n; i++) {
        rf_promql_labels l = rf_series_index_labels(ix, ids[i]);
        size_t j = XXH3_64bits(l.buf, l.len) & (cap - 1);
        while (slot[j] != UINT32_MAX)
            j = (j + 1) & (cap - 1);
        slot[j] = (uint32_t)i;
    }
    rf_query_result *res = NULL;
    int rc = rf_query_run(ix->dir, &q, &res, err);
    if (rc == -ENOENT && ix->heads)
        rc = 0; /* nothing written yet: the heads alone */
    if (rc < 0) {
        free(slot);
        free(got);
        return rc;
    }
    for (size_t s = 0; res && s < res->n_sets && rc == 0; s++) {
        rf_query_set *set = &res->sets[s];
        if (set->value_type == RF_VALUE_STRING || set->n == 0)
            continue;
        kv tags[128];
        size_t nt = 0;
        for (uint32_t i = 0; i < set->n_tags && nt < 128; i++)
            tags[nt++] = (kv){set->tags[i].key, set->tags[i].value};
        char lab[8192];
        long ll = labels_of(set->measurement, set->field, tags, nt, lab, sizeof(lab));
        if (ll < 0)
            continue;
        for (size_t j = XXH3_64bits(lab, (size_t)ll) & (cap - 1); slot[j] != UINT32_MAX;
             j = (j + 1) & (cap - 1)) {
            const uint32_t id = ids[slot[j]];
            rf_promql_labels l = rf_series_index_labels(ix, id);
            if (l.len != (uint32_t)ll || memcmp(l.buf, lab, l.len) != 0)
                continue;
            const rf_store_head_series *h = head_of(ix, id);
            out[*n_out].labels = l;
            if ((rc = convert(set, &out[*n_out])) == 0 && h &&
                (rc = merge_head(h, mint, maxt, &out[*n_out])) < 0) {
                free((void *)out[*n_out].t);
                free((void *)out[*n_out].v);
            }
            if (rc == 0) {
                (*n_out)++;
                got[slot[j]] = true;
            }
            break;
        }
    }
    /* Series whose points in range are all in the heads. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        const rf_store_head_series *h = got[i] ? NULL : head_of(ix, ids[i]);
        if (!h)
            continue;
        rf_promql_series *o = &out[*n_out];
        *o = (rf_promql_series){.labels = rf_series_index_labels(ix, ids[i])};
        if ((rc = merge_head(h, mint, maxt, o)) < 0)
            break;
        if (o->n) {
            (*n_out)++;
        } else {
            free((void *)o->t);
            free((void *)o->v);
        }
    }
    free(slot);
    free(got);
    rf_query_result_free(res);
    return rc < 0 ? rf_err_set(err, ENOMEM, "out of memory") : 0;
}

static int src_select(void *user, const rf_promql_matcher *m, size_t n_m, int64_t mint,
                      int64_t maxt, rf_promql_series **out, size_t *n_out, rf_err *err)
{
    rf_series_index *ix = user;
    uint32_t *ids;
    size_t n;
    if (rf_series_index_select(ix, m, n_m, &ids, &n) < 0)
        return rf_err_set(err, ENOMEM, "out of memory");
    rf_promql_series *s = calloc(n ? n : 1, sizeof(*s));
    if (!s) {
        free(ids);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    qsort_r(ids, n, sizeof(*ids), cmp_by_meas, ix);
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i + 1;
        const char *meas = ix->pool + ix->e[ids[i]].meas_off;
        while (j < n && strcmp(ix->pool + ix->e[ids[j]].meas_off, meas) == 0)
            j++;
        rc = read_measurement(ix, ids + i, j - i, mint, maxt, s, &k, err);
        i = j;
    }
    free(ids);
    if (rc < 0) {
        src_release(NULL, s, k);
        return rc;
    }
    *out = s;
    *n_out = k;
    return 0;
}

void rf_series_index_source(rf_series_index *ix, rf_promql_source *out)
{
    *out = (rf_promql_source){src_select, src_release, ix};
}
