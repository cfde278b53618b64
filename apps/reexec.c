// execve("/proc/self/exe") runs the program itself again (a common way to
// restart with other arguments). Descriptors marked close-on-exec are closed
// by the exec and the others stay open, low and high numbers alike.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const int kept[] = {11, 1001};
static const int closed[] = {10, 1000};

static void place(int fd, int flags) {
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, fd) != fd || fcntl(fd, F_SETFD, flags) != 0) {
        perror("place");
        _exit(1);
    }
    close(null);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "again") == 0) {
        printf("running again, argc=%d\n", argc);
        for (int i = 0; i < 2; i++) {
            printf("fd %d: %s\n", kept[i], fcntl(kept[i], F_GETFD) >= 0 ? "open" : "closed");
            printf("fd %d: %s\n", closed[i], fcntl(closed[i], F_GETFD) >= 0 ? "open" : "closed");
        }
        return 3;
    }
    for (int i = 0; i < 2; i++) {
        place(kept[i], 0);
        place(closed[i], FD_CLOEXEC);
    }
    printf("first run\n");
    fflush(stdout);
    char *args[] = {argv[0], "again", NULL};
    execv("/proc/self/exe", args);
    perror("execv");
    return 1;
}
