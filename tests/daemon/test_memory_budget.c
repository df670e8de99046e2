/* engine.memory_limit and the worst case it is checked against
 * (daemon/memory_budget.h):
 *   - a limit below the worst case refuses the configuration at
 *     FILE:LINE:COL of memory_limit, naming the total, the limit and the
 *     largest parts with the keys to lower; a limit above it loads;
 *   - the parts are largest first and add up to the total; lowering what a
 *     part names lowers it;
 *   - the modules' bounds are checked against reality: the parse context's
 *     for the defaults, the series table by the resident memory of one
 *     filled to its maximum, a ring by the memory of one written all round. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/event/event.h"
#include "core/ring/ring.h"
#include "daemon/memory_budget.h"
#include "daemon/settings.h"
#include "ingest/protocol/protocol.h"
#include "stages/series/series_table.h"
#include "core/mem/mem.h"

static char g_path[256];

static int load_text(const char *text, rf_settings *s, rf_err *err)
{
    snprintf(g_path, sizeof(g_path), "/tmp/rf-membudget-%d.yaml", (int)getpid());
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    rf_err_clear(err);
    int rc = rf_settings_load(g_path, s, err);
    unlink(g_path);
    return rc;
}

/* Resident memory says nothing under AddressSanitizer (redzones, the
 * quarantine of freed blocks): there only the functional checks run. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECKS 0
#endif
#endif
#ifndef RSS_CHECKS
#define RSS_CHECKS 1
#endif

#define SMALL                                                                                      \
    "engine: {workers: 2, ring: {capacity: 4096}%s}\n"                                             \
    "pipeline: {max_series: 50000}\n"                                                              \
    "storage: {buffer_memory: 64MiB, segment_max_bytes: 16MiB}\n"                                  \
    "stats: {prometheus: {enabled: false}}\n"

static void test_limit_refuses_with_place_and_parts(void **state)
{
    (void)state;
    char text[1024];
    rf_settings s;
    rf_err err;
    snprintf(text, sizeof(text), SMALL, "");
    assert_int_equal(load_text(text, &s, &err), 0);
    rf_memory_budget b;
    rf_memory_budget_compute(&s, &b);
    rf_settings_release(&s);
    char t[32];
    print_message("worst case %s in %u parts; largest %s %lu\n",
                  rf_memory_format(b.total, t, sizeof(t)), b.n, b.parts[0].name,
                  (unsigned long)b.parts[0].bytes);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < b.n; i++) {
        sum += b.parts[i].bytes;
        if (i)
            assert_true(b.parts[i].bytes <= b.parts[i - 1].bytes);
        assert_non_null(b.parts[i].lower);
    }
    assert_int_equal(sum, b.total);

    /* A limit one MiB below it: refused, with the place and the parts. */
    snprintf(text, sizeof(text), SMALL, ", memory_limit: 200MiB");
    if (b.total > (200ull << 20)) {
        assert_true(load_text(text, &s, &err) < 0);
        print_message("%s\n", err.msg);
        assert_non_null(strstr(err.msg, ":1:")); /* line 1 */
        assert_non_null(strstr(err.msg, "engine.memory_limit"));
        assert_non_null(strstr(err.msg, "200 MiB"));
        assert_non_null(strstr(err.msg, b.parts[0].name));
        assert_non_null(strstr(err.msg, b.parts[0].lower));
    }
    /* Above it: loads. */
    char lim[64];
    snprintf(lim, sizeof(lim), ", memory_limit: %lu", (unsigned long)(b.total + 1));
    snprintf(text, sizeof(text), SMALL, lim);
    assert_int_equal(load_text(text, &s, &err), 0);
    assert_int_equal(s.daemon.engine.memory_limit, b.total + 1);
    rf_settings_release(&s);
    /* Exactly at it: loads (the limit is inclusive). */
    snprintf(lim, sizeof(lim), ", memory_limit: %lu", (unsigned long)b.total);
    snprintf(text, sizeof(text), SMALL, lim);
    assert_int_equal(load_text(text, &s, &err), 0);
    rf_settings_release(&s);
}

static uint64_t part(const rf_memory_budget *b, const char *name)
{
    for (uint32_t i = 0; i < b->n; i++)
        if (!strcmp(b->parts[i].name, name))
            return b->parts[i].bytes;
    return 0;
}

