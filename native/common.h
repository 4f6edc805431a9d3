// Shared helpers for the native core. Each .cc registers its functions through an Init* hook.
#pragma once
#include <napi.h>
#include <cerrno>
#include <string>

namespace tuntap {

// Throws a JS Error carrying errno (number) and syscall; TypeScript turns it into a typed
// TuntapError with the errno name and a sentence for the user (src/errors.ts).
inline void ThrowErrno(Napi::Env env, const std::string& syscall, int err) {
  Napi::Error e = Napi::Error::New(env, syscall + " failed (errno " + std::to_string(err) + ")");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

// Builds the same error object without throwing (for async callbacks).
inline Napi::Value ErrnoValue(Napi::Env env, const std::string& syscall, int err) {
  Napi::Error e = Napi::Error::New(env, syscall + " failed (errno " + std::to_string(err) + ")");
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e.Value();
}

void InitNetns(Napi::Env env, Napi::Object exports);
void InitTun(Napi::Env env, Napi::Object exports);
void InitQueue(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);
void InitUdp(Napi::Env env, Napi::Object exports);
void InitAead(Napi::Env env, Napi::Object exports);

}  // namespace tuntap
