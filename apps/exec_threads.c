// execve from a process with other threads (issue 13), as Linux's de_thread:
// every other thread ends — one spinning, one blocked in a read on a pipe
// nobody writes, one in a futex wait (pthread_cond_wait), one in nanosleep,
// one making system calls in a loop (forwarded and local ones) —
// and none of them returns to its code (each would print if it did); the new
// program runs with the old pid, and its one thread's id is the pid, also when
// a thread other than the main one called execve. A failing execve (no such
// program) leaves every thread running.
//
//   exec_threads main     the main thread execs while the others run
//   exec_threads thread   a second thread execs, the main thread in pthread_join
//   exec_threads fail     a thread's execve fails: the others go on
//   exec_threads spawn    the main thread execs while another spawns children
//                         in a loop (posix_spawn: a vfork child on this memory)
//   exec_threads after PID FROM   (the new program)
//
// Prints only what a native run prints too (no ids).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_long spins;
static atomic_int stop;
static atomic_int ready;
static pid_t tids[5];
static int pipefd[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char results[5][96];
static const char *mode;

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

// Said only if a thread comes back from where execve should have ended it.
static void came_back(const char *who) {
    printf("%s came back to its code\n", who);
    fflush(stdout);
}

static void *spinner(void *arg) {
    (void)arg;
    tids[0] = gettid_();
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&stop))
        atomic_fetch_add(&spins, 1);
    snprintf(results[0], sizeof results[0], "spinner stopped");
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    tids[1] = gettid_();
    atomic_fetch_add(&ready, 1);
    char c = 0;
    ssize_t n = read(pipefd[0], &c, 1);
    if (strcmp(mode, "fail"))
        came_back("reader");
    snprintf(results[1], sizeof results[1], "reader read %zd byte(s): %c", n, c);
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    tids[2] = gettid_();
    pthread_mutex_lock(&mu);
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&stop))
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    if (strcmp(mode, "fail"))
        came_back("futex waiter");
    snprintf(results[2], sizeof results[2], "futex waiter woken");
    return NULL;
}

static void on_usr1(int sig) { (void)sig; }

extern char **environ;
static atomic_int spawned;

static void *spawner(void *arg) {
    (void)arg;
    for (;;) {
        pid_t pid;
        char *argv[] = {"true", NULL};
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) == 0)
            waitpid(pid, NULL, 0);
        atomic_fetch_add(&spawned, 1);
    }
    return NULL;
}

static atomic_long calls;

static void *caller(void *arg) {
    (void)arg;
    tids[4] = gettid_();
    atomic_fetch_add(&ready, 1);
    struct timespec ts;
    while (!atomic_load(&stop)) {
        syscall(SYS_getppid);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        atomic_fetch_add(&calls, 1);
    }
    snprintf(results[4], sizeof results[4], "caller stopped");
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    tids[3] = gettid_();
    atomic_fetch_add(&ready, 1);
    struct timespec ts = {1000, 0};
    int r = nanosleep(&ts, NULL);
    int e = errno;
    if (strcmp(mode, "fail"))
        came_back("sleeper");
    snprintf(results[3], sizeof results[3], "sleeper: nanosleep %d, %s", r, strerror(e));
    return NULL;
}

// The state letter of thread `tid`, waiting (bounded) until it is `want`.
static char state_of(pid_t tid, char want) {
    char path[64], buf[512], s = '?';
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    for (int i = 0; i < 4000; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return '?';
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        char *close_ = strrchr(buf, ')');
        s = close_ && close_[1] ? close_[2] : '?';
        if (s == want)
            break;
        usleep(5000);
    }
    return s;
}

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static pthread_t th[5];

// Start the five threads and wait until the blocking ones block and the
// spinner spins and the caller calls.
static void start_threads(void) {
    if (pipe(pipefd))
        exit(1);
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1; // no SA_RESTART: the sleep returns EINTR
    sigaction(SIGUSR1, &sa, NULL);
    void *(*fn[5])(void *) = {spinner, reader, waiter, sleeper, caller};
    for (int i = 0; i < 5; i++)
        pthread_create(&th[i], NULL, fn[i], NULL);
    while (atomic_load(&ready) < 5 || atomic_load(&spins) == 0 || atomic_load(&calls) == 0)
        usleep(1000);
    int blocked = state_of(tids[1], 'S') == 'S' && state_of(tids[2], 'S') == 'S' &&
                  state_of(tids[3], 'S') == 'S';
    printf("%s: five threads running, three of them blocked: %s\n", mode, blocked ? "yes" : "no");
    fflush(stdout);
}

static void exec_self(void) {
    char pid[16];
    snprintf(pid, sizeof pid, "%d", getpid());
    char *argv[] = {"exec_threads", "after", pid, (char *)mode, NULL};
    execv("/proc/self/exe", argv);
    printf("execve: %s\n", strerror(errno));
    exit(1);
}

static void *execer(void *arg) {
    (void)arg;
    printf("the exec'ing thread is not the main one: %s\n", gettid_() != getpid() ? "yes" : "no");
    fflush(stdout);
    if (!strcmp(mode, "fail")) {
        char *argv[] = {"nothing", NULL};
        execv("/no/such/program", argv);
        printf("execve of a missing program from a thread: %s\n", strerror(errno));
        return NULL;
    }
    exec_self();
    return NULL;
}

static int after(const char *pid, const char *from) {
    int same_pid = atoi(pid) == getpid();
    printf("after execve from the %s thread: pid kept %s, tid = pid %s, /proc/self/task lists %d\n",
           strcmp(from, "thread") ? "main" : "second", same_pid ? "yes" : "no",
           gettid_() == getpid() ? "yes" : "no", entries("/proc/self/task"));
    // Give a thread that wrongly came back a moment to say so.
    usleep(100000);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "after"))
        return after(argv[2], argv[3]);
    if (argc != 2)
        return 2;
    mode = argv[1];
    start_threads();
    if (!strcmp(mode, "main")) {
        exec_self();
    }
    if (!strcmp(mode, "spawn")) {
        pthread_t s;
        pthread_create(&s, NULL, spawner, NULL);
        while (atomic_load(&spawned) < 2)
            usleep(1000);
        exec_self();
    }
    pthread_t x;
    pthread_create(&x, NULL, execer, NULL);
    pthread_join(x, NULL);
    if (strcmp(mode, "fail")) {
        came_back("main thread");
        return 1;
    }
    // Every thread still runs: end each the way it waits.
    // (Waiting, bounded, for each to move on: under mote a thread may share
    // its core with the spinner, and run a time slice in two.)
    long before = atomic_load(&spins), made = atomic_load(&calls);
    for (int i = 0; i < 1000 && atomic_load(&spins) == before; i++)
        usleep(5000);
    printf("spinner still spinning: %s\n", atomic_load(&spins) > before ? "yes" : "no");
    for (int i = 0; i < 1000 && atomic_load(&calls) == made; i++)
        usleep(5000);
    printf("caller still calling: %s\n", atomic_load(&calls) > made ? "yes" : "no");
    printf("blocked threads still blocked: %s\n",
           state_of(tids[1], 'S') == 'S' && state_of(tids[2], 'S') == 'S' &&
                   state_of(tids[3], 'S') == 'S'
               ? "yes"
               : "no");
    pthread_mutex_lock(&mu);
    atomic_store(&stop, 1);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (write(pipefd[1], "x", 1) != 1)
        return 1;
    pthread_kill(th[3], SIGUSR1);
    for (int i = 0; i < 5; i++) {
        pthread_join(th[i], NULL);
        printf("%s\n", results[i]);
    }
    return 0;
}
