/*
 * pages.h: what page size a program's memory got, from /proc/self/smaps, for
 * the benchmark programs (gups, stream, alloc), and their threads' CPU time
 * (thread_cpu_s; the includer defines _GNU_SOURCE). Natively that is Linux's view
 * (transparent huge pages in AnonHugePages, hugetlbfs in *_Hugetlb); under mote
 * it is the runtime's /proc/self/smaps (the partition's page tables on the kvm
 * platform, Linux's view of the application's process on the hosted one).
 *
 * print_pages(addr, len, NULL) or print_pages(NULL, 0, "[heap]") prints
 *
 *   large_pages_pct=P resident_mib=R
 *
 * P: the share of the resident bytes of the mappings overlapping [addr,
 * addr+len) (or named `name`) that sit on 2 MiB or 1 GiB pages, in percent,
 * prorated to the overlap. Prints nothing when smaps cannot be read.
 */
#ifndef MOTE_APPS_PAGES_H
#define MOTE_APPS_PAGES_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

struct pages_entry {
	uint64_t start, end;
	int named;
	uint64_t rss_kb, pmd_kb, hugetlb_kb, page_kb;
};

/* Adds an entry's bytes (prorated to [lo, hi)) to *total and *large. */
static void pages_flush(const struct pages_entry *e, uint64_t lo, uint64_t hi, double *total,
			double *large)
{
	if (e->end <= e->start)
		return;
	double part;
	if (e->named) {
		part = 1.0;
	} else {
		uint64_t a = e->start > lo ? e->start : lo, b = e->end < hi ? e->end : hi;
		if (a >= b)
			return;
		part = (double)(b - a) / (double)(e->end - e->start);
	}
	double all = (double)(e->rss_kb + e->hugetlb_kb);
	double big = e->page_kb >= 2048 ? all : (double)(e->pmd_kb + e->hugetlb_kb);
	if (big > all)
		big = all;
	*total += all * part;
	*large += big * part;
}

static void print_pages(const void *addr, size_t len, const char *name)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return;
	uint64_t lo = (uint64_t)(uintptr_t)addr, hi = lo + len;
	struct pages_entry e = { 0 };
	double total = 0, large = 0;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		unsigned long long s, t;
		unsigned long long kb;
		char field[64];
		if (sscanf(line, "%llx-%llx ", &s, &t) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			if (e.named || !name)
				pages_flush(&e, lo, hi, &total, &large);
			memset(&e, 0, sizeof e);
			e.start = s;
			e.end = t;
			e.page_kb = 4;
			if (name) {
				size_t n = strlen(line);
				while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
					line[--n] = 0;
				size_t k = strlen(name);
				e.named = n >= k && !strcmp(line + n - k, name);
			}
			continue;
		}
		if (sscanf(line, "%63s %llu", field, &kb) != 2)
			continue;
		if (!strcmp(field, "Rss:"))
			e.rss_kb = kb;
		else if (!strcmp(field, "AnonHugePages:") || !strcmp(field, "ShmemPmdMapped:") ||
			 !strcmp(field, "FilePmdMapped:"))
			e.pmd_kb += kb;
		else if (!strcmp(field, "Private_Hugetlb:") || !strcmp(field, "Shared_Hugetlb:"))
			e.hugetlb_kb += kb;
		else if (!strcmp(field, "KernelPageSize:"))
			e.page_kb = kb;
	}
	if (e.named || !name)
		pages_flush(&e, lo, hi, &total, &large);
	fclose(f);
	printf("large_pages_pct=%.1f\nresident_mib=%.1f\n", total > 0 ? 100.0 * large / total : 0.0,
	       total / 1024.0);
}

#endif

/* CPU time of the calling thread, user + system (the bench's cpu_ns figures). */
static inline double thread_cpu_s(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_THREAD, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}
