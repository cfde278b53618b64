/*
 * shmfault ro FILE: maps FILE read-only and MAP_SHARED, reads it, then writes to
 * it: SIGSEGV (status 139).
 * shmfault eof FILE: truncates FILE to 100 bytes, maps two pages of it MAP_SHARED
 * read-write, writes in the first page (inside the file), then touches the second,
 * which lies beyond end-of-file: SIGBUS (status 135).
 * shmfault trunc FILE: maps two pages of FILE, touches the second, truncates the
 * file to 100 bytes (as another process could) and touches it again: SIGBUS.
 * shmfault trunc-caught FILE: the same with a SIGBUS handler, which reports
 * si_code and si_addr and leaves with siglongjmp: status 0.
 * Each prints a line before the fault.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf caught;
static volatile sig_atomic_t bus_code;
static void *volatile bus_addr;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_code = si->si_code;
	bus_addr = si->si_addr;
	siglongjmp(caught, 1);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: shmfault ro|eof|trunc|trunc-caught FILE\n");
		return 2;
	}
	int catch_it = !strcmp(argv[1], "trunc-caught");
	if (catch_it) {
		struct sigaction sa = {.sa_sigaction = on_bus, .sa_flags = SA_SIGINFO};
		sigaction(SIGBUS, &sa, NULL);
		argv[1] = "trunc";
	}
	if (!strcmp(argv[1], "ro")) {
		int fd = open(argv[2], O_RDONLY);
		volatile char *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		if (fd < 0 || m == MAP_FAILED) {
			perror(argv[2]);
			return 2;
		}
		printf("shmfault: read %d, now writing to the read-only mapping\n", m[0]);
		fflush(stdout);
		m[0] = 1;
	} else if (!strcmp(argv[1], "trunc")) {
		int fd = open(argv[2], O_RDWR);
		if (fd < 0 || ftruncate(fd, 8192)) {
			perror(argv[2]);
			return 2;
		}
		volatile char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		m[4096] = 'y';
		if (ftruncate(fd, 100)) {
			perror("ftruncate");
			return 2;
		}
		printf("shmfault: the file shrank under the mapping, touching its second page\n");
		fflush(stdout);
		if (catch_it && sigsetjmp(caught, 1)) {
			printf("shmfault: SIGBUS caught: BUS_ADRERR %s, si_addr is the byte: %s\n",
			       bus_code == BUS_ADRERR ? "yes" : "no",
			       bus_addr == (void *)(m + 4097) ? "yes" : "no");
			return 0;
		}
		m[4097] = 1;
	} else {
		int fd = open(argv[2], O_RDWR);
		if (fd < 0 || ftruncate(fd, 100)) {
			perror(argv[2]);
			return 2;
		}
		volatile char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		m[50] = 'x';
		printf("shmfault: wrote inside the file, now touching the page beyond its end\n");
		fflush(stdout);
		m[4096] = 1;
	}
	printf("shmfault: still alive, which is wrong\n");
	return 0;
}
