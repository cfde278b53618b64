/*
 * segv: prints and flushes one line, then stores through the bad pointer 0x1234.
 * Expected end: killed by SIGSEGV (status 139 as a shell reports it) with the
 * line already written.
 */
#include <stdio.h>

int main(void)
{
	printf("segv: about to write through 0x1234\n");
	fflush(stdout);
	volatile int *bad = (volatile int *)0x1234;
	*bad = 42;
	printf("segv: still alive, which is wrong\n");
	return 0;
}
