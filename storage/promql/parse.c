/* The PromQL parser: a context-sensitive lexer (durations are read only
 * where the grammar expects one: inside [] and after offset) and a Pratt
 * parser for the binary operators, whose binding powers are Prometheus':
 *
 *   or  <  and unless  <  == != > < >= <=  <  + -  <  * / % atan2  <  ^ (right)
 *
 * Unary minus binds looser than ^ (-2^2 is -4) and tighter than the rest.
 * Types are checked as the tree is built, so evaluation never meets an
 * argument of the wrong type. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "storage/promql/promql_pvt.h"

enum tok {
    T_EOF = 0,
    T_NUM,
    T_STR,
    T_IDENT,
    T_LPAREN,
    T_RPAREN,
    T_LBRACE,
    T_RBRACE,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_COLON,
    T_AT,
    T_ADD,
    T_SUB,
    T_MUL,
    T_DIV,
    T_MOD,
    T_POW,
    T_EQLC,
    T_NEQ,
    T_GTR,
    T_LSS,
    T_GTE,
    T_LTE,
    T_ASSIGN,
    T_EQ_RE,
    T_NEQ_RE,
    T_BAD
};

typedef struct parser {
    const char *text;
    size_t pos; /* start of the next token */
    enum tok t; /* the next token, from pos */
    size_t tlen;
    double num;
    char *str; /* T_STR: decoded, malloc'd */
    bool failed;
    rf_err *err;
    int depth;
} parser;

#define MAX_DEPTH 256

static void fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(parser *p, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rf_err_set(p->err, EINVAL, "parse error at char %zu: %s", p->pos + 1, msg);
}

static bool is_ident_start(int c)
{
    return isalpha(c) || c == '_' || c == ':';
}

static bool is_ident(int c)
{
    return isalnum(c) || c == '_' || c == ':';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void put_utf8(char *o, size_t *n, unsigned long cp)
{
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | (cp >> 6));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | (cp >> 12));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | (cp >> 18));
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* A quoted string at s (", ' or `) with Go's escapes; returns its length in
 * the text, 0 on error (p failed). */
static size_t lex_string(parser *p, const char *s)
{
    char q = s[0];
    size_t i = 1, n = 0;
    char *o = malloc(strlen(s) * 4 + 1);
    if (!o) {
        fail(p, "out of memory");
        return 0;
    }
    for (;;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0' || (c == '\n' && q != '`')) {
            free(o);
            fail(p, "unterminated quoted string");
            return 0;
        }
        i++;
        if (c == (unsigned char)q)
            break;
        if (c != '\\' || q == '`') {
            o[n++] = (char)c;
            continue;
        }
        c = (unsigned char)s[i++];
        switch (c) {
        case 'a': o[n++] = '\a'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'v': o[n++] = '\v'; break;
        case '\\': o[n++] = '\\'; break;
        case '"':
        case '\'':
            if (c != (unsigned char)q) {
                free(o);
                fail(p, "unknown escape sequence \\%c", c);
                return 0;
            }
            o[n++] = (char)c;
            break;
        case 'x':
        case 'u':
        case 'U': {
            int digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            unsigned long cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = hexval((unsigned char)s[i]);
                if (h < 0) {
                    free(o);
                    fail(p, "invalid escape sequence in string");
                    return 0;
                }
                cp = cp * 16 + (unsigned long)h;
                i++;
            }
            if (c == 'x')
                o[n++] = (char)cp;
            else if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) {
                free(o);
                fail(p, "escape sequence is an invalid Unicode code point");
                return 0;
            } else
                put_utf8(o, &n, cp);
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                unsigned cp = c - '0';
                for (int k = 0; k < 2; k++) {
                    if (s[i] < '0' || s[i] > '7') {
                        free(o);
                        fail(p, "invalid escape sequence in string");
                        return 0;
                    }
                    cp = cp * 8 + (unsigned)(s[i++] - '0');
                }
                if (cp > 255) {
                    free(o);
                    fail(p, "octal escape value > 255");
                    return 0;
                }
                o[n++] = (char)cp;
                break;
            }
            free(o);
            fail(p, "unknown escape sequence \\%c", c ? c : '0');
            return 0;
        }
    }
    o[n] = '\0';
    free(p->str);
    p->str = o;
    return i;
}

