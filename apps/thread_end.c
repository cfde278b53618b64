// How a threaded run ends: `thread_end exit` has a second thread call exit(3)
// while the main thread is blocked in a read nobody answers; `thread_end segv`
// has it fault instead. Either way the whole run ends at once.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *mode;
static volatile int *volatile bad = (volatile int *)0x10;

static void *second(void *arg) {
    (void)arg;
    usleep(20000);
    printf("second thread ends the run (%s)\n", mode);
    fflush(stdout);
    if (strcmp(mode, "segv") == 0)
        *bad = 1;
    exit(3);
}

int main(int argc, char **argv) {
    mode = argc > 1 ? argv[1] : "exit";
    int fds[2];
    pipe(fds);
    pthread_t t;
    pthread_create(&t, NULL, second, NULL);
    char c;
    read(fds[0], &c, 1); // never answered
    printf("not reached\n");
    return 0;
}
