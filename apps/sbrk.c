/*
 * sbrk: moves the program break up and down with sbrk(2)/brk(2), writes to the new
 * memory, and checks that sbrk(0) and the raw brk(0) system call agree, and that
 * pages given back and taken again come back zero-filled (as Linux guarantees).
 * Exits non-zero on any mismatch.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL

static int fails;

#define CHECK(cond, what)                                         \
	do {                                                      \
		if (!(cond)) {                                    \
			fprintf(stderr, "sbrk: FAIL: %s\n", what); \
			fails++;                                  \
		}                                                 \
	} while (0)

static uintptr_t raw_brk(uintptr_t addr)
{
	return (uintptr_t)syscall(SYS_brk, addr);
}

int main(void)
{
	/* Let stdio allocate its buffer (malloc may take it from the break) before
	 * the break is measured, so nothing else moves the break while we do. */
	printf("sbrk: start\n");
	fflush(stdout);

	uintptr_t start = (uintptr_t)sbrk(0);
	CHECK(start == raw_brk(0), "sbrk(0) != brk(0) at start");

	/* Align the break to a page so the shrink test below releases whole pages. */
	uintptr_t pad = (PAGE - start % PAGE) % PAGE;
	CHECK((uintptr_t)sbrk((intptr_t)pad) == start, "sbrk(pad) did not return the old break");
	uintptr_t base = (uintptr_t)sbrk(0);
	CHECK(base % PAGE == 0, "break not page-aligned after padding");

	/* Grow by 64 KiB and write every byte. */
	unsigned char *p = sbrk(64 * 1024);
	CHECK((uintptr_t)p == base, "sbrk(+64K) did not return the old break");
	CHECK((uintptr_t)sbrk(0) == base + 64 * 1024, "break after +64K");
	CHECK(raw_brk(0) == base + 64 * 1024, "brk(0) after +64K");
	memset(p, 0x5a, 64 * 1024);
	for (size_t i = 0; i < 64 * 1024; i++)
		if (p[i] != 0x5a) {
			CHECK(0, "readback after +64K");
			break;
		}
	printf("grew by 64 KiB, wrote and read back\n");

	/* Shrink by 16 KiB: the break moves down, the rest stays intact. */
	CHECK(sbrk(-16 * 1024) == p + 64 * 1024, "sbrk(-16K) did not return the old break");
	CHECK(raw_brk(0) == base + 48 * 1024, "brk(0) after -16K");
	CHECK(p[48 * 1024 - 1] == 0x5a && p[0] == 0x5a, "data below the break after shrink");
	printf("shrank by 16 KiB, data below the break intact\n");

	/* Grow the 16 KiB back: those pages were released, so they must be zero. */
	CHECK(sbrk(16 * 1024) == p + 48 * 1024, "sbrk(+16K) after shrink");
	int zero = 1;
	for (size_t i = 48 * 1024; i < 64 * 1024; i++)
		if (p[i] != 0)
			zero = 0;
	CHECK(zero, "re-grown pages are not zero-filled");
	printf("grew 16 KiB back: zero-filled\n");

	/* A large, page-unaligned growth through raw brk(2). */
	uintptr_t cur = raw_brk(0);
	uintptr_t want = cur + 3 * 1024 * 1024 + 123;
	CHECK(raw_brk(want) == want, "brk(+3 MiB+123) did not move the break");
	unsigned char *q = (unsigned char *)cur;
	for (size_t i = 0; i < want - cur; i += PAGE)
		q[i] = (unsigned char)(i / PAGE);
	q[want - cur - 1] = 0xee;
	uint64_t sum = 0;
	for (size_t i = 0; i < want - cur; i += PAGE)
		sum += q[i];
	CHECK(q[want - cur - 1] == 0xee, "last byte below the break");
	printf("grew by 3 MiB + 123 bytes with brk(2); page sum %lu\n", (unsigned long)sum);

	/* brk(2) below the data segment start fails by returning the current break. */
	CHECK(raw_brk(4096) == want, "brk(4096) changed the break");
	printf("brk(4096) refused, break unchanged\n");

	/* Back to where we started, through libc's brk() so its cached break agrees. */
	CHECK(brk((void *)start) == 0, "brk(start) did not restore the break");
	CHECK(raw_brk(0) == start, "brk(0) after restore");
	CHECK((uintptr_t)sbrk(0) == start, "sbrk(0) after restore");
	printf("restored the original break\n");

	if (fails) {
		fprintf(stderr, "sbrk: %d check(s) failed\n", fails);
		return 1;
	}
	printf("sbrk: all checks passed\n");
	return 0;
}
