/*
 * partition: what a program learns about the machine it runs on — the number of
 * CPUs (sysconf, which reads /sys/devices/system/cpu/online, and the affinity
 * mask), /proc/cpuinfo's processors, /proc/meminfo's MemTotal, /proc/self/status's
 * Threads and Cpus_allowed_list — and how served /proc files behave as
 * descriptors (opening for writing is EACCES, writing a read-only descriptor is
 * EBADF, O_CLOEXEC is honoured, the number is the lowest free one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void first_line(const char *path)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof buf, f) == NULL)
		snprintf(buf, sizeof buf, "(unreadable: %s)\n", strerror(errno));
	if (f != NULL)
		fclose(f);
	printf("%s: %s", path, buf);
}

static void lines_starting(const char *path, const char *prefix, int count_only)
{
	char buf[512];
	int n = 0;
	FILE *f = fopen(path, "r");
	while (f != NULL && fgets(buf, sizeof buf, f) != NULL)
		if (strncmp(buf, prefix, strlen(prefix)) == 0) {
			n++;
			if (!count_only)
				printf("%s: %s", path, buf);
		}
	if (f != NULL)
		fclose(f);
	if (count_only)
		printf("%s: %d lines starting '%s'\n", path, n, prefix);
}

int main(void)
{
	printf("nprocs_onln: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	printf("nprocs_conf: %ld\n", sysconf(_SC_NPROCESSORS_CONF));
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		printf("affinity: %d cpus\n", CPU_COUNT(&set));
	else
		printf("affinity: %s\n", strerror(errno));
	first_line("/sys/devices/system/cpu/online");
	first_line("/sys/devices/system/cpu/possible");
	lines_starting("/proc/cpuinfo", "processor", 1);
	lines_starting("/proc/meminfo", "MemTotal:", 0);
	lines_starting("/proc/self/status", "Threads:", 0);
	lines_starting("/proc/self/status", "Cpus_allowed_list:", 0);

	/* /proc/self/statm and /proc/self/status tell the same sizes. */
	unsigned long size = 0, resident = 0, vmsize = 0, vmrss = 0;
	char line[256];
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL && fscanf(f, "%lu %lu", &size, &resident) != 2)
		size = 0;
	if (f != NULL)
		fclose(f);
	f = fopen("/proc/self/status", "r");
	while (f != NULL && fgets(line, sizeof line, f) != NULL) {
		sscanf(line, "VmSize: %lu", &vmsize);
		sscanf(line, "VmRSS: %lu", &vmrss);
	}
	if (f != NULL)
		fclose(f);
	printf("statm agrees with status: %s\n",
	       size > 0 && size * 4 == vmsize && resident * 4 == vmrss ? "yes" : "no");

	int w = open("/proc/self/maps", O_WRONLY);
	printf("open maps for writing: %s\n", w < 0 ? strerror(errno) : "succeeded");
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	int fdflags = fcntl(fd, F_GETFD);
	printf("O_CLOEXEC kept: %s\n", fdflags >= 0 && (fdflags & FD_CLOEXEC) ? "yes" : "no");
	printf("opened read-only: %s\n", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY ? "yes" : "no");
	int r = write(fd, "x", 1);
	printf("write to it: %s\n", r < 0 ? strerror(errno) : "succeeded");
	close(fd);
	/* open returns the lowest free descriptor, as always. */
	int lowest = open("/dev/null", O_RDONLY);
	close(lowest);
	fd = open("/proc/self/maps", O_RDONLY);
	printf("lowest descriptor: %s\n", fd == lowest ? "yes" : "no");
	close(fd);
	return 0;
}
