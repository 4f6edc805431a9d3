// The one readiness base of every native object that waits on an fd: a TUN/TAP queue
// (queue.cc), a UDP socket (udp.cc) and a netlink event socket (netlink.cc). Readiness comes
// from uv_poll on the loop of the thread that made the object (main thread or a worker), never
// the threadpool, and every such object speaks one convention to JS:
//
//   read() -> count              drains what is queued now (0: nothing); throws on failure
//   waitReadable(cb, persistent) cb(err, count) after a wake-up drained something (err: an
//                                Error with errno, count 0); once, or with `persistent` after
//                                every wake-up until cancel('read') (no call, no new reference
//                                per wake-up for a reader that always waits again)
//   waitWritable(cb)             cb(err) once the fd takes writes again
//   cancel('read' | 'write')     forgets a wait without calling it
//   ref() / unref()              whether a wait keeps the event loop alive
//   close()                      stops polling, drops the callbacks, closes an fd it owns
//
// What a count counts is the derived class's business: packets, datagrams, bytes. The class
// derives from Poller<T> (CRTP) and provides
//   int Drain(bool onWake)              count > 0, 0 when nothing is queued, -errno on failure
//   static constexpr const char* kReadSyscall   names a read failure ("read", "recvmmsg", ...)
// and may provide AbsorbPollError(status) (a poll error it handles itself: true keeps waiting),
// WakeEnded() (after each wake-up's callbacks) and Released() (drops what it held on close).
#pragma once
#include "common.h"
#include <uv.h>
#include <unistd.h>
#include <vector>

namespace tuntap {

template <typename T>
class Poller : public Napi::ObjectWrap<T> {
 public:
  using Wrap = Napi::ObjectWrap<T>;
  using Descriptors = std::vector<typename Wrap::PropertyDescriptor>;

  // The shared methods, added to the class's own in its DefineClass list.
  static void AddPollerMethods(Descriptors& d) {
    using Method = Napi::Value (T::*)(const Napi::CallbackInfo&);
    d.push_back(Wrap::InstanceMethod("read", static_cast<Method>(&Poller::ReadNow)));
    d.push_back(Wrap::InstanceMethod("waitReadable", static_cast<Method>(&Poller::WaitReadable)));
    d.push_back(Wrap::InstanceMethod("waitWritable", static_cast<Method>(&Poller::WaitWritable)));
    d.push_back(Wrap::InstanceMethod("cancel", static_cast<Method>(&Poller::Cancel)));
    d.push_back(Wrap::InstanceMethod("ref", static_cast<Method>(&Poller::RefLoop)));
    d.push_back(Wrap::InstanceMethod("unref", static_cast<Method>(&Poller::UnrefLoop)));
    d.push_back(Wrap::InstanceMethod("close", static_cast<Method>(&Poller::CloseNow)));
  }

  // Hooks a class may hide with its own.
  bool AbsorbPollError(int) { return false; }
  void WakeEnded() {}
  void Released() {}

 protected:
  Poller(const Napi::CallbackInfo& info, const char* resource) : Wrap(info), env_(info.Env()) {
    napi_get_uv_event_loop(env_, &loop_);
    napi_async_init(env_, Napi::Object::New(env_), Napi::String::New(env_, resource), &asyncContext_);
  }

  ~Poller() override {
    Shutdown(true);
    if (asyncContext_) napi_async_destroy(env_, asyncContext_);
  }

  // Starts watching `fd` (polling begins with the first wait). With `owns`, close() closes it.
  // A worker (or the process) that ends with the object open releases it at teardown, so no uv
  // handle outlives its loop.
  void Adopt(int fd, bool owns) {
    fd_ = fd;
    ownsFd_ = owns;
    if (!hooked_ && napi_add_env_cleanup_hook(env_, EnvCleanup, this) == napi_ok) hooked_ = true;
  }