/* Reads the token at p->pos into p->t/tlen (does not advance). */
static void lex(parser *p)
{
    const char *s = p->text;
    while (isspace((unsigned char)s[p->pos]) || s[p->pos] == '#') {
        if (s[p->pos] == '#')
            while (s[p->pos] && s[p->pos] != '\n')
                p->pos++;
        else
            p->pos++;
    }
    const char *c = s + p->pos;
    p->tlen = 1;
    switch (*c) {
    case '\0':
        p->t = T_EOF;
        p->tlen = 0;
        return;
    case '(': p->t = T_LPAREN; return;
    case ')': p->t = T_RPAREN; return;
    case '{': p->t = T_LBRACE; return;
    case '}': p->t = T_RBRACE; return;
    case '[': p->t = T_LBRACK; return;
    case ']': p->t = T_RBRACK; return;
    case ',': p->t = T_COMMA; return;
    case ':':
        if (!is_ident(c[1]) || isdigit((unsigned char)c[1])) {
            p->t = T_COLON;
            return;
        }
        break;
    case '@': p->t = T_AT; return;
    case '+': p->t = T_ADD; return;
    case '-': p->t = T_SUB; return;
    case '*': p->t = T_MUL; return;
    case '/': p->t = T_DIV; return;
    case '%': p->t = T_MOD; return;
    case '^': p->t = T_POW; return;
    case '=':
        if (c[1] == '=') {
            p->t = T_EQLC;
            p->tlen = 2;
        } else if (c[1] == '~') {
            p->t = T_EQ_RE;
            p->tlen = 2;
        } else
            p->t = T_ASSIGN;
        return;
    case '!':
        if (c[1] == '=') {
            p->t = T_NEQ;
            p->tlen = 2;
            return;
        }
        if (c[1] == '~') {
            p->t = T_NEQ_RE;
            p->tlen = 2;
            return;
        }
        p->t = T_BAD;
        return;
    case '>':
        p->t = c[1] == '=' ? T_GTE : T_GTR;
        p->tlen = c[1] == '=' ? 2 : 1;
        return;
    case '<':
        p->t = c[1] == '=' ? T_LTE : T_LSS;
        p->tlen = c[1] == '=' ? 2 : 1;
        return;
    case '"':
    case '\'':
    case '`':
        p->tlen = lex_string(p, c);
        p->t = p->tlen ? T_STR : T_BAD;
        return;
    default: break;
    }
    if (isdigit((unsigned char)*c) || (*c == '.' && isdigit((unsigned char)c[1]))) {
        char *end;
        errno = 0;
        if (c[0] == '0' && (c[1] == 'x' || c[1] == 'X'))
            p->num = (double)strtoull(c, &end, 16);
        else
            p->num = strtod(c, &end);
        /* A number glued to letters (5m) is a duration, not a number: only
         * legal where parse_duration reads it. */
        p->t = is_ident(*end) ? T_BAD : T_NUM;
        p->tlen = (size_t)(end - c);
        return;
    }
    if (is_ident_start((unsigned char)*c)) {
        size_t n = 1;
        while (is_ident((unsigned char)c[n]))
            n++;
        p->t = T_IDENT;
        p->tlen = n;
        return;
    }
    p->t = T_BAD;
}

static void next(parser *p)
{
    p->pos += p->tlen;
    lex(p);
}

static bool is_word(const parser *p, const char *w)
{
    return p->t == T_IDENT && p->tlen == strlen(w) &&
           strncasecmp(p->text + p->pos, w, p->tlen) == 0;
}

static const char *tok_text(const parser *p, char *buf, size_t len)
{
    if (p->t == T_EOF)
        return "end of input";
    snprintf(buf, len, "\"%.*s\"", (int)(p->tlen ? p->tlen : 1), p->text + p->pos);
    return buf;
}

static void expect(parser *p, enum tok t, const char *what)
{
    if (p->failed)
        return;
    if (p->t != t) {
        char b[80];
        fail(p, "unexpected %s, expected %s", tok_text(p, b, sizeof(b)), what);
        return;
    }
    next(p);
}

