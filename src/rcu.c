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
 * weft__after_switch; skipped while a poller waits), before it spins and at
 * each look while it spins, and is offline while it sleeps on its futex.
 * A read section in a task therefore costs nothing but the load of
 * weft__rcu_mode.  This is the design the
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
 * The reclaimer.  Retired objects wait on one lock-free stack (a Treiber
 * push by the retiring thread; the reclaimer takes the whole stack with an
 * exchange, so no pop races another and there is no ABA).  The reclaimer,
 * a thread of its own started by the first retirement, takes the stack,
 * waits out one grace period (urcu_qsbr_synchronize_rcu), runs the
 * callbacks, sleeps RECLAIM_PERIOD_NS, and so on; with nothing retired it
 * sleeps on a futex until a retirement wakes it.  It is liburcu's call_rcu
 * thread with a shorter period: that one sleeps 10 ms between batches
 * (urcu-call-rcu-impl.h, call_rcu_thread), so a channel moving an item
 * every 25 ns kept some 1500 retired segments of 4 KiB waiting, each new
 * segment memory gone cold or fresh from the allocator.  4 producers and
 * 4 consumers over 1024 slots (10M items) peaked at 14 MB resident on 1
 * worker, 32 MB on 2; with this reclaimer (and spinning workers reporting
 * quiescent states, worker.c) 6.6 and 9.5 MB, in the same time within the
 * noise (24 runs each, alternating).  A grace period a millisecond costs
 * the workers a few quiescent-state reports they make anyway and, when the
 * reclaimer sleeps in the wait, a futex wake.  If the thread cannot be
 * started, retirements go to call_rcu.
 * A fork's child starts a reclaimer of its own for what it inherited
 * (liburcu's call_rcu thread needs the application to call its fork hooks,
 * or the child frees nothing).  Like those hooks' absence, a fork that lands
 * while the reclaimer waits out a grace period leaves liburcu's grace-period
 * and registry locks held in the child, whose channels then free nothing
 * and whose new threads cannot register: a child that goes on using
 * channels, rather than exec'ing, should be forked while no channel is busy
 * (the reclaimer is then asleep).
 *
 * Memory order.  liburcu's online, offline and quiescent-state calls carry
 * the full barriers that order a reader's accesses before the grace period
 * that covers them.  A retirement happens inside a read section, after the
 * object's unlink, and its push (release) precedes the reclaimer's exchange
 * (acquire), which precedes the grace period's start: so every section that
 * could have found the object began before that start, and the grace period
 * waits for it (the order call_rcu keeps too).  The reclaimer's sleep flag
 * and the stack form a Dekker pair (seq_cst): the reclaimer sets the flag
 * and then looks at the stack, a retirement pushes and then reads the flag,
 * so either the reclaimer sees the push or the retirement sees it asleep and
 * wakes it.  ThreadSanitizer cannot see liburcu's barriers: each section's
 * end releases, and each free callback acquires, one token.
 */
#include <pthread.h>
#include <signal.h>
#include <time.h>

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

/* --- the reclaimer ------------------------------------------------------ */

/* Sleep between two batches (see The reclaimer). */
#define RECLAIM_PERIOD_NS 1000000

enum { RECLAIM_NONE, RECLAIM_STARTING, RECLAIM_RUNNING, RECLAIM_FAILED };
static _Atomic int reclaim_state;
static _Atomic(struct rcu_head *) reclaim_stack; /* linked through next.next */
static _Atomic uint32_t reclaim_asleep;          /* futex: 1 while it waits for work */

static void *reclaimer(void *arg)
{
    (void)arg;
    for (;;) {
        /* acquire: each pushed head's fields, written before its push. */
        struct rcu_head *h = atomic_exchange_explicit(&reclaim_stack, NULL, memory_order_acquire);
        if (!h) {
            atomic_store_explicit(&reclaim_asleep, 1, memory_order_seq_cst);
            if (!atomic_load_explicit(&reclaim_stack, memory_order_seq_cst))
                weft__futex_wait(&reclaim_asleep, 1, 0);
            atomic_store_explicit(&reclaim_asleep, 0, memory_order_relaxed);
            continue;
        }
        urcu_qsbr_synchronize_rcu();
        while (h) {
            struct rcu_head *next = (struct rcu_head *)h->next.next;
            h->func(h);
            h = next;
        }
        struct timespec period = {0, RECLAIM_PERIOD_NS};
        nanosleep(&period, NULL);
    }
    return NULL;
}

/* A fork's child has no reclaimer: its next retirement starts one, for the
 * inherited stack too.  (No prepare handler waits for the reclaimer's
 * batch: its grace period may be waiting for the very worker whose task
 * forks, and a worker cannot go offline while a poller is pinned.) */
static void reclaim_fork_child(void)
{
    atomic_store_explicit(&reclaim_asleep, 0, memory_order_relaxed);
    atomic_store_explicit(&reclaim_state, RECLAIM_NONE, memory_order_relaxed);
}

static void reclaim_atfork(void)
{
    WEFT_CHECK(pthread_atfork(NULL, NULL, reclaim_fork_child));
}

/* Starts the reclaimer, or waits for the retirement that is starting it;
 * returns RECLAIM_RUNNING or RECLAIM_FAILED. */
static int reclaim_start(void)
{
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    int st = RECLAIM_NONE;
    if (atomic_compare_exchange_strong_explicit(&reclaim_state, &st, RECLAIM_STARTING,
                                                memory_order_acq_rel, memory_order_acquire)) {
        WEFT_CHECK(pthread_once(&atfork_once, reclaim_atfork));
        /* No signal of the application's is ever delivered to it. */
        sigset_t all, old;
        sigfillset(&all);
        WEFT_CHECK(pthread_sigmask(SIG_SETMASK, &all, &old));
        pthread_t t;
        int err = pthread_create(&t, NULL, reclaimer, NULL);
        WEFT_CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL));
        if (!err) {
            pthread_detach(t);
            pthread_setname_np(t, "weft-reclaim");
        }
        st = err ? RECLAIM_FAILED : RECLAIM_RUNNING;
        atomic_store_explicit(&reclaim_state, st, memory_order_release);
        return st;
    }
    for (unsigned round = 0; st == RECLAIM_STARTING; weft__backoff(&round))
        st = atomic_load_explicit(&reclaim_state, memory_order_acquire);
    return st;
}

void weft__rcu_retire(struct rcu_head *h, void (*free_cb)(struct rcu_head *))
{
    int st = atomic_load_explicit(&reclaim_state, memory_order_acquire);
    if (WEFT_UNLIKELY(st != RECLAIM_RUNNING) && reclaim_start() == RECLAIM_FAILED) {
        urcu_qsbr_call_rcu(h, free_cb);
        return;
    }
    h->func = free_cb;
    struct rcu_head *top = atomic_load_explicit(&reclaim_stack, memory_order_relaxed);
    do
        h->next.next = (struct cds_wfcq_node *)top;
    while (!atomic_compare_exchange_weak_explicit(&reclaim_stack, &top, h, memory_order_seq_cst,
                                                  memory_order_relaxed));
    if (atomic_load_explicit(&reclaim_asleep, memory_order_seq_cst) &&
        atomic_exchange_explicit(&reclaim_asleep, 0, memory_order_relaxed))
        weft__futex_wake(&reclaim_asleep, 1);
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
