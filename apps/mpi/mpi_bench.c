/*
 * mpi_bench: point-to-point and collective costs between two ranks on one node,
 * for `mote bench mpi` (natively and with `mote run` under the same launcher):
 *
 *   pingpong_8b_us=...      half a round trip of an 8-byte message, median
 *   pingpong_1m_us=...      half a round trip of a 1 MiB message, median
 *   bandwidth_1m_mbs=...    1 MiB messages, 16 in flight, MB/s (10^6 bytes)
 *   allreduce_8b_us=...     MPI_Allreduce of one double, median
 *
 * Each figure is the median of REPS timed batches (each batch's mean), after a
 * warm-up; rank 0 prints. Every message's contents are checked: a wrong byte
 * prints FAILED and exits 1.
 *
 * usage: mpi_bench [--quick]
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG (1 << 20)
#define WINDOW 16
#define REPS 15

static int rank, size, failed;

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof *v, cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fill(unsigned char *buf, int len, int seed)
{
	for (int i = 0; i < len; i++)
		buf[i] = (unsigned char)(seed * 31 + i * 7);
}

static void verify(const unsigned char *buf, int len, int seed, const char *what)
{
	for (int i = 0; i < len; i++)
		if (buf[i] != (unsigned char)(seed * 31 + i * 7)) {
			printf("rank %d: FAILED: %s byte %d\n", rank, what, i);
			failed = 1;
			return;
		}
}

/* Mean half round trip of `iters` ping-pongs of `len` bytes, in µs. */
static double pingpong(unsigned char *buf, int len, int iters)
{
	int peer = 1 - rank;
	MPI_Barrier(MPI_COMM_WORLD);
	double t0 = MPI_Wtime();
	for (int i = 0; i < iters; i++) {
		if (rank == 0) {
			fill(buf, len < 64 ? len : 64, i);
			MPI_Send(buf, len, MPI_BYTE, peer, 1, MPI_COMM_WORLD);
			MPI_Recv(buf, len, MPI_BYTE, peer, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			verify(buf, len < 64 ? len : 64, i + 1, "pong");
		} else {
			MPI_Recv(buf, len, MPI_BYTE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			verify(buf, len < 64 ? len : 64, i, "ping");
			fill(buf, len < 64 ? len : 64, i + 1);
			MPI_Send(buf, len, MPI_BYTE, peer, 2, MPI_COMM_WORLD);
		}
	}
	return (MPI_Wtime() - t0) * 1e6 / iters / 2;
}

/* MB/s of `iters` windows of WINDOW messages of BIG bytes from rank 0 to 1. */
static double bandwidth(unsigned char *bufs, int iters)
{
	MPI_Request req[WINDOW];
	MPI_Status st[WINDOW];
	if (rank == 0) /* the ping-pongs used the first buffer */
		for (int w = 0; w < WINDOW; w++)
			fill(bufs + (size_t)w * BIG, BIG, 5 + w);
	MPI_Barrier(MPI_COMM_WORLD);
	double t0 = MPI_Wtime();
	for (int i = 0; i < iters; i++) {
		for (int w = 0; w < WINDOW; w++) {
			unsigned char *b = bufs + (size_t)w * BIG;
			if (rank == 0)
				MPI_Isend(b, BIG, MPI_BYTE, 1, 3, MPI_COMM_WORLD, &req[w]);
			else
				MPI_Irecv(b, BIG, MPI_BYTE, 0, 3, MPI_COMM_WORLD, &req[w]);
		}
		MPI_Waitall(WINDOW, req, st);
		char ack = 0;
		if (rank == 0)
			MPI_Recv(&ack, 1, MPI_CHAR, 1, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		else {
			verify(bufs + (size_t)(i % WINDOW) * BIG, BIG, 5 + i % WINDOW, "bandwidth");
			MPI_Send(&ack, 1, MPI_CHAR, 0, 4, MPI_COMM_WORLD);
		}
	}
	double secs = MPI_Wtime() - t0;
	return (double)iters * WINDOW * BIG / secs * 1e-6;
}

/* Mean MPI_Allreduce of one double, in µs. */
static double allreduce(int iters)
{
	MPI_Barrier(MPI_COMM_WORLD);
	double t0 = MPI_Wtime();
	for (int i = 0; i < iters; i++) {
		double v = rank + i, sum = 0;
		MPI_Allreduce(&v, &sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
		if (sum != (double)(size * (size - 1) / 2 + size * i)) {
			printf("rank %d: FAILED: allreduce %d gave %g\n", rank, i, sum);
			failed = 1;
		}
	}
	return (MPI_Wtime() - t0) * 1e6 / iters;
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	int quick = argc > 1 && !strcmp(argv[1], "--quick");
	if (size != 2) {
		if (rank == 0)
			fprintf(stderr, "mpi_bench: run with 2 ranks (got %d)\n", size);
		MPI_Finalize();
		return 2;
	}
	int small_iters = quick ? 2000 : 10000, big_iters = quick ? 50 : 200;
	int bw_iters = quick ? 4 : 16, ar_iters = quick ? 2000 : 10000;
	unsigned char *bufs = malloc((size_t)WINDOW * BIG);
	if (!bufs) {
		perror("mpi_bench: malloc");
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	double small[REPS], big[REPS], bw[REPS], ar[REPS];
	pingpong(bufs, 8, small_iters / 10); /* warm-up */
	bandwidth(bufs, 1);
	for (int r = 0; r < REPS; r++) {
		small[r] = pingpong(bufs, 8, small_iters / REPS + 1);
		big[r] = pingpong(bufs, BIG, big_iters / REPS + 1);
		bw[r] = bandwidth(bufs, bw_iters);
		ar[r] = allreduce(ar_iters / REPS + 1);
	}
	int any_failed = 0;
	MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	if (rank == 0) {
		printf("ranks=%d\n", size);
		printf("pingpong_8b_us=%.3f\n", median(small, REPS));
		printf("pingpong_1m_us=%.3f\n", median(big, REPS));
		printf("bandwidth_1m_mbs=%.1f\n", median(bw, REPS));
		printf("allreduce_8b_us=%.3f\n", median(ar, REPS));
	}
	MPI_Finalize();
	return any_failed;
}
