/* RF_ASSERT and the contracts it checks (core/assert/assert.h):
 *   - a broken contract aborts: a ring call with another element size than
 *     the ring's, an owned object called from a second thread, RF_ASSERT(0);
 *   - a kept one does not: the same calls with the right size, from the
 *     owning thread, and after rf_owner_reset hands the object over.
 * Each case runs in a child process (fork) and the parent checks how it
 * ended. This file turns the checks on itself (RF_ENABLE_ASSERT before the
 * headers), so it tests the header-inline checks in a release build too. */
#ifndef RF_ENABLE_ASSERT
#define RF_ENABLE_ASSERT 1
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/assert/assert.h"
#include "core/ring/ring.h"

/* Runs fn in a child; returns the signal that ended it, or 0 for exit(0). */
static int run_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The abort is expected: keep its message out of the test log noise. */
        if (!freopen("/dev/null", "w", stderr))
            _exit(3);
        fn();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        return WTERMSIG(st);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    return 0;
}

static void assert_false_cond(void)
{
    RF_ASSERT(1 + 1 == 3);
}

static void ring_right_size(void)
{
    rf_ring *r = rf_ring_create(8, 16);
    uint64_t x[2] = {1, 2}, y[2];
    if (!r || !rf_ring_enqueue(r, x, 16) || !rf_ring_dequeue(r, y, 16) || y[1] != 2)
        _exit(4);
    rf_ring_destroy(r);
}

static void ring_wrong_size(void)
{
    rf_ring *r = rf_ring_create(8, 16);
    uint64_t x[2] = {1, 2};
    (void)rf_ring_enqueue(r, x, 8);
}

static rf_owner g_owner;

static void *touch_owned(void *arg)
{
    (void)arg;
    RF_ASSERT_OWNER(&g_owner);
    return NULL;
}

static void owner_second_thread(void)
{
    RF_ASSERT_OWNER(&g_owner);
    pthread_t t;
    pthread_create(&t, NULL, touch_owned, NULL);
    pthread_join(t, NULL);
}

static void owner_handed_over(void)
{
    RF_ASSERT_OWNER(&g_owner);
    RF_ASSERT_OWNER(&g_owner);
    rf_owner_reset(&g_owner); /* e.g. the worker stopped; joined below */
    pthread_t t;
    pthread_create(&t, NULL, touch_owned, NULL);
    pthread_join(t, NULL);
}

static void test_broken_contracts_abort(void **state)
{
    (void)state;
    assert_int_equal(run_child(assert_false_cond), SIGABRT);
    assert_int_equal(run_child(ring_wrong_size), SIGABRT);
    assert_int_equal(run_child(owner_second_thread), SIGABRT);
}

static void test_kept_contracts_pass(void **state)
{
    (void)state;
    assert_int_equal(run_child(ring_right_size), 0);
    assert_int_equal(run_child(owner_handed_over), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broken_contracts_abort),
        cmocka_unit_test(test_kept_contracts_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
