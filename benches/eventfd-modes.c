/* What an eventfd round trip costs with each guarantee srb-linux's eventfd
 * signals add (README, "Across processes"): two processes ping-pong an
 * eventfd count, pinned to one CPU (or the child to CPU argv[2]).
 *
 *   mode 0  raw:     write; blocking read                  (xproc's `eventfd`)
 *   mode 1  poll:    write; poll(eventfd) + preadv2(RWF_NOWAIT)
 *   mode 2  watch:   write; poll(eventfd, socket POLLRDHUP) + preadv2
 *   mode 3  checked: poll(POLLOUT, 0) + write; as mode 2    (srb-linux's
 *                    Eventfd::notify + EventfdWait::wait with a PeerWatch)
 *
 * cc -O2 -o /tmp/eventfd-modes benches/eventfd-modes.c
 * for m in 0 1 2 3; do /tmp/eventfd-modes $m 0; done      (same CPU)
 * for m in 0 1 2 3; do /tmp/eventfd-modes $m 1; done      (cross CPU)
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { N = 20000, WARMUP = 1000 };
static int mode;

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void post(int fd) {
    uint64_t one = 1;
    if (mode >= 3) {
        struct pollfd p = {fd, POLLOUT, 0};
        struct timespec zero = {0, 0};
        if (ppoll(&p, 1, &zero, NULL) != 1) exit(2);
    }
    if (write(fd, &one, 8) != 8) exit(2);
}

static void take(int fd, int sock) {
    uint64_t v;
    if (mode == 0) {
        if (read(fd, &v, 8) != 8) exit(2);
        return;
    }
    struct pollfd p[2] = {{fd, POLLIN, 0}, {sock, POLLRDHUP, 0}};
    if (ppoll(p, mode >= 2 ? 2 : 1, NULL, NULL) < 1) exit(2);
    struct iovec io = {&v, 8};
    if (preadv2(fd, &io, 1, -1, RWF_NOWAIT) != 8) exit(2);
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    sched_setaffinity(0, sizeof s, &s);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: %s MODE CHILD_CPU\n", argv[0]), 1;
    mode = atoi(argv[1]);
    int child_cpu = atoi(argv[2]);
    int to_child = eventfd(0, EFD_CLOEXEC), to_parent = eventfd(0, EFD_CLOEXEC);
    int sv[2];
    if (to_child < 0 || to_parent < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
    pin(0);
    if (fork() == 0) {
        pin(child_cpu);
        for (int i = 0; i < N + WARMUP; i++) {
            take(to_child, sv[1]);
            post(to_parent);
        }
        _exit(0);
    }
    static double d[N];
    for (int i = 0; i < N + WARMUP; i++) {
        double t = now_ns();
        post(to_child);
        take(to_parent, sv[0]);
        if (i >= WARMUP) d[i - WARMUP] = now_ns() - t;
    }
    wait(NULL);
    qsort(d, N, sizeof d[0], cmp);
    printf("mode %d, child on CPU %d: median %.2f us, p99 %.2f us\n", mode, child_cpu,
           d[N / 2] / 1000, d[N * 99 / 100] / 1000);
    return 0;
}
