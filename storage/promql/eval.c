/* The PromQL evaluator: fetches every selector's series once for the whole
 * query, then evaluates the tree at each step over views of those samples.
 * A step's intermediate values live in a step arena, reset between steps;
 * the result's labels and points in the result's own arena and arrays.
 * Failures inside the tree longjmp to rf_promql_eval, which frees
 * everything: no partial result escapes. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/promql/promql_pvt.h"
#include "storage/u64map/u64map.h"

#define MAX_STEPS 11000
#define DEFAULT_MAX_SAMPLES 50000000u
#define DEFAULT_LOOKBACK_MS 300000

_Noreturn void pq_fail(pq_eval *ev, enum rf_promql_error kind, int code, const char *fmt, ...)
{
    char msg[RF_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rf_err_set(ev->err, code, "%s", msg);
    ev->kind = kind;
    longjmp(ev->fail, 1);
}

void *pq_alloc(pq_eval *ev, size_t n)
{
    void *p = pq_arena_alloc(ev->step_arena, n ? n : 1);
    if (!p)
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    return p;
}

static uint64_t memo_slot_key(const pq_expr *e, uint64_t in_hash)
{
    uint64_t k = in_hash ^ ((uint64_t)(uintptr_t)e * 0x9E3779B97F4A7C15ull);
    return k ? k : 1; /* 0 is the map's empty marker */
}

bool pq_key_memo_get(pq_eval *ev, const pq_expr *e, rf_promql_labels in, uint64_t in_hash,
                     rf_promql_labels *key, uint64_t *hash)
{
    uint64_t v;
    if (!ev->keys.map || !rf_u64map_get(ev->keys.map, memo_slot_key(e, in_hash), &v))
        return false;
    const pq_key_entry *k = &ev->keys.e[v - 1];
    if (k->node != e || !pq_labels_eq(k->in, in))
        return false;
    *key = k->key;
    *hash = k->key_hash;
    return true;
}

static bool memo_copy(pq_arena *a, rf_promql_labels l, rf_promql_labels *out)
{
    char *p = pq_arena_alloc(a, l.len ? l.len : 1);
    if (!p)
        return false;
    if (l.len)
        memcpy(p, l.buf, l.len);
    *out = (rf_promql_labels){p, l.len};
    return true;
}

void pq_key_memo_put(pq_eval *ev, const pq_expr *e, rf_promql_labels in, uint64_t in_hash,
                     rf_promql_labels key, uint64_t hash)
{
    pq_key_memo *m = &ev->keys;
    if (!m->map) {
        m->map = malloc(sizeof(*m->map));
        m->arena = pq_arena_new();
        if (!m->map || !m->arena || rf_u64map_init(m->map, 1024) < 0) {
            free(m->map);
            m->map = NULL;
            return;
        }
    }
    const uint64_t slot = memo_slot_key(e, in_hash);
    uint64_t v;
    if (rf_u64map_get(m->map, slot, &v))
        return; /* a collision: the first keeps the slot */
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        pq_key_entry *g = realloc(m->e, nc * sizeof(*g));
        if (!g)
            return;
        m->e = g;
        m->cap = nc;
    }
    pq_key_entry *k = &m->e[m->n];
    *k = (pq_key_entry){.node = e, .key_hash = hash};
    if (!memo_copy(m->arena, in, &k->in) || !memo_copy(m->arena, key, &k->key) ||
        rf_u64map_put(m->map, slot, m->n + 1) < 0)
        return;
    m->n++;
}

static void memo_free(pq_key_memo *m)
{
    if (m->map)
        rf_u64map_free(m->map);
    free(m->map);
    free(m->e);
    pq_arena_free(m->arena);
}

rf_promql_labels pq_drop_name(pq_eval *ev, rf_promql_labels l)
{
    if (!rf_promql_labels_get(l, "__name__"))
        return l;
    pq_lb b;
    pq_lb_from(&b, l);
    pq_lb_del(&b, "__name__");
    rf_promql_labels out;
    if (!pq_lb_build(&b, ev->step_arena, &out))
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    return out;
}

