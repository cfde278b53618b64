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
 *   timeshare share SECONDS     four CPU-bound threads for SECONDS; prints each
 *                               one's share of the work (a benchmark)
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
	for (int i = 0; i < NWORK; i++)
		printf("share%d=%.4f\n", i, total ? (double)work[i] / total : 0.0);
	return 0;
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
	if (!strcmp(mode, "share"))
		return share(argc > 2 ? atof(argv[2]) : 1.0);
	fprintf(stderr, "usage: timeshare spinlock|progress|yield [TURNS]|share SECONDS\n");
	return 2;
}
