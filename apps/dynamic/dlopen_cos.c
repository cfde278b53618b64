/*
 * dlopen_cos: an ordinary dynamically linked PIE program that loads libm at run
 * time with dlopen, looks up cos with dlsym and calls it; then checks errors are
 * reported as glibc reports them. Output is the same natively and under mote.
 */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
	void *m = dlopen("libm.so.6", RTLD_NOW);
	if (!m) {
		fprintf(stderr, "dlopen_cos: dlopen(libm.so.6): %s\n", dlerror());
		return 1;
	}
	double (*cosine)(double) = (double (*)(double))dlsym(m, "cos");
	if (!cosine) {
		fprintf(stderr, "dlopen_cos: dlsym(cos): %s\n", dlerror());
		return 1;
	}
	printf("cos(0) = %.6f\n", cosine(0.0));
	printf("cos(1) = %.12f\n", cosine(1.0));
	printf("cos(pi) = %.6f\n", cosine(3.14159265358979323846));
	void *none = dlopen("libdoes-not-exist.so.42", RTLD_NOW);
	printf("dlopen of a missing library: %s\n", none ? "succeeded (wrong)" : "NULL, as expected");
	dlclose(m);
	return none != NULL;
}
