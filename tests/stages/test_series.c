/* Series table: definitions, duplicates, cardinality limits (per shard and
 * per measurement, counted by reason and per measurement), refused series
 * remembered and their events charged to their measurement, live limit
 * changes, lookups under many collisions, and tag parsing of canonical keys
 * (escapes kept). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stages/series/series_table.h"
#include "stage_test_util.h"

static void test_define_find(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(4);
    assert_non_null(t);
    rf_series_key *k = stage_test_key("cpu,host=a usage");
    uint64_t id = k->series_id;
    assert_int_equal(rf_series_table_find(t, id), -1);
    assert_int_equal(rf_series_table_find(t, 0), -1); /* "no series" */
    assert_int_equal(rf_series_table_define(t, k), 0);
    assert_int_equal(rf_series_table_find(t, id), 0);
    /* Not the empty buckets' slot 0 either, once slot 0 is a series. */
    assert_int_equal(rf_series_table_find(t, 0), -1);
    assert_string_equal(rf_series_table_key(t, 0)->text, "cpu,host=a usage");
    /* duplicate: same slot, new key freed */
    assert_int_equal(rf_series_table_define(t, stage_test_key("cpu,host=a usage")), 0);
    assert_int_equal(rf_series_table_define(t, stage_test_key("cpu,host=b usage")), 1);
    assert_int_equal(rf_series_table_define(t, stage_test_key("cpu,host=c usage")), 2);
    assert_int_equal(rf_series_table_define(t, stage_test_key("cpu,host=d usage")), 3);
    assert_int_equal(rf_series_table_define(t, stage_test_key("cpu,host=e usage")), -ENOSPC);
    /* a known series is still accepted at the limit */
    assert_int_equal(rf_series_table_define(t, stage_test_key("cpu,host=b usage")), 1);
    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.count, 4);
    assert_int_equal(st.defined, 4);
    assert_int_equal(st.duplicates, 2);
    assert_int_equal(st.rejected_cardinality, 1);
    assert_null(rf_series_table_key(t, 4));
    assert_int_equal(rf_series_table_define(t, NULL), -EINVAL);
    rf_series_table_free(t);
}

static void test_many_and_collisions(void **state)
{
    (void)state;
    enum {
        N = 100000
    };
    rf_series_table *t = rf_series_table_new(N);
    assert_non_null(t);
    char buf[64];
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "m,host=h%d v", i);
        assert_int_equal(rf_series_table_define(t, stage_test_key(buf)), i);
    }
    for (int i = 0; i < N; i++) {
        snprintf(buf, sizeof(buf), "m,host=h%d v", i);
        assert_int_equal(rf_series_table_find(t, rf_series_id_of_key(buf, strlen(buf))), i);
    }
    /* ids that collide on the low bits (the probe start) but differ above */
    rf_series_table *c = rf_series_table_new(64);
    for (int i = 0; i < 64; i++) {
        rf_series_key *k = stage_test_key("x y");
        k->series_id = ((uint64_t)(i + 1) << 40) | 5;
        assert_int_equal(rf_series_table_define(c, k), i);
    }
    for (int i = 0; i < 64; i++)
        assert_int_equal(rf_series_table_find(c, ((uint64_t)(i + 1) << 40) | 5), i);
    assert_int_equal(rf_series_table_find(c, ((uint64_t)99 << 40) | 5), -1);
    rf_series_table_free(c);
    assert_int_equal(rf_series_table_find(t, 12345), -1);
    rf_series_table_free(t);
}

static void expect_tag(const rf_series_key *k, const rf_series_tag *tg, const char *key,
                       const char *val)
{
    assert_int_equal(tg->key_len, strlen(key));
    assert_memory_equal(k->text + tg->key_off, key, tg->key_len);
    if (!val) {
        assert_int_equal(tg->val_off, 0);
    } else {
        assert_int_equal(tg->val_len, strlen(val));
        assert_memory_equal(k->text + tg->val_off, val, tg->val_len);
    }
}

