/* Signals between processes and threads, and posix_spawn's attributes, one case
 * per mode (`procsig MODE`); every case prints what it saw, so a run under mote
 * is compared with a native one line for line:
 *   raise9 / raise15   end by SIGKILL / an unhandled SIGTERM (the parent sees
 *                      WIFSIGNALED, not an exit status of 137 / 143)
 *   children           children ended by signals, as their parent's waitpid sees
 *   usr1               a child sends its parent SIGUSR1: the parent's handler
 *                      runs, and its SIGCHLD handler, each waking pselect, ppoll
 *                      and epoll_pwait through their signal-mask argument
 *   spawnattr          posix_spawn's POSIX_SPAWN_CLOSE of 0, setsigmask,
 *                      setsigdef, and the descriptor numbers after it
 *   epipe              SIGPIPE ignored: EPIPE, here and in a spawned child
 *   sigwait            sigwait/sigwaitinfo in the main thread take a signal
 *                      another thread sends to the process
 *   tids               ten threads one after another have distinct tids
 *   vforkreset         a vfork child's handler changes stay in the child
 *   vforkpending       a vfork child's pending signal survives its execve
 *   nocldstop          SA_NOCLDSTOP: no SIGCHLD for a child's stop and continue
 *   itimer-sys         ITIMER_PROF counts system time, ITIMER_VIRTUAL does not
 *   itimer             ITIMER_PROF and ITIMER_VIRTUAL; an invalid timer
 * Internal modes (the children): say-fd0, say-mask, say-pending, say-usr2, send-usr1, write-pipe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static const char *self;

static pid_t spawn_self(const char *mode, posix_spawn_file_actions_t *fa, posix_spawnattr_t *at) {
    char *argv[] = {(char *)self, (char *)mode, NULL};
    pid_t pid;
    int r = posix_spawn(&pid, self, fa, at, argv, environ);
    if (r != 0) {
        printf("posix_spawn %s: %s\n", mode, strerror(r));
        exit(1);
    }
    return pid;
}

static void report(const char *what, pid_t pid) {
    int st;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR) {
    }
    if (r != pid)
        printf("%s: waitpid: %s\n", what, strerror(errno));
    else if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: status %#x\n", what, st);
}

// --- raise9, raise15, children ----------------------------------------------------

static void children(void) {
    report("raise(SIGKILL)", spawn_self("raise9", NULL, NULL));
    report("raise(SIGTERM)", spawn_self("raise15", NULL, NULL));
    report("raise(SIGUSR2)", spawn_self("say-usr2", NULL, NULL));
}

// --- usr1 -----------------------------------------------------------------------

static volatile sig_atomic_t got_usr1, got_chld;
static void on_usr1(int s) { got_usr1 += s == SIGUSR1; }
static void on_chld(int s) { got_chld += s == SIGCHLD; }

/* Blocks SIGUSR1 and SIGCHLD, spawns a child that sends SIGUSR1 to its parent
 * and exits, and waits for both with `wait_once` (which unblocks them for the
 * wait only) until both handlers ran. */
static void usr1_with(const char *name, int (*wait_once)(const sigset_t *)) {
    got_usr1 = got_chld = 0;
    sigset_t block, empty;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigemptyset(&empty);
    pid_t pid = spawn_self("send-usr1", NULL, NULL);
    int eintr = 0;
    while (!got_usr1 || !got_chld) {
        int r = wait_once(&empty);
        if (r < 0 && errno == EINTR)
            eintr++;
        else {
            printf("%s: returned %d (%s)\n", name, r, r < 0 ? strerror(errno) : "");
            break;
        }
    }
    printf("%s: SIGUSR1 handled %d, SIGCHLD handled %d, interrupted: %s\n", name, got_usr1,
           got_chld, eintr > 0 ? "yes" : "no");
    report(name, pid);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
}

static int with_pselect(const sigset_t *m) { return pselect(0, NULL, NULL, NULL, NULL, m); }
static int with_ppoll(const sigset_t *m) { return ppoll(NULL, 0, NULL, m); }
static int with_epoll_pwait(const sigset_t *m) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev;
    int r = epoll_pwait(ep, &ev, 1, -1, m);
    int e = errno;
    close(ep);
    errno = e;
    return r;
}
static int with_sigsuspend(const sigset_t *m) { return sigsuspend(m); }

