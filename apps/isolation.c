/* What a program can reach of the system it runs on: only its own descriptors,
 * tasks and credentials. Natively a program sees nothing of a runtime beside
 * it; under mote it must see nothing of mote's (issue 15).
 *
 * `isolation fds`: every descriptor number from 3 to 1023 is tried with
 * fcntl(F_GETFD), fstat, ftruncate, ioctl (KVM_GET_API_VERSION and FIONREAD),
 * lseek and dup2 onto 900. The program opened nothing, so natively each is
 * EBADF; it prints how many answered otherwise, per call (mote's own memfd,
 * /dev/kvm, vCPU and pid descriptors must answer EBADF too: an ftruncate of the
 * guest memory used to end the run).
 *
 * `isolation tasks`: looks at the tasks whose pid is within 300 of its own
 * (Linux's /proc/N/status): a task that Linux counts in its thread group (Tgid,
 * other than its own thread) or as its child (PPid) is not the program's, since
 * it has one thread and no child. It prints how many of those kill(N, 0),
 * tgkill(pid, N, 0) and sched_getscheduler(N) reach (natively none exist).
 *
 * `isolation prot`: forwarded calls that write into memory the program may
 * only read (a PROT_READ page, its own text) or not touch (a PROT_NONE page):
 * read, fstat, getcwd, pipe2, ioctl(TCGETS) into the PROT_READ page, read over
 * main's text, write from the PROT_NONE page; each EFAULT natively. Then the
 * page made writable again takes the read (the protection follows mprotect).
 *
 * `isolation memory`: the same foreign threads' /proc/N/maps name the memory
 * of the process they belong to (a runtime's stack, heap and data); a program
 * has none of it: write() from it and read() into it must be EFAULT. It
 * prints how many of those calls reached it (natively nothing is found).
 *
 * `isolation nested`: the same foreign memory named inside structures:
 * writev/readv/preadv/pwritev iovecs, sendmsg/recvmsg iovecs and msg_name,
 * sendmmsg, process_vm_readv/writev on itself, ioctl(FIONREAD) and
 * ioctl(TCGETS)/ioctl(TIOCGWINSZ) into it: each must be EFAULT; it prints how
 * many reached it (natively nothing is found).
 *
 * It also names it through add_key and keyctl (payloads, buffers, strings,
 * iovecs and parameter structures), SIOCETHTOOL's and SIOCDEVPRIVATE's
 * ifr_data, RDMA_VERBS_IOCTL attributes, an unknown ioctl's argument, and the
 * remote side of process_vm_readv/writev aimed at a forked child.
 *
 * `isolation keys`: a user key added, read, updated, described, given to
 * INSTANTIATE_IOV and revoked with buffers in the program's memory (Linux's
 * answers), and keyctl operation 99 (EOPNOTSUPP).
 *
 * `isolation ethtool`: SIOCETHTOOL commands on the loopback interface with
 * their structures in the program's memory (GLINK, GET_TS_INFO, GSTRINGS,
 * an interface that does not exist): Linux's answers.
 *
 * `isolation vmchild`: process_vm_readv/writev on a forked child read and
 * write the child's variable at the program's address; one at an address the
 * child has not mapped is EFAULT.
 *
 * `isolation nestedfds`: descriptors 3 to 1023 inside structures: one poll
 * over all of them (its result, and how many came back POLLNVAL), select on
 * each one alone with a zero timeout (after growing the descriptor table
 * past 1023, which select looks at), and SCM_RIGHTS of each one over a
 * socketpair: how many of those answered other than EBADF. Natively only the
 * descriptors the program inherited are open.
 *
 * `isolation creds FILE`: run as root with FILE owned by root, mode 0600:
 * setgroups(0), setgid(65534), setuid(65534), then open FILE from the main
 * thread and from a thread created afterwards: EACCES for both; and
 * getuid/geteuid in the thread.
 *
 * `isolation spawn FILE`: the same drop, then posix_spawn of this program
 * (`isolation child FILE`, which prints its ids, whether it can open FILE, how
 * many descriptors above 2 it has and whether MOTE_KVM_FD is in its
 * environment) and fork + execv of it; each child's exit status. Both
 * children run with the dropped ids: EACCES, no descriptor, no variable.
 *
 * `isolation race`: readv of /dev/zero into an iovec whose buffer pointer a
 * second thread keeps switching between the program's own buffer and a
 * writable region of mote's (natively: an unmapped address); how many calls
 * answered 64 without writing the program's buffer (they wrote elsewhere).
 * Natively 0: Linux reads the iovec once. Under mote the proxy checks the
 * iovec, then Linux must read the same, checked pointer.
 *
 * `isolation msg`: what recvmsg writes back into the msghdr (the name's
 * length, MSG_TRUNC, the control data's length) and a descriptor passed with
 * SCM_RIGHTS, over UDP on loopback and a Unix socketpair.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/sockios.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <termios.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define KVM_GET_API_VERSION 0xAE00

static int not_ebadf(long r) { return !(r == -1 && errno == EBADF); }

static int fds(void) {
    int n_fcntl = 0, n_fstat = 0, n_trunc = 0, n_kvm = 0, n_fionread = 0, n_lseek = 0, n_dup2 = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        int avail;
        if (fd == 900)
            continue;
        n_fcntl += not_ebadf(fcntl(fd, F_GETFD));
        n_fstat += not_ebadf(fstat(fd, &st));
        n_trunc += not_ebadf(ftruncate(fd, 0));
        n_kvm += not_ebadf(ioctl(fd, KVM_GET_API_VERSION, 0));
        n_fionread += not_ebadf(ioctl(fd, FIONREAD, &avail));
        n_lseek += not_ebadf(lseek(fd, 0, SEEK_END));
        n_dup2 += not_ebadf(dup2(fd, 900));
    }
    printf("not EBADF: fcntl %d, fstat %d, ftruncate %d, ioctl(KVM_GET_API_VERSION) %d, "
           "ioctl(FIONREAD) %d, lseek %d, dup2 %d\n",
           n_fcntl, n_fstat, n_trunc, n_kvm, n_fionread, n_lseek, n_dup2);
    return 0;
}

/* Tgid and PPid of task n as Linux reports them; 0 when it does not exist. */
static int task_ids(int n, int *tgid, int *ppid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", n);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    *tgid = *ppid = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "Tgid: %d", tgid);
        sscanf(line, "PPid: %d", ppid);
    }
    fclose(f);
    return 1;
}

