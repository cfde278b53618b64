/*
 * syscall_flags: `syscall` leaves RFLAGS as they were (the kernel restores them
 * from r11 on the way back), and so must a patched call site under mote, whose
 * entry gives the arithmetic flags back without popfq and takes popfq for any
 * other difference (DF here). Each flag pattern goes through two `mov $nr, %eax;
 * syscall` sites many times, so each site traps once, is patched, and the later
 * calls take the patched path: getppid (forwarded to Linux, through the
 * runtime) and getpid (answered in the patched entry itself). Prints one line
 * per pattern; the output is identical natively and under mote.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CF 0x1UL
#define PF 0x4UL
#define AF 0x10UL
#define ZF 0x40UL
#define SF 0x80UL
#define DF 0x400UL
#define OF 0x800UL
#define ARITH (CF | PF | AF | ZF | SF | OF)

/* Flags before and after one getppid at this site. */
static uint64_t getppid_with_flags(uint64_t flags, long *ret)
{
	uint64_t after;
	long r;
	/* Below the red zone: the compiler may keep data there. */
	__asm__ volatile("sub $128, %%rsp\n\t"
			 "push %[in]\n\t"
			 "popfq\n\t"
			 "mov $" "110" ", %%eax\n\t" /* SYS_getppid */
			 "syscall\n\t"
			 "pushfq\n\t"
			 "pop %[out]\n\t"
			 "cld\n\t"
			 "add $128, %%rsp"
			 : [out] "=r"(after), "=a"(r)
			 : [in] "r"(flags)
			 : "rcx", "r11", "memory", "cc");
	*ret = r;
	return after;
}

/* The same through a getpid site (answered in the patched entry's stub). */
static uint64_t getpid_with_flags(uint64_t flags, long *ret)
{
	uint64_t after;
	long r;
	__asm__ volatile("sub $128, %%rsp\n\t"
			 "push %[in]\n\t"
			 "popfq\n\t"
			 "mov $" "39" ", %%eax\n\t" /* SYS_getpid */
			 "syscall\n\t"
			 "pushfq\n\t"
			 "pop %[out]\n\t"
			 "cld\n\t"
			 "add $128, %%rsp"
			 : [out] "=r"(after), "=a"(r)
			 : [in] "r"(flags)
			 : "rcx", "r11", "memory", "cc");
	*ret = r;
	return after;
}

int main(void)
{
	_Static_assert(SYS_getppid == 110 && SYS_getpid == 39, "x86_64 numbers");
	const uint64_t patterns[] = { 0, CF, PF, AF, ZF, SF, OF, ARITH, CF | ZF | OF, ARITH | DF, DF };
	uint64_t base;
	__asm__ volatile("pushfq\n\tpop %0" : "=r"(base));
	base &= ~(ARITH | DF);
	long ppid = getppid(), pid = getpid();
	int bad = 0;
	for (unsigned p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
		uint64_t in = base | patterns[p];
		int wrong_flags = 0, wrong_ret = 0;
		for (int i = 0; i < 200; i++) {
			long r;
			uint64_t out = getppid_with_flags(in, &r);
			wrong_flags += (out & (ARITH | DF)) != (in & (ARITH | DF));
			wrong_ret += r != ppid;
			out = getpid_with_flags(in, &r);
			wrong_flags += (out & (ARITH | DF)) != (in & (ARITH | DF));
			wrong_ret += r != pid;
		}
		printf("flags %#06lx: %d calls with other flags after, %d wrong results\n",
		       (unsigned long)patterns[p], wrong_flags, wrong_ret);
		bad += wrong_flags + wrong_ret;
	}
	return bad != 0;
}