static void test_lowering_a_key_lowers_its_part(void **state)
{
    (void)state;
    rf_settings s;
    rf_err err;
    rf_memory_budget a, b;
    /* max_series fixed: under auto it would grow into what the lower
     * buffer_memory frees, and no limit, so that nothing else moves. */
#define FIXED "engine: {memory_limit: 0}\npipeline: {max_series: 1048576}\n"
    assert_int_equal(load_text(FIXED "storage: {buffer_memory: 256MiB}\n", &s, &err), 0);
    rf_memory_budget_compute(&s, &a);
    rf_settings_release(&s);
    assert_int_equal(load_text(FIXED "storage: {buffer_memory: 16MiB}\n", &s, &err), 0);
#undef FIXED
    rf_memory_budget_compute(&s, &b);
    rf_settings_release(&s);
    assert_int_equal(part(&a, "storage point buffers"), 2 * (256ull << 20));
    assert_int_equal(part(&b, "storage point buffers"), 2 * (16ull << 20));
    assert_int_equal(a.total - b.total, 2 * (240ull << 20));
    /* The default configuration: every part the defaults configure. */
    assert_int_equal(rf_settings_load(NULL, &s, &err), 0);
    rf_memory_budget_compute(&s, &a);
    rf_settings_release(&s);
    for (uint32_t i = 0; i < a.n; i++) {
        char t[32];
        print_message("  %-52s %10s  (%s)\n", a.parts[i].name,
                      rf_memory_format(a.parts[i].bytes, t, sizeof(t)), a.parts[i].lower);
    }
    assert_true(part(&a, "series tables") > 0);
    assert_true(part(&a, "rings between workers") > 0);
    assert_true(part(&a, "parse contexts") > 0);
    assert_true(part(&a, "TCP line buffers") >= 2ull * 2 * 1024 * 65536); /* 2 TCP x 2 workers */
    assert_int_equal(part(&a, "critical rings"), 0);                      /* no critical listener */
}

/* The parse context's bound for the defaults (its per-item sizes are
 * checked against the structures at compile time, ingest/protocol/context.c). */
static void test_parse_ctx_sizes(void **state)
{
    (void)state;
    rf_parse_config pc = {0};
    /* default caches: 1 MiB + 512 KiB, a 64 KiB unescape buffer, ... */
    uint64_t b = rf_parse_ctx_memory_bound(&pc);
    assert_true(b > (1536ull << 10) + 65536);
    assert_true(b < (2ull << 20) + (512ull << 10));
}

/* A series table filled to max_series with keys of max_tags tags: the
 * resident memory it adds stays under the bound (table) + keys. */
static void test_series_table_bound(void **state)
{
    (void)state;
    enum {
        MAX = 100000,
        TAGS = 6
    };
    const uint64_t rss0 = rf_mem_rss_bytes();
    rf_series_table *t = rf_series_table_new(MAX);
    assert_non_null(t);
    uint32_t max_key = 0;
    for (int i = 0; i < MAX; i++) {
        char text[256];
        int n = snprintf(text, sizeof(text),
                         "cpu_%d,a=%d,b=%d,c=%d,host=h%06d,region=r%d,zone=z%d usage_idle", i % 7,
                         i % 3, i % 5, i % 11, i, i % 4, i % 9);
        rf_series_key *k = rf_series_key_new(text, (size_t)n, (size_t)strcspn(text, ","),
                                             (size_t)(strrchr(text, ' ') - text + 1));
        if ((uint32_t)n > max_key)
            max_key = (uint32_t)n;
        assert_true(rf_series_table_define(t, k) >= 0);
    }
    assert_int_equal(rf_series_table_count(t), MAX);
    const uint64_t used = rf_mem_rss_bytes() - rss0;
    const uint64_t keys = (uint64_t)MAX * (sizeof(rf_series_key) + max_key + 1 + 16);
    const uint64_t bound = rf_series_table_memory_bound(MAX, TAGS) + keys + keys / 8 + 16 * MAX;
    print_message("series table of %d: +%lu bytes resident, bound %lu\n", MAX, (unsigned long)used,
                  (unsigned long)bound);
    if (RSS_CHECKS)
        assert_true(used <= bound);
    rf_series_table_free(t);
}

/* A ring written all the way round: its resident memory is in its bound. */
static void test_ring_bound(void **state)
{
    (void)state;
    const uint32_t cap = 1u << 16;
    const uint64_t rss0 = rf_mem_rss_bytes();
    rf_ring *r = rf_ring_create(cap, sizeof(rf_event));
    assert_non_null(r);
    rf_event ev;
    memset(&ev, 0x5a, sizeof(ev));
    for (uint32_t i = 0; i < cap; i++)
        assert_true(rf_ring_enqueue(r, &ev, sizeof(ev)));
    const uint64_t used = rf_mem_rss_bytes() - rss0;
    print_message("ring of %u x 64 B: +%lu resident, bound %zu\n", cap, (unsigned long)used,
                  rf_ring_memory_bound(cap, sizeof(rf_event)));
    if (RSS_CHECKS) {
        assert_true(used <= rf_ring_memory_bound(cap, sizeof(rf_event)));
        assert_true(used >= (uint64_t)cap * sizeof(rf_event) * 9 / 10);
    }
    rf_ring_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_refuses_with_place_and_parts),
        cmocka_unit_test(test_lowering_a_key_lowers_its_part),
        cmocka_unit_test(test_parse_ctx_sizes),
        cmocka_unit_test(test_series_table_bound),
        cmocka_unit_test(test_ring_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
