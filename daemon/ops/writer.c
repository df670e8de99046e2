/* The section writer behind `show`: one set of calls, rendered as aligned
 * text tables or as one line of JSON. Text tables are buffered until the
 * table ends (column widths need every row); JSON streams. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ops/ops_pvt.h"

bool rf_ops_writer_json(const rf_ops_writer *w)
{
    return w->json;
}

static void json_string(rf_strbuf *b, const char *s)
{
    rf_strbuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': rf_strbuf_append(b, "\\\"", 2); break;
        case '\\': rf_strbuf_append(b, "\\\\", 2); break;
        case '\n': rf_strbuf_append(b, "\\n", 2); break;
        case '\r': rf_strbuf_append(b, "\\r", 2); break;
        case '\t': rf_strbuf_append(b, "\\t", 2); break;
        default:
            if (*p < 0x20)
                rf_strbuf_printf(b, "\\u%04x", *p);
            else
                rf_strbuf_append(b, (const char *)p, 1);
        }
    }
    rf_strbuf_append(b, "\"", 1);
}

/* Text values must stay on one line and never be empty (an empty line ends
 * a reply). */
static void text_value(rf_strbuf *b, const char *s)
{
    if (!*s) {
        rf_strbuf_append(b, "-", 1);
        return;
    }
    for (; *s; s++)
        rf_strbuf_append(b, (*s == '\n' || *s == '\r') ? " " : s, 1);
}

static void section_start(rf_ops_writer *w, const char *section)
{
    if (w->json) {
        if (w->sections)
            rf_strbuf_append(w->out, ",", 1);
        json_string(w->out, section);
        rf_strbuf_append(w->out, ":", 1);
    } else {
        rf_strbuf_printf(w->out, "# %s\n", section);
    }
    w->sections++;
}

void rf_ops_obj_begin(rf_ops_writer *w, const char *section)
{
    section_start(w, section);
    w->items = 0;
    if (w->json)
        rf_strbuf_append(w->out, "{", 1);
}

static void kv_raw(rf_ops_writer *w, const char *key, const char *text, bool quote)
{
    if (w->json) {
        if (w->items)
            rf_strbuf_append(w->out, ",", 1);
        json_string(w->out, key);
        rf_strbuf_append(w->out, ":", 1);
        if (quote)
            json_string(w->out, text);
        else
            rf_strbuf_append(w->out, text, strlen(text));
    } else {
        rf_strbuf_printf(w->out, "%s: ", key);
        text_value(w->out, text);
        rf_strbuf_append(w->out, "\n", 1);
    }
    w->items++;
}

void rf_ops_kv_str(rf_ops_writer *w, const char *key, const char *value)
{
    kv_raw(w, key, value ? value : "", true);
}

void rf_ops_kv_u64(rf_ops_writer *w, const char *key, uint64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)value);
    kv_raw(w, key, buf, false);
}

void rf_ops_kv_i64(rf_ops_writer *w, const char *key, int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)value);
    kv_raw(w, key, buf, false);
}