static int tasks(void) {
    int me = getpid(), tid = (int)syscall(SYS_gettid);
    int kills = 0, tgkills = 0, scheds = 0;
    for (int n = me - 300; n <= me + 300; n++) {
        int tgid, ppid;
        if (n <= 1 || n == me || n == tid || !task_ids(n, &tgid, &ppid))
            continue;
        if (tgid != me && ppid != me)
            continue;
        kills += kill(n, 0) == 0;
        tgkills += syscall(SYS_tgkill, tgid, n, 0) == 0;
        scheds += sched_getscheduler(n) >= 0;
    }
    printf("foreign tasks reached: kill %d, tgkill %d, sched_getscheduler %d\n", kills, tgkills,
           scheds);
    return 0;
}

int main(int argc, char **argv);

static const char *efault(long r) {
    if (r >= 0)
        return "succeeded";
    return errno == EFAULT ? "EFAULT" : strerror(errno);
}

static int prot(void) {
    long pg = sysconf(_SC_PAGESIZE);
    char *ro = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ro == MAP_FAILED || none == MAP_FAILED || mprotect(ro, pg, PROT_READ)) {
        perror("mmap");
        return 1;
    }
    int fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    printf("read into PROT_READ: %s\n", efault(read(fd, ro, 64)));
    printf("fstat into PROT_READ: %s\n", efault(syscall(SYS_fstat, fd, ro)));
    printf("getcwd into PROT_READ: %s\n", efault(syscall(SYS_getcwd, ro, 256)));
    printf("pipe2 into PROT_READ: %s\n", efault(syscall(SYS_pipe2, ro, 0)));
    int tty = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    printf("ioctl(TCGETS) into PROT_READ: %s\n",
           tty < 0 ? "no /dev/ptmx" : efault(syscall(SYS_ioctl, tty, TCGETS, ro)));
    printf("read over main's text: %s\n", efault(read(fd, (void *)(((unsigned long)main) & ~4095UL), 64)));
    printf("write from PROT_NONE: %s\n", efault(write(1, none, 1)));
    printf("page still zero: %s\n", ro[0] == 0 && ro[63] == 0 ? "yes" : "no");
    if (mprotect(ro, pg, PROT_READ | PROT_WRITE)) {
        perror("mprotect");
        return 1;
    }
    long n = pread(fd, ro, 4, 0);
    printf("pread after PROT_WRITE: %ld, %s\n", n, memcmp(ro, "\177ELF", 4) ? "wrong bytes" : "ELF");
    /* A count far beyond the buffer's memory: Linux copies what there is, if
     * the buffer ends inside the address space (access_ok; 4-level paging's
     * top), and refuses it before copying if not. */
    int p[2];
    if (pipe(p) || write(p[1], "four", 4) != 4) {
        perror("pipe");
        return 1;
    }
    unsigned long top = (1UL << 47) - 4096;
    n = read(p[0], ro, top - (unsigned long)ro - 4096);
    printf("read with a count past the end of memory: %ld\n", n);
    printf("read with a count past the address space: %s\n",
           efault(read(p[0], ro, top - (unsigned long)ro + 4096)));
    char cwd[PATH_MAX];
    printf("getcwd with a size past the end of memory: %s\n",
           syscall(SYS_getcwd, cwd, (size_t)-1) > 0 ? "ok" : strerror(errno));
    return 0;
}

