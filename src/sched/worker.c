/*
 * The scheduler: worker pthreads, their run queues, stealing, spinning and
 * parking.
 *
 * Each worker runs tasks from, in order:
 *   1. its next slot: the task this worker most recently made runnable (a
 *      woken partner, a fresh child).  A ping-pong pair then stays on one
 *      core, as with Go's runnext and Tokio's LIFO slot.  Bounded: after
 *      NEXT_MAX consecutive next-slot runs the deque goes first once.
 *   2. its Chase-Lev deque (deque.c), popped LIFO by the owner, up to 8
 *      entries under one fence into w->held (deque_next), which count as
 *      the deque's bottom: they are runnable there and invisible to thieves,
 *      as the next slot is;
 *   3. its yield queue: FIFO of tasks that called weft_yield, so yielders
 *      take turns behind everything else;
 *   4. the global injector (inject.c), checked first every FAIR_TICK
 *      decisions so outside submissions cannot starve;
 *   5. other workers' deques: steal half of a random victim's tasks,
 *      with patience for tasks made runnable there (see Stealing);
 *   6. spin for opt.spin_ns repeating 4 and 5; then park on a futex.
 *
 * Switching.  A task that blocks, yields or exits picks its successor from
 * 1-3 itself and switches to it directly (one switch per hand-off).  Only
 * when those are empty does it switch to the worker's scheduler context (on
 * the pthread's own stack), which searches further, spins and parks.  The
 * context that switched away cannot finish its own bookkeeping (it is no
 * longer running), so it leaves it in w->prev / w->prev_action and the
 * context that resumes runs weft__after_switch first thing.
 *
 * Invariants:
 *  1. A runnable task is in exactly one place: a next slot, a deque, a
 *     worker's held batch, a yield queue, the injector, or w->prev with
 *     action YIELD, POLL or PARK-after-WOKEN.  A worker never looks for work
 *     elsewhere, spins or parks while its held batch is not empty (local_next
 *     returns from it first), so held tasks, like the next slot's, need no
 *     wake-up.
 *  5. Between choosing its successor and switching, a task makes nothing
 *     runnable: the next slot then holds what it held when the task chose,
 *     which task.c's exit relies on (an exiting task's joiner must not be
 *     stealable before the exiting task is off its stack).
 *  2. w->current is the task running on w, or NULL in the scheduler context.
 *  3. rt->nr_spinning counts workers with w->spinning set, plus transiently
 *     the right-to-wake claimed in weft__sched_wake_one.  A worker popped
 *     from the idle list by a waker starts spinning (the waker counted it).
 *  4. Park hand-shake of a task (t->park): the task stores PARKING before it
 *     publishes its waiter; after it switched away, weft__after_switch
 *     exchanges in PARKED; the waker exchanges in WOKEN.  Whoever of the two
 *     exchanges second sees the other's value and enqueues the task, so a
 *     wake-up that arrives while the task is still switching out is neither
 *     lost nor acted on twice, and no task is resumed before it is fully
 *     switched out.  A waker that already reads PARKED (acquire) has no one
 *     to race (a waiter has one waker) and stores WOKEN plainly (wait.c).
 *
 * No lost wake-up (submit versus park).  A submitter makes t runnable (a
 * deque push or injector enqueue), then, after a seq_cst fence, reads
 * nr_spinning and nr_idle, and wakes an idle worker when none spins.  A
 * worker about to sleep first puts itself on the idle list (nr_idle++), then
 * stops spinning (nr_spinning--), then, after a seq_cst fence, looks at every
 * queue once more; only if all are empty does it sleep.  With the fences, the
 * submitter's push and the parker's re-check are ordered one way or the other:
 *   - re-check after push: the parker sees the task and does not sleep;
 *   - re-check before push: the parker's nr_idle++ and nr_spinning-- precede
 *     the submitter's reads, so the submitter sees an idle worker and either
 *     no spinner (it wakes one) or a spinner S that decrements nr_spinning
 *     later, and so re-checks later, and so sees the task (S either runs it or
 *     wakes someone by the same rule).
 * The right-to-wake in wake_one is itself a spinner: if it finds the idle
 * list empty it gives the right back and re-checks the queues, waking again
 * if work and an idle worker appeared meanwhile.  A spinner that finds work
 * and was the last spinner re-checks the queues and wakes a worker if any
 * work is left, because submitters that saw it spinning relied on it for
 * every task they pushed, and it takes only one.
 * The stress test tests/stress/stress_wake.c hammers this.
 *
 * At most one worker is woken per new runnable task, and none while another
 * spins (Go's rule, proc.go "Worker thread parking/unparking"): parking costs
 * tens of microseconds on a virtual machine, spinning picks work up in well
 * under one.
 *
 * Stealing.  A task that a running task makes runnable (a woken partner,
 * a fresh child) goes to its worker's next slot, and the slot's previous
 * occupant to the deque, marked (bit 0 of the entry, MARK_MADE_HERE).  A
 * thief takes a marked entry only when that entry stayed at the top of
 * that deque (the same top index, deque.h) while the victim made no
 * scheduling decision for STEAL_PATIENCE_NS (50 us: the victim ran one
 * task all that time, or its thread did not run), or for
 * STEAL_PATIENCE_BUSY_NS (1 ms) whatever the victim did; unmarked entries
 * (from the injector, or stolen before) it takes at once.  A decision is
 * choosing a task (local_next) or queueing one on the deque
 * (make_runnable_from): a task that spawns children or wakes partners in
 * a loop is busy, not stuck.  The victim counts its decisions
 * (w->decisions, relaxed stores of its own).  The thief reads the count
 * once a STEAL_PATIENCE_NS and looks at the deque of the victim it waits
 * on once a STEAL_LOOK_NS (10 us), so those lines move a few times in
 * that time, not at every look: after a look at its bottom index the
 * owner's next push waits for the line at wake_one's seq_cst fence.
 * The marked tasks are those that talk to the tasks on their worker:
 * producers woken by a consumer, children that their parent will join.
 * Stolen at once, a woken producer ran on the thief only to block again
 * and be woken back onto the consumer's worker, so every item moved tasks
 * across cores (cache misses on their stacks and waiters, and a second
 * worker busy doing nothing useful; a line moves between the two vCPUs of
 * our test machine in about 220 ns): on 2 workers a 1-slot channel with 4
 * producers and 1 consumer took 230-500 ns an item (95 ns on 1 worker),
 * and after a fixed 10 us patience 105-155 ns; a rendezvous one 280-490 ->
 * 100-160 ns.  The fixed patience still split tasks that talk through a
 * deep buffer (a producer fills 1024 slots in 10-20 us): 4 producers and
 * 4 consumers over 1024 slots took a median 82 ns an item, and with the
 * decision count 43 (8 alternating runs, bench/bench_chan's shape).
 * Spawn+join on 2 workers (1000 children spawned, then joined) still took
 * about twice its time on 1 worker, for three reasons, each fixed here:
 * the thief's looks at every spin made the parent's pushes miss; a spawn
 * loop of 50 us made no decision, so the thief took half the batch and the
 * parent, woken by a stolen child, moved to the thief (half the batches ran
 * there, on cold stacks); and the thief parked whenever the deque was empty
 * between batches, so the parent's next push paid a futex wake.  A
 * spinner that waits out a marked entry now keeps spinning (find_work),
 * as it already could not sleep with that entry visible.  Futex calls for
 * 1M spawn+joins 1623 -> 137, median time 205 -> 113 ns (5 alternating
 * runs of bench/bench_spawn_join); channels, fib and skynet unchanged.
 * The top index, not the entry, names what the thief waits on: pooled
 * tasks reuse addresses, and the first child of every batch had looked as
 * if it had waited since the first batch.
 * Busy patience adapts for tasks that ran before (woken partners; the
 * entry carries MARK_RAN): a thief judges each steal that the busy rule
 * allowed it when it next runs out of local work.  The steal paid if the
 * stolen work kept it busy at least as long as it had waited: then its
 * busy patience halves, down to STEAL_PATIENCE_BUSY_NS; else it doubles,
 * up to STEAL_PATIENCE_BUSY_MAX_NS (16 ms).  Fresh children (never ran)
 * always get STEAL_PATIENCE_BUSY_NS, so a fan-out spreads as before
 * whatever came earlier.  Why: tasks that talk through a channel and
 * switch every few microseconds keep their worker busy, so the busy rule
 * took one of them every 1.3 ms or so; the stolen producer ran on the
 * thief, woke consumers there, and for 40-640 us (most steals) both
 * workers moved every item across cores, until the group met again on one
 * worker and the thief went idle.  4 producers and 4 consumers over 1024
 * slots (bench_chan's mpmc) took a median 41 ns an item, 33 ns with the
 * adaptive patience (8 alternating runs; the other matrix cells, skynet,
 * fib and spawn+join unchanged within noise).  A group whose stolen part
 * runs on by itself (independent pairs, a stolen subtree) keeps the thief
 * busy, so its steals pay and the patience stays short; a woken task
 * that then computes without switching is taken by the 50 us rule,
 * which does not adapt.
 * A worker whose task runs without switching loses its marked tasks after
 * STEAL_PATIENCE_NS to 2 STEAL_PATIENCE_NS + STEAL_LOOK_NS (the count may
 * have moved just after the first read, and the first sight may come one
 * look late), a busy one after its thief's busy patience (at most
 * STEAL_PATIENCE_BUSY_MAX_NS) + STEAL_LOOK_NS; and an idle worker cannot sleep while any deque holds a task
 * (work_visible), so a marked task waits for a free worker at most that
 * plus one spin.  Go waits too, for its runnext only (runtime/proc.go,
 * runqgrab: about 3 us while the victim runs); Tokio never steals its LIFO
 * slot.
 *
 * Polling (weft__task_poll_next).  A task about to wait for a partner that
 * it has probably just made runnable (a rendezvous receive that found no
 * sender, a rendezvous send that sees no receiver waiting: chan.c) lets the
 * task in its next slot run first, and itself takes that slot, pinned: a
 * wake-up that would displace it to the deque queues the newcomer there
 * instead (weft__sched_displaced), an exiting task keeps its joiner for
 * after its switch (task.c), and no thief steals a next slot; so it
 * resumes on this worker, when local_next next takes the slot or a poll
 * of the task it let run takes it back.  A receiver polls holding its
 * cell, inside its read section (rcu.h), so the worker reports no
 * quiescent state while the slot is pinned.  Fairness is local_next's: a
 * poll is a decision, counts towards the fairness tick and the next-slot
 * streak, and is refused (the caller blocks the usual way, through
 * local_next) when the tick is due or the deque's turn has come.  A
 * rendezvous ping-pong then runs without a block: each side leaves its
 * item in the cell of the other, which is polling, and lets it run
 * (chan.c, Polling).
 *
 * Timers.  Each worker owns a timer heap (timer.c) for tasks sleeping on it;
 * it fires expired timers when it searches for work and every FAIR_TICK
 * decisions, and parks no longer than its earliest deadline.  A worker busy in
 * one long-running task delays its own timers (scheduling is cooperative).
 *
 * Grace periods (rcu.c).  A worker is registered with liburcu-qsbr and
 * online while it runs; no read section spans a switch but a poll's, so it
 * reports a quiescent state every FAIR_TICK decisions, each time its
 * scheduler context gets control and at each look while it spins, and is
 * offline while it sleeps on its futex.
 *
 * Rejected: a scheduler context switch on every hand-off (doubles the switch
 * cost); stealing the next slot (makes the owner's fast path an atomic
 * exchange; Go does steal it after a delay; our patience applies to the
 * deque instead); one global futex for all idle workers (wakes a herd).
 */

