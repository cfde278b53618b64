/*
 * clocks: the clocks agree with each other and with the passage of time.
 * CLOCK_REALTIME, gettimeofday and time name the same second; CLOCK_MONOTONIC
 * never goes backwards over 200,000 reads; a 200 ms nanosleep measures at least
 * 200 ms (and, generously, less than 10 s) on CLOCK_MONOTONIC and on
 * CLOCK_REALTIME. Prints the same lines natively and under mote; non-zero exit
 * on any disagreement.
 */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static double secs(struct timespec t)
{
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
	int bad = 0;
	struct timespec rt, m0, m1, r0, r1, a, b;
	struct timeval tv;
	clock_gettime(CLOCK_REALTIME, &rt);
	gettimeofday(&tv, NULL);
	time_t t = time(NULL);
	if (tv.tv_sec - rt.tv_sec > 1 || t - rt.tv_sec > 1 || tv.tv_sec < rt.tv_sec || t < rt.tv_sec) {
		printf("realtime, gettimeofday and time disagree: %ld %ld %ld\n", (long)rt.tv_sec,
		       (long)tv.tv_sec, (long)t);
		bad++;
	} else {
		printf("realtime, gettimeofday and time agree\n");
	}
	long back = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 200000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (b.tv_sec < a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec < a.tv_nsec))
			back++;
		a = b;
	}
	printf("monotonic went backwards %ld times in 200000 reads\n", back);
	bad += back != 0;
	clock_gettime(CLOCK_MONOTONIC, &m0);
	clock_gettime(CLOCK_REALTIME, &r0);
	struct timespec nap = { 0, 200000000 };
	nanosleep(&nap, NULL);
	clock_gettime(CLOCK_MONOTONIC, &m1);
	clock_gettime(CLOCK_REALTIME, &r1);
	double dm = secs(m1) - secs(m0), dr = secs(r1) - secs(r0);
	int ok = dm >= 0.2 && dm < 10 && dr >= 0.19 && dr < 10;
	printf("a 200 ms sleep measures %s\n", ok ? "at least 200 ms on both clocks" : "wrong");
	if (!ok)
		printf("  monotonic %.6f s, realtime %.6f s\n", dm, dr);
	bad += !ok;
	return bad != 0;
}
