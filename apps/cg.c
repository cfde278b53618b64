/*
 * cg: an HPCCG-style conjugate-gradient solver, our own code. The matrix is the
 * 27-point stencil on an nx*ny*nz grid (27 on the diagonal, -1 for each
 * neighbour), stored row by row (CSR); the right-hand side is A times a vector
 * of ones, so the exact solution is all ones. Unpreconditioned CG from x = 0
 * until the relative residual drops below TOL. Prints:
 *
 *   threads=1 nx=... rows=... nnz=... iterations=... residual=... error_inf=...
 *   seconds=... mflops=...
 *
 * Verification: converged (relative residual < TOL) and max |x - 1| < 1e-6;
 * exits 1 otherwise.
 *
 * Every kernel works on a range of rows, so the solver splits the rows between
 * --threads workers (pthreads; the main thread is worker 0) and sums their
 * partial dot products in worker order: the result depends on the thread count
 * only, never on timing.
 *
 * usage: cg [--quick] [--n N] [--threads T]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TOL 1e-10
#define MAX_ITER 500
#define MAX_THREADS 64

/* No libm in a static link without -lm: sqrtsd directly. */
static double sq_root(double v)
{
	double r;
	__asm__("sqrtsd %1, %0" : "=x"(r) : "x"(v));
	return r;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct matrix {
	long rows;
	int *nnz_in_row; /* per row */
	double *val;     /* 27 per row */
	long *col;       /* 27 per row */
};

/* A row range of the matrix, as one worker gets it. */
struct range {
	long begin, end;
};

static void spmv(const struct matrix *m, const double *x, double *y, struct range r)
{
	for (long i = r.begin; i < r.end; i++) {
		const double *v = m->val + i * 27;
		const long *c = m->col + i * 27;
		double sum = 0.0;
		for (int k = 0; k < m->nnz_in_row[i]; k++)
			sum += v[k] * x[c[k]];
		y[i] = sum;
	}
}

static double dot(const double *a, const double *b, struct range r)
{
	double sum = 0.0;
	for (long i = r.begin; i < r.end; i++)
		sum += a[i] * b[i];
	return sum;
}

/* w = alpha*x + beta*y */
static void waxpby(double alpha, const double *x, double beta, const double *y, double *w,
		   struct range r)
{
	for (long i = r.begin; i < r.end; i++)
		w[i] = alpha * x[i] + beta * y[i];
}

static int threads = 1;
static struct range part[MAX_THREADS];

/* The kernel every worker runs next on its rows, and its operands. */
enum op { OP_SPMV, OP_DOT, OP_WAXPBY, OP_EXIT };
static struct {
	enum op op;
	const struct matrix *m;
	const double *x, *y;
	double *w;
	double alpha, beta;
} job;
static double partial[MAX_THREADS];
static pthread_barrier_t start, done;

static void run_part(int t)
{
	switch (job.op) {
	case OP_SPMV:
		spmv(job.m, job.x, job.w, part[t]);
		break;
	case OP_DOT:
		partial[t] = dot(job.x, job.y, part[t]);
		break;
	case OP_WAXPBY:
		waxpby(job.alpha, job.x, job.beta, job.y, job.w, part[t]);
		break;
	case OP_EXIT:
		break;
	}
}

static void *worker(void *arg)
{
	int t = (int)(long)arg;
	for (;;) {
		pthread_barrier_wait(&start);
		if (job.op == OP_EXIT)
			return NULL;
		run_part(t);
		pthread_barrier_wait(&done);
	}
}

/* Every worker runs `job` on its rows (the main thread is worker 0). */
static void run_all(void)
{
	if (threads == 1) {
		run_part(0);
		return;
	}
	pthread_barrier_wait(&start);
	run_part(0);
	pthread_barrier_wait(&done);
}

static void all_spmv(const struct matrix *m, const double *x, double *y)
{
	job.op = OP_SPMV;
	job.m = m;
	job.x = x;
	job.w = y;
	run_all();
}
static double all_dot(const double *a, const double *b)
{
	job.op = OP_DOT;
	job.x = a;
	job.y = b;
	run_all();
	double sum = 0.0;
	for (int t = 0; t < threads; t++)
		sum += partial[t];
	return sum;
}
static void all_waxpby(double alpha, const double *x, double beta, const double *y, double *w)
{
	job.op = OP_WAXPBY;
	job.alpha = alpha;
	job.x = x;
	job.beta = beta;
	job.y = y;
	job.w = w;
	run_all();
}

static void build(struct matrix *m, long nx, long ny, long nz, double *b)
{
	m->rows = nx * ny * nz;
	m->nnz_in_row = malloc(m->rows * sizeof *m->nnz_in_row);
	m->val = malloc(m->rows * 27 * sizeof *m->val);
	m->col = malloc(m->rows * 27 * sizeof *m->col);
	if (!m->nnz_in_row || !m->val || !m->col) {
		perror("cg: malloc");
		exit(1);
	}
	for (long iz = 0; iz < nz; iz++)
		for (long iy = 0; iy < ny; iy++)
			for (long ix = 0; ix < nx; ix++) {
				long row = (iz * ny + iy) * nx + ix;
				int k = 0;
				for (int dz = -1; dz <= 1; dz++)
					for (int dy = -1; dy <= 1; dy++)
						for (int dx = -1; dx <= 1; dx++) {
							long x = ix + dx, y = iy + dy, z = iz + dz;
							if (x < 0 || y < 0 || z < 0 || x >= nx || y >= ny || z >= nz)
								continue;
							long c = (z * ny + y) * nx + x;
							m->col[row * 27 + k] = c;
							m->val[row * 27 + k] = c == row ? 27.0 : -1.0;
							k++;
						}
				m->nnz_in_row[row] = k;
				b[row] = 27.0 - (k - 1); /* A * ones */
			}
}

int main(int argc, char **argv)
{
	long n = 64;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			n = 32;
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = atol(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: cg [--quick] [--n N] [--threads T]\n");
			return 2;
		}
	}
	if (n < 2 || n > 512) {
		fprintf(stderr, "cg: --n must be 2..512\n");
		return 2;
	}
	if (threads < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "cg: --threads must be 1..%d\n", MAX_THREADS);
		return 2;
	}
	struct matrix m;
	long rows = n * n * n;
	double *b = malloc(rows * sizeof *b), *x = calloc(rows, sizeof *x);
	double *r = malloc(rows * sizeof *r), *p = malloc(rows * sizeof *p);
	double *ap = malloc(rows * sizeof *ap);
	if (!b || !x || !r || !p || !ap) {
		perror("cg: malloc");
		return 1;
	}
	build(&m, n, n, n, b);
	long nnz = 0;
	for (long i = 0; i < rows; i++)
		nnz += m.nnz_in_row[i];
	for (int t = 0; t < threads; t++)
		part[t] = (struct range){rows * t / threads, rows * (t + 1) / threads};
	pthread_t tid[MAX_THREADS];
	if (threads > 1) {
		pthread_barrier_init(&start, NULL, threads);
		pthread_barrier_init(&done, NULL, threads);
		for (int t = 1; t < threads; t++)
			if (pthread_create(&tid[t], NULL, worker, (void *)(long)t) != 0) {
				perror("cg: pthread_create");
				return 1;
			}
	}

	double t0 = now_s();
	/* x = 0: r = b - A x = b, p = r */
	all_waxpby(1.0, b, 0.0, b, r);
	all_waxpby(1.0, r, 0.0, r, p);
	double rtr = all_dot(r, r), normb = sq_root(all_dot(b, b));
	double residual = sq_root(rtr) / normb;
	int iter = 0;
	while (residual > TOL && iter < MAX_ITER) {
		all_spmv(&m, p, ap);
		double alpha = rtr / all_dot(p, ap);
		all_waxpby(1.0, x, alpha, p, x);
		all_waxpby(1.0, r, -alpha, ap, r);
		double rtr_new = all_dot(r, r);
		all_waxpby(1.0, r, rtr_new / rtr, p, p);
		rtr = rtr_new;
		residual = sq_root(rtr) / normb;
		iter++;
	}
	double secs = now_s() - t0;
	if (threads > 1) {
		job.op = OP_EXIT;
		pthread_barrier_wait(&start);
		for (int t = 1; t < threads; t++)
			pthread_join(tid[t], NULL);
	}

	double err = 0.0;
	for (long i = 0; i < rows; i++)
		{
		double d = x[i] > 1.0 ? x[i] - 1.0 : 1.0 - x[i];
		if (d > err || d != d)
			err = d;
	}
	/* per iteration: spmv 2*nnz, 2 dots 4*rows, 3 waxpby 9*rows */
	double flops = (double)iter * (2.0 * (double)nnz + 13.0 * (double)rows);
	printf("threads=%d\nnx=%ld\nrows=%ld\nnnz=%ld\niterations=%d\nresidual=%.3e\nerror_inf=%.3e\n",
	       threads, n, rows, nnz, iter, residual, err);
	printf("seconds=%.6f\nmflops=%.1f\nms_per_iteration=%.4f\n", secs, flops / secs * 1e-6,
	       secs * 1e3 / (iter ? iter : 1));
	if (!(residual <= TOL) || !(err < 1e-6)) {
		fprintf(stderr, "cg: did not converge (residual %.3e, max error %.3e)\n", residual, err);
		return 1;
	}
	return 0;
}