/* Tags of series i in round r of the churn below: 1..12, every slot's
 * count rising and falling over the rounds. */
static int len_of_round(int r, int i)
{
    return 1 + (r * 7 + i * 3) % 12;
}

typedef struct expire_log {
    uint32_t n;
    int32_t slots[64];
} expire_log;

static void on_expire(void *ctx, int32_t slot, const rf_series_key *key)
{
    expire_log *l = ctx;
    assert_non_null(key); /* still valid while the stages let go */
    if (l->n < 64)
        l->slots[l->n] = slot;
    l->n++;
}

/* Series lifecycle: idle series are retired in bounded steps, their index
 * entries removed without breaking the probe runs of others (ids that
 * collide on the probe start), their slots and tag spans reused; a full
 * table accepts new series once old ones expired; counted per measurement. */
static void test_expire_and_reuse(void **state)
{
    (void)state;
    enum {
        N = 64
    };
    rf_series_table *t = rf_series_table_new(N);
    assert_non_null(t);
    rf_series_table_set_now(t, 1000);
    for (int i = 0; i < N; i++) {
        rf_series_key *k = stage_test_key("x,a=1,b=2 y");
        k->series_id = ((uint64_t)(i + 1) << 40) | 5; /* one probe run */
        assert_int_equal(rf_series_table_define(t, k), i);
    }
    assert_int_equal(rf_series_table_define(t, stage_test_key("x,a=9 z")), -ENOSPC);
    /* Odd series see an event later; even ones stay idle. */
    rf_series_table_set_now(t, 2000);
    for (int i = 1; i < N; i += 2)
        assert_int_equal(rf_series_table_find_touch(t, ((uint64_t)(i + 1) << 40) | 5), i);
    rf_series_table_set_now(t, 2500);
    expire_log log = {0};
    /* Bounded: 10 slots visited, only the idle ones among them retired. */
    assert_int_equal(rf_series_table_expire(t, 1000, 10, on_expire, &log), 5);
    assert_int_equal(log.n, 5);
    uint32_t total = 5;
    while (total < N / 2)
        total += rf_series_table_expire(t, 1000, 10, on_expire, &log);
    assert_int_equal(total, N / 2);
    assert_int_equal(rf_series_table_expire(t, 1000, N, on_expire, &log), 0);
    for (int i = 0; i < N; i++) {
        int32_t want = i % 2 ? i : -1;
        assert_int_equal(rf_series_table_find(t, ((uint64_t)(i + 1) << 40) | 5), want);
        if (want < 0)
            assert_null(rf_series_table_key(t, i));
    }
    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.count, N / 2);
    assert_int_equal(st.expired, N / 2);
    assert_int_equal(rf_series_table_count(t), N); /* slots used: the iteration bound */
    /* The freed slots take new series, with their tags; no refusal. */
    char buf[64];
    for (int i = 0; i < N / 2; i++) {
        snprintf(buf, sizeof(buf), "x,a=%d,b=%d y", i, i);
        int32_t slot = rf_series_table_define(t, stage_test_key(buf));
        assert_true(slot >= 0 && slot < N && slot % 2 == 0);
        const rf_series_tag *tags;
        assert_int_equal(rf_series_table_tags(t, slot, &tags), 2);
        char val[16];
        snprintf(val, sizeof(val), "%d", i);
        expect_tag(rf_series_table_key(t, slot), &tags[1], "b", val);
    }
    assert_int_equal(rf_series_table_define(t, stage_test_key("x,a=8 z")), -ENOSPC);
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.count, N);
    assert_int_equal(st.rejected_shard_limit, 2);
    /* Per measurement: x holds N, expired N/2. */
    rf_series_meas_stats m;
    assert_true(rf_series_table_measurement(t, 0, &m));
    assert_int_equal(m.active, N);
    assert_int_equal(m.expired, N / 2);
    /* Churn with growing tag counts: spans a slot outgrew are packed away
     * before the pool grows, so it settles at the slots' largest need. */
    char text[256];
    for (int round = 0; round < 40; round++) {
        rf_series_table_set_now(t, 2000000 + round * 1000);
        while (rf_series_table_expire(t, 1, N, NULL, NULL))
            ;
        for (int i = 0; i < N; i++) {
            int n = len_of_round(round, i);
            int o = snprintf(text, sizeof(text), "x");
            for (int k = 0; k < n; k++)
                o += snprintf(text + o, sizeof(text) - (size_t)o, ",k%d=%d", k, round);
            snprintf(text + o, sizeof(text) - (size_t)o, " f%d", i);
            int32_t slot = rf_series_table_define(t, stage_test_key(text));
            assert_true(slot >= 0);
            const rf_series_tag *tags;
            assert_int_equal(rf_series_table_tags(t, slot, &tags), n);
        }
    }
    /* No more than a table whose every series had the most tags (12) from
     * the start: without packing, the spans given up on the way would
     * double the pool once more. */
    rf_series_table *fresh = rf_series_table_new(N);
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof(text), "x,a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=%d y", i);
        assert_int_equal(rf_series_table_define(fresh, stage_test_key(text)), i);
    }
    rf_series_table_stats st_fresh;
    rf_series_table_stats_read(fresh, &st_fresh);
    rf_series_table_stats_read(t, &st);
    assert_true(st.bytes <= st_fresh.bytes);
    rf_series_table_free(fresh);
    /* 0 = never. */
    rf_series_table_set_now(t, 1000000);
    assert_int_equal(rf_series_table_expire(t, 0, N, on_expire, &log), 0);
    rf_series_table_free(t);
}

