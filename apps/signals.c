/* Signals, natively and under mote: the same output.
 *
 * Synchronous faults delivered to handlers with the right siginfo (SIGSEGV with
 * si_addr and SEGV_MAPERR/SEGV_ACCERR, recovered with siglongjmp; a handler that
 * fixes the page and returns; SIGFPE, SIGILL, SIGTRAP), raise and kill to itself,
 * a blocked signal delivered on unblock, sigpending, sigsuspend, sigtimedwait,
 * SA_SIGINFO/SA_ONSTACK/SA_NODEFER/SA_RESETHAND, FP state kept across a handler,
 * and the timers: setitimer waking pause(), alarm interrupting a read on a pipe
 * (EINTR without SA_RESTART, restarted with it) and nanosleep (EINTR, time left).
 * Prints only what must be the same everywhere; exits 1 on the first failed check.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static sigjmp_buf jb;
static volatile sig_atomic_t got_sig, got_code, count_usr1, count_alrm;
static void *volatile got_addr;
static volatile uintptr_t handler_sp;
static int pipefd[2];

static void on_fault(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

static void install_plain(int sig, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

static const char *segv_code(int c) {
    return c == SEGV_MAPERR ? "SEGV_MAPERR" : c == SEGV_ACCERR ? "SEGV_ACCERR" : "other";
}

static void test_segv(void) {
    install(SIGSEGV, on_fault, 0);
    got_sig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile int *)0x1234 = 1;
        printf("FAIL: no fault\n");
        failures++;
    }
    printf("SIGSEGV at %p: %s, recovered with siglongjmp\n", got_addr, segv_code(got_code));
    CHECK(got_sig == SIGSEGV && got_addr == (void *)0x1234 && got_code == SEGV_MAPERR,
          "SIGSEGV siginfo (unmapped)");

    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ro != MAP_FAILED, "mmap");
    got_sig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        ro[100] = 1;
        printf("FAIL: no fault on a read-only page\n");
        failures++;
    }
    printf("SIGSEGV writing a read-only page: %s, si_addr is the byte: %s\n",
           segv_code(got_code), got_addr == ro + 100 ? "yes" : "no");
    CHECK(got_code == SEGV_ACCERR && got_addr == ro + 100, "SIGSEGV siginfo (read-only)");
    /* The mask was restored by siglongjmp: SIGSEGV is deliverable again. */
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    CHECK(!sigismember(&cur, SIGSEGV), "siglongjmp restored the mask");
    munmap(ro, 4096);
}

static void test_sigbus(void) {
    int fd = memfd_create("signals", 0);
    CHECK(fd >= 0 && ftruncate(fd, 100) == 0, "memfd");
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED, "mmap shared");
    install(SIGBUS, on_fault, 0);
    got_sig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        m[4096] = 1;
        printf("FAIL: no SIGBUS\n");
        failures++;
    }
    printf("SIGBUS beyond the end of a shared file: %s, si_addr is the byte: %s\n",
           got_code == BUS_ADRERR ? "BUS_ADRERR" : "wrong", got_addr == m + 4096 ? "yes" : "no");
    CHECK(got_sig == SIGBUS && got_code == BUS_ADRERR && got_addr == m + 4096, "SIGBUS");
    signal(SIGBUS, SIG_DFL);
    munmap(m, 8192);
    close(fd);
}

static char *fix_page;
static void on_fix(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    got_addr = si->si_addr;
    mprotect(fix_page, 4096, PROT_READ | PROT_WRITE);
}

static void test_segv_return(void) {
    fix_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    install(SIGSEGV, on_fix, 0);
    /* Callee-saved registers and the stack must survive the handler's return. */
    volatile long a = 11, b = 22, c = 33;
    fix_page[8] = 42;
    printf("handler fixed the page and returned: byte=%d regs=%ld\n", fix_page[8], a + b + c);
    CHECK(fix_page[8] == 42 && got_addr == fix_page + 8 && a + b + c == 66, "retry after handler");
    signal(SIGSEGV, SIG_DFL);
    munmap(fix_page, 4096);
}

