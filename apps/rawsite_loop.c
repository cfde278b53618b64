/*
 * rawsite_loop: a hand-written system-call site of a shape libos's self-patcher
 * cannot rewrite — the number is moved in from another register (`mov $110,
 * %ecx; mov %ecx, %eax; syscall`), so the 5 bytes before the `syscall` are no
 * `mov $nr, %eax` — executed LOOPS times (getppid), then a summary. Under mote,
 * unmodified, every one of these calls traps; after `mote link` none does.
 * Output is identical natively and under mote.
 *
 * `rawsite_loop --bench [--quick]` (for `mote bench rawsite`) times getpid
 * through a site of the same shape instead: 30 batches of 2,000 calls (10 of
 * 500 quick), each batch's time per call as one sample:
 * `rawsite_getpid raw_ns=S1,S2,...`.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LOOPS 2000

_Static_assert(SYS_getppid == 110, "x86_64 numbering");
_Static_assert(SYS_getpid == 39, "x86_64 numbering");

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

long raw_getpid(void);
__asm__(".text\n"
	".globl raw_getpid\n"
	".type raw_getpid, @function\n"
	"raw_getpid:\n"
	"\tmov $39, %ecx\n"
	"\tmov %ecx, %eax\n"
	"\tsyscall\n"
	"\tret\n"
	".size raw_getpid, .-raw_getpid\n");

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

static int bench(int quick)
{
	int samples = quick ? 10 : 30;
	long batch = quick ? 500 : 2000, pid = getpid(), bad = 0;
	for (long i = 0; i < batch; i++) /* warm up */
		bad += raw_getpid() != pid;
	printf("rawsite_getpid raw_ns=");
	for (int s = 0; s < samples; s++) {
		double t0 = now_ns();
		for (long i = 0; i < batch; i++)
			bad += raw_getpid() != pid;
		printf(s ? ",%.1f" : "%.1f", (now_ns() - t0) / batch);
	}
	printf("\n");
	if (bad)
		fprintf(stderr, "rawsite_loop: %ld wrong getpid answers\n", bad);
	return bad != 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--bench") == 0)
		return bench(argc > 2 && strcmp(argv[2], "--quick") == 0);
	long ppid = getppid(), bad = 0;
	for (int i = 0; i < LOOPS; i++)
		bad += raw_getppid() != ppid;
	printf("%d calls through a register-numbered site, %ld wrong answers\n", LOOPS, bad);
	return bad != 0;
}