static void usr1(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_chld;
    sigaction(SIGCHLD, &sa, NULL);
    usr1_with("sigsuspend", with_sigsuspend);
    usr1_with("pselect", with_pselect);
    usr1_with("ppoll", with_ppoll);
    usr1_with("epoll_pwait", with_epoll_pwait);
}

// --- spawnattr ------------------------------------------------------------------

static void spawnattr(void) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addclose(&fa, 0);
    report("POSIX_SPAWN_CLOSE 0", spawn_self("say-fd0", &fa, NULL));
    posix_spawn_file_actions_destroy(&fa);
    report("no file actions", spawn_self("say-fd0", NULL, NULL));

    posix_spawnattr_t at;
    sigset_t set;
    posix_spawnattr_init(&at);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    posix_spawnattr_setsigmask(&at, &set);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    report("setsigmask SIGUSR2", spawn_self("say-mask", NULL, &at));
    report("setsigmask SIGUSR2, raise", spawn_self("say-usr2", NULL, &at));
    posix_spawnattr_destroy(&at);

    signal(SIGUSR2, SIG_IGN);
    report("SIGUSR2 ignored, raise", spawn_self("say-usr2", NULL, NULL));
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigdefault(&at, &set);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
    report("setsigdef SIGUSR2, raise", spawn_self("say-usr2", NULL, &at));
    posix_spawnattr_destroy(&at);
    signal(SIGUSR2, SIG_DFL);

    // The descriptors the parent opens after spawns get Linux's numbers and close.
    for (int i = 0; i < 3; i++) {
        report("child", spawn_self("say-fd0", NULL, NULL));
        int fd = open("/dev/null", O_RDONLY);
        int fd2 = open("/dev/null", O_RDONLY);
        printf("after spawn %d: open gave %d and %d\n", i, fd, fd2);
        printf("close(%d): %s\n", fd, close(fd) == 0 ? "ok" : strerror(errno));
        printf("close(%d): %s\n", fd2, close(fd2) == 0 ? "ok" : strerror(errno));
    }
}

// --- epipe ----------------------------------------------------------------------

static void write_pipe(void) {
    int fds[2];
    if (pipe(fds) != 0)
        return perror("pipe");
    close(fds[0]);
    ssize_t n = write(fds[1], "x", 1);
    printf("write into a pipe without a reader: %s\n",
           n < 0 ? (errno == EPIPE ? "EPIPE" : strerror(errno)) : "written");
}

static void epipe(void) {
    signal(SIGPIPE, SIG_IGN);
    write_pipe();
    report("spawned child, SIGPIPE ignored", spawn_self("write-pipe", NULL, NULL));
    signal(SIGPIPE, SIG_DFL);
    report("spawned child, SIGPIPE default", spawn_self("write-pipe", NULL, NULL));
}

// --- sigwait --------------------------------------------------------------------

static void *send_to_process(void *arg) {
    kill(getpid(), (int)(long)arg);
    return NULL;
}

static void sigwait_case(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    int sig = 0;
    pthread_create(&t, NULL, send_to_process, (void *)(long)SIGUSR1);
    int r = sigwait(&set, &sig);
    printf("sigwait: %d, signal %d\n", r, sig);
    pthread_join(t, NULL);
    siginfo_t si;
    pthread_create(&t, NULL, send_to_process, (void *)(long)SIGUSR2);
    r = sigwaitinfo(&set, &si);
    printf("sigwaitinfo: %d, si_signo %d, si_code %d, from this process: %s\n", r, si.si_signo,
           si.si_code, si.si_pid == getpid() ? "yes" : "no");
    pthread_join(t, NULL);
}

// --- tids -----------------------------------------------------------------------

static void *say_tid(void *arg) {
    *(pid_t *)arg = (pid_t)syscall(SYS_gettid);
    return NULL;
}

static void tids(void) {
    pid_t seen[10];
    for (int i = 0; i < 10; i++) {
        pthread_t t;
        pthread_create(&t, NULL, say_tid, &seen[i]);
        pthread_join(t, NULL);
    }
    int distinct = 0;
    for (int i = 0; i < 10; i++) {
        int dup = seen[i] == getpid();
        for (int j = 0; j < i; j++)
            dup |= seen[j] == seen[i];
        distinct += !dup;
    }
    printf("ten threads one after another: %d distinct tids, none the pid's\n", distinct);
}

// --- vforkreset -----------------------------------------------------------------