#include <errno.h>
#include <stdlib.h>

#include "../rcu.h"
#include "../runtime.h"

#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_TSAN
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* Consecutive next-slot runs before the deque gets a turn. */
#define NEXT_MAX 32
/* Every FAIR_TICK decisions the injector and the yield queue go first and
 * timers are fired (a prime, as Go's 61, so it does not beat with loops). */
#define FAIR_TICK 61
/* Injector batch: one lock round trip serves several tasks. */
#define INJECT_BATCH 16
/* Pause instructions between two looks for work while spinning. */
#define SPIN_PAUSES 8
/* The deque mark of a task that a task running on this worker made
 * runnable (see Stealing), and how long a thief leaves such a task at the
 * top of its deque before taking it: while the victim makes no decision,
 * and in any case; and how often it looks at that deque meanwhile. */
#define MARK_MADE_HERE ((uintptr_t)1)
/* With MARK_MADE_HERE: the task has run before (a woken partner, not a
 * fresh child); its thief's busy patience adapts (see Stealing). */
#define MARK_RAN ((uintptr_t)2)
#define MARK_BITS (MARK_MADE_HERE | MARK_RAN)
#define STEAL_PATIENCE_NS 50000
#define STEAL_PATIENCE_BUSY_NS 1000000
/* The longest busy patience for a task that ran before (see Stealing). */
#define STEAL_PATIENCE_BUSY_MAX_NS 16000000
#define STEAL_LOOK_NS 10000

