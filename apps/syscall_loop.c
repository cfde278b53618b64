/*
 * syscall_loop: the same few system-call sites executed many times — getppid
 * (forwarded under mote), getpid through syscall(2) (answered locally) and a
 * write — then a summary. Under mote with --stats, the trapped count must not
 * grow with the loop (each site traps once, then is patched); with --no-patch
 * every call traps. Output is identical natively and under mote.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOOPS 2000

int main(void)
{
	long pid = getpid(), ppid = getppid(), bad = 0;
	for (int i = 0; i < LOOPS; i++) {
		bad += getppid() != ppid;
		bad += syscall(SYS_getpid) != pid;
	}
	for (int i = 0; i < 20; i++)
		if (write(1, "x", 1) != 1)
			bad++;
	printf("\n%d loops, %ld wrong answers\n", LOOPS, bad);
	return bad != 0;
}
