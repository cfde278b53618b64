// Process groups and sessions (issue 13): setpgid/getpgid/getpgrp, setsid/
// getsid, kill(0, ...) and kill(-pgid, ...) reach exactly the processes they
// name. Run it as a session leader (`setsid pgroup`), so that kill(0, ...)
// stays inside its own session; under mote its group holds the proxies (the
// application's processes) and must not hold mote's own processes.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) {                                                   \
            printf("FAILED: %s (line %d, errno %d)\n", #cond, __LINE__, errno); \
            failures++;                                                  \
        }                                                                \
    } while (0)

static volatile sig_atomic_t got_usr1, got_usr2, got_segv, segv_code;

static void on_usr1(int s) { (void)s; got_usr1++; }
static void on_usr2(int s) { (void)s; got_usr2++; }
static void on_segv(int s, siginfo_t *si, void *uc) {
    (void)s; (void)uc;
    segv_code = si->si_code;
    got_segv++;
}
static void exit_99(int s) { (void)s; _exit(99); }

static void handle(int sig, void (*fn)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigaction(sig, &sa, 0);
}

static void describe(const char *who, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", who, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", who, WTERMSIG(st));
    else
        printf("%s: status 0x%x\n", who, st);
}

// A child that runs `body` after telling the parent through a pipe that it is
// ready (its handlers are in place); `group`: its process group (-1: the
// parent's, 0: its own, else that one), set on both sides as shells do.
static pid_t child(int group, void (*body)(int ready)) {
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    pid_t c = fork();
    if (c < 0) {
        perror("fork");
        exit(1);
    }
    if (c == 0) {
        close(p[0]);
        if (group >= 0 && setpgid(0, group) != 0)
            _exit(90);
        body(p[1]);
        _exit(91);
    }
    close(p[1]);
    if (group >= 0)
        CHECK(setpgid(c, group ? group : c) == 0 || errno == EACCES);
    char b;
    CHECK(read(p[0], &b, 1) == 1);
    close(p[0]);
    return c;
}

static void ready(int fd) {
    char b = 'r';
    if (write(fd, &b, 1) != 1)
        _exit(92);
    close(fd);
}

static void wait_usr1_exit_10(int fd) {
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, &old);
    handle(SIGUSR1, on_usr1);
    ready(fd);
    while (!got_usr1)
        sigsuspend(&old);
    _exit(10);
}

static void pause_forever(int fd) {
    ready(fd);
    for (;;)
        pause();
}

static void wait_usr2_exit_11(int fd) {
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, &old);
    handle(SIGUSR2, on_usr2);
    ready(fd);
    while (!got_usr2)
        sigsuspend(&old);
    _exit(11);
}

static void usr2_exits_99(int fd) {
    handle(SIGUSR2, exit_99);
    pause_forever(fd);
}

static pid_t parent_pgid;

static void new_session(int fd) {
    pid_t s = setsid();
    int ok = s == getpid() && getsid(0) == getpid() && getpgrp() == getpid() &&
             getpgid(0) == getpid();
    int again = setsid() == -1 && errno == EPERM;
    // A process group of another session cannot be joined.
    int join = setpgid(0, parent_pgid) == -1 && errno == EPERM;
    ready(fd);
    _exit(ok && again && join ? 13 : 80 + ok * 4 + again * 2 + join);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    pid_t me = getpid();
    if (getsid(0) != me) {
        // kill(0, ...) would reach whoever started it.
        fprintf(stderr, "pgroup: run it as a session leader: setsid pgroup\n");
        return 2;
    }
    parent_pgid = getpgrp();
    printf("session leader: %s\n", getsid(0) == me ? "yes" : "no");
    printf("group leader: %s\n", getpgrp() == me ? "yes" : "no");
    CHECK(getpgid(0) == getpgrp() && getpgid(me) == getpgrp());
    CHECK(getsid(me) == getsid(0));
    errno = 0;
    int r = setsid();
    printf("setsid as a leader: %d %s\n", r, errno == EPERM ? "EPERM" : strerror(errno));
    errno = 0;
    r = setpgid(0, 0);
    printf("setpgid of a session leader: %d %s\n", r, errno == EPERM ? "EPERM" : strerror(errno));

    // A child in a group of its own, reached by kill(-pgid).
    pid_t a = child(0, wait_usr1_exit_10);
    CHECK(getpgid(a) == a);
    CHECK(getsid(a) == getsid(0));
    CHECK(kill(-a, SIGUSR1) == 0);
    int st;
    CHECK(waitpid(a, &st, 0) == a);
    describe("own group, kill(-pgid, SIGUSR1)", st);
    errno = 0;
    CHECK(getpgid(a) == -1 && errno == ESRCH);
    errno = 0;
    CHECK(kill(-a, 0) == -1 && errno == ESRCH);

    // Two children in one group, both ended by one kill(-pgid).
    pid_t b = child(0, pause_forever);
    pid_t c = child(b, pause_forever);
    CHECK(getpgid(b) == b && getpgid(c) == b);
    CHECK(kill(-b, SIGTERM) == 0);
    CHECK(waitpid(b, &st, 0) == b);
    describe("group of two, first", st);
    CHECK(waitpid(c, &st, 0) == c);
    describe("group of two, second", st);

    // kill(0, ...): the caller and its group, not a child in another group.
    pid_t d = child(-1, wait_usr2_exit_11);
    pid_t e = child(0, usr2_exits_99);
    CHECK(getpgid(d) == getpgrp());
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, &old);
    handle(SIGUSR2, on_usr2);
    CHECK(kill(0, SIGUSR2) == 0);
    while (!got_usr2)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, 0);
    printf("kill(0, SIGUSR2): the caller's handler ran %d time(s)\n", (int)got_usr2);
    CHECK(waitpid(d, &st, 0) == d);
    describe("same group, kill(0, SIGUSR2)", st);
    CHECK(kill(e, SIGTERM) == 0);
    CHECK(waitpid(e, &st, 0) == e);
    describe("other group, not reached, then SIGTERM", st);

    // kill(0, SIGSEGV): a sent fault signal, to a handler and to a child that
    // dies of it (forked before the handler is set).
    pid_t f = child(-1, pause_forever);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, 0);
    sigemptyset(&m);
    sigaddset(&m, SIGSEGV);
    sigprocmask(SIG_BLOCK, &m, &old);
    CHECK(kill(0, SIGSEGV) == 0);
    while (!got_segv)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, 0);
    printf("kill(0, SIGSEGV): handler ran, si_code %s\n", segv_code == SI_USER ? "SI_USER" : "other");
    CHECK(waitpid(f, &st, 0) == f);
    describe("same group, kill(0, SIGSEGV)", st);

    // A child's own session.
    pid_t g = child(-1, new_session);
    CHECK(waitpid(g, &st, 0) == g);
    describe("setsid in a child (13: new session and group, EPERM twice)", st);

    errno = 0;
    CHECK(waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD);
    if (failures == 0)
        printf("all checks passed\n");
    return failures != 0;
}
