/* libFuzzer target: the PromQL parser and evaluator (storage/promql). The
 * input is an expression; when it parses, it is evaluated as an instant and
 * as a short range query over a small fixed set of series, so every node
 * the parser can build is also run. Checked: no crash, leak or sanitizer
 * report; an error always comes with a message and an error type; the JSON
 * writer accepts every result. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/promql/promql.h"

static const char L0[] = "__name__\0up\0job\0a\0";
static const char L1[] = "__name__\0up\0job\0b\0le\0+Inf\0";
static const char L2[] = "__name__\0x_total\0instance\0i\0";
static const int64_t T[] = {0, 15000, 30000, 45000, 60000, 75000};
static const double V0[] = {1, 2, 3, 1, 5, 8};
static const double V1[] = {0, 0, 7, 7, 7, -1};
static const double V2[] = {10, 0, 20, 30, 5, 40};

static int sel(void *user, const rf_promql_matcher *m, size_t n_m, int64_t mint, int64_t maxt,
               rf_promql_series **out, size_t *n_out, rf_err *err)
{
    (void)user;
    (void)err;
    (void)mint;
    (void)maxt;
    const rf_promql_series all[] = {{{L0, sizeof(L0) - 1}, T, V0, 6},
                                    {{L1, sizeof(L1) - 1}, T, V1, 6},
                                    {{L2, sizeof(L2) - 1}, T, V2, 6}};
    rf_promql_series *s = malloc(sizeof(all));
    if (!s)
        return -12;
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        bool ok = true;
        for (size_t j = 0; j < n_m && ok; j++)
            ok = rf_promql_matcher_match(&m[j], all[i].labels);
        if (ok)
            s[n++] = all[i];
    }
    *out = s;
    *n_out = n;
    return 0;
}

static void rel(void *user, rf_promql_series *s, size_t n)
{
    (void)user;
    (void)n;
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    rf_promql_expr *e;
    rf_err err;
    if (rf_promql_parse(text, &e, &err) == 0) {
        rf_promql_source src = {sel, rel, NULL};
        rf_promql_limits lim = {.max_samples = 100000};
        for (int range = 0; range < 2; range++) {
            rf_promql_value *v;
            enum rf_promql_error kind;
            int rc = range ? rf_promql_eval(e, &src, 0, 90000, 15000, &lim, &v, &kind, &err)
                           : rf_promql_eval(e, &src, 60000, 60000, 0, &lim, &v, &kind, &err);
            if (rc == 0) {
                FILE *f = fopen("/dev/null", "w");
                if (f) {
                    rf_promql_write_json(f, v);
                    fclose(f);
                }
                rf_promql_value_free(v);
            } else if (kind == RF_PROMQL_OK || !err.msg[0]) {
                abort();
            }
        }
        rf_promql_expr_free(e);
    } else if (!err.msg[0]) {
        abort();
    }
    free(text);
    return 0;
}