/* Calls over each read-write heap, stack or mote region of mote's own threads
 * (found as /proc/<tid>/maps of the tasks of this process that are not its
 * own: natively there are none); returns the sum of what `probe` counted. */
static int over_motes_regions(int (*probe)(unsigned long lo, unsigned long hi, void *ctx),
                              void *ctx) {
    int me = getpid(), tid = (int)syscall(SYS_gettid), reached = 0;
    for (int n = me - 300; n <= me + 300; n++) {
        int tgid, ppid;
        char path[64], line[512];
        if (n <= 1 || n == me || n == tid || !task_ids(n, &tgid, &ppid) || tgid != me)
            continue;
        snprintf(path, sizeof path, "/proc/%d/maps", n);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            unsigned long lo, hi;
            char perms[8];
            if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[0] != 'r' ||
                perms[1] != 'w')
                continue;
            if (!strstr(line, "[heap]") && !strstr(line, "[stack") && !strstr(line, "/mote"))
                continue;
            reached += probe(lo, hi, ctx);
        }
        fclose(f);
    }
    return reached;
}

/* write() from and read() into a region, through the pipe `ctx`. */
static int direct_calls(unsigned long lo, unsigned long hi, void *ctx) {
    int *p = ctx, reached = 0;
    char junk[64];
    reached += write(p[1], (void *)lo, 32) >= 0;
    while (read(p[0], junk, sizeof junk) > 0) /* non-blocking: drain */
        ;
    (void)!write(p[1], "x", 1);
    reached += read(p[0], (void *)(hi - 1), 1) >= 0;
    while (read(p[0], junk, sizeof junk) > 0)
        ;
    return reached;
}

static int memory(void) {
    int p[2];
    if (pipe2(p, O_NONBLOCK)) {
        perror("pipe");
        return 1;
    }
    printf("foreign memory reached: %d\n", over_motes_regions(direct_calls, p));
    return 0;
}

/* Calls that name [lo, lo + n) inside a structure (reading from it or writing
 * into it); how many did not fail with EFAULT. */
static pid_t forked;

static int fails_efault(long r) { return !(r == -1 && errno == EFAULT); }

/* add_key and keyctl naming [lo, lo + n): payloads, read buffers, strings,
 * iovecs and parameter structures; how many did not fail with EFAULT. */
static int key_calls(char *lo, size_t n) {
    long ring = -2; /* KEY_SPEC_PROCESS_KEYRING */
    int reached = fails_efault(syscall(SYS_add_key, "user", "mote-isolation", lo, n, ring));
    reached += fails_efault(syscall(SYS_add_key, lo, "mote-isolation", "x", 1, ring));
    reached += fails_efault(syscall(SYS_keyctl, 1, lo));             /* JOIN_SESSION_KEYRING */
    for (int op = 2; op <= 17; op++)                                  /* UPDATE, DESCRIBE, READ, */
        if (op == 2 || op == 6 || op == 11 || op == 12 || op == 17) /* INSTANTIATE, GET_SECURITY */
            reached += fails_efault(syscall(SYS_keyctl, op, ring, lo, n, 0));
    reached += fails_efault(syscall(SYS_keyctl, 10, ring, lo, "x", 0)); /* SEARCH */
    reached += fails_efault(syscall(SYS_keyctl, 10, ring, "user", lo, 0));
    struct iovec iov = {lo, n};
    reached += fails_efault(syscall(SYS_keyctl, 20, ring, &iov, 1, 0)); /* INSTANTIATE_IOV */
    int dh[3] = {1, 2, 3};
    char out[64];
    reached += fails_efault(syscall(SYS_keyctl, 23, lo, out, sizeof out, 0)); /* DH_COMPUTE */
    reached += fails_efault(syscall(SYS_keyctl, 23, dh, lo, n, 0));
    struct { char *hash, *other; unsigned len, spare[8]; } kdf = {lo, NULL, 0, {0}};
    reached += fails_efault(syscall(SYS_keyctl, 23, dh, out, sizeof out, &kdf));
    reached += fails_efault(syscall(SYS_keyctl, 24, ring, lo, "x")); /* RESTRICT_KEYRING */
    reached += fails_efault(syscall(SYS_keyctl, 25, ring, 0, "", lo)); /* PKEY_QUERY */
    unsigned params[10] = {0, 16, 16};
    reached += fails_efault(syscall(SYS_keyctl, 26, lo, "", out, out)); /* PKEY_ENCRYPT */
    reached += fails_efault(syscall(SYS_keyctl, 28, params, "", lo, out)); /* PKEY_SIGN */
    reached += fails_efault(syscall(SYS_keyctl, 29, params, "", out, lo)); /* PKEY_VERIFY */
    reached += fails_efault(syscall(SYS_keyctl, 31, lo, n)); /* CAPABILITIES */
    return reached;
}

