/*
 * shmpingpong FILE a|b ROUNDS: two processes take turns incrementing a counter in a
 * page of FILE mapped MAP_SHARED (a /dev/shm file the caller created, at least
 * one page). Side a moves when `turn` is 0, side b when it is 1; each checks that
 * the counter holds exactly what the other side left (no lost update), adds one
 * and passes the turn. Under mote, side a runs in the partition and side b natively:
 * every round trip crosses between them through the shared page.
 *
 * Waits are bounded (60 s without progress ends the program with status 2), never
 * timed: the test suite asserts only the counts.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "turns.h"

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[2], "a") && strcmp(argv[2], "b"))) {
		fprintf(stderr, "usage: shmpingpong FILE a|b ROUNDS\n");
		return 2;
	}
	int side = argv[2][0] == 'b';
	long rounds = atol(argv[3]);
	int fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		perror("open");
		return 2;
	}
	struct turns *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	close(fd);
	for (long i = 0; i < rounds; i++) {
		if (wait_turn(p, side)) {
			printf("side %s: no turn for 60 s in round %ld (turn %lu, counter %lu)\n",
			       argv[2], i, (unsigned long)p->turn, (unsigned long)p->counter);
			return 2;
		}
		uint64_t expect = 2 * (uint64_t)i + side;
		uint64_t c = __atomic_load_n(&p->counter, __ATOMIC_RELAXED);
		if (c != expect) {
			printf("side %s: lost update in round %ld: counter %lu, expected %lu\n",
			       argv[2], i, (unsigned long)c, (unsigned long)expect);
			return 1;
		}
		__atomic_store_n(&p->counter, c + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&p->turn, !side, __ATOMIC_RELEASE);
	}
	if (side == 0) {
		/* b's last increment ends the game. */
		if (wait_turn(p, 0)) {
			printf("side a: no final turn\n");
			return 2;
		}
		uint64_t c = __atomic_load_n(&p->counter, __ATOMIC_RELAXED);
		if (c != 2 * (uint64_t)rounds) {
			printf("side a: final counter %lu, expected %lu\n", (unsigned long)c,
			       2 * (unsigned long)rounds);
			return 1;
		}
	}
	if (munmap(p, 4096)) {
		perror("munmap");
		return 1;
	}
	printf("side %s: %ld rounds, no lost update\n", argv[2], rounds);
	return 0;
}
