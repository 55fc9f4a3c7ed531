/* The memory channel (src/chan.c): every rule of SEMANTICS.md section 3,
 * inside tasks on 1, 2 and 4 workers and on plain pthreads.  Partners are
 * tasks when the test runs in a task and pthreads otherwise. */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk.h"
#include "helpers.h"
#include "internal.h"

static const unsigned chan_workers[] = {1, 2, 4};

#define BOTH(name, fn, secs)                                                                  \
    Test(chan, name##_in_tasks, .timeout = secs)                                              \
    {                                                                                         \
        for (size_t i = 0; i < 3; i++) cr_assert_eq(run_on(chan_workers[i], fn, NULL), 0);   \
    }                                                                                         \
    Test(chan, name##_on_pthread, .timeout = secs)                                            \
    {                                                                                         \
        cr_assert_eq(run_on_pthread(fn, NULL), 0);                                            \
    }

/* A partner: a task inside a task, else a pthread. */
struct partner {
    weft_task *t;
    pthread_t th;
    weft_fn fn;
    void *arg;
    int rc;
};
static void *partner_main(void *p)
{
    struct partner *pt = p;
    pt->rc = pt->fn(pt->arg);
    return NULL;
}
static void partner_start(struct partner *p, weft_fn fn, void *arg)
{
    p->fn = fn;
    p->arg = arg;
    p->rc = -1;
    if (weft_current())
        cr_assert_eq(weft_spawn(&p->t, fn, arg), 0);
    else
        cr_assert_eq(pthread_create(&p->th, NULL, partner_main, p), 0);
}
static int partner_join(struct partner *p)
{
    if (weft_current()) {
        int st = -1;
        cr_assert_eq(weft_join(p->t, &st), 0);
        return st;
    }
    pthread_join(p->th, NULL);
    return p->rc;
}

static struct weft_chan_stats stats(weft_rx *rx)
{
    struct weft_chan_stats st;
    cr_assert_eq(weft_chan_stats(rx, &st), 0);
    return st;
}

static void nap(void)
{
    if (weft_current())
        weft_sleep(200000);
    else
        usleep(200);
}

#define WAIT_STAT(rx, field, n)                                                               \
    do {                                                                                      \
        while (stats(rx).field != (size_t)(n)) nap();                                         \
    } while (0)

/* ---- open and arguments ------------------------------------------------- */

static int bad_arguments(void *arg)
{
    (void)arg;
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(NULL, &rx, 1, 8, NULL), EINVAL);
    cr_assert_eq(weft_chan_open(&tx, NULL, 1, 8, NULL), EINVAL);
    cr_assert_eq(weft_chan_open(&tx, &rx, 1, 0, NULL), EINVAL);
    cr_assert_eq(weft_chan_open(&tx, &rx, 1, 65537, NULL), EINVAL);
    cr_assert_eq(weft_chan_open(&tx, &rx, (1ull << 40) + 1, 8, NULL), EINVAL);
    cr_assert_eq(weft_chan_open(&tx, &rx, 2, 8, NULL), 0);
    cr_assert_eq(weft_chan_send(tx, NULL), EINVAL);
    cr_assert_eq(weft_chan_recv(rx, NULL), EINVAL);
    cr_assert_eq(weft_chan_send(NULL, &tx), EINVAL);
    struct weft_chan_stats st = stats(rx);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.capacity, 2);
    cr_assert_eq(st.tx_open, 1);
    cr_assert_eq(st.rx_open, 1);
    cr_assert_eq(weft_chan_stats(rx, NULL), EINVAL);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
BOTH(bad_arguments_are_einval, bad_arguments, 5)

/* ---- buffer: FIFO, full, stats ------------------------------------------ */

static int buffered_fifo(void *arg)
{
    (void)arg;
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, 4, sizeof(int), NULL), 0);
    for (int i = 0; i < 4; i++) cr_assert_eq(weft_chan_try_send(tx, &i), 0);
    int x = 99;
    cr_assert_eq(weft_chan_try_send(tx, &x), EAGAIN, "full");
    struct weft_chan_stats st = stats(rx);
    cr_assert_eq(st.used, 4);
    cr_assert_eq(st.peak_used, 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(weft_chan_try_recv(rx, &x), 0);
        cr_assert_eq(x, i);
    }
    cr_assert_eq(weft_chan_try_recv(rx, &x), EAGAIN);
    /* many rounds through the same channel: segments are recycled */
    for (int i = 0; i < 5000; i++) {
        cr_assert_eq(weft_chan_send(tx, &i), 0);
        cr_assert_eq(weft_chan_recv(rx, &x), 0);
        cr_assert_eq(x, i);
    }
    st = stats(rx);
    cr_assert_eq(st.used, 0);
    cr_assert_eq(st.peak_used, 4);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
BOTH(buffered_items_come_out_fifo, buffered_fifo, 5)

/* The peak over sends through several handles, one of them freed since:
 * each send handle keeps the peak its sends saw, a freed one hands it to
 * the channel (chan.c, Stats). */
static int peak_over_handles(void *arg)
{
    size_t cap = *(size_t *)arg;
    weft_tx *tx, *a, *b;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, cap, sizeof(int), NULL), 0);
    cr_assert_eq(weft_chan_tx_clone(tx, &a), 0);
    cr_assert_eq(weft_chan_tx_clone(tx, &b), 0);
    int x = 0;
    for (int i = 0; i < 4; i++) cr_assert_eq(weft_chan_send(a, &i), 0);
    for (int i = 0; i < 4; i++) cr_assert_eq(weft_chan_recv(rx, &x), 0);
    for (int i = 0; i < 2; i++) cr_assert_eq(weft_chan_send(b, &i), 0);
    struct weft_chan_stats st = stats(rx);
    cr_assert_eq(st.used, 2);
    cr_assert_eq(st.peak_used, 4, "the peak a's sends saw");
    weft_chan_tx_free(a);
    cr_assert_eq(stats(rx).peak_used, 4, "a's peak outlives a");
    for (int i = 0; i < 3; i++) cr_assert_eq(weft_chan_send(b, &i), 0);
    cr_assert_eq(stats(rx).peak_used, 5, "b's sends saw 5");
    weft_chan_tx_free(b);
    cr_assert_eq(weft_chan_send(tx, &x), 0);
    st = stats(rx);
    cr_assert_eq(st.used, 6);
    cr_assert_eq(st.peak_used, 6);
    for (int i = 0; i < 6; i++) cr_assert_eq(weft_chan_recv(rx, &x), 0);
    weft_chan_tx_free(tx);
    cr_assert_eq(stats(rx).peak_used, 6);
    weft_chan_rx_free(rx);
    return 0;
}
static int peak_over_handles_both(void *arg)
{
    (void)arg;
    size_t caps[] = {16, WEFT_UNBOUNDED};
    for (int k = 0; k < 2; k++) cr_assert_eq(peak_over_handles(&caps[k]), 0);
    return 0;
}
BOTH(the_peak_counts_every_send_handle_open_or_freed, peak_over_handles_both, 5)

