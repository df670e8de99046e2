/* Query execution: two passes over the segments of every shard.
 *   1. keys: for each series with data in the range, read its key from a
 *      dictionary record (any segment will do) and decide once whether it
 *      matches and which output set it feeds;
 *   2. data: decode the blocks of matching series that overlap the range.
 * The footer index of a closed segment lets both passes skip whole series and
 * blocks by time without touching their bytes. */
#include "storage/query/query.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/event/event.h"
#include "stages/sketch/sketch.h" /* rf_quantile_rank (header only) */
#include "storage/encode/encode.h"
#include "storage/segment/segment.h"
#include "storage/u64map/u64map.h"

typedef struct qpoint {
    int64_t t;
    uint64_t v;   /* raw: value bits (QPOINT_TEXT: a malloc'd text); aggregated: double bits */
    uint8_t type; /* raw: value type of the block, | QPOINT_TEXT for a text */
} qpoint;
#define QPOINT_TEXT 0x80u

typedef struct qset {
    char *sort_key;
    size_t key_len;
    rf_query_set out;
    qpoint *pts;
    size_t n, cap;
    bool have_type, mixed, texts;
} qset;

typedef struct qctx {
    const rf_query *q;
    regex_t *re;      /* per matcher; only RE/NRE compiled */
    rf_u64map series; /* series id -> set index + 1, or 0 for "no match" */
    rf_u64map groups; /* hash(group key) (+probe) -> set index + 1 */
    qset *sets;
    size_t n_sets, cap_sets;
    char **paths;
    size_t n_paths;
    rf_block_codec *codec;
    int64_t *dts;
    uint64_t *dbits;
    rf_query_stats st;
    const qset *string_set; /* an aggregated query met this string series */
} qctx;

/* ---- keys ---- */

static char *unescape(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n)
            i++;
        o[j++] = s[i];
    }
    o[j] = '\0';
    return o;
}

/* Position of the next unescaped `c` in s[i..n), or n. */
static size_t find_unescaped(const char *s, size_t i, size_t n, char c)
{
    for (; i < n; i++) {
        if (s[i] == '\\') {
            i++;
            continue;
        }
        if (s[i] == c)
            return i;
    }
    return n;
}

typedef struct parsed_key {
    char *measurement, *field;
    rf_query_tag *tags;
    uint32_t n_tags;
} parsed_key;

static void parsed_key_free(parsed_key *k)
{
    free(k->measurement);
    free(k->field);
    for (uint32_t i = 0; i < k->n_tags; i++) {
        free(k->tags[i].key);
        free(k->tags[i].value);
    }
    free(k->tags);
    memset(k, 0, sizeof(*k));
}

static int parse_key(const char *t, uint32_t len, uint16_t mlen, uint32_t foff, parsed_key *k)
{
    memset(k, 0, sizeof(*k));
    if (mlen > len || foff > len || foff < mlen)
        return -EBADMSG;
    k->measurement = unescape(t, mlen);
    k->field = unescape(t + foff, len - foff);
    if (!k->measurement || !k->field)
        goto nomem;
    if (mlen < len && t[mlen] == ',' && foff > (uint32_t)mlen + 1) {
        size_t end = foff - 1, i = (size_t)mlen + 1;
        uint32_t cap = 0;
        while (i < end) {
            size_t c = find_unescaped(t, i, end, ',');
            size_t eq = find_unescaped(t, i, c, '=');
            if (k->n_tags == cap) {
                cap = cap ? cap * 2 : 8;
                rf_query_tag *p = realloc(k->tags, cap * sizeof(*p));
                if (!p)
                    goto nomem;
                k->tags = p;
            }
            rf_query_tag *tg = &k->tags[k->n_tags++];
            tg->key = unescape(t + i, eq - i);
            tg->value = eq < c ? unescape(t + eq + 1, c - eq - 1) : unescape("", 0);
            if (!tg->key || !tg->value)
                goto nomem;
            i = c + 1;
        }
    }
    return 0;
nomem:
    parsed_key_free(k);
    return -ENOMEM;
}

