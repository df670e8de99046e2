/* The daemon's `engine:` and `log:` sections, read with core/config's typed
 * accessors; limits here are the ones documented in default_config.yaml. */
#include "daemon/daemon_config.h"

#include <string.h>

#include "numa/numa.h"

/* Generated from default_config.yaml by scripts/embed_text.py. */
extern const char rf_daemon_default_config_yaml[];
extern const size_t rf_daemon_default_config_yaml_len;

/* Indexed by the enum value, so the accessor's index is the value. */
static const char *const full_policy_names[] = {
    [RF_RING_BLOCK] = "block",
    [RF_RING_DROP_NEWEST] = "drop_newest",
};
static const char *const log_level_names[] = {
    [RF_LOG_DEBUG] = "debug",
    [RF_LOG_INFO] = "info",
    [RF_LOG_WARN] = "warn",
    [RF_LOG_ERROR] = "error",
};
static const char *const log_format_names[] = {
    [RF_LOG_TEXT] = "text",
    [RF_LOG_JSON] = "json",
};
#define N(a) (sizeof(a) / sizeof((a)[0]))

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

void rf_daemon_config_defaults(rf_daemon_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->engine.workers = 2;
    cfg->engine.pin_workers = true;
    strcpy(cfg->engine.data_dir, "./data");
    strcpy(cfg->engine.run_dir, "./run");
    cfg->engine.memory_limit_auto = true;
    cfg->engine.ring.capacity = 65536;
    cfg->engine.ring.full_policy = RF_RING_BLOCK;
    cfg->engine.idle.spin = 2000;
    cfg->engine.idle.yield = 100;
    cfg->engine.idle.sleep_max_ns = 1000 * NS_PER_MS;
    cfg->engine.idle.adaptive = true;
    cfg->log.level = RF_LOG_INFO;
    cfg->log.format = RF_LOG_TEXT;
}

/* Every CPU in engine.cpus must be online on this machine: the engine pins
 * its workers to them at start and numa/'s placement refuses an offline one,
 * but only after the listeners are bound. Checking here makes --check-config
 * and a reload refuse the file, with the place of the bad id, instead.
 * The online set is numa/'s (the same sysfs files the placement reads). */
static int check_cpus_online(const rf_cfg_node *cpus, const rf_daemon_config *c, rf_err *err)
{
    rf_numa_topology topo; /* ~9 KiB, control thread only */
    rf_err sub = {0};
    if (rf_numa_topology_load(NULL, &topo, &sub) < 0)
        return rf_cfg_fail(cpus, err,
                           "cannot read this machine's online CPUs to check the list: %s", sub.msg);
    for (uint32_t i = 0; i < c->engine.n_cpus; i++) {
        unsigned cpu = c->engine.cpus[i];
        if (rf_numa_cpuset_has(&topo.online, cpu))
            continue;
        char online[256];
        rf_numa_cpulist_format(&topo.online, online, sizeof(online));
        return rf_cfg_fail(rf_cfg_seq_at(cpus, i), err,
                           "CPU %u is not online on this machine (online CPUs: %s)", cpu, online);
    }
    return 0;
}

static int parse_cpus(const rf_cfg_node *engine, rf_daemon_config *c, rf_err *err)
{
    const rf_cfg_node *cpus;
    int rc = rf_cfg_seq(engine, "cpus", 0, RF_DAEMON_MAX_WORKERS, &cpus, err);
    if (rc < 0)
        return rc;
    size_t n = rf_cfg_seq_len(cpus);
    if (n != 0 && n != c->engine.workers)
        return rf_cfg_fail(cpus, err, "expected one CPU id per worker (%u), got %zu",
                           c->engine.workers, n);
    for (size_t i = 0; i < n; i++) {
        uint32_t cpu;
        const rf_cfg_node *item = rf_cfg_seq_at(cpus, i);
        if ((rc = rf_cfg_node_u32(item, 0, RF_DAEMON_MAX_CPU, &cpu, err)) < 0)
            return rc;
        /* Two workers on one CPU would take turns, halving both. */
        for (size_t j = 0; j < i; j++)
            if (c->engine.cpus[j] == cpu)
                return rf_cfg_fail(item, err, "CPU %u is already given to worker %zu", cpu, j);
        c->engine.cpus[i] = (uint16_t)cpu;
    }
    c->engine.n_cpus = (uint32_t)n;
    return n && c->engine.pin_workers ? check_cpus_online(cpus, c, err) : 0;
}

/* A size, or `auto` (also when left out): the host's share is computed by
 * rf_settings_load (daemon/memory_budget.h), where the host is known. */
static int parse_memory_limit(const rf_cfg_node *engine, rf_daemon_config *c, rf_err *err)
{
    const rf_cfg_node *v = rf_cfg_get(engine, "memory_limit");
    const char *text = v ? rf_cfg_scalar(v) : NULL;
    c->engine.memory_limit = 0;
    c->engine.memory_limit_auto = !v || (text && strcmp(text, "auto") == 0);
    if (c->engine.memory_limit_auto)
        return 0;
    return rf_cfg_size(engine, "memory_limit", 0, 1ull << 50, 0, &c->engine.memory_limit, err);
}

