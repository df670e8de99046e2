/* The `stats:` section: where the ops sockets live and whether Prometheus
 * is served. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/ops/ops.h"

#define DEFAULT_LISTEN "127.0.0.1:9273"
#define DEFAULT_CLIENT_BUFFER (4ull << 20)
#define DEFAULT_HTTP_TIMEOUT_NS (10ull * 1000000000ull)
/* Prometheus and curl send their request at once: a second of silence is
 * someone holding a slot. */
#define DEFAULT_HTTP_IDLE_NS (1ull * 1000000000ull)
/* `ringflow top` asks every second; an interactive session gets a minute. */
#define DEFAULT_CLIENT_IDLE_NS (60ull * 1000000000ull)
/* Room to read a configured path before checking it against sun_path. */
#define RF_DAEMON_OPS_PATH_BUF 4096

/* Writes "<run_dir>/<name>" into out; false when it does not fit. */
static bool join_path(char *out, size_t size, const char *run_dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", run_dir, name);
    return n >= 0 && (size_t)n < size;
}

void rf_ops_config_defaults(rf_ops_config *cfg, const char *run_dir)
{
    memset(cfg, 0, sizeof(*cfg));
    /* A run_dir too long for sun_path leaves the path empty; parse reports it. */
    if (!join_path(cfg->socket, sizeof(cfg->socket), run_dir, "ringflow.sock"))
        cfg->socket[0] = '\0';
    if (!join_path(cfg->admin_socket, sizeof(cfg->admin_socket), run_dir, "ringflow-admin.sock"))
        cfg->admin_socket[0] = '\0';
    cfg->prometheus_enabled = true;
    snprintf(cfg->prometheus_listen, sizeof(cfg->prometheus_listen), "%s", DEFAULT_LISTEN);
    cfg->client_buffer = DEFAULT_CLIENT_BUFFER;
    cfg->http_timeout_ns = DEFAULT_HTTP_TIMEOUT_NS;
    cfg->http_idle_timeout_ns = DEFAULT_HTTP_IDLE_NS;
    cfg->client_idle_timeout_ns = DEFAULT_CLIENT_IDLE_NS;
}

/* host:port with an IPv4 host and a port 0..65535. */
static bool valid_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || colon - s >= 16 || !colon[1])
        return false;
    char host[16];
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1)
        return false;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    return !errno && !*end && port <= 65535 && colon[1] >= '0' && colon[1] <= '9';
}

static int socket_path(const rf_cfg_node *stats, const char *key, const char *run_dir,
                       const char *file, char *out, rf_err *err)
{
    char def[RF_DAEMON_OPS_PATH_BUF];
    int n = snprintf(def, sizeof(def), "%s/%s", run_dir, file);
    if (n < 0 || (size_t)n >= sizeof(def))
        def[0] = '\0';
    char buf[RF_DAEMON_OPS_PATH_BUF];
    int rc = rf_cfg_str(stats, key, 1, def, buf, sizeof(buf), err);
    if (rc < 0)
        return rc;
    if (!buf[0] || strlen(buf) >= RF_OPS_SUN_PATH_MAX) {
        if (rf_cfg_has(stats, key))
            return rf_cfg_fail_key(stats, key, err,
                                   "socket path is %zu bytes; a Unix socket path must be at most "
                                   "%d bytes (sun_path): choose a shorter path",
                                   strlen(buf), RF_OPS_SUN_PATH_MAX - 1);
        return rf_cfg_fail_key(stats, key, err,
                               "the default path %s/%s is longer than the %d bytes a Unix socket "
                               "path may have (sun_path): set stats.%s or a shorter "
                               "engine.run_dir",
                               run_dir, file, RF_OPS_SUN_PATH_MAX - 1, key);
    }
    memcpy(out, buf, strlen(buf) + 1); /* fits: checked above */
    return 0;
}

int rf_ops_config_parse(const rf_cfg_node *root, const char *run_dir, rf_ops_config *cfg,
                        rf_err *err)
{
    rf_ops_config c;
    rf_ops_config_defaults(&c, run_dir);
    const rf_cfg_node *stats, *prom;
    int rc;
    if ((rc = rf_cfg_map(root, "stats", &stats, err)) < 0 ||
        (rc = socket_path(stats, "socket", run_dir, "ringflow.sock", c.socket, err)) < 0 ||
        (rc = socket_path(stats, "admin_socket", run_dir, "ringflow-admin.sock", c.admin_socket,
                          err)) < 0 ||
        (rc = rf_cfg_size(stats, "client_buffer", 4096, 1ull << 30, DEFAULT_CLIENT_BUFFER,
                          &c.client_buffer, err)) < 0 ||
        (rc = rf_cfg_duration(stats, "client_idle_timeout", 100000000ull, 86400000000000ull,
                              DEFAULT_CLIENT_IDLE_NS, &c.client_idle_timeout_ns, err)) < 0 ||
        (rc = rf_cfg_map(stats, "prometheus", &prom, err)) < 0 ||
        (rc = rf_cfg_bool(prom, "enabled", true, &c.prometheus_enabled, err)) < 0 ||
        (rc = rf_cfg_str(prom, "listen", 3, DEFAULT_LISTEN, c.prometheus_listen,
                         sizeof(c.prometheus_listen), err)) < 0 ||
        (rc = rf_cfg_duration(prom, "timeout", 100000000ull, 600000000000ull,
                              DEFAULT_HTTP_TIMEOUT_NS, &c.http_timeout_ns, err)) < 0 ||
        (rc = rf_cfg_duration(prom, "idle_timeout", 10000000ull, 600000000000ull,
                              DEFAULT_HTTP_IDLE_NS, &c.http_idle_timeout_ns, err)) < 0 ||
        (rc = rf_tls_config_parse(prom, &c.tls, err)) < 0 ||
        (rc = rf_auth_config_parse(prom, &c.auth, err)) < 0)
        return rc;
    if (!valid_listen(c.prometheus_listen))
        return rf_cfg_fail_key(prom, "listen", err,
                               "expected IPV4:PORT (e.g. 127.0.0.1:9273, port 0..65535), got '%s'",
                               c.prometheus_listen);
    if (!strcmp(c.socket, c.admin_socket))
        return rf_cfg_fail_key(stats, "admin_socket", err, "must differ from stats.socket (%s)",
                               c.socket);
    *cfg = c;
    return 0;
}
