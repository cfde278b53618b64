/* exit42: writes one line with write(2), then ends with _exit(42) (no stdio flush). */
#include <string.h>
#include <unistd.h>

int main(void)
{
	const char *msg = "exiting with status 42\n";
	if (write(1, msg, strlen(msg)) != (ssize_t)strlen(msg))
		return 1;
	_exit(42);
}
