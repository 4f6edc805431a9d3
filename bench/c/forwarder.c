/* Baseline for the forwarder benchmark: the plainest TUN <-> UDP forwarder, one read() and one
 * send() per packet, readiness from poll(). It creates (or attaches to) the TUN named on the
 * command line with IFF_NO_PI, prints "ready NAME" and forwards until killed.
 *
 * usage: forwarder TUN LOCAL_IP LOCAL_PORT PEER_IP PEER_PORT   (IPv4 outer addresses)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void addr(struct sockaddr_in *sa, const char *ip, const char *port) {
  memset(sa, 0, sizeof(*sa));
  sa->sin_family = AF_INET;
  sa->sin_port = htons((unsigned short)atoi(port));
  if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", ip);
    exit(2);
  }
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s TUN LOCAL_IP LOCAL_PORT PEER_IP PEER_PORT\n", argv[0]);
    return 2;
  }
  int tun = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (tun < 0) die("open /dev/net/tun");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
  if (ioctl(tun, TUNSETIFF, &ifr) < 0) die("ioctl TUNSETIFF");

  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket");
  int bufsize = 4 << 20;
  setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof(bufsize));
  setsockopt(sock, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof(bufsize));
  struct sockaddr_in local, peer;
  addr(&local, argv[2], argv[3]);
  addr(&peer, argv[4], argv[5]);
  if (bind(sock, (struct sockaddr *)&local, sizeof(local)) < 0) die("bind");
  if (connect(sock, (struct sockaddr *)&peer, sizeof(peer)) < 0) die("connect");
  printf("ready %s\n", ifr.ifr_name);
  fflush(stdout);

  static unsigned char buf[65536];
  struct pollfd fds[2] = {{tun, POLLIN, 0}, {sock, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    /* Up to 64 packets per side per wake-up so neither direction starves the other; a full
     * socket or device drops the packet, as a router would. */
    if (fds[0].revents & POLLIN) {
      for (int i = 0; i < 64; i++) {
        ssize_t n = read(tun, buf, sizeof(buf));
        if (n < 0) break;
        send(sock, buf, (size_t)n, 0);
      }
    }
    if (fds[1].revents & POLLIN) {
      for (int i = 0; i < 64; i++) {
        ssize_t n = recv(sock, buf, sizeof(buf), 0);
        if (n < 0) break;
        if (write(tun, buf, (size_t)n) < 0 && errno != EAGAIN) perror("write tun");
      }
    }
  }
}