static int unbounded(void *arg)
{
    (void)arg;
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, WEFT_UNBOUNDED, sizeof(long), NULL), 0);
    for (long i = 0; i < 20000; i++) cr_assert_eq(weft_chan_try_send(tx, &i), 0);
    cr_assert_eq(stats(rx).used, 20000);
    for (long i = 0; i < 20000; i++) {
        long x;
        cr_assert_eq(weft_chan_recv(rx, &x), 0);
        cr_assert_eq(x, i);
    }
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
BOTH(unbounded_never_blocks_a_sender, unbounded, 10)

/* ---- rendezvous ---------------------------------------------------------- */

struct ctx {
    weft_tx *tx;
    weft_rx *rx;
    weft_token *tok;
    int val;
    int got;
};

static int receiver(void *arg)
{
    struct ctx *c = arg;
    weft_scope s;
    weft_scope_enter(&s);
    if (c->tok) weft_scope_bind(&s, c->tok);
    c->got = -1;
    int rc = weft_chan_recv(c->rx, &c->got);
    weft_scope_exit(&s, rc == ECANCELED ? 0 : rc);
    return rc;
}

static int sender(void *arg)
{
    struct ctx *c = arg;
    weft_scope s;
    weft_scope_enter(&s);
    if (c->tok) weft_scope_bind(&s, c->tok);
    int rc = weft_chan_send(c->tx, &c->val);
    weft_scope_exit(&s, rc == ECANCELED ? 0 : rc);
    return rc;
}

static int rendezvous(void *arg)
{
    (void)arg;
    struct ctx c = {0};
    cr_assert_eq(weft_chan_open(&c.tx, &c.rx, 0, sizeof(int), NULL), 0);
    int x = 5;
    cr_assert_eq(weft_chan_try_send(c.tx, &x), EAGAIN, "no receiver: a rendezvous cannot complete");
    cr_assert_eq(weft_chan_try_recv(c.rx, &x), EAGAIN);
    struct partner p;
    partner_start(&p, receiver, &c);
    WAIT_STAT(c.rx, tasks_receiving, 1);
    x = 7;
    cr_assert_eq(weft_chan_try_send(c.tx, &x), 0, "a blocked receiver takes it");
    cr_assert_eq(partner_join(&p), 0);
    cr_assert_eq(c.got, 7);
    /* blocked sender, then a receive completes it */
    c.val = 8;
    partner_start(&p, sender, &c);
    WAIT_STAT(c.rx, tasks_sending, 1);
    cr_assert_eq(weft_chan_try_recv(c.rx, &x), 0);
    cr_assert_eq(x, 8);
    cr_assert_eq(partner_join(&p), 0);
    cr_assert_eq(stats(c.rx).used, 0, "a rendezvous never buffers");
    weft_chan_tx_free(c.tx);
    weft_chan_rx_free(c.rx);
    return 0;
}
BOTH(rendezvous_completes_only_with_a_partner, rendezvous, 10)

/* ---- the motivating failure ----------------------------------------------- */

static void cancelled_receiver_then_try_send(size_t cap)
{
    struct ctx c = {0};
    cr_assert_eq(weft_chan_open(&c.tx, &c.rx, cap, sizeof(int), NULL), 0);
    cr_assert_eq(weft_token_create(&c.tok, NULL), 0);
    struct partner p;
    partner_start(&p, receiver, &c);
    WAIT_STAT(c.rx, tasks_receiving, 1);
    weft_token_cancel(c.tok);
    cr_assert_eq(partner_join(&p), ECANCELED);
    cr_assert_eq(c.got, -1, "the cancelled receiver got nothing");
    struct weft_chan_stats st = stats(c.rx);
    cr_assert_eq(st.tasks_receiving, 0);
    int x = 42;
    int rc = weft_chan_try_send(c.tx, &x);
    if (cap == 0) {
        cr_assert_eq(rc, EAGAIN, "no live receiver: the item stays with the sender");
        cr_assert_eq(stats(c.rx).used, 0);
        c.tok = NULL;
        c.val = 43;
        partner_start(&p, sender, &c);
        cr_assert_eq(weft_chan_recv(c.rx, &x), 0);
        cr_assert_eq(x, 43);
        cr_assert_eq(partner_join(&p), 0);
    } else {
        cr_assert_eq(rc, 0);
        cr_assert_eq(stats(c.rx).used, 1, "the item is buffered, not handed to the cancelled");
        x = 0;
        cr_assert_eq(weft_chan_recv(c.rx, &x), 0);
        cr_assert_eq(x, 42, "a later recv gets it");
    }
    if (c.tok) weft_token_unref(c.tok);
    weft_chan_tx_free(c.tx);
    weft_chan_rx_free(c.rx);
}

static int motivating(void *arg)
{
    (void)arg;
    cancelled_receiver_then_try_send(0);
    cancelled_receiver_then_try_send(1);
    cancelled_receiver_then_try_send(16);
    cancelled_receiver_then_try_send(WEFT_UNBOUNDED);
    return 0;
}
BOTH(cancelled_receiver_is_never_handed_an_item, motivating, 10)

