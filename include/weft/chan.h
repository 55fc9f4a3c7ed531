/*
 * weft memory channel: MPMC, items copied by value, capacity 0
 * (rendezvous), N, or WEFT_UNBOUNDED.
 *
 * Guarantees (SEMANTICS.md section 3):
 *  - Exactly once.  Every item whose send returned 0 is, at any moment,
 *    returned by exactly one successful recv, still in the channel, or passed
 *    once to on_drop.  An item whose send did not return 0 is still the
 *    sender's.
 *  - A blocked receiver (or sender) whose cancel is pending is never handed
 *    an item (or a buffer slot): the partner skips it.  A hand-off that
 *    committed is returned even if the cancel arrives a moment later; the
 *    cancel then shows at the caller's next checkpoint.
 *  - FIFO, no barging: senders are served in the order they committed to the
 *    channel, receivers likewise; while a receiver is blocked, try_recv gets
 *    EAGAIN; a slot freed by a receive goes to the first blocked sender.
 *  - The same behaviour on plain pthreads (the thread blocks) as in tasks.
 *
 * Handles.  open gives one send handle (weft_tx) and one receive handle
 * (weft_rx); clone makes more.  Closing a handle makes every later call on it
 * return EBADF and wakes callers blocked on it with EBADF.  When the last send
 * handle is closed, receivers drain what is buffered and then get ENODATA.
 * When the last receive handle is closed, blocked senders get EPIPE and keep
 * their items, buffered items go to on_drop, and later sends get EPIPE.  A
 * handle stays valid until freed; the channel is freed with its last handle.
 * A handle may be shared by several tasks and threads, but must not be freed
 * while another call uses it.
 *
 * Memory.  Retired parts of a channel are freed after an RCU grace period
 * (liburcu's QSBR flavour).  A plain pthread is registered with liburcu-qsbr
 * on its first channel call (unregistered when it exits) and is online only
 * during each call.  A thread that registers itself with liburcu-qsbr must
 * do so before its first channel call and be online during every channel
 * call (weft then leaves its registration alone).  A task that runs for a
 * long time without a checkpoint or switch delays those frees (never a call).
 * The frees run on a thread of weft's own ("weft-reclaim", started by the
 * first one, with every signal blocked), once a millisecond while channels
 * retire memory.  A forked child that goes on using channels (rather than
 * exec'ing) should be forked while no channel is busy: a fork that lands
 * in that thread's wait for a grace period leaves liburcu's locks held in
 * the child.
 */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_UNBOUNDED SIZE_MAX

typedef struct weft_tx weft_tx;
typedef struct weft_rx weft_rx;

typedef struct weft_chan_options {
    /* Called exactly once, outside every lock, for each item that was sent
     * successfully but will never be received (the last receive handle was
     * closed, or the channel freed, with it still buffered).  NULL: none. */
    void (*on_drop)(void *item, void *ctx);
    void *on_drop_ctx;
} weft_chan_options;

struct weft_chan_stats {
    size_t used;          /* items buffered now */
    size_t capacity;      /* 0, N, or WEFT_UNBOUNDED */
    size_t peak_used;     /* most items ever buffered at once */
    size_t tx_open;       /* send handles not closed */
    size_t rx_open;       /* receive handles not closed */
    size_t tasks_sending; /* callers (tasks or pthreads) blocked in send */
    size_t tasks_receiving; /* callers blocked in recv */
};

/*
 * Opens a channel of `capacity` items of `item_size` bytes each.  opt may be
 * NULL.  Returns 0; EINVAL (NULL out-pointers, item_size 0 or above 64 KiB,
 * capacity above 2^40 and not WEFT_UNBOUNDED); ENOMEM.  Not a checkpoint;
 * any thread.
 */
WEFT_API int weft_chan_open(weft_tx **tx, weft_rx **rx, size_t capacity, size_t item_size,
                            const weft_chan_options *opt);

/*
 * Sends a copy of *item: into the buffer, or straight to the first live
 * blocked receiver, else blocks until a receiver or a buffer slot takes it.
 * Returns 0 (the item is the channel's); ECANCELED (the caller was cancelled
 * first, at entry or while blocked: the item is still the caller's); EPIPE
 * (every receive handle is closed); EBADF (tx is closed, or was closed while
 * blocked).  Checkpoint.  On a rendezvous channel a task whose send finds no
 * receiver waiting first lets the task it last made runnable on its worker
 * run (usually the receiver it would wait for), as a yield; a receiver that
 * took the send's turn already (it was doing the same) gets the item and
 * the send returns 0 at once, as SEMANTICS's "may yield, shielded" allows.
 */
WEFT_API int weft_chan_send(weft_tx *tx, const void *item);

/* Like send, but never blocks: EAGAIN when it would have to (no live
 * receiver blocked and no free buffer slot).  Not a checkpoint. */
WEFT_API int weft_chan_try_send(weft_tx *tx, const void *item);

/*
 * Receives the next item into *item: from the buffer, or straight from the
 * first live blocked sender, else blocks until one is sent.  Returns 0;
 * ECANCELED (cancelled first: nothing was taken); ENODATA (every send handle
 * is closed and nothing is left); EBADF (rx is closed, or was closed while
 * blocked).  Checkpoint.  On a rendezvous channel a task that finds no sender
 * first lets the task it last made runnable on its worker run (usually the
 * sender it would wait for), holding its turn: an item sent meanwhile is
 * its own, and it returns 0 with it even if a cancel came meanwhile (it was
 * not blocked: a completed call never reports ECANCELED); otherwise it
 * blocks as usual.
 */
WEFT_API int weft_chan_recv(weft_rx *rx, void *item);

/* Like recv, but never blocks: EAGAIN when nothing can be taken now
 * (including while another receiver is blocked).  Not a checkpoint. */
WEFT_API int weft_chan_try_recv(weft_rx *rx, void *item);

/* New handle on the same channel.  0; EBADF (the handle is closed); ENOMEM. */
WEFT_API int weft_chan_tx_clone(weft_tx *tx, weft_tx **out);
WEFT_API int weft_chan_rx_clone(weft_rx *rx, weft_rx **out);

/* Closes the handle (idempotent).  Not a checkpoint; never blocks for long. */
WEFT_API void weft_chan_tx_close(weft_tx *tx);
WEFT_API void weft_chan_rx_close(weft_rx *rx);

/* Closes the handle if open, then releases it; the channel goes with its
 * last handle (remaining buffered items go to on_drop first). */
WEFT_API void weft_chan_tx_free(weft_tx *tx);
WEFT_API void weft_chan_rx_free(weft_rx *rx);

/* Snapshot of the channel, exact when no call races it.  0; EINVAL. */
WEFT_API int weft_chan_stats(const weft_rx *rx, struct weft_chan_stats *st);
WEFT_API int weft_chan_tx_stats(const weft_tx *tx, struct weft_chan_stats *st);

#ifdef __cplusplus
}
#endif
#endif
