// The floor of one WebSocket frame on this machine: a C loop that does nothing but send() a
// 150-byte frame to each of N connected loopback TCP sockets in turn (sender pinned to core 0),
// while a reader process on core 1 drains them all with epoll. Prints the sender's CPU-us per send
// (user and system) at a rate the sender sets by sleeping between bursts.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pin(int core) { cpu_set_t s; CPU_ZERO(&s); CPU_SET(core, &s); sched_setaffinity(0, sizeof s, &s); }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu(double *user, double *sys) { struct rusage r; getrusage(RUSAGE_SELF, &r);
  *user = r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6; *sys = r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6; return *user + *sys; }

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  double rate = argc > 2 ? atof(argv[2]) : 0;   // frames/s in all; 0 = as fast as it can
  int burst = argc > 3 ? atoi(argv[3]) : n;     // sends between sleeps
  double seconds = argc > 4 ? atof(argv[4]) : 5;
  int lsock = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(lsock, (void *)&a, sizeof a); listen(lsock, 4096);
  socklen_t al = sizeof a; getsockname(lsock, (void *)&a, &al);
  int *cli = malloc(n * sizeof(int)), *srv = malloc(n * sizeof(int));
  for (int i = 0; i < n; i++) {
    cli[i] = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(cli[i], (void *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    srv[i] = accept(lsock, NULL, NULL);
    int one = 1; setsockopt(srv[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  pid_t reader = fork();
  if (reader == 0) {
    pin(1);
    for (int i = 0; i < n; i++) close(srv[i]);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) { struct epoll_event e = {.events = EPOLLIN, .data.fd = cli[i]}; epoll_ctl(ep, EPOLL_CTL_ADD, cli[i], &e); }
    static char buf[65536]; struct epoll_event ev[1024];
    for (;;) { int k = epoll_wait(ep, ev, 1024, -1); for (int j = 0; j < k; j++) if (read(ev[j].data.fd, buf, sizeof buf) <= 0) _exit(0); }
  }
  pin(0);
  for (int i = 0; i < n; i++) close(cli[i]);
  char frame[150]; memset(frame, 'x', sizeof frame); frame[0] = 0x81; frame[1] = 126 - 2;  // any bytes do
  double u0, s0, u1, s1; long sends = 0; int next = 0;
  usleep(200000);
  double t0 = now(); cpu(&u0, &s0);
  double interval = rate > 0 ? burst / rate : 0, due = t0;
  while (now() - t0 < seconds) {
    for (int j = 0; j < burst; j++) { if (send(srv[next], frame, sizeof frame, MSG_DONTWAIT) > 0) sends++; next = (next + 1) % n; }
    if (interval > 0) { due += interval; double wait = due - now(); if (wait > 0) usleep((useconds_t)(wait * 1e6)); }
  }
  double t1 = now(); cpu(&u1, &s1);
  printf("{\"clients\": %d, \"burst\": %d, \"asked_per_s\": %.0f, \"sends_per_s\": %.0f, \"sender_cpu\": %.3f, \"us_per_send\": %.2f, \"user_us\": %.2f, \"sys_us\": %.2f}\n",
         n, burst, rate, sends / (t1 - t0), (u1 - u0 + s1 - s0) / (t1 - t0), (u1 - u0 + s1 - s0) / sends * 1e6, (u1 - u0) / sends * 1e6, (s1 - s0) / sends * 1e6);
  kill(reader, SIGTERM); waitpid(reader, NULL, 0);
  return 0;
}
