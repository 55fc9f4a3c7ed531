/*
 * Grace periods for lock-free readers, on liburcu's QSBR flavour
 * (quiescent-state-based reclamation; Desnoyers, McKenney, Stern, Dagenais
 * and Walpole, "User-Level Implementations of Read-Copy Update", IEEE TPDS
 * 2012, section 3.4).
 *
 * What it protects.  A channel operation reads segments it found through
 * shared pointers; a segment unlinked by one operation may still be read by
 * another that found it a moment before.  weft__rcu_retire defers the free
 * until every thread that could hold such a pointer has passed a quiescent
 * state (or been offline) since the unlink.
 *
 * Workers.  A worker registers at start and is online from then on.  A read
 * section never contains a park or a user callback, and a switch only as a
 * poll (worker.c, Polling: the task waits pinned in its worker's next slot,
 * resumes there, and the worker reports no quiescent state meanwhile), so
 * the moments between tasks are quiescent unless a poller waits: the worker
 * reports one every FAIR_TICK scheduling decisions (worker.c,
 * weft__after_switch; skipped while a poller waits), before it spins, and
 * is offline while it sleeps on its futex.  A read section in a task therefore
 * costs nothing but the load of weft__rcu_mode.  This is the design the
 * architecture suggested ("every worker passes a quiescent state between
 * tasks"); measured on chan_spsc it removed about 40% of the time that
 * liburcu-bp's per-call read lock (a call, a __tls_get_addr and a barrier on
 * each side) cost.  The price: a task that runs for a long time without
 * switching, or blocks its worker in a system call, delays every grace period
 * and so the freeing of retired segments (memory, never correctness); nothing
 * in weft waits for a grace period synchronously.
 *
 * Plain pthreads.  A plain thread registers on its first read section (a
 * thread-specific key unregisters it at exit) and is offline outside read
 * sections: each section is thread_online ... thread_offline.  Registration
 * is per thread and not reference-counted by liburcu: a thread that its own
 * code registered and brought online before its first read section is left
 * as it is (weft never takes it offline), and must then be online at each
 * later call too (include/weft/chan.h says so); one that registered itself
 * but is offline at its first call cannot be told apart from a new thread.
 *
 * Memory order.  liburcu's online, offline and quiescent-state calls carry
 * the full barriers that order a reader's accesses before the grace period
 * that covers them; weft__rcu_retire is urcu_qsbr_call_rcu, called while
 * online, as liburcu requires.  ThreadSanitizer cannot see those barriers:
 * each section's end releases, and each free callback acquires, one token.
 */
#include <pthread.h>

#include "rcu.h"

_Thread_local unsigned char weft__rcu_mode __attribute__((tls_model("initial-exec")));

static pthread_key_t plain_key;
static pthread_once_t plain_once = PTHREAD_ONCE_INIT;

static void plain_exit(void *arg)
{
    (void)arg;
    urcu_qsbr_unregister_thread();
    weft__rcu_mode = WEFT__RCU_NEW;
}

static void plain_key_make(void)
{
    WEFT_CHECK(pthread_key_create(&plain_key, plain_exit));
}

bool weft__rcu_plain_enter(void)
{
    if (weft__rcu_mode == WEFT__RCU_PLAIN) {
        urcu_qsbr_thread_online();
        return true;
    }
    if (urcu_qsbr_read_ongoing()) {
        /* The thread's own code registered it and it is online: use that,
         * and never take it offline under its owner. */
        weft__rcu_mode = WEFT__RCU_FOREIGN;
        return false;
    }
    WEFT_CHECK(pthread_once(&plain_once, plain_key_make));
    urcu_qsbr_register_thread(); /* leaves the thread online */
    WEFT_CHECK(pthread_setspecific(plain_key, &plain_key));
    weft__rcu_mode = WEFT__RCU_PLAIN;
    return true;
}

bool weft__rcu_read_begin_fresh(void)
{
    return weft__rcu_read_begin();
}

void weft__rcu_plain_leave(void)
{
    urcu_qsbr_thread_offline();
}

#ifdef WEFT_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char tsan_grace;

void weft__rcu_tsan_section_end(void)
{
    __tsan_release(&tsan_grace);
}
#endif

void weft__rcu_grace_passed(void)
{
#ifdef WEFT_TSAN
    __tsan_acquire(&tsan_grace);
#endif
}

void weft__rcu_retire(struct rcu_head *h, void (*free_cb)(struct rcu_head *))
{
    urcu_qsbr_call_rcu(h, free_cb);
}

void weft__rcu_worker_start(void)
{
    urcu_qsbr_register_thread();
    weft__rcu_mode = WEFT__RCU_WORKER;
}

void weft__rcu_worker_stop(void)
{
    weft__rcu_mode = WEFT__RCU_NEW;
    urcu_qsbr_unregister_thread();
}

void weft__rcu_quiescent(void)
{
    urcu_qsbr_quiescent_state();
}

void weft__rcu_offline(void)
{
    urcu_qsbr_thread_offline();
}

void weft__rcu_online(void)
{
    urcu_qsbr_thread_online();
}