static void format_f64(char *buf, size_t size, double v, int decimals, bool json)
{
    if (!isfinite(v))
        snprintf(buf, size, "%s", json ? "null" : "-");
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

void rf_ops_kv_f64(rf_ops_writer *w, const char *key, double value, int decimals)
{
    char buf[64];
    format_f64(buf, sizeof(buf), value, decimals, w->json);
    kv_raw(w, key, buf, false);
}

void rf_ops_obj_end(rf_ops_writer *w)
{
    if (w->json)
        rf_strbuf_append(w->out, "}", 1);
}

void rf_ops_table_begin(rf_ops_writer *w, const char *section, const char *const *cols,
                        unsigned ncols)
{
    section_start(w, section);
    if (ncols > RF_OPS_TABLE_MAX_COLS)
        ncols = RF_OPS_TABLE_MAX_COLS;
    w->ncols = ncols;
    for (unsigned i = 0; i < ncols; i++)
        w->cols[i] = cols[i];
    w->col = 0;
    w->items = 0;
    w->ncells = 0;
    if (w->json)
        rf_strbuf_append(w->out, "[", 1);
}

static void cell_raw(rf_ops_writer *w, const char *text, bool quote)
{
    if (w->ncols == 0)
        return;
    if (w->json) {
        if (w->col == 0)
            rf_strbuf_append(w->out, w->items ? ",{" : "{", w->items ? 2 : 1);
        else
            rf_strbuf_append(w->out, ",", 1);
        json_string(w->out, w->cols[w->col]);
        rf_strbuf_append(w->out, ":", 1);
        if (quote)
            json_string(w->out, text);
        else
            rf_strbuf_append(w->out, text, strlen(text));
        if (w->col + 1 == w->ncols)
            rf_strbuf_append(w->out, "}", 1);
    } else {
        if (w->ncells == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 64;
            char **cells = realloc(w->cells, cap * sizeof(*cells));
            if (!cells) {
                w->out->oom = true;
                return;
            }
            w->cells = cells;
            w->cap = cap;
        }
        rf_strbuf one = {0};
        text_value(&one, text);
        w->cells[w->ncells++] = one.p ? one.p : strdup("-");
    }
    if (++w->col == w->ncols) {
        w->col = 0;
        w->items++;
    }
}

void rf_ops_cell_str(rf_ops_writer *w, const char *value)
{
    cell_raw(w, value ? value : "", true);
}

void rf_ops_cell_u64(rf_ops_writer *w, uint64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)value);
    cell_raw(w, buf, false);
}

void rf_ops_cells_u64(rf_ops_writer *w, const uint64_t *values, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        rf_ops_cell_u64(w, values[i]);
}

void rf_ops_cell_i64(rf_ops_writer *w, int64_t value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)value);
    cell_raw(w, buf, false);
}

void rf_ops_cell_f64(rf_ops_writer *w, double value, int decimals)
{
    char buf[64];
    format_f64(buf, sizeof(buf), value, decimals, w->json);
    cell_raw(w, buf, false);
}

void rf_ops_table_end(rf_ops_writer *w)
{
    if (w->json) {
        /* An unfinished row is closed so the JSON stays well formed. */
        if (w->col != 0)
            rf_strbuf_append(w->out, "}", 1);
        rf_strbuf_append(w->out, "]", 1);
    } else {
        size_t width[RF_OPS_TABLE_MAX_COLS];
        for (unsigned c = 0; c < w->ncols; c++)
            width[c] = strlen(w->cols[c]);
        for (size_t i = 0; i < w->ncells; i++) {
            size_t l = strlen(w->cells[i]);
            if (l > width[i % w->ncols])
                width[i % w->ncols] = l;
        }
        for (unsigned c = 0; c < w->ncols; c++) {
            if (c + 1 < w->ncols)
                rf_strbuf_printf(w->out, "%-*s  ", (int)width[c], w->cols[c]);
            else
                rf_strbuf_printf(w->out, "%s\n", w->cols[c]);
        }
        for (size_t i = 0; i < w->ncells; i++) {
            unsigned c = (unsigned)(i % w->ncols);
            bool last = c + 1 == w->ncols || i + 1 == w->ncells;
            if (last)
                rf_strbuf_printf(w->out, "%s\n", w->cells[i]);
            else
                rf_strbuf_printf(w->out, "%-*s  ", (int)width[c], w->cells[i]);
        }
        for (size_t i = 0; i < w->ncells; i++)
            free(w->cells[i]);
        w->ncells = 0;
    }
    w->ncols = 0;
    w->col = 0;
}

void rf_ops_no_data(rf_ops_writer *w, const char *section, const char *what)
{
    if (w->json) {
        section_start(w, section);
        rf_strbuf_append(w->out, "{\"no_data\":", 11);
        json_string(w->out, what);
        rf_strbuf_append(w->out, "}", 1);
    } else {
        section_start(w, section);
        rf_strbuf_printf(w->out, "no data: %s\n", what);
    }
}

void rf_ops_writer_init(rf_ops_writer *w, rf_strbuf *out, bool json)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->json = json;
}

void rf_ops_writer_fini(rf_ops_writer *w)
{
    for (size_t i = 0; i < w->ncells; i++)
        free(w->cells[i]);
    free(w->cells);
    w->cells = NULL;
    w->ncells = w->cap = 0;
}
