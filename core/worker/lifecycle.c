/* The component registry and lifecycle transitions. Registration happens on
 * the control thread; transitions on each component's own thread; reads on
 * the control thread (stats socket, /health). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/clock/clock.h"
#include "core/worker/worker.h"

static rf_component g_components[RF_COMPONENTS_MAX];
/* Published with release after the slot is filled; read with acquire (pairs). */
static _Atomic unsigned g_component_count;

static const char *const state_names[] = {"registered", "configuring", "running",
                                          "stopping",   "stopped",     "failed"};

const char *rf_lifecycle_state_name(enum rf_lifecycle_state s)
{
    return (s >= RF_STATE_REGISTERED && s <= RF_STATE_FAILED) ? state_names[s] : "unknown";
}

/* Owner: the sequence lock's write side (worker.h, rf_component). */
static void reason_write(rf_component *c, const char *reason)
{
    unsigned seq = atomic_load_explicit(&c->seq, memory_order_relaxed);
    atomic_store_explicit(&c->seq, seq + 1, memory_order_relaxed);
    /* Orders the odd seq before the data stores below: a reader that sees
     * any of them also sees the odd seq (pairs with the reader's acquire
     * fence before its second seq load). */
    atomic_thread_fence(memory_order_release);
    char text[RF_COMPONENT_REASON_MAX] = {0};
    snprintf(text, sizeof(text), "%s", reason ? reason : "");
    for (unsigned w = 0; w < RF_COMPONENT_REASON_WORDS; w++) {
        uint64_t word;
        memcpy(&word, text + 8 * w, 8);
        atomic_store_explicit(&c->reason_words[w], word, memory_order_relaxed);
    }
    atomic_store_explicit(&c->since_mono_ns, rf_clock_mono_ns(), memory_order_relaxed);
    /* Pairs with the reader's acquire load of seq: the data is complete. */
    atomic_store_explicit(&c->seq, seq + 2, memory_order_release);
}

int64_t rf_component_reason(const rf_component *c, char *out, size_t size)
{
    char text[RF_COMPONENT_REASON_MAX];
    int64_t since;
    for (;;) {
        /* Pairs with the release store of the even seq in reason_write. */
        unsigned before = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (before & 1u)
            continue; /* the owner is writing: a few stores, retry */
        for (unsigned w = 0; w < RF_COMPONENT_REASON_WORDS; w++) {
            uint64_t word = atomic_load_explicit(&c->reason_words[w], memory_order_relaxed);
            memcpy(text + 8 * w, &word, 8);
        }
        since = atomic_load_explicit(&c->since_mono_ns, memory_order_relaxed);
        /* Pairs with the writer's release fence: if a data load above saw a
         * store of a later write, this load sees its odd (or later) seq. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&c->seq, memory_order_relaxed) == before)
            break;
    }
    text[sizeof(text) - 1] = '\0';
    if (size)
        snprintf(out, size, "%s", text);
    return since;
}

rf_component *rf_component_register(const char *kind, const char *name)
{
    unsigned n = atomic_load_explicit(&g_component_count, memory_order_relaxed);
    /* A slot an unregistered component left, before a new one: listeners
     * come and go with reloads, and the registry must not fill with them. */
    unsigned i = 0;
    while (i < n && g_components[i].in_use)
        i++;
    if (i == n && n >= RF_COMPONENTS_MAX)
        return NULL;
    rf_component *c = &g_components[i];
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    atomic_init(&c->state, RF_STATE_REGISTERED);
    atomic_init(&c->seq, 0);
    reason_write(c, NULL);
    c->in_use = true;
    if (i == n)
        /* Pairs with the acquire load in rf_component_count: the slot is complete. */
        atomic_store_explicit(&g_component_count, n + 1, memory_order_release);
    return c;
}

void rf_component_unregister(rf_component *c)
{
    if (c)
        c->in_use = false;
}

static bool transition_allowed(enum rf_lifecycle_state from, enum rf_lifecycle_state to)
{
    switch (from) {
    case RF_STATE_REGISTERED: return to == RF_STATE_CONFIGURING || to == RF_STATE_FAILED;
    case RF_STATE_CONFIGURING: return to == RF_STATE_RUNNING || to == RF_STATE_FAILED;
    case RF_STATE_RUNNING: return to == RF_STATE_STOPPING || to == RF_STATE_FAILED;
    case RF_STATE_STOPPING: return to == RF_STATE_STOPPED || to == RF_STATE_FAILED;
    case RF_STATE_STOPPED: return to == RF_STATE_CONFIGURING;
    case RF_STATE_FAILED: return to == RF_STATE_CONFIGURING;
    }
    return false;
}

int rf_component_transition(rf_component *c, enum rf_lifecycle_state to, const char *reason)
{
    /* Only the owning thread writes the state, so relaxed reads its own value. */
    enum rf_lifecycle_state from = atomic_load_explicit(&c->state, memory_order_relaxed);
    if (!transition_allowed(from, to))
        return -EINVAL;
    reason_write(c, reason);
    /* Pairs with the acquire in rf_component_state: reason and time are visible. */
    atomic_store_explicit(&c->state, to, memory_order_release);
    return 0;
}

unsigned rf_component_count(void)
{
    /* Pairs with the release in rf_component_register. */
    return atomic_load_explicit(&g_component_count, memory_order_acquire);
}

rf_component *rf_component_at(unsigned i)
{
    return i < rf_component_count() && g_components[i].in_use ? &g_components[i] : NULL;
}

void rf_component_registry_reset(void)
{
    unsigned n = atomic_load_explicit(&g_component_count, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++)
        g_components[i].in_use = false;
    atomic_store_explicit(&g_component_count, 0, memory_order_release);
}