static int cancel_after_handoff(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1, WEFT_UNBOUNDED};
    for (int k = 0; k < 3; k++) {
        struct ctx c = {0};
        cr_assert_eq(weft_chan_open(&c.tx, &c.rx, caps[k], sizeof(int), NULL), 0);
        cr_assert_eq(weft_token_create(&c.tok, NULL), 0);
        struct partner p;
        partner_start(&p, receiver, &c);
        WAIT_STAT(c.rx, tasks_receiving, 1);
        int x = 77;
        cr_assert_eq(weft_chan_send(c.tx, &x), 0);
        weft_token_cancel(c.tok); /* just after the hand-off committed */
        cr_assert_eq(partner_join(&p), 0, "a committed hand-off is returned");
        cr_assert_eq(c.got, 77);
        cr_assert_eq(stats(c.rx).used, 0);
        weft_token_unref(c.tok);
        weft_chan_tx_free(c.tx);
        weft_chan_rx_free(c.rx);
    }
    return 0;
}
BOTH(cancel_just_after_handoff_returns_the_item, cancel_after_handoff, 10)

static int cancelled_sender_keeps_item(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1};
    for (int k = 0; k < 2; k++) {
        struct ctx c = {0};
        cr_assert_eq(weft_chan_open(&c.tx, &c.rx, caps[k], sizeof(int), NULL), 0);
        int x = 1;
        if (caps[k]) cr_assert_eq(weft_chan_send(c.tx, &x), 0); /* fill it */
        cr_assert_eq(weft_token_create(&c.tok, NULL), 0);
        c.val = 2;
        struct partner p;
        partner_start(&p, sender, &c);
        WAIT_STAT(c.rx, tasks_sending, 1);
        weft_token_cancel(c.tok);
        cr_assert_eq(partner_join(&p), ECANCELED);
        struct weft_chan_stats st = stats(c.rx);
        cr_assert_eq(st.tasks_sending, 0);
        cr_assert_eq(st.used, caps[k]);
        if (caps[k]) {
            cr_assert_eq(weft_chan_try_recv(c.rx, &x), 0);
            cr_assert_eq(x, 1);
        }
        cr_assert_eq(weft_chan_try_recv(c.rx, &x), EAGAIN, "the cancelled send left nothing");
        /* the freed slot is usable again (capacity not lost) */
        for (size_t i = 0; i < caps[k]; i++) cr_assert_eq(weft_chan_try_send(c.tx, &x), 0);
        weft_token_unref(c.tok);
        weft_chan_tx_free(c.tx);
        weft_chan_rx_free(c.rx);
    }
    return 0;
}
BOTH(cancelled_sender_keeps_its_item, cancelled_sender_keeps_item, 10)

static int deadline_recv(void *arg)
{
    (void)arg;
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, 1, sizeof(int), NULL), 0);
    weft_scope s;
    weft_scope_enter_deadline(&s, weft_now() + 2000000);
    int x = -1;
    int rc = weft_chan_recv(rx, &x);
    cr_assert_eq(rc, ECANCELED);
    cr_assert_eq(weft_scope_exit(&s, rc), 0);
    cr_assert(weft_scope_cancelled_caught(&s));
    cr_assert_eq(stats(rx).tasks_receiving, 0);
    x = 3;
    cr_assert_eq(weft_chan_try_send(tx, &x), 0);
    cr_assert_eq(weft_chan_recv(rx, &x), 0);
    cr_assert_eq(x, 3);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
BOTH(deadline_ends_a_recv_without_losing_later_items, deadline_recv, 10)

/* ---- FIFO and no barging -------------------------------------------------- */

static int senders_fifo(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1};
    for (int k = 0; k < 2; k++) {
        struct ctx c[4] = {{0}};
        weft_tx *tx;
        weft_rx *rx;
        cr_assert_eq(weft_chan_open(&tx, &rx, caps[k], sizeof(int), NULL), 0);
        int x = 100;
        if (caps[k]) cr_assert_eq(weft_chan_send(tx, &x), 0);
        struct partner p[4];
        for (int i = 0; i < 4; i++) {
            c[i].tx = tx;
            c[i].val = i;
            if (i == 2) cr_assert_eq(weft_token_create(&c[i].tok, NULL), 0);
            partner_start(&p[i], sender, &c[i]);
            WAIT_STAT(rx, tasks_sending, i + 1);
        }
        weft_token_cancel(c[2].tok);
        cr_assert_eq(partner_join(&p[2]), ECANCELED);
        cr_assert_eq(weft_chan_try_send(tx, &x), EAGAIN, "no barging past blocked senders");
        if (caps[k]) {
            cr_assert_eq(weft_chan_recv(rx, &x), 0);
            cr_assert_eq(x, 100);
        }
        int want[] = {0, 1, 3};
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(weft_chan_recv(rx, &x), 0);
            cr_assert_eq(x, want[i], "senders served in order, the cancelled one skipped");
        }
        for (int i = 0; i < 4; i++)
            if (i != 2) cr_assert_eq(partner_join(&p[i]), 0);
        cr_assert_eq(weft_chan_try_recv(rx, &x), EAGAIN);
        weft_token_unref(c[2].tok);
        weft_chan_tx_free(tx);
        weft_chan_rx_free(rx);
    }
    return 0;
}
BOTH(blocked_senders_are_served_fifo, senders_fifo, 10)

static int receivers_fifo(void *arg)
{
    (void)arg;
    struct ctx c[3] = {{0}};
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, 4, sizeof(int), NULL), 0);
    struct partner p[3];
    for (int i = 0; i < 3; i++) {
        c[i].rx = rx;
        partner_start(&p[i], receiver, &c[i]);
        WAIT_STAT(rx, tasks_receiving, i + 1);
    }
    int x;
    cr_assert_eq(weft_chan_try_recv(rx, &x), EAGAIN, "receivers are blocked: no barging");
    for (int i = 0; i < 3; i++) {
        x = 10 + i;
        cr_assert_eq(weft_chan_send(tx, &x), 0);
    }
    cr_assert_eq(weft_chan_try_recv(rx, &x), EAGAIN, "the items went to the blocked receivers");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(partner_join(&p[i]), 0);
        cr_assert_eq(c[i].got, 10 + i, "receivers served in order");
    }
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
BOTH(blocked_receivers_are_served_fifo, receivers_fifo, 10)

