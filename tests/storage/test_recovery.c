/* Recovery under fault injection: a segment torn at every byte offset of its
 * last records, random bit flips (open and closed segments), damaged
 * headers, and a writer process killed with SIGKILL again and again. After
 * each, the store opens and serves exactly the intact blocks: nothing that
 * was acknowledged is missing, nothing corrupt is returned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/log/log.h"
#include "storage/query/query.h"
#include "storage/segment/segment.h"
#include "tests/storage/store_test_util.h"

#define NSER 4
#define NPTS 200
#define T0 1700000000000000000LL

static int64_t t_of(int s, int i)
{
    return T0 + (int64_t)i * 1000000000LL + s;
}
static uint64_t v_of(int s, int i)
{
    return (uint64_t)(int64_t)(i * 37 - 1000 + s * 100000);
}

typedef struct image {
    char name[256];
    uint8_t *bytes; /* the closed segment as written */
    size_t size;
    size_t data_end; /* start of the footer: the segment as it was while open */
    size_t n_recs;
    struct rec {
        size_t off, len;
        uint8_t type;
        uint64_t series;
        int64_t lo, hi;
    } recs[256];
    rf_series_key *keys[NSER];
} image;

static int series_index(const image *im, uint64_t id)
{
    for (int s = 0; s < NSER; s++)
        if (im->keys[s]->series_id == id)
            return s;
    return -1;
}

/* Writes NSER series into a 1-shard store and keeps the single segment. */
static void build_image(image *im)
{
    memset(im, 0, sizeof(*im));
    char *dir = tu_tmpdir();
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.block_points = 32;
    cfg.durability = RF_DURABILITY_NEVER;
    rf_store *st;
    rf_err e;
    assert_int_equal(rf_store_open(dir, &cfg, 1, &st, &e), 0);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    for (int s = 0; s < NSER; s++) {
        char tags[32];
        snprintf(tags, sizeof(tags), "id=s%d", s);
        im->keys[s] = tu_key("rec", tags, "v");
        assert_int_equal(rf_store_define_series(sh, im->keys[s]), 0);
    }
    for (int i = 0; i < NPTS; i++)
        for (int s = 0; s < NSER; s++) {
            rf_event ev = tu_event(im->keys[s]->series_id, t_of(s, i), RF_VALUE_I64, v_of(s, i));
            tu_append(sh, &ev);
        }
    assert_int_equal(rf_store_close(st, &e), 0);
    char sdir[4096];
    snprintf(sdir, sizeof(sdir), "%s/shard-00", dir);
    DIR *d = opendir(sdir);
    struct dirent *de;
    char path[8192] = "";
    while ((de = readdir(d))) {
        uint64_t seq;
        if (rf_seg_name_parse(de->d_name, &seq)) {
            assert_true(path[0] == '\0'); /* exactly one segment */
            snprintf(im->name, sizeof(im->name), "%s", de->d_name);
            snprintf(path, sizeof(path), "%s/%s", sdir, de->d_name);
        }
    }
    closedir(d);
    rf_seg_reader r;
    assert_int_equal(rf_seg_reader_open(path, 0, &r, &e), 0);
    assert_true(r.closed);
    im->size = r.size;
    im->data_end = r.data_end;
    im->bytes = malloc(r.size);
    memcpy(im->bytes, r.map, r.size);
    rf_seg_reader_close(&r);
    /* every record, in file order */
    size_t pos = RF_SEG_HEADER_SIZE;
    while (pos < im->data_end) {
        rf_seg_rec h;
        long n = rf_seg_rec_check(im->bytes + pos, im->data_end - pos, &h);
        assert_true(n > 0);
        assert_true(im->n_recs < 256);
        im->recs[im->n_recs++] =
            (struct rec){pos, (size_t)n, h.type, h.series_id, h.min_time, h.max_time};
        pos += (size_t)n;
    }
    assert_int_equal(pos, im->data_end);
    tu_rmrf(dir);
    free(dir);
}

static void free_image(image *im)
{
    free(im->bytes);
    for (int s = 0; s < NSER; s++)
        rf_series_key_free(im->keys[s]);
}

