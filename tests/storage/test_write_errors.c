/* Write errors that go away: the shard turns degraded, drops and counts what
 * it cannot write (blocks and points), retries with backoff, and resumes by
 * itself once the fault is gone. The fault is a real one from the kernel:
 * RLIMIT_FSIZE makes writes past 20,000 bytes of any file fail with EFBIG
 * (short write first, like a disk filling up), and raising the soft limit
 * again is the disk getting room. Each test runs in a child process because
 * the limit is per process. After the child closed the store, the parent
 * opens it again and checks, to the point, that everything counted as
 * written is served intact, everything else was counted as lost, and every
 * point appended after the recovery is there. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "core/clock/clock.h"
#include "core/log/log.h"
#include "storage/query/query.h"
#include "tests/storage/store_test_util.h"

#define T0 1700000000000000000LL
#define LIMIT 20000
#define P0 640  /* before the fault: well under LIMIT */
#define P1 6000 /* then: ~48 KB, far past it */
#define P2 3000 /* after the recovery */

static uint64_t val(int series, int i)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1 + series * 1000003);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29); /* incompressible: ~8 bytes per point on disk */
}

/* What the child saw, for the parent's checks and messages. */
typedef struct report {
    int step; /* last step reached (a failure says where) */
    uint64_t write_errors, werr_other, lost_blocks, lost_points, recoveries;
    int last_errno, degraded_seen;
    char last_error[256];
    int64_t recovery_ms;   /* from raising the limit to the shard being ok */
    uint64_t backpressure; /* points refused by rf_store_append (test 2) */
    uint64_t appended;
} report;

static report *g_rep;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child: %s:%d: %s failed\n", __FILE__, __LINE__, #cond);               \
            _exit(100 + g_rep->step);                                                              \
        }                                                                                          \
    } while (0)

static void set_limit(rlim_t soft)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_FSIZE, &rl) == 0);
    rl.rlim_cur = soft;
    CHECK(setrlimit(RLIMIT_FSIZE, &rl) == 0);
}

static void append_range(rf_store_shard *sh, uint64_t id, int series, int from, int to)
{
    for (int i = from; i < to; i++) {
        rf_event ev = tu_event(id, T0 + i, RF_VALUE_I64, val(series, i));
        tu_append(sh, &ev);
    }
}

/* Every block cut so far was written or counted lost. */
static void wait_settled(rf_store_shard *sh, int64_t timeout_ns)
{
    int64_t end = rf_clock_mono_ns() + timeout_ns;
    for (;;) {
        rf_store_shard_stats ss;
        rf_store_shard_stats_read(sh, &ss);
        if (ss.blocks_written + ss.dropped_io_error == ss.blocks_cut && ss.points_buffered == 0)
            return;
        CHECK(rf_clock_mono_ns() < end);
        usleep(1000);
    }
}

static void open_test_store(const char *dir, rf_store **st)
{
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.io_retry_min_ns = 10 * RF_NS_PER_MS;
    cfg.io_retry_max_ns = 40 * RF_NS_PER_MS;
    rf_err e;
    CHECK(rf_store_open(dir, &cfg, 1, st, &e) == 0);
}

