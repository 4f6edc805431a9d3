// A connected pair of AF_UNIX SOCK_SEQPACKET sockets that a TunQueue may run over instead of a
// /dev/net/tun fd: one message per packet, as a TUN read and write are, and nothing reaches any
// network stack. The WireGuard warm-up runs the real queue code over one before the first real
// packet (src/device/packet-pair.ts). A TunQueue closes what it holds, so it takes a socket only
// if this file made it: the pair's ends are remembered (fd, device and inode) until a queue
// adopts them, and a stale entry (its fd closed and the number reused) no longer matches.
#include "common.h"
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <mutex>

namespace tuntap {

namespace {

struct PairEnd {
  int fd;
  dev_t dev;
  ino_t ino;
};

// Ends made and not yet adopted. Bounded: a caller that makes pairs and never uses them runs
// out here rather than growing the table.
constexpr size_t kMaxPending = 32;
std::mutex pendingLock;
PairEnd pending[kMaxPending];
size_t pendingCount = 0;

bool Same(const PairEnd& e, const struct stat& st) { return st.st_dev == e.dev && st.st_ino == e.ino; }

// Drops entries whose fd no longer names the socket made (closed without a queue adopting it).
void DropStale() {
  size_t kept = 0;
  for (size_t i = 0; i < pendingCount; i++) {
    struct stat st;
    if (fstat(pending[i].fd, &st) == 0 && Same(pending[i], st)) pending[kept++] = pending[i];
  }
  pendingCount = kept;
}

// packetPairOpen() → [fd, fd]: the two ends, non-blocking and close-on-exec.
Napi::Value PacketPairOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::lock_guard<std::mutex> hold(pendingLock);
  DropStale();
  if (pendingCount + 2 > kMaxPending) { ThrowErrno(env, "socketpair", EMFILE); return env.Undefined(); }
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) {
    ThrowErrno(env, "socketpair", errno);
    return env.Undefined();
  }
  for (int fd : fds) {
    struct stat st;
    if (fstat(fd, &st) < 0) {
      int err = errno;
      close(fds[0]);
      close(fds[1]);
      DropStale();
      ThrowErrno(env, "fstat", err);
      return env.Undefined();
    }
    pending[pendingCount++] = PairEnd{fd, st.st_dev, st.st_ino};
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fds[0]));
  out.Set(1u, Napi::Number::New(env, fds[1]));
  return out;
}

}  // namespace

// Whether fd (described by st) is a pair end made by packetPairOpen and not adopted yet; if so
// it is adopted now (a second call for it answers false). Used by TunQueue's constructor.
bool AdoptPacketPairEnd(int fd, const struct stat& st) {
  if (!S_ISSOCK(st.st_mode)) return false;
  std::lock_guard<std::mutex> hold(pendingLock);
  for (size_t i = 0; i < pendingCount; i++) {
    if (pending[i].fd == fd && Same(pending[i], st)) {
      pending[i] = pending[--pendingCount];
      return true;
    }
  }
  return false;
}

void InitPacketPair(Napi::Env env, Napi::Object exports) {
  exports.Set("packetPairOpen", Napi::Function::New(env, PacketPairOpen));
}

}  // namespace tuntap
