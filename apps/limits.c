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
 *
 * `limits as`: RLIMIT_AS set by the program itself (soft 512 MiB, hard left):
 * getrlimit reads it back; a PROT_NONE reservation of 1 GiB, malloc of 768
 * MiB, sbrk of 600 MiB and an mremap growing to 1 GiB fail with ENOMEM; 64 MiB maps, a read() into
 * it and a new thread work; 32 MiB pieces map until ENOMEM, one munmapped
 * makes room for one more; the soft limit raised again, 1 GiB is reserved.
 *
 * `limits nofile`: RLIMIT_NOFILE of 8 set by the program: opens until EMFILE
 * (descriptors 3 to 7), dup EMFILE, dup2 onto 8 EBADF, fcntl(F_DUPFD, 8)
 * EINVAL; with one number free pipe and socketpair EMFILE, open works, and a
 * MAP_SHARED mapping of that file works; the limit raised again, open works.
 *
 * `limits start`: the soft RLIMIT_AS and RLIMIT_NOFILE the program started
 * with (`ulimit -Sv`, `ulimit -Sn` before it), in KiB and descriptors, and
 * whether 2 GiB map and 16 descriptors open under them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

static const char *err(long r) {
    if (r >= 0)
        return "ok";
    return errno == ENOMEM ? "ENOMEM" : errno == EMFILE ? "EMFILE" : errno == EBADF ? "EBADF"
           : errno == EINVAL ? "EINVAL" : strerror(errno);
}

static void *thread_main(void *arg) { return arg; }

#define MiB (1024UL * 1024)

static long map(unsigned long len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? -1 : (long)p;
}

/* A reservation: counted by RLIMIT_AS, but it takes no memory. */
static long reserve(unsigned long len) {
    void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? -1 : (long)p;
}

static int as(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = 512 * MiB;
    if (setrlimit(RLIMIT_AS, &rl)) {
        perror("setrlimit");
        return 2;
    }
    getrlimit(RLIMIT_AS, &rl);
    printf("soft: %lu MiB, hard unchanged: %s\n", (unsigned long)(rl.rlim_cur / MiB),
           rl.rlim_max == hard ? "yes" : "no");
    printf("reserve 1 GiB: %s\n", err(reserve(1024 * MiB)));
    long m = map(64 * MiB);
    printf("mmap 64 MiB: %s\n", err(m));
    if (m < 0)
        return 1;
    int fd = open("/proc/self/exe", O_RDONLY);
    printf("read into it: %ld\n", (long)read(fd, (char *)m + 32 * MiB, 64));
    close(fd);
    pthread_t t;
    int e = pthread_create(&t, NULL, thread_main, NULL);
    printf("pthread_create: %s\n", e ? strerror(e) : "ok");
    if (!e)
        pthread_join(t, NULL);
    printf("malloc 768 MiB: %s\n", malloc(768 * MiB) ? "memory" : "NULL");
    void *b = sbrk(600 * MiB);
    printf("sbrk 600 MiB: %s\n", b == (void *)-1 ? err(-1) : "ok");
    void *g = mremap((void *)m, 64 * MiB, 1024 * MiB, MREMAP_MAYMOVE);
    printf("mremap to 1 GiB: %s\n", g == MAP_FAILED ? err(-1) : "ok");
    long last = 0;
    int n = 0;
    for (; n < 64; n++) {
        long p = map(32 * MiB);
        if (p < 0)
            break;
        last = p;
    }
    printf("32 MiB pieces until: %s (some mapped: %s)\n", n < 64 ? err(-1) : "none failed",
           n >= 4 ? "yes" : "no");
    munmap((void *)last, 32 * MiB);
    printf("after munmap, 32 MiB: %s\n", err(map(32 * MiB)));
    rl.rlim_cur = rl.rlim_max;
    printf("soft raised: %s\n", err(setrlimit(RLIMIT_AS, &rl)));
    printf("reserve 1 GiB: %s\n", err(reserve(1024 * MiB)));
    return 0;
}

static int nofile(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t soft = rl.rlim_cur;
    rl.rlim_cur = 8;
    if (setrlimit(RLIMIT_NOFILE, &rl)) {
        perror("setrlimit");
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("soft: %lu\n", (unsigned long)rl.rlim_cur);
    int n = 0, fd, last = -1;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0 && n < 100) {
        last = fd;
        n++;
    }
    printf("opened %d (last %d), then %s\n", n, last, err(fd));
    printf("dup: %s\n", err(dup(0)));
    printf("dup2 onto 8: %s\n", err(dup2(0, 8)));
    printf("dup2 onto 7: %s\n", err(dup2(0, 7)));
    printf("fcntl(F_DUPFD, 8): %s\n", err(fcntl(0, F_DUPFD, 8)));
    printf("fcntl(F_DUPFD, 3): %s\n", err(fcntl(0, F_DUPFD, 3)));
    close(7);
    int p[2];
    printf("pipe with one free: %s\n", err(pipe(p)));
    printf("socketpair with one free: %s\n", err(socketpair(AF_UNIX, SOCK_STREAM, 0, p)));
    fd = open("/proc/self/exe", O_RDONLY);
    printf("open with one free: %s (%d)\n", err(fd), fd);
    char *x = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    printf("MAP_SHARED of it: %s\n",
           x == MAP_FAILED ? err(-1) : memcmp(x, "\177ELF", 4) ? "wrong bytes" : "ELF");
    close(6);
    close(fd);
    printf("pipe with two free: %s\n", err(pipe(p)));
    rl.rlim_cur = soft;
    printf("soft raised: %s\n", err(setrlimit(RLIMIT_NOFILE, &rl)));
    printf("open: %s\n", err(open("/dev/null", O_RDONLY)));
    return 0;
}

static int start(void) {
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    if (rl.rlim_cur == RLIM_INFINITY)
        printf("RLIMIT_AS: unlimited\n");
    else
        printf("RLIMIT_AS: %lu KiB\n", (unsigned long)(rl.rlim_cur / 1024));
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("RLIMIT_NOFILE: %lu\n", (unsigned long)rl.rlim_cur);
    printf("mmap 2 GiB: %s\n", err(map(2048 * MiB)));
    int n = 0, fd = 0;
    while (n < 16 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        n++;
    printf("opened %d of 16%s%s\n", n, n < 16 ? ", then " : "", n < 16 ? err(fd) : "");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "as") == 0)
        return as();
    if (argc == 2 && strcmp(argv[1], "nofile") == 0)
        return nofile();
    if (argc == 2 && strcmp(argv[1], "start") == 0)
        return start();
    if (argc >= 3 && strcmp(argv[1], "fsize") == 0) {
        path = argv[2];
        return fsize(argc > 3 ? argv[3] : "");
    }
    if (argc >= 2 && strcmp(argv[1], "cpu") == 0)
        return cpu(argc > 2 ? argv[2] : "");
    say("usage: limits fsize FILE [handler|ignore|block|thread] | limits cpu [handler|hard] | "
        "limits as | limits nofile | limits start\n");
    return 2;
}
