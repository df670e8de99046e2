/* PromQL internals shared by the parser, the evaluator and the functions.
 * Not a public header: include storage/promql/promql.h. */
#ifndef RF_STORAGE_PROMQL_PVT_H
#define RF_STORAGE_PROMQL_PVT_H

#include <setjmp.h>

#include "storage/promql/promql.h"

/* ---- arena: everything of one query (or one evaluation step) ---- */

typedef struct pq_arena pq_arena;
pq_arena *pq_arena_new(void);
void pq_arena_free(pq_arena *a);
void pq_arena_reset(pq_arena *a);            /* keeps the first chunk */
void *pq_arena_alloc(pq_arena *a, size_t n); /* 16-aligned; NULL on ENOMEM */
size_t pq_arena_bytes(const pq_arena *a);

/* ---- label sets ---- */

typedef struct pq_label {
    const char *name, *value;
} pq_label;

/* A builder: up to PQ_MAX_LABELS labels, then serialised sorted. */
#define PQ_MAX_LABELS 128
typedef struct pq_lb {
    pq_label l[PQ_MAX_LABELS];
    uint32_t n;
} pq_lb;

void pq_lb_from(pq_lb *b, rf_promql_labels l);
void pq_lb_set(pq_lb *b, const char *name, const char *value); /* "" deletes */
void pq_lb_del(pq_lb *b, const char *name);
void pq_lb_keep(pq_lb *b, char *const *names, size_t n);
/* Serialises into the arena; false on ENOMEM or too many labels. */
bool pq_lb_build(pq_lb *b, pq_arena *a, rf_promql_labels *out);
int pq_labels_cmp(rf_promql_labels a, rf_promql_labels b);
bool pq_labels_eq(rf_promql_labels a, rf_promql_labels b);
/* The labels as Prometheus prints them: name{a="b", c="d"}. */
void pq_labels_text(rf_promql_labels l, char *buf, size_t len);
uint64_t pq_hash(const void *p, size_t n);
/* [a-zA-Z_][a-zA-Z0-9_]*, what Prometheus takes for a label name. */
bool pq_valid_label_name(const char *s);

/* ---- expression tree ---- */

enum pq_node {
    PQ_NUM = 1,
    PQ_STR,
    PQ_PAREN,
    PQ_UNARY,
    PQ_BINARY,
    PQ_CALL,
    PQ_AGG,
    PQ_VSEL,
    PQ_MSEL
};

enum pq_op {
    PQ_OP_NONE = 0,
    PQ_OP_ADD,
    PQ_OP_SUB,
    PQ_OP_MUL,
    PQ_OP_DIV,
    PQ_OP_MOD,
    PQ_OP_POW,
    PQ_OP_ATAN2,
    PQ_OP_EQ,
    PQ_OP_NE,
    PQ_OP_GT,
    PQ_OP_LT,
    PQ_OP_GE,
    PQ_OP_LE,
    PQ_OP_AND,
    PQ_OP_OR,
    PQ_OP_UNLESS,
};

enum pq_agg {
    PQ_AGG_SUM = 1,
    PQ_AGG_AVG,
    PQ_AGG_MIN,
    PQ_AGG_MAX,
    PQ_AGG_COUNT,
    PQ_AGG_GROUP,
    PQ_AGG_STDDEV,
    PQ_AGG_STDVAR,
    PQ_AGG_QUANTILE,
    PQ_AGG_TOPK,
    PQ_AGG_BOTTOMK,
    PQ_AGG_COUNT_VALUES,
};

enum pq_card {
    PQ_ONE_TO_ONE = 0,
    PQ_MANY_TO_ONE,
    PQ_ONE_TO_MANY,
    PQ_MANY_TO_MANY
};

struct pq_func;

typedef struct pq_expr {
    enum pq_node kind;
    enum rf_promql_type type;
    int pos;    /* byte offset in the text, for messages */
    double num; /* NUM */
    char *str;  /* STR */
    /* UNARY (op SUB/ADD, a), BINARY (a op b), PAREN (a), MSEL (a = VSEL),
     * AGG (a = the vector, b = the parameter), CALL (args) */
    enum pq_op op;
    struct pq_expr *a, *b;
    bool return_bool;
    enum pq_card card;
    bool on;      /* on(...) given; else ignoring(...) or nothing */
    char **match; /* on/ignoring labels */
    size_t n_match;
    char **include; /* group_left/right labels */
    size_t n_include;
    /* AGG */
    enum pq_agg agg;
    bool without;
    char **grouping;
    size_t n_grouping;
    /* CALL */
    const struct pq_func *fn;
    struct pq_expr **args;
    size_t n_args;
    /* VSEL */
    char *name;
    rf_promql_matcher *matchers;
    size_t n_matchers;
    int64_t offset_ms;
    bool has_at;
    int at_kind; /* 0: a time, 1: start(), 2: end() */
    int64_t at_ms;
    /* MSEL */
    int64_t range_ms;
} pq_expr;

