/* Single-threaded tests of rf_ring (core/ring/ring.h): order and no loss,
 * exact capacity, burst versus bulk, batches that straddle the end of the slot
 * array at every capacity from 2 to 1024 and every starting offset, 32-bit
 * index wrap-around, element sizes, parameter validation and statistics.
 * The two-thread test is test_ring_mt.c (run under ThreadSanitizer in CI). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ring/ring.h"

/* Fills element `seq` of esize bytes with a pattern that depends on every
 * byte's position, so a torn or misplaced copy is caught, not just a wrong
 * first word. */
static void fill_elem(uint8_t *e, uint32_t esize, uint64_t seq)
{
    memcpy(e, &seq, sizeof(seq));
    for (uint32_t b = 8; b < esize; b++)
        e[b] = (uint8_t)(seq * 31u + b);
}

static void check_elem(const uint8_t *e, uint32_t esize, uint64_t seq)
{
    uint64_t got;
    memcpy(&got, e, sizeof(got));
    assert_int_equal(got, seq);
    for (uint32_t b = 8; b < esize; b++)
        assert_int_equal(e[b], (uint8_t)(seq * 31u + b));
}

/* Enqueues n consecutive sequence numbers from *next_in with a run-time esize
 * (the library's memcpy path) and asserts they were all placed. */
static void put_n(rf_ring *r, uint32_t esize, uint64_t *next_in, uint32_t n, uint8_t *scratch)
{
    for (uint32_t i = 0; i < n; i++)
        fill_elem(scratch + (size_t)i * esize, esize, *next_in + i);
    assert_int_equal(rf_ring_enqueue_bulk(r, scratch, esize, n), n);
    *next_in += n;
}

static void get_n(rf_ring *r, uint32_t esize, uint64_t *next_out, uint32_t n, uint8_t *scratch)
{
    assert_int_equal(rf_ring_dequeue_bulk(r, scratch, esize, n), n);
    for (uint32_t i = 0; i < n; i++)
        check_elem(scratch + (size_t)i * esize, esize, *next_out + i);
    *next_out += n;
}

static void test_order_no_loss(void **state)
{
    (void)state;
    rf_ring *r = rf_ring_create(64, 8);
    assert_non_null(r);
    uint64_t in = 0, out = 0;
    srand(1);
    for (int round = 0; round < 20000; round++) {
        uint64_t v = in;
        uint32_t want = 1 + (uint32_t)rand() % 40;
        uint64_t buf[40];
        for (uint32_t i = 0; i < want; i++)
            buf[i] = v + i;
        uint32_t placed = rf_ring_enqueue_burst(r, buf, 8, want);
        assert_true(placed <= want);
        assert_int_equal(placed, want < 64 - (in - out) ? want : 64 - (in - out));
        in += placed;
        uint32_t take = 1 + (uint32_t)rand() % 40;
        uint32_t got = rf_ring_dequeue_burst(r, buf, 8, take);
        assert_int_equal(got, take < in - out ? take : in - out);
        for (uint32_t i = 0; i < got; i++)
            assert_int_equal(buf[i], out + i);
        out += got;
        assert_int_equal(rf_ring_count(r), in - out);
    }
    uint64_t x;
    while (rf_ring_dequeue(r, &x, 8))
        assert_int_equal(x, out++);
    assert_int_equal(in, out);
    rf_ring_destroy(r);
}