/* ---- close ----------------------------------------------------------------- */

static int close_tx(void *arg)
{
    (void)arg;
    struct ctx c = {0};
    cr_assert_eq(weft_chan_open(&c.tx, &c.rx, 4, sizeof(int), NULL), 0);
    weft_tx *tx2;
    cr_assert_eq(weft_chan_tx_clone(c.tx, &tx2), 0);
    int x = 1;
    cr_assert_eq(weft_chan_send(c.tx, &x), 0);
    weft_chan_tx_close(c.tx);
    weft_chan_tx_close(c.tx); /* idempotent */
    cr_assert_eq(weft_chan_send(c.tx, &x), EBADF);
    cr_assert_eq(weft_chan_tx_clone(c.tx, &tx2), EBADF);
    x = 2;
    cr_assert_eq(weft_chan_send(tx2, &x), 0, "the clone is still open");
    cr_assert_eq(stats(c.rx).tx_open, 1);
    cr_assert_eq(weft_chan_recv(c.rx, &x), 0);
    cr_assert_eq(x, 1);
    cr_assert_eq(weft_chan_recv(c.rx, &x), 0);
    cr_assert_eq(x, 2);
    struct partner p;
    partner_start(&p, receiver, &c);
    WAIT_STAT(c.rx, tasks_receiving, 1);
    x = 3;
    cr_assert_eq(weft_chan_send(tx2, &x), 0);
    cr_assert_eq(partner_join(&p), 0);
    cr_assert_eq(c.got, 3);
    x = 4;
    cr_assert_eq(weft_chan_send(tx2, &x), 0);
    partner_start(&p, receiver, &c); /* gets 4 */
    cr_assert_eq(partner_join(&p), 0);
    cr_assert_eq(c.got, 4);
    partner_start(&p, receiver, &c);
    WAIT_STAT(c.rx, tasks_receiving, 1);
    weft_chan_tx_free(tx2); /* the last send handle */
    cr_assert_eq(partner_join(&p), ENODATA, "blocked receiver sees the end");
    cr_assert_eq(weft_chan_recv(c.rx, &x), ENODATA);
    cr_assert_eq(weft_chan_try_recv(c.rx, &x), ENODATA);
    cr_assert_eq(stats(c.rx).tx_open, 0);
    weft_chan_tx_free(c.tx);
    weft_chan_rx_free(c.rx);
    return 0;
}
BOTH(closing_the_last_sender_drains_then_enodata, close_tx, 10)

static int drops;
static int drop_sum;
static void on_drop(void *item, void *ctx)
{
    cr_assert_eq(ctx, &drops);
    drops++;
    drop_sum += *(int *)item;
}

static int close_rx(void *arg)
{
    (void)arg;
    drops = drop_sum = 0;
    weft_chan_options o = {on_drop, &drops};
    struct ctx c = {0};
    cr_assert_eq(weft_chan_open(&c.tx, &c.rx, 2, sizeof(int), &o), 0);
    int x = 10;
    cr_assert_eq(weft_chan_send(c.tx, &x), 0);
    x = 20;
    cr_assert_eq(weft_chan_send(c.tx, &x), 0);
    c.val = 30;
    struct partner p;
    partner_start(&p, sender, &c);
    WAIT_STAT(c.rx, tasks_sending, 1);
    weft_rx *rx2;
    cr_assert_eq(weft_chan_rx_clone(c.rx, &rx2), 0);
    weft_chan_rx_close(rx2);
    cr_assert_eq(drops, 0, "another receive handle is open");
    cr_assert_eq(weft_chan_recv(rx2, &x), EBADF);
    weft_chan_rx_close(c.rx);
    cr_assert_eq(partner_join(&p), EPIPE, "the blocked sender keeps its item");
    cr_assert_eq(drops, 2, "buffered items are dropped exactly once");
    cr_assert_eq(drop_sum, 30);
    cr_assert_eq(weft_chan_send(c.tx, &x), EPIPE);
    cr_assert_eq(weft_chan_try_send(c.tx, &x), EPIPE);
    cr_assert_eq(stats(c.rx).used, 0);
    weft_chan_rx_free(rx2);
    weft_chan_rx_free(c.rx);
    weft_chan_tx_free(c.tx);
    cr_assert_eq(drops, 2);
    return 0;
}
BOTH(closing_the_last_receiver_drops_and_epipes, close_rx, 10)

static int close_handle_with_blocked(void *arg)
{
    (void)arg;
    struct ctx c = {0}, d = {0};
    cr_assert_eq(weft_chan_open(&c.tx, &c.rx, 0, sizeof(int), NULL), 0);
    cr_assert_eq(weft_chan_rx_clone(c.rx, &d.rx), 0);
    struct partner p;
    partner_start(&p, receiver, &d);
    WAIT_STAT(c.rx, tasks_receiving, 1);
    weft_chan_rx_close(d.rx);
    cr_assert_eq(partner_join(&p), EBADF, "blocked on the closed handle");
    cr_assert_eq(stats(c.rx).tasks_receiving, 0);
    /* the channel works on through the other handle */
    d.tx = c.tx;
    d.val = 9;
    partner_start(&p, sender, &d);
    int x;
    cr_assert_eq(weft_chan_recv(c.rx, &x), 0);
    cr_assert_eq(x, 9);
    cr_assert_eq(partner_join(&p), 0);
    /* a blocked sender on a closed send handle */
    weft_tx *tx2;
    cr_assert_eq(weft_chan_tx_clone(c.tx, &tx2), 0);
    d.tx = tx2;
    partner_start(&p, sender, &d);
    WAIT_STAT(c.rx, tasks_sending, 1);
    weft_chan_tx_close(tx2);
    cr_assert_eq(partner_join(&p), EBADF);
    cr_assert_eq(weft_chan_try_recv(c.rx, &x), EAGAIN, "its item stayed with it");
    weft_chan_tx_free(tx2);
    weft_chan_rx_free(d.rx);
    weft_chan_tx_free(c.tx);
    weft_chan_rx_free(c.rx);
    return 0;
}
BOTH(closing_a_handle_wakes_its_blocked_callers_with_ebadf, close_handle_with_blocked, 10)

