// Load client of bench/soak.py (compiled by it at run time with cc): HTTP/1.1 connections to
// 127.0.0.1:PORT, each one GET and its whole response, at most CONC at once, epoll, one thread.
//   soak_client PORT COUNT CONC churn PATH TIMEOUT_MS   each connection is closed after its response
//   soak_client PORT COUNT CONC idle  PATH TIMEOUT_MS   each is kept open (keep-alive idle); prints
//       "held N errors E", waits for a line on stdin, prints how many are still open, closes them all
// Last line on stdout: "done OK ERRORS SECONDS FIRST_ERROR".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { int fd, len; double deadline; char buf[8192]; } Conn;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static char first_error[200] = "-";
static long ok, errors;

static void fail(Conn *c, const char *why) {
  if (errors++ == 0) snprintf(first_error, sizeof first_error, "%s", why);
  close(c->fd); c->fd = -1;
}

// 1: a full 200 response with keep-alive; 0: need more bytes; -1: error (reason set)
static int complete(Conn *c, const char **why) {
  c->buf[c->len] = 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) { *why = "response head too large"; return c->len >= (int)sizeof c->buf - 1 ? -1 : 0; }
  if (strncmp(c->buf, "HTTP/1.1 200 ", 13) != 0) { *why = "status not 200"; return -1; }
  long length = -1; int chunked = 0;
  for (char *h = strstr(c->buf, "\r\n") + 2; h < end; h = strstr(h, "\r\n") + 2) {
    if (!strncasecmp(h, "content-length:", 15)) length = atol(h + 15);
    else if (!strncasecmp(h, "transfer-encoding:", 18)) chunked = 1;
    else if (!strncasecmp(h, "connection:", 11)) {
      char *eol = strstr(h, "\r\n"), *cl = strcasestr(h, "close");
      if (cl && cl < eol) { *why = "response says Connection: close"; return -1; }
    }
  }
  long body = c->len - (end + 4 - c->buf);
  if (length >= 0) return body >= length;
  if (chunked) return c->len >= 5 && !memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5);
  *why = "response without length"; return -1;
}

int main(int argc, char **argv) {
  if (argc != 7) { fprintf(stderr, "usage: soak_client PORT COUNT CONC churn|idle PATH TIMEOUT_MS\n"); return 2; }
  int port = atoi(argv[1]), conc = atoi(argv[3]), idle = !strcmp(argv[4], "idle");
  long count = atol(argv[2]); double timeout = atof(argv[6]) / 1000;
  char req[1024];
  int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: prox-soak\r\n\r\n", argv[5], port);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  int ep = epoll_create1(0);
  Conn *slots = calloc(conc, sizeof(Conn));
  int *held = idle ? malloc(sizeof(int) * count) : NULL;
  long started = 0, nheld = 0, inflight = 0;
  for (int i = 0; i < conc; i++) slots[i].fd = -1;
  double t0 = now(), last_scan = t0;
  struct epoll_event evs[256];
  while (ok + errors < count) {
    for (int i = 0; i < conc && started < count; i++) {  // fill free slots
      Conn *c = &slots[i];
      if (c->fd >= 0) continue;
      started++;
      c->len = 0; c->deadline = now() + timeout;
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c->fd < 0) { if (errors++ == 0) snprintf(first_error, sizeof first_error, "socket: %s", strerror(errno)); continue; }
      int one = 1; setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) { fail(c, strerror(errno)); continue; }
      struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = i};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
      inflight++;
    }
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; k++) {
      Conn *c = &slots[evs[k].data.u32];
      if (c->fd < 0) continue;
      if (evs[k].events & EPOLLOUT) {
        int err = 0; socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { fail(c, strerror(err)); inflight--; continue; }
        if (write(c->fd, req, reqlen) != reqlen) { fail(c, "short write"); inflight--; continue; }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        continue;
      }
      ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) { fail(c, r == 0 ? "closed before a full response" : strerror(errno)); inflight--; continue; }
      c->len += r;
      const char *why = NULL;
      int st = complete(c, &why);
      if (st == 0) continue;
      inflight--;
      if (st < 0) { fail(c, why); continue; }
      ok++;
      if (idle) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); held[nheld++] = c->fd; }
      else close(c->fd);
      c->fd = -1;
    }
    double t = now();
    if (t - last_scan > 0.1) {  // per-connection timeouts
      last_scan = t;
      for (int i = 0; i < conc; i++)
        if (slots[i].fd >= 0 && t > slots[i].deadline) { fail(&slots[i], "timed out"); inflight--; }
    }
  }
  double secs = now() - t0;
  if (idle) {
    printf("held %ld errors %ld\n", nheld, errors); fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {}
    long open_now = 0;  // still open: no EOF/error pending
    for (long i = 0; i < nheld; i++) {
      char b; ssize_t r = recv(held[i], &b, 1, MSG_PEEK | MSG_DONTWAIT);
      if (r < 0 && errno == EAGAIN) open_now++;
    }
    printf("open %ld\n", open_now); fflush(stdout);
    for (long i = 0; i < nheld; i++) close(held[i]);
  }
  printf("done %ld %ld %.3f %s\n", ok, errors, secs, first_error);
  return 0;
}
