/*
 * printargs: prints argc, every argv entry and the whole environment, in order,
 * so that a run under mote can be compared byte for byte with a native run.
 */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv)
{
	printf("argc=%d\n", argc);
	for (int i = 0; i < argc; i++)
		printf("argv[%d]=[%s]\n", i, argv[i]);
	if (argv[argc] != NULL) {
		printf("argv[argc] is not NULL\n");
		return 1;
	}
	int n = 0;
	for (char **e = environ; *e != NULL; e++, n++)
		printf("env[%d]=[%s]\n", n, *e);
	printf("envc=%d\n", n);
	return 0;
}
