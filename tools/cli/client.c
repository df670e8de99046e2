/* The stats-socket client and the small JSON reader (see client.h). */
#include "tools/cli/client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int rf_cli_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rf_cli_request(int fd, const char *cmd, int timeout_ms, char **reply)
{
    *reply = NULL;
    size_t cl = strlen(cmd);
    char *line = malloc(cl + 2);
    if (!line)
        return -ENOMEM;
    memcpy(line, cmd, cl);
    line[cl] = '\n';
    size_t off = 0;
    while (off < cl + 1) {
        ssize_t n = send(fd, line + off, cl + 1 - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(line);
            return -e;
        }
        off += (size_t)n;
    }
    free(line);

    size_t len = 0, cap = 8192;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        /* A reply ends with an empty line: "\n\n", or just "\n" when empty. */
        if ((len >= 2 && buf[len - 1] == '\n' && buf[len - 2] == '\n') ||
            (len == 1 && buf[0] == '\n'))
            break;
        long long left = deadline - now_ms();
        if (left <= 0) {
            free(buf);
            return -ETIMEDOUT;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR) {
            free(buf);
            return -EINTR;
        }
        if (r <= 0)
            continue;
        if (cap - len < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n == 0) {
            free(buf);
            return -ECONNRESET;
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            int e = errno;
            free(buf);
            return -e;
        }
        len += (size_t)n;
    }
    buf[len - 1] = '\0'; /* drop the empty line */
    *reply = buf;
    return 0;
}

/* ---- JSON ------------------------------------------------------------------- */

typedef struct jp {
    const char *p;
    rf_err *err; /* the first failure only */
    int depth;
} jp;

static void skip_ws(jp *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static rf_json *fail(jp *j, const char *what)
{
    if (!j->err || !j->err->code)
        rf_err_set(j->err, EBADMSG, "%s near '%.20s'", what, j->p);
    return NULL;
}

static char *parse_string(jp *j)
{
    if (*j->p != '"')
        return fail(j, "expected a string"), NULL;
    j->p++;
    size_t cap = 32, len = 0;
    char *s = malloc(cap);
    while (s && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p;
        if (c == '\0' || c < 0x20) {
            free(s);
            return fail(j, "bad string"), NULL;
        }
        if (len + 2 > cap) {
            char *ns = realloc(s, cap *= 2);
            if (!ns) {
                free(s);
                return NULL;
            }
            s = ns;
        }
        if (c == '\\') {
            j->p++;
            char e = *j->p;
            const char *map = strchr("\"\\/bfnrt", e);
            if (map && e) {
                static const char out[] = "\"\\/\b\f\n\r\t";
                s[len++] = out[map - "\"\\/bfnrt"];
                j->p++;
            } else if (e == 'u') {
                unsigned v = 0;
                for (int k = 1; k <= 4; k++) {
                    char h = j->p[k];
                    int d = (h >= '0' && h <= '9')   ? h - '0'
                            : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                            : (h >= 'A' && h <= 'F') ? h - 'A' + 10
                                                     : -1;
                    if (d < 0) {
                        free(s);
                        return fail(j, "bad \\u escape"), NULL;
                    }
                    v = v * 16 + (unsigned)d;
                }
                s[len++] = v < 0x80 ? (char)v : '?';
                j->p += 5;
            } else {
                free(s);
                return fail(j, "bad escape"), NULL;
            }
        } else {
            s[len++] = (char)c;
            j->p++;
        }
    }
    if (!s)
        return NULL;
    j->p++;
    s[len] = '\0';
    return s;
}

static rf_json *parse_value(jp *j);

static rf_json *parse_container(jp *j, rf_json *node, bool obj)
{
    char close = obj ? '}' : ']';
    j->p++;
    skip_ws(j);
    rf_json **tail = &node->child;
    if (*j->p == close) {
        j->p++;
        return node;
    }
    for (;;) {
        skip_ws(j);
        char *key = NULL;
        if (obj) {
            key = parse_string(j);
            if (!key)
                goto bad;
            skip_ws(j);
            if (*j->p != ':') {
                free(key);
                fail(j, "expected ':'");
                goto bad;
            }
            j->p++;
        }
        rf_json *v = parse_value(j);
        if (!v) {
            free(key);
            goto bad;
        }
        v->key = key;
        *tail = v;
        tail = &v->next;
        skip_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == close) {
            j->p++;
            return node;
        }
        fail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto bad;
    }
bad:
    rf_json_free(node);
    return NULL;
}

