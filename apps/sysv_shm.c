/*
 * System V shared memory (shmget, shmat, shmdt, shmctl), natively and under mote:
 * the same output.
 *
 *   sysv_shm            the checks below; prints what must be the same everywhere
 *                       (never an address or an id) and "all checks passed"
 *   sysv_shm detached   attach, detach, then store into the old range: dies of
 *                       SIGSEGV (status 139) after one line
 *   sysv_shm rdonly     store into a SHM_RDONLY attachment: dies of SIGSEGV
 *   sysv_shm perm       what a process without CAP_IPC_OWNER may attach (run it
 *                       as root without the capability: `setpriv --bounding-set
 *                       -ipc_owner`): EACCES from Linux's own permission checks
 *   sysv_shm peer KEY a|b ROUNDS
 *                       two processes take turns incrementing a counter in the
 *                       segment of KEY (created by whichever comes first), as
 *                       apps/shmpingpong.c does through a /dev/shm file: side a
 *                       moves when `turn` is 0, side b when it is 1. Side b removes
 *                       the segment (IPC_RMID) once side a has moved, so it goes
 *                       when both have detached. Waits are bounded (60 s without
 *                       progress: status 2), never timed.
 *
 * The checks: the size and attach count (shm_nattch) from IPC_STAT; shmat(NULL)
 * placing the page-rounded segment SHMLBA-aligned; two attachments aliasing;
 * /proc/self/maps naming an attachment "/SYSV<key> (deleted)", shared, with its
 * protection; SHM_RDONLY (a store is SIGSEGV/SEGV_ACCERR, mprotect to writable is
 * EACCES); shmdt (EINVAL for an address no attachment starts at; the range is gone
 * from the maps and a store there is SIGSEGV/SEGV_MAPERR); a fixed address (EINVAL
 * over a mapping without SHM_REMAP, replacing it with SHM_REMAP, SHM_RND rounding
 * down, EINVAL unaligned without it); mprotect, munmap of a middle page (both
 * pieces detached by one shmdt) and mremap shrinking an attachment; errors for a
 * removed id, a negative id and SHM_REMAP without an address; IPC_RMID while
 * attached (still attachable by id, gone after the last detach); a keyed segment's
 * name; a 4 MiB segment written end to end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#include "turns.h"

#include "check.h"

#define PAGE 4096UL
#define SEG_BYTES (3 * PAGE + 100) /* page-rounded: 4 pages */
#define SEG_PAGES 4

static sigjmp_buf jb;
static volatile sig_atomic_t got_sig, got_code;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    siglongjmp(jb, 1);
}

/* Store `v` at `p`; the signal it raised ("none" if none) and its code. */
static const char *store(volatile char *p, char v)
{
    got_sig = 0;
    got_code = 0;
    if (sigsetjmp(jb, 1) == 0)
        *p = v;
    if (got_sig == 0)
        return "no signal";
    if (got_sig != SIGSEGV)
        return "another signal";
    return got_code == SEGV_ACCERR ? "SIGSEGV SEGV_ACCERR"
           : got_code == SEGV_MAPERR ? "SIGSEGV SEGV_MAPERR"
                                     : "SIGSEGV with another code";
}

static long nattch(int id)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0)
        return -errno;
    return (long)ds.shm_nattch;
}

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "ok";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EIDRM: return "EIDRM";
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    default: return strerror(e);
    }
}

/* shmat's result as "ok" or the errno's name; the address in *out. */
static const char *try_shmat(int id, const void *addr, int flg, char **out)
{
    errno = 0;
    void *p = shmat(id, addr, flg);
    if (out)
        *out = p == (void *)-1 ? NULL : p;
    if (p == (void *)-1)
        return err_name(errno);
    if (!out)
        shmdt(p);
    return "ok";
}

static const char *try_shmdt(const void *addr)
{
    errno = 0;
    return shmdt(addr) == 0 ? "ok" : err_name(errno);
}

/* The /proc/self/maps line starting at `addr`: its length, permissions and name.
 * 0 when there is none. */
static int maps_at(const void *addr, unsigned long *len, char perms[5], char name[256])
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        int n = 0;
        if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &s, &e, perms, &n) < 3)
            continue;
        if (s != (unsigned long)addr)
            continue;
        *len = e - s;
        snprintf(name, 256, "%s", n ? line + n : "");
        name[strcspn(name, "\n")] = 0;
        found = 1;
        break;
    }
    fclose(f);
    return found;
}

