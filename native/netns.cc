// Network namespaces for the calling thread: tests, tools and the CLI open devices and sockets
// inside a namespace, then return. setns() affects only the calling thread, which is why the
// TypeScript wrapper runs the body synchronously on the JS thread.
#include "common.h"
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <unistd.h>

namespace tuntap {

static Napi::Value OpenPath(const Napi::CallbackInfo& info) {
  Args a(info, "openPath");
  std::string path;
  if (!a.String(0, "path", PATH_MAX, &path)) return info.Env().Undefined();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) { ThrowErrno(info.Env(), "open(" + path + ")", errno); return info.Env().Undefined(); }
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value SetNs(const Napi::CallbackInfo& info) {
  int fd;
  if (!Args(info, "setns").Fd(0, &fd)) return info.Env().Undefined();
  if (setns(fd, CLONE_NEWNET) < 0) ThrowErrno(info.Env(), "setns", errno);
  return info.Env().Undefined();
}

// Gives the calling thread a new, empty network namespace (only this thread: namespaces are
// per task). The caller opens /proc/thread-self/ns/net to keep it, then setns() back home.
static Napi::Value UnshareNet(const Napi::CallbackInfo& info) {
  if (unshare(CLONE_NEWNET) < 0) ThrowErrno(info.Env(), "unshare(CLONE_NEWNET)", errno);
  return info.Env().Undefined();
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd;
  if (!Args(info, "closeFd").Fd(0, &fd)) return info.Env().Undefined();
  if (close(fd) < 0) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("openPath", Napi::Function::New(env, OpenPath));
  exports.Set("setns", Napi::Function::New(env, SetNs));
  exports.Set("unshareNet", Napi::Function::New(env, UnshareNet));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
}

}  // namespace tuntap
