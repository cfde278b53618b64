/*
 * shmfile PATH: writes a file through a MAP_SHARED mapping and msync, checks that
 * read() sees the stores at once, maps it again read-only to check the contents,
 * then uses /dev/zero MAP_SHARED (anonymous shared memory) and a mapping of a file
 * range from an offset, a mapping whose file grows after it was made, MAP_HUGETLB
 * (EINVAL but for a hugetlbfs file) and a hugetlbfs file mapped shared. The file is left on disk for the caller to check: byte i
 * of its SIZE bytes is (i * 7 + 3) & 0xff.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE (3 * 4096 + 100)

static int failed;

static void check(int ok, const char *what)
{
	if (!ok) {
		printf("FAILED: %s\n", what);
		failed = 1;
	}
}

/* A file on hugetlbfs (a memfd with MFD_HUGETLB): mapped in whole 2 MiB pages
 * (the length rounds up, the address is aligned), two mappings alias. Needs a
 * free 2 MiB page: without one (mmap's ENOMEM) it says so and checks nothing
 * more, natively and under mote alike. */
static void huge_file(void)
{
	const size_t huge = 2 << 20;
	int h = memfd_create("shmfile-huge", MFD_HUGETLB);
	if (h < 0 || ftruncate(h, huge) != 0) {
		printf("shmfile: no hugetlbfs memfd here (%s)\n", strerror(errno));
		if (h >= 0)
			close(h);
		return;
	}
	unsigned char *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0);
	if (a == MAP_FAILED) {
		check(errno == ENOMEM, "a hugetlbfs file maps, or fails for want of pages");
		printf("shmfile: no free 2 MiB page for the hugetlbfs file\n");
		close(h);
		return;
	}
	check(((unsigned long)a & (huge - 1)) == 0, "a hugetlbfs mapping is 2 MiB aligned");
	unsigned char *b = mmap(NULL, huge, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_HUGETLB, h, 0);
	check(b != MAP_FAILED, "MAP_HUGETLB of a hugetlbfs file maps");
	if (b != MAP_FAILED) {
		a[100] = 42;
		/* Past the 4096 bytes asked for, inside the rounded-up huge page. */
		a[huge - 1] = 7;
		check(b[100] == 42 && b[huge - 1] == 7, "two mappings of a hugetlbfs file alias");
		check(munmap(b, huge) == 0, "munmap of the MAP_HUGETLB mapping");
	}
	check(munmap(a, huge) == 0, "munmap of the hugetlbfs mapping");
	close(h);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: shmfile PATH\n");
		return 2;
	}
	int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, SIZE)) {
		perror(argv[1]);
		return 2;
	}
	unsigned char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	check(m[0] == 0 && m[SIZE - 1] == 0, "a new file maps as zeroes");
	for (int i = 0; i < SIZE; i++)
		m[i] = (unsigned char)(i * 7 + 3);
	check(msync(m, SIZE, MS_SYNC) == 0, "msync");
	static unsigned char buf[SIZE];
	check(pread(fd, buf, SIZE, 0) == SIZE, "pread after msync");
	check(memcmp(buf, m, SIZE) == 0, "read() sees the stores");
	/* And the other way: a write() shows in the mapping. */
	check(pwrite(fd, "\x03", 1, 0) == 1 && m[0] == 3, "the mapping sees write()");
	check(munmap(m, SIZE) == 0, "munmap");
	/* Gone for Linux too: a call reading the old address fails. */
	errno = 0;
	check(pwrite(fd, m, 1, 0) == -1 && errno == EFAULT, "the unmapped range is EFAULT for pwrite()");

	unsigned char *r = mmap(NULL, SIZE, PROT_READ, MAP_SHARED, fd, 0);
	check(r != MAP_FAILED, "read-only remap");
	if (r != MAP_FAILED) {
		int same = 1;
		for (int i = 0; i < SIZE; i++)
			same &= r[i] == (unsigned char)(i * 7 + 3);
		check(same, "the remapped file holds the data");
		check(munmap(r, SIZE) == 0, "munmap of the read-only mapping");
	}

	/* A range from an offset. */
	unsigned char *o = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 8192);
	check(o != MAP_FAILED && o[5] == (unsigned char)((8192 + 5) * 7 + 3), "mapping from offset 8192");
	if (o != MAP_FAILED)
		munmap(o, 4096);

	/* The file grows after it was mapped: the new page becomes usable. */
	unsigned char *g = mmap(NULL, 5 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	check(g != MAP_FAILED, "mapping beyond the end");
	if (g != MAP_FAILED) {
		check(ftruncate(fd, 5 * 4096) == 0, "grow the file");
		g[4 * 4096 + 1] = 0x77;
		unsigned char c = 0;
		check(pread(fd, &c, 1, 4 * 4096 + 1) == 1 && c == 0x77, "store in the grown page");
		check(munmap(g, 5 * 4096) == 0, "munmap of the grown mapping");
		check(ftruncate(fd, SIZE) == 0, "shrink the file back");
	}
	close(fd);

	int z = open("/dev/zero", O_RDWR);
	unsigned char *a = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, z, 0);
	check(a != MAP_FAILED, "/dev/zero MAP_SHARED");
	if (a != MAP_FAILED) {
		check(a[0] == 0 && a[8191] == 0, "/dev/zero maps as zeroes");
		memset(a, 0x5a, 8192);
		check(a[4096] == 0x5a, "/dev/zero mapping is writable");
		/* The kernel writes into it too: read(2) from a pipe, write(2) out of it. */
		int pfd[2];
		check(pipe(pfd) == 0, "pipe");
		check(write(pfd[1], "zero", 4) == 4, "write into the pipe");
		check(read(pfd[0], a + 4000, 4) == 4 && !memcmp(a + 4000, "zero", 4),
		      "read(2) into a /dev/zero mapping is seen in it");
		a[5000] = 'Z';
		char back = 0;
		check(write(pfd[1], a + 5000, 1) == 1 && read(pfd[0], &back, 1) == 1 && back == 'Z',
		      "write(2) out of a /dev/zero mapping sends what it holds");
		close(pfd[0]);
		close(pfd[1]);
		check(munmap(a, 8192) == 0, "munmap of /dev/zero mapping");
	}
	close(z);
	/* Writable shared only through a descriptor open for writing, as any file. */
	z = open("/dev/zero", O_RDONLY);
	check(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, z, 0) == MAP_FAILED &&
		      errno == EACCES,
	      "a read-only /dev/zero descriptor does not map writable shared");
	close(z);

	/* MAP_HUGETLB asks for a hugetlbfs file: any other is EINVAL (Linux's
	 * ksys_mmap_pgoff), /dev/zero too. */
	int f = open(argv[1], O_RDWR);
	check(f >= 0, "reopen the file");
	check(mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_HUGETLB, f, 0) ==
			      MAP_FAILED &&
		      errno == EINVAL,
	      "MAP_HUGETLB of a file not on hugetlbfs is EINVAL");
	close(f);
	z = open("/dev/zero", O_RDWR);
	check(mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_HUGETLB, z, 0) ==
			      MAP_FAILED &&
		      errno == EINVAL,
	      "MAP_HUGETLB of /dev/zero is EINVAL");
	close(z);
	check(mmap(NULL, 4096, PROT_READ, MAP_SHARED | MAP_HUGETLB, 999, 0) == MAP_FAILED &&
		      errno == EBADF,
	      "MAP_HUGETLB of a closed descriptor is EBADF");
	huge_file();

	if (failed)
		return 1;
	printf("shmfile: %d bytes written through MAP_SHARED and msync\n", SIZE);
	printf("all checks passed\n");
	return 0;
}
