/* ringflowd: loads the configuration, starts the engine, and runs the control
 * loop (signals, the ops sockets, reload) until told to stop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock/clock.h"
#include "core/config/config.h"
#include "core/log/log.h"
#include "daemon/engine.h"
#include "daemon/notify.h"
#include "daemon/tap.h"
#include "daemon/ops/ops.h"
#include "daemon/privileges.h"
#include "daemon/settings.h"
#include "rf_build_config.h"
#include "storage/promapi/promapi.h"
#if RF_HAVE_MIMALLOC
#include <mimalloc.h>
#endif

#define COMPONENT "ringflowd"

/* Exit codes: 0 clean stop, 1 runtime failure, 2 usage, 3 invalid configuration. */
enum {
    EXIT_USAGE = 2,
    EXIT_CONFIG = 3
};

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: ringflowd [OPTIONS]\n"
            "Telemetry stream-processing engine.\n"
            "\n"
            "  -c, --config FILE         run with FILE (YAML) instead of the embedded default\n"
            "      --check-config FILE   validate FILE and exit: 0 valid, 3 invalid\n"
            "      --print-default-config\n"
            "                            print the embedded default configuration and exit\n"
            "      --print-config        print the configuration (--config FILE, else the\n"
            "                            default) with its includes merged and ${VAR}s\n"
            "                            substituted, and exit\n"
            "  -h, --help                this help\n"
            "  -V, --version             version and build features\n"
            "\n"
            "Signals: SIGINT/SIGTERM drain and exit 0; SIGHUP reloads the configuration\n"
            "(validated first; a bad one is refused and the running one kept).\n");
}

/* A directory this run just created is given to engine.user (when set and
 * running as root); one that existed is left as it is and checked later. */
static int give_dir(const char *path, const rf_privileges *owner, rf_err *err)
{
    if (!owner || !owner->enabled || geteuid() != 0)
        return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return rf_err_set(err, errno, "open %s: %s", path, strerror(errno));
    int rc = 0;
    if (fchown(fd, owner->uid, owner->gid) < 0)
        rc = rf_err_set(err, errno, "chown %s to %s:%s: %s", path, owner->user, owner->group,
                        strerror(errno));
    close(fd);
    return rc;
}

