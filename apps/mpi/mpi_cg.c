/*
 * mpi_cg: the conjugate-gradient solver of apps/cg.c split over MPI ranks, for
 * `mote bench mpi`. The same problem — the 27-point stencil on an n*n*n grid,
 * right-hand side A times ones, unpreconditioned CG from x = 0 until the
 * relative residual drops below TOL — with the grid's z planes divided between
 * the ranks: each rank keeps its planes' rows, exchanges one halo plane with
 * each neighbour before every matrix-vector product (MPI_Sendrecv) and sums dot
 * products with MPI_Allreduce. Rank 0 prints:
 *
 *   ranks=... nx=... rows=... nnz=... iterations=... residual=... error_inf=...
 *   seconds=... mflops=... ms_per_iteration=...
 *
 * Verification: converged (relative residual < TOL) and max |x - 1| < 1e-6 on
 * every rank; exits 1 otherwise.
 *
 * usage: mpi_cg [--quick] [--n N]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-10
#define MAX_ITER 500

/* No libm: sqrtsd directly, as apps/cg.c. */
static double sq_root(double v)
{
	double r;
	__asm__("sqrtsd %1, %0" : "=x"(r) : "x"(v));
	return r;
}

static int rank, size;
static long nx, plane, z0, nz_local, rows_local;
static int *nnz_in_row;
static double *val;
static long *col; /* indices into the extended vector: halo below, own planes, halo above */