int rf_promql_parse_duration(const char *s, size_t len, int64_t *ms)
{
    static const struct {
        const char *u;
        int64_t ms;
    } units[] = {{"ms", 1},       {"s", 1000},      {"m", 60000},      {"h", 3600000},
                 {"d", 86400000}, {"w", 604800000}, {"y", 31536000000}};
    size_t i = 0;
    int64_t total = 0;
    int last = 99;
    if (len == 0)
        return -EINVAL;
    while (i < len) {
        if (!isdigit((unsigned char)s[i]))
            return -EINVAL;
        int64_t n = 0;
        while (i < len && isdigit((unsigned char)s[i])) {
            if (n > INT64_MAX / 10)
                return -EINVAL;
            n = n * 10 + (s[i++] - '0');
        }
        int u = -1;
        for (int k = 0; k < 7; k++) {
            size_t ul = strlen(units[k].u);
            if (i + ul <= len && strncmp(s + i, units[k].u, ul) == 0 &&
                (k != 2 || i + 1 >= len || s[i + 1] != 's'))
                u = k;
        }
        if (u < 0)
            return -EINVAL;
        /* Units from the largest to the smallest, each once (1h30m, not 30m1h). */
        int rank = u == 0 ? 0 : u;
        if (rank >= last)
            return -EINVAL;
        last = rank;
        i += strlen(units[u].u);
        if (n > INT64_MAX / units[u].ms || total > INT64_MAX - n * units[u].ms)
            return -EINVAL;
        total += n * units[u].ms;
    }
    *ms = total;
    return 0;
}

/* A duration at the current position (not a token: 5m lexes as T_BAD). */
static int64_t parse_duration(parser *p)
{
    if (p->failed)
        return 0;
    const char *s = p->text + p->pos;
    size_t n = 0;
    while (isalnum((unsigned char)s[n]))
        n++;
    int64_t ms = 0;
    if (n == 0 || rf_promql_parse_duration(s, n, &ms) < 0) {
        fail(p, "bad duration \"%.*s\"", (int)(n ? n : 1), s);
        return 0;
    }
    if (ms == 0) {
        fail(p, "duration must be greater than 0");
        return 0;
    }
    p->tlen = n;
    next(p);
    return ms;
}

static pq_expr *node(parser *p, enum pq_node kind)
{
    pq_expr *e = calloc(1, sizeof(*e));
    if (!e) {
        fail(p, "out of memory");
        return NULL;
    }
    e->kind = kind;
    e->pos = (int)p->pos;
    return e;
}

void pq_expr_free(pq_expr *e)
{
    if (!e)
        return;
    pq_expr_free(e->a);
    pq_expr_free(e->b);
    for (size_t i = 0; i < e->n_args; i++)
        pq_expr_free(e->args[i]);
    free(e->args);
    for (size_t i = 0; i < e->n_match; i++)
        free(e->match[i]);
    free(e->match);
    for (size_t i = 0; i < e->n_include; i++)
        free(e->include[i]);
    free(e->include);
    for (size_t i = 0; i < e->n_grouping; i++)
        free(e->grouping[i]);
    free(e->grouping);
    rf_promql_matchers_free(e->matchers, e->n_matchers);
    free(e->name);
    free(e->str);
    free(e);
}

static const char *type_name(enum rf_promql_type t)
{
    switch (t) {
    case RF_PROMQL_SCALAR: return "scalar";
    case RF_PROMQL_VECTOR: return "instant vector";
    case RF_PROMQL_MATRIX: return "range vector";
    case RF_PROMQL_STRING: return "string";
    }
    return "?";
}

/* (a, b, c): label names, keywords allowed. */
static void parse_label_list(parser *p, char ***out, size_t *n)
{
    expect(p, T_LPAREN, "\"(\"");
    while (!p->failed && p->t != T_RPAREN) {
        if (p->t != T_IDENT) {
            char b[80];
            fail(p, "unexpected %s in grouping opts, expected label", tok_text(p, b, sizeof(b)));
            return;
        }
        char **g = realloc(*out, (*n + 1) * sizeof(*g));
        if (!g || !(g[*n] = strndup(p->text + p->pos, p->tlen))) {
            if (g)
                *out = g;
            fail(p, "out of memory");
            return;
        }
        *out = g;
        (*n)++;
        next(p);
        if (p->t == T_COMMA)
            next(p);
        else if (p->t != T_RPAREN) {
            char b[80];
            fail(p, "unexpected %s in grouping opts, expected \",\" or \")\"",
                 tok_text(p, b, sizeof(b)));
        }
    }
    expect(p, T_RPAREN, "\")\"");
}

static bool add_matcher(parser *p, pq_expr *e, const char *name, size_t nl, enum rf_promql_match op,
                        const char *value)
{
    rf_promql_matcher *m = realloc(e->matchers, (e->n_matchers + 1) * sizeof(*m));
    if (!m) {
        fail(p, "out of memory");
        return false;
    }
    e->matchers = m;
    m = &m[e->n_matchers];
    *m = (rf_promql_matcher){.op = op};
    m->name = strndup(name, nl);
    m->value = strdup(value);
    e->n_matchers++;
    if (!m->name || !m->value) {
        fail(p, "out of memory");
        return false;
    }
    if (op == RF_PROMQL_RE || op == RF_PROMQL_NRE) {
        rf_err re_err;
        if (!(m->re = pq_re_compile(value, &re_err))) {
            fail(p, "%s", re_err.msg);
            return false;
        }
    }
    return true;
}

