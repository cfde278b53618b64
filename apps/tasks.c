// The application's threads in /proc (issue 13): /proc/self/task and
// /proc/<pid>/task list exactly the threads' gettid() ids; each thread's
// task/<tid>/comm, stat and status carry its name (prctl(PR_SET_NAME),
// pthread_setname_np on itself), its state (running: R; blocked in a futex or
// a read: S) and its ids (pid field = tid, Tgid = getpid()). /proc/self/comm is
// the main thread's name, /proc/thread-self/comm the caller's.
//
// Another thread's comm can be written (pthread_setname_np, a shell's
// `echo name > /proc/self/task/<tid>/comm`) and is read back through comm and
// stat.
//
// Prints only what a native run prints too (no ids): compared line by line.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int stop;
static atomic_int ready;
static pid_t tids[4];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pipefd[2];

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static void *spinner(void *arg) {
    (void)arg;
    tids[1] = gettid_();
    pthread_setname_np(pthread_self(), "spinner");
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&stop)) {
    }
    return NULL;
}

static void *waiter(void *arg) {
    (void)arg;
    tids[2] = gettid_();
    prctl(PR_SET_NAME, "futex-waiter");
    pthread_mutex_lock(&mu);
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&stop))
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    tids[3] = gettid_();
    // Unnamed: it has its creator's name.
    atomic_fetch_add(&ready, 1);
    char c;
    if (read(pipefd[0], &c, 1) != 1)
        perror("read");
    return NULL;
}

// The whole text of `path` ("" if it cannot be read).
static char *slurp(const char *path) {
    static char buf[8192];
    buf[0] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
    return buf;
}

static int cmp(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

// Does directory `dir` list exactly the `n` ids in `want` (besides . and ..)?
static int lists_exactly(const char *dir, const pid_t *want, int n) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 0;
    }
    int got[64], k = 0;
    struct dirent *e;
    while ((e = readdir(d)) && k < 64) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            got[k++] = atoi(e->d_name);
    }
    closedir(d);
    int w[8];
    memcpy(w, want, n * sizeof *w);
    qsort(got, k, sizeof *got, cmp);
    qsort(w, n, sizeof *w, cmp);
    if (k != n || memcmp(got, w, n * sizeof *w)) {
        printf("%s lists %d entries:", dir, k);
        for (int i = 0; i < k; i++)
            printf(" %d", got[i]);
        printf(" (want %d)\n", n);
        return 0;
    }
    return 1;
}

// The state letter of `tid`'s stat, waiting (bounded) until it is `want`: a
// thread just started may not have blocked yet.
static char state_of(pid_t tid, char want) {
    char path[64], s = '?';
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    for (int i = 0; i < 2000; i++) {
        char *t = slurp(path);
        char *close = strrchr(t, ')');
        s = close && close[1] ? close[2] : '?';
        if (s == want)
            break;
        usleep(5000);
    }
    return s;
}

static void describe(int i, const char *role, char want) {
    char path[64];
    pid_t tid = tids[i];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
    char comm[32];
    snprintf(comm, sizeof comm, "%s", slurp(path));
    comm[strcspn(comm, "\n")] = 0;
    char state = state_of(tid, want);
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", getpid(), tid);
    char *st = slurp(path);
    int pid_field = atoi(st);
    char *open = strchr(st, '('), *close = strrchr(st, ')');
    char name[32] = "";
    if (open && close && close > open)
        snprintf(name, sizeof name, "%.*s", (int)(close - open - 1), open + 1);
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    char *status = slurp(path);
    char sname[32] = "", sstate = '?';
    int tgid = -1, spid = -1, threads = -1;
    for (char *l = strtok(status, "\n"); l; l = strtok(NULL, "\n")) {
        sscanf(l, "Name:\t%31s", sname);
        sscanf(l, "State:\t%c", &sstate);
        sscanf(l, "Tgid:\t%d", &tgid);
        sscanf(l, "Pid:\t%d", &spid);
        sscanf(l, "Threads:\t%d", &threads);
    }
    printf("%s: comm %s, stat name %s state %c pid=tid %s, status name %s state %c "
           "tgid=pid %s pid=tid %s threads %d\n",
           role, comm, name, state, pid_field == tid ? "yes" : "no", sname, sstate,
           tgid == getpid() ? "yes" : "no", spid == tid ? "yes" : "no", threads);
}