struct rf_promql_expr {
    pq_expr *root;
};

void pq_expr_free(pq_expr *e);

/* ---- evaluation ---- */

typedef struct pq_sample {
    rf_promql_labels labels;
    int64_t t; /* sample time (for timestamp()); the vector is at the step's time */
    double v;
} pq_sample;

typedef struct pq_vec {
    pq_sample *s;
    size_t n;
} pq_vec;

/* A range vector at one step: views into the source's samples. */
typedef struct pq_range {
    rf_promql_labels labels;
    const int64_t *t;
    const double *v;
    size_t n;
} pq_range;

typedef struct pq_val {
    enum rf_promql_type type;
    double scalar;
    const char *str;
    pq_vec vec;
    pq_range *rng;
    size_t n_rng;
} pq_val;

/* One selector's series, fetched once for the whole query. */
typedef struct pq_fetch {
    const pq_expr *sel;
    rf_promql_series *series;
    size_t n;
} pq_fetch;

/* Grouping keys already computed in this query: an aggregation meets the
 * same input label sets at every step of a range query, and building a key
 * (parse, keep or drop, serialise) cost more than the sum itself. Keyed by
 * the aggregation node and the input labels' content (compared whole, so a
 * hash collision only misses); the copies live in a query-long arena. At
 * most one entry per node and input label set the query read. */
typedef struct pq_key_entry {
    const struct pq_expr *node;
    rf_promql_labels in, key;
    uint64_t key_hash;
} pq_key_entry;

typedef struct pq_key_memo {
    struct rf_u64map *map; /* mixed (node, labels hash) -> entry index + 1 */
    pq_key_entry *e;
    size_t n, cap;
    pq_arena *arena;
} pq_key_memo;

typedef struct pq_eval {
    const rf_promql_source *src;
    rf_promql_limits lim;
    int64_t start, end, step;
    int64_t ts; /* the step being evaluated */
    pq_arena *step_arena;
    pq_fetch *fetch;
    size_t n_fetch;
    uint64_t samples_now; /* samples held by the current step */
    uint64_t samples_read;
    uint64_t series_read;
    jmp_buf fail;
    enum rf_promql_error kind;
    rf_err *err;
    pq_key_memo keys;
} pq_eval;

/* The memoised grouping key of `in` for aggregation node e: true and *key,
 * *hash when known; pq_key_memo_put records one (a failure to record only
 * loses the memo). */
bool pq_key_memo_get(pq_eval *ev, const struct pq_expr *e, rf_promql_labels in, uint64_t in_hash,
                     rf_promql_labels *key, uint64_t *hash);
void pq_key_memo_put(pq_eval *ev, const struct pq_expr *e, rf_promql_labels in, uint64_t in_hash,
                     rf_promql_labels key, uint64_t hash);

/* Abandons the evaluation (longjmp to rf_promql_eval's exit path). */
_Noreturn void pq_fail(pq_eval *ev, enum rf_promql_error kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void *pq_alloc(pq_eval *ev, size_t n); /* step arena; fails the query on ENOMEM */
pq_val pq_eval_node(pq_eval *ev, const pq_expr *e);
rf_promql_labels pq_drop_name(pq_eval *ev, rf_promql_labels l);

/* ---- functions (functions.c) ---- */

typedef struct pq_func {
    const char *name;
    enum rf_promql_type args[5];
    int n_args;     /* required */
    int n_optional; /* more allowed (the last type repeats for label_join) */
    bool variadic;
    enum rf_promql_type ret;
    pq_val (*call)(pq_eval *ev, const pq_expr *call, pq_val *args);
} pq_func;

const pq_func *pq_func_find(const char *name, size_t len);
/* Whether `name` is a Prometheus function this engine does not implement. */
bool pq_func_known_unsupported(const char *name, size_t len);

/* Aggregations (aggregate.c). */
pq_val pq_aggregate(pq_eval *ev, const pq_expr *e, pq_val in, pq_val param);
double pq_quantile(double q, double *v, size_t n); /* sorts v */

/* Regular expressions: anchored at both ends. NULL with err filled. */
void *pq_re_compile(const char *pattern, rf_err *err);
void pq_re_free(void *re);
bool pq_re_match(void *re, const char *s, size_t len);
/* label_replace: expands repl with $1, ${1}, $name from a match of s; false
 * when the pattern does not match. */
bool pq_re_replace(void *re, const char *s, const char *repl, char *out, size_t cap);

#endif
