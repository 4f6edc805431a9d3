// AF_NETLINK sockets: open, bind, send, and batched receive. Messages are encoded and decoded in
// TypeScript (src/netlink/); this file only moves bytes. A socket belongs to the network
// namespace of the thread that created it, so the TypeScript side opens it inside inNetns().
//
// Two receive paths:
//  - recv(fd, buffer, timeoutMs): synchronous request mode. rtnetlink answers while the request
//    is being sent (dumps continue on each recv), so waiting here is short and bounded.
//  - watch(fd, buffer, callback): uv_poll readiness for event subscriptions; each wake-up drains
//    every queued datagram into the buffer and crosses into JS once.
// Both pack datagrams back to back, each padded to 4 bytes, so JS walks nlmsghdr lengths.
#include "common.h"
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
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

// A subscription socket watched by uv_poll. JS owns the socket fd and the buffer; the watcher
// holds references to both callback and buffer until stop().
class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NetlinkWatcher", {InstanceMethod("stop", &Watcher::Stop)});
  }

  static Watcher* Unwrap(Napi::Object object) { return UnwrapTagged<Watcher>(object, kTag, "NetlinkWatcher"); }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    napi_type_tag_object(env, info.This(), &kTag);
    Args a(info, "NetlinkWatcher");
    int fd;
    Napi::Function cb;
    if (!a.Fd(0, &fd) || !a.Function(2, "callback", &cb)) return;
    ByteSpan buf;
    if (!a.Bytes(1, "buffer", &buf)) return;
    if (buf.length < kMinRoom) { a.Range("buffer must hold at least 64 KiB"); return; }
    if (!buffer_.Hold(env, a[1], napi_uint8_array, buf.length)) { a.Type("buffer must be a Uint8Array"); return; }
    buffer_length_ = buf.length;
    fd_ = fd;
    callback_ = Napi::Persistent(cb);
    env_ = env;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    int r = uv_poll_init(loop, poll_, fd_);
    if (r == 0) r = uv_poll_start(poll_, UV_READABLE, OnReadable);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(env, "uv_poll_start", -r);
      return;
    }
    Ref();  // alive while polling, even if JS drops the object
  }

  ~Watcher() override { Close(); }

  static constexpr napi_type_tag kTag = {0x7475'6e74'6170'6e6cULL, 0x7761'7463'6801'0003ULL};

 private:
  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Watcher*>(handle->data);
    if (!self || !self->poll_) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    if (status < 0) {
      self->callback_.MakeCallback(env.Global(), {Napi::Number::New(env, 0), ErrnoValue(env, "uv_poll", -status)});
      return;
    }
    // Looked up on each wake-up: JS may have detached the buffer since (then EFAULT).
    auto* buf = static_cast<uint8_t*>(self->buffer_.Get(env));
    ssize_t n = buf ? DrainInto(self->fd_, buf, self->buffer_length_) : -EFAULT;
    if (n == -EAGAIN || n == -EWOULDBLOCK) return;
    if (n < 0) {
      // ENOBUFS: the kernel dropped events because we fell behind; JS decides what to do.
      self->callback_.MakeCallback(env.Global(), {Napi::Number::New(env, 0), ErrnoValue(env, "recv(AF_NETLINK)", static_cast<int>(-n))});
      return;
    }
    self->callback_.MakeCallback(env.Global(), {Napi::Number::New(env, static_cast<double>(n))});
  }

  void Close() {
    if (!poll_) return;
    uv_poll_stop(poll_);
    poll_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (poll_) {
      Close();
      buffer_.Reset();
      callback_.Reset();
      Unref();
    }
    return info.Env().Undefined();
  }

  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::Env env_{nullptr};
  HeldView buffer_;
  size_t buffer_length_ = 0;
  Napi::FunctionReference callback_;
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