static void put_file(const char *dir, const image *im, const uint8_t *bytes, size_t len)
{
    char p[8192];
    tu_rmrf(dir);
    mkdir(dir, 0755);
    snprintf(p, sizeof(p), "%s/shard-00", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/shard-00/%s", dir, im->name);
    int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    close(fd);
}

/* alive[k]: record k is intact (its bytes unchanged and present). A block is
 * served iff it is intact and its series' dictionary record is intact. */
static void check_served(const char *dir, const image *im, const bool *alive)
{
    bool keyed[NSER] = {false};
    for (size_t k = 0; k < im->n_recs; k++)
        if (im->recs[k].type == RF_SEG_REC_SERIES && alive[k])
            keyed[series_index(im, im->recs[k].series)] = true;
    int64_t want[NSER][NPTS];
    size_t nwant[NSER] = {0};
    for (size_t k = 0; k < im->n_recs; k++) {
        const struct rec *rc = &im->recs[k];
        if (rc->type != RF_SEG_REC_BLOCK || !alive[k])
            continue;
        int s = series_index(im, rc->series);
        if (!keyed[s])
            continue;
        for (int i = 0; i < NPTS; i++)
            if (t_of(s, i) >= rc->lo && t_of(s, i) <= rc->hi)
                want[s][nwant[s]++] = i;
    }
    rf_query q = {.measurement = "rec", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    size_t got_sets = 0;
    for (int s = 0; s < NSER; s++)
        got_sets += nwant[s] > 0;
    assert_int_equal(r->n_sets, got_sets);
    for (size_t k = 0; k < r->n_sets; k++) {
        const rf_query_set *set = &r->sets[k];
        int s = set->tags[0].value[1] - '0';
        assert_int_equal(set->n, nwant[s]);
        for (size_t j = 0; j < set->n; j++) {
            assert_int_equal(set->ts[j], t_of(s, (int)want[s][j]));
            assert_int_equal(set->bits[j], v_of(s, (int)want[s][j]));
        }
    }
    rf_query_result_free(r);
}

static void open_close(const char *dir, rf_store_recovery *rec)
{
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.durability = RF_DURABILITY_NEVER; /* no fsync: thousands of runs */
    rf_store *st;
    rf_err e;
    int rc = rf_store_open(dir, &cfg, 1, &st, &e);
    if (rc)
        print_message("open: %s\n", e.msg);
    assert_int_equal(rc, 0);
    rf_store_stats stats;
    rf_store_stats_read(st, &stats);
    *rec = stats.recovery;
    assert_int_equal(rf_store_close(st, &e), 0);
}

static void test_truncate_every_offset(void **state)
{
    (void)state;
    rf_log_set_level(RF_LOG_ERROR); /* thousands of "cut torn tail" lines otherwise */
    image im;
    build_image(&im);
    char *dir = tu_tmpdir();
    /* every byte offset over the last 4 records (blocks and their framing) */
    size_t first = im.recs[im.n_recs - 4].off;
    bool alive[256];
    size_t runs = 0;
    for (size_t len = first; len <= im.data_end; len++) {
        put_file(dir, &im, im.bytes, len);
        size_t complete_end = RF_SEG_HEADER_SIZE;
        for (size_t k = 0; k < im.n_recs; k++) {
            alive[k] = im.recs[k].off + im.recs[k].len <= len;
            if (alive[k])
                complete_end = im.recs[k].off + im.recs[k].len;
        }
        rf_store_recovery rec;
        open_close(dir, &rec);
        assert_int_equal(rec.segments_open, 1);
        assert_int_equal(rec.tail_bytes_cut, len - complete_end);
        assert_int_equal(rec.corrupt_regions, 0);
        check_served(dir, &im, alive);
        /* recovery is idempotent: the repaired segment is closed now */
        open_close(dir, &rec);
        assert_int_equal(rec.segments_open, 0);
        check_served(dir, &im, alive);
        runs++;
    }
    print_message("truncated at %zu offsets (%zu records, %zu bytes of data)\n", runs, im.n_recs,
                  im.data_end);
    /* the closed segment cut anywhere in its footer or trailer: all blocks survive */
    for (size_t k = 0; k < im.n_recs; k++)
        alive[k] = true;
    for (size_t len = im.data_end; len < im.size; len += 7) {
        put_file(dir, &im, im.bytes, len);
        rf_store_recovery rec;
        open_close(dir, &rec);
        check_served(dir, &im, alive);
    }
    tu_rmrf(dir);
    free(dir);
    free_image(&im);
    rf_log_set_level(RF_LOG_INFO);
}

static void flip_trials(const image *im, size_t len, int trials, uint64_t seed, bool open_image)
{
    char *dir = tu_tmpdir();
    uint8_t *buf = malloc(len);
    uint64_t x = seed;
    uint64_t mid = 0, corrupt_served_checks = 0;
    for (int t = 0; t < trials; t++) {
        memcpy(buf, im->bytes, len);
        bool alive[256];
        for (size_t k = 0; k < im->n_recs; k++)
            alive[k] = true;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int flips = 1 + (int)(x % 3);
        for (int f = 0; f < flips; f++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t bit = RF_SEG_HEADER_SIZE * 8 + x % ((len - RF_SEG_HEADER_SIZE) * 8);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            for (size_t k = 0; k < im->n_recs; k++)
                if (bit / 8 >= im->recs[k].off && bit / 8 < im->recs[k].off + im->recs[k].len)
                    alive[k] = false;
        }
        put_file(dir, im, buf, len);
        rf_store_recovery rec;
        open_close(dir, &rec);
        mid += rec.corrupt_regions;
        check_served(dir, im, alive);
        corrupt_served_checks++;
    }
    print_message("%s segment: %d trials, %" PRIu64 " corrupt regions skipped in the middle\n",
                  open_image ? "open" : "closed", trials, mid);
    if (open_image)
        assert_true(mid > 0);
    free(buf);
    tu_rmrf(dir);
    free(dir);
}

static void test_bit_flips(void **state)
{
    (void)state;
    rf_log_set_level(RF_LOG_ERROR + 1); /* every trial logs its damage */
    image im;
    build_image(&im);
    flip_trials(&im, im.data_end, 300, 0x9E3779B97F4A7C15ull, true);
    flip_trials(&im, im.size, 300, 0xD1B54A32D192ED03ull, false);
    free_image(&im);
    rf_log_set_level(RF_LOG_INFO);
}

static void test_damaged_headers(void **state)
{
    (void)state;
    rf_log_set_level(RF_LOG_ERROR + 1);
    image im;
    build_image(&im);
    char *dir = tu_tmpdir();
    bool none[256] = {false};
    /* a bad header CRC: the file is quarantined, never served */
    uint8_t *buf = malloc(im.size);
    memcpy(buf, im.bytes, im.size);
    buf[30] ^= 0x10;
    put_file(dir, &im, buf, im.size);
    rf_store_recovery rec;
    open_close(dir, &rec);
    assert_int_equal(rec.segments_quarantined, 1);
    check_served(dir, &im, none);
    char p[8192];
    snprintf(p, sizeof(p), "%s/shard-00/%s.corrupt", dir, im.name);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    /* a header torn by a crash at creation: removed */
    put_file(dir, &im, im.bytes, 30);
    open_close(dir, &rec);
    assert_int_equal(rec.segments_removed, 1);
    /* a header and nothing else: removed */
    put_file(dir, &im, im.bytes, RF_SEG_HEADER_SIZE + 3);
    open_close(dir, &rec);
    assert_int_equal(rec.segments_removed, 1);
    free(buf);
    tu_rmrf(dir);
    free(dir);
    free_image(&im);
    rf_log_set_level(RF_LOG_INFO);
}

/* ---- SIGKILL during heavy writes ---- */

#define KSER 6
#define KROUNDS 8
#define KBASE(r) (T0 + (int64_t)(r)*1000000000000000LL)

static uint64_t kv(int r, int s, int64_t i)
{
    return (uint64_t)(i * 1000003 + s * 7 + r);
}

static void kill_child(const char *dir, int round, _Atomic int64_t *acked)
{
    rf_log_set_level(RF_LOG_ERROR + 1);
    alarm(60); /* never outlives a stuck parent */
    rf_store_config cfg;
    tu_config(&cfg);
    cfg.durability = RF_DURABILITY_INTERVAL;
    cfg.sync_interval_ns = 2000000;
    cfg.segment_max_bytes = 64 << 10; /* many rolls while being killed */
    cfg.queue_blocks = 256;
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, &cfg, 2, &st, &e))
        _exit(3);
    rf_series_key *k[KSER];
    for (int s = 0; s < KSER; s++) {
        char tags[32];
        snprintf(tags, sizeof(tags), "id=k%d", s);
        k[s] = tu_key("kill", tags, "v");
        if (rf_store_define_series(rf_store_shard_get(st, rf_event_owner(k[s]->series_id, 2)),
                                   k[s]))
            _exit(4);
    }
    for (int64_t i = 0;; i++) {
        for (int s = 0; s < KSER; s++) {
            rf_event ev =
                tu_event(k[s]->series_id, KBASE(round) + i * 1000, RF_VALUE_U64, kv(round, s, i));
            tu_append(rf_store_shard_get(st, rf_event_owner(k[s]->series_id, 2)), &ev);
        }
        if (i % 700 == 699) {
            for (uint32_t sh = 0; sh < 2; sh++) {
                uint64_t ticket;
                while (rf_store_flush(rf_store_shard_get(st, sh), &ticket) == -EAGAIN)
                    ;
                if (rf_store_wait_durable(rf_store_shard_get(st, sh), ticket, 10000000000LL))
                    _exit(5);
            }
            /* acknowledged: every point up to i of every series is durable */
            atomic_store(&acked[round], i + 1);
        }
    }
}

