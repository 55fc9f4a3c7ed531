/*
 * Memory channel exactly-once stress (src/chan.c).
 *
 * Rounds until `--seconds` have passed; each round opens a channel with the
 * next capacity of {0, 1, 16, unbounded} and runs `--producers` producers
 * and `--consumers` consumers, half of each tasks and half plain pthreads,
 * each on its own cloned handle.  Every send carries a fresh id and runs
 * in a scope that is plain, has a deadline a few microseconds away, or is
 * bound to one of NTOK tokens a canceller keeps cancelling and replacing;
 * receives likewise.  A consumer sometimes closes its handle early.  The
 * round ends either by closing every send handle (consumers drain to
 * ENODATA) or by closing every receive handle first (producers get EPIPE,
 * buffered items go to on_drop).
 *
 * Checks per round: every id whose send returned 0 was received or dropped
 * exactly once; no id whose send failed was ever received or dropped;
 * no id was received twice; per producer, ids arrive in send order at
 * each consumer; the stats show nothing buffered and nobody waiting.
 *
 * Usage: stress_chan [--seconds S] [--seed N] [--workers W]
 *                    [--producers P] [--consumers C] [--round-ms M]
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <weft.h>

#include "stress_common.h"

#define NTOK 8
#define MAX_IDS (1u << 20)
#define MAX_PARTIES 32

static unsigned long long seconds = 5, seed = 1, workers = 2, nprod = 4, ncons = 4,
                          round_ms = 100;

static _Atomic uint8_t sent[MAX_IDS];    /* 0 not sent, 1 send ok, 2 send failed */
static _Atomic uint8_t recvd[MAX_IDS];   /* times received */
static _Atomic uint8_t dropped[MAX_IDS]; /* times dropped */
static _Atomic uint32_t next_id;
static _Atomic bool round_stop;
static stress_tokens toks;
static _Atomic unsigned long long total_ok, total_fail[5], total_recv, total_drop, recv_cancel,
    early_close;

struct item {
    uint32_t id;
    uint32_t producer;
    uint64_t seq;
};

struct party {
    weft_tx *tx;
    weft_rx *rx;
    uint64_t rng;
    uint32_t index;
    bool task;
    weft_task *t;
    pthread_t th;
};

static void on_drop(void *item, void *ctx)
{
    (void)ctx;
    struct item *it = item;
    STRESS_CHECK(it->id < MAX_IDS);
    STRESS_CHECK(atomic_fetch_add(&dropped[it->id], 1) == 0);
    atomic_fetch_add(&total_drop, 1);
}

static void enter_scope(weft_scope *s, uint64_t *rng)
{
    unsigned how = (unsigned)(stress_rand(rng) % 4);
    if (how == 1)
        weft_scope_enter_deadline(s, weft_now() + stress_rand(rng) % 30000);
    else
        weft_scope_enter(s);
    if (how == 2)
        STRESS_CHECK(weft_scope_bind(s, stress_tokens_pick(&toks, rng)) == 0);
}

static int fail_index(int rc)
{
    switch (rc) {
    case ECANCELED: return 0;
    case EAGAIN: return 1;
    case EPIPE: return 2;
    case EBADF: return 3;
    default: return 4;
    }
}

static void produce(struct party *p)
{
    uint64_t seq = 0;
    while (!atomic_load_explicit(&round_stop, memory_order_relaxed)) {
        uint32_t id = atomic_fetch_add(&next_id, 1);
        if (id >= MAX_IDS) break;
        struct item it = {id, p->index, seq};
        weft_scope s;
        enter_scope(&s, &p->rng);
        bool try = stress_rand(&p->rng) % 8 == 0;
        int rc = try ? weft_chan_try_send(p->tx, &it) : weft_chan_send(p->tx, &it);
        STRESS_CHECK(weft_scope_exit(&s, rc) == (rc == ECANCELED ? 0 : rc));
        if (rc == 0) {
            atomic_store(&sent[id], 1);
            atomic_fetch_add(&total_ok, 1);
            seq++;
        } else {
            STRESS_CHECK(rc == ECANCELED || rc == EAGAIN || rc == EPIPE);
            STRESS_CHECK(rc != EAGAIN || try);
            atomic_store(&sent[id], 2);
            atomic_fetch_add(&total_fail[fail_index(rc)], 1);
            if (rc == EPIPE) break;
        }
    }
}