static void charge(pq_eval *ev, uint64_t n)
{
    ev->samples_now += n;
    if (ev->samples_now > ev->lim.max_samples)
        pq_fail(ev, RF_PROMQL_EXECUTION, E2BIG,
                "query processing would load too many samples into memory in query execution");
}

/* ---- selectors ---- */

static const pq_fetch *fetch_of(pq_eval *ev, const pq_expr *sel)
{
    for (size_t i = 0; i < ev->n_fetch; i++)
        if (ev->fetch[i].sel == sel)
            return &ev->fetch[i];
    pq_fail(ev, RF_PROMQL_INTERNAL, EINVAL, "selector not fetched");
}

static int64_t ref_time(const pq_eval *ev, const pq_expr *sel, int64_t ts)
{
    if (sel->has_at)
        ts = sel->at_kind == 1 ? ev->start : sel->at_kind == 2 ? ev->end : sel->at_ms;
    return ts - sel->offset_ms;
}

/* First index with t[i] > x. */
static size_t upper_bound(const int64_t *t, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* First index with t[i] >= x. */
static size_t lower_bound(const int64_t *t, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static pq_val eval_vsel(pq_eval *ev, const pq_expr *e)
{
    const pq_fetch *f = fetch_of(ev, e);
    int64_t ref = ref_time(ev, e, ev->ts);
    pq_val r = {.type = RF_PROMQL_VECTOR};
    r.vec.s = pq_alloc(ev, f->n * sizeof(pq_sample));
    for (size_t i = 0; i < f->n; i++) {
        const rf_promql_series *s = &f->series[i];
        size_t k = upper_bound(s->t, s->n, ref);
        if (k == 0 || s->t[k - 1] < ref - ev->lim.lookback_ms)
            continue;
        r.vec.s[r.vec.n++] = (pq_sample){s->labels, s->t[k - 1], s->v[k - 1]};
    }
    charge(ev, r.vec.n);
    return r;
}

static pq_val eval_msel(pq_eval *ev, const pq_expr *e)
{
    const pq_expr *sel = e->a;
    const pq_fetch *f = fetch_of(ev, sel);
    int64_t ref = ref_time(ev, sel, ev->ts);
    pq_val r = {.type = RF_PROMQL_MATRIX};
    r.rng = pq_alloc(ev, f->n * sizeof(pq_range));
    uint64_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        const rf_promql_series *s = &f->series[i];
        size_t lo = lower_bound(s->t, s->n, ref - e->range_ms), hi = upper_bound(s->t, s->n, ref);
        if (lo >= hi)
            continue;
        r.rng[r.n_rng++] = (pq_range){s->labels, s->t + lo, s->v + lo, hi - lo};
        n += hi - lo;
    }
    charge(ev, n);
    return r;
}

/* ---- binary operators ---- */

static bool is_comparison(enum pq_op op)
{
    return op >= PQ_OP_EQ && op <= PQ_OP_LE;
}

static bool drops_name(enum pq_op op)
{
    return op >= PQ_OP_ADD && op <= PQ_OP_POW;
}

/* x op y; *keep is the comparison's outcome (true for arithmetic). */
static double apply(enum pq_op op, double x, double y, bool *keep)
{
    *keep = true;
    switch (op) {
    case PQ_OP_ADD: return x + y;
    case PQ_OP_SUB: return x - y;
    case PQ_OP_MUL: return x * y;
    case PQ_OP_DIV: return x / y;
    case PQ_OP_MOD: return fmod(x, y);
    case PQ_OP_POW: return pow(x, y);
    case PQ_OP_ATAN2: return atan2(x, y);
    case PQ_OP_EQ: *keep = x == y; return x;
    case PQ_OP_NE: *keep = x != y; return x;
    case PQ_OP_GT: *keep = x > y; return x;
    case PQ_OP_LT: *keep = x < y; return x;
    case PQ_OP_GE: *keep = x >= y; return x;
    case PQ_OP_LE: *keep = x <= y; return x;
    default: *keep = false; return 0;
    }
}

/* Signature of a label set for vector matching: on(...) keeps only the
 * listed labels, ignoring(...) (and no clause) drops them and the name. */
static rf_promql_labels signature(pq_eval *ev, const pq_expr *e, rf_promql_labels l)
{
    pq_lb b;
    pq_lb_from(&b, l);
    if (e->on) {
        pq_lb_keep(&b, e->match, e->n_match);
    } else {
        pq_lb_del(&b, "__name__");
        for (size_t i = 0; i < e->n_match; i++)
            pq_lb_del(&b, e->match[i]);
    }
    rf_promql_labels out;
    if (!pq_lb_build(&b, ev->step_arena, &out))
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    return out;
}

/* A small open-addressing map from label sets to indexes, in the step arena. */
typedef struct lmap {
    rf_promql_labels *k;
    size_t *v;
    uint64_t *h;
    size_t cap;
} lmap;

static void lmap_init(pq_eval *ev, lmap *m, size_t n)
{
    m->cap = 16;
    while (m->cap < n * 2)
        m->cap *= 2;
    m->k = pq_alloc(ev, m->cap * sizeof(*m->k));
    m->v = pq_alloc(ev, m->cap * sizeof(*m->v));
    m->h = pq_alloc(ev, m->cap * sizeof(*m->h));
    for (size_t i = 0; i < m->cap; i++)
        m->k[i].buf = NULL;
}

/* The slot of k: found (k[slot].buf set) or where it goes. */
static size_t lmap_slot(const lmap *m, rf_promql_labels k)
{
    uint64_t h = pq_hash(k.buf, k.len);
    size_t i = h & (m->cap - 1);
    while (m->k[i].buf && !(m->h[i] == h && pq_labels_eq(m->k[i], k)))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void lmap_put(lmap *m, size_t slot, rf_promql_labels k, size_t v)
{
    m->k[slot] = k;
    m->v[slot] = v;
    m->h[slot] = pq_hash(k.buf, k.len);
}

/* m: the signatures of v's samples (the first sample of each), to its index. */
static void sig_map(pq_eval *ev, const pq_expr *e, pq_vec v, lmap *m)
{
    lmap_init(ev, m, v.n);
    for (size_t i = 0; i < v.n; i++) {
        rf_promql_labels sig = signature(ev, e, v.s[i].labels);
        size_t slot = lmap_slot(m, sig);
        if (!m->k[slot].buf)
            lmap_put(m, slot, sig, i);
    }
}

static bool in_map(pq_eval *ev, const pq_expr *e, const lmap *m, rf_promql_labels l)
{
    return m->k[lmap_slot(m, signature(ev, e, l))].buf != NULL;
}

static pq_val set_op(pq_eval *ev, const pq_expr *e, pq_vec l, pq_vec r)
{
    pq_val out = {.type = RF_PROMQL_VECTOR};
    out.vec.s = pq_alloc(ev, (l.n + r.n) * sizeof(pq_sample));
    lmap m;
    if (e->op == PQ_OP_OR) {
        sig_map(ev, e, l, &m);
        for (size_t i = 0; i < l.n; i++)
            out.vec.s[out.vec.n++] = l.s[i];
        for (size_t i = 0; i < r.n; i++)
            if (!in_map(ev, e, &m, r.s[i].labels))
                out.vec.s[out.vec.n++] = r.s[i];
        return out;
    }
    sig_map(ev, e, r, &m);
    for (size_t i = 0; i < l.n; i++)
        if (in_map(ev, e, &m, l.s[i].labels) == (e->op == PQ_OP_AND))
            out.vec.s[out.vec.n++] = l.s[i];
    return out;
}

static rf_promql_labels result_labels(pq_eval *ev, const pq_expr *e, rf_promql_labels l,
                                      rf_promql_labels one)
{
    pq_lb b;
    pq_lb_from(&b, l);
    if (drops_name(e->op) || e->return_bool)
        pq_lb_del(&b, "__name__");
    if (e->card == PQ_ONE_TO_ONE) {
        if (e->on)
            pq_lb_keep(&b, e->match, e->n_match);
        else
            for (size_t i = 0; i < e->n_match; i++)
                pq_lb_del(&b, e->match[i]);
    }
    for (size_t i = 0; i < e->n_include; i++) {
        const char *v = rf_promql_labels_get(one, e->include[i]);
        pq_lb_set(&b, e->include[i], v ? v : "");
    }
    rf_promql_labels out;
    if (!pq_lb_build(&b, ev->step_arena, &out))
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    return out;
}

static pq_val vector_binop(pq_eval *ev, const pq_expr *e, pq_vec l, pq_vec r)
{
    pq_val out = {.type = RF_PROMQL_VECTOR};
    if (l.n == 0 || r.n == 0)
        return out;
    bool swapped = e->card == PQ_ONE_TO_MANY;
    if (swapped) {
        pq_vec t = l;
        l = r;
        r = t;
    }
    lmap rm;
    lmap_init(ev, &rm, r.n);
    for (size_t i = 0; i < r.n; i++) {
        rf_promql_labels sig = signature(ev, e, r.s[i].labels);
        size_t slot = lmap_slot(&rm, sig);
        if (rm.k[slot].buf) {
            char a[256], b[256];
            pq_labels_text(r.s[i].labels, a, sizeof(a));
            pq_labels_text(r.s[rm.v[slot]].labels, b, sizeof(b));
            pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                    "found duplicate series for the match group on the %s hand-side of the "
                    "operation: [%s, %s];many-to-many matching not allowed: matching labels must "
                    "be unique on one side",
                    swapped ? "left" : "right", a, b);
        }
        lmap_put(&rm, slot, sig, i);
    }
    /* Results seen: one-to-one by signature, many-to-one by result labels. */
    lmap seen;
    lmap_init(ev, &seen, l.n);
    out.vec.s = pq_alloc(ev, l.n * sizeof(pq_sample));
    for (size_t i = 0; i < l.n; i++) {
        rf_promql_labels sig = signature(ev, e, l.s[i].labels);
        size_t slot = lmap_slot(&rm, sig);
        if (!rm.k[slot].buf)
            continue;
        const pq_sample *rs = &r.s[rm.v[slot]];
        double x = l.s[i].v, y = rs->v;
        if (swapped) {
            double t = x;
            x = y;
            y = t;
        }
        bool keep;
        double v = apply(e->op, x, y, &keep);
        if (e->return_bool) {
            v = keep ? 1 : 0;
            keep = true;
        }
        if (!keep)
            continue;
        rf_promql_labels lab = result_labels(ev, e, l.s[i].labels, rs->labels);
        rf_promql_labels key = e->card == PQ_ONE_TO_ONE ? sig : lab;
        size_t ss = lmap_slot(&seen, key);
        if (seen.k[ss].buf)
            pq_fail(
                ev, RF_PROMQL_EXECUTION, EINVAL, "%s",
                e->card == PQ_ONE_TO_ONE
                    ? "multiple matches for labels: many-to-one matching must be explicit "
                      "(group_left/group_right)"
                    : "multiple matches for labels: grouping labels must ensure unique matches");
        lmap_put(&seen, ss, key, i);
        out.vec.s[out.vec.n++] = (pq_sample){lab, ev->ts, v};
    }
    return out;
}

static pq_val scalar_binop(pq_eval *ev, const pq_expr *e, pq_vec vec, double s, bool scalar_left)
{
    pq_val out = {.type = RF_PROMQL_VECTOR};
    out.vec.s = pq_alloc(ev, vec.n * sizeof(pq_sample));
    for (size_t i = 0; i < vec.n; i++) {
        double x = vec.s[i].v, y = s;
        if (scalar_left) {
            x = s;
            y = vec.s[i].v;
        }
        bool keep;
        double v = apply(e->op, x, y, &keep);
        /* A comparison keeps the vector's value, whichever side it is on. */
        if (is_comparison(e->op))
            v = vec.s[i].v;
        if (e->return_bool) {
            v = keep ? 1 : 0;
            keep = true;
        }
        if (!keep)
            continue;
        rf_promql_labels lab = vec.s[i].labels;
        if (drops_name(e->op) || e->return_bool)
            lab = pq_drop_name(ev, lab);
        out.vec.s[out.vec.n++] = (pq_sample){lab, ev->ts, v};
    }
    return out;
}

static pq_val eval_binary(pq_eval *ev, const pq_expr *e)
{
    pq_val l = pq_eval_node(ev, e->a), r = pq_eval_node(ev, e->b);
    if (l.type == RF_PROMQL_SCALAR && r.type == RF_PROMQL_SCALAR) {
        bool keep;
        double v = apply(e->op, l.scalar, r.scalar, &keep);
        if (is_comparison(e->op))
            v = keep ? 1 : 0;
        return (pq_val){.type = RF_PROMQL_SCALAR, .scalar = v};
    }
    if (l.type == RF_PROMQL_VECTOR && r.type == RF_PROMQL_VECTOR) {
        if (e->card == PQ_MANY_TO_MANY)
            return set_op(ev, e, l.vec, r.vec);
        return vector_binop(ev, e, l.vec, r.vec);
    }
    if (l.type == RF_PROMQL_VECTOR)
        return scalar_binop(ev, e, l.vec, r.scalar, false);
    return scalar_binop(ev, e, r.vec, l.scalar, true);
}

/* ---- the tree ---- */

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

pq_val pq_eval_node(pq_eval *ev, const pq_expr *e)
{
    pq_val r = {0};
    switch (e->kind) {
    case PQ_NUM: return (pq_val){.type = RF_PROMQL_SCALAR, .scalar = e->num};
    case PQ_STR: return (pq_val){.type = RF_PROMQL_STRING, .str = e->str};
    case PQ_PAREN: return pq_eval_node(ev, e->a);
    case PQ_VSEL: return eval_vsel(ev, e);
    case PQ_MSEL: return eval_msel(ev, e);
    case PQ_UNARY:
        r = pq_eval_node(ev, e->a);
        if (e->op == PQ_OP_SUB) {
            if (r.type == RF_PROMQL_SCALAR) {
                r.scalar = -r.scalar;
            } else {
                pq_sample *s = pq_alloc(ev, r.vec.n * sizeof(*s));
                for (size_t i = 0; i < r.vec.n; i++)
                    s[i] = (pq_sample){pq_drop_name(ev, r.vec.s[i].labels), ev->ts, -r.vec.s[i].v};
                r.vec.s = s;
            }
        }
        break;
    case PQ_BINARY: r = eval_binary(ev, e); break;
    case PQ_AGG: {
        pq_val param = e->b ? pq_eval_node(ev, e->b) : (pq_val){0};
        r = pq_aggregate(ev, e, pq_eval_node(ev, e->a), param);
        break;
    }
    case PQ_CALL: {
        pq_val args[8] = {0};
        if (e->n_args > 8)
            pq_fail(ev, RF_PROMQL_BAD_DATA, EINVAL, "too many arguments to %s", e->fn->name);
        for (size_t i = 0; i < e->n_args; i++)
            args[i] = pq_eval_node(ev, e->args[i]);
        r = e->fn->call(ev, e, args);
        break;
    }
    }
    if (ev->lim.deadline_ns && now_ns() > ev->lim.deadline_ns)
        pq_fail(ev, RF_PROMQL_TIMEOUT, ETIMEDOUT, "query timed out in expression evaluation");
    /* Only a selector's samples carry their own time (for timestamp()). */
    if (r.type == RF_PROMQL_VECTOR)
        for (size_t i = 0; i < r.vec.n; i++)
            r.vec.s[i].t = ev->ts;
    return r;
}

/* ---- fetching ---- */

static void collect(pq_eval *ev, const pq_expr *e, int64_t range, size_t *cap, int64_t start,
                    int64_t end)
{
    if (!e)
        return;
    if (e->kind == PQ_MSEL) {
        collect(ev, e->a, e->range_ms, cap, start, end);
        return;
    }
    if (e->kind == PQ_VSEL) {
        int64_t lo = ref_time(ev, e, start), hi = ref_time(ev, e, end);
        int64_t back = range ? range : ev->lim.lookback_ms;
        if (*cap == ev->n_fetch) {
            size_t nc = *cap ? *cap * 2 : 8;
            pq_fetch *f = realloc(ev->fetch, nc * sizeof(*f));
            if (!f)
                pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
            ev->fetch = f;
            *cap = nc;
        }
        pq_fetch *f = &ev->fetch[ev->n_fetch];
        *f = (pq_fetch){.sel = e};
        rf_err err;
        int rc = ev->src->select(ev->src->user, e->matchers, e->n_matchers, lo - back, hi,
                                 &f->series, &f->n, &err);
        if (rc < 0)
            pq_fail(ev, RF_PROMQL_INTERNAL, -rc, "%s", err.msg);
        ev->n_fetch++;
        for (size_t i = 0; i < f->n; i++)
            ev->samples_read += f->series[i].n;
        /* Every selector's samples are held for the whole query (the steps
         * view them): that is this query's memory, so max_samples bounds
         * their sum too, not only what one step holds. */
        if (ev->samples_read > ev->lim.max_samples)
            pq_fail(ev, RF_PROMQL_EXECUTION, E2BIG,
                    "query processing would load too many samples into memory in query execution");
        ev->series_read += f->n;
        if (ev->lim.max_series && ev->series_read > ev->lim.max_series)
            pq_fail(ev, RF_PROMQL_EXECUTION, EMFILE,
                    "query would read more than %llu series (max_series)",
                    (unsigned long long)ev->lim.max_series);
        return;
    }
    collect(ev, e->a, 0, cap, start, end);
    collect(ev, e->b, 0, cap, start, end);
    for (size_t i = 0; i < e->n_args; i++)
        collect(ev, e->args[i], 0, cap, start, end);
}

/* ---- results ---- */

typedef struct out_builder {
    rf_promql_value *v;
    size_t cap;
    rf_u64map by_hash; /* label set hash -> series index + 1 */
} out_builder;

/* The result series of label set l, added when new. Two label sets with the
 * same 64-bit hash (never seen in practice) fall back to a scan. */
static size_t ob_find(pq_eval *ev, out_builder *ob, rf_promql_labels l)
{
    uint64_t h = pq_hash(l.buf, l.len), slot;
    if (rf_u64map_get(&ob->by_hash, h, &slot)) {
        if (pq_labels_eq(ob->v->series[slot - 1].labels, l))
            return slot - 1;
        for (size_t i = 0; i < ob->v->n_series; i++)
            if (pq_labels_eq(ob->v->series[i].labels, l))
                return i;
    }
    if (ob->v->n_series == ob->cap) {
        size_t nc = ob->cap ? ob->cap * 2 : 16;
        rf_promql_out_series *s = realloc(ob->v->series, nc * sizeof(*s));
        if (!s)
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        ob->v->series = s;
        ob->cap = nc;
    }
    char *buf = pq_arena_alloc(ob->v->arena, l.len + 1);
    if (!buf)
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    memcpy(buf, l.buf, l.len);
    size_t i = ob->v->n_series++;
    ob->v->series[i] = (rf_promql_out_series){.labels = {buf, l.len}};
    if (!rf_u64map_get(&ob->by_hash, h, &slot) && rf_u64map_put(&ob->by_hash, h, i + 1) < 0)
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    return i;
}

static void ob_add(pq_eval *ev, out_builder *ob, size_t i, int64_t t, double v, size_t per_series)
{
    rf_promql_out_series *s = &ob->v->series[i];
    if (s->n && s->points[s->n - 1].t == t) {
        char b[256];
        pq_labels_text(s->labels, b, sizeof(b));
        pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                "vector cannot contain metrics with the same labelset (%s)", b);
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2
                           : (per_series < 4     ? 4
                              : per_series > 256 ? 256
                                                 : per_series);
        rf_promql_point *p = realloc(s->points, nc * sizeof(*p));
        if (!p)
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        s->points = p;
        s->cap = nc;
    }
    s->points[s->n++] = (rf_promql_point){t, v};
}