static int drop_at_free(void *arg)
{
    (void)arg;
    drops = drop_sum = 0;
    weft_chan_options o = {on_drop, &drops};
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, WEFT_UNBOUNDED, sizeof(int), &o), 0);
    for (int i = 1; i <= 100; i++) cr_assert_eq(weft_chan_send(tx, &i), 0);
    int x;
    cr_assert_eq(weft_chan_recv(rx, &x), 0);
    weft_chan_tx_free(tx);
    cr_assert_eq(drops, 0);
    weft_chan_rx_free(rx);
    cr_assert_eq(drops, 99);
    cr_assert_eq(drop_sum, 5050 - 1);
    return 0;
}
BOTH(on_drop_runs_once_per_unreceived_item, drop_at_free, 10)

/* on_drop may block (here: it forwards each dropped item through a
 * rendezvous channel to a partner), because it runs outside the channel's
 * read section; a task blocked in it may resume on another worker. */
struct fwd {
    weft_tx *tx;
    weft_rx *rx;
    int got[8];
    int n;
};
static void forward_drop(void *item, void *ctx)
{
    struct fwd *f = ctx;
    cr_assert_eq(weft_chan_send(f->tx, item), 0);
}
static int forward_receiver(void *arg)
{
    struct fwd *f = arg;
    int x;
    while (weft_chan_recv(f->rx, &x) == 0) f->got[f->n++] = x;
    return 0;
}
static int blocking_on_drop(void *arg)
{
    (void)arg;
    struct fwd f = {0};
    cr_assert_eq(weft_chan_open(&f.tx, &f.rx, 0, sizeof(int), NULL), 0);
    weft_chan_options o = {forward_drop, &f};
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, 4, sizeof(int), &o), 0);
    for (int i = 1; i <= 4; i++) cr_assert_eq(weft_chan_send(tx, &i), 0);
    struct partner p;
    partner_start(&p, forward_receiver, &f);
    weft_chan_rx_free(rx); /* each on_drop waits for the partner */
    weft_chan_tx_free(f.tx);
    cr_assert_eq(partner_join(&p), 0);
    cr_assert_eq(f.n, 4, "every dropped item was forwarded once");
    for (int i = 0; i < 4; i++) cr_assert_eq(f.got[i], i + 1);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(f.rx);
    return 0;
}
BOTH(on_drop_may_block, blocking_on_drop, 10)

/* ---- memory: retired segments are freed after a grace period ------------------ */

#define STREAM_ITEMS 100000
static int stream_sender(void *arg)
{
    weft_tx *tx = arg;
    for (int i = 0; i < STREAM_ITEMS; i++) cr_assert_eq(weft_chan_send(tx, &i), 0);
    return 0;
}
static int segments_reclaimed(void *arg)
{
    (void)arg;
    size_t before = weft__chan_segments_live();
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, WEFT_UNBOUNDED, sizeof(int), NULL), 0);
    struct partner p;
    partner_start(&p, stream_sender, tx);
    for (int i = 0; i < STREAM_ITEMS; i++) {
        int x;
        cr_assert_eq(weft_chan_recv(rx, &x), 0);
        cr_assert_eq(x, i);
    }
    cr_assert_eq(partner_join(&p), 0);
    /* Thousands of segments went by; only the last few may stay while the
     * channel is open.  A grace period that never ends times the test out. */
    while (weft__chan_segments_live() > before + 4) nap();
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
BOTH(retired_segments_are_freed, segments_reclaimed, 30)

/* A worker out of work that spins reports quiescent states as it looks:
 * grace periods, and so reclamation, do not wait until it parks.  Here a
 * plain pthread streams while the pool idles: one worker spins (for a
 * minute, unless work comes), the other parks, as one spinner is the limit,
 * and wakes at the root's naps. */
static _Atomic bool stream_done;
static void *stream_on_thread(void *arg)
{
    (void)arg;
    segments_reclaimed(NULL);
    atomic_store(&stream_done, true);
    return NULL;
}
static int stream_beside_the_pool(void *arg)
{
    (void)arg;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stream_on_thread, NULL), 0);
    while (!atomic_load(&stream_done)) weft_sleep(1000000);
    cr_assert_eq(pthread_join(th, NULL), 0);
    return 0;
}
Test(chan, a_spinning_worker_does_not_hold_up_reclamation, .timeout = 20)
{
    weft_options o;
    weft_options_init(&o);
    o.workers = 2;
    o.spin_ns = 60ull * 1000000000u;
    int status = -1;
    cr_assert_eq(weft_run(&o, stream_beside_the_pool, NULL, &status), 0);
    cr_assert_eq(status, 0);
}

static void *raw_stream_sender(void *arg)
{
    for (int i = 0; i < STREAM_ITEMS; i++)
        if (weft_chan_send(arg, &i) != 0) return arg;
    return NULL;
}

/* segments_reclaimed for a fork's child: no Criterion there; 0 if every
 * retired segment was freed within 10 s. */
static int child_stream(void)
{
    size_t before = weft__chan_segments_live();
    weft_tx *tx;
    weft_rx *rx;
    pthread_t th;
    if (weft_chan_open(&tx, &rx, WEFT_UNBOUNDED, sizeof(int), NULL) != 0 ||
        pthread_create(&th, NULL, raw_stream_sender, tx) != 0)
        return 1;
    for (int i = 0; i < STREAM_ITEMS; i++) {
        int x;
        if (weft_chan_recv(rx, &x) != 0 || x != i) return 2;
    }
    void *failed;
    if (pthread_join(th, &failed) != 0 || failed) return 3;
    for (int ms = 0; weft__chan_segments_live() > before + 4; ms++) {
        if (ms == 10000) return 4;
        usleep(1000);
    }
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}

/* The parent's stream starts its reclaimer thread, which the child of a
 * fork does not have: the child's own retirements must start another. */