static void consume(struct party *p)
{
    uint64_t last[MAX_PARTIES];
    for (int i = 0; i < MAX_PARTIES; i++) last[i] = UINT64_MAX;
    for (;;) {
        if (p->index != nprod && stress_rand(&p->rng) % 20000 == 0) {
            /* close our own handle early (never the first consumer's) */
            weft_chan_rx_close(p->rx);
            struct item it;
            STRESS_CHECK(weft_chan_recv(p->rx, &it) == EBADF);
            atomic_fetch_add(&early_close, 1);
            return;
        }
        struct item it;
        weft_scope s;
        enter_scope(&s, &p->rng);
        bool try = stress_rand(&p->rng) % 8 == 0;
        int rc = try ? weft_chan_try_recv(p->rx, &it) : weft_chan_recv(p->rx, &it);
        STRESS_CHECK(weft_scope_exit(&s, rc) == (rc == ECANCELED ? 0 : rc));
        if (rc == ENODATA || rc == EBADF) return; /* EBADF: the round closed our handle */
        if (rc == ECANCELED || rc == EAGAIN) {
            STRESS_CHECK(rc != EAGAIN || try);
            atomic_fetch_add(&recv_cancel, 1);
            continue;
        }
        STRESS_CHECK(rc == 0);
        STRESS_CHECK(it.id < MAX_IDS && it.producer < MAX_PARTIES);
        STRESS_CHECK(atomic_fetch_add(&recvd[it.id], 1) == 0);
        /* FIFO per producer as seen by one consumer */
        STRESS_CHECK(last[it.producer] == UINT64_MAX || it.seq > last[it.producer]);
        last[it.producer] = it.seq;
        atomic_fetch_add(&total_recv, 1);
    }
}

static int task_prod(void *a) { produce(a); return 0; }
static int task_cons(void *a) { consume(a); return 0; }
static void *th_prod(void *a) { produce(a); return NULL; }
static void *th_cons(void *a) { consume(a); return NULL; }

static void *canceller(void *arg)
{
    stress_tokens_churn(&toks, &round_stop, 100000, (uint64_t)(uintptr_t)arg);
    return NULL;
}

static void run_round(weft_runtime *rt, size_t cap, uint64_t *rng, bool close_rx_first)
{
    for (uint32_t i = 0; i < MAX_IDS; i++) {
        atomic_store_explicit(&sent[i], 0, memory_order_relaxed);
        atomic_store_explicit(&recvd[i], 0, memory_order_relaxed);
        atomic_store_explicit(&dropped[i], 0, memory_order_relaxed);
    }
    atomic_store(&next_id, 0);
    atomic_store(&round_stop, false);
    weft_chan_options o = {on_drop, NULL};
    weft_tx *tx;
    weft_rx *rx;
    STRESS_CHECK(weft_chan_open(&tx, &rx, cap, sizeof(struct item), &o) == 0);
    struct party ps[2 * MAX_PARTIES];
    unsigned n = (unsigned)(nprod + ncons);
    for (unsigned i = 0; i < n; i++) {
        struct party *p = &ps[i];
        p->rng = stress_rand(rng) | 1;
        p->index = i;
        p->task = i % 2 == 0;
        p->tx = NULL;
        p->rx = NULL;
        if (i < nprod)
            STRESS_CHECK(weft_chan_tx_clone(tx, &p->tx) == 0);
        else
            STRESS_CHECK(weft_chan_rx_clone(rx, &p->rx) == 0);
    }
    for (unsigned i = 0; i < n; i++) {
        struct party *p = &ps[i];
        bool prod = i < nprod;
        if (p->task)
            STRESS_CHECK(weft_runtime_spawn(rt, &p->t, prod ? task_prod : task_cons, p) == 0);
        else
            STRESS_CHECK(pthread_create(&p->th, NULL, prod ? th_prod : th_cons, p) == 0);
    }
    pthread_t cth;
    STRESS_CHECK(pthread_create(&cth, NULL, canceller, (void *)(uintptr_t)(stress_rand(rng) | 1)) == 0);
    struct timespec ts = {0, (long)round_ms * 1000000};
    nanosleep(&ts, NULL);
    atomic_store(&round_stop, true);
    if (close_rx_first) {
        weft_chan_rx_close(rx);
        for (unsigned i = nprod; i < n; i++) weft_chan_rx_close(ps[i].rx);
    }
    /* producers finish (stop flag, EPIPE, or MAX_IDS) */
    for (unsigned i = 0; i < nprod; i++) {
        if (ps[i].task)
            STRESS_CHECK(weft_join(ps[i].t, NULL) == 0);
        else
            pthread_join(ps[i].th, NULL);
        weft_chan_tx_close(ps[i].tx);
    }
    weft_chan_tx_close(tx);
    for (unsigned i = nprod; i < n; i++) {
        if (ps[i].task)
            STRESS_CHECK(weft_join(ps[i].t, NULL) == 0);
        else
            pthread_join(ps[i].th, NULL);
    }
    pthread_join(cth, NULL);
    struct weft_chan_stats st;
    STRESS_CHECK(weft_chan_stats(rx, &st) == 0);
    STRESS_CHECK(st.tasks_sending == 0 && st.tasks_receiving == 0);
    /* free every handle: what is still buffered goes to on_drop */
    for (unsigned i = 0; i < n; i++) {
        if (ps[i].tx) weft_chan_tx_free(ps[i].tx);
        if (ps[i].rx) weft_chan_rx_free(ps[i].rx);
    }
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    uint32_t ids = atomic_load(&next_id);
    if (ids > MAX_IDS) ids = MAX_IDS;
    size_t ndropped = 0;
    for (uint32_t i = 0; i < ids; i++) {
        unsigned s = atomic_load(&sent[i]), r = atomic_load(&recvd[i]), d = atomic_load(&dropped[i]);
        if (s == 1 && r + d != 1) STRESS_FAIL("cap %zu: id %u sent ok, received %u, dropped %u", cap, i, r, d);
        if (s != 1 && r + d != 0) STRESS_FAIL("cap %zu: id %u send failed, received %u, dropped %u", cap, i, r, d);
        ndropped += d;
    }
    /* Stats are exact once no call races them, whatever was cancelled,
     * timed out or closed: what they said was buffered is what the free
     * dropped (nothing, when the receive side was closed first). */
    if (st.used != (close_rx_first ? 0 : ndropped))
        STRESS_FAIL("cap %zu: stats said %zu buffered, %zu were dropped at free", cap, st.used,
                    close_rx_first ? (size_t)0 : ndropped);
    if (st.peak_used < st.used || (cap != WEFT_UNBOUNDED && st.peak_used > cap))
        STRESS_FAIL("cap %zu: peak_used %zu with %zu used", cap, st.peak_used, st.used);
}

