/*
 * mote's vDSO: the partition's clocks in the application's own address space,
 * as Linux's vDSO (arch/x86/entry/vdso/) gives them natively. libos maps this
 * image read-only and executable with one data page ("vvar") right below it
 * and passes its address as AT_SYSINFO_EHDR; glibc finds the functions by name
 * and version (LINUX_2.6) through the dynamic symbol table.
 *
 * Time is computed from rdtscp (the partition needs a CPU with it: every
 * x86_64 of the last fifteen years) and the references libos publishes in the
 * data page (`libos/src/vdso.rs`, `struct VData`; libos/src/time.rs keeps the
 * clocks and uses the same formula, so both paths agree to the nanosecond).
 * The page is written under a one-byte sequence counter (odd while an update
 * is in progress). A clock kept elsewhere, a reference older than `max_ticks`
 * (libos refreshes it from Linux once a second) or no reference yet: the call
 * goes to the runtime (the direct entry when libos gave one, else `syscall`),
 * which answers, refreshes and republishes — as Linux's vDSO falls back to the
 * system call.
 *
 * Built by libos/build.rs with gcc and ld (vdso.lds: one PT_LOAD, no
 * relocations, no writable data); freestanding, no libc.
 */
#include <stdint.h>

struct vdata {
	volatile uint8_t seq;
	uint8_t pad[7];
	uint64_t mult;      /* ns = (ticks * mult) >> 32; 0: nothing published */
	uint64_t max_ticks; /* a reference older than this: ask the runtime */
	uint64_t real_tsc, real_sec, real_nsec;
	uint64_t mono_tsc, mono_sec, mono_nsec;
	uint64_t direct;    /* the runtime's mote_syscall, or 0 */
};

struct timespec_k { int64_t tv_sec; int64_t tv_nsec; };
struct timeval_k { int64_t tv_sec; int64_t tv_usec; };

#define NSEC 1000000000ULL
#define NR_gettimeofday 96
#define NR_time 201
#define NR_clock_gettime 228
#define NR_clock_getres 229
#define NR_getcpu 309

/* The data page, one page below the image (vdso.lds). Not `const`: libos
 * rewrites it, and the compiler must read it again after every barrier(). */
extern struct vdata __vvar __attribute__((visibility("hidden")));

static inline const struct vdata *vd(void)
{
	return &__vvar;
}

#define barrier() __asm__ volatile("" ::: "memory")

__attribute__((noinline, cold)) static long fallback(long nr, long a0, long a1, long a2)
{
	const struct vdata *d = vd();
	if (d->direct) {
		long (*direct)(long, long, long, long, long, long, long) = (void *)d->direct;
		return direct(nr, a0, a1, a2, 0, 0, 0);
	}
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(nr), "D"(a0), "S"(a1), "d"(a2)
			 : "rcx", "r11", "memory");
	return ret;
}

/* `clock` now, as seconds and nanoseconds; 0, or -1 when the runtime must
 * answer. One 64-bit multiply (libos keeps max_ticks * mult below 2^64) and no
 * division: the nanoseconds exceed a second by at most a little. */
__attribute__((always_inline)) static inline int clock_now(long clock, uint64_t *sec, uint64_t *nsec)
{
	int real;
	switch (clock) {
	case 0: /* CLOCK_REALTIME */
	case 5: /* CLOCK_REALTIME_COARSE */
		real = 1;
		break;
	case 1: /* CLOCK_MONOTONIC */
	case 4: /* CLOCK_MONOTONIC_RAW */
	case 6: /* CLOCK_MONOTONIC_COARSE */
	case 7: /* CLOCK_BOOTTIME */
		real = 0;
		break;
	default:
		return -1;
	}
	const struct vdata *d = vd();
	uint64_t tsc, ref_tsc, s, ns, mult, max;
	for (;;) {
		uint8_t seq = d->seq;
		if (seq & 1) {
			__asm__ volatile("pause");
			continue;
		}
		barrier();
		mult = d->mult;
		max = d->max_ticks;
		ref_tsc = real ? d->real_tsc : d->mono_tsc;
		s = real ? d->real_sec : d->mono_sec;
		ns = real ? d->real_nsec : d->mono_nsec;
		/* rdtscp waits for the loads before it, as Linux's rdtsc_ordered. */
		uint32_t lo, hi;
		__asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi)::"rcx", "memory");
		tsc = (uint64_t)hi << 32 | lo;
		barrier();
		if (d->seq == seq)
			break;
	}
	if (mult == 0)
		return -1;
	uint64_t ticks = tsc > ref_tsc ? tsc - ref_tsc : 0;
	if (ticks > max)
		return -1;
	ns += (ticks * mult) >> 32;
	while (ns >= NSEC) {
		__asm__("" : "+r"(ns)); /* keep it a loop, not a division */
		ns -= NSEC;
		s++;
	}
	*sec = s;
	*nsec = ns;
	return 0;
}

long __vdso_clock_gettime(long clock, struct timespec_k *ts)
{
	uint64_t s, ns;
	if (clock_now(clock, &s, &ns) != 0)
		return fallback(NR_clock_gettime, clock, (long)ts, 0);
	ts->tv_sec = s;
	ts->tv_nsec = ns;
	return 0;
}

long __vdso_gettimeofday(struct timeval_k *tv, void *tz)
{
	uint64_t s, ns;
	if (tz != 0 || (tv != 0 && clock_now(0, &s, &ns) != 0))
		return fallback(NR_gettimeofday, (long)tv, (long)tz, 0);
	if (tv) {
		tv->tv_sec = s;
		tv->tv_usec = ns / 1000;
	}
	return 0;
}

long __vdso_time(long *t)
{
	uint64_t s, ns;
	if (clock_now(0, &s, &ns) != 0)
		return fallback(NR_time, (long)t, 0, 0);
	if (t)
		*t = s;
	return s;
}

long __vdso_clock_getres(long clock, struct timespec_k *res)
{
	switch (clock) {
	case 0: /* the high-resolution clocks kept from the TSC: 1 ns, as Linux */
	case 1:
	case 4:
	case 7:
		if (res) {
			res->tv_sec = 0;
			res->tv_nsec = 1;
		}
		return 0;
	default: /* coarse (a Linux tick), CPU-time and other clocks: Linux's answer */
		return fallback(NR_clock_getres, clock, (long)res, 0);
	}
}

long __vdso_getcpu(unsigned *cpu, unsigned *node, void *cache)
{
	return fallback(NR_getcpu, (long)cpu, (long)node, (long)cache);
}

long clock_gettime(long, struct timespec_k *) __attribute__((weak, alias("__vdso_clock_gettime")));
long gettimeofday(struct timeval_k *, void *) __attribute__((weak, alias("__vdso_gettimeofday")));
long time(long *) __attribute__((weak, alias("__vdso_time")));
long clock_getres(long, struct timespec_k *) __attribute__((weak, alias("__vdso_clock_getres")));
long getcpu(unsigned *, unsigned *, void *) __attribute__((weak, alias("__vdso_getcpu")));
