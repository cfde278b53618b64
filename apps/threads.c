// 8 pthreads: mutex, condition variable, barrier, atomics and join values.
// Output is deterministic so mote and native Linux can be compared.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NTHREADS 8
#define ROUNDS 2000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long shared_counter;
static atomic_long atomic_counter;
static int turn; // ping-pong through the condition variable
static __thread long tls_value;

static void *worker(void *arg) {
    long id = (long)arg;
    tls_value = id * 1000;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        shared_counter++;
        pthread_mutex_unlock(&lock);
        atomic_fetch_add(&atomic_counter, 1);
        if (i % 500 == 0)
            sched_yield();
    }
    pthread_barrier_wait(&barrier);
    // Take turns in id order through the condition variable.
    pthread_mutex_lock(&lock);
    while (turn != id)
        pthread_cond_wait(&cond, &lock);
    printf("thread %ld: turn, tls %ld, counter %ld\n", id, tls_value, shared_counter);
    fflush(stdout);
    turn++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    pthread_barrier_wait(&barrier);
    return (void *)(id * id + tls_value);
}

int main(void) {
    pthread_t t[NTHREADS];
    pthread_barrier_init(&barrier, NULL, NTHREADS);
    for (long i = 0; i < NTHREADS; i++) {
        if (pthread_create(&t[i], NULL, worker, (void *)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    long total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        printf("joined %d: %ld\n", i, (long)ret);
        total += (long)ret;
    }
    printf("mutex counter %ld, atomic counter %ld, join total %ld\n", shared_counter,
           (long)atomic_counter, total);
    // A timed wait that times out.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&lock);
    int r = pthread_cond_timedwait(&cond, &lock, &ts);
    pthread_mutex_unlock(&lock);
    printf("timedwait: %s\n", r == 110 ? "ETIMEDOUT" : "other");
    return shared_counter == NTHREADS * ROUNDS && atomic_counter == NTHREADS * ROUNDS ? 0 : 1;
}