static int make_dir(const char *path, mode_t mode, const rf_privileges *owner, rf_err *err)
{
    /* mkdir -p: create each missing component. */
    char buf[RF_DAEMON_PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) == 0) {
            if (give_dir(buf, owner, err) < 0)
                return -err->code;
        } else if (errno != EEXIST) {
            return rf_err_set(err, errno, "mkdir %s: %s", buf, strerror(errno));
        }
        *p = '/';
    }
    if (mkdir(buf, mode) == 0)
        return give_dir(buf, owner, err);
    if (errno != EEXIST)
        return rf_err_set(err, errno, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

/* The directory part of a path ("." when it has none). */
static void dir_of(const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
}

/* With engine.user, after rf_privileges_enter: what the user must still be
 * able to do while it runs, checked now so that it fails at start, with the
 * path, rather than at the first segment roll, retention pass, reload or
 * exit. Files inside these directories are the daemon's own business (a
 * store left by a run as root fails to open, naming the file). */
static int check_user_access(const rf_settings *s, const char *config_path, rf_err *err)
{
    const rf_privileges *p = &s->privileges;
    int rc;
    char dir[RF_DAEMON_PATH_MAX];
    if (config_path &&
        (rc = rf_privileges_check_access(p, "read the configuration file (a reload reads it again)",
                                         config_path, R_OK, err)) < 0)
        return rc;
    if ((rc = rf_privileges_check_access(p, "create files in engine.data_dir",
                                         s->daemon.engine.data_dir, W_OK | X_OK, err)) < 0 ||
        (rc = rf_privileges_check_access(p, "create files in engine.run_dir",
                                         s->daemon.engine.run_dir, W_OK | X_OK, err)) < 0)
        return rc;
    if (s->storage.enabled &&
        (rc = rf_privileges_check_access(p, "create and remove segment files in storage.dir",
                                         s->storage.dir, W_OK | X_OK, err)) < 0)
        return rc;
    dir_of(s->stats.socket, dir, sizeof(dir));
    if ((rc = rf_privileges_check_access(p, "create and remove the stats socket in", dir,
                                         W_OK | X_OK, err)) < 0)
        return rc;
    dir_of(s->stats.admin_socket, dir, sizeof(dir));
    return rf_privileges_check_access(p, "create and remove the admin socket in", dir, W_OK | X_OK,
                                      err);
}

/* Listeners warn about themselves (ingest/listen); the Prometheus endpoint is
 * bound by the ops server, so the same warning is given here. */
static void warn_if_prometheus_public(const rf_ops_config *ops)
{
    if (!ops->prometheus_enabled)
        return;
    char host[sizeof(ops->prometheus_listen)];
    snprintf(host, sizeof(host), "%s", ops->prometheus_listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127)
        return;
    rf_log_warn(COMPONENT,
                "prometheus: bound to non-loopback address %s: /metrics and /health "
                "are reachable from the network, unauthenticated",
                ops->prometheus_listen);
}

/* What the control loop shares with the ops hooks (control thread only). */
typedef struct control {
    rf_engine *engine;
    const char *config_path;
    rf_ops_config ops;        /* the ops settings the sockets were opened with */
    rf_privileges privileges; /* who it was told to run as at start */
    bool stop;                /* `shutdown` on the admin socket */
} control;

/* Appended to a failure that may come from running as engine.user. */
static const char *user_hint(const rf_privileges *p, int code, char *buf, size_t size)
{
    buf[0] = '\0';
    if (p->enabled && (code == EACCES || code == EPERM))
        snprintf(buf, size, " (ringflowd runs as user %s, group %s: that user needs access)",
                 p->user, p->group);
    return buf;
}

/* Validates and applies the configuration file; the outcome, one line, goes
 * to the log and into msg (for the admin socket's `reload`). Returns 0
 * applied, 1 applied in part, negative refused. */
/* `record start PATH [max_bytes SIZE] [max_files N]` / `record stop` on the
 * admin socket: the engine's recording tap (daemon/tap.h). The file is
 * written by the daemon, as the user it runs as. */
static int ops_record(void *ctx, bool start, const char *const *args, unsigned n_args, char *msg,
                      size_t msg_size)
{
    control *c = ctx;
    rf_err err;
    rf_err_clear(&err);
    if (!c->engine) {
        snprintf(msg, msg_size, "the engine is not running");
        return -EAGAIN;
    }
    if (!start) {
        if (n_args) {
            snprintf(msg, msg_size, "usage: record stop");
            return -EINVAL;
        }
        rf_tap_stats st;
        int rc = rf_engine_record_stop(c->engine, &st, &err);
        if (rc < 0 && rc != -EIO) {
            snprintf(msg, msg_size, "%s", err.msg);
            return rc;
        }
        snprintf(msg, msg_size,
                 "recording stopped: %lu records in %u file(s), %lu bytes; not recorded: %lu "
                 "(ring full) %lu (too large); write errors: %lu%s%s",
                 (unsigned long)st.written, st.files, (unsigned long)st.file_bytes,
                 (unsigned long)st.dropped_full, (unsigned long)st.dropped_large,
                 (unsigned long)st.write_errors, rc < 0 ? ": " : "", rc < 0 ? err.msg : "");
        return rc;
    }
    if (n_args < 1 || n_args % 2 == 0) {
        snprintf(msg, msg_size, "usage: record start PATH [max_bytes SIZE] [max_files N]");
        return -EINVAL;
    }
    rf_tap_options opt = {.path = args[0]};
    for (unsigned i = 1; i + 1 < n_args; i += 2) {
        char *end = NULL;
        unsigned long long v = strtoull(args[i + 1], &end, 10);
        /* Sizes take the configuration's suffixes too (64MiB). */
        uint64_t size;
        if (strcmp(args[i], "max_bytes") == 0 && rf_cfg_parse_size(args[i + 1], &size) == 0) {
            opt.max_bytes = size;
        } else if (strcmp(args[i], "max_files") == 0 && end && !*end && v <= UINT32_MAX) {
            opt.max_files = (uint32_t)v;
        } else {
            snprintf(msg, msg_size,
                     "record start: bad option '%s %s' (max_bytes SIZE, max_files N)", args[i],
                     args[i + 1]);
            return -EINVAL;
        }
    }
    int rc = rf_engine_record_start(c->engine, &opt, &err);
    if (rc < 0) {
        char hint[256];
        snprintf(msg, msg_size, "%s%s", err.msg,
                 user_hint(&c->privileges, err.code, hint, sizeof(hint)));
        return rc;
    }
    snprintf(msg, msg_size, "recording to %s", opt.path);
    return 0;
}

/* Every 10 s, a warning naming each kind of loss that grew, so an operator
 * reading the log learns of drops without polling the stats socket. */
#define DROP_REPORT_NS (10 * RF_NS_PER_S)

static void report_drops(rf_engine *engine, rf_engine_drops *last)
{
    rf_engine_drops now;
    rf_engine_drops_read(engine, &now);
    char msg[512];
    size_t len = 0;
#define DROP(field, what)                                                                          \
    if (now.field > last->field && len < sizeof(msg))                                              \
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, " %s=%lu", what,                     \
                                (unsigned long)(now.field - last->field));
    DROP(kernel, "kernel_receive_queue")
    DROP(rejected_lines, "rejected_lines")
    DROP(ring_full, "ring_full")
    DROP(unknown_series, "unknown_series")
    DROP(cardinality, "cardinality_limit")
    DROP(unrouted, "unrouted")
    DROP(store, "storage_refused")
    DROP(sinks, "sink_drops")
    DROP(dpdk, "dpdk_frames")
#undef DROP
    if (len)
        rf_log_warn(COMPONENT, "in the last 10 s, lost or refused:%s (details: ringflow stat)",
                    msg);
    *last = now;
}

