/*
 * memcheck: the memory policy, seen from the application.
 *
 * Maps 1 GiB of anonymous memory, writes every 4 KiB page, and reports how the
 * mapping is backed, from the files Linux offers for it: its /proc/self/maps line
 * and the KernelPageSize / AnonHugePages lines of its /proc/self/smaps entry. It
 * counts the page faults taken meanwhile with the minflt and majflt fields of
 * /proc/self/stat (under mote: the faults kernel-min took). It also checks
 * madvise(MADV_DONTNEED) zeroing, mremap keeping contents (and MREMAP_DONTUNMAP
 * leaving zero memory behind), MAP_FIXED_NOREPLACE
 * refusing a taken range and MAP_POPULATE/MAP_NORESERVE/MAP_STACK memory.
 *
 * Prints `key: value` lines, then "memcheck: all checks passed"; exits 1 when a
 * check fails. With the argument `rofault` it instead writes to a page it made
 * read-only with mprotect (the run ends with SIGSEGV, as natively).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GIB (1UL << 30)
#define PAGE 4096UL

static int failed;

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("FAILED: %s\n", what);
		failed = 1;
	}
}

/* minflt + majflt of /proc/self/stat (fields 10 and 12). */
static unsigned long faults(void)
{
	char buf[1024];
	FILE *f = fopen("/proc/self/stat", "r");
	if (f == NULL || fgets(buf, sizeof buf, f) == NULL) {
		perror("memcheck: /proc/self/stat");
		exit(1);
	}
	fclose(f);
	char *p = strrchr(buf, ')');
	unsigned long v[10] = { 0 };
	/* After ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt */
	if (p == NULL || sscanf(p + 2, "%*c %lu %lu %lu %lu %lu %lu %lu %lu %lu", &v[0], &v[1],
				&v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) != 9) {
		fprintf(stderr, "memcheck: cannot parse /proc/self/stat\n");
		exit(1);
	}
	return v[6] + v[8];
}

/* Print the maps line of the mapping at `a` and its smaps page-size lines. */
static void describe(void *a)
{
	char line[512], want[32];
	snprintf(want, sizeof want, "%lx-", (unsigned long)a);
	FILE *f = fopen("/proc/self/smaps", "r");
	if (f == NULL) {
		perror("memcheck: /proc/self/smaps");
		exit(1);
	}
	int in = 0, found = 0;
	while (fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\n")] = 0;
		if (strchr(line, '-') != NULL && strchr(line, ':') != NULL &&
		    strncmp(line, "VmFlags", 7) != 0 && line[0] != ' ' &&
		    strspn(line, "0123456789abcdef") == strcspn(line, "-")) {
			in = strncmp(line, want, strlen(want)) == 0;
			if (in) {
				found = 1;
				printf("smaps: %s\n", line);
			}
			continue;
		}
		if (in && (strncmp(line, "Size:", 5) == 0 ||
			   strncmp(line, "KernelPageSize:", 15) == 0 ||
			   strncmp(line, "MMUPageSize:", 12) == 0 ||
			   strncmp(line, "AnonHugePages:", 14) == 0))
			printf("smaps: %s\n", line);
	}
	fclose(f);
	check(found, "the mapping is in /proc/self/smaps");

	f = fopen("/proc/self/maps", "r");
	found = 0;
	while (f != NULL && fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, want, strlen(want)) == 0) {
			printf("maps: %s", line);
			found = 1;
		}
	if (f != NULL)
		fclose(f);
	check(found, "the mapping is in /proc/self/maps");
}

static int rofault(void)
{
	char *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 1;
	p[0] = 1;
	if (mprotect(p, PAGE, PROT_READ) != 0)
		return 1;
	p[PAGE] = 2; /* still writable */
	printf("rofault: reading %d, writing the read-only page\n", p[0]);
	fflush(stdout);
	p[0] = 3;
	printf("rofault: the write did not fault\n");
	return 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "rofault") == 0)
		return rofault();

	unsigned long before = faults();
	unsigned char *a = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED) {
		perror("memcheck: mmap 1 GiB");
		return 1;
	}
	for (unsigned long off = 0; off < GIB; off += PAGE)
		a[off] = (unsigned char)(off / PAGE) | 1;
	unsigned long sum = 0;
	for (unsigned long off = 0; off < GIB; off += PAGE)
		sum += a[off];
	check(sum != 0, "1 GiB written");
	describe(a);

	/* MADV_DONTNEED: anonymous memory reads zero afterwards, as on Linux. */
	check(madvise(a + 2 * (2UL << 20), 2UL << 20, MADV_DONTNEED) == 0, "madvise");
	check(a[2 * (2UL << 20)] == 0 && a[3 * (2UL << 20) - PAGE] == 0, "DONTNEED zeroes");
	check(a[3 * (2UL << 20)] != 0, "DONTNEED stops at its end");

	/* MAP_FIXED_NOREPLACE over a taken range. */
	void *t = mmap(a, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	check(t == MAP_FAILED, "MAP_FIXED_NOREPLACE refuses a taken range");

	/* Flags that only say how to back memory: it is there and zero. */
	int flags[] = { MAP_POPULATE, MAP_NORESERVE, MAP_STACK };
	for (int i = 0; i < 3; i++) {
		unsigned char *m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | flags[i], -1, 0);
		check(m != MAP_FAILED && m[2 * PAGE] == 0, "MAP_POPULATE/NORESERVE/STACK");
		m[PAGE] = 7;
		munmap(m, 3 * PAGE);
	}

	/* mremap: shrink, then grow with MAYMOVE; contents stay. */
	unsigned char *s = mremap(a, GIB, 64UL << 20, 0);
	check(s == a, "mremap shrinks in place");
	unsigned char *g = mremap(s, 64UL << 20, 128UL << 20, MREMAP_MAYMOVE);
	check(g != MAP_FAILED && g[PAGE] == ((1 | 1)) && g[(64UL << 20) - PAGE] != 0,
	      "mremap grows keeping contents");
	check(g != MAP_FAILED && g[(100UL << 20)] == 0, "mremap's new part reads zero");

	/* MREMAP_DONTUNMAP: the pages move, the old range stays and reads zero (some
	 * kernels refuse it with EINVAL; then say so). */
	unsigned char *d = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	check(d != MAP_FAILED, "mmap 2 pages");
	d[PAGE] = 42;
	unsigned char *e = mremap(d, 2 * PAGE, 2 * PAGE, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (e == MAP_FAILED) {
		printf("dontunmap: refused (%s)\n", strerror(errno));
	} else {
		check(e != d && e[PAGE] == 42, "MREMAP_DONTUNMAP moves the pages");
		check(d[PAGE] == 0, "MREMAP_DONTUNMAP leaves zero memory behind");
		printf("dontunmap: moved, the old range reads zero\n");
	}

	unsigned long after = faults();
	printf("page faults: %lu\n", after - before);
	munmap(g, 128UL << 20);
	if (failed)
		return 1;
	printf("memcheck: all checks passed\n");
	return 0;
}
