/*
 * lock: weft_lock beside a pthread mutex (and Go's sync.Mutex in
 * bench/go/lock.go).
 *   uncontended  acquire+release by one task (pthread: one thread), per pair
 *   contended    4 tasks on 2 workers (pthread: 4 threads), 10M
 *                acquire+release pairs in all, a short critical section
 *   sem_handoff  two tasks passing a turn through two semaphores, per
 *                hand-off (pthread peer: two threads, sem_t)
 */
#include <pthread.h>
#include <semaphore.h>
#include <weft.h>

#include "bench.h"

static long n_unc, n_con, n_hand;
static weft_lock wl;
static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
static volatile long counter;

static int unc_root(void *arg)
{
    (void)arg;
    weft_lock_init(&wl);
    bench_clock c = bench_start();
    for (long i = 0; i < n_unc; i++) {
        weft_lock_acquire(&wl);
        counter++;
        weft_lock_release(&wl);
    }
    bench_report(c, "lock", "uncontended", "weft", (double)n_unc, 1, "ns", "-");
    return 0;
}

static int con_worker(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        weft_lock_acquire(&wl);
        counter++;
        weft_lock_release(&wl);
    }
    return 0;
}

static int con_root(void *arg)
{
    (void)arg;
    weft_lock_init(&wl);
    weft_task *t[4];
    bench_clock c = bench_start();
    for (int i = 0; i < 4; i++) weft_spawn(&t[i], con_worker, (void *)(n_con / 4));
    for (int i = 0; i < 4; i++) weft_join(t[i], NULL);
    bench_report(c, "lock", "contended_4", "weft", (double)n_con, 1, "ns", "workers=2");
    return 0;
}

static weft_sem ws[2];
static int hand_peer(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_hand; i++) {
        weft_sem_acquire(&ws[1]);
        weft_sem_release(&ws[0]);
    }
    return 0;
}

static int hand_root(void *arg)
{
    const char *params = arg;
    weft_sem_init(&ws[0], 0, 0);
    weft_sem_init(&ws[1], 0, 0);
    weft_task *t;
    weft_spawn(&t, hand_peer, NULL);
    bench_clock c = bench_start();
    for (long i = 0; i < n_hand; i++) {
        weft_sem_release(&ws[1]);
        weft_sem_acquire(&ws[0]);
    }
    bench_report(c, "lock", "sem_handoff", "weft", (double)n_hand * 2, 1, "ns", params);
    weft_join(t, NULL);
    return 0;
}

static void *pt_con(void *arg)
{
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&pm);
        counter++;
        pthread_mutex_unlock(&pm);
    }
    return NULL;
}

static sem_t ps[2];
static void *pt_hand_peer(void *arg)
{
    (void)arg;
    for (long i = 0; i < n_hand; i++) {
        sem_wait(&ps[1]);
        sem_post(&ps[0]);
    }
    return NULL;
}

static void pthreads(void)
{
    bench_clock c = bench_start();
    for (long i = 0; i < n_unc; i++) {
        pthread_mutex_lock(&pm);
        counter++;
        pthread_mutex_unlock(&pm);
    }
    bench_report(c, "lock", "uncontended", "pthread", (double)n_unc, 1, "ns", "-");
    pthread_t th[4];
    c = bench_start();
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, pt_con, (void *)(n_con / 4));
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    bench_report(c, "lock", "contended_4", "pthread", (double)n_con, 1, "ns", "workers=2");
    sem_init(&ps[0], 0, 0);
    sem_init(&ps[1], 0, 0);
    long nh = n_hand / 10;
    long saved = n_hand;
    n_hand = nh;
    pthread_create(&th[0], NULL, pt_hand_peer, NULL);
    c = bench_start();
    for (long i = 0; i < nh; i++) {
        sem_post(&ps[1]);
        sem_wait(&ps[0]);
    }
    bench_report(c, "lock", "sem_handoff", "pthread", (double)nh * 2, 1, "ns", "workers=2");
    pthread_join(th[0], NULL);
    n_hand = saved;
}

int main(int argc, char **argv)
{
    bench_args(argc, argv);
    n_unc = bench_quick ? 100000 : 50000000;
    n_con = bench_quick ? 100000 : 10000000;
    n_hand = bench_quick ? 10000 : 2000000;
    weft_options o;
    weft_options_init(&o);
    for (int r = 0; r < bench_reps; r++) {
        o.workers = 1;
        weft_run(&o, unc_root, NULL, NULL);
        o.workers = 2;
        weft_run(&o, con_root, NULL, NULL);
        o.workers = 1;
        weft_run(&o, hand_root, "workers=1", NULL);
        pthreads();
    }
    return 0;
}
