/*
 * gups: GUPS-style random updates (after HPCC RandomAccess, our own code). A
 * table of 64-bit words much larger than the TLB's reach (1 GiB, or 64 MiB with
 * --quick) gets `table[r & (n-1)] ^= r` for a pseudo-random stream r (the HPCC
 * LFSR); every update is a dependent-free random read-modify-write, so the
 * figure is TLB- and memory-latency-bound. Prints:
 *
 *   table_mib=1024 updates=16777216 seconds=... ns_per_update=... gups=... errors=0
 *   cpu_ns_per_update=...   (CPU time of the updating thread, see below)
 *   large_pages_pct=... resident_mib=...   (the table's pages, see pages.h)
 *
 * ns_per_update is wall-clock time; cpu_ns_per_update the CPU time of the
 * thread (getrusage(RUSAGE_THREAD), user + system), which other programs
 * sharing the core do not inflate (under mote: the LWK core's time).
 *
 * Verification: the same stream is applied again (XOR undoes it) and the table
 * must be back to table[i] = i; exits 1 otherwise.
 *
 * --hugetlb puts the table on 2 MiB hugetlbfs pages (MAP_HUGETLB; they must be
 * reserved: /proc/sys/vm/nr_hugepages): natively, the ceiling large pages give.
 *
 * usage: gups [--quick] [--hugetlb] [--log2-words N] [--updates N]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "pages.h"

#define POLY 0x0000000000000007ULL

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void update(uint64_t *table, uint64_t mask, long updates)
{
	uint64_t r = 1;
	for (long i = 0; i < updates; i++) {
		r = (r << 1) ^ ((int64_t)r < 0 ? POLY : 0);
		table[r & mask] ^= r;
	}
}

int main(int argc, char **argv)
{
	int log2_words = 27; /* 2^27 words = 1 GiB */
	long updates = 1L << 24;
	int hugetlb = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			log2_words = 23; /* 64 MiB */
			updates = 1L << 22;
		} else if (!strcmp(argv[i], "--hugetlb"))
			hugetlb = 1;
		else if (!strcmp(argv[i], "--log2-words") && i + 1 < argc)
			log2_words = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--updates") && i + 1 < argc)
			updates = atol(argv[++i]);
		else {
			fprintf(stderr,
				"usage: gups [--quick] [--hugetlb] [--log2-words N] [--updates N]\n");
			return 2;
		}
	}
	if (log2_words < 10 || log2_words > 34 || updates < 1) {
		fprintf(stderr, "gups: table of 2^10..2^34 words, at least one update\n");
		return 2;
	}
	uint64_t words = 1ULL << log2_words, mask = words - 1;
	uint64_t *table = mmap(NULL, words * 8, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | (hugetlb ? MAP_HUGETLB : 0), -1, 0);
	if (table == MAP_FAILED) {
		perror(hugetlb ? "gups: mmap with MAP_HUGETLB (reserve 2 MiB pages: "
				 "/proc/sys/vm/nr_hugepages)"
			       : "gups: mmap");
		return 1;
	}
	for (uint64_t i = 0; i < words; i++)
		table[i] = i;

	double c0 = thread_cpu_s();
	double t0 = now_s();
	update(table, mask, updates);
	double secs = now_s() - t0;
	double cpu = thread_cpu_s() - c0;

	update(table, mask, updates);
	long errors = 0;
	for (uint64_t i = 0; i < words; i++)
		errors += table[i] != i;

	printf("table_mib=%llu\nupdates=%ld\nseconds=%.6f\n", (unsigned long long)(words * 8 >> 20),
	       updates, secs);
	printf("ns_per_update=%.3f\ngups=%.6f\nerrors=%ld\n", secs * 1e9 / (double)updates,
	       (double)updates / secs * 1e-9, errors);
	printf("cpu_ns_per_update=%.3f\n", cpu * 1e9 / (double)updates);
	print_pages(table, words * 8, NULL);
	if (errors) {
		fprintf(stderr, "gups: %ld table entries wrong after undoing the updates\n", errors);
		return 1;
	}
	return 0;
}
