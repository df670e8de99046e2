/* Rejected lines: reason names, per-reason counters and the "last N rejected
 * lines" log that the control thread reads while the ingest thread writes.
 *
 * The log is a ring of slots, each guarded by its own sequence counter (a
 * seqlock with one writer, the ingest thread; readers never block it):
 *
 *   writer (W)                          reader (R)
 *   W1 seq = s + 1 (odd)  relaxed       R1 s1 = seq       acquire  (pairs with W4)
 *   W2 fence release     (pairs R4)     R2 words         relaxed loads
 *   W3 words             relaxed stores R3 fence acquire           (pairs with W2)
 *   W4 seq = s + 2       release        R4 s2 = seq       relaxed
 *   W5 head = n + 1      release        accept the copy if s1 == s2 and s1 even
 *
 * If R2 saw any store of W3, R3/W2 make R4 see at least W1's odd value, so the
 * copy is discarded; if R1 saw W4, R2 sees all of W3. Words are atomics so the
 * racing copy is not undefined behaviour. R reads `head` with acquire (pairs
 * with W5) to know which slots hold the newest entries; an entry overwritten
 * meanwhile fails its seq check (its entry.seq no longer matches) and is
 * skipped. The writer pays two stores and a fence per rejected line: nothing
 * on the accepted-line path. */
#include "ingest/protocol/protocol_pvt.h"

static const char *const reason_names[RF_REJ__COUNT] = {
    [RF_REJ_SYNTAX] = "syntax",
    [RF_REJ_BAD_ESCAPE] = "bad_escape",
    [RF_REJ_BAD_NUMBER] = "bad_number",
    [RF_REJ_OUT_OF_RANGE] = "out_of_range",
    [RF_REJ_TIMESTAMP_WINDOW] = "timestamp_window",
    [RF_REJ_LINE_TOO_LONG] = "line_too_long",
    [RF_REJ_NUL_BYTE] = "nul_byte",
    [RF_REJ_INVALID_UTF8] = "invalid_utf8",
    [RF_REJ_TOO_MANY_TAGS] = "too_many_tags",
    [RF_REJ_KEY_TOO_LONG] = "key_too_long",
    [RF_REJ_EMPTY_FIELD_SET] = "empty_field_set",
    [RF_REJ_TOO_MANY_FIELDS] = "too_many_fields",
    [RF_REJ_DUPLICATE_TAG] = "duplicate_tag",
    [RF_REJ_UNKNOWN_TYPE] = "unknown_type",
    [RF_REJ_NO_MEMORY] = "no_memory",
    [RF_REJ_SIGNED_PACKET] = "signed_packet",
    [RF_REJ_ENCRYPTED_PACKET] = "encrypted_packet",
    [RF_REJ_FIELD_TYPE_CONFLICT] = "field_type_conflict",
    [RF_REJ_TIME_FIELD_KEY] = "time_field_key",
    [RF_REJ_STRING_TOO_LONG] = "string_too_long",
    [RF_REJ_BAD_SIGNATURE] = "bad_signature",
    [RF_REJ_UNKNOWN_USER] = "unknown_user",
    [RF_REJ_DECRYPT_FAILED] = "decrypt_failed",
    [RF_REJ_UNSIGNED_PACKET] = "unsigned_packet",
    [RF_REJ_UNENCRYPTED_PACKET] = "unencrypted_packet",
};

const char *rf_reject_reason_name(enum rf_reject_reason reason)
{
    if ((unsigned)reason >= RF_REJ__COUNT || !reason_names[reason])
        return "unknown";
    return reason_names[reason];
}

void rf_reject_line(rf_parse_ctx *ctx, enum rf_reject_reason reason, const char *line, size_t len)
{
    rf_stats_add(&ctx->rejects[reason], 1);
    rf_stats_add(&ctx->counters[RF_PC_LINES_REJECTED], 1);

    union {
        rf_reject_entry e;
        uint64_t w[RF_REJ_WORDS];
    } u;
    memset(&u, 0, sizeof(u));
    uint64_t n = atomic_load_explicit(&ctx->rlog_head, memory_order_relaxed); /* sole writer */
    u.e.seq = n + 1;
    u.e.reason = (uint16_t)reason;
    u.e.wall_ns = ctx->rx ? ctx->rx->wall_ns : 0;
    size_t ex = len < RF_REJECT_EXCERPT_MAX ? len : RF_REJECT_EXCERPT_MAX;
    for (size_t i = 0; i < ex; i++) {
        unsigned char ch = (unsigned char)line[i];
        u.e.excerpt[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
    }
    u.e.excerpt_len = (uint16_t)ex;
    if (ctx->rx && ctx->rx->source_addr) {
        size_t sl = strnlen(ctx->rx->source_addr, RF_REJECT_SOURCE_MAX - 1);
        memcpy(u.e.source, ctx->rx->source_addr, sl);
        u.e.source[sl] = '\0';
    }

    if (ctx->first_reject && ctx->first_reject->seq == 0)
        *ctx->first_reject = u.e;

    rf_reject_slot *s = &ctx->rlog[n & ctx->rlog_mask];
    uint64_t sq = atomic_load_explicit(&s->seq, memory_order_relaxed); /* sole writer */
    atomic_store_explicit(&s->seq, sq + 1, memory_order_relaxed);      /* W1 */
    atomic_thread_fence(memory_order_release);                         /* W2: pairs with R3 */
    for (size_t i = 0; i < RF_REJ_WORDS; i++)                          /* W3 */
        atomic_store_explicit(&s->words[i], u.w[i], memory_order_relaxed);
    atomic_store_explicit(&s->seq, sq + 2, memory_order_release); /* W4: pairs with R1 */
    atomic_store_explicit(&ctx->rlog_head, n + 1,
                          memory_order_release); /* W5: pairs with head load */
}

void rf_parse_capture_first_reject(rf_parse_ctx *ctx, rf_reject_entry *first)
{
    RF_ASSERT_OWNER(&ctx->owner);
    ctx->first_reject = first;
}

size_t rf_parse_reject_log_read(const rf_parse_ctx *ctx, rf_reject_entry *out, size_t max)
{
    uint64_t head = atomic_load_explicit(&ctx->rlog_head, memory_order_acquire); /* pairs W5 */
    uint64_t slots = (uint64_t)ctx->rlog_mask + 1;
    uint64_t avail = head < slots ? head : slots;
    size_t got = 0;
    for (uint64_t i = 0; i < avail && got < max; i++) {
        uint64_t want = head - i; /* entry seq, newest first */
        rf_reject_slot *s = (rf_reject_slot *)&ctx->rlog[(want - 1) & ctx->rlog_mask];
        union {
            rf_reject_entry e;
            uint64_t w[RF_REJ_WORDS];
        } u;
        uint64_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire); /* R1: pairs W4 */
        if (s1 & 1)
            continue;                             /* being rewritten with a newer entry */
        for (size_t k = 0; k < RF_REJ_WORDS; k++) /* R2 */
            u.w[k] = atomic_load_explicit(&s->words[k], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);                         /* R3: pairs W2 */
        uint64_t s2 = atomic_load_explicit(&s->seq, memory_order_relaxed); /* R4 */
        if (s1 != s2 || u.e.seq != want)
            continue; /* torn or already replaced by a newer entry */
        out[got++] = u.e;
    }
    return got;
}