/* ioctl requests that encode no size naming [lo, ...): SIOCETHTOOL's
 * ifr_data, a device-private request's, RDMA_VERBS_IOCTL's attributes and an
 * unknown request's argument; how many did not fail with EFAULT. */
static int ioctl_calls(char *lo, int p[2]) {
    int reached = 0, inet = socket(AF_INET, SOCK_DGRAM, 0);
    if (inet >= 0) {
        struct ifreq ifr = {0};
        strcpy(ifr.ifr_name, "lo");
        ifr.ifr_data = lo;
        reached += fails_efault(ioctl(inet, SIOCETHTOOL, &ifr));
        reached += fails_efault(ioctl(inet, SIOCDEVPRIVATE, &ifr));
        close(inet);
    }
    struct { unsigned short length, object, method, num; unsigned long long r1;
             unsigned driver, r2; struct { unsigned short id, len, flags, data16;
                                           unsigned long long data; } attr[2]; } verbs = {0};
    verbs.length = 24 + 2 * 16;
    verbs.num = 2;
    verbs.attr[0].len = 64;
    verbs.attr[0].data = (unsigned long long)lo;
    verbs.attr[1].len = 4;
    verbs.attr[1].data = 1;
    reached += fails_efault(ioctl(p[0], 0xc0181b01, &verbs)); /* RDMA_VERBS_IOCTL */
    verbs.attr[0].len = 8; /* an output attribute's pointer */
    reached += fails_efault(ioctl(p[0], 0xc0181b01, &verbs));
    reached += fails_efault(ioctl(p[0], _IO('X', 0x77), lo)); /* a driver's own */
    return reached;
}

static int nested_calls(char *lo, size_t n, int p[2], int sv[2], int tty) {
    int reached = 0;
    char junk[64];
    struct iovec iov = {lo, n};
    reached += writev(p[1], &iov, 1) != -1 || errno != EFAULT;
    while (read(p[0], junk, sizeof junk) > 0)
        ;
    (void)!write(p[1], "x", 1);
    reached += readv(p[0], &iov, 1) != -1 || errno != EFAULT;
    while (read(p[0], junk, sizeof junk) > 0)
        ;
    int f = open("/proc/self/exe", O_RDONLY);
    reached += preadv(f, &iov, 1, 0) != -1 || errno != EFAULT;
    close(f);
    f = open("/dev/null", O_WRONLY);
    reached += pwritev(f, &iov, 1, 0) != -1 || errno != EFAULT;
    close(f);
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    reached += sendmsg(sv[0], &m, MSG_DONTWAIT) != -1 || errno != EFAULT;
    while (recv(sv[1], junk, sizeof junk, MSG_DONTWAIT) > 0)
        ;
    (void)!send(sv[0], "x", 1, 0);
    reached += recvmsg(sv[1], &m, MSG_DONTWAIT) != -1 || errno != EFAULT;
    while (recv(sv[1], junk, sizeof junk, MSG_DONTWAIT) > 0)
        ;
    struct mmsghdr mm = {0};
    mm.msg_hdr = m;
    reached += sendmmsg(sv[0], &mm, 1, MSG_DONTWAIT) != -1 || errno != EFAULT;
    while (recv(sv[1], junk, sizeof junk, MSG_DONTWAIT) > 0)
        ;
    struct iovec mine = {junk, n < sizeof junk ? n : sizeof junk};
    struct iovec theirs = {lo, mine.iov_len};
    reached += process_vm_readv(getpid(), &mine, 1, &theirs, 1, 0) != -1 || errno != EFAULT;
    reached += process_vm_readv(getpid(), &theirs, 1, &mine, 1, 0) != -1 || errno != EFAULT;
    reached += ioctl(p[0], FIONREAD, lo) != -1 || errno != EFAULT;
    int inet = socket(AF_INET, SOCK_DGRAM, 0);
    if (inet >= 0) {
        /* Socket requests encode no size: an ifreq read from there, and
         * SIOCGIFCONF's list written into its buffer. */
        reached += ioctl(inet, SIOCGIFFLAGS, lo) != -1 || errno != EFAULT;
        struct ifconf ifc = {.ifc_len = (int)n, .ifc_buf = lo};
        reached += ioctl(inet, SIOCGIFCONF, &ifc) != -1 || errno != EFAULT;
        close(inet);
    }
    reached += key_calls(lo, n);
    int ep = epoll_create1(0);
    if (ep >= 0) {
        /* The event read from there; the array written there. */
        reached += fails_efault(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], (void *)lo));
        reached += fails_efault(epoll_wait(ep, (void *)lo, 1, 0));
        close(ep);
    }
    reached += ioctl_calls(lo, p);
    if (forked > 0) {
        /* The remote side aimed at a child: its memory there is not the
         * program's either. */
        reached += process_vm_readv(forked, &mine, 1, &theirs, 1, 0) != -1 || errno != EFAULT;
        reached += process_vm_writev(forked, &mine, 1, &theirs, 1, 0) != -1 || errno != EFAULT;
    }
    if (tty >= 0) {
        reached += ioctl(tty, TCGETS, lo) != -1 || errno != EFAULT;
        reached += ioctl(tty, TIOCGWINSZ, lo) != -1 || errno != EFAULT;
    }
    return reached;
}

