/*
 * weft task-aware synchronisation: lock, semaphore, event, condition and
 * capacity limiter, on caller-owned storage like the pthread types.
 *
 * Every one of them works the same inside a task (the task parks, its
 * worker runs others) and on a plain pthread (the thread blocks on a
 * futex), and blocks only through weft's waiter protocol: a waiter is
 * either served (ownership, a permit, a notification, a token) or
 * cancelled, never both, and a cancelled waiter never consumes anything.
 * Blocking calls are checkpoints (ECANCELED at entry when the caller is
 * cancelled); try_ calls, release, set and notify are not.
 *
 * Owner identity is the calling task, or the calling pthread for a plain
 * thread.  Objects must be initialised before use and not moved or copied
 * afterwards; destroy returns EBUSY while the object is in use.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------------
 * Lock: non-reentrant, owner-tracked, FIFO hand-off.
 * -------------------------------------------------------------------- */

typedef struct weft_lock {
    uint64_t weft_private_[8];
} weft_lock;

struct weft_lock_stats {
    bool locked;          /* owned right now */
    bool broken;          /* its owner task ended holding it */
    weft_task *owner;     /* the owning task; NULL if unlocked or owned by a pthread */
    size_t tasks_waiting; /* callers (tasks or pthreads) queued in acquire */
};

/* Returns 0; EINVAL (l NULL).  Not a checkpoint. */
WEFT_API int weft_lock_init(weft_lock *l);

/*
 * Acquires l, waiting in FIFO order.  Decided first, before anything else
 * and with no effect at all: EDEADLK when the caller already owns l (on the
 * uncontended path, with waiters queued, and inside a cancelled scope
 * alike).  Then: EOWNERDEAD when l is broken (its owner task ended while
 * holding it; the lock stays broken); ECANCELED when the caller is
 * cancelled before it was handed the lock.  Ownership is handed directly by
 * release to the first live waiter and recorded before that waiter runs.
 * A caller that finds l owned first retries for a few bounded rounds (a
 * short spin, on a runtime of more than one worker or on a plain pthread,
 * then a yield when in a task; a few microseconds in all) and takes l only
 * if it is free with no one queued; then it queues.  FIFO order is among
 * queued callers: a later caller may take a free lock before one still in
 * those rounds, never before a queued one.  The uncontended path is one
 * CAS.  Checkpoint.
 */
WEFT_API int weft_lock_acquire(weft_lock *l);

/* Returns 0; EDEADLK (already the owner); EOWNERDEAD (broken); EBUSY when
 * l is owned or anyone waits for it.  Not a checkpoint. */
WEFT_API int weft_lock_try_acquire(weft_lock *l);

/*
 * Releases l: hands it to the first waiter not cancelled, or unlocks it.
 * Returns 0; EPERM when the caller is not the owner (l unlocked, broken, or
 * owned by another), changing nothing.  The uncontended path is one CAS.
 * Not a checkpoint.
 */
WEFT_API int weft_lock_release(weft_lock *l);

/* Returns 0; EBUSY while l is owned or waited on. */
WEFT_API int weft_lock_destroy(weft_lock *l);

/* Snapshot of l (exact when nothing races it).  Returns 0; EINVAL. */
WEFT_API int weft_lock_stats(weft_lock *l, struct weft_lock_stats *st);

/* ----------------------------------------------------------------------
 * Semaphore: counting, optional maximum, FIFO hand-off of permits.
 * -------------------------------------------------------------------- */

typedef struct weft_sem {
    uint64_t weft_private_[8];
} weft_sem;

struct weft_sem_stats {
    size_t value;         /* permits available */
    size_t max;           /* 0 = no maximum */
    size_t tasks_waiting; /* callers queued in acquire */
};

/* initial permits; max 0 = no maximum (else initial <= max).
 * Returns 0; EINVAL. */
WEFT_API int weft_sem_init(weft_sem *s, size_t initial, size_t max);
/* Takes a permit, waiting FIFO behind earlier callers.  0; ECANCELED (no
 * permit consumed).  Checkpoint. */
WEFT_API int weft_sem_acquire(weft_sem *s);
/* 0; EAGAIN when no permit is free or anyone waits. */
WEFT_API int weft_sem_try_acquire(weft_sem *s);
/* Gives a permit straight to the first live waiter, or adds one.
 * 0; EOVERFLOW (would exceed max; nothing changed).  Any thread. */