static void test_tags(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(8);
    int32_t s = rf_series_table_define(
        t, stage_test_key("disk\\ io,dc=eu\\,west,host=a\\=b,ssd bytes\\ read"));
    assert_true(s >= 0);
    const rf_series_key *k = rf_series_table_key(t, s);
    const rf_series_tag *tags;
    assert_int_equal(rf_series_table_tags(t, s, &tags), 3);
    expect_tag(k, &tags[0], "dc", "eu\\,west");
    expect_tag(k, &tags[1], "host", "a\\=b");
    expect_tag(k, &tags[2], "ssd", NULL);
    int32_t s2 = rf_series_table_define(t, stage_test_key("up value"));
    assert_int_equal(rf_series_table_tags(t, s2, &tags), 0);
    /* more tags than the preallocated pool: it grows */
    char buf[4096];
    size_t o = (size_t)snprintf(buf, sizeof(buf), "wide");
    for (int i = 0; i < 100; i++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, ",k%03d=v%d", i, i);
    snprintf(buf + o, sizeof(buf) - o, " f");
    int32_t s3 = rf_series_table_define(t, stage_test_key(buf));
    assert_true(s3 >= 0);
    assert_int_equal(rf_series_table_tags(t, s3, &tags), 100);
    expect_tag(rf_series_table_key(t, s3), &tags[99], "k099", "v99");
    rf_series_table_free(t);
}

/* One measurement's row from rf_series_table_measurements. */
typedef struct meas_find {
    const char *name;
    rf_series_meas_stats found;
    int hits;
    uint32_t rows;
} meas_find;

static void meas_find_fn(void *ctx, const rf_series_meas_stats *m)
{
    meas_find *f = ctx;
    f->rows++;
    if (!strcmp(m->name, f->name)) {
        f->found = *m;
        f->hits++;
    }
}

static rf_series_meas_stats meas(const rf_series_table *t, const char *name)
{
    meas_find f = {.name = name};
    rf_series_table_measurements(t, meas_find_fn, &f);
    assert_int_equal(f.hits, 1);
    return f.found;
}