Test(chan, a_forked_child_frees_its_retired_segments_too, .timeout = 30)
{
    cr_assert_eq(run_on_pthread(segments_reclaimed, NULL), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) _exit(child_stream());
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status), "the child ended by signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "the child failed at step %d", WEXITSTATUS(status));
}

/* A task that forks while the reclaimer waits out a grace period for the
 * task's own worker: nothing at fork may wait for that grace period (the
 * worker reports no quiescent state until the task switches).  The task
 * streams, so segments are retired, then runs 5 ms without switching, so
 * the reclaimer is waiting for it, then forks. */
static int fork_while_a_grace_period_waits(void *arg)
{
    (void)arg;
    weft_tx *tx;
    weft_rx *rx;
    cr_assert_eq(weft_chan_open(&tx, &rx, WEFT_UNBOUNDED, sizeof(int), NULL), 0);
    for (int i = 0; i < 4096; i++) cr_assert_eq(weft_chan_send(tx, &i), 0);
    for (int i = 0; i < 4096; i++) {
        int x;
        cr_assert_eq(weft_chan_recv(rx, &x), 0);
    }
    uint64_t until = weft_now() + 5000000;
    while (weft_now() < until) {
    }
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) _exit(0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    return 0;
}
Test(chan, a_task_may_fork_while_a_grace_period_waits_for_its_worker, .timeout = 20)
{
    cr_assert_eq(run_on(1, fork_while_a_grace_period_waits, NULL), 0);
}

/* ---- block caches: what one thread frees another reuses (blk.c) ----------- */

#define DEPOT_SIZE 1984 /* a size no channel here uses */
#define DEPOT_N 64
static void *depot_blocks[DEPOT_N];

static void *depot_free_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < DEPOT_N; i++) weft__blk_free(depot_blocks[i], DEPOT_SIZE);
    return NULL;
}

static void *depot_take_16(void *arg)
{
    void **got = arg;
    for (int i = 0; i < 16; i++) got[i] = weft__blk_alloc(DEPOT_SIZE);
    return NULL;
}

Test(chan, blocks_freed_on_one_thread_are_reused_on_another, .timeout = 10)
{
#ifdef WEFT_ASAN
    cr_skip_test("the block caches are off under AddressSanitizer");
#endif
    for (int i = 0; i < DEPOT_N; i++) cr_assert_not_null(depot_blocks[i] = weft__blk_alloc(DEPOT_SIZE));
    size_t before = weft__blk_depot_blocks(DEPOT_SIZE);
    pthread_t th;
    /* A thread keeps at most 16 in its own cache: the rest reach the depot. */
    cr_assert_eq(pthread_create(&th, NULL, depot_free_all, NULL), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    size_t given = weft__blk_depot_blocks(DEPOT_SIZE) - before;
    cr_assert_geq(given, DEPOT_N - 16);
    void *got[16];
    cr_assert_eq(pthread_create(&th, NULL, depot_take_16, got), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(weft__blk_depot_blocks(DEPOT_SIZE), before + given - 16,
                 "a thread with an empty cache takes whole batches from the depot");
    for (int i = 0; i < 16; i++) {
        bool known = false;
        for (int j = 0; j < DEPOT_N; j++) known |= got[i] == depot_blocks[j];
        cr_assert(known, "block %d came from the depot, not from malloc", i);
        weft__blk_free(got[i], DEPOT_SIZE);
    }
}

/* Header line plus cells: 32 of 16 bytes, 256 of 16 (8-byte items, large
 * capacity), 256 of 32, and the largest, 16 KiB of cells. */
static const size_t seg_sizes[] = {64 + 32 * 16, 64 + 256 * 16, 64 + 256 * 32, 64 + 16384};

static void *segment_blocks_cycle(void *arg)
{
    size_t *given = arg;
    for (int i = 0; i < 4; i++) {
        size_t before = weft__blk_depot_blocks(seg_sizes[i]);
        void *b[2 * 16];
        for (int k = 0; k < 32; k++) cr_assert_not_null(b[k] = weft__blk_alloc(seg_sizes[i]));
        for (int k = 0; k < 32; k++) weft__blk_free(b[k], seg_sizes[i]);
        given[i] = weft__blk_depot_blocks(seg_sizes[i]) - before;
    }
    return NULL;
}

Test(chan, freed_blocks_of_every_segment_size_are_cached, .timeout = 10)
{
#ifdef WEFT_ASAN
    cr_skip_test("the block caches are off under AddressSanitizer");
#endif
    size_t given[4];
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, segment_blocks_cycle, given), 0);
    cr_assert_eq(pthread_join(th, NULL), 0);
    /* 32 freed: 16 stay in the thread's cache, the rest reach the depot
     * (a size the caches refused would have gone to free()). */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(given[i], 16, "%zu-byte blocks: %zu reached the depot", seg_sizes[i], given[i]);
}

/* ---- many producers and consumers: exactly once ------------------------------ */

#define MP_ITEMS 20000
struct mp {
    weft_tx *tx;
    weft_rx *rx;
    int base;
    _Atomic unsigned char *seen;
    _Atomic long *got;
};

static int mp_producer(void *arg)
{
    struct mp *m = arg;
    for (int i = 0; i < MP_ITEMS / 4; i++) {
        int v = m->base + i;
        cr_assert_eq(weft_chan_send(m->tx, &v), 0);
    }
    return 0;
}

static int mp_consumer(void *arg)
{
    struct mp *m = arg;
    int v;
    int rc;
    int last[4] = {-1, -1, -1, -1};
    while ((rc = weft_chan_recv(m->rx, &v)) == 0) {
        cr_assert(v >= 0 && v < MP_ITEMS);
        cr_assert_eq(atomic_fetch_add(&m->seen[v], 1), 0, "item %d received twice", v);
        int prod = v / (MP_ITEMS / 4);
        cr_assert_gt(v, last[prod], "one producer's items arrive in order");
        last[prod] = v;
        atomic_fetch_add(m->got, 1);
    }
    cr_assert_eq(rc, ENODATA);
    return 0;
}

