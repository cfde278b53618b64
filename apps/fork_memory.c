// fork's memory semantics (issue 13): what the child shares with its parent
// and what it gets a copy of. Shared anonymous memory, a shared /dev/zero
// mapping, a /dev/shm object and a System V segment written by the child are
// seen by the parent; private memory is copied; MADV_DONTFORK memory is not in
// the child (an access faults), MADV_WIPEONFORK memory is zero there, and
// MADV_DOFORK / MADV_KEEPONFORK undo them. Shared anonymous memory on huge
// pages (MAP_HUGETLB) is shared both ways: the child's write is seen by the
// parent and the parent's write after the fork by the child. Output is the
// same natively.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define PAGE 4096

static void on_segv(int sig) {
    (void)sig;
    _exit(42);
}

// Fork a child that runs `body` and exits with its result; the child's status.
static int in_child(int (*body)(void *), void *arg) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(body(arg));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int write_word(void *p) {
    strcpy(p, "written by the child");
    return 0;
}

static int remove_page(void *p) {
    return madvise(p, PAGE, MADV_REMOVE) == 0 ? 0 : errno;
}

static int read_zero(void *p) {
    const unsigned char *b = p;
    for (int i = 0; i < 2 * PAGE; i++)
        if (b[i])
            return 1;
    return 0;
}

static int read_fault(void *p) {
    signal(SIGSEGV, on_segv);
    return *(volatile char *)p == 'x' ? 3 : 4;
}

static void shared_case(const char *what, char *p) {
    strcpy(p, "parent's");
    int st = in_child(write_word, p);
    printf("%s: child %d, parent sees \"%s\"\n", what, st, p);
    CHECK(strcmp(p, "written by the child") == 0, "%s not shared", what);
}

int main(void) {
    // Shared anonymous memory, and a shared mapping of /dev/zero.
    char *anon = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(anon != MAP_FAILED, "mmap shared anon: %s", strerror(errno));
    shared_case("MAP_SHARED|MAP_ANONYMOUS", anon + PAGE);
    int zfd = open("/dev/zero", O_RDWR);
    char *zero = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, zfd, 0);
    CHECK(zero != MAP_FAILED, "mmap /dev/zero: %s", strerror(errno));
    close(zfd);
    shared_case("shared /dev/zero", zero);

    // A /dev/shm object.
    char name[64];
    snprintf(name, sizeof name, "/mote-fork-memory-%d", getpid());
    int sfd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(sfd >= 0, "shm_open: %s", strerror(errno));
    CHECK(ftruncate(sfd, PAGE) == 0, "ftruncate: %s", strerror(errno));
    char *shm = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    CHECK(shm != MAP_FAILED, "mmap /dev/shm: %s", strerror(errno));
    close(sfd);
    shm_unlink(name);
    shared_case("/dev/shm object", shm);

    // A System V segment.
    int id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    CHECK(id >= 0, "shmget: %s", strerror(errno));
    char *sysv = shmat(id, NULL, 0);
    CHECK(sysv != (void *)-1, "shmat: %s", strerror(errno));
    shmctl(id, IPC_RMID, NULL);
    shared_case("System V segment", sysv);

    // MADV_REMOVE by the child frees the shared page: the parent reads zeros.
    strcpy(anon, "parent's");
    int removed = in_child(remove_page, anon);
    printf("MADV_REMOVE in the child: %d, parent sees \"%s\"\n", removed, anon);
    CHECK(removed == 0 && anon[0] == 0, "MADV_REMOVE of shared memory");

    // Private memory is the child's own copy.
    char *priv = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(priv, "parent's");
    int st = in_child(write_word, priv);
    printf("private: child %d, parent sees \"%s\"\n", st, priv);
    CHECK(strcmp(priv, "parent's") == 0, "private memory shared");

    // MADV_DONTFORK: not in the child; MADV_DOFORK undoes it.
    char *dont = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(dont, 'x', 4 * PAGE);
    CHECK(madvise(dont + PAGE, 2 * PAGE, MADV_DONTFORK) == 0, "DONTFORK: %s",
          strerror(errno));
    int marked = in_child(read_fault, dont + PAGE);
    int before = in_child(read_fault, dont);
    printf("dontfork: child reading the marked page: %d (42: SIGSEGV), the page before it: %d\n",
           marked, before);
    CHECK(marked == 42 && before == 3, "DONTFORK memory in the child");
    CHECK(madvise(dont + 2 * PAGE, PAGE, MADV_DOFORK) == 0, "DOFORK: %s",
          strerror(errno));
    int undone = in_child(read_fault, dont + 2 * PAGE);
    marked = in_child(read_fault, dont + PAGE);
    printf("dofork: child reading the page undone: %d, the one still marked: %d\n",
           undone, marked);
    CHECK(undone == 3 && marked == 42, "DOFORK");

    // MADV_WIPEONFORK: zero in the child, kept in the parent; not for shared
    // memory. MADV_KEEPONFORK undoes it.
    char *wipe = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(wipe, 'w', 2 * PAGE);
    CHECK(madvise(wipe, 2 * PAGE, MADV_WIPEONFORK) == 0, "WIPEONFORK: %s",
          strerror(errno));
    int zeros = in_child(read_zero, wipe) == 0;
    printf("wipeonfork: child sees zeros: %s, parent keeps '%c'\n",
           zeros ? "yes" : "no", wipe[PAGE]);
    CHECK(zeros && wipe[PAGE] == 'w', "WIPEONFORK");
    CHECK(madvise(wipe, 2 * PAGE, MADV_KEEPONFORK) == 0, "KEEPONFORK: %s",
          strerror(errno));
    zeros = in_child(read_zero, wipe) == 0;
    printf("keeponfork: child sees zeros: %s\n", zeros ? "yes" : "no");
    CHECK(!zeros, "KEEPONFORK");
    errno = 0;
    int r = madvise(anon, PAGE, MADV_WIPEONFORK);
    printf("wipeonfork on shared memory: %d %s\n", r,
           errno == EINVAL ? "EINVAL" : strerror(errno));
    CHECK(r == -1 && errno == EINVAL, "WIPEONFORK on shared memory");

    // MAP_SHARED|MAP_ANONYMOUS|MAP_HUGETLB, one huge page (a length Linux
    // rounds up): the child's write is the parent's, and the parent's write
    // after the fork is the child's.
    char *huge = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (huge == MAP_FAILED) {
        printf("MAP_SHARED|MAP_HUGETLB: %s\n", strerror(errno));
    } else {
        huge[(2 << 20) - 1] = 'e'; // the whole huge page is there
        shared_case("MAP_SHARED|MAP_HUGETLB", huge + PAGE);
        int go[2];
        CHECK(pipe(go) == 0, "pipe: %s", strerror(errno));
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 1)
                _exit(2);
            _exit(strcmp(huge, "parent's, after the fork") == 0 ? 0 : 1);
        }
        close(go[0]);
        strcpy(huge, "parent's, after the fork");
        CHECK(write(go[1], "g", 1) == 1, "write: %s", strerror(errno));
        close(go[1]);
        int st = 0;
        CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
        int seen = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        printf("MAP_SHARED|MAP_HUGETLB: the child sees the parent's later write: %s\n",
               seen == 0 ? "yes" : "no");
        CHECK(seen == 0, "MAP_SHARED|MAP_HUGETLB: the parent's write after the fork");
        CHECK(munmap(huge, 2 << 20) == 0, "munmap: %s", strerror(errno));
    }

    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