static void test_other_faults(void) {
    install(SIGFPE, on_fault, 0);
    got_sig = 0;
    if (sigsetjmp(jb, 1) == 0) {
        volatile int zero = 0;
        volatile int x = 7 / zero;
        (void)x;
    }
    printf("SIGFPE: %s\n", got_sig == SIGFPE && got_code == FPE_INTDIV ? "FPE_INTDIV" : "wrong");
    CHECK(got_sig == SIGFPE && got_code == FPE_INTDIV, "SIGFPE");

    install(SIGILL, on_fault, 0);
    got_sig = 0;
    static void *volatile at;
    if (sigsetjmp(jb, 1) == 0) {
        void *p;
        __asm__ volatile("lea 0f(%%rip), %0\n\tmov %0, %1\n0: ud2" : "=&r"(p), "=m"(at));
    }
    printf("SIGILL: %s, si_addr is the instruction: %s\n",
           got_code == ILL_ILLOPN ? "ILL_ILLOPN" : "wrong", got_addr == at ? "yes" : "no");
    CHECK(got_sig == SIGILL && got_code == ILL_ILLOPN && got_addr == at, "SIGILL");
}

static void on_trap(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
}

static void test_trap(void) {
    install(SIGTRAP, on_trap, 0);
    got_sig = 0;
    __asm__ volatile("int3");
    printf("SIGTRAP from int3, handler returned: %s\n", got_sig == SIGTRAP ? "yes" : "no");
    CHECK(got_sig == SIGTRAP && got_code == SI_KERNEL, "SIGTRAP");
}

static void on_usr1(int sig) {
    (void)sig;
    count_usr1++;
}

static volatile pid_t got_pid;
static void on_usr2(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_pid = si->si_pid;
}

static void test_raise_kill(void) {
    install_plain(SIGUSR1, on_usr1, 0);
    count_usr1 = 0;
    raise(SIGUSR1);
    printf("raise(SIGUSR1): handler ran %d time(s)\n", (int)count_usr1);
    CHECK(count_usr1 == 1, "raise");

    install(SIGUSR2, on_usr2, 0);
    got_sig = 0;
    kill(getpid(), SIGUSR2);
    printf("kill(getpid(), SIGUSR2): SI_USER from ourselves: %s\n",
           got_sig == SIGUSR2 && got_code == SI_USER && got_pid == getpid() ? "yes" : "no");
    CHECK(got_sig == SIGUSR2 && got_code == SI_USER && got_pid == getpid(), "kill siginfo");

    union sigval v = {.sival_int = 1234};
    got_sig = 0;
    sigqueue(getpid(), SIGUSR2, v);
    printf("sigqueue: SI_QUEUE: %s\n", got_code == SI_QUEUE ? "yes" : "no");
    CHECK(got_sig == SIGUSR2 && got_code == SI_QUEUE, "sigqueue");
}