static uint64_t hash_of(const char *name)
{
    char canon[256];
    int n = rf_series_measurement_canon(name, canon, sizeof(canon));
    assert_true(n >= 0);
    return rf_series_measurement_hash(canon, (size_t)n);
}

static int32_t def(rf_series_table *t, const char *fmt, int i, uint64_t *id)
{
    char buf[128];
    snprintf(buf, sizeof(buf), fmt, i);
    rf_series_key *k = stage_test_key(buf);
    if (id)
        *id = k->series_id;
    return rf_series_table_define(t, k);
}

static void test_measurement_limits(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(20);
    assert_non_null(t);
    const rf_series_limit_override ov[] = {{hash_of("big"), 5}, {hash_of("free"), 0}};
    const rf_series_limits lim = {.max_per_measurement = 3, .n_overrides = 2, .overrides = ov};
    rf_series_table_set_limits(t, &lim);

    /* cpu: the default limit, 3 */
    uint64_t cpu_ids[6];
    for (int i = 0; i < 3; i++)
        assert_int_equal(def(t, "cpu,host=h%d usage", i, &cpu_ids[i]), i);
    for (int i = 3; i < 6; i++)
        assert_int_equal(def(t, "cpu,host=h%d usage", i, &cpu_ids[i]), -EDQUOT);
    /* an accepted cpu series is still a duplicate, not a refusal */
    assert_int_equal(def(t, "cpu,host=h%d usage", 1, NULL), 1);
    /* a refused one announced again is not a second refused series */
    assert_int_equal(def(t, "cpu,host=h%d usage", 4, NULL), -EALREADY);
    /* big: its override, 5 */
    for (int i = 0; i < 5; i++)
        assert_true(def(t, "big,k=%d v", i, NULL) >= 0);
    assert_int_equal(def(t, "big,k=%d v", 5, NULL), -EDQUOT);
    /* free: no per-measurement limit; the table's 20 stop it */
    int accepted = 0, refused = 0;
    uint64_t free_refused_id = 0;
    for (int i = 0; i < 15; i++) {
        uint64_t id;
        int32_t r = def(t, "free,k=%d v", i, &id);
        if (r >= 0) {
            accepted++;
        } else {
            assert_int_equal(r, -ENOSPC);
            refused++;
            free_refused_id = id;
        }
    }
    assert_int_equal(accepted, 20 - 3 - 5);
    assert_int_equal(refused, 15 - accepted);
    /* cpu at its own limit and the table full: the measurement's own limit is
     * the reason given */
    assert_int_equal(def(t, "cpu,host=h%d usage", 99, NULL), -EDQUOT);

    /* events of refused series are charged to their measurement */
    for (int e = 0; e < 4; e++)
        for (int i = 3; i < 6; i++) {
            assert_int_equal(rf_series_table_find(t, cpu_ids[i]), -1);
            rf_series_table_count_dropped(t, cpu_ids[i]);
        }
    rf_series_table_count_dropped(t, free_refused_id);
    rf_series_table_count_dropped(t, 0x1234567); /* never seen: unattributed */

    rf_series_meas_stats c = meas(t, "cpu");
    assert_int_equal(c.active, 3);
    assert_int_equal(c.refused_measurement_limit, 4);
    assert_int_equal(c.refused_shard_limit, 0);
    assert_int_equal(c.dropped_events, 12);
    assert_int_equal(c.limit, 3);
    assert_false(c.other);
    rf_series_meas_stats b = meas(t, "big");
    assert_int_equal(b.active, 5);
    assert_int_equal(b.refused_measurement_limit, 1);
    assert_int_equal(b.limit, 5);
    rf_series_meas_stats f = meas(t, "free");
    assert_int_equal(f.active, (uint64_t)accepted);
    assert_int_equal(f.refused_shard_limit, (uint64_t)refused);
    assert_int_equal(f.refused_measurement_limit, 0);
    assert_int_equal(f.dropped_events, 1);
    assert_int_equal(f.limit, 0);

    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.count, 20);
    assert_int_equal(st.rejected_measurement_limit, 4 + 1);
    assert_int_equal(st.rejected_shard_limit, (uint64_t)refused);
    assert_int_equal(st.rejected_cardinality, 5 + (uint64_t)refused);
    assert_int_equal(st.refused_again, 1);
    assert_int_equal(st.refused_forgotten, 0);
    assert_int_equal(st.dropped_events, 13);
    assert_int_equal(st.dropped_unattributed, 1);
    assert_int_equal(st.measurements, 3);
    rf_series_table_free(t);
}

