/*
 * mpi_ring: what an MPI code does on one node, with checked results and no
 * timing in its output (for `mpiexec -n N`, natively and as
 * `mpiexec -n N mote run -- mpi_ring`): small-message ping-pong between rank
 * pairs, one 8 MiB message (the library's large-message path: shared memory or
 * cross-memory attach), MPI_Allreduce, MPI_Bcast, MPI_Gather and a barrier.
 * Each rank prints one line; a wrong value prints FAILED and exits 1.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PINGS 200
#define LARGE (1 << 20) /* doubles: 8 MiB */

static int failed;

static void check(int ok, int rank, const char *what)
{
	if (!ok) {
		printf("rank %d: FAILED: %s\n", rank, what);
		failed = 1;
	}
}

int main(int argc, char **argv)
{
	MPI_Init(&argc, &argv);
	int rank, size;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);

	/* Ping-pong with the partner rank (rank ^ 1), when there is one. */
	int peer = rank ^ 1;
	if (peer < size) {
		long msg[4];
		for (int i = 0; i < PINGS; i++) {
			if (rank < peer) {
				msg[0] = i;
				msg[1] = rank;
				MPI_Send(msg, 4, MPI_LONG, peer, 0, MPI_COMM_WORLD);
				MPI_Recv(msg, 4, MPI_LONG, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				check(msg[0] == i + 1 && msg[1] == peer, rank, "ping-pong reply");
			} else {
				MPI_Recv(msg, 4, MPI_LONG, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
				check(msg[0] == i && msg[1] == peer, rank, "ping-pong request");
				msg[0] = i + 1;
				msg[1] = rank;
				MPI_Send(msg, 4, MPI_LONG, peer, 0, MPI_COMM_WORLD);
			}
		}
		/* One large message each way. */
		double *big = malloc(LARGE * sizeof *big);
		if (!big) {
			perror("malloc");
			MPI_Abort(MPI_COMM_WORLD, 2);
		}
		for (long i = 0; i < LARGE; i++)
			big[i] = rank * 1e7 + i;
		if (rank < peer) {
			MPI_Send(big, LARGE, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD);
			MPI_Recv(big, LARGE, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		} else {
			double *in = malloc(LARGE * sizeof *in);
			if (!in) {
				perror("malloc");
				MPI_Abort(MPI_COMM_WORLD, 2);
			}
			MPI_Recv(in, LARGE, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			MPI_Send(big, LARGE, MPI_DOUBLE, peer, 1, MPI_COMM_WORLD);
			memcpy(big, in, LARGE * sizeof *in);
			free(in);
		}
		int ok = 1;
		for (long i = 0; i < LARGE; i++)
			ok &= big[i] == peer * 1e7 + i;
		check(ok, rank, "8 MiB message from the partner");
		free(big);
	}

	/* Collectives. */
	long mine = (long)rank * rank + 1, sum = 0, want = 0;
	for (int r = 0; r < size; r++)
		want += (long)r * r + 1;
	MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
	check(sum == want, rank, "allreduce");
	char word[16] = "";
	if (rank == 0)
		strcpy(word, "broadcast");
	MPI_Bcast(word, sizeof word, MPI_CHAR, 0, MPI_COMM_WORLD);
	check(strcmp(word, "broadcast") == 0, rank, "bcast");
	int *all = rank == 0 ? calloc(size, sizeof *all) : NULL;
	MPI_Gather(&rank, 1, MPI_INT, all, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (rank == 0) {
		for (int r = 0; r < size; r++)
			check(all[r] == r, rank, "gather");
		free(all);
	}
	MPI_Barrier(MPI_COMM_WORLD);

	if (!failed)
		printf("rank %d of %d: ping-pong, 8 MiB message, allreduce %ld, bcast, gather ok\n",
		       rank, size, sum);
	MPI_Finalize();
	return failed;
}
