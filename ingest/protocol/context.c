/* The parse context: configuration, output batch, counters and the line loop
 * shared by the three protocols. */
#include <errno.h>
#include <stdlib.h>

#include "core/mem/bound.h"
#include "ingest/protocol/protocol_pvt.h"

static uint32_t round_pow2(uint32_t v, uint32_t dflt, uint32_t min)
{
    if (v == 0)
        v = dflt;
    if (v < min)
        v = min;
    uint32_t p = 1;
    while (p < v && p < (1u << 30))
        p <<= 1;
    return p;
}

rf_parse_ctx *rf_parse_ctx_new(const rf_parse_config *cfg, rf_event *batch, size_t batch_cap,
                               rf_parse_flush_fn flush, void *user, rf_err *err)
{
    if (!cfg || !batch || batch_cap == 0 || !flush) {
        rf_err_set(err, EINVAL, "parse context: batch, capacity and flush callback are required");
        return NULL;
    }
    if (cfg->ts_past_ns < 0 || cfg->ts_future_ns < 0 || (unsigned)cfg->precision > RF_PRECISION_H) {
        rf_err_set(err, EINVAL, "parse context: negative timestamp window or bad precision %d",
                   (int)cfg->precision);
        return NULL;
    }
    if (cfg->ts_policy > RF_TS_CLAMP) {
        rf_err_set(err, EINVAL, "parse context: bad timestamp policy %u", (unsigned)cfg->ts_policy);
        return NULL;
    }
    if (cfg->max_key_len > UINT16_MAX) {
        rf_err_set(err, EINVAL, "parse context: max_key_len %u exceeds 65535", cfg->max_key_len);
        return NULL;
    }
    size_t id_len = strnlen(cfg->corr_id_tag, sizeof(cfg->corr_id_tag));
    bool id_ok = id_len < sizeof(cfg->corr_id_tag);
    for (size_t i = 0; id_ok && i < id_len; i++) {
        char ch = cfg->corr_id_tag[i];
        id_ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                ch == '_' || ch == '.' || ch == '-';
    }
    if (!id_ok) {
        rf_err_set(err, EINVAL,
                   "parse context: the correlation id tag may hold only letters, "
                   "digits, '_', '.' and '-' (at most 63)");
        return NULL;
    }
    rf_parse_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) {
        rf_err_set(err, ENOMEM, "parse context: out of memory");
        return NULL;
    }
    ctx->cfg = *cfg;
    rf_parse_config *c = &ctx->cfg;
    if (!c->max_line_len)
        c->max_line_len = 65536;
    if (!c->max_tags)
        c->max_tags = 64;
    if (!c->max_fields)
        c->max_fields = 256;
    if (!c->max_key_len)
        c->max_key_len = 1024;
    c->series_cache_slots = round_pow2(c->series_cache_slots, 65536, 16);
    c->announced_slots = round_pow2(c->announced_slots, 65536, 16);
    c->reject_log_slots = round_pow2(c->reject_log_slots, 64, 1);

    ctx->batch = batch;
    ctx->batch_cap = batch_cap;
    ctx->flush = flush;
    ctx->user = user;
    ctx->raw_mask = c->series_cache_slots - 1;
    ctx->ann_mask = c->announced_slots - 1;
    ctx->rlog_mask = c->reject_log_slots - 1;
    ctx->raw = calloc(c->series_cache_slots, sizeof(*ctx->raw));
    ctx->announced = calloc(c->announced_slots, sizeof(*ctx->announced));
    ctx->tags = calloc((size_t)c->max_tags + 1, sizeof(*ctx->tags));
    ctx->pend = calloc(c->max_fields, sizeof(*ctx->pend));
    ctx->canon = malloc((size_t)c->max_key_len + 1);
    ctx->unesc = malloc((size_t)c->max_line_len + 1);
    ctx->id_tag_len = (uint32_t)id_len;
    if (id_len)
        ctx->idless = malloc((size_t)c->max_line_len + 1);
    ctx->rlog = calloc(c->reject_log_slots, sizeof(*ctx->rlog));
    ctx->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    ctx->types = c->field_types;
    if (!ctx->types)
        ctx->types = ctx->own_types = rf_field_types_new(2ull * c->series_cache_slots, err);
    if (!ctx->raw || !ctx->announced || !ctx->tags || !ctx->pend || !ctx->canon || !ctx->unesc ||
        (id_len && !ctx->idless) || !ctx->rlog || ctx->c_locale == (locale_t)0 || !ctx->types) {
        rf_parse_ctx_free(ctx);
        rf_err_set(err, ENOMEM, "parse context: out of memory for caches (%u + %u slots)",
                   c->series_cache_slots, c->announced_slots);
        return NULL;
    }
    return ctx;
}