int main(int argc, char **argv)
{
    struct stress_opt opts[] = {{"--seconds", &seconds},     {"--seed", &seed},
                                {"--workers", &workers},     {"--producers", &nprod},
                                {"--consumers", &ncons},     {"--round-ms", &round_ms}};
    stress_parse(argc, argv, opts, sizeof opts / sizeof opts[0]);
    STRESS_CHECK(nprod >= 1 && ncons >= 1 && nprod + ncons <= MAX_PARTIES);
    printf("stress_chan: seed %llu, %llu s, %llu workers, %llu producers x %llu consumers "
           "(half tasks, half pthreads), %llu ms rounds\n",
           seed, seconds, workers, nprod, ncons, round_ms);
    fflush(stdout);
    stress_tokens_init(&toks, NTOK, 1u << 20);
    weft_options o;
    weft_options_init(&o);
    o.workers = (unsigned)workers;
    weft_runtime *rt;
    STRESS_CHECK(weft_runtime_create(&rt, &o) == 0);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull | 1;
    const size_t caps[4] = {0, 1, 16, WEFT_UNBOUNDED};
    uint64_t t0 = weft__now(), rounds = 0;
    do {
        size_t cap = caps[rounds % 4];
        bool rx_first = stress_rand(&rng) % 3 == 0;
        run_round(rt, cap, &rng, rx_first);
        rounds++;
    } while (weft__now() - t0 < seconds * 1000000000ull);
    STRESS_CHECK(weft_runtime_destroy(rt) == 0);
    stress_tokens_fini(&toks);
    printf("  sends ok %llu; failed: ECANCELED %llu, EAGAIN %llu, EPIPE %llu\n",
           (unsigned long long)total_ok, (unsigned long long)total_fail[0],
           (unsigned long long)total_fail[1], (unsigned long long)total_fail[2]);
    printf("  received %llu, dropped %llu, receives cancelled or EAGAIN %llu, early closes %llu\n",
           (unsigned long long)total_recv, (unsigned long long)total_drop,
           (unsigned long long)recv_cancel, (unsigned long long)early_close);
    STRESS_CHECK(total_ok == total_recv + total_drop);
    printf("stress_chan: OK: %llu rounds, sent-ok = received + dropped = %llu, every id at most "
           "once, %.1f s\n",
           (unsigned long long)rounds, (unsigned long long)total_ok,
           (double)(weft__now() - t0) / 1e9);
    return 0;
}