static void vforkreset(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGUSR2, SIG_IGN);
    pid_t pid = vfork();
    if (pid == 0) {
        signal(SIGUSR1, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        _exit(3);
    }
    report("vfork child that reset SIGUSR1 and SIGUSR2", pid);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    printf("parent's SIGUSR1: %s\n", now.sa_handler == on_usr1 ? "its handler" : "changed");
    sigaction(SIGUSR2, NULL, &now);
    printf("parent's SIGUSR2: %s\n", now.sa_handler == SIG_IGN ? "ignored" : "changed");
    raise(SIGUSR1);
    raise(SIGUSR2);
    printf("handler ran %d time(s)\n", got_usr1);
    // posix_spawn's child resets the handled signals to their default (glibc).
    report("posix_spawn", spawn_self("say-usr2", NULL, NULL));
    raise(SIGUSR1);
    printf("handler ran %d time(s)\n", got_usr1);
}

// A vfork child that blocks SIGUSR1 and raises it, then execs: the new program
// starts with SIGUSR1 pending (Linux keeps pending signals across execve).
static void vforkpending(void) {
    pid_t pid = vfork();
    if (pid == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, NULL);
        raise(SIGUSR1);
        char *argv[] = {(char *)self, "say-pending", NULL};
        execv(self, argv);
        _exit(127);
    }
    report("vfork child with SIGUSR1 pending at execve", pid);
}

// --- itimer ---------------------------------------------------------------------

static volatile sig_atomic_t ticks;
static void on_tick(int s) { (void)s; ticks++; }

static void itimer_with(const char *name, int which, int sig) {
    ticks = 0;
    signal(sig, on_tick);
    struct itimerval it = {{0, 10000}, {0, 10000}}, now;
    int r = setitimer(which, &it, NULL);
    printf("setitimer(%s): %s\n", name, r == 0 ? "ok" : strerror(errno));
    if (r != 0)
        return;
    getitimer(which, &now);
    printf("getitimer(%s): armed %s, interval %ld us\n", name,
           now.it_value.tv_sec || now.it_value.tv_usec ? "yes" : "no", (long)now.it_interval.tv_usec);
    volatile unsigned long spin = 0;
    while (ticks < 3)
        spin++;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(which, &off, NULL);
    getitimer(which, &now);
    printf("%s: 3 ticks while computing; disarmed %s\n", name,
           now.it_value.tv_sec || now.it_value.tv_usec ? "no" : "yes");
    signal(sig, SIG_DFL);
}

static void itimer(void) {
    itimer_with("ITIMER_PROF", ITIMER_PROF, SIGPROF);
    itimer_with("ITIMER_VIRTUAL", ITIMER_VIRTUAL, SIGVTALRM);
    struct itimerval it = {{0, 0}, {1, 0}};
    errno = 0;
    int r = setitimer((__itimer_which_t)7, &it, NULL);
    printf("setitimer(7): %d %s\n", r, strerror(errno));
    r = getitimer((__itimer_which_t)7, &it);
    printf("getitimer(7): %d %s\n", r, strerror(errno));
}

// ITIMER_VIRTUAL counts user time only, ITIMER_PROF user and system time: both
// armed with the same value over a loop of system calls, SIGPROF comes first.
static volatile sig_atomic_t first;
static void on_first(int s) {
    if (!first)
        first = s;
}

static void itimer_sys(void) {
    signal(SIGPROF, on_first);
    signal(SIGVTALRM, on_first);
    int fd = open("/dev/null", O_WRONLY);
    struct itimerval it = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_VIRTUAL, &it, NULL);
    setitimer(ITIMER_PROF, &it, NULL);
    while (!first)
        if (write(fd, "x", 1) != 1)
            break;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_VIRTUAL, &off, NULL);
    setitimer(ITIMER_PROF, &off, NULL);
    close(fd);
    printf("over system calls, first: %s\n",
           first == SIGPROF ? "SIGPROF" : first == SIGVTALRM ? "SIGVTALRM" : "none");
}

// SA_NOCLDSTOP: a child that stops and continues makes SIGCHLD (CLD_STOPPED,
// CLD_CONTINUED) only without the flag; its exit always does. SIGCHLD stays
// blocked and each is taken with sigtimedwait after the event.
static void on_chld_quiet(int s) { (void)s; }