static int mpmc(void *arg)
{
    (void)arg;
    size_t caps[] = {0, 1, 16, WEFT_UNBOUNDED};
    for (int k = 0; k < 4; k++) {
        weft_tx *tx;
        weft_rx *rx;
        cr_assert_eq(weft_chan_open(&tx, &rx, caps[k], sizeof(int), NULL), 0);
        static _Atomic unsigned char seen[MP_ITEMS];
        for (int i = 0; i < MP_ITEMS; i++) atomic_store(&seen[i], 0);
        _Atomic long got = 0;
        struct mp m[8];
        struct partner p[8];
        for (int i = 0; i < 8; i++) {
            m[i] = (struct mp){tx, rx, (i % 4) * (MP_ITEMS / 4), seen, &got};
            if (i < 4) cr_assert_eq(weft_chan_tx_clone(tx, &m[i].tx), 0);
            partner_start(&p[i], i < 4 ? mp_producer : mp_consumer, &m[i]);
        }
        weft_chan_tx_close(tx);
        for (int i = 0; i < 4; i++) {
            cr_assert_eq(partner_join(&p[i]), 0);
            weft_chan_tx_free(m[i].tx);
        }
        for (int i = 4; i < 8; i++) cr_assert_eq(partner_join(&p[i]), 0);
        cr_assert_eq(atomic_load(&got), MP_ITEMS);
        cr_assert_eq(stats(rx).used, 0);
        weft_chan_tx_free(tx);
        weft_chan_rx_free(rx);
    }
    return 0;
}
BOTH(mpmc_delivers_every_item_exactly_once, mpmc, 60)

/* ---- polling (chan.c, Polling; tasks only, on 1 worker: the order is the
 * scheduler's) -------------------------------------------------------------- */

struct poll_ctx {
    weft_tx *go_tx, *c_tx, *w1_tx, *w2_tx;
    weft_rx *go_rx, *c_rx, *w1_rx, *w2_rx;
    weft_scope *victim;      /* the poller's scope, cancelled by the partner */
    bool send;               /* the partner sends on c */
    size_t seen_receiving;   /* tasks_receiving on c while the poller waits */
    int try_rc;              /* the partner's try_send on c */
    weft_task *x;            /* the partner, for the joiner */
    int join_rc, join_status;
};

/* The partner: woken by the poller's send on go, runs while the poller
 * waits in its receive on c. */
static int poll_partner(void *arg)
{
    struct poll_ctx *c = arg;
    int v;
    cr_assert_eq(weft_chan_recv(c->go_rx, &v), 0);
    c->seen_receiving = stats(c->c_rx).tasks_receiving;
    if (c->victim) weft_scope_cancel(c->victim);
    if (c->w1_tx) {
        int a = 11, b = 12;
        cr_assert_eq(weft_chan_try_send(c->w1_tx, &a), 0, "a blocked receiver takes it");
        cr_assert_eq(weft_chan_try_send(c->w2_tx, &b), 0);
    }
    int x = 99;
    c->try_rc = c->send ? weft_chan_try_send(c->c_tx, &x) : 0;
    return 7;
}

struct wake_target {
    weft_rx *rx;
    int got;
};

static int poll_wake_target(void *arg)
{
    struct wake_target *w = arg;
    w->got = -1;
    return weft_chan_recv(w->rx, &w->got);
}

static int poll_joiner(void *arg)
{
    struct poll_ctx *c = arg;
    c->join_rc = weft_join(c->x, &c->join_status);
    return 0;
}

static void poll_open(weft_tx **tx, weft_rx **rx)
{
    cr_assert_eq(weft_chan_open(tx, rx, 0, sizeof(int), NULL), 0);
}

/* Frees every channel of c that was opened. */
static void poll_free(struct poll_ctx *c)
{
    weft_tx *tx[] = {c->go_tx, c->c_tx, c->w1_tx, c->w2_tx};
    weft_rx *rx[] = {c->go_rx, c->c_rx, c->w1_rx, c->w2_rx};
    for (int i = 0; i < 4; i++) {
        if (tx[i]) weft_chan_tx_free(tx[i]);
        if (rx[i]) weft_chan_rx_free(rx[i]);
    }
}

/* The poller (this task) hands go to the partner, then receives on c. */
static int poll_receive(struct poll_ctx *c, int *got)
{
    int one = 1;
    cr_assert_eq(weft_chan_send(c->go_tx, &one), 0);
    *got = -1;
    return weft_chan_recv(c->c_rx, got);
}

/* A poll is refused when the worker's fairness tick is due (worker.c,
 * Polling), and the tick's phase depends on how many times the worker
 * looked for work before the test began: each polling test runs its
 * scenario again (at most 3 times; one scenario makes far fewer than 61
 * decisions) until the poll happened, and checks the outcome of a refused
 * poll, a plain block, on the way. */
#define POLL_TRIES 3

/* Runs once(arg) until it reports that the poll happened, at most
 * POLL_TRIES times; whether it did. */
static bool until_polled(bool (*once)(bool), bool arg)
{
    for (int i = 0; i < POLL_TRIES; i++)
        if (once(arg)) return true;
    return false;
}

/* Returns whether the receiver polled. */
static bool polling_receiver_once(bool unused)
{
    (void)unused;
    struct poll_ctx c = {0};
    poll_open(&c.go_tx, &c.go_rx);
    poll_open(&c.c_tx, &c.c_rx);
    c.send = true;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, poll_partner, &c), 0);
    weft_yield(); /* the partner blocks in its receive on go */
    int got;
    cr_assert_eq(poll_receive(&c, &got), 0);
    cr_assert_eq(c.try_rc, 0, "its turn was taken (or it was blocked): the item is its own");
    cr_assert_eq(got, 99);
    int st = -1;
    cr_assert_eq(weft_join(t, &st), 0);
    cr_assert_eq(st, 7);
    cr_assert_eq(stats(c.c_rx).used, 0);
    poll_free(&c);
    return c.seen_receiving == 0;
}

static int polling_receiver(void *arg)
{
    (void)arg;
    cr_assert(until_polled(polling_receiver_once, false),
              "the receiver let its partner run before it blocked");
    return 0;
}
Test(chan, a_rendezvous_receive_lets_the_task_it_woke_run_before_it_blocks, .timeout = 10)
{
    cr_assert_eq(run_on(1, polling_receiver, NULL), 0);
}