struct nested_ctx {
    int p[2], sv[2], tty;
};

static int nested_probe(unsigned long lo, unsigned long hi, void *ctx) {
    (void)lo;
    struct nested_ctx *c = ctx;
    return nested_calls((char *)hi - 64, 64, c->p, c->sv, c->tty);
}

static int nested(void) {
    struct nested_ctx c;
    if (pipe2(c.p, O_NONBLOCK) || socketpair(AF_UNIX, SOCK_DGRAM, 0, c.sv)) {
        perror("pipe");
        return 1;
    }
    c.tty = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    forked = fork();
    if (forked == 0) {
        pause();
        _exit(0);
    }
    printf("foreign memory reached: %d\n", over_motes_regions(nested_probe, &c));
    kill(forked, SIGKILL);
    waitpid(forked, NULL, 0);
    return 0;
}

static int nestedfds(void) {
    /* Linux's select ignores numbers beyond the descriptor table's size
     * (64 at first, grown as descriptors are opened): grow it past 1023, so
     * that every number not open is EBADF to select. */
    if (dup2(0, 1023) != 1023 || close(1023)) {
        perror("dup2");
        return 1;
    }
    static struct pollfd pfd[1021];
    for (int fd = 3; fd < 1024; fd++)
        pfd[fd - 3] = (struct pollfd){.fd = fd, .events = POLLIN};
    int r = poll(pfd, 1021, 1000);
    int nval = 0;
    for (int i = 0; i < 1021; i++)
        nval += (pfd[i].revents & POLLNVAL) != 0 && pfd[i].fd == i + 3;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) {
        perror("socketpair");
        return 1;
    }
    int selects = 0, rights = 0;
    for (int fd = 3; fd < 1024; fd++) {
        if (fd == sv[0] || fd == sv[1])
            continue;
        fd_set set;
        FD_ZERO(&set);
        FD_SET(fd, &set);
        struct timeval tv = {0, 0};
        selects += !(select(fd + 1, &set, NULL, NULL, &tv) == -1 && errno == EBADF);
        char c = 'x', cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&c, 1};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                           .msg_controllen = sizeof cbuf};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
        int s = sendmsg(sv[0], &m, MSG_DONTWAIT);
        rights += !(s == -1 && errno == EBADF);
        if (s == 1) {
            char got[64], cb[CMSG_SPACE(sizeof(int))];
            struct iovec gi = {got, sizeof got};
            struct msghdr g = {.msg_iov = &gi, .msg_iovlen = 1, .msg_control = cb,
                               .msg_controllen = sizeof cb};
            if (recvmsg(sv[1], &g, 0) == 1 && CMSG_FIRSTHDR(&g)) {
                int newfd;
                memcpy(&newfd, CMSG_DATA(CMSG_FIRSTHDR(&g)), sizeof newfd);
                close(newfd);
            }
        }
    }
    printf("poll: %d ready, %d POLLNVAL; not EBADF: select %d, SCM_RIGHTS %d\n", r, nval,
           selects, rights);
    return 0;
}