static void test_sigkill_repeated(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    _Atomic int64_t *acked =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(acked != MAP_FAILED);
    uint64_t x = 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid();
    uint64_t tails = 0;
    rf_log_set_level(RF_LOG_ERROR + 1);
    for (int round = 0; round < KROUNDS; round++) {
        atomic_store(&acked[round], 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            kill_child(dir, round, acked);
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        struct timespec ts = {0, (long)(60 + x % 240) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        assert_true(WIFSIGNALED(status)); /* not an early exit with an error */

        rf_store_recovery rec;
        rf_store_config cfg;
        tu_config(&cfg);
        rf_store *st;
        rf_err e;
        assert_int_equal(rf_store_open(dir, &cfg, 2, &st, &e), 0);
        rf_store_stats stats;
        rf_store_stats_read(st, &stats);
        rec = stats.recovery;
        tails += rec.tail_bytes_cut;
        assert_int_equal(rec.corrupt_regions, 0);
        assert_int_equal(rf_store_close(st, &e), 0);

        rf_query q = {.measurement = "kill", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
        rf_query_result *r;
        assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
        assert_int_equal(r->stats.blocks_corrupt, 0);
        for (int rr = 0; rr <= round; rr++) {
            int64_t ack = atomic_load(&acked[rr]);
            for (size_t si = 0; si < r->n_sets; si++) {
                const rf_query_set *set = &r->sets[si];
                int s = set->tags[0].value[1] - '0';
                /* the points of round rr: a prefix 0..n-1, n >= acknowledged */
                int64_t n = 0;
                for (size_t j = 0; j < set->n; j++) {
                    if (set->ts[j] < KBASE(rr) || set->ts[j] >= KBASE(rr + 1))
                        continue;
                    assert_int_equal(set->ts[j], KBASE(rr) + n * 1000);
                    assert_int_equal(set->bits[j], kv(rr, s, n));
                    n++;
                }
                assert_true(n >= ack);
                if (rr == round && si == 0)
                    print_message("round %d: acknowledged %" PRId64 " points/series, found %" PRId64
                                  ", tail cut %" PRIu64 " bytes\n",
                                  round, ack, n, rec.tail_bytes_cut);
            }
        }
        rf_query_result_free(r);
    }
    rf_log_set_level(RF_LOG_INFO);
    print_message("total torn tail bytes cut over %d kills: %" PRIu64 "\n", KROUNDS, tails);
    munmap((void *)acked, 4096);
    tu_rmrf(dir);
    free(dir);
}

/* ---- write errors: a file size limit makes the writes fail mid-stream ---- */

/* The limit stays for the whole run (a fault that never goes away): every
 * point is either served intact after a restart or counted as lost, never
 * both, and nothing corrupt is served. Resuming once the fault is gone is
 * tests/storage/test_write_errors.c. */

#define EPTS 6000

static uint64_t ev_of(int i)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29); /* incompressible: ~8 bytes per point on disk */
}

typedef struct werr_report {
    uint64_t write_errors, lost_blocks, lost_points;
} werr_report;

static void write_error_child(const char *dir, werr_report *rep)
{
    rf_log_set_level(RF_LOG_ERROR + 1);
    alarm(60);                /* a hang fails the test instead of stalling it */
    signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of dying */
    struct rlimit rl = {20000, 20000};
    if (setrlimit(RLIMIT_FSIZE, &rl))
        _exit(2);
    rf_store_config cfg;
    tu_config(&cfg);
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, &cfg, 1, &st, &e))
        _exit(3);
    rf_store_shard *sh = rf_store_shard_get(st, 0);
    rf_series_key *k = tu_key("werr", "", "v");
    rf_store_define_series(sh, k);
    for (int i = 0; i < EPTS; i++) {
        rf_event ev = tu_event(k->series_id, T0 + i, RF_VALUE_I64, ev_of(i));
        tu_append(sh, &ev);
    }
    uint64_t ticket;
    rf_store_flush(sh, &ticket);
    if (rf_store_wait_durable(sh, ticket, 10000000000LL) != -EIO)
        _exit(10);
    rf_store_shard_stats ss;
    rf_store_shard_stats_read(sh, &ss);
    if (ss.write_errors < 1 || ss.dropped_io_error < 1)
        _exit(11);
    if (rf_store_close(st, &e) != -EIO)
        _exit(12);
    /* From close's message: the blocks cut at close count too. */
    rep->write_errors = ss.write_errors;
    const char *lost = strstr(e.msg, " lost ");
    if (!lost || sscanf(lost, " lost %" SCNu64 " blocks (%" SCNu64 " points)", &rep->lost_blocks,
                        &rep->lost_points) != 2)
        _exit(13);
    rf_series_key_free(k);
    _exit(0);
}

