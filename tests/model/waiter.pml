/*
 * A model of weft's waiter protocol (src/wait.c, src/cancel.c), checked by
 * spin in the test command (tests/model/run.sh).
 *
 * Processes: NW blockers (receivers, each in its own task with its own
 * cancel scope), one completer (a sender holding one item), one canceller
 * (cancels the scope of blocker 0) and one closer (closes the queue, which
 * aborts every waiter with EBADF and refuses new ones).  The queue is a
 * FIFO guarded by a lock; everything else is the atomics of the C code,
 * with Promela's sequentially consistent steps standing for the seq_cst
 * Dekker pairs and each CAS an atomic block.
 *
 * Checked:
 *  - exactly one of commit and cancel wins per waiter (winners[i] == 1 for
 *    every waiter that parked);
 *  - a claimed waiter wakes with the item; a cancelled or closed one never
 *    holds it; the item is never lost or duplicated (with the sender xor
 *    with exactly one receiver);
 *  - once the canceller returned, no waiter under it is claimed;
 *  - no waiter stays parked forever (spin's invalid end states).
 *
 * Defining BROKEN_CAS turns the canceller's CAS into a load and a separate
 * store, BROKEN_PUBLISH links the waiter before publishing it; each must
 * make the check fail (run.sh checks that too).
 */
#ifndef NW
#define NW 2
#endif

#define WAITING 0
#define CLAIMED 1
#define DONE 2
#define ABORTED 3

#define R_NONE 0
#define R_OK 1
#define R_CANCELED 2
#define R_BADF 3

#define SLOT_NONE 255
#define SLOT_BUSY 254

byte state[NW];
bool eff[NW];
byte slot[NW];        /* the context's published waiter */
bool woken[NW];
byte result[NW];
bool got[NW];
byte winners[NW];
bool returned[NW];
bool cancel_returned;

byte q[NW];           /* FIFO of waiter ids, guarded by qlock */
byte qn;
bool qlock;
bool closed;
byte with_sender = 1; /* the item */

inline lock() { atomic { !qlock -> qlock = true } }
inline unlock() { qlock = false }

/* The one decision: CAS state[w] from WAITING to `to`. */
inline cas(w, to, ok) {
    atomic {
        if
        :: state[w] == WAITING -> state[w] = to; winners[w]++; ok = true
        :: else -> ok = false
        fi
    }
}

/* The completer's claim: it must never win after the canceller returned. */
inline cas_claim(w, ok) {
    atomic {
        if
        :: state[w] == WAITING ->
            assert(!(w == 0 && cancel_returned));
            state[w] = CLAIMED; winners[w]++; ok = true
        :: else -> ok = false
        fi
    }
}

#ifdef BROKEN_CAS
inline cas_cancel(w, to, ok) {
    if
    :: state[w] == WAITING -> state[w] = to; winners[w]++; ok = true
    :: else -> ok = false
    fi
}
#else
inline cas_cancel(w, to, ok) { cas(w, to, ok) }
#endif

inline unlink(w) {
    lock();
    byte k = 0, m = 0;
    do
    :: k < qn ->
        if
        :: q[k] != w -> q[m] = q[k]; m++
        :: else -> skip
        fi;
        k++
    :: else -> break
    od;
    qn = m;
    unlock()
}

inline retract(i) {
    atomic { slot[i] != SLOT_BUSY -> slot[i] = SLOT_NONE }
}

proctype Blocker(byte i) {
    bool ok;
#ifndef BROKEN_PUBLISH
    slot[i] = i;                       /* publish (seq_cst store) */
    if
    :: eff[i] -> retract(i); result[i] = R_CANCELED; goto out
    :: else -> skip
    fi;
#endif
    lock();
    if
    :: closed ->
        cas(i, ABORTED, ok);
        if
        :: ok -> result[i] = R_BADF; woken[i] = true
        :: else -> skip
        fi
    :: !closed && state[i] == WAITING -> q[qn] = i; qn++
    :: else -> skip                    /* aborted before linking */
    fi;
    unlock();
#ifdef BROKEN_PUBLISH
    slot[i] = i;
    if
    :: eff[i] ->
        cas(i, ABORTED, ok);
        if
        :: ok -> unlink(i); result[i] = R_CANCELED; woken[i] = true
        :: else -> skip
        fi
    :: else -> skip
    fi;
#endif
    woken[i];                          /* park */
    retract(i);
out:
    assert(result[i] != R_OK || got[i]);
    assert(result[i] == R_OK || !got[i]);
    returned[i] = true
}

proctype Completer() {
    bool ok;
    byte w = SLOT_NONE, claimed = SLOT_NONE;
    lock();
    do
    :: qn > 0 ->
        w = q[0];
        byte k = 1;
        do
        :: k < qn -> q[k - 1] = q[k]; k++
        :: else -> break
        od;
        qn--;
        if
        :: eff[w] ->                   /* reject: a pending cancel gets nothing */
            cas(w, ABORTED, ok);
            if
            :: ok -> result[w] = R_CANCELED; woken[w] = true
            :: else -> skip
            fi
        :: else ->
            cas_claim(w, ok);
            if
            :: ok -> claimed = w; break
            :: else -> skip
            fi
        fi
    :: else -> break
    od;
    unlock();
    if
    :: claimed != SLOT_NONE ->
        with_sender = 0;
        got[claimed] = true;
        result[claimed] = R_OK;
        state[claimed] = DONE;
        woken[claimed] = true
    :: else -> skip
    fi
}

proctype Canceller() {
    bool ok, mine;
    eff[0] = true;                     /* seq_cst RMW on EFF */
    do
    :: slot[0] == SLOT_NONE -> break
    :: slot[0] == SLOT_BUSY -> skip
    :: slot[0] == 0 ->
        atomic {
            if
            :: slot[0] == 0 -> slot[0] = SLOT_BUSY; mine = true
            :: else -> mine = false
            fi
        }
        if
        :: mine ->
            if
            :: eff[0] ->
                cas_cancel(0, ABORTED, ok);
                if
                :: ok -> unlink(0); result[0] = R_CANCELED; woken[0] = true
                :: else -> skip
                fi
            :: else -> skip
            fi;
            slot[0] = 0;
            break
        :: else -> skip
        fi
    od;
    cancel_returned = true
}

proctype Closer() {
    bool ok;
    lock();
    closed = true;
    do
    :: qn > 0 ->
        qn--;
        byte w = q[qn];
        cas(w, ABORTED, ok);
        if
        :: ok -> result[w] = R_BADF; woken[w] = true
        :: else -> skip
        fi
    :: else -> break
    od;
    unlock()
}

init {
    byte i;
    for (i : 0 .. NW - 1) { slot[i] = SLOT_NONE }
    atomic {
        for (i : 0 .. NW - 1) { run Blocker(i) }
        run Completer();
        run Canceller();
        run Closer()
    }
    _nr_pr == 1;
    byte held = with_sender;
    for (i : 0 .. NW - 1) {
        assert(returned[i]);
        assert(winners[i] <= 1);
        assert(result[i] == R_OK || result[i] == R_CANCELED || result[i] == R_BADF);
        if
        :: got[i] -> held++
        :: else -> skip
        fi
    }
    assert(held == 1)
}
