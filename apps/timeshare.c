/*
 * timeshare: threads that share one core only if the OS time-slices it. None
 * of the spinning below makes a system call, so under `mote run --cores 1`
 * they finish only if mote preempts the running thread (`--time-slice`).
 *
 *   timeshare spinlock [TURNS]  two threads hand a spinlock back and forth,
 *                               each taking its turn TURNS times (default 40)
 *   timeshare progress          four CPU-bound threads each advance while the
 *                               main thread spins until all four have
 *   timeshare yield [TURNS]     as spinlock, but a waiting thread calls
 *                               sched_yield (finishes without preemption)
 *   timeshare sleeper           one thread sleeps 0.1 s, then sets a flag the
 *                               main thread spins on
 *   timeshare share SECONDS     four CPU-bound threads for SECONDS; prints each
 *                               one's share of the work and the farthest
 *                               from a quarter, in percent (a benchmark)
 *   timeshare registers         two threads each fill every general-purpose
 *                               register but rsp and rbp, all sixteen xmm
 *                               registers and the direction flag with its own
 *                               values, compute for a while without a system
 *                               call, and check they are all still there, and
 *                               its thread-local variable (through the FS base)
 *
 * Prints the same lines natively and under mote (except `share`'s numbers).
 * Gives up with status 1 after 60 s without progress instead of hanging.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NWORK 4

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Every 2^20 spins: 1 once 60 s have passed since the first check. */
static int too_long(unsigned long spins, double *deadline)
{
	if ((spins & 0xfffff) != 0xfffff)
		return 0;
	double t = now();
	if (*deadline == 0)
		*deadline = t + 60;
	return t > *deadline;
}

static void give_up(const char *what)
{
	printf("gave up: %s made no progress in 60 s\n", what);
	fflush(stdout);
	exit(1);
}

/* --- spinlock and yield ------------------------------------------------------ */

static int lock;               /* 0 free, 1 held: a test-and-set spinlock */
static uint64_t turn, counter; /* counter under the lock */
static long turns = 40;
static int yielding;

static void acquire(void)
{
	double deadline = 0;
	for (unsigned long spins = 0; __atomic_exchange_n(&lock, 1, __ATOMIC_ACQUIRE); spins++) {
		if (yielding)
			sched_yield();
		else
			__builtin_ia32_pause();
		if (too_long(spins, &deadline))
			give_up("the spinlock");
	}
}

static void release(void) { __atomic_store_n(&lock, 0, __ATOMIC_RELEASE); }

static void *take_turns(void *arg)
{
	uint64_t me = (uintptr_t)arg;
	double deadline = 0;
	unsigned long spins = 0;
	for (long done = 0; done < turns; done++) {
		/* Wait for our turn outside the lock, then take the lock for it. */
		while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != me) {
			if (yielding)
				sched_yield();
			else
				__builtin_ia32_pause();
			if (too_long(spins++, &deadline))
				give_up("taking turns");
		}
		acquire();
		counter = counter * 3 + me + 1;
		__atomic_store_n(&turn, 1 - me, __ATOMIC_RELEASE);
		release();
	}
	return NULL;
}

static int spinlock(void)
{
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, take_turns, (void *)i))
			return 2;
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("%ld turns each, counter %llu\n", turns, (unsigned long long)counter);
	return 0;
}

/* --- progress and share ------------------------------------------------------ */

static volatile int stop;
static volatile uint64_t work[NWORK];

static void *compute(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	while (!stop)
		work[i]++;
	return NULL;
}

static int start(pthread_t *t)
{
	for (uintptr_t i = 0; i < NWORK; i++)
		if (pthread_create(&t[i], NULL, compute, (void *)i))
			return -1;
	return 0;
}

static int progress(void)
{
	pthread_t t[NWORK];
	if (start(t))
		return 2;
	/* Spin (no system call) until every worker advanced a million steps. */
	double deadline = 0;
	for (unsigned long spins = 0;; spins++) {
		int all = 1;
		for (int i = 0; i < NWORK; i++)
			all &= work[i] >= 1000000;
		if (all)
			break;
		if (too_long(spins, &deadline))
			give_up("a worker");
	}
	stop = 1;
	for (int i = 0; i < NWORK; i++) {
		pthread_join(t[i], NULL);
		printf("thread %d advanced\n", i);
	}
	return 0;
}

static int share(double seconds)
{
	pthread_t t[NWORK];
	if (start(t))
		return 2;
	struct timespec ts = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
	stop = 1;
	uint64_t total = 0;
	for (int i = 0; i < NWORK; i++) {
		pthread_join(t[i], NULL);
		total += work[i];
	}
	double dev = 0;
	for (int i = 0; i < NWORK; i++) {
		double share = total ? (double)work[i] / total : 0.0;
		double d = share > 1.0 / NWORK ? share - 1.0 / NWORK : 1.0 / NWORK - share;
		if (d > dev)
			dev = d;
		printf("share%d=%.4f\n", i, share);
	}
	/* The farthest any thread is from a fair share, in percent of it. */
	printf("max_dev_pct=%.2f\n", dev * NWORK * 100);
	return 0;
}

/* --- sleeper ---------------------------------------------------------------- */

static volatile int flag;

static void *sleep_then_set(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 100000000};
	nanosleep(&ts, NULL);
	flag = 1;
	return NULL;
}

static int sleeper(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, sleep_then_set, NULL))
		return 2;
	double deadline = 0;
	for (unsigned long spins = 0; !flag; spins++)
		if (too_long(spins, &deadline))
			give_up("the sleeper");
	pthread_join(t, NULL);
	printf("the flag was set after the sleep\n");
	return 0;
}

