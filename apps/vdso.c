/*
 * vdso: the program gets a vDSO (AT_SYSINFO_EHDR), shown in /proc/self/maps as
 * [vvar] and [vdso], with Linux's clock functions at version LINUX_2.6 in its
 * dynamic symbol table, and its clock_gettime agrees with the system call's.
 * With the argument `exec`, the program then runs itself again through execve,
 * so the new program's vDSO is checked too (argv[0] must be a path). Prints the same lines natively and
 * under mote; non-zero exit on any disagreement.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Find `name` at version `version` through the image's dynamic section (DT_HASH
 * for the symbol count, DT_VERSYM/DT_VERDEF for the version), as glibc does. */
static void *vdso_sym(const char *name, const char *version)
{
	const char *base = (const char *)getauxval(AT_SYSINFO_EHDR);
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	long bias = -1;
	const Elf64_Dyn *dyn = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD && bias < 0)
			bias = (long)base + (long)ph[i].p_offset - (long)ph[i].p_vaddr;
		if (ph[i].p_type == PT_DYNAMIC)
			dyn = (const Elf64_Dyn *)(base + ph[i].p_offset);
	}
	if (!dyn || bias < 0)
		return 0;
	const Elf64_Sym *sym = 0;
	const char *str = 0;
	const Elf64_Word *hash = 0;
	const Elf64_Half *versym = 0;
	const Elf64_Verdef *verdef = 0;
	for (; dyn->d_tag != DT_NULL; dyn++) {
		const char *p = (const char *)(bias + dyn->d_un.d_ptr);
		switch (dyn->d_tag) {
		case DT_SYMTAB: sym = (const Elf64_Sym *)p; break;
		case DT_STRTAB: str = p; break;
		case DT_HASH: hash = (const Elf64_Word *)p; break;
		case DT_VERSYM: versym = (const Elf64_Half *)p; break;
		case DT_VERDEF: verdef = (const Elf64_Verdef *)p; break;
		}
	}
	if (!sym || !str || !hash || !versym || !verdef)
		return 0;
	for (Elf64_Word i = 0; i < hash[1]; i++) {
		if (strcmp(str + sym[i].st_name, name) != 0 || sym[i].st_shndx == SHN_UNDEF)
			continue;
		for (const Elf64_Verdef *d = verdef;; d = (const Elf64_Verdef *)((const char *)d + d->vd_next)) {
			const Elf64_Verdaux *a = (const Elf64_Verdaux *)((const char *)d + d->vd_aux);
			if (d->vd_ndx == (versym[i] & 0x7fff) && strcmp(str + a->vda_name, version) == 0)
				return (void *)(bias + sym[i].st_value);
			if (!d->vd_next)
				break;
		}
	}
	return 0;
}

static int in_maps(const char *what)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		found |= strstr(line, what) != 0;
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	int bad = 0;
	int have = getauxval(AT_SYSINFO_EHDR) != 0;
	printf("AT_SYSINFO_EHDR: %s\n", have ? "present" : "missing");
	printf("[vdso] in maps: %s, [vvar] in maps: %s\n", in_maps("[vdso]") ? "yes" : "no",
	       in_maps("[vvar]") ? "yes" : "no");
	bad += !have || !in_maps("[vdso]") || !in_maps("[vvar]");
	if (!have)
		return 1;
	const char *names[] = { "__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time",
				"__vdso_clock_getres", "__vdso_getcpu" };
	for (int i = 0; i < 5; i++) {
		int ok = vdso_sym(names[i], "LINUX_2.6") != 0;
		printf("%s@LINUX_2.6: %s\n", names[i], ok ? "found" : "missing");
		bad += !ok;
	}
	long (*cgt)(clockid_t, struct timespec *) = vdso_sym("__vdso_clock_gettime", "LINUX_2.6");
	if (cgt) {
		struct timespec v, s;
		int ok = 1;
		for (int c = 0; c < 2; c++) {
			clockid_t clock = c ? CLOCK_MONOTONIC : CLOCK_REALTIME;
			ok &= cgt(clock, &v) == 0 && syscall(SYS_clock_gettime, clock, &s) == 0;
			double d = (double)(s.tv_sec - v.tv_sec) + (double)(s.tv_nsec - v.tv_nsec) * 1e-9;
			ok &= d >= 0 && d < 0.5;
		}
		ok &= cgt(CLOCK_PROCESS_CPUTIME_ID, &v) == 0;
		printf("vDSO clock_gettime agrees with the system call: %s\n", ok ? "yes" : "no");
		bad += !ok;
	}
	fflush(stdout);
	if (argc > 1 && strcmp(argv[1], "exec") == 0) {
		printf("execve:\n");
		fflush(stdout);
		execl(argv[0], argv[0], (char *)0);
		perror("vdso: execve");
		return 1;
	}
	return bad != 0;
}
