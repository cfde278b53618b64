// Real-program shapes with fork (issue 13): a socketpair between a parent and
// its child, a SIGCHLD handler counting children, and a forking TCP echo server
// on loopback (a child per connection) serving 100 clients.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLIENTS 100

static volatile sig_atomic_t reaped;

static void on_chld(int s) {
    (void)s;
    int saved = errno;
    while (waitpid(-1, 0, WNOHANG) > 0)
        reaped++;
    errno = saved;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void socketpair_case(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair");
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        close(sv[0]);
        char buf[64];
        ssize_t n = read(sv[1], buf, sizeof buf);
        if (n <= 0)
            _exit(2);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] -= 32;
        if (write(sv[1], buf, n) != n)
            _exit(3);
        _exit(0);
    }
    close(sv[1]);
    const char msg[] = "over a socketpair";
    if (write(sv[0], msg, sizeof msg - 1) != sizeof msg - 1)
        die("write");
    char buf[64] = {0};
    ssize_t n = read(sv[0], buf, sizeof buf - 1);
    int st;
    waitpid(c, &st, 0);
    printf("socketpair: child answered %.*s, exited %d\n", (int)n, buf, WEXITSTATUS(st));
}

static void sigchld_case(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGCHLD);
    sigprocmask(SIG_BLOCK, &m, &old);
    reaped = 0;
    for (int i = 0; i < 5; i++) {
        pid_t c = fork();
        if (c < 0)
            die("fork");
        if (c == 0)
            _exit(i);
    }
    while (reaped < 5)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, 0);
    printf("SIGCHLD handler: reaped %d children\n", (int)reaped);
    signal(SIGCHLD, SIG_DFL);
}

// The server: accepts until its listening socket is shut down, a child per
// connection echoing until EOF; reaps them from its SIGCHLD handler.
static void serve(int ls, int report) {
    reaped = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, 0);
    int served = 0;
    for (;;) {
        int c = accept(ls, 0, 0);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        served++;
        pid_t p = fork();
        if (p < 0)
            _exit(4);
        if (p == 0) {
            close(ls);
            char buf[256];
            ssize_t n;
            while ((n = read(c, buf, sizeof buf)) > 0)
                if (write(c, buf, n) != n)
                    _exit(5);
            _exit(0);
        }
        close(c);
    }
    sigset_t m, old;
    sigemptyset(&m);
    sigaddset(&m, SIGCHLD);
    sigprocmask(SIG_BLOCK, &m, &old);
    while (reaped < served)
        sigsuspend(&old);
    char line[128];
    int len = snprintf(line, sizeof line, "server: %d connections, %d children reaped by its handler\n",
                       served, (int)reaped);
    if (write(report, line, len) != len)
        _exit(6);
    _exit(0);
}

static void echo_server_case(void) {
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0)
        die("socket");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 128) != 0)
        die("bind/listen");
    socklen_t al = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &al);
    int rep[2];
    if (pipe(rep) != 0)
        die("pipe");
    pid_t s = fork();
    if (s < 0)
        die("fork");
    if (s == 0) {
        close(rep[0]);
        serve(ls, rep[1]);
    }
    close(rep[1]);
    int ok = 0;
    for (int i = 0; i < CLIENTS; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
            die("connect");
        char msg[32], back[32] = {0};
        int len = snprintf(msg, sizeof msg, "client %d", i);
        if (write(c, msg, len) != len)
            die("write");
        shutdown(c, SHUT_WR);
        int got = 0;
        ssize_t n;
        while ((n = read(c, back + got, sizeof back - 1 - got)) > 0)
            got += n;
        close(c);
        ok += got == len && memcmp(msg, back, len) == 0;
    }
    // Stop the server: it sees accept fail once the socket is shut down.
    shutdown(ls, SHUT_RDWR);
    close(ls);
    char line[128] = {0};
    ssize_t n = read(rep[0], line, sizeof line - 1);
    int st;
    waitpid(s, &st, 0);
    printf("echo server: %d of %d clients got their line back\n", ok, CLIENTS);
    printf("%.*s", (int)(n > 0 ? n : 0), line);
    printf("server exited %d\n", WEXITSTATUS(st));
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    socketpair_case();
    sigchld_case();
    echo_server_case();
    return 0;
}
