/*
 * stream: the STREAM triad kernel (a[i] = b[i] + s * c[i], after McCalpin's
 * STREAM, our own code) over three arrays much larger than the caches (160 MiB
 * each, 16 MiB with --quick), repeated; the best repetition after the first
 * gives the bandwidth, counting 24 bytes moved per element as STREAM does.
 * Prints:
 *
 *   elements=... array_mib=... reps=... best_seconds=... triad_gbs=... avg_gbs=... errors=0
 *   large_pages_pct=... resident_mib=...   (array a's pages, see pages.h)
 *
 * Verification: every a[i] must equal b[i] + s * c[i] exactly; exits 1 otherwise.
 *
 * usage: stream [--quick] [--elements N] [--reps N]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pages.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void triad(double *restrict a, const double *restrict b, const double *restrict c,
		  double s, long n)
{
	for (long i = 0; i < n; i++)
		a[i] = b[i] + s * c[i];
}

int main(int argc, char **argv)
{
	long n = 20L * 1000 * 1000, reps = 10;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			n = 2L * 1000 * 1000;
			reps = 5;
		} else if (!strcmp(argv[i], "--elements") && i + 1 < argc)
			n = atol(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			reps = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: stream [--quick] [--elements N] [--reps N]\n");
			return 2;
		}
	}
	if (n < 1000 || reps < 2) {
		fprintf(stderr, "stream: at least 1000 elements and 2 repetitions\n");
		return 2;
	}
	double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
	if (!a || !b || !c) {
		perror("stream: malloc");
		return 1;
	}
	for (long i = 0; i < n; i++) {
		a[i] = 0.0;
		b[i] = 2.0 + (double)(i % 7);
		c[i] = 0.5 * (double)(i % 5);
	}
	const double s = 3.0;
	double best = 1e30, total = 0;
	for (long r = 0; r < reps; r++) {
		double t0 = now_s();
		triad(a, b, c, s, n);
		double t = now_s() - t0;
		if (r > 0) {
			total += t;
			if (t < best)
				best = t;
		}
	}
	long errors = 0;
	for (long i = 0; i < n; i++)
		errors += a[i] != b[i] + s * c[i];
	double bytes = 3.0 * sizeof(double) * (double)n;
	printf("elements=%ld\narray_mib=%.1f\nreps=%ld\nbest_seconds=%.6f\n", n,
	       (double)n * sizeof(double) / (1 << 20), reps, best);
	printf("triad_gbs=%.3f\navg_gbs=%.3f\nerrors=%ld\n", bytes / best * 1e-9,
	       bytes / (total / (double)(reps - 1)) * 1e-9, errors);
	print_pages(a, n * sizeof *a, NULL);
	if (errors) {
		fprintf(stderr, "stream: %ld elements wrong\n", errors);
		return 1;
	}
	return 0;
}
