/* Typed values: each reads one scalar, checks it against its constraints and
 * says, on failure, what was expected and what was found. Units (durations,
 * sizes) are parsed here too, exactly, without floating point. */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/config/config.h"
#include "core/config/config_pvt.h"

/* Fails at `node` with "expected <what>, got <what the node holds>". */
static int expected(const rf_cfg_node *node, rf_err *err, const char *what)
{
    char buf[RF_CFG_DESCRIBE_MAX];
    return rf_cfg_fail(node, err, "expected %s, got %s", what,
                       rf_cfg_describe(node, buf, sizeof(buf)));
}

/* The scalar's text when it is a non-empty scalar without NUL bytes. */
static const char *scalar_text(const rf_cfg_node *node)
{
    if (node->kind != RF_CFG_SCALAR || node->u.scalar.len == 0 ||
        strlen(node->u.scalar.text) != node->u.scalar.len)
        return NULL;
    return node->u.scalar.text;
}

/* "<noun> from A to B", "<noun> of at least A", ...: how limits are stated. */
static void range_phrase(char *buf, size_t size, const char *noun, const char *lo, const char *hi,
                         bool lo_open, bool hi_open)
{
    if (lo_open && hi_open)
        snprintf(buf, size, "%s", noun);
    else if (hi_open)
        snprintf(buf, size, "%s of at least %s", noun, lo);
    else if (lo_open)
        snprintf(buf, size, "%s of at most %s", noun, hi);
    else
        snprintf(buf, size, "%s from %s to %s", noun, lo, hi);
}

/* ---- integers ----------------------------------------------------------- */

/* Decimal or 0x hexadecimal, no sign. */
static int parse_u64(const char *s, uint64_t *out)
{
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return -EINVAL;
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && isxdigit((unsigned char)*s))
            d = (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
        else
            return -EINVAL;
        if (v > (UINT64_MAX - d) / base)
            return -ERANGE;
        v = v * base + d;
    }
    *out = v;
    return 0;
}

static int node_u64(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t type_max,
                    bool pow2, uint64_t *out, rf_err *err)
{
    const char *s = scalar_text(node);
    uint64_t v;
    if (s && parse_u64(s, &v) == 0 && v >= min && v <= max && (!pow2 || (v & (v - 1)) == 0)) {
        *out = v;
        return 0;
    }
    char lo[24], hi[24], what[96];
    snprintf(lo, sizeof(lo), "%" PRIu64, min);
    snprintf(hi, sizeof(hi), "%" PRIu64, max);
    range_phrase(what, sizeof(what), pow2 ? "a power of two" : "an integer", lo, hi, false,
                 max == type_max);
    return expected(node, err, what);
}

int rf_cfg_node_u64(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out, rf_err *err)
{
    return node_u64(node, min, max, UINT64_MAX, false, out, err);
}

int rf_cfg_node_u64_pow2(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out,
                         rf_err *err)
{
    return node_u64(node, min, max, UINT64_MAX, true, out, err);
}

