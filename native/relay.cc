// The proxy's byte relay: pairs of connected TCP sockets whose bytes are copied one to the other
// in C++, with no JS call per chunk. A RelaySet owns one epoll fd, watched on the loop through
// the poller base (poller.h); each wake-up copies whatever is ready and counts the connections
// that finished, so JS is called only when some did (read() / waitReadable's count).
//
// Per direction: read into one buffer shared by the whole set, write it out at once, and keep
// only what a short write left, in a buffer malloc'd then and freed once drained; while a
// direction holds such bytes its source is not read (the peer's slowness reaches the sender as
// TCP backpressure, and a direction never holds more than one read). A FIN read on one side
// becomes shutdown(SHUT_WR) on the other once that direction's bytes are out; a connection whose
// both directions ended that way finishes normally. A failed read or write finishes it at once,
// and the other side is reset (SO_LINGER 0) so the failure reaches both peers.
//
// JS side (src/proxy/socket-relay.ts): add(fdA) -> id and attach(id, fdB, toB?, toA?) duplicate
// the two fds one at a time (F_DUPFD_CLOEXEC; the caller closes its own in between), drop(id,
// reset) -> [aToB, bToA] closes a pair, takeFinished(out) hands over the finished records, takeActive(out) the ids that moved
// bytes since the last call (the idle sweep), bytes(id), size.
#include "poller.h"
#include <fcntl.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <algorithm>
#include <cstdlib>
#include <unordered_map>
#include <vector>

