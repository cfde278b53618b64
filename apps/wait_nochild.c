// wait4/waitid/waitpid with no children: ECHILD at once (issue 13: on the
// hosted platform these once hung for ever, because the application's own
// process is a child of the proxy). Then one child (vfork + _exit), reaped
// with its status, and ECHILD again.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: %ld errno %s\n", what, r, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static void no_children(const char *when) {
    int st = 0;
    siginfo_t si;
    printf("-- %s\n", when);
    show("wait", wait(&st));
    show("waitpid(-1, WNOHANG)", waitpid(-1, &st, WNOHANG));
    show("waitpid(0)", waitpid(0, &st, 0));
    show("wait4(-1, __WALL)", wait4(-1, &st, __WALL, NULL));
    show("wait4(-1, __WCLONE)", wait4(-1, &st, __WCLONE, NULL));
    show("waitid(P_ALL, WEXITED)", waitid(P_ALL, 0, &si, WEXITED));
    show("waitid(P_ALL, WEXITED|WNOHANG|__WALL)",
         waitid(P_ALL, 0, &si, WEXITED | WNOHANG | __WALL));
}

int main(void) {
    no_children("before any child");
    pid_t pid = vfork();
    if (pid == 0)
        _exit(7);
    int st = 0;
    pid_t got = waitpid(-1, &st, 0);
    printf("reaped the child: %s, exited %d\n", got == pid ? "its pid" : "another pid",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    no_children("after the child was reaped");
    return 0;
}
