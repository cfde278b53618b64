#define _GNU_SOURCE
// getrusage and times describe the partition: computing shows as user time, the
// peak resident size covers memory touched, and (under mote) touching fresh
// memory takes no page faults. Prints checks; the test reads them.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/times.h>
#include <unistd.h>

int main(void) {
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    size_t len = 64 << 20;
    volatile char *m = malloc(len);
    for (size_t i = 0; i < len; i += 4096)
        m[i] = 1;
    volatile unsigned long x = 1;
    for (long i = 0; i < 300000000L; i++)
        x = x * 6364136223846793005UL + 1;
    getrusage(RUSAGE_SELF, &b);
    long du = (b.ru_utime.tv_sec - a.ru_utime.tv_sec) * 1000000L + (b.ru_utime.tv_usec - a.ru_utime.tv_usec);
    printf("user time grew: %s\n", du > 0 ? "yes" : "no");
    printf("peak resident size covers the 64 MiB touched: %s\n", b.ru_maxrss >= 64 * 1024 ? "yes" : "no");
    printf("minor faults while touching 64 MiB: %ld\n", b.ru_minflt - a.ru_minflt);
    struct tms t;
    clock_t r = times(&t);
    printf("times: user ticks: %s, elapsed ticks: %s\n", t.tms_utime > 0 ? "yes" : "no",
           r != (clock_t)-1 ? "yes" : "no");
    struct rusage th;
    printf("RUSAGE_THREAD: %s\n", getrusage(RUSAGE_THREAD, &th) == 0 ? "ok" : "failed");
    printf("RUSAGE_CHILDREN: %s\n", getrusage(RUSAGE_CHILDREN, &th) == 0 ? "ok" : "failed");
    free((void *)m);
    return 0;
}