namespace tuntap {

// One read's size. Larger reads (128 KiB to 1 MiB were measured) were no faster at TUN MTU
// 65000 and make what a short write leaves behind larger.
static constexpr size_t kChunk = 64 * 1024;
// A read's size once the set as a whole holds this many bytes from short writes: a crowd of
// stalled readers then costs each little more.
static constexpr size_t kPressuredChunk = 16 * 1024;
static constexpr size_t kDefaultHeldLimit = 64 * 1024 * 1024;
// Bytes one readiness event may move before the next connection gets its turn.
static constexpr size_t kFairShare = 1024 * 1024;
static constexpr int kEvents = 256;
// epoll_wait rounds one wake-up serves before returning to the loop (timers, other I/O).
static constexpr int kRounds = 4;
// A finished record, as doubles: id, bytes a->b, bytes b->a, failed side (0 a, 1 b, -1 none), errno.
static constexpr size_t kRecord = 5;

struct Direction {
  uint8_t* held = nullptr;  // what a short write left (malloc'd), from held + heldOff
  size_t heldLen = 0;
  size_t heldOff = 0;
  uint64_t bytes = 0;
  bool eof = false;       // the source sent its FIN
  bool shutDone = false;  // passed on as shutdown(SHUT_WR)
};

struct Pair {
  uint32_t id = 0;
  int fd[2] = {-1, -1};
  Direction dir[2];         // dir[i]: from fd[i] to fd[1 - i]
  uint32_t watched[2] = {0, 0};  // the epoll events each fd is registered for (0: not in epoll)
  bool active = false;
};

class RelaySet : public Poller<RelaySet> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Descriptors d = {
      InstanceMethod("add", &RelaySet::Add),
      InstanceMethod("attach", &RelaySet::Attach),
      InstanceMethod("drop", &RelaySet::Drop),
      InstanceMethod("takeFinished", &RelaySet::TakeFinished),
      InstanceMethod("takeActive", &RelaySet::TakeActive),
      InstanceMethod("bytes", &RelaySet::Bytes),
      InstanceMethod("trim", &RelaySet::Trim),
      InstanceAccessor("size", &RelaySet::Size, nullptr),
      InstanceAccessor("held", &RelaySet::Held, nullptr),
    };
    AddPollerMethods(d);
    return DefineClass(env, "RelaySet", d);
  }

  static RelaySet* Unwrap(Napi::Object object) { return UnwrapTagged<RelaySet>(object, kTag, "RelaySet"); }
  static constexpr napi_type_tag kTag = {0x7475'6e74'6170'7265ULL, 0x6c61'7973'6574'0001ULL};
  static constexpr const char* kReadSyscall = "epoll_wait";

  // new RelaySet(maxPairs, heldLimit?, chunk?, fairShare?)
  explicit RelaySet(const Napi::CallbackInfo& info) : Poller<RelaySet>(info, "tuntap.relay") {
    Napi::Env env = info.Env();
    napi_type_tag_object(env, info.This(), &kTag);
    Args a(info, "RelaySet");
    uint32_t maxPairs;
    if (!a.U32(0, "maxPairs", &maxPairs, 1 << 22)) return;
    if (maxPairs == 0) { a.Range("maxPairs must be at least 1"); return; }
    int64_t heldLimit = kDefaultHeldLimit;
    if (a.Has(1) && !a.Int(1, "heldLimit", 0, int64_t(1) << 40, &heldLimit)) return;
    int64_t chunk = kChunk, share = kFairShare;
    if (a.Has(2) && !a.Int(2, "chunk", 4096, 16 << 20, &chunk)) return;
    if (a.Has(3) && !a.Int(3, "fairShare", 4096, 64 << 20, &share)) return;
    chunk_ = static_cast<size_t>(chunk);
    fairShare_ = static_cast<size_t>(share);
    maxPairs_ = maxPairs;
    heldLimit_ = static_cast<size_t>(heldLimit);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { ThrowErrno(env, "epoll_create1", errno); return; }
    Adopt(ep, true);
  }

  ~RelaySet() override { Released(); }

  int Drain(bool) {
    if (fd_ < 0) return -EBADF;
    epoll_event events[kEvents];
    for (int round = 0; round < kRounds; round++) {
      int n = epoll_wait(fd_, events, kEvents, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return -errno;
      }
      for (int i = 0; i < n; i++) Serve(events[i].data.u64, events[i].events);
      if (n < kEvents) break;
    }
    return static_cast<int>(finished_.size() / kRecord);
  }

  // Closing the set closes every pair it still holds, and its reserve fd.
  void Released() {
    for (auto& [id, p] : pairs_) Free(p, false);
    pairs_.clear();
    heldTotal_ = 0;
    if (reserve_ >= 0) ::close(reserve_);
    reserve_ = -1;
  }

 private:
  // ---- the copy loop ----

  void Serve(uint64_t key, uint32_t events) {
    auto it = pairs_.find(static_cast<uint32_t>(key >> 1));
    if (it == pairs_.end()) return;  // finished earlier in this batch
    Pair* p = it->second;
    int side = static_cast<int>(key & 1);
    // Bytes waiting for this fd go first: writing them lets its peer's reads resume.
    Direction& in = p->dir[1 - side];
    if (in.heldLen > 0 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      if (!Flush(p, 1 - side)) return;
    }
    if (!p->dir[side].eof && p->dir[side].heldLen == 0 && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
      if (!Copy(p, side)) return;
    }
    if (p->dir[0].shutDone && p->dir[1].shutDone) { Finish(p, -1, 0); return; }
    Watch(p);
  }

  // Copies from fd[side] to its peer until the source has nothing, the peer takes no more, or
  // this pair had its share. False when the pair finished.
  bool Copy(Pair* p, int side) {
    Direction& d = p->dir[side];
    int src = p->fd[side], dst = p->fd[1 - side];
    size_t moved = 0;
    while (moved < fairShare_) {
      size_t want = heldTotal_ >= heldLimit_ ? std::min(kPressuredChunk, chunk_) : chunk_;
      if (buffer_.size() < chunk_) buffer_.resize(chunk_);
      ssize_t n = read(src, buffer_.data(), want);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        Finish(p, side, errno);
        return false;
      }
      if (n == 0) {
        d.eof = true;
        return PassFin(p, side);
      }
      d.bytes += static_cast<uint64_t>(n);
      p->active = true;
      size_t sent = 0;
      int err = Send(dst, buffer_.data(), static_cast<size_t>(n), &sent);
      if (err != 0) { Finish(p, 1 - side, err); return false; }
      moved += static_cast<size_t>(n);
      if (sent < static_cast<size_t>(n)) {
        if (!Hold(d, buffer_.data() + sent, static_cast<size_t>(n) - sent)) { Finish(p, side, ENOMEM); return false; }
        break;
      }
      // A short read drained the socket: readiness reports more, no EAGAIN read needed.
      if (static_cast<size_t>(n) < want) break;
    }
    return true;
  }

  // Writes what direction `side` holds to its destination. False when the pair finished.
  bool Flush(Pair* p, int side) {
    Direction& d = p->dir[side];
    size_t sent = 0;
    int err = Send(p->fd[1 - side], d.held + d.heldOff, d.heldLen, &sent);
    if (err != 0) { Finish(p, 1 - side, err); return false; }
    d.heldOff += sent;
    d.heldLen -= sent;
    if (d.heldLen > 0) return true;
    Release(d);
    return d.eof ? PassFin(p, side) : true;
  }

  // The source of `side` ended: once its bytes are out, the destination's writing ends too.
  bool PassFin(Pair* p, int side) {
    Direction& d = p->dir[side];
    if (d.heldLen > 0 || d.shutDone) return true;
    d.shutDone = true;
    if (shutdown(p->fd[1 - side], SHUT_WR) != 0 && errno != ENOTCONN) {
      Finish(p, 1 - side, errno);
      return false;
    }
    return true;
  }

  // send() without SIGPIPE; 0 or the errno of a real failure (EAGAIN is a short write).
  static int Send(int fd, const uint8_t* data, size_t len, size_t* sent) {
    *sent = 0;
    while (*sent < len) {
      ssize_t w = send(fd, data + *sent, len - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return errno;
      }
      *sent += static_cast<size_t>(w);
    }
    return 0;
  }

  bool Hold(Direction& d, const uint8_t* data, size_t len) {
    auto* copy = static_cast<uint8_t*>(std::malloc(len));
    if (copy == nullptr) return false;
    std::memcpy(copy, data, len);
    d.held = copy;
    d.heldOff = 0;
    d.heldLen = len;
    heldTotal_ += len;
    return true;
  }

  void Release(Direction& d) {
    if (d.held == nullptr) return;
    heldTotal_ -= d.heldOff + d.heldLen;
    std::free(d.held);
    d.held = nullptr;
    d.heldOff = d.heldLen = 0;
  }

  // Registers each fd for what its pair waits on now. An fd with nothing to wait for leaves
  // epoll, so a socket whose peer hung up cannot report HUP over and over while stalled.
  void Watch(Pair* p) {
    for (int side = 0; side < 2; side++) {
      uint32_t want = 0;
      if (!p->dir[side].eof && p->dir[side].heldLen == 0) want |= EPOLLIN;
      if (p->dir[1 - side].heldLen > 0) want |= EPOLLOUT;
      if (want == p->watched[side]) continue;
      epoll_event ev{};
      ev.events = want;
      ev.data.u64 = (static_cast<uint64_t>(p->id) << 1) | static_cast<uint64_t>(side);
      int op = want == 0 ? EPOLL_CTL_DEL : p->watched[side] == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
      epoll_ctl(fd_, op, p->fd[side], &ev);
      p->watched[side] = want;
    }
  }

  // Records why the pair ended (failedSide -1: both directions ended normally), resets the
  // other side of a failure, and frees the pair.
  void Finish(Pair* p, int failedSide, int err) {
    double rec[kRecord] = {static_cast<double>(p->id), static_cast<double>(p->dir[0].bytes),
                           static_cast<double>(p->dir[1].bytes), static_cast<double>(failedSide), static_cast<double>(err)};
    finished_.insert(finished_.end(), rec, rec + kRecord);
    if (failedSide >= 0) Reset(p->fd[1 - failedSide]);
    pairs_.erase(p->id);
    Free(p, true);
  }

  // Closing with a zero linger time sends RST instead of FIN.
  static void Reset(int fd) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }

  void Free(Pair* p, bool unwatch) {
    for (int side = 0; side < 2; side++) {
      if (unwatch && p->watched[side] != 0 && fd_ >= 0) epoll_ctl(fd_, EPOLL_CTL_DEL, p->fd[side], nullptr);
      if (p->fd[side] >= 0) ::close(p->fd[side]);
      Release(p->dir[side]);
    }
    delete p;
  }

  // ---- JS calls ----

  // Duplicates `fd` (close-on-exec, non-blocking). At the open-files limit the reserve fd is
  // given up for it: the caller closes its own fd right after, so one spare fd is enough for a
  // handover one socket at a time, and a proxy at its limit still hands over what it accepted.
  int Duplicate(int fd) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0 && (errno == EMFILE || errno == ENFILE) && reserve_ >= 0) {
      ::close(reserve_);
      reserve_ = -1;
      copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    }
    if (copy < 0) return -1;
    int flags = fcntl(copy, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(copy, F_SETFL, flags | O_NONBLOCK);
    return copy;
  }

  bool CheckStream(const Args& a, int fd) {
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) { ThrowErrno(a.env(), "getsockopt", errno); return false; }
    if (type != SOCK_STREAM) { ThrowErrno(a.env(), a.fn(), ENOTSOCK); return false; }
    return true;
  }

  // add(fdA) -> id: the first half of a handover. Duplicates side A's fd (the caller then closes
  // its own); attach() gives side B and starts the relay. A pair not attached relays nothing.
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "RelaySet.add");
    int fdA;
    if (!a.Fd(0, &fdA)) return env.Undefined();
    if (fd_ < 0) { ThrowErrno(env, "epoll_ctl", EBADF); return env.Undefined(); }
    if (pairs_.size() >= maxPairs_) { ThrowErrno(env, "RelaySet.add", ENFILE); return env.Undefined(); }
    if (!CheckStream(a, fdA)) return env.Undefined();
    if (reserve_ < 0) reserve_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int copy = Duplicate(fdA);
    if (copy < 0) { ThrowErrno(env, "fcntl", errno); return env.Undefined(); }
    auto* p = new Pair();
    p->id = NextId();
    p->fd[0] = copy;
    pairs_.emplace(p->id, p);
    return Napi::Number::New(env, p->id);
  }

  // attach(id, fdB, toB?, toA?): duplicates side B's fd and starts relaying. toB/toA are bytes
  // already read from one side (a handshake's leftovers), written to the other first.
  Napi::Value Attach(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "RelaySet.attach");
    int fdB;
    ByteSpan toB, toA;
    Pair* p = Find(a, env);
    if (env.IsExceptionPending() || !a.Fd(1, &fdB) || !a.OptionalBytes(2, "toB", &toB) || !a.OptionalBytes(3, "toA", &toA)) return env.Undefined();
    if (p == nullptr || p->fd[1] >= 0) { a.Range("id must name a pair added and not yet attached"); return env.Undefined(); }
    if (!CheckStream(a, fdB)) return env.Undefined();
    int copy = Duplicate(fdB);
    if (copy < 0) { ThrowErrno(env, "fcntl", errno); return env.Undefined(); }
    p->fd[1] = copy;
    if ((toB.length > 0 && !Hold(p->dir[0], toB.data, toB.length)) || (toA.length > 0 && !Hold(p->dir[1], toA.data, toA.length))) {
      ThrowErrno(env, "malloc", ENOMEM);
      return env.Undefined();
    }
    p->dir[0].bytes = toB.length;
    p->dir[1].bytes = toA.length;
    Watch(p);
    return env.Undefined();
  }

  uint32_t NextId() {
    do { nextId_ = nextId_ == UINT32_MAX / 2 ? 1 : nextId_ + 1; } while (pairs_.count(nextId_) != 0);
    return nextId_;
  }

  Pair* Find(const Args& a, Napi::Env env) {
    uint32_t id;
    if (!a.U32(0, "id", &id)) return nullptr;
    auto it = pairs_.find(id);
    return it == pairs_.end() ? nullptr : it->second;
  }

  static Napi::Value Counts(Napi::Env env, const Pair* p) {
    Napi::Array out = Napi::Array::New(env, 2);
    out.Set(0u, Napi::Number::New(env, static_cast<double>(p->dir[0].bytes)));
    out.Set(1u, Napi::Number::New(env, static_cast<double>(p->dir[1].bytes)));
    return out;
  }

  // drop(id, reset) -> [aToB, bToA], or undefined for an id the set does not hold.
  Napi::Value Drop(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "RelaySet.drop");
    bool reset = false;
    Pair* p = Find(a, env);
    if (env.IsExceptionPending() || (a.Has(1) && !a.Bool(1, "reset", &reset))) return env.Undefined();
    if (p == nullptr) return env.Undefined();
    Napi::Value counts = Counts(env, p);
    if (reset) { Reset(p->fd[0]); Reset(p->fd[1]); }
    pairs_.erase(p->id);
    Free(p, true);
    return counts;
  }

  Napi::Value Bytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Pair* p = Find(Args(info, "RelaySet.bytes"), env);
    return p == nullptr ? env.Undefined() : Counts(env, p);
  }

  // takeFinished(out: Float64Array) -> records copied (5 doubles each); the rest stay for the next call.
  Napi::Value TakeFinished(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "RelaySet.takeFinished");
    napi_typedarray_type type;
    size_t length;
    void* data;
    if (napi_get_typedarray_info(env, info[0], &type, &length, &data, nullptr, nullptr) != napi_ok || type != napi_float64_array) {
      a.Type("out must be a Float64Array");
      return env.Undefined();
    }
    size_t records = std::min(length / kRecord, finished_.size() / kRecord);
    if (records > 0) std::memcpy(data, finished_.data(), records * kRecord * sizeof(double));
    finished_.erase(finished_.begin(), finished_.begin() + static_cast<std::ptrdiff_t>(records * kRecord));
    if (finished_.empty()) finished_.shrink_to_fit();
    return Napi::Number::New(env, static_cast<double>(records));
  }

  // takeActive(out: Uint32Array) -> ids of pairs that moved bytes since they were last taken,
  // up to out's length (the rest keep their mark).
  Napi::Value TakeActive(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    WordSpan out;
    if (!Args(info, "RelaySet.takeActive").Words(0, "out", &out)) return env.Undefined();
    size_t n = 0;
    for (auto& [id, p] : pairs_) {
      if (n == out.count) break;
      if (!p->active) continue;
      p->active = false;
      out.data[n++] = id;
    }
    return Napi::Number::New(env, static_cast<double>(n));
  }

  // Hands the heap's free memory back to the system (after many pairs closed).
  Napi::Value Trim(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
  }

  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(pairs_.size())); }
  Napi::Value Held(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(heldTotal_)); }

  std::unordered_map<uint32_t, Pair*> pairs_;
  std::vector<uint8_t> buffer_;
  std::vector<double> finished_;
  size_t maxPairs_ = 0;
  size_t heldLimit_ = kDefaultHeldLimit;
  size_t heldTotal_ = 0;
  size_t chunk_ = kChunk;
  size_t fairShare_ = kFairShare;
  uint32_t nextId_ = 0;
  int reserve_ = -1;  // a spare fd (/dev/null) given up for a handover at the open-files limit
};

void InitRelay(Napi::Env env, Napi::Object exports) {
  exports.Set("RelaySet", RelaySet::Define(env));
}

}  // namespace tuntap