/* Key calls with their buffers in the program's memory still work: a user
 * key added, read back, described, updated; an operation Linux does not
 * know is EOPNOTSUPP. */
static int keys(void) {
    long ring = -2; /* KEY_SPEC_PROCESS_KEYRING */
    long id = syscall(SYS_add_key, "user", "mote-isolation", "secret", 6, ring);
    if (id < 0) {
        printf("add_key: %s\n", strerror(errno));
    } else {
        char buf[128] = {0};
        long n = syscall(SYS_keyctl, 11, id, buf, sizeof buf); /* READ */
        printf("read: %ld %.*s\n", n, n > 0 ? (int)n : 0, buf);
        long u = syscall(SYS_keyctl, 2, id, "public", 6); /* UPDATE */
        n = syscall(SYS_keyctl, 11, id, buf, sizeof buf);
        printf("update: %ld, read: %ld %.*s\n", u, n, n > 0 ? (int)n : 0, buf);
        n = syscall(SYS_keyctl, 6, id, buf, sizeof buf); /* DESCRIBE */
        printf("describe: %s\n", n > 0 ? strchr(buf, ';') ? "user;...;mote-isolation" : buf
                                        : strerror(errno));
        struct iovec iov[2] = {{"pay", 3}, {"load", 4}};
        long r = syscall(SYS_keyctl, 20, id, iov, 2, 0); /* INSTANTIATE_IOV, not under construction */
        printf("instantiate_iov: %s\n", r ? strerror(errno) : "ok");
        printf("revoke: %ld\n", syscall(SYS_keyctl, 3, id));
    }
    long r = syscall(SYS_keyctl, 99, 0, 0, 0, 0);
    printf("operation 99: %s\n", r ? strerror(errno) : "ok");
    return 0;
}

/* SIOCETHTOOL commands of the loopback interface, with their structures
 * in the program's memory: what Linux answers, the same under mote. */
static int ethtool(void) {
    int inet = socket(AF_INET, SOCK_DGRAM, 0);
    if (inet < 0) {
        perror("socket");
        return 1;
    }
    struct ifreq ifr = {0};
    strcpy(ifr.ifr_name, "lo");
    unsigned link[2] = {0x0a, 7}; /* ETHTOOL_GLINK */
    ifr.ifr_data = (void *)link;
    long r = ioctl(inet, SIOCETHTOOL, &ifr);
    printf("GLINK: %s, link %u\n", r ? strerror(errno) : "ok", link[1]);
    unsigned ts[11] = {0x41}; /* ETHTOOL_GET_TS_INFO */
    ifr.ifr_data = (void *)ts;
    r = ioctl(inet, SIOCETHTOOL, &ifr);
    printf("GET_TS_INFO: %s, so_timestamping %#x\n", r ? strerror(errno) : "ok", ts[1]);
    unsigned gs[3 + 8 * 64] = {0x1b, 1, 64}; /* ETHTOOL_GSTRINGS of ETH_SS_STATS */
    ifr.ifr_data = (void *)gs;
    r = ioctl(inet, SIOCETHTOOL, &ifr);
    printf("GSTRINGS: %s\n", r ? strerror(errno) : "ok");
    strcpy(ifr.ifr_name, "mote-none0");
    r = ioctl(inet, SIOCETHTOOL, &ifr);
    printf("no such interface: %s\n", r ? strerror(errno) : "ok");
    return 0;
}

/* process_vm_readv/writev aimed at a child: the child's memory at the
 * program's addresses (fork keeps them), read and written exactly; an
 * address the child has not mapped is EFAULT. */
static volatile long child_value = 7;

/* The first writable region of mote's (its lowest address), 0 if none. */
static int first_region(unsigned long lo, unsigned long hi, void *ctx) {
    unsigned long *first = ctx;
    (void)hi;
    if (*first == 0)
        *first = lo;
    return 0;
}

static struct iovec race_iov;
static volatile int race_stop;

static void *flipper(void *bad) {
    static char own[64];
    while (!race_stop) {
        *(void *volatile *)&race_iov.iov_base = own;
        *(void *volatile *)&race_iov.iov_base = bad;
    }
    return NULL;
}

