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
#include <sys/uio.h>
#include <unistd.h>
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

  // new TunQueue(fd): takes ownership of fd (closed by close()).
  explicit TunQueue(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TunQueue>(info) {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    env_ = info.Env();
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
  // setReadBuffers(buffer, offsets: Uint32Array, lengths: Uint32Array, headerLength, readSize)
  Napi::Value SetReadBuffers(const Napi::CallbackInfo& info) {
    buffer_.Reset(info[0].As<Napi::Object>(), 1);
    offsets_.Reset(info[1].As<Napi::Object>(), 1);
    lengths_.Reset(info[2].As<Napi::Object>(), 1);
    auto buf = info[0].As<Napi::Uint8Array>();
    base_ = buf.Data();
    capacity_ = buf.ByteLength();
    offsetData_ = info[1].As<Napi::Uint32Array>().Data();
    lengthData_ = info[2].As<Napi::Uint32Array>().Data();
    slots_ = info[1].As<Napi::Uint32Array>().ElementLength();
    headerLength_ = info[3].As<Napi::Number>().Uint32Value();
    readSize_ = info[4].As<Napi::Number>().Uint32Value();
    return info.Env().Undefined();
  }

  // Drains up to max packets; returns count, or -errno when the first read fails.
  int Drain(uint32_t max) {
    if (fd_ < 0 || !base_) return -EBADF;
    if (max > slots_) max = slots_;
    uint32_t count = 0;
    size_t pos = 0;
    // Room is checked without subtracting past zero: pos is rounded up to 8 after each packet
    // and may pass the capacity.
    while (count < max && pos <= capacity_ && readSize_ <= capacity_ - pos) {
      ssize_t n = read(fd_, base_ + pos, readSize_);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) break;
        if (count == 0) return -errno;
        break;  // reported by the next call
      }
      if (static_cast<size_t>(n) < headerLength_) continue;  // cannot happen with our headers; skip it
      offsetData_[count] = static_cast<uint32_t>(pos + headerLength_);
      lengthData_[count] = static_cast<uint32_t>(n - headerLength_);
      count++;
      pos += (static_cast<size_t>(n) + 7) & ~static_cast<size_t>(7);
    }
    return static_cast<int>(count);
  }

  // read(max) → count (0 when nothing is queued); throws on a read error.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    int r = Drain(info[0].As<Napi::Number>().Uint32Value());
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
    readMax_ = info[0].As<Napi::Number>().Uint32Value();
    if (!EnsurePoll()) { ThrowErrno(env, "uv_poll_init", EBADF); return env.Undefined(); }
    readCb_.Reset(info[1].As<Napi::Function>(), 1);
    readPersistent_ = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
    UpdatePoll();
    return env.Undefined();
  }

  // waitWritable(cb): calls cb() once the fd accepts writes again.
  Napi::Value WaitWritable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!EnsurePoll()) { ThrowErrno(env, "uv_poll_init", EBADF); return env.Undefined(); }
    writeCb_.Reset(info[0].As<Napi::Function>(), 1);
    UpdatePoll();
    return env.Undefined();
  }

  // cancel(which: 'read' | 'write'): forgets a pending wait without calling it.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    std::string which = info[0].As<Napi::String>();
    if (which == "read") readCb_.Reset(); else writeCb_.Reset();
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
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) { ThrowErrno(env, "write", EBADF); return env.Undefined(); }
    auto packets = info[0].As<Napi::Array>();
    uint32_t start = info[1].As<Napi::Number>().Uint32Value();
    uint8_t* heads;
    uint32_t headLength;
    HeadsArg(info, 2, &heads, &headLength);
    return WriteEach(env, start, packets.Length(), heads, headLength, [&](uint32_t i, uint8_t** data, size_t* len) {
      Napi::Value v = packets[i];
      auto body = v.As<Napi::Uint8Array>();
      *data = body.Data();
      *len = body.ByteLength();
      return true;
    });
  }

  // writeRanges(buffer, offsets, lengths, start, count, heads?, headLength): like write(), for
  // packets lying in one buffer (no per-packet JS objects).
  Napi::Value WriteRanges(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (fd_ < 0) { ThrowErrno(env, "write", EBADF); return env.Undefined(); }
    auto buffer = info[0].As<Napi::Uint8Array>();
    auto offsets = info[1].As<Napi::Uint32Array>();
    auto lengths = info[2].As<Napi::Uint32Array>();
    uint32_t start = info[3].As<Napi::Number>().Uint32Value();
    uint32_t count = info[4].As<Napi::Number>().Uint32Value();
    uint8_t* heads;
    uint32_t headLength;
    HeadsArg(info, 5, &heads, &headLength);
    size_t limit = buffer.ByteLength();
    if (count > offsets.ElementLength()) count = static_cast<uint32_t>(offsets.ElementLength());
    if (count > lengths.ElementLength()) count = static_cast<uint32_t>(lengths.ElementLength());
    return WriteEach(env, start, count, heads, headLength, [&](uint32_t i, uint8_t** data, size_t* len) {
      size_t off = offsets[i];
      *len = lengths[i];
      if (off > limit || *len > limit - off) return false;
      *data = buffer.Data() + off;
      return true;
    });
  }

  // The optional (heads: Uint8Array, headLength) pair at info[at], info[at + 1]: none is length 0.
  static void HeadsArg(const Napi::CallbackInfo& info, size_t at, uint8_t** heads, uint32_t* headLength) {
    *heads = nullptr;
    *headLength = 0;
    if (info.Length() > at + 1 && info[at].IsTypedArray()) {
      *heads = info[at].As<Napi::Uint8Array>().Data();
      *headLength = info[at + 1].As<Napi::Number>().Uint32Value();
    }
  }

  // The write loop of write() and writeRanges(): packets start..end-1, each with writev() behind
  // its head (heads + i * headLength) when headLength > 0. `packetAt(i, &data, &len)` locates
  // packet i and returns false when it lies outside its buffer (EFAULT). Returns how many were
  // written before EAGAIN; any other error throws with `written` (the count before it).
  template <typename PacketAt>
  Napi::Value WriteEach(Napi::Env env, uint32_t start, uint32_t end, uint8_t* heads, uint32_t headLength,
                        PacketAt packetAt) {
    uint32_t i = start;
    while (i < end) {
      uint8_t* data;
      size_t len;
      int err = 0;
      if (!packetAt(i, &data, &len)) {
        err = EFAULT;
      } else {
        struct iovec iov[2];
        int n = 0;
        if (headLength) { iov[n].iov_base = heads + static_cast<size_t>(i) * headLength; iov[n].iov_len = headLength; n++; }
        iov[n].iov_base = data;
        iov[n].iov_len = len;
        n++;
        if (writev(fd_, iov, n) < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) break;
          err = errno;
        }
      }
      if (err != 0) {
        Napi::Object e = ErrnoValue(env, "write", err).As<Napi::Object>();
        e.Set("written", i - start);
        Napi::Error(env, e).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      i++;
    }
    return Napi::Number::New(env, i - start);
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
  static constexpr uint64_t kPauseNs = 2'000'000;
  uint64_t lastWakeEnd_ = 0;
  Napi::ObjectReference buffer_, offsets_, lengths_;
  uint8_t* base_ = nullptr;
  size_t capacity_ = 0;
  uint32_t* offsetData_ = nullptr;
  uint32_t* lengthData_ = nullptr;
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
