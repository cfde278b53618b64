// Creating processes the ways HPC codes do: posix_spawn, system(), popen(),
// vfork+execve, vfork+_exit, and a program that does not exist. The parent sees
// each child's output and exit status as natively.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void report(const char *what, pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        printf("%s: waitpid failed: %s\n", what, strerror(errno));
        return;
    }
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
}

static void *nothing(void *arg) { return arg; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    // Threads first (regression: a vfork child was given a finished thread's slot,
    // which an offload thread of the parent proxy still served; that thread ran
    // the child's exec and replaced the parent).
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, nothing, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    pid_t pid;
    char *echo[] = {"echo", "hello from posix_spawn", NULL};
    int r = posix_spawn(&pid, "/bin/echo", NULL, NULL, echo, environ);
    if (r == 0)
        report("echo", pid);
    printf("posix_spawn: %s\n", r == 0 ? "ok" : strerror(r));

    // File actions run in the child only: the parent's stdout stays.
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *quiet[] = {"echo", "this goes to /dev/null", NULL};
    r = posix_spawn(&pid, "/bin/echo", &fa, NULL, quiet, environ);
    if (r == 0)
        report("echo to /dev/null", pid);
    printf("parent's stdout still works\n");

    char *none[] = {"nonexistent", NULL};
    r = posix_spawn(&pid, "/nonexistent/program", NULL, NULL, none, environ);
    printf("posix_spawn of a missing program: %s\n", strerror(r));

    int st = system("exit 3");
    printf("system(\"exit 3\"): %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    FILE *f = popen("echo through a pipe", "r");
    char line[64] = {0};
    if (f && fgets(line, sizeof line, f))
        printf("popen read: %s", line);
    if (f)
        printf("pclose: %d\n", WEXITSTATUS(pclose(f)));

    pid = vfork();
    if (pid == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    report("vfork+exec true", pid);

    pid = vfork();
    if (pid == 0)
        _exit(5);
    report("vfork+_exit(5)", pid);
    return 0;
}
