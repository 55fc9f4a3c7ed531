/*
 * Channel benchmarks (Go peer: bench/go/chan.go), all on 2 workers
 * (GOMAXPROCS=2), items of 8 bytes:
 *   pingpong   capacity-0 round trip between two tasks, ns per round trip
 *   spsc       10M items, capacity 1024, 1 producer 1 consumer, ns per item
 *   mpmc       10M items, capacity 1024, 4 producers 4 consumers, ns per item
 *   matrix     capacity {0, 1, 1024, unbounded} x {spsc 1:1, mpsc 4:1,
 *              mpmc 4:4}, 2M items each, ns per item
 *   skynet     1M leaves summed through capacity-0 channels, ms per run
 */
#include <weft.h>

#include "bench.h"

static long n_ping, n_items, n_matrix, skynet_leaves;

/* ---- ping-pong ---------------------------------------------------------- */

struct pp {
    weft_tx *to;
    weft_rx *from;
    long n;
};

static int pong(void *arg)
{
    struct pp *p = arg;
    long v;
    for (long i = 0; i < p->n; i++) {
        weft_chan_recv(p->from, &v);
        weft_chan_send(p->to, &v);
    }
    return 0;
}

static void pingpong(void)
{
    weft_tx *atx, *btx;
    weft_rx *arx, *brx;
    weft_chan_open(&atx, &arx, 0, sizeof(long), NULL);
    weft_chan_open(&btx, &brx, 0, sizeof(long), NULL);
    struct pp p = {btx, arx, n_ping};
    weft_task *t;
    weft_spawn(&t, pong, &p);
    bench_clock c = bench_start();
    long v = 0;
    for (long i = 0; i < n_ping; i++) {
        weft_chan_send(atx, &i);
        weft_chan_recv(brx, &v);
    }
    bench_report(c, "chan", "chan_pingpong", "weft", (double)n_ping, 1, "ns", "workers=2");
    weft_join(t, NULL);
    weft_chan_tx_free(atx);
    weft_chan_rx_free(arx);
    weft_chan_tx_free(btx);
    weft_chan_rx_free(brx);
}

/* ---- producers and consumers --------------------------------------------- */

struct pc {
    weft_tx *tx;
    weft_rx *rx;
    long n;
    long long sum;
};

static int producer(void *arg)
{
    struct pc *p = arg;
    for (long i = 1; i <= p->n; i++) weft_chan_send(p->tx, &i);
    weft_chan_tx_free(p->tx);
    return 0;
}

static int consumer(void *arg)
{
    struct pc *p = arg;
    long v;
    long long s = 0;
    while (weft_chan_recv(p->rx, &v) == 0) s += v;
    p->sum = s;
    weft_chan_rx_free(p->rx);
    return 0;
}

/* Sends n items through np producers and nc consumers; checks the sum. */
static void run_pc(const char *metric, size_t cap, int np, int nc, long n)
{
    weft_tx *tx;
    weft_rx *rx;
    weft_chan_open(&tx, &rx, cap, sizeof(long), NULL);
    struct pc p[8];
    weft_task *t[8];
    long per = n / np;
    bench_clock c = bench_start();
    for (int i = 0; i < np + nc; i++) {
        p[i] = (struct pc){NULL, NULL, per, 0};
        if (i < np)
            weft_chan_tx_clone(tx, &p[i].tx);
        else
            weft_chan_rx_clone(rx, &p[i].rx);
        weft_spawn(&t[i], i < np ? producer : consumer, &p[i]);
    }
    weft_chan_tx_free(tx);
    long long sum = 0;
    for (int i = 0; i < np + nc; i++) {
        weft_join(t[i], NULL);
        sum += p[i].sum;
    }
    bench_report(c, "chan", metric, "weft", (double)(per * np), 1, "ns", "workers=2");
    weft_chan_rx_free(rx);
    long long want = (long long)np * per * (per + 1) / 2;
    if (sum != want) {
        fprintf(stderr, "chan %s: wrong sum %lld, want %lld\n", metric, sum, want);
        exit(1);
    }
}

/* ---- skynet through channels ---------------------------------------------- */

struct sk {
    weft_tx *tx;
    long num, size;
};

static int skynet(void *arg)
{
    struct sk *a = arg;
    long long v = 0;
    if (a->size == 1) {
        v = a->num;
        weft_chan_send(a->tx, &v);
        return 0;
    }
    weft_tx *tx;
    weft_rx *rx;
    weft_chan_open(&tx, &rx, 0, sizeof(long long), NULL);
    struct sk kids[10];
    weft_task *t[10];
    long step = a->size / 10;
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct sk){tx, a->num + i * step, step};
        weft_spawn(&t[i], skynet, &kids[i]);
    }
    long long s = 0;
    for (int i = 0; i < 10; i++) {
        weft_chan_recv(rx, &v);
        s += v;
    }
    for (int i = 0; i < 10; i++) weft_join(t[i], NULL);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    weft_chan_send(a->tx, &s);
    return 0;
}

static void skynet_chan(const char *params)
{
    weft_tx *tx;
    weft_rx *rx;
    weft_chan_open(&tx, &rx, 0, sizeof(long long), NULL);
    struct sk a = {tx, 0, skynet_leaves};
    bench_clock c = bench_start();
    weft_task *t;
    weft_spawn(&t, skynet, &a);
    long long sum = 0;
    weft_chan_recv(rx, &sum);
    bench_report(c, "skynet", "skynet_chan", "weft", 1, 1e6, "ms", params);
    weft_join(t, NULL);
    weft_chan_tx_free(tx);
    weft_chan_rx_free(rx);
    if (sum != (long long)skynet_leaves * (skynet_leaves - 1) / 2) {
        fprintf(stderr, "skynet_chan: wrong sum %lld\n", sum);
        exit(1);
    }
}

static int root(void *arg)
{
    (void)arg;
    pingpong();
    run_pc("chan_spsc", 1024, 1, 1, n_items);
    run_pc("chan_mpmc", 1024, 4, 4, n_items);
    static const size_t caps[] = {0, 1, 1024, WEFT_UNBOUNDED};
    static const char *cap_name[] = {"c0", "c1", "c1024", "cunb"};
    static const int shape[3][2] = {{1, 1}, {4, 1}, {4, 4}};
    static const char *shape_name[] = {"spsc", "mpsc", "mpmc"};
    for (int k = 0; k < 4; k++)
        for (int s = 0; s < 3; s++) {
            char m[64];
            snprintf(m, sizeof m, "matrix_%s_%s", cap_name[k], shape_name[s]);
            run_pc(m, caps[k], shape[s][0], shape[s][1], n_matrix);
        }
    skynet_chan("workers=2");
    return 0;
}

static int root1(void *arg)
{
    (void)arg;
    skynet_chan("workers=1");
    return 0;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n_ping = bench_quick ? 10000 : 1000000;
    n_items = bench_quick ? 100000 : 10000000;
    n_matrix = bench_quick ? 20000 : 2000000;
    skynet_leaves = bench_quick ? 10000 : 1000000;
    weft_options o;
    weft_options_init(&o);
    for (int r = 0; r < bench_reps; r++) {
        o.workers = 2;
        weft_run(&o, root, NULL, NULL);
        o.workers = 1;
        weft_run(&o, root1, NULL, NULL);
    }
    return 0;
}