/* {name op "value", ...} after an optional metric name. */
static void parse_matchers(parser *p, pq_expr *e)
{
    expect(p, T_LBRACE, "\"{\"");
    while (!p->failed && p->t != T_RBRACE) {
        if (p->t != T_IDENT) {
            char b[80];
            fail(p, "unexpected %s in label matching, expected label", tok_text(p, b, sizeof(b)));
            return;
        }
        const char *name = p->text + p->pos;
        size_t nl = p->tlen;
        next(p);
        enum rf_promql_match op;
        switch (p->t) {
        case T_ASSIGN: op = RF_PROMQL_EQ; break;
        case T_NEQ: op = RF_PROMQL_NE; break;
        case T_EQ_RE: op = RF_PROMQL_RE; break;
        case T_NEQ_RE: op = RF_PROMQL_NRE; break;
        default: {
            char b[80];
            fail(p, "unexpected %s in label matching, expected label matching operator",
                 tok_text(p, b, sizeof(b)));
            return;
        }
        }
        next(p);
        if (p->t != T_STR) {
            char b[80];
            fail(p, "unexpected %s in label matching, expected string", tok_text(p, b, sizeof(b)));
            return;
        }
        if (nl == 8 && strncmp(name, "__name__", 8) == 0 && e->name && op == RF_PROMQL_EQ) {
            fail(p, "metric name must not be set twice: \"%s\" or \"%s\"", e->name, p->str);
            return;
        }
        if (!add_matcher(p, e, name, nl, op, p->str))
            return;
        next(p);
        if (p->t == T_COMMA)
            next(p);
        else if (p->t != T_RBRACE) {
            char b[80];
            fail(p, "unexpected %s in label matching, expected \",\" or \"}\"",
                 tok_text(p, b, sizeof(b)));
        }
    }
    expect(p, T_RBRACE, "\"}\"");
}

static pq_expr *parse_selector(parser *p, const char *name, size_t nl)
{
    pq_expr *e = node(p, PQ_VSEL);
    if (!e)
        return NULL;
    e->type = RF_PROMQL_VECTOR;
    if (name) {
        if (!(e->name = strndup(name, nl)) ||
            !add_matcher(p, e, "__name__", 8, RF_PROMQL_EQ, e->name))
            fail(p, "out of memory");
    }
    if (p->t == T_LBRACE)
        parse_matchers(p, e);
    if (p->failed)
        return e;
    bool non_empty = false;
    for (size_t i = 0; i < e->n_matchers; i++) {
        rf_promql_labels empty = {"", 0};
        if (!rf_promql_matcher_match(&e->matchers[i], empty))
            non_empty = true;
    }
    if (!non_empty)
        fail(p, "vector selector must contain at least one non-empty matcher");
    return e;
}

static pq_expr *parse_expr(parser *p, int min_prec);

static void check_type(parser *p, const pq_expr *e, enum rf_promql_type want, const char *ctx)
{
    if (!p->failed && e && e->type != want)
        fail(p, "expected type %s in %s, got %s", type_name(want), ctx, type_name(e->type));
}

static struct {
    const char *name;
    enum pq_agg agg;
} const aggs[] = {
    {"sum", PQ_AGG_SUM},       {"avg", PQ_AGG_AVG},         {"min", PQ_AGG_MIN},
    {"max", PQ_AGG_MAX},       {"count", PQ_AGG_COUNT},     {"group", PQ_AGG_GROUP},
    {"stddev", PQ_AGG_STDDEV}, {"stdvar", PQ_AGG_STDVAR},   {"quantile", PQ_AGG_QUANTILE},
    {"topk", PQ_AGG_TOPK},     {"bottomk", PQ_AGG_BOTTOMK}, {"count_values", PQ_AGG_COUNT_VALUES},
};

