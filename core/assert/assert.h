/* RF_ASSERT: contracts that a caller must keep, checked where they are stated.
 *
 * Contract
 *   - RF_ASSERT(cond) aborts with the condition, file, line and function on
 *     stderr when cond is false, in builds compiled with RF_ENABLE_ASSERT:
 *     the meson build defines it for every buildtype but release, and for a
 *     release build with a sanitizer (so the debug, ASan/UBSan, TSan and fuzz
 *     trees of scripts/test.sh and scripts/fuzz.sh all check).
 *   - In a release build the macro compiles to nothing: cond is not evaluated
 *     (it must have no side effects) and costs nothing on the hot path.
 *   - For preconditions a caller can break (an element size, the owning
 *     thread, "nothing pending"), not for input: bad input is an error or a
 *     counted rejection, never an assertion.
 */
#ifndef RF_CORE_ASSERT_H
#define RF_CORE_ASSERT_H

#include <pthread.h>
#include <stdbool.h>

#ifdef RF_ENABLE_ASSERT
#include <stdio.h>
#include <stdlib.h>

__attribute__((cold, noreturn)) static inline void rf_assert_fail(const char *cond,
                                                                  const char *file, int line,
                                                                  const char *func)
{
    fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", file, line, func, cond);
    fflush(stderr);
    abort();
}

#define RF_ASSERT(cond)                                                                            \
    (__builtin_expect(!!(cond), 1) ? (void)0 : rf_assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
/* sizeof keeps the names in cond used (no unused-variable warnings) without
 * evaluating anything. */
#define RF_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

/* The owning thread of an object whose calls must all come from one thread
 * (a parse context, a pipeline, a listener set). The first checked call
 * records the calling thread; every later one asserts it is the same.
 * rf_owner_reset hands the object over (to the thread of its next checked
 * call); the caller orders the handover (a thread start or join). Only the
 * owning thread touches the record, so it needs no atomics. In a release
 * build both calls do nothing: the record stays zero. */
typedef struct rf_owner {
    pthread_t thread;
    bool set;
} rf_owner;

#ifdef RF_ENABLE_ASSERT
#define RF_ASSERT_OWNER(o)                                                                         \
    do {                                                                                           \
        rf_owner *rf_owner_ = (o);                                                                 \
        if (!rf_owner_->set) {                                                                     \
            rf_owner_->thread = pthread_self();                                                    \
            rf_owner_->set = true;                                                                 \
        } else if (!pthread_equal(rf_owner_->thread, pthread_self())) {                            \
            rf_assert_fail("called from the owning thread (" #o ")", __FILE__, __LINE__,           \
                           __func__);                                                              \
        }                                                                                          \
    } while (0)
#else
#define RF_ASSERT_OWNER(o) ((void)sizeof(o))
#endif

static inline void rf_owner_reset(rf_owner *o)
{
    o->set = false;
}

#endif
