// AF_NETLINK sockets: open, bind, send, and batched receive. Messages are encoded and decoded in
// TypeScript (src/netlink/); this file only moves bytes. A socket belongs to the network
// namespace of the thread that created it, so the TypeScript side opens it inside inNetns().
//
// Two receive paths:
//  - recv(fd, buffer, timeoutMs): synchronous request mode. rtnetlink answers while the request
//    is being sent (dumps continue on each recv), so waiting here is short and bounded.
//  - new Watcher(fd, buffer): an event subscription read through the shared poller base
//    (poller.h); each wake-up drains every queued datagram into the buffer and crosses into JS
//    once, with the byte count.
// Both pack datagrams back to back, each padded to 4 bytes, so JS walks nlmsghdr lengths.
#include "poller.h"
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmath>
#include <cstring>
#include <vector>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace tuntap {

// Receive buffers must have at least this much room; dump datagrams are at most 32 KiB.
static constexpr size_t kMinRoom = 65536;
static constexpr size_t kMaxRoom = size_t(1) << 30;
// Multicast groups one socket may join at open (rtnetlink has about 40).
static constexpr uint32_t kMaxGroups = 1024;

// Drains queued datagrams into buf without blocking. Returns bytes written, or -errno when the
// very first recv fails (a later failure just ends the batch; it will be seen next time).
// Each datagram's size is asked first (MSG_PEEK | MSG_TRUNC, nothing copied): one that does not
// fit the room left stays queued for the next call, since a datagram received cut is lost. Only
// one larger than the whole buffer is taken off the queue and reported as EMSGSIZE.
static ssize_t DrainInto(int fd, uint8_t* buf, size_t cap) {
  size_t used = 0;
  while (used < cap) {
    ssize_t size = recv(fd, nullptr, 0, MSG_DONTWAIT | MSG_PEEK | MSG_TRUNC);
    if (size < 0) {
      if (errno == EINTR) continue;
      if (used > 0) break;  // EAGAIN, or an error the next receive will report
      return -errno;
    }
    if (static_cast<size_t>(size) > cap - used) {
      if (used > 0) break;
      recv(fd, buf, 0, MSG_DONTWAIT | MSG_TRUNC);  // drop it, or every later call would stop here
      return -EMSGSIZE;
    }
    ssize_t n = recv(fd, buf + used, cap - used, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (used > 0) break;
      return -errno;
    }
    if (static_cast<size_t>(n) > cap - used) return used > 0 ? static_cast<ssize_t>(used) : -EMSGSIZE;  // cannot happen with one reader
    used += (static_cast<size_t>(n) + 3) & ~size_t(3);
    if (used > cap) used = cap;
  }
  return static_cast<ssize_t>(used);
}

// open(protocol, groups[]) -> { fd, portId }
static Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "netlink.open");
  uint32_t protocol;
  if (!a.U32(0, "protocol", &protocol, MAX_LINKS - 1)) return env.Undefined();
  // Groups are read before the socket exists: reading an element may run JS.
  std::vector<int> groups;
  if (a.Has(1)) {
    if (!Napi::Value(env, a[1]).IsArray()) { a.Type("groups must be an Array of numbers"); return env.Undefined(); }
    Napi::Array list(env, a[1]);
    uint32_t count = list.Length();
    if (count > kMaxGroups) { a.Range("at most " + std::to_string(kMaxGroups) + " groups"); return env.Undefined(); }
    for (uint32_t i = 0; i < count; i++) {
      napi_value v;
      double d;
      if (napi_get_element(env, list, i, &v) != napi_ok) return env.Undefined();
      if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 1 && d <= kMaxGroups) || std::trunc(d) != d) {
        a.Range("each group must be an integer from 1 to " + std::to_string(kMaxGroups));
        return env.Undefined();
      }
      groups.push_back(static_cast<int>(d));
    }
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0) { ThrowErrno(env, "socket(AF_NETLINK)", errno); return env.Undefined(); }
  int one = 1;
  // Extended acks carry the kernel's own explanation; capped acks keep error replies small.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  // Event bursts (and big dumps) must not overrun the receive queue.
  int rcvbuf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    close(fd);
    ThrowErrno(env, "bind(AF_NETLINK)", err);
    return env.Undefined();
  }
  for (int group : groups) {
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
      int err = errno;
      close(fd);
      ThrowErrno(env, "setsockopt(NETLINK_ADD_MEMBERSHIP)", err);
      return env.Undefined();
    }
  }
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  Napi::Object result = Napi::Object::New(env);
  result.Set("fd", Napi::Number::New(env, fd));
  result.Set("portId", Napi::Number::New(env, addr.nl_pid));
  return result;
}

