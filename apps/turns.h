/*
 * turns.h: two processes taking turns through one shared page (shmpingpong's
 * /dev/shm page, sysv_shm's System V segment): `turn` says whose turn it is,
 * `counter` is what they update in turn.
 */
#include <stdint.h>
#include <time.h>

struct turns {
	uint64_t turn;
	uint64_t counter;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Spin until p->turn == want; 0 on success, -1 after 60 s without it. */
static int wait_turn(struct turns *p, uint64_t want)
{
	double deadline = 0;
	for (unsigned long spins = 0;; spins++) {
		if (__atomic_load_n(&p->turn, __ATOMIC_ACQUIRE) == want)
			return 0;
		if ((spins & 0xfffff) == 0xfffff) {
			double t = now();
			if (deadline == 0)
				deadline = t + 60;
			else if (t > deadline)
				return -1;
		}
		__builtin_ia32_pause();
	}
}
