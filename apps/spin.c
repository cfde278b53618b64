/* A program to signal from outside: prints "ready", then computes forever
 * (`spin`) or blocks in a read on a pipe nobody writes (`spin read`) or in a long
 * nanosleep (`spin sleep`). With `handler` it catches SIGINT and SIGTERM (and
 * SIGSEGV and SIGBUS, which a shell can send too) and says
 * which one came, and what the interrupted call returned, then exits 0. Without,
 * the signal's default action ends it (130 for SIGINT, 143 for SIGTERM).
 * `spin wait` blocks SIGINT and SIGTERM and takes the first with sigwaitinfo.
 * `spin threads` computes in two threads while the main thread waits in
 * pthread_join.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig) { caught = sig; }

static void *compute(void *arg) {
    (void)arg;
    volatile unsigned long x = 1;
    while (!caught)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = "loop";
    int handler = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "handler") == 0)
            handler = 1;
        else
            mode = argv[i];
    }
    if (handler) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
    }
    int fds[2];
    if (pipe(fds) != 0)
        return 2;
    if (strcmp(mode, "wait") == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        printf("ready\n");
        fflush(stdout);
        siginfo_t si;
        int s = sigwaitinfo(&set, &si);
        printf("sigwaitinfo: %s, sent by a process: %s\n",
               s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : "wrong",
               si.si_code == SI_USER && si.si_pid > 0 ? "yes" : "no");
        return 0;
    }
    printf("ready\n");
    fflush(stdout);
    const char *result = "";
    if (strcmp(mode, "read") == 0) {
        char c;
        ssize_t n = read(fds[0], &c, 1);
        result = n == -1 && errno == EINTR ? "read: EINTR" : "read: wrong";
    } else if (strcmp(mode, "threads") == 0) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, compute, NULL);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        result = "threads: ended";
    } else if (strcmp(mode, "sleep") == 0) {
        struct timespec req = {1000, 0}, rem;
        int r = nanosleep(&req, &rem);
        result = r == -1 && errno == EINTR && rem.tv_sec > 900 ? "nanosleep: EINTR" : "nanosleep: wrong";
    } else {
        volatile unsigned long x = 1;
        while (!caught)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        result = "loop: ended";
    }
    printf("caught %s; %s\n",
           caught == SIGINT    ? "SIGINT"
           : caught == SIGTERM ? "SIGTERM"
           : caught == SIGSEGV ? "SIGSEGV"
           : caught == SIGBUS  ? "SIGBUS"
                               : "nothing",
           result);
    return 0;
}