static pq_expr *parse_aggregation(parser *p, enum pq_agg agg, const char *name)
{
    pq_expr *e = node(p, PQ_AGG);
    if (!e)
        return NULL;
    e->agg = agg;
    e->type = RF_PROMQL_VECTOR;
    bool grouped = false;
    if (is_word(p, "by") || is_word(p, "without")) {
        e->without = is_word(p, "without");
        next(p);
        parse_label_list(p, &e->grouping, &e->n_grouping);
        grouped = true;
    }
    expect(p, T_LPAREN, "\"(\"");
    bool param = agg == PQ_AGG_QUANTILE || agg == PQ_AGG_TOPK || agg == PQ_AGG_BOTTOMK ||
                 agg == PQ_AGG_COUNT_VALUES;
    if (param && !p->failed) {
        e->b = parse_expr(p, 0);
        expect(p, T_COMMA, "\",\"");
        if (!p->failed && e->b)
            check_type(p, e->b, agg == PQ_AGG_COUNT_VALUES ? RF_PROMQL_STRING : RF_PROMQL_SCALAR,
                       "aggregation parameter");
    }
    if (!p->failed)
        e->a = parse_expr(p, 0);
    if (!p->failed && p->t == T_COMMA)
        fail(p, "wrong number of arguments for aggregate expression provided, expected %d",
             param ? 2 : 1);
    expect(p, T_RPAREN, "\")\"");
    if (!p->failed && !grouped && (is_word(p, "by") || is_word(p, "without"))) {
        e->without = is_word(p, "without");
        next(p);
        parse_label_list(p, &e->grouping, &e->n_grouping);
    }
    if (!p->failed)
        check_type(p, e->a, RF_PROMQL_VECTOR, "aggregation expression");
    (void)name;
    return e;
}

static pq_expr *parse_call(parser *p, const pq_func *fn)
{
    pq_expr *e = node(p, PQ_CALL);
    if (!e)
        return NULL;
    e->fn = fn;
    e->type = fn->ret;
    expect(p, T_LPAREN, "\"(\"");
    while (!p->failed && p->t != T_RPAREN) {
        pq_expr **a = realloc(e->args, (e->n_args + 1) * sizeof(*a));
        if (!a) {
            fail(p, "out of memory");
            break;
        }
        e->args = a;
        a[e->n_args] = parse_expr(p, 0);
        if (a[e->n_args])
            e->n_args++;
        if (p->t == T_COMMA)
            next(p);
        else if (p->t != T_RPAREN && !p->failed) {
            char b[80];
            fail(p, "unexpected %s in function call, expected \",\" or \")\"",
                 tok_text(p, b, sizeof(b)));
        }
    }
    expect(p, T_RPAREN, "\")\"");
    if (p->failed)
        return e;
    size_t min = (size_t)fn->n_args, max = min + (size_t)fn->n_optional;
    if (e->n_args < min || (!fn->variadic && e->n_args > max)) {
        fail(p, "expected %zu argument(s) in call to \"%s\", got %zu", min, fn->name, e->n_args);
        return e;
    }
    for (size_t i = 0; i < e->n_args && !p->failed; i++) {
        int k =
            i < (size_t)(fn->n_args + fn->n_optional) ? (int)i : fn->n_args + fn->n_optional - 1;
        char ctx[96];
        snprintf(ctx, sizeof(ctx), "call to function \"%s\"", fn->name);
        check_type(p, e->args[i], fn->args[k], ctx);
    }
    return e;
}

/* offset, @ and [range] after a selector. */
static pq_expr *parse_postfix(parser *p, pq_expr *e)
{
    while (!p->failed && e) {
        if (p->t == T_LBRACK) {
            if (e->kind != PQ_VSEL || e->offset_ms || e->has_at) {
                fail(p, "ranges only allowed for vector selectors");
                return e;
            }
            next(p);
            int64_t r = parse_duration(p);
            if (p->t == T_COLON) {
                fail(p, "subqueries are not supported");
                return e;
            }
            expect(p, T_RBRACK, "\"]\"");
            pq_expr *m = node(p, PQ_MSEL);
            if (!m)
                return e;
            m->a = e;
            m->range_ms = r;
            m->type = RF_PROMQL_MATRIX;
            e = m;
        } else if (is_word(p, "offset")) {
            pq_expr *sel = e->kind == PQ_MSEL ? e->a : e;
            if (sel->kind != PQ_VSEL) {
                fail(p, "offset modifier must be preceded by an instant vector selector or range "
                        "vector selector");
                return e;
            }
            if (sel->offset_ms) {
                fail(p, "offset may not be set multiple times");
                return e;
            }
            next(p);
            if (p->t == T_SUB) {
                fail(p, "negative offsets are not supported");
                return e;
            }
            sel->offset_ms = parse_duration(p);
        } else if (p->t == T_AT) {
            pq_expr *sel = e->kind == PQ_MSEL ? e->a : e;
            if (sel->kind != PQ_VSEL) {
                fail(p, "@ modifier must be preceded by an instant vector selector or range vector "
                        "selector");
                return e;
            }
            if (sel->has_at) {
                fail(p, "@ <timestamp> may not be set multiple times");
                return e;
            }
            next(p);
            sel->has_at = true;
            if (is_word(p, "start") || is_word(p, "end")) {
                sel->at_kind = is_word(p, "start") ? 1 : 2;
                next(p);
                expect(p, T_LPAREN, "\"(\"");
                expect(p, T_RPAREN, "\")\"");
            } else {
                double sign = 1;
                if (p->t == T_SUB || p->t == T_ADD) {
                    sign = p->t == T_SUB ? -1 : 1;
                    next(p);
                }
                if (p->t != T_NUM) {
                    fail(p, "unexpected token after @, expected a timestamp, start() or end()");
                    return e;
                }
                double s = sign * p->num;
                if (!isfinite(s) || fabs(s) > 9.2e15) {
                    fail(p, "timestamp out of bounds for @ modifier: %g", s);
                    return e;
                }
                sel->at_ms = (int64_t)llround(s * 1000);
                next(p);
            }
        } else {
            break;
        }
    }
    return e;
}

