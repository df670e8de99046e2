/* Built instead of dpdk.c when DPDK is not (-Ddpdk=disabled, or libdpdk not
 * found): the same API, where rf_dpdk_open says so and nothing else can be
 * reached (there is never an rf_dpdk to pass). */
#include <errno.h>
#include <stddef.h>

#include "ingest/dpdk/dpdk.h"

bool rf_dpdk_built(void)
{
    return false;
}

int rf_dpdk_open(const rf_dpdk_config *cfg, uint32_t workers, rf_dpdk **out, rf_err *err)
{
    (void)cfg;
    (void)workers;
    (void)out;
    return rf_err_set(err, ENOTSUP,
                      "DPDK: ringflow was built without DPDK (rebuild with libdpdk-dev installed "
                      "and -Ddpdk=enabled), dpdk.enabled must be false");
}

int rf_dpdk_open_ports(const rf_dpdk_config *cfg, uint32_t workers, rf_dpdk **out, rf_err *err)
{
    return rf_dpdk_open(cfg, workers, out, err);
}

int rf_dpdk_start(rf_dpdk *d, const int16_t *worker_node, rf_err *err)
{
    (void)d;
    (void)worker_node;
    return rf_err_set(err, ENOTSUP, "DPDK: ringflow was built without DPDK");
}

void rf_dpdk_close(rf_dpdk *d)
{
    (void)d;
}

unsigned rf_dpdk_port_pool_count(const rf_dpdk *d, unsigned port)
{
    (void)d;
    (void)port;
    return 0;
}

int rf_dpdk_port_pool_node(const rf_dpdk *d, unsigned port, unsigned pool)
{
    (void)d;
    (void)port;
    (void)pool;
    return -1;
}

int rf_dpdk_queue_numa_node(const rf_dpdk_queue *q)
{
    (void)q;
    return -1;
}

unsigned rf_dpdk_port_count(const rf_dpdk *d)
{
    (void)d;
    return 0;
}

const char *rf_dpdk_port_name(const rf_dpdk *d, unsigned port)
{
    (void)d;
    (void)port;
    return NULL;
}

int rf_dpdk_port_numa_node(const rf_dpdk *d, unsigned port)
{
    (void)d;
    (void)port;
    return -1;
}

unsigned rf_dpdk_queue_count(const rf_dpdk *d, unsigned port)
{
    (void)d;
    (void)port;
    return 0;
}

rf_dpdk_queue *rf_dpdk_queue_at(rf_dpdk *d, unsigned port, unsigned queue)
{
    (void)d;
    (void)port;
    (void)queue;
    return NULL;
}

int rf_dpdk_queue_set_handler(rf_dpdk_queue *q, uint16_t udp_port, const rf_listen_handler *h,
                              rf_err *err)
{
    (void)q;
    (void)udp_port;
    (void)h;
    return rf_err_set(err, ENOTSUP, "DPDK: ringflow was built without DPDK");
}

uint32_t rf_dpdk_queue_poll(rf_dpdk_queue *q, uint32_t max)
{
    (void)q;
    (void)max;
    return 0;
}

int rf_dpdk_thread_register(rf_err *err)
{
    return rf_err_set(err, ENOTSUP, "DPDK: ringflow was built without DPDK");
}

void rf_dpdk_thread_unregister(void)
{
}

const char *rf_dpdk_counter_name(enum rf_dpdk_counter_id id)
{
    (void)id;
    return "unknown";
}

uint64_t rf_dpdk_queue_counter(const rf_dpdk_queue *q, enum rf_dpdk_counter_id id)
{
    (void)q;
    (void)id;
    return 0;
}

int rf_dpdk_port_stats_get(rf_dpdk *d, unsigned port, rf_dpdk_port_stats *out, rf_err *err)
{
    (void)d;
    (void)port;
    (void)out;
    return rf_err_set(err, ENOTSUP, "DPDK: ringflow was built without DPDK");
}
