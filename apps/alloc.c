/*
 * alloc: a malloc/free-heavy allocator test. SLOTS pointers; each operation picks
 * a slot at random: a full slot is checked and freed, an empty one gets a new
 * block of a random size (mostly 16-256 bytes, some up to 4 KiB, a few up to
 * 64 KiB) whose first and last bytes are stamped. Exercises the C library's
 * allocator and, when its heap grows or shrinks, brk/mmap. Prints:
 *
 *   ops=... seconds=... ops_per_sec=... ns_per_op=... cpu_ns_per_op=... peak_live=... errors=0
 *   large_pages_pct=... resident_mib=...   (the [heap] at the end, see pages.h)
 *
 * ns_per_op is wall-clock time; cpu_ns_per_op the CPU time of the thread that
 * ran the loop (getrusage(RUSAGE_THREAD), user + system), which other programs
 * sharing the core do not inflate. Natively it includes the kernel's work for
 * the thread (brk, page faults); under mote it is the LWK core's time
 * (application, libos, kernel work on that core), without what the proxy does
 * for it on the Linux core.
 *
 * Verification: every block still holds its stamps when freed; exits 1 otherwise.
 *
 * usage: alloc [--quick] [--ops N]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pages.h"

#define SLOTS 8192

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t pick_size(void)
{
	uint64_t r = next() % 100;
	if (r < 70)
		return 16 + next() % 241;
	if (r < 95)
		return 256 + next() % (4096 - 256 + 1);
	return 4096 + next() % (65536 - 4096 + 1);
}

static unsigned char *block[SLOTS];
static size_t size[SLOTS];

int main(int argc, char **argv)
{
	long ops = 10L * 1000 * 1000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			ops = 1000 * 1000;
		else if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			ops = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: alloc [--quick] [--ops N]\n");
			return 2;
		}
	}
	long errors = 0, live = 0, peak = 0;
	double c0 = thread_cpu_s();
	double t0 = now_s();
	for (long op = 0; op < ops; op++) {
		unsigned s = next() % SLOTS;
		if (block[s]) {
			unsigned char stamp = (unsigned char)s;
			errors += block[s][0] != stamp || block[s][size[s] - 1] != (unsigned char)~stamp;
			free(block[s]);
			block[s] = NULL;
			live--;
		} else {
			size[s] = pick_size();
			block[s] = malloc(size[s]);
			if (!block[s]) {
				perror("alloc: malloc");
				return 1;
			}
			block[s][0] = (unsigned char)s;
			block[s][size[s] - 1] = (unsigned char)~s;
			if (++live > peak)
				peak = live;
		}
	}
	double secs = now_s() - t0;
	double cpu = thread_cpu_s() - c0;
	printf("ops=%ld\nseconds=%.6f\nops_per_sec=%.0f\nns_per_op=%.2f\ncpu_ns_per_op=%.2f\n"
	       "peak_live=%ld\nerrors=%ld\n",
	       ops, secs, (double)ops / secs, secs * 1e9 / (double)ops, cpu * 1e9 / (double)ops, peak,
	       errors);
	print_pages(NULL, 0, "[heap]");
	for (unsigned s = 0; s < SLOTS; s++)
		free(block[s]);
	if (errors) {
		fprintf(stderr, "alloc: %ld blocks lost their stamps\n", errors);
		return 1;
	}
	return 0;
}