static pq_expr *parse_primary(parser *p)
{
    char b[80];
    switch (p->t) {
    case T_NUM: {
        pq_expr *e = node(p, PQ_NUM);
        if (e) {
            e->num = p->num;
            e->type = RF_PROMQL_SCALAR;
        }
        next(p);
        return e;
    }
    case T_STR: {
        pq_expr *e = node(p, PQ_STR);
        if (e) {
            e->str = p->str;
            p->str = NULL;
            e->type = RF_PROMQL_STRING;
        }
        next(p);
        return e;
    }
    case T_LPAREN: {
        next(p);
        pq_expr *e = node(p, PQ_PAREN);
        if (!e)
            return NULL;
        e->a = parse_expr(p, 0);
        expect(p, T_RPAREN, "\")\"");
        if (e->a)
            e->type = e->a->type;
        return e;
    }
    case T_LBRACE: return parse_selector(p, NULL, 0);
    case T_IDENT: {
        const char *w = p->text + p->pos;
        size_t n = p->tlen;
        size_t save = p->pos;
        next(p);
        if (p->t == T_LPAREN ||
            ((p->t == T_IDENT) && (is_word(p, "by") || is_word(p, "without")))) {
            for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++)
                if (strlen(aggs[i].name) == n && strncasecmp(w, aggs[i].name, n) == 0)
                    return parse_aggregation(p, aggs[i].agg, aggs[i].name);
        }
        if (p->t == T_LPAREN) {
            const pq_func *fn = pq_func_find(w, n);
            if (fn)
                return parse_call(p, fn);
            p->pos = save;
            if (pq_func_known_unsupported(w, n))
                fail(p, "function \"%.*s\" is not supported", (int)n, w);
            else
                fail(p, "unknown function with name \"%.*s\"", (int)n, w);
            return NULL;
        }
        if ((n == 3 && strncasecmp(w, "inf", 3) == 0) ||
            (n == 3 && strncasecmp(w, "nan", 3) == 0)) {
            pq_expr *e = node(p, PQ_NUM);
            if (e) {
                e->num = tolower((unsigned char)w[0]) == 'i' ? INFINITY : NAN;
                e->type = RF_PROMQL_SCALAR;
            }
            return e;
        }
        static const char *const keywords[] = {"and",        "or",          "unless", "atan2",
                                               "by",         "without",     "on",     "ignoring",
                                               "group_left", "group_right", "bool",   "offset"};
        for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
            if (strlen(keywords[i]) == n && strncasecmp(w, keywords[i], n) == 0) {
                p->pos = save;
                fail(p, "unexpected keyword \"%.*s\"", (int)n, w);
                return NULL;
            }
        return parse_selector(p, w, n);
    }
    case T_BAD:
        if (isdigit((unsigned char)p->text[p->pos]))
            fail(p, "unexpected duration or malformed number");
        else
            fail(p, "unexpected character %s", tok_text(p, b, sizeof(b)));
        return NULL;
    default: fail(p, "unexpected %s", tok_text(p, b, sizeof(b))); return NULL;
    }
}