static void ob_add_step(pq_eval *ev, out_builder *ob, pq_val r, size_t per_series)
{
    if (r.type == RF_PROMQL_SCALAR) {
        size_t i = ob_find(ev, ob, (rf_promql_labels){"", 0});
        ob_add(ev, ob, i, ev->ts, r.scalar, per_series);
        return;
    }
    for (size_t k = 0; k < r.vec.n; k++) {
        size_t i = ob_find(ev, ob, r.vec.s[k].labels);
        ob_add(ev, ob, i, ev->ts, r.vec.s[k].v, per_series);
    }
}

static int cmp_out(const void *a, const void *b)
{
    return pq_labels_cmp(((const rf_promql_out_series *)a)->labels,
                         ((const rf_promql_out_series *)b)->labels);
}

void rf_promql_value_free(rf_promql_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_series; i++)
        free(v->series[i].points);
    free(v->series);
    free(v->string);
    pq_arena_free(v->arena);
    free(v);
}

static void instant_result(pq_eval *ev, out_builder *ob, pq_val r)
{
    rf_promql_value *v = ob->v;
    v->type = r.type;
    switch (r.type) {
    case RF_PROMQL_SCALAR: v->scalar = (rf_promql_point){ev->ts, r.scalar}; break;
    case RF_PROMQL_STRING:
        if (!(v->string = strdup(r.str)))
            pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
        v->scalar.t = ev->ts;
        break;
    case RF_PROMQL_VECTOR:
        for (size_t k = 0; k < r.vec.n; k++) {
            size_t before = v->n_series;
            size_t i = ob_find(ev, ob, r.vec.s[k].labels);
            if (i < before) {
                char b[256];
                pq_labels_text(r.vec.s[k].labels, b, sizeof(b));
                pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL,
                        "vector cannot contain metrics with the same labelset (%s)", b);
            }
            ob_add(ev, ob, i, ev->ts, r.vec.s[k].v, 1);
        }
        break;
    case RF_PROMQL_MATRIX:
        for (size_t k = 0; k < r.n_rng; k++) {
            size_t i = ob_find(ev, ob, r.rng[k].labels);
            for (size_t j = 0; j < r.rng[k].n; j++)
                ob_add(ev, ob, i, r.rng[k].t[j], r.rng[k].v[j], r.rng[k].n);
        }
        if (v->n_series)
            qsort(v->series, v->n_series, sizeof(*v->series), cmp_out);
        break;
    }
}