static const char *tag_value(const parsed_key *k, const char *tag)
{
    for (uint32_t i = 0; i < k->n_tags; i++)
        if (strcmp(k->tags[i].key, tag) == 0)
            return k->tags[i].value;
    return "";
}

static bool key_matches(const qctx *c, const parsed_key *k)
{
    const rf_query *q = c->q;
    if (strcmp(k->measurement, q->measurement) != 0)
        return false;
    if (q->field && strcmp(k->field, q->field) != 0)
        return false;
    for (uint32_t i = 0; i < q->n_matchers; i++) {
        const rf_query_matcher *m = &q->matchers[i];
        const char *v = tag_value(k, m->tag);
        bool ok;
        switch (m->op) {
        case RF_MATCH_EQ: ok = strcmp(v, m->value) == 0; break;
        case RF_MATCH_NE: ok = strcmp(v, m->value) != 0; break;
        case RF_MATCH_RE: ok = regexec(&c->re[i], v, 0, NULL, 0) == 0; break;
        default: ok = regexec(&c->re[i], v, 0, NULL, 0) != 0; break;
        }
        if (!ok)
            return false;
    }
    return true;
}

static char *str_dup(const char *s)
{
    return unescape(s, strlen(s)); /* already unescaped: only copies (no backslashes survive) */
}