/* initial-exec: one %fs-relative load instead of a __tls_get_addr call (the
 * library is built position-independent, which would otherwise pick the
 * general-dynamic model).  One pointer of static TLS is well within glibc's
 * reserve for libraries loaded at start-up or by dlopen. */
_Thread_local weft__worker *weft__tls_worker __attribute__((tls_model("initial-exec")));

weft__worker *weft__worker_self_slow(void)
{
    return weft__tls_worker;
}

/* --- switching ---------------------------------------------------------- */

/* Sanitizer-aware switch between contexts on the same worker.  Inline at
 * both callers: the switch resumes at a label in its caller's
 * frame (arch/ctx.h), and a call around it would unbalance the return-stack
 * predictor again. */
static inline __attribute__((always_inline)) void weft__switch(weft__worker *w, weft__ctx *from,
                                                                weft_task *to, bool from_exits)
{
    if (to && WEFT_UNLIKELY(!to->ctx.sp)) weft__task_start(w, to);
    const weft__ctx *target = to ? &to->ctx : &w->sched_ctx;
#ifdef WEFT_ASAN
    weft_task *self = w->prev;
    void **fake = from_exits ? NULL : (self && from == &self->ctx ? &self->asan_fake : &w->asan_fake);
    if (to)
        __sanitizer_start_switch_fiber(fake, to->stack->lo, (size_t)(weft__stack_hi(to->stack) - to->stack->lo));
    else
        __sanitizer_start_switch_fiber(fake, w->sched_stack_lo, w->sched_stack_size);
#endif
#ifdef WEFT_TSAN
    __tsan_switch_to_fiber(to ? to->tsan_fiber : w->tsan_fiber, 0);
#endif
    /* An exiting task never resumes: nothing of it to save.  (Not writing its
     * context also keeps that cache line clean on this worker, which helps
     * whoever reuses the stack next.) */
    if (from_exits) weft__ctx_jump(target);
    weft__ctx_switch(from, target);
#ifdef WEFT_ASAN
    __sanitizer_finish_switch_fiber(fake ? *fake : NULL, NULL, NULL);
#endif
}

