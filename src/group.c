/*
 * Task groups: structured concurrency on top of the cancel tree (cancel.c).
 *
 * A group is a cancel node whose parent is the innermost node of the task
 * that created it, and whose children are the root nodes of its child
 * tasks; cancelling the group (or anything above it) reaches every child.
 * The bookkeeping (live children, the first failure, the one waiter) sits
 * under the group's spin lock.
 *
 * Invariants.
 *  1. live counts children that have been spawned and not yet finished
 *     their exit; it only drops under the lock, in weft__group_child_exit,
 *     after the child unlinked its root node and, if it failed first,
 *     cancelled the group.  So once live reaches 0 no child touches the
 *     group again, and the group may be freed.
 *  2. The child that brings live to 0 claims the waiter under the lock that
 *     the waiter's unlink (a canceller) also takes: a canceller that won the
 *     waiter's CAS waits for that lock before it lets the owner go, so the
 *     claim never touches a waiter whose frame is gone.
 *  3. No child outlives its group: a cancelled wait cancels the group and
 *     waits again, uncancellably; destroy does the same for children that
 *     were never waited for.
 * Lock order: a group's spin lock is taken with no cancel-node lock held
 * except by a canceller's unlink (node lock, then group lock); the group
 * code never takes a node lock while holding it.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "runtime.h"

struct weft_group {
    weft__cnode node;      /* kind GROUP; parent: the creator's innermost node */
    weft_runtime *rt;      /* immutable */
    _Atomic bool lock;     /* guards the fields below */
    size_t live;
    int first_err;
    weft__waiter *waiter;
};

static void group_waiter_unlink(weft__waiter *w)
{
    weft_group *g = w->obj;
    weft__spin_lock(&g->lock);
    if (g->waiter == w) g->waiter = NULL;
    weft__spin_unlock(&g->lock);
}

static const weft__waiter_ops group_ops = {.unlink = group_waiter_unlink};

int weft_group_create(weft_group **out)
{
    if (!out) return EINVAL;
    weft__worker *w = weft__worker_self();
    if (!w || !w->current) return EPERM;
    weft_group *g = malloc(sizeof *g);
    if (!g) return ENOMEM;
    weft__node_init(&g->node, WEFT__NK_GROUP, NULL);
    g->rt = w->rt;
    atomic_init(&g->lock, false);
    g->live = 0;
    g->first_err = 0;
    g->waiter = NULL;
    weft__node_link(&g->node, weft__cctx_inner(&w->current->cctx));
    *out = g;
    return 0;
}

void weft__group_child_enter(weft_group *g, weft_task *t)
{
    t->group = g;
    weft__spin_lock(&g->lock);
    g->live++;
    weft__spin_unlock(&g->lock);
    weft__node_link(&t->cctx.root, &g->node);
}

void weft__group_child_exit(weft_group *g, weft__cnode *root, int status)
{
    weft__node_unlink(root, "a task");
    if (status != 0 && status != ECANCELED) {
        weft__spin_lock(&g->lock);
        bool first = g->first_err == 0;
        if (first) g->first_err = status;
        weft__spin_unlock(&g->lock);
        if (first) weft__node_cancel(&g->node, 0);
    }
    weft__waiter *w = NULL;
    weft__spin_lock(&g->lock);
    if (--g->live == 0 && g->waiter) {
        w = g->waiter;
        g->waiter = NULL;
        if (!weft__waiter_claim(w)) w = NULL; /* invariant 2 */
    }
    weft__spin_unlock(&g->lock);
    if (w) weft__waiter_complete(w, 0);
}

int weft_group_spawn(weft_group *g, weft_fn fn, void *arg)
{
    if (!g || !fn) return EINVAL;
    return weft__spawn(g->rt, fn, arg, NULL, g);
}

/* Waits until live == 0.  Returns 0, ECANCELED (cancellable only), EBUSY. */
static int wait_children(weft_group *g, bool cancellable)
{
    weft__waiter w;
    if (cancellable) {
        weft__waiter_init(&w, &group_ops, g);
        if (weft__waiter_publish(&w)) return ECANCELED;
    } else {
        weft__waiter_init_shielded(&w, &group_ops, g);
    }
    weft__spin_lock(&g->lock);
    int rc = g->live == 0 ? 0 : g->waiter ? EBUSY : -1;
    if (rc < 0 && weft__waiter_pending(&w)) g->waiter = &w;
    weft__spin_unlock(&g->lock);
    if (rc >= 0) return weft__waiter_withdraw(&w, rc);
    return weft__waiter_park(&w, 0);
}

static void wait_all_uncancellable(weft_group *g)
{
    while (wait_children(g, false) == EBUSY) sched_yield();
}

int weft_group_wait(weft_group *g)
{
    if (!g) return EINVAL;
    int rc = weft__cancelled() ? ECANCELED : wait_children(g, true);
    if (rc == EBUSY) return EBUSY;
    if (rc == ECANCELED) {
        weft_group_cancel(g);
        wait_all_uncancellable(g);
        return ECANCELED;
    }
    weft__spin_lock(&g->lock);
    rc = g->first_err;
    weft__spin_unlock(&g->lock);
    return rc;
}

void weft_group_cancel(weft_group *g)
{
    if (g) weft__node_cancel(&g->node, 0);
}

void weft_group_destroy(weft_group *g)
{
    if (!g) return;
    weft__spin_lock(&g->lock);
    size_t live = g->live;
    weft__spin_unlock(&g->lock);
    if (live) {
        weft_group_cancel(g);
        wait_all_uncancellable(g);
    }
    weft__node_unlink(&g->node, "a task group");
    free(g);
}