static const char *chld_code(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    struct timespec ts = {1, 0};
    siginfo_t si;
    if (sigtimedwait(&set, &si, &ts) < 0)
        return "none";
    switch (si.si_code) {
    case CLD_STOPPED: return "CLD_STOPPED";
    case CLD_CONTINUED: return "CLD_CONTINUED";
    case CLD_EXITED: return "CLD_EXITED";
    default: return "other";
    }
}

static void nocldstop_with(int flags) {
    struct sigaction sa = {0};
    sa.sa_handler = on_chld_quiet;
    sa.sa_flags = flags;
    sigaction(SIGCHLD, &sa, NULL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    int go[2];
    if (pipe(go))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        raise(SIGSTOP);
        char c;
        _exit(read(go[0], &c, 1) == 1 ? 7 : 1);
    }
    int st;
    waitpid(pid, &st, WUNTRACED);
    const char *stop = WIFSTOPPED(st) ? chld_code() : "not stopped";
    kill(pid, SIGCONT);
    waitpid(pid, &st, WCONTINUED);
    const char *cont = WIFCONTINUED(st) ? chld_code() : "not continued";
    if (write(go[1], "x", 1) != 1)
        return;
    waitpid(pid, &st, 0);
    const char *end = chld_code();
    printf("%s: stop %s, continue %s, exit %s (status %d)\n",
           flags ? "SA_NOCLDSTOP" : "no flags", stop, cont, end, WEXITSTATUS(st));
    close(go[0]);
    close(go[1]);
    sigprocmask(SIG_SETMASK, &old, NULL);
    signal(SIGCHLD, SIG_DFL);
}

static void nocldstop(void) {
    nocldstop_with(0);
    nocldstop_with(SA_NOCLDSTOP);
}

// --- the children's modes ---------------------------------------------------------

static int child_mode(const char *m) {
    if (!strcmp(m, "say-fd0")) {
        int r = fcntl(0, F_GETFD);
        printf("  fd 0 in the child: %s\n", r < 0 ? strerror(errno) : "open");
    } else if (!strcmp(m, "say-mask")) {
        sigset_t cur;
        sigprocmask(SIG_BLOCK, NULL, &cur);
        printf("  SIGUSR2 blocked in the child: %s, SIGUSR1: %s\n",
               sigismember(&cur, SIGUSR2) ? "yes" : "no", sigismember(&cur, SIGUSR1) ? "yes" : "no");
    } else if (!strcmp(m, "say-usr2")) {
        struct sigaction now;
        sigaction(SIGUSR2, NULL, &now);
        printf("  child's SIGUSR2: %s\n", now.sa_handler == SIG_IGN ? "ignored"
                                         : now.sa_handler == SIG_DFL ? "default"
                                                                     : "a handler");
        raise(SIGUSR2);
        printf("  child alive after raise(SIGUSR2)\n");
        return 4;
    } else if (!strcmp(m, "say-pending")) {
        sigset_t p;
        sigpending(&p);
        printf("  SIGUSR1 pending after execve: %s\n", sigismember(&p, SIGUSR1) ? "yes" : "no");
    } else if (!strcmp(m, "send-usr1")) {
        kill(getppid(), SIGUSR1);
    } else if (!strcmp(m, "write-pipe")) {
        write_pipe();
    } else if (!strcmp(m, "raise9")) {
        raise(SIGKILL);
    } else if (!strcmp(m, "raise15")) {
        raise(SIGTERM);
    } else {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    self = argv[0];
    if (argc != 2) {
        fprintf(stderr, "usage: procsig MODE\n");
        return 2;
    }
    const char *m = argv[1];
    if (!strcmp(m, "children"))
        children();
    else if (!strcmp(m, "usr1"))
        usr1();
    else if (!strcmp(m, "spawnattr"))
        spawnattr();
    else if (!strcmp(m, "epipe"))
        epipe();
    else if (!strcmp(m, "sigwait"))
        sigwait_case();
    else if (!strcmp(m, "tids"))
        tids();
    else if (!strcmp(m, "vforkreset"))
        vforkreset();
    else if (!strcmp(m, "itimer"))
        itimer();
    else if (!strcmp(m, "vforkpending"))
        vforkpending();
    else if (!strcmp(m, "nocldstop"))
        nocldstop();
    else if (!strcmp(m, "itimer-sys"))
        itimer_sys();
    else {
        int r = child_mode(m);
        if (r < 0) {
            fprintf(stderr, "procsig: unknown mode %s\n", m);
            return 2;
        }
        return r;
    }
    return 0;
}