  // Stops polling and drops the callbacks; with closeFd, closes an owned fd. Safe to repeat.
  void Shutdown(bool closeFd) {
    readCb_.Reset();
    writeCb_.Reset();
    if (poll_) {
      poll_->data = nullptr;
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    armed_ = 0;
    Pin(false);
    if (closeFd && ownsFd_ && fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (hooked_) {
      napi_remove_env_cleanup_hook(env_, EnvCleanup, this);
      hooked_ = false;
    }
  }

  T* Self() { return static_cast<T*>(this); }

  int fd_ = -1;
  Napi::Env env_ = Napi::Env(nullptr);

 private:
  static void EnvCleanup(void* arg) {
    auto* self = static_cast<Poller*>(arg);
    self->hooked_ = false;
    self->Shutdown(true);
    self->Self()->Released();
  }

  Napi::Value ReadNow(const Napi::CallbackInfo& info) {
    int r = Self()->Drain(false);
    if (r < 0) { ThrowErrno(info.Env(), T::kReadSyscall, -r); return info.Env().Undefined(); }
    return Napi::Number::New(info.Env(), r);
  }

  // The wait methods refuse a closed object: a wait on it would never end.
  bool EnsurePoll(Napi::Env env) {
    if (fd_ < 0) { ThrowErrno(env, T::kReadSyscall, EBADF); return false; }
    if (poll_) return true;
    poll_ = new uv_poll_t;
    int rc = uv_poll_init(loop_, poll_, fd_);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      ThrowErrno(env, "uv_poll_init", -rc);
      return false;
    }
    poll_->data = this;
    if (!refed_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return true;
  }

  Napi::Value WaitReadable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Args a(info, "waitReadable");
    Napi::Function cb;
    bool persistent = false;
    if (!a.Function(0, "callback", &cb) || (a.Has(1) && !a.Bool(1, "persistent", &persistent))) return env.Undefined();
    if (!EnsurePoll(env)) return env.Undefined();
    readCb_.Reset(cb, 1);
    readPersistent_ = persistent;
    UpdatePoll();
    return env.Undefined();
  }

  Napi::Value WaitWritable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Function cb;
    if (!Args(info, "waitWritable").Function(0, "callback", &cb)) return env.Undefined();
    if (!EnsurePoll(env)) return env.Undefined();
    writeCb_.Reset(cb, 1);
    UpdatePoll();
    return env.Undefined();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    Args a(info, "cancel");
    std::string which;
    if (!a.OneOf(0, "which", {"read", "write"}, &which)) return info.Env().Undefined();
    if (which == "read") readCb_.Reset();
    else writeCb_.Reset();
    UpdatePoll();
    return info.Env().Undefined();
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    refed_ = true;
    if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    refed_ = false;
    if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  Napi::Value CloseNow(const Napi::CallbackInfo& info) {
    Shutdown(true);
    Self()->Released();
    return info.Env().Undefined();
  }

  // While a wait is armed the JS object is kept alive, like a libuv handle keeps its socket:
  // a reader whose owner dropped every reference still gets its callback.
  void Pin(bool on) {
    if (on == pinned_) return;
    pinned_ = on;
    if (on) this->Ref(); else this->Unref();
  }

  // Polls for what the waiting callbacks need. Unchanged events cost nothing: a reader that
  // re-arms from its own callback keeps the fd in epoll (no epoll_ctl per wake-up).
  void UpdatePoll() {
    int events = (readCb_.IsEmpty() ? 0 : UV_READABLE) | (writeCb_.IsEmpty() ? 0 : UV_WRITABLE);
    Pin(events != 0 && poll_ != nullptr);
    if (!poll_ || events == armed_) return;
    armed_ = events;
    if (events == 0) uv_poll_stop(poll_);
    else uv_poll_start(poll_, events, OnPoll);
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Poller*>(handle->data);
    if (self != nullptr) self->Dispatch(status, events);
  }

  // The poll is updated once, after the callbacks ran: one that waits again keeps it as it is.
  // A callback may close the object; what follows checks poll_ and fd_ again.
  void Dispatch(int status, int events) {
    Napi::HandleScope scope(env_);
    if (status < 0) {
      armed_ = 0;  // libuv stops the handle when it reports an error
      if (Self()->AbsorbPollError(status)) { UpdatePoll(); return; }
    }
    if (!readCb_.IsEmpty() && (status < 0 || (events & (UV_READABLE | UV_DISCONNECT)))) {
      // libuv reports poll errors as -errno on Linux, like Drain.
      int r = status < 0 ? status : Self()->Drain(true);
      if (r != 0) {  // 0: a spurious wake-up, keep waiting
        Napi::Value err = r < 0 ? ErrnoValue(env_, T::kReadSyscall, -r) : env_.Null();
        Napi::Value count = Napi::Number::New(env_, r < 0 ? 0 : r);
        if (readPersistent_ && r > 0) {
          // The callback may cancel (or replace) itself; Invoke holds its value for the call.
          Invoke(readCb_, err, count);
        } else {
          Napi::FunctionReference cb = std::move(readCb_);
          readCb_.Reset();
          Invoke(cb, err, count);
        }
      }
      Self()->WakeEnded();
    }
    if (!writeCb_.IsEmpty() && poll_ && (status < 0 || (events & UV_WRITABLE))) {
      Napi::FunctionReference cb = std::move(writeCb_);
      writeCb_.Reset();
      Invoke(cb, status < 0 ? ErrnoValue(env_, "poll", -status) : env_.Null(), env_.Undefined());
    }
    UpdatePoll();
  }

  // An exception thrown by a callback is the program's uncaught exception, as from any event.
  void Invoke(Napi::FunctionReference& cb, napi_value a, napi_value b) {
    if (cb.IsEmpty()) return;
    napi_value argv[2] = {a, b};
    napi_value result;
    napi_status s = napi_make_callback(env_, asyncContext_, env_.Global(), cb.Value(), 2, argv, &result);
    if (s == napi_pending_exception) {
      napi_value e;
      napi_get_and_clear_last_exception(env_, &e);
      napi_fatal_exception(env_, e);
    }
  }

  uv_loop_t* loop_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  int armed_ = 0;  // events uv_poll is started with
  bool refed_ = true;
  bool ownsFd_ = false;
  bool hooked_ = false;
  bool pinned_ = false;
  bool readPersistent_ = false;
  Napi::FunctionReference readCb_, writeCb_;
  napi_async_context asyncContext_ = nullptr;
};

}  // namespace tuntap
