/*
 * mmapcycle: 10,000 anonymous mmap/munmap cycles of varied sizes (4 KiB to
 * 64 KiB, and every 100th cycle 2 MiB to 4 MiB + 4 KiB), with up to 16
 * mappings alive at once; each is checked for alignment, zero fill and overlap,
 * written with a pattern and verified before it is unmapped. Then mprotect,
 * MAP_FIXED, MAP_FIXED_NOREPLACE and partial munmap checks, including 4 KiB holes
 * punched into a 2 MiB-aligned mapping. No signal is needed: every check reads
 * or writes only memory that must be accessible. Exits non-zero on any mismatch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define MIB (1024UL * 1024UL)
#ifndef CYCLES
#define CYCLES 10000
#endif
#define LIVE 16

static int fails;

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond)) {                                    \
			fprintf(stderr, "mmapcycle: FAIL: " __VA_ARGS__); \
			fprintf(stderr, " (errno %d: %s)\n", errno, strerror(errno)); \
			if (++fails > 20)                         \
				exit(1);                          \
		}                                                 \
	} while (0)

/* Mostly small mappings; every BIG_EVERY-th cycle a large one (>= 2 MiB). */
static const size_t small_sizes[] = { PAGE, 2 * PAGE, 3 * PAGE, 5 * PAGE, 64 * 1024 };
static const size_t big_sizes[] = { 2 * MIB, 2 * MIB + PAGE, 3 * MIB, 4 * MIB + PAGE };
#define BIG_EVERY 100
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

static size_t size_of_cycle(int i)
{
	if (i % BIG_EVERY == BIG_EVERY - 1)
		return big_sizes[(size_t)(i / BIG_EVERY) % NELEMS(big_sizes)];
	return small_sizes[(size_t)i % NELEMS(small_sizes)];
}

struct slot {
	unsigned char *p;
	size_t len;
	uint64_t seed;
	size_t stride;
};

static uint64_t val(uint64_t seed, size_t off)
{
	return (seed * 0x9E3779B97F4A7C15ULL) ^ (off * 0xBF58476D1CE4E5B9ULL) ^ 0x94D049BB133111EBULL;
}

/* Offsets written in a mapping: every `stride` bytes plus the last word. */
static void fill(struct slot *s)
{
	for (size_t off = 0; off < s->len; off += s->stride)
		*(uint64_t *)(s->p + off) = val(s->seed, off);
	*(uint64_t *)(s->p + s->len - 8) = val(s->seed, s->len - 8);
}

static int verify(const struct slot *s)
{
	for (size_t off = 0; off < s->len; off += s->stride)
		if (*(uint64_t *)(s->p + off) != val(s->seed, off))
			return 0;
	return *(uint64_t *)(s->p + s->len - 8) == val(s->seed, s->len - 8);
}

static int zeroed(const unsigned char *p, size_t len, size_t stride)
{
	for (size_t off = 0; off < len; off += stride)
		if (*(const uint64_t *)(p + off) != 0)
			return 0;
	return *(const uint64_t *)(p + len - 8) == 0;
}

