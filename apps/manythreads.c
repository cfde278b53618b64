// Threads until the system says no (or 2000): they all wait, then all are joined.
// Under mote the runtime's memory for thread stacks ends it with EAGAIN, cleanly.
#include <pthread.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static int go;
static void *f(void *a) { pthread_mutex_lock(&m); while (!go) pthread_cond_wait(&c, &m); pthread_mutex_unlock(&m); return a; }
int main(void) {
    static pthread_t t[2000]; int n = 0, r = 0;
    pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 64 << 10);
    for (; n < 2000; n++) if ((r = pthread_create(&t[n], &at, f, NULL)) != 0) break;
    printf("created %d threads (stopped: %s)\n", n, r ? strerror(r) : "no");
    pthread_mutex_lock(&m); go = 1; pthread_cond_broadcast(&c); pthread_mutex_unlock(&m);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    printf("joined all\n");
    return 0;
}