// send(fd, bytes) -> bytes sent. Several messages may share one datagram (a batch).
static Napi::Value Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "netlink.send");
  int fd;
  ByteSpan data;
  if (!a.Fd(0, &fd) || !a.Bytes(1, "bytes", &data)) return env.Undefined();
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  for (;;) {
    ssize_t n = sendto(fd, data.data, data.length, 0,
                       reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
    if (n >= 0) return Napi::Number::New(env, static_cast<double>(n));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 1000);
      continue;
    }
    ThrowErrno(env, "sendto(AF_NETLINK)", errno);
    return env.Undefined();
  }
}

// recv(fd, buffer, timeoutMs) -> bytes (0 on timeout). Waits for the first datagram, then
// drains whatever else is already queued.
static Napi::Value Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a(info, "netlink.recv");
  int fd;
  ByteSpan buf;
  int32_t timeout;
  // A negative timeout would make poll() wait forever on the JS thread.
  if (!a.Fd(0, &fd) || !a.Bytes(1, "buffer", &buf) || !a.I32(2, "timeoutMs", &timeout, 0)) return env.Undefined();
  if (buf.length < kMinRoom) { a.Range("buffer must hold at least 64 KiB"); return env.Undefined(); }
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { ThrowErrno(env, "poll(AF_NETLINK)", errno); return env.Undefined(); }
    if (r == 0) return Napi::Number::New(env, 0);
    ssize_t n = DrainInto(fd, buf.data, buf.length);
    if (n == -EAGAIN || n == -EWOULDBLOCK) continue;
    if (n < 0) { ThrowErrno(env, "recv(AF_NETLINK)", static_cast<int>(-n)); return env.Undefined(); }
    return Napi::Number::New(env, static_cast<double>(n));
  }
}

// A subscription socket watched for readiness. JS owns the socket fd (the watcher never closes
// it) and the buffer; the watcher holds the buffer until close().
class Watcher : public Poller<Watcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Descriptors d;
    AddPollerMethods(d);
    return DefineClass(env, "NetlinkWatcher", d);
  }

  static Watcher* Unwrap(Napi::Object object) { return UnwrapTagged<Watcher>(object, kTag, "NetlinkWatcher"); }

  static constexpr const char* kReadSyscall = "recv(AF_NETLINK)";

  // new Watcher(fd, buffer): read() and each wake-up drain into buffer and give its byte count.
  explicit Watcher(const Napi::CallbackInfo& info) : Poller<Watcher>(info, "tuntap.netlink") {
    Napi::Env env = info.Env();
    napi_type_tag_object(env, info.This(), &kTag);
    Args a(info, "NetlinkWatcher");
    int fd;
    ByteSpan buf;
    if (!a.Fd(0, &fd) || !a.Bytes(1, "buffer", &buf)) return;
    // A drain's byte count goes back as an int.
    if (buf.length < kMinRoom || buf.length > kMaxRoom) { a.Range("buffer must hold from 64 KiB to 1 GiB"); return; }
    if (!buffer_.Hold(env, a[1], napi_uint8_array, buf.length)) { a.Type("buffer must be a Uint8Array"); return; }
    bufferLength_ = buf.length;
    Adopt(fd, false);
  }

  static constexpr napi_type_tag kTag = {0x7475'6e74'6170'6e6cULL, 0x7761'7463'6801'0003ULL};

  // Bytes drained, 0 when nothing was queued. The buffer is looked up on each drain: JS may have
  // detached it since (then EFAULT). ENOBUFS means the kernel dropped events because the reader
  // fell behind; JS decides what to do.
  int Drain(bool) {
    if (fd_ < 0) return -EBADF;
    auto* buf = static_cast<uint8_t*>(buffer_.Get(env_));
    if (!buf) return -EFAULT;
    ssize_t n = DrainInto(fd_, buf, bufferLength_);
    if (n == -EAGAIN || n == -EWOULDBLOCK) return 0;
    return static_cast<int>(n);
  }

  void Released() { buffer_.Reset(); }

 private:
  HeldView buffer_;
  size_t bufferLength_ = 0;
};

void InitNetlink(Napi::Env env, Napi::Object exports) {
  Napi::Object nl = Napi::Object::New(env);
  nl.Set("open", Napi::Function::New(env, Open));
  nl.Set("send", Napi::Function::New(env, Send));
  nl.Set("recv", Napi::Function::New(env, Recv));
  nl.Set("Watcher", Watcher::Define(env));
  exports.Set("netlink", nl);
}

}  // namespace tuntap