static void *map(void *addr, size_t len, int prot, int flags)
{
	return mmap(addr, len, prot, flags | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void cycles(void)
{
	struct slot live[LIVE] = { 0 };
	size_t big = 0, aligned2m = 0;
	uint64_t total = 0;

	for (int i = 0; i < CYCLES; i++) {
		struct slot *s = &live[i % LIVE];
		if (s->p) {
			CHECK(verify(s), "cycle %d: mapping of %zu bytes lost its contents", i, s->len);
			CHECK(munmap(s->p, s->len) == 0, "cycle %d: munmap", i);
			s->p = NULL;
		}
		size_t len = size_of_cycle(i);
		/* Every 97th cycle checks every page; the others sample every 64 KiB. */
		size_t stride = i % 97 == 0 ? PAGE : 64 * 1024;
		unsigned char *p = map(NULL, len, PROT_READ | PROT_WRITE, 0);
		CHECK(p != MAP_FAILED, "cycle %d: mmap(%zu)", i, len);
		if (p == MAP_FAILED)
			continue;
		CHECK((uintptr_t)p % PAGE == 0, "cycle %d: mmap returned unaligned %p", i, (void *)p);
		for (int j = 0; j < LIVE; j++) {
			const struct slot *o = &live[j];
			if (o->p && p < o->p + o->len && o->p < p + len)
				CHECK(0, "cycle %d: new mapping overlaps a live one", i);
		}
		CHECK(zeroed(p, len, stride), "cycle %d: fresh mapping of %zu bytes not zero", i, len);
		if (len >= 2 * MIB)
			big++;
		if ((uintptr_t)p % (2 * MIB) == 0)
			aligned2m++;
		*s = (struct slot){ p, len, (uint64_t)i + 1, stride };
		fill(s);
		total += len;
	}
	for (int j = 0; j < LIVE; j++) {
		if (live[j].p) {
			CHECK(verify(&live[j]), "final: mapping lost its contents");
			CHECK(munmap(live[j].p, live[j].len) == 0, "final munmap");
		}
	}
	printf("%d mmap/munmap cycles, up to %d alive, %zu of them >= 2 MiB, %lu MiB in total: ok\n",
	       CYCLES, LIVE, big, (unsigned long)(total / MIB));
	(void)aligned2m; /* placement is the kernel's choice; not part of the output */
}

static void protect_checks(void)
{
	/* Three pages: make the middle one read-only, then inaccessible, then writable. */
	unsigned char *p = map(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, 0);
	CHECK(p != MAP_FAILED, "mmap 3 pages");
	memset(p, 0x11, 3 * PAGE);
	CHECK(mprotect(p + PAGE, PAGE, PROT_READ) == 0, "mprotect middle page read-only");
	CHECK(p[PAGE] == 0x11 && p[2 * PAGE - 1] == 0x11, "read of read-only page");
	p[0] = 0x22;
	p[2 * PAGE] = 0x33; /* the neighbours stay writable */
	CHECK(mprotect(p + PAGE, PAGE, PROT_NONE) == 0, "mprotect middle page PROT_NONE");
	CHECK(mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect middle page back to RW");
	CHECK(p[PAGE] == 0x11, "contents kept across PROT_NONE");
	p[PAGE] = 0x44;
	CHECK(p[0] == 0x22 && p[PAGE] == 0x44 && p[2 * PAGE] == 0x33, "writes after mprotect");
	errno = 0;
	CHECK(mprotect(p + 1, PAGE, PROT_READ) == -1 && errno == EINVAL, "unaligned mprotect not EINVAL");
	printf("mprotect: read-only, PROT_NONE and back to read-write keep contents; unaligned gives EINVAL\n");

	/* munmap the middle page, then MAP_FIXED_NOREPLACE into the hole and onto a mapped page. */
	CHECK(munmap(p + PAGE, PAGE) == 0, "munmap middle page");
	errno = 0;
	CHECK(mprotect(p + PAGE, PAGE, PROT_READ) == -1 && errno == ENOMEM, "mprotect of a hole not ENOMEM");
	errno = 0;
	void *q = map(p, PAGE, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
	CHECK(q == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE on a mapped page not EEXIST");
	q = map(p + PAGE, PAGE, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
	CHECK(q == p + PAGE, "MAP_FIXED_NOREPLACE into the hole");
	CHECK(p[PAGE] == 0 && p[2 * PAGE - 1] == 0, "page mapped into the hole not zero");
	CHECK(p[0] == 0x22 && p[2 * PAGE] == 0x33, "neighbours of the hole changed");
	/* MAP_FIXED over existing memory replaces it with fresh zero pages. */
	q = map(p, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_FIXED);
	CHECK(q == p, "MAP_FIXED over a mapping");
	CHECK(p[0] == 0 && p[PAGE] == 0 && p[2 * PAGE] == 0, "MAP_FIXED did not give zero pages");
	CHECK(munmap(p, 3 * PAGE) == 0, "munmap 3 pages");
	printf("munmap of one page, MAP_FIXED_NOREPLACE (EEXIST, then into the hole), MAP_FIXED: ok\n");

	/* A 2 MiB-aligned 4 MiB region (large-page candidate): punch 4 KiB holes and
	 * change the protection of one 4 KiB page inside it. */
	unsigned char *raw = map(NULL, 6 * MIB, PROT_READ | PROT_WRITE, 0);
	CHECK(raw != MAP_FAILED, "mmap 6 MiB");
	unsigned char *big = (unsigned char *)(((uintptr_t)raw + 2 * MIB - 1) & ~(2 * MIB - 1));
	if (big > raw)
		CHECK(munmap(raw, (size_t)(big - raw)) == 0, "trim head");
	if (big + 4 * MIB < raw + 6 * MIB)
		CHECK(munmap(big + 4 * MIB, (size_t)(raw + 6 * MIB - (big + 4 * MIB))) == 0, "trim tail");
	struct slot s = { big, 4 * MIB, 777, PAGE };
	fill(&s);
	CHECK(mprotect(big + MIB, PAGE, PROT_READ) == 0, "mprotect 4 KiB inside 2 MiB");
	CHECK(verify(&s), "contents after mprotect of 4 KiB inside 2 MiB");
	CHECK(mprotect(big + MIB, PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect back");
	*(uint64_t *)(big + MIB) = val(s.seed, MIB);
	CHECK(munmap(big + 3 * MIB, PAGE) == 0, "munmap 4 KiB inside the second 2 MiB");
	int ok = 1;
	for (size_t off = 0; off < 4 * MIB; off += PAGE)
		if (off != 3 * MIB && *(uint64_t *)(big + off) != val(s.seed, off))
			ok = 0;
	CHECK(ok, "pages around a 4 KiB hole at 3 MiB lost their contents");
	q = map(big + 3 * MIB, PAGE, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
	CHECK(q == big + 3 * MIB, "remap the hole");
	CHECK(zeroed(big + 3 * MIB, PAGE, 8), "remapped hole not zero");
	CHECK(munmap(big, 4 * MIB) == 0, "munmap 4 MiB");
	printf("2 MiB-aligned 4 MiB region: 4 KiB mprotect and 4 KiB hole inside it keep the rest intact\n");

	/* Argument errors. */
	errno = 0;
	CHECK(map(NULL, 0, PROT_READ, 0) == MAP_FAILED && errno == EINVAL, "mmap of length 0 not EINVAL");
	errno = 0;
	CHECK(munmap((void *)(uintptr_t)(PAGE + 1), PAGE) == -1 && errno == EINVAL, "unaligned munmap not EINVAL");
	CHECK(munmap(big, 4 * MIB) == 0, "munmap of an unmapped range must succeed");
	printf("mmap length 0 and unaligned munmap give EINVAL; munmap of a hole succeeds\n");
}

int main(void)
{
	cycles();
	protect_checks();
	if (fails) {
		fprintf(stderr, "mmapcycle: %d check(s) failed\n", fails);
		return 1;
	}
	printf("mmapcycle: all checks passed\n");
	return 0;
}