// Thread `tid`'s comm as read back, newlines shown as \n.
static void show_comm(const char *who, const char *path) {
    char *t = slurp(path);
    printf("%s: comm \"", who);
    for (char *c = t; *c; c++) {
        if (*c == '\n')
            printf("\\n");
        else
            putchar(*c);
    }
    printf("\"\n");
}

// Write `name` to the comm file at `path` opened with `flags`: write's answer
// or -errno (of the open or the write).
static int write_comm(const char *path, const char *name, int flags) {
    int fd = open(path, flags, 0644);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, name, strlen(name));
    int r = n < 0 ? -errno : (int)n;
    close(fd);
    return r;
}

// Writing another thread's comm, as pthread_setname_np does (allowed for the
// threads of one process), and writes of the shapes a shell makes.
static void rename_threads(pthread_t reader_thread) {
    int r = pthread_setname_np(reader_thread, "renamed");
    char got[16] = "";
    int g = pthread_getname_np(reader_thread, got, sizeof got);
    printf("pthread_setname_np of another thread: %d, pthread_getname_np: %d %s\n", r, g, got);
    describe(3, "renamed reader", 'S');
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", tids[1]);
    printf("write \"raw\\n\" to the spinner's comm: %d\n", write_comm(path, "raw\n", O_WRONLY));
    show_comm("spinner", path);
    printf("write 20 bytes (O_RDWR): %d\n", write_comm(path, "abcdefghijklmnopqrst", O_RDWR));
    show_comm("spinner", path);
    printf("write /proc/self/comm (O_WRONLY|O_CREAT|O_TRUNC): %d\n",
           write_comm("/proc/self/comm", "main-again", O_WRONLY | O_CREAT | O_TRUNC));
    show_comm("main", "/proc/self/comm");
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tids[0]);
    char *st = slurp(path);
    char *open_ = strchr(st, '('), *close_ = strrchr(st, ')');
    printf("main's stat name: %.*s\n", open_ && close_ > open_ ? (int)(close_ - open_ - 1) : 0,
           open_ ? open_ + 1 : "");
}

int main(void) {
    tids[0] = gettid_();
    prctl(PR_SET_NAME, "tasks-main");
    char self[32];
    snprintf(self, sizeof self, "%s", slurp("/proc/self/comm"));
    self[strcspn(self, "\n")] = 0;
    printf("/proc/self/comm: %s\n", self);
    if (pipe(pipefd))
        return 1;
    pthread_t th[3];
    pthread_create(&th[0], NULL, spinner, NULL);
    pthread_create(&th[1], NULL, waiter, NULL);
    pthread_create(&th[2], NULL, reader, NULL);
    while (atomic_load(&ready) < 3)
        usleep(1000);

    char piddir[64];
    snprintf(piddir, sizeof piddir, "/proc/%d/task", getpid());
    printf("/proc/self/task lists the 4 threads: %s\n",
           lists_exactly("/proc/self/task", tids, 4) ? "yes" : "no");
    printf("/proc/<pid>/task/ lists the 4 threads: %s\n",
           lists_exactly(piddir, tids, 4) ? "yes" : "no");
    describe(0, "main", 'R');
    describe(1, "spinner", 'R');
    describe(2, "futex waiter", 'S');
    describe(3, "reader", 'S');
    char ts[32];
    snprintf(ts, sizeof ts, "%s", slurp("/proc/thread-self/comm"));
    ts[strcspn(ts, "\n")] = 0;
    printf("/proc/thread-self/comm: %s\n", ts);
    char gone[64];
    snprintf(gone, sizeof gone, "/proc/self/task/%d/stat", getpid() + 100000);
    printf("a thread that is not ours: %s\n", open(gone, O_RDONLY) < 0 ? "no such file" : "opened");
    rename_threads(th[2]);

    atomic_store(&stop, 1);
    pthread_mutex_lock(&mu);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (write(pipefd[1], "x", 1) != 1)
        return 1;
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    printf("after the joins, /proc/self/task lists the main thread only: %s\n",
           lists_exactly("/proc/self/task", tids, 1) ? "yes" : "no");
    return 0;
}
