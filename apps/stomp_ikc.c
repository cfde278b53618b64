/*
 * stomp_ikc ADDR LEN BYTE [wait]: prints a line, then fills LEN bytes at ADDR
 * with BYTE (a stray memset); then either returns 0 or, with `wait`, pauses
 * until a signal ends it. Natively nothing is mapped at mote's IKC area, so the
 * memset is a segmentation fault; under mote the run must end too -- with a
 * `mote:` line naming the area, or by the signal sent to it -- and never hang
 * or die of a signal the program did not raise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: stomp_ikc ADDR LEN BYTE [wait]\n");
		return 2;
	}
	unsigned char *addr = (unsigned char *)strtoull(argv[1], NULL, 0);
	size_t len = strtoull(argv[2], NULL, 0);
	int byte = (int)strtol(argv[3], NULL, 0);
	printf("stomping %zu bytes at %p\n", len, (void *)addr);
	fflush(stdout);
	memset(addr, byte, len);
	if (argc > 4)
		for (;;)
			pause();
	return 0;
}