static void test_write_error(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    werr_report *rep = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(rep != MAP_FAILED);
    memset(rep, 0, sizeof(*rep));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        write_error_child(dir, rep);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(rep->lost_blocks >= 1 && rep->lost_points >= 1);
    /* What reached the disk is served intact; what did not is counted. */
    rf_log_set_level(RF_LOG_ERROR + 1);
    rf_store_recovery rec;
    open_close(dir, &rec);
    rf_log_set_level(RF_LOG_INFO);
    assert_int_equal(rec.corrupt_regions, 0);
    rf_query q = {.measurement = "werr", .start_ns = INT64_MIN, .end_ns = INT64_MAX};
    rf_query_result *r;
    rf_err e;
    assert_int_equal(rf_query_run(dir, &q, &r, &e), 0);
    assert_int_equal(r->n_sets, 1);
    assert_int_equal(r->stats.blocks_corrupt, 0);
    const rf_query_set *set = &r->sets[0];
    assert_true(set->n > 0 && set->n < EPTS);
    for (size_t i = 0; i < set->n; i++) {
        int64_t k = set->ts[i] - T0;
        assert_true(k >= 0 && k < EPTS);
        assert_true(i == 0 || set->ts[i] > set->ts[i - 1]); /* each point once */
        assert_int_equal(set->bits[i], ev_of((int)k));
    }
    print_message("write errors: %" PRIu64 "; %zu of %d points served, %" PRIu64 " lost in %" PRIu64
                  " blocks; open segments at the next open %" PRIu64 ", tail cut %" PRIu64
                  " bytes\n",
                  rep->write_errors, set->n, EPTS, rep->lost_points, rep->lost_blocks,
                  rec.segments_open, rec.tail_bytes_cut);
    /* Exact to the point: served + counted as lost = appended. */
    assert_int_equal(set->n + rep->lost_points, EPTS);
    rf_query_result_free(r);
    munmap(rep, 4096);
    tu_rmrf(dir);
    free(dir);
}

