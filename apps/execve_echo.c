/*
 * execve_echo: a launcher. Prints a line, tries to execve a program that does
 * not exist (must fail with ENOENT and return), checks /proc/self/exe names this
 * program, then replaces itself with `/bin/echo hi` (a dynamically linked
 * distribution binary), passing its environment on. The output and status are
 * echo's, as natively.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
	(void)argc;
	char *missing[] = { "nothing-here", NULL };
	if (execve("/nonexistent/nothing-here", missing, environ) != -1 || errno != ENOENT) {
		printf("execve of a missing program did not fail with ENOENT\n");
		return 2;
	}
	printf("execve of a missing program: %s\n", strerror(errno));
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		printf("readlink /proc/self/exe failed\n");
		return 3;
	}
	exe[n] = 0;
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *ebase = strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
	printf("/proc/self/exe names this program: %s\n", strcmp(base, ebase) == 0 && exe[0] == '/' ? "yes" : exe);
	fflush(stdout);
	char *echo[] = { "echo", "hi", NULL };
	execve("/bin/echo", echo, environ);
	printf("execve /bin/echo failed: %s\n", strerror(errno));
	return 1;
}
