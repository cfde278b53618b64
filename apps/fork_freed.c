// fork after freeing touched memory (issue 13): memory the parent wrote and
// gave back before the fork is not copied into the child (`mote` copies only
// the 2 MiB chunks libos's frame pool has handed out), and when the child, or
// the parent, maps memory again it is zero, as natively. The memory the parent
// keeps is the child's too. Output is the same natively.
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define BIG (256ul << 20)
#define KEEP (1ul << 20)

// Is [p, p+n) all zero?
static int all_zero(const char *p, size_t n) {
    const uint64_t *w = (const uint64_t *)p;
    uint64_t acc = 0;
    for (size_t i = 0; i < n / 8; i++)
        acc |= w[i];
    return acc == 0;
}

// Map BIG bytes again: all zero?
static int fresh_is_zero(void) {
    char *n = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (n == MAP_FAILED)
        return 0;
    int zero = all_zero(n, BIG);
    munmap(n, BIG);
    return zero;
}

int main(void) {
    char *keep = mmap(NULL, KEEP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(keep != MAP_FAILED, "mmap: %s", strerror(errno));
    memset(keep, 'k', KEEP);
    char *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap: %s", strerror(errno));
    memset(m, 0xaa, BIG);
    CHECK(munmap(m, BIG) == 0, "munmap: %s", strerror(errno));

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int kept = keep[0] == 'k' && keep[KEEP - 1] == 'k';
        _exit((kept ? 0 : 1) | (fresh_is_zero() ? 0 : 2));
    }
    CHECK(pid > 0, "fork: %s", strerror(errno));
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    printf("child: the memory kept is there: %s; memory mapped again is zero: %s\n",
           code & 1 ? "no" : "yes", code & 2 ? "no" : "yes");
    CHECK(code == 0, "child status %d", code);
    int zero = fresh_is_zero();
    printf("parent: memory mapped again is zero: %s\n", zero ? "yes" : "no");
    CHECK(zero, "parent's fresh memory");

    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
