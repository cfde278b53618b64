/*
 * cma: another process reads this one's fresh memory with process_vm_readv, as
 * MPI libraries do for large messages between ranks on a node (Open MPI's
 * vader/sm single copy, UCX's cma transport). The address reaches the peer
 * through shared memory, with no system call in between: whatever this process
 * maps must be readable by a peer the moment the mapping call returns.
 *
 * The program spawns itself as the peer (`cma --peer SHM`), then, for each
 * buffer kind (mmap of 16 KiB, mmap of 8 MiB, heap grown by sbrk of 64 KiB,
 * malloc of 300 KiB): makes the buffer, stamps it, publishes {pid, address, length} in a
 * shared page with only stores, and spins (no system call) until the peer
 * answers with its verdict. Prints one line per buffer:
 *
 *   mmap-16k: peer read 16384 bytes: ok
 *   mmap-16k: peer read: process_vm_readv: Bad address
 *
 * Exits 0 when every read matched, 1 otherwise.
 *
 * usage: /path/to/cma   (the peer is started from argv[0])
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct share {
    volatile uint64_t turn; /* odd: a request is up; even: answered */
    volatile int64_t pid;
    volatile uint64_t addr;
    volatile uint64_t len;
    volatile uint64_t seed;
    volatile int64_t verdict; /* 0 ok, >0 errno, -1 mismatch */
    volatile uint64_t quit;
};

static unsigned char stamp(uint64_t seed, uint64_t i)
{
    return (unsigned char)((seed * 131 + i * 7 + (i >> 12)) & 0xff);
}

static struct share *map_share(const char *path, int create)
{
    int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0) {
        perror(path);
        exit(2);
    }
    if (create && ftruncate(fd, 4096) != 0) {
        perror("ftruncate");
        exit(2);
    }
    struct share *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        perror("mmap share");
        exit(2);
    }
    close(fd);
    return s;
}

static void pause_a_little(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static int peer(const char *path)
{
    struct share *s = map_share(path, 0);
    uint64_t seen = 0;
    for (;;) {
        uint64_t turn = __atomic_load_n(&s->turn, __ATOMIC_ACQUIRE);
        if (s->quit)
            return 0;
        if (turn == seen || (turn & 1) == 0) {
            pause_a_little();
            continue;
        }
        seen = turn;
        uint64_t len = s->len;
        unsigned char *buf = malloc(len);
        struct iovec local = {buf, len};
        struct iovec remote = {(void *)(uintptr_t)s->addr, len};
        ssize_t got = process_vm_readv((pid_t)s->pid, &local, 1, &remote, 1, 0);
        int64_t verdict = 0;
        if (got < 0) {
            verdict = errno;
        } else if ((uint64_t)got != len) {
            verdict = -1;
        } else {
            for (uint64_t i = 0; i < len; i++)
                if (buf[i] != stamp(s->seed, i)) {
                    verdict = -1;
                    break;
                }
        }
        free(buf);
        s->verdict = verdict;
        __atomic_store_n(&s->turn, turn + 1, __ATOMIC_RELEASE);
    }
}

/* Ask the peer to read [buf, buf+len) and wait for its verdict, spinning
 * without system calls. */
static int check(struct share *s, const char *what, unsigned char *buf, uint64_t len, uint64_t seed)
{
    for (uint64_t i = 0; i < len; i++)
        buf[i] = stamp(seed, i);
    s->addr = (uint64_t)(uintptr_t)buf;
    s->len = len;
    s->seed = seed;
    uint64_t turn = __atomic_load_n(&s->turn, __ATOMIC_RELAXED) + 1;
    __atomic_store_n(&s->turn, turn, __ATOMIC_RELEASE);
    while (__atomic_load_n(&s->turn, __ATOMIC_ACQUIRE) == turn)
        __builtin_ia32_pause();
    if (s->verdict == 0) {
        printf("%s: peer read %llu bytes: ok\n", what, (unsigned long long)len);
        return 0;
    }
    if (s->verdict < 0)
        printf("%s: peer read: wrong bytes\n", what);
    else
        printf("%s: peer read: process_vm_readv: %s\n", what, strerror((int)s->verdict));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--peer") == 0)
        return peer(argv[2]);

    char path[64];
    snprintf(path, sizeof path, "/dev/shm/mote-cma-%d", (int)getpid());
    struct share *s = map_share(path, 1);
    s->pid = getpid();

    pid_t child;
    char *args[] = {argv[0], "--peer", path, NULL};
    int err = posix_spawn(&child, argv[0], NULL, NULL, args, environ);
    if (err != 0) {
        fprintf(stderr, "posix_spawn: %s\n", strerror(err));
        unlink(path);
        return 2;
    }

    /* Each buffer is made right before the peer reads it: no system call
     * between the mapping call's return and the peer's read. */
    int bad = 0;
    unsigned char *small = mmap(NULL, 16 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (small == MAP_FAILED)
        return 2;
    bad |= check(s, "mmap-16k", small, 16 << 10, 1);
    unsigned char *large = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (large == MAP_FAILED)
        return 2;
    bad |= check(s, "mmap-8m", large, 8 << 20, 2);
    unsigned char *heap = sbrk(64 << 10);
    if (heap == (void *)-1)
        return 2;
    bad |= check(s, "sbrk-64k", heap, 64 << 10, 3);
    unsigned char *block = malloc(300 << 10);
    if (block == NULL)
        return 2;
    bad |= check(s, "malloc-300k", block, 300 << 10, 4);

    s->quit = 1;
    int status = 0;
    waitpid(child, &status, 0);
    unlink(path);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("peer ended with status %d\n", status);
        bad = 1;
    }
    return bad;
}