static int race(void) {
    unsigned long bad = 0;
    over_motes_regions(first_region, &bad);
    if (bad == 0)
        bad = 4096; /* natively: nothing of mote's; an unmapped page */
    int zero = open("/dev/zero", O_RDONLY);
    if (zero < 0) {
        perror("/dev/zero");
        return 1;
    }
    pthread_t t;
    race_iov.iov_len = 64;
    race_iov.iov_base = (void *)bad;
    if (pthread_create(&t, NULL, flipper, (void *)bad)) {
        perror("pthread_create");
        return 1;
    }
    int elsewhere = 0;
    for (int i = 0; i < 400000; i++) {
        unsigned char *own;
        /* The buffer the flipper points at this moment or the next. */
        while ((own = *(void *volatile *)&race_iov.iov_base) == (void *)bad)
            ;
        memset(own, 0xff, 64);
        long r = readv(zero, &race_iov, 1);
        if (r == 64 && own[0] == 0xff && own[63] == 0xff)
            elsewhere++;
    }
    race_stop = 1;
    pthread_join(t, NULL);
    printf("readv wrote elsewhere than the checked buffer: %d\n", elsewhere);
    return 0;
}

static int msg(void) {
    int u = socket(AF_INET, SOCK_DGRAM, 0), v = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (u < 0 || v < 0 || bind(u, (void *)&a, sizeof a) || getsockname(u, (void *)&a, &alen) ||
        sendto(v, "0123456789", 10, 0, (void *)&a, sizeof a) != 10) {
        perror("udp");
        return 1;
    }
    char name[128], buf[4];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_name = name, .msg_namelen = sizeof name, .msg_iov = &iov, .msg_iovlen = 1};
    long r = recvmsg(u, &m, 0);
    printf("udp recvmsg: %ld bytes, namelen %u, truncated %s, \"%.4s\"\n", r, m.msg_namelen,
           m.msg_flags & MSG_TRUNC ? "yes" : "no", buf);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) {
        perror("socketpair");
        return 1;
    }
    int pass = open("/dev/null", O_RDONLY);
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } out = {0};
    struct msghdr s = {.msg_iov = &(struct iovec){"x", 1}, .msg_iovlen = 1,
                       .msg_control = out.b, .msg_controllen = sizeof out.b};
    struct cmsghdr *c = CMSG_FIRSTHDR(&s);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass, sizeof pass);
    printf("sendmsg with SCM_RIGHTS: %ld\n", (long)sendmsg(sv[0], &s, 0));
    char got;
    char control[256];
    struct msghdr rm = {.msg_iov = &(struct iovec){&got, 1}, .msg_iovlen = 1,
                        .msg_control = control, .msg_controllen = sizeof control};
    r = recvmsg(sv[1], &rm, 0);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&rm);
    int fd = -1;
    if (rc && rc->cmsg_type == SCM_RIGHTS)
        memcpy(&fd, CMSG_DATA(rc), sizeof fd);
    printf("recvmsg: %ld, controllen %zu, flags %d, a descriptor that works: %s\n", r,
           (size_t)rm.msg_controllen, rm.msg_flags, fd > 2 && fcntl(fd, F_GETFD) >= 0 ? "yes" : "no");
    return 0;
}

static int vmchild(void) {
    int go[2];
    char x;
    if (pipe(go)) {
        perror("pipe");
        return 1;
    }
    pid_t c = fork();
    if (c == 0) {
        child_value = 42;
        (void)!write(go[1], "x", 1);
        pause();
        _exit(0);
    }
    if (read(go[0], &x, 1) != 1) {
        perror("read");
        return 1;
    }
    long got = 0, v = 99;
    struct iovec mine = {&got, sizeof got}, theirs = {(void *)&child_value, sizeof got};
    long r = process_vm_readv(c, &mine, 1, &theirs, 1, 0);
    printf("read the child's value: %ld, %ld\n", r, got);
    mine.iov_base = &v;
    r = process_vm_writev(c, &mine, 1, &theirs, 1, 0);
    mine.iov_base = &got;
    got = 0;
    long r2 = process_vm_readv(c, &mine, 1, &theirs, 1, 0);
    printf("wrote the child's value: %ld, read back %ld %ld; mine %ld\n", r, r2, got,
           child_value);
    theirs.iov_base = (void *)8;
    printf("unmapped in the child: %s\n", efault(process_vm_readv(c, &mine, 1, &theirs, 1, 0)));
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    return 0;
}

static const char *file;

static const char *open_result(void) {
    int fd = open(file, O_RDONLY);
    if (fd >= 0) {
        close(fd);
        return "opened";
    }
    return errno == EACCES ? "EACCES" : strerror(errno);
}

