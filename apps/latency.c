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
 *
 * With --floor-cpu N (natively; `mote bench` passes its Linux core), also
 * `getppid_floor`: what any shared-memory offload of getppid costs on this
 * machine. A thread pinned to CPU N serves calls from this one through two
 * cache lines laid out and used as mote's IKC slot is (`mote_abi::ikc`: the
 * request line with its sequence number, the response line apart, `pause` in
 * both spins) and runs getppid with a `syscall` instruction, as mote's proxy
 * does. Two cache-line handoffs plus Linux's own call: mote's forwarded
 * getppid cannot beat it, so its ratio to this figure is the runtime's cost.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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

/* The floor's slot: a request line and a response line, as mote's IKC slot. */
struct __attribute__((aligned(64))) floor_req {
	uint32_t seq;
	uint32_t op;
	uint64_t nr;
	uint64_t args[6];
};
struct __attribute__((aligned(64))) floor_resp {
	uint32_t seq;
	uint32_t waiting;
	int64_t ret;
};
static struct floor_req floor_req;
static struct floor_resp floor_resp;
static int use_floor; /* batch_ns: calls go through the floor's slot */
static uint32_t floor_stop; /* the floor's server ends (seq of the last call) */

static long floor_call(long nr)
{
	uint32_t s = floor_req.seq + 1;
	floor_req.nr = (uint64_t)nr;
	__atomic_store_n(&floor_req.seq, s, __ATOMIC_RELEASE);
	while (__atomic_load_n(&floor_resp.seq, __ATOMIC_ACQUIRE) != s)
		__builtin_ia32_pause();
	return floor_resp.ret;
}

static void *floor_server(void *arg)
{
	int cpu = *(int *)arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0) {
		perror("latency: --floor-cpu: sched_setaffinity");
		exit(1);
	}
	uint32_t last = 0;
	for (;;) {
		uint32_t s;
		while ((s = __atomic_load_n(&floor_req.seq, __ATOMIC_ACQUIRE)) == last)
			__builtin_ia32_pause();
		last = s;
		long ret = syscall((long)floor_req.nr);
		floor_resp.ret = ret;
		__atomic_store_n(&floor_resp.seq, s, __ATOMIC_RELEASE);
		if (__atomic_load_n(&floor_stop, __ATOMIC_ACQUIRE) == s)
			return NULL;
	}
}

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
	} else if (use_floor) {
		for (long i = 0; i < batch; i++)
			floor_call(nr);
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

/* getppid_floor: the same getppid through the floor's slot, served on `cpu`. */
static void measure_floor(int cpu)
{
	static int server_cpu;
	server_cpu = cpu;
	pthread_t t;
	int e = pthread_create(&t, NULL, floor_server, &server_cpu);
	if (e != 0) {
		fprintf(stderr, "latency: --floor-cpu: cannot start the server thread: %s\n", strerror(e));
		exit(1);
	}
	if (floor_call(SYS_getppid) != getppid()) {
		fprintf(stderr, "latency: the floor's getppid returned nonsense\n");
		exit(1);
	}
	use_floor = 1;
	measure("getppid_floor", SYS_getppid);
	use_floor = 0;
	/* The server ends after answering the next call. */
	__atomic_store_n(&floor_stop, floor_req.seq + 1, __ATOMIC_RELEASE);
	floor_call(SYS_getppid);
	pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
	int floor_cpu = -1;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--raw") == 0) {
			raw = 1;
		} else if (strcmp(argv[i], "--quick") == 0) {
			samples = SAMPLES / 2;
		} else if (strcmp(argv[i], "--floor-cpu") == 0 && i + 1 < argc) {
			char *end;
			long c = strtol(argv[++i], &end, 10);
			if (*end != '\0' || c < 0 || c >= CPU_SETSIZE) {
				fprintf(stderr, "latency: --floor-cpu %s: not a CPU number\n", argv[i]);
				return 2;
			}
			floor_cpu = (int)c;
		} else {
			fprintf(stderr, "usage: latency [--quick] [--raw] [--floor-cpu N]\n");
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
	if (floor_cpu >= 0)
		measure_floor(floor_cpu);
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