/* Cancelled while it polls: an item sent meanwhile is its own (it was not
 * blocked, and returns it); with none, it blocks, the cancel aborts it and
 * the cell is finalised, so a later try_send finds no receiver.  A refused
 * poll (it blocked at once) ends in ECANCELED both ways.  Returns whether
 * it polled. */
static bool polling_cancelled_once(bool send)
{
    struct poll_ctx c = {0};
    poll_open(&c.go_tx, &c.go_rx);
    poll_open(&c.c_tx, &c.c_rx);
    c.send = send;
    weft_scope s;
    weft_scope_enter(&s);
    c.victim = &s;
    weft_task *t;
    cr_assert_eq(weft_spawn(&t, poll_partner, &c), 0);
    weft_yield();
    int got;
    int rc = poll_receive(&c, &got);
    bool polled = c.seen_receiving == 0;
    if (send && polled) {
        cr_assert_eq(rc, 0, "the item sent while it polled is returned");
        cr_assert_eq(got, 99);
        cr_assert_eq(c.try_rc, 0);
        cr_assert_eq(weft_checkpoint(), ECANCELED, "the cancel shows at the next checkpoint");
    } else {
        cr_assert_eq(rc, ECANCELED);
        cr_assert_eq(got, -1);
        if (send) cr_assert_eq(c.try_rc, EAGAIN, "a blocked receiver, cancelled, is skipped");
    }
    cr_assert_eq(weft_scope_exit(&s, 0), 0);
    int x = 5;
    cr_assert_eq(weft_chan_try_send(c.c_tx, &x), EAGAIN, "no receiver is left in the cells");
    cr_assert_eq(weft_join(t, NULL), 0);
    struct weft_chan_stats st = stats(c.c_rx);
    cr_assert_eq(st.used + st.tasks_receiving + st.tasks_sending, 0);
    poll_free(&c);
    return polled;
}

static int polling_cancelled(void *arg)
{
    (void)arg;
    cr_assert(until_polled(polling_cancelled_once, true));
    cr_assert(until_polled(polling_cancelled_once, false));
    return 0;
}
Test(chan, a_receiver_cancelled_while_it_polls_returns_an_item_sent_meanwhile_or_ECANCELED,
     .timeout = 10)
{
    cr_assert_eq(run_on(1, polling_cancelled, NULL), 0);
}

/* While the poller waits in the next slot, its partner wakes two tasks
 * (they go to the deque, the poller stays) and exits with a joiner parked
 * on it (kept for after its switch): everything runs, the poller resumes
 * with its item. */
static bool polling_pinned_once(bool unused)
{
    (void)unused;
    struct poll_ctx c = {0};
    poll_open(&c.go_tx, &c.go_rx);
    poll_open(&c.c_tx, &c.c_rx);
    poll_open(&c.w1_tx, &c.w1_rx);
    poll_open(&c.w2_tx, &c.w2_rx);
    c.send = true;
    weft_task *a, *b, *j;
    struct wake_target ta = {c.w1_rx, 0}, tb = {c.w2_rx, 0};
    cr_assert_eq(weft_spawn(&c.x, poll_partner, &c), 0);
    cr_assert_eq(weft_spawn(&a, poll_wake_target, &ta), 0);
    cr_assert_eq(weft_spawn(&b, poll_wake_target, &tb), 0);
    cr_assert_eq(weft_spawn(&j, poll_joiner, &c), 0);
    weft_yield(); /* a and b block in their receives, j in its join, the
                   * partner in its receive on go */
    int got;
    cr_assert_eq(poll_receive(&c, &got), 0);
    cr_assert_eq(got, 99);
    cr_assert_eq(weft_join(a, NULL), 0);
    cr_assert_eq(weft_join(b, NULL), 0);
    cr_assert_eq(weft_join(j, NULL), 0);
    cr_assert_eq(ta.got, 11);
    cr_assert_eq(tb.got, 12);
    cr_assert_eq(c.join_rc, 0);
    cr_assert_eq(c.join_status, 7);
    poll_free(&c);
    return c.seen_receiving == 0;
}

static int polling_pinned(void *arg)
{
    (void)arg;
    cr_assert(until_polled(polling_pinned_once, false));
    return 0;
}
Test(chan, tasks_woken_while_a_poller_waits_run_and_the_poller_resumes, .timeout = 10)
{
    cr_assert_eq(run_on(1, polling_pinned, NULL), 0);
}

/* ---- item sizes: 4, 8 and 16 bytes take the fast paths' own copy, others
 * their helpers (chan.c, Fast paths); every size comes out whole --------- */

static int item_sizes(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {1, 3, 4, 8, 12, 16, 24, 100, 4096};
    static const size_t caps[] = {1, 4, WEFT_UNBOUNDED};
    unsigned char in[4096], out[4097];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t j = 0; j < sizeof caps / sizeof caps[0]; j++) {
            size_t n = sizes[k];
            weft_tx *tx;
            weft_rx *rx;
            cr_assert_eq(weft_chan_open(&tx, &rx, caps[j], n, NULL), 0);
            for (int i = 0; i < 600; i++) { /* across segments (256 cells) */
                for (size_t b = 0; b < n; b++) in[b] = (unsigned char)(i * 7 + b);
                cr_assert_eq(weft_chan_send(tx, in), 0);
                memset(out, 0xEE, n + 1);
                cr_assert_eq(weft_chan_recv(rx, out), 0);
                cr_assert_eq(memcmp(in, out, n), 0, "size %zu, item %d", n, i);
                cr_assert_eq(out[n], 0xEE, "size %zu: nothing past the item", n);
            }
            struct weft_chan_stats st = stats(rx);
            cr_assert_eq(st.used, 0);
            cr_assert_eq(st.peak_used, 1);
            weft_chan_tx_free(tx);
            weft_chan_rx_free(rx);
        }
    }
    return 0;
}
BOTH(items_of_every_size_come_out_whole, item_sizes, 20)
