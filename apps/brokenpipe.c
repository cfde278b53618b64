/* Writes into a pipe whose read end is closed. With SIGPIPE at its default
 * action the write kills the program (status 141); with SIGPIPE ignored (as
 * inherited from `nohup` or `trap '' PIPE`) the write fails with EPIPE and the
 * program says so and exits 0. `brokenpipe ignore` ignores SIGPIPE itself first
 * (as CPython does at start-up).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "ignore") == 0) {
        signal(SIGPIPE, SIG_IGN);
    }
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    close(fds[0]);
    ssize_t n = write(fds[1], "x", 1);
    if (n < 0) {
        printf("write: %s\n", errno == EPIPE ? "EPIPE" : strerror(errno));
        return 0;
    }
    printf("write: %zd\n", n);
    return 1;
}
