/*
 * fwq: the ASC Sequoia Fixed Work Quantum benchmark, our own code. The same
 * fixed quantum of work (a dependent chain of integer multiply-adds) is timed
 * with rdtsc SAMPLES times in a row; on a quiet core every sample takes the
 * same number of cycles, and whatever the OS (or the hypervisor) does to the
 * core shows up as longer samples. Prints machine-readable lines:
 *
 *   samples=10000 work=16384 min_cycles=... median_cycles=... mean_cycles=...
 *   p99_cycles=... max_cycles=... max_min_ratio=... mean_min_ratio=...
 *
 * and, with --raw, every sample in order as `raw_cycles=c0,c1,...`.
 * Exits 1 if a quantum computed a different result (the work was not fixed).
 *
 * usage: fwq [--quick] [--samples N] [--work W] [--raw]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
	return (uint64_t)hi << 32 | lo;
}

/* One quantum: `work` dependent multiply-adds (an LCG step each). */
static uint64_t quantum(uint64_t x, long work)
{
	for (long i = 0; i < work; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		__asm__ volatile("" : "+r"(x)); /* keep the chain; no closed form */
	}
	return x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long samples = 10000, work = 1L << 16;
	int raw = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			work = 1L << 14;
		else if (!strcmp(argv[i], "--raw"))
			raw = 1;
		else if (!strcmp(argv[i], "--samples") && i + 1 < argc)
			samples = atol(argv[++i]);
		else if (!strcmp(argv[i], "--work") && i + 1 < argc)
			work = atol(argv[++i]);
		else {
			fprintf(stderr, "usage: fwq [--quick] [--samples N] [--work W] [--raw]\n");
			return 2;
		}
	}
	if (samples < 1 || work < 1) {
		fprintf(stderr, "fwq: samples and work must be positive\n");
		return 2;
	}
	uint64_t *cycles = malloc(samples * sizeof *cycles);
	uint64_t *sorted = malloc(samples * sizeof *sorted);
	if (!cycles || !sorted) {
		perror("fwq: malloc");
		return 1;
	}
	/* Touch the arrays and warm up before the first sample. */
	memset(cycles, 0, samples * sizeof *cycles);
	const uint64_t expect = quantum(1, work);
	long wrong = 0;
	for (long s = 0; s < samples; s++) {
		uint64_t t0 = rdtsc();
		uint64_t r = quantum(1, work);
		uint64_t t1 = rdtsc();
		cycles[s] = t1 - t0;
		wrong += r != expect;
	}

	memcpy(sorted, cycles, samples * sizeof *sorted);
	qsort(sorted, samples, sizeof *sorted, cmp_u64);
	double sum = 0;
	for (long s = 0; s < samples; s++)
		sum += (double)sorted[s];
	double min = (double)sorted[0], max = (double)sorted[samples - 1];
	double median = samples % 2 ? (double)sorted[samples / 2]
				    : ((double)sorted[samples / 2 - 1] + (double)sorted[samples / 2]) / 2;
	double p99 = (double)sorted[(samples * 99 + 99) / 100 - 1];
	double mean = sum / (double)samples;
	printf("samples=%ld\nwork=%ld\n", samples, work);
	printf("min_cycles=%.0f\nmedian_cycles=%.1f\nmean_cycles=%.1f\np99_cycles=%.0f\nmax_cycles=%.0f\n",
	       min, median, mean, p99, max);
	printf("max_min_ratio=%.4f\nmean_min_ratio=%.4f\n", max / min, mean / min);
	if (raw) {
		fputs("raw_cycles=", stdout);
		for (long s = 0; s < samples; s++)
			printf(s ? ",%llu" : "%llu", (unsigned long long)cycles[s]);
		putchar('\n');
	}
	printf("wrong_quanta=%ld\n", wrong);
	if (wrong) {
		fprintf(stderr, "fwq: %ld quanta computed a different result\n", wrong);
		return 1;
	}
	return 0;
}
