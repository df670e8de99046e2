/* Query result formatting and the small parsers a command line needs. Kept
 * apart from execution so that `ringflow query` is argument parsing around
 * rf_query_run and rf_query_write. */
#include "storage/query/query.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config/config.h"
#include "core/event/event.h"

/* ---- parsers ---- */

/* Digits of s[0..n) as a number; false when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* RFC 3339: YYYY-MM-DD, then optionally [T or space]HH:MM[:SS[.fraction]]
 * and Z or +HH:MM / -HH:MM (UTC when absent). What `--format table`
 * prints reads back. */
static int parse_rfc3339(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (strlen(s) < 10 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d))
        return -EINVAL;
    const char *p = s + 10;
    int64_t frac = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(p, 2, &h) || p[2] != ':' || !digits(p + 3, 2, &mi))
            return -EINVAL;
        p += 5;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec))
                return -EINVAL;
            p += 3;
            if (*p == '.') {
                p++;
                int n = 0;
                for (; *p >= '0' && *p <= '9'; p++, n++)
                    if (n < 9)
                        frac = frac * 10 + (*p - '0');
                if (n == 0)
                    return -EINVAL;
                for (; n < 9; n++)
                    frac *= 10;
            }
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off_s = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    }
    /* sec 60: a leap second, as RFC 3339 allows; it reads as the next second */
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    /* timegm normalises 31 February to 3 March: a date that moved is not one */
    if (tm.tm_mday != d && sec != 60)
        return -EINVAL;
    int64_t secs = (int64_t)t - off_s;
    if (secs > INT64_MAX / 1000000000 - 1 || secs < INT64_MIN / 1000000000 + 1)
        return -ERANGE;
    *out = secs * 1000000000 + frac;
    return 0;
}

int rf_query_time_parse(const char *s, int64_t now_ns, int64_t *out)
{
    if (strncmp(s, "now", 3) == 0) {
        if (s[3] == '\0') {
            *out = now_ns;
            return 0;
        }
        if (s[3] != '-')
            return -EINVAL;
        uint64_t d;
        if (rf_cfg_parse_duration(s + 4, &d) < 0 || d > (uint64_t)INT64_MAX)
            return -EINVAL;
        *out = now_ns - (int64_t)d;
        return 0;
    }
    if (strlen(s) >= 10 && s[4] == '-')
        return parse_rfc3339(s, out);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return -EINVAL;
    *out = v;
    return 0;
}

