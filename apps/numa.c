// NUMA calls: a table of valid and invalid get_mempolicy, set_mempolicy, mbind,
// move_pages, migrate_pages and getcpu calls, each printed with its result,
// errno and what it wrote, so a run under mote can be compared with a native
// run line for line (testsuite/tests/numa.rs). Only memory the program has
// touched, or mapped with MAP_POPULATE, is asked about: mote backs memory when
// it is mapped, Linux at the first touch, so a page never touched is "not
// present" (-ENOENT in move_pages) natively only (docs/compatibility.md).
// Nothing printed depends on addresses or on which CPU runs it.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MPOL_DEFAULT 0
#define MPOL_PREFERRED 1
#define MPOL_BIND 2
#define MPOL_INTERLEAVE 3
#define MPOL_LOCAL 4
#define MPOL_PREFERRED_MANY 5
#define MPOL_WEIGHTED_INTERLEAVE 6
#define MPOL_F_STATIC_NODES (1 << 15)
#define MPOL_F_RELATIVE_NODES (1 << 14)
#define MPOL_F_NUMA_BALANCING (1 << 13)
#define MPOL_F_NODE 1
#define MPOL_F_ADDR 2
#define MPOL_F_MEMS_ALLOWED 4
#define MPOL_MF_STRICT 1
#define MPOL_MF_MOVE 2
#define MPOL_MF_MOVE_ALL 4
#ifndef SYS_set_mempolicy_home_node
#define SYS_set_mempolicy_home_node 450
#endif

static void *const BAD = (void *)8;

static void result(const char *what, long r) {
    if (r < 0)
        printf("%-44s = -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%-44s = %ld\n", what, r);
}

static long get(int *pol, unsigned long *mask, unsigned long maxnode, void *addr,
                unsigned long flags) {
    return syscall(SYS_get_mempolicy, pol, mask, maxnode, addr, flags);
}

static long set(int mode, unsigned long *mask, unsigned long maxnode) {
    return syscall(SYS_set_mempolicy, mode, mask, maxnode);
}

static long bind(void *start, unsigned long len, int mode, unsigned long *mask,
                 unsigned long maxnode, unsigned flags) {
    return syscall(SYS_mbind, start, len, mode, mask, maxnode, flags);
}

// The thread's policy and mask, printed.
static void show(const char *label) {
    int pol = -1;
    unsigned long mask[4] = {~0ul, ~0ul, ~0ul, ~0ul};
    long r = get(&pol, mask, 64, NULL, 0);
    char what[80];
    snprintf(what, sizeof what, "  %s: get_mempolicy", label);
    result(what, r);
    if (r == 0)
        printf("    policy %#x mask %#lx\n", pol, mask[0]);
}

static void set_case(const char *what, int mode, unsigned long bits, unsigned long maxnode) {
    unsigned long mask[20] = {bits};
    result(what, set(mode, mask, maxnode));
    show(what);
    set(MPOL_DEFAULT, NULL, 0);
}

static void *thread_main(void *arg) {
    (void)arg;
    show("thread, inherited");
    unsigned long one = 1;
    result("thread: set_mempolicy(INTERLEAVE, {0})", set(MPOL_INTERLEAVE, &one, 64));
    show("thread");
    return NULL;
}

