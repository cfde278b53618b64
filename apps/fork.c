// fork (issue 13): a copy of the process. Exit codes and a signal through
// waitpid, the child's view of its pids, a pipe between parent and child,
// memory copied (not shared), fork + exec, a double fork whose grandchild is
// orphaned, and ECHILD once all are reaped. Output is the same natively.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static void status(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: status %#x\n", what, st);
}

static int counter = 41;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec-child") == 0) {
        printf("exec-child: running\n");
        return 4;
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t me = getpid();

    // 1. Exit code; the child's pids; the child's memory is a copy.
    char *heap = malloc(1 << 20);
    memset(heap, 'p', 1 << 20);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = getppid() == me && getpid() != me && heap[12345] == 'p' && counter == 41;
        counter = 99;
        memset(heap, 'c', 1 << 20);
        _exit(ok ? 3 : 100);
    }
    CHECK(pid > 0, "fork: %s", strerror(errno));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    status("child 1", st);
    CHECK(counter == 41 && heap[777] == 'p', "the child's writes reached the parent");

    // 2. A child killed by a signal; WNOHANG before it is.
    int ready[2];
    CHECK(pipe(ready) == 0, "pipe");
    pid = fork();
    if (pid == 0) {
        close(ready[0]);
        write(ready[1], "r", 1);
        for (;;)
            pause();
    }
    close(ready[1]);
    char c;
    CHECK(read(ready[0], &c, 1) == 1, "child 2 ready");
    close(ready[0]);
    CHECK(waitpid(pid, &st, WNOHANG) == 0, "WNOHANG on a running child");
    CHECK(kill(pid, SIGKILL) == 0, "kill: %s", strerror(errno));
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid 2");
    status("child 2", st);

    // 3. A pipe between parent and child, both ways.
    int down[2], up[2];
    CHECK(pipe(down) == 0 && pipe(up) == 0, "pipes");
    pid = fork();
    if (pid == 0) {
        close(down[1]);
        close(up[0]);
        char buf[64] = {0};
        ssize_t n = read(down[0], buf, sizeof buf - 1);
        for (ssize_t i = 0; i < n; i++)
            buf[i] = buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i];
        write(up[1], buf, n);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    write(down[1], "through a pipe", 14);
    close(down[1]);
    char buf[64] = {0};
    ssize_t n = read(up[0], buf, sizeof buf - 1);
    printf("child 3 answered: %.*s\n", (int)n, buf);
    close(up[0]);
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid 3");
    status("child 3", st);

    // 4. fork + exec.
    pid = fork();
    if (pid == 0) {
        execl(argv[0], argv[0], "exec-child", (char *)NULL);
        _exit(127);
    }
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid 4");
    status("child 4 (exec)", st);

    // 5. Double fork: the grandchild outlives its parent (orphaned).
    int gp[2];
    CHECK(pipe(gp) == 0, "pipe 5");
    pid = fork();
    if (pid == 0) {
        pid_t middle = getpid();
        pid_t g = fork();
        if (g == 0) {
            close(gp[0]);
            // Wait until the middle child is gone: our parent changes.
            // (At most ~20 s: a failure, not a hang, if it never changes.)
            double until = now() + 20;
            while (getppid() == middle && now() < until)
                usleep(1000);
            write(gp[1], getppid() != middle ? "g" : "n", 1);
            _exit(0);
        }
        _exit(g > 0 ? 5 : 101);
    }
    close(gp[1]);
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid 5");
    status("child 5 (middle)", st);
    CHECK(read(gp[0], &c, 1) == 1 && c == 'g', "the grandchild was not orphaned (%c)", c);
    close(gp[0]);
    printf("grandchild: orphaned, ran on\n");

    // 6. No children left.
    errno = 0;
    CHECK(wait(&st) == -1 && errno == ECHILD, "wait with no children: %s", strerror(errno));
    free(heap);
    printf(failures ? "%d checks failed\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
