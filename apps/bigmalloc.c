/*
 * bigmalloc: malloc(512 MiB), fill every 64-bit word with a position-dependent
 * pattern (so every page is touched), verify it, free it, and print a checksum.
 * Exits non-zero on any mismatch.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define SIZE (512UL << 20)
#define PAGE 4096UL

static uint64_t pattern(uint64_t i)
{
	return (i + 1) * 0x9E3779B97F4A7C15ULL;
}

int main(void)
{
	uint64_t *p = malloc(SIZE);
	if (p == NULL) {
		fprintf(stderr, "bigmalloc: malloc(%lu) failed\n", SIZE);
		return 1;
	}
	printf("allocated %lu MiB\n", SIZE >> 20);

	size_t words = SIZE / sizeof *p;
	/* Fresh memory from the allocator of this size comes from mmap: zero. */
	for (size_t pg = 0; pg < SIZE / PAGE; pg++) {
		if (p[pg * (PAGE / sizeof *p) + 7] != 0) {
			fprintf(stderr, "bigmalloc: page %zu is not zero-filled\n", pg);
			return 1;
		}
	}
	printf("all %lu pages zero-filled\n", SIZE / PAGE);

	for (size_t i = 0; i < words; i++)
		p[i] = pattern(i);

	uint64_t sum = 0;
	for (size_t i = 0; i < words; i++) {
		if (p[i] != pattern(i)) {
			fprintf(stderr, "bigmalloc: word %zu (page %zu) holds %#lx, expected %#lx\n", i,
				i * sizeof *p / PAGE, (unsigned long)p[i], (unsigned long)pattern(i));
			return 1;
		}
		sum = ((sum << 7) | (sum >> 57)) ^ p[i];
	}
	printf("touched and verified %lu pages\n", SIZE / PAGE);
	free(p);
	printf("freed; checksum %016lx\n", (unsigned long)sum);
	return 0;
}