/* Mirrors rf_parse_ctx_new: the struct, the raw-series cache, the
 * announced-ids set, tag and pending scratch, the canonical key and the
 * unescape buffers, the reject log. The per-item sizes are rounded up (the
 * assertions keep them upper bounds) so the figure does not move with every
 * field added to a struct. */
#define BOUND_CTX 4096u
#define BOUND_RAW_SLOT 16u
#define BOUND_TAG 48u
#define BOUND_REJECT_SLOT 256u
_Static_assert(sizeof(rf_parse_ctx) <= BOUND_CTX, "rf_parse_ctx_memory_bound: the context");
_Static_assert(sizeof(rf_raw_slot) <= BOUND_RAW_SLOT, "rf_parse_ctx_memory_bound: a cache slot");
_Static_assert(sizeof(rf_tag) <= BOUND_TAG, "rf_parse_ctx_memory_bound: a tag");
_Static_assert(sizeof(rf_reject_slot) <= BOUND_REJECT_SLOT,
               "rf_parse_ctx_memory_bound: a log slot");
uint64_t rf_parse_ctx_memory_bound(const rf_parse_config *cfg)
{
    const uint64_t tags = cfg->max_tags ? cfg->max_tags : 64;
    const uint64_t fields = cfg->max_fields ? cfg->max_fields : 256;
    const uint64_t key = cfg->max_key_len ? cfg->max_key_len : 1024;
    const uint64_t line = cfg->max_line_len ? cfg->max_line_len : 65536;
    uint64_t b = rf_mem_alloc_bound(BOUND_CTX);
    b += rf_mem_alloc_bound((uint64_t)round_pow2(cfg->series_cache_slots, 65536, 16) *
                            BOUND_RAW_SLOT);
    b += rf_mem_alloc_bound((uint64_t)round_pow2(cfg->announced_slots, 65536, 16) *
                            sizeof(uint64_t));
    b += rf_mem_alloc_bound((tags + 1) * BOUND_TAG) +
         rf_mem_alloc_bound(fields * sizeof(rf_pending));
    b += rf_mem_alloc_bound(key + 1) + rf_mem_alloc_bound(line + 1);
    if (cfg->corr_id_tag[0])
        b += rf_mem_alloc_bound(line + 1); /* the series section without the id tag */
    b += rf_mem_alloc_bound((uint64_t)round_pow2(cfg->reject_log_slots, 64, 1) * BOUND_REJECT_SLOT);
    if (cfg->collectd_auth)
        b += rf_collectd_auth_ctx_memory_bound(); /* made on the first signed/encrypted datagram */
    return b;
}

void rf_parse_ctx_free(rf_parse_ctx *ctx)
{
    if (!ctx)
        return;
    /* Freed by whoever stopped the owner (after a join): a handover. */
    rf_owner_reset(&ctx->owner);
    if (ctx->batch_n)
        rf_parse_flush(ctx);
    free(ctx->raw);
    free(ctx->announced);
    free(ctx->tags);
    free(ctx->pend);
    free(ctx->canon);
    free(ctx->unesc);
    free(ctx->idless);
    free(ctx->rlog);
    rf_cd_crypto_free(ctx->cd_crypto);
    rf_field_types_free(ctx->own_types);
    if (ctx->c_locale != (locale_t)0)
        freelocale(ctx->c_locale);
    free(ctx);
}

