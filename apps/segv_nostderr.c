/*
 * segv_nostderr: closes its stderr, then writes through a bad pointer. Natively
 * the shell reports the crash; under mote, mote's own report must still reach the
 * stderr mote was started with (regression: it went to the closed descriptor).
 */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("closing stderr, then a bad write\n");
	fflush(stdout);
	close(2);
	*(volatile int *)0x1234 = 1;
	return 0;
}