static void test_limits_live(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(100);
    /* no limits set: only the table's */
    for (int i = 0; i < 4; i++)
        assert_true(def(t, "a,k=%d v", i, NULL) >= 0);
    rf_series_limits lim = {.max_per_measurement = 2};
    rf_series_table_set_limits(t, &lim);
    /* lowered below what exists: accepted series stay, new ones are refused */
    assert_int_equal(def(t, "a,k=%d v", 4, NULL), -EDQUOT);
    assert_int_equal(def(t, "a,k=%d v", 0, NULL), 0);
    assert_int_equal(meas(t, "a").limit, 2);
    /* measurements first seen later get the limit too */
    assert_true(def(t, "b,k=%d v", 0, NULL) >= 0);
    assert_true(def(t, "b,k=%d v", 1, NULL) >= 0);
    assert_int_equal(def(t, "b,k=%d v", 2, NULL), -EDQUOT);
    /* raised: a refused series announced again is accepted now */
    lim.max_per_measurement = 10;
    rf_series_table_set_limits(t, &lim);
    assert_int_equal(meas(t, "a").limit, 10);
    uint64_t id;
    int32_t slot = def(t, "a,k=%d v", 4, &id);
    assert_true(slot >= 0);
    assert_int_equal(rf_series_table_find(t, id), slot);
    assert_int_equal(meas(t, "a").active, 5);
    /* refused counts stay what happened */
    assert_int_equal(meas(t, "a").refused_measurement_limit, 1);
    /* an override only for b, by the canonical name */
    const rf_series_limit_override ov = {hash_of("b"), 1};
    lim.n_overrides = 1;
    lim.overrides = &ov;
    rf_series_table_set_limits(t, &lim);
    assert_int_equal(meas(t, "a").limit, 10);
    assert_int_equal(meas(t, "b").limit, 1);
    assert_int_equal(def(t, "b,k=%d v", 3, NULL), -EDQUOT);
    rf_series_table_set_limits(t, NULL);
    assert_int_equal(meas(t, "b").limit, 0);
    assert_true(def(t, "b,k=%d v", 3, NULL) >= 0);
    rf_series_table_free(t);
}

static void test_measurement_names(void **state)
{
    (void)state;
    char out[64];
    /* the canonical form escapes ',', ' ' and '\' as the parsers do */
    assert_int_equal(rf_series_measurement_canon("my meas,x\\", out, sizeof(out)), 13);
    assert_string_equal(out, "my\\ meas\\,x\\\\");
    assert_int_equal(rf_series_measurement_canon("abc", out, 4), 3);
    assert_int_equal(rf_series_measurement_canon("abcd", out, 4), -ENAMETOOLONG);
    assert_int_equal(rf_series_measurement_canon("a b", out, 4), -ENAMETOOLONG);
    /* an override written plainly matches the measurement of a canonical key */
    rf_series_table *t = rf_series_table_new(8);
    const rf_series_limit_override ov = {hash_of("disk io"), 1};
    const rf_series_limits lim = {.n_overrides = 1, .overrides = &ov};
    rf_series_table_set_limits(t, &lim);
    assert_int_equal(rf_series_table_define(t, stage_test_key("disk\\ io,dev=a bytes")), 0);
    assert_int_equal(rf_series_table_define(t, stage_test_key("disk\\ io,dev=b bytes")), -EDQUOT);
    assert_int_equal(meas(t, "disk\\ io").limit, 1);
    /* a long name is cut for display; entries are told apart by the whole name */
    char a[200], b[200];
    memset(a, 'x', 150);
    memcpy(b, a, 150);
    snprintf(a + 150, 50, "A v");
    snprintf(b + 150, 50, "B v");
    assert_true(rf_series_table_define(t, stage_test_key(a)) >= 0);
    assert_true(rf_series_table_define(t, stage_test_key(b)) >= 0);
    meas_find f = {.name = ""};
    rf_series_table_measurements(t, meas_find_fn, &f);
    assert_int_equal(f.rows, 3);
    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.measurements, 3);
    rf_series_table_free(t);
}

