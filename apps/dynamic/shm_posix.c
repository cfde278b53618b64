/*
 * shm_posix NAME: POSIX shared memory as MPI implementations use it, in a
 * dynamically linked program: shm_open, ftruncate, two MAP_SHARED mappings of the
 * same object (a store through one is seen through the other), msync, munmap,
 * shm_unlink. Prints what it checked.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define LEN (64 * 1024)

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: shm_posix NAME\n");
		return 2;
	}
	int fd = shm_open(argv[1], O_CREAT | O_EXCL | O_RDWR, 0600);
	if (fd < 0 || ftruncate(fd, LEN)) {
		perror("shm_open");
		return 2;
	}
	char *a = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char *b = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a == MAP_FAILED || b == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	close(fd);
	int ok = a != b;
	for (int i = 0; i < LEN; i += 4096)
		a[i + 7] = (char)(i / 4096 + 1);
	for (int i = 0; i < LEN; i += 4096)
		ok &= b[i + 7] == (char)(i / 4096 + 1);
	strcpy(b + 100, "written through the second mapping");
	ok &= strcmp(a + 100, "written through the second mapping") == 0;
	ok &= msync(a, LEN, MS_SYNC) == 0;
	ok &= munmap(a, LEN) == 0;
	ok &= b[7] == 1;
	ok &= munmap(b, LEN) == 0;
	ok &= shm_unlink(argv[1]) == 0;
	printf("two mappings of one shm object alias: %s\n", ok ? "yes" : "NO");
	return ok ? 0 : 1;
}
