/* Giving up root after binding: names resolved at load, then the two steps
 * described in privileges.h. Raw prctl/capset calls: nothing here needs
 * libcap. */
#include "daemon/privileges.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- resolving names ------------------------------------------------------ */

static int fail_at(const rf_cfg_node *node, const char *key, rf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(const rf_cfg_node *node, const char *key, rf_err *err, const char *fmt, ...)
{
    char problem[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    if (node)
        return rf_cfg_fail(node, err, "%s", problem);
    return rf_err_set(err, EINVAL, "engine.%s: %s", key, problem);
}

/* A decimal id, below (uid_t)-1 which means "unchanged" to the kernel. */
static bool parse_id(const char *s, uint32_t *out)
{
    if (!*s)
        return false;
    for (const char *c = s; *c; c++)
        if (!isdigit((unsigned char)*c))
            return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v >= UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* getpwnam_r / getpwuid_r with a buffer that grows: 0 found, 1 no such
 * entry, negative errno. The strings live in *buf (free it). */
static int lookup_user(const char *name, uid_t uid, struct passwd *pw, char **buf)
{
    size_t size = 4096;
    for (;;) {
        char *b = realloc(*buf, size);
        if (!b)
            return -ENOMEM;
        *buf = b;
        struct passwd *res = NULL;
        int rc = name ? getpwnam_r(name, pw, b, size, &res) : getpwuid_r(uid, pw, b, size, &res);
        if (rc == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
            return res ? 0 : 1;
        return -rc;
    }
}

static int lookup_group(const char *name, gid_t gid, struct group *gr, char **buf)
{
    size_t size = 4096;
    for (;;) {
        char *b = realloc(*buf, size);
        if (!b)
            return -ENOMEM;
        *buf = b;
        struct group *res = NULL;
        int rc = name ? getgrnam_r(name, gr, b, size, &res) : getgrgid_r(gid, gr, b, size, &res);
        if (rc == ERANGE && size < (1u << 20)) {
            size *= 2;
            continue;
        }
        if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM)
            return res ? 0 : 1;
        return -rc;
    }
}

int rf_privileges_resolve(const rf_cfg_node *engine, const char *user, const char *group,
                          rf_privileges *out, rf_err *err)
{
    rf_privileges p;
    memset(&p, 0, sizeof(p));
    const rf_cfg_node *un = engine ? rf_cfg_get(engine, "user") : NULL;
    const rf_cfg_node *gn = engine ? rf_cfg_get(engine, "group") : NULL;
    if (!user[0]) {
        if (group[0])
            return fail_at(gn, "group", err,
                           "'%s' without engine.user: set the user too (a group alone would "
                           "leave ringflowd running as root)",
                           group);
        *out = p;
        return 0;
    }

    char *buf = NULL;
    struct passwd pw;
    bool have_pw = false;
    uint32_t id;
    int rc;
    if (parse_id(user, &id)) {
        rc = lookup_user(NULL, (uid_t)id, &pw, &buf);
        p.uid = (uid_t)id;
    } else {
        rc = lookup_user(user, 0, &pw, &buf);
        if (rc == 1) {
            free(buf);
            return fail_at(un, "user", err,
                           "unknown user '%s' (no such entry in the passwd "
                           "database of this host)",
                           user);
        }
    }
    if (rc < 0) {
        free(buf);
        return fail_at(un, "user", err, "looking up '%s': %s", user, strerror(-rc));
    }
    if (rc == 0) {
        have_pw = true;
        p.uid = pw.pw_uid;
        snprintf(p.user, sizeof(p.user), "%s", pw.pw_name);
    } else {
        snprintf(p.user, sizeof(p.user), "%s", user);
    }
    if (p.uid == 0) {
        free(buf);
        return fail_at(un, "user", err,
                       "'%s' is root (uid 0): nothing would be given up; leave "
                       "engine.user empty to keep running as the user who starts ringflowd",
                       user);
    }
    gid_t primary = have_pw ? pw.pw_gid : (gid_t)-1;
    char pw_name[RF_PRIV_NAME_MAX];
    snprintf(pw_name, sizeof(pw_name), "%s", have_pw ? pw.pw_name : "");

    struct group gr;
    if (group[0]) {
        if (parse_id(group, &id)) {
            p.gid = (gid_t)id;
            rc = lookup_group(NULL, p.gid, &gr, &buf);
        } else {
            rc = lookup_group(group, 0, &gr, &buf);
            if (rc == 1) {
                free(buf);
                return fail_at(gn, "group", err,
                               "unknown group '%s' (no such entry in the group "
                               "database of this host)",
                               group);
            }
        }
    } else if (have_pw) {
        p.gid = primary;
        rc = lookup_group(NULL, p.gid, &gr, &buf);
    } else {
        free(buf);
        return fail_at(un, "user", err,
                       "uid %s has no passwd entry, so it has no primary group: "
                       "set engine.group too",
                       user);
    }
    if (rc < 0) {
        free(buf);
        return fail_at(gn ? gn : un, gn ? "group" : "user", err, "looking up group '%s': %s",
                       group[0] ? group : "(primary)", strerror(-rc));
    }
    if (rc == 0) {
        p.gid = gr.gr_gid;
        snprintf(p.group, sizeof(p.group), "%s", gr.gr_name);
    } else {
        snprintf(p.group, sizeof(p.group), "%u", (unsigned)p.gid);
    }
    free(buf);
    if (p.gid == 0)
        return fail_at(gn ? gn : un, gn ? "group" : "user", err,
                       "group '%s' is gid 0 (root's group): choose an unprivileged group", p.group);

    /* Supplementary groups: the user's own, as login(1) and systemd's User=
     * would give them; a uid without a passwd entry gets only its group. */
    if (pw_name[0]) {
        int n = RF_PRIV_MAX_GROUPS;
        if (getgrouplist(pw_name, p.gid, p.groups, &n) < 0) {
            return fail_at(un, "user", err, "user '%s' is in %d groups; at most %d are supported",
                           pw_name, n, RF_PRIV_MAX_GROUPS);
        }
        p.n_groups = (uint32_t)n;
    } else {
        p.groups[0] = p.gid;
        p.n_groups = 1;
    }
    p.enabled = true;
    *out = p;
    return 0;
}

/* ---- the two steps -------------------------------------------------------- */

static enum {
    PRIV_NONE,
    PRIV_SAME_USER,
    PRIV_ENTERED
} g_state;
static bool g_bounding_dropped;

static unsigned count_threads(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int capset_keep(uint64_t mask)
{
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof(data));
    for (unsigned i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
        data[i].permitted = (uint32_t)(mask >> (32 * i));
        data[i].effective = data[i].permitted;
    }
    return (int)syscall(SYS_capset, &hdr, data);
}

#define CAP_BIT(c) (1ull << (c))

/* The leak checker at exit attaches to the process with ptrace, which a
 * process that changed its uids (no longer dumpable) refuses, and the run
 * then ends in "LeakSanitizer has encountered a fatal error" (exit by
 * abort). Sanitizer builds only: a production build stays not dumpable. */
static void dumpable_for_sanitizers(void)
{
#if defined(__SANITIZE_ADDRESS__)
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
}

#if defined(__SANITIZE_ADDRESS__)
/* A start that fails between rf_privileges_enter and rf_privileges_drop
 * exits with the saved uid still 0, and the leak checker's tracer (same
 * uids, no CAP_SYS_PTRACE) may not attach to a process whose saved uid
 * differs from its own. Sanitizer builds finish the drop at exit (atexit
 * runs this before the checker's own handler, registered at start-up). */
static uid_t g_exit_uid;
static void drop_fully_at_exit(void)
{
    if (setresuid(g_exit_uid, g_exit_uid, g_exit_uid) == 0)
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}
#endif

int rf_privileges_enter(const rf_privileges *p, rf_err *err)
{
    if (!p->enabled)
        return 1;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0)
        return rf_err_set(err, errno, "engine.user: getresuid: %s", strerror(errno));
    if (eu != 0) {
        if (ru == p->uid && eu == p->uid && su == p->uid && rg == p->gid && eg == p->gid &&
            sg == p->gid) {
            g_state = PRIV_SAME_USER;
            return 1;
        }
        return rf_err_set(err, EPERM,
                          "engine.user: switching to user %s (uid %u) needs root; "
                          "ringflowd was started as uid %u: start it as root, or leave "
                          "engine.user empty",
                          p->user, (unsigned)p->uid, (unsigned)eu);
    }
    /* Capabilities are per thread: every thread must be started after this
     * (they inherit it), or it would keep root's. */
    unsigned threads = count_threads();
    if (threads != 1)
        return rf_err_set(err, EBUSY,
                          "engine.user: %u threads already run; privileges can only "
                          "be given up while ringflowd is single-threaded",
                          threads);

    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return rf_err_set(err, errno, "engine.user: clearing the ambient capabilities: %s",
                          strerror(errno));
    /* The bounding set only limits what an execve could gain, and
     * no_new_privs below already forbids that; without CAP_SETPCAP (some
     * containers) it stays as it is, and the log says so. */
    g_bounding_dropped = true;
    for (unsigned long cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
            break; /* EINVAL: past the last capability this kernel knows */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            g_bounding_dropped = false;
            break;
        }
    }
    if (setgroups(p->n_groups, p->groups) < 0)
        return rf_err_set(err, errno, "engine.user: setgroups (%u groups of user %s): %s",
                          p->n_groups, p->user, strerror(errno));
    if (setresgid(p->gid, p->gid, p->gid) < 0)
        return rf_err_set(err, errno, "engine.user: setresgid(%u): %s", (unsigned)p->gid,
                          strerror(errno));
    /* The saved uid stays 0 until rf_privileges_drop: its change to nonzero
     * is what makes the kernel clear every thread's capabilities then. */
    if (setresuid(p->uid, p->uid, 0) < 0)
        return rf_err_set(err, errno, "engine.user: setresuid(%u, %u, 0): %s", (unsigned)p->uid,
                          (unsigned)p->uid, strerror(errno));
    /* From here a failed start exits as the user: the leak checker must
     * still be able to look (CI's ASan run found it could not). */
    dumpable_for_sanitizers();
#if defined(__SANITIZE_ADDRESS__)
    g_exit_uid = p->uid;
    atexit(drop_fully_at_exit);
#endif
    if (capset_keep(CAP_BIT(CAP_NET_BIND_SERVICE) | CAP_BIT(CAP_NET_ADMIN)) < 0)
        return rf_err_set(err, errno, "engine.user: capset: %s", strerror(errno));
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return rf_err_set(err, errno, "engine.user: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != p->uid ||
        eu != p->uid || su != 0 || rg != p->gid || eg != p->gid || sg != p->gid)
        return rf_err_set(err, EPERM, "engine.user: the user and group did not change as asked");
    g_state = PRIV_ENTERED;
    return 0;
}

int rf_privileges_check_access(const rf_privileges *p, const char *what, const char *path, int mode,
                               rf_err *err)
{
    if (faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0)
        return 0;
    int e = errno;
    char own[160] = "";
    struct stat st;
    if (stat(path, &st) == 0)
        snprintf(own, sizeof(own), " (owner uid %u gid %u, mode %04o)", (unsigned)st.st_uid,
                 (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
    return rf_err_set(err, e,
                      "engine.user: user %s cannot %s %s: %s%s; give that user access "
                      "(e.g. chown %s:%s), or choose another path",
                      p->user, what, path, strerror(e), own, p->user, p->group);
}

/* One "Key:\tv1\tv2..." line of a status file: up to 4 numbers in `base`. */
static int status_field(const char *text, const char *key, int base, unsigned long long *v,
                        int want)
{
    const char *s = text;
    size_t kl = strlen(key);
    while (s && *s) {
        if (strncmp(s, key, kl) == 0 && s[kl] == ':') {
            const char *c = s + kl + 1;
            for (int i = 0; i < want; i++) {
                char *end;
                errno = 0;
                v[i] = strtoull(c, &end, base);
                if (end == c || errno)
                    return -1;
                c = end;
            }
            return 0;
        }
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    return -1;
}

int rf_privileges_verify_threads(uid_t uid, gid_t gid, unsigned *threads, rf_err *err)
{
    *threads = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return rf_err_set(err, errno, "/proc/self/task: %s", strerror(errno));
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[300], text[4096];
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* the thread just ended */
            rc = rf_err_set(err, errno, "%s: %s", path, strerror(errno));
            break;
        }
        ssize_t n = read(fd, text, sizeof(text) - 1);
        close(fd);
        if (n <= 0)
            continue;
        text[n] = '\0';
        char name[64] = "?";
        const char *nm = strstr(text, "Name:\t");
        if (nm)
            sscanf(nm + 6, "%63[^\n]", name);
        unsigned long long u[4], g[4], prm, eff, amb;
        if (status_field(text, "Uid", 10, u, 4) < 0 || status_field(text, "Gid", 10, g, 4) < 0 ||
            status_field(text, "CapPrm", 16, &prm, 1) < 0 ||
            status_field(text, "CapEff", 16, &eff, 1) < 0) {
            rc = rf_err_set(err, EIO, "%s: unreadable", path);
            break;
        }
        if (status_field(text, "CapAmb", 16, &amb, 1) < 0)
            amb = 0; /* kernels before 4.3 */
        (*threads)++;
        for (int i = 0; i < 4 && rc == 0; i++)
            if (u[i] != uid || g[i] != gid)
                rc = rf_err_set(err, EPERM,
                                "thread %s (%s) still runs as uid %llu/%llu/%llu/%llu "
                                "gid %llu/%llu/%llu/%llu",
                                de->d_name, name, u[0], u[1], u[2], u[3], g[0], g[1], g[2], g[3]);
        if (rc == 0 && (prm || eff || amb))
            rc = rf_err_set(err, EPERM,
                            "thread %s (%s) still holds capabilities (permitted "
                            "%llx, effective %llx, ambient %llx)",
                            de->d_name, name, prm, eff, amb);
    }
    closedir(d);
    return rc;
}

int rf_privileges_drop(const rf_privileges *p, char *summary, size_t summary_size, rf_err *err)
{
    if (g_state == PRIV_SAME_USER) {
        snprintf(summary, summary_size,
                 "already running as user %s (uid %u), group %s (gid %u): "
                 "nothing to give up",
                 p->user, (unsigned)p->uid, p->group, (unsigned)p->gid);
        return 0;
    }
    if (g_state != PRIV_ENTERED)
        return rf_err_set(err, EINVAL, "engine.user: rf_privileges_enter did not run");
    /* glibc runs this on every thread (nptl(7)); the saved uid going from 0
     * to nonzero clears each thread's permitted, effective and ambient sets. */
    if (setresuid(p->uid, p->uid, p->uid) < 0)
        return rf_err_set(err, errno, "engine.user: setresuid(%u): %s", (unsigned)p->uid,
                          strerror(errno));
    dumpable_for_sanitizers();
    unsigned threads;
    if (rf_privileges_verify_threads(p->uid, p->gid, &threads, err) < 0)
        return rf_err_wrap(err, "engine.user: ");
    size_t len = (size_t)snprintf(summary, summary_size,
                                  "running as user %s (uid %u), group %s (gid %u), groups", p->user,
                                  (unsigned)p->uid, p->group, (unsigned)p->gid);
    for (uint32_t i = 0; i < p->n_groups && i < 16 && len < summary_size; i++)
        len += (size_t)snprintf(summary + len, summary_size - len, "%s%u", i ? "," : " ",
                                (unsigned)p->groups[i]);
    if (p->n_groups > 16 && len < summary_size)
        len += (size_t)snprintf(summary + len, summary_size - len, ",...");
    if (len < summary_size)
        snprintf(summary + len, summary_size - len,
                 "; no capabilities on any of its %u threads (permitted, effective and ambient "
                 "empty), %s, no_new_privs set",
                 threads,
                 g_bounding_dropped ? "bounding set empty"
                                    : "bounding set left as it was (no CAP_SETPCAP)");
    return 0;
}
