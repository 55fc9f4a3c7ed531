/*
 * weft cancellation: tokens, cancel scopes with deadlines, and task groups.
 *
 * Model (as Trio's cancel scopes, with .NET/Tokio-style tokens beside them).
 * Every task and every plain pthread has a stack of cancel scopes.  A scope
 * is *effectively cancelled* when it was cancelled itself (weft_scope_cancel,
 * its deadline, or a bound token firing) or, unless it is shielded, when the
 * scope enclosing it is effectively cancelled.  The children of a task group
 * start inside the group, which sits inside the scope that was innermost
 * where the group was created: cancelling that scope, or the group, reaches
 * every child.
 *
 * Checkpoints.  Every blocking call of weft (join, yield, sleep, group wait,
 * and later send, receive, acquire and wait) is a checkpoint: while the
 * caller is effectively cancelled it returns ECANCELED at entry with no
 * effect (level-triggered: again and again, until the cancelled scope
 * exits).  A call that blocks either completes or is cancelled, never both:
 * one CAS per blocked waiter decides (the waiter protocol of
 * ARCHITECTURE.md).  try_ calls, release, set, notify, close and stats are
 * never checkpoints.
 *
 * Synchronous cancel.  When weft_token_cancel, weft_scope_cancel or
 * weft_group_cancel returns, or a deadline has fired, every waiter blocked
 * under it has been aborted: none can be handed an item, a permit or
 * ownership any more, and each returns ECANCELED.  Running tasks see the
 * cancel at their next checkpoint.
 *
 * Deadlines use the weft_now() clock.  A deadline set inside a task is
 * fired by that task's worker; one set on a plain pthread, and every token
 * deadline, by weft's timer thread (started on first use).
 */
#ifndef WEFT_CANCEL_H
#define WEFT_CANCEL_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------------
 * Tokens: shareable, refcounted, thread-safe cancel sources.
 * -------------------------------------------------------------------- */

typedef struct weft_token weft_token;

/* A callback registration: caller-owned storage, like pthread types. */
typedef struct weft_token_reg {
    uint64_t weft_private_[8];
} weft_token_reg;

/*
 * Creates a token with one reference.  With a parent, the new token is
 * cancelled when the parent is (and at once if the parent already is); it
 * holds a reference on the parent until its own last reference goes.
 * Returns 0; EINVAL (t NULL); ENOMEM.  Any thread; not a checkpoint.
 */
WEFT_API int weft_token_create(weft_token **t, weft_token *parent);

/*
 * Cancels t and its descendant tokens, aborts every waiter blocked under a
 * scope bound to any of them, and runs their callbacks on this thread.
 * Idempotent: later calls (and concurrent ones) return once the first
 * cancel's callbacks have all run.  Any thread; never blocks on a lock held
 * across user code except to wait for those callbacks.  t NULL is ignored.
 */
WEFT_API void weft_token_cancel(weft_token *t);

/*
 * Whether t is cancelled: one atomic (acquire) load.  Any thread; not a
 * checkpoint.  With gcc and clang the macro below inlines that load into the
 * caller (the cancelled flag is bit 0 of the first 32-bit word of every
 * token, a layout weft keeps: src/cancel.c asserts it), so a polling loop
 * pays no call; (weft_token_is_cancelled)(t), or taking its address, uses
 * the exported function, which does the same.
 */
WEFT_API bool weft_token_is_cancelled(const weft_token *t);
#if defined(__GNUC__) || defined(__clang__)
static inline bool weft__token_is_cancelled_inline(const weft_token *t)
{
    return __atomic_load_n((const uint32_t *)(const void *)t, __ATOMIC_ACQUIRE) & 1u;
}
#define weft_token_is_cancelled(t) weft__token_is_cancelled_inline(t)
#endif

/*
 * Cancels t when weft_now() reaches deadline_ns (at once if it already
 * has).  A later call replaces the deadline.  Returns 0; EINVAL (t NULL);
 * ENOMEM (the timer could not grow; nothing changed).  Any thread.
 */
WEFT_API int weft_token_set_deadline(weft_token *t, uint64_t deadline_ns);

/*
 * Registers cb(arg) to run once when t is cancelled, on the cancelling
 * thread; cb must not block.  If t is already cancelled, cb runs inline
 * before this returns.  reg is caller-owned and must stay valid until
 * weft_token_off_cancel (required before reg's storage is reused or t's
 * last reference goes; a registration does not hold a reference).
 * Returns 0; EINVAL (t, cb or reg NULL).  Any thread; not a checkpoint.
 */
WEFT_API int weft_token_on_cancel(weft_token *t, void (*cb)(void *), void *arg,
                                  weft_token_reg *reg);

/*
 * Unregisters reg.  If its callback is running on another thread, waits for
 * it to return; called from inside that callback, it returns at once.  After
 * it returns the callback will not run (again).  Any thread.
 */
WEFT_API void weft_token_off_cancel(weft_token_reg *reg);

/* Reference counting; the last unref frees t (its deadline is disarmed).
 * NULL is ignored.  Any thread. */
WEFT_API void weft_token_ref(weft_token *t);
WEFT_API void weft_token_unref(weft_token *t);

