/* One RX queue per worker: a net_ring port with two queues (one rte_ring
 * each), two worker threads that register as lcores and poll only their own
 * queue, while the control thread reads the port statistics. Each worker must
 * see exactly the frames put on its ring, through its own handler. Built with
 * DPDK's flags (it enqueues mbufs itself). One EAL per process. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "core/clock/clock.h"
#include "ingest/dpdk/dpdk.h"
#include "tests/dpdk/pkt_build.h"

#define PER_QUEUE 3000

typedef struct worker {
    rf_dpdk_queue *q;
    unsigned datagrams;
    uint64_t byte_sum; /* sum of the first payload byte: which frames came */
    unsigned wrong_port;
    int reg_rc;
    _Atomic bool stop; /* set by main (release), read by the worker (acquire) */
} worker;

static void on_data(void *ctx, const rf_listener *l, const rf_listen_chunk *c)
{
    (void)l;
    worker *w = ctx;
    w->datagrams++;
    w->byte_sum += (uint8_t)c->data[0];
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rf_err err;
    w->reg_rc = rf_dpdk_thread_register(&err);
    /* Pairs with the release store in the test: after stop, one last poll
     * drains what was enqueued before it. */
    while (!atomic_load_explicit(&w->stop, memory_order_acquire))
        rf_dpdk_queue_poll(w->q, 0);
    while (rf_dpdk_queue_poll(w->q, 0))
        ;
    rf_dpdk_thread_unregister();
    return NULL;
}

static void test_two_queues(void **state)
{
    (void)state;
    rf_dpdk_config cfg;
    rf_dpdk_config_init(&cfg);
    cfg.enabled = true;
    cfg.huge_pages = false;
    cfg.pci = false;
    cfg.in_memory = true;
    cfg.memory_bytes = 128u << 20;
    snprintf(cfg.eal_args[cfg.n_eal_args++], RF_DPDK_ARG_MAX, "--no-telemetry");
    snprintf(cfg.eal_args[cfg.n_eal_args++], RF_DPDK_ARG_MAX, "--log-level=warning");
    rf_dpdk_port_config_init(&cfg.ports[0]);
    snprintf(cfg.ports[0].name, sizeof(cfg.ports[0].name), "r");
    snprintf(cfg.ports[0].vdev, RF_DPDK_ARG_MAX, "net_ring0");
    cfg.ports[0].mbufs = 4095;
    cfg.n_ports = 1;
    rf_dpdk *d;
    rf_err err;
    if (rf_dpdk_open(&cfg, 2, &d, &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(rf_dpdk_queue_count(d, 0), 2);

    static worker w[2];
    struct rte_ring *ring[2];
    for (int i = 0; i < 2; i++) {
        w[i].q = rf_dpdk_queue_at(d, 0, (unsigned)i);
        assert_non_null(w[i].q);
        rf_listen_handler h = {.on_data = on_data, .ctx = &w[i]};
        assert_int_equal(rf_dpdk_queue_set_handler(w[i].q, 8125, &h, &err), 0);
        char name[64];
        snprintf(name, sizeof(name), "ETH_RXTX%d_net_ring0", i);
        ring[i] = rte_ring_lookup(name);
        assert_non_null(ring[i]);
    }
    struct rte_mempool *mp =
        rte_pktmbuf_pool_create("t_frames", 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    assert_non_null(mp);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);

    /* Queue 0 gets payloads starting with 'a', queue 1 with 'b'. */
    pb_frame f;
    uint64_t expect_sum[2] = {0, 0};
    for (unsigned n = 0; n < PER_QUEUE; n++) {
        for (int i = 0; i < 2; i++) {
            const char *payload = i == 0 ? "a:1|c\n" : "b:2|g\n";
            pb_spec s = {.family = 4,
                         .sport = 9,
                         .dport = 8125,
                         .payload = payload,
                         .src4 = {10, 0, 0, (uint8_t)(1 + i)},
                         .dst4 = {10, 0, 0, 9}};
            pb_build(&s, &f);
            struct rte_mbuf *m;
            while (!(m = rte_pktmbuf_alloc(mp)))
                ; /* the workers free them back */
            memcpy(rte_pktmbuf_append(m, (uint16_t)f.len), f.b, f.len);
            while (rte_ring_enqueue(ring[i], m) != 0)
                ; /* ring full: the worker drains it */
            expect_sum[i] += (uint8_t)payload[0];
        }
        if (n % 500 == 0) {
            rf_dpdk_port_stats st; /* control thread, while the workers poll */
            assert_int_equal(rf_dpdk_port_stats_get(d, 0, &st, &err), 0);
            assert_true(st.ipackets <= 2ull * PER_QUEUE);
        }
    }
    for (int i = 0; i < 2; i++)
        atomic_store_explicit(&w[i].stop, true, memory_order_release);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    for (int i = 0; i < 2; i++) {
        assert_int_equal(w[i].reg_rc, 0);
        assert_int_equal(w[i].datagrams, PER_QUEUE);
        assert_int_equal(w[i].byte_sum, expect_sum[i]);
        assert_int_equal(rf_dpdk_queue_counter(w[i].q, RF_DC_PACKETS), PER_QUEUE);
        assert_int_equal(rf_dpdk_queue_counter(w[i].q, RF_DC_DATAGRAMS), PER_QUEUE);
    }
    rf_dpdk_port_stats st;
    assert_int_equal(rf_dpdk_port_stats_get(d, 0, &st, &err), 0);
    assert_int_equal(st.ipackets, 2 * PER_QUEUE);
    /* Every frame went back to its pool: the poll path frees promptly. */
    assert_int_equal(rte_mempool_avail_count(mp), 2047);
    rte_mempool_free(mp);
    rf_dpdk_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_queues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