static void test_blocked(void) {
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    count_usr1 = 0;
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    raise(SIGUSR1); /* standard signals do not queue */
    sigpending(&pend);
    printf("blocked SIGUSR1: pending=%d, handler ran %d time(s)\n", sigismember(&pend, SIGUSR1),
           (int)count_usr1);
    CHECK(sigismember(&pend, SIGUSR1) && count_usr1 == 0, "blocked stays pending");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("after unblocking: handler ran %d time(s)\n", (int)count_usr1);
    CHECK(count_usr1 == 1, "delivered on unblock");

    /* sigtimedwait takes a blocked pending signal without running the handler. */
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    siginfo_t si;
    int s = sigtimedwait(&set, &si, &(struct timespec){1, 0});
    printf("sigtimedwait: %s, handler ran %d time(s)\n", s == SIGUSR1 ? "SIGUSR1" : "wrong",
           (int)count_usr1);
    CHECK(s == SIGUSR1 && si.si_signo == SIGUSR1 && count_usr1 == 1, "sigtimedwait");
    s = sigtimedwait(&set, &si, &(struct timespec){0, 1000000});
    printf("sigtimedwait with nothing pending: %s\n", s == -1 && errno == EAGAIN ? "EAGAIN" : "wrong");
    CHECK(s == -1 && errno == EAGAIN, "sigtimedwait timeout");

    /* sigsuspend with SIGUSR1 unblocked, the signal already pending. */
    raise(SIGUSR1);
    sigset_t none;
    sigemptyset(&none);
    s = sigsuspend(&none);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("sigsuspend: %s, handler ran %d time(s), mask back: %s\n",
           s == -1 && errno == EINTR ? "EINTR" : "wrong", (int)count_usr1,
           sigismember(&cur, SIGUSR1) ? "yes" : "no");
    CHECK(s == -1 && errno == EINTR && count_usr1 == 2 && sigismember(&cur, SIGUSR1), "sigsuspend");
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

static volatile int nested_depth, max_depth, runs;
static void on_nodefer(int sig) {
    runs++;
    nested_depth++;
    if (nested_depth > max_depth)
        max_depth = nested_depth;
    if (runs < 3)
        raise(sig);
    nested_depth--;
}

static volatile int alt_onstack_flag, alt_change_errno;
static void on_altstack(int sig) {
    (void)sig;
    int here;
    handler_sp = (uintptr_t)&here;
    static char other_stack[16384];
    stack_t cur, other = {.ss_sp = other_stack, .ss_size = sizeof other_stack, .ss_flags = 0};
    sigaltstack(NULL, &cur);
    alt_onstack_flag = cur.ss_flags & SS_ONSTACK;
    /* Changing the alternate stack while running on it is refused. */
    alt_change_errno = 0;
    if (alt_onstack_flag)
        alt_change_errno = sigaltstack(&other, NULL) == -1 ? errno : 0;
}

static void test_flags(void) {
    install_plain(SIGUSR1, on_nodefer, SA_NODEFER);
    max_depth = runs = 0;
    raise(SIGUSR1);
    printf("SA_NODEFER: handler ran %d times, nested %d deep\n", runs, max_depth);
    CHECK(max_depth == 3 && runs == 3, "SA_NODEFER");

    install_plain(SIGUSR1, on_nodefer, 0);
    max_depth = runs = 0;
    raise(SIGUSR1);
    printf("without SA_NODEFER: handler ran %d times, nested %d deep\n", runs, max_depth);
    CHECK(max_depth == 1 && runs == 3, "deferred while running");

    install_plain(SIGUSR1, on_usr1, SA_RESETHAND);
    raise(SIGUSR1);
    struct sigaction old;
    sigaction(SIGUSR1, NULL, &old);
    printf("SA_RESETHAND: back to SIG_DFL: %s\n", old.sa_handler == SIG_DFL ? "yes" : "no");
    CHECK(old.sa_handler == SIG_DFL, "SA_RESETHAND");

    static char alt[65536];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0, "sigaltstack");
    install_plain(SIGUSR2, on_altstack, SA_ONSTACK);
    raise(SIGUSR2);
    int on = handler_sp > (uintptr_t)alt && handler_sp <= (uintptr_t)alt + sizeof alt;
    printf("SA_ONSTACK: handler ran on the alternate stack: %s; sigaltstack there says "
           "SS_ONSTACK: %s, refuses a change with EPERM: %s\n",
           on ? "yes" : "no", alt_onstack_flag ? "yes" : "no",
           alt_change_errno == EPERM ? "yes" : "no");
    CHECK(on && alt_onstack_flag && alt_change_errno == EPERM, "SA_ONSTACK");
    install_plain(SIGUSR2, on_altstack, 0);
    raise(SIGUSR2);
    on = handler_sp > (uintptr_t)alt && handler_sp <= (uintptr_t)alt + sizeof alt;
    printf("without SA_ONSTACK: on the normal stack: %s\n", on ? "no" : "yes");
    CHECK(!on, "normal stack");
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
}