static int reload_and_log(control *ctl, char *msg, size_t msg_size);

/* The service manager sees the reload from start to end (daemon/notify.h). */
static int reload(control *ctl, char *msg, size_t msg_size)
{
    rf_notify_reloading();
    int rc = reload_and_log(ctl, msg, msg_size);
    rf_notify_ready(msg);
    return rc;
}

static int reload_and_log(control *ctl, char *msg, size_t msg_size)
{
    rf_settings *next = calloc(1, sizeof(*next));
    rf_err err;
    rf_err_clear(&err);
    if (!next) {
        snprintf(msg, msg_size, "reload refused: out of memory; the running configuration stays");
        rf_log_error(COMPONENT, "%s", msg);
        return -ENOMEM;
    }
    char hint[256];
    int rc = rf_settings_load(ctl->config_path, next, &err);
    if (rc < 0) {
        snprintf(msg, msg_size, "reload refused, the running configuration stays: %s%s", err.msg,
                 user_hint(&ctl->privileges, err.code, hint, sizeof(hint)));
        rf_log_error(COMPONENT, "%s", msg);
        free(next);
        return rc;
    }
    /* /metrics' certificate and credentials are read again first: one that
     * does not load refuses the reload, the running ones stay. */
    if ((rc = rf_ops_server_reload_security(&next->stats, &err)) < 0) {
        snprintf(msg, msg_size, "reload refused, the running configuration stays: %s", err.msg);
        rf_log_error(COMPONENT, "%s", msg);
        rf_settings_release(next);
        free(next);
        return rc;
    }
    rc = rf_engine_reload(ctl->engine, next, &err);
    if (rc >= 0) {
        /* Listeners it added get their /metrics series now. */
        rf_err verr;
        rf_err_clear(&verr);
        if (rf_engine_views_listeners_changed(ctl->engine, &verr) < 0)
            rf_log_warn(COMPONENT, "after the reload: %s (show listeners still has them)",
                        verr.msg);
    }
    /* The ops sockets stay where they are until a restart: say so. */
    if (rc >= 0 && memcmp(&next->stats, &ctl->ops, sizeof(ctl->ops)) != 0) {
        size_t l = strlen(err.msg);
        snprintf(err.msg + l, sizeof(err.msg) - l,
                 "%sstats.* (sockets, prometheus) need a restart "
                 "and were left as they are",
                 rc > 0 ? "; " : "");
        rc = 1;
    }
    /* Privileges were given up at start; a new user takes a restart. */
    const rf_privileges *was = &ctl->privileges, *now = &next->privileges;
    if (rc >= 0 && (was->enabled != now->enabled || was->uid != now->uid || was->gid != now->gid)) {
        size_t l = strlen(err.msg);
        snprintf(err.msg + l, sizeof(err.msg) - l,
                 "%sengine.user/group need a restart and were "
                 "left as they are",
                 rc > 0 ? "; " : "");
        rc = 1;
    }
    if (rc > 0) {
        snprintf(msg, msg_size, "reload applied in part from %s: %s", next->source, err.msg);
        rf_log_warn(COMPONENT, "%s", msg);
    } else if (rc == 0) {
        snprintf(msg, msg_size, "reload applied from %s", next->source);
        rf_log_info(COMPONENT, "%s", msg);
    } else {
        snprintf(msg, msg_size, "reload failed: %s%s", err.msg,
                 user_hint(&ctl->privileges, err.code, hint, sizeof(hint)));
        rf_log_error(COMPONENT, "%s", msg);
    }
    rf_settings_release(next);
    free(next);
    return rc;
}