static int new_set(qctx *c, char *sort_key, size_t key_len, size_t *idx)
{
    if (c->n_sets == c->cap_sets) {
        size_t cap = c->cap_sets ? c->cap_sets * 2 : 32;
        qset *p = realloc(c->sets, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        c->sets = p;
        c->cap_sets = cap;
    }
    qset *s = &c->sets[c->n_sets];
    memset(s, 0, sizeof(*s));
    s->sort_key = sort_key;
    s->key_len = key_len;
    *idx = c->n_sets++;
    return 0;
}

/* Builds "measurement\0field\0v1\0v2\0..." for the group of a key. */
static char *group_key(const qctx *c, const parsed_key *k, size_t *len)
{
    size_t n = strlen(k->measurement) + strlen(k->field) + 2;
    for (uint32_t i = 0; i < c->q->n_group_by; i++)
        n += strlen(tag_value(k, c->q->group_by[i])) + 1;
    char *g = malloc(n), *p = g;
    if (!g)
        return NULL;
    p = stpcpy(p, k->measurement) + 1;
    p = stpcpy(p, k->field) + 1;
    for (uint32_t i = 0; i < c->q->n_group_by; i++)
        p = stpcpy(p, tag_value(k, c->q->group_by[i])) + 1;
    *len = n;
    return g;
}

/* Decides what a series feeds: a new raw set, or an existing/new group. */
static int assign_series(qctx *c, uint64_t id, const char *text, uint32_t len, uint16_t mlen,
                         uint32_t foff)
{
    parsed_key k;
    int rc = parse_key(text, len, mlen, foff, &k);
    if (rc == -EBADMSG)
        return rf_u64map_put(&c->series, id, 0);
    if (rc < 0)
        return rc;
    if (!key_matches(c, &k)) {
        parsed_key_free(&k);
        return rf_u64map_put(&c->series, id, 0);
    }
    c->st.series_matched++;
    size_t idx;
    if (c->q->n_aggs == 0) {
        char *sk = malloc(len + 1);
        if (!sk || new_set(c, sk, len, &idx) < 0) {
            free(sk);
            parsed_key_free(&k);
            return -ENOMEM;
        }
        memcpy(sk, text, len);
        sk[len] = '\0';
        rf_query_set *o = &c->sets[idx].out;
        o->measurement = k.measurement;
        o->field = k.field;
        o->tags = k.tags;
        o->n_tags = k.n_tags;
        return rf_u64map_put(&c->series, id, idx + 1);
    }
    size_t glen;
    char *g = group_key(c, &k, &glen);
    if (!g) {
        parsed_key_free(&k);
        return -ENOMEM;
    }
    uint64_t h = XXH3_64bits(g, glen), v;
    for (;; h++) {
        if (!h)
            continue;
        if (!rf_u64map_get(&c->groups, h, &v))
            break;
        qset *s = &c->sets[v - 1];
        if (s->key_len == glen && memcmp(s->sort_key, g, glen) == 0) {
            free(g);
            parsed_key_free(&k);
            return rf_u64map_put(&c->series, id, v);
        }
    }
    if (new_set(c, g, glen, &idx) < 0) {
        free(g);
        parsed_key_free(&k);
        return -ENOMEM;
    }
    rf_query_set *o = &c->sets[idx].out;
    o->measurement = str_dup(k.measurement);
    o->field = str_dup(k.field);
    o->n_tags = c->q->n_group_by;
    o->tags = calloc(o->n_tags ? o->n_tags : 1, sizeof(*o->tags));
    for (uint32_t i = 0; o->tags && i < o->n_tags; i++) {
        o->tags[i].key = str_dup(c->q->group_by[i]);
        o->tags[i].value = str_dup(tag_value(&k, c->q->group_by[i]));
    }
    parsed_key_free(&k);
    if (!o->measurement || !o->field || !o->tags)
        return -ENOMEM;
    if (rf_u64map_put(&c->groups, h, idx + 1) < 0)
        return -ENOMEM;
    return rf_u64map_put(&c->series, id, idx + 1);
}

/* ---- segments ---- */

static int add_path(qctx *c, const char *path)
{
    if ((c->n_paths & (c->n_paths + 1)) == 0 || c->n_paths == 0) {
        size_t cap = c->n_paths ? (c->n_paths + 1) * 2 : 16;
        char **p = realloc(c->paths, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        c->paths = p;
    }
    c->paths[c->n_paths] = strdup(path);
    return c->paths[c->n_paths++] ? 0 : -ENOMEM;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_path(void *ctx, uint32_t shard, uint64_t seq, const char *path)
{
    (void)shard;
    (void)seq;
    return add_path(ctx, path);
}

static int list_paths(qctx *c, const char *dir, rf_err *err)
{
    int rc = rf_seg_store_walk(dir, list_path, c, err);
    if (rc == -ENOMEM)
        return rf_err_set(err, ENOMEM, "%s: out of memory", dir);
    if (rc < 0)
        return rc;
    /* Zero-padded names: lexical order is shard, then stream order. */
    if (c->n_paths)
        qsort(c->paths, c->n_paths, sizeof(*c->paths), cmp_str);
    return 0;
}

static bool overlaps(const rf_query *q, int64_t lo, int64_t hi)
{
    return lo < q->end_ns && hi >= q->start_ns;
}

static int pass_keys(qctx *c, const rf_seg_reader *r)
{
    for (size_t i = 0; i < r->idx.n_series; i++) {
        const rf_seg_series_ref *s = &r->idx.series[i];
        uint64_t v;
        if (!s->n_blocks || !overlaps(c->q, s->min_time, s->max_time) ||
            rf_u64map_get(&c->series, s->series_id, &v))
            continue;
        uint32_t len, foff;
        uint16_t mlen;
        const char *text = rf_seg_reader_key(r, s, &len, &mlen, &foff);
        if (!text)
            continue; /* maybe another segment has it */
        int rc = assign_series(c, s->series_id, text, len, mlen, foff);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int push(qset *s, int64_t t, uint64_t v, uint8_t type)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        qpoint *p = realloc(s->pts, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->pts = p;
        s->cap = cap;
    }
    s->pts[s->n++] = (qpoint){t, v, type};
    return 0;
}

static int pass_data(qctx *c, const rf_seg_reader *r)
{
    const rf_query *q = c->q;
    for (size_t i = 0; i < r->idx.n_series; i++) {
        const rf_seg_series_ref *s = &r->idx.series[i];
        if (!s->n_blocks || !overlaps(q, s->min_time, s->max_time))
            continue;
        uint64_t v;
        if (!rf_u64map_get(&c->series, s->series_id, &v)) {
            c->st.blocks_unkeyed += s->n_blocks;
            continue;
        }
        if (!v)
            continue;
        qset *set = &c->sets[v - 1];
        for (uint32_t b = s->first_block; b < s->first_block + s->n_blocks; b++) {
            const rf_seg_block_ref *br = &r->idx.blocks[b];
            if (!overlaps(q, br->min_time, br->max_time))
                continue;
            const uint8_t *payload;
            rf_seg_rec h;
            long plen = rf_seg_reader_block(r, br, &payload, &h);
            long n = plen < 0 ? plen
                              : rf_block_decode(c->codec, payload, (size_t)plen, c->dts, c->dbits,
                                                RF_BLOCK_MAX_POINTS);
            if (n < 0 || (uint64_t)n != h.count) {
                c->st.blocks_corrupt++;
                continue;
            }
            c->st.blocks_read++;
            c->st.points_scanned += (uint64_t)n;
            uint8_t vt = h.value_type;
            if (q->n_aggs && vt == RF_VALUE_STRING) {
                c->string_set = set; /* no number to aggregate: refused, never hashed */
                return -EMEDIUMTYPE;
            }
            if (!set->have_type) {
                set->out.value_type = vt;
                set->have_type = true;
            } else if (set->out.value_type != vt) {
                set->mixed = true;
            }
            for (long j = 0; j < n; j++) {
                int64_t t = c->dts[j];
                if (t < q->start_ns || t >= q->end_ns)
                    continue;
                uint64_t bits = c->dbits[j];
                uint32_t tl;
                const char *tx = rf_block_text_of(c->codec, bits, &tl);
                if (tx) { /* a copy: the block's bytes go with the next decode */
                    char *copy = malloc((size_t)tl + 1);
                    if (!copy)
                        return -ENOMEM;
                    memcpy(copy, tx, tl);
                    copy[tl] = '\0';
                    set->texts = true;
                    if (push(set, t, (uint64_t)(uintptr_t)copy, vt | QPOINT_TEXT) < 0) {
                        free(copy);
                        return -ENOMEM;
                    }
                    c->st.points++;
                    continue;
                }
                if (q->n_aggs) {
                    rf_event ev = {.value = {.u64 = bits}, .value_type = vt};
                    double d = rf_event_value_as_f64(&ev);
                    memcpy(&bits, &d, 8);
                }
                if (push(set, t, bits, vt) < 0)
                    return -ENOMEM;
                c->st.points++;
            }
        }
    }
    return 0;
}

/* ---- finishing ---- */

/* Stable natural merge sort by time (equal times keep write order). Points
 * arrive as sorted runs, one per block, so merging the runs takes
 * log2(blocks) passes instead of log2(points). */
static int sort_points(qpoint *p, size_t n, qpoint *tmp)
{
    size_t nr = 0;
    for (size_t i = 1; i < n; i++)
        nr += p[i].t < p[i - 1].t;
    if (nr == 0)
        return 0;
    size_t *runs = malloc((nr + 2) * sizeof(*runs));
    if (!runs)
        return -ENOMEM;
    nr = 0;
    runs[nr++] = 0;
    for (size_t i = 1; i < n; i++)
        if (p[i].t < p[i - 1].t)
            runs[nr++] = i;
    runs[nr] = n; /* nr runs: [runs[k], runs[k+1]) */
    qpoint *src = p, *dst = tmp;
    while (nr > 1) {
        size_t out = 0;
        for (size_t k = 0; k < nr; k += 2) {
            /* run k with run k + 1, or run k alone when it is the last */
            size_t lo = runs[k], mid = runs[k + 1], hi = k + 2 <= nr ? runs[k + 2] : mid;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] = src[j].t < src[i].t ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
            runs[out++] = lo;
        }
        runs[out] = n;
        nr = out;
        qpoint *t = src;
        src = dst;
        dst = t;
    }
    if (src != p)
        memcpy(p, src, n * sizeof(*p));
    free(runs);
    return 0;
}

/* Order for quantiles: NaN after every number (as a sort would put it). */
static inline bool d_less(double a, double b)
{
    return a < b || (isnan(b) && !isnan(a));
}

/* The k-th smallest of v[0..n) (quickselect, Hoare partition around a
 * median of three); leaves every element after k not less than it. Linear
 * on average where a full sort per bucket was most of an aggregate query. */
static double select_kth(double *v, size_t n, size_t k)
{
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1;
    while (lo < hi) {
        ptrdiff_t mid = lo + (hi - lo) / 2;
        double a = v[lo], b = v[mid], c = v[hi], pivot;
        if (d_less(a, b))
            pivot = d_less(b, c) ? b : (d_less(a, c) ? c : a);
        else
            pivot = d_less(a, c) ? a : (d_less(b, c) ? c : b);
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (d_less(v[i], pivot))
                i++;
            while (d_less(pivot, v[j]))
                j--;
            if (i <= j) {
                double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if ((ptrdiff_t)k <= j)
            hi = j;
        else if ((ptrdiff_t)k >= i)
            lo = i;
        else
            break; /* between the two parts: equal to the pivot, in place */
    }
    return v[k];
}

/* Exact quantile, nearest rank: ringflow's one definition (StatsD's),
 * rf_quantile_rank in stages/sketch/sketch.h. */
static double quantile(double *v, size_t n, double q)
{
    return select_kth(v, n, (size_t)rf_quantile_rank(q, n));
}

/* Start of the step bucket holding t (step_ns > 0). In 128 bits: t - origin
 * and the floor's k * step can pass either end of int64 (a point at
 * INT64_MIN with origin 0 wrapped into the year 2262). The one bucket that
 * starts before INT64_MIN is labelled INT64_MIN; no bucket start can pass
 * INT64_MAX (it is at most t). */
static int64_t bucket_of(const rf_query *q, int64_t t)
{
    const __int128 origin = q->start_ns == INT64_MIN ? 0 : q->start_ns;
    const __int128 d = (__int128)t - origin;
    __int128 k = d / q->step_ns;
    if (d % q->step_ns < 0)
        k--;
    const __int128 b = origin + k * q->step_ns;
    return b < INT64_MIN ? INT64_MIN : (int64_t)b;
}

static int finish_set(qctx *c, qset *s, qpoint *tmp, double *scratch)
{
    const rf_query *q = c->q;
    rf_query_set *o = &s->out;
    if (sort_points(s->pts, s->n, tmp) < 0)
        return -ENOMEM;
    if (q->n_aggs == 0) {
        o->n = s->n;
        o->ts = malloc((s->n ? s->n : 1) * sizeof(*o->ts));
        o->bits = malloc((s->n ? s->n : 1) * sizeof(*o->bits));
        if (!o->ts || !o->bits)
            return -ENOMEM;
        if (s->texts && !(o->texts = calloc(s->n ? s->n : 1, sizeof(*o->texts))))
            return -ENOMEM;
        for (size_t i = 0; i < s->n; i++) {
            o->ts[i] = s->pts[i].t;
            o->bits[i] = s->pts[i].v;
            if (s->pts[i].type & QPOINT_TEXT) {
                /* The text moves to the result; its word is its hash, as a
                 * string stored before texts were. */
                char *text = (char *)(uintptr_t)s->pts[i].v;
                o->bits[i] = XXH3_64bits(text, strlen(text));
                s->pts[i].type &= (uint8_t)~QPOINT_TEXT;
                if (s->mixed)
                    free(text); /* read as a number below, as hashes are */
                else
                    o->texts[i] = text;
                s->pts[i].v = o->bits[i];
            }
            if (s->mixed) {
                rf_event ev = {.value = {.u64 = s->pts[i].v}, .value_type = s->pts[i].type};
                double d = rf_event_value_as_f64(&ev);
                memcpy(&o->bits[i], &d, 8);
            }
        }
        if (s->mixed)
            o->value_type = RF_VALUE_F64;
        return 0;
    }
    size_t rows = 0;
    o->ts = malloc((s->n ? s->n : 1) * sizeof(*o->ts));
    o->values = malloc((s->n ? s->n : 1) * q->n_aggs * sizeof(*o->values));
    if (!o->ts || !o->values)
        return -ENOMEM;
    for (size_t i = 0; i < s->n;) {
        int64_t b = q->step_ns > 0 ? bucket_of(q, s->pts[i].t) : 0;
        size_t j = i;
        double sum = 0, mn = INFINITY, mx = -INFINITY;
        if (q->step_ns <= 0) {
            /* The whole range is one bucket, labelled by its start (or by
             * the first point when the range is unbounded). */
            j = s->n;
            b = q->start_ns == INT64_MIN ? s->pts[0].t : q->start_ns;
        } else {
            while (j < s->n && bucket_of(q, s->pts[j].t) == b)
                j++;
        }
        size_t n = j - i;
        for (size_t k = i; k < j; k++) {
            double d;
            memcpy(&d, &s->pts[k].v, 8);
            scratch[k - i] = d;
            sum += d;
            if (d < mn)
                mn = d;
            if (d > mx)
                mx = d;
        }
        double last;
        memcpy(&last, &s->pts[j - 1].v, 8);
        double *row = &o->values[rows * q->n_aggs];
        for (uint32_t a = 0; a < q->n_aggs; a++) {
            switch (q->aggs[a].fn) {
            case RF_AGG_COUNT: row[a] = (double)n; break;
            case RF_AGG_SUM: row[a] = sum; break;
            case RF_AGG_MIN: row[a] = mn; break;
            case RF_AGG_MAX: row[a] = mx; break;
            case RF_AGG_AVG: row[a] = sum / (double)n; break;
            case RF_AGG_LAST: row[a] = last; break;
            case RF_AGG_QUANTILE:
                /* scratch is reordered by the selection: refill for each quantile */
                for (size_t k = i; k < j; k++)
                    memcpy(&scratch[k - i], &s->pts[k].v, 8);
                row[a] = quantile(scratch, n, q->aggs[a].q);
                break;
            }
        }
        o->ts[rows++] = b;
        i = j;
    }
    o->n = rows;
    return 0;
}

static int cmp_set(const void *a, const void *b)
{
    const qset *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int r = memcmp(x->sort_key, y->sort_key, n);
    return r ? r : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static void ctx_free(qctx *c)
{
    if (c->re)
        for (uint32_t i = 0; i < c->q->n_matchers; i++)
            if (c->q->matchers[i].op >= RF_MATCH_RE)
                regfree(&c->re[i]);
    free(c->re);
    rf_u64map_free(&c->series);
    rf_u64map_free(&c->groups);
    for (size_t i = 0; i < c->n_paths; i++)
        free(c->paths[i]);
    free(c->paths);
    rf_block_codec_free(c->codec);
    free(c->dts);
    free(c->dbits);
}

static void set_free(rf_query_set *o)
{
    free(o->measurement);
    free(o->field);
    for (uint32_t i = 0; o->tags && i < o->n_tags; i++) {
        free(o->tags[i].key);
        free(o->tags[i].value);
    }
    free(o->tags);
    free(o->ts);
    free(o->bits);
    free(o->values);
    for (size_t i = 0; o->texts && i < o->n; i++)
        free(o->texts[i]);
    free(o->texts);
}

void rf_query_result_free(rf_query_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_sets; i++)
        set_free(&r->sets[i]);
    free(r->sets);
    free(r->aggs);
    free(r);
}

int rf_query_run(const char *dir, const rf_query *q, rf_query_result **out, rf_err *err)
{
    *out = NULL;
    if (!q->measurement)
        return rf_err_set(err, EINVAL, "query: a measurement is required");
    if (q->start_ns >= q->end_ns)
        return rf_err_set(err, EINVAL, "query: empty time range");
    for (uint32_t a = 0; a < q->n_aggs; a++)
        if (q->aggs[a].fn == RF_AGG_QUANTILE && !(q->aggs[a].q >= 0 && q->aggs[a].q <= 1))
            return rf_err_set(err, EINVAL, "query: quantile %g outside [0,1]", q->aggs[a].q);
    qctx c;
    memset(&c, 0, sizeof(c));
    c.q = q;
    int rc = 0;
    c.re = calloc(q->n_matchers ? q->n_matchers : 1, sizeof(*c.re));
    c.codec = rf_block_codec_new(1);
    c.dts = malloc(RF_BLOCK_MAX_POINTS * sizeof(*c.dts));
    c.dbits = malloc(RF_BLOCK_MAX_POINTS * sizeof(*c.dbits));
    if (!c.re || !c.codec || !c.dts || !c.dbits || rf_u64map_init(&c.series, 1024) < 0 ||
        rf_u64map_init(&c.groups, 64) < 0) {
        free(c.re);
        c.re = NULL;
        ctx_free(&c);
        return rf_err_set(err, ENOMEM, "query: out of memory");
    }
    for (uint32_t i = 0; i < q->n_matchers; i++) {
        const rf_query_matcher *m = &q->matchers[i];
        if (m->op < RF_MATCH_RE)
            continue;
        size_t n = strlen(m->value) + 5;
        char *pat = malloc(n);
        if (!pat) {
            rc = rf_err_set(err, ENOMEM, "query: out of memory");
            break;
        }
        snprintf(pat, n, "^(%s)$", m->value);
        int e = regcomp(&c.re[i], pat, REG_EXTENDED | REG_NOSUB);
        free(pat);
        if (e) {
            char msg[256];
            regerror(e, &c.re[i], msg, sizeof(msg));
            rc = rf_err_set(err, EINVAL, "query: tag %s: bad regular expression \"%s\": %s", m->tag,
                            m->value, msg);
            /* regfree only what compiled: free them here and forget them */
            for (uint32_t j = 0; j < i; j++)
                if (q->matchers[j].op >= RF_MATCH_RE)
                    regfree(&c.re[j]);
            free(c.re);
            c.re = NULL;
            break;
        }
    }
    if (rc == 0)
        rc = list_paths(&c, dir, err);
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < c.n_paths && rc == 0; i++) {
            rf_seg_reader r;
            rf_err e;
            int orc = rf_seg_reader_open(c.paths[i], 0, &r, &e);
            if (orc == -ENOENT)
                continue; /* removed by retention meanwhile */
            if (orc == -EPROTONOSUPPORT) {
                rc = orc;
                if (err)
                    *err = e;
                break;
            }
            if (orc < 0)
                continue; /* unreadable header: never served (recovery quarantines it) */
            if (pass == 0) {
                c.st.segments++;
                c.st.segments_scanned += !r.closed;
            }
            if (overlaps(q, r.idx.min_time, r.idx.max_time))
                rc = pass == 0 ? pass_keys(&c, &r) : pass_data(&c, &r);
            rf_seg_reader_close(&r);
            if (rc == -EMEDIUMTYPE)
                rc = rf_err_set(err, EINVAL,
                                "query: %s field %s holds strings: --agg is for numbers "
                                "(query its points without --agg)",
                                c.string_set->out.measurement, c.string_set->out.field);
            else if (rc < 0 && rc != -EPROTONOSUPPORT)
                rc = rf_err_set(err, -rc, "query: %s: %s", c.paths[i], strerror(-rc));
        }
    }
    rf_query_result *res = NULL;
    if (rc == 0) {
        res = calloc(1, sizeof(*res));
        size_t maxn = 1;
        for (size_t i = 0; i < c.n_sets; i++)
            if (c.sets[i].n > maxn)
                maxn = c.sets[i].n;
        qpoint *tmp = malloc(maxn * sizeof(*tmp));
        double *scratch = malloc(maxn * sizeof(*scratch));
        if (!res || !tmp || !scratch)
            rc = rf_err_set(err, ENOMEM, "query: out of memory");
        for (size_t i = 0; i < c.n_sets && rc == 0; i++)
            if (finish_set(&c, &c.sets[i], tmp, scratch) < 0)
                rc = rf_err_set(err, ENOMEM, "query: out of memory");
        free(tmp);
        free(scratch);
    }
    if (rc == 0) {
        if (c.n_sets)
            qsort(c.sets, c.n_sets, sizeof(*c.sets), cmp_set);
        res->sets = calloc(c.n_sets ? c.n_sets : 1, sizeof(*res->sets));
        res->aggs = malloc((q->n_aggs ? q->n_aggs : 1) * sizeof(*res->aggs));
        if (!res->sets || !res->aggs) {
            rc = rf_err_set(err, ENOMEM, "query: out of memory");
        } else {
            /* Empty sets (series matched, no point in range) are left out. */
            for (size_t i = 0; i < c.n_sets; i++) {
                if (c.sets[i].out.n)
                    res->sets[res->n_sets++] = c.sets[i].out;
                else
                    set_free(&c.sets[i].out);
                memset(&c.sets[i].out, 0, sizeof(c.sets[i].out));
            }
            if (q->n_aggs)
                memcpy(res->aggs, q->aggs, q->n_aggs * sizeof(*res->aggs));
            res->n_aggs = q->n_aggs;
            res->stats = c.st;
        }
    }
    for (size_t i = 0; i < c.n_sets; i++) {
        set_free(&c.sets[i].out);
        free(c.sets[i].sort_key);
        for (size_t k = 0; k < c.sets[i].n; k++) /* texts a failed query did not hand out */
            if (c.sets[i].pts[k].type & QPOINT_TEXT)
                free((void *)(uintptr_t)c.sets[i].pts[k].v);
        free(c.sets[i].pts);
    }
    free(c.sets);
    ctx_free(&c);
    if (rc < 0) {
        rf_query_result_free(res);
        return rc;
    }
    *out = res;
    return 0;
}

/* ---- stored types ---- */

int rf_query_series_types(const char *dir, rf_query_type_fn fn, void *ctx, rf_err *err)
{
    qctx c;
    memset(&c, 0, sizeof(c));
    int rc = list_paths(&c, dir, err);
    for (size_t i = 0; i < c.n_paths && rc == 0; i++) {
        rf_seg_reader r;
        rf_err e;
        int orc = rf_seg_reader_open(c.paths[i], 0, &r, &e);
        if (orc == -EPROTONOSUPPORT) {
            rc = orc;
            if (err)
                *err = e;
            break;
        }
        if (orc < 0)
            continue; /* gone, or an unreadable header: never served */
        /* The type of a series' first block here: the block record's header
         * says it (docs/FORMAT.md), no decoding. */
        for (size_t s = 0; s < r.idx.n_series; s++) {
            const rf_seg_series_ref *sr = &r.idx.series[s];
            if (sr->n_blocks == 0)
                continue;
            const rf_seg_block_ref *b = &r.idx.blocks[sr->first_block];
            if (b->offset + RF_SEG_REC_HDR_SIZE > r.size)
                continue;
            uint8_t type = r.map[b->offset + 5];
            if (type <= RF_VALUE_STRING)
                fn(ctx, sr->series_id, type);
        }
        rf_seg_reader_close(&r);
    }
    ctx_free(&c);
    return rc;
}