static void test_capacity_exactly_usable(void **state)
{
    (void)state;
    for (uint32_t cap = 2; cap <= 1024; cap *= 2) {
        rf_ring *r = rf_ring_create(cap, 8);
        assert_non_null(r);
        assert_int_equal(rf_ring_capacity(r), cap);
        for (uint64_t i = 0; i < cap; i++)
            assert_true(rf_ring_enqueue(r, &i, 8));
        uint64_t extra = 99;
        assert_false(rf_ring_enqueue(r, &extra, 8));
        assert_int_equal(rf_ring_count(r), cap);
        for (uint64_t i = 0; i < cap; i++) {
            uint64_t v;
            assert_true(rf_ring_dequeue(r, &v, 8));
            assert_int_equal(v, i);
        }
        uint64_t v;
        assert_false(rf_ring_dequeue(r, &v, 8));
        assert_int_equal(rf_ring_count(r), 0);

        /* The whole capacity in one bulk call, and not one more. */
        uint64_t *buf = calloc(cap + 1, sizeof(*buf));
        assert_non_null(buf);
        assert_int_equal(rf_ring_enqueue_bulk(r, buf, 8, cap + 1), 0);
        assert_int_equal(rf_ring_enqueue_bulk(r, buf, 8, cap), cap);
        assert_int_equal(rf_ring_dequeue_bulk(r, buf, 8, cap + 1), 0);
        assert_int_equal(rf_ring_dequeue_bulk(r, buf, 8, cap), cap);
        free(buf);
        rf_ring_destroy(r);
    }
}

static void test_burst_vs_bulk(void **state)
{
    (void)state;
    rf_ring *r = rf_ring_create(8, 8);
    assert_non_null(r);
    uint64_t buf[16];
    for (uint64_t i = 0; i < 16; i++)
        buf[i] = i;
    assert_int_equal(rf_ring_enqueue_burst(r, buf, 8, 5), 5);
    /* 3 free: bulk of 5 places nothing, burst of 5 places 3. */
    assert_int_equal(rf_ring_enqueue_bulk(r, buf + 5, 8, 5), 0);
    assert_int_equal(rf_ring_count(r), 5);
    assert_int_equal(rf_ring_enqueue_burst(r, buf + 5, 8, 5), 3);
    assert_int_equal(rf_ring_count(r), 8);
    assert_int_equal(rf_ring_enqueue_burst(r, buf, 8, 1), 0);
    assert_int_equal(rf_ring_enqueue_burst(r, buf, 8, 0), 0);

    uint64_t out[16] = {0};
    /* 8 stored: bulk of 10 takes nothing, burst of 10 takes 8. */
    assert_int_equal(rf_ring_dequeue_bulk(r, out, 8, 10), 0);
    assert_int_equal(rf_ring_count(r), 8);
    assert_int_equal(rf_ring_dequeue_bulk(r, out, 8, 0), 0);
    assert_int_equal(rf_ring_dequeue_burst(r, out, 8, 10), 8);
    for (uint64_t i = 0; i < 8; i++)
        assert_int_equal(out[i], i);
    assert_int_equal(rf_ring_dequeue_burst(r, out, 8, 10), 0);
    rf_ring_destroy(r);
}

/* Every capacity 2..1024, every starting slot, and batch sizes that end just
 * before, exactly at and just after the end of the slot array, plus 1 and the
 * full capacity. Element size 8 passed as a constant (the inlined copy) and
 * 24 passed at run time (the library copy). */
static void straddle_one(rf_ring *r, uint32_t cap, uint32_t esize, uint32_t start, uint8_t *scratch)
{
    const uint32_t to_end = cap - (start & (cap - 1));
    const uint32_t sizes[] = {1, 2, to_end - 1, to_end, to_end + 1, cap - 1, cap};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint32_t n = sizes[k];
        if (n == 0 || n > cap)
            continue;
        rf_ring_reset_indices(r, start);
        uint64_t in = 1000, out = 1000;
        if (esize == 8) {
            uint64_t *v = (uint64_t *)scratch;
            for (uint32_t i = 0; i < n; i++)
                v[i] = in + i;
            assert_int_equal(rf_ring_enqueue_bulk(r, v, 8, n), n);
            assert_int_equal(rf_ring_count(r), n);
            memset(v, 0, (size_t)n * 8);
            assert_int_equal(rf_ring_dequeue_bulk(r, v, 8, n), n);
            for (uint32_t i = 0; i < n; i++)
                assert_int_equal(v[i], out + i);
        } else {
            put_n(r, esize, &in, n, scratch);
            assert_int_equal(rf_ring_count(r), n);
            memset(scratch, 0, (size_t)n * esize);
            get_n(r, esize, &out, n, scratch);
        }
        assert_int_equal(rf_ring_count(r), 0);
    }
}

