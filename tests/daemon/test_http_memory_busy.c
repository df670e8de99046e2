/* Resident memory above engine.memory_limit (the control thread's sample,
 * daemon/ops/views/show_memory.c, sets rf_engine_set_memory_over): HTTP
 * writes are answered 503 with Retry-After, counted as busy_memory by the
 * worker that answered, and nothing of the refused body is taken; once
 * memory is back under the limit, writes are taken again. In process, the
 * flag set directly: making this process's resident memory exceed a limit
 * the configuration's own worst case fits under is not something a test can
 * do on purpose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/engine.h"
#include "daemon/settings.h"
#include "daemon_proc.h"
#include "engine_inproc.h"

/* One POST /write on a new connection: the status line's code, -1 when no
 * answer came. The answer's head is copied to head. */
static int post_write(int port, const char *body, char *head, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /write?db=x&precision=s HTTP/1.1\r\nHost: t\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    ssize_t got = recv(fd, head, cap - 1, 0);
    close(fd);
    if (got < 12)
        return -1;
    head[got] = '\0';
    return atoi(head + 9);
}

static uint64_t busy_memory(rf_engine *e)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < rf_engine_workers(e); i++) {
        rf_engine_worker_stats st;
        rf_engine_worker_stats_read(e, i, &st);
        sum += st.busy_memory;
    }
    return sum;
}

static void test_memory_over_answers_503(void **state)
{
    (void)state;
    tproc_dir_init("rf-test-http-memory-busy");
    const int port = tproc_port_base() + 40;
    char cfg[1024];
    snprintf(cfg, sizeof(cfg),
             "engine: {workers: 2, pin_workers: false, run_dir: %s/run, data_dir: %s}\n"
             "listeners:\n"
             "  - {name: web, transport: tcp, protocol: http, port: %d}\n"
             "stats: {prometheus: {enabled: false}}\n"
             "storage: {enabled: false}\n"
             "pipeline: {max_series: 1024}\n",
             tproc_dir(), tproc_dir(), port);
    rf_settings s;
    rf_engine *e = engine_inproc_start(cfg, &s);

    char head[2048];
    assert_int_equal(post_write(port, "before v=1 1700000000\n", head, sizeof(head)), 204);
    assert_int_equal(busy_memory(e), 0);

    rf_engine_set_memory_over(e, true);
    for (int i = 0; i < 4; i++) { /* whichever worker takes the connection */
        assert_int_equal(post_write(port, "during v=1 1700000000\n", head, sizeof(head)), 503);
        assert_non_null(strstr(head, "Retry-After: 1\r\n"));
    }
    assert_int_equal(busy_memory(e), 4);

    rf_engine_set_memory_over(e, false);
    assert_int_equal(post_write(port, "after v=1 1700000000\n", head, sizeof(head)), 204);
    assert_int_equal(busy_memory(e), 4);

    rf_engine_stop(e);
    rf_settings_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_over_answers_503),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
