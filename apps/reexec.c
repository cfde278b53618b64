// execve("/proc/self/exe") runs the program itself again (a common way to
// restart with other arguments).
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "again") == 0) {
        printf("running again, argc=%d\n", argc);
        return 3;
    }
    printf("first run\n");
    fflush(stdout);
    char *args[] = {argv[0], "again", NULL};
    execv("/proc/self/exe", args);
    perror("execv");
    return 1;
}
