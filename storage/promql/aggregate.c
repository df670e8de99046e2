/* Aggregation operators (sum, avg, ..., topk, count_values) with by/without,
 * computed as Prometheus 2.42 does, down to its running mean for avg and
 * Welford's updates for stddev/stdvar, so that results agree to the last
 * bits that matter. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storage/promql/promql_pvt.h"

typedef struct group {
    rf_promql_labels key;    /* grouping key (lookup) */
    rf_promql_labels labels; /* the result's labels */
    uint64_t hash;
    double value, mean;
    size_t count;
    size_t first;    /* index in the input of its first sample */
    size_t *members; /* topk/bottomk/quantile: input indexes */
    size_t n_members;
} group;

double pq_quantile(double q, double *v, size_t n)
{
    if (n == 0 || isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    /* Insertion sort: groups are small; NaN sorts first (Go's sort.Float64s). */
    for (size_t i = 1; i < n; i++) {
        double x = v[i];
        size_t j = i;
        while (j > 0 && (v[j - 1] > x || (isnan(x) && !isnan(v[j - 1])))) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    double rank = q * (double)(n - 1);
    double lo = fmax(0, floor(rank)), hi = fmin((double)n - 1, lo + 1);
    double w = rank - floor(rank);
    return v[(size_t)lo] * (1 - w) + v[(size_t)hi] * w;
}

static rf_promql_labels build(pq_eval *ev, pq_lb *b)
{
    rf_promql_labels out;
    if (!pq_lb_build(b, ev->step_arena, &out))
        pq_fail(ev, RF_PROMQL_INTERNAL, ENOMEM, "out of memory");
    return out;
}

/* topk keeps the k largest (NaN the smallest), bottomk the k smallest (NaN
 * the largest); the output is best first. */
static bool better(enum pq_agg a, double x, double y)
{
    if (a == PQ_AGG_TOPK)
        return x > y || (isnan(y) && !isnan(x));
    return x < y || (isnan(y) && !isnan(x));
}

pq_val pq_aggregate(pq_eval *ev, const pq_expr *e, pq_val in, pq_val param)
{
    pq_vec vec = in.vec;
    pq_val out = {.type = RF_PROMQL_VECTOR};
    int64_t k = 0;
    double q = 0;
    const char *value_label = NULL;
    if (e->agg == PQ_AGG_TOPK || e->agg == PQ_AGG_BOTTOMK) {
        if (!(param.scalar > -9.2e18 && param.scalar < 9.2e18))
            pq_fail(ev, RF_PROMQL_EXECUTION, ERANGE, "Scalar value %g overflows int64",
                    param.scalar);
        k = (int64_t)param.scalar;
        if (k < 1)
            return out;
    } else if (e->agg == PQ_AGG_QUANTILE) {
        q = param.scalar;
    } else if (e->agg == PQ_AGG_COUNT_VALUES) {
        value_label = param.str;
        if (!pq_valid_label_name(value_label))
            pq_fail(ev, RF_PROMQL_EXECUTION, EINVAL, "invalid label name \"%s\"", value_label);
    }
    group *g = pq_alloc(ev, (vec.n ? vec.n : 1) * sizeof(group));
    size_t n_groups = 0, cap = 16;
    while (cap < vec.n * 2)
        cap *= 2;
    size_t *slots = pq_alloc(ev, cap * sizeof(size_t));
    memset(slots, 0xff, cap * sizeof(size_t));
    for (size_t i = 0; i < vec.n; i++) {
        const pq_sample *s = &vec.s[i];
        rf_promql_labels metric = s->labels;
        if (value_label) {
            char num[40];
            rf_promql_format_value(s->v, num, sizeof(num));
            char *copy = pq_alloc(ev, strlen(num) + 1);
            strcpy(copy, num);
            pq_lb b;
            pq_lb_from(&b, metric);
            pq_lb_set(&b, value_label, copy);
            metric = build(ev, &b);
        }
        rf_promql_labels key;
        uint64_t h, in_hash = value_label ? 0 : pq_hash(metric.buf, metric.len);
        if (value_label || !pq_key_memo_get(ev, e, metric, in_hash, &key, &h)) {
            pq_lb b;
            pq_lb_from(&b, metric);
            if (e->without) {
                for (size_t j = 0; j < e->n_grouping; j++)
                    pq_lb_del(&b, e->grouping[j]);
                pq_lb_del(&b, "__name__");
            } else {
                pq_lb_keep(&b, e->grouping, e->n_grouping);
                if (value_label) {
                    const char *v = rf_promql_labels_get(metric, value_label);
                    pq_lb_set(&b, value_label, v ? v : "");
                }
            }
            key = build(ev, &b);
            h = pq_hash(key.buf, key.len);
            if (!value_label) /* count_values' keys hold the value: not reusable */
                pq_key_memo_put(ev, e, metric, in_hash, key, h);
        }
        size_t j = h & (cap - 1);
        while (slots[j] != SIZE_MAX &&
               !(g[slots[j]].hash == h && pq_labels_eq(g[slots[j]].key, key)))
            j = (j + 1) & (cap - 1);
        if (slots[j] == SIZE_MAX) {
            slots[j] = n_groups;
            group *ng = &g[n_groups++];
            *ng = (group){.key = key,
                          .labels = key,
                          .hash = h,
                          .value = s->v,
                          .mean = s->v,
                          .count = 1,
                          .first = i};
            switch (e->agg) {
            case PQ_AGG_STDDEV:
            case PQ_AGG_STDVAR: ng->value = 0; break;
            case PQ_AGG_GROUP: ng->value = 1; break;
            case PQ_AGG_TOPK:
            case PQ_AGG_BOTTOMK:
            case PQ_AGG_QUANTILE:
                ng->members = pq_alloc(ev, vec.n * sizeof(size_t));
                ng->members[ng->n_members++] = i;
                break;
            default: break;
            }
            continue;
        }
        group *gr = &g[slots[j]];
        double v = s->v;
        switch (e->agg) {
        case PQ_AGG_SUM: gr->value += v; break;
        case PQ_AGG_AVG:
            gr->count++;
            if (isinf(gr->mean)) {
                if (isinf(v) && (gr->mean > 0) == (v > 0))
                    break;
                if (!isinf(v) && !isnan(v))
                    break;
            }
            gr->mean += v / (double)gr->count - gr->mean / (double)gr->count;
            break;
        case PQ_AGG_MAX:
            if (gr->value < v || isnan(gr->value))
                gr->value = v;
            break;
        case PQ_AGG_MIN:
            if (gr->value > v || isnan(gr->value))
                gr->value = v;
            break;
        case PQ_AGG_COUNT:
        case PQ_AGG_COUNT_VALUES: gr->count++; break;
        case PQ_AGG_GROUP: break;
        case PQ_AGG_STDDEV:
        case PQ_AGG_STDVAR: {
            gr->count++;
            double d = v - gr->mean;
            gr->mean += d / (double)gr->count;
            gr->value += d * (v - gr->mean);
            break;
        }
        case PQ_AGG_TOPK:
        case PQ_AGG_BOTTOMK:
        case PQ_AGG_QUANTILE: gr->members[gr->n_members++] = i; break;
        }
    }
    size_t out_cap = e->agg == PQ_AGG_TOPK || e->agg == PQ_AGG_BOTTOMK ? vec.n : n_groups;
    out.vec.s = pq_alloc(ev, (out_cap ? out_cap : 1) * sizeof(pq_sample));
    for (size_t i = 0; i < n_groups; i++) {
        group *gr = &g[i];
        double v = gr->value;
        switch (e->agg) {
        case PQ_AGG_AVG: v = gr->mean; break;
        case PQ_AGG_COUNT:
        case PQ_AGG_COUNT_VALUES: v = (double)gr->count; break;
        case PQ_AGG_STDVAR: v = gr->value / (double)gr->count; break;
        case PQ_AGG_STDDEV: v = sqrt(gr->value / (double)gr->count); break;
        case PQ_AGG_QUANTILE: {
            double *vals = pq_alloc(ev, gr->n_members * sizeof(double));
            for (size_t j = 0; j < gr->n_members; j++)
                vals[j] = vec.s[gr->members[j]].v;
            v = pq_quantile(q, vals, gr->n_members);
            break;
        }
        case PQ_AGG_TOPK:
        case PQ_AGG_BOTTOMK: {
            /* Selection by insertion into the best k, in input order for
             * ties (what Prometheus' heap gives for distinct values). */
            size_t *best = pq_alloc(ev, gr->n_members * sizeof(size_t));
            size_t nb = 0;
            for (size_t j = 0; j < gr->n_members; j++) {
                size_t idx = gr->members[j];
                size_t pos = nb;
                while (pos > 0 && better(e->agg, vec.s[idx].v, vec.s[best[pos - 1]].v))
                    pos--;
                if ((int64_t)pos >= k)
                    continue;
                if ((int64_t)nb < k)
                    nb++;
                memmove(best + pos + 1, best + pos, (nb - 1 - pos) * sizeof(size_t));
                best[pos] = idx;
            }
            for (size_t j = 0; j < nb; j++)
                out.vec.s[out.vec.n++] =
                    (pq_sample){vec.s[best[j]].labels, ev->ts, vec.s[best[j]].v};
            continue;
        }
        default: break;
        }
        out.vec.s[out.vec.n++] = (pq_sample){gr->labels, ev->ts, v};
    }
    return out;
}