static void print_maps(const char *what, const void *addr)
{
    unsigned long len;
    char perms[5], name[256];
    if (maps_at(addr, &len, perms, name))
        printf("maps %s: %lu bytes %s %s\n", what, len, perms, name);
    else
        printf("maps %s: none\n", what);
}

static int checks(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    printf("System V shared memory\n");
    fflush(stdout);

    int id = shmget(IPC_PRIVATE, SEG_BYTES, IPC_CREAT | 0600);
    if (id < 0) {
        perror("shmget");
        return 1;
    }
    struct shmid_ds ds;
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    printf("segsz %lu, nattch %lu, creator is us: %s\n", (unsigned long)ds.shm_segsz,
           (unsigned long)ds.shm_nattch, ds.shm_cpid == getpid() ? "yes" : "no");

    /* shmat(NULL): SHMLBA-aligned, the whole page-rounded segment. */
    char *a, *b, *c, *d;
    printf("attach a: %s\n", try_shmat(id, NULL, 0, &a));
    if (!a)
        return 1;
    printf("a is SHMLBA-aligned: %s\n", (uintptr_t)a % SHMLBA == 0 ? "yes" : "no");
    for (unsigned long i = 0; i < SEG_BYTES; i++)
        a[i] = (char)(i * 7 + 1);
    int last = a[SEG_PAGES * PAGE - 1];
    printf("last page-rounded byte of a: %d", last);
    printf(", store there: %s\n", store(a + SEG_PAGES * PAGE - 1, 5));
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    printf("nattch %lu, last attach by us: %s\n", (unsigned long)ds.shm_nattch,
           ds.shm_lpid == getpid() ? "yes" : "no");
    print_maps("a", a);

    /* A second attachment aliases the first. */
    printf("attach b: %s\n", try_shmat(id, NULL, 0, &b));
    if (!b)
        return 1;
    int same = b != a;
    for (unsigned long i = 0; i < SEG_BYTES; i += 97)
        same &= b[i] == (char)(i * 7 + 1);
    b[PAGE + 3] = 'B';
    same &= a[PAGE + 3] == 'B';
    a[2 * PAGE] = 'A';
    same &= b[2 * PAGE] == 'A';
    printf("a and b alias: %s, nattch %ld\n", same ? "yes" : "no", nattch(id));

    /* SHM_RDONLY. */
    printf("attach c read-only: %s\n", try_shmat(id, NULL, SHM_RDONLY, &c));
    if (!c)
        return 1;
    print_maps("c", c);
    printf("c sees a: %s, nattch %ld\n", c[PAGE + 3] == 'B' ? "yes" : "no", nattch(id));
    printf("store into c: %s\n", store(c + 10, 1));
    errno = 0;
    int r = mprotect(c, PAGE, PROT_READ | PROT_WRITE);
    printf("mprotect c writable: %s\n", r == 0 ? "ok" : err_name(errno));

    /* shmdt. */
    printf("shmdt c: %s", try_shmdt(c));
    printf(", shmdt b: %s", try_shmdt(b));
    printf(", nattch %ld\n", nattch(id));
    printf("shmdt b again: %s", try_shmdt(b));
    printf(", shmdt a+1: %s", try_shmdt(a + 1));
    printf(", shmdt a+4096: %s\n", try_shmdt(a + PAGE));
    print_maps("b after shmdt", b);
    printf("store into b after shmdt: %s\n", store(b + 5, 1));
    printf("a still holds b's store: %s\n", a[PAGE + 3] == 'B' ? "yes" : "no");

    /* A fixed address: over a mapping only with SHM_REMAP; SHM_RND. */
    d = mmap(NULL, SEG_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (d == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    memset(d, 'x', SEG_PAGES * PAGE);
    printf("attach over a mapping: %s", try_shmat(id, d, 0, NULL));
    printf(", mapping kept: %s\n", d[0] == 'x' && d[SEG_PAGES * PAGE - 1] == 'x' ? "yes" : "no");
    char *e;
    printf("attach over it with SHM_REMAP: %s", try_shmat(id, d, SHM_REMAP, &e));
    printf(", at the address: %s, sees a: %s, nattch %ld\n", e == d ? "yes" : "no",
           d[PAGE + 3] == 'B' ? "yes" : "no", nattch(id));
    printf("unaligned address: %s\n", try_shmat(id, d + 100, SHM_REMAP, NULL));
    printf("SHM_RND: %s", try_shmat(id, d + 100, SHM_RND | SHM_REMAP, &e));
    printf(", rounded down: %s, nattch %ld\n", e == d ? "yes" : "no", nattch(id));
    print_maps("d", d);
    printf("SHM_REMAP without an address: %s\n", try_shmat(id, NULL, SHM_REMAP, NULL));

    /* mprotect, munmap and mremap over attachments. */
    printf("mprotect d read-only: %s", mprotect(d, SEG_PAGES * PAGE, PROT_READ) ? "failed" : "ok");
    printf(", store: %s", store(d + 7, 'D'));
    printf(", writable again: %s", mprotect(d, SEG_PAGES * PAGE, PROT_READ | PROT_WRITE) ? "failed" : "ok");
    printf(", store: %s", store(d + 7, 'D'));
    printf(", a sees it: %s\n", a[7] == 'D' ? "yes" : "no");
    printf("munmap a's second page: %s", munmap(a + PAGE, PAGE) ? "failed" : "ok");
    printf(", nattch %ld\n", nattch(id));
    printf("a's third page still aliases d: %s\n", a[2 * PAGE] == d[2 * PAGE] ? "yes" : "no");
    printf("shmdt a: %s", try_shmdt(a));
    printf(", nattch %ld\n", nattch(id));
    print_maps("a's third page after shmdt", a + 2 * PAGE);
    errno = 0;
    void *m = mremap(d, SEG_PAGES * PAGE, 2 * PAGE, 0);
    printf("mremap d to two pages: %s, nattch %ld\n", m == d ? "ok" : err_name(errno), nattch(id));
    print_maps("d", d);

    /* Errors. */
    int gone = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    shmctl(gone, IPC_RMID, NULL);
    printf("removed id: %s", try_shmat(gone, NULL, 0, NULL));
    printf(", negative id: %s\n", try_shmat(-1, NULL, 0, NULL));
    printf("SHM_EXEC: %s\n", try_shmat(id, NULL, SHM_EXEC, &e));
    if (e) {
        print_maps("SHM_EXEC", e);
        shmdt(e);
    }

    /* IPC_RMID while attached. */
    printf("IPC_RMID: %s", shmctl(id, IPC_RMID, NULL) ? "failed" : "ok");
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT after IPC_RMID");
    printf(", marked for destruction: %s, nattch %lu\n", ds.shm_perm.mode & SHM_DEST ? "yes" : "no",
           (unsigned long)ds.shm_nattch);
    printf("attach by id after IPC_RMID: %s", try_shmat(id, NULL, 0, &e));
    printf(", nattch %ld", nattch(id));
    printf(", shmdt: %s\n", e ? try_shmdt(e) : "-");
    printf("shmdt d: %s", try_shmdt(d));
    printf(", IPC_STAT then: %s\n", err_name(-(int)nattch(id)));
    print_maps("d after the last shmdt", d);

    /* A keyed segment is named after its key. */
    key_t key = 0x6d6f0000 | (getpid() & 0xffff);
    int kid;
    while ((kid = shmget(key, PAGE, IPC_CREAT | IPC_EXCL | 0600)) < 0 && errno == EEXIST)
        key++;
    char want[64];
    snprintf(want, sizeof want, "/SYSV%08x (deleted)", key);
    char *k = NULL;
    try_shmat(kid, NULL, 0, &k);
    unsigned long len;
    char perms[5], name[256];
    printf("keyed segment named after its key: %s\n",
           k && maps_at(k, &len, perms, name) && strcmp(name, want) == 0 ? "yes" : "no");
    shmdt(k);
    shmctl(kid, IPC_RMID, NULL);

    /* 4 MiB, written end to end through one attachment, read through another. */
    int big = shmget(IPC_PRIVATE, 4 << 20, IPC_CREAT | 0600);
    char *g1 = NULL, *g2 = NULL;
    try_shmat(big, NULL, 0, &g1);
    try_shmat(big, NULL, 0, &g2);
    shmctl(big, IPC_RMID, NULL);
    int ok = g1 && g2;
    for (unsigned long i = 0; ok && i < (4 << 20); i += PAGE / 2)
        g1[i] = (char)(i >> 11);
    for (unsigned long i = 0; ok && i < (4 << 20); i += PAGE / 2)
        ok &= g2[i] == (char)(i >> 11);
    printf("4 MiB segment, two attachments alias end to end: %s\n", ok ? "yes" : "no");
    printf("shmdt both: %s", try_shmdt(g1));
    printf(" %s", try_shmdt(g2));
    printf(", segment gone: %s\n", nattch(big) == -EINVAL ? "yes" : "no");

    if (failures)
        return 1;
    printf("all checks passed\n");
    return 0;
}

static int die_after_detach(void)
{
    int id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    volatile char *p = shmat(id, NULL, 0);
    shmctl(id, IPC_RMID, NULL);
    if (p == (void *)-1) {
        perror("shmat");
        return 1;
    }
    p[0] = 1;
    printf("detached: %d; storing into it\n", shmdt((void *)p));
    fflush(stdout);
    p[0] = 2;
    printf("still alive\n");
    return 1;
}

static int die_read_only(void)
{
    int id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    volatile char *p = shmat(id, NULL, SHM_RDONLY);
    shmctl(id, IPC_RMID, NULL);
    if (p == (void *)-1) {
        perror("shmat");
        return 1;
    }
    printf("read-only attachment reads %d; storing into it\n", p[0]);
    fflush(stdout);
    p[0] = 2;
    printf("still alive\n");
    return 1;
}

static int permissions(void)
{
    int ro = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0400);
    int rw = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
    int wo = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0200);
    if (ro < 0 || rw < 0 || wo < 0) {
        perror("shmget");
        return 1;
    }
    char *p;
    printf("0400 segment: read-write %s", try_shmat(ro, NULL, 0, NULL));
    printf(", read-only %s", try_shmat(ro, NULL, SHM_RDONLY, &p));
    printf(" (reads %d)\n", p ? p[0] : -1);
    if (p)
        shmdt(p);
    printf("0600 segment: SHM_EXEC %s", try_shmat(rw, NULL, SHM_EXEC, NULL));
    printf(", read-write %s\n", try_shmat(rw, NULL, 0, NULL));
    printf("0200 segment: read-write %s", try_shmat(wo, NULL, 0, NULL));
    printf(", nattch %s\n", err_name(-(int)nattch(wo)));
    printf("nattch after the refusals: %ld %ld\n", nattch(ro), nattch(rw));
    shmctl(ro, IPC_RMID, NULL);
    shmctl(rw, IPC_RMID, NULL);
    shmctl(wo, IPC_RMID, NULL);
    return 0;
}