/* Both shards lose blocks to the fault: close's error names each of them,
 * not only the first. */
static void write_error_two_shards_child(const char *dir, char *msg, size_t msg_size)
{
    rf_log_set_level(RF_LOG_ERROR + 1);
    alarm(60);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {20000, 20000};
    if (setrlimit(RLIMIT_FSIZE, &rl))
        _exit(2);
    rf_store_config cfg;
    tu_config(&cfg);
    rf_store *st;
    rf_err e;
    if (rf_store_open(dir, &cfg, 2, &st, &e))
        _exit(3);
    rf_series_key *k[2] = {tu_key("werr", "shard=a", "v"), tu_key("werr", "shard=b", "v")};
    for (uint32_t s = 0; s < 2; s++) {
        rf_store_shard *sh = rf_store_shard_get(st, s);
        rf_store_define_series(sh, k[s]);
        for (int i = 0; i < EPTS; i++) {
            rf_event ev = tu_event(k[s]->series_id, T0 + i, RF_VALUE_I64, ev_of(i));
            tu_append(sh, &ev);
        }
    }
    if (rf_store_close(st, &e) != -EIO)
        _exit(12);
    snprintf(msg, msg_size, "%s", e.msg);
    rf_series_key_free(k[0]);
    rf_series_key_free(k[1]);
    _exit(0);
}

static void test_write_error_names_every_shard(void **state)
{
    (void)state;
    char *dir = tu_tmpdir();
    char *msg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(msg != MAP_FAILED);
    msg[0] = '\0';
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        write_error_two_shards_child(dir, msg, 4096);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    print_message("close: %s\n", msg);
    assert_non_null(strstr(msg, "shard 0 lost "));
    assert_non_null(strstr(msg, "shard 1 lost "));
    munmap(msg, 4096);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncate_every_offset),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_damaged_headers),
        cmocka_unit_test(test_sigkill_repeated),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_write_error_names_every_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