int rf_cfg_node_u32(const rf_cfg_node *node, uint32_t min, uint32_t max, uint32_t *out, rf_err *err)
{
    uint64_t v;
    int rc = node_u64(node, min, max, UINT32_MAX, false, &v, err);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

int rf_cfg_node_i64(const rf_cfg_node *node, int64_t min, int64_t max, int64_t *out, rf_err *err)
{
    const char *s = scalar_text(node);
    if (s) {
        bool neg = s[0] == '-';
        uint64_t mag;
        if (parse_u64(s + neg, &mag) == 0) {
            /* -(INT64_MIN) does not fit int64_t: compare magnitudes. */
            uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
            if (mag <= limit) {
                int64_t v = neg ? (mag == limit ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
                if (v >= min && v <= max) {
                    *out = v;
                    return 0;
                }
            }
        }
    }
    char lo[24], hi[24], what[96];
    snprintf(lo, sizeof(lo), "%" PRId64, min);
    snprintf(hi, sizeof(hi), "%" PRId64, max);
    range_phrase(what, sizeof(what), "an integer", lo, hi, min == INT64_MIN, max == INT64_MAX);
    return expected(node, err, what);
}

/* ---- other scalars ------------------------------------------------------ */

int rf_cfg_node_double(const rf_cfg_node *node, double min, double max, double *out, rf_err *err)
{
    const char *s = scalar_text(node);
    if (s && !isspace((unsigned char)s[0])) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (*end == '\0' && errno == 0 && isfinite(v) && v >= min && v <= max) {
            *out = v;
            return 0;
        }
    }
    char lo[32], hi[32], what[96];
    snprintf(lo, sizeof(lo), "%g", min);
    snprintf(hi, sizeof(hi), "%g", max);
    range_phrase(what, sizeof(what), "a number", lo, hi, min <= -DBL_MAX, max >= DBL_MAX);
    return expected(node, err, what);
}

int rf_cfg_node_bool(const rf_cfg_node *node, bool *out, rf_err *err)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *s = scalar_text(node);
    for (size_t i = 0; s && i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return expected(node, err, "true or false (or yes/no, on/off)");
}

int rf_cfg_node_str(const rf_cfg_node *node, size_t min_len, char *out, size_t out_size,
                    rf_err *err)
{
    if (node->kind != RF_CFG_SCALAR || (node->null && node->u.scalar.len == 0))
        return expected(node, err, "a string");
    size_t len = node->u.scalar.len;
    if (strlen(node->u.scalar.text) != len)
        return rf_cfg_fail(node, err, "a NUL byte is not allowed in a string");
    size_t max_len = out_size ? out_size - 1 : 0;
    if (len > max_len)
        return rf_cfg_fail(node, err, "expected a string of at most %zu bytes, got %zu bytes",
                           max_len, len);
    if (len < min_len) {
        if (min_len == 1)
            return expected(node, err, "a non-empty string");
        return rf_cfg_fail(node, err, "expected a string of at least %zu bytes, got %zu bytes",
                           min_len, len);
    }
    memcpy(out, node->u.scalar.text, len + 1);
    return 0;
}

int rf_cfg_node_enum(const rf_cfg_node *node, const char *const *names, size_t n_names, int *out,
                     rf_err *err)
{
    const char *s = scalar_text(node);
    for (size_t i = 0; s && i < n_names; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    char what[RF_ERR_MSG_MAX / 2] = "one of ";
    size_t o = strlen(what);
    for (size_t i = 0; i < n_names && o < sizeof(what); i++) {
        int w = snprintf(what + o, sizeof(what) - o, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return expected(node, err, what);
}

/* ---- units -------------------------------------------------------------- */

struct unit {
    const char *name;
    uint64_t scale;
};

/* Largest first: formatting picks the first unit that divides exactly. */
static const struct unit duration_units[] = {
    {"d", 86400000000000ull}, {"h", 3600000000000ull}, {"m", 60000000000ull}, {"s", 1000000000ull},
    {"ms", 1000000ull},       {"us", 1000ull},         {"ns", 1ull},
};
static const struct unit size_units[] = {
    {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10}, {"B", 1},
};
#define N_UNITS(a) (sizeof(a) / sizeof((a)[0]))

static const struct unit *find_unit(const struct unit *units, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(units[i].name, name) == 0)
            return &units[i];
    return NULL;
}

/* NUMBER [ "." DIGITS ] [ " " ] [ UNIT ]: the number's integer part, its
 * fraction as num/den (den = 10^digits), and where the unit starts. */
static int parse_number(const char *s, bool allow_fraction, uint64_t *ip, uint64_t *num,
                        uint64_t *den, const char **unit)
{
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    uint64_t v = 0;
    int rc = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            rc = -ERANGE; /* keep scanning: a bad unit is the better message */
        else
            v = v * 10 + d;
    }
    *num = 0;
    *den = 1;
    if (*s == '.' && allow_fraction) {
        s++;
        if (!isdigit((unsigned char)*s))
            return -EINVAL;
        for (; isdigit((unsigned char)*s); s++) {
            if (*den > UINT64_MAX / 10)
                return -EINVAL; /* more digits than any unit can use */
            *num = *num * 10 + (uint64_t)(*s - '0');
            *den *= 10;
        }
    }
    if (*s == ' ' && !*++s)
        return -EINVAL; /* a space promises a unit */
    *ip = v;
    *unit = s;
    return rc;
}

int rf_cfg_parse_duration(const char *text, uint64_t *out_ns)
{
    uint64_t ip, num, den;
    const char *u;
    int rc = parse_number(text, true, &ip, &num, &den, &u);
    if (rc == -EINVAL)
        return rc;
    const struct unit *unit = find_unit(duration_units, N_UNITS(duration_units), *u ? u : "s");
    if (!unit)
        return -EINVAL;
    if (rc < 0)
        return rc;
    unsigned __int128 frac = (unsigned __int128)num * unit->scale;
    unsigned __int128 total = (unsigned __int128)ip * unit->scale + frac / den;
    if (frac % den != 0 || total > UINT64_MAX)
        return -ERANGE;
    *out_ns = (uint64_t)total;
    return 0;
}

int rf_cfg_parse_size(const char *text, uint64_t *out_bytes)
{
    uint64_t ip, num, den;
    const char *u;
    int rc = parse_number(text, false, &ip, &num, &den, &u);
    if (rc == -EINVAL)
        return rc;
    const struct unit *unit = find_unit(size_units, N_UNITS(size_units), *u ? u : "B");
    if (!unit)
        return -EINVAL;
    if (rc < 0)
        return rc;
    if (ip > UINT64_MAX / unit->scale)
        return -ERANGE;
    *out_bytes = ip * unit->scale;
    return 0;
}

static const char *format_unit(const struct unit *units, size_t n, const char *zero, uint64_t v,
                               char *buf, size_t size)
{
    if (v == 0) {
        snprintf(buf, size, "%s", zero);
        return buf;
    }
    for (size_t i = 0; i < n; i++) {
        if (v % units[i].scale == 0) {
            snprintf(buf, size, "%" PRIu64 "%s", v / units[i].scale, units[i].name);
            break;
        }
    }
    return buf;
}

const char *rf_cfg_format_duration(uint64_t ns, char *buf, size_t size)
{
    return format_unit(duration_units, N_UNITS(duration_units), "0s", ns, buf, size);
}

const char *rf_cfg_format_size(uint64_t bytes, char *buf, size_t size)
{
    return format_unit(size_units, N_UNITS(size_units), "0B", bytes, buf, size);
}

/* A value with a unit: a malformed one names the units, one out of range
 * states the range in the largest exact units. */
static int node_unit(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out,
                     rf_err *err, int (*parse)(const char *, uint64_t *),
                     const char *(*format)(uint64_t, char *, size_t), const char *noun,
                     const char *form)
{
    const char *s = scalar_text(node);
    uint64_t v;
    int rc = s ? parse(s, &v) : -EINVAL;
    if (rc == 0 && v >= min && v <= max) {
        *out = v;
        return 0;
    }
    char what[160];
    if (rc == -EINVAL) {
        snprintf(what, sizeof(what), "%s %s", noun, form);
    } else {
        char lo[32], hi[32];
        range_phrase(what, sizeof(what), noun, format(min, lo, sizeof(lo)),
                     format(max, hi, sizeof(hi)), false, max == UINT64_MAX);
    }
    return expected(node, err, what);
}

int rf_cfg_node_duration(const rf_cfg_node *node, uint64_t min_ns, uint64_t max_ns,
                         uint64_t *out_ns, rf_err *err)
{
    return node_unit(node, min_ns, max_ns, out_ns, err, rf_cfg_parse_duration,
                     rf_cfg_format_duration, "a duration",
                     "in seconds or with a unit (ns, us, ms, s, m, h, d)");
}

int rf_cfg_node_size(const rf_cfg_node *node, uint64_t min, uint64_t max, uint64_t *out,
                     rf_err *err)
{
    return node_unit(node, min, max, out, err, rf_cfg_parse_size, rf_cfg_format_size, "a size",
                     "in bytes or with a unit (B, KiB, MiB, GiB, TiB)");
}

/* ---- values of a mapping's keys ----------------------------------------- */

/* 1 when `key` is present (*v set), 0 when absent, < 0 on error. */
static int present(const rf_cfg_node *map, const char *key, const rf_cfg_node **v, rf_err *err)
{
    int rc = rf_cfg_find(map, key, v, err);
    return rc < 0 ? rc : *v != NULL;
}

int rf_cfg_u64(const rf_cfg_node *map, const char *key, uint64_t min, uint64_t max, uint64_t def,
               uint64_t *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_u64(v, min, max, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_u32(const rf_cfg_node *map, const char *key, uint32_t min, uint32_t max, uint32_t def,
               uint32_t *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_u32(v, min, max, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_i64(const rf_cfg_node *map, const char *key, int64_t min, int64_t max, int64_t def,
               int64_t *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_i64(v, min, max, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_u64_pow2(const rf_cfg_node *map, const char *key, uint64_t min, uint64_t max,
                    uint64_t def, uint64_t *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_u64_pow2(v, min, max, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_double(const rf_cfg_node *map, const char *key, double min, double max, double def,
                  double *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_double(v, min, max, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_bool(const rf_cfg_node *map, const char *key, bool def, bool *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_bool(v, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_enum(const rf_cfg_node *map, const char *key, const char *const *names, size_t n_names,
                int def, int *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_enum(v, names, n_names, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_duration(const rf_cfg_node *map, const char *key, uint64_t min_ns, uint64_t max_ns,
                    uint64_t def_ns, uint64_t *out_ns, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_duration(v, min_ns, max_ns, out_ns, err);
    if (rc == 0)
        *out_ns = def_ns;
    return rc;
}

int rf_cfg_size(const rf_cfg_node *map, const char *key, uint64_t min, uint64_t max, uint64_t def,
                uint64_t *out, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc == 1)
        return rf_cfg_node_size(v, min, max, out, err);
    if (rc == 0)
        *out = def;
    return rc;
}

int rf_cfg_str(const rf_cfg_node *map, const char *key, size_t min_len, const char *def, char *out,
               size_t out_size, rf_err *err)
{
    const rf_cfg_node *v = NULL;
    int rc = present(map, key, &v, err);
    if (rc != 0)
        return rc < 0 ? rc : rf_cfg_node_str(v, min_len, out, out_size, err);
    /* A default that does not fit is the caller's bug, not the user's. */
    if (strlen(def) >= out_size)
        return rf_cfg_fail_key(map, key, err, "default '%s' longer than %zu bytes", def,
                               out_size ? out_size - 1 : 0);
    memcpy(out, def, strlen(def) + 1);
    return 0;
}