static void resume_child(const char *dir)
{
    rf_log_set_level(RF_LOG_ERROR + 1);
    alarm(60);                /* a hang fails the test instead of stalling it */
    signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of dying */
    rf_store *st;
    open_test_store(dir, &st);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *a = tu_key("werr", "", "v"), *b = tu_key("after", "", "v");
    CHECK(rf_store_define_series(sh, a) == 0);
    CHECK(rf_store_define_series(sh, b) == 0);
    set_limit(LIMIT);

    /* 0: written and durable before the fault */
    g_rep->step = 0;
    append_range(sh, a->series_id, 0, 0, P0);
    uint64_t t0;
    CHECK(rf_store_flush(sh, &t0) == 0);
    CHECK(rf_store_wait_durable(sh, t0, 10 * RF_NS_PER_S) == 0);

    /* 1: the file limit is hit */
    g_rep->step = 1;
    append_range(sh, a->series_id, 0, P0, P0 + P1);
    uint64_t t1;
    while (rf_store_flush(sh, &t1) == -EAGAIN)
        usleep(1000);
    CHECK(rf_store_wait_durable(sh, t1, 10 * RF_NS_PER_S) == -EIO);
    wait_settled(sh, 10 * RF_NS_PER_S);
    rf_store_shard_stats ss;
    rf_store_shard_io_status io;
    rf_store_shard_stats_read(sh, &ss);
    rf_store_shard_io_status_read(sh, &io);
    CHECK(ss.write_errors >= 1 && ss.dropped_io_error >= 1 && io.dropped_io_error_points >= 1);
    CHECK(io.write_errors_other >= 1 && io.write_errors_enospc == 0);
    CHECK(io.last_errno == EFBIG);
    CHECK(strstr(io.last_error, "File too large") && strstr(io.last_error, "file="));
    /* a barrier met before the loss stays met */
    CHECK(rf_store_wait_durable(sh, t0, RF_NS_PER_S) == 0);
    CHECK(ss.durable_seq < t1);

    /* 2: a retry fails too while the limit holds (closing the torn segment
     * needs room for its footer, or a new segment takes a little and fails
     * again): degraded, with at least two errors */
    g_rep->step = 2;
    int na = P0 + P1; /* points of "werr" appended */
    int64_t end = rf_clock_mono_ns() + 10 * RF_NS_PER_S;
    for (;;) {
        rf_store_shard_io_status_read(sh, &io);
        rf_store_shard_stats_read(sh, &ss);
        if (io.state == RF_STORE_IO_DEGRADED)
            g_rep->degraded_seen = 1;
        if (io.state == RF_STORE_IO_DEGRADED && ss.write_errors >= 2) {
            CHECK(io.degraded_since_ns > 0);
            break;
        }
        CHECK(rf_clock_mono_ns() < end);
        /* more data so that a retry that got through fails again */
        append_range(sh, a->series_id, 0, na, na + 64);
        na += 64;
        usleep(1000);
    }

    /* 3: the fault goes away: the shard resumes by itself */
    g_rep->step = 3;
    int64_t raised = rf_clock_mono_ns();
    set_limit(RLIM_INFINITY);
    end = raised + 10 * RF_NS_PER_S;
    for (;;) {
        rf_store_shard_io_status_read(sh, &io);
        if (io.state == RF_STORE_IO_OK) {
            CHECK(io.degraded_since_ns == 0);
            break;
        }
        CHECK(rf_clock_mono_ns() < end);
        usleep(1000);
    }
    g_rep->recovery_ms = (rf_clock_mono_ns() - raised) / RF_NS_PER_MS;

    /* 4: everything after the recovery is written */
    g_rep->step = 4;
    rf_store_shard_stats_read(sh, &ss);
    uint64_t lost_before = ss.dropped_io_error, errors_before = ss.write_errors;
    append_range(sh, b->series_id, 1, 0, P2);
    uint64_t t2;
    while (rf_store_flush(sh, &t2) == -EAGAIN)
        usleep(1000);
    wait_settled(sh, 10 * RF_NS_PER_S);
    rf_store_shard_stats_read(sh, &ss);
    CHECK(ss.written_seq >= t2);
    CHECK(ss.dropped_io_error == lost_before && ss.write_errors == errors_before);
    /* a barrier over a lost block is never met, even after the recovery */
    CHECK(rf_store_wait_durable(sh, t2, RF_NS_PER_S) == -EIO);

    g_rep->step = 5;
    g_rep->appended = (uint64_t)na;
    rf_store_shard_io_status_read(sh, &io);
    g_rep->write_errors = ss.write_errors;
    g_rep->werr_other = io.write_errors_other;
    g_rep->lost_blocks = ss.dropped_io_error;
    g_rep->lost_points = io.dropped_io_error_points;
    g_rep->recoveries = io.recoveries;
    g_rep->last_errno = io.last_errno;
    snprintf(g_rep->last_error, sizeof(g_rep->last_error), "%s", io.last_error);
    CHECK(io.recoveries >= 1);
    rf_err e;
    CHECK(rf_store_close(st, &e) == -EIO && strstr(e.msg, " lost "));
    rf_series_key_free(a);
    rf_series_key_free(b);
    g_rep->step = 6;
    _exit(0);
}

