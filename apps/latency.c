/*
 * latency: per-call cost of a call mote answers locally (getpid, issued with
 * syscall(SYS_getpid) so libc cannot cache it), of a forwarded null call
 * (getppid), of a forwarded one-byte write to /dev/null (write_devnull) and of
 * libc's clock_gettime(CLOCK_MONOTONIC) (the vDSO, natively and under mote). Each sample times a batch of calls with CLOCK_MONOTONIC; the batch
 * size is calibrated so one batch takes about 1 ms whatever a call costs, which
 * keeps a run well under a second natively and under a few seconds even at
 * 30 us per call. Prints one machine-readable line per call:
 *
 *   getpid median_ns=104.2 p99_ns=110.5 min_ns=101.0 batch=8192 samples=200
 *
 * The figures are per call, from the per-batch averages. --quick takes 100
 * samples per call instead of 200.
 *
 * With --raw, each call also gets a line with every per-call sample in order:
 *
 *   getpid raw_ns=104.1,103.9,...
 *
 * Under mote, the same calls are also measured through mote's direct entry
 * (`getauxval(AT_MOTE_SYSCALL)`: a plain function call into the runtime instead
 * of the `syscall` instruction), as `getpid_direct`, `getppid_direct`,
 * `write_devnull_direct` and `clock_gettime_direct`.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 200 /* per call; --quick: half */
#define TARGET_NS 1000000.0 /* one batch lasts about this long */
#define MAX_BATCH (1 << 20)

static double now_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("latency: clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* mote's direct entry (0 when not running under mote). */
#define AT_MOTE_SYSCALL 0x6d6f7465UL
typedef long (*direct_fn)(long, long, long, long, long, long, long);
static direct_fn direct;
static int use_direct;
static int raw; /* --raw: also print every sample */
static int samples = SAMPLES;

static int null_fd = -1; /* /dev/null, for SYS_write */

/* `batch` calls of `nr`: SYS_write writes one byte to /dev/null, SYS_clock_gettime
 * reads CLOCK_MONOTONIC (through libc, i.e. the vDSO where there is one), any
 * other number is called without arguments. */
static double batch_ns(long nr, long batch)
{
	static char byte;
	struct timespec ts;
	double t0 = now_ns();
	if (nr == SYS_write) {
		if (use_direct)
			for (long i = 0; i < batch; i++)
				direct(SYS_write, null_fd, (long)&byte, 1, 0, 0, 0);
		else
			for (long i = 0; i < batch; i++)
				if (write(null_fd, &byte, 1) != 1)
					abort();
	} else if (nr == SYS_clock_gettime) {
		if (use_direct)
			for (long i = 0; i < batch; i++)
				direct(SYS_clock_gettime, CLOCK_MONOTONIC, (long)&ts, 0, 0, 0, 0);
		else
			for (long i = 0; i < batch; i++)
				clock_gettime(CLOCK_MONOTONIC, &ts);
	} else if (use_direct) {
		for (long i = 0; i < batch; i++)
			direct(nr, 0, 0, 0, 0, 0, 0);
	} else {
		for (long i = 0; i < batch; i++)
			syscall(nr);
	}
	return now_ns() - t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void measure(const char *name, long nr)
{
	/* Warm up, then double the batch until it lasts TARGET_NS. */
	long batch = 1;
	batch_ns(nr, 16);
	while (batch < MAX_BATCH && batch_ns(nr, batch) < TARGET_NS)
		batch *= 2;

	static double per_call[SAMPLES], unsorted[SAMPLES];
	for (int s = 0; s < samples; s++)
		per_call[s] = unsorted[s] = batch_ns(nr, batch) / (double)batch;
	qsort(per_call, samples, sizeof per_call[0], cmp);
	double median = (per_call[samples / 2 - 1] + per_call[samples / 2]) / 2.0;
	double p99 = per_call[(samples * 99 + 99) / 100 - 1];
	printf("%s median_ns=%.1f p99_ns=%.1f min_ns=%.1f batch=%ld samples=%d\n", name, median, p99,
	       per_call[0], batch, samples);
	if (raw) {
		printf("%s raw_ns=", name);
		for (int s = 0; s < samples; s++)
			printf(s ? ",%.1f" : "%.1f", unsorted[s]);
		putchar('\n');
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0) {
			raw = 1;
		} else if (strcmp(argv[i], "--quick") == 0) {
			samples = SAMPLES / 2;
		} else {
			fprintf(stderr, "usage: latency [--quick] [--raw]\n");
			return 2;
		}
	}
	/* Sanity: the calls must answer what Linux answers. */
	if (syscall(SYS_getpid) != getpid() || syscall(SYS_getppid) <= 0) {
		fprintf(stderr, "latency: getpid/getppid returned nonsense\n");
		return 1;
	}
	null_fd = open("/dev/null", O_WRONLY);
	if (null_fd < 0) {
		perror("latency: /dev/null");
		return 1;
	}
	measure("getpid", SYS_getpid);
	measure("getppid", SYS_getppid);
	measure("write_devnull", SYS_write);
	measure("clock_gettime", SYS_clock_gettime);
	direct = (direct_fn)getauxval(AT_MOTE_SYSCALL);
	if (direct) {
		if (direct(SYS_getpid, 0, 0, 0, 0, 0, 0) != getpid()) {
			fprintf(stderr, "latency: mote's direct getpid returned nonsense\n");
			return 1;
		}
		use_direct = 1;
		measure("getpid_direct", SYS_getpid);
		measure("getppid_direct", SYS_getppid);
		measure("write_devnull_direct", SYS_write);
		measure("clock_gettime_direct", SYS_clock_gettime);
	}
	return 0;
}
