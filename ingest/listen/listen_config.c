/* The `listeners:` section of the configuration: a list of listener
 * definitions validated into rf_listener_config, with the collectors'
 * conventional defaults when the list is absent. Control thread only. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "ingest/listen/listen.h"
#include "ingest/protocol/protocol.h"

static const char *const transports[] = {"udp", "tcp"};
static const char *const protocols[] = {"influx_line", "statsd", "graphite", "http", "collectd"};
static const char *const classes[] = {"standard", "critical"};

static uint16_t default_port(enum rf_listen_protocol p)
{
    switch (p) {
    case RF_LISTEN_PROTO_STATSD: return 8125;
    case RF_LISTEN_PROTO_GRAPHITE: return 2003;
    case RF_LISTEN_PROTO_HTTP: return 8086;
    case RF_LISTEN_PROTO_COLLECTD: return 25826;
    default: return 8089;
    }
}

/* TCP defaults that no idle crowd can hold for ever (any local user can
 * open connections to a loopback listener): idle connections are closed
 * after 2 minutes (longer than the 10 s to 1 min intervals collectors
 * flush at, so a live client is not cut), and one peer address holds at
 * most 64 of the max_connections slots, so a host that opens connections
 * without end locks out only itself. On loopback every local client shares
 * 127.0.0.1 unless it binds another 127/8 address: there the idle timeout
 * is what bounds a lock-out. */
#define RF_LISTEN_DEFAULT_IDLE_NS (120 * (uint64_t)RF_NS_PER_S)
#define RF_LISTEN_DEFAULT_PER_SOURCE 64u

/* `otlp: {resource_attributes: [...], scope_attributes: [...]}`, protocol
 * http only: the attribute names OTLP keeps as tags (listen.h). */
static int parse_otlp(const rf_cfg_node *item, rf_listener_config *c, rf_err *err)
{
    if (!rf_cfg_has(item, "otlp"))
        return 0;
    if (c->protocol != RF_LISTEN_PROTO_HTTP)
        return rf_cfg_fail_key(item, "otlp", err, "otlp is a setting of protocol http");
    const rf_cfg_node *o, *res, *scope;
    int rc;
    if ((rc = rf_cfg_map(item, "otlp", &o, err)) < 0 ||
        (rc = rf_cfg_seq(o, "resource_attributes", 0, RF_LISTEN_OTLP_ATTRS_MAX, &res, err)) < 0 ||
        (rc = rf_cfg_seq(o, "scope_attributes", 0, RF_LISTEN_OTLP_ATTRS_MAX, &scope, err)) < 0)
        return rc;
    size_t nr = rf_cfg_seq_len(res), ns = rf_cfg_seq_len(scope);
    if (nr + ns > RF_LISTEN_OTLP_ATTRS_MAX)
        return rf_cfg_fail_key(o, "scope_attributes", err,
                               "at most %u resource and scope attribute names together",
                               RF_LISTEN_OTLP_ATTRS_MAX);
    c->otlp.resource_set = rf_cfg_has(o, "resource_attributes");
    c->otlp.n_resource = (uint8_t)nr;
    c->otlp.n_scope = (uint8_t)ns;
    for (size_t i = 0; i < nr + ns; i++)
        if ((rc = rf_cfg_node_str(i < nr ? rf_cfg_seq_at(res, i) : rf_cfg_seq_at(scope, i - nr), 1,
                                  c->otlp.names[i], RF_LISTEN_OTLP_ATTR_LEN, err)) < 0)
            return rc;
    return 0;
}

static void set_default(rf_listener_config *c, enum rf_listen_transport t,
                        enum rf_listen_protocol p)
{
    rf_listener_config_init(c);
    c->transport = t;
    c->protocol = p;
    c->idle_timeout_ns = RF_LISTEN_DEFAULT_IDLE_NS;
    c->max_connections_per_source = RF_LISTEN_DEFAULT_PER_SOURCE;
    c->port = default_port(p);
    snprintf(c->name, sizeof(c->name), "%s-%s", protocols[p], transports[t]);
}