/* ----------------------------------------------------------------------
 * Cancel scopes: caller-owned (stack) objects bound to a dynamic extent of
 * the calling task or pthread.  Scopes nest LIFO per task / per pthread.
 * -------------------------------------------------------------------- */

typedef struct weft_scope {
    uint64_t weft_private_[40];
} weft_scope;

/* Enters s as the new innermost scope of the caller.  Never fails; not a
 * checkpoint.  A scope entered in a task must be exited by that task; the
 * task must exit its scopes before it returns (abort with a message). */
WEFT_API void weft_scope_enter(weft_scope *s);
/* Same, with a move-on-after deadline: when weft_now() reaches deadline_ns
 * the scope is cancelled (at once when already past) and weft_scope_exit
 * turns the resulting ECANCELED into 0.  Aborts with a message only if the
 * timer cannot allocate memory. */
WEFT_API void weft_scope_enter_deadline(weft_scope *s, uint64_t deadline_ns);
/* Same, fail-after: weft_scope_exit turns the ECANCELED caused by this
 * scope's own deadline into ETIMEDOUT. */
WEFT_API void weft_scope_enter_fail_after(weft_scope *s, uint64_t deadline_ns);

/*
 * Binds token t to s: cancelling t cancels s (at once if t already is).
 * Holds a reference on t until s exits.  Returns 0; EINVAL (NULL); EBUSY
 * (s already has a token).  Owner of s only; not a checkpoint.
 */
WEFT_API int weft_scope_bind(weft_scope *s, weft_token *t);

/*
 * Shields s (on) from cancels of the enclosing scopes, or removes the
 * shield (off: an outer cancel then reaches s at once).  s's own cancel,
 * deadline and token still cancel it.  Owner of s only.
 */
WEFT_API void weft_scope_shield(weft_scope *s, bool on);

/* Cancels s.  Any thread, while s is entered; idempotent; synchronous for
 * waiters blocked under s. */
WEFT_API void weft_scope_cancel(weft_scope *s);

/*
 * Leaves s, which must be the caller's innermost scope (else aborts with a
 * message: scopes exited out of order).  rc is the result of the work done
 * inside.  If rc is ECANCELED and s is the outermost cancelled scope visible
 * from inside it (a shield hides the scopes outside it), the cancel is
 * caught: returns 0, or ETIMEDOUT when s is fail-after and its own deadline
 * fired, and weft_scope_cancelled_caught(s) becomes true.  Every other rc
 * passes through unchanged.  Not a checkpoint.
 */
WEFT_API int weft_scope_exit(weft_scope *s, int rc);

/* After weft_scope_exit: whether that exit caught the cancel. */
WEFT_API bool weft_scope_cancelled_caught(const weft_scope *s);

/*
 * Returns ECANCELED if the caller is effectively cancelled (or its runtime
 * is being destroyed); otherwise yields (weft_yield) and returns 0.
 * Tasks and plain pthreads; checkpoint.
 */
WEFT_API int weft_checkpoint(void);

/* Whether the caller is effectively cancelled, without yielding. */
WEFT_API bool weft_cancelled(void);

/* ----------------------------------------------------------------------
 * Task groups: structured concurrency (Trio nurseries, AnyIO task groups).
 * -------------------------------------------------------------------- */

typedef struct weft_group weft_group;

/*
 * Creates a group whose cancel scope is a child of the caller's innermost
 * scope: cancelling that scope cancels every child of the group.  The group
 * must be destroyed before that scope exits and before the calling task
 * returns (abort with a message).
 * Returns 0; EINVAL (g NULL); ENOMEM; EPERM on a plain pthread.  Task only.
 */
WEFT_API int weft_group_create(weft_group **g);

/*
 * Spawns fn(arg) as a child task of g, in g's runtime.  The first child to
 * return a status other than 0 and ECANCELED cancels its siblings; that
 * status is what weft_group_wait returns.  Returns 0; EINVAL; ENOMEM;
 * ECANCELED when the runtime is being destroyed.  Any thread while g lives;
 * not a checkpoint (a child spawned into a cancelled group starts cancelled).
 */
WEFT_API int weft_group_spawn(weft_group *g, weft_fn fn, void *arg);

/*
 * Waits until every child of g has returned.  Returns 0 when every child
 * returned 0 or ECANCELED; the first failing child's status otherwise.
 * When the caller is cancelled (at entry or while waiting), cancels the
 * group, still waits for every child, and returns ECANCELED: no child
 * outlives its group.  One waiter at a time (EBUSY otherwise).
 * Tasks and plain pthreads; checkpoint.
 */
WEFT_API int weft_group_wait(weft_group *g);

/* Cancels every child of g (and children spawned later).  Any thread;
 * synchronous for children's blocked waiters. */
WEFT_API void weft_group_cancel(weft_group *g);

/*
 * Destroys g.  Children still running are cancelled and waited for first
 * (uninterruptibly).  The caller must not be g's waiter.  NULL is ignored.
 */
WEFT_API void weft_group_destroy(weft_group *g);

#ifdef __cplusplus
}
#endif
#endif
