/* Two-thread test of rf_ring: one producer thread and one consumer thread move
 * tens of millions of sequence numbers with random burst sizes on both sides
 * (burst and bulk calls, and the blocking policy), and the consumer asserts
 * FIFO order with no loss and no duplicates. A separate executable so that CI
 * can run it under ThreadSanitizer, which then checks the ring's
 * acquire/release pairs on real concurrent traffic. Sanitized builds move
 * fewer elements to stay within a few seconds. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/ring/ring.h"

#if defined(__SANITIZE_THREAD__)
#define MT_SCALE 10u /* ThreadSanitizer slows the loops 20-50x */
#elif defined(__SANITIZE_ADDRESS__)
#define MT_SCALE 5u
#else
#define MT_SCALE 1u
#endif

#define MT_MAX_BURST 64u

struct mt_run {
    rf_ring *r;
    uint32_t esize;
    uint64_t total;
    unsigned seed;
    _Atomic bool stop;  /* never set: the blocking policy must not drop */
    uint64_t received;  /* written by the consumer, read after join */
    uint64_t bad_order; /* elements whose sequence number was not the next one */
    uint64_t bad_payload;
    uint64_t short_blocks; /* producer: RF_RING_BLOCK returned early */
};

/* Small xorshift so each thread has its own deterministic random bursts. */
static uint32_t mt_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void mt_fill(uint8_t *e, uint32_t esize, uint64_t seq)
{
    memcpy(e, &seq, 8);
    for (uint32_t w = 8; w < esize; w += 8) {
        uint64_t x = seq ^ ((uint64_t)w << 56);
        memcpy(e + w, &x, 8);
    }
}

static bool mt_payload_ok(const uint8_t *e, uint32_t esize, uint64_t seq)
{
    for (uint32_t w = 8; w < esize; w += 8) {
        uint64_t x;
        memcpy(&x, e + w, 8);
        if (x != (seq ^ ((uint64_t)w << 56)))
            return false;
    }
    return true;
}

/* Called when a side made no progress: yield now and then, so the test stays
 * quick when the two threads share a CPU with other work (a loaded CI box or
 * the sanitizer runtime) instead of spinning through whole time slices. */
static void mt_backoff(unsigned *idle)
{
    if (++*idle % 64 == 0)
        sched_yield();
}

static void *mt_producer(void *arg)
{
    struct mt_run *m = arg;
    uint32_t rng = m->seed | 1;
    uint8_t buf[MT_MAX_BURST * 64];
    uint64_t next = 0;
    unsigned idle = 0;
    while (next < m->total) {
        uint32_t n = 1 + mt_rand(&rng) % MT_MAX_BURST;
        if (n > m->total - next)
            n = (uint32_t)(m->total - next);
        for (uint32_t i = 0; i < n; i++)
            mt_fill(buf + (size_t)i * m->esize, m->esize, next + i);
        uint32_t mode = mt_rand(&rng) % 4;
        uint32_t placed = 0;
        if (mode == 3) {
            placed = rf_ring_enqueue_policy(m->r, buf, m->esize, n, RF_RING_BLOCK, &m->stop);
            m->short_blocks += placed != n; /* no cmocka asserts off the main thread */
            if (placed != n)
                return NULL;
        } else {
            while (placed < n) {
                uint32_t got = mode == 0
                                   ? rf_ring_enqueue_bulk(m->r, buf + (size_t)placed * m->esize,
                                                          m->esize, n - placed)
                                   : rf_ring_enqueue_burst(m->r, buf + (size_t)placed * m->esize,
                                                           m->esize, n - placed);
                placed += got;
                if (got == 0)
                    mt_backoff(&idle);
            }
        }
        next += n;
    }
    return NULL;
}

static void *mt_consumer(void *arg)
{
    struct mt_run *m = arg;
    uint32_t rng = (m->seed * 2654435761u) | 1;
    uint8_t buf[MT_MAX_BURST * 64];
    uint64_t next = 0;
    unsigned idle = 0;
    while (next < m->total) {
        uint32_t n = 1 + mt_rand(&rng) % MT_MAX_BURST;
        uint32_t got = (mt_rand(&rng) & 1) ? rf_ring_dequeue_burst(m->r, buf, m->esize, n)
                                           : rf_ring_dequeue_bulk(m->r, buf, m->esize, n);
        if (got == 0)
            mt_backoff(&idle);
        for (uint32_t i = 0; i < got; i++) {
            const uint8_t *e = buf + (size_t)i * m->esize;
            uint64_t seq;
            memcpy(&seq, e, 8);
            m->bad_order += seq != next;
            m->bad_payload += !mt_payload_ok(e, m->esize, seq);
            next = seq + 1;
            m->received++;
        }
    }
    return NULL;
}

static void mt_run_one(uint32_t capacity, uint32_t esize, uint64_t total, uint32_t start_index,
                       unsigned seed)
{
    struct mt_run m = {.esize = esize, .total = total, .seed = seed};
    atomic_init(&m.stop, false);
    m.r = rf_ring_create(capacity, esize);
    assert_non_null(m.r);
    rf_ring_reset_indices(m.r, start_index);
    pthread_t p, c;
    assert_int_equal(pthread_create(&c, NULL, mt_consumer, &m), 0);
    assert_int_equal(pthread_create(&p, NULL, mt_producer, &m), 0);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    assert_int_equal(m.short_blocks, 0);
    assert_int_equal(m.received, total);
    assert_int_equal(m.bad_order, 0);
    assert_int_equal(m.bad_payload, 0);
    assert_int_equal(rf_ring_count(m.r), 0);
    rf_ring_stats st;
    rf_ring_stats_read(m.r, &st);
    assert_int_equal(st.enqueued, total);
    assert_int_equal(st.dequeued, total);
    assert_int_equal(st.dropped_newest + st.dropped_stopped, 0);
    assert_true(st.high_water <= capacity);
    rf_ring_destroy(m.r);
}

/* Pointer-sized elements, a mid-size ring, indices crossing 2^32 early on. */
static void test_mt_8b(void **state)
{
    (void)state;
    mt_run_one(1024, 8, 20000000u / MT_SCALE, UINT32_MAX - 5000, 1);
}

/* A tiny ring: the producer and consumer meet at full and empty constantly. */
static void test_mt_small_ring(void **state)
{
    (void)state;
    mt_run_one(64, 8, 5000000u / MT_SCALE, UINT32_MAX - 100, 2);
}

/* 64-byte records (one rf_event each), every word checked. */
static void test_mt_64b(void **state)
{
    (void)state;
    mt_run_one(256, 64, 5000000u / MT_SCALE, 0, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mt_8b),
        cmocka_unit_test(test_mt_small_ring),
        cmocka_unit_test(test_mt_64b),
    };
    return cmocka_run_group_tests_name("ring_mt", tests, NULL, NULL);
}
