// A shell script running 200 short commands (50 each of /bin/true, /bin/echo,
// cat of /dev/null and uname), the way a build or job script starts commands:
// the shell forks and execs each. Prints the script's time as script_ms= (the
// `mote bench script200` row, issue 13) and exits with the script's status.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char SCRIPT[] =
    "i=0\n"
    "while [ $i -lt 50 ]; do\n"
    "  /bin/true || exit 1\n"
    "  /bin/echo $i >/dev/null || exit 2\n"
    "  cat /dev/null || exit 3\n"
    "  uname >/dev/null || exit 4\n"
    "  i=$((i + 1))\n"
    "done\n";

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void) {
    double t0 = now_ms();
    pid_t p = fork();
    if (p < 0) {
        perror("fork");
        return 1;
    }
    if (p == 0) {
        execl("/bin/sh", "sh", "-c", SCRIPT, (char *)0);
        perror("execl /bin/sh");
        _exit(127);
    }
    int st;
    if (waitpid(p, &st, 0) != p) {
        perror("waitpid");
        return 1;
    }
    double t = now_ms() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "script200: the script failed (status 0x%x)\n", st);
        return 1;
    }
    printf("script_ms=%.2f\ncommands=200\n", t);
    return 0;
}