static void yq_push(weft__worker *w, weft_task *t)
{
    t->link = NULL;
    if (w->yq_tail)
        w->yq_tail->link = t;
    else
        w->yq_head = t;
    w->yq_tail = t;
}

static weft_task *yq_pop(weft__worker *w)
{
    weft_task *t = w->yq_head;
    if (t) {
        w->yq_head = t->link;
        if (!w->yq_head) w->yq_tail = NULL;
    }
    return t;
}

/* Pushes t on w's deque, with mark (0, or MARK_MADE_HERE and perhaps
 * MARK_RAN) in its low bits. */
static void push_marked(weft__worker *w, weft_task *t, uintptr_t mark)
{
    if (WEFT_UNLIKELY(weft__dq_push(&w->dq, (void *)((uintptr_t)t | mark)) != 0))
        weft__inject_push(&w->rt->inject, &t->inode); /* out of memory: never lose it */
}

static void push_local(weft__worker *w, weft_task *t)
{
    push_marked(w, t, 0);
}

/* A deque entry's task, without its mark. */
static inline weft_task *dq_task(void *x)
{
    return (weft_task *)((uintptr_t)x & ~MARK_BITS);
}

/* Bytes of a parked task's stack above its saved stack pointer that
 * resuming it touches: the frames from weft__task_main down to the switch,
 * 312 bytes for a sleep on x86-64. */
#define TASK_HOT_STACK 320

/*
 * Starts loading the memory that running a woken task touches: its struct,
 * and the frames at the top of its stack.  Hints: they never fault and may
 * be wrong.  When local_next takes a task from the deque it loads the
 * struct of the one after it, and the frames of the one it took, whose
 * struct (the saved stack pointer) the previous take loaded; so draining
 * many woken tasks (a cancel storm) overlaps their misses: without it,
 * cancel_1m took twice as long.  Written out, one prefetch per line off one
 * base register (the loop form cost 4 instructions a line on this path).
 */
#define PF(i)                                                                                      \
    if ((i) < LINES) __builtin_prefetch(p + WEFT_CACHELINE * (i), 1)
static inline void task_prefetch_struct(const weft_task *t)
{
    enum { LINES = WEFT__LINES(sizeof(weft_task)) / WEFT_CACHELINE };
    _Static_assert(LINES <= 6, "task_prefetch_struct covers at most 6 lines");
    const char *p = (const char *)t;
    PF(0); PF(1); PF(2); PF(3); PF(4); PF(5);
    /* GCC 12 deems a function of prefetches alone free of side effects and
     * deletes calls to it before inlining; an empty volatile asm (no code)
     * keeps them. */
    __asm__ volatile("");
}

static inline void task_prefetch_stack(const weft_task *t)
{
    enum { LINES = WEFT__LINES(TASK_HOT_STACK) / WEFT_CACHELINE + 1 };
    _Static_assert(LINES <= 6, "task_prefetch_stack covers at most 6 lines");
    if (!t->ctx.sp) return; /* it will run on a warm stack (weft__task_start) */
    const char *p = (const char *)((uintptr_t)t->ctx.sp & ~(uintptr_t)(WEFT_CACHELINE - 1));
    PF(0); PF(1); PF(2); PF(3); PF(4); PF(5);
    __asm__ volatile("");
}
#undef PF

/* Takes a batch from the injector: returns one, queues the rest locally.
 * Out of line: inlined, its batch array would give local_next (the yield and
 * park fast path) a frame and five register saves it needs once in 61 calls. */
static __attribute__((noinline)) weft_task *from_injector(weft__worker *w)
{
    struct cds_wfcq_node *nodes[INJECT_BATCH];
    size_t n = weft__inject_pop(&w->rt->inject, nodes, INJECT_BATCH);
    if (n == 0) return NULL;
    for (size_t i = n - 1; i > 0; i--)
        push_local(w, caa_container_of(nodes[i], weft_task, inode));
    if (n > 1) weft__sched_wake_one(w->rt);
    return caa_container_of(nodes[0], weft_task, inode);
}

/* One more scheduling decision of w (see Stealing): its owner's relaxed
 * store, which thieves read once a STEAL_PATIENCE_NS. */
