/* The vDSO checks of apps/vdso.c in a dynamically linked program. */
#include "../vdso.c"