static int peer(key_t key, const char *side_name, long rounds)
{
    int side = side_name[0] == 'b';
    int id = shmget(key, PAGE, IPC_CREAT | 0600);
    if (id < 0) {
        perror("shmget");
        return 2;
    }
    struct turns *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        perror("shmat");
        return 2;
    }
    for (long i = 0; i < rounds; i++) {
        if (wait_turn(p, side)) {
            printf("side %s: no turn for 60 s in round %ld (turn %lu, counter %lu)\n", side_name,
                   i, (unsigned long)p->turn, (unsigned long)p->counter);
            if (side)
                shmctl(id, IPC_RMID, NULL);
            return 2;
        }
        if (side && i == 0)
            shmctl(id, IPC_RMID, NULL); /* both are attached: gone when both detach */
        uint64_t expect = 2 * (uint64_t)i + side;
        uint64_t c = __atomic_load_n(&p->counter, __ATOMIC_RELAXED);
        if (c != expect) {
            printf("side %s: lost update in round %ld: counter %lu, expected %lu\n", side_name, i,
                   (unsigned long)c, (unsigned long)expect);
            return 1;
        }
        __atomic_store_n(&p->counter, c + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&p->turn, !side, __ATOMIC_RELEASE);
    }
    printf("side %s: %ld rounds, no lost update\n", side_name, rounds);
    return shmdt(p) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return checks();
    if (argc == 2 && strcmp(argv[1], "detached") == 0)
        return die_after_detach();
    if (argc == 2 && strcmp(argv[1], "rdonly") == 0)
        return die_read_only();
    if (argc == 2 && strcmp(argv[1], "perm") == 0)
        return permissions();
    if (argc == 5 && strcmp(argv[1], "peer") == 0 &&
        (strcmp(argv[3], "a") == 0 || strcmp(argv[3], "b") == 0))
        return peer((key_t)strtol(argv[2], NULL, 0), argv[3], atol(argv[4]));
    fprintf(stderr, "usage: sysv_shm [detached | rdonly | perm | peer KEY a|b ROUNDS]\n");
    return 2;
}
