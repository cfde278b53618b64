// mote-cflags: -fopenmp
// An OpenMP reduction: the result must not depend on the thread count, and the
// default thread count must be the partition's core count (printed).
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    double sum = 0;
    long isum = 0;
#pragma omp parallel for reduction(+ : sum, isum) schedule(static)
    for (long i = 1; i <= n; i++) {
        sum += 1.0 / ((double)i * (double)i);
        isum += i % 7;
    }
    int threads = 0;
#pragma omp parallel
    {
#pragma omp single
        threads = omp_get_num_threads();
    }
    printf("threads %d\n", threads);
    printf("sum %.12f isum %ld\n", sum, isum);
    return 0;
}