static void test_straddle_every_capacity_and_offset(void **state)
{
    (void)state;
    const uint32_t esizes[] = {8, 24};
    for (size_t e = 0; e < 2; e++) {
        uint32_t esize = esizes[e];
        uint8_t *scratch = malloc((size_t)1024 * esize);
        assert_non_null(scratch);
        for (uint32_t cap = 2; cap <= 1024; cap *= 2) {
            rf_ring *r = rf_ring_create(cap, esize);
            assert_non_null(r);
            for (uint32_t off = 0; off < cap; off++)
                straddle_one(r, cap, esize, off, scratch);
            rf_ring_destroy(r);
        }
        free(scratch);
    }
}

/* Batches that straddle the end reached by ordinary traffic, not by
 * rf_ring_reset_indices: the ring is rotated one slot at a time. */
static void test_straddle_by_traffic(void **state)
{
    (void)state;
    for (uint32_t cap = 2; cap <= 64; cap *= 2) {
        rf_ring *r = rf_ring_create(cap, 16);
        assert_non_null(r);
        uint8_t scratch[64 * 16];
        uint64_t in = 0, out = 0;
        for (uint32_t rot = 0; rot < 2 * cap; rot++) {
            for (uint32_t n = 1; n <= cap; n++) {
                put_n(r, 16, &in, n, scratch);
                get_n(r, 16, &out, n, scratch);
            }
            put_n(r, 16, &in, 1, scratch); /* advance the start by one slot */
            get_n(r, 16, &out, 1, scratch);
        }
        rf_ring_destroy(r);
    }
}

/* Free-running 32-bit indices: count, fill and order stay right across
 * UINT32_MAX -> 0, with the ring empty, partly full and full at the wrap. */
static void test_index_wraparound(void **state)
{
    (void)state;
    const uint32_t cap = 16;
    rf_ring *r = rf_ring_create(cap, 8);
    assert_non_null(r);
    for (uint32_t back = 0; back <= 2 * cap; back++) {
        rf_ring_reset_indices(r, UINT32_MAX - back + 1); /* `back` steps before 0 */
        uint64_t in = 0, out = 0;
        for (int round = 0; round < 4 * (int)cap; round++) {
            uint32_t n = 1 + (uint32_t)(round * 7) % cap;
            uint64_t v[16];
            for (uint32_t i = 0; i < n; i++)
                v[i] = in + i;
            uint32_t placed = rf_ring_enqueue_burst(r, v, 8, n);
            assert_int_equal(placed, n < cap - (in - out) ? n : cap - (in - out));
            in += placed;
            assert_int_equal(rf_ring_count(r), in - out);
            uint32_t take = 1 + (uint32_t)(round * 5) % cap;
            uint32_t got = rf_ring_dequeue_burst(r, v, 8, take);
            assert_int_equal(got, take < in - out ? take : in - out);
            for (uint32_t i = 0; i < got; i++)
                assert_int_equal(v[i], out + i);
            out += got;
        }
        /* Full at the wrap: cap elements, then nothing more. */
        rf_ring_reset_indices(r, UINT32_MAX - cap / 2);
        uint64_t v[16];
        for (uint32_t i = 0; i < cap; i++)
            v[i] = i;
        assert_int_equal(rf_ring_enqueue_bulk(r, v, 8, cap), cap);
        assert_int_equal(rf_ring_count(r), cap);
        assert_false(rf_ring_enqueue(r, v, 8));
        memset(v, 0, sizeof(v));
        assert_int_equal(rf_ring_dequeue_bulk(r, v, 8, cap), cap);
        for (uint32_t i = 0; i < cap; i++)
            assert_int_equal(v[i], i);
        assert_int_equal(rf_ring_count(r), 0);
    }
    rf_ring_destroy(r);
}

