// A program that starts itself again through /proc/self/exe, as programs that
// re-execute themselves do (posix_spawn, then an execve from a vfork child):
// /proc/self/exe names the application's program, never mote's.
//
// usage: selfexe            -> spawns `selfexe --child spawned` and
//                              vfork-execs `selfexe --child vforked`
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void report(const char *what, pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        printf("%s: waitpid failed\n", what);
    else if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else
        printf("%s: ended otherwise (%#x)\n", what, st);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        printf("child %s: running\n", argv[2]);
        return 9;
    }
    char *spawned[] = {argv[0], "--child", "spawned", NULL};
    pid_t pid;
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, spawned, environ);
    if (err != 0)
        printf("posix_spawn /proc/self/exe: %s\n", strerror(err));
    else
        report("posix_spawn /proc/self/exe", pid);

    char *vforked[] = {argv[0], "--child", "vforked", NULL};
    pid = vfork();
    if (pid == 0) {
        execve("/proc/self/exe", vforked, environ);
        _exit(127);
    }
    report("vfork+execve /proc/self/exe", pid);
    return 0;
}
