// One TUN/TAP queue fd: non-blocking batched read and write, readiness from uv_poll on the
// loop of the thread that created the queue (main thread or a worker), never the threadpool.
//
// Pull model: JS asks for a batch; read() drains up to `max` packets into one registered
// buffer (packets back to back, 8-byte aligned) and returns the count. When the fd is empty,
// waitReadable arms uv_poll; the wake-up drains the batch natively and crosses into JS once.
// While nobody asks, nothing is read: the kernel's queue is the buffer and its overflow is the
// device's tx_dropped counter.
#include "common.h"
#include <uv.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

namespace tuntap {

namespace {

class TunQueue;

// Queues alive per JS environment, closed when a worker (or the process) tears down so that
// no uv handle outlives its loop.
struct EnvQueues { std::set<TunQueue*> queues; };
std::mutex registriesLock;
std::map<napi_env, EnvQueues*> registries;

EnvQueues* RegistryOf(napi_env env) {
  std::lock_guard<std::mutex> guard(registriesLock);
  auto it = registries.find(env);
  return it == registries.end() ? nullptr : it->second;
}

class TunQueue : public Napi::ObjectWrap<TunQueue> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TunQueue", {
      InstanceMethod<&TunQueue::SetReadBuffers>("setReadBuffers"),
      InstanceMethod<&TunQueue::Read>("read"),
      InstanceMethod<&TunQueue::WaitReadable>("waitReadable"),
      InstanceMethod<&TunQueue::WaitWritable>("waitWritable"),
      InstanceMethod<&TunQueue::Cancel>("cancel"),
      InstanceMethod<&TunQueue::Write>("write"),
      InstanceMethod<&TunQueue::WriteRanges>("writeRanges"),
      InstanceMethod<&TunQueue::Release>("release"),
      InstanceMethod<&TunQueue::Close>("close"),
      InstanceMethod<&TunQueue::Ref>("ref"),
      InstanceMethod<&TunQueue::Unref>("unref"),
    });
  }

  static TunQueue* Unwrap(Napi::Object object) { return UnwrapTagged<TunQueue>(object, kTag, "TunQueue"); }

  // new TunQueue(fd): takes ownership of fd (closed by close()). Only a /dev/net/tun fd is
  // taken: this object closes what it holds, so any other fd (a socket, libuv's own) is refused.
  explicit TunQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunQueue>(info) {
    env_ = info.Env();
    napi_type_tag_object(env_, info.This(), &kTag);
    int fd;
    if (!Args(info, "TunQueue").Fd(0, &fd)) return;
    struct stat st;
    if (fstat(fd, &st) < 0) { ThrowErrno(env_, "fstat", errno); return; }
    if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != kTunMajor || minor(st.st_rdev) != kTunMinor) {
      FailType(env_, "TunQueue", "fd is not an open /dev/net/tun file");
      return;
    }
    fd_ = fd;
    napi_get_uv_event_loop(env_, &loop_);
    registry_ = RegistryOf(env_);
    if (registry_) registry_->queues.insert(this);
    napi_async_init(env_, Napi::Object::New(env_), Napi::String::New(env_, "tuntap.queue"), &asyncContext_);
  }

  ~TunQueue() override {
    Shutdown(true);
    if (registry_) registry_->queues.erase(this);
    if (asyncContext_) napi_async_destroy(env_, asyncContext_);
  }

  // Stops polling and, when closeFd, closes the fd. Safe to call more than once.
  void Shutdown(bool closeFd) {
    readCb_.Reset();
    writeCb_.Reset();
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    armed_ = 0;
    if (closeFd && fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  static void CleanupEnv(EnvQueues* registry) {
    for (TunQueue* q : registry->queues) { q->Shutdown(true); q->registry_ = nullptr; }
    registry->queues.clear();
  }

 private:
  // setReadBuffers(buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, headerLength,
  // readSize): where drains put packets (each read() gets readSize bytes of room) and their
  // payload offsets and lengths (one slot per packet of a batch).
  Napi::Value SetReadBuffers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.setReadBuffers");
    ByteSpan buf;
    WordSpan offsets, lengths;
    uint32_t headerLength, readSize;
    if (!BufferArgs(a, &buf, &offsets, &lengths) ||
        !a.U32(3, "headerLength", &headerLength, kMaxHeaderLength) || !a.U32(4, "readSize", &readSize)) {
      return env.Undefined();
    }
    size_t slots = std::min(offsets.count, lengths.count);
    // Offsets go back to JS as 32-bit numbers, so the whole buffer must be addressable by them.
    if (buf.length > UINT32_MAX) { a.Range("buffer must be under 4 GiB"); return env.Undefined(); }
    if (slots == 0) { a.Range("offsets and lengths need at least one slot"); return env.Undefined(); }
    if (readSize <= headerLength || readSize > buf.length) {
      a.Range("readSize must exceed headerLength and fit the buffer");
      return env.Undefined();
    }
    // Held before any state changes, so a failed call leaves the previous buffers in place.
    HeldView buffer, offsetView, lengthView;
    if (!buffer.Hold(env, a[0], napi_uint8_array, buf.length) ||
        !offsetView.Hold(env, a[1], napi_uint32_array, slots * sizeof(uint32_t)) ||
        !lengthView.Hold(env, a[2], napi_uint32_array, slots * sizeof(uint32_t))) {
      a.Type("buffer must be a Uint8Array");
      return env.Undefined();
    }
    buffer_ = std::move(buffer);
    offsets_ = std::move(offsetView);
    lengths_ = std::move(lengthView);
    capacity_ = buf.length;
    slots_ = slots;
    headerLength_ = headerLength;
    readSize_ = readSize;
    return env.Undefined();
  }

  // Drains up to max packets; returns count, or -errno when the first read fails. The buffers
  // are looked up again each time (JS may have detached them since); one that is gone is EFAULT.
  int Drain(uint32_t max) {
    if (fd_ < 0) return -EBADF;
    auto* base = static_cast<uint8_t*>(buffer_.Get(env_));
    auto* offsets = static_cast<uint32_t*>(offsets_.Get(env_));
    auto* lengths = static_cast<uint32_t*>(lengths_.Get(env_));
    if (!base || !offsets || !lengths) return -EFAULT;
    if (max > slots_) max = slots_;
    uint32_t count = 0;
    size_t pos = 0;
    // Room is checked without subtracting past zero: pos is rounded up to 8 after each packet
    // and may pass the capacity.
    while (count < max && pos <= capacity_ && readSize_ <= capacity_ - pos) {
      ssize_t n = read(fd_, base + pos, readSize_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        if (count == 0) return -errno;
        break;  // reported by the next call
      }
      if (static_cast<size_t>(n) < headerLength_) continue;  // cannot happen with our headers; skip it
      offsets[count] = static_cast<uint32_t>(pos + headerLength_);
      lengths[count] = static_cast<uint32_t>(n - headerLength_);
      count++;
      pos += (static_cast<size_t>(n) + 7) & ~static_cast<size_t>(7);
    }
    return static_cast<int>(count);
  }

  // read(max) → count (0 when nothing is queued); throws on a read error.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    uint32_t max;
    if (!Args(info, "TunQueue.read").U32(0, "max", &max)) return info.Env().Undefined();
    int r = Drain(max);
    if (r < 0) { ThrowErrno(info.Env(), "read", -r); return info.Env().Undefined(); }
    return Napi::Number::New(info.Env(), r);
  }

  bool EnsurePoll() {
    if (poll_) return true;
    if (fd_ < 0) return false;
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop_, poll_, fd_) != 0) { delete poll_; poll_ = nullptr; return false; }
    poll_->data = this;
    if (!refed_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return true;
  }

  // Polls for what the waiting callbacks need. Unchanged events cost nothing: a reader that
  // re-arms from its own callback keeps the fd in epoll (no epoll_ctl per wake-up).
  void UpdatePoll() {
    if (!poll_) return;
    int events = (readCb_.IsEmpty() ? 0 : UV_READABLE) | (writeCb_.IsEmpty() ? 0 : UV_WRITABLE);
    if (events == armed_) return;
    armed_ = events;
    if (events == 0) uv_poll_stop(poll_);
    else uv_poll_start(poll_, events, OnPoll);
  }

  // waitReadable(max, cb, persistent?): when readable, drains up to max packets and calls
  // cb(err, count). Once, or with `persistent` on every wake-up until cancel('read'): a reader
  // that always waits again then costs no call and no new reference per wake-up.
  Napi::Value WaitReadable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.waitReadable");
    uint32_t max;
    Napi::Function cb;
    bool persistent = false;
    if (!a.U32(0, "max", &max) || !a.Function(1, "callback", &cb) || (a.Has(2) && !a.Bool(2, "persistent", &persistent))) {
      return env.Undefined();
    }
    if (!EnsurePoll()) { ThrowErrno(env, "uv_poll_init", EBADF); return env.Undefined(); }
    readMax_ = max;
    readCb_.Reset(cb, 1);
    readPersistent_ = persistent;
    UpdatePoll();
    return env.Undefined();
  }

  // waitWritable(cb): calls cb() once the fd accepts writes again.
  Napi::Value WaitWritable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Function cb;
    if (!Args(info, "TunQueue.waitWritable").Function(0, "callback", &cb)) return env.Undefined();
    if (!EnsurePoll()) { ThrowErrno(env, "uv_poll_init", EBADF); return env.Undefined(); }
    writeCb_.Reset(cb, 1);
    UpdatePoll();
    return env.Undefined();
  }

  // cancel(which: 'read' | 'write'): forgets a pending wait without calling it.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Args a(info, "TunQueue.cancel");
    std::string which;
    if (!a.String(0, "which", 8, &which)) return info.Env().Undefined();
    if (which == "read") readCb_.Reset();
    else if (which == "write") writeCb_.Reset();
    else { a.Type("which must be 'read' or 'write'"); return info.Env().Undefined(); }
    UpdatePoll();
    return info.Env().Undefined();
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<TunQueue*>(handle->data);
    self->Dispatch(status, events);
  }

  // The poll is updated once, after the callbacks ran: one that waits again keeps it as it is.
  void Dispatch(int status, int events) {
    Napi::HandleScope scope(env_);
    if (status < 0) armed_ = 0;  // libuv stops the handle when it reports an error
    if (!readCb_.IsEmpty() && (status < 0 || (events & (UV_READABLE | UV_DISCONNECT)))) {
      int r = status < 0 ? status : Drain(WakeReadLimit());
      if (r != 0) {  // 0: spurious wake-up, keep waiting
        // libuv reports poll errors as -errno on Linux, like Drain.
        Napi::Value err = r < 0 ? ErrnoValue(env_, "read", -r) : env_.Null();
        if (readPersistent_ && r > 0) {
          // The callback may cancel (or replace) itself; Invoke holds its value for the call.
          Invoke(readCb_, {err, Napi::Number::New(env_, r)});
        } else {
          Napi::FunctionReference cb = std::move(readCb_);
          readCb_.Reset();
          Invoke(cb, {err, Napi::Number::New(env_, r < 0 ? 0 : r)});
        }
      }
      lastWakeEnd_ = uv_hrtime();
    }
    if (!writeCb_.IsEmpty() && poll_ && (status < 0 || (events & UV_WRITABLE))) {
      Napi::FunctionReference cb = std::move(writeCb_);
      writeCb_.Reset();
      Invoke(cb, {});
    }
    UpdatePoll();
  }

  // A wake-up after a pause (a ping, a keepalive) almost always finds one packet, and reading
  // again only to hear EAGAIN put a system call on the packet's round trip. So after a pause a
  // wake-up reads one packet: level-triggered polling reports at once anything left, and a
  // wake-up that comes soon after the previous one ended (traffic) drains a whole batch again.
  // The pause runs from the end of a wake-up: a consumer whose work per batch takes longer than
  // the pause still gets whole batches.
  uint32_t WakeReadLimit() {
    return uv_hrtime() - lastWakeEnd_ >= kPauseNs ? 1 : readMax_;
  }

  void Invoke(Napi::FunctionReference& cb, const std::initializer_list<napi_value>& args) {
    if (cb.IsEmpty()) return;
    napi_value result;
    napi_value argv[2];
    size_t argc = 0;
    for (napi_value a : args) argv[argc++] = a;
    napi_status s = napi_make_callback(env_, asyncContext_, env_.Global(), cb.Value(), argc, argv, &result);
    if (s == napi_pending_exception) {
      napi_value e;
      napi_get_and_clear_last_exception(env_, &e);
      napi_fatal_exception(env_, e);
    }
  }

  // write(packets: Uint8Array[], start, heads?: Uint8Array, headLength) → how many were
  // written before EAGAIN. A packet the kernel rejects throws with `written` (count before it).
  // Reading an element may run JS (a getter, a Proxy) that detaches buffers or closes the queue,
  // so packets go in chunks: every element of a chunk is read first, then the chunk's pointers
  // (and the heads') are taken and written with no JS in between.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.write");
    uint32_t start;
    if (!Napi::Value(env, a[0]).IsArray()) { a.Type("packets must be an Array"); return env.Undefined(); }
    if (!a.U32(1, "start", &start)) return env.Undefined();
    Napi::Array packets(env, a[0]);
    uint32_t end = packets.Length();
    if (start > end) { a.Range("start is past the end of packets"); return env.Undefined(); }
    Heads heads;
    if (!HeadsNow(a, 2, end, &heads)) return env.Undefined();  // checked whole before anything is written
    if (fd_ < 0) { ThrowErrno(env, "write", EBADF); return env.Undefined(); }
    uint32_t i = start;
    while (i < end) {
      Napi::HandleScope scope(env);
      constexpr uint32_t kChunk = 64;
      napi_value chunk[kChunk];
      uint32_t n = std::min(kChunk, end - i);
      for (uint32_t k = 0; k < n; k++) {
        if (napi_get_element(env, packets, i + k, &chunk[k]) != napi_ok) return WriteFailed(env, i - start, nullptr);
      }
      if (!HeadsNow(a, 2, i + n, &heads)) return WriteFailed(env, i - start, nullptr);
      ByteSpan bodies[kChunk];
      for (uint32_t k = 0; k < n; k++) {
        if (!ToBytes(env, chunk[k], &bodies[k])) return WriteFailed(env, i + k - start, "each packet must be a Uint8Array");
      }
      uint32_t done = 0;
      int err = WriteEach(i, n, heads, [&](uint32_t k, ByteSpan* body) { *body = bodies[k]; return true; }, &done);
      i += done;
      if (err == EAGAIN) break;
      if (err != 0) return WriteFailed(env, i - start, nullptr, err);
    }
    return Napi::Number::New(env, i - start);
  }

  // writeRanges(buffer, offsets, lengths, start, end, heads?, headLength): like write(), for
  // packets start..end-1 lying in one buffer (no per-packet JS objects).
  Napi::Value WriteRanges(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "TunQueue.writeRanges");
    ByteSpan buffer;
    WordSpan offsets, lengths;
    uint32_t start, end;
    if (!BufferArgs(a, &buffer, &offsets, &lengths) || !a.U32(3, "start", &start) || !a.U32(4, "end", &end)) {
      return env.Undefined();
    }
    if (start > end || end > offsets.count || end > lengths.count) {
      a.Range("start..end must lie within offsets and lengths");
      return env.Undefined();
    }
    Heads heads;
    if (!HeadsNow(a, 5, end, &heads)) return env.Undefined();
    if (fd_ < 0) { ThrowErrno(env, "write", EBADF); return env.Undefined(); }
    uint32_t done = 0;
    // Each offset and length is read once, then checked and used: the arrays may share memory
    // with the buffer, so a value checked earlier could have changed.
    int err = WriteEach(start, end - start, heads, [&](uint32_t k, ByteSpan* body) {
      uint32_t off = offsets.data[start + k], len = lengths.data[start + k];
      if (!Within(off, len, buffer.length)) return false;
      body->data = buffer.data + off;
      body->length = len;
      return true;
    }, &done);
    if (err != 0 && err != EAGAIN) return WriteFailed(env, done, nullptr, err);
    return Napi::Number::New(env, done);
  }

  // The (buffer: Uint8Array, offsets: Uint32Array, lengths: Uint32Array) that setReadBuffers
  // and writeRanges start with.
  static bool BufferArgs(const Args& a, ByteSpan* buffer, WordSpan* offsets, WordSpan* lengths) {
    return a.Bytes(0, "buffer", buffer) && a.Words(1, "offsets", offsets) && a.Words(2, "lengths", lengths);
  }

  // Packet i's head is data[i * each, +each); no heads when data is null.
  struct Heads {
    uint8_t* data = nullptr;
    uint32_t each = 0;
  };

  // The optional (heads: Uint8Array, headLength) pair at args at, at + 1, as it is now (taken
  // after any JS ran), with room for packets [0, end). No heads array: no heads.
  bool HeadsNow(const Args& a, size_t at, uint32_t end, Heads* out) {
    *out = Heads();
    if (!a.Has(at)) return true;
    ByteSpan bytes;
    uint32_t each;
    if (!ToBytes(a.env(), a[at], &bytes)) return a.Type("heads must be a Uint8Array");
    if (!a.U32(at + 1, "headLength", &each, kMaxHeaderLength)) return false;
    if (static_cast<uint64_t>(end) * each > bytes.length) return a.Range("heads is shorter than headLength per packet");
    if (each > 0) *out = Heads{bytes.data, each};
    return true;
  }

  // Throws the error of a write that stopped after `written` packets: errno (a kernel refusal or
  // EFAULT for a range outside its buffer) or a TypeError for a malformed argument.
  Napi::Value WriteFailed(Napi::Env env, uint32_t written, const char* typeError, int err = EFAULT) {
    Napi::Object e;
    if (typeError) {
      e = Napi::TypeError::New(env, std::string("TunQueue.write: ") + typeError).Value();
    } else if (env.IsExceptionPending()) {
      return env.Undefined();  // a getter threw: that exception stands
    } else {
      e = ErrnoValue(env, "write", err).As<Napi::Object>();
    }
    e.Set("written", written);
    Napi::Error(env, e).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // The write loop of write() and writeRanges(): `count` packets from index `first`, each with
  // writev() behind its head when heads are given. `packetAt(k, &body)` locates the k-th and
  // returns false when it lies outside its buffer (EFAULT). Sets `done` to how many went out;
  // returns 0, EAGAIN (the kernel is full), or the errno that stopped the loop.
  template <typename PacketAt>
  int WriteEach(uint32_t first, uint32_t count, Heads heads, PacketAt packetAt, uint32_t* done) {
    uint32_t k = 0;
    while (k < count) {
      if (fd_ < 0) { *done = k; return EBADF; }
      ByteSpan body;
      if (!packetAt(k, &body)) { *done = k; return EFAULT; }
      struct iovec iov[2];
      int n = 0;
      if (heads.data) {
        iov[n].iov_base = heads.data + static_cast<size_t>(first + k) * heads.each;
        iov[n].iov_len = heads.each;
        n++;
      }
      iov[n].iov_base = body.data;
      iov[n].iov_len = body.length;
      n++;
      if (writev(fd_, iov, n) < 0) {
        if (errno == EINTR) continue;
        *done = k;
        return errno == EAGAIN ? EAGAIN : errno;
      }
      k++;
    }
    *done = k;
    return 0;
  }

  // release(): stops polling and forgets the fd without closing it (handed to a worker).
  Napi::Value Release(const Napi::CallbackInfo& info) {
    Shutdown(false);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(true);
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    refed_ = true;
    if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    refed_ = false;
    if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  int fd_ = -1;
  Napi::Env env_ = Napi::Env(nullptr);
  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int armed_ = 0;  // events uv_poll is started with
  bool refed_ = true;
  EnvQueues* registry_ = nullptr;
  Napi::FunctionReference readCb_, writeCb_;
  bool readPersistent_ = false;
  napi_async_context asyncContext_ = nullptr;
  uint32_t readMax_ = 0;
  static constexpr napi_type_tag kTag = {0x7475'6e74'6170'7175ULL, 0x6575'6501'0000'0001ULL};
  static constexpr uint64_t kPauseNs = 2'000'000;
  // PI (4) + the largest virtio_net_hdr (12), with room to spare.
  static constexpr uint32_t kMaxHeaderLength = 64;
  // /dev/net/tun is the misc character device 10:200.
  static constexpr unsigned kTunMajor = 10;
  static constexpr unsigned kTunMinor = 200;
  uint64_t lastWakeEnd_ = 0;
  HeldView buffer_, offsets_, lengths_;
  size_t capacity_ = 0;
  size_t slots_ = 0;
  uint32_t headerLength_ = 0;
  uint32_t readSize_ = 0;
};

}  // namespace

void InitQueue(Napi::Env env, Napi::Object exports) {
  // One registry per environment (main thread, each worker); its cleanup hook runs at
  // environment teardown and closes queues the program left open.
  auto* registry = new EnvQueues();
  {
    std::lock_guard<std::mutex> guard(registriesLock);
    registries[env] = registry;
  }
  napi_add_env_cleanup_hook(env, [](void* arg) {
    auto* r = static_cast<EnvQueues*>(arg);
    {
      std::lock_guard<std::mutex> guard(registriesLock);
      for (auto it = registries.begin(); it != registries.end(); ++it) {
        if (it->second == r) { registries.erase(it); break; }
      }
    }
    TunQueue::CleanupEnv(r);
    delete r;
  }, registry);
  exports.Set("TunQueue", TunQueue::Define(env));
}

}  // namespace tuntap