WEFT_API int weft_sem_release(weft_sem *s);
WEFT_API int weft_sem_destroy(weft_sem *s); /* EBUSY while waited on */
WEFT_API int weft_sem_stats(weft_sem *s, struct weft_sem_stats *st);

/* ----------------------------------------------------------------------
 * Event: set once, wakes every waiter.
 * -------------------------------------------------------------------- */

typedef struct weft_event {
    uint64_t weft_private_[6];
} weft_event;

struct weft_event_stats {
    bool set;
    size_t tasks_waiting;
};

WEFT_API int weft_event_init(weft_event *e);
/* Sets e (idempotent) and wakes every waiter.  Any thread; never fails. */
WEFT_API void weft_event_set(weft_event *e);
WEFT_API bool weft_event_is_set(weft_event *e);
/* Waits until e is set.  0 (also when cancelled after set released it);
 * ECANCELED.  Checkpoint. */
WEFT_API int weft_event_wait(weft_event *e);
WEFT_API int weft_event_destroy(weft_event *e); /* EBUSY while waited on */
WEFT_API int weft_event_stats(weft_event *e, struct weft_event_stats *st);

/* ----------------------------------------------------------------------
 * Condition: bound to one weft_lock.
 * -------------------------------------------------------------------- */

typedef struct weft_cond {
    uint64_t weft_private_[6];
} weft_cond;

struct weft_cond_stats {
    size_t tasks_waiting; /* callers in wait, not yet notified */
};

/* Returns 0; EINVAL (NULL). */
WEFT_API int weft_cond_init(weft_cond *c, weft_lock *lock);
/*
 * Atomically releases the lock and waits for a notification, then takes
 * the lock back (uncancellably) before returning.  Returns 0 (notified);
 * ECANCELED (cancelled first: no notification consumed; it goes to the
 * next live waiter); EPERM (the caller does not own the lock: nothing
 * done); EOWNERDEAD (the lock broke while waiting: not owned on return).
 * On every path but EPERM and EOWNERDEAD it returns owning the lock.
 * Checkpoint.
 */
WEFT_API int weft_cond_wait(weft_cond *c);
/* Wakes up to n live waiters (FIFO).  0; EPERM (caller does not own the
 * lock).  Not a checkpoint. */
WEFT_API int weft_cond_notify(weft_cond *c, size_t n);
WEFT_API int weft_cond_notify_all(weft_cond *c);
WEFT_API int weft_cond_destroy(weft_cond *c); /* EBUSY while waited on */
WEFT_API int weft_cond_stats(weft_cond *c, struct weft_cond_stats *st);

/* ----------------------------------------------------------------------
 * Capacity limiter: `total` tokens, each borrowed by one borrower at a time
 * (the calling task or pthread, or an explicit borrower pointer).
 * -------------------------------------------------------------------- */

typedef struct weft_limiter {
    uint64_t weft_private_[10];
} weft_limiter;

struct weft_limiter_stats {
    size_t total;
    size_t borrowed;
    size_t tasks_waiting;
};

WEFT_API int weft_limiter_init(weft_limiter *l, size_t total); /* 0; EINVAL; ENOMEM */
/* Borrows a token for the caller (or for `borrower`).  0; EDEADLK (that
 * borrower already holds one: no effect); ECANCELED.  A token freed by a
 * release is handed to the first live waiter.  Checkpoint. */
WEFT_API int weft_limiter_acquire(weft_limiter *l);
WEFT_API int weft_limiter_acquire_for(weft_limiter *l, const void *borrower);
/* 0; EDEADLK; EBUSY (no free token, or anyone waits); ENOMEM. */
WEFT_API int weft_limiter_try_acquire(weft_limiter *l);
WEFT_API int weft_limiter_try_acquire_for(weft_limiter *l, const void *borrower);
/* 0; EPERM (that borrower holds no token). */
WEFT_API int weft_limiter_release(weft_limiter *l);
WEFT_API int weft_limiter_release_for(weft_limiter *l, const void *borrower);
/* Changes the number of tokens; raising it serves waiters at once.  Tokens
 * borrowed above a lowered total are not revoked.  0; EINVAL (0). */
WEFT_API int weft_limiter_set_total(weft_limiter *l, size_t total);
WEFT_API int weft_limiter_destroy(weft_limiter *l); /* EBUSY while borrowed or waited on */
WEFT_API int weft_limiter_stats(weft_limiter *l, struct weft_limiter_stats *st);

#ifdef __cplusplus
}
#endif
#endif