int rf_promql_eval(const rf_promql_expr *expr, const rf_promql_source *src, int64_t start_ms,
                   int64_t end_ms, int64_t step_ms, const rf_promql_limits *limits,
                   rf_promql_value **out, enum rf_promql_error *kind, rf_err *err)
{
    /* On the heap: what longjmp leaves behind must not be in registers. */
    pq_eval *const evp = calloc(1, sizeof(pq_eval));
    out_builder *const obp = calloc(1, sizeof(out_builder));
    if (!evp || !obp) {
        free(evp);
        free(obp);
        *kind = RF_PROMQL_INTERNAL;
        return rf_err_set(err, ENOMEM, "out of memory");
    }
#define ev (*evp)
#define ob (*obp)
    ev = (pq_eval){.src = src, .start = start_ms, .end = end_ms, .step = step_ms, .err = err};
    if (limits)
        ev.lim = *limits;
    if (!ev.lim.max_samples)
        ev.lim.max_samples = DEFAULT_MAX_SAMPLES;
    if (!ev.lim.lookback_ms)
        ev.lim.lookback_ms = DEFAULT_LOOKBACK_MS;
    *kind = RF_PROMQL_OK;
    *out = NULL;
    rf_err_clear(err);
    size_t fetch_cap = 0;
    volatile int rc = 0;
    if (step_ms < 0 || end_ms < start_ms || (step_ms == 0 && end_ms != start_ms)) {
        *kind = RF_PROMQL_BAD_DATA;
        rc = rf_err_set(err, EINVAL, "end timestamp must not be before start time");
        goto done;
    }
    if (step_ms && (end_ms - start_ms) / step_ms >= MAX_STEPS) {
        *kind = RF_PROMQL_BAD_DATA;
        rc = rf_err_set(err, EINVAL,
                        "exceeded maximum resolution of 11,000 points per timeseries. Try "
                        "decreasing the query resolution (?step=XX)");
        goto done;
    }
    if (step_ms && expr->root->type != RF_PROMQL_SCALAR && expr->root->type != RF_PROMQL_VECTOR) {
        *kind = RF_PROMQL_BAD_DATA;
        rc = rf_err_set(
            err, EINVAL,
            "invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
            expr->root->type == RF_PROMQL_MATRIX ? "range vector" : "string");
        goto done;
    }
    ob.v = calloc(1, sizeof(*ob.v));
    ev.step_arena = pq_arena_new();
    if (!ob.v || !ev.step_arena || !(ob.v->arena = pq_arena_new()) ||
        rf_u64map_init(&ob.by_hash, 64) < 0) {
        rc = rf_err_set(err, ENOMEM, "out of memory");
        *kind = RF_PROMQL_INTERNAL;
        goto done;
    }
    if (setjmp(ev.fail)) {
        rc = -(err && err->code ? err->code : EINVAL);
        *kind = ev.kind;
        goto done;
    }
    collect(&ev, expr->root, 0, &fetch_cap, start_ms, end_ms);
    if (!step_ms) {
        ev.ts = start_ms;
        pq_val r = pq_eval_node(&ev, expr->root);
        instant_result(&ev, &ob, r);
    } else {
        size_t steps = (size_t)((end_ms - start_ms) / step_ms) + 1;
        ob.v->type = RF_PROMQL_MATRIX;
        for (int64_t t = start_ms; t <= end_ms; t += step_ms) {
            ev.ts = t;
            ev.samples_now = 0;
            pq_arena_reset(ev.step_arena);
            ob_add_step(&ev, &ob, pq_eval_node(&ev, expr->root), steps);
        }
        if (ob.v->n_series)
            qsort(ob.v->series, ob.v->n_series, sizeof(*ob.v->series), cmp_out);
    }
    ob.v->samples = ev.samples_read;
done:
    for (size_t i = 0; i < ev.n_fetch; i++)
        src->release(src->user, ev.fetch[i].series, ev.fetch[i].n);
    free(ev.fetch);
    memo_free(&ev.keys);
    pq_arena_free(ev.step_arena);
    rf_u64map_free(&ob.by_hash);
    rf_promql_value *v = ob.v;
    free(evp);
    free(obp);
#undef ev
#undef ob
    if (rc < 0) {
        rf_promql_value_free(v);
        return rc;
    }
    *out = v;
    return 0;
}
