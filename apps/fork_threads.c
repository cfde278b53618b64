// fork from a parent with 4 threads (issue 13): only the calling thread goes
// on in the child; pthread_atfork handlers run (prepare and parent in the
// parent, child in the child); the child's memory holds what the threads wrote
// before the fork; the child can start and join threads of its own; the
// parent's threads go on and are joined.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER;
static int started, stop;
static atomic_long work[4];
static int prepared, in_parent, in_child;

static void prepare(void) { prepared++; }
static void parent(void) { in_parent++; }
static void child(void) { in_child++; }

static void *worker(void *arg) {
    long i = (long)arg;
    pthread_mutex_lock(&lock);
    started++;
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&lock);
    for (;;) {
        atomic_fetch_add(&work[i], 1);
        pthread_mutex_lock(&lock);
        int s = stop;
        pthread_mutex_unlock(&lock);
        if (s)
            return (void *)(i + 1);
        usleep(100);
    }
}

static void *helper(void *arg) { return (void *)((long)arg * 2); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_atfork(prepare, parent, child);
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    pthread_mutex_lock(&lock);
    while (started < 4)
        pthread_cond_wait(&go, &lock);
    pthread_mutex_unlock(&lock);
    while (atomic_load(&work[3]) < 3)
        usleep(100);

    pid_t pid = fork();
    if (pid == 0) {
        // The lock the workers take is usable (no thread holds it here).
        pthread_mutex_lock(&lock);
        int saw_started = started;
        pthread_mutex_unlock(&lock);
        long before = atomic_load(&work[0]);
        usleep(20000);
        // Nobody works on in the child.
        int frozen = atomic_load(&work[0]) == before;
        pthread_t h;
        void *r = NULL;
        int ok = pthread_create(&h, NULL, helper, (void *)21) == 0 && pthread_join(h, &r) == 0;
        printf("child: started %d, workers frozen %s, own thread %s (%ld), atfork child %d prepare %d\n",
               saw_started, frozen ? "yes" : "no", ok ? "ran" : "failed", (long)r, in_child,
               prepared);
        _exit(frozen && ok && (long)r == 42 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    printf("parent: child exited %d, atfork prepare %d parent %d child %d\n",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, prepared, in_parent, in_child);
    long before = atomic_load(&work[1]);
    while (atomic_load(&work[1]) == before)
        usleep(100);
    printf("parent: workers go on\n");
    pthread_mutex_lock(&lock);
    stop = 1;
    pthread_mutex_unlock(&lock);
    long sum = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("parent: joined, %ld\n", sum);
    return 0;
}
