/* hello: the demo program. Prints a greeting and how many arguments it got. */
#include <stdio.h>

int main(int argc, char **argv)
{
	(void)argv;
	printf("Hello, world! I am a static x86_64 program with argc=%d.\n", argc);
	return 0;
}
