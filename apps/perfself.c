/* perfself: counts its own execution with perf_event_open around known
 * workloads and prints the figures, one per line, for testsuite/tests/perf.rs:
 *   busy_ns N         wall time of a busy loop of ~200 ms
 *   task_clock_ns N   task-clock (pid 0) around that loop
 *   task_clock_pid N  task-clock opened on getpid() around the same loop
 *   cpu_ns N          CPU time getrusage(RUSAGE_SELF) counted around the loop
 *   sleeps N          nanosleeps of 2 ms made
 *   cs N              context switches (pid 0) around those sleeps
 *   touched_pages N   4 KiB pages of fresh memory written
 *   pf N              page faults (pid 0) around those writes
 *   minflt N          minor faults getrusage(RUSAGE_SELF) counted around them
 *   cycles ERRNO|ok   a hardware event: Linux's error where there is no PMU
 * Native Linux and mote must agree (see perf.rs for how closely). */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int open_event(uint32_t type, uint64_t config, pid_t pid)
{
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.type = type;
	a.config = config;
	a.disabled = 1;
	a.exclude_hv = 1;
	return (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, 0);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static struct rusage usage(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return u;
}

static uint64_t cpu_ns(struct rusage u)
{
	return ((uint64_t)u.ru_utime.tv_sec + (uint64_t)u.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)u.ru_utime.tv_usec + (uint64_t)u.ru_stime.tv_usec) * 1000u;
}

static void on(int fd)
{
	if (ioctl(fd, PERF_EVENT_IOC_RESET, 0) || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0)) {
		perror("ioctl");
		exit(1);
	}
}

static uint64_t off(int fd)
{
	uint64_t v = 0;
	if (ioctl(fd, PERF_EVENT_IOC_DISABLE, 0) || read(fd, &v, sizeof v) != sizeof v) {
		perror("read");
		exit(1);
	}
	return v;
}

static int must(int fd, const char *what)
{
	if (fd < 0) {
		fprintf(stderr, "perf_event_open %s: %s\n", what, strerror(errno));
		exit(1);
	}
	return fd;
}

int main(void)
{
	int clk = must(open_event(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, 0), "task-clock");
	int clk_pid = must(open_event(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK, getpid()),
			   "task-clock of getpid()");
	int cs = must(open_event(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CONTEXT_SWITCHES, 0),
		      "context-switches");
	int pf = must(open_event(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS, 0), "page-faults");

	on(clk);
	on(clk_pid);
	struct rusage u0 = usage();
	uint64_t t0 = now_ns();
	volatile uint64_t x = 0;
	while (now_ns() - t0 < 200000000u)
		for (int i = 0; i < 10000; i++)
			x += i;
	uint64_t busy = now_ns() - t0;
	uint64_t cpu = cpu_ns(usage()) - cpu_ns(u0);
	uint64_t task = off(clk);
	uint64_t task_pid = off(clk_pid);

	const int sleeps = 20;
	on(cs);
	for (int i = 0; i < sleeps; i++) {
		struct timespec d = { 0, 2000000 };
		nanosleep(&d, NULL);
	}
	uint64_t switches = off(cs);

	const size_t pages = 4096;
	char *m = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	on(pf);
	struct rusage f0 = usage();
	for (size_t i = 0; i < pages; i++)
		m[i * 4096] = 1;
	struct rusage f1 = usage();
	uint64_t faults = off(pf);

	int hw = open_event(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, 0);
	int hw_errno = errno;

	printf("busy_ns %llu\n", (unsigned long long)busy);
	printf("task_clock_ns %llu\n", (unsigned long long)task);
	printf("task_clock_pid %llu\n", (unsigned long long)task_pid);
	printf("cpu_ns %llu\n", (unsigned long long)cpu);
	printf("sleeps %d\n", sleeps);
	printf("cs %llu\n", (unsigned long long)switches);
	printf("touched_pages %zu\n", pages);
	printf("pf %llu\n", (unsigned long long)faults);
	printf("minflt %ld\n", f1.ru_minflt - f0.ru_minflt);
	if (hw >= 0)
		printf("cycles ok\n");
	else
		printf("cycles %s\n", hw_errno == ENOENT ? "ENOENT" : hw_errno == EOPNOTSUPP ? "EOPNOTSUPP" : strerror(hw_errno));
	return 0;
}