static void test_element_sizes(void **state)
{
    (void)state;
    const uint32_t sizes[] = {8, 16, 64, 256};
    for (size_t s = 0; s < 4; s++) {
        const uint32_t esize = sizes[s], cap = 32;
        rf_ring *r = rf_ring_create(cap, esize);
        assert_non_null(r);
        uint8_t *scratch = malloc((size_t)cap * esize);
        assert_non_null(scratch);
        uint64_t in = 0, out = 0;
        for (int round = 0; round < 200; round++) {
            uint32_t n = 1 + (uint32_t)(round * 13) % cap;
            if (n > cap - (in - out))
                n = (uint32_t)(cap - (in - out));
            if (n)
                put_n(r, esize, &in, n, scratch);
            uint32_t m = 1 + (uint32_t)(round * 11) % cap;
            if (m > in - out)
                m = (uint32_t)(in - out);
            if (m)
                get_n(r, esize, &out, m, scratch);
        }
        rf_ring_stats st;
        rf_ring_stats_read(r, &st);
        assert_int_equal(st.esize, esize);
        free(scratch);
        rf_ring_destroy(r);
    }

    /* The constant-esize single-element paths (inlined copies) for 64 and 256. */
    rf_ring *r = rf_ring_create(4, 256);
    assert_non_null(r);
    uint8_t a[256], b[256];
    for (uint64_t i = 0; i < 10; i++) {
        fill_elem(a, 256, i);
        assert_true(rf_ring_enqueue(r, a, 256));
        assert_true(rf_ring_dequeue(r, b, 256));
        check_elem(b, 256, i);
    }
    rf_ring_destroy(r);
    r = rf_ring_create(4, 64);
    assert_non_null(r);
    for (uint64_t i = 0; i < 10; i++) {
        fill_elem(a, 64, i);
        assert_true(rf_ring_enqueue(r, a, 64));
        assert_true(rf_ring_dequeue(r, b, 64));
        check_elem(b, 64, i);
    }
    rf_ring_destroy(r);
}

static void test_invalid_params(void **state)
{
    (void)state;
    const uint32_t bad_caps[] = {0, 1, 3, 6, 100, 1023, (1u << 30) + 1, 1u << 31, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad_caps) / sizeof(bad_caps[0]); i++) {
        errno = 0;
        assert_null(rf_ring_create(bad_caps[i], 8));
        assert_int_equal(errno, EINVAL);
        assert_int_equal(rf_ring_memsize(bad_caps[i], 8), 0);
    }
    const uint32_t bad_esizes[] = {0, 1, 4, 12, 20, 257, 264, 512};
    for (size_t i = 0; i < sizeof(bad_esizes) / sizeof(bad_esizes[0]); i++) {
        errno = 0;
        assert_null(rf_ring_create(16, bad_esizes[i]));
        assert_int_equal(errno, EINVAL);
        assert_int_equal(rf_ring_memsize(16, bad_esizes[i]), 0);
    }
    /* The edges that are valid (size only: 2^30 slots is not allocated). */
    assert_true(rf_ring_memsize(2, 8) > 0);
    assert_true(rf_ring_memsize(1u << 30, 8) >= ((size_t)1 << 33));
    assert_true(rf_ring_memsize(16, 256) >= 16 * 256);

    /* rf_ring_init on caller memory. */
    size_t sz = rf_ring_memsize(16, 16);
    rf_ring *r = aligned_alloc(64, (sz + 63) & ~(size_t)63);
    assert_non_null(r);
    assert_int_equal(rf_ring_init(r, 3, 16), -EINVAL);
    assert_int_equal(rf_ring_init(r, 16, 10), -EINVAL);
    assert_int_equal(rf_ring_init(NULL, 16, 16), -EINVAL);
    assert_int_equal(rf_ring_init(r, 16, 16), 0);
    uint8_t e[16] = {1}, o[16] = {0};
    assert_true(rf_ring_enqueue(r, e, 16));
    assert_true(rf_ring_dequeue(r, o, 16));
    assert_memory_equal(e, o, 16);
    rf_ring_destroy(r); /* not owned: a no-op */
    free(r);
    rf_ring_destroy(NULL);
}