/* --- registers --------------------------------------------------------------- */

static __thread uint64_t mine;

/* Fill the registers from `seed`, count `n` down, check them: 0 if intact. */
static uint64_t check_regs(uint64_t seed, uint64_t n)
{
	uint64_t bad;
	__asm__ volatile(
		"mov %[s], %%rbx\n rol $1, %%rbx\n"
		"mov %[s], %%rsi\n rol $2, %%rsi\n"
		"mov %[s], %%rdi\n rol $3, %%rdi\n"
		"mov %[s], %%r8\n rol $4, %%r8\n"
		"mov %[s], %%r9\n rol $5, %%r9\n"
		"mov %[s], %%r10\n rol $6, %%r10\n"
		"mov %[s], %%r11\n rol $7, %%r11\n"
		"mov %[s], %%r12\n rol $8, %%r12\n"
		"mov %[s], %%r13\n rol $9, %%r13\n"
		"mov %[s], %%r14\n rol $10, %%r14\n"
		"mov %[s], %%r15\n rol $11, %%r15\n"
		"movq %%rbx, %%xmm0\n movq %%rsi, %%xmm1\n movq %%rdi, %%xmm2\n"
		"movq %%r8, %%xmm3\n movq %%r9, %%xmm4\n movq %%r10, %%xmm5\n"
		"movq %%r11, %%xmm6\n movq %%r12, %%xmm7\n movq %%r13, %%xmm8\n"
		"movq %%r14, %%xmm9\n movq %%r15, %%xmm10\n movq %%rbx, %%xmm11\n"
		"movq %%rsi, %%xmm12\n movq %%rdi, %%xmm13\n movq %%r8, %%xmm14\n"
		"movq %%r9, %%xmm15\n"
		"pshufd $0x44, %%xmm0, %%xmm0\n pshufd $0x44, %%xmm15, %%xmm15\n"
		"mov %[n], %%rcx\n"
		"std\n"
		"1: dec %%rcx\n jnz 1b\n"
		"pushfq\n pop %%rdx\n cld\n"
		"xor %%eax, %%eax\n"
		"bt $10, %%rdx\n jc 2f\n or $1, %%rax\n 2:\n"
#define CHECK(reg, rot) \
		"mov %[s], %%rdx\n rol $" #rot ", %%rdx\n xor %%rdx, %%" #reg "\n or %%" #reg ", %%rax\n"
		CHECK(rbx, 1) CHECK(rsi, 2) CHECK(rdi, 3) CHECK(r8, 4) CHECK(r9, 5)
		CHECK(r10, 6) CHECK(r11, 7) CHECK(r12, 8) CHECK(r13, 9) CHECK(r14, 10)
		CHECK(r15, 11)
#define XCHECK(x, rot) \
		"movq %%" #x ", %%rcx\n mov %[s], %%rdx\n rol $" #rot ", %%rdx\n" \
		"xor %%rdx, %%rcx\n or %%rcx, %%rax\n"
		XCHECK(xmm0, 1) XCHECK(xmm1, 2) XCHECK(xmm2, 3) XCHECK(xmm3, 4)
		XCHECK(xmm4, 5) XCHECK(xmm5, 6) XCHECK(xmm6, 7) XCHECK(xmm7, 8)
		XCHECK(xmm8, 9) XCHECK(xmm9, 10) XCHECK(xmm10, 11) XCHECK(xmm11, 1)
		XCHECK(xmm12, 2) XCHECK(xmm13, 3) XCHECK(xmm14, 4) XCHECK(xmm15, 5)
		/* The upper halves pshufd copied. */
		"pshufd $0xee, %%xmm0, %%xmm0\n pshufd $0xee, %%xmm15, %%xmm15\n"
		XCHECK(xmm0, 1) XCHECK(xmm15, 5)
		"mov %%rax, %[bad]\n"
		: [bad] "=m"(bad)
		: [s] "m"(seed), [n] "m"(n)
		: "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
		  "r12", "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
		  "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
		  "xmm13", "xmm14", "xmm15", "cc", "memory");
	return bad;
}

#define CHECKS 20

static void *fill_and_check(void *arg)
{
	uintptr_t i = (uintptr_t)arg;
	uint64_t seed = 0x0123456789abcdefULL * (i + 1) + i;
	mine = seed;
	uintptr_t failed = 0;
	for (int k = 0; k < CHECKS; k++) {
		if (check_regs(seed + k, 30000000) || mine != seed)
			failed++;
	}
	return (void *)failed;
}

static int registers(void)
{
	pthread_t t[2];
	for (uintptr_t i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, fill_and_check, (void *)i))
			return 2;
	int status = 0;
	for (int i = 0; i < 2; i++) {
		void *failed;
		pthread_join(t[i], &failed);
		printf("thread %d: %d checks, %lu failed\n", i, CHECKS, (unsigned long)(uintptr_t)failed);
		status |= failed != NULL;
	}
	return status;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "spinlock";
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "spinlock") || !strcmp(mode, "yield")) {
		yielding = !strcmp(mode, "yield");
		if (argc > 2)
			turns = atol(argv[2]);
		return spinlock();
	}
	if (!strcmp(mode, "progress"))
		return progress();
	if (!strcmp(mode, "sleeper"))
		return sleeper();
	if (!strcmp(mode, "registers"))
		return registers();
	if (!strcmp(mode, "share"))
		return share(argc > 2 ? atof(argv[2]) : 1.0);
	fprintf(stderr, "usage: timeshare spinlock|progress|yield [TURNS]|sleeper|registers|share SECONDS\n");
	return 2;
}