static pq_expr *parse_unary(parser *p)
{
    if (++p->depth > MAX_DEPTH) {
        fail(p, "expression nested too deeply");
        return NULL;
    }
    pq_expr *e;
    if (p->t == T_SUB || p->t == T_ADD) {
        bool neg = p->t == T_SUB;
        next(p);
        pq_expr *x = parse_expr(p, 6);
        if (p->failed || !x) {
            p->depth--;
            return x;
        }
        if (x->type != RF_PROMQL_SCALAR && x->type != RF_PROMQL_VECTOR) {
            fail(p,
                 "unary expression only allowed on expressions of type scalar or instant vector, "
                 "got %s",
                 type_name(x->type));
            p->depth--;
            return x;
        }
        if (x->kind == PQ_NUM) {
            x->num = neg ? -x->num : x->num;
            e = x;
        } else {
            e = node(p, PQ_UNARY);
            if (!e) {
                p->depth--;
                return x;
            }
            e->op = neg ? PQ_OP_SUB : PQ_OP_ADD;
            e->a = x;
            e->type = x->type;
        }
    } else {
        e = parse_postfix(p, parse_primary(p));
    }
    p->depth--;
    return e;
}

/* The binary operator at the current token, its precedence and whether it
 * associates to the right; PQ_OP_NONE when the token is not one. */
static enum pq_op peek_op(parser *p, int *prec)
{
    switch (p->t) {
    case T_ADD: *prec = 4; return PQ_OP_ADD;
    case T_SUB: *prec = 4; return PQ_OP_SUB;
    case T_MUL: *prec = 5; return PQ_OP_MUL;
    case T_DIV: *prec = 5; return PQ_OP_DIV;
    case T_MOD: *prec = 5; return PQ_OP_MOD;
    case T_POW: *prec = 6; return PQ_OP_POW;
    case T_EQLC: *prec = 3; return PQ_OP_EQ;
    case T_NEQ: *prec = 3; return PQ_OP_NE;
    case T_GTR: *prec = 3; return PQ_OP_GT;
    case T_LSS: *prec = 3; return PQ_OP_LT;
    case T_GTE: *prec = 3; return PQ_OP_GE;
    case T_LTE: *prec = 3; return PQ_OP_LE;
    case T_IDENT:
        if (is_word(p, "or")) {
            *prec = 1;
            return PQ_OP_OR;
        }
        if (is_word(p, "and")) {
            *prec = 2;
            return PQ_OP_AND;
        }
        if (is_word(p, "unless")) {
            *prec = 2;
            return PQ_OP_UNLESS;
        }
        if (is_word(p, "atan2")) {
            *prec = 5;
            return PQ_OP_ATAN2;
        }
        return PQ_OP_NONE;
    default: return PQ_OP_NONE;
    }
}

static bool is_comparison(enum pq_op op)
{
    return op >= PQ_OP_EQ && op <= PQ_OP_LE;
}

static bool is_set_op(enum pq_op op)
{
    return op >= PQ_OP_AND && op <= PQ_OP_UNLESS;
}

static void check_binary(parser *p, pq_expr *e)
{
    enum rf_promql_type lt = e->a->type, rt = e->b->type;
    if ((lt != RF_PROMQL_SCALAR && lt != RF_PROMQL_VECTOR) ||
        (rt != RF_PROMQL_SCALAR && rt != RF_PROMQL_VECTOR)) {
        fail(p, "binary expression must contain only scalar and instant vector types");
        return;
    }
    bool vectors = lt == RF_PROMQL_VECTOR && rt == RF_PROMQL_VECTOR;
    if (e->return_bool && !is_comparison(e->op)) {
        fail(p, "bool modifier can only be used on comparison operators");
        return;
    }
    if (is_comparison(e->op) && !e->return_bool && lt == RF_PROMQL_SCALAR &&
        rt == RF_PROMQL_SCALAR) {
        fail(p, "comparisons between scalars must use BOOL modifier");
        return;
    }
    if (is_set_op(e->op)) {
        if (!vectors) {
            fail(p, "set operator \"%s\" not allowed in binary scalar expression",
                 e->op == PQ_OP_AND  ? "and"
                 : e->op == PQ_OP_OR ? "or"
                                     : "unless");
            return;
        }
        if (e->card == PQ_MANY_TO_ONE || e->card == PQ_ONE_TO_MANY) {
            fail(p, "no grouping allowed for \"%s\" operation",
                 e->op == PQ_OP_AND  ? "and"
                 : e->op == PQ_OP_OR ? "or"
                                     : "unless");
            return;
        }
        e->card = PQ_MANY_TO_MANY;
    }
    if (!vectors && (e->n_match || e->on || e->card != PQ_ONE_TO_ONE))
        fail(p, "vector matching only allowed between instant vectors");
    for (size_t i = 0; i < e->n_match && e->on; i++)
        for (size_t j = 0; j < e->n_include; j++)
            if (strcmp(e->match[i], e->include[j]) == 0)
                fail(p, "label \"%s\" must not occur in ON and GROUP clause at once",
                     e->include[j]);
    e->type = vectors || lt == RF_PROMQL_VECTOR || rt == RF_PROMQL_VECTOR ? RF_PROMQL_VECTOR
                                                                          : RF_PROMQL_SCALAR;
}

