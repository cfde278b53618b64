/*
 * fileio: file I/O through the calls a proxy forwards, with the application's own
 * buffers (and nested pointers: iovec, struct stat) passed unchanged.
 * Creates a temporary file, writes a pattern, checks fstat, reads it back with
 * read/pread/readv, seeks, truncates, unlinks. Prints what it checked; exits
 * non-zero on the first mismatch. The temporary file name is never printed so a
 * native run and a run under mote print the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SIZE 200000

static unsigned char wbuf[SIZE];
static unsigned char rbuf[SIZE];

#define CHECK(cond, ...)                                          \
	do {                                                      \
		if (!(cond)) {                                    \
			fprintf(stderr, "fileio: FAIL: " __VA_ARGS__); \
			fprintf(stderr, " (errno %d: %s)\n", errno, strerror(errno)); \
			exit(1);                                  \
		}                                                 \
	} while (0)

static void write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n < 7001 ? n : 7001); /* odd chunks on purpose */
		CHECK(w > 0, "write returned %zd", w);
		p += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		CHECK(r > 0, "read returned %zd with %zu bytes left", r, n);
		p += r;
		n -= (size_t)r;
	}
}

int main(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/mote-fileio-XXXXXX", dir && *dir ? dir : "/tmp");

	for (size_t i = 0; i < SIZE; i++)
		wbuf[i] = (unsigned char)(i * 31 + (i >> 8));

	int fd = mkstemp(path);
	CHECK(fd >= 0, "mkstemp");
	printf("created temporary file\n");

	write_all(fd, wbuf, SIZE);
	printf("wrote %d bytes\n", SIZE);

	struct stat st;
	CHECK(fstat(fd, &st) == 0, "fstat");
	CHECK(st.st_size == SIZE, "fstat size %lld, expected %d", (long long)st.st_size, SIZE);
	CHECK(S_ISREG(st.st_mode), "not a regular file");
	CHECK((st.st_mode & 0777) == 0600, "mode %o, expected 600", st.st_mode & 0777);
	printf("fstat size %lld, regular file, mode %o\n", (long long)st.st_size, st.st_mode & 0777);

	off_t end = lseek(fd, 0, SEEK_END);
	CHECK(end == SIZE, "lseek SEEK_END gave %lld", (long long)end);
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek SEEK_SET 0");
	read_all(fd, rbuf, SIZE);
	CHECK(memcmp(wbuf, rbuf, SIZE) == 0, "read back differs");
	CHECK(read(fd, rbuf, 1) == 0, "read at end of file is not 0");
	printf("read back %d bytes, identical; read at EOF returns 0\n", SIZE);

	off_t mid = lseek(fd, 12345, SEEK_SET);
	CHECK(mid == 12345, "lseek to 12345 gave %lld", (long long)mid);
	memset(rbuf, 0, 100);
	read_all(fd, rbuf, 100);
	CHECK(memcmp(wbuf + 12345, rbuf, 100) == 0, "read after lseek differs");
	CHECK(lseek(fd, 0, SEEK_CUR) == 12445, "SEEK_CUR after read");
	printf("lseek to 12345 and read 100 bytes: identical, offset now 12445\n");

	ssize_t pr = pread(fd, rbuf, 4096, SIZE - 1000);
	CHECK(pr == 1000, "pread near the end returned %zd", pr);
	CHECK(memcmp(wbuf + SIZE - 1000, rbuf, 1000) == 0, "pread differs");
	CHECK(lseek(fd, 0, SEEK_CUR) == 12445, "pread moved the offset");
	printf("pread of the last 1000 bytes: identical, offset unchanged\n");

	/* Nested pointers: an iovec array pointing at two buffers. */
	char a[] = "first part|";
	char b[] = "second part";
	struct iovec wiov[2] = { { a, strlen(a) }, { b, strlen(b) } };
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek 0 before writev");
	ssize_t wv = writev(fd, wiov, 2);
	CHECK(wv == (ssize_t)(strlen(a) + strlen(b)), "writev returned %zd", wv);
	char ra[11], rb[11];
	struct iovec riov[2] = { { ra, sizeof ra }, { rb, sizeof rb } };
	CHECK(lseek(fd, 0, SEEK_SET) == 0, "lseek 0 before readv");
	ssize_t rv = readv(fd, riov, 2);
	CHECK(rv == 22, "readv returned %zd", rv);
	CHECK(memcmp(ra, "first part|", 11) == 0 && memcmp(rb, "second part", 11) == 0,
	      "readv contents differ");
	printf("writev/readv of 2 iovecs: %zd bytes, identical\n", rv);

	CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
	CHECK(fstat(fd, &st) == 0 && st.st_size == 4096, "size after ftruncate");
	printf("ftruncate to 4096: fstat size %lld\n", (long long)st.st_size);
	CHECK(close(fd) == 0, "close");

	fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "reopen");
	CHECK(read(fd, rbuf, SIZE) == 4096, "read after reopen");
	CHECK(memcmp(rbuf, "first part|second part", 22) == 0, "contents after reopen");
	CHECK(memcmp(rbuf + 22, wbuf + 22, 4096 - 22) == 0, "tail after reopen");
	CHECK(write(fd, "x", 1) == -1 && errno == EBADF, "write to O_RDONLY fd did not fail with EBADF");
	CHECK(close(fd) == 0, "close");
	printf("reopened read-only: 4096 bytes as expected; write fails with EBADF\n");

	CHECK(unlink(path) == 0, "unlink");
	CHECK(stat(path, &st) == -1 && errno == ENOENT, "file still there after unlink");
	CHECK(open(path, O_RDONLY) == -1 && errno == ENOENT, "open after unlink");
	printf("unlinked; stat and open fail with ENOENT\n");
	printf("fileio: all checks passed\n");
	return 0;
}
