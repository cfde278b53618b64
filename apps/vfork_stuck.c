/*
 * vfork_stuck: prints "ready", then vforks a child that, before it would exec
 * /bin/true, blocks in a read of a pipe nobody writes. The parent waits for the
 * child's exec or exit for ever; only a signal ends the program. (Under mote the
 * child's read is served by a forked proxy of its own, so ending the run must
 * not depend on that call: SIGTERM ends it with 143.)
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	int p[2];
	if (pipe(p))
		return 2;
	printf("ready\n");
	fflush(stdout);
	pid_t c = vfork();
	if (c == 0) {
		char b;
		if (read(p[0], &b, 1) < 0)
			_exit(126);
		execl("/bin/true", "true", (char *)0);
		_exit(127);
	}
	printf("not reached\n");
	return 0;
}