static inline void count_decision(weft__worker *w)
{
    atomic_store_explicit(&w->decisions,
                          atomic_load_explicit(&w->decisions, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/*
 * The owner's next deque entry (marks kept), or NULL.  On 2 or more workers
 * each take pays a seq_cst fence; from a deque of more than 2 *
 * WEFT__HELD_MAX entries it takes WEFT__HELD_MAX under one fence
 * (weft__dq_take_batch) and holds them: the batch sits logically just above
 * the bottom it left (held_at), so entries pushed since, which lie above
 * that, go first (a take), and the held ones next, newest first: the order
 * of one take at a time.  Thieves never see held entries: a batch is taken
 * only from a deque the owner last saw holding more than twice as many,
 * and always leaves one or more behind (deque.c, invariant 7).  (spawn+join
 * of 1000-task batches on 2 workers: the join phase takes every child from
 * the deque.)
 */
static inline void *deque_next(weft__worker *w)
{
    weft__deque *q = &w->dq;
    if (w->nheld) {
        if (weft__dq_bottom_owner(q) != w->held_at) {
            void *x = weft__dq_take(q); /* one pushed since the batch */
            if (x) return x;
            /* None left (thieves took the rest): what comes next lies above
             * bottom as it is now. */
            w->held_at = weft__dq_bottom_owner(q);
        }
        return w->held[--w->nheld];
    }
    /* The owner's size is never an underestimate (top only grows), so an
     * empty deque is ruled out without a fence, and without reading top
     * (deque.c, invariant 6). */
    int64_t size = weft__dq_size_owner(q);
    if (size <= 0) return NULL;
    if (w->solo) return weft__dq_take_solo(q);
    if (size > 2 * WEFT__HELD_MAX && weft__dq_take_batch(q, w->held, WEFT__HELD_MAX)) {
        w->held_at = weft__dq_bottom_owner(q);
        w->nheld = WEFT__HELD_MAX - 1;
        return w->held[WEFT__HELD_MAX - 1];
    }
    return weft__dq_take(q);
}

/* Whether the next slot goes before the deque: unless it has had NEXT_MAX
 * runs in a row while the deque (or a held batch) waits. */
static inline bool next_slot_turn(weft__worker *w)
{
    return w->next_streak < NEXT_MAX || (weft__dq_size_owner(&w->dq) <= 0 && !w->nheld);
}

/* Empties the next slot (its task is about to run), unpinning it. */
static inline void take_next(weft__worker *w)
{
    w->next = NULL;
    w->next_pinned = false;
}

/* Fast local choice: next slot, deque, yield queue (plus the fairness tick). */
static weft_task *local_next(weft__worker *w)
{
    weft_task *t;
    /* No timers fire here: local_next runs before the caller has switched
     * off its stack, and a wake-up could push the task in the next slot (an
     * exiting task's joiner, task.c step 1) to the stealable deque, where
     * another worker could run it and free the caller's stack under it.
     * Timers fire in weft__after_switch instead, on the far side. */
    count_decision(w);
    if (WEFT_UNLIKELY(++w->tick == FAIR_TICK)) {
        w->tick = 0;
        if ((t = from_injector(w)) || (t = yq_pop(w))) {
            w->next_streak = 0;
            return t;
        }
    }
    if ((t = w->next) && next_slot_turn(w)) {
        take_next(w);
        w->next_streak++;
        return t;
    }
    w->next_streak = 0;
    void *x = deque_next(w);
    if (x) {
        /* Draining many parked-then-woken tasks (a cancel storm) misses on
         * each: start on the next one while this one runs. */
        t = dq_task(x);
        void *after = w->nheld ? w->held[w->nheld - 1] : weft__dq_peek(&w->dq);
        if (after) {
            task_prefetch_stack(t);
            task_prefetch_struct(dq_task(after));
        }
        return t;
    }
    if ((t = w->next)) {
        take_next(w);
        return t;
    }
    return yq_pop(w);
}

/* Before a task switches out: the red-zone test inline, the canary words
 * (unguarded stacks) out of line: this is the yield, park and poll fast
 * path.  frame: the caller's frame address. */
static inline __attribute__((always_inline)) void stack_check_at(weft_task *self, void *frame)
{
    if (WEFT_UNLIKELY((const char *)frame < (const char *)self->stack->lo + WEFT__STACK_REDZONE) ||
        !self->stack->guarded)
        weft__stack_check(self, frame);
}

void weft__task_switch_out(weft__worker *w, weft_task *self, int action)
{
    stack_check_at(self, __builtin_frame_address(0));
    w->prev = self;
    w->prev_action = action;
    weft_task *n = local_next(w);
    w->current = n;
    weft__switch(w, &self->ctx, n, action == WEFT__SW_EXIT);
    /* Resumed, perhaps on another worker: re-read it (never cache TLS). */
    w = weft__worker_self();
    /* A yield's far side inline (queue the yielder), the rest out of line. */
    weft_task *p = w->prev;
    if (p && w->prev_action == WEFT__SW_YIELD && w->tick != 0) {
        w->prev = NULL;
        yq_push(w, p);
        return;
    }
    weft__after_switch(w);
}

bool weft__task_poll_next(weft__worker *w, weft_task *self)
{
    weft_task *n = w->next;
    /* The fairness of local_next: the tick's turn for the injector and the
     * yield queue, and the deque's turn after NEXT_MAX next-slot runs, are
     * left to a real block, which chooses through local_next. */
    if (!n || w->tick + 1 >= FAIR_TICK || !next_slot_turn(w)) return false;
    stack_check_at(self, __builtin_frame_address(0));
    w->tick++;
    count_decision(w);
    w->next_streak++;
    take_next(w);
    w->prev = self;
    w->prev_action = WEFT__SW_POLL;
    w->current = n;
    weft__switch(w, &self->ctx, n, false);
    /* Pinned, so resumed on this worker, from its next slot. */
    w = weft__worker_self();
    weft__after_switch(w);
    return true;
}

void weft__after_switch(weft__worker *w)
{
    weft_task *p = w->prev;
    if (!p) return;
    w->prev = NULL;
    switch (w->prev_action) {
    case WEFT__SW_YIELD:
        yq_push(w, p);
        break;
    case WEFT__SW_PARK:
        /* acq_rel: invariant 4; pairs with the exchange in weft__waiter_wake. */
        if (atomic_exchange_explicit(&p->park, WEFT__P_PARKED, memory_order_acq_rel) ==
            WEFT__P_WOKEN)
            weft__make_runnable(p);
        break;
    case WEFT__SW_EXIT:
        weft__task_exited(w, p);
        break;
    case WEFT__SW_POLL:
        /* The poller took the next slot's task to run us: the slot is
         * empty until we make something runnable, which we have not yet. */
        w->next = p;
        w->next_pinned = true;
        break;
    default:
        WEFT_DIE("bad switch action %d", w->prev_action);
    }
    /* The fairness tick's timer check (see local_next for why it is here),
     * and a quiescent state for the channels' segment reclamation (rcu.c):
     * between two tasks no read section is open. */
    if (WEFT_UNLIKELY(w->tick == 0)) {
        weft__timers_run(w, weft__now());
        /* Not while a poller waits in the next slot inside its read
         * section (see Polling): the next tick will. */
        if (!w->next_pinned) weft__rcu_quiescent();
    }
}

/* --- making tasks runnable, waking workers ------------------------------ */

void weft__sched_displaced(weft__worker *w, weft_task *old)
{
    if (WEFT_UNLIKELY(w->next_pinned)) {
        /* A poller stays in the next slot (see Polling); the newcomer
         * goes to the deque in its place. */
        weft_task *t = w->next;
        w->next = old;
        old = t;
    }
    count_decision(w); /* queueing one is a decision too (see Stealing) */
    /* ctx.sp: set once the task has run (task.c); old is ours to read,
     * just taken from our next slot. */
    push_marked(w, old, MARK_MADE_HERE | (old->ctx.sp ? MARK_RAN : 0));
    /* The only worker is this one, and awake: no one to wake, so no
     * fence either. */
    if (w->solo) return;
    weft__sched_wake_one(w->rt);
}

void weft__sched_submit(weft_task *t)
{
    weft__inject_push(&t->rt->inject, &t->inode);
    weft__sched_wake_one(t->rt);
}

/* Is there anything a worker could take?  (Re-check before sleeping.) */
static bool work_visible(weft_runtime *rt)
{
    if (!weft__inject_empty(&rt->inject)) return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__dq_size(&rt->workers[i].dq) > 0) return true;
    return false;
}

static weft__worker *idle_pop(weft_runtime *rt)
{
    WEFT_CHECK(pthread_mutex_lock(&rt->idle_lock));
    weft__worker *w = rt->idle_list;
    if (w) {
        rt->idle_list = w->idle_next;
        w->idle_next = NULL;
        atomic_fetch_sub_explicit(&rt->nr_idle, 1, memory_order_seq_cst);
    }
    WEFT_CHECK(pthread_mutex_unlock(&rt->idle_lock));
    return w;
}

static void unpark(weft__worker *w)
{
    /* release: pairs with the acquire load in park(). */
    atomic_store_explicit(&w->park_word, 1, memory_order_release);
    weft__futex_wake(&w->park_word, 1);
}

/* weft__sched_wake_one (runtime.h) did the fence and found a worker idle and
 * none spinning. */
void weft__sched_wake_slow(weft_runtime *rt)
{
    for (;;) {
        int zero = 0;
        if (!atomic_compare_exchange_strong_explicit(&rt->nr_spinning, &zero, 1,
                                                     memory_order_seq_cst, memory_order_relaxed))
            return;
        weft__worker *w = idle_pop(rt);
        if (w) {
            unpark(w); /* w starts spinning; our increment is its (invariant 3) */
            return;
        }
        atomic_fetch_sub_explicit(&rt->nr_spinning, 1, memory_order_seq_cst);
        weft__fence_sc(); /* orders the decrement before both looks */
        if (!work_visible(rt) || !weft__sched_wake_wanted(rt)) return;
    }
}

static void stop_spinning(weft__worker *w)
{
    if (!w->spinning) return;
    w->spinning = false;
    if (atomic_fetch_sub_explicit(&w->rt->nr_spinning, 1, memory_order_seq_cst) != 1) return;
    /* We were the last spinner.  Submitters that saw us spinning did not wake
     * anyone; whatever they pushed before our decrement is visible to this
     * re-check (seq_cst fence), and whoever pushes after it sees no spinner
     * and wakes a worker itself.  So wake one only if work is waiting: Go
     * wakes unconditionally, which here cost a futex wake and a park per
     * task posted to an otherwise idle runtime. */
    weft__fence_sc();
    if (work_visible(w->rt) && weft__sched_wake_wanted(w->rt)) weft__sched_wake_slow(w->rt);
}

/* --- timers ------------------------------------------------------------- */

void weft__timers_run(weft__worker *w, uint64_t now)
{
    weft__timers_expire(&w->timers, now);
}

/* --- finding work, spinning, parking ------------------------------------ */

/* How a thief's wait for a marked entry stands (patience_over). */
enum {
    PAT_WAIT,     /* not yet */
    PAT_OVER,     /* over: take it */
    PAT_OVER_RAN, /* over by w's adaptive busy patience: take it, judge it later */
};

/* Whether this thief has waited long enough for the marked entry seen at
 * index seen_top of v's deque (see Stealing).  The first sight starts the
 * wait; every STEAL_PATIENCE_NS it reads v's decision count, and a count
 * that did not move (v ran one task all that time) ends the wait, as does
 * the busy patience in all: STEAL_PATIENCE_BUSY_NS, or w's adaptive one
 * when the entry's task ran before (ran; PAT_OVER_RAN then tells the caller
 * to have judge_busy_steal judge the steal).  While it waits, the thief's
 * next look at v is STEAL_LOOK_NS away (w->pat_look_at) and
 * w->pat_waiting is set. */
static int patience_over(weft__worker *w, const weft__worker *v, int64_t seen_top, bool ran,
                         uint64_t now)
{
    int over = PAT_OVER;
    if (w->pat_victim != v || w->pat_top != seen_top) {
        w->pat_victim = v;
        w->pat_top = seen_top;
        w->pat_since = now;
        w->pat_read_at = now;
        w->pat_decisions = atomic_load_explicit(&v->decisions, memory_order_relaxed);
    } else if (now - w->pat_since >= (ran ? w->pat_busy_ns : STEAL_PATIENCE_BUSY_NS)) {
        if (ran) over = PAT_OVER_RAN;
        goto over;
    } else if (now - w->pat_read_at >= STEAL_PATIENCE_NS) {
        unsigned d = atomic_load_explicit(&v->decisions, memory_order_relaxed);
        if (d == w->pat_decisions) goto over;
        w->pat_decisions = d;
        w->pat_read_at = now;
    }
    w->pat_look_at = now + STEAL_LOOK_NS;
    w->pat_waiting = true;
    return PAT_WAIT;
over:
    w->pat_look_at = 0;
    return over;
}

/* Called when w runs out of local work: judges the busy-rule steal that
 * w made last, if any (see Stealing): it paid when the stolen work kept w
 * busy at least as long as w had waited for it.  A steal that paid halves
 * the busy patience (down to STEAL_PATIENCE_BUSY_NS), one that did not
 * doubles it (up to STEAL_PATIENCE_BUSY_MAX_NS). */
static void judge_busy_steal(weft__worker *w)
{
    if (!w->busy_stole_at) return;
    uint64_t pat = w->pat_busy_ns;
    if (weft__now() - w->busy_stole_at >= pat)
        pat = pat / 2 < STEAL_PATIENCE_BUSY_NS ? STEAL_PATIENCE_BUSY_NS : pat / 2;
    else
        pat = 2 * pat > STEAL_PATIENCE_BUSY_MAX_NS ? STEAL_PATIENCE_BUSY_MAX_NS : 2 * pat;
    w->pat_busy_ns = pat;
    w->busy_stole_at = 0;
}

static weft_task *steal(weft__worker *w)
{
    weft_runtime *rt = w->rt;
    unsigned n = rt->nworkers;
    if (n < 2) return NULL;
    unsigned start = (unsigned)(weft__rand(&w->rng) % n);
    uint64_t now = weft__now();
    for (unsigned k = 0; k < n; k++) {
        weft__worker *v = &rt->workers[(start + k) % n];
        if (v == w) continue;
        if (v == w->pat_victim && now < w->pat_look_at) {
            w->pat_waiting = true; /* still waiting on v: no look yet */
            continue;
        }
        int64_t size = weft__dq_size(&v->dq);
        if (size <= 0) continue;
        weft_task *first = NULL;
        bool take_marked = false, judge = false;
        /* Half the tasks; a lost race counts as a try, so it ends. */
        for (int64_t tries = (size + 1) / 2; tries > 0; tries--) {
            int64_t seen_top = 0;
            void *seen = NULL;
            void *x = weft__dq_steal_if(&v->dq, take_marked, &seen_top, &seen);
            if (x == WEFT__DQ_MARKED) {
                if (first) break;
                int why = patience_over(w, v, seen_top, (uintptr_t)seen & MARK_RAN, now);
                if (why == PAT_WAIT) break;
                judge = why == PAT_OVER_RAN;
                take_marked = true; /* this one and any marked after it */
                x = weft__dq_steal_if(&v->dq, take_marked, &seen_top, NULL);
            }
            if (x == WEFT__DQ_EMPTY) break;
            if (x == WEFT__DQ_ABORT) continue;
            if (!first)
                first = dq_task(x);
            else
                push_local(w, dq_task(x));
        }
        if (first) {
            if (judge) w->busy_stole_at = now;
            return first;
        }
    }
    return NULL;
}

static weft_task *search(weft__worker *w)
{
    weft_task *t;
    if ((t = local_next(w))) return t;
    if ((t = from_injector(w))) return t;
    weft__timers_run(w, weft__now());
    if ((t = local_next(w))) return t;
    return steal(w);
}

static bool may_spin(weft__worker *w)
{
    weft_runtime *rt = w->rt;
    if (rt->opt.spin_ns == 0) return false;
    /* Go's limit: spinners at most half the busy workers (at least one). */
    int busy = (int)rt->nworkers - atomic_load_explicit(&rt->nr_idle, memory_order_relaxed);
    int spinning = atomic_load_explicit(&rt->nr_spinning, memory_order_relaxed);
    return 2 * spinning < (busy > 1 ? busy : 2);
}

static bool idle_remove(weft__worker *w)
{
    weft_runtime *rt = w->rt;
    bool found = false;
    WEFT_CHECK(pthread_mutex_lock(&rt->idle_lock));
    for (weft__worker **pp = &rt->idle_list; *pp; pp = &(*pp)->idle_next) {
        if (*pp == w) {
            *pp = w->idle_next;
            w->idle_next = NULL;
            atomic_fetch_sub_explicit(&rt->nr_idle, 1, memory_order_seq_cst);
            found = true;
            break;
        }
    }
    WEFT_CHECK(pthread_mutex_unlock(&rt->idle_lock));
    return found;
}

/* Sleeps until woken or the earliest timer; see "No lost wake-up". */
static void park(weft__worker *w)
{
    weft_runtime *rt = w->rt;
    atomic_store_explicit(&w->park_word, 0, memory_order_relaxed);
    WEFT_CHECK(pthread_mutex_lock(&rt->idle_lock));
    w->idle_next = rt->idle_list;
    rt->idle_list = w;
    atomic_fetch_add_explicit(&rt->nr_idle, 1, memory_order_seq_cst);
    WEFT_CHECK(pthread_mutex_unlock(&rt->idle_lock));
    if (w->spinning) {
        w->spinning = false;
        atomic_fetch_sub_explicit(&rt->nr_spinning, 1, memory_order_seq_cst);
    }
    /* seq_cst: pairs with the fence in weft__sched_wake_one. */
    weft__fence_sc();
    bool stop = atomic_load_explicit(&rt->stopping, memory_order_relaxed);
    if (!stop && !work_visible(rt)) {
        uint64_t next = atomic_load_explicit(&w->timers.next, memory_order_relaxed);
        uint64_t deadline = next == UINT64_MAX ? 0 : next;
        if (deadline == 0 || deadline > weft__now()) {
            weft__rcu_offline(); /* grace periods need not wait for a sleeper */
            /* acquire: pairs with the release in unpark(). */
            while (atomic_load_explicit(&w->park_word, memory_order_acquire) == 0) {
                if (!weft__futex_wait(&w->park_word, 0, deadline)) break;
            }
            weft__rcu_online();
        }
    }
    if (!idle_remove(w)) {
        /* A waker popped us and counted us as spinning (invariant 3); its
         * unpark may still be on its way, which is harmless: park_word is
         * reset before the next sleep. */
        w->spinning = true;
    }
}

static weft_task *find_work(weft__worker *w)
{
    weft_runtime *rt = w->rt;
    judge_busy_steal(w);
    for (;;) {
        weft_task *t = search(w);
        if (t) {
            stop_spinning(w);
            return t;
        }
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire)) {
            stop_spinning(w);
            return NULL;
        }
        if (!w->spinning && may_spin(w)) {
            w->spinning = true;
            atomic_fetch_add_explicit(&rt->nr_spinning, 1, memory_order_seq_cst);
        }
        if (w->spinning) {
            uint64_t now = weft__now(), until = now + rt->opt.spin_ns, quiet_at = 0;
            do {
                /* A few pause instructions between looks (one is 10-140
                 * cycles depending on the processor): short enough that a
                 * posted task is picked up within a few hundred ns. */
                for (int i = 0; i < SPIN_PAUSES; i++) weft__cpu_relax();
                w->pat_waiting = false;
                if ((t = search(w))) {
                    stop_spinning(w);
                    return t;
                }
                /* Waiting out a marked entry's patience: keep spinning (see
                 * Stealing); park() would not sleep with it visible. */
                now = weft__now();
                if (w->pat_waiting) until = now + rt->opt.spin_ns;
                /* Between tasks, so quiescent (no poller waits: local_next
                 * would have resumed it).  A spinner that waits out a busy
                 * patience spins for milliseconds, and every grace period
                 * waited with it: 4 producers and 4 consumers over 1024
                 * slots on 2 workers peaked at 28-34 MB resident, now
                 * 9-13 MB (rcu.c).  Once a STEAL_LOOK_NS, not at every
                 * look (two full fences each; grace periods come once a
                 * millisecond). */
                if (now >= quiet_at) {
                    weft__rcu_quiescent();
                    quiet_at = now + STEAL_LOOK_NS;
                }
            } while (!atomic_load_explicit(&rt->stopping, memory_order_relaxed) && now < until);
        }
        park(w);
    }
}

void weft__worker_loop(weft__worker *w)
{
    w->pat_busy_ns = STEAL_PATIENCE_BUSY_NS;
    weft__rcu_worker_start();
    weft__tls_worker = w;
    for (;;) {
        weft__after_switch(w);
        /* In the scheduler context no read section is open (rcu.c). */
        weft__rcu_quiescent();
        weft_task *t = find_work(w);
        if (!t) break;
        w->current = t;
        weft__switch(w, &w->sched_ctx, t, false);
    }
    weft__tls_worker = NULL;
    weft__rcu_worker_stop();
}