int main(void) {
    long page = sysconf(_SC_PAGESIZE);
    char *buf = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        return 1;
    memset(buf, 1, 6 * page);
    // A hole after 6 pages; the last page mapped again, alone.
    munmap(buf + 6 * page, 2 * page);
    char *hole = buf + 6 * page;
    int pol;
    unsigned long mask[64];

    printf("== get_mempolicy\n");
    pol = -1;
    result("get(pol, NULL, 0, NULL, 0)", get(&pol, NULL, 0, NULL, 0));
    printf("  policy %d\n", pol);
    memset(mask, 0xff, sizeof mask);
    result("get(pol, mask, 64, NULL, 0)", get(&pol, mask, 64, NULL, 0));
    printf("  policy %d mask %#lx\n", pol, mask[0]);
    result("get(pol, mask, 0, NULL, 0)", get(&pol, mask, 0, NULL, 0));
    result("get(flags 8)", get(&pol, NULL, 0, NULL, 8));
    memset(mask, 0xff, sizeof mask);
    result("get(MEMS_ALLOWED)", get(&pol, mask, 64, NULL, MPOL_F_MEMS_ALLOWED));
    printf("  mask %#lx\n", mask[0]);
    result("get(MEMS_ALLOWED|NODE)", get(&pol, mask, 64, NULL, MPOL_F_MEMS_ALLOWED | MPOL_F_NODE));
    result("get(addr without ADDR)", get(&pol, NULL, 0, buf, 0));
    pol = -1;
    result("get(ADDR, buf)", get(&pol, NULL, 0, buf, MPOL_F_ADDR));
    printf("  policy %d\n", pol);
    pol = -1;
    result("get(ADDR|NODE, buf)", get(&pol, NULL, 0, buf, MPOL_F_ADDR | MPOL_F_NODE));
    printf("  node %d\n", pol);
    result("get(ADDR, hole)", get(&pol, NULL, 0, hole, MPOL_F_ADDR));
    result("get(ADDR|NODE, hole)", get(&pol, NULL, 0, hole, MPOL_F_ADDR | MPOL_F_NODE));
    result("get(NODE) with the default policy", get(&pol, NULL, 0, NULL, MPOL_F_NODE));
    result("get(bad policy pointer)", get(BAD, NULL, 0, NULL, 0));
    result("get(bad mask pointer)", get(&pol, BAD, 64, NULL, 0));
    memset(mask, 0xff, sizeof mask);
    result("get(mask, maxnode 1)", get(&pol, mask, 1, NULL, 0));
    printf("  mask %#lx\n", mask[0]);
    memset(mask, 0xff, sizeof mask);
    result("get(mask, maxnode 200)", get(&pol, mask, 200, NULL, 0));
    printf("  mask %#lx %#lx %#lx %#lx %#lx\n", mask[0], mask[1], mask[2], mask[3], mask[4]);
    result("get(mask, maxnode 40000)", get(&pol, mask, 40000, NULL, 0));

    printf("== set_mempolicy\n");
    set_case("set(DEFAULT, mask, maxnode 0)", MPOL_DEFAULT, 0, 0);
    result("set(DEFAULT, NULL, 0)", set(MPOL_DEFAULT, NULL, 0));
    set_case("set(BIND, {0})", MPOL_BIND, 1, 64);
    set_case("set(BIND, {0,1})", MPOL_BIND, 3, 64);
    set_case("set(BIND, {1})", MPOL_BIND, 2, 64);
    set_case("set(BIND, {})", MPOL_BIND, 0, 64);
    set_case("set(BIND, {0}, maxnode 1)", MPOL_BIND, 1, 1);
    set_case("set(BIND, {0}, maxnode 2)", MPOL_BIND, 1, 2);
    set_case("set(INTERLEAVE, {0})", MPOL_INTERLEAVE, 1, 64);
    set_case("set(PREFERRED, {0})", MPOL_PREFERRED, 1, 64);
    set_case("set(PREFERRED, {})", MPOL_PREFERRED, 0, 64);
    set_case("set(LOCAL, {})", MPOL_LOCAL, 0, 64);
    set_case("set(LOCAL, {0})", MPOL_LOCAL, 1, 64);
    set_case("set(PREFERRED_MANY, {0})", MPOL_PREFERRED_MANY, 1, 64);
    set_case("set(WEIGHTED_INTERLEAVE, {0})", MPOL_WEIGHTED_INTERLEAVE, 1, 64);
    set_case("set(mode 7)", 7, 1, 64);
    set_case("set(mode 99)", 99, 1, 64);
    set_case("set(mode -1)", -1, 1, 64);
    set_case("set(DEFAULT, {0})", MPOL_DEFAULT, 1, 64);
    set_case("set(BIND|STATIC, {0,1})", MPOL_BIND | MPOL_F_STATIC_NODES, 3, 64);
    set_case("set(BIND|RELATIVE, {1})", MPOL_BIND | MPOL_F_RELATIVE_NODES, 2, 64);
    set_case("set(BIND|STATIC|RELATIVE, {0})",
             MPOL_BIND | MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES, 1, 64);
    set_case("set(PREFERRED|STATIC, {})", MPOL_PREFERRED | MPOL_F_STATIC_NODES, 0, 64);
    set_case("set(BIND|NUMA_BALANCING, {0})", MPOL_BIND | MPOL_F_NUMA_BALANCING, 1, 64);
    set_case("set(INTERLEAVE|NUMA_BALANCING, {0})", MPOL_INTERLEAVE | MPOL_F_NUMA_BALANCING, 1, 64);
    set_case("set(BIND, {0}, maxnode 0)", MPOL_BIND, 1, 0);
    set_case("set(BIND, {0}, maxnode 32770)", MPOL_BIND, 1, 32770);
    set_case("set(BIND, {0}, maxnode 1280)", MPOL_BIND, 1, 1280);
    {
        unsigned long big[64] = {1};
        big[18] = 1; // node 1152: above every MAX_NUMNODES a distribution builds with
        result("set(BIND, {0,1152}, maxnode 1280)", set(MPOL_BIND, big, 1280));
        set(MPOL_DEFAULT, NULL, 0);
    }
    result("set(BIND, bad mask)", set(MPOL_BIND, BAD, 64));
    {
        unsigned long one = 1;
        set(MPOL_INTERLEAVE, &one, 64);
        pol = -1;
        result("get(NODE) under INTERLEAVE", get(&pol, NULL, 0, NULL, MPOL_F_NODE));
        printf("  node %d\n", pol);
        set(MPOL_BIND, &one, 64);
        result("get(NODE) under BIND", get(&pol, NULL, 0, NULL, MPOL_F_NODE));
        // A thread starts with its creator's policy and has its own.
        pthread_t t;
        pthread_create(&t, NULL, thread_main, NULL);
        pthread_join(t, NULL);
        show("main after the thread");
        set(MPOL_DEFAULT, NULL, 0);
    }

    printf("== mbind\n");
    unsigned long one = 1, two = 2, three = 3, none = 0;
    result("mbind(buf, 2 pages, BIND, {0})", bind(buf, 2 * page, MPOL_BIND, &one, 64, 0));
    for (int i = 0; i < 3; i++) {
        pol = -1;
        get(&pol, NULL, 0, buf + i * page, MPOL_F_ADDR);
        printf("  page %d policy %d\n", i, pol);
    }
    result("mbind(page 1, INTERLEAVE, {0})", bind(buf + page, page, MPOL_INTERLEAVE, &one, 64, 0));
    memset(mask, 0xff, sizeof mask);
    result("get(ADDR, page 1, mask)", get(&pol, mask, 64, buf + page, MPOL_F_ADDR));
    printf("  policy %d mask %#lx\n", pol, mask[0]);
    result("mbind(buf, 2 pages, DEFAULT)", bind(buf, 2 * page, MPOL_DEFAULT, NULL, 0, 0));
    pol = -1;
    get(&pol, NULL, 0, buf + page, MPOL_F_ADDR);
    printf("  page 1 policy %d\n", pol);
    result("mbind(unaligned)", bind(buf + 1, page, MPOL_BIND, &one, 64, 0));
    result("mbind(flags 8)", bind(buf, page, MPOL_BIND, &one, 64, 8));
    result("mbind(len 0)", bind(buf, 0, MPOL_BIND, &one, 64, 0));
    result("mbind(len -1)", bind(buf, -1ul, MPOL_BIND, &one, 64, 0));
    result("mbind(len 1)", bind(buf, 1, MPOL_BIND, &one, 64, 0));
    result("mbind(over the hole, BIND)", bind(buf, 8 * page, MPOL_BIND, &one, 64, 0));
    result("mbind(over the hole, DEFAULT)", bind(buf, 8 * page, MPOL_DEFAULT, NULL, 0, 0));
    result("mbind(the hole, BIND)", bind(hole, page, MPOL_BIND, &one, 64, 0));
    result("mbind(the hole, DEFAULT)", bind(hole, page, MPOL_DEFAULT, NULL, 0, 0));
    result("mbind(BIND, {0}, STRICT)", bind(buf, page, MPOL_BIND, &one, 64, MPOL_MF_STRICT));
    result("mbind(BIND, {0}, MOVE)", bind(buf, page, MPOL_BIND, &one, 64, MPOL_MF_MOVE));
    result("mbind(BIND, {0}, STRICT|MOVE)",
           bind(buf, page, MPOL_BIND, &one, 64, MPOL_MF_STRICT | MPOL_MF_MOVE));
    result("mbind(BIND, {1})", bind(buf, page, MPOL_BIND, &two, 64, 0));
    result("mbind(BIND, {})", bind(buf, page, MPOL_BIND, &none, 64, 0));
    result("mbind(PREFERRED, {0})", bind(buf, page, MPOL_PREFERRED, &one, 64, 0));
    result("mbind(LOCAL)", bind(buf, page, MPOL_LOCAL, NULL, 0, 0));
    result("mbind(LOCAL, STRICT)", bind(buf, page, MPOL_LOCAL, NULL, 0, MPOL_MF_STRICT));
    result("mbind(PREFERRED, {0}, STRICT)", bind(buf, page, MPOL_PREFERRED, &one, 64, MPOL_MF_STRICT));
    result("mbind(INTERLEAVE, {0,1}, STRICT)", bind(buf, page, MPOL_INTERLEAVE, &three, 64, MPOL_MF_STRICT));
    result("mbind(mode 7)", bind(buf, page, 7, &one, 64, 0));
    result("mbind(DEFAULT, {0})", bind(buf, page, MPOL_DEFAULT, &one, 64, 0));
    result("mbind(DEFAULT, STRICT)", bind(buf, page, MPOL_DEFAULT, NULL, 0, MPOL_MF_STRICT));
    result("mbind(bad mask)", bind(buf, page, MPOL_BIND, BAD, 64, 0));
    bind(buf, 6 * page, MPOL_DEFAULT, NULL, 0, 0);

    printf("== move_pages\n");
    void *pages[4] = {buf, buf + page, hole, NULL};
    int nodes[4] = {0, 0, 0, 0};
    int status[4];
    memset(status, 0x55, sizeof status);
    result("move_pages(query 4)", syscall(SYS_move_pages, 0, 4, pages, NULL, status, 0));
    printf("  status %d %d %d %d\n", status[0], status[1], status[2], status[3]);
    memset(status, 0x55, sizeof status);
    result("move_pages(2 to node 0)", syscall(SYS_move_pages, 0, 2, pages, nodes, status, MPOL_MF_MOVE));
    printf("  status %d %d\n", status[0], status[1]);
    memset(status, 0x55, sizeof status);
    result("move_pages(own pid, hole to node 0)",
           syscall(SYS_move_pages, getpid(), 3, pages, nodes, status, MPOL_MF_MOVE));
    printf("  status %d %d %d\n", status[0], status[1], status[2]);
    int n1[1] = {1}, nm[1] = {-1}, nbig[1] = {5000};
    result("move_pages(node 1)", syscall(SYS_move_pages, 0, 1, pages, n1, status, 0));
    result("move_pages(node -1)", syscall(SYS_move_pages, 0, 1, pages, nm, status, 0));
    result("move_pages(node 5000)", syscall(SYS_move_pages, 0, 1, pages, nbig, status, 0));
    result("move_pages(flags 1)", syscall(SYS_move_pages, 0, 1, pages, nodes, status, 1));
    result("move_pages(MOVE_ALL)", syscall(SYS_move_pages, 0, 1, pages, nodes, status, MPOL_MF_MOVE_ALL));
    result("move_pages(no such pid)", syscall(SYS_move_pages, 0x3fffffff, 1, pages, NULL, status, 0));
    result("move_pages(count 0)", syscall(SYS_move_pages, 0, 0, pages, NULL, status, 0));
    result("move_pages(bad pages)", syscall(SYS_move_pages, 0, 1, BAD, NULL, status, 0));
    result("move_pages(bad status)", syscall(SYS_move_pages, 0, 1, pages, NULL, BAD, 0));
    result("move_pages(bad nodes)", syscall(SYS_move_pages, 0, 1, pages, BAD, status, 0));

    printf("== untouched, MAP_POPULATE\n");
    {
        // Mapped with MAP_POPULATE and never touched: present, on node 0.
        char *pop = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        void *pp[2] = {pop, pop + 3 * page};
        memset(status, 0x55, sizeof status);
        result("move_pages(populated, query)", syscall(SYS_move_pages, 0, 2, pp, NULL, status, 0));
        printf("  status %d %d\n", status[0], status[1]);
        pol = -1;
        result("get(ADDR|NODE, populated)", get(&pol, NULL, 0, pop + page, MPOL_F_ADDR | MPOL_F_NODE));
        printf("  node %d\n", pol);
        memset(status, 0x55, sizeof status);
        result("move_pages(populated, to node 0)",
               syscall(SYS_move_pages, 0, 2, pp, nodes, status, MPOL_MF_MOVE));
        printf("  status %d %d\n", status[0], status[1]);
        // mbind with MOVE keeps the contents (nothing moves on one node).
        pop[5] = 42;
        result("mbind(populated, BIND, {0}, MOVE|STRICT)",
               bind(pop, 4 * page, MPOL_BIND, &one, 64, MPOL_MF_MOVE | MPOL_MF_STRICT));
        printf("  byte %d\n", pop[5]);
        munmap(pop, 4 * page);
    }

    printf("== set_mempolicy_home_node\n");
    {
        char *h = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        memset(h, 2, 4 * page);
#define HOME(what, start, len, node, flags) \
        result(what, syscall(SYS_set_mempolicy_home_node, start, len, node, flags))
        HOME("home(no policy)", h, 4 * page, 0, 0);
        HOME("home(unaligned)", h + 1, page, 0, 0);
        HOME("home(flags 1)", h, page, 0, 1);
        HOME("home(node 1)", h, page, 1, 0);
        HOME("home(node 5000)", h, page, 5000, 0);
        HOME("home(node -1)", h, page, -1l, 0);
        HOME("home(len 0)", h, 0, 0, 0);
        HOME("home(len -page)", h, -page, 0, 0);
        HOME("home(the hole)", hole, page, 0, 0);
        bind(h + page, page, MPOL_PREFERRED, &one, 64, 0);
        HOME("home(over PREFERRED)", h, 4 * page, 0, 0);
        bind(h, 4 * page, MPOL_BIND, &one, 64, 0);
        HOME("home(BIND)", h, 4 * page, 0, 0);
        HOME("home(BIND, page 2 only)", h + 2 * page, page, 0, 0);
        pol = -1;
        result("get(ADDR, after home)", get(&pol, NULL, 0, h + 2 * page, MPOL_F_ADDR));
        printf("  policy %d\n", pol);
        bind(h, 4 * page, MPOL_PREFERRED_MANY, &one, 64, 0);
        HOME("home(PREFERRED_MANY)", h, 4 * page, 0, 0);
        bind(h + 3 * page, page, MPOL_INTERLEAVE, &one, 64, 0);
        HOME("home(over INTERLEAVE)", h, 4 * page, 0, 0);
        HOME("home(range with the hole)", hole - page, 2 * page, 0, 0);
        munmap(h, 4 * page);
    }

    printf("== migrate_pages\n");
    result("migrate_pages({0} -> {0})", syscall(SYS_migrate_pages, 0, 64, &one, &one));
    result("migrate_pages({} -> {0})", syscall(SYS_migrate_pages, getpid(), 64, &none, &one));
    result("migrate_pages({0} -> {1})", syscall(SYS_migrate_pages, 0, 64, &one, &two));
    result("migrate_pages(no such pid)", syscall(SYS_migrate_pages, 0x3fffffff, 64, &one, &one));
    result("migrate_pages(bad old)", syscall(SYS_migrate_pages, 0, 64, BAD, &one));
    result("migrate_pages(maxnode 0)", syscall(SYS_migrate_pages, 0, 0, &one, &one));

    printf("== getcpu\n");
    unsigned cpu = ~0u, node = ~0u;
    result("getcpu(&cpu, &node)", syscall(SYS_getcpu, &cpu, &node, NULL));
    cpu_set_t set_;
    sched_getaffinity(0, sizeof set_, &set_);
    printf("  node %u, cpu in the affinity mask: %s\n", node, CPU_ISSET(cpu, &set_) ? "yes" : "no");
    result("getcpu(NULL, NULL)", syscall(SYS_getcpu, NULL, NULL, NULL));
    result("getcpu(bad, &node)", syscall(SYS_getcpu, BAD, &node, NULL));
    result("getcpu(&cpu, bad)", syscall(SYS_getcpu, &cpu, BAD, NULL));
    return 0;
}
