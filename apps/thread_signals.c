// Signals and threads: tgkill reaches the thread it names (its handler runs on
// it, interrupting its wait), a process-directed signal goes to the thread that
// does not block it, and each thread has its own mask.
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define N 3
static _Atomic long tids[N];
static _Atomic long handled_by[N];
static _Atomic long usr2_by;
static _Atomic int stop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

static void on_usr1(int sig) {
    (void)sig;
    long me = syscall(SYS_gettid);
    for (int i = 0; i < N; i++)
        if (tids[i] == me)
            handled_by[i] = me;
}

static void on_usr2(int sig) {
    (void)sig;
    usr2_by = syscall(SYS_gettid);
}

static void *worker(void *arg) {
    long i = (long)arg;
    // Worker 1 alone takes SIGUSR2.
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(i == 1 ? SIG_UNBLOCK : SIG_BLOCK, &s, NULL);
    tids[i] = syscall(SYS_gettid);
    pthread_mutex_lock(&lock);
    while (!stop)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &s, NULL); // main blocks SIGUSR2; workers inherit it
    pthread_t t[N];
    for (long i = 0; i < N; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < N; i++)
        while (tids[i] == 0)
            usleep(1000);
    usleep(20000); // let them wait in the condition variable
    for (int i = 0; i < N; i++) {
        syscall(SYS_tgkill, getpid(), tids[i], SIGUSR1);
        while (handled_by[i] == 0)
            usleep(1000);
        printf("worker %d: its SIGUSR1 handler ran on it: %s\n", i,
               handled_by[i] == tids[i] ? "yes" : "no");
    }
    kill(getpid(), SIGUSR2);
    while (usr2_by == 0)
        usleep(1000);
    printf("process-directed SIGUSR2 taken by the only thread not blocking it: %s\n",
           usr2_by == tids[1] ? "yes" : "no");
    pthread_mutex_lock(&lock);
    stop = 1;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    // pthread_join returns when the kernel clears the thread's tid, which
    // Linux does a little before the thread is released: a tgkill right
    // then may still find it. Ask until it is gone (10 s at most).
    long r = 0;
    for (int tries = 0; tries < 100000; tries++) {
        r = syscall(SYS_tgkill, getpid(), tids[0], 0);
        if (r == -1)
            break;
        usleep(100);
    }
    printf("tgkill to a thread that is gone: %s\n", r == -1 ? strerror(errno) : "still there");
    return 0;
}
