/* Results as Prometheus' HTTP API writes them: values as strings in Go's
 * strconv.FormatFloat(v, 'f', -1, 64) (shortest round-trip digits, never an
 * exponent), times as seconds with the milliseconds as a fraction. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "storage/promql/promql_pvt.h"

void rf_promql_format_value(double v, char *buf, size_t len)
{
    if (isnan(v)) {
        snprintf(buf, len, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* The fewest significant digits that read back to v. A value that 15
     * digits or fewer spell reads back from its 15-digit rounding (DBL_DIG:
     * the zeros this leaves are dropped below), so 15, then 16, then 17
     * digits (which always read back) find it in at most three tries, not
     * seventeen: formatting dominated a large query's time. (Only where a
     * 16-digit string exists but the nearest 16-digit rounding is off, at
     * a power of two's uneven gap, 17 digits are written: same value.) */
    char e[40];
    for (int p = 14; p <= 16; p++) {
        snprintf(e, sizeof(e), "%.*e", p, v);
        if (p == 16 || strtod(e, NULL) == v)
            break;
    }
    /* e is [-]d[.ddd]e[+-]XX: lay the digits out in fixed notation. */
    char digits[24];
    size_t nd = 0;
    const char *s = e;
    bool neg = *s == '-';
    if (neg)
        s++;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[nd++] = *s;
    int exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    char out[400];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    int point = exp10 + 1; /* digits before the decimal point */
    if (point <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -point; i++)
            out[o++] = '0';
        for (size_t i = 0; i < nd; i++)
            out[o++] = digits[i];
    } else {
        for (int i = 0; i < point; i++)
            out[o++] = (size_t)i < nd ? digits[i] : '0';
        if ((size_t)point < nd) {
            out[o++] = '.';
            for (size_t i = (size_t)point; i < nd; i++)
                out[o++] = digits[i];
        }
    }
    out[o] = '\0';
    snprintf(buf, len, "%s", out);
}

static void write_time(FILE *f, int64_t ms)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        sec -= 1;
        frac += 1000;
    }
    if (ms < 0 && frac) {
        /* Go prints -1.5 for -1500 ms: sign, then |ms| split. */
        int64_t a = -ms;
        fprintf(f, "-%lld", (long long)(a / 1000));
        frac = a % 1000;
    } else {
        fprintf(f, "%lld", (long long)sec);
    }
    if (frac) {
        char b[8];
        snprintf(b, sizeof(b), "%03lld", (long long)frac);
        size_t n = strlen(b);
        while (n > 0 && b[n - 1] == '0')
            b[--n] = '\0';
        fprintf(f, ".%s", b);
    }
}

static void write_point(FILE *f, rf_promql_point p)
{
    char v[400];
    rf_promql_format_value(p.v, v, sizeof(v));
    fputc('[', f);
    write_time(f, p.t);
    fprintf(f, ",\"%s\"]", v);
}

void rf_promql_write_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void rf_promql_write_json_labels(FILE *f, rf_promql_labels l)
{
    fputc('{', f);
    const char *p = l.buf, *end = l.buf + l.len;
    bool first = true;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (!first)
            fputc(',', f);
        first = false;
        rf_promql_write_json_string(f, p);
        fputc(':', f);
        rf_promql_write_json_string(f, v);
        p = v + strlen(v) + 1;
    }
    fputc('}', f);
}

int rf_promql_write_json(FILE *f, const rf_promql_value *v)
{
    static const char *const names[] = {"", "scalar", "vector", "matrix", "string"};
    fprintf(f, "{\"resultType\":\"%s\",\"result\":", names[v->type]);
    switch (v->type) {
    case RF_PROMQL_SCALAR: write_point(f, v->scalar); break;
    case RF_PROMQL_STRING:
        fputc('[', f);
        write_time(f, v->scalar.t);
        fputc(',', f);
        rf_promql_write_json_string(f, v->string);
        fputc(']', f);
        break;
    case RF_PROMQL_VECTOR:
    case RF_PROMQL_MATRIX:
        fputc('[', f);
        for (size_t i = 0; i < v->n_series; i++) {
            const rf_promql_out_series *s = &v->series[i];
            fprintf(f, "%s{\"metric\":", i ? "," : "");
            rf_promql_write_json_labels(f, s->labels);
            if (v->type == RF_PROMQL_VECTOR) {
                fputs(",\"value\":", f);
                write_point(f, s->points[0]);
            } else {
                fputs(",\"values\":[", f);
                for (size_t j = 0; j < s->n; j++) {
                    if (j)
                        fputc(',', f);
                    write_point(f, s->points[j]);
                }
                fputc(']', f);
            }
            fputc('}', f);
        }
        fputc(']', f);
        break;
    }
    fputc('}', f);
    return ferror(f) ? -EIO : 0;
}