static volatile int on_alt;
static char overflow_alt[65536];
static void on_overflow(int sig, siginfo_t *si, void *uc) {
    (void)si;
    (void)uc;
    int here;
    got_sig = sig;
    on_alt = (char *)&here > overflow_alt && (char *)&here <= overflow_alt + sizeof overflow_alt;
    siglongjmp(jb, 1);
}

static volatile int depth_limit = 1 << 30;
static int recurse(volatile char *p, int depth) {
    volatile char buf[4096];
    buf[0] = p ? p[0] + 1 : 0;
    if (depth >= depth_limit)
        return buf[0];
    return recurse(buf, depth + 1) + buf[100];
}

static void test_stack_overflow(void) {
    stack_t ss = {.ss_sp = overflow_alt, .ss_size = sizeof overflow_alt, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install(SIGSEGV, on_overflow, SA_ONSTACK);
    got_sig = 0;
    if (sigsetjmp(jb, 1) == 0)
        recurse(NULL, 0);
    printf("stack overflow: SIGSEGV handled on the alternate stack: %s\n",
           got_sig == SIGSEGV && on_alt ? "yes" : "no");
    CHECK(got_sig == SIGSEGV && on_alt, "stack overflow on the alternate stack");
    signal(SIGSEGV, SIG_DFL);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
}

static volatile double fp_junk;
static void on_fp(int sig) {
    (void)sig;
    volatile double x = 1.0;
    for (int i = 0; i < 10; i++)
        x = x * 3.5 + 0.25;
    fp_junk = x;
}

static void test_fp_state(void) {
    install_plain(SIGUSR1, on_fp, 0);
    double a = 1.5, acc = 0;
    for (int i = 0; i < 100; i++) {
        acc += a * i;
        if (i == 50)
            raise(SIGUSR1);
    }
    printf("FP state across a handler: %.1f\n", acc);
    CHECK(acc == 7425.0, "FP state");
}

static void on_alrm(int sig) {
    (void)sig;
    count_alrm++;
}

static void on_alrm_write(int sig) {
    (void)sig;
    count_alrm++;
    if (write(pipefd[1], "x", 1) != 1)
        _exit(3);
}

static void arm(long usec) {
    struct itimerval it = {.it_value = {usec / 1000000, usec % 1000000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* mote's direct system-call entry (apps/latency.c); natively, syscall(). */
#define AT_MOTE_SYSCALL 0x6d6f7465UL
typedef long (*direct_fn)(long, long, long, long, long, long, long);

static void test_direct_entry(void) {
    direct_fn direct = (direct_fn)getauxval(AT_MOTE_SYSCALL);
    install_plain(SIGUSR1, on_usr1, 0);
    count_usr1 = 0;
    long r = direct ? direct(SYS_kill, getpid(), SIGUSR1, 0, 0, 0, 0)
                    : syscall(SYS_kill, getpid(), SIGUSR1);
    printf("kill through the direct entry: returned %ld, handler ran %d time(s)\n", r,
           (int)count_usr1);
    CHECK(r == 0 && count_usr1 == 1, "direct entry delivery");
    /* A read the handler interrupts and SA_RESTART restarts, through the entry. */
    install_plain(SIGALRM, on_alrm_write, SA_RESTART);
    char c = 0;
    arm(50000);
    r = direct ? direct(SYS_read, pipefd[0], (long)&c, 1, 0, 0, 0)
               : syscall(SYS_read, pipefd[0], &c, 1);
    printf("read through the direct entry, restarted after the handler: %ld byte(s)\n", r);
    CHECK(r == 1 && c == 'x', "direct entry restart");
    /* glibc's syscall() site: trapped the first time, a patched site after. */
    for (int i = 0; i < 2; i++) {
        c = 0;
        arm(50000);
        r = syscall(SYS_read, pipefd[0], &c, 1);
        printf("read through syscall() (%d), restarted after the handler: %ld byte(s)\n", i, r);
        CHECK(r == 1 && c == 'x', "syscall() restart");
    }
    signal(SIGALRM, SIG_DFL);
}

static volatile int timer_value;
static void on_timer(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    timer_value = si->si_value.sival_int;
}

static void test_timer_create(void) {
    install(SIGUSR2, on_timer, 0);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR2;
    sev.sigev_value.sival_int = 4242;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0, "timer_create");
    struct itimerspec its = {.it_value = {0, 30000000}};
    got_sig = 0;
    timer_settime(t, 0, &its, NULL);
    int r = pause();
    printf("timer_create: SIGUSR2 woke pause(): %s, SI_TIMER with the value: %s\n",
           r == -1 && errno == EINTR ? "EINTR" : "wrong",
           got_code == SI_TIMER && timer_value == 4242 ? "yes" : "no");
    CHECK(got_sig == SIGUSR2 && got_code == SI_TIMER && timer_value == 4242, "timer_create");
    timer_delete(t);
}

static void test_timers(void) {
    install_plain(SIGALRM, on_alrm, 0);
    count_alrm = 0;
    arm(50000);
    int r = pause();
    printf("setitimer woke pause(): %s, SIGALRM handled %d time(s)\n",
           r == -1 && errno == EINTR ? "EINTR" : "wrong", (int)count_alrm);
    CHECK(r == -1 && errno == EINTR && count_alrm == 1, "setitimer + pause");

    count_alrm = 0;
    alarm(1);
    while (count_alrm == 0) {
        /* compute, no system calls */
    }
    printf("alarm interrupted a compute loop\n");

    if (pipe(pipefd) != 0) {
        perror("pipe");
        exit(1);
    }
    char c;
    install_plain(SIGALRM, on_alrm, 0);
    arm(50000);
    ssize_t n = read(pipefd[0], &c, 1);
    printf("read on an empty pipe, SIGALRM without SA_RESTART: %s\n",
           n == -1 && errno == EINTR ? "EINTR" : "wrong");
    CHECK(n == -1 && errno == EINTR, "EINTR");

    install_plain(SIGALRM, on_alrm_write, SA_RESTART);
    arm(50000);
    n = read(pipefd[0], &c, 1);
    printf("the same with SA_RESTART (the handler writes a byte): read %zd byte(s)\n", n);
    CHECK(n == 1 && c == 'x', "SA_RESTART");

    install_plain(SIGALRM, on_alrm, SA_RESTART);
    arm(50000);
    struct timespec req = {5, 0}, rem = {0, 0};
    r = nanosleep(&req, &rem);
    printf("nanosleep(5 s) interrupted: %s, time left between 4 and 5 s: %s\n",
           r == -1 && errno == EINTR ? "EINTR" : "wrong",
           rem.tv_sec >= 4 && rem.tv_sec <= 5 ? "yes" : "no");
    CHECK(r == -1 && errno == EINTR && rem.tv_sec >= 4, "nanosleep");

    /* An ignored signal interrupts nothing. */
    signal(SIGALRM, SIG_IGN);
    arm(20000);
    req = (struct timespec){0, 100000000};
    r = nanosleep(&req, NULL);
    printf("ignored SIGALRM during nanosleep: %s\n", r == 0 ? "slept on" : "wrong");
    CHECK(r == 0, "ignored SIGALRM");
    signal(SIGALRM, SIG_DFL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    test_segv();
    test_segv_return();
    test_sigbus();
    test_other_faults();
    test_trap();
    test_raise_kill();
    test_blocked();
    test_flags();
    test_fp_state();
    test_stack_overflow();
    test_timers();
    test_timer_create();
    test_direct_entry();
    if (failures) {
        printf("%d check(s) failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