static rf_json *parse_value(jp *j)
{
    skip_ws(j);
    if (++j->depth > 64)
        return fail(j, "nested too deep");
    rf_json *n = calloc(1, sizeof(*n));
    if (!n)
        return fail(j, "out of memory");
    rf_json *r = n;
    char c = *j->p;
    if (c == '{') {
        n->type = RF_JSON_OBJ;
        r = parse_container(j, n, true);
    } else if (c == '[') {
        n->type = RF_JSON_ARR;
        r = parse_container(j, n, false);
    } else if (c == '"') {
        n->type = RF_JSON_STR;
        n->str = parse_string(j);
        if (!n->str) {
            free(n);
            r = NULL;
        }
    } else if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
        n->type = RF_JSON_BOOL;
        n->num = c == 't';
        j->p += c == 't' ? 4 : 5;
    } else if (!strncmp(j->p, "null", 4)) {
        n->type = RF_JSON_NULL;
        j->p += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        /* Strict number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
        const char *s = j->p;
        if (*s == '-')
            s++;
        if (*s == '0')
            s++;
        else if (*s >= '1' && *s <= '9')
            while (*s >= '0' && *s <= '9')
                s++;
        else
            s = NULL;
        if (s && *s == '.') {
            s++;
            if (!(*s >= '0' && *s <= '9'))
                s = NULL;
            while (s && *s >= '0' && *s <= '9')
                s++;
        }
        if (s && (*s == 'e' || *s == 'E')) {
            s++;
            if (*s == '+' || *s == '-')
                s++;
            if (!(*s >= '0' && *s <= '9'))
                s = NULL;
            while (s && *s >= '0' && *s <= '9')
                s++;
        }
        if (!s) {
            free(n);
            r = fail(j, "bad number");
        } else {
            n->type = RF_JSON_NUM;
            n->num = strtod(j->p, NULL);
            j->p = s;
        }
    } else {
        free(n);
        r = fail(j, "unexpected character");
    }
    j->depth--;
    return r;
}

rf_json *rf_json_parse(const char *text, rf_err *err)
{
    rf_err_clear(err);
    jp j = {.p = text, .err = err};
    rf_json *v = parse_value(&j);
    if (!v) {
        if (err && !err->code)
            rf_err_set(err, ENOMEM, "out of memory for the JSON tree");
        return NULL;
    }
    skip_ws(&j);
    if (*j.p) {
        fail(&j, "trailing characters");
        rf_json_free(v);
        return NULL;
    }
    return v;
}

void rf_json_free(rf_json *j)
{
    while (j) {
        rf_json *next = j->next;
        rf_json_free(j->child);
        free(j->str);
        free(j->key);
        free(j);
        j = next;
    }
}

const rf_json *rf_json_get(const rf_json *j, const char *key)
{
    if (!j || j->type != RF_JSON_OBJ)
        return NULL;
    for (const rf_json *c = j->child; c; c = c->next)
        if (c->key && !strcmp(c->key, key))
            return c;
    return NULL;
}

double rf_json_num(const rf_json *obj, const char *key, double def)
{
    const rf_json *v = rf_json_get(obj, key);
    return v && (v->type == RF_JSON_NUM || v->type == RF_JSON_BOOL) ? v->num : def;
}

const char *rf_json_str(const rf_json *obj, const char *key, const char *def)
{
    const rf_json *v = rf_json_get(obj, key);
    return v && v->type == RF_JSON_STR ? v->str : def;
}

size_t rf_json_len(const rf_json *arr)
{
    size_t n = 0;
    if (arr && (arr->type == RF_JSON_ARR || arr->type == RF_JSON_OBJ))
        for (const rf_json *c = arr->child; c; c = c->next)
            n++;
    return n;
}