static void run_child(void (*fn)(const char *), const char *dir)
{
    memset(g_rep, 0, sizeof(*g_rep));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        fn(dir);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        print_message("child failed at step %d (status 0x%x)\n", g_rep->step, status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Points of a series served by the store in dir; each must be the one
 * written at its time (val), each time at most once. */
static size_t served(const char *dir, const char *meas, int series, int64_t *first_missing)
{
    rf_query q = {.measurement = meas, .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->stats.blocks_corrupt, 0);
    size_t n = 0;
    *first_missing = -1;
    if (r->n_sets) {
        assert_int_equal(r->n_sets, 1);
        const rf_query_set *set = &r->sets[0];
        for (size_t i = 0; i < set->n; i++) {
            int64_t k = set->ts[i] - T0;
            assert_true(k >= 0);
            assert_true(i == 0 || set->ts[i] > set->ts[i - 1]);
            assert_int_equal(set->bits[i], val(series, (int)k));
            if (*first_missing < 0 && k != (int64_t)i)
                *first_missing = (int64_t)i;
        }
        n = set->n;
    }
    rf_query_result_free(r);
    return n;
}

static void reopen_check(const char *dir, rf_store_recovery *rec)
{
    rf_store_config cfg;
    tu_config(&cfg);
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_stats s;
    rf_store_stats_read(st, &s);
    *rec = s.recovery;
    assert_int_equal(rf_store_close(st, &e), 0);
}

static void test_resume_after_error(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    run_child(resume_child, dir);
    print_message("write_errors=%" PRIu64 " (other/EFBIG %" PRIu64 ") lost %" PRIu64
                  " blocks / %" PRIu64 " points, recoveries=%" PRIu64 ", ok %" PRId64
                  " ms after the limit was raised; last error: %s\n",
                  g_rep->write_errors, g_rep->werr_other, g_rep->lost_blocks, g_rep->lost_points,
                  g_rep->recoveries, g_rep->recovery_ms, g_rep->last_error);
    rf_log_set_level(RF_LOG_ERROR + 1);
    rf_store_recovery rec;
    reopen_check(dir, &rec);
    rf_log_set_level(RF_LOG_INFO);
    /* The torn segments were closed while running: nothing left to repair. */
    assert_int_equal(rec.segments_open, 0);
    assert_int_equal(rec.tail_bytes_cut, 0);
    assert_int_equal(rec.corrupt_regions, 0);

    int64_t gap;
    size_t a = served(dir, "werr", 0, &gap);
    /* the part before the fault is whole */
    assert_true(a >= P0);
    assert_true(gap < 0 || gap >= P0);
    size_t b = served(dir, "after", 1, &gap);
    print_message("served: %zu of %" PRIu64 " werr points (+%" PRIu64
                  " counted lost), %zu of %d after the recovery\n",
                  a, g_rep->appended, g_rep->lost_points, b, P2);
    /* exact to the point: appended = served + counted lost */
    assert_int_equal(a + g_rep->lost_points, g_rep->appended);
    /* every point appended after the recovery */
    assert_int_equal(b, P2);
    assert_true(gap < 0);
    tu_rmrf(dir);
    free(dir);
}

/* A fault that never goes away, under a steady stream: the worker's appends
 * are never refused for long (dropped blocks free their slots at once), and
 * every point appended is served or counted lost. */
static void persistent_child(const char *dir)
{
    rf_log_set_level(RF_LOG_ERROR + 1);
    alarm(60);
    signal(SIGXFSZ, SIG_IGN);
    rf_store *st;
    open_test_store(dir, &st);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *a = tu_key("werr", "", "v");
    CHECK(rf_store_define_series(sh, a) == 0);
    set_limit(LIMIT);
    g_rep->step = 1;
    uint64_t refused = 0, taken = 0;
    int64_t end = rf_clock_mono_ns() + 1 * RF_NS_PER_S;
    int i = 0;
    while (rf_clock_mono_ns() < end) {
        for (int k = 0; k < 200; k++, i++) {
            rf_event ev = tu_event(a->series_id, T0 + i, RF_VALUE_I64, val(0, i));
            if (rf_store_append(sh, &ev) == 0)
                taken++;
            else
                refused++;
        }
        rf_store_tick(sh, rf_clock_mono_ns());
        usleep(1000); /* ~200 k points/s: a busy stream, not a CPU race with the I/O thread */
    }
    g_rep->step = 2;
    uint64_t t;
    while (rf_store_flush(sh, &t) == -EAGAIN)
        usleep(1000);
    wait_settled(sh, 10 * RF_NS_PER_S);
    rf_store_shard_stats ss;
    rf_store_shard_io_status io;
    rf_store_shard_stats_read(sh, &ss);
    rf_store_shard_io_status_read(sh, &io);
    CHECK(ss.points_appended == taken && ss.dropped_backpressure == refused);
    g_rep->appended = taken;
    g_rep->backpressure = refused;
    g_rep->write_errors = ss.write_errors;
    g_rep->lost_blocks = ss.dropped_io_error;
    g_rep->lost_points = io.dropped_io_error_points;
    CHECK(ss.write_errors >= 2); /* the first error and failed retries */
    rf_err e;
    CHECK(rf_store_close(st, &e) == -EIO);
    rf_series_key_free(a);
    g_rep->step = 3;
    _exit(0);
}

static void test_persistent_error_accounts_every_point(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    run_child(persistent_child, dir);
    rf_log_set_level(RF_LOG_ERROR + 1);
    rf_store_recovery rec;
    reopen_check(dir, &rec);
    rf_log_set_level(RF_LOG_INFO);
    int64_t gap;
    size_t a = served(dir, "werr", 0, &gap);
    print_message("appended %" PRIu64 " (refused %" PRIu64 "), served %zu, lost %" PRIu64
                  " points in %" PRIu64 " blocks, write_errors=%" PRIu64 "\n",
                  g_rep->appended, g_rep->backpressure, a, g_rep->lost_points, g_rep->lost_blocks,
                  g_rep->write_errors);
    assert_int_equal(a + g_rep->lost_points, g_rep->appended);
    assert_true(g_rep->lost_points > 0);
    /* Dropping frees the slots at once: refusals (only while a retry is
     * writing, closing or failing) stay a small share. */
    assert_true(g_rep->backpressure * 4 < g_rep->appended);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    g_rep = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (g_rep == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_after_error),
        cmocka_unit_test(test_persistent_error_accounts_every_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