/* This rank's rows: planes [z0, z0 + nz_local) of the n^3 grid. */
static void build(long n, double *b)
{
	nnz_in_row = malloc(rows_local * sizeof *nnz_in_row);
	val = malloc(rows_local * 27 * sizeof *val);
	col = malloc(rows_local * 27 * sizeof *col);
	if (!nnz_in_row || !val || !col) {
		perror("mpi_cg: malloc");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	for (long lz = 0; lz < nz_local; lz++)
		for (long iy = 0; iy < n; iy++)
			for (long ix = 0; ix < n; ix++) {
				long iz = z0 + lz, row = (lz * n + iy) * n + ix;
				int k = 0;
				for (int dz = -1; dz <= 1; dz++)
					for (int dy = -1; dy <= 1; dy++)
						for (int dx = -1; dx <= 1; dx++) {
							long x = ix + dx, y = iy + dy, z = iz + dz;
							if (x < 0 || y < 0 || z < 0 || x >= n || y >= n || z >= n)
								continue;
							col[row * 27 + k] = (z - z0 + 1) * plane + y * n + x;
							val[row * 27 + k] = (dx | dy | dz) == 0 ? 27.0 : -1.0;
							k++;
						}
				nnz_in_row[row] = k;
				b[row] = 27.0 - (k - 1);
			}
}

/* Fill p_ext's halo planes from the neighbours' edge planes. */
static void exchange(double *p_ext)
{
	int below = rank - 1, above = rank + 1;
	double *own_first = p_ext + plane, *own_last = p_ext + nz_local * plane;
	double *halo_below = p_ext, *halo_above = p_ext + (nz_local + 1) * plane;
	MPI_Sendrecv(own_last, (int)plane, MPI_DOUBLE, above < size ? above : MPI_PROC_NULL, 0,
		     halo_below, (int)plane, MPI_DOUBLE, below >= 0 ? below : MPI_PROC_NULL, 0,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	MPI_Sendrecv(own_first, (int)plane, MPI_DOUBLE, below >= 0 ? below : MPI_PROC_NULL, 1,
		     halo_above, (int)plane, MPI_DOUBLE, above < size ? above : MPI_PROC_NULL, 1,
		     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

static void spmv(double *p_ext, double *y)
{
	exchange(p_ext);
	for (long i = 0; i < rows_local; i++) {
		double s = 0.0;
		for (int k = 0; k < nnz_in_row[i]; k++)
			s += val[i * 27 + k] * p_ext[col[i * 27 + k]];
		y[i] = s;
	}
}

static double dot(const double *a, const double *b)
{
	double local = 0.0, sum = 0.0;
	for (long i = 0; i < rows_local; i++)
		local += a[i] * b[i];
	MPI_Allreduce(&local, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
	return sum;
}

static void waxpby(double alpha, const double *x, double beta, const double *y, double *w)
{
	for (long i = 0; i < rows_local; i++)
		w[i] = alpha * x[i] + beta * y[i];
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	long n = 64;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			n = 32;
		else if (!strcmp(argv[i], "--n") && i + 1 < argc)
			n = atol(argv[++i]);
		else {
			if (rank == 0)
				fprintf(stderr, "usage: mpi_cg [--quick] [--n N]\n");
			MPI_Finalize();
			return 2;
		}
	}
	if (n < 2 || n > 512 || n < size) {
		if (rank == 0)
			fprintf(stderr, "mpi_cg: --n must be 2..512 and at least the rank count\n");
		MPI_Finalize();
		return 2;
	}
	nx = n;
	plane = n * n;
	z0 = n * rank / size;
	nz_local = n * (rank + 1) / size - z0;
	rows_local = nz_local * plane;

	double *b = malloc(rows_local * sizeof *b), *x = calloc(rows_local, sizeof *x);
	double *r = malloc(rows_local * sizeof *r), *ap = malloc(rows_local * sizeof *ap);
	double *p_ext = calloc((nz_local + 2) * plane, sizeof *p_ext);
	if (!b || !x || !r || !ap || !p_ext) {
		perror("mpi_cg: malloc");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	double *p = p_ext + plane;
	build(n, b);
	long nnz_local = 0, nnz = 0;
	for (long i = 0; i < rows_local; i++)
		nnz_local += nnz_in_row[i];
	MPI_Allreduce(&nnz_local, &nnz, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);

	MPI_Barrier(MPI_COMM_WORLD);
	double t0 = MPI_Wtime();
	waxpby(1.0, b, 0.0, b, r);
	waxpby(1.0, r, 0.0, r, p);
	double rtr = dot(r, r), normb = sq_root(dot(b, b));
	double residual = sq_root(rtr) / normb;
	int iter = 0;
	while (residual > TOL && iter < MAX_ITER) {
		spmv(p_ext, ap);
		double alpha = rtr / dot(p, ap);
		waxpby(1.0, x, alpha, p, x);
		waxpby(1.0, r, -alpha, ap, r);
		double rtr_new = dot(r, r);
		waxpby(1.0, r, rtr_new / rtr, p, p);
		rtr = rtr_new;
		residual = sq_root(rtr) / normb;
		iter++;
	}
	double secs = MPI_Wtime() - t0;

	double err_local = 0.0, err = 0.0;
	for (long i = 0; i < rows_local; i++) {
		double d = x[i] > 1.0 ? x[i] - 1.0 : 1.0 - x[i];
		if (d > err_local || d != d)
			err_local = d;
	}
	MPI_Allreduce(&err_local, &err, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
	double rows = (double)n * n * n;
	double flops = (double)iter * (2.0 * (double)nnz + 13.0 * rows);
	int bad = !(residual <= TOL) || !(err < 1e-6);
	if (rank == 0) {
		printf("ranks=%d\nnx=%ld\nrows=%.0f\nnnz=%ld\niterations=%d\nresidual=%.3e\n"
		       "error_inf=%.3e\n",
		       size, n, rows, nnz, iter, residual, err);
		printf("seconds=%.6f\nmflops=%.1f\nms_per_iteration=%.4f\n", secs,
		       flops / secs * 1e-6, secs * 1e3 / (iter ? iter : 1));
		if (bad)
			fprintf(stderr, "mpi_cg: did not converge (residual %.3e, max error %.3e)\n",
				residual, err);
	}
	MPI_Finalize();
	return bad;
}