void rf_parse_flush(rf_parse_ctx *ctx)
{
    RF_ASSERT_OWNER(&ctx->owner);
    if (ctx->batch_n == 0)
        return;
    size_t n = ctx->batch_n;
    ctx->batch_n = 0;
    rf_stats_add(&ctx->counters[RF_PC_FLUSHES], 1);
    ctx->flush(ctx->user, ctx->batch, n);
}

uint64_t rf_parse_counter(const rf_parse_ctx *ctx, enum rf_parse_counter_id id)
{
    if ((unsigned)id >= RF_PC__COUNT)
        return 0;
    return atomic_load_explicit(&ctx->counters[id], memory_order_relaxed);
}

uint64_t rf_parse_reject_count(const rf_parse_ctx *ctx, enum rf_reject_reason reason)
{
    if ((unsigned)reason >= RF_REJ__COUNT)
        return 0;
    return atomic_load_explicit(&ctx->rejects[reason], memory_order_relaxed);
}

/* Series lifecycle (stages/pipeline/pipeline.h): a worker retires a series
 * after series_idle_ttl without an event, and only a new announcement makes
 * it known again. Emptying both caches every half TTL guarantees one: a
 * series idle for the TTL has seen an emptying since its last event here,
 * and one announced without is at most half a TTL from its last event, far
 * from expiry. Costs a memset and one re-announcement per series and half
 * TTL; nothing is pending between calls. */
static void forget_when_due(rf_parse_ctx *ctx, int64_t now)
{
    if (ctx->forget_at == 0 || now < ctx->forget_at) {
        if (ctx->forget_at == 0)
            ctx->forget_at = now + ctx->cfg.forget_ns;
        return;
    }
    memset(ctx->raw, 0, ((size_t)ctx->raw_mask + 1) * sizeof(*ctx->raw));
    memset(ctx->announced, 0, ((size_t)ctx->ann_mask + 1) * sizeof(*ctx->announced));
    ctx->forget_at = now + ctx->cfg.forget_ns;
}

void rf_parse_begin(rf_parse_ctx *ctx, const rf_recv_info *rx)
{
    ctx->rx = rx;
    if (ctx->cfg.forget_ns > 0)
        forget_when_due(ctx, rx->mono_ns);
}

size_t rf_for_each_line(rf_parse_ctx *ctx, const rf_recv_info *rx, const char *buf, size_t len,
                        rf_line_fn fn)
{
    rf_parse_begin(ctx, rx);
    size_t rejected = 0;
    uint64_t ok = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n) {
            enum rf_parse_result r;
            if (RF_UNLIKELY(n > ctx->cfg.max_line_len))
                r = RF_PARSE_REJ_LINE_TOO_LONG;
            else
                r = fn(ctx, p, n);
            /* A NUL byte makes every parser fail somewhere (no element
             * accepts one); name the real cause, off the accepted path. */
            if (rf_parse_rejected(r) && r != RF_PARSE_REJ_LINE_TOO_LONG && memchr(p, '\0', n))
                r = RF_PARSE_REJ_NUL_BYTE;
            if (rf_parse_rejected(r)) {
                rf_reject_line(ctx, rf_parse_reject_reason(r), p, n);
                rejected++;
            } else if (r == RF_PARSE_OK) {
                ok++;
            }
        }
        p = le + 1;
    }
    if (ok)
        rf_stats_add(&ctx->counters[RF_PC_LINES_OK], ok);
    return rejected;
}

void rf_parse_reject_external(rf_parse_ctx *ctx, const rf_recv_info *rx,
                              enum rf_reject_reason reason, const char *line, size_t len)
{
    RF_ASSERT_OWNER(&ctx->owner);
    ctx->rx = rx;
    rf_reject_line(ctx, reason, line, len);
}

uint64_t rf_parse_output_discard(rf_event *ev, size_t n)
{
    uint64_t data = 0;
    rf_event_free_texts(ev, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == RF_KIND_SERIES_DEF)
            rf_series_key_free((rf_series_key *)(uintptr_t)ev[i].aux);
        else
            data++;
    }
    return data;
}