static void test_statistics(void **state)
{
    (void)state;
    rf_ring *r = rf_ring_create(8, 8);
    assert_non_null(r);
    rf_ring_stats st;
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.capacity, 8);
    assert_int_equal(st.esize, 8);
    assert_int_equal(st.fill + st.high_water + st.enqueued + st.dequeued + st.full_events +
                         st.dropped_newest + st.dropped_stopped + st.block_waits + st.empty_polls,
                     0);

    uint64_t v[16];
    for (uint64_t i = 0; i < 16; i++)
        v[i] = i;
    uint64_t o[16];
    assert_false(rf_ring_dequeue(r, o, 8)); /* empty */
    assert_int_equal(rf_ring_enqueue_burst(r, v, 8, 6), 6);
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.enqueued, 6);
    assert_int_equal(st.fill, 6);
    assert_int_equal(st.high_water, 6); /* seen although nothing was dequeued yet */
    assert_int_equal(st.empty_polls, 1);

    assert_int_equal(rf_ring_enqueue_bulk(r, v, 8, 3), 0); /* 2 free: bulk of 3 fails */
    assert_int_equal(rf_ring_enqueue_burst(r, v + 6, 8, 3), 2);
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.enqueued, 8);
    assert_int_equal(st.full_events, 2);
    assert_int_equal(st.high_water, 8);

    assert_int_equal(rf_ring_dequeue_burst(r, o, 8, 5), 5);
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.dequeued, 5);
    assert_int_equal(st.fill, 3);
    assert_int_equal(st.high_water, 8); /* a high-water mark does not come down */

    /* Drop newest: 3 in, 5 free, offer 7 -> 5 placed, 2 dropped and counted. */
    assert_int_equal(rf_ring_enqueue_policy(r, v, 8, 7, RF_RING_DROP_NEWEST, NULL), 5);
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.enqueued, 13);
    assert_int_equal(st.dropped_newest, 2);
    assert_int_equal(st.full_events, 3);
    assert_int_equal(st.dropped_stopped, 0);

    /* Block with the stop flag already set on a full ring: nothing placed,
     * every element counted as dropped because of shutdown. */
    _Atomic bool stop = true;
    assert_int_equal(rf_ring_enqueue_policy(r, v, 8, 4, RF_RING_BLOCK, &stop), 0);
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.dropped_stopped, 4);
    assert_int_equal(st.block_waits, 1);
    assert_int_equal(st.enqueued, 13);

    /* Block with room: everything placed, nothing dropped or waited for. */
    assert_int_equal(rf_ring_dequeue_burst(r, o, 8, 8), 8);
    atomic_store(&stop, false);
    assert_int_equal(rf_ring_enqueue_policy(r, v, 8, 4, RF_RING_BLOCK, &stop), 4);
    rf_ring_stats_read(r, &st);
    assert_int_equal(st.enqueued, 17);
    assert_int_equal(st.dequeued, 13);
    assert_int_equal(st.dropped_stopped, 4);
    assert_int_equal(st.block_waits, 1);
    assert_int_equal(st.fill, 4);
    /* Conservation: everything offered is enqueued or dropped by a reason. */
    assert_int_equal(st.enqueued + st.dropped_newest + st.dropped_stopped, 6 + 2 + 5 + 2 + 4 + 4);
    assert_int_equal(st.enqueued - st.dequeued, st.fill);
    rf_ring_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_no_loss),
        cmocka_unit_test(test_capacity_exactly_usable),
        cmocka_unit_test(test_burst_vs_bulk),
        cmocka_unit_test(test_straddle_every_capacity_and_offset),
        cmocka_unit_test(test_straddle_by_traffic),
        cmocka_unit_test(test_index_wraparound),
        cmocka_unit_test(test_element_sizes),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_statistics),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
