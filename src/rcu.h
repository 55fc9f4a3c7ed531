/*
 * Read-side protection for memory that lock-free readers may still be using
 * after it is unlinked (channel segments), on liburcu's QSBR flavour.  See
 * rcu.c for the argument.
 *
 * A read section is bracketed by weft__rcu_read_begin/end on the same thread,
 * with no park or user callback inside, and no switch but a poll
 * (weft__task_poll_next, which keeps the worker from a quiescent state).  On a worker it costs one
 * thread-local load (the worker is online between its quiescent states); on
 * a plain pthread it brings the thread online and takes it offline again.
 */
#ifndef WEFT_RCU_H
#define WEFT_RCU_H

#include <stdbool.h>
#include <urcu/urcu-qsbr.h>

#include "internal.h"

/* weft__rcu_mode: how this thread takes part in the grace periods. */
enum {
    WEFT__RCU_NEW = 0,    /* a plain pthread not yet registered */
    WEFT__RCU_PLAIN = 1,  /* a plain pthread, registered, offline outside calls */
    WEFT__RCU_WORKER = 2, /* a worker: online between quiescent states */
    WEFT__RCU_FOREIGN = 3, /* registered and online by its own code */
};
/* initial-exec, like the worker pointer (worker.c). */
extern _Thread_local unsigned char weft__rcu_mode __attribute__((tls_model("initial-exec")));

bool weft__rcu_plain_enter(void);
void weft__rcu_plain_leave(void);
#ifdef WEFT_TSAN
void weft__rcu_tsan_section_end(void);
#endif

/* Begins a read section; returns what weft__rcu_read_end needs.  Read once,
 * before anything could switch the caller to another thread. */
static inline bool weft__rcu_read_begin(void)
{
    if (WEFT_LIKELY(weft__rcu_mode >= WEFT__RCU_WORKER)) return false;
    return weft__rcu_plain_enter();
}

/* The same, out of line, for a caller that may have been switched to
 * another thread since it last read the mode (a user callback ran): no
 * compiler may carry a thread-local address across that. */
bool weft__rcu_read_begin_fresh(void) __attribute__((noinline));

/* Ends it; plain is what weft__rcu_read_begin returned. */
static inline void weft__rcu_read_end(bool plain)
{
#ifdef WEFT_TSAN
    weft__rcu_tsan_section_end();
#endif
    if (plain) weft__rcu_plain_leave();
}

/* Calls free_cb(h) after every read section that may have seen h's object
 * has ended.  Inside a read section. */
void weft__rcu_retire(struct rcu_head *h, void (*free_cb)(struct rcu_head *));
/* In free_cb, before freeing (tells ThreadSanitizer about the grace period). */
void weft__rcu_grace_passed(void);

/* The worker side: register at start, report a quiescent state between
 * tasks, go offline around a sleep, unregister at exit. */
void weft__rcu_worker_start(void);
void weft__rcu_worker_stop(void);
void weft__rcu_quiescent(void);
void weft__rcu_offline(void);
void weft__rcu_online(void);

#endif
