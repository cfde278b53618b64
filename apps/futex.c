// Raw futex semantics, a thread blocked in a forwarded read while another one on
// the same core works, thread ids and affinity. Output is the same natively.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long futex(void *uaddr, int op, uint32_t val, const void *timeout, void *uaddr2,
                  uint32_t val3) {
    return syscall(SYS_futex, uaddr, op, val, timeout, uaddr2, val3);
}

static const char *err(long r) {
    if (r >= 0)
        return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case ENOSYS: return "ENOSYS";
    default: return strerror(errno);
    }
}

static _Atomic uint32_t word;
static _Atomic uint32_t word2;
static _Atomic int woken;
static int pipefd[2];
static _Atomic long child_tid;

static _Atomic int ready;
static const char *results[3];

static void *waiter(void *arg) {
    long i = (long)arg;
    atomic_fetch_add(&ready, 1);
    long r = futex(&word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    results[i] = err(r);
    atomic_fetch_add(&woken, 1);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    child_tid = syscall(SYS_gettid);
    char buf[16] = {0};
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    printf("reader: got %zd bytes: %s\n", n, buf);
    return NULL;
}

static pthread_mutex_t robust;

static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL; // ends without unlocking
}

int main(void) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    printf("wait on changed word: %s\n", err(futex(&word, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0)));
    printf("wait with timeout: %s\n", err(futex(&word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0)));
    printf("misaligned: %s\n", err(futex((char *)&word + 1, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0)));
    printf("bitset 0: %s\n", err(futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, 0)));
    printf("bad address: %s\n", err(futex((void *)8, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0)));
    printf("wake nobody: %ld\n", futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    struct timespec past = {0, 1};
    printf("absolute past deadline: %s\n",
           err(futex(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, &past, NULL, FUTEX_BITSET_MATCH_ANY)));

    // Three waiters: wake one, requeue one to word2, wake the rest from word2.
    pthread_t t[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, waiter, (void *)i);
    // All three announced themselves; give them time to sleep in the kernel.
    while (atomic_load(&ready) < 3)
        sched_yield();
    struct timespec s = {0, 50 * 1000 * 1000};
    nanosleep(&s, NULL);
    atomic_store(&word, 1);
    long r = futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    printf("woke %ld\n", r);
    while (atomic_load(&woken) < 1)
        sched_yield();
    r = futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)1, &word2, 1);
    printf("cmp_requeue: %ld\n", r);
    r = futex(&word, FUTEX_CMP_REQUEUE_PRIVATE, 0, (void *)1, &word2, 7);
    printf("cmp_requeue with a stale value: %s\n", err(r));
    atomic_store(&word, 2);
    long w1 = futex(&word, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0);
    long w2 = futex(&word2, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0);
    printf("woke %ld + %ld\n", w1, w2);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("all woken: %d (%s %s %s)\n", atomic_load(&woken), results[0], results[1],
           results[2]);

    // A thread blocked in a read that Linux answers, while this one works.
    pipe(pipefd);
    pthread_t rd;
    pthread_create(&rd, NULL, reader, NULL);
    volatile double x = 0;
    for (long i = 1; i < 3000000; i++)
        x += 1.0 / i;
    while (child_tid == 0)
        sched_yield();
    write(pipefd[1], "hello", 5);
    pthread_join(rd, NULL);
    printf("reader's tid differs from the main thread's: %s\n",
           child_tid != syscall(SYS_gettid) && child_tid > 0 ? "yes" : "no");
    printf("main tid is the pid: %s\n", syscall(SYS_gettid) == getpid() ? "yes" : "no");

    // A robust mutex whose owner died.
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    pthread_t holder;
    pthread_create(&holder, NULL, die_holding, NULL);
    pthread_join(holder, NULL);
    int rr = pthread_mutex_lock(&robust);
    printf("robust mutex of a dead owner: %s\n", rr == EOWNERDEAD ? "EOWNERDEAD" : strerror(rr));
    if (rr == EOWNERDEAD)
        pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);

    cpu_set_t set;
    CPU_ZERO(&set);
    printf("affinity: %s\n",
           sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 1 ? "ok" : "bad");
    return 0;
}
