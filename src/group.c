/*
 * Task groups: structured concurrency on top of the cancel tree (cancel.c).
 *
 * A group is a cancel node whose parent is the innermost node of the task
 * that created it, and whose children are the root nodes of its child
 * tasks; cancelling the group (or anything above it) reaches every child.
 * The children are spread over WEFT__GROUP_SHARDS shards, each a list with
 * its own lock and count, so children exiting on different workers, and a
 * cancel walking them, rarely meet on one lock (one group-wide lock made a
 * 1M-task cancel four times slower on 2 workers).  The group-wide lock
 * guards only `nonempty` (shards with live children), the first failure and
 * the waiter.
 *
 * Invariants.
 *  1. A shard's live count changes under its lock; `nonempty` changes under
 *     the group lock, taken inside the shard lock, only when a shard turns
 *     empty or non-empty.  So nonempty == 0 exactly when no child is live.
 *  2. The child that empties the last shard takes the group lock, releases
 *     its shard lock, and only then drops nonempty to 0 and claims the
 *     waiter, all before releasing the group lock.  Whoever sees nonempty
 *     == 0 does so under the group lock, hence after that child's last
 *     touch of the group: the group may then be freed.
 *  3. The waiter is claimed under the group lock, which its unlink (a
 *     canceller) also takes: a canceller that won the waiter's CAS waits
 *     for that lock before it lets the owner go, so the claim never touches
 *     a waiter whose frame is gone.
 *  4. No child outlives its group: a cancelled wait cancels the group and
 *     waits again, uncancellably; destroy does the same for children that
 *     were never waited for.
 * Lock order: group node (a cancel walking down), shard, child node; and
 * shard, then group lock.  The group lock is never held while taking a
 * shard or node lock.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "runtime.h"

struct weft_group {
    weft__cnode node;      /* kind GROUP; parent: the creator's innermost node */
    weft_runtime *rt;      /* immutable */
    _Atomic bool lock;     /* guards the three fields below */
    size_t nonempty;       /* shards with live children */
    int first_err;
    weft__waiter *waiter;
    weft__cshard shards[WEFT__GROUP_SHARDS];
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
    weft_group *g = aligned_alloc(_Alignof(weft_group), sizeof *g);
    if (!g) return ENOMEM;
    weft__node_init(&g->node, WEFT__NK_GROUP, NULL);
    g->node.shards = g->shards;
    for (unsigned i = 0; i < WEFT__GROUP_SHARDS; i++) {
        atomic_init(&g->shards[i].lock, false);
        g->shards[i].child = NULL;
        g->shards[i].live = 0;
    }
    g->rt = w->rt;
    atomic_init(&g->lock, false);
    g->nonempty = 0;
    g->first_err = 0;
    g->waiter = NULL;
    weft__node_link(&g->node, weft__cctx_inner(&w->current->cctx));
    *out = g;
    return 0;
}

void weft__group_child_enter(weft_group *g, weft_task *t)
{
    t->group = g;
    weft__cnode *n = &t->cctx.root;
    weft__cshard *sh = weft__shard_of(&g->node, n);
    weft__spin_lock(&sh->lock);
    if (sh->live++ == 0) {
        weft__spin_lock(&g->lock);
        g->nonempty++;
        weft__spin_unlock(&g->lock);
    }
    weft__node_link_locked(&sh->child, n, &g->node);
    weft__spin_unlock(&sh->lock);
}

void weft__group_child_exit(weft_group *g, weft__cnode *root, int status)
{
    if (status != 0 && status != ECANCELED) {
        weft__spin_lock(&g->lock);
        bool first = g->first_err == 0;
        if (first) g->first_err = status;
        weft__spin_unlock(&g->lock);
        if (first) weft__node_cancel(&g->node, 0); /* we are live: g is too */
    }
    weft__cshard *sh = weft__shard_of(&g->node, root);
    weft__spin_lock(&sh->lock);
    weft__node_unlink_locked(&sh->child, root);
    if (--sh->live != 0) {
        weft__spin_unlock(&sh->lock);
        return;
    }
    weft__waiter *w = NULL;
    weft__spin_lock(&g->lock);
    weft__spin_unlock(&sh->lock); /* invariant 2 */
    if (--g->nonempty == 0 && g->waiter) {
        w = g->waiter;
        g->waiter = NULL;
        if (!weft__waiter_claim(w)) w = NULL; /* invariant 3 */
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
    int rc = g->nonempty == 0 ? 0 : g->waiter ? EBUSY : -1;
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
    size_t live = g->nonempty;
    weft__spin_unlock(&g->lock);
    if (live) {
        weft_group_cancel(g);
        wait_all_uncancellable(g);
    }
    weft__node_unlink(&g->node, "a task group");
    free(g);
}
