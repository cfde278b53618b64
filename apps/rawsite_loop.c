/*
 * rawsite_loop: a hand-written system-call site of a shape libos's self-patcher
 * cannot rewrite — the number is moved in from another register (`mov $110,
 * %ecx; mov %ecx, %eax; syscall`), so the 5 bytes before the `syscall` are no
 * `mov $nr, %eax` — executed LOOPS times (getppid), then a summary. Under mote,
 * unmodified, every one of these calls traps; after `mote link` none does.
 * Output is identical natively and under mote.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOOPS 2000

_Static_assert(SYS_getppid == 110, "x86_64 numbering");

long raw_getppid(void);
__asm__(".text\n"
	".globl raw_getppid\n"
	".type raw_getppid, @function\n"
	"raw_getppid:\n"
	"\tmov $110, %ecx\n"
	"\tmov %ecx, %eax\n"
	"\tsyscall\n"
	"\tret\n"
	".size raw_getppid, .-raw_getppid\n");

int main(void)
{
	long ppid = getppid(), bad = 0;
	for (int i = 0; i < LOOPS; i++)
		bad += raw_getppid() != ppid;
	printf("%d calls through a register-numbered site, %ld wrong answers\n", LOOPS, bad);
	return bad != 0;
}