static void test_measurement_overflow(void **state)
{
    (void)state;
    enum {
        N = RF_SERIES_MEAS_MAX + 3
    };
    rf_series_table *t = rf_series_table_new(N + 10);
    const rf_series_limits lim = {.max_per_measurement = 1};
    rf_series_table_set_limits(t, &lim);
    for (int i = 0; i < N; i++)
        assert_true(def(t, "m%d v", i, NULL) >= 0);
    /* the measurements past the entries share "other", limited by the table
     * only: a second series of one of them is accepted */
    assert_true(def(t, "m%d,second=1 v", N - 1, NULL) >= 0);
    /* ... while a measurement with an entry keeps its limit */
    assert_int_equal(def(t, "m%d,second=1 v", 0, NULL), -EDQUOT);
    rf_series_meas_stats o = meas(t, "(other measurements)");
    assert_true(o.other);
    assert_int_equal(o.active, 4);
    assert_int_equal(o.limit, 0);
    assert_true(rf_series_table_measurement(t, RF_SERIES_MEAS_MAX, &o) && o.other);
    assert_true(rf_series_table_measurement(t, 0, &o));
    assert_string_equal(o.name, "m0");
    assert_int_equal(o.index, 0);
    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.measurements, RF_SERIES_MEAS_MAX);
    rf_series_table_free(t);
}

static void test_refused_memory(void **state)
{
    (void)state;
    rf_series_table *t = rf_series_table_new(1);
    assert_int_equal(rf_series_table_define(t, stage_test_key("keep v")), 0);
    /* Refused ids that all start their probe at the same bucket: a window
     * holds 8, the 9th forgets one of them. */
    enum {
        R = 9
    };
    uint64_t ids[R];
    for (int i = 0; i < R; i++) {
        rf_series_key *k = stage_test_key("storm v");
        k->series_id = ((uint64_t)(i + 1) << 40) | 77;
        ids[i] = k->series_id;
        assert_int_equal(rf_series_table_define(t, k), -ENOSPC);
    }
    for (int i = 0; i < R; i++)
        for (int e = 0; e < 3; e++)
            rf_series_table_count_dropped(t, ids[i]);
    rf_series_table_stats st;
    rf_series_table_stats_read(t, &st);
    assert_int_equal(st.rejected_shard_limit, R);
    assert_int_equal(st.refused_forgotten, 1);
    /* every event counted once: charged to storm, or unattributed for the
     * one forgotten id */
    assert_int_equal(st.dropped_events + st.dropped_unattributed, 3 * R);
    assert_int_equal(st.dropped_unattributed, 3);
    assert_int_equal(meas(t, "storm").dropped_events, 3 * (R - 1));
    assert_int_equal(meas(t, "storm").refused_shard_limit, R);
    rf_series_table_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_define_find),
        cmocka_unit_test(test_many_and_collisions),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_expire_and_reuse),
        cmocka_unit_test(test_measurement_limits),
        cmocka_unit_test(test_limits_live),
        cmocka_unit_test(test_measurement_names),
        cmocka_unit_test(test_measurement_overflow),
        cmocka_unit_test(test_refused_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