static bool valid_addr(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Compiled graphite templates, one per distinct (templates, separator,
 * tags): kept for the process, since parse contexts made from a
 * configuration may outlive it across a reload; an operator writes few
 * distinct sets. Control thread only. */
struct graphite_interned {
    struct graphite_interned *next;
    rf_graphite_templates *templates;
    size_t key_len;
    char key[]; /* the specs, separator and tags, each NUL-terminated */
};
static struct graphite_interned *graphite_interned;

#define RF_GRAPHITE_TEXT_MAX 1024

/* `templates`, `separator`, `tags` of a graphite listener (any of them
 * makes templates), validated by compiling them. */
static int parse_graphite(const rf_cfg_node *item, rf_listener_config *c, rf_err *err)
{
    const bool any =
        rf_cfg_has(item, "templates") || rf_cfg_has(item, "separator") || rf_cfg_has(item, "tags");
    if (!any)
        return 0;
    if (c->protocol != RF_LISTEN_PROTO_GRAPHITE)
        return rf_cfg_fail(item, err, "templates, separator and tags are for protocol graphite");
    static char specs[64][RF_GRAPHITE_TEXT_MAX];
    const char *spec_ptr[64];
    char sep[16], tags[RF_GRAPHITE_TEXT_MAX];
    const rf_cfg_node *seq;
    int rc;
    if ((rc = rf_cfg_seq(item, "templates", 0, 64, &seq, err)) < 0 ||
        (rc = rf_cfg_str(item, "separator", 1, ".", sep, sizeof(sep), err)) < 0 ||
        (rc = rf_cfg_str(item, "tags", 0, "", tags, sizeof(tags), err)) < 0)
        return rc;
    size_t n = rf_cfg_seq_len(seq), key_len = strlen(sep) + strlen(tags) + 2;
    for (size_t i = 0; i < n; i++) {
        if ((rc = rf_cfg_node_str(rf_cfg_seq_at(seq, i), 1, specs[i], sizeof(specs[i]), err)) < 0)
            return rc;
        spec_ptr[i] = specs[i];
        key_len += strlen(specs[i]) + 1;
    }
    char *key = malloc(key_len);
    if (!key)
        return rf_err_set(err, ENOMEM, "graphite templates: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(key + k, "%s", specs[i]) + 1;
    k += (size_t)sprintf(key + k, "%s", sep) + 1;
    k += (size_t)sprintf(key + k, "%s", tags) + 1;
    for (struct graphite_interned *g = graphite_interned; g; g = g->next) {
        if (g->key_len == k && memcmp(g->key, key, k) == 0) {
            c->graphite_templates = g->templates;
            free(key);
            return 0;
        }
    }
    struct graphite_interned *g = malloc(sizeof(*g) + k);
    rf_graphite_templates *t = rf_graphite_templates_new(spec_ptr, n, sep, tags, err);
    if (!g || !t) {
        free(g);
        free(key);
        rf_graphite_templates_free(t);
        if (!t) {
            char why[RF_ERR_MSG_MAX];
            snprintf(why, sizeof(why), "%s", err ? err->msg : "graphite templates");
            return rf_cfg_fail(item, err, "%s", why);
        }
        return rf_err_set(err, ENOMEM, "graphite templates: out of memory");
    }
    memcpy(g->key, key, k);
    free(key);
    g->key_len = k;
    g->templates = t;
    g->next = graphite_interned;
    graphite_interned = g;
    c->graphite_templates = t;
    return 0;
}

static int parse_item(const rf_cfg_node *item, rf_listener_config *c, rf_err *err)
{
    if (rf_cfg_kind(item) != RF_CFG_MAPPING)
        return rf_cfg_fail(item, err, "expected a mapping with transport, protocol, port, ...");
    int rc, t, p;
    if ((rc = rf_cfg_require(item, "transport", err)) < 0 ||
        (rc = rf_cfg_require(item, "protocol", err)) < 0 ||
        (rc = rf_cfg_enum(item, "transport", transports, 2, 0, &t, err)) < 0 ||
        (rc = rf_cfg_enum(item, "protocol", protocols, 5, 0, &p, err)) < 0)
        return rc;
    if (p == RF_LISTEN_PROTO_HTTP && t != RF_LISTEN_TCP)
        return rf_cfg_fail_key(item, "transport", err, "protocol http needs transport tcp");
    if (p == RF_LISTEN_PROTO_COLLECTD && t != RF_LISTEN_UDP)
        return rf_cfg_fail_key(item, "transport", err, "protocol collectd needs transport udp");
    set_default(c, (enum rf_listen_transport)t, (enum rf_listen_protocol)p);

    char def_name[RF_LISTENER_NAME_MAX];
    snprintf(def_name, sizeof(def_name), "%s", c->name);
    uint32_t port, max_conn, per_source;
    uint64_t rcvbuf, max_line, idle;
    int cls;
    if ((rc = rf_cfg_str(item, "name", 1, def_name, c->name, sizeof(c->name), err)) < 0 ||
        (rc = rf_cfg_str(item, "address", 2, "127.0.0.1", c->address, sizeof(c->address), err)) <
            0 ||
        (rc = rf_cfg_u32(item, "port", 1, 65535, c->port, &port, err)) < 0 ||
        (rc = rf_cfg_size(item, "rcvbuf", 0, 1u << 30, 0, &rcvbuf, err)) < 0 ||
        (rc = rf_cfg_u32(item, "max_connections", 1, 1u << 20, 1024, &max_conn, err)) < 0 ||
        (rc = rf_cfg_u32(item, "max_connections_per_source", 0, 1u << 20,
                         RF_LISTEN_DEFAULT_PER_SOURCE, &per_source, err)) < 0 ||
        (rc = rf_cfg_size(item, "max_line", 64, 16u << 20, 65536, &max_line, err)) < 0 ||
        (rc = rf_cfg_duration(item, "idle_timeout", 0, 7 * 24 * 3600 * (uint64_t)RF_NS_PER_S,
                              RF_LISTEN_DEFAULT_IDLE_NS, &idle, err)) < 0 ||
        (rc = rf_cfg_enum(item, "class", classes, 2, 0, &cls, err)) < 0)
        return rc;
    c->critical = cls == 1;
    if ((rc = rf_tls_config_parse(item, &c->tls, err)) < 0 ||
        (rc = rf_auth_config_parse(item, &c->auth, err)) < 0)
        return rc;
    if ((c->tls.enabled || rf_auth_config_enabled(&c->auth)) && p != RF_LISTEN_PROTO_HTTP)
        return rf_cfg_fail_key(item, c->tls.enabled ? "tls" : "auth", err,
                               "tls and auth are for protocol http listeners");
    if (!valid_addr(c->address))
        return rf_cfg_fail_key(item, "address", err, "expected an IPv4 or IPv6 literal, got '%s'",
                               c->address);
    c->port = (uint16_t)port;
    c->rcvbuf_bytes = (uint32_t)rcvbuf;
    c->max_connections = max_conn;
    c->max_connections_per_source = per_source;
    c->max_line_bytes = (uint32_t)max_line;
    c->idle_timeout_ns = idle;

    const rf_cfg_node *workers;
    if ((rc = parse_otlp(item, c, err)) < 0 ||
        (rc = rf_cfg_seq(item, "workers", 0, 64, &workers, err)) < 0)
        return rc;
    c->worker_mask = 0;
    for (size_t i = 0; i < rf_cfg_seq_len(workers); i++) {
        uint32_t w;
        if ((rc = rf_cfg_node_u32(rf_cfg_seq_at(workers, i), 0, 63, &w, err)) < 0)
            return rc;
        c->worker_mask |= 1ull << w;
    }
    return parse_graphite(item, c, err);
}

int rf_listener_config_parse_list(const rf_cfg_node *seq, rf_listener_config *out, size_t cap,
                                  size_t *n_out, rf_err *err)
{
    *n_out = 0;
    size_t n = seq ? rf_cfg_seq_len(seq) : 0;
    if (n == 0) {
        if (cap < 4)
            return rf_err_set(err, ENOSPC, "listeners: room for %zu of the 4 defaults", cap);
        set_default(&out[0], RF_LISTEN_UDP, RF_LISTEN_PROTO_INFLUX_LINE);
        set_default(&out[1], RF_LISTEN_TCP, RF_LISTEN_PROTO_INFLUX_LINE);
        set_default(&out[2], RF_LISTEN_UDP, RF_LISTEN_PROTO_STATSD);
        set_default(&out[3], RF_LISTEN_TCP, RF_LISTEN_PROTO_GRAPHITE);
        *n_out = 4;
        return 0;
    }
    if (n > cap)
        return rf_cfg_fail(seq, err, "at most %zu listeners, got %zu", cap, n);
    for (size_t i = 0; i < n; i++) {
        const rf_cfg_node *item = rf_cfg_seq_at(seq, i);
        int rc = parse_item(item, &out[i], err);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(out[j].name, out[i].name) == 0)
                return rf_cfg_fail_key(item, "name", err, "duplicate listener name '%s'",
                                       out[i].name);
            if (out[j].transport == out[i].transport && out[j].port == out[i].port &&
                strcmp(out[j].address, out[i].address) == 0)
                return rf_cfg_fail_key(item, "port", err,
                                       "%s %s:%u is already used by listener "
                                       "'%s'",
                                       transports[out[i].transport], out[i].address, out[i].port,
                                       out[j].name);
        }
    }
    *n_out = n;
    return 0;
}
