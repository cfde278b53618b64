// fork + _exit + waitpid of a process with 1 MiB and then 256 MiB touched
// (issue 13; `mote bench fork`): the median and minimum of REPS rounds of each,
// in ms, as `fork1m_ms=... fork1m_min_ms=... fork256m_ms=... fork256m_min_ms=...`.
// `--quick`: 3 rounds instead of 7.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Fork `reps` times with `m` touched; median and minimum in ms.
static void rounds(const char *name, const char *m, int reps) {
    double t[16];
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        pid_t p = fork();
        if (p == 0)
            _exit(m[i] == 1 ? 0 : 1);
        int st = 0;
        if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("fork_bench: child %d failed (status %#x)\n", i, st);
            exit(1);
        }
        t[i] = (now() - t0) * 1e3;
    }
    qsort(t, reps, sizeof t[0], cmp);
    printf("%s_ms=%.3f %s_min_ms=%.3f\n", name, t[reps / 2], name, t[0]);
}

int main(int argc, char **argv) {
    int reps = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 3 : 7;
    size_t small = 1 << 20, large = 256 << 20;
    char *m = malloc(large);
    if (!m) {
        printf("fork_bench: no memory\n");
        return 1;
    }
    memset(m, 1, small);
    rounds("fork1m", m, reps);
    memset(m, 1, large);
    rounds("fork256m", m, reps);
    return 0;
}
