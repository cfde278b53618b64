/* Resource limits that end in a signal, natively and under mote.
 *
 * `limits fsize FILE [handler|ignore|block]`: RLIMIT_FSIZE of 4096 bytes, then
 * two writes of 8192 bytes to FILE: the first is cut to 4096, the second passes
 * the limit, so Linux raises SIGXFSZ for the writing thread and the write fails
 * with EFBIG. Without an argument the default action ends the program (153);
 * `handler` catches it (and says whether si_code is SI_USER and si_pid its own),
 * `ignore` ignores it, `block` blocks it and finds it pending afterwards; those
 * three print the second write's result and exit 0. `thread` makes the writes
 * from a second thread while the main thread blocks SIGXFSZ: the signal is the
 * writing thread's, whose default action ends the program.
 *
 * `limits cpu [handler|hard]`: RLIMIT_CPU of 1 second, then computes. Linux sends
 * SIGXCPU when the process's CPU time passes it: the default action ends the
 * program (152); `handler` catches it, shows the soft limit Linux raised by a
 * second, and exits 0; `hard` also sets a hard limit of 2 seconds and computes
 * on after its handler ran, until SIGKILL ends it there (137).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t caught, code_user, from_self;

static void on_signal(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    caught = sig;
    code_user = si->si_code == SI_USER;
    from_self = si->si_pid == getpid();
}

static void say(const char *s) {
    /* Unbuffered: the program may be killed right after. */
    (void)!write(1, s, strlen(s));
}

static void catch(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static const char *path;

static void *writes(void *arg) {
    (void)arg;
    static char buf[8192];
    memset(buf, 'x', sizeof buf);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        say("open: failed\n");
        return NULL;
    }
    char line[64];
    ssize_t n = write(fd, buf, sizeof buf);
    snprintf(line, sizeof line, "write: %zd\n", n);
    say(line);
    n = write(fd, buf, sizeof buf);
    snprintf(line, sizeof line, "write: %s\n",
             n == -1 && errno == EFBIG ? "EFBIG" : n == -1 ? strerror(errno) : "no error");
    say(line);
    close(fd);
    return NULL;
}

static int fsize(const char *how) {
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        say("setrlimit: failed\n");
        return 2;
    }
    sigset_t xfsz;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    if (strcmp(how, "handler") == 0)
        catch(SIGXFSZ);
    else if (strcmp(how, "ignore") == 0)
        signal(SIGXFSZ, SIG_IGN);
    else if (strcmp(how, "block") == 0)
        sigprocmask(SIG_BLOCK, &xfsz, NULL);
    if (strcmp(how, "thread") == 0) {
        pthread_t t;
        sigset_t old;
        /* The new thread starts unblocked; then the main thread blocks it. */
        pthread_create(&t, NULL, writes, NULL);
        pthread_sigmask(SIG_BLOCK, &xfsz, &old);
        pthread_join(t, NULL);
        say("thread: survived\n");
        return 0;
    }
    writes(NULL);
    if (strcmp(how, "handler") == 0) {
        char line[96];
        snprintf(line, sizeof line, "caught %s; SI_USER: %s; own pid: %s\n",
                 caught == SIGXFSZ ? "SIGXFSZ" : "nothing", code_user ? "yes" : "no",
                 from_self ? "yes" : "no");
        say(line);
    } else if (strcmp(how, "block") == 0) {
        sigset_t pending;
        sigpending(&pending);
        say(sigismember(&pending, SIGXFSZ) ? "pending: SIGXFSZ\n" : "pending: nothing\n");
    }
    return 0;
}

static void on_xcpu(int sig) {
    (void)sig;
    say("caught SIGXCPU\n");
}

static int cpu(const char *how) {
    int handler = strcmp(how, "handler") == 0, hard = strcmp(how, "hard") == 0;
    if (handler)
        catch(SIGXCPU);
    if (hard)
        signal(SIGXCPU, on_xcpu);
    struct rlimit rl;
    getrlimit(RLIMIT_CPU, &rl);
    rl.rlim_cur = 1;
    if (hard)
        rl.rlim_max = 2;
    if (setrlimit(RLIMIT_CPU, &rl) != 0) {
        say("setrlimit: failed\n");
        return 2;
    }
    say("computing\n");
    volatile unsigned long x = 1;
    while (!caught)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    say(caught == SIGXCPU ? "caught SIGXCPU\n" : "caught something else\n");
    /* Linux raises the soft limit a second for the next SIGXCPU. */
    getrlimit(RLIMIT_CPU, &rl);
    char line[64];
    snprintf(line, sizeof line, "soft limit now: %llu\n", (unsigned long long)rl.rlim_cur);
    say(line);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "fsize") == 0) {
        path = argv[2];
        return fsize(argc > 3 ? argv[3] : "");
    }
    if (argc >= 2 && strcmp(argv[1], "cpu") == 0)
        return cpu(argc > 2 ? argv[2] : "");
    say("usage: limits fsize FILE [handler|ignore|block|thread] | limits cpu [handler|hard]\n");
    return 2;
}
