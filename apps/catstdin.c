/* catstdin: copies stdin to stdout with read(2)/write(2), handling short writes and EINTR. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	char buf[65536];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("catstdin: read");
			return 1;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				perror("catstdin: write");
				return 1;
			}
			off += w;
		}
	}
}
