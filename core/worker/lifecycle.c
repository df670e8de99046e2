/* The component registry and lifecycle transitions. Registration happens on
 * the control thread; transitions on each component's own thread; reads on
 * the control thread (stats socket, /health). */
#include <errno.h>
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

rf_component *rf_component_register(const char *kind, const char *name)
{
    unsigned n = atomic_load_explicit(&g_component_count, memory_order_relaxed);
    if (n >= RF_COMPONENTS_MAX)
        return NULL;
    rf_component *c = &g_components[n];
    memset(c, 0, sizeof(*c));
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->kind, sizeof(c->kind), "%s", kind);
    c->since_mono_ns = rf_clock_mono_ns();
    atomic_init(&c->state, RF_STATE_REGISTERED);
    /* Pairs with the acquire load in rf_component_count: the slot is complete. */
    atomic_store_explicit(&g_component_count, n + 1, memory_order_release);
    return c;
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
    snprintf(c->reason, sizeof(c->reason), "%s", reason ? reason : "");
    c->since_mono_ns = rf_clock_mono_ns();
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
    return i < rf_component_count() ? &g_components[i] : NULL;
}

void rf_component_registry_reset(void)
{
    atomic_store_explicit(&g_component_count, 0, memory_order_release);
}