static pq_expr *parse_expr(parser *p, int min_prec)
{
    if (++p->depth > MAX_DEPTH) {
        fail(p, "expression nested too deeply");
        return NULL;
    }
    pq_expr *left = parse_unary(p);
    while (!p->failed && left) {
        int prec;
        enum pq_op op = peek_op(p, &prec);
        if (op == PQ_OP_NONE || prec < min_prec)
            break;
        pq_expr *e = node(p, PQ_BINARY);
        if (!e)
            break;
        e->op = op;
        e->a = left;
        left = e;
        next(p);
        if (is_word(p, "bool")) {
            e->return_bool = true;
            next(p);
        }
        if (is_word(p, "on") || is_word(p, "ignoring")) {
            e->on = is_word(p, "on");
            next(p);
            parse_label_list(p, &e->match, &e->n_match);
            if (is_word(p, "group_left") || is_word(p, "group_right")) {
                e->card = is_word(p, "group_left") ? PQ_MANY_TO_ONE : PQ_ONE_TO_MANY;
                next(p);
                if (p->t == T_LPAREN)
                    parse_label_list(p, &e->include, &e->n_include);
            }
        }
        if (p->failed)
            break;
        e->b = parse_expr(p, op == PQ_OP_POW ? prec : prec + 1);
        if (!p->failed && e->b)
            check_binary(p, e);
    }
    p->depth--;
    return left;
}

int rf_promql_parse(const char *text, rf_promql_expr **out, rf_err *err)
{
    parser p = {.text = text, .err = err};
    rf_err_clear(err);
    lex(&p);
    pq_expr *e = parse_expr(&p, 0);
    if (!p.failed && p.t != T_EOF) {
        char b[80];
        fail(&p, "unexpected %s", tok_text(&p, b, sizeof(b)));
    }
    if (!p.failed && !e)
        fail(&p, "no expression found in input");
    free(p.str);
    if (p.failed) {
        pq_expr_free(e);
        return -EINVAL;
    }
    rf_promql_expr *r = malloc(sizeof(*r));
    if (!r) {
        pq_expr_free(e);
        return rf_err_set(err, ENOMEM, "out of memory");
    }
    r->root = e;
    *out = r;
    return 0;
}

void rf_promql_expr_free(rf_promql_expr *e)
{
    if (e) {
        pq_expr_free(e->root);
        free(e);
    }
}

enum rf_promql_type rf_promql_expr_type(const rf_promql_expr *e)
{
    return e->root->type;
}

static int each_selector(const pq_expr *e, rf_promql_selector_fn fn, void *ctx)
{
    if (!e)
        return 0;
    if (e->kind == PQ_VSEL)
        return fn(ctx, e->matchers, e->n_matchers);
    int rc = each_selector(e->a, fn, ctx);
    if (rc == 0)
        rc = each_selector(e->b, fn, ctx);
    for (size_t i = 0; i < e->n_args && rc == 0; i++)
        rc = each_selector(e->args[i], fn, ctx);
    return rc;
}

int rf_promql_expr_selectors(const rf_promql_expr *e, rf_promql_selector_fn fn, void *ctx)
{
    return each_selector(e->root, fn, ctx);
}

int rf_promql_parse_matchers(const char *text, rf_promql_matcher **out, size_t *n, rf_err *err)
{
    rf_promql_expr *e;
    int rc = rf_promql_parse(text, &e, err);
    if (rc < 0)
        return rc;
    if (e->root->kind != PQ_VSEL) {
        rf_promql_expr_free(e);
        return rf_err_set(err, EINVAL, "parse error: expected a vector selector, got \"%s\"", text);
    }
    *out = e->root->matchers;
    *n = e->root->n_matchers;
    e->root->matchers = NULL;
    e->root->n_matchers = 0;
    rf_promql_expr_free(e);
    return 0;
}