static void *thread_main(void *arg) {
    (void)arg;
    printf("thread: uid %d euid %d gid %d, open: %s\n", (int)getuid(), (int)geteuid(),
           (int)getgid(), open_result());
    return NULL;
}

static int creds(void) {
    if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
        perror("dropping privileges");
        return 1;
    }
    printf("main: uid %d euid %d gid %d, open: %s\n", (int)getuid(), (int)geteuid(),
           (int)getgid(), open_result());
    fflush(stdout);
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, NULL) || pthread_join(t, NULL)) {
        perror("pthread");
        return 1;
    }
    printf("setuid(0) back: %s\n", setuid(0) == 0 ? "allowed" : strerror(errno));
    return 0;
}

static int child(void) {
    int open_fds = 0;
    for (int fd = 3; fd < 1024; fd++)
        open_fds += fcntl(fd, F_GETFD) != -1;
    printf("child: uid %d euid %d gid %d groups %d, open: %s, descriptors above 2: %d, "
           "MOTE_KVM_FD: %s\n",
           (int)getuid(), (int)geteuid(), (int)getgid(), getgroups(0, NULL), open_result(),
           open_fds, getenv("MOTE_KVM_FD") ? "set" : "unset");
    return 7;
}

static const char *status_of(int st) {
    static char b[64];
    if (WIFEXITED(st))
        snprintf(b, sizeof b, "exit %d", WEXITSTATUS(st));
    else
        snprintf(b, sizeof b, "signal %d", WTERMSIG(st));
    return b;
}

extern char **environ;

static int spawn(const char *self) {
    if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
        perror("dropping privileges");
        return 1;
    }
    char *args[] = {(char *)self, "child", (char *)file, NULL};
    pid_t pid;
    int st = 0, e = posix_spawn(&pid, self, NULL, NULL, args, environ);
    if (e) {
        printf("posix_spawn: %s\n", strerror(e));
        return 1;
    }
    waitpid(pid, &st, 0);
    printf("posix_spawn child: %s\n", status_of(st));
    pid = fork();
    if (pid == 0) {
        execv(self, args);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    printf("fork+exec child: %s\n", status_of(st));
    return 0;
}

/* io_uring_setup and bpf: Linux reads their requests' pointers later, where
 * mote cannot check them, so mote refuses them as a kernel built without them
 * does (ENOSYS). Prints what each answered. */
static int unchecked(void) {
    char params[120] = {0}; /* struct io_uring_params */
    long fd = syscall(SYS_io_uring_setup, 4, params);
    printf("io_uring_setup: %s\n", fd >= 0 ? "a ring" : strerror(errno));
    if (fd >= 0)
        close((int)fd);
    char attr[128] = {0}; /* union bpf_attr, BPF_MAP_CREATE of map type 0: EINVAL natively */
    long r = syscall(SYS_bpf, 0, attr, sizeof attr);
    printf("bpf: %s\n", r >= 0 ? "ok" : strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && !strcmp(argv[1], "unchecked"))
        return unchecked();
    if (argc == 3 && !strcmp(argv[1], "child")) {
        file = argv[2];
        return child();
    }
    if (argc == 3 && !strcmp(argv[1], "spawn")) {
        file = argv[2];
        return spawn(argv[0]);
    }
    if (argc == 2 && !strcmp(argv[1], "fds"))
        return fds();
    if (argc == 2 && !strcmp(argv[1], "tasks"))
        return tasks();
    if (argc == 2 && !strcmp(argv[1], "prot"))
        return prot();
    if (argc == 2 && !strcmp(argv[1], "memory"))
        return memory();
    if (argc == 2 && !strcmp(argv[1], "nested"))
        return nested();
    if (argc == 2 && !strcmp(argv[1], "keys"))
        return keys();
    if (argc == 2 && !strcmp(argv[1], "ethtool"))
        return ethtool();
    if (argc == 2 && !strcmp(argv[1], "vmchild"))
        return vmchild();
    if (argc == 2 && !strcmp(argv[1], "nestedfds"))
        return nestedfds();
    if (argc == 2 && !strcmp(argv[1], "race"))
        return race();
    if (argc == 2 && !strcmp(argv[1], "msg"))
        return msg();
    if (argc == 3 && !strcmp(argv[1], "creds")) {
        file = argv[2];
        return creds();
    }
    fprintf(stderr, "usage: isolation fds | unchecked | tasks | prot | memory | nested | nestedfds | keys | ethtool | "
                    "vmchild | creds FILE | "
                    "spawn FILE\n");
    return 2;
}
