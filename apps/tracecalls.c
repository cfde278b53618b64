/* tracecalls: a known sequence of system calls, made with syscall(2) so that
 * libc adds none of its own between them, for `mote run --trace`
 * (testsuite/tests/trace.rs): N getppid (forwarded), N getpid (local), an
 * openat of a file that does not exist (forwarded, ENOENT), an openat of
 * /proc/self/status (local: libos serves it), a close of each descriptor, a
 * close of a descriptor that is not open (EBADF), a write of a known line, an
 * mmap and munmap (local). Prints the results it got, one per line, so the test
 * can compare them with the trace. The count N is argv[1] (default 5). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 5;
	long r = 0;
	char out[4096];
	int len = 0;

	/* Collect the results first, print them at the end: the trace must not
	 * see this program's stdio writes in between. */
	for (int i = 0; i < n; i++)
		r = syscall(SYS_getppid);
	len += snprintf(out + len, sizeof out - len, "getppid %ld\n", r);
	for (int i = 0; i < n; i++)
		r = syscall(SYS_getpid);
	len += snprintf(out + len, sizeof out - len, "getpid %ld\n", r);
	r = syscall(SYS_openat, AT_FDCWD, "/nonexistent/mote-trace-test", O_RDONLY);
	len += snprintf(out + len, sizeof out - len, "openat-missing %ld\n", r);
	long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
	len += snprintf(out + len, sizeof out - len, "openat-proc %ld\n", fd >= 0 ? 0L : fd);
	r = syscall(SYS_close, fd);
	len += snprintf(out + len, sizeof out - len, "close %ld\n", r);
	r = syscall(SYS_close, 1000);
	len += snprintf(out + len, sizeof out - len, "close-bad %ld\n", r);
	r = syscall(SYS_write, 1, "traced line\n", 12);
	len += snprintf(out + len, sizeof out - len, "write %ld\n", r);
	long a = syscall(SYS_mmap, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	r = syscall(SYS_munmap, a, 8192);
	len += snprintf(out + len, sizeof out - len, "munmap %ld\n", r);
	fputs(out, stdout);
	return 0;
}