int rf_query_agg_parse(const char *t, rf_query_agg *a)
{
    static const struct {
        const char *name;
        enum rf_agg_fn fn;
    } names[] = {
        {"count", RF_AGG_COUNT}, {"sum", RF_AGG_SUM},  {"min", RF_AGG_MIN},   {"max", RF_AGG_MAX},
        {"avg", RF_AGG_AVG},     {"mean", RF_AGG_AVG}, {"last", RF_AGG_LAST},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(t, names[i].name) == 0) {
            *a = (rf_query_agg){names[i].fn, 0};
            return 0;
        }
    char *end;
    double q;
    if (t[0] == 'p' && t[1] >= '0' && t[1] <= '9') {
        q = strtod(t + 1, &end) / 100.0;
        if (*end)
            return -EINVAL;
    } else if (strncmp(t, "quantile(", 9) == 0) {
        q = strtod(t + 9, &end);
        if (end[0] != ')' || end[1])
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (!(q >= 0 && q <= 1))
        return -EINVAL;
    *a = (rf_query_agg){RF_AGG_QUANTILE, q};
    return 0;
}

void rf_query_agg_name(const rf_query_agg *a, char *buf, size_t len)
{
    static const char *const names[] = {"count", "sum", "min", "max", "avg", "last"};
    if (a->fn == RF_AGG_QUANTILE) {
        double p = a->q * 100;
        if (fabs(p - round(p * 1000) / 1000) < 1e-9)
            snprintf(buf, len, "p%g", round(p * 1000) / 1000);
        else
            snprintf(buf, len, "q%g", a->q);
    } else {
        snprintf(buf, len, "%s", a->fn <= RF_AGG_LAST ? names[a->fn] : "?");
    }
}

int rf_query_matcher_parse(char *t, rf_query_matcher *m)
{
    /* the operator is the first '=' or '!' that starts one */
    for (char *p = t; *p; p++) {
        if (p == t)
            continue;
        if (p[0] == '!' && (p[1] == '=' || p[1] == '~')) {
            m->op = p[1] == '=' ? RF_MATCH_NE : RF_MATCH_NRE;
            *p = '\0';
            m->tag = t;
            m->value = p + 2;
            return 0;
        }
        if (p[0] == '=') {
            m->op = p[1] == '~' ? RF_MATCH_RE : RF_MATCH_EQ;
            *p = '\0';
            m->tag = t;
            m->value = p + (m->op == RF_MATCH_RE ? 2 : 1);
            return 0;
        }
    }
    return -EINVAL;
}

int rf_query_format_parse(const char *n)
{
    if (strcmp(n, "table") == 0)
        return RF_QUERY_TABLE;
    if (strcmp(n, "csv") == 0)
        return RF_QUERY_CSV;
    if (strcmp(n, "json") == 0)
        return RF_QUERY_JSON;
    if (strcmp(n, "line") == 0 || strcmp(n, "lp") == 0)
        return RF_QUERY_LINE;
    return -1;
}

/* ---- values ---- */

/* Shortest decimal that reads back to the same double. */
static void fmt_double(char *buf, size_t len, double d)
{
    if (isnan(d)) {
        snprintf(buf, len, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(buf, len, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    /* Whole numbers print as integers ("50", not the shorter "5e+01"), up
     * to where a double still holds every integer exactly. */
    if (d == floor(d) && fabs(d) < 9007199254740992.0 && !(d == 0 && signbit(d))) {
        snprintf(buf, len, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

/* A raw value as text; `lp` adds line-protocol type suffixes. */
static void fmt_value(char *buf, size_t len, uint8_t type, uint64_t bits, bool lp)
{
    switch (type) {
    case RF_VALUE_I64: snprintf(buf, len, "%" PRId64 "%s", (int64_t)bits, lp ? "i" : ""); break;
    case RF_VALUE_U64:
    case RF_VALUE_STRING: snprintf(buf, len, "%" PRIu64 "%s", bits, lp ? "u" : ""); break;
    case RF_VALUE_BOOL: snprintf(buf, len, "%s", bits ? "true" : "false"); break;
    default: {
        double d;
        memcpy(&d, &bits, 8);
        fmt_double(buf, len, d);
    }
    }
}

static void fmt_time(char *buf, size_t len, int64_t ns)
{
    int64_t s = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        s--;
    }
    time_t tt = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        snprintf(buf, len, "%" PRId64, ns);
        return;
    }
    char d[24];
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09" PRId64 "Z", d, frac);
}

static void series_label(char *buf, size_t len, const rf_query_set *s)
{
    size_t n = (size_t)snprintf(buf, len, "%s", s->measurement);
    for (uint32_t i = 0; i < s->n_tags && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, ",%s=%s", s->tags[i].key, s->tags[i].value);
    if (n < len)
        snprintf(buf + n, len - n, " %s", s->field);
}

/* ---- writers ---- */

#define CELL 64

/* The text of a raw string point, or NULL (numbers; strings stored as hashes). */
static const char *text_at(const rf_query_result *r, const rf_query_set *s, size_t row)
{
    return !r->n_aggs && s->texts ? s->texts[row] : NULL;
}

static void cell(char *buf, const rf_query_result *r, const rf_query_set *s, size_t row,
                 uint32_t col)
{
    const char *text = text_at(r, s, row);
    if (text) { /* a table is for people: a long text is cut, marked "..." */
        size_t n = strlen(text);
        snprintf(buf, CELL, "%.*s%s", n < CELL ? (int)n : CELL - 4, text, n < CELL ? "" : "...");
        return;
    }
    if (r->n_aggs)
        fmt_double(buf, CELL, s->values[row * r->n_aggs + col]);
    else
        fmt_value(buf, CELL, s->value_type, s->bits[row], false);
}

static void write_table(FILE *f, const rf_query_result *r)
{
    uint32_t cols = r->n_aggs ? r->n_aggs : 1;
    char names[16][CELL];
    for (uint32_t c = 0; c < cols && c < 16; c++) {
        if (r->n_aggs)
            rf_query_agg_name(&r->aggs[c], names[c], CELL);
        else
            snprintf(names[c], CELL, "value");
    }
    /* Widths over the whole result so that columns line up across series. */
    size_t wl = 6, wv[16];
    char buf[1024], v[CELL];
    for (uint32_t c = 0; c < cols && c < 16; c++)
        wv[c] = strlen(names[c]);
    for (size_t i = 0; i < r->n_sets; i++) {
        const rf_query_set *s = &r->sets[i];
        series_label(buf, sizeof(buf), s);
        if (strlen(buf) > wl)
            wl = strlen(buf);
        for (size_t row = 0; row < s->n; row++)
            for (uint32_t c = 0; c < cols && c < 16; c++) {
                cell(v, r, s, row, c);
                if (strlen(v) > wv[c])
                    wv[c] = strlen(v);
            }
    }
    fprintf(f, "%-30s  %-*s", "time", (int)wl, "series");
    for (uint32_t c = 0; c < cols && c < 16; c++)
        fprintf(f, "  %*s", (int)wv[c], names[c]);
    fputc('\n', f);
    for (size_t i = 0; i < r->n_sets; i++) {
        const rf_query_set *s = &r->sets[i];
        series_label(buf, sizeof(buf), s);
        for (size_t row = 0; row < s->n; row++) {
            char t[64];
            fmt_time(t, sizeof(t), s->ts[row]);
            fprintf(f, "%-30s  %-*s", t, (int)wl, buf);
            for (uint32_t c = 0; c < cols && c < 16; c++) {
                cell(v, r, s, row, c);
                fprintf(f, "  %*s", (int)wv[c], v);
            }
            fputc('\n', f);
        }
    }
}

static void csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void write_csv(FILE *f, const rf_query_result *r)
{
    char v[CELL];
    fputs("time_ns,measurement,field,tags", f);
    if (r->n_aggs)
        for (uint32_t c = 0; c < r->n_aggs; c++) {
            rf_query_agg_name(&r->aggs[c], v, sizeof(v));
            fprintf(f, ",%s", v);
        }
    else
        fputs(",value", f);
    fputc('\n', f);
    for (size_t i = 0; i < r->n_sets; i++) {
        const rf_query_set *s = &r->sets[i];
        char tags[1024];
        size_t n = 0;
        tags[0] = '\0';
        for (uint32_t t = 0; t < s->n_tags && n < sizeof(tags); t++)
            n += (size_t)snprintf(tags + n, sizeof(tags) - n, "%s%s=%s", t ? ";" : "",
                                  s->tags[t].key, s->tags[t].value);
        for (size_t row = 0; row < s->n; row++) {
            fprintf(f, "%" PRId64 ",", s->ts[row]);
            csv_str(f, s->measurement);
            fputc(',', f);
            csv_str(f, s->field);
            fputc(',', f);
            csv_str(f, tags);
            for (uint32_t c = 0; c < (r->n_aggs ? r->n_aggs : 1); c++) {
                if (text_at(r, s, row)) {
                    fputc(',', f);
                    csv_str(f, text_at(r, s, row));
                    continue;
                }
                cell(v, r, s, row, c);
                fprintf(f, ",%s", v);
            }
            fputc('\n', f);
        }
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinities: they become strings. */
static void json_num(FILE *f, const char *v)
{
    if (strcmp(v, "NaN") == 0 || strcmp(v, "+Inf") == 0 || strcmp(v, "-Inf") == 0 ||
        strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        if (v[0] == 't' || v[0] == 'f')
            fputs(v, f);
        else
            json_str(f, v);
    } else {
        fputs(v, f);
    }
}

static void write_json(FILE *f, const rf_query_result *r)
{
    char v[CELL];
    fputs("{\"series\":[", f);
    for (size_t i = 0; i < r->n_sets; i++) {
        const rf_query_set *s = &r->sets[i];
        fputs(i ? ",{\"measurement\":" : "{\"measurement\":", f);
        json_str(f, s->measurement);
        fputs(",\"field\":", f);
        json_str(f, s->field);
        fputs(",\"tags\":{", f);
        for (uint32_t t = 0; t < s->n_tags; t++) {
            if (t)
                fputc(',', f);
            json_str(f, s->tags[t].key);
            fputc(':', f);
            json_str(f, s->tags[t].value);
        }
        fputs("},\"columns\":[\"time\"", f);
        if (r->n_aggs)
            for (uint32_t c = 0; c < r->n_aggs; c++) {
                rf_query_agg_name(&r->aggs[c], v, sizeof(v));
                fprintf(f, ",\"%s\"", v);
            }
        else
            fputs(",\"value\"", f);
        fputs("],\"values\":[", f);
        for (size_t row = 0; row < s->n; row++) {
            fprintf(f, "%s[%" PRId64, row ? "," : "", s->ts[row]);
            for (uint32_t c = 0; c < (r->n_aggs ? r->n_aggs : 1); c++) {
                fputc(',', f);
                if (text_at(r, s, row)) {
                    json_str(f, text_at(r, s, row));
                    continue;
                }
                cell(v, r, s, row, c);
                json_num(f, v);
            }
            fputc(']', f);
        }
        fputs("]}", f);
    }
    fputs("]}\n", f);
}

/* Line protocol escaping: measurement escapes , and space; tag keys, tag
 * values and field keys also escape =. */
static void lp_escape(FILE *f, const char *s, bool eq)
{
    for (; *s; s++) {
        if (*s == ',' || *s == ' ' || (eq && *s == '='))
            fputc('\\', f);
        fputc(*s, f);
    }
}

static void write_line(FILE *f, const rf_query_result *r)
{
    char v[CELL], name[CELL];
    for (size_t i = 0; i < r->n_sets; i++) {
        const rf_query_set *s = &r->sets[i];
        for (size_t row = 0; row < s->n; row++) {
            lp_escape(f, s->measurement, false);
            for (uint32_t t = 0; t < s->n_tags; t++) {
                if (!s->tags[t].value[0])
                    continue; /* line protocol has no empty tag values */
                fputc(',', f);
                lp_escape(f, s->tags[t].key, true);
                fputc('=', f);
                lp_escape(f, s->tags[t].value, true);
            }
            fputc(' ', f);
            if (r->n_aggs) {
                for (uint32_t c = 0; c < r->n_aggs; c++) {
                    rf_query_agg_name(&r->aggs[c], name, sizeof(name));
                    if (c)
                        fputc(',', f);
                    lp_escape(f, s->field, true);
                    fprintf(f, "_%s=", name);
                    fmt_double(v, sizeof(v), s->values[row * r->n_aggs + c]);
                    fputs(v, f);
                }
            } else {
                lp_escape(f, s->field, true);
                const char *text = text_at(r, s, row);
                if (text) { /* a string field: quoted, \" and \\ escaped */
                    fputs("=\"", f);
                    for (; *text; text++) {
                        if (*text == '"' || *text == '\\')
                            fputc('\\', f);
                        fputc(*text, f);
                    }
                    fputc('"', f);
                } else {
                    fmt_value(v, sizeof(v), s->value_type, s->bits[row], true);
                    fprintf(f, "=%s", v);
                }
            }
            fprintf(f, " %" PRId64 "\n", s->ts[row]);
        }
    }
}

int rf_query_write(FILE *f, const rf_query_result *r, enum rf_query_format fmt)
{
    switch (fmt) {
    case RF_QUERY_TABLE: write_table(f, r); break;
    case RF_QUERY_CSV: write_csv(f, r); break;
    case RF_QUERY_JSON: write_json(f, r); break;
    case RF_QUERY_LINE: write_line(f, r); break;
    default: return -EINVAL;
    }
    return ferror(f) ? -EIO : 0;
}