static int parse_engine(const rf_cfg_node *root, rf_daemon_config *c, rf_err *err)
{
    const rf_cfg_node *engine, *ring, *idle;
    uint64_t capacity;
    int policy, rc;
    if ((rc = rf_cfg_map(root, "engine", &engine, err)) < 0 ||
        (rc = rf_cfg_u32(engine, "workers", 1, RF_DAEMON_MAX_WORKERS, 2, &c->engine.workers, err)) <
            0 ||
        (rc = rf_cfg_bool(engine, "pin_workers", true, &c->engine.pin_workers, err)) < 0 ||
        (rc = parse_cpus(engine, c, err)) < 0 ||
        (rc = rf_cfg_str(engine, "data_dir", 1, "./data", c->engine.data_dir,
                         sizeof(c->engine.data_dir), err)) < 0 ||
        (rc = rf_cfg_str(engine, "run_dir", 1, "./run", c->engine.run_dir,
                         sizeof(c->engine.run_dir), err)) < 0 ||
        (rc = rf_cfg_str(engine, "user", 0, "", c->engine.user, sizeof(c->engine.user), err)) < 0 ||
        (rc = rf_cfg_str(engine, "group", 0, "", c->engine.group, sizeof(c->engine.group), err)) <
            0 ||
        (rc = parse_memory_limit(engine, c, err)) < 0)
        return rc;

    if ((rc = rf_cfg_map(engine, "ring", &ring, err)) < 0 ||
        (rc = rf_cfg_u64_pow2(ring, "capacity", 64, 16777216, 65536, &capacity, err)) < 0 ||
        (rc = rf_cfg_enum(ring, "full_policy", full_policy_names, N(full_policy_names),
                          RF_RING_BLOCK, &policy, err)) < 0)
        return rc;
    c->engine.ring.capacity = (uint32_t)capacity;
    c->engine.ring.full_policy = (enum rf_ring_full_policy)policy;

    if ((rc = rf_cfg_map(engine, "idle", &idle, err)) < 0 ||
        (rc = rf_cfg_u32(idle, "spin", 0, 1000000, 2000, &c->engine.idle.spin, err)) < 0 ||
        (rc = rf_cfg_u32(idle, "yield", 0, 100000, 100, &c->engine.idle.yield, err)) < 0 ||
        (rc = rf_cfg_duration(idle, "sleep", 10 * NS_PER_US, 1 * NS_PER_S, 1000 * NS_PER_MS,
                              &c->engine.idle.sleep_max_ns, err)) < 0 ||
        (rc = rf_cfg_bool(idle, "adaptive", true, &c->engine.idle.adaptive, err)) < 0)
        return rc;
    return 0;
}

static int parse_log(const rf_cfg_node *root, rf_daemon_config *c, rf_err *err)
{
    const rf_cfg_node *sec;
    int level, format, rc;
    if ((rc = rf_cfg_map(root, "log", &sec, err)) < 0 ||
        (rc = rf_cfg_enum(sec, "level", log_level_names, N(log_level_names), RF_LOG_INFO, &level,
                          err)) < 0 ||
        (rc = rf_cfg_enum(sec, "format", log_format_names, N(log_format_names), RF_LOG_TEXT,
                          &format, err)) < 0 ||
        (rc = rf_cfg_str(sec, "file", 0, "", c->log.file, sizeof(c->log.file), err)) < 0)
        return rc;
    c->log.level = (enum rf_log_level)level;
    c->log.format = (enum rf_log_format)format;
    return 0;
}

int rf_daemon_config_parse(const rf_cfg_doc *doc, rf_daemon_config *cfg, rf_err *err)
{
    /* Parsed aside and committed whole: a failed reload changes nothing. */
    rf_daemon_config c;
    rf_daemon_config_defaults(&c);
    const rf_cfg_node *root = rf_cfg_root(doc);
    int rc;
    if ((rc = parse_engine(root, &c, err)) < 0 || (rc = parse_log(root, &c, err)) < 0)
        return rc;
    *cfg = c;
    return 0;
}

int rf_daemon_config_load(const char *path, rf_daemon_config *cfg, rf_cfg_doc **doc_out,
                          rf_err *err)
{
    rf_cfg_doc *doc;
    int rc =
        path ? rf_cfg_load_file(path, &doc, err)
             : rf_cfg_load_string(rf_daemon_default_config_yaml, rf_daemon_default_config_yaml_len,
                                  RF_DAEMON_DEFAULT_SOURCE, &doc, err);
    if (rc < 0)
        return rc;
    if ((rc = rf_daemon_config_parse(doc, cfg, err)) < 0) {
        rf_cfg_free(doc);
        return rc;
    }
    *doc_out = doc;
    return 0;
}

int rf_daemon_config_print(const char *path, FILE *out, rf_err *err)
{
    rf_cfg_doc *doc;
    int rc =
        path ? rf_cfg_load_file(path, &doc, err)
             : rf_cfg_load_string(rf_daemon_default_config_yaml, rf_daemon_default_config_yaml_len,
                                  RF_DAEMON_DEFAULT_SOURCE, &doc, err);
    if (rc < 0)
        return rc;
    fprintf(out, "# %s as ringflowd reads it: includes merged, environment variables substituted\n",
            path ? path : RF_DAEMON_DEFAULT_SOURCE);
    rc = rf_cfg_write(doc, out, err);
    rf_cfg_free(doc);
    return rc;
}

const char *rf_daemon_default_config_text(void)
{
    return rf_daemon_default_config_yaml;
}