static int ops_reload(void *ctx, char *msg, size_t msg_size)
{
    return reload(ctx, msg, msg_size);
}

static void ops_shutdown(void *ctx)
{
    control *ctl = ctx;
    rf_log_info(COMPONENT, "shutdown requested on the admin socket: draining and stopping");
    ctl->stop = true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"print-default-config", no_argument, NULL, 'p'},
        {"print-config", no_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *check_path = NULL;
    bool print_config = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'k': check_path = optarg; break;
        case 'p': fputs(rf_daemon_default_config_text(), stdout); return 0;
        case 'P': print_config = true; break;
        case 'h': usage(stdout); return 0;
        case 'V':
            printf("ringflowd %s\n", RF_VERSION);
            printf("dpdk: %s\n", RF_HAVE_DPDK ? "built in" : "not built");
#if RF_HAVE_MIMALLOC
            /* Calling into mimalloc also keeps it linked (as-needed linking
             * would otherwise drop a library whose only role is to override
             * malloc). */
            printf("allocator: mimalloc %d\n", mi_version());
#else
            printf("allocator: libc\n");
#endif
            return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ringflowd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    static rf_settings settings;
    rf_err err;
    rf_err_clear(&err);
    if (print_config) {
        if (rf_daemon_config_print(config_path, stdout, &err) < 0) {
            fprintf(stderr, "ringflowd: %s\n", err.msg);
            return EXIT_CONFIG;
        }
        return 0;
    }
    if (check_path) {
        if (rf_settings_load(check_path, &settings, &err) < 0) {
            fprintf(stderr, "ringflowd: %s\n", err.msg);
            return EXIT_CONFIG;
        }
        printf("%s: configuration is valid\n", check_path);
        rf_settings_release(&settings);
        return 0;
    }
    if (rf_settings_load(config_path, &settings, &err) < 0) {
        fprintf(stderr, "ringflowd: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    rf_log_set_level(settings.daemon.log.level);
    rf_log_set_format(settings.daemon.log.format);
    /* log.file is opened now, before engine.user gives root up; under
     * systemd without one, records take the journal's format. */
    if (settings.daemon.log.file[0]) {
        if (rf_log_open_file(settings.daemon.log.file, &err) < 0) {
            fprintf(stderr, "ringflowd: %s\n", err.msg);
            return 1;
        }
    } else if (rf_log_stderr_is_journal()) {
        rf_log_set_journal(true);
    }

    /* Created as root (and given to engine.user when set): a store outside
     * data_dir too, so that the user can create it even where only root
     * may create directories. */
    const rf_privileges *priv = &settings.privileges;
    if (make_dir(settings.daemon.engine.data_dir, 0755, priv, &err) < 0 ||
        make_dir(settings.daemon.engine.run_dir, 0755, priv, &err) < 0 ||
        (priv->enabled && settings.storage.enabled &&
         make_dir(settings.storage.dir, 0755, priv, &err) < 0)) {
        rf_log_error(COMPONENT, "%s", err.msg);
        return 1;
    }

    /* Signals are taken synchronously through a signalfd by this (control)
     * thread; blocking them first means every thread started later inherits
     * the mask and none is interrupted. Every catchable signal whose default
     * would end or stop the process is taken, not only the ones used (SIGINT,
     * SIGTERM and SIGQUIT stop, SIGHUP reloads, SIGUSR1 reopens the log): a
     * stray SIGUSR2 or real-time signal would otherwise kill the daemon with
     * its points in memory and its sockets left behind. Left alone: the
     * ones a fault raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS,
     * SIGTRAP: blocking them does not stop the kernel's kill, only hides
     * why), job control, and those ignored by default. SIGXFSZ blocked
     * turns a write past the file size limit into EFBIG, a write error the
     * store reports. */
    sigset_t mask;
    sigfillset(&mask);
    static const int untouched[] = {SIGKILL, SIGSTOP, SIGSEGV,  SIGBUS,  SIGFPE,  SIGILL,
                                    SIGABRT, SIGSYS,  SIGTRAP,  SIGTSTP, SIGTTIN, SIGTTOU,
                                    SIGCONT, SIGCHLD, SIGWINCH, SIGURG};
    for (size_t i = 0; i < sizeof(untouched) / sizeof(untouched[0]); i++)
        sigdelset(&mask, untouched[i]);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        rf_log_error(COMPONENT, "signalfd: %s", strerror(errno));
        return 1;
    }

    /* engine.user, step 1 (daemon/privileges.h): from here on the process
     * is the user, with only the capabilities binding needs, so everything
     * created from here (sockets, store, sink files) belongs to the user. */
    if (priv->enabled) {
        if (rf_privileges_enter(priv, &err) < 0 ||
            check_user_access(&settings, config_path, &err) < 0) {
            rf_log_error(COMPONENT, "start failed: %s", err.msg);
            close(sfd);
            return 1;
        }
    }

    /* The ops sockets first: if another ringflowd answers on them, this one
     * must not start anything. */
    static control ctl;
    ctl.config_path = config_path;
    ctl.ops = settings.stats;
    ctl.privileges = settings.privileges;
    const rf_ops_hooks hooks = {.reload = ops_reload,
                                .shutdown = ops_shutdown,
                                .record = ops_record,
                                .ctx = &ctl,
                                .owner_uid = geteuid()};
    rf_ops_server *ops = NULL;
    if (rf_ops_server_start(&settings.stats, &hooks, &ops, &err) < 0) {
        rf_log_error(COMPONENT, "start failed: %s", err.msg);
        close(sfd);
        return 1;
    }
    warn_if_prometheus_public(&settings.stats);

    /* The Prometheus query API: its own thread reads the store; the http
     * listeners' fronts, made from here on, route its paths to it. */
    if (settings.storage.enabled) {
        rf_promapi_config pc = {.store_dir = settings.storage.dir,
                                .query_timeout_ms = settings.storage.query.timeout_ns / 1000000,
                                .max_samples = settings.storage.query.max_samples,
                                .max_series = settings.storage.query.max_series,
                                .index_memory = settings.storage.query.index_memory};
        if (rf_promapi_start(&pc, &err) < 0)
            rf_log_warn(COMPONENT, "no query API: %s", err.msg);
    }
    rf_engine *engine = NULL;
    if (rf_engine_start(&settings, &engine, &err) < 0) {
        char hint[256];
        rf_log_error(COMPONENT, "start failed: %s%s", err.msg,
                     user_hint(priv, err.code, hint, sizeof(hint)));
        rf_ops_server_stop(ops);
        close(sfd);
        return 1;
    }
    /* Queries see what the workers hold in memory from now on; the query
     * thread runs beside the pinned workers, not on their cores. */
    rf_promapi_attach_store(rf_engine_store(engine));
    {
        int cpus[RF_DAEMON_MAX_WORKERS];
        const uint32_t nw = rf_engine_workers(engine);
        for (uint32_t i = 0; i < nw && i < RF_DAEMON_MAX_WORKERS; i++)
            cpus[i] = rf_engine_worker_cpu(engine, i);
        rf_promapi_avoid_cpus(cpus, nw < RF_DAEMON_MAX_WORKERS ? nw : RF_DAEMON_MAX_WORKERS);
    }
    /* engine.user, step 2: every thread runs now; all of them give up the
     * rest, and each one is checked. */
    if (priv->enabled) {
        char who[512];
        if (rf_privileges_drop(priv, who, sizeof(who), &err) < 0) {
            rf_log_error(COMPONENT, "start failed: %s", err.msg);
            rf_ops_server_stop(ops);
            rf_promapi_attach_store(NULL);
            rf_engine_stop(engine);
            close(sfd);
            return 1;
        }
        rf_log_info(COMPONENT, "%s", who);
    } else if (geteuid() == 0) {
        rf_log_info(COMPONENT, "running as root: set engine.user to give root up once bound");
    }
    ctl.engine = engine;
    if (rf_ops_engine_attach(engine, settings.source, &err) < 0)
        rf_log_warn(COMPONENT, "stats views incomplete: %s", err.msg);
    if (rf_engine_views_register(engine, &err) < 0)
        rf_log_warn(COMPONENT, "stats views incomplete: %s", err.msg);
    rf_log_info(COMPONENT, "running: version=%s config=%s workers=%u data_dir=%s run_dir=%s pid=%d",
                RF_VERSION, settings.source, rf_engine_workers(engine),
                settings.daemon.engine.data_dir, settings.daemon.engine.run_dir, (int)getpid());
    rf_notify_init();
    rf_notify_ready("running");

    /* The control loop: signals and the ops sockets, and once a second the
     * counter sample behind the rates the stats socket shows. */
    int exit_code = 0;
    int64_t next_sample = rf_clock_mono_ns() + RF_NS_PER_S;
    int64_t next_drop_report = rf_clock_mono_ns() + DROP_REPORT_NS;
    rf_engine_drops drops_seen;
    rf_engine_drops_read(engine, &drops_seen);
    while (!ctl.stop) {
        struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
                                {.fd = rf_ops_server_fd(ops), .events = POLLIN}};
        int64_t now = rf_clock_mono_ns();
        int timeout_ms = next_sample > now ? (int)((next_sample - now) / RF_NS_PER_MS) + 1 : 0;
        int n = poll(pfd, 2, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rf_log_error(COMPONENT, "poll: %s", strerror(errno));
            exit_code = 1;
            break;
        }
        now = rf_clock_mono_ns();
        rf_notify_watchdog(now);
        bool tick = now >= next_sample;
        if (tick) {
            rf_ops_engine_sample(now);
            next_sample = now + RF_NS_PER_S;
            /* Listeners a reload removed that closed after it returned. */
            rf_engine_reap_inputs(engine);
        }
        if (now >= next_drop_report) {
            report_drops(engine, &drops_seen);
            next_drop_report = now + DROP_REPORT_NS;
        }
        /* On every tick too, so the ops server's timeouts run when its
         * sockets are quiet. */
        if ((pfd[1].revents & POLLIN) || tick)
            rf_ops_server_run(ops, 0);
        if (!(pfd[0].revents & POLLIN))
            continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        if (si.ssi_signo == SIGHUP) {
            rf_log_info(COMPONENT, "SIGHUP: reloading %s", settings.source);
            char msg[RF_ERR_MSG_MAX + 256];
            reload(&ctl, msg, sizeof(msg));
            continue;
        }
        if (si.ssi_signo == SIGPIPE)
            continue;
        if (si.ssi_signo == SIGUSR1) {
            /* logrotate's (the packaging's postrotate): the log.file path
             * is opened again, so records go to the new file. Without
             * log.file the log goes to stderr, whose target is whoever
             * started the daemon's: nothing to reopen. */
            if (!rf_log_file()[0]) {
                rf_log_info(COMPONENT, "SIGUSR1: the log goes to stderr, which is not reopened; "
                                       "nothing to do");
                continue;
            }
            rf_err lerr;
            rf_err_clear(&lerr);
            if (rf_log_reopen(&lerr) < 0)
                rf_log_error(COMPONENT,
                             "SIGUSR1: reopening the log file %s: %s (records keep "
                             "going to the old file)",
                             rf_log_file(), lerr.msg);
            else
                rf_log_info(COMPONENT, "SIGUSR1: log file %s reopened", rf_log_file());
            continue;
        }
        if (si.ssi_signo != SIGINT && si.ssi_signo != SIGTERM && si.ssi_signo != SIGQUIT) {
            rf_log_warn(COMPONENT, "signal %d (%s) ignored (from pid %u)", (int)si.ssi_signo,
                        strsignal((int)si.ssi_signo), si.ssi_pid);
            continue;
        }
        rf_log_info(COMPONENT, "%s: draining and stopping", strsignal((int)si.ssi_signo));
        break;
    }

    /* The ops sockets close first (their views read the engine), then the
     * engine drains. */
    rf_notify_stopping();
    report_drops(engine, &drops_seen);
    rf_ops_server_stop(ops);
    rf_engine_views_unregister();
    rf_ops_engine_detach();
    rf_promapi_attach_store(NULL); /* before the workers stop serving head reads */
    rf_engine_stop(engine);
    rf_promapi_stop();
    close(sfd);
    rf_log_info(COMPONENT, "stopped");
    rf_settings_release(&settings);
    return exit_code;
}
